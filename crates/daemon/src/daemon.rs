//! Start, serve, stop: the order matters.
//!
//! 1. The data-root lock (a second instance stops here, before touching anything), then the
//!    PID file.
//! 2. The API sockets, bound at once: clients queue in the backlog while the rest opens.
//! 3. containerd (given, system or private) and the executor on it.
//! 4. The manager: the store is loaded before the first request is served; plugins that were
//!    enabled come back in the background, and their state shows while they do.
//! 5. SIGTERM or SIGINT: stop accepting, let requests finish (bounded), stop the plugins
//!    (unless `--live-restore`), stop a private containerd, remove the PID file.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use dockplug_containerd::{ContainerdConfig, ContainerdExecutor};
use dockplug_distribution::{RegistryClient, RegistryConfig};
use dockplug_engine::{EngineConfig, ManagerBackend};
use dockplug_manager::{Manager, ManagerConfig};
use dockplug_v1::LocalRegistry;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::Config;
use crate::containerd::Containerd;
use crate::listen::Listeners;
use crate::lock::{DataRootLock, Pidfile};
use crate::output::Tagged;

/// How long requests in flight get to finish after SIGTERM (event streams end at once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let _lock = DataRootLock::acquire(&config.data_root)?;
    let _pidfile = Pidfile::write(&config.pidfile)?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let listeners = Listeners::bind(&config.hosts).await?;

    log_v1_plugins(&config);
    let containerd = Containerd::choose(&config).await?;
    let result = serve(&config, &containerd, listeners, started, async {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
            _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
        }
    })
    .await;
    containerd.stop().await;
    if result.is_ok() {
        tracing::info!("dockplugd stopped");
    }
    result
}

async fn serve(
    config: &Config,
    containerd: &Containerd,
    listeners: Listeners,
    started: Instant,
    stop_signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let ctd = ContainerdConfig::new(containerd.socket(), config.fifo_dir())
        .with_namespace(&config.plugins_namespace);
    let executor = ContainerdExecutor::connect(ctd).await.with_context(|| {
        format!("cannot connect to containerd at {}", containerd.socket().display())
    })?;
    let mut mconfig = ManagerConfig::new(config.plugin_root(), config.plugin_exec_root());
    mconfig.live_restore = config.live_restore;
    mconfig.restore_in_background = true;
    let manager = Manager::new(mconfig, Tagged::new(executor, config.plugin_root()))
        .await
        .context("cannot open the plugin manager")?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "API ready");

    let mut engine_config = EngineConfig::default();
    engine_config.shutdown_grace = SHUTDOWN_GRACE;
    let mut registry = RegistryConfig::default();
    registry.insecure_registries = config.insecure_registries.clone();
    let backend = ManagerBackend::new(manager.clone(), RegistryClient::new(registry));
    let consumers = crate::consumers::Consumers::open(config, &manager).await?;
    let trim = crate::memory::Trim::default();
    let engine =
        consumers.engine(backend).middleware(trim.middleware()).config(engine_config).build();
    let trimmer = tokio::spawn(trim.run());
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(listeners.serve(engine, stop_rx));
    stop_signal.await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    trimmer.abort();
    if config.live_restore {
        tracing::info!("live restore: plugins keep running");
    }
    manager.shutdown().await;
    Ok(())
}

/// Logs the v1 plugins that `--socket-dir` and `--spec-dir` (Moby's directories by default)
/// make visible, in the background: lookups by name happen later, when something asks.
fn log_v1_plugins(config: &Config) {
    let registry = if config.socket_dirs.is_empty() && config.spec_dirs.is_empty() {
        LocalRegistry::new()
    } else {
        let defaults = LocalRegistry::new();
        let sockets = if config.socket_dirs.is_empty() {
            defaults.socket_dirs().to_vec()
        } else {
            config.socket_dirs.clone()
        };
        let specs = if config.spec_dirs.is_empty() {
            defaults.spec_dirs().to_vec()
        } else {
            config.spec_dirs.clone()
        };
        LocalRegistry::with_dirs(sockets, specs)
    };
    tokio::task::spawn_blocking(move || match registry.scan() {
        Ok(names) => tracing::info!(
            socket_dirs = ?registry.socket_dirs(),
            spec_dirs = ?registry.spec_dirs(),
            plugins = ?names,
            "v1 plugin discovery"
        ),
        Err(e) => tracing::warn!(error = %e, "v1 plugin discovery failed"),
    });
}
