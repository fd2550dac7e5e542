//! Moby's retry schedule and the one loop that applies it to every call.
//!
//! Moby (`pkg/plugins/client.go callWithRetry`, `backoff`, `abort`) retries any call whose
//! HTTP round trip failed: it waits 1 s, doubling up to 30 s, and gives up once the next wait
//! would end 30 s or more after the first attempt. It rebuilds the request from the same
//! reader each time, so a streamed body that was already read is sent again empty, and a
//! call that timed out is sent again. Here the loop is told whether the request's body may be
//! resent ([`Resend`]): a buffered JSON body is resent whole; a streamed one only while the
//! request comes back unsent. Timeouts bound the whole loop (see [`super::Client`]), so they
//! are never retried.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::body::{full, Body};
use super::error::CallError;
use super::Inner;

/// Moby's retry schedule for calls that cannot reach the plugin, configurable so tests and
/// impatient callers can shorten it.
///
/// The wait before retry `n` (from 0) is `initial_delay * 2^n`, capped at `max_delay`; the
/// client gives up instead of waiting when the wait would end `give_up_after` or more after
/// the first attempt.
///
/// ```
/// use std::time::Duration;
/// let s = dockplug_v1::RetryPolicy::default().schedule();
/// let secs: Vec<u64> = s.iter().map(Duration::as_secs).collect();
/// assert_eq!(secs, [1, 2, 4, 8]); // attempts at 0, 1, 3, 7 and 15 s
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first wait (Moby: 1 s).
    pub initial_delay: Duration,
    /// The longest wait (Moby: 30 s).
    pub max_delay: Duration,
    /// The window after the first attempt in which retries may start (Moby: 30 s).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retry at all: the first connection failure is returned.
    pub fn never() -> Self {
        Self {
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            give_up_after: Duration::ZERO,
        }
    }

    /// A policy with the given first wait and window (the wait is capped at the window).
    pub fn new(initial_delay: Duration, give_up_after: Duration) -> Self {
        Self { initial_delay, max_delay: give_up_after, give_up_after }
    }

    /// The wait before retry number `retries` (0 for the first retry).
    pub fn backoff(&self, retries: u32) -> Duration {
        let factor = 1u32.checked_shl(retries.min(31)).unwrap_or(u32::MAX);
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Whether to give up rather than wait `delay` when `elapsed` has passed since the first
    /// attempt.
    pub fn gives_up(&self, delay: Duration, elapsed: Duration) -> bool {
        delay.is_zero() || delay + elapsed >= self.give_up_after
    }

    /// The waits taken when every attempt fails at once (bounded by the window).
    pub fn schedule(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut elapsed = Duration::ZERO;
        for retries in 0..64 {
            let d = self.backoff(retries);
            if self.gives_up(d, elapsed) {
                break;
            }
            elapsed += d;
            out.push(d);
        }
        out
    }
}

/// Whether a request whose attempt failed may be sent again, and how.
pub(super) enum Resend {
    /// The body is buffered: every retry sends it again whole.
    Whole(Bytes),
    /// The body is streamed and read once: a retry happens only when the request came back
    /// unsent (the connection failed before any of it went out).
    OnlyUnsent,
}

/// How one attempt failed, and the request if it came back unsent.
pub(super) enum AttemptError {
    Connect(std::io::Error, Option<Request<Body>>),
    /// The flag: whether the connection was a reused (pooled) one.
    Transport(hyper::Error, Option<Request<Body>>, bool),
}

impl Inner {
    /// Send `req` to `target`, retrying connection failures per the policy as `resend` allows.
    pub(super) async fn send(
        &self,
        method: &str,
        target: &http::Uri,
        mut req: Request<Body>,
        resend: Resend,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), CallError> {
        let started = Instant::now();
        let mut retries = 0;
        let mut fresh = false;
        loop {
            let (err, back, reused) = match self.attempt(req, fresh).await {
                Ok(ok) => return Ok(ok),
                Err(AttemptError::Connect(e, back)) => (self.connect_error(method, e), back, false),
                Err(AttemptError::Transport(e, back, reused)) => {
                    (self.transport_error(method, e), back, reused)
                }
            };
            req = match (&resend, back) {
                (Resend::Whole(body), _) => {
                    self.request(target, full(body.clone()), Some(body.len()))
                }
                (Resend::OnlyUnsent, Some(back)) => back,
                (Resend::OnlyUnsent, None) => return Err(err),
            };
            // A kept-alive connection the plugin closed meanwhile: try a new one at once,
            // before any backoff.
            if reused && !fresh {
                fresh = true;
                continue;
            }
            let delay = self.retry.backoff(retries);
            if self.retry.gives_up(delay, started.elapsed()) {
                return Err(err);
            }
            tracing::warn!(addr = %self.addr, error = %err, "unable to connect to plugin, retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    fn connect_error(&self, method: &str, source: std::io::Error) -> CallError {
        CallError::Connect { method: method.to_owned(), addr: self.addr.to_string(), source }
    }

    fn transport_error(&self, method: &str, source: hyper::Error) -> CallError {
        CallError::Transport { method: method.to_owned(), addr: self.addr.to_string(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_moby() {
        let p = RetryPolicy::default();
        let s = |n| p.backoff(n).as_secs();
        assert_eq!([s(0), s(1), s(2), s(4), s(6), s(10), s(40)], [1, 2, 4, 16, 30, 30, 30]);
        let z = Duration::ZERO;
        for secs in [1, 2, 10] {
            assert!(!p.gives_up(Duration::from_secs(secs), z));
        }
        for secs in [30, 40] {
            assert!(p.gives_up(Duration::from_secs(secs), z));
        }
        assert_eq!(p.schedule().iter().sum::<Duration>(), Duration::from_secs(15));
        assert!(RetryPolicy::never().schedule().is_empty());
        let short = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100));
        let ms: Vec<u128> = short.schedule().iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40]);
    }
}
