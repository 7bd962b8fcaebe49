//! Call records: one row per call, and its events (steps, keys, verification, transfer) in order.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

/// A call as it starts.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub call_sid: String,
    pub shop: String,
    pub from_raw: String,
    pub from_e164: Option<String>,
    pub to_number: Option<String>,
    pub customer_id: Option<i64>,
    pub started_at: Ts,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CallRow {
    pub call_sid: String,
    pub shop: String,
    pub from_raw: String,
    pub from_e164: Option<String>,
    pub to_number: Option<String>,
    pub customer_id: Option<i64>,
    pub verification: Option<String>,
    pub transfer: Option<String>,
    pub status: String,
    pub started_at: Ts,
    pub ended_at: Option<Ts>,
    pub duration_s: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CallEventRow {
    pub seq: i32,
    pub kind: String,
    pub detail: String,
    pub at: Ts,
}

impl Store {
    /// Records a call; a second start for the same CallSid (a Twilio retry) changes nothing.
    pub async fn start_call(&self, call: &NewCall) -> Result<bool, StoreError> {
        Ok(on_backend!(self, start(call))?)
    }

    /// Appends an event to a call and returns its sequence number.
    pub async fn add_call_event(&self, call_sid: &str, kind: &str, detail: &str, at: Ts) -> Result<i32, StoreError> {
        Ok(on_backend!(self, add_event(call_sid, kind, detail, at))?)
    }

    /// Sets what the call flow concluded so far (customer, verification, transfer).
    pub async fn update_call(
        &self,
        call_sid: &str,
        customer_id: Option<i64>,
        verification: Option<&str>,
        transfer: Option<&str>,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, update(call_sid, customer_id, verification, transfer))?)
    }

    /// Applies a Twilio status callback: the status, and for a final one the end and duration.
    pub async fn call_status(
        &self,
        call_sid: &str,
        status: &str,
        ended_at: Option<Ts>,
        duration_s: Option<i32>,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, status(call_sid, status, ended_at, duration_s))?)
    }

    pub async fn call(&self, call_sid: &str) -> Result<Option<CallRow>, StoreError> {
        Ok(on_backend!(self, get(call_sid))?)
    }

    pub async fn call_events(&self, call_sid: &str) -> Result<Vec<CallEventRow>, StoreError> {
        Ok(on_backend!(self, events(call_sid))?)
    }
}

for_each_backend! {
    use sqlx::Connection;

    pub(crate) async fn start(conn: &mut Conn, call: &NewCall) -> Result<bool, sqlx::Error> {
        let written = sqlx::query(
            "INSERT INTO calls (call_sid, shop, from_raw, from_e164, to_number, customer_id, status, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'in-progress', $7) ON CONFLICT (call_sid) DO NOTHING",
        )
        .bind(&call.call_sid)
        .bind(&call.shop)
        .bind(&call.from_raw)
        .bind(&call.from_e164)
        .bind(&call.to_number)
        .bind(call.customer_id)
        .bind(call.started_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(written == 1)
    }

    pub(crate) async fn add_event(conn: &mut Conn, call_sid: &str, kind: &str, detail: &str, at: Ts) -> Result<i32, sqlx::Error> {
        let mut tx = conn.begin().await?;
        let (seq,): (i32,) = sqlx::query_as(
            "INSERT INTO call_events (call_sid, seq, kind, detail, at)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM call_events WHERE call_sid = $1
             RETURNING seq",
        )
        .bind(call_sid)
        .bind(kind)
        .bind(detail)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    pub(crate) async fn update(
        conn: &mut Conn,
        call_sid: &str,
        customer_id: Option<i64>,
        verification: Option<&str>,
        transfer: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE calls SET customer_id = COALESCE($2, customer_id), verification = COALESCE($3, verification),
                              transfer = COALESCE($4, transfer)
             WHERE call_sid = $1",
        )
        .bind(call_sid)
        .bind(customer_id)
        .bind(verification)
        .bind(transfer)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn status(
        conn: &mut Conn,
        call_sid: &str,
        status: &str,
        ended_at: Option<Ts>,
        duration_s: Option<i32>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE calls SET status = $2, ended_at = COALESCE($3, ended_at), duration_s = COALESCE($4, duration_s)
             WHERE call_sid = $1",
        )
        .bind(call_sid)
        .bind(status)
        .bind(ended_at)
        .bind(duration_s)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn get(conn: &mut Conn, call_sid: &str) -> Result<Option<CallRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT call_sid, shop, from_raw, from_e164, to_number, customer_id, verification, transfer, status,
                    started_at, ended_at, duration_s FROM calls WHERE call_sid = $1",
        )
        .bind(call_sid)
        .fetch_optional(&mut *conn)
        .await
    }

    pub(crate) async fn events(conn: &mut Conn, call_sid: &str) -> Result<Vec<CallEventRow>, sqlx::Error> {
        sqlx::query_as("SELECT seq, kind, detail, at FROM call_events WHERE call_sid = $1 ORDER BY seq")
            .bind(call_sid)
            .fetch_all(&mut *conn)
            .await
    }
}
