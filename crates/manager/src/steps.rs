//! Step timings of one operation (enable, disable, remove, create, pull, push), logged at
//! debug level under the `dockplug_manager::steps` target, so where the time of an operation
//! goes can be read from a daemon's log (`DOCKPLUGD_LOG=dockplug_manager::steps=debug`)
//! without a profiler.

use std::time::Instant;

/// The clock of one operation: each [`Steps::step`] logs the time since the previous step
/// and since the start.
pub(crate) struct Steps<'a> {
    op: &'static str,
    plugin: &'a str,
    start: Instant,
    last: Instant,
}

impl<'a> Steps<'a> {
    /// Starts the clock of `op` on `plugin` (a name or an ID).
    pub(crate) fn start(op: &'static str, plugin: &'a str) -> Steps<'a> {
        let now = Instant::now();
        Steps { op, plugin, start: now, last: now }
    }

    /// Logs that `step` has just ended.
    pub(crate) fn step(&mut self, step: &'static str) {
        if !tracing::enabled!(target: "dockplug_manager::steps", tracing::Level::DEBUG) {
            return;
        }
        let now = Instant::now();
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        tracing::debug!(
            target: "dockplug_manager::steps",
            op = self.op,
            plugin = self.plugin,
            step,
            step_ms = ms(now - self.last),
            total_ms = ms(now - self.start),
        );
        self.last = now;
    }
}
