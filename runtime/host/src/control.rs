//! The control loop's round (issue #13): observe through the Subject adapter, decide through a
//! policy component, check every proposal at the [`gate`], record the round in the [`audit`] log,
//! and — only when applying — act through the adapter's `transfer-leader` and record the result.
//!
//! Dry-run is the default: without `apply` nothing is executed and every admitted proposal gets
//! the verdict `dry-run`. A failing observation or policy ends that round with a named error; the
//! caller's loop goes on. Actions the adapter accepted but did not see complete stay in flight
//! until a later observation shows the leader moved (or the cooldown passes: `failed`).
//!
//! [`gate`]: crate::gate
//! [`audit`]: crate::audit

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::audit::{AuditError, AuditEvent, AuditLog, ProposalRecord, Replay, StoreSummary};
use crate::gate::{self, Action, GateLimits, GateState, Round, Verdict};
use crate::policy::{Observation, Outcome, OutcomeKind, PolicyClient, Proposal};
use crate::subject::{Region, SubjectClient, SubjectError};

/// Hot write regions asked for per round.
pub const HOT_REGIONS_PER_ROUND: u32 = 1024;
/// Recent outcomes kept for the policy (and carried into a rotated audit log).
pub const RECENT: usize = 64;
/// Proposals a round considers, in the policy's order; the rest are dropped and counted (a
/// policy returning 200,000 would otherwise write tens of megabytes of audit per round).
pub const MAX_PROPOSALS: usize = 256;
/// Longest proposal reason kept, in bytes.
pub const MAX_REASON: usize = 512;
/// Longest error or detail kept, in bytes: they carry a component's or a cluster's text, and one
/// round's record must stay well under the audit log's longest line.
pub const MAX_DETAIL: usize = 4096;
/// Stores summarised per round (in the report and the audit log).
const MAX_STORES: usize = 4096;

/// One action of a round as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReport {
    pub region_id: u64,
    pub to_store_id: u64,
    pub reason: String,
    /// `applied`, `failed`, `refused` or `dry-run`.
    pub verdict: String,
    pub detail: String,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundReport {
    pub round: u64,
    pub dry_run: bool,
    pub time_ms: u64,
    /// Per store: state and leader write flow.
    pub stores: Vec<StoreSummary>,
    pub actions: Vec<ActionReport>,
    /// Proposals past [`MAX_PROPOSALS`], dropped unconsidered.
    pub dropped_proposals: usize,
    /// Why the round could not observe or decide, if it could not.
    pub error: Option<String>,
    /// Where the round's time went.
    pub timings: RoundTimings,
}

/// Wall time of a round's steps, in milliseconds (0 for a step the round did not reach).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RoundTimings {
    /// The adapter's `stores`, `hot-write-regions` and `metrics` calls.
    pub observe_ms: f64,
    /// The policy's `decide`.
    pub decide_ms: f64,
    /// The gate's checks and the audit record written before acting.
    pub gate_ms: f64,
    /// Executing admitted actions (0 in a dry run).
    pub act_ms: f64,
}

/// The detail of an action whose fate is unknown: it stays in flight.
fn pending(error: &dyn std::fmt::Display) -> String {
    format!("{error}; in flight until an observation shows the move or its cooldown passes")
}

fn ms_since(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The loop's fixed parts and its state between rounds.
pub struct ControlLoop<'r> {
    pub subject_name: String,
    pub policy_name: String,
    pub subject: SubjectClient<'r>,
    pub policy: PolicyClient<'r>,
    pub params: Vec<(String, String)>,
    pub limits: GateLimits,
    pub state: GateState,
    pub recent: Vec<Outcome>,
    pub audit: AuditLog,
}

/// Leader write flow per store, from the hot regions (PD's `as_leader` flow).
pub fn leader_write_flow(regions: &[Region]) -> BTreeMap<u64, f64> {
    let mut flow = BTreeMap::new();
    for r in regions {
        if let (Some(l), Some(f)) = (r.leader_store_id, r.write_bytes_per_second) {
            *flow.entry(l).or_insert(0.0) += if f.is_finite() { f.max(0.0) } else { 0.0 };
        }
    }
    // A sum of huge rates can still overflow; a record must hold finite numbers (JSON has no inf).
    flow.values_mut().filter(|f| !f.is_finite()).for_each(|f| *f = f64::MAX);
    flow
}

impl ControlLoop<'_> {
    /// Runs round `round`. `approve` is asked before each admitted action when applying.
    /// Once `stop` is set, no further action starts (the rest get `refused`, "interrupted").
    pub async fn round(
        &mut self,
        round: u64,
        apply: bool,
        approve: &mut dyn FnMut(&Proposal) -> bool,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<RoundReport, AuditError> {
        let time_ms = now_ms();
        let mut report = RoundReport {
            round,
            dry_run: !apply,
            time_ms,
            stores: Vec::new(),
            actions: Vec::new(),
            dropped_proposals: 0,
            error: None,
            timings: RoundTimings::default(),
        };

        if self.audit.needs_rotation()? {
            let replay = Replay::read(self.audit.path())?;
            let cooldown = u64::try_from(self.limits.region_cooldown.as_millis()).unwrap_or(u64::MAX);
            self.audit.rotate(&replay.carry(time_ms, cooldown, RECENT))?;
        }

        // Observe.
        let step = std::time::Instant::now();
        let stores = match self.subject.stores().await {
            Ok(o) => match o.value {
                Ok(s) => s,
                Err(e) => return self.failed(report, format!("observe: stores: {e}")),
            },
            Err(f) => return self.failed(report, format!("observe: stores: {}", f.error)),
        };
        let regions = match self.subject.hot_write_regions(HOT_REGIONS_PER_ROUND).await {
            Ok(o) => match o.value {
                Ok(r) => r,
                Err(e) => return self.failed(report, format!("observe: hot write regions: {e}")),
            },
            Err(f) => return self.failed(report, format!("observe: hot write regions: {}", f.error)),
        };
        let metrics = match self.subject.metrics().await {
            Ok(o) => o.value.ok(),
            Err(_) => None,
        };
        let flow = leader_write_flow(&regions);
        report.stores = stores
            .iter()
            .take(MAX_STORES)
            .map(|s| StoreSummary {
                id: s.id,
                state: s.state.to_string(),
                leader_write_bytes_per_second: flow.get(&s.id).copied().unwrap_or(0.0),
            })
            .collect();
        report.timings.observe_ms = ms_since(step);
        self.settle_in_flight(round, time_ms, &regions)?;

        // Decide.
        let step = std::time::Instant::now();
        let observation = Observation {
            stores: stores.clone(),
            hot_write_regions: regions.clone(),
            metrics,
            in_flight: self
                .state
                .in_flight
                .values()
                .map(|a| (*a, self.state.last_action_ms.get(&a.region_id()).copied().unwrap_or(0)))
                .collect(),
            recent: self.recent.clone(),
            now_ms: time_ms,
        };
        let mut proposals = match self.policy.decide(&observation, &self.params).await {
            Ok(o) => match o.value {
                Ok(p) => p,
                Err(e) => return self.failed(report, format!("decide: {e}")),
            },
            Err(f) => return self.failed(report, format!("decide: {}", f.error)),
        };
        report.timings.decide_ms = ms_since(step);
        report.dropped_proposals = proposals.len().saturating_sub(MAX_PROPOSALS);
        proposals.truncate(MAX_PROPOSALS);
        for p in &mut proposals {
            p.reason = cut(std::mem::take(&mut p.reason), MAX_REASON);
            if !p.score.is_finite() {
                p.score = 0.0;
            }
        }

        // Gate, then record before acting.
        let step = std::time::Instant::now();
        let actions: Vec<Action> = proposals.iter().map(|p| p.action).collect();
        let verdicts = gate::check(
            Round { stores: &stores, regions: &regions, now_ms: time_ms },
            &actions,
            &self.limits,
            &self.state,
        );
        let records: Vec<ProposalRecord> = proposals
            .iter()
            .zip(&verdicts)
            .map(|(p, v)| {
                let (verdict, detail) = match v {
                    Verdict::Admitted => ("admitted".to_string(), String::new()),
                    Verdict::Refused { reason, detail } => (reason.name().to_string(), cut(detail.clone(), MAX_REASON)),
                };
                ProposalRecord { action: p.action, reason: p.reason.clone(), score: p.score, verdict, detail }
            })
            .collect();
        self.audit.append(&AuditEvent::Round {
            time_ms,
            round,
            subject: self.subject_name.clone(),
            policy: self.policy_name.clone(),
            dry_run: !apply,
            params: self.params.clone(),
            limits: Some((&self.limits).into()),
            stores: report.stores.clone(),
            proposals: records,
        })?;

        report.timings.gate_ms = ms_since(step);

        // Act.
        let step = std::time::Instant::now();
        for (p, v) in proposals.iter().zip(&verdicts) {
            let Action::TransferLeader { region_id, to_store_id } = p.action;
            let out = |verdict: &str, detail: String| ActionReport {
                region_id,
                to_store_id,
                reason: p.reason.clone(),
                verdict: verdict.into(),
                detail: cut(detail, MAX_DETAIL),
            };
            let entry = match v {
                Verdict::Refused { reason, detail } => out("refused", format!("{}: {detail}", reason.name())),
                Verdict::Admitted if !apply => out("dry-run", "admitted by the gate; not executed".into()),
                Verdict::Admitted if stop.load(std::sync::atomic::Ordering::SeqCst) => {
                    self.skipped(round, p.action, "interrupted before it ran")?;
                    out("refused", "interrupted before it ran".into())
                }
                Verdict::Admitted if !approve(p) => {
                    self.skipped(round, p.action, "not approved")?;
                    out("refused", "not approved".into())
                }
                // Ctrl-C while the person was asked: nothing starts after it.
                Verdict::Admitted if stop.load(std::sync::atomic::Ordering::SeqCst) => {
                    self.skipped(round, p.action, "interrupted before it ran")?;
                    out("refused", "interrupted before it ran".into())
                }
                Verdict::Admitted => {
                    let done = execute(&self.subject, &mut self.audit, &mut self.state, round, p.action).await?;
                    if let Some(o) = done.outcome {
                        self.remember(o);
                    }
                    out(done.verdict, done.detail)
                }
            };
            report.actions.push(entry);
        }
        report.timings.act_ms = ms_since(step);
        Ok(report)
    }

    /// Ends a round that could not observe or decide, and records why.
    fn failed(&mut self, mut report: RoundReport, error: String) -> Result<RoundReport, AuditError> {
        let error = cut(error, MAX_DETAIL);
        self.audit.append(&AuditEvent::RoundFailed {
            time_ms: report.time_ms,
            round: report.round,
            subject: self.subject_name.clone(),
            policy: self.policy_name.clone(),
            error: error.clone(),
        })?;
        report.error = Some(error);
        Ok(report)
    }

    /// Records an admitted action that is not executed.
    fn skipped(&mut self, round: u64, action: Action, detail: &str) -> Result<(), AuditError> {
        self.audit.append(&AuditEvent::Skipped { time_ms: now_ms(), round, action, detail: detail.into() })
    }

    /// Keeps an ended action for the policy's next observations.
    fn remember(&mut self, outcome: Outcome) {
        self.recent.push(outcome);
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
    }

    /// Ends in-flight actions this observation confirms, or that outlived the cooldown.
    fn settle_in_flight(&mut self, round: u64, now_ms: u64, regions: &[Region]) -> Result<(), AuditError> {
        for o in settle(&mut self.audit, &mut self.state, &self.limits, round, now_ms, regions)? {
            self.remember(o);
        }
        Ok(())
    }
}

/// How an executed action went, as far as the adapter could tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// `applied` or `failed`.
    pub verdict: &'static str,
    pub detail: String,
    /// The recorded outcome, when the action ended (not when it stays in flight).
    pub outcome: Option<Outcome>,
}

/// Executes one action the gate admitted: records its start (synced first), asks the adapter,
/// and records how it ended. An action whose fate the adapter cannot tell stays in flight.
pub async fn execute(
    subject: &SubjectClient<'_>,
    audit: &mut AuditLog,
    state: &mut GateState,
    round: u64,
    action: Action,
) -> Result<Executed, AuditError> {
    let Action::TransferLeader { region_id, to_store_id } = action;
    // The cooldown runs from when the action is sent, as the audit log says.
    let sent_ms = now_ms();
    audit.append(&AuditEvent::Start { time_ms: sent_ms, round, action })?;
    state.started(action, sent_ms);
    let unknown = |detail: String| Executed { verdict: "failed", detail: cut(detail, MAX_DETAIL), outcome: None };
    Ok(match subject.transfer_leader(region_id, to_store_id).await {
        Ok(o) => match o.value {
            Ok(t) if t.confirmed => {
                let detail = format!("leader moved, confirmed after {} ms", t.waited_ms);
                let outcome = finish(audit, state, round, action, true, detail.clone())?;
                Executed { verdict: "applied", detail, outcome: Some(outcome) }
            }
            Ok(t) => Executed {
                verdict: "applied",
                detail: format!("accepted; not yet observed after {} ms", t.waited_ms),
                outcome: None,
            },
            // The cluster refused it, or it could not be sent: it is over.
            Err(
                e @ (SubjectError::Rejected(_)
                | SubjectError::NotFound(_)
                | SubjectError::Denied(_)
                | SubjectError::Unsupported(_)),
            ) => {
                let detail = cut(e.to_string(), MAX_DETAIL);
                let outcome = finish(audit, state, round, action, false, detail.clone())?;
                Executed { verdict: "failed", detail, outcome: Some(outcome) }
            }
            // Unreachable or a bad answer may come after the request went out: like a failed
            // call, below.
            Err(e) => unknown(pending(&e)),
        },
        // The adapter itself failed (a trap, its deadline): the request may have reached the
        // cluster, so the action stays in flight until an observation shows the move or its
        // cooldown passes.
        Err(f) => unknown(pending(&f.error)),
    })
}

/// Records how an action ended and frees its region.
fn finish(
    audit: &mut AuditLog,
    state: &mut GateState,
    round: u64,
    action: Action,
    applied: bool,
    detail: String,
) -> Result<Outcome, AuditError> {
    let at_ms = now_ms();
    audit.append(&AuditEvent::Outcome { time_ms: at_ms, round, action, applied, detail: detail.clone() })?;
    state.finished(action.region_id());
    let kind = if applied { OutcomeKind::Applied } else { OutcomeKind::Failed };
    Ok(Outcome { action, kind, detail, at_ms })
}

/// Ends (and records) the in-flight actions this observation confirms, or that outlived the
/// cooldown; returns how they ended.
pub fn settle(
    audit: &mut AuditLog,
    state: &mut GateState,
    limits: &GateLimits,
    round: u64,
    now_ms: u64,
    regions: &[Region],
) -> Result<Vec<Outcome>, AuditError> {
    let leaders: BTreeMap<u64, Option<u64>> = regions.iter().map(|r| (r.id, r.leader_store_id)).collect();
    let cooldown = u64::try_from(limits.region_cooldown.as_millis()).unwrap_or(u64::MAX);
    let pending: Vec<Action> = state.in_flight.values().copied().collect();
    let mut ended = Vec::new();
    for action in pending {
        let Action::TransferLeader { region_id, to_store_id } = action;
        let since = state.last_action_ms.get(&region_id).copied().unwrap_or(0);
        if leaders.get(&region_id) == Some(&Some(to_store_id)) {
            ended.push(finish(audit, state, round, action, true, "leader move observed".into())?);
        } else if now_ms.saturating_sub(since) >= cooldown {
            let detail = "leader move not observed within the cooldown".to_string();
            ended.push(finish(audit, state, round, action, false, detail)?);
        }
    }
    Ok(ended)
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// `s` cut to at most `max` bytes, at a character boundary, marked when cut.
pub fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        s.truncate(s.floor_char_boundary(max.saturating_sub(4)));
        s.push_str(" ...");
    }
    s
}
