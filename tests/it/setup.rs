//! `orderline setup twilio` and `orderline setup shopify`, run as the real binary against the
//! emulators and a running orderline: from nothing they configure everything, a second run
//! changes nothing, `--dry-run` changes nothing, and bad input stops before any change with a
//! message naming the setting.

use std::time::Duration;

use crate::common::Backend;
use crate::common::outside::{Line, applied, subscribed};
use orderline::sim::shopify::SimConfig;
use orderline::sim::twilio::rest::{RestFailure, UNCONFIGURED_VOICE_URL};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_from_nothing_subscribes_every_applied_topic_and_a_second_run_changes_nothing() {
    let line = Line::start().await;
    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(subscribed(&line.shopify), applied());
    let uri = format!("{}/shopify/webhooks", line.app.url);
    for s in line.shopify.webhook_subscriptions() {
        assert_eq!((s.uri.as_str(), s.format.as_str()), (uri.as_str(), "JSON"), "{s:?}");
    }
    assert_eq!(line.shopify.subscription_changes(), applied().len() as u64);
    assert!(stdout.contains("+ orders/create"), "the diff is printed: {stdout}");
    assert!(
        stdout.contains(r#"compliance_topics = ["customers/redact", "shop/redact", "customers/data_request"]"#),
        "the compliance lines are printed: {stdout}"
    );

    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to change"), "{stdout}");
    assert_eq!(line.shopify.subscription_changes(), applied().len() as u64, "the second run changed nothing");
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_dry_run_prints_the_diff_and_changes_nothing() {
    let line = Line::start().await;
    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("+ fulfillments/update") && stdout.contains("dry run: nothing changed"), "{stdout}");
    assert!(line.shopify.webhook_subscriptions().is_empty());
    assert_eq!(line.shopify.subscription_changes(), 0);
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_moves_an_old_address_and_removes_what_orderline_does_not_apply() {
    let line = Line::start().await;
    let old = "http://127.0.0.1:9/shopify/webhooks";
    let ours = format!("{}/shopify/webhooks", line.app.url);
    let mut settings = orderline::config::Settings::default();
    settings.shopify.api_url = Some(line.shopify_url());
    settings.shopify.access_token = Some(orderline::config::Secret::new(line.shopify.config().access_token.as_str()));
    let settings = settings.validated().unwrap();
    let client =
        orderline::app::shopify_client(&settings, std::sync::Arc::new(orderline::ops::Metrics::new())).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    client.create_webhook_subscription("ORDERS_CREATE", old, deadline).await.unwrap();
    client.create_webhook_subscription("PRODUCTS_UPDATE", &ours, deadline).await.unwrap();
    client.create_webhook_subscription("PRODUCTS_UPDATE", "https://erp.example.com/hooks", deadline).await.unwrap();
    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("~ orders/create: {old}")), "{stdout}");
    assert!(stdout.contains("- PRODUCTS_UPDATE"), "{stdout}");
    assert!(stdout.contains("erp.example.com/hooks left alone"), "{stdout}");
    let mut expected = applied();
    expected.push("PRODUCTS_UPDATE".into());
    expected.sort();
    assert_eq!(subscribed(&line.shopify), expected, "ours, plus the other address's subscription");
    let orders_create: Vec<_> =
        line.shopify.webhook_subscriptions().into_iter().filter(|s| s.topic == "ORDERS_CREATE").collect();
    assert_eq!(orders_create.len(), 1);
    assert_eq!(orders_create[0].uri, ours, "the old address was moved, not duplicated");
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_reports_a_missing_scope_before_creating_anything() {
    let scopes = ["read_customers", "read_orders", "read_all_orders"].map(String::from).to_vec();
    let line = Line::start_with(Backend::Sqlite, SimConfig { scopes, ..SimConfig::default() }).await;
    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify"]).await;
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stdout.contains("missing scope read_fulfillments") && stdout.contains("Access scopes"), "{stdout}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(line.shopify.subscription_changes(), 0);
    assert!(line.shopify.webhook_subscriptions().is_empty());
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_bad_input_stops_with_the_setting_named_and_changes_nothing() {
    let line = Line::start().await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("SHOPIFY_ACCESS_TOKEN", "shpat_wrong")], "SHOPIFY_ACCESS_TOKEN"),
        (&[("SHOPIFY_ACCESS_TOKEN", ""), ("SHOPIFY_API_URL", "")], "SHOPIFY_SHOP"),
        (&[("ORDERLINE_ALLOW_INSECURE_PUBLIC_URL", "")], "ORDERLINE_PUBLIC_URL"),
        (&[("ORDERLINE_PUBLIC_URL", "http://127.0.0.1:9")], "did not answer"),
    ];
    for (envs, named) in cases {
        let (code, stdout, stderr) = line.run(envs, &["setup", "shopify"]).await;
        assert_ne!(code, Some(0), "{envs:?}: {stdout}");
        assert!(stderr.contains(named), "{envs:?}: expected {named:?} in {stderr}");
        assert!(!stderr.contains("shpat_wrong"), "no token printed");
    }
    assert_eq!(line.shopify.subscription_changes(), 0);
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_shopify_reads_every_page_of_subscriptions() {
    let line = Line::start().await;
    // 130 subscriptions of the app to another address: two pages of 100.
    for i in 0..130 {
        assert!(line.shopify.add_subscription("PRODUCTS_UPDATE", &format!("https://erp.example.com/hooks/{i}")));
    }
    line.shopify.add_subscription("ORDERS_CREATE", &format!("{}/shopify/webhooks", line.app.url));
    let (code, stdout, stderr) = line.run(&[], &["setup", "shopify", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("24 to change (1 already right)"), "the one on the second page was found: {stdout}");
    assert_eq!(stdout.matches("left alone").count(), 130, "{stdout}");
    line.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twilio_client_counts_its_outcomes_and_reads_twilios_errors() {
    use orderline::twilio::rest::{RestCredentials, TwilioError, TwilioRest};
    let line = Line::start().await;
    let config = line.twilio.config().clone();
    let metrics = std::sync::Arc::new(orderline::ops::Metrics::new());
    let credentials = |password: &str| RestCredentials {
        account_sid: config.account_sid.clone(),
        username: config.api_key.clone(),
        password: orderline::config::Secret::new(password),
    };
    let url = line.twilio_url();
    let wrong = TwilioRest::new(&url, credentials("wrong"), metrics.clone());
    assert_eq!(wrong.find_number(&config.number).await, Err(TwilioError::Unauthorized(Some(20003))));
    let right = TwilioRest::new(&url, credentials(&config.api_secret), metrics.clone());
    line.twilio.set_failure(RestFailure::HttpTimes(429, 1));
    let number = right.find_number(&config.number).await.unwrap().expect("the seeded number");
    assert!(right.last_server_date().is_some(), "Twilio's Date is kept for the clock check");
    match right.update_number("PN00000000000000000000000000000000", &[("VoiceMethod", "POST")]).await {
        Err(TwilioError::NotFound(e)) => {
            assert_eq!((e.code, e.status), (Some(20404), Some(404)));
            assert_eq!(e.more_info.as_deref(), Some("https://www.twilio.com/docs/errors/20404"));
        }
        other => panic!("{other:?}"),
    }
    assert!(right.update_number(&number.sid, &[("VoiceMethod", "PUT")]).await.is_err(), "a bad method is refused");
    let text = metrics.render();
    for (operation, outcome) in [
        ("list_numbers", "unauthorized"),
        ("list_numbers", "retried"),
        ("list_numbers", "ok"),
        ("update_number", "not_found"),
    ] {
        let needle =
            format!("orderline_twilio_api_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} 1");
        assert!(text.contains(&needle), "{needle} in\n{text}");
    }
    line.stop().await;
}
