//! One gRPC channel to containerd, and the requests made on it: each carries the namespace
//! (`containerd-namespace` metadata) and, for unary calls, a deadline.

use std::time::Duration;

use containerd_client::services::v1::{
    containers_client::ContainersClient, events_client::EventsClient, tasks_client::TasksClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::Request;

use crate::config::{valid_namespace, ContainerdConfig};
use crate::error::Error;

/// A channel to containerd in one namespace. Cheap to clone; the channel reconnects by itself
/// when containerd restarts.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    channel: Channel,
    namespace: MetadataValue<Ascii>,
    namespace_text: String,
    timeout: Duration,
}

impl Connection {
    /// Connects to the socket of `config`.
    pub(crate) async fn open(config: &ContainerdConfig) -> Result<Self, Error> {
        if !valid_namespace(&config.namespace) {
            return Err(Error::Namespace { namespace: config.namespace.clone() });
        }
        let namespace = config
            .namespace
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| Error::Namespace { namespace: config.namespace.clone() })?;
        let channel = containerd_client::connect(&config.socket)
            .await
            .map_err(|source| Error::Connect { socket: config.socket.clone(), source })?;
        Ok(Connection {
            channel,
            namespace,
            namespace_text: config.namespace.clone(),
            timeout: config.request_timeout,
        })
    }

    /// The namespace requests are made in.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace_text
    }

    /// A unary request: namespaced, with the configured deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = self.streaming(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A unary request with its own deadline.
    pub(crate) fn request_within<T>(&self, message: T, timeout: Duration) -> Request<T> {
        let mut request = self.streaming(message);
        request.set_timeout(timeout);
        request
    }

    /// A streaming request: namespaced, no deadline.
    pub(crate) fn streaming<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("containerd-namespace", self.namespace.clone());
        request
    }

    pub(crate) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub(crate) fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }
}

#[cfg(test)]
impl Connection {
    /// A connection to a loopback port nobody listens on, connected lazily: every request
    /// fails (for unit tests of what the executor does with exits).
    pub(crate) fn unconnected(namespace: &str) -> Self {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9")
            .connect_timeout(Duration::from_millis(200))
            .connect_lazy();
        Connection {
            channel,
            namespace: namespace.parse().expect("valid namespace"),
            namespace_text: namespace.to_owned(),
            timeout: Duration::from_millis(200),
        }
    }
}
