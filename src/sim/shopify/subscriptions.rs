//! The emulated app's webhook subscriptions: what `webhookSubscriptions` lists and
//! `webhookSubscriptionCreate` / `Update` / `Delete` change. Stored only: deliveries still go to
//! the webhook target the test sets (`webhooks.rs`), whatever is subscribed.
//!
//! Shopify's rules followed (read 2026-12-04):
//! - https://shopify.dev/docs/api/admin-graphql/latest/mutations/webhookSubscriptionCreate and
//!   …/webhookSubscriptionUpdate, …/webhookSubscriptionDelete: failures are `userErrors`
//!   (`field`, `message`) with a null result, HTTP 200.
//! - An app holds one subscription per topic and address ("Address for this topic has already
//!   been taken"), and HTTP subscriptions need an https address
//!   (https://shopify.dev/docs/apps/build/webhooks/subscribe, "HTTPS endpoint"). The emulator
//!   lets `http://` through for loopback addresses only, so orderline running on this machine can
//!   be subscribed in tests and the demo; the messages' wording is the emulator's.
//! - `WebhookSubscription.callbackUrl` is the deprecated twin of `uri` (admin_2026-10.graphql).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: u64,
    /// `WebhookSubscriptionTopic`, e.g. `ORDERS_CREATE`.
    pub topic: String,
    pub uri: String,
    /// `JSON` or `XML`.
    pub format: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    pub fn gid(&self) -> String {
        format!("gid://shopify/WebhookSubscription/{}", self.id)
    }

    fn node(&self) -> Value {
        json!({
            "id": self.gid(),
            "legacyResourceId": self.id.to_string(),
            "topic": self.topic,
            "uri": self.uri,
            "callbackUrl": self.uri,
            "format": self.format,
            "createdAt": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "updatedAt": self.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "includeFields": [],
            "metafieldNamespaces": [],
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    next_id: u64,
    list: Vec<Subscription>,
    /// Mutations that changed something.
    pub(crate) changes: u64,
}

fn user_error(field: &[&str], message: &str) -> Value {
    json!({ "field": field, "message": message })
}

/// Whether Shopify would take `uri` as an HTTP webhook address (see the module comment).
fn address_problem(uri: &str) -> Option<String> {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return Some("Address is invalid".into());
    };
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        other => Some(format!("Address protocol {other}:// is not supported")),
    }
}

fn cursor_of(id: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("WebhookSubscription:{id}"))
}

fn id_of_cursor(cursor: &str) -> Option<u64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("WebhookSubscription:")?.parse().ok()
}

fn id_of_gid(gid: &str) -> Option<u64> {
    gid.strip_prefix("gid://shopify/WebhookSubscription/")?.parse().ok()
}

impl Subscriptions {
    pub(crate) fn all(&self) -> Vec<Subscription> {
        self.list.clone()
    }

    /// `webhookSubscriptions(first:, after:)`, oldest first (sortKey CREATED_AT, the default).
    pub(crate) fn page(&self, first: usize, after: Option<&str>) -> Result<Value, String> {
        let from = match after {
            None => 0,
            Some(cursor) => {
                let id = id_of_cursor(cursor).ok_or("Invalid cursor for current pagination.")?;
                self.list.iter().position(|s| s.id == id).map_or(self.list.len(), |i| i + 1)
            }
        };
        let page: Vec<&Subscription> = self.list.iter().skip(from).take(first).collect();
        let has_next = from + page.len() < self.list.len();
        let end = page.last().map(|s| cursor_of(s.id));
        Ok(json!({
            "nodes": page.iter().map(|s| s.node()).collect::<Vec<_>>(),
            "edges": page.iter().map(|s| json!({ "cursor": cursor_of(s.id), "node": s.node() })).collect::<Vec<_>>(),
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": from > 0,
                "startCursor": page.first().map(|s| cursor_of(s.id)),
                "endCursor": end,
            },
        }))
    }

    /// The address and format a `WebhookSubscriptionInput` gives (`uri`, else `callbackUrl`).
    fn input(input: &Value) -> (Option<String>, Option<String>) {
        let uri = input.get("uri").or_else(|| input.get("callbackUrl")).and_then(Value::as_str).map(str::to_string);
        let format = input.get("format").and_then(Value::as_str).map(str::to_string);
        (uri, format)
    }

    pub(crate) fn create(&mut self, topic: &str, input: &Value, now: DateTime<Utc>) -> Value {
        let fail = |errors: Vec<Value>| json!({ "webhookSubscription": null, "userErrors": errors });
        let (Some(uri), format) = Self::input(input) else {
            return fail(vec![user_error(&["webhookSubscription", "uri"], "Address can't be blank")]);
        };
        if let Some(problem) = address_problem(&uri) {
            return fail(vec![user_error(&["webhookSubscription", "uri"], &problem)]);
        }
        if self.list.iter().any(|s| s.topic == topic && s.uri == uri) {
            return fail(vec![user_error(
                &["webhookSubscription", "uri"],
                "Address for this topic has already been taken",
            )]);
        }
        self.next_id += 1;
        let subscription = Subscription {
            id: 1_000_000_000 + self.next_id,
            topic: topic.to_string(),
            uri,
            format: format.unwrap_or_else(|| "JSON".into()),
            created_at: now,
            updated_at: now,
        };
        let node = subscription.node();
        self.list.push(subscription);
        self.changes += 1;
        json!({ "webhookSubscription": node, "userErrors": [] })
    }

    pub(crate) fn update(&mut self, gid: &str, input: &Value, now: DateTime<Utc>) -> Value {
        let fail = |errors: Vec<Value>| json!({ "webhookSubscription": null, "userErrors": errors });
        let Some(index) = id_of_gid(gid).and_then(|id| self.list.iter().position(|s| s.id == id)) else {
            return fail(vec![user_error(&["id"], "Webhook subscription does not exist")]);
        };
        let (uri, format) = Self::input(input);
        if let Some(problem) = uri.as_deref().and_then(address_problem) {
            return fail(vec![user_error(&["webhookSubscription", "uri"], &problem)]);
        }
        let topic = self.list[index].topic.clone();
        if let Some(uri) = &uri
            && self.list.iter().enumerate().any(|(i, s)| i != index && s.topic == topic && &s.uri == uri)
        {
            return fail(vec![user_error(
                &["webhookSubscription", "uri"],
                "Address for this topic has already been taken",
            )]);
        }
        let s = &mut self.list[index];
        if let Some(uri) = uri {
            s.uri = uri;
        }
        if let Some(format) = format {
            s.format = format;
        }
        s.updated_at = now;
        self.changes += 1;
        json!({ "webhookSubscription": s.node(), "userErrors": [] })
    }

    pub(crate) fn delete(&mut self, gid: &str) -> Value {
        let Some(index) = id_of_gid(gid).and_then(|id| self.list.iter().position(|s| s.id == id)) else {
            return json!({
                "deletedWebhookSubscriptionId": null,
                "userErrors": [user_error(&["id"], "Webhook subscription does not exist")],
            });
        };
        let removed = self.list.remove(index);
        self.changes += 1;
        json!({ "deletedWebhookSubscriptionId": removed.gid(), "userErrors": [] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_refuses_a_second_subscription_to_one_address_and_a_plain_http_one() {
        let mut subs = Subscriptions::default();
        let now = Utc::now();
        let input = json!({ "uri": "https://line.example.com/shopify/webhooks", "format": "JSON" });
        assert_eq!(subs.create("ORDERS_CREATE", &input, now)["userErrors"], json!([]));
        let again = subs.create("ORDERS_CREATE", &input, now);
        assert!(again["webhookSubscription"].is_null());
        assert!(again["userErrors"][0]["message"].as_str().unwrap().contains("already been taken"));
        let http = subs.create("ORDERS_PAID", &json!({ "uri": "http://line.example.com/x" }), now);
        assert!(http["userErrors"][0]["message"].as_str().unwrap().contains("http://"));
        let gone = subs.delete("gid://shopify/WebhookSubscription/1");
        assert_eq!(gone["userErrors"][0]["field"], json!(["id"]));
        assert_eq!(subs.all().len(), 1);
        let page = subs.page(1, None).unwrap();
        assert_eq!(page["pageInfo"]["hasNextPage"], json!(false));
    }
}
