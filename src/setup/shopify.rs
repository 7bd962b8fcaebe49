//! `orderline setup shopify`: the app's scopes and protected customer data checked first, then
//! its webhook subscriptions made to hold exactly the topics orderline applies
//! (`payload::Topic::ALL` less the compliance topics) at `ORDERLINE_PUBLIC_URL/shopify/webhooks`,
//! JSON: the difference planned completely, printed, and applied only without `--dry-run`.
//! Compliance topics cannot be subscribed through the API: their `shopify.app.toml` lines are
//! printed instead.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Settings, VerifyPolicy};
use crate::ops::Metrics;
use crate::shopify::client::{REQUIRED_SCOPES, ShopifyClient, ShopifyError};
use crate::shopify::graphql::{API_VERSION, GqlWebhookSubscription, subscription_topic};
use crate::shopify::payload::Topic;
use crate::twilio::public_url::PublicUrl;

use crate::shopify::WEBHOOK_PATH;

/// How long each Admin API call may take.
const CALL_BUDGET: Duration = Duration::from_secs(30);

/// The topics orderline applies and subscribes to through the API: every topic the webhook
/// route processes except the compliance ones.
pub fn applied_topics() -> Vec<Topic> {
    Topic::ALL.into_iter().filter(|t| !t.is_compliance()).collect()
}

/// What must change, and what was found missing on the app.
#[derive(Debug, Clone, Default)]
pub struct ShopifyPlan {
    /// The webhook address: `ORDERLINE_PUBLIC_URL/shopify/webhooks`.
    pub uri: String,
    /// Scopes orderline needs that the app lacks (each with what is lost).
    pub missing_scopes: Vec<(&'static str, &'static str)>,
    /// Protected customer data fields Shopify withheld from the probe (`Type.field`).
    pub withheld: Vec<String>,
    pub create: Vec<Topic>,
    /// Subscriptions to point at `uri` as JSON (an earlier orderline address, or XML).
    pub update: Vec<(GqlWebhookSubscription, Topic)>,
    /// Subscriptions to remove: topics orderline does not apply at its address, or a second
    /// orderline address for a topic already subscribed.
    pub delete: Vec<GqlWebhookSubscription>,
    /// Subscriptions already right.
    pub kept: usize,
    /// Subscriptions of the app to other addresses, left alone.
    pub others: Vec<GqlWebhookSubscription>,
}

impl ShopifyPlan {
    /// True when the subscriptions need no change.
    pub fn subscriptions_in_place(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The Admin API client the settings ask for, or a message naming the settings to set.
pub fn client(settings: &Settings) -> Result<Arc<ShopifyClient>, String> {
    crate::app::shopify_client(settings, Arc::new(Metrics::new())).ok_or_else(|| {
        "the Shopify Admin API is not configured: set SHOPIFY_SHOP and SHOPIFY_CLIENT_ID + SHOPIFY_CLIENT_SECRET (the \
         Dev Dashboard app's credentials), or a legacy SHOPIFY_ACCESS_TOKEN"
            .to_string()
    })
}

fn deadline() -> Instant {
    Instant::now() + CALL_BUDGET
}

/// A client error as a message that says what to fix.
pub fn explain(error: &ShopifyError) -> String {
    match error {
        ShopifyError::Timeout | ShopifyError::Transport(_) => {
            format!("Shopify: {error}: check SHOPIFY_SHOP (or SHOPIFY_API_URL) and the network")
        }
        ShopifyError::Token(_) => format!(
            "Shopify: {error}: check SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET (the app's Settings in the Dev Dashboard)"
        ),
        _ => format!("Shopify: {error}"),
    }
}

/// Asks Shopify for the scopes, probes the protected fields, lists the subscriptions and works
/// out the difference; changes nothing.
pub async fn plan(client: &ShopifyClient, settings: &Settings) -> Result<ShopifyPlan, String> {
    let uri = PublicUrl::new(&settings.server.public_url).to(WEBHOOK_PATH);
    let missing = client.check_scopes(deadline()).await.map_err(|e| explain(&e))?;
    let missing_scopes = REQUIRED_SCOPES.iter().filter(|(s, _)| missing.contains(s)).copied().collect();
    // Protected customer data is only known from an answer that carries it: one page of
    // customers shows which fields Shopify withholds (a shop without customers shows none).
    if let Err(e) = client.customers_updated_since(None, None, deadline()).await {
        return Err(explain(&e));
    }
    let withheld = client.withheld_fields();
    let subscriptions = client.webhook_subscriptions(deadline()).await.map_err(|e| explain(&e))?;
    Ok(diff(uri, missing_scopes, withheld, subscriptions))
}

/// Whether `uri` is an orderline webhook address (this one or an earlier one).
fn is_orderline_address(uri: &str) -> bool {
    uri.trim_end_matches('/').ends_with(WEBHOOK_PATH)
}

fn diff(
    uri: String,
    missing_scopes: Vec<(&'static str, &'static str)>,
    withheld: Vec<String>,
    subscriptions: Vec<GqlWebhookSubscription>,
) -> ShopifyPlan {
    let mut plan = ShopifyPlan { uri: uri.clone(), missing_scopes, withheld, ..ShopifyPlan::default() };
    let applied = applied_topics();
    let topic_of = |s: &GqlWebhookSubscription| applied.iter().copied().find(|t| subscription_topic(*t) == s.topic);
    for topic in &applied {
        let name = subscription_topic(*topic);
        let mut of_topic: Vec<&GqlWebhookSubscription> = subscriptions.iter().filter(|s| s.topic == name).collect();
        // The one to keep: ours, else ours in XML, else an earlier orderline address.
        let exact = of_topic.iter().position(|s| s.uri == uri && s.format == "JSON");
        let reusable = exact
            .or_else(|| of_topic.iter().position(|s| s.uri == uri))
            .or_else(|| of_topic.iter().position(|s| is_orderline_address(&s.uri)));
        match reusable {
            Some(i) => {
                let chosen = of_topic.remove(i);
                if exact.is_some() {
                    plan.kept += 1;
                } else {
                    plan.update.push((chosen.clone(), *topic));
                }
            }
            None => plan.create.push(*topic),
        }
        for rest in of_topic {
            if is_orderline_address(&rest.uri) {
                plan.delete.push(rest.clone());
            } else {
                plan.others.push(rest.clone());
            }
        }
    }
    for s in subscriptions.iter().filter(|s| topic_of(s).is_none()) {
        if s.uri == uri || is_orderline_address(&s.uri) {
            plan.delete.push(s.clone());
        } else {
            plan.others.push(s.clone());
        }
    }
    plan
}

/// Creates, updates and deletes what the plan says, in that order (so a topic is never left
/// without a subscription in between). Stops at the first refusal, saying what was done.
pub async fn apply(client: &ShopifyClient, plan: &ShopifyPlan) -> Result<usize, String> {
    let mut done = 0;
    let stopped = |done: usize, what: String, e: &ShopifyError| {
        format!("{what}: {} ({done} change(s) made before it; run setup again once fixed)", explain(e))
    };
    for topic in &plan.create {
        client
            .create_webhook_subscription(&subscription_topic(*topic), &plan.uri, deadline())
            .await
            .map_err(|e| stopped(done, format!("creating {}", topic.as_str()), &e))?;
        done += 1;
    }
    for (s, topic) in &plan.update {
        client
            .update_webhook_subscription(&s.id, &plan.uri, deadline())
            .await
            .map_err(|e| stopped(done, format!("updating {}", topic.as_str()), &e))?;
        done += 1;
    }
    for s in &plan.delete {
        client
            .delete_webhook_subscription(&s.id, deadline())
            .await
            .map_err(|e| stopped(done, format!("deleting {} ({})", s.topic, s.uri), &e))?;
        done += 1;
    }
    Ok(done)
}

/// What the app lacks, one line each with where to fix it.
pub fn access_problems(plan: &ShopifyPlan, verify: VerifyPolicy) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .missing_scopes
        .iter()
        .map(|(scope, why)| {
            format!(
                "missing scope {scope}: {why}. Add it to the app's access scopes (Dev Dashboard → the app → \
                 Versions → Access scopes, or `scopes` under [access_scopes] in shopify.app.toml), release the \
                 version and accept it on the store"
            )
        })
        .collect();
    for field in &plan.withheld {
        let optional = field.to_ascii_lowercase().contains("email")
            || (verify != VerifyPolicy::PostalCode && field.to_ascii_lowercase().contains("address"));
        lines.push(format!(
            "Shopify withholds {field}{}: request it under Protected customer data access in the app's Dev Dashboard \
             (or Partner Dashboard) and wait for approval",
            if optional { " (optional)" } else { "" }
        ));
    }
    lines
}

/// The plan as lines for the terminal.
pub fn describe(plan: &ShopifyPlan) -> Vec<String> {
    let mut lines = Vec::new();
    if plan.subscriptions_in_place() {
        lines.push(format!("Shopify webhook subscriptions: nothing to change ({} topics at {})", plan.kept, plan.uri));
    } else {
        let n = plan.create.len() + plan.update.len() + plan.delete.len();
        lines.push(format!("Shopify webhook subscriptions: {n} to change ({} already right)", plan.kept));
        for topic in &plan.create {
            lines.push(format!("  + {} → {} (JSON)", topic.as_str(), plan.uri));
        }
        for (s, topic) in &plan.update {
            lines.push(format!("  ~ {}: {} ({}) → {} (JSON)", topic.as_str(), s.uri, s.format, plan.uri));
        }
        for s in &plan.delete {
            lines.push(format!("  - {} at {} (orderline does not apply it there)", s.topic, s.uri));
        }
    }
    for s in &plan.others {
        lines.push(format!("  = {} at {} left alone (not an orderline address)", s.topic, s.uri));
    }
    lines
}

/// The `shopify.app.toml` lines for the compliance topics, which only the app's configuration
/// can subscribe ("Mandatory compliance webhooks … subscribe using your app configuration file",
/// https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance, read 2026-12-04).
pub fn compliance_toml(uri: &str) -> String {
    let topics: Vec<String> =
        Topic::ALL.into_iter().filter(|t| t.is_compliance()).map(|t| format!("\"{}\"", t.as_str())).collect();
    format!(
        "[webhooks]\napi_version = \"{API_VERSION}\"\n\n[[webhooks.subscriptions]]\ncompliance_topics = [{}]\nuri = \"{uri}\"",
        topics.join(", ")
    )
}

/// `orderline setup shopify [--dry-run]`.
pub async fn run(settings: &Settings, dry_run: bool) -> Result<ExitCode, String> {
    let client = client(settings)?;
    super::check_public_url(settings).await?;
    let plan = plan(&client, settings).await?;
    let problems = access_problems(&plan, settings.ivr.verify);
    for line in &problems {
        println!("✗ {line}");
    }
    for line in describe(&plan) {
        println!("{line}");
    }
    println!(
        "Compliance topics cannot be subscribed through the API; put these lines in shopify.app.toml and run `shopify app deploy`:"
    );
    println!();
    for line in compliance_toml(&plan.uri).lines() {
        println!("    {line}");
    }
    println!();
    if !plan.missing_scopes.is_empty() {
        return Err(format!(
            "the app lacks {} scope(s) orderline needs: nothing was changed; add them (see above) and run setup again",
            plan.missing_scopes.len()
        ));
    }
    if dry_run {
        println!("dry run: nothing changed");
    } else if !plan.subscriptions_in_place() {
        let done = apply(&client, &plan).await?;
        println!("applied: {done} change(s); Shopify now delivers every topic orderline applies to {}", plan.uri);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: u32, topic: &str, uri: &str, format: &str) -> GqlWebhookSubscription {
        GqlWebhookSubscription {
            id: format!("gid://shopify/WebhookSubscription/{id}"),
            topic: topic.into(),
            uri: uri.into(),
            format: format.into(),
        }
    }

    #[test]
    fn the_diff_creates_updates_deletes_and_leaves_others_alone() {
        let ours = "https://line.example.com/shopify/webhooks";
        let old = "https://old.example.com/shopify/webhooks";
        let subscriptions = vec![
            sub(1, "ORDERS_CREATE", ours, "JSON"),
            sub(2, "ORDERS_UPDATED", old, "JSON"),
            sub(3, "ORDERS_PAID", ours, "XML"),
            sub(4, "PRODUCTS_UPDATE", ours, "JSON"),
            sub(5, "PRODUCTS_UPDATE", "https://erp.example.com/hooks", "JSON"),
            sub(6, "ORDERS_CREATE", old, "JSON"),
        ];
        let plan = diff(ours.into(), vec![], vec![], subscriptions);
        assert_eq!(plan.kept, 1);
        let updated: Vec<&str> = plan.update.iter().map(|(s, _)| s.id.as_str()).collect();
        assert_eq!(updated, ["gid://shopify/WebhookSubscription/2", "gid://shopify/WebhookSubscription/3"]);
        let deleted: Vec<&str> = plan.delete.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(deleted, ["gid://shopify/WebhookSubscription/6", "gid://shopify/WebhookSubscription/4"]);
        assert_eq!(plan.others.len(), 1);
        assert_eq!(plan.create.len(), applied_topics().len() - 3);
        assert!(!plan.create.iter().any(|t| t.is_compliance()));
    }

    #[test]
    fn the_compliance_lines_name_the_three_topics() {
        let toml = compliance_toml("https://x.example/shopify/webhooks");
        assert!(toml.contains(r#"compliance_topics = ["customers/redact", "shop/redact", "customers/data_request"]"#));
        assert!(toml.contains("uri = \"https://x.example/shopify/webhooks\""));
    }
}
