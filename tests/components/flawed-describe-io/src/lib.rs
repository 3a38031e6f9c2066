//! Test fixture for `operator check`: the TiKV adapter whose `describe` first sends
//! `GET /pd/api/v1/version` to PD (ignoring the outcome) before answering like the real one. It
//! breaks rule `describe-pure` and nothing else.

use tikv_adapter::Host;
use tikv_adapter::bindings::exports::operator::core::subject::Guest;
use tikv_adapter::bindings::operator::core::http::{self, Method, Request};
use tikv_adapter::bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, Region, Store, SubjectError, SubjectInfo,
};
use tikv_adapter::client::PD;

/// The real adapter, but for its flaw.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Flawed;

impl Guest for Flawed {
    fn describe() -> SubjectInfo {
        // The flaw: describe talks to the cluster.
        let _ = http::send(&Request {
            endpoint: PD.into(),
            method: Method::Get,
            path: "/pd/api/v1/version".into(),
            query: vec![],
            headers: vec![],
            body: None,
            timeout_ms: Some(5_000),
        });
        SubjectInfo { description: "TiKV adapter with a flaw: describe does I/O".into(), ..tikv_adapter::describe() }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        tikv_adapter::stores(&Host)
    }

    fn get_hot_write_regions(limit: u32) -> Result<Vec<Region>, SubjectError> {
        tikv_adapter::hot_write_regions(&Host, limit)
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        tikv_adapter::metrics(&Host)
    }

    fn transfer_leader(region_id: u64, to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        tikv_adapter::transfer_leader(&Host, region_id, to_store_id)
    }
}

// Exported only from the wasm build, like the real adapter.
#[cfg(target_arch = "wasm32")]
tikv_adapter::bindings::export!(Flawed with_types_in tikv_adapter::bindings);
