//! The v1 subsystems: their `Implements` names, endpoint prefixes and method names.
//!
//! Every call is `POST /<Prefix>.<Method>`. Each subsystem module has a method enum
//! (e.g. [`crate::volume::VolumeMethod`]) whose [`as_str`](crate::volume::VolumeMethod::as_str)
//! is the exact wire name; this module ties the modules together.

use std::fmt;
use std::str::FromStr;

/// A method name that is not one of a subsystem's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {subsystem} method {name:?}")]
#[non_exhaustive]
pub struct UnknownMethod {
    /// The endpoint prefix searched (`VolumeDriver`, ...).
    pub subsystem: &'static str,
    /// The rejected name.
    pub name: String,
}

impl UnknownMethod {
    pub(crate) fn new(subsystem: &'static str, name: &str) -> Self {
        Self { subsystem, name: name.to_owned() }
    }
}

/// A name that is not a v1 `Implements` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plugin subsystem {name:?}")]
#[non_exhaustive]
pub struct UnknownSubsystem {
    /// The rejected name.
    pub name: String,
}

/// Strip a leading `/` and a `?query` from a request path: `/GraphDriver.ApplyDiff?id=x`
/// gives `GraphDriver.ApplyDiff`.
pub fn method_name_of_path(path: &str) -> &str {
    let p = path.strip_prefix('/').unwrap_or(path);
    p.split_once('?').map_or(p, |(m, _)| m)
}

/// Defines a method enum with `ALL`, `as_str`, `path`, `from_path`, `FromStr` and `Display`.
macro_rules! methods {
    (
        $(#[$meta:meta])*
        $name:ident, $prefix:literal, {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every method, in the order of the protocol tables.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The endpoint prefix shared by these methods.
            pub const PREFIX: &'static str = $prefix;

            /// The wire name, e.g. `VolumeDriver.Create`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => concat!($prefix, ".", $wire)),+ }
            }

            /// The request path, e.g. `/VolumeDriver.Create`.
            pub const fn path(self) -> &'static str {
                match self { $(Self::$variant => concat!("/", $prefix, ".", $wire)),+ }
            }

            /// The method of a request path (leading `/` and query string ignored).
            pub fn from_path(path: &str) -> Result<Self, $crate::subsystem::UnknownMethod> {
                $crate::subsystem::method_name_of_path(path).parse()
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::subsystem::UnknownMethod;
            /// Parse the exact wire name (`VolumeDriver.Create`); matching is case-sensitive
            /// like the plugin side's HTTP mux.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( concat!($prefix, ".", $wire) => Ok(Self::$variant), )+
                    _ => Err($crate::subsystem::UnknownMethod::new($prefix, s)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use methods;

/// The error a 200 reply carries, read the way the daemon reads it.
///
/// Most subsystems use `Err`; IPAM uses `Error`; authz ignores `Err` in a 200 reply (only
/// `Allow` decides); metrics replies are never read.
///
/// ```
/// use dockplug_protocol::subsystem::Reply;
/// use dockplug_protocol::{authz, ipam, volume};
/// let r: volume::MountResponse = serde_json::from_str(r#"{"Err":"busy"}"#)?;
/// assert_eq!(r.error(), Some("busy"));
/// let r: ipam::RequestAddressResponse = serde_json::from_str(r#"{"Err":"x"}"#)?;
/// assert_eq!(r.error(), None);
/// let r: authz::Response = serde_json::from_str(r#"{"Allow":true,"Err":"x"}"#)?;
/// assert_eq!(r.error(), None);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub trait Reply {
    /// The error message, or `None` when the reply means success.
    fn error(&self) -> Option<&str>;
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

macro_rules! reply_field {
    ($field:ident: $($t:ty),+ $(,)?) => {$(
        impl Reply for $t {
            fn error(&self) -> Option<&str> {
                non_empty(&self.$field)
            }
        }
    )+};
}

reply_field!(err:
    crate::ErrorBody,
    crate::volume::MountResponse,
    crate::volume::GetResponse,
    crate::volume::ListResponse,
    crate::volume::CapabilitiesResponse,
    crate::network::CapabilitiesResponse,
    crate::network::ErrResponse,
    crate::network::GwAllocCheckResponse,
    crate::network::AllocateNetworkResponse,
    crate::network::CreateEndpointResponse,
    crate::network::EndpointInfoResponse,
    crate::network::JoinResponse,
    crate::log::CapabilitiesResponse,
    crate::secrets::GetSecretResponse,
    crate::graph::Response,
);

reply_field!(error:
    crate::ipam::ErrResponse,
    crate::ipam::FailureBody,
    crate::ipam::CapabilitiesResponse,
    crate::ipam::AddressSpacesResponse,
    crate::ipam::RequestPoolResponse,
    crate::ipam::RequestAddressResponse,
);

impl Reply for crate::authz::Response {
    /// Always `None`: the daemon ignores `Err` in a 200 reply.
    fn error(&self) -> Option<&str> {
        None
    }
}

/// A v1 plugin subsystem.
///
/// ```
/// use dockplug_protocol::subsystem::Subsystem;
/// assert_eq!(Subsystem::Volume.implements(), "VolumeDriver");
/// assert_eq!(Subsystem::Authz.endpoint_prefix(), "AuthZPlugin");
/// assert_eq!(Subsystem::Secrets.v2_type(), "docker.secretprovider/1.0");
/// assert_eq!(Subsystem::of_path("/IpamDriver.RequestPool"), Some(Subsystem::Ipam));
/// assert_eq!(Subsystem::from_implements("volumedriver"), None); // case-sensitive
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Subsystem {
    /// `VolumeDriver`.
    Volume,
    /// `NetworkDriver`.
    Network,
    /// `IpamDriver`.
    Ipam,
    /// `authz` (endpoints `AuthZPlugin.*`).
    Authz,
    /// `LogDriver`.
    Log,
    /// `MetricsCollector`.
    Metrics,
    /// `secretprovider` (endpoints `SecretProvider.*`).
    Secrets,
    /// `GraphDriver` (removed from Moby in v28; 20.10 with `--experimental`).
    Graph,
}

impl Subsystem {
    /// Every subsystem.
    pub const ALL: &'static [Self] = &[
        Self::Volume,
        Self::Network,
        Self::Ipam,
        Self::Authz,
        Self::Log,
        Self::Metrics,
        Self::Secrets,
        Self::Graph,
    ];

    /// The exact (case-sensitive) entry in a v1 `Implements` list.
    pub const fn implements(self) -> &'static str {
        match self {
            Self::Volume => "VolumeDriver",
            Self::Network => "NetworkDriver",
            Self::Ipam => "IpamDriver",
            Self::Authz => "authz",
            Self::Log => "LogDriver",
            Self::Metrics => "MetricsCollector",
            Self::Secrets => "secretprovider",
            Self::Graph => "GraphDriver",
        }
    }

    /// The prefix of the endpoint names, e.g. `AuthZPlugin` for authz.
    pub const fn endpoint_prefix(self) -> &'static str {
        match self {
            Self::Volume => "VolumeDriver",
            Self::Network => "NetworkDriver",
            Self::Ipam => "IpamDriver",
            Self::Authz => "AuthZPlugin",
            Self::Log => "LogDriver",
            Self::Metrics => "MetricsCollector",
            Self::Secrets => "SecretProvider",
            Self::Graph => "GraphDriver",
        }
    }

    /// The v2 `Interface.Types` entry: `docker.` + lower-case v1 name + `/1.0`.
    pub const fn v2_type(self) -> &'static str {
        match self {
            Self::Volume => "docker.volumedriver/1.0",
            Self::Network => "docker.networkdriver/1.0",
            Self::Ipam => "docker.ipamdriver/1.0",
            Self::Authz => "docker.authz/1.0",
            Self::Log => "docker.logdriver/1.0",
            Self::Metrics => "docker.metricscollector/1.0",
            Self::Secrets => "docker.secretprovider/1.0",
            Self::Graph => "docker.graphdriver/1.0",
        }
    }

    /// The subsystem of an `Implements` entry, matched case-sensitively as Moby does.
    pub fn from_implements(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.implements() == name)
    }

    /// The subsystem a request path belongs to, by its endpoint prefix.
    pub fn of_path(path: &str) -> Option<Self> {
        let (prefix, _) = method_name_of_path(path).split_once('.')?;
        Self::ALL.iter().copied().find(|s| s.endpoint_prefix() == prefix)
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.implements())
    }
}

impl FromStr for Subsystem {
    type Err = UnknownSubsystem;
    /// Parse an `Implements` entry (case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_implements(s).ok_or_else(|| UnknownSubsystem { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_consistent() {
        for s in Subsystem::ALL {
            assert_eq!(Subsystem::from_implements(s.implements()), Some(*s));
            assert_eq!(s.v2_type(), format!("docker.{}/1.0", s.implements().to_lowercase()));
        }
        assert_eq!(
            method_name_of_path("/GraphDriver.ApplyDiff?id=a&parent=b"),
            "GraphDriver.ApplyDiff"
        );
        assert_eq!(Subsystem::of_path("/Plugin.Activate"), None);
        assert_eq!(Subsystem::of_path("nodot"), None);
        let err = "volumedriver".parse::<Subsystem>().unwrap_err();
        assert_eq!(err.to_string(), r#"unknown plugin subsystem "volumedriver""#);
    }
}
