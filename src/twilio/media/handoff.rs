//! Where a stream's decision waits for the `<Redirect>` that follows the stream: in this
//! instance's memory (so a database outage does not lose it) and in the store (so the instance
//! Twilio's Redirect reaches need not be the one that held the stream).

use std::time::Duration;

use moka::future::Cache;

use crate::store::{Handoff, Store, StoreError, Ts};

/// A handoff is asked for within a second; kept in memory this long at most.
const KEEP: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Handoffs {
    local: Cache<String, String>,
    store: Store,
}

impl Handoffs {
    pub fn new(store: Store) -> Handoffs {
        Handoffs { local: Cache::builder().max_capacity(100_000).time_to_live(KEEP).build(), store }
    }

    /// Keeps the handoff here and saves it to the store; an error means only this instance has it.
    pub async fn put(&self, handoff: Handoff, now: Ts) -> Result<(), StoreError> {
        self.local.insert(handoff.call_sid.clone(), handoff.twiml.clone()).await;
        self.store.put_handoff(&handoff, now).await
    }

    /// The call's handoff, taken (from here, else from the store): it is used once.
    pub async fn take(&self, call_sid: &str) -> Result<Option<String>, StoreError> {
        let Some(twiml) = self.local.remove(call_sid).await else {
            return self.store.take_handoff(call_sid).await;
        };
        // The stored copy goes too, off the caller's path.
        let (store, call_sid) = (self.store.clone(), call_sid.to_string());
        tokio::spawn(async move {
            let _ = store.take_handoff(&call_sid).await;
        });
        Ok(Some(twiml))
    }
}
