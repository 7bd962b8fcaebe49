//! How the shop names its orders (`#1001`, `SO-1001-A`: a prefix and suffix around the order
//! number, set in the shop's checkout settings), learned from the stored orders, and orders
//! found by the number a caller keys. Reads only; never writes.

use super::queries::ORDER_COLUMNS;
use super::{OrderRow, Pool, Store, StoreError, backend, on_backend};
use crate::domain::order_number_in;

/// One name format the shop has used: `prefix` + order number + `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat {
    pub prefix: String,
    pub suffix: String,
}

impl NameFormat {
    /// The name Shopify gives order `number` in this format (`SO-` 1001 `-A` → `SO-1001-A`).
    pub fn name(&self, number: &str) -> String {
        format!("{}{number}{}", self.prefix, self.suffix)
    }
}

/// How many recent orders are read to learn the formats (a shop changes its format rarely).
const SAMPLE: i64 = 50;

impl Store {
    /// The newest order whose order number is `number` (what a caller keys, whatever the shop's
    /// prefix and suffix).
    pub async fn order_numbered(&self, shop: &str, number: i64) -> Result<Option<OrderRow>, StoreError> {
        Ok(on_backend!(self, order_numbered(shop, number))?)
    }

    /// The name formats of the shop's recent orders, most recent first, each once.
    pub async fn order_name_formats(&self, shop: &str) -> Result<Vec<NameFormat>, StoreError> {
        let names: Vec<String> = on_backend!(self, recent_names(shop))?;
        let mut formats: Vec<NameFormat> = Vec::new();
        for name in names {
            if let Some((_, prefix, suffix)) = order_number_in(&name) {
                let format = NameFormat { prefix: prefix.to_string(), suffix: suffix.to_string() };
                if !formats.contains(&format) {
                    formats.push(format);
                }
            }
        }
        Ok(formats)
    }
}

// The SQL, in order_names/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "order_names"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/order_names/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "order_names"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/order_names/sql.rs
    pub(crate) use sql::*;
}
