//! Who is who on the agents' lists: a customer's full name, and the name an agent gives for the
//! work they take (`{"by": "Sam"}`, cleaned and bounded). Shared by the voicemail and call-back
//! lists; no HTTP routes of its own.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AgentDesk;
use super::auth::{check_origin, require_agent};

/// The longest name kept for an agent.
const MAX_NAME: usize = 64;

/// "Dana Whitfield" from the parts Shopify has; none when it has neither.
pub fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    (!name.is_empty()).then(|| name.join(" "))
}

#[derive(Debug, Deserialize, Default)]
struct By {
    #[serde(default)]
    by: Option<String>,
}

/// The agent's name from a `{"by": "name"}` body (empty body: "an agent"); a body that is not
/// that JSON is refused with a 400 and this reason. Control characters are dropped, at most 64
/// characters kept.
pub fn agent_name(body: &[u8]) -> Result<String, (StatusCode, String)> {
    parse_agent_name(body).map_err(|why| (StatusCode::BAD_REQUEST, why))
}

fn parse_agent_name(body: &[u8]) -> Result<String, String> {
    let given: By = if body.is_empty() {
        By::default()
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the body is not {{\"by\": \"name\"}}: {e}\n"))?
    };
    let name: String =
        given.by.as_deref().unwrap_or("").trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    Ok(if name.is_empty() { "an agent".to_string() } else { name })
}

/// `?all=true` (or `1`, `yes`): finished items too.
pub fn wants_all(all: Option<&str>) -> bool {
    matches!(all, Some("true" | "1" | "yes"))
}

/// The query of an agents' list: `?all=…` (see `wants_all`).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: Option<String>,
}

impl ListQuery {
    pub fn all(&self) -> bool {
        wants_all(self.all.as_deref())
    }
}

/// An agent acting on a list item (marking it handled, calling back): logged in, and from the
/// console's own origin when by cookie; else the refusal to answer with.
pub async fn require_agent_action(desk: &AgentDesk, headers: &HeaderMap) -> Result<(), Response> {
    let access = require_agent(desk, headers).await.map_err(IntoResponse::into_response)?;
    check_origin(desk, headers, access).map_err(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(full_name(Some(" Dana "), Some("Whitfield")).as_deref(), Some("Dana Whitfield"));
        assert_eq!(full_name(Some(""), None), None);
        assert_eq!(agent_name(b"").unwrap(), "an agent");
        assert_eq!(agent_name(br#"{"by": " Sam\u0007 "}"#).unwrap(), "Sam");
        assert_eq!(agent_name(format!(r#"{{"by": "{}"}}"#, "x".repeat(100)).as_bytes()).unwrap().len(), 64);
        assert_eq!(agent_name(b"Sam").unwrap_err().0, StatusCode::BAD_REQUEST);
        assert!(wants_all(Some("true")) && !wants_all(Some("no")) && !wants_all(None));
    }
}
