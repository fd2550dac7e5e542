//! `cargo xtask bench-all [--json] [--quick]`: every side-by-side benchmark the project has,
//! in one run, each figure a median ratio of dockplug to Moby's own code (Moby's Go
//! `pkg/plugins` client and discovery, a Go net/http plugin server, dockerd 20.10).
//!
//! Sections: the v1 RPC (our client and Moby's on the Go server at C=1 and C=8; our SDK
//! server against the Go server with our client at C=8), v1 discovery (scan, lookup and a
//! cold `GetAll` of 600 entries), enable-to-ready and memory (`bench-enable`), install and
//! push through a registry (`bench-registry`), the daemon through the docker CLI
//! (`bench-daemon`: create, enable, RSS, restart). Each section alternates its two sides
//! within the run. With `--json`, one JSON line per figure
//! (`{"measure","unit","dockplug","reference","ratio","goal","meets"}`) comes first; a
//! markdown table always closes the run. `--quick` runs fewer rounds. Not part of `ci`.

use anyhow::{bail, Result};

use crate::{bench_daemon, bench_discovery, bench_enable, bench_registry, bench_rpc};

/// Which way a figure is better.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Ratio (dockplug / reference) at most this (times, memory).
    AtMost(f64),
    /// Ratio at least this (throughput).
    AtLeast(f64),
    /// Reported, no goal set.
    None,
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtMost(v) => format!("<= {v}"),
            Goal::AtLeast(v) => format!(">= {v}"),
            Goal::None => String::new(),
        }
    }

    fn meets(self, ratio: f64) -> Option<bool> {
        match self {
            Goal::AtMost(v) => Some(ratio <= v),
            Goal::AtLeast(v) => Some(ratio >= v),
            Goal::None => None,
        }
    }
}

/// One side-by-side figure: medians of both sides and their ratio.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What is measured, e.g. "v1 client calls/s on the Go server, C=1".
    pub measure: String,
    /// The unit of both values.
    pub unit: &'static str,
    /// dockplug's median.
    pub dockplug: f64,
    /// The reference's (Moby's) median.
    pub reference: f64,
    /// The goal for `dockplug / reference`.
    pub goal: Goal,
}

impl Figure {
    pub fn new(
        measure: impl Into<String>,
        unit: &'static str,
        dockplug: f64,
        reference: f64,
        goal: Goal,
    ) -> Figure {
        Figure { measure: measure.into(), unit, dockplug, reference, goal }
    }

    pub fn ratio(&self) -> f64 {
        self.dockplug / self.reference
    }

    pub fn json(&self) -> String {
        let num = |v: f64| if v.is_finite() { format!("{v:.4}") } else { "null".to_owned() };
        let meets = match self.goal.meets(self.ratio()) {
            Some(b) => b.to_string(),
            None => "null".to_owned(),
        };
        format!(
            "{{\"measure\":{},\"unit\":{},\"dockplug\":{},\"reference\":{},\"ratio\":{},\"goal\":{},\"meets\":{meets}}}",
            quote(&self.measure),
            quote(self.unit),
            num(self.dockplug),
            num(self.reference),
            num(self.ratio()),
            quote(&self.goal.text()),
        )
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The median of `v` (NaN when empty; the mean of the middle two when even).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Prints the figures as a markdown table.
pub fn table(figures: &[Figure]) {
    println!("| measure | unit | dockplug | reference (Moby) | ratio | goal | meets |");
    println!("|---|---|---:|---:|---:|---|---|");
    for f in figures {
        let meets = match f.goal.meets(f.ratio()) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {meets} |",
            f.measure,
            f.unit,
            value(f.dockplug),
            value(f.reference),
            f.ratio(),
            f.goal.text()
        );
    }
}

fn value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// `cargo xtask bench-all [--json] [--quick] [--only SECTION,...]`.
pub fn run(args: &[String]) -> Result<()> {
    let (mut json, mut quick) = (false, false);
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--quick" => quick = true,
            "--only" => {
                let list = it.next().map(String::as_str).unwrap_or_default();
                only = Some(list.split(',').map(str::to_owned).collect());
            }
            other => bail!(
                "unknown bench-all option {other:?} (usage: cargo xtask bench-all [--json] [--quick] [--only rpc,discovery,enable,registry,daemon])"
            ),
        }
    }
    let wanted = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let started = std::time::Instant::now();
    let mut figures = Vec::new();
    let mut failed = Vec::new();
    type Section = fn(bool) -> Result<Vec<Figure>>;
    let sections: [(&str, Section); 5] = [
        ("rpc", bench_rpc::figures),
        ("discovery", bench_discovery::figures),
        ("enable", bench_enable::figures),
        ("registry", bench_registry::figures),
        ("daemon", bench_daemon::figures),
    ];
    for (name, section) in sections {
        if !wanted(name) {
            continue;
        }
        println!("xtask bench-all: section {name} ({:.0?} so far)", started.elapsed());
        match section(quick) {
            Ok(f) => {
                // Each section's table as it ends, so a long run shows figures early.
                println!();
                table(&f);
                figures.extend(f);
            }
            Err(e) => {
                eprintln!("xtask bench-all: section {name} failed: {e:#}");
                failed.push(name);
            }
        }
    }
    println!();
    if json {
        for f in &figures {
            println!("{}", f.json());
        }
        println!();
    }
    table(&figures);
    println!(
        "\nxtask bench-all: {} figures in {:.0?}{}",
        figures.len(),
        started.elapsed(),
        if quick { " (--quick)" } else { "" }
    );
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}
