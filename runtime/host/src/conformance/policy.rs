//! The policy suite's runner: a policy decides on synthetic observations described by the
//! cases (stores, regions, load, leader placement), and the rules judge what it proposes.
//!
//! "Proposes nothing on a balanced cluster" is checked the way Terraform checks a plan:
//! apply what the policy proposes to the observation, ask again, and expect it to come to
//! rest (no proposal) within the case's `rounds`. Whatever the policy's idea of balance, the
//! cluster it leads to is one where it must stay quiet.

use std::collections::BTreeSet;
use std::time::Duration;

use super::case::{Call, Leaders, Load, ObservationSpec, RuleId};
use super::{CaseResult, Cost, Finding, KnownFailures, NamedCase, Status, Suite};
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::gate::{self, Action, GateLimits, GateState, Round, Verdict};
use crate::policy::{Observation, PolicyClient, PolicyError, PolicyInfo, Proposal};
use crate::sandbox::{CallReport, Policy};
use crate::subject::{ClusterStore, Label, Region, StoreState};

/// Store ids of synthetic observations start here (`--param store=1` is the first store).
pub const FIRST_STORE_ID: u64 = 1;

/// The time and first region id of this run's observations: the run's own (a policy cannot
/// recognise the suite by fixed values), the same for every observation of the run (the
/// `deterministic` rule compares two decisions on one observation).
fn run_values() -> (u64, u64) {
    use std::sync::OnceLock;
    static VALUES: OnceLock<(u64, u64)> = OnceLock::new();
    *VALUES.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let mix = (u64::from(now.subsec_nanos()) ^ u64::from(std::process::id())).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (now_ms, 100 + (mix >> 40) % 1_000_000)
    })
}

/// Runs a policy suite.
pub struct PolicyRunner<'r> {
    pub runtime: &'r Runtime,
    pub component: &'r LoadedComponent,
    pub base: Policy,
    /// `--param NAME=VALUE`, given to every `decide`.
    pub params: Vec<(String, String)>,
    pub known: KnownFailures,
}

/// A synthetic observation: `spec`'s stores and regions, replicas on three consecutive stores.
pub fn observation(spec: &ObservationSpec) -> Observation {
    let (now_ms, first_region) = run_values();
    let n = spec.stores.max(1);
    let replicas = n.min(3);
    let mut regions = Vec::with_capacity(spec.regions);
    for i in 0..spec.regions {
        let peers: Vec<u64> = (0..replicas).map(|r| FIRST_STORE_ID + ((i + r) % n) as u64).collect();
        let down = |id: u64| spec.down.contains(&((id - FIRST_STORE_ID) as usize));
        let mut leader = match spec.leaders {
            Leaders::Spread => peers[(i / n) % replicas],
            Leaders::FirstStore if peers.contains(&FIRST_STORE_ID) => FIRST_STORE_ID,
            Leaders::FirstStore => peers[0],
        };
        // A down store leads nothing: its regions elected a leader elsewhere.
        if down(leader) {
            leader = peers.iter().copied().find(|p| !down(*p)).unwrap_or(leader);
        }
        let rate = match spec.load {
            Load::Even => 1024.0 * 1024.0,
            Load::Skewed => 16.0 * 1024.0 * 1024.0 / ((i + 1) as f64).powf(1.1),
        };
        regions.push(Region {
            id: first_region + i as u64,
            leader_store_id: Some(leader),
            peer_store_ids: peers,
            written_bytes: (rate * 60.0) as u64,
            written_keys: (rate / 64.0 * 60.0) as u64,
            read_bytes: 0,
            read_keys: 0,
            approximate_size_bytes: 96 << 20,
            write_bytes_per_second: Some(rate),
            write_keys_per_second: Some(rate / 64.0),
        });
    }
    let stores = (0..n)
        .map(|i| {
            let id = FIRST_STORE_ID + i as u64;
            ClusterStore {
                id,
                address: format!("tikv{}:20160", i + 1),
                state: if spec.down.contains(&i) { StoreState::Down } else { StoreState::Up },
                labels: vec![Label { key: "zone".into(), value: format!("z{}", i % 3 + 1) }],
                version: "8.5.5".into(),
                capacity_bytes: 1 << 40,
                available_bytes: 1 << 39,
                used_bytes: 1 << 39,
                leader_count: 0,
                region_count: regions.iter().filter(|r| r.peer_store_ids.contains(&id)).count() as u64,
                details: Vec::new(),
            }
        })
        .collect();
    let mut o = Observation {
        stores,
        hot_write_regions: regions,
        metrics: None,
        in_flight: Vec::new(),
        recent: Vec::new(),
        now_ms,
    };
    recount(&mut o);
    o
}

/// Sets each store's leader count from the regions.
fn recount(o: &mut Observation) {
    for s in &mut o.stores {
        s.leader_count = o.hot_write_regions.iter().filter(|r| r.leader_store_id == Some(s.id)).count() as u64;
    }
}

/// The gate's verdicts with no caps and no history: only what the observation rules out. The
/// gate's health hold (nothing but moves away from a down store while one is down) is the
/// host's caution, not a flaw of the policy, so it counts as admitted here.
fn verdicts(o: &Observation, proposals: &[Proposal]) -> Vec<Verdict> {
    let limits =
        GateLimits { max_actions_per_round: usize::MAX, max_in_flight: usize::MAX, region_cooldown: Duration::ZERO };
    let actions: Vec<Action> = proposals.iter().map(|p| p.action).collect();
    gate::check(
        Round { stores: &o.stores, regions: &o.hot_write_regions, now_ms: o.now_ms },
        &actions,
        &limits,
        &GateState::default(),
    )
    .into_iter()
    .map(|v| match v {
        Verdict::Refused { reason: gate::Refusal::HealthHold, .. } => Verdict::Admitted,
        v => v,
    })
    .collect()
}

struct Decided {
    result: Result<Result<Vec<Proposal>, PolicyError>, CallError>,
    report: CallReport,
}

impl PolicyRunner<'_> {
    async fn decide(&self, client: &PolicyClient<'_>, o: &Observation) -> Decided {
        match client.decide(o, &self.params).await {
            Ok(d) => Decided { result: Ok(d.value), report: d.report },
            Err(e) => Decided { result: Err(e.error), report: *e.report },
        }
    }

    /// Runs every case; one result per call.
    pub async fn run(&self, suite: &Suite) -> Vec<CaseResult> {
        let mut results = Vec::new();
        for named in &suite.cases {
            for &call in &named.case.calls {
                let mut r = self.run_call(named, call).await;
                r.settle(&self.known);
                results.push(r);
            }
        }
        results
    }

    async fn run_call(&self, named: &NamedCase, call: Call) -> CaseResult {
        let case = &named.case;
        let mut policy = self.base.clone();
        policy.limits = policy.limits.apply(&case.limit_overrides());
        let client = match PolicyClient::new(self.runtime, self.component, policy) {
            Ok(c) => c,
            Err(e) => return CaseResult::not_run(named, call, e.to_string()),
        };
        let mut findings = Vec::new();
        let mut reports: Vec<CallReport> = Vec::new();
        let mut errors: Vec<CallError> = Vec::new();
        let rules = case.all_rules();
        match call {
            Call::Describe => match client.describe().await {
                Ok(o) => {
                    reports.push(o.report);
                    findings.extend(rules.iter().filter_map(|r| describe_rule(*r, &o.value)));
                }
                Err(e) => {
                    reports.push(*e.report);
                    errors.push(e.error);
                }
            },
            _ => {
                let mut o = observation(&case.observation);
                let first = self.decide(&client, &o).await;
                reports.push(first.report);
                match first.result {
                    Err(e) => errors.push(e),
                    Ok(Err(e)) => {
                        if rules.contains(&RuleId::Answers) {
                            findings.push(Finding {
                                rule: RuleId::Answers,
                                passed: false,
                                detail: super::subject_text(&e.to_string()),
                            });
                        }
                    }
                    Ok(Ok(proposals)) => {
                        if rules.contains(&RuleId::Answers) {
                            findings.push(Finding {
                                rule: RuleId::Answers,
                                passed: true,
                                detail: format!("{} proposals", proposals.len()),
                            });
                        }
                        if rules.contains(&RuleId::Deterministic) {
                            let again = self.decide(&client, &o).await;
                            reports.push(again.report);
                            match again.result {
                                Ok(Ok(p2)) if p2 == proposals => findings.push(Finding {
                                    rule: RuleId::Deterministic,
                                    passed: true,
                                    detail: "the same proposals twice".into(),
                                }),
                                Ok(Ok(p2)) => findings.push(Finding {
                                    rule: RuleId::Deterministic,
                                    passed: false,
                                    detail: format!(
                                        "the same observation gave {} proposals, then {} different ones",
                                        proposals.len(),
                                        p2.len()
                                    ),
                                }),
                                Ok(Err(e)) => findings.push(Finding {
                                    rule: RuleId::Deterministic,
                                    passed: false,
                                    detail: format!(
                                        "the same observation decided, then failed: {}",
                                        super::subject_text(&e.to_string())
                                    ),
                                }),
                                Err(e) => errors.push(e),
                            }
                        }
                        if rules.contains(&RuleId::ProposalsPassGate) {
                            let refused =
                                verdicts(&o, &proposals).into_iter().zip(&proposals).find_map(|(v, p)| match v {
                                    Verdict::Refused { reason, detail } => Some((reason, detail, p.action)),
                                    Verdict::Admitted => None,
                                });
                            findings.push(match refused {
                                Some((reason, detail, action)) => Finding {
                                    rule: RuleId::ProposalsPassGate,
                                    passed: false,
                                    detail: format!("{action:?} is refused as `{}`: {detail}", reason.name()),
                                },
                                None => Finding {
                                    rule: RuleId::ProposalsPassGate,
                                    passed: true,
                                    detail: format!("{} proposals admitted", proposals.len()),
                                },
                            });
                        }
                        if rules.contains(&RuleId::Settles) {
                            let mut current = proposals;
                            let mut moved = 0usize;
                            let mut finding = None;
                            for round in 1..=case.rounds {
                                if current.is_empty() {
                                    finding = Some(Finding {
                                        rule: RuleId::Settles,
                                        passed: true,
                                        detail: format!("at rest after {moved} moves in {} rounds", round - 1),
                                    });
                                    break;
                                }
                                let admitted: Vec<Action> = verdicts(&o, &current)
                                    .into_iter()
                                    .zip(&current)
                                    .filter(|(v, _)| *v == Verdict::Admitted)
                                    .map(|(_, p)| p.action)
                                    .collect();
                                if admitted.is_empty() {
                                    finding = Some(Finding {
                                        rule: RuleId::Settles,
                                        passed: false,
                                        detail: format!(
                                            "round {round}: it proposes only moves the gate refuses ({})",
                                            current.len()
                                        ),
                                    });
                                    break;
                                }
                                for Action::TransferLeader { region_id, to_store_id } in &admitted {
                                    if let Some(r) = o.hot_write_regions.iter_mut().find(|r| r.id == *region_id) {
                                        r.leader_store_id = Some(*to_store_id);
                                    }
                                }
                                moved += admitted.len();
                                recount(&mut o);
                                let next = self.decide(&client, &o).await;
                                reports.push(next.report);
                                current = match next.result {
                                    Ok(Ok(p)) => p,
                                    Ok(Err(e)) => {
                                        finding = Some(Finding {
                                            rule: RuleId::Settles,
                                            passed: false,
                                            detail: format!(
                                                "round {}: {}",
                                                round + 1,
                                                super::subject_text(&e.to_string())
                                            ),
                                        });
                                        break;
                                    }
                                    Err(e) => {
                                        errors.push(e);
                                        break;
                                    }
                                };
                            }
                            findings.extend(finding.or_else(|| {
                                errors.is_empty().then(|| Finding {
                                    rule: RuleId::Settles,
                                    passed: false,
                                    detail: format!(
                                        "still proposing {} moves after {} rounds of applying its own ({} moves)",
                                        current.len(),
                                        case.rounds,
                                        moved
                                    ),
                                })
                            }));
                        }
                    }
                }
            }
        }
        // The sandbox's rules, over every call the case made.
        for rule in &rules {
            match rule {
                RuleId::NoTrap => findings.push(match errors.iter().find(|e| matches!(e, CallError::Trap { .. })) {
                    Some(e) => Finding { rule: *rule, passed: false, detail: super::error_line(e) },
                    None => Finding { rule: *rule, passed: true, detail: "no trap".into() },
                }),
                RuleId::WithinLimits => {
                    findings.push(match errors.iter().find(|e| !matches!(e, CallError::Trap { .. })) {
                        Some(e) => Finding { rule: *rule, passed: false, detail: super::error_line(e) },
                        None => Finding { rule: *rule, passed: true, detail: "within its limits".into() },
                    })
                }
                RuleId::FastEnough => {
                    let slowest = reports.iter().map(|r| r.guest_time).max().unwrap_or_default();
                    let limit = case.guest_time_limit();
                    findings.push(Finding {
                        rule: *rule,
                        passed: slowest <= limit,
                        detail: format!("{slowest:.2?} of guest time at most (allowed {limit:.2?} per call)"),
                    });
                }
                _ => {}
            }
        }
        let mut seen = BTreeSet::new();
        findings.retain(|f| seen.insert(f.rule));
        CaseResult {
            case: named.name.clone(),
            call: call.name().into(),
            about: case.about.clone(),
            status: Status::Pass,
            findings,
            cost: reports.iter().fold(None, |acc: Option<Cost>, r| {
                let c = Cost::of(r, 0);
                Some(match acc {
                    Some(mut a) => {
                        a.max(&c);
                        a
                    }
                    None => c,
                })
            }),
            requests: Vec::new(),
            requests_dropped: 0,
            denials: reports.iter().flat_map(|r| r.denials.iter().cloned()).collect(),
            clean: case.is_clean(),
        }
    }
}

fn describe_rule(rule: RuleId, info: &PolicyInfo) -> Option<Finding> {
    match rule {
        RuleId::Answers => {
            Some(Finding { rule, passed: true, detail: format!("policy `{}`", super::subject_text(&info.name)) })
        }
        RuleId::DescribeParams => {
            let mut seen = BTreeSet::new();
            let bad = if info.name.trim().is_empty() {
                Some("the policy's name is empty".to_string())
            } else if let Some(p) = info.params.iter().find(|p| p.name.trim().is_empty()) {
                Some(format!("a parameter has no name (its description: {})", super::subject_text(&p.description)))
            } else {
                info.params
                    .iter()
                    .find(|p| !seen.insert(p.name.as_str()))
                    .map(|p| format!("parameter `{}` is listed twice", super::subject_text(&p.name)))
            };
            Some(match bad {
                Some(why) => Finding { rule, passed: false, detail: why },
                None => Finding { rule, passed: true, detail: format!("{} parameters", info.params.len()) },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_even_observation_is_balanced_and_first_store_leads_what_it_holds() {
        let o = observation(&ObservationSpec::default());
        let counts: Vec<u64> = o.stores.iter().map(|s| s.leader_count).collect();
        assert_eq!(counts.iter().sum::<u64>(), 48);
        assert!(counts.iter().all(|c| *c == 12), "{counts:?}");
        let o = observation(&ObservationSpec { leaders: Leaders::FirstStore, ..ObservationSpec::default() });
        assert_eq!(o.stores[0].leader_count, 36);
        assert!(o.hot_write_regions.iter().all(|r| r.leader_store_id.is_some_and(|l| r.peer_store_ids.contains(&l))));
    }
}
