//! The DeploymentTarget suite's runner: a driver deploys a real project on the Docker engine
//! under a name of the runner's own, case after case in name order (`1-up`, `2-up-again`, ...,
//! `7-down-again`), and the engine itself judges what the driver says and did: the containers
//! it lists, the events it saw during a call, what is left after `down`.
//!
//! Like Terraform's acceptance tests (apply, then plan again: a non-empty plan fails), a second
//! `up` must change nothing. Whatever the cases did, the project is taken down at the end —
//! through the driver, then directly at the engine for anything the driver left — so a failing
//! driver leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use super::case::{Call, RuleId};
use super::{CaseResult, Cost, Finding, KnownFailures, NamedCase, Status, Suite};
use crate::capability::docker::DockerGrants;
use crate::capability::docker::engine::{ContainerView, DockerEngine};
use crate::capability::docker::scope::labels;
use crate::capability::progress::ProgressHandle;
use crate::deploy::{self, Access, ComposeProject, DeployError, Deployer, ServiceStatus};
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::limits::Limits;
use crate::sandbox::{CallReport, FailedCall};

/// Engine events that change a container (health probes' `exec_*` do not).
const CHANGES: &[&str] =
    &["create", "start", "restart", "stop", "die", "kill", "destroy", "pause", "unpause", "rename", "update"];
/// How long the runner listens for a call's last events after it returned.
const QUIET: Duration = Duration::from_millis(500);
/// Most log lines read from a `logs` stream.
const MAX_LOG_LINES: usize = 10_000;

/// Runs a DeploymentTarget suite against one driver on one project.
pub struct DeploymentRunner<'r> {
    pub runtime: &'r Runtime,
    pub component: &'r LoadedComponent,
    /// The project, under a name of the runner's own (not the user's deployment).
    pub project: ComposeProject,
    pub engine: Arc<dyn DockerEngine>,
    pub grants: DockerGrants,
    pub limits: Limits,
    /// `up --wait`'s timeout.
    pub wait_timeout: Duration,
    pub known: KnownFailures,
}

/// What one call gave.
enum Answer {
    Statuses(Vec<ServiceStatus>),
    Done,
    Lines { lines: usize, ended: bool },
}

/// What the engine has of the project.
#[derive(Debug, Default)]
struct Leftovers {
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Leftovers {
    fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (kind, list) in [("containers", &self.containers), ("networks", &self.networks), ("volumes", &self.volumes)]
        {
            if !list.is_empty() {
                parts.push(format!("{kind} {}", list.join(", ")));
            }
        }
        parts.join("; ")
    }
}

impl DeploymentRunner<'_> {
    fn label(&self) -> Vec<String> {
        vec![format!("{}={}", labels::PROJECT, self.project.name)]
    }

    async fn containers(&self) -> Vec<ContainerView> {
        self.engine.list_containers(&self.label()).await.unwrap_or_default()
    }

    async fn leftovers(&self) -> Leftovers {
        let label = self.label();
        Leftovers {
            containers: self.containers().await.into_iter().map(|c| c.name).collect(),
            networks: self.engine.list_networks(&label).await.unwrap_or_default().into_iter().map(|n| n.name).collect(),
            volumes: self.engine.list_volumes(&label).await.unwrap_or_default().into_iter().map(|v| v.name).collect(),
        }
    }

    async fn open(&self) -> Result<Deployer<'_>, String> {
        Deployer::open(
            self.runtime,
            self.component,
            self.project.clone(),
            self.engine.clone(),
            self.grants.clone(),
            self.limits.clone(),
            ProgressHandle::default(),
            Access::ReadWrite,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Runs every case in name order on the one project, then takes it down whatever happened.
    /// Returns the results and what had to be removed at the engine because the driver left it.
    pub async fn run(&self, suite: &Suite) -> (Vec<CaseResult>, Vec<String>) {
        let mut results = Vec::new();
        for named in &suite.cases {
            for &call in &named.case.calls {
                let mut r = self.run_call(named, call).await;
                r.settle(&self.known);
                results.push(r);
            }
        }
        (results, self.clean_up().await)
    }

    /// `down` through the driver, then whatever is left removed at the engine.
    pub async fn clean_up(&self) -> Vec<String> {
        if let Ok(d) = self.open().await {
            let _ = d.down(true).await;
        }
        let left = self.leftovers().await;
        let mut removed = Vec::new();
        for c in &left.containers {
            let _ = self.engine.remove_container(c, true).await;
            removed.push(format!("container {c}"));
        }
        for n in &left.networks {
            let _ = self.engine.remove_network(n).await;
            removed.push(format!("network {n}"));
        }
        for v in &left.volumes {
            let _ = self.engine.remove_volume(v).await;
            removed.push(format!("volume {v}"));
        }
        removed
    }

    async fn run_call(&self, named: &NamedCase, call: Call) -> CaseResult {
        let case = &named.case;
        let before = self.containers().await;

        // The engine's events during the call, for the project's containers.
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut events = self.engine.events(&self.label());
        let sink = seen.clone();
        let listener = tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push((e.container, e.action));
            }
        });
        tokio::task::yield_now().await;

        let (result, report): (Result<Result<Answer, DeployError>, CallError>, CallReport) = match self.open().await {
            Err(why) => {
                listener.abort();
                return CaseResult::not_run(named, call, format!("the project could not be opened: {why}"));
            }
            Ok(d) => {
                let lift = |r: Result<crate::sandbox::CallOutcome<Result<Answer, DeployError>>, FailedCall>| match r {
                    Ok(o) => (Ok(o.value), o.report),
                    Err(e) => (Err(e.error), *e.report),
                };
                match call {
                    Call::Up => lift(d.up(true, Some(self.wait_timeout)).await.map(|o| map(o, Answer::Statuses))),
                    Call::Status => lift(d.status().await.map(|o| map(o, Answer::Statuses))),
                    Call::Restart => lift(d.restart(Vec::new()).await.map(|o| map(o, |()| Answer::Done))),
                    Call::Down => lift(d.down(true).await.map(|o| map(o, |()| Answer::Done))),
                    Call::Logs => match d.logs(Vec::new(), Some(20), false).await {
                        Ok(o) => {
                            let value = match o.value {
                                Ok(mut stream) => {
                                    let mut lines = 0;
                                    let mut ended = false;
                                    while lines < MAX_LOG_LINES {
                                        match deploy::next_log_lines(&mut stream, Duration::from_secs(5)).await {
                                            Some(batch) => lines += batch.len(),
                                            None => {
                                                ended = true;
                                                break;
                                            }
                                        }
                                    }
                                    Ok(Answer::Lines { lines, ended })
                                }
                                Err(e) => Err(e),
                            };
                            (Ok(value), o.report)
                        }
                        Err(e) => (Err(e.error), *e.report),
                    },
                    other => (
                        Err(CallError::ContractMismatch {
                            detail: format!("`{}` is not a DeploymentTarget operation", other.name()),
                        }),
                        CallReport::default(),
                    ),
                }
            }
        };
        tokio::time::sleep(QUIET).await;
        listener.abort();
        let events: Vec<(String, String)> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, a)| CHANGES.contains(&a.split(':').next().unwrap_or(a)))
            .cloned()
            .collect();
        let after = self.containers().await;
        let left = if call == Call::Down { Some(self.leftovers().await) } else { None };

        let mut findings = Vec::new();
        for rule in case.all_rules() {
            if let Some(f) = self.rule(rule, &result, &before, &after, &events, left.as_ref()) {
                findings.push(f);
            }
        }
        CaseResult {
            case: named.name.clone(),
            call: call.name().into(),
            about: case.about.clone(),
            status: Status::Pass,
            findings,
            cost: Some(Cost::of(&report, 0)),
            requests: Vec::new(),
            requests_dropped: 0,
            denials: report.denials.clone(),
            clean: case.is_clean(),
        }
    }

    fn rule(
        &self,
        rule: RuleId,
        result: &Result<Result<Answer, DeployError>, CallError>,
        before: &[ContainerView],
        after: &[ContainerView],
        events: &[(String, String)],
        left: Option<&Leftovers>,
    ) -> Option<Finding> {
        let pass = |detail: String| Some(Finding { rule, passed: true, detail });
        let fail = |detail: String| Some(Finding { rule, passed: false, detail });
        let ids = |v: &[ContainerView]| v.iter().map(|c| c.id.clone()).collect::<BTreeSet<_>>();
        let not_running: Vec<String> = after
            .iter()
            .filter(|c| c.state != "running" || c.health.as_deref().is_some_and(|h| h != "healthy"))
            .map(|c| {
                format!("{} ({}{})", c.name, c.state, c.health.as_deref().map(|h| format!(", {h}")).unwrap_or_default())
            })
            .collect();
        match rule {
            RuleId::NoTrap => match result {
                Err(e @ CallError::Trap { .. }) => fail(super::error_line(e)),
                _ => pass("no trap".into()),
            },
            RuleId::WithinLimits => match result {
                Err(CallError::Trap { .. }) | Ok(_) => pass("within its limits".into()),
                Err(e) => fail(super::error_line(e)),
            },
            RuleId::Answers => match result {
                Ok(Ok(_)) => pass("answered".into()),
                Ok(Err(e)) => fail(super::subject_text(&e.to_string())),
                Err(_) => None,
            },
            RuleId::UpRunning => {
                let Ok(Ok(Answer::Statuses(statuses))) = result else { return None };
                if after.is_empty() {
                    return fail("the engine has no container of the project after `up`".into());
                }
                if !not_running.is_empty() {
                    return fail(format!("after `up --wait`, not running or not healthy: {}", not_running.join(", ")));
                }
                let listed: BTreeSet<&str> = statuses.iter().map(|s| s.container.as_str()).collect();
                match after.iter().find(|c| !listed.contains(c.name.as_str())) {
                    Some(c) => fail(format!("`up` does not report container {}, which runs", c.name)),
                    None => pass(format!("{} containers running", after.len())),
                }
            }
            RuleId::IdempotentUp => {
                let Ok(Ok(_)) = result else { return None };
                if before.is_empty() {
                    return fail("nothing was up before this `up` to compare with".into());
                }
                if ids(before) != ids(after) {
                    let gone: Vec<&str> =
                        before.iter().filter(|c| !ids(after).contains(&c.id)).map(|c| c.name.as_str()).collect();
                    return fail(format!("a second `up` replaced containers: {}", gone.join(", ")));
                }
                match events.first() {
                    Some((c, a)) => fail(format!(
                        "a second `up` changed container {c}: `{a}` (and {} more events)",
                        events.len() - 1
                    )),
                    None => pass(format!("the same {} containers, untouched", after.len())),
                }
            }
            RuleId::StatusMatchesEngine => {
                let Ok(Ok(Answer::Statuses(statuses))) = result else { return None };
                let said: BTreeMap<&str, &str> =
                    statuses.iter().map(|s| (s.container.as_str(), s.state.as_str())).collect();
                let engine: BTreeMap<&str, &str> = after.iter().map(|c| (c.name.as_str(), c.state.as_str())).collect();
                if said == engine {
                    pass(format!("{} containers as the engine has them", said.len()))
                } else {
                    fail(super::subject_text(&format!("`status` says {said:?}; the engine has {engine:?}")))
                }
            }
            RuleId::LogsEnd => match result {
                Ok(Ok(Answer::Lines { lines, ended: true })) => pass(format!("{lines} lines, then the end")),
                Ok(Ok(Answer::Lines { lines, ended: false })) => {
                    fail(format!("without --follow the stream did not end ({lines} lines read)"))
                }
                _ => None,
            },
            RuleId::RestartRestarts => {
                let Ok(Ok(_)) = result else { return None };
                if ids(before) != ids(after) {
                    return fail("`restart` replaced containers instead of restarting them".into());
                }
                // Like `docker compose restart`, a restart need not wait for health.
                let stopped: Vec<&str> =
                    after.iter().filter(|c| c.state != "running").map(|c| c.name.as_str()).collect();
                if !stopped.is_empty() {
                    return fail(format!("after `restart`, not running: {}", stopped.join(", ")));
                }
                let restarted: BTreeSet<&str> =
                    events.iter().filter(|(_, a)| a == "restart" || a == "start").map(|(c, _)| c.as_str()).collect();
                match after.iter().find(|c| !restarted.contains(c.name.as_str())) {
                    Some(c) => fail(format!("container {} was not restarted", c.name)),
                    None => pass(format!("{} containers restarted in place", after.len())),
                }
            }
            RuleId::DownLeavesNothing => {
                let Ok(Ok(_)) = result else { return None };
                let left = left?;
                if left.is_empty() {
                    pass("no container, network or volume of the project is left".into())
                } else {
                    fail(format!("left behind: {}", left.describe()))
                }
            }
            _ => None,
        }
    }
}

fn map<T, U>(
    o: crate::sandbox::CallOutcome<Result<T, DeployError>>,
    f: impl FnOnce(T) -> U,
) -> crate::sandbox::CallOutcome<Result<U, DeployError>> {
    crate::sandbox::CallOutcome { value: o.value.map(f), report: o.report }
}
