//! orderline: the phone line of a Shopify store's customer support.
//! See ../shared/DESIGN.md for the data flow; each folder below owns one area.

pub mod agent;
pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod ivr;
pub mod lookup;
pub mod ops;
pub mod setup;
pub mod shopify;
pub mod sim;
pub mod speech;
pub mod store;
pub mod twilio;
