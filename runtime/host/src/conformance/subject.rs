//! The Subject suite's runner: calls an adapter case by case and checks the contract's rules,
//! against the built-in simulator (whose own state is the truth the adapter is judged by) or
//! against real endpoints (where only what needs no such truth is judged).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use url::Url;

use super::case::{Call, ClusterSpec, Fault, GrantMode, RuleId, TransferTarget};
use super::probe::{Probe, SeenRequest};
use super::{CaseResult, Cost, Finding, KnownFailures, NamedCase, Status, Suite};
use crate::capability::http::HttpGrants;
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::sandbox::{CallOutcome, CallReport, FailedCall, Policy};
use crate::subject::{
    ClusterMetrics, ClusterStore, LeaderTransfer, Region, StoreState, SubjectClient, SubjectError, SubjectInfo,
    SubjectResult,
};

/// The operations `describe` may list.
pub const CONTRACT_ACTIONS: &[&str] = &["stores", "hot-write-regions", "metrics", "transfer-leader"];

/// A region as the cluster itself knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueRegion {
    pub id: u64,
    pub peers: Vec<u64>,
    pub leader: u64,
    /// Bytes written in its last reporting interval (0: not writing).
    pub written_bytes: u64,
}

/// The cluster's own state, read behind the adapter's back (the simulator's).
pub trait Truth: Send + Sync {
    /// Every store and its state (tombstones excluded).
    fn stores(&self) -> Vec<(u64, StoreState)>;
    /// Every region.
    fn regions(&self) -> Vec<TrueRegion>;
}

/// A cluster cases run on.
pub struct Target {
    /// Endpoint URLs, by name.
    pub endpoints: Vec<(String, Url)>,
    /// The cluster's own state, when the runner can see it.
    pub truth: Option<Arc<dyn Truth>>,
}

/// Clusters by spec: a target, or why none is available.
pub type Targets = BTreeMap<ClusterSpec, Result<Target, String>>;

/// Runs a Subject suite against one adapter.
pub struct SubjectRunner<'r> {
    pub runtime: &'r Runtime,
    pub component: &'r LoadedComponent,
    /// Grants and limits of every call (endpoint URLs are pointed at each target).
    pub base: Policy,
    /// The runtime's transport.
    pub probe: Arc<Probe>,
    /// Run cases that change a real cluster.
    pub allow_writes: bool,
    pub known: KnownFailures,
}

/// What a call gave.
#[derive(Debug, Clone)]
enum Value {
    Info(SubjectInfo),
    Stores(Vec<ClusterStore>),
    Regions(Vec<Region>),
    Metrics(ClusterMetrics),
    Transfer(LeaderTransfer),
}

impl Value {
    /// A few words on a value, for findings.
    fn summary(&self) -> String {
        match self {
            Value::Info(i) => format!("describe `{}`", crate::text::escape(&i.name)),
            Value::Stores(s) => format!("{} stores", s.len()),
            Value::Regions(r) => format!("{} regions", r.len()),
            Value::Metrics(m) => format!("metrics of {} stores and {} regions", m.store_count, m.region_count),
            Value::Transfer(t) => format!("a transfer (confirmed: {})", t.confirmed),
        }
    }
}

/// One call, observed.
struct Observed {
    result: Result<Result<Value, SubjectError>, CallError>,
    report: CallReport,
    requests: Vec<SeenRequest>,
    dropped: u64,
}

/// The arguments of a transfer case.
#[derive(Debug, Clone, Copy)]
struct TransferArgs {
    region: u64,
    to: u64,
}

/// A grant of every method on every path of each endpoint: for learning what a component
/// uses, or for one that comes without a manifest.
pub fn everything(endpoints: &[(String, Url)]) -> HttpGrants {
    use crate::manifest::{EndpointGrant, METHODS, Origin, Rule};
    let map = endpoints
        .iter()
        .map(|(name, url)| {
            let rules =
                vec![Rule { methods: METHODS.iter().map(|m| m.to_string()).collect(), paths: vec!["/".into()] }];
            (
                name.clone(),
                EndpointGrant {
                    name: name.clone(),
                    url: url.clone(),
                    rules,
                    timeout: None,
                    origin: Origin::CommandLine,
                },
            )
        })
        .collect();
    HttpGrants::new(map, None)
}

fn lift<T>(
    r: Result<CallOutcome<SubjectResult<T>>, FailedCall>,
    f: impl FnOnce(T) -> Value,
) -> (Result<Result<Value, SubjectError>, CallError>, CallReport) {
    match r {
        Ok(o) => (Ok(o.value.map(f)), o.report),
        Err(e) => (Err(e.error), *e.report),
    }
}

impl SubjectRunner<'_> {
    /// The policy of a case's calls on `target`.
    fn policy(&self, grants: GrantMode, case: &super::Case, target: &Target) -> Policy {
        let mut p = self.on(target);
        if grants == GrantMode::None {
            p.http = HttpGrants::default();
        }
        p.limits = p.limits.apply(&case.limit_overrides());
        p
    }

    /// The run's grants pointed at `target`. On the simulator, only the simulator's own
    /// endpoints stay granted: an endpoint of the manifest that it does not serve would still
    /// point at a real cluster.
    fn on(&self, target: &Target) -> Policy {
        let mut p = self.base.clone();
        for (name, url) in &target.endpoints {
            if p.http.endpoints().any(|g| &g.name == name) {
                p.http.override_url(name, url.clone());
            }
        }
        if target.truth.is_some() {
            p.http.retain(|name| target.endpoints.iter().any(|(n, _)| n == name));
        }
        p
    }

    /// Calls `call` once under `policy`, with `fault` at the HTTP capability.
    async fn invoke(
        &self,
        policy: Policy,
        target: &Target,
        fault: Fault,
        call: Call,
        limit: u32,
        transfer: Option<TransferArgs>,
    ) -> Observed {
        let client = match SubjectClient::new(self.runtime, self.component, policy) {
            Ok(c) => c,
            Err(e) => {
                return Observed { result: Err(e), report: CallReport::default(), requests: Vec::new(), dropped: 0 };
            }
        };
        self.probe.begin(&target.endpoints, fault);
        let (result, report) = match call {
            Call::Describe => match client.describe().await {
                Ok(o) => (Ok(Ok(Value::Info(o.value))), o.report),
                Err(e) => (Err(e.error), *e.report),
            },
            Call::GetStores => lift(client.stores().await, Value::Stores),
            Call::GetHotWriteRegions => lift(client.hot_write_regions(limit).await, Value::Regions),
            Call::GetClusterMetrics => lift(client.metrics().await, Value::Metrics),
            Call::TransferLeader => {
                let t = transfer.unwrap_or(TransferArgs { region: 0, to: 0 });
                lift(client.transfer_leader(t.region, t.to).await, Value::Transfer)
            }
            other => (
                Err(CallError::ContractMismatch { detail: format!("`{}` is not a Subject operation", other.name()) }),
                CallReport::default(),
            ),
        };
        let (requests, dropped) = self.probe.take();
        Observed { result, report, requests, dropped }
    }

    /// Runs every case of the suite; results in case order, one per call.
    pub async fn run(&self, suite: &Suite, targets: &Targets) -> Vec<CaseResult> {
        let mut results = Vec::new();
        let mut used_regions = BTreeSet::new();
        // What the adapter says it supports (cases of other operations do not run).
        // With no grant at all: whatever describe sends goes nowhere.
        let ungranted = Policy { http: HttpGrants::default(), ..self.base.clone() };
        let actions = match SubjectClient::new(self.runtime, self.component, ungranted) {
            Ok(c) => c.describe().await.ok().map(|o| o.value.actions),
            Err(_) => None,
        };
        // Reads first, then the cases that change the cluster (their moves would show in reads).
        let mut order: Vec<&NamedCase> = suite.cases.iter().collect();
        order.sort_by_key(|c| c.case.calls.contains(&Call::TransferLeader) && c.case.is_clean());
        for named in order {
            for &call in &named.case.calls {
                let mut r = self.run_call(named, call, targets, actions.as_deref(), &mut used_regions).await;
                r.settle(&self.known);
                results.push(r);
            }
        }
        results
    }

    async fn run_call(
        &self,
        named: &NamedCase,
        call: Call,
        targets: &Targets,
        actions: Option<&[String]>,
        used_regions: &mut BTreeSet<u64>,
    ) -> CaseResult {
        let case = &named.case;
        let target = match targets.get(&case.cluster) {
            Some(Ok(t)) => t,
            Some(Err(why)) => return CaseResult::not_run(named, call, why.clone()),
            None => return CaseResult::not_run(named, call, "no cluster was started for it".into()),
        };
        if case.needs_simulator && target.truth.is_none() {
            return CaseResult::not_run(
                named,
                call,
                "judged against the simulator's own state; runs without --endpoint".into(),
            );
        }
        // A case that calls transfer-leader changes the cluster, whatever its file says.
        let writes = case.writes || case.calls.contains(&Call::TransferLeader);
        if writes && target.truth.is_none() && !self.allow_writes {
            return CaseResult::not_run(
                named,
                call,
                "changes the cluster; pass --allow-writes to run it against real endpoints".into(),
            );
        }
        let action = match call {
            Call::GetStores => Some("stores"),
            Call::GetHotWriteRegions => Some("hot-write-regions"),
            Call::GetClusterMetrics => Some("metrics"),
            Call::TransferLeader => Some("transfer-leader"),
            _ => None,
        };
        // An operation describe does not list still runs (an adapter cannot dodge the suite
        // by listing nothing); only if it then answers `unsupported` is the case not run.
        let unlisted = match (action, actions) {
            (Some(action), Some(actions)) => !actions.iter().any(|a| a == action),
            _ => false,
        };

        let transfer = if call == Call::TransferLeader {
            match self.pick_transfer(case.target, target, used_regions).await {
                Ok(t) => {
                    // A region a clean transfer moved is not picked again (its operator may still run).
                    if case.is_clean() && case.target == TransferTarget::Follower {
                        used_regions.insert(t.region);
                    }
                    Some(t)
                }
                Err(why) => return CaseResult::not_run(named, call, why),
            }
        } else {
            None
        };

        let policy = self.policy(case.grants, case, target);
        let mut observed = Vec::new();
        for _ in 0..case.repeat {
            observed.push(self.invoke(policy.clone(), target, case.fault, call, case.limit, transfer).await);
        }
        let declined = |o: &Observed| {
            matches!(o.result, Ok(Err(SubjectError::Unsupported(_))))
                && o.requests.is_empty()
                && o.report.denials.is_empty()
        };
        if unlisted && observed.iter().all(declined) {
            return CaseResult::not_run(
                named,
                call,
                format!("{} {} (describe does not list it; it answers `unsupported`)", super::UNSUPPORTED, call.name()),
            );
        }
        // The cluster's state right after the call, and what `metrics-store-count` compares with.
        let truth = target.truth.as_ref().map(|t| (t.stores(), t.regions()));
        let stores_after = if case.all_rules().contains(&RuleId::MetricsStoreCount) {
            let o = self
                .invoke(self.policy(GrantMode::Manifest, case, target), target, Fault::None, Call::GetStores, 0, None)
                .await;
            match o.result {
                Ok(Ok(Value::Stores(s))) => Some(s),
                _ => None,
            }
        } else {
            None
        };

        let check = Check {
            named,
            call,
            observed: &observed,
            truth: truth.as_ref(),
            transfer,
            stores_after: stores_after.as_deref(),
        };
        let findings: Vec<Finding> = case.all_rules().into_iter().filter_map(|rule| check.rule(rule)).collect();
        let last = observed.last();
        CaseResult {
            case: named.name.clone(),
            call: call.name().into(),
            about: case.about.clone(),
            status: Status::Pass,
            findings,
            cost: last.map(|o| Cost::of(&o.report, o.requests.len() as u64 + o.dropped)),
            requests: observed.iter().flat_map(|o| o.requests.iter().cloned()).collect(),
            requests_dropped: observed.iter().map(|o| o.dropped).sum(),
            denials: observed.iter().flat_map(|o| o.report.denials.iter().cloned()).collect(),
            clean: case.is_clean(),
        }
    }

    /// A region and store for a transfer case: from the cluster's own state when the runner
    /// sees it, else from the adapter's own reads.
    async fn pick_transfer(
        &self,
        target_kind: TransferTarget,
        target: &Target,
        used: &BTreeSet<u64>,
    ) -> Result<TransferArgs, String> {
        let (stores, regions): (Vec<(u64, StoreState)>, Vec<TrueRegion>) = match &target.truth {
            Some(t) => (t.stores(), t.regions()),
            None => {
                let policy = self.on(target);
                let read = |o: Observed| o.result.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
                let stores =
                    match read(self.invoke(policy.clone(), target, Fault::None, Call::GetStores, 0, None).await) {
                        Ok(Value::Stores(s)) => s.into_iter().map(|s| (s.id, s.state)).collect(),
                        Ok(_) => Vec::new(),
                        Err(e) => return Err(format!("cannot pick a region: the adapter's get-stores failed: {e}")),
                    };
                let regions =
                    match read(self.invoke(policy, target, Fault::None, Call::GetHotWriteRegions, 64, None).await) {
                        Ok(Value::Regions(r)) => r
                            .into_iter()
                            .filter_map(|r| {
                                Some(TrueRegion {
                                    id: r.id,
                                    leader: r.leader_store_id?,
                                    peers: r.peer_store_ids,
                                    written_bytes: r.written_bytes,
                                })
                            })
                            .collect(),
                        Ok(_) => Vec::new(),
                        Err(e) => {
                            return Err(format!(
                                "cannot pick a region: the adapter's get-hot-write-regions failed: {e}"
                            ));
                        }
                    };
                (stores, regions)
            }
        };
        let up: BTreeSet<u64> = stores.iter().filter(|(_, s)| *s == StoreState::Up).map(|(id, _)| *id).collect();
        for r in regions.iter().filter(|r| !used.contains(&r.id) && up.contains(&r.leader)) {
            let to = match target_kind {
                TransferTarget::Follower => r.peers.iter().find(|p| **p != r.leader && up.contains(p)).copied(),
                TransferTarget::NonPeer => up.iter().find(|s| !r.peers.contains(s)).copied(),
            };
            if let Some(to) = to {
                return Ok(TransferArgs { region: r.id, to });
            }
        }
        Err(match target_kind {
            TransferTarget::Follower => "no region has a leader and a follower on up stores".into(),
            TransferTarget::NonPeer => {
                "every up store holds a peer of every region (one raft group, or as many stores as replicas)".into()
            }
        })
    }
}

/// The cluster's stores and regions, read right after a call.
type Snapshot = (Vec<(u64, StoreState)>, Vec<TrueRegion>);

/// What the rules of one call look at.
struct Check<'a> {
    named: &'a NamedCase,
    call: Call,
    observed: &'a [Observed],
    truth: Option<&'a Snapshot>,
    transfer: Option<TransferArgs>,
    stores_after: Option<&'a [ClusterStore]>,
}

fn pass(rule: RuleId, detail: impl Into<String>) -> Option<Finding> {
    Some(Finding { rule, passed: true, detail: detail.into() })
}

fn fail(rule: RuleId, detail: impl Into<String>) -> Option<Finding> {
    Some(Finding { rule, passed: false, detail: detail.into() })
}

use super::subject_text as shown;

/// True when a case accepts a sandbox error: its kind is listed, and it is not the guest's own
/// deadline (computing too long is never the answer to a failing cluster).
fn accepted(e: &CallError, errors: &[String]) -> bool {
    let guest_deadline = matches!(e, CallError::DeadlineExceeded { budget: crate::error::Budget::Guest, .. });
    !guest_deadline && errors.iter().any(|k| k == e.kind())
}

/// The text of a cluster's error body: a JSON string, an object's message, or the text.
fn cluster_message(body: &str) -> String {
    let t = body.trim();
    if t.starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(t)
    {
        return s;
    }
    if t.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
    {
        for key in ["msg", "message", "error"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                return s.to_string();
            }
        }
    }
    t.to_string()
}

impl Check<'_> {
    fn values(&self) -> impl Iterator<Item = &Value> {
        self.observed.iter().filter_map(|o| match &o.result {
            Ok(Ok(v)) => Some(v),
            _ => None,
        })
    }

    fn last_value(&self) -> Option<&Value> {
        match &self.observed.last()?.result {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }

    fn rule(&self, rule: RuleId) -> Option<Finding> {
        let case = &self.named.case;
        match rule {
            RuleId::NoTrap => {
                for o in self.observed {
                    if let Err(e @ CallError::Trap { .. }) = &o.result {
                        return fail(rule, super::error_line(e));
                    }
                }
                pass(rule, "no trap")
            }
            RuleId::WithinLimits => {
                for o in self.observed {
                    match &o.result {
                        Err(CallError::Trap { .. }) => {}
                        Err(e) if !accepted(e, &case.errors) => return fail(rule, super::error_line(e)),
                        _ => {}
                    }
                }
                pass(rule, "within its limits")
            }
            RuleId::FastEnough => {
                if let Some(o) = self.observed.iter().find(|o| o.dropped > 0) {
                    return fail(
                        rule,
                        format!(
                            "{} sent {} requests in one call; this suite allows {}",
                            self.call.name(),
                            o.requests.len() as u64 + o.dropped,
                            super::probe::MAX_SEEN
                        ),
                    );
                }
                let limit = case.guest_time_limit();
                let slowest = self.observed.iter().map(|o| o.report.guest_time).max().unwrap_or_default();
                if slowest > limit {
                    fail(
                        rule,
                        format!(
                            "{} took {:.2?} of guest time; this suite allows {:.2?} per call on its small cluster",
                            self.call.name(),
                            slowest,
                            limit
                        ),
                    )
                } else {
                    pass(rule, format!("{slowest:.2?} of guest time"))
                }
            }
            RuleId::WithinGrants => {
                // With no grant every request is refused on purpose; in describe any request
                // at all breaks `describe-pure`.
                if case.grants == GrantMode::None || self.call == Call::Describe {
                    return None;
                }
                match self.observed.iter().flat_map(|o| o.report.denials.iter()).next() {
                    Some(d) => fail(rule, format!("a request was refused: {}", shown(&d.reason))),
                    None => pass(rule, "every request was granted"),
                }
            }
            RuleId::Answers => {
                for o in self.observed {
                    if let Ok(Err(e)) = &o.result {
                        return fail(rule, format!("{} answered {}", self.call.name(), shown(&e.to_string())));
                    }
                }
                self.last_value().and_then(|v| pass(rule, v.summary()))
            }
            RuleId::ErrorsNamed => {
                let what = match (case.fault, case.grants) {
                    (Fault::None, GrantMode::None) => "every request was denied".to_string(),
                    (Fault::None, _) => "every answer broke the case's limits ([limits])".to_string(),
                    (f, _) => format!("every request met `{}`", f.name()),
                };
                let o = self.observed.last()?;
                match &o.result {
                    Ok(Ok(v)) => fail(rule, format!("returned a success ({}) although {what}", v.summary())),
                    Ok(Err(e)) if case.errors.iter().any(|k| k == e.kind()) => {
                        pass(rule, format!("`{}` when {what}", e.kind()))
                    }
                    Ok(Err(e)) => fail(
                        rule,
                        format!(
                            "gave `{}` when {what}; expected {}: {}",
                            e.kind(),
                            case.errors.join(" or "),
                            shown(&e.to_string())
                        ),
                    ),
                    Err(e) if accepted(e, &case.errors) => {
                        pass(rule, format!("the sandbox's `{}` when {what}", e.kind()))
                    }
                    Err(_) => None,
                }
            }
            RuleId::DescribePure => {
                let sent: Vec<&SeenRequest> = self.observed.iter().flat_map(|o| o.requests.iter()).collect();
                let denied = self.observed.iter().flat_map(|o| o.report.denials.iter()).next();
                match (sent.first(), denied) {
                    (Some(r), _) => {
                        fail(rule, format!("describe sent {} {} {}", r.method, shown(&r.endpoint), shown(&r.path)))
                    }
                    (None, Some(d)) => fail(rule, format!("describe tried a request: {}", shown(&d.reason))),
                    (None, None) => pass(rule, "no request"),
                }
            }
            RuleId::DescribeActions => {
                let Some(Value::Info(info)) = self.last_value() else { return None };
                if info.name.trim().is_empty() {
                    return fail(rule, "the adapter's name is empty");
                }
                if let Some(a) = info.actions.iter().find(|a| !CONTRACT_ACTIONS.contains(&a.as_str())) {
                    return fail(
                        rule,
                        format!("`{}` is not a Subject operation ({})", shown(a), CONTRACT_ACTIONS.join(", ")),
                    );
                }
                let unique: BTreeSet<&String> = info.actions.iter().collect();
                if unique.len() != info.actions.len() {
                    return fail(rule, "an action is listed twice");
                }
                pass(rule, format!("actions: {}", shown(&info.actions.join(", "))))
            }
            RuleId::StoresUnique => {
                let Some(Value::Stores(stores)) = self.last_value() else { return None };
                let mut seen = BTreeSet::new();
                match stores.iter().find(|s| !seen.insert(s.id)) {
                    Some(s) => fail(rule, format!("store {} is listed twice", s.id)),
                    None => pass(rule, format!("{} distinct ids", stores.len())),
                }
            }
            RuleId::StoresNoTombstones => {
                let Some(Value::Stores(stores)) = self.last_value() else { return None };
                match stores.iter().find(|s| s.state == StoreState::Tombstone) {
                    Some(s) => fail(rule, format!("store {} is a tombstone; the contract excludes them", s.id)),
                    None => pass(rule, "no tombstone"),
                }
            }
            RuleId::StoresMatchCluster => {
                let (truth, _) = self.truth?;
                let Some(Value::Stores(stores)) = self.last_value() else { return None };
                let want: BTreeMap<u64, StoreState> = truth.iter().copied().collect();
                let got: BTreeMap<u64, StoreState> = stores.iter().map(|s| (s.id, s.state)).collect();
                if let Some(id) = want.keys().find(|id| !got.contains_key(id)) {
                    return fail(rule, format!("store {id} is missing"));
                }
                if let Some(id) = got.keys().find(|id| !want.contains_key(id)) {
                    return fail(rule, format!("store {id} is not in the cluster"));
                }
                if let Some((id, s)) = got.iter().find(|(id, s)| want.get(id) != Some(s)) {
                    return fail(rule, format!("store {id} is reported {s}; the cluster says {}", want[id]));
                }
                pass(rule, format!("the cluster's {} stores and their states", want.len()))
            }
            RuleId::HotRegionsSorted => {
                let Some(Value::Regions(regions)) = self.last_value() else { return None };
                // Rates compare with rates, and amounts written in the last interval with
                // amounts: a region without a rate is not compared with one that has one.
                let flow = |r: &Region| match r.write_bytes_per_second {
                    Some(rate) => (true, rate, "B/s"),
                    None => (false, r.written_bytes as f64, "B written"),
                };
                let mut last: [Option<(&Region, f64)>; 2] = [None, None];
                for r in regions {
                    let (rated, v, unit) = flow(r);
                    let slot = &mut last[usize::from(rated)];
                    if let Some((prev, pv)) = *slot
                        && v > pv * (1.0 + 1e-9)
                    {
                        return fail(
                            rule,
                            format!(
                                "region {} ({v:.0} {unit}) comes after region {} ({pv:.0} {unit}): not highest first",
                                r.id, prev.id
                            ),
                        );
                    }
                    *slot = Some((r, v));
                }
                pass(rule, "highest write flow first")
            }
            RuleId::HotRegionsLimit => {
                let Some(Value::Regions(regions)) = self.last_value() else { return None };
                if regions.len() > case.limit as usize {
                    fail(rule, format!("{} regions for limit {}", regions.len(), case.limit))
                } else {
                    pass(rule, format!("{} regions for limit {}", regions.len(), case.limit))
                }
            }
            RuleId::HotRegionsLeaderAPeer => {
                let Some(Value::Regions(regions)) = self.last_value() else { return None };
                for r in regions {
                    if r.peer_store_ids.is_empty() {
                        return fail(rule, format!("region {} has no peer", r.id));
                    }
                    let unique: BTreeSet<&u64> = r.peer_store_ids.iter().collect();
                    if unique.len() != r.peer_store_ids.len() {
                        return fail(rule, format!("region {} lists a store twice among its peers", r.id));
                    }
                    if let Some(l) = r.leader_store_id
                        && !r.peer_store_ids.contains(&l)
                    {
                        return fail(
                            rule,
                            format!("region {}'s leader {l} is not among its peers {:?}", r.id, r.peer_store_ids),
                        );
                    }
                }
                pass(rule, "every leader is a peer")
            }
            RuleId::HotRegionsMatchCluster => {
                let (_, truth) = self.truth?;
                let Some(Value::Regions(regions)) = self.last_value() else { return None };
                let by_id: BTreeMap<u64, &TrueRegion> = truth.iter().map(|r| (r.id, r)).collect();
                for r in regions {
                    let Some(t) = by_id.get(&r.id) else {
                        return fail(rule, format!("region {} is not in the cluster", r.id));
                    };
                    let (a, b): (BTreeSet<u64>, BTreeSet<u64>) =
                        (r.peer_store_ids.iter().copied().collect(), t.peers.iter().copied().collect());
                    if a != b {
                        return fail(rule, format!("region {}'s peers are {:?}; the cluster says {:?}", r.id, a, b));
                    }
                    if let Some(l) = r.leader_store_id
                        && l != t.leader
                    {
                        return fail(rule, format!("region {}'s leader is {l}; the cluster says {}", r.id, t.leader));
                    }
                }
                // As many as asked for, while the cluster has that many regions writing.
                let writing = truth.iter().filter(|r| r.written_bytes > 0).count();
                let want = writing.min(case.limit as usize);
                if regions.len() < want {
                    return fail(
                        rule,
                        format!(
                            "{} regions for limit {}; the cluster has {writing} regions writing",
                            regions.len(),
                            case.limit
                        ),
                    );
                }
                pass(rule, format!("{} regions as the cluster has them", regions.len()))
            }
            RuleId::IdsExact => {
                let (stores, regions) = self.truth?;
                let store_ids: BTreeSet<u64> = stores.iter().map(|(id, _)| *id).collect();
                let region_ids: BTreeSet<u64> = regions.iter().map(|r| r.id).collect();
                let bad_store = |id: u64| {
                    (!store_ids.contains(&id)).then(|| {
                        format!(
                            "store id {id} is not the cluster's (its ids start at {})",
                            store_ids.first().copied().unwrap_or(0)
                        )
                    })
                };
                let found = self.values().find_map(|v| match v {
                    Value::Stores(s) => s.iter().find_map(|s| bad_store(s.id)),
                    Value::Regions(rs) => rs.iter().find_map(|r| {
                        if !region_ids.contains(&r.id) {
                            return Some(format!("region id {} is not the cluster's", r.id));
                        }
                        r.leader_store_id.into_iter().chain(r.peer_store_ids.iter().copied()).find_map(bad_store)
                    }),
                    Value::Metrics(m) => m.leaders_per_store.iter().find_map(|c| bad_store(c.store_id)),
                    Value::Transfer(t) => bad_store(t.to_store_id),
                    Value::Info(_) => None,
                });
                match found {
                    Some(why) => fail(rule, format!("{why}: an id above 2^53 went through floating point")),
                    None => pass(rule, "every id is exact"),
                }
            }
            RuleId::MetricsStoreCount => {
                let Some(Value::Metrics(m)) = self.last_value() else { return None };
                let Some(stores) = self.stores_after else {
                    return fail(rule, "get-stores failed right after, so the count cannot be compared");
                };
                if m.store_count != stores.len() as u64 {
                    return fail(rule, format!("store_count is {}; get-stores lists {}", m.store_count, stores.len()));
                }
                let ids: BTreeSet<u64> = stores.iter().map(|s| s.id).collect();
                if let Some(c) = m.leaders_per_store.iter().find(|c| !ids.contains(&c.store_id)) {
                    return fail(
                        rule,
                        format!("leaders_per_store names store {}, which get-stores does not list", c.store_id),
                    );
                }
                pass(rule, format!("{} stores", m.store_count))
            }
            RuleId::TransferRejected => {
                let t = self.transfer?;
                let o = self.observed.last()?;
                let messages: Vec<String> = o
                    .requests
                    .iter()
                    .filter_map(|r| r.error_body.as_deref())
                    .map(cluster_message)
                    .filter(|m| !m.is_empty())
                    .collect();
                match &o.result {
                    Ok(Err(SubjectError::Rejected(msg))) => {
                        if messages.is_empty() {
                            fail(
                                rule,
                                format!(
                                    "`rejected` ({}) although the cluster refused nothing it was asked",
                                    shown(msg)
                                ),
                            )
                        } else if messages.iter().any(|m| msg.contains(m.as_str())) {
                            pass(rule, format!("rejected: {}", shown(msg)))
                        } else {
                            fail(
                                rule,
                                format!(
                                    "`rejected` with `{}`, not the cluster's own message `{}`",
                                    shown(msg),
                                    shown(&messages[0])
                                ),
                            )
                        }
                    }
                    Ok(Err(e)) => fail(
                        rule,
                        format!(
                            "moving region {}'s leader to store {} (no peer there) gave `{}`, not `rejected`: {}",
                            t.region,
                            t.to,
                            e.kind(),
                            shown(&e.to_string())
                        ),
                    ),
                    Ok(Ok(v)) => fail(
                        rule,
                        format!(
                            "moving region {}'s leader to store {} (no peer there) returned {}",
                            t.region,
                            t.to,
                            v.summary()
                        ),
                    ),
                    Err(_) => None,
                }
            }
            RuleId::TransferTruthful => {
                let t = self.transfer?;
                let Some(Value::Transfer(got)) = self.last_value() else { return None };
                if got.region_id != t.region || got.to_store_id != t.to {
                    return fail(
                        rule,
                        format!(
                            "asked region {} to store {}; the answer says region {} to store {}",
                            t.region, t.to, got.region_id, got.to_store_id
                        ),
                    );
                }
                let (_, regions) = self.truth?;
                let leader = regions.iter().find(|r| r.id == t.region).map(|r| r.leader);
                match (got.confirmed, leader) {
                    (true, Some(l)) if l != t.to => fail(
                        rule,
                        format!(
                            "confirmed after {} ms, but the cluster's leader of region {} is still store {l}",
                            got.waited_ms, t.region
                        ),
                    ),
                    (true, _) => {
                        pass(rule, format!("confirmed after {} ms, and the leader is on store {}", got.waited_ms, t.to))
                    }
                    // No claim is fine only after asking the cluster for the move.
                    (false, _) => {
                        let asked = self
                            .observed
                            .iter()
                            .flat_map(|o| o.requests.iter())
                            .any(|r| r.method != "GET" && r.method != "HEAD");
                        if asked {
                            pass(rule, format!("not confirmed after {} ms (no claim made)", got.waited_ms))
                        } else {
                            fail(rule, "answered a transfer without asking the cluster for it (no request but reads)")
                        }
                    }
                }
            }
            RuleId::ReadsConsistent => {
                let stores: Vec<Vec<(u64, String)>> = self
                    .values()
                    .filter_map(|v| match v {
                        Value::Stores(s) => Some(s.iter().map(|s| (s.id, s.address.clone())).collect()),
                        _ => None,
                    })
                    .collect();
                if stores.len() < 2 {
                    return None;
                }
                match stores.windows(2).find(|w| w[0] != w[1]) {
                    Some(_) => fail(rule, "two reads in a row list different stores or addresses"),
                    None => pass(rule, format!("{} reads agree", stores.len())),
                }
            }
            // Other contracts' rules.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clusters_message_is_read_from_json_strings_objects_and_text() {
        assert_eq!(cluster_message("\"region has no voter in store 7\"\n"), "region has no voter in store 7");
        assert_eq!(cluster_message(r#"{"code":"input","msg":"invalid store id"}"#), "invalid store id");
        assert_eq!(cluster_message("404 page not found\n"), "404 page not found");
    }
}
