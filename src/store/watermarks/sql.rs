//! The SQL of `store::watermarks`, written once and compiled twice: as `watermarks::pg` and
//! `watermarks::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn get(conn: &mut Conn, shop: &str, resource: &str) -> Result<Option<(Ts, Option<Ts>)>, sqlx::Error> {
    sqlx::query_as("SELECT watermark, resume_from FROM sync_watermarks WHERE shop = $1 AND resource = $2")
        .bind(shop)
        .bind(resource)
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn advance(conn: &mut Conn, shop: &str, resource: &str, to: Ts, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_watermarks (shop, resource, watermark, updated_at, resume_from) VALUES ($1, $2, $3, $4, NULL)
         ON CONFLICT (shop, resource) DO UPDATE SET
            watermark = CASE WHEN excluded.watermark > sync_watermarks.watermark
                             THEN excluded.watermark ELSE sync_watermarks.watermark END,
            updated_at = excluded.updated_at, resume_from = NULL",
    )
    .bind(shop)
    .bind(resource)
    .bind(to)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_resume(
    conn: &mut Conn,
    shop: &str,
    resource: &str,
    at: Ts,
    now: Ts,
    never: Ts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_watermarks (shop, resource, watermark, updated_at, resume_from) VALUES ($1, $2, $5, $4, $3)
         ON CONFLICT (shop, resource) DO UPDATE SET resume_from = excluded.resume_from, updated_at = \
         excluded.updated_at",
    )
    .bind(shop)
    .bind(resource)
    .bind(at)
    .bind(now)
    .bind(never)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
