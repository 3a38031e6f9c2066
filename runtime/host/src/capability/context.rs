//! What every capability of one call shares: the call's clock and budgets, and the refusals
//! it has met. Capabilities own their own state ([`super::http::HttpHost`],
//! [`super::docker::DockerHost`], ...) and hold an `Arc<CallContext>` beside it, so the two
//! rules every host call follows live here once:
//!
//! - [`CallContext::deny`] records a refusal for the call's report (bounded) and returns the
//!   contract's `denial` for the guest;
//! - [`CallContext::wait`] bounds a host call's wait by the remaining host-time budget and
//!   stops the call (a trap the sandbox names `deadline-exceeded`) when it is spent.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::CallHook;

use crate::bindings::sandbox as wit;
use crate::error::HostAbort;

/// Refusals a call keeps for its report; later ones are counted.
pub const MAX_DENIALS: usize = 32;
/// Longest reason or hint kept, in bytes.
const MAX_DENIAL_TEXT: usize = 1024;

/// The shared part of one call's host state.
#[derive(Debug)]
pub struct CallContext {
    component: String,
    clock: CallClock,
    denials: Mutex<Denials>,
}

impl CallContext {
    /// The context of a call into `component` with these budgets (started by the sandbox).
    pub fn new(component: &str, deadline: Duration, host_budget: Duration) -> Arc<Self> {
        Arc::new(CallContext {
            component: component.to_string(),
            clock: CallClock::new(deadline, host_budget),
            denials: Mutex::new(Denials::default()),
        })
    }

    /// The component's name, for logs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The call's clock.
    pub fn clock(&self) -> &CallClock {
        &self.clock
    }

    /// Records a refusal of `capability` and returns it as the contract's `denial`.
    pub fn deny(&self, capability: &str, reason: String, hint: String) -> wit::Denial {
        tracing::debug!(component = self.component, "{capability} denied: {}", crate::text::escape(&reason));
        self.denials.lock().unwrap_or_else(|p| p.into_inner()).record(capability, &reason, &hint);
        wit::Denial { reason, hint }
    }

    /// Waits for a host call, bounded by the remaining host-time budget and by `timeout` if
    /// shorter. `Err` stops the call (the budget is spent); `Ok(Err(t))` is the request's own
    /// timeout `t`, which the guest gets as a typed error.
    pub async fn wait<T>(
        &self,
        timeout: Option<Duration>,
        fut: impl Future<Output = T>,
    ) -> wasmtime::Result<Result<T, Duration>> {
        match self.clock.host_call(timeout, fut).await {
            Ok(v) => Ok(Ok(v)),
            Err(HostWait::Timeout(t)) => Ok(Err(t)),
            Err(HostWait::BudgetExhausted) => Err(HostAbort::HostBudget.into()),
        }
    }

    /// Waits for a host call with no timeout of its own: only the budget bounds it.
    pub async fn wait_budget<T>(&self, fut: impl Future<Output = T>) -> wasmtime::Result<T> {
        match self.clock.host_call(None, fut).await {
            Ok(v) => Ok(v),
            Err(_) => Err(HostAbort::HostBudget.into()),
        }
    }

    /// The refusals kept, and how many more were only counted.
    pub fn take_denials(&self) -> (Vec<Denial>, u64) {
        let mut d = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut d.kept), d.dropped)
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

/// The refusals of one call, for its report: bounded, since a component can make any number.
#[derive(Debug, Default)]
struct Denials {
    kept: Vec<Denial>,
    dropped: u64,
}

impl Denials {
    /// Keeps a refusal (cut to [`MAX_DENIAL_TEXT`]), or counts it past [`MAX_DENIALS`].
    fn record(&mut self, capability: &str, reason: &str, hint: &str) {
        if self.kept.len() >= MAX_DENIALS {
            self.dropped += 1;
            return;
        }
        let cut = |t: &str| t[..t.floor_char_boundary(MAX_DENIAL_TEXT)].to_string();
        self.kept.push(Denial { capability: capability.into(), reason: cut(reason), hint: cut(hint) });
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
enum HostWait {
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

    pub(crate) fn in_host(&self) -> bool {
        self.lock().host_since.is_some()
    }

    /// Bounds a host call's wait by the remaining host-time budget (and by `timeout`, if
    /// shorter). The time itself is counted by the call hook.
    async fn host_call<T>(&self, timeout: Option<Duration>, fut: impl Future<Output = T>) -> Result<T, HostWait> {
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
        let ctx = CallContext::new("t", Duration::from_secs(1), Duration::from_secs(10));
        ctx.clock().start();
        let r = ctx.wait(Some(Duration::from_millis(20)), std::future::pending::<()>()).await.expect("not an abort");
        assert_eq!(r, Err(Duration::from_millis(20)));
    }

    #[tokio::test]
    async fn a_silent_host_call_exhausts_the_budget_and_stops_the_call() {
        let ctx = CallContext::new("t", Duration::from_secs(1), Duration::from_millis(30));
        ctx.clock().start();
        ctx.clock().transition(CallHook::CallingHost);
        let e = ctx.wait(Some(Duration::from_secs(5)), std::future::pending::<()>()).await.expect_err("abort");
        assert!(matches!(e.downcast_ref::<HostAbort>(), Some(HostAbort::HostBudget)));
        // Nothing left: the next call stops at once.
        let e = ctx.wait_budget(async {}).await.expect_err("abort");
        assert!(matches!(e.downcast_ref::<HostAbort>(), Some(HostAbort::HostBudget)));
    }

    #[test]
    fn a_call_keeps_a_bounded_number_of_short_refusals() {
        let ctx = CallContext::new("t", Duration::from_secs(1), Duration::from_secs(1));
        for _ in 0..1000 {
            let d = ctx.deny("docker", "r".repeat(1 << 20), "h".repeat(1 << 20));
            // The guest gets the whole text; the report keeps a cut.
            assert_eq!(d.reason.len(), 1 << 20);
        }
        let (kept, dropped) = ctx.take_denials();
        assert_eq!(kept.len(), MAX_DENIALS);
        assert_eq!(dropped, 1000 - MAX_DENIALS as u64);
        assert!(kept.iter().all(|k| k.reason.len() <= MAX_DENIAL_TEXT && k.hint.len() <= MAX_DENIAL_TEXT));
    }
}
