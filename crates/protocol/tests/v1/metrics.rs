use dockplug_protocol::body;
use dockplug_protocol::metrics::*;
use dockplug_protocol::subsystem::Subsystem;

use super::support::golden;

#[test]
fn empty_bodies() {
    // The daemon sends no body; `{}` and `null` read the same.
    for b in [&b""[..], b"{}", b"null", b" \n"] {
        let _: MetricsRequest = body::decode_request(b).unwrap();
    }
    golden::<MetricsResponse>("{}");
    assert_eq!(MetricsMethod::StopMetrics.as_str(), "MetricsCollector.StopMetrics");
    assert_eq!(Subsystem::Metrics.v2_type(), "docker.metricscollector/1.0");
}
