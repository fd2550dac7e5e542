//! The dockplug demo (run it with `cargo xtask demo`): start localvol, find it the way dockerd
//! finds a v1 plugin, activate it with dockplug-v1, and drive a volume through its life,
//! printing each step with its timing.
//!
//! ```text
//! cargo run -p dockplug-localvol --example demo [-- --localvol PATH]
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dockplug_protocol::volume::{
    CapabilitiesResponse, CreateRequest, GetResponse, ListResponse, MountRequest, MountResponse,
    NameRequest,
};
use dockplug_protocol::ErrorBody;
use dockplug_v1::{LocalRegistry, Plugin, PluginOptions};

/// Prints numbered steps with their timings.
struct Transcript {
    started: Instant,
    step: usize,
}

impl Transcript {
    fn new() -> Self {
        println!("dockplug demo: the localvol plugin, found and driven by dockplug-v1\n");
        println!("   #  step           took   what happened");
        Self { started: Instant::now(), step: 0 }
    }

    /// Run one step and print what happened and how long it took.
    async fn step<T, F>(&mut self, name: &str, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<(T, String)>>,
    {
        self.step += 1;
        let t = Instant::now();
        let (value, what) = f.await.with_context(|| format!("step {}: {name}", self.step))?;
        let took = t.elapsed();
        println!("  {:>2}  {name:<9} {:>9}   {what}", self.step, fmt_duration(took));
        Ok(value)
    }

    fn finish(&self) {
        println!("\n  {} steps, {} in all", self.step, fmt_duration(self.started.elapsed()));
    }
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// localvol, stopped with SIGTERM when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn localvol_path() -> Result<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--localvol" {
            return args.next().map(PathBuf::from).context("--localvol needs a path");
        }
    }
    // Built next to this example: <target>/<profile>/examples/demo -> <target>/<profile>/localvol
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(|p| p.parent()).map(|p| p.join("localvol"));
    match bin {
        Some(b) if b.is_file() => Ok(b),
        _ => bail!("localvol is not built: run `cargo xtask demo`, or pass --localvol PATH"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let localvol = localvol_path()?;
    let dir = std::env::temp_dir().join(format!("dockplug-demo-{}", std::process::id()));
    let sockets = dir.join("plugins");
    let root = dir.join("root");
    std::fs::create_dir_all(&sockets)?;
    let socket = sockets.join("localvol.sock");
    let mut t = Transcript::new();

    let running = t
        .step("start", async {
            let child = Command::new(&localvol)
                .arg("--socket")
                .arg(&socket)
                .arg("--root")
                .arg(&root)
                .env("LOCALVOL_LOG", "warn")
                .stdin(Stdio::null())
                .spawn()
                .with_context(|| format!("start {}", localvol.display()))?;
            let running = Running(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::os::unix::net::UnixStream::connect(&socket).is_err() {
                if Instant::now() > deadline {
                    bail!("localvol did not listen on {} within 10 s", socket.display());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let what = format!("localvol (pid {}) listens on {}", running.0.id(), socket.display());
            Ok((running, what))
        })
        .await?;

    let spec = t
        .step("discover", async {
            let registry = LocalRegistry::with_dirs([&sockets], [dir.join("specs")]);
            let spec = registry.plugin("localvol")?;
            let what = format!("found plugin {:?} at {}", spec.name, spec.addr);
            Ok((spec, what))
        })
        .await?;

    let plugin = t
        .step("activate", async {
            let plugin = Plugin::from_spec(spec, PluginOptions::default())?;
            let manifest = plugin.activate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let what = format!("Plugin.Activate: implements {:?}", manifest.implements);
            Ok((plugin, what))
        })
        .await?;
    let client = plugin.client().clone();

    t.step("caps", async {
        let caps: CapabilitiesResponse =
            client.call("VolumeDriver.Capabilities", &serde_json::json!({})).await?;
        Ok(((), format!("VolumeDriver.Capabilities: scope {:?}", caps.capabilities.scope)))
    })
    .await?;

    let name = "demo-volume";
    t.step("create", async {
        let opts = [("mode".to_owned(), "0755".to_owned())].into();
        let req = CreateRequest { name: name.into(), opts: Some(opts) };
        let _: ErrorBody = client.call("VolumeDriver.Create", &req).await?;
        Ok(((), format!("VolumeDriver.Create {name} -o mode=0755")))
    })
    .await?;

    let id = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let mountpoint = t
        .step("mount", async {
            let req = MountRequest { name: name.into(), id: id.into() };
            let r: MountResponse = client.call("VolumeDriver.Mount", &req).await?;
            std::fs::write(
                PathBuf::from(&r.mountpoint).join("hello.txt"),
                "hello from the demo\n",
            )?;
            let what = format!("VolumeDriver.Mount -> {} (wrote hello.txt)", r.mountpoint);
            Ok((r.mountpoint, what))
        })
        .await?;

    t.step("inspect", async {
        let r: GetResponse =
            client.call("VolumeDriver.Get", &NameRequest { name: name.into() }).await?;
        let v = r.volume.context("Get returned no volume")?;
        let mounts = v.status.as_ref().and_then(|s| s.get("mounts")).cloned().unwrap_or_default();
        let created = v.created_at.map(|c| c.as_str().to_owned()).unwrap_or_default();
        Ok(((), format!("VolumeDriver.Get: {mounts} mount(s), created {created}")))
    })
    .await?;

    t.step("list", async {
        let r: ListResponse = client.call("VolumeDriver.List", &serde_json::json!({})).await?;
        let names: Vec<_> = r.volumes.iter().map(|v| v.name.as_str()).collect();
        Ok(((), format!("VolumeDriver.List: {names:?}")))
    })
    .await?;

    t.step("unmount", async {
        let req = MountRequest { name: name.into(), id: id.into() };
        let _: ErrorBody = client.call("VolumeDriver.Unmount", &req).await?;
        Ok(((), "VolumeDriver.Unmount: mount released".to_owned()))
    })
    .await?;

    t.step("remove", async {
        let _: ErrorBody =
            client.call("VolumeDriver.Remove", &NameRequest { name: name.into() }).await?;
        if std::path::Path::new(&mountpoint).exists() {
            bail!("{mountpoint} is still there after Remove");
        }
        Ok(((), format!("VolumeDriver.Remove: {mountpoint} is gone")))
    })
    .await?;

    t.step("stop", async {
        drop(running);
        let gone = !socket.exists();
        Ok(((), format!("SIGTERM: localvol stopped, socket removed: {gone}")))
    })
    .await?;
    t.finish();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
