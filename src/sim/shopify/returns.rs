//! The emulated shop's returns: each stage a merchant or buyer moves a return through, kept on
//! its order (served as `Order.returns` in GraphQL), and the webhook each stage sends, in the
//! body shape Shopify documents. Never decides what orderline does with them.
//!
//! Sources (read 2026-12-04):
//! - Topics and their fields: https://shopify.dev/docs/api/webhooks/latest (returns/request,
//!   returns/approve: `id`, `admin_graphql_api_id`, `status`, `name`, `order {id,
//!   admin_graphql_api_id}`, `return_line_items`, `return_shipping_fees`, `exchange_line_items`,
//!   `total_return_line_items`, `total_exchange_line_items`; returns/decline: `id`,
//!   `admin_graphql_api_id`, `status`, `order`, `decline {reason, note}`; returns/cancel,
//!   returns/close, returns/reopen: `id`, `admin_graphql_api_id`, `order_id`, `status`;
//!   returns/update: `admin_graphql_api_id`, `return_line_items`, `restocking_fees`,
//!   `return_shipping_fees`; returns/process: no fields documented (the emulator sends the
//!   return's `admin_graphql_api_id`); reverse_deliveries/attach_deliverable: `id`,
//!   `admin_graphql_api_id`, `return {id, admin_graphql_api_id}`, `shipping_deliverable
//!   {tracking {carrier_name, tracking_number, tracking_url}, label {public_file_url,
//!   created_at}}`). Statuses in bodies are lower-case (`"status": "requested"`), decline
//!   reasons too (`"reason": "final_sale"`).
//! - Stages: `returnApproveRequest` sets `Return.status` to OPEN, `returnDeclineRequest` to
//!   DECLINED (https://shopify.dev/docs/api/admin-graphql/latest/mutations/returnApproveRequest,
//!   …/returnDeclineRequest); a return is CLOSED once processed; `returnReopen` opens a closed
//!   one; a request can be cancelled (`returnCancel`).
//!
//! The emulator keeps no return line items (bodies carry `[]`, and counts only); a return's
//! changes do not move its order's `updated_at` (Shopify does not document that they do).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::domain::{DeclineReason, ReturnStatus, ShopifyId};
use crate::shopify::graphql::gid;
use crate::shopify::returns::{ReturnLabel, ShopifyReturn};

/// A new return, as the buyer asks for it.
pub(crate) fn requested(
    id: ShopifyId,
    order: ShopifyId,
    name: String,
    items: i64,
    exchange: i64,
    at: DateTime<Utc>,
) -> ShopifyReturn {
    ShopifyReturn {
        id,
        order_id: Some(order),
        name: Some(name),
        status: Some(ReturnStatus::Requested),
        requested_at: Some(at),
        approved_at: None,
        closed_at: None,
        decline_reason: None,
        decline_note: None,
        return_items: Some(items),
        exchange_items: Some(exchange),
        label: None,
        received: Some(false),
        as_of: None,
    }
}

fn order_ref(r: &ShopifyReturn) -> Value {
    let order = r.order_id.unwrap_or(ShopifyId(0));
    json!({ "id": order, "admin_graphql_api_id": gid("Order", order) })
}

/// The body of `returns/request` and `returns/approve`.
pub(crate) fn full_body(r: &ShopifyReturn) -> Value {
    json!({
        "id": r.id,
        "admin_graphql_api_id": gid("Return", r.id),
        "status": r.status.map(ReturnStatus::as_str),
        "order": order_ref(r),
        "total_return_line_items": r.return_items.unwrap_or(0),
        "name": r.name,
        "return_line_items": [],
        "return_shipping_fees": [],
        "exchange_line_items": [],
        "total_exchange_line_items": r.exchange_items.unwrap_or(0),
    })
}

/// The body of `returns/decline`.
pub(crate) fn decline_body(r: &ShopifyReturn) -> Value {
    json!({
        "id": r.id,
        "admin_graphql_api_id": gid("Return", r.id),
        "status": "declined",
        "order": order_ref(r),
        "decline": {
            "reason": r.decline_reason.unwrap_or(DeclineReason::Other).as_str(),
            "note": r.decline_note,
        },
    })
}

/// The body of `returns/cancel`, `returns/close` and `returns/reopen`.
pub(crate) fn status_body(r: &ShopifyReturn) -> Value {
    json!({
        "id": r.id,
        "admin_graphql_api_id": gid("Return", r.id),
        "order_id": r.order_id,
        "status": r.status.map(ReturnStatus::as_str),
    })
}

/// The body of `returns/update` (the items' quantities changed: here, they were received).
pub(crate) fn update_body(r: &ShopifyReturn) -> Value {
    json!({
        "admin_graphql_api_id": gid("Return", r.id),
        "return_line_items": {},
        "restocking_fees": {},
        "return_shipping_fees": {},
    })
}

/// The body of `returns/process`.
pub(crate) fn process_body(r: &ShopifyReturn) -> Value {
    json!({ "admin_graphql_api_id": gid("Return", r.id) })
}

/// The body of `reverse_deliveries/attach_deliverable`.
pub(crate) fn deliverable_body(
    delivery: ShopifyId,
    r: &ShopifyReturn,
    label: &ReturnLabel,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "id": delivery,
        "admin_graphql_api_id": gid("ReverseDelivery", delivery),
        "return": { "id": r.id, "admin_graphql_api_id": gid("Return", r.id) },
        "shipping_deliverable": {
            "tracking": {
                "carrier_name": label.carrier,
                "tracking_number": label.tracking_number,
                "tracking_url": label.tracking_url,
            },
            "label": {
                "public_file_url": label.label_url,
                "created_at": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
        },
    })
}
