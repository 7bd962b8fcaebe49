//! The SQL of `store::reports`, written once and compiled twice: as `reports::pg` and
//! `reports::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use sqlx::Connection;

/// The calls started in `[from, to)` and their events. Whether a caller called again is the
/// same number's next call (a window function over the calls up to `to` + the window); the
/// events are read by their time (a call's events come within `CALL_SPAN` of its start),
/// an index range scan rather than one lookup per call.
pub(crate) async fn facts(
    conn: &mut Conn,
    shop: &str,
    from: Ts,
    to: Ts,
    window_micros: i64,
) -> Result<Vec<CallFacts>, sqlx::Error> {
    let window = chrono::Duration::microseconds(window_micros);
    let calls: Vec<CallLine> = sqlx::query_as(
        "SELECT call_sid, started_at, transfer, from_e164 IS NOT NULL AS has_caller_id, first_word_ms, next_at
         FROM (SELECT call_sid, started_at, transfer, from_e164, first_word_ms,
                      LEAD(started_at) OVER (PARTITION BY from_e164 ORDER BY started_at) AS next_at
               FROM calls WHERE shop = $1 AND started_at >= $2 AND started_at < $3) AS x
         WHERE started_at < $4",
    )
    .bind(shop)
    .bind(from)
    .bind(Ts(to.0 + window))
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<String> = KINDS.iter().map(|k| format!("'{}'", k.as_str())).collect();
    let events: Vec<EventLine> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT call_sid, step, idx, kind, detail FROM call_events
         WHERE at >= $1 AND at < $2 AND kind IN ({})",
        kinds.join(", ")
    )))
    .bind(from)
    .bind(Ts(to.0 + CALL_SPAN))
    .fetch_all(&mut *conn)
    .await?;
    Ok(facts_of(calls, events, window))
}

pub(crate) async fn rolled_through(conn: &mut Conn, shop: &str) -> Result<Option<Ts>, sqlx::Error> {
    sqlx::query_scalar("SELECT rolled_through FROM call_days_rolled WHERE shop = $1")
        .bind(shop)
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn first_call(conn: &mut Conn, shop: &str) -> Result<Option<Ts>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(started_at) FROM calls WHERE shop = $1").bind(shop).fetch_one(&mut *conn).await
}

pub(crate) async fn stored_days(
    conn: &mut Conn,
    shop: &str,
    from: Ts,
    to: Ts,
) -> Result<Vec<(Ts, String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT day, figure, label, n FROM call_days WHERE shop = $1 AND day >= $2 AND day < $3")
        .bind(shop)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await
}

/// One day's counts and the watermark past it, in one transaction (a day rolled again by
/// another instance is replaced, not added to).
pub(crate) async fn store_day(
    conn: &mut Conn,
    shop: &str,
    day: Ts,
    next: Ts,
    rows: &[(String, String, i64)],
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM call_days WHERE shop = $1 AND day = $2").bind(shop).bind(day).execute(&mut *tx).await?;
    for (figure, label, n) in rows {
        sqlx::query(
            "INSERT INTO call_days (shop, day, figure, label, n) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (shop, day, figure, label) DO UPDATE SET n = excluded.n",
        )
        .bind(shop)
        .bind(day)
        .bind(figure)
        .bind(label)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO call_days_rolled (shop, rolled_through) VALUES ($1, $2)
         ON CONFLICT (shop) DO UPDATE SET rolled_through = excluded.rolled_through
         WHERE call_days_rolled.rolled_through < excluded.rolled_through",
    )
    .bind(shop)
    .bind(next)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub(crate) async fn purge(conn: &mut Conn, shop: &str, before: Ts) -> Result<Purged, sqlx::Error> {
    let mut tx = conn.begin().await?;
    // What else holds a caller of those calls: the texts sent (numbers), Media Streams
    // handoffs (the caller's context), notifications, voicemails (the caller's words) and call-backs.
    for table in ["sms_messages", "stream_handoffs", "notifications", "voicemails", "callbacks"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE call_sid IN (SELECT call_sid FROM calls WHERE shop = $1 AND started_at < $2)"
        )))
        .bind(shop)
        .bind(before)
        .execute(&mut *tx)
        .await?;
    }
    let events = sqlx::query(
        "DELETE FROM call_events WHERE call_sid IN (SELECT call_sid FROM calls WHERE shop = $1 AND started_at < $2)",
    )
    .bind(shop)
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let calls = sqlx::query("DELETE FROM calls WHERE shop = $1 AND started_at < $2")
        .bind(shop)
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Purged { calls, events })
}
