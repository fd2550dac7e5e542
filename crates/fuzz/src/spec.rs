//! v1 discovery: a spec file as anyone with write access to a plugin directory may drop it.
//!
//! The first byte picks the kind (`p.spec`, `p.json`, or a bare address string); the rest is
//! the content. The file goes through [`LocalRegistry::plugin`] exactly as the daemon's
//! lookup reads it. Invariants: an address we accept re-parses to itself, a unix address is
//! absolute, a TCP address has a host, and `scan` lists a name exactly when `plugin` finds a
//! file for it.

use std::cell::RefCell;
use std::path::Path;

use dockplug_v1::{Address, LocalRegistry};

use crate::select;

thread_local! {
    /// One scratch directory per thread, reused by every run (created on first use).
    static DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

fn check_address(addr: &Address) {
    let again: Address = addr.as_str().parse().expect("an accepted address re-parses");
    assert_eq!(&again, addr, "address does not round-trip");
    match (addr.unix_path(), addr.tcp_host_port()) {
        (Some(p), None) => assert!(p.is_absolute(), "relative unix socket accepted: {p:?}"),
        (None, Some((host, _))) => assert!(!host.is_empty(), "empty TCP host accepted"),
        other => panic!("an address is exactly one of unix or tcp, got {other:?}"),
    }
    let _ = (addr.host_header(), addr.is_tls());
}

fn with_dir(f: impl FnOnce(&Path)) {
    DIR.with(|d| {
        let mut d = d.borrow_mut();
        let dir = d.get_or_insert_with(|| tempfile::tempdir().expect("a scratch directory"));
        f(dir.path());
    });
}

/// The target: see the module documentation.
pub fn spec_file(data: &[u8]) {
    let (kind, content) = select(data, 3);
    if kind == 2 {
        if let Ok(addr) = String::from_utf8_lossy(content).parse::<Address>() {
            check_address(&addr);
        }
        return;
    }
    with_dir(|dir| {
        let sockets = dir.join("sockets");
        let specs = dir.join("specs");
        for d in [&sockets, &specs] {
            std::fs::create_dir_all(d).expect("scratch directories");
        }
        let file = specs.join(if kind == 0 { "p.spec" } else { "p.json" });
        let other = specs.join(if kind == 0 { "p.json" } else { "p.spec" });
        let _ = std::fs::remove_file(&other);
        std::fs::write(&file, content).expect("write the spec file");
        let registry = LocalRegistry::with_dirs([&sockets], [&specs]);
        let found = registry.plugin("p");
        if let Ok(spec) = &found {
            check_address(&spec.addr);
            assert_eq!(spec.name, "p");
            assert_eq!(spec.source, file);
        }
        let listed = registry.scan().expect("scan of a readable directory");
        // A spec file that exists is listed, whether or not its content is valid (a broken
        // file is an error of `plugin`, never a fall-through).
        assert_eq!(listed, vec!["p".to_owned()], "scan disagrees with the file present");
    });
}
