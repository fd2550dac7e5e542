//! dockerd as a real client of dockplug-sdk: a private dockerd uses localvol as a v1 plugin
//! (found through a spec file) and as a packaged v2 plugin (`docker plugin create` +
//! `enable`), creating, using from containers, listing, inspecting and removing volumes.
//!
//! One dockerd serves every step, to keep the suite fast.

use std::path::Path;
use std::time::Instant;

use dockplug::protocol::common::DEFAULT_SPEC_DIRS;

use crate::support::dockerd::Dockerd;
use crate::support::localvol::{self, LocalVol};

const IMAGE: &str = "dockplug-it/busybox:latest";

#[test]
fn dockerd_uses_localvol_as_v1_and_v2_plugin() {
    crate::support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let dockerd = Dockerd::start(&tmp.path().join("dockerd"));
    dockerd.import_busybox(IMAGE);
    eprintln!("dockerd up and image imported in {:.1?}", started.elapsed());

    v1_plugin(&dockerd, &tmp.path().join("v1"));
    eprintln!("v1 steps done at {:.1?}", started.elapsed());
    v2_plugin(&dockerd, &tmp.path().join("v2"));
    eprintln!("v2 steps done at {:.1?}", started.elapsed());
}

/// localvol as a v1 plugin: its socket in a temp dir, a uniquely named spec file in Moby's
/// spec directory (the one place dockerd 20.10 looks), removed when localvol stops.
fn v1_plugin(dockerd: &Dockerd, dir: &Path) {
    let name = format!("dockplug-it-{}", std::process::id());
    let spec = Path::new(DEFAULT_SPEC_DIRS[0]).join(&name);
    let t = Instant::now();
    let lv = LocalVol::start(dir, Some(&spec));
    eprintln!("localvol started in {:.1?}", t.elapsed());
    assert!(spec.with_extension("spec").is_file(), "localvol wrote no spec file");

    dockerd.ok(&["volume", "create", "-d", &name, "-o", "mode=0777", "itvol"]);
    let ls = dockerd.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(ls.lines().any(|l| l == format!("{name} itvol")), "volume ls: {ls}");
    let mountpoint = dockerd.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "itvol"]);
    assert_eq!(Path::new(&mountpoint), lv.root.join("volumes/itvol"));
    let status = dockerd.ok(&["volume", "inspect", "--format", "{{json .Status}}", "itvol"]);
    assert_eq!(status, r#"{"mounts":0}"#);

    // One container writes, a second one reads it back.
    dockerd.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "itvol:/vol",
        IMAGE,
        "/bin/sh",
        "-c",
        "echo written-by-the-first-container > /vol/greeting",
    ]);
    assert_eq!(
        std::fs::read_to_string(lv.root.join("volumes/itvol/greeting")).unwrap(),
        "written-by-the-first-container\n"
    );
    let read = dockerd.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "itvol:/vol",
        IMAGE,
        "/bin/cat",
        "/vol/greeting",
    ]);
    assert_eq!(read, "written-by-the-first-container");
    // Every Mount had its Unmount.
    let status = dockerd.ok(&["volume", "inspect", "--format", "{{json .Status}}", "itvol"]);
    assert_eq!(status, r#"{"mounts":0}"#);

    dockerd.ok(&["volume", "rm", "itvol"]);
    assert!(!lv.root.join("volumes/itvol").exists(), "volume rm left the directory");
    let ls = dockerd.ok(&["volume", "ls", "--quiet"]);
    assert!(!ls.lines().any(|l| l == "itvol"), "volume ls after rm: {ls}");
    let t = Instant::now();
    drop(lv);
    eprintln!("localvol stopped in {:.1?}", t.elapsed());
    assert!(!spec.with_extension("spec").exists(), "localvol left its spec file");
}

/// The packaged localvol as a v2 plugin: `docker plugin create` + `enable`, a volume through
/// it used by a container, then everything removed.
fn v2_plugin(dockerd: &Dockerd, dir: &Path) {
    let plugin = format!("dockplug-it/localvol:{}", std::process::id());
    let pkg = localvol::packaged(&dir.join("localvol-plugin"));
    dockerd.ok(&["plugin", "create", &plugin, pkg.to_str().unwrap()]);
    let enabled = dockerd.docker(&["plugin", "enable", &plugin]);
    if !enabled.status.success() {
        let _ = dockerd.docker(&["plugin", "rm", "--force", &plugin]);
        panic!(
            "docker plugin enable failed: {}\n{}",
            String::from_utf8_lossy(&enabled.stderr),
            dockerd.daemon.log_tail()
        );
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dockerd.ok(&["volume", "create", "-d", &plugin, "v2vol"]);
        let driver = dockerd.ok(&["volume", "inspect", "--format", "{{.Driver}}", "v2vol"]);
        assert_eq!(driver, plugin);
        dockerd.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v2vol:/vol",
            IMAGE,
            "/bin/sh",
            "-c",
            "echo through-v2 > /vol/f",
        ]);
        let read = dockerd.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v2vol:/vol",
            IMAGE,
            "/bin/cat",
            "/vol/f",
        ]);
        assert_eq!(read, "through-v2");
        dockerd.ok(&["volume", "rm", "v2vol"]);
    }));
    let _ = dockerd.docker(&["plugin", "disable", "--force", &plugin]);
    let removed = dockerd.docker(&["plugin", "rm", "--force", &plugin]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(removed.status.success(), "plugin rm: {}", String::from_utf8_lossy(&removed.stderr));
}
