//! Change notices: after a write commits, every instance learns which caller phones it touched,
//! so caches drop them. Postgres carries them with NOTIFY (every instance, this one included);
//! SQLite has one instance, so the store hands them over in process.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Pool, Store};

pub(crate) const CHANNEL: &str = "orderline_changes";

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
        if let Pool::Postgres(pool) = &self.pool
            && !self.listening.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::spawn(listen(pool.clone(), self.changes.clone(), self.listener_up.clone()));
        }
        receiver
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
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "change listener: LISTEN failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = std::time::Duration::from_millis(100);
        // Whatever happened while not listening is unknown: drop every cached caller.
        let _ = sender.send(PhoneChanges { all: true, ..PhoneChanges::default() });
        up.store(true, Ordering::SeqCst);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match serde_json::from_str::<PhoneChanges>(notification.payload()) {
                    Ok(changes) => {
                        let _ = sender.send(changes);
                    }
                    Err(e) => tracing::warn!(error = %e, "change listener: unreadable notice"),
                },
                Ok(None) => {
                    tracing::warn!("change listener: connection lost; reconnecting");
                    let _ = sender.send(PhoneChanges { all: true, ..PhoneChanges::default() });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener: failed; reconnecting");
                    up.store(false, Ordering::SeqCst);
                    break;
                }
            }
            if sender.receiver_count() == 0 {
                return;
            }
        }
    }
}
