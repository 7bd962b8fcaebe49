//! The IDs the store holds, a page at a time in ID order: what the reconciler's deletion check
//! asks Shopify about.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};
use crate::domain::ShopifyId;

impl Store {
    /// Up to `limit` stored order IDs of `shop` above `after`, created at or after
    /// `created_since` (all when `None`), in ID order.
    pub async fn order_ids_after(
        &self,
        shop: &str,
        after: Option<ShopifyId>,
        created_since: Option<Ts>,
        limit: usize,
    ) -> Result<Vec<ShopifyId>, StoreError> {
        let after = after.map_or(0, |id| id.0);
        let since = created_since.unwrap_or(Ts(chrono::DateTime::UNIX_EPOCH));
        let rows: Vec<(i64,)> = on_backend!(self, order_ids(shop, after, since, limit as i64))?;
        Ok(rows.into_iter().map(|(id,)| ShopifyId(id)).collect())
    }

    /// Up to `limit` stored customer IDs of `shop` above `after`, in ID order.
    pub async fn customer_ids_after(
        &self,
        shop: &str,
        after: Option<ShopifyId>,
        limit: usize,
    ) -> Result<Vec<ShopifyId>, StoreError> {
        let after = after.map_or(0, |id| id.0);
        let rows: Vec<(i64,)> = on_backend!(self, customer_ids(shop, after, limit as i64))?;
        Ok(rows.into_iter().map(|(id,)| ShopifyId(id)).collect())
    }
}

// The SQL, in stored_ids/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "stored_ids"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/stored_ids/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "stored_ids"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/stored_ids/sql.rs
    pub(crate) use sql::*;
}
