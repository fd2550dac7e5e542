//! The manager with 1,000 plugins in its store: start-up (load) time, `list` and `inspect`
//! latency, and memory. Targets: load under 200 ms, `list` of 1,000 under 5 ms.
//!
//! Run with `cargo bench -p dockplug-manager --bench store`. Plain `main` (no harness): it
//! prints the figures; it asserts nothing.

// A benchmark binary: a failed set-up step should stop it loudly.
#![allow(clippy::unwrap_used)]
// The counting allocator below is the one piece of unsafe code: `GlobalAlloc` is an unsafe
// trait. It forwards to the system allocator unchanged and only counts bytes.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dockplug_manager::{
    exit_channel, Executor, ExecutorError, ExitReceiver, Manager, ManagerConfig, PluginStdio,
    Signal,
};
use dockplug_protocol::filters::PluginListFilter;
use oci_spec::runtime::Spec;

const PLUGINS: usize = 1000;

/// Counts live heap bytes, so the memory a loaded store holds can be reported exactly.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs nothing: the bench never enables a plugin.
struct Idle(Mutex<Option<ExitReceiver>>);

impl Executor for Idle {
    async fn create(&self, id: &str, _: Spec, _: PluginStdio) -> Result<(), ExecutorError> {
        Err(ExecutorError::NotFound { id: id.to_owned() })
    }
    async fn restore(&self, _: &str, _: PluginStdio) -> Result<bool, ExecutorError> {
        Ok(false)
    }
    async fn is_running(&self, _: &str) -> Result<bool, ExecutorError> {
        Ok(false)
    }
    async fn signal(&self, id: &str, _: Signal) -> Result<(), ExecutorError> {
        Err(ExecutorError::NotFound { id: id.to_owned() })
    }
    fn take_exits(&self) -> Option<ExitReceiver> {
        self.0.lock().ok()?.take()
    }
}

fn idle() -> Idle {
    Idle(Mutex::new(Some(exit_channel().1)))
}

const CONFIG: &str = r#"{"Description":"bench","Entrypoint":["/plugin"],
 "Interface":{"Socket":"p.sock","Types":["docker.volumedriver/1.0"]},
 "Env":[{"Name":"DEBUG","Settable":["value"],"Value":"0"}],
 "Mounts":[{"Name":"state","Destination":"/state","Source":"/var/lib/x","Type":"bind","Options":["rbind"],"Settable":["source"]}],
 "Linux":{"Capabilities":["CAP_SYS_ADMIN"]}}"#;

fn context() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(CONFIG.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "config.json", CONFIG.as_bytes()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o755);
    b.append_data(&mut h, "rootfs/plugin", &b"bin"[..]).unwrap();
    b.into_inner().unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Copies the first plugin's directory under new IDs and names.
fn populate(root: &Path, first_id: &str) {
    let template = std::fs::read_to_string(root.join(first_id).join("config.json")).unwrap();
    for i in 1..PLUGINS {
        let id = format!("{:064x}", 0xbe0000 + i);
        let dir = root.join(&id);
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        std::fs::write(dir.join("rootfs/plugin"), b"bin").unwrap();
        let text = template
            .replace(first_id, &id)
            .replace("bench/p0:latest", &format!("bench/p{i}:latest"));
        std::fs::write(dir.join("config.json"), text).unwrap();
    }
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let median = v[v.len() / 2];
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    format!("median {:.3} ms, p99 {:.3} ms, min {:.3} ms", ms(median), ms(p99), ms(v[0]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = tempfile::Builder::new().prefix("dpmb").tempdir_in("/tmp").unwrap();
    let config = || {
        let mut c = ManagerConfig::new(tmp.path().join("root"), tmp.path().join("exec"));
        c.share_propagated_mounts = false;
        c
    };
    let first = {
        let m = Manager::new(config(), idle()).await.unwrap();
        m.create_from_context(std::io::Cursor::new(context()), "bench/p0").await.unwrap()
    };
    populate(&tmp.path().join("root"), &first.id);

    let mut loads = Vec::new();
    let mut manager = None;
    let mut heap = 0;
    for round in 0..7 {
        drop(manager.take());
        let before = live_bytes();
        let t = Instant::now();
        let m = Manager::new(config(), idle()).await.unwrap();
        loads.push(t.elapsed());
        if round == 0 {
            heap = live_bytes() - before;
        }
        assert_eq!(m.list(&PluginListFilter::all()).len(), PLUGINS);
        manager = Some(m);
    }
    let m = manager.unwrap();
    println!("plugins in store:        {PLUGINS}");
    println!("load (Manager::new):     {}", stats(loads));

    let all = PluginListFilter::all();
    let mut lists = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let l = m.list(&all);
        lists.push(t.elapsed());
        assert_eq!(l.len(), PLUGINS);
    }
    println!("list (all 1000):         {}", stats(lists));
    let cap =
        PluginListFilter::parse(r#"{"capability":{"volumedriver":true},"enabled":{"false":true}}"#)
            .unwrap();
    let mut lists = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let _ = m.list(&cap);
        lists.push(t.elapsed());
    }
    println!("list (filtered):         {}", stats(lists));

    let mut by_name = Vec::new();
    let mut by_prefix = Vec::new();
    for i in 0..2000 {
        let name = format!("bench/p{}", i % PLUGINS);
        let t = Instant::now();
        let _ = m.inspect(&name).unwrap();
        by_name.push(t.elapsed());
        let prefix = format!("{:x}", 0xbe0000 + 1 + (i % (PLUGINS - 1)));
        let t = Instant::now();
        let _ = m.inspect(&prefix);
        by_prefix.push(t.elapsed());
    }
    println!("inspect (by name):       {}", stats(by_name));
    println!("inspect (by ID prefix):  {}", stats(by_prefix));
    println!(
        "heap held by the manager: {} KiB ({:.1} KiB per plugin); process RSS {} KiB",
        heap / 1024,
        heap as f64 / 1024.0 / PLUGINS as f64,
        rss_kib()
    );
}
