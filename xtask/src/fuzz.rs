//! `cargo xtask fuzz`: the fuzz targets of `dockplug-fuzz` under libFuzzer, through cargo-fuzz.
//!
//! ```text
//! cargo xtask fuzz --list                  one target name per line
//! cargo xtask fuzz <name>... [--seconds N] the targets named, N seconds each (default 60)
//! cargo xtask fuzz --all [--seconds N]     every target for N seconds each
//! ```
//!
//! The bodies live in `crates/fuzz` (the same functions the bounded property tests of `ci`
//! run); `fuzz/` is cargo-fuzz's harness, its own workspace. `cargo fuzz build` builds the
//! targets once; each then runs as that binary (what `cargo fuzz run` would start, without
//! its rebuild), so a run uses one snapshot of a tree others may be editing. A run fails when
//! libFuzzer reports a crash: the input is kept in `fuzz/artifacts/<name>/` (ignored by git)
//! and becomes a regression test in `crates/fuzz/src/regressions.rs`. New inputs libFuzzer
//! finds go to `fuzz/target/corpus/<name>/` (ignored too); the seeds in `fuzz/corpus/<name>/`
//! are read only.
//!
//! cargo-fuzz passes `-Z` flags to rustc (sanitizer coverage), which only a nightly compiler
//! takes. This task uses the `nightly` toolchain when rustup has one; otherwise it runs the
//! stable compiler with `RUSTC_BOOTSTRAP=1`, which makes it accept those flags. AddressSanitizer
//! is used when the toolchain ships its runtime (`librustc-*_rt.asan.a`), else `-s none`
//! (coverage-guided fuzzing without a sanitizer: safe Rust needs none to find panics, only
//! the C of a dependency would). cargo-fuzz itself is installed from crates.io on first use;
//! where it cannot be, or the build fails, the task says what is missing and fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::setup;

const USAGE: &str = "usage: cargo xtask fuzz (--list | --all | <name>...) [--seconds N]";

/// The fuzz harness directory.
fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Target names, from the harness's `fuzz_targets/*.rs` (the fuzz crate's tests check that
/// these are exactly its `TARGETS`).
fn targets() -> Result<Vec<String>> {
    let dir = harness().join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// How cargo-fuzz is driven on this machine.
struct Toolchain {
    /// `+nightly` or nothing.
    plus: Option<&'static str>,
    /// `RUSTC_BOOTSTRAP=1` for the stable compiler.
    bootstrap: bool,
    /// `address` or `none`.
    sanitizer: &'static str,
    about: String,
}

fn sysroot(plus: Option<&str>) -> Option<PathBuf> {
    let mut cmd = Command::new("rustc");
    if let Some(p) = plus {
        cmd.arg(p);
    }
    let out = cmd.args(["--print", "sysroot"]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn has_asan_runtime(sysroot: &Path) -> bool {
    let lib = sysroot.join("lib/rustlib").join(host_triple()).join("lib");
    std::fs::read_dir(lib)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("librustc-") && n.ends_with("_rt.asan.a")
            })
        })
        .unwrap_or(false)
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".to_owned())
}

/// Whether rustup lists an installed nightly toolchain (asked first, so that `+nightly`
/// never makes rustup download one).
fn nightly_installed() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("nightly"))
        })
        .unwrap_or(false)
}

fn toolchain() -> Result<Toolchain> {
    let nightly = if nightly_installed() { sysroot(Some("+nightly")) } else { None };
    let (plus, bootstrap, root) = match nightly {
        Some(root) => (Some("+nightly"), false, root),
        None => (None, true, sysroot(None).context("no rustc answers `--print sysroot`")?),
    };
    let sanitizer = if has_asan_runtime(&root) { "address" } else { "none" };
    let about = format!(
        "{} compiler{}, sanitizer {sanitizer}",
        if plus.is_some() { "nightly" } else { "stable" },
        if bootstrap { " with RUSTC_BOOTSTRAP=1 (no nightly toolchain installed)" } else { "" },
    );
    Ok(Toolchain { plus, bootstrap, sanitizer, about })
}

fn cargo_fuzz(tc: &Toolchain, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    if let Some(p) = tc.plus {
        cmd.arg(p);
    }
    cmd.arg("fuzz").args(args).current_dir(harness());
    if tc.bootstrap {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    // The root workspace's CARGO and toolchain choice must not leak into the harness build.
    cmd.env_remove("CARGO").env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// A private scratch directory on tmpfs (`/dev/shm`) for the targets' temporary files, when
/// the machine has one: the targets that write files (build contexts extracted into a fresh
/// manager root, spec files) run about ten times faster there than on a journaled disk.
fn scratch() -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return None;
    }
    let dir = shm.join(format!("dockplug-fuzz-{}", std::process::id()));
    std::fs::create_dir(&dir).ok().map(|()| dir)
}

/// File names in `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The task.
pub fn task(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 60;
    let mut chosen: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--list" => {
                for t in targets()? {
                    println!("{t}");
                }
                return Ok(());
            }
            "--all" => chosen = Some(targets()?),
            "--seconds" => {
                let v = it.next().context(USAGE)?;
                seconds = v.parse().with_context(|| format!("--seconds {v:?}: {USAGE}"))?;
            }
            name if !name.starts_with('-') => {
                if !targets()?.iter().any(|t| t == name) {
                    bail!("no fuzz target `{name}` (cargo xtask fuzz --list)");
                }
                chosen.get_or_insert_with(Vec::new).push(name.to_owned());
            }
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    let Some(chosen) = chosen else { bail!("{USAGE}") };

    setup::cargo_tool("cargo-fuzz", "cargo-fuzz", "0.13").context(
        "cargo-fuzz is not installed and could not be installed from crates.io; \
         `cargo xtask fuzz` needs it (`cargo install cargo-fuzz`); it is not part of `ci`, \
         whose property tests run the same targets on stable",
    )?;
    let tc = toolchain()?;
    if tc.bootstrap {
        println!(
            "xtask fuzz: no nightly toolchain (`rustup toolchain install nightly` adds one); \
             trying the stable compiler with RUSTC_BOOTSTRAP=1"
        );
    }
    println!("xtask fuzz: libFuzzer through cargo-fuzz, {}", tc.about);
    let sanitizer = ["-s", tc.sanitizer];

    let started = Instant::now();
    println!("xtask fuzz: ==> building {} targets", chosen.len());
    let mut build = cargo_fuzz(&tc, &["build"]);
    build.args(sanitizer);
    if chosen.len() == 1 {
        build.arg(&chosen[0]);
    }
    let status = build.status().context("start `cargo fuzz build`")?;
    if !status.success() {
        let hint = if tc.bootstrap {
            "; a nightly toolchain may build it: `rustup toolchain install nightly`"
        } else {
            ""
        };
        bail!(
            "`cargo fuzz build` failed ({status}) with the {}; libFuzzer cannot run here{hint}",
            tc.about
        );
    }
    println!("xtask fuzz: <== built in {:.1?}", started.elapsed());

    let bin_dir = harness().join("target").join(host_triple()).join("release");
    let mut crashed = Vec::new();
    let mut failed = Vec::new();
    for name in &chosen {
        let work = harness().join("target/corpus").join(name);
        std::fs::create_dir_all(&work).with_context(|| format!("mkdir {}", work.display()))?;
        let artifacts = harness().join("artifacts").join(name);
        std::fs::create_dir_all(&artifacts)
            .with_context(|| format!("mkdir {}", artifacts.display()))?;
        let before = entries(&artifacts);
        let seeds = harness().join("corpus").join(name);
        let max_time = format!("-max_total_time={seconds}");
        let t0 = Instant::now();
        println!("xtask fuzz: ==> {name} for {seconds} s");
        // The binary `cargo fuzz build` made, run directly (as `cargo fuzz run` would, with
        // its artefact prefix and ASan options): every target runs the one build, even while
        // the tree changes under it.
        let binary = bin_dir.join(name);
        let mut run = Command::new(&binary);
        run.arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args([
                &max_time,
                // A single input may take at most 10 s and 2 GiB: a hang or a balloon is a
                // defect too.
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .arg(&work)
            .arg(&seeds)
            .current_dir(harness());
        if tc.sanitizer == "address" {
            run.env("ASAN_OPTIONS", "detect_odr_violation=0");
        }
        let tmp = scratch();
        if let Some(dir) = &tmp {
            run.env("TMPDIR", dir);
        }
        let status = run.status().with_context(|| format!("start {}", binary.display()));
        if let Some(dir) = &tmp {
            // What a crashing input left behind goes with it.
            let _ = std::fs::remove_dir_all(dir);
        }
        let status = status?;
        let new: Vec<String> =
            entries(&artifacts).into_iter().filter(|a| !before.contains(a)).collect();
        if status.success() {
            println!("xtask fuzz: <== {name}: no crash in {:.1?}", t0.elapsed());
        } else if !new.is_empty() {
            println!(
                "xtask fuzz: <== {name}: CRASH ({status}); input kept as fuzz/artifacts/{name}/{}",
                new.join(", ")
            );
            crashed.push(name.clone());
        } else {
            // No input was kept: the harness did not build or the fuzzer did not start.
            println!("xtask fuzz: <== {name}: did not run ({status}); see the output above");
            failed.push(name.clone());
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets that did not build or run: {}", failed.join(", "));
    }
    if !crashed.is_empty() {
        bail!("fuzz targets crashed: {}", crashed.join(", "));
    }
    println!(
        "xtask fuzz: {} targets, {seconds} s each, no crash ({:.0?} in all)",
        chosen.len(),
        started.elapsed()
    );
    Ok(())
}
