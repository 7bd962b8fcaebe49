//! The SQL of `store::queries`, written once and compiled twice: as `queries::pg` and
//! `queries::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn count_applied_migrations(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut *conn).await?;
    Ok(n)
}

pub(crate) async fn customers_by_phone(
    conn: &mut Conn,
    shop: &str,
    e164: &str,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers
         WHERE shop = $1 AND id IN (SELECT customer_id FROM phone_numbers WHERE shop = $1 AND e164 = $2)
         ORDER BY updated_at DESC"
    )))
    .bind(shop)
    .bind(e164)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn customer(conn: &mut Conn, shop: &str, id: i64) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE shop = $1 AND id = $2")))
        .bind(shop)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn recent_orders(
    conn: &mut Conn,
    shop: &str,
    customer: i64,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE shop = $1 AND customer_id = $2
         ORDER BY shopify_created_at DESC LIMIT $3"
    )))
    .bind(shop)
    .bind(customer)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn order(conn: &mut Conn, shop: &str, id: i64) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE shop = $1 AND id = $2")))
        .bind(shop)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn order_named(conn: &mut Conn, shop: &str, name: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE shop = $1 AND name = $2 ORDER BY shopify_created_at DESC LIMIT 1"
    )))
    .bind(shop)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
}

pub(crate) async fn fulfillments(conn: &mut Conn, shop: &str, order: i64) -> Result<Vec<FulfillmentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {FULFILLMENT_COLUMNS} FROM fulfillments WHERE shop = $1 AND order_id = $2 ORDER BY id"
    )))
    .bind(shop)
    .bind(order)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn refunds(conn: &mut Conn, shop: &str, order: i64) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, order_id, amount, currency, shopify_created_at FROM refunds
         WHERE shop = $1 AND order_id = $2 ORDER BY id",
    )
    .bind(shop)
    .bind(order)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn phones_of_customer(
    conn: &mut Conn,
    shop: &str,
    customer: i64,
) -> Result<Vec<PhoneRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT owner_kind, owner_id, source, customer_id, raw, e164 FROM phone_numbers
         WHERE shop = $1 AND (customer_id = $2 OR (owner_kind = 'customer' AND owner_id = $2))
         ORDER BY owner_kind, owner_id, source",
    )
    .bind(shop)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn phones_of_order(conn: &mut Conn, shop: &str, order: i64) -> Result<Vec<PhoneRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT owner_kind, owner_id, source, customer_id, raw, e164 FROM phone_numbers
         WHERE shop = $1 AND owner_kind = 'order' AND owner_id = $2 ORDER BY source",
    )
    .bind(shop)
    .bind(order)
    .fetch_all(&mut *conn)
    .await
}
