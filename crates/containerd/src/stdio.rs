//! A plugin's stdout and stderr: two FIFOs the shim writes into and we read, each pumped into
//! the sink the manager gave.
//!
//! A FIFO is first opened read-write, so opening never blocks and the reader sees no early
//! end of file while the shim has not opened its end yet. Once the task exists (the shim
//! holds the writing end), each pump re-opens its FIFO read-only ([`Stdio::writer_open`]):
//! from then on the end of the stream is a real end of file, when the shim has copied the
//! last byte and closed its end, so nothing is lost and nothing is waited for. A FIFO still
//! open read-write when the executor says the process is gone ([`Stdio::finish`]) is drained
//! until it has been quiet for a moment.

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
/// ... and draining (or waiting for the shim to close its end) never takes longer than this.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The phases a pump is told about.
const WRITER_OPEN: u8 = 1;
const FINISH: u8 = 2;

/// The two pumps of one plugin.
#[derive(Debug)]
pub(crate) struct Stdio {
    phase: watch::Sender<u8>,
    pumps: Vec<JoinHandle<()>>,
    fifos: [PathBuf; 2],
}

impl Stdio {
    /// Creates (or, with `reuse`, re-opens when present) the two FIFOs and starts pumping
    /// them into the sinks of `stdio`. With `reuse` (a restore: the shim already holds the
    /// writing ends) the FIFOs are opened read-only at once.
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
        let (phase, watcher) = watch::channel(0);
        let PluginStdio { stdout: out_sink, stderr: err_sink, .. } = stdio;
        let pumps = vec![
            tokio::spawn(pump(stdout.clone(), out, reuse, out_sink, watcher.clone())),
            tokio::spawn(pump(stderr.clone(), err, reuse, err_sink, watcher)),
        ];
        Ok(Stdio { phase, pumps, fifos: [stdout, stderr] })
    }

    /// The shim now holds the writing ends: switch to read-only FIFOs, whose end of file
    /// marks the end of the output.
    pub(crate) fn writer_open(&self) {
        self.phase.send_if_modified(|p| {
            let change = *p < WRITER_OPEN;
            if change {
                *p = WRITER_OPEN;
            }
            change
        });
    }

    /// The process is gone: drain what is left, close the sinks, remove the FIFOs.
    pub(crate) async fn finish(self) {
        let _ = self.phase.send(FINISH);
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
    if reuse && is_fifo(path) {
        return open_read_only(path);
    }
    match std::fs::symlink_metadata(path).ok() {
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

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn open_read_only(path: &Path) -> Result<pipe::Receiver, Error> {
    pipe::OpenOptions::new().open_receiver(path).map_err(|source| Error::Io {
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

/// Copies the FIFO into the sink until its end of file (read-only), until told to finish
/// (then drains), or until the sink refuses.
async fn pump(
    path: PathBuf,
    mut fifo: pipe::Receiver,
    mut read_only: bool,
    mut sink: OutputSink,
    mut phase: watch::Receiver<u8>,
) {
    // Held for as long as the plugin runs, two per plugin (the largest part of a running
    // plugin's heap in dockplugd): 4 KB, a few lines; a flood takes more, smaller reads.
    let mut buf = vec![0u8; 4 * 1024];
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
            changed = phase.changed() => {
                let now = if changed.is_err() { FINISH } else { *phase.borrow_and_update() };
                if now == WRITER_OPEN && !read_only {
                    // Same pipe, so nothing written so far is lost by the switch.
                    match open_read_only(&path) {
                        Ok(reader) => {
                            fifo = reader;
                            read_only = true;
                        }
                        Err(e) => tracing::debug!(error = %e, "keeping the read-write fifo"),
                    }
                } else if now >= FINISH {
                    if read_only {
                        to_end_of_file(&mut fifo, &mut sink, &mut buf).await;
                    } else {
                        drain(&mut fifo, &mut sink, &mut buf).await;
                    }
                    break;
                }
            }
        }
    }
    let _ = sink.flush().await;
    let _ = sink.shutdown().await;
}

/// Reads until the shim closes its end (bounded).
async fn to_end_of_file(fifo: &mut pipe::Receiver, sink: &mut OutputSink, buf: &mut [u8]) {
    let limit = tokio::time::Instant::now() + DRAIN_LIMIT;
    loop {
        match tokio::time::timeout_at(limit, fifo.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if sink.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            _ => return,
        }
    }
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
