//! The offline stand-in for `cargo deny check advisories`: yanked and outdated crates, as far
//! as this machine can see without the network.
//!
//! The RustSec database cannot be fetched here, but cargo's own copy of the crates.io index
//! can be read: every time cargo resolves, it caches the index entries of the crates it
//! looked at in `$CARGO_HOME/registry/index/<registry>/.cache/` (one file per crate: a
//! header, then pairs of `version\0json\0`, each JSON line carrying `vers` and `yanked`).
//! For each crates.io package locked in `Cargo.lock`, this report says whether the locked
//! version is yanked, and whether a newer release exists, semver-compatible (`cargo update`
//! would take it) or not. The cache is as fresh as cargo's last resolution on this machine;
//! the report says how many locked crates it could not see. It never fails the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// A version as cargo orders releases (pre-releases are never "newer" here).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    nums: (u64, u64, u64),
    pre: bool,
    text: String,
}

fn parse_version(v: &str) -> Option<Version> {
    let core = v.split('+').next()?;
    let (nums, pre) = match core.split_once('-') {
        Some((n, _)) => (n, true),
        None => (core, false),
    };
    let mut it = nums.split('.').map(|p| p.parse::<u64>().ok());
    let nums = (it.next()??, it.next()??, it.next()??);
    Some(Version { nums, pre, text: v.to_owned() })
}

/// Whether `newer` is semver-compatible with `locked` (same major, or same minor for 0.x).
fn compatible(locked: &Version, newer: &Version) -> bool {
    match locked.nums {
        (0, 0, p) => newer.nums == (0, 0, p),
        (0, m, _) => newer.nums.0 == 0 && newer.nums.1 == m,
        (major, _, _) => newer.nums.0 == major,
    }
}

/// `(name, version)` of every crates.io package in the lock file.
fn locked(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                let rest = l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_owned())
            })
        };
        if let (Some(name), Some(version), Some(CRATES_IO)) =
            (field("name"), field("version"), field("source").as_deref())
        {
            out.push((name, version));
        }
    }
    out
}

fn cache_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(index) = home.map(|h| h.join("registry/index")) else { return Vec::new() };
    std::fs::read_dir(index)
        .map(|rd| rd.flatten().map(|e| e.path().join(".cache")).filter(|p| p.is_dir()).collect())
        .unwrap_or_default()
}

/// The cache file of crate `name` (crates.io's index layout).
fn cache_path(dir: &Path, name: &str) -> PathBuf {
    let n = name.to_lowercase();
    match n.len() {
        1 => dir.join("1").join(&n),
        2 => dir.join("2").join(&n),
        3 => dir.join("3").join(&n[..1]).join(&n),
        _ => dir.join(&n[..2]).join(&n[2..4]).join(&n),
    }
}

/// Every release in a cache file: version and whether it is yanked.
fn releases(file: &[u8]) -> Vec<(Version, bool)> {
    // Header: cache version (1 byte), index format version (4 bytes), revision, NUL.
    let Some(body) = file.get(5..) else { return Vec::new() };
    let mut parts = body.split(|&b| b == 0);
    let _revision = parts.next();
    let mut out = Vec::new();
    while let (Some(vers), Some(json)) = (parts.next(), parts.next()) {
        let Some(v) = std::str::from_utf8(vers).ok().and_then(parse_version) else { continue };
        let json = String::from_utf8_lossy(json);
        let yanked = json.contains("\"yanked\":true") || json.contains("\"yanked\": true");
        out.push((v, yanked));
    }
    out
}

/// Prints the report for the workspace's `Cargo.lock`. Never fails.
pub fn report(workspace: &Path) {
    println!("xtask: ==> advisories, offline (yanked and outdated crates in Cargo.lock)");
    let lock = match std::fs::read_to_string(workspace.join("Cargo.lock")) {
        Ok(l) => l,
        Err(e) => {
            println!("xtask: <== advisories: cannot read Cargo.lock: {e}");
            return;
        }
    };
    let dirs = cache_dirs();
    let packages = locked(&lock);
    let (mut yanked, mut unseen) = (Vec::new(), 0usize);
    // `cargo update` would take these (semver-compatible) / these need a manifest change.
    let (mut compatible_updates, mut major_updates) = (BTreeMap::new(), BTreeMap::new());
    for (name, version) in &packages {
        let Some(locked_v) = parse_version(version) else { continue };
        let Some(file) = dirs.iter().find_map(|d| std::fs::read(cache_path(d, name)).ok()) else {
            unseen += 1;
            continue;
        };
        let all = releases(&file);
        if all.iter().any(|(v, y)| *y && v.text == *version) {
            yanked.push(format!("{name} {version}"));
        }
        let live = || all.iter().filter(|(v, y)| !y && !v.pre && *v > locked_v).map(|(v, _)| v);
        if let Some(c) = live().filter(|v| compatible(&locked_v, v)).max() {
            compatible_updates.insert(format!("{name} {version}"), c.text.clone());
        }
        if let Some(n) = live().filter(|v| !compatible(&locked_v, v)).max() {
            major_updates.insert(format!("{name} {version}"), n.text.clone());
        }
    }
    println!(
        "xtask: {} crates.io packages locked; {} not in the local index cache (never resolved \
         on this machine)",
        packages.len(),
        unseen
    );
    if yanked.is_empty() {
        println!("xtask: yanked: none");
    } else {
        println!("xtask: YANKED ({}): {}", yanked.len(), yanked.join(", "));
    }
    let join = |m: &BTreeMap<String, String>| {
        m.iter().map(|(k, v)| format!("{k} -> {v}")).collect::<Vec<_>>().join(", ")
    };
    println!(
        "xtask: outdated, semver-compatible (`cargo update` takes them) ({}): {}",
        compatible_updates.len(),
        if compatible_updates.is_empty() { "none".to_owned() } else { join(&compatible_updates) }
    );
    println!(
        "xtask: outdated, newer major release ({}): {}",
        major_updates.len(),
        if major_updates.is_empty() { "none".to_owned() } else { join(&major_updates) }
    );
    println!("xtask: <== advisories: report only (RustSec itself needs the network)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_compatibility() {
        let v = |s| parse_version(s).unwrap();
        assert!(v("1.2.10") > v("1.2.9"));
        assert!(v("1.0.0-rc.1").pre);
        assert!(compatible(&v("1.2.3"), &v("1.9.0")));
        assert!(!compatible(&v("0.2.3"), &v("0.3.0")));
        assert!(compatible(&v("0.2.3"), &v("0.2.9")));
        assert!(!compatible(&v("0.0.3"), &v("0.0.4")));
    }

    #[test]
    fn lock_file_and_cache_entries() {
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \
                    \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\n\
                    name = \"ours\"\nversion = \"0.1.0\"\n";
        assert_eq!(locked(lock), vec![("a".to_owned(), "1.0.0".to_owned())]);
        let mut file = vec![3, 2, 0, 0, 0];
        file.extend_from_slice(b"rev\0");
        file.extend_from_slice(b"1.0.0\0{\"vers\":\"1.0.0\",\"yanked\":true}\0");
        file.extend_from_slice(b"1.1.0\0{\"vers\":\"1.1.0\",\"yanked\":false}\0");
        let r = releases(&file);
        assert_eq!(r.len(), 2);
        assert!(r[0].1 && !r[1].1);
        assert_eq!(cache_path(Path::new("/c"), "Serde"), PathBuf::from("/c/se/rd/serde"));
        assert_eq!(cache_path(Path::new("/c"), "syn"), PathBuf::from("/c/3/s/syn"));
    }
}
