//! Golden JSON tests of the v2 plugin types: the objects a real dockerd 20.10.24 returned and
//! pushed (`golden/*.json`), the `config.json` examples of Moby's `docs/extend/config.md`, and
//! the Engine API objects of Moby's `integration/plugin` tests.
//!
//! Each sample is read, printed and read again (same value), and printing matches dockerd's
//! bytes: compact (registry blobs, with Go's trailing newline) or 4-space indented as
//! captured (Engine API replies).

// Helpers outside `#[test]` functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use std::fmt::Debug;

use dockplug_protocol::config::{ConfigError, PluginRootfs};
use dockplug_protocol::filters::PluginListFilter;
use dockplug_protocol::gojson;
use dockplug_protocol::interface::InterfaceType;
use dockplug_protocol::plugin::PluginSettings;
use dockplug_protocol::privileges::{compute_privileges, validate_privileges};
use dockplug_protocol::{Plugin, PluginConfig, PluginPrivilege};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the capture tool wrote: the Engine API reply indented by 4 spaces, plus a newline.
fn pretty<T: Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).unwrap();
    out.push(b'\n');
    String::from_utf8(out).unwrap()
}

/// Reads `text`, checks print-then-read gives the same value, and returns it.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(text: &str) -> T {
    let v: T = serde_json::from_str(text).unwrap();
    let printed = gojson::to_string(&v).unwrap();
    let again: T = serde_json::from_str(&printed).unwrap();
    assert_eq!(again, v, "print then read changed the value: {printed}");
    v
}

/// Every key of a JSON tree passed through `f`.
fn map_keys(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (f(k), map_keys(v, f))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| map_keys(v, f)).collect()),
        v => v.clone(),
    }
}

/// Reading with every key lower-cased, upper-cased or camel-cased gives the same value, as
/// Go's decoder does.
fn case_insensitive<T: DeserializeOwned + PartialEq + Debug>(text: &str, expected: &T) {
    let v: Value = serde_json::from_str(text).unwrap();
    let camel = |k: &str| {
        let mut c = k.chars();
        c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
    };
    for (how, f) in [
        ("lower", &(|k: &str| k.to_lowercase()) as &dyn Fn(&str) -> String),
        ("upper", &|k: &str| k.to_uppercase()),
        ("camel", &camel),
    ] {
        let changed = map_keys(&v, f);
        let got: T = serde_json::from_value(changed.clone()).unwrap();
        assert_eq!(&got, expected, "{how}-case keys: {changed}");
    }
}

/// Every leaf and every object replaced by a value of the wrong JSON type is a typed error.
fn wrong_types_fail<T: DeserializeOwned + Debug>(text: &str) {
    fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    at.push(k.clone());
                    out.push(at.clone());
                    paths(v, at, out);
                    at.pop();
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    at.push(i.to_string());
                    out.push(at.clone());
                    paths(v, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let root: Value = serde_json::from_str(text).unwrap();
    let mut all = Vec::new();
    paths(&root, &mut Vec::new(), &mut all);
    assert!(!all.is_empty());
    for path in all {
        let mut v = root.clone();
        let mut slot = &mut v;
        for p in &path {
            slot = match slot {
                Value::Object(m) => m.get_mut(p).unwrap(),
                Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
                _ => unreachable!(),
            };
        }
        // A string where a bool or number is expected, a number everywhere else.
        let wrong = match slot {
            Value::Bool(_) | Value::Number(_) => Value::String("1".into()),
            _ => Value::from(1),
        };
        *slot = wrong;
        let r = serde_json::from_value::<T>(v.clone());
        assert!(r.is_err(), "{} = wrong type was accepted: {r:?}", path.join("."));
    }
}

#[test]
fn inspect_enabled() {
    let text = golden("engine-plugin-inspect-enabled.json");
    let p: Plugin = round_trip(&text);
    assert_eq!(pretty(&p), text);
    assert!(p.enabled);
    assert_eq!(p.config.interface.types(), [InterfaceType::parse("docker.volumedriver/1.0")]);
    assert!(p.provides("VolumeDriver"));
    // A fresh install's settings are exactly what InitEmptySettings gives.
    assert_eq!(PluginSettings::from_config(&p.config), p.settings);
    assert!(compute_privileges(&p.config).is_empty());
    case_insensitive(&text, &p);
    wrong_types_fail::<Plugin>(&text);
}

#[test]
fn inspect_rich_settings() {
    let text = golden("engine-plugin-inspect-rich-settings.json");
    let p: Plugin = round_trip(&text);
    assert_eq!(pretty(&p), text);
    assert!(!p.enabled);
    assert_eq!(p.settings.env(), ["DEBUG=1"]);
    assert_eq!(p.settings.args(), ["-x", "-y"]);
    assert_eq!(p.settings.mounts()[0].source.as_deref(), Some("/tmp"));
    assert!(p.config.env()[0].is_settable() && p.config.mounts()[0].is_settable());
    assert!(p.config.devices()[0].is_settable() && p.config.args.is_settable());
    case_insensitive(&text, &p);
    wrong_types_fail::<Plugin>(&text);
}

#[test]
fn plugins_list() {
    let text = golden("engine-plugins-list.json");
    let list: Vec<Plugin> = round_trip(&text);
    assert_eq!(pretty(&list), text);
    assert_eq!(list.len(), 1);
    case_insensitive(&text, &list);
}

#[test]
fn privileges_of_the_rich_plugin() {
    let text = golden("engine-plugin-privileges.json");
    let golden_privs: Vec<PluginPrivilege> = round_trip(&text);
    assert_eq!(pretty(&golden_privs), text);
    // Computed from the config the plugin was created from: same order, same texts.
    let config: PluginConfig = serde_json::from_str(&golden("plugin-config-rich.json")).unwrap();
    let computed = compute_privileges(&config);
    assert_eq!(computed, golden_privs);
    assert_eq!(pretty(&computed), text);
    // What the CLI grants back (empty descriptions, any order) validates.
    let mut granted: Vec<_> = computed
        .iter()
        .rev()
        .map(|p| PluginPrivilege { description: String::new(), ..p.clone() })
        .collect();
    assert_eq!(validate_privileges(&computed, &granted), Ok(()));
    granted.pop();
    assert!(validate_privileges(&computed, &granted).is_err());
    case_insensitive(&text, &golden_privs);
}

#[test]
fn create_then_push_writes_dockerds_blob() {
    // The author's config.json, as `docker plugin create` read it...
    let authored = golden("plugin-config-rich.json");
    let mut config: PluginConfig = round_trip(&authored);
    // ...plus what the daemon adds at create...
    config.docker_version = "20.10.24+dfsg1".into();
    config.rootfs = Some(PluginRootfs::layers([
        "sha256:2614035edf8cb464d1027292cbc7ecea2cb969fda5ec78eb9bdab34153abb1ed",
    ]));
    // ...is byte for byte the config blob dockerd pushed (its size is in the manifest).
    let pushed = golden("registry-config-rich.json");
    assert_eq!(String::from_utf8(config.to_blob().unwrap()).unwrap(), pushed);
    assert_eq!(pushed.len(), 1068);
    let read_back: PluginConfig = round_trip(&pushed);
    assert_eq!(read_back, config);
    case_insensitive(&authored, &round_trip::<PluginConfig>(&authored));
    wrong_types_fail::<PluginConfig>(&authored);
}

#[test]
fn pushed_config_blob_is_byte_exact() {
    let pushed = golden("plugin-push-config.json");
    let config: PluginConfig = round_trip(&pushed);
    assert_eq!(String::from_utf8(config.to_blob().unwrap()).unwrap(), pushed);
    assert_eq!(pushed.len(), 727);
    // The inspect reply's Config is the same object (only the layer digest differs).
    let inspect: Plugin =
        serde_json::from_str(&golden("engine-plugin-inspect-enabled.json")).unwrap();
    let mut expected = inspect.config;
    expected.rootfs = config.rootfs.clone();
    assert_eq!(config, expected);
    wrong_types_fail::<PluginConfig>(&pushed);
}

#[test]
fn list_filters_on_golden_plugins() {
    let enabled: Plugin =
        serde_json::from_str(&golden("engine-plugin-inspect-enabled.json")).unwrap();
    let rich: Plugin =
        serde_json::from_str(&golden("engine-plugin-inspect-rich-settings.json")).unwrap();
    let pass = |filters: &str| {
        let f = PluginListFilter::parse(filters).unwrap();
        [&enabled, &rich]
            .iter()
            .filter(|p| f.matches(p))
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(pass(""), ["golden/vol:1", "127.0.0.1:5000/golden/rich:1"]);
    assert_eq!(pass(r#"{"enabled":{"true":true}}"#), ["golden/vol:1"]);
    assert_eq!(pass(r#"{"enabled":["false"]}"#), ["127.0.0.1:5000/golden/rich:1"]);
    // Captured: capability=networkdriver does not list the plugin declaring both types.
    assert_eq!(pass(r#"{"capability":{"networkdriver":true}}"#), Vec::<&str>::new());
    assert_eq!(pass(r#"{"capability":{"volumedriver":true}}"#), ["golden/vol:1"]);
    assert_eq!(
        pass(r#"{"capability":["driver"]}"#),
        ["golden/vol:1", "127.0.0.1:5000/golden/rich:1"]
    );
}

/// The canonical `config.json` example (Moby `docs/extend/config.md`) and the lower-case form
/// authors write.
#[test]
fn config_doc_examples() {
    let canonical = r#"{
  "Args": {"Description": "", "Name": "", "Settable": null, "Value": null},
  "Description": "A sample volume plugin for Docker",
  "Documentation": "https://docs.docker.com/engine/extend/plugins/",
  "Entrypoint": ["/usr/bin/sample-volume-plugin", "/data"],
  "Env": [{"Description": "", "Name": "DEBUG", "Settable": ["value"], "Value": "0"}],
  "Interface": {"Socket": "plugin.sock", "Types": ["docker.volumedriver/1.0"]},
  "IpcHost": false,
  "Linux": {"AllowAllDevices": false, "Capabilities": ["CAP_SYS_ADMIN"], "Devices": null},
  "Mounts": null,
  "Network": {"Type": "host"},
  "PidHost": false,
  "PropagatedMount": "/data",
  "User": {},
  "WorkDir": "",
  "rootfs": {"type": "layers", "diff_ids": ["sha256:675532206fbf3030b8458f88d6e26d4eb1577688a25efec97154c94e8b6b4887"]}
}"#;
    let c: PluginConfig = round_trip(canonical);
    // dockerd writes rootfs keys in its struct order (diff_ids first) and no spaces.
    let compact: Value = serde_json::from_str(canonical).unwrap();
    let printed = gojson::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&printed).unwrap(), compact);
    assert!(printed.ends_with(r#""rootfs":{"diff_ids":["sha256:675532206fbf3030b8458f88d6e26d4eb1577688a25efec97154c94e8b6b4887"],"type":"layers"}}"#));
    assert!(printed.contains(r#""Mounts":null"#) && printed.contains(r#""Devices":null"#));

    let authored = r#"{"description": "sshFS plugin for Docker", "documentation": "https://docs.docker.com/engine/extend/plugins/", "entrypoint": ["/docker-volume-sshfs"], "network": {"type": "host"}, "interface": {"types": ["docker.volumedriver/1.0"], "socket": "sshfs.sock"}, "linux": {"capabilities": ["CAP_SYS_ADMIN"]}}"#;
    let a: PluginConfig = round_trip(authored);
    assert_eq!(a.description, "sshFS plugin for Docker");
    assert_eq!(a.entrypoint(), ["/docker-volume-sshfs"]);
    assert_eq!(a.network.r#type, "host");
    assert_eq!(a.interface.socket, "sshfs.sock");
    assert!(a.provides("VolumeDriver"));
    assert_eq!(a.capabilities(), ["CAP_SYS_ADMIN"]);
    assert_eq!(
        gojson::to_string(&a).unwrap(),
        concat!(
            r#"{"Args":{"Description":"","Name":"","Settable":null,"Value":null},"Description":"sshFS plugin for Docker","#,
            r#""Documentation":"https://docs.docker.com/engine/extend/plugins/","Entrypoint":["/docker-volume-sshfs"],"#,
            r#""Env":null,"Interface":{"Socket":"sshfs.sock","Types":["docker.volumedriver/1.0"]},"IpcHost":false,"#,
            r#""Linux":{"AllowAllDevices":false,"Capabilities":["CAP_SYS_ADMIN"],"Devices":null},"Mounts":null,"#,
            r#""Network":{"Type":"host"},"PidHost":false,"PropagatedMount":"","User":{},"WorkDir":""}"#
        )
    );
    // The docs' `Workdir` works through case folding.
    let w: PluginConfig =
        serde_json::from_str(r#"{"Workdir":"/x","propagatedMount":"/m"}"#).unwrap();
    assert_eq!((w.work_dir.as_str(), w.propagated_mount.as_str()), ("/x", "/m"));
}

/// `GET /plugins/test:latest/json` of a created test plugin (Moby's `integration/plugin`), with
/// the elided digest and id filled in. Printing gives back the exact bytes.
#[test]
fn moby_7_3_example_is_byte_exact() {
    let text = concat!(
        r#"{"Config":{"Args":{"Description":"","Name":"","Settable":null,"Value":null},"#,
        r#""Description":"","Documentation":"","Entrypoint":["/basic"],"#,
        r#""Env":[{"Description":"","Name":"DEBUG","Settable":["value"],"Value":"0"}],"#,
        r#""Interface":{"Socket":"basic.sock","Types":["docker.dummy/1.0"]},"#,
        r#""IpcHost":false,"Linux":{"AllowAllDevices":false,"Capabilities":null,"Devices":null},"#,
        r#""Mounts":null,"Network":{"Type":""},"PidHost":false,"PropagatedMount":"","User":{},"#,
        r#""WorkDir":"","rootfs":{"diff_ids":["sha256:58db06bb3dba026e103ef7f91e9a005035d2135431062ede4326bb99ca0ee668"],"type":"layers"}},"#,
        r#""Enabled":false,"Id":"85ae15b0b81461bc9440e84cff1eb94cc4ec10c2a8238e9797ba504f2e28defc","Name":"test:latest","PluginReference":"test:latest","#,
        r#""Settings":{"Args":[],"Devices":[],"Env":["DEBUG=0"],"Mounts":[]}}"#
    );
    let p: Plugin = round_trip(text);
    assert_eq!(gojson::to_string(&p).unwrap(), text);
    assert_eq!(PluginSettings::from_config(&p.config), p.settings);
    assert_eq!(p.config.interface.types()[0].capability(), "dummy");
    assert!(!p.provides("VolumeDriver"));
}

#[test]
fn malformed_input_is_a_typed_error() {
    for bad in ["", "{", "[1]", "true", "{\"Description\":\"\\ud800\"}"] {
        match PluginConfig::from_slice(bad.as_bytes()) {
            Err(ConfigError::Json(_)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(serde_json::from_str::<Plugin>(r#"{"Settings":{"Env":"A=1"}}"#).is_err());
    assert!(serde_json::from_str::<Plugin>(r#"{"Config":[]}"#).is_err());
    assert!(serde_json::from_str::<Vec<PluginPrivilege>>(r#"[{"Value":"host"}]"#).is_err());
    // Invalid UTF-8 is refused rather than replaced.
    assert!(PluginConfig::from_slice(b"{\"Description\":\"\xff\"}").is_err());
}

/// The schema2 manifests dockerd pushed: rebuilt from their parts, byte for byte.
#[test]
fn pushed_manifests_are_byte_exact() {
    use dockplug_protocol::registry::{self, Descriptor, ImageManifest};
    for name in ["plugin-push-manifest.json", "registry-manifest-rich.json"] {
        let text = golden(name);
        let m: ImageManifest = round_trip(&text);
        assert!(m.is_plugin());
        let rebuilt = ImageManifest::plugin(
            Descriptor::plugin_config(&m.config.digest, m.config.size),
            m.layers.iter().map(|l| Descriptor::gzip_layer(&l.digest, l.size)).collect(),
        );
        assert_eq!(String::from_utf8(rebuilt.to_bytes().unwrap()).unwrap(), text, "{name}");
        wrong_types_fail::<ImageManifest>(&text);
    }
    // The config blob sizes recorded in the manifests are those of our blobs.
    let m: ImageManifest = serde_json::from_str(&golden("plugin-push-manifest.json")).unwrap();
    assert_eq!(m.config.size, golden("plugin-push-config.json").len() as i64);
    let types: Value = serde_json::from_str(&golden("plugin-push-media-types.json")).unwrap();
    assert_eq!(types["config_size"], m.config.size);
    assert_eq!(types["config_digest"], m.config.digest.as_str());
    assert_eq!(types["config_mediaType"], registry::PLUGIN_CONFIG);
    assert_eq!(types["manifest_mediaType"], registry::DOCKER_MANIFEST_V2);
    assert_eq!(types["layer_mediaTypes"][0], registry::DOCKER_LAYER_GZIP);
    let m: ImageManifest = serde_json::from_str(&golden("registry-manifest-rich.json")).unwrap();
    assert_eq!(m.config.size, golden("registry-config-rich.json").len() as i64);
}

/// Unknown keys are read past and not written back, as dockerd's typed decode drops them.
#[test]
fn unknown_keys_are_dropped() {
    let c: PluginConfig = serde_json::from_str(
        r#"{"Description":"d","Extra":{"deep":[1,{"x":null}]},"Interface":{"Socket":"s","Future":true},"x-y":1}"#,
    )
    .unwrap();
    let printed = gojson::to_string(&c).unwrap();
    assert!(!printed.contains("Extra") && !printed.contains("Future") && !printed.contains("x-y"));
    assert_eq!(c.description, "d");
    assert_eq!(c.interface.socket, "s");
}

/// Hostile input: golden files with random bytes changed, cut or duplicated never panic, and
/// whatever parses prints to something that parses to the same value.
#[test]
fn mutated_golden_files_never_panic() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let files = [
        "engine-plugin-inspect-rich-settings.json",
        "plugin-config-rich.json",
        "engine-plugin-privileges.json",
        "plugin-push-manifest.json",
    ];
    let alphabet = br#"{}[]":,nul0-9aA\ tfe."#;
    let mut parsed = 0;
    for round in 0..1_200 {
        let mut bytes = golden(files[round % files.len()]).into_bytes();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(i);
                }
                _ => {
                    let end = (i + (next() as usize) % 16).min(bytes.len());
                    let chunk = bytes[i..end].to_vec();
                    bytes.splice(i..i, chunk);
                }
            }
        }
        parsed += usize::from(check_mutant::<Plugin>(&bytes));
        parsed += usize::from(check_mutant::<PluginConfig>(&bytes));
        parsed += usize::from(check_mutant::<Vec<PluginPrivilege>>(&bytes));
        parsed += usize::from(check_mutant::<dockplug_protocol::registry::ImageManifest>(&bytes));
    }
    // Some mutants must have parsed, or the property above was never exercised.
    assert!(parsed > 100, "only {parsed} mutants parsed");
}

fn check_mutant<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<T>(bytes) else { return false };
    let printed = gojson::to_vec(&v).unwrap();
    let again: T = serde_json::from_slice(&printed).unwrap();
    assert_eq!(again, v);
    true
}
