//! Golden JSON tests of the v1 subsystem types: the request and reply samples of Moby's
//! plugin docs (`docs/extend/plugins_*.md`, libnetwork `docs/remote.md`) and the bodies a
//! real dockerd exchanged with a volume plugin (`golden/*.jsonl`).

// Helpers outside `#[test]` functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

mod v1 {
    pub mod support;

    mod authz;
    mod graph;
    mod ipam;
    mod log;
    mod metrics;
    mod network;
    mod secrets;
    mod subsystems;
    mod volume;
}
