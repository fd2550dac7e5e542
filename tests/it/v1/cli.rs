//! The `dockplug` tool, run in-process: output as the docker CLI shapes it (`ls` filters and
//! formats, `inspect` of several plugins), `--json`, exit codes, directory flags and their
//! variables, Go durations, TLS for `--addr https://`, completions, the man page, colour.

use std::ffi::OsString;
use std::path::Path;

use dockplug_cli::{
    run_in, Environment, EXIT_NOT_FOUND, EXIT_OK, EXIT_PLUGIN_ERROR, EXIT_UNREACHABLE, EXIT_USAGE,
};
use serde_json::Value;

use super::server::{PluginServer, Reply, TestCa};
use super::tempdir;

/// Run the tool with no environment variables and no colour.
async fn tool(env: &Environment, argv: &[&str]) -> (i32, String, String) {
    let argv: Vec<&str> = std::iter::once("dockplug").chain(argv.iter().copied()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_in(env, argv, &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

async fn dockplug(root: &Path, args: &[&str]) -> (i32, String, String) {
    let run_dir = root.join("run").display().to_string();
    let etc_dir = root.join("etc").display().to_string();
    let mut argv = vec!["--socket-dir", &run_dir, "--spec-dir", &etc_dir, "--timeout", "2s"];
    argv.extend_from_slice(args);
    tool(&Environment::from_vars(|_| None), &argv).await
}

async fn plugins(root: &Path) -> PluginServer {
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/dead.spec"), "tcp://127.0.0.1:1").unwrap();
    PluginServer::unix(&root.join("run/vol.sock"), |seen, _| match seen.path.as_str() {
        "/Plugin.Activate" => Reply::ok(r#"{"Implements":["VolumeDriver"]}"#),
        "/VolumeDriver.Remove" => Reply::Status(500, r#"{"Err":"volume in use"}"#.into()),
        "/VolumeDriver.Path" => Reply::ok(r#"{"Mountpoint":"","Err":"no such volume"}"#),
        _ => Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned()),
    })
    .await
}

#[tokio::test]
async fn ls_lists_every_plugin_and_why_one_does_not_answer() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let (code, out, err) = dockplug(dir.path(), &["ls"]).await;
    assert_eq!(code, EXIT_UNREACHABLE, "any unreachable plugin fails ls: {err}");
    assert_eq!(err, "dockplug: 1 of 2 plugins unreachable: dead\n");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].ends_with("STATUS        ERROR"), "{out}");
    assert!(
        lines[1].starts_with("vol ")
            && lines[1].contains("VolumeDriver")
            && lines[1].ends_with("ok")
    );
    assert!(lines[2].starts_with("dead ") && lines[2].contains(" unreachable "), "{out}");
    assert!(lines[2].ends_with("connection refused"), "the reason is in the table: {out}");

    let (code, out, _) = dockplug(dir.path(), &["ls", "--json"]).await;
    assert_eq!(code, EXIT_UNREACHABLE);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Name"], "vol");
    assert_eq!(v[0]["Implements"][0], "VolumeDriver");
    assert_eq!(v[1]["Status"], "unreachable");
    assert_eq!(v[1]["Error"], "connection refused");
}

#[tokio::test]
async fn ls_quiet_filters_formats_and_truncation() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let long = "x".repeat(60);
    let msg = long.clone();
    let _broken = PluginServer::unix(&dir.path().join("run/broken.sock"), move |_, _| {
        Reply::Status(500, format!(r#"{{"Err":"{msg}"}}"#))
    })
    .await;
    let ls = |args: &[&str]| {
        let mut v = vec!["ls"];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let root = dir.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            dockplug(&root, &args).await
        }
    };
    let (code, out, _) = run(ls(&["-q"])).await;
    assert_eq!((code, out.as_str()), (EXIT_UNREACHABLE, "broken\nvol\ndead\n"));
    let (code, out, _) = run(ls(&["-q", "--filter", "reachable=true"])).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "vol\n"));
    let (_, out, _) = run(ls(&["-q", "-f", "reachable=false", "-f", "name=ea"])).await;
    assert_eq!(out, "dead\n", "keys all apply");
    let (_, out, _) = run(ls(&["-q", "-f", "name=vol", "-f", "name=dead"])).await;
    assert_eq!(out, "vol\ndead\n", "values of one key are alternatives");
    let (code, out, _) = run(ls(&["-q", "-f", "implements=VolumeDriver"])).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "vol\n"));
    let (_, out, _) = run(ls(&[
        "--filter",
        "name=vol",
        "--format",
        r"{{.Name}}:{{.Status}}\t{{json .Implements}}",
    ]))
    .await;
    assert_eq!(out, "vol:ok\t[\"VolumeDriver\"]\n");
    let (_, out, _) = run(ls(&["-f", "name=vol", "--format", "json"])).await;
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Status"], "ok");
    let (_, out, _) =
        run(ls(&["-f", "name=vol", "--format", r"table {{.Name}}\t{{.Status}}"])).await;
    assert_eq!(out, "NAME      STATUS\nvol       ok\n");

    let (code, out, err) = run(ls(&["-f", "name=broken"])).await;
    assert_eq!(code, EXIT_PLUGIN_ERROR, "{err}");
    assert!(out.contains(" error ") && out.contains("500: xxx") && out.contains('…'), "{out}");
    assert!(!out.contains(&long));
    let (_, out, _) = run(ls(&["-f", "name=broken", "--no-trunc"])).await;
    assert!(out.contains(&format!("500: {long}")), "{out}");

    for bad in [
        &["-f", "colour=red"][..],
        &["-f", "reachable=maybe"],
        &["--format", "{{.Nope}}"],
        &["--format", "{{.Name"],
    ] {
        let (code, _, err) = run(ls(bad)).await;
        assert_eq!(code, EXIT_USAGE, "{bad:?}: {err}");
        assert!(err.starts_with("dockplug: ") && err.lines().count() == 1, "{err}");
    }
}

#[tokio::test]
async fn inspect_and_call() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let (code, out, _) = dockplug(dir.path(), &["inspect", "vol"]).await;
    assert_eq!(code, EXIT_OK);
    let v: Value = serde_json::from_str(&out).unwrap();
    let vol_addr = format!("unix://{}", dir.path().join("run/vol.sock").display());
    assert_eq!(v[0]["Addr"], vol_addr, "an array, as docker inspect prints");
    assert_eq!(v[0]["Implements"][0], "VolumeDriver");
    // Several names, a template, and a missing one: the others are still shown.
    let (code, out, err) =
        dockplug(dir.path(), &["inspect", "vol", "nope", "dead", "-f", "{{.Name}} {{.Addr}}"])
            .await;
    assert_eq!(code, EXIT_NOT_FOUND, "the first failure's code");
    assert_eq!(out, format!("vol {vol_addr}\ndead tcp://127.0.0.1:1\n"));
    assert_eq!(err.lines().count(), 2, "each failure on its own line: {err}");
    assert!(err.contains("could not find plugin nope") && err.contains("plugin dead"), "{err}");
    let (code, out, _) = dockplug(dir.path(), &["inspect", "vol", "--format", "json"]).await;
    assert_eq!(code, EXIT_OK);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((out.lines().count(), &v["Name"]), (1, &Value::from("vol")));

    let (code, out, _) =
        dockplug(dir.path(), &["call", "vol", "VolumeDriver.Get", r#"{"Name":"x"}"#]).await;
    assert_eq!(code, EXIT_OK);
    assert_eq!(out, "{\"Name\":\"x\"}\n");

    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["call", "vol", "VolumeDriver.Path", r#"{"Name":"x"}"#],
            EXIT_PLUGIN_ERROR,
            "VolumeDriver.Path: no such volume",
        ),
        (
            &["call", "vol", "VolumeDriver.Remove", "{}"],
            EXIT_PLUGIN_ERROR,
            "VolumeDriver.Remove: volume in use",
        ),
        (&["call", "nope", "X.Y"], EXIT_NOT_FOUND, "could not find plugin nope"),
        (&["call", "dead", "X.Y"], EXIT_UNREACHABLE, "cannot connect to plugin"),
        (&["call", "vol", "X.Y", "{oops"], EXIT_USAGE, "invalid JSON argument"),
        (&["inspect", "dead"], EXIT_UNREACHABLE, "plugin dead"),
    ];
    for (args, want, text) in cases {
        let (code, _, err) = dockplug(dir.path(), args).await;
        assert_eq!(code, want, "{args:?}: {err}");
        assert!(err.starts_with("dockplug: ") && err.contains(text), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let (code, _, _) = dockplug(dir.path(), &["frobnicate"]).await;
    assert_eq!(code, EXIT_USAGE);
    // Named positional arguments; --addr takes the name's place.
    let (code, out, _) = dockplug(dir.path(), &["call", "--help"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("dockplug call [OPTIONS] NAME METHOD [JSON|-]"), "{out}");
    assert!(out.contains("--addr ADDR METHOD [JSON|-]") && !out.contains("<ARGS>"), "{out}");
    let addr = format!("unix://{}", dir.path().join("run/vol.sock").display());
    let (code, out, _) =
        dockplug(dir.path(), &["call", "--addr", &addr, "VolumeDriver.Get", "[1]"]).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "[1]\n"));
    let (code, _, err) = dockplug(dir.path(), &["call", "vol"]).await;
    assert_eq!(code, EXIT_USAGE, "{err}");
}

#[tokio::test]
async fn timeouts_are_go_durations_and_directories_come_from_the_environment() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let run_dir = dir.path().join("run").display().to_string();
    let none = Environment::from_vars(|_| None);
    for (timeout, want) in [("1m30s", EXIT_OK), ("1.5s", EXIT_OK), ("10", EXIT_USAGE)] {
        let argv = ["--socket-dir", &run_dir, "--timeout", timeout, "inspect", "vol"];
        let (code, _, err) = tool(&none, &argv).await;
        assert_eq!(code, want, "{timeout}: {err}");
        if want == EXIT_USAGE {
            assert!(err.contains("missing unit"), "{err}");
        }
    }

    let (run_dir, etc_dir) = (dir.path().join("run"), dir.path().join("etc"));
    let env = Environment::from_vars(move |k| match k {
        "DOCKPLUG_SOCKET_DIR" => {
            Some(OsString::from(format!("/nonexistent:{}", run_dir.display())))
        }
        "DOCKPLUG_SPEC_DIR" => Some(etc_dir.clone().into_os_string()),
        _ => None,
    });
    let (code, out, _) = tool(&env, &["ls", "-q"]).await;
    assert_eq!((code, out.as_str()), (EXIT_UNREACHABLE, "vol\ndead\n"));
    // A flag wins over its variable.
    let (_, out, _) = tool(&env, &["--spec-dir", "/nonexistent", "ls", "-q"]).await;
    assert_eq!(out, "vol\n");
}

#[tokio::test]
async fn call_addr_https_verifies_unless_told_otherwise() {
    let dir = tempdir();
    let ca = TestCa::new(dir.path());
    let echo = |seen: &super::server::Seen, _: usize| {
        Reply::Status(200, String::from_utf8_lossy(&seen.body).into_owned())
    };
    let server = PluginServer::tls(&ca, false, echo).await;
    let env = Environment::from_vars(|_| None);
    let call = |extra: &[&str]| {
        let mut v = vec!["--timeout", "2s", "call", "--addr", &server.addr];
        v.extend_from_slice(extra);
        v.extend_from_slice(&["T.Echo", "7"]);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let go = |args: Vec<String>| {
        let env = &env;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tool(env, &args).await
        }
    };
    let (code, _, err) = go(call(&[])).await;
    assert_eq!(code, EXIT_UNREACHABLE, "an unknown CA is refused by default: {err}");
    assert!(err.contains("certificate") && err.contains("--tls-ca FILE"), "{err}");
    let ca_file = ca.ca_file.display().to_string();
    let (code, out, err) = go(call(&["--tls-ca", &ca_file])).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "7\n"), "{err}");
    let (code, out, _) = go(call(&["--tls-insecure"])).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "7\n"));

    let mtls = PluginServer::tls(&ca, true, echo).await;
    let (cert, key) =
        (ca.client_cert_file.display().to_string(), ca.client_key_file.display().to_string());
    let with_cert = |cert_args: &[&str]| {
        let mut v = vec!["call", "--addr", &mtls.addr, "--tls-ca", &ca_file];
        v.extend_from_slice(cert_args);
        v.extend_from_slice(&["T.Echo", "8"]);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (code, out, err) = go(with_cert(&["--tls-cert", &cert, "--tls-key", &key])).await;
    assert_eq!((code, out.as_str()), (EXIT_OK, "8\n"), "{err}");
    let (code, _, _) = go(with_cert(&[])).await;
    assert_eq!(code, EXIT_UNREACHABLE, "the server wants a client certificate");

    for bad in [
        &["call", "--tls-ca", "/x", "vol", "X.Y"][..],
        &["call", "--addr", "https://localhost:1", "--tls-cert", "/c", "X.Y"],
        &["call", "--addr", "https://localhost:1", "--tls-insecure", "--tls-ca", "/x", "X.Y"],
    ] {
        let (code, _, err) = tool(&env, bad).await;
        assert_eq!(code, EXIT_USAGE, "{bad:?}: {err}");
    }
}

#[tokio::test]
async fn completions_man_page_and_colour() {
    let env = Environment::from_vars(|_| None);
    let (code, out, _) = tool(&env, &["completion", "bash"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("_dockplug()") && out.contains("inspect"), "{out}");
    let (code, out, _) = tool(&env, &["completion", "zsh"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.starts_with("#compdef dockplug"), "{out}");
    let (code, out, _) = tool(&env, &["man"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.contains(".TH dockplug") && out.contains("inspect"), "{out}");

    let (_, _, err) = tool(&env, &["--spec-dir", "/nonexistent", "inspect", "nope"]).await;
    assert!(err.starts_with("dockplug: could not find plugin nope"), "{err}");
    let colour = Environment::from_vars(|_| None).color(true);
    let (code, _, err) = tool(&colour, &["--spec-dir", "/nonexistent", "inspect", "nope"]).await;
    assert_eq!(code, EXIT_NOT_FOUND);
    assert!(err.starts_with("\x1b[1;31mdockplug:\x1b[0m could not find plugin nope"), "{err:?}");
}

#[tokio::test]
async fn bench_prints_one_json_line() {
    let dir = tempdir();
    let server = plugins(dir.path()).await;
    let (code, out, err) = dockplug(
        dir.path(),
        &[
            "bench",
            "--addr",
            &server.addr,
            "X.Echo",
            r#"{"a":1}"#,
            "-n",
            "200",
            "-c",
            "4",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, EXIT_OK, "{err}");
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["c"], 4);
    assert_eq!(v["errors"], 0);
    assert!(v["calls_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["p50_us"].as_u64().unwrap() <= v["p99_us"].as_u64().unwrap());
    let (code, out, _) = dockplug(dir.path(), &["bench", "vol", "X.Echo", "-n", "20"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("calls/s"), "{out}");
}
