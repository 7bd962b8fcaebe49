//! Media Streams mode end to end: orderline on 127.0.0.1:0 (Postgres and SQLite) with
//! ORDERLINE_PROMPT_MODE=media_stream, the demo shop in its store, and Twilio played by the
//! Media Streams emulator over a real WebSocket: the `<Connect><Stream>` answer, paced audio
//! decoded back into clips, marks, barge-in, the close and the `<Redirect>` after it. Raw
//! clients check the protocol's edges: message order, `stop`, and what malformed or
//! out-of-order messages do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::Backend;
use crate::common::line::{Line, TOKEN, line, line_with};
use chrono::{TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use orderline::clock::ManualClock;
use orderline::config::{PromptMode, Settings, VerifyPolicy};
use orderline::sim::media::{
    MediaCaller, StreamSocket, StreamTranscript, connect_signed, connect_stream, connected, scripted_media, send, start,
};
use orderline::sim::twilio::{CallError, CallerConfig, Ending, TwilioCaller, random_call_sid};
use orderline::twilio::media::protocol::{Dtmf, FromTwilio, MarkName, Media, Stop, ToTwilio};
use tokio_tungstenite::tungstenite::Message;

const DANA: &str = "+15551234567";
const STRANGER: &str = "+15550199999";
pub(crate) fn media(s: &mut Settings) {
    s.ivr.prompt_mode = PromptMode::MediaStream;
}
const FRAME_MS: f64 = 20.0;

fn digit_clips(name: &str) -> Vec<String> {
    name.chars().filter(char::is_ascii_digit).map(|d| format!("digit_{d}")).collect()
}

fn ids(clips: &[&str]) -> Vec<String> {
    clips.iter().map(|c| c.to_string()).collect()
}

fn media_caller(line: &Line, from: &str) -> MediaCaller {
    MediaCaller::new(TwilioCaller::new(CallerConfig::new(&line.app.url, TOKEN, from)))
}

pub(crate) async fn media_call(line: &Line, from: &str, keys: &[&str]) -> StreamTranscript {
    media_caller(line, from).call(&mut scripted_media(keys), |_| {}).await.expect("the call went through")
}

async fn a_known_caller_hears_their_order_and_the_menu_over_the_stream(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let t = media_call(&line, DANA, &["0"]).await;

    // The answer: a bidirectional stream with the call's context as parameters, then a Redirect.
    let doc = t.connect.document.as_ref().unwrap();
    let stream = doc.find("Stream").expect("<Connect><Stream>");
    let stream_url = stream.attr("url").unwrap();
    assert_eq!(stream_url, format!("{}/twilio/media", line.app.url.replace("http://", "ws://")));
    assert!(!stream_url.contains('?'), "Twilio allows no query string on a stream URL");
    assert_eq!(t.parameters.get("from").map(String::as_str), Some(DANA));
    assert!(t.parameters.contains_key("token"));
    assert_eq!(doc.verbs.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["Connect", "Redirect"]);
    assert_eq!(doc.find("Redirect").unwrap().text.trim(), format!("{}/twilio/voice/stream-ended", line.app.url));

    // What was said: greeting (her first name is among the recorded ones), the latest order, the
    // menu; then, after 0, "please hold".
    let latest = line.latest_order("Dana");
    let first = &t.prompts[0].clips;
    let mut opening = ids(&["hi", "name_dana", "thanks_for_calling", "welcome_back", "your_order_number"]);
    opening.extend(digit_clips(&latest.name));
    assert_eq!(first[..opening.len()], opening[..], "{first:?}");
    let rest = &first[opening.len()..];
    assert_eq!(rest[0], "shipped_on", "{first:?}");
    assert!(rest[1].starts_with("month_") && rest[2].starts_with("ord_"), "the day: {first:?}");
    assert_eq!(rest[3..5], ids(&["with", "carrier_ups"])[..], "{first:?}");
    // In transit with the carrier's estimate (Fulfillment.estimatedDeliveryAt): when it is due.
    let expected = latest.fulfillments.last().and_then(|f| f.estimated_delivery_at).expect("an estimate");
    let due = [
        "expected_to_arrive".to_string(),
        format!("month_{}", chrono::Datelike::month(&expected)),
        format!("ord_{}", chrono::Datelike::day(&expected)),
    ];
    assert_eq!(rest[5..8], due[..], "{first:?}");
    assert_eq!(
        rest[8..],
        ids(&["press_1_again", "press_2_other_orders", "press_3_returns", "press_0_someone"])[..],
        "{first:?}"
    );
    assert!(!first.contains(&"?".to_string()), "every sound is a recorded clip");
    assert_eq!(t.prompts[0].mark.as_deref(), Some("1:menu"));
    assert_eq!(t.pressed, ['0']);
    assert_eq!(t.prompts[1].clips, ["please_hold"]);
    assert_eq!(t.prompts[1].mark.as_deref(), Some("2:transfer"));
    assert_eq!(t.prompts.len(), 2);

    // orderline closes the stream, and the Redirect answers with the transfer.
    assert_eq!(t.close, Some((1000, "transfer".to_string())));
    let after = t.after.as_ref().expect("the TwiML after <Connect> ran");
    assert!(after.turns[0].url.ends_with("/twilio/voice/stream-ended"));
    assert!(matches!(&t.ending, Ending::Enqueue(q) if q.text.trim() == "support"), "{:?}", t.ending);
    assert!(after.spoken().is_empty(), "the words were spoken over the stream: {:?}", after.spoken());

    // The call record is the same as a TwiML call's.
    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().expect("the call is recorded");
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    assert_eq!(call.customer_id, Some(dana.id.0));
    assert_eq!((call.verification.as_deref(), call.transfer.as_deref()), (Some("not_required"), Some("asked")));
    let events: Vec<(String, String)> =
        line.app.store().call_events(&t.call_sid).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect();
    // Twilio's stream status callbacks were taken (204) and recorded.
    assert_eq!(t.stream_reports.iter().map(|r| r.status).collect::<Vec<_>>(), [204, 204]);
    assert!(t.stream_reports[0].url.starts_with(&format!("{}/twilio/voice/stream-status", line.app.url)));
    for expected in [
        ("step", "menu"),
        ("key", "0"),
        ("step", "transfer"),
        ("transfer", "asked"),
        ("stream", "stream-started"),
        ("stream", "stream-stopped"),
    ] {
        assert!(events.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {events:?}");
    }
    line.app.stop().await;
}

async fn pressing_4_over_the_stream_texts_the_tracking_link(backend: Backend) {
    use orderline::sim::twilio::rest::{RestSimConfig, TwilioRestSim};
    let twilio = TwilioRestSim::new(RestSimConfig { auth_token: TOKEN.into(), ..RestSimConfig::default() });
    let server = twilio.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (url, account) = (server.url(), twilio.config().account_sid.clone());
    let settings = |s: &mut Settings| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
        s.twilio.account_sid = Some(account.to_string());
        s.twilio.api_url = url.to_string();
    };
    let line = line(backend, settings).await;
    let t = media_call(&line, DANA, &["4", "0"]).await;
    // The menu offers it in recorded words; after 4, the menu again opens with "sent".
    let menu = &t.prompts[0].clips;
    let offer = menu.iter().position(|c| c == "press_4_text_link").expect("offered");
    assert_eq!(menu[offer - 1], "press_3_returns", "{menu:?}");
    assert_eq!(t.prompts[1].clips[0], "text_sent", "{:?}", t.prompts[1].clips);
    assert!(t.prompts.iter().all(|p| !p.clips.contains(&"?".to_string())), "every sound is a recorded clip");
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].to, DANA);
    assert!(messages[0].body.contains(&line.latest_order("Dana").name), "{}", messages[0].body);
    server.stop().await;
    line.app.stop().await;
}

async fn frames_are_160_bytes_paced_at_50_a_second(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let t = media_call(&line, DANA, &["0"]).await;
    let prompt = &t.prompts[0];
    assert!(prompt.whole_frames, "every frame is 160 bytes");
    assert_eq!(prompt.audio.len(), prompt.frames * 160);
    assert!(prompt.frames > 250, "a menu lasts seconds: {} frames", prompt.frames);
    // From the frames' arrival timestamps: never more than the lead (300 ms by default) ahead of
    // a 20 ms schedule (so not dumped at once), and after the lead on average 50 a second.
    let arrivals: Vec<f64> = prompt.arrivals.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let first = arrivals[0];
    for (i, at) in arrivals.iter().enumerate() {
        let due = first + i as f64 * FRAME_MS;
        assert!(*at >= due - 300.0 - 50.0, "frame {i} arrived {:.1} ms ahead of its schedule", due - at);
    }
    let paced = &arrivals[15..];
    let span = paced.last().unwrap() - paced[0];
    let per_second = (paced.len() - 1) as f64 / span * 1000.0;
    assert!((45.0..=50.5).contains(&per_second), "{per_second:.2} frames a second over {span:.0} ms");
    line.app.stop().await;
}

async fn a_key_during_a_prompt_clears_it_and_the_next_prompt_follows(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    // 1 during the greeting (hear it again), then 0 during the repeat.
    let t = media_call(&line, DANA, &["!1", "!0"]).await;
    assert!(t.prompts[0].cleared && t.prompts[0].mark.is_none(), "the greeting was cut short: {:?}", t.prompts[0]);
    assert!(t.prompts[0].frames < 100, "{} frames", t.prompts[0].frames);
    let again = &t.prompts[1];
    assert!(again.cleared, "the repeat was cut short too");
    assert_eq!(again.clips.first().map(String::as_str), Some("your_order_number"), "no second greeting: {again:?}");
    assert_eq!(t.prompts[2].clips, ["please_hold"]);
    assert_eq!(t.pressed, ['1', '0']);
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.flush_calls().await;
    let events: Vec<(String, String)> =
        line.app.store().call_events(&t.call_sid).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect();
    let barge_ins = events.iter().filter(|(k, v)| k == "barge_in" && v == "menu").count();
    assert_eq!(barge_ins, 2, "{events:?}");
    line.app.stop().await;
}

async fn an_unknown_caller_keys_an_order_number_during_the_question(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::PostalCode;
    })
    .await;
    let order = line.latest_order("Dana");
    let number: String = order.name.chars().filter(char::is_ascii_digit).collect();
    // The order number alone proves nothing under postal_code: the order's postal code follows.
    let t = media_call(&line, STRANGER, &[&format!("!{number}"), "!11217", "0"]).await;
    assert_eq!(t.prompts[0].mark, None);
    assert_eq!(t.prompts[0].clips.first().map(String::as_str), Some("thanks_for_calling"));
    // (Cut short by the keys, so only its first clip is certain to have been sent.)
    assert_eq!(t.prompts[1].clips.first().map(String::as_str), Some("to_protect_privacy"), "{:?}", t.prompts[1].clips);
    let menu = &t.prompts[2].clips;
    let mut expected = ids(&["hi", "name_dana", "thanks_for_calling", "welcome_back", "your_order_number"]);
    expected.extend(digit_clips(&order.name));
    assert_eq!(menu[..expected.len()], expected[..], "the keyed order, digit by digit: {menu:?}");
    assert!(!menu.contains(&"press_2_other_orders".to_string()), "an order number proves one order only");
    assert_eq!(t.pressed.iter().collect::<String>(), format!("{number}#11217#0"));
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

async fn outside_hours_the_stream_says_goodbye_and_the_redirect_hangs_up(backend: Backend) {
    // Saturday noon; the line opens Monday at 9.
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()));
    let hours = |s: &mut Settings| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.hours = "mon-fri 09:00-17:00".into();
        s.handoff.hours_timezone = "UTC".into();
    };
    let line = line_with(backend, hours, clock).await;
    // An unknown caller keys a wrong order number twice: nobody to transfer to, so goodbye.
    let t = media_call(&line, STRANGER, &["!9#", "!9#"]).await;
    let last = t.prompts.last().unwrap();
    assert_eq!(last.mark.as_deref().map(|m| m.ends_with(":goodbye")), Some(true), "{last:?}");
    let opening = ids(&["please_call_back", "weekday_1", "at", "digit_9", "am", "goodbye"]);
    assert!(last.clips.ends_with(&opening), "when the line opens, from recordings: {:?}", last.clips);
    assert_eq!(t.close, Some((1000, "goodbye".to_string())));
    assert_eq!(t.ending, Ending::Hangup);
    line.app.stop().await;
}

/// The stream of a call answered in Media Streams mode: its URL and parameters, and the call's SID.
async fn answered(line: &Line, from: &str) -> (String, BTreeMap<String, String>, String) {
    let caller = TwilioCaller::new(CallerConfig::new(&line.app.url, TOKEN, from));
    let call_sid = random_call_sid();
    let turn = caller.post(&format!("{}/twilio/voice", line.app.url), &caller.base_params(&call_sid, "ringing")).await;
    let doc = turn.unwrap().document.unwrap();
    let stream = doc.find("Stream").unwrap();
    let params = stream
        .children
        .iter()
        .map(|p| (p.attr("name").unwrap().to_string(), p.attr("value").unwrap().to_string()))
        .collect();
    (stream.attr("url").unwrap().to_string(), params, call_sid)
}

/// A stream opened by hand, `connected` and `start` sent.
async fn started(line: &Line, from: &str) -> (StreamSocket, String) {
    let (url, params, call_sid) = answered(line, from).await;
    let mut socket = connect_stream(&url, TOKEN).await.unwrap();
    send(&mut socket, &connected()).await.unwrap();
    send(&mut socket, &start("MZ1", &call_sid, &params)).await.unwrap();
    (socket, call_sid)
}

/// The next message orderline sends: a parsed message, or the close frame (code, reason).
async fn next(socket: &mut StreamSocket) -> Result<ToTwilio, (u16, String)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("orderline answers");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err((1006, "socket gone".into())),
        }
    }
}

fn kind(message: &ToTwilio) -> &'static str {
    match message {
        ToTwilio::Media { .. } => "media",
        ToTwilio::Mark { .. } => "mark",
        ToTwilio::Clear { .. } => "clear",
    }
}

/// The kinds of message up to and including the first that is not media (runs of media as one).
async fn until_not_media(socket: &mut StreamSocket) -> (usize, Result<ToTwilio, (u16, String)>) {
    let mut frames = 0;
    loop {
        match next(socket).await {
            Ok(ToTwilio::Media { .. }) => frames += 1,
            other => return (frames, other),
        }
    }
}

fn dtmf(digit: &str) -> FromTwilio {
    FromTwilio::Dtmf {
        sequence_number: None,
        stream_sid: "MZ1".into(),
        dtmf: Dtmf { track: "inbound_track".into(), digit: digit.into() },
    }
}

fn mark(name: &str) -> FromTwilio {
    FromTwilio::Mark { sequence_number: None, stream_sid: "MZ1".into(), mark: MarkName { name: name.into() } }
}

async fn the_message_sequence_is_media_then_a_mark_and_marks_echo(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (mut socket, _) = started(&line, DANA).await;
    // The greeting starts; 0 during it: clear, then the transfer's words and their mark.
    let mut frames = 0;
    while frames < 5 {
        assert_eq!(kind(&next(&mut socket).await.unwrap()), "media");
        frames += 1;
    }
    send(&mut socket, &dtmf("0")).await.unwrap();
    let (more, after) = until_not_media(&mut socket).await;
    assert!(more < 10, "the prompt stops at the key: {more} more frames");
    assert_eq!(after.map(|m| kind(&m)), Ok("clear"));
    let (frames, after) = until_not_media(&mut socket).await;
    assert!(frames > 20, "please hold: {frames} frames");
    let Ok(ToTwilio::Mark { mark: name, .. }) = after else { panic!("a mark after the prompt: {after:?}") };
    assert_eq!(name.name, "2:transfer");
    // Played: the mark comes back, and orderline closes the stream.
    send(&mut socket, &mark(&name.name)).await.unwrap();
    assert_eq!(next(&mut socket).await.unwrap_err(), (1000, "transfer".to_string()));
    line.app.stop().await;
}

async fn unknown_events_digits_marks_and_unreadable_media_are_ignored_and_counted(backend: Backend) {
    // Twilio documents no closed set of events: what orderline does not know, it lets go.
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (mut socket, _) = started(&line, DANA).await;
    assert_eq!(kind(&next(&mut socket).await.unwrap()), "media");
    send(&mut socket, &mark("9:made-up")).await.unwrap();
    send(&mut socket, &dtmf("x")).await.unwrap();
    let media = |payload: &str| {
        Message::Text(
            format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}}}}"#)
                .into(),
        )
    };
    for junk in [
        Message::Text(r#"{"event":"transcription","streamSid":"MZ1","transcription":{"text":"hi"}}"#.into()),
        media("%%%"),
        media(&"/w==".repeat(2000)),
    ] {
        socket.send(junk).await.unwrap();
    }
    // The call goes on: a key still cuts the prompt short and reaches a person.
    send(&mut socket, &dtmf("0")).await.unwrap();
    let (_, after) = until_not_media(&mut socket).await;
    assert_eq!(after.map(|m| kind(&m)), Ok("clear"));
    let (_, after) = until_not_media(&mut socket).await;
    let Ok(ToTwilio::Mark { mark: name, .. }) = after else { panic!("a mark after the prompt: {after:?}") };
    assert_eq!(name.name, "2:transfer");
    let metrics = wait_for_metric(&line, "orderline_media_messages_ignored_total{what=\"bad_media\"} 2").await;
    for what in ["unknown_mark", "unknown_digit", "unknown_event"] {
        let line = format!("orderline_media_messages_ignored_total{{what=\"{what}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    line.app.stop().await;
}

async fn stop_ends_the_session_cleanly(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (mut socket, call_sid) = started(&line, DANA).await;
    assert_eq!(kind(&next(&mut socket).await.unwrap()), "media");
    let stop = FromTwilio::Stop {
        sequence_number: None,
        stream_sid: "MZ1".into(),
        stop: Stop { account_sid: "AC1".into(), call_sid: call_sid.clone() },
    };
    send(&mut socket, &stop).await.unwrap();
    // orderline stops talking; the socket is Twilio's to close.
    let (_, end) = until_not_media(&mut socket).await;
    assert!(end.is_err(), "{end:?}");
    let metrics = wait_for_metric(&line, "orderline_media_streams_ended_total{end=\"stopped\"} 1").await;
    assert!(metrics.contains("orderline_media_streams_active 0"), "{metrics}");
    // No decision was made: the Redirect (had the call gone on) would get the fallback.
    assert_eq!(line.app.store().take_handoff(&call_sid).await.unwrap(), None);
    line.app.stop().await;
}

async fn frames_delayed_150_ms_at_random_play_without_an_underrun(backend: Backend) {
    // With the default lead (300 ms of audio queued at Twilio), jitter up to 150 ms never reaches
    // the caller; with no lead, the same jitter starves the playback (the model can underrun).
    for (lead, expect_underruns) in [(None, false), (Some(Duration::ZERO), true)] {
        let settings = |s: &mut Settings| {
            media(s);
            s.ivr.verify = VerifyPolicy::None;
            if let Some(lead) = lead {
                s.ivr.media_lead = lead;
            }
        };
        let line = line(backend, settings).await;
        let mut caller = media_caller(&line, DANA);
        caller.jitter = Duration::from_millis(150);
        let t = caller.call(&mut scripted_media(&["0"]), |_| {}).await.unwrap();
        assert!(t.prompts[0].frames > 250 && t.prompts[0].mark.is_some(), "the menu played to its end");
        let underruns: usize = t.prompts.iter().map(|p| p.underruns).sum();
        assert_eq!(underruns > 0, expect_underruns, "lead {lead:?}: {underruns} underruns");
        assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
        line.app.stop().await;
    }
}

async fn a_handshake_signed_over_the_url_with_a_trailing_slash_is_accepted(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let mut caller = media_caller(&line, DANA);
    caller.sign_with_trailing_slash = true;
    let t = caller.call(&mut scripted_media(&["!0"]), |_| {}).await.unwrap();
    assert_eq!(t.close, Some((1000, "transfer".to_string())));
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

async fn media_mode_refuses_to_start_unless_the_stream_is_wss_on_443(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    for public_url in ["https://line.example.com:8443", "http://line.example.com"] {
        let settings = common::settings_for(&db.url, |s| {
            media(s);
            s.server.public_url = public_url.to_string();
        });
        let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
        assert!(err.contains("ORDERLINE_PUBLIC_URL") && err.contains("ORDERLINE_PROMPT_MODE"), "{err}");
    }
}

async fn a_media_call_under_a_public_url_with_a_path_keeps_it_everywhere(backend: Backend) {
    use orderline::sim::twilio::{DialOutcome, Transfer};
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
        s.server.public_url = "http://127.0.0.1:0/support/line".into();
        s.handoff.transfer_to = "tel:+14155550100".into();
    })
    .await;
    let base = format!("{}/support/line", line.app.url);
    let mut config = CallerConfig::new(&base, TOKEN, DANA);
    config.transfer = Transfer::Dial(DialOutcome::Answered { talk_s: 30 });
    let t = MediaCaller::new(TwilioCaller::new(config)).call(&mut scripted_media(&["!0"]), |_| {}).await.unwrap();
    let doc = t.connect.document.as_ref().unwrap();
    assert_eq!(
        doc.find("Stream").unwrap().attr("url").unwrap(),
        format!("{}/twilio/media", base.replace("http://", "ws://"))
    );
    assert_eq!(doc.find("Redirect").unwrap().text.trim(), format!("{base}/twilio/voice/stream-ended"));
    assert_eq!(t.close, Some((1000, "transfer".to_string())));
    let after = t.after.as_ref().unwrap();
    let urls: Vec<&str> = after.turns.iter().chain(&after.whispers).map(|t| t.url.as_str()).collect();
    assert!(urls.len() >= 3, "stream-ended, whisper, dial action: {urls:?}");
    assert!(urls.iter().all(|u| u.starts_with(&format!("{base}/twilio/voice/"))), "{urls:?}");
    assert!(after.turns.iter().all(|t| t.status == 200), "{urls:?}");
    assert_eq!(after.ending, Ending::Hangup);
    line.app.stop().await;
}

async fn wait_for_metric(line: &Line, needle: &str) -> String {
    for _ in 0..50 {
        let (_, metrics) = line.app.get("/metrics").await;
        if metrics.contains(needle) {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle} never showed in /metrics: {}", line.app.get("/metrics").await.1);
}

/// Sends `messages` on a fresh (signed) stream and returns how orderline closed it.
async fn close_after(line: &Line, messages: Vec<Message>) -> (u16, String) {
    let (url, _, _) = answered(line, DANA).await;
    let mut socket = connect_stream(&url, TOKEN).await.unwrap();
    for message in messages {
        if socket.send(message).await.is_err() {
            break;
        }
    }
    loop {
        match next(&mut socket).await {
            Ok(_) => continue,
            Err(end) => return end,
        }
    }
}

fn text(message: &FromTwilio) -> Message {
    Message::Text(serde_json::to_string(message).unwrap().into())
}

async fn malformed_or_out_of_order_messages_close_the_stream_with_a_reason(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let silence = FromTwilio::Media {
        sequence_number: None,
        stream_sid: "MZ1".into(),
        media: Media { track: "inbound".into(), chunk: "1".into(), timestamp: "0".into(), payload: "/w==".into() },
    };
    let (_, params, call_sid) = answered(&line, DANA).await;
    let good_start = text(&start("MZ1", &call_sid, &params));
    let cases: Vec<(&str, Vec<Message>, u16, &str)> = vec![
        ("not JSON", vec![Message::Text("hello".into())], 1002, "malformed message"),
        ("a binary frame", vec![Message::Binary(vec![1, 2, 3].into())], 1002, "binary"),
        ("media before start", vec![text(&connected()), text(&silence)], 1002, "before `start`"),
        ("dtmf before start", vec![text(&dtmf("1"))], 1002, "before `start`"),
        ("start twice", vec![good_start.clone(), good_start.clone()], 1002, "after the stream started"),
        (
            "another stream's message",
            vec![
                good_start.clone(),
                text(&FromTwilio::Dtmf {
                    sequence_number: None,
                    stream_sid: "MZ2".into(),
                    dtmf: Dtmf { track: "inbound_track".into(), digit: "1".into() },
                }),
            ],
            1002,
            "another stream",
        ),
        ("a start for a call orderline did not answer", vec![text(&start("MZ1", "CA0000", &params))], 1008, "token"),
    ];
    for (what, messages, code, reason) in cases {
        let (got_code, got_reason) = close_after(&line, messages).await;
        assert_eq!(got_code, code, "{what}: {got_reason}");
        assert!(got_reason.contains(reason), "{what}: {got_reason}");
    }
    let metrics = wait_for_metric(&line, "orderline_media_streams_ended_total{end=\"protocol_error\"} 6").await;
    assert!(metrics.contains("orderline_media_streams_ended_total{end=\"refused\"} 1"), "{metrics}");
    // Nothing broke: the next caller is served as usual.
    let t = media_call(&line, DANA, &["!0"]).await;
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

async fn an_unsigned_or_forged_handshake_is_refused(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (url, _, _) = answered(&line, DANA).await;
    let forged = orderline::twilio::signature::sign("not-the-token", &url, &[]);
    assert!(matches!(connect_signed(&url, &forged).await, Err(CallError::Forbidden { .. })));
    assert!(matches!(connect_signed(&url, "").await, Err(CallError::Forbidden { .. }) | Err(CallError::Http { .. })));
    line.app.stop().await;
}

async fn a_stream_that_ended_without_a_decision_gets_the_fallback(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    // The stream failed before any decision (here: never opened): Twilio goes on to the Redirect.
    let caller = TwilioCaller::new(CallerConfig::new(&line.app.url, TOKEN, DANA));
    let (_, _, call_sid) = answered(&line, DANA).await;
    let turn = caller
        .post(&format!("{}/twilio/voice/stream-ended", line.app.url), &caller.base_params(&call_sid, "in-progress"))
        .await
        .unwrap();
    let doc = turn.document.unwrap();
    assert!(doc.spoken().contains("Sorry, I can't look up orders right now"), "{}", doc.spoken());
    assert!(doc.find("Enqueue").is_some(), "the caller reaches a person");
    line.app.stop().await;
}

/// `seconds` of a tone at `hz` as 8 kHz μ-law: a recording unlike any built-in clip.
fn tone(hz: f64, seconds: f64) -> Vec<u8> {
    let samples = (8000.0 * seconds) as usize;
    let sample = |i: usize| (8000.0 * (std::f64::consts::TAU * hz * i as f64 / 8000.0).sin()) as i16;
    (0..samples).map(|i| orderline::speech::mulaw(sample(i))).collect()
}

/// The same audio as an 8 kHz μ-law WAV file, as a merchant's recording tool writes it.
fn mulaw_wav(audio: &[u8]) -> Vec<u8> {
    let mut wav = b"RIFF".to_vec();
    wav.extend((4 + 8 + 16 + 8 + audio.len() as u32).to_le_bytes());
    wav.extend(b"WAVEfmt ");
    wav.extend(16u32.to_le_bytes());
    for field in [7u16, 1] {
        wav.extend(field.to_le_bytes());
    }
    wav.extend(8000u32.to_le_bytes());
    wav.extend(8000u32.to_le_bytes());
    for field in [1u16, 8] {
        wav.extend(field.to_le_bytes());
    }
    wav.extend(b"data");
    wav.extend((audio.len() as u32).to_le_bytes());
    wav.extend(audio);
    wav
}

async fn the_merchants_own_recordings_are_said_the_shop_name_after_thanks_for_calling(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (shop_name, welcome_back) = (tone(440.0, 0.6), tone(660.0, 0.5));
    std::fs::write(dir.path().join("shop_name.wav"), mulaw_wav(&shop_name)).unwrap();
    std::fs::write(dir.path().join("welcome_back.ulaw"), &welcome_back).unwrap();
    let speech_dir = dir.path().to_path_buf();
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.speech_dir = Some(speech_dir);
    })
    .await;
    let lines_clips = orderline::speech::ClipLibrary::built_in_with(Some(dir.path())).unwrap();
    let t = media_caller(&line, DANA)
        .with_clips(lines_clips)
        .call(&mut scripted_media(&["0"]), |_| {})
        .await
        .expect("the call went through");
    let greeting = &t.prompts[0];
    let opening = ids(&["hi", "name_dana", "thanks_for_calling", "shop_name", "welcome_back", "your_order_number"]);
    assert_eq!(greeting.clips[..6], opening[..], "{:?}", greeting.clips);
    assert!(
        greeting.words().starts_with("Hi Dana Thanks for calling. [shop_name] Welcome back."),
        "{}",
        greeting.words()
    );
    // Their audio, not the built-in clip of the same name: a listener who knows only the
    // built-in clips hears two unknown stretches there.
    let built_in = orderline::speech::recognise(&orderline::speech::ClipLibrary::built_in(), &greeting.audio);
    assert_eq!(
        built_in[..5],
        ids(&["hi", "name_dana", "thanks_for_calling", "?", "your_order_number"])[..],
        "{built_in:?}"
    );
    line.app.stop().await;

    // A recording Media Streams cannot play stops the start, naming the file and the fix.
    std::fs::write(dir.path().join("goodbye.wav"), b"RIFF\x24\0\0\0WAVEnot really").unwrap();
    let db = common::TestDb::new(backend).await;
    let speech_dir = dir.path().to_path_buf();
    let settings = common::settings_for(&db.url, |s| {
        media(s);
        s.ivr.speech_dir = Some(speech_dir);
    });
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("ORDERLINE_SPEECH_DIR") && err.contains("goodbye.wav"), "{err}");
}

/// Priya is not among the first names with a recording (the 1990 Census's most frequent): she is
/// welcomed without it, as every caller was before names were recorded.
async fn a_caller_whose_first_name_has_no_recording_is_welcomed_without_it(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let t = media_call(&line, "+15550156702", &["0"]).await;
    let greeting = &t.prompts[0].clips;
    assert_eq!(greeting[..3], ids(&["thanks_for_calling", "welcome_back", "your_order_number"])[..], "{greeting:?}");
    assert!(!greeting.iter().any(|c| c == "hi" || c.starts_with("name_")), "{greeting:?}");
    line.app.stop().await;
}

on_both_backends!(
    a_caller_whose_first_name_has_no_recording_is_welcomed_without_it,
    the_merchants_own_recordings_are_said_the_shop_name_after_thanks_for_calling,
    a_known_caller_hears_their_order_and_the_menu_over_the_stream,
    pressing_4_over_the_stream_texts_the_tracking_link,
    frames_are_160_bytes_paced_at_50_a_second,
    a_key_during_a_prompt_clears_it_and_the_next_prompt_follows,
    an_unknown_caller_keys_an_order_number_during_the_question,
    outside_hours_the_stream_says_goodbye_and_the_redirect_hangs_up,
    the_message_sequence_is_media_then_a_mark_and_marks_echo,
    unknown_events_digits_marks_and_unreadable_media_are_ignored_and_counted,
    frames_delayed_150_ms_at_random_play_without_an_underrun,
    a_handshake_signed_over_the_url_with_a_trailing_slash_is_accepted,
    media_mode_refuses_to_start_unless_the_stream_is_wss_on_443,
    a_media_call_under_a_public_url_with_a_path_keeps_it_everywhere,
    stop_ends_the_session_cleanly,
    malformed_or_out_of_order_messages_close_the_stream_with_a_reason,
    an_unsigned_or_forged_handshake_is_refused,
    a_stream_that_ended_without_a_decision_gets_the_fallback,
    with_the_database_down_the_stream_apologises_and_hands_the_caller_to_a_person,
);

/// `orderline call --media` through the real binary: it prints the prompts it decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_command_speaks_the_media_streams_protocol() {
    let line = line(Backend::Sqlite, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let url = line.app.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderline"))
            .args(["call", DANA, "--url", &url, "--token", TOKEN, "--media", "--keys", "!0"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("(media stream)"), "{stdout}");
    assert!(stdout.contains("heard (cut short): Hi"), "{stdout}");
    assert!(stdout.contains("heard: Please hold while I connect you."), "{stdout}");
    assert!(stdout.contains("→ enqueue support"), "{stdout}");
    line.app.stop().await;
}

/// The speech engine and the shipped templates: "order 1042 shipped on November 20" is exactly
/// these clips, and the audio is exactly their recordings back to back.
#[test]
fn the_audio_for_order_1042_shipped_on_november_20_is_exactly_its_clips() {
    use orderline::ivr::Step;
    use orderline::ivr::flow::{MenuOptions, MenuStep};
    use orderline::ivr::order_status::{OrderFacts, OrderState};
    use orderline::speech::{ClipLibrary, Piece, recognise, render};
    use orderline::twilio::render::Renderer;

    let renderer = Renderer::load(None, "Polly.Joanna", "en-US", "Orderline Demo").unwrap();
    let order = OrderFacts {
        name: "#1042".into(),
        number_spoken: "1 0 4 2".into(),
        state: OrderState::Shipped,
        partial: false,
        partly_refunded: false,
        carrier: None,
        day: "Friday, November 20".into(),
        date: "2026-11-20".into(),
        expected_day: None,
        expected_date: None,
        tracking_number: None,
        total: None,
        currency: None,
        refunds: 0,
    };
    let step = Step::Menu(MenuStep {
        greet: None,
        closed_until: None,
        closed: false,
        order: Some(order),
        menu: MenuOptions {
            other_orders: false,
            agents_open: true,
            text_tracking: false,
            text_label: false,
            voicemail: false,
            voicemail_key: false,
        },
        reprompt: false,
        text: None,
        news: None,
    });
    let pieces = renderer.speech(&step).unwrap();
    let clip = |id: &str| Piece::Clip(id.into());
    let sentence: Vec<Piece> =
        ["your_order_number", "digit_1", "digit_0", "digit_4", "digit_2", "shipped_on", "month_11", "ord_20"]
            .into_iter()
            .map(clip)
            .collect();
    assert_eq!(pieces[..8], sentence[..], "{pieces:?}");
    assert_eq!(pieces[8], Piece::Silence(400));
    assert_eq!(pieces[9..], [clip("press_1_again"), clip("press_3_returns"), clip("press_0_someone")]);

    let clips = ClipLibrary::built_in();
    let audio = render(&clips, &sentence).unwrap();
    let expected: Vec<u8> =
        ["your_order_number", "digit_1", "digit_0", "digit_4", "digit_2", "shipped_on", "month_11", "ord_20"]
            .iter()
            .flat_map(|id| clips.get(id).unwrap().to_vec())
            .collect();
    assert_eq!(audio, expected);
    assert_eq!(
        recognise(&clips, &audio),
        ["your_order_number", "digit_1", "digit_0", "digit_4", "digit_2", "shipped_on", "month_11", "ord_20"]
    );
}

async fn with_the_database_down_the_stream_apologises_and_hands_the_caller_to_a_person(backend: Backend) {
    let line = line(backend, |s| {
        media(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    line.app.store().close().await;
    let t = media_call(&line, STRANGER, &[]).await;
    assert_eq!(t.prompts.len(), 1, "{:?}", t.clips());
    assert_eq!(t.prompts[0].clips, ["thanks_for_calling", "cant_look_up"]);
    assert_eq!(t.close, Some((1000, "fallback".to_string())));
    // The decision could not be stored; this instance kept it, and answers the Redirect with it.
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    assert!(t.after.as_ref().unwrap().spoken().is_empty(), "the apology was said once, over the stream");
    let metrics = wait_for_metric(&line, "orderline_media_streams_ended_total{end=\"fallback\"} 1").await;
    assert!(metrics.contains("orderline_media_streams_active 0"), "{metrics}");
    line.app.stop().await;
}
