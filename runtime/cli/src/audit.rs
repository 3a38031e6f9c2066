//! `operator audit <SUBJECT>`: the control loop's audit log, as a table (one row per round,
//! proposal, start and outcome) or, with `--output json`, one recorded event per line as written.

use std::path::PathBuf;

use operator_host::audit::{AuditEvent, AuditLog, Replay};
use operator_host::gate::Action;

use super::render::{self, Table};
use super::{Context, Output, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subject whose loop wrote the log, e.g. `tikv`.
    subject: String,
    /// The audit log (default: the one `operator run <SUBJECT>` writes).
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// Only the events of the last N rounds.
    #[arg(long, value_name = "N")]
    last: Option<u64>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let path = match args.audit {
        Some(p) => p,
        None => {
            let subject = ctx.subjects.find(&args.subject)?;
            AuditLog::default_path(&subject.name)
                .ok_or_else(|| UsageError("no home folder for the audit log; pass --audit FILE".into()))?
        }
    };
    if !path.exists() {
        return Err(UsageError(format!(
            "no audit log at {}: `operator run {}` writes it (or pass --audit FILE)",
            path.display(),
            args.subject
        ))
        .into());
    }
    let replay = Replay::read(&path)?;
    if replay.skipped > 0 {
        eprintln!("warning: {} unreadable line(s) in {} were skipped", replay.skipped, path.display());
    }
    let rounds = replay.events.iter().map(AuditEvent::round);
    let first = match args.last {
        Some(n) => rounds.max().unwrap_or(0).saturating_sub(n.saturating_sub(1)).max(1),
        None => 0,
    };
    let events = replay.events.iter().filter(|e| args.last != Some(0) && e.round() >= first);
    if ctx.output == Output::Json {
        for e in events {
            render::json_line(e)?;
        }
        return Ok(());
    }
    let mut t = Table::new(&["TIME (UTC)", "ROUND", "EVENT", "REGION", "TO", "RESULT", "DETAIL"]);
    for e in events {
        let at = |time_ms: u64| Some((time_ms, e.round()));
        match e {
            AuditEvent::Round { time_ms, policy, dry_run, stores, proposals, .. } => {
                let flows: Vec<String> = stores
                    .iter()
                    .map(|s| {
                        let state = if s.state == "up" { String::new() } else { format!(" ({})", s.state) };
                        format!("{}:{}{state}", s.id, render::rate(Some(s.leader_write_bytes_per_second), "B/s"))
                    })
                    .collect();
                let mode = if *dry_run { "dry run" } else { "apply" };
                let summary = format!("{} proposal(s), {mode}", proposals.len());
                let detail = format!("{policy}; leader write flow {}", flows.join(" "));
                t.row(row(at(*time_ms), "round", None, summary, detail));
                for p in proposals {
                    let why =
                        if p.detail.is_empty() { p.reason.clone() } else { format!("{} — {}", p.reason, p.detail) };
                    t.row(row(None, "proposal", Some(p.action), p.verdict.clone(), why));
                }
            }
            AuditEvent::Start { time_ms, action, .. } => {
                t.row(row(at(*time_ms), "start", Some(*action), String::new(), "transfer-leader sent".into()));
            }
            AuditEvent::Outcome { time_ms, action, applied, detail, .. } => {
                let result = if *applied { "applied" } else { "failed" };
                t.row(row(at(*time_ms), "outcome", Some(*action), result.into(), detail.clone()));
            }
            AuditEvent::Skipped { time_ms, action, detail, .. } => {
                t.row(row(at(*time_ms), "skipped", Some(*action), "not executed".into(), detail.clone()));
            }
            AuditEvent::RoundFailed { time_ms, policy, error, .. } => {
                t.row(row(at(*time_ms), "round", None, "error".into(), format!("{policy}; {error}")));
            }
        }
    }
    t.print();
    Ok(())
}

/// One table row: `at` is (time, round), blank under a round's own row.
fn row(at: Option<(u64, u64)>, event: &str, action: Option<Action>, result: String, detail: String) -> Vec<String> {
    let (time, round) = at.map(|(t, r)| (render::utc(t), r.to_string())).unwrap_or_default();
    let (region, to) = match action {
        Some(Action::TransferLeader { region_id, to_store_id }) => (region_id.to_string(), to_store_id.to_string()),
        None => Default::default(),
    };
    vec![time, round, event.into(), region, to, result, detail]
}
