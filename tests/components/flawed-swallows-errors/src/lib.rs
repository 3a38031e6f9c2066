//! Test fixture for `operator check`: the TiKV adapter whose reads (`get-stores`,
//! `get-hot-write-regions`, `get-cluster-metrics`) turn every error into an empty success, so an
//! unreachable or refusing cluster looks like an empty one. `describe` and `transfer-leader` are
//! the real ones. It breaks rule `errors-named` and nothing else.

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
        SubjectInfo { description: "TiKV adapter with a flaw: errors swallowed".into(), ..tikv_adapter::describe() }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        // The flaw: an error becomes an empty answer.
        Ok(tikv_adapter::stores(&Host).unwrap_or_default())
    }

    fn get_hot_write_regions(limit: u32) -> Result<Vec<Region>, SubjectError> {
        // The flaw: an error becomes an empty answer.
        Ok(tikv_adapter::hot_write_regions(&Host, limit).unwrap_or_default())
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        // The flaw: an error becomes an empty answer.
        Ok(tikv_adapter::metrics(&Host).unwrap_or(ClusterMetrics {
            store_count: 0,
            region_count: 0,
            leaders_per_store: vec![],
            samples: vec![],
        }))
    }

    fn transfer_leader(region_id: u64, to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        tikv_adapter::transfer_leader(&Host, region_id, to_store_id)
    }
}

// Exported only from the wasm build, like the real adapter.
#[cfg(target_arch = "wasm32")]
tikv_adapter::bindings::export!(Flawed with_types_in tikv_adapter::bindings);
