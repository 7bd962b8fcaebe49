//! Orders and customers as comparable rows, from the emulator's records and from the store,
//! for tests that check the store holds exactly what Shopify holds (consistency, bulk backfill).

use orderline::domain::ShopifyId;
use orderline::shopify::payload::{ShopifyCustomer, ShopifyOrder};
use orderline::store::Store;

use super::SHOP;

pub fn micros(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

/// Every stored field of an order, as comparable values.
pub fn order_row(o: &ShopifyOrder) -> serde_json::Value {
    serde_json::json!({
        "name": o.name, "customer": o.customer.as_ref().map(|c| c.id.0), "email": o.email,
        "financial": o.financial_status, "fulfillment": o.fulfillment_status,
        "cancelled_at": micros(o.cancelled_at), "updated_at": o.updated_at.timestamp_micros(),
        "total": o.total_price,
        "fulfillments": o.fulfillments.iter().map(|f| serde_json::json!([f.id.0, f.status, f.shipment_status,
            f.tracking_company, f.tracking_number, f.tracking_url, f.updated_at.timestamp_micros(),
            micros(f.created_at), micros(f.in_transit_at), micros(f.delivered_at),
            micros(f.estimated_delivery_at)])).collect::<Vec<_>>(),
        "refunds": o.refunds.iter().map(|r| serde_json::json!([r.id.0, r.amount(), micros(r.created_at)]))
            .collect::<Vec<_>>(),
    })
}

pub async fn stored_order_row(store: &Store, id: ShopifyId) -> Option<serde_json::Value> {
    let o = store.order(SHOP, id).await.unwrap()?;
    let fulfillments = store.fulfillments(SHOP, id).await.unwrap();
    let refunds = store.refunds(SHOP, id).await.unwrap();
    let micros = |t: Option<orderline::store::Ts>| t.map(|t| t.0.timestamp_micros());
    Some(serde_json::json!({
        "name": o.name, "customer": o.customer_id, "email": o.email,
        "financial": o.financial_status, "fulfillment": o.fulfillment_status,
        "cancelled_at": micros(o.cancelled_at), "updated_at": o.updated_at.0.timestamp_micros(),
        "total": o.total_price,
        "fulfillments": fulfillments.iter().map(|f| serde_json::json!([f.id, f.status, f.shipment_status,
            f.tracking_company, f.tracking_number, f.tracking_url, f.updated_at.0.timestamp_micros(),
            micros(f.shopify_created_at), micros(f.in_transit_at), micros(f.delivered_at),
            micros(f.estimated_delivery_at)])).collect::<Vec<_>>(),
        "refunds": refunds.iter().map(|r| serde_json::json!([r.id, r.amount, micros(r.shopify_created_at)]))
            .collect::<Vec<_>>(),
    }))
}

/// A customer's own fields and every phone on its record (own phone, default address,
/// addresses), as comparable values.
pub fn customer_row(c: &ShopifyCustomer) -> serde_json::Value {
    let mut phones: Vec<&str> = c.phone.iter().map(String::as_str).collect();
    phones.extend(c.default_address.iter().chain(&c.addresses).filter_map(|a| a.phone.as_deref()));
    phones.sort_unstable();
    serde_json::json!({
        "name": [c.first_name, c.last_name], "email": c.email, "phone": c.phone,
        "updated_at": micros(c.updated_at), "phones": phones,
    })
}

pub async fn stored_customer_row(store: &Store, id: ShopifyId) -> Option<serde_json::Value> {
    let c = store.customer(SHOP, id).await.unwrap()?;
    let rows = store.phones_of_customer(SHOP, id).await.unwrap();
    let mut phones: Vec<String> = rows.into_iter().filter(|p| p.owner_kind == "customer").map(|p| p.raw).collect();
    phones.sort_unstable();
    Some(serde_json::json!({
        "name": [c.first_name, c.last_name], "email": c.email, "phone": c.phone,
        "updated_at": Some(c.updated_at.0.timestamp_micros()), "phones": phones,
    }))
}

/// Every order and customer ID the store holds.
pub async fn stored_ids(store: &Store) -> (Vec<ShopifyId>, Vec<ShopifyId>) {
    let (mut orders, mut customers) = (Vec::new(), Vec::new());
    loop {
        let page = store.order_ids_after(SHOP, orders.last().copied(), None, 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        orders.extend(page);
    }
    loop {
        let page = store.customer_ids_after(SHOP, customers.last().copied(), 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        customers.extend(page);
    }
    (orders, customers)
}
