//! The daemon's event log behind `GET /events` (Moby's `daemon/events`): the last 256
//! events kept for `since`/`until` queries, every new one broadcast to subscribers (a slow
//! subscriber misses events instead of holding the publisher), and Moby's event filter
//! (`daemon/events/filter.go` `Include`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dockplug_protocol::events::{EventActor, EventMessage, LOCAL_SCOPE};
use dockplug_protocol::filters::Filters;
use tokio::sync::broadcast;

/// How many past events are kept (Moby's `eventsLimit`).
pub const EVENTS_LIMIT: usize = 256;

/// How many events a subscriber may be behind before it misses some (Moby's `bufferSize`).
const SUBSCRIBER_BUFFER: usize = 1024;

/// The event log. Cheap to clone; clones share the log.
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Mutex<VecDeque<Arc<EventMessage>>>>,
    tx: broadcast::Sender<Arc<EventMessage>>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        Self { inner: Arc::new(Mutex::new(VecDeque::with_capacity(EVENTS_LIMIT))), tx }
    }

    /// Logs an event of `type` (`plugin`, `volume`, ...) now, in local scope (Moby's
    /// `Events.Log`).
    pub fn log(&self, r#type: &str, action: &str, actor: EventActor) {
        let nanos = now_nanos();
        self.publish(EventMessage {
            r#type: r#type.to_owned(),
            action: action.to_owned(),
            actor,
            scope: LOCAL_SCOPE.to_owned(),
            time: nanos.div_euclid(1_000_000_000),
            time_nano: nanos,
            ..EventMessage::default()
        });
    }

    /// Publishes an event as it is.
    pub fn publish(&self, event: EventMessage) {
        let event = Arc::new(event);
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == EVENTS_LIMIT {
            log.pop_front();
        }
        log.push_back(event.clone());
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// The kept events in `[since, until]` (Unix nanoseconds; `None` for no bound) that
    /// `filter` includes, oldest first, and a subscription to every later event, taken
    /// atomically. Past events are only returned when a bound is given (Moby's
    /// `loadBufferedEvents`).
    pub(crate) fn subscribe(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filter: &EventFilter,
    ) -> (Vec<Arc<EventMessage>>, broadcast::Receiver<Arc<EventMessage>>) {
        let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let mut past = Vec::new();
        if since.is_some() || until.is_some() {
            let since = since.unwrap_or(0);
            for e in log.iter().rev() {
                if e.time_nano < since {
                    break;
                }
                if until.is_some_and(|u| u > 0 && e.time_nano > u) {
                    continue;
                }
                if filter.include(e) {
                    past.push(e.clone());
                }
            }
            past.reverse();
        }
        (past, rx)
    }
}

/// Unix time in nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Moby's event filter over `filters` (`daemon/events/filter.go`).
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    filters: Filters,
}

/// The object types whose filter key matches the actor's ID or name by prefix.
const NAMED_TYPES: [&str; 9] =
    ["daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config"];

impl EventFilter {
    pub(crate) fn new(filters: Filters) -> Self {
        Self { filters }
    }

    /// Go's `ExactMatch`: no values for `key` matches everything. (Go also requires the
    /// value's flag to be `true` in the `{"k":{"v":true}}` form; clients only send `true`.)
    fn exact(&self, key: &str, source: &str) -> bool {
        let values = self.filters.get(key);
        values.is_empty() || values.contains(&source)
    }

    /// Go's `FuzzyMatch`: an exact value or a prefix of `source`.
    fn fuzzy(&self, key: &str, source: &str) -> bool {
        let values = self.filters.get(key);
        values.is_empty() || values.iter().any(|v| source.starts_with(v))
    }

    fn name_match(&self, key: &str, e: &EventMessage) -> bool {
        let name = e.actor.attributes.get("name").map(String::as_str).unwrap_or_default();
        self.fuzzy(key, &e.actor.id) || self.fuzzy(key, name)
    }

    fn image_match(&self, e: &EventMessage) -> bool {
        let attr = if e.r#type == "image" { "name" } else { "image" };
        let name = e.actor.attributes.get(attr).map(String::as_str).unwrap_or_default();
        self.exact("image", &e.actor.id)
            || self.exact("image", name)
            || self.exact("image", &strip_tag(&e.actor.id))
            || self.exact("image", &strip_tag(name))
    }

    fn labels_match(&self, e: &EventMessage) -> bool {
        // Go's MatchKVList: every `key` or `key=value` label filter must hold.
        self.filters.get("label").iter().all(|want| match want.split_once('=') {
            Some((k, v)) => e.actor.attributes.get(k).is_some_and(|have| have == v),
            None => e.actor.attributes.contains_key(*want),
        })
    }

    /// Whether `e` passes (Moby's `Filter.Include`).
    pub(crate) fn include(&self, e: &EventMessage) -> bool {
        const FUZZY_EVENTS: [&str; 3] = ["health_status", "exec_create", "exec_start"];
        let event_ok = if self.filters.get("event").iter().any(|v| FUZZY_EVENTS.contains(v)) {
            self.fuzzy("event", &e.action)
        } else {
            self.exact("event", &e.action)
        };
        event_ok
            && self.exact("type", &e.r#type)
            && (!self.filters.contains("scope") || self.exact("scope", &e.scope))
            && NAMED_TYPES.iter().all(|k| self.name_match(k, e))
            && self.image_match(e)
            && self.labels_match(e)
    }
}

/// The familiar repository name of an image reference, without tag or digest (Moby's
/// `stripTag`, reduced: the default registry and `library/` namespace are dropped).
fn strip_tag(image: &str) -> String {
    let image = image.split_once('@').map_or(image, |(n, _)| n);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let name = match image[last_slash..].find(':') {
        Some(i) => &image[..last_slash + i],
        None => image,
    };
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    match name.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => name.to_owned(),
    }
}

/// Reads a `since`/`until` value as Moby's `timetypes.ParseTimestamps`: `SECONDS` or
/// `SECONDS.FRACTION`; `None` for an empty value. Returns Unix nanoseconds.
pub(crate) fn parse_timestamp(v: &str) -> Result<Option<i64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let atoi_err = |s: &str| format!("strconv.ParseInt: parsing {s:?}: invalid syntax");
    let parse = |s: &str| -> Result<i64, String> {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(atoi_err(s));
        }
        s.parse::<i64>().map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
    };
    let (secs, frac) = match v.split_once('.') {
        Some((s, f)) => (parse(s)?, Some(f)),
        None => (parse(v)?, None),
    };
    let nanos = match frac {
        None => 0,
        Some(f) => {
            let n = parse(f)?;
            let scale = 9 - i32::try_from(f.len()).unwrap_or(i32::MAX).min(9);
            // Go: float64(n) * 10^(9-len); digits past nine are dropped the same way.
            (n as f64 * 10f64.powi(scale)) as i64
        }
    };
    Ok(Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos)))
}
