//! Where an order is, in the plain states a caller understands (placed, paid, being prepared,
//! shipped, out for delivery, delivered, ready for pickup, picked up, delayed, a failed or
//! attempted delivery, cancelled, refunded), with the dates callers ask about. Decides the state
//! from the cached order; the words themselves are in the `twiml/` templates.

use crate::domain::Language;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::lookup::{FulfillmentCard, OrderCard};
use crate::shopify::payload::ShipmentStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Paid,
    BeingPrepared,
    Shipped,
    OutForDelivery,
    Delivered,
    /// Local pickup: waiting at the pickup location.
    ReadyForPickup,
    /// Local pickup: collected.
    PickedUp,
    /// The carrier says the parcel is late.
    Delayed,
    /// The carrier tried to deliver and could not; it will try again or hold the parcel.
    DeliveryAttempted,
    /// The carrier gave up (failure, not delivered): a person must sort it out.
    DeliveryFailed,
    Cancelled,
    Refunded,
}

impl OrderState {
    /// Every state, in the order an order usually passes through them.
    pub const ALL: [OrderState; 13] = [
        OrderState::Placed,
        OrderState::Paid,
        OrderState::BeingPrepared,
        OrderState::Shipped,
        OrderState::OutForDelivery,
        OrderState::Delivered,
        OrderState::ReadyForPickup,
        OrderState::PickedUp,
        OrderState::Delayed,
        OrderState::DeliveryAttempted,
        OrderState::DeliveryFailed,
        OrderState::Cancelled,
        OrderState::Refunded,
    ];

    /// The name templates, the feed and the Task JSON use (`out_for_delivery`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Paid => "paid",
            OrderState::BeingPrepared => "being_prepared",
            OrderState::Shipped => "shipped",
            OrderState::OutForDelivery => "out_for_delivery",
            OrderState::Delivered => "delivered",
            OrderState::ReadyForPickup => "ready_for_pickup",
            OrderState::PickedUp => "picked_up",
            OrderState::Delayed => "delayed",
            OrderState::DeliveryAttempted => "delivery_attempted",
            OrderState::DeliveryFailed => "delivery_failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Refunded => "refunded",
        }
    }

    /// States the caller is offered a person for, whatever the menu says.
    pub fn needs_a_person(self) -> bool {
        matches!(self, OrderState::Delayed | OrderState::DeliveryFailed)
    }

    /// What a shipment state means to a caller: the one mapping from Shopify's shipment
    /// vocabulary (`ShipmentStatus`, which covers GraphQL's `FulfillmentDisplayStatus` and
    /// REST's `shipment_status`). Exhaustive: a new shipment state does not compile until it
    /// is named here.
    pub fn of_shipment(status: ShipmentStatus) -> OrderState {
        match status {
            // A label or a confirmed fulfilment: the order is fulfilled, on its way to the carrier.
            ShipmentStatus::LabelPrinted
            | ShipmentStatus::LabelPurchased
            | ShipmentStatus::Confirmed
            | ShipmentStatus::CarrierPickedUp
            | ShipmentStatus::InTransit => OrderState::Shipped,
            // The label was voided: nothing left the building.
            ShipmentStatus::LabelVoided => OrderState::BeingPrepared,
            ShipmentStatus::OutForDelivery => OrderState::OutForDelivery,
            ShipmentStatus::AttemptedDelivery => OrderState::DeliveryAttempted,
            ShipmentStatus::Delayed => OrderState::Delayed,
            ShipmentStatus::ReadyForPickup => OrderState::ReadyForPickup,
            ShipmentStatus::PickedUp => OrderState::PickedUp,
            ShipmentStatus::Delivered => OrderState::Delivered,
            ShipmentStatus::NotDelivered | ShipmentStatus::Failure => OrderState::DeliveryFailed,
        }
    }
}

/// What the templates need to speak about one order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderFacts {
    /// `#1042`, as the shop names it.
    pub name: String,
    /// The name as a caller would key it and hear it, digit by digit: `1 0 4 2`.
    pub number_spoken: String,
    pub state: OrderState,
    /// Only part of the order has shipped.
    pub partial: bool,
    /// Some of the money was refunded (the order itself may still be on its way).
    pub partly_refunded: bool,
    pub carrier: Option<String>,
    /// The day the state is about, in words (`Tuesday, November 17`): shipped = the
    /// fulfilment's creation, delivered / picked up = its delivery, cancelled = the
    /// cancellation, placed / paid = the order; for the carrier's news, the day of the news.
    pub day: String,
    /// The same day as a date (`2026-11-17`), for speech that says it from recordings.
    pub date: String,
    /// When Shopify has the carrier's estimate (shipped, in transit, out for delivery,
    /// delayed): the day it is expected, in words and as a date.
    pub expected_day: Option<String>,
    pub expected_date: Option<String>,
    pub tracking_number: Option<String>,
    pub total: Option<String>,
    pub currency: Option<String>,
    pub refunds: u16,
}

impl OrderFacts {
    pub fn of(order: &OrderCard, tz: Tz) -> OrderFacts {
        OrderFacts::of_in(order, tz, Language::En)
    }

    /// The facts with their days said in `language` ("martes 17 de noviembre").
    pub fn of_in(order: &OrderCard, tz: Tz, language: Language) -> OrderFacts {
        let shipment = latest_shipment(order);
        let (state, at) = state_of(order, shipment);
        let expected = shipment
            .filter(|_| matches!(state, OrderState::Shipped | OrderState::OutForDelivery | OrderState::Delayed))
            .and_then(|f| f.estimated_delivery_at);
        OrderFacts {
            name: order.name.to_string(),
            number_spoken: spoken_digits(&order.name),
            state,
            partial: order.fulfillment_status == Some("partial"),
            partly_refunded: order.financial_status == Some("partially_refunded"),
            carrier: shipment.and_then(|f| f.tracking_company.as_deref()).map(str::to_string),
            day: day_in(at, tz, language),
            date: local_date(at, tz),
            expected_day: expected.map(|at| day_in(at, tz, language)),
            expected_date: expected.map(|at| local_date(at, tz)),
            tracking_number: shipment.and_then(|f| f.tracking_number.as_deref()).map(str::to_string),
            total: order.total_price.as_deref().map(str::to_string),
            currency: order.currency.as_deref().map(str::to_string),
            refunds: order.refunds,
        }
    }
}

/// The carrier and tracking URL of the order's latest shipment, when Shopify has a URL for it
/// (`tracking_url` only: no link is made up from a carrier and a number).
pub fn tracking_link(order: &OrderCard) -> Option<(Option<&str>, &str)> {
    let shipment = latest_shipment(order)?;
    let url = shipment.tracking_url.as_deref().map(str::trim).filter(|u| is_web_link(u))?;
    Some((shipment.tracking_company.as_deref().map(str::trim).filter(|c| !c.is_empty()), url))
}

/// Whatever the merchant or an app typed, a link worth texting: only an absolute web address, in
/// one piece.
pub fn is_web_link(u: &str) -> bool {
    let web = u.starts_with("https://") || u.starts_with("http://");
    web && u.len() > "https://".len() && !u.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The most recently shipped fulfilment that went somewhere (not cancelled or failed).
fn latest_shipment(order: &OrderCard) -> Option<&FulfillmentCard> {
    order
        .fulfillments
        .iter()
        .filter(|f| !matches!(f.status, Some("cancelled" | "error" | "failure")))
        .max_by_key(|f| (f.created_at.unwrap_or(f.updated_at), f.updated_at))
}

fn state_of(order: &OrderCard, shipment: Option<&FulfillmentCard>) -> (OrderState, i64) {
    if let Some(at) = order.cancelled_at {
        return (OrderState::Cancelled, at);
    }
    if order.financial_status == Some("refunded") {
        return (OrderState::Refunded, order.updated_at);
    }
    if let Some(f) = shipment {
        // Shipped is the day the fulfilment was created: its `updated_at` moves with every scan.
        let shipped = f.created_at.unwrap_or(f.updated_at);
        if matches!(f.status, Some("pending" | "open")) {
            return (OrderState::BeingPrepared, shipped);
        }
        let state =
            f.shipment_status.and_then(ShipmentStatus::parse).map_or(OrderState::Shipped, OrderState::of_shipment);
        let at = match state {
            OrderState::Delivered | OrderState::PickedUp => f.delivered_at.unwrap_or(f.updated_at),
            OrderState::Shipped | OrderState::OutForDelivery | OrderState::BeingPrepared => shipped,
            // The carrier's news (delayed, attempted, failed, ready for pickup): when it came.
            _ => f.updated_at,
        };
        return (state, at);
    }
    match order.financial_status {
        Some("paid" | "partially_refunded") => (OrderState::Paid, order.created_at),
        _ => (OrderState::Placed, order.created_at),
    }
}

/// A moment's local day in words, in `language`: "Tuesday, November 17", "martes 17 de noviembre".
pub fn day_in(micros: i64, tz: Tz, language: Language) -> String {
    let at = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().with_timezone(&tz);
    language.day(at.date_naive())
}

fn local_date(micros: i64, tz: Tz) -> String {
    let at = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().with_timezone(&tz);
    at.format("%Y-%m-%d").to_string()
}

/// `#1042` → `1 0 4 2`: a speech engine reads "1042" as "one thousand forty-two".
pub fn spoken_digits(name: &str) -> String {
    let digits: Vec<String> = name.chars().filter(char::is_ascii_digit).map(String::from).collect();
    if digits.is_empty() { name.to_string() } else { digits.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;
    // 2026-11-17T15:00:00Z, a Tuesday.
    const TUESDAY: i64 = 1_794_927_600_000_000;

    fn order() -> OrderCard {
        OrderCard {
            id: 1,
            name: "#1042".into(),
            financial_status: Some("paid"),
            fulfillment_status: None,
            cancelled_at: None,
            created_at: TUESDAY - 2 * DAY,
            updated_at: TUESDAY,
            shipping_zip: Some("94107".into()),
            total_price: Some("59.00".into()),
            currency: Some("USD".into()),
            fulfillments: Box::new([]),
            refunds: 0,
            refunded: None,
            returns: Box::new([]),
        }
    }

    fn shipment(status: &'static str, shipment_status: Option<&'static str>) -> FulfillmentCard {
        FulfillmentCard {
            status: Some(status),
            shipment_status,
            tracking_company: Some("UPS".into()),
            tracking_number: Some("1Z999".into()),
            tracking_url: None,
            updated_at: TUESDAY,
            created_at: Some(TUESDAY),
            in_transit_at: None,
            delivered_at: None,
            estimated_delivery_at: None,
        }
    }

    fn facts(o: &OrderCard) -> OrderFacts {
        OrderFacts::of(o, chrono_tz::America::New_York)
    }

    #[test]
    fn an_unpaid_order_is_placed_and_a_paid_one_paid() {
        let mut o = order();
        o.financial_status = Some("pending");
        assert_eq!(facts(&o).state, OrderState::Placed);
        assert_eq!(facts(&order()).state, OrderState::Paid);
        assert_eq!(facts(&order()).day, "Sunday, November 15");
    }

    #[test]
    fn the_tracking_link_is_the_latest_shipments_web_url_only() {
        let mut o = order();
        assert_eq!(tracking_link(&o), None, "nothing shipped");
        let mut f = shipment("success", Some("in_transit"));
        o.fulfillments = Box::new([f.clone()]);
        assert_eq!(tracking_link(&o), None, "a carrier and a number make no link");
        for bad in ["javascript:alert(1)", "ups.com/1Z", "https://", "https://ups.example/a b", "https://x\u{7}y"] {
            f.tracking_url = Some(bad.into());
            o.fulfillments = Box::new([f.clone()]);
            assert_eq!(tracking_link(&o), None, "{bad}");
        }
        f.tracking_url = Some(" https://ups.example/t?n=1Z999 ".into());
        o.fulfillments = Box::new([f.clone()]);
        assert_eq!(tracking_link(&o), Some((Some("UPS"), "https://ups.example/t?n=1Z999")));
        let mut cancelled = f.clone();
        cancelled.status = Some("cancelled");
        cancelled.created_at = Some(TUESDAY + DAY);
        cancelled.tracking_url = Some("https://ups.example/cancelled".into());
        o.fulfillments = Box::new([f, cancelled]);
        assert_eq!(tracking_link(&o).map(|(_, url)| url), Some("https://ups.example/t?n=1Z999"), "not a cancelled one");
    }

    #[test]
    fn a_pending_fulfilment_is_being_prepared() {
        let mut o = order();
        o.fulfillments = Box::new([shipment("pending", None)]);
        assert_eq!(facts(&o).state, OrderState::BeingPrepared);
    }

    #[test]
    fn a_shipment_says_carrier_and_day_then_out_for_delivery_then_delivered() {
        let mut o = order();
        o.fulfillment_status = Some("fulfilled");
        o.fulfillments = Box::new([shipment("success", Some("in_transit"))]);
        let f = facts(&o);
        assert_eq!(
            (f.state, f.carrier.as_deref(), f.day.as_str()),
            (OrderState::Shipped, Some("UPS"), "Tuesday, November 17")
        );
        o.fulfillments = Box::new([shipment("success", Some("out_for_delivery"))]);
        assert_eq!(facts(&o).state, OrderState::OutForDelivery);
        o.fulfillments = Box::new([shipment("success", Some("delivered"))]);
        assert_eq!(facts(&o).state, OrderState::Delivered);
    }

    #[test]
    fn a_partial_shipment_is_marked_partial() {
        let mut o = order();
        o.fulfillment_status = Some("partial");
        o.fulfillments = Box::new([shipment("success", None)]);
        let f = facts(&o);
        assert_eq!((f.state, f.partial), (OrderState::Shipped, true));
    }

    #[test]
    fn a_cancelled_fulfilment_is_not_a_shipment() {
        let mut o = order();
        o.fulfillments = Box::new([shipment("cancelled", Some("in_transit"))]);
        assert_eq!(facts(&o).state, OrderState::Paid);
    }

    #[test]
    fn cancellation_and_refund_win_over_everything() {
        let mut o = order();
        o.fulfillments = Box::new([shipment("success", Some("delivered"))]);
        o.financial_status = Some("refunded");
        assert_eq!(facts(&o).state, OrderState::Refunded);
        o.cancelled_at = Some(TUESDAY + DAY);
        let f = facts(&o);
        assert_eq!((f.state, f.day.as_str()), (OrderState::Cancelled, "Wednesday, November 18"));
    }

    #[test]
    fn a_partial_refund_keeps_the_delivery_state() {
        let mut o = order();
        o.financial_status = Some("partially_refunded");
        o.refunds = 1;
        let f = facts(&o);
        assert_eq!((f.state, f.partly_refunded, f.refunds), (OrderState::Paid, true, 1));
    }

    #[test]
    fn state_names_are_the_serialized_ones() {
        for state in [OrderState::Placed, OrderState::BeingPrepared, OrderState::OutForDelivery, OrderState::Refunded] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }

    #[test]
    fn order_numbers_are_spoken_digit_by_digit() {
        assert_eq!(spoken_digits("#1042"), "1 0 4 2");
        assert_eq!(spoken_digits("EU-77"), "7 7");
        assert_eq!(spoken_digits("gift"), "gift");
    }
}
