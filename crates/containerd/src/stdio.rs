//! A plugin's stdout and stderr: two FIFOs the shim writes into and we read, each pumped into
//! the sink the manager gave.
//!
//! The FIFOs are opened read-write, so opening never blocks and the reader never sees an
//! early end of file while the shim has not opened its end yet. The price is that the end of
//! a stream is not an end of file: the executor says when the process is gone
//! ([`Stdio::finish`]), and the pump then drains what is left (until the pipe has been quiet
//! for a moment) and closes the sink.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockplug_manager::{OutputSink, PluginStdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;

/// After the process is gone, the pipe counts as drained once it has been quiet this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// ... and draining never takes longer than this.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The two pumps of one plugin.
#[derive(Debug)]
pub(crate) struct Stdio {
    finish: watch::Sender<bool>,
    pumps: Vec<JoinHandle<()>>,
    fifos: [PathBuf; 2],
}

impl Stdio {
    /// Creates (or, with `reuse`, re-opens when present) the two FIFOs and starts pumping
    /// them into the sinks of `stdio`.
    pub(crate) fn open(
        dir: &Path,
        stdout: PathBuf,
        stderr: PathBuf,
        stdio: PluginStdio,
        reuse: bool,
    ) -> Result<Stdio, Error> {
        ensure_dir(dir)?;
        let out = open_fifo(&stdout, reuse)?;
        let err = open_fifo(&stderr, reuse)?;
        let (finish, watcher) = watch::channel(false);
        let PluginStdio { stdout: out_sink, stderr: err_sink, .. } = stdio;
        let pumps = vec![
            tokio::spawn(pump(out, out_sink, watcher.clone())),
            tokio::spawn(pump(err, err_sink, watcher)),
        ];
        Ok(Stdio { finish, pumps, fifos: [stdout, stderr] })
    }

    /// The process is gone: drain what is left, close the sinks, remove the FIFOs.
    pub(crate) async fn finish(self) {
        let _ = self.finish.send(true);
        for pump in self.pumps {
            let _ = pump.await;
        }
        for fifo in &self.fifos {
            remove_fifo(fifo);
        }
    }

    /// Stops pumping without draining and leaves the FIFOs in place (the process lives on
    /// without us, for a later restore).
    pub(crate) fn detach(self) {
        for pump in &self.pumps {
            pump.abort();
        }
    }
}

fn ensure_dir(dir: &Path) -> Result<(), Error> {
    let io =
        |source| Error::Io { operation: "create fifo directory", path: dir.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

fn open_fifo(path: &Path, reuse: bool) -> Result<pipe::Receiver, Error> {
    let is_fifo = std::fs::symlink_metadata(path).map(|m| m.file_type().is_fifo()).ok();
    match is_fifo {
        Some(true) if reuse => {}
        Some(_) => {
            std::fs::remove_file(path).map_err(|source| Error::Io {
                operation: "remove stale fifo",
                path: path.to_owned(),
                source,
            })?;
            make_fifo(path)?;
        }
        None => make_fifo(path)?,
    }
    pipe::OpenOptions::new().read_write(true).open_receiver(path).map_err(|source| Error::Io {
        operation: "open fifo",
        path: path.to_owned(),
        source,
    })
}

fn make_fifo(path: &Path) -> Result<(), Error> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|errno| {
        Error::Io { operation: "create fifo", path: path.to_owned(), source: errno.into() }
    })
}

fn remove_fifo(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(fifo = %path.display(), error = %e, "cannot remove fifo"),
    }
}

/// Copies the FIFO into the sink until told to finish (then drains) or the sink refuses.
async fn pump(mut fifo: pipe::Receiver, mut sink: OutputSink, mut finish: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = fifo.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    if sink.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            },
            changed = finish.changed() => {
                if changed.is_err() || *finish.borrow() {
                    drain(&mut fifo, &mut sink, &mut buf).await;
                    break;
                }
            }
        }
    }
    let _ = sink.flush().await;
    let _ = sink.shutdown().await;
}

async fn drain(fifo: &mut pipe::Receiver, sink: &mut OutputSink, buf: &mut [u8]) {
    let limit = tokio::time::Instant::now() + DRAIN_LIMIT;
    while tokio::time::Instant::now() < limit {
        match tokio::time::timeout(DRAIN_QUIET, fifo.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if sink.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}
