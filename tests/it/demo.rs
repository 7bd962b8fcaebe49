//! `orderline demo`, the README's first command: it must come up on its own (emulator, SQLite,
//! backfill) and answer a call as the README says.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use orderline::sim::demo::{DEMO_AGENT_TOKEN, DEMO_TWILIO_TOKEN};
use orderline::sim::twilio::{CallerConfig, Ending, TwilioCaller, scripted};

/// The demo process (killed when dropped) and the lines of its log (stderr), as they come.
struct Child {
    process: std::process::Child,
    logs: std::sync::mpsc::Receiver<String>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Sends each line `from` reads to the returned receiver, from a thread of its own.
fn lines_of(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// `orderline demo` with `env` set, until it has printed its call lines: the process, its URL
/// and what it printed.
fn demo(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> (Child, String, String) {
    let database = dir.path().join("demo.db");
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderline"));
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--database", database.to_str().unwrap()])
        .env_remove("TWILIO_AUTH_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut process = command.spawn().unwrap();
    let rx = lines_of(process.stdout.take().unwrap());
    let logs = lines_of(process.stderr.take().unwrap());
    let child = Child { process, logs };
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("the demo prints where it listens");
    let url = first.strip_prefix("orderline listening on ").expect(&first).to_string();
    let mut printed = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.starts_with("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    (child, url, printed.join("\n"))
}

/// The demo's first sweep backfills the fresh store with one bulk operation per resource; the
/// periodic sweeps start after it (the first of them pages through what changed since), so no
/// second bulk backfill runs beside it.
#[test]
fn the_demo_backfills_customers_and_orders_once() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _url, printed) = demo(&dir, &[("RUST_LOG", "orderline::shopify=info"), ("NO_COLOR", "1")]);
    assert!(printed.contains("8 customers and 21 orders"), "{printed}");
    let mut logs = Vec::new();
    while let Ok(line) = child.logs.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("reconciliation sweep done");
        logs.push(line);
        if done {
            break;
        }
    }
    let sweep = logs.last().expect("the periodic sweep logs");
    assert!(sweep.contains("reconciliation sweep done") && sweep.contains("bulk_operations=0"), "{logs:#?}");
    let started: Vec<&String> = logs.iter().filter(|l| l.contains("bulk backfill started")).collect();
    assert_eq!(started.len(), 2, "{logs:#?}");
    assert!(started[0].contains("customers") && started[1].contains("orders"), "{started:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_dana_with_her_order_after_her_postal_code() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, url, printed) = demo(&dir, &[]);
    assert!(printed.contains("8 customers and 21 orders"), "{printed}");
    assert!(printed.contains(&format!("call +15551234567 --url {url} --token {DEMO_TWILIO_TOKEN}")), "{printed}");

    let caller = TwilioCaller::new(CallerConfig::new(&url, DEMO_TWILIO_TOKEN, "+15551234567"));
    let t = caller.call(scripted(&["11217", "0"])).await.unwrap();
    let said = t.spoken().join(" | ");
    assert!(said.contains("Hi Dana, thanks for calling Orderline Demo."), "{said}");
    assert!(said.contains("Your order number"), "{said}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);

    // Key 4 texts the tracking link through the demo's Twilio REST emulator; `orderline call
    // --sms-api` prints what Dana's phone received.
    let sms_api = printed
        .split_whitespace()
        .skip_while(|w| *w != "--sms-api")
        .nth(1)
        .expect("the call line names the REST emulator")
        .to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_orderline"))
        .args(["call", "+15551234567", "--url", &url, "--token", DEMO_TWILIO_TOKEN, "--keys", "11217,4"])
        .args(["--sms-api", &sms_api])
        .env_remove("TWILIO_ACCOUNT_SID")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("say: We've sent the text with your tracking link."), "{out}");
    let texts: Vec<&str> = out.lines().filter(|l| l.starts_with("→ text to ")).collect();
    assert_eq!(texts.len(), 1, "{out}");
    assert!(texts[0].starts_with("→ text to +1•••••4567: Orderline Demo: tracking for order #"), "{out}");
    assert!(texts[0].contains("https://"), "the link: {out}");
}

/// The demo in ConversationRelay mode on a bilingual line: `orderline call --relay --say …` as the
/// demo prints it; Sofia, whose Shopify locale is Spanish, is greeted in Spanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_speaks_conversation_relay_in_the_callers_language() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ORDERLINE_PROMPT_MODE", "conversation_relay"), ("ORDERLINE_LANGUAGES", "en-US,es-US")];
    let (_child, url, printed) = demo(&dir, &env);
    assert!(printed.contains("ConversationRelay mode: add --relay"), "{printed}");
    let call = |from: &str, says: &[&str]| {
        let mut args = vec!["call", from, "--relay", "--url", &url, "--token", DEMO_TWILIO_TOKEN];
        for said in says {
            args.extend(["--say", said]);
        }
        Command::new(env!("CARGO_BIN_EXE_orderline")).args(&args).output().unwrap()
    };
    let output = call("+15551234567", &["one one two one seven", "where is my package", "a person please"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("heard: Hi Dana, thanks for calling Orderline Demo."), "{out}");
    assert!(out.contains("→ enqueue"), "{out}");
    // Sofia's postal code (33131), said in Spanish, then a person.
    let output = call("+15550199034", &["tres tres uno tres uno", "quiero hablar con un agente"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("heard: Gracias por llamar a Orderline Demo."), "in Spanish from the first word: {out}");
    assert!(out.contains("Hola, Sofia."), "greeted by name once verified: {out}");
    assert!(out.contains("say: Le comunico con un representante."), "{out}");
}

/// The demo in Media Streams mode offers voicemail from the menu; `orderline call --media
/// --sms-api …`, as the demo prints it, prints the text Dana's phone received and keeps what she
/// records in the demo's Twilio account, so the console plays her message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_with_orderline_call_plays_on_the_demo_console() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, url, printed) = demo(&dir, &[("ORDERLINE_PROMPT_MODE", "media_stream")]);
    assert!(printed.contains("5 leaves a message"), "{printed}");
    let twilio_api = printed.split_whitespace().skip_while(|w| *w != "--sms-api").nth(1).unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_orderline"))
        .args(["call", "+15551234567", "--media", "--url", &url, "--token", DEMO_TWILIO_TOKEN])
        .args(["--keys", "11217,4,5", "--say", "Hi, it's Dana, please call me back about my order"])
        .args(["--sms-api", &twilio_api])
        .env_remove("TWILIO_ACCOUNT_SID")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    let texts: Vec<&str> = out.lines().filter(|l| l.starts_with("→ text to ")).collect();
    assert_eq!(texts.len(), 1, "the tracking link, printed as her phone received it: {out}");

    let agent = reqwest::Client::new();
    let listed: Vec<serde_json::Value> = agent
        .get(format!("{url}/api/voicemails"))
        .bearer_auth(DEMO_AGENT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["transcription"], "Hi, it's Dana, please call me back about my order", "{listed:?}");
    let audio_url = listed[0]["audio_url"].as_str().unwrap();
    let audio = agent.get(format!("{url}{audio_url}")).bearer_auth(DEMO_AGENT_TOKEN).send().await.unwrap();
    assert_eq!(audio.status(), 200, "the console plays the message through orderline");
    assert_eq!(audio.headers()["content-type"], "audio/x-wav");
    assert!(audio.bytes().await.unwrap().starts_with(b"RIFF"));
}
