//! Sync watermarks: how far reconciliation has confirmed each resource of a shop, and where an
//! interrupted sweep resumes.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

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

// The SQL, in watermarks/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "watermarks"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/watermarks/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "watermarks"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/watermarks/sql.rs
    pub(crate) use sql::*;
}
