//! `operator check <COMPONENT|PATH>`: runs a contract's conformance suite against a component
//! in the sandbox and tells, in one screen, whether to trust it and which grants it needs.
//!
//! The suites are the case files under `runtime/conformance/` (embedded by `build.rs`); the
//! runners live in `operator_host::conformance`. This module wires what the library leaves
//! open: the TiKV simulator as the default cluster (one per cluster shape the cases ask for,
//! on free loopback ports), the grants and limits, and the three renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use operator_host::capability::http::{HttpGrants, ReqwestTransport};
use operator_host::conformance::case::{ClusterSpec, Contract, DEFAULTS_FILE};
use operator_host::conformance::learn::Learned;
use operator_host::conformance::policy::PolicyRunner;
use operator_host::conformance::probe::Probe;
use operator_host::conformance::subject::{SubjectRunner, Target, Targets, TrueRegion, Truth, everything};
use operator_host::conformance::{CaseResult, KnownFailures, Status, Suite, Summary};
use operator_host::limits::{ByteSize, Limits, format_duration};
use operator_host::manifest::Manifest;
use operator_host::registry::is_path;
use operator_host::subject::StoreState;
use operator_host::text::escape;
use serde::Serialize;

use super::render::{self, Table};
use super::sandbox_args::{self, SandboxArgs};
use super::{Context, Output, Reported, UsageError};

include!(concat!(env!("OUT_DIR"), "/conformance_cases.rs"));

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  operator check tikv\n  operator check ./adapter.wasm --learn > grants.toml\n  \
operator check etcd --endpoint etcd1=http://127.0.0.1:2379 --endpoint etcd2=http://127.0.0.1:22379 \
--endpoint etcd3=http://127.0.0.1:32379\n  operator check hot-write-balance\n  operator check evict-leader --param store=1\n  \
operator check ./adapter.wasm --output junit > check.xml")]
pub struct Args {
    /// A component name (see `operator components`) or a path to a .wasm file.
    component: String,
    /// The contract to check; by default the one the component exports.
    #[arg(long, value_enum)]
    contract: Option<ContractArg>,
    /// Add the cases (`*.toml`) of DIR; a case with a built-in case's name replaces it.
    #[arg(long = "cases", value_name = "DIR")]
    cases: Vec<PathBuf>,
    /// Cases expected to fail, each with a reason ([[known]] case = "...", rule = "...",
    /// reason = "..."). A trap, a limit, a refused request or I/O in describe is never excused.
    #[arg(long, value_name = "FILE")]
    known_failures: Option<PathBuf>,
    /// Grant every path of every endpoint, and print the smallest manifest `allow` section
    /// covering what the component used (to compare with what it asks for).
    #[arg(long)]
    learn: bool,
    /// Run the cases that change the cluster against real endpoints (--endpoint) too.
    #[arg(long)]
    allow_writes: bool,
    /// The limits calls run under: `production` (the defaults and the subject's manifest), or
    /// `strict` (at most a 1 s deadline, 10 s host time and 64 MiB of memory).
    #[arg(long, value_enum, default_value_t = Profile::Production)]
    profile: Profile,
    /// A policy parameter for every `decide` (policy suites), e.g. store=1.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::run::parse_param)]
    params: Vec<(String, String)>,
    /// The subject whose compose project a deployment driver deploys (deployment-target
    /// suites), under a project name of the check's own.
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// How long `up --wait` may take (deployment-target suites).
    #[arg(long, value_name = "DURATION", value_parser = sandbox_args::parse_duration, default_value = "120s")]
    wait_timeout: Duration,
    /// How long the whole check may take: an adapter that spends every call's budget cannot
    /// make it run for hours.
    #[arg(long, value_name = "DURATION", value_parser = sandbox_args::parse_duration, default_value = "15m")]
    run_timeout: Duration,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ContractArg {
    Subject,
    Policy,
    DeploymentTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Profile {
    Production,
    Strict,
}

/// Most simulated clusters one check starts (each distinct `[cluster]` of the cases is one).
const MAX_CLUSTERS: usize = 4;

/// How the simulator of a check is paced: fast heartbeats so transfers finish in well under
/// a second, as on a real cluster in a few heartbeats.
fn sim_config(spec: &ClusterSpec) -> tikv_simulator::Config {
    tikv_simulator::Config {
        stores: spec.stores,
        regions: spec.regions,
        seed: spec.seed,
        first_id: spec.first_id,
        heartbeat: Duration::from_millis(200),
        operator_delay: Duration::from_millis(600),
        ..tikv_simulator::Config::default()
    }
}

/// The simulator's own state, read behind the adapter's back.
struct SimTruth(tikv_simulator::api::Shared);

impl Truth for SimTruth {
    fn stores(&self) -> Vec<(u64, StoreState)> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.stores
            .iter()
            .map(|s| {
                let state = match c.store_state(s) {
                    tikv_simulator::model::StoreState::Up => StoreState::Up,
                    tikv_simulator::model::StoreState::Disconnected => StoreState::Disconnected,
                    tikv_simulator::model::StoreState::Down => StoreState::Down,
                };
                (s.id, state)
            })
            .collect()
    }

    fn regions(&self) -> Vec<TrueRegion> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.regions
            .values()
            .map(|r| TrueRegion {
                id: r.id,
                peers: r.peers.iter().map(|p| p.store_id).collect(),
                leader: r.leader_store(),
                written_bytes: r.written_bytes,
            })
            .collect()
    }
}

/// The built-in suite of a contract.
fn builtin(contract: Contract) -> anyhow::Result<Suite> {
    let files: Vec<(String, String)> = CONFORMANCE
        .iter()
        .filter(|(c, _, _)| *c == contract.name())
        .map(|(_, f, t)| (f.to_string(), t.to_string()))
        .collect();
    Ok(Suite::parse(contract, "built-in", &files)?)
}

fn builtin_defaults(contract: Contract) -> Option<&'static str> {
    CONFORMANCE.iter().find(|(c, f, _)| *c == contract.name() && *f == DEFAULTS_FILE).map(|(_, _, t)| *t)
}

/// Everything a run reports.
#[derive(Debug, Serialize)]
struct Report {
    component: String,
    contract: Contract,
    cluster: String,
    grants: String,
    profile: Profile,
    limits: Limits,
    results: Vec<CaseResult>,
    summary: Summary,
    /// Grants the manifest gives that no clean case used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unused_grants: Vec<operator_host::conformance::learn::UnusedGrant>,
    /// Grants that were used but allow more than what used them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    wider_grants: Vec<operator_host::conformance::learn::UnusedGrant>,
    /// The smallest `allow` section covering what clean cases used.
    learned: Learned,
    /// Entries of the known-failures file that name no case.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stale_known_failures: Vec<String>,
    /// What the person should know about how the run was set up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

pub async fn run(ctx: &Context, args: Args, junit: bool) -> anyhow::Result<()> {
    let file = ctx.components.resolve(&args.component)?;
    let inspection = operator_host::inspect::inspect(&file.bytes)?;
    let contract = match (args.contract, inspection.contract.as_deref()) {
        (Some(ContractArg::DeploymentTarget), _) | (None, Some("deployment-driver")) => Contract::DeploymentTarget,
        (Some(ContractArg::Subject), _) | (None, Some("subject-adapter")) => Contract::Subject,
        (Some(ContractArg::Policy), _) | (None, Some("policy-component")) => Contract::Policy,
        (None, _) => {
            return Err(UsageError(format!(
                "{} exports none of the operator's contracts (world `{}`); `operator inspect` shows what it exports, \
                 --contract subject|policy|deployment-target picks a suite",
                escape(&file.name),
                escape(&inspection.world)
            ))
            .into());
        }
    };
    if contract == Contract::Policy && (args.learn || !args.sandbox.endpoints.is_empty() || args.allow_writes) {
        return Err(UsageError(
            "a policy makes no request: --learn, --endpoint and --allow-writes are for Subject adapters".into(),
        )
        .into());
    }
    if contract != Contract::Policy && !args.params.is_empty() {
        return Err(UsageError("--param is for policies".into()).into());
    }
    if contract == Contract::DeploymentTarget && (args.learn || !args.sandbox.endpoints.is_empty() || args.allow_writes)
    {
        return Err(UsageError(
            "a deployment driver reaches Docker only: --learn, --endpoint and --allow-writes are for Subject adapters"
                .into(),
        )
        .into());
    }
    if contract != Contract::DeploymentTarget && args.subject.is_some() {
        return Err(
            UsageError("--subject names the project a deployment driver deploys; this is no driver".into()).into()
        );
    }

    let suite = builtin_or(&args.cases, contract)?;
    // Only a file the person names: one shipped beside an adapter is its author's word.
    let known = match &args.known_failures {
        Some(p) => KnownFailures::load(p)?,
        None => KnownFailures::default(),
    };
    let stale_known_failures: Vec<String> = known.unknown_cases(&suite).into_iter().map(String::from).collect();

    // Grants: --manifest, else the manifest of the subject a named component serves.
    let subject_manifest =
        if is_path(&args.component) { None } else { ctx.subjects.for_component(&file.name).map(|s| s.manifest) };
    let manifest: Option<Manifest> = args.sandbox.manifest(subject_manifest)?;
    let mut base = args.sandbox.policy(manifest.as_ref());
    if args.profile == Profile::Strict {
        base.limits.deadline = base.limits.deadline.min(Duration::from_secs(1));
        base.limits.host_time = base.limits.host_time.min(Duration::from_secs(10));
        base.limits.memory = base.limits.memory.min(64 << 20);
    }

    let probe = Probe::new(Arc::new(ReqwestTransport::new()?));
    let runtime = ctx.runtime()?.with_transport(probe.clone());
    let component = sandbox_args::load(&runtime, &file)?;

    let mut notes = Vec::new();
    let (results, cluster, grants_text, asked) = match contract {
        Contract::DeploymentTarget => {
            let (results, cluster, grants) =
                check_driver(ctx, &args, &runtime, &component, &base, &suite, known).await?;
            (results, cluster, grants, None)
        }
        Contract::Policy => {
            let client = operator_host::policy::PolicyClient::new(&runtime, &component, base.clone())?;
            let first = operator_host::conformance::policy::observation(&Default::default());
            let hint = " (the suite's synthetic clusters have stores 1, 2, 3, ...)";
            super::run::check_params(&client, &file.name, &args.params, &first, hint).await?;
            let runner = PolicyRunner {
                runtime: &runtime,
                component: &component,
                base: base.clone(),
                params: args.params.clone(),
                known,
            };
            (
                within(args.run_timeout, runner.run(&suite)).await?,
                "synthetic observations".to_string(),
                "none (a policy imports log only)".to_string(),
                None,
            )
        }
        Contract::Subject => {
            // Clusters: the simulator, one per shape the cases ask for; or the real endpoints.
            let real = !args.sandbox.endpoints.is_empty();
            let mut sims = Vec::new();
            let mut targets: Targets = BTreeMap::new();
            let mut cluster = String::new();
            let specs: std::collections::BTreeSet<ClusterSpec> =
                suite.cases.iter().map(|c| c.case.cluster.clone()).collect();
            if specs.len() > MAX_CLUSTERS {
                return Err(UsageError(format!(
                    "the cases ask for {} cluster shapes; a check starts at most {MAX_CLUSTERS} simulators",
                    specs.len()
                ))
                .into());
            }
            for spec in specs {
                if real {
                    let endpoints: Vec<_> = base.http.endpoints().map(|g| (g.name.clone(), g.url.clone())).collect();
                    cluster = format!(
                        "real endpoints: {}",
                        endpoints.iter().map(|(n, u)| format!("{n}={u}")).collect::<Vec<_>>().join(", ")
                    );
                    targets.insert(spec, Ok(Target { endpoints, truth: None }));
                    continue;
                }
                let any = "127.0.0.1:0".parse().expect("a socket address");
                let sim = tikv_simulator::Simulator::start(sim_config(&spec), any, Some(any))
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot start the TiKV simulator on loopback: {e}"))?;
                let url = |a: std::net::SocketAddr| url::Url::parse(&format!("http://{a}")).expect("a loopback URL");
                let endpoints = vec![("pd".to_string(), url(sim.pd)), ("prometheus".to_string(), url(sim.prometheus))];
                if cluster.is_empty() || spec == ClusterSpec::default() {
                    cluster = format!("TiKV simulator, in-process (PD {}, Prometheus {})", sim.pd, sim.prometheus);
                }
                targets.insert(spec, Ok(Target { endpoints, truth: Some(Arc::new(SimTruth(sim.cluster.clone()))) }));
                sims.push(sim);
            }
            if !real && targets.len() > 1 {
                cluster.push_str(&format!("; {} more cluster shapes", targets.len() - 1));
            }
            let names: Vec<(String, url::Url)> =
                targets.values().filter_map(|t| t.as_ref().ok()).flat_map(|t| t.endpoints.iter().cloned()).collect();
            let asked = manifest.as_ref().map(|_| base.http.clone());
            let grants_text = match (&manifest, args.learn) {
                (_, true) => "learning: every method on every path of each endpoint".to_string(),
                (Some(m), false) => m.path.display().to_string(),
                (None, false) => "none given (no manifest): every method on every path of each endpoint; \
                                  the grants it used are listed below"
                    .to_string(),
            };
            if !real {
                let foreign: Vec<String> =
                    base.http.endpoints().map(|g| g.name.clone()).filter(|n| n != "pd" && n != "prometheus").collect();
                if !foreign.is_empty() {
                    notes.push(format!(
                        "the simulator serves `pd` and `prometheus` only; the grants' {} are not served here and every \
                         request to them is refused: check an adapter for another system against its cluster with \
                         --endpoint NAME=URL",
                        foreign.join(", ")
                    ));
                }
            }
            if real && args.learn {
                return Err(UsageError(
                    "--learn grants every path, which is only done on the simulator; drop --endpoint".into(),
                )
                .into());
            }
            // Every path is granted only on the simulator; against real endpoints the adapter gets
            // its manifest's grants (or, without one, GET and HEAD on each --endpoint).
            if !real && (args.learn || manifest.is_none()) {
                let mut all = names.clone();
                all.extend(base.http.endpoints().map(|g| (g.name.clone(), g.url.clone())));
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all.dedup_by(|a, b| a.0 == b.0);
                base.http = everything(&all);
            }
            let runner = SubjectRunner {
                runtime: &runtime,
                component: &component,
                base: base.clone(),
                probe: probe.clone(),
                allow_writes: args.allow_writes,
                known,
            };
            let results = within(args.run_timeout, runner.run(&suite, &targets)).await?;
            drop(sims);
            (results, cluster, grants_text, asked)
        }
    };

    let summary = Summary::of(&results);
    let learned = Learned::from_requests(results.iter().filter(|r| r.clean).flat_map(|r| r.requests.iter()));
    let unused_grants = asked.as_ref().map(|g: &HttpGrants| learned.unused(g)).unwrap_or_default();
    let wider_grants = asked.as_ref().map(|g: &HttpGrants| learned.wider(g)).unwrap_or_default();
    let report = Report {
        component: file.name.clone(),
        contract,
        cluster,
        grants: grants_text,
        profile: args.profile,
        limits: base.limits.clone(),
        results,
        summary,
        unused_grants,
        wider_grants,
        learned,
        stale_known_failures,
        notes,
    };

    if args.learn {
        let urls: BTreeMap<String, String> = match &manifest {
            Some(m) => m.endpoints.iter().map(|(n, g)| (n.clone(), g.url.to_string())).collect(),
            None => BTreeMap::new(),
        };
        eprintln!("{}", verdict(&report));
        print!("{}", report.learned.to_toml(&urls));
        return if report.summary.ok() { Ok(()) } else { Err(Reported.into()) };
    }
    if junit {
        print!("{}", junit_xml(&report));
    } else {
        match ctx.output {
            Output::Json => render::json(&report)?,
            Output::Table => table(&report),
        }
    }
    if report.summary.ok() { Ok(()) } else { Err(Reported.into()) }
}

/// Runs the DeploymentTarget suite: the subject's compose project under a name of the check's
/// own, on this machine's Docker engine. Returns the results, the cluster and grants lines.
async fn check_driver(
    ctx: &Context,
    args: &Args,
    runtime: &operator_host::Runtime,
    component: &operator_host::LoadedComponent,
    base: &operator_host::Policy,
    suite: &Suite,
    known: KnownFailures,
) -> anyhow::Result<(Vec<CaseResult>, String, String)> {
    use operator_host::capability::docker::bollard_engine::BollardEngine;
    use operator_host::capability::docker::engine::DockerEngine;
    use operator_host::conformance::deployment::DeploymentRunner;
    use operator_host::deploy::{self, ComposeProject, ProjectSource};

    let Some(subject_name) = &args.subject else {
        return Err(UsageError(format!(
            "a deployment driver is checked by deploying a project: --subject NAME (available: {})",
            ctx.subjects.names().join(", ")
        ))
        .into());
    };
    let subject = ctx.subjects.find(subject_name)?;
    let manifest = args.sandbox.manifest(Some(subject.manifest.clone()))?;
    let grants = deploy::grants(manifest.as_ref(), &subject.dir)?;
    // A name of its own: the check never touches the user's deployment of the subject.
    let name = format!("opcheck-{}", std::process::id());
    let src = ProjectSource {
        name_flag: Some(&name),
        subject: Some(subject_name),
        ..ProjectSource::new(&subject.dir, manifest.as_ref(), &grants)
    };
    let project = ComposeProject::resolve(&src)?;
    let engine: Arc<dyn DockerEngine> = Arc::new(BollardEngine::connect()?);
    engine.ping().await?;
    let mut limits = deploy::default_limits();
    limits.deadline = limits.deadline.min(base.limits.deadline);
    let cluster = format!(
        "Docker ({}): project {name} from {}",
        engine.describe(),
        project.files.first().map(|(p, _)| p.display().to_string()).unwrap_or_default()
    );
    let grants_text = match &manifest {
        Some(m) => format!("{} [deployment.docker]", m.path.display()),
        None => "none: the project's own resources only".into(),
    };
    let runner = DeploymentRunner {
        runtime,
        component,
        project,
        engine,
        grants,
        limits,
        wait_timeout: args.wait_timeout,
        known,
    };
    let (results, removed) = tokio::select! {
        r = runner.run(suite) => r,
        _ = tokio::time::sleep(args.run_timeout) => {
            let removed = runner.clean_up().await;
            return Err(anyhow::anyhow!(
                "the check took longer than --run-timeout {}; project {name} was taken down{}",
                operator_host::limits::format_duration(args.run_timeout),
                if removed.is_empty() { String::new() } else { format!(" ({} removed at the engine)", removed.len()) }
            ));
        }
        _ = tokio::signal::ctrl_c() => {
            let removed = runner.clean_up().await;
            eprintln!("interrupted; project {name} taken down{}", if removed.is_empty() { String::new() } else { format!(" ({} removed at the engine)", removed.len()) });
            return Err(Reported.into());
        }
    };
    if !removed.is_empty() {
        eprintln!(
            "warning: the driver left {} of project {name} behind; the check removed it at the engine",
            escape(&removed.join(", "))
        );
    }
    Ok((results, cluster, grants_text))
}

/// Runs `work` within the whole check's time budget.
async fn within<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work).await.map_err(|_| {
        anyhow::anyhow!(
            "the check took longer than --run-timeout {}: a component that spends each call's budget to the end \
             makes a run long; raise --run-timeout to wait longer",
            format_duration(limit)
        )
    })
}

/// The built-in suite of `contract` with the cases of `dirs` added.
fn builtin_or(dirs: &[PathBuf], contract: Contract) -> anyhow::Result<Suite> {
    let mut suite = builtin(contract)?;
    for dir in dirs {
        suite.add_dir(dir, builtin_defaults(contract))?;
    }
    Ok(suite)
}

/// One line: trust it or not, and why.
fn verdict(r: &Report) -> String {
    let s = &r.summary;
    let ran = s.ran();
    let mut extra = String::new();
    if s.known_failures > 0 {
        let _ = write!(extra, ", {} known failures", s.known_failures);
    }
    if s.not_run > 0 {
        let _ = write!(extra, ", {} not run", s.not_run);
    }
    if s.ok() {
        format!("PASS: {} of {ran} calls pass{extra}", s.passed + s.unexpected_passes)
    } else if ran == 0 {
        format!("NOTHING CHECKED: no case could run here ({} not run; the table says why).", s.not_run)
    } else if s.failed == 0 {
        format!(
            "INCOMPLETE: {} of {ran} calls pass{extra}, but it supports no {}: nothing about them was checked.",
            s.passed + s.unexpected_passes,
            s.unsupported.join(", ")
        )
    } else {
        let rules: Vec<String> = s.failed_rules.iter().map(|r| r.name()).collect();
        format!(
            "FAIL: {} of {ran} calls fail{extra}; broken rules: {}. Do not trust it with a cluster until these pass.",
            s.failed,
            rules.join(", ")
        )
    }
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0}µs", v * 1000.0)
    } else if v < 1000.0 {
        format!("{v:.1}ms")
    } else {
        format!("{:.2}s", v / 1000.0)
    }
}

fn table(r: &Report) {
    let e = |t: &str| escape(t).into_owned();
    println!("operator check {} — the {} contract", e(&r.component), r.contract.name());
    println!("  cluster  {}", e(&r.cluster));
    println!("  grants   {}", e(&r.grants));
    let l = &r.limits;
    println!(
        "  limits   {}: deadline {}, host time {}, memory {}, response {}, output {}",
        match r.profile {
            Profile::Production => "production",
            Profile::Strict => "strict",
        },
        format_duration(l.deadline),
        format_duration(l.host_time),
        ByteSize(l.memory),
        ByteSize(l.response_size),
        ByteSize(l.output)
    );
    for n in &r.notes {
        println!("  note     {}", e(n));
    }
    println!();

    let mut t = Table::new(&["CASE", "CALL", "RESULT", "RULE", "WHAT WAS SEEN"]);
    // A case whose calls all passed takes one row; any other call has its own.
    let mut shown_cases = std::collections::BTreeSet::new();
    for c in &r.results {
        let calls: Vec<&CaseResult> = r.results.iter().filter(|o| o.case == c.case).collect();
        if calls.len() > 1 && calls.iter().all(|o| o.status == Status::Pass) {
            if shown_cases.insert(c.case.clone()) {
                t.row(vec![
                    c.case.clone(),
                    format!("{} calls", calls.len()),
                    "pass".into(),
                    String::new(),
                    String::new(),
                ]);
            }
            continue;
        }
        let first_fail = c.findings.iter().find(|f| !f.passed);
        let (rule, detail) = match (&c.status, first_fail) {
            (Status::NotRun(why), _) => (String::new(), why.clone()),
            (Status::KnownFailure(why), Some(f)) => (f.rule.name(), format!("known: {why} — {}", f.detail)),
            (Status::UnexpectedPass(why), _) => {
                (String::new(), format!("listed as a known failure ({why}); remove it"))
            }
            (_, Some(f)) => (f.rule.name(), f.detail.clone()),
            (_, None) => (String::new(), String::new()),
        };
        t.row(vec![c.case.clone(), c.call.clone(), c.status.word().into(), rule, detail]);
        // Further broken rules of the same call, one line each.
        if c.status == Status::Fail {
            for f in c.findings.iter().filter(|f| !f.passed).skip(1) {
                t.row(vec![String::new(), String::new(), String::new(), f.rule.name(), f.detail.clone()]);
            }
        }
    }
    t.print();

    if !r.summary.costs.is_empty() {
        println!();
        let mut t = Table::new(&["OPERATION", "CALLS", "GUEST TIME", "HOST TIME", "PEAK MEMORY", "REQUESTS"]);
        for c in &r.summary.costs {
            t.row(vec![
                c.call.clone(),
                c.calls.to_string(),
                ms(c.max.guest_ms),
                ms(c.max.host_ms),
                render::bytes(c.max.peak_memory),
                c.max.requests.to_string(),
            ]);
        }
        println!("What each operation costs (the most of any clean call):");
        t.print();
    }
    if r.contract == Contract::Subject {
        println!();
        if r.summary.requests.is_empty() {
            println!("Requests: none.");
        } else {
            println!("Requests (clean cases):");
            let mut t = Table::new(&["  METHOD", "ENDPOINT", "PATH", "COUNT"]);
            for q in &r.summary.requests {
                t.row(vec![format!("  {}", q.method), q.endpoint.clone(), q.path.clone(), q.count.to_string()]);
            }
            t.print();
        }
        for d in &r.summary.denied {
            println!("  denied: {}", e(d));
        }
        if !r.unused_grants.is_empty() {
            let unused: Vec<String> =
                r.unused_grants.iter().map(|u| format!("{} {} {}", u.method, u.endpoint, u.path)).collect();
            println!("Granted but not used in this run: {}", e(&unused.join(", ")));
        }
        if !r.wider_grants.is_empty() {
            let wider: Vec<String> =
                r.wider_grants.iter().map(|u| format!("{} {} {}", u.method, u.endpoint, u.path)).collect();
            println!("Granted more widely than it uses: {}", e(&wider.join(", ")));
        }
        println!("The grants it needs (`--learn` prints them as a manifest section):");
        for (endpoint, need) in &r.learned.endpoints {
            for (method, paths) in &need.methods {
                let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
                println!("  {} {} {}", e(endpoint), method, e(&paths.join(" ")));
            }
        }
    }
    for k in &r.stale_known_failures {
        println!("warning: the known-failures file names `{}`, which is no case of this suite", e(k));
    }
    println!();
    println!("{}", verdict(r));
}

/// Text safe in XML 1.0: escaped, and without the control characters it cannot carry.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            // C0 and C1 controls, bidi overrides and isolates, and what XML cannot carry.
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
                || c == '\u{fffe}'
                || c == '\u{ffff}' =>
            {
                out.push('\u{fffd}')
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML, as CI systems read it: one testcase per call, known failures and cases not run
/// as skipped.
fn junit_xml(r: &Report) -> String {
    let s = &r.summary;
    let total = r.results.len();
    let skipped = s.known_failures + s.not_run;
    let time: f64 = r.results.iter().filter_map(|c| c.cost.as_ref()).map(|c| (c.guest_ms + c.host_ms) / 1000.0).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let name = format!("operator check {} ({})", r.component, r.contract.name());
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        xml(&name),
        s.failed
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        xml(&name),
        s.failed
    );
    for c in &r.results {
        let t = c.cost.as_ref().map(|c| (c.guest_ms + c.host_ms) / 1000.0).unwrap_or(0.0);
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{t:.3}\"",
            r.contract.name(),
            xml(&c.case),
            xml(&c.call)
        );
        let failures: Vec<String> =
            c.findings.iter().filter(|f| !f.passed).map(|f| format!("{}: {}", f.rule.name(), f.detail)).collect();
        match &c.status {
            Status::Pass | Status::UnexpectedPass(_) => out.push_str("/>\n"),
            Status::Fail => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}\n{}</failure>\n    </testcase>",
                    xml(failures.first().map(String::as_str).unwrap_or("failed")),
                    xml(&c.findings.iter().find(|f| !f.passed).map(|f| f.rule.name()).unwrap_or_default()),
                    xml(&c.about),
                    xml(&failures.join("\n"))
                );
            }
            Status::KnownFailure(why) => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"known failure: {}\">{}</skipped>\n    </testcase>",
                    xml(why),
                    xml(&failures.join("\n"))
                );
            }
            Status::NotRun(why) => {
                let _ = writeln!(out, ">\n      <skipped message=\"not run: {}\"/>\n    </testcase>", xml(why));
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped_and_free_of_control_characters() {
        assert_eq!(xml("<a href=\"x\">&'\u{1b}[2K\n"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{fffd}[2K\n");
        assert_eq!(xml("a\u{9b}b\u{202e}c\u{2066}"), "a\u{fffd}b\u{fffd}c\u{fffd}");
    }

    #[test]
    fn every_built_in_suite_parses() {
        for contract in [Contract::Subject, Contract::Policy] {
            let suite = builtin(contract).expect("the built-in cases parse");
            assert!(suite.cases.len() >= 5, "{} has {} cases", contract.name(), suite.cases.len());
        }
    }
}
