//! `operator mcp`: the operator's contracts as MCP tools over stdio, for AI assistants.
//!
//! Read-only tools (stores, hot regions, metrics, a policy's proposals with the gate's verdicts,
//! the audit log) run the subject's adapter in the sandbox under its grants, like the CLI.
//! Mutating tools (`transfer_leader`, `apply_proposal`) pass the same gate as `operator run`
//! (`operator_host::gate`) against a fresh observation and are recorded in the same audit log,
//! with the client's name; without `--allow-actions` a person confirms each one through MCP
//! elicitation ([`confirm`]). stdout carries the protocol only: logs go to stderr.

mod confirm;
mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use operator_host::audit::AuditLog;
use operator_host::engine::LoadedComponent;
use operator_host::gate::GateLimits;
use operator_host::limits::HumanDuration;
use operator_host::registry::{ComponentFile, Components, LookupError, Subject};
use operator_host::{Policy, Runtime};
use rmcp::ServiceExt;

use super::sandbox_args::{self, SandboxArgs};
use super::{Context, UsageError};

pub use tools::Server;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A subject to serve (repeatable; default: every subject found).
    #[arg(long = "subject", value_name = "NAME")]
    subjects: Vec<String>,
    /// Execute mutating tools without asking the person (the gate still applies).
    #[arg(long)]
    allow_actions: bool,
    /// The audit log: a file with one subject, a folder of `<subject>.jsonl` with several
    /// (default: each subject's own, the one `operator run` writes).
    #[arg(long, value_name = "PATH")]
    audit: Option<PathBuf>,
    /// Actions started per minute at most, counted in the audit log (so `operator run`'s count).
    #[arg(long, default_value_t = 4)]
    max_actions_per_minute: usize,
    /// Actions not yet confirmed, across calls.
    #[arg(long, default_value_t = 4)]
    max_in_flight: usize,
    /// Time after an action on a region before another.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    region_cooldown: Duration,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>().map(|d| d.0).map_err(|e| e.to_string())
}

/// A subject the server serves: its grants and its adapter, loaded on first use.
pub(crate) struct Served {
    pub subject: Subject,
    pub policy: Policy,
    pub file: ComponentFile,
    pub adapter: tokio::sync::OnceCell<LoadedComponent>,
    /// Its deployment driver, loaded on the first deployment tool call.
    pub driver: tokio::sync::OnceCell<LoadedComponent>,
    pub audit_path: PathBuf,
}

/// What every tool call shares.
pub(crate) struct Shared {
    pub runtime: Runtime,
    pub components: Components,
    pub subjects: BTreeMap<String, Served>,
    pub allow_actions: bool,
    pub limits: GateLimits,
    pub max_actions_per_minute: usize,
    /// One mutation at a time per audit log (its file lock is per open file, not per process).
    pub acting: std::sync::Mutex<BTreeMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    pub proposals: std::sync::Mutex<BTreeMap<String, tools::StoredProposal>>,
    pub next_proposal: AtomicU64,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let names = if args.subjects.is_empty() { ctx.subjects.names() } else { args.subjects.clone() };
    if names.is_empty() {
        return Err(UsageError("no subject found to serve; pass --subjects-dir or --subject NAME".into()).into());
    }
    let several = names.len() > 1;
    let mut subjects = BTreeMap::new();
    for name in names {
        let subject = ctx.subjects.find(&name)?;
        let manifest = args.sandbox.manifest(Some(subject.manifest.clone()))?;
        let policy = args.sandbox.policy(manifest.as_ref());
        let Some(section) = &subject.manifest.subject else {
            if args.subjects.is_empty() {
                continue; // a deployment-only subject: nothing to observe
            }
            return Err(
                LookupError::NoComponent { name: subject.name.clone(), path: subject.manifest.path.clone() }.into()
            );
        };
        let file = ctx.components.resolve_in(&section.component, &subject.dir)?;
        // Several subjects never share one log: their regions and stores are not the same.
        let audit_path = match (&args.audit, several) {
            (Some(dir), true) => dir.join(format!("{}.jsonl", subject.name)),
            (Some(file), false) => file.clone(),
            (None, _) => AuditLog::default_path(&subject.name)
                .ok_or_else(|| UsageError("no home folder for the audit log; pass --audit PATH".into()))?,
        };
        subjects.insert(
            name,
            Served {
                subject,
                policy,
                file,
                adapter: tokio::sync::OnceCell::new(),
                driver: tokio::sync::OnceCell::new(),
                audit_path,
            },
        );
    }
    let shared = Shared {
        runtime: ctx.runtime()?,
        components: ctx.components.clone(),
        subjects,
        allow_actions: args.allow_actions,
        limits: GateLimits {
            max_actions_per_round: 1,
            max_in_flight: args.max_in_flight,
            region_cooldown: args.region_cooldown,
        },
        max_actions_per_minute: args.max_actions_per_minute,
        acting: std::sync::Mutex::new(BTreeMap::new()),
        proposals: std::sync::Mutex::new(BTreeMap::new()),
        next_proposal: AtomicU64::new(1),
    };
    tracing::info!(subjects = ?shared.subjects.keys().collect::<Vec<_>>(), "serving MCP on stdio");
    let server = Server::new(Arc::new(shared));
    let service = server.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}

impl Shared {
    /// The served subject named `name`, or a tool error naming the ones served.
    pub fn served(&self, name: &str) -> Result<&Served, tools::ToolError> {
        self.subjects.get(name).ok_or_else(|| {
            tools::ToolError::new(
                "not-found",
                format!("no subject `{name}` is served"),
                Some(format!("served: {}", self.subjects.keys().cloned().collect::<Vec<_>>().join(", "))),
            )
        })
    }

    /// The lock that serialises actions on one audit log.
    pub fn acting_on(&self, path: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.acting.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(path.to_path_buf()).or_default().clone()
    }

    /// The subject's adapter, compiled (or loaded from the cache) on first use.
    pub async fn adapter<'s>(&'s self, served: &'s Served) -> Result<&'s LoadedComponent, tools::ToolError> {
        served
            .adapter
            .get_or_try_init(|| async {
                sandbox_args::load(&self.runtime, &served.file)
                    .map_err(|e| tools::ToolError::new("invalid-component", format!("{e:#}"), None))
            })
            .await
    }
}
