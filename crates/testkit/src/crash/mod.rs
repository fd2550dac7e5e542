//! A crash loop over a private dockplugd: each round runs one docker CLI operation (create,
//! pull, set, enable, disable, upgrade or remove) and kills the daemon with SIGKILL after a
//! random delay, restarts it on the same paths and checks what a crash may not break:
//!
//! - every listed plugin is inspectable and whole (its record and its rootfs, the binary at
//!   its full size);
//! - nothing acknowledged is lost: an operation whose CLI exited 0 before the kill shows its
//!   effect, an interrupted one shows either the state before or the state after, never a
//!   third, and no other plugin changed;
//! - the staging directory (`<data-root>/plugins/tmp`) and the blob ingest directory are
//!   swept, and no plugin was set aside as broken;
//! - containerd holds exactly one running task, one container and one shim per enabled
//!   plugin (nothing left without its plugin), and each enabled plugin answers on its socket;
//! - every few rounds, a remove triggers GC and no orphaned blob stays in the store.
//!
//! The delays come from a seeded generator; the seed is part of the report so a failing
//! sequence can be replayed. Shared by `cargo xtask crash-loop` and the `crash` module of the
//! integration tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{self, Request};
use crate::{program, wait_until, Containerd, Dockplugd, DockplugdOptions, Error, Registry};

mod check;

/// Plugin names the loop works on (`c0:latest` ...).
const NAMES: usize = 4;
/// How long a killed operation's CLI may take to notice.
const CLI_EXIT: Duration = Duration::from_secs(30);
/// How long containerd and the restored plugins may take to settle after a restart.
const SETTLE: Duration = Duration::from_secs(60);
/// A GC check every this many rounds.
const GC_EVERY: u64 = 5;

/// The operations the loop interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `docker plugin create NAME DIR`.
    Create,
    /// `docker plugin install --disable --alias NAME REMOTE` (a pull).
    Pull,
    /// `docker plugin set NAME LOCALVOL_LOG=...`.
    Set,
    /// `docker plugin enable NAME`.
    Enable,
    /// `docker plugin disable NAME`.
    Disable,
    /// `docker plugin upgrade NAME REMOTE` (the other tag).
    Upgrade,
    /// `docker plugin rm -f NAME`.
    Remove,
}

/// One plugin as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `Id`.
    pub id: String,
    /// `Enabled`.
    pub enabled: bool,
    /// The value of `LOCALVOL_LOG` in `Settings.Env`.
    pub log: Option<String>,
    /// `PluginReference`.
    pub reference: String,
}

/// What an operation leads to; `None` fields match anything.
#[derive(Debug, Clone, Default)]
struct Pattern {
    absent: bool,
    id: Option<String>,
    enabled: Option<bool>,
    log: Option<Option<String>>,
    reference: Option<String>,
}

impl Pattern {
    fn matches(&self, s: Option<&State>) -> bool {
        match s {
            None => self.absent,
            Some(s) => {
                !self.absent
                    && self.id.as_ref().is_none_or(|i| *i == s.id)
                    && self.enabled.is_none_or(|e| e == s.enabled)
                    && self.log.as_ref().is_none_or(|l| *l == s.log)
                    && self.reference.as_ref().is_none_or(|r| *r == s.reference)
            }
        }
    }
}

/// What a round did and found.
#[derive(Debug, Clone)]
pub struct Round {
    /// The operation.
    pub op: Op,
    /// The plugin name.
    pub name: String,
    /// The delay before SIGKILL, from the operation's start.
    pub delay: Duration,
    /// Whether the CLI had exited 0 before the kill (the operation was acknowledged).
    pub acknowledged: bool,
    /// Whether the state after the restart is the operation's result (else the state before).
    pub applied: bool,
    /// Orphaned blobs GC removed this round (when a GC check ran).
    pub gc_removed: Option<usize>,
}

/// Counters over the whole loop.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Rounds run.
    pub rounds: u64,
    /// Per operation: (killed mid-way with the old state kept, killed mid-way with the new
    /// state, killed after the acknowledgement).
    pub kills: BTreeMap<Op, (u64, u64, u64)>,
    /// GC checks run, and orphaned blobs they saw removed.
    pub gc_checks: u64,
    /// Orphaned blobs removed by GC in those checks.
    pub gc_removed: usize,
}

/// How the loop is set up.
#[derive(Debug, Clone)]
pub struct CrashOptions {
    /// The `dockplugd` binary.
    pub dockplugd: PathBuf,
    /// The `localvol` binary packaged as the plugin.
    pub localvol: PathBuf,
    /// The seed of the delays.
    pub seed: u64,
    /// Operations that always finish before the kill (their acknowledged result is still
    /// checked): a known defect at one kill point, quarantined where a run must be green.
    pub kill_after_ack: Vec<Op>,
    /// An operation to aim at: whenever a plugin's state allows it, it is picked (and a
    /// plugin in the state before it is brought there), so most kills land in it.
    pub favour: Option<Op>,
}

/// A seeded splitmix64: enough to spread the kill points, and reproducible.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A seed from the clock, for a caller that was given none.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// The loop: a private containerd, a registry holding two tags of the plugin, and dockplugd.
#[derive(Debug)]
pub struct CrashLoop {
    /// Declared first: stopped before containerd and its directory go.
    daemon: Dockplugd,
    registry: Registry,
    containerd: Containerd,
    dir: tempfile::TempDir,
    plugin_dir: PathBuf,
    remote: String,
    binary_size: u64,
    model: BTreeMap<String, State>,
    rng: Rng,
    kill_after_ack: Vec<Op>,
    favour: Option<Op>,
    /// Per operation, the last uninterrupted duration: the range of the next kill delays.
    estimate: BTreeMap<Op, Duration>,
    /// Counters so far.
    pub summary: Summary,
}

fn protocol(what: &str, detail: impl Into<String>) -> Error {
    Error::protocol(what.to_owned(), detail)
}

impl CrashLoop {
    /// Starts containerd, the registry and dockplugd, and pushes `crash/lv:latest` and
    /// `crash/lv:v2` (another description) to the registry.
    pub fn start(options: &CrashOptions) -> Result<CrashLoop, Error> {
        let dir = crate::temp_dir("dpc")?;
        let plugin_dir = crate::package::localvol_plugin(&options.localvol, &dir.path().join("p"))?;
        let binary_size = std::fs::metadata(plugin_dir.join("rootfs/localvol"))
            .map_err(|e| Error::io("stat the packaged localvol", e))?
            .len();
        let containerd = Containerd::start()?;
        let registry = Registry::plain()?;
        let mut opts = DockplugdOptions::new(&options.dockplugd);
        opts.containerd = Some(containerd.socket.clone());
        opts.plugins_namespace = Some(containerd.namespace.clone());
        opts.args = vec![
            "--insecure-registry".into(),
            registry.host(),
            "--log-level".into(),
            "warn".into(),
        ];
        let daemon = Dockplugd::start(&dir.path().join("d"), &opts)?;
        let remote = format!("{}/crash/lv", registry.host());
        let this = CrashLoop {
            daemon,
            registry,
            containerd,
            plugin_dir,
            remote,
            binary_size,
            model: BTreeMap::new(),
            rng: Rng(options.seed),
            kill_after_ack: options.kill_after_ack.clone(),
            favour: options.favour,
            estimate: BTreeMap::new(),
            summary: Summary::default(),
            dir,
        };
        let v2 = this.second_version()?;
        let (latest, tagged) = (format!("{}:latest", this.remote), format!("{}:v2", this.remote));
        let plugin_dir = this.path_str(&this.plugin_dir)?;
        for (name, dir) in [(&latest, &plugin_dir), (&tagged, &v2)] {
            this.docker_ok(&["plugin", "create", name, dir])?;
            this.docker_ok(&["plugin", "push", name])?;
            this.docker_ok(&["plugin", "rm", name])?;
        }
        Ok(this)
    }

    /// The registry the plugin is pulled from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn path_str(&self, p: &Path) -> Result<String, Error> {
        p.to_str().map(str::to_owned).ok_or_else(|| protocol("a path", "not UTF-8"))
    }

    fn second_version(&self) -> Result<String, Error> {
        let out = self.dir.path().join("p2");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&self.plugin_dir)
            .arg(&out)
            .status()
            .map_err(|e| Error::io("cp the plugin", e))?;
        if !status.success() {
            return Err(protocol("copy the plugin directory", status.to_string()));
        }
        let config = out.join("config.json");
        let text =
            std::fs::read_to_string(&config).map_err(|e| Error::io("read config.json", e))?;
        let text = text.replacen("\"Description\": \"", "\"Description\": \"second version: ", 1);
        std::fs::write(&config, text).map_err(|e| Error::io("write config.json", e))?;
        self.path_str(&out)
    }

    fn docker_cmd(&self, args: &[&str]) -> Result<Command, Error> {
        let mut cmd = Command::new(program("docker")?);
        cmd.args(args)
            .env("DOCKER_HOST", &self.daemon.host)
            .env("DOCKER_CONFIG", self.daemon.dir.join("cli-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    fn docker_ok(&self, args: &[&str]) -> Result<(), Error> {
        let out = self
            .docker_cmd(args)?
            .output()
            .map_err(|e| Error::io(format!("run docker {}", args.join(" ")), e))?;
        if !out.status.success() {
            return Err(protocol(
                &format!("docker {}", args.join(" ")),
                format!("{}\n{}", String::from_utf8_lossy(&out.stderr), self.daemon.log_tail()),
            ));
        }
        Ok(())
    }

    /// Picks a plugin and an operation that applies to its state, with its arguments and
    /// the pattern of the state it leads to.
    fn pick(&mut self) -> (Op, String, Vec<String>, Pattern) {
        let name = format!("c{}:latest", self.rng.below(NAMES as u64));
        let latest = format!("{}:latest", self.remote);
        let v2 = format!("{}:v2", self.remote);
        let cur = self.model.get(&name).cloned();
        let ops: &[Op] = match &cur {
            None => &[Op::Create, Op::Pull],
            Some(s) if s.enabled => &[Op::Disable, Op::Disable, Op::Remove],
            Some(s) if s.reference.is_empty() => &[Op::Set, Op::Enable, Op::Remove],
            Some(_) => &[Op::Set, Op::Enable, Op::Upgrade, Op::Upgrade, Op::Remove],
        };
        let mut op = ops[self.rng.below(ops.len() as u64) as usize];
        if let Some(favour) = self.favour {
            // The favoured operation if it applies, else the step towards a state it does.
            let towards = match (favour, &cur) {
                (Op::Disable, Some(s)) if !s.enabled => Some(Op::Enable),
                (Op::Enable | Op::Set | Op::Upgrade, Some(s)) if s.enabled => Some(Op::Disable),
                (Op::Create | Op::Pull, Some(_)) => Some(Op::Remove),
                _ => None,
            };
            if ops.contains(&favour) {
                op = favour;
            } else if let Some(t) = towards.filter(|t| ops.contains(t)) {
                op = t;
            }
        }
        let keep = |s: &State| Pattern {
            absent: false,
            id: Some(s.id.clone()),
            enabled: Some(s.enabled),
            log: Some(s.log.clone()),
            reference: Some(s.reference.clone()),
        };
        let s = cur.as_ref();
        let (args, pattern) = match (op, s) {
            (Op::Create, _) => (
                vec![
                    "plugin".into(),
                    "create".into(),
                    name.clone(),
                    self.plugin_dir.display().to_string(),
                ],
                Pattern { enabled: Some(false), ..Pattern::default() },
            ),
            (Op::Pull, _) => (
                [
                    "plugin",
                    "install",
                    "--disable",
                    "--grant-all-permissions",
                    "--alias",
                    &name,
                    &latest,
                ]
                .map(str::to_owned)
                .to_vec(),
                Pattern {
                    enabled: Some(false),
                    reference: Some(latest.clone()),
                    ..Pattern::default()
                },
            ),
            (Op::Set, Some(s)) => {
                let value = if s.log.as_deref() == Some("debug") { "warn" } else { "debug" };
                (
                    ["plugin", "set", &name, &format!("LOCALVOL_LOG={value}")]
                        .map(str::to_owned)
                        .to_vec(),
                    Pattern { log: Some(Some(value.to_owned())), ..keep(s) },
                )
            }
            (Op::Enable, Some(s)) => (
                ["plugin", "enable", "--timeout", "30", &name].map(str::to_owned).to_vec(),
                Pattern { enabled: Some(true), ..keep(s) },
            ),
            (Op::Disable, Some(s)) => (
                ["plugin", "disable", &name].map(str::to_owned).to_vec(),
                Pattern { enabled: Some(false), ..keep(s) },
            ),
            (Op::Upgrade, Some(s)) => {
                let to = if s.reference == latest { &v2 } else { &latest };
                (
                    [
                        "plugin",
                        "upgrade",
                        "--grant-all-permissions",
                        "--skip-remote-check",
                        &name,
                        to,
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    Pattern { reference: Some(to.clone()), ..keep(s) },
                )
            }
            (Op::Remove, _) | (_, None) => (
                ["plugin", "rm", "-f", &name].map(str::to_owned).to_vec(),
                Pattern { absent: true, ..Pattern::default() },
            ),
        };
        (op, name, args, pattern)
    }

    /// One round: an operation, SIGKILL after a random delay, a restart and the checks.
    pub fn round(&mut self) -> Result<Round, Error> {
        let (op, name, args, pattern) = self.pick();
        let estimate = *self.estimate.get(&op).unwrap_or(&Duration::from_millis(800));
        // One round in four lets the operation finish first: the kill then tests that an
        // acknowledged result survives, and the duration measured bounds later delays.
        let complete = self.rng.below(4) == 0 || self.kill_after_ack.contains(&op);
        let delay =
            Duration::from_millis(self.rng.below(estimate.as_millis() as u64 * 11 / 10 + 1));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let mut child = self
            .docker_cmd(&argv)?
            .spawn()
            .map_err(|e| Error::io(format!("run docker {}", argv.join(" ")), e))?;
        let acknowledged = if complete {
            let status = wait_child(&mut child, Duration::from_secs(180))?;
            self.estimate.insert(op, started.elapsed());
            if !status {
                return Err(protocol(
                    &format!("docker {}", argv.join(" ")),
                    format!(
                        "failed without a kill: {}\n{}",
                        stderr_of(child),
                        self.daemon.log_tail()
                    ),
                ));
            }
            true
        } else {
            // The kill point: a deliberate delay, not a synchronisation.
            std::thread::sleep(delay);
            matches!(child.try_wait(), Ok(Some(s)) if s.success())
        };
        let delay = started.elapsed();
        if acknowledged && !complete {
            // Done before the kill point: aim earlier next time.
            let e = self.estimate.entry(op).or_insert(estimate);
            *e = *e * 3 / 4;
        }
        self.daemon.kill();
        let exited_ok = wait_child(&mut child, CLI_EXIT)?;
        // A CLI that exits 0 after the kill got its success reply before it: acknowledged.
        let acknowledged = acknowledged || exited_ok;
        self.daemon.restart()?;
        let observed = self.check().map_err(|e| {
            protocol(
                &format!(
                    "after a kill {delay:?} into {op:?} {name} (acknowledged: {acknowledged})"
                ),
                e.to_string(),
            )
        })?;
        let old = self.model.get(&name).cloned();
        let new = observed.get(&name).cloned();
        let applied = pattern.matches(new.as_ref());
        let kept = old == new;
        if !applied && (acknowledged || !kept) {
            return Err(protocol(
                &format!(
                    "after a kill {delay:?} into {op:?} {name} (acknowledged: {acknowledged})"
                ),
                format!(
                    "before {old:?}, after {new:?}, expected {pattern:?}\n{}",
                    self.daemon.log()
                ),
            ));
        }
        for (other, state) in &self.model {
            if *other != name && observed.get(other) != Some(state) {
                return Err(protocol(
                    &format!("after a kill into {op:?} {name}"),
                    format!("{other} changed: {state:?} -> {:?}", observed.get(other)),
                ));
            }
        }
        if let Some(extra) = observed.keys().find(|n| **n != name && !self.model.contains_key(*n)) {
            return Err(protocol(
                &format!("after a kill into {op:?} {name}"),
                format!("{extra} appeared"),
            ));
        }
        self.model = observed;
        self.summary.rounds += 1;
        let entry = self.summary.kills.entry(op).or_default();
        match (acknowledged, kept && !applied) {
            (true, _) => entry.2 += 1,
            (false, true) => entry.0 += 1,
            (false, false) => entry.1 += 1,
        }
        let gc_removed =
            if self.summary.rounds % GC_EVERY == 0 { Some(self.gc_check()?) } else { None };
        Ok(Round {
            op,
            name,
            delay,
            acknowledged,
            applied: applied && (acknowledged || !kept),
            gc_removed,
        })
    }

    /// The daemon, for a caller's own checks.
    pub fn daemon(&self) -> &Dockplugd {
        &self.daemon
    }
}

/// Waits for `child` to exit (killing it after `deadline`); whether it exited 0.
fn wait_child(child: &mut Child, deadline: Duration) -> Result<bool, Error> {
    let mut status = None;
    wait_until(deadline, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    match status {
        Some(s) => Ok(s.success()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(protocol("the docker CLI", format!("did not exit within {deadline:?}")))
        }
    }
}

fn stderr_of(mut child: Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}
