//! The `dockplug` tool, run in-process: output, `--json`, exit codes, directory flags.

use std::path::Path;

use dockplug_cli::{run, EXIT_NOT_FOUND, EXIT_OK, EXIT_PLUGIN_ERROR, EXIT_UNREACHABLE, EXIT_USAGE};
use serde_json::Value;

use super::server::{PluginServer, Reply};
use super::tempdir;

async fn dockplug(root: &Path, args: &[&str]) -> (i32, String, String) {
    let run_dir = root.join("run").display().to_string();
    let etc_dir = root.join("etc").display().to_string();
    let mut argv =
        vec!["dockplug", "--socket-dir", &run_dir, "--spec-dir", &etc_dir, "--timeout", "2s"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(argv, &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
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
async fn ls_lists_every_plugin_and_whether_it_answers() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let (code, out, _) = dockplug(dir.path(), &["ls"]).await;
    assert_eq!(code, EXIT_OK);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(
        lines[1].starts_with("vol ")
            && lines[1].contains("VolumeDriver")
            && lines[1].ends_with("ok")
    );
    assert!(lines[2].starts_with("dead ") && lines[2].ends_with("unreachable"), "{out}");

    let (code, out, _) = dockplug(dir.path(), &["ls", "--json"]).await;
    assert_eq!(code, EXIT_OK);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Name"], "vol");
    assert_eq!(v[0]["Implements"][0], "VolumeDriver");
    assert_eq!(v[1]["Status"], "unreachable");
}

#[tokio::test]
async fn inspect_and_call() {
    let dir = tempdir();
    let _server = plugins(dir.path()).await;
    let (code, out, _) = dockplug(dir.path(), &["inspect", "vol"]).await;
    assert_eq!(code, EXIT_OK);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Addr"], format!("unix://{}", dir.path().join("run/vol.sock").display()));
    assert_eq!(v["Implements"][0], "VolumeDriver");

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
