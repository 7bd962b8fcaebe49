//! Sync watermarks: how far reconciliation has confirmed each resource of a shop, and where an
//! interrupted sweep resumes.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

/// The epoch, for a row that so far only holds a resume point.
fn never() -> Ts {
    Ts(chrono::DateTime::UNIX_EPOCH)
}

impl Store {
    /// Every row of `resource` was confirmed up to this instant (`None`: never reconciled).
    pub async fn watermark(&self, shop: &str, resource: &str) -> Result<Option<Ts>, StoreError> {
        let row = on_backend!(self, get(shop, resource))?;
        Ok(row.map(|(w, _)| w).filter(|w| *w != never()))
    }

    /// Moves a watermark forward and ends any sweep under way; a watermark never moves back.
    pub async fn advance_watermark(&self, shop: &str, resource: &str, to: Ts, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, advance(shop, resource, to, now))?)
    }

    /// Where the sweep under way resumes after an interruption.
    pub async fn sweep_resume_point(&self, shop: &str, resource: &str) -> Result<Option<Ts>, StoreError> {
        Ok(on_backend!(self, get(shop, resource))?.and_then(|(_, resume)| resume))
    }

    /// Records that a sweep has applied everything updated before `at`.
    pub async fn set_sweep_resume_point(&self, shop: &str, resource: &str, at: Ts, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, set_resume(shop, resource, at, now, never()))?)
    }
}

for_each_backend! {
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

    pub(crate) async fn set_resume(conn: &mut Conn, shop: &str, resource: &str, at: Ts, now: Ts, never: Ts) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sync_watermarks (shop, resource, watermark, updated_at, resume_from) VALUES ($1, $2, $5, $4, $3)
             ON CONFLICT (shop, resource) DO UPDATE SET resume_from = excluded.resume_from, updated_at = excluded.updated_at",
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
}
