//! Stream handoffs: the TwiML a Media Streams call goes on with once its stream is closed (the
//! transfer or goodbye the session decided). One row per call, read once, by any instance.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

/// A handoff is read within a second of being written; one older than this was never asked for
/// (the caller hung up first) and is removed.
const KEEP: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What a stream's session decided, for the `<Redirect>` that follows the stream.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub call_sid: String,
    pub shop: String,
    /// The customer the call was about, so a customers/redact removes the row.
    pub customer_id: Option<i64>,
    pub twiml: String,
}

impl Store {
    /// Saves a handoff (replacing one of the same call) and removes the forgotten ones.
    pub async fn put_handoff(&self, handoff: &Handoff, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, put(handoff, now))?)
    }

    /// The call's handoff, removed as it is read; `None` when the session decided nothing.
    pub async fn take_handoff(&self, call_sid: &str) -> Result<Option<String>, StoreError> {
        Ok(on_backend!(self, take(call_sid))?)
    }
}

for_each_backend! {
    use super::{Handoff, KEEP};

    pub(crate) async fn put(conn: &mut Conn, h: &Handoff, now: Ts) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO stream_handoffs (call_sid, shop, customer_id, twiml, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (call_sid) DO UPDATE SET customer_id = excluded.customer_id, twiml = excluded.twiml,
                 created_at = excluded.created_at",
        )
        .bind(&h.call_sid)
        .bind(&h.shop)
        .bind(h.customer_id)
        .bind(&h.twiml)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM stream_handoffs WHERE created_at < $1")
            .bind(Ts::from(now.0 - KEEP))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn take(conn: &mut Conn, call_sid: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String,)> = sqlx::query_as("DELETE FROM stream_handoffs WHERE call_sid = $1 RETURNING twiml")
            .bind(call_sid)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|(twiml,)| twiml))
    }
}
