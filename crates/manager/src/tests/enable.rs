//! Enable: the deadline of the socket wait.

use std::time::Duration;

use super::Fixture;
use crate::{LookupMode, RunState};

/// `docker plugin install` enables with `timeout=0` (Moby's `client/plugin_install.go
/// PluginInstall` sends `PluginEnableOptions{Timeout: 0}`, and the `enablePlugin` route of
/// `api/server/router/plugin/plugin_routes.go` passes it on). Moby's socket wait in
/// `plugin/manager_linux.go pluginPostStart` does not depend on it, so zero must mean the
/// default start deadline, never "give up at once".
#[tokio::test(start_paused = true)]
async fn enable_with_a_zero_timeout_waits_the_default_deadline() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    // The plugin listens a little after it starts, as a real one does.
    f.exec.state().socket_after = Some(Duration::from_millis(300));
    let t = tokio::time::Instant::now();
    let enabled = f.m.enable("vol", Some(Duration::ZERO)).await.unwrap();
    assert!(enabled.enabled);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(f.m.state(&p.id).unwrap(), RunState::Running);
    // Zero is "no timeout given": the plugin's client timeout is the default one.
    let plugin = f.m.get("vol", "volumedriver", LookupMode::Lookup).unwrap();
    assert_eq!(plugin.timeout, None);
}
