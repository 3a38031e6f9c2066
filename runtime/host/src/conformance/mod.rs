//! `operator check`: a contract's conformance suite, run against a component in the sandbox
//! under the limits it would get in production.
//!
//! The design follows conformance runners that any implementation is run through: cases are
//! data ([`case`]: one TOML file per case, with a folder's defaults, like the WASI testsuite),
//! the runner is small and per contract ([`subject`], [`policy`]), and a known-failures file is
//! honoured and reported. Faults are injected at the host's HTTP capability ([`probe`]) with the
//! real cluster behind it, so an adapter meets a refused connection, a 500, broken JSON, a cut
//! body or a silent server exactly as it would in production. Results carry the rule each
//! finding is about, so a failure says which promise of the contract was broken.

pub mod case;
pub mod deployment;
pub mod learn;
pub mod policy;
pub mod probe;
pub mod subject;

use std::time::Duration;

use serde::Serialize;

pub use case::{Call, Case, Contract, KnownFailures, NamedCase, RuleId, Suite};

use crate::sandbox::{CallReport, Denial};
use probe::SeenRequest;

/// How a not-run reason starts when the adapter does not support the operation.
pub const UNSUPPORTED: &str = "the adapter does not support";

/// How a case (or one call of it) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum Status {
    Pass,
    Fail,
    /// It failed, and the known-failures file says why.
    KnownFailure(String),
    /// It passed although the known-failures file lists it (remove the entry).
    UnexpectedPass(String),
    /// It could not run here; the reason says why.
    NotRun(String),
}

impl Status {
    /// The one word the table shows.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::KnownFailure(_) => "known",
            Status::UnexpectedPass(_) => "pass?",
            Status::NotRun(_) => "not run",
        }
    }
}

/// One rule checked on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub passed: bool,
    /// What was seen (for a failure: what broke the rule).
    pub detail: String,
}

/// What a call cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    pub guest_ms: f64,
    pub host_ms: f64,
    pub peak_memory: u64,
    pub requests: u64,
}

impl Cost {
    fn of(report: &CallReport, requests: u64) -> Cost {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Cost {
            guest_ms: ms(report.guest_time),
            host_ms: ms(report.host_time),
            peak_memory: report.peak_memory,
            requests,
        }
    }

    /// The larger of each measure.
    fn max(&mut self, other: &Cost) {
        self.guest_ms = self.guest_ms.max(other.guest_ms);
        self.host_ms = self.host_ms.max(other.host_ms);
        self.peak_memory = self.peak_memory.max(other.peak_memory);
        self.requests = self.requests.max(other.requests);
    }
}

/// The result of one call of a case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub call: String,
    pub about: String,
    #[serde(flatten)]
    pub status: Status,
    /// The rules checked; failures first.
    pub findings: Vec<Finding>,
    /// The last call's cost (none when it did not run).
    pub cost: Option<Cost>,
    /// What the call sent.
    pub requests: Vec<SeenRequest>,
    /// Requests counted past the probe's cap.
    pub requests_dropped: u64,
    /// What the grants refused.
    pub denials: Vec<Denial>,
    /// A clean case: no fault, the run's grants and limits (counts toward costs and grants).
    pub clean: bool,
}

impl CaseResult {
    /// A result for a case that could not run.
    pub fn not_run(case: &NamedCase, call: Call, why: String) -> CaseResult {
        CaseResult {
            case: case.name.clone(),
            call: call.name().into(),
            about: case.case.about.clone(),
            status: Status::NotRun(why),
            findings: Vec::new(),
            cost: None,
            requests: Vec::new(),
            requests_dropped: 0,
            denials: Vec::new(),
            clean: false,
        }
    }

    /// The rules that failed.
    pub fn failed_rules(&self) -> Vec<RuleId> {
        self.findings.iter().filter(|f| !f.passed).map(|f| f.rule).collect()
    }

    /// Sets the status from the findings and the known failures.
    pub fn settle(&mut self, known: &KnownFailures) {
        if matches!(self.status, Status::NotRun(_)) {
            return;
        }
        self.findings.sort_by_key(|f| f.passed);
        let failed = self.failed_rules();
        self.status = if failed.is_empty() {
            match known.entry(&self.case, &self.call) {
                Some(k) => Status::UnexpectedPass(k.reason.clone()),
                None => Status::Pass,
            }
        } else {
            match known.excuse(&self.case, &self.call, &failed) {
                Some(r) => Status::KnownFailure(r.to_string()),
                None => Status::Fail,
            }
        };
    }
}

/// A whole run's results with what they add up to.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub known_failures: usize,
    pub unexpected_passes: usize,
    pub not_run: usize,
    /// Rules with a failure (known failures excluded).
    pub failed_rules: Vec<RuleId>,
    /// Operations never checked because the adapter does not support them: a run with any
    /// is incomplete (an adapter cannot pass by supporting nothing).
    pub unsupported: Vec<String>,
    /// Per operation, over clean cases: the largest cost seen, and how many calls.
    pub costs: Vec<OperationCost>,
    /// Every request of the clean cases by endpoint, method and path, with a count.
    pub requests: Vec<RequestCount>,
    /// What the grants refused in clean cases.
    pub denied: Vec<String>,
}

/// The costs of one operation.
#[derive(Debug, Clone, Serialize)]
pub struct OperationCost {
    pub call: String,
    pub calls: usize,
    #[serde(flatten)]
    pub max: Cost,
}

/// How often one request was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    pub endpoint: String,
    pub method: String,
    pub path: String,
    pub count: u64,
}

impl Summary {
    /// Adds up the results.
    pub fn of(results: &[CaseResult]) -> Summary {
        let count = |f: fn(&Status) -> bool| results.iter().filter(|r| f(&r.status)).count();
        let mut failed_rules: Vec<RuleId> =
            results.iter().filter(|r| r.status == Status::Fail).flat_map(|r| r.failed_rules()).collect();
        failed_rules.sort();
        failed_rules.dedup();

        let mut costs: Vec<OperationCost> = Vec::new();
        let mut requests: std::collections::BTreeMap<(String, String, String), u64> = Default::default();
        let mut denied: Vec<String> = Vec::new();
        for r in results.iter().filter(|r| r.clean) {
            if let Some(c) = &r.cost {
                match costs.iter_mut().find(|o| o.call == r.call) {
                    Some(o) => {
                        o.calls += 1;
                        o.max.max(c);
                    }
                    None => costs.push(OperationCost { call: r.call.clone(), calls: 1, max: c.clone() }),
                }
            }
            for q in &r.requests {
                *requests.entry((q.endpoint.clone(), q.method.clone(), learn::generalise(&q.path))).or_default() += 1;
            }
            for d in &r.denials {
                if !denied.contains(&d.reason) {
                    denied.push(d.reason.clone());
                }
            }
        }
        costs.sort_by(|a, b| a.call.cmp(&b.call));
        let mut unsupported: Vec<String> = Vec::new();
        for r in results {
            let declined = |o: &CaseResult| matches!(&o.status, Status::NotRun(why) if why.starts_with(UNSUPPORTED));
            if !unsupported.contains(&r.call) && results.iter().filter(|o| o.call == r.call).all(declined) {
                unsupported.push(r.call.clone());
            }
        }
        Summary {
            unsupported,
            passed: count(|s| *s == Status::Pass),
            failed: count(|s| *s == Status::Fail),
            known_failures: count(|s| matches!(s, Status::KnownFailure(_))),
            unexpected_passes: count(|s| matches!(s, Status::UnexpectedPass(_))),
            not_run: count(|s| matches!(s, Status::NotRun(_))),
            failed_rules,
            costs,
            requests: requests
                .into_iter()
                .map(|((endpoint, method, path), count)| RequestCount { endpoint, method, path, count })
                .collect(),
            denied,
        }
    }

    /// True when something ran, nothing failed (known failures excepted), and every
    /// operation was checked.
    pub fn ok(&self) -> bool {
        self.ran() > 0 && self.failed == 0 && self.unsupported.is_empty()
    }

    /// Calls that ran (whatever their result).
    pub fn ran(&self) -> usize {
        self.passed + self.failed + self.known_failures + self.unexpected_passes
    }
}

/// The first line of an error (a trap's stderr and backtrace follow it), safe and short.
pub(crate) fn error_line(e: &dyn std::fmt::Display) -> String {
    subject_text(e.to_string().lines().next().unwrap_or_default())
}

/// A component's text made safe and short for a finding.
pub(crate) fn subject_text(text: &str) -> String {
    const MAX: usize = 300;
    let cut = &text[..text.floor_char_boundary(MAX)];
    let mut s = crate::text::escape(cut).into_owned();
    if cut.len() < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, call: &str, status: Status) -> CaseResult {
        CaseResult {
            case: case.into(),
            call: call.into(),
            about: String::new(),
            status,
            findings: Vec::new(),
            cost: None,
            requests: Vec::new(),
            requests_dropped: 0,
            denials: Vec::new(),
            clean: true,
        }
    }

    #[test]
    fn an_adapter_that_supports_nothing_is_incomplete_not_passed() {
        let declined = || Status::NotRun(format!("{UNSUPPORTED} transfer-leader (…)"));
        let results = vec![
            result("stores", "get-stores", Status::Pass),
            result("transfer-to-follower", "transfer-leader", declined()),
            result("fault-x", "transfer-leader", declined()),
        ];
        let s = Summary::of(&results);
        assert_eq!(s.failed, 0);
        assert_eq!(s.unsupported, vec!["transfer-leader".to_string()]);
        assert!(!s.ok());
        // Not run for the runner's own reasons (no simulator, no --allow-writes) is not that.
        let results = vec![
            result("stores", "get-stores", Status::Pass),
            result("transfer-to-follower", "transfer-leader", Status::NotRun("changes the cluster".into())),
        ];
        assert!(Summary::of(&results).ok());
        // Nothing that ran is nothing checked.
        let results = vec![result("stores", "get-stores", Status::NotRun("the project could not be opened".into()))];
        assert!(!Summary::of(&results).ok());
    }
}
