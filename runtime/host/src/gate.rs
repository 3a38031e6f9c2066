//! The safety gate between a policy's proposals and the cluster (issue #13's first step).
//!
//! A policy is sandboxed code that may be wrong or hostile; the limits that keep a cluster safe
//! therefore live here, in the host, where no policy can reach them (PD's
//! `leader-schedule-limit` and store limits, the etcd operator's "one action at a time"). Every
//! proposal of a round gets a [`Verdict`]: admitted, or refused with a named [`Refusal`].
//!
//! The gate is pure: it decides from the round's observation, the proposals in the policy's
//! order (its priority), the [`GateLimits`] and the [`GateState`] (actions in flight, recent
//! actions per region), with time given as milliseconds since the epoch. So a round can be
//! replayed from the audit log and gives the same verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::subject::{ClusterStore, Region, StoreState};

/// What a policy may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Action {
    /// Move the leader of `region_id` to its peer on `to_store_id`.
    TransferLeader { region_id: u64, to_store_id: u64 },
}

impl Action {
    /// The region the action changes.
    pub fn region_id(&self) -> u64 {
        match self {
            Action::TransferLeader { region_id, .. } => *region_id,
        }
    }
}

/// The hard limits, set by the person running the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Actions admitted per round (PD's `leader-schedule-limit` is 4).
    pub max_actions_per_round: usize,
    /// Actions not yet confirmed, across rounds.
    pub max_in_flight: usize,
    /// Time after an action on a region before another is admitted on it.
    pub region_cooldown: Duration,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits { max_actions_per_round: 4, max_in_flight: 4, region_cooldown: Duration::from_secs(60) }
    }
}

/// What the gate remembers between rounds (rebuilt from the audit log after a restart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateState {
    /// Actions sent and not yet confirmed or failed, by region.
    pub in_flight: BTreeMap<u64, Action>,
    /// When the last action on each region was admitted, in ms since the epoch.
    pub last_action_ms: BTreeMap<u64, u64>,
}

impl GateState {
    /// Records that `action` was admitted at `now_ms` and is now in flight.
    pub fn started(&mut self, action: Action, now_ms: u64) {
        self.in_flight.insert(action.region_id(), action);
        self.last_action_ms.insert(action.region_id(), now_ms);
    }

    /// Records that the action on `region_id` ended (confirmed or failed).
    pub fn finished(&mut self, region_id: u64) {
        self.in_flight.remove(&region_id);
    }
}

/// Why the gate refused a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The region is not among this round's observed regions.
    UnknownRegion,
    /// The target store is not among this round's observed stores.
    UnknownStore,
    /// The target store holds no peer of the region.
    NotAPeer,
    /// The target store is not up.
    StoreNotUp,
    /// The target store already leads the region.
    AlreadyLeader,
    /// The region was already proposed earlier in this round.
    Duplicate,
    /// An action on the region is still in flight.
    InFlight,
    /// The region was acted on less than the cooldown ago.
    Cooldown,
    /// The round's action cap is reached.
    RoundCap,
    /// The cap on actions in flight is reached.
    InFlightCap,
    /// A store is disconnected or down: only moves away from such a store are admitted.
    HealthHold,
}

impl Refusal {
    /// The stable name (what the JSON output and the audit log carry).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownRegion => "unknown-region",
            Refusal::UnknownStore => "unknown-store",
            Refusal::NotAPeer => "not-a-peer",
            Refusal::StoreNotUp => "store-not-up",
            Refusal::AlreadyLeader => "already-leader",
            Refusal::Duplicate => "duplicate",
            Refusal::InFlight => "in-flight",
            Refusal::Cooldown => "cooldown",
            Refusal::RoundCap => "round-cap",
            Refusal::InFlightCap => "in-flight-cap",
            Refusal::HealthHold => "health-hold",
        }
    }
}

/// The gate's answer to one proposal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// It may be executed.
    Admitted,
    /// It is not executed; `detail` says why in words.
    Refused { reason: Refusal, detail: String },
}

/// What the gate sees of a round.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub stores: &'a [ClusterStore],
    pub regions: &'a [Region],
    /// The observation's time, in ms since the epoch.
    pub now_ms: u64,
}

/// Checks a round's proposals, in the policy's order, against the limits and the state. It does
/// not change the state: the loop records what it really started ([`GateState::started`]).
pub fn check(round: Round<'_>, actions: &[Action], limits: &GateLimits, state: &GateState) -> Vec<Verdict> {
    let stores: BTreeMap<u64, &ClusterStore> = round.stores.iter().map(|s| (s.id, s)).collect();
    let regions: BTreeMap<u64, &Region> = round.regions.iter().map(|r| (r.id, r)).collect();
    let unhealthy: BTreeSet<u64> = round
        .stores
        .iter()
        .filter(|s| matches!(s.state, StoreState::Disconnected | StoreState::Down))
        .map(|s| s.id)
        .collect();
    let cooldown_ms = u64::try_from(limits.region_cooldown.as_millis()).unwrap_or(u64::MAX);
    let mut seen = BTreeSet::new();
    let mut admitted = 0usize;
    let mut in_flight = state.in_flight.len();

    actions
        .iter()
        .map(|action| {
            let refuse = |reason: Refusal, detail: String| Verdict::Refused { reason, detail };
            let Action::TransferLeader { region_id, to_store_id } = *action;
            if !seen.insert(region_id) {
                return refuse(Refusal::Duplicate, format!("region {region_id} was already proposed this round"));
            }
            let Some(region) = regions.get(&region_id) else {
                return refuse(Refusal::UnknownRegion, format!("region {region_id} is not among this round's regions"));
            };
            let Some(store) = stores.get(&to_store_id) else {
                return refuse(Refusal::UnknownStore, format!("store {to_store_id} is not among this round's stores"));
            };
            if !region.peer_store_ids.contains(&to_store_id) {
                return refuse(
                    Refusal::NotAPeer,
                    format!(
                        "store {to_store_id} holds no peer of region {region_id} (peers: {:?})",
                        region.peer_store_ids
                    ),
                );
            }
            if store.state != StoreState::Up {
                return refuse(Refusal::StoreNotUp, format!("store {to_store_id} is {}", store.state));
            }
            if region.leader_store_id == Some(to_store_id) {
                return refuse(Refusal::AlreadyLeader, format!("store {to_store_id} already leads region {region_id}"));
            }
            if !unhealthy.is_empty() {
                let away = region.leader_store_id.is_some_and(|l| unhealthy.contains(&l));
                if !away {
                    let list = unhealthy.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                    return refuse(
                        Refusal::HealthHold,
                        format!(
                            "store(s) {list} disconnected or down: only leaders moving away from them are admitted"
                        ),
                    );
                }
            }
            if state.in_flight.contains_key(&region_id) {
                return refuse(Refusal::InFlight, format!("an action on region {region_id} is still in flight"));
            }
            if let Some(last) = state.last_action_ms.get(&region_id) {
                let since = round.now_ms.saturating_sub(*last);
                if since < cooldown_ms {
                    return refuse(
                        Refusal::Cooldown,
                        format!(
                            "region {region_id} was acted on {} s ago (cooldown {} s)",
                            since / 1000,
                            cooldown_ms / 1000
                        ),
                    );
                }
            }
            if admitted >= limits.max_actions_per_round {
                return refuse(
                    Refusal::RoundCap,
                    format!("{} action(s) already admitted this round", limits.max_actions_per_round),
                );
            }
            if in_flight >= limits.max_in_flight {
                let mut held: Vec<String> = state.in_flight.keys().take(8).map(u64::to_string).collect();
                if state.in_flight.len() > 8 {
                    held.push("...".into());
                }
                let held = if held.is_empty() { String::new() } else { format!(" (regions {})", held.join(", ")) };
                return refuse(
                    Refusal::InFlightCap,
                    format!("{} action(s) already in flight{held}", limits.max_in_flight),
                );
            }
            admitted += 1;
            in_flight += 1;
            Verdict::Admitted
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: u64, state: StoreState) -> ClusterStore {
        ClusterStore {
            id,
            address: format!("tikv{id}:20160"),
            state,
            labels: vec![],
            version: "8.5.0".into(),
            capacity_bytes: 0,
            available_bytes: 0,
            used_bytes: 0,
            leader_count: 0,
            region_count: 0,
            details: vec![],
        }
    }

    fn region(id: u64, leader: u64, peers: &[u64]) -> Region {
        Region {
            id,
            leader_store_id: Some(leader),
            peer_store_ids: peers.to_vec(),
            written_bytes: 0,
            written_keys: 0,
            read_bytes: 0,
            read_keys: 0,
            approximate_size_bytes: 0,
            write_bytes_per_second: None,
            write_keys_per_second: None,
        }
    }

    fn move_to(region_id: u64, to_store_id: u64) -> Action {
        Action::TransferLeader { region_id, to_store_id }
    }

    fn reasons(v: &[Verdict]) -> Vec<&'static str> {
        v.iter()
            .map(|v| match v {
                Verdict::Admitted => "admitted",
                Verdict::Refused { reason, .. } => reason.name(),
            })
            .collect()
    }

    fn cluster() -> (Vec<ClusterStore>, Vec<Region>) {
        let stores = (1..=4).map(|i| store(i, StoreState::Up)).collect();
        let regions = (10..20).map(|r| region(r, 1, &[1, 2, 3])).collect();
        (stores, regions)
    }

    #[test]
    fn proposals_the_observation_does_not_back_are_refused_by_name() {
        let (mut stores, regions) = cluster();
        stores[2].state = StoreState::Offline;
        let round = Round { stores: &stores, regions: &regions, now_ms: 0 };
        let actions = [move_to(99, 2), move_to(10, 9), move_to(11, 4), move_to(12, 3), move_to(13, 1), move_to(14, 2)];
        let v = check(round, &actions, &GateLimits::default(), &GateState::default());
        assert_eq!(
            reasons(&v),
            ["unknown-region", "unknown-store", "not-a-peer", "store-not-up", "already-leader", "admitted"]
        );
    }

    #[test]
    fn a_region_is_acted_on_once_per_round_and_not_while_in_flight_or_cooling_down() {
        let (stores, regions) = cluster();
        let mut state = GateState::default();
        state.started(move_to(11, 2), 1_000);
        state.started(move_to(12, 2), 1_000);
        state.finished(12);
        let round = Round { stores: &stores, regions: &regions, now_ms: 30_000 };
        let v = check(
            round,
            &[move_to(10, 2), move_to(10, 3), move_to(11, 3), move_to(12, 3)],
            &GateLimits::default(),
            &state,
        );
        assert_eq!(reasons(&v), ["admitted", "duplicate", "in-flight", "cooldown"]);
        // After the cooldown the region is free again.
        let later = Round { now_ms: 61_000, ..round };
        assert_eq!(reasons(&check(later, &[move_to(12, 3)], &GateLimits::default(), &state)), ["admitted"]);
    }

    #[test]
    fn the_caps_admit_in_the_policys_order_and_refuse_the_rest() {
        let (stores, regions) = cluster();
        let actions: Vec<Action> = (10..20).map(|r| move_to(r, 2)).collect();
        let limits = GateLimits { max_actions_per_round: 3, ..GateLimits::default() };
        let v =
            check(Round { stores: &stores, regions: &regions, now_ms: 0 }, &actions, &limits, &GateState::default());
        assert_eq!(reasons(&v)[..4], ["admitted", "admitted", "admitted", "round-cap"]);
        assert_eq!(v.iter().filter(|v| **v == Verdict::Admitted).count(), 3);

        let mut state = GateState::default();
        for r in 0..3 {
            state.started(move_to(100 + r, 2), 0);
        }
        let v =
            check(Round { stores: &stores, regions: &regions, now_ms: 0 }, &actions, &GateLimits::default(), &state);
        assert_eq!(reasons(&v)[..2], ["admitted", "in-flight-cap"]);
    }

    #[test]
    fn while_a_store_is_down_only_leaders_moving_away_from_it_are_admitted() {
        let (mut stores, mut regions) = cluster();
        stores[3].state = StoreState::Down;
        regions.push(region(30, 4, &[4, 2, 3]));
        let round = Round { stores: &stores, regions: &regions, now_ms: 0 };
        let v = check(round, &[move_to(10, 2), move_to(30, 2)], &GateLimits::default(), &GateState::default());
        assert_eq!(reasons(&v), ["health-hold", "admitted"]);
        let Verdict::Refused { detail, .. } = &v[0] else { panic!("refused") };
        assert!(detail.starts_with("store(s) 4 disconnected or down"), "{detail}");
    }

    #[test]
    fn a_million_proposals_admit_at_most_the_cap() {
        let (stores, regions) = cluster();
        let actions: Vec<Action> = (0..1_000_000).map(|i| move_to(10 + i % 10, 2 + i % 2)).collect();
        let v = check(
            Round { stores: &stores, regions: &regions, now_ms: 0 },
            &actions,
            &GateLimits::default(),
            &GateState::default(),
        );
        assert_eq!(v.len(), actions.len());
        assert_eq!(v.iter().filter(|v| **v == Verdict::Admitted).count(), 4);
    }
}
