//! Bad news first: whether a verified caller's latest order went wrong, from what the store
//! already holds (the carrier's states and dates) and whether they called recently. Pure: the
//! caller of `news_of` brings the time and the count of recent calls; never speaks or transfers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::order_status::{OrderFacts, OrderState};
use crate::config::BadNewsPolicy;
use crate::domain::BadNews;
use crate::lookup::OrderCard;

/// "Delivered" this recently, with the customer on the phone, is worth an apology first.
pub const DELIVERED_WITHIN: Duration = Duration::from_secs(48 * 3600);

/// What the caller hears first, and the agent's card says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewsFacts {
    pub news: BadNews,
    /// The order it is about, as the templates speak orders.
    pub order: Option<OrderFacts>,
    /// Stalled: whole days since the carrier's last scan.
    pub days: Option<i64>,
}

impl NewsFacts {
    /// The call event's detail: `stalled: no carrier scan for 6 days (#1016)`.
    pub fn detail(&self) -> String {
        let order = self.order.as_ref().map(|o| format!(" ({})", o.name)).unwrap_or_default();
        let what = match self.news {
            BadNews::NotDelivered => "the carrier could not deliver it".to_string(),
            BadNews::Delayed => "the carrier marked it delayed".to_string(),
            BadNews::Stalled => format!("no carrier scan for {} days", self.days.unwrap_or(0)),
            BadNews::DeliveredRecently => "marked delivered in the last 48 hours".to_string(),
            BadNews::RepeatCaller => "called again within the repeat window".to_string(),
        };
        format!("{}: {what}{order}", self.news.as_str())
    }
}

/// The bad news about `order` (the caller's latest, or the one they keyed), if any; `recent_calls`
/// is how many other calls the customer made within the policy's repeat window. The order's own
/// trouble comes first: it is what the caller is calling about.
pub fn news_of(
    order: Option<(&OrderCard, &OrderFacts)>,
    recent_calls: i64,
    now: DateTime<Utc>,
    policy: &BadNewsPolicy,
) -> Option<NewsFacts> {
    let about = |news: BadNews, days: Option<i64>| NewsFacts { news, order: order.map(|(_, f)| f.clone()), days };
    if let Some((card, facts)) = order {
        let now_us = now.timestamp_micros();
        let latest = card.fulfillments.iter().max_by_key(|f| f.created_at.unwrap_or(f.updated_at));
        match facts.state {
            OrderState::DeliveryFailed => return Some(about(BadNews::NotDelivered, None)),
            OrderState::Delayed => return Some(about(BadNews::Delayed, None)),
            OrderState::Shipped => {
                // The carrier's last word: the fulfilment's last update (it moves with every
                // tracking event Shopify records), its in-transit scan, or the shipment itself.
                let last_scan =
                    latest.and_then(|f| f.in_transit_at.into_iter().chain(f.created_at).chain([f.updated_at]).max());
                if let Some(last) = last_scan {
                    let quiet = Duration::from_micros(u64::try_from(now_us - last).unwrap_or(0));
                    if quiet >= policy.stalled_after {
                        let days = i64::try_from(quiet.as_secs() / 86_400).unwrap_or(i64::MAX);
                        return Some(about(BadNews::Stalled, Some(days)));
                    }
                }
            }
            OrderState::Delivered => {
                let delivered = latest.and_then(|f| f.delivered_at);
                let within = delivered.is_some_and(|at| {
                    now_us >= at
                        && u64::try_from(now_us - at).unwrap_or(u64::MAX) <= DELIVERED_WITHIN.as_micros() as u64
                });
                if within {
                    return Some(about(BadNews::DeliveredRecently, None));
                }
            }
            _ => {}
        }
    }
    (recent_calls > 0).then(|| about(BadNews::RepeatCaller, None))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::lookup::FulfillmentCard;

    const DAY_US: i64 = 86_400_000_000;

    fn policy() -> BadNewsPolicy {
        BadNewsPolicy {
            on: true,
            stalled_after: Duration::from_secs(5 * 86_400),
            repeat_within: Duration::from_secs(72 * 3600),
        }
    }

    fn order(
        shipment_status: Option<&'static str>,
        created_days_ago: i64,
        delivered_days_ago: Option<i64>,
    ) -> OrderCard {
        let now = now().timestamp_micros();
        OrderCard {
            id: 1,
            name: "#1016".into(),
            financial_status: Some("paid"),
            fulfillment_status: Some("fulfilled"),
            cancelled_at: None,
            created_at: now - 10 * DAY_US,
            updated_at: now - DAY_US,
            shipping_zip: None,
            total_price: None,
            currency: None,
            fulfillments: Box::new([FulfillmentCard {
                status: Some("success"),
                shipment_status,
                tracking_company: Some("UPS".into()),
                tracking_number: None,
                tracking_url: None,
                updated_at: now - created_days_ago * DAY_US,
                created_at: Some(now - created_days_ago * DAY_US),
                in_transit_at: None,
                delivered_at: delivered_days_ago.map(|d| now - d * DAY_US),
                estimated_delivery_at: None,
            }]),
            refunds: 0,
            refunded: None,
            returns: Box::new([]),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    fn news(card: &OrderCard, recent: i64) -> Option<NewsFacts> {
        let facts = OrderFacts::of(card, chrono_tz::UTC);
        news_of(Some((card, &facts)), recent, now(), &policy())
    }

    #[test]
    fn a_parcel_without_a_scan_for_five_days_is_stalled_and_four_is_not() {
        let stalled = news(&order(Some("in_transit"), 6, None), 0).unwrap();
        assert_eq!((stalled.news, stalled.days), (BadNews::Stalled, Some(6)));
        assert_eq!(stalled.detail(), "stalled: no carrier scan for 6 days (#1016)");
        assert_eq!(news(&order(Some("in_transit"), 4, None), 0), None);
    }

    #[test]
    fn the_carriers_bad_states_come_first() {
        assert_eq!(news(&order(Some("failure"), 1, None), 3).unwrap().news, BadNews::NotDelivered);
        assert_eq!(news(&order(Some("delayed"), 1, None), 3).unwrap().news, BadNews::Delayed);
    }

    #[test]
    fn delivered_in_the_last_two_days_is_news_and_last_week_is_not() {
        assert_eq!(news(&order(Some("delivered"), 3, Some(1)), 0).unwrap().news, BadNews::DeliveredRecently);
        assert_eq!(news(&order(Some("delivered"), 9, Some(7)), 0), None);
    }

    #[test]
    fn a_repeat_caller_with_a_quiet_order_is_news_too() {
        assert_eq!(news(&order(Some("in_transit"), 1, None), 1).unwrap().news, BadNews::RepeatCaller);
        let nothing = news_of(None, 2, now(), &policy()).unwrap();
        assert_eq!((nothing.news, nothing.order), (BadNews::RepeatCaller, None));
        assert_eq!(news_of(None, 0, now(), &policy()), None);
    }
}
