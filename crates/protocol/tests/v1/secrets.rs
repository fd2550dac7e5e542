use dockplug_protocol::secrets::*;

use super::support::{canonical, golden, printed};

#[test]
fn get_secret() {
    let r: GetSecretRequest = canonical(
        r#"{"SecretName": "db_password", "SecretLabels": {"env": "prod"}, "ServiceID": "k2j4h5g6f7d8s9a0", "ServiceName": "api", "TaskID": "q1w2e3r4t5y6u7i8", "TaskName": "api.1.q1w2e3r4t5y6u7i8", "TaskImage": "myorg/api:1.2", "NodeID": "z9x8c7v6b5n4m3l2", "ServiceEndpointSpec": {"Mode": 1, "Ports": [{"Protocol": 0, "TargetPort": 8080, "PublishedPort": 80}]}}"#,
        r#"{"SecretName": "db_password", "SecretLabels": {"env": "prod"}, "ServiceID": "k2j4h5g6f7d8s9a0", "ServiceName": "api", "TaskID": "q1w2e3r4t5y6u7i8", "TaskName": "api.1.q1w2e3r4t5y6u7i8", "TaskImage": "myorg/api:1.2", "NodeID": "z9x8c7v6b5n4m3l2", "ServiceEndpointSpec": {"Mode": 1, "Ports": [{"TargetPort": 8080, "PublishedPort": 80}]}}"#,
    );
    assert_eq!(r.node_id, "z9x8c7v6b5n4m3l2");
    let spec = r.service_endpoint_spec.unwrap();
    assert_eq!(spec.ports[0].target_port, 8080);
    assert_eq!(printed(&GetSecretRequest::default()), "{}");

    let r: GetSecretResponse = golden(r#"{"Value": "czNjcjN0", "DoNotReuse": false}"#);
    assert_eq!(r.value, b"s3cr3t");
    assert!(r.check_value().is_ok());
    let r: GetSecretResponse = golden(r#"{"Err": "vault sealed", "DoNotReuse": false}"#);
    assert_eq!(r.err, "vault sealed");
    assert!(r.check_value().is_err());
    let r: GetSecretResponse =
        canonical(r#"{"value": null, "doNotReuse": true}"#, r#"{"DoNotReuse": true}"#);
    assert!(r.do_not_reuse);
    assert!(serde_json::from_str::<GetSecretResponse>(r#"{"Value": "czNjcjN0="}"#).is_err());
}
