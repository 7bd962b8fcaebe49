//! The SQL of `store::order_names`, written once and compiled twice: as `order_names::pg` and
//! `order_names::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn order_numbered(conn: &mut Conn, shop: &str, number: i64) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE shop = $1 AND order_number = $2 ORDER BY shopify_created_at \
         DESC LIMIT 1"
    )))
    .bind(shop)
    .bind(number)
    .fetch_optional(&mut *conn)
    .await
}

pub(crate) async fn recent_names(conn: &mut Conn, shop: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM orders WHERE shop = $1 ORDER BY shopify_created_at DESC LIMIT $2")
            .bind(shop)
            .bind(SAMPLE)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}
