//! Test fixture for `operator check`: the TiKV adapter whose `get-stores` spins on pure computation
//! for 3 seconds before answering like the real adapter. It breaks rule `fast-enough` and nothing
//! else.

use std::time::{Duration, Instant};

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
        SubjectInfo { description: "TiKV adapter with a flaw: slow stores".into(), ..tikv_adapter::describe() }
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        spin(SPIN);
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

/// How long `get-stores` spins.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
const SPIN: Duration = Duration::from_secs(3);

/// The flaw: burns CPU for `how_long` (a computation the compiler cannot remove).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn spin(how_long: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < how_long {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
}

// Exported only from the wasm build, like the real adapter.
#[cfg(target_arch = "wasm32")]
tikv_adapter::bindings::export!(Flawed with_types_in tikv_adapter::bindings);
