//! Reports (issue 18): the figures of `/api/reports` against a seeded history whose answers are
//! known (a caller who calls back within the repeat window makes the honest self-service rate
//! lower than the naive one), as JSON and CSV, behind the agents' login, with clear 400s for bad
//! ranges; retention deletes old calls and their events after rolling them into daily
//! aggregates that still answer the report; and the page drawn in headless Chromium.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::domain::report::day_of;
use orderline::domain::{EventKind, TransferReason};
use orderline::store::{CallEvent, CallWrite, NewCall, NewSms, Ts};

use crate::common::line::line;
use crate::common::{Backend, TestApp};
use crate::support::browser::Browser;

const AGENT: &str = "reports-agent-token";

/// One seeded call: from (None: withheld), hours after the base, first-word ms, transfer, and
/// its events (kind, detail) in order.
struct Seed {
    sid: &'static str,
    from: Option<&'static str>,
    hours: i64,
    first_word_ms: i32,
    transfer: Option<TransferReason>,
    events: &'static [(EventKind, &'static str)],
}

/// The known history. Answers: 6 calls; answered 3 (A twice, E), put through 1 (B), hung up in
/// the menu 1 (C, at ask_order_number), hung up in the queue 1 (D). Never reached a person: 4 of
/// 6. Resolved: 2 of 6 (A called back 11 h later, so A's first call is not resolved).
const HISTORY: &[Seed] = &[
    Seed {
        sid: "CAreportA1",
        from: Some("+15550000001"),
        hours: 9,
        first_word_ms: 40,
        transfer: None,
        events: &[
            (EventKind::Lookup, "cache"),
            (EventKind::Verification, "caller_id:passed"),
            (EventKind::Step, "menu"),
            (EventKind::Key, "none"),
        ],
    },
    Seed {
        sid: "CAreportB1",
        from: Some("+15550000002"),
        hours: 10,
        first_word_ms: 120,
        transfer: Some(TransferReason::Asked),
        events: &[
            (EventKind::Lookup, "shopify"),
            (EventKind::Step, "menu"),
            (EventKind::Key, "0"),
            (EventKind::Transfer, "asked"),
            (EventKind::Step, "transfer"),
            (EventKind::TransferEnd, "queue bridged after 12 s: served"),
        ],
    },
    Seed {
        sid: "CAreportC1",
        from: Some("+15550000003"),
        hours: 11,
        first_word_ms: 60,
        transfer: None,
        events: &[(EventKind::Lookup, "unknown"), (EventKind::Step, "ask_order_number")],
    },
    Seed {
        sid: "CAreportD1",
        from: Some("+15550000004"),
        hours: 12,
        first_word_ms: 700,
        transfer: Some(TransferReason::NotVerified),
        events: &[
            (EventKind::Lookup, "stale"),
            (EventKind::Step, "ask_postal_code"),
            (EventKind::Verification, "postal_code:failed"),
            (EventKind::Transfer, "not_verified"),
            (EventKind::Step, "transfer"),
            (EventKind::TransferEnd, "queue hangup after 30 s: served"),
        ],
    },
    Seed {
        sid: "CAreportA2",
        from: Some("+15550000001"),
        hours: 20,
        first_word_ms: 90,
        transfer: None,
        events: &[(EventKind::Lookup, "store"), (EventKind::Step, "menu")],
    },
    Seed {
        sid: "CAreportE1",
        from: None,
        hours: 30,
        first_word_ms: 45,
        transfer: None,
        events: &[
            (EventKind::Lookup, "withheld"),
            (EventKind::Step, "ask_order_number"),
            (EventKind::Order, "#1001"),
            (EventKind::Step, "menu"),
            (EventKind::Goodbye, "no_input"),
        ],
    },
];

/// The history's writes, its calls starting `base` + their hours; SIDs prefixed so two seedings
/// do not collide.
fn writes(base: DateTime<Utc>, prefix: &str) -> Vec<CallWrite> {
    let mut out = Vec::new();
    for seed in HISTORY {
        let sid = format!("{prefix}{}", seed.sid);
        let at = Ts::from(base + chrono::Duration::hours(seed.hours));
        out.push(CallWrite::Start(NewCall {
            call_sid: sid.clone(),
            shop: String::new(),
            from_raw: seed.from.unwrap_or("+266696687").to_string(),
            from_e164: seed.from.map(str::to_string),
            to_number: Some("+18005551212".into()),
            customer_id: None,
            verification: None,
            transfer: seed.transfer,
            started_at: at,
            first_word_ms: Some(seed.first_word_ms),
        }));
        for (idx, (kind, detail)) in seed.events.iter().enumerate() {
            out.push(CallWrite::Event(CallEvent {
                call_sid: sid.clone(),
                step: 1 + idx as i32,
                idx: 0,
                kind: *kind,
                detail: detail.to_string(),
                at,
            }));
        }
    }
    out
}

/// Midnight two days ago: every seeded call (up to 30 h later) is in the past.
fn recent_base() -> DateTime<Utc> {
    day_of(Utc::now()) - chrono::Duration::days(2)
}

fn range_of(base: DateTime<Utc>) -> String {
    let from = base.date_naive();
    format!("from={from}&to={}", from + chrono::Duration::days(2))
}

async fn app(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::start_with(backend, |s| {
        s.agents.agent_token = Some(Secret::new(AGENT));
        change(s);
    })
    .await
}

async fn api(app: &TestApp, query: &str) -> (StatusCode, String, String) {
    let response = app.client.get(format!("{}/api/reports?{query}", app.url)).bearer_auth(AGENT).send().await.unwrap();
    let status = response.status();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn report(app: &TestApp, query: &str) -> Value {
    let (status, kind, body) = api(app, query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(kind.starts_with("application/json"), "{kind}");
    serde_json::from_str(&body).unwrap()
}

fn count(list: &Value, label: &str) -> i64 {
    list.as_array().unwrap().iter().find(|c| c["label"] == label).map_or(0, |c| c["calls"].as_i64().unwrap())
}

/// The figures the seeded history must give (whichever way they were counted).
fn assert_known_answers(r: &Value, base: DateTime<Utc>) {
    assert_eq!(
        r["totals"],
        json!({"calls": 6, "answered": 3, "transferred": 1, "abandoned_in_menu": 1, "abandoned_in_queue": 1,
               "ended_by_orderline": 0, "voicemails": 0, "callbacks": 0})
    );
    let s = &r["self_service"];
    assert_eq!((s["never_reached_person"].as_i64(), s["resolved"].as_i64()), (Some(4), Some(2)), "{s}");
    assert_eq!((s["naive_rate"].as_f64(), s["honest_rate"].as_f64()), (Some(0.6667), Some(0.3333)), "{s}");
    assert!(s["honest_rate"].as_f64() < s["naive_rate"].as_f64(), "a call back is not self-service");
    assert_eq!(count(&r["drop_off"], "ask_order_number"), 1);
    assert_eq!(r["drop_off"].as_array().unwrap().len(), 1, "only C hung up in the menu");
    assert_eq!((count(&r["verification"], "passed"), count(&r["verification"], "failed")), (1, 1));
    assert_eq!((count(&r["transfer_reasons"], "asked"), count(&r["transfer_reasons"], "not_verified")), (1, 1));
    assert_eq!(r["first_word"]["measured"], 6);
    assert_eq!(
        (r["first_word"]["p50_ms_at_most"].as_u64(), r["first_word"]["p95_ms_at_most"].as_u64()),
        (Some(75), Some(750))
    );
    for source in ["cache", "store", "shopify", "stale", "unknown", "withheld"] {
        assert_eq!(count(&r["sources"], source), 1, "{source}");
    }
    assert_eq!(r["freshness"]["fresh_rate"].as_f64(), Some(0.75));
    // Per day: the base day holds A1, B1, C1, D1, A2 (9 h to 20 h); the next day E1 (30 h).
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["day"], base.date_naive().to_string());
    assert_eq!(
        (days[0]["calls"].as_i64(), days[1]["calls"].as_i64(), days[2]["calls"].as_i64()),
        (Some(5), Some(1), Some(0))
    );
    // The heat map: Monday-first rows of UTC hours.
    let weekday = orderline::domain::report::weekday_of(base);
    let heat = &r["hour_of_week"];
    assert_eq!((heat[weekday][9].as_i64(), heat[weekday][20].as_i64()), (Some(1), Some(1)));
    assert_eq!(heat[(weekday + 1) % 7][6].as_i64(), Some(1));
    let total: i64 =
        heat.as_array().unwrap().iter().flat_map(|d| d.as_array().unwrap()).map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(total, 6);
}

async fn the_report_counts_a_known_history(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let base = recent_base();
    app.store().record_calls(&writes(base, "")).await.unwrap();
    let r = report(&app, &range_of(base)).await;
    assert_known_answers(&r, base);
    assert_eq!(r["self_service"]["repeat_window_hours"], 72);
    app.stop().await;
}

async fn a_call_back_after_the_repeat_window_does_not_count_against_orderline(backend: Backend) {
    // A called back 11 h later: with a 6 h window both of A's calls are resolved.
    let app = app(backend, |s| s.reports.repeat_call_window = Duration::from_secs(6 * 3600)).await;
    let base = recent_base();
    app.store().record_calls(&writes(base, "")).await.unwrap();
    let r = report(&app, &range_of(base)).await;
    let s = &r["self_service"];
    assert_eq!((s["resolved"].as_i64(), s["honest_rate"].as_f64()), (Some(3), Some(0.5)), "{s}");
    assert_eq!(s["repeat_window_hours"], 6);
    app.stop().await;
}

async fn the_report_comes_as_csv_when_asked(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let base = recent_base();
    app.store().record_calls(&writes(base, "")).await.unwrap();
    for query in [format!("{}&format=csv", range_of(base))] {
        let (status, kind, body) = api(&app, &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(kind.starts_with("text/csv"), "{kind}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "figure,day,label,value");
        for expected in [
            "outcome,,calls,6",
            "outcome,,abandoned_in_queue,1",
            "self_service,,naive_rate,0.6667",
            "self_service,,honest_rate,0.3333",
            "drop_off,,ask_order_number,1",
            "first_word,,p95_ms_at_most,750",
            &format!("day,{},calls,5", base.date_naive()),
        ] {
            assert!(lines.contains(&expected), "{expected} missing from:\n{body}");
        }
    }
    // The same through the Accept header.
    let response = app
        .client
        .get(format!("{}/api/reports?{}", app.url, range_of(base)))
        .bearer_auth(AGENT)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("self_service,,resolved,2"));
    app.stop().await;
}

async fn reports_need_the_agents_login(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let response = app.client.get(format!("{}/api/reports", app.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.client.get(format!("{}/api/reports", app.url)).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The page without a session is the login form, which comes back to the reports.
    let (status, page) = app.get("/agent/reports").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"token\"") && page.contains("value=\"/agent/reports\""), "{page}");
    assert!(!page.contains("chart-4.6.1"), "no report without a login");
    // The chart library is orderline's own file, cached for a year.
    let response = app.client.get(format!("{}/agent/assets/chart-4.6.1.umd.min.js", app.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(response.text().await.unwrap().starts_with("/*!\n * Chart.js v4.6.1"));
    app.stop().await;
}

async fn a_bad_range_is_a_clear_400(backend: Backend) {
    let app = app(backend, |_| {}).await;
    for (query, says) in [
        ("from=June", "`from` must be a date like 2026-06-01"),
        ("to=2026-13-01", "`to` must be a date"),
        ("from=2026-06-10&to=2026-06-01", "is after"),
        ("from=2020-01-01&to=2026-01-01", "at most 1100 days"),
        ("format=xml", "`format` is json or csv"),
    ] {
        let (status, _, body) = api(&app, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    // No range: the last 30 days, up to today.
    let r = report(&app, "").await;
    assert_eq!(r["to"], Utc::now().date_naive().to_string());
    assert_eq!(r["days"].as_array().unwrap().len(), 30);
    app.stop().await;
}

async fn retention_deletes_old_calls_and_the_aggregates_still_answer(backend: Backend) {
    let app = app(backend, |s| {
        s.reports.retention = Duration::from_secs(90 * 86_400);
        s.reports.retention_every = Duration::from_millis(100);
    })
    .await;
    let old = day_of(Utc::now()) - chrono::Duration::days(200);
    let recent = recent_base();
    let mut all = writes(old, "old");
    all.extend(writes(recent, "new"));
    app.store().record_calls(&all).await.unwrap();
    // Texts sent during an old call and a recent one: the number goes with the old call.
    for (sid, at) in [("oldCAreportA1", old), ("newCAreportA1", recent)] {
        let sms = NewSms {
            call_sid: sid.into(),
            order_id: 1001,
            kind: orderline::domain::TextKind::Tracking,
            shop: String::new(),
            customer_id: None,
            to_number: "+15550000001".into(),
            from_number: None,
        };
        assert!(app.store().claim_sms(&sms, Ts::from(at)).await.unwrap().is_none(), "a new text");
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = app.db.count("SELECT COUNT(*) FROM calls WHERE call_sid LIKE 'old%'").await;
        let events = app.db.count("SELECT COUNT(*) FROM call_events WHERE call_sid LIKE 'old%'").await;
        if left == 0 && events == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "old calls still stored: {left} calls, {events} events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM calls WHERE call_sid LIKE 'new%'").await, 6, "recent calls kept");
    assert!(app.store().sms_of_call("oldCAreportA1").await.unwrap().is_empty(), "the old call's text is gone");
    assert_eq!(app.store().sms_of_call("newCAreportA1").await.unwrap().len(), 1, "the recent one is kept");
    assert!(app.db.count("SELECT COUNT(*) FROM call_days").await > 0);
    // The old days now come from the aggregates, with the same answers.
    assert_known_answers(&report(&app, &range_of(old)).await, old);
    // And a year's report spans both.
    let year = format!(
        "from={}&to={}",
        recent.date_naive() - chrono::Duration::days(364),
        recent.date_naive() + chrono::Duration::days(2)
    );
    assert_eq!(report(&app, &year).await["totals"]["calls"], 12);
    app.stop().await;
}

async fn real_calls_are_counted_with_orderline_s_own_response_time(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.agent_token = Some(Secret::new(AGENT));
    })
    .await;
    // Dana hears her order and hangs up, then calls again and asks for a person.
    let first = line.call("+15551234567", &[]).await;
    let second = line.call("+15551234567", &["0"]).await;
    line.flush_calls().await;
    assert_ne!(first.call_sid, second.call_sid);
    let measured = line.app.db.count("SELECT COUNT(*) FROM calls WHERE first_word_ms IS NOT NULL").await;
    assert_eq!(measured, 2, "each call's first answer is timed by the voice handler");

    let today = Utc::now().date_naive();
    let r = report(&line.app, &format!("from={today}&to={today}")).await;
    assert_eq!((r["totals"]["calls"].as_i64(), r["totals"]["answered"].as_i64()), (Some(2), Some(1)), "{r}");
    assert_eq!(r["totals"]["transferred"], 1);
    assert_eq!(count(&r["transfer_reasons"], "asked"), 1);
    let s = &r["self_service"];
    // She called back within 72 h: orderline did not resolve her first call after all.
    assert_eq!((s["naive_rate"].as_f64(), s["honest_rate"].as_f64()), (Some(0.5), Some(0.0)), "{s}");
    assert_eq!(r["first_word"]["measured"], 2);
    assert!(r["first_word"]["p95_ms_at_most"].as_u64().is_some_and(|ms| ms <= 1500), "{}", r["first_word"]);
    assert_eq!(r["sources"].as_array().unwrap().iter().map(|c| c["calls"].as_i64().unwrap()).sum::<i64>(), 2);
    line.app.stop().await;
}

async fn days_and_hours_are_in_the_line_s_time_zone(backend: Backend) {
    let app = app(backend, |s| s.handoff.hours_timezone = "America/New_York".into()).await;
    // 02:30 UTC is the evening before in New York (21:30 or 22:30).
    let at = recent_base() + chrono::Duration::minutes(150);
    let local = at.with_timezone(&chrono_tz::America::New_York);
    assert_ne!(local.date_naive(), at.date_naive());
    let mut writes = writes(at - chrono::Duration::hours(9), "tz");
    writes.truncate(1 + HISTORY[0].events.len()); // A1 only, at `at`
    app.store().record_calls(&writes).await.unwrap();

    let day = local.date_naive();
    let r = report(&app, &format!("from={day}&to={day}")).await;
    assert_eq!(r["timezone"], "America/New_York");
    assert_eq!(r["totals"]["calls"], 1, "{r}");
    assert_eq!(r["days"][0]["day"], day.to_string());
    let weekday = orderline::domain::report::weekday_of(day);
    assert_eq!(r["hour_of_week"][weekday][chrono::Timelike::hour(&local) as usize], 1);
    // The UTC date of the call is the next local day: nothing there.
    let next = day + chrono::Duration::days(1);
    assert_eq!(report(&app, &format!("from={next}&to={next}")).await["totals"]["calls"], 0);
    app.stop().await;
}

on_both_backends!(
    days_and_hours_are_in_the_line_s_time_zone,
    real_calls_are_counted_with_orderline_s_own_response_time,
    the_report_counts_a_known_history,
    a_call_back_after_the_repeat_window_does_not_count_against_orderline,
    the_report_comes_as_csv_when_asked,
    reports_need_the_agents_login,
    a_bad_range_is_a_clear_400,
    retention_deletes_old_calls_and_the_aggregates_still_answer,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_page_draws_its_charts_in_chromium() {
    const WAIT: Duration = Duration::from_secs(15);
    let app = app(Backend::Postgres, |_| {}).await;
    let base = recent_base();
    app.store().record_calls(&writes(base, "")).await.unwrap();
    let browser = Browser::launch().await.expect("headless Chromium (apt-get install -y chromium)");
    browser.goto(&format!("{}/agent/reports", app.url)).await.unwrap();
    browser
        .eval(&format!(
            "document.getElementById('token').value = '{AGENT}'; document.querySelector('form').submit(); true"
        ))
        .await
        .unwrap();
    browser.wait_for("document.body?.dataset.loaded === '1'", WAIT).await.unwrap();
    assert_eq!(browser.eval("location.pathname").await.unwrap(), json!("/agent/reports"), "the login came back here");
    // Show the seeded days.
    let from: NaiveDate = base.date_naive();
    browser
        .eval(&format!(
            "document.body.dataset.loaded = ''; document.getElementById('from').value = '{from}'; \
             document.getElementById('to').value = '{}'; document.querySelector('#range button').click(); true",
            from + chrono::Duration::days(2)
        ))
        .await
        .unwrap();
    browser.wait_for("document.body.dataset.loaded === '1'", WAIT).await.unwrap();
    let tile = browser.eval("document.querySelector('#tile-resolved-rate .value').textContent").await.unwrap();
    assert_eq!(tile, json!("33.3 %"));
    let naive = browser.eval("document.querySelector('#tile-naive-rate .value').textContent").await.unwrap();
    assert_eq!(naive, json!("66.7 %"));
    // Chart.js drew every chart onto its canvas.
    let drawn = browser
        .eval(
            "['per-day','drop-off','reasons','verification','sources','first-word'].every(id => { \
               const c = document.getElementById(id); const chart = Chart.getChart(c); \
               return chart && c.width > 0 && chart.data.datasets.length > 0; })",
        )
        .await
        .unwrap();
    assert_eq!(drawn, json!(true));
    let per_day = browser.eval("Chart.getChart('per-day').data.datasets[0].data.join(',')").await.unwrap();
    assert_eq!(per_day, json!("2,1,0"), "answered per day");
    let heat_cells = browser.eval("document.querySelectorAll('#heat td').length").await.unwrap();
    assert_eq!(heat_cells, json!(7 * 24));

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reports.png");
    browser.screenshot(&shot).await.unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    app.stop().await;
}
