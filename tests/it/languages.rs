//! The caller's language (both backends): with ORDERLINE_LANGUAGES=en-US,es-US a customer whose
//! Shopify locale is Spanish hears Spanish from the first word (`<Say language="es-US">` in the
//! Spanish voice, a Spanish Gather), an unknown caller hears "Para español, oprima nueve" and
//! switches with 9 or by saying "español", Spanish words are understood, words not understood are
//! asked again with the keys spelled out and then keys only, and the agent's card says the
//! language. With one language nothing of this is said. Bad language settings stop the start.

use chrono::Utc;
use orderline::config::{PromptMode, Secret, Settings, VerifyPolicy};
use orderline::shopify::payload::{ShopifyChange, ShopifyCustomer};
use orderline::shopify::writes::writes;
use orderline::sim::twilio::{CallerConfig, QueueScript, Transcript, Transfer, TwilioCaller, scripted};
use orderline::store::Ts;
use orderline::twilio::twiml::Document;
use serde_json::Value;
use std::time::Duration;

use crate::common::line::line;
use crate::common::{self, Backend};

const DANA: &str = "+15551234567";
/// Sofia Alvarez shops in Spanish: her Shopify locale is `es` (the emulator's demo shop).
const SOFIA: &str = "+15550199034";
const STRANGER: &str = "+15550199999";
const AGENT: &str = "agent-secret";
fn both(s: &mut Settings) {
    s.ivr.verify = VerifyPolicy::None;
    s.ivr.languages = Some("en-US,es-US".into());
    s.ivr.voices = Some("es-US=Polly.Lupe-Neural".into());
    s.agents.agent_token = Some(Secret::new(AGENT));
}

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

fn doc(t: &Transcript, turn: usize) -> &Document {
    t.turns[turn].document.as_ref().expect("a TwiML answer")
}

fn spoken_digits(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).map(String::from).collect::<Vec<_>>().join(" ")
}

/// Every `<Say>` of the turn is in `language`, in `voice`.
fn all_said_in(document: &Document, language: &str, voice: &str) {
    let says = document.find_all("Say");
    assert!(!says.is_empty(), "{document:?}");
    for say in says {
        assert_eq!((say.attr("language"), say.attr("voice")), (Some(language), Some(voice)), "{say:?}");
    }
}

async fn a_spanish_customer_hears_spanish_from_the_first_word(backend: Backend) {
    let line = line(backend, both).await;
    let latest = line.latest_order("Sofia");
    let t = line.call(SOFIA, &["1"]).await;
    let first = doc(&t, 0);
    all_said_in(first, "es-US", "Polly.Lupe-Neural");
    let gather = first.find("Gather").unwrap();
    assert_eq!(gather.attr("language"), Some("es-US"));
    assert!(gather.attr("hints").is_some_and(|h| h.contains("dónde está mi pedido")), "{gather:?}");
    let text = first.spoken();
    assert!(text.starts_with("Hola, Sofia. Gracias por llamar a Orderline Demo."), "{text}");
    assert!(text.contains(&format!("Su pedido número {}", spoken_digits(&latest.name))), "{text}");
    assert!(text.contains("Para escucharlo de nuevo, oprima 1."), "{text}");
    assert!(!text.contains("Para español"), "her language is known: no choice offered: {text}");
    assert!(!text.contains("Your order"), "no English: {text}");
    // The next question is in Spanish too: the language rides in the action URL.
    assert!(gather.attr("action").is_some_and(|a| a.contains("lang=es")), "{gather:?}");
    all_said_in(doc(&t, 1), "es-US", "Polly.Lupe-Neural");

    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let language = events.iter().find(|e| e.kind == "language").expect("the language is recorded");
    assert_eq!(language.detail, "Spanish (es): the customer's locale es");
    line.app.stop().await;
}

async fn an_unknown_caller_presses_9_and_is_asked_again_in_spanish(backend: Backend) {
    let line = line(backend, both).await;
    let order = line.latest_order("Dana");
    let digits: String = order.name.chars().filter(char::is_ascii_digit).collect();
    let t = line.call(STRANGER, &["9", &format!("{digits}#")]).await;
    // The greeting offers Spanish, in Spanish, inside the English question.
    let first = doc(&t, 0);
    let says = first.find_all("Say");
    let offer = says.iter().find(|s| s.spoken() == "Para español, oprima nueve.").expect("the offer");
    assert_eq!((offer.attr("language"), offer.attr("voice")), (Some("es-US"), Some("Polly.Lupe-Neural")));
    assert!(says[0].spoken().starts_with("Thanks for calling"), "English first: {}", first.spoken());
    assert_eq!(says[0].attr("language"), Some("en-US"));
    // 9: the same question, in Spanish.
    let second = doc(&t, 1);
    all_said_in(second, "es-US", "Polly.Lupe-Neural");
    assert!(second.spoken().contains("Por favor, marque su número de pedido"), "{}", second.spoken());
    assert_eq!(second.find("Gather").unwrap().attr("language"), Some("es-US"));
    // The order number: the order, in Spanish.
    let third = doc(&t, 2);
    all_said_in(third, "es-US", "Polly.Lupe-Neural");
    let text = third.spoken();
    assert!(text.contains(&format!("Su pedido número {}", spoken_digits(&order.name))), "{text}");
    assert!(text.contains(" con UPS") || text.contains(" con USPS") || text.contains(" con FedEx"), "{text}");

    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let languages: Vec<&str> = events.iter().filter(|e| e.kind == "language").map(|e| e.detail.as_str()).collect();
    assert_eq!(languages, ["English (en): the line's default", "Spanish (es): chosen (key 9)"]);
    line.app.stop().await;
}

async fn an_unknown_caller_says_espanol(backend: Backend) {
    let line = line(backend, both).await;
    let t = line.call(STRANGER, &["say:español"]).await;
    let second = doc(&t, 1);
    all_said_in(second, "es-US", "Polly.Lupe-Neural");
    assert!(second.spoken().contains("Por favor, marque su número de pedido"), "{}", said(&t));
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let speech = events.iter().find(|e| e.kind == "speech").unwrap();
    assert_eq!(speech.detail, "\"español\", confidence 92%: language Spanish");
    let language = events.iter().rev().find(|e| e.kind == "language").map(|e| e.detail.as_str());
    assert_eq!(language, Some("Spanish (es): chosen (said \"Spanish\")"));
    assert!(events.iter().all(|e| e.kind != "key"), "no key was pressed: {events:?}");
    line.app.stop().await;
}

async fn a_spanish_caller_is_understood_in_spanish(backend: Backend) {
    let line = line(backend, both).await;
    let latest = spoken_digits(&line.latest_order("Sofia").name);
    let t = line.call(SOFIA, &["say:¿dónde está mi pedido?"]).await;
    let heard = t.spoken().iter().filter(|s| s.contains(&format!("Su pedido número {latest}"))).count();
    assert_eq!(heard, 2, "the status, then again for the words: {}", said(&t));

    let t = line.call(SOFIA, &["say:quiero hablar con un agente"]).await;
    let last = t.last();
    assert!(last.find("Enqueue").is_some(), "put through: {}", said(&t));
    assert!(last.spoken().contains("Le comunico con un representante."), "{}", last.spoken());
    all_said_in(last, "es-US", "Polly.Lupe-Neural");
    // What the queue and its end say is in Spanish too: their URLs carry the language.
    let enqueue = last.find("Enqueue").unwrap();
    assert!(enqueue.attr("action").is_some_and(|a| a.ends_with("?lang=es")), "{enqueue:?}");
    assert!(enqueue.attr("waitUrl").is_some_and(|a| a.ends_with("?lang=es")), "{enqueue:?}");

    // The agent's card says which language the caller speaks.
    line.flush_calls().await;
    let url = format!("{}/api/calls/{}", line.app.url, t.call_sid);
    let card: Value = reqwest::Client::new().get(&url).bearer_auth(AGENT).send().await.unwrap().json().await.unwrap();
    let summary: Vec<&str> = card["summary"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(summary.contains(&"Language: Spanish (es): the customer's locale es"), "{summary:?}");
    line.app.stop().await;
}

async fn words_not_understood_are_asked_again_with_the_keys_spelled_out_then_keys_only(backend: Backend) {
    for (from, spelled, keypad) in [
        (DANA, "To hear about your order again, press 1 or say 'my order'.", "Please use your keypad."),
        (
            SOFIA,
            "Para escuchar de nuevo el estado de su pedido, oprima 1 o diga 'mi pedido'.",
            "Por favor, use el teclado de su teléfono.",
        ),
    ] {
        let line = line(backend, both).await;
        let t = line.call(from, &["mumble:agent", "mumble:agent", "0"]).await;
        let again = doc(&t, 1);
        assert!(again.spoken().contains(spelled), "{}", again.spoken());
        assert_eq!(again.find("Gather").unwrap().attr("input"), Some("dtmf speech"), "still listening for words");
        let keys_only = doc(&t, 2);
        assert!(keys_only.spoken().contains(keypad), "{}", keys_only.spoken());
        let gather = keys_only.find("Gather").unwrap();
        assert_eq!((gather.attr("input"), gather.attr("hints")), (Some("dtmf"), None));
        assert!(t.last().find("Enqueue").is_some(), "a key still works: {}", said(&t));
        line.app.stop().await;
    }
}

async fn with_one_language_nothing_is_offered(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let t = line.call(STRANGER, &["9"]).await;
    let text = said(&t);
    assert!(!text.contains("Para español") && !text.contains("For English"), "{text}");
    assert!(t.turns.iter().all(|turn| !turn.url.contains("lang=")), "no language in the URLs");
    // Sofia's locale is Spanish, but the line speaks English only.
    let t = line.call(SOFIA, &[]).await;
    assert!(said(&t).starts_with("Hi Sofia, thanks for calling"), "{}", said(&t));
    all_said_in(doc(&t, 0), "en-US", "Polly.Joanna");
    line.app.stop().await;
}

#[test]
fn bad_language_settings_stop_the_start_and_name_what_is_wrong() {
    let with = |languages: &str, change: &dyn Fn(&mut orderline::config::IvrSettings)| {
        let mut s = Settings::default();
        s.ivr.languages = Some(languages.into());
        change(&mut s.ivr);
        s.validated()
    };
    let err = |languages: &str, change: &dyn Fn(&mut orderline::config::IvrSettings)| {
        with(languages, change).unwrap_err().to_string()
    };
    let e = err("en-US,es-US", &|s| s.voices = Some("es-US=Polly.Joanna".into()));
    assert!(e.contains("ORDERLINE_VOICES") && e.contains("Polly.Joanna") && e.contains("es-US"), "{e}");
    let e = err("en-US,fr-CA", &|_| {});
    assert!(e.contains("fr-CA") && e.contains("templates") && e.contains("twiml/fr-CA/"), "{e}");
    let e = err("en-US,es-US", &|s| s.voices = Some("de-DE=Polly.Hans".into()));
    assert!(e.contains("de-DE") && e.contains("not among"), "{e}");
    let e = err("en-US,es-US", &|s| s.prompt_mode = PromptMode::MediaStream);
    assert!(e.contains("media_stream") && e.contains("en-US only"), "{e}");
    let e = err("es-US,es-MX", &|s| s.voice = "Polly.Lupe".into());
    assert!(e.contains("Spanish twice"), "{e}");

    let s = err("es-US, en-US", &|_| {});
    assert!(s.contains("ORDERLINE_VOICE") && s.contains("es-US"), "the first language takes ORDERLINE_VOICE: {s}");
    let s = with("es-US,en-US", &|s| s.voice = "Polly.Lupe".into()).unwrap();
    let pairs: Vec<(&str, &str, &str)> =
        s.ivr.spoken_languages.iter().map(|l| (l.tag.as_str(), l.language.code(), l.voice.as_str())).collect();
    assert_eq!(pairs, [("es-US", "es", "Polly.Lupe"), ("en-US", "en", "Polly.Joanna")]);
    let mut s = Settings::default();
    s.ivr.language = "en-GB".into();
    s.ivr.voice = "Polly.Amy".into();
    let s = s.validated().unwrap();
    assert_eq!(
        (s.ivr.spoken_languages.len(), s.ivr.language.as_str(), s.ivr.voice.as_str()),
        (1, "en-GB", "Polly.Amy")
    );
}

#[tokio::test]
async fn a_broken_spanish_template_stops_the_start_and_names_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("es-US")).unwrap();
    std::fs::write(
        dir.path().join("es-US").join("menu.xml"),
        "{%- import \"_macros.xml\" as m -%}\n<Response>\n  <Sya>{{ greet }}</Sya>\n</Response>\n",
    )
    .unwrap();
    let db = common::TestDb::new(Backend::Sqlite).await;
    let dir_text = dir.path().to_str().unwrap();
    let settings = common::settings_for(&db.url, |s| {
        s.ivr.twiml_dir = Some(dir_text.into());
        s.ivr.languages = Some("en-US,es-US".into());
    });
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("es-US/menu.xml") && err.contains("line 3") && err.contains("Sya"), "{err}");
}

/// A customer whose locale the line does not speak hears the choice; one whose own locale is
/// unset is known by the language of their latest order (`customer_locale`, `es-MX`: Spanish).
async fn the_language_comes_from_the_customer_else_their_latest_order(backend: Backend) {
    let line = line(backend, both).await;
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    let french = line.sim.change_customer(dana.id, |c| c.locale = Some("fr-CA".into())).unwrap();
    // A newcomer who never chose a language, whose order was placed in Mexican Spanish.
    let newcomer = ShopifyCustomer {
        id: line.sim.new_id(),
        first_name: Some("Lucía".into()),
        email: Some("lucia@example.com".into()),
        phone: Some("+15550100888".into()),
        locale: None,
        // Her own addresses: Dana's carry Dana's number.
        default_address: None,
        addresses: Vec::new(),
        ..dana.clone()
    };
    line.sim.upsert_customer(newcomer.clone()).unwrap();
    let mut order = line.sim.sample_order(Some(newcomer.id));
    order.customer_locale = Some("es-MX".into());
    let order = line.sim.create_order(order);
    let changes = [
        ShopifyChange::Customer(Box::new(french)),
        ShopifyChange::Customer(Box::new(newcomer)),
        ShopifyChange::Order(Box::new(order.clone())),
    ];
    line.app.store().apply_all(common::SHOP, &writes(changes), "US", Ts::from(Utc::now())).await.unwrap();

    let t = line.call(DANA, &[]).await;
    let first = doc(&t, 0);
    assert!(first.spoken().starts_with("Hi Dana, thanks for calling"), "{}", first.spoken());
    assert!(first.spoken().contains("Para español, oprima nueve."), "fr-CA is not spoken here: {}", first.spoken());

    let t = line.call("+15550100888", &[]).await;
    let first = doc(&t, 0);
    all_said_in(first, "es-US", "Polly.Lupe-Neural");
    assert!(first.spoken().starts_with("Hola, Lucía."), "{}", first.spoken());
    assert!(first.spoken().contains(&format!("Su pedido número {}", spoken_digits(&order.name))), "{}", first.spoken());
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    let language = events.iter().find(|e| e.kind == "language").unwrap();
    assert_eq!(language.detail, "Spanish (es): the customer's locale es-MX");
    line.app.stop().await;
}

/// In the queue and after it, a Spanish caller still hears Spanish: the transfer's URLs carry
/// the call's language.
async fn a_spanish_caller_waits_in_the_queue_in_spanish(backend: Backend) {
    let line = line(backend, |s| {
        both(s);
        s.handoff.queue_max_wait = Duration::from_secs(60);
    })
    .await;
    let mut config = CallerConfig::new(&line.app.url, common::line::TOKEN, SOFIA);
    config.transfer =
        Transfer::Queue(QueueScript { ahead: 1, avg_queue_time_s: 120, play_s: 25, ..QueueScript::default() });
    let t = TwilioCaller::new(config).call(scripted(&["0"])).await.unwrap();
    let waits: Vec<_> = t.turns.iter().filter(|t| t.url.contains("/twilio/voice/queue-wait")).collect();
    assert!(!waits.is_empty(), "{}", said(&t));
    for wait in &waits {
        let document = wait.document.as_ref().unwrap();
        if !document.find_all("Say").is_empty() {
            all_said_in(document, "es-US", "Polly.Lupe-Neural");
        }
    }
    let text = said(&t);
    assert!(text.contains("Usted es el número 2 en la fila."), "{text}");
    assert!(text.contains("nadie de nuestro equipo ha podido atender su llamada"), "{text}");
    assert!(text.ends_with("Gracias por llamar a Orderline Demo. Hasta luego."), "{text}");
    all_said_in(t.last(), "es-US", "Polly.Lupe-Neural");
    line.app.stop().await;
}

on_both_backends!(
    a_spanish_caller_waits_in_the_queue_in_spanish,
    the_language_comes_from_the_customer_else_their_latest_order,
    a_spanish_customer_hears_spanish_from_the_first_word,
    an_unknown_caller_presses_9_and_is_asked_again_in_spanish,
    an_unknown_caller_says_espanol,
    a_spanish_caller_is_understood_in_spanish,
    words_not_understood_are_asked_again_with_the_keys_spelled_out_then_keys_only,
    with_one_language_nothing_is_offered,
);
