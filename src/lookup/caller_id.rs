//! What Twilio puts in `From`, parsed: a number, withheld, or text that is no number.

use crate::domain::PhoneNumber;

/// Values Twilio sends when the caller ID is withheld or unavailable: words, and the
/// placeholder numbers it substitutes (anonymous, unknown, restricted, blocked).
const WITHHELD: [&str; 11] = [
    "",
    "anonymous",
    "restricted",
    "unknown",
    "unavailable",
    "private",
    "blocked",
    "+266696687",
    "+86282452253",
    "+7378742833",
    "+2562533",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// A number we can look up.
    Number(PhoneNumber),
    /// The caller withheld their number, or the network did not pass it on.
    Withheld,
    /// Something that is not a phone number (kept for the call record, never looked up).
    Unparseable(String),
}

impl CallerId {
    pub fn parse(raw: &str, default_region: &str) -> CallerId {
        let text = raw.trim();
        if WITHHELD.iter().any(|w| w.eq_ignore_ascii_case(text)) {
            return CallerId::Withheld;
        }
        match PhoneNumber::parse(text, Some(default_region)) {
            Ok(number) => CallerId::Number(number),
            Err(_) => CallerId::Unparseable(text.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_placeholders_and_words_mean_withheld() {
        for raw in ["anonymous", "Anonymous", "+266696687", "+86282452253", "Restricted", "", "  "] {
            assert_eq!(CallerId::parse(raw, "US"), CallerId::Withheld, "{raw:?}");
        }
    }

    #[test]
    fn numbers_in_any_format_are_parsed() {
        let expected = CallerId::Number(PhoneNumber::from_e164("+15551234567").unwrap());
        assert_eq!(CallerId::parse("+15551234567", "US"), expected);
        assert_eq!(CallerId::parse("(555) 123-4567", "US"), expected);
        assert_eq!(CallerId::parse("5551234567", "US"), expected);
        assert_eq!(
            CallerId::parse("sip:alice@example.com", "US"),
            CallerId::Unparseable("sip:alice@example.com".into())
        );
    }
}
