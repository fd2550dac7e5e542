//! dockplug's task runner, in the cargo-xtask shape: `cargo xtask <task>`.
//!
//! Everything a person would otherwise type by hand lives here, and each task installs what a
//! fresh machine lacks before it starts, saying what it is doing.
//!
//! | task | what it does |
//! |------|--------------|
//! | `ci` | install prerequisites, then fmt, clippy (`-D warnings`), the whole test suite, docs (`-D warnings`), cargo-deny |
//! | `setup` | install prerequisites only |

mod setup;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    match task {
        "ci" => ci(),
        "setup" => setup::all(),
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
  setup   install prerequisites only";

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
    println!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}
