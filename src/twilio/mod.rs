//! Twilio: signature check, the voice and status handlers, Media Streams, ConversationRelay,
//! TwiML and speech rendering, call records.

pub mod call;
pub mod callback;
pub mod media;
pub mod public_url;
pub mod recorder;
pub mod relay;
pub mod render;
pub mod request;
pub mod rest;
pub mod signature;
pub mod sms;
pub mod transfer;
pub mod transfer_end;
pub mod twiml;
pub mod voice;
pub mod voicemail;
pub mod voices;
pub mod xml_text;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    voice::router()
        .merge(transfer_end::router())
        .merge(media::router())
        .merge(relay::router())
        .merge(sms::router())
        .merge(voicemail::router())
        .merge(callback::router())
}

/// The Twilio routes at the root and, when ORDERLINE_PUBLIC_URL has a path, under it too: Twilio
/// may reach us directly at `https://host/prefix/twilio/…` or through a proxy that strips the prefix.
pub fn router_at(public_url: &str) -> Router<AppState> {
    let prefix = public_url::PublicUrl::new(public_url).prefix().to_string();
    if prefix.is_empty() { router() } else { router().nest(&prefix, router()) }
}
