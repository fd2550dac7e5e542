//! Byte-count progress at a bounded rate: at most one `Downloading`/`Uploading` message per
//! item per interval, plus the last one, as dockerd's progress reader does.

use std::time::{Duration, Instant};

use dockplug_manager::Progress;
use dockplug_protocol::progress::{short_id, JsonMessage};

/// Counts the bytes of one blob and reports them through a [`Progress`] sink.
pub(crate) struct Meter<'a> {
    sink: &'a dyn Progress,
    id: String,
    status: &'static str,
    total: u64,
    done: u64,
    interval: Duration,
    last: Option<Instant>,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(
        sink: &'a dyn Progress,
        digest: &str,
        status: &'static str,
        total: u64,
        interval: Duration,
    ) -> Self {
        Self { sink, id: short_id(digest).to_owned(), status, total, done: 0, interval, last: None }
    }

    /// `n` more bytes; reports if the interval has passed since the last report.
    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        let now = Instant::now();
        if self.last.is_none_or(|t| now.duration_since(t) >= self.interval) {
            self.last = Some(now);
            self.report();
        }
    }

    /// Reports the count now (the end of a transfer).
    pub(crate) fn finish(&mut self) {
        self.report();
    }

    fn report(&self) {
        let total = i64::try_from(self.total).unwrap_or(i64::MAX);
        let done = i64::try_from(self.done).unwrap_or(i64::MAX);
        self.sink.send(JsonMessage::progress_bar(self.id.clone(), self.status, done, total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn bounded_rate_and_last_count() {
        let seen = Mutex::new(Vec::new());
        let sink = |m: JsonMessage| seen.lock().unwrap().push(m);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let mut m = Meter::new(&sink, &digest, "Downloading", 10_000, Duration::from_secs(3600));
        for _ in 0..1000 {
            m.add(10);
        }
        m.finish();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 2, "one at the start, one at the end");
        assert_eq!(seen[1].id, "abababababab");
        assert_eq!(seen[1].progress_detail.as_ref().unwrap().current, 10_000);
        assert!(seen[1].progress.contains("10kB/10kB"), "{}", seen[1].progress);
    }
}
