//! The `progress` capability: a component reports phases of long tasks (one line per task:
//! a service, an image); the host renders them. The CLI draws live lines on a terminal; the
//! default sink writes log lines.
//!
//! A component cannot flood the terminal through it: a call has at most [`MAX_TASKS`] tasks
//! and [`RATE`] reports a second (with a burst of [`BURST`]); task names and details are cut
//! and their control characters escaped. What is refused is counted in the call's report.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::bindings::progress as wit;
use crate::capability::log::MAX_MESSAGE;

/// A phase of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pulling,
    Creating,
    Starting,
    Waiting,
    Stopping,
    Removing,
    Done,
    Failed,
}

impl Phase {
    /// The phase as a word.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pulling => "pulling",
            Phase::Creating => "creating",
            Phase::Starting => "starting",
            Phase::Waiting => "waiting",
            Phase::Stopping => "stopping",
            Phase::Removing => "removing",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    /// True once the task is over.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// Where progress goes.
pub trait ProgressSink: Send + Sync {
    /// `task` reached `phase`; `detail` says more (`12.3/45.6 MiB`, `healthy`).
    fn report(&self, task: &str, phase: Phase, detail: &str);
}

/// A shareable sink; the default logs at info level.
#[derive(Clone)]
pub struct ProgressHandle(pub Arc<dyn ProgressSink>);

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

impl Default for ProgressHandle {
    fn default() -> Self {
        ProgressHandle(Arc::new(LogProgress))
    }
}

impl ProgressHandle {
    /// Reports to the sink.
    pub fn report(&self, task: &str, phase: Phase, detail: &str) {
        self.0.report(task, phase, detail);
    }
}

/// Progress as log lines.
struct LogProgress;

impl ProgressSink for LogProgress {
    fn report(&self, task: &str, phase: Phase, detail: &str) {
        tracing::info!(target: "progress", "{task}: {} {detail}", phase.name());
    }
}

/// Tasks one call may report on.
pub const MAX_TASKS: usize = 128;
/// Reports a second, sustained.
pub const RATE: f64 = 50.0;
/// Reports allowed at once.
pub const BURST: f64 = 200.0;
/// Longest task name or detail shown, in bytes.
const MAX_TEXT: usize = 256;

/// Decides which of a call's reports reach the sink.
#[derive(Debug)]
pub struct ProgressGate {
    tasks: HashSet<String>,
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl Default for ProgressGate {
    fn default() -> Self {
        ProgressGate { tasks: HashSet::new(), tokens: BURST, last: Instant::now(), dropped: 0 }
    }
}

impl ProgressGate {
    /// True when this report may be shown. A task's final report always is, so no line is
    /// left spinning; anything else spends from the rate budget.
    pub fn admit(&mut self, task: &str, phase: Phase) -> bool {
        let known = self.tasks.contains(task);
        if known && phase.is_final() {
            return true;
        }
        if !known && self.tasks.len() >= MAX_TASKS {
            self.dropped += 1;
            return false;
        }
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * RATE).min(BURST);
        self.last = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return false;
        }
        self.tokens -= 1.0;
        if !known {
            self.tasks.insert(task.to_string());
        }
        true
    }

    /// Reports not shown.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    let text = &text[..text.floor_char_boundary(MAX_TEXT.min(MAX_MESSAGE))];
    crate::text::escape(text)
}

/// The `progress` capability of one call: where reports go, and the gate before it.
#[derive(Debug, Default)]
pub struct ProgressHost {
    handle: ProgressHandle,
    gate: ProgressGate,
}

impl ProgressHost {
    /// Reports to `handle`, gated per call.
    pub fn new(handle: ProgressHandle) -> Self {
        ProgressHost { handle, gate: ProgressGate::default() }
    }

    /// Reports not shown.
    pub fn dropped(&self) -> u64 {
        self.gate.dropped()
    }
}

impl wit::Host for ProgressHost {
    async fn report(&mut self, task: String, phase: wit::Phase, detail: String) -> wasmtime::Result<()> {
        let phase = match phase {
            wit::Phase::Pulling => Phase::Pulling,
            wit::Phase::Creating => Phase::Creating,
            wit::Phase::Starting => Phase::Starting,
            wit::Phase::Waiting => Phase::Waiting,
            wit::Phase::Stopping => Phase::Stopping,
            wit::Phase::Removing => Phase::Removing,
            wit::Phase::Done => Phase::Done,
            wit::Phase::Failed => Phase::Failed,
        };
        let task = cut(&task);
        if self.gate.admit(&task, phase) {
            self.handle.report(&task, phase, &cut(&detail));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_reports_on_a_bounded_number_of_tasks() {
        let mut gate = ProgressGate::default();
        let shown = (0..2000).filter(|i| gate.admit(&format!("task {i}"), Phase::Creating)).count();
        assert_eq!(shown, MAX_TASKS);
        assert_eq!(gate.dropped(), 2000 - MAX_TASKS as u64);
        // Known tasks still finish.
        assert!(gate.admit("task 0", Phase::Done));
    }

    #[test]
    fn a_burst_of_reports_is_cut_to_the_rate() {
        let mut gate = ProgressGate::default();
        let start = Instant::now();
        let shown = (0..10_000).filter(|_| gate.admit("one task", Phase::Waiting)).count();
        // The burst, plus what the rate refilled while the loop ran (however slow the machine).
        let refilled = (start.elapsed().as_secs_f64() * RATE) as usize + 1;
        assert!(shown >= BURST as usize && shown <= BURST as usize + refilled, "{shown}");
        assert!(gate.admit("one task", Phase::Failed));
    }

    #[test]
    fn task_names_are_cut_and_escaped() {
        assert_eq!(cut("\x1b[2Kfake"), "\\x1b[2Kfake");
        assert_eq!(cut("\u{1b}[2K\rdone"), "\\x1b[2K\\x0ddone");
        assert_eq!(cut(&"é".repeat(1000)).len(), 256);
    }

    #[test]
    fn the_capability_reports_through_its_gate_to_the_sink() {
        use wit::Host as _;
        struct Sink(std::sync::Mutex<Vec<String>>);
        impl ProgressSink for Sink {
            fn report(&self, task: &str, phase: Phase, detail: &str) {
                self.0.lock().expect("lock").push(format!("{task} {} {detail}", phase.name()));
            }
        }
        let sink = Arc::new(Sink(Default::default()));
        let mut host = ProgressHost::new(ProgressHandle(sink.clone()));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for i in 0..(MAX_TASKS + 3) {
            rt.block_on(host.report(format!("t{i}\x1b[2J"), wit::Phase::Creating, "x".into())).expect("no trap");
        }
        let shown = sink.0.lock().expect("lock").clone();
        assert_eq!(shown.len(), MAX_TASKS);
        assert!(shown[0].starts_with("t0\\x1b[2J creating"), "{}", shown[0]);
        assert_eq!(host.dropped(), 3);
    }
}
