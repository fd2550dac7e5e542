//! Supervision: what happens when a plugin exits (a stop, a failed start or a crash) and the
//! crash loop that restarts it with a backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Manager;
use crate::events::Event;
use crate::executor::{Executor, Exit};
use crate::fsutil;
use crate::store::{Entry, ExitKind, RunState};

/// How a crashed plugin is restarted: after `initial`, doubling up to `max`; the count is
/// reset once a plugin has stayed up for `stable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Uptime after which the backoff starts again from `initial`.
    pub stable: Duration,
    /// Give up after this many restarts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
            stable: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

impl<E: Executor> Manager<E> {
    /// Feeds every exit the executor reports to [`Manager::handle_exit`], for as long as the
    /// manager lives.
    pub(super) fn spawn_exit_loop(&self, mut exits: crate::executor::ExitReceiver) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(exit) = exits.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Manager { inner }.handle_exit(exit);
            }
        });
    }

    /// Called for every exit the executor reports.
    fn handle_exit(&self, exit: Exit) {
        let Ok(entry) = self.inner.store.resolve(&exit.id) else {
            tracing::warn!(plugin = %exit.id, "exit of an unknown plugin");
            return;
        };
        let _ = fsutil::remove_dir_if_exists(&self.exec_dir(entry.id()));
        let may_restart = !self.inner.shutting_down.load(Ordering::SeqCst);
        // An exit while starting is seen by the start in progress, which fails: no crash.
        let ExitKind::Crashed(restart) = entry.exited(may_restart, &self.inner.config.restart)
        else {
            return;
        };
        self.inner.events.publish(Event::Crash {
            plugin: (*entry.snapshot()).clone(),
            exit_code: exit.exit_code,
            restart_in: restart,
        });
        if let Some(delay) = restart {
            tracing::warn!(plugin = %exit.id, exit_code = ?exit.exit_code, delay_ms = delay.as_millis() as u64, "plugin exited, restarting");
            let this = self.clone();
            tokio::spawn(async move { this.restart_loop(entry, delay).await });
        }
    }

    /// Restarts a crashed plugin after `delay`; a failed restart is part of the crash loop
    /// (the plugin stays enabled and the backoff goes on) until the policy gives up or the
    /// plugin is disabled or removed.
    async fn restart_loop(&self, entry: Arc<Entry>, mut delay: Duration) {
        loop {
            tokio::time::sleep(delay).await;
            let op = entry.lock_op().await;
            let still = matches!(op.run_state(), RunState::Restarting { .. })
                && op.enabled()
                && !op.is_removed();
            if !still || self.check_running().is_err() {
                return;
            }
            let Err(e) = self.start(&op, true, op.client_timeout()).await else {
                self.inner.events.publish(Event::Restart((*op.snapshot()).clone()));
                return;
            };
            tracing::error!(plugin = %op.id(), error = %e, "restart of plugin failed");
            // Still meant to run: undo the disable a failed start records.
            if let Err(e) = op.set_enabled(true) {
                tracing::warn!(plugin = %op.id(), error = %e, "failed to save plugin state");
            }
            let next = op.restart_failed(&self.inner.config.restart);
            self.inner.events.publish(Event::Crash {
                plugin: (*op.snapshot()).clone(),
                exit_code: None,
                restart_in: next,
            });
            match next {
                Some(d) => delay = d,
                None => return,
            }
        }
    }
}
