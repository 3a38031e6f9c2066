//! One supervised call into a component: a fresh store and instance, its budgets, and the
//! translation of whatever went wrong into a named [`CallError`].
//!
//! Every call gets a new `Store` (and so a new instance, ~20 µs from the `InstancePre`), which
//! is thrown away afterwards: a trapped instance is never entered again, and no state leaks
//! from one call to the next.
//!
//! Time is split in two budgets, measured by a per-call [`CallClock`]:
//! - **guest time**: wall-clock time not spent inside host calls. The epoch callback checks it
//!   on every tick while wasm runs, so a runaway loop stops within deadline + one tick. A
//!   watchdog covers the one case epochs cannot: a guest blocked in a WASI call (a sleep).
//! - **host time**: time spent waiting in host calls (HTTP...). Each host call is wrapped in a
//!   timeout of the remaining budget, so a server that never answers cannot hang the call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::engine::{EPOCH_TICK, LoadedComponent, Runtime};
use crate::error::{Budget, CallError, HostAbort};
use crate::host::docker::ScopedDocker;
use crate::host::docker::streams::StreamSlots;
use crate::host::http::{HttpGrants, HttpTransport};
use crate::host::log::ComponentLog;
use crate::host::progress::{ProgressGate, ProgressHandle};
use crate::host::stdio::{CappedOutput, Captured};
use crate::limits::Limits;

/// What one call may do: its grants and its limits, and where its progress goes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub http: HttpGrants,
    /// Docker scoped to one project; `None` denies every Docker operation.
    pub docker: Option<Arc<ScopedDocker>>,
    pub limits: Limits,
    pub progress: ProgressHandle,
}

/// The store data of one call: WASI (denying everything), the capabilities and the budgets.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    pub(crate) component: String,
    pub(crate) http: HttpGrants,
    pub(crate) transport: Arc<dyn HttpTransport>,
    pub(crate) limits: Limits,
    pub(crate) clock: Arc<CallClock>,
    pub(crate) log: ComponentLog,
    pub(crate) denials: Denials,
    pub(crate) docker: Option<Arc<ScopedDocker>>,
    /// The call's open Docker streams, against their cap.
    pub(crate) docker_streams: StreamSlots,
    pub(crate) progress: ProgressHandle,
    pub(crate) progress_gate: ProgressGate,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Refusals a call keeps for its report; later ones are counted.
pub const MAX_DENIALS: usize = 32;
/// Longest reason or hint kept, in bytes.
const MAX_DENIAL_TEXT: usize = 1024;

/// The refusals of one call, for its report: bounded, since a component can make any number.
#[derive(Debug, Default)]
pub struct Denials {
    kept: Vec<Denial>,
    dropped: u64,
}

impl Denials {
    /// Keeps a refusal (cut to [`MAX_DENIAL_TEXT`]), or counts it past [`MAX_DENIALS`].
    pub fn record(&mut self, capability: &str, reason: &str, hint: &str) {
        if self.kept.len() >= MAX_DENIALS {
            self.dropped += 1;
            return;
        }
        let cut = |t: &str| t[..t.floor_char_boundary(MAX_DENIAL_TEXT)].to_string();
        self.kept.push(Denial { capability: capability.into(), reason: cut(reason), hint: cut(hint) });
    }
}

impl HostState {
    /// The resource table (host resources handed to the guest).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Records a refusal for the call's report.
    pub(crate) fn record_denial(&mut self, capability: &str, reason: &str, hint: &str) {
        self.denials.record(capability, reason, hint);
    }
}

/// A request the grants refused during a call, kept so the CLI can show the hint even when
/// the component swallows the error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    pub capability: String,
    pub reason: String,
    pub hint: String,
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

/// The body of a call: instantiate and invoke, given the store.
pub type CallBody<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// How much later than its deadline the watchdog stops a guest blocked outside wasm.
const WATCHDOG_GRACE: Duration = Duration::from_millis(50);

impl Runtime {
    /// Runs `body` against a fresh instance of `component` under `policy`.
    ///
    /// `body` receives the store and the component's `InstancePre`; it instantiates (typed or
    /// dynamic) and calls. Whatever it returns, the store is dropped afterwards.
    pub async fn run<R, F>(
        &self,
        component: &LoadedComponent,
        policy: &Policy,
        body: F,
    ) -> Result<CallOutcome<R>, FailedCall>
    where
        R: Send,
        F: for<'a> FnOnce(&'a mut Store<HostState>, &'a wasmtime::component::InstancePre<HostState>) -> CallBody<'a, R>,
    {
        let limits = policy.limits.clone();
        let clock = Arc::new(CallClock::new(limits.deadline, limits.host_time));
        let stdout = CappedOutput::new(limits.stdio);
        let stderr = CappedOutput::new(limits.stdio);
        // No preopened directories, no environment, no arguments, no sockets (denied by default
        // in wasmtime-wasi 48), stdin closed; stdout and stderr captured.
        let wasi = WasiCtx::builder().stdout(stdout.clone()).stderr(stderr.clone()).build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory),
            component: component.name.clone(),
            http: policy.http.clone(),
            transport: self.transport.clone(),
            limits: limits.clone(),
            clock: clock.clone(),
            log: ComponentLog::new(&component.name),
            denials: Denials::default(),
            docker: policy.docker.clone(),
            docker_streams: StreamSlots::default(),
            progress: policy.progress.clone(),
            progress_gate: ProgressGate::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        let tick_clock = clock.clone();
        let hook_clock = clock.clone();
        store.call_hook(move |_, hook| {
            hook_clock.transition(hook);
            Ok(())
        });
        store.epoch_deadline_callback(move |_| {
            if tick_clock.guest_elapsed() >= tick_clock.deadline {
                Err(HostAbort::GuestDeadline.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        clock.start();
        let result = {
            let call = body(&mut store, &component.pre);
            tokio::select! {
                r = call => r,
                abort = watchdog(&clock) => Err(abort.into()),
            }
        };

        let state = store.data_mut();
        let report = CallReport {
            guest_time: clock.guest_elapsed(),
            host_time: clock.host_used(),
            peak_memory: state.limiter.peak,
            stdout: stdout.captured(),
            stderr: stderr.captured(),
            denials_dropped: state.denials.dropped,
            denials: std::mem::take(&mut state.denials.kept),
            logs_dropped: state.log.dropped(),
            progress_dropped: state.progress_gate.dropped(),
        };
        match result {
            Ok(value) => Ok(CallOutcome { value, report }),
            Err(e) => Err(FailedCall { error: classify(e, &clock, &limits, &stderr), report: Box::new(report) }),
        }
    }
}

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
                hint: "the sandbox provides operator:core 0.1 capabilities and WASI 0.2 without files, environment \
                       or sockets; `operator inspect` lists what the component imports"
                    .into(),
            },
        };
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|b| b.to_string());
    let stderr_tail = stderr.tail_lines(20);
    let message = if let Some(trap) = err.downcast_ref::<Trap>() {
        describe_trap(*trap)
    } else if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("the component called exit({})", exit.0)
    } else {
        err.root_cause().to_string()
    };
    CallError::Trap { message, stderr_tail, backtrace }
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
async fn watchdog(clock: &CallClock) -> HostAbort {
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

/// Splits a call's wall-clock time into guest time and host time.
///
/// Fed by the store's call hook, so every host call counts as host time: the capabilities of
/// this crate and WASI alike (a guest sleeping in `wasi:io/poll` is waiting, not computing).
#[derive(Debug)]
pub struct CallClock {
    pub deadline: Duration,
    pub host_budget: Duration,
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    start: Instant,
    host_total: Duration,
    /// Set while the innermost frame is host code.
    host_since: Option<Instant>,
    /// For each entry into wasm, whether it was made from inside a host call (the host
    /// calling the guest's allocator while lowering a result).
    wasm_entries: Vec<bool>,
}

/// How a host call's wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostWait {
    /// The request's own timeout passed; the guest gets a typed timeout error.
    Timeout(Duration),
    /// The call's host-time budget is spent; the call is stopped.
    BudgetExhausted,
}

impl CallClock {
    /// A clock for a call with these budgets (started by [`CallClock::start`]).
    pub fn new(deadline: Duration, host_budget: Duration) -> Self {
        let state = ClockState {
            start: Instant::now(),
            host_total: Duration::ZERO,
            host_since: None,
            wasm_entries: Vec::new(),
        };
        CallClock { deadline, host_budget, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or restarts) counting.
    pub fn start(&self) {
        let mut s = self.lock();
        *s = ClockState {
            start: Instant::now(),
            host_total: Duration::ZERO,
            host_since: None,
            wasm_entries: Vec::new(),
        };
    }

    /// Records a transition between host and guest code.
    pub fn transition(&self, hook: CallHook) {
        let mut s = self.lock();
        let now = Instant::now();
        let bank = |s: &mut ClockState| {
            if let Some(since) = s.host_since.take() {
                s.host_total += now - since;
            }
        };
        match hook {
            CallHook::CallingHost => {
                if s.host_since.is_none() {
                    s.host_since = Some(now);
                }
            }
            CallHook::ReturningFromHost => bank(&mut s),
            CallHook::CallingWasm => {
                let from_host = s.host_since.is_some();
                bank(&mut s);
                s.wasm_entries.push(from_host);
            }
            CallHook::ReturningFromWasm => {
                if s.wasm_entries.pop() == Some(true) {
                    s.host_since = Some(now);
                }
            }
        }
    }

    /// Wall-clock time since start, less time in host calls.
    pub fn guest_elapsed(&self) -> Duration {
        let s = self.lock();
        let now = Instant::now();
        let in_host = s.host_since.map(|t| now - t).unwrap_or_default();
        (now - s.start).saturating_sub(s.host_total + in_host)
    }

    /// Time spent in host calls so far, the current one included.
    pub fn host_used(&self) -> Duration {
        let s = self.lock();
        s.host_total + s.host_since.map(|t| t.elapsed()).unwrap_or_default()
    }

    fn in_host(&self) -> bool {
        self.lock().host_since.is_some()
    }

    /// Bounds a host call's wait by the remaining host-time budget (and by `timeout`, if
    /// shorter). The time itself is counted by the call hook.
    pub async fn host_call<T>(&self, timeout: Option<Duration>, fut: impl Future<Output = T>) -> Result<T, HostWait> {
        let remaining = self.host_budget.saturating_sub(self.host_used());
        if remaining.is_zero() {
            return Err(HostWait::BudgetExhausted);
        }
        let (limit, on_expiry) = match timeout {
            Some(t) if t < remaining => (t, HostWait::Timeout(t)),
            _ => (remaining, HostWait::BudgetExhausted),
        };
        tokio::time::timeout(limit, fut).await.map_err(|_| on_expiry)
    }
}

/// Bytes a table element is counted as (a function reference is one pointer).
const TABLE_ELEMENT_BYTES: u64 = 8;

/// Caps the memory of an instance, linear memories and tables together, and records its peak.
/// Tables count because without the pooling allocator nothing else bounds them (1,000 tables
/// of 1,000,000 elements would be 8 GB).
struct MemoryLimiter {
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
    fn host_time_is_not_guest_time() {
        let clock = CallClock::new(Duration::from_secs(1), Duration::from_secs(10));
        clock.start();
        clock.transition(CallHook::CallingWasm);
        clock.transition(CallHook::CallingHost);
        std::thread::sleep(Duration::from_millis(60));
        // The host lowers a result through the guest's allocator: still one host call.
        clock.transition(CallHook::CallingWasm);
        clock.transition(CallHook::ReturningFromWasm);
        std::thread::sleep(Duration::from_millis(20));
        clock.transition(CallHook::ReturningFromHost);
        clock.transition(CallHook::ReturningFromWasm);
        assert!(clock.host_used() >= Duration::from_millis(80), "{:?}", clock.host_used());
        assert!(clock.guest_elapsed() < Duration::from_millis(60), "{:?}", clock.guest_elapsed());
    }

    #[tokio::test]
    async fn a_request_timeout_shorter_than_the_budget_is_the_requests() {
        let clock = CallClock::new(Duration::from_secs(1), Duration::from_secs(10));
        clock.start();
        let r = clock.host_call(Some(Duration::from_millis(20)), std::future::pending::<()>()).await;
        assert_eq!(r, Err(HostWait::Timeout(Duration::from_millis(20))));
    }

    #[tokio::test]
    async fn a_silent_host_call_exhausts_the_budget() {
        let clock = CallClock::new(Duration::from_secs(1), Duration::from_millis(30));
        clock.start();
        clock.transition(CallHook::CallingHost);
        let r = clock.host_call(Some(Duration::from_secs(5)), std::future::pending::<()>()).await;
        assert_eq!(r, Err(HostWait::BudgetExhausted));
        // Nothing left: the next call fails at once.
        let r = clock.host_call(None, async {}).await;
        assert_eq!(r, Err(HostWait::BudgetExhausted));
    }

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
    fn a_call_keeps_a_bounded_number_of_short_refusals() {
        let mut d = Denials::default();
        for _ in 0..1000 {
            d.record("docker", &"r".repeat(1 << 20), &"h".repeat(1 << 20));
        }
        assert_eq!(d.kept.len(), MAX_DENIALS);
        assert_eq!(d.dropped, 1000 - MAX_DENIALS as u64);
        assert!(d.kept.iter().all(|k| k.reason.len() <= MAX_DENIAL_TEXT && k.hint.len() <= MAX_DENIAL_TEXT));
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
