//! Engine API query values: the `filters` of `GET /plugins` (both JSON forms), the `timeout`
//! of enable, boolean flags, the `Content-Type` check and the JSON request bodies of
//! pull/upgrade (privileges) and set (arguments).
//!
//! The first byte picks the parser. Invariants: parsed filters print to JSON that parses to
//! the same filters; an accepted timeout is the integer its digits say; a list filter
//! compiles every capability pattern within its size limit and matches without panicking;
//! a body the reader accepts is exactly one JSON value.

use dockplug_protocol::engine::{self, BodyError};
use dockplug_protocol::filters::{Filters, PluginListFilter};
use dockplug_protocol::interface::InterfaceType;
use dockplug_protocol::PluginPrivilege;

use crate::select;

fn filters(text: &str) {
    if let Ok(f) = Filters::from_json(text) {
        let json = f.to_json();
        let again = Filters::from_json(&json).expect("our own filters JSON parses");
        assert_eq!(again, f, "filters do not round-trip through {json:?}");
        for key in f.keys() {
            let _ = (f.get(key), f.get_bool(key));
        }
    }
    if let Ok(list) = PluginListFilter::parse(text) {
        let types: Vec<InterfaceType> = ["docker.volumedriver/1.0", "docker.authz/1.0", "x.y/2"]
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        for enabled in [false, true] {
            let _ = list.matches_parts(enabled, &types);
        }
    }
}

fn timeout(text: &str) {
    if let Ok(n) = engine::parse_timeout(text) {
        let digits = text.trim_start_matches(['+', '-']).trim_start_matches('0');
        let n_digits = n.unsigned_abs().to_string();
        assert!(digits == n_digits || (digits.is_empty() && n == 0), "{text:?} read as {n}");
    }
    let _ = engine::bool_value(text);
}

fn body(data: &[u8]) {
    let (i, rest) = select(data, 2);
    let content_type = Some("application/json");
    let check = |r: Result<(), BodyError>| {
        if r.is_ok() {
            // Accepted: one JSON value and whitespace.
            let mut values =
                serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
            if !rest.iter().all(u8::is_ascii_whitespace) {
                assert!(values.next().is_some_and(|v| v.is_ok()));
                assert!(values.next().is_none(), "accepted a body with two values");
            }
        }
    };
    if i == 0 {
        check(engine::read_json_body::<Vec<PluginPrivilege>>(content_type, rest).map(drop));
    } else {
        check(engine::read_json_body::<Vec<String>>(content_type, rest).map(drop));
    }
}

/// The target: see the module documentation.
pub fn engine_query(data: &[u8]) {
    let (i, rest) = select(data, 4);
    let text = String::from_utf8_lossy(rest);
    match i {
        0 => filters(&text),
        1 => timeout(&text),
        2 => {
            let _ = engine::check_json_content_type(&text);
        }
        _ => body(rest),
    }
}
