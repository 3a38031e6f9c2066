//! Test fixture for `operator check`: the TiKV adapter that passes every id it returns (store ids,
//! region ids, leader and peer store ids, the store ids of `leaders-per-store`) through `f64`, as a
//! JSON parser without 64-bit integers would. Ids below 2^53 come out unchanged, larger ones
//! rounded. It breaks rule `ids-exact` and nothing else.

use tikv_adapter::Host;
use tikv_adapter::bindings::exports::operator::core::subject::Guest;
use tikv_adapter::bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, Region, Store, SubjectError, SubjectInfo,
};

/// The real adapter, but for its flaw.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Flawed;

impl Guest for Flawed {
    fn describe() -> SubjectInfo {
        SubjectInfo { description: "TiKV adapter with a flaw: ids through f64".into(), ..tikv_adapter::describe() }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        let mut stores = tikv_adapter::stores(&Host)?;
        for s in &mut stores {
            s.id = through_f64(s.id);
        }
        Ok(stores)
    }

    fn get_hot_write_regions(limit: u32) -> Result<Vec<Region>, SubjectError> {
        let mut regions = tikv_adapter::hot_write_regions(&Host, limit)?;
        for r in &mut regions {
            r.id = through_f64(r.id);
            r.leader_store_id = r.leader_store_id.map(through_f64);
            for p in &mut r.peer_store_ids {
                *p = through_f64(*p);
            }
        }
        Ok(regions)
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        let mut metrics = tikv_adapter::metrics(&Host)?;
        for c in &mut metrics.leaders_per_store {
            c.store_id = through_f64(c.store_id);
        }
        Ok(metrics)
    }

    fn transfer_leader(region_id: u64, to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        tikv_adapter::transfer_leader(&Host, region_id, to_store_id)
    }
}

/// The flaw: an id through a double, exact only below 2^53.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn through_f64(id: u64) -> u64 {
    (id as f64) as u64
}

// Exported only from the wasm build, like the real adapter.
#[cfg(target_arch = "wasm32")]
tikv_adapter::bindings::export!(Flawed with_types_in tikv_adapter::bindings);
