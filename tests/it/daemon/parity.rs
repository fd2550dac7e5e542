//! The same `docker plugin` sequence, with the same packaged localvol, against a private
//! dockerd and against dockplugd on one containerd: every step must end the same way (exit
//! status, what the CLI printed, IDs aside), and `docker events` must tell the same story.

use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use dockplug_testkit::{Containerd, Dockerd, DockerdOptions};

use super::dockplugd::{Dockplugd, DOCKER_CLI};
use super::{localvol_dir, small_plugin_dir};

/// One daemon as the CLI sees it.
trait Target {
    fn run(&self, args: &[&str]) -> Output;
}

impl Target for Dockplugd {
    fn run(&self, args: &[&str]) -> Output {
        self.docker(args)
    }
}

struct Docker<'a> {
    dockerd: &'a Dockerd,
    config: std::path::PathBuf,
}

impl Target for Docker<'_> {
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(DOCKER_CLI)
            .args(args)
            .env("DOCKER_HOST", &self.dockerd.host)
            .env("DOCKER_CONFIG", &self.config)
            .output()
            .expect("run docker")
    }
}

/// Plugin IDs (64 hex digits, or the 12 `ls` shows) replaced by as many `#`, so two
/// daemons' outputs compare and tables keep their widths.
fn normalize(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let id = (word.len() == 64 || word.len() == 12)
            && word.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if id {
            out.extend(std::iter::repeat_n('#', word.len()));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Runs the sequence; returns one line per step: the command, exit code, stdout, stderr.
fn sequence(t: &dyn Target, plugin_dir: &str, small_dir: &str) -> Vec<String> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["plugin", "create", "localvol", plugin_dir],
        vec!["plugin", "create", "localvol", small_dir],
        vec!["plugin", "ls"],
        vec!["plugin", "ls", "--no-trunc"],
        vec!["plugin", "ls", "-q", "--filter", "enabled=false"],
        vec!["plugin", "ls", "-q", "--filter", "capability=volumedriver"],
        vec!["plugin", "ls", "-q", "--filter", "capability=authz"],
        vec!["plugin", "inspect", "-f", "{{.Name}} {{.Enabled}} {{.PluginReference}}", "localvol"],
        vec![
            "plugin",
            "inspect",
            "-f",
            "{{.Config.Interface.Socket}} {{.Settings.Env}}",
            "localvol:latest",
        ],
        vec!["plugin", "inspect", "nope"],
        vec!["plugin", "set", "localvol", "LOCALVOL_LOG=debug"],
        vec!["plugin", "set", "localvol", "NOPE=1"],
        vec!["plugin", "inspect", "-f", "{{.Settings.Env}}", "localvol"],
        vec!["plugin", "enable", "--timeout", "30", "localvol"],
        vec!["plugin", "ls", "-q", "--filter", "enabled=true"],
        vec!["plugin", "enable", "localvol"],
        vec!["plugin", "set", "localvol", "LOCALVOL_LOG=info"],
        vec!["plugin", "rm", "localvol"],
        vec!["plugin", "disable", "localvol"],
        vec!["plugin", "disable", "localvol"],
        vec!["plugin", "enable", "nope"],
        vec!["plugin", "disable", "nope"],
        vec!["plugin", "set", "nope", "A=1"],
        vec!["plugin", "rm", "nope"],
        vec!["plugin", "enable", "localvol:latest"],
        vec!["plugin", "disable", "-f", "localvol"],
        vec!["plugin", "rm", "localvol"],
        vec!["plugin", "ls", "-q"],
        vec!["plugin", "create", "localvol", plugin_dir],
        vec!["plugin", "enable", "localvol"],
        vec!["plugin", "rm", "-f", "localvol"],
        vec!["plugin", "ls"],
    ];
    let mut outcomes = Vec::new();
    for step in &steps {
        let out = t.run(step);
        outcomes.push(format!(
            "docker {}\n  exit {:?}\n  stdout {:?}\n  stderr {:?}",
            step.join(" ").replace(small_dir, "SMALL").replace(plugin_dir, "DIR"),
            out.status.code(),
            normalize(&out.stdout),
            normalize(&out.stderr),
        ));
    }
    let until = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let events = t.run(&[
        "events",
        "--filter",
        "type=plugin",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    outcomes.push(format!("events\n{}", String::from_utf8_lossy(&events.stdout)));
    outcomes
}

#[test]
fn the_same_sequence_ends_the_same_under_dockerd_and_dockplugd() {
    let containerd = Containerd::start().expect("containerd");
    let dir = dockplug_testkit::temp_dir("parity").expect("temp dir");
    let plugin_dir = localvol_dir(dir.path());
    let small_dir = small_plugin_dir(dir.path(), &plugin_dir);
    let (plugin_dir, small_dir) = (plugin_dir.to_str().unwrap(), small_dir.to_str().unwrap());

    let options =
        DockerdOptions { containerd: Some(containerd.socket.clone()), ..Default::default() };
    let dockerd = Dockerd::start_with(&dir.path().join("dockerd"), &options).expect("dockerd");
    let reference = sequence(
        &Docker { dockerd: &dockerd, config: dir.path().join("cli-config") },
        plugin_dir,
        small_dir,
    );
    drop(dockerd);

    let d = Dockplugd::start(&containerd);
    let ours = sequence(&d, plugin_dir, small_dir);
    assert_eq!(reference.len(), ours.len());
    let differ: Vec<String> = reference
        .iter()
        .zip(&ours)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("dockerd:\n{a}\ndockplugd:\n{b}"))
        .collect();
    assert!(differ.is_empty(), "{} steps differ:\n\n{}", differ.len(), differ.join("\n\n"));
}
