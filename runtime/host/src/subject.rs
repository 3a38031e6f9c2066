//! Calling a Subject adapter: typed calls, and the records they return as plain Rust types.
//!
//! The records mirror `wit/types.wit` one to one; they serialize with the contract's field
//! names in snake_case, which is what `--output json` prints.

use serde::Serialize;

use crate::bindings::subject as b;
use crate::bindings::subject::operator::core::types as t;
use crate::call::{Output, Sandboxed, json_size};
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::sandbox::{CallOutcome, CallState, FailedCall, Policy};

/// Health of a store as the cluster reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum StoreState {
    Up,
    Offline,
    Disconnected,
    Down,
    Tombstone,
    Unknown,
}

impl std::fmt::Display for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreState::Up => "up",
            StoreState::Offline => "offline",
            StoreState::Disconnected => "disconnected",
            StoreState::Down => "down",
            StoreState::Tombstone => "tombstone",
            StoreState::Unknown => "unknown",
        })
    }
}

/// A key/value pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// One storage node (the contract's `store`; named apart from wasmtime's `Store`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClusterStore {
    pub id: u64,
    pub address: String,
    pub state: StoreState,
    pub labels: Vec<Label>,
    pub version: String,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub leader_count: u64,
    pub region_count: u64,
    pub details: Vec<Label>,
}

/// One replica group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Region {
    pub id: u64,
    pub leader_store_id: Option<u64>,
    pub peer_store_ids: Vec<u64>,
    pub written_bytes: u64,
    pub written_keys: u64,
    pub read_bytes: u64,
    pub read_keys: u64,
    pub approximate_size_bytes: u64,
    pub write_bytes_per_second: Option<f64>,
    pub write_keys_per_second: Option<f64>,
}

/// A count attributed to one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StoreCount {
    pub store_id: u64,
    pub count: u64,
}

/// One named measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<Label>,
    pub value: f64,
    pub unit: String,
}

/// A summary of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClusterMetrics {
    pub store_count: u64,
    pub region_count: u64,
    pub leaders_per_store: Vec<StoreCount>,
    pub samples: Vec<MetricSample>,
}

/// The observed result of a leader transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LeaderTransfer {
    pub region_id: u64,
    pub from_store_id: Option<u64>,
    pub to_store_id: u64,
    pub confirmed: bool,
    pub waited_ms: u64,
}

/// What an adapter is and can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SubjectInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub actions: Vec<String>,
}

/// An operation the adapter reports as failed (the adapter ran fine; the cluster did not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
pub enum SubjectError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("bad-response: {0}")]
    BadResponse(String),
    #[error("not-found: {0}")]
    NotFound(String),
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl SubjectError {
    /// The stable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SubjectError::Unreachable(_) => "unreachable",
            SubjectError::Denied(_) => "denied",
            SubjectError::BadResponse(_) => "bad-response",
            SubjectError::NotFound(_) => "not-found",
            SubjectError::Rejected(_) => "rejected",
            SubjectError::Unsupported(_) => "unsupported",
        }
    }
}

/// The result of an adapter operation: the value, or the adapter's own error.
pub type SubjectResult<T> = Result<T, SubjectError>;

crate::call::instantiate_world!(b::SubjectAdapterPre<CallState> => b::SubjectAdapter, "the Subject contract (operator:core/subject@0.1.x)");

impl<T: Serialize> Output for SubjectResult<T> {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

impl Output for SubjectInfo {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

/// A Subject adapter ready to call; every call runs on a fresh instance.
pub struct SubjectClient<'r> {
    inner: Sandboxed<'r, b::SubjectAdapterPre<CallState>>,
}

impl<'r> SubjectClient<'r> {
    /// Checks that `component` exports the Subject contract.
    pub fn new(runtime: &'r Runtime, component: &'r LoadedComponent, policy: Policy) -> Result<Self, CallError> {
        Ok(SubjectClient { inner: Sandboxed::bind(runtime, component, policy)? })
    }

    /// The policy calls run under.
    pub fn policy(&self) -> &Policy {
        self.inner.policy()
    }

    /// `describe`.
    pub async fn describe(&self) -> Result<CallOutcome<SubjectInfo>, FailedCall> {
        self.inner
            .call(|a, store| Box::pin(async move { Ok(info(a.operator_core_subject().call_describe(store).await?)) }))
            .await
    }

    /// `get-stores`.
    pub async fn stores(&self) -> Result<CallOutcome<SubjectResult<Vec<ClusterStore>>>, FailedCall> {
        self.inner
            .call(|a, store| {
                Box::pin(async move {
                    let r = a.operator_core_subject().call_get_stores(store).await?;
                    Ok(r.map(|v| v.into_iter().map(store_of).collect()).map_err(error_of))
                })
            })
            .await
    }

    /// `get-hot-write-regions`.
    pub async fn hot_write_regions(&self, limit: u32) -> Result<CallOutcome<SubjectResult<Vec<Region>>>, FailedCall> {
        self.inner
            .call(move |a, store| {
                Box::pin(async move {
                    let r = a.operator_core_subject().call_get_hot_write_regions(store, limit).await?;
                    Ok(r.map(|v| v.into_iter().map(region_of).collect()).map_err(error_of))
                })
            })
            .await
    }

    /// `get-cluster-metrics`.
    pub async fn metrics(&self) -> Result<CallOutcome<SubjectResult<ClusterMetrics>>, FailedCall> {
        self.inner
            .call(|a, store| {
                Box::pin(async move {
                    let r = a.operator_core_subject().call_get_cluster_metrics(store).await?;
                    Ok(r.map(metrics_of).map_err(error_of))
                })
            })
            .await
    }

    /// `transfer-leader`.
    pub async fn transfer_leader(
        &self,
        region_id: u64,
        to_store_id: u64,
    ) -> Result<CallOutcome<SubjectResult<LeaderTransfer>>, FailedCall> {
        self.inner
            .call(move |a, store| {
                Box::pin(async move {
                    let r = a.operator_core_subject().call_transfer_leader(store, region_id, to_store_id).await?;
                    Ok(r.map(|t| LeaderTransfer {
                        region_id: t.region_id,
                        from_store_id: t.from_store_id,
                        to_store_id: t.to_store_id,
                        confirmed: t.confirmed,
                        waited_ms: t.waited_ms,
                    })
                    .map_err(error_of))
                })
            })
            .await
    }
}

fn labels(v: Vec<t::Label>) -> Vec<Label> {
    v.into_iter().map(|l| Label { key: l.key, value: l.value }).collect()
}

fn store_of(s: t::Store) -> ClusterStore {
    ClusterStore {
        id: s.id,
        address: s.address,
        state: match s.state {
            t::StoreState::Up => StoreState::Up,
            t::StoreState::Offline => StoreState::Offline,
            t::StoreState::Disconnected => StoreState::Disconnected,
            t::StoreState::Down => StoreState::Down,
            t::StoreState::Tombstone => StoreState::Tombstone,
            t::StoreState::Unknown => StoreState::Unknown,
        },
        labels: labels(s.labels),
        version: s.version,
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        leader_count: s.leader_count,
        region_count: s.region_count,
        details: labels(s.details),
    }
}

fn region_of(r: t::Region) -> Region {
    Region {
        id: r.id,
        leader_store_id: r.leader_store_id,
        peer_store_ids: r.peer_store_ids,
        written_bytes: r.written_bytes,
        written_keys: r.written_keys,
        read_bytes: r.read_bytes,
        read_keys: r.read_keys,
        approximate_size_bytes: r.approximate_size_bytes,
        write_bytes_per_second: r.write_bytes_per_second,
        write_keys_per_second: r.write_keys_per_second,
    }
}

fn metrics_of(m: t::ClusterMetrics) -> ClusterMetrics {
    ClusterMetrics {
        store_count: m.store_count,
        region_count: m.region_count,
        leaders_per_store: m
            .leaders_per_store
            .into_iter()
            .map(|c| StoreCount { store_id: c.store_id, count: c.count })
            .collect(),
        samples: m
            .samples
            .into_iter()
            .map(|s| MetricSample { name: s.name, labels: labels(s.labels), value: s.value, unit: s.unit })
            .collect(),
    }
}

fn info(i: t::SubjectInfo) -> SubjectInfo {
    SubjectInfo { name: i.name, version: i.version, description: i.description, actions: i.actions }
}

fn error_of(e: t::SubjectError) -> SubjectError {
    match e {
        t::SubjectError::Unreachable(m) => SubjectError::Unreachable(m),
        t::SubjectError::Denied(m) => SubjectError::Denied(m),
        t::SubjectError::BadResponse(m) => SubjectError::BadResponse(m),
        t::SubjectError::NotFound(m) => SubjectError::NotFound(m),
        t::SubjectError::Rejected(m) => SubjectError::Rejected(m),
        t::SubjectError::Unsupported(m) => SubjectError::Unsupported(m),
    }
}
