//! A call as every Twilio route of it sees it, however it is spoken (TwiML or a media stream):
//! the parsed call, a flow step run under a time limit and a net for panics, what a step
//! concluded written to the call record, and how the caller reaches a person. No handlers here.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::public_url::PublicUrl;
use super::render::{LAST_RESORT, TransferView};
use super::request::TwilioRequest;
use super::transfer::TransferTarget;
use super::transfer_end::{DIAL_ENDED_PATH, QUEUE_ENDED_PATH, QUEUE_WAIT_PATH};
use super::xml_text::xml_chars;
use crate::app::AppState;
use crate::domain::{Event, EventStep, TransferReason};
use crate::domain::{mask_phone, mask_pii};
use crate::ivr::{CallContext, Caller, Outcome, Reply, Step};
use crate::lookup::caller_id::CallerId;
use crate::store::{CallEvent, CallWrite, NewCall, Ts};

/// Longest a flow step may take before the caller gets the fallback (Twilio gives up at 15 s).
pub const HANDLER_LIMIT: Duration = Duration::from_secs(8);

/// The voice webhook's parameters, parsed.
#[derive(Debug, Clone)]
pub struct VoiceCall {
    pub call_sid: String,
    pub from: String,
    pub to: Option<String>,
    pub stir_verstat: Option<String>,
    pub digits: Option<String>,
    /// What the caller said at a `<Gather input="dtmf speech">` (`SpeechResult`) and Twilio's
    /// confidence in it (`Confidence`, 0.0–1.0).
    pub speech: Option<String>,
    pub confidence: Option<f32>,
}

impl VoiceCall {
    pub fn parse(req: &TwilioRequest) -> Result<VoiceCall, String> {
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
            speech: req.param("SpeechResult").map(str::to_string),
            confidence: req.param("Confidence").and_then(|c| c.trim().parse().ok()),
        })
    }

    pub fn caller(&self) -> Caller {
        Caller {
            call_sid: self.call_sid.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            stir_verstat: self.stir_verstat.clone(),
        }
    }

    /// The call's record; `parsed` is the caller ID as the lookup already parsed it, if it did.
    pub fn new_call(&self, state: &AppState, started_at: Ts, parsed: Option<&CallerId>) -> NewCall {
        let parse = || CallerId::parse(&self.from, &state.settings.lookup.default_region);
        let caller_id = parsed.map_or_else(|| std::borrow::Cow::Owned(parse()), std::borrow::Cow::Borrowed);
        NewCall {
            call_sid: self.call_sid.clone(),
            shop: state.settings.shopify.shop.clone().unwrap_or_default(),
            from_raw: self.from.clone(),
            // Twilio's placeholders for a withheld number (+266696687 and the like) are no one's number.
            from_e164: match caller_id.as_ref() {
                CallerId::Number(p) => Some(p.as_str().to_string()),
                CallerId::Withheld | CallerId::Unparseable(_) => None,
            },
            to_number: self.to.clone(),
            customer_id: None,
            verification: None,
            transfer: None,
            started_at,
            first_word_ms: None,
        }
    }
}

/// Runs a flow step with a time limit and a net under panics. The step (a large state machine)
/// is boxed at once, so the handler's own future stays small and is cheap to move.
pub fn guarded<F, E>(step: F) -> impl Future<Output = Result<Reply, String>>
where
    F: Future<Output = Result<Reply, E>> + Send,
    E: std::fmt::Display,
{
    let step = Box::pin(step);
    async move { unboxed_guard(step).await }
}

async fn unboxed_guard<F, E>(step: F) -> Result<Reply, String>
where
    F: Future<Output = Result<Reply, E>> + Unpin,
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

pub fn events(call: &VoiceCall, step: EventStep, at: Ts, events: Vec<Event>) -> Vec<CallWrite> {
    let step = step.number();
    events
        .into_iter()
        .enumerate()
        .map(|(idx, event)| {
            CallWrite::Event(CallEvent {
                call_sid: call.call_sid.clone(),
                step,
                idx: idx as i32,
                kind: event.kind(),
                detail: event.detail(),
                at,
            })
        })
        .collect()
}

/// Writes what a step of the call concluded: the call's start (step 1, with how long its first
/// words took when measured) or its outcome, then the step's events. Off the request path (the
/// recorder batches it).
pub fn record_reply(
    state: &AppState,
    call: &VoiceCall,
    step: u32,
    outcome: Outcome,
    step_events: Vec<Event>,
    first_word: Option<Duration>,
) {
    let now = Ts::from(state.clock.now());
    let transferred = outcome.transfer.is_some();
    let mut writes = Vec::with_capacity(step_events.len() + 1);
    if step == 1 {
        let mut new_call = call.new_call(state, now, outcome.caller.as_ref());
        new_call.customer_id = outcome.customer_id;
        new_call.verification = outcome.verification;
        new_call.transfer = outcome.transfer;
        new_call.first_word_ms = first_word.map(|d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
        writes.push(CallWrite::Start(new_call));
    } else if outcome.customer_id.is_some() || outcome.verification.is_some() || outcome.transfer.is_some() {
        writes.push(CallWrite::Outcome {
            call_sid: call.call_sid.clone(),
            customer_id: outcome.customer_id,
            verification: outcome.verification,
            transfer: outcome.transfer,
        });
    }
    writes.extend(events(call, EventStep::Flow(step), now, step_events));
    state.recorder.record(writes);
    if transferred && state.settings.agents.notify().is_some() {
        // Queued now, sent by `agent::notify` once the record is written (it reads the card).
        let (store, call_sid) = (state.store.clone(), call.call_sid.clone());
        tokio::spawn(async move {
            if let Err(e) = store.queue_notification(&call_sid, crate::agent::notify::TRANSFERRED, now).await {
                tracing::warn!(error = %e, "could not queue the transfer's notification");
            }
        });
    }
}

/// WebSocket close codes (RFC 6455) the Media Streams and ConversationRelay sessions end with:
/// normal, protocol error, policy violation.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_POLICY: u16 = 1008;

/// The one way a call falls back, whichever way it is spoken: logs why (masked) and writes that
/// step `step` (0: none of the call's steps) failed and the caller went to the fallback (when the
/// call is known). The transport then says the apology and puts the caller through
/// (`fallback_twiml`, or its spoken form over a stream).
pub fn record_fallback(state: &AppState, call: Option<&VoiceCall>, step: u32, why: &str) {
    let from = call.map(|c| mask_phone(&c.from)).unwrap_or_default();
    tracing::error!(from = %from, step, error = %mask_pii(why), "call flow failed; caller hears the fallback");
    let Some(call) = call else { return };
    let outcome = Outcome { transfer: Some(TransferReason::Fallback), ..Outcome::default() };
    let happened = vec![Event::Error(mask_pii(why)), Event::Transfer(TransferReason::Fallback)];
    record_reply(state, call, step, outcome, happened, None);
}

/// The apology and the way to a person as TwiML, with what is known of the call; the built-in last
/// resort if even the fallback template fails.
pub fn fallback_twiml(state: &AppState, call: Option<&VoiceCall>) -> String {
    let context = call.map(bare_context).unwrap_or_default();
    state.renderer.fallback(&transfer_view(state, &context)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the fallback template failed; using the built-in last resort");
        LAST_RESORT.to_string()
    })
}

/// The call's language as a request's URL carries it (`lang=es`: the call state's, and the
/// transfer's URLs of a call not in the default language), else the line's default.
pub fn language_of(state: &AppState, req: &TwilioRequest) -> crate::domain::Language {
    spoken_or_default(state, req.query.iter().find(|(n, _)| n == "lang").map(|(_, v)| v.as_str()))
}

/// The language `tag` names when the line speaks it; otherwise the line's first.
pub fn spoken_or_default(state: &AppState, tag: Option<&str>) -> crate::domain::Language {
    let default = state.settings.ivr.spoken_languages[0].language;
    let named = tag.and_then(crate::domain::Language::of_tag);
    named.filter(|l| state.settings.ivr.spoken_languages.iter().any(|s| s.language == *l)).unwrap_or(default)
}

/// `url` with the call's language in its query (unchanged for the default language).
pub fn with_language(state: &AppState, url: &str, language: crate::domain::Language) -> String {
    if language == state.settings.ivr.spoken_languages[0].language {
        return url.to_string();
    }
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}lang={}", language.code())
}

/// A transfer's URLs (after the `<Dial>`, after and while in the queue, the agent's whisper)
/// carrying the call's language, so what the caller hears there is in it too (and the agent is
/// told which language the caller speaks).
pub fn in_language(mut view: TransferView, state: &AppState, language: crate::domain::Language) -> TransferView {
    if language != state.settings.ivr.spoken_languages[0].language {
        for url in [&mut view.dial_action, &mut view.queue_action, &mut view.wait_url, &mut view.whisper_url] {
            let join = if url.contains('?') { '&' } else { '?' };
            url.push_str(&format!("{join}lang={}", language.code()));
        }
    }
    view
}

/// How a reply's step reaches a person; only a transfer speaks of it.
pub fn step_transfer_view(state: &AppState, step: &Step) -> TransferView {
    match step {
        Step::Transfer(t) => transfer_view_for(state, &t.context, t.reason == TransferReason::BadNews),
        _ => TransferView::default(),
    }
}

pub fn bare_context(call: &VoiceCall) -> CallContext {
    CallContext { call_sid: call.call_sid.clone(), from: call.from.clone(), verified: "no", ..CallContext::default() }
}

/// How the templates reach a person, with the caller's context in the form the target takes.
/// Every value from Shopify or the caller goes through the XML filter before it is put into JSON,
/// `<Parameter>`s or SIP headers, so no form of it carries a character XML 1.0 forbids.
pub fn transfer_view(state: &AppState, ctx: &CallContext) -> TransferView {
    transfer_view_for(state, ctx, false)
}

/// The TaskRouter priority of a bad-news caller's task.
pub const BAD_NEWS_PRIORITY: u32 = 10;

/// How the caller reaches a person; `priority` (bad news first): ORDERLINE_PRIORITY_TO when set,
/// and the TaskRouter task's priority raised.
pub fn transfer_view_for(state: &AppState, ctx: &CallContext, priority: bool) -> TransferView {
    let settings = &state.settings;
    let target = match (&settings.handoff.priority, priority) {
        (Some(target), true) => target,
        _ => &settings.handoff.transfer,
    };
    let urls = PublicUrl::new(&settings.server.public_url);
    let clean = |s: &str| xml_chars(s).trim().to_string();
    let name = [ctx.first_name.as_deref(), ctx.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(clean)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let from = clean(&ctx.from);
    let order_name = ctx.order_name.as_deref().map(clean);
    let order_state = ctx.order_state.as_deref().map(clean);
    let task = serde_json::json!({
        "type": "inbound_call",
        "call_sid": ctx.call_sid,
        "from": from,
        "name": if name.is_empty() { None } else { Some(&name) },
        "customer_id": ctx.customer_id,
        "verified": ctx.verified,
        "order_id": ctx.order_id,
        "order_name": order_name,
        "order_state": order_state,
        "screen_pop_url": format!("{}/api/calls/{}", settings.server.public_url, ctx.call_sid),
    });
    let mut params: Vec<(String, String)> = vec![("call_sid".into(), ctx.call_sid.clone())];
    let optional = [
        ("customer_id", ctx.customer_id.clone()),
        ("name", (!name.is_empty()).then(|| name.clone())),
        ("verified", Some(ctx.verified.to_string())),
        ("order_name", order_name),
        ("order_state", order_state),
    ];
    params.extend(optional.into_iter().filter_map(|(n, v)| v.map(|v| (n.to_string(), v))));
    let mut whisper = format!("/twilio/voice/whisper?v={}", ctx.verified);
    if let Some(c) = &ctx.customer_id {
        whisper.push_str(&format!("&c={c}"));
    }
    if let Some(o) = &ctx.order_id {
        whisper.push_str(&format!("&o={o}"));
    }
    let sip_uri = match target {
        TransferTarget::Sip(uri) => sip_with_headers(uri, &params),
        _ => String::new(),
    };
    TransferView {
        kind: target.kind(),
        address: target.address().to_string(),
        workflow_sid: settings.handoff.taskrouter_workflow_sid.clone(),
        task: task.to_string(),
        whisper_url: urls.to(&whisper),
        params,
        sip_uri,
        dial_action: urls.to(DIAL_ENDED_PATH),
        queue_action: urls.to(QUEUE_ENDED_PATH),
        wait_url: urls.to(QUEUE_WAIT_PATH),
        priority: if priority && settings.handoff.taskrouter_workflow_sid.is_some() { BAD_NEWS_PRIORITY } else { 0 },
    }
}

/// Twilio drops the headers of a SIP URI when they hold escaped characters (warning 32112: "most
/// likely introduced by an escaped character") or pass 1024 characters (warning 21227), so each
/// value keeps only what RFC 3261's `hvalue` allows unescaped (letters, digits, `-_.!~*'()[]/?:+$`;
/// a space becomes `_`), and headers that would pass the limit are left out, the first (the
/// CallSid) kept.
pub const SIP_HEADERS_MAX: usize = 1023;

pub fn sip_with_headers(uri: &str, params: &[(String, String)]) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()[]/?:+$".contains(c);
    let mut headers = String::new();
    for (name, value) in params {
        let value: String =
            value.chars().map(|c| if c.is_whitespace() { '_' } else { c }).filter(|c| allowed(*c)).collect();
        if value.is_empty() {
            continue;
        }
        let header = format!("X-Orderline-{}={value}", name.replace('_', "-"));
        let added = if headers.is_empty() { header.len() } else { header.len() + 1 };
        if headers.len() + added > SIP_HEADERS_MAX {
            continue;
        }
        if !headers.is_empty() {
            headers.push('&');
        }
        headers.push_str(&header);
    }
    if headers.is_empty() { uri.to_string() } else { format!("{uri}?{headers}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_headers_carry_no_escapes_and_stay_under_twilios_limit() {
        let params = vec![
            ("call_sid".to_string(), "CA1".to_string()),
            ("name".to_string(), "Jane O'Doe-Smith & Co\u{8} é".to_string()),
            ("order_name".to_string(), "#1042".to_string()),
            ("order_state".to_string(), "x".repeat(2000)),
        ];
        let uri = sip_with_headers("sip:agents@pbx.example.com", &params);
        assert_eq!(
            uri,
            "sip:agents@pbx.example.com?X-Orderline-call-sid=CA1&X-Orderline-name=Jane_O'Doe-Smith__Co_&X-Orderline-order-name=1042"
        );
        assert!(!uri.contains('%') && !uri.contains('+'), "{uri}");
        let many: Vec<(String, String)> = (0..100).map(|i| (format!("h{i}"), "v".repeat(30))).collect();
        let uri = sip_with_headers("sip:a@b", &many);
        assert!(uri.split_once('?').unwrap().1.len() <= SIP_HEADERS_MAX, "{}", uri.len());
        assert!(uri.contains("X-Orderline-h0="), "the first header is kept");
    }
}
