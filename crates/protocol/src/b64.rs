//! Go's `[]byte` in JSON: a standard base64 string with padding; `null` is empty.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Serialize bytes as standard padded base64.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

/// Deserialize standard padded base64; `null` gives no bytes.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let Some(text) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else {
        return Ok(Vec::new());
    };
    decode(&text).map_err(D::Error::custom)
}

/// Go's `base64.StdEncoding`: padding required, but non-zero trailing bits are accepted.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

fn decode(text: &str) -> Result<Vec<u8>, String> {
    // Go's decoder skips '\r' and '\n' inside the text.
    let decoded = if text.contains(['\r', '\n']) {
        let clean: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        GO_STD.decode(clean)
    } else {
        GO_STD.decode(text)
    };
    decoded.map_err(|e| format!("invalid base64 for []byte: {e}"))
}

/// A list of byte strings (`[][]byte`), each base64; `null` is empty, a `null` entry is empty.
pub(crate) mod list {
    use super::*;
    use serde::ser::SerializeSeq;

    pub(crate) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for b in list {
            seq.serialize_element(&STANDARD.encode(b))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Option::<Vec<Option<String>>>::deserialize(d)?.unwrap_or_default();
        list.into_iter()
            .map(|t| t.map_or_else(|| Ok(Vec::new()), |t| decode(&t).map_err(D::Error::custom)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        assert_eq!(decode("czNjcjN0").unwrap(), b"s3cr3t");
        assert_eq!(decode("czNj\r\ncjN0").unwrap(), b"s3cr3t");
        assert_eq!(decode("YQ==").unwrap(), b"a");
        assert_eq!(decode("YR==").unwrap(), b"a"); // trailing bits set: Go accepts
        assert!(decode("YQ").is_err()); // padding required
        assert!(decode("Y Q==").is_err());
        assert_eq!(decode("").unwrap(), b"");
    }
}
