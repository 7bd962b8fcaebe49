//! Group commit for webhook intake: handlers hand verified deliveries to a few writer tasks,
//! which store whatever is waiting in one transaction and then answer every handler at once.
//! A handler's 200 therefore always follows a commit, and a burst costs one commit, not N.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::store::{NewDelivery, Store};

const MAX_BATCH: usize = 256;
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("could not store the delivery: {0}")]
    Store(String),
    #[error("intake is shutting down")]
    Closed,
}

struct Job {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<bool, IntakeError>>,
}

/// What intake tells the processor after each commit: deliveries are waiting (a wake), and
/// when intake last stored any (while it is storing, the processor leaves it the cores).
#[derive(Debug, Default)]
pub struct Stored {
    wake: Notify,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Stored {
    fn committed(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.wake.notify_one();
    }

    /// Returns once intake has stored something since the last wait returned.
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    /// Whether intake stored something within the last `window`.
    pub fn within(&self, window: Duration) -> bool {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|last| last.elapsed() < window)
    }
}

/// Handle for submitting deliveries to the writers.
#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
}

impl Intake {
    /// Starts `writers` writer tasks on `store`; `stored` is told of each commit.
    pub fn start(store: Store, writers: usize, stored: Arc<Stored>) -> Intake {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(store.clone(), queue.clone(), stored.clone()));
        }
        Intake { jobs }
    }

    /// Stores a delivery durably. Ok(true): new; Ok(false): a duplicate of one already stored.
    pub async fn submit(&self, delivery: NewDelivery) -> Result<bool, IntakeError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { delivery, reply }).await.map_err(|_| IntakeError::Closed)?;
        answer.await.map_err(|_| IntakeError::Closed)?
    }
}

async fn write_batches(store: Store, queue: Arc<Mutex<mpsc::Receiver<Job>>>, stored: Arc<Stored>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let (deliveries, replies): (Vec<NewDelivery>, Vec<_>) =
            batch.into_iter().map(|j| (j.delivery, j.reply)).unzip();
        match store.insert_deliveries(&deliveries).await {
            Ok(inserted) => {
                for (reply, new) in replies.into_iter().zip(inserted) {
                    let _ = reply.send(Ok(new));
                }
                stored.committed();
            }
            Err(e) => {
                tracing::error!(error = %e, deliveries = deliveries.len(), "webhook intake: store failed");
                for reply in replies {
                    let _ = reply.send(Err(IntakeError::Store(e.to_string())));
                }
            }
        }
    }
}
