//! Bulk query operations of the emulated shop: `bulkOperationRunQuery` over `customers` or
//! `orders`, `bulkOperation(id:)` while it runs and after, and its JSONL result served at
//! `GET /bulk-results/<id>.jsonl`, streamed from the store a page at a time (never the whole
//! file in memory). Failures on demand: FAILED with an error code, or an expired result.
//! Never charges cost or checks tokens (server.rs does; the result URL, like Shopify's signed
//! storage URL, needs no Admin token).
//!
//! Sources (read 2026-12-04): the guide https://shopify.dev/docs/api/usage/bulk-operations/queries
//! (a single top-level connection field; nested connections; the JSONL file, one object a line,
//! a nested connection's nodes on their own lines with `__parentId`; up to five bulk queries at
//! a time per shop from 2026-01), https://shopify.dev/docs/api/admin-graphql/latest/mutations/bulkOperationRunQuery
//! ("at least one connection field", "up to five connections with a maximum nesting depth of two
//! levels", results kept seven days), https://shopify.dev/docs/api/admin-graphql/latest/objects/BulkOperation
//! (fields; `url` and `partialDataUrl` expire after seven days; objectCount counts every object,
//! rootObjectCount the top-level ones) and …/enums/BulkOperationStatus (EXPIRED: "The bulk
//! operation URL has expired"); `groupObjects` (child lines directly below their parent):
//! https://shopify.dev/changelog/bulk-operations-group-objects-default-changed-to-false. The
//! emulator always groups, which is also a valid order for an ungrouped operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::validation::Valid;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::executor::Context;
use super::store::{Cmp, Term, decode_cursor, parse_search};
use super::{ShopifySim, lock};
use crate::shopify::client::ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS;
use crate::shopify::graphql::{GqlCustomer, GqlOrder};
use crate::shopify::schema;

/// Why a bulk operation failed (`BulkOperationErrorCode` in Admin 2026-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkErrorCode {
    AccessDenied,
    InternalServerError,
    Timeout,
}

impl BulkErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            BulkErrorCode::AccessDenied => "ACCESS_DENIED",
            BulkErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            BulkErrorCode::Timeout => "TIMEOUT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Completed,
    Failed,
    Expired,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Expired => "EXPIRED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Customers,
    Orders,
}

struct Operation {
    id: u64,
    query: String,
    root: Root,
    terms: Vec<Term>,
    created_at: DateTime<Utc>,
    started: Instant,
    status: Status,
    completed_at: Option<DateTime<Utc>>,
    error_code: Option<BulkErrorCode>,
    object_count: u64,
    root_object_count: u64,
    /// The server's own base URL, as the request that started it reached it.
    base_url: String,
}

/// The shop's bulk operations and their knobs.
pub(crate) struct BulkOps {
    operations: Vec<Operation>,
    next_id: u64,
    /// How long an operation runs before it finishes.
    pub(crate) run_time: Duration,
    /// The next operations to finish fail with this code.
    pub(crate) fail_with: Option<BulkErrorCode>,
    /// A pause before each page of a result (a slow download, to cut one short in tests).
    pub(crate) page_delay: Duration,
}

impl BulkOps {
    pub(crate) fn new() -> BulkOps {
        BulkOps {
            operations: Vec::new(),
            next_id: 4_503_599_627_370_497,
            run_time: Duration::from_millis(50),
            fail_with: None,
            page_delay: Duration::ZERO,
        }
    }

    /// Every finished result's URL expires now (Shopify: seven days after completion).
    pub(crate) fn expire_all(&mut self) {
        for op in self.operations.iter_mut().filter(|op| op.status == Status::Completed) {
            op.status = Status::Expired;
        }
    }

    pub(crate) fn started(&self) -> usize {
        self.operations.len()
    }
}

/// At most five bulk query operations at a time per shop from API 2026-01 (the guide above).
const CONCURRENT: usize = 5;

/// Records per page of a streamed result.
const PAGE: usize = 500;

fn user_error(message: String, code: &str) -> Value {
    json!({ "bulkOperation": null, "userErrors": [{ "field": ["query"], "message": message, "code": code }] })
}

/// `bulkOperationRunQuery(query:)`: the payload `{bulkOperation, userErrors}`. The query must
/// be valid against the schema and select one top-level `customers` or `orders` connection
/// (all the emulator holds); anything else is a userError with code INVALID (the messages are
/// the emulator's; the shape is `BulkOperationUserError`'s).
pub(crate) fn run_query(context: &Context<'_>, query: &str) -> Value {
    let document = match schema::validate(query) {
        Ok(document) => document,
        Err(problems) => {
            let text: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return user_error(format!("Invalid bulk query: {}", text.join("; ")), "INVALID");
        }
    };
    let (root, terms) = match root_of(&document) {
        Ok(found) => found,
        Err(message) => return user_error(message, "INVALID"),
    };
    let mut ops = lock(context.bulk);
    let running = ops.operations.iter().filter(|op| op.status == Status::Running).count();
    if running >= CONCURRENT {
        return user_error(
            format!("A bulk query operation for this app and shop is already in progress ({running} running)."),
            "OPERATION_IN_PROGRESS",
        );
    }
    let id = ops.next_id;
    ops.next_id += 1;
    let created_at = super::store::whole_second(Utc::now());
    ops.operations.push(Operation {
        id,
        query: query.to_string(),
        root,
        terms,
        created_at,
        started: Instant::now(),
        status: Status::Running,
        completed_at: None,
        error_code: None,
        object_count: 0,
        root_object_count: 0,
        base_url: context.base_url.to_string(),
    });
    // Just created: Shopify answers CREATED, and the operation runs from there.
    let mut created = describe(ops.operations.last().expect("just pushed"));
    created["status"] = json!("CREATED");
    json!({ "bulkOperation": created, "userErrors": [] })
}

/// `bulkOperation(id:)`: the operation, finished if its time has come; None for an unknown ID.
pub(crate) fn operation(context: &Context<'_>, gid: &str) -> Option<Value> {
    let id: u64 = gid.strip_prefix("gid://shopify/BulkOperation/")?.parse().ok()?;
    let mut ops = lock(context.bulk);
    let (run_time, fail_with) = (ops.run_time, ops.fail_with);
    let op = ops.operations.iter_mut().find(|op| op.id == id)?;
    if op.status == Status::Running && op.started.elapsed() >= run_time {
        op.completed_at = Some(Utc::now());
        match fail_with {
            Some(code) => {
                op.status = Status::Failed;
                op.error_code = Some(code);
            }
            None => {
                let (roots, all) = match op.root {
                    Root::Customers => context.store.count_customers(&op.terms),
                    Root::Orders => context.store.count_orders(&op.terms),
                };
                (op.status, op.root_object_count, op.object_count) = (Status::Completed, roots, all);
            }
        }
    }
    Some(describe(op))
}

fn describe(op: &Operation) -> Value {
    let url = (op.status == Status::Completed).then(|| format!("{}/bulk-results/{}.jsonl", op.base_url, op.id));
    json!({
        "id": format!("gid://shopify/BulkOperation/{}", op.id),
        "status": op.status.as_str(),
        "errorCode": op.error_code.map(BulkErrorCode::as_str),
        "createdAt": op.created_at,
        "completedAt": op.completed_at,
        // UnsignedInt64 is sent as a string of digits.
        "objectCount": op.object_count.to_string(),
        "rootObjectCount": op.root_object_count.to_string(),
        // The emulator streams the file and does not know its size.
        "fileSize": null,
        "url": url,
        "partialDataUrl": null,
        "query": op.query,
        "type": "QUERY",
    })
}

/// The one top-level connection (`customers` or `orders`), its search terms, and Shopify's
/// limits on connections.
fn root_of(document: &Valid<ExecutableDocument>) -> Result<(Root, Vec<Term>), String> {
    let operation = document.operations.iter().next().ok_or("Invalid bulk query: no operation")?;
    let fields: Vec<&Field> = operation
        .selection_set
        .selections
        .iter()
        .filter_map(|s| if let Selection::Field(f) = s { Some(&**f) } else { None })
        .collect();
    let [field] = fields.as_slice() else {
        return Err("Bulk queries must contain exactly one top-level field".into());
    };
    let root = match field.name.as_str() {
        "customers" => Root::Customers,
        "orders" => Root::Orders,
        other => return Err(format!("The emulator runs bulk queries over customers or orders, not `{other}`")),
    };
    if node_selection(field).is_none() {
        return Err(format!("Bulk queries must select the nodes of `{}` (edges {{ node }} or nodes)", field.name));
    }
    let (connections, depth) = connections(&field.selection_set, 1);
    if connections + 1 > 5 {
        return Err("Bulk queries cannot contain more than 5 connections".into());
    }
    if depth > 2 {
        return Err("Bulk queries cannot contain connections with a nesting depth greater than 2".into());
    }
    let query = field
        .arguments
        .iter()
        .find(|a| a.name == "query")
        .and_then(|a| a.value.as_str().map(str::to_string))
        .unwrap_or_default();
    let terms = parse_search(&query)?;
    let fits = match root {
        Root::Customers => terms.iter().all(Term::applies_to_customers),
        Root::Orders => terms.iter().all(Term::applies_to_orders),
    };
    if !fits {
        return Err(format!("The emulator cannot filter {} by {query:?}", field.name));
    }
    Ok((root, terms))
}

fn is_connection(field: &Field) -> bool {
    field.definition.ty.inner_named_type().as_str().ends_with("Connection")
}

/// The nodes' selection of a connection field: `edges { node { … } }` or `nodes { … }`.
fn node_selection(field: &Field) -> Option<&SelectionSet> {
    fn child<'s>(set: &'s SelectionSet, name: &str) -> Option<&'s SelectionSet> {
        set.selections.iter().find_map(|s| match s {
            Selection::Field(f) if f.name == name => Some(&f.selection_set),
            _ => None,
        })
    }
    child(&field.selection_set, "nodes").or_else(|| child(child(&field.selection_set, "edges")?, "node"))
}

/// Nested connections below a selection, and how deep they go (the top-level one is depth 1).
fn connections(set: &SelectionSet, depth: usize) -> (usize, usize) {
    let (mut count, mut deepest) = (0, depth);
    for selection in &set.selections {
        let (inner, next) = match selection {
            Selection::Field(f) if is_connection(f) => {
                count += 1;
                (&f.selection_set, depth + 1)
            }
            Selection::Field(f) => (&f.selection_set, depth),
            Selection::InlineFragment(i) => (&i.selection_set, depth),
            Selection::FragmentSpread(_) => continue,
        };
        let (c, d) = connections(inner, next);
        count += c;
        deepest = deepest.max(d);
    }
    (count, deepest)
}

/// The JSONL lines of one node: the node with the fields `set` selects (connections left out),
/// then each node of each nested connection on its own line with `__parentId`, recursively.
pub(crate) fn write_lines(
    document: &ExecutableDocument,
    set: &SelectionSet,
    value: &Value,
    parent: Option<&str>,
    out: &mut String,
) {
    let mut nested = Vec::new();
    let mut object = project(document, set, value, &mut nested);
    if let Some(parent) = parent {
        object.insert("__parentId".into(), json!(parent));
    }
    out.push_str(&Value::Object(object).to_string());
    out.push('\n');
    let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
    for (node_set, nodes) in nested {
        for node in nodes {
            write_lines(document, node_set, node, Some(id), out);
        }
    }
}

/// The fields of `value` that `set` selects (under their aliases); nested connections are
/// collected into `nested` instead (their nodes become lines of their own).
fn project<'d, 'v>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    value: &'v Value,
    nested: &mut Vec<(&'d SelectionSet, &'v [Value])>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for selection in &set.selections {
        let field = match selection {
            Selection::Field(field) => field,
            Selection::InlineFragment(inline) => {
                out.extend(project(document, &inline.selection_set, value, nested));
                continue;
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                    out.extend(project(document, &fragment.selection_set, value, nested));
                }
                continue;
            }
        };
        let key = field.alias.as_ref().unwrap_or(&field.name).to_string();
        if field.name == "__typename" {
            out.insert(key, json!(set.ty.as_str()));
            continue;
        }
        let held = value.get(field.name.as_str()).unwrap_or(&Value::Null);
        if is_connection(field) {
            if let (Some(node_set), Some(nodes)) = (node_selection(field), held["nodes"].as_array()) {
                nested.push((node_set, nodes.as_slice()));
            }
            continue;
        }
        let first = field
            .arguments
            .iter()
            .find(|a| a.name == "first")
            .and_then(|a| a.value.to_i32())
            .map(|n| n.max(0) as usize);
        let projected = match held {
            Value::Object(_) if !field.selection_set.selections.is_empty() => {
                Value::Object(project(document, &field.selection_set, held, nested))
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .take(first.unwrap_or(usize::MAX))
                    .map(|item| match item {
                        Value::Object(_) => Value::Object(project(document, &field.selection_set, item, nested)),
                        leaf => leaf.clone(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        out.insert(key, projected);
    }
    out
}

/// Where a streamed result is.
struct Download {
    sim: ShopifySim,
    document: Arc<Valid<ExecutableDocument>>,
    root: Root,
    terms: Vec<Term>,
    after: Option<super::store::Key>,
    done: bool,
}

impl Download {
    /// The next page of the result as JSONL, or None at its end.
    async fn next_page(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let delay = lock(&self.sim.inner.bulk).page_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let operation = self.document.operations.iter().next()?;
        let Some(Selection::Field(field)) = operation.selection_set.selections.first() else { return None };
        let set = node_selection(field)?;
        let mut out = String::new();
        let (values, next) = {
            let data = lock(&self.sim.inner.data);
            match self.root {
                Root::Customers => {
                    let page = data.store.customer_page(&self.terms, self.after, PAGE);
                    let values: Vec<Value> = page.nodes.iter().map(|c| json!(GqlCustomer::from_record(c))).collect();
                    (values, page.has_next_page.then_some(page.end_cursor).flatten())
                }
                Root::Orders => {
                    let page = data.store.order_page(&self.terms, self.after, PAGE);
                    let values: Vec<Value> = page.nodes.iter().map(|o| json!(GqlOrder::from_record(o, true))).collect();
                    (values, page.has_next_page.then_some(page.end_cursor).flatten())
                }
            }
        };
        for value in &values {
            write_lines(&self.document, set, value, None, &mut out);
        }
        match next.as_deref().and_then(decode_cursor) {
            Some(key) => self.after = Some(key),
            None => self.done = true,
        }
        Some(Bytes::from(out))
    }
}

/// `GET /bulk-results/<id>.jsonl`: the result of a completed operation, streamed. An expired
/// or unknown one answers 403 like an expired signed storage URL (its body is the emulator's).
pub(crate) fn download(sim: ShopifySim, file: &str) -> Response {
    let id: Option<u64> = file.strip_suffix(".jsonl").and_then(|id| id.parse().ok());
    let found = id.and_then(|id| {
        let ops = lock(&sim.inner.bulk);
        let op = ops.operations.iter().find(|op| op.id == id && op.status == Status::Completed)?;
        Some((op.query.clone(), op.root, op.terms.clone()))
    });
    let Some((query, root, mut terms)) = found else {
        return (
            StatusCode::FORBIDDEN,
            "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
        )
            .into_response();
    };
    let Ok(document) = schema::validate(&query) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Orders older than 60 days are absent without read_all_orders, as in every answer.
    if root == Root::Orders && !sim.inner.config.scopes.iter().any(|s| s == "read_all_orders") {
        terms.push(Term::CreatedAt(Cmp::Ge, Utc::now() - ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS));
    }
    let state = Download { sim, document: Arc::new(document), root, terms, after: None, done: false };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let page = state.next_page().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(page), state))
    });
    ([(header::CONTENT_TYPE, "application/jsonl")], Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ReturnStatus, ShopifyId};
    use crate::shopify::graphql::BulkResource;

    fn lines_of(resource: BulkResource, value: Value) -> Vec<Value> {
        let document = schema::validate(&resource.query()).expect("the bulk query is valid");
        let operation = document.operations.iter().next().unwrap();
        let Some(Selection::Field(field)) = operation.selection_set.selections.first() else { panic!() };
        let mut out = String::new();
        write_lines(&document, node_selection(field).unwrap(), &value, None, &mut out);
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn nested_connection_nodes_follow_their_parent_with_its_id() {
        let order: crate::shopify::payload::ShopifyOrder = serde_json::from_slice(
            &std::fs::read(format!("{}/tests/fixtures/shopify/order_fulfilled.json", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        )
        .unwrap();
        let lines = lines_of(BulkResource::Orders, json!(GqlOrder::from_record(&order, true)));
        assert_eq!(lines.len(), 1 + order.line_items.len());
        let parent = &lines[0];
        assert_eq!(parent["id"], json!(format!("gid://shopify/Order/{}", order.id)));
        assert!(parent.get("__parentId").is_none() && parent.get("lineItems").is_none(), "{parent}");
        assert_eq!(parent["customer"]["id"], json!(format!("gid://shopify/Customer/{}", order.customer.unwrap().id)));
        assert_eq!(parent["fulfillments"][0]["trackingInfo"][0]["company"], json!("UPS"));
        for (line, item) in lines[1..].iter().zip(&order.line_items) {
            assert_eq!(line["__parentId"], parent["id"]);
            assert_eq!(line["id"], json!(format!("gid://shopify/LineItem/{}", item.id)));
            assert_eq!(line["title"], json!(item.title));
        }
    }

    #[test]
    fn returns_are_lines_under_their_order_only_when_the_query_asks_for_them() {
        let mut order: crate::shopify::payload::ShopifyOrder = serde_json::from_slice(
            &std::fs::read(format!("{}/tests/fixtures/shopify/order_fulfilled.json", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        )
        .unwrap();
        let at = order.created_at;
        let label = crate::shopify::returns::ReturnLabel { carrier: Some("UPS".into()), ..Default::default() };
        let mut approved = super::super::returns::requested(ShopifyId(11), order.id, "#1-R1".into(), 1, 0, at);
        approved.status = Some(ReturnStatus::Open);
        approved.label = Some(label);
        let requested = super::super::returns::requested(ShopifyId(12), order.id, "#1-R2".into(), 2, 0, at);
        order.returns = vec![approved, requested];
        let node = json!(GqlOrder::from_record(&order, true));

        let lines = lines_of(BulkResource::Orders, node.clone());
        let items = order.line_items.len();
        assert_eq!(lines.len(), 1 + items + 2);
        let parent = &lines[0];
        assert!(parent.get("returns").is_none(), "{parent}");
        assert_eq!(parent["returnStatus"], json!("RETURN_REQUESTED"));
        let returns = &lines[1 + items..];
        let by_id = |id: &str| returns.iter().find(|l| l["id"] == json!(id)).expect("each return has its line");
        let (open, waiting) = (by_id("gid://shopify/Return/11"), by_id("gid://shopify/Return/12"));
        assert_eq!(
            (&open["status"], &waiting["status"], &waiting["totalQuantity"]),
            (&json!("OPEN"), &json!("REQUESTED"), &json!(2))
        );
        for line in returns {
            assert_eq!(line["__parentId"], parent["id"]);
            assert!(line.get("reverseFulfillmentOrders").is_none(), "not asked in bulk: {line}");
        }

        // A query without `returns` gets no return lines.
        let document =
            schema::validate("{ orders { edges { node { id lineItems { edges { node { id } } } } } } }").unwrap();
        let operation = document.operations.iter().next().unwrap();
        let Some(Selection::Field(field)) = operation.selection_set.selections.first() else { panic!() };
        let mut out = String::new();
        write_lines(&document, node_selection(field).unwrap(), &node, None, &mut out);
        assert_eq!(out.lines().count(), 1 + items);
        assert!(!out.contains("gid://shopify/Return/"), "{out}");
    }

    #[test]
    fn customer_addresses_are_lines_of_their_own() {
        let customer: crate::shopify::payload::ShopifyCustomer = serde_json::from_slice(
            &std::fs::read(format!("{}/tests/fixtures/shopify/customer_create.json", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        )
        .unwrap();
        let lines = lines_of(BulkResource::Customers, json!(GqlCustomer::from_record(&customer)));
        assert_eq!(lines.len(), 1 + customer.addresses.len());
        assert!(lines[0].get("addressesV2").is_none());
        assert_eq!(lines[0]["defaultPhoneNumber"]["phoneNumber"], json!(customer.phone.unwrap()));
        assert!(lines[1]["id"].as_str().unwrap().starts_with("gid://shopify/MailingAddress/"));
        assert_eq!(lines[1]["__parentId"], lines[0]["id"]);
    }

    #[test]
    fn only_customers_or_orders_with_at_most_two_levels_are_accepted() {
        let root = |q: &str| root_of(&schema::validate(q).unwrap()).map(|(root, _)| root);
        assert_eq!(root(&BulkResource::Orders.query()), Ok(Root::Orders));
        assert_eq!(
            root("{ customers(query: \"updated_at:>='2026-01-01T00:00:00Z'\") { nodes { id } } }"),
            Ok(Root::Customers)
        );
        assert!(root("{ currentAppInstallation { id } }").is_err());
        assert!(root("{ customers { nodes { id } } orders { nodes { id } } }").is_err());
        assert!(root("{ orders(query: \"phone:+15551234567\") { nodes { id } } }").is_err());
    }
}
