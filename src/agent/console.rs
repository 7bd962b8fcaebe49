//! The agent console: `GET /agent` (the page, or its login form), its script and styles as
//! files (`/agent/console.js`, `/agent/console.css`: the page allows no inline script),
//! `POST /agent/login` (a same-origin form post; starts a server-side session and sets its
//! HttpOnly cookie once the agent token is given; wrong tokens are rate-limited),
//! `POST /agent/logout` (same-origin; ends the session), `GET /api/calls/{CallSid}` (a call's
//! context as JSON), and the security headers every console response carries.

use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AgentDesk;
use super::auth::{
    AuthError, SESSION_COOKIE, constant_time_eq, cookie, from_own_origin, new_session_token, require_agent,
    session_hash,
};
use super::card::call_card;
use crate::store::{AttemptKind, Ts};

const CONSOLE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLES: &str = include_str!("console.css");

/// Wrong agent tokens allowed (all clients together) within `LOGIN_WINDOW` before logins are
/// refused with 429 until the window has passed; agents already logged in are not affected.
pub const LOGIN_FAILURES: i64 = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Every wrong login is counted under this one subject: the limit is for the whole line.
const LOGIN_SUBJECT: &str = "agent-login:any";

/// What every console response may load and who may frame it: scripts, styles and the feed
/// from this origin only, no inline script, no framing, no referrer to tracking sites.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const LOGIN: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orderline · log in</title>
<link rel="stylesheet" href="/agent/console.css"></head>
<body class="login"><form method="post" action="/agent/login"><h1>orderline · agents</h1>
<!--error--><!--next--><label for="token">Agent token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button id="login" type="submit">Log in</button></form></body></html>"#;

/// Adds the console's security headers to a response (a layer over every agent route).
/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer` browsers send
/// `Origin: null` with the console's own form posts (Fetch standard, "append a request `Origin`
/// header"), and login would look cross-site; tracking sites still get no referrer.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    login_page_for(error, status, None)
}

/// The login form; `next` is where a successful login goes instead of the console (one of
/// `LANDINGS`).
pub(crate) fn login_page_for(error: Option<&str>, status: StatusCode, next: Option<&str>) -> Response {
    let mut page = match error {
        Some(e) => LOGIN.replace("<!--error-->", &format!("<p class=\"error\">{e}</p>")),
        None => LOGIN.to_string(),
    };
    if let Some(next) = next.filter(|n| LANDINGS.contains(n)) {
        page = page.replace("<!--next-->", &format!("<input type=\"hidden\" name=\"next\" value=\"{next}\">"));
    }
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

pub async fn page(State(desk): State<AgentDesk>, headers: HeaderMap) -> Response {
    match require_agent(&desk, &headers).await {
        Ok(_) => ([(header::CACHE_CONTROL, "no-store")], Html(CONSOLE)).into_response(),
        Err(AuthError::Wrong) => login_page(Some("Your session has ended; log in again."), StatusCode::OK),
        Err(AuthError::Missing) => login_page(None, StatusCode::OK),
        Err(refused) => refused.into_response(),
    }
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

pub async fn styles() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLES).into_response()
}

/// The pages a login may land on (never an address from the request itself).
const LANDINGS: &[&str] = &["/agent", "/agent/reports"];

#[derive(Deserialize)]
pub struct Login {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// A login or logout must be a form post from the console's own page: browsers send `Origin`
/// with every POST, so one that is missing or foreign is another site's doing.
fn same_origin_post(desk: &AgentDesk, headers: &HeaderMap) -> Result<(), AuthError> {
    if from_own_origin(desk, headers) == Some(true) {
        return Ok(());
    }
    tracing::warn!("agent console: login or logout refused, not posted from the console's origin");
    Err(AuthError::ForeignOrigin)
}

pub async fn login(State(desk): State<AgentDesk>, headers: HeaderMap, Form(login): Form<Login>) -> Response {
    let Some(expected) = desk.settings.agents.agent_token.as_ref() else {
        return AuthError::NotConfigured.into_response();
    };
    if let Err(refused) = same_origin_post(&desk, &headers) {
        return refused.into_response();
    }
    let now = desk.clock.now();
    let window_start = Ts::from(now - chrono::Duration::from_std(LOGIN_WINDOW).unwrap_or_default());
    match desk.store.failures_since(AttemptKind::AgentLogin, LOGIN_SUBJECT, window_start).await {
        Ok(n) if n >= LOGIN_FAILURES => {
            tracing::warn!(failures = n, "agent console: logins paused after too many wrong tokens");
            let retry = LOGIN_WINDOW.as_secs().to_string();
            let mut page = login_page(
                Some("Too many wrong tokens: logins are paused for a few minutes."),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(value) = HeaderValue::from_str(&retry) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return page;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "agent console: login attempts unreadable");
            return AuthError::Unavailable.into_response();
        }
    }
    if !constant_time_eq(login.token.trim().as_bytes(), expected.expose().as_bytes()) {
        tracing::warn!("agent console: wrong token at login");
        let forget = Ts::from(now - chrono::Duration::from_std(LOGIN_WINDOW * 2).unwrap_or_default());
        if let Err(e) = desk
            .store
            .record_failure(AttemptKind::AgentLogin, &[LOGIN_SUBJECT.to_string()], Ts::from(now), forget)
            .await
        {
            tracing::error!(error = %e, "agent console: a wrong login was not counted");
        }
        return login_page(Some("That is not the agent token."), StatusCode::UNAUTHORIZED);
    }
    let Ok(token) = new_session_token() else {
        tracing::error!("agent console: no randomness for a session token");
        return AuthError::Unavailable.into_response();
    };
    let ttl = desk.settings.agents.agent_session_ttl;
    let expires = Ts::from(now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12)));
    if let Err(e) = desk.store.create_session(&session_hash(expected, &token), Ts::from(now), expires).await {
        tracing::error!(error = %e, "agent console: session not saved");
        return AuthError::Unavailable.into_response();
    }
    let secure = if desk.settings.server.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", ttl.as_secs());
    let landing = LANDINGS.iter().find(|l| login.next.as_deref() == Some(**l)).copied().unwrap_or("/agent");
    ([(header::SET_COOKIE, cookie)], Redirect::to(landing)).into_response()
}

pub async fn logout(State(desk): State<AgentDesk>, headers: HeaderMap) -> Response {
    if let Err(refused) = same_origin_post(&desk, &headers) {
        return refused.into_response();
    }
    if let Some(expected) = desk.settings.agents.agent_token.as_ref()
        && let Some(session) = cookie(&headers, SESSION_COOKIE).filter(|s| !s.is_empty())
        && let Err(e) = desk.store.end_session(&session_hash(expected, session)).await
    {
        tracing::error!(error = %e, "agent console: session not ended");
        return AuthError::Unavailable.into_response();
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/agent")).into_response()
}

/// `GET /api/calls/{CallSid}`: the call's context, as the console shows it.
pub async fn call(State(desk): State<AgentDesk>, headers: HeaderMap, Path(call_sid): Path<String>) -> Response {
    if let Err(refused) = require_agent(&desk, &headers).await {
        return refused.into_response();
    }
    match call_card(&desk, &call_sid).await {
        Ok(Some(card)) => Json(card).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such call\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "call context unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}
