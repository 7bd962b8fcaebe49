//! Shopify's JSON, parsed at the edge into the records orderline keeps.
//! Owns the shape of webhook payloads and topics; knows nothing of SQL or HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, de};

use super::returns::{ReturnChange, ShopifyReturn};
use crate::domain::ShopifyId;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ShopifyAddress {
    #[serde(default)]
    pub id: Option<ShopifyId>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyCustomer {
    pub id: ShopifyId,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// The customer's language (GraphQL `Customer.locale`: `en`, `es`, `es-MX`); none in a
    /// REST copy, which does not carry it (tests/fixtures/shopify/customer_create.json), so none
    /// never erases a stored one. Never written into a REST-shaped payload.
    #[serde(default, skip_serializing)]
    pub locale: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Absent on some embedded copies; such a copy only links, it never writes the customer.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub default_address: Option<ShopifyAddress>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub addresses: Vec<ShopifyAddress>,
    /// This copy left `addresses` out: the customer inside a REST order webhook carries
    /// `default_address` but no `addresses` (API 2025-01 changelog, "changes to existing
    /// customer's webhooks payload"; tests/fixtures/shopify/order_create.json). Such a copy is
    /// not the whole record: it creates a customer not yet stored, and never overwrites one.
    #[serde(skip)]
    pub addresses_omitted: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyLineItem {
    pub id: ShopifyId,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub variant_title: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub quantity: i64,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub fulfillment_status: Option<String>,
}

/// A fulfilment: one shipment of some of an order's items.
///
/// Where each date comes from (REST Fulfillment and FulfillmentEvent resources,
/// shopify.dev/docs/api/admin-rest/latest/resources/fulfillment and …/fulfillmentevent, read
/// 2026-12-04; GraphQL `Fulfillment`, Admin schema 2026-10):
/// - shipped: REST `created_at` = GraphQL `createdAt` (never `updated_at`, which moves with
///   every tracking event);
/// - in transit since: GraphQL `inTransitAt`; by webhook, the `updated_at` of the first version
///   whose `shipment_status` is `in_transit` (REST Fulfillment has no such field);
/// - delivered: GraphQL `deliveredAt`; by webhook, `happened_at` of the `delivered`
///   fulfillment event (`fulfillment_events/create`), or else the `updated_at` of the first
///   version whose `shipment_status` is `delivered`;
/// - expected: GraphQL `estimatedDeliveryAt`; by webhook only the fulfillment event's
///   `estimated_delivery_at` carries it (REST Fulfillment has no such field).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyFulfillment {
    pub id: ShopifyId,
    pub order_id: ShopifyId,
    #[serde(default)]
    pub status: Option<String>,
    /// REST `shipment_status`, or GraphQL `displayStatus` in the same words (see
    /// `ShipmentState`): both sources store the same value for the same state.
    #[serde(default)]
    pub shipment_status: Option<String>,
    #[serde(default)]
    pub tracking_company: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_transit_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
}

impl ShopifyFulfillment {
    /// Fills the dates a REST copy does not carry from the version itself: the first version
    /// that says `in_transit` or `delivered` was written when that happened (the store keeps
    /// the earliest it learns).
    fn with_dates_from_status(mut self) -> Self {
        match self.shipment_status.as_deref() {
            Some("in_transit") if self.in_transit_at.is_none() => self.in_transit_at = Some(self.updated_at),
            Some("delivered") if self.delivered_at.is_none() => self.delivered_at = Some(self.updated_at),
            _ => {}
        }
        self
    }
}

/// A tracking event on a fulfilment (REST FulfillmentEvent, webhook `fulfillment_events/create`):
/// the only webhook that carries the carrier's estimated delivery date.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyFulfillmentEvent {
    pub id: ShopifyId,
    pub fulfillment_id: ShopifyId,
    pub order_id: ShopifyId,
    /// `in_transit`, `delivered`, … (REST FulfillmentEvent `status`).
    pub status: String,
    #[serde(default)]
    pub happened_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyTransaction {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyRefund {
    pub id: ShopifyId,
    pub order_id: ShopifyId,
    #[serde(default)]
    pub note: Option<String>,
    /// Nullable in Shopify's Admin schema (`Refund.createdAt: DateTime`, no `!`).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub processed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub transactions: Vec<ShopifyTransaction>,
}

impl ShopifyRefund {
    /// The money returned: the sum of successful refund transactions, as a decimal string.
    pub fn amount(&self) -> Option<String> {
        let amounts: Vec<&str> = self
            .transactions
            .iter()
            .filter(|t| t.kind.as_deref().unwrap_or("refund") == "refund")
            .filter(|t| t.status.as_deref().unwrap_or("success") == "success")
            .filter_map(|t| t.amount.as_deref())
            .collect();
        sum_decimals(&amounts)
    }

    pub fn currency(&self) -> Option<String> {
        self.transactions.iter().find_map(|t| t.currency.clone())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ShopifyOrder {
    pub id: ShopifyId,
    pub name: String,
    #[serde(default)]
    pub order_number: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub customer: Option<ShopifyCustomer>,
    /// The language the order was placed in (REST `customer_locale`, GraphQL `customerLocale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_locale: Option<String>,
    #[serde(default)]
    pub financial_status: Option<String>,
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub total_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub billing_address: Option<ShopifyAddress>,
    #[serde(default)]
    pub shipping_address: Option<ShopifyAddress>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub line_items: Vec<ShopifyLineItem>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub fulfillments: Vec<ShopifyFulfillment>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub refunds: Vec<ShopifyRefund>,
    /// The order's returns, as a GraphQL copy carries them (`Order.returns`); REST order bodies
    /// have none (returns come by their own topics).
    #[serde(skip)]
    pub returns: Vec<ShopifyReturn>,
    /// What this copy left out (a GraphQL page carries at most a few line items): the apply
    /// path never deletes what a copy did not carry. Webhook bodies are whole.
    #[serde(skip)]
    pub truncated: Truncated,
}

/// The lists a copy of an order may have cut short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncated {
    pub line_items: bool,
}

impl ShopifyOrder {
    pub fn customer_id(&self) -> Option<ShopifyId> {
        self.customer.as_ref().map(|c| c.id)
    }
}

/// Where a shipment is: one vocabulary for Shopify's REST `shipment_status` (webhooks) and
/// GraphQL `Fulfillment.displayStatus` (`FulfillmentDisplayStatus`), stored as the REST word.
/// Both sources store the same value for the same state. `tests/it/shipment_states.rs` checks
/// against Shopify's published Admin schema that `from_display_status` names every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShipmentStatus {
    LabelPrinted,
    LabelPurchased,
    LabelVoided,
    Confirmed,
    CarrierPickedUp,
    InTransit,
    OutForDelivery,
    AttemptedDelivery,
    Delayed,
    ReadyForPickup,
    PickedUp,
    Delivered,
    NotDelivered,
    Failure,
}

/// What GraphQL's `displayStatus` says about a fulfilment, in the stored vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayStatus {
    /// A shipment state (the REST `shipment_status` of the same fulfilment).
    Shipment(ShipmentStatus),
    /// No shipment state: REST sends `shipment_status: null` and says it with the
    /// fulfilment's `status` (FULFILLED, MARKED_AS_FULFILLED, SUBMITTED: success; CANCELED:
    /// cancelled).
    NoShipmentStatus,
    /// A value this build does not know (a newer API version); stored as nothing.
    Unknown,
}

impl ShipmentStatus {
    pub const ALL: [ShipmentStatus; 14] = [
        ShipmentStatus::LabelPrinted,
        ShipmentStatus::LabelPurchased,
        ShipmentStatus::LabelVoided,
        ShipmentStatus::Confirmed,
        ShipmentStatus::CarrierPickedUp,
        ShipmentStatus::InTransit,
        ShipmentStatus::OutForDelivery,
        ShipmentStatus::AttemptedDelivery,
        ShipmentStatus::Delayed,
        ShipmentStatus::ReadyForPickup,
        ShipmentStatus::PickedUp,
        ShipmentStatus::Delivered,
        ShipmentStatus::NotDelivered,
        ShipmentStatus::Failure,
    ];

    /// The stored word: REST's `shipment_status` (`in_transit`), and the same style for the
    /// states only GraphQL names (`picked_up`, `not_delivered`, `label_voided`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::LabelPrinted => "label_printed",
            ShipmentStatus::LabelPurchased => "label_purchased",
            ShipmentStatus::LabelVoided => "label_voided",
            ShipmentStatus::Confirmed => "confirmed",
            ShipmentStatus::CarrierPickedUp => "carrier_picked_up",
            ShipmentStatus::InTransit => "in_transit",
            ShipmentStatus::OutForDelivery => "out_for_delivery",
            ShipmentStatus::AttemptedDelivery => "attempted_delivery",
            ShipmentStatus::Delayed => "delayed",
            ShipmentStatus::ReadyForPickup => "ready_for_pickup",
            ShipmentStatus::PickedUp => "picked_up",
            ShipmentStatus::Delivered => "delivered",
            ShipmentStatus::NotDelivered => "not_delivered",
            ShipmentStatus::Failure => "failure",
        }
    }

    pub fn parse(word: &str) -> Option<ShipmentStatus> {
        ShipmentStatus::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// GraphQL `FulfillmentDisplayStatus` (Admin schema 2026-10) in the stored vocabulary.
    pub fn from_display_status(value: &str) -> DisplayStatus {
        match value {
            "FULFILLED" | "MARKED_AS_FULFILLED" | "SUBMITTED" | "CANCELED" => DisplayStatus::NoShipmentStatus,
            "LABEL_PRINTED" => DisplayStatus::Shipment(ShipmentStatus::LabelPrinted),
            "LABEL_PURCHASED" => DisplayStatus::Shipment(ShipmentStatus::LabelPurchased),
            "LABEL_VOIDED" => DisplayStatus::Shipment(ShipmentStatus::LabelVoided),
            "CONFIRMED" => DisplayStatus::Shipment(ShipmentStatus::Confirmed),
            "CARRIER_PICKED_UP" => DisplayStatus::Shipment(ShipmentStatus::CarrierPickedUp),
            "IN_TRANSIT" => DisplayStatus::Shipment(ShipmentStatus::InTransit),
            "OUT_FOR_DELIVERY" => DisplayStatus::Shipment(ShipmentStatus::OutForDelivery),
            "ATTEMPTED_DELIVERY" => DisplayStatus::Shipment(ShipmentStatus::AttemptedDelivery),
            "DELAYED" => DisplayStatus::Shipment(ShipmentStatus::Delayed),
            "READY_FOR_PICKUP" => DisplayStatus::Shipment(ShipmentStatus::ReadyForPickup),
            "PICKED_UP" => DisplayStatus::Shipment(ShipmentStatus::PickedUp),
            "DELIVERED" => DisplayStatus::Shipment(ShipmentStatus::Delivered),
            "NOT_DELIVERED" => DisplayStatus::Shipment(ShipmentStatus::NotDelivered),
            "FAILURE" => DisplayStatus::Shipment(ShipmentStatus::Failure),
            _ => DisplayStatus::Unknown,
        }
    }

    /// The `displayStatus` Shopify shows for this shipment state (used by the emulator).
    pub fn display_status(self) -> &'static str {
        match self {
            ShipmentStatus::LabelPrinted => "LABEL_PRINTED",
            ShipmentStatus::LabelPurchased => "LABEL_PURCHASED",
            ShipmentStatus::LabelVoided => "LABEL_VOIDED",
            ShipmentStatus::Confirmed => "CONFIRMED",
            ShipmentStatus::CarrierPickedUp => "CARRIER_PICKED_UP",
            ShipmentStatus::InTransit => "IN_TRANSIT",
            ShipmentStatus::OutForDelivery => "OUT_FOR_DELIVERY",
            ShipmentStatus::AttemptedDelivery => "ATTEMPTED_DELIVERY",
            ShipmentStatus::Delayed => "DELAYED",
            ShipmentStatus::ReadyForPickup => "READY_FOR_PICKUP",
            ShipmentStatus::PickedUp => "PICKED_UP",
            ShipmentStatus::Delivered => "DELIVERED",
            ShipmentStatus::NotDelivered => "NOT_DELIVERED",
            ShipmentStatus::Failure => "FAILURE",
        }
    }
}

/// An order's fulfilment status as REST says it (`fulfilled`, `partial`, `restocked`, or null
/// for anything not yet shipped), from GraphQL `OrderDisplayFulfillmentStatus` (Admin schema
/// 2026-10). `Err` for a value this build does not know. REST never sends GraphQL's finer
/// unshipped states (`on_hold`, `in_progress`, …): storing them would make the stored value
/// depend on which source came first.
pub fn fulfillment_status_from_display(value: &str) -> Result<Option<&'static str>, UnknownValue> {
    match value {
        "FULFILLED" => Ok(Some("fulfilled")),
        "PARTIALLY_FULFILLED" => Ok(Some("partial")),
        "RESTOCKED" => Ok(Some("restocked")),
        "UNFULFILLED"
        | "FULFILLMENT_NOT_REQUIRED"
        | "IN_PROGRESS"
        | "ON_HOLD"
        | "OPEN"
        | "PENDING_FULFILLMENT"
        | "REQUEST_DECLINED"
        | "SCHEDULED" => Ok(None),
        _ => Err(UnknownValue),
    }
}

/// A value of a Shopify enum this build does not know (a newer API version may add some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue;

/// Every webhook topic orderline subscribes to. Anything else is acknowledged and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    OrdersCreate,
    OrdersUpdated,
    OrdersPaid,
    OrdersCancelled,
    OrdersFulfilled,
    OrdersPartiallyFulfilled,
    OrdersDelete,
    FulfillmentsCreate,
    FulfillmentsUpdate,
    FulfillmentEventsCreate,
    RefundsCreate,
    CustomersCreate,
    CustomersUpdate,
    CustomersEnable,
    CustomersDisable,
    CustomersDelete,
    CustomersRedact,
    ShopRedact,
    CustomersDataRequest,
    ReturnsRequest,
    ReturnsApprove,
    ReturnsDecline,
    ReturnsUpdate,
    ReturnsProcess,
    ReturnsClose,
    ReturnsReopen,
    ReturnsCancel,
    ReverseDeliveriesAttachDeliverable,
}

impl Topic {
    pub const ALL: [Topic; 28] = [
        Topic::OrdersCreate,
        Topic::OrdersUpdated,
        Topic::OrdersPaid,
        Topic::OrdersCancelled,
        Topic::OrdersFulfilled,
        Topic::OrdersPartiallyFulfilled,
        Topic::OrdersDelete,
        Topic::FulfillmentsCreate,
        Topic::FulfillmentsUpdate,
        Topic::FulfillmentEventsCreate,
        Topic::RefundsCreate,
        Topic::CustomersCreate,
        Topic::CustomersUpdate,
        Topic::CustomersEnable,
        Topic::CustomersDisable,
        Topic::CustomersDelete,
        Topic::CustomersRedact,
        Topic::ShopRedact,
        Topic::CustomersDataRequest,
        Topic::ReturnsRequest,
        Topic::ReturnsApprove,
        Topic::ReturnsDecline,
        Topic::ReturnsUpdate,
        Topic::ReturnsProcess,
        Topic::ReturnsClose,
        Topic::ReturnsReopen,
        Topic::ReturnsCancel,
        Topic::ReverseDeliveriesAttachDeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::OrdersCreate => "orders/create",
            Topic::OrdersUpdated => "orders/updated",
            Topic::OrdersPaid => "orders/paid",
            Topic::OrdersCancelled => "orders/cancelled",
            Topic::OrdersFulfilled => "orders/fulfilled",
            Topic::OrdersPartiallyFulfilled => "orders/partially_fulfilled",
            Topic::OrdersDelete => "orders/delete",
            Topic::FulfillmentsCreate => "fulfillments/create",
            Topic::FulfillmentsUpdate => "fulfillments/update",
            Topic::FulfillmentEventsCreate => "fulfillment_events/create",
            Topic::RefundsCreate => "refunds/create",
            Topic::CustomersCreate => "customers/create",
            Topic::CustomersUpdate => "customers/update",
            Topic::CustomersEnable => "customers/enable",
            Topic::CustomersDisable => "customers/disable",
            Topic::CustomersDelete => "customers/delete",
            Topic::CustomersRedact => "customers/redact",
            Topic::ShopRedact => "shop/redact",
            Topic::CustomersDataRequest => "customers/data_request",
            Topic::ReturnsRequest => "returns/request",
            Topic::ReturnsApprove => "returns/approve",
            Topic::ReturnsDecline => "returns/decline",
            Topic::ReturnsUpdate => "returns/update",
            Topic::ReturnsProcess => "returns/process",
            Topic::ReturnsClose => "returns/close",
            Topic::ReturnsReopen => "returns/reopen",
            Topic::ReturnsCancel => "returns/cancel",
            Topic::ReverseDeliveriesAttachDeliverable => "reverse_deliveries/attach_deliverable",
        }
    }

    pub fn parse(text: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The mandatory privacy compliance topics: an app subscribes to them in its configuration
    /// (`compliance_topics` in `shopify.app.toml`, or the Partner Dashboard), never through
    /// `webhookSubscriptionCreate`, whose `WebhookSubscriptionTopic` enum does not hold them
    /// (https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance, read 2026-12-04;
    /// tests/fixtures/shopify/admin_2026-10.graphql).
    /// A `returns/*` or `reverse_deliveries/*` topic (scope `read_returns`).
    pub fn is_return(self) -> bool {
        matches!(
            self,
            Topic::ReturnsRequest
                | Topic::ReturnsApprove
                | Topic::ReturnsDecline
                | Topic::ReturnsUpdate
                | Topic::ReturnsProcess
                | Topic::ReturnsClose
                | Topic::ReturnsReopen
                | Topic::ReturnsCancel
                | Topic::ReverseDeliveriesAttachDeliverable
        )
    }

    pub fn is_compliance(self) -> bool {
        matches!(self, Topic::CustomersRedact | Topic::ShopRedact | Topic::CustomersDataRequest)
    }
}

/// One thing Shopify tells us happened, ready for the apply path.
#[derive(Debug, Clone, PartialEq)]
pub enum ShopifyChange {
    Order(Box<ShopifyOrder>),
    OrderDeleted {
        id: ShopifyId,
    },
    Fulfillment(ShopifyFulfillment),
    FulfillmentEvent(ShopifyFulfillmentEvent),
    Refund(ShopifyRefund),
    Customer(Box<ShopifyCustomer>),
    CustomerDeleted {
        id: ShopifyId,
    },
    CustomerRedact {
        customer_id: ShopifyId,
        orders_to_redact: Vec<ShopifyId>,
    },
    ShopRedact,
    DataRequest {
        request_id: Option<ShopifyId>,
        customer_id: ShopifyId,
        orders_requested: Vec<ShopifyId>,
    },
    /// Facts about one return (a `returns/*` topic or a reverse delivery's label).
    Return(Box<ShopifyReturn>),
    /// A return changed in a way its body does not say (`returns/update`, `returns/process`):
    /// its order is marked for a refetch.
    ReturnTouched {
        id: Option<ShopifyId>,
    },
}

/// A signed delivery whose body does not have the shape its topic promises.
#[derive(Debug, thiserror::Error)]
#[error("{topic} payload: {reason}")]
pub struct PayloadError {
    pub topic: &'static str,
    pub reason: String,
}

#[derive(Deserialize)]
struct IdOnly {
    id: ShopifyId,
}

/// Whether the customer inside an order body carries `addresses` at all.
#[derive(Deserialize)]
struct EmbeddedCustomer {
    #[serde(default)]
    customer: Option<EmbeddedAddresses>,
}

#[derive(Deserialize)]
struct EmbeddedAddresses {
    #[serde(default)]
    addresses: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
struct CustomerRef {
    id: ShopifyId,
}

#[derive(Deserialize)]
struct RedactPayload {
    customer: CustomerRef,
    #[serde(default, deserialize_with = "null_as_empty")]
    orders_to_redact: Vec<ShopifyId>,
}

#[derive(Deserialize)]
struct DataRequestPayload {
    customer: CustomerRef,
    #[serde(default, deserialize_with = "null_as_empty")]
    orders_requested: Vec<ShopifyId>,
    #[serde(default)]
    data_request: Option<IdOnly>,
}

impl ShopifyChange {
    /// Parses a delivery body by its topic.
    pub fn parse(topic: Topic, body: &[u8]) -> Result<Self, PayloadError> {
        fn json<'a, T: Deserialize<'a>>(topic: Topic, body: &'a [u8]) -> Result<T, PayloadError> {
            serde_json::from_slice(body).map_err(|e| PayloadError { topic: topic.as_str(), reason: e.to_string() })
        }
        Ok(match topic {
            Topic::OrdersCreate
            | Topic::OrdersUpdated
            | Topic::OrdersPaid
            | Topic::OrdersCancelled
            | Topic::OrdersFulfilled
            | Topic::OrdersPartiallyFulfilled => {
                let mut order: ShopifyOrder = json(topic, body)?;
                if let Some(customer) = order.customer.as_mut() {
                    customer.addresses_omitted =
                        json::<EmbeddedCustomer>(topic, body)?.customer.is_some_and(|c| c.addresses.is_none());
                }
                order.fulfillments =
                    order.fulfillments.into_iter().map(ShopifyFulfillment::with_dates_from_status).collect();
                ShopifyChange::Order(Box::new(order))
            }
            Topic::OrdersDelete => ShopifyChange::OrderDeleted { id: json::<IdOnly>(topic, body)?.id },
            Topic::FulfillmentsCreate | Topic::FulfillmentsUpdate => {
                ShopifyChange::Fulfillment(json::<ShopifyFulfillment>(topic, body)?.with_dates_from_status())
            }
            Topic::FulfillmentEventsCreate => ShopifyChange::FulfillmentEvent(json(topic, body)?),
            Topic::RefundsCreate => ShopifyChange::Refund(json(topic, body)?),
            Topic::CustomersCreate | Topic::CustomersUpdate | Topic::CustomersEnable | Topic::CustomersDisable => {
                let customer: ShopifyCustomer = json(topic, body)?;
                if customer.updated_at.is_none() {
                    return Err(PayloadError { topic: topic.as_str(), reason: "missing field `updated_at`".into() });
                }
                ShopifyChange::Customer(Box::new(customer))
            }
            Topic::CustomersDelete => ShopifyChange::CustomerDeleted { id: json::<IdOnly>(topic, body)?.id },
            Topic::CustomersRedact => {
                let p: RedactPayload = json(topic, body)?;
                ShopifyChange::CustomerRedact { customer_id: p.customer.id, orders_to_redact: p.orders_to_redact }
            }
            Topic::ShopRedact => ShopifyChange::ShopRedact,
            Topic::ReturnsRequest
            | Topic::ReturnsApprove
            | Topic::ReturnsDecline
            | Topic::ReturnsUpdate
            | Topic::ReturnsProcess
            | Topic::ReturnsClose
            | Topic::ReturnsReopen
            | Topic::ReturnsCancel
            | Topic::ReverseDeliveriesAttachDeliverable => match super::returns::parse(topic, body)? {
                ReturnChange::Return(r) => ShopifyChange::Return(r),
                ReturnChange::Touched(id) => ShopifyChange::ReturnTouched { id },
            },
            Topic::CustomersDataRequest => {
                let p: DataRequestPayload = json(topic, body)?;
                ShopifyChange::DataRequest {
                    request_id: p.data_request.map(|d| d.id),
                    customer_id: p.customer.id,
                    orders_requested: p.orders_requested,
                }
            }
        })
    }

    /// The customer this change is about, when there is one (used to find payloads to redact).
    pub fn customer_id(&self) -> Option<ShopifyId> {
        match self {
            ShopifyChange::Order(o) => o.customer_id(),
            ShopifyChange::Customer(c) => Some(c.id),
            ShopifyChange::CustomerDeleted { id } => Some(*id),
            ShopifyChange::CustomerRedact { customer_id, .. } | ShopifyChange::DataRequest { customer_id, .. } => {
                Some(*customer_id)
            }
            _ => None,
        }
    }

    /// The order this change is about, when there is one.
    pub fn order_id(&self) -> Option<ShopifyId> {
        match self {
            ShopifyChange::Order(o) => Some(o.id),
            ShopifyChange::OrderDeleted { id } => Some(*id),
            ShopifyChange::Fulfillment(f) => Some(f.order_id),
            ShopifyChange::FulfillmentEvent(e) => Some(e.order_id),
            ShopifyChange::Refund(r) => Some(r.order_id),
            ShopifyChange::Return(r) => r.order_id,
            _ => None,
        }
    }
}

/// The customer and order a delivery is about, read from its body without building it (the
/// same subjects `ShopifyChange::customer_id`/`order_id` give once it is parsed): what intake
/// records with the delivery, so a pending one can be found by its subject.
pub fn subjects_at_intake(topic: Topic, body: &[u8]) -> (Option<ShopifyId>, Option<ShopifyId>) {
    #[derive(Deserialize)]
    struct Id {
        id: ShopifyId,
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<ShopifyId>,
        #[serde(default)]
        order_id: Option<ShopifyId>,
        #[serde(default)]
        customer: Option<Id>,
        #[serde(default)]
        order: Option<Id>,
    }
    let Ok(probe) = serde_json::from_slice::<Probe>(body) else {
        return subjects_of_unparsed(Some(topic), body);
    };
    let customer = probe.customer.map(|c| c.id);
    let own = probe.id;
    match topic {
        Topic::CustomersCreate
        | Topic::CustomersUpdate
        | Topic::CustomersEnable
        | Topic::CustomersDisable
        | Topic::CustomersDelete => (own, None),
        Topic::FulfillmentsCreate
        | Topic::FulfillmentsUpdate
        | Topic::FulfillmentEventsCreate
        | Topic::RefundsCreate => (customer, probe.order_id),
        // A redaction erases what is stored under its customer, pending deliveries included:
        // its own row is found by its ID, never by its subject.
        Topic::CustomersRedact | Topic::CustomersDataRequest | Topic::ShopRedact => (None, None),
        // A return names its order as `order {id}` or `order_id` (a label names neither).
        t if t.is_return() => (None, probe.order.map(|o| o.id).or(probe.order_id)),
        _ => (customer, own),
    }
}

/// For a body that does not parse: the customer and order it names, if it names them plainly,
/// so a redaction can still find and erase it.
pub fn subjects_of_unparsed(topic: Option<Topic>, body: &[u8]) -> (Option<ShopifyId>, Option<ShopifyId>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let id_at = |v: Option<&serde_json::Value>| -> Option<ShopifyId> {
        match v? {
            serde_json::Value::Number(n) => n.as_i64().filter(|i| *i > 0).map(ShopifyId),
            serde_json::Value::String(s) => ShopifyId::parse(s),
            _ => None,
        }
    };
    let customer = id_at(value.pointer("/customer/id"));
    let own_id = id_at(value.get("id"));
    match topic {
        Some(Topic::CustomersCreate | Topic::CustomersUpdate | Topic::CustomersEnable | Topic::CustomersDisable)
        | Some(Topic::CustomersDelete) => (own_id, None),
        Some(
            Topic::FulfillmentsCreate
            | Topic::FulfillmentsUpdate
            | Topic::FulfillmentEventsCreate
            | Topic::RefundsCreate,
        ) => (customer, id_at(value.get("order_id"))),
        Some(t) if t.is_return() => (None, id_at(value.pointer("/order/id")).or_else(|| id_at(value.get("order_id")))),
        _ => (customer, own_id),
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Adds decimal money strings exactly ("12.50" + "3.005" = "15.505"), without floats.
pub fn sum_decimals(amounts: &[&str]) -> Option<String> {
    if amounts.is_empty() {
        return None;
    }
    let scale = amounts.iter().map(|a| a.split_once('.').map_or(0, |(_, f)| f.len())).max().unwrap_or(0);
    let mut total: i128 = 0;
    for amount in amounts {
        let (whole, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
        let negative = whole.starts_with('-');
        let digits = format!("{}{}{}", whole.trim_start_matches('-'), frac, "0".repeat(scale - frac.len()));
        let value: i128 = digits.parse().ok()?;
        total += if negative { -value } else { value };
    }
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    if scale == 0 {
        return Some(format!("{sign}{abs}"));
    }
    let divisor = 10u128.pow(scale as u32);
    Some(format!("{sign}{}.{:0width$}", abs / divisor, abs % divisor, width = scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_unknown_ones_are_none() {
        for topic in Topic::ALL {
            assert_eq!(Topic::parse(topic.as_str()), Some(topic));
        }
        assert_eq!(Topic::parse("products/update"), None);
    }

    #[test]
    fn refund_amount_adds_successful_refund_transactions_exactly() {
        assert_eq!(sum_decimals(&["12.50", "3.005"]).as_deref(), Some("15.505"));
        assert_eq!(sum_decimals(&["100", "0.10"]).as_deref(), Some("100.10"));
        assert_eq!(sum_decimals(&[]), None);
    }

    #[test]
    fn customer_without_updated_at_is_refused() {
        let err = ShopifyChange::parse(Topic::CustomersUpdate, br#"{"id": 5}"#).unwrap_err();
        assert!(err.to_string().contains("updated_at"), "{err}");
    }

    #[test]
    fn timestamps_with_offsets_become_utc() {
        let f: ShopifyFulfillment =
            serde_json::from_str(r#"{"id": 1, "order_id": 2, "updated_at": "2026-11-02T10:15:00-05:00"}"#).unwrap();
        assert_eq!(f.updated_at.to_rfc3339(), "2026-11-02T15:15:00+00:00");
    }
}
