//! The SQL of `store::calls`, written once and compiled twice: as `calls::pg` and
//! `calls::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use sqlx::Connection;

pub(crate) async fn customer_calls_since(
    conn: &mut Conn,
    shop: &str,
    customer_id: i64,
    since: Ts,
    except: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM calls WHERE shop = $1 AND customer_id = $2 AND started_at >= $3 AND call_sid <> $4",
    )
    .bind(shop)
    .bind(customer_id)
    .bind(since)
    .bind(except)
    .fetch_one(&mut *conn)
    .await
}

/// Rows of the JSON array bound as `$param`, as a table with these typed columns.
fn json_rows(param: u8, columns: &[(&str, &str)]) -> String {
    match BACKEND {
        crate::store::Backend::Postgres => {
            let defs: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
            format!("json_to_recordset(${param}::json) AS x({})", defs.join(", "))
        }
        crate::store::Backend::Sqlite => {
            let cols: Vec<String> =
                columns.iter().map(|(n, _)| format!("json_extract(value, '$.{n}') AS {n}")).collect();
            format!("(SELECT {} FROM json_each(${param})) AS x", cols.join(", "))
        }
    }
}

/// A column of microseconds since the epoch, as the backend's timestamp.
fn instant(column: &str) -> String {
    match BACKEND {
        crate::store::Backend::Postgres => format!("TIMESTAMPTZ 'epoch' + x.{column} * INTERVAL '1 microsecond'"),
        crate::store::Backend::Sqlite => format!("x.{column}"),
    }
}

/// `INSERT INTO calls` of the starts (a JSON array) bound as `$param`.
fn insert_starts(param: u8) -> String {
    let rows = json_rows(
        param,
        &[
            ("call_sid", "text"),
            ("shop", "text"),
            ("from_raw", "text"),
            ("from_e164", "text"),
            ("to_number", "text"),
            ("customer_id", "bigint"),
            ("verification", "text"),
            ("transfer", "text"),
            ("started_at", "bigint"),
            ("first_word_ms", "integer"),
        ],
    );
    format!(
        "INSERT INTO calls (call_sid, shop, from_raw, from_e164, to_number, customer_id, verification, transfer,
                            status, started_at, first_word_ms)
         SELECT x.call_sid, x.shop, x.from_raw, x.from_e164, x.to_number, x.customer_id, x.verification,
                x.transfer, 'in-progress', {}, x.first_word_ms FROM {rows} WHERE true
         ON CONFLICT (call_sid) DO NOTHING",
        instant("started_at")
    )
}

/// `INSERT INTO call_events` of the events (a JSON array) bound as `$param`.
fn insert_events(param: u8) -> String {
    let rows = json_rows(
        param,
        &[
            ("call_sid", "text"),
            ("step", "integer"),
            ("idx", "integer"),
            ("kind", "text"),
            ("detail", "text"),
            ("at", "bigint"),
        ],
    );
    format!(
        "INSERT INTO call_events (call_sid, step, idx, kind, detail, at)
         SELECT x.call_sid, x.step, x.idx, x.kind, x.detail, {} FROM {rows} WHERE true
         ON CONFLICT (call_sid, step, idx) DO NOTHING",
        instant("at")
    )
}

/// Rows as the JSON array the statements read.
fn json<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).unwrap_or_default()
}

/// The statements, made once.
struct Statements {
    starts: String,
    events: String,
}

static STATEMENTS: std::sync::LazyLock<Statements> =
    std::sync::LazyLock::new(|| Statements { starts: insert_starts(1), events: insert_events(1) });

/// A batch in one transaction. On Postgres a batch of starts and events only (every incoming
/// call's) takes the one-statement path in `started.rs`; this path is SQLite's, and Postgres's
/// for batches with outcomes and statuses.
pub(crate) async fn record(conn: &mut Conn, writes: &[CallWrite]) -> Result<(), sqlx::Error> {
    let mut starts: Vec<&NewCall> = Vec::new();
    let mut events: Vec<&CallEvent> = Vec::new();
    for write in writes {
        match write {
            CallWrite::Start(call) => starts.push(call),
            CallWrite::Event(event) => events.push(event),
            CallWrite::Outcome { .. } | CallWrite::Status { .. } => {}
        }
    }
    // A call record is written for agents' screens within milliseconds, so its commit does not
    // wait for the WAL flush (here 15-25 ms a commit). If Postgres itself crashes, the last
    // fraction of a second of call events can be lost; never corrupted, never half-written, and
    // webhook deliveries keep synchronous commits.
    let mut tx = conn.begin().await?;
    if BACKEND == crate::store::Backend::Postgres {
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    }
    if !starts.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(STATEMENTS.starts.as_str())).bind(json(&starts)).execute(&mut *tx).await?;
    }
    // Statuses and outcomes are few (one or two a call): one statement each, in order.
    for write in writes {
        match write {
            CallWrite::Outcome { call_sid, customer_id, verification, transfer } => {
                sqlx::query(
                    "UPDATE calls SET customer_id = COALESCE($2, customer_id),
                                      verification = COALESCE($3, verification),
                                      transfer = COALESCE($4, transfer)
                     WHERE call_sid = $1",
                )
                .bind(call_sid)
                .bind(customer_id)
                .bind(verification.map(Verification::as_str))
                .bind(transfer.map(TransferReason::as_str))
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::Status { call, status, sequence, ended_at, duration_s } => {
                sqlx::query(
                    "INSERT INTO calls (call_sid, shop, from_raw, from_e164, to_number, status, status_seq,
                                        started_at, ended_at, duration_s)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (call_sid) DO UPDATE SET status = excluded.status,
                         status_seq = excluded.status_seq,
                         ended_at = COALESCE(excluded.ended_at, calls.ended_at),
                         duration_s = COALESCE(excluded.duration_s, calls.duration_s)
                     WHERE calls.status_seq IS NULL OR calls.status_seq < excluded.status_seq",
                )
                .bind(&call.call_sid)
                .bind(&call.shop)
                .bind(&call.from_raw)
                .bind(&call.from_e164)
                .bind(&call.to_number)
                .bind(status)
                .bind(sequence)
                .bind(call.started_at)
                .bind(ended_at)
                .bind(duration_s)
                .execute(&mut *tx)
                .await?;
            }
            CallWrite::Start(_) | CallWrite::Event(_) => {}
        }
    }
    if !events.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(STATEMENTS.events.as_str())).bind(json(&events)).execute(&mut *tx).await?;
    }
    tx.commit().await
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
    sqlx::query_as("SELECT step, idx, kind, detail, at FROM call_events WHERE call_sid = $1 ORDER BY step, idx")
        .bind(call_sid)
        .fetch_all(&mut *conn)
        .await
}

pub(crate) async fn recent(conn: &mut Conn, shop: &str, since: Ts, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT call_sid FROM calls WHERE shop = $1 AND started_at >= $2 ORDER BY started_at DESC LIMIT $3",
    )
    .bind(shop)
    .bind(since)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(sid,)| sid).collect())
}

pub(crate) async fn count(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM calls").fetch_one(&mut *conn).await?;
    Ok(n)
}
