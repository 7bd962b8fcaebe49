//! The Twilio caller emulator against a small TwiML server of the test's own (not orderline's
//! IVR): requests are signed as Twilio signs them, TwiML is walked as Twilio walks it, and
//! `orderline call` prints the conversation.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use orderline::sim::twilio::{CallerConfig, Ending, Key, TwilioCaller, scripted};
use orderline::twilio::signature;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "test-twilio-auth-token";
const CALLER: &str = "+15551234567";
/// A caller the test server sends round in circles.
const LOOPING_CALLER: &str = "+15550000000";

/// One request the test server received.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    params: Vec<(String, String)>,
    signature_valid: bool,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct ServerState {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct TwimlServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TwimlServer {
    async fn start() -> TwimlServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/twilio/voice", post(voice))
            .route("/twilio/voice/menu", post(menu))
            .route("/twilio/voice/end", post(end))
            .route("/twilio/voice/loop", post(looping))
            .route("/twilio/status", post(status))
            .route("/twilio/voice/dial-without-action", post(dial_without_action))
            .route("/twilio/voice/control-character", post(control_character))
            .with_state(ServerState { addr, seen: seen.clone() });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TwimlServer { url: format!("http://{addr}"), seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn caller(&self, token: &str) -> TwilioCaller {
        TwilioCaller::new(CallerConfig::new(&self.url, token, CALLER))
    }
}

/// Checks the signature over `http://{addr}{path_and_query}`, as Twilio computed it, and records
/// the request; `None` (answer 403) when the signature is not Twilio's.
fn check(state: &ServerState, uri: &Uri, headers: &HeaderMap, params: Vec<(String, String)>) -> Option<Seen> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let url = format!("http://{}{path_and_query}", state.addr);
    let given = headers.get("X-Twilio-Signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let signature_valid = signature::verify(TOKEN, &url, &params, given);
    let seen = Seen { path_and_query, params, signature_valid };
    state.seen.lock().unwrap().push(seen.clone());
    signature_valid.then_some(seen)
}

fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

fn twiml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

type Params = Form<Vec<(String, String)>>;

async fn voice(State(state): State<ServerState>, uri: Uri, headers: HeaderMap, Form(params): Params) -> Response {
    let Some(seen) = check(&state, &uri, &headers, params) else { return forbidden() };
    if seen.param("From") == Some(LOOPING_CALLER) {
        return twiml("<Response><Redirect>/twilio/voice/loop</Redirect></Response>".into());
    }
    twiml(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>Welcome to the test line.</Say>
  <Gather action="/twilio/voice/menu?n=1" numDigits="1">
    <Say>Press 1 for your order.</Say>
  </Gather>
  <Say>We did not get any input. Goodbye.</Say>
  <Hangup/>
</Response>"#
            .into(),
    )
}

async fn menu(State(state): State<ServerState>, uri: Uri, headers: HeaderMap, Form(params): Params) -> Response {
    let Some(seen) = check(&state, &uri, &headers, params) else { return forbidden() };
    let digits = seen.param("Digits").unwrap_or("nothing");
    twiml(format!("<Response><Say>You pressed {digits}.</Say><Redirect>/twilio/voice/end</Redirect></Response>"))
}

async fn end(State(state): State<ServerState>, uri: Uri, headers: HeaderMap, Form(params): Params) -> Response {
    if check(&state, &uri, &headers, params).is_none() {
        return forbidden();
    }
    twiml("<Response><Say>Connecting you to support.</Say><Enqueue>support</Enqueue></Response>".into())
}

async fn looping(State(state): State<ServerState>, uri: Uri, headers: HeaderMap, Form(params): Params) -> Response {
    if check(&state, &uri, &headers, params).is_none() {
        return forbidden();
    }
    twiml("<Response><Say>Round we go.</Say><Redirect>loop</Redirect></Response>".into())
}

/// The document issue 11 found: a `<Dial>` with no action, an apology after it.
async fn dial_without_action(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Params,
) -> Response {
    if check(&state, &uri, &headers, params).is_none() {
        return forbidden();
    }
    twiml(
        "<Response><Dial><Number>+14155550100</Number></Dial><Say>Sorry, nobody could take your call.</Say><Hangup/></Response>"
            .into(),
    )
}

async fn control_character(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Params,
) -> Response {
    if check(&state, &uri, &headers, params).is_none() {
        return forbidden();
    }
    twiml("<Response><Say>Hi Ann\u{8}e</Say></Response>".into())
}

async fn status(State(state): State<ServerState>, uri: Uri, headers: HeaderMap, Form(params): Params) -> Response {
    match check(&state, &uri, &headers, params) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => forbidden(),
    }
}

#[tokio::test]
async fn pressing_1_walks_the_menu_to_the_support_queue() {
    let server = TwimlServer::start().await;
    let transcript = server.caller(TOKEN).call(scripted(&["1"])).await.unwrap();

    assert_eq!(
        transcript.spoken(),
        ["Welcome to the test line.", "Press 1 for your order.", "You pressed 1.", "Connecting you to support."]
    );
    let Ending::Enqueue(enqueue) = &transcript.ending else { panic!("expected Enqueue, got {:?}", transcript.ending) };
    assert_eq!(enqueue.text.trim(), "support");
    assert_eq!(transcript.last().find("Enqueue"), Some(enqueue));
    let urls: Vec<&str> = transcript.turns.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            format!("{}/twilio/voice", server.url),
            format!("{}/twilio/voice/menu?n=1", server.url),
            format!("{}/twilio/voice/end", server.url),
        ]
    );
    assert!(transcript.turns.iter().all(|t| t.status == 200));

    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path_and_query.as_str()).collect();
    assert_eq!(paths, ["/twilio/voice", "/twilio/voice/menu?n=1", "/twilio/voice/end"]);
    assert!(seen.iter().all(|s| s.signature_valid), "{seen:?}");
    let first = &seen[0];
    assert_eq!(first.param("CallStatus"), Some("ringing"));
    assert_eq!(first.param("From"), Some(CALLER));
    assert_eq!(first.param("Caller"), Some(CALLER));
    assert_eq!(first.param("To"), Some("+18005550100"));
    assert_eq!(first.param("Called"), Some("+18005550100"));
    assert_eq!(first.param("Direction"), Some("inbound"));
    assert_eq!(first.param("ApiVersion"), Some("2010-04-01"));
    assert!(first.param("AccountSid").is_some_and(|s| s.starts_with("AC") && s.len() == 34));
    assert_eq!(first.param("Digits"), None);
    assert_eq!(first.param("StirVerstat"), None);
    assert_eq!(seen[1].param("Digits"), Some("1"));
    assert_eq!(seen[1].param("CallStatus"), Some("in-progress"));
    assert_eq!(seen[2].param("Digits"), None);
    assert_eq!(seen[2].param("CallStatus"), Some("in-progress"));
    let sid = &transcript.call_sid;
    assert!(sid.starts_with("CA") && sid.len() == 34, "{sid}");
    assert!(seen.iter().all(|s| s.param("CallSid") == Some(sid)));
}

#[tokio::test]
async fn a_timeout_hears_the_no_input_message_then_hangs_up() {
    let server = TwimlServer::start().await;
    let transcript = server.caller(TOKEN).call(|_| Some(Key::Timeout)).await.unwrap();
    assert_eq!(
        transcript.spoken(),
        ["Welcome to the test line.", "Press 1 for your order.", "We did not get any input. Goodbye."]
    );
    assert_eq!(transcript.ending, Ending::Hangup);
    // No input, no request: actionOnEmptyResult is false by default.
    assert_eq!(transcript.turns.len(), 1);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn the_keys_function_sees_the_gather_and_none_hangs_up() {
    let server = TwimlServer::start().await;
    let mut actions = Vec::new();
    let transcript = server
        .caller(TOKEN)
        .call(|gather| {
            actions.push(gather.attr("action").map(str::to_string));
            None
        })
        .await
        .unwrap();
    assert_eq!(actions, [Some("/twilio/voice/menu?n=1".to_string())]);
    assert_eq!(transcript.ending, Ending::OutOfKeys);
    assert_eq!(transcript.spoken(), ["Welcome to the test line.", "Press 1 for your order."]);
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_403() {
    let server = TwimlServer::start().await;
    let transcript = server.caller("not-the-token").call(scripted(&["1"])).await.unwrap();
    assert_eq!(transcript.ending, Ending::HttpError(403));
    assert_eq!(transcript.turns.len(), 1);
    assert_eq!(transcript.turns[0].status, 403);
    assert!(transcript.turns[0].document.is_none());
    assert!(transcript.spoken().is_empty());
    assert_eq!(transcript.last().verbs, vec![]);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].signature_valid);
}

#[tokio::test]
async fn a_redirect_loop_stops_after_fifty_requests() {
    let server = TwimlServer::start().await;
    let caller = TwilioCaller::new(CallerConfig::new(&server.url, TOKEN, LOOPING_CALLER));
    let transcript = caller.call(scripted(&[])).await.unwrap();
    assert_eq!(transcript.ending, Ending::TooManySteps);
    assert_eq!(transcript.turns.len(), 50);
    assert_eq!(server.seen().len(), 50);
    assert!(server.seen().iter().all(|s| s.signature_valid));
    // The relative `loop` resolves next to /twilio/voice/loop.
    assert!(transcript.turns[1..].iter().all(|t| t.url == format!("{}/twilio/voice/loop", server.url)));
}

#[tokio::test]
async fn configured_sid_stir_result_and_extra_params_are_sent_and_signed() {
    let server = TwimlServer::start().await;
    let mut config = CallerConfig::new(format!("{}/", server.url), TOKEN, CALLER);
    config.to = "+18005559999".into();
    config.call_sid = Some("CA0123456789abcdef0123456789abcdef".into());
    config.stir_verstat = Some("TN-Validation-Passed-A".into());
    config.extra_params = vec![("CallerName".into(), "O'Brien & Sons".into())];
    let transcript = TwilioCaller::new(config).call(scripted(&["1"])).await.unwrap();
    assert_eq!(transcript.call_sid, "CA0123456789abcdef0123456789abcdef");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert!(s.signature_valid, "{s:?}");
        assert_eq!(s.param("CallSid"), Some("CA0123456789abcdef0123456789abcdef"));
        assert_eq!(s.param("To"), Some("+18005559999"));
        assert_eq!(s.param("StirVerstat"), Some("TN-Validation-Passed-A"));
        assert_eq!(s.param("CallerName"), Some("O'Brien & Sons"));
    }
}

#[tokio::test]
async fn a_status_callback_is_signed_and_carries_the_duration() {
    let server = TwimlServer::start().await;
    let caller = server.caller(TOKEN);
    assert_eq!(caller.status_callback("CA42", "completed", Some(17), 3).await.unwrap(), 204);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert!(s.signature_valid);
    assert_eq!(s.path_and_query, "/twilio/status");
    assert_eq!(s.param("CallSid"), Some("CA42"));
    assert_eq!(s.param("CallStatus"), Some("completed"));
    assert_eq!(s.param("CallDuration"), Some("17"));
    assert_eq!(s.param("SequenceNumber"), Some("3"));
    assert!(s.param("Timestamp").is_some_and(|t| t.ends_with("+0000")));
    assert_eq!(server.caller("wrong").status_callback("CA42", "completed", None, 0).await.unwrap(), 403);
}

#[tokio::test]
async fn a_hand_made_post_is_signed_over_its_query_string() {
    let server = TwimlServer::start().await;
    let caller = server.caller(TOKEN);
    let params = vec![("CallSid".to_string(), "CA1".to_string()), ("Digits".to_string(), "7".to_string())];
    let turn = caller.post(&format!("{}/twilio/voice/menu?n=1", server.url), &params).await.unwrap();
    assert_eq!(turn.status, 200);
    assert_eq!(turn.document.unwrap().says(), ["You pressed 7."]);
    assert!(server.seen()[0].signature_valid);
    assert_eq!(server.seen()[0].path_and_query, "/twilio/voice/menu?n=1");
}

async fn run_call(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderline"));
    command
        .arg("call")
        .args(args)
        .env_remove("TWILIO_AUTH_TOKEN")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        // Dropping the pipe closes it: the end of input.
    }
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_call_command_prints_the_conversation_and_reports_completion() {
    let server = TwimlServer::start().await;
    let (code, stdout, stderr) = run_call(&[CALLER, "--url", &server.url, "--token", TOKEN, "--keys", "1"], None).await;
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let conversation: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("  ") || l.starts_with('→')).collect();
    assert_eq!(
        conversation,
        [
            "  say: Welcome to the test line.",
            "  say: Press 1 for your order.",
            "  gather: (press keys, # to finish)",
            "  pressed: 1",
            "  say: You pressed 1.",
            "  say: Connecting you to support.",
            "→ enqueue support",
        ],
        "{stdout}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|s| s.signature_valid));
    let callback = &seen[3];
    assert_eq!(callback.path_and_query, "/twilio/status");
    assert_eq!(callback.param("CallStatus"), Some("completed"));
    assert!(callback.param("CallDuration").is_some_and(|d| d.parse::<u32>().is_ok()));
    assert_eq!(callback.param("CallSid"), seen[0].param("CallSid"));
    assert!(stdout.contains("HTTP 204"), "{stdout}");
}

#[tokio::test]
async fn the_call_command_reads_keys_from_stdin() {
    let server = TwimlServer::start().await;
    let args = [CALLER, "--url", server.url.as_str(), "--token", TOKEN, "--stir", "TN-Validation-Passed-A"];
    let (code, stdout, stderr) = run_call(&args, Some("1\n")).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("  say: You pressed 1.\n") && stdout.contains("→ enqueue support\n"), "{stdout}");
    assert_eq!(server.seen()[0].param("StirVerstat"), Some("TN-Validation-Passed-A"));

    // An empty line lets the prompt time out.
    let (code, stdout, _) = run_call(&args, Some("\n")).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("  say: We did not get any input. Goodbye.\n") && stdout.contains("→ hangup\n"),
        "{stdout}"
    );

    // The end of input hangs up; the call still completes.
    let before = server.seen().len();
    let (code, stdout, _) = run_call(&args, Some("")).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("→ caller hung up\n"), "{stdout}");
    let seen = server.seen();
    assert_eq!(seen.len(), before + 2);
    assert_eq!(seen.last().unwrap().param("CallStatus"), Some("completed"));
}

#[tokio::test]
async fn the_call_command_fails_clearly_on_a_wrong_token() {
    let server = TwimlServer::start().await;
    let (code, stdout, stderr) =
        run_call(&[CALLER, "--url", &server.url, "--token", "wrong", "--keys", "1"], None).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stderr.contains("403") && stderr.contains("auth token"), "{stderr}");
    // No status callback for a call that never started.
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn the_call_command_fails_clearly_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (code, _, stderr) = run_call(&[CALLER, "--url", &url, "--token", TOKEN, "--keys", "1"], None).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot reach") && stderr.contains(&url), "{stderr}");
}

#[tokio::test]
async fn after_an_answered_dial_without_action_twilio_reads_on_in_the_same_document() {
    // twilio.com/docs/voice/twiml/dial: "If you do not provide an action URL … and the original
    // caller is still on the line, Twilio will continue to render the original TwiML document."
    use orderline::sim::twilio::{DialOutcome, Transfer};
    let server = TwimlServer::start().await;
    let mut config = CallerConfig::new(&server.url, TOKEN, CALLER);
    config.transfer = Transfer::Dial(DialOutcome::Answered { talk_s: 60 });
    let caller = TwilioCaller::new(config);
    let url = format!("{}/twilio/voice/dial-without-action", server.url);
    let t = caller.walk("CA1".into(), url, caller.base_params("CA1", "in-progress"), |_| None, |_| {}).await.unwrap();
    assert_eq!(t.spoken(), ["Sorry, nobody could take your call."]);
    assert_eq!(t.ending, Ending::Hangup);
    // By default the emulator stops at the hand-over, as before.
    let t = server
        .caller(TOKEN)
        .walk("CA2".into(), format!("{}/twilio/voice/dial-without-action", server.url), Vec::new(), |_| None, |_| {})
        .await
        .unwrap();
    assert!(matches!(t.ending, Ending::Dial(_)), "{:?}", t.ending);
}

#[tokio::test]
async fn twiml_with_a_character_xml_forbids_is_refused_as_twilio_refuses_it() {
    let server = TwimlServer::start().await;
    let caller = server.caller(TOKEN);
    let url = format!("{}/twilio/voice/control-character", server.url);
    let err =
        caller.walk("CA1".into(), url, caller.base_params("CA1", "in-progress"), |_| None, |_| {}).await.unwrap_err();
    assert!(matches!(err, orderline::sim::twilio::CallError::InvalidTwiml { .. }), "{err}");
    assert!(err.to_string().contains("12100") && err.to_string().contains("U+0008"), "{err}");
}
