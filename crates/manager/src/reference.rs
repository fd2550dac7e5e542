//! Plugin names: Docker's reference rules, from [`dockplug_protocol::reference`] (one parser
//! for the workspace).
pub use dockplug_protocol::reference::*;
