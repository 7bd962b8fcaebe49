//! Destructive topics (`customers/delete`, `customers/redact`, `shop/redact`, `orders/delete`)
//! at intake. Shopify's HMAC covers the body only, not the `X-Shopify-Topic` header
//! (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook,
//! read 2026-12-04), so a captured signed body could be replayed under one of these topics.
//! Such a delivery is accepted only when the body has exactly that topic's shape and names the
//! configured shop (SHOPIFY_SHOP, in `X-Shopify-Shop-Domain` and, for the redact topics, in the
//! payload's `shop_domain`). Anything else is a dead letter with the reason, never applied.
//! Where orderline has an Admin API client, a delete that passed those checks is also confirmed
//! with Shopify before it is stored to be applied ([`confirm`]): `customer(id:)` / `order(id:)`
//! must answer null (the record is really gone), else the delivery is a dead letter.
//! Decides only; storing and applying are `intake`'s and the processor's.
//!
//! The shapes are Shopify's published sample payloads (webhook reference,
//! https://shopify.dev/docs/api/webhooks?reference=toml, topics `orders/delete` and
//! `customers/delete`, API 2025-01 and later; privacy compliance webhooks,
//! https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance, `customers/redact` and
//! `shop/redact`; as tests/fixtures/shopify/README.md records): a delete carries the ID and
//! nothing that describes the record, a redact carries the shop and whom to erase.

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::client::{ShopifyClient, ShopifyError};
use super::graphql::Operation;
use super::payload::Topic;
use crate::domain::ShopifyId;

/// The keys each destructive topic's payload may carry; `required` must be there.
struct Shape {
    allowed: &'static [&'static str],
    required: &'static [&'static str],
    /// The `admin_graphql_api_id` kind, where the payload names one.
    gid_kind: Option<&'static str>,
}

fn shape(topic: Topic) -> Option<Shape> {
    match topic {
        Topic::OrdersDelete => {
            Some(Shape { allowed: &["id", "admin_graphql_api_id"], required: &["id"], gid_kind: Some("Order") })
        }
        Topic::CustomersDelete => Some(Shape {
            allowed: &[
                "id",
                "phone",
                "addresses",
                "tax_exemptions",
                "email_marketing_consent",
                "sms_marketing_consent",
                "admin_graphql_api_id",
            ],
            required: &["id"],
            gid_kind: Some("Customer"),
        }),
        Topic::CustomersRedact => Some(Shape {
            allowed: &["shop_id", "shop_domain", "customer", "orders_to_redact"],
            required: &["shop_id", "shop_domain", "customer"],
            gid_kind: None,
        }),
        Topic::ShopRedact => {
            Some(Shape { allowed: &["shop_id", "shop_domain"], required: &["shop_id", "shop_domain"], gid_kind: None })
        }
        _ => None,
    }
}

/// True for the topics that delete or erase.
pub fn is_destructive(topic: Topic) -> bool {
    shape(topic).is_some()
}

/// Checks a destructive delivery. `header_shop` is `X-Shopify-Shop-Domain` (lowercased),
/// `configured` is SHOPIFY_SHOP. Err holds the dead letter's reason.
pub fn check(topic: Topic, header_shop: &str, configured: Option<&str>, body: &[u8]) -> Result<(), String> {
    let Some(shape) = shape(topic) else { return Ok(()) };
    let name = topic.as_str();
    let Some(configured) = configured else {
        return Err(format!("{name} is not applied while SHOPIFY_SHOP is not set: the shop cannot be checked"));
    };
    if header_shop != configured {
        return Err(format!(
            "{name} for shop {header_shop:?} (X-Shopify-Shop-Domain), not SHOPIFY_SHOP {configured:?}"
        ));
    }
    let object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        _ => return Err(format!("{name} payload is not a JSON object")),
    };
    let mut foreign: Vec<&str> =
        object.keys().map(String::as_str).filter(|k| !shape.allowed.contains(k)).take(5).collect();
    if !foreign.is_empty() {
        foreign.sort_unstable();
        return Err(format!(
            "{name} payload has fields a {name} never carries ({}): not applied (a body signed for another topic?)",
            foreign.join(", ")
        ));
    }
    if let Some(missing) = shape.required.iter().find(|k| !object.contains_key(**k)) {
        return Err(format!("{name} payload has no {missing}"));
    }
    if let Some(id) = object.get("id") {
        let id = id.as_u64().ok_or_else(|| format!("{name} payload's id is not a positive integer"))?;
        if let (Some(kind), Some(gid)) = (shape.gid_kind, object.get("admin_graphql_api_id")) {
            let expected = format!("gid://shopify/{kind}/{id}");
            if gid.as_str() != Some(expected.as_str()) {
                return Err(format!("{name} payload's admin_graphql_api_id is not {expected}"));
            }
        }
    }
    if let Some(domain) = object.get("shop_domain") {
        let domain = domain.as_str().map(str::to_ascii_lowercase).unwrap_or_default();
        if domain != configured {
            return Err(format!("{name} payload names shop {domain:?}, not SHOPIFY_SHOP {configured:?}"));
        }
    }
    if topic == Topic::CustomersRedact {
        let customer = object.get("customer").and_then(Value::as_object);
        if customer.and_then(|c| c.get("id")).and_then(Value::as_u64).is_none() {
            return Err(format!("{name} payload names no customer id"));
        }
    }
    Ok(())
}

/// Confirms a delete that passed [`check`] with Shopify: `Ok(None)` when Shopify no longer holds
/// the record (or the topic deletes nothing Shopify could still show: the redact topics), `Ok(Some
/// (reason))` when it still does (a dead letter: the body was signed for something else), `Err`
/// when Shopify could not be asked before `deadline` (the delivery is refused with a 503, so
/// Shopify retries it; nothing is stored).
pub async fn confirm(
    client: &ShopifyClient,
    topic: Topic,
    body: &[u8],
    deadline: Instant,
) -> Result<Option<String>, ShopifyError> {
    let (operation, kind) = match topic {
        Topic::CustomersDelete => (Operation::CustomerExists, "customer"),
        Topic::OrdersDelete => (Operation::OrderExists, "order"),
        _ => return Ok(None),
    };
    let id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_i64))
        .filter(|id| *id > 0)
        .map(ShopifyId)
        .ok_or_else(|| ShopifyError::Decode(format!("{} payload has no id", topic.as_str())))?;
    Ok(client.still_exists(operation, id, deadline).await?.then(|| {
        format!(
            "{} for {kind} {id}, but Shopify still has {kind} {id}: not applied (a body signed for another record?)",
            topic.as_str()
        )
    }))
}

/// Whether `orderline dlq replay` may re-apply a dead letter: a destructive one must pass the
/// same checks it would at intake today (SHOPIFY_SHOP, the shape and, with a client, Shopify's
/// confirmation), so a delivery refused for them is never applied by a replay of every dead
/// letter. `None`: replay it; `Some(reason)`: keep it dead. Other topics are always replayed.
pub async fn replayable(
    topic: &str,
    shop: &str,
    configured: Option<&str>,
    body: Option<&[u8]>,
    client: Option<&ShopifyClient>,
) -> Option<String> {
    let topic = Topic::parse(topic).filter(|t| is_destructive(*t))?;
    let Some(body) = body else {
        return Some(format!("{} has no body kept: it cannot be checked, so it is not applied", topic.as_str()));
    };
    if let Err(reason) = check(topic, &shop.to_ascii_lowercase(), configured, body) {
        return Some(reason);
    }
    let client = client?;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    match confirm(client, topic, body, deadline).await {
        Ok(still_there) => still_there,
        Err(e) => Some(format!(
            "{} could not be confirmed with Shopify ({e}): replay it once Shopify answers",
            topic.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "orderline-demo.myshopify.com";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/shopify/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn shopifys_own_payloads_pass() {
        for (topic, file) in [
            (Topic::OrdersDelete, "order_delete.json"),
            (Topic::CustomersDelete, "customer_delete.json"),
            (Topic::CustomersRedact, "customers_redact.json"),
            (Topic::ShopRedact, "shop_redact.json"),
        ] {
            assert_eq!(check(topic, SHOP, Some(SHOP), &fixture(file)), Ok(()), "{file}");
        }
    }

    #[test]
    fn a_body_signed_for_another_topic_is_refused_under_a_destructive_one() {
        let create = fixture("customer_create.json");
        for topic in [Topic::CustomersDelete, Topic::OrdersDelete, Topic::CustomersRedact, Topic::ShopRedact] {
            let refused = check(topic, SHOP, Some(SHOP), &create).unwrap_err();
            assert!(refused.contains("never carries"), "{topic:?}: {refused}");
        }
        // A customer delete's body as an order delete: the kind in its GraphQL ID gives it away.
        let refused = check(Topic::OrdersDelete, SHOP, Some(SHOP), &fixture("customer_delete.json")).unwrap_err();
        assert!(refused.contains("tax_exemptions"), "{refused}");
        let gid = br#"{"id": 5, "admin_graphql_api_id": "gid://shopify/Order/5"}"#;
        assert!(check(Topic::CustomersDelete, SHOP, Some(SHOP), gid).unwrap_err().contains("gid://shopify/Customer/5"));
    }

    #[test]
    fn another_shop_or_no_configured_shop_is_refused() {
        let body = fixture("shop_redact.json");
        assert!(check(Topic::ShopRedact, "other.myshopify.com", Some(SHOP), &body).unwrap_err().contains("X-Shopify"));
        assert!(check(Topic::ShopRedact, SHOP, None, &body).unwrap_err().contains("SHOPIFY_SHOP is not set"));
        let other = br#"{"shop_id": 1, "shop_domain": "other.myshopify.com"}"#;
        assert!(check(Topic::ShopRedact, SHOP, Some(SHOP), other).unwrap_err().contains("names shop"));
        // Other topics are not this module's business.
        assert_eq!(check(Topic::CustomersCreate, "x", None, b"not json"), Ok(()));
    }
}
