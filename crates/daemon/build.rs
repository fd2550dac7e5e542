//! Links `dockplugd` with packed relative relocations (`-z pack-relative-relocs`, DT_RELR;
//! glibc 2.36, binutils 2.38): a position-independent Rust binary carries some 30,000
//! relative relocations, 24 bytes each in `.rela.dyn` (0.7 MB that the loader reads at every
//! start and that stays resident); packed, they take 9 KB. An older linker ignores the
//! option with a warning.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
