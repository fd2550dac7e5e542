//! The interface type of a v2 plugin (`docker.volumedriver/1.0`) and its capability, and the
//! mapping between v1 `Implements` names and v2 types.
//!
//! A type string is `<prefix>.<capability>/<version>`. Parsing follows current Moby: split at
//! the **first** `/` (the rest is the version, empty without a `/`); in the part before it,
//! split at the **last** `.` (no `.` gives an empty prefix). Any string parses; in JSON, a
//! `null` entry reads as the empty type, as current Moby's decoder does, and any other
//! non-string is an error.
//!
//! Printing gives `prefix.capability/version` for every well-formed value, as Moby does. We
//! differ on purpose for the malformed ones: Moby prints `.volumedriver/` for a type read
//! from `volumedriver`; we leave out the `.` when the prefix is empty and the `/` when the
//! version is, so every value prints to a string that parses back to the same value. Like
//! Moby, printing refuses a capability holding `.` or `/` and a prefix holding `/`.
//!
//! ```
//! use dockplug_protocol::interface::{Capability, InterfaceType};
//! let t = InterfaceType::parse("docker.volumedriver/1.0");
//! assert_eq!((t.prefix(), t.capability(), t.version()), ("docker", "volumedriver", "1.0"));
//! assert_eq!(t.to_string(), "docker.volumedriver/1.0");
//! assert!(t.provides("VolumeDriver"));
//! assert_eq!(t.known(), Some(Capability::VolumeDriver));
//! assert_eq!(InterfaceType::from_v1("IpamDriver").to_string(), "docker.ipamdriver/1.0");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only prefix the daemon matches.
pub const DOCKER_PREFIX: &str = "docker";

/// The version every current interface type carries.
pub const INTERFACE_VERSION: &str = "1.0";

/// An interface type string that cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterfaceTypeError {
    /// The capability contains a `.`.
    #[error("capability {capability:?} cannot contain a dot")]
    CapabilityDot {
        /// The capability.
        capability: String,
    },
    /// The capability contains a `/`.
    #[error("capability {capability:?} cannot contain a slash")]
    CapabilitySlash {
        /// The capability.
        capability: String,
    },
    /// The prefix contains a `/`.
    #[error("prefix {prefix:?} cannot contain a slash")]
    PrefixSlash {
        /// The prefix.
        prefix: String,
    },
}

/// One entry of `Interface.Types`: prefix, capability and version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceType {
    prefix: String,
    capability: String,
    version: String,
}

impl InterfaceType {
    /// A type from its parts, checked so that it can be printed.
    ///
    /// # Errors
    /// A capability with `.` or `/`, or a prefix with `/`.
    pub fn new(
        prefix: impl Into<String>,
        capability: impl Into<String>,
        version: impl Into<String>,
    ) -> Result<Self, InterfaceTypeError> {
        let t =
            Self { prefix: prefix.into(), capability: capability.into(), version: version.into() };
        t.check()?;
        Ok(t)
    }

    /// Parses a type string. Every string parses (see the module docs).
    pub fn parse(s: &str) -> Self {
        let (fq, version) = s.split_once('/').unwrap_or((s, ""));
        let (prefix, capability) = fq.rsplit_once('.').unwrap_or(("", fq));
        Self {
            prefix: prefix.to_owned(),
            capability: capability.to_owned(),
            version: version.to_owned(),
        }
    }

    /// The v2 type of a v1 `Implements` name: `docker.<lower-case name>/1.0` (Moby `plugin/store.go` `Store.Handle`).
    pub fn from_v1(v1_name: &str) -> Self {
        Self {
            prefix: DOCKER_PREFIX.to_owned(),
            capability: v1_name.to_lowercase(),
            version: INTERFACE_VERSION.to_owned(),
        }
    }

    /// The prefix (`docker`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The capability (`volumedriver`), compared case-sensitively by the daemon.
    pub fn capability(&self) -> &str {
        &self.capability
    }

    /// The version (`1.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether this type provides the v1 subsystem `v1_name` for a lookup by name: prefix
    /// `docker` and capability equal to the lower-cased name; the version is ignored
    /// (Moby's `FilterByCap`). `docker.VolumeDriver/1.0` does **not** provide `VolumeDriver`.
    pub fn provides(&self, v1_name: &str) -> bool {
        self.prefix == DOCKER_PREFIX && self.capability == v1_name.to_lowercase()
    }

    /// Whether this type receives the enable-time handlers of `v1_name` (network, IPAM,
    /// metrics): the whole string must equal `docker.<lower-case name>/1.0`, so `/1.1` does
    /// not.
    pub fn handles(&self, v1_name: &str) -> bool {
        *self == Self::from_v1(v1_name)
    }

    /// The known capability, when the prefix is `docker` and the capability is one Docker uses
    /// (any version).
    pub fn known(&self) -> Option<Capability> {
        if self.prefix != DOCKER_PREFIX {
            return None;
        }
        Capability::from_capability(&self.capability)
    }

    /// The v1 `Implements` name this type maps to, if any (CSI types have none).
    pub fn v1_name(&self) -> Option<&'static str> {
        self.known().and_then(Capability::v1_name)
    }

    fn check(&self) -> Result<(), InterfaceTypeError> {
        if self.capability.contains('.') {
            return Err(InterfaceTypeError::CapabilityDot { capability: self.capability.clone() });
        }
        if self.prefix.contains('/') {
            return Err(InterfaceTypeError::PrefixSlash { prefix: self.prefix.clone() });
        }
        if self.capability.contains('/') {
            return Err(InterfaceTypeError::CapabilitySlash {
                capability: self.capability.clone(),
            });
        }
        Ok(())
    }

    /// The string form, or why there is none.
    ///
    /// # Errors
    /// As [`InterfaceType::new`]; only a value built through `Default` and mutation could
    /// fail, since parsing never yields an unprintable value.
    pub fn try_to_string(&self) -> Result<String, InterfaceTypeError> {
        self.check()?;
        Ok(self.to_string())
    }
}

impl fmt::Display for InterfaceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.prefix.is_empty() {
            write!(f, "{}.", self.prefix)?;
        }
        f.write_str(&self.capability)?;
        if !self.version.is_empty() {
            write!(f, "/{}", self.version)?;
        }
        Ok(())
    }
}

impl FromStr for InterfaceType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl From<Capability> for InterfaceType {
    fn from(c: Capability) -> Self {
        c.interface_type()
    }
}

impl Serialize for InterfaceType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.try_to_string().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for InterfaceType {
    /// A JSON string; `null` gives the zero value, as current Moby's decoder does. Any other
    /// JSON type is an error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = InterfaceType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interface type string such as \"docker.volumedriver/1.0\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<InterfaceType, E> {
                Ok(InterfaceType::parse(s))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<InterfaceType, E> {
                Ok(InterfaceType::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<InterfaceType, E> {
                Ok(InterfaceType::default())
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<InterfaceType, D2::Error> {
                d.deserialize_str(self)
            }
        }
        d.deserialize_option(V)
    }
}

/// The capabilities Docker itself uses, with their v1 names (Moby `pkg/plugins` implementers and `plugin/v2/plugin.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Capability {
    /// `volumedriver` / `VolumeDriver`.
    VolumeDriver,
    /// `networkdriver` / `NetworkDriver`.
    NetworkDriver,
    /// `ipamdriver` / `IpamDriver`.
    IpamDriver,
    /// `authz` / `authz`.
    Authz,
    /// `logdriver` / `LogDriver`.
    LogDriver,
    /// `metricscollector` / `MetricsCollector`.
    MetricsCollector,
    /// `secretprovider` / `secretprovider` (swarm only).
    SecretProvider,
    /// `graphdriver` / `GraphDriver` (removed in Docker 28).
    GraphDriver,
    /// `csicontroller` (v2 only, gRPC).
    CsiController,
    /// `csinode` (v2 only, gRPC).
    CsiNode,
}

impl Capability {
    /// Every known capability.
    pub const ALL: [Capability; 10] = [
        Self::VolumeDriver,
        Self::NetworkDriver,
        Self::IpamDriver,
        Self::Authz,
        Self::LogDriver,
        Self::MetricsCollector,
        Self::SecretProvider,
        Self::GraphDriver,
        Self::CsiController,
        Self::CsiNode,
    ];

    /// The capability as it appears in a type string (`volumedriver`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VolumeDriver => "volumedriver",
            Self::NetworkDriver => "networkdriver",
            Self::IpamDriver => "ipamdriver",
            Self::Authz => "authz",
            Self::LogDriver => "logdriver",
            Self::MetricsCollector => "metricscollector",
            Self::SecretProvider => "secretprovider",
            Self::GraphDriver => "graphdriver",
            Self::CsiController => "csicontroller",
            Self::CsiNode => "csinode",
        }
    }

    /// The v1 `Implements` entry, exact case (`VolumeDriver`); `None` for the CSI types.
    pub fn v1_name(self) -> Option<&'static str> {
        Some(match self {
            Self::VolumeDriver => "VolumeDriver",
            Self::NetworkDriver => "NetworkDriver",
            Self::IpamDriver => "IpamDriver",
            Self::Authz => "authz",
            Self::LogDriver => "LogDriver",
            Self::MetricsCollector => "MetricsCollector",
            Self::SecretProvider => "secretprovider",
            Self::GraphDriver => "GraphDriver",
            Self::CsiController | Self::CsiNode => return None,
        })
    }

    /// The capability of a v1 `Implements` entry, matched case-sensitively as the daemon does.
    pub fn from_v1_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.v1_name() == Some(name))
    }

    /// The capability named `s` in a type string, matched case-sensitively.
    pub fn from_capability(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// `docker.<capability>/1.0`.
    pub fn interface_type(self) -> InterfaceType {
        InterfaceType {
            prefix: DOCKER_PREFIX.to_owned(),
            capability: self.as_str().to_owned(),
            version: INTERFACE_VERSION.to_owned(),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The v2 type string of a v1 `Implements` name: `docker.<lower-case name>/1.0`.
pub fn v1_to_v2(v1_name: &str) -> String {
    InterfaceType::from_v1(v1_name).to_string()
}

/// The v1 `Implements` name of a v2 type string, for the known capabilities (any version).
pub fn v2_to_v1(type_string: &str) -> Option<&'static str> {
    InterfaceType::parse(type_string).v1_name()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, String) {
        let t = InterfaceType::parse(s);
        (t.prefix, t.capability, t.version)
    }

    #[test]
    fn parse_like_moby() {
        let p = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(parts("docker.volumedriver/1.0"), p("docker", "volumedriver", "1.0"));
        assert_eq!(parts("a.b.c/1/2"), p("a.b", "c", "1/2"));
        assert_eq!(parts("volumedriver/1.0"), p("", "volumedriver", "1.0"));
        assert_eq!(parts("volumedriver"), p("", "volumedriver", ""));
        assert_eq!(parts("docker.x"), p("docker", "x", ""));
        assert_eq!(parts("dock/er.x"), p("", "dock", "er.x"));
        assert_eq!(parts(""), p("", "", ""));
        assert_eq!(parts("docker./"), p("docker", "", ""));
    }

    #[test]
    fn every_parsed_value_round_trips() {
        for s in [
            "docker.volumedriver/1.0",
            "a.b.c/1/2",
            "volumedriver",
            "x/",
            ".y/",
            "",
            "docker./",
            "/",
        ] {
            let t = InterfaceType::parse(s);
            let printed = t.try_to_string().unwrap();
            assert_eq!(InterfaceType::parse(&printed), t, "{s:?} -> {printed:?}");
        }
        assert_eq!(
            InterfaceType::parse("docker.volumedriver/1.0").to_string(),
            "docker.volumedriver/1.0"
        );
    }

    #[test]
    fn unprintable_values_are_refused() {
        assert!(matches!(
            InterfaceType::new("docker", "a.b", "1.0"),
            Err(InterfaceTypeError::CapabilityDot { .. })
        ));
        assert!(matches!(
            InterfaceType::new("docker", "a/b", "1.0"),
            Err(InterfaceTypeError::CapabilitySlash { .. })
        ));
        assert!(matches!(
            InterfaceType::new("do/cker", "a", "1.0"),
            Err(InterfaceTypeError::PrefixSlash { .. })
        ));
        assert_eq!(
            InterfaceType::new("docker", "a.b", "1").unwrap_err().to_string(),
            r#"capability "a.b" cannot contain a dot"#
        );
    }

    #[test]
    fn json_is_a_string() {
        let t: InterfaceType = serde_json::from_str(r#""docker.logdriver/1.0""#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""docker.logdriver/1.0""#);
        assert!(serde_json::from_str::<InterfaceType>("1").is_err());
        assert_eq!(
            serde_json::from_str::<InterfaceType>("null").unwrap(),
            InterfaceType::default()
        );
        assert_eq!(serde_json::to_string(&InterfaceType::default()).unwrap(), "\"\"");
        assert!(serde_json::from_str::<InterfaceType>(r#"{"Capability":"x"}"#).is_err());
    }

    #[test]
    fn matching_rules() {
        let t = |s: &str| InterfaceType::parse(s);
        assert!(t("docker.volumedriver/2.0").provides("VolumeDriver"));
        assert!(!t("docker.VolumeDriver/1.0").provides("VolumeDriver"));
        assert!(!t("acme.volumedriver/1.0").provides("VolumeDriver"));
        assert!(t("docker.networkdriver/1.0").handles("NetworkDriver"));
        assert!(!t("docker.networkdriver/1.1").handles("NetworkDriver"));
        assert!(t("docker.networkdriver/1.1").provides("NetworkDriver"));
    }

    #[test]
    fn v1_v2_mapping_table() {
        let table = [
            ("VolumeDriver", "docker.volumedriver/1.0"),
            ("NetworkDriver", "docker.networkdriver/1.0"),
            ("IpamDriver", "docker.ipamdriver/1.0"),
            ("authz", "docker.authz/1.0"),
            ("LogDriver", "docker.logdriver/1.0"),
            ("MetricsCollector", "docker.metricscollector/1.0"),
            ("secretprovider", "docker.secretprovider/1.0"),
            ("GraphDriver", "docker.graphdriver/1.0"),
        ];
        for (v1, v2) in table {
            assert_eq!(v1_to_v2(v1), v2);
            assert_eq!(v2_to_v1(v2), Some(v1));
            let c = Capability::from_v1_name(v1).unwrap();
            assert_eq!(c.interface_type().to_string(), v2);
        }
        assert_eq!(Capability::from_v1_name("volumedriver"), None, "v1 names are case-sensitive");
        assert_eq!(v2_to_v1("docker.csinode/1.0"), None);
        assert_eq!(Capability::CsiNode.interface_type().to_string(), "docker.csinode/1.0");
        assert_eq!(v2_to_v1("acme.volumedriver/1.0"), None);
    }
}
