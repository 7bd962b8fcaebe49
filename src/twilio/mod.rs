//! Twilio: signature check, the voice and status handlers, TwiML rendering, call records.

pub mod recorder;
pub mod render;
pub mod request;
pub mod signature;
pub mod transfer;
pub mod twiml;
pub mod voice;

pub use voice::router;
