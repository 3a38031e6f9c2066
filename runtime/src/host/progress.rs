//! The `progress` capability: a component reports phases of long tasks (one line per task:
//! a service, an image); the host renders them. The CLI draws live lines on a terminal; the
//! default sink writes log lines.

use std::sync::Arc;

use crate::bindings::progress as wit;
use crate::host::log::MAX_MESSAGE;
use crate::sandbox::HostState;

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

fn cut(text: &str) -> &str {
    &text[..text.floor_char_boundary(MAX_MESSAGE)]
}

impl wit::Host for HostState {
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
        self.progress.report(cut(&task), phase, cut(&detail));
        Ok(())
    }
}
