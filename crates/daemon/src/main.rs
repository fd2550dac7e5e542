//! `dockplugd`: the Engine API's plugin endpoints over dockplug's manager on containerd, so
//! the docker CLI (`docker plugin …`, `docker events`) and Engine API clients such as
//! bollard drive dockplug's plugins as they drive dockerd's.
//!
//! The daemon owns assembly and process life only: the command line ([`config`], dockerd's
//! flag names), one instance per data root ([`lock`]), which containerd to use and the
//! supervision of a private one ([`containerd`]), the listeners and shutdown ([`daemon`]),
//! plugin output in its log ([`output`]), and the allocator's settings ([`memory`]). Every
//! route is `dockplug-engine`'s, every plugin operation the manager's.
//!
//! **Architecture invariant:** a binary over the engine, the manager, the containerd executor
//! and the v1 discovery; no wire type or plugin behaviour of its own. `anyhow` is allowed
//! here (a binary).
//!
//! ```text
//! dockplugd [-H unix:///run/dockplug.sock]... [--data-root /var/lib/dockplug]
//!           [--exec-root /run/dockplug] [--pidfile /run/dockplug.pid]
//!           [--containerd SOCK] [--containerd-plugins-namespace plugins.dockplug]
//!           [--insecure-registry HOST:PORT]... [--live-restore] [--log-level info]
//!           [--socket-dir DIR]... [--spec-dir DIR]...
//!           [--authorization-plugin NAME]... [--authorization-plugin-timeout SECONDS]
//! ```
//!
//! Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (bad flags, data root
//! locked by another instance, containerd unreachable), with the reason on stderr.

mod config;
mod consumers;
mod containerd;
mod daemon;
mod listen;
mod lock;
mod memory;
mod output;

use std::io::IsTerminal as _;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    memory::tune_allocator();
    let flags = config::Flags::parse();
    let config = match config::Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dockplugd: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // `DOCKPLUGD_LOG` (a tracing filter) refines `--log-level` for debugging.
    let filter = EnvFilter::try_from_env("DOCKPLUGD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(config.log_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(daemon::run(config)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "dockplugd failed");
            eprintln!("dockplugd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
