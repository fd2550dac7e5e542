//! The dockplug side of `cargo xtask bench-all`'s discovery figures, the counterpart of
//! `xtask/bench-go-ref discovery`: [`LocalRegistry::scan`] (median of ROUNDS),
//! [`LocalRegistry::plugin`] of NAME (median of ROUNDS), then one [`Registry::get_all`] of
//! `VolumeDriver` in this fresh process (cold: nothing activated yet).
//!
//! Usage: `bench_discovery SOCKDIR SPECDIR ROUNDS NAME`; prints one JSON line
//! `{"first_scan_us","scan_us","lookup_us","getall_ms","found","activated"}`: the first scan
//! reads both directories; the later ones find them unchanged and reuse what the first read
//! (see [`LocalRegistry::scan`]).

use std::time::{Duration, Instant};

use dockplug_v1::{LocalRegistry, Registry, RegistryConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sockets, specs, rounds, name] = args.as_slice() else {
        return Err("usage: bench_discovery SOCKDIR SPECDIR ROUNDS NAME".into());
    };
    let rounds: usize = rounds.parse()?;
    if rounds == 0 {
        return Err("ROUNDS must be positive".into());
    }
    let local = LocalRegistry::with_dirs([sockets], [specs]);
    let mut scans = Vec::with_capacity(rounds);
    let mut found = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let names = local.scan()?;
        scans.push(t.elapsed());
        found = names.len();
    }
    let mut lookups = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        local.plugin(name)?;
        lookups.push(t.elapsed());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let registry = Registry::new(local, RegistryConfig::default());
    let t = Instant::now();
    let all = runtime.block_on(registry.get_all("VolumeDriver"))?;
    let getall = t.elapsed();
    println!(
        "{{\"first_scan_us\":{:.2},\"scan_us\":{:.2},\"lookup_us\":{:.2},\"getall_ms\":{:.3},\"found\":{found},\"activated\":{}}}",
        scans[0].as_secs_f64() * 1e6,
        median(scans).as_secs_f64() * 1e6,
        median(lookups).as_secs_f64() * 1e6,
        getall.as_secs_f64() * 1e3,
        all.len()
    );
    Ok(())
}
