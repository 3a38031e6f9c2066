//! The named errors a component call can end with.
//!
//! Every way a sandboxed call can fail maps to one stable name (`denied`, `deadline-exceeded`,
//! `memory-exceeded`, `trap`, `output-too-large`, `contract-mismatch`, `invalid-component`), so
//! that people and scripts can tell a slow cluster from a runaway component from a missing
//! grant. Each carries its context as data; `Display` is the one-line message the CLI prints.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{ByteSize, format_duration};

/// Which time budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// Time executing wasm (`--deadline`).
    Guest,
    /// Time waiting in host calls such as HTTP (`--host-time`).
    Host,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Budget::Guest => "guest",
            Budget::Host => "host",
        })
    }
}

/// Why a call into a component failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The component tried something its grants do not allow, and the host stopped the call.
    #[error("denied: {reason}")]
    Denied { reason: String, hint: String },

    /// A time budget ran out.
    #[error("deadline-exceeded: {}", deadline_message(*budget, *limit, *used))]
    DeadlineExceeded { budget: Budget, limit: Duration, used: Duration },

    /// The component asked for more linear memory than allowed.
    #[error(
        "memory-exceeded: the component asked for {} of linear memory; the limit is {} (raise it with --memory)",
        ByteSize(*requested),
        ByteSize(*limit)
    )]
    MemoryExceeded { limit: u64, requested: u64 },

    /// The component trapped (a panic, an abort, a wasm fault).
    #[error("trap: {message}{}", stderr_suffix(stderr_tail))]
    Trap {
        message: String,
        /// The last lines the component wrote to stderr (a Rust panic message lands here).
        stderr_tail: String,
        /// The wasm backtrace, when one was captured.
        backtrace: Option<String>,
    },

    /// The value the call returned is larger than the output limit.
    #[error("output-too-large: the result is {} long; the limit is {} (raise it with --output-limit)", ByteSize(*size), ByteSize(*limit))]
    OutputTooLarge { limit: u64, size: u64 },

    /// The component does not implement what the caller needs.
    #[error("contract-mismatch: {detail}")]
    ContractMismatch { detail: String },

    /// The bytes are not a usable component.
    #[error("invalid-component: {detail}")]
    InvalidComponent { detail: String },
}

impl CallError {
    /// The stable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Denied { .. } => "denied",
            CallError::DeadlineExceeded { .. } => "deadline-exceeded",
            CallError::MemoryExceeded { .. } => "memory-exceeded",
            CallError::Trap { .. } => "trap",
            CallError::OutputTooLarge { .. } => "output-too-large",
            CallError::ContractMismatch { .. } => "contract-mismatch",
            CallError::InvalidComponent { .. } => "invalid-component",
        }
    }

    /// Advice for the operator, when there is any beyond the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            CallError::Denied { hint, .. } => Some(hint.clone()),
            CallError::DeadlineExceeded { budget: Budget::Guest, .. } => Some(
                "the component kept computing past its deadline; raise it with --deadline if the work is legitimate"
                    .into(),
            ),
            CallError::DeadlineExceeded { budget: Budget::Host, .. } => Some(
                "the component waited too long on host calls (a slow or silent server); raise it with --host-time"
                    .into(),
            ),
            CallError::Trap { backtrace: Some(_), .. } => Some("run with -v to see the wasm backtrace".into()),
            _ => None,
        }
    }
}

fn deadline_message(budget: Budget, limit: Duration, used: Duration) -> String {
    match budget {
        Budget::Guest => format!(
            "the component ran for {} of guest time; the deadline is {}",
            format_duration(used),
            format_duration(limit)
        ),
        Budget::Host => format!(
            "the component spent {} waiting in host calls; the host-time budget is {}",
            format_duration(used),
            format_duration(limit)
        ),
    }
}

fn stderr_suffix(tail: &str) -> String {
    let tail = tail.trim_matches(|c| c == '\n' || c == '\r').trim_end();
    if tail.trim().is_empty() { String::new() } else { format!("\ncomponent stderr (last lines):\n{}", indent(tail)) }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// Why a component could not be found, read or prepared.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no component named `{name}`; available: {available}{hint}")]
    NotFound {
        name: String,
        available: String,
        /// How to get it, when the source tree knows (empty otherwise).
        hint: String,
    },
    #[error("cannot read component {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest names a component path outside its subject folder.
    #[error(
        "{path} resolves to {real}, outside the subject folder {folder}; a manifest names components by name or inside its folder"
    )]
    Outside { path: PathBuf, real: PathBuf, folder: PathBuf },
    #[error("component `{name}` is {size} bytes, above the {limit}-byte limit")]
    TooBig { name: String, size: u64, limit: u64 },
    #[error("compiling component `{name}` took longer than {}; it may be hostile or huge", format_duration(*limit))]
    CompileTimeout { name: String, limit: Duration },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Errors that abort a call from inside the host (a host function, the epoch callback or the
/// memory limiter). They travel through wasmtime as the trap's error and are turned back into
/// a [`CallError`] when the call returns.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HostAbort {
    #[error("guest deadline exceeded")]
    GuestDeadline,
    #[error("host-time budget exceeded")]
    HostBudget,
    #[error("memory limit exceeded: {requested} > {limit}")]
    Memory { limit: u64, requested: u64 },
    #[error("called `{0}`, which the host does not provide")]
    UnknownImport(String),
}
