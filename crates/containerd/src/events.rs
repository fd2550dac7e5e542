//! containerd's event stream, turned into exits: one subscription to the executor's
//! namespace, re-made whenever it breaks, followed each time by a reconciliation with the
//! task list so that an exit that happened while nobody listened is not lost.
//!
//! A subscription only counts as made once its first message has arrived (containerd sends
//! no response headers before the first event), so right after subscribing we publish a
//! marker event of our own (topic `SYNC_TOPIC`) until it comes back, also after the stream
//! has answered with something else (an exit arriving first does not mean a marker is on
//! its way: those published before containerd registered the subscription are gone). Only
//! then is the task list read: every exit is either seen on the stream or found by the
//! reconciliation.

use std::sync::Weak;
use std::time::Duration;

use containerd_client::events::TaskExit;
use containerd_client::services::v1::{PublishRequest, SubscribeRequest};
use containerd_client::types::Envelope;
use prost::Message;
use prost_types::Any;
use tokio::sync::oneshot;
use tonic::Streaming;

use crate::connection::Connection;
use crate::error::{Error, EventsEnded};
use crate::executor::Shared;

/// The topic of our marker event: outside containerd's own topics, so no other subscriber
/// filtering on `^/tasks/` (as Moby's `libcontainerd/remote/client.go` `processEventStream`
/// does) sees it.
pub(crate) const SYNC_TOPIC: &str = "/dockplug/events-sync";
const SYNC_TYPE_URL: &str = "types.dockplug.dev/events-sync";
const TASK_EXIT: &str = "/tasks/exit";

/// How often the marker is published while waiting for the subscription to answer.
const SYNC_EVERY: Duration = Duration::from_millis(50);

/// How often at most (10 s at `SYNC_EVERY`) before containerd counts as down.
const MAX_MARKERS: u32 = 200;

/// How often a reconciliation that could not read every task is tried (100 ms apart).
const RECONCILE_ATTEMPTS: u32 = 50;

/// Runs the event loop until the executor is gone. `ready` is answered once, after the first
/// subscription is live (or with the error of the first attempt).
pub(crate) async fn run(
    shared: Weak<Shared>,
    conn: Connection,
    ready: oneshot::Sender<Result<(), Error>>,
) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(50);
    loop {
        let stream = match subscribe(&conn).await {
            Ok(stream) => stream,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                if shared.upgrade().is_none() {
                    return;
                }
                tracing::debug!(error = %e, "containerd events: subscribing again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        let (stream, early) = stream;
        for envelope in &early {
            let Some(shared) = shared.upgrade() else { return };
            deliver(&shared, envelope);
        }
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                tracing::info!(namespace = conn.namespace(), "containerd event stream restored");
                let Some(shared) = shared.upgrade() else { return };
                // A containerd that has just restarted may not answer for every task yet:
                // ask again (bounded) so that an exit nobody listened for is not lost.
                for _ in 0..RECONCILE_ATTEMPTS {
                    if shared.reconcile().await {
                        break;
                    }
                    tokio::time::sleep(SYNC_EVERY * 2).await;
                }
            }
        }
        let Some(broken) = listen(&shared, stream, conn.namespace()).await else { return };
        tracing::warn!(namespace = conn.namespace(), error = %broken, "containerd event stream broke; subscribing again");
    }
}

/// Subscribes to the namespace's task exits and our marker, and waits for the marker.
async fn subscribe(conn: &Connection) -> Result<(Streaming<Envelope>, Vec<Envelope>), Error> {
    let ns = conn.namespace();
    let filters = vec![
        format!("namespace=={ns},topic==\"{TASK_EXIT}\""),
        format!("namespace=={ns},topic==\"{SYNC_TOPIC}\""),
    ];
    let mut events = conn.events();
    let request = conn.streaming(SubscribeRequest { filters });
    let subscribing = events.subscribe(request);
    tokio::pin!(subscribing);
    let mut markers = Markers { conn, ticker: tokio::time::interval(SYNC_EVERY), published: 0 };
    let mut stream = loop {
        tokio::select! {
            answered = &mut subscribing => {
                break answered.map_err(|s| Error::rpc("subscribe to events", ns, s))?.into_inner();
            }
            _ = markers.ticker.tick() => markers.publish().await?,
        }
    };
    let early = await_marker(&mut stream, &mut markers, ns).await?;
    Ok((stream, early))
}

/// What [`await_marker`] reads from: the subscription (a fake in unit tests).
pub(crate) trait EventSource {
    /// The next envelope, `None` once the stream has ended.
    async fn next(&mut self) -> Result<Option<Envelope>, tonic::Status>;
}

impl EventSource for Streaming<Envelope> {
    async fn next(&mut self) -> Result<Option<Envelope>, tonic::Status> {
        // Cancel-safe: the stream keeps its state between polls.
        self.message().await
    }
}

/// Where [`await_marker`] publishes its markers (a fake in unit tests).
pub(crate) trait MarkerSink {
    /// Waits for the next tick and publishes one marker, failing once there were too many.
    async fn publish_next(&mut self) -> Result<(), Error>;
}

/// Marker publication for one subscription, bounded to `MAX_MARKERS` in all.
struct Markers<'a> {
    conn: &'a Connection,
    ticker: tokio::time::Interval,
    published: u32,
}

impl Markers<'_> {
    async fn publish(&mut self) -> Result<(), Error> {
        // Bounded: containerd that takes this long to answer is treated as down.
        if self.published >= MAX_MARKERS {
            let published = self.published;
            return Err(Error::events(
                self.conn.namespace(),
                EventsEnded::Unconfirmed { published },
            ));
        }
        self.published += 1;
        publish_marker(self.conn).await
    }
}

impl MarkerSink for Markers<'_> {
    async fn publish_next(&mut self) -> Result<(), Error> {
        self.ticker.tick().await;
        self.publish().await
    }
}

/// Reads the subscription up to the first marker of ours and returns the exits seen on the
/// way, publishing markers meanwhile. The subscription may answer first with an exit (a
/// plugin dying just as containerd registered it), and markers published before containerd
/// registered the subscription never come back: publishing only until it answers would wait
/// for a marker that never comes, holding that exit. If this fails, the exits already read
/// are dropped with the stream; the reconciliation after the next subscription finds them.
pub(crate) async fn await_marker(
    stream: &mut impl EventSource,
    markers: &mut impl MarkerSink,
    namespace: &str,
) -> Result<Vec<Envelope>, Error> {
    let mut early = Vec::new();
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Ok(Some(envelope)) if envelope.topic == SYNC_TOPIC => return Ok(early),
                Ok(Some(envelope)) => early.push(envelope),
                Ok(None) => return Err(Error::events(namespace, EventsEnded::Closed)),
                Err(s) => return Err(Error::rpc("subscribe to events", namespace, s)),
            },
            published = markers.publish_next() => published?,
        }
    }
}

async fn publish_marker(conn: &Connection) -> Result<(), Error> {
    let request = conn.request_within(
        PublishRequest {
            topic: SYNC_TOPIC.to_owned(),
            event: Some(Any { type_url: SYNC_TYPE_URL.to_owned(), value: Vec::new() }),
        },
        Duration::from_secs(5),
    );
    conn.events()
        .publish(request)
        .await
        .map(|_| ())
        .map_err(|s| Error::rpc("publish event", conn.namespace(), s))
}

/// Hands each exit to the executor until the stream breaks (returns the cause) or the
/// executor is gone (returns `None`).
async fn listen(
    shared: &Weak<Shared>,
    mut stream: Streaming<Envelope>,
    namespace: &str,
) -> Option<Error> {
    loop {
        let next = stream.message().await;
        let shared = shared.upgrade()?;
        match next {
            Ok(Some(envelope)) => deliver(&shared, &envelope),
            Ok(None) => return Some(Error::events(namespace, EventsEnded::Closed)),
            Err(status) => return Some(Error::rpc("receive events", namespace, status)),
        }
    }
}

fn deliver(shared: &Shared, envelope: &Envelope) {
    if envelope.topic != TASK_EXIT {
        return;
    }
    let Some(event) = &envelope.event else { return };
    match TaskExit::decode(event.value.as_slice()) {
        // Only the init process matters: an exec's exit is not the plugin's.
        Ok(exit) if exit.id == exit.container_id => {
            shared.exited(&exit.container_id, exit.pid, Some(exit.exit_status));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "undecodable task exit event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::sync::mpsc;

    fn envelope(topic: &str) -> Envelope {
        Envelope { topic: topic.to_owned(), ..Default::default() }
    }

    /// A subscription fed through a channel.
    struct Source(mpsc::UnboundedReceiver<Envelope>);

    impl EventSource for Source {
        async fn next(&mut self) -> Result<Option<Envelope>, tonic::Status> {
            Ok(self.0.recv().await)
        }
    }

    /// Markers that come back on the subscription (from the `lost`-th on: the ones before
    /// were published before containerd registered it), or none at all.
    struct Sink {
        back: Option<mpsc::UnboundedSender<Envelope>>,
        lost: u32,
        published: u32,
        limit: u32,
    }

    impl MarkerSink for Sink {
        async fn publish_next(&mut self) -> Result<(), Error> {
            // One turn of the scheduler stands for the ticker's period.
            tokio::task::yield_now().await;
            if self.published >= self.limit {
                let published = self.published;
                return Err(Error::events("ns", EventsEnded::Unconfirmed { published }));
            }
            self.published += 1;
            if self.published > self.lost {
                if let Some(back) = &self.back {
                    let _ = back.send(envelope(SYNC_TOPIC));
                }
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_exit_that_answers_the_subscription_first_is_kept_until_a_marker_comes_back() {
        let (tx, rx) = mpsc::unbounded_channel();
        // The subscription's first message is an exit; the markers published so far are lost.
        tx.send(envelope(TASK_EXIT)).unwrap();
        let mut sink = Sink { back: Some(tx), lost: 0, published: 0, limit: MAX_MARKERS };
        let early = await_marker(&mut Source(rx), &mut sink, "ns").await.expect("the marker");
        let topics: Vec<_> = early.iter().map(|e| e.topic.as_str()).collect();
        assert_eq!(topics, [TASK_EXIT], "the exit is handed on");
        assert_eq!(sink.published, 1, "one marker published after the answer");
    }

    #[tokio::test]
    async fn waiting_for_the_marker_is_bounded() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(envelope(TASK_EXIT)).unwrap();
        let mut sink = Sink { back: None, lost: 0, published: 0, limit: 3 };
        let _keep_open = tx;
        match await_marker(&mut Source(rx), &mut sink, "ns").await {
            Err(Error::Events { reason: EventsEnded::Unconfirmed { published: 3 }, .. }) => {}
            other => panic!("expected the bound, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_marker_already_on_the_stream_ends_the_wait_at_once() {
        let (tx, rx) = mpsc::unbounded_channel();
        for topic in [TASK_EXIT, TASK_EXIT, SYNC_TOPIC, TASK_EXIT] {
            tx.send(envelope(topic)).unwrap();
        }
        let mut sink = Sink { back: None, lost: 0, published: 0, limit: MAX_MARKERS };
        let early = await_marker(&mut Source(rx), &mut sink, "ns").await.expect("the marker");
        assert_eq!(early.len(), 2, "the exits before the marker; the one after stays queued");
        assert_eq!(sink.published, 0);
    }
}
