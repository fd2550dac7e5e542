//! Unit tests of the routes over a fake backend.

mod events;
mod fake;
mod plugins;
mod serve;
mod system;
