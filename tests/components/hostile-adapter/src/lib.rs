//! A hostile Subject adapter: `get-stores` never returns, `get-hot-write-regions` traps,
//! `get-cluster-metrics` returns far more than the output limit, and `transfer-leader` spins.
//! A server that calls it must stop each call by name and go on serving.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "subject-adapter" });
}

use bindings::exports::operator::core::subject::Guest;
use bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, MetricSample, Region, Store, SubjectError, SubjectInfo,
};

struct Hostile;

fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

impl Guest for Hostile {
    fn describe() -> SubjectInfo {
        SubjectInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "spins, traps and floods".into(),
            actions: vec!["get-stores".into()],
        }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        spin()
    }

    fn get_hot_write_regions(_limit: u32) -> Result<Vec<Region>, SubjectError> {
        panic!("hostile adapter: trap in get-hot-write-regions")
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        let sample = MetricSample { name: "x".repeat(1024), labels: vec![], value: 0.0, unit: String::new() };
        Ok(ClusterMetrics { store_count: 0, region_count: 0, leaders_per_store: vec![], samples: vec![sample; 40_000] })
    }

    fn transfer_leader(_region_id: u64, _to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        spin()
    }
}

bindings::export!(Hostile with_types_in bindings);
