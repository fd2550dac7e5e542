//! A plugin's output: every line goes to `tracing` and into a bounded tail kept per plugin,
//! so a person can read what a plugin said ([`crate::Manager::logs`]) and a plugin that dies
//! while starting fails `enable` with the end of its stderr.
//!
//! The tail holds at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes of both streams, oldest
//! dropped first; a longer line is cut at [`MAX_LINE`] bytes. Each start of the plugin is a
//! new *run*: the sinks of a run report when they are closed, so the manager can wait (with a
//! bound) until the output of a run that just ended is complete.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::watch;

use crate::executor::PluginStdio;
use crate::lock::lock;

/// Lines kept per plugin.
pub const MAX_LINES: usize = 50;
/// Bytes kept per plugin (line texts).
pub const MAX_BYTES: usize = 64 * 1024;
/// Longest line kept; the rest of it is dropped.
pub const MAX_LINE: usize = 8 * 1024;
/// Lines of stderr an [`ExitedWhileStarting`](crate::ManagerError::ExitedWhileStarting)
/// error carries.
pub(crate) const ERROR_LINES: usize = 20;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line a plugin wrote, without its line feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputLine {
    /// The stream.
    pub stream: OutputStream,
    /// The text (invalid UTF-8 replaced, cut at [`MAX_LINE`] bytes).
    pub text: String,
}

#[derive(Debug, Default)]
struct Tail {
    /// Lines with the run they belong to.
    lines: VecDeque<(u64, OutputLine)>,
    bytes: usize,
}

/// The output tail of one plugin.
#[derive(Debug)]
pub(crate) struct PluginLog {
    id: String,
    tail: Mutex<Tail>,
    /// (current run, sinks of that run closed so far).
    closed: watch::Sender<(u64, u8)>,
}

impl PluginLog {
    pub(crate) fn new(id: &str) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            tail: Mutex::default(),
            closed: watch::channel((0, 0)).0,
        })
    }

    /// Starts a new run and returns the sinks that feed it.
    pub(crate) fn stdio(self: &Arc<Self>) -> PluginStdio {
        let mut run = 0;
        self.closed.send_modify(|(r, n)| {
            *r += 1;
            *n = 0;
            run = *r;
        });
        let sink =
            |stream| LogSink { log: self.clone(), run, stream, buf: Vec::new(), closed: false };
        PluginStdio::new(Box::pin(sink(OutputStream::Stdout)), Box::pin(sink(OutputStream::Stderr)))
    }

    /// Every line kept, oldest first.
    pub(crate) fn lines(&self) -> Vec<OutputLine> {
        let tail = lock(&self.tail);
        tail.lines.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Waits until both sinks of the current run are closed, at most `bound`; then returns
    /// the last [`ERROR_LINES`] lines that run wrote to stderr, joined by line feeds.
    pub(crate) async fn stderr_of_run(&self, bound: Duration) -> String {
        let mut rx = self.closed.subscribe();
        let run = rx.borrow().0;
        let done = tokio::time::timeout(bound, rx.wait_for(|(r, n)| *r != run || *n >= 2)).await;
        if done.is_err() {
            tracing::debug!(plugin = %self.id, "plugin output not closed in time, its tail may be short");
        }
        let tail = lock(&self.tail);
        let mut lines: Vec<&str> = tail
            .lines
            .iter()
            .rev()
            .filter(|(r, l)| *r == run && l.stream == OutputStream::Stderr)
            .take(ERROR_LINES)
            .map(|(_, l)| l.text.as_str())
            .collect();
        lines.reverse();
        lines.join("\n")
    }

    fn push(&self, run: u64, stream: OutputStream, line: &[u8]) {
        let cut = &line[..line.len().min(MAX_LINE)];
        let mut text = String::from_utf8_lossy(cut).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        match stream {
            OutputStream::Stderr => tracing::error!(plugin = %self.id, "{text}"),
            OutputStream::Stdout => tracing::info!(plugin = %self.id, "{text}"),
        }
        let mut tail = lock(&self.tail);
        tail.bytes += text.len();
        tail.lines.push_back((run, OutputLine { stream, text }));
        while tail.lines.len() > MAX_LINES || tail.bytes > MAX_BYTES {
            match tail.lines.pop_front() {
                Some((_, old)) => tail.bytes -= old.text.len(),
                None => break,
            }
        }
    }
}

/// A sink that splits a stream into lines for its [`PluginLog`].
struct LogSink {
    log: Arc<PluginLog>,
    run: u64,
    stream: OutputStream,
    buf: Vec<u8>,
    closed: bool,
}

impl LogSink {
    fn flush_lines(&mut self, all: bool) {
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            self.log.push(self.run, self.stream, &self.buf[start..start + pos]);
            start += pos + 1;
        }
        self.buf.drain(..start);
        if all && !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.log.push(self.run, self.stream, &line);
        }
    }

    /// The stream ended: its last partial line is kept and the run is told.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.flush_lines(true);
        let run = self.run;
        self.log.closed.send_if_modified(|(r, n)| {
            let mine = *r == run;
            if mine {
                *n += 1;
            }
            mine
        });
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        let all = self.buf.len() > MAX_BYTES;
        self.flush_lines(all);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_are_split_bounded_and_tied_to_their_run() {
        let log = PluginLog::new("p");
        let PluginStdio { mut stdout, mut stderr } = log.stdio();
        stdout.write_all(b"hello\nwor").await.unwrap();
        stderr.write_all(b"old error\n").await.unwrap();
        stdout.write_all(b"ld\r\n").await.unwrap();
        drop((stdout, stderr));
        let PluginStdio { mut stdout, mut stderr } = log.stdio();
        stderr.write_all(b"bad flag\nusage: x").await.unwrap();
        stderr.shutdown().await.unwrap();
        drop(stdout.shutdown().await);
        let text: Vec<_> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(text, ["hello", "old error", "world", "bad flag", "usage: x"]);
        assert_eq!(log.stderr_of_run(Duration::from_secs(1)).await, "bad flag\nusage: x");

        for i in 0..2 * MAX_LINES {
            stdout.write_all(format!("{i}\n").as_bytes()).await.unwrap();
        }
        let lines = log.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines.last().unwrap().text, (2 * MAX_LINES - 1).to_string());
        stdout.write_all(&vec![b'x'; 3 * MAX_BYTES]).await.unwrap();
        let tail = log.tail.lock().unwrap();
        assert!(tail.bytes <= MAX_BYTES);
        assert!(tail.lines.iter().all(|(_, l)| l.text.len() <= MAX_LINE));
    }
}
