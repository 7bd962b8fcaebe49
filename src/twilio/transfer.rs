//! Where a caller goes to reach a person: a phone number, a Twilio Client, a SIP address or a
//! queue (TaskRouter/Flex when a workflow is configured). Parsed from ORDERLINE_TRANSFER_TO.

use std::fmt;

use crate::domain::PhoneNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// `<Dial><Number>`: an E.164 number.
    Number(String),
    /// `<Dial><Client>`: a Twilio Client identity (a browser or app softphone).
    Client(String),
    /// `<Dial><Sip>`: a SIP URI.
    Sip(String),
    /// `<Enqueue>`: a named queue; with a TaskRouter workflow, a Flex task.
    Queue(String),
}

impl TransferTarget {
    /// `+15550100`, `tel:+15550100`, `client:support`, `sip:agents@pbx.example.com`, `queue:support`.
    pub fn parse(text: &str, default_region: &str) -> Result<TransferTarget, String> {
        let text = text.trim();
        let bad = |why: &str| format!("ORDERLINE_TRANSFER_TO {text:?}: {why}");
        let (scheme, rest) = text.split_once(':').unwrap_or(("tel", text));
        let rest = rest.trim();
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c));
        match scheme.to_ascii_lowercase().as_str() {
            "tel" => PhoneNumber::parse(rest, Some(default_region))
                .map(|p| TransferTarget::Number(p.as_str().to_string()))
                .map_err(|e| bad(&format!("not a phone number ({e})"))),
            "client" if name_ok(rest) => Ok(TransferTarget::Client(rest.to_string())),
            "sip" if rest.contains('@') && !rest.contains(char::is_whitespace) => {
                Ok(TransferTarget::Sip(format!("sip:{rest}")))
            }
            "queue" if name_ok(rest) && rest.len() <= 64 => Ok(TransferTarget::Queue(rest.to_string())),
            "client" | "queue" => Err(bad("a name of letters, digits, _ - . @")),
            "sip" => Err(bad("a SIP address like sip:agents@pbx.example.com")),
            _ => Err(bad("use tel:+15550100, client:NAME, sip:USER@HOST or queue:NAME")),
        }
    }

    /// Every `kind()`, for the template check.
    pub const KINDS: [&'static str; 4] = ["number", "client", "sip", "queue"];

    pub fn kind(&self) -> &'static str {
        match self {
            TransferTarget::Number(_) => "number",
            TransferTarget::Client(_) => "client",
            TransferTarget::Sip(_) => "sip",
            TransferTarget::Queue(_) => "queue",
        }
    }

    pub fn address(&self) -> &str {
        match self {
            TransferTarget::Number(s)
            | TransferTarget::Client(s)
            | TransferTarget::Sip(s)
            | TransferTarget::Queue(s) => s,
        }
    }
}

impl fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.address().trim_start_matches("sip:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_target_parses() {
        assert_eq!(TransferTarget::parse("+1 415 555 0100", "US"), Ok(TransferTarget::Number("+14155550100".into())));
        assert_eq!(
            TransferTarget::parse("tel:(415) 555-0100", "US"),
            Ok(TransferTarget::Number("+14155550100".into()))
        );
        assert_eq!(TransferTarget::parse("client:support", "US"), Ok(TransferTarget::Client("support".into())));
        assert_eq!(
            TransferTarget::parse("sip:agents@pbx.example.com", "US"),
            Ok(TransferTarget::Sip("sip:agents@pbx.example.com".into()))
        );
        assert_eq!(TransferTarget::parse("queue:support", "US"), Ok(TransferTarget::Queue("support".into())));
    }

    #[test]
    fn a_bad_target_is_named() {
        for bad in ["queue:", "client:a b", "sip:nohost", "fax:123", "tel:hello"] {
            let err = TransferTarget::parse(bad, "US").unwrap_err();
            assert!(err.contains("ORDERLINE_TRANSFER_TO"), "{err}");
        }
    }
}
