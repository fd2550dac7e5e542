//! `LogDriver`: serve a logging plugin (Moby `daemon/logger/plugin.go`), read the framed log
//! stream from the FIFO dockerd hands over ([`LogStream`]), and stream entries back for `docker logs`
//! ([`LogEntries`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dockplug_protocol::log::{
    CapabilitiesResponse, Capability, FrameDecoder, FrameError, Info, LogEntry, LogMethod,
    ReadLogsRequest, StartLoggingRequest, StopLoggingRequest, IMPLEMENTS,
};
use dockplug_protocol::ErrorBody;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::error::PluginResult;
use crate::router::{decode, finish, ErrorKey, Reply};
use crate::server::PluginBuilder;

/// A logging plugin. `capabilities` defaults to no `ReadLogs`, and `read_logs` to an error.
///
/// On `start_logging`, open the FIFO with [`LogStream::open`] and read it in a task of your
/// own; on `stop_logging`, tell that task to [`LogStream::drain`] what is left and wait for it
/// before replying: dockerd keeps the FIFO open until that reply (so the stream has no end of
/// file before it) and deletes the FIFO after it.
///
/// Lines from the FIFO come without their `\n`, and dockerd prints what `read_logs` returns
/// as is: end each complete (non-partial) line with `\n` there.
pub trait LogDriver: Send + Sync + 'static {
    /// `LogDriver.StartLogging`: a container's log stream is at `file` (a FIFO).
    fn start_logging(
        &self,
        file: String,
        info: Info,
    ) -> impl Future<Output = PluginResult<()>> + Send;

    /// `LogDriver.StopLogging`: the stream at `file` ends.
    fn stop_logging(&self, file: String) -> impl Future<Output = PluginResult<()>> + Send;

    /// `LogDriver.Capabilities`. Default: `ReadLogs` false.
    fn capabilities(&self) -> impl Future<Output = PluginResult<Capability>> + Send {
        async { Ok(Capability::default()) }
    }

    /// `LogDriver.ReadLogs`: entries for `docker logs`, as a channel the SDK frames onto the
    /// reply. The daemon prints each line as is, so complete lines end with `\n`. Default: an
    /// error (declare `ReadLogs` only when you implement this).
    fn read_logs(
        &self,
        req: ReadLogsRequest,
    ) -> impl Future<Output = PluginResult<LogEntries>> + Send {
        let _ = req;
        async { Err(crate::PluginError::new("this log driver does not read logs")) }
    }
}

/// The entries of a `ReadLogs` reply: the receiving end of a channel. The reply ends when
/// every [`LogSender`] is dropped; a send fails once the client has gone away.
#[derive(Debug)]
pub struct LogEntries {
    rx: mpsc::Receiver<LogEntry>,
}

/// The sending end of a [`LogEntries`] channel.
pub type LogSender = mpsc::Sender<LogEntry>;

impl LogEntries {
    /// A channel holding up to `capacity` entries in flight.
    pub fn channel(capacity: usize) -> (LogSender, LogEntries) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, LogEntries { rx })
    }
}

/// A failure reading a log stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStreamError {
    /// The FIFO (or file) could not be opened or read.
    #[error("read log stream {path}")]
    Io {
        /// The stream's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid frame sequence.
    #[error("malformed log stream {path}")]
    Frame {
        /// The stream's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: FrameError,
    },
}

/// How long [`LogStream::drain`] waits for more bytes before it calls the stream drained.
pub const DRAIN_QUIET: std::time::Duration = std::time::Duration::from_millis(20);

/// The framed log stream of one container (`[u32 big-endian length][protobuf LogEntry]`
/// repeated), read from the FIFO the daemon names in `StartLogging`.
///
/// ```no_run
/// # async fn f(file: &str) -> Result<(), dockplug_sdk::log::LogStreamError> {
/// let mut stream = dockplug_sdk::log::LogStream::open(file).await?;
/// while let Some(entry) = stream.next_entry().await? {
///     println!("{}: {}", entry.source, String::from_utf8_lossy(&entry.line));
/// }
/// # Ok(()) }
/// ```
pub struct LogStream<R = Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
    path: PathBuf,
    reader: R,
    decoder: FrameDecoder,
    done: bool,
}

impl<R> std::fmt::Debug for LogStream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").field("path", &self.path).field("done", &self.done).finish()
    }
}

impl LogStream {
    /// Open the FIFO read-only, as a non-blocking pipe on the runtime (no thread is held while
    /// the container is quiet); a regular file holding a stream is read as a file.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, LogStreamError> {
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref().to_owned();
        let io = |source| LogStreamError::Io { path: path.clone(), source };
        let meta = tokio::fs::metadata(&path).await.map_err(io)?;
        let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if meta.file_type().is_fifo() {
            Box::new(tokio::net::unix::pipe::OpenOptions::new().open_receiver(&path).map_err(io)?)
        } else {
            Box::new(tokio::fs::File::open(&path).await.map_err(io)?)
        };
        Ok(Self::new(path, reader))
    }
}

impl<R: tokio::io::AsyncRead + Unpin> LogStream<R> {
    /// A stream over any reader; `path` names it in errors.
    pub fn new(path: impl Into<PathBuf>, reader: R) -> Self {
        Self { path: path.into(), reader, decoder: FrameDecoder::new(), done: false }
    }

    /// Every entry that can be read now, without waiting for more: what to do on
    /// `StopLogging`. dockerd holds its end of the FIFO open until the plugin answers
    /// `StopLogging` (and then deletes the FIFO), so the stream reaches no end of file before
    /// that answer; a plugin drains what is buffered instead, then replies. Stops at a quiet
    /// period of [`DRAIN_QUIET`] or at the end of the stream.
    pub async fn drain(&mut self) -> Result<Vec<LogEntry>, LogStreamError> {
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let frame = |source| LogStreamError::Frame { path: self.path.clone(), source };
            while let Some(entry) = self.decoder.next_entry().map_err(frame)? {
                entries.push(entry);
            }
            if self.done {
                return Ok(entries);
            }
            match tokio::time::timeout(DRAIN_QUIET, self.reader.read(&mut buf)).await {
                Err(_quiet) => return Ok(entries),
                Ok(Ok(0)) => self.done = true,
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(source)) => {
                    return Err(LogStreamError::Io { path: self.path.clone(), source })
                }
            }
        }
    }

    /// The next entry, or `None` at the end of the stream. A partial frame at the end is an
    /// error.
    pub async fn next_entry(&mut self) -> Result<Option<LogEntry>, LogStreamError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let frame = |source| LogStreamError::Frame { path: self.path.clone(), source };
            if let Some(entry) = self.decoder.next_entry().map_err(frame)? {
                return Ok(Some(entry));
            }
            if self.done {
                self.decoder.finish().map_err(frame)?;
                return Ok(None);
            }
            let n = self
                .reader
                .read(&mut buf)
                .await
                .map_err(|source| LogStreamError::Io { path: self.path.clone(), source })?;
            if n == 0 {
                self.done = true;
            } else {
                self.decoder.push(&buf[..n]);
            }
        }
    }
}

impl PluginBuilder {
    /// Serve `driver` as `LogDriver`.
    pub fn log<D: LogDriver>(mut self, driver: D) -> Self {
        let d = Arc::new(driver);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        let k = ErrorKey::Err;
        let dd = d.clone();
        r.json(LogMethod::StartLogging.as_str(), k, move |req: StartLoggingRequest| {
            let d = dd.clone();
            async move { d.start_logging(req.file, req.info).await.map(|()| ErrorBody::default()) }
        });
        let dd = d.clone();
        r.json(LogMethod::StopLogging.as_str(), k, move |req: StopLoggingRequest| {
            let d = dd.clone();
            async move { d.stop_logging(req.file).await.map(|()| ErrorBody::default()) }
        });
        let dd = d.clone();
        r.unit(LogMethod::Capabilities.as_str(), k, move || {
            let d = dd.clone();
            async move {
                d.capabilities().await.map(|cap| CapabilitiesResponse { cap, err: String::new() })
            }
        });
        let method = LogMethod::ReadLogs.as_str();
        r.raw(
            method,
            Arc::new(move |body: Bytes| {
                let d = d.clone();
                Box::pin(async move {
                    let req = match decode::<ReadLogsRequest>(method, &body) {
                        Ok(req) => req,
                        Err(reply) => return reply,
                    };
                    match d.read_logs(req).await {
                        Ok(entries) => Reply::stream(frames(entries)),
                        Err(e) => finish::<ErrorBody>(k, Err(e)),
                    }
                })
            }),
        );
        self
    }
}

/// Frame each entry onto a byte channel, until the entries end or the client goes away.
fn frames(mut entries: LogEntries) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(entry) = entries.rx.recv().await {
            let mut out = Vec::with_capacity(entry.encoded_len() + 4);
            if let Err(e) = entry.encode_frame(&mut out) {
                tracing::warn!(error = %e, "dropping a log entry that cannot be framed");
                continue;
            }
            if tx.send(out.into()).await.is_err() {
                break;
            }
        }
    });
    rx
}
