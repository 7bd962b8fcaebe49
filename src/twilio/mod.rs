//! Twilio: signature check, the voice and status handlers, TwiML rendering.

pub mod signature;
pub mod twiml;
