//! Log and event streams handed to a driver, bounded in every dimension.
//!
//! - A reader task per container splits output into lines, scanning only the new bytes of each
//!   chunk; a line longer than [`MAX_LINE`] is cut into pieces, so a container printing without
//!   newlines costs [`MAX_LINE`] of memory, not all it printed.
//! - The readers belong to their stream: dropping the stream (the guest dropped it, the call
//!   ended) aborts them, even while they wait on a container that prints nothing.
//! - A call holds at most [`MAX_OPEN_STREAMS`] streams at once, reading from at most
//!   [`MAX_SOURCES`] containers in all ([`StreamSlots`]): each source is one connection to the
//!   engine and one reader.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::engine::{EngineError, EngineEvent, LogChunk};
use super::error::DockerError;

/// Longest line handed out; longer ones arrive in pieces.
pub const MAX_LINE: usize = 64 * 1024;
/// Streams (log and event alike) one call may hold open.
pub const MAX_OPEN_STREAMS: usize = 16;
/// Sources (a container's logs, the event feed) a call's open streams may read in all.
pub const MAX_SOURCES: usize = 64;
/// Lines handed out per `next`.
const BATCH: usize = 512;

/// One line (or piece of a long line) of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub service: String,
    pub container: String,
    pub stderr: bool,
    pub line: String,
}

/// A change to a project container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEvent {
    pub container: String,
    pub service: String,
    pub action: String,
}

/// Counts a call's open streams and the sources they read.
#[derive(Debug, Clone, Default)]
pub struct StreamSlots {
    /// Open streams and sources, together so both are taken or freed at once.
    open: Arc<std::sync::Mutex<(usize, usize)>>,
}

/// One open stream's place in its call's counts; freed on drop.
#[derive(Debug)]
pub struct Slot {
    open: Arc<std::sync::Mutex<(usize, usize)>>,
    sources: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        open.1 = open.1.saturating_sub(self.sources);
    }
}

impl StreamSlots {
    /// Takes a slot for a stream reading `sources` sources, or says the call holds too many.
    pub fn acquire(&self, sources: usize) -> Result<Slot, DockerError> {
        let sources = sources.max(1);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= MAX_OPEN_STREAMS {
            return Err(DockerError::LimitExceeded(format!(
                "{MAX_OPEN_STREAMS} log and event streams are already open in this call; drop one first"
            )));
        }
        if open.1 + sources > MAX_SOURCES {
            return Err(DockerError::LimitExceeded(format!(
                "this call's open streams already read {} containers; at most {MAX_SOURCES} in all",
                open.1
            )));
        }
        *open = (open.0 + 1, open.1 + sources);
        Ok(Slot { open: self.open.clone(), sources })
    }
}

/// Aborts the tasks it holds when dropped.
#[derive(Debug, Default)]
struct Readers(Vec<AbortHandle>);

impl Drop for Readers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Host side of a `log-stream`: merged lines of several containers.
#[derive(Debug)]
pub struct LogStream {
    rx: mpsc::Receiver<LogLine>,
    _readers: Readers,
    slot: Option<Slot>,
}

impl LogStream {
    /// Waits up to `timeout` for lines; `None` once every source has ended.
    pub async fn next_batch(&mut self, timeout: Duration) -> Option<Vec<LogLine>> {
        let first = match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(_) => return Some(Vec::new()),
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Counts this stream against its call's limit.
    pub fn hold(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// Releases the stream from its call's count (the CLI drains it after the call).
    pub fn release(&mut self) {
        self.slot = None;
    }
}

/// Host side of an `event-stream`.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Result<ProjectEvent, DockerError>>,
    _reader: Readers,
    slot: Option<Slot>,
}

impl EventStream {
    /// Events that arrived, waiting up to `timeout` for the first.
    pub async fn next_batch(&mut self, timeout: Duration) -> Result<Vec<ProjectEvent>, DockerError> {
        let mut events = Vec::new();
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(first)) => events.push(first?),
            Ok(None) => return Err(DockerError::unavailable("the Docker event stream ended")),
            Err(_) => return Ok(Vec::new()),
        }
        while events.len() < BATCH {
            match self.rx.try_recv() {
                Ok(e) => events.push(e?),
                Err(_) => break,
            }
        }
        Ok(events)
    }

    /// Counts this stream against its call's limit.
    pub fn hold(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }
}

/// Splits text into lines of at most `max` bytes, looking at each byte once.
#[derive(Debug)]
pub struct LineSplitter {
    buf: String,
    max: usize,
}

impl LineSplitter {
    /// A splitter cutting lines at `max` bytes.
    pub fn new(max: usize) -> Self {
        LineSplitter { buf: String::new(), max: max.max(4) }
    }

    /// Adds a chunk; complete lines (and full pieces of long ones) go to `out`.
    pub fn push(&mut self, mut text: &str, out: &mut Vec<String>) {
        while !text.is_empty() {
            let room = self.max - self.buf.len();
            let window = &text[..text.floor_char_boundary(room.min(text.len()))];
            if let Some(pos) = window.find('\n') {
                self.buf.push_str(&text[..pos]);
                let line = std::mem::take(&mut self.buf);
                out.push(line.strip_suffix('\r').map(String::from).unwrap_or(line));
                text = &text[pos + 1..];
            } else if window.len() == text.len() {
                self.buf.push_str(text);
                return;
            } else {
                // The line is longer than `max`: hand out a full piece.
                self.buf.push_str(window);
                out.push(std::mem::take(&mut self.buf));
                text = &text[window.len()..];
            }
        }
    }

    /// What is left after the source ended.
    pub fn finish(self) -> Option<String> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

/// A container to read logs from.
pub struct LogSource {
    pub service: String,
    pub container: String,
    pub chunks: BoxStream<'static, Result<LogChunk, EngineError>>,
}

/// Lines a log stream buffers before its readers wait for the guest: at most
/// `LOG_BUFFER * MAX_LINE` (4 MiB) held per stream.
const LOG_BUFFER: usize = 64;

/// Starts one reader per source; the stream owns them.
pub fn log_stream(sources: Vec<LogSource>) -> LogStream {
    let (tx, rx) = mpsc::channel(LOG_BUFFER);
    let mut readers = Readers::default();
    for source in sources {
        let tx = tx.clone();
        let task = tokio::spawn(async move {
            let LogSource { service, container, mut chunks } = source;
            let mut splitters = [LineSplitter::new(MAX_LINE), LineSplitter::new(MAX_LINE)];
            let mut lines = Vec::new();
            let line = |stderr: bool, line: String| LogLine {
                service: service.clone(),
                container: container.clone(),
                stderr,
                line,
            };
            while let Some(Ok(chunk)) = chunks.next().await {
                splitters[usize::from(chunk.stderr)].push(&chunk.text, &mut lines);
                for l in lines.drain(..) {
                    if tx.send(line(chunk.stderr, l)).await.is_err() {
                        return;
                    }
                }
            }
            for (i, s) in splitters.into_iter().enumerate() {
                if let Some(rest) = s.finish() {
                    let _ = tx.send(line(i == 1, rest)).await;
                }
            }
        });
        readers.0.push(task.abort_handle());
    }
    LogStream { rx, _readers: readers, slot: None }
}

/// Starts the reader of an engine event stream, mapping each event with `map`.
pub fn event_stream(
    mut events: BoxStream<'static, Result<EngineEvent, EngineError>>,
    map: impl Fn(EngineEvent) -> ProjectEvent + Send + 'static,
) -> EventStream {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        while let Some(item) = events.next().await {
            let item = item.map_err(DockerError::from).map(&map);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    EventStream { rx, _reader: Readers(vec![task.abort_handle()]), slot: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str], max: usize) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn lines_are_split_across_chunks() {
        assert_eq!(split(&["a\nb", "c\r\n", "d"], 64), ["a", "bc", "d"]);
        assert_eq!(split(&["\n\n"], 64), ["", ""]);
    }

    #[test]
    fn a_line_without_newline_is_cut_into_bounded_pieces() {
        let out = split(&["x".repeat(10).as_str(), "y".repeat(7).as_str(), "\nz"], 8);
        assert_eq!(out, ["xxxxxxxx", "xxyyyyyy", "y", "z"]);
        assert!(out.iter().all(|l| l.len() <= 8));
        // Multi-byte characters are never split.
        let out = split(&["ééééé"], 5);
        assert_eq!(out, ["éé", "éé", "é"]);
    }

    #[test]
    fn a_large_line_is_handled_in_one_pass() {
        let big = "x".repeat(5 * MAX_LINE + 3);
        let out = split(&[big.as_str()], MAX_LINE);
        assert_eq!(out.len(), 6);
        assert_eq!(out.iter().map(String::len).sum::<usize>(), big.len());
    }

    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn dropping_a_stream_stops_its_readers() {
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        // A container that printed a line and then nothing, forever.
        let chunks = futures::stream::iter([Ok(LogChunk { stderr: false, text: "hello\n".into() })])
            .chain(futures::stream::pending())
            .map(move |c| {
                let _keep = &flag;
                c
            })
            .boxed();
        let mut stream = log_stream(vec![LogSource { service: "s".into(), container: "c".into(), chunks }]);
        let batch = stream.next_batch(Duration::from_secs(5)).await.expect("a line");
        assert_eq!(batch[0].line, "hello");
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !dropped.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the reader ended with its stream");
    }

    #[test]
    fn a_call_holds_a_bounded_number_of_streams_and_sources() {
        let slots = StreamSlots::default();
        let held: Vec<Slot> = (0..MAX_OPEN_STREAMS).map(|_| slots.acquire(1).expect("free")).collect();
        assert!(matches!(slots.acquire(1), Err(DockerError::LimitExceeded(_))));
        drop(held);
        let wide = slots.acquire(MAX_SOURCES - 1).expect("free");
        assert!(matches!(slots.acquire(2), Err(DockerError::LimitExceeded(m)) if m.contains("at most 64")));
        let last = slots.acquire(1).expect("one source left");
        drop((wide, last));
        assert!(slots.acquire(MAX_SOURCES).is_ok());
    }
}
