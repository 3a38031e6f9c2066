//! The `log` capability: levelled messages from a component, shown by the CLI.
//!
//! Messages go to `tracing` under the target `component`, tagged with the component's name, so
//! the CLI's verbosity flags apply to them like to the host's own logs. A component cannot
//! flood the terminal: each message is cut at [`MAX_MESSAGE`] bytes and a call keeps at most
//! [`MAX_MESSAGES`]; the rest are counted and reported as dropped. Control characters are
//! escaped ([`crate::text`]), so a message cannot rewrite what the terminal shows.

use crate::bindings::log as wit;

/// Longest message kept, in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// Messages kept per call.
pub const MAX_MESSAGES: u64 = 1000;

/// Severity of a component message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The log sink of one call.
#[derive(Debug)]
pub struct ComponentLog {
    component: String,
    emitted: u64,
    dropped: u64,
}

impl ComponentLog {
    /// A sink tagging messages with `component`.
    pub fn new(component: &str) -> Self {
        ComponentLog { component: component.to_string(), emitted: 0, dropped: 0 }
    }

    /// Emits one message, cut and counted against the per-call cap.
    pub fn emit(&mut self, level: Level, message: &str) {
        if self.emitted >= MAX_MESSAGES {
            self.dropped += 1;
            return;
        }
        self.emitted += 1;
        let cut = cut(message, MAX_MESSAGE);
        let text = crate::text::escape_lines(&cut);
        let c = self.component.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "component", "[{c}] {text}"),
            Level::Debug => tracing::debug!(target: "component", "[{c}] {text}"),
            Level::Info => tracing::info!(target: "component", "[{c}] {text}"),
            Level::Warn => tracing::warn!(target: "component", "[{c}] {text}"),
            Level::Error => tracing::error!(target: "component", "[{c}] {text}"),
        }
    }

    /// Messages dropped because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end).into()
}

impl From<wit::Level> for Level {
    fn from(l: wit::Level) -> Self {
        match l {
            wit::Level::Trace => Level::Trace,
            wit::Level::Debug => Level::Debug,
            wit::Level::Info => Level::Info,
            wit::Level::Warn => Level::Warn,
            wit::Level::Error => Level::Error,
        }
    }
}

impl wit::Host for ComponentLog {
    async fn log(&mut self, level: wit::Level, message: String) -> wasmtime::Result<()> {
        self.emit(level.into(), &message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let text = "é".repeat(10);
        let c = cut(&text, 5);
        assert!(c.starts_with("éé…"), "{c}");
        assert!(c.contains("16 bytes cut"), "{c}");
        assert_eq!(cut("short", 10), "short");
    }

    #[test]
    fn messages_past_the_cap_are_counted_not_emitted() {
        let mut log = ComponentLog::new("t");
        for _ in 0..MAX_MESSAGES + 5 {
            log.emit(Level::Trace, "x");
        }
        assert_eq!(log.dropped(), 5);
    }
}
