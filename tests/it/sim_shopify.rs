//! The Shopify emulator, spoken to over a real socket on 127.0.0.1:0 with reqwest and the
//! `graphql` contract types, and its webhooks received by a small HMAC-checking server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use orderline::config::Secret;
use orderline::domain::{PhoneNumber, ShopifyId};
use orderline::shopify::graphql::{
    self, CustomersData, GraphqlRequest, GraphqlResponse, Operation, OrdersData, PAGE_SIZE,
};
use orderline::shopify::payload::{
    ShopifyChange, ShopifyCustomer, ShopifyFulfillment, ShopifyLineItem, ShopifyOrder, ShopifyRefund,
    ShopifyTransaction, Topic,
};
use orderline::shopify::signature;
use orderline::sim::shopify::{Failure, ProtectedData, ShopifySim, SimConfig, SimServer, WebhookStats, WebhookTarget};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const TOKEN: &str = "shpat_test_token";
const SECRET: &str = "test-webhook-secret";
const SHOP: &str = "orderline-test.myshopify.com";
const DANA: &str = "+15551234567";
const BECKERS: &str = "+15550177120";

struct Sim {
    sim: ShopifySim,
    server: SimServer,
    http: reqwest::Client,
}

async fn start(seed: u64) -> Sim {
    let sim = ShopifySim::new(SimConfig { access_token: TOKEN.into(), seed, ..SimConfig::default() });
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Sim { sim, server, http: reqwest::Client::new() }
}

impl Sim {
    async fn send(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.server.graphql_url()).json(body);
        if let Some(token) = token {
            request = request.header("X-Shopify-Access-Token", token);
        }
        request.send().await.unwrap()
    }

    async fn raw(&self, op: Operation, variables: Value) -> (StatusCode, Value) {
        let body = serde_json::to_value(GraphqlRequest::new(op, variables)).unwrap();
        let response = self.send(Some(TOKEN), &body).await;
        (response.status(), response.json().await.unwrap())
    }

    async fn query<T: DeserializeOwned>(&self, op: Operation, variables: Value) -> GraphqlResponse<T> {
        let (status, body) = self.raw(op, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn by_phone(&self, phone: &str) -> GraphqlResponse<CustomersData> {
        self.query(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(phone) })).await
    }

    fn order_named(&self, pick: impl Fn(&ShopifyOrder) -> bool) -> ShopifyOrder {
        self.sim.orders().into_iter().find(|o| pick(o)).expect("the demo shop has such an order")
    }
}

fn code(body: &Value) -> &str {
    body.pointer("/errors/0/extensions/code").and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_with_401() {
    let s = start(1).await;
    let body =
        serde_json::to_value(GraphqlRequest::new(Operation::OrdersByName, json!({"query": "name:#1001"}))).unwrap();
    for token in [Some("shpat_wrong"), None] {
        let response = s.send(token, &body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
        );
    }
    assert_eq!(s.send(Some(TOKEN), &body).await.status(), StatusCode::OK);

    // Any YYYY-MM version is served; other paths are not.
    let other = s.server.url() + "/admin/api/2024-07/graphql.json";
    let response = s.http.post(other).header("X-Shopify-Access-Token", TOKEN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bad = s.server.url() + "/admin/api/latest/graphql.json";
    let response = s.http.post(bad).header("X-Shopify-Access-Token", TOKEN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.sim.requests(), 5, "refused requests are counted too");
    s.server.stop().await;
}

#[tokio::test]
async fn customers_by_phone_finds_the_caller_with_their_recent_orders() {
    let s = start(2).await;
    s.sim.seed_demo();
    let response = s.by_phone(DANA).await;
    assert!(response.errors.is_empty());
    let nodes = response.data.unwrap().customers.nodes;
    assert_eq!(nodes.len(), 1);
    let customer = nodes[0].to_record().unwrap();
    assert_eq!(Some(&customer), s.sim.customer(customer.id).as_ref(), "the node converts back to the stored record");
    assert_eq!(customer.first_name.as_deref(), Some("Dana"));
    assert_eq!(customer.id, ShopifyId(9_007_199_254_740_993), "the same customer as in the webhook fixtures");

    let orders = &nodes[0].orders.as_ref().expect("orders come with the customer").nodes;
    let mut expected: Vec<ShopifyOrder> =
        s.sim.orders().into_iter().filter(|o| o.customer_id() == Some(customer.id)).collect();
    expected.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    expected.truncate(3);
    assert!(!orders.is_empty() && orders.len() <= 3);
    assert_eq!(orders.len(), expected.len());
    for (node, want) in orders.iter().zip(&expected) {
        assert!(node.customer.is_none(), "orders inside a customer do not repeat it");
        let got = node.to_record(Some(&customer)).unwrap();
        assert_eq!(
            (got.id, &got.name, got.created_at, got.updated_at),
            (want.id, &want.name, want.created_at, want.updated_at)
        );
        assert_eq!(got.customer_id(), Some(customer.id));
        assert_eq!(got.financial_status, want.financial_status);
        assert_eq!(got.fulfillment_status, want.fulfillment_status);
        assert_eq!(got.total_price, want.total_price);
        let tracking = |o: &ShopifyOrder| o.fulfillments.iter().map(|f| f.tracking_number.clone()).collect::<Vec<_>>();
        assert_eq!(tracking(&got), tracking(want));
    }

    let cost = response.extensions.expect("cost is reported").cost;
    assert_eq!(cost.requested_query_cost, Operation::CustomersByPhone.estimated_cost(PAGE_SIZE));
    // The actual cost counts what came back (Shopify refunds the rest): at least the two
    // connections and one object per customer and order, less than the requested maximum.
    let actual_cost = cost.actual_query_cost.expect("actual cost is reported");
    assert!((2 + 1 + 2 + orders.len() as u32..cost.requested_query_cost).contains(&actual_cost), "{cost:?}");
    let status = cost.throttle_status;
    assert_eq!((status.maximum_available, status.restore_rate), (1000.0, 100.0));
    let after_refund = 1000.0 - actual_cost as f64;
    assert!((after_refund..=1000.0).contains(&status.currently_available), "{status:?}");

    // Customer.phone is unique in a shop: the household number is Tom's; Anna shares it through
    // her address phone, and has her own.
    let nodes = s.by_phone(BECKERS).await.data.unwrap().customers.nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].first_name.as_deref(), nodes[0].last_name.as_deref()), (Some("Tom"), Some("Becker")));
    let anna = s.by_phone("+15550177121").await.data.unwrap().customers.nodes;
    assert_eq!(anna[0].first_name.as_deref(), Some("Anna"));
    let phones: Vec<String> = s.sim.customers().into_iter().filter_map(|c| c.phone).collect();
    assert_eq!(phones.iter().collect::<HashSet<_>>().len(), phones.len(), "no two customers share Customer.phone");

    // A UK caller, and a number nobody has (which costs the minimum: an empty connection, 2).
    let nodes = s.by_phone("+447700900123").await.data.unwrap().customers.nodes;
    assert_eq!(nodes[0].first_name.as_deref(), Some("Eleanor"));
    let response = s.by_phone("+15550000000").await;
    assert!(response.data.unwrap().customers.nodes.is_empty());
    assert_eq!(response.extensions.unwrap().cost.actual_query_cost, Some(2));
    s.server.stop().await;
}

#[tokio::test]
async fn orders_by_name_returns_the_order_with_its_customer() {
    let s = start(3).await;
    s.sim.seed_demo();
    let shipped = s.order_named(|o| {
        o.customer.is_some() && o.fulfillments.iter().any(|f| f.shipment_status.as_deref() == Some("in_transit"))
    });
    let response: GraphqlResponse<OrdersData> =
        s.query(Operation::OrdersByName, json!({ "query": graphql::order_name_query(&shipped.name) })).await;
    let nodes = response.data.unwrap().orders.nodes;
    assert_eq!(nodes.len(), 1);
    let got = nodes[0].to_record(None).unwrap();
    assert_eq!((got.id, &got.name, got.order_number), (shipped.id, &shipped.name, shipped.order_number));
    assert_eq!(got.customer.as_ref(), shipped.customer.as_ref(), "the full customer comes along");
    let (f, want) = (&got.fulfillments[0], &shipped.fulfillments[0]);
    assert_eq!(f.shipment_status.as_deref(), Some("in_transit"));
    assert_eq!(
        (&f.tracking_company, &f.tracking_number, &f.tracking_url),
        (&want.tracking_company, &want.tracking_number, &want.tracking_url)
    );
    let cost = response.extensions.unwrap().cost;
    assert_eq!(cost.requested_query_cost, Operation::OrdersByName.estimated_cost(PAGE_SIZE));
    let actual = cost.actual_query_cost.expect("actual cost is reported");
    assert!(actual >= 2 + 1 + shipped.fulfillments.len() as u32 + shipped.refunds.len() as u32, "{cost:?}");
    assert!(actual < cost.requested_query_cost, "one order of three asked: {cost:?}");

    // The guest order has no customer; an unknown name finds nothing.
    let guest = s.order_named(|o| o.customer.is_none());
    let response: GraphqlResponse<OrdersData> =
        s.query(Operation::OrdersByName, json!({ "query": format!("name:{}", guest.name) })).await;
    let node = &response.data.unwrap().orders.nodes[0];
    assert!(node.customer.is_none());
    assert_eq!(node.to_record(None).unwrap().phone, guest.phone);
    let response: GraphqlResponse<OrdersData> =
        s.query(Operation::OrdersByName, json!({ "query": "name:#999999" })).await;
    assert!(response.data.unwrap().orders.nodes.is_empty());
    // `name:` asks for the name as the shop writes it: bare digits are not `#1001`.
    let digits = guest.name.trim_start_matches('#');
    let response: GraphqlResponse<OrdersData> =
        s.query(Operation::OrdersByName, json!({ "query": format!("name:{digits}") })).await;
    assert!(response.data.unwrap().orders.nodes.is_empty(), "name:{digits} is not {}", guest.name);
    s.server.stop().await;
}

#[tokio::test]
async fn nodes_answers_each_id_in_order_null_where_the_record_is_gone() {
    let s = start(3).await;
    s.sim.seed_demo();
    let orders = s.sim.orders();
    let (kept, deleted) = (orders[0].id, orders[1].id);
    assert!(s.sim.delete_order(deleted));
    let customer = s.sim.customers()[0].id;
    let ids = json!([graphql::gid("Order", deleted), graphql::gid("Order", kept), graphql::gid("Customer", customer)]);
    let (status, body) = s.raw(Operation::StillHeld, json!({ "ids": ids })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["nodes"],
        json!([null, { "id": graphql::gid("Order", kept) }, { "id": graphql::gid("Customer", customer) }])
    );
    // Shopify takes at most 250 items in an input array.
    let too_many: Vec<String> = (1..=251).map(|n| graphql::gid("Order", ShopifyId(n))).collect();
    let (_, body) = s.raw(Operation::StillHeld, json!({ "ids": too_many })).await;
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("250"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    s.server.stop().await;
}

#[tokio::test]
async fn a_phone_belongs_to_one_customer_as_in_shopify() {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let customers = sim.customers();
    let (dana, other) = (customers[0].clone(), customers[1].clone());
    let taken = ShopifyCustomer { id: sim.new_id(), email: Some("twin@example.com".into()), ..dana.clone() };
    assert!(sim.upsert_customer(taken).is_err(), "a second customer with Dana's phone is refused");
    assert!(sim.change_customer(other.id, |c| c.phone = dana.phone.clone()).is_none(), "nor can one take it");
    assert_eq!(sim.customer(other.id).unwrap(), other, "the refused change left nothing behind");
    // Sharing it as an address phone is how a household shares a number.
    let mut household = ShopifyCustomer { id: sim.new_id(), phone: Some("+15550100777".into()), ..dana.clone() };
    household.default_address.as_mut().unwrap().phone = dana.phone.clone();
    assert!(sim.upsert_customer(household).is_ok());
    // Re-storing a customer with its own phone is no conflict.
    assert!(sim.upsert_customer(dana).is_ok());
}

async fn page_all<F>(s: &Sim, op: Operation, query: &str, mut take: F) -> Vec<usize>
where
    F: FnMut(&Value),
{
    let mut after: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let (status, body) = s.raw(op, json!({ "query": query, "after": after, "first": PAGE_SIZE })).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.get("errors").is_none(), "{body}");
        let connection = body["data"].as_object().unwrap().values().next().unwrap().clone();
        let nodes = connection["nodes"].as_array().unwrap();
        sizes.push(nodes.len());
        nodes.iter().for_each(&mut take);
        let info = &connection["pageInfo"];
        if !info["hasNextPage"].as_bool().unwrap() {
            return sizes;
        }
        after = Some(info["endCursor"].as_str().unwrap().to_string());
        assert!(sizes.len() < 10_000, "paging never ends");
    }
}

#[tokio::test]
async fn updated_since_pages_through_every_record_once_in_order() {
    let s = start(4).await;
    s.sim.seed_generated(60, 2);
    s.sim.set_bucket(100_000.0, 10_000.0);
    let pages = |n: usize| {
        let page = PAGE_SIZE as usize;
        (0..n.div_ceil(page)).map(|i| page.min(n - i * page)).collect::<Vec<_>>()
    };
    let mut expected: Vec<(DateTime<Utc>, ShopifyId)> = s.sim.orders().iter().map(|o| (o.updated_at, o.id)).collect();
    expected.sort();
    assert_eq!(expected.len(), 120);

    let since = graphql::updated_since_query(s.sim.clock_start() - TimeDelta::days(61));
    for query in [since.as_str(), ""] {
        let mut got = Vec::new();
        let sizes = page_all(&s, Operation::OrdersUpdatedSince, query, |node| {
            let node: graphql::GqlOrder = serde_json::from_value(node.clone()).unwrap();
            assert!(node.customer.is_some());
            let record = node.to_record(None).unwrap();
            got.push((record.updated_at, record.id));
        })
        .await;
        assert_eq!(sizes, pages(120), "{query:?}");
        assert_eq!(got, expected, "each order once, by (updated_at, id), for {query:?}");
    }

    let mut customers = Vec::new();
    let sizes = page_all(&s, Operation::CustomersUpdatedSince, "", |node| {
        let node: graphql::GqlCustomer = serde_json::from_value(node.clone()).unwrap();
        customers.push((node.updated_at, node.to_record().unwrap().id));
    })
    .await;
    assert_eq!(sizes, pages(60));
    let mut sorted = customers.clone();
    sorted.sort();
    assert_eq!(customers, sorted);
    assert_eq!(customers.iter().map(|c| c.1).collect::<HashSet<_>>().len(), 60);

    // Only what changed after the clock start is returned by a sweep from there.
    let orders = s.sim.orders();
    let first = s.sim.change_order(orders[7].id, |o| o.financial_status = Some("refunded".into())).unwrap();
    let second = s.sim.change_order(orders[3].id, |_| {}).unwrap();
    // Whole seconds, as Shopify stamps them: two changes in one second share `updated_at`.
    assert!(second.updated_at >= first.updated_at && first.updated_at > s.sim.clock_start());
    let mut got = Vec::new();
    page_all(&s, Operation::OrdersUpdatedSince, &graphql::updated_since_query(s.sim.clock_start()), |node| {
        got.push(node["id"].as_str().unwrap().to_string());
    })
    .await;
    got.sort();
    let mut want = vec![graphql::gid("Order", first.id), graphql::gid("Order", second.id)];
    want.sort();
    assert_eq!(got, want);

    // A cursor the sim did not make is refused.
    let (_, body) =
        s.raw(Operation::OrdersUpdatedSince, json!({ "query": "", "after": "bogus", "first": PAGE_SIZE })).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("cursor"), "{body}");
    s.server.stop().await;
}

#[tokio::test]
async fn a_query_over_the_single_query_cost_limit_is_refused_as_shopify_does() {
    let s = start(5).await;
    // Shopify refuses any query requesting more than 1000 points; every operation must fit.
    for op in Operation::ALL {
        let cost = op.estimated_cost(PAGE_SIZE);
        assert!(cost <= 1000, "{op:?} requests {cost} points");
        let id = if op == Operation::OrderExists { "gid://shopify/Order/1" } else { "gid://shopify/Customer/1" };
        // The webhook subscription mutations take a topic and an address as well.
        let variables = json!({
            "query": "", "first": PAGE_SIZE, "id": id, "ids": [id],
            "topic": "ORDERS_CREATE", "uri": "https://line.example.com/shopify/webhooks",
        });
        let (status, body) = s.raw(op, variables).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.get("errors").is_none(), "{op:?}: {body}");
        s.sim.set_bucket(1000.0, 100.0);
    }

    s.sim.set_max_query_cost(Some(300));
    let (status, body) = s.raw(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "MAX_COST_EXCEEDED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["maxCost"], 300);
    assert_eq!(body["errors"][0]["extensions"]["cost"], Operation::CustomersByPhone.estimated_cost(PAGE_SIZE));
    assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("Query cost is "));
    assert!(body.get("data").is_none());
    assert_eq!(s.sim.bucket_status().currently_available, 1000.0, "a refused query costs nothing");
    let (_, body) = s.raw(Operation::OrdersByName, json!({ "query": "name:#1001" })).await;
    assert!(body.get("errors").is_none(), "{body}");
    s.sim.set_max_query_cost(None);
    let (_, body) = s.raw(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) })).await;
    assert!(body.get("errors").is_none(), "{body}");
    s.server.stop().await;
}

#[tokio::test]
async fn the_bucket_throttles_once_drained_and_recovers() {
    let s = start(6).await;
    s.sim.seed_demo();
    let requested = Operation::CustomersByPhone.estimated_cost(PAGE_SIZE);
    s.sim.set_bucket(1000.0, 100.0);
    let mut ok = 0;
    let body = loop {
        let (status, body) = s.raw(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) })).await;
        assert_eq!(status, StatusCode::OK);
        if body.get("errors").is_some() {
            break body;
        }
        ok += 1;
        assert!(ok < 10, "never throttled");
    };
    assert!(ok >= 1);
    assert_eq!(body["errors"][0]["message"], "Throttled");
    assert_eq!(code(&body), "THROTTLED");
    assert_eq!(body["errors"][0]["extensions"]["documentation"], "https://shopify.dev/api/usage/rate-limits");
    assert!(body.get("data").is_none());
    let response: GraphqlResponse<CustomersData> = serde_json::from_value(body).unwrap();
    assert!(response.data.is_none());
    let cost = response.extensions.unwrap().cost;
    assert_eq!(cost.requested_query_cost, requested);
    assert_eq!(cost.actual_query_cost, None);
    let status = cost.throttle_status;
    assert_eq!((status.maximum_available, status.restore_rate), (1000.0, 100.0));
    assert!(status.currently_available < requested as f64 && status.currently_available > 100.0, "{status:?}");
    assert_eq!(s.sim.throttled(), 1);

    // Waiting for the missing points lets the next request through.
    let wait = (requested as f64 - status.currently_available) / status.restore_rate + 0.2;
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let response = s.by_phone(DANA).await;
    assert!(response.errors.is_empty());
    assert!(response.data.unwrap().customers.nodes.len() == 1);
    assert_eq!(s.sim.throttled(), 1);
    s.server.stop().await;
}

#[tokio::test]
async fn latency_is_applied_to_every_answer() {
    let s = start(7).await;
    // 600 ms ± 50: never under 550 ms; with the latency off, an answer on a loaded machine
    // still comes well before that.
    s.sim.set_latency(Duration::from_millis(600), Duration::from_millis(50));
    for _ in 0..3 {
        let started = Instant::now();
        s.by_phone(DANA).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(550), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    s.sim.set_latency(Duration::ZERO, Duration::ZERO);
    let started = Instant::now();
    s.by_phone(DANA).await;
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
    s.server.stop().await;
}

#[tokio::test]
async fn failures_have_the_shapes_shopify_gives_them() {
    let s = start(8).await;
    let vars = || json!({ "query": graphql::phone_query(DANA) });

    s.sim.set_failure(Failure::Http500);
    let (status, body) = s.raw(Operation::CustomersByPhone, vars()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["errors"].is_string());

    s.sim.set_failure(Failure::Http429);
    let body = serde_json::to_value(GraphqlRequest::new(Operation::CustomersByPhone, vars())).unwrap();
    let response = s.send(Some(TOKEN), &body).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(s.sim.throttled(), 1);

    s.sim.set_failure(Failure::GraphqlError);
    let (status, body) = s.raw(Operation::CustomersByPhone, vars()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR");
    let parsed: GraphqlResponse<CustomersData> = serde_json::from_value(body).unwrap();
    assert!(parsed.data.is_none());
    let body = serde_json::to_value(GraphqlRequest::new(Operation::CustomersByPhone, vars())).unwrap();

    s.sim.set_failure(Failure::Timeout);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let started = Instant::now();
    let err = impatient
        .post(s.server.graphql_url())
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    s.sim.set_failure(Failure::ErrorRate(0.3));
    let mut errors = 0;
    for _ in 0..200 {
        let (status, _) = s.raw(Operation::CustomersByPhone, vars()).await;
        assert!(status == StatusCode::OK || status == StatusCode::INTERNAL_SERVER_ERROR);
        errors += usize::from(status == StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert!((35..=85).contains(&errors), "{errors} of 200 failed at a 30% error rate");

    s.sim.set_failure(Failure::None);
    s.sim.set_bucket(1000.0, 100.0); // the 200 lookups above drained it
    let (status, body) = s.raw(Operation::CustomersByPhone, vars()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    s.server.stop().await;
}

#[tokio::test]
async fn stop_ends_requests_held_by_a_timeout_and_closes_the_port() {
    let s = start(9).await;
    s.sim.set_failure(Failure::Timeout);
    let url = s.server.graphql_url();
    let body = serde_json::to_value(GraphqlRequest::new(Operation::OrdersByName, json!({"query": "name:#1"}))).unwrap();
    let held = {
        let http = s.http.clone();
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move { http.post(url).header("X-Shopify-Access-Token", TOKEN).json(&body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.sim.requests(), 1);
    let started = Instant::now();
    s.server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let answer = held.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(reqwest::Client::new().post(url).json(&body).send().await.is_err(), "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_every_request_by_operation_from_many_tasks() {
    let s = Arc::new(start(10).await);
    s.sim.seed_demo();
    // Concurrent requests each hold their requested cost until answered: room for all of them.
    s.sim.set_bucket(1_000_000.0, 1_000_000.0);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                if i % 2 == 0 {
                    s.by_phone(DANA).await;
                } else {
                    let _: GraphqlResponse<OrdersData> =
                        s.query(Operation::OrdersByName, json!({ "query": "name:#1001" })).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.sim.requests(), 200);
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone), 100);
    assert_eq!(s.sim.requests_for(Operation::OrdersByName), 100);
    assert_eq!(s.sim.requests_for(Operation::OrdersUpdatedSince), 0);

    // Throttled and refused requests are counted; unknown operations only in the total.
    s.sim.set_bucket(10.0, 1.0);
    let (_, body) = s.raw(Operation::OrdersByName, json!({ "query": "name:#1001" })).await;
    assert_eq!(code(&body), "THROTTLED");
    s.send(Some("wrong"), &serde_json::to_value(GraphqlRequest::new(Operation::OrdersByName, json!({}))).unwrap())
        .await;
    let unknown =
        json!({ "query": "query ShopName { customers(first: 1) { nodes { id nickname } } }", "variables": {} });
    let body: Value = s.send(Some(TOKEN), &unknown).await.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("nickname"), "{body}");
    assert_eq!(s.sim.requests(), 203);
    assert_eq!(s.sim.requests_for(Operation::OrdersByName), 102);
    assert_eq!(s.sim.throttled(), 1);

    s.sim.reset_counters();
    assert_eq!((s.sim.requests(), s.sim.throttled()), (0, 0));
    assert!(Operation::ALL.iter().all(|op| s.sim.requests_for(*op) == 0));
}

#[tokio::test]
async fn bad_requests_get_graphql_errors() {
    let s = start(11).await;
    s.sim.seed_demo();
    // The operation is found from the document when operationName is absent.
    let mut request = GraphqlRequest::new(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) }));
    request.operation_name = None;
    let body: Value = s.send(Some(TOKEN), &serde_json::to_value(&request).unwrap()).await.json().await.unwrap();
    assert_eq!(body["data"]["customers"]["nodes"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone), 1);

    let (status, body) = s.raw(Operation::CustomersByPhone, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("$query"), "{body}");
    let (_, body) = s.raw(Operation::OrdersByName, json!({ "query": "title:mug" })).await;
    assert!(body["errors"].is_array(), "{body}");
    let response =
        s.http.post(s.server.graphql_url()).header("X-Shopify-Access-Token", TOKEN).body("{").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    s.server.stop().await;
}

#[tokio::test]
async fn the_demo_shop_covers_every_order_stage() {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let (customers, orders) = (sim.customers(), sim.orders());
    assert!((7..=10).contains(&customers.len()));
    let start = sim.clock_start();
    for c in &customers {
        assert!(c.id.0 > 1 << 53);
        let phone = c.phone.as_deref().unwrap();
        assert!(PhoneNumber::from_e164(phone).is_some(), "{phone}");
        assert!(c.first_name.is_some() && c.last_name.is_some() && c.default_address.is_some());
        assert!(c.updated_at.unwrap() < start);
        let count = orders.iter().filter(|o| o.customer_id() == Some(c.id)).count();
        assert!((1..=4).contains(&count), "{count}");
    }
    assert!(customers.iter().filter(|c| c.phone.as_deref().unwrap().starts_with("+44")).count() >= 2);
    let mut phones = HashMap::new();
    for c in &customers {
        *phones.entry(c.phone.clone()).or_insert(0) += 1;
    }
    assert!(phones.values().all(|n| *n == 1), "Customer.phone is unique in a shop");
    // A household number is shared the way Shopify allows: one customer's phone is another's
    // address phone.
    let e164 = |raw: &str, region: Option<&str>| PhoneNumber::parse(raw, region).ok();
    let shared = customers.iter().filter(|c| {
        let own = e164(c.phone.as_deref().unwrap(), None);
        customers.iter().any(|other| {
            let address = other.default_address.as_ref();
            let phone = address.and_then(|a| a.phone.as_deref());
            let region = address.and_then(|a| a.country_code.as_deref());
            other.id != c.id && own.is_some() && phone.and_then(|p| e164(p, region)) == own
        })
    });
    assert_eq!(shared.count(), 1, "one number shared through an address phone");
    assert_eq!(orders.iter().filter(|o| o.customer.is_none()).count(), 1, "one guest order");

    let shipment = |status: &str| {
        orders.iter().any(|o| o.fulfillments.last().and_then(|f| f.shipment_status.as_deref()) == Some(status))
    };
    assert!(orders.iter().any(|o| o.financial_status.as_deref() == Some("paid") && o.fulfillments.is_empty()));
    assert!(orders.iter().any(|o| o.fulfillment_status.as_deref() == Some("partial")));
    assert!(shipment("in_transit") && shipment("out_for_delivery") && shipment("delivered"));
    assert!(orders.iter().any(|o| o.cancelled_at.is_some()));
    assert!(orders.iter().any(|o| o.cancelled_at.is_none() && !o.refunds.is_empty()));
    let carriers: HashSet<_> =
        orders.iter().flat_map(|o| &o.fulfillments).filter_map(|f| f.tracking_company.clone()).collect();
    assert_eq!(carriers, HashSet::from(["UPS".to_string(), "USPS".to_string(), "FedEx".to_string()]));
    for f in orders.iter().flat_map(|o| &o.fulfillments) {
        assert!(f.tracking_url.as_ref().unwrap().contains(f.tracking_number.as_ref().unwrap()));
    }
    for o in &orders {
        assert!(o.id.0 > 1 << 53);
        assert!(o.created_at > start - TimeDelta::days(60) && o.updated_at < start && o.created_at <= o.updated_at);
    }
    assert_eq!(orders.iter().map(|o| &o.name).collect::<HashSet<_>>().len(), orders.len());
}

#[tokio::test]
async fn generated_shops_follow_from_the_seed() {
    let shop = |seed: u64| {
        let sim = ShopifySim::new(SimConfig { seed, ..SimConfig::default() });
        sim.seed_generated(30, 3);
        let start = sim.clock_start();
        let customers: Vec<_> = sim
            .customers()
            .into_iter()
            .map(|c| (c.id, c.first_name, c.last_name, c.phone, c.updated_at.unwrap() - start))
            .collect();
        let orders: Vec<_> = sim
            .orders()
            .into_iter()
            .map(|o| (o.id, o.name, o.total_price, o.financial_status, o.fulfillment_status, o.updated_at - start))
            .collect();
        (customers, orders)
    };
    let (customers, orders) = shop(99);
    assert_eq!((customers.len(), orders.len()), (30, 90));
    assert_eq!(shop(99), (customers.clone(), orders.clone()), "same seed, same shop");
    assert_ne!(shop(100).1, orders);
    let phones: HashSet<_> = customers.iter().map(|c| c.3.clone().unwrap()).collect();
    assert_eq!(phones.len(), 30);
    assert!(phones.iter().all(|p| p.starts_with("+1415555") && p.len() == 12), "{phones:?}");
    assert!(customers.iter().all(|c| c.4 < TimeDelta::zero()));
    assert!(orders.iter().all(|o| o.5 < TimeDelta::zero()));
}

#[tokio::test]
async fn changes_move_the_sim_clock_forward_and_show_the_current_customer() {
    let s = start(12).await;
    s.sim.seed_demo();
    let mut order = s.order_named(|o| o.customer.is_some());
    let later = Utc::now() + TimeDelta::hours(1);
    order.updated_at = later;
    s.sim.upsert_order(order.clone());
    let changed = s.sim.change_order(order.id, |o| o.email = Some("new@example.com".into())).unwrap();
    assert!(changed.updated_at >= later && changed.updated_at.timestamp_subsec_micros() == 0);
    assert_eq!(s.sim.order(order.id).unwrap().email.as_deref(), Some("new@example.com"));
    let customer_id = order.customer_id().unwrap();
    let customer = s.sim.change_customer(customer_id, |c| c.last_name = Some("Renamed".into())).unwrap();
    assert!(customer.updated_at.unwrap() >= changed.updated_at);
    assert!(s.sim.change_order(ShopifyId(42), |_| {}).is_none());

    // Orders show the customer as it is now, in the API too.
    assert_eq!(s.sim.order(order.id).unwrap().customer.unwrap().last_name.as_deref(), Some("Renamed"));
    let response: GraphqlResponse<OrdersData> =
        s.query(Operation::OrdersByName, json!({ "query": graphql::order_name_query(&order.name) })).await;
    let node = &response.data.unwrap().orders.nodes[0];
    assert_eq!(node.customer.as_ref().unwrap().last_name.as_deref(), Some("Renamed"));

    // A new order, then the steps of its delivery.
    let sample = s.sim.sample_order(Some(customer_id));
    assert!(s.sim.order(sample.id).is_none());
    let created = s.sim.create_order(sample);
    assert!(created.created_at >= customer.updated_at.unwrap());
    assert!(created.name.starts_with('#') && created.fulfillments.is_empty());
    let mut last = created.updated_at;
    for expected in ["in_transit", "out_for_delivery", "delivered"] {
        let o = s.sim.advance_order(created.id).unwrap();
        assert_eq!(o.fulfillments.last().unwrap().shipment_status.as_deref(), Some(expected));
        assert!(o.updated_at >= last);
        last = o.updated_at;
    }
    assert!(s.sim.advance_order(created.id).is_none());
    let ids: Vec<_> = s.sim.orders().iter().map(|o| o.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    s.server.stop().await;
}

// ---- webhooks ----

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    verified: bool,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn change(&self) -> ShopifyChange {
        ShopifyChange::parse(Topic::parse(self.header("x-shopify-topic")).unwrap(), &self.body).unwrap()
    }

    /// The email the change set (each change in the rates test sets a distinct one).
    fn email(&self) -> String {
        match self.change() {
            ShopifyChange::Order(o) => o.email.unwrap(),
            ShopifyChange::Customer(c) => c.email.unwrap(),
            other => panic!("unexpected change {other:?}"),
        }
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A webhook endpoint on 127.0.0.1:0 that checks the HMAC as orderline does (401 when wrong).
async fn receiver() -> (String, Inbox) {
    async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let hmac = headers.get("x-shopify-hmac-sha256").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let verified = signature::verify(&[&Secret::new(SECRET)], &body, hmac);
        inbox.lock().unwrap().push(Received { headers, body, verified });
        if verified { StatusCode::OK } else { StatusCode::UNAUTHORIZED }
    }
    let inbox = Inbox::default();
    let app = Router::new().route("/shopify/webhooks", post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/shopify/webhooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

#[tokio::test]
async fn webhooks_are_signed_and_shaped_as_shopify_sends_them() {
    let (url, inbox) = receiver().await;
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let order = sim.orders().into_iter().find(|o| o.customer.is_some() && o.cancelled_at.is_none()).unwrap();
    sim.change_order(order.id, |_| {}).unwrap(); // before a target is set: nothing is sent
    sim.set_webhook_target(WebhookTarget::new(&url, SECRET, SHOP));

    let updated = sim.change_order(order.id, |o| o.cancel_reason = Some("customer".into())).unwrap();
    let created = sim.create_order(sim.sample_order(order.customer_id()));
    let customer =
        sim.change_customer(order.customer_id().unwrap(), |c| c.first_name = Some("Danielle".into())).unwrap();
    let stats = sim.flush_webhooks().await;
    assert_eq!(stats, WebhookStats { changes: 4, sent: 4, ..WebhookStats::default() });

    let got = inbox.lock().unwrap().clone();
    assert_eq!(got.len(), 4);
    let topics: Vec<_> = got.iter().map(|r| r.header("x-shopify-topic")).collect();
    // A paid checkout sends orders/create and orders/paid in the same second.
    assert_eq!(topics, ["orders/updated", "orders/create", "orders/paid", "customers/update"]);
    for r in &got {
        assert!(r.verified, "the HMAC verifies over the raw body");
        assert_eq!(r.header("x-shopify-shop-domain"), SHOP);
        assert_eq!(r.header("x-shopify-api-version"), graphql::API_VERSION);
        assert_eq!(r.header("content-type"), "application/json");
        assert!(!r.header("x-shopify-webhook-id").is_empty() && !r.header("x-shopify-event-id").is_empty());
        assert!(DateTime::parse_from_rfc3339(r.header("x-shopify-triggered-at")).is_ok());
    }
    assert_eq!(got.iter().map(|r| r.header("x-shopify-webhook-id")).collect::<HashSet<_>>().len(), 4);
    match got[0].change() {
        ShopifyChange::Order(o) => assert_eq!(rest_view(*o), rest_view(updated)),
        other => panic!("{other:?}"),
    }
    for r in &got[1..3] {
        match r.change() {
            ShopifyChange::Order(o) => {
                assert_eq!((o.id, o.created_at, o.updated_at), (created.id, created.created_at, created.updated_at))
            }
            other => panic!("{other:?}"),
        }
    }
    match got[3].change() {
        // As REST shows it: a REST customer carries no locale.
        ShopifyChange::Customer(c) => assert_eq!(*c, ShopifyCustomer { locale: None, ..customer }),
        other => panic!("{other:?}"),
    }
    let body = String::from_utf8(got[0].body.to_vec()).unwrap();
    assert!(body.contains(&format!("\"id\":{}", order.id)), "IDs above 2^53 are exact JSON integers");

    // A receiver that refuses the signature, and one that is not there, are counted.
    sim.set_webhook_target(WebhookTarget::new(&url, "another-secret", SHOP));
    sim.change_order(order.id, |_| {});
    assert_eq!(sim.flush_webhooks().await, WebhookStats { changes: 1, sent: 1, non_2xx: 1, ..WebhookStats::default() });
    assert!(!inbox.lock().unwrap().last().unwrap().verified);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    sim.set_webhook_target(WebhookTarget::new(format!("http://{closed}/shopify/webhooks"), SECRET, SHOP));
    sim.change_order(order.id, |_| {});
    assert_eq!(sim.flush_webhooks().await, WebhookStats { changes: 1, sent: 1, failed: 1, ..WebhookStats::default() });
}

/// What a REST body can say about an order: no GraphQL-only dates on fulfilments (a REST
/// parse derives transit and delivery times from the status), no `addresses` on the customer
/// inside an order.
fn rest_view(mut o: ShopifyOrder) -> ShopifyOrder {
    for f in &mut o.fulfillments {
        (f.in_transit_at, f.delivered_at, f.estimated_delivery_at) = (None, None, None);
    }
    if let Some(c) = o.customer.as_mut() {
        c.addresses.clear();
        c.addresses_omitted = true;
        // REST copies carry no customer locale (the order's own `customer_locale` they do).
        c.locale = None;
    }
    for a in [o.billing_address.as_mut(), o.shipping_address.as_mut()].into_iter().flatten() {
        a.id = None;
    }
    o
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/shopify/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every key the emulator sent is one Shopify's sample payload (the fixture) has, at the same
/// place.
fn keys_within(sent: &Value, sample: &Value, path: &str, unknown: &mut Vec<String>) {
    match (sent, sample) {
        (Value::Object(sent), Value::Object(sample)) => {
            for (key, value) in sent {
                match sample.get(key) {
                    None => unknown.push(format!("{path}.{key}")),
                    Some(inner) => keys_within(value, inner, &format!("{path}.{key}"), unknown),
                }
            }
        }
        (Value::Array(sent), Value::Array(sample)) if !sample.is_empty() => {
            sent.iter().for_each(|item| keys_within(item, &sample[0], &format!("{path}[]"), unknown))
        }
        _ => {}
    }
}

/// Every `…_at` in a REST body is in the shop's offset (New York: -05:00 in winter, -04:00 in
/// summer), whole seconds.
fn times_in_shop_offset(value: &Value, bad: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key.ends_with("_at")
                    && let Some(t) = v.as_str()
                {
                    let ok = DateTime::parse_from_rfc3339(t).is_ok()
                        && (t.ends_with("-05:00") || t.ends_with("-04:00"))
                        && !t.contains('.');
                    if !ok {
                        bad.push(format!("{key}: {t}"));
                    }
                }
                times_in_shop_offset(v, bad);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| times_in_shop_offset(v, bad)),
        _ => {}
    }
}

#[tokio::test]
async fn each_change_sends_the_topics_shopify_sends_in_its_rest_shape() {
    let (url, inbox) = receiver().await;
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    sim.set_webhook_target(WebhookTarget::new(&url, SECRET, SHOP));
    let dana = sim.customers().into_iter().find(|c| c.phone.as_deref() == Some(DANA)).unwrap();
    let mut expected: Vec<&str> = Vec::new();

    // Checkout: placed and paid in one second.
    let mut sample = sim.sample_order(Some(dana.id));
    let item = sample.line_items[0].clone();
    sample.line_items.push(ShopifyLineItem { id: sim.new_id(), ..item });
    let order = sim.create_order(sample);
    expected.extend(["orders/create", "orders/paid"]);
    // One parcel of two: partially fulfilled.
    let fulfillment = sim.new_id();
    sim.change_order(order.id, |o| {
        let mut f = sim_fulfillment(o, fulfillment);
        f.shipment_status = Some("confirmed".into());
        o.fulfillments.push(f);
        o.line_items[0].fulfillment_status = Some("fulfilled".into());
        o.fulfillment_status = Some("partial".into());
    })
    .unwrap();
    expected.extend([
        "fulfillments/create",
        "fulfillment_events/create",
        "orders/partially_fulfilled",
        "orders/updated",
    ]);
    // A carrier scan on it.
    sim.change_order(order.id, |o| {
        let f = o.fulfillments.last_mut().unwrap();
        f.shipment_status = Some("in_transit".into());
        f.estimated_delivery_at = Some(f.updated_at + TimeDelta::days(3));
    })
    .unwrap();
    expected.extend(["fulfillments/update", "fulfillment_events/create", "orders/updated"]);
    // The rest shipped: fulfilled.
    let other = sim.new_id();
    sim.change_order(order.id, |o| {
        o.fulfillments.push(sim_fulfillment(o, other));
        o.line_items[1].fulfillment_status = Some("fulfilled".into());
        o.fulfillment_status = Some("fulfilled".into());
    })
    .unwrap();
    expected.extend(["fulfillments/create", "orders/fulfilled", "orders/updated"]);
    // A refund.
    let refund = sim.new_id();
    sim.change_order(order.id, |o| {
        o.refunds.push(ShopifyRefund {
            id: refund,
            order_id: o.id,
            note: Some("damaged".into()),
            created_at: Some(o.updated_at),
            processed_at: Some(o.updated_at),
            transactions: vec![ShopifyTransaction {
                kind: Some("refund".into()),
                status: Some("success".into()),
                amount: Some("5.00".into()),
                currency: o.currency.clone(),
            }],
        });
        o.financial_status = Some("partially_refunded".into());
    })
    .unwrap();
    expected.extend(["refunds/create", "orders/updated"]);
    // Another order cancelled, then deleted.
    let other_order = sim.create_order(sim.sample_order(Some(dana.id)));
    expected.extend(["orders/create", "orders/paid"]);
    sim.change_order(other_order.id, |o| {
        o.cancelled_at = Some(o.updated_at);
        o.cancel_reason = Some("customer".into());
    })
    .unwrap();
    expected.extend(["orders/cancelled", "orders/updated"]);
    assert!(sim.delete_order(other_order.id));
    expected.push("orders/delete");
    // Shopify deletes only customers without orders.
    assert!(!sim.delete_customer(dana.id));
    let loner = sim.new_id();
    let phone = Some("+15550100999".to_string());
    sim.upsert_customer(ShopifyCustomer { id: loner, phone, email: Some("loner@example.com".into()), ..dana.clone() })
        .unwrap();
    assert!(sim.delete_customer(loner));
    expected.push("customers/delete");
    // The compliance topics.
    assert!(sim.send_customer_redact(dana.id) && sim.send_data_request(dana.id, 48213));
    sim.send_shop_redact(61_204_938_771, SHOP);
    expected.extend(["customers/redact", "customers/data_request", "shop/redact"]);

    let stats = sim.flush_webhooks().await;
    let got = inbox.lock().unwrap().clone();
    assert_eq!(stats.sent as usize, got.len());
    let topics: Vec<&str> = got.iter().map(|r| r.header("x-shopify-topic")).collect();
    assert_eq!(topics, expected);
    assert_eq!(got[0].change().order_id(), Some(order.id));
    assert_eq!(got[1].change().order_id(), Some(order.id), "orders/create and orders/paid are about one order");
    let same_second = |r: &Received| serde_json::from_slice::<Value>(&r.body).unwrap()["updated_at"].clone();
    assert_eq!(same_second(&got[0]), same_second(&got[1]), "a burst of versions in one second");

    for r in &got {
        let topic = r.header("x-shopify-topic");
        assert!(r.verified, "{topic}");
        let change = ShopifyChange::parse(Topic::parse(topic).unwrap(), &r.body).unwrap_or_else(|e| panic!("{e}"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let sample = match topic.split('/').next().unwrap() {
            _ if topic == "orders/delete" => Some(fixture("order_delete")),
            _ if topic == "customers/delete" => Some(fixture("customer_delete")),
            _ if topic == "customers/redact" => Some(fixture("customers_redact")),
            _ if topic == "customers/data_request" => Some(fixture("customers_data_request")),
            _ if topic == "shop/redact" => Some(fixture("shop_redact")),
            "orders" => Some(fixture("order_fulfilled")),
            "fulfillments" => Some(fixture("fulfillment_update")),
            "refunds" => Some(fixture("refund_create")),
            "customers" => Some(fixture("customer_create")),
            _ => None, // fulfillment_events/create: no fixture
        };
        if let Some(sample) = sample {
            let mut unknown = Vec::new();
            keys_within(&body, &sample, topic, &mut unknown);
            assert!(unknown.is_empty(), "keys Shopify's sample payload does not have: {unknown:?}");
        }
        let mut bad = Vec::new();
        times_in_shop_offset(&body, &mut bad);
        assert!(bad.is_empty(), "{topic}: {bad:?}");
        let kind = match topic.split('/').next().unwrap() {
            "orders" if topic != "orders/delete" => Some("Order"),
            "fulfillments" => Some("Fulfillment"),
            "fulfillment_events" => Some("FulfillmentEvent"),
            "refunds" => Some("Refund"),
            _ => None,
        };
        if let Some(kind) = kind {
            assert_eq!(body["admin_graphql_api_id"], format!("gid://shopify/{kind}/{}", body["id"]), "{topic}");
        }
        match (topic, change) {
            ("fulfillment_events/create", ShopifyChange::FulfillmentEvent(e)) if e.status == "in_transit" => {
                assert_eq!(e.fulfillment_id, fulfillment);
                assert!(e.estimated_delivery_at.is_some(), "the event carries the carrier's estimate");
            }
            ("fulfillment_events/create", ShopifyChange::FulfillmentEvent(e)) => {
                assert_eq!((e.fulfillment_id, e.status.as_str()), (fulfillment, "confirmed"));
            }
            ("fulfillments/update", ShopifyChange::Fulfillment(f)) => {
                assert_eq!(f.id, fulfillment);
                assert!(body.get("estimated_delivery_at").is_none(), "REST Fulfillment has no estimate");
            }
            ("refunds/create", ShopifyChange::Refund(r)) => assert_eq!(r.id, refund),
            ("customers/redact", ShopifyChange::CustomerRedact { customer_id, orders_to_redact }) => {
                assert_eq!(customer_id, dana.id);
                assert!(orders_to_redact.contains(&order.id) && !orders_to_redact.contains(&other_order.id));
            }
            ("orders/delete", ShopifyChange::OrderDeleted { id }) => assert_eq!(id, other_order.id),
            ("customers/delete", ShopifyChange::CustomerDeleted { id }) => assert_eq!(id, loner),
            _ => {}
        }
    }
    // The emulator's own record of the order matches what the last orders/updated said.
    let last = got
        .iter()
        .rev()
        .find(|r| r.header("x-shopify-topic") == "orders/updated" && r.change().order_id() == Some(order.id))
        .unwrap();
    match last.change() {
        ShopifyChange::Order(o) => assert_eq!(rest_view(*o), rest_view(sim.order(order.id).unwrap())),
        other => panic!("{other:?}"),
    }
    assert!(sim.order(other_order.id).is_none() && sim.customer(loner).is_none());
}

fn sim_fulfillment(o: &ShopifyOrder, id: ShopifyId) -> ShopifyFulfillment {
    ShopifyFulfillment {
        id,
        order_id: o.id,
        status: Some("success".into()),
        shipment_status: None,
        tracking_company: Some("UPS".into()),
        tracking_number: Some(format!("1Z999AA1{}", id.0 % 100_000_000)),
        tracking_url: None,
        created_at: Some(o.updated_at),
        updated_at: o.updated_at,
        in_transit_at: None,
        delivered_at: None,
        estimated_delivery_at: None,
    }
}

#[tokio::test]
async fn webhook_loss_duplication_and_reordering_happen_at_their_rates() {
    let (url, inbox) = receiver().await;
    let sim = ShopifySim::new(SimConfig { seed: 2026, ..SimConfig::default() });
    sim.seed_generated(20, 5);
    let (orders, customers) = (sim.orders(), sim.customers());
    sim.set_webhook_target(WebhookTarget {
        drop: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        ..WebhookTarget::new(&url, SECRET, SHOP)
    });

    // Many changes share a whole-second updated_at, so each change sets a distinct email: that
    // is how arrivals are matched.
    let mut index_of = HashMap::new();
    for i in 0..1000 {
        let email = format!("change-{i}@example.com");
        let set = email.clone();
        if i % 10 == 9 {
            sim.change_customer(customers[i % customers.len()].id, |c| c.email = Some(set)).unwrap();
        } else {
            sim.change_order(orders[i % orders.len()].id, |o| o.email = Some(set)).unwrap();
        }
        assert!(index_of.insert(email, i).is_none());
    }
    let stats = sim.flush_webhooks().await;
    let got = inbox.lock().unwrap().clone();
    assert_eq!(stats.changes, 1000);
    assert_eq!((stats.sent, stats.non_2xx, stats.failed), (got.len() as u64, 0, 0));
    assert!(got.iter().all(|r| r.verified));

    let arrivals: Vec<usize> = got.iter().map(|r| index_of[&r.email()]).collect();
    let mut copies: HashMap<usize, Vec<&Received>> = HashMap::new();
    for (r, i) in got.iter().zip(&arrivals) {
        copies.entry(*i).or_default().push(r);
    }
    let delivered = copies.len() as u64;
    assert_eq!(delivered, 1000 - stats.dropped, "every change that was not dropped arrives");
    let rate = |n: u64, of: u64| n as f64 / of as f64;
    assert!((0.06..=0.14).contains(&rate(stats.dropped, 1000)), "{stats:?}");

    let duplicated: Vec<_> = copies.values().filter(|c| c.len() > 1).collect();
    assert_eq!(duplicated.len() as u64, stats.duplicated);
    assert!(duplicated.iter().all(|c| c.len() == 2), "at most one extra copy");
    for c in &duplicated {
        assert_eq!(c[0].header("x-shopify-webhook-id"), c[1].header("x-shopify-webhook-id"), "a retry reuses the id");
        assert_eq!(c[0].header("x-shopify-event-id"), c[1].header("x-shopify-event-id"));
    }
    assert!((0.06..=0.14).contains(&rate(stats.duplicated, delivered)), "{stats:?}");
    let ids: HashSet<_> = got.iter().map(|r| r.header("x-shopify-webhook-id")).collect();
    assert_eq!(ids.len() as u64, delivered, "one webhook id per change");

    // A reordered delivery arrives after a later change; nothing else does.
    let mut first_seen = Vec::new();
    let mut seen = HashSet::new();
    for i in &arrivals {
        if seen.insert(*i) {
            first_seen.push(*i);
        }
    }
    let mut late = 0u64;
    let mut highest = None;
    for i in &first_seen {
        match highest {
            Some(h) if *i < h => late += 1,
            _ => highest = Some(*i),
        }
    }
    assert!(late <= stats.reordered && late + 3 >= stats.reordered, "late {late}, {stats:?}");
    assert!((0.06..=0.14).contains(&rate(stats.reordered, delivered)), "{stats:?}");
}

#[tokio::test]
async fn the_cli_serves_the_demo_shop_with_the_given_token() {
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let cli = tokio::spawn(orderline::sim::shopify::run_cli(addr, "shpat_cli".into()));
    let url = format!("http://{addr}/admin/api/{}/graphql.json", graphql::API_VERSION);
    let request = GraphqlRequest::new(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) }));
    let http = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = http.post(&url).header("X-Shopify-Access-Token", "shpat_cli").json(&request).send().await {
            answer = Some(r.json::<GraphqlResponse<CustomersData>>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nodes = answer.expect("the CLI listens").data.unwrap().customers.nodes;
    assert_eq!(nodes[0].first_name.as_deref(), Some("Dana"));
    cli.abort();
}

/// The emulator reads the document: a field Shopify's Admin schema does not define is refused
/// before anything runs or is charged, in Shopify's shape (HTTP 200, `errors` with the message
/// and its location, no `data`).
#[tokio::test]
async fn a_document_with_an_undefined_field_is_refused_by_the_emulator() {
    let s = start(21).await;
    s.sim.seed_demo();
    let request = json!({
        "query": "query CustomersByPhone($query: String!) { customers(first: 3, query: $query) { nodes { id phoneNumber } } }",
        "variables": { "query": graphql::phone_query(DANA) },
        "operationName": "CustomersByPhone",
    });
    let response = s.send(Some(TOKEN), &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    let error = &body["errors"][0];
    assert!(error["message"].as_str().unwrap().contains("`phoneNumber`"), "{body}");
    assert_eq!(error["locations"][0], json!({ "line": 1, "column": 91 }));
    assert_eq!(s.sim.bucket_status().currently_available, 1000.0, "an invalid document costs nothing");
    s.server.stop().await;
}

/// A connection lists its nodes oldest first; `reverse: true` turns the list around before
/// `first` takes from it ("Reverse the order of the underlying list.", the argument's description
/// in Shopify's published Admin schema 2026-10). orderline reads an order's newest return with
/// `returns(first: 1, reverse: true)`.
#[tokio::test]
async fn returns_are_listed_oldest_first_unless_reversed() {
    let s = start(22).await;
    s.sim.seed_demo();
    let order = s.order_named(|o| o.customer.is_some() && o.returns.is_empty());
    let older = s.sim.request_return(order.id, 1, 0).unwrap();
    let newer = s.sim.request_return(order.id, 1, 0).unwrap();
    for (arguments, want) in
        [("first: 1", older), ("first: 1, reverse: true", newer), ("first: 1, reverse: false", older)]
    {
        let request = json!({
            "query": format!(
                "query Returns {{ orders(first: 1, query: \"name:{}\") {{ nodes {{ returns({arguments}) {{ nodes {{ id }} }} }} }} }}",
                order.name
            ),
            "operationName": "Returns",
        });
        let response = s.send(Some(TOKEN), &request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let returns = &body["data"]["orders"]["nodes"][0]["returns"]["nodes"];
        assert_eq!(returns, &json!([{ "id": graphql::gid("Return", want) }]), "returns({arguments}): {body}");
    }
    s.server.stop().await;
}

/// Protected customer data the app is not approved for comes back as Shopify sends it: HTTP 200,
/// the field null, one `ACCESS_DENIED` error per field with its path; everything else answered.
#[tokio::test]
async fn redacted_fields_are_null_with_access_denied_errors() {
    let s = start(22).await;
    s.sim.seed_demo();
    s.sim.set_redacted(&[ProtectedData::Name, ProtectedData::Email]);
    let (status, body) = s.raw(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(DANA) })).await;
    assert_eq!(status, StatusCode::OK);
    let customer = &body["data"]["customers"]["nodes"][0];
    assert!(customer["id"].is_string(), "{body}");
    assert!(customer["firstName"].is_null() && customer["lastName"].is_null(), "{body}");
    assert!(customer["defaultEmailAddress"].is_null(), "emailAddress is non-null: its parent becomes null");
    assert_eq!(customer["defaultPhoneNumber"]["phoneNumber"], DANA, "phone was not redacted");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "ACCESS_DENIED"), "{body}");
    assert!(errors.iter().any(|e| e["path"] == json!(["customers", "nodes", 0, "firstName"])), "{body}");
    assert!(
        errors.iter().all(|e| e["message"].as_str().unwrap().starts_with("This app is not approved to access the")),
        "{body}"
    );
    s.server.stop().await;
}

/// Whether `customer(id:)` / `order(id:)` answers a record.
async fn exists(s: &Sim, op: Operation, id: ShopifyId) -> bool {
    let (kind, field) = if op == Operation::OrderExists { ("Order", "order") } else { ("Customer", "customer") };
    let (status, body) = s.raw(op, json!({ "id": orderline::shopify::graphql::gid(kind, id) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    !body["data"][field].is_null()
}

#[tokio::test]
async fn deleted_records_answer_null_and_a_customer_with_orders_cannot_be_deleted() {
    let s = start(7).await;
    s.sim.seed_demo();
    let dana = ShopifyId(9_007_199_254_740_993);
    assert!(exists(&s, Operation::CustomerExists, dana).await);
    // Shopify: "You can only delete customers who haven't placed any orders".
    assert!(!s.sim.delete_customer(dana), "refused while she has orders");
    let orders: Vec<ShopifyId> =
        s.sim.orders().iter().filter(|o| o.customer_id() == Some(dana)).map(|o| o.id).collect();
    assert!(!orders.is_empty());
    for id in &orders {
        assert!(exists(&s, Operation::OrderExists, *id).await);
        assert!(s.sim.delete_order(*id));
        assert!(!exists(&s, Operation::OrderExists, *id).await, "a deleted order answers null");
        assert!(!s.sim.delete_order(*id), "deleted once");
    }
    assert!(s.sim.delete_customer(dana));
    assert!(!exists(&s, Operation::CustomerExists, dana).await, "a deleted customer answers null");
    assert!(s.by_phone(DANA).await.data.unwrap().customers.nodes.is_empty(), "nor found by phone");
    s.server.stop().await;
}
