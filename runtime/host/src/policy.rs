//! Calling a policy component (`operator:policy`): `describe` and `decide`, with the records
//! as plain Rust types. A policy imports `log` only; it is called under the same sandbox,
//! limits and named errors as every component, and what it proposes goes to the [`gate`].
//!
//! [`gate`]: crate::gate

use serde::Serialize;

use crate::bindings::policy as b;
use crate::bindings::policy::exports::operator::policy::policy as p;
use crate::bindings::subject::operator::core::types as t;
use crate::call::{Output, Sandboxed, json_size};
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::gate::Action;
use crate::sandbox::{CallOutcome, CallState, FailedCall, Policy};
use crate::subject::{ClusterMetrics, ClusterStore, Region, StoreState};

/// A parameter a policy takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub default_value: String,
    pub description: String,
}

/// What a policy is and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub params: Vec<ParamSpec>,
}

/// How a recent action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    Applied,
    Failed,
    Refused,
}

/// A recent action and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub action: Action,
    pub kind: OutcomeKind,
    pub detail: String,
    pub at_ms: u64,
}

/// What the loop saw in a round, as a policy gets it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    pub stores: Vec<ClusterStore>,
    /// Highest write flow first.
    pub hot_write_regions: Vec<Region>,
    pub metrics: Option<ClusterMetrics>,
    /// Actions sent and not yet confirmed, with when they were sent (ms since the epoch).
    pub in_flight: Vec<(Action, u64)>,
    pub recent: Vec<Outcome>,
    /// ms since the epoch.
    pub now_ms: u64,
}

/// A proposed action, with its reason and score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Proposal {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
    pub score: f64,
}

/// Why a policy could not decide (the policy ran fine; it says it cannot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
pub enum PolicyError {
    #[error("invalid-param: {0}")]
    InvalidParam(String),
    #[error("insufficient-data: {0}")]
    InsufficientData(String),
    #[error("failed: {0}")]
    Failed(String),
}

crate::call::instantiate_world!(b::PolicyComponentPre<CallState> => b::PolicyComponent, "the policy contract (operator:policy/policy@0.1.x)");

impl Output for PolicyInfo {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

impl Output for Result<Vec<Proposal>, PolicyError> {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

/// A policy ready to call; every call runs on a fresh instance.
pub struct PolicyClient<'r> {
    inner: Sandboxed<'r, b::PolicyComponentPre<CallState>>,
}

impl<'r> PolicyClient<'r> {
    /// Checks that `component` exports the policy contract.
    pub fn new(runtime: &'r Runtime, component: &'r LoadedComponent, policy: Policy) -> Result<Self, CallError> {
        Ok(PolicyClient { inner: Sandboxed::bind(runtime, component, policy)? })
    }

    /// `describe`.
    pub async fn describe(&self) -> Result<CallOutcome<PolicyInfo>, FailedCall> {
        self.inner
            .call(|c, store| {
                Box::pin(async move {
                    let i = c.operator_policy_policy().call_describe(store).await?;
                    Ok(PolicyInfo {
                        name: i.name,
                        version: i.version,
                        description: i.description,
                        params: i
                            .params
                            .into_iter()
                            .map(|p| ParamSpec {
                                name: p.name,
                                default_value: p.default_value,
                                description: p.description,
                            })
                            .collect(),
                    })
                })
            })
            .await
    }

    /// `decide`.
    pub async fn decide(
        &self,
        observation: &Observation,
        params: &[(String, String)],
    ) -> Result<CallOutcome<Result<Vec<Proposal>, PolicyError>>, FailedCall> {
        let input = observation_to_wit(observation);
        let params = params.to_vec();
        self.inner
            .call(move |c, store| {
                Box::pin(async move {
                    let r = c.operator_policy_policy().call_decide(store, &input, &params).await?;
                    Ok(r.map(|v| v.into_iter().map(proposal_of).collect()).map_err(|e| match e {
                        p::PolicyError::InvalidParam(m) => PolicyError::InvalidParam(m),
                        p::PolicyError::InsufficientData(m) => PolicyError::InsufficientData(m),
                        p::PolicyError::Failed(m) => PolicyError::Failed(m),
                    }))
                })
            })
            .await
    }
}

fn action_to_wit(a: &Action) -> p::Action {
    match *a {
        Action::TransferLeader { region_id, to_store_id } => {
            p::Action::TransferLeader(p::LeaderMove { region_id, to_store_id })
        }
    }
}

fn proposal_of(p: p::Proposal) -> Proposal {
    let action = match p.action {
        p::Action::TransferLeader(m) => Action::TransferLeader { region_id: m.region_id, to_store_id: m.to_store_id },
    };
    Proposal { action, reason: p.reason, score: p.score }
}

fn labels(v: &[crate::subject::Label]) -> Vec<t::Label> {
    v.iter().map(|l| t::Label { key: l.key.clone(), value: l.value.clone() }).collect()
}

fn store_to_wit(s: &ClusterStore) -> t::Store {
    t::Store {
        id: s.id,
        address: s.address.clone(),
        state: match s.state {
            StoreState::Up => t::StoreState::Up,
            StoreState::Offline => t::StoreState::Offline,
            StoreState::Disconnected => t::StoreState::Disconnected,
            StoreState::Down => t::StoreState::Down,
            StoreState::Tombstone => t::StoreState::Tombstone,
            StoreState::Unknown => t::StoreState::Unknown,
        },
        labels: labels(&s.labels),
        version: s.version.clone(),
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        leader_count: s.leader_count,
        region_count: s.region_count,
        details: labels(&s.details),
    }
}

fn region_to_wit(r: &Region) -> t::Region {
    t::Region {
        id: r.id,
        leader_store_id: r.leader_store_id,
        peer_store_ids: r.peer_store_ids.clone(),
        written_bytes: r.written_bytes,
        written_keys: r.written_keys,
        read_bytes: r.read_bytes,
        read_keys: r.read_keys,
        approximate_size_bytes: r.approximate_size_bytes,
        write_bytes_per_second: r.write_bytes_per_second,
        write_keys_per_second: r.write_keys_per_second,
    }
}

fn metrics_to_wit(m: &ClusterMetrics) -> t::ClusterMetrics {
    t::ClusterMetrics {
        store_count: m.store_count,
        region_count: m.region_count,
        leaders_per_store: m
            .leaders_per_store
            .iter()
            .map(|c| t::StoreCount { store_id: c.store_id, count: c.count })
            .collect(),
        samples: m
            .samples
            .iter()
            .map(|s| t::MetricSample {
                name: s.name.clone(),
                labels: labels(&s.labels),
                value: s.value,
                unit: s.unit.clone(),
            })
            .collect(),
    }
}

fn observation_to_wit(o: &Observation) -> p::Observation {
    p::Observation {
        stores: o.stores.iter().map(store_to_wit).collect(),
        hot_write_regions: o.hot_write_regions.iter().map(region_to_wit).collect(),
        metrics: o.metrics.as_ref().map(metrics_to_wit),
        in_flight: o
            .in_flight
            .iter()
            .map(|(a, since)| p::InFlight { action: action_to_wit(a), since_ms: *since })
            .collect(),
        recent: o
            .recent
            .iter()
            .map(|r| p::Outcome {
                action: action_to_wit(&r.action),
                kind: match r.kind {
                    OutcomeKind::Applied => p::OutcomeKind::Applied,
                    OutcomeKind::Failed => p::OutcomeKind::Failed,
                    OutcomeKind::Refused => p::OutcomeKind::Refused,
                },
                detail: r.detail.clone(),
                at_ms: r.at_ms,
            })
            .collect(),
        now_ms: o.now_ms,
    }
}
