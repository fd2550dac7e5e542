//! Network and IPAM drivers, registered through [`Getter::handle`] as libnetwork registers
//! remote drivers (Moby's `libnetwork/drivers/remote` and `ipams/remote` `Register`): a
//! daemon without networking still knows them, lists them in `/info` and tells whoever asks.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::getter::Getter;
use crate::plugin::CompatPlugin;

/// The `Implements` name of network drivers.
pub const NETWORK: &str = dockplug_protocol::network::IMPLEMENTS;
/// The `Implements` name of IPAM drivers.
pub const IPAM: &str = dockplug_protocol::ipam::IMPLEMENTS;

/// Which kind of driver registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DriverKind {
    /// A `NetworkDriver`.
    Network,
    /// An `IpamDriver`.
    Ipam,
}

type Callback = Arc<dyn Fn(DriverKind, &CompatPlugin) + Send + Sync>;

/// The network and IPAM drivers seen so far.
#[derive(Default)]
pub struct NetworkDrivers {
    network: Mutex<BTreeSet<String>>,
    ipam: Mutex<BTreeSet<String>>,
    callbacks: Mutex<Vec<Callback>>,
}

impl std::fmt::Debug for NetworkDrivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDrivers")
            .field("network", &self.network())
            .field("ipam", &self.ipam())
            .finish_non_exhaustive()
    }
}

impl NetworkDrivers {
    /// Registers handlers for both kinds on `getter`: v2 drivers as they are enabled (and
    /// those running now), v1 drivers as they activate.
    pub fn register(getter: &Getter) -> Arc<Self> {
        let this = Arc::new(Self::default());
        for (kind, cap) in [(DriverKind::Network, NETWORK), (DriverKind::Ipam, IPAM)] {
            let weak = Arc::downgrade(&this);
            getter.handle(cap, move |p| {
                if let Some(this) = weak.upgrade() {
                    this.add(kind, p);
                }
            });
        }
        this
    }

    /// Activates the v1 plugins of both kinds (their handlers fire then), for a daemon
    /// that wants them listed before anything looks them up.
    pub async fn discover(getter: &Getter) {
        for cap in [NETWORK, IPAM] {
            if let Err(e) = getter.get_all_by_capability(cap).await {
                tracing::warn!(capability = cap, error = %e, "driver discovery failed");
            }
        }
    }

    /// Runs `callback` for each driver registered from now on.
    pub fn on_register(
        &self,
        callback: impl Fn(DriverKind, &CompatPlugin) + Send + Sync + 'static,
    ) {
        self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::new(callback));
    }

    fn add(&self, kind: DriverKind, p: &CompatPlugin) {
        let set = match kind {
            DriverKind::Network => &self.network,
            DriverKind::Ipam => &self.ipam,
        };
        set.lock().unwrap_or_else(|e| e.into_inner()).insert(p.name().to_owned());
        tracing::info!(driver = p.name(), kind = ?kind, v1 = p.is_v1(), "driver registered");
        let callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for c in callbacks {
            c(kind, p);
        }
    }

    /// The network drivers, sorted.
    pub fn network(&self) -> Vec<String> {
        self.network.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The IPAM drivers, sorted.
    pub fn ipam(&self) -> Vec<String> {
        self.ipam.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}
