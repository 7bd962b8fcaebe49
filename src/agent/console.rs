//! The agent console: `GET /agent` (the page, or its login form), `POST /agent/login` (sets the
//! HttpOnly session cookie once the agent token is given), `POST /agent/logout`, and
//! `GET /api/calls/{CallSid}` (a call's context as JSON). The page is one file, served as is.

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{AuthError, SESSION_COOKIE, constant_time_eq, require_agent, session_value};
use super::card::call_card;
use crate::app::AppState;

const CONSOLE: &str = include_str!("console.html");

const LOGIN: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orderline · log in</title>
<style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:90vh;background:#f6f7fb}
form{background:#fff;padding:24px 28px;border:1px solid #e3e6ee;border-radius:8px;min-width:300px}
input{width:100%;padding:8px;margin:8px 0 12px;font:inherit}.error{color:#c92a2a}</style></head>
<body><form method="post" action="/agent/login"><h1 style="font-size:18px">orderline · agents</h1>
<!--error--><label for="token">Agent token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button id="login" type="submit">Log in</button></form></body></html>"#;

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let page = match error {
        Some(e) => LOGIN.replace("<!--error-->", &format!("<p class=\"error\">{e}</p>")),
        None => LOGIN.to_string(),
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match require_agent(&state, &headers) {
        Ok(()) => ([(header::CACHE_CONTROL, "no-store")], Html(CONSOLE)).into_response(),
        Err(AuthError::NotConfigured) => AuthError::NotConfigured.into_response(),
        Err(AuthError::Wrong) => login_page(Some("Your session has ended; log in again."), StatusCode::OK),
        Err(AuthError::Missing) => login_page(None, StatusCode::OK),
    }
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

pub async fn login(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    let Some(expected) = state.settings.agent_token.as_ref() else {
        return AuthError::NotConfigured.into_response();
    };
    if !constant_time_eq(login.token.trim().as_bytes(), expected.expose().as_bytes()) {
        tracing::warn!("agent console: wrong token at login");
        return login_page(Some("That is not the agent token."), StatusCode::UNAUTHORIZED);
    }
    let secure = if state.settings.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}", session_value(expected));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/agent")).into_response()
}

pub async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/agent")).into_response()
}

/// `GET /api/calls/{CallSid}`: the call's context, as the console shows it.
pub async fn call(State(state): State<AppState>, headers: HeaderMap, Path(call_sid): Path<String>) -> Response {
    if let Err(refused) = require_agent(&state, &headers) {
        return refused.into_response();
    }
    match call_card(&state, &call_sid).await {
        Ok(Some(card)) => Json(card).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such call\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "call context unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}
