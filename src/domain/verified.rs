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
