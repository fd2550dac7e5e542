//! Integration tests for the dockplug workspace live in `it/`; this library is empty on
//! purpose so that the package has one test binary and nothing else.
