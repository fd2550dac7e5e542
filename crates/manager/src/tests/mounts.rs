//! Mount handling (needs root, as in CI): the propagated mount is a shared mount while a
//! plugin is enabled, and removing one plugin never touches another plugin's mounts
//! (Moby's `TestManagerWithPluginMounts`).

use std::path::Path;

use super::Fixture;
use crate::manager::Manager;
use crate::testexec::TestExecutor;

fn mount_points_under(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(std::path::PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Unmounts everything the test mounted, even when it fails half-way.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        crate::mounts::unmount_all_under(self.0);
    }
}

#[tokio::test]
async fn removing_a_plugin_leaves_other_plugins_mounts_alone() {
    assert!(nix::unistd::geteuid().is_root(), "the mount tests need root");
    let tmp = tempfile::Builder::new().prefix("dpm").tempdir_in("/tmp").unwrap();
    let _cleanup = Cleanup(tmp.path());
    let mut config = Fixture::config(tmp.path());
    config.share_propagated_mounts = true;
    let exec = TestExecutor::new();
    let m = Manager::new(config, exec).await.unwrap();
    let ctx = || std::io::Cursor::new(super::context(super::VOLUME_CONFIG, false));
    let p1 = m.create_from_context(ctx(), "one").await.unwrap();
    let p2 = m.create_from_context(ctx(), "two").await.unwrap();
    m.enable("one", None).await.unwrap();
    m.enable("two", None).await.unwrap();
    let root = tmp.path().join("root");
    let pm1 = root.join(&p1.id).join("propagated-mount");
    let pm2 = root.join(&p2.id).join("propagated-mount");
    assert!(mount_points_under(&root).contains(&pm1), "propagated mount of one is a mount");
    assert!(mount_points_under(&root).contains(&pm2));
    // A mount the second plugin made (as a volume plugin would).
    let vol = root.join(&p2.id).join("tmpfs");
    std::fs::create_dir(&vol).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &vol,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    m.remove("one", true).await.unwrap();
    let left = mount_points_under(&root);
    assert!(!left.iter().any(|p| p.starts_with(root.join(&p1.id))), "{left:?}");
    assert!(left.contains(&vol), "the other plugin's tmpfs is still mounted: {left:?}");
    assert!(left.contains(&pm2));
    // Disabling takes the plugin's mounts down too (Moby's exit handling).
    m.disable("two", true).await.unwrap();
    assert!(mount_points_under(&root).is_empty(), "{:?}", mount_points_under(&root));
    m.enable("two", None).await.unwrap();
    assert!(mount_points_under(&root).contains(&pm2));
    m.shutdown().await;
    assert!(mount_points_under(&root).is_empty());
    m.remove("two", true).await.unwrap();
    assert!(!root.join(&p2.id).exists());
}
