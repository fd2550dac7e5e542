use dockplug_protocol::subsystem::Subsystem;
use dockplug_protocol::{authz, body, graph, ipam, log, metrics, network, secrets, volume};
use dockplug_protocol::{ErrorBody, Manifest};

#[test]
fn implements_names() {
    let names: Vec<&str> = Subsystem::ALL.iter().map(|s| s.implements()).collect();
    assert_eq!(
        names,
        [
            volume::IMPLEMENTS,
            network::IMPLEMENTS,
            ipam::IMPLEMENTS,
            authz::IMPLEMENTS,
            log::IMPLEMENTS,
            metrics::IMPLEMENTS,
            secrets::IMPLEMENTS,
            graph::IMPLEMENTS,
        ]
    );
    assert_eq!(
        names,
        [
            "VolumeDriver",
            "NetworkDriver",
            "IpamDriver",
            "authz",
            "LogDriver",
            "MetricsCollector",
            "secretprovider",
            "GraphDriver"
        ]
    );
    let m: Manifest =
        serde_json::from_str(r#"{"Implements": ["NetworkDriver", "IpamDriver"]}"#).unwrap();
    let found: Vec<Subsystem> =
        m.implements.iter().filter_map(|n| Subsystem::from_implements(n)).collect();
    assert_eq!(found, [Subsystem::Network, Subsystem::Ipam]);
    assert_eq!(Subsystem::from_implements("volumedriver"), None);
    assert_eq!("authz".parse::<Subsystem>().unwrap(), Subsystem::Authz);
}

#[test]
fn paths_map_to_subsystems() {
    let cases = [
        (volume::VolumeMethod::Create.path(), Subsystem::Volume),
        (network::NetworkMethod::Join.path(), Subsystem::Network),
        (ipam::IpamMethod::RequestPool.path(), Subsystem::Ipam),
        (authz::AuthzMethod::AuthZRes.path(), Subsystem::Authz),
        (log::LogMethod::ReadLogs.path(), Subsystem::Log),
        (metrics::MetricsMethod::StartMetrics.path(), Subsystem::Metrics),
        (secrets::SecretsMethod::GetSecret.path(), Subsystem::Secrets),
        ("/GraphDriver.ApplyDiff?id=a&parent=b", Subsystem::Graph),
    ];
    for (path, want) in cases {
        assert_eq!(Subsystem::of_path(path), Some(want), "{path}");
    }
    let total = volume::VolumeMethod::ALL.len()
        + network::NetworkMethod::ALL.len()
        + ipam::IpamMethod::ALL.len()
        + authz::AuthzMethod::ALL.len()
        + log::LogMethod::ALL.len()
        + metrics::MetricsMethod::ALL.len()
        + secrets::SecretsMethod::ALL.len()
        + graph::GraphMethod::ALL.len();
    assert_eq!(total, 8 + 15 + 6 + 2 + 4 + 2 + 1 + 15);
    let err = "VolumeDriver.Frobnicate".parse::<volume::VolumeMethod>().unwrap_err();
    assert_eq!(err.to_string(), r#"unknown VolumeDriver method "VolumeDriver.Frobnicate""#);
}

/// Checklist item 10: an empty body is accepted wherever dockerd sends none, and a reply
/// body may not be empty.
#[test]
fn empty_request_bodies() {
    let _: Manifest = body::decode_request(b"").unwrap();
    let _: volume::EmptyRequest = body::decode_request(b"").unwrap();
    let _: metrics::MetricsRequest = body::decode_request(b"").unwrap();
    assert!(body::decode_reply::<network::CapabilitiesResponse>(b"").is_err());
    assert!(body::decode_reply::<ipam::CapabilitiesResponse>(b"").is_err());
    assert!(body::decode_reply::<log::CapabilitiesResponse>(b"").is_err());
    let r: ipam::AddressSpacesResponse = body::decode_reply(b"null").unwrap();
    assert_eq!(r, Default::default());
    let r: ErrorBody = body::decode_reply(b"{\"Err\":\"a\"}\n").unwrap();
    assert_eq!(r.err, "a");
}

#[test]
fn encoding_is_go_compatible() {
    let r = authz::Response::deny("<script>&");
    assert_eq!(
        body::encode(&r).unwrap(),
        b"{\"Allow\":false,\"Msg\":\"\\u003cscript\\u003e\\u0026\"}\n"
    );
}
