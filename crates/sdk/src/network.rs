//! `NetworkDriver`: serve a libnetwork remote driver (libnetwork `drivers/remote/api/api.go`).

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::network::{
    AllocateNetworkRequest, AllocateNetworkResponse, CapabilitiesResponse, CreateEndpointRequest,
    CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest,
    DiscoveryNotification, EndpointInfoRequest, EndpointInfoResponse, ErrResponse,
    FreeNetworkRequest, GwAllocCheckRequest, GwAllocCheckResponse, JoinRequest, JoinResponse,
    LeaveRequest, NetworkMethod, ProgramExternalConnectivityRequest,
    RevokeExternalConnectivityRequest, IMPLEMENTS,
};

use crate::error::PluginResult;
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// A network driver. The seven core calls are required; the swarm allocator calls, endpoint
/// info, external connectivity, discovery and the gateway check have defaults that do nothing.
///
/// `get_capabilities` is mandatory for the daemon: if it fails, the driver is not registered.
/// Its `Scope` must be exactly `local` or `global`.
pub trait NetworkDriver: Send + Sync + 'static {
    /// `NetworkDriver.GetCapabilities`: `Scope` (and optionally `ConnectivityScope`,
    /// `GwAllocChecker`).
    fn get_capabilities(&self) -> impl Future<Output = PluginResult<CapabilitiesResponse>> + Send;

    /// `NetworkDriver.CreateNetwork`.
    fn create_network(
        &self,
        req: CreateNetworkRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send;

    /// `NetworkDriver.DeleteNetwork`.
    fn delete_network(
        &self,
        req: DeleteNetworkRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send;

    /// `NetworkDriver.CreateEndpoint`: set only the interface fields that were empty in the
    /// request (or none).
    fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> impl Future<Output = PluginResult<CreateEndpointResponse>> + Send;

    /// `NetworkDriver.DeleteEndpoint`.
    fn delete_endpoint(
        &self,
        req: DeleteEndpointRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send;

    /// `NetworkDriver.Join`: the interface to move into the sandbox, gateways, routes.
    fn join(&self, req: JoinRequest) -> impl Future<Output = PluginResult<JoinResponse>> + Send;

    /// `NetworkDriver.Leave`.
    fn leave(&self, req: LeaveRequest) -> impl Future<Output = PluginResult<()>> + Send;

    /// `NetworkDriver.EndpointOperInfo`. Default: no information.
    fn endpoint_oper_info(
        &self,
        req: EndpointInfoRequest,
    ) -> impl Future<Output = PluginResult<EndpointInfoResponse>> + Send {
        let _ = req;
        async { Ok(EndpointInfoResponse { value: Some(Default::default()), err: String::new() }) }
    }

    /// `NetworkDriver.AllocateNetwork` (swarm manager, global scope). Default: no options.
    fn allocate_network(
        &self,
        req: AllocateNetworkRequest,
    ) -> impl Future<Output = PluginResult<AllocateNetworkResponse>> + Send {
        let _ = req;
        async { Ok(AllocateNetworkResponse::default()) }
    }

    /// `NetworkDriver.FreeNetwork` (swarm manager, global scope). Default: nothing to free.
    fn free_network(
        &self,
        req: FreeNetworkRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `NetworkDriver.ProgramExternalConnectivity`. Default: nothing to program.
    fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivityRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `NetworkDriver.RevokeExternalConnectivity`. Default: nothing to revoke.
    fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivityRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `NetworkDriver.DiscoverNew`. Default: ignored.
    fn discover_new(
        &self,
        req: DiscoveryNotification,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `NetworkDriver.DiscoverDelete`. Default: ignored.
    fn discover_delete(
        &self,
        req: DiscoveryNotification,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `NetworkDriver.GwAllocCheck` (moby 28+, only with `GwAllocChecker: true`). Default: let
    /// the daemon reserve gateways as usual.
    fn gw_alloc_check(
        &self,
        req: GwAllocCheckRequest,
    ) -> impl Future<Output = PluginResult<GwAllocCheckResponse>> + Send {
        let _ = req;
        async { Ok(GwAllocCheckResponse::default()) }
    }
}

/// Register a JSON method whose handler returns `()`, replied as `{}`.
macro_rules! unit_reply {
    ($r:expr, $d:expr, $m:expr, $req:ty, $call:ident) => {{
        let d = $d.clone();
        $r.json($m.as_str(), ErrorKey::Err, move |req: $req| {
            let d = d.clone();
            async move { d.$call(req).await.map(|()| ErrResponse::default()) }
        });
    }};
}

/// Register a JSON method whose handler returns its reply.
macro_rules! reply {
    ($r:expr, $d:expr, $m:expr, $req:ty, $call:ident) => {{
        let d = $d.clone();
        $r.json($m.as_str(), ErrorKey::Err, move |req: $req| {
            let d = d.clone();
            async move { d.$call(req).await }
        });
    }};
}

impl PluginBuilder {
    /// Serve `driver` as `NetworkDriver`.
    pub fn network<D: NetworkDriver>(mut self, driver: D) -> Self {
        let d = Arc::new(driver);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        {
            let d = d.clone();
            r.unit(NetworkMethod::GetCapabilities.as_str(), ErrorKey::Err, move || {
                let d = d.clone();
                async move { d.get_capabilities().await }
            });
        }
        unit_reply!(r, d, NetworkMethod::CreateNetwork, CreateNetworkRequest, create_network);
        unit_reply!(r, d, NetworkMethod::DeleteNetwork, DeleteNetworkRequest, delete_network);
        reply!(r, d, NetworkMethod::CreateEndpoint, CreateEndpointRequest, create_endpoint);
        unit_reply!(r, d, NetworkMethod::DeleteEndpoint, DeleteEndpointRequest, delete_endpoint);
        reply!(r, d, NetworkMethod::Join, JoinRequest, join);
        unit_reply!(r, d, NetworkMethod::Leave, LeaveRequest, leave);
        reply!(r, d, NetworkMethod::EndpointOperInfo, EndpointInfoRequest, endpoint_oper_info);
        reply!(r, d, NetworkMethod::AllocateNetwork, AllocateNetworkRequest, allocate_network);
        unit_reply!(r, d, NetworkMethod::FreeNetwork, FreeNetworkRequest, free_network);
        unit_reply!(
            r,
            d,
            NetworkMethod::ProgramExternalConnectivity,
            ProgramExternalConnectivityRequest,
            program_external_connectivity
        );
        unit_reply!(
            r,
            d,
            NetworkMethod::RevokeExternalConnectivity,
            RevokeExternalConnectivityRequest,
            revoke_external_connectivity
        );
        unit_reply!(r, d, NetworkMethod::DiscoverNew, DiscoveryNotification, discover_new);
        unit_reply!(r, d, NetworkMethod::DiscoverDelete, DiscoveryNotification, discover_delete);
        reply!(r, d, NetworkMethod::GwAllocCheck, GwAllocCheckRequest, gw_alloc_check);
        self
    }
}
