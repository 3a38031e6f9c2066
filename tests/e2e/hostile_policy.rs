//! Hostile policies against the real control loop: `operator run tikv --policy <hostile-policy>
//! --apply` on the simulator, with the test component `tests/components/hostile-policy`, whose
//! `mode` parameter picks the misbehaviour. A policy that spins, traps or returns too much is a
//! named error for its round and the loop goes on; every proposal the gate refuses is named in
//! the output and never executed: PD gets no operator for it, and the audit log no `start`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::harness::{Sim, operator, run, test_component};

/// `operator run tikv --policy <hostile-policy> --param mode=<mode> --apply`, for `rounds`
/// rounds 100ms apart; asserts exit code 0 and that every round was reported, in order.
fn run_hostile(sim: &Sim, audit: &Path, mode: &str, rounds: u64, extra: &[&str]) -> Vec<Value> {
    let r = run(operator()
        .args(["run", "tikv", "--policy"])
        .arg(test_component("hostile-policy"))
        .arg("--param")
        .arg(format!("mode={mode}"))
        .args(["--output", "json", "--apply", "--interval", "100ms", "--rounds"])
        .arg(rounds.to_string())
        .arg("--audit")
        .arg(audit)
        .args(extra)
        .args(sim.endpoints()));
    let reports: Vec<Value> = r
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let numbers: Vec<u64> = reports.iter().map(|r| r["round"].as_u64().expect("round")).collect();
    assert_eq!(numbers, (1..=rounds).collect::<Vec<_>>(), "not every round was reported:\n{}", r.stdout);
    for report in &reports {
        assert_eq!(report["dry_run"], false, "{report}");
    }
    reports
}

fn actions(round: &Value) -> &Vec<Value> {
    round["actions"].as_array().expect("actions")
}

/// (region, to store) of a reported action or an audit record's action.
fn target(action: &Value) -> (u64, u64) {
    (action["region_id"].as_u64().expect("region_id"), action["to_store_id"].as_u64().expect("to_store_id"))
}

/// The audit log's events.
fn audit_events(audit: &Path) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The actions the audit log says were started (recorded before executing).
fn started(audit: &Path) -> Vec<(u64, u64)> {
    audit_events(audit).iter().filter(|e| e["event"] == "start").map(|e| target(&e["action"])).collect()
}

/// Every transfer-leader operator PD accepted (the simulator keeps finished ones for 10 min).
fn pd_operators(sim: &Sim) -> BTreeSet<(u64, u64)> {
    let cluster = sim.sim.cluster.lock().unwrap_or_else(|p| p.into_inner());
    cluster.operators.values().map(|o| (o.region_id, o.to_store)).collect()
}

/// Two rounds of a policy making one proposal that the gate refuses as `refusal`: each round
/// reports it refused with that name, and nothing is executed. Returns the rounds.
fn assert_refused_and_never_executed(sim: &Sim, mode: &str, refusal: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(sim, &audit, mode, 2, &[]);
    for r in &rounds {
        assert!(r["error"].is_null(), "{r}");
        let a = actions(r);
        assert_eq!(a.len(), 1, "{r}");
        assert_eq!(a[0]["verdict"], "refused", "{r}");
        let detail = a[0]["detail"].as_str().expect("detail");
        assert!(detail.starts_with(&format!("{refusal}: ")), "refused for another reason than {refusal}: {detail}");
    }
    let verdicts: Vec<Value> = audit_events(&audit)
        .iter()
        .filter(|e| e["event"] == "round")
        .flat_map(|e| {
            e["proposals"].as_array().expect("proposals").iter().map(|p| p["verdict"].clone()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(verdicts, [refusal, refusal], "the audit log's verdicts");
    assert_eq!(started(&audit), vec![], "a refused action was started");
    assert_eq!(pd_operators(sim), BTreeSet::new(), "PD got an operator for a refused action");
    rounds
}

#[test]
fn a_policy_that_never_returns_is_stopped_at_its_deadline_and_the_loop_goes_on() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "spin", 2, &["--deadline", "1s"]);
    for r in &rounds {
        let error = r["error"].as_str().unwrap_or_else(|| panic!("no error for a spinning policy: {r}"));
        assert!(error.starts_with("decide: deadline-exceeded: "), "{error}");
        assert!(error.contains("of guest time; the deadline is 1s"), "{error}");
        assert_eq!(actions(r).len(), 0, "{r}");
        // The round observed before it decided.
        assert_eq!(r["stores"].as_array().expect("stores").len(), 3, "{r}");
    }
    assert_eq!(started(&audit), vec![]);
    assert_eq!(pd_operators(&sim), BTreeSet::new());
}

#[test]
fn a_panicking_policy_is_a_named_trap_with_its_message_and_the_loop_goes_on() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "trap", 2, &[]);
    for r in &rounds {
        let error = r["error"].as_str().unwrap_or_else(|| panic!("no error for a trapping policy: {r}"));
        assert!(error.starts_with("decide: trap: "), "{error}");
        assert!(error.contains("hostile policy: trap mode"), "the panic message is lost: {error}");
        assert_eq!(actions(r).len(), 0, "{r}");
    }
    assert_eq!(started(&audit), vec![]);
    assert_eq!(pd_operators(&sim), BTreeSet::new());
}

#[test]
fn a_million_proposals_are_cut_to_256_considered_and_at_most_the_round_cap_runs() {
    let sim = Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    // A million proposals are ~80 MB as JSON: over the default output limit (see the next test).
    let rounds = run_hostile(&sim, &audit, "flood", 2, &["--output-limit", "120MiB"]);
    for (i, r) in rounds.iter().enumerate() {
        assert!(r["error"].is_null(), "{}", r["error"]);
        assert_eq!(r["dropped_proposals"], 999_744, "{}", r["dropped_proposals"]);
        let a = actions(r);
        assert_eq!(a.len(), 256);
        let applied = a.iter().filter(|a| a["verdict"] == "applied").count();
        assert!(applied <= 4, "{applied} applied: more than the per-round cap");
        if i == 0 {
            // On a quiet cluster the first distinct moves are valid: the cap is what stops them.
            assert_eq!(applied, 4, "{r}");
        }
        for a in a.iter().filter(|a| a["verdict"] != "applied") {
            assert_eq!(a["verdict"], "refused", "{a}");
            let detail = a["detail"].as_str().expect("detail");
            let name = detail.split(':').next().unwrap_or_default();
            assert!(["duplicate", "round-cap", "in-flight", "in-flight-cap", "cooldown"].contains(&name), "{detail}");
        }
    }
    // The audit log holds the 256 considered per round, not a million.
    let considered: Vec<usize> = audit_events(&audit)
        .iter()
        .filter(|e| e["event"] == "round")
        .map(|e| e["proposals"].as_array().expect("proposals").len())
        .collect();
    assert_eq!(considered, vec![256, 256]);
    let starts = started(&audit);
    assert!(starts.len() <= 8, "{} actions started in two rounds", starts.len());
    assert!(pd_operators(&sim).iter().all(|o| starts.contains(o)), "PD got an operator the loop did not start");
}

#[test]
fn a_million_proposals_over_the_output_limit_are_a_named_error_for_the_round() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "flood", 2, &[]);
    for r in &rounds {
        let error = r["error"].as_str().unwrap_or_else(|| panic!("no error for a flood over the limit: {r}"));
        assert!(error.starts_with("decide: output-too-large: "), "{error}");
        assert_eq!(actions(r).len(), 0, "{r}");
    }
    assert_eq!(started(&audit), vec![]);
    assert_eq!(pd_operators(&sim), BTreeSet::new());
}

#[test]
fn a_reason_of_megabytes_is_cut_to_512_bytes_and_its_valid_action_still_runs() {
    let sim = Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "huge-reason", 1, &[]);
    let a = actions(&rounds[0]);
    assert_eq!(a.len(), 1, "{}", rounds[0]);
    assert_eq!(a[0]["verdict"], "applied", "{}", a[0]);
    let reason = a[0]["reason"].as_str().expect("reason");
    // 'a' then two-byte characters: cut at 512 bytes, the character boundary is 511.
    assert_eq!(reason.len(), 511, "{reason}");
    assert!(reason.starts_with("aé"), "{reason}");
    let log = std::fs::read_to_string(&audit).expect("audit");
    assert!(log.len() < 64 * 1024, "the audit log took {} bytes for one round", log.len());
    assert_eq!(started(&audit), vec![target(&a[0])]);
    assert_eq!(pd_operators(&sim), BTreeSet::from([target(&a[0])]));
}

#[test]
fn an_error_of_megabytes_is_cut_before_it_is_printed_or_recorded() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "huge-error", 2, &[]);
    for r in &rounds {
        let error = r["error"].as_str().expect("a round error");
        assert!(error.starts_with("decide: failed:") && error.len() <= 4096, "{} bytes", error.len());
    }
    let log = std::fs::read_to_string(&audit).expect("audit");
    assert!(log.len() < 16 * 1024, "the audit log took {} bytes for two rounds", log.len());
    assert_eq!(log.lines().filter(|l| l.contains("\"event\":\"round-failed\"")).count(), 2, "{log}");
    // The table shows the lines indented under the round, never as a round of their own.
    let table = run(operator().args(["audit", "tikv", "--audit"]).arg(&audit));
    assert!(!table.expect_code(0).stdout.lines().any(|l| l.starts_with("round 99")), "{}", table.stdout);
}

#[test]
fn a_proposal_for_a_region_not_observed_is_refused_as_unknown_region_and_never_executed() {
    let sim = Sim::start(Default::default());
    assert_refused_and_never_executed(&sim, "unknown-region", "unknown-region");
}

#[test]
fn a_proposal_for_a_store_not_observed_is_refused_as_unknown_store_and_never_executed() {
    let sim = Sim::start(Default::default());
    assert_refused_and_never_executed(&sim, "unknown-store", "unknown-store");
}

#[test]
fn a_proposal_for_a_store_without_a_peer_is_refused_as_not_a_peer_and_never_executed() {
    // Five stores and three replicas: every region lacks a peer on two stores.
    let sim = Sim::start(tikv_simulator::Config { stores: 5, ..Default::default() });
    assert_refused_and_never_executed(&sim, "not-a-peer", "not-a-peer");
}

#[test]
fn a_proposal_for_the_current_leader_is_refused_as_already_leader_and_never_executed() {
    let sim = Sim::start(Default::default());
    assert_refused_and_never_executed(&sim, "current-leader", "already-leader");
}

#[test]
fn a_proposal_for_a_down_store_is_refused_as_store_not_up_and_never_executed() {
    // A stopped store is Down at once.
    let sim = Sim::start(tikv_simulator::Config {
        disconnect_after: std::time::Duration::ZERO,
        down_after: std::time::Duration::ZERO,
        ..Default::default()
    });
    let down = {
        let mut cluster = sim.sim.cluster.lock().unwrap_or_else(|p| p.into_inner());
        let id = cluster.stores.last().expect("a store").id;
        assert!(cluster.stop_store(id));
        id
    };
    let rounds = assert_refused_and_never_executed(&sim, "down-store", "store-not-up");
    for r in &rounds {
        let store = r["stores"].as_array().expect("stores").iter().find(|s| s["id"] == down).cloned();
        assert_eq!(store.unwrap_or_else(|| panic!("store {down} not observed: {r}"))["state"], "down", "{r}");
        let action = &actions(r)[0];
        assert_eq!(action["to_store_id"], down, "{action}");
        assert_eq!(action["detail"], format!("store-not-up: store {down} is down"), "{action}");
    }
}

#[test]
fn a_mixed_round_applies_its_valid_proposals_and_refuses_the_rest_by_name() {
    let sim = Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let rounds = run_hostile(&sim, &audit, "mixed", 2, &[]);
    let mut applied = Vec::new();
    for r in &rounds {
        assert!(r["error"].is_null(), "{r}");
        let a = actions(r);
        assert_eq!(a.len(), 6, "{r}");
        for valid in &a[..2] {
            assert_eq!(valid["verdict"], "applied", "{valid}");
            applied.push(target(valid));
        }
        let refusals: Vec<&str> = a[2..]
            .iter()
            .map(|a| {
                assert_eq!(a["verdict"], "refused", "{a}");
                a["detail"].as_str().expect("detail").split(':').next().unwrap_or_default()
            })
            .collect();
        assert_eq!(refusals, ["unknown-region", "unknown-store", "already-leader", "duplicate"], "{r}");
    }
    // Four distinct regions were moved (the policy skips regions it acted on), and only those.
    assert_eq!(applied.iter().map(|(region, _)| region).collect::<BTreeSet<_>>().len(), 4, "{applied:?}");
    assert_eq!(started(&audit), applied);
    assert_eq!(pd_operators(&sim), applied.iter().copied().collect::<BTreeSet<_>>());
}
