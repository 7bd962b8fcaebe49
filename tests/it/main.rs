//! The integration tests: one crate (one build, one link), one module per specification, sharing
//! the harness in `common` (databases, servers, signed requests) and `support` (the browser).

#[macro_use]
mod common;
mod support;

mod agent;
mod bad_news;
mod browser_driver;
mod bulk_backfill;
mod callback;
mod cli;
mod consistency;
mod console_browser;
mod console_security;
mod crash;
mod cross_instance;
mod demo;
mod doctor;
mod faults;
mod flash_sale;
mod fuzz;
mod hardening;
mod ivr;
mod languages;
mod layers;
mod logs;
mod lookup;
mod media;
mod notify;
mod reconcile;
mod relay;
mod reports;
mod returns;
mod setup;
mod shipment_states;
mod shopify_contract;
mod shutdown;
mod sim_shopify;
mod sms;
mod speech;
mod store;
mod transfer;
mod twilio_sim;
mod verification;
mod voicemail;
mod webhooks;
mod what_callers_hear;
