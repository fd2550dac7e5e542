//! Discovery: Moby's `TestFileSpecPlugin`, `TestFileJSONSpecPlugin*`, `TestLocalSocket`,
//! `TestScan*`, precedence, and the rules we fixed.

use std::os::unix::fs::symlink;
use std::path::Path;

use dockplug_v1::{DiscoveryError, LocalRegistry, TlsOptions};

use super::tempdir;

fn registry(root: &Path) -> LocalRegistry {
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    LocalRegistry::with_dirs([root.join("run")], [root.join("etc"), root.join("lib")])
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn spec_files_flat_and_in_subdirectories() {
    let dir = tempdir();
    let r = registry(dir.path());
    let cases = [
        ("echo", "etc/echo.spec", "unix:///tmp/echo.sock"),
        ("foo", "etc/foo/foo.spec", "tcp://localhost:8080"),
        ("bar", "lib/bar.spec", "  https://127.0.0.1:8443/some/path\n"),
    ];
    for (name, file, text) in cases {
        write(&dir.path().join(file), text);
        let p = r.plugin(name).unwrap();
        assert_eq!(p.name, name);
        assert_eq!(p.addr.as_str(), text.trim(), "address kept verbatim");
        assert_eq!(p.tls, Some(TlsOptions::insecure()));
        assert_eq!(p.source, dir.path().join(file));
    }
}

#[test]
fn json_spec_files() {
    let dir = tempdir();
    let r = registry(dir.path());
    write(
        &dir.path().join("etc/example.json"),
        r#"{"Name":"plugin-example","Addr":"https://example.com/docker/plugin",
            "TLSConfig":{"CAFile":"/usr/shared/docker/certs/example-ca.pem",
            "CertFile":"/usr/shared/docker/certs/example-cert.pem",
            "KeyFile":"/usr/shared/docker/certs/example-key.pem"}}"#,
    );
    let p = r.plugin("example").unwrap();
    assert_eq!(p.name, "example", "the name comes from the file, not the Name key");
    assert_eq!(p.addr.as_str(), "https://example.com/docker/plugin");
    let tls = p.tls.unwrap();
    assert_eq!(tls.ca_file.unwrap(), Path::new("/usr/shared/docker/certs/example-ca.pem"));
    assert_eq!(tls.cert_file.unwrap(), Path::new("/usr/shared/docker/certs/example-cert.pem"));
    assert_eq!(tls.key_file.unwrap(), Path::new("/usr/shared/docker/certs/example-key.pem"));
    assert!(!tls.insecure_skip_verify);

    write(&dir.path().join("etc/notls/notls.json"), r#"{"Addr":"tcp://127.0.0.1:9"}"#);
    let p = r.plugin("notls").unwrap();
    assert_eq!(p.tls, None, "no TLSConfig leaves TLS unset");
}

#[tokio::test]
async fn local_sockets_flat_and_in_subdirectories() {
    let dir = tempdir();
    let r = registry(dir.path());
    for (name, rel) in [("echo", "run/echo.sock"), ("deep", "run/deep/deep.sock")] {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _l = tokio::net::UnixListener::bind(&path).unwrap();
        let p = r.plugin(name).unwrap();
        assert_eq!(p.addr.as_str(), format!("unix://{}", path.display()));
        assert_eq!(p.tls, Some(TlsOptions::insecure()));
        assert_eq!(r.plugin(name).unwrap(), p, "two lookups agree");
    }
}

#[tokio::test]
async fn precedence_is_mobys() {
    let dir = tempdir();
    let r = registry(dir.path());
    let root = dir.path();
    // Spec in a later directory loses to any file in an earlier one, .spec beats .json.
    write(&root.join("lib/p.spec"), "tcp://127.0.0.1:3");
    write(&root.join("etc/p.json"), r#"{"Addr":"tcp://127.0.0.1:2"}"#);
    assert_eq!(r.plugin("p").unwrap().addr.as_str(), "tcp://127.0.0.1:2");
    write(&root.join("etc/p/p.spec"), "tcp://127.0.0.1:1");
    assert_eq!(r.plugin("p").unwrap().addr.as_str(), "tcp://127.0.0.1:1");
    write(&root.join("etc/p.spec"), "tcp://127.0.0.1:0");
    assert_eq!(r.plugin("p").unwrap().addr.as_str(), "tcp://127.0.0.1:0");
    // A socket beats every spec file.
    let _l = tokio::net::UnixListener::bind(root.join("run/p.sock")).unwrap();
    assert!(r.plugin("p").unwrap().addr.as_str().starts_with("unix://"));
    // A regular file named .sock is not a socket.
    write(&root.join("run/q.sock"), "not a socket");
    write(&root.join("etc/q.spec"), "tcp://127.0.0.1:5");
    assert_eq!(r.plugin("q").unwrap().addr.as_str(), "tcp://127.0.0.1:5");
}

#[test]
fn not_found_is_typed_with_mobys_text() {
    let dir = tempdir();
    let r = registry(dir.path());
    let e = r.plugin("nope").unwrap_err();
    assert!(matches!(e, DiscoveryError::NotFound { .. }));
    assert_eq!(e.to_string(), "could not find plugin nope in v1 plugin registry: plugin not found");
    for bad in ["", "../etc", "a/b", ".."] {
        assert!(matches!(r.plugin(bad), Err(DiscoveryError::InvalidName { .. })), "{bad:?}");
    }
}

#[test]
fn bad_addresses_name_the_file() {
    let dir = tempdir();
    let r = registry(dir.path());
    for (name, text) in [
        ("noscheme", "localhost:8080"),
        ("ftp", "ftp://example.com"),
        ("relative", "unix://var/run/x.sock"),
        ("empty", ""),
    ] {
        let file = dir.path().join(format!("etc/{name}.spec"));
        write(&file, text);
        match r.plugin(name) {
            Err(DiscoveryError::BadAddress { path, .. }) => assert_eq!(path, file),
            other => panic!("{name}: {other:?}"),
        }
        assert!(r.plugin(name).unwrap_err().to_string().contains(&file.display().to_string()));
    }
    let file = dir.path().join("etc/j.json");
    write(&file, r#"{"Addr": 7}"#);
    assert!(matches!(r.plugin("j"), Err(DiscoveryError::BadJson { path, .. }) if path == file));
    write(&dir.path().join("etc/k.json"), r#"{"TLSConfig": {}}"#);
    assert!(matches!(r.plugin("k"), Err(DiscoveryError::BadAddress { .. })));
}

#[test]
fn scan_empty_and_one() {
    let dir = tempdir();
    let r = registry(dir.path());
    assert!(r.scan().unwrap().is_empty());
    write(&dir.path().join("etc/echo.spec"), "tcp://127.0.0.1:1");
    assert_eq!(r.scan().unwrap(), ["echo"]);
    // Missing directories are fine.
    let r = LocalRegistry::with_dirs([dir.path().join("nope")], [dir.path().join("nada")]);
    assert!(r.scan().unwrap().is_empty());
}

#[tokio::test]
async fn scan_ignores_non_plugins_and_lists_each_name_once() {
    let dir = tempdir();
    let r = registry(dir.path());
    let root = dir.path();
    std::fs::create_dir_all(root.join("run/not-a-plugin")).unwrap();
    let _a = tokio::net::UnixListener::bind(root.join("run/not-a-plugin/foo.sock")).unwrap();
    write(&root.join("etc/not-a-plugin/foo.spec"), "tcp://127.0.0.1:1");
    write(&root.join("etc/listed/listed.spec"), "tcp://127.0.0.1:1");
    std::fs::create_dir_all(root.join("etc/dir.spec")).unwrap();
    write(&root.join("etc/readme.txt"), "x");
    // The same name as a socket and in both spec directories.
    let _b = tokio::net::UnixListener::bind(root.join("run/dup.sock")).unwrap();
    write(&root.join("etc/dup.spec"), "tcp://127.0.0.1:1");
    write(&root.join("lib/dup.json"), r#"{"Addr":"tcp://127.0.0.1:1"}"#);
    // A symlink to a socket is listed, as `plugin()` resolves it (Moby's scan skips it).
    let _c = tokio::net::UnixListener::bind(root.join("real.sock")).unwrap();
    symlink(root.join("real.sock"), root.join("run/linked.sock")).unwrap();
    let names = r.scan().unwrap();
    assert_eq!(names, ["dup", "linked", "listed"]);
    for n in &names {
        r.plugin(n).unwrap();
    }
}
