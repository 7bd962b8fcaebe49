//! What happens in a call, as the call record stores it and the agents' feed and card read it:
//! each event is a kind (stored by its name) and a detail; reasons are the words the templates
//! branch on. The names are the stored ones: changing one is a migration.

use super::Verified;

names! {
    /// What kind of thing happened; stored in `call_events.kind`.
    pub enum EventKind {
        /// A step of the flow was spoken (its template's name).
        Step => "step",
        /// Where the caller's record came from (cache, store, Shopify, …), or that it was slow.
        Lookup => "lookup",
        /// Keys pressed at a question (`none` when nothing was).
        Key => "key",
        /// A postal code was keyed: only whether it was, never its digits.
        PostalCode => "postal_code",
        /// A verification passed, failed or was refused (`method:result`).
        Verification => "verification",
        /// The order a caller keyed in and was told about.
        Order => "order",
        Goodbye => "goodbye",
        Transfer => "transfer",
        /// How a transfer ended (answered, busy, no answer, …).
        TransferEnd => "transfer_end",
        /// Something failed and the caller went to the fallback.
        Error => "error",
        /// A status callback from Twilio.
        Status => "status",
        /// A Media Streams session started, ended or failed.
        Stream => "stream",
        /// The caller pressed a key over a Media Streams prompt, or spoke over a ConversationRelay one.
        BargeIn => "barge_in",
        /// How a ConversationRelay session ended (handed off, the caller hung up, an error).
        Relay => "relay",
        /// The caller spoke an answer: what Twilio heard, its confidence, what it was taken as.
        Speech => "speech",
        /// The tracking link by text: `sent SM…`, `already sent SM…` or `failed: <code>`.
        Sms => "sms",
        /// A voicemail: offered (its reason), left (`RE… 12 s`), or none left.
        Voicemail => "voicemail",
        /// A call-back: requested from the queue (`requested at place 3`), placed, answered,
        /// failed.
        Callback => "callback",
        /// Bad news first: which (`stalled: no carrier scan for 6 days (#1016)`).
        BadNews => "bad_news",
        /// The call's language and why (`Spanish (es): the customer's locale es-MX`, `Spanish
        /// (es): chosen (key 9)`); only on a line with more than one language.
        Language => "language",
    }
}

impl EventKind {
    /// The change type the agents' feed announces for an event of this kind; `None`: not a
    /// change of its own (status callbacks announce themselves).
    pub fn feed_type(self) -> Option<&'static str> {
        match self {
            EventKind::Verification => Some("verified"),
            EventKind::Transfer => Some("transferred"),
            EventKind::Status => None,
            _ => Some("step"),
        }
    }
}

names! {
    /// Which link a text during a call carries; stored in `sms_messages.kind`, one text of each
    /// kind per call and order.
    pub enum TextKind {
        /// The order's tracking link (key 4).
        Tracking => "tracking",
        /// The return label's link (key 6, offered after key 3 when a return has a label).
        ReturnLabel => "return_label",
    }
}

names! {
    /// What the caller is told after asking for the tracking link by text.
    pub enum SmsResult {
        /// Twilio accepted it (within the budget), or it was accepted earlier in this call.
        Sent => "sent",
        /// Twilio refused it, failed, or did not accept it within the budget.
        Failed => "failed",
    }
}

names! {
    /// Why the caller is asked to leave a message.
    pub enum VoicemailReason {
        /// The line is closed and the caller asked for a person (pressed 0).
        Closed => "closed",
        /// The caller chose voicemail from the menu (ORDERLINE_VOICEMAIL=menu).
        Asked => "asked",
        /// A transfer was not answered (busy, no answer, not connected).
        Unanswered => "unanswered",
        /// The caller waited in the queue until its maximum wait, or the queue was full.
        QueueLeft => "queue_left",
    }
}

names! {
    /// Why the caller is asked for an order number.
    pub enum AskReason {
        /// No customer has the calling number.
        Unknown => "unknown",
        /// Several customers share it.
        Shared => "shared",
        /// No caller ID.
        Withheld => "withheld",
        /// Known, but no postal code on file to check: the caller proves an order instead.
        Verify => "verify",
        /// The last answer was not an order we know.
        Retry => "retry",
    }
}

names! {
    /// Why a question is asked again.
    pub enum RetryReason {
        /// Nothing was keyed.
        NoInput => "no_input",
        /// The order number keyed is not an order we know.
        NotFound => "not_found",
        /// The postal code keyed is not the one on file.
        Mismatch => "mismatch",
    }
}

names! {
    /// Why a caller is put through to a person (also the spoken reason of a goodbye outside
    /// business hours, see `GoodbyeReason`).
    pub enum TransferReason {
        /// Pressed 0.
        Asked => "asked",
        OrderNotFound => "order_not_found",
        NotVerified => "not_verified",
        /// Recorded only: too many failed verifications (spoken as `not_verified`).
        VerificationLocked => "verification_locked",
        NoInput => "no_input",
        InvalidKey => "invalid_key",
        /// Something failed; the fallback puts the caller through.
        Fallback => "fallback",
        /// Bad news first: the caller heard it and is put through with priority.
        BadNews => "bad_news",
    }
}

names! {
    /// Why a caller hears bad news first (the order's honest state and an apology) instead of
    /// the reassuring menu.
    pub enum BadNews {
        /// The carrier said it could not deliver (failure, not delivered).
        NotDelivered => "not_delivered",
        /// The carrier marked it delayed.
        Delayed => "delayed",
        /// Shipped, and no carrier scan for ORDERLINE_BAD_NEWS_STALLED_AFTER.
        Stalled => "stalled",
        /// Marked delivered in the last 48 hours, and the customer is calling.
        DeliveredRecently => "delivered_recently",
        /// The same customer called within ORDERLINE_BAD_NEWS_REPEAT_WITHIN.
        RepeatCaller => "repeat_caller",
    }
}

/// Why a call ends with goodbye: the reason it would have been put through, outside business
/// hours where nobody is there.
pub type GoodbyeReason = TransferReason;

/// Where an event is numbered in the call record (`call_events.step`): the flow's steps count
/// from 1; the others sort after every step a call can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStep {
    /// The flow's n-th request of the call.
    Flow(u32),
    /// A failure that belongs to no step of the call.
    Unnumbered,
    /// How a transfer ended: after the flow's steps, before status callbacks.
    TransferEnd,
    /// The message the caller left (the `<Record>` action): after a transfer's end.
    Voicemail,
    /// A call-back's n-th event: 0 requested; then per attempt k, 10k+1 placed, 10k+2 not
    /// answered, 10k+3 answered.
    Callback(u16),
    /// A Media Streams status callback: 0 started, 1 stopped, 2 error, 3 anything else (one
    /// number each, so a start and a stop of the same call are both kept).
    StreamStatus(u8),
    /// The end of a ConversationRelay session (the `<Connect action>` request).
    RelayEnded,
    /// Twilio's status callback with this `SequenceNumber`.
    Status(i32),
}

impl EventStep {
    const TRANSFER_END: i32 = 90_000;
    const VOICEMAIL: i32 = 91_000;
    const CALLBACK: i32 = 92_000;
    const STREAM_STATUS: i32 = 95_000;
    const RELAY_ENDED: i32 = 96_000;
    const UNNUMBERED: i32 = 99_999;
    const STATUS_BASE: i32 = 100_000;

    /// The stored number.
    pub fn number(self) -> i32 {
        match self {
            EventStep::Flow(0) => Self::UNNUMBERED,
            EventStep::Flow(n) => i32::try_from(n).unwrap_or(i32::MAX),
            EventStep::Unnumbered => Self::UNNUMBERED,
            EventStep::TransferEnd => Self::TRANSFER_END,
            EventStep::Voicemail => Self::VOICEMAIL,
            EventStep::Callback(n) => Self::CALLBACK + i32::from(n.min(999)),
            EventStep::StreamStatus(n) => Self::STREAM_STATUS + i32::from(n.min(3)),
            EventStep::RelayEnded => Self::RELAY_ENDED,
            EventStep::Status(sequence) => Self::STATUS_BASE.saturating_add(sequence.max(0)),
        }
    }
}

/// A verification's outcome, stored as `method:result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationResult {
    Passed,
    Failed,
    /// No more guesses: why (how many failures within which window, for what).
    Locked(String),
    /// Could not be checked: why.
    Unverifiable(String),
}

/// One thing that happened at a step of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Step(&'static str),
    Lookup(String),
    /// The keys pressed (digits and `*`), or `None` when nothing was.
    Key(Option<String>),
    /// Whether a postal code was keyed (its digits are never recorded).
    PostalCode {
        entered: bool,
    },
    Verification {
        method: Verified,
        result: VerificationResult,
    },
    Order(String),
    Goodbye(GoodbyeReason),
    Transfer(TransferReason),
    TransferEnd(String),
    Error(String),
    Status(String),
    Stream(String),
    BargeIn(String),
    Relay(String),
    /// What the caller said (`None` for a postal code: never recorded), Twilio's confidence,
    /// and what it was understood as (`keys 1`, `nothing`, `unclear`).
    /// The confidence in hundredths (0–100), so events compare exactly.
    Speech {
        said: Option<String>,
        confidence: Option<u8>,
        understood: String,
    },
    Sms(String),
    Voicemail(String),
    Callback(String),
    BadNews(String),
    Language(String),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Step(_) => EventKind::Step,
            Event::Lookup(_) => EventKind::Lookup,
            Event::Key(_) => EventKind::Key,
            Event::PostalCode { .. } => EventKind::PostalCode,
            Event::Verification { .. } => EventKind::Verification,
            Event::Order(_) => EventKind::Order,
            Event::Goodbye(_) => EventKind::Goodbye,
            Event::Transfer(_) => EventKind::Transfer,
            Event::TransferEnd(_) => EventKind::TransferEnd,
            Event::Error(_) => EventKind::Error,
            Event::Status(_) => EventKind::Status,
            Event::Stream(_) => EventKind::Stream,
            Event::BargeIn(_) => EventKind::BargeIn,
            Event::Relay(_) => EventKind::Relay,
            Event::Speech { .. } => EventKind::Speech,
            Event::Sms(_) => EventKind::Sms,
            Event::Voicemail(_) => EventKind::Voicemail,
            Event::Callback(_) => EventKind::Callback,
            Event::BadNews(_) => EventKind::BadNews,
            Event::Language(_) => EventKind::Language,
        }
    }

    /// What the caller said, quoted as it is stored, read back from a `speech` event's detail
    /// (the inverse of `detail` for `Event::Speech`); none for a postal code (never recorded) or
    /// any other detail.
    pub fn said_in(detail: &str) -> Option<&str> {
        let (said, _) = detail.rsplit_once(", confidence ").or_else(|| detail.rsplit_once(", no confidence"))?;
        said.starts_with('"').then_some(said)
    }

    /// The detail as stored beside the kind.
    pub fn detail(&self) -> String {
        match self {
            Event::Step(template) => (*template).to_string(),
            Event::Key(None) | Event::PostalCode { entered: false } => "none".to_string(),
            Event::Key(Some(keys)) => keys.clone(),
            Event::PostalCode { entered: true } => "entered (not recorded)".to_string(),
            Event::Verification { method, result } => match result {
                VerificationResult::Passed => format!("{method}:passed", method = method.as_str()),
                VerificationResult::Failed => format!("{}:failed", method.as_str()),
                VerificationResult::Locked(why) => format!("{}:locked: {why}", method.as_str()),
                VerificationResult::Unverifiable(why) => format!("{}:{why}", method.as_str()),
            },
            Event::Goodbye(reason) | Event::Transfer(reason) => reason.as_str().to_string(),
            Event::Speech { said, confidence, understood } => {
                let said = said.as_deref().map_or("entered (not recorded)".to_string(), |s| format!("{s:?}"));
                let confidence = confidence.map_or("no confidence".to_string(), |c| format!("confidence {c}%"));
                format!("{said}, {confidence}: {understood}")
            }
            Event::Lookup(text)
            | Event::Order(text)
            | Event::TransferEnd(text)
            | Event::Error(text)
            | Event::Status(text)
            | Event::Stream(text)
            | Event::BargeIn(text)
            | Event::Relay(text)
            | Event::Sms(text)
            | Event::Voicemail(text)
            | Event::Callback(text)
            | Event::BadNews(text)
            | Event::Language(text) => text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_caller_said_is_read_back_from_the_stored_detail() {
        let speech = |said: Option<&str>, confidence| Event::Speech {
            said: said.map(str::to_string),
            confidence,
            understood: "keys 3".into(),
        };
        let detail = speech(Some("my refund, please"), Some(87)).detail();
        assert_eq!(detail, "\"my refund, please\", confidence 87%: keys 3");
        assert_eq!(Event::said_in(&detail), Some("\"my refund, please\""));
        assert_eq!(Event::said_in(&speech(Some("a, no confidence"), None).detail()), Some("\"a, no confidence\""));
        assert_eq!(Event::said_in(&speech(None, Some(90)).detail()), None, "a postal code is never recorded");
        assert_eq!(Event::said_in("menu"), None);
    }

    #[test]
    fn stored_names_are_the_ones_rows_and_the_feed_already_hold() {
        let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "step",
                "lookup",
                "key",
                "postal_code",
                "verification",
                "order",
                "goodbye",
                "transfer",
                "transfer_end",
                "error",
                "status",
                "stream",
                "barge_in",
                "relay",
                "speech",
                "sms",
                "voicemail",
                "callback",
                "bad_news",
                "language"
            ]
        );
        let reasons: Vec<&str> = TransferReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "asked",
                "order_not_found",
                "not_verified",
                "verification_locked",
                "no_input",
                "invalid_key",
                "fallback",
                "bad_news"
            ]
        );
        assert_eq!(serde_json::to_string(&AskReason::Withheld).unwrap(), "\"withheld\"");
        assert_eq!(serde_json::to_string(&RetryReason::NotFound).unwrap(), "\"not_found\"");
    }

    #[test]
    fn every_name_parses_back_to_its_value() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(EventKind::parse("verified"), None, "a feed type is not an event kind");
    }

    #[test]
    fn details_are_stored_as_before() {
        let passed = Event::Verification { method: Verified::CallerId, result: VerificationResult::Passed };
        assert_eq!((passed.kind().as_str(), passed.detail().as_str()), ("verification", "caller_id:passed"));
        let none = Event::Verification {
            method: Verified::OrderNumber,
            result: VerificationResult::Unverifiable("no postal code on file to check".into()),
        };
        assert_eq!(none.detail(), "order_number:no postal code on file to check");
        assert_eq!(Event::Key(None).detail(), "none");
        assert_eq!(Event::PostalCode { entered: true }.detail(), "entered (not recorded)");
        assert_eq!(Event::Transfer(TransferReason::VerificationLocked).detail(), "verification_locked");
    }

    #[test]
    fn steps_outside_the_flow_sort_after_it() {
        assert_eq!(EventStep::Flow(3).number(), 3);
        assert_eq!(EventStep::Flow(0).number(), EventStep::Unnumbered.number());
        assert!(EventStep::TransferEnd.number() < EventStep::StreamStatus(0).number());
        assert!(EventStep::StreamStatus(3).number() < EventStep::Unnumbered.number());
        assert!(EventStep::StreamStatus(3).number() < EventStep::RelayEnded.number());
        assert!(EventStep::RelayEnded.number() < EventStep::Unnumbered.number());
        assert!(EventStep::Unnumbered.number() < EventStep::Status(0).number());
        assert_eq!(EventStep::Status(-4).number(), EventStep::Status(0).number());
    }
}
