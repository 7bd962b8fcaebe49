//! `orderline setup twilio` and `orderline setup shopify`, run as the real binary against the
//! emulators and a running orderline: from nothing they configure everything, a second run
//! changes nothing, `--dry-run` changes nothing, and bad input stops before any change with a
//! message naming the setting.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use orderline::sim::twilio::rest::{RestFailure, RestSimConfig, RestSimServer, TwilioRestSim, UNCONFIGURED_VOICE_URL};

/// Runs `orderline ARGS` with exactly `envs` (plus a throwaway database); (exit code, stdout, stderr).
pub async fn orderline(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderline"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("DATABASE_URL", db).env("RUST_LOG", "warn");
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.unwrap().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

struct Line {
    app: TestApp,
    twilio: TwilioRestSim,
    server: RestSimServer,
}

impl Line {
    async fn start() -> Line {
        let app = TestApp::start(Backend::Sqlite).await;
        let twilio = TwilioRestSim::new(RestSimConfig::default());
        let server = twilio.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Line { app, twilio, server }
    }

    /// The settings of a local setup: orderline and the emulators on this machine.
    fn envs(&self) -> Vec<(String, String)> {
        let c = self.twilio.config();
        vec![
            ("ORDERLINE_PUBLIC_URL".into(), self.app.url.clone()),
            ("ORDERLINE_ALLOW_INSECURE_PUBLIC_URL".into(), "true".into()),
            ("TWILIO_API_URL".into(), self.server.url()),
            ("TWILIO_ACCOUNT_SID".into(), c.account_sid.clone()),
            ("TWILIO_API_KEY".into(), c.api_key.clone()),
            ("TWILIO_API_SECRET".into(), c.api_secret.clone()),
            ("TWILIO_PHONE_NUMBER".into(), c.number.clone()),
        ]
    }

    async fn run(&self, changes: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
        let mut envs = self.envs();
        for (k, v) in changes {
            envs.retain(|(key, _)| key != k);
            if !v.is_empty() {
                envs.push((k.to_string(), v.to_string()));
            }
        }
        let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        orderline(&pairs, args).await
    }

    async fn stop(self) {
        self.server.stop().await;
        self.app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_twilio_points_the_number_at_orderline_and_a_second_run_changes_nothing() {
    let line = Line::start().await;
    let (code, stdout, stderr) = line.run(&[], &["setup", "twilio"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("VoiceUrl") && stdout.contains(UNCONFIGURED_VOICE_URL), "the diff is printed: {stdout}");
    let number = line.twilio.number();
    assert_eq!(number.voice_url, format!("{}/twilio/voice", line.app.url));
    assert_eq!(number.voice_fallback_url, format!("{}/twilio/fallback", line.app.url));
    assert_eq!(number.status_callback, format!("{}/twilio/status", line.app.url));
    assert_eq!((number.voice_method.as_str(), number.status_callback_method.as_str()), ("POST", "POST"));
    assert_eq!(line.twilio.posts(), 1, "one update with every change");
    let post = line.twilio.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert!(post.path.ends_with(&format!("/IncomingPhoneNumbers/{}.json", number.sid)), "{}", post.path);

    let (code, stdout, stderr) = line.run(&[], &["setup", "twilio"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to change"), "{stdout}");
    assert_eq!(line.twilio.posts(), 1, "the second run sent no update");
    assert!(!stdout.contains("+18005550100") && !stderr.contains("+18005550100"), "the number is masked");
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_url_answers_static_twiml_without_a_signature() {
    let line = Line::start().await;
    for response in [
        line.app.client.get(format!("{}/twilio/fallback", line.app.url)).send().await.unwrap(),
        line.app.client.post(format!("{}/twilio/fallback", line.app.url)).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let document = orderline::twilio::twiml::parse(&body).unwrap_or_else(|e| panic!("{e:?}: {body}"));
        let said = format!("{document:?}");
        assert!(said.contains("Sorry"), "it apologises: {body}");
        assert!(body.contains("<Enqueue") || body.contains("<Dial"), "and reaches a person: {body}");
    }
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_twilio_dry_run_prints_the_diff_and_changes_nothing() {
    let line = Line::start().await;
    let (code, stdout, stderr) = line.run(&[], &["setup", "twilio", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("VoiceFallbackUrl") && stdout.contains("dry run: nothing changed"), "{stdout}");
    assert_eq!(line.twilio.posts(), 0);
    assert_eq!(line.twilio.number().voice_url, UNCONFIGURED_VOICE_URL);
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_twilio_retries_a_twilio_outage_and_uses_the_auth_token_too() {
    let line = Line::start().await;
    line.twilio.set_failure(RestFailure::HttpTimes(503, 2));
    let token = line.twilio.config().auth_token.clone();
    let (code, stdout, stderr) = line
        .run(&[("TWILIO_API_KEY", ""), ("TWILIO_API_SECRET", ""), ("TWILIO_AUTH_TOKEN", &token)], &["setup", "twilio"])
        .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(line.twilio.number().voice_url, format!("{}/twilio/voice", line.app.url));
    let lists = line.twilio.requests().iter().filter(|r| r.method == "GET").count();
    assert_eq!(lists, 3, "two 503s, then the answer");
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_twilio_bad_input_stops_with_the_setting_named_and_changes_nothing() {
    let line = Line::start().await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("TWILIO_API_SECRET", "wrong")], vec![], "TWILIO_API_KEY"),
        (vec![("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000")], vec![], "TWILIO_ACCOUNT_SID"),
        (vec![], vec!["--number", "+14155550199"], "has no number"),
        (vec![("TWILIO_ACCOUNT_SID", "")], vec![], "TWILIO_ACCOUNT_SID is not set"),
        (vec![("TWILIO_API_KEY", ""), ("TWILIO_API_SECRET", "")], vec![], "TWILIO_AUTH_TOKEN"),
        (vec![("ORDERLINE_ALLOW_INSECURE_PUBLIC_URL", "")], vec![], "ORDERLINE_PUBLIC_URL"),
        (vec![("ORDERLINE_PUBLIC_URL", "https://localhost:8443")], vec![], "ORDERLINE_PUBLIC_URL"),
        (vec![("ORDERLINE_PUBLIC_URL", "http://127.0.0.1:9")], vec![], "did not answer"),
        (vec![("TWILIO_PHONE_NUMBER", "")], vec![], "--number"),
        (vec![], vec!["--number", "not-a-number"], "not a phone number"),
    ];
    for (envs, extra, named) in cases {
        let mut args = vec!["setup", "twilio"];
        args.extend(extra.iter().copied());
        let (code, stdout, stderr) = line.run(&envs, &args).await;
        assert_ne!(code, Some(0), "{envs:?} {extra:?}: {stdout}");
        assert!(stderr.contains(named), "{envs:?} {extra:?}: expected {named:?} in {stderr}");
        assert_eq!(line.twilio.posts(), 0, "{envs:?}: nothing changed");
        assert!(!stderr.contains("wrong") && !stderr.contains(&line.twilio.config().api_secret), "no secret printed");
    }
    assert_eq!(line.twilio.number().voice_url, UNCONFIGURED_VOICE_URL);
    line.stop().await;
}
