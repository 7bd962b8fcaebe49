//! The caller record the cache keeps: compact (boxed strings, interned status words, times as
//! integers) because a million of them live in memory. Built from the store's rows only.

use chrono::{DateTime, Utc};

use crate::shopify::payload::SHIPMENT_STATUSES;
use crate::store::{CallerParts, OrderParts};

/// Everyone a phone number belongs to, with their recent orders.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerRecord {
    pub customers: Box<[CustomerCard]>,
    /// The oldest `synced_at` among the rows (microseconds since the epoch): the whole record
    /// is as confirmed as its least recently confirmed row.
    pub confirmed_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerCard {
    pub id: i64,
    pub first_name: Option<Box<str>>,
    pub last_name: Option<Box<str>>,
    pub email: Option<Box<str>>,
    pub default_zip: Option<Box<str>>,
    /// Newest first.
    pub orders: Box<[OrderCard]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderCard {
    pub id: i64,
    pub name: Box<str>,
    pub financial_status: Option<&'static str>,
    pub fulfillment_status: Option<&'static str>,
    pub cancelled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub shipping_zip: Option<Box<str>>,
    pub total_price: Option<Box<str>>,
    pub currency: Option<Box<str>>,
    pub fulfillments: Box<[FulfillmentCard]>,
    pub refunds: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FulfillmentCard {
    pub status: Option<&'static str>,
    pub shipment_status: Option<&'static str>,
    pub tracking_company: Option<Box<str>>,
    pub tracking_number: Option<Box<str>>,
    pub tracking_url: Option<Box<str>>,
    pub updated_at: i64,
}

/// The order and fulfilment status words Shopify uses (shipment statuses are in
/// `SHIPMENT_STATUSES`); anything else is kept as "other" (the call flow cannot say more
/// about it anyway).
const STATUS_WORDS: [&str; 23] = [
    "pending",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
    "expired",
    "fulfilled",
    "partial",
    "restocked",
    "unfulfilled",
    "on_hold",
    "scheduled",
    "in_progress",
    "open",
    "success",
    "cancelled",
    "error",
    "pending_fulfillment",
    "request_declined",
    "picked_up",
    "other",
];

fn word(text: Option<&str>) -> Option<&'static str> {
    let text = text?;
    Some(STATUS_WORDS.iter().chain(SHIPMENT_STATUSES.iter()).find(|w| **w == text).copied().unwrap_or("other"))
}

fn boxed(text: &Option<String>) -> Option<Box<str>> {
    text.as_deref().map(Box::from)
}

impl CallerRecord {
    /// Builds the record for one phone from the store rows of its customers.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a CallerParts>) -> CallerRecord {
        let mut confirmed_at = i64::MAX;
        let customers = parts
            .into_iter()
            .map(|p| {
                confirmed_at = confirmed_at.min(p.customer.synced_at.0.timestamp_micros());
                let orders = p
                    .orders
                    .iter()
                    .map(|o| {
                        confirmed_at = confirmed_at.min(o.order.synced_at.0.timestamp_micros());
                        OrderCard::from_parts(o)
                    })
                    .collect();
                CustomerCard {
                    id: p.customer.id,
                    first_name: boxed(&p.customer.first_name),
                    last_name: boxed(&p.customer.last_name),
                    email: boxed(&p.customer.email),
                    default_zip: boxed(&p.customer.default_zip),
                    orders,
                }
            })
            .collect();
        CallerRecord { customers, confirmed_at: if confirmed_at == i64::MAX { 0 } else { confirmed_at } }
    }

    pub fn confirmed_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.confirmed_at).unwrap_or_default()
    }

    /// Approximate bytes held, for the cache's size bound.
    pub fn weight(&self) -> u32 {
        fn text(t: &Option<Box<str>>) -> usize {
            t.as_ref().map_or(0, |s| s.len())
        }
        let mut bytes = std::mem::size_of::<CallerRecord>();
        for c in self.customers.iter() {
            bytes += std::mem::size_of::<CustomerCard>()
                + text(&c.first_name)
                + text(&c.last_name)
                + text(&c.email)
                + text(&c.default_zip);
            for o in c.orders.iter() {
                bytes += std::mem::size_of::<OrderCard>()
                    + o.name.len()
                    + text(&o.shipping_zip)
                    + text(&o.total_price)
                    + text(&o.currency);
                for f in o.fulfillments.iter() {
                    bytes += std::mem::size_of::<FulfillmentCard>()
                        + text(&f.tracking_company)
                        + text(&f.tracking_number)
                        + text(&f.tracking_url);
                }
            }
        }
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

impl OrderCard {
    pub fn from_parts(o: &OrderParts) -> OrderCard {
        order_card(o)
    }
}

fn order_card(o: &OrderParts) -> OrderCard {
    OrderCard {
        id: o.order.id,
        name: Box::from(o.order.name.as_str()),
        financial_status: word(o.order.financial_status.as_deref()),
        fulfillment_status: word(o.order.fulfillment_status.as_deref()),
        cancelled_at: o.order.cancelled_at.map(|t| t.0.timestamp_micros()),
        created_at: o.order.shopify_created_at.0.timestamp_micros(),
        updated_at: o.order.updated_at.0.timestamp_micros(),
        shipping_zip: boxed(&o.order.shipping_zip),
        total_price: boxed(&o.order.total_price),
        currency: boxed(&o.order.currency),
        fulfillments: o
            .fulfillments
            .iter()
            .map(|f| FulfillmentCard {
                status: word(f.status.as_deref()),
                shipment_status: word(f.shipment_status.as_deref()),
                tracking_company: boxed(&f.tracking_company),
                tracking_number: boxed(&f.tracking_number),
                tracking_url: boxed(&f.tracking_url),
                updated_at: f.updated_at.0.timestamp_micros(),
            })
            .collect(),
        refunds: u16::try_from(o.refunds.len()).unwrap_or(u16::MAX),
    }
}
