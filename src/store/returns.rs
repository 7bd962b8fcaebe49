//! A stored return, as the apply path (`records::merge_return`) writes it and the caller lookup
//! reads it: one row per return, merged from whatever facts each copy carries. Never decides
//! what a caller hears.
//!
//! The write rule. A return has no `updated_at` in Shopify, so the time of a copy is `as_of`:
//! the delivery's `X-Shopify-Triggered-At`, or the time a snapshot (live fetch, sweep) was
//! read. The status (with its closing time and decline) is written when the copy is newer than
//! what is stored, or on the same second when it is further along (`ReturnStatus::rank`) or a
//! snapshot. So a `returns/approve` applied before its `returns/request` stays open, and a
//! duplicate changes nothing. Facts that only accumulate (the label, counts, names, the order)
//! are kept once learned and replaced by newer copies that carry them.

use super::Ts;

/// A stored return.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReturnRow {
    pub id: i64,
    pub order_id: Option<i64>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub status_rank: i64,
    pub requested_at: Option<Ts>,
    pub approved_at: Option<Ts>,
    pub closed_at: Option<Ts>,
    pub decline_reason: Option<String>,
    pub decline_note: Option<String>,
    pub return_items: Option<i64>,
    pub exchange_items: Option<i64>,
    pub label_carrier: Option<String>,
    pub label_tracking_number: Option<String>,
    pub label_tracking_url: Option<String>,
    pub label_url: Option<String>,
    pub received: bool,
    pub as_of: Option<Ts>,
}

pub(crate) const RETURN_COLUMNS: &str = "id, order_id, name, status, status_rank, requested_at, approved_at, \
    closed_at, decline_reason, decline_note, return_items, exchange_items, label_carrier, label_tracking_number, \
    label_tracking_url, label_url, received, as_of";

impl ReturnRow {
    pub(crate) fn empty(id: i64) -> ReturnRow {
        ReturnRow {
            id,
            order_id: None,
            name: None,
            status: None,
            status_rank: 0,
            requested_at: None,
            approved_at: None,
            closed_at: None,
            decline_reason: None,
            decline_note: None,
            return_items: None,
            exchange_items: None,
            label_carrier: None,
            label_tracking_number: None,
            label_tracking_url: None,
            label_url: None,
            received: false,
            as_of: None,
        }
    }
}
