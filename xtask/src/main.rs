//! dockplug's task runner, in the cargo-xtask shape: `cargo xtask <task>`.
//!
//! Everything a person would otherwise type by hand lives here, and each task installs what a
//! fresh machine lacks before it starts, saying what it is doing.
//!
//! | task | what it does |
//! |------|--------------|
//! | `ci` | install prerequisites, then fmt, clippy (`-D warnings`), the whole test suite, docs (`-D warnings`), cargo-deny |
//! | `setup` | install prerequisites only |
//! | `demo` | build localvol, start it, discover and activate it with dockplug-v1, drive a volume through its life, print a transcript with timings |
//! | `package localvol` | package localvol as a v2 plugin directory (`config.json` + `rootfs/`) |
//! | `bench` | dockplug's v1 client against Moby's Go client (`pkg/plugins`) on one plugin server: calls/s, p50/p99, CPU per call (installs Go; not part of `ci`) |
//! | `bench-all` | every side-by-side benchmark in one run (v1 RPC, SDK server, discovery, enable, registry, the daemon through the CLI), each figure a median ratio to Moby's own code; `--json` prints one JSON line per figure, then a markdown table; `--quick` (not part of `ci`) |
//! | `bench-manager` | the manager with 1,000 plugins in its store: load time, `list` and `inspect` latency, heap held (not part of `ci`) |
//! | `fuzz` | every parser's fuzz target under libFuzzer (cargo-fuzz; `--list`, `--all`, one or more names, `--seconds N`); the same targets run bounded as property tests in `ci` (not part of `ci`) |
//! | `crash-loop` | SIGKILL dockplugd at seeded random points of CLI operations, restart, check consistency; `--seconds N` or `--rounds N`, `--seed S`, `--favour OP` to aim most kills at one operation (a short loop runs in `ci` as the `crash` tests) |
//! | `load` | 1,000 concurrent list/inspect requests against dockplugd with 20 plugins enabled plus 20 concurrent installs from one registry: p50/p99, errors, RSS before/peak/after (not part of `ci`) |
//! | `bench-daemon` | the docker CLI against dockplugd and a private dockerd on one containerd, alternating: create, enable, disable, rm, install; RSS idle, with 1 and 20 plugins enabled; a restart with 20 enabled (until `GET /plugins` answers, until all answer); prints median ratios (not part of `ci`) |
//! | `bench-registry` | install (pull + enable), pull and push of the packaged localvol through one private registry, dockplugd vs dockerd on one containerd, alternating rounds; prints median ratios (not part of `ci`) |
//! | `bench-enable` | enable-to-ready latency of the packaged localvol (dockplug's manager on the containerd executor vs dockerd, same containerd, same plugin directory) and resident memory with 20 plugins enabled; prints the ratios (not part of `ci`) |

mod advisories;
mod bench;
mod bench_all;
mod bench_daemon;
mod bench_discovery;
mod bench_enable;
mod bench_registry;
mod bench_rpc;
mod crash;
mod demo;
mod demo_daemon;
mod fuzz;
mod load;
mod managed;
mod package;
mod setup;

use anyhow::{bail, Result};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    match task {
        "ci" => ci(),
        "setup" => setup::all(),
        "demo" => demo::run(),
        "package" => package::task(&args[1..]),
        "bench" => bench::run(&args[1..]),
        "bench-all" => bench_all::run(&args[1..]),
        "bench-enable" => bench_enable::run(),
        "bench-daemon" => bench_daemon::run(),
        "bench-registry" => bench_registry::run(),
        "fuzz" => fuzz::task(&args[1..]),
        "crash-loop" => crash::task(&args[1..]),
        "load" => load::task(&args[1..]),
        "bench-manager" => setup::step(
            "manager store bench (1,000 plugins)",
            &["bench", "-p", "dockplug-manager", "--bench", "store"],
            &[],
        ),
        "help" | "--help" | "-h" => {
            println!("{}", HELP);
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

const HELP: &str = "usage: cargo xtask <task>

tasks:
  ci      install prerequisites, then fmt, clippy, tests, docs, cargo-deny
  setup   install prerequisites only
  demo    start localvol, find and drive it with dockplug-v1, print a transcript
  package localvol [--out DIR]
          package localvol as a v2 plugin directory (config.json + rootfs/)
  bench   dockplug's v1 client vs Moby's Go client on one plugin server (installs Go; not in ci)
  bench-all [--json] [--quick] [--only rpc,discovery,enable,registry,daemon]
          every side-by-side figure vs Moby's code in one run: JSON lines, a markdown table (not in ci)
  bench-manager
          the manager with 1,000 plugins in its store: load time, list and inspect latency, heap
  bench-daemon
          the docker CLI against dockplugd vs dockerd: create, enable, disable, rm, install, RSS, restart (not in ci)
  bench-enable
          enable-to-ready latency and memory with 20 plugins: dockplug on containerd vs dockerd (not in ci)
  bench-registry
          install, pull and push through one registry: dockplugd vs dockerd, median ratios (not in ci)
  fuzz (--list | --all | <name>...) [--seconds N]
          the parsers' fuzz targets under libFuzzer via cargo-fuzz, N s each (not in ci)
  crash-loop [--seconds N | --rounds N] [--seed S] [--favour OP]
          kill -9 dockplugd at random points of create, pull, set, enable, disable, upgrade, rm; check after each restart (not in ci; a short loop is)
  load [--requests N] [--fleet N] [--installs N] [--rounds N] [--release]
          1,000 concurrent list/inspect requests with 20 plugins enabled plus 20 concurrent installs: p50/p99, errors, RSS (not in ci)";

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    setup::all()?;
    setup::step("cargo fmt --check", &["fmt", "--all", "--", "--check"], &[])?;
    setup::step(
        "clippy (warnings denied)",
        &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"],
        &[],
    )?;
    setup::step("the whole test suite", &["test", "--workspace", "--locked"], &[])?;
    setup::step(
        "cargo doc (warnings denied)",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    setup::step("cargo deny", &["deny", "--locked", "check", "licenses", "bans", "sources"], &[])?;
    advisories::report(&setup::workspace_root());
    println!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}
