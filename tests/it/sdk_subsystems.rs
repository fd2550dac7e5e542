//! Every dockplug-sdk trait served on a unix socket and called through dockplug-v1, with the
//! request and reply bodies of Moby's plugin docs (`docs/extend/plugins_*.md`, libnetwork
//! `docs/remote.md` and `docs/ipam.md`) as golden values.

use std::sync::Mutex;
use std::time::Duration;

use dockplug::protocol::authz::{Request as AuthzRequest, Response as AuthzResponse};
use dockplug::protocol::ipam::{
    AddressSpacesResponse, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};
use dockplug::protocol::log::{Capability, Info, LogEntry, ReadLogsRequest};
use dockplug::protocol::network::{
    CapabilitiesResponse as NetCaps, CreateEndpointRequest, CreateEndpointResponse,
    CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, EndpointInterface,
    InterfaceName, JoinRequest, JoinResponse, LeaveRequest, StaticRoute,
};
use dockplug::protocol::secrets::{GetSecretRequest, GetSecretResponse};
use dockplug_sdk::log::{LogEntries, LogStream};
use dockplug_sdk::{
    Authz, IpamDriver, LogDriver, MetricsCollector, NetworkDriver, Plugin, PluginError,
    PluginResult, SecretProvider,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::sdk::{Harness, Served};

fn j(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// Call with a JSON body and parse the 200 reply; or the status and message of a failure.
async fn call(s: &Served, method: &str, body: Option<&str>) -> Result<Value, (u16, String)> {
    let (status, reply) = s.raw(method, body.map(str::as_bytes)).await;
    if status == 200 {
        assert!(reply.ends_with('\n'), "{method}: reply without Go's trailing newline");
        Ok(j(&reply))
    } else {
        Err((status, reply))
    }
}

#[derive(Default)]
struct Net {
    calls: Mutex<Vec<String>>,
}

impl NetworkDriver for Net {
    async fn get_capabilities(&self) -> PluginResult<NetCaps> {
        Ok(NetCaps {
            scope: "local".into(),
            connectivity_scope: "global".into(),
            ..NetCaps::default()
        })
    }
    async fn create_network(&self, req: CreateNetworkRequest) -> PluginResult<()> {
        assert_eq!(req.ipv4_data[0].gateway.as_deref(), Some("172.18.0.1/16"));
        self.calls.lock().unwrap().push(format!("create {}", req.network_id));
        Ok(())
    }
    async fn delete_network(&self, req: DeleteNetworkRequest) -> PluginResult<()> {
        Err(PluginError::new(format!("network {} not found", &req.network_id[..8])))
    }
    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> PluginResult<CreateEndpointResponse> {
        assert_eq!(req.interface.address, "172.18.0.2/16");
        Ok(CreateEndpointResponse {
            interface: Some(EndpointInterface {
                mac_address: "02:42:ac:12:00:02".into(),
                ..EndpointInterface::default()
            }),
            err: String::new(),
        })
    }
    async fn delete_endpoint(&self, _req: DeleteEndpointRequest) -> PluginResult<()> {
        Ok(())
    }
    async fn join(&self, req: JoinRequest) -> PluginResult<JoinResponse> {
        assert_eq!(req.sandbox_key, "/var/run/docker/netns/4f6d2a1b9c3e");
        Ok(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "veth1a2b3c".into(),
                dst_prefix: "eth".into(),
                ..InterfaceName::default()
            }),
            gateway: "172.18.0.1".into(),
            static_routes: vec![
                StaticRoute {
                    destination: "10.10.0.0/16".into(),
                    route_type: 0,
                    next_hop: "172.18.0.254".into(),
                },
                StaticRoute {
                    destination: "10.20.0.0/24".into(),
                    route_type: 1,
                    ..Default::default()
                },
            ],
            ..JoinResponse::default()
        })
    }
    async fn leave(&self, _req: LeaveRequest) -> PluginResult<()> {
        Ok(())
    }
}

const NET_ID: &str = "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const EP_ID: &str = "1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_driver() {
    let s = Served::unix(Plugin::builder().network(Net::default()).build()).await;
    assert_eq!(
        call(&s, "Plugin.Activate", None).await.unwrap(),
        json!({"Implements": ["NetworkDriver"]})
    );
    assert_eq!(
        call(&s, "NetworkDriver.GetCapabilities", None).await.unwrap(),
        j(r#"{"Scope": "local", "ConnectivityScope": "global"}"#)
    );
    let create = format!(
        r#"{{"NetworkID": "{NET_ID}", "Options": {{"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {{"mtu": "1450"}}}}, "IPv4Data": [{{"AddressSpace": "LocalDefault", "Pool": "172.18.0.0/16", "Gateway": "172.18.0.1/16", "AuxAddresses": {{"router": "172.18.0.254/16"}}}}], "IPv6Data": []}}"#
    );
    assert_eq!(call(&s, "NetworkDriver.CreateNetwork", Some(&create)).await.unwrap(), json!({}));
    let ep = format!(
        r#"{{"NetworkID": "{NET_ID}", "EndpointID": "{EP_ID}", "Interface": {{"Address": "172.18.0.2/16", "AddressIPv6": "", "MacAddress": ""}}, "Options": {{"com.docker.network.endpoint.exposedports": [{{"Proto": 6, "Port": 80}}]}}}}"#
    );
    assert_eq!(
        call(&s, "NetworkDriver.CreateEndpoint", Some(&ep)).await.unwrap(),
        // Empty strings mean "unset" to the daemon.
        j(
            r#"{"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:42:ac:12:00:02"}}"#
        )
    );
    let join = format!(
        r#"{{"NetworkID": "{NET_ID}", "EndpointID": "{EP_ID}", "SandboxKey": "/var/run/docker/netns/4f6d2a1b9c3e", "Options": {{}}}}"#
    );
    assert_eq!(
        call(&s, "NetworkDriver.Join", Some(&join)).await.unwrap(),
        j(
            r#"{"InterfaceName": {"SrcName": "veth1a2b3c", "DstPrefix": "eth"}, "Gateway": "172.18.0.1", "StaticRoutes": [{"Destination": "10.10.0.0/16", "RouteType": 0, "NextHop": "172.18.0.254"}, {"Destination": "10.20.0.0/24", "RouteType": 1}], "DisableGatewayService": false}"#
        )
    );
    let pair = format!(r#"{{"NetworkID": "{NET_ID}", "EndpointID": "{EP_ID}"}}"#);
    for m in ["Leave", "DeleteEndpoint", "RevokeExternalConnectivity"] {
        let r = call(&s, &format!("NetworkDriver.{m}"), Some(&pair)).await.unwrap();
        assert_eq!(r, json!({}), "{m}");
    }
    // Defaults of the optional calls.
    assert_eq!(
        call(&s, "NetworkDriver.EndpointOperInfo", Some(&pair)).await.unwrap(),
        json!({"Value": {}})
    );
    let disc = r#"{"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.5", "BindAddress": "0.0.0.0", "Self": false}}"#;
    assert_eq!(call(&s, "NetworkDriver.DiscoverNew", Some(disc)).await.unwrap(), json!({}));
    // An author's error: a 500 with Err, which the client reports as the message.
    let del = format!(r#"{{"NetworkID": "{NET_ID}"}}"#);
    assert_eq!(
        call(&s, "NetworkDriver.DeleteNetwork", Some(&del)).await.unwrap_err(),
        (500, "network 8f3a1c2b not found".into())
    );
}

struct Ipam;

impl IpamDriver for Ipam {
    async fn get_default_address_spaces(&self) -> PluginResult<AddressSpacesResponse> {
        Ok(AddressSpacesResponse {
            local_default_address_space: "LocalDefault".into(),
            global_default_address_space: "GlobalDefault".into(),
            error: String::new(),
        })
    }
    async fn request_pool(&self, req: RequestPoolRequest) -> PluginResult<RequestPoolResponse> {
        assert_eq!(req.options.unwrap()["com.example.zone"], "a");
        Ok(RequestPoolResponse {
            pool_id: "LocalDefault/10.20.0.0/24".into(),
            pool: "10.20.0.0/24".into(),
            data: Some(
                [("com.docker.network.gateway".to_owned(), "10.20.0.1/24".to_owned())].into(),
            ),
            error: String::new(),
        })
    }
    async fn release_pool(&self, _req: ReleasePoolRequest) -> PluginResult<()> {
        Ok(())
    }
    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> PluginResult<RequestAddressResponse> {
        if req.address.is_empty() {
            return Err(PluginError::new("pool exhausted"));
        }
        Ok(RequestAddressResponse {
            address: format!("{}/24", req.address),
            data: Some(Default::default()),
            error: String::new(),
        })
    }
    async fn release_address(&self, _req: ReleaseAddressRequest) -> PluginResult<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_driver_errors_carry_both_keys() {
    let s = Served::unix(Plugin::builder().ipam(Ipam).build()).await;
    assert_eq!(
        call(&s, "IpamDriver.GetCapabilities", None).await.unwrap(),
        j(r#"{"RequiresMACAddress": false, "RequiresRequestReplay": false}"#)
    );
    assert_eq!(
        call(&s, "IpamDriver.GetDefaultAddressSpaces", None).await.unwrap(),
        j(
            r#"{"LocalDefaultAddressSpace": "LocalDefault", "GlobalDefaultAddressSpace": "GlobalDefault"}"#
        )
    );
    let pool = r#"{"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": {"com.example.zone": "a"}, "V6": false}"#;
    assert_eq!(
        call(&s, "IpamDriver.RequestPool", Some(pool)).await.unwrap(),
        j(
            r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Pool": "10.20.0.0/24", "Data": {"com.docker.network.gateway": "10.20.0.1/24"}}"#
        )
    );
    let addr = r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "10.20.0.7", "Options": {"com.docker.network.endpoint.name": "web"}}"#;
    assert_eq!(
        call(&s, "IpamDriver.RequestAddress", Some(addr)).await.unwrap(),
        j(r#"{"Address": "10.20.0.7/24", "Data": {}}"#)
    );
    // The raw failure body has both `Err` (read on non-200) and `Error` (read on 200).
    let any = r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "", "Options": null}"#;
    let raw = raw_reply(&s, "IpamDriver.RequestAddress", any).await;
    assert_eq!(raw, (500, j(r#"{"Err": "pool exhausted", "Error": "pool exhausted"}"#)));
    let rel = r#"{"PoolID": "LocalDefault/10.20.0.0/24", "Address": "10.20.0.7"}"#;
    assert_eq!(call(&s, "IpamDriver.ReleaseAddress", Some(rel)).await.unwrap(), json!({}));
}

/// The status and JSON body of a reply, read below the client's error mapping.
async fn raw_reply(s: &Served, method: &str, body: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let req = format!(
        "POST /{method} HTTP/1.1\r\nHost: plugin.moby.localhost\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    let status: u16 = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1;
    (status, j(body))
}

struct Deny;

impl Authz for Deny {
    async fn authz_request(&self, req: AuthzRequest) -> PluginResult<AuthzResponse> {
        if req.request_body.windows(5).any(|w| w == b"nginx") {
            Ok(AuthzResponse::deny("volumes are not allowed"))
        } else {
            Ok(AuthzResponse::allow())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_plugin() {
    let s = Served::unix(Plugin::builder().authz(Deny).build()).await;
    assert_eq!(call(&s, "Plugin.Activate", None).await.unwrap(), json!({"Implements": ["authz"]}));
    let req = r#"{"User": "alice", "UserAuthNMethod": "TLS", "RequestMethod": "POST", "RequestUri": "/v1.41/containers/create?name=web", "RequestBody": "eyJJbWFnZSI6Im5naW54In0=", "RequestHeaders": {"Content-Type": "application/json", "User-Agent": "Docker-Client/20.10.24 (linux)"}}"#;
    assert_eq!(
        call(&s, "AuthZPlugin.AuthZReq", Some(req)).await.unwrap(),
        j(r#"{"Allow": false, "Msg": "volumes are not allowed"}"#)
    );
    let res = r#"{"RequestMethod": "GET", "RequestUri": "/v1.41/version", "RequestHeaders": {"User-Agent": "curl/7.88.1"}, "ResponseStatusCode": 200, "ResponseBody": "eyJWZXJzaW9uIjoiMjAuMTAuMjQifQ==", "ResponseHeaders": {"Content-Type": "application/json"}}"#;
    assert_eq!(call(&s, "AuthZPlugin.AuthZRes", Some(res)).await.unwrap(), j(r#"{"Allow": true}"#));
    // A body that is not base64 is a 400, not a panic.
    let bad = r#"{"RequestMethod": "GET", "RequestUri": "/", "RequestBody": "!!!"}"#;
    assert_eq!(call(&s, "AuthZPlugin.AuthZReq", Some(bad)).await.unwrap_err().0, 400);
}

/// A log driver that reads each FIFO to the end and keeps the lines, and replays them for
/// ReadLogs.
#[derive(Default)]
struct Logs {
    lines: std::sync::Arc<Mutex<Vec<String>>>,
    readers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl LogDriver for Logs {
    async fn start_logging(&self, file: String, info: Info) -> PluginResult<()> {
        assert_eq!(info.container_name, "/web");
        let mut stream = LogStream::open(&file).await?;
        let lines = self.lines.clone();
        self.readers.lock().unwrap().push(tokio::spawn(async move {
            while let Ok(Some(e)) = stream.next_entry().await {
                lines.lock().unwrap().push(format!(
                    "{}: {}",
                    e.source,
                    String::from_utf8_lossy(&e.line)
                ));
            }
        }));
        Ok(())
    }
    async fn stop_logging(&self, _file: String) -> PluginResult<()> {
        let readers: Vec<_> = self.readers.lock().unwrap().drain(..).collect();
        for r in readers {
            r.await.map_err(|e| PluginError::new(e.to_string()))?;
        }
        Ok(())
    }
    async fn capabilities(&self) -> PluginResult<Capability> {
        Ok(Capability { read_logs: true })
    }
    async fn read_logs(&self, req: ReadLogsRequest) -> PluginResult<LogEntries> {
        assert_eq!(req.config.tail, -1);
        let (tx, rx) = LogEntries::channel(4);
        let lines: Vec<String> = self.lines.lock().unwrap().clone();
        tokio::spawn(async move {
            for (i, line) in lines.into_iter().enumerate() {
                let e = LogEntry {
                    source: "stdout".into(),
                    time_nano: i as i64 + 1,
                    line: line.into_bytes(),
                    ..LogEntry::default()
                };
                if tx.send(e).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_driver_reads_the_fifo_and_streams_read_logs() {
    let s = Served::unix(Plugin::builder().log(Logs::default()).build()).await;
    assert_eq!(
        call(&s, "LogDriver.Capabilities", None).await.unwrap(),
        j(r#"{"Cap": {"ReadLogs": true}}"#)
    );
    // The daemon's side of the FIFO: it creates it and holds it open read-write.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("5b1f0a4ccad5e8cbb94b4f3dd5fc2c32e1b8a9d7e6f5a4b3c2d1e0f9a8b7c6d5");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let start = json!({"File": fifo.display().to_string(), "Info": {"Config": {"tag": "web"}, "ContainerID": "3c5f7e1a", "ContainerName": "/web", "ContainerEntrypoint": "nginx", "ContainerArgs": ["-g", "daemon off;"], "ContainerImageID": "sha256:4f6d", "ContainerImageName": "nginx:latest", "ContainerCreated": "2024-05-01T12:00:00.123456789Z", "ContainerEnv": ["PATH=/usr/bin"], "ContainerLabels": {}, "LogPath": "", "DaemonName": "docker"}});
    assert_eq!(
        call(&s, "LogDriver.StartLogging", Some(&start.to_string())).await.unwrap(),
        j(r#"{"Err": ""}"#)
    );
    use std::io::Write;
    // A hand-encoded `LogEntry` (Moby `api/types/plugins/logdriver/entry.proto`): {source "stdout", time_nano 1, line "hi"} is this frame.
    writer
        .write_all(&[
            0, 0, 0, 0x0e, 0x0a, 6, b's', b't', b'd', b'o', b'u', b't', 0x10, 1, 0x1a, 2, b'h',
            b'i',
        ])
        .unwrap();
    let mut frame = Vec::new();
    LogEntry {
        source: "stderr".into(),
        time_nano: 2,
        line: b"oops".to_vec(),
        ..LogEntry::default()
    }
    .encode_frame(&mut frame)
    .unwrap();
    writer.write_all(&frame).unwrap();
    drop(writer); // the daemon closes its end: the plugin's reader sees EOF
    let stop = json!({"File": fifo.display().to_string()}).to_string();
    assert_eq!(call(&s, "LogDriver.StopLogging", Some(&stop)).await.unwrap(), j(r#"{"Err": ""}"#));

    let read = json!({"Info": {"ContainerID": "3c5f7e1a", "ContainerName": "/web"}, "Config": {"Since": "0001-01-01T00:00:00Z", "Until": "0001-01-01T00:00:00Z", "Tail": -1, "Follow": false}});
    let stream = s.client.stream("LogDriver.ReadLogs", &read).await.unwrap();
    let bytes: Vec<u8> =
        tokio::time::timeout(Duration::from_secs(10), stream.map(|c| c.unwrap().to_vec()).concat())
            .await
            .unwrap();
    let entries = dockplug::protocol::log::entry::decode_stream(&bytes).unwrap();
    let lines: Vec<_> =
        entries.iter().map(|e| String::from_utf8_lossy(&e.line).into_owned()).collect();
    assert_eq!(lines, ["stdout: hi", "stderr: oops"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_logs_by_default_is_an_error() {
    struct NoRead;
    impl LogDriver for NoRead {
        async fn start_logging(&self, _f: String, _i: Info) -> PluginResult<()> {
            Ok(())
        }
        async fn stop_logging(&self, _f: String) -> PluginResult<()> {
            Ok(())
        }
    }
    let s = Served::unix(Plugin::builder().log(NoRead).build()).await;
    assert_eq!(
        call(&s, "LogDriver.Capabilities", None).await.unwrap(),
        j(r#"{"Cap": {"ReadLogs": false}}"#)
    );
    let read = r#"{"Info": {}, "Config": {"Since": "0001-01-01T00:00:00Z", "Until": "0001-01-01T00:00:00Z", "Tail": -1, "Follow": true}}"#;
    assert_eq!(
        call(&s, "LogDriver.ReadLogs", Some(read)).await.unwrap_err(),
        (500, "this log driver does not read logs".into())
    );
}

struct Metrics(std::sync::Arc<Mutex<Vec<&'static str>>>);

impl MetricsCollector for Metrics {
    async fn start_metrics(&self) -> PluginResult<()> {
        self.0.lock().unwrap().push("start");
        Ok(())
    }
}

struct Secrets;

impl SecretProvider for Secrets {
    async fn get_secret(&self, req: GetSecretRequest) -> PluginResult<GetSecretResponse> {
        assert_eq!(req.node_id, "z9x8c7v6b5n4m3l2");
        let value = if req.secret_name == "empty" { Vec::new() } else { b"s3cr3t".to_vec() };
        Ok(GetSecretResponse { value, ..GetSecretResponse::default() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_secrets_and_a_manifest_of_everything() {
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let plugin = Plugin::builder()
        .volume(Harness::new("/v"))
        .metrics(Metrics(seen.clone()))
        .secrets(Secrets)
        .network(Net::default())
        .ipam(Ipam)
        .authz(Deny)
        .log(Logs::default())
        .build();
    let s = Served::unix(plugin).await;
    assert_eq!(
        call(&s, "Plugin.Activate", None).await.unwrap(),
        json!({"Implements": ["VolumeDriver", "MetricsCollector", "secretprovider", "NetworkDriver", "IpamDriver", "authz", "LogDriver"]})
    );
    assert_eq!(call(&s, "MetricsCollector.StartMetrics", None).await.unwrap(), json!({}));
    assert_eq!(call(&s, "MetricsCollector.StopMetrics", None).await.unwrap(), json!({}));
    assert_eq!(*seen.lock().unwrap(), ["start"]);
    let req = r#"{"SecretName": "db_password", "SecretLabels": {"env": "prod"}, "ServiceID": "k2j4h5g6f7d8s9a0", "ServiceName": "api", "TaskID": "q1w2e3r4t5y6u7i8", "TaskName": "api.1.q1w2e3r4t5y6u7i8", "TaskImage": "myorg/api:1.2", "NodeID": "z9x8c7v6b5n4m3l2", "ServiceEndpointSpec": {"Mode": 1, "Ports": [{"Protocol": 0, "TargetPort": 8080, "PublishedPort": 80}]}}"#;
    let reply = call(&s, "SecretProvider.GetSecret", Some(req)).await.unwrap();
    assert_eq!(reply["Value"], "czNjcjN0");
    // A value swarm would reject is refused here, with the reason.
    let empty = req.replace("db_password", "empty");
    let (status, msg) = call(&s, "SecretProvider.GetSecret", Some(&empty)).await.unwrap_err();
    assert_eq!(status, 500);
    assert!(msg.contains("outside 1.."), "{msg}");
}
