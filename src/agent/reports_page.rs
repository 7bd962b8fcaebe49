//! The reports over HTTP: `GET /agent/reports` (the page, behind the console's login),
//! `GET /api/reports?from=&to=` (JSON, or CSV with `Accept: text/csv` or `format=csv`), the page's
//! script and styles, and the chart library orderline serves itself (no CDN). Holds no SQL and
//! computes no figure (`agent::reports` builds the model).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AgentDesk;
use super::auth::{AuthError, require_agent};
use super::console::login_page_for;
use super::reports::{Report, ReportRange};
use crate::domain::report::Calendar;

const PAGE: &str = include_str!("reports.html");
const SCRIPT: &str = include_str!("reports.js");
const STYLES: &str = include_str!("reports.css");
/// Chart.js 4.6.1 (MIT), vendored unchanged from the npm package: see vendor/chartjs/SOURCE.md.
const CHART_JS: &[u8] = include_bytes!("vendor/chartjs/chart.umd.min.js");
pub const CHART_JS_PATH: &str = "/agent/assets/chart-4.6.1.umd.min.js";
const CHART_JS_LICENSE: &[u8] = include_bytes!("vendor/chartjs/LICENSE.md");
pub const CHART_JS_LICENSE_PATH: &str = "/agent/assets/chart-4.6.1.LICENSE.md";

/// A year: the versioned file names never change content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub async fn page(State(desk): State<AgentDesk>, headers: HeaderMap) -> Response {
    match require_agent(&desk, &headers).await {
        Ok(_) => ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response(),
        Err(AuthError::Wrong) => {
            login_page_for(Some("Your session has ended; log in again."), StatusCode::OK, Some("/agent/reports"))
        }
        Err(AuthError::Missing) => login_page_for(None, StatusCode::OK, Some("/agent/reports")),
        Err(refused) => refused.into_response(),
    }
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
        .into_response()
}

pub async fn styles() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], STYLES).into_response()
}

pub async fn chart_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, IMMUTABLE)], CHART_JS)
        .into_response()
}

pub async fn chart_js_license() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, IMMUTABLE)], CHART_JS_LICENSE)
        .into_response()
}

fn wants_csv(query: &HashMap<String, String>, headers: &HeaderMap) -> bool {
    if let Some(format) = query.get("format") {
        return format.eq_ignore_ascii_case("csv");
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/csv")))
}

/// `GET /api/reports?from=YYYY-MM-DD&to=YYYY-MM-DD`: days of the line's time zone
/// (ORDERLINE_HOURS_TIMEZONE), both included; default the last 30 days.
pub async fn api(
    State(desk): State<AgentDesk>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = require_agent(&desk, &headers).await {
        return refused.into_response();
    }
    if let Some(format) =
        query.get("format").filter(|f| !f.eq_ignore_ascii_case("csv") && !f.eq_ignore_ascii_case("json"))
    {
        let message = format!("`format` is json or csv, not {:?}\n", format.chars().take(20).collect::<String>());
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let calendar = Calendar::new(desk.settings.handoff.business_hours.timezone());
    let today = calendar.date_of(desk.clock.now());
    let range =
        match ReportRange::parse(query.get("from").map(String::as_str), query.get("to").map(String::as_str), today) {
            Ok(range) => range,
            Err(why) => {
                tracing::info!(error = %why, "reports: range refused");
                return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
            }
        };
    let shop = desk.settings.shopify.shop.clone().unwrap_or_default();
    let window = desk.settings.reports.repeat_call_window;
    let counts = match desk
        .store
        .report_counts(&shop, range.start(&calendar).into(), range.end(&calendar).into(), window, &calendar)
        .await
    {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(error = %e, "reports: the store did not answer");
            return (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response();
        }
    };
    let report = Report::build(range, &counts, window.as_secs() / 3600, &calendar);
    if wants_csv(&query, &headers) {
        let name = format!("attachment; filename=\"orderline-report-{}-{}.csv\"", range.from, range.to);
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, name),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            report.to_csv(),
        )
            .into_response()
    } else {
        ([(header::CACHE_CONTROL, "no-store")], axum::Json(report)).into_response()
    }
}
