//! Inputs the fuzz targets found, kept as tests: each failed once, either in the code under
//! test or in a target's invariant, and must keep passing.

use crate::TARGETS;

/// `docker.io/library.io/library`: its familiar form `library.io/library` reads back with
/// `library.io` as the domain. Moby's `FamiliarString` prints it the same way, so the target
/// must accept the ambiguity (found by `reference_name`).
#[test]
fn familiar_form_of_a_docker_io_path_that_looks_like_a_domain() {
    use dockplug_protocol::reference::Reference;
    let r = Reference::parse("docker.io/library.io/library").expect("valid");
    assert_eq!(r.to_string(), "library.io/library");
    crate::reference_name(b"docker.io/library.io/library");
}

/// Credentials whose password equals the user name: `Debug` shows the name, which is not a
/// leak of the secret (found by `registry_auth`).
#[test]
fn a_password_equal_to_the_user_name() {
    let json = br#"{"username":"1970-01-01T00:00:00Z","password":"1970-01-01T00:00:00Z"}"#;
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE.encode(json);
    crate::registry_auth(header.as_bytes());
}

/// The cargo-fuzz harness has exactly one binary per target.
#[test]
fn the_harness_has_one_binary_per_target() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/fuzz_targets")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".rs").map(str::to_owned))
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    names.sort();
    assert_eq!(files, names);
    let manifest = std::fs::read_to_string(dir.join("../Cargo.toml")).expect("fuzz/Cargo.toml");
    for t in TARGETS {
        assert!(manifest.contains(&format!("name = \"{}\"", t.name)), "no [[bin]] {}", t.name);
        let body = std::fs::read_to_string(dir.join(format!("{}.rs", t.name))).expect("target");
        assert!(
            body.contains(&format!("dockplug_fuzz::{}(", t.name)),
            "{} calls another body",
            t.name
        );
    }
}

/// `docker.io/libr.aryl1v-…/fsoo` (found by libFuzzer in `reference_name`): a docker.io path
/// whose first component holds a `.`.
#[test]
fn a_docker_io_path_whose_first_component_has_a_dot() {
    crate::reference_name(b"docker.io/libr.aryl1v-rs_d_sh-0.8rc.0v-r_d_shgbra.r_r_ha255d_shg/fsoo");
}

/// `docker.io/docker.io/lia--lsha255/f` (found by libFuzzer in `reference_name`): a
/// docker.io path whose first component is `docker.io`. Its familiar name
/// `docker.io/lia--lsha255/f:latest` normalises again to `lia--lsha255/f:latest`, as Moby's
/// `familiarizeName` (`distribution/reference`) leaves it; the target's idempotence check
/// must allow that ambiguity.
#[test]
fn a_docker_io_path_whose_first_component_is_docker_io() {
    use dockplug_protocol::reference::{normalize, Reference};
    let text = "docker.io/docker.io/lia--lsha255/f";
    let r = Reference::parse(text).expect("valid");
    assert_eq!((r.domain(), r.path()), ("docker.io", "docker.io/lia--lsha255/f"));
    let normal = normalize(text).expect("normalises");
    assert_eq!(normal, "docker.io/lia--lsha255/f:latest");
    assert_eq!(normalize(&normal).as_deref(), Ok("lia--lsha255/f:latest"));
    crate::reference_name(text.as_bytes());
}

/// `library/<64 hex digits>` (found by libFuzzer in `reference_name`): a valid name whose
/// familiar form is the bare hexadecimal string, which `ParseNormalizedNamed` refuses (Moby's
/// `FamiliarString` prints it the same way); its normalised form, with a tag, is fine.
#[test]
fn an_official_name_of_64_hex_digits() {
    use dockplug_protocol::reference::{normalize, Reference, ReferenceError};
    let hex = "cccccccccccccccccccccecccccccacccccccccccccacccccccccccccccccccc";
    let r = Reference::parse(&format!("library/{hex}")).expect("valid");
    assert_eq!(r.to_string(), hex);
    assert!(matches!(Reference::parse(hex), Err(ReferenceError::HexName { .. })));
    let normal = normalize(&format!("library/{hex}")).expect("normalises");
    assert_eq!(normalize(&normal), Ok(normal.clone()));
    crate::reference_name(format!("library/{hex}").as_bytes());
}
