//! The SQL of `store::stored_ids`, written once and compiled twice: as `stored_ids::pg` and
//! `stored_ids::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn order_ids(
    conn: &mut Conn,
    shop: &str,
    after: i64,
    since: Ts,
    limit: i64,
) -> Result<Vec<(i64,)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id FROM orders WHERE shop = $1 AND id > $2 AND shopify_created_at >= $3 ORDER BY id LIMIT $4",
    )
    .bind(shop)
    .bind(after)
    .bind(since)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn customer_ids(
    conn: &mut Conn,
    shop: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64,)>, sqlx::Error> {
    sqlx::query_as("SELECT id FROM customers WHERE shop = $1 AND id > $2 ORDER BY id LIMIT $3")
        .bind(shop)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
}
