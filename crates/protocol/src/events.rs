//! The daemon-level events of plugins, as the Engine API `/events` stream carries them
//! ([`EventMessage`], Docker's `events.Message`).
//!
//! A plugin event has `Type` `plugin`, an `Action` (`pull`, `create`, `enable`, `disable`,
//! `remove`), an `Actor` whose `ID` is the plugin ID (for `pull`, the familiar remote
//! reference) and whose only attribute is `name`, scope `local`, and the time in seconds and
//! nanoseconds. Docker sends no event for set, push, crash restarts or restore.
//!
//! ```
//! use dockplug_protocol::events::{EventMessage, PluginAction};
//! let e = EventMessage::plugin(PluginAction::Enable, "85ae15b0", "golden/vol", 1_700_000_000_123_456_789);
//! assert_eq!(dockplug_protocol::gojson::to_string(&e)?, concat!(
//!     r#"{"Type":"plugin","Action":"enable","Actor":{"ID":"85ae15b0","Attributes":{"name":"golden/vol"}},"#,
//!     r#""scope":"local","time":1700000000,"timeNano":1700000000123456789}"#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gojson::go_json;

/// The `Type` of plugin events.
pub const PLUGIN_EVENT_TYPE: &str = "plugin";

/// The `scope` of engine (non-swarm) events.
pub const LOCAL_SCOPE: &str = "local";

/// What happened to a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginAction {
    /// Pulled or upgraded (Actor ID: the familiar remote reference).
    Pull,
    /// Created from a context.
    Create,
    /// Enabled through the API.
    Enable,
    /// Disabled through the API.
    Disable,
    /// Removed.
    Remove,
}

impl PluginAction {
    /// The `Action` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Create => "create",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Remove => "remove",
        }
    }
}

impl fmt::Display for PluginAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of the `/events` stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EventMessage {
    /// `status`: deprecated, container events only (omitted when empty).
    #[serde(rename = "status", skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// `id`: deprecated, container events only (omitted when empty).
    #[serde(rename = "id", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `from`: deprecated, container events only (omitted when empty).
    #[serde(rename = "from", skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `Type`: `plugin` here.
    #[serde(rename = "Type")]
    pub r#type: String,
    /// `Action`: e.g. `enable`.
    #[serde(rename = "Action")]
    pub action: String,
    /// `Actor`: what the event is about.
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    /// `scope`: `local` (omitted when empty).
    #[serde(rename = "scope", skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// `time`: Unix seconds (omitted when 0).
    #[serde(rename = "time", skip_serializing_if = "is_zero")]
    pub time: i64,
    /// `timeNano`: Unix nanoseconds (omitted when 0).
    #[serde(rename = "timeNano", skip_serializing_if = "is_zero")]
    pub time_nano: i64,
}

/// `Actor` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EventActor {
    /// `ID`.
    #[serde(rename = "ID")]
    pub id: String,
    /// `Attributes` (sorted by key, as Go writes maps).
    #[serde(rename = "Attributes", deserialize_with = "attributes")]
    pub attributes: BTreeMap<String, String>,
}

go_json!(EventMessage, EventActor);

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn attributes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

impl EventMessage {
    /// A plugin event at `time_nano` (Unix nanoseconds), as Docker's `LogPluginEvent` makes it.
    pub fn plugin(
        action: PluginAction,
        actor_id: impl Into<String>,
        name: impl Into<String>,
        time_nano: i64,
    ) -> Self {
        Self {
            r#type: PLUGIN_EVENT_TYPE.to_owned(),
            action: action.as_str().to_owned(),
            actor: EventActor {
                id: actor_id.into(),
                attributes: BTreeMap::from([("name".to_owned(), name.into())]),
            },
            scope: LOCAL_SCOPE.to_owned(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_null_attributes() {
        let e =
            EventMessage::plugin(PluginAction::Pull, "user/p:latest", "p:latest", 1_500_000_000);
        assert_eq!(e.time, 1);
        let back: EventMessage =
            serde_json::from_slice(&crate::gojson::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let n: EventMessage = serde_json::from_str(
            r#"{"type":"plugin","action":"remove","actor":{"id":"x","attributes":null}}"#,
        )
        .unwrap();
        assert_eq!((n.action.as_str(), n.actor.id.as_str()), ("remove", "x"));
        assert!(n.actor.attributes.is_empty());
        assert!(serde_json::from_str::<EventMessage>(r#"{"time":"1"}"#).is_err());
        assert_eq!(PluginAction::Disable.to_string(), "disable");
    }
}
