//! Sandbox overhead on heavy work: the TiKV adapter's parsing of a 100,000-region
//! `/pd/api/v1/regions` answer (from the simulator) inside wasm, against the same source
//! compiled natively (the `tikv-adapter` crate). The wasm figure is one typed call on a live
//! instance: copying the body into guest memory, parsing, mapping every region.
//!
//!     cargo bench -p operator-runtime --bench parse

mod common;
#[allow(dead_code)]
#[path = "../../tests/e2e/harness.rs"]
mod harness;

use common::median;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use operator_runtime::limits::Limits;
use operator_runtime::{Policy, Runtime, RuntimeOptions};

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
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, ..Default::default() }).expect("runtime");
    let component = runtime.load("tikv-parse", &wasm_bytes).expect("load");
    let limits = Limits { memory: 2 << 30, deadline: Duration::from_secs(60), ..Limits::default() };
    let policy = Policy { limits, ..Policy::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    // A fresh instance per call, as the adapter runs: its linear memory grows from scratch.
    // A second call on the same instance (memory already grown) separates growth from parsing.
    let wasm_parse = || -> (Duration, Duration) {
        let body = body.clone();
        rt.block_on(runtime.run(&component, &policy, move |store, pre| {
            Box::pin(async move {
                let instance = pre.instantiate_async(&mut *store).await?;
                let f = instance.get_typed_func::<(Vec<u8>,), (Result<u32, String>,)>(&mut *store, "parse-regions")?;
                let mut took = [Duration::ZERO; 2];
                for slot in &mut took {
                    let t = Instant::now();
                    let (count,) = f.call_async(&mut *store, (body.clone(),)).await?;
                    *slot = t.elapsed();
                    assert_eq!(count, Ok(REGIONS as u32));
                }
                Ok((took[0], took[1]))
            })
        }))
        .expect("call")
        .value
    };

    // Alternate the two, in rotating order, after one warm-up each.
    native_parse();
    wasm_parse();
    let (mut native, mut wasm, mut grown) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (first, second) = if run % 2 == 0 {
            native.push(native_parse());
            wasm_parse()
        } else {
            let w = wasm_parse();
            native.push(native_parse());
            w
        };
        wasm.push(first);
        grown.push(second);
    }

    let (n, w, g) = (median(native), median(wasm), median(grown));
    println!("{:<64} {:>10}", format!("parse + map {REGIONS} regions, median of {RUNS}"), "median");
    println!("{:<64} {:>10.1?}", "native (tikv-adapter crate, release)", n);
    println!("{:<64} {:>10.1?}", "in the sandbox (fresh instance, one typed call)", w);
    println!("{:<64} {:>10.1?}", "in the sandbox (second call, linear memory already grown)", g);
    println!("wasm / native = {:.2}x (target <= 1.5x)", w.as_secs_f64() / n.as_secs_f64());
}
