//! Bulk backfills under way: which Shopify bulk operation a resource's backfill reads, when
//! Shopify created it, and how many lines of its result are applied (so a killed backfill
//! resumes there). Never calls Shopify.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

/// A backfill under way for one resource of a shop.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkProgress {
    /// `gid://shopify/BulkOperation/…`
    pub operation_id: String,
    /// The operation's `createdAt`: what it read is confirmed up to this instant.
    pub created_at: Ts,
    /// Lines of its JSONL result applied so far (whole records: a parent and its children).
    pub lines_applied: i64,
}

impl Store {
    /// The backfill under way for `resource`, if any.
    pub async fn bulk_backfill(&self, shop: &str, resource: &str) -> Result<Option<BulkProgress>, StoreError> {
        let row = on_backend!(self, get(shop, resource))?;
        Ok(row.map(|(operation_id, created_at, lines_applied)| BulkProgress {
            operation_id,
            created_at,
            lines_applied,
        }))
    }

    /// Records that `resource` is backfilled from a new operation (nothing of it applied yet).
    pub async fn start_bulk_backfill(
        &self,
        shop: &str,
        resource: &str,
        operation_id: &str,
        created_at: Ts,
        now: Ts,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, start(shop, resource, operation_id, created_at, now))?)
    }

    /// Records that the first `lines` lines of the operation's result are applied.
    pub async fn set_bulk_lines_applied(
        &self,
        shop: &str,
        resource: &str,
        operation_id: &str,
        lines: i64,
        now: Ts,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, set_lines(shop, resource, operation_id, lines, now))?)
    }

    /// Forgets the backfill of `resource` (finished, or its operation is of no more use).
    pub async fn end_bulk_backfill(&self, shop: &str, resource: &str) -> Result<(), StoreError> {
        Ok(on_backend!(self, end(shop, resource))?)
    }
}

for_each_backend! {
    pub(crate) async fn get(conn: &mut Conn, shop: &str, resource: &str) -> Result<Option<(String, Ts, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT operation_id, created_at, lines_applied FROM bulk_backfills WHERE shop = $1 AND resource = $2")
            .bind(shop)
            .bind(resource)
            .fetch_optional(&mut *conn)
            .await
    }

    pub(crate) async fn start(conn: &mut Conn, shop: &str, resource: &str, operation_id: &str, created_at: Ts, now: Ts) -> Result<(), sqlx::Error> {
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

    pub(crate) async fn set_lines(conn: &mut Conn, shop: &str, resource: &str, operation_id: &str, lines: i64, now: Ts) -> Result<(), sqlx::Error> {
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
}
