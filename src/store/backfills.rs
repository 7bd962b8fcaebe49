//! Bulk backfills under way: which Shopify bulk operation a resource's backfill reads, when
//! Shopify created it, and how many lines of its result are applied (so a killed backfill
//! resumes there). Never calls Shopify.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

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

// The SQL, in backfills/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "backfills"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/backfills/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "backfills"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/backfills/sql.rs
    pub(crate) use sql::*;
}
