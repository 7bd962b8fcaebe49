//! The SQL of `store::handoffs`, written once and compiled twice: as `handoffs::pg` and
//! `handoffs::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use super::super::{Handoff, KEEP};

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
