//! Guest stdout and stderr, captured and capped.
//!
//! wasmtime's `MemoryOutputPipe` traps a guest that writes past its capacity; a chatty but
//! otherwise correct component should not die for that. [`CappedOutput`] accepts every write,
//! keeps the first half of its budget and a rolling window of the last half, and counts what
//! it dropped. Keeping the tail matters: a Rust panic message is the last thing written to
//! stderr before the trap, and it is what the user needs to see.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A shared, capped capture buffer; clones see the same bytes.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    inner: Arc<Mutex<Capture>>,
}

#[derive(Debug)]
struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

/// What a capture holds once the call is over.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The kept text; a marker line shows where bytes were cut.
    pub text: String,
    /// Bytes the guest wrote in all.
    pub total: u64,
    /// Bytes dropped from the middle.
    pub dropped: u64,
}

impl std::fmt::Debug for Captured {
    /// Shows the size and the start of the text only (a capture can be a megabyte).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start: String = self.text.chars().take(80).collect();
        f.debug_struct("Captured")
            .field("total", &self.total)
            .field("dropped", &self.dropped)
            .field("start", &start)
            .finish()
    }
}

impl CappedOutput {
    /// Keeps at most `cap` bytes: the first half and the last half of the stream.
    pub fn new(cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX).max(2);
        let head_cap = cap / 2;
        let capture = Capture { head_cap, tail_cap: cap - head_cap, head: Vec::new(), tail: VecDeque::new(), total: 0 };
        CappedOutput { inner: Arc::new(Mutex::new(capture)) }
    }

    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total += bytes.len() as u64;
        let room = c.head_cap - c.head.len();
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        c.head.extend_from_slice(to_head);
        if rest.is_empty() {
            return;
        }
        let keep = &rest[rest.len().saturating_sub(c.tail_cap)..];
        let overflow = (c.tail.len() + keep.len()).saturating_sub(c.tail_cap);
        c.tail.drain(..overflow);
        c.tail.extend(keep);
    }

    /// The kept bytes as text, with a marker where the middle was cut.
    pub fn captured(&self) -> Captured {
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let kept = (c.head.len() + c.tail.len()) as u64;
        let dropped = c.total - kept;
        let mut text = String::from_utf8_lossy(&c.head).into_owned();
        if dropped > 0 {
            text.push_str(&format!("\n[... {dropped} bytes cut ...]\n"));
        }
        let (a, b) = c.tail.as_slices();
        text.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        Captured { text, total: c.total, dropped }
    }

    /// The last `n` lines kept, for error messages.
    pub fn tail_lines(&self, n: usize) -> String {
        let text = self.captured().text;
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Writes are accepted in chunks of this size at most.
const PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let out = CappedOutput::new(100);
        out.push(b"hello ");
        out.push(b"world");
        assert_eq!(out.captured(), Captured { text: "hello world".into(), total: 11, dropped: 0 });
    }

    #[test]
    fn a_flood_keeps_its_head_and_tail_and_counts_the_cut() {
        let out = CappedOutput::new(10);
        out.push(b"HEAD-");
        for _ in 0..1000 {
            out.push(b"xxxxxxxxxx");
        }
        out.push(b"PANIC");
        let c = out.captured();
        assert_eq!(c.total, 10_010);
        assert_eq!(c.dropped, 10_000);
        assert!(c.text.starts_with("HEAD-"), "{}", c.text);
        assert!(c.text.ends_with("PANIC"), "{}", c.text);
        assert!(c.text.contains("[... 10000 bytes cut ...]"), "{}", c.text);
    }

    #[test]
    fn one_huge_write_keeps_its_end() {
        let out = CappedOutput::new(8);
        let mut big = vec![b'a'; 1 << 20];
        big.extend_from_slice(b"END!");
        out.push(&big);
        let c = out.captured();
        assert!(c.text.starts_with("aaaa") && c.text.ends_with("END!"), "{}", c.text);
        assert_eq!(c.dropped, (1 << 20) + 4 - 8);
    }

    #[test]
    fn tail_lines_returns_the_last_lines() {
        let out = CappedOutput::new(1000);
        out.push(b"one\ntwo\nthree\n");
        assert_eq!(out.tail_lines(2), "two\nthree");
    }
}
