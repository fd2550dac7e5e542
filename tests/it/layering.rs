//! The architecture invariants of docs/ARCHITECTURE.md, checked against `cargo metadata`
//! instead of trusted.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The resolved dependency graph: package name -> names of its normal (non-dev, non-build)
/// dependencies, for the whole workspace.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut id_to_name = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        id_to_name
            .insert(p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned());
    }
    let mut g = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = id_to_name[node["id"].as_str().unwrap()].clone();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| id_to_name[d["pkg"].as_str().unwrap()].clone())
            .collect();
        g.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    (g, id_to_name)
}

/// Every package `root` reaches through normal dependencies.
pub fn reachable(root: &str) -> BTreeSet<String> {
    let (g, _) = graph();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        if let Some(deps) = g.get(&p) {
            for d in deps {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
    }
    seen
}

/// Whether workspace package `name` has a library target (a binary-only package such as
/// `dockplugd` is an application and may use `anyhow` and reach the containerd executor).
fn has_library(name: &str) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not a workspace package"));
    package["targets"].as_array().unwrap().iter().any(|t| {
        t["kind"].as_array().unwrap().iter().any(|k| k == "lib" || k == "rlib" || k == "proc-macro")
    })
}

fn workspace_crates() -> Vec<String> {
    let (g, _) = graph();
    g.keys().filter(|k| k.starts_with("dockplug")).cloned().collect()
}

#[test]
fn protocol_never_reaches_async_or_http() {
    let deps = reachable("dockplug-protocol");
    for banned in ["tokio", "hyper", "tonic", "hyper-util", "containerd-client", "futures-util"] {
        assert!(!deps.contains(banned), "dockplug-protocol reaches {banned}: {deps:?}");
    }
}

/// Each crate's "never depends on" list from docs/ARCHITECTURE.md.
const NEVER_REACHES: &[(&str, &[&str])] = &[
    ("dockplug-v1", &["dockplug-manager", "dockplug-containerd", "dockplug-sdk", "anyhow"]),
    ("dockplug-cli", &["dockplug-manager", "dockplug-containerd", "dockplug-sdk"]),
    ("dockplug-sdk", &["dockplug-v1", "dockplug-manager", "dockplug-containerd", "anyhow"]),
    ("dockplug-localvol", &["dockplug-v1", "dockplug-manager", "dockplug-containerd"]),
    (
        "dockplug-manager",
        &[
            "dockplug-v1",
            "dockplug-sdk",
            "dockplug-containerd",
            "dockplug-distribution",
            "anyhow",
            // No HTTP, TLS or gRPC in the manager: registries come in through its
            // `Distribution` seam, container runtimes through its `Executor` seam.
            "hyper",
            "hyper-util",
            "rustls",
            "tonic",
        ],
    ),
];

/// Everything `dockplug-manager` may depend on directly, as docs/ARCHITECTURE.md lists it:
/// the protocol crate, async and errors, serde, the OCI spec, the archive and digest crates
/// and nix for mounts. A new dependency is a decision for the map first.
const MANAGER_MAY_DEPEND_ON: &[&str] = &[
    "dockplug-protocol",
    "tokio",
    "futures-util",
    "thiserror",
    "tracing",
    "serde",
    "serde_json",
    "oci-spec",
    "tar",
    "flate2",
    "sha2",
    "nix",
];

#[test]
fn the_manager_depends_only_on_what_the_map_allows() {
    let (g, _) = graph();
    let direct = &g["dockplug-manager"];
    let extra: Vec<&String> =
        direct.iter().filter(|d| !MANAGER_MAY_DEPEND_ON.contains(&d.as_str())).collect();
    assert!(
        extra.is_empty(),
        "dockplug-manager depends on {extra:?}, which docs/ARCHITECTURE.md does not allow"
    );
    // The allow-list is the real list, not a superset kept around.
    for allowed in MANAGER_MAY_DEPEND_ON {
        assert!(direct.contains(*allowed), "dockplug-manager no longer uses {allowed}");
    }
}

#[test]
fn each_layer_stays_in_its_lane() {
    for (krate, banned) in NEVER_REACHES {
        let deps = reachable(krate);
        assert!(!deps.is_empty(), "{krate} is not in the workspace graph");
        for b in *banned {
            assert!(!deps.contains(*b), "{krate} reaches {b}, which docs/ARCHITECTURE.md forbids");
        }
    }
}

#[test]
fn only_the_containerd_executor_reaches_tonic() {
    for krate in workspace_crates() {
        if krate == "dockplug-containerd"
            || krate == "dockplug"
            || krate == "dockplug-cli"
            || krate == "dockplug-tests"
        {
            continue;
        }
        if !has_library(&krate) {
            continue;
        }
        let deps = reachable(&krate);
        for banned in ["tonic", "containerd-client"] {
            assert!(!deps.contains(banned), "{krate} reaches {banned}");
        }
    }
}

#[test]
fn no_library_depends_on_anyhow() {
    for krate in workspace_crates() {
        if ["dockplug-cli", "dockplug-localvol", "dockplug-tests"].contains(&krate.as_str())
            || !has_library(&krate)
        {
            continue;
        }
        let (g, _) = graph();
        assert!(!g[&krate].contains("anyhow"), "{krate} is a library and depends on anyhow");
    }
}

#[test]
fn every_crate_has_a_crate_level_doc_comment() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        for main in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(main);
            if let Ok(text) = std::fs::read_to_string(&file) {
                assert!(
                    text.trim_start().starts_with("//!"),
                    "{} has no //! header",
                    file.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "found only {checked} crate roots");
}
