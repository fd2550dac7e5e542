//! `secretprovider`: swarm secret drivers (swarmkit `manager/drivers/secrets.go`).
//!
//! ```
//! use dockplug_protocol::secrets::{GetSecretResponse, SecretsMethod};
//! let r: GetSecretResponse = serde_json::from_str(r#"{"Value":"czNjcjN0"}"#)?;
//! assert_eq!(r.value, b"s3cr3t");
//! assert!(r.check_value().is_ok());
//! assert_eq!(SecretsMethod::GetSecret.as_str(), "SecretProvider.GetSecret");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The `Implements` entry of a secret provider (all lower case, unlike the others).
pub const IMPLEMENTS: &str = "secretprovider";

/// The largest secret value swarm accepts is one byte less than this (500 KiB).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

crate::subsystem::methods! {
    /// The `SecretProvider` endpoints.
    SecretsMethod, "SecretProvider", {
        /// `SecretProvider.GetSecret`.
        GetSecret => "GetSecret",
    }
}

/// A secret value swarm would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value is empty or not smaller than [`MAX_SECRET_SIZE`].
    #[error("secret value of {len} bytes is outside 1..{max}")]
    ValueSize {
        /// The value's length.
        len: usize,
        /// [`MAX_SECRET_SIZE`].
        max: usize,
    },
}

/// A published port of the service (swarmkit's `PortConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PortConfig {
    /// The port's name.
    #[serde(rename = "Name", skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// 0 tcp, 1 udp, 2 sctp.
    #[serde(rename = "Protocol", skip_serializing_if = "is_zero_i32")]
    pub protocol: i32,
    /// The port inside the container.
    #[serde(rename = "TargetPort", skip_serializing_if = "is_zero_u32")]
    pub target_port: u32,
    /// The published port.
    #[serde(rename = "PublishedPort", skip_serializing_if = "is_zero_u32")]
    pub published_port: u32,
    /// 0 ingress, 1 host.
    #[serde(rename = "PublishMode", skip_serializing_if = "is_zero_i32")]
    pub publish_mode: i32,
}

/// The service's endpoint spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EndpointSpec {
    /// 0 vip, 1 dnsrr.
    #[serde(rename = "Mode", skip_serializing_if = "is_zero_i32")]
    pub mode: i32,
    /// Published ports.
    #[serde(rename = "Ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// `SecretProvider.GetSecret` request. Every key is left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct GetSecretRequest {
    /// The secret's name.
    #[serde(rename = "SecretName", skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// The secret's labels.
    #[serde(rename = "SecretLabels", skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_labels: BTreeMap<String, String>,
    /// The service's hostname.
    #[serde(rename = "ServiceHostname", skip_serializing_if = "String::is_empty")]
    pub service_hostname: String,
    /// The service id.
    #[serde(rename = "ServiceID", skip_serializing_if = "String::is_empty")]
    pub service_id: String,
    /// The service name.
    #[serde(rename = "ServiceName", skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The service's labels.
    #[serde(rename = "ServiceLabels", skip_serializing_if = "BTreeMap::is_empty")]
    pub service_labels: BTreeMap<String, String>,
    /// The task id.
    #[serde(rename = "TaskID", skip_serializing_if = "String::is_empty")]
    pub task_id: String,
    /// The task name.
    #[serde(rename = "TaskName", skip_serializing_if = "String::is_empty")]
    pub task_name: String,
    /// The task's image.
    #[serde(rename = "TaskImage", skip_serializing_if = "String::is_empty")]
    pub task_image: String,
    /// The node the task is assigned to (missing from go-plugins-helpers).
    #[serde(rename = "NodeID", skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    /// The service's endpoint spec.
    #[serde(rename = "ServiceEndpointSpec", skip_serializing_if = "Option::is_none")]
    pub service_endpoint_spec: Option<EndpointSpec>,
}

/// `SecretProvider.GetSecret` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct GetSecretResponse {
    /// The secret (base64 on the wire); 1 byte to less than 500 KiB.
    #[serde(rename = "Value", with = "crate::b64", skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<u8>,
    /// Error message; non-empty fails the task assignment.
    #[serde(rename = "Err", skip_serializing_if = "String::is_empty")]
    pub err: String,
    /// Use the value for this task only.
    #[serde(rename = "DoNotReuse")]
    pub do_not_reuse: bool,
}

impl GetSecretResponse {
    /// Check the value's size as swarm does.
    pub fn check_value(&self) -> Result<(), SecretError> {
        let len = self.value.len();
        if len == 0 || len >= MAX_SECRET_SIZE {
            return Err(SecretError::ValueSize { len, max: MAX_SECRET_SIZE });
        }
        Ok(())
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

go_json!(PortConfig, EndpointSpec, GetSecretRequest, GetSecretResponse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(crate::subsystem::Subsystem::Secrets.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Secrets.endpoint_prefix(), SecretsMethod::PREFIX);
        let mut r = GetSecretResponse::default();
        assert!(r.check_value().is_err());
        r.value = vec![0; MAX_SECRET_SIZE - 1];
        assert!(r.check_value().is_ok());
        r.value.push(0);
        assert_eq!(r.check_value(), Err(SecretError::ValueSize { len: 512_000, max: 512_000 }));
    }
}
