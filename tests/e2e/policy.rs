//! Policy components (`operator:policy`): the built-in `hot-write-balance` called through the
//! host's policy client, and its proposals through the gate.

use operator_host::gate::{self, Action, GateLimits, GateState, Round, Verdict};
use operator_host::policy::{Observation, PolicyClient, PolicyError};
use operator_host::subject::{ClusterStore, Region, StoreState};
use operator_host::{CallError, Policy, Runtime, RuntimeOptions};

use crate::harness::{operator, root, run, test_component};

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
