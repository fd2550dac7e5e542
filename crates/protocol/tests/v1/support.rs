//! Round-trip helpers shared by the golden tests.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Parse `json`, print it, parse the print: both parses must give the same value.
pub fn round_trip<T>(json: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let first: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse {json}: {e}"));
    let printed = serde_json::to_string(&first).unwrap();
    let second: T =
        serde_json::from_str(&printed).unwrap_or_else(|e| panic!("reparse {printed}: {e}"));
    assert_eq!(first, second, "round trip of {json} via {printed}");
    first
}

/// [`round_trip`], and the print must be `canonical` (compared as JSON values, so key order
/// and spacing do not matter).
pub fn canonical<T>(json: &str, canonical: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let v = round_trip::<T>(json);
    let printed: Value = serde_json::to_value(&v).unwrap();
    let want: Value = serde_json::from_str(canonical).unwrap();
    assert_eq!(printed, want, "canonical form of {json}");
    v
}

/// [`canonical`] with the sample itself as the canonical form.
pub fn golden<T>(json: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    canonical(json, json)
}

/// The exact string the type prints.
pub fn printed<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

/// One line of a `dockerd-*-calls.jsonl` capture.
#[derive(Debug, serde::Deserialize)]
pub struct Call {
    /// The wire method, e.g. `VolumeDriver.Get`.
    pub method: String,
    /// The request body (absent for `Plugin.Activate`).
    pub request: Option<Value>,
    /// The reply body.
    pub response: Value,
    /// The reply status.
    pub status: u16,
}

/// The calls of a capture, skipping its `{"step": ...}` markers.
pub fn calls(jsonl: &str) -> Vec<Call> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v.get("method").is_some().then(|| serde_json::from_value(v).unwrap())
        })
        .collect()
}
