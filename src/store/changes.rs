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

    /// The NOTIFY payloads, each under Postgres's 8000-byte cap: the phones split across as
    /// many as they need (never degraded to `all`, which would empty every cache).
    pub(crate) fn payloads(&self) -> Vec<String> {
        if self.all {
            let all = PhoneChanges { shop: self.shop.clone(), phones: BTreeSet::new(), all: true };
            return vec![serde_json::to_string(&all).unwrap_or_default()];
        }
        let phones: Vec<&String> = self.phones.iter().collect();
        under_cap(
            &phones,
            |p| p.len(),
            |chunk| PhoneChanges {
                shop: self.shop.clone(),
                phones: chunk.iter().map(|p| p.to_string()).collect(),
                all: false,
            },
        )
    }
}

/// The most a NOTIFY payload may hold here: Postgres refuses 8000 bytes or more; the margin
/// covers JSON quoting and field names.
pub(crate) const PAYLOAD_CAP: usize = 7000;

/// Splits `items` into as few notices as keep each payload under `PAYLOAD_CAP`, by the
/// serialised width of each item (`width`, plus a separator) and of an empty notice. An item
/// too wide for any notice gets one of its own (only a shop name thousands of bytes long could
/// make one: Postgres refuses that payload, and `announce` falls back as for any failure).
pub(crate) fn under_cap<T, N: Serialize>(
    items: &[T],
    width: impl Fn(&T) -> usize,
    notice: impl Fn(&[T]) -> N,
) -> Vec<String> {
    let json = |chunk: &[T]| serde_json::to_string(&notice(chunk)).unwrap_or_default();
    let budget = PAYLOAD_CAP.saturating_sub(json(&[]).len());
    let mut payloads = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let w = width(item) + 3;
        if i > start && used + w > budget {
            payloads.push(json(&items[start..i]));
            (start, used) = (i, 0);
        }
        used += w;
    }
    if start < items.len() {
        payloads.push(json(&items[start..]));
    }
    payloads
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

    /// After call records commit: NOTIFY on Postgres (see `announce`), else in process.
    pub(crate) async fn calls_committed(&self, changes: CallChanges) {
        if changes.calls.is_empty() {
            return;
        }
        if !self.announce(changes.payloads().into_iter().map(|p| (CALLS_CHANNEL, p)).collect()).await {
            let _ = self.calls.send(changes);
        }
    }

    /// After a write committed: NOTIFY on Postgres (see `announce`), else in process.
    pub(crate) async fn committed(&self, changes: PhoneChanges) {
        if changes.is_empty() {
            return;
        }
        if !self.announce(changes.payloads().into_iter().map(|p| (CHANNEL, p)).collect()).await {
            let _ = self.changes.send(changes);
        }
    }

    /// True when a notice failed to go out and the next `announce` carries what that owes
    /// every instance (a write that sends its own notices leaves them to `announce`).
    pub(super) fn owes_notices(&self) -> bool {
        self.notices_owed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sends notices (channel, payload) to every instance, this one included, with NOTIFY.
    /// True when Postgres took them; false on SQLite (one instance: the caller hands them over
    /// in process) or when sending failed (the caller does the same for this instance).
    ///
    /// Called after the write's transaction committed, never inside it: Postgres takes one
    /// database-wide lock for NOTIFY at commit and holds it through the commit's WAL flush, so
    /// transactions that notify commit one at a time, each behind the others' fsync (issue 14:
    /// 280–360 orders/s applied). Here the notices go in a transaction of their own that waits
    /// for no flush (`synchronous_commit` off for it alone: a notice is never durable anyway).
    ///
    /// A notice can now be lost after its write committed (this process dies in between, or
    /// this statement fails). Notices are hints about durable rows, so that only delays work:
    /// - a pending delivery is applied anyway: every instance's processor polls the queue at
    ///   least once a second (`shopify::processor`), and applying it sends its change notice;
    ///   until then another instance's hint lacks it (`pending`), as it would for the moment
    ///   between a commit and the listener reading the notice;
    /// - a cached caller that misses its change notice is read again from the store once its
    ///   record leaves the freshness window (`lookup`);
    /// - when this statement fails, the next notice this instance sends is preceded by `all`
    ///   for changes and pending subjects: every instance drops its cache and reads the pending
    ///   set again (as after a lost LISTEN connection, see `listen`).
    pub(super) async fn announce(&self, mut notices: Vec<(&'static str, String)>) -> bool {
        let Pool::Postgres(pool) = &self.pool else { return false };
        if self.notices_owed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            notices.splice(0..0, owed_notices());
        }
        let (channels, payloads): (Vec<&str>, Vec<String>) = notices.into_iter().unzip();
        let notify = sqlx::query(
            "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true))
             SELECT pg_notify(n.channel, n.payload) FROM unflushed, unnest($1::text[], $2::text[]) AS \
             n(channel, payload)",
        )
        .bind(&channels)
        .bind(&payloads);
        let sent = async { notify.execute(&mut *super::pooled(pool).await?).await }.await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                self.notices_owed.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(error = %e, notices = payloads.len(),
                    "change notices not sent: other instances are told to drop their caches with the next notice");
                false
            }
        }
    }
}

/// What a failed `announce` owes every instance: forget every cached caller, and read the
/// pending set again.
fn owed_notices() -> Vec<(&'static str, String)> {
    let changes = PhoneChanges { all: true, ..PhoneChanges::default() };
    let pending = super::PendingNotice { all: true, ..super::PendingNotice::default() };
    vec![
        (CHANNEL, serde_json::to_string(&changes).unwrap_or_default()),
        (super::pending::CHANNEL, serde_json::to_string(&pending).unwrap_or_default()),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PendingNotice;

    #[test]
    fn a_large_change_notice_is_split_under_the_cap_not_degraded_to_all() {
        let phones: BTreeSet<String> = (0..2_000).map(|i| format!("+1555{i:07}")).collect();
        let changes = PhoneChanges { shop: "shop.myshopify.com".into(), phones: phones.clone(), all: false };
        let payloads = changes.payloads();
        assert!(payloads.len() > 1, "2,000 phones do not fit one payload");
        let mut seen = BTreeSet::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{} bytes", payload.len());
            let part: PhoneChanges = serde_json::from_str(payload).unwrap();
            assert!(!part.all);
            assert_eq!(part.shop, "shop.myshopify.com");
            seen.extend(part.phones);
        }
        assert_eq!(seen, phones);
    }

    #[test]
    fn a_large_pending_notice_is_split_under_the_cap_not_degraded_to_all() {
        let notice = PendingNotice {
            customers: (0..1_500).map(|i| 9_007_199_264_800_001 + 2 * i).collect(),
            orders: (0..1_500).map(|i| 9_007_199_254_800_001 + 2 * i).collect(),
            all: false,
        };
        let payloads = notice.payloads();
        assert!(payloads.len() > 2);
        let (mut customers, mut orders) = (Vec::new(), Vec::new());
        for payload in &payloads {
            assert!(payload.len() < 8000, "{} bytes", payload.len());
            let part: PendingNotice = serde_json::from_str(payload).unwrap();
            assert!(!part.all);
            customers.extend(part.customers);
            orders.extend(part.orders);
        }
        assert_eq!((customers, orders), (notice.customers, notice.orders));
    }

    #[test]
    fn a_small_notice_is_one_payload_and_all_stays_all() {
        let changes = PhoneChanges { shop: "s".into(), phones: ["+15551234567".to_string()].into(), all: false };
        assert_eq!(changes.payloads(), [serde_json::to_string(&changes).unwrap()]);
        let all = PhoneChanges { all: true, ..changes };
        let payloads = all.payloads();
        assert_eq!(payloads.len(), 1);
        assert!(serde_json::from_str::<PhoneChanges>(&payloads[0]).unwrap().all);
    }
}
