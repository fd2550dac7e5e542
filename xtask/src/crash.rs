//! `cargo xtask crash-loop [--seconds N | --rounds N] [--seed S] [--favour OP]`: the crash loop of
//! `dockplug_testkit::crash` for many rounds. Each round runs one docker CLI operation
//! against a private dockplugd (create, pull, set, enable, disable, upgrade, remove), kills
//! the daemon with SIGKILL after a seeded random delay, restarts it and checks that every
//! listed plugin is whole, nothing acknowledged is lost, staging is swept, containerd holds
//! nothing without its plugin and GC removes orphaned blobs. Prints the seed first (a failure
//! replays with `--seed`), one line per round and the kill points hit per operation. Bounded
//! by `--seconds` (default 300) or `--rounds`. `--favour disable` (or another operation) aims
//! most kills at that operation. The `crash` module of the integration tests
//! runs a few rounds of the same loop in `ci`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dockplug_testkit::crash::{clock_seed, CrashLoop, CrashOptions, Op};

use crate::setup;

/// Parses the arguments and runs the loop.
pub fn task(args: &[String]) -> Result<()> {
    let (mut seconds, mut rounds, mut seed, mut favour) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| -> Result<u64> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} takes a number"))
        };
        match a.as_str() {
            "--seconds" => seconds = Some(value("--seconds")?),
            "--rounds" => rounds = Some(value("--rounds")?),
            "--seed" => seed = Some(value("--seed")?),
            "--favour" => {
                let name = it.next().context("--favour needs an operation")?;
                favour = Some(parse_op(name)?);
            }
            other => {
                bail!("crash-loop: unknown argument {other:?} (--seconds N | --rounds N, --seed S, --favour OP)")
            }
        }
    }
    let bound =
        Duration::from_secs(seconds.unwrap_or(if rounds.is_some() { u64::MAX / 4 } else { 300 }));
    let rounds = rounds.unwrap_or(u64::MAX);
    let seed = seed.unwrap_or_else(clock_seed);

    setup::debian_packages(setup::INTEGRATION_PACKAGES)?;
    setup::step(
        "build dockplugd and localvol",
        &[
            "build",
            "--quiet",
            "-p",
            "dockplug-daemon",
            "--bin",
            "dockplugd",
            "-p",
            "dockplug-localvol",
            "--bin",
            "localvol",
        ],
        &[],
    )?;
    let bin = setup::profile_dir("debug");
    println!("crash-loop: seed {seed} (replay: cargo xtask crash-loop --seed {seed})");
    let options = CrashOptions {
        dockplugd: bin.join("dockplugd"),
        localvol: bin.join("localvol"),
        seed,
        kill_after_ack: Vec::new(),
        favour,
    };
    let mut crash = CrashLoop::start(&options).context("start the crash loop")?;
    let started = Instant::now();
    let mut n = 0;
    while n < rounds && started.elapsed() < bound {
        let round = crash.round().with_context(|| format!("round {} (seed {seed})", n + 1))?;
        n += 1;
        println!(
            "round {n:>4}  {:<8} {:<10} kill at {:>5} ms  {}{}",
            format!("{:?}", round.op),
            round.name,
            round.delay.as_millis(),
            match (round.acknowledged, round.applied) {
                (true, _) => "after the acknowledgement",
                (false, true) => "mid-way, result kept",
                (false, false) => "mid-way, state before kept",
            },
            round
                .gc_removed
                .map(|g| format!("; GC check: {g} orphaned blobs removed"))
                .unwrap_or_default(),
        );
    }
    let removed = crash.gc_check().with_context(|| format!("the final GC check (seed {seed})"))?;
    let s = &crash.summary;
    println!(
        "\ncrash-loop: {} rounds in {:.0} s, seed {seed}, no inconsistency",
        s.rounds,
        started.elapsed().as_secs_f64()
    );
    println!("| operation | killed mid-way, state before | killed mid-way, result | killed after the ack |");
    println!("|---|---|---|---|");
    for (op, (before, after, acked)) in &s.kills {
        println!("| {op:?} | {before} | {after} | {acked} |");
    }
    println!(
        "GC checks: {} (the last removed {removed}), orphaned blobs removed: {}",
        s.gc_checks, s.gc_removed
    );
    Ok(())
}

/// An operation by its name (`create`, `pull`, `set`, `enable`, `disable`, `upgrade`, `remove`).
fn parse_op(name: &str) -> Result<Op> {
    Ok(match name {
        "create" => Op::Create,
        "pull" => Op::Pull,
        "set" => Op::Set,
        "enable" => Op::Enable,
        "disable" => Op::Disable,
        "upgrade" => Op::Upgrade,
        "remove" => Op::Remove,
        other => bail!("--favour: no operation {other:?} (create, pull, set, enable, disable, upgrade, remove)"),
    })
}
