//! End-to-end benchmarks of the `operator` CLI: `operator subject tikv stores --output json`
//! against the simulator, side by side with the same request by `curl` and by a Python script
//! using httpx (the stack of the original design), plus the peak RSS of one `operator` call.
//!
//!     cargo bench -p operator-cli --bench end_to_end
//!
//! The three commands run alternately, in rotating order, so machine noise hits all of them
//! alike; the table reports medians and the ratios of medians.

mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use common::median;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 40;

/// A Python with httpx, in a venv under the target directory (installed from PyPI once).
fn python_with_httpx() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-py");
    let python = venv.join("bin").join("python3");
    let has_httpx = |p: &Path| Command::new(p).args(["-c", "import httpx"]).status().is_ok_and(|s| s.success());
    if !has_httpx(&python) {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success())
            && Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "httpx==0.28.1"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok && has_httpx(&python), "could not set up a venv with httpx in {}", venv.display());
    }
    python
}

/// Wall time of one run of `cmd`, which must succeed; its output is discarded.
fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("spawn");
    let elapsed = t.elapsed();
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.is_empty(), "{cmd:?} printed nothing");
    elapsed
}

/// Peak resident set size of one run of `cmd`, from the kernel's accounting of that child.
fn peak_rss(cmd: &mut Command) -> u64 {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 writes only into the given pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; `status` and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed");
    std::mem::forget(child); // already reaped
    usage.ru_maxrss as u64 * 1024
}

fn main() {
    let sim = harness::Sim::start(tikv_simulator::Config::default());
    let pd = format!("http://{}", sim.sim.pd);
    let cache = tempfile::tempdir().expect("tempdir");
    let python = python_with_httpx();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("pd_stores.py");

    let operator = || {
        let mut c = harness::operator();
        c.env("OPERATOR_CACHE_DIR", cache.path())
            .args(["subject", "tikv", "stores", "--output", "json"])
            .args(sim.endpoints());
        c
    };
    let curl = || {
        let mut c = Command::new("curl");
        c.args(["-sSf", &format!("{pd}/pd/api/v1/stores")]);
        c
    };
    let httpx = || {
        let mut c = Command::new(&python);
        c.arg(&script).arg(&pd);
        c
    };

    // Warm up: the first operator run compiles the adapter into the cache.
    time(&mut operator());
    time(&mut curl());
    time(&mut httpx());

    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS {
        for k in 0..3 {
            let which = (round + k) % 3;
            let mut cmd = match which {
                0 => operator(),
                1 => curl(),
                _ => httpx(),
            };
            samples[which].push(time(&mut cmd));
        }
    }
    let [op, cu, py] = samples.map(median);
    println!("{:<64} {:>10}", format!("end to end, median of {ROUNDS} alternating runs"), "median");
    println!("{:<64} {:>10.1?}", "operator subject tikv stores --output json (sandboxed adapter)", op);
    println!("{:<64} {:>10.1?}", "curl of /pd/api/v1/stores", cu);
    println!("{:<64} {:>10.1?}", "python3 + httpx: GET, parse, print JSON", py);
    println!(
        "operator / curl = {:.2}x (target <= 2x); operator / python = {:.2}x (target <= 0.2x)",
        op.as_secs_f64() / cu.as_secs_f64(),
        op.as_secs_f64() / py.as_secs_f64()
    );

    let rss: Vec<u64> = (0..5).map(|_| peak_rss(&mut operator())).collect();
    let mut sorted = rss.clone();
    sorted.sort();
    println!(
        "peak RSS of one `operator subject tikv stores` call: median {:.1} MiB",
        sorted[2] as f64 / (1 << 20) as f64
    );
}
