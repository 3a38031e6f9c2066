//! Test fixture for `operator check`: the TiKV adapter whose `transfer-leader` reports the transfer
//! confirmed (`waited-ms` 0) as soon as PD accepts the operator, without watching the region for the
//! new leader. PD's refusals come back like the real adapter's. It breaks rule `transfer-truthful`
//! and nothing else.

use tikv_adapter::Host;
use tikv_adapter::bindings::exports::operator::core::subject::Guest;
use tikv_adapter::bindings::operator::core::log::Level;
use tikv_adapter::bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, Region, Store, SubjectError, SubjectInfo,
};
use tikv_adapter::client::{Http, PD, pd_message, post_json};

/// The real adapter, but for its flaw.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Flawed;

impl Guest for Flawed {
    fn describe() -> SubjectInfo {
        SubjectInfo {
            description: "TiKV adapter with a flaw: transfers confirmed unwatched".into(),
            ..tikv_adapter::describe()
        }
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
        let from = tikv_adapter::region(&Host, region_id)?.and_then(|r| r.leader_store());
        let body = serde_json::json!({ "name": "transfer-leader", "region_id": region_id, "to_store_id": to_store_id });
        let path = "/pd/api/v1/operators";
        let reply = post_json(&Host, PD, path, &body)?;
        match reply.status {
            200..=299 => {}
            503 => return Err(SubjectError::Unreachable(format!("pd {path}: HTTP 503: {}", pd_message(&reply.body)))),
            400 | 500 => return Err(SubjectError::Rejected(pd_message(&reply.body))),
            s => return Err(SubjectError::BadResponse(format!("pd {path}: HTTP {s}: {}", pd_message(&reply.body)))),
        }
        Host.log(Level::Info, &format!("PD accepted the transfer of region {region_id} to store {to_store_id}"));
        // The flaw: confirmed without looking.
        Ok(LeaderTransfer { region_id, from_store_id: from, to_store_id, confirmed: true, waited_ms: 0 })
    }
}

// Exported only from the wasm build, like the real adapter.
#[cfg(target_arch = "wasm32")]
tikv_adapter::bindings::export!(Flawed with_types_in tikv_adapter::bindings);
