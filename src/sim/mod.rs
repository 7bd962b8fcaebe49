//! Emulators of the outside world, for the demo, the tests and the benchmarks. They follow the
//! real protocols (signatures, payloads, GraphQL shapes, rate limits); production never uses them.

pub mod demo;
pub mod media;
pub mod relay;
pub mod shopify;
pub mod twilio;
