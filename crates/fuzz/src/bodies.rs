//! Every v1 subsystem's request and reply bodies.
//!
//! The first byte picks a type of the subsystem, the rest is the body. Each body is read
//! both ways a peer reads it ([`body::decode_request`]: empty is the default;
//! [`body::decode_reply`]: first JSON value only). A value that decodes must encode, and
//! its encoding must be a fixed point: decoding our own bytes and encoding again gives the
//! same bytes (what we write, we read back unchanged).

use dockplug_protocol::{
    authz, body, common, graph, ipam, log, network, secrets, subsystem::Reply, volume,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::select;

/// Decodes `data` as `T` in both modes; checks that what decodes re-encodes stably.
fn roundtrip<T: DeserializeOwned + Serialize + Default>(data: &[u8]) -> Vec<T> {
    let mut decoded = Vec::new();
    for value in [body::decode_request::<T>(data), body::decode_reply::<T>(data)] {
        let Ok(value) = value else { continue };
        let once = body::encode(&value).expect("a decoded body encodes");
        let back: T = body::decode_reply(&once).expect("our own encoding decodes");
        let twice = body::encode(&back).expect("a decoded body encodes");
        assert_eq!(
            String::from_utf8_lossy(&once),
            String::from_utf8_lossy(&twice),
            "encoding of {} is not a fixed point",
            std::any::type_name::<T>()
        );
        decoded.push(back);
    }
    decoded
}

/// A reply: also read its error the way the daemon does.
fn reply<T: DeserializeOwned + Serialize + Default + Reply>(data: &[u8]) {
    for r in roundtrip::<T>(data) {
        let _ = r.error();
    }
}

/// Runs one of the listed types over the selected body.
macro_rules! pick {
    ($data:expr, requests: [$($req:ty),* $(,)?], replies: [$($rep:ty),* $(,)?]) => {{
        let fns: &[fn(&[u8])] = &[
            $(|d| { roundtrip::<$req>(d); },)*
            $(|d| reply::<$rep>(d),)*
        ];
        let (i, rest) = select($data, fns.len());
        fns[i](rest);
    }};
}

/// `Plugin.Activate`'s manifest and the error body every subsystem shares.
pub fn activate_bodies(data: &[u8]) {
    pick!(data, requests: [common::Manifest, common::ErrorBody], replies: []);
}

/// `VolumeDriver.*`.
pub fn volume_bodies(data: &[u8]) {
    pick!(
        data,
        requests: [
            volume::CreateRequest,
            volume::NameRequest,
            volume::MountRequest,
            volume::EmptyRequest,
        ],
        replies: [
            volume::MountResponse,
            volume::GetResponse,
            volume::ListResponse,
            volume::CapabilitiesResponse,
        ]
    );
}

/// `NetworkDriver.*`.
pub fn network_bodies(data: &[u8]) {
    pick!(
        data,
        requests: [
            network::GwAllocCheckRequest,
            network::AllocateNetworkRequest,
            network::NetworkRequest,
            network::CreateNetworkRequest,
            network::CreateEndpointRequest,
            network::EndpointRequest,
            network::JoinRequest,
            network::ProgramExternalConnectivityRequest,
            network::DiscoveryNotification,
        ],
        replies: [
            network::CapabilitiesResponse,
            network::ErrResponse,
            network::GwAllocCheckResponse,
            network::AllocateNetworkResponse,
            network::CreateEndpointResponse,
            network::EndpointInfoResponse,
            network::JoinResponse,
        ]
    );
}

/// `IpamDriver.*`.
pub fn ipam_bodies(data: &[u8]) {
    pick!(
        data,
        requests: [
            ipam::RequestPoolRequest,
            ipam::ReleasePoolRequest,
            ipam::RequestAddressRequest,
            ipam::ReleaseAddressRequest,
            ipam::FailureBody,
        ],
        replies: [
            ipam::ErrResponse,
            ipam::CapabilitiesResponse,
            ipam::AddressSpacesResponse,
            ipam::RequestPoolResponse,
            ipam::RequestAddressResponse,
        ]
    );
}

/// `AuthZPlugin.*`.
pub fn authz_bodies(data: &[u8]) {
    pick!(data, requests: [authz::Request], replies: [authz::Response]);
}

/// `LogDriver.*` (the metrics endpoints have the empty bodies of `volume::EmptyRequest`).
pub fn log_bodies(data: &[u8]) {
    pick!(
        data,
        requests: [
            log::StartLoggingRequest,
            log::StopLoggingRequest,
            log::ReadLogsRequest,
            log::Info,
            log::ReadConfig,
        ],
        replies: [log::ErrResponse, log::CapabilitiesResponse]
    );
}

/// `SecretProvider.GetSecret`.
pub fn secrets_bodies(data: &[u8]) {
    pick!(data, requests: [secrets::GetSecretRequest], replies: [secrets::GetSecretResponse]);
}

/// `GraphDriver.*`, and the `ApplyDiff` query string.
pub fn graph_bodies(data: &[u8]) {
    let (i, rest) = select(data, 2);
    if i == 1 {
        let Ok(query) = std::str::from_utf8(rest) else { return };
        if let Ok(q) = graph::ApplyDiffQuery::parse(query) {
            // What we parsed we can write back: the ids go through verbatim.
            let again = graph::ApplyDiffQuery::parse(&format!("id={}&parent={}", q.id, q.parent));
            if !q.id.contains('&') && !q.parent.contains('&') {
                assert_eq!(again.ok(), Some(q), "ApplyDiff query does not round-trip");
            }
        }
        return;
    }
    pick!(
        rest,
        requests: [
            graph::InitRequest,
            graph::Request,
            graph::IdMap,
            graph::Capabilities,
            graph::Change,
        ],
        replies: [graph::Response]
    );
}
