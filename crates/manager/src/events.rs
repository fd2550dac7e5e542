//! Manager events: create, remove, enable, disable, with Moby's matching rules, delivered
//! to subscribers that never block the publisher and are told how many events they missed.
//!
//! Beyond Moby's four, the manager tells about its crash handling: [`Event::Crash`] (a
//! running plugin's process ended, or a restart of it failed) and [`Event::Restart`] (a
//! crashed plugin runs again). They are additive: a filter for one of Moby's four never
//! matches them, so a subscriber only gets them with no filter (`None`, everything) or with
//! [`EventFilter::Crash`] / [`EventFilter::Restart`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dockplug_protocol::Plugin;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::lock::lock;

/// What happened to a plugin. The payload is a snapshot taken when it was published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A plugin was created (from a context; pull comes later).
    Create(Plugin),
    /// A plugin was removed.
    Remove(Plugin),
    /// A plugin was enabled through [`crate::Manager::enable`].
    Enable(Plugin),
    /// A plugin was disabled through [`crate::Manager::disable`].
    Disable(Plugin),
    /// The process of a plugin that was meant to run ended (a crash), or a restart of a
    /// crashed plugin failed. Not published for a plugin that exits while `enable` starts it
    /// (the enable fails instead) nor for a stop the manager asked for.
    Crash {
        /// The plugin, as it was when the crash was seen.
        plugin: Plugin,
        /// The exit status, when the executor knows it (`None` for a failed restart).
        exit_code: Option<u32>,
        /// When the next restart is attempted; `None` when the restart policy gives up.
        restart_in: Option<Duration>,
    },
    /// A crashed plugin was started again and serves its socket.
    Restart(Plugin),
}

impl Event {
    /// The plugin the event is about.
    pub fn plugin(&self) -> &Plugin {
        match self {
            Event::Create(p)
            | Event::Remove(p)
            | Event::Enable(p)
            | Event::Disable(p)
            | Event::Restart(p)
            | Event::Crash { plugin: p, .. } => p,
        }
    }
}

/// What a subscriber watches for (Moby's watcher values).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFilter {
    /// Creations of plugins with any of these capabilities (all creations when empty).
    Create {
        /// Capabilities, e.g. `volumedriver`.
        interfaces: Vec<String>,
    },
    /// Removal of the plugin with this ID.
    Remove {
        /// The plugin ID.
        id: String,
    },
    /// Enabling of the plugin with this ID.
    Enable {
        /// The plugin ID.
        id: String,
    },
    /// Disabling of the plugin with this ID.
    Disable {
        /// The plugin ID.
        id: String,
    },
    /// Crashes of the plugin with this ID (not one of Moby's).
    Crash {
        /// The plugin ID.
        id: String,
    },
    /// Restarts of the plugin with this ID (not one of Moby's).
    Restart {
        /// The plugin ID.
        id: String,
    },
}

impl EventFilter {
    /// Moby's `matches(observed)`, plus the crash and restart filters, which match only
    /// their own events.
    pub fn matches(&self, event: &Event) -> bool {
        match (self, event) {
            (EventFilter::Create { interfaces }, Event::Create(p)) => {
                interfaces.is_empty()
                    || p.config
                        .interface
                        .types()
                        .iter()
                        .any(|t| interfaces.iter().any(|i| i == t.capability()))
            }
            (EventFilter::Remove { id }, Event::Remove(p))
            | (EventFilter::Enable { id }, Event::Enable(p))
            | (EventFilter::Disable { id }, Event::Disable(p))
            | (EventFilter::Restart { id }, Event::Restart(p))
            | (EventFilter::Crash { id }, Event::Crash { plugin: p, .. }) => *id == p.id,
            _ => false,
        }
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// `Missed` is rare; boxing every event would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
pub enum Delivery {
    /// An event.
    Event(Event),
    /// This many events were dropped here because the buffer was full.
    Missed(u64),
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Delivery>,
    events: usize,
    closed: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Subscriber {
    filters: Option<Vec<EventFilter>>,
    capacity: usize,
    queue: Mutex<Queue>,
}

impl Subscriber {
    fn wants(&self, event: &Event) -> bool {
        match &self.filters {
            None => true,
            Some(f) => f.iter().any(|w| w.matches(event)),
        }
    }

    fn push(&self, event: &Event) {
        let mut q = lock(&self.queue);
        if q.closed {
            return;
        }
        if q.events < self.capacity {
            q.items.push_back(Delivery::Event(event.clone()));
            q.events += 1;
        } else if let Some(Delivery::Missed(n)) = q.items.back_mut() {
            *n += 1;
        } else {
            q.items.push_back(Delivery::Missed(1));
        }
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn close(&self) {
        let waker = {
            let mut q = lock(&self.queue);
            q.closed = true;
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The publisher side, owned by the manager.
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    subscribers: Mutex<Vec<Weak<Subscriber>>>,
}

impl Publisher {
    pub(crate) fn publish(&self, event: Event) {
        let subs: Vec<Arc<Subscriber>> = {
            let mut s = lock(&self.subscribers);
            s.retain(|w| w.strong_count() > 0);
            s.iter().filter_map(Weak::upgrade).collect()
        };
        for s in subs {
            if s.wants(&event) {
                s.push(&event);
            }
        }
    }

    pub(crate) fn subscribe(
        &self,
        buffer: usize,
        filters: Option<Vec<EventFilter>>,
    ) -> (Subscription, CancelHandle) {
        let sub = Arc::new(Subscriber {
            filters,
            capacity: buffer.max(1),
            queue: Mutex::new(Queue::default()),
        });
        lock(&self.subscribers).push(Arc::downgrade(&sub));
        let cancel = CancelHandle { sub: Arc::downgrade(&sub) };
        (Subscription { sub }, cancel)
    }
}

/// A stream of [`Delivery`]s (`recv`, or [`futures_util::Stream`]). Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    sub: Arc<Subscriber>,
}

impl Subscription {
    /// The next delivery; `None` once cancelled and drained.
    pub async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery (the [`Stream`](futures_util::Stream) implementation).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut q = lock(&self.sub.queue);
        if let Some(item) = q.items.pop_front() {
            if matches!(item, Delivery::Event(_)) {
                q.events -= 1;
            }
            return Poll::Ready(Some(item));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next delivery if one is waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let mut q = lock(&self.sub.queue);
        let item = q.items.pop_front()?;
        if matches!(item, Delivery::Event(_)) {
            q.events -= 1;
        }
        Some(item)
    }
}

impl futures_util::Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Cancels a [`Subscription`]: no more events are queued, and `recv` returns `None` once the
/// queued ones are read. Idempotent.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    sub: Weak<Subscriber>,
}

impl CancelHandle {
    /// Cancels the subscription.
    pub fn cancel(&self) {
        if let Some(s) = self.sub.upgrade() {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockplug_protocol::interface::InterfaceType;

    fn plugin(id: &str, types: &[&str]) -> Plugin {
        let mut p = Plugin { id: id.into(), ..Plugin::default() };
        p.config.interface.types = Some(types.iter().map(|t| InterfaceType::parse(t)).collect());
        p
    }

    #[test]
    fn matching_rules() {
        let p = plugin("a", &["docker.volumedriver/1.0"]);
        let any = EventFilter::Create { interfaces: vec![] };
        assert!(any.matches(&Event::Create(p.clone())));
        assert!(!any.matches(&Event::Remove(p.clone())));
        let vol =
            EventFilter::Create { interfaces: vec!["networkdriver".into(), "volumedriver".into()] };
        assert!(vol.matches(&Event::Create(p.clone())));
        let net = EventFilter::Create { interfaces: vec!["networkdriver".into()] };
        assert!(!net.matches(&Event::Create(p.clone())));
        assert!(EventFilter::Remove { id: "a".into() }.matches(&Event::Remove(p.clone())));
        assert!(!EventFilter::Remove { id: "b".into() }.matches(&Event::Remove(p.clone())));
        assert!(!EventFilter::Enable { id: "a".into() }.matches(&Event::Disable(p.clone())));
        assert!(EventFilter::Disable { id: "a".into() }.matches(&Event::Disable(p.clone())));
        // The crash events are matched by their own filters only.
        let crash = Event::Crash { plugin: p.clone(), exit_code: Some(1), restart_in: None };
        let restart = Event::Restart(p);
        let moby = [
            any,
            EventFilter::Remove { id: "a".into() },
            EventFilter::Enable { id: "a".into() },
            EventFilter::Disable { id: "a".into() },
        ];
        assert!(moby.iter().all(|f| !f.matches(&crash) && !f.matches(&restart)));
        assert!(EventFilter::Crash { id: "a".into() }.matches(&crash));
        assert!(!EventFilter::Crash { id: "a".into() }.matches(&restart));
        assert!(EventFilter::Restart { id: "a".into() }.matches(&restart));
        assert!(!EventFilter::Restart { id: "b".into() }.matches(&restart));
    }

    #[tokio::test]
    async fn none_means_all_and_empty_means_nothing() {
        let publisher = Publisher::default();
        let (mut all, _c1) = publisher.subscribe(4, None);
        let (mut nothing, _c2) = publisher.subscribe(4, Some(vec![]));
        publisher.publish(Event::Enable(plugin("a", &[])));
        assert_eq!(all.recv().await, Some(Delivery::Event(Event::Enable(plugin("a", &[])))));
        assert_eq!(nothing.try_recv(), None);
    }

    #[tokio::test]
    async fn slow_subscriber_is_told_what_it_missed() {
        let publisher = Publisher::default();
        let (mut sub, cancel) = publisher.subscribe(2, None);
        for i in 0..5 {
            publisher.publish(Event::Enable(plugin(&i.to_string(), &[])));
        }
        assert!(matches!(sub.recv().await, Some(Delivery::Event(Event::Enable(p))) if p.id == "0"));
        publisher.publish(Event::Enable(plugin("5", &[])));
        assert!(matches!(sub.recv().await, Some(Delivery::Event(Event::Enable(p))) if p.id == "1"));
        assert_eq!(sub.recv().await, Some(Delivery::Missed(3)));
        assert!(matches!(sub.recv().await, Some(Delivery::Event(Event::Enable(p))) if p.id == "5"));
        cancel.cancel();
        cancel.cancel();
        publisher.publish(Event::Enable(plugin("6", &[])));
        assert_eq!(sub.recv().await, None);
    }

    #[tokio::test]
    async fn subscription_is_a_stream() {
        use futures_util::StreamExt;
        let publisher = std::sync::Arc::new(Publisher::default());
        let (sub, cancel) = publisher.subscribe(4, None);
        let p2 = publisher.clone();
        let sender = tokio::spawn(async move {
            for i in 0..3 {
                tokio::task::yield_now().await;
                p2.publish(Event::Enable(plugin(&i.to_string(), &[])));
            }
            cancel.cancel();
        });
        let got: Vec<Delivery> = sub.collect().await;
        sender.await.unwrap();
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn dropped_subscription_is_pruned() {
        let publisher = Publisher::default();
        let (sub, _cancel) = publisher.subscribe(1, None);
        drop(sub);
        publisher.publish(Event::Enable(plugin("a", &[])));
        assert!(publisher.subscribers.lock().unwrap().is_empty());
    }
}
