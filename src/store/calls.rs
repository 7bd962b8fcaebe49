//! Call records: one row per call (who, which customer, verification, transfer, final status and
//! duration) and its events (lookup, steps, keys) in order. Written in batches, each batch in
//! one transaction: at thousands of calls a second a row-by-row insert would be the bottleneck.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::{EventKind, TransferReason, Verification};

use super::changes::CALLS_CHANNEL;
use super::{CallChange, CallChanges, Pool, Store, StoreError, Ts, backend, on_backend};

/// A call as it starts, with what its first request concluded.
#[derive(Debug, Clone, Serialize)]
pub struct NewCall {
    pub call_sid: String,
    pub shop: String,
    pub from_raw: String,
    pub from_e164: Option<String>,
    pub to_number: Option<String>,
    pub customer_id: Option<i64>,
    pub verification: Option<Verification>,
    pub transfer: Option<TransferReason>,
    #[serde(serialize_with = "micros")]
    pub started_at: Ts,
    /// How long orderline took to answer the call's first request (its first words), in ms.
    pub first_word_ms: Option<i32>,
}

/// One thing to write about a call.
#[derive(Debug, Clone)]
pub enum CallWrite {
    /// The incoming call; a retried start (same CallSid) changes nothing.
    Start(NewCall),
    /// An event of step `step`, at position `idx` in it; a retry rewrites nothing.
    Event(CallEvent),
    /// What a later step concluded; `None` fields keep what is there.
    Outcome {
        call_sid: String,
        customer_id: Option<i64>,
        verification: Option<Verification>,
        transfer: Option<TransferReason>,
    },
    /// A status callback; applied only if its sequence number is the highest seen. Creates the
    /// row (from `call`) if the start was never recorded.
    Status { call: NewCall, status: String, sequence: i32, ended_at: Option<Ts>, duration_s: Option<i32> },
}

impl CallWrite {
    pub fn call_sid(&self) -> &str {
        match self {
            CallWrite::Start(c) => &c.call_sid,
            CallWrite::Event(e) => &e.call_sid,
            CallWrite::Outcome { call_sid, .. } => call_sid,
            CallWrite::Status { call, .. } => &call.call_sid,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallEvent {
    pub call_sid: String,
    pub step: i32,
    pub idx: i32,
    pub kind: EventKind,
    pub detail: String,
    #[serde(serialize_with = "micros")]
    pub at: Ts,
}

/// What a batch changed, per call, in the order the writes were made. Calls are found by CallSid
/// through a map: a batch holds up to a few hundred calls, and a scan per write made this 9 % of
/// the server's samples at saturation (issue 14, `perf record --call-graph dwarf`).
fn call_changes(writes: &[CallWrite]) -> CallChanges {
    let mut calls: Vec<CallChange> = Vec::new();
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for write in writes {
        let kind = match write {
            CallWrite::Start(_) => "started",
            CallWrite::Event(e) => match e.kind.feed_type() {
                Some(change) => change,
                None => continue,
            },
            CallWrite::Outcome { .. } => continue,
            CallWrite::Status { status, .. } if is_final(status) => "ended",
            CallWrite::Status { .. } => "status",
        };
        let sid = write.call_sid();
        let index = *index_of.entry(sid).or_insert_with(|| {
            calls.push(CallChange { call_sid: sid.to_string(), kinds: Vec::new() });
            calls.len() - 1
        });
        let kinds = &mut calls[index].kinds;
        if !kinds.iter().any(|k| k == kind) {
            kinds.push(kind.to_string());
        }
    }
    CallChanges { calls }
}

/// Twilio's final call statuses.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "busy" | "failed" | "no-answer" | "canceled")
}

fn micros<S: serde::Serializer>(ts: &Ts, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(ts.0.timestamp_micros())
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
    pub step: i32,
    pub idx: i32,
    pub kind: String,
    pub detail: String,
    pub at: Ts,
}

/// A call-record writer's own Postgres connection, kept from one batch to the next while
/// batches keep coming: no pool checkout, and no return with its ping round trip, per batch
/// (issue 14). Empty on SQLite (its one connection is everyone's), on a pool under 8
/// connections (the lookups' share), and after a failed write (the retry takes a fresh one).
#[derive(Default)]
pub struct WriterConnection(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl WriterConnection {
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Gives the connection back to the pool: the writer has nothing to write.
    pub fn release(&mut self) {
        self.0 = None;
    }
}

/// The smallest pool a writer keeps a connection of.
const POOL_TO_HOLD: u32 = 8;

impl Store {
    /// Writes a batch of call records in one transaction: all or nothing.
    pub async fn record_calls(&self, writes: &[CallWrite]) -> Result<(), StoreError> {
        self.record_calls_on(writes, &mut WriterConnection::default()).await
    }

    /// As `record_calls`, on the writer's connection when it holds one (see `WriterConnection`).
    pub async fn record_calls_on(&self, writes: &[CallWrite], held: &mut WriterConnection) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let changes = call_changes(writes);
        if let Pool::Postgres(pool) = &self.pool
            && started::only_starts_and_events(writes)
            && !self.owes_notices()
        {
            // Rows and their notices in one statement.
            let notices = changes.payloads();
            // Taken, so a failed write leaves nothing held: the retry checks out a fresh one.
            let mut conn = match held.0.take() {
                Some(conn) => conn,
                None => super::pooled(pool).await?,
            };
            match started::record(&mut conn, writes, CALLS_CHANNEL, &notices).await {
                Ok(()) => {
                    if pool.options().get_max_connections() >= POOL_TO_HOLD {
                        held.0 = Some(conn);
                    }
                    return Ok(());
                }
                // An event already there (see `started`): the general way skips it.
                Err(e) if started::is_duplicate(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        held.release();
        on_backend!(self, record(writes))?;
        self.calls_committed(changes).await;
        Ok(())
    }

    pub async fn call(&self, call_sid: &str) -> Result<Option<CallRow>, StoreError> {
        Ok(on_backend!(self, get(call_sid))?)
    }

    /// A call's events in order.
    pub async fn call_events(&self, call_sid: &str) -> Result<Vec<CallEventRow>, StoreError> {
        Ok(on_backend!(self, events(call_sid))?)
    }

    /// CallSids of the calls started since `since`, newest first (at most `limit`): what an
    /// agent's console shows on connecting.
    pub async fn recent_calls(&self, shop: &str, since: Ts, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_backend!(self, recent(shop, since, limit))?)
    }

    /// How many calls the customer made since `since`, other than `except` (bad news first: a
    /// repeat caller).
    pub async fn customer_calls_since(
        &self,
        shop: &str,
        customer_id: i64,
        since: Ts,
        except: &str,
    ) -> Result<i64, StoreError> {
        Ok(on_backend!(self, customer_calls_since(shop, customer_id, since, except))?)
    }

    pub async fn call_count(&self) -> Result<i64, StoreError> {
        Ok(on_backend!(self, count())?)
    }
}

mod started; // src/store/calls/started.rs: every incoming call's batch on Postgres

// The SQL, in calls/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "calls"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/calls/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "calls"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/calls/sql.rs
    pub(crate) use sql::*;
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn event(call_sid: &str, idx: i32, kind: EventKind) -> CallWrite {
        CallWrite::Event(CallEvent {
            call_sid: call_sid.into(),
            step: 1,
            idx,
            kind,
            detail: String::new(),
            at: Ts(Utc::now()),
        })
    }

    #[test]
    fn a_batch_changes_each_call_once_in_the_order_calls_first_appear() {
        let writes = [
            event("CA2", 0, EventKind::Lookup),
            event("CA1", 0, EventKind::Step),
            event("CA2", 1, EventKind::Step),
            event("CA1", 1, EventKind::Transfer),
            event("CA2", 2, EventKind::Status),
        ];
        let change = |sid: &str, kinds: &[&str]| CallChange {
            call_sid: sid.into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        };
        assert_eq!(
            call_changes(&writes).calls,
            vec![change("CA2", &["step"]), change("CA1", &["step", "transferred"])]
        );
    }
}
