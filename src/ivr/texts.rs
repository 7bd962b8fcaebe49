//! The tracking link by text, as the call flow sees it: whether it may be offered, what the one
//! message says, and the sender the transport provides (the flow never speaks HTTP or SQL).
//! Offered only for an order whose latest shipment has a tracking URL, to a caller verified for
//! it, calling from a number (never a withheld one); sent only to that number.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::order_status::tracking_link;
use crate::domain::{PhoneNumber, SmsResult, Verified};
use crate::lookup::OrderCard;
use crate::lookup::caller_id::CallerId;

/// The one message a caller asked for by pressing 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub call_sid: String,
    pub customer_id: Option<i64>,
    pub order_id: i64,
    /// The calling number, E.164: the only number a text goes to.
    pub to: String,
    /// The number the caller called (`To`), the sender unless ORDERLINE_SMS_FROM says otherwise.
    pub called: Option<String>,
    pub body: String,
}

/// What the caller is told: sent (Twilio accepted it within the budget, or it was sent earlier
/// in this call) or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOutcome {
    pub result: SmsResult,
    /// For the call record: `sent SM…`, `already sent SM…`, `failed: 21211`, …
    pub detail: String,
}

/// Sends one text and answers within its own budget (the transport's Twilio client; the send
/// goes on in the background when it takes longer, and its end is recorded there).
pub trait TextSender: Send + Sync {
    fn send(&self, request: TextRequest) -> BoxFuture<'static, TextOutcome>;
}

/// The sender and what the flow needs to word and address the message.
#[derive(Clone)]
pub struct Texts {
    pub sender: Arc<dyn TextSender>,
    /// The shop as the message names it (ORDERLINE_SHOP_NAME).
    pub shop_name: String,
    /// For parsing the caller ID (ORDERLINE_DEFAULT_REGION).
    pub default_region: String,
}

/// Where and what to text, when texting is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPlan {
    pub to: PhoneNumber,
    pub body: String,
}

impl Texts {
    /// The text for `order`, when all hold: the caller is verified, their number is not withheld
    /// and parses, and the order's latest shipment has a tracking URL.
    pub fn plan(&self, verified: Verified, from: &str, order: Option<&OrderCard>) -> Option<TextPlan> {
        if verified == Verified::No {
            return None;
        }
        let CallerId::Number(to) = CallerId::parse(from, &self.default_region) else { return None };
        let order = order?;
        let (carrier, url) = tracking_link(order)?;
        Some(TextPlan { to, body: body(&self.shop_name, &order.name, carrier, url) })
    }
}

/// The message: the shop, the order, the carrier and the link; nothing more.
pub fn body(shop_name: &str, order_name: &str, carrier: Option<&str>, url: &str) -> String {
    let carrier = carrier.map(|c| format!(" ({})", c.trim())).unwrap_or_default();
    format!("{}: tracking for order {}{carrier}: {url}", shop_name.trim(), order_name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_shop_order_carrier_and_link_only() {
        assert_eq!(
            body("Acme", "#1001", Some("UPS"), "https://ups.example/t/1Z"),
            "Acme: tracking for order #1001 (UPS): https://ups.example/t/1Z"
        );
        assert_eq!(
            body("Acme", "#1001", None, "https://t.example/x"),
            "Acme: tracking for order #1001: https://t.example/x"
        );
    }
}
