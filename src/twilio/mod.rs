//! Twilio: signature check, the voice and status handlers, Media Streams, TwiML and speech
//! rendering, call records.

pub mod call;
pub mod media;
pub mod recorder;
pub mod render;
pub mod request;
pub mod signature;
pub mod transfer;
pub mod twiml;
pub mod voice;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    voice::router().merge(media::router())
}
