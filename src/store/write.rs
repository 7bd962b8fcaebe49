//! What the apply path (`records`) is asked to write: plain structs owned by the store, carrying
//! exactly what it stores. Never parsed from Shopify JSON here; `shopify` builds them from its
//! payload types (`shopify::writes`), the one place where a Shopify record becomes a write.

use super::Ts;
use crate::domain::{DeclineReason, ReturnStatus, ShopifyId};

/// One change to apply: a record to write if it is newer, or something to delete, redact or
/// record.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A customer, written if newer.
    Customer(Box<CustomerWrite>),
    /// An order with its line items, fulfilments, refunds and returns, written if newer.
    Order(Box<OrderWrite>),
    /// The order is gone: its rows are removed and a tombstone keeps it gone.
    OrderDeleted { id: ShopifyId },
    /// One fulfilment of an order, written if newer.
    Fulfillment(FulfillmentWrite),
    /// A tracking event's dates, added to its fulfilment.
    FulfillmentEvent(FulfillmentEventWrite),
    /// A refund (the first copy is kept).
    Refund(RefundWrite),
    /// The customer is gone: their row and phones are removed and a tombstone keeps them gone.
    CustomerDeleted { id: ShopifyId },
    /// Nothing of the customer may be kept: their rows, these orders and theirs, stored
    /// deliveries and call details.
    CustomerRedact { customer_id: ShopifyId, orders_to_redact: Vec<ShopifyId> },
    /// Nothing of the shop may be kept.
    ShopRedact,
    /// The merchant is asked for a customer's data: recorded, nothing else.
    DataRequest { request_id: Option<ShopifyId>, customer_id: ShopifyId, orders_requested: Vec<ShopifyId> },
    /// Facts about one return.
    Return(Box<ReturnWrite>),
    /// A return changed in a way the change does not say: its order is marked for a refetch.
    /// `None` when not even the return is named.
    ReturnTouched { id: Option<ShopifyId> },
}

impl Change {
    /// The customer this change is about, when there is one.
    pub fn customer_id(&self) -> Option<ShopifyId> {
        match self {
            Change::Order(o) => o.customer_id(),
            Change::Customer(c) => Some(c.id),
            Change::CustomerDeleted { id } => Some(*id),
            Change::CustomerRedact { customer_id, .. } | Change::DataRequest { customer_id, .. } => Some(*customer_id),
            _ => None,
        }
    }

    /// The order this change is about, when there is one.
    pub fn order_id(&self) -> Option<ShopifyId> {
        match self {
            Change::Order(o) => Some(o.id),
            Change::OrderDeleted { id } => Some(*id),
            Change::Fulfillment(f) => Some(f.order_id),
            Change::FulfillmentEvent(e) => Some(e.order_id),
            Change::Refund(r) => Some(r.order_id),
            Change::Return(r) => r.order_id,
            _ => None,
        }
    }
}

/// An address, as far as the store keeps it: its phone (with the country to read it in), and
/// the postal code and country of a customer's default or an order's shipping address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressWrite {
    /// Names the address's phone row (`address:{id}`); without one, its position does.
    pub id: Option<ShopifyId>,
    pub phone: Option<String>,
    pub zip: Option<String>,
    /// ISO 3166-1 alpha-2; the region national phone numbers of this address are read in.
    pub country_code: Option<String>,
}

/// A customer to write.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerWrite {
    pub id: ShopifyId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub state: Option<String>,
    /// The customer's language; none never erases a stored one.
    pub locale: Option<String>,
    pub created_at: Option<Ts>,
    /// None on some embedded copies: such a copy cannot be ordered against what is stored, so it
    /// only links its order, never writes the customer.
    pub updated_at: Option<Ts>,
    pub default_address: Option<AddressWrite>,
    pub addresses: Vec<AddressWrite>,
    /// This copy is not the whole record (its addresses were left out): it creates a customer
    /// not yet stored, and never overwrites one.
    pub partial: bool,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItemWrite {
    pub id: ShopifyId,
    pub title: String,
    pub variant_title: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
    pub price: Option<String>,
    /// None keeps the stored status.
    pub fulfillment_status: Option<String>,
}

/// One shipment of some of an order's items. The dates are merged with what is stored: a
/// snapshot says what is known now, a webhook copy only adds what it knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FulfillmentWrite {
    pub id: ShopifyId,
    pub order_id: ShopifyId,
    pub status: Option<String>,
    /// Where the shipment is, in the stored vocabulary (`in_transit`, `delivered`, …).
    pub shipment_status: Option<String>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    /// When it shipped.
    pub created_at: Option<Ts>,
    pub updated_at: Ts,
    pub in_transit_at: Option<Ts>,
    pub delivered_at: Option<Ts>,
    pub estimated_delivery_at: Option<Ts>,
}

/// What a tracking event adds to its fulfilment (if stored).
#[derive(Debug, Clone, PartialEq)]
pub struct FulfillmentEventWrite {
    pub fulfillment_id: ShopifyId,
    pub order_id: ShopifyId,
    /// `in_transit`, `delivered`, …: which date `happened_at` is.
    pub status: String,
    pub happened_at: Option<Ts>,
    pub estimated_delivery_at: Option<Ts>,
}

/// A refund: never changes once made.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundWrite {
    pub id: ShopifyId,
    pub order_id: ShopifyId,
    pub note: Option<String>,
    /// The money returned, as an exact decimal string.
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub created_at: Option<Ts>,
    pub processed_at: Option<Ts>,
}

/// The return label a return carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReturnLabelWrite {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub label_url: Option<String>,
}

/// One copy of a return: only some facts (`None`: this copy does not say), merged with what is
/// stored by the write rule of `store::returns`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnWrite {
    pub id: ShopifyId,
    pub order_id: Option<ShopifyId>,
    pub name: Option<String>,
    pub status: Option<ReturnStatus>,
    pub requested_at: Option<Ts>,
    pub approved_at: Option<Ts>,
    pub closed_at: Option<Ts>,
    pub decline_reason: Option<DeclineReason>,
    pub decline_note: Option<String>,
    /// Items being sent back.
    pub return_items: Option<i64>,
    /// Items asked for in exchange.
    pub exchange_items: Option<i64>,
    pub label: Option<ReturnLabelWrite>,
    /// The returned items arrived and were inspected.
    pub received: Option<bool>,
    /// When the return was in this state (the time of the copy); None: when it is applied.
    pub as_of: Option<Ts>,
}

/// An order to write, with what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderWrite {
    pub id: ShopifyId,
    pub name: String,
    pub order_number: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The customer copy the order carries: written by its own rule, and the order is linked to it.
    pub customer: Option<CustomerWrite>,
    /// The language the order was placed in; none never erases a stored one.
    pub customer_locale: Option<String>,
    pub financial_status: Option<String>,
    pub fulfillment_status: Option<String>,
    pub cancelled_at: Option<Ts>,
    pub cancel_reason: Option<String>,
    pub closed_at: Option<Ts>,
    pub total_price: Option<String>,
    pub currency: Option<String>,
    pub billing_address: Option<AddressWrite>,
    pub shipping_address: Option<AddressWrite>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub line_items: Vec<LineItemWrite>,
    /// False when this copy carried only some of the order's line items: those it carried are
    /// updated, the rest left as stored.
    pub all_line_items: bool,
    pub fulfillments: Vec<FulfillmentWrite>,
    pub refunds: Vec<RefundWrite>,
    pub returns: Vec<ReturnWrite>,
}

impl OrderWrite {
    pub fn customer_id(&self) -> Option<ShopifyId> {
        self.customer.as_ref().map(|c| c.id)
    }
}
