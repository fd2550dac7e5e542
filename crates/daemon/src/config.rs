//! The command line: dockerd's flag names wherever the meaning is the same, defaults that
//! work as root on a fresh machine and never collide with a dockerd on the same host.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Parser;

/// Where the API listens by default (dockerd: `/var/run/docker.sock`).
pub const DEFAULT_HOST: &str = "unix:///run/dockplug.sock";
/// Where plugins and the lock live (dockerd: `/var/lib/docker`).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/dockplug";
/// Where sockets, FIFOs and a private containerd's state live (dockerd: `/var/run/docker`).
pub const DEFAULT_EXEC_ROOT: &str = "/run/dockplug";
/// The daemon's PID file (dockerd: `/var/run/docker.pid`).
pub const DEFAULT_PIDFILE: &str = "/run/dockplug.pid";
/// The containerd namespace plugins run in. dockerd uses `plugins.moby`; a namespace of our
/// own keeps dockplugd's containers apart from a dockerd sharing the system containerd.
pub const DEFAULT_PLUGINS_NAMESPACE: &str = "plugins.dockplug";
/// The system containerd, used when it answers and no `--containerd` is given.
pub const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";

/// dockplugd: the Engine API's plugin endpoints, served from dockplug's manager on containerd.
#[derive(Debug, Parser)]
#[command(name = "dockplugd", version, about, long_about = None)]
pub struct Flags {
    /// Socket to listen on, as unix://PATH (repeatable).
    #[arg(short = 'H', long = "host", value_name = "unix://PATH")]
    pub hosts: Vec<String>,
    /// Root of persisted state: plugins in DIR/plugins, the instance lock in DIR.
    #[arg(long = "data-root", value_name = "DIR", default_value = DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,
    /// Root of runtime state: plugin sockets, output FIFOs, a private containerd.
    #[arg(long = "exec-root", value_name = "DIR", default_value = DEFAULT_EXEC_ROOT)]
    pub exec_root: PathBuf,
    /// File holding the daemon's PID.
    #[arg(short = 'p', long = "pidfile", value_name = "FILE", default_value = DEFAULT_PIDFILE)]
    pub pidfile: PathBuf,
    /// containerd's socket. Without it: the system containerd if it answers, otherwise a
    /// private containerd under the exec root, started and stopped by this daemon.
    #[arg(long = "containerd", value_name = "SOCK")]
    pub containerd: Option<PathBuf>,
    /// containerd namespace for plugins.
    #[arg(
        long = "containerd-plugins-namespace",
        value_name = "NS",
        default_value = DEFAULT_PLUGINS_NAMESPACE
    )]
    pub plugins_namespace: String,
    /// A registry reached over plain HTTP or unverified TLS, as HOST:PORT (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Keep plugins running while the daemon is down; restore them when it comes back.
    #[arg(long = "live-restore")]
    pub live_restore: bool,
    /// debug, info, warn, error or fatal.
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Where v1 plugin sockets are found (repeatable; Moby's directory by default).
    #[arg(long = "socket-dir", value_name = "DIR")]
    pub socket_dirs: Vec<PathBuf>,
    /// Where v1 plugin spec files are found (repeatable; Moby's directories by default).
    #[arg(long = "spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// An authorization plugin every request goes through, v1 or v2 (repeatable; in order).
    #[arg(long = "authorization-plugin", value_name = "NAME")]
    pub authz_plugins: Vec<String>,
    /// How long each authorization plugin call may take before the request fails (500).
    #[arg(long = "authorization-plugin-timeout", value_name = "SECONDS", default_value_t = 30)]
    pub authz_timeout_secs: u64,
    /// The socket probed for a system containerd when no --containerd is given.
    #[arg(long = "system-containerd", value_name = "SOCK", default_value = SYSTEM_CONTAINERD, hide = true)]
    pub system_containerd: PathBuf,
    /// The containerd binary started for a private containerd (found on PATH by default).
    #[arg(
        long = "containerd-binary",
        value_name = "FILE",
        default_value = "containerd",
        hide = true
    )]
    pub containerd_binary: PathBuf,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The unix socket paths to listen on.
    pub hosts: Vec<PathBuf>,
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// `--pidfile`.
    pub pidfile: PathBuf,
    /// `--containerd`.
    pub containerd: Option<PathBuf>,
    /// `--containerd-plugins-namespace`.
    pub plugins_namespace: String,
    /// `--insecure-registry`, checked as HOST:PORT.
    pub insecure_registries: Vec<String>,
    /// `--live-restore`.
    pub live_restore: bool,
    /// The tracing filter for `--log-level`.
    pub log_filter: &'static str,
    /// `--socket-dir`.
    pub socket_dirs: Vec<PathBuf>,
    /// `--spec-dir`.
    pub spec_dirs: Vec<PathBuf>,
    /// `--authorization-plugin`, in order.
    pub authz_plugins: Vec<String>,
    /// `--authorization-plugin-timeout`.
    pub authz_timeout: std::time::Duration,
    /// The system containerd's socket.
    pub system_containerd: PathBuf,
    /// The binary of a private containerd.
    pub containerd_binary: PathBuf,
}

impl Config {
    /// Checks the flags and resolves them.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Config> {
        let hosts =
            if flags.hosts.is_empty() { vec![DEFAULT_HOST.to_owned()] } else { flags.hosts };
        let hosts = hosts.iter().map(|h| parse_host(h)).collect::<anyhow::Result<Vec<_>>>()?;
        for r in &flags.insecure_registries {
            check_registry(r)?;
        }
        for (flag, dir) in [("--data-root", &flags.data_root), ("--exec-root", &flags.exec_root)] {
            if !dir.is_absolute() {
                bail!("{flag} must be an absolute path: {}", dir.display());
            }
        }
        Ok(Config {
            hosts,
            data_root: flags.data_root,
            exec_root: flags.exec_root,
            pidfile: flags.pidfile,
            containerd: flags.containerd,
            plugins_namespace: flags.plugins_namespace,
            insecure_registries: flags.insecure_registries,
            live_restore: flags.live_restore,
            log_filter: log_filter(&flags.log_level)?,
            socket_dirs: flags.socket_dirs,
            spec_dirs: flags.spec_dirs,
            authz_plugins: flags.authz_plugins,
            authz_timeout: std::time::Duration::from_secs(flags.authz_timeout_secs.max(1)),
            system_containerd: flags.system_containerd,
            containerd_binary: flags.containerd_binary,
        })
    }

    /// The manager's root (dockerd: `<data-root>/plugins`).
    pub fn plugin_root(&self) -> PathBuf {
        self.data_root.join("plugins")
    }

    /// The manager's exec root: plugin sockets (dockerd: `<exec-root>/plugins`).
    pub fn plugin_exec_root(&self) -> PathBuf {
        self.exec_root.join("plugins")
    }

    /// Each plugin's stdout and stderr FIFOs, outside anything a plugin sees.
    pub fn fifo_dir(&self) -> PathBuf {
        self.exec_root.join("plugin-fifo")
    }

    /// A private containerd's socket, config, state and PID file (dockerd:
    /// `<exec-root>/containerd`).
    pub fn containerd_exec_dir(&self) -> PathBuf {
        self.exec_root.join("containerd")
    }

    /// A private containerd's root (dockerd: `<data-root>/containerd/daemon`).
    pub fn containerd_root(&self) -> PathBuf {
        self.data_root.join("containerd").join("daemon")
    }
}

/// `unix:///path` (or a bare absolute path) to the socket path; dockerd's other schemes are
/// refused by name.
fn parse_host(host: &str) -> anyhow::Result<PathBuf> {
    let path = if let Some(p) = host.strip_prefix("unix://") {
        p
    } else if host.starts_with('/') {
        host
    } else {
        let scheme = host.split("://").next().unwrap_or(host);
        bail!("invalid host {host:?}: only unix:// is supported, not {scheme}");
    };
    let path = Path::new(path);
    if !path.is_absolute() {
        bail!("invalid host {host:?}: the socket path must be absolute");
    }
    if path.as_os_str().len() > 107 {
        bail!("invalid host {host:?}: the path is longer than a unix socket address allows");
    }
    Ok(path.to_owned())
}

/// HOST:PORT, as `--insecure-registry` takes it here.
fn check_registry(registry: &str) -> anyhow::Result<()> {
    let (host, port) = registry
        .rsplit_once(':')
        .with_context(|| format!("invalid --insecure-registry {registry:?}: expected HOST:PORT"))?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    if host.is_empty() || !port_ok || registry.contains('/') {
        bail!("invalid --insecure-registry {registry:?}: expected HOST:PORT");
    }
    Ok(())
}

/// dockerd's log levels as a tracing filter (`fatal` is `error`: nothing logs above it).
fn log_filter(level: &str) -> anyhow::Result<&'static str> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        _ => bail!("unable to parse logging level: {level}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let argv = std::iter::once("dockplugd").chain(args.iter().copied());
        Config::from_flags(Flags::try_parse_from(argv)?)
    }

    #[test]
    fn defaults_never_collide_with_dockerd() -> anyhow::Result<()> {
        let c = parse(&[])?;
        assert_eq!(c.hosts, [PathBuf::from("/run/dockplug.sock")]);
        assert_eq!(c.plugin_root(), Path::new("/var/lib/dockplug/plugins"));
        assert_eq!(c.plugin_exec_root(), Path::new("/run/dockplug/plugins"));
        assert_eq!(c.containerd_exec_dir(), Path::new("/run/dockplug/containerd"));
        assert_eq!(c.pidfile, Path::new("/run/dockplug.pid"));
        assert_eq!(c.plugins_namespace, "plugins.dockplug");
        assert_eq!(c.containerd, None);
        assert!(!c.live_restore);
        assert_eq!(c.log_filter, "info");
        Ok(())
    }

    #[test]
    fn dockerd_flag_names() -> anyhow::Result<()> {
        let c = parse(&[
            "-H",
            "unix:///tmp/a.sock",
            "--host",
            "unix:///tmp/b.sock",
            "--data-root",
            "/d",
            "--exec-root",
            "/e",
            "--pidfile",
            "/p.pid",
            "--containerd",
            "/c.sock",
            "--containerd-plugins-namespace",
            "ns",
            "--insecure-registry",
            "127.0.0.1:5000",
            "--insecure-registry",
            "localhost:5001",
            "--live-restore",
            "--log-level",
            "debug",
            "--socket-dir",
            "/s",
            "--spec-dir",
            "/x",
        ])?;
        assert_eq!(c.hosts, [PathBuf::from("/tmp/a.sock"), PathBuf::from("/tmp/b.sock")]);
        assert_eq!(c.plugin_root(), Path::new("/d/plugins"));
        assert_eq!(c.containerd_root(), Path::new("/d/containerd/daemon"));
        assert_eq!(c.fifo_dir(), Path::new("/e/plugin-fifo"));
        assert_eq!(c.containerd.as_deref(), Some(Path::new("/c.sock")));
        assert_eq!(c.plugins_namespace, "ns");
        assert_eq!(c.insecure_registries, ["127.0.0.1:5000", "localhost:5001"]);
        assert!(c.live_restore);
        assert_eq!(c.log_filter, "debug");
        assert_eq!(c.socket_dirs, [PathBuf::from("/s")]);
        assert_eq!(c.spec_dirs, [PathBuf::from("/x")]);
        Ok(())
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = |args: &[&str]| parse(args).map(|_| ()).expect_err("refused").to_string();
        assert!(err(&["-H", "tcp://0.0.0.0:2375"]).contains("only unix:// is supported"));
        assert!(err(&["-H", "unix://rel.sock"]).contains("must be absolute"));
        assert!(err(&["-H", &format!("unix:///{}", "a".repeat(120))]).contains("longer"));
        assert!(err(&["--insecure-registry", "nohost"]).contains("HOST:PORT"));
        assert!(err(&["--insecure-registry", "h:0"]).contains("HOST:PORT"));
        assert!(err(&["--insecure-registry", "http://h:5000"]).contains("HOST:PORT"));
        assert!(err(&["--log-level", "loud"]).contains("unable to parse logging level"));
        assert!(err(&["--data-root", "rel"]).contains("absolute"));
    }

    #[test]
    fn fatal_is_error() -> anyhow::Result<()> {
        assert_eq!(parse(&["--log-level", "fatal"])?.log_filter, "error");
        assert_eq!(parse(&["--log-level", "WARN"])?.log_filter, "warn");
        Ok(())
    }
}
