//! The vocabulary every layer shares, at the bottom of the house: phone numbers (and masking them
//! in logs), Shopify IDs and order numbers, where a return stands, what happens in a call
//! (events, reasons, where they are numbered) and how a caller proved who they are. Imports
//! nothing from the rest of the crate (`tests/it/layers.rs` checks it), so every layer may use it.

#[macro_use]
mod names;

pub mod call;
pub mod language;
pub mod phone;
pub mod report;
pub mod return_state;
pub mod shopify_id;
pub mod verified;

pub use call::{
    AskReason, BadNews, Event, EventKind, EventStep, GoodbyeReason, RetryReason, SmsResult, TextKind, TransferReason,
    VoicemailReason,
};
pub use language::Language;
pub use phone::{PhoneError, PhoneNumber, mask_email, mask_phone, mask_pii};
pub use return_state::{DeclineReason, ReturnStatus};
pub use shopify_id::{ShopifyId, order_number_in};
pub use verified::{Verification, Verified};
