//! Where a return stands and why one was declined: Shopify's `ReturnStatus` and
//! `ReturnDeclineReason` (Admin 2026-10), stored as the lower-case words REST bodies use. Plain
//! facts every layer shares; knows nothing of where they are read, stored or spoken.

/// `ReturnStatus` (Admin 2026-10), stored as the lower-case word REST bodies use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnStatus {
    Requested,
    Open,
    Declined,
    Canceled,
    Closed,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 5] = [
        ReturnStatus::Requested,
        ReturnStatus::Open,
        ReturnStatus::Declined,
        ReturnStatus::Canceled,
        ReturnStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "requested",
            ReturnStatus::Open => "open",
            ReturnStatus::Declined => "declined",
            ReturnStatus::Canceled => "canceled",
            ReturnStatus::Closed => "closed",
        }
    }

    /// Either spelling: GraphQL's `OPEN` or a webhook's `open`.
    pub fn parse(word: &str) -> Option<ReturnStatus> {
        let word = word.to_ascii_lowercase();
        ReturnStatus::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// How far along a return is: the tie-break when two changes carry the same time (a
    /// request is always before its approval, decline, cancellation or closing).
    pub fn rank(self) -> i64 {
        match self {
            ReturnStatus::Requested => 1,
            ReturnStatus::Open => 2,
            ReturnStatus::Declined | ReturnStatus::Canceled | ReturnStatus::Closed => 3,
        }
    }
}

/// `ReturnDeclineReason` (Admin 2026-10), stored lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    FinalSale,
    ReturnPeriodEnded,
    Other,
}

impl DeclineReason {
    pub const ALL: [DeclineReason; 3] =
        [DeclineReason::FinalSale, DeclineReason::ReturnPeriodEnded, DeclineReason::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::FinalSale => "final_sale",
            DeclineReason::ReturnPeriodEnded => "return_period_ended",
            DeclineReason::Other => "other",
        }
    }

    /// Either spelling; a reason a newer API version adds counts as `Other`.
    pub fn parse(word: &str) -> DeclineReason {
        let word = word.to_ascii_lowercase();
        DeclineReason::ALL.into_iter().find(|r| r.as_str() == word).unwrap_or(DeclineReason::Other)
    }
}
