//! `operator deploy local|swarm up|down|status|logs|restart [SUBJECT]`: a subject's cluster,
//! run by a sandboxed deployment driver on the project-scoped Docker capability (`local`) or
//! the stack-scoped Swarm capability (`swarm`). The two targets share every flag and the
//! output; `swarm` adds `--publish-mode` and a restart that moves leaders away first.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use operator_host::capability::docker::DockerGrants;
use operator_host::capability::docker::bollard_engine::BollardEngine;
use operator_host::capability::docker::engine::DockerEngine;
use operator_host::capability::progress::{Phase, ProgressHandle, ProgressSink};
use operator_host::deploy::{self, ComposeProject, DeployError, Deployer, OpenError, ProjectSource, ServiceStatus};
use operator_host::manifest::{MANIFEST_FILE, Manifest};
use operator_host::registry::load_named_manifest;
use operator_host::sandbox::{CallOutcome, FailedCall};
use operator_host::text::escape;

use super::render::{self, Table};
use super::sandbox_args;
use super::{Context, Output, Reported, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, clap::Subcommand)]
enum Target {
    /// A local cluster on this machine's Docker engine.
    Local(Actions),
    /// A stack of services on the Docker Swarm this engine manages (across its nodes).
    Swarm(Actions),
}

/// The actions of either target.
#[derive(Debug, clap::Args)]
struct Actions {
    #[command(subcommand)]
    action: Action,
}

/// How `deploy swarm` publishes ports and finds services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PublishMode {
    /// Every port on the node running its task, every service found by DNS round robin:
    /// for engines where the routing mesh and virtual IPs do not route.
    Host,
    /// Every port through the routing mesh, every service behind a virtual IP.
    Ingress,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The subject (`subjects/<SUBJECT>/`); without one, the compose project in the current folder.
    subject: Option<String>,
    /// Project name (default: COMPOSE_PROJECT_NAME, else the subject's or the folder's name;
    /// a compose file's `name:` is not used).
    #[arg(short = 'p', long)]
    project_name: Option<String>,
    /// Time allowed waiting on Docker (pulls, health) per command.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    host_time: Option<Duration>,
    /// Grant manifest to use. A plain folder gets no grants without one (its own operator.toml
    /// applies only when named here); a subject uses it instead of its operator.toml.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create and start the cluster; with --wait, until every service is running or healthy.
    Up {
        #[command(flatten)]
        common: Common,
        /// Wait until services are running or healthy.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long (implies --wait).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait_timeout: Option<Duration>,
        /// Swarm only: publish every port this way (default: as the compose file says).
        #[arg(long, value_enum)]
        publish_mode: Option<PublishMode>,
    },
    /// Stop and remove the cluster's containers and networks (volumes with --volumes).
    Down {
        #[command(flatten)]
        common: Common,
        /// Also remove the project's named volumes.
        #[arg(long)]
        volumes: bool,
    },
    /// Each service's container, state, health and ports.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// The services' output, prefixed by container.
    Logs {
        #[command(flatten)]
        common: Common,
        /// Only this service (repeatable).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Keep streaming new output.
        #[arg(short, long)]
        follow: bool,
        /// Lines of history per container.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
    },
    /// Restart all services, or the named ones (in dependency order). On Swarm, one at a
    /// time (by name, or in the order given), each after its leaders were moved away through
    /// the subject's adapter.
    Restart {
        #[command(flatten)]
        common: Common,
        /// Only this service (repeatable).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Swarm only: restart without moving leaders away first.
        #[arg(long)]
        no_evict: bool,
        /// Swarm only: where the subject's adapter reaches endpoint NAME to move leaders (as for
        /// `operator subject`), when the cluster is not where its manifest says.
        #[arg(long = "endpoint", value_name = "NAME=URL", value_parser = sandbox_args::parse_endpoint)]
        endpoints: Vec<(String, url::Url)>,
    },
}

use super::sandbox_args::parse_duration;

mod evict;

/// Where the project is, what its manifest says and grants.
struct Resolved {
    project: ComposeProject,
    manifest: Option<Manifest>,
    grants: DockerGrants,
}

fn resolve(ctx: &Context, common: &Common, labels_suffice: bool) -> anyhow::Result<Resolved> {
    // A manifest the user names is theirs; one found in a folder is the folder author's.
    let named = match &common.manifest {
        Some(path) => Some(load_named_manifest(path)?),
        None => None,
    };
    let (dir, manifest) = match &common.subject {
        Some(name) => {
            let subject = ctx.subjects.find(name)?;
            (subject.dir.clone(), named.or(Some(subject.manifest)))
        }
        // A plain folder grants nothing by itself: whoever wrote the compose file may have
        // written an operator.toml beside it too.
        None => {
            let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            if named.is_none() && dir.join(MANIFEST_FILE).is_file() {
                eprintln!(
                    "note: this folder's {MANIFEST_FILE} is not used; a folder's own grants apply only when you name \
                     them: --manifest {MANIFEST_FILE}"
                );
            }
            (dir, named)
        }
    };
    let grants = deploy::grants(manifest.as_ref(), &dir)?;
    let src = ProjectSource {
        name_flag: common.project_name.as_deref(),
        subject: common.subject.as_deref(),
        ..ProjectSource::new(&dir, manifest.as_ref(), &grants)
    };
    let resolved = if labels_suffice { ComposeProject::resolve_or_labels(&src) } else { ComposeProject::resolve(&src) };
    let project = resolved.map_err(|e| match e {
        deploy::ProjectError::BadName(_) | deploy::ProjectError::UnusableName(_) => {
            anyhow::Error::new(UsageError(e.to_string()))
        }
        deploy::ProjectError::NoComposeFile { .. } if common.subject.is_none() => anyhow::Error::new(UsageError(
            format!("{e}; name a subject (available: {})", ctx.subjects.names().join(", ")),
        )),
        other => other.into(),
    })?;
    Ok(Resolved { project, manifest, grants })
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let (swarm, chosen) = match args.target {
        Target::Local(l) => (false, l),
        Target::Swarm(l) => (true, l),
    };
    let target = if swarm { "swarm" } else { "local" };
    let common = match &chosen.action {
        Action::Up { common, .. }
        | Action::Down { common, .. }
        | Action::Status { common }
        | Action::Logs { common, .. }
        | Action::Restart { common, .. } => common,
    };
    if !swarm {
        if let Action::Up { publish_mode: Some(_), .. } = chosen.action {
            return Err(UsageError("--publish-mode applies to `deploy swarm` only".into()).into());
        }
        if let Action::Restart { no_evict, endpoints, .. } = &chosen.action
            && (*no_evict || !endpoints.is_empty())
        {
            return Err(UsageError("--no-evict and --endpoint apply to `deploy swarm restart` only".into()).into());
        }
    }
    let labels_suffice = matches!(
        chosen.action,
        Action::Down { .. } | Action::Status { .. } | Action::Logs { .. } | Action::Restart { .. }
    ) && common.subject.is_some();
    let mut resolved = resolve(ctx, common, labels_suffice)?;
    if let Action::Up { publish_mode: Some(mode), .. } = chosen.action {
        // The flag is the compose extension the Swarm driver reads (a compose file may set it
        // too), handed over as one more file that overrides the subject's.
        let mode = match mode {
            PublishMode::Host => "host",
            PublishMode::Ingress => "ingress",
        };
        resolved.project.files.push((
            PathBuf::from(format!("(operator deploy swarm --publish-mode {mode})")),
            format!("x-operator-swarm:\n  publish-mode: {mode}\n"),
        ));
    }

    // Reach Docker before anything else: a clear error, and nothing half done.
    let engine = Arc::new(BollardEngine::connect()?);
    engine.ping().await?;

    let deployment = resolved.manifest.as_ref().and_then(|m| m.deployment.as_ref());
    let driver_name = if swarm {
        deployment.and_then(|d| d.swarm_driver.clone()).unwrap_or_else(|| "swarm".into())
    } else {
        deployment.and_then(|d| d.driver.clone()).unwrap_or_else(|| "compose".into())
    };
    // A driver the manifest names by path lies in the subject folder.
    let file = match &resolved.manifest {
        Some(m) => ctx.components.resolve_in(&driver_name, m.path.parent().unwrap_or(std::path::Path::new("."))),
        None => ctx.components.resolve(&driver_name),
    }?;
    let runtime = ctx.runtime()?;
    let component = sandbox_args::load(&runtime, &file)?;
    let mut limits = deploy::default_limits();
    if let Some(t) = common.host_time {
        limits.host_time = t;
    }
    let ui = Arc::new(Lines::new(ctx.output));
    // Looking changes nothing: the driver's capability for status and logs can only read.
    let access = if matches!(chosen.action, Action::Status { .. } | Action::Logs { .. }) {
        deploy::Access::ReadOnly
    } else {
        deploy::Access::ReadWrite
    };
    let progress = ProgressHandle(ui.clone());
    let (project, grants) = (resolved.project.clone(), resolved.grants.clone());
    let opened = if swarm {
        Deployer::open_swarm(&runtime, &component, project, engine, grants, limits, progress, access).await
    } else {
        let engine: Arc<dyn DockerEngine> = engine;
        Deployer::open(&runtime, &component, project, engine, grants, limits, progress, access).await
    };
    let deployer = opened.map_err(|e| match e {
        OpenError::Contract(c) => anyhow::Error::new(c),
        other => anyhow::Error::new(other),
    })?;
    let project = resolved.project.name.clone();
    let subject = common.subject.clone();

    match chosen.action {
        Action::Up { wait, wait_timeout, .. } => {
            let call = deployer.up(wait || wait_timeout.is_some(), wait_timeout);
            let result = tokio::select! {
                r = call => r,
                _ = tokio::signal::ctrl_c() => {
                    ui.clear();
                    eprintln!(
                        "interrupted: run `operator deploy {target} down {} -p {}` to remove what was created",
                        common_name(&resolved),
                        resolved.project.name
                    );
                    return Err(Reported.into());
                }
            };
            let statuses = finish(&file.name, &ui, result)?;
            match ctx.output {
                Output::Json => render::json(&serde_json::json!({
                    "project": project,
                    "target": target,
                    "services": statuses,
                    "urls": urls(&resolved),
                }))?,
                Output::Table => {
                    println!();
                    status_table(&statuses);
                    let urls = urls(&resolved);
                    if !urls.is_empty() {
                        println!();
                        for (name, url) in urls {
                            println!("{:<12} {}", escape(&name), escape(&url));
                        }
                    }
                }
            }
        }
        Action::Down { volumes, .. } => {
            finish(&file.name, &ui, deployer.down(volumes).await)?;
            if ctx.output == Output::Json {
                render::json(&serde_json::json!({ "project": project, "target": target, "removed": true }))?;
            }
        }
        Action::Status { .. } => {
            let statuses = finish(&file.name, &ui, deployer.status().await)?;
            match ctx.output {
                Output::Json => render::json(&statuses)?,
                Output::Table if statuses.is_empty() && swarm => println!("stack {project} has no services"),
                Output::Table if statuses.is_empty() => println!("project {project} has no containers"),
                Output::Table => status_table(&statuses),
            }
        }
        Action::Restart { services, no_evict, endpoints, .. } if swarm => {
            let members = match &subject {
                Some(name) if !no_evict => {
                    let named = resolved.project.named.then_some(resolved.project.name.as_str());
                    evict::Evictor::open(ctx, name, named, endpoints).await?
                }
                _ => None,
            };
            let services: Vec<String> = if services.is_empty() {
                let mut all: Vec<String> =
                    finish(&file.name, &ui, deployer.status().await)?.into_iter().map(|s| s.service).collect();
                all.sort();
                all.dedup();
                // The driver's list, bounded as a stack is.
                all.truncate(operator_host::capability::swarm::scope::MAX_SERVICES);
                all
            } else {
                services
            };
            // One member at a time: leaders off it, then its rolling restart, converged before the next.
            for service in services {
                if let Some(evictor) = &members {
                    evictor.evict(&service, &*ui).await?;
                }
                finish(&file.name, &ui, deployer.restart(vec![service]).await)?;
            }
        }
        Action::Restart { services, .. } => {
            finish(&file.name, &ui, deployer.restart(services).await)?;
        }
        Action::Logs { services, follow, tail, .. } => {
            let mut stream = finish(&file.name, &ui, deployer.logs(services, tail, follow).await)?;
            print_logs(&mut stream, &project, ctx.output).await;
        }
    }
    Ok(())
}

fn common_name(r: &Resolved) -> String {
    r.manifest
        .as_ref()
        .and_then(|m| m.path.parent())
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The URLs the manifest names, else its endpoints' URLs.
fn urls(r: &Resolved) -> BTreeMap<String, String> {
    let Some(m) = &r.manifest else { return BTreeMap::new() };
    match &m.deployment {
        Some(d) if !d.urls.is_empty() => d.urls.clone(),
        _ => m.endpoints.values().map(|e| (e.name.clone(), e.url.to_string())).collect(),
    }
}

/// Unwraps a call: reports its side effects, turns the driver's error into exit code 1.
fn finish<T>(
    component: &str,
    _ui: &Lines,
    r: Result<CallOutcome<Result<T, DeployError>>, FailedCall>,
) -> anyhow::Result<T> {
    match r {
        Ok(o) => {
            sandbox_args::report(component, &o.report);
            o.value.map_err(|e| {
                // The driver's words, on one line: its newlines cannot print lines of the host's.
                eprintln!("error: {}", escape(&e.to_string()));
                Reported.into()
            })
        }
        Err(f) => {
            sandbox_args::report(component, &f.report);
            Err(f.into())
        }
    }
}

fn status_table(statuses: &[ServiceStatus]) {
    // Every cell is the driver's text: the table escapes it.
    let mut t = Table::new(&["SERVICE", "CONTAINER", "STATE", "HEALTH", "PORTS"]);
    for s in statuses {
        t.row(vec![
            s.service.clone(),
            s.container.clone(),
            s.state.clone(),
            s.health.clone().unwrap_or_else(|| "-".into()),
            s.ports.join(", "),
        ]);
    }
    t.print();
}

async fn print_logs(stream: &mut operator_host::capability::docker::LogStream, project: &str, output: Output) {
    const COLORS: [&str; 5] = ["36", "33", "32", "35", "34"];
    let color = std::io::stdout().is_terminal() && output == Output::Table;
    let mut seen: Vec<String> = Vec::new();
    while let Some(batch) = deploy::next_log_lines(stream, Duration::from_secs(1)).await {
        for l in batch {
            if output == Output::Json {
                let v = serde_json::json!({"service": l.service, "container": l.container, "stream": if l.stderr { "stderr" } else { "stdout" }, "line": l.line});
                let _ = render::json_line(&v);
                continue;
            }
            if !seen.contains(&l.container) {
                seen.push(l.container.clone());
            }
            let index = seen.iter().position(|c| c == &l.container).unwrap_or(0);
            let short = l
                .container
                .strip_prefix(&format!("{project}-"))
                .or_else(|| l.container.strip_prefix(&format!("{project}_")));
            let prefix = escape(short.unwrap_or(&l.container)).into_owned();
            // A container's output is shown, not obeyed: no escape sequence of its own acts.
            let line = escape(&l.line);
            if color {
                println!("\x1b[{}m{prefix:<16} |\x1b[0m {line}", COLORS[index % COLORS.len()]);
            } else {
                println!("{prefix:<16} | {line}");
            }
        }
    }
}

/// One live line per task on a terminal; plain lines otherwise. One ticker thread animates
/// every spinner (a bar's own steady tick would be a thread per task). Task names and details
/// are escaped again here: host-made reports (pulls) reach this sink too.
struct Lines {
    multi: MultiProgress,
    bars: Arc<Mutex<BTreeMap<String, ProgressBar>>>,
    live: bool,
}

impl Lines {
    fn new(output: Output) -> Self {
        let live = std::io::stderr().is_terminal() && output == Output::Table;
        let multi = MultiProgress::new();
        if !live {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let bars: Arc<Mutex<BTreeMap<String, ProgressBar>>> = Arc::default();
        if live {
            let weak = Arc::downgrade(&bars);
            std::thread::spawn(move || {
                while let Some(bars) = weak.upgrade() {
                    for b in bars.lock().unwrap_or_else(|p| p.into_inner()).values() {
                        if !b.is_finished() {
                            b.tick();
                        }
                    }
                    drop(bars);
                    std::thread::sleep(Duration::from_millis(120));
                }
            });
        }
        Lines { multi, bars, live }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl ProgressSink for Lines {
    fn report(&self, task: &str, phase: Phase, detail: &str) {
        let (task, detail) = (escape(task), escape(detail));
        if !self.live {
            if phase.is_final()
                || matches!(
                    phase,
                    Phase::Pulling | Phase::Creating | Phase::Stopping | Phase::Removing | Phase::Waiting
                )
            {
                eprintln!("{task:<40} {} {detail}", phase.name());
            }
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(task.to_string()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:40} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(task.to_string());
            b
        });
        let text = if detail.is_empty() { phase.name().to_string() } else { format!("{} {detail}", phase.name()) };
        match phase {
            Phase::Done => bar.finish_with_message(format!("\x1b[32m✔\x1b[0m {text}")),
            Phase::Failed => bar.finish_with_message(format!("\x1b[31m✘\x1b[0m {text}")),
            _ => bar.set_message(text),
        }
    }
}
