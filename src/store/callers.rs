//! Bulk reads for the caller lookup: customers with their recent orders, fulfilments and
//! refunds, and who owns which phone, in a few queries for any number of customers.

use super::copy_out::{copy_rows, literal};
use super::queries::{CUSTOMER_COLUMNS, FULFILLMENT_COLUMNS, ORDER_COLUMNS};
use super::returns::{RETURN_COLUMNS, ReturnRow};
use super::{
    CustomerRow, FulfillmentRow, OrderRow, Pool, RefundRow, Store, StoreError, Ts, for_each_backend, on_backend,
};

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
        "SELECT e164, customer_id FROM phone_numbers WHERE shop = {shop} AND customer_id IS NOT NULL AND e164 IS NOT NULL"
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
                let mut conn = pool.acquire().await?;
                Ok(scan_callers_copy(&mut conn, shop, sink).await?)
            }
            Pool::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
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

for_each_backend! {
    use std::collections::HashMap;

    /// A subquery yielding the elements of the JSON array bound as `$2`: one bind for any
    /// number of IDs (a statement with thousands of binds is slow to prepare on both backends).
    fn json_ints() -> &'static str {
        match BACKEND {
            crate::store::Backend::Postgres => "SELECT (jsonb_array_elements_text($2::jsonb))::bigint",
            crate::store::Backend::Sqlite => "SELECT value FROM json_each($2)",
        }
    }

    fn json_texts() -> &'static str {
        match BACKEND {
            crate::store::Backend::Postgres => "SELECT jsonb_array_elements_text($2::jsonb)",
            crate::store::Backend::Sqlite => "SELECT value FROM json_each($2)",
        }
    }

    fn json_array<T: serde::Serialize>(values: &[T]) -> String {
        serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
    }

    pub(crate) async fn caller_parts(conn: &mut Conn, shop: &str, customers: &[i64], orders_each: i64) -> Result<Vec<CallerParts>, sqlx::Error> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_array(customers);
        let rows: Vec<CustomerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE shop = $1 AND id IN ({})",
            json_ints()
        )))
        .bind(shop)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;

        let orders: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM (SELECT o.*, ROW_NUMBER() OVER (PARTITION BY customer_id
                 ORDER BY shopify_created_at DESC, id DESC) AS recent FROM orders o
                 WHERE shop = $1 AND customer_id IN ({})) ranked
             WHERE recent <= $3 ORDER BY customer_id, shopify_created_at DESC, id DESC",
            json_ints()
        )))
        .bind(shop)
        .bind(&ids)
        .bind(orders_each)
        .fetch_all(&mut *conn)
        .await?;

        let order_ids = json_array(&orders.iter().map(|o| o.id).collect::<Vec<i64>>());
        let mut fulfillments: HashMap<i64, Vec<FulfillmentRow>> = HashMap::new();
        let rows_f: Vec<FulfillmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {FULFILLMENT_COLUMNS} FROM fulfillments WHERE shop = $1 AND order_id IN ({}) ORDER BY id",
            json_ints()
        )))
        .bind(shop)
        .bind(&order_ids)
        .fetch_all(&mut *conn)
        .await?;
        for f in rows_f {
            fulfillments.entry(f.order_id).or_default().push(f);
        }
        let mut refunds: HashMap<i64, Vec<RefundRow>> = HashMap::new();
        let rows_r: Vec<RefundRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, order_id, amount, currency, shopify_created_at FROM refunds
             WHERE shop = $1 AND order_id IN ({}) ORDER BY id",
            json_ints()
        )))
        .bind(shop)
        .bind(&order_ids)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows_r {
            refunds.entry(r.order_id).or_default().push(r);
        }
        let mut returns: HashMap<i64, Vec<ReturnRow>> = HashMap::new();
        let rows_ret: Vec<ReturnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RETURN_COLUMNS} FROM returns WHERE shop = $1 AND order_id IN ({}) ORDER BY id",
            json_ints()
        )))
        .bind(shop)
        .bind(&order_ids)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows_ret {
            if let Some(order) = r.order_id {
                returns.entry(order).or_default().push(r);
            }
        }
        let mut by_customer: HashMap<i64, Vec<OrderParts>> = HashMap::new();
        for order in orders {
            let parts = OrderParts {
                fulfillments: fulfillments.remove(&order.id).unwrap_or_default(),
                refunds: refunds.remove(&order.id).unwrap_or_default(),
                returns: returns.remove(&order.id).unwrap_or_default(),
                order,
            };
            if let Some(customer) = parts.order.customer_id {
                by_customer.entry(customer).or_default().push(parts);
            }
        }
        Ok(rows
            .into_iter()
            .map(|customer| CallerParts { orders: by_customer.remove(&customer.id).unwrap_or_default(), customer })
            .collect())
    }

    pub(crate) async fn returns_of_order(conn: &mut Conn, shop: &str, order: i64) -> Result<Vec<ReturnRow>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RETURN_COLUMNS} FROM returns WHERE shop = $1 AND order_id = $2 ORDER BY id"
        )))
        .bind(shop)
        .bind(order)
        .fetch_all(&mut *conn)
        .await
    }

    pub(crate) async fn phone_owners(conn: &mut Conn, shop: &str, phones: &[String]) -> Result<Vec<(String, i64)>, sqlx::Error> {
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT e164, customer_id FROM phone_numbers
             WHERE shop = $1 AND customer_id IS NOT NULL AND e164 IN ({})",
            json_texts()
        )))
        .bind(shop)
        .bind(json_array(phones))
        .fetch_all(&mut *conn)
        .await
    }

    pub(crate) async fn owners_of_shared_phones(conn: &mut Conn, shop: &str, customers: &[i64]) -> Result<Vec<(String, i64)>, sqlx::Error> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT e164, customer_id FROM phone_numbers
             WHERE shop = $1 AND customer_id IS NOT NULL AND e164 IN (
                 SELECT e164 FROM phone_numbers WHERE shop = $1 AND e164 IS NOT NULL AND customer_id IN ({}))",
            json_ints()
        )))
        .bind(shop)
        .bind(json_array(customers))
        .fetch_all(&mut *conn)
        .await
    }

    pub(crate) async fn customer_count(conn: &mut Conn, shop: &str) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM customers WHERE shop = $1").bind(shop).fetch_one(&mut *conn).await?;
        Ok(n)
    }

    /// Row by row: the portable way (Postgres has a faster one, `scan_callers_copy`).
    pub(crate) async fn scan_callers(conn: &mut Conn, shop: &str, sink: &mut impl CallerSink) -> Result<(), sqlx::Error> {
        use futures::TryStreamExt;
        use sqlx::Row;
        let micros = |t: Ts| t.0.timestamp_micros();
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(phones_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.phone(row.try_get(0)?, row.try_get(1)?);
            }
        }
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(customers_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.customer(CustomerView {
                    id: row.try_get(0)?,
                    first_name: row.try_get(1)?,
                    last_name: row.try_get(2)?,
                    email: row.try_get(3)?,
                    default_zip: row.try_get(4)?,
                    synced_at: micros(row.try_get(5)?),
                    locale: row.try_get(6)?,
                });
            }
        }
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(orders_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.order(OrderView {
                    id: row.try_get(0)?,
                    customer_id: row.try_get(1)?,
                    created_at: micros(row.try_get(2)?),
                    name: row.try_get(3)?,
                    financial_status: row.try_get(4)?,
                    fulfillment_status: row.try_get(5)?,
                    cancelled_at: row.try_get::<Option<Ts>, _>(6)?.map(micros),
                    total_price: row.try_get(7)?,
                    currency: row.try_get(8)?,
                    shipping_zip: row.try_get(9)?,
                    updated_at: micros(row.try_get(10)?),
                    synced_at: micros(row.try_get(11)?),
                });
            }
        }
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(fulfillments_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.fulfillment(FulfillmentView {
                    order_id: row.try_get(0)?,
                    id: row.try_get(1)?,
                    status: row.try_get(2)?,
                    shipment_status: row.try_get(3)?,
                    tracking_company: row.try_get(4)?,
                    tracking_number: row.try_get(5)?,
                    tracking_url: row.try_get(6)?,
                    updated_at: micros(row.try_get(7)?),
                    created_at: row.try_get::<Option<Ts>, _>(8)?.map(micros),
                    in_transit_at: row.try_get::<Option<Ts>, _>(9)?.map(micros),
                    delivered_at: row.try_get::<Option<Ts>, _>(10)?.map(micros),
                    estimated_delivery_at: row.try_get::<Option<Ts>, _>(11)?.map(micros),
                });
            }
        }
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(refunds_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.refund(RefundView {
                    order_id: row.try_get(0)?,
                    amount: row.try_get(1)?,
                    currency: row.try_get(2)?,
                    created_at: row.try_get::<Option<Ts>, _>(3)?.map(micros),
                });
            }
        }
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(returns_sql("$1"))).bind(shop).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                sink.return_of_order(ReturnView {
                    order_id: row.try_get(0)?,
                    id: row.try_get(1)?,
                    status: row.try_get(2)?,
                    decline_reason: row.try_get(3)?,
                    exchange_items: row.try_get(4)?,
                    label_carrier: row.try_get(5)?,
                    label_url: row.try_get(6)?,
                    received: row.try_get::<i64, _>(7)? != 0,
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn most_recent_customers(conn: &mut Conn, shop: &str, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM customers WHERE shop = $1 ORDER BY updated_at DESC LIMIT $2")
            .bind(shop)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
