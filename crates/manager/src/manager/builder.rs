//! [`ManagerBuilder`]: what a daemon must register before the manager restores its plugins.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::daemon_event::{DaemonEvent, DaemonEventSink};
use super::{Inner, Manager, ManagerConfig};
use crate::blobs::BlobStore;
use crate::error::ManagerError;
use crate::events::Publisher;
use crate::executor::Executor;
use crate::fsutil;
use crate::store::{Handler, PluginRef, SpecOpt, Store};

/// Builds a [`Manager`] with its capability handlers, runtime-spec options and daemon-event
/// sink in place *before* it restores the plugins that were enabled, so a restored plugin is
/// started with the same spec, and announced to the same handlers, as one enabled later.
/// (Registered on the [`Manager`] after [`Manager::new`], a runtime option would miss the
/// plugins `new` already started.)
///
/// ```no_run
/// use dockplug_manager::{Executor, Manager, ManagerConfig, ManagerError};
///
/// async fn open<E: Executor>(executor: E) -> Result<Manager<E>, ManagerError> {
///     let config = ManagerConfig::new("/var/lib/docker/plugins", "/run/docker/plugins");
///     Manager::builder(config, executor)
///         .register_runtime_opt("volumedriver", |spec| {
///             spec.set_hostname(Some("volumes".to_owned()));
///         })
///         .handle("VolumeDriver", |plugin| println!("volume driver {}", plugin.name))
///         .build()
///         .await
/// }
/// ```
pub struct ManagerBuilder<E: Executor> {
    config: ManagerConfig,
    executor: E,
    handlers: Vec<(String, Handler)>,
    spec_opts: Vec<(String, SpecOpt)>,
    daemon_events: Option<DaemonEventSink>,
}

impl<E: Executor> std::fmt::Debug for ManagerBuilder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("config", &self.config)
            .field("handlers", &self.handlers.len())
            .field("spec_opts", &self.spec_opts.len())
            .finish_non_exhaustive()
    }
}

impl<E: Executor> Manager<E> {
    /// A builder, for handlers and runtime-spec options that must apply to restored plugins
    /// too. [`Manager::new`] is `Manager::builder(config, executor).build()`.
    pub fn builder(config: ManagerConfig, executor: E) -> ManagerBuilder<E> {
        ManagerBuilder {
            config,
            executor,
            handlers: Vec::new(),
            spec_opts: Vec::new(),
            daemon_events: None,
        }
    }
}

impl<E: Executor> ManagerBuilder<E> {
    /// [`Manager::handle`], in place before restore: `handler` is called for every plugin
    /// declaring `docker.<capability>/1.0` once it serves, restored plugins included.
    pub fn handle(
        mut self,
        capability: &str,
        handler: impl Fn(&PluginRef) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.push((capability.to_owned(), Arc::new(handler)));
        self
    }

    /// [`Manager::register_runtime_opt`], in place before restore: `opt` changes the spec of
    /// every start of a plugin declaring `docker.<capability>/1.0`, restored plugins included.
    pub fn register_runtime_opt(
        mut self,
        capability: &str,
        opt: impl Fn(&mut oci_spec::runtime::Spec) + Send + Sync + 'static,
    ) -> Self {
        self.spec_opts.push((capability.to_owned(), Arc::new(opt)));
        self
    }

    /// [`Manager::on_daemon_event`], in place from the start.
    pub fn on_daemon_event(
        mut self,
        sink: impl Fn(&DaemonEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.daemon_events = Some(Arc::new(sink));
        self
    }

    /// Opens the manager: creates the directories, loads the store, registers what was
    /// given, starts exit handling and restores the plugins that were enabled.
    pub async fn build(self) -> Result<Manager<E>, ManagerError> {
        let ManagerBuilder { config, executor, handlers, spec_opts, daemon_events } = self;
        for d in [config.root.clone(), config.exec_root.clone(), config.root.join("tmp")] {
            fsutil::mkdir_all(&d, 0o700).map_err(ManagerError::io("mkdir", &d))?;
        }
        let blobs = BlobStore::open(config.root.join("storage"))?;
        blobs.clean_ingest()?;
        // Leftovers of interrupted creates are never referenced: drop them.
        if let Ok(entries) = std::fs::read_dir(config.root.join("tmp")) {
            for e in entries.flatten() {
                let _ = fsutil::remove_dir_if_exists(&e.path());
            }
        }
        let root = config.root.clone();
        let store =
            ManagerError::blocking("load the plugin store", move || Store::load(&root)).await?;
        for (capability, handler) in handlers {
            store.add_handler(&capability, handler);
        }
        for (capability, opt) in spec_opts {
            store.add_spec_opt(&capability, opt);
        }
        let exits = executor.take_exits();
        let manager = Manager {
            inner: Arc::new(Inner {
                config,
                store,
                executor,
                blobs,
                events: Publisher::default(),
                daemon_events: std::sync::RwLock::new(daemon_events),
                gc_lock: tokio::sync::RwLock::new(()),
                shutting_down: AtomicBool::new(false),
                logs: std::sync::Mutex::default(),
            }),
        };
        if let Some(exits) = exits {
            manager.spawn_exit_loop(exits);
        }
        manager.restore(!manager.inner.config.restore_in_background).await;
        Ok(manager)
    }
}
