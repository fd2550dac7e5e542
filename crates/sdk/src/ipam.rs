//! `IpamDriver`: serve address management (libnetwork `ipams/remote/api/api.go`).
//!
//! Failures are sent as a 500 with both `Err` and `Error`: dockerd reads `Err` on a non-200
//! reply and `Error` on a 200 one, so the message arrives whichever way it looks.

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::ipam::{
    AddressSpacesResponse, CapabilitiesResponse, ErrResponse, IpamMethod, ReleaseAddressRequest,
    ReleasePoolRequest, RequestAddressRequest, RequestAddressResponse, RequestPoolRequest,
    RequestPoolResponse, IMPLEMENTS,
};

use crate::error::PluginResult;
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// An IPAM driver. `get_capabilities` has a default (no capabilities).
///
/// `request_pool` must be idempotent: the daemon may ask again for the same pool (request
/// replay, overlap retries) and expects the same answer.
pub trait IpamDriver: Send + Sync + 'static {
    /// `IpamDriver.GetCapabilities`. Default: neither `RequiresMACAddress` nor
    /// `RequiresRequestReplay`.
    fn get_capabilities(&self) -> impl Future<Output = PluginResult<CapabilitiesResponse>> + Send {
        async { Ok(CapabilitiesResponse::default()) }
    }

    /// `IpamDriver.GetDefaultAddressSpaces`.
    fn get_default_address_spaces(
        &self,
    ) -> impl Future<Output = PluginResult<AddressSpacesResponse>> + Send;

    /// `IpamDriver.RequestPool`: a pool id and its CIDR (and optionally the gateway in `Data`).
    fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> impl Future<Output = PluginResult<RequestPoolResponse>> + Send;

    /// `IpamDriver.ReleasePool`.
    fn release_pool(
        &self,
        req: ReleasePoolRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send;

    /// `IpamDriver.RequestAddress`: an address in CIDR form (an empty address is an error to
    /// the daemon).
    fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> impl Future<Output = PluginResult<RequestAddressResponse>> + Send;

    /// `IpamDriver.ReleaseAddress`.
    fn release_address(
        &self,
        req: ReleaseAddressRequest,
    ) -> impl Future<Output = PluginResult<()>> + Send;
}

impl PluginBuilder {
    /// Serve `driver` as `IpamDriver`.
    pub fn ipam<D: IpamDriver>(mut self, driver: D) -> Self {
        let d = Arc::new(driver);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        let k = ErrorKey::ErrAndError;
        let dd = d.clone();
        r.unit(IpamMethod::GetCapabilities.as_str(), k, move || {
            let d = dd.clone();
            async move { d.get_capabilities().await }
        });
        let dd = d.clone();
        r.unit(IpamMethod::GetDefaultAddressSpaces.as_str(), k, move || {
            let d = dd.clone();
            async move { d.get_default_address_spaces().await }
        });
        let dd = d.clone();
        r.json(IpamMethod::RequestPool.as_str(), k, move |req: RequestPoolRequest| {
            let d = dd.clone();
            async move { d.request_pool(req).await }
        });
        let dd = d.clone();
        r.json(IpamMethod::ReleasePool.as_str(), k, move |req: ReleasePoolRequest| {
            let d = dd.clone();
            async move { d.release_pool(req).await.map(|()| ErrResponse::default()) }
        });
        let dd = d.clone();
        r.json(IpamMethod::RequestAddress.as_str(), k, move |req: RequestAddressRequest| {
            let d = dd.clone();
            async move { d.request_address(req).await }
        });
        r.json(IpamMethod::ReleaseAddress.as_str(), k, move |req: ReleaseAddressRequest| {
            let d = d.clone();
            async move { d.release_address(req).await.map(|()| ErrResponse::default()) }
        });
        self
    }
}
