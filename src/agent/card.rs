//! A call's context as an agent sees it: who is calling, their recent orders, whether they were
//! verified, what they did in the menu, how fresh the data is. Built from the call record and
//! the store; served as JSON by `/api/calls/{CallSid}` and pushed on the agent feed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AgentDesk;
use super::api::{CustomerJson, customers_json};
use super::summary::plain_words;
use crate::domain::mask_phone;
use crate::domain::{Event, EventKind};
use crate::ivr::order_status::OrderFacts;
use crate::lookup::CallerRecord;
use crate::store::{CallEventRow, StoreError, is_final_status};

#[derive(Debug, Clone, Serialize)]
pub struct CallCard {
    pub call_sid: String,
    /// The caller's number as Twilio gave it, and masked for the closed card.
    pub from: String,
    pub from_masked: String,
    pub to: Option<String>,
    /// Twilio's status: in-progress until a final status callback (completed, busy, …).
    pub status: String,
    pub in_progress: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_s: Option<i32>,
    /// `postal_code`, `caller_id`, `order_number`, `not_required`, `failed`, or none yet.
    pub verification: Option<String>,
    /// Why the call went to a person (`asked`, `order_not_found`, `not_verified`,
    /// `verification_locked` (too many wrong postal codes: the path says which limit), `fallback`,
    /// …), if it did.
    pub transfer: Option<String>,
    pub customer: Option<CustomerJson>,
    /// The customer's recent orders in plain words, newest first.
    pub orders: Vec<OrderSummary>,
    /// Shopify admin links.
    pub customer_admin_url: Option<String>,
    /// What the caller did: each step and key, in order.
    pub path: Vec<PathStep>,
    pub keys: Vec<String>,
    /// Where the caller's data came from at the start of the call (cache, store, shopify,
    /// stale, unknown, withheld) and when it was last confirmed against Shopify.
    pub source: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Texts sent during the call (the tracking link, key 4), with Twilio's latest status.
    pub sms: Vec<SmsSummary>,
    /// The call in plain words (`agent::summary`): heard, asked for, verified, texted, put
    /// through, left a voicemail.
    pub summary: Vec<String>,
    /// Messages the caller left during the call.
    pub voicemails: Vec<super::voicemail::VoicemailJson>,
    /// The call-back the caller asked for from the queue, if they did.
    pub callback: Option<super::callbacks::CallbackJson>,
    /// Bad news first: what went wrong (`stalled: no carrier scan for 6 days (#1016)`), shown
    /// highlighted.
    pub bad_news: Option<String>,
}

/// A text as the card shows it: never the whole number.
#[derive(Debug, Clone, Serialize)]
pub struct SmsSummary {
    pub order_id: String,
    /// What the text carried: `tracking` (key 4) or `return_label` (key 6).
    pub kind: String,
    /// `requested` (Twilio not yet answered), Twilio's status (`queued`, `sent`, `delivered`,
    /// `undelivered`, `failed`), or `failed` when Twilio refused it or did not answer.
    pub status: String,
    pub failed: bool,
    /// Twilio's error code, when it gave one.
    pub error_code: Option<i32>,
    pub to: String,
    pub message_sid: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderSummary {
    pub id: String,
    pub name: String,
    pub state: String,
    pub day: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub total: Option<String>,
    pub currency: Option<String>,
    pub refunds: u16,
    /// The order's returns and refund in plain words ("return approved, label with UPS, not
    /// back yet", "refunded $21.50 on Tuesday, November 17"); empty when there are none.
    pub returns: Vec<String>,
    pub admin_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathStep {
    pub step: i32,
    pub kind: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// The customer's record: from the caller cache when it holds the caller's number (the usual
/// case, and no query), else from the store. Never asks Shopify: showing a call is not a reason
/// to spend the shop's API budget.
async fn customer_record(
    desk: &AgentDesk,
    shop: &str,
    from: Option<&str>,
    customer_id: i64,
) -> Result<Option<CallerRecord>, StoreError> {
    if let Some(from) = from
        && let Some(record) = desk.lookup.cached(from).await
        && let Some(customer) = record.customers.iter().find(|c| c.id == customer_id)
    {
        return Ok(Some(CallerRecord { customers: Box::new([customer.clone()]), confirmed_at: record.confirmed_at }));
    }
    let parts = desk.store.caller_parts(shop, &[customer_id], 3).await?;
    Ok((!parts.is_empty()).then(|| CallerRecord::from_parts(&parts)))
}

/// A tracking URL as Shopify holds it is whatever the merchant or an app typed: only an
/// absolute `http(s)` address is passed on as a link (never `javascript:`, `data:` …).
pub fn web_link(url: &str) -> Option<&str> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let web = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http");
    let clean = !url.chars().any(|c| c.is_control() || c.is_whitespace());
    (web && clean && !rest.is_empty()).then_some(url)
}

/// The card for a call, or `None` if no such call is recorded.
pub async fn call_card(desk: &AgentDesk, call_sid: &str) -> Result<Option<CallCard>, StoreError> {
    let store = &desk.store;
    let Some(call) = store.call(call_sid).await? else { return Ok(None) };
    let events = store.call_events(call_sid).await?;
    let shop = desk.settings.shopify.shop.clone().unwrap_or_default();
    let admin = |kind: &str, id: i64| (!shop.is_empty()).then(|| format!("https://{shop}/admin/{kind}/{id}"));
    let record = match call.customer_id {
        Some(id) => customer_record(desk, &shop, call.from_e164.as_deref(), id).await?,
        None => None,
    };
    let tz = desk.settings.handoff.business_hours.timezone();
    let orders: Vec<OrderSummary> = record
        .iter()
        .flat_map(|r| r.customers.iter())
        .flat_map(|c| c.orders.iter())
        .map(|o| {
            let facts = OrderFacts::of(o, tz);
            let tracking_url = o
                .fulfillments
                .iter()
                .rev()
                .find_map(|f| f.tracking_url.as_deref())
                .and_then(web_link)
                .map(str::to_string);
            OrderSummary {
                id: o.id.to_string(),
                name: facts.name,
                state: facts.state.as_str().to_string(),
                day: facts.day,
                carrier: facts.carrier,
                tracking_number: facts.tracking_number,
                tracking_url,
                total: facts.total,
                currency: facts.currency,
                refunds: facts.refunds,
                returns: crate::ivr::returns::card_words(o, tz),
                admin_url: admin("orders", o.id),
            }
        })
        .collect();
    let customer = record.as_ref().and_then(|r| customers_json(r).into_iter().next());
    let is = |e: &CallEventRow, kind: EventKind| e.kind == kind.as_str();
    let source = events.iter().find(|e| is(e, EventKind::Lookup)).map(|e| e.detail.clone());
    let bad_news = events.iter().find(|e| is(e, EventKind::BadNews)).map(|e| e.detail.clone());
    let keys = events
        .iter()
        .filter(|e| is(e, EventKind::Key) && e.detail != Event::Key(None).detail())
        .map(|e| e.detail.clone())
        .collect();
    let sms: Vec<SmsSummary> = store
        .sms_of_call(call_sid)
        .await?
        .into_iter()
        .map(|m| SmsSummary {
            order_id: m.order_id.to_string(),
            kind: m.kind,
            failed: matches!(m.status.as_str(), "failed" | "undelivered"),
            status: m.status,
            error_code: m.error_code,
            to: mask_phone(&m.to_number),
            message_sid: m.message_sid,
            at: m.updated_at.0,
        })
        .collect();
    let voicemails: Vec<super::voicemail::VoicemailJson> =
        store.voicemails_of_call(call_sid).await?.into_iter().map(Into::into).collect();
    let mut summary = plain_words(&events, call.verification.as_deref(), call.transfer.as_deref(), &orders, &sms);
    summary.extend(voicemails.iter().map(super::voicemail::sentence));
    let callback: Option<super::callbacks::CallbackJson> = store.callback(call_sid).await?.map(Into::into);
    summary.extend(callback.iter().map(super::callbacks::sentence));
    let path =
        events.into_iter().map(|e| PathStep { step: e.step, kind: e.kind, detail: e.detail, at: e.at.0 }).collect();
    Ok(Some(CallCard {
        call_sid: call.call_sid,
        from_masked: mask_phone(&call.from_raw),
        from: call.from_raw,
        to: call.to_number,
        in_progress: !is_final_status(&call.status),
        status: call.status,
        started_at: call.started_at.0,
        ended_at: call.ended_at.map(|t| t.0),
        duration_s: call.duration_s,
        verification: call.verification,
        transfer: call.transfer,
        customer_admin_url: call.customer_id.and_then(|id| admin("customers", id)),
        customer,
        orders,
        path,
        keys,
        source,
        confirmed_at: record.map(|r| r.confirmed_at()),
        sms,
        summary,
        voicemails,
        callback,
        bad_news,
    }))
}

#[cfg(test)]
mod tests {
    use super::web_link;

    #[test]
    fn only_http_and_https_tracking_urls_are_links() {
        assert_eq!(web_link("https://www.ups.com/track?tracknum=1Z"), Some("https://www.ups.com/track?tracknum=1Z"));
        assert_eq!(web_link("HTTP://carrier.example/1"), Some("HTTP://carrier.example/1"));
        for bad in
            ["javascript:alert(1)", "JavaScript://%0aalert(1)", "data:text/html,x", "//evil", "ups.com/1", "https://"]
        {
            assert_eq!(web_link(bad), None, "{bad}");
        }
    }
}
