//! `orderline doctor`, run as the real binary against a running orderline and the emulators
//! (both database backends): it passes on a set-up line, and each break fails exactly its own
//! line with the fix, exit code non-zero; it changes nothing.

use crate::common::outside::Line;
use crate::common::{Backend, TestDb};
use orderline::sim::shopify::{ProtectedData, SimConfig};

/// The ✗ lines of a checklist.
fn failures(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with('✗')).collect()
}

async fn set_up(backend: Backend) -> Line {
    let line = Line::start_with(backend, SimConfig::default()).await;
    for what in ["twilio", "shopify"] {
        let (code, stdout, stderr) = line.run(&[], &["setup", what]).await;
        assert_eq!(code, Some(0), "setup {what}: {stdout}\n{stderr}");
    }
    line
}

async fn doctor_passes_on_a_set_up_line(backend: Backend) {
    let line = set_up(backend).await;
    let (changes, posts) = (line.shopify.subscription_changes(), line.twilio.posts());
    let (code, stdout, stderr) = line.run(&[], &["doctor", "--external"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(failures(&stdout).is_empty() && !stdout.contains('–'), "{stdout}");
    for name in [
        "✓ settings parse",
        "✓ database reachable and migrated",
        "✓ ORDERLINE_PUBLIC_URL:",
        "✓ ORDERLINE_PUBLIC_URL answers /healthz",
        "✓ Shopify token",
        "✓ Shopify scopes",
        "✓ Shopify protected customer data",
        "✓ Shopify API version",
        "✓ Shopify webhook subscriptions",
        "✓ Twilio credentials",
        "✓ Twilio number",
        "✓ templates render",
        "✓ clock in sync",
    ] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert_eq!((line.shopify.subscription_changes(), line.twilio.posts()), (changes, posts), "doctor changed nothing");
    line.stop().await;
}

async fn doctor_fails_the_right_line_for_each_break(backend: Backend) {
    let line = set_up(backend).await;
    let (changes, posts) = (line.shopify.subscription_changes(), line.twilio.posts());

    // An unmigrated database.
    let empty = TestDb::new(backend).await;
    let (code, stdout, _) = line.run(&[("DATABASE_URL", &empty.url)], &["doctor"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ database reachable and migrated: no migrations applied"), "{stdout}");
    assert!(stdout.contains("fix: run `orderline migrate`"), "{stdout}");
    let tables = match backend {
        Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
    };
    assert_eq!(empty.count(tables).await, 0, "doctor did not migrate it");

    // A broken Shopify token: the token line fails, the Shopify checks after it are not made.
    let (code, stdout, _) = line.run(&[("SHOPIFY_ACCESS_TOKEN", "shpat_broken")], &["doctor"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ Shopify token") && failed[0].contains("SHOPIFY_ACCESS_TOKEN"), "{stdout}");
    assert!(stdout.contains("– Shopify webhook subscriptions: not checked"), "{stdout}");
    assert!(!stdout.contains("shpat_broken"), "the token is never printed");

    // A subscription removed outside orderline.
    line.shopify.remove_subscriptions("ORDERS_PAID");
    let (code, stdout, _) = line.run(&[], &["doctor"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ Shopify webhook subscriptions"), "{stdout}");
    assert!(stdout.contains("+ orders/paid") && stdout.contains("fix: run `orderline setup shopify`"), "{stdout}");
    let (code, ..) = line.run(&[], &["setup", "shopify"]).await;
    assert_eq!(code, Some(0));

    // A recording in ORDERLINE_SPEECH_DIR that Media Streams cannot play (16 kHz).
    let speech = tempfile::tempdir().unwrap();
    let mut wav = b"RIFF\x28\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0".to_vec();
    wav.extend(b"data\x04\0\0\0\0\0\0\0");
    std::fs::write(speech.path().join("shop_name.wav"), wav).unwrap();
    let (code, stdout, _) = line.run(&[("ORDERLINE_SPEECH_DIR", speech.path().to_str().unwrap())], &["doctor"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ templates render") && failed[0].contains("shop_name.wav: 16000 Hz"), "{stdout}");
    assert!(stdout.contains("sox IN.wav -r 8000 -c 1 -e mu-law OUT.wav"), "{stdout}");

    // The number pointed elsewhere in the Twilio console.
    line.twilio.change_number(|n| n.voice_url = "https://elsewhere.example.com/voice".into());
    let (code, stdout, _) = line.run(&[], &["doctor"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ Twilio number"), "{stdout}");
    assert!(stdout.contains("VoiceUrl: https://elsewhere.example.com/voice →"), "{stdout}");
    assert!(stdout.contains("fix: run `orderline setup twilio`"), "{stdout}");

    assert_eq!(line.twilio.posts(), posts, "doctor sent no update");
    assert_eq!(line.shopify.subscription_changes(), changes + 1, "only the setup run in between changed something");
    line.stop().await;
}

on_both_backends!(doctor_passes_on_a_set_up_line, doctor_fails_the_right_line_for_each_break);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_setting_that_does_not_parse_and_a_missing_scope() {
    let scopes = ["read_customers", "read_orders", "read_fulfillments", "read_returns"].map(String::from).to_vec();
    let line = Line::start_with(Backend::Sqlite, SimConfig { scopes, ..SimConfig::default() }).await;
    let (code, stdout, _) = line.run(&[("ORDERLINE_FRESHNESS", "soon")], &["doctor"]).await;
    assert_ne!(code, Some(0));
    assert!(stdout.starts_with("✗ settings parse") && stdout.contains("ORDERLINE_FRESHNESS"), "{stdout}");

    let (code, stdout, _) = line.run(&[], &["doctor"]).await;
    assert_ne!(code, Some(0));
    assert!(stdout.contains("✗ Shopify scopes: read_all_orders missing"), "{stdout}");
    assert!(
        stdout.contains("✗ Twilio number") && stdout.contains("✗ Shopify webhook subscriptions"),
        "not set up yet: {stdout}"
    );

    // Media Streams need wss:// on port 443.
    let envs = [("ORDERLINE_PROMPT_MODE", "media_stream"), ("ORDERLINE_PUBLIC_URL", "https://line.example.com:8443")];
    let (_, stdout, _) = line.run(&envs, &["doctor"]).await;
    assert!(stdout.contains("✓ ORDERLINE_PUBLIC_URL: https://line.example.com:8443 is https and public"), "{stdout}");
    assert!(stdout.contains("✗ Media Streams URL (wss): ORDERLINE_PROMPT_MODE=media_stream needs"), "{stdout}");

    // A protected field Shopify withholds: setup warns and goes on, doctor fails that line.
    line.shopify.set_redacted(&[ProtectedData::Phone]);
    let (_, stdout, _) = line.run(&[], &["setup", "shopify", "--dry-run"]).await;
    assert!(stdout.contains("✗ Shopify withholds") && stdout.contains("Protected customer data"), "{stdout}");
    let (code, stdout, _) = line.run(&[], &["doctor"]).await;
    assert_ne!(code, Some(0));
    assert!(stdout.contains("✗ Shopify protected customer data: Shopify withholds"), "{stdout}");
    line.stop().await;
}
