//! The log stream of `LogDriver.StartLogging`/`ReadLogs`: big-endian length-prefixed
//! protobuf `LogEntry` frames.
//!
//! The first byte chooses how the rest is cut into reads. Invariants: the incremental
//! decoder fed in those pieces yields exactly what the one-shot decoder yields (entries and
//! the failing frame); it never buffers more than one frame beyond what it returned; and
//! every entry decoded re-encodes to a frame that decodes to the same entry.

use dockplug_protocol::log::entry::{self, FrameDecoder, LogEntry, MAX_FRAME_LEN, PREFIX_LEN};

use crate::select;

/// The target: see the module documentation.
pub fn log_frames(data: &[u8]) {
    let (step, stream) = select(data, 256);
    let step = step + 1;
    let whole = entry::decode_stream(stream);

    let mut dec = FrameDecoder::new();
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut failed = false;
    'feed: for piece in stream.chunks(step) {
        dec.push(piece);
        loop {
            match dec.next_entry() {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'feed;
                }
            }
        }
        // Bounded: what stays buffered is at most one frame (prefix and message).
        assert!(dec.buffered() <= PREFIX_LEN + MAX_FRAME_LEN + step);
    }
    let incremental_ok = !failed && dec.finish().is_ok();
    match &whole {
        Ok(all) => {
            assert!(incremental_ok, "incremental decoder failed where decode_stream did not");
            assert_eq!(&entries, all, "incremental and one-shot decoding differ");
        }
        Err(_) => assert!(!incremental_ok, "incremental decoder accepted a bad stream"),
    }

    for e in &entries {
        let mut frame = Vec::new();
        e.encode_frame(&mut frame).expect("a decoded entry fits a frame");
        assert_eq!(frame.len(), PREFIX_LEN + e.encoded_len());
        let back = entry::decode_stream(&frame).expect("our own frame decodes");
        assert_eq!(back.as_slice(), std::slice::from_ref(e), "entry does not round-trip");
    }
}
