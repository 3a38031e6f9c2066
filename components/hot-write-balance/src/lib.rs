//! `hot-write-balance`: a policy after PD's hot-region scheduler (write, leader flavour).
//!
//! Per-store *leader write flow* is the sum of the write rates of the hot regions each store
//! leads (PD's `hotspot/regions/write` `as_leader`). When the hottest up store exceeds the mean
//! of the up stores by more than `tolerance` (PD's default ratio 1.05), it proposes moving the
//! leaders of its hottest regions (at least `min-region-rate` bytes/s each) to a peer on an up
//! store whose flow after the move stays below the source's after the move: a move never makes
//! the destination the new hottest store, so proposals cannot flap. Each accepted move updates
//! the flows before the next is chosen; at most `max-proposals` per round (the host's gate caps
//! them again). Moves gaining less than `min-gain-ratio` of the mean are not worth proposing, and
//! regions acted on within `settle-ms` are left to settle. A balanced cluster gets no proposals. Pure: the same observation and parameters
//! give the same proposals.

pub mod balance;

#[cfg(target_arch = "wasm32")]
mod component {
    mod bindings {
        wit_bindgen::generate!({
            path: "../../wit/policy/since_v0.1.0",
            world: "policy-component",
            generate_all,
        });
    }

    use bindings::exports::operator::policy::policy::{
        Action, Guest, LeaderMove, Observation, ParamSpec, PolicyError, PolicyInfo, Proposal,
    };
    use bindings::operator::core::types::StoreState;

    use crate::balance::{self, Params, RegionFlow, StoreFlow};

    struct Policy;

    impl Guest for Policy {
        fn describe() -> PolicyInfo {
            PolicyInfo {
                name: "hot-write-balance".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "moves leaders of hot write regions off the store whose leader write flow is highest"
                    .into(),
                params: balance::PARAMS
                    .iter()
                    .map(|(name, default, meaning)| ParamSpec {
                        name: (*name).into(),
                        default_value: (*default).into(),
                        description: (*meaning).into(),
                    })
                    .collect(),
            }
        }

        fn decide(observation: Observation, params: Vec<(String, String)>) -> Result<Vec<Proposal>, PolicyError> {
            let params = Params::parse(&params).map_err(PolicyError::InvalidParam)?;
            // A TiFlash store (`engine=tiflash`) holds learners only: it never leads, so it is
            // neither a target nor part of the mean.
            let stores: Vec<StoreFlow> = observation
                .stores
                .iter()
                .map(|s| StoreFlow {
                    id: s.id,
                    up: s.state == StoreState::Up
                        && !s.labels.iter().any(|l| l.key == "engine" && l.value == "tiflash"),
                })
                .collect();
            let regions: Vec<RegionFlow> = observation
                .hot_write_regions
                .iter()
                .filter_map(|r| {
                    Some(RegionFlow {
                        id: r.id,
                        leader: r.leader_store_id?,
                        peers: r.peer_store_ids.clone(),
                        bytes_per_second: r.write_bytes_per_second?,
                    })
                })
                .collect();
            // Regions with an action in flight, or one that ended within `settle-ms`.
            let mut settling: Vec<u64> = observation.in_flight.iter().map(|f| region_of(&f.action)).collect();
            settling.extend(
                observation
                    .recent
                    .iter()
                    .filter(|o| observation.now_ms.saturating_sub(o.at_ms) < params.settle_ms)
                    .map(|o| region_of(&o.action)),
            );
            Ok(balance::decide(&stores, &regions, &params, &settling)
                .into_iter()
                .map(|m| Proposal {
                    action: Action::TransferLeader(LeaderMove { region_id: m.region_id, to_store_id: m.to_store_id }),
                    reason: m.reason,
                    score: m.gain,
                })
                .collect())
        }
    }

    fn region_of(action: &Action) -> u64 {
        match action {
            Action::TransferLeader(m) => m.region_id,
        }
    }

    bindings::export!(Policy with_types_in bindings);
}
