//! The TiKV Subject adapter.
//!
//! It speaks to PD (endpoint `pd`) and Prometheus (endpoint `prometheus`) only through the
//! host's `http` import, so the operator's grant manifest decides exactly what it may read and
//! change. The logic is written against the [`client::Http`] trait: in the component that is
//! the host import; in tests it is a transport replaying recorded PD bodies.

mod bytesize;
pub mod client;
pub mod pd;
pub mod prom;

/// Generated bindings for `world subject-adapter`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "subject-adapter",
        additional_derives: [PartialEq, Clone],
        // Lets crates reusing the adapter (test components) export their own implementation
        // with `tikv_adapter::bindings::export!`.
        pub_export_macro: true,
    });
}

use bindings::exports::operator::core::subject::Guest;
use bindings::operator::core::log::Level;
use bindings::operator::core::types::{
    ClusterMetrics, LeaderTransfer, Region, Store, StoreCount, StoreState, SubjectError, SubjectInfo,
};
use client::{Http, PD, PROMETHEUS, get, pd_json, pd_message, post_json};

/// The most regions `get-hot-write-regions` returns (PD's own cap on top-N endpoints).
pub const MAX_LIMIT: u32 = 10_240;
/// How long `transfer-leader` watches for the new leader.
pub const TRANSFER_WAIT_MS: u64 = 15_000;
/// Pause between polls of the region while waiting.
pub const POLL_INTERVAL_MS: u64 = 200;

/// `describe`.
pub fn describe() -> SubjectInfo {
    SubjectInfo {
        name: "tikv".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "TiKV through PD's HTTP API and Prometheus".into(),
        actions: ["stores", "hot-write-regions", "metrics", "transfer-leader"].map(String::from).to_vec(),
    }
}

/// `get-stores`: every store PD lists (Up, Offline, Disconnected, Down; tombstones excluded).
pub fn stores(http: &dyn Http) -> Result<Vec<Store>, SubjectError> {
    let path = "/pd/api/v1/stores";
    let info: pd::StoresInfo = pd_json(path, get(http, PD, path, &[])?)?;
    let mut stores = Vec::new();
    for s in info.stores.unwrap_or_default() {
        let store = pd::to_store(s)?;
        if store.state != StoreState::Tombstone {
            stores.push(store);
        }
    }
    stores.sort_by_key(|s| s.id);
    Ok(stores)
}

/// `get-hot-write-regions`: PD's write hotspots joined with region details, highest write
/// flow first. Hotness needs minutes of sustained load, so when PD lists fewer hot regions
/// than asked, the rest comes from `/regions/writeflow` (regions by bytes written in their
/// last heartbeat), skipping regions that wrote nothing.
pub fn hot_write_regions(http: &dyn Http, limit: u32) -> Result<Vec<Region>, SubjectError> {
    let limit = limit.min(MAX_LIMIT) as usize;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let path = "/pd/api/v1/hotspot/regions/write";
    let hot: pd::HotRegions = pd_json(path, get(http, PD, path, &[])?)?;
    let mut hottest = pd::hottest(hot);
    hottest.truncate(limit);

    let mut regions = Vec::with_capacity(limit);
    for stat in &hottest {
        let detail = region(http, stat.region_id)?;
        match detail {
            Some(r) => regions.push(pd::to_region(&r, Some(stat))),
            // Merged or gone since the hotspot report: keep what the report says.
            None => {
                regions.push(pd::to_region(&pd::RegionInfo { id: stat.region_id, ..Default::default() }, Some(stat)))
            }
        }
    }

    if regions.len() < limit {
        if hottest.is_empty() {
            http.log(Level::Info, "PD reports no write hotspots yet; ranking regions by bytes written instead");
        }
        let path = "/pd/api/v1/regions/writeflow";
        let top: pd::RegionsInfo = pd_json(path, get(http, PD, path, &[("limit", limit.to_string())])?)?;
        for r in top.regions.unwrap_or_default() {
            if regions.len() >= limit {
                break;
            }
            if r.written_bytes > 0 && !regions.iter().any(|x| x.id == r.id) {
                regions.push(pd::to_region(&r, None));
            }
        }
    }
    Ok(regions)
}

/// One region by id; `None` when PD does not know it (v8 answers an all-zero object, v7.1 `null`).
pub fn region(http: &dyn Http, id: u64) -> Result<Option<pd::RegionInfo>, SubjectError> {
    let path = format!("/pd/api/v1/region/id/{id}");
    let reply = get(http, PD, &path, &[])?;
    if reply.status == 404 {
        return Ok(None);
    }
    let r: Option<pd::RegionInfo> = pd_json(&path, reply)?;
    Ok(r.filter(|r| r.id != 0))
}

/// `get-cluster-metrics`: counts from PD plus per-store samples from Prometheus.
pub fn metrics(http: &dyn Http) -> Result<ClusterMetrics, SubjectError> {
    let stores = stores(http)?;
    let path = "/pd/api/v1/regions/count";
    let count: pd::RegionCount = pd_json(path, get(http, PD, path, &[])?)?;
    let leaders_per_store = stores.iter().map(|s| StoreCount { store_id: s.id, count: s.leader_count }).collect();

    let mut samples = Vec::new();
    for q in prom::QUERIES {
        let reply = get(http, PROMETHEUS, "/api/v1/query", &[("query", q.promql.to_string())])?;
        samples.extend(prom::samples(q, reply.status, &reply.body)?);
    }
    Ok(ClusterMetrics { store_count: stores.len() as u64, region_count: count.count, leaders_per_store, samples })
}

/// `transfer-leader`: asks PD for a transfer-leader operator, then watches the region until
/// its leader is on `to_store` or [`TRANSFER_WAIT_MS`] passes. PD's refusals (no voter on the
/// target store, already leader, an operator already running, region not found...) come back
/// as `rejected` with PD's own message.
pub fn transfer_leader(http: &dyn Http, region_id: u64, to_store: u64) -> Result<LeaderTransfer, SubjectError> {
    let from = region(http, region_id)?.and_then(|r| r.leader_store());
    let body = serde_json::json!({ "name": "transfer-leader", "region_id": region_id, "to_store_id": to_store });
    let path = "/pd/api/v1/operators";
    let reply = post_json(http, PD, path, &body)?;
    match reply.status {
        200..=299 => {}
        503 => return Err(SubjectError::Unreachable(format!("pd {path}: HTTP 503: {}", pd_message(&reply.body)))),
        400 | 500 => return Err(SubjectError::Rejected(pd_message(&reply.body))),
        s => return Err(SubjectError::BadResponse(format!("pd {path}: HTTP {s}: {}", pd_message(&reply.body)))),
    }
    http.log(Level::Info, &format!("PD accepted the transfer of region {region_id} to store {to_store}; watching"));

    let start = http.now_ms();
    loop {
        let waited = http.now_ms().saturating_sub(start);
        let answer = |confirmed| LeaderTransfer {
            region_id,
            from_store_id: from,
            to_store_id: to_store,
            confirmed,
            waited_ms: waited,
        };
        // PD has accepted the operator: a failure while watching does not undo it, so it is
        // reported as not yet confirmed (the caller keeps it in flight), never as failed.
        let leader = match region(http, region_id) {
            Ok(r) => r.and_then(|r| r.leader_store()),
            Err(e) => {
                http.log(Level::Warn, &format!("region {region_id}: watching the transfer failed: {e}"));
                return Ok(answer(false));
            }
        };
        if leader == Some(to_store) {
            return Ok(answer(true));
        }
        if waited >= TRANSFER_WAIT_MS {
            http.log(Level::Warn, &format!("region {region_id}: leader still on {leader:?} after {waited} ms"));
            return Ok(answer(false));
        }
        http.sleep_ms(POLL_INTERVAL_MS);
    }
}

/// The host's http import, for the component build (reused by test components).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub struct Host;

impl Http for Host {
    fn send(
        &self,
        request: &bindings::operator::core::http::Request,
    ) -> Result<bindings::operator::core::http::Response, bindings::operator::core::http::HttpError> {
        bindings::operator::core::http::send(request)
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn now_ms(&self) -> u64 {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
    }

    fn log(&self, level: Level, message: &str) {
        bindings::operator::core::log::log(level, message);
    }
}

#[cfg_attr(not(all(target_arch = "wasm32", feature = "export")), allow(dead_code))]
struct Adapter;

impl Guest for Adapter {
    fn describe() -> SubjectInfo {
        describe()
    }

    fn get_stores() -> Result<Vec<Store>, SubjectError> {
        stores(&Host)
    }

    fn get_hot_write_regions(limit: u32) -> Result<Vec<Region>, SubjectError> {
        hot_write_regions(&Host, limit)
    }

    fn get_cluster_metrics() -> Result<ClusterMetrics, SubjectError> {
        metrics(&Host)
    }

    fn transfer_leader(region_id: u64, to_store_id: u64) -> Result<LeaderTransfer, SubjectError> {
        transfer_leader(&Host, region_id, to_store_id)
    }
}

// Exported only from the wasm build: the export symbols' names (`operator:core/subject@...`)
// cannot go into a native shared library, and natively the crate is used as a library. The
// `export` feature (on by default) can turn it off: test components that reuse the adapter as a
// library export their own implementation instead.
#[cfg(all(target_arch = "wasm32", feature = "export"))]
bindings::export!(Adapter with_types_in bindings);

#[cfg(test)]
mod tests;
