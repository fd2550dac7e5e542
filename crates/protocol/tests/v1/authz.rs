use dockplug_protocol::authz::*;

use super::support::{canonical, golden, printed};

#[test]
fn requests() {
    let r: Request = golden(
        r#"{"User": "alice", "UserAuthNMethod": "TLS", "RequestMethod": "POST", "RequestUri": "/v1.41/containers/create?name=web", "RequestBody": "eyJJbWFnZSI6Im5naW54In0=", "RequestHeaders": {"Content-Type": "application/json", "User-Agent": "Docker-Client/20.10.24 (linux)"}}"#,
    );
    assert_eq!(r.request_body, br#"{"Image":"nginx"}"#);
    assert_eq!(r.request_headers["User-Agent"], "Docker-Client/20.10.24 (linux)");
    let r: Request = golden(
        r#"{"RequestMethod": "GET", "RequestUri": "/v1.41/version", "RequestHeaders": {"User-Agent": "curl/7.88.1"}, "ResponseStatusCode": 200, "ResponseBody": "eyJWZXJzaW9uIjoiMjAuMTAuMjQifQ==", "ResponseHeaders": {"Content-Type": "application/json"}}"#,
    );
    assert_eq!(r.response_status_code, 200);
    assert_eq!(r.response_body, br#"{"Version":"20.10.24"}"#);
    // Every key is omitempty; the docs' spellings fold to the real keys.
    let r: Request = canonical(
        r#"{"RequestURI": "/x", "requestHeaders": null, "RequestBody": null, "ResponseStatusCode": 0}"#,
        r#"{"RequestUri": "/x"}"#,
    );
    assert_eq!(printed(&r), r#"{"RequestUri":"/x"}"#);
    assert_eq!(printed(&Request::default()), "{}");
}

#[test]
fn peer_certificates_are_base64_pem() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let r = Request {
        request_method: "GET".into(),
        request_uri: "/_ping".into(),
        request_peer_certificates: vec![pem.as_bytes().to_vec()],
        ..Request::default()
    };
    let json = printed(&r);
    assert!(json.contains(r#""RequestPeerCertificates":["LS0tLS1CRUdJTi"#), "{json}");
    let back: Request = golden(&json);
    assert_eq!(back.request_peer_certificates[0], pem.as_bytes());
    assert!(serde_json::from_str::<Request>(r#"{"RequestPeerCertificates":["%%%"]}"#).is_err());
}

#[test]
fn responses() {
    let r: Response = golden(r#"{"Allow": true}"#);
    assert_eq!(r, Response::allow());
    let r: Response = golden(r#"{"Allow": false, "Msg": "volumes are not allowed"}"#);
    assert_eq!(r, Response::deny("volumes are not allowed"));
    // Missing Allow denies; a string Allow is a decode error; Err does not deny a 200 reply.
    let r: Response = canonical(r#"{"Msg": "x"}"#, r#"{"Allow": false, "Msg": "x"}"#);
    assert!(!r.allow);
    assert!(serde_json::from_str::<Response>(r#"{"Allow": "true"}"#).is_err());
    let r: Response = golden(r#"{"Allow": true, "Err": "x"}"#);
    assert!(r.allow);
    let r: Response = canonical(r#"{"allow": true}"#, r#"{"Allow": true}"#);
    assert!(r.allow);
}
