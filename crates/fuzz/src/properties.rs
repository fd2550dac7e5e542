//! The fuzz targets as bounded property tests on stable (part of `cargo xtask ci`).
//!
//! Each target runs over (1) every file of its seed corpus `fuzz/corpus/<name>/`, then (2)
//! proptest cases drawn from three sources: mutations of the seeds (bit flips, inserted
//! tokens, cut and duplicated ranges, splices), inputs generated from the target's grammar
//! (JSON with the protocol's own keys in random case, tar archives with hostile paths and
//! links, log frames, addresses, names), and raw bytes. Each test stops at [`CASES`] cases
//! or [`BUDGET`], whichever comes first, so `ci` stays bounded on a loaded machine. A
//! failure is shrunk by proptest and printed; it then becomes a regression test in
//! `src/regressions.rs` and a file in the corpus.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Number, Value};

use crate::target;

/// Cases per target.
const CASES: u32 = 8_000;
/// Wall-clock budget per target.
const BUDGET: Duration = Duration::from_secs(3);
/// Cases drawn by one proptest runner; the budget is checked between runners.
const CHUNK: u32 = 250;

pub(crate) fn corpus_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name)
}

pub(crate) fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {dir:?}: {e}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).expect("read a seed")).collect()
}

// ---- mutation of seeds ----

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"0",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\x00",
    b"//",
    b"/../",
    b"..",
    b"unix://",
    b"tcp://",
    b"https://",
    b"[::1]:",
    b"@",
    b"\n",
    b"\r\n",
    b" ",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, usize),
    Cut(usize, usize),
    Duplicate(usize, usize),
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Cut(i, n)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Splice(i, v)),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match m {
            Mutation::Flip(i, b) if !data.is_empty() => {
                let n = data.len();
                data[i % n] ^= b | 1;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, t) => {
                let p = at(*i, data.len());
                data.splice(p..p, TOKENS[*t].iter().copied());
            }
            Mutation::Cut(i, n) => {
                let p = at(*i, data.len());
                let end = (p + n).min(data.len());
                data.drain(p..end);
            }
            Mutation::Duplicate(i, n) => {
                let p = at(*i, data.len());
                let end = (p + n).min(data.len());
                let piece = data[p..end].to_vec();
                data.splice(p..p, piece);
            }
            Mutation::Splice(i, v) => {
                let p = at(*i, data.len());
                data.splice(p..p, v.iter().copied());
            }
        }
    }
    data
}

fn mutated(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    (prop::sample::select(seeds), prop::collection::vec(mutation(), 0..6))
        .prop_map(|(seed, muts)| apply(seed, &muts))
        .boxed()
}

// ---- generated JSON ----

/// The protocol's own keys, so generated objects reach real fields.
const KEYS: &[&str] = &[
    "Name",
    "Opts",
    "ID",
    "Mountpoint",
    "Err",
    "Error",
    "Volume",
    "Volumes",
    "Capabilities",
    "Scope",
    "Status",
    "CreatedAt",
    "Implements",
    "NetworkID",
    "EndpointID",
    "Options",
    "IPv4Data",
    "IPv6Data",
    "Interface",
    "Address",
    "AddressIPv6",
    "MacAddress",
    "PoolID",
    "Pool",
    "SubPool",
    "V6",
    "AddressSpace",
    "Gateway",
    "AuxAddresses",
    "InterfaceName",
    "SrcName",
    "DstPrefix",
    "StaticRoutes",
    "Destination",
    "RouteType",
    "NextHop",
    "SandboxKey",
    "DisableGatewayService",
    "File",
    "Info",
    "Config",
    "ContainerID",
    "ContainerName",
    "LogPath",
    "ReadConfig",
    "Since",
    "Until",
    "Tail",
    "Follow",
    "SecretName",
    "SecretLabels",
    "ServiceName",
    "ServiceLabels",
    "Value",
    "DoNotReuse",
    "UseExternalKey",
    "Parent",
    "MountLabel",
    "StorageOpt",
    "Changes",
    "Path",
    "Kind",
    "Dir",
    "Size",
    "UIDMaps",
    "GIDMaps",
    "User",
    "UserAuthNMethod",
    "RequestMethod",
    "RequestURI",
    "RequestBody",
    "RequestHeaders",
    "ResponseStatusCode",
    "ResponseBody",
    "RequestPeerCertificates",
    "Allow",
    "Msg",
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "digest",
    "size",
    "manifests",
    "platform",
    "architecture",
    "os",
    "urls",
    "annotations",
    "Description",
    "Documentation",
    "Types",
    "Socket",
    "ProtocolScheme",
    "Entrypoint",
    "WorkDir",
    "Network",
    "Type",
    "Linux",
    "AllowAllDevices",
    "Devices",
    "Env",
    "Args",
    "Mounts",
    "PropagatedMount",
    "Settable",
    "IpcHost",
    "PidHost",
    "rootfs",
    "diff_ids",
    "type",
    "username",
    "password",
    "auth",
    "serveraddress",
    "identitytoken",
    "registrytoken",
    "Addr",
    "TLSConfig",
    "InsecureSkipVerify",
    "CAFile",
    "CertFile",
    "KeyFile",
    "enabled",
    "capability",
    "Source",
    "Destination",
    "Privileges",
    "Data",
    "Timeout",
    "Label",
    "Labels",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(KEYS), any::<u64>()).prop_map(|(k, bits)| {
            // Go matches keys case-insensitively: vary the case.
            k.chars()
                .enumerate()
                .map(|(i, c)| {
                    if bits >> (i % 64) & 1 == 1 { c.to_ascii_lowercase() } else { c }
                })
                .collect()
        }),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9./:_-]{0,24}",
        Just(String::new()),
        Just("<&>\u{2028}\u{2029}é\"\\".to_owned()),
        Just("docker.volumedriver/1.0".to_owned()),
        Just("unix:///run/docker/plugins/p.sock".to_owned()),
        Just("sha256:".to_owned() + &"a".repeat(64)),
        Just("1970-01-01T00:00:00Z".to_owned()),
        any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (0i64..10).prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A selector byte and a JSON document.
fn selected_json() -> BoxedStrategy<Vec<u8>> {
    (any::<u8>(), json())
        .prop_map(|(sel, v)| {
            let mut out = vec![sel];
            out.extend(serde_json::to_vec(&v).expect("a JSON value writes"));
            out
        })
        .boxed()
}

// ---- grammars of the non-JSON targets ----

fn log_stream() -> BoxedStrategy<Vec<u8>> {
    use dockplug_protocol::log::entry::{LogEntry, PartialLogEntryMetadata};
    let entry = (
        prop::sample::select(vec!["stdout", "stderr", ""]),
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
        prop::option::of((any::<bool>(), "[0-9a-f]{0,64}", any::<i32>())),
    )
        .prop_map(|(source, time_nano, line, partial, meta)| {
            let mut e = LogEntry {
                source: source.to_owned(),
                time_nano,
                line,
                partial,
                ..LogEntry::default()
            };
            e.partial_log_metadata =
                meta.map(|(last, id, ordinal)| PartialLogEntryMetadata { last, id, ordinal });
            e
        });
    (any::<u8>(), prop::collection::vec(entry, 0..6), prop::collection::vec(mutation(), 0..3))
        .prop_map(|(step, entries, muts)| {
            let mut out = vec![step];
            for e in &entries {
                e.encode_frame(&mut out).expect("a small entry frames");
            }
            let body = apply(out.split_off(1), &muts);
            out.extend(body);
            out
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
    CharDevice,
}

fn path() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec![
        "rootfs",
        "rootfs",
        "rootfs",
        "ROOTFS",
        "bin",
        "etc",
        "a",
        "b",
        "..",
        ".",
        "",
        "sh",
        "config.json",
    ]);
    (any::<bool>(), prop::collection::vec(part, 1..5)).prop_map(|(abs, parts)| {
        let p = parts.join("/");
        if abs {
            format!("/{p}")
        } else {
            p
        }
    })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Kind::File),
        3 => Just(Kind::Dir),
        3 => path().prop_map(Kind::Symlink),
        2 => path().prop_map(Kind::Hardlink),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::CharDevice),
    ]
}

/// A tar (sometimes gzipped) with a valid config.json and generated entries.
fn context() -> BoxedStrategy<Vec<u8>> {
    let config = seeds("plugin_config").into_iter().next().expect("a config.json seed");
    (any::<bool>(), any::<bool>(), prop::collection::vec((path(), kind(), 0u32..0o7777), 0..10))
        .prop_map(move |(gzip, with_config, entries)| {
            let mut b = tar::Builder::new(Vec::new());
            if with_config {
                let mut h = tar::Header::new_gnu();
                h.set_size(config.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, "config.json", config.as_slice()).expect("tar in memory");
            }
            for (path, kind, mode) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_mode(mode);
                let data: Vec<u8> = match &kind {
                    Kind::File(d) => d.clone(),
                    _ => Vec::new(),
                };
                let (ty, link) = match kind {
                    Kind::File(_) => (tar::EntryType::Regular, None),
                    Kind::Dir => (tar::EntryType::Directory, None),
                    Kind::Symlink(t) => (tar::EntryType::Symlink, Some(t)),
                    Kind::Hardlink(t) => (tar::EntryType::Link, Some(t)),
                    Kind::Fifo => (tar::EntryType::Fifo, None),
                    Kind::CharDevice => (tar::EntryType::Char, None),
                };
                h.set_entry_type(ty);
                h.set_size(data.len() as u64);
                // Raw names: the builder's own checks would refuse the hostile ones.
                let name = path.as_bytes();
                if name.len() > 99 || link.as_ref().is_some_and(|l| l.len() > 99) {
                    continue;
                }
                if let Some(old) = h.as_old_mut().name.get_mut(..name.len()) {
                    old.copy_from_slice(name);
                }
                if let Some(l) = link {
                    h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
                }
                h.set_cksum();
                b.append(&h, data.as_slice()).expect("tar in memory");
            }
            let tar = b.into_inner().expect("tar in memory");
            if gzip {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).expect("gzip in memory");
                gz.finish().expect("gzip in memory")
            } else {
                tar
            }
        })
        .boxed()
}

fn addresses() -> BoxedStrategy<Vec<u8>> {
    let addr = prop_oneof![
        "(unix|UNIX|tcp|http|https|ftp)://[a-z0-9./:@\\[\\]?#-]{0,30}",
        "/[a-z/]{0,20}",
        "[a-z0-9:.]{0,20}",
    ];
    (0u8..3, addr, any::<bool>())
        .prop_map(|(kind, addr, tls)| {
            let mut out = vec![kind];
            if kind == 1 {
                let mut obj = serde_json::json!({ "Name": "p", "Addr": addr });
                if tls {
                    obj["TLSConfig"] = serde_json::json!({ "InsecureSkipVerify": true });
                }
                out.extend(obj.to_string().into_bytes());
            } else {
                out.extend(addr.into_bytes());
            }
            out
        })
        .boxed()
}

fn names() -> BoxedStrategy<Vec<u8>> {
    "(([a-zA-Z0-9.-]{1,12}(:[0-9]{1,5})?/)?([a-z0-9]+([._-]{1,3}[a-z0-9]+)?/){0,3}[a-zA-Z0-9._-]{1,12}(:[a-zA-Z0-9._-]{0,12})?(@sha256:[a-f0-9]{0,64})?)"
        .prop_map(String::into_bytes)
        .boxed()
}

fn auth_headers() -> BoxedStrategy<Vec<u8>> {
    use base64::Engine as _;
    (json(), any::<bool>(), any::<bool>())
        .prop_map(|(v, url, pad)| {
            let raw = serde_json::to_vec(&v).expect("a JSON value writes");
            let s = match (url, pad) {
                (true, true) => base64::engine::general_purpose::URL_SAFE.encode(raw),
                (true, false) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                (false, true) => base64::engine::general_purpose::STANDARD.encode(raw),
                (false, false) => base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw),
            };
            s.into_bytes()
        })
        .boxed()
}

fn grammar(name: &str) -> BoxedStrategy<Vec<u8>> {
    match name {
        "log_frames" => log_stream(),
        "build_context" => context(),
        "spec_file" => addresses(),
        "reference_name" => names(),
        "registry_auth" => auth_headers(),
        "plugin_config" => json().prop_map(|v| serde_json::to_vec(&v).expect("writes")).boxed(),
        _ => selected_json(),
    }
}

/// Runs target `name` over its corpus, then over generated cases within the bounds.
fn check(name: &str) {
    let t = target(name).unwrap_or_else(|| panic!("no target {name}"));
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "the corpus of {name} is empty");
    for seed in &seeds {
        (t.run)(seed);
    }
    let strategy = prop_oneof![
        4 => mutated(seeds),
        4 => grammar(name),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ];
    // Deterministic per target, so a failure in CI reproduces; set PROPTEST_RNG_SEED to
    // explore other cases locally.
    let seed: u64 = match std::env::var("PROPTEST_RNG_SEED") {
        Ok(s) => s.parse().expect("PROPTEST_RNG_SEED is a number"),
        Err(_) => name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)),
    };
    // In chunks, so that the budget stops generation too (one runner would draw all its
    // cases even once the budget is spent); each chunk's cases run in full, so a failure
    // is shrunk as usual.
    let started = Instant::now();
    let ran = std::cell::Cell::new(0u32);
    let mut chunk: u64 = 0;
    while ran.get() < CASES && started.elapsed() < BUDGET {
        let mut seed_bytes = [0u8; 32];
        let chunk_seed = seed ^ chunk.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (i, bytes) in seed_bytes.chunks_mut(8).enumerate() {
            bytes.copy_from_slice(&chunk_seed.rotate_left(i as u32 * 16).to_le_bytes());
        }
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let config = Config { cases: CHUNK, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&strategy, |input| {
            if started.elapsed() < BUDGET {
                ran.set(ran.get() + 1);
                (t.run)(&input);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("target {name} (chunk {chunk}): {e}");
        }
        chunk += 1;
    }
    let ran = ran.get();
    eprintln!("fuzz property {name}: {ran} cases in {:.1?}", started.elapsed());
    assert!(ran > 0, "no case of {name} ran");
}

macro_rules! properties {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check(stringify!($name)); } )*

        /// Every target has a property test here.
        #[test]
        fn every_target_is_checked() {
            let checked = [$(stringify!($name)),*];
            for t in crate::TARGETS {
                assert!(checked.contains(&t.name), "target {} has no property test", t.name);
            }
        }
    };
}

properties!(
    spec_file,
    plugin_config,
    activate_bodies,
    volume_bodies,
    network_bodies,
    ipam_bodies,
    authz_bodies,
    log_bodies,
    secrets_bodies,
    graph_bodies,
    log_frames,
    build_context,
    registry_manifest,
    registry_challenge,
    registry_auth,
    reference_name,
    engine_query,
);
