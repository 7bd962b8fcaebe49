//! Speaking instead of pressing, in TwiML mode (both backends): every question listens for words
//! as well as keys (`<Gather input="dtmf speech">` with hints, in the call's language); what is
//! said is understood as the keys it stands for (`ivr::understanding`), recorded as a call event
//! (never a postal code), and a mumble is asked again like a wrong key.

use orderline::config::VerifyPolicy;
use orderline::sim::twilio::Transcript;

use crate::common::Backend;
use crate::common::line::line;

const DANA: &str = "+15551234567";
const STRANGER: &str = "+15550199999";

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

fn spoken_digits(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).map(String::from).collect::<Vec<_>>().join(" ")
}

async fn a_caller_who_asks_where_their_package_is_hears_the_order_again(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let latest = spoken_digits(&line.latest_order("Dana").name);
    let t = line.call(DANA, &["say:where is my package"]).await;
    let gather = t.turns[0].document.as_ref().unwrap().find("Gather").unwrap();
    assert_eq!(gather.attr("input"), Some("dtmf speech"));
    assert!(gather.attr("hints").is_some_and(|h| h.contains("agent")), "{gather:?}");
    assert_eq!((gather.attr("speechTimeout"), gather.attr("language")), (Some("auto"), Some("en-US")));
    let heard = t.spoken().iter().filter(|s| s.contains(&format!("Your order number {latest}"))).count();
    assert_eq!(heard, 2, "the status, then again for the words: {}", said(&t));

    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let speech = events.iter().find(|e| e.kind == "speech").expect("the words are recorded");
    assert_eq!(speech.detail, "\"where is my package\", confidence 92%: keys 1");
    line.app.stop().await;
}

async fn an_unknown_caller_says_their_order_number_and_hears_that_order(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let order = line.latest_order("Dana");
    let digits: String = order.name.chars().filter(char::is_ascii_digit).collect();
    // Said as people say four-digit numbers: "ten forty-two" for 1042.
    let (high, low) = digits.split_at(digits.len() - 2);
    let words = format!("say:it's {} {}", number_words(high.parse().unwrap()), number_words(low.parse().unwrap()));
    let t = line.call(STRANGER, &[&words]).await;
    let text = said(&t);
    assert!(text.contains("Please enter your order number"), "{text}");
    assert!(text.contains(&format!("Your order number {}", spoken_digits(&order.name))), "{text}");
    line.app.stop().await;
}

async fn saying_agent_puts_the_caller_through(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let t = line.call(DANA, &["say:I want to talk to a person"]).await;
    let last = t.last();
    assert!(last.find("Enqueue").is_some(), "put through: {}", said(&t));
    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().unwrap();
    assert_eq!(call.transfer.as_deref(), Some("asked"));
    line.app.stop().await;
}

async fn a_mumble_is_asked_again_like_a_wrong_key(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let t = line.call(DANA, &["mumble:agent", "say:agent"]).await;
    let text = said(&t);
    assert!(t.turns.len() >= 3, "asked again, then put through: {text}");
    assert!(t.last().find("Enqueue").is_some(), "{text}");
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let speech: Vec<&str> = events.iter().filter(|e| e.kind == "speech").map(|e| e.detail.as_str()).collect();
    assert_eq!(speech, ["\"agent\", confidence 12%: unclear", "\"agent\", confidence 92%: keys 0"]);
    line.app.stop().await;
}

async fn a_spoken_postal_code_verifies_and_is_never_recorded(backend: Backend) {
    let line = line(backend, |_| {}).await;
    let zip = line.latest_order("Dana").shipping_address.and_then(|a| a.zip).expect("Dana's order ships somewhere");
    let words: Vec<&str> = zip.chars().filter_map(digit_word).collect();
    let t = line.call(DANA, &[&format!("say:{}", words.join(" "))]).await;
    let text = said(&t);
    assert!(text.contains("postal code"), "asked first: {text}");
    assert!(text.contains("Your order number"), "verified by the words: {text}");
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let speech = events.iter().find(|e| e.kind == "speech").expect("recorded");
    assert_eq!(speech.detail, "entered (not recorded), confidence 92%: entered");
    assert!(events.iter().all(|e| !e.detail.contains(&zip)), "{events:?}");
    line.app.stop().await;
}

async fn with_speech_input_off_the_questions_take_keys_only(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.speech_input = false;
    })
    .await;
    let t = line.call(DANA, &["say:agent"]).await;
    let gather = t.turns[0].document.as_ref().unwrap().find("Gather").unwrap();
    assert_eq!((gather.attr("input"), gather.attr("hints")), (Some("dtmf"), None));
    // Words at a keys-only Gather are not heard: it times out to the menu's Redirect.
    assert!(t.last().find("Enqueue").is_none(), "{}", said(&t));
    line.app.stop().await;
}

/// `orderline call --say` through the real binary: the words are said at the prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_command_says_words() {
    let line = line(Backend::Sqlite, |s| s.ivr.verify = VerifyPolicy::None).await;
    let url = line.app.url.clone();
    let db_url = line.app.db.url.clone();
    let args = ["call", DANA, "--url", &url, "--token", crate::common::line::TOKEN, "--say", "a person please"];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        crate::common::orderline_cli(&db_url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("said: \"a person please\""), "{stdout}");
    assert!(stdout.contains("→ enqueue support"), "{stdout}");
    line.app.stop().await;
}

fn digit_word(c: char) -> Option<&'static str> {
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    c.to_digit(10).map(|d| words[d as usize])
}

/// 0–99 in words, as a caller says them.
fn number_words(n: u32) -> String {
    let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let teens =
        ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
    let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    match n {
        0..=9 => format!("oh {}", ones[n as usize]),
        10..=19 => teens[n as usize - 10].to_string(),
        _ if n.is_multiple_of(10) => tens[n as usize / 10].to_string(),
        _ => format!("{}-{}", tens[n as usize / 10], ones[n as usize % 10]),
    }
}

on_both_backends!(
    a_caller_who_asks_where_their_package_is_hears_the_order_again,
    an_unknown_caller_says_their_order_number_and_hears_that_order,
    saying_agent_puts_the_caller_through,
    a_mumble_is_asked_again_like_a_wrong_key,
    a_spoken_postal_code_verifies_and_is_never_recorded,
    with_speech_input_off_the_questions_take_keys_only,
);
