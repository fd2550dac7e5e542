//! Just enough of ttrpc to call one method of a containerd shim directly, behind containerd's
//! back: how a test builds the state a delete cut short leaves (the shim has deleted its
//! task while containerd still holds the shim for it).
//!
//! The framing is ttrpc's (`github.com/containerd/ttrpc` `channel.go`): a 10-byte header
//! (length and stream id, big-endian `u32`s, then the message type and flags) before a
//! protobuf `Request { service = 1, method = 2, payload = 3 }`, answered by a
//! `Response { status = 1, payload = 2 }` whose status is a `google.rpc.Status { code = 1 }`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;
/// A response larger than this is not one we expect.
const MAX_RESPONSE: usize = 1 << 20;

/// Calls `Delete { id }` on the task service of the shim that containerd (state directory
/// `state`) started for `namespace`/`id`; returns the gRPC status code of the answer (0 = OK).
pub fn delete_task(state: &Path, namespace: &str, id: &str) -> u64 {
    let bundle = state.join("io.containerd.runtime.v2.task").join(namespace).join(id);
    let address = std::fs::read_to_string(bundle.join("address")).expect("the shim's address");
    let socket = address.trim().strip_prefix("unix://").expect("a unix socket address");
    let mut payload = Vec::new();
    field(&mut payload, 1, id.as_bytes());
    let mut request = Vec::new();
    field(&mut request, 1, b"containerd.task.v2.Task");
    field(&mut request, 2, b"Delete");
    field(&mut request, 3, &payload);

    let mut conn = UnixStream::connect(socket).expect("connect to the shim");
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut header = Vec::with_capacity(10 + request.len());
    header.extend_from_slice(&(request.len() as u32).to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes()); // the client's first stream
    header.extend_from_slice(&[REQUEST, 0]);
    header.extend_from_slice(&request);
    conn.write_all(&header).expect("send to the shim");

    let mut head = [0u8; 10];
    conn.read_exact(&mut head).expect("the shim's answer");
    let length = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    assert_eq!(head[8], RESPONSE, "a ttrpc response");
    assert!(length <= MAX_RESPONSE, "a response of {length} bytes");
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).expect("the shim's answer");
    match fields(&body).into_iter().find(|(n, _)| *n == 1) {
        None => 0,
        Some((_, Value::Bytes(status))) => fields(status)
            .into_iter()
            .find_map(|(n, v)| match (n, v) {
                (1, Value::Varint(code)) => Some(code),
                _ => None,
            })
            .unwrap_or(0),
        Some(other) => panic!("a malformed ttrpc status: {other:?}"),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[derive(Debug)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The varint and length-delimited fields of a protobuf message (others end the scan).
fn fields(mut b: &[u8]) -> Vec<(u64, Value<'_>)> {
    fn read_varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while let Some(key) = read_varint(&mut b) {
        let value = match key & 7 {
            0 => match read_varint(&mut b) {
                Some(v) => Value::Varint(v),
                None => break,
            },
            2 => {
                let Some(len) = read_varint(&mut b).and_then(|l| usize::try_from(l).ok()) else {
                    break;
                };
                if len > b.len() {
                    break;
                }
                let (v, rest) = b.split_at(len);
                b = rest;
                Value::Bytes(v)
            }
            _ => break,
        };
        out.push((key >> 3, value));
    }
    out
}

/// The shims started by the containerd at `socket` for container `id` (from `/proc`).
pub fn pids(socket: &Path, id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let flag = |name: &[u8]| args.windows(2).find(|w| w[0] == name).map(|w| w[1]);
        let is_shim = args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        if is_shim
            && flag(b"-id") == Some(id.as_bytes())
            && flag(b"-address") == Some(socket.as_os_str().as_encoded_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// A shim for `namespace`/`id` that the containerd at `socket` never heard of, as one that
/// containerd dropped looks: started the way containerd starts one (`start` in a directory
/// holding its `config.json` and its `log` FIFO, whose reader is a thread here), with no
/// task. Returns its PID once it runs.
pub fn start_lost(socket: &Path, namespace: &str, id: &str, dir: &Path) -> u32 {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), b"{}").unwrap();
    let log = dir.join("log");
    let made = std::process::Command::new("mkfifo").arg(&log).status().unwrap();
    assert!(made.success(), "mkfifo");
    // The shim writes its log into the FIFO; read it until the shim is gone.
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::File::open(&log) {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
    });
    let mut ttrpc = socket.as_os_str().to_owned();
    ttrpc.push(".ttrpc");
    let out = std::process::Command::new(crate::support::program("containerd-shim-runc-v2"))
        .args(["-namespace", namespace, "-id", id, "-address"])
        .arg(socket)
        .arg("start")
        .env("TTRPC_ADDRESS", ttrpc)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "shim start: {}", String::from_utf8_lossy(&out.stderr));
    let found = pids(socket, id);
    assert_eq!(found.len(), 1, "the lost shim runs: {found:?}");
    found[0]
}
