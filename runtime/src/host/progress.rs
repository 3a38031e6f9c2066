//! The `progress` capability: a component reports phases of long tasks; the host renders them.
//!
//! Reports go to `tracing` (target `progress`) so they show with `-v` and in logs; they are
//! cut and capped like log messages, since a component controls their text.

use crate::bindings::progress as wit;
use crate::host::log::{Level, MAX_MESSAGE};
use crate::sandbox::HostState;

impl wit::Host for HostState {
    async fn report(&mut self, task: String, phase: wit::Phase, detail: String) -> wasmtime::Result<()> {
        let phase = match phase {
            wit::Phase::Pulling => "pulling",
            wit::Phase::Creating => "creating",
            wit::Phase::Starting => "starting",
            wit::Phase::Waiting => "waiting",
            wit::Phase::Stopping => "stopping",
            wit::Phase::Removing => "removing",
            wit::Phase::Done => "done",
            wit::Phase::Failed => "failed",
        };
        let mut line = format!("{task}: {phase} {detail}");
        line.truncate(line.floor_char_boundary(MAX_MESSAGE));
        self.log.emit(Level::Info, &line);
        Ok(())
    }
}
