//! `operator deploy local ...` against the real Docker engine: the etcd subject end to end,
//! the failures that must leave nothing behind, and a hostile driver against the scoped
//! Docker capability.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;

use crate::harness::{Run, etcd_component, http_post, operator, root, run, test_component};

/// Docker tests share one engine (and two cores): one at a time.
pub fn docker_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The etcd subject's images, built once from Debian's binaries.
pub fn etcd_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(root().join("subjects/etcd/build-images")).output().expect("run build-images");
        assert!(out.status.success(), "build-images failed:\n{}", String::from_utf8_lossy(&out.stderr));
    });
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything (containers, networks, volumes) labelled with `project`.
pub fn leftovers(project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    let mut all = Vec::new();
    for kind in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["network", "ls", "--format", "{{.Name}}"],
        &["volume", "ls", "--format", "{{.Name}}"],
    ] {
        let mut args: Vec<&str> = kind.to_vec();
        args.extend(["--filter", &filter]);
        all.extend(docker(&args).lines().filter(|l| !l.is_empty()).map(String::from));
    }
    all
}

/// Removes whatever a test left (so one failure does not cascade).
pub fn scrub(project: &str) {
    let filter = format!("label=com.docker.compose.project={project}");
    for id in docker(&["ps", "-aq", "--filter", &filter]).lines() {
        docker(&["rm", "-f", id]);
    }
    for id in docker(&["network", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["network", "rm", id]);
    }
    for id in docker(&["volume", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["volume", "rm", "-f", id]);
    }
}

/// `operator deploy local <args>` for the etcd subject with free host ports.
fn etcd(project: &str, args: &[&str]) -> Run {
    let mut cmd = operator();
    cmd.args(["deploy", "local"]).args(args).args(["etcd", "-p", project]);
    for v in ["ETCD1_PORT", "ETCD2_PORT", "ETCD3_PORT", "ETCD_PROMETHEUS_PORT"] {
        cmd.env(v, "");
    }
    run(&mut cmd)
}

fn host_port(status: &Value, service: &str) -> u16 {
    let s = status.as_array().expect("array").iter().find(|s| s["service"] == service).expect("service");
    let port = s["ports"][0].as_str().expect("a published port");
    port.split("->").next().and_then(|p| p.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("host port")
}

#[test]
fn etcd_comes_up_healthy_with_a_quorum_and_down_leaves_nothing() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-etcd-{}", std::process::id());
    scrub(&project);

    etcd(&project, &["up", "--wait", "--wait-timeout", "120s"])
        .expect_code(0)
        .stdout_has("etcd1")
        .stdout_has("healthy");
    let status: Value = serde_json::from_str(&etcd(&project, &["status", "--output", "json"]).stdout).expect("json");
    assert_eq!(status.as_array().map(Vec::len), Some(4));
    // Published on loopback only: the manifest grants no other interface.
    for s in status.as_array().expect("array") {
        let ports = s["ports"].as_array().expect("ports");
        assert!(ports.iter().all(|p| p.as_str().is_some_and(|p| p.starts_with("127.0.0.1:"))), "{s}");
    }
    assert!(status.as_array().expect("array").iter().all(|s| s["health"] == "healthy"), "{status}");

    // A real quorum: write through one member, read through another.
    let (_, put) = http_post(host_port(&status, "etcd1"), "/v3/kv/put", r#"{"key":"b3BlcmF0b3I=","value":"d29ya3M="}"#);
    assert!(put.contains("\"revision\""), "{put}");
    let (_, get) = http_post(host_port(&status, "etcd3"), "/v3/kv/range", r#"{"key":"b3BlcmF0b3I="}"#);
    assert!(get.contains("d29ya3M="), "{get}");

    // The Python adapter observes and acts on the deployed cluster.
    subject_on_deployed_etcd(&status);

    // docker-compose sees the same containers.
    let file = root().join("subjects/etcd/docker-compose.yaml");
    let ps = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["-p", &project, "ps"])
        .output()
        .expect("docker-compose ps");
    let ps = String::from_utf8_lossy(&ps.stdout);
    for n in 1..=3 {
        assert!(ps.contains(&format!("{project}-etcd{n}-1")), "{ps}");
    }

    etcd(&project, &["logs", "--service", "etcd1", "--tail", "5"]).expect_code(0).stdout_has("etcd1-1");
    mcp_sees_the_deployment(&project);
    let ids_before = docker(&["ps", "-q", "--filter", &format!("label=com.docker.compose.project={project}")]);
    etcd(&project, &["restart", "--service", "etcd2"]).expect_code(0);
    etcd(&project, &["up", "--wait"]).expect_code(0);
    let ids_after = docker(&["ps", "-q", "--filter", &format!("label=com.docker.compose.project={project}")]);
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ids_before), sorted(&ids_after), "up again reused every container");

    etcd(&project, &["down", "--volumes"]).expect_code(0);
    assert_eq!(leftovers(&project), Vec::<String>::new());
}

/// `operator mcp`'s deployment tools on the running project: its services and their output.
fn mcp_sees_the_deployment(project: &str) {
    use crate::mcp::{Mode, Person, session_env};
    let dir = tempfile::tempdir().expect("tempdir");
    let args =
        ["--subject".to_string(), "etcd".into(), "--audit".into(), dir.path().join("a.jsonl").display().to_string()];
    let r = session_env(
        Mode::Auto,
        Person::Absent,
        &args,
        serde_json::json!([
            {"tool": "deployment_status", "args": {"subject": "etcd"}},
            {"tool": "deployment_logs", "args": {"subject": "etcd", "service": "etcd1", "tail": 5}},
        ]),
        &[("COMPOSE_PROJECT_NAME", project)],
    );
    assert_eq!(r[0]["structured"]["project"], project, "{}", r[0]);
    let services = r[0]["structured"]["services"].as_array().expect("services");
    assert_eq!(services.len(), 4, "{}", r[0]);
    assert!(services.iter().all(|s| s["health"] == "healthy"), "{}", r[0]);
    let lines = r[1]["structured"]["lines"].as_array().expect("lines");
    assert!(!lines.is_empty() && lines.len() <= 5, "{}", r[1]);
    assert!(lines.iter().all(|l| l["service"] == "etcd1"), "{}", r[1]);
}

/// `operator subject etcd` against the deployed cluster: three members, one leader, and a
/// leader transfer the next observation shows.
fn subject_on_deployed_etcd(status: &Value) {
    etcd_component();
    let mut endpoints = Vec::new();
    for service in ["etcd1", "etcd2", "etcd3", "prometheus"] {
        endpoints.push("--endpoint".to_string());
        endpoints.push(format!("{service}=http://127.0.0.1:{}", host_port(status, service)));
    }
    let subject = |args: &[&str]| -> Value {
        let r = run(operator().args(["subject", "etcd"]).args(args).args(["--output", "json"]).args(&endpoints));
        r.expect_code(0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
    };
    // The healthcheck says a member is live, not that a quorum formed: wait for the leader.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let stores = loop {
        let stores = subject(&["stores"]);
        let leaders = stores.as_array().expect("array").iter().filter(|s| s["leader_count"] == 1).count();
        if leaders == 1 || std::time::Instant::now() >= deadline {
            break stores;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let list = stores.as_array().expect("array");
    assert_eq!(list.len(), 3, "{stores}");
    assert!(list.iter().all(|s| s["state"] == "up"), "{stores}");
    let leaders: Vec<&Value> = list.iter().filter(|s| s["leader_count"] == 1).collect();
    assert_eq!(leaders.len(), 1, "{stores}");
    let leader = leaders[0]["id"].as_u64().expect("id");
    let follower = list.iter().filter_map(|s| s["id"].as_u64()).find(|id| *id != leader).expect("a follower");
    let moved = subject(&["transfer-leader", "1", &follower.to_string()]);
    assert_eq!(moved["confirmed"], true, "{moved}");
    let stores = subject(&["stores"]);
    let now_leading: Vec<u64> = stores
        .as_array()
        .expect("array")
        .iter()
        .filter(|s| s["leader_count"] == 1)
        .filter_map(|s| s["id"].as_u64())
        .collect();
    assert_eq!(now_leading, vec![follower], "{stores}");
    let metrics = subject(&["metrics"]);
    assert_eq!(metrics["store_count"], 3, "{metrics}");
}

/// A project folder with one compose file.
pub fn project_dir(compose: &str, manifest: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let subjects = tempfile::tempdir().expect("tempdir");
    let dir = subjects.path().join("case");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("docker-compose.yaml"), compose).expect("write");
    std::fs::write(dir.join("operator.toml"), manifest.unwrap_or("")).expect("write");
    (subjects, dir)
}

/// The manifest line that makes the hostile driver a subject's driver (see [`install_hostile_driver`]).
pub const HOSTILE_DRIVER: &str = "[deployment]\ndriver = \"hostile-driver.wasm\"\n";

/// Copies the hostile driver into a subject folder (a manifest names drivers inside its folder).
pub fn install_hostile_driver(dir: &Path) {
    std::fs::copy(test_component("hostile-driver"), dir.join("hostile-driver.wasm")).expect("copy the driver");
}

pub fn deploy_case(subjects: &Path, project: &str, args: &[&str]) -> Run {
    run(operator()
        .arg("--subjects-dir")
        .arg(subjects)
        .args(["deploy", "local"])
        .args(args)
        .args(["case", "-p", project]))
}

#[test]
fn a_missing_image_fails_before_creating_anything() {
    let _lock = docker_lock();
    let project = format!("e2e-missing-{}", std::process::id());
    let (subjects, _) = project_dir("services:\n  a:\n    image: operator/does-not-exist:1\n", None);
    deploy_case(subjects.path(), &project, &["up", "--wait"])
        .expect_code(1)
        .stderr_has("image operator/does-not-exist:1 is not present and cannot be pulled");
    assert_eq!(leftovers(&project), Vec::<String>::new());
}

#[test]
fn a_service_that_never_becomes_healthy_times_out_and_is_rolled_back() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-unhealthy-{}", std::process::id());
    let compose = r#"
services:
  sick:
    image: operator/etcd:3.4.23-debian
    command: ["etcd", "--data-dir=/tmp/d"]
    healthcheck:
      test: ["CMD", "etcdctl", "--endpoints=http://127.0.0.1:1", "--dial-timeout=200ms", "endpoint", "health"]
      interval: 1s
      retries: 1000
volumes:
  data:
"#;
    let (subjects, _) = project_dir(compose, None);
    deploy_case(subjects.path(), &project, &["up", "--wait-timeout", "6s"])
        .expect_code(1)
        .stderr_has("error: timeout: application not healthy after 6s");
    assert_eq!(leftovers(&project), Vec::<String>::new());
    scrub(&project);
}

#[test]
fn a_dependency_exiting_non_zero_fails_its_dependent_and_is_rolled_back() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-depfail-{}", std::process::id());
    let compose = r#"
services:
  job:
    image: operator/etcd:3.4.23-debian
    command: ["etcdctl", "--endpoints=http://127.0.0.1:1", "--dial-timeout=200ms", "get", "x"]
  app:
    image: operator/etcd:3.4.23-debian
    command: ["etcd", "--data-dir=/tmp/d"]
    depends_on:
      job:
        condition: service_completed_successfully
"#;
    let (subjects, _) = project_dir(compose, None);
    deploy_case(subjects.path(), &project, &["up", "--wait-timeout", "60s"]).expect_code(1).stderr_has(
        "error: unhealthy: dependency failed to start: service \"job\" didn't complete successfully: exit 1",
    );
    assert_eq!(leftovers(&project), Vec::<String>::new());
    scrub(&project);
}

#[test]
fn an_invalid_compose_file_gives_file_line_and_reason() {
    let _lock = docker_lock();
    let project = format!("e2e-invalid-{}", std::process::id());
    let (subjects, dir) = project_dir("services:\n  a:\n    image: x\n    ports:\n      - \"80:eighty\"\n", None);
    let file = dir.join("docker-compose.yaml").canonicalize().expect("path");
    deploy_case(subjects.path(), &project, &["up"]).expect_code(1).stderr_has(&format!(
        "error: invalid-project: {}:5: services.a.ports: `80:eighty` is not a port mapping",
        file.display()
    ));
    let (subjects, dir) = project_dir("services:\n  a:\n    image: [x\n", None);
    let file = dir.join("docker-compose.yaml").canonicalize().expect("path");
    deploy_case(subjects.path(), &project, &["up"])
        .expect_code(1)
        .stderr_has(&format!("error: invalid-project: {}: line 3 column 12: unclosed bracket", file.display()));
    assert_eq!(leftovers(&project), Vec::<String>::new());
}

#[test]
fn an_unreachable_daemon_is_a_clear_error() {
    let (subjects, _) = project_dir("services:\n  a:\n    image: x\n", None);
    let r = run(operator()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("--subjects-dir")
        .arg(subjects.path())
        .args(["deploy", "local", "up", "case"]));
    r.expect_code(1)
        .stderr_has("cannot reach the Docker daemon at unix:///nonexistent/docker.sock")
        .stderr_has("is Docker running");
}

#[test]
fn a_hostile_driver_cannot_leave_its_project() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-hostile-{}", std::process::id());
    let foreign = format!("operator-e2e-foreign-{}", std::process::id());
    let foreign_network = format!("{project}_sneaky");
    docker(&["rm", "-f", &foreign]);
    docker(&["create", "--name", &foreign, "operator/etcd:3.4.23-debian"]);
    docker(&["network", "create", &foreign_network]);
    let manifest = HOSTILE_DRIVER.to_string();

    let attack_with = |name: &str, target: &str, grants: &str| {
        let compose = format!("services:\n  a:\n    image: x\nx-attack: {name}\nx-target: {target}\n");
        let (subjects, dir) = project_dir(&compose, Some(&format!("{manifest}{grants}")));
        install_hostile_driver(&dir);
        deploy_case(subjects.path(), &project, &["up"])
    };
    let attack = |name: &str, target: &str| attack_with(name, target, "");
    // (attack, what the refusal says, the exact grant the hint names; "" when none can allow it)
    let denied = [
        ("privileged", "privileged containers are not granted", "privileged = true"),
        ("host-network", "network_mode host is not granted", "host-network = true"),
        ("host-pid", "pid host is not granted", "host-pid = true"),
        ("cap-add", "added capabilities \"SYS_ADMIN\" are not granted", "cap-add = [\"SYS_ADMIN\"]"),
        ("device", "devices \"/dev/kmsg\" are not granted", "devices = [\"/dev/kmsg\"]"),
        ("docker-socket", "mounting the Docker socket", "docker-socket = true"),
        ("host-path", "bind mount of /etc is outside the project folder", "host-paths = [\"/etc\"]"),
        ("relative-escape", "bind mount of /etc is outside the project folder", "host-paths = [\"/etc\"]"),
        ("publish-everywhere", "publishing port 2379 on 0.0.0.0", "publish-addresses = [\"0.0.0.0\"]"),
        ("low-port", "host port 80 is below 1024", "low-ports = true"),
        ("ulimit", "ulimit `nofile` is not granted", "ulimits = [\"nofile\"]"),
        ("extra-hosts", "extra host registry", "extra-hosts = true"),
        (
            "restart-always",
            "restart `always` restarts the container whenever the Docker daemon starts",
            "restart-always = true",
        ),
        ("tool-label", "label `traefik.enable` is namespaced", "labels = [\"traefik.enable\"]"),
    ];
    for (name, reason, grant) in denied {
        let r = attack(name, "");
        r.expect_code(1).stderr_has("error: docker: denied:").stderr_has(reason);
        r.stderr_has(&format!("hint: add `{grant}`"));
    }
    // Refusals no grant can lift, each saying why.
    for (name, said) in [
        ("rw-subject", "is in the subject folder, which is never bound read-write"),
        ("rw-manifest", "is in the subject folder, which is never bound read-write"),
    ] {
        let r = attack(name, "");
        r.expect_code(1).stderr_has(said).stderr_has("hint: mount it read-only");
        assert!(!r.stderr.contains("writable-paths"), "a grant was suggested for the subject folder: {}", r.stderr);
    }
    attack("spoof-label", "").expect_code(1).stderr_has("label `com.docker.compose.project` is reserved for the host");
    attack("owner-label", "").expect_code(1).stderr_has("label `dev.operator.project` is reserved for the host");
    attack("colon-target", "").expect_code(1).stderr_has("mount target `/mnt:/host` must be an absolute path without");
    attack("no-network", "").expect_code(1).stderr_has("joins at least one project network");
    attack("undeclared-volume", "")
        .expect_code(1)
        .stderr_has("volume `never-created` does not exist in project")
        .stderr_has("create it first");
    attack("pull", "127.0.0.1:1/x:1")
        .expect_code(1)
        .stderr_has("registry 127.0.0.1:1 is not allowed")
        .stderr_has("hint: add `registries = [\"127.0.0.1:1\"]` to [deployment]");
    // Granting the socket's folder as a host path does not hand over the socket.
    for folder in ["/run", "/var/run", "/"] {
        let r = attack_with("socket-folder", folder, &format!("[deployment.docker]\nhost-paths = [\"{folder}\"]\n"));
        r.expect_code(1)
            .stderr_has("would hand the container the whole engine")
            .stderr_has("hint: add `docker-socket = true`");
    }

    // The check-then-mount race: one container may write `data`, so nothing inside it is bound.
    let compose = "services:\n  a:\n    image: x\nx-attack: inside-writable\n";
    let grants = format!("{manifest}[deployment.docker]\nwritable-paths = [\"data\"]\n");
    let (subjects, dir) = project_dir(compose, Some(&grants));
    install_hostile_driver(&dir);
    std::fs::create_dir_all(dir.join("data/d")).expect("mkdir");
    let r = deploy_case(subjects.path(), &project, &["up"]);
    r.expect_code(1)
        .stderr_has("writer: DeployError::Docker(\"ALLOWED")
        .stderr_has("which containers of this project can write");
    docker(&["rm", "-f", &format!("{project}-writer-1")]);
    // A volume of another project under this project's name.
    let squatted = format!("{project}_squat");
    docker(&["volume", "create", "--label", "com.docker.compose.project=someone-else", &squatted]);
    attack("squat-volume", "squat")
        .expect_code(1)
        .stderr_has(&format!("a volume named {squatted} exists but is not project {project}'s"));
    attack("remove-foreign-volume", "squat").expect_code(1).stderr_has("NotFound(\"no volume `squat`");
    assert!(docker(&["volume", "ls", "-q"]).lines().any(|v| v == squatted), "the foreign volume was removed");
    docker(&["volume", "rm", &squatted]);

    // Taking a foreign container's name, or its ID, reveals and reaches nothing.
    let foreign_id = docker(&["inspect", "-f", "{{.Id}}", &foreign]).trim().to_string();
    let r = attack("named", &foreign);
    r.expect_code(1).stderr_has(&format!("the name {foreign} is taken by a container outside project {project}"));
    assert!(!r.stderr.contains(&foreign_id), "the daemon's message leaked the foreign ID: {}", r.stderr);
    attack("named", &foreign_id).expect_code(1).stderr_has("reads as a container ID");

    let r = attack("list-foreign", "");
    r.expect_code(1).stderr_has("saw: [");
    assert!(!r.stderr.contains(&foreign), "the driver saw a foreign container: {}", r.stderr);
    for a in ["inspect-foreign", "stop-foreign", "remove-foreign", "restart-foreign", "logs-foreign"] {
        attack(a, &foreign)
            .expect_code(1)
            .stderr_has(&format!("NotFound(\"no container `{foreign}` in project {project}\")"));
    }
    attack("remove-foreign-network", "sneaky").expect_code(1).stderr_has("NotFound(\"no network `sneaky`");

    // Everything outside the project is as it was; the project holds only the network the
    // attacks made their containers join.
    assert!(
        docker(&["ps", "-a", "--format", "{{.Names}}"]).lines().any(|n| n == foreign),
        "the foreign container is gone"
    );
    assert!(docker(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|n| n == foreign_network));
    assert_eq!(leftovers(&project), vec![format!("{project}_default")]);
    scrub(&project);
    docker(&["rm", "-f", &foreign]);
    docker(&["network", "rm", &foreign_network]);
}

#[test]
fn an_interrupted_up_is_cleaned_by_down_even_without_the_compose_file() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-interrupt-{}", std::process::id());
    scrub(&project);
    // A copy of the etcd subject, so its compose file can be taken away afterwards.
    let subjects = tempfile::tempdir().expect("tempdir");
    let dir = subjects.path().join("case");
    std::fs::create_dir(&dir).expect("mkdir");
    for f in ["docker-compose.yaml", "prometheus.yml", "operator.toml"] {
        std::fs::copy(root().join("subjects/etcd").join(f), dir.join(f)).expect("copy");
    }
    let mut cmd = operator();
    cmd.arg("--subjects-dir").arg(subjects.path()).args(["deploy", "local", "up", "case", "--wait", "-p", &project]);
    for v in ["ETCD1_PORT", "ETCD2_PORT", "ETCD3_PORT", "ETCD_PROMETHEUS_PORT"] {
        cmd.env(v, "");
    }
    let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    // Interrupt once the project has containers.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while docker(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={project}")]).trim().is_empty() {
        assert!(std::time::Instant::now() < give_up, "up never created a container");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted: run `operator deploy local down"), "{stderr}");
    assert!(!leftovers(&project).is_empty());

    std::fs::remove_file(dir.join("docker-compose.yaml")).expect("remove");
    deploy_case(subjects.path(), &project, &["down", "--volumes"]).expect_code(0);
    assert_eq!(leftovers(&project), Vec::<String>::new());
}

/// `deploy local` in a plain folder (no subject) grants nothing by itself: an operator.toml
/// beside the compose file is the folder author's, so it applies only when the user names it with
/// --manifest; a denial says how.
#[test]
fn a_plain_folders_manifest_grants_only_when_the_user_names_it() {
    let _lock = docker_lock();
    etcd_images();
    let project = format!("e2e-plain-{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("plain");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(
        folder.join("compose.yaml"),
        "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n    privileged: true\n",
    )
    .expect("write");
    let manifest = folder.canonicalize().expect("canonical").join("operator.toml");
    // The folder's author grants itself `privileged`: not used unless named.
    std::fs::write(&manifest, "[deployment.docker]\nprivileged = true\n").expect("write");
    let up = |extra: &[&str]| {
        run(operator().current_dir(&folder).args(["deploy", "local", "up", "-p", &project]).args(extra))
    };
    up(&[])
        .expect_code(1)
        .stderr_has("note: this folder's operator.toml is not used")
        .stderr_has("privileged containers are not granted")
        .stderr_has(&format!("of a manifest ({}) and name it with --manifest", manifest.display()));
    assert_eq!(leftovers(&project), Vec::<String>::new());

    // Named, it is the user's: its grants and its hints apply.
    std::fs::write(&manifest, "[deployment.docker]\n").expect("write");
    up(&["--manifest", "operator.toml"])
        .expect_code(1)
        .stderr_has(&format!("add `privileged = true` to [deployment.docker] in {}", manifest.display()));
    assert_eq!(leftovers(&project), Vec::<String>::new());
    scrub(&project);
}
