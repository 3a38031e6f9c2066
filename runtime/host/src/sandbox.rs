//! The sandbox of one call: its store data ([`CallState`]: WASI denying everything, each
//! capability's own state, the memory limiter), what it may do ([`Policy`]), what it reports
//! ([`CallReport`]), and the translation of whatever went wrong into a named [`CallError`].
//! [`crate::call`] runs a call in it.
//!
//! Time is split in two budgets, measured by the call's [`CallClock`]:
//! - **guest time**: wall-clock time not spent inside host calls. The epoch callback checks it
//!   on every tick while wasm runs, so a runaway loop stops within deadline + one tick. A
//!   watchdog covers the one case epochs cannot: a guest blocked in a WASI call (a sleep).
//! - **host time**: time spent waiting in host calls (HTTP...). Each host call is wrapped in a
//!   timeout of the remaining budget ([`CallContext::wait`]), so a server that never answers
//!   cannot hang the call.

use std::sync::Arc;
use std::time::Duration;

use url::Url;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Trap, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capability::context::{CallClock, CallContext};
pub use crate::capability::context::{Denial, MAX_DENIALS};
use crate::capability::docker::{DockerHost, ScopedDocker};
use crate::capability::http::{HttpGrants, HttpHost, HttpTransport};
use crate::capability::log::ComponentLog;
use crate::capability::progress::{ProgressHandle, ProgressHost};
use crate::capability::stdio::{CappedOutput, Captured};
use crate::error::{Budget, CallError, HostAbort};
use crate::limits::{LimitOverrides, Limits};
use crate::manifest::Manifest;

/// How often the engine's epoch advances: the granularity of guest deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What one call may do: its grants and its limits, and where its progress goes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub http: HttpGrants,
    /// Docker scoped to one project; `None` denies every Docker operation.
    pub docker: Option<Arc<ScopedDocker>>,
    /// Swarm scoped to one stack; `None` denies every Swarm operation.
    pub swarm: Option<Arc<crate::capability::swarm::ScopedSwarm>>,
    pub limits: Limits,
    pub progress: ProgressHandle,
}

/// What the person running a command changes over a manifest: endpoint URLs and limits.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Endpoints pointed elsewhere (a name the manifest lacks is granted GET and HEAD only).
    pub endpoints: Vec<(String, Url)>,
    pub limits: LimitOverrides,
}

impl Policy {
    /// The HTTP grants and limits a manifest gives (none without one), then the overrides.
    pub fn from_manifest(manifest: Option<&Manifest>, overrides: &Overrides) -> Policy {
        let mut http = match manifest {
            Some(m) => HttpGrants::new(m.endpoints.clone(), Some(m.path.clone())),
            None => HttpGrants::default(),
        };
        for (name, url) in &overrides.endpoints {
            http.override_url(name, url.clone());
        }
        let mut limits = Limits::default();
        if let Some(m) = manifest {
            limits = limits.apply(&m.limits);
        }
        Policy { http, limits: limits.apply(&overrides.limits), ..Policy::default() }
    }
}

/// The store data of one call: WASI (denying everything), each capability's state beside the
/// shared call context, and the memory limiter.
pub struct CallState {
    wasi: WasiCtx,
    /// WASI's resources (the capabilities keep their own).
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) context: Arc<CallContext>,
    pub(crate) http: HttpHost,
    pub(crate) docker: DockerHost,
    pub(crate) log: ComponentLog,
    pub(crate) progress: ProgressHost,
    stdout: CappedOutput,
    stderr: CappedOutput,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// `operator:core/sandbox` only defines types.
impl crate::bindings::sandbox::Host for CallState {}

impl CallState {
    /// The state of a call into `component` under `policy`, sending HTTP through `transport`.
    pub(crate) fn new(component: &str, policy: &Policy, transport: Arc<dyn HttpTransport>) -> Self {
        let limits = &policy.limits;
        let context = CallContext::new(component, limits.deadline, limits.host_time);
        let stdout = CappedOutput::new(limits.stdio);
        let stderr = CappedOutput::new(limits.stdio);
        // No preopened directories, no environment, no arguments, no sockets (denied by default
        // in wasmtime-wasi 48), stdin closed; stdout and stderr captured.
        let wasi = WasiCtx::builder().stdout(stdout.clone()).stderr(stderr.clone()).build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory),
            http: HttpHost::new(policy.http.clone(), transport, limits.response_size, context.clone()),
            docker: DockerHost::new(policy.docker.clone(), context.clone()).with_swarm(policy.swarm.clone()),
            log: ComponentLog::new(component),
            progress: ProgressHost::new(policy.progress.clone()),
            context,
            stdout,
            stderr,
        }
    }

    /// The call's clock.
    pub(crate) fn clock(&self) -> &CallClock {
        self.context.clock()
    }

    /// What the call cost and what it left besides its result.
    pub(crate) fn report(&mut self) -> CallReport {
        let (denials, denials_dropped) = self.context.take_denials();
        CallReport {
            guest_time: self.clock().guest_elapsed(),
            host_time: self.clock().host_used(),
            peak_memory: self.limiter.peak,
            stdout: self.stdout.captured(),
            stderr: self.stderr.captured(),
            denials,
            denials_dropped,
            logs_dropped: self.log.dropped(),
            progress_dropped: self.progress.dropped(),
        }
    }

    /// Names what a call failed with.
    pub(crate) fn classify(&self, err: wasmtime::Error, limits: &Limits) -> CallError {
        classify(err, self.clock(), limits, &self.stderr)
    }
}

/// What a successful call returned, and what it cost.
#[derive(Debug)]
pub struct CallOutcome<R> {
    pub value: R,
    pub report: CallReport,
}

/// Measurements and side output of a call (successful or not).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallReport {
    pub guest_time: Duration,
    pub host_time: Duration,
    pub peak_memory: u64,
    #[serde(skip)]
    pub stdout: Captured,
    #[serde(skip)]
    pub stderr: Captured,
    pub denials: Vec<Denial>,
    /// Refusals past [`MAX_DENIALS`], counted only.
    pub denials_dropped: u64,
    pub logs_dropped: u64,
    /// Progress reports not shown (past the per-call task cap or rate).
    pub progress_dropped: u64,
}

/// A failed call with what it had done before failing.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FailedCall {
    pub error: CallError,
    pub report: Box<CallReport>,
}

/// How much later than its deadline the watchdog stops a guest blocked outside wasm.
const WATCHDOG_GRACE: Duration = Duration::from_millis(50);

/// Turns whatever a call failed with into a named error.
fn classify(err: wasmtime::Error, clock: &CallClock, limits: &Limits, stderr: &CappedOutput) -> CallError {
    if let Some(abort) = err.downcast_ref::<HostAbort>() {
        return match abort {
            HostAbort::GuestDeadline => CallError::DeadlineExceeded {
                budget: Budget::Guest,
                limit: limits.deadline,
                used: clock.guest_elapsed(),
            },
            HostAbort::HostBudget => {
                CallError::DeadlineExceeded { budget: Budget::Host, limit: limits.host_time, used: clock.host_used() }
            }
            HostAbort::Memory { limit, requested } => {
                CallError::MemoryExceeded { limit: *limit, requested: *requested }
            }
            HostAbort::UnknownImport(import) => CallError::Denied {
                reason: format!("the component called `{import}`, which this host does not provide"),
                hint: format!(
                    "the sandbox provides {}; `operator inspect` lists what the component imports",
                    crate::contract::served()
                ),
            },
        };
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(backtrace_text);
    let stderr_tail = stderr.tail_lines(20);
    let message = if let Some(trap) = err.downcast_ref::<Trap>() {
        match (trap, recursion(&err)) {
            (Trap::MemoryOutOfBounds, Some((depth, function))) => format!(
                "stack overflow: the component's stack in linear memory grew past its end ({} called itself {depth} \
                 times or more before an out-of-bounds access)",
                crate::text::escape(&function)
            ),
            _ => describe_trap(*trap),
        }
    } else if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("the component called exit({})", exit.0)
    } else {
        err.root_cause().to_string()
    };
    CallError::Trap { message, stderr_tail, backtrace }
}

/// Frames of one function on top of the stack that make an out-of-bounds access a stack
/// overflow. Compilers for wasm32 (Rust, C, componentize-py's CPython) keep a second stack in
/// linear memory, growing down from its bottom; overflowing it wraps the stack pointer and the
/// next store faults like any out-of-bounds access. wasmtime does not say at which address (its
/// fault context is absent when bounds are checked explicitly), so the backtrace tells.
pub(crate) const RECURSION_FRAMES: usize = 64;

/// The depth and name of a function that called itself at least [`RECURSION_FRAMES`] times at
/// the top of the trap's backtrace.
fn recursion(err: &wasmtime::Error) -> Option<(usize, String)> {
    let frames = err.downcast_ref::<WasmBacktrace>()?.frames();
    let top = frames.first()?;
    let depth = frames.iter().take_while(|f| f.func_index() == top.func_index()).count();
    (depth >= RECURSION_FRAMES).then(|| (depth, function_name(top)))
}

/// Longest function name shown, in characters: the component's name section chooses it.
const MAX_FUNCTION_NAME: usize = 128;

/// A frame's function, demangled (Rust), cut to [`MAX_FUNCTION_NAME`] characters.
fn function_name(frame: &wasmtime::FrameInfo) -> String {
    let Some(raw) = frame.func_name() else { return format!("function {}", frame.func_index()) };
    // Demangling only ever looks at a bounded prefix: a name is cut anyway.
    let raw = &raw[..raw.floor_char_boundary(4 * MAX_FUNCTION_NAME)];
    let name = format!("{:#}", rustc_demangle::demangle(raw));
    match name.char_indices().nth(MAX_FUNCTION_NAME) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name,
    }
}

/// The backtrace as lines `N: 0xOFFSET - module!function`, names cut (wasmtime's own text
/// would carry each name whole, up to megabytes).
fn backtrace_text(bt: &WasmBacktrace) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (i, f) in bt.frames().iter().enumerate() {
        let module = f.module().name().unwrap_or("<unknown>");
        let module = crate::text::escape(&module[..module.floor_char_boundary(MAX_FUNCTION_NAME)]);
        let offset = f.module_offset().map(|o| format!("{o:#x}")).unwrap_or_else(|| "?".into());
        // One line per frame, whatever the names hold.
        let _ = writeln!(out, "{i:>4}: {offset:>8} - {module}!{}", crate::text::escape(&function_name(f)));
    }
    out
}

fn describe_trap(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "stack overflow: the component recursed past the wasm stack limit".into(),
        Trap::UnreachableCodeReached => "wasm `unreachable` executed (the component panicked or aborted)".into(),
        Trap::MemoryOutOfBounds => "out-of-bounds memory access".into(),
        Trap::IntegerDivisionByZero => "integer division by zero".into(),
        Trap::IndirectCallToNull | Trap::BadSignature => "invalid indirect call".into(),
        Trap::CannotEnterComponent => "the component instance cannot be entered again after a trap".into(),
        other => other.to_string(),
    }
}

/// Stops a call whose budgets ran out where neither epochs nor a host call's own timeout can
/// see it: a guest blocked in a WASI call (a sleep) past the host-time budget.
pub(crate) async fn watchdog(clock: &CallClock) -> HostAbort {
    loop {
        tokio::time::sleep(EPOCH_TICK * 5).await;
        if clock.in_host() && clock.host_used() > clock.host_budget + WATCHDOG_GRACE {
            return HostAbort::HostBudget;
        }
        if !clock.in_host() && clock.guest_elapsed() > clock.deadline + WATCHDOG_GRACE {
            return HostAbort::GuestDeadline;
        }
    }
}

/// Bytes a table element is counted as (a function reference is one pointer).
const TABLE_ELEMENT_BYTES: u64 = 8;

/// Caps the memory of an instance, linear memories and tables together, and records its peak.
/// Tables count because without the pooling allocator nothing else bounds them (1,000 tables
/// of 1,000,000 elements would be 8 GB).
pub(crate) struct MemoryLimiter {
    limit: u64,
    total: u64,
    peak: u64,
}

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        MemoryLimiter { limit, total: 0, peak: 0 }
    }
}

impl MemoryLimiter {
    /// Accounts a growth from `current` to `desired` bytes, or aborts past the limit.
    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let after = (self.total + desired).saturating_sub(current);
        if after > self.limit {
            return Err(HostAbort::Memory { limit: self.limit, requested: after }.into());
        }
        self.total = after;
        self.peak = self.peak.max(after);
        Ok(true)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > 1_000_000 {
            return Ok(false);
        }
        self.grow(current as u64 * TABLE_ELEMENT_BYTES, desired as u64 * TABLE_ELEMENT_BYTES)
    }

    fn instances(&self) -> usize {
        1_000
    }

    fn tables(&self) -> usize {
        1_000
    }

    fn memories(&self) -> usize {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_past_the_cap_aborts_with_the_requested_size() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 512 << 10, None).expect("fits"));
        let e = l.memory_growing(512 << 10, 2 << 20, None).expect_err("too big");
        let abort = e.downcast_ref::<HostAbort>().expect("host abort");
        assert!(matches!(abort, HostAbort::Memory { limit, requested } if *limit == 1 << 20 && *requested == 2 << 20));
        assert_eq!(l.peak, 512 << 10);
    }

    #[test]
    fn tables_count_against_the_memory_limit() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 512 << 10, None).expect("fits"));
        // 60,000 elements are 480 KiB: still under 1 MiB with the memory.
        assert!(l.table_growing(0, 60_000, None).expect("fits"));
        let e = l.table_growing(60_000, 100_000, None).expect_err("past the limit");
        assert!(matches!(e.downcast_ref::<HostAbort>(), Some(HostAbort::Memory { .. })));
        // Past the element cap a table simply does not grow.
        assert!(!l.table_growing(0, 2_000_000, None).expect("refused"));
    }
}
