//! Returns, written only through the apply path (`records`): one row per return, merged from
//! whatever facts each copy carries. Never decides what a caller hears.
//!
//! The write rule. A return has no `updated_at` in Shopify, so the time of a copy is `as_of`:
//! the delivery's `X-Shopify-Triggered-At`, or the time a snapshot (live fetch, sweep) was
//! read. The status (with its closing time and decline) is written when the copy is newer than
//! what is stored, or on the same second when it is further along (`ReturnStatus::rank`) or a
//! snapshot. So a `returns/approve` applied before its `returns/request` stays open, and a
//! duplicate changes nothing. Facts that only accumulate (the label, counts, names, the order)
//! are kept once learned and replaced by newer copies that carry them.

use super::Ts;
use crate::shopify::payload::ShopifyId;
use crate::shopify::returns::{ReturnStatus, ShopifyReturn};

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
    fn empty(id: ShopifyId) -> ReturnRow {
        ReturnRow {
            id: id.0,
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

/// The row after applying `r` (read at `as_of`; `snapshot`: a whole copy from the Admin API)
/// to `stored`.
pub(crate) fn merge(stored: Option<&ReturnRow>, r: &ShopifyReturn, as_of: Ts, snapshot: bool) -> ReturnRow {
    let mut row = stored.cloned().unwrap_or_else(|| ReturnRow::empty(r.id));
    let fill = |slot: &mut Option<String>, value: &Option<String>| {
        if value.is_some() {
            slot.clone_from(value);
        }
    };
    if let Some(order) = r.order_id {
        row.order_id = Some(order.0);
    }
    fill(&mut row.name, &r.name);
    if r.return_items.is_some() {
        row.return_items = r.return_items;
    }
    if r.exchange_items.is_some() {
        row.exchange_items = r.exchange_items;
    }
    if let Some(label) = &r.label {
        row.label_carrier.clone_from(&label.carrier);
        row.label_tracking_number.clone_from(&label.tracking_number);
        row.label_tracking_url.clone_from(&label.tracking_url);
        row.label_url.clone_from(&label.label_url);
    }
    if let Some(received) = r.received {
        row.received = if snapshot { received } else { row.received || received };
    }
    let at = Some(as_of);
    // When it was asked for and approved: a snapshot knows; a webhook's time tells it otherwise.
    let requested = r.requested_at.map(Ts::from).or((r.status == Some(ReturnStatus::Requested)).then_some(as_of));
    row.requested_at = if snapshot { requested.or(row.requested_at) } else { row.requested_at.or(requested) };
    let approved = r.approved_at.map(Ts::from).or((r.status == Some(ReturnStatus::Open)).then_some(as_of));
    row.approved_at =
        if snapshot { r.approved_at.map(Ts::from).or(row.approved_at) } else { row.approved_at.or(approved) };
    if let Some(status) = r.status {
        let newer = match row.as_of {
            None => true,
            Some(stored_at) => {
                at > Some(stored_at) || (at == Some(stored_at) && (snapshot || status.rank() > row.status_rank))
            }
        };
        if newer {
            row.status = Some(status.as_str().to_string());
            row.status_rank = status.rank();
            row.as_of = at;
            row.closed_at = match status {
                ReturnStatus::Closed => r.closed_at.map(Ts::from).or(row.closed_at).or(at),
                _ => r.closed_at.map(Ts::from),
            };
            if status == ReturnStatus::Declined {
                row.decline_reason = r.decline_reason.map(|d| d.as_str().to_string()).or(row.decline_reason.take());
                row.decline_note = r.decline_note.clone().or(row.decline_note.take());
            } else if snapshot {
                row.decline_reason = None;
                row.decline_note = None;
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(second: i64) -> Ts {
        Ts(DateTime::<Utc>::from_timestamp(1_790_000_000 + second, 0).unwrap())
    }

    fn copy(status: ReturnStatus) -> ShopifyReturn {
        let mut r = crate::shopify::returns::ShopifyReturn {
            id: ShopifyId(5),
            order_id: Some(ShopifyId(7)),
            name: None,
            status: Some(status),
            requested_at: None,
            approved_at: None,
            closed_at: None,
            decline_reason: None,
            decline_note: None,
            return_items: None,
            exchange_items: None,
            label: None,
            received: None,
            as_of: None,
        };
        r.as_of = None;
        r
    }

    #[test]
    fn an_approval_applied_before_its_request_stays_open() {
        let approved = merge(None, &copy(ReturnStatus::Open), at(2), false);
        let then = merge(Some(&approved), &copy(ReturnStatus::Requested), at(1), false);
        assert_eq!(then.status.as_deref(), Some("open"));
        let same_second = merge(Some(&approved), &copy(ReturnStatus::Requested), at(2), false);
        assert_eq!(same_second.status.as_deref(), Some("open"));
        assert_eq!(same_second.requested_at, Some(at(2)), "the request's time is still learned");
    }

    #[test]
    fn a_reopen_after_a_close_opens_it_again_and_a_duplicate_changes_nothing() {
        let closed = merge(None, &copy(ReturnStatus::Closed), at(1), false);
        assert_eq!(closed.closed_at, Some(at(1)));
        let reopened = merge(Some(&closed), &copy(ReturnStatus::Open), at(3), false);
        assert_eq!((reopened.status.as_deref(), reopened.closed_at), (Some("open"), None));
        assert_eq!(merge(Some(&reopened), &copy(ReturnStatus::Open), at(3), false), reopened);
    }
}
