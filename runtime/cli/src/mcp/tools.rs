//! The MCP tools. Read-only ones are annotated `readOnlyHint` and return the contract's records
//! as structured output (a list inside an object named after it); mutating ones are annotated
//! `destructiveHint` and go through the gate, the audit log and the person's confirmation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use operator_host::audit::{AuditEvent, AuditLog, LimitsRecord, ProposalRecord, Replay, StoreSummary};
use operator_host::control::{self, HOT_REGIONS_PER_ROUND, MAX_DETAIL, MAX_REASON, cut, leader_write_flow};
use operator_host::deploy::{self, Access, ComposeProject, Deployer, ProjectSource, ServiceStatus};
use operator_host::gate::{self, Action, GateState, Round, Verdict};
use operator_host::policy::{Observation, PolicyClient};
use operator_host::sandbox::{CallOutcome, FailedCall};
use operator_host::subject::{ClusterMetrics, ClusterStore, Region, SubjectClient, SubjectError};
use operator_host::text::escape;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::confirm::{self, Answer, Pending};
use super::{Served, Shared};

/// Proposals kept for `apply_proposal`, at most.
const KEPT_PROPOSALS: usize = 1024;
/// How long a proposal can be applied after `propose` returned it.
const PROPOSAL_TTL_MS: u64 = 10 * 60 * 1000;
/// Log lines `deployment_logs` returns at most, and their bytes.
const MAX_LOG_LINES: usize = 2000;
const MAX_LOG_BYTES: usize = 256 * 1024;
/// Audit events `audit_log` returns at most, and their size as JSON at most.
const MAX_EVENTS: usize = 1000;
const MAX_AUDIT_BYTES: usize = 1 << 20;

/// A tool failure: a named error, what happened and what to do (an MCP tool error).
#[derive(Debug)]
pub struct ToolError {
    kind: String,
    message: String,
    hint: Option<String>,
}

impl ToolError {
    pub fn new(kind: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        ToolError { kind: kind.into(), message: message.into(), hint }
    }

    fn into_result(self) -> CallToolResult {
        let mut text = format!("{}: {}", self.kind, cut(self.message.clone(), MAX_DETAIL));
        if let Some(h) = &self.hint {
            text.push_str("\nhint: ");
            text.push_str(h);
        }
        CallToolResult::error(vec![ContentBlock::text(text)])
    }
}

impl From<FailedCall> for ToolError {
    fn from(f: FailedCall) -> Self {
        ToolError::new(f.error.kind(), f.error.to_string(), f.error.hint())
    }
}

impl From<operator_host::audit::AuditError> for ToolError {
    fn from(e: operator_host::audit::AuditError) -> Self {
        ToolError::new("audit", e.to_string(), None)
    }
}

/// A tool's value as structured output, or its error as a tool error.
async fn reply<T>(work: impl std::future::Future<Output = Result<T, ToolError>>) -> Result<Json<T>, CallToolResult> {
    work.await.map(Json).map_err(ToolError::into_result)
}

/// A deployment driver's own error.
fn driver_error(e: operator_host::deploy::DeployError) -> ToolError {
    ToolError::new("deployment", cut(e.to_string(), MAX_DETAIL), None)
}

/// An adapter's result: the value, or its named error with a hint for the usual causes.
fn adapter_value<T>(
    served: &Served,
    r: Result<CallOutcome<Result<T, SubjectError>>, FailedCall>,
) -> Result<T, ToolError> {
    let outcome = r?;
    super::sandbox_args::report(&served.file.name, &outcome.report);
    outcome.value.map_err(|e| {
        let hint = match &e {
            SubjectError::Unreachable(_) => Some(format!(
                "endpoints in use: {}; `operator mcp --endpoint NAME=URL` points one elsewhere",
                served.policy.http.endpoints().map(|g| format!("{}={}", g.name, g.url)).collect::<Vec<_>>().join(", ")
            )),
            SubjectError::Denied(_) => Some(format!("the grants are in {}", served.subject.manifest.path.display())),
            _ => None,
        };
        ToolError::new(e.kind(), e.to_string(), hint)
    })
}

/// The one argument of per-subject tools.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubjectArg {
    /// The subject, as `list_subjects` names it (e.g. `tikv`).
    pub subject: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HotRegionsArgs {
    /// The subject, as `list_subjects` names it.
    pub subject: String,
    /// How many regions, hottest first (default 10, at most 1024).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TransferArgs {
    /// The subject, as `list_subjects` names it.
    pub subject: String,
    /// The region (replica group) whose leader moves.
    pub region_id: u64,
    /// The store that takes the lead; it must hold a peer of the region and be up.
    pub to_store_id: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProposeArgs {
    /// The subject, as `list_subjects` names it.
    pub subject: String,
    /// A policy component by name (`hot-write-balance`, `evict-leader`).
    pub policy: String,
    /// The policy's parameters, e.g. {"store": "4"}.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApplyArgs {
    /// The `id` of a proposal `propose` returned (valid for 10 minutes).
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogsArgs {
    /// The subject, as `list_subjects` names it.
    pub subject: String,
    /// Only this service's containers.
    pub service: Option<String>,
    /// Lines of history per container (default 100, at most 1000).
    pub tail: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AuditArgs {
    /// The subject, as `list_subjects` names it.
    pub subject: String,
    /// How many of the latest events (default 50, at most 1000).
    pub last: Option<usize>,
}

/// A served subject.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SubjectEntry {
    pub name: String,
    /// The component that implements its Subject contract.
    pub adapter: String,
    /// The contracts it implements: `subject`, and `deployment` when it has a local cluster.
    pub contracts: Vec<String>,
    /// The endpoint names its adapter may reach (never their URLs).
    pub endpoints: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Subjects {
    pub subjects: Vec<SubjectEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Stores {
    pub stores: Vec<ClusterStore>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Regions {
    pub regions: Vec<Region>,
}

/// A proposal with the gate's verdict this moment; nothing was executed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProposedAction {
    /// Pass it to `apply_proposal` to execute it (through the gate again).
    pub id: String,
    pub region_id: u64,
    pub to_store_id: u64,
    pub reason: String,
    pub score: f64,
    /// `admitted`, or the gate's refusal (`cooldown`, `not-a-peer`, `health-hold`, ...).
    pub verdict: String,
    pub detail: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Proposals {
    pub policy: String,
    pub proposals: Vec<ProposedAction>,
    /// Proposals past the 256 considered.
    pub dropped: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditEvents {
    pub path: String,
    pub events: Vec<AuditEvent>,
    /// Lines that could not be read (torn or foreign).
    pub skipped: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Services {
    /// The compose project of the subject's local cluster.
    pub project: String,
    pub services: Vec<ServiceStatus>,
}

/// One line a container printed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLine {
    pub service: String,
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Logs {
    pub project: String,
    pub lines: Vec<LogLine>,
    /// Whether lines were left out (at most 2,000 lines, 256 KiB, 4 KiB a line).
    pub truncated: bool,
}

/// A proposal `propose` returned, kept for `apply_proposal`.
#[derive(Debug, Clone)]
pub struct StoredProposal {
    subject: String,
    action: Action,
    reason: String,
    at_ms: u64,
}

/// The MCP server.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    pending: Arc<Pending>,
    tool_router: ToolRouter<Server>,
}

impl Server {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Server { shared, pending: Arc::new(Pending::default()), tool_router: Self::tool_router() }
    }

    async fn client<'s>(&'s self, served: &'s Served) -> Result<SubjectClient<'s>, ToolError> {
        let adapter = self.shared.adapter(served).await?;
        SubjectClient::new(&self.shared.runtime, adapter, served.policy.clone())
            .map_err(|e| ToolError::new(e.kind(), e.to_string(), e.hint()))
    }

    /// This moment's stores and hot regions (what the gate checks against).
    async fn observe(
        &self,
        served: &Served,
        client: &SubjectClient<'_>,
    ) -> Result<(Vec<ClusterStore>, Vec<Region>), ToolError> {
        let stores = adapter_value(served, client.stores().await)?;
        let regions = adapter_value(served, client.hot_write_regions(HOT_REGIONS_PER_ROUND).await)?;
        Ok((stores, regions))
    }

    /// The gate state the subject's audit log replays to (read without the lock: a preview).
    fn state(served: &Served) -> Result<GateState, ToolError> {
        let replay = Replay::read(&served.audit_path)?;
        Ok(replay.gate_state(control::now_ms()))
    }

    /// Gates, confirms, executes and records one action.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        ctx: &RequestContext<RoleServer>,
        state_token: Option<String>,
        responses: Option<rmcp::model::InputResponses>,
        subject: &str,
        action: Action,
        reason: String,
    ) -> Result<CallToolResponse, CallToolResult> {
        let who = client_name(ctx);
        let served = self.shared.served(subject).map_err(ToolError::into_result)?;
        let Action::TransferLeader { region_id, to_store_id } = action;
        let what = format!("{subject}/{region_id}/{to_store_id}");
        // An answer a retried call carries is spent before anything else can fail.
        let answered = if self.shared.allow_actions {
            None
        } else {
            confirm::answered(&self.pending, state_token.as_deref(), responses.as_ref(), &what)
        };
        let client = self.client(served).await.map_err(ToolError::into_result)?;

        // A preview through the gate, so the person is never asked about a refused action.
        let (stores, regions) = self.observe(served, &client).await.map_err(ToolError::into_result)?;
        let preview = Self::state(served).map_err(ToolError::into_result)?;
        let round = Round { stores: &stores, regions: &regions, now_ms: control::now_ms() };
        let previewed = gate::check(round, &[action], &self.shared.limits, &preview).remove(0);

        // Ok(who asked, when the stateless protocol remembers it); Err: why not (recorded below).
        let approval: Result<Option<String>, ToolError> = if let Verdict::Refused { reason: r, detail } = &previewed {
            Err(refusal(r.name(), detail))
        } else if self.shared.allow_actions {
            Ok(None)
        } else {
            let answer = match answered {
                Some(a) => a,
                None => {
                    let message = format!(
                        "{who} asks to move the leader of region {region_id} of {subject} to store {to_store_id} ({}). Go ahead?",
                        escape(&cut(reason.clone(), 200))
                    );
                    confirm::ask(ctx, &self.pending, &what, &who, &message).await
                }
            };
            match answer {
                Answer::Yes(asked_by) => Ok(asked_by),
                Answer::Ask(input) => return Ok(input.into()),
                Answer::No(why) => Err(ToolError::new("not-approved", format!("{why}; nothing was executed"), None)),
                Answer::Unsupported => Err(ToolError::new(
                    "not-approved",
                    "this client cannot ask a person to confirm (no elicitation); nothing was executed",
                    Some("use a client with elicitation, or start the server with --allow-actions (the gate still applies)".into()),
                )),
            }
        };
        let who = approval.as_ref().ok().cloned().flatten().unwrap_or(who);

        // For real: one action at a time per log, the audit log locked, a fresh observation.
        let _one = self.shared.acting_on(&served.audit_path).lock_owned().await;
        let audit_err = |e: operator_host::audit::AuditError| ToolError::from(e).into_result();
        let mut audit = AuditLog::open(&served.audit_path).map_err(audit_err)?;
        let mut replay = Replay::read(&served.audit_path).map_err(audit_err)?;
        let now = control::now_ms();
        if audit.needs_rotation().map_err(audit_err)? {
            let cooldown = u64::try_from(self.shared.limits.region_cooldown.as_millis()).unwrap_or(u64::MAX);
            let carry = replay.carry(now, cooldown.max(60_000), control::RECENT);
            audit.rotate(&carry).map_err(audit_err)?;
            replay = Replay { events: carry, skipped: 0 };
        }
        let round_no = replay.events.iter().map(AuditEvent::round).max().unwrap_or(0).saturating_add(1);
        let mut state = replay.gate_state(now);
        let recent_starts = replay
            .events
            .iter()
            .filter(|e| matches!(e, AuditEvent::Start { time_ms, .. } if now.saturating_sub(*time_ms) < 60_000))
            .count();
        let (stores, regions) = self.observe(served, &client).await.map_err(ToolError::into_result)?;
        control::settle(&mut audit, &mut state, &self.shared.limits, round_no, now, &regions).map_err(audit_err)?;
        let verdict = gate::check(
            Round { stores: &stores, regions: &regions, now_ms: now },
            &[action],
            &self.shared.limits,
            &state,
        )
        .remove(0);
        let flow = leader_write_flow(&regions);
        let (name, detail) = match &verdict {
            Verdict::Admitted => ("admitted".to_string(), String::new()),
            Verdict::Refused { reason, detail } => (reason.name().to_string(), cut(detail.clone(), MAX_REASON)),
        };
        audit
            .append(&AuditEvent::Round {
                time_ms: now,
                round: round_no,
                subject: subject.to_string(),
                policy: format!("mcp: {who}"),
                dry_run: false,
                params: vec![],
                limits: Some(LimitsRecord::from(&self.shared.limits)),
                stores: stores
                    .iter()
                    .take(4096)
                    .map(|s| StoreSummary {
                        id: s.id,
                        state: s.state.to_string(),
                        leader_write_bytes_per_second: flow.get(&s.id).copied().unwrap_or(0.0),
                    })
                    .collect(),
                proposals: vec![ProposalRecord {
                    action,
                    reason: cut(reason.clone(), MAX_REASON),
                    score: 0.0,
                    verdict: name.clone(),
                    detail: detail.clone(),
                }],
            })
            .map_err(audit_err)?;
        if verdict != Verdict::Admitted {
            return Err(refusal(&name, &detail).into_result());
        }
        let blocked = match approval {
            Err(e) => Some(e),
            Ok(_) if recent_starts >= self.shared.max_actions_per_minute => Some(ToolError::new(
                "rate-limit",
                format!("{recent_starts} action(s) started on this audit log in the last minute; nothing was executed"),
                Some("retry later, or raise --max-actions-per-minute".into()),
            )),
            Ok(_) => None,
        };
        if let Some(e) = blocked {
            let skipped = AuditEvent::Skipped {
                time_ms: now,
                round: round_no,
                action,
                detail: cut(e.message.clone(), MAX_REASON),
            };
            audit.append(&skipped).map_err(audit_err)?;
            return Err(e.into_result());
        }
        let done = control::execute(&client, &mut audit, &mut state, round_no, action).await.map_err(audit_err)?;
        let verdict = if done.verdict == "applied" && done.outcome.is_none() { "in-flight" } else { done.verdict };
        let body = serde_json::json!({
            "subject": subject,
            "region_id": region_id,
            "to_store_id": to_store_id,
            "verdict": verdict,
            "detail": done.detail,
            "audit_log": served.audit_path.display().to_string(),
        });
        if done.verdict == "applied" {
            Ok(CallToolResult::structured(body).into())
        } else {
            Ok(CallToolResult::structured_error(body).into())
        }
    }
}

/// The client's name as it says it, shown and recorded safely: escaped, at most 64 bytes.
fn client_name(ctx: &RequestContext<RoleServer>) -> String {
    match ctx.client_info() {
        Some(c) if !c.name.trim().is_empty() => cut(escape(&c.name).into_owned(), 64),
        _ => "an MCP client".into(),
    }
}

/// A gate refusal as a tool error.
fn refusal(name: &str, detail: &str) -> ToolError {
    ToolError::new(
        name,
        format!("the gate refused the action: {detail}"),
        Some("nothing was executed; the same gate as `operator run` applies to every change".into()),
    )
}

#[tool_router]
impl Server {
    /// The subjects served, the contracts they implement and the endpoints they may reach.
    #[tool(annotations(read_only_hint = true))]
    async fn list_subjects(&self) -> Result<Json<Subjects>, CallToolResult> {
        let subjects = self
            .shared
            .subjects
            .iter()
            .map(|(name, s)| SubjectEntry {
                name: name.clone(),
                adapter: s.file.name.clone(),
                contracts: std::iter::once("subject".to_string())
                    .chain(s.subject.manifest.deployment.as_ref().map(|_| "deployment".to_string()))
                    .collect(),
                endpoints: s.policy.http.endpoints().map(|g| g.name.clone()).collect(),
            })
            .collect();
        Ok(Json(Subjects { subjects }))
    }

    /// Every store (node, member) of the subject's cluster, with state, capacity and leader count.
    #[tool(annotations(read_only_hint = true))]
    async fn get_stores(&self, Parameters(a): Parameters<SubjectArg>) -> Result<Json<Stores>, CallToolResult> {
        reply(async {
            let (served, client) = self.subject_client(&a.subject).await?;
            adapter_value(served, client.stores().await).map(|stores| Stores { stores })
        })
        .await
    }

    /// The regions (replica groups) with the most write traffic, hottest first, with their leader and peers.
    #[tool(annotations(read_only_hint = true))]
    async fn get_hot_write_regions(
        &self,
        Parameters(a): Parameters<HotRegionsArgs>,
    ) -> Result<Json<Regions>, CallToolResult> {
        reply(async {
            let (served, client) = self.subject_client(&a.subject).await?;
            let limit = a.limit.unwrap_or(10).min(HOT_REGIONS_PER_ROUND);
            adapter_value(served, client.hot_write_regions(limit).await).map(|regions| Regions { regions })
        })
        .await
    }

    /// Cluster-wide counts (stores, regions, leaders per store) and metric samples.
    #[tool(annotations(read_only_hint = true))]
    async fn get_cluster_metrics(
        &self,
        Parameters(a): Parameters<SubjectArg>,
    ) -> Result<Json<ClusterMetrics>, CallToolResult> {
        reply(async {
            let (served, client) = self.subject_client(&a.subject).await?;
            let mut m = adapter_value(served, client.metrics().await)?;
            // JSON has no NaN (Prometheus answers it routinely): such samples are left out.
            m.samples.retain(|s| s.value.is_finite());
            Ok(m)
        })
        .await
    }

    /// Runs a policy's decision on a fresh observation and returns its proposals with the gate's verdicts. Executes nothing; `apply_proposal` executes one.
    #[tool(annotations(read_only_hint = true))]
    async fn propose(&self, Parameters(a): Parameters<ProposeArgs>) -> Result<Json<Proposals>, CallToolResult> {
        reply(self.propose_inner(a)).await
    }

    /// The subject's local cluster (`operator deploy local`): each service's container, state, health and ports.
    #[tool(annotations(read_only_hint = true))]
    async fn deployment_status(&self, Parameters(a): Parameters<SubjectArg>) -> Result<Json<Services>, CallToolResult> {
        reply(async {
            let (project, driver, deployer) = self.deployment(&a.subject).await?;
            let outcome = deployer.status().await?;
            super::sandbox_args::report(&driver, &outcome.report);
            Ok(Services { project, services: outcome.value.map_err(driver_error)? })
        })
        .await
    }

    /// The latest output of the subject's local cluster's containers (capped).
    #[tool(annotations(read_only_hint = true))]
    async fn deployment_logs(&self, Parameters(a): Parameters<LogsArgs>) -> Result<Json<Logs>, CallToolResult> {
        reply(async {
            let (project, driver, deployer) = self.deployment(&a.subject).await?;
            let tail = a.tail.unwrap_or(100).min(1000);
            let outcome = deployer.logs(a.service.into_iter().collect(), Some(tail), false).await?;
            super::sandbox_args::report(&driver, &outcome.report);
            let mut stream = outcome.value.map_err(driver_error)?;
            let (mut lines, mut bytes, mut truncated) = (Vec::new(), 0usize, false);
            while let Some(batch) = deploy::next_log_lines(&mut stream, std::time::Duration::from_secs(1)).await {
                for l in batch {
                    if lines.len() >= MAX_LOG_LINES || bytes >= MAX_LOG_BYTES {
                        truncated = true;
                        break;
                    }
                    let line = cut(l.line, MAX_DETAIL);
                    bytes += line.len();
                    let stream = if l.stderr { "stderr" } else { "stdout" }.into();
                    lines.push(LogLine { service: l.service, container: l.container, stream, line });
                }
                if truncated {
                    break;
                }
            }
            Ok(Logs { project, lines, truncated })
        })
        .await
    }

    /// The latest records of the subject's audit log: rounds, proposals, verdicts, actions and outcomes.
    #[tool(annotations(read_only_hint = true))]
    async fn audit_log(&self, Parameters(a): Parameters<AuditArgs>) -> Result<Json<AuditEvents>, CallToolResult> {
        reply(async {
            let served = self.shared.served(&a.subject)?;
            let replay = Replay::read(&served.audit_path)?;
            // The latest events, newest kept first, within the count and 1 MiB of JSON.
            let last = a.last.unwrap_or(50).min(MAX_EVENTS);
            let (mut events, mut bytes) = (Vec::new(), 0usize);
            for e in replay.events.into_iter().rev().take(last) {
                bytes += serde_json::to_string(&e).map(|t| t.len()).unwrap_or(0);
                if bytes > MAX_AUDIT_BYTES {
                    break;
                }
                events.push(e);
            }
            events.reverse();
            Ok(AuditEvents { path: served.audit_path.display().to_string(), events, skipped: replay.skipped })
        })
        .await
    }

    /// Moves the leader of a region to a store holding one of its peers. Gated like `operator run` (peers, up stores, cooldown, in-flight cap, health hold), confirmed by the person unless the server runs with --allow-actions, and recorded in the audit log.
    #[tool(annotations(destructive_hint = true, read_only_hint = false))]
    async fn transfer_leader(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<TransferArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
    ) -> Result<CallToolResponse, CallToolResult> {
        let action = Action::TransferLeader { region_id: a.region_id, to_store_id: a.to_store_id };
        self.act(&ctx, state, responses, &a.subject, action, "asked through MCP".into()).await
    }

    /// Executes a proposal `propose` returned, by its id: through the gate again, with the person's confirmation unless the server runs with --allow-actions, recorded in the audit log.
    #[tool(annotations(destructive_hint = true, read_only_hint = false))]
    async fn apply_proposal(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<ApplyArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
    ) -> Result<CallToolResponse, CallToolResult> {
        let stored = {
            let map = self.shared.proposals.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&a.id).cloned()
        };
        let Some(p) = stored.filter(|p| control::now_ms().saturating_sub(p.at_ms) < PROPOSAL_TTL_MS) else {
            return Err(ToolError::new(
                "not-found",
                format!("no proposal `{}` (unknown, or older than 10 minutes)", cut(a.id, 64)),
                Some("call `propose` for fresh proposals".into()),
            )
            .into_result());
        };
        let reason = format!("proposal {}: {}", a.id, p.reason);
        let result = self.act(&ctx, state, responses, &p.subject, p.action, reason).await;
        if matches!(&result, Ok(CallToolResponse::Complete(_))) {
            self.shared.proposals.lock().unwrap_or_else(|e| e.into_inner()).remove(&a.id);
        }
        result
    }
}

impl Server {
    /// The served subject and a client for its adapter.
    async fn subject_client(&self, name: &str) -> Result<(&Served, SubjectClient<'_>), ToolError> {
        let served = self.shared.served(name)?;
        Ok((served, self.client(served).await?))
    }

    /// The subject's deployment driver, opened read-only on its project: (project, driver, it).
    async fn deployment(&self, subject: &str) -> Result<(String, String, Deployer<'_>), ToolError> {
        use operator_host::capability::docker::bollard_engine::BollardEngine;
        use operator_host::capability::docker::engine::DockerEngine;

        let served = self.shared.served(subject)?;
        let manifest = &served.subject.manifest;
        let Some(section) = &manifest.deployment else {
            return Err(ToolError::new("unsupported", format!("subject `{subject}` has no local cluster"), None));
        };
        let dir = &served.subject.dir;
        let grants =
            deploy::grants(Some(manifest), dir).map_err(|e| ToolError::new("invalid-project", e.to_string(), None))?;
        let src = ProjectSource { subject: Some(subject), ..ProjectSource::new(dir, Some(manifest), &grants) };
        let project = ComposeProject::resolve_or_labels(&src)
            .map_err(|e| ToolError::new("invalid-project", e.to_string(), None))?;
        let name = project.name.clone();
        let engine = BollardEngine::connect().map_err(|e| ToolError::new("docker", e.to_string(), None))?;
        let engine: Arc<dyn DockerEngine> = Arc::new(engine);
        engine.ping().await.map_err(|e| {
            ToolError::new("docker", e.to_string(), Some("is the Docker engine running and reachable?".into()))
        })?;
        let driver = section.driver.clone().unwrap_or_else(|| "compose".into());
        let file = self
            .shared
            .components
            .resolve_in(&driver, dir)
            .map_err(|e| ToolError::new("not-found", e.to_string(), None))?;
        let component = served
            .driver
            .get_or_try_init(|| async {
                super::sandbox_args::load(&self.shared.runtime, &file)
                    .map_err(|e| ToolError::new("invalid-component", format!("{e:#}"), None))
            })
            .await?;
        // These tools are annotated read-only: the driver's Docker capability is too.
        let deployer = Deployer::open(
            &self.shared.runtime,
            component,
            project,
            engine,
            grants,
            deploy::default_limits(),
            Default::default(),
            Access::ReadOnly,
        )
        .await
        .map_err(|e| ToolError::new("deployment", e.to_string(), None))?;
        Ok((name, component.name.clone(), deployer))
    }

    async fn propose_inner(&self, a: ProposeArgs) -> Result<Proposals, ToolError> {
        let served = self.shared.served(&a.subject)?;
        if a.policy.contains('/') || a.policy.ends_with(".wasm") {
            return Err(ToolError::new(
                "invalid-argument",
                "a policy is named, not a path",
                Some("name a built-in or installed policy, e.g. hot-write-balance".into()),
            ));
        }
        let file =
            self.shared.components.resolve(&a.policy).map_err(|e| ToolError::new("not-found", e.to_string(), None))?;
        let loaded = super::sandbox_args::load(&self.shared.runtime, &file)
            .map_err(|e| ToolError::new("invalid-component", format!("{e:#}"), None))?;
        let sandbox = operator_host::Policy { limits: served.policy.limits.clone(), ..Default::default() };
        let policy = PolicyClient::new(&self.shared.runtime, &loaded, sandbox)
            .map_err(|e| ToolError::new(e.kind(), e.to_string(), e.hint()))?;
        let client = self.client(served).await?;
        let (stores, regions) = self.observe(served, &client).await?;
        let state = Self::state(served)?;
        let now = control::now_ms();
        let observation = Observation {
            stores: stores.clone(),
            hot_write_regions: regions.clone(),
            metrics: None,
            in_flight: state
                .in_flight
                .values()
                .map(|a| (*a, state.last_action_ms.get(&a.region_id()).copied().unwrap_or(0)))
                .collect(),
            recent: vec![],
            now_ms: now,
        };
        let params: Vec<(String, String)> = a.params.into_iter().collect();
        let outcome = policy.decide(&observation, &params).await?;
        let mut proposals = outcome.value.map_err(|e| match e {
            operator_host::policy::PolicyError::InvalidParam(m) => ToolError::new("invalid-param", m, None),
            other => ToolError::new("policy-error", other.to_string(), None),
        })?;
        let dropped = proposals.len().saturating_sub(control::MAX_PROPOSALS);
        proposals.truncate(control::MAX_PROPOSALS);
        let actions: Vec<Action> = proposals.iter().map(|p| p.action).collect();
        let limits = operator_host::gate::GateLimits { max_actions_per_round: usize::MAX, ..self.shared.limits };
        let verdicts =
            gate::check(Round { stores: &stores, regions: &regions, now_ms: now }, &actions, &limits, &state);
        let mut kept = self.shared.proposals.lock().unwrap_or_else(|e| e.into_inner());
        let out = proposals
            .into_iter()
            .zip(verdicts)
            .map(|(p, v)| {
                let id = format!("p{}", self.shared.next_proposal.fetch_add(1, Ordering::Relaxed));
                let reason = cut(p.reason, MAX_REASON);
                while kept.len() >= KEPT_PROPOSALS {
                    kept.pop_first();
                }
                kept.insert(
                    id.clone(),
                    StoredProposal { subject: a.subject.clone(), action: p.action, reason: reason.clone(), at_ms: now },
                );
                let Action::TransferLeader { region_id, to_store_id } = p.action;
                let (verdict, detail) = match v {
                    Verdict::Admitted => ("admitted".to_string(), String::new()),
                    Verdict::Refused { reason, detail } => (reason.name().to_string(), cut(detail, MAX_REASON)),
                };
                ProposedAction {
                    id,
                    region_id,
                    to_store_id,
                    reason,
                    score: if p.score.is_finite() { p.score } else { 0.0 },
                    verdict,
                    detail,
                }
            })
            .collect();
        Ok(Proposals { policy: file.name, proposals: out, dropped })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.instructions = Some(
            "operator: observe distributed clusters (TiKV, etcd) through sandboxed adapters, and change them \
             through a safety gate. Read-only tools run freely; transfer_leader and apply_proposal are gated, \
             confirmed by the person and recorded in the audit log."
                .into(),
        );
        info
    }
}
