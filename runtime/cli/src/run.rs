//! `operator run <SUBJECT> --policy <NAME|PATH>`: the control loop. Each round observes through
//! the subject's adapter, decides through the policy, passes every proposal through the host's
//! gate and records the round in the audit log; only with `--apply` does it act. Ctrl-C ends the
//! loop after the current step.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use operator_host::audit::{AuditEvent, AuditLog, Replay};
use operator_host::control::{ControlLoop, RoundReport};
use operator_host::gate::{Action, GateLimits};
use operator_host::limits::HumanDuration;
use operator_host::policy::{Observation, Outcome, OutcomeKind, PolicyClient, PolicyError, Proposal};
use operator_host::registry::{LookupError, Subject};
use operator_host::subject::SubjectClient;
use operator_host::text::{escape, escape_lines};

use super::render::{self, Table};
use super::sandbox_args::{self, SandboxArgs};
use super::{Context, Output, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subject whose cluster the loop operates, e.g. `tikv`.
    subject: String,
    /// The policy component: a name (`hot-write-balance`) or a path to a `.wasm`.
    #[arg(long, value_name = "NAME|PATH")]
    policy: String,
    /// A policy parameter (repeatable); `operator call <POLICY> describe` lists them.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Time between rounds.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    interval: Duration,
    /// Rounds to run (default: until interrupted).
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
    /// Execute admitted actions (without it nothing is executed: dry-run).
    #[arg(long)]
    apply: bool,
    /// With --apply, on a terminal: ask y/N before each action.
    #[arg(long, requires = "apply")]
    approve: bool,
    /// Actions admitted per round.
    #[arg(long, default_value_t = 4)]
    max_actions_per_round: usize,
    /// Actions not yet confirmed, across rounds.
    #[arg(long, default_value_t = 4)]
    max_in_flight: usize,
    /// Time after an action on a region before another.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    region_cooldown: Duration,
    /// The audit log (default: $XDG_STATE_HOME/operator/audit/<SUBJECT>.jsonl).
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

use super::sandbox_args::parse_duration;

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err("the interval must be at least 100ms".into());
    }
    Ok(d)
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE, e.g. tolerance=1.1")?;
    if k.is_empty() {
        return Err("the parameter name is empty".into());
    }
    Ok((k.to_string(), v.to_string()))
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    if args.approve && !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(UsageError("--approve asks on a terminal; run it in one, or drop --approve".into()).into());
    }
    let subject: Subject = ctx.subjects.find(&args.subject)?;
    let manifest = args.sandbox.manifest(Some(subject.manifest.clone()))?;
    let subject_policy = args.sandbox.policy(manifest.as_ref());
    let Some(section) = &subject.manifest.subject else {
        return Err(LookupError::NoComponent { name: subject.name.clone(), path: subject.manifest.path.clone() }.into());
    };
    let runtime = ctx.runtime()?;
    let adapter_file = ctx.components.resolve_in(&section.component, &subject.dir)?;
    let adapter = sandbox_args::load(&runtime, &adapter_file)?;
    let policy_file = ctx.components.resolve(&args.policy)?;
    let policy_component = sandbox_args::load(&runtime, &policy_file)?;
    // A policy gets no grants: the subject's limits, no endpoints.
    let policy_sandbox = operator_host::Policy { limits: subject_policy.limits.clone(), ..Default::default() };

    let audit_path = match args.audit.clone().or_else(|| AuditLog::default_path(&subject.name)) {
        Some(p) => p,
        None => return Err(UsageError("no home folder for the audit log; pass --audit FILE".into()).into()),
    };
    let policy = PolicyClient::new(&runtime, &policy_component, policy_sandbox)?;
    check_params(&policy, &policy_file.name, &args.params, &Observation::default(), "").await?;
    // Locked before it is read: another loop cannot act between the replay and this one's start.
    let audit = AuditLog::open(&audit_path)?;
    let replay = Replay::read(&audit_path)?;
    if replay.skipped > 0 {
        eprintln!("warning: {} unreadable line(s) in {} were skipped", replay.skipped, audit_path.display());
    }
    let recent: Vec<Outcome> = replay
        .events
        .iter()
        .rev()
        .filter_map(|e| match e {
            AuditEvent::Outcome { action, applied, detail, time_ms, .. } => Some(Outcome {
                action: *action,
                kind: if *applied { OutcomeKind::Applied } else { OutcomeKind::Failed },
                detail: detail.clone(),
                at_ms: *time_ms,
            }),
            _ => None,
        })
        .take(operator_host::control::RECENT)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let first_round = replay.events.iter().map(AuditEvent::round).max().unwrap_or(0).saturating_add(1);
    let state = replay.gate_state(operator_host::control::now_ms());
    let mut control = ControlLoop {
        subject_name: subject.name.clone(),
        policy_name: policy_file.name.clone(),
        subject: SubjectClient::new(&runtime, &adapter, subject_policy)?,
        policy,
        params: args.params.clone(),
        limits: GateLimits {
            max_actions_per_round: args.max_actions_per_round,
            max_in_flight: args.max_in_flight,
            region_cooldown: args.region_cooldown,
        },
        state,
        recent,
        audit,
    };
    if ctx.output == Output::Table {
        eprintln!(
            "{} {} with {} every {}; audit log {}",
            if args.apply { "operating" } else { "dry run on" },
            escape(&subject.name),
            escape(&policy_file.name),
            HumanDuration(args.interval),
            audit_path.display()
        );
    }

    // Ctrl-C from now on: the action under way finishes (its result is recorded), no other starts.
    let stop = Arc::new(AtomicBool::new(false));
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let notify = Arc::new(tokio::sync::Notify::new());
    tokio::spawn({
        let (stop, notify) = (stop.clone(), notify.clone());
        async move {
            signal.recv().await;
            stop.store(true, Ordering::SeqCst);
            notify.notify_one();
        }
    });
    let mut approve = |p: &Proposal| ask(p);
    let mut no_ask = |_: &Proposal| true;
    let mut round = first_round;
    let mut done = 0u64;
    while args.rounds.is_none_or(|n| done < n) && !stop.load(Ordering::SeqCst) {
        let report =
            control.round(round, args.apply, if args.approve { &mut approve } else { &mut no_ask }, &stop).await?;
        render_round(ctx.output, &report)?;
        done += 1;
        round = round.saturating_add(1);
        if args.rounds.is_some_and(|n| done >= n) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = notify.notified() => {}
        }
    }
    if stop.load(Ordering::SeqCst) && ctx.output == Output::Table {
        eprintln!("interrupted after round {}", round.saturating_sub(1));
    }
    Ok(())
}

/// Refuses, before the first round (or the first case of `operator check`), a parameter the
/// policy does not take or whose value it rejects when asked on `probe`, instead of failing
/// every round the same way. `hint` follows the policy's own reason.
pub(crate) async fn check_params(
    policy: &PolicyClient<'_>,
    name: &str,
    params: &[(String, String)],
    probe: &Observation,
    hint: &str,
) -> anyhow::Result<()> {
    let info = policy.describe().await?.value;
    let known: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
    if let Some((unknown, _)) = params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        let takes = if known.is_empty() { "no parameters".to_string() } else { known.join(", ") };
        return Err(UsageError(format!(
            "policy {} has no parameter `{}`; it takes {takes}",
            escape(name),
            escape(unknown)
        ))
        .into());
    }
    // A policy that fails here fails its rounds too, where the loop reports it and goes on.
    if let Ok(o) = policy.decide(probe, params).await
        && let Err(PolicyError::InvalidParam(why)) = o.value
    {
        return Err(UsageError(format!("policy {}: {}{hint}", escape(name), escape(&why))).into());
    }
    Ok(())
}

/// Asks y/N on the terminal before an action.
fn ask(p: &Proposal) -> bool {
    let Action::TransferLeader { region_id, to_store_id } = p.action;
    eprint!("move the leader of region {region_id} to store {to_store_id} ({})? [y/N] ", escape(&p.reason));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn render_round(output: Output, r: &RoundReport) -> anyhow::Result<()> {
    if output == Output::Json {
        return render::json_line(r);
    }
    let mode = if r.dry_run { "dry run" } else { "apply" };
    println!("round {} ({mode})", r.round);
    if let Some(e) = &r.error {
        println!("  error: {}", escape_lines(e).replace('\n', "\n         "));
        return Ok(());
    }
    if r.dropped_proposals > 0 {
        println!("  {} more proposals were dropped unconsidered (at most 256 a round)", r.dropped_proposals);
    }
    let flows: Vec<String> = r
        .stores
        .iter()
        .map(|s| format!("{}:{}", s.id, render::rate(Some(s.leader_write_bytes_per_second), "B/s")))
        .collect();
    println!("  leader write flow: {}", flows.join("  "));
    if r.actions.is_empty() {
        println!("  no proposals");
        return Ok(());
    }
    let mut t = Table::new(&["  REGION", "TO", "VERDICT", "REASON / DETAIL"]);
    for a in &r.actions {
        let why = if a.detail.is_empty() { a.reason.clone() } else { format!("{} — {}", a.reason, a.detail) };
        t.row(vec![format!("  {}", a.region_id), a.to_store_id.to_string(), a.verdict.clone(), why]);
    }
    t.print();
    Ok(())
}
