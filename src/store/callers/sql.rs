//! The SQL of `store::callers`, written once and compiled twice: as `callers::pg` and
//! `callers::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

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

pub(crate) async fn caller_parts(
    conn: &mut Conn,
    shop: &str,
    customers: &[i64],
    orders_each: i64,
) -> Result<Vec<CallerParts>, sqlx::Error> {
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

pub(crate) async fn phone_owners(
    conn: &mut Conn,
    shop: &str,
    phones: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
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

pub(crate) async fn owners_of_shared_phones(
    conn: &mut Conn,
    shop: &str,
    customers: &[i64],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
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
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM customers WHERE shop = $1").bind(shop).fetch_one(&mut *conn).await?;
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
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM customers WHERE shop = $1 ORDER BY updated_at DESC LIMIT $2")
            .bind(shop)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
