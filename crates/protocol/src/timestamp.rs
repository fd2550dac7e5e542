//! RFC 3339 times as Go's `time.Time` puts them on the wire.
//!
//! The daemon encodes a `time.Time` as an RFC 3339 string with nanoseconds and decodes one
//! strictly: `""` is an error, `null` leaves the zero time. [`Timestamp`] keeps the text as
//! it came (so a value prints back exactly as it was read) after checking it the way Go's
//! parser does (Go 1.20 and later, as current Moby is built; the Go 1.19 of dockerd 20.10
//! also let through a `,` before the fraction and offsets like `+24:00`, which we refuse).
//! Fraction digits past the ninth are accepted and ignored, as in Go. We keep a validated string instead of pulling in a time crate: nothing in
//! the protocols computes with times except comparing log entries, which
//! [`Timestamp::unix_nanos`] covers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The string is empty (Go: `parsing time "" as ...`).
    #[error("empty time string is not RFC 3339")]
    Empty,
    /// The string does not have the RFC 3339 shape.
    #[error("time {value:?} is not RFC 3339")]
    Malformed {
        /// The rejected text.
        value: String,
    },
    /// A field (month, day, hour, minute, second, offset) is out of range.
    #[error("time {value:?} has {field} out of range")]
    OutOfRange {
        /// The rejected text.
        value: String,
        /// Which field: `month`, `day`, `hour`, `minute`, `second` or `offset`.
        field: &'static str,
    },
}

/// A validated RFC 3339 time, kept as its text.
///
/// The default is Go's zero time, `0001-01-01T00:00:00Z`.
///
/// ```
/// use dockplug_protocol::timestamp::Timestamp;
/// let t: Timestamp = "2024-05-01T12:00:00.123456789Z".parse()?;
/// assert_eq!(t.unix_nanos(), 1_714_564_800_123_456_789);
/// assert!("".parse::<Timestamp>().is_err());
/// assert!(Timestamp::default().is_zero());
/// # Ok::<(), dockplug_protocol::timestamp::TimestampError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp {
    text: String,
    nanos: i128,
}

/// Go's zero `time.Time` in RFC 3339.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for Timestamp {
    fn default() -> Self {
        Self { text: ZERO_TIME.to_owned(), nanos: ZERO_NANOS }
    }
}

/// Unix nanoseconds of `0001-01-01T00:00:00Z`.
const ZERO_NANOS: i128 = -62_135_596_800 * 1_000_000_000;

impl Timestamp {
    /// Parse and validate `s` like Go's `time.Parse(time.RFC3339Nano, s)`.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let nanos = parse_rfc3339(s)?;
        Ok(Self { text: s.to_owned(), nanos })
    }

    /// The time `nanos` nanoseconds after the Unix epoch, in UTC, written as Go writes it
    /// (`RFC3339Nano`: trailing zeros of the fraction dropped).
    pub fn from_unix_nanos(nanos: i128) -> Self {
        let secs = nanos.div_euclid(1_000_000_000);
        let frac = nanos.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
        if frac != 0 {
            let f = format!("{frac:09}");
            text.push('.');
            text.push_str(f.trim_end_matches('0'));
        }
        text.push('Z');
        Self { text, nanos }
    }

    /// The text as read (or as written by [`Timestamp::from_unix_nanos`]).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Nanoseconds since the Unix epoch (negative before 1970).
    pub fn unix_nanos(&self) -> i128 {
        self.nanos
    }

    /// Whether this is Go's zero time (the "unset" value of `Since`/`Until` and the like).
    pub fn is_zero(&self) -> bool {
        self.nanos == ZERO_NANOS
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Deserialize a `time.Time` field as Go does: `null` (or a missing key, with
/// `#[serde(default)]`) is the zero time, any string must be RFC 3339.
pub fn null_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    Ok(Option::<Timestamp>::deserialize(d)?.unwrap_or_default())
}

fn digits(b: &[u8], range: std::ops::Range<usize>, s: &str) -> Result<i128, TimestampError> {
    let mut v: i128 = 0;
    for &c in b.get(range).ok_or_else(|| malformed(s))? {
        if !c.is_ascii_digit() {
            return Err(malformed(s));
        }
        v = v * 10 + i128::from(c - b'0');
    }
    Ok(v)
}

fn malformed(s: &str) -> TimestampError {
    TimestampError::Malformed { value: s.to_owned() }
}

fn out_of_range(s: &str, field: &'static str) -> TimestampError {
    TimestampError::OutOfRange { value: s.to_owned(), field }
}

fn parse_rfc3339(s: &str) -> Result<i128, TimestampError> {
    if s.is_empty() {
        return Err(TimestampError::Empty);
    }
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(malformed(s));
    }
    let year = digits(b, 0..4, s)?;
    let month = digits(b, 5..7, s)?;
    let day = digits(b, 8..10, s)?;
    let hour = digits(b, 11..13, s)?;
    let minute = digits(b, 14..16, s)?;
    let second = digits(b, 17..19, s)?;
    if !(1..=12).contains(&month) {
        return Err(out_of_range(s, "month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(out_of_range(s, "day"));
    }
    if hour > 23 {
        return Err(out_of_range(s, "hour"));
    }
    if minute > 59 {
        return Err(out_of_range(s, "minute"));
    }
    if second > 59 {
        return Err(out_of_range(s, "second"));
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i128::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(malformed(s));
        }
        for _ in n..9 {
            frac *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1..i + 3, s)?;
            let om = digits(b, i + 4..i + 6, s)?;
            if oh > 23 || om > 59 {
                return Err(out_of_range(s, "offset"));
            }
            let off = oh * 3600 + om * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return Err(malformed(s)),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(secs * 1_000_000_000 + frac)
}

fn is_leap(y: i128) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i128, m: i128) -> i128 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_round_trips() {
        let t: Timestamp = ZERO_TIME.parse().unwrap();
        assert!(t.is_zero());
        assert_eq!(t, Timestamp::default());
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"0001-01-01T00:00:00Z\"");
        assert_eq!(Timestamp::from_unix_nanos(t.unix_nanos()).as_str(), ZERO_TIME);
    }

    #[test]
    fn offsets_and_fractions() {
        let a: Timestamp = "2024-05-01T14:00:00+02:00".parse().unwrap();
        let b: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        assert_eq!(a.unix_nanos(), b.unix_nanos());
        assert_eq!(b.unix_nanos(), 1_714_564_800_000_000_000);
        let c: Timestamp = "2024-05-01T12:00:00.5-00:30".parse().unwrap();
        assert_eq!(c.unix_nanos(), b.unix_nanos() + 1_800_000_000_000 + 500_000_000);
        assert_eq!(Timestamp::from_unix_nanos(1).as_str(), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            Timestamp::from_unix_nanos(b.unix_nanos() + 123_000_000).as_str(),
            "2024-05-01T12:00:00.123Z"
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00z",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+2400",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00Zjunk",
            "２024-05-01T12:00:00Z",
            // Accepted by Go 1.19 (dockerd 20.10), rejected since Go 1.20 (moby HEAD).
            "2024-05-01T12:00:00,5Z",
            "2024-05-01T12:00:00-00:60",
            "2024-05-01t12:00:00Z",
            "+2024-05-01T12:00:00Z",
            "2024-5-01T12:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} should be rejected");
        }
        assert_eq!("".parse::<Timestamp>(), Err(TimestampError::Empty));
        assert!("2024-02-29T00:00:00Z".parse::<Timestamp>().is_ok());
        // Values checked against Go's time.Time.UnmarshalJSON: extra fraction digits are
        // truncated, offsets up to 23:59 are accepted.
        let cases = [
            ("2024-05-01T12:00:00.1234567891Z", 1_714_564_800_123_456_789_i128),
            ("2024-05-01T12:00:00+23:59", 1_714_478_460_000_000_000),
            ("2024-05-01T12:00:00.000Z", 1_714_564_800_000_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(text.parse::<Timestamp>().unwrap().unix_nanos(), nanos, "{text}");
        }
    }
}
