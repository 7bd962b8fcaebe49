//! Every incoming call's batch on Postgres: its starts and events only (no outcome, no status),
//! written by one statement from typed arrays. `unnest` of binary-encoded arrays costs Postgres
//! next to nothing to read, where a JSON array (as `sql::record` reads them, and SQLite always)
//! was parsed, hashed and looked up key by key: about a sixth of Postgres's CPU at saturation
//! (issue 14, `perf record -a` under `cargo bench --bench incoming_calls`).
//!
//! The same statement sends the batch's change notices (`pg_notify`, delivered when it commits),
//! so rows and notices go in one round trip and cannot part: no notice for rows that were not
//! written, no rows whose notice was lost. Unlike webhook applies, call records commit without
//! waiting for the WAL flush, so the database-wide lock NOTIFY takes at commit is held for
//! moments only (see `changes::announce`).

use chrono::{DateTime, Utc};

use super::{CallEvent, CallWrite, NewCall};
use crate::domain::{TransferReason, Verification};

/// True when the batch holds only starts and events (this module writes it).
pub(super) fn only_starts_and_events(writes: &[CallWrite]) -> bool {
    writes.iter().all(|w| matches!(w, CallWrite::Start(_) | CallWrite::Event(_)))
}

/// One statement, which is its own transaction: its data-modifying parts all run to completion
/// or none does. Committed without waiting for the WAL flush, as every call record (see
/// `sql::record`).
///
/// The events of a call whose row this statement inserted (`started` returns it) cannot be in
/// the table yet: a request's start and events travel in one message and land in one batch, so
/// events of an unrecorded call were never written. They are inserted without `ON CONFLICT`,
/// whose probe of the primary key before each insert was about a sixth of Postgres's time at
/// saturation (issue 14, `perf record --call-graph dwarf` of the writer's backend). Every other
/// event (a later step, a retried request) is inserted `ON CONFLICT DO NOTHING`, as before. Were
/// an event somehow there after all (two copies of one request in one batch), the statement
/// fails whole with a unique violation and `record_calls_on` writes the batch the general way.
const STATEMENT: &str = "
    WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)),
    started AS (
        INSERT INTO calls (call_sid, shop, from_raw, from_e164, to_number, customer_id, verification, transfer,
                           status, started_at, first_word_ms)
        SELECT x.call_sid, x.shop, x.from_raw, x.from_e164, x.to_number, x.customer_id, x.verification,
               x.transfer, 'in-progress', x.started_at, x.first_word_ms
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[],
                    $8::text[], $9::timestamptz[], $10::int4[])
             AS x(call_sid, shop, from_raw, from_e164, to_number, customer_id, verification, transfer,
                  started_at, first_word_ms)
        ON CONFLICT (call_sid) DO NOTHING
        RETURNING call_sid),
    events AS (
        SELECT x.*, x.call_sid IN (SELECT call_sid FROM started) AS new_call
        FROM unnest($11::text[], $12::int4[], $13::int4[], $14::text[], $15::text[], $16::timestamptz[])
             AS x(call_sid, step, idx, kind, detail, at)),
    evented AS (
        INSERT INTO call_events (call_sid, step, idx, kind, detail, at)
        SELECT call_sid, step, idx, kind, detail, at FROM events WHERE new_call),
    evented_again AS (
        INSERT INTO call_events (call_sid, step, idx, kind, detail, at)
        SELECT call_sid, step, idx, kind, detail, at FROM events WHERE NOT new_call
        ON CONFLICT (call_sid, step, idx) DO NOTHING)
    SELECT pg_notify($17, n.payload) FROM unflushed, unnest($18::text[]) AS n(payload)";

/// True when `e` is Postgres refusing a duplicate key (SQLSTATE 23505).
pub(super) fn is_duplicate(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "23505")
}

/// Writes the batch and sends `notices` on `channel` when it commits.
pub(super) async fn record(
    conn: &mut sqlx::PgConnection,
    writes: &[CallWrite],
    channel: &str,
    notices: &[String],
) -> Result<(), sqlx::Error> {
    let starts: Vec<&NewCall> =
        writes.iter().filter_map(|w| if let CallWrite::Start(c) = w { Some(c) } else { None }).collect();
    let events: Vec<&CallEvent> =
        writes.iter().filter_map(|w| if let CallWrite::Event(e) = w { Some(e) } else { None }).collect();
    let text = |field: fn(&NewCall) -> &str| -> Vec<&str> { starts.iter().map(|c| field(c)).collect() };
    let column =
        |field: fn(&NewCall) -> Option<&str>| -> Vec<Option<&str>> { starts.iter().map(|c| field(c)).collect() };
    let started_at: Vec<DateTime<Utc>> = starts.iter().map(|c| c.started_at.0).collect();
    let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.at.0).collect();
    sqlx::query(STATEMENT)
        .bind(text(|c| &c.call_sid))
        .bind(text(|c| &c.shop))
        .bind(text(|c| &c.from_raw))
        .bind(column(|c| c.from_e164.as_deref()))
        .bind(column(|c| c.to_number.as_deref()))
        .bind(starts.iter().map(|c| c.customer_id).collect::<Vec<_>>())
        .bind(column(|c| c.verification.map(Verification::as_str)))
        .bind(column(|c| c.transfer.map(TransferReason::as_str)))
        .bind(started_at)
        .bind(starts.iter().map(|c| c.first_word_ms).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.call_sid.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.step).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.idx).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>())
        .bind(at)
        .bind(channel)
        .bind(notices)
        .execute(conn)
        .await?;
    Ok(())
}
