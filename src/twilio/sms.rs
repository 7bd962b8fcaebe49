//! The tracking link by text, on Twilio: the call flow's `TextSender` over the REST client
//! (`rest::TwilioRest::send_message`), the `sms_messages` row it keeps, and `POST
//! /twilio/sms-status` (Twilio's message status callbacks, signed like every Twilio request).
//!
//! The caller never waits on Twilio beyond `BUDGET`: the send runs as its own task; the caller
//! hears "sent" only when Twilio accepted the message within the budget, else the apology (a
//! send that Twilio accepts after the budget still arrives; the row and the card say so).
//! Status callback parameters `MessageSid`, `MessageStatus`, `ErrorCode`
//! (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status, read 2026-12-04).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::public_url::PublicUrl;
use super::request::TwilioRequest;
use super::rest::{TwilioError, TwilioRest};
use crate::app::AppState;
use crate::clock::Clock;
use crate::domain::{SmsResult, mask_phone, mask_pii};
use crate::ivr::{TextOutcome, TextRequest, TextSender};
use crate::ops::Metrics;
use crate::store::{NewSms, SmsRow, Store, Ts};

/// The message status callback's path (`StatusCallback` of every message sent).
pub const SMS_STATUS_PATH: &str = "/twilio/sms-status";

/// The longest a caller waits for Twilio to accept the text.
pub const BUDGET: Duration = Duration::from_millis(1500);

/// How often, and after how long each, a callback's unknown `MessageSid` is looked for again.
const UNKNOWN_SID_RETRIES: u32 = 3;
const UNKNOWN_SID_WAIT: Duration = Duration::from_millis(300);

pub fn router() -> Router<AppState> {
    Router::new().route(SMS_STATUS_PATH, post(sms_status))
}

/// Sends texts through the Twilio REST client and keeps their rows.
pub struct TwilioTexts {
    pub rest: Arc<TwilioRest>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub shop: String,
    /// ORDERLINE_SMS_FROM; else the number the caller called.
    pub from: Option<String>,
    /// The absolute status callback URL.
    pub status_callback: String,
    pub budget: Duration,
}

impl TwilioTexts {
    pub fn new(
        rest: Arc<TwilioRest>,
        store: Store,
        clock: Arc<dyn Clock>,
        settings: &crate::config::Settings,
    ) -> TwilioTexts {
        TwilioTexts {
            rest,
            store,
            clock,
            shop: settings.shopify.shop.clone().unwrap_or_default(),
            from: settings.ivr.sms_from.clone(),
            status_callback: PublicUrl::new(&settings.server.public_url).to(SMS_STATUS_PATH),
            budget: BUDGET,
        }
    }
}

fn failed(detail: String) -> TextOutcome {
    TextOutcome { result: SmsResult::Failed, detail }
}

/// What an earlier press left: said again, nothing sent.
fn earlier(row: &SmsRow) -> TextOutcome {
    match (&row.message_sid, row.status.as_str()) {
        (_, "failed" | "undelivered") => failed(format!(
            "failed earlier in this call{}",
            row.error_code.map(|c| format!(": {c}")).unwrap_or_default()
        )),
        (Some(sid), _) => TextOutcome { result: SmsResult::Sent, detail: format!("already sent {sid}") },
        (None, _) => failed("failed: the earlier text is still not accepted".into()),
    }
}

impl TextSender for TwilioTexts {
    fn send(&self, request: TextRequest) -> BoxFuture<'static, TextOutcome> {
        let rest = self.rest.clone();
        let store = self.store.clone();
        let clock = self.clock.clone();
        let from = self.from.clone().or(request.called.clone());
        let callback = self.status_callback.clone();
        let budget = self.budget;
        let new = NewSms {
            call_sid: request.call_sid.clone(),
            order_id: request.order_id,
            kind: request.kind,
            shop: self.shop.clone(),
            customer_id: request.customer_id,
            to_number: request.to.clone(),
            from_number: from.clone(),
        };
        async move {
            let started = Instant::now();
            let claim = tokio::time::timeout(budget, store.claim_sms(&new, Ts::from(clock.now()))).await;
            match claim {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(row))) => return earlier(&row),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "could not record the text; none sent");
                    return failed("failed: not recorded".into());
                }
                Err(_) => return failed("failed: the store did not answer in time".into()),
            }
            let Some(from) = from else {
                let _ = store.sms_failed(&new, None, Ts::from(clock.now())).await;
                return failed("failed: no number to send from (ORDERLINE_SMS_FROM)".into());
            };
            let (done, outcome) = tokio::sync::oneshot::channel();
            // The send and its record go on after the caller stops waiting.
            tokio::spawn(async move {
                let sent = rest.send_message(&request.to, &from, &request.body, Some(&callback)).await;
                let now = Ts::from(clock.now());
                let (stored, result) = match sent {
                    Ok(message) => {
                        tracing::info!(to = %mask_phone(&request.to), kind = %new.kind, sid = %message.sid, status = %message.status, "link texted");
                        let stored = store.sms_accepted(&new, &message.sid, &message.status, now).await;
                        (stored, TextOutcome { result: SmsResult::Sent, detail: format!("sent {}", message.sid) })
                    }
                    Err(e) => {
                        let code = e.code();
                        tracing::warn!(to = %mask_phone(&request.to), kind = %new.kind, error = %mask_pii(&e.to_string()), "the link was not texted");
                        let code_i32 = code.and_then(|c| i32::try_from(c).ok());
                        let stored = store.sms_failed(&new, code_i32, now).await;
                        let why = match (&e, code) {
                            (_, Some(code)) => code.to_string(),
                            (TwilioError::Unavailable(status), None) => format!("HTTP {status}"),
                            (TwilioError::Timeout, None) => "no answer from Twilio".into(),
                            (_, None) => mask_pii(&e.to_string()),
                        };
                        (stored, failed(format!("failed: {why}")))
                    }
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, "could not record the text's outcome");
                }
                let _ = done.send(result);
            });
            let left = budget.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, outcome).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => failed("failed: the send task ended without an answer".into()),
                Err(_) => failed(format!("failed: not accepted within {} ms", budget.as_millis())),
            }
        }
        .boxed()
    }
}

/// A message status callback: updates the text's status. A callback without a `MessageSid`
/// is refused 400; one for a message orderline did not send, 404; nothing is written for either.
async fn sms_status(
    State(store): State<Store>,
    State(metrics): State<Arc<Metrics>>,
    State(clock): State<Arc<dyn Clock>>,
    req: TwilioRequest,
) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(error = %why, "message status callback refused");
        metrics.twilio_request("sms-status", "bad_request", started.elapsed().as_secs_f64());
        (status, format!("{why}\n")).into_response()
    };
    let sid = req.param("MessageSid").or(req.param("SmsSid")).map(str::trim).unwrap_or_default();
    let sid_ok = sid.len() == 34 && (sid.starts_with("SM") || sid.starts_with("MM"));
    if !sid_ok || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return refuse(StatusCode::BAD_REQUEST, "no MessageSid (SM…) in a message status callback");
    }
    let status = req.param("MessageStatus").or(req.param("SmsStatus")).map(str::trim).unwrap_or_default();
    if status.is_empty() || status.len() > 32 || !status.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        return refuse(StatusCode::BAD_REQUEST, "no MessageStatus in a message status callback");
    }
    let code = req.param("ErrorCode").and_then(|c| c.trim().parse::<i32>().ok());
    // Twilio may call back before the sender has stored the SID it was just given: a SID not
    // found is looked for again, a few times within a second, before it is refused.
    let mut stored = store.sms_status(sid, status, code, Ts::from(clock.now())).await;
    for _ in 0..UNKNOWN_SID_RETRIES {
        if !matches!(stored, Ok(None)) {
            break;
        }
        tokio::time::sleep(UNKNOWN_SID_WAIT).await;
        stored = store.sms_status(sid, status, code, Ts::from(clock.now())).await;
    }
    match stored {
        Ok(Some(row)) => {
            tracing::info!(sid, status, to = %mask_phone(&row.to_number), "message status");
            metrics.twilio_request("sms-status", "answered", started.elapsed().as_secs_f64());
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no text with this MessageSid was sent by orderline"),
        Err(e) => {
            tracing::error!(error = %e, "could not record a message status");
            metrics.twilio_request("sms-status", "error", started.elapsed().as_secs_f64());
            // Twilio retries a callback that failed; nothing was written.
            (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable\n").into_response()
        }
    }
}
