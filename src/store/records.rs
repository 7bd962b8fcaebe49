//! The one apply path: the only code that writes customers, orders, their fulfilments,
//! refunds and phone numbers. Webhooks, live fetches and reconciliation all end here, handing
//! it the store's own write structs (`write::Change`), never a Shopify payload.
//! A record is written only when its Shopify `updated_at` moves forward, or, on a whole-second
//! tie, when it is a snapshot read from the Admin API (see `Provenance`).

use super::changes::PhoneChanges;
use super::returns::{RETURN_COLUMNS, ReturnRow};
use super::write::{
    AddressWrite, Change, CustomerWrite, FulfillmentEventWrite, FulfillmentWrite, LineItemWrite, OrderWrite,
    RefundWrite, ReturnWrite,
};
use super::{Store, StoreError, Ts, backend, on_backend};
use crate::domain::{PhoneNumber, ReturnStatus, ShopifyId};

#[allow(unused_imports)]
use super::Pool;

/// Where a change was read. Shopify's `updated_at` has whole-second resolution, so two versions
/// of a record can share one; which copy wins such a tie depends on where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Read from the Admin API (live fetch, reconciliation, backfill): the state at that moment,
    /// so it wins ties (`>=`).
    Snapshot,
    /// A webhook delivery: wins only when strictly newer. On a tie whose content differs, the
    /// record is marked unconfirmed so that the next lookup refetches it (single-flight live path).
    Webhook,
}

/// `synced_at` of a row a same-second webhook contradicted: never fresh, whatever the
/// reconciliation watermark says, until a snapshot confirms or replaces it.
pub const UNCONFIRMED: Ts = Ts(chrono::DateTime::UNIX_EPOCH);

/// A fingerprint of what a record says (never of when it was read): two copies with the same
/// `updated_at` and the same fingerprint are the same version.
pub(crate) fn fingerprint(parts: &impl serde::Serialize) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(parts).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Something newer than what was stored was written.
    Applied,
    /// A webhook carried a different version with the same `updated_at` as the stored one: the
    /// record was marked unconfirmed (to be refetched), nothing else changed.
    Unconfirmed,
    /// What was stored is as new or newer: nothing changed (an equal version re-confirms it).
    Unchanged,
    /// The record was deleted or redacted earlier; a late delivery does not bring it back.
    Gone,
    /// A delete or redaction removed rows.
    Removed,
    /// Recorded for the merchant (customers/data_request).
    Recorded,
}

/// One phone a customer or order can be reached at, parsed at the edge.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PhoneEntry {
    source: String,
    raw: String,
    e164: Option<String>,
}

fn phone_entry(source: impl Into<String>, raw: Option<&str>, region: Option<&str>) -> Option<PhoneEntry> {
    let raw = raw?.trim();
    if raw.is_empty() {
        return None;
    }
    let e164 = PhoneNumber::parse(raw, region).ok().map(|p| p.as_str().to_string());
    Some(PhoneEntry { source: source.into(), raw: raw.to_string(), e164 })
}

fn region_of<'a>(address: Option<&'a AddressWrite>, default_region: &'a str) -> &'a str {
    address.and_then(|a| a.country_code.as_deref()).filter(|c| c.len() == 2).unwrap_or(default_region)
}

pub(crate) fn customer_phones(c: &CustomerWrite, default_region: &str) -> Vec<PhoneEntry> {
    let home = region_of(c.default_address.as_ref(), default_region);
    let mut entries = Vec::new();
    entries.extend(phone_entry("phone", c.phone.as_deref(), Some(home)));
    if let Some(a) = &c.default_address {
        entries.extend(phone_entry("default_address", a.phone.as_deref(), Some(region_of(Some(a), default_region))));
    }
    for (i, a) in c.addresses.iter().enumerate() {
        let source = match a.id {
            Some(id) => format!("address:{id}"),
            None => format!("address#{i}"),
        };
        entries.extend(phone_entry(source, a.phone.as_deref(), Some(region_of(Some(a), default_region))));
    }
    entries
}

pub(crate) fn order_phones(o: &OrderWrite, default_region: &str) -> Vec<PhoneEntry> {
    let ship = o.shipping_address.as_ref();
    let bill = o.billing_address.as_ref();
    let order_region = region_of(ship.or(bill), default_region);
    let mut entries = Vec::new();
    entries.extend(phone_entry("phone", o.phone.as_deref(), Some(order_region)));
    if let Some(a) = ship {
        entries.extend(phone_entry("shipping_address", a.phone.as_deref(), Some(region_of(Some(a), default_region))));
    }
    if let Some(a) = bill {
        entries.extend(phone_entry("billing_address", a.phone.as_deref(), Some(region_of(Some(a), default_region))));
    }
    entries
}

/// The content of a customer row written from a copy that left `addresses` out (the customer
/// inside a REST order webhook): not the whole record, so any whole copy of the same second
/// replaces it, and such a copy never overwrites a stored row (see `CustomerWrite::partial`).
const PARTIAL: &str = "partial";

/// What a customer record says (its fingerprint), for the write rule.
fn customer_content(c: &CustomerWrite, phones: &[PhoneEntry]) -> String {
    if c.partial {
        return PARTIAL.to_string();
    }
    let address = c.default_address.as_ref();
    fingerprint(&(
        &c.first_name,
        &c.last_name,
        &c.email,
        &c.phone,
        &c.state,
        address.and_then(|a| a.zip.as_deref()),
        address.and_then(|a| a.country_code.as_deref()),
        phones.iter().map(|p| (&p.source, &p.raw)).collect::<Vec<_>>(),
    ))
}

/// What an order record says (its fingerprint), for the write rule.
fn order_content(o: &OrderWrite, phones: &[PhoneEntry]) -> String {
    let shipping = o.shipping_address.as_ref();
    fingerprint(&(
        o.customer_id().map(|c| c.0),
        &o.name,
        &o.email,
        &o.phone,
        &o.financial_status,
        &o.fulfillment_status,
        o.cancelled_at.map(|t| t.0.timestamp()),
        &o.cancel_reason,
        o.closed_at.map(|t| t.0.timestamp()),
        &o.total_price,
        &o.currency,
        shipping.and_then(|a| a.zip.as_deref()),
        shipping.and_then(|a| a.country_code.as_deref()),
        phones.iter().map(|p| (&p.source, &p.raw)).collect::<Vec<_>>(),
    ))
}

/// The return write rule (see `store::returns`): what the stored row becomes after one copy.
/// The row after applying `r` (read at `as_of`; `snapshot`: a whole copy from the Admin API)
/// to `stored`.
pub(crate) fn merge_return(stored: Option<&ReturnRow>, r: &ReturnWrite, as_of: Ts, snapshot: bool) -> ReturnRow {
    let mut row = stored.cloned().unwrap_or_else(|| ReturnRow::empty(r.id.0));
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
    let requested = r.requested_at.or((r.status == Some(ReturnStatus::Requested)).then_some(as_of));
    row.requested_at = if snapshot { requested.or(row.requested_at) } else { row.requested_at.or(requested) };
    let approved = r.approved_at.or((r.status == Some(ReturnStatus::Open)).then_some(as_of));
    row.approved_at = if snapshot { r.approved_at.or(row.approved_at) } else { row.approved_at.or(approved) };
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
                ReturnStatus::Closed => r.closed_at.or(row.closed_at).or(at),
                _ => r.closed_at,
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

/// What every write of one apply shares.
pub(crate) struct Write<'a> {
    shop: &'a str,
    default_region: &'a str,
    now: Ts,
    from: Provenance,
}

fn ids_csv(ids: &[ShopifyId]) -> String {
    ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(",")
}

/// What a stored customer or order row holds, as far as the write rule needs.
#[derive(Debug, Clone)]
struct RowState {
    updated_at: Ts,
    content: Option<String>,
    synced_at: Ts,
}

/// A line item row to write: order ID, position, the item, its fulfilment status.
type LineItemRow<'a> = (i64, usize, &'a LineItemWrite, Option<&'a String>);

/// Adds `o`'s line items to `out`, one row per item as upserting them one by one would leave
/// it: the first position, the last copy's fields, the last fulfilment status that was not null.
fn line_item_rows<'a>(o: &'a OrderWrite, out: &mut Vec<LineItemRow<'a>>) {
    let start = out.len();
    for (position, item) in o.line_items.iter().enumerate() {
        match out[start..].iter_mut().find(|(_, _, seen, _)| seen.id == item.id) {
            Some(seen) => {
                let status = item.fulfillment_status.as_ref().or(seen.3);
                *seen = (seen.0, seen.1, item, status);
            }
            None => out.push((o.id.0, position, item, item.fulfillment_status.as_ref())),
        }
    }
}

/// An order row as `apply_batch` reads it: ID, updated_at, content, synced_at, customer.
type StoredOrder = (i64, Ts, Option<String>, Ts, Option<i64>);

/// One record's course through a batch: the versions are walked in arrival order against the
/// stored row with the write rule of `upsert_customer`/`upsert_order`/`settle_tie`, in memory;
/// only the end state is written.
struct Course<'a, T> {
    state: Option<RowState>,
    /// The last version written, with its phones.
    written: Option<(&'a T, Vec<PhoneEntry>)>,
    /// `synced_at` moved without a write (re-confirmed, or marked unconfirmed).
    synced_moved: bool,
}

impl<T> Default for Course<'_, T> {
    fn default() -> Self {
        Course { state: None, written: None, synced_moved: false }
    }
}

impl<'a, T> Course<'a, T> {
    fn stored(state: RowState) -> Self {
        Course { state: Some(state), ..Course::default() }
    }

    /// The write rule for one version (see `upsert_customer` and `settle_tie`).
    fn step(
        &mut self,
        version: &'a T,
        phones: Vec<PhoneEntry>,
        updated_at: Ts,
        content: String,
        from: Provenance,
        now: Ts,
    ) -> ApplyOutcome {
        let write = match &self.state {
            None => true,
            // A partial copy only creates a row (see `PARTIAL`).
            Some(_) if content == PARTIAL => return ApplyOutcome::Unchanged,
            Some(s) => {
                updated_at > s.updated_at
                    || (from == Provenance::Snapshot
                        && updated_at == s.updated_at
                        && s.content.as_deref() != Some(content.as_str()))
                    || (s.content.as_deref() == Some(PARTIAL) && updated_at == s.updated_at)
            }
        };
        if write {
            self.state = Some(RowState { updated_at, content: Some(content), synced_at: now });
            self.written = Some((version, phones));
            return ApplyOutcome::Applied;
        }
        let Some(s) = self.state.as_mut() else { return ApplyOutcome::Unchanged };
        if from == Provenance::Webhook && s.updated_at == updated_at && s.content.as_deref() != Some(content.as_str()) {
            s.synced_at = UNCONFIRMED;
            self.synced_moved = true;
            return ApplyOutcome::Unconfirmed;
        }
        if s.updated_at == updated_at
            && s.synced_at < now
            && (from == Provenance::Snapshot || s.synced_at > UNCONFIRMED)
        {
            s.synced_at = now;
            self.synced_moved = true;
        }
        ApplyOutcome::Unchanged
    }
}

/// A fulfilment row as the write rule sees it (`upsert_fulfillment`, `settle_tie`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct FulfillmentRow {
    id: i64,
    order_id: i64,
    status: Option<String>,
    shipment_status: Option<String>,
    tracking_company: Option<String>,
    tracking_number: Option<String>,
    tracking_url: Option<String>,
    shopify_created_at: Option<Ts>,
    updated_at: Ts,
    synced_at: Ts,
    content: Option<String>,
    in_transit_at: Option<Ts>,
    delivered_at: Option<Ts>,
    estimated_delivery_at: Option<Ts>,
}

const FULFILLMENT_COLUMNS: &str = "id, order_id, status, shipment_status, tracking_company, tracking_number, \
    tracking_url, \
    shopify_created_at, updated_at, synced_at, content, in_transit_at, delivered_at, estimated_delivery_at";

/// What both sources of a fulfilment carry, compared on a same-second tie.
fn fulfillment_content(f: &FulfillmentWrite) -> String {
    fingerprint(&(&f.status, &f.shipment_status, &f.tracking_company, &f.tracking_number, &f.tracking_url))
}

/// One fulfilment's course through a batch: `upsert_fulfillment`'s statement and `settle_tie`
/// for each version in arrival order, in memory; only the end state is written.
#[derive(Debug, Default)]
struct FulfillmentCourse {
    row: Option<FulfillmentRow>,
    /// The row changed by a write (all columns are written at the end).
    written: bool,
    /// Only `synced_at` moved (re-confirmed, or marked unconfirmed).
    synced_moved: bool,
}

impl FulfillmentCourse {
    /// The write rule for one version: `Unconfirmed` means the caller must mark the order
    /// unconfirmed too (as `upsert_fulfillment` does).
    fn step(&mut self, f: &FulfillmentWrite, from: Provenance, now: Ts) -> ApplyOutcome {
        let snapshot = from == Provenance::Snapshot;
        let updated_at = f.updated_at;
        let content = fulfillment_content(f);
        let (in_transit, delivered, estimated) = (f.in_transit_at, f.delivered_at, f.estimated_delivery_at);
        let write = match &self.row {
            None => true,
            Some(s) => {
                updated_at > s.updated_at
                    || (snapshot
                        && updated_at == s.updated_at
                        && (s.content.as_deref() != Some(content.as_str())
                            || in_transit != s.in_transit_at
                            || delivered != s.delivered_at
                            || estimated != s.estimated_delivery_at))
            }
        };
        if write {
            let stored = self.row.take();
            let keep = |new: Option<Ts>, old: Option<Ts>| if snapshot { new } else { old.or(new) };
            self.row = Some(FulfillmentRow {
                id: f.id.0,
                order_id: f.order_id.0,
                status: f.status.clone(),
                shipment_status: f.shipment_status.clone(),
                tracking_company: f.tracking_company.clone(),
                tracking_number: f.tracking_number.clone(),
                tracking_url: f.tracking_url.clone(),
                shopify_created_at: f.created_at.or(stored.as_ref().and_then(|s| s.shopify_created_at)),
                updated_at,
                synced_at: now,
                content: Some(content),
                in_transit_at: keep(in_transit, stored.as_ref().and_then(|s| s.in_transit_at)),
                delivered_at: keep(delivered, stored.as_ref().and_then(|s| s.delivered_at)),
                estimated_delivery_at: if snapshot {
                    estimated
                } else {
                    estimated.or(stored.as_ref().and_then(|s| s.estimated_delivery_at))
                },
            });
            self.written = true;
            return ApplyOutcome::Applied;
        }
        let Some(s) = self.row.as_mut() else { return ApplyOutcome::Unchanged };
        if from == Provenance::Webhook && s.updated_at == updated_at && s.content.as_deref() != Some(content.as_str()) {
            s.synced_at = UNCONFIRMED;
            self.synced_moved = true;
            return ApplyOutcome::Unconfirmed;
        }
        if s.updated_at == updated_at && s.synced_at < now && (snapshot || s.synced_at > UNCONFIRMED) {
            s.synced_at = now;
            self.synced_moved = true;
        }
        ApplyOutcome::Unchanged
    }
}

/// Whether `apply_batch` can take a change: customers, and whole orders with their fulfilments
/// and refunds (everything else, and orders carrying returns, goes through `apply_change` one at
/// a time).
pub(crate) fn batchable(change: &Change) -> bool {
    match change {
        Change::Customer(c) => c.updated_at.is_some(),
        Change::Order(o) => {
            o.returns.is_empty()
                && o.all_line_items
                && o.fulfillments.iter().all(|f| f.order_id == o.id)
                && o.refunds.iter().all(|r| r.order_id == o.id)
        }
        _ => false,
    }
}

/// Rows per multi-row statement: under both backends' limits on bound parameters
/// (Postgres 65,535; SQLite 32,766).
fn rows_per_statement(columns: usize) -> usize {
    (30_000 / columns).max(1)
}

impl Store {
    /// Applies one Shopify change in its own transaction (live fetch, reconciliation, tests).
    /// `default_region` reads national phone numbers that carry no country of their own.
    pub async fn apply(
        &self,
        shop: &str,
        change: &Change,
        default_region: &str,
        now: Ts,
    ) -> Result<ApplyOutcome, StoreError> {
        let outcomes = self.apply_all(shop, std::slice::from_ref(change), default_region, now).await?;
        Ok(outcomes[0])
    }

    /// Applies several changes in one transaction (a reconciliation page, a live fetch's
    /// answer): all of them or, on error, none.
    pub async fn apply_all(
        &self,
        shop: &str,
        changes: &[Change],
        default_region: &str,
        now: Ts,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let (outcomes, notice) = on_backend!(self, apply_in_transaction(shop, changes, default_region, now))?;
        self.committed(notice).await;
        let orders = changes.iter().filter(|c| matches!(c, Change::Order(_))).count();
        self.wrote_records(changes.len() - orders, orders).await;
        Ok(outcomes)
    }
}

// The SQL, in records/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "records"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/records/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "records"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/records/sql.rs
    pub(crate) use sql::*;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(id: i64, phone: &str, country: &str) -> AddressWrite {
        AddressWrite {
            id: Some(ShopifyId(id)),
            phone: Some(phone.into()),
            zip: None,
            country_code: Some(country.into()),
        }
    }

    #[test]
    fn customer_phones_use_each_address_country() {
        let c = CustomerWrite {
            id: ShopifyId(1),
            first_name: None,
            last_name: None,
            email: None,
            phone: Some("+15551234567".into()),
            state: None,
            locale: None,
            created_at: None,
            updated_at: Some(Ts(chrono::DateTime::UNIX_EPOCH)),
            default_address: Some(address(7, "0161 496 0000", "GB")),
            addresses: vec![address(7, "0161 496 0000", "GB"), address(8, "call me", "US")],
            partial: false,
        };
        let phones = customer_phones(&c, "US");
        let e164: Vec<(&str, Option<&str>)> = phones.iter().map(|p| (p.source.as_str(), p.e164.as_deref())).collect();
        assert_eq!(
            e164,
            vec![
                ("phone", Some("+15551234567")),
                ("default_address", Some("+441614960000")),
                ("address:7", Some("+441614960000")),
                ("address:8", None),
            ]
        );
        assert_eq!(phones[3].raw, "call me");
    }
}

#[cfg(test)]
mod return_tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(second: i64) -> Ts {
        Ts(DateTime::<Utc>::from_timestamp(1_790_000_000 + second, 0).unwrap())
    }

    fn copy(status: ReturnStatus) -> ReturnWrite {
        ReturnWrite {
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
        }
    }
    #[test]
    fn an_approval_applied_before_its_request_stays_open() {
        let approved = merge_return(None, &copy(ReturnStatus::Open), at(2), false);
        let then = merge_return(Some(&approved), &copy(ReturnStatus::Requested), at(1), false);
        assert_eq!(then.status.as_deref(), Some("open"));
        let same_second = merge_return(Some(&approved), &copy(ReturnStatus::Requested), at(2), false);
        assert_eq!(same_second.status.as_deref(), Some("open"));
        assert_eq!(same_second.requested_at, Some(at(2)), "the request's time is still learned");
    }

    #[test]
    fn a_reopen_after_a_close_opens_it_again_and_a_duplicate_changes_nothing() {
        let closed = merge_return(None, &copy(ReturnStatus::Closed), at(1), false);
        assert_eq!(closed.closed_at, Some(at(1)));
        let reopened = merge_return(Some(&closed), &copy(ReturnStatus::Open), at(3), false);
        assert_eq!((reopened.status.as_deref(), reopened.closed_at), (Some("open"), None));
        assert_eq!(merge_return(Some(&reopened), &copy(ReturnStatus::Open), at(3), false), reopened);
    }
}
