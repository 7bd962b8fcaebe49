//! What happens when a call comes in: `POST /twilio/voice` (the call), `POST /twilio/voice/{stage}`
//! (the caller's answers), `POST /twilio/voice/whisper` (said to the agent) and
//! `POST /twilio/status` (status callbacks). Never answers 5xx or invalid TwiML: whatever fails
//! (database, Shopify, a template, a bug), the caller hears the fallback and reaches a person.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::FutureExt;

use super::render::{LAST_RESORT, TransferView};
use super::request::TwilioRequest;
use super::transfer::TransferTarget;
use crate::app::AppState;
use crate::ivr::order_status::OrderFacts;
use crate::ivr::{CallContext, CallState, Caller, Input, Reply, Stage};
use crate::lookup::{PhoneNumber, mask_phone, mask_pii};
use crate::shopify::payload::ShopifyId;
use crate::store::{CallEvent, CallWrite, NewCall, Ts, is_final_status};

/// Longest a handler may take before the caller gets the fallback (Twilio gives up at 15 s).
const HANDLER_LIMIT: Duration = Duration::from_secs(8);

/// Status callback events are numbered after any step a call can reach.
const STATUS_STEP_BASE: i32 = 100_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/twilio/voice", post(incoming))
        .route("/twilio/voice/whisper", post(whisper))
        .route("/twilio/voice/{stage}", post(answer))
        .route("/twilio/status", post(status))
}

/// The voice webhook's parameters, parsed.
#[derive(Debug, Clone)]
struct VoiceCall {
    call_sid: String,
    from: String,
    to: Option<String>,
    stir_verstat: Option<String>,
    digits: Option<String>,
}

impl VoiceCall {
    fn parse(req: &TwilioRequest) -> Result<VoiceCall, String> {
        let call_sid = req.param("CallSid").map(str::trim).filter(|s| !s.is_empty());
        let Some(call_sid) = call_sid else { return Err("no CallSid in a voice request".into()) };
        if call_sid.len() > 64 || !call_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("CallSid is not a Twilio SID".into());
        }
        let text = |name: &str| req.param(name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(VoiceCall {
            call_sid: call_sid.to_string(),
            from: text("From").or_else(|| text("Caller")).unwrap_or_default(),
            to: text("To").or_else(|| text("Called")),
            stir_verstat: text("StirVerstat"),
            digits: req.param("Digits").map(str::to_string),
        })
    }

    fn caller(&self) -> Caller {
        Caller { call_sid: self.call_sid.clone(), from: self.from.clone(), stir_verstat: self.stir_verstat.clone() }
    }

    fn new_call(&self, state: &AppState, started_at: Ts) -> NewCall {
        NewCall {
            call_sid: self.call_sid.clone(),
            shop: state.settings.shopify_shop.clone().unwrap_or_default(),
            from_raw: self.from.clone(),
            from_e164: PhoneNumber::parse(&self.from, Some(&state.settings.default_region))
                .ok()
                .map(|p| p.as_str().to_string()),
            to_number: self.to.clone(),
            customer_id: None,
            verification: None,
            transfer: None,
            started_at,
        }
    }
}

async fn incoming(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 1, &why, started),
    };
    let result = guarded(state.flow.incoming(&call.caller())).await;
    respond(&state, &req, &call, 1, result, started)
}

async fn answer(State(state): State<AppState>, Path(stage): Path<String>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 0, &why, started),
    };
    let call_state = CallState::from_query(req.query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let (Some(stage), Ok(call_state)) = (Stage::from_path(&stage), call_state) else {
        return fallback(&state, &req, Some(&call), 0, &format!("no such step: {}", req.path), started);
    };
    let input = match call.digits.as_deref().map(|d| d.trim().trim_end_matches('#')) {
        Some(d) if !d.is_empty() => Input::Digits(d.to_string()),
        _ => Input::Nothing,
    };
    let result = guarded(state.flow.answer(&call.caller(), stage, call_state, input)).await;
    respond(&state, &req, &call, call_state.step, result, started)
}

/// Runs a flow step with a time limit and a net under panics.
async fn guarded<F, E>(step: F) -> Result<Reply, String>
where
    F: Future<Output = Result<Reply, E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(HANDLER_LIMIT, AssertUnwindSafe(step).catch_unwind()).await {
        Ok(Ok(Ok(reply))) => Ok(reply),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(format!("the call flow panicked: {what}"))
        }
        Err(_) => Err(format!("the call flow took longer than {HANDLER_LIMIT:?}")),
    }
}

fn respond(
    state: &AppState,
    req: &TwilioRequest,
    call: &VoiceCall,
    step: u32,
    result: Result<Reply, String>,
    started: Instant,
) -> Response {
    let reply = match result {
        Ok(reply) => reply,
        Err(why) => return fallback(state, req, Some(call), step, &why, started),
    };
    let action = reply.next.map(|(stage, next)| format!("/twilio/voice/{}?{}", stage.path(), next.to_query()));
    // Only a transfer speaks of where the caller goes; the other steps need no transfer view.
    let transfer = match &reply.step {
        crate::ivr::Step::Transfer(t) => transfer_view(state, &t.context),
        _ => TransferView::default(),
    };
    let xml = match state.renderer.step(&reply.step, action.as_deref(), &transfer) {
        Ok(xml) => xml,
        Err(e) => return fallback(state, req, Some(call), step, &e.to_string(), started),
    };
    let now = Ts::from(state.clock.now());
    let mut writes = Vec::with_capacity(reply.events.len() + 1);
    let outcome = reply.outcome;
    if step == 1 {
        let mut new_call = call.new_call(state, now);
        new_call.customer_id = outcome.customer_id;
        new_call.verification = outcome.verification;
        new_call.transfer = outcome.transfer;
        writes.push(CallWrite::Start(new_call));
    } else if outcome.customer_id.is_some() || outcome.verification.is_some() || outcome.transfer.is_some() {
        writes.push(CallWrite::Outcome {
            call_sid: call.call_sid.clone(),
            customer_id: outcome.customer_id,
            verification: outcome.verification,
            transfer: outcome.transfer,
        });
    }
    writes.extend(events(call, step, now, reply.events));
    state.recorder.record(writes);
    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

fn events(call: &VoiceCall, step: u32, at: Ts, events: Vec<(&'static str, String)>) -> Vec<CallWrite> {
    events
        .into_iter()
        .enumerate()
        .map(|(idx, (kind, detail))| {
            CallWrite::Event(CallEvent {
                call_sid: call.call_sid.clone(),
                step: i32::try_from(step).unwrap_or(i32::MAX),
                idx: idx as i32,
                kind: kind.into(),
                detail,
                at,
            })
        })
        .collect()
}

/// The apology and the way to a person; recorded, logged (masked), never an error status.
fn fallback(
    state: &AppState,
    req: &TwilioRequest,
    call: Option<&VoiceCall>,
    step: u32,
    why: &str,
    started: Instant,
) -> Response {
    let from = call.map(|c| mask_phone(&c.from)).unwrap_or_default();
    tracing::error!(path = %req.path, from = %from, error = %mask_pii(why), "call flow failed; caller hears the fallback");
    let context = call.map(bare_context).unwrap_or_default();
    let xml = state.renderer.fallback(&transfer_view(state, &context)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the fallback template failed; using the built-in last resort");
        LAST_RESORT.to_string()
    });
    if let Some(call) = call {
        let now = Ts::from(state.clock.now());
        let mut writes = Vec::new();
        let step = if step == 0 { 99_999 } else { step };
        if step == 1 {
            let mut new_call = call.new_call(state, now);
            new_call.transfer = Some("fallback".into());
            writes.push(CallWrite::Start(new_call));
        } else {
            writes.push(CallWrite::Outcome {
                call_sid: call.call_sid.clone(),
                customer_id: None,
                verification: None,
                transfer: Some("fallback".into()),
            });
        }
        writes.extend(events(call, step, now, vec![("error", mask_pii(why)), ("transfer", "fallback".into())]));
        state.recorder.record(writes);
    }
    state.metrics.twilio_request(req.route(), "fallback", started.elapsed().as_secs_f64());
    twiml(xml)
}

fn bare_context(call: &VoiceCall) -> CallContext {
    CallContext { call_sid: call.call_sid.clone(), from: call.from.clone(), verified: "no", ..CallContext::default() }
}

fn twiml(xml: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// How the templates reach a person, with the caller's context in the form the target takes.
fn transfer_view(state: &AppState, ctx: &CallContext) -> TransferView {
    let settings = &state.settings;
    let name =
        [ctx.first_name.as_deref(), ctx.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    let task = serde_json::json!({
        "type": "inbound_call",
        "call_sid": ctx.call_sid,
        "from": ctx.from,
        "name": if name.is_empty() { None } else { Some(&name) },
        "customer_id": ctx.customer_id,
        "verified": ctx.verified,
        "order_id": ctx.order_id,
        "order_name": ctx.order_name,
        "order_state": ctx.order_state,
        "screen_pop_url": format!("{}/api/calls/{}", settings.public_url, ctx.call_sid),
    });
    let mut params: Vec<(String, String)> = vec![("call_sid".into(), ctx.call_sid.clone())];
    let optional = [
        ("customer_id", ctx.customer_id.clone()),
        ("name", (!name.is_empty()).then(|| name.clone())),
        ("verified", Some(ctx.verified.to_string())),
        ("order_name", ctx.order_name.clone()),
        ("order_state", ctx.order_state.clone()),
    ];
    params.extend(optional.into_iter().filter_map(|(n, v)| v.map(|v| (n.to_string(), v))));
    let mut whisper = format!("/twilio/voice/whisper?v={}", ctx.verified);
    if let Some(c) = &ctx.customer_id {
        whisper.push_str(&format!("&c={c}"));
    }
    if let Some(o) = &ctx.order_id {
        whisper.push_str(&format!("&o={o}"));
    }
    let sip_uri = match &settings.transfer_to {
        TransferTarget::Sip(uri) => {
            let headers: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(n, v)| (format!("X-Orderline-{}", n.replace('_', "-")), v)))
                .finish();
            format!("{uri}?{headers}")
        }
        _ => String::new(),
    };
    TransferView {
        kind: settings.transfer_to.kind(),
        address: settings.transfer_to.address().to_string(),
        workflow_sid: settings.taskrouter_workflow_sid.clone(),
        task: task.to_string(),
        whisper_url: whisper,
        params,
        sip_uri,
    }
}

/// Said to the agent before the caller is put through (a `<Dial><Number url>` transfer).
async fn whisper(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let query = |name: &str| req.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let id = |name: &str| query(name).and_then(|v| v.parse::<i64>().ok());
    let shop = state.settings.shopify_shop.clone().unwrap_or_default();
    let customer = match id("c") {
        Some(c) => state.store.customer(&shop, ShopifyId(c)).await.ok().flatten(),
        None => None,
    };
    let order = match id("o") {
        Some(o) => state.lookup.order_by_id(o).await.ok().flatten(),
        None => None,
    };
    let tz = state.settings.hours.timezone();
    let ctx = minijinja::context! {
        first_name => customer.as_ref().and_then(|c| c.first_name.clone()),
        last_name => customer.as_ref().and_then(|c| c.last_name.clone()),
        verified => query("v"),
        order => order.map(|o| OrderFacts::of(&o.order, tz)),
    };
    let xml = state.renderer.whisper(ctx).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the whisper template failed");
        "<Response/>".to_string()
    });
    state.metrics.twilio_request("whisper", "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// A status callback: the call's status, and for a final one its end and duration.
async fn status(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => {
            tracing::warn!(error = %why, "status callback without a call refused");
            state.metrics.twilio_request("status", "bad_request", 0.0);
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    let status = req.param("CallStatus").unwrap_or("unknown").to_ascii_lowercase();
    let sequence = req.param("SequenceNumber").and_then(|s| s.parse::<i32>().ok()).unwrap_or(0);
    let duration_s = req.param("CallDuration").and_then(|s| s.parse::<i32>().ok());
    let now = Ts::from(state.clock.now());
    let is_final = is_final_status(&status);
    let started_at = duration_s
        .filter(|_| is_final)
        .map(|d| Ts::from(now.0 - chrono::Duration::seconds(i64::from(d))))
        .unwrap_or(now);
    let mut writes = vec![CallWrite::Status {
        call: call.new_call(&state, started_at),
        status: status.clone(),
        sequence,
        ended_at: is_final.then_some(now),
        duration_s,
    }];
    let detail = match duration_s {
        Some(d) => format!("{status} after {d} s"),
        None => status.clone(),
    };
    writes.extend(events(&call, (STATUS_STEP_BASE + sequence.max(0)) as u32, now, vec![("status", detail)]));
    state.recorder.record(writes);
    state.metrics.twilio_request("status", "answered", started.elapsed().as_secs_f64());
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_step_becomes_an_error_not_a_crash() {
        let panics = async {
            let reply: Option<Reply> = None;
            reply.ok_or_else(String::new).map_err(|_: String| -> String { panic!("boom") })
        };
        let err = guarded(panics).await.unwrap_err();
        assert_eq!(err, "the call flow panicked: boom");
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_hangs_is_cut_off() {
        let hangs = std::future::pending::<Result<Reply, String>>();
        let err = guarded(hangs).await.unwrap_err();
        assert!(err.contains("took longer than"), "{err}");
    }
}
