//! A plugin build context (the body of `POST /plugins/create`): tar or tar.gz, extracted by
//! the manager's public `create_from_context`.
//!
//! Each run gets a fresh sandbox: `<sandbox>/a/b/root` is the manager's root, `<sandbox>/x`
//! its exec root, `<sandbox>/outside` an empty canary directory. Relative escapes (`..`,
//! links) would land in the sandbox, so the invariant is checked by listing it afterwards:
//! nothing exists there but what the manager created itself, the canary stays empty, a
//! refused context leaves nothing in `<root>/tmp`, and a created plugin can be inspected and
//! has every symlink of its rootfs pointing inside it. An uncompressed context whose tar
//! header checksums are wrong runs a second time with them fixed, so that libFuzzer's
//! mutations of names and links get past the checksum.

use std::io::Cursor;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use dockplug_manager::{
    exit_channel, Executor, ExecutorError, ExitReceiver, ExitSender, Manager, ManagerConfig,
    PluginStdio, Signal,
};
use oci_spec::runtime::Spec;

/// An executor that never runs anything: creating a plugin does not start it.
struct NoExecutor {
    _exits: ExitSender,
    rx: Mutex<Option<ExitReceiver>>,
}

impl Executor for NoExecutor {
    async fn create(&self, id: &str, _: Spec, _: PluginStdio) -> Result<(), ExecutorError> {
        Err(ExecutorError::backend(id, "create", "the fuzz executor runs nothing"))
    }
    async fn restore(&self, _: &str, _: PluginStdio) -> Result<bool, ExecutorError> {
        Ok(false)
    }
    async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
        Err(ExecutorError::NotFound { id: id.to_owned() })
    }
    async fn signal(&self, id: &str, _: Signal) -> Result<(), ExecutorError> {
        Err(ExecutorError::NotFound { id: id.to_owned() })
    }
    fn take_exits(&self) -> Option<ExitReceiver> {
        self.rx.lock().ok()?.take()
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every path under `dir` (not following links).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        out.push(p.clone());
        if is_dir {
            walk(&p, out);
        }
    }
}

/// Whether `target` of a link at `link` (relative to the rootfs) stays inside it.
fn stays_inside(link: &Path, target: &Path) -> bool {
    let mut depth: i64 = if target.is_absolute() {
        0
    } else {
        link.parent().map_or(0, |p| p.components().count() as i64)
    };
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn check_rootfs(rootfs: &Path) {
    let mut all = Vec::new();
    walk(rootfs, &mut all);
    for p in all {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        assert!(
            !meta.file_type().is_block_device() && !meta.file_type().is_char_device(),
            "device node extracted at {p:?}"
        );
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).expect("read a symlink");
            let rel = p.strip_prefix(rootfs).expect("walked under the rootfs");
            assert!(stays_inside(rel, &target), "symlink {rel:?} -> {target:?} escapes");
        }
    }
}

/// The target: see the module documentation.
pub fn build_context(data: &[u8]) {
    run(data);
    if let Some(fixed) = with_checksums_fixed(data) {
        run(&fixed);
    }
}

/// An uncompressed `data` with the checksum of every tar header recomputed, or `None` when
/// none was wrong (or the input is gzip). A byte mutation almost always breaks a header's
/// checksum, which the `tar` crate refuses at once; run again with the checksums fixed, the
/// mutated names, link targets, types and sizes reach the extraction.
fn with_checksums_fixed(data: &[u8]) -> Option<Vec<u8>> {
    const BLOCK: usize = 512;
    if data.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = data.to_vec();
    let mut changed = false;
    let mut at = 0usize;
    while let Some(block) = out.get_mut(at..at + BLOCK) {
        // A zero block ends the archive for the `tar` crate.
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { u32::from(b' ') } else { u32::from(b) })
            .sum();
        let field = format!("{sum:06o}\0 ");
        if block[148..156] != *field.as_bytes() {
            block[148..156].copy_from_slice(field.as_bytes());
            changed = true;
        }
        // The entry's data follows in whole blocks; a size that is not octal ends the walk.
        let size = std::str::from_utf8(&block[124..136])
            .ok()
            .map(|t| t.trim_matches([' ', '\0']))
            .and_then(|t| if t.is_empty() { Some(0) } else { u64::from_str_radix(t, 8).ok() })
            .and_then(|n| usize::try_from(n).ok());
        let Some(next) = size
            .and_then(|n| n.checked_add(BLOCK - 1))
            .map(|n| n / BLOCK * BLOCK)
            .and_then(|n| n.checked_add(at + BLOCK))
        else {
            break;
        };
        at = next;
    }
    changed.then_some(out)
}

/// Runs one context; whether a plugin was created.
fn run(data: &[u8]) -> bool {
    let sandbox = tempfile::tempdir().expect("a sandbox directory");
    let s = sandbox.path();
    let root = s.join("a/b/root");
    let exec = s.join("x");
    std::fs::create_dir_all(s.join("outside")).expect("the canary directory");
    let mut config = ManagerConfig::new(&root, &exec);
    config.share_propagated_mounts = false;
    let (exits, rx) = exit_channel();
    let executor = NoExecutor { _exits: exits, rx: Mutex::new(Some(rx)) };
    let input = Cursor::new(data.to_vec());

    RUNTIME.with(|rt| {
        rt.block_on(async {
            let manager = Manager::new(config, executor).await.expect("a manager on a fresh root");
            let exec_before = names(&exec);
            let created = manager.create_from_context(input, "fuzz/context:latest").await;

            assert_eq!(names(s), ["a", "outside", "x"], "something landed in the sandbox");
            assert_eq!(names(&s.join("a")), ["b"], "something landed beside the root");
            assert_eq!(names(&s.join("a/b")), ["root"], "something landed beside the root");
            assert!(names(&s.join("outside")).is_empty(), "the canary directory was written");
            assert_eq!(names(&exec), exec_before, "extraction wrote into the exec root");
            let ok = match created {
                Ok(plugin) => {
                    let shown = manager.inspect(&plugin.id).expect("a created plugin inspects");
                    assert_eq!(shown.id, plugin.id);
                    check_rootfs(&root.join(&plugin.id).join("rootfs"));
                    true
                }
                Err(_) => {
                    assert!(names(&root.join("tmp")).is_empty(), "a refused context left staging");
                    false
                }
            };
            manager.shutdown().await;
            ok
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{run, with_checksums_fixed};

    /// A mutated header gets its checksum back, and the `tar` crate then reads every entry;
    /// an intact archive and a gzip stream are left alone.
    #[test]
    fn mutated_headers_get_their_checksums_fixed() {
        let plain = std::fs::read(crate::properties::corpus_dir("build_context").join("plain.tar"))
            .expect("a seed");
        assert_eq!(with_checksums_fixed(&plain), None);
        assert_eq!(with_checksums_fixed(&[0x1f, 0x8b, 8, 0]), None);
        let mut mutated = plain.clone();
        mutated[0] ^= 0x20;
        let entries = |data: &[u8]| -> Result<usize, std::io::Error> {
            let mut archive = tar::Archive::new(data);
            let mut n = 0;
            for entry in archive.entries()? {
                entry?;
                n += 1;
            }
            Ok(n)
        };
        assert!(entries(&mutated).is_err(), "the mutation breaks the checksum");
        let fixed = with_checksums_fixed(&mutated).expect("a checksum was wrong");
        assert_eq!(entries(&fixed).expect("fixed"), entries(&plain).expect("intact"));
    }

    /// The seeds reach both outcomes: the target checks created plugins, not only refusals.
    #[test]
    fn seed_contexts_create_or_are_refused_as_intended() {
        let seed = |name: &str| {
            std::fs::read(crate::properties::corpus_dir("build_context").join(name))
                .expect("a seed")
        };
        assert!(run(&seed("plain.tar")));
        assert!(run(&seed("plain.tar.gz")));
        for refused in ["escape-dotdot.tar", "escape-symlink.tar", "no-config.tar"] {
            assert!(!run(&seed(refused)), "{refused} was accepted");
        }
    }
}
