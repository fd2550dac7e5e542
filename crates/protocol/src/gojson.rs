//! Go's `encoding/json`, where dockerd's behaviour shows on the wire or on disk.
//!
//! dockerd decodes the v2 plugin objects (`config.json`, the Engine API `Plugin`, privileges,
//! registry config blobs, its own persisted records) with Go's decoder and writes them with
//! Go's encoder. Two of Go's habits matter to us:
//!
//! * **Reading:** an object key matches a struct field by its exact name first, else by a
//!   case-insensitive comparison (Go's simple Unicode case folding), so `"description"`,
//!   `"DESCRIPTION"` and `"Description"` all fill `Description`. A key that matches no field
//!   is **ignored**. A member whose value is `null` leaves the field at its zero value (Go: a
//!   no-op for strings, booleans and objects; nil for lists, maps and pointers, which is their
//!   zero value too). When a key appears twice the later one wins; two objects given for the
//!   same field are merged (Go decodes both into the same struct).
//! * **Writing:** [`to_vec`] and [`to_string`] escape `<`, `>`, `&`, U+2028 and U+2029 as
//!   `\u003c`-style sequences, as Go's `json.Marshal` does, so a blob we write has the same
//!   bytes, and so the same digest, as the one dockerd writes. Key order is the declaration
//!   order of the Rust struct, which follows the Go struct's.
//!
//! Where we differ from Go on purpose: invalid UTF-8 and lone surrogate escapes (`"\ud800"`)
//! are errors instead of being replaced by U+FFFD, and nesting deeper than 128 levels in a
//! kept value is an error (Go allows 10000). Neither occurs in what Docker writes.
//!
//! Every struct in this crate that dockerd decodes with Go semantics implements
//! `Deserialize` through [`FoldDe`]-style decoding (the crate-internal `go_json!` macro): plain
//! `serde_json::from_str` on those types already behaves like Go. The field names come from
//! serde's own derive, so they can never drift from the `rename` attributes.
//!
//! ```
//! use dockplug_protocol::PluginConfig;
//! let c: PluginConfig = serde_json::from_str(r#"{"description":"x","WORKDIR":"/w","nope":1}"#)?;
//! assert_eq!((c.description.as_str(), c.work_dir.as_str()), ("x", "/w"));
//! assert_eq!(dockplug_protocol::gojson::to_string(&"a<b")?, r#""a\u003cb""#);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::io;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Serializes `value` as compact JSON with Go's escaping (see the module docs).
///
/// # Errors
/// Whatever the value's `Serialize` reports, e.g. an interface type that cannot be printed.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// [`to_vec`] as a `String`.
///
/// # Errors
/// As [`to_vec`].
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let bytes = to_vec(value)?;
    // The serializer only ever writes UTF-8 (all escapes are ASCII).
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Serializes like Go's `json.NewEncoder(w).Encode(v)`: [`to_vec`] plus a trailing newline.
/// This is the exact form of a plugin config blob dockerd stores and pushes.
///
/// # Errors
/// As [`to_vec`].
pub fn to_vec_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = to_vec(value)?;
    out.push(b'\n');
    Ok(out)
}

/// serde_json's compact output with Go's HTML-safe escaping.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            let (escaped, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                    (b"\\u2028", 3)
                }
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                    (b"\\u2029", 3)
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(escaped)?;
            i += len;
            start = i;
        }
        writer.write_all(&bytes[start..])
    }
}

/// Whether two keys are equal under Go's case folding (ASCII case-insensitive, and simple
/// one-to-one Unicode folding such as `ſ`/`s` and the Kelvin sign/`k`).
pub fn fold_eq(a: &str, b: &str) -> bool {
    fn fold(c: char) -> char {
        if c.is_ascii() {
            return c.to_ascii_lowercase();
        }
        let mut up = c.to_uppercase();
        let u = match (up.next(), up.next()) {
            (Some(u), None) => u,
            _ => return c,
        };
        let mut low = u.to_lowercase();
        match (low.next(), low.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    }
    a.chars().map(fold).eq(b.chars().map(fold))
}

/// The field `key` names among `fields`: the exact name first, else the first that matches
/// under case folding (Go's rule).
pub(crate) fn resolve_field(fields: &'static [&'static str], key: &str) -> Option<&'static str> {
    fields
        .iter()
        .copied()
        .find(|f| *f == key)
        .or_else(|| fields.iter().copied().find(|f| fold_eq(f, key)))
}

/// A deserializer adapter giving a derived struct deserializer Go's key matching.
///
/// The derive calls `deserialize_struct` with the canonical field names (after `rename`);
/// the adapter reads the object, renames each key to the field it matches, drops unknown keys
/// and `null` members, merges duplicate objects, and hands the canonical object to the derived
/// visitor. Every other request is forwarded unchanged.
///
/// To give a type of another crate the same rules, derive with `#[serde(remote = "Self")]`
/// (which turns the derives into inherent functions) and forward the trait impls:
///
/// ```
/// use dockplug_protocol::gojson::FoldDe;
/// use serde::{Deserialize, Deserializer, Serialize, Serializer};
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// #[serde(remote = "Self", default)]
/// struct Record {
///     #[serde(rename = "Rootfs")]
///     rootfs: String,
/// }
/// impl Serialize for Record {
///     fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
///         Record::serialize(self, s)
///     }
/// }
/// impl<'de> Deserialize<'de> for Record {
///     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
///         Record::deserialize(FoldDe(d))
///     }
/// }
/// let r: Record = serde_json::from_str(r#"{"rootfs":"/x","other":1}"#)?;
/// assert_eq!(r.rootfs, "/x");
/// assert_eq!(serde_json::to_string(&r)?, r#"{"Rootfs":"/x"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct FoldDe<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for FoldDe<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(FoldVisitor { name, fields, inner: visitor })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct FoldVisitor<V> {
    name: &'static str,
    fields: &'static [&'static str],
    inner: V,
}

impl<'de, V: Visitor<'de>> FoldVisitor<V> {
    fn finish<E: de::Error>(self, map: Map<String, Value>) -> Result<V::Value, E> {
        Value::Object(map)
            .deserialize_any(self.inner)
            .map_err(|e| E::custom(format_args!("{}: {e}", self.name)))
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for FoldVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object ({})", self.name)
    }

    // `null` decodes to the zero value, as in Go.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.finish(Map::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.finish(Map::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = access.next_key::<KeyBuf>()? {
            let Some(field) = resolve_field(self.fields, &key.0) else {
                access.next_value::<IgnoredAny>()?;
                continue;
            };
            match access.next_value_seed(ValueSeed)? {
                Value::Null => {}
                Value::Object(new) => match out.get_mut(field) {
                    Some(Value::Object(old)) => old.extend(new),
                    _ => {
                        out.insert(field.to_owned(), Value::Object(new));
                    }
                },
                v => {
                    out.insert(field.to_owned(), v);
                }
            }
        }
        self.finish(out)
    }
}

/// A map key, owned (keys with escapes cannot be borrowed).
struct KeyBuf(String);

impl<'de> Deserialize<'de> for KeyBuf {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        String::deserialize(de).map(KeyBuf)
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        Value::deserialize(de)
    }
}

/// Implements `Serialize` and `Deserialize` for a struct whose derives carry
/// `#[serde(remote = "Self")]`: serialization is the derived one, deserialization goes through
/// [`FoldDe`] for Go's key matching.
macro_rules! go_json {
    ($($t:ty),+ $(,)?) => {$(
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize($crate::gojson::FoldDe(d))
            }
        }
    )+};
}
pub(crate) use go_json;

/// Deserializes a Go `[]string`: `null` is nil (`None`) and a `null` element is `""`.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Vec<String>>, D::Error> {
    let v = Option::<Vec<Option<String>>>::deserialize(de)?;
    Ok(v.map(|v| v.into_iter().map(Option::unwrap_or_default).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(remote = "Self", default)]
    struct Inner {
        #[serde(rename = "Socket")]
        socket: String,
        #[serde(rename = "Types")]
        types: Vec<String>,
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(remote = "Self", default)]
    struct Outer {
        #[serde(rename = "WorkDir")]
        work_dir: String,
        #[serde(rename = "rootfs")]
        rootfs: Option<String>,
        #[serde(rename = "Interface")]
        interface: Inner,
        #[serde(rename = "IpcHost")]
        ipc_host: bool,
    }
    go_json!(Inner, Outer);

    fn parse(s: &str) -> Outer {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn exact_then_folded_keys() {
        let o = parse(r#"{"workdir":"/a","ROOTFS":"r","interface":{"socket":"s","TYPES":["t"]}}"#);
        assert_eq!(o.work_dir, "/a");
        assert_eq!(o.rootfs.as_deref(), Some("r"));
        assert_eq!(o.interface, Inner { socket: "s".into(), types: vec!["t".into()] });
    }

    #[test]
    fn unknown_keys_ignored_and_null_is_zero() {
        let o = parse(r#"{"Nope":{"x":[1,2]},"WorkDir":null,"IpcHost":null,"Interface":null}"#);
        assert_eq!(o, Outer::default());
        assert_eq!(parse("null"), Outer::default());
    }

    #[test]
    fn later_key_wins_and_objects_merge() {
        let o = parse(
            r#"{"WorkDir":"/a","workdir":"/b","Interface":{"Socket":"s"},"interface":{"Types":["t"]}}"#,
        );
        assert_eq!(o.work_dir, "/b");
        assert_eq!(o.interface.socket, "s");
        assert_eq!(o.interface.types, ["t"]);
        // A null duplicate is a no-op.
        assert_eq!(parse(r#"{"WorkDir":"/a","WORKDIR":null}"#).work_dir, "/a");
    }

    #[test]
    fn type_errors_are_errors() {
        assert!(serde_json::from_str::<Outer>(r#"{"IpcHost":"yes"}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"[]"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#""x""#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"WorkDir":"#).is_err());
    }

    #[test]
    fn unicode_folding_like_go() {
        assert!(fold_eq("WorkDir", "workdir"));
        assert!(fold_eq("Socket", "ſocket")); // U+017F folds to s
        assert!(fold_eq("Kind", "\u{212A}ind")); // Kelvin sign folds to k
        assert!(!fold_eq("Socket", "Sockets"));
        assert!(!fold_eq("straße", "STRASSE")); // no multi-char folding in Go
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            to_string("<a&b>\u{2028}\u{2029}é\n").unwrap(),
            r#""\u003ca\u0026b\u003e\u2028\u2029é\n""#
        );
        assert_eq!(to_vec_line(&Outer::default()).unwrap().last(), Some(&b'\n'));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let nest = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // Skipped without building anything, as Go skips an unknown member.
        assert!(serde_json::from_str::<Outer>(&format!("{{\"Nope\":{nest}}}")).is_ok());
        // Kept values hit serde_json's recursion limit: an error, never a stack overflow.
        assert!(serde_json::from_str::<Outer>(&format!("{{\"WorkDir\":{nest}}}")).is_err());
    }
}
