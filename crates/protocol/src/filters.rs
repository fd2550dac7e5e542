//! The `filters` query parameter of the Engine API ([`Filters`], Moby's `filters.Args`) and
//! the plugin list filter built on it ([`PluginListFilter`]).
//!
//! `filters` is a JSON object in either form: `{"key":{"value":true}}` (what clients send) or
//! the legacy `{"key":["value"]}`; the whole object must be in one form. The plugin list
//! accepts the keys `enabled` (`1`/`true` or `0`/`false`) and `capability` (matched against
//! each interface type's capability, exactly or as a regular-expression search, and **every**
//! type of a plugin must match; a plugin without types passes). Errors carry Moby's texts,
//! which the API returns with status 400.
//!
//! ```
//! use dockplug_protocol::filters::PluginListFilter;
//! use dockplug_protocol::interface::InterfaceType;
//! let f = PluginListFilter::parse(r#"{"capability":{"volume":true},"enabled":{"true":true}}"#)?;
//! assert!(f.matches_parts(true, &[InterfaceType::parse("docker.volumedriver/1.0")]));
//! assert!(!f.matches_parts(false, &[InterfaceType::parse("docker.volumedriver/1.0")]));
//! assert!(!f.matches_parts(true, &[
//!     InterfaceType::parse("docker.volumedriver/1.0"),
//!     InterfaceType::parse("docker.networkdriver/1.0"),
//! ]));
//! let e = PluginListFilter::parse(r#"{"enable":["true"]}"#).unwrap_err();
//! assert_eq!(e.to_string(), "invalid filter 'enable'");
//! # Ok::<(), dockplug_protocol::filters::FilterError>(())
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::interface::InterfaceType;
use crate::plugin::Plugin;

/// The filter keys `GET /plugins` accepts.
pub const PLUGIN_FILTER_KEYS: [&str; 2] = ["enabled", "capability"];

/// The compiled size limit for one regular expression from a filter value; a bigger one is
/// skipped, as Moby skips values that do not compile.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A `filters` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// Not a JSON object in either accepted form (Moby's text: `invalid filter`).
    #[error("invalid filter")]
    Malformed {
        /// Why the legacy form did not parse either.
        #[source]
        source: serde_json::Error,
    },
    /// A key the endpoint does not accept.
    #[error("invalid filter '{key}'")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A boolean filter given no value.
    #[error("invalid filter '{key}'")]
    MissingValue {
        /// The key.
        key: String,
    },
    /// A boolean filter given no valid value, or both true and false.
    #[error("invalid filter '{key}=[{}]'", values.join(" "))]
    InvalidValue {
        /// The key.
        key: String,
        /// The values given, sorted.
        values: Vec<String>,
    },
}

/// A set of filters: key -> value -> flag (Moby's `filters.Args`).
///
/// The flag is what a client sent in the `{"k":{"v":true}}` form; as in Moby, an exact match
/// needs it true while a regular-expression match looks at every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, BTreeMap<String, bool>>,
}

impl Filters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `key`.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.fields.entry(key.into()).or_default().insert(value.into(), true);
        self
    }

    /// Parses the `filters` query value: `""` is no filter; otherwise a JSON object in the
    /// current or the legacy form.
    ///
    /// # Errors
    /// [`FilterError::Malformed`] when neither form parses.
    pub fn from_json(s: &str) -> Result<Self, FilterError> {
        if s.is_empty() {
            return Ok(Self::new());
        }
        type Current = Option<BTreeMap<String, Option<BTreeMap<String, Option<bool>>>>>;
        type Legacy = Option<BTreeMap<String, Option<Vec<Option<String>>>>>;
        if let Ok(current) = serde_json::from_str::<Current>(s) {
            let fields = current
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let values = v
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(v, b)| (v, b.unwrap_or(false)))
                        .collect();
                    (k, values)
                })
                .collect();
            return Ok(Self { fields });
        }
        let legacy = serde_json::from_str::<Legacy>(s)
            .map_err(|source| FilterError::Malformed { source })?;
        let fields = legacy
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let values = v
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v.unwrap_or_default(), true))
                    .collect();
                (k, values)
            })
            .collect();
        Ok(Self { fields })
    }

    /// The current JSON form, `{"key":{"value":true}}`; `""` when empty (Moby's `ToJSON`).
    pub fn to_json(&self) -> String {
        if self.fields.is_empty() {
            return String::new();
        }
        // A map of maps of bools cannot fail to serialize.
        serde_json::to_string(&self.fields).unwrap_or_default()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `key` is present (even with no values).
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The values of `key`, sorted.
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.fields.get(key).map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// Checks every key is in `accepted`.
    ///
    /// # Errors
    /// [`FilterError::UnknownKey`] for the first other key (in sorted order).
    pub fn validate(&self, accepted: &[&str]) -> Result<(), FilterError> {
        match self.fields.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(key) => Err(FilterError::UnknownKey { key: key.clone() }),
            None => Ok(()),
        }
    }

    /// A boolean filter: `None` when absent; `1`/`true` or `0`/`false` otherwise.
    ///
    /// # Errors
    /// [`FilterError::MissingValue`] for a present key with no value;
    /// [`FilterError::InvalidValue`] when neither or both truth values are given.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(values) = self.fields.get(key) else { return Ok(None) };
        if values.is_empty() {
            return Err(FilterError::MissingValue { key: key.to_owned() });
        }
        let flag = |v: &str| values.get(v).copied().unwrap_or(false);
        let is_true = flag("1") || flag("true");
        let is_false = flag("0") || flag("false");
        if is_true == is_false {
            return Err(FilterError::InvalidValue {
                key: key.to_owned(),
                values: values.keys().cloned().collect(),
            });
        }
        Ok(Some(is_true))
    }
}

/// One compiled `capability` value.
#[derive(Debug, Clone)]
struct Pattern {
    value: String,
    exact: bool,
    regex: Option<regex::Regex>,
}

/// The filter of `GET /plugins`, validated and compiled.
#[derive(Debug, Clone, Default)]
pub struct PluginListFilter {
    enabled: Option<bool>,
    capability: Option<Vec<Pattern>>,
}

impl PluginListFilter {
    /// No filtering.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses and validates the `filters` query value.
    ///
    /// # Errors
    /// Malformed JSON, a key other than `enabled` and `capability`, or a bad `enabled` value.
    pub fn parse(query: &str) -> Result<Self, FilterError> {
        Self::from_filters(&Filters::from_json(query)?)
    }

    /// Validates parsed filters.
    ///
    /// # Errors
    /// As [`PluginListFilter::parse`].
    pub fn from_filters(filters: &Filters) -> Result<Self, FilterError> {
        filters.validate(&PLUGIN_FILTER_KEYS)?;
        let enabled = filters.get_bool("enabled")?;
        let capability = filters.fields.get("capability").map(|values| {
            values
                .iter()
                .map(|(v, &exact)| Pattern {
                    value: v.clone(),
                    exact,
                    regex: regex::RegexBuilder::new(v).size_limit(REGEX_SIZE_LIMIT).build().ok(),
                })
                .collect()
        });
        Ok(Self { enabled, capability })
    }

    /// `Some(true)` for enabled plugins only, `Some(false)` for disabled ones only.
    pub fn enabled(&self) -> Option<bool> {
        self.enabled
    }

    /// Whether `plugin` passes.
    pub fn matches(&self, plugin: &Plugin) -> bool {
        self.matches_parts(plugin.enabled, plugin.config.interface.types())
    }

    /// Whether a plugin with this state and these types passes.
    pub fn matches_parts(&self, enabled: bool, types: &[InterfaceType]) -> bool {
        if self.enabled.is_some_and(|want| want != enabled) {
            return false;
        }
        match &self.capability {
            // A key with no values filters nothing, as in Moby.
            Some(patterns) if !patterns.is_empty() => {
                types.iter().all(|t| capability_matches(patterns, t.capability()))
            }
            _ => true,
        }
    }
}

fn capability_matches(patterns: &[Pattern], capability: &str) -> bool {
    patterns.iter().any(|p| p.exact && p.value == capability)
        || patterns.iter().any(|p| p.regex.as_ref().is_some_and(|r| r.is_match(capability)))
}

impl<'de> Deserialize<'de> for Filters {
    /// Reads either JSON form from a JSON value (for a `filters` embedded in a body).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Filters::from_json(&v.to_string()).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Filters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(list: &[&str]) -> Vec<InterfaceType> {
        list.iter().map(|s| InterfaceType::parse(s)).collect()
    }

    #[test]
    fn both_forms_parse_to_the_same() {
        let a =
            Filters::from_json(r#"{"capability":{"volumedriver":true},"enabled":{"true":true}}"#)
                .unwrap();
        let b =
            Filters::from_json(r#"{"capability":["volumedriver"],"enabled":["true"]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_json(), r#"{"capability":{"volumedriver":true},"enabled":{"true":true}}"#);
        assert_eq!(Filters::from_json("").unwrap(), Filters::new());
        assert_eq!(Filters::from_json("null").unwrap(), Filters::new());
        assert_eq!(Filters::new().to_json(), "");
    }

    #[test]
    fn malformed() {
        for bad in [
            "{",
            "[]",
            r#"{"a":1}"#,
            r#"{"a":{"b":true},"c":["d"]}"#,
            r#"{"a":{"b":"yes"}}"#,
            "\"x\"",
        ] {
            let e = Filters::from_json(bad).unwrap_err();
            assert!(matches!(e, FilterError::Malformed { .. }), "{bad}");
            assert_eq!(e.to_string(), "invalid filter");
        }
    }

    #[test]
    fn enabled_values() {
        let f = |s: &str| PluginListFilter::parse(s).map(|f| f.enabled());
        assert_eq!(f(r#"{"enabled":{"true":true}}"#).unwrap(), Some(true));
        assert_eq!(f(r#"{"enabled":["1"]}"#).unwrap(), Some(true));
        assert_eq!(f(r#"{"enabled":["0"]}"#).unwrap(), Some(false));
        assert_eq!(f(r#"{"enabled":["false"]}"#).unwrap(), Some(false));
        assert_eq!(f("{}").unwrap(), None);
        assert_eq!(
            f(r#"{"enabled":["yes"]}"#).unwrap_err().to_string(),
            "invalid filter 'enabled=[yes]'"
        );
        assert_eq!(
            f(r#"{"enabled":["true","false"]}"#).unwrap_err().to_string(),
            "invalid filter 'enabled=[false true]'"
        );
        assert_eq!(f(r#"{"enabled":[]}"#).unwrap_err().to_string(), "invalid filter 'enabled'");
        assert_eq!(f(r#"{"enabled":null}"#).unwrap_err().to_string(), "invalid filter 'enabled'");
        // A value sent as false does not count as given.
        assert!(matches!(
            f(r#"{"enabled":{"true":false}}"#),
            Err(FilterError::InvalidValue { .. })
        ));
        assert_eq!(
            f(r#"{"enabled":["TRUE"]}"#).unwrap_err().to_string(),
            "invalid filter 'enabled=[TRUE]'"
        );
    }

    #[test]
    fn unknown_keys() {
        let e = PluginListFilter::parse(r#"{"name":["x"],"enabled":["true"]}"#).unwrap_err();
        assert!(matches!(&e, FilterError::UnknownKey { key } if key == "name"));
        assert_eq!(e.to_string(), "invalid filter 'name'");
    }

    #[test]
    fn capability_every_type_must_match() {
        let f = PluginListFilter::parse(r#"{"capability":["networkdriver"]}"#).unwrap();
        assert!(!f
            .matches_parts(true, &types(&["docker.volumedriver/1.0", "docker.networkdriver/1.0"])));
        assert!(f.matches_parts(true, &types(&["docker.networkdriver/1.0"])));
        assert!(f.matches_parts(false, &[]), "a plugin without types passes");
        let f =
            PluginListFilter::parse(r#"{"capability":["networkdriver","volumedriver"]}"#).unwrap();
        assert!(
            f.matches_parts(true, &types(&["docker.volumedriver/1.0", "docker.networkdriver/1.0"]))
        );
    }

    #[test]
    fn capability_regex_search() {
        let f = PluginListFilter::parse(r#"{"capability":["volume"]}"#).unwrap();
        assert!(f.matches_parts(true, &types(&["docker.volumedriver/1.0"])));
        let f = PluginListFilter::parse(r#"{"capability":["^driver$"]}"#).unwrap();
        assert!(!f.matches_parts(true, &types(&["docker.volumedriver/1.0"])));
        // A value that does not compile only matches exactly.
        let f = PluginListFilter::parse(r#"{"capability":["("]}"#).unwrap();
        assert!(!f.matches_parts(true, &types(&["docker.volumedriver/1.0"])));
        assert!(f.matches_parts(true, &types(&["x.(/1"])));
        // Sent as false: no exact match, but still a regular expression.
        let f = PluginListFilter::parse(r#"{"capability":{"authz":false}}"#).unwrap();
        assert!(f.matches_parts(true, &types(&["docker.authz/1.0"])));
        // An empty value list filters nothing.
        let f = PluginListFilter::parse(r#"{"capability":[]}"#).unwrap();
        assert!(f.matches_parts(true, &types(&["docker.authz/1.0"])));
    }

    #[test]
    fn hostile_regex_is_bounded() {
        let big = format!(r#"{{"capability":["{}"]}}"#, "(a{1000}){1000}");
        let f = PluginListFilter::parse(&big).unwrap();
        assert!(!f.matches_parts(true, &types(&["docker.volumedriver/1.0"])));
    }
}
