//! containerd's event stream, turned into exits: one subscription to the executor's
//! namespace, re-made whenever it breaks, followed each time by a reconciliation with the
//! task list so that an exit that happened while nobody listened is not lost.
//!
//! A subscription only counts as made once its first message has arrived (containerd sends
//! no response headers before the first event), so right after subscribing we publish a
//! marker event of our own (topic `SYNC_TOPIC`) until it comes back. Only then is the task
//! list read: every exit is either seen on the stream or found by the reconciliation.

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
    let mut ticker = tokio::time::interval(SYNC_EVERY);
    let mut published = 0u32;
    let mut stream = loop {
        tokio::select! {
            answered = &mut subscribing => {
                break answered.map_err(|s| Error::rpc("subscribe to events", ns, s))?.into_inner();
            }
            _ = ticker.tick() => {
                // Bounded: containerd that takes this long to answer is treated as down.
                if published >= MAX_MARKERS {
                    return Err(Error::events(ns, EventsEnded::Unconfirmed { published }));
                }
                published += 1;
                publish_marker(conn).await?;
            }
        }
    };
    // Read up to the first marker; exits seen on the way are kept for the caller.
    let mut early = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(envelope)) if envelope.topic == SYNC_TOPIC => return Ok((stream, early)),
            Ok(Some(envelope)) => early.push(envelope),
            Ok(None) => return Err(Error::events(ns, EventsEnded::Closed)),
            Err(s) => return Err(Error::rpc("subscribe to events", ns, s)),
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
