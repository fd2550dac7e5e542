//! The `dockplug` command-line tool, for people who run or write v1 plugins: list what is
//! discovered and whether it answers, inspect plugins, call a method, and benchmark one. It
//! behaves like the docker CLI it sits beside: `ls -q/--filter/--format/--no-trunc`,
//! `inspect NAME... --format`, Go-style durations (`--timeout 1m30s`), and shell completions
//! (`dockplug completion bash`).
//!
//! The binary is a thin `main` over [`run`], which the integration tests call in-process
//! (through [`run_in`], with their own environment).
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other failure (unreadable directory, bad spec file, I/O) |
//! | 2 | usage error (bad flags, invalid JSON argument, bad filter or format) |
//! | 3 | no plugin of that name |
//! | 4 | the plugin cannot be reached (refused, timed out, connection broken, TLS refused); `ls` when any plugin listed is unreachable |
//! | 5 | the plugin answered with an error (`<Method>: <Err>`): a status other than 200, or a 200 whose body has a non-empty `Err` |
//!
//! Environment: `DOCKPLUG_SOCKET_DIR` and `DOCKPLUG_SPEC_DIR` (colon-separated lists) stand in
//! for `--socket-dir` and `--spec-dir`; `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` apply to
//! TCP plugins as they do in the daemon; `NO_COLOR` turns colour off.
//!
//! **Architecture invariant:** a binary over `dockplug-v1` and `dockplug-protocol` only; it
//! never depends on the manager, containerd or tonic, and holds no plugin logic of its own.

mod bench;
mod commands;
mod describe;
mod duration;
mod echo;
mod format;
mod style;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use dockplug_v1::{CallError, DiscoveryError, LocalRegistry};

pub use bench::Report;
pub use duration::parse_duration;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: any other failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: no plugin of that name.
pub const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: the plugin cannot be reached.
pub const EXIT_UNREACHABLE: i32 = 4;
/// Exit code: the plugin answered with an error.
pub const EXIT_PLUGIN_ERROR: i32 = 5;

/// The variable that stands in for `--socket-dir`.
pub const ENV_SOCKET_DIR: &str = "DOCKPLUG_SOCKET_DIR";
/// The variable that stands in for `--spec-dir`.
pub const ENV_SPEC_DIR: &str = "DOCKPLUG_SPEC_DIR";

#[derive(Debug, Parser)]
#[command(
    name = "dockplug",
    version,
    about = "Find, inspect, call and benchmark Docker v1 plugins",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 plugin not found, 4 plugin unreachable, \
                  5 plugin returned an error.\n\
                  Run 'dockplug COMMAND --help' for more information on a command."
)]
struct Cli {
    /// A socket directory to search instead of /run/docker/plugins (repeatable)
    /// [env: DOCKPLUG_SOCKET_DIR]
    #[arg(long = "socket-dir", value_name = "DIR", global = true)]
    socket_dirs: Vec<PathBuf>,
    /// A spec directory to search instead of /etc/docker/plugins and /usr/lib/docker/plugins
    /// (repeatable, in priority order) [env: DOCKPLUG_SPEC_DIR]
    #[arg(long = "spec-dir", value_name = "DIR", global = true)]
    spec_dirs: Vec<PathBuf>,
    /// Bound on each call, as a Go duration: 500ms, 10s, 1m30s, 2h
    #[arg(long, value_name = "DURATION", global = true, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List discovered plugins: address, what they implement, whether they answer and why not
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show plugins as JSON: where each was found, its address, TLS options and manifest
    Inspect(InspectArgs),
    /// Call METHOD on a plugin and print the reply body
    #[command(override_usage = "dockplug call [OPTIONS] NAME METHOD [JSON|-]\n       \
                                dockplug call [OPTIONS] --addr ADDR METHOD [JSON|-]")]
    Call(CallArgs),
    /// Make many calls and print calls per second and p50/p99 latency
    #[command(override_usage = "dockplug bench [OPTIONS] NAME METHOD [JSON]\n       \
                                dockplug bench [OPTIONS] --addr ADDR METHOD [JSON]")]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion {
        /// The shell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(hide = true)]
    Man,
    /// Serve a minimal echo plugin (the benchmark's target)
    #[command(hide = true)]
    ServeEcho {
        /// The unix socket to listen on
        socket: Option<PathBuf>,
        /// Listen on a TCP address instead
        #[arg(long)]
        tcp: Option<String>,
    },
}

#[derive(Debug, Args)]
struct LsArgs {
    /// Only print plugin names
    #[arg(short, long)]
    quiet: bool,
    /// Filter output: name=TEXT (names containing TEXT), implements=INTERFACE,
    /// reachable=true|false (repeatable: values of one key are alternatives, keys all apply)
    #[arg(short, long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
    /// Format output: 'table', 'table TEMPLATE', 'json', or a template such as
    /// '{{.Name}}\t{{.Status}}'. Fields: .Name .Addr .Implements .Status .Error .Source .TLSConfig
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Do not truncate the ERROR column
    #[arg(long)]
    no_trunc: bool,
    /// Print one JSON array instead of a table
    #[arg(long, conflicts_with_all = ["format", "quiet"])]
    json: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The plugins' names
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
    /// Format each plugin with a template, e.g. '{{.Addr}}' or '{{json .TLSConfig}}'; 'json'
    /// prints each as one line of JSON
    #[arg(short, long, value_name = "TEMPLATE")]
    format: Option<String>,
}

/// Where `call` and `bench` send their calls.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Call this address (unix://, tcp://, http://, https://) instead of a named plugin
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
    /// With an https:// --addr: trust the CA certificates in FILE (PEM), as well as the
    /// system's
    #[arg(long = "tls-ca", value_name = "FILE", requires = "addr")]
    tls_ca: Option<PathBuf>,
    /// With an https:// --addr: present this client certificate (PEM; needs --tls-key)
    #[arg(long = "tls-cert", value_name = "FILE", requires_all = ["addr", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long = "tls-key", value_name = "FILE", requires_all = ["addr", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// With an https:// --addr: accept any server certificate (unsafe; for tests)
    #[arg(long = "tls-insecure", requires = "addr", conflicts_with = "tls_ca")]
    tls_insecure: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The plugin's name (left out with --addr)
    #[arg(value_name = "NAME")]
    name: String,
    /// The method, e.g. VolumeDriver.List
    #[arg(value_name = "METHOD")]
    method: Option<String>,
    /// The argument: a JSON document, '-' to read it from stdin, or nothing for an empty body
    /// (as Plugin.Activate is sent)
    #[arg(value_name = "JSON")]
    json: Option<String>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The plugin's name (left out with --addr)
    #[arg(value_name = "NAME")]
    name: String,
    /// The method
    #[arg(value_name = "METHOD")]
    method: Option<String>,
    /// The JSON argument of every call
    #[arg(value_name = "JSON")]
    json: Option<String>,
    /// How many calls in all
    #[arg(short = 'n', default_value_t = 10_000)]
    n: usize,
    /// How many calls at once
    #[arg(short = 'c', default_value_t = 1)]
    c: usize,
    /// Print one JSON line: {"c","calls_per_sec","p50_us","p99_us","errors","cpu_ns_per_call"}
    #[arg(long = "json")]
    json_output: bool,
}

/// Looks an environment variable up.
type Lookup = Box<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// What the tool reads from its surroundings: environment variables and whether to colour.
pub struct Environment {
    vars: Lookup,
    color: bool,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("color", &self.color).finish_non_exhaustive()
    }
}

impl Environment {
    /// The process's: its variables; colour when stdout and stderr are terminals and
    /// `NO_COLOR` is unset or empty.
    pub fn process() -> Self {
        use std::io::IsTerminal;
        let color = style::wants_color(
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        Self { vars: Box::new(|k| std::env::var_os(k)), color }
    }

    /// Variables looked up through `vars`, no colour.
    pub fn from_vars(vars: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static) -> Self {
        Self { vars: Box::new(vars), color: false }
    }

    /// Colour error lines or not.
    pub fn color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    fn var(&self, key: &str) -> Option<OsString> {
        (self.vars)(key).filter(|v| !v.is_empty())
    }
}

/// A failure with its exit code and one-line message.
pub(crate) struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }
}

/// One line: the error and its sources, joined by `: `.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

pub(crate) fn call_failure(e: &CallError) -> Failure {
    let code = match e {
        CallError::Plugin { .. } => EXIT_PLUGIN_ERROR,
        CallError::Timeout { .. } | CallError::Connect { .. } | CallError::Transport { .. } => {
            EXIT_UNREACHABLE
        }
        CallError::InvalidMethod { .. } => EXIT_USAGE,
        _ => EXIT_FAILURE,
    };
    Failure::new(code, chain(e))
}

pub(crate) fn discovery_failure(e: &DiscoveryError) -> Failure {
    let code = match e {
        DiscoveryError::NotFound { .. } | DiscoveryError::InvalidName { .. } => EXIT_NOT_FOUND,
        _ => EXIT_FAILURE,
    };
    Failure::new(code, chain(e))
}

/// Run the tool with `args` (the first is the program name) in the process's environment,
/// writing to `out` and `err`; returns the exit code.
pub async fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    run_in(&Environment::process(), args, out, err).await
}

/// [`run`] in the environment `env`.
pub async fn run_in(
    env: &Environment,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text =
                if env.color { e.render().ansi().to_string() } else { e.render().to_string() };
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let mut warnings = Vec::new();
    let result = dispatch(env, cli, out, &mut warnings).await;
    let prefix = style::error_prefix(env.color);
    for w in warnings {
        let _ = writeln!(err, "{prefix}{}", w.message);
    }
    match result {
        Ok(()) => EXIT_OK,
        Err(f) => {
            let _ = writeln!(err, "{prefix}{}", f.message);
            f.code
        }
    }
}

/// Which runtime suits a command: the benchmark at concurrency 1 is fastest on one thread.
pub fn wants_single_thread(args: &[OsString]) -> bool {
    match Cli::try_parse_from(args) {
        Ok(Cli { command: Command::Bench(b), .. }) => b.c <= 1,
        Ok(Cli { command: Command::ServeEcho { .. }, .. }) => true,
        _ => false,
    }
}

/// The directories searched: the flags, else the environment, else Moby's defaults.
fn registry(env: &Environment, cli: &Cli) -> LocalRegistry {
    let defaults = LocalRegistry::new();
    let pick = |flags: &[PathBuf], var: &str, default: &[PathBuf]| -> Vec<PathBuf> {
        if !flags.is_empty() {
            return flags.to_vec();
        }
        match env.var(var) {
            Some(v) => std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => default.to_vec(),
        }
    };
    LocalRegistry::with_dirs(
        pick(&cli.socket_dirs, ENV_SOCKET_DIR, defaults.socket_dirs()),
        pick(&cli.spec_dirs, ENV_SPEC_DIR, defaults.spec_dirs()),
    )
}

fn write_err(e: std::io::Error) -> Failure {
    Failure::new(EXIT_FAILURE, format!("cannot write output: {e}"))
}

async fn dispatch(
    env: &Environment,
    cli: Cli,
    out: &mut (dyn Write + Send),
    warnings: &mut Vec<Failure>,
) -> Result<(), Failure> {
    let dirs = registry(env, &cli);
    let timeout = cli.timeout;
    match cli.command {
        Command::Ls(a) => commands::ls(&dirs, a, timeout, out, warnings).await,
        Command::Inspect(a) => commands::inspect(&dirs, a, timeout, out, warnings).await,
        Command::Call(a) => commands::call(&dirs, a, timeout, out).await,
        Command::Bench(a) => commands::bench(&dirs, a, timeout, out).await,
        Command::Completion { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dockplug", &mut buf);
            out.write_all(&buf).map_err(write_err)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf).map_err(write_err)?;
            out.write_all(&buf).map_err(write_err)
        }
        Command::ServeEcho { socket, tcp } => echo::serve(socket.as_deref(), tcp.as_deref())
            .await
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("{e:#}"))),
    }
}

/// The README's examples, compiled as doc tests (its plugin example uses the SDK, a
/// dev-dependency only).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
