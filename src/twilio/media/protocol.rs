//! Twilio's Media Streams messages, both ways, as JSON over the WebSocket: what Twilio sends
//! (`connected`, `start`, `media`, `dtmf`, `mark`, `stop`) and what we send back (`media`, `mark`,
//! `clear`). Shapes only: what a message means to a call is the session's business.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::speech::FRAME_BYTES;

/// The only audio Twilio streams: 8 kHz mono μ-law.
pub const ENCODING: &str = "audio/x-mulaw";
pub const SAMPLE_RATE: u32 = 8000;

/// A message Twilio sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "event", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum FromTwilio {
    Connected {
        protocol: String,
        version: String,
    },
    Start {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        stream_sid: String,
        start: Start,
    },
    Media {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        stream_sid: String,
        media: Media,
    },
    Dtmf {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        stream_sid: String,
        dtmf: Dtmf,
    },
    Mark {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        stream_sid: String,
        mark: MarkName,
    },
    Stop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        stream_sid: String,
        stop: Stop,
    },
    /// Any event not listed above: Twilio documents no closed set of events, so one added later
    /// is read as this and ignored.
    #[serde(other)]
    Unknown,
}

impl FromTwilio {
    /// The message's name, as its `event` field says it.
    pub fn event(&self) -> &'static str {
        match self {
            FromTwilio::Connected { .. } => "connected",
            FromTwilio::Start { .. } => "start",
            FromTwilio::Media { .. } => "media",
            FromTwilio::Dtmf { .. } => "dtmf",
            FromTwilio::Mark { .. } => "mark",
            FromTwilio::Stop { .. } => "stop",
            FromTwilio::Unknown => "unknown",
        }
    }

    /// The stream the message belongs to (`connected` names none).
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            FromTwilio::Connected { .. } | FromTwilio::Unknown => None,
            FromTwilio::Start { stream_sid, .. }
            | FromTwilio::Media { stream_sid, .. }
            | FromTwilio::Dtmf { stream_sid, .. }
            | FromTwilio::Mark { stream_sid, .. }
            | FromTwilio::Stop { stream_sid, .. } => Some(stream_sid),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    pub account_sid: String,
    pub call_sid: String,
    #[serde(default)]
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of the `<Stream>`.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u32,
}

impl MediaFormat {
    /// What Twilio streams (and the only format our recordings are in).
    pub fn mulaw() -> MediaFormat {
        MediaFormat { encoding: ENCODING.into(), sample_rate: SAMPLE_RATE, channels: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Media {
    #[serde(default)]
    pub track: String,
    /// Twilio numbers chunks from 1, as a string.
    #[serde(default)]
    pub chunk: String,
    /// Milliseconds since the stream started, as a string.
    #[serde(default)]
    pub timestamp: String,
    /// Base64 μ-law.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Dtmf {
    #[serde(default)]
    pub track: String,
    pub digit: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MarkName {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    #[serde(default)]
    pub account_sid: String,
    #[serde(default)]
    pub call_sid: String,
}

/// A message we send Twilio.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "event", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum ToTwilio {
    /// Audio to play, queued after what is already queued.
    Media { stream_sid: String, media: OutboundMedia },
    /// Tell us when the audio queued before this has been played (Twilio echoes the mark).
    Mark { stream_sid: String, mark: MarkName },
    /// Drop the queued audio (Twilio then echoes the marks that were queued with it).
    Clear { stream_sid: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OutboundMedia {
    pub payload: String,
}

impl ToTwilio {
    /// One 20 ms frame of audio.
    pub fn frame(stream_sid: &str, frame: &[u8; FRAME_BYTES]) -> ToTwilio {
        ToTwilio::Media { stream_sid: stream_sid.to_string(), media: OutboundMedia { payload: BASE64.encode(frame) } }
    }

    pub fn mark(stream_sid: &str, name: &str) -> ToTwilio {
        ToTwilio::Mark { stream_sid: stream_sid.to_string(), mark: MarkName { name: name.to_string() } }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message of strings always serializes")
    }
}

/// The `media` messages of one stream, written without going through serde: a stream sends 50 a
/// second, and all but the payload is the same each time. The same JSON as [`ToTwilio::frame`].
pub struct FrameWriter {
    prefix: String,
}

impl FrameWriter {
    pub fn new(stream_sid: &str) -> FrameWriter {
        let sid = serde_json::to_string(stream_sid).expect("a string always serializes");
        FrameWriter { prefix: format!(r#"{{"event":"media","streamSid":{sid},"media":{{"payload":""#) }
    }

    pub fn json(&self, frame: &[u8; FRAME_BYTES]) -> String {
        self.json_audio(frame)
    }

    /// A `media` message of any length of audio (a lead of several frames).
    pub fn json_audio(&self, audio: &[u8]) -> String {
        let mut json = String::with_capacity(self.prefix.len() + audio.len() * 4 / 3 + 8);
        json.push_str(&self.prefix);
        BASE64.encode_string(audio, &mut json);
        json.push_str(r#""}}"#);
        json
    }
}

/// Whether a `media` payload is base64 of at most a few frames (what Twilio sends), checked
/// without keeping the audio: the session does not listen to the caller.
pub fn is_base64(payload: &str) -> bool {
    let mut audio = [0u8; 8 * FRAME_BYTES];
    payload.len() <= 4 * FRAME_BYTES * 8 / 3 && BASE64.decode_slice(payload, &mut audio).is_ok()
}

/// The audio of a `media` payload; `None` when it is not base64.
pub fn decode_payload(payload: &str) -> Option<Vec<u8>> {
    BASE64.decode(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_start_message_parses_with_its_custom_parameters() {
        let text = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",
            "callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,
            "channels":1},"customParameters":{"from":"+15551234567"}},"streamSid":"MZ1"}"#;
        let FromTwilio::Start { stream_sid, start, .. } = serde_json::from_str(text).unwrap() else { panic!() };
        assert_eq!((stream_sid.as_str(), start.call_sid.as_str()), ("MZ1", "CA1"));
        assert_eq!(start.custom_parameters["from"], "+15551234567");
        assert_eq!(start.media_format, MediaFormat::mulaw());
    }

    #[test]
    fn media_dtmf_mark_and_stop_parse_as_twilio_sends_them() {
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1",
            "timestamp":"5","payload":"/w=="},"streamSid":"MZ1"}"#;
        let FromTwilio::Media { media, .. } = serde_json::from_str(media).unwrap() else { panic!() };
        assert_eq!(decode_payload(&media.payload), Some(vec![0xFF]));
        assert!(is_base64(&media.payload) && !is_base64("%%%"));
        let dtmf =
            r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
        assert_eq!(serde_json::from_str::<FromTwilio>(dtmf).unwrap().event(), "dtmf");
        let mark = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"1:menu"}}"#;
        assert_eq!(serde_json::from_str::<FromTwilio>(mark).unwrap().stream_sid(), Some("MZ1"));
        let stop =
            r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
        assert_eq!(serde_json::from_str::<FromTwilio>(stop).unwrap().event(), "stop");
    }

    #[test]
    fn an_event_twilio_adds_later_parses_as_unknown() {
        let text = r#"{"event":"transcription","streamSid":"MZ1","transcription":{"text":"hi"}}"#;
        assert_eq!(serde_json::from_str::<FromTwilio>(text).unwrap(), FromTwilio::Unknown);
    }

    #[test]
    fn the_frame_writer_writes_what_serde_writes() {
        let frame: [u8; FRAME_BYTES] = std::array::from_fn(|i| i as u8);
        for sid in ["MZ1", "MZ\"odd\""] {
            assert_eq!(FrameWriter::new(sid).json(&frame), ToTwilio::frame(sid, &frame).to_json());
        }
    }

    #[test]
    fn what_we_send_has_twilios_field_names() {
        let frame = ToTwilio::frame("MZ1", &[0xFF; FRAME_BYTES]).to_json();
        assert!(frame.starts_with(r#"{"event":"media","streamSid":"MZ1","media":{"payload":"////"#), "{frame}");
        assert_eq!(
            ToTwilio::mark("MZ1", "2:menu").to_json(),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"2:menu"}}"#
        );
        assert_eq!(ToTwilio::Clear { stream_sid: "MZ1".into() }.to_json(), r#"{"event":"clear","streamSid":"MZ1"}"#);
    }
}
