//! A hostile policy for the control loop's tests: `decide` misbehaves in the way its `mode`
//! parameter names, computing its targets from the observation so that each case meets the
//! host's containment or the gate rule it is named after:
//!
//! - `spin`: never returns (the guest deadline must stop it);
//! - `trap`: panics;
//! - `flood`: a million valid-looking proposals, cycling over the observed hot regions;
//! - `huge-reason`: one valid proposal whose reason is 4 MiB (of two-byte characters, after a
//!   one-byte one, so a cut at any even byte count falls inside a character);
//! - `unknown-region`, `unknown-store`, `not-a-peer`, `current-leader`, `down-store`: one
//!   proposal each, for a region that is not observed, a store that is not observed, a store
//!   holding no peer of the region, the region's leader, a peer on a store that is not up;
//! - `mixed`: two valid proposals (regions with nothing in flight and no recent outcome), then
//!   one each for an unknown region, an unknown store, the current leader, and the first valid
//!   region again (a duplicate).
//!
//! A mode whose target the observation lacks (e.g. `not-a-peer` when every store holds a peer
//! of every region) is `insufficient-data`, so a test never passes by accident.

use std::hint::black_box;

wit_bindgen::generate!({
    path: "../../../wit/policy/since_v0.1.0",
    world: "policy-component",
    generate_all,
});

use exports::operator::policy::policy::{
    Action, Guest, LeaderMove, Observation, ParamSpec, PolicyError, PolicyInfo, Proposal,
};
use operator::core::types::{Region, StoreState};

/// The modes, in the order `describe` lists them.
const MODES: &[&str] = &[
    "spin",
    "trap",
    "flood",
    "huge-reason",
    "huge-error",
    "unknown-region",
    "unknown-store",
    "not-a-peer",
    "current-leader",
    "down-store",
    "mixed",
];

/// Proposals the flood returns.
const FLOOD: usize = 1_000_000;
/// Bytes of the huge reason.
const HUGE_REASON: usize = 4 * 1024 * 1024;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct HostilePolicy;

impl Guest for HostilePolicy {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-policy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a test policy that misbehaves as its mode says".into(),
            params: vec![ParamSpec {
                name: "mode".into(),
                default_value: String::new(),
                description: format!("how to misbehave: {}", MODES.join(", ")),
            }],
        }
    }

    fn decide(observation: Observation, params: Vec<(String, String)>) -> Result<Vec<Proposal>, PolicyError> {
        let mode = params.iter().find(|(k, _)| k == "mode").map(|(_, v)| v.as_str()).unwrap_or_default();
        let o = &observation;
        match mode {
            "spin" => spin(),
            "trap" => panic!("hostile policy: trap mode"),
            "flood" => flood(o),
            // An error of megabytes, with lines that look like the loop's own output.
            "huge-error" => Err(PolicyError::Failed("\nround 99 (apply)\n".repeat(HUGE_REASON / 18))),
            "huge-reason" => {
                let (region, to) = valid_moves(o).next().ok_or_else(|| lacks("a region with a peer to move to"))?;
                let mut reason = String::with_capacity(HUGE_REASON);
                reason.push('a');
                while reason.len() + 2 <= HUGE_REASON {
                    reason.push('é');
                }
                Ok(vec![proposal(region, to, reason)])
            }
            "unknown-region" => {
                let store = o.stores.first().ok_or_else(|| lacks("a store"))?.id;
                Ok(vec![proposal(unknown_region(o), store, "a region nobody observed")])
            }
            "unknown-store" => {
                let region = o.hot_write_regions.first().ok_or_else(|| lacks("a hot region"))?.id;
                Ok(vec![proposal(region, unknown_store(o), "a store nobody observed")])
            }
            "not-a-peer" => {
                let (region, store) = o
                    .hot_write_regions
                    .iter()
                    .find_map(|r| o.stores.iter().find(|s| !r.peer_store_ids.contains(&s.id)).map(|s| (r.id, s.id)))
                    .ok_or_else(|| lacks("an observed store without a peer of some hot region"))?;
                Ok(vec![proposal(region, store, "a store holding no peer of the region")])
            }
            "current-leader" => {
                let (region, leader) = o
                    .hot_write_regions
                    .iter()
                    .find_map(|r| r.leader_store_id.map(|l| (r.id, l)))
                    .ok_or_else(|| lacks("a hot region with a leader"))?;
                Ok(vec![proposal(region, leader, "the store that already leads")])
            }
            "down-store" => {
                let not_up: Vec<u64> = o.stores.iter().filter(|s| s.state != StoreState::Up).map(|s| s.id).collect();
                let (region, store) = o
                    .hot_write_regions
                    .iter()
                    .find_map(|r| {
                        r.peer_store_ids
                            .iter()
                            .find(|p| not_up.contains(p) && r.leader_store_id != Some(**p))
                            .map(|p| (r.id, *p))
                    })
                    .ok_or_else(|| lacks("a hot region with a follower on a store that is not up"))?;
                Ok(vec![proposal(region, store, "a peer on a store that is not up")])
            }
            "mixed" => mixed(o),
            other => Err(PolicyError::InvalidParam(format!("mode `{other}`: expected one of {}", MODES.join(", ")))),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn lacks(what: &str) -> PolicyError {
    PolicyError::InsufficientData(format!("the observation has no {what}"))
}

fn proposal(region_id: u64, to_store_id: u64, reason: impl Into<String>) -> Proposal {
    Proposal {
        action: Action::TransferLeader(LeaderMove { region_id, to_store_id }),
        reason: reason.into(),
        score: 1.0,
    }
}

fn unknown_region(o: &Observation) -> u64 {
    o.hot_write_regions.iter().map(|r| r.id).max().unwrap_or(0) + 1_000_000
}

fn unknown_store(o: &Observation) -> u64 {
    o.stores.iter().map(|s| s.id).max().unwrap_or(0) + 100
}

/// A move the gate admits on a quiet cluster: a region's leader to a follower on an up store.
fn valid_move(o: &Observation, r: &Region) -> Option<(u64, u64)> {
    let leader = r.leader_store_id?;
    let up = |id: u64| o.stores.iter().any(|s| s.id == id && s.state == StoreState::Up);
    r.peer_store_ids.iter().copied().find(|p| *p != leader && up(*p)).map(|p| (r.id, p))
}

/// Valid moves, one per hot region, skipping regions with an action in flight or a recent
/// outcome (which the gate would refuse as in flight or cooling down).
fn valid_moves(o: &Observation) -> impl Iterator<Item = (u64, u64)> + '_ {
    let busy: Vec<u64> =
        o.in_flight.iter().map(|f| region_of(&f.action)).chain(o.recent.iter().map(|r| region_of(&r.action))).collect();
    o.hot_write_regions.iter().filter(move |r| !busy.contains(&r.id)).filter_map(|r| valid_move(o, r))
}

fn region_of(action: &Action) -> u64 {
    match action {
        Action::TransferLeader(m) => m.region_id,
    }
}

fn flood(o: &Observation) -> Result<Vec<Proposal>, PolicyError> {
    let moves: Vec<(u64, u64)> = o.hot_write_regions.iter().filter_map(|r| valid_move(o, r)).collect();
    if moves.is_empty() {
        return Err(lacks("a region with a peer to move to"));
    }
    // Empty reasons: a String::new() does not allocate, so the flood fits the memory limit.
    Ok((0..FLOOD)
        .map(|i| {
            let (region, to) = moves[i % moves.len()];
            proposal(region, to, String::new())
        })
        .collect())
}

fn mixed(o: &Observation) -> Result<Vec<Proposal>, PolicyError> {
    let valid: Vec<(u64, u64)> = valid_moves(o).take(2).collect();
    let [(first, first_to), (second, second_to)] = valid[..] else {
        return Err(lacks("two regions with a peer to move to"));
    };
    // Two more regions, neither of the valid ones, for the unknown store and the leader.
    let mut others = o.hot_write_regions.iter().filter(|r| r.id != first && r.id != second);
    let for_store = others.next().ok_or_else(|| lacks("a third hot region"))?;
    let (for_leader, leader) = others
        .find_map(|r| r.leader_store_id.map(|l| (r.id, l)))
        .ok_or_else(|| lacks("a fourth hot region with a leader"))?;
    Ok(vec![
        proposal(first, first_to, "valid: a follower on an up store"),
        proposal(second, second_to, "valid: a follower on an up store"),
        proposal(unknown_region(o), first_to, "invalid: a region nobody observed"),
        proposal(for_store.id, unknown_store(o), "invalid: a store nobody observed"),
        proposal(for_leader, leader, "invalid: the store that already leads"),
        proposal(first, second_to, "invalid: the first region again"),
    ])
}

// Only the wasm build exports (export symbol names cannot go into a native shared library).
#[cfg(target_arch = "wasm32")]
export!(HostilePolicy);
