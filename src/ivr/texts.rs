//! Links by text, as the call flow sees it: whether one may be offered, what the message says,
//! and the sender the transport provides (the flow never speaks HTTP or SQL). The tracking link
//! (key 4) is offered only for an order whose latest shipment has a tracking URL, the return
//! label's link (key 6, after key 3) only for an order whose open return has a label; both to a
//! caller verified for it, calling from a number (never a withheld one), and sent only to that
//! number.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::order_status::{is_web_link, tracking_link};
use crate::domain::{PhoneNumber, ReturnStatus, SmsResult, TextKind, Verified};
use crate::lookup::OrderCard;
use crate::lookup::caller_id::CallerId;

/// The one message of its kind a caller asked for (4: tracking, 6: the return label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub call_sid: String,
    pub customer_id: Option<i64>,
    pub order_id: i64,
    pub kind: TextKind,
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
    /// The order the text is about.
    pub order_id: i64,
    pub body: String,
}

impl Texts {
    /// The text for `order`, when all hold: the caller is verified, their number is not withheld
    /// and parses, and the order's latest shipment has a tracking URL.
    pub fn plan(&self, verified: Verified, from: &str, order: Option<&OrderCard>) -> Option<TextPlan> {
        let to = self.to(verified, from)?;
        let order = order?;
        let (carrier, url) = tracking_link(order)?;
        Some(TextPlan { to, order_id: order.id, body: body(&self.shop_name, &order.name, carrier, url) })
    }

    /// The return label's link, when all hold: the caller is verified, their number is not
    /// withheld and parses, and one of `orders` (newest first) has an open return with a label
    /// link; the newest such order's latest label.
    pub fn plan_label(&self, verified: Verified, from: &str, orders: &[&OrderCard]) -> Option<TextPlan> {
        let to = self.to(verified, from)?;
        orders.iter().find_map(|order| {
            let (carrier, url) = return_label_link(order)?;
            Some(TextPlan {
                to: to.clone(),
                order_id: order.id,
                body: label_body(&self.shop_name, &order.name, carrier, url),
            })
        })
    }

    /// The number a text may go to: the caller's own, once verified.
    fn to(&self, verified: Verified, from: &str) -> Option<PhoneNumber> {
        if verified == Verified::No {
            return None;
        }
        match CallerId::parse(from, &self.default_region) {
            CallerId::Number(to) => Some(to),
            _ => None,
        }
    }
}

/// The label link of the order's latest open (approved, not yet received) return, and its carrier.
fn return_label_link(order: &OrderCard) -> Option<(Option<&str>, &str)> {
    order.returns.iter().rev().filter(|r| r.status == Some(ReturnStatus::Open) && !r.received).find_map(|r| {
        let url = r.label_url.as_deref().map(str::trim).filter(|u| is_web_link(u))?;
        Some((r.label_carrier.as_deref().map(str::trim).filter(|c| !c.is_empty()), url))
    })
}

/// The return label message: the shop, the order, the carrier and the label's link; nothing more.
pub fn label_body(shop_name: &str, order_name: &str, carrier: Option<&str>, url: &str) -> String {
    let carrier = carrier.map(|c| format!(" ({})", c.trim())).unwrap_or_default();
    format!("{}: return label for order {}{carrier}: {url}", shop_name.trim(), order_name.trim())
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

    #[test]
    fn the_label_body_names_the_shop_order_carrier_and_label_link_only() {
        assert_eq!(
            label_body("Acme", "#1001", Some("UPS"), "https://cdn.example/labels/1Z.pdf"),
            "Acme: return label for order #1001 (UPS): https://cdn.example/labels/1Z.pdf"
        );
        assert_eq!(
            label_body(" Acme ", "#1001", None, "https://cdn.example/l.pdf"),
            "Acme: return label for order #1001: https://cdn.example/l.pdf"
        );
    }
}
