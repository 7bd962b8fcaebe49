//! The reports' roll-up and retention, as one background task: every ORDERLINE_RETENTION_EVERY it
//! rolls each final day into the daily aggregates (`call_days`), then deletes the calls and call
//! events older than ORDERLINE_RETENTION (never a day not yet rolled up). Owns no SQL.

use tokio::sync::watch;

use crate::app::AppState;
use crate::store::Ts;

/// One pass: roll up, then delete. Returns (days rolled, calls deleted, events deleted).
pub async fn pass(state: &AppState) -> Result<(u32, u64, u64), crate::store::StoreError> {
    let shop = state.settings.shopify_shop.clone().unwrap_or_default();
    let now = state.clock.now();
    let calendar = crate::domain::report::Calendar::new(state.settings.hours.timezone());
    let rolled = state.store.roll_up_days(&shop, Ts::from(now), state.settings.repeat_call_window, &calendar).await?;
    let keep = chrono::Duration::from_std(state.settings.retention).unwrap_or(chrono::Duration::days(90));
    let purged = state.store.purge_calls_before(&shop, Ts::from(now - keep)).await?;
    Ok((rolled, purged.calls, purged.events))
}

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match pass(&state).await {
            Ok((0, 0, 0)) => {}
            Ok((days, calls, events)) => {
                tracing::info!(days, calls, events, "reports: days rolled up; calls past the retention deleted")
            }
            Err(e) => tracing::warn!(error = %e, "reports: roll-up or retention pass failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.settings.retention_every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
