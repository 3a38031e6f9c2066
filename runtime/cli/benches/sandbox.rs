//! Sandbox benchmarks: compile vs cached load, a fresh instance, a call, and how fast a
//! runaway guest is stopped. Prints medians (and ranges) over repeated runs.
//!
//!     cargo bench -p operator-cli --bench sandbox
//!
//! These machines are shared and noisy: read the medians, and compare figures taken in the
//! same run.

mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use common::{summary, timed};

use std::time::{Duration, Instant};

use operator_host::call::Sandboxed;
use operator_host::dynamic;
use operator_host::limits::Limits;
use operator_host::{Budget, CallError, Policy, Runtime, RuntimeOptions};

fn row(what: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (m, lo, hi) = summary(samples);
    println!("{what:<48} {:>12.2?} {:>12.2?} {:>12.2?} {n:>5}", m, lo, hi);
}

/// Times compiling `bytes` with no cache, then loading them from a warm cache in `cache`;
/// returns the cached runtime for the rest of the bench. Each step is (label, runs).
fn compile_and_cached_load(
    name: &str,
    bytes: &[u8],
    cache: &std::path::Path,
    compile: (&str, usize),
    cached: (&str, usize),
) -> Runtime {
    let uncached = Runtime::new(RuntimeOptions { cache_dir: None, ..Default::default() }).expect("runtime");
    row(
        compile.0,
        timed(compile.1, || {
            uncached.load(name, bytes).expect("load");
        }),
    );
    let runtime =
        Runtime::new(RuntimeOptions { cache_dir: Some(cache.into()), ..Default::default() }).expect("runtime");
    runtime.load(name, bytes).expect("warm the cache");
    row(
        cached.0,
        timed(cached.1, || {
            runtime.load(name, bytes).expect("load");
        }),
    );
    runtime
}

fn main() {
    let bytes = std::fs::read(harness::hostile()).expect("hostile.wasm");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let cache = tempfile::tempdir().expect("tempdir");
    println!("{:<48} {:>12} {:>12} {:>12} {:>5}", "measurement", "median", "min", "max", "runs");

    let runtime = compile_and_cached_load(
        "hostile",
        &bytes,
        cache.path(),
        ("compile a 131 KiB component from bytes", 5),
        ("load it from the compile cache (verify + deserialize + link)", 30),
    );
    println!("(pooling allocator: {})", if runtime.pooling() { "yes" } else { "no, on-demand" });

    let component = runtime.load("hostile", &bytes).expect("load");
    let funcs = dynamic::exported_functions(&runtime, &component);
    let add = dynamic::find_function(&funcs, "add").expect("add").clone();
    let policy = Policy::default();
    let untyped = Sandboxed::untyped(&runtime, &component, policy.clone());

    // A fresh store + instance, no call.
    let instantiate: Vec<Duration> = (0..200)
        .map(|_| {
            rt.block_on(async {
                let t = Instant::now();
                untyped.call(|_instance, _store| Box::pin(async move { Ok(()) })).await.expect("instantiate");
                t.elapsed()
            })
        })
        .collect();
    row("fresh store + instance per call (InstancePre)", instantiate);

    // Calls on one instance: (time for 10,000 calls) / 10,000.
    let per_call: Vec<Duration> = (0..10)
        .map(|_| {
            let add = add.clone();
            rt.block_on(async {
                let took = std::sync::Arc::new(std::sync::Mutex::new(Duration::ZERO));
                let per_call = took.clone();
                untyped
                    .call(move |instance, store| {
                        Box::pin(async move {
                            let f = instance.get_func(&mut *store, add.name.as_str()).expect("add");
                            let args = [wasmtime::component::Val::U32(1), wasmtime::component::Val::U32(2)];
                            let mut out = [wasmtime::component::Val::Bool(false)];
                            let t = Instant::now();
                            for _ in 0..10_000 {
                                f.call_async(&mut *store, &args, &mut out).await?;
                            }
                            *per_call.lock().expect("not poisoned") = t.elapsed() / 10_000;
                            Ok(())
                        })
                    })
                    .await
                    .expect("calls");
                *took.lock().expect("not poisoned")
            })
        })
        .collect();
    row("a contract call with no I/O (add(u32, u32))", per_call);
    let add_call = rt.block_on(dynamic::call(
        &runtime,
        &component,
        &policy,
        &add,
        vec![wasmtime::component::Val::U32(1), wasmtime::component::Val::U32(2)],
    ));
    let peak = add_call.expect("add").report.peak_memory;
    println!(
        "{:<48} {:>12}",
        "memory per instance (peak linear memory, add)",
        format!("{:.1} KiB", peak as f64 / 1024.0)
    );

    // Runaway loop under a 1 s deadline: guest time when stopped, and the overshoot.
    let limits = Limits { deadline: Duration::from_secs(1), ..Limits::default() };
    let runaway = Policy { limits, ..Policy::default() };
    let spin = dynamic::find_function(&funcs, "spin").expect("spin").clone();
    let mut used = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let err = rt.block_on(dynamic::call(&runtime, &component, &runaway, &spin, vec![])).expect_err("stopped");
        wall.push(t.elapsed());
        match err.error {
            CallError::DeadlineExceeded { budget: Budget::Guest, used: u, .. } => used.push(u),
            other => panic!("unexpected {other}"),
        }
    }
    row("runaway loop, 1 s deadline: guest time at stop", used.clone());
    row("runaway loop, 1 s deadline: wall time of the call", wall);
    let worst = used.iter().max().copied().unwrap_or_default();
    println!(
        "stop latency: worst {:.1?} past the deadline (epoch tick {:?}); target: deadline + one tick",
        worst.saturating_sub(Duration::from_secs(1)),
        operator_host::sandbox::EPOCH_TICK
    );

    python_component(&rt, cache.path());
}

/// The Python etcd adapter (componentize-py): size, first-run compile, cached load, a fresh
/// instance and a `describe` call (no I/O) — the cost of carrying an interpreter.
fn python_component(rt: &tokio::runtime::Runtime, cache: &std::path::Path) {
    harness::etcd_component();
    let path = harness::built_component("etcd");
    let bytes = std::fs::read(&path).expect("etcd.wasm");
    println!("\nPython component {} ({:.1} MiB)", path.display(), bytes.len() as f64 / (1 << 20) as f64);
    let runtime = compile_and_cached_load(
        "etcd",
        &bytes,
        cache,
        ("compile it from bytes (first run)", 3),
        ("load it from the compile cache", 20),
    );
    let component = runtime.load("etcd", &bytes).expect("load");
    let funcs = dynamic::exported_functions(&runtime, &component);
    let describe = dynamic::find_function(&funcs, "describe").expect("describe").clone();
    let policy = Policy::default();
    let calls: Vec<Duration> = timed(50, || {
        rt.block_on(dynamic::call(&runtime, &component, &policy, &describe, vec![])).expect("describe");
    });
    row("fresh instance + describe() (no I/O)", calls);
    let peak = rt
        .block_on(dynamic::call(&runtime, &component, &policy, &describe, vec![]))
        .expect("describe")
        .report
        .peak_memory;
    println!(
        "{:<48} {:>12}",
        "memory per instance (peak linear memory, describe)",
        format!("{:.1} MiB", peak as f64 / (1 << 20) as f64)
    );
}
