//! The API sockets: bound before anything else starts (a client that connects while the
//! daemon is still opening waits in the backlog instead of failing), served over HTTP/1.1,
//! each by the engine's server, and removed at shutdown.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use dockplug_engine::Engine;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// The bound API sockets.
#[derive(Debug)]
pub struct Listeners {
    bound: Vec<(PathBuf, UnixListener)>,
}

impl Listeners {
    /// Binds each path (mode 0660, as dockerd's socket). A stale socket file is replaced; a
    /// socket that answers belongs to a running daemon and is refused.
    pub async fn bind(paths: &[PathBuf]) -> anyhow::Result<Listeners> {
        let mut bound = Vec::new();
        for path in paths {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            match std::fs::symlink_metadata(path) {
                Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                    if tokio::net::UnixStream::connect(path).await.is_ok() {
                        bail!("{} is in use by a running daemon", path.display());
                    }
                    std::fs::remove_file(path)
                        .with_context(|| format!("cannot remove the stale {}", path.display()))?;
                }
                Ok(_) => bail!("{} exists and is not a socket", path.display()),
                Err(_) => {}
            }
            let listener = UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            tracing::info!(socket = %path.display(), "API listen on");
            bound.push((path.clone(), listener));
        }
        Ok(Listeners { bound })
    }

    /// Serves `engine` on every socket until `stop` turns true (the engine then ends event
    /// streams and lets requests in flight finish, bounded), and removes the socket files.
    pub async fn serve(self, engine: Engine, stop: watch::Receiver<bool>) {
        let mut servers = tokio::task::JoinSet::new();
        let mut paths = Vec::new();
        for (path, listener) in self.bound {
            paths.push(path);
            let engine = engine.clone();
            let mut stop = stop.clone();
            servers.spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = engine.serve(listener, shutdown).await {
                    tracing::error!(error = %e, "the API listener failed");
                }
            });
        }
        while servers.join_next().await.is_some() {}
        for path in &paths {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(socket = %path.display(), error = %e, "cannot remove the API socket");
            }
        }
    }
}
