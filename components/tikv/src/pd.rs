//! PD's HTTP API shapes (v7.1–v8.5) and their mapping to the Subject records.
//!
//! Facts this follows (see the project's wire-format notes): every protobuf-derived field is
//! `omitempty`, so zero values (`state` Up, `role` Voter, empty labels) are absent; ids are
//! u64 and can exceed 2^53, so they are parsed as integers, never through f64; store sizes are
//! go-units strings; region sizes are MiB; `written_bytes` is the amount in the last heartbeat
//! interval; hotspot maps are keyed by store-id strings; `/region/id/{id}` answers an unknown
//! id with 200 and an all-zero object (v8) or `null` (v7.1).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::bindings::operator::core::types::{Label, Region, Store, StoreState, SubjectError};
use crate::bytesize;

#[derive(Debug, Deserialize)]
pub struct StoresInfo {
    #[serde(default)]
    pub stores: Option<Vec<StoreInfo>>,
}

#[derive(Debug, Deserialize)]
pub struct StoreInfo {
    pub store: MetaStore,
    #[serde(default)]
    pub status: StoreStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetaStore {
    pub id: u64,
    pub address: String,
    pub state: i64,
    pub labels: Vec<PdLabel>,
    pub version: String,
    pub peer_address: String,
    pub status_address: String,
    pub git_hash: String,
    pub start_timestamp: i64,
    pub deploy_path: String,
    pub last_heartbeat: i64,
    pub node_state: i64,
    pub state_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PdLabel {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoreStatus {
    pub capacity: Option<String>,
    pub available: Option<String>,
    pub used_size: Option<String>,
    pub leader_count: u64,
    pub region_count: u64,
    pub leader_score: f64,
    pub region_score: f64,
    pub slow_score: Option<u64>,
    pub is_busy: bool,
    pub last_heartbeat_ts: Option<String>,
    pub uptime: Option<String>,
}

/// The state PD reports: `state_name` when present (it alone knows Disconnected and Down),
/// else the numeric `state` (absent = 0 = Up).
pub fn store_state(s: &MetaStore) -> StoreState {
    match s.state_name.to_ascii_lowercase().as_str() {
        "up" => StoreState::Up,
        "offline" => StoreState::Offline,
        "disconnected" => StoreState::Disconnected,
        "down" => StoreState::Down,
        "tombstone" => StoreState::Tombstone,
        "" => match s.state {
            0 => StoreState::Up,
            1 => StoreState::Offline,
            2 => StoreState::Tombstone,
            _ => StoreState::Unknown,
        },
        _ => StoreState::Unknown,
    }
}

fn size(store: u64, field: &str, value: &Option<String>) -> Result<u64, SubjectError> {
    match value {
        None => Ok(0),
        Some(text) => bytesize::parse(text).ok_or_else(|| {
            SubjectError::BadResponse(format!("pd /pd/api/v1/stores: store {store} has {field} {text:?}, not a size"))
        }),
    }
}

/// Maps one PD store to the contract's record.
pub fn to_store(info: StoreInfo) -> Result<Store, SubjectError> {
    let StoreInfo { store: s, status } = info;
    let mut details = Vec::new();
    let mut detail = |key: &str, value: String| {
        if !value.is_empty() {
            details.push(Label { key: key.into(), value });
        }
    };
    detail("peer-address", s.peer_address.clone());
    detail("status-address", s.status_address.clone());
    detail("git-hash", s.git_hash.clone());
    if s.start_timestamp > 0 {
        detail("start-timestamp", s.start_timestamp.to_string());
    }
    detail("last-heartbeat", status.last_heartbeat_ts.clone().unwrap_or_default());
    detail("uptime", status.uptime.clone().unwrap_or_default());
    detail("leader-score", format!("{}", status.leader_score));
    detail("region-score", format!("{}", status.region_score));
    if let Some(slow) = status.slow_score {
        detail("slow-score", slow.to_string());
    }
    if status.is_busy {
        detail("busy", "true".into());
    }
    Ok(Store {
        id: s.id,
        state: store_state(&s),
        labels: s.labels.into_iter().map(|l| Label { key: l.key, value: l.value }).collect(),
        version: s.version,
        capacity_bytes: size(s.id, "capacity", &status.capacity)?,
        available_bytes: size(s.id, "available", &status.available)?,
        used_bytes: size(s.id, "used_size", &status.used_size)?,
        leader_count: status.leader_count,
        region_count: status.region_count,
        address: s.address,
        details,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HotRegions {
    pub as_peer: BTreeMap<String, Option<HotPeersStat>>,
    pub as_leader: BTreeMap<String, Option<HotPeersStat>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HotPeersStat {
    pub statistics: Option<Vec<HotPeerStat>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct HotPeerStat {
    pub store_id: u64,
    pub region_id: u64,
    pub stores: Vec<u64>,
    pub is_leader: bool,
    pub hot_degree: i64,
    pub flow_bytes: f64,
    pub flow_keys: f64,
}

/// The hottest regions by write flow (bytes/s), one entry per region (its leader's if
/// listed), highest first.
pub fn hottest(hot: HotRegions) -> Vec<HotPeerStat> {
    let mut by_region: BTreeMap<u64, HotPeerStat> = BTreeMap::new();
    // Leaders first: a region's leader entry wins over its followers'.
    for (map, leader) in [(hot.as_leader, true), (hot.as_peer, false)] {
        for (store_key, stat) in map {
            let Some(stats) = stat.and_then(|s| s.statistics) else { continue };
            let store_id = store_key.parse::<u64>().unwrap_or_default();
            for mut s in stats {
                if s.store_id == 0 {
                    s.store_id = store_id;
                }
                s.is_leader |= leader;
                match by_region.get(&s.region_id) {
                    Some(existing) if existing.is_leader && !s.is_leader => {}
                    Some(existing) if existing.is_leader == s.is_leader && existing.flow_bytes >= s.flow_bytes => {}
                    _ => {
                        by_region.insert(s.region_id, s);
                    }
                }
            }
        }
    }
    let mut list: Vec<HotPeerStat> = by_region.into_values().collect();
    list.sort_by(|a, b| b.flow_bytes.total_cmp(&a.flow_bytes).then(a.region_id.cmp(&b.region_id)));
    list
}

#[derive(Debug, Deserialize)]
pub struct RegionsInfo {
    #[serde(default)]
    pub regions: Option<Vec<RegionInfo>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RegionInfo {
    pub id: u64,
    pub peers: Vec<MetaPeer>,
    pub leader: Option<MetaPeer>,
    pub written_bytes: u64,
    pub written_keys: u64,
    pub read_bytes: u64,
    pub read_keys: u64,
    /// MiB.
    pub approximate_size: i64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct MetaPeer {
    pub id: u64,
    pub store_id: u64,
    pub role_name: String,
    pub is_learner: bool,
}

impl RegionInfo {
    /// The leader's store, if PD knows a leader (an unknown leader is `{"role_name":""}`).
    pub fn leader_store(&self) -> Option<u64> {
        self.leader.as_ref().map(|l| l.store_id).filter(|&s| s != 0)
    }
}

/// Maps a PD region (plus hotspot rates, when known) to the contract's record.
pub fn to_region(r: &RegionInfo, hot: Option<&HotPeerStat>) -> Region {
    let mut peers: Vec<u64> = r.peers.iter().map(|p| p.store_id).filter(|&s| s != 0).collect();
    if peers.is_empty()
        && let Some(h) = hot
    {
        peers = h.stores.clone();
    }
    Region {
        id: r.id,
        leader_store_id: r.leader_store().or(hot.filter(|h| h.is_leader).map(|h| h.store_id)),
        peer_store_ids: peers,
        written_bytes: r.written_bytes,
        written_keys: r.written_keys,
        read_bytes: r.read_bytes,
        read_keys: r.read_keys,
        approximate_size_bytes: u64::try_from(r.approximate_size.max(0)).unwrap_or(0).saturating_mul(1 << 20),
        write_bytes_per_second: hot.map(|h| h.flow_bytes),
        write_keys_per_second: hot.map(|h| h.flow_keys),
    }
}

/// A region list (`/pd/api/v1/regions`, `/regions/writeflow`, compact JSON) as Subject
/// regions, in PD's order. The benches time it on a 100,000-region cluster, natively and in wasm.
pub fn parse_regions(path: &str, body: &[u8]) -> Result<Vec<Region>, SubjectError> {
    let info: RegionsInfo = crate::client::parse(crate::client::PD, path, body)?;
    Ok(info.regions.unwrap_or_default().iter().map(|r| to_region(r, None)).collect())
}

/// `/regions/count`: `{"count":N,"regions":null}`.
#[derive(Debug, Deserialize)]
pub struct RegionCount {
    #[serde(default)]
    pub count: u64,
}
