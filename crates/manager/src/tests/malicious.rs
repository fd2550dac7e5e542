//! A corpus of hostile build contexts: each is refused with its typed error, and nothing is
//! left behind (no plugin, no staging directory, no partial blob).

use std::fs;

use super::{Fixture, VOLUME_CONFIG};
use crate::context::ContextError;
use crate::ManagerError;

struct Entry<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    link: &'a [u8],
    data: &'a [u8],
}

fn e<'a>(name: &'a str, kind: tar::EntryType, link: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry { name: name.as_bytes(), kind, link: link.as_bytes(), data }
}

/// A tar written header by header, bypassing the `tar` crate's own path checks.
fn raw_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for en in entries {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..en.name.len()].copy_from_slice(en.name);
            old.linkname[..en.link.len()].copy_from_slice(en.link);
        }
        h.set_entry_type(en.kind);
        h.set_mode(0o644);
        h.set_size(en.data.len() as u64);
        h.set_cksum();
        b.append(&h, en.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn with_config<'a>(mut entries: Vec<Entry<'a>>) -> Vec<Entry<'a>> {
    entries.insert(0, e("config.json", tar::EntryType::Regular, "", VOLUME_CONFIG.as_bytes()));
    entries.insert(1, e("rootfs/", tar::EntryType::Directory, "", b""));
    entries
}

/// What, the archive, and the expected error.
type Case = (&'static str, Vec<u8>, fn(&ContextError) -> bool);

use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

#[tokio::test]
async fn hostile_contexts_are_refused_and_leave_nothing() {
    let f = Fixture::new().await;
    let outside = f.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let outside_s = outside.to_str().unwrap().to_owned();
    let cases: Vec<Case> = vec![
        ("dotdot file", raw_tar(&with_config(vec![e("rootfs/../../escape", Regular, "", b"x")])), |e| matches!(e, ContextError::ParentTraversal { .. })),
        ("dotdot config", raw_tar(&with_config(vec![e("../config.json", Regular, "", b"{}")])), |e| matches!(e, ContextError::ParentTraversal { .. })),
        ("absolute", raw_tar(&with_config(vec![e("/rootfs/abs", Regular, "", b"x")])), |e| matches!(e, ContextError::AbsolutePath { .. })),
        ("symlink climbs out", raw_tar(&with_config(vec![e("rootfs/link", Symlink, "../../../etc", b"")])), |e| matches!(e, ContextError::SymlinkEscape { .. })),
        ("nested symlink climbs out", raw_tar(&with_config(vec![e("rootfs/a/", Directory, "", b""), e("rootfs/a/b", Symlink, "../..", b"")])), |e| matches!(e, ContextError::SymlinkEscape { .. })),
        ("write through symlink", raw_tar(&with_config(vec![e("rootfs/evil", Symlink, "/", b""), e("rootfs/evil/owned", Regular, "", b"x")])), |e| matches!(e, ContextError::ThroughLink { .. })),
        ("dir through symlink", raw_tar(&with_config(vec![e("rootfs/evil", Symlink, ".", b""), e("rootfs/evil/d/", Directory, "", b"")])), |e| matches!(e, ContextError::ThroughLink { .. })),
        ("hardlink absolute", raw_tar(&with_config(vec![e("rootfs/h", Link, "/etc/passwd", b"")])), |e| matches!(e, ContextError::HardlinkEscape { .. })),
        ("hardlink dotdot", raw_tar(&with_config(vec![e("rootfs/h", Link, "rootfs/../../etc/passwd", b"")])), |e| matches!(e, ContextError::HardlinkEscape { .. })),
        ("hardlink outside rootfs", raw_tar(&with_config(vec![e("rootfs/h", Link, "config.json", b"")])), |e| matches!(e, ContextError::HardlinkEscape { .. })),
        ("hardlink through symlink", raw_tar(&with_config(vec![e("rootfs/evil", Symlink, "/etc", b""), e("rootfs/h", Link, "rootfs/evil/passwd", b"")])), |e| matches!(e, ContextError::HardlinkEscape { .. })),
        ("hardlink to missing", raw_tar(&with_config(vec![e("rootfs/h", Link, "rootfs/nothing", b"")])), |e| matches!(e, ContextError::HardlinkEscape { .. })),
        ("char device", raw_tar(&with_config(vec![e("rootfs/mem", Char, "", b"")])), |e| matches!(e, ContextError::DeviceNode { .. })),
        ("block device", raw_tar(&with_config(vec![e("rootfs/sda", Block, "", b"")])), |e| matches!(e, ContextError::DeviceNode { .. })),
        ("fifo", raw_tar(&with_config(vec![e("rootfs/fifo", Fifo, "", b"")])), |e| matches!(e, ContextError::Unsupported { .. })),
        ("no rootfs", raw_tar(&[e("config.json", Regular, "", VOLUME_CONFIG.as_bytes())]), |e| matches!(e, ContextError::NoRootfs)),
        ("no config", raw_tar(&[e("rootfs/", Directory, "", b""), e("rootfs/f", Regular, "", b"x")]), |e| matches!(e, ContextError::ConfigNotFound)),
        ("garbage", b"this is not a tar archive at all, just text padding it out to look like a header..........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................".to_vec(), |e| matches!(e, ContextError::Read { .. })),
        ("truncated gzip", {
            let full = super::context(VOLUME_CONFIG, true);
            full[..full.len() / 2].to_vec()
        }, |e| matches!(e, ContextError::Read { .. })),
    ];
    let _ = outside_s;
    for (what, data, check) in cases {
        let err = f.m.create_from_context(std::io::Cursor::new(data), "victim").await.unwrap_err();
        match &err {
            ManagerError::Context(c) => assert!(check(c), "{what}: wrong error {c:?}"),
            other => panic!("{what}: not a context error: {other:?}"),
        }
        assert_eq!(err.http_status(), 400, "{what}");
        assert_eq!(fs::read_dir(f.root().join("tmp")).unwrap().count(), 0, "{what}: staging left");
        assert_eq!(
            fs::read_dir(f.root().join("storage/ingest")).unwrap().count(),
            0,
            "{what}: ingest left"
        );
        assert!(f.m.blobs().list().unwrap().is_empty(), "{what}: blob committed");
        let dirs: Vec<_> =
            fs::read_dir(f.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(dirs.len(), 2, "{what}: {dirs:?}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{what}: wrote outside");
    }
    // Oversized config.json (the header claims 5 MiB).
    let mut h = tar::Header::new_gnu();
    h.set_path("config.json").unwrap();
    h.set_size(5 << 20);
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend(std::iter::repeat_n(0u8, 1024));
    let err = f.m.create_from_context(std::io::Cursor::new(data), "victim").await.unwrap_err();
    assert!(matches!(err, ManagerError::Context(ContextError::ConfigTooLarge)), "{err:?}");
    // Invalid config JSON.
    let data = raw_tar(&[
        e("config.json", Regular, "", b"{\"Entrypoint\": 5}"),
        e("rootfs/", Directory, "", b""),
    ]);
    let err = f.m.create_from_context(std::io::Cursor::new(data), "victim").await.unwrap_err();
    assert!(matches!(err, ManagerError::InvalidConfig(_)), "{err:?}");
    assert_eq!(fs::read_dir(f.root().join("tmp")).unwrap().count(), 0);
    // A legitimate absolute symlink inside the rootfs is fine (rooted at the rootfs).
    let ok = raw_tar(&with_config(vec![
        e("rootfs/bin/", Directory, "", b""),
        e("rootfs/bin/sh", Symlink, "/bin/busybox", b""),
    ]));
    f.m.create_from_context(std::io::Cursor::new(ok), "fine").await.unwrap();
}
