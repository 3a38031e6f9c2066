//! Sandbox overhead on heavy work: the TiKV adapter's parsing of a 100,000-region
//! `/pd/api/v1/regions` answer (from the simulator) inside wasm, against the same source
//! compiled natively (the `tikv-adapter` crate). The wasm figure is one typed call on a live
//! instance: copying the body into guest memory, parsing, mapping every region.
//!
//!     cargo bench -p operator-cli --bench parse

mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use common::median;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use operator_host::call::{Output, Sandboxed};
use operator_host::limits::Limits;
use operator_host::{Policy, Runtime, RuntimeOptions};

const REGIONS: usize = 100_000;
const RUNS: usize = 9;

/// The body of `GET path` (the simulator answers with Content-Length and closes).
fn fetch(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end") + 4;
    raw.split_off(split)
}

fn main() {
    // The simulator heartbeats its regions in the background: stop it before measuring.
    let body = {
        let sim = harness::Sim::start(tikv_simulator::Config { regions: REGIONS, ..Default::default() });
        fetch(sim.sim.pd, "/pd/api/v1/regions")
    };
    println!("/pd/api/v1/regions of {REGIONS} regions: {:.1} MiB", body.len() as f64 / (1 << 20) as f64);

    let native_parse = || {
        let t = Instant::now();
        let regions = tikv_adapter::pd::parse_regions("/pd/api/v1/regions", &body).expect("parse");
        let took = t.elapsed();
        assert_eq!(regions.len(), REGIONS);
        took
    };

    let wasm_bytes = std::fs::read(harness::test_component("tikv-parse")).expect("tikv_parse.wasm");
    // OPERATOR_PERFMAP=1: name the guest's functions for `perf` (see docs/performance.md).
    let perf_map = std::env::var_os("OPERATOR_PERFMAP").is_some_and(|v| !v.is_empty() && v != "0");
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, perf_map, ..Default::default() }).expect("runtime");
    let component = runtime.load("tikv-parse", &wasm_bytes).expect("load");
    let limits = Limits { memory: 2 << 30, deadline: Duration::from_secs(60), ..Limits::default() };
    let policy = Policy { limits, ..Policy::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    // A fresh instance per call, as the adapter runs: its linear memory grows from scratch.
    // A second call on the same instance (memory already grown) separates growth from parsing,
    // and `body-len` (takes the body in, returns its length) times the copy into the sandbox.
    let wasm_parse = || -> Wasm {
        let body = body.clone();
        rt.block_on(Sandboxed::untyped(&runtime, &component, policy.clone()).call(move |instance, store| {
            Box::pin(async move {
                let parse =
                    instance.get_typed_func::<(Vec<u8>,), (Result<u32, String>,)>(&mut *store, "parse-regions")?;
                let len = instance.get_typed_func::<(Vec<u8>,), (u32,)>(&mut *store, "body-len")?;
                let mut took = [Duration::ZERO; 2];
                for slot in &mut took {
                    let arg = body.clone();
                    let t = Instant::now();
                    let (count,) = parse.call_async(&mut *store, (arg,)).await?;
                    *slot = t.elapsed();
                    assert_eq!(count, Ok(REGIONS as u32));
                }
                let arg = body.clone();
                let t = Instant::now();
                let (n,) = len.call_async(&mut *store, (arg,)).await?;
                let copy = t.elapsed();
                assert_eq!(n as usize, body.len());
                Ok(Wasm { fresh: took[0], grown: took[1], copy })
            })
        }))
        .expect("call")
        .value
    };

    // Profiling one side alone: `OPERATOR_BENCH_ONLY=native|wasm` (see docs/performance.md).
    match std::env::var("OPERATOR_BENCH_ONLY").as_deref() {
        Ok("native") => return report_one("native", (0..RUNS).map(|_| native_parse()).collect()),
        Ok("wasm") => return report_one("wasm, fresh instance", (0..RUNS).map(|_| wasm_parse().fresh).collect()),
        Ok(other) => panic!("OPERATOR_BENCH_ONLY={other}: expected native or wasm"),
        Err(_) => {}
    }

    // Alternate the two, in rotating order, after one warm-up each.
    native_parse();
    wasm_parse();
    let (mut native, mut wasm) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        if run % 2 == 0 {
            native.push(native_parse());
            wasm.push(wasm_parse());
        } else {
            wasm.push(wasm_parse());
            native.push(native_parse());
        }
    }

    let n = median(native);
    let w = median(wasm.iter().map(|w| w.fresh).collect());
    let g = median(wasm.iter().map(|w| w.grown).collect());
    let c = median(wasm.iter().map(|w| w.copy).collect());
    println!("{:<64} {:>10}", format!("parse + map {REGIONS} regions, median of {RUNS}"), "median");
    println!("{:<64} {:>10.1?}", "native (tikv-adapter crate, release)", n);
    println!("{:<64} {:>10.1?}", "in the sandbox (fresh instance, one typed call)", w);
    println!("{:<64} {:>10.1?}", "in the sandbox (second call, linear memory already grown)", g);
    println!("{:<64} {:>10.1?}", "  of which copying the body in (body-len, grown memory)", c);
    println!("wasm / native = {:.2}x (target <= 1.5x)", w.as_secs_f64() / n.as_secs_f64());
    println!("parse alone (grown call - copy) / native = {:.2}x", g.saturating_sub(c).as_secs_f64() / n.as_secs_f64());
}

/// One wasm round: a fresh instance's first parse, its second parse, then the copy alone.
struct Wasm {
    fresh: Duration,
    grown: Duration,
    copy: Duration,
}

/// Timings are not a component's output: nothing to limit.
impl Output for Wasm {
    fn output_size(&self) -> u64 {
        0
    }
}

fn report_one(what: &str, samples: Vec<Duration>) {
    println!("{:<64} {:>10.1?}", format!("{what}, median of {RUNS}"), median(samples));
}
