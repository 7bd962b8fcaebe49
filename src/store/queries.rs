//! Reads: what the lookup, the agent screens and the tests ask of the store.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};
use crate::domain::{PhoneNumber, ShopifyId};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CustomerRow {
    #[sqlx(default)]
    pub shop: String,
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    #[sqlx(default)]
    pub phone: Option<String>,
    #[sqlx(default)]
    pub state: Option<String>,
    pub default_zip: Option<String>,
    #[sqlx(default)]
    pub default_country_code: Option<String>,
    pub updated_at: Ts,
    pub synced_at: Ts,
    /// Shopify's `Customer.locale` (`es-MX`), when a copy that carries it was applied.
    #[sqlx(default)]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderRow {
    #[sqlx(default)]
    pub shop: String,
    pub id: i64,
    pub customer_id: Option<i64>,
    pub name: String,
    #[sqlx(default)]
    pub order_number: Option<i64>,
    #[sqlx(default)]
    pub email: Option<String>,
    #[sqlx(default)]
    pub phone: Option<String>,
    pub financial_status: Option<String>,
    pub fulfillment_status: Option<String>,
    pub cancelled_at: Option<Ts>,
    #[sqlx(default)]
    pub cancel_reason: Option<String>,
    #[sqlx(default)]
    pub closed_at: Option<Ts>,
    pub total_price: Option<String>,
    pub currency: Option<String>,
    pub shipping_zip: Option<String>,
    pub shopify_created_at: Ts,
    pub updated_at: Ts,
    pub synced_at: Ts,
    /// The language the order was placed in (`customer_locale`).
    #[sqlx(default)]
    pub customer_locale: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FulfillmentRow {
    pub id: i64,
    pub order_id: i64,
    pub status: Option<String>,
    pub shipment_status: Option<String>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub updated_at: Ts,
    /// Shipped: the fulfilment's `created_at`.
    pub shopify_created_at: Option<Ts>,
    pub in_transit_at: Option<Ts>,
    pub delivered_at: Option<Ts>,
    pub estimated_delivery_at: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefundRow {
    pub id: i64,
    pub order_id: i64,
    pub amount: Option<String>,
    pub currency: Option<String>,
    /// Nullable, as Shopify's `Refund.createdAt` is.
    pub shopify_created_at: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PhoneRow {
    pub owner_kind: String,
    pub owner_id: i64,
    pub source: String,
    pub customer_id: Option<i64>,
    pub raw: String,
    pub e164: Option<String>,
}

pub(crate) const CUSTOMER_COLUMNS: &str =
    "shop, id, first_name, last_name, email, phone, state, default_zip, default_country_code, updated_at, synced_at,
    locale";
pub(crate) const FULFILLMENT_COLUMNS: &str = "id, order_id, status, shipment_status, tracking_company, tracking_number,
    tracking_url, updated_at, shopify_created_at, in_transit_at, delivered_at, estimated_delivery_at";
pub(crate) const ORDER_COLUMNS: &str = "shop, id, customer_id, name, order_number, email, phone, financial_status,
    fulfillment_status, cancelled_at, cancel_reason, closed_at, total_price, currency, shipping_zip,
    shopify_created_at, updated_at, synced_at, customer_locale";

impl Store {
    /// The customers a phone number belongs to: one indexed query on `phone_numbers.e164`.
    pub async fn customers_by_phone(&self, shop: &str, phone: &PhoneNumber) -> Result<Vec<CustomerRow>, StoreError> {
        Ok(on_backend!(self, customers_by_phone(shop, phone.as_str()))?)
    }

    pub async fn customer(&self, shop: &str, id: ShopifyId) -> Result<Option<CustomerRow>, StoreError> {
        Ok(on_backend!(self, customer(shop, id.0))?)
    }

    /// A customer's most recent orders, newest first.
    pub async fn recent_orders(
        &self,
        shop: &str,
        customer: ShopifyId,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        Ok(on_backend!(self, recent_orders(shop, customer.0, limit))?)
    }

    pub async fn order(&self, shop: &str, id: ShopifyId) -> Result<Option<OrderRow>, StoreError> {
        Ok(on_backend!(self, order(shop, id.0))?)
    }

    /// The newest order carrying one of these names (`#1042`, `1042`): what a caller keyed in.
    pub async fn order_named(&self, shop: &str, names: &[String]) -> Result<Option<OrderRow>, StoreError> {
        let mut newest: Option<OrderRow> = None;
        for name in names {
            if let Some(order) = on_backend!(self, order_named(shop, name))?
                && newest.as_ref().is_none_or(|n| n.shopify_created_at < order.shopify_created_at)
            {
                newest = Some(order);
            }
        }
        Ok(newest)
    }

    pub async fn fulfillments(&self, shop: &str, order: ShopifyId) -> Result<Vec<FulfillmentRow>, StoreError> {
        Ok(on_backend!(self, fulfillments(shop, order.0))?)
    }

    pub async fn refunds(&self, shop: &str, order: ShopifyId) -> Result<Vec<RefundRow>, StoreError> {
        Ok(on_backend!(self, refunds(shop, order.0))?)
    }

    /// Every phone row that names this customer, parsed or not.
    pub async fn phones_of_customer(&self, shop: &str, customer: ShopifyId) -> Result<Vec<PhoneRow>, StoreError> {
        Ok(on_backend!(self, phones_of_customer(shop, customer.0))?)
    }

    /// Phone rows owned by one order (guest orders have no customer).
    pub async fn phones_of_order(&self, shop: &str, order: ShopifyId) -> Result<Vec<PhoneRow>, StoreError> {
        Ok(on_backend!(self, phones_of_order(shop, order.0))?)
    }
}

// The SQL, in queries/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "queries"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/queries/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "queries"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/queries/sql.rs
    pub(crate) use sql::*;
}
