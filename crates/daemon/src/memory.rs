//! The allocator, set up for a long-running daemon (glibc's malloc; nothing elsewhere).
//!
//! What dockplugd keeps alive is small (about 1 MB of heap with 20 plugins enabled, measured
//! with valgrind's massif), but glibc's defaults kept far more resident: each thread that
//! allocates while another holds the main arena gets an arena of its own (up to eight per
//! core), and every arena keeps what is freed in it for reuse. A `plugin create` (tar and
//! compression buffers) or a burst of API requests left several MB of freed memory resident
//! in the runtime threads' arenas, never given back. So, before any thread starts:
//!
//! - one arena ([`ARENAS`]): the daemon's threads are two runtime workers and a few blocking
//!   ones, and glibc's per-thread caches serve small allocations without the arena's lock;
//! - a fixed mmap threshold ([`MMAP_THRESHOLD`]): larger blocks are mapped and unmapped
//!   (glibc otherwise raises the threshold after each such free, and later large buffers
//!   stay in the heap);
//!
//! and once the API has gone quiet after requests ([`QUIET`]), [`Trim`] hands the free pages
//! inside the heap back to the kernel (`malloc_trim`), so memory comes down after a burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dockplug_engine::{BoxFuture, Middleware, Next, Reply, RequestBody};
use http::Request;
use tokio::sync::Notify;

/// malloc arenas.
pub const ARENAS: i32 = 1;
/// Blocks at least this large are mapped on their own and returned to the kernel when freed.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;
/// How long the API has to be quiet after a request before the heap is trimmed.
pub const QUIET: Duration = Duration::from_secs(1);

/// Sets [`ARENAS`] and [`MMAP_THRESHOLD`]; call it first in `main`, before any thread exists.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes glibc's malloc parameters (it takes the arena lock
    // itself); it is called before any other thread exists, with valid parameter numbers.
    unsafe {
        use nix::libc::{mallopt, M_ARENA_MAX, M_MMAP_THRESHOLD};
        if mallopt(M_ARENA_MAX, ARENAS) != 1 || mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 {
            eprintln!("dockplugd: mallopt refused the allocator settings; keeping glibc's");
        }
    }
}

/// Gives free heap pages back to the kernel; returns whether any were.
fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes glibc's arena locks itself and only releases pages of free
    // chunks; no pointer of ours is involved.
    unsafe {
        nix::libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Trims the heap once the API has been quiet for [`QUIET`] after requests: a middleware
/// counts requests ([`Trim::middleware`]), a task waits for the quiet ([`Trim::run`]).
#[derive(Debug, Clone, Default)]
pub struct Trim {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Requests started and finished; unchanged over [`QUIET`] means quiet.
    activity: AtomicU64,
    /// Told when a request finishes.
    finished: Notify,
}

impl Trim {
    /// The middleware that reports requests.
    pub fn middleware(&self) -> impl Middleware {
        Counting { shared: self.shared.clone() }
    }

    /// Waits for requests, then for the quiet after them, and trims; forever (spawn it).
    pub async fn run(self) {
        self.run_with(trim_heap).await;
    }

    async fn run_with(self, mut trim: impl FnMut() -> bool) {
        let mut trimmed_at = 0;
        loop {
            self.shared.finished.notified().await;
            let quiet_at = loop {
                let seen = self.shared.activity.load(Ordering::Relaxed);
                tokio::time::sleep(QUIET).await;
                if self.shared.activity.load(Ordering::Relaxed) == seen {
                    break seen;
                }
            };
            // A wake-up left over from requests the last trim already followed.
            if quiet_at == trimmed_at {
                continue;
            }
            trimmed_at = quiet_at;
            let started = std::time::Instant::now();
            let released = trim();
            tracing::debug!(
                released,
                elapsed_us = started.elapsed().as_micros() as u64,
                "heap trimmed after requests"
            );
        }
    }
}

struct Counting {
    shared: Arc<Shared>,
}

/// Counts a request as finished when dropped (the reply is made, or the client went away).
struct Finished(Arc<Shared>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.activity.fetch_add(1, Ordering::Relaxed);
        self.0.finished.notify_one();
    }
}

impl Middleware for Counting {
    fn handle(&self, request: Request<RequestBody>, next: Next) -> BoxFuture<Reply> {
        self.shared.activity.fetch_add(1, Ordering::Relaxed);
        let finished = Finished(self.shared.clone());
        Box::pin(async move {
            let reply = next.run(request).await;
            drop(finished);
            reply
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn trims_once_after_the_quiet_that_follows_requests() {
        let trim = Trim::default();
        let shared = trim.shared.clone();
        let trims = Arc::new(AtomicUsize::new(0));
        let counted = trims.clone();
        let task = tokio::spawn(trim.run_with(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            true
        }));
        let ms = Duration::from_millis;

        // Nothing is trimmed before any request.
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(trims.load(Ordering::Relaxed), 0);

        // A request ends; another starts and ends half-way through the quiet: the wait
        // starts over, so nothing is trimmed one quiet period after the first.
        drop(Finished(shared.clone()));
        tokio::time::sleep(QUIET / 2).await;
        shared.activity.fetch_add(1, Ordering::Relaxed);
        drop(Finished(shared.clone()));
        tokio::time::sleep(QUIET / 2 + ms(10)).await;
        assert_eq!(trims.load(Ordering::Relaxed), 0);

        // Quiet from then on: one trim, and no more without requests.
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(trims.load(Ordering::Relaxed), 1);
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(trims.load(Ordering::Relaxed), 1);

        // The next burst is trimmed too.
        drop(Finished(shared.clone()));
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(trims.load(Ordering::Relaxed), 2);
        task.abort();
    }
}
