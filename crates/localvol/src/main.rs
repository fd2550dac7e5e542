//! localvol: a local-directory Docker volume plugin, built on `dockplug-sdk`.
//!
//! Volumes are directories under a root (`<root>/volumes/<name>`), created with optional
//! `uid`, `gid` and `mode` options; the volumes and the mounts held on each (counted per
//! mount ID) are kept in `<root>/localvol.json`, so they survive restarts. Its scope is
//! `local`.
//!
//! ```text
//! localvol --socket /run/docker/plugins/localvol.sock --root /var/lib/localvol
//! ```
//!
//! As a v1 plugin the socket's file name is the plugin's name; as a v2 plugin (packaged by
//! `cargo xtask package localvol`) it runs inside its rootfs with `--root` at its
//! `PropagatedMount`.
//!
//! **Architecture invariant:** localvol is a plugin like any other: it uses only the SDK's
//! public API and the protocol types.

mod driver;
mod store;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// A local-directory Docker volume plugin.
#[derive(Debug, Parser)]
#[command(name = "localvol", version)]
struct Args {
    /// The unix socket to serve on (its directory is created when missing).
    #[arg(long)]
    socket: PathBuf,
    /// The directory holding the volumes and the state file.
    #[arg(long)]
    root: PathBuf,
    /// Write a discovery file `<DIR>/<NAME>.spec` pointing at the socket, given as DIR/NAME
    /// (for a socket outside /run/docker/plugins); removed on exit.
    #[arg(long, value_name = "DIR/NAME")]
    spec: Option<PathBuf>,
    /// The socket's group (a name or a numeric gid).
    #[arg(long)]
    group: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCALVOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store = store::Store::open(&args.root)
        .with_context(|| format!("open the volume store at {}", args.root.display()))?;
    tracing::info!(root = %store.root().display(), "volume store open");
    let plugin = dockplug_sdk::Plugin::builder().volume(driver::LocalVol::new(store)).build();
    let mut listen = dockplug_sdk::UnixListen::new(&args.socket);
    if let Some(group) = &args.group {
        listen = match group.parse::<u32>() {
            Ok(gid) => listen.group_id(gid),
            Err(_) => listen.group_name(group.as_str()),
        };
    }
    if let Some(spec) = &args.spec {
        let (Some(dir), Some(name)) = (spec.parent(), spec.file_name()) else {
            anyhow::bail!("--spec wants DIR/NAME, got {}", spec.display());
        };
        listen = listen.spec_file(dockplug_sdk::SpecFile::new(dir, name.to_string_lossy()));
    }
    let server = plugin.bind_unix(listen).await.context("bind the plugin socket")?;
    server.run().await.context("serve")?;
    Ok(())
}
