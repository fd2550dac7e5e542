use dockplug_protocol::log::entry::{decode_stream, ProtoError, MAX_FRAME_LEN};
use dockplug_protocol::log::*;
use dockplug_protocol::ErrorBody;

use super::support::{canonical, golden};

const START: &str = r#"{"File": "/run/docker/logging/5b1f0a4ccad5e8cbb94b4f3dd5fc2c32e1b8a9d7e6f5a4b3c2d1e0f9a8b7c6d5", "Info": {"Config": {"tag": "web"}, "ContainerID": "3c5f7e1a9b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e", "ContainerName": "/web", "ContainerEntrypoint": "nginx", "ContainerArgs": ["-g", "daemon off;"], "ContainerImageID": "sha256:4f6d2a1b9c3e5f7a8b0c2d4e6f8a0b1c3d5e7f9a1b2c4d6e8f0a2b4c6d8e0f1a", "ContainerImageName": "nginx:latest", "ContainerCreated": "2024-05-01T12:00:00.123456789Z", "ContainerEnv": ["PATH=/usr/bin"], "ContainerLabels": {}, "LogPath": "", "DaemonName": "docker"}}"#;

const READ: &str = r#"{"Info": {"ContainerID": "3c5f7e1a9b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e", "Config": null, "ContainerName": "/web", "ContainerEntrypoint": "", "ContainerArgs": null, "ContainerImageID": "", "ContainerImageName": "", "ContainerCreated": "0001-01-01T00:00:00Z", "ContainerEnv": null, "ContainerLabels": null, "LogPath": "", "DaemonName": "docker"}, "Config": {"Since": "0001-01-01T00:00:00Z", "Until": "0001-01-01T00:00:00Z", "Tail": -1, "Follow": true}}"#;

#[test]
fn json_samples() {
    let r: StartLoggingRequest = golden(START);
    assert!(r.file.starts_with(FIFO_DIR));
    assert_eq!(r.info.container_args.as_deref().unwrap()[1], "daemon off;");
    assert_eq!(r.info.container_created.unix_nanos(), 1_714_564_800_123_456_789);
    assert_eq!(r.info.container_labels, Some(Default::default()));
    let r: ReadLogsRequest = golden(READ);
    assert!(r.info.config.is_none() && r.info.container_env.is_none());
    assert!(r.config.since.is_zero() && r.config.until.is_zero());
    assert_eq!(r.config.tail, -1);
    assert!(r.config.follow);
    golden::<StopLoggingRequest>(r#"{"File": "/run/docker/logging/x"}"#);
    golden::<ErrResponse>(r#"{"Err": ""}"#);
    let r: CapabilitiesResponse = golden(r#"{"Cap": {"ReadLogs": true}}"#);
    assert!(r.cap.read_logs);
    // The docs' flat reply means false to the daemon, and to us.
    let r: CapabilitiesResponse =
        canonical(r#"{"ReadLogs": true}"#, r#"{"Cap": {"ReadLogs": false}}"#);
    assert!(!r.cap.read_logs);
    // The docs' `ReadConfig` key is not the request's `Config`.
    let r: ReadLogsRequest = serde_json::from_str(r#"{"ReadConfig": {"Tail": 5}}"#).unwrap();
    assert_eq!(r.config.tail, 0);
}

#[test]
fn times_are_strict() {
    // Missing or null times are Go's zero time; "" is an error.
    let r: ReadLogsRequest = canonical(
        r#"{"Config": {"Since": null, "Tail": 3}}"#,
        r#"{"Info": {"Config": null, "ContainerID": "", "ContainerName": "", "ContainerEntrypoint": "", "ContainerArgs": null, "ContainerImageID": "", "ContainerImageName": "", "ContainerCreated": "0001-01-01T00:00:00Z", "ContainerEnv": null, "ContainerLabels": null, "LogPath": "", "DaemonName": ""}, "Config": {"Since": "0001-01-01T00:00:00Z", "Until": "0001-01-01T00:00:00Z", "Tail": 3, "Follow": false}}"#,
    );
    assert!(r.config.since.is_zero());
    assert!(serde_json::from_str::<ReadLogsRequest>(r#"{"Config": {"Since": ""}}"#).is_err());
    assert!(serde_json::from_str::<StartLoggingRequest>(r#"{"Info": {"ContainerCreated": ""}}"#)
        .is_err());
    let e: ErrorBody = serde_json::from_str(r#"{"err": "x"}"#).unwrap();
    assert_eq!(e.err, "x");
}

fn entry(i: usize) -> LogEntry {
    LogEntry {
        source: if i % 2 == 0 { "stdout" } else { "stderr" }.into(),
        time_nano: 1_714_564_800_000_000_000 + i as i64,
        line: format!("line {i}").into_bytes(),
        partial: i % 3 == 0,
        partial_log_metadata: (i % 3 == 0).then(|| PartialLogEntryMetadata {
            last: i % 2 == 0,
            id: "5b1f0a4ccad5e8cbb94b4f3dd5fc2c32e1b8a9d7e6f5a4b3c2d1e0f9a8b7c6d5".into(),
            ordinal: i as i32 + 1,
        }),
        attrs: Vec::new(),
    }
}

fn stream(n: usize) -> (Vec<LogEntry>, Vec<u8>) {
    let entries: Vec<LogEntry> = (0..n).map(entry).collect();
    let mut bytes = Vec::new();
    for e in &entries {
        e.encode_frame(&mut bytes).unwrap();
    }
    (entries, bytes)
}

#[test]
fn frames_round_trip() {
    let (entries, bytes) = stream(50);
    assert_eq!(decode_stream(&bytes).unwrap(), entries);
    // An empty message is a valid frame.
    assert_eq!(decode_stream(&[0, 0, 0, 0]).unwrap(), vec![LogEntry::default()]);
    assert_eq!(decode_stream(&[]).unwrap(), vec![]);
    // A 16 KiB line (the daemon's split size) fits well within the limit.
    let big = LogEntry { line: vec![b'x'; 16 * 1024], ..entry(1) };
    let mut out = Vec::new();
    big.encode_frame(&mut out).unwrap();
    assert_eq!(decode_stream(&out).unwrap(), vec![big]);
}

#[test]
fn partial_frames_in_every_split() {
    let (entries, bytes) = stream(7);
    // Feed the stream in chunks of every size from 1 byte to the whole, and check that
    // every entry comes out once, in order.
    for chunk in 1..=bytes.len() {
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(chunk) {
            dec.push(piece);
            while let Some(e) = dec.next_entry().unwrap() {
                got.push(e);
            }
        }
        dec.finish().unwrap();
        assert_eq!(got, entries, "chunk size {chunk}");
        assert_eq!(dec.buffered(), 0);
    }
}

#[test]
fn truncated_stream_is_an_error_at_eof() {
    let (_, bytes) = stream(3);
    for cut in [1, 3, 4, 10, bytes.len() - 1] {
        let mut dec = FrameDecoder::new();
        dec.push(&bytes[..cut]);
        while dec.next_entry().unwrap().is_some() {}
        assert!(matches!(dec.finish(), Err(FrameError::Truncated { .. })), "cut {cut}");
        assert!(matches!(decode_stream(&bytes[..cut]), Err(FrameError::Truncated { .. })));
    }
}

#[test]
fn oversized_frames_are_rejected_before_buffering() {
    let mut dec = FrameDecoder::new();
    dec.push(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
    let err = dec.next_entry().unwrap_err();
    assert_eq!(err, FrameError::TooLarge { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN });
    assert_eq!(err.to_string(), "log frame of 1000001 bytes exceeds the limit of 1000000");
    // The error sticks: the stream cannot be resynchronised.
    assert!(dec.next_entry().is_err());
    // Text where a length should be ("HTTP" = 0x48545450) is garbage, not a 1.2 GB wait.
    let mut dec = FrameDecoder::new();
    dec.push(b"HTTP/1.1 500 Internal Server Error\r\n");
    assert!(matches!(dec.next_entry(), Err(FrameError::TooLarge { .. })));
    // A custom limit.
    let (_, bytes) = stream(1);
    let mut dec = FrameDecoder::with_max_len(4);
    dec.push(&bytes);
    assert!(matches!(dec.next_entry(), Err(FrameError::TooLarge { max: 4, .. })));
}

#[test]
fn garbage_messages_are_typed_errors_and_skippable() {
    let (entries, good) = stream(2);
    // A frame of 3 bytes holding an invalid tag (field 0), between two good frames.
    let mut bytes = Vec::new();
    let first_len = 4 + u32::from_be_bytes(good[..4].try_into().unwrap()) as usize;
    bytes.extend_from_slice(&good[..first_len]);
    bytes.extend_from_slice(&[0, 0, 0, 3, 0x00, 0x01, 0x02]);
    bytes.extend_from_slice(&good[first_len..]);
    let mut dec = FrameDecoder::new();
    dec.push(&bytes);
    assert_eq!(dec.next_entry().unwrap(), Some(entries[0].clone()));
    let err = dec.next_entry().unwrap_err();
    assert!(matches!(err, FrameError::Message { source: ProtoError::InvalidTag { tag: 0, .. } }));
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(dec.next_entry().unwrap(), Some(entries[1].clone()));
    dec.finish().unwrap();

    // Pseudo-random garbage never panics: every frame either decodes or errors.
    let mut x: u32 = 0x9e37_79b9;
    for round in 0..200 {
        let mut junk = Vec::new();
        for _ in 0..(round % 64) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk.push(x as u8);
        }
        let mut framed = (junk.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&junk);
        let _ = decode_stream(&framed);
        let _ = decode_stream(&junk);
        let _ = LogEntry::decode(&junk);
    }
}

/// A small deterministic generator (xorshift), so the test is repeatable without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, max: u64) -> String {
        let n = self.next() % max;
        (0..n).map(|_| char::from_u32((self.next() % 0x2FF) as u32 + 1).unwrap_or('x')).collect()
    }
}

#[test]
fn random_entries_round_trip() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut entries = Vec::new();
    for _ in 0..300 {
        let n = rng.next() % 40;
        let line: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let e = LogEntry {
            source: rng.text(8),
            time_nano: rng.next() as i64,
            line,
            partial: rng.next() % 2 == 0,
            partial_log_metadata: (rng.next() % 2 == 0).then(|| PartialLogEntryMetadata {
                last: rng.next() % 2 == 0,
                id: rng.text(70),
                ordinal: rng.next() as i32,
            }),
            attrs: (0..rng.next() % 3)
                .map(|_| LogAttr { key: rng.text(5), value: rng.text(5) })
                .collect(),
        };
        let mut msg = Vec::new();
        e.encode(&mut msg);
        assert_eq!(msg.len(), e.encoded_len());
        assert_eq!(LogEntry::decode(&msg).unwrap(), e);
        entries.push(e);
    }
    let mut bytes = Vec::new();
    for e in &entries {
        e.encode_frame(&mut bytes).unwrap();
    }
    assert_eq!(decode_stream(&bytes).unwrap(), entries);
}
