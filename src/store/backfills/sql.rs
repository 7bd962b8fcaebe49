//! The SQL of `store::backfills`, written once and compiled twice: as `backfills::pg` and
//! `backfills::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn get(conn: &mut Conn, shop: &str, resource: &str) -> Result<Option<(String, Ts, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, created_at, lines_applied FROM bulk_backfills WHERE shop = $1 AND resource = $2",
    )
    .bind(shop)
    .bind(resource)
    .fetch_optional(&mut *conn)
    .await
}

pub(crate) async fn start(
    conn: &mut Conn,
    shop: &str,
    resource: &str,
    operation_id: &str,
    created_at: Ts,
    now: Ts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bulk_backfills (shop, resource, operation_id, created_at, lines_applied, updated_at)
         VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (shop, resource) DO UPDATE SET operation_id = excluded.operation_id,
            created_at = excluded.created_at, lines_applied = 0, updated_at = excluded.updated_at",
    )
    .bind(shop)
    .bind(resource)
    .bind(operation_id)
    .bind(created_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_lines(
    conn: &mut Conn,
    shop: &str,
    resource: &str,
    operation_id: &str,
    lines: i64,
    now: Ts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bulk_backfills SET lines_applied = $4, updated_at = $5
         WHERE shop = $1 AND resource = $2 AND operation_id = $3",
    )
    .bind(shop)
    .bind(resource)
    .bind(operation_id)
    .bind(lines)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn end(conn: &mut Conn, shop: &str, resource: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bulk_backfills WHERE shop = $1 AND resource = $2")
        .bind(shop)
        .bind(resource)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
