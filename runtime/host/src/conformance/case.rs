//! Cases as data: one TOML file per case, merged over its folder's `defaults.toml`.
//!
//! A case names what to call (`call` or `calls`), on which cluster (`[cluster]`), with which
//! fault at the HTTP capability (`fault`), grants (`grants`) and limits (`[limits]`), what it
//! expects (`expect`, `errors`) and which rules to check (`rules`; `always` from the defaults
//! applies to every case). The rules are a fixed vocabulary ([`RuleId`]) checked in code: a new
//! case combines them without code, a new kind of rule needs some.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::{ByteSize, HumanDuration, LimitOverrides};

/// Largest case file read.
pub const MAX_CASE_FILE: u64 = 256 * 1024;
/// Most case files read from one folder.
pub const MAX_CASES: usize = 1024;
/// The defaults file of a case folder.
pub const DEFAULTS_FILE: &str = "defaults.toml";

/// The contracts a suite exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contract {
    Subject,
    Policy,
    DeploymentTarget,
}

impl Contract {
    /// The folder name of its cases (`runtime/conformance/<name>/`).
    pub fn name(self) -> &'static str {
        match self {
            Contract::Subject => "subject",
            Contract::Policy => "policy",
            Contract::DeploymentTarget => "deployment-target",
        }
    }
}

/// A Subject operation a case calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Describe,
    GetStores,
    GetHotWriteRegions,
    GetClusterMetrics,
    TransferLeader,
    /// A policy's `decide` (policy suites).
    Decide,
    /// A deployment driver's operations (deployment-target suites).
    Up,
    Down,
    Status,
    Logs,
    Restart,
}

impl Call {
    /// The contract's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Call::Describe => "describe",
            Call::GetStores => "get-stores",
            Call::GetHotWriteRegions => "get-hot-write-regions",
            Call::GetClusterMetrics => "get-cluster-metrics",
            Call::TransferLeader => "transfer-leader",
            Call::Decide => "decide",
            Call::Up => "up",
            Call::Down => "down",
            Call::Status => "status",
            Call::Logs => "logs",
            Call::Restart => "restart",
        }
    }
}

/// Where a transfer case moves the leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferTarget {
    /// A store holding a follower of the region (the move should happen).
    #[default]
    Follower,
    /// A store holding no peer of the region (the cluster must refuse).
    NonPeer,
}

/// A fault injected at the host's HTTP capability, for every request of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    #[default]
    None,
    /// The request goes to a closed port on loopback: a real refused connection.
    ConnectionRefused,
    /// HTTP 500 with a text body, without the request reaching the cluster.
    #[serde(rename = "status-500")]
    Status500,
    /// The cluster's real answer with its body replaced by broken JSON.
    MalformedJson,
    /// The cluster's real answer cut in half.
    TruncatedBody,
    /// The answer trickles in slower than any budget: it never completes.
    SlowBody,
}

impl Fault {
    /// The name cases use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::ConnectionRefused => "connection-refused",
            Fault::Status500 => "status-500",
            Fault::MalformedJson => "malformed-json",
            Fault::TruncatedBody => "truncated-body",
            Fault::SlowBody => "slow-body",
        }
    }
}

/// The grants a case runs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantMode {
    /// What the run uses everywhere (the manifest's, or every path when learning).
    #[default]
    Manifest,
    /// No endpoint at all: every request is denied.
    None,
}

/// What a case expects the call to give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    #[default]
    Ok,
    /// A named error, one of the case's `errors`.
    Error,
}

/// The rules a case can check. Each has a stable id (its kebab-case name) that results,
/// known-failures files and tests refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// The call did not trap.
    NoTrap,
    /// The call stayed within its sandbox limits (unless the case accepts the error).
    WithinLimits,
    /// Guest time per call under the suite's `max-guest-time`.
    FastEnough,
    /// No request the grants refuse.
    WithinGrants,
    /// The call answered with a value, not an error.
    Answers,
    /// A failure at the HTTP capability gives one of the named errors the case lists.
    ErrorsNamed,
    /// `describe` sends nothing.
    DescribePure,
    /// `describe` names the adapter and only contract operations.
    DescribeActions,
    StoresUnique,
    StoresNoTombstones,
    /// Stores and their states are the cluster's own.
    StoresMatchCluster,
    HotRegionsSorted,
    HotRegionsLimit,
    HotRegionsLeaderAPeer,
    /// Regions, peers and leaders are the cluster's own.
    HotRegionsMatchCluster,
    /// Ids above 2^53 come back exactly.
    IdsExact,
    MetricsStoreCount,
    /// A transfer the cluster refuses is `rejected` with the cluster's message.
    TransferRejected,
    /// `confirmed` only when the leader really moved.
    TransferTruthful,
    /// Two reads in a row agree.
    ReadsConsistent,
    /// A policy's `describe` lists named parameters with defaults.
    DescribeParams,
    /// The same observation and parameters give the same proposals.
    Deterministic,
    /// Every proposal passes the gate's checks of the observation.
    ProposalsPassGate,
    /// Applying its own proposals, the policy comes to rest (proposes nothing).
    Settles,
    /// After `up`, every service runs (and is healthy, with a healthcheck), as the engine says.
    UpRunning,
    /// A second `up` changes nothing: the same containers, none stopped, started or replaced.
    IdempotentUp,
    /// `status` lists the project's containers and states as the engine has them.
    StatusMatchesEngine,
    /// `logs` without follow opens a stream that ends.
    LogsEnd,
    /// `restart` restarts every container in place and they run again.
    RestartRestarts,
    /// After `down` (volumes too), the engine has no container, network or volume of the project.
    DownLeavesNothing,
}

impl RuleId {
    /// The stable id.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

/// The simulated cluster a case runs on (for Subject suites).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ClusterSpec {
    pub stores: usize,
    pub regions: usize,
    pub first_id: u64,
    pub seed: u64,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec { stores: 4, regions: 64, first_id: 1, seed: 42 }
    }
}

/// The synthetic observation a policy case decides on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ObservationSpec {
    pub stores: usize,
    pub regions: usize,
    /// `even`: every region writes the same; `skewed`: a few regions write most.
    pub load: Load,
    /// `spread`: leaders evenly over the stores; `first-store`: the first store leads every
    /// region it holds.
    pub leaders: Leaders,
    /// Stores (by position, from 0) reported down.
    pub down: Vec<usize>,
}

impl Default for ObservationSpec {
    fn default() -> Self {
        ObservationSpec { stores: 4, regions: 48, load: Load::Even, leaders: Leaders::Spread, down: Vec::new() }
    }
}

/// Write load of a synthetic observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    Even,
    Skewed,
}

/// Leader placement of a synthetic observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leaders {
    Spread,
    FirstStore,
}

/// Limit overrides a case sets, in the manifest's units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitSpec {
    pub deadline: Option<String>,
    pub host_time: Option<String>,
    pub memory: Option<String>,
    pub response_size: Option<String>,
    pub output: Option<String>,
}

/// One case, merged over its defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Case {
    /// What it proves, in a line.
    pub about: String,
    /// The operations it calls; each gives one result.
    #[serde(default)]
    pub calls: Vec<Call>,
    /// `get-hot-write-regions`'s limit.
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default)]
    pub target: TransferTarget,
    /// Calls in a row (consistency).
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default)]
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub fault: Fault,
    #[serde(default)]
    pub grants: GrantMode,
    #[serde(default)]
    pub limits: LimitSpec,
    #[serde(default)]
    pub expect: Expect,
    /// Error kinds accepted when `expect = "error"` (subject errors, or a sandbox error such as
    /// `deadline-exceeded`).
    #[serde(default)]
    pub errors: Vec<String>,
    /// Rules checked on this case.
    #[serde(default)]
    pub rules: Vec<RuleId>,
    /// Rules checked on every case (set in `defaults.toml`).
    #[serde(default)]
    pub always: Vec<RuleId>,
    /// Guest time one call may take (`fast-enough`).
    #[serde(default = "default_guest_time")]
    pub max_guest_time: String,
    /// Needs the simulator's own state to judge (not run against real endpoints).
    #[serde(default)]
    pub needs_simulator: bool,
    /// Changes the cluster (run against real endpoints only with `--allow-writes`).
    #[serde(default)]
    pub writes: bool,
    #[serde(default)]
    pub observation: ObservationSpec,
    /// Rounds a policy may take to settle.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
}

fn default_limit() -> u32 {
    10
}
fn one() -> u32 {
    1
}
fn default_guest_time() -> String {
    "1s".into()
}
fn default_rounds() -> u32 {
    20
}

impl Case {
    /// Every rule this case checks: `always`, then its own, once each.
    pub fn all_rules(&self) -> Vec<RuleId> {
        let mut rules = self.always.clone();
        if self.expect == Expect::Error {
            rules.push(RuleId::ErrorsNamed);
        }
        rules.extend(self.rules.iter().copied());
        let mut seen = std::collections::BTreeSet::new();
        rules.retain(|r| seen.insert(*r));
        rules
    }

    /// The guest time one call may take.
    pub fn guest_time_limit(&self) -> Duration {
        self.max_guest_time.parse::<HumanDuration>().map(|d| d.0).unwrap_or(Duration::from_secs(1))
    }

    /// The case's limit overrides.
    pub fn limit_overrides(&self) -> LimitOverrides {
        let d = |s: &Option<String>| s.as_ref().and_then(|s| s.parse::<HumanDuration>().ok()).map(|d| d.0);
        let b = |s: &Option<String>| s.as_ref().and_then(|s| s.parse::<ByteSize>().ok()).map(|b| b.0);
        LimitOverrides {
            deadline: d(&self.limits.deadline),
            host_time: d(&self.limits.host_time),
            memory: b(&self.limits.memory),
            response_size: b(&self.limits.response_size),
            output: b(&self.limits.output),
            stdio: None,
        }
    }

    /// True when the case changes nothing the rest of the run sees (no fault, the run's
    /// grants and limits): its costs and requests are the component's normal ones.
    pub fn is_clean(&self) -> bool {
        self.fault == Fault::None && self.grants == GrantMode::Manifest && self.limits == LimitSpec::default()
    }
}

/// A case with its name and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct NamedCase {
    /// The file name without `.toml`.
    pub name: String,
    /// `built-in` or the folder given with `--cases`.
    pub source: String,
    #[serde(flatten)]
    pub case: Case,
}

/// A contract's suite: its cases in name order.
#[derive(Debug, Clone)]
pub struct Suite {
    pub contract: Contract,
    pub cases: Vec<NamedCase>,
}

/// A case file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("conformance case {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("cannot read the cases in {dir}: {source}")]
    Read { dir: String, source: std::io::Error },
}

impl Suite {
    /// Parses a suite from `(file name, text)` pairs; `defaults.toml` among them applies to
    /// the others.
    pub fn parse(contract: Contract, source: &str, files: &[(String, String)]) -> Result<Suite, CaseError> {
        let mut suite = Suite { contract, cases: Vec::new() };
        suite.add(source, files, None)?;
        Ok(suite)
    }

    /// Adds the cases of `files` (a `defaults.toml` among them is merged over `base`'s defaults);
    /// a case may not take the name of one already in the suite.
    pub fn add(
        &mut self,
        source: &str,
        files: &[(String, String)],
        base: Option<&toml::Table>,
    ) -> Result<(), CaseError> {
        let invalid = |file: &str, reason: String| CaseError::Invalid { file: format!("{source}/{file}"), reason };
        let mut defaults = base.cloned().unwrap_or_default();
        if let Some((_, text)) = files.iter().find(|(name, _)| name == DEFAULTS_FILE) {
            let table: toml::Table =
                text.parse().map_err(|e: toml::de::Error| invalid(DEFAULTS_FILE, e.to_string()))?;
            defaults = merge(defaults, table);
        }
        for (file, text) in files {
            let Some(name) = file.strip_suffix(".toml") else { continue };
            if file == DEFAULTS_FILE {
                continue;
            }
            let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(file, e.to_string()))?;
            if let Some(call) = table.remove("call") {
                if table.contains_key("calls") {
                    return Err(invalid(file, "give `call` or `calls`, not both".into()));
                }
                table.insert("calls".into(), toml::Value::Array(vec![call]));
            }
            let merged = merge(defaults.clone(), table);
            let case: Case =
                toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| invalid(file, e.to_string()))?;
            validate(self.contract, &case).map_err(|reason| invalid(file, reason))?;
            if let Some(existing) = self.cases.iter().find(|c| c.name == name) {
                return Err(invalid(
                    file,
                    format!("a case named `{name}` comes from {} already; name this one differently", existing.source),
                ));
            }
            self.cases.push(NamedCase { name: name.to_string(), source: source.to_string(), case });
        }
        self.cases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    /// Adds the cases of a folder (`--cases DIR`): its `*.toml` files, over the defaults of the
    /// built-in suite (`builtin_defaults`) and the folder's own `defaults.toml`.
    pub fn add_dir(&mut self, dir: &Path, builtin_defaults: Option<&str>) -> Result<(), CaseError> {
        let read = |source: std::io::Error| CaseError::Read { dir: dir.display().to_string(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read)? {
            let entry = entry.map_err(read)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".toml") || !entry.file_type().map_err(read)?.is_file() {
                continue;
            }
            if files.len() >= MAX_CASES {
                return Err(CaseError::Invalid {
                    file: dir.display().to_string(),
                    reason: format!("more than {MAX_CASES} case files"),
                });
            }
            let bytes = crate::files::read_bounded(&entry.path(), MAX_CASE_FILE)
                .map_err(|e| CaseError::Invalid { file: entry.path().display().to_string(), reason: e.to_string() })?;
            let text = String::from_utf8(bytes).map_err(|_| CaseError::Invalid {
                file: entry.path().display().to_string(),
                reason: "not UTF-8".into(),
            })?;
            files.push((name, text));
        }
        let base = match builtin_defaults {
            Some(text) => Some(text.parse::<toml::Table>().map_err(|e| CaseError::Invalid {
                file: format!("built-in/{DEFAULTS_FILE}"),
                reason: e.to_string(),
            })?),
            None => None,
        };
        self.add(&dir.display().to_string(), &files, base.as_ref())
    }
}

/// `over` merged onto `base`: tables merge key by key, `always` lists add up (a case or a
/// folder's defaults can add rules every call is held to, never remove one), anything else
/// replaces.
fn merge(mut base: toml::Table, over: toml::Table) -> toml::Table {
    for (k, v) in over {
        match (base.remove(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                base.insert(k, toml::Value::Table(merge(b, o)));
            }
            (Some(toml::Value::Array(mut b)), toml::Value::Array(o)) if k == "always" => {
                b.extend(o);
                base.insert(k, toml::Value::Array(b));
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    base
}

/// What a case must hold for its contract.
fn validate(contract: Contract, case: &Case) -> Result<(), String> {
    if case.calls.is_empty() {
        return Err("no `call` (or `calls`) given".into());
    }
    let subject_call = |c: &Call| {
        matches!(
            c,
            Call::Describe
                | Call::GetStores
                | Call::GetHotWriteRegions
                | Call::GetClusterMetrics
                | Call::TransferLeader
        )
    };
    let policy_call = |c: &Call| matches!(c, Call::Decide | Call::Describe);
    let deployment_call = |c: &Call| matches!(c, Call::Up | Call::Down | Call::Status | Call::Logs | Call::Restart);
    let fits = match contract {
        Contract::Subject => case.calls.iter().all(subject_call),
        Contract::Policy => case.calls.iter().all(policy_call),
        Contract::DeploymentTarget => case.calls.iter().all(deployment_call),
    };
    if !fits {
        let calls: Vec<&str> = case.calls.iter().map(|c| c.name()).collect();
        return Err(format!("{} is not an operation of the {} contract", calls.join(", "), contract.name()));
    }
    if case.expect == Expect::Error && case.errors.is_empty() {
        return Err("`expect = \"error\"` needs `errors`, the kinds accepted".into());
    }
    if case.repeat == 0 || case.repeat > 16 {
        return Err("`repeat` is 1 to 16".into());
    }
    if !(1..=100).contains(&case.cluster.stores) || !(1..=10_000).contains(&case.cluster.regions) {
        return Err("`[cluster]` has 1 to 100 stores and 1 to 10000 regions".into());
    }
    if !(1..=200).contains(&case.observation.stores) || case.observation.regions > 50_000 {
        return Err("`[observation]` has 1 to 200 stores and at most 50000 regions".into());
    }
    if !(1..=100).contains(&case.rounds) {
        return Err("`rounds` is 1 to 100".into());
    }
    // Host time bounds a slow-body case's wait; more than a minute is no test of anything.
    if let Some(t) = &case.limits.host_time
        && t.parse::<HumanDuration>().is_ok_and(|d| d.0 > Duration::from_secs(60))
    {
        return Err("limits.host-time is at most 60s in a case".into());
    }
    case.max_guest_time.parse::<HumanDuration>().map_err(|e| format!("max-guest-time: {e}"))?;
    let d = |n: &str, s: &Option<String>| match s {
        Some(s) => s.parse::<HumanDuration>().map(|_| ()).map_err(|e| format!("limits.{n}: {e}")),
        None => Ok(()),
    };
    let b = |n: &str, s: &Option<String>| match s {
        Some(s) => s.parse::<ByteSize>().map(|_| ()).map_err(|e| format!("limits.{n}: {e}")),
        None => Ok(()),
    };
    d("deadline", &case.limits.deadline)?;
    d("host-time", &case.limits.host_time)?;
    b("memory", &case.limits.memory)?;
    b("response-size", &case.limits.response_size)?;
    b("output", &case.limits.output)?;
    Ok(())
}

/// A known-failures file: cases expected to fail for a component, each with a reason.
///
/// ```toml
/// [[known]]
/// case = "hot-regions-sorted"
/// reason = "PD's own order is kept; fixed in 0.3"
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnownFailures {
    #[serde(default)]
    pub known: Vec<KnownFailure>,
}

/// One known failure.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnownFailure {
    /// A case name (`fault-status-500`), or `case/call` for one of its calls.
    pub case: String,
    /// The one rule it is known to fail; none: any rule but the sandbox's own.
    #[serde(default)]
    pub rule: Option<RuleId>,
    pub reason: String,
}

/// Rules no known-failures file can excuse: a trap, a limit hit, a refused request, I/O in
/// describe are what a person must always see.
pub const NEVER_EXCUSED: &[RuleId] =
    &[RuleId::NoTrap, RuleId::WithinLimits, RuleId::WithinGrants, RuleId::DescribePure];

impl KnownFailures {
    /// Reads a known-failures file.
    pub fn load(path: &Path) -> Result<KnownFailures, CaseError> {
        let invalid = |reason: String| CaseError::Invalid { file: path.display().to_string(), reason };
        let bytes = crate::files::read_bounded(path, MAX_CASE_FILE).map_err(|e| invalid(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
        toml::from_str(&text).map_err(|e| invalid(e.to_string()))
    }

    /// The entry naming this call (or its case), if any.
    pub fn entry(&self, case: &str, call: &str) -> Option<&KnownFailure> {
        let full = format!("{case}/{call}");
        self.known.iter().find(|k| k.case == case || k.case == full)
    }

    /// The reason these failed rules of a call are known, if every one of them is: its entry
    /// names the rule (or no rule), and none is a rule that is never excused.
    pub fn excuse(&self, case: &str, call: &str, failed: &[RuleId]) -> Option<&str> {
        let k = self.entry(case, call)?;
        let excused = |r: &RuleId| !NEVER_EXCUSED.contains(r) && k.rule.is_none_or(|only| only == *r);
        failed.iter().all(excused).then_some(k.reason.as_str())
    }

    /// Entries that name no case of the suite (typos would otherwise hide failures).
    pub fn unknown_cases<'a>(&'a self, suite: &Suite) -> Vec<&'a str> {
        let names: BTreeMap<&str, &NamedCase> = suite.cases.iter().map(|c| (c.name.as_str(), c)).collect();
        self.known
            .iter()
            .filter(|k| {
                let base = k.case.split('/').next().unwrap_or(&k.case);
                !names.contains_key(base)
            })
            .map(|k| k.case.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_case_is_merged_over_its_folders_defaults() {
        let suite = Suite::parse(
            Contract::Subject,
            "built-in",
            &files(&[
                ("defaults.toml", "always = [\"no-trap\"]\nmax-guest-time = \"2s\"\n[cluster]\nstores = 5\n"),
                ("big-ids.toml", "about = \"ids\"\ncall = \"get-stores\"\nrules = [\"ids-exact\"]\n[cluster]\nfirst-id = 9007199254740993\n"),
            ]),
        )
        .expect("parses");
        let c = &suite.cases[0];
        assert_eq!(c.name, "big-ids");
        assert_eq!(c.case.calls, vec![Call::GetStores]);
        assert_eq!(c.case.cluster.stores, 5);
        assert_eq!(c.case.cluster.first_id, 9_007_199_254_740_993);
        assert_eq!(c.case.all_rules(), vec![RuleId::NoTrap, RuleId::IdsExact]);
        assert_eq!(c.case.guest_time_limit(), Duration::from_secs(2));
    }

    #[test]
    fn an_unknown_rule_or_field_names_the_file_and_what_is_wrong() {
        let e = Suite::parse(
            Contract::Subject,
            "x",
            &files(&[("a.toml", "about = \"a\"\ncall = \"get-stores\"\nrules = [\"sorted\"]\n")]),
        )
        .expect_err("unknown rule");
        let text = e.to_string();
        assert!(text.contains("x/a.toml") && text.contains("sorted"), "{text}");
        let e = Suite::parse(
            Contract::Subject,
            "x",
            &files(&[("a.toml", "about = \"a\"\ncall = \"get-stores\"\nfaults = \"x\"\n")]),
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("faults"), "{e}");
        let e = Suite::parse(
            Contract::Subject,
            "x",
            &files(&[("a.toml", "about = \"a\"\ncall = \"get-stores\"\nexpect = \"error\"\n")]),
        )
        .expect_err("no errors");
        assert!(e.to_string().contains("errors"), "{e}");
    }

    #[test]
    fn added_cases_cannot_drop_the_rules_every_call_is_held_to_or_replace_a_built_in_case() {
        let builtin = "always = [\"no-trap\"]\n";
        let mut suite = Suite::parse(
            Contract::Subject,
            "built-in",
            &files(&[("defaults.toml", builtin), ("stores.toml", "about = \"s\"\ncall = \"get-stores\"\n")]),
        )
        .expect("parses");
        let base: toml::Table = builtin.parse().expect("toml");
        suite
            .add(
                "mine",
                &files(&[
                    ("defaults.toml", "always = []\n"),
                    ("x.toml", "about = \"x\"\ncall = \"describe\"\nalways = []\n"),
                ]),
                Some(&base),
            )
            .expect("adds");
        let x = suite.cases.iter().find(|c| c.name == "x").expect("x");
        assert_eq!(x.case.all_rules(), vec![RuleId::NoTrap]);
        let e = suite
            .add("mine", &files(&[("stores.toml", "about = \"s\"\ncall = \"get-stores\"\n")]), Some(&base))
            .expect_err("taken");
        assert!(e.to_string().contains("comes from built-in already"), "{e}");
    }

    #[test]
    fn known_failures_match_a_case_or_one_of_its_calls() {
        let k: KnownFailures = toml::from_str(
            "[[known]]\ncase = \"a\"\nreason = \"r\"\n[[known]]\ncase = \"b/get-stores\"\nreason = \"s\"\n",
        )
        .expect("parses");
        assert_eq!(k.excuse("a", "describe", &[RuleId::HotRegionsSorted]), Some("r"));
        assert_eq!(k.excuse("b", "get-stores", &[RuleId::Answers]), Some("s"));
        assert_eq!(k.excuse("b", "describe", &[RuleId::Answers]), None);
        // A trap is never excused, and an entry naming a rule excuses only that rule.
        assert_eq!(k.excuse("a", "describe", &[RuleId::NoTrap]), None);
        let k: KnownFailures =
            toml::from_str("[[known]]\ncase = \"a\"\nrule = \"hot-regions-sorted\"\nreason = \"r\"\n").expect("parses");
        assert_eq!(k.excuse("a", "x", &[RuleId::HotRegionsSorted]), Some("r"));
        assert_eq!(k.excuse("a", "x", &[RuleId::HotRegionsSorted, RuleId::HotRegionsLimit]), None);
    }
}
