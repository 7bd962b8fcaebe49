//! Bulk reads for the caller lookup: customers with their recent orders, fulfilments and
//! refunds, and who owns which phone, in a few queries for any number of customers.

use super::queries::{CUSTOMER_COLUMNS, ORDER_COLUMNS};
use super::{CustomerRow, FulfillmentRow, OrderRow, Pool, RefundRow, Store, StoreError, for_each_backend, on_backend};

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

    /// Every customer of the shop with their recent orders, and every `(e164, customer_id)` pair,
    /// read table by table in a few sequential scans: the fast way to warm a whole shop.
    pub async fn all_callers(
        &self,
        shop: &str,
        orders_each: i64,
    ) -> Result<(Vec<(String, i64)>, Vec<CallerParts>), StoreError> {
        Ok(on_backend!(self, all_callers(shop, orders_each))?)
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
            "SELECT id, order_id, status, shipment_status, tracking_company, tracking_number, tracking_url, updated_at
             FROM fulfillments WHERE shop = $1 AND order_id IN ({}) ORDER BY id",
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
        let mut by_customer: HashMap<i64, Vec<OrderParts>> = HashMap::new();
        for order in orders {
            let parts = OrderParts {
                fulfillments: fulfillments.remove(&order.id).unwrap_or_default(),
                refunds: refunds.remove(&order.id).unwrap_or_default(),
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

    pub(crate) async fn all_callers(conn: &mut Conn, shop: &str, orders_each: i64) -> Result<(Vec<(String, i64)>, Vec<CallerParts>), sqlx::Error> {
        use futures::TryStreamExt;
        let owners: Vec<(String, i64)> = sqlx::query_as(
            "SELECT e164, customer_id FROM phone_numbers WHERE shop = $1 AND customer_id IS NOT NULL AND e164 IS NOT NULL",
        )
        .bind(shop)
        .fetch_all(&mut *conn)
        .await?;
        // Only the columns a cached caller keeps: the rest default (a third less to decode).
        let customers: Vec<CustomerRow> = sqlx::query_as(
            "SELECT id, first_name, last_name, email, default_zip, updated_at, synced_at FROM customers WHERE shop = $1",
        )
        .bind(shop)
        .fetch_all(&mut *conn)
        .await?;
        // In index order, newest first per customer: keep the first `orders_each` of each.
        let mut orders: HashMap<i64, Vec<OrderParts>> = HashMap::with_capacity(customers.len());
        let mut kept: HashMap<i64, (i64, usize)> = HashMap::new();
        {
            let mut rows = sqlx::query_as::<_, OrderRow>(
                "SELECT id, customer_id, name, financial_status, fulfillment_status, cancelled_at, total_price, currency,
                        shipping_zip, shopify_created_at, updated_at, synced_at
                 FROM orders WHERE shop = $1 AND customer_id IS NOT NULL
                 ORDER BY customer_id, shopify_created_at DESC",
            )
            .bind(shop)
            .fetch(&mut *conn);
            while let Some(order) = rows.try_next().await? {
                let Some(customer) = order.customer_id else { continue };
                let list = orders.entry(customer).or_default();
                if (list.len() as i64) < orders_each {
                    kept.insert(order.id, (customer, list.len()));
                    list.push(OrderParts { order, fulfillments: Vec::new(), refunds: Vec::new() });
                }
            }
        }
        {
            let mut rows = sqlx::query_as::<_, FulfillmentRow>(
                "SELECT id, order_id, status, shipment_status, tracking_company, tracking_number, tracking_url, updated_at
                 FROM fulfillments WHERE shop = $1",
            )
            .bind(shop)
            .fetch(&mut *conn);
            while let Some(f) = rows.try_next().await? {
                if let Some((customer, index)) = kept.get(&f.order_id)
                    && let Some(parts) = orders.get_mut(customer).and_then(|l| l.get_mut(*index))
                {
                    parts.fulfillments.push(f);
                }
            }
        }
        {
            let mut rows = sqlx::query_as::<_, RefundRow>(
                "SELECT id, order_id, amount, currency, shopify_created_at FROM refunds WHERE shop = $1",
            )
            .bind(shop)
            .fetch(&mut *conn);
            while let Some(r) = rows.try_next().await? {
                if let Some((customer, index)) = kept.get(&r.order_id)
                    && let Some(parts) = orders.get_mut(customer).and_then(|l| l.get_mut(*index))
                {
                    parts.refunds.push(r);
                }
            }
        }
        // Read unsorted (a sort of every fulfilment costs Postgres seconds); order each order's own.
        for parts in orders.values_mut().flatten() {
            parts.fulfillments.sort_unstable_by_key(|f| f.id);
            parts.refunds.sort_unstable_by_key(|r| r.id);
        }
        let parts = customers
            .into_iter()
            .map(|customer| CallerParts { orders: orders.remove(&customer.id).unwrap_or_default(), customer })
            .collect();
        Ok((owners, parts))
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
