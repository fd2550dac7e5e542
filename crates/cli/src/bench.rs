//! `dockplug bench`: a load generator for one plugin method, reporting calls per second,
//! p50/p99 latency and the client's CPU time per call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockplug_v1::Client;
use serde::Serialize;
use serde_json::Value;

/// What one run measured; printed as one JSON line with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Concurrency.
    pub c: usize,
    /// Calls completed per second (errors included).
    pub calls_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Calls that failed.
    pub errors: usize,
    /// The process's CPU time (user + system) per call, nanoseconds.
    pub cpu_ns_per_call: u64,
}

fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, (t.tv_usec() as u32) * 1000)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Make `n` calls of `method` with `args` over `c` concurrent callers sharing `client`.
pub async fn run(client: Client, method: String, args: Value, n: usize, c: usize) -> Report {
    let c = c.max(1);
    let n = n.max(1);
    // Warm up: open the connections the measured run will reuse.
    for _ in 0..c {
        let _ = client.call::<_, Value>(&method, &args).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let (cpu0, started) = (cpu_time(), Instant::now());
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (client, method, args) = (client.clone(), method.clone(), args.clone());
            let (next, errors, latencies) =
                (Arc::clone(&next), Arc::clone(&errors), Arc::clone(&latencies));
            tokio::spawn(async move {
                let mut mine = Vec::with_capacity(n / c + 1);
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let t = Instant::now();
                    if client.call::<_, Value>(&method, &args).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    mine.push(t.elapsed().as_micros() as u64);
                }
                latencies.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len().saturating_sub(1)) as f64 * p) as usize).copied();
    Report {
        c,
        calls_per_sec: n as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50).unwrap_or_default(),
        p99_us: pct(0.99).unwrap_or_default(),
        errors: errors.load(Ordering::Relaxed),
        cpu_ns_per_call: (cpu.as_nanos() / n as u128) as u64,
    }
}
