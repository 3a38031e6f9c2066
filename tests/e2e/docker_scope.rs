//! The Docker scope under attack on the real engine, through the built-in compose driver:
//! subject folders written by someone else. One test per class of escape; each checks the
//! refusal (a named error and the narrowest grant, if any) and that nothing outside the
//! project changed. The hostile driver's attacks are in `deploy.rs`.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{HOSTILE_DRIVER, docker, docker_lock, etcd_images, install_hostile_driver, leftovers, scrub};
use crate::harness::{Run, operator, run};

/// A busybox-capable image (the etcd subject's Prometheus image carries busybox).
const BUSYBOX: &str = "operator/prometheus:2.42.0-debian";
/// An entrypoint that waits and ends at once on SIGTERM (a bare `sleep` as PID 1 ignores it,
/// and every `down` would wait out the grace period).
const SLEEP: &str = r#"[/bin/busybox, sh, -c, "trap 'exit 0' TERM; /bin/busybox sleep 3600 & wait"]"#;

/// A subject folder `<subjects>/<name>` with a compose file and a manifest.
struct Subject {
    _root: tempfile::TempDir,
    subjects: PathBuf,
    dir: PathBuf,
    name: String,
}

impl Subject {
    fn new(name: &str, compose: &str, manifest: &str) -> Subject {
        let root = tempfile::tempdir().expect("tempdir");
        let subjects = root.path().canonicalize().expect("canonical");
        let dir = subjects.join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("docker-compose.yaml"), compose).expect("write");
        std::fs::write(dir.join("operator.toml"), manifest).expect("write");
        Subject { _root: root, subjects, dir, name: name.into() }
    }

    /// `operator deploy local <args> <subject>` (the project is the subject's unless `-p`).
    fn deploy(&self, args: &[&str]) -> Run {
        self.deploy_env(args, &[])
    }

    fn deploy_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = operator();
        cmd.arg("--subjects-dir").arg(&self.subjects).args(["deploy", "local"]).args(args).arg(&self.name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }
}

fn pid() -> u32 {
    std::process::id()
}

/// The engine to oneself, the images built, and a fresh project name `<prefix>-<pid>`.
fn begin(prefix: &str) -> (MutexGuard<'static, ()>, String) {
    let lock = docker_lock();
    etcd_images();
    let name = format!("{prefix}-{}", pid());
    scrub(&name);
    (lock, name)
}

/// Waits until a container has exited (a one-shot probe).
fn wait_exited(container: &str) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while docker(&["inspect", "-f", "{{.State.Status}}", container]).trim() != "exited" {
        assert!(Instant::now() < give_up, "{container} did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_bind_is_mounted_as_the_path_that_was_checked_never_reparsed() {
    let (_lock, name) = begin("e2e-colon");
    // `x:` is a directory; `x` a symlink to `/`. Parsed as `source:target`, `./x:/sub` would
    // have mounted the host's root.
    let compose = format!(
        "services:\n  probe:\n    image: {BUSYBOX}\n    entrypoint: [/bin/busybox, cat, /mnt/marker]\n    volumes:\n      - {{ type: bind, source: \"./x:/sub\", target: /mnt, read_only: true }}\n"
    );
    let s = Subject::new(&name, &compose, "");
    std::fs::create_dir_all(s.dir.join("x:/sub")).expect("mkdir");
    std::fs::write(s.dir.join("x:/sub/marker"), "inside the subject folder\n").expect("write");
    std::os::unix::fs::symlink("/", s.dir.join("x")).expect("symlink");

    s.deploy(&["up"]).expect_code(0);
    let container = format!("{name}-probe-1");
    wait_exited(&container);
    s.deploy(&["logs"]).expect_code(0).stdout_has("inside the subject folder");
    let mounts: Value =
        serde_json::from_str(&docker(&["inspect", "-f", "{{json .Mounts}}", &container])).expect("mounts json");
    assert_eq!(mounts[0]["Type"], "bind", "{mounts}");
    assert_eq!(mounts[0]["Source"], s.dir.join("x:/sub").display().to_string(), "{mounts}");
    assert_eq!(mounts[0]["RW"], false, "{mounts}");
    let binds = docker(&["inspect", "-f", "{{json .HostConfig.Binds}}", &container]);
    assert_eq!(binds.trim(), "null", "no Binds string: {binds}");
    s.deploy(&["down"]).expect_code(0);
    assert_eq!(leftovers(&name), Vec::<String>::new());
}

#[test]
fn no_container_can_write_what_decides_a_grant_or_a_bind() {
    let (_lock, name) = begin("e2e-rw");
    let sleeper = |volumes: &str| {
        format!("services:\n  a:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n    volumes: {volumes}\n")
    };
    // The whole folder read-write (the first step of the check-then-mount race, and of
    // rewriting the manifest), or the manifest itself.
    for volumes in ["[\".:/subject\"]", "[\"./operator.toml:/etc/grants.toml\"]"] {
        let s = Subject::new(&name, &sleeper(volumes), "");
        let r = s.deploy(&["up"]);
        r.expect_code(1)
            .stderr_has("which is never bound read-write (a container could rewrite the grants")
            .stderr_has("mount it read-only");
        assert_eq!(leftovers(&name), Vec::<String>::new(), "{volumes}");
    }
    // A granted writable folder is bound whole; nothing inside it can be bound, so no
    // container can swap a later bind's source for a symlink.
    let compose = format!(
        "services:\n  writer:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n    volumes: [\"./data:/data\"]\n  victim:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n    volumes: [\"./data/d:/host:ro\"]\n"
    );
    let s = Subject::new(&name, &compose, "[deployment.docker]\nwritable-paths = [\"data\"]\n");
    std::fs::create_dir_all(s.dir.join("data/d")).expect("mkdir");
    s.deploy(&["up"]).expect_code(1).stderr_has(&format!(
        "bind source {} lies inside {}, which containers of this project can write",
        s.dir.join("data/d").display(),
        s.dir.join("data").display()
    ));
    assert_eq!(leftovers(&name), Vec::<String>::new());
    // A manifest that makes the subject folder writable is refused before anything runs.
    let s = Subject::new(&name, &sleeper("[]"), "[deployment.docker]\nwritable-paths = [\".\"]\n");
    s.deploy(&["up"]).expect_code(1).stderr_has("is or contains the subject folder");
}

#[test]
fn the_project_is_the_subjects_whatever_the_compose_file_names() {
    let (_lock, name) = begin("e2e-name");
    let foreign = format!("e2e-foreign-{}", pid());
    scrub(&foreign);
    // A project `docker compose` made: compose's labels, not operator's.
    let compose_label = format!("com.docker.compose.project={foreign}");
    docker(&[
        "volume",
        "create",
        "--label",
        &compose_label,
        "--label",
        "com.docker.compose.volume=data",
        &format!("{foreign}_data"),
    ]);
    docker(&[
        "create",
        "--name",
        &format!("{foreign}-app-1"),
        "--label",
        &compose_label,
        "--label",
        "com.docker.compose.service=app",
        "--label",
        "com.docker.compose.oneoff=False",
        "operator/etcd:3.4.23-debian",
    ]);

    let compose = format!("name: {foreign}\nservices:\n  a:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n");
    let s = Subject::new(&name, &compose, "");
    s.deploy(&["up"]).expect_code(0).stderr_has(&format!("the compose file's `name: {foreign}` is not used"));
    let status = s.deploy(&["status", "--output", "json"]);
    status.expect_code(0);
    let list: Value = serde_json::from_str(&status.stdout).expect("json");
    let containers: Vec<&str> =
        list.as_array().expect("array").iter().filter_map(|c| c["container"].as_str()).collect();
    assert_eq!(containers, vec![format!("{name}-a-1")]);
    s.deploy(&["down", "--volumes"]).expect_code(0);
    assert_eq!(leftovers(&name), Vec::<String>::new());
    let mut theirs = leftovers(&foreign);
    theirs.sort();
    assert_eq!(theirs, vec![format!("{foreign}-app-1"), format!("{foreign}_data")], "the other project was touched");

    // Named on purpose, a project operator did not create is refused outright.
    for action in [&["status"][..], &["down", "--volumes"]] {
        let mut args = action.to_vec();
        args.extend(["-p", &foreign]);
        s.deploy(&args)
            .expect_code(1)
            .stderr_has(&format!("project {foreign} holds resources operator did not create"));
    }
    assert_eq!(leftovers(&foreign).len(), 2);
    scrub(&foreign);

    // A subject named `Atk-Vic.` is not folded into project `atk-vic` (another subject's).
    let s = Subject::new(&format!("{}.", name.to_uppercase()), &compose, "");
    s.deploy(&["status"]).expect_code(2).stderr_has("is not a project name as it is").stderr_has("-p");
}

#[test]
fn a_subject_folder_inside_the_engines_data_root_is_refused() {
    let (_lock, name) = begin("e2e-dataroot");
    // A subject reached through a symlink into a volume: a container could rewrite its manifest.
    let volume = format!("{name}-store");
    docker(&["volume", "create", &volume]);
    let mountpoint = PathBuf::from(docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &volume]).trim());
    std::fs::write(mountpoint.join("operator.toml"), "").expect("write into the volume (run as root)");
    std::fs::write(mountpoint.join("docker-compose.yaml"), "services:\n  a:\n    image: x\n").expect("write");
    let subjects = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(&mountpoint, subjects.path().join(&name)).expect("symlink");
    for command in [&["deploy", "local", "up"][..], &["subject"]] {
        let mut cmd = operator();
        cmd.arg("--subjects-dir").arg(subjects.path()).args(command).arg(&name);
        if command == ["subject"] {
            cmd.arg("describe");
        }
        run(&mut cmd)
            .expect_code(1)
            .stderr_has("where container engines keep volumes and layers: a container could rewrite its grants");
    }
    assert_eq!(leftovers(&name), Vec::<String>::new());
    docker(&["volume", "rm", &volume]);
}

#[test]
fn a_volume_of_another_project_is_never_this_ones() {
    let (_lock, name) = begin("e2e-vol");
    let other = format!("{name}_b");
    scrub(&other);
    let with_volume = |key: &str| {
        format!(
            "services:\n  a:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n    volumes: [\"{key}:/data\"]\nvolumes:\n  {key}:\n"
        )
    };
    // Project `<name>_b`'s volume `data` is `<name>_b_data`: the name `<name>` + `b_data` gives.
    let b = Subject::new(&name, &with_volume("data"), "");
    b.deploy(&["up", "-p", &other]).expect_code(0);
    let s = Subject::new(&name, &with_volume("b_data"), "");
    s.deploy(&["up"]).expect_code(1).stderr_has(&format!(
        "a volume named {other}_data exists but is not project {name}'s: it belongs to project {other}"
    ));
    s.deploy(&["down", "--volumes"]).expect_code(0);
    assert!(
        docker(&["volume", "ls", "-q"]).lines().any(|v| v == format!("{other}_data")),
        "the other project's volume"
    );
    b.deploy(&["down", "--volumes", "-p", &other]).expect_code(0);
    assert_eq!(leftovers(&other), Vec::<String>::new());
    assert_eq!(leftovers(&name), Vec::<String>::new());
}

/// A loopback listener that records whether anything connected to it.
fn tripwire() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            record.lock().unwrap_or_else(|p| p.into_inner()).push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (port, seen)
}

#[test]
fn only_declared_variables_and_allowed_registries_reach_the_engine() {
    let _lock = docker_lock();
    let name = format!("e2e-secret-{}", pid());
    let secret = format!("s3cret-{}", pid());
    let (port, seen) = tripwire();
    let registry = format!("127.0.0.1:{port}");

    // A secret in the operator's environment is not the compose file's to read.
    let s = Subject::new(&name, &format!("services:\n  a:\n    image: {registry}/x:${{SOME_TOKEN}}\n"), "");
    let r = s.deploy_env(&["up"], &[("SOME_TOKEN", &secret)]);
    r.expect_code(1).stderr_has("the SOME_TOKEN variable is not set").stderr_has("is not an image reference");
    assert!(!r.stderr.contains(&secret), "{}", r.stderr);

    // A registry only a variable names is not the file's literal choice.
    let s = Subject::new(&name, "services:\n  a:\n    image: ${REG}/x:1\n", "[deployment]\nenv = [\"REG\"]\n");
    s.deploy_env(&["up"], &[("REG", &registry)])
        .expect_code(1)
        .stderr_has(&format!("registry {registry} is not allowed (allowed: none)"))
        .stderr_has(&format!("hint: add `registries = [\"{registry}\"]` to [deployment]"));
    assert_eq!(
        *seen.lock().unwrap_or_else(|p| p.into_inner()),
        Vec::<String>::new(),
        "the engine contacted the registry"
    );

    // Allowed, the same pull does reach it: the grant is what stopped it above.
    let s = Subject::new(
        &name,
        "services:\n  a:\n    image: ${REG}/x:1\n",
        &format!("[deployment]\nenv = [\"REG\"]\nregistries = [\"{registry}\"]\n"),
    );
    s.deploy_env(&["up"], &[("REG", &registry)]).expect_code(1).stderr_has("cannot be pulled");
    assert!(!seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "the allowed pull never reached the registry");
    assert_eq!(leftovers(&name), Vec::<String>::new());

    // Files from outside the folder are not read: `.env` through a symlink, a compose file
    // named by the manifest outside the folder.
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secrets.env"), format!("TOKEN={secret}\n")).expect("write");
    let s = Subject::new(&name, "services:\n  a:\n    image: x\n", "");
    std::os::unix::fs::symlink(outside.path().join("secrets.env"), s.dir.join(".env")).expect("symlink");
    s.deploy(&["up"]).expect_code(1).stderr_has("outside the project folder");
    let s =
        Subject::new(&name, "services:\n  a:\n    image: x\n", "[deployment]\ncompose-file = \"../elsewhere.yaml\"\n");
    s.deploy(&["up"])
        .expect_code(1)
        .stderr_has("operator.toml:2: compose-file `../elsewhere.yaml` must stay inside the subject folder");
}

#[test]
fn streams_progress_and_log_lines_are_bounded() {
    let (_lock, name) = begin("e2e-flood");
    let hostile = |attack: &str| {
        let s = Subject::new(&name, &format!("services:\n  a:\n    image: x\nx-attack: {attack}\n"), HOSTILE_DRIVER);
        install_hostile_driver(&s.dir);
        s.deploy(&["up"])
    };
    hostile("stream-flood").expect_code(1).stderr_has(
        "opened 16 streams; then refused: DockerError::LimitExceeded(\"16 log and event streams are already open",
    );
    let r = hostile("progress-flood");
    r.expect_code(1).stderr_has("reports were not shown");
    let shown = r.stderr.lines().filter(|l| l.starts_with("task ")).count();
    assert!(shown <= 128, "{shown} progress tasks reached the terminal");

    // A container printing 4 MiB without a newline: the host hands it out in 64 KiB pieces.
    let compose = format!(
        "services:\n  flood:\n    image: {BUSYBOX}\n    entrypoint: [/bin/busybox, sh, -c, \"head -c 4194304 /dev/zero | tr '\\\\0' x\"]\n"
    );
    let s = Subject::new(&name, &compose, "");
    s.deploy(&["up"]).expect_code(0);
    wait_exited(&format!("{name}-flood-1"));
    let logs = s.deploy(&["logs", "--output", "json"]);
    logs.expect_code(0);
    let lines: Vec<Value> = logs.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let sizes: Vec<usize> = lines.iter().map(|l| l["line"].as_str().map(str::len).unwrap_or(0)).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 4 << 20, "every byte arrives");
    assert!(sizes.iter().all(|n| *n <= 64 * 1024), "a piece is over 64 KiB: {sizes:?}");
    assert_eq!(sizes.len(), 64);
    s.deploy(&["down"]).expect_code(0);
    scrub(&name);
}

#[test]
fn text_from_a_driver_cannot_drive_the_terminal() {
    let _lock = docker_lock();
    let name = format!("e2e-escape-{}", pid());
    let s = Subject::new(&name, "services:\n  a:\n    image: x\nx-attack: terminal-escape\n", HOSTILE_DRIVER);
    install_hostile_driver(&s.dir);
    for output in ["table", "json"] {
        let r = s.deploy(&["up", "--output", output]);
        r.expect_code(1);
        for raw in ['\u{1b}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(!r.stderr.contains(raw) && !r.stdout.contains(raw), "{raw:?} reached the terminal:\n{}", r.stderr);
        }
        r.stderr_has("\\x1b[2K\\x0d\\x1b[1Adeployment finished");
    }
    scrub(&name);
    // The URLs a manifest shows after `up` cannot carry control sequences either.
    let s = Subject::new(
        &name,
        "services:\n  a:\n    image: x\n",
        "[deployment.urls]\n\"grafana\\u001b[2K\" = \"http://127.0.0.1:3000/\"\n",
    );
    let r = s.deploy(&["status"]);
    r.expect_code(1).stderr_has("urls: `grafana\\x1b[2K` is not a name");
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
}

/// Stand-ins for the TiKV subject's images, built locally from the busybox image: they sleep
/// whatever their command line, and `curl`/`wget` succeed, so every healthcheck passes. Tagged
/// under a test-only version.
fn tikv_stand_in_images() -> Vec<(&'static str, String)> {
    let build = tempfile::tempdir().expect("tempdir");
    std::fs::write(build.path().join("ok"), "#!/bin/busybox sh\nexit 0\n").expect("write");
    std::fs::set_permissions(build.path().join("ok"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::write(
        build.path().join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nCOPY ok /shim/curl\nCOPY ok /shim/wget\nENV PATH=/shim:/bin\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"trap 'exit 0' TERM; /bin/busybox sleep 86400 & wait\", \"stand-in\"]\nCMD []\n"
        ),
    )
    .expect("write");
    let out = std::process::Command::new("docker")
        .args(["build", "--quiet", "-t", "operator/e2e-stand-in:1"])
        .arg(build.path())
        .output()
        .expect("docker build");
    assert!(out.status.success(), "building the stand-in image failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let env = vec![
        ("TIKV_VERSION", "operator-e2e".to_string()),
        ("PROMETHEUS_IMAGE", "operator/e2e-stand-in:1".to_string()),
        ("GRAFANA_IMAGE", "operator/e2e-stand-in:1".to_string()),
    ];
    for tag in ["pingcap/pd:operator-e2e", "pingcap/tikv:operator-e2e"] {
        docker(&["tag", "operator/e2e-stand-in:1", tag]);
    }
    env
}

#[test]
fn the_tikv_subject_deploys_through_the_scope_unchanged() {
    let (_lock, project) = begin("e2e-tikv");
    let mut env = tikv_stand_in_images();
    for port in ["PD_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT"] {
        env.push((port, String::new()));
    }
    // Below this machine's daemon limit (20000 here; TiKV's 1048576 needs a raised daemon).
    env.push(("TIKV_NOFILE", "16384".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tikv = |args: &[&str]| {
        let mut cmd = operator();
        cmd.args(["deploy", "local"]).args(args).args(["tikv", "-p", &project]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    tikv(&["up", "--wait", "--wait-timeout", "120s"]).expect_code(0).stdout_has("tikv3").stdout_has("healthy");
    let status: Value = serde_json::from_str(&tikv(&["status", "--output", "json"]).stdout).expect("json");
    let list = status.as_array().expect("array");
    assert_eq!(list.len(), 6, "{status}");
    assert!(list.iter().all(|s| s["health"] == "healthy"), "{status}");
    for s in list {
        let ports = s["ports"].as_array().expect("ports");
        assert!(ports.iter().all(|p| p.as_str().is_some_and(|p| p.starts_with("127.0.0.1:"))), "{s}");
    }
    // The open-file limit TiKV asks for, granted by the subject's manifest.
    let ulimits = docker(&["inspect", "-f", "{{json .HostConfig.Ulimits}}", &format!("{project}-tikv1-1")]);
    assert!(ulimits.contains("\"Name\":\"nofile\"") && ulimits.contains("16384"), "{ulimits}");
    tikv(&["down", "--volumes"]).expect_code(0);
    assert_eq!(leftovers(&project), Vec::<String>::new());
    for tag in ["pingcap/pd:operator-e2e", "pingcap/tikv:operator-e2e", "operator/e2e-stand-in:1"] {
        docker(&["rmi", tag]);
    }
}

#[test]
fn a_bind_changed_after_up_is_not_mounted_by_a_restart() {
    let (_lock, name) = begin("e2e-swap");
    let compose =
        format!("services:\n  a:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n    volumes: [\"./conf:/conf:ro\"]\n");
    let s = Subject::new(&name, &compose, "");
    std::fs::create_dir(s.dir.join("conf")).expect("mkdir");
    s.deploy(&["up"]).expect_code(0);
    // An update of the subject folder turns `conf` into the Docker socket's folder.
    std::fs::rename(s.dir.join("conf"), s.dir.join("conf.old")).expect("mv");
    std::os::unix::fs::symlink("/run", s.dir.join("conf")).expect("symlink");
    s.deploy(&["restart"])
        .expect_code(1)
        .stderr_has("now resolves to /run: it changed since the container was created");
    docker(&["stop", "-t", "0", &format!("{name}-a-1")]);
    s.deploy(&["up"]).expect_code(1).stderr_has("changed since the container was created");
    let state = docker(&["inspect", "-f", "{{.State.Status}}", &format!("{name}-a-1")]);
    assert_eq!(state.trim(), "exited", "the container was started with the swapped bind");
    s.deploy(&["down"]).expect_code(0);
    assert_eq!(leftovers(&name), Vec::<String>::new());
}

#[test]
fn a_subject_of_the_same_name_elsewhere_does_not_get_the_project() {
    let (_lock, name) = begin("e2e-twin");
    let compose = format!("services:\n  a:\n    image: {BUSYBOX}\n    entrypoint: {SLEEP}\n");
    let trusted = Subject::new(&name, &compose, "");
    trusted.deploy(&["up"]).expect_code(0);
    let twin = Subject::new(&name, &compose, HOSTILE_DRIVER);
    install_hostile_driver(&twin.dir);
    twin.deploy(&["status"])
        .expect_code(1)
        .stderr_has(&format!("project {name} was deployed from {}, not from this subject", trusted.dir.display()));
    // A driver the manifest names outside its folder is not loaded.
    let outside = Subject::new(&name, &compose, "[deployment]\ndriver = \"/etc/hostname\"\n");
    outside.deploy(&["status"]).expect_code(1).stderr_has("outside the subject folder");
    trusted.deploy(&["down"]).expect_code(0);
    assert_eq!(leftovers(&name), Vec::<String>::new());
}
