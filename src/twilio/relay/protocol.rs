//! Twilio's ConversationRelay messages, both ways, as JSON text frames with a `type` field
//! (twilio.com/docs/voice/conversationrelay/websocket-messages, read 2026-12-05): what Twilio
//! sends (`setup`, `prompt`, `dtmf`, `interrupt`, `error`) and what we send back (`text`, `play`,
//! `sendDigits`, `language`, `end`), and the `handoffData` orderline puts in `end`. Shapes only:
//! what a message means to a call is the session's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A message Twilio sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum FromTwilio {
    /// Right after the socket opens: the session and the call, with the `<Parameter>`s.
    Setup(Box<Setup>),
    /// What the caller said; `last` is false for a partial transcript.
    Prompt {
        #[serde(default)]
        voice_prompt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
        #[serde(default = "yes")]
        last: bool,
    },
    /// A key the caller pressed (with `dtmfDetection="true"`).
    Dtmf { digit: String },
    /// The caller spoke over what was being said; Twilio stopped speaking it.
    Interrupt {
        #[serde(default)]
        utterance_until_interrupt: String,
        /// A number in one of Twilio's samples and a string in another: both are read.
        #[serde(default, deserialize_with = "number_or_string", skip_serializing_if = "Option::is_none")]
        duration_until_interrupt_ms: Option<u64>,
    },
    /// Something went wrong at Twilio (a message of ours it could not take: error 64107).
    Error {
        #[serde(default)]
        description: String,
    },
    /// Any type not listed above: Twilio may add message types, so one added later is read as
    /// this and ignored.
    #[serde(other)]
    Unknown,
}

impl FromTwilio {
    /// The message's name, as its `type` field says it.
    pub fn kind(&self) -> &'static str {
        match self {
            FromTwilio::Setup(_) => "setup",
            FromTwilio::Prompt { .. } => "prompt",
            FromTwilio::Dtmf { .. } => "dtmf",
            FromTwilio::Interrupt { .. } => "interrupt",
            FromTwilio::Error { .. } => "error",
            FromTwilio::Unknown => "unknown",
        }
    }
}

fn yes() -> bool {
    true
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        Some(Either::Number(n)) => Some(n),
        Some(Either::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(Either::Text(t)) => t.trim().parse().ok(),
        Some(Either::Float(_)) | None => None,
    })
}

/// The `setup` message: who is calling, and the `<Parameter>`s of `<ConversationRelay>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// `VX…`.
    pub session_id: String,
    #[serde(default)]
    pub account_sid: String,
    pub call_sid: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub call_status: String,
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
}

/// A message we send.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ToTwilio {
    /// Words to speak: tokens are spoken one after another; `last` ends the talk cycle.
    Text {
        token: String,
        last: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruptible: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preemptible: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
    /// A media file to play.
    Play {
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruptible: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preemptible: Option<bool>,
    },
    /// Keys sent down the call.
    SendDigits { digits: String },
    /// Speaks and listens in another language from now on.
    Language {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tts_language: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcription_language: Option<String>,
    },
    /// Ends the session; Twilio posts the `<Connect action>` with `HandoffData`.
    End {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handoff_data: Option<String>,
    },
}

impl ToTwilio {
    /// One token of words, which the caller may interrupt.
    pub fn words(token: impl Into<String>, last: bool) -> ToTwilio {
        ToTwilio::Text { token: token.into(), last, interruptible: Some(true), preemptible: None, lang: None }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message of strings and booleans always serializes")
    }
}

/// Why orderline ended a session: what the `<Connect action>` goes on with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The flow puts the caller through to a person.
    Transfer,
    /// The flow says goodbye.
    Goodbye,
    /// The caller leaves a message: the `<Record>` (ORDERLINE_VOICEMAIL).
    Voicemail,
    /// Something failed: the apology and a person.
    Fallback,
}

impl HandoffReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Transfer => "transfer",
            HandoffReason::Goodbye => "goodbye",
            HandoffReason::Voicemail => "voicemail",
            HandoffReason::Fallback => "fallback",
        }
    }
}

/// The `handoffData` of our `end`, as JSON text (Twilio passes it on as the string it got).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    pub reason: HandoffReason,
    /// The call's step that decided it.
    pub step: u32,
}

impl Handoff {
    pub fn to_json(self) -> String {
        serde_json::to_string(&self).expect("a handoff always serializes")
    }

    /// `HandoffData` as Twilio posts it back; `None` when it is not ours.
    pub fn parse(text: &str) -> Option<Handoff> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_documented_messages_parse() {
        let setup = r#"{"type":"setup","sessionId":"VX00000000000000000000000000000000","accountSid":"AC1",
            "parentCallSid":"","callSid":"CA00000000000000000000000000000000","from":"+18005550100",
            "to":"+18005550101","forwardedFrom":"+18005550102","callType":"PSTN","callerName":"",
            "direction":"inbound","callStatus":"RINGING","customParameters":{"callReference":"bar"}}"#;
        let FromTwilio::Setup(setup) = serde_json::from_str(setup).unwrap() else { panic!("a setup") };
        assert_eq!(setup.call_sid, "CA00000000000000000000000000000000");
        assert_eq!(setup.custom_parameters.get("callReference").map(String::as_str), Some("bar"));
        let prompt = r#"{"type":"prompt","voicePrompt":"Hi! Can you tell me about life?","lang":"en-US","last":true}"#;
        assert_eq!(
            serde_json::from_str::<FromTwilio>(prompt).unwrap(),
            FromTwilio::Prompt {
                voice_prompt: "Hi! Can you tell me about life?".into(),
                lang: Some("en-US".into()),
                last: true
            }
        );
        let dtmf: FromTwilio = serde_json::from_str(r#"{"type":"dtmf","digit":"1"}"#).unwrap();
        assert_eq!(dtmf, FromTwilio::Dtmf { digit: "1".into() });
        for duration in ["460", "\"460\""] {
            let text = format!(
                r#"{{"type":"interrupt","utteranceUntilInterrupt":"Life is a complex set of","durationUntilInterruptMs":{duration}}}"#
            );
            let FromTwilio::Interrupt { duration_until_interrupt_ms, .. } = serde_json::from_str(&text).unwrap() else {
                panic!("an interrupt")
            };
            assert_eq!(duration_until_interrupt_ms, Some(460), "{duration}");
        }
        let error = r#"{"type":"error","description":"Invalid message received: { \"foo\" : \"bar\" }"}"#;
        assert!(matches!(serde_json::from_str(error).unwrap(), FromTwilio::Error { .. }));
    }

    #[test]
    fn an_unknown_type_is_read_and_a_broken_message_is_not() {
        let later: FromTwilio = serde_json::from_str(r#"{"type":"transcript","text":"hi"}"#).unwrap();
        assert_eq!(later, FromTwilio::Unknown);
        for broken in ["not json", "{}", r#"{"type":"dtmf"}"#, r#"{"type":"prompt","voicePrompt":7}"#, "[1]"] {
            assert!(serde_json::from_str::<FromTwilio>(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn our_messages_are_shaped_as_twilio_documents_them() {
        let text = ToTwilio::words("Hello. ", false).to_json();
        assert_eq!(text, r#"{"type":"text","token":"Hello. ","last":false,"interruptible":true}"#);
        let handoff = Handoff { reason: HandoffReason::Transfer, step: 3 }.to_json();
        let end = ToTwilio::End { handoff_data: Some(handoff.clone()) }.to_json();
        assert_eq!(end, r#"{"type":"end","handoffData":"{\"reason\":\"transfer\",\"step\":3}"}"#);
        assert_eq!(Handoff::parse(&handoff), Some(Handoff { reason: HandoffReason::Transfer, step: 3 }));
        assert_eq!(Handoff::parse(r#"{"reason":"party","step":3}"#), None);
        let language = ToTwilio::Language { tts_language: Some("es-US".into()), transcription_language: None };
        assert_eq!(language.to_json(), r#"{"type":"language","ttsLanguage":"es-US"}"#);
        assert_eq!(ToTwilio::SendDigits { digits: "1#".into() }.to_json(), r#"{"type":"sendDigits","digits":"1#"}"#);
    }
}
