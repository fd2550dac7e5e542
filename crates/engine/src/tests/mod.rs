//! Unit tests of the routes over a fake backend.

mod events;
mod extend;
mod fake;
mod plugins;
mod real;
mod registry;
mod serve;
mod system;
