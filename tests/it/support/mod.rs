//! Test support beyond the server harness.

pub mod browser;
