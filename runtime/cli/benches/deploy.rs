//! Deployment benchmark: `operator deploy local up etcd --wait` against `docker-compose up -d`
//! followed by waiting until every container is healthy (what compose v2's `--wait` does; the
//! docker-compose 1.29 that Debian ships has no `--wait`), from the same clean state, and
//! `down` against `docker-compose down -v`. Needs a Docker engine; builds the etcd images first.
//!
//!     cargo bench -p operator-cli --bench deploy          (OPERATOR_BENCH_ROUNDS=5 by default)
//!
//! The tools run alternately, in rotating order, on separate projects with their own ports.

mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use common::median;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn must(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Polls (every 100 ms) until all of the project's `expected` containers are healthy.
fn wait_healthy(project: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let filter = format!("label=com.docker.compose.project={project}");
    loop {
        let ids = docker_lines(&["ps", "-q", "--filter", &filter]);
        if ids.len() == expected {
            let mut args = vec!["inspect", "-f", "{{.State.Health.Status}}"];
            args.extend(ids.iter().map(String::as_str));
            if docker_lines(&args).iter().all(|s| s == "healthy") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{project} not healthy within 180 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Environment giving a project its own free host ports.
fn ports_env(cmd: &mut Command) {
    let ports = harness::free_ports(4);
    for (var, port) in ["ETCD1_PORT", "ETCD2_PORT", "ETCD3_PORT", "ETCD_PROMETHEUS_PORT"].iter().zip(ports) {
        cmd.env(var, port.to_string());
    }
}

fn main() {
    let root = harness::root();
    must(&mut Command::new(root.join("subjects/etcd/build-images")));
    let compose_file = root.join("subjects/etcd/docker-compose.yaml");
    let rounds: usize = std::env::var("OPERATOR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let (op_project, dc_project) =
        (format!("bench-op-{}", std::process::id()), format!("bench-dc-{}", std::process::id()));

    let operator_up = || {
        let mut c = harness::operator();
        c.args(["deploy", "local", "up", "etcd", "-p", &op_project, "--wait", "--wait-timeout", "180s"]);
        ports_env(&mut c);
        c
    };
    let operator_down = || {
        let mut c = harness::operator();
        c.args(["deploy", "local", "down", "etcd", "-p", &op_project, "--volumes"]);
        c
    };
    let compose = |args: &[&str], project: &str| {
        let mut c = Command::new("docker-compose");
        c.arg("-f").arg(&compose_file).args(["-p", project]).args(args);
        ports_env(&mut c);
        c
    };

    // Warm-up: the first operator run compiles the driver into the cache; both start clean.
    must(&mut operator_up());
    must(&mut operator_down());

    let mut up: [Vec<Duration>; 2] = Default::default();
    let mut down: [Vec<Duration>; 2] = Default::default();
    for round in 0..rounds {
        for k in 0..2 {
            let which = (round + k) % 2;
            if which == 0 {
                let t = Instant::now();
                must(&mut operator_up());
                up[0].push(t.elapsed());
                let t = Instant::now();
                must(&mut operator_down());
                down[0].push(t.elapsed());
            } else {
                let t = Instant::now();
                must(&mut compose(&["up", "-d"], &dc_project));
                wait_healthy(&dc_project, 4);
                up[1].push(t.elapsed());
                let t = Instant::now();
                must(&mut compose(&["down", "-v"], &dc_project));
                down[1].push(t.elapsed());
            }
        }
    }
    let [op_up, dc_up] = up.map(median);
    let [op_down, dc_down] = down.map(median);
    println!(
        "{:<72} {:>10}",
        format!("etcd subject (3 members + Prometheus), median of {rounds} alternating rounds"),
        "median"
    );
    println!("{:<72} {:>10.2?}", "operator deploy local up etcd --wait", op_up);
    println!("{:<72} {:>10.2?}", "docker-compose up -d, then poll until every container is healthy", dc_up);
    println!("{:<72} {:>10.2?}", "operator deploy local down etcd --volumes", op_down);
    println!("{:<72} {:>10.2?}", "docker-compose down -v", dc_down);
    println!(
        "up: operator / docker-compose = {:.2}x; down: {:.2}x (target <= 1.0x)",
        op_up.as_secs_f64() / dc_up.as_secs_f64(),
        op_down.as_secs_f64() / dc_down.as_secs_f64()
    );
}
