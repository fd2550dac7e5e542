//! The log stream: length-prefixed protobuf `LogEntry` messages (Moby `api/types/plugins/logdriver/entry.proto` and `io.go`).
//!
//! Both the FIFO the daemon writes (after `StartLogging`) and the `ReadLogs` reply body are
//! `[u32 big-endian length N][N bytes of protobuf LogEntry]`, repeated until EOF.
//!
//! The protobuf encoding is written by hand here rather than generated with `prost`: the
//! message is six fields, frozen since 2017, and decoding hostile input needs explicit limits
//! and typed errors anyway. Hand-written code keeps this crate at serde alone (no
//! `prost`/`prost-derive`/`bytes`, no build script) and costs about 300 lines, tested against
//! the vector of the reference. The decoder accepts unknown fields (wire types 0, 1, 2, 5),
//! an empty message, and repeated fields (last scalar wins, sub-messages merge), as protobuf
//! requires; it rejects groups, truncation and invalid UTF-8 in string fields.
//!
//! ```
//! use dockplug_protocol::log::{FrameDecoder, LogEntry};
//! let entry = LogEntry { source: "stdout".into(), time_nano: 1, line: b"hi".to_vec(), ..Default::default() };
//! let mut frame = Vec::new();
//! entry.encode_frame(&mut frame)?;
//! assert_eq!(frame, b"\x00\x00\x00\x0e\x0a\x06stdout\x10\x01\x1a\x02hi");
//!
//! let mut dec = FrameDecoder::new();
//! dec.push(&frame[..7]); // a partial frame is kept until the rest arrives
//! assert_eq!(dec.next_entry()?, None);
//! dec.push(&frame[7..]);
//! assert_eq!(dec.next_entry()?, Some(entry));
//! dec.finish()?; // nothing left over at EOF
//! # Ok::<(), dockplug_protocol::log::FrameError>(())
//! ```

/// The largest frame the daemon's decoder accepts (`1e6` bytes of message).
pub const MAX_FRAME_LEN: usize = 1_000_000;

/// Bytes of the big-endian length prefix.
pub const PREFIX_LEN: usize = 4;

/// One log message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEntry {
    /// `stdout` or `stderr` (field 1).
    pub source: String,
    /// Unix nanoseconds, UTC (field 2).
    pub time_nano: i64,
    /// The line without its trailing `\n` (field 3).
    pub line: Vec<u8>,
    /// True for every piece of a line split at 16 KiB, the last one included (field 4).
    pub partial: bool,
    /// Which piece of a split line this is (field 5).
    pub partial_log_metadata: Option<PartialLogEntryMetadata>,
    /// Attributes (field 6; newer daemons define it but never fill it).
    pub attrs: Vec<LogAttr>,
}

/// Where a piece of a split line belongs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialLogEntryMetadata {
    /// The last piece (field 1).
    pub last: bool,
    /// 64-hex id shared by all pieces (field 2).
    pub id: String,
    /// The piece's number, from 1 (field 3).
    pub ordinal: i32,
}

/// A key/value attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAttr {
    /// Field 1.
    pub key: String,
    /// Field 2.
    pub value: String,
}

/// A protobuf message that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The message ends inside a field.
    #[error("protobuf message truncated at byte {offset}")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
    },
    /// A varint longer than 64 bits.
    #[error("protobuf varint overflows 64 bits at byte {offset}")]
    VarintOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// Field number 0, a group, or wire type 6 or 7.
    #[error("invalid protobuf tag {tag:#x} at byte {offset}")]
    InvalidTag {
        /// The tag value.
        tag: u64,
        /// Where the tag starts.
        offset: usize,
    },
    /// A known field with the wrong wire type.
    #[error("protobuf field {field} of {message} has wire type {wire_type}")]
    WrongWireType {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A string field that is not UTF-8.
    #[error("protobuf field {field} of {message} is not utf-8")]
    InvalidUtf8 {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
    },
}

/// A log stream that cannot be framed or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix above the limit: garbage, or a stream out of step. The stream cannot
    /// be resynchronised; the decoder keeps returning this error.
    #[error("log frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The declared (or, when encoding, the actual) length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("log stream ends inside a frame ({buffered} bytes left over)")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
    /// A complete frame whose message is not a valid `LogEntry`. The frame is consumed, so
    /// the caller may go on with the next one.
    #[error("invalid log entry in frame")]
    Message {
        /// Why the message is invalid.
        #[source]
        source: ProtoError,
    },
}

// ---- encoding ----

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn bytes_len(b: &[u8]) -> usize {
    1 + varint_len(b.len() as u64) + b.len()
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

const fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

impl PartialLogEntryMetadata {
    fn encoded_len(&self) -> usize {
        let mut n = 0;
        if self.last {
            n += 2;
        }
        if !self.id.is_empty() {
            n += bytes_len(self.id.as_bytes());
        }
        if self.ordinal != 0 {
            n += 1 + varint_len(i64::from(self.ordinal) as u64);
        }
        n
    }

    fn encode(&self, out: &mut Vec<u8>) {
        if self.last {
            out.extend_from_slice(&[tag(1, WIRE_VARINT), 1]);
        }
        if !self.id.is_empty() {
            put_bytes(out, tag(2, WIRE_LEN), self.id.as_bytes());
        }
        if self.ordinal != 0 {
            out.push(tag(3, WIRE_VARINT));
            put_varint(out, i64::from(self.ordinal) as u64);
        }
    }
}

impl LogAttr {
    fn encoded_len(&self) -> usize {
        let mut n = 0;
        if !self.key.is_empty() {
            n += bytes_len(self.key.as_bytes());
        }
        if !self.value.is_empty() {
            n += bytes_len(self.value.as_bytes());
        }
        n
    }

    fn encode(&self, out: &mut Vec<u8>) {
        if !self.key.is_empty() {
            put_bytes(out, tag(1, WIRE_LEN), self.key.as_bytes());
        }
        if !self.value.is_empty() {
            put_bytes(out, tag(2, WIRE_LEN), self.value.as_bytes());
        }
    }
}

impl LogEntry {
    /// The length of the protobuf message (without the frame prefix).
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        if !self.source.is_empty() {
            n += bytes_len(self.source.as_bytes());
        }
        if self.time_nano != 0 {
            n += 1 + varint_len(self.time_nano as u64);
        }
        if !self.line.is_empty() {
            n += bytes_len(&self.line);
        }
        if self.partial {
            n += 2;
        }
        if let Some(m) = &self.partial_log_metadata {
            let len = m.encoded_len();
            n += 1 + varint_len(len as u64) + len;
        }
        for a in &self.attrs {
            let len = a.encoded_len();
            n += 1 + varint_len(len as u64) + len;
        }
        n
    }

    /// Append the protobuf message (proto3: fields at their default value are not written).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        if !self.source.is_empty() {
            put_bytes(out, tag(1, WIRE_LEN), self.source.as_bytes());
        }
        if self.time_nano != 0 {
            out.push(tag(2, WIRE_VARINT));
            put_varint(out, self.time_nano as u64);
        }
        if !self.line.is_empty() {
            put_bytes(out, tag(3, WIRE_LEN), &self.line);
        }
        if self.partial {
            out.extend_from_slice(&[tag(4, WIRE_VARINT), 1]);
        }
        if let Some(m) = &self.partial_log_metadata {
            out.push(tag(5, WIRE_LEN));
            put_varint(out, m.encoded_len() as u64);
            m.encode(out);
        }
        for a in &self.attrs {
            out.push(tag(6, WIRE_LEN));
            put_varint(out, a.encoded_len() as u64);
            a.encode(out);
        }
    }

    /// Append a frame: the big-endian length, then the message. Fails only for a message
    /// longer than `u32::MAX` bytes.
    pub fn encode_frame(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let len = self.encoded_len();
        let prefix =
            u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max: u32::MAX as usize })?;
        out.reserve(PREFIX_LEN + len);
        out.extend_from_slice(&prefix.to_be_bytes());
        self.encode(out);
        Ok(())
    }

    /// Decode one protobuf message (no frame prefix).
    pub fn decode(buf: &[u8]) -> Result<Self, ProtoError> {
        let mut entry = Self::default();
        let mut r = Reader { buf, pos: 0, base: 0 };
        while let Some((field, wire)) = r.tag()? {
            const M: &str = "LogEntry";
            match field {
                1 => entry.source = r.string(M, field, wire)?,
                2 => entry.time_nano = r.varint_field(M, field, wire)? as i64,
                3 => entry.line = r.bytes(M, field, wire)?.to_vec(),
                4 => entry.partial = r.varint_field(M, field, wire)? != 0,
                5 => {
                    let (b, base) = r.sub(M, field, wire)?;
                    let m = entry.partial_log_metadata.get_or_insert_with(Default::default);
                    m.merge(b, base)?;
                }
                6 => {
                    let (b, base) = r.sub(M, field, wire)?;
                    entry.attrs.push(LogAttr::decode(b, base)?);
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(entry)
    }
}

impl PartialLogEntryMetadata {
    fn merge(&mut self, buf: &[u8], base: usize) -> Result<(), ProtoError> {
        let mut r = Reader { buf, pos: 0, base };
        while let Some((field, wire)) = r.tag()? {
            const M: &str = "PartialLogEntryMetadata";
            match field {
                1 => self.last = r.varint_field(M, field, wire)? != 0,
                2 => self.id = r.string(M, field, wire)?,
                3 => self.ordinal = r.varint_field(M, field, wire)? as i64 as i32,
                _ => r.skip(wire)?,
            }
        }
        Ok(())
    }
}

impl LogAttr {
    fn decode(buf: &[u8], base: usize) -> Result<Self, ProtoError> {
        let mut attr = Self::default();
        let mut r = Reader { buf, pos: 0, base };
        while let Some((field, wire)) = r.tag()? {
            const M: &str = "LogAttr";
            match field {
                1 => attr.key = r.string(M, field, wire)?,
                2 => attr.value = r.string(M, field, wire)?,
                _ => r.skip(wire)?,
            }
        }
        Ok(attr)
    }
}

// ---- decoding ----

/// A cursor over one (sub-)message; `base` is its offset in the outer message, for errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtoError::Truncated { offset: self.base + self.pos });
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtoError::VarintOverflow { offset: self.base + start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtoError::VarintOverflow { offset: self.base + start })
    }

    fn tag(&mut self) -> Result<Option<(u32, u8)>, ProtoError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let offset = self.base + self.pos;
        let t = self.varint()?;
        let wire = (t & 7) as u8;
        let field = t >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) || !matches!(wire, 0 | 1 | 2 | 5) {
            return Err(ProtoError::InvalidTag { tag: t, offset });
        }
        Ok(Some((field as u32, wire)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtoError::Truncated { offset: self.base + self.buf.len() });
        };
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| ProtoError::Truncated { offset: self.base + self.buf.len() })?;
        self.take(len)
    }

    fn expect(m: &'static str, field: u32, wire: u8, want: u8) -> Result<(), ProtoError> {
        if wire == want {
            Ok(())
        } else {
            Err(ProtoError::WrongWireType { message: m, field, wire_type: wire })
        }
    }

    fn varint_field(&mut self, m: &'static str, field: u32, wire: u8) -> Result<u64, ProtoError> {
        Self::expect(m, field, wire, WIRE_VARINT)?;
        self.varint()
    }

    fn bytes(&mut self, m: &'static str, field: u32, wire: u8) -> Result<&'a [u8], ProtoError> {
        Self::expect(m, field, wire, WIRE_LEN)?;
        self.len_delimited()
    }

    fn string(&mut self, m: &'static str, field: u32, wire: u8) -> Result<String, ProtoError> {
        let b = self.bytes(m, field, wire)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::InvalidUtf8 { message: m, field })
    }

    fn sub(
        &mut self,
        m: &'static str,
        field: u32,
        wire: u8,
    ) -> Result<(&'a [u8], usize), ProtoError> {
        Self::expect(m, field, wire, WIRE_LEN)?;
        let len = self.varint()?;
        let base = self.base + self.pos;
        let len = usize::try_from(len)
            .map_err(|_| ProtoError::Truncated { offset: self.base + self.buf.len() })?;
        Ok((self.take(len)?, base))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_I32 => self.take(4).map(drop),
            // `tag` lets no other wire type through.
            _ => Err(ProtoError::InvalidTag { tag: u64::from(wire), offset: self.base + self.pos }),
        }
    }
}

// ---- framing ----

/// An incremental decoder of a log stream: push bytes as they arrive, take entries out.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the daemon's limit, [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }

    /// A decoder that rejects frames longer than `max_len` bytes of message.
    pub fn with_max_len(max_len: usize) -> Self {
        Self { buf: Vec::new(), start: 0, max_len }
    }

    /// Add bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as entries.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete entry, or `None` until more bytes arrive.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; PREFIX_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge { len, max: self.max_len });
        }
        let Some(msg) = pending.get(PREFIX_LEN..PREFIX_LEN + len) else {
            return Ok(None);
        };
        let decoded = LogEntry::decode(msg);
        self.start += PREFIX_LEN + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        decoded.map(Some).map_err(|source| FrameError::Message { source })
    }

    /// Call at end of stream: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }
}

/// Decode a whole stream held in memory.
pub fn decode_stream(bytes: &[u8]) -> Result<Vec<LogEntry>, FrameError> {
    let mut dec = FrameDecoder::new();
    dec.push(bytes);
    let mut out = Vec::new();
    while let Some(e) = dec.next_entry()? {
        out.push(e);
    }
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> LogEntry {
        LogEntry {
            source: "stderr".into(),
            time_nano: -5,
            line: vec![0, 0xff, b'\n'],
            partial: true,
            partial_log_metadata: Some(PartialLogEntryMetadata {
                last: true,
                id: "ab".repeat(32),
                ordinal: -2,
            }),
            attrs: vec![
                LogAttr { key: "k".into(), value: "v".into() },
                LogAttr { key: String::new(), value: String::new() },
            ],
        }
    }

    #[test]
    fn reference_vector() {
        let e = LogEntry {
            source: "stdout".into(),
            time_nano: 1,
            line: b"hi".to_vec(),
            ..Default::default()
        };
        let mut out = Vec::new();
        e.encode_frame(&mut out).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 0x0e, 0x0a, 6, b's', b't', b'd', b'o', b'u', b't', 0x10, 1, 0x1a, 2, b'h',
                b'i'
            ]
        );
        assert_eq!(decode_stream(&out).unwrap(), vec![e]);
    }

    /// The bytes `protoc --encode=LogEntry` gives for the same entry (with `id: "abab"`).
    #[test]
    fn matches_protoc() {
        let want = "0a0673746465727210fbffffffffffffffff011a0300ff0a20012a13080112046162616218\
                    feffffffffffffffff0132060a016b1201763200";
        let mut e = full();
        if let Some(m) = e.partial_log_metadata.as_mut() {
            m.id = "abab".into();
        }
        let mut out = Vec::new();
        e.encode(&mut out);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
        assert_eq!(LogEntry::decode(&out).unwrap(), e);
    }

    #[test]
    fn every_field_round_trips() {
        let e = full();
        let mut out = Vec::new();
        e.encode(&mut out);
        assert_eq!(out.len(), e.encoded_len());
        assert_eq!(LogEntry::decode(&out).unwrap(), e);
        assert_eq!(LogEntry::decode(&[]).unwrap(), LogEntry::default());
        let big = LogEntry { time_nano: i64::MAX, line: vec![b'x'; 300], ..Default::default() };
        let mut out = Vec::new();
        big.encode(&mut out);
        assert_eq!(LogEntry::decode(&out).unwrap(), big);
    }

    #[test]
    fn unknown_fields_and_merges() {
        // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then source.
        let mut msg = vec![0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 2, b'z', b'z'];
        msg.extend_from_slice(&[0x65, 1, 2, 3, 4, 0x0a, 1, b'a']);
        // Two metadata pieces merge; a second source replaces the first.
        msg.extend_from_slice(&[0x2a, 2, 0x08, 1, 0x2a, 2, 0x18, 3, 0x0a, 1, b'b']);
        let e = LogEntry::decode(&msg).unwrap();
        assert_eq!(e.source, "b");
        assert_eq!(
            e.partial_log_metadata,
            Some(PartialLogEntryMetadata { last: true, id: String::new(), ordinal: 3 })
        );
    }

    #[test]
    fn malformed_messages() {
        use ProtoError::*;
        let cases: &[(&[u8], ProtoError)] = &[
            (&[0x0a], Truncated { offset: 1 }),
            (&[0x0a, 5, b'a'], Truncated { offset: 3 }),
            (&[0x10], Truncated { offset: 1 }),
            (
                &[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                VarintOverflow { offset: 1 },
            ),
            (&[0x00], InvalidTag { tag: 0, offset: 0 }),
            (&[0x0b], InvalidTag { tag: 0x0b, offset: 0 }),
            (&[0x0e], InvalidTag { tag: 0x0e, offset: 0 }),
            (&[0x08, 1], WrongWireType { message: "LogEntry", field: 1, wire_type: 0 }),
            (&[0x0a, 1, 0xff], InvalidUtf8 { message: "LogEntry", field: 1 }),
            (&[0x2a, 2, 0x12, 1], Truncated { offset: 4 }),
            (
                &[0x2a, 1, 0x0a],
                WrongWireType { message: "PartialLogEntryMetadata", field: 1, wire_type: 2 },
            ),
            (&[0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f], Truncated { offset: 6 }),
        ];
        for (bytes, want) in cases {
            assert_eq!(LogEntry::decode(bytes).as_ref(), Err(want), "{bytes:x?}");
        }
    }
}
