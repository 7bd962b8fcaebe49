//! The harness the integration tests (`tests/it`) and the benchmarks (`benches/`) share: a
//! throwaway PostgreSQL database and `orderline` started as a child process on 127.0.0.1:0.
//! Included by path from both (`#[path = "../harness/mod.rs"]`), so there is one copy of each.
#![allow(dead_code)]

pub mod postgres;
pub mod process;
