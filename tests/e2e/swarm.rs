//! `operator deploy swarm ...` on a real single-node Docker Swarm: the etcd subject end to end
//! (a quorum, the adapter on it, a member restarted after its leader moved away, an idempotent
//! second `up`, a `down` that leaves nothing), the failures that must leave nothing behind, and
//! a hostile Swarm driver against the stack-scoped capability.
//!
//! Each test joins the engine to a swarm if it is in none, and leaves it only if it made it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{docker, docker_lock, etcd_images, project_dir};
use crate::harness::{Run, etcd_component, free_ports, http_post, operator, run, test_component};

/// The engine as a single-node swarm for one test: made if there was none, left again after.
struct SwarmNode {
    created: bool,
    gateway_before: bool,
}

fn state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim().to_string()
}

fn gateway() -> bool {
    docker(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|n| n == "docker_gwbridge")
}

impl SwarmNode {
    fn join() -> SwarmNode {
        let gateway_before = gateway();
        if state() == "active" {
            return SwarmNode { created: false, gateway_before };
        }
        let out = Command::new("docker")
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .output()
            .expect("docker swarm init");
        assert!(out.status.success(), "docker swarm init failed: {}", String::from_utf8_lossy(&out.stderr));
        SwarmNode { created: true, gateway_before }
    }
}

impl Drop for SwarmNode {
    fn drop(&mut self) {
        if self.created {
            docker(&["swarm", "leave", "--force"]);
            if !self.gateway_before {
                docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
}

/// Everything (services, containers, networks, volumes) labelled with `stack`.
fn stack_leftovers(stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let mut all = Vec::new();
    for kind in [
        &["service", "ls", "--format", "{{.Name}}"][..],
        &["ps", "-a", "--format", "{{.Names}}"],
        &["network", "ls", "--format", "{{.Name}}"],
        &["volume", "ls", "--format", "{{.Name}}"],
    ] {
        let mut args: Vec<&str> = kind.to_vec();
        args.extend(["--filter", &filter]);
        all.extend(docker(&args).lines().filter(|l| !l.is_empty()).map(String::from));
    }
    all
}

/// Removes whatever a test left in `stack` (so one failure does not cascade).
fn scrub_stack(stack: &str) {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    for s in docker(&["service", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["service", "rm", s]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker(&["ps", "-aq", "--filter", &filter]).trim().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    for n in docker(&["network", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["network", "rm", n]);
    }
    for v in docker(&["volume", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["volume", "rm", "-f", v]);
    }
}

/// `operator deploy swarm <args> etcd -p <stack>` with the members on `ports`.
fn etcd(stack: &str, ports: &[u16], args: &[&str]) -> Run {
    let mut cmd = operator();
    cmd.args(["deploy", "swarm"]).args(args).args(["etcd", "-p", stack]);
    for (v, p) in ["ETCD1_PORT", "ETCD2_PORT", "ETCD3_PORT", "ETCD_PROMETHEUS_PORT"].iter().zip(ports) {
        cmd.env(v, p.to_string());
    }
    run(&mut cmd)
}

fn endpoints(ports: &[u16]) -> Vec<String> {
    ["etcd1", "etcd2", "etcd3", "prometheus"]
        .iter()
        .zip(ports)
        .flat_map(|(name, p)| ["--endpoint".to_string(), format!("{name}=http://127.0.0.1:{p}")])
        .collect()
}

fn subject(ports: &[u16], args: &[&str]) -> Value {
    let r = run(operator().args(["subject", "etcd"]).args(args).args(["--output", "json"]).args(endpoints(ports)));
    r.expect_code(0);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
}

/// The members once three are up with one leader (a quorum forms shortly after the members
/// are live); returns them and the leader's service.
fn quorum(ports: &[u16]) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stores = subject(ports, &["stores"]);
        let list = stores.as_array().expect("array").clone();
        let leaders: Vec<&Value> = list.iter().filter(|s| s["leader_count"] == 1).collect();
        if list.len() == 3 && list.iter().all(|s| s["state"] == "up") && leaders.len() == 1 {
            let address = leaders[0]["address"].as_str().expect("address");
            let service = address.split(':').next().expect("host").to_string();
            return (stores, service);
        }
        assert!(Instant::now() < deadline, "no quorum: {stores}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn versions(stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let mut v: Vec<String> = docker(&["service", "ls", "-q", "--filter", &filter])
        .lines()
        .map(|id| docker(&["service", "inspect", "--format", "{{.Spec.Name}} {{.Version.Index}}", id]).trim().into())
        .collect();
    v.sort();
    v
}

#[test]
fn swarm_etcd_comes_up_with_a_quorum_restarts_a_member_after_moving_its_leader_and_down_leaves_nothing() {
    let _lock = docker_lock();
    etcd_images();
    etcd_component();
    let _swarm = SwarmNode::join();
    let stack = format!("e2e-swarm-{}", std::process::id());
    scrub_stack(&stack);
    let ports = free_ports(4);
    // The subject's file asks for host-mode ports (`x-operator-swarm`): no flag needed.
    let up = ["up", "--wait", "--wait-timeout", "180s"];

    etcd(&stack, &ports, &up).expect_code(0).stdout_has("1/1 running").stdout_has("(host)");
    let status: Value =
        serde_json::from_str(&etcd(&stack, &ports, &["status", "--output", "json"]).stdout).expect("json");
    let services = status.as_array().expect("array");
    assert_eq!(services.len(), 4, "{status}");
    assert!(services.iter().all(|s| s["state"] == "1/1 running" && s["health"] == "healthy"), "{status}");
    let etcd1 = services.iter().find(|s| s["service"] == "etcd1").expect("etcd1");
    assert_eq!(etcd1["container"], format!("{stack}_etcd1"));
    assert_eq!(etcd1["ports"][0], format!("*:{}->2379/tcp (host)", ports[0]), "{etcd1}");
    // `docker stack` sees the stack.
    assert_eq!(docker(&["stack", "ps", &stack, "-q"]).lines().count(), 4);

    // A real quorum, seen by the adapter and by a write through one member read through another.
    let (stores, leader) = quorum(&ports);
    assert_eq!(stores.as_array().map(Vec::len), Some(3));
    let (_, put) = http_post(ports[0], "/v3/kv/put", r#"{"key":"c3dhcm0=","value":"d29ya3M="}"#);
    assert!(put.contains("\"revision\""), "{put}");
    let (_, get) = http_post(ports[2], "/v3/kv/range", r#"{"key":"c3dhcm0="}"#);
    assert!(get.contains("d29ya3M="), "{get}");

    let logs = etcd(&stack, &ports, &["logs", "--service", "etcd1", "--tail", "3"]);
    logs.expect_code(0).stdout_has("etcd1");
    assert!(logs.stdout.lines().all(|l| l.starts_with("etcd1")), "{}", logs.stdout);

    // A second `up` changes nothing.
    let before = versions(&stack);
    etcd(&stack, &ports, &up).expect_code(0).stderr_has("up to date");
    assert_eq!(versions(&stack), before);

    // The leader's member restarts only after its leadership moved away.
    let tasks = |service: &str| docker(&["service", "ps", "-q", &format!("{stack}_{service}")]).lines().count();
    let mut args = vec!["restart", "--service", &leader];
    let extra = endpoints(&ports);
    args.extend(extra.iter().map(String::as_str));
    let r = etcd(&stack, &ports, &args);
    r.expect_code(0).stderr_has(&format!("Leaders {leader}")).stderr_has("moving 1 leaders off store");
    assert_eq!(tasks(&leader), 2, "the member's task was not replaced");
    let (_, now) = quorum(&ports);
    assert_ne!(now, leader, "the restarted member leads again at once");
    let (_, get) = http_post(ports[1], "/v3/kv/range", r#"{"key":"c3dhcm0="}"#);
    assert!(get.contains("d29ya3M="), "the data did not survive: {get}");

    etcd(&stack, &ports, &["down", "--volumes"]).expect_code(0);
    assert_eq!(stack_leftovers(&stack), Vec::<String>::new());
    etcd(&stack, &ports, &["down"]).expect_code(0);
}

/// A case folder's stack: `operator --subjects-dir <subjects> deploy swarm <args> case -p <stack>`.
fn swarm_case(subjects: &Path, stack: &str, args: &[&str]) -> Run {
    run(operator().arg("--subjects-dir").arg(subjects).args(["deploy", "swarm"]).args(args).args(["case", "-p", stack]))
}

#[test]
fn swarm_failures_name_swarms_reason_and_leave_nothing() {
    let _lock = docker_lock();
    etcd_images();
    let _swarm = SwarmNode::join();
    let pid = std::process::id();
    let cases = [
        (
            "missing",
            "services:\n  a:\n    image: operator/does-not-exist:1\n".to_string(),
            "No such image: operator/does-not-exist:1",
        ),
        (
            "unplaceable",
            "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n    deploy:\n      placement:\n        \
             constraints: [\"node.labels.zone == mars\"]\n"
                .to_string(),
            "no suitable node",
        ),
        (
            "sick",
            "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n    healthcheck:\n      test: [\"CMD\", \
             \"false\"]\n      interval: 1s\n      retries: 1\n    deploy:\n      restart_policy:\n        delay: 1s\n"
                .to_string(),
            "keeps failing",
        ),
    ];
    for (name, compose, said) in cases {
        let stack = format!("e2e-swarm-{name}-{pid}");
        scrub_stack(&stack);
        let (subjects, _) = project_dir(&compose, None);
        let r = swarm_case(subjects.path(), &stack, &["up", "--wait", "--wait-timeout", "120s"]);
        r.expect_code(1).stderr_has(said);
        assert_eq!(stack_leftovers(&stack), Vec::<String>::new(), "{name} leaked");
    }

    // A compose project's volume of the same name is another owner's: not adopted, nothing made.
    let stack = format!("e2e-swarm-owned-{pid}");
    scrub_stack(&stack);
    let volume = format!("{stack}_data");
    docker(&["volume", "create", "--label", &format!("com.docker.compose.project={stack}"), &volume]);
    let compose = "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n    volumes: [\"data:/data\"]\nvolumes:\n  \
                   data:\n";
    let (subjects, _) = project_dir(compose, None);
    swarm_case(subjects.path(), &stack, &["up"])
        .expect_code(1)
        .stderr_has(&format!("a volume named {volume} exists but is not stack {stack}'s"))
        .stderr_has(&format!("it belongs to compose project {stack}"));
    assert_eq!(stack_leftovers(&stack), Vec::<String>::new());
    assert!(docker(&["volume", "ls", "-q"]).lines().any(|v| v == volume), "the compose volume was touched");
    docker(&["volume", "rm", &volume]);

    // A folder named like a template would become `/` on the node: refused before anything runs.
    let stack = format!("e2e-swarm-template-{pid}");
    let compose = "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n    volumes:\n      - './{{\"\\x2f..\\x2f..\"}}:/host:ro'\n";
    let (subjects, dir) = project_dir(compose, None);
    std::fs::create_dir(dir.join("{{\"\\x2f..\\x2f..\"}}")).expect("mkdir");
    swarm_case(subjects.path(), &stack, &["up"]).expect_code(1).stderr_has("which Swarm would expand as a template");
    assert_eq!(stack_leftovers(&stack), Vec::<String>::new());

    // A subject of the same name in another folder does not get the stack (without -p).
    scrub_stack("case");
    let simple = "services:\n  a:\n    image: operator/etcd:3.4.23-debian\n";
    let (mine, _) = project_dir(simple, None);
    let (theirs, _) = project_dir(simple, None);
    let in_folder = |subjects: &Path, args: &[&str]| {
        run(operator().arg("--subjects-dir").arg(subjects).args(["deploy", "swarm"]).args(args).arg("case"))
    };
    in_folder(mine.path(), &["up", "--wait", "--wait-timeout", "60s"]).expect_code(0);
    in_folder(theirs.path(), &["down", "--volumes"])
        .expect_code(1)
        .stderr_has("stack case was deployed from")
        .stderr_has("pass -p case to act on it from here");
    assert_eq!(
        docker(&["service", "ls", "-q", "--filter", "label=com.docker.stack.namespace=case"]).lines().count(),
        1
    );
    in_folder(mine.path(), &["down", "--volumes"]).expect_code(0);
    assert_eq!(stack_leftovers("case"), Vec::<String>::new());

    // Without a swarm, `up` says how to make one.
    if _swarm.created {
        drop(_swarm);
        let (subjects, _) = project_dir("services:\n  a:\n    image: operator/etcd:3.4.23-debian\n", None);
        swarm_case(subjects.path(), &stack, &["up"]).expect_code(1).stderr_has("run `docker swarm init`");
    }
}

/// The manifest line that makes the hostile Swarm driver a subject's Swarm driver.
const HOSTILE: &str = "[deployment]\nswarm-driver = \"hostile-swarm-driver.wasm\"\n";

#[test]
fn a_hostile_swarm_driver_cannot_leave_its_stack() {
    let _lock = docker_lock();
    etcd_images();
    let _swarm = SwarmNode::join();
    let pid = std::process::id();
    let stack = format!("e2e-swarm-hostile-{pid}");
    scrub_stack(&stack);
    let foreign = format!("e2e-swarm-foreign-{pid}");
    docker(&["service", "rm", &foreign]);
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &foreign,
        "--replicas",
        "0",
        "--label",
        "com.docker.stack.namespace=someone-else",
        "operator/etcd:3.4.23-debian",
    ]);

    let attack_with = |name: &str, target: &str, manifest: &str, local: bool| {
        let compose = format!("services:\n  a:\n    image: x\nx-attack: {name}\nx-target: {target}\n");
        let (subjects, dir) = project_dir(&compose, Some(manifest));
        std::fs::copy(test_component("hostile-swarm-driver"), dir.join("hostile-swarm-driver.wasm"))
            .expect("copy the driver");
        let target = if local { "local" } else { "swarm" };
        run(operator().arg("--subjects-dir").arg(subjects.path()).args(["deploy", target, "up", "case", "-p", &stack]))
    };
    let attack = |name: &str, target: &str| attack_with(name, target, HOSTILE, false);
    let ports = format!("{HOSTILE}[deployment.docker]\nswarm-ports = true\n");
    // (attack, what the refusal says, the exact grant the hint names)
    for (name, reason, grant, manifest) in [
        ("docker-socket", "mounting the Docker socket", "docker-socket = true", HOSTILE),
        ("host-path", "bind mount of /etc is outside the project folder", "writable-paths = [\"/etc\"]", HOSTILE),
        ("cap-add", "added capabilities \"SYS_ADMIN\" are not granted", "cap-add = [\"SYS_ADMIN\"]", HOSTILE),
        ("publish", "every interface of every node", "swarm-ports = true", HOSTILE),
        ("low-port", "published port 80 is below 1024", "low-ports = true", ports.as_str()),
        ("tool-label", "label `traefik.enable` is namespaced", "labels = [\"traefik.enable\"]", HOSTILE),
    ] {
        let r = attack_with(name, "", manifest, false);
        r.expect_code(1).stderr_has("denied:").stderr_has(reason).stderr_has(&format!("add `{grant}`"));
    }
    attack("owner-label", "").expect_code(1).stderr_has("label `dev.operator.stack` is reserved for the host");
    attack("registry", "")
        .expect_code(1)
        .stderr_has("comes from registry ghcr.io, which this stack may not pull from")
        .stderr_has("add \"ghcr.io\" to `registries`");
    attack("undeclared-volume", "").expect_code(1).stderr_has("no volume `never-created` in stack");
    attack("container", "")
        .expect_code(1)
        .stderr_has("a Swarm driver acts through `operator:swarm/swarm`, not on containers");
    // A container driver gets no Swarm.
    attack_with("publish", "", "[deployment]\ndriver = \"hostile-swarm-driver.wasm\"\n", true)
        .expect_code(1)
        .stderr_has("swarm create-network is not granted: this component was not started as a Swarm driver");

    // Nothing outside the stack is seen or reached.
    let r = attack("list-foreign", "");
    r.expect_code(1).stderr_has("saw: [");
    assert!(!r.stderr.contains(&foreign), "the driver saw a foreign service: {}", r.stderr);
    for a in ["remove-foreign", "inspect-foreign", "logs-foreign"] {
        attack(a, &foreign).expect_code(1).stderr_has(&format!("no service `{foreign}` in stack {stack}"));
    }
    attack("remove-foreign-network", "ingress").expect_code(1).stderr_has("no network `ingress` in stack");
    assert!(docker(&["service", "ls", "--format", "{{.Name}}"]).lines().any(|n| n == foreign), "foreign removed");

    // A stack of this name that operator did not make is refused whole.
    let squatter = format!("{stack}_squat");
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &squatter,
        "--replicas",
        "0",
        "--label",
        &format!("com.docker.stack.namespace={stack}"),
        "operator/etcd:3.4.23-debian",
    ]);
    attack("publish", "")
        .expect_code(1)
        .stderr_has(&format!("stack {stack} holds resources operator did not create (service {squatter})"));
    docker(&["service", "rm", &squatter, &foreign]);
    scrub_stack(&stack);
    assert_eq!(stack_leftovers(&stack), Vec::<String>::new());
}
