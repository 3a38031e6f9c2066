//! A Subject adapter built against `operator:core@0.1.0` and pinned there: when a newer
//! version of the contracts lands, this component keeps its 0.1.0 imports and exports, and
//! `cli::a_component_built_against_operator_core_0_1_0_still_runs` proves the host still runs
//! it. Keep `path` on `wit/since_v0.1.0` (see `wit/README.md`).
//!
//! It reports one store per endpoint its grants name (through the 0.1.0 `http` import) and logs
//! through the 0.1.0 `log` import.

mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "subject-adapter" });
}

use bindings::exports::operator::core::subject::Guest;
use bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, Region, Store, StoreState, SubjectError, SubjectInfo,
};
use bindings::operator::core::{http, log};

struct Fixture;

impl Guest for Fixture {
    fn describe() -> SubjectInfo {
        SubjectInfo {
            name: "v0.1.0 fixture".into(),
            version: "0.1.0".into(),
            description: "a Subject adapter pinned to operator:core@0.1.0".into(),
            actions: vec!["get-stores".into()],
        }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        log::log(log::Level::Info, "listing endpoints as stores");
        Ok(http::endpoints()
            .into_iter()
            .enumerate()
            .map(|(i, name)| Store {
                id: i as u64 + 1,
                address: name,
                state: StoreState::Up,
                labels: vec![],
                version: "0.1.0".into(),
                capacity_bytes: 0,
                available_bytes: 0,
                used_bytes: 0,
                leader_count: 0,
                region_count: 0,
                details: vec![],
            })
            .collect())
    }

    fn get_hot_write_regions(_limit: u32) -> Result<Vec<Region>, SubjectError> {
        Err(SubjectError::Unsupported("fixture".into()))
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        Err(SubjectError::Unsupported("fixture".into()))
    }

    fn transfer_leader(_region_id: u64, _to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        Err(SubjectError::Unsupported("fixture".into()))
    }
}

bindings::export!(Fixture with_types_in bindings);
