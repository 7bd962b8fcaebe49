//! The reports' roll-up and retention, as one background task: every ORDERLINE_RETENTION_EVERY it
//! rolls each final day into the daily aggregates (`call_days`), then deletes the calls and call
//! events older than ORDERLINE_RETENTION (never a day not yet rolled up), with their voicemails,
//! whose recordings it deletes at Twilio. Owns no SQL.

use tokio::sync::watch;

use crate::app::AppState;
use crate::store::Ts;

/// One pass: roll up, then delete. Returns (days rolled, calls deleted, events deleted).
pub async fn pass(state: &AppState) -> Result<(u32, u64, u64), crate::store::StoreError> {
    let shop = state.settings.shopify.shop.clone().unwrap_or_default();
    let now = state.clock.now();
    let calendar = crate::domain::report::Calendar::new(state.settings.handoff.business_hours.timezone());
    let rolled =
        state.store.roll_up_days(&shop, Ts::from(now), state.settings.reports.repeat_call_window, &calendar).await?;
    let keep = chrono::Duration::from_std(state.settings.reports.retention).unwrap_or(chrono::Duration::days(90));
    delete_old_recordings(state, &shop, Ts::from(now - keep)).await?;
    let purged = state.store.purge_calls_before(&shop, Ts::from(now - keep)).await?;
    Ok((rolled, purged.calls, purged.events))
}

/// Voicemail recordings older than the retention are deleted at Twilio (the rows go with their
/// calls). Without the REST API configured, or while Twilio fails, they are left for the next pass.
async fn delete_old_recordings(state: &AppState, shop: &str, before: Ts) -> Result<(), crate::store::StoreError> {
    let old = state.store.voicemail_recordings_before(shop, before).await?;
    if old.is_empty() {
        return Ok(());
    }
    let Some(rest) = &state.twilio_rest else {
        tracing::warn!(
            count = old.len(),
            "voicemail recordings past the retention stay at Twilio: the REST API is not configured"
        );
        return Ok(());
    };
    for sid in old {
        match rest.delete_recording(&sid).await {
            Ok(()) => state.store.voicemail_recording_deleted(&sid).await?,
            Err(e) => {
                tracing::warn!(error = %e, "a voicemail recording past the retention was not deleted; trying again later");
                break;
            }
        }
    }
    Ok(())
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
            _ = tokio::time::sleep(state.settings.reports.retention_every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
