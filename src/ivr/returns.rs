//! Key 3: where each recent order's returns and refunds are, in the plain stages a caller
//! understands (requested, approved with its label, received, declined with Shopify's reason,
//! cancelled, complete; refunded how much and when), and which orders are past the shop's
//! return window. Decides from the cached order; the words are in `twiml/returns.*`.

use super::order_status::day_in;
use crate::domain::{DeclineReason, Language, ReturnStatus, SmsResult};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::flow::MenuOptions;
use super::order_status::spoken_digits;
use crate::lookup::{OrderCard, ReturnCard};

/// How far a return has come, as a caller hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStage {
    /// Asked for; the shop has not approved it yet.
    Requested,
    /// Approved; the parcel has not reached the shop (with the label's carrier when known).
    Approved,
    /// The returned items arrived and were inspected (`Order.returnStatus` INSPECTION_COMPLETE).
    Received,
    Declined,
    Cancelled,
    /// Closed: everything on it was dealt with.
    Complete,
}

impl ReturnStage {
    pub const ALL: [ReturnStage; 6] = [
        ReturnStage::Requested,
        ReturnStage::Approved,
        ReturnStage::Received,
        ReturnStage::Declined,
        ReturnStage::Cancelled,
        ReturnStage::Complete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStage::Requested => "requested",
            ReturnStage::Approved => "approved",
            ReturnStage::Received => "received",
            ReturnStage::Declined => "declined",
            ReturnStage::Cancelled => "cancelled",
            ReturnStage::Complete => "complete",
        }
    }

    fn of(r: &ReturnCard) -> Option<ReturnStage> {
        Some(match r.status? {
            ReturnStatus::Requested => ReturnStage::Requested,
            ReturnStatus::Open if r.received => ReturnStage::Received,
            ReturnStatus::Open => ReturnStage::Approved,
            ReturnStatus::Declined => ReturnStage::Declined,
            ReturnStatus::Canceled => ReturnStage::Cancelled,
            ReturnStatus::Closed => ReturnStage::Complete,
        })
    }
}

/// The names a template may compare `decline` with: `DeclineReason`'s stored words.
pub const DECLINE_WORDS: [&str; 3] = ["final_sale", "return_period_ended", "other"];

/// One return, as the template speaks it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReturnFacts {
    pub stage: ReturnStage,
    /// The return label's carrier, when a label is attached.
    pub carrier: Option<String>,
    /// A return label is attached.
    pub label: bool,
    /// Declined: Shopify's reason (`final_sale`, `return_period_ended`, `other`).
    pub decline: Option<&'static str>,
    /// Items asked for in exchange.
    pub exchange_items: u16,
}

/// A refund on an order, as the template speaks it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundFacts {
    /// `$21.23`, `£12.00`, `21 Canadian dollars and 23 cents` (`Language::money`); none when
    /// Shopify's refund carried no amount.
    pub amount: Option<String>,
    /// The same amount as data (`21.23` and its currency code, as Shopify gives them), for the
    /// recorded speech of Media Streams.
    pub total: Option<String>,
    pub currency: Option<String>,
    /// The latest refund's day in words and as a date; none when Shopify gave no time.
    pub day: Option<String>,
    pub date: Option<String>,
}

/// An order with a return or a refund.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderReturns {
    pub name: String,
    pub number_spoken: String,
    pub returns: Vec<ReturnFacts>,
    pub refund: Option<RefundFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReturnsStep {
    /// The recent orders that have a return or a refund (empty: one sentence says so).
    pub orders: Vec<OrderReturns>,
    /// The shop's return window in days (`ORDERLINE_RETURN_WINDOW_DAYS`), when set.
    pub window_days: Option<u32>,
    /// Recent orders delivered longer ago than the window, with no return (spoken digits).
    pub past_window: Vec<String>,
    pub menu: MenuOptions,
    /// The caller pressed 6: whether the return label's link was texted (said first).
    pub label_text: Option<SmsResult>,
}

impl ReturnsStep {
    pub fn of(orders: &[&OrderCard], now: DateTime<Utc>, tz: Tz, window_days: Option<u32>, menu: MenuOptions) -> Self {
        ReturnsStep::of_in(orders, now, tz, window_days, menu, Language::En)
    }

    /// The same, with amounts and days said in `language`.
    pub fn of_in(
        orders: &[&OrderCard],
        now: DateTime<Utc>,
        tz: Tz,
        window_days: Option<u32>,
        menu: MenuOptions,
        language: Language,
    ) -> Self {
        let mut with = Vec::new();
        let mut past_window = Vec::new();
        for order in orders {
            let returns: Vec<ReturnFacts> = order.returns.iter().filter_map(facts).collect();
            let refund = match &order.refunded {
                Some(r) => Some(RefundFacts {
                    amount: Some(language.money(&r.total, r.currency.as_deref())),
                    total: Some(r.total.to_string()),
                    currency: r.currency.as_deref().map(str::to_string),
                    day: r.last_at.map(|at| day_in(at, tz, language)),
                    date: r.last_at.map(|at| local_date(at, tz)),
                }),
                None if order.refunds > 0 || order.financial_status == Some("refunded") => {
                    Some(RefundFacts { amount: None, total: None, currency: None, day: None, date: None })
                }
                None => None,
            };
            if returns.is_empty()
                && let (Some(days), Some(delivered)) = (window_days, delivered_at(order))
                && now.timestamp_micros() - delivered > i64::from(days) * 86_400_000_000
            {
                past_window.push(spoken_digits(&order.name));
            }
            if !returns.is_empty() || refund.is_some() {
                with.push(OrderReturns {
                    name: order.name.to_string(),
                    number_spoken: spoken_digits(&order.name),
                    returns,
                    refund,
                });
            }
        }
        ReturnsStep { orders: with, window_days, past_window, menu, label_text: None }
    }
}

/// An order's returns and refund in the agent's plain words ("return requested, waiting for
/// approval"; "return approved, label with UPS, not back yet"; "return declined: final sale";
/// "refunded $21.50 on Tuesday, November 17"), for the call card.
pub fn card_words(order: &OrderCard, tz: Tz) -> Vec<String> {
    let mut words: Vec<String> = order
        .returns
        .iter()
        .filter_map(facts)
        .map(|r| {
            let mut text = match r.stage {
                ReturnStage::Requested => "return requested, waiting for approval".to_string(),
                ReturnStage::Approved => match (&r.carrier, r.label) {
                    (Some(carrier), _) => format!("return approved, label with {carrier}, not back yet"),
                    (None, true) => "return approved, label sent, not back yet".to_string(),
                    (None, false) => "return approved, no label yet".to_string(),
                },
                ReturnStage::Received => "return received".to_string(),
                ReturnStage::Declined => format!(
                    "return declined: {}",
                    match r.decline {
                        Some("final_sale") => "final sale",
                        Some("return_period_ended") => "return period ended",
                        _ => "other reason",
                    }
                ),
                ReturnStage::Cancelled => "return cancelled".to_string(),
                ReturnStage::Complete => "return complete".to_string(),
            };
            if r.exchange_items > 0 {
                text.push_str(&format!(
                    ", exchange for {} item{}",
                    r.exchange_items,
                    if r.exchange_items == 1 { "" } else { "s" }
                ));
            }
            text
        })
        .collect();
    if let Some(r) = &order.refunded {
        let day = r.last_at.map(|at| format!(" on {}", day_in_words(at, tz))).unwrap_or_default();
        words.push(format!("refunded {}{day}", money(&r.total, r.currency.as_deref())));
    } else if order.refunds > 0 {
        words.push("refunded".to_string());
    }
    words
}

fn facts(r: &ReturnCard) -> Option<ReturnFacts> {
    Some(ReturnFacts {
        stage: ReturnStage::of(r)?,
        carrier: r.label_carrier.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_string),
        label: r.label_carrier.is_some() || r.label_url.is_some(),
        decline: (r.status == Some(ReturnStatus::Declined))
            .then(|| r.decline_reason.unwrap_or(DeclineReason::Other).as_str()),
        exchange_items: r.exchange_items,
    })
}

/// When the order's last delivered shipment arrived (the return window counts from delivery).
fn delivered_at(order: &OrderCard) -> Option<i64> {
    order.fulfillments.iter().filter_map(|f| f.delivered_at).max()
}

/// An amount as a speech engine reads it well (see `Language::money`): "$21.23", "12 Canadian dollars".
pub fn money(amount: &str, currency: Option<&str>) -> String {
    Language::En.money(amount, currency)
}

fn day_in_words(micros: i64, tz: Tz) -> String {
    day_in(micros, tz, Language::En)
}

fn local_date(micros: i64, tz: Tz) -> String {
    let at = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().with_timezone(&tz);
    at.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::{FulfillmentCard, RefundSummary};

    const DAY: i64 = 86_400_000_000;
    // 2026-11-17T15:00:00Z, a Tuesday.
    const TUESDAY: i64 = 1_794_927_600_000_000;

    fn menu() -> MenuOptions {
        MenuOptions {
            other_orders: true,
            agents_open: true,
            text_tracking: false,
            text_label: false,
            voicemail: false,
            voicemail_key: false,
        }
    }

    fn order(returns: Vec<ReturnCard>, delivered: Option<i64>) -> OrderCard {
        OrderCard {
            id: 1,
            name: "#1042".into(),
            financial_status: Some("paid"),
            fulfillment_status: Some("fulfilled"),
            cancelled_at: None,
            created_at: TUESDAY - 50 * DAY,
            updated_at: TUESDAY,
            shipping_zip: None,
            total_price: Some("59.00".into()),
            currency: Some("USD".into()),
            fulfillments: vec![FulfillmentCard {
                status: Some("success"),
                shipment_status: delivered.map(|_| "delivered"),
                tracking_company: Some("UPS".into()),
                tracking_number: None,
                tracking_url: None,
                updated_at: TUESDAY,
                created_at: Some(TUESDAY - 48 * DAY),
                in_transit_at: None,
                delivered_at: delivered,
                estimated_delivery_at: None,
            }]
            .into_boxed_slice(),
            refunds: 0,
            refunded: None,
            returns: returns.into_boxed_slice(),
        }
    }

    fn card(status: ReturnStatus) -> ReturnCard {
        ReturnCard {
            status: Some(status),
            decline_reason: None,
            exchange_items: 0,
            label_carrier: None,
            label_url: None,
            received: false,
        }
    }

    #[test]
    fn an_open_return_is_approved_until_its_items_arrive() {
        let mut r = card(ReturnStatus::Open);
        r.label_carrier = Some("UPS".into());
        let o = order(vec![r.clone()], None);
        let step = ReturnsStep::of(&[&o], chrono::Utc::now(), chrono_tz::UTC, None, menu());
        assert_eq!(step.orders[0].returns[0].stage, ReturnStage::Approved);
        assert_eq!(step.orders[0].returns[0].carrier.as_deref(), Some("UPS"));
        r.received = true;
        let o = order(vec![r], None);
        let step = ReturnsStep::of(&[&o], chrono::Utc::now(), chrono_tz::UTC, None, menu());
        assert_eq!(step.orders[0].returns[0].stage, ReturnStage::Received);
    }

    #[test]
    fn the_window_counts_from_delivery_and_only_when_set() {
        let now = DateTime::<Utc>::from_timestamp_micros(TUESDAY).unwrap();
        let o = order(vec![], Some(TUESDAY - 31 * DAY));
        assert_eq!(ReturnsStep::of(&[&o], now, chrono_tz::UTC, Some(30), menu()).past_window, vec!["1 0 4 2"]);
        assert!(ReturnsStep::of(&[&o], now, chrono_tz::UTC, Some(45), menu()).past_window.is_empty());
        assert!(ReturnsStep::of(&[&o], now, chrono_tz::UTC, None, menu()).past_window.is_empty());
        let undelivered = order(vec![], None);
        assert!(ReturnsStep::of(&[&undelivered], now, chrono_tz::UTC, Some(1), menu()).past_window.is_empty());
    }

    #[test]
    fn a_refund_is_said_with_its_amount_and_day() {
        let mut o = order(vec![], None);
        o.refunded = Some(Box::new(RefundSummary {
            total: "21.23".into(),
            currency: Some("USD".into()),
            last_at: Some(TUESDAY),
        }));
        let step = ReturnsStep::of(&[&o], chrono::Utc::now(), chrono_tz::UTC, None, menu());
        let refund = step.orders[0].refund.as_ref().unwrap();
        assert_eq!((refund.amount.as_deref(), refund.day.as_deref()), (Some("$21.23"), Some("Tuesday, November 17")));
        assert_eq!(money("12.00", Some("CAD")), "12 Canadian dollars");
    }
}
