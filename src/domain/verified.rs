//! How a caller proved who they are: the verification level the call flow decides, the call
//! record stores and the agent's card shows.

use serde::Serialize;

/// How the caller proved who they are, if they did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verified {
    #[default]
    No,
    /// `ORDERLINE_VERIFY=none`: caller ID alone is trusted.
    NotRequired,
    /// STIR/SHAKEN full attestation (`TN-Validation-Passed-A`).
    CallerId,
    /// The shipping postal code matched.
    PostalCode,
    /// The caller knew the order number; they hear about that order only.
    OrderNumber,
}

impl Verified {
    pub const ALL: [Verified; 5] =
        [Verified::No, Verified::NotRequired, Verified::CallerId, Verified::PostalCode, Verified::OrderNumber];

    /// The name stored in call records and spoken of in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::No => "no",
            Verified::NotRequired => "not_required",
            Verified::CallerId => "caller_id",
            Verified::PostalCode => "postal_code",
            Verified::OrderNumber => "order_number",
        }
    }

    /// May the caller hear about the account's orders (not just one order)?
    pub fn covers_account(self) -> bool {
        matches!(self, Verified::NotRequired | Verified::CallerId | Verified::PostalCode)
    }
}

/// How a call's verification ended, as the call record stores it (`calls.verification`): passed
/// at a level (its name), or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Passed(Verified),
    Failed,
}

impl Serialize for Verification {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Passed(level) => level.as_str(),
            Verification::Failed => "failed",
        }
    }

    /// A stored name; none for a name this build does not know.
    pub fn parse(text: &str) -> Option<Verification> {
        if text == "failed" {
            return Some(Verification::Failed);
        }
        Verified::ALL.iter().find(|level| level.as_str() == text).map(|&level| Verification::Passed(level))
    }

    /// The level reached: `No` for a failure.
    pub fn level(self) -> Verified {
        match self {
            Verification::Passed(level) => level,
            Verification::Failed => Verified::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_is_stored_by_the_names_rows_already_hold() {
        let names: Vec<&str> = Verified::ALL.iter().map(|&v| Verification::Passed(v).as_str()).collect();
        assert_eq!(names, ["no", "not_required", "caller_id", "postal_code", "order_number"]);
        assert_eq!(Verification::Failed.as_str(), "failed");
        for name in ["failed", "postal_code", "caller_id", "order_number", "not_required"] {
            assert_eq!(Verification::parse(name).map(Verification::as_str), Some(name));
        }
        assert_eq!(Verification::parse("postal-code"), None);
    }
}
