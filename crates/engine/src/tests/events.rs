//! `/events`: past events by `since`/`until`, live events, Moby's filters, bad queries.

use std::time::Duration;

use dockplug_protocol::events::{EventActor, EventMessage};
use http::Method;
use http_body_util::BodyExt;

use super::fake::{assert_error, body, call, engine, header, sink};
use crate::events::{now_nanos, EventFilter};
use crate::EventLog;

fn actor(id: &str, name: &str) -> EventActor {
    EventActor { id: id.to_owned(), attributes: [("name".to_owned(), name.to_owned())].into() }
}

fn lines(text: &str) -> Vec<EventMessage> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `secs.nanos`, as the docker CLI sends `--since`/`--until`.
fn stamp(nanos: i64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

fn publish(log: &EventLog) {
    log.log("plugin", "create", actor("85ae15b0aaaa", "golden/vol:1"));
    log.log("container", "start", actor("c0ffee", "web"));
    log.log("plugin", "enable", actor("85ae15b0aaaa", "golden/vol:1"));
}

#[tokio::test]
async fn past_events_between_since_and_until() {
    let (engine, fake) = engine();
    let log = sink(&fake);
    let before = now_nanos();
    publish(&log);
    let until = stamp(now_nanos());
    let uri = format!("/v1.41/events?since={}&until={until}", stamp(before));
    let r = call(&engine, Method::GET, &uri).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    // `until` has passed: the stream ends after the past events.
    let text = tokio::time::timeout(Duration::from_secs(10), body(r)).await.unwrap();
    let got = lines(&text);
    assert_eq!(
        got.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["create", "start", "enable"]
    );
    assert_eq!(got[0].r#type, "plugin");
    assert_eq!(got[0].scope, "local");
    assert_eq!(got[0].actor.attributes["name"], "golden/vol:1");
    assert!(text.starts_with(r#"{"Type":"plugin","Action":"create","Actor":{"ID":"85ae15b0aaaa","Attributes":{"name":"golden/vol:1"}},"scope":"local","time":"#));

    // type=plugin, as `docker events --filter type=plugin` sends it.
    let filter = "%7B%22type%22%3A%7B%22plugin%22%3Atrue%7D%7D";
    let r = call(&engine, Method::GET, &format!("/events?since=0&until={until}&filters={filter}"))
        .await;
    let got = lines(&body(r).await);
    assert_eq!(got.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "enable"]);

    // A `since` after every event: nothing.
    let r = call(&engine, Method::GET, &format!("/events?since={until}&until={until}")).await;
    assert_eq!(body(r).await, "");
}

#[tokio::test]
async fn live_events_follow_and_filter() {
    let (engine, fake) = engine();
    let log = sink(&fake);
    log.log("plugin", "create", actor("old", "old:latest"));
    let filter = "%7B%22type%22%3A%5B%22plugin%22%5D%2C%22event%22%3A%5B%22disable%22%5D%7D";
    let r = call(&engine, Method::GET, &format!("/v1.41/events?filters={filter}")).await;
    assert_eq!(r.status(), 200);
    let mut b = r.into_body();
    log.log("plugin", "enable", actor("id1", "p:latest"));
    log.log("volume", "disable", actor("id2", "v"));
    log.log("plugin", "disable", actor("id1", "p:latest"));
    let frame = tokio::time::timeout(Duration::from_secs(10), b.frame()).await.unwrap();
    let data = frame.unwrap().unwrap().into_data().unwrap();
    let got = lines(std::str::from_utf8(&data).unwrap());
    assert_eq!(got.len(), 1, "no past events without since, only the matching live one");
    assert_eq!((got[0].action.as_str(), got[0].actor.id.as_str()), ("disable", "id1"));
}

#[tokio::test]
async fn bad_event_queries_are_400() {
    let (engine, _) = engine();
    let r = call(&engine, Method::GET, "/events?since=abc").await;
    assert_error(r, 400, "strconv.ParseInt: parsing \"abc\": invalid syntax").await;
    let r = call(&engine, Method::GET, "/events?since=20&until=10").await;
    assert_error(r, 400, "`since` time (20) cannot be after `until` time (10)").await;
    let r = call(&engine, Method::GET, "/events?filters=%7B").await;
    assert_error(r, 400, "invalid filter").await;
}

#[test]
fn filters_like_moby() {
    let log = EventLog::new();
    let f = |json: &str| {
        EventFilter::new(dockplug_protocol::filters::Filters::from_json(json).unwrap())
    };
    let e = EventMessage {
        r#type: "plugin".into(),
        action: "enable".into(),
        actor: actor("85ae15b0aaaa", "golden/vol:1"),
        scope: "local".into(),
        ..EventMessage::default()
    };
    assert!(f("").include(&e));
    assert!(f(r#"{"plugin":["golden/vol"]}"#).include(&e), "names match by prefix");
    assert!(f(r#"{"plugin":["85ae"]}"#).include(&e), "IDs match by prefix");
    assert!(!f(r#"{"plugin":["other"]}"#).include(&e));
    assert!(!f(r#"{"container":["x"]}"#).include(&e), "another type's key excludes");
    assert!(f(r#"{"scope":["local"]}"#).include(&e));
    assert!(!f(r#"{"scope":["swarm"]}"#).include(&e));
    assert!(f(r#"{"label":["name=golden/vol:1"]}"#).include(&e));
    assert!(!f(r#"{"label":["name=x"]}"#).include(&e));
    assert!(!f(r#"{"event":["disable"]}"#).include(&e));
    assert!(!f(r#"{"image":["golden/vol"]}"#).include(&e));
    drop(log);
}
