//! The control loop's cost (issue #13): `decide` of the built-in `hot-write-balance` policy in
//! the sandbox on a large cluster (100 stores, 10,000 hot regions), beside the same decision
//! natively and the host's gate on its proposals; and rounds of `operator run tikv` on the
//! simulator split into observe / decide / gate / act: dry runs on the default simulator (with
//! the check that decide + gate stay under a tenth of the round) and on a 100-store,
//! 10,000-region one, and an `--apply` run.
//!
//!     cargo bench -p operator-cli --bench policy
//!
//! `OPERATOR_BENCH_ONLY=decide` or `=round` runs one half; `OPERATOR_PERFMAP=1` lets `perf`
//! name the policy's functions (docs/performance.md).

/// The policy's decision compiled natively from the component's own source, for comparison.
#[allow(dead_code)]
#[path = "../../../components/hot-write-balance/src/balance.rs"]
mod balance;
mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use std::process::Stdio;
use std::time::{Duration, Instant};

use operator_host::gate::{self, Action, GateLimits, GateState, Round, Verdict};
use operator_host::policy::{Observation, PolicyClient, Proposal};
use operator_host::subject::{ClusterStore, Region, StoreState};
use operator_host::{Policy, Runtime, RuntimeOptions};

const STORES: u64 = 100;
const REGIONS: u64 = 10_000;
/// Parameter sets `decide` is timed with.
const SETS: usize = 3;
/// `decide` calls per parameter set (alternating).
const DECIDE_RUNS: usize = 41;
/// Gate checks and native decisions.
const NATIVE_RUNS: usize = 201;
/// Dry-run rounds of `operator run` (the first, a warm-up, is not counted).
const DRY_ROUNDS: usize = 30;
/// Dry-run rounds on the large simulator.
const LARGE_ROUNDS: usize = 10;
/// `--apply` rounds.
const APPLY_ROUNDS: usize = 10;

const MIB: f64 = 1024.0 * 1024.0;

/// The sample at quantile `q` (0..=1) of `v`.
fn quantile(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The median of float samples.
fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A store id in `1..=n`.
    fn store(&mut self, n: u64) -> u64 {
        1 + self.next() % n
    }
}

fn store(id: u64) -> ClusterStore {
    ClusterStore {
        id,
        address: format!("tikv{id}:20160"),
        state: StoreState::Up,
        labels: vec![],
        version: "8.5.5".into(),
        capacity_bytes: 1 << 40,
        available_bytes: 1 << 39,
        used_bytes: 1 << 39,
        leader_count: 0,
        region_count: 0,
        details: vec![],
    }
}

/// 100 up stores and 10,000 hot regions, hottest first: region `i` writes 4 MiB/s / (1 + i/100)
/// (4 MiB/s down to 40 KiB/s, all above the policy's 1 KiB/s minimum); it has 3 peers on
/// distinct stores and its leader is the first, which half the time is one of stores 1-10, so
/// those ten lead far more than the mean and the policy has real work.
fn large_cluster() -> Observation {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let stores: Vec<ClusterStore> = (1..=STORES).map(store).collect();
    let regions: Vec<Region> = (0..REGIONS)
        .map(|i| {
            let leader = if rng.next().is_multiple_of(2) { rng.store(10) } else { rng.store(STORES) };
            let mut peers = vec![leader];
            while peers.len() < 3 {
                let s = rng.store(STORES);
                if !peers.contains(&s) {
                    peers.push(s);
                }
            }
            let rate = 4.0 * MIB / (1.0 + i as f64 / 100.0);
            Region {
                id: 1000 + i,
                leader_store_id: Some(leader),
                peer_store_ids: peers,
                written_bytes: (rate * 60.0) as u64,
                written_keys: (rate * 60.0 / 1024.0) as u64,
                read_bytes: 0,
                read_keys: 0,
                approximate_size_bytes: 96 << 20,
                write_bytes_per_second: Some(rate),
                write_keys_per_second: Some(rate / 1024.0),
            }
        })
        .collect();
    Observation { stores, hot_write_regions: regions, now_ms: 1_700_000_000_000, ..Default::default() }
}

/// What the component's `decide` does, natively: the same conversion and `balance::decide`.
fn native_decide(o: &Observation, params: &[(String, String)]) -> Vec<balance::Move> {
    let params = balance::Params::parse(params).expect("params");
    let stores: Vec<balance::StoreFlow> =
        o.stores.iter().map(|s| balance::StoreFlow { id: s.id, up: s.state == StoreState::Up }).collect();
    let regions: Vec<balance::RegionFlow> = o
        .hot_write_regions
        .iter()
        .filter_map(|r| {
            Some(balance::RegionFlow {
                id: r.id,
                leader: r.leader_store_id?,
                peers: r.peer_store_ids.clone(),
                bytes_per_second: r.write_bytes_per_second?,
            })
        })
        .collect();
    balance::decide(&stores, &regions, &params, &[])
}

fn decide_bench() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    // OPERATOR_PERFMAP=1: name the guest's functions for `perf` (see docs/performance.md).
    let perf_map = std::env::var_os("OPERATOR_PERFMAP").is_some_and(|v| !v.is_empty() && v != "0");
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, perf_map, ..Default::default() }).expect("runtime");
    let target = operator_builder::target_dir(&harness::root());
    let wasm = std::fs::read(operator_builder::rust_output(&target, "hot-write-balance")).expect("policy wasm");
    let component = runtime.load("hot-write-balance", &wasm).expect("load");
    // The loop gives a policy the subject's limits; the tikv manifest sets none, so the defaults.
    let client = PolicyClient::new(&runtime, &component, Policy::default()).expect("a policy");
    let observation = large_cluster();
    let regions = &observation.hot_write_regions;
    let flows = operator_host::control::leader_write_flow(regions);
    let mean = flows.values().sum::<f64>() / STORES as f64;
    let hottest = flows.values().copied().fold(0.0, f64::max);
    println!(
        "decide of hot-write-balance: {STORES} up stores, {REGIONS} hot regions (3 peers each); \
         hottest store {:.1} MiB/s of leader write flow = {:.2}x the mean {:.1} MiB/s",
        hottest / MIB,
        hottest / mean,
        mean / MIB
    );

    let param_sets: [(&str, Vec<(String, String)>); SETS] = [
        ("default params (max-proposals 4)", vec![]),
        ("max-proposals=256 (the loop's cap)", vec![("max-proposals".into(), "256".into())]),
        // Nothing to do: what remains is taking the observation in and summing the flows.
        ("tolerance=1000 (nothing to do)", vec![("tolerance".into(), "1000".into())]),
    ];
    let decide = |params: &[(String, String)]| -> (Duration, Vec<Proposal>, u64) {
        let t = Instant::now();
        let out = rt.block_on(client.decide(&observation, params));
        let wall = t.elapsed();
        match out {
            Ok(o) => {
                let proposals = o.value.unwrap_or_else(|e| panic!("the policy refused: {e}"));
                (wall, proposals, o.report.peak_memory)
            }
            Err(f) => panic!(
                "decide on {REGIONS} regions failed under the default limits: {} \
                 (guest {:?}, peak memory {} KiB)",
                f.error,
                f.report.guest_time,
                f.report.peak_memory / 1024
            ),
        }
    };
    // Warm-up: the first call's pool slot faults its memory in.
    let first: Vec<Duration> = param_sets.iter().map(|(_, p)| decide(p).0).collect();

    let mut walls: [Vec<Duration>; SETS] = Default::default();
    let mut peaks = [0u64; SETS];
    let mut proposals: [Vec<Proposal>; SETS] = Default::default();
    for run in 0..DECIDE_RUNS {
        for k in 0..SETS {
            let which = (run + k) % SETS;
            let (wall, p, peak) = decide(&param_sets[which].1);
            walls[which].push(wall);
            peaks[which] = peaks[which].max(peak);
            assert!(run == 0 || proposals[which] == p, "decide is not deterministic");
            proposals[which] = p;
        }
    }

    println!(
        "{:<70} {:>10} {:>10} {:>9} {:>9}",
        format!("in the sandbox, {DECIDE_RUNS} alternating calls"),
        "median",
        "p90",
        "peak mem",
        "proposals"
    );
    for (k, (name, _)) in param_sets.iter().enumerate() {
        println!(
            "{:<70} {:>10.2?} {:>10.2?} {:>5.1} MiB {:>9}",
            format!("decide, {name}"),
            quantile(walls[k].clone(), 0.5),
            quantile(walls[k].clone(), 0.9),
            peaks[k] as f64 / MIB,
            proposals[k].len()
        );
    }
    println!("(first calls, not counted: {first:.2?})");
    println!("first proposal: {}", proposals[0].first().map(|p| p.reason.as_str()).unwrap_or("none"));

    // The same decision natively, and the host's gate on the sandbox's proposals.
    let mut rows: Vec<(String, Vec<Duration>, String)> = Vec::new();
    for (k, (name, params)) in param_sets.iter().enumerate() {
        let moves = native_decide(&observation, params);
        let same = moves.len() == proposals[k].len()
            && moves.iter().zip(&proposals[k]).all(|(m, p)| {
                p.action == Action::TransferLeader { region_id: m.region_id, to_store_id: m.to_store_id }
            });
        assert!(same, "native and sandboxed decide differ");
        let samples = common::timed(NATIVE_RUNS, || {
            std::hint::black_box(native_decide(&observation, params));
        });
        rows.push((format!("native decide (same source), {name}"), samples, format!("{}", moves.len())));
    }
    for (k, (name, _)) in param_sets.iter().enumerate() {
        let actions: Vec<Action> = proposals[k].iter().map(|p| p.action).collect();
        let round = Round { stores: &observation.stores, regions, now_ms: observation.now_ms };
        let limits = GateLimits::default();
        let state = GateState::default();
        let verdicts = gate::check(round, &actions, &limits, &state);
        let admitted = verdicts.iter().filter(|v| **v == Verdict::Admitted).count();
        let samples = common::timed(NATIVE_RUNS, || {
            std::hint::black_box(gate::check(round, &actions, &limits, &state));
        });
        rows.push((
            format!("gate::check of those proposals, {name}"),
            samples,
            format!("{admitted}/{} admitted", actions.len()),
        ));
    }
    println!("{:<70} {:>10} {:>10}", format!("native, {NATIVE_RUNS} runs"), "median", "p90");
    for (name, samples, note) in rows {
        println!("{:<70} {:>10.2?} {:>10.2?}  {note}", name, quantile(samples.clone(), 0.5), quantile(samples, 0.9));
    }
}

/// One round's line of `operator run --output json`: its step timings, in ms.
struct Timings {
    observe: f64,
    decide: f64,
    gate: f64,
    act: f64,
    applied: usize,
    proposals: usize,
}

/// Runs `operator run tikv --policy hot-write-balance --output json` with `extra` against
/// `sim` and returns each round's timings.
fn run_loop(sim: &harness::Sim, extra: &[&str]) -> Vec<Timings> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = harness::operator()
        .args(["run", "tikv", "--policy", "hot-write-balance", "--output", "json", "--audit"])
        .arg(dir.path().join("audit.jsonl"))
        .args(extra)
        .args(sim.endpoints())
        .stdin(Stdio::null())
        .output()
        .expect("spawn operator");
    assert!(out.status.success(), "operator run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["error"].is_null(), "a round failed: {l}");
            let t = &v["timings"];
            let ms = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("no timings.{k} in {l}"));
            let actions = v["actions"].as_array().expect("actions");
            Timings {
                observe: ms("observe_ms"),
                decide: ms("decide_ms"),
                gate: ms("gate_ms"),
                act: ms("act_ms"),
                applied: actions.iter().filter(|a| a["verdict"] == "applied").count(),
                proposals: actions.len(),
            }
        })
        .collect()
}

/// A named step and how to read it off a round.
type Step = (&'static str, fn(&Timings) -> f64);

fn print_steps(title: &str, rounds: &[Timings]) -> (f64, f64) {
    let col = |f: fn(&Timings) -> f64| median_f(rounds.iter().map(f).collect());
    let total = |t: &Timings| t.observe + t.decide + t.gate + t.act;
    let round = col(total);
    println!("{title}");
    println!("{:<40} {:>10} {:>10} {:>10}", "step", "median", "min", "max");
    let steps: [Step; 5] = [
        ("observe (stores, hot regions, metrics)", |t| t.observe),
        ("decide (policy in the sandbox)", |t| t.decide),
        ("gate (checks + audit record, fsync'd)", |t| t.gate),
        ("act", |t| t.act),
        ("round (sum of the steps)", total),
    ];
    for (name, f) in steps {
        let v: Vec<f64> = rounds.iter().map(f).collect();
        let (min, max) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max));
        println!("{:<40} {:>7.2} ms {:>7.2} ms {:>7.2} ms", name, median_f(v), min, max);
    }
    (col(|t| t.decide + t.gate), round)
}

/// Dry-run rounds of `operator run` on a simulator started with `config`: the first round (a
/// warm-up) is not counted; prints the steps and the ratio.
fn dry_run(title: &str, config: tikv_simulator::Config, rounds: usize) {
    let sim = harness::Sim::start(config);
    let n = (rounds + 1).to_string();
    let dry = run_loop(&sim, &["--rounds", &n, "--interval", "100ms"]);
    assert_eq!(dry.len(), rounds + 1);
    let counted = &dry[1..];
    let (decide_gate, round) = print_steps(
        &format!("{title}, {rounds} rounds after the first, {} proposals a round", counted[0].proposals),
        counted,
    );
    println!(
        "(first round, not counted: observe {:.1} ms, decide {:.1} ms, gate {:.1} ms)",
        dry[0].observe, dry[0].decide, dry[0].gate
    );
    let ratio = decide_gate / round;
    // Also per round, so one slow step cannot hide behind medians of different rounds.
    let per_round =
        median_f(counted.iter().map(|t| (t.decide + t.gate) / (t.observe + t.decide + t.gate + t.act)).collect());
    println!(
        "(decide + gate) / round = {ratio:.3} (median of per-round ratios {per_round:.3}): {} (target < 0.1)",
        if ratio < 0.1 { "PASS" } else { "FAIL" }
    );
    println!();
}

fn round_bench() {
    // Dry run: nothing changes between rounds, so every round sees the same cluster.
    dry_run("dry run on the simulator (3 stores, 64 regions)", tikv_simulator::Config::default(), DRY_ROUNDS);
    // A large cluster where all 10,000 regions are hot (64 GiB/s of writes, Zipf-skewed): the
    // loop asks the adapter for the hottest HOT_REGIONS_PER_ROUND (1024) of them.
    let large = tikv_simulator::Config {
        stores: STORES as usize,
        regions: REGIONS as usize,
        write_rate: 64.0 * 1024.0 * MIB,
        ..Default::default()
    };
    dry_run(
        &format!(
            "dry run on a large simulator ({STORES} stores, {REGIONS} regions, all hot; the loop observes the \
             hottest {})",
            operator_host::control::HOT_REGIONS_PER_ROUND
        ),
        large,
        LARGE_ROUNDS,
    );

    // Applying, on a fresh simulator whose operators finish in 200 ms.
    let sim = harness::Sim::start(tikv_simulator::Config {
        operator_delay: Duration::from_millis(200),
        ..Default::default()
    });
    let rounds = APPLY_ROUNDS.to_string();
    let applied = run_loop(&sim, &["--apply", "--rounds", &rounds, "--interval", "1s"]);
    let acting: Vec<&Timings> = applied.iter().filter(|t| t.applied > 0).collect();
    print_steps(
        &format!(
            "--apply on a fresh simulator (operator delay 200 ms), {APPLY_ROUNDS} rounds, all counted; \
             {} actions applied in {} rounds",
            applied.iter().map(|t| t.applied).sum::<usize>(),
            acting.len()
        ),
        &applied,
    );
    if !acting.is_empty() {
        let act = median_f(acting.iter().map(|t| t.act).collect());
        let per_action = median_f(acting.iter().map(|t| t.act / t.applied as f64).collect());
        println!(
            "act in the {} rounds that applied: median {act:.1} ms, {per_action:.1} ms per action \
             (each transfer is confirmed before the next starts)",
            acting.len()
        );
    }
}

fn main() {
    let only = std::env::var("OPERATOR_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "decide" {
        decide_bench();
        println!();
    }
    if only.is_empty() || only == "round" {
        round_bench();
    }
}
