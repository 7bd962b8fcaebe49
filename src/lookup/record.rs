//! The caller record the cache keeps: compact (boxed strings, interned status words, times as
//! integers) because a million of them live in memory. Built from the store's rows only.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{DeclineReason, PhoneNumber, ReturnStatus};
use crate::shopify::payload::{ShipmentStatus, sum_decimals};
use crate::store::{
    CallerParts, CallerSink, CustomerView, FulfillmentView, OrderParts, OrderView, RefundView, ReturnView,
};

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
    /// The language Shopify knows the customer by (`es-MX`): the customer's locale, else the
    /// one their latest order was placed in.
    pub locale: Option<Box<str>>,
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
    /// How much was refunded in all and when last, when any refund is known.
    pub refunded: Option<Box<RefundSummary>>,
    /// The order's returns, oldest first.
    pub returns: Box<[ReturnCard]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundSummary {
    /// The refunds' amounts added exactly (a decimal string).
    pub total: Box<str>,
    pub currency: Option<Box<str>>,
    /// The latest refund's time (microseconds since the epoch).
    pub last_at: Option<i64>,
}

/// One return, as far as a caller is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnCard {
    pub status: Option<ReturnStatus>,
    pub decline_reason: Option<DeclineReason>,
    pub exchange_items: u16,
    pub label_carrier: Option<Box<str>>,
    pub label_url: Option<Box<str>>,
    /// The returned items arrived at the shop and were inspected.
    pub received: bool,
}

impl ReturnCard {
    fn from_view(r: &ReturnView<'_>) -> ReturnCard {
        ReturnCard {
            status: r.status.and_then(ReturnStatus::parse),
            decline_reason: r.decline_reason.map(DeclineReason::parse),
            exchange_items: u16::try_from(r.exchange_items.unwrap_or(0).max(0)).unwrap_or(u16::MAX),
            label_carrier: r.label_carrier.map(Box::from),
            label_url: r.label_url.map(Box::from),
            received: r.received,
        }
    }
}

/// Adds one refund to an order's summary.
fn add_refund(summary: &mut Option<Box<RefundSummary>>, amount: Option<&str>, currency: Option<&str>, at: Option<i64>) {
    let Some(amount) = amount else { return };
    match summary {
        None => {
            *summary = Some(Box::new(RefundSummary {
                total: Box::from(amount),
                currency: currency.map(Box::from),
                last_at: at,
            }))
        }
        Some(s) => {
            if let Some(total) = sum_decimals(&[&s.total, amount]) {
                s.total = total.into_boxed_str();
            }
            if s.currency.is_none() {
                s.currency = currency.map(Box::from);
            }
            s.last_at = s.last_at.max(at);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FulfillmentCard {
    pub status: Option<&'static str>,
    pub shipment_status: Option<&'static str>,
    pub tracking_company: Option<Box<str>>,
    pub tracking_number: Option<Box<str>>,
    pub tracking_url: Option<Box<str>>,
    pub updated_at: i64,
    /// Shipped (the fulfilment's `created_at`), in transit since, delivered, and expected
    /// (microseconds since the epoch).
    pub created_at: Option<i64>,
    pub in_transit_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub estimated_delivery_at: Option<i64>,
}

/// The order and fulfilment status words Shopify uses (shipment statuses are
/// `ShipmentStatus`); anything else is kept as "other" (the call flow cannot say more
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
    if let Some(shipment) = ShipmentStatus::parse(text) {
        return Some(shipment.as_str());
    }
    Some(STATUS_WORDS.iter().find(|w| **w == text).copied().unwrap_or("other"))
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
                    locale: boxed(&p.customer.locale).or_else(|| {
                        let latest = p.orders.iter().filter(|o| o.order.customer_locale.is_some());
                        latest
                            .max_by_key(|o| o.order.shopify_created_at.0)
                            .and_then(|o| boxed(&o.order.customer_locale))
                    }),
                    orders,
                }
            })
            .collect();
        CallerRecord { customers, confirmed_at: if confirmed_at == i64::MAX { 0 } else { confirmed_at } }
    }

    /// A row of the record was contradicted by a same-second webhook and awaits a refetch.
    pub fn is_unconfirmed(&self) -> bool {
        self.confirmed_at <= crate::store::UNCONFIRMED.0.timestamp_micros()
    }

    pub fn confirmed_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.confirmed_at).unwrap_or_default()
    }

    /// The `created_at` of the oldest order the record shows (micros; `i64::MAX` when none).
    pub fn oldest_order_created_at(&self) -> i64 {
        self.customers.iter().flat_map(|c| c.orders.iter().map(|o| o.created_at)).min().unwrap_or(i64::MAX)
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
                + text(&c.default_zip)
                + text(&c.locale);
            for o in c.orders.iter() {
                bytes += std::mem::size_of::<OrderCard>()
                    + o.name.len()
                    + text(&o.shipping_zip)
                    + text(&o.total_price)
                    + text(&o.currency);
                if let Some(r) = &o.refunded {
                    bytes += std::mem::size_of::<RefundSummary>() + r.total.len() + text(&r.currency);
                }
                for r in o.returns.iter() {
                    bytes += std::mem::size_of::<ReturnCard>() + text(&r.label_carrier) + text(&r.label_url);
                }
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
                created_at: f.shopify_created_at.map(|t| t.0.timestamp_micros()),
                in_transit_at: f.in_transit_at.map(|t| t.0.timestamp_micros()),
                delivered_at: f.delivered_at.map(|t| t.0.timestamp_micros()),
                estimated_delivery_at: f.estimated_delivery_at.map(|t| t.0.timestamp_micros()),
            })
            .collect(),
        refunds: u16::try_from(o.refunds.len()).unwrap_or(u16::MAX),
        refunded: {
            let mut summary = None;
            for r in &o.refunds {
                add_refund(
                    &mut summary,
                    r.amount.as_deref(),
                    r.currency.as_deref(),
                    r.shopify_created_at.map(|t| t.0.timestamp_micros()),
                );
            }
            summary
        },
        returns: o
            .returns
            .iter()
            .map(|r| {
                ReturnCard::from_view(&ReturnView {
                    order_id: o.order.id,
                    id: r.id,
                    status: r.status.as_deref(),
                    decline_reason: r.decline_reason.as_deref(),
                    exchange_items: r.exchange_items,
                    label_carrier: r.label_carrier.as_deref(),
                    label_url: r.label_url.as_deref(),
                    received: r.received,
                })
            })
            .collect(),
    }
}

/// Builds every caller record of a shop from a whole-shop read (`Store::scan_callers`): each
/// customer with their newest orders (by creation, then ID, as a single lookup orders them) and
/// those orders' fulfilments and refunds, then one record per phone, holding everyone on it.
/// Strings are boxed once, straight from the rows, and only for what is kept.
pub struct ShopCallers {
    orders_each: usize,
    /// Every parseable phone row in the order read, and the customer's slot.
    phones: Vec<(Option<PhoneNumber>, u32)>,
    /// Customer ID → slot in `customers`, for every customer that owns a phone.
    slots: HashMap<i64, u32>,
    /// `None` until (unless) the customer's row is read.
    customers: Vec<Option<CustomerDraft>>,
    /// Kept order ID → its customer's slot.
    kept: HashMap<i64, u32>,
}

struct CustomerDraft {
    card: CustomerCard,
    synced_at: i64,
    orders: Vec<OrderDraft>,
}

struct OrderDraft {
    card: OrderCard,
    synced_at: i64,
    fulfillments: Vec<(i64, FulfillmentCard)>,
    refunds: usize,
    returns: Vec<(i64, ReturnCard)>,
}

impl ShopCallers {
    /// `customers`: about how many the shop has (room is made for them up front).
    pub fn new(orders_each: i64, customers: usize) -> ShopCallers {
        let orders_each = usize::try_from(orders_each).unwrap_or(0);
        ShopCallers {
            orders_each,
            phones: Vec::with_capacity(customers),
            slots: HashMap::with_capacity(customers),
            customers: Vec::with_capacity(customers),
            kept: HashMap::with_capacity(customers.saturating_mul(orders_each)),
        }
    }

    fn kept_order(&mut self, order_id: i64) -> Option<&mut OrderDraft> {
        let slot = *self.kept.get(&order_id)?;
        let draft = self.customers[slot as usize].as_mut()?;
        draft.orders.iter_mut().find(|o| o.card.id == order_id)
    }

    /// Hands over one record per phone, with its customers in the order their phone rows were
    /// read. `each` returns false to stop.
    pub fn into_records(self, mut each: impl FnMut(PhoneNumber, CallerRecord) -> bool) {
        let ShopCallers { mut phones, customers, .. } = self;
        let mut customers: Vec<Option<(CustomerCard, i64)>> = customers.into_iter().map(|d| d.map(finish)).collect();
        // Group the phone rows by number: (group, row) sorted is each number's rows in the order read.
        let mut rows: Vec<(u32, u32)> = Vec::with_capacity(phones.len());
        {
            let mut group_of: HashMap<&str, u32> = HashMap::with_capacity(phones.len());
            for (row, (phone, _)) in phones.iter().enumerate() {
                let phone = phone.as_ref().map_or("", PhoneNumber::as_str);
                let next = group_of.len() as u32;
                rows.push((*group_of.entry(phone).or_insert(next), row as u32));
            }
        }
        rows.sort_unstable();
        // Each group's customers (once each, and only those whose row was read), and how many
        // records each customer goes in: the last one takes the card, the others clone it.
        let mut groups: Vec<(u32, std::ops::Range<usize>)> = Vec::with_capacity(rows.len());
        let mut members: Vec<u32> = Vec::with_capacity(rows.len());
        let mut uses = vec![0u32; customers.len()];
        // The last group each customer joined: once per group, however many rows (and
        // however many customers share the number).
        let mut joined = vec![u32::MAX; customers.len()];
        for (group, run) in rows.chunk_by(|a, b| a.0 == b.0).enumerate() {
            let start = members.len();
            for &(_, row) in run {
                let slot = phones[row as usize].1 as usize;
                if customers[slot].is_some() && joined[slot] != group as u32 {
                    joined[slot] = group as u32;
                    members.push(slot as u32);
                    uses[slot] += 1;
                }
            }
            if members.len() > start {
                groups.push((run[0].1, start..members.len()));
            }
        }
        drop(rows);
        for (row, range) in groups {
            let Some(phone) = phones[row as usize].0.take() else { continue };
            let mut confirmed_at = i64::MAX;
            let mut cards = Vec::with_capacity(range.len());
            for &slot in &members[range] {
                let slot = slot as usize;
                uses[slot] -= 1;
                let taken = if uses[slot] == 0 { customers[slot].take() } else { customers[slot].clone() };
                if let Some((card, synced_at)) = taken {
                    confirmed_at = confirmed_at.min(synced_at);
                    cards.push(card);
                }
            }
            if !each(phone, CallerRecord { customers: cards.into_boxed_slice(), confirmed_at }) {
                return;
            }
        }
    }
}

/// A customer's card with its orders newest first, and the oldest `synced_at` among its rows.
fn finish(draft: CustomerDraft) -> (CustomerCard, i64) {
    let CustomerDraft { mut card, synced_at, mut orders } = draft;
    orders.sort_unstable_by_key(|o| std::cmp::Reverse((o.card.created_at, o.card.id)));
    let mut confirmed_at = synced_at;
    card.orders = orders
        .into_iter()
        .map(|order| {
            let OrderDraft { mut card, synced_at, mut fulfillments, refunds, mut returns } = order;
            confirmed_at = confirmed_at.min(synced_at);
            fulfillments.sort_unstable_by_key(|(id, _)| *id);
            card.fulfillments = fulfillments.into_iter().map(|(_, f)| f).collect();
            returns.sort_unstable_by_key(|(id, _)| *id);
            card.returns = returns.into_iter().map(|(_, r)| r).collect();
            card.refunds = u16::try_from(refunds).unwrap_or(u16::MAX);
            card
        })
        .collect();
    (card, confirmed_at)
}

fn boxed_str(text: Option<&str>) -> Option<Box<str>> {
    text.map(Box::from)
}

impl CallerSink for ShopCallers {
    fn phone(&mut self, e164: &str, customer_id: i64) {
        // A row that is not E.164 is never matched (the cache is keyed by E.164).
        let Some(phone) = PhoneNumber::from_e164(e164) else { return };
        let next = self.slots.len() as u32;
        let slot = *self.slots.entry(customer_id).or_insert(next);
        if slot == next {
            self.customers.push(None);
        }
        self.phones.push((Some(phone), slot));
    }

    fn customer(&mut self, c: CustomerView<'_>) {
        let Some(&slot) = self.slots.get(&c.id) else { return };
        self.customers[slot as usize] = Some(CustomerDraft {
            card: CustomerCard {
                id: c.id,
                first_name: boxed_str(c.first_name),
                last_name: boxed_str(c.last_name),
                email: boxed_str(c.email),
                default_zip: boxed_str(c.default_zip),
                locale: boxed_str(c.locale),
                orders: Box::new([]),
            },
            synced_at: c.synced_at,
            orders: Vec::with_capacity(self.orders_each),
        });
    }

    fn order(&mut self, o: OrderView<'_>) {
        let orders_each = self.orders_each;
        let Some(&slot) = self.slots.get(&o.customer_id) else { return };
        let Some(draft) = self.customers[slot as usize].as_mut() else { return };
        let replace = if draft.orders.len() < orders_each {
            None
        } else {
            // Full: the new order takes the place of the oldest kept one, if it is newer.
            let oldest = draft.orders.iter().enumerate().min_by_key(|(_, d)| (d.card.created_at, d.card.id));
            match oldest {
                Some((index, d)) if (d.card.created_at, d.card.id) < (o.created_at, o.id) => Some(index),
                _ => return,
            }
        };
        let order = OrderDraft {
            card: OrderCard {
                id: o.id,
                name: Box::from(o.name),
                financial_status: word(o.financial_status),
                fulfillment_status: word(o.fulfillment_status),
                cancelled_at: o.cancelled_at,
                created_at: o.created_at,
                updated_at: o.updated_at,
                shipping_zip: boxed_str(o.shipping_zip),
                total_price: boxed_str(o.total_price),
                currency: boxed_str(o.currency),
                fulfillments: Box::new([]),
                refunds: 0,
                refunded: None,
                returns: Box::new([]),
            },
            synced_at: o.synced_at,
            fulfillments: Vec::new(),
            refunds: 0,
            returns: Vec::new(),
        };
        match replace {
            Some(index) => {
                let dropped = std::mem::replace(&mut draft.orders[index], order);
                self.kept.remove(&dropped.card.id);
            }
            None => draft.orders.push(order),
        }
        self.kept.insert(o.id, slot);
    }

    fn fulfillment(&mut self, f: FulfillmentView<'_>) {
        let Some(order) = self.kept_order(f.order_id) else { return };
        let card = FulfillmentCard {
            status: word(f.status),
            shipment_status: word(f.shipment_status),
            tracking_company: boxed_str(f.tracking_company),
            tracking_number: boxed_str(f.tracking_number),
            tracking_url: boxed_str(f.tracking_url),
            updated_at: f.updated_at,
            created_at: f.created_at,
            in_transit_at: f.in_transit_at,
            delivered_at: f.delivered_at,
            estimated_delivery_at: f.estimated_delivery_at,
        };
        order.fulfillments.push((f.id, card));
    }

    fn refund(&mut self, r: RefundView<'_>) {
        if let Some(order) = self.kept_order(r.order_id) {
            order.refunds += 1;
            add_refund(&mut order.card.refunded, r.amount, r.currency, r.created_at);
        }
    }

    fn return_of_order(&mut self, r: ReturnView<'_>) {
        if let Some(order) = self.kept_order(r.order_id) {
            order.returns.push((r.id, ReturnCard::from_view(&r)));
        }
    }
}
