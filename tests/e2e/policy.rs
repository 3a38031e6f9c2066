//! Policy components (`operator:policy`): the built-in `hot-write-balance` called through the
//! host's policy client, and its proposals through the gate.

use operator_host::gate::{self, Action, GateLimits, GateState, Round, Verdict};
use operator_host::policy::{Observation, PolicyClient, PolicyError};
use operator_host::subject::{ClusterStore, Region, StoreState};
use operator_host::{CallError, Policy, Runtime, RuntimeOptions};

use crate::harness::{evict_leader_component, operator, root, run, test_component};

/// The built-in policy's wasm, as build.rs built it.
fn hot_write_balance() -> Vec<u8> {
    let target = operator_builder::target_dir(&root());
    std::fs::read(operator_builder::rust_output(&target, "hot-write-balance")).expect("hot_write_balance.wasm")
}

fn store(id: u64) -> ClusterStore {
    ClusterStore {
        id,
        address: format!("tikv{id}:20160"),
        state: StoreState::Up,
        labels: vec![],
        version: "8.5.0".into(),
        capacity_bytes: 0,
        available_bytes: 0,
        used_bytes: 0,
        leader_count: 0,
        region_count: 0,
        details: vec![],
    }
}

fn region(id: u64, leader: u64, mib_per_second: f64) -> Region {
    Region {
        id,
        leader_store_id: Some(leader),
        peer_store_ids: vec![1, 2, 3],
        written_bytes: 0,
        written_keys: 0,
        read_bytes: 0,
        read_keys: 0,
        approximate_size_bytes: 0,
        write_bytes_per_second: Some(mib_per_second * 1048576.0),
        write_keys_per_second: None,
    }
}

#[test]
fn hot_write_balance_proposes_moves_off_the_hottest_store_and_the_gate_caps_them() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, ..Default::default() }).expect("runtime");
    let component = runtime.load("hot-write-balance", &hot_write_balance()).expect("load");
    let client = PolicyClient::new(&runtime, &component, Policy::default()).expect("a policy");

    let info = rt.block_on(client.describe()).expect("describe").value;
    assert_eq!(info.name, "hot-write-balance");
    assert!(info.params.iter().any(|p| p.name == "tolerance" && p.default_value == "1.05"), "{info:?}");

    // Store 1 leads 12 MiB/s of hot writes, stores 2 and 3 lead 1 each.
    let stores: Vec<ClusterStore> = (1..=3).map(store).collect();
    let mut regions: Vec<Region> = (0..12).map(|i| region(100 + i, 1, 1.0)).collect();
    regions.push(region(200, 2, 1.0));
    regions.push(region(300, 3, 1.0));
    let observation =
        Observation { stores: stores.clone(), hot_write_regions: regions.clone(), now_ms: 1, ..Default::default() };
    let params = vec![("max-proposals".to_string(), "10".to_string())];
    let proposals = rt.block_on(client.decide(&observation, &params)).expect("decide").value.expect("proposals");
    assert!(proposals.len() > 4, "{proposals:?}");
    assert!(proposals.iter().all(|p| matches!(p.action, Action::TransferLeader { to_store_id: 2 | 3, .. })));
    assert!(proposals[0].reason.starts_with("store 1 leads 12.0MiB/s"), "{}", proposals[0].reason);

    // The host's gate admits the policy's first four, in its order.
    let actions: Vec<Action> = proposals.iter().map(|p| p.action).collect();
    let verdicts = gate::check(
        Round { stores: &stores, regions: &regions, now_ms: 1 },
        &actions,
        &GateLimits::default(),
        &GateState::default(),
    );
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Admitted).count(), 4);
    assert!(verdicts[..4].iter().all(|v| *v == Verdict::Admitted));

    // A balanced cluster: nothing to do. A bad parameter: a named policy error.
    let balanced = Observation {
        hot_write_regions: vec![region(1, 1, 1.0), region(2, 2, 1.0), region(3, 3, 1.0)],
        ..observation.clone()
    };
    assert_eq!(rt.block_on(client.decide(&balanced, &[])).expect("decide").value, Ok(vec![]));
    let bad = vec![("tolerance".to_string(), "fast".to_string())];
    let e = rt.block_on(client.decide(&observation, &bad)).expect("decide").value.expect_err("invalid");
    assert!(matches!(&e, PolicyError::InvalidParam(m) if m.contains("tolerance")), "{e}");
}

#[test]
fn a_component_without_the_policy_contract_is_a_contract_mismatch() {
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, ..Default::default() }).expect("runtime");
    let bytes = std::fs::read(test_component("subject-v0-1-0")).expect("wasm");
    let component = runtime.load("subject-v0-1-0", &bytes).expect("load");
    let Err(e) = PolicyClient::new(&runtime, &component, Policy::default()) else { panic!("not a policy") };
    assert!(matches!(&e, CallError::ContractMismatch { detail } if detail.contains("policy contract")), "{e}");
}

#[test]
fn the_built_in_policy_is_listed_and_imports_nothing_but_wasi_basics() {
    let r = run(operator().args(["components", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.expect_code(0).stdout).expect("json");
    assert!(
        v.as_array()
            .expect("list")
            .iter()
            .any(|c| c["name"] == "hot-write-balance" && c["world"] == "policy-component"),
        "{v}"
    );
    let inspect = run(operator().args(["inspect", "hot-write-balance"]));
    let inspect = inspect.expect_code(0);
    assert!(inspect.stdout.contains("implements the policy-component contract"), "{}", inspect.stdout);
    for forbidden in ["operator:core/http", "operator:core/docker"] {
        assert!(!inspect.stdout.contains(forbidden), "a policy imports {forbidden}:\n{}", inspect.stdout);
    }
}

/// `operator run` with `--output json`: one JSON object per line per round.
fn run_rounds(sim: &crate::harness::Sim, audit: &std::path::Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let r = run(operator()
        .args(["run", "tikv", "--policy", "hot-write-balance", "--output", "json", "--audit"])
        .arg(audit)
        .args(extra)
        .args(sim.endpoints()));
    r.expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The hottest store's leader write flow over the mean of all, in one round's report.
fn imbalance(round: &serde_json::Value) -> f64 {
    let flows: Vec<f64> = round["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .map(|s| s["leader_write_bytes_per_second"].as_f64().expect("flow"))
        .collect();
    let mean = flows.iter().sum::<f64>() / flows.len() as f64;
    flows.iter().copied().fold(0.0, f64::max) / mean
}

#[test]
fn a_dry_run_proposes_and_records_but_creates_no_operator_at_pd() {
    let sim = crate::harness::Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_rounds(&sim, &audit, &["--rounds", "1"]);
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0]["dry_run"], true);
    let actions = rounds[0]["actions"].as_array().expect("actions");
    assert!(!actions.is_empty() && actions.len() <= 10, "{actions:?}");
    assert!(actions.iter().filter(|a| a["verdict"] == "dry-run").count() <= 4);
    for a in actions {
        assert!(a["region_id"].is_u64() && a["to_store_id"].is_u64() && a["reason"].is_string(), "{a}");
    }
    let operators = crate::harness::http_get(sim.sim.pd, "/pd/api/v1/operators");
    assert!(operators.trim_end().ends_with("[]"), "PD has operators after a dry run: {operators}");
    let log = std::fs::read_to_string(&audit).expect("audit");
    assert!(log.lines().any(|l| l.contains("\"event\":\"round\"") && l.contains("\"dry_run\":true")), "{log}");
    assert!(!log.contains("\"event\":\"start\""), "a dry run started an action: {log}");
}

#[test]
fn applying_hot_write_balance_evens_the_leader_write_flow_within_the_caps_and_then_holds_still() {
    // The setting: the default simulator (3 stores, 64 regions, seed 42), rounds 2 s apart.
    let sim = crate::harness::Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_rounds(&sim, &audit, &["--apply", "--rounds", "15", "--interval", "2s"]);
    assert_eq!(rounds.len(), 15);
    let ratios: Vec<f64> = rounds.iter().map(imbalance).collect();
    let applied: Vec<usize> = rounds
        .iter()
        .map(|r| r["actions"].as_array().expect("actions").iter().filter(|a| a["verdict"] == "applied").count())
        .collect();
    let trace = format!("imbalance per round {ratios:.2?}, applied {applied:?}");
    assert!(ratios[0] > 1.3, "the simulator starts unbalanced: {trace}");
    for r in &rounds {
        assert_eq!(r["dry_run"], false);
        assert!(r["error"].is_null(), "{r}");
    }
    assert!(applied.iter().all(|n| *n <= 4), "more than the per-round cap: {trace}");
    // Within 1.2x of the mean in at most 10 rounds, then at most one move in the next 5.
    let balanced = ratios.iter().position(|r| *r <= 1.2).unwrap_or(usize::MAX);
    assert!(balanced < 10, "not within 1.2x of the mean in 10 rounds: {trace}");
    let after: usize = applied[balanced + 1..(balanced + 6).min(15)].iter().sum();
    assert!(after <= 1, "{after} moves in the 5 rounds after balance (flapping): {trace}");
    // Every applied action was recorded before and after it ran.
    let log = std::fs::read_to_string(&audit).expect("audit");
    let starts = log.lines().filter(|l| l.contains("\"event\":\"start\"")).count();
    let outcomes = log.lines().filter(|l| l.contains("\"event\":\"outcome\"")).count();
    assert!(starts > 0 && outcomes <= starts, "{starts} starts, {outcomes} outcomes");
    assert_eq!(starts, applied.iter().sum::<usize>(), "{trace}");

    // `operator audit` shows the same log: a row per round, proposal, start and outcome.
    let table = run(operator().args(["audit", "tikv", "--audit"]).arg(&audit)).expect_code(0).stdout.clone();
    assert_eq!(table.lines().filter(|l| l.contains(" round ")).count(), 15, "{table}");
    assert_eq!(table.lines().filter(|l| l.contains(" start ")).count(), starts, "{table}");
    assert!(table.contains("hot-write-balance; leader write flow"), "{table}");
    let json = run(operator().args(["audit", "tikv", "--last", "2", "--output", "json", "--audit"]).arg(&audit));
    let events: Vec<serde_json::Value> =
        json.expect_code(0).stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON event")).collect();
    assert!(events.iter().all(|e| e["round"] == 14 || e["round"] == 15), "{events:?}");
    assert_eq!(events.iter().filter(|e| e["event"] == "round").count(), 2, "{events:?}");
}

#[test]
fn audit_of_a_subject_without_a_log_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(operator().env("XDG_STATE_HOME", dir.path()).args(["audit", "tikv"]));
    r.expect_code(2).stderr_has("no audit log at").stderr_has("operator run tikv");
    run(operator().args(["audit", "../tikv"])).expect_code(2).stderr_has("no subject");
}

#[test]
fn evict_leader_in_python_moves_every_hot_leader_off_a_store_within_the_caps_and_keeps_them_off() {
    evict_leader_component();
    let sim = crate::harness::Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let led_by = |store: u64| {
        let regions = sim.subject_json(&["hot-write-regions", "--limit", "1024"]);
        regions.as_array().expect("regions").iter().filter(|r| r["leader_store_id"] == store).count()
    };
    let victim = [1u64, 4, 5].into_iter().max_by_key(|s| led_by(*s)).expect("a store");
    let before = led_by(victim);
    assert!(before > 4, "store {victim} leads {before} hot regions: too few to need several rounds");
    // Rounds enough to move them all at 4 a round, and two more that must have nothing to do.
    let rounds_asked = before.div_ceil(4) + 2;

    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(operator()
        .args(["run", "tikv", "--policy", "evict-leader", "--param", &format!("store={victim}")])
        .args(["--apply", "--rounds", &rounds_asked.to_string(), "--interval", "500ms", "--output", "json", "--audit"])
        .arg(dir.path().join("audit.jsonl"))
        .args(sim.endpoints()));
    let rounds: Vec<serde_json::Value> =
        r.expect_code(0).stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON round")).collect();
    assert_eq!(rounds.len(), rounds_asked);
    let mut moved = 0;
    for round in &rounds {
        assert!(round["error"].is_null(), "{round}");
        let actions = round["actions"].as_array().expect("actions");
        let applied: Vec<&serde_json::Value> = actions.iter().filter(|a| a["verdict"] == "applied").collect();
        assert!(applied.len() <= 4, "more than the per-round cap: {round}");
        for a in &applied {
            assert_ne!(a["to_store_id"], victim, "{a}");
            assert!(a["reason"].as_str().is_some_and(|s| s.contains(&format!("store {victim}"))), "{a}");
        }
        moved += applied.len();
    }
    assert!(moved >= before, "{moved} moves for {before} leaders");
    assert_eq!(led_by(victim), 0, "store {victim} still leads hot regions after: {rounds:?}");
    // Once the store leads nothing, a round proposes nothing.
    let last = &rounds[rounds_asked - 1];
    assert_eq!(last["actions"].as_array().map(Vec::len), Some(0), "{last}");

    // A store that is not in the cluster, or no store at all: a named policy error each round.
    let r = run(operator()
        .args(["run", "tikv", "--policy", "evict-leader", "--param", "store=999", "--rounds", "1"])
        .args(["--output", "json", "--audit"])
        .arg(dir.path().join("other.jsonl"))
        .args(sim.endpoints()));
    let round: serde_json::Value = serde_json::from_str(r.expect_code(0).stdout.trim()).expect("json");
    assert!(round["error"].as_str().is_some_and(|e| e.contains("store 999 is not in this cluster")), "{round}");
}

#[test]
fn ctrl_c_ends_the_loop_between_rounds_with_exit_code_0() {
    use std::io::BufRead as _;
    let sim = crate::harness::Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = operator()
        .args(["run", "tikv", "--policy", "hot-write-balance", "--output", "json", "--interval", "60s", "--audit"])
        .arg(dir.path().join("audit.jsonl"))
        .args(sim.endpoints())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a round");
    let round: serde_json::Value = serde_json::from_str(&first).expect("json");
    assert_eq!(round["round"], 1);
    // SAFETY: signalling a child process this test spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_parameter_the_policy_does_not_take_or_rejects_is_refused_before_the_first_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let base = || {
        let mut c = operator();
        c.args(["run", "tikv", "--policy", "hot-write-balance", "--rounds", "1", "--audit"]).arg(&audit);
        c
    };
    run(base().args(["--param", "nope=1"]))
        .expect_code(2)
        .stderr_has("policy hot-write-balance has no parameter `nope`; it takes tolerance, min-region-rate");
    run(base().args(["--param", "tolerance=fast"])).expect_code(2).stderr_has("tolerance must be a ratio >= 1");
    assert!(!audit.exists(), "a refused start wrote an audit log");
}
