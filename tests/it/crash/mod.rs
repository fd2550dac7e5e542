//! Crash consistency of dockplugd, the short version that runs in `cargo xtask ci`: a few
//! rounds of the testkit's crash loop (one docker CLI operation each, SIGKILL after a seeded
//! random delay, restart, then the checks: plugins whole and inspectable, nothing
//! acknowledged lost, staging swept, no containerd task or shim without its plugin, GC
//! removes orphaned blobs). `cargo xtask crash-loop` runs the long version.

use std::time::{Duration, Instant};

use dockplug_testkit::crash::{clock_seed, CrashLoop, CrashOptions};

use crate::daemon::dockplugd;

/// Rounds of the short loop (well under a second each once the binaries are built).
const ROUNDS: u64 = 12;
/// The loop's bound (after the set-up).
const BOUND: Duration = Duration::from_secs(60);

#[test]
fn kill_9_at_random_points_loses_nothing_acknowledged() {
    crate::support::require_root();
    // DOCKPLUG_CRASH_SEED replays a failing sequence.
    let seed = std::env::var("DOCKPLUG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    eprintln!("crash loop seed {seed} (DOCKPLUG_CRASH_SEED={seed} replays it)");
    let options = CrashOptions {
        dockplugd: dockplugd::binary(),
        localvol: crate::support::localvol::binary(),
        seed,
        kill_after_ack: Vec::new(),
        favour: None,
    };
    let started = Instant::now();
    let mut crash = CrashLoop::start(&options).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    eprintln!("set up in {:?}", started.elapsed());
    for _ in 0..ROUNDS {
        let round = crash.round().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprintln!("{:>6.1} s {round:?}", started.elapsed().as_secs_f64());
        assert!(started.elapsed() < BOUND, "seed {seed}: the loop took {:?}", started.elapsed());
    }
    let removed = crash.gc_check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    eprintln!("{:?}; final GC removed {removed} orphaned blobs", crash.summary);
    assert_eq!(crash.summary.rounds, ROUNDS);
}
