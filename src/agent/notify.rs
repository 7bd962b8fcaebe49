//! Signed outbound notifications (`ORDERLINE_NOTIFY_URL`): for each transferred call, a JSON
//! document with the caller, the customer, their latest order, what the caller was told (the
//! card's plain words), the verification level and links to the console, POSTed with
//! `X-Orderline-Signature: sha256=<hex HMAC-SHA256 of the body under ORDERLINE_NOTIFY_SECRET>`.
//! Queued in the store (`notifications`) when the transfer is recorded, so a receiver that is
//! down loses nothing: retried with backoff (1 s, 2 s, 4 s … up to 5 minutes) until it answers
//! 2xx, dead after `ORDERLINE_NOTIFY_MAX_ATTEMPTS` with the last error kept.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::watch;

use super::AgentDesk;
use super::card::{CallCard, call_card};
use crate::config::NotifyTarget;
use crate::domain::mask_pii;
use crate::store::{DueNotification, Ts};

/// A call put through to a person.
pub const TRANSFERRED: &str = "transferred";
/// A message left on voicemail (the document's `voicemails` holds it).
pub const VOICEMAIL: &str = "voicemail";
/// A caller asked, from the queue, to be called back (the document's `callback` holds it).
pub const CALLBACK: &str = "callback";

const POLL: Duration = Duration::from_millis(500);
/// How long a claimed notification is held from other instances while it is being sent.
const LEASE: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The signature header's value for `body`: `sha256=` and the hex HMAC-SHA256 under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The document a receiver gets (the README's "Notifications" section describes each field).
#[derive(Debug, Serialize)]
struct Notification<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    call_sid: &'a str,
    /// The caller's number as Twilio gave it (the receiver is the shop's own system).
    caller: &'a str,
    started_at: chrono::DateTime<chrono::Utc>,
    customer: Option<&'a super::api::CustomerJson>,
    latest_order: Option<&'a super::card::OrderSummary>,
    /// `postal_code`, `caller_id`, `order_number`, `not_required`, `failed`, or none.
    verification: Option<&'a str>,
    /// Why the call was put through (`asked`, `order_not_found`, …).
    transfer: Option<&'a str>,
    /// What the caller was told and did, in plain words (the agent card's summary).
    summary: &'a [String],
    /// The messages the caller left (type `voicemail`; the transcription may come later).
    voicemails: &'a [super::voicemail::VoicemailJson],
    /// The call-back the caller asked for (type `callback`), else null.
    callback: Option<&'a super::callbacks::CallbackJson>,
    links: Links,
}

#[derive(Debug, Serialize)]
struct Links {
    console: String,
    call: String,
    customer_admin: Option<String>,
}

fn document(card: &CallCard, kind: &str, public_url: &str) -> Vec<u8> {
    let notification = Notification {
        kind,
        call_sid: &card.call_sid,
        caller: &card.from,
        started_at: card.started_at,
        customer: card.customer.as_ref(),
        latest_order: card.orders.first(),
        verification: card.verification.as_deref(),
        transfer: card.transfer.as_deref(),
        summary: &card.summary,
        voicemails: &card.voicemails,
        callback: card.callback.as_ref(),
        links: Links {
            console: format!("{public_url}/agent"),
            call: format!("{public_url}/api/calls/{}", card.call_sid),
            customer_admin: card.customer_admin_url.clone(),
        },
    };
    serde_json::to_vec(&notification).unwrap_or_default()
}

/// Sends due notifications until `shutdown`.
pub async fn run(desk: AgentDesk, target: NotifyTarget, mut shutdown: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "notifications are off: no HTTP client");
            return;
        }
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = desk.clock.now();
        let lease = Ts::from(now + chrono::Duration::from_std(LEASE).unwrap_or_default());
        match desk.store.claim_notifications(Ts::from(now), lease, 20).await {
            Ok(due) => {
                for notification in due {
                    send(&desk, &client, &target, &notification).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the notifications due"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn send(desk: &AgentDesk, client: &reqwest::Client, target: &NotifyTarget, due: &DueNotification) {
    let outcome = match call_card(desk, &due.call_sid).await {
        Ok(Some(card)) => {
            let body = document(&card, &due.kind, &desk.settings.server.public_url);
            let sent = client
                .post(&target.url)
                .header("Content-Type", "application/json")
                .header("X-Orderline-Signature", signature(target.secret.expose(), &body))
                .header("X-Orderline-Delivery", format!("{}:{}", due.call_sid, due.kind))
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("the receiver answered {}", response.status().as_u16())),
                Err(e) => Err(format!("the receiver could not be reached: {}", mask_pii(&e.to_string()))),
            }
        }
        Ok(None) => Err("the call is not recorded (yet)".to_string()),
        Err(e) => Err(format!("the call could not be read: {e}")),
    };
    let now = desk.clock.now();
    let stored = match outcome {
        Ok(()) => desk.store.notification_delivered(&due.call_sid, &due.kind, Ts::from(now)).await,
        Err(why) => {
            let attempts = u32::try_from(due.attempts).unwrap_or(0) + 1;
            let retry_at = (attempts < target.max_attempts).then(|| {
                let backoff = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF);
                Ts::from(now + chrono::Duration::from_std(backoff).unwrap_or_default())
            });
            if retry_at.is_none() {
                tracing::error!(call_sid = %due.call_sid, kind = %due.kind, attempts, error = %why,
                    "notification dead after its last attempt");
            } else {
                tracing::warn!(kind = %due.kind, attempts, error = %why, "notification not delivered; retrying");
            }
            desk.store.notification_failed(&due.call_sid, &due.kind, &why, retry_at, Ts::from(now)).await
        }
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not record a notification's outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
