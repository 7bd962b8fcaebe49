//! Twilio: signature check, the voice and status handlers, TwiML rendering.

pub mod signature;
pub mod transfer;
// pub mod render; (after the twiml merge)
pub mod recorder;
