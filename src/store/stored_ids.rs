//! The IDs the store holds, a page at a time in ID order: what the reconciler's deletion check
//! asks Shopify about.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};
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

for_each_backend! {
    pub(crate) async fn order_ids(conn: &mut Conn, shop: &str, after: i64, since: Ts, limit: i64) -> Result<Vec<(i64,)>, sqlx::Error> {
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

    pub(crate) async fn customer_ids(conn: &mut Conn, shop: &str, after: i64, limit: i64) -> Result<Vec<(i64,)>, sqlx::Error> {
        sqlx::query_as("SELECT id FROM customers WHERE shop = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(shop)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
    }
}
