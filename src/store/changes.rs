//! Change notices: after a write commits, every instance learns which caller phones it touched,
//! so caches drop them. Postgres carries them with NOTIFY (every instance, this one included);
//! SQLite has one instance, so the store hands them over in process.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Pool, Store};

pub(crate) const CHANNEL: &str = "orderline_changes";
pub(crate) const CALLS_CHANNEL: &str = "orderline_calls";

/// Calls whose records changed, and how, in order: `started`, `step`, `verified`,
/// `transferred`, `ended`. Carried like phone changes (NOTIFY on Postgres, in process on SQLite).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallChanges {
    pub calls: Vec<CallChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallChange {
    pub call_sid: String,
    pub kinds: Vec<String>,
}

impl CallChanges {
    /// NOTIFY payloads, each well under Postgres's 8000-byte cap.
    pub(crate) fn payloads(&self) -> Vec<String> {
        self.calls
            .chunks(40)
            .map(|chunk| serde_json::to_string(&CallChanges { calls: chunk.to_vec() }).unwrap_or_default())
            .collect()
    }
}

/// Phones (E.164) whose cached callers changed; `all` drops everything (shop redaction, or a
/// lost listener connection during which notices may have been missed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneChanges {
    pub shop: String,
    pub phones: BTreeSet<String>,
    pub all: bool,
}

impl PhoneChanges {
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty() && !self.all
    }

    pub(crate) fn merge(&mut self, other: PhoneChanges) {
        if self.shop.is_empty() {
            self.shop = other.shop;
        }
        self.phones.extend(other.phones);
        self.all |= other.all;
    }

    /// The NOTIFY payload; Postgres caps it below 8000 bytes, so a large set becomes `all`.
    pub(crate) fn payload(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() < 7000 {
            return json;
        }
        let all = PhoneChanges { shop: self.shop.clone(), phones: BTreeSet::new(), all: true };
        serde_json::to_string(&all).unwrap_or_default()
    }
}

impl Store {
    /// Subscribes to change notices. On Postgres the first call starts the LISTEN task.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<PhoneChanges> {
        let receiver = self.changes.subscribe();
        self.start_listening();
        receiver
    }

    /// Subscribes to call-record notices (every instance's, on Postgres).
    pub fn subscribe_calls(&self) -> broadcast::Receiver<CallChanges> {
        let receiver = self.calls.subscribe();
        self.start_listening();
        receiver
    }

    fn start_listening(&self) {
        if let Pool::Postgres(pool) = &self.pool
            && !self.listening.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::spawn(listen(
                pool.clone(),
                self.changes.clone(),
                self.calls.clone(),
                self.listener_up.clone(),
                self.pending.clone(),
            ));
        }
    }

    /// After call records commit: SQLite hands the notice over here; Postgres already sent NOTIFY.
    pub(crate) fn calls_committed(&self, changes: CallChanges) {
        if matches!(self.pool, Pool::Sqlite(_)) && !changes.calls.is_empty() {
            let _ = self.calls.send(changes);
        }
    }

    /// After a commit: SQLite hands the notice over here; Postgres already sent NOTIFY.
    pub(crate) fn committed(&self, changes: PhoneChanges) {
        if matches!(self.pool, Pool::Sqlite(_)) && !changes.is_empty() {
            let _ = self.changes.send(changes);
        }
    }
}

async fn listen(
    pool: sqlx::PgPool,
    sender: broadcast::Sender<PhoneChanges>,
    calls: broadcast::Sender<CallChanges>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pending: std::sync::Arc<super::PendingSubjects>,
) {
    use std::sync::atomic::Ordering;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change listener: cannot connect");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CHANNEL, CALLS_CHANNEL, super::pending::CHANNEL]).await {
            tracing::warn!(error = %e, "change listener: LISTEN failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = std::time::Duration::from_millis(100);
        // Whatever happened while not listening is unknown: drop every cached caller, and ask
        // the database which deliveries are pending until it has been read again.
        pending.mark_unknown();
        let _ = sender.send(PhoneChanges { all: true, ..PhoneChanges::default() });
        up.store(true, Ordering::SeqCst);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == CALLS_CHANNEL => {
                    match serde_json::from_str::<CallChanges>(notification.payload()) {
                        Ok(changes) => {
                            let _ = calls.send(changes);
                        }
                        Err(e) => tracing::warn!(error = %e, "change listener: unreadable call notice"),
                    }
                }
                Ok(Some(notification)) if notification.channel() == super::pending::CHANNEL => {
                    match serde_json::from_str::<super::PendingNotice>(notification.payload()) {
                        Ok(notice) => pending.add(&notice),
                        Err(e) => {
                            tracing::warn!(error = %e, "change listener: unreadable pending notice");
                            pending.mark_unknown();
                        }
                    }
                }
                Ok(Some(notification)) => match serde_json::from_str::<PhoneChanges>(notification.payload()) {
                    Ok(changes) => {
                        let _ = sender.send(changes);
                    }
                    Err(e) => tracing::warn!(error = %e, "change listener: unreadable notice"),
                },
                Ok(None) => {
                    tracing::warn!("change listener: connection lost; reconnecting");
                    pending.mark_unknown();
                    let _ = sender.send(PhoneChanges { all: true, ..PhoneChanges::default() });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener: failed; reconnecting");
                    up.store(false, Ordering::SeqCst);
                    pending.mark_unknown();
                    break;
                }
            }
            if sender.receiver_count() == 0 && calls.receiver_count() == 0 {
                return;
            }
        }
    }
}
