//! Runs a validated Admin GraphQL document against the emulated shop with apollo-compiler's
//! executor, so the answer holds exactly the fields the document selects (aliases, fragments,
//! nulls propagated as the GraphQL spec says). Protected customer data the app is not approved
//! for comes back null with an `ACCESS_DENIED` error per field, as Shopify does (HTTP 200). Never
//! charges cost or checks tokens (server.rs does). A field the emulator's records do not hold is
//! null when the schema allows it, else an error naming the field: never an invented value.

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::Operation as GqlOperation;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::validation::Valid;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::ProtectedData;
use super::store::{Cmp, Store, Term, decode_cursor, parse_search};
use crate::shopify::client::ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS;
use crate::shopify::graphql::{GqlCustomer, GqlOrder, Nodes, PageInfo};
use crate::shopify::payload::ShopifyOrder;
use crate::shopify::schema::{self, PROTECTED_DIRECTIVE};

/// Shopify's message for a protected field the app is not approved for (the shape reported in
/// Shopify/shopify-api-js#748: "This app is not approved to access the MailingAddress object.").
pub(crate) const NOT_APPROVED: &str = "This app is not approved to access the";

/// What the shop shows to this app.
pub(crate) struct Context<'a> {
    pub(crate) store: &'a Store,
    pub(crate) redacted: &'a [ProtectedData],
    pub(crate) scopes: &'a [String],
    /// The app's webhook subscriptions (the one thing a mutation here changes).
    pub(crate) subscriptions: &'a std::sync::Mutex<super::subscriptions::Subscriptions>,
    /// The shop's bulk operations.
    pub(crate) bulk: &'a std::sync::Mutex<super::bulk::BulkOps>,
    /// The server's base URL as this request reached it (bulk results are served there).
    pub(crate) base_url: &'a str,
}

impl Context<'_> {
    /// The oldest `created_at` of an order the app may see: without `read_all_orders`, orders
    /// created more than 60 days ago are absent from every answer (`orders`, `order(id:)`,
    /// `Customer.orders`), as the Order object's documentation says
    /// (client::ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS). `None`: every order.
    fn orders_visible_from(&self) -> Option<DateTime<Utc>> {
        let all = self.scopes.iter().any(|s| s == "read_all_orders");
        (!all).then(|| Utc::now() - ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS)
    }

    fn may_see(&self, order: &ShopifyOrder) -> bool {
        self.orders_visible_from().is_none_or(|from| order.created_at >= from)
    }
}

/// Runs `operation` of `document`; the answer is Shopify's `{"data", "errors"}`.
pub(crate) fn execute(
    context: &Context<'_>,
    document: &Valid<ExecutableDocument>,
    operation: &GqlOperation,
    variables: &Value,
) -> Value {
    let variables: JsonMap = serde_json_bytes::from_value(to_bytes(variables)).unwrap_or_default();
    let execution = Execution::new(schema::admin(), document).operation(operation).raw_variable_values(&variables);
    // `QueryRoot` or `Mutation` (the extract's `schema { query: QueryRoot mutation: Mutation }`).
    let root = Object { ty: operation.object_type().as_str(), value: Value::Null, context };
    let mut answer = match execution.execute_sync(&root) {
        Ok(response) => serde_json::to_value(&response).unwrap_or_default(),
        Err(e) => json!({ "errors": [{ "message": e.message().to_string() }] }),
    };
    // Shopify names the code of a protected field refusal; apollo's field errors carry only text.
    if let Some(errors) = answer.get_mut("errors").and_then(Value::as_array_mut) {
        for error in errors {
            // apollo prefixes resolver messages with "resolver error: "; Shopify's are bare.
            let message = error["message"].as_str().unwrap_or_default();
            if let Some(bare) = message.strip_prefix("resolver error: ") {
                error["message"] = json!(bare);
            }
            if error["message"].as_str().is_some_and(|m| m.starts_with(NOT_APPROVED)) {
                error["extensions"] = json!({ "code": "ACCESS_DENIED" });
            }
        }
    }
    answer
}

fn to_bytes(value: &Value) -> JsonValue {
    serde_json_bytes::to_value(value).unwrap_or(JsonValue::Null)
}

struct Object<'a> {
    ty: &'a str,
    value: Value,
    context: &'a Context<'a>,
}

fn error(message: String) -> FieldError {
    FieldError { message }
}

fn argument<'i>(info: &'i ResolveInfo<'_>, name: &str) -> Option<&'i JsonValue> {
    info.arguments().get(name).filter(|v| !v.is_null())
}

fn first(info: &ResolveInfo<'_>) -> Option<usize> {
    argument(info, "first").and_then(JsonValue::as_i64).map(|n| n.max(0) as usize)
}

impl<'a> Object<'a> {
    fn resolve_value(&self, info: &ResolveInfo<'a>, value: Value) -> ResolvedValue<'a> {
        let ty = schema_type_name(info);
        match value {
            Value::Object(_) => ResolvedValue::object(Object { ty, value, context: self.context }),
            Value::Array(items) => {
                let context = self.context;
                let limit = first(info).unwrap_or(usize::MAX);
                ResolvedValue::List(Box::new(items.into_iter().take(limit).map(move |item| {
                    Ok(match item {
                        Value::Object(_) => ResolvedValue::object(Object { ty, value: item, context }),
                        leaf => ResolvedValue::leaf(to_bytes(&leaf)),
                    })
                })))
            }
            leaf => ResolvedValue::leaf(to_bytes(&leaf)),
        }
    }

    fn root(&self, info: &ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        let store = self.context.store;
        let query = argument(info, "query").and_then(JsonValue::as_str).unwrap_or("");
        let mut terms: Vec<Term> = parse_search(query).map_err(error)?;
        let after = match argument(info, "after").and_then(JsonValue::as_str) {
            None => None,
            Some(cursor) => {
                Some(decode_cursor(cursor).ok_or_else(|| error("Invalid cursor for current pagination.".into()))?)
            }
        };
        let by_update = argument(info, "sortKey").and_then(JsonValue::as_str) == Some("UPDATED_AT") || after.is_some();
        let limit = first(info).ok_or_else(|| error("you must provide one of first or last".into()))?;
        let connection = |nodes: Vec<Value>, page_info: Option<PageInfo>| json!({ "nodes": nodes, "pageInfo": page_info.unwrap_or(PageInfo { has_next_page: false, end_cursor: None }) });
        let value = match info.field_name() {
            "customers" => {
                if let Some(term) = terms.iter().find(|t| !t.applies_to_customers()) {
                    return Err(error(format!("the emulator cannot filter customers by {term:?}")));
                }
                if by_update {
                    let page = store.customer_page(&terms, after, limit);
                    let nodes = page.nodes.iter().map(|c| json!(GqlCustomer::from_record(c))).collect();
                    connection(nodes, Some(PageInfo { has_next_page: page.has_next_page, end_cursor: page.end_cursor }))
                } else {
                    let nodes = store
                        .search_customers(&terms, limit)
                        .iter()
                        .map(|c| json!(GqlCustomer::from_record(c)))
                        .collect();
                    connection(nodes, None)
                }
            }
            "orders" => {
                if let Some(term) = terms.iter().find(|t| !t.applies_to_orders()) {
                    return Err(error(format!("the emulator cannot filter orders by {term:?}")));
                }
                terms.extend(self.context.orders_visible_from().map(|from| Term::CreatedAt(Cmp::Ge, from)));
                if by_update {
                    let page = store.order_page(&terms, after, limit);
                    let nodes = page.nodes.iter().map(|o| json!(GqlOrder::from_record(o, true))).collect();
                    connection(nodes, Some(PageInfo { has_next_page: page.has_next_page, end_cursor: page.end_cursor }))
                } else {
                    let nodes = store
                        .search_orders(&terms, limit)
                        .iter()
                        .map(|o| json!(GqlOrder::from_record(o, true)))
                        .collect();
                    connection(nodes, None)
                }
            }
            other => return Err(error(format!("the emulator does not answer QueryRoot.{other}"))),
        };
        Ok(self.resolve_value(info, value))
    }
}

/// The record a global ID names, with its GraphQL type: orders and customers (the only nodes the
/// emulator holds); None for any other ID or one the shop does not hold.
/// Orders too old for the app to see are null, as in `order(id:)`.
fn node(context: &Context<'_>, gid: &str) -> Option<(&'static str, Value)> {
    use crate::domain::ShopifyId;
    if let Some(id) = gid.strip_prefix("gid://shopify/Order/").and_then(ShopifyId::parse) {
        let order = context.store.order(id).filter(|o| context.may_see(o))?;
        return Some(("Order", json!(GqlOrder::from_record(&order, true))));
    }
    let id = gid.strip_prefix("gid://shopify/Customer/").and_then(ShopifyId::parse)?;
    context.store.customer(id).map(|c| ("Customer", json!(GqlCustomer::from_record(c))))
}

/// The named type of the field being resolved (object types only in the extract's paths).
fn schema_type_name<'a>(info: &ResolveInfo<'a>) -> &'a str {
    match info.field_definition().ty.inner_named_type().as_str() {
        // A union resolves to its member: `ReverseDeliveryDeliverable` has one in Admin 2026-10
        // (tests/fixtures/shopify/admin_2026-10.graphql).
        "ReverseDeliveryDeliverable" => "ReverseDeliveryShippingDeliverable",
        other => other,
    }
}

impl<'a> ObjectValue for Object<'a> {
    fn type_name(&self) -> &str {
        self.ty
    }

    fn resolve_field<'b>(&'b self, info: &'b ResolveInfo<'b>) -> Result<ResolvedValue<'b>, FieldError> {
        let name = info.field_name();
        if let Some(protected) = info.field_definition().directives.get(PROTECTED_DIRECTIVE) {
            let category = protected.specified_argument_by_name("field").and_then(|v| v.as_str()).unwrap_or("");
            if self.context.redacted.iter().any(|p| p.as_str() == category) {
                return Err(error(format!(
                    "{NOT_APPROVED} {}.{name} field. See https://shopify.dev/docs/apps/launch/protected-customer-data for more details.",
                    self.ty
                )));
            }
        }
        let this: &'b Object<'b> = self;
        match (self.ty, name) {
            ("QueryRoot", "currentAppInstallation") => {
                let scopes: Vec<Value> = self.context.scopes.iter().map(|s| json!({ "handle": s })).collect();
                return Ok(this.resolve_value(info, json!({ "accessScopes": scopes })));
            }
            // customer(id:) / order(id:): the record, or null for an ID the shop does not hold
            // (https://shopify.dev/docs/api/admin-graphql/latest/queries/customer and
            // .../queries/order, read 2026-12-04).
            ("QueryRoot", "customer") | ("QueryRoot", "order") => {
                let id = argument(info, "id").and_then(JsonValue::as_str).unwrap_or("");
                let kind = if name == "customer" { "Customer" } else { "Order" };
                // orderline sends only IDs it built (graphql::gid); the emulator answers null for
                // any other, claiming nothing about Shopify's answer to a malformed one.
                let found = node(self.context, id).filter(|(ty, _)| *ty == kind);
                return Ok(match found {
                    Some((ty, value)) => ResolvedValue::object(Object { ty, value, context: self.context }),
                    None => ResolvedValue::null(),
                });
            }
            // nodes(ids:): one entry per ID, null for one the shop does not hold
            // (https://shopify.dev/docs/api/admin-graphql/latest/queries/nodes, read 2026-12-04);
            // more than 250 IDs is an error ("Input arguments that accept an array have a maximum
            // size of 250", https://shopify.dev/docs/api/usage/limits, "Input limits").
            ("QueryRoot", "nodes") => {
                let ids = argument(info, "ids").and_then(JsonValue::as_array).cloned().unwrap_or_default();
                if ids.len() > crate::shopify::graphql::MAX_IDS {
                    // The docs publish the limit, not the error's text: this one is ours.
                    return Err(error(format!(
                        "ids holds {} items; input arrays hold at most {}",
                        ids.len(),
                        crate::shopify::graphql::MAX_IDS
                    )));
                }
                let context = self.context;
                return Ok(ResolvedValue::List(Box::new(ids.into_iter().map(move |id| {
                    Ok(match node(context, id.as_str().unwrap_or("")) {
                        Some((ty, value)) => ResolvedValue::object(Object { ty, value, context }),
                        None => ResolvedValue::null(),
                    })
                }))));
            }
            // The app's webhook subscriptions and their mutations (sim/shopify/subscriptions.rs).
            ("QueryRoot", "webhookSubscriptions") => {
                let limit = first(info).ok_or_else(|| error("you must provide one of first or last".into()))?;
                let after = argument(info, "after").and_then(JsonValue::as_str);
                let page = super::lock(self.context.subscriptions).page(limit, after).map_err(error)?;
                return Ok(this.resolve_value(info, page));
            }
            ("Mutation", "webhookSubscriptionCreate" | "webhookSubscriptionUpdate" | "webhookSubscriptionDelete") => {
                let text = |name: &str| argument(info, name).and_then(JsonValue::as_str).unwrap_or("").to_string();
                let input = argument(info, "webhookSubscription")
                    .and_then(|v| serde_json::to_value(v).ok())
                    .unwrap_or(Value::Null);
                let mut subscriptions = super::lock(self.context.subscriptions);
                let payload = match name {
                    "webhookSubscriptionCreate" => subscriptions.create(&text("topic"), &input, Utc::now()),
                    "webhookSubscriptionUpdate" => subscriptions.update(&text("id"), &input, Utc::now()),
                    _ => subscriptions.delete(&text("id")),
                };
                drop(subscriptions);
                return Ok(this.resolve_value(info, payload));
            }
            // Bulk operations (sim::shopify::bulk has the sources).
            ("Mutation", "bulkOperationRunQuery") => {
                let query = argument(info, "query").and_then(JsonValue::as_str).unwrap_or("");
                return Ok(this.resolve_value(info, super::bulk::run_query(self.context, query)));
            }
            ("QueryRoot", "bulkOperation") => {
                let id = argument(info, "id").and_then(JsonValue::as_str).unwrap_or("");
                return Ok(match super::bulk::operation(self.context, id) {
                    Some(value) => this.resolve_value(info, value),
                    None => ResolvedValue::null(),
                });
            }
            ("Mutation", other) => return Err(error(format!("the emulator does not run Mutation.{other}"))),
            ("QueryRoot", _) => return this.root(info),
            ("Customer", "orders") => {
                let id = self.value["id"].as_str().and_then(crate::domain::ShopifyId::parse);
                // Newest first, so leaving out the ones too old to see keeps the newest visible.
                let orders =
                    id.map(|id| self.context.store.recent_orders_of(id, first(info).unwrap_or(0))).unwrap_or_default();
                let visible = orders.iter().filter(|o| self.context.may_see(o));
                let nodes =
                    Nodes { nodes: visible.map(|o| GqlOrder::from_record(o, false)).collect(), page_info: None };
                return Ok(this.resolve_value(info, json!(nodes)));
            }
            _ => {}
        }
        match self.value.get(name) {
            Some(value) => {
                let mut value = value.clone();
                // A connection held whole, in its natural order (oldest first): `reverse` turns
                // it around ("Reverse the order of the underlying list.", the argument's
                // description in Shopify's published Admin schema 2026-10, e.g. `Order.returns`),
                // then `first` takes its first nodes.
                if let Some(Value::Array(nodes)) = value.get_mut("nodes") {
                    if argument(info, "reverse").and_then(JsonValue::as_bool) == Some(true) {
                        nodes.reverse();
                    }
                    if let Some(n) = first(info) {
                        nodes.truncate(n);
                    }
                }
                Ok(this.resolve_value(info, value))
            }
            None if self.value.is_object() && !info.field_definition().ty.is_non_null() => Ok(ResolvedValue::null()),
            None => Err(error(format!("the emulator does not hold {}.{name}", self.ty))),
        }
    }
}
