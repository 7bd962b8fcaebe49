//! Bulk reads for the caller lookup: customers with their recent orders, fulfilments and
//! refunds, and who owns which phone, in a few queries for any number of customers.

use super::copy_out::{copy_rows, literal};
use super::queries::{CUSTOMER_COLUMNS, FULFILLMENT_COLUMNS, ORDER_COLUMNS};
use super::returns::{RETURN_COLUMNS, ReturnRow};
use super::{CustomerRow, FulfillmentRow, OrderRow, Pool, RefundRow, Store, StoreError, Ts, backend, on_backend};

/// Everything the caller lookup keeps about one customer: the row and its recent orders, each
/// with its fulfilments and refunds.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerParts {
    pub customer: CustomerRow,
    pub orders: Vec<OrderParts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderParts {
    pub order: OrderRow,
    pub fulfillments: Vec<FulfillmentRow>,
    pub refunds: Vec<RefundRow>,
    pub returns: Vec<ReturnRow>,
}

/// A customer as a whole-shop read hands it over: borrowed from the row being read, times in
/// microseconds since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct CustomerView<'a> {
    pub id: i64,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub default_zip: Option<&'a str>,
    pub synced_at: i64,
    /// The customer's locale, else the one their latest order was placed in.
    pub locale: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
pub struct OrderView<'a> {
    pub id: i64,
    pub customer_id: i64,
    pub name: &'a str,
    pub financial_status: Option<&'a str>,
    pub fulfillment_status: Option<&'a str>,
    pub cancelled_at: Option<i64>,
    pub total_price: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub shipping_zip: Option<&'a str>,
    pub created_at: i64,
    pub updated_at: i64,
    pub synced_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct FulfillmentView<'a> {
    pub id: i64,
    pub order_id: i64,
    pub status: Option<&'a str>,
    pub shipment_status: Option<&'a str>,
    pub tracking_company: Option<&'a str>,
    pub tracking_number: Option<&'a str>,
    pub tracking_url: Option<&'a str>,
    pub updated_at: i64,
    pub created_at: Option<i64>,
    pub in_transit_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub estimated_delivery_at: Option<i64>,
}

/// A refund as a whole-shop read hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RefundView<'a> {
    pub order_id: i64,
    pub amount: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub created_at: Option<i64>,
}

/// A return (with a known order) as a whole-shop read hands it over.
#[derive(Debug, Clone, Copy)]
pub struct ReturnView<'a> {
    pub order_id: i64,
    pub id: i64,
    pub status: Option<&'a str>,
    pub decline_reason: Option<&'a str>,
    pub exchange_items: Option<i64>,
    pub label_carrier: Option<&'a str>,
    pub label_url: Option<&'a str>,
    pub received: bool,
}

/// What `Store::scan_callers` hands a whole shop to, row by row and in this order: every
/// `(e164, customer_id)` phone owner, then every customer, then every order that has a
/// customer (in no particular order), then every fulfilment, every refund and every return.
pub trait CallerSink {
    fn phone(&mut self, e164: &str, customer_id: i64);
    fn customer(&mut self, customer: CustomerView<'_>);
    fn order(&mut self, order: OrderView<'_>);
    fn fulfillment(&mut self, fulfillment: FulfillmentView<'_>);
    fn refund(&mut self, refund: RefundView<'_>);
    fn return_of_order(&mut self, r: ReturnView<'_>);
}

/// The whole-shop statements, with `shop` standing for the shop: `$1` for a bound parameter,
/// or a literal for `COPY` (which takes no parameters). Both readers take the columns in this order.
fn phones_sql(shop: &str) -> String {
    format!(
        "SELECT e164, customer_id FROM phone_numbers WHERE shop = {shop} AND customer_id IS NOT NULL AND e164 \
         IS NOT NULL"
    )
}

fn customers_sql(shop: &str) -> String {
    format!(
        "SELECT id, first_name, last_name, email, default_zip, synced_at,
                COALESCE(locale, (SELECT o.customer_locale FROM orders o
                                  WHERE o.shop = customers.shop AND o.customer_id = customers.id
                                    AND o.customer_locale IS NOT NULL
                                  ORDER BY o.shopify_created_at DESC LIMIT 1))
         FROM customers WHERE shop = {shop}"
    )
}

fn orders_sql(shop: &str) -> String {
    format!(
        "SELECT id, customer_id, shopify_created_at, name, financial_status, fulfillment_status, cancelled_at,
                total_price, currency, shipping_zip, updated_at, synced_at
         FROM orders WHERE shop = {shop} AND customer_id IS NOT NULL"
    )
}

fn fulfillments_sql(shop: &str) -> String {
    format!(
        "SELECT order_id, id, status, shipment_status, tracking_company, tracking_number, tracking_url, updated_at,
                shopify_created_at, in_transit_at, delivered_at, estimated_delivery_at
         FROM fulfillments WHERE shop = {shop}"
    )
}

fn refunds_sql(shop: &str) -> String {
    format!("SELECT order_id, amount, currency, shopify_created_at FROM refunds WHERE shop = {shop}")
}

fn returns_sql(shop: &str) -> String {
    format!(
        "SELECT order_id, id, status, decline_reason, exchange_items, label_carrier, label_url,
                CAST(CASE WHEN received THEN 1 ELSE 0 END AS BIGINT)
         FROM returns WHERE shop = {shop} AND order_id IS NOT NULL"
    )
}

/// `Store::scan_callers` on Postgres: each table in one binary `COPY`, decoded in place.
/// One read-only snapshot for all the tables, and no JIT: compiling these plain scans costs more
/// than it saves.
async fn scan_callers_copy(
    conn: &mut sqlx::PgConnection,
    shop: &str,
    sink: &mut impl CallerSink,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let conn = &mut *tx;
    let shop = literal(shop);
    copy_rows(conn, &phones_sql(&shop), |mut row| {
        sink.phone(row.text()?, row.i64()?);
        Ok(())
    })
    .await?;
    copy_rows(conn, &customers_sql(&shop), |mut row| {
        sink.customer(CustomerView {
            id: row.i64()?,
            first_name: row.opt_text()?,
            last_name: row.opt_text()?,
            email: row.opt_text()?,
            default_zip: row.opt_text()?,
            synced_at: row.micros()?,
            locale: row.opt_text()?,
        });
        Ok(())
    })
    .await?;
    copy_rows(conn, &orders_sql(&shop), |mut row| {
        sink.order(OrderView {
            id: row.i64()?,
            customer_id: row.i64()?,
            created_at: row.micros()?,
            name: row.text()?,
            financial_status: row.opt_text()?,
            fulfillment_status: row.opt_text()?,
            cancelled_at: row.opt_micros()?,
            total_price: row.opt_text()?,
            currency: row.opt_text()?,
            shipping_zip: row.opt_text()?,
            updated_at: row.micros()?,
            synced_at: row.micros()?,
        });
        Ok(())
    })
    .await?;
    copy_rows(conn, &fulfillments_sql(&shop), |mut row| {
        sink.fulfillment(FulfillmentView {
            order_id: row.i64()?,
            id: row.i64()?,
            status: row.opt_text()?,
            shipment_status: row.opt_text()?,
            tracking_company: row.opt_text()?,
            tracking_number: row.opt_text()?,
            tracking_url: row.opt_text()?,
            updated_at: row.micros()?,
            created_at: row.opt_micros()?,
            in_transit_at: row.opt_micros()?,
            delivered_at: row.opt_micros()?,
            estimated_delivery_at: row.opt_micros()?,
        });
        Ok(())
    })
    .await?;
    copy_rows(conn, &refunds_sql(&shop), |mut row| {
        sink.refund(RefundView {
            order_id: row.i64()?,
            amount: row.opt_text()?,
            currency: row.opt_text()?,
            created_at: row.opt_micros()?,
        });
        Ok(())
    })
    .await?;
    copy_rows(conn, &returns_sql(&shop), |mut row| {
        sink.return_of_order(ReturnView {
            order_id: row.i64()?,
            id: row.i64()?,
            status: row.opt_text()?,
            decline_reason: row.opt_text()?,
            exchange_items: row.opt_i64()?,
            label_carrier: row.opt_text()?,
            label_url: row.opt_text()?,
            received: row.i64()? != 0,
        });
        Ok(())
    })
    .await?;
    tx.commit().await
}

/// IDs are sent in chunks this long.
const CHUNK: usize = 10_000;

impl Store {
    /// Customers with up to `orders_each` most recent orders, in bulk: a handful of queries for
    /// any number of customers (used by lookups and by warming the cache).
    pub async fn caller_parts(
        &self,
        shop: &str,
        customers: &[i64],
        orders_each: i64,
    ) -> Result<Vec<CallerParts>, StoreError> {
        let mut all = Vec::with_capacity(customers.len());
        for chunk in customers.chunks(CHUNK) {
            all.extend(on_backend!(self, caller_parts(shop, chunk, orders_each))?);
        }
        Ok(all)
    }

    /// The customer IDs behind each of these phones: `(e164, customer_id)` pairs.
    /// The returns of one order (oldest first).
    pub async fn returns(&self, shop: &str, order: i64) -> Result<Vec<ReturnRow>, StoreError> {
        Ok(on_backend!(self, returns_of_order(shop, order))?)
    }

    pub async fn phone_owners(&self, shop: &str, phones: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        let mut all = Vec::new();
        for chunk in phones.chunks(CHUNK) {
            all.extend(on_backend!(self, phone_owners(shop, chunk))?);
        }
        Ok(all)
    }

    /// Every `(e164, customer_id)` pair for the indexed phones of these customers, including
    /// the other customers who share one of those phones.
    pub async fn owners_of_shared_phones(
        &self,
        shop: &str,
        customers: &[i64],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut all = Vec::new();
        for chunk in customers.chunks(CHUNK) {
            all.extend(on_backend!(self, owners_of_shared_phones(shop, chunk))?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Reads a whole shop into `sink` table by table, in a few sequential scans (the fast way to
    /// warm a whole shop): every phone owner, then every customer, then every order, then every
    /// fulfilment and refund. Postgres streams them with binary `COPY`, SQLite row by row.
    pub async fn scan_callers(&self, shop: &str, sink: &mut impl CallerSink) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut conn = super::pooled(pool).await?;
                Ok(scan_callers_copy(&mut conn, shop, sink).await?)
            }
            Pool::Sqlite(pool) => {
                let mut conn = super::pooled(pool).await?;
                Ok(lite::scan_callers(&mut conn, shop, sink).await?)
            }
        }
    }

    pub async fn customer_count(&self, shop: &str) -> Result<i64, StoreError> {
        Ok(on_backend!(self, customer_count(shop))?)
    }

    /// The `limit` most recently updated customers: who to warm the cache with first.
    pub async fn most_recent_customers(&self, shop: &str, limit: i64) -> Result<Vec<i64>, StoreError> {
        Ok(on_backend!(self, most_recent_customers(shop, limit))?)
    }
}

// The SQL, in callers/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "callers"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/callers/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "callers"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/callers/sql.rs
    pub(crate) use sql::*;
}
