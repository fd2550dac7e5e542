//! The `dockplug` command-line tool, for people who run or write v1 plugins: list what is
//! discovered and whether it answers, inspect one plugin, call a method, and benchmark one.
//!
//! The binary is a thin `main` over [`run`], which the integration tests call in-process.
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other failure (unreadable directory, bad spec file, I/O) |
//! | 2 | usage error (bad flags, invalid JSON argument) |
//! | 3 | no plugin of that name |
//! | 4 | the plugin cannot be reached (refused, timed out, connection broken) |
//! | 5 | the plugin answered with an error (`<Method>: <Err>`): a status other than 200, or a 200 whose body has a non-empty `Err` |
//!
//! **Architecture invariant:** a binary over `dockplug-v1` and `dockplug-protocol` only; it
//! never depends on the manager, containerd or tonic, and holds no plugin logic of its own.

mod bench;
mod echo;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use dockplug_v1::{
    Address, CallError, CallOptions, Client, DiscoveryError, LocalRegistry, Plugin, PluginOptions,
    PluginSpec, RetryPolicy,
};
use serde_json::{json, Value};

pub use bench::Report;

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

#[derive(Debug, Parser)]
#[command(
    name = "dockplug",
    version,
    about = "Find, inspect, call and benchmark Docker v1 plugins",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 plugin not found, 4 plugin unreachable, \
                  5 plugin returned an error."
)]
struct Cli {
    /// A socket directory to search instead of /run/docker/plugins (repeatable).
    #[arg(long = "socket-dir", value_name = "DIR", global = true)]
    socket_dirs: Vec<PathBuf>,
    /// A spec directory to search instead of /etc/docker/plugins and /usr/lib/docker/plugins
    /// (repeatable, in priority order).
    #[arg(long = "spec-dir", value_name = "DIR", global = true)]
    spec_dirs: Vec<PathBuf>,
    /// Bound on each call, e.g. 500ms, 10s, 2m.
    #[arg(long, value_name = "DURATION", global = true, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every discovered plugin with its address, what it implements and whether it
    /// answers.
    Ls {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin: where it was found, its address and TLS options, its manifest (as
    /// JSON).
    Inspect {
        /// The plugin's name.
        name: String,
    },
    /// Call METHOD on a plugin and print the reply body.
    ///
    /// The argument is a JSON document, `-` to read it from stdin, or nothing for an empty
    /// body (as `Plugin.Activate` is sent).
    Call(CallArgs),
    /// Make many calls and print calls per second and p50/p99 latency.
    Bench(BenchArgs),
    /// Serve a minimal echo plugin (the benchmark's target).
    #[command(hide = true)]
    ServeEcho {
        /// The unix socket to listen on.
        socket: Option<PathBuf>,
        /// Listen on a TCP address instead.
        #[arg(long)]
        tcp: Option<String>,
    },
}

#[derive(Debug, Args)]
struct CallArgs {
    /// Call this address (unix://, tcp://, http://, https://) instead of a named plugin.
    #[arg(long)]
    addr: Option<String>,
    /// NAME METHOD [JSON|-], or METHOD [JSON|-] with --addr.
    #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Call this address instead of a named plugin.
    #[arg(long)]
    addr: Option<String>,
    /// NAME METHOD [JSON], or METHOD [JSON] with --addr.
    #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
    args: Vec<String>,
    /// How many calls in all.
    #[arg(short = 'n', default_value_t = 10_000)]
    n: usize,
    /// How many calls at once.
    #[arg(short = 'c', default_value_t = 1)]
    c: usize,
    /// Print one JSON line: {"c","calls_per_sec","p50_us","p99_us","errors","cpu_ns_per_call"}.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) =
        s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

/// A failure with its exit code and one-line message.
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// One line: the error and its sources, joined by `: `.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
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

fn call_failure(e: &CallError) -> Failure {
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

fn discovery_failure(e: &DiscoveryError) -> Failure {
    let code = match e {
        DiscoveryError::NotFound { .. } | DiscoveryError::InvalidName { .. } => EXIT_NOT_FOUND,
        _ => EXIT_FAILURE,
    };
    Failure::new(code, chain(e))
}

/// Run the tool with `args` (the first is the program name), writing to `out` and `err`;
/// returns the exit code.
pub async fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    match dispatch(cli, out).await {
        Ok(()) => EXIT_OK,
        Err(f) => {
            let _ = writeln!(err, "dockplug: {}", f.message);
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

fn registry(cli: &Cli) -> LocalRegistry {
    let defaults = LocalRegistry::new();
    let sockets = if cli.socket_dirs.is_empty() {
        defaults.socket_dirs().to_vec()
    } else {
        cli.socket_dirs.clone()
    };
    let specs = if cli.spec_dirs.is_empty() {
        defaults.spec_dirs().to_vec()
    } else {
        cli.spec_dirs.clone()
    };
    LocalRegistry::with_dirs(sockets, specs)
}

async fn dispatch(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), Failure> {
    let dirs = registry(&cli);
    let timeout = cli.timeout;
    let write_err =
        |e: std::io::Error| Failure::new(EXIT_FAILURE, format!("cannot write output: {e}"));
    match cli.command {
        Command::Ls { json } => {
            let rows = list(&dirs, timeout).await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| write_err(e.into()))?;
                writeln!(out).map_err(write_err)?;
            } else {
                let mut table = vec![[
                    "NAME".to_owned(),
                    "ADDRESS".to_owned(),
                    "IMPLEMENTS".to_owned(),
                    "STATUS".to_owned(),
                ]];
                for r in &rows {
                    let implements = r["Implements"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                        .unwrap_or_else(|| "-".into());
                    table.push([
                        r["Name"].as_str().unwrap_or_default().to_owned(),
                        r["Addr"].as_str().unwrap_or("-").to_owned(),
                        if implements.is_empty() { "-".into() } else { implements },
                        r["Status"].as_str().unwrap_or_default().to_owned(),
                    ]);
                }
                let widths: Vec<usize> = (0..4)
                    .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
                    .collect();
                for row in &table {
                    let line = format!(
                        "{:w0$}  {:w1$}  {:w2$}  {}",
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        w0 = widths[0],
                        w1 = widths[1],
                        w2 = widths[2]
                    );
                    writeln!(out, "{}", line.trim_end()).map_err(write_err)?;
                }
            }
            Ok(())
        }
        Command::Inspect { name } => {
            let spec = dirs.plugin(&name).map_err(|e| discovery_failure(&e))?;
            let (value, failure) = describe(spec, timeout).await;
            serde_json::to_writer_pretty(&mut *out, &value).map_err(|e| write_err(e.into()))?;
            writeln!(out).map_err(write_err)?;
            match failure {
                Some(f) => Err(f),
                None => Ok(()),
            }
        }
        Command::Call(a) => {
            let (client, rest) = target(&dirs, a.addr.as_deref(), &a.args, timeout)?;
            let (method, body) = match rest {
                [method] => (method.clone(), None),
                [method, arg] => (method.clone(), Some(json_arg(arg)?)),
                _ => {
                    return Err(Failure::new(
                        EXIT_USAGE,
                        "usage: dockplug call (NAME | --addr ADDR) METHOD [JSON|-]",
                    ))
                }
            };
            let reply = client
                .call_raw(&method, body, CallOptions::new().timeout(timeout))
                .await
                .map_err(|e| call_failure(&e))?;
            out.write_all(&reply).map_err(write_err)?;
            if !reply.ends_with(b"\n") {
                writeln!(out).map_err(write_err)?;
            }
            // A 200 whose body carries a non-empty `Err` is a failure to the daemon's
            // generated proxies; say so, after printing the reply.
            match serde_json::from_slice::<dockplug_protocol::ErrorBody>(&reply) {
                Ok(e) if !e.err.is_empty() => {
                    Err(Failure::new(EXIT_PLUGIN_ERROR, format!("{method}: {}", e.err)))
                }
                _ => Ok(()),
            }
        }
        Command::Bench(b) => {
            let (client, rest) = target(&dirs, b.addr.as_deref(), &b.args, timeout)?;
            let (method, args) = match rest {
                [method] => (method.clone(), Value::Null),
                [method, arg] => {
                    let bytes = json_arg(arg)?;
                    let v = serde_json::from_slice(&bytes).map_err(|e| {
                        Failure::new(EXIT_USAGE, format!("invalid JSON argument: {e}"))
                    })?;
                    (method.clone(), v)
                }
                _ => {
                    return Err(Failure::new(
                        EXIT_USAGE,
                        "usage: dockplug bench (NAME | --addr ADDR) METHOD [JSON] -n N -c C",
                    ))
                }
            };
            // One probe call: a plugin that does not answer is an error, not a benchmark.
            client.call::<_, Value>(&method, &args).await.map_err(|e| call_failure(&e))?;
            let report = bench::run(client, method, args, b.n, b.c).await;
            if b.json {
                let line = serde_json::to_string(&report).map_err(|e| write_err(e.into()))?;
                writeln!(out, "{line}").map_err(write_err)?;
            } else {
                writeln!(
                    out,
                    "{} calls, concurrency {}: {:.0} calls/s, p50 {} µs, p99 {} µs, {} errors, {} ns CPU per call",
                    b.n, report.c, report.calls_per_sec, report.p50_us, report.p99_us, report.errors,
                    report.cpu_ns_per_call
                )
                .map_err(write_err)?;
            }
            if report.errors > 0 {
                return Err(Failure::new(
                    EXIT_FAILURE,
                    format!("{} of {} calls failed", report.errors, b.n),
                ));
            }
            Ok(())
        }
        Command::ServeEcho { socket, tcp } => echo::serve(socket.as_deref(), tcp.as_deref())
            .await
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("{e:#}"))),
    }
}

/// The client for `--addr` or the named plugin, and the remaining positional arguments.
fn target<'a>(
    dirs: &LocalRegistry,
    addr: Option<&str>,
    args: &'a [String],
    timeout: Duration,
) -> Result<(Client, &'a [String]), Failure> {
    let (addr, tls, rest) = match addr {
        Some(a) => {
            let parsed: Address = a
                .parse()
                .map_err(|e: dockplug_v1::AddressError| Failure::new(EXIT_USAGE, chain(&e)))?;
            (parsed, Some(dockplug_v1::TlsOptions::insecure()), args)
        }
        None => {
            let (name, rest) = args
                .split_first()
                .ok_or_else(|| Failure::new(EXIT_USAGE, "a plugin name is needed (or --addr)"))?;
            let spec = dirs.plugin(name).map_err(|e| discovery_failure(&e))?;
            (spec.addr, spec.tls, rest)
        }
    };
    let client = Client::builder(addr)
        .tls(tls)
        .retry(RetryPolicy::never())
        .connect_timeout(timeout)
        .build()
        .map_err(|e| Failure::new(EXIT_FAILURE, chain(&e)))?;
    Ok((client, rest))
}

fn json_arg(arg: &str) -> Result<Bytes, Failure> {
    let text = if arg == "-" {
        let mut s = Vec::new();
        std::io::stdin()
            .read_to_end(&mut s)
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot read stdin: {e}")))?;
        s
    } else {
        arg.as_bytes().to_vec()
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&text)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("invalid JSON argument: {e}")))?;
    Ok(Bytes::from(text))
}

/// Every discovered plugin, activated in parallel (no retry, bounded by `timeout`).
async fn list(dirs: &LocalRegistry, timeout: Duration) -> Result<Vec<Value>, Failure> {
    let names = dirs.scan().map_err(|e| discovery_failure(&e))?;
    let jobs = names.into_iter().map(|name| async move {
        match dirs.plugin(&name) {
            Ok(spec) => describe(spec, timeout).await.0,
            Err(e) => json!({ "Name": name, "Status": "error", "Error": chain(&e) }),
        }
    });
    Ok(futures_util::future::join_all(jobs).await)
}

/// The JSON description of a plugin, activating it once without retry; the failure to
/// report if it does not answer.
async fn describe(spec: PluginSpec, timeout: Duration) -> (Value, Option<Failure>) {
    let mut v = json!({
        "Name": spec.name,
        "Addr": spec.addr.as_str(),
        "Source": spec.source,
        "TLSConfig": spec.tls,
    });
    let opts = PluginOptions::default()
        .retry(RetryPolicy::never())
        .activate_timeout(Some(timeout))
        .connect_timeout(timeout);
    let plugin = match Plugin::from_spec(spec, opts) {
        Ok(p) => p,
        Err(e) => {
            v["Status"] = "error".into();
            v["Error"] = chain(&e).into();
            return (v, Some(Failure::new(EXIT_FAILURE, chain(&e))));
        }
    };
    match plugin.activate().await {
        Ok(m) => {
            v["Implements"] = json!(m.implements);
            v["Status"] = "ok".into();
            (v, None)
        }
        Err(e) => {
            v["Implements"] = Value::Null;
            v["Status"] = "unreachable".into();
            v["Error"] = chain(&*e).into();
            let mut f = call_failure(&e);
            if f.code == EXIT_PLUGIN_ERROR {
                v["Status"] = "error".into();
            }
            f.message = format!("plugin {}: {}", plugin.name(), f.message);
            (v, Some(f))
        }
    }
}
