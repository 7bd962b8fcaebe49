//! Returns as Shopify tracks them, parsed at the edge: the `returns/*` and
//! `reverse_deliveries/attach_deliverable` webhook bodies and the `Order.returns` GraphQL nodes,
//! both into one `ShopifyReturn` (each source carries only some of its facts). Knows nothing of
//! SQL or of how a return is spoken.
//!
//! Sources (read 2026-12-04):
//! - Admin GraphQL 2026-10 (`tests/fixtures/shopify/admin_2026-10.graphql`, extracted from
//!   Shopify's introspection): `Return { id name status createdAt requestApprovedAt closedAt
//!   totalQuantity decline { reason note } exchangeLineItems reverseFulfillmentOrders }`,
//!   `ReturnStatus` (CANCELED, CLOSED, DECLINED, OPEN, REQUESTED), `ReturnDeclineReason`
//!   (FINAL_SALE, OTHER, RETURN_PERIOD_ENDED), `ReverseDeliveryShippingDeliverable { tracking
//!   { carrierName number url } label { publicFileUrl } }`, and `Order.returnStatus`
//!   (`OrderReturnStatus`: INSPECTION_COMPLETE once the returned items were inspected).
//!   `Return` has no `updatedAt`.
//! - Webhook bodies (https://shopify.dev/docs/api/webhooks/latest, topics `returns/*` and
//!   `reverse_deliveries/attach_deliverable`): `returns/request` and `returns/approve` carry `id`,
//!   `admin_graphql_api_id`, `status`, `name`, `order {id, admin_graphql_api_id}`,
//!   `return_line_items`, `exchange_line_items`, `total_return_line_items`,
//!   `total_exchange_line_items`; `returns/decline` carries `id`, `status`, `order`, `decline
//!   {reason, note}`; `returns/cancel`, `returns/close`, `returns/reopen` carry `id`,
//!   `admin_graphql_api_id`, `order_id`, `status`; `returns/update` carries the changed line
//!   items and fees but no status; `returns/process` documents no fields;
//!   `reverse_deliveries/attach_deliverable` carries `id`, `return {id, admin_graphql_api_id}`,
//!   `shipping_deliverable {tracking {carrier_name, tracking_number, tracking_url}, label
//!   {public_file_url, created_at}}`. No return body carries an `updated_at`: the time a change
//!   happened is the delivery's `X-Shopify-Triggered-At`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::payload::{PayloadError, Topic};
use crate::domain::{DeclineReason, ReturnStatus, ShopifyId};

/// The return label a reverse delivery carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnLabel {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub label_url: Option<String>,
}

/// One return as the apply path takes it. A webhook carries only some of these facts (`None`:
/// this copy does not say); a GraphQL node carries all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopifyReturn {
    pub id: ShopifyId,
    /// Absent from `reverse_deliveries/attach_deliverable`.
    pub order_id: Option<ShopifyId>,
    pub name: Option<String>,
    pub status: Option<ReturnStatus>,
    pub requested_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub decline_reason: Option<DeclineReason>,
    pub decline_note: Option<String>,
    /// Items being sent back (`totalQuantity`, `total_return_line_items`).
    pub return_items: Option<i64>,
    /// Items asked for in exchange.
    pub exchange_items: Option<i64>,
    pub label: Option<ReturnLabel>,
    /// The returned items arrived and were inspected (`Order.returnStatus` INSPECTION_COMPLETE).
    pub received: Option<bool>,
    /// When Shopify's state was this: the delivery's `X-Shopify-Triggered-At`, or the time a
    /// snapshot was read. Set by the apply path's caller, not by the body.
    pub as_of: Option<DateTime<Utc>>,
}

impl ShopifyReturn {
    fn new(id: ShopifyId) -> ShopifyReturn {
        ShopifyReturn {
            id,
            order_id: None,
            name: None,
            status: None,
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
}

#[derive(Deserialize)]
struct IdRef {
    id: ShopifyId,
}

#[derive(Deserialize)]
struct Decline {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// The body of every `returns/*` topic that names a status.
#[derive(Deserialize)]
struct ReturnBody {
    id: ShopifyId,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    order: Option<IdRef>,
    #[serde(default)]
    order_id: Option<ShopifyId>,
    #[serde(default)]
    total_return_line_items: Option<i64>,
    #[serde(default)]
    total_exchange_line_items: Option<i64>,
    #[serde(default)]
    decline: Option<Decline>,
}

#[derive(Deserialize)]
struct Tracking {
    #[serde(default)]
    carrier_name: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    tracking_url: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    #[serde(default)]
    public_file_url: Option<String>,
}

#[derive(Deserialize)]
struct ShippingDeliverable {
    #[serde(default)]
    tracking: Option<Tracking>,
    #[serde(default)]
    label: Option<Label>,
}

#[derive(Deserialize)]
struct AttachDeliverableBody {
    #[serde(rename = "return")]
    of_return: IdRef,
    #[serde(default)]
    shipping_deliverable: Option<ShippingDeliverable>,
}

/// A body that may name only the return (`returns/update`, `returns/process`).
#[derive(Deserialize)]
struct MaybeId {
    #[serde(default)]
    id: Option<ShopifyId>,
    #[serde(default)]
    admin_graphql_api_id: Option<ShopifyId>,
}

/// What a return topic says.
pub enum ReturnChange {
    /// Facts about one return.
    Return(Box<ShopifyReturn>),
    /// Something changed that the body does not say (`returns/update`, `returns/process`): the
    /// return's order is to be refetched. `None` when the body does not even name the return.
    Touched(Option<ShopifyId>),
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Parses a return topic's body.
pub fn parse(topic: Topic, body: &[u8]) -> Result<ReturnChange, PayloadError> {
    let error = |e: serde_json::Error| PayloadError { topic: topic.as_str(), reason: e.to_string() };
    match topic {
        Topic::ReturnsUpdate | Topic::ReturnsProcess => {
            let body: MaybeId = serde_json::from_slice(body).map_err(error)?;
            Ok(ReturnChange::Touched(body.id.or(body.admin_graphql_api_id)))
        }
        Topic::ReverseDeliveriesAttachDeliverable => {
            let body: AttachDeliverableBody = serde_json::from_slice(body).map_err(error)?;
            let mut r = ShopifyReturn::new(body.of_return.id);
            let deliverable = body.shipping_deliverable;
            let tracking = deliverable.as_ref().and_then(|d| d.tracking.as_ref());
            let label = ReturnLabel {
                carrier: non_empty(tracking.and_then(|t| t.carrier_name.clone())),
                tracking_number: non_empty(tracking.and_then(|t| t.tracking_number.clone())),
                tracking_url: non_empty(tracking.and_then(|t| t.tracking_url.clone())),
                label_url: non_empty(deliverable.as_ref().and_then(|d| d.label.as_ref()?.public_file_url.clone())),
            };
            r.label = (label != ReturnLabel::default()).then_some(label);
            Ok(ReturnChange::Return(Box::new(r)))
        }
        _ => {
            let body: ReturnBody = serde_json::from_slice(body).map_err(error)?;
            let status = match body.status.as_deref() {
                Some(word) => Some(ReturnStatus::parse(word).ok_or_else(|| PayloadError {
                    topic: topic.as_str(),
                    reason: format!("unknown return status {word:?}"),
                })?),
                None => None,
            };
            let mut r = ShopifyReturn::new(body.id);
            r.order_id = body.order.map(|o| o.id).or(body.order_id);
            r.name = non_empty(body.name);
            r.status = status;
            r.return_items = body.total_return_line_items;
            r.exchange_items = body.total_exchange_line_items;
            if let Some(decline) = body.decline {
                r.decline_reason = decline.reason.as_deref().map(DeclineReason::parse);
                r.decline_note = non_empty(decline.note);
            }
            Ok(ReturnChange::Return(Box::new(r)))
        }
    }
}

// ---- GraphQL (Order.returns) ----

/// The points the order documents' `returns(first: 1, reverse: true) { … }` (see
/// `graphql::ORDER`) cost by Shopify's rules: the connection 2 + 1 × (return 1 + decline 1 +
/// reverseFulfillmentOrders (2 + 1 × (1 + reverseDeliveries (2 + 1 × (1 + deliverable 1 +
/// tracking 1 + label 1))))) = 13; `returnStatus` is an enum (0). Kept small on purpose: a phone
/// lookup (three orders of three customers) stays under 500 points, so two fit Shopify's standard
/// 1000-point bucket at once. Exchanges come from the `returns/request` and `returns/approve`
/// bodies (`total_exchange_line_items`), not from this selection.
pub const RETURNS_COST: u32 = 13;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlDecline {
    pub reason: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlReverseTracking {
    #[serde(default)]
    pub carrier_name: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlReverseLabel {
    #[serde(default)]
    pub public_file_url: Option<String>,
}

/// `ReverseDeliveryShippingDeliverable` (the only member of the `ReverseDeliveryDeliverable`
/// union in 2026-10); an empty object for a member the fragment does not select.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GqlDeliverable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<GqlReverseTracking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<GqlReverseLabel>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GqlReverseDelivery {
    #[serde(default)]
    pub deliverable: Option<GqlDeliverable>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlReverseFulfillmentOrder {
    pub reverse_deliveries: NodeList<GqlReverseDelivery>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeList<T> {
    pub nodes: Vec<T>,
}

impl<T> Default for NodeList<T> {
    fn default() -> NodeList<T> {
        NodeList { nodes: Vec::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlReturn {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub request_approved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    pub total_quantity: i64,
    #[serde(default)]
    pub decline: Option<GqlDecline>,
    /// Absent from bulk lines (`graphql::BulkResource::query` cannot ask for it): no label then.
    #[serde(default)]
    pub reverse_fulfillment_orders: NodeList<GqlReverseFulfillmentOrder>,
}

impl GqlReturn {
    /// The return as the apply path takes it (`order_id`: the order it was found under;
    /// `received`: its `returnStatus` is INSPECTION_COMPLETE).
    pub fn to_record(&self, order_id: ShopifyId, received: bool) -> Option<ShopifyReturn> {
        let mut r = ShopifyReturn::new(ShopifyId::parse(&self.id)?);
        r.order_id = Some(order_id);
        r.name = Some(self.name.clone());
        r.status = ReturnStatus::parse(&self.status);
        r.requested_at = Some(self.created_at);
        r.approved_at = self.request_approved_at;
        r.closed_at = self.closed_at;
        r.decline_reason = self.decline.as_ref().map(|d| DeclineReason::parse(&d.reason));
        r.decline_note = non_empty(self.decline.as_ref().and_then(|d| d.note.clone()));
        r.return_items = Some(self.total_quantity);
        let rfos = &self.reverse_fulfillment_orders.nodes;
        r.received = Some(received && r.status == Some(ReturnStatus::Open));
        let deliverable =
            rfos.iter().flat_map(|o| &o.reverse_deliveries.nodes).find_map(|d| d.deliverable.as_ref()).cloned();
        r.label = deliverable.map(|d| {
            let tracking = d.tracking.unwrap_or_default();
            ReturnLabel {
                carrier: non_empty(tracking.carrier_name),
                tracking_number: non_empty(tracking.number),
                tracking_url: non_empty(tracking.url),
                label_url: non_empty(d.label.and_then(|l| l.public_file_url)),
            }
        });
        Some(r)
    }
}

/// `Order.returnStatus` for an order with `returns` (used by the emulator): what the newest
/// return says (OrderReturnStatus, Admin 2026-10).
pub fn order_return_status(returns: &[ShopifyReturn]) -> &'static str {
    match returns.last() {
        None => "NO_RETURN",
        Some(r) => match r.status {
            Some(ReturnStatus::Requested) | None => "RETURN_REQUESTED",
            Some(ReturnStatus::Open) if r.received == Some(true) => "INSPECTION_COMPLETE",
            Some(ReturnStatus::Open) => "IN_PROGRESS",
            Some(ReturnStatus::Closed) => "RETURNED",
            Some(ReturnStatus::Declined | ReturnStatus::Canceled) => "NO_RETURN",
        },
    }
}

impl GqlReturn {
    /// The node Shopify would return for `r` (used by the emulator, which keeps whole records).
    pub fn from_record(r: &ShopifyReturn) -> GqlReturn {
        let label = r.label.as_ref();
        GqlReturn {
            id: super::graphql::gid("Return", r.id),
            name: r.name.clone().unwrap_or_default(),
            status: r.status.unwrap_or(ReturnStatus::Requested).as_str().to_ascii_uppercase(),
            created_at: r.requested_at.unwrap_or_default(),
            request_approved_at: r.approved_at,
            closed_at: r.closed_at,
            total_quantity: r.return_items.unwrap_or(0),
            decline: r.decline_reason.map(|reason| GqlDecline {
                reason: reason.as_str().to_ascii_uppercase(),
                note: r.decline_note.clone(),
            }),
            reverse_fulfillment_orders: NodeList {
                nodes: (r.status != Some(ReturnStatus::Requested))
                    .then(|| GqlReverseFulfillmentOrder {
                        reverse_deliveries: NodeList {
                            nodes: label
                                .map(|l| GqlReverseDelivery {
                                    deliverable: Some(GqlDeliverable {
                                        tracking: Some(GqlReverseTracking {
                                            carrier_name: l.carrier.clone(),
                                            number: l.tracking_number.clone(),
                                            url: l.tracking_url.clone(),
                                        }),
                                        label: Some(GqlReverseLabel { public_file_url: l.label_url.clone() }),
                                    }),
                                })
                                .into_iter()
                                .collect(),
                        },
                    })
                    .into_iter()
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approve_body_names_its_order_and_counts() {
        let body = br##"{"id": 9007199254742001, "admin_graphql_api_id": "gid://shopify/Return/9007199254742001",
            "status": "open", "order": {"id": 9007199254741107, "admin_graphql_api_id": "gid://shopify/Order/9007199254741107"},
            "total_return_line_items": 1, "name": "#1042-R1", "return_line_items": [], "return_shipping_fees": [],
            "exchange_line_items": [], "total_exchange_line_items": 0}"##;
        let ReturnChange::Return(r) = parse(Topic::ReturnsApprove, body).unwrap() else { panic!() };
        assert_eq!(r.status, Some(ReturnStatus::Open));
        assert_eq!(r.order_id, Some(ShopifyId(9007199254741107)));
        assert_eq!((r.return_items, r.exchange_items), (Some(1), Some(0)));
    }

    #[test]
    fn a_decline_reason_is_read_in_either_case_and_an_unknown_one_is_other() {
        let body =
            br#"{"id": 5, "status": "declined", "order": {"id": 7}, "decline": {"reason": "final_sale", "note": " "}}"#;
        let ReturnChange::Return(r) = parse(Topic::ReturnsDecline, body).unwrap() else { panic!() };
        assert_eq!((r.decline_reason, r.decline_note), (Some(DeclineReason::FinalSale), None));
        assert_eq!(DeclineReason::parse("RETURN_PERIOD_ENDED"), DeclineReason::ReturnPeriodEnded);
        assert_eq!(DeclineReason::parse("SOMETHING_NEW"), DeclineReason::Other);
    }

    #[test]
    fn an_unknown_status_is_refused() {
        let body = br#"{"id": 5, "status": "teleported", "order_id": 7}"#;
        assert!(parse(Topic::ReturnsClose, body).is_err());
    }

    #[test]
    fn a_deliverable_becomes_the_label() {
        let body = br#"{"id": 11, "admin_graphql_api_id": "gid://shopify/ReverseDelivery/11",
            "return": {"id": 5, "admin_graphql_api_id": "gid://shopify/Return/5"},
            "shipping_deliverable": {"tracking": {"carrier_name": "UPS", "tracking_number": "1Z", "tracking_url": null},
            "label": {"public_file_url": "https://cdn.example/label.pdf", "created_at": "2026-11-20T10:00:00-05:00"}}}"#;
        let ReturnChange::Return(r) = parse(Topic::ReverseDeliveriesAttachDeliverable, body).unwrap() else { panic!() };
        let label = r.label.unwrap();
        assert_eq!(label.carrier.as_deref(), Some("UPS"));
        assert_eq!(label.label_url.as_deref(), Some("https://cdn.example/label.pdf"));
        assert_eq!(r.status, None);
    }

    #[test]
    fn a_snapshot_and_its_node_agree() {
        let mut r = ShopifyReturn::new(ShopifyId(5));
        r.order_id = Some(ShopifyId(7));
        r.name = Some("#1042-R1".into());
        r.status = Some(ReturnStatus::Declined);
        r.requested_at = Some(DateTime::from_timestamp(1_790_000_000, 0).unwrap());
        r.decline_reason = Some(DeclineReason::FinalSale);
        r.return_items = Some(2);
        r.received = Some(false);
        r.label = Some(ReturnLabel { carrier: Some("UPS".into()), ..ReturnLabel::default() });
        assert_eq!(GqlReturn::from_record(&r).to_record(ShopifyId(7), true), Some(r));
    }
}
