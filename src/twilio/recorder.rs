//! Writes call records without making callers wait: handlers hand their writes over and answer
//! at once; writer tasks batch them into one transaction each. A call's writes always go to the
//! same writer, so they land in the order they were made. Never blocks a handler: if the
//! writers are far behind (the database is down), writes are dropped, counted and logged.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ops::Metrics;
use crate::store::{CallWrite, Store, WriterConnection};

/// Requests' writes waiting per writer before new ones are dropped.
const QUEUE: usize = 20_000;
/// Most writes in one transaction.
const BATCH: usize = 2_000;
/// How long a writer keeps its connection with nothing to write (see `WriterConnection`).
const HOLD: Duration = Duration::from_secs(1);
/// Pauses between attempts at a batch the database refused.
const RETRIES: [Duration; 3] = [Duration::from_millis(100), Duration::from_millis(500), Duration::from_secs(2)];

enum Message {
    /// One request's writes (one call's, so one writer's).
    Write(Vec<CallWrite>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct CallRecorder {
    writers: Arc<[mpsc::Sender<Message>]>,
    metrics: Arc<Metrics>,
}

impl CallRecorder {
    pub fn start(store: Store, writers: usize, metrics: Arc<Metrics>) -> (CallRecorder, Vec<JoinHandle<()>>) {
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..writers.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.push(tx);
            tasks.push(tokio::spawn(write_loop(store.clone(), rx, metrics.clone())));
        }
        (CallRecorder { writers: senders.into(), metrics }, tasks)
    }

    /// Queues one call's writes; returns at once.
    pub fn record(&self, writes: Vec<CallWrite>) {
        let Some(first) = writes.first() else { return };
        let count = writes.len() as u64;
        let writer = &self.writers[shard(first.call_sid(), self.writers.len())];
        if let Err(e) = writer.try_send(Message::Write(writes)) {
            self.metrics.call_records_dropped.inc_by(count);
            if let mpsc::error::TrySendError::Full(_) = e {
                tracing::warn!("call records are not keeping up: writes were dropped");
            }
        }
    }

    /// Waits until everything queued before this call is written (or given up on).
    pub async fn flush(&self) {
        let mut waits = Vec::new();
        for writer in self.writers.iter() {
            let (tx, rx) = oneshot::channel();
            if writer.send(Message::Flush(tx)).await.is_ok() {
                waits.push(rx);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }
}

fn shard(call_sid: &str, writers: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    call_sid.hash(&mut hasher);
    (hasher.finish() % writers as u64) as usize
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Message>, metrics: Arc<Metrics>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    let mut conn = WriterConnection::default();
    while let Some(first) = next_message(&mut rx, &mut conn).await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(writes) => batch.extend(writes),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        write_batch(&store, &batch, &metrics, &mut conn).await;
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The next message; a connection held for `HOLD` with nothing to write goes back to the pool.
async fn next_message(rx: &mut mpsc::Receiver<Message>, conn: &mut WriterConnection) -> Option<Message> {
    if conn.is_held() {
        if let Ok(next) = tokio::time::timeout(HOLD, rx.recv()).await {
            return next;
        }
        conn.release();
    }
    rx.recv().await
}

async fn write_batch(store: &Store, batch: &[CallWrite], metrics: &Metrics, conn: &mut WriterConnection) {
    if batch.is_empty() {
        return;
    }
    let mut error = None;
    for pause in std::iter::once(Duration::ZERO).chain(RETRIES) {
        tokio::time::sleep(pause).await;
        match store.record_calls_on(batch, conn).await {
            Ok(()) => {
                metrics.call_records_written(batch.len() as u64);
                return;
            }
            Err(e) => error = Some(e),
        }
    }
    for _ in batch {
        metrics.call_record_dropped();
    }
    if let Some(e) = error {
        tracing::error!(error = %e, writes = batch.len(), "call records could not be written and were dropped");
    }
}
