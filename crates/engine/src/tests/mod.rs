//! Unit tests of the routes over a fake backend.

mod fake;
mod system;
