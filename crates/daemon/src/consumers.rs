//! The daemon's plugin consumers, assembled: one getter over the manager and v1 discovery
//! (`--socket-dir`, `--spec-dir`), the volume service (`<data-root>/volumes`), the
//! authorization chain (`--authorization-plugin`, checked at start as dockerd does), and
//! the network/IPAM drivers registered through the getter. [`Consumers::engine`] gives the
//! engine builder with their routes, middleware and `/info`.

use std::sync::Arc;

use anyhow::Context as _;
use dockplug_engine::consumers::WithConsumers;
use dockplug_engine::{AuthzMiddleware, Backend, Engine, EngineBuilder};
use dockplug_getter::authz::{AuthzChain, AuthzConfig};
use dockplug_getter::drivers::NetworkDrivers;
use dockplug_getter::volume::{VolumeConfig, VolumeService};
use dockplug_getter::Getter;
use dockplug_manager::{Executor, Manager};
use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};

use crate::config::Config;

/// The consumers of plugins a daemon without containers has.
pub struct Consumers {
    volumes: VolumeService,
    authz: AuthzChain,
    networks: Arc<NetworkDrivers>,
}

impl Consumers {
    /// Opens them over `manager`. Fails when an `--authorization-plugin` cannot be found
    /// (dockerd refuses to start then, too) or the volume store cannot be opened.
    pub async fn open<E: Executor>(config: &Config, manager: &Manager<E>) -> anyhow::Result<Self> {
        let v1 = Arc::new(Registry::new(v1_discovery(config), RegistryConfig::default()));
        let getter = Getter::new(manager.clone(), Some(v1));
        let networks = NetworkDrivers::register(&getter);
        let g = getter.clone();
        tokio::spawn(async move { NetworkDrivers::discover(&g).await });

        let authz_config = AuthzConfig::default().timeout(config.authz_timeout);
        let authz = AuthzChain::new(getter.clone(), config.authz_plugins.clone(), authz_config);
        authz.validate().await.context("invalid --authorization-plugin")?;
        authz.watch_plugins();

        let dir = config.data_root.join("volumes");
        let volumes = VolumeService::open(getter, &dir, VolumeConfig::default())
            .await
            .with_context(|| format!("cannot open the volume store in {}", dir.display()))?;
        Ok(Self { volumes, authz, networks })
    }

    /// The engine builder over `backend`, with the volume routes, the authorization
    /// middleware and the consumers' `/info`.
    pub fn engine<B: Backend>(&self, backend: B) -> EngineBuilder {
        let backend = WithConsumers::new(backend)
            .volumes(self.volumes.clone())
            .networks(self.networks.clone())
            .authz(self.authz.clone());
        let builder = Engine::builder(backend).middleware(AuthzMiddleware::new(self.authz.clone()));
        dockplug_engine::volumes::routes(builder, self.volumes.clone())
    }
}

/// `--socket-dir` and `--spec-dir`, each defaulting to Moby's directories when not given.
pub fn v1_discovery(config: &Config) -> LocalRegistry {
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
}
