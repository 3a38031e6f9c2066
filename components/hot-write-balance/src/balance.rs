//! The decision itself, on plain types, so it is tested natively.

use std::collections::BTreeMap;

/// `(name, default, meaning)` of every parameter.
pub const PARAMS: &[(&str, &str, &str)] = &[
    ("tolerance", "1.05", "act only when the hottest store's leader write flow exceeds the mean by this ratio"),
    ("min-region-rate", "1024", "ignore regions writing fewer bytes per second than this"),
    ("max-proposals", "4", "proposals per round at most (the host's gate caps them again)"),
    ("min-gain-ratio", "0.02", "skip moves that lower the hottest store's flow by less than this fraction of the mean"),
    ("settle-ms", "60000", "leave a region alone this long after an action on it ended, and while one is in flight"),
];

/// Parsed parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub tolerance: f64,
    pub min_region_rate: f64,
    pub max_proposals: usize,
    pub min_gain_ratio: f64,
    pub settle_ms: u64,
}

impl Params {
    /// The defaults, overridden by `given`; an unknown name or a bad value is an error.
    pub fn parse(given: &[(String, String)]) -> Result<Params, String> {
        let mut p = Params {
            tolerance: 1.05,
            min_region_rate: 1024.0,
            max_proposals: 4,
            min_gain_ratio: 0.02,
            settle_ms: 60_000,
        };
        for (name, value) in given {
            let number = || value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
            match name.as_str() {
                "tolerance" => {
                    p.tolerance = number()
                        .filter(|v| *v >= 1.0)
                        .ok_or(format!("tolerance must be a ratio >= 1, got {value:?}"))?
                }
                "min-region-rate" => {
                    p.min_region_rate =
                        number().ok_or(format!("min-region-rate must be bytes per second, got {value:?}"))?
                }
                "max-proposals" => {
                    p.max_proposals =
                        value.parse().map_err(|_| format!("max-proposals must be a whole number, got {value:?}"))?
                }
                "min-gain-ratio" => {
                    p.min_gain_ratio =
                        number().ok_or(format!("min-gain-ratio must be a fraction >= 0, got {value:?}"))?
                }
                "settle-ms" => {
                    p.settle_ms = value.parse().map_err(|_| format!("settle-ms must be milliseconds, got {value:?}"))?
                }
                other => {
                    let known: Vec<&str> = PARAMS.iter().map(|(n, _, _)| *n).collect();
                    return Err(format!("unknown parameter `{other}`; this policy takes {}", known.join(", ")));
                }
            }
        }
        Ok(p)
    }
}

/// A store as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFlow {
    pub id: u64,
    /// Up and able to lead: only such stores are targets and count in the mean.
    pub up: bool,
}

/// A hot region with a known leader and write rate.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionFlow {
    pub id: u64,
    pub leader: u64,
    pub peers: Vec<u64>,
    pub bytes_per_second: f64,
}

/// A proposed leader move.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub region_id: u64,
    pub to_store_id: u64,
    /// How much the hottest store's flow drops, bytes/s.
    pub gain: f64,
    pub reason: String,
}

/// The moves for this round, best first. Regions in `settling` (an action in flight, or one
/// that ended less than `settle-ms` ago) are left alone: their flow has not settled where the
/// move put it, and moving them again is how a balancer flaps.
pub fn decide(stores: &[StoreFlow], regions: &[RegionFlow], p: &Params, settling: &[u64]) -> Vec<Move> {
    let up: Vec<u64> = stores.iter().filter(|s| s.up).map(|s| s.id).collect();
    if up.len() < 2 {
        return Vec::new();
    }
    // Leader write flow per up store (stores leading nothing hot count as 0).
    let mut flow: BTreeMap<u64, f64> = up.iter().map(|id| (*id, 0.0)).collect();
    for r in regions {
        if let Some(f) = flow.get_mut(&r.leader) {
            *f += r.bytes_per_second.max(0.0);
        }
    }
    let mean = flow.values().sum::<f64>() / flow.len() as f64;
    let mut moved: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    while out.len() < p.max_proposals {
        // The hottest store (ties: the lower id, for determinism).
        let Some((&source, &source_flow)) = flow.iter().max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
        else {
            break;
        };
        if mean <= 0.0 || source_flow <= mean * p.tolerance {
            break;
        }
        // Its regions, hottest first, not yet moved this round.
        let mut candidates: Vec<&RegionFlow> = regions
            .iter()
            .filter(|r| {
                r.leader == source
                    && !moved.contains(&r.id)
                    && !settling.contains(&r.id)
                    && r.bytes_per_second >= p.min_region_rate
            })
            .collect();
        candidates.sort_by(|a, b| b.bytes_per_second.total_cmp(&a.bytes_per_second).then(a.id.cmp(&b.id)));
        let mut best: Option<(f64, f64, &RegionFlow, u64)> = None;
        for r in candidates {
            let f = r.bytes_per_second;
            for &to in &r.peers {
                // Only an up store with a replica, other than the source.
                let Some(&to_flow) = flow.get(&to) else { continue };
                if to == source {
                    continue;
                }
                // After the move: source - f, destination + f. The larger of the two must be
                // below the source's flow now (the gain), and the destination may end hotter than
                // the source by no more than that gain.
                let after = (source_flow - f).max(to_flow + f);
                let gain = source_flow - after;
                if gain <= 0.0 || gain < p.min_gain_ratio * mean || (to_flow + f) - (source_flow - f) > gain {
                    continue;
                }
                // Best: the largest gain, then the coolest destination after the move, then ids.
                let key = (gain, -(to_flow + f));
                let better =
                    best.as_ref().is_none_or(|(g, d, br, bt)| match (key.0.total_cmp(g), key.1.total_cmp(d)) {
                        (std::cmp::Ordering::Greater, _) => true,
                        (std::cmp::Ordering::Equal, std::cmp::Ordering::Greater) => true,
                        (std::cmp::Ordering::Equal, std::cmp::Ordering::Equal) => (r.id, to) < (br.id, *bt),
                        _ => false,
                    });
                if better {
                    best = Some((gain, key.1, r, to));
                }
            }
        }
        let Some((gain, _, r, to)) = best else { break };
        let f = r.bytes_per_second;
        *flow.entry(source).or_default() -= f;
        *flow.entry(to).or_default() += f;
        moved.push(r.id);
        out.push(Move {
            region_id: r.id,
            to_store_id: to,
            gain,
            reason: format!(
                "store {source} leads {} of hot writes, {:.2}x the mean {}; moving region {} ({}) to store {to}",
                rate(source_flow),
                source_flow / mean,
                rate(mean),
                r.id,
                rate(f)
            ),
        });
    }
    out
}

fn rate(bytes_per_second: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes_per_second >= MIB {
        format!("{:.1}MiB/s", bytes_per_second / MIB)
    } else {
        format!("{:.1}KiB/s", bytes_per_second / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores(n: u64) -> Vec<StoreFlow> {
        (1..=n).map(|id| StoreFlow { id, up: true }).collect()
    }

    fn region(id: u64, leader: u64, peers: &[u64], mib: f64) -> RegionFlow {
        RegionFlow { id, leader, peers: peers.to_vec(), bytes_per_second: mib * 1024.0 * 1024.0 }
    }

    fn defaults() -> Params {
        Params::parse(&[]).expect("defaults")
    }

    #[test]
    fn a_balanced_cluster_gets_no_proposals() {
        let regions = vec![region(1, 1, &[1, 2, 3], 5.0), region(2, 2, &[1, 2, 3], 5.0), region(3, 3, &[1, 2, 3], 5.1)];
        assert!(decide(&stores(3), &regions, &defaults(), &[]).is_empty());
    }

    #[test]
    fn the_move_that_lowers_the_hottest_store_most_goes_first() {
        let regions = vec![
            region(1, 1, &[1, 2, 3], 6.0),
            region(2, 1, &[1, 2, 3], 3.0),
            region(3, 2, &[1, 2, 3], 2.0),
            region(4, 3, &[1, 2, 3], 1.0),
        ];
        // Flows 9, 2, 1 MiB/s. Region 1 (6) to store 3 would leave 3 and 7: store 3 hotter than
        // the source by more than the gain. Region 2 (3) to store 3 leaves 6 and 4: gain 3.
        let moves = decide(&stores(3), &regions, &defaults(), &[]);
        assert_eq!((moves[0].region_id, moves[0].to_store_id), (2, 3));
        assert_eq!(moves[0].gain, 3.0 * 1024.0 * 1024.0);
        assert!(moves[0].reason.starts_with("store 1 leads 9.0MiB/s of hot writes"), "{}", moves[0].reason);
        assert!(moves.len() <= 4);
    }

    #[test]
    fn a_move_never_makes_the_destination_the_new_hottest_store() {
        // One region carries all the flow: moving it would only move the hotspot.
        let regions = vec![region(1, 1, &[1, 2, 3], 10.0)];
        assert!(decide(&stores(3), &regions, &defaults(), &[]).is_empty());
        // Only peers count: store 3 holds no replica of region 1.
        let regions = vec![region(1, 1, &[1, 2], 4.0), region(2, 1, &[1, 2], 4.0), region(3, 2, &[2, 3], 4.0)];
        let moves = decide(&stores(3), &regions, &defaults(), &[]);
        assert!(moves.iter().all(|m| m.to_store_id == 2), "{moves:?}");
    }

    #[test]
    fn stores_that_are_not_up_are_neither_source_nor_destination() {
        let mut s = stores(3);
        s[2].up = false;
        let regions = vec![region(1, 1, &[1, 2, 3], 6.0), region(2, 1, &[1, 2, 3], 2.0), region(3, 2, &[1, 2, 3], 1.0)];
        let moves = decide(&s, &regions, &defaults(), &[]);
        assert!(!moves.is_empty() && moves.iter().all(|m| m.to_store_id == 2), "{moves:?}");
    }

    #[test]
    fn proposals_are_capped_and_the_same_input_gives_the_same_output() {
        let regions: Vec<RegionFlow> = (0..50).map(|i| region(i, 1, &[1, 2, 3], 1.0 + i as f64 / 10.0)).collect();
        let p = Params { max_proposals: 3, ..defaults() };
        let a = decide(&stores(3), &regions, &p, &[]);
        assert_eq!(a.len(), 3);
        assert_eq!(a, decide(&stores(3), &regions, &p, &[]));
        assert!(a.windows(2).all(|w| w[0].gain >= w[1].gain || w[0].region_id != w[1].region_id));
    }

    #[test]
    fn settling_regions_and_tiny_gains_are_left_alone() {
        let regions = vec![region(1, 1, &[1, 2, 3], 3.0), region(2, 1, &[1, 2, 3], 3.0), region(3, 2, &[1, 2, 3], 1.0)];
        let all = decide(&stores(3), &regions, &defaults(), &[]);
        assert!(all.iter().any(|m| m.region_id == 1), "{all:?}");
        let settled = decide(&stores(3), &regions, &defaults(), &[1]);
        assert!(settled.iter().all(|m| m.region_id != 1), "{settled:?}");
        // Within 2% of the mean, nothing is worth a move.
        let flat = vec![region(1, 1, &[1, 2, 3], 1.07), region(2, 2, &[1, 2, 3], 1.0), region(3, 3, &[1, 2, 3], 1.0)];
        let p = Params { tolerance: 1.0, min_gain_ratio: 0.05, ..defaults() };
        assert!(decide(&stores(3), &flat, &p, &[]).is_empty());
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = Params::parse(&[("tolerance".into(), "0.5".into())]).expect_err("below 1");
        assert!(e.contains("tolerance must be a ratio >= 1"), "{e}");
        let e = Params::parse(&[("speed".into(), "1".into())]).expect_err("unknown");
        assert!(e.contains("unknown parameter `speed`") && e.contains("min-region-rate"), "{e}");
        assert_eq!(Params::parse(&[("max-proposals".into(), "2".into())]).expect("ok").max_proposals, 2);
    }
}
