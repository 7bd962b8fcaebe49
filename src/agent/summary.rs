//! The call in plain words, for an agent picking up: what the caller was told, what they asked
//! for, how they were verified, what was texted and why they are on the line. Read from the
//! call's events (`domain::EventKind`); the raw path stays on the card beside it.

use crate::domain::{Event, EventKind, TransferReason, Verification, Verified};
use crate::store::CallEventRow;

use super::card::{OrderSummary, SmsSummary};

/// The templates that end with the menu's question: a key after them is a menu choice.
const MENU_STEPS: [&str; 4] = ["menu", "other_orders", "returns", "closed"];

/// What the call record and the card already hold, in sentences (an empty list: nothing yet).
pub fn plain_words(
    events: &[CallEventRow],
    verification: Option<&str>,
    transfer: Option<&str>,
    orders: &[OrderSummary],
    sms: &[SmsSummary],
) -> Vec<String> {
    let is = |e: &CallEventRow, kind: EventKind| e.kind == kind.as_str();
    let mut lines = Vec::new();

    // Heard: the order keyed in (its `order` event), else the latest order once a menu was spoken
    // to a verified caller (the menu opens with it).
    let keyed = events.iter().find(|e| is(e, EventKind::Order)).map(|e| e.detail.as_str());
    let heard_menu = events.iter().any(|e| is(e, EventKind::Step) && e.detail == "menu");
    let verification = verification.and_then(Verification::parse);
    let verified = verification.is_some_and(|v| v != Verification::Failed);
    let told = match keyed {
        Some(name) => orders.iter().find(|o| o.name == name).map(sentence).or(Some(name.to_string())),
        None if heard_menu && verified => orders.first().map(sentence),
        None => None,
    };
    if let Some(told) = told {
        lines.push(format!("Heard: {told}"));
    } else if heard_menu && verified {
        lines.push("Heard: no orders on file".into());
    }

    // The call's language, on a line that speaks more than one: the last word on it.
    if let Some(language) = events.iter().rev().find(|e| is(e, EventKind::Language)) {
        lines.push(format!("Language: {}", language.detail));
    }

    // Asked for: each answer to a menu question, in order (keys or words).
    let mut asked = Vec::new();
    let mut last_step: Option<&str> = None;
    for event in events {
        if is(event, EventKind::Step) {
            last_step = Some(event.detail.as_str());
        } else if is(event, EventKind::Key) && last_step.is_some_and(|s| MENU_STEPS.contains(&s)) {
            asked.push(menu_choice(&event.detail).to_string());
        } else if is(event, EventKind::Key) && last_step == Some("ask_order_number") && event.detail != "none" {
            asked.push(format!("order {}", event.detail));
        }
    }
    if !asked.is_empty() {
        lines.push(format!("Asked for: {}", asked.join(", then ")));
    }
    let said: Vec<&str> =
        events.iter().filter(|e| is(e, EventKind::Speech)).filter_map(|e| Event::said_in(&e.detail)).collect();
    if !said.is_empty() {
        lines.push(format!("Said: {}", said.join(", ")));
    }

    lines.push(format!("Verified: {}", verified_words(verification)));
    for text in sms {
        let order = orders.iter().find(|o| o.id == text.order_id).map_or("an order", |o| o.name.as_str());
        let state = if text.failed { "not delivered" } else { text.status.as_str() };
        let link =
            if text.kind == crate::domain::TextKind::ReturnLabel.as_str() { "return label" } else { "tracking link" };
        lines.push(format!("Texted: the {link} for {order} ({state})"));
    }
    for news in events.iter().filter(|e| is(e, EventKind::BadNews)) {
        lines.push(format!("Bad news first: {}", news.detail));
    }
    if let Some(reason) = transfer {
        lines.push(format!("Put through: {}", transfer_words(reason)));
    }
    lines
}

/// "#1042 shipped on Tuesday, November 17 with UPS".
fn sentence(o: &OrderSummary) -> String {
    let state = o.state.replace('_', " ");
    let carrier = o.carrier.as_deref().map(|c| format!(" with {c}")).unwrap_or_default();
    format!("{} {state} ({}){carrier}", o.name, o.day)
}

fn menu_choice(keys: &str) -> &'static str {
    match keys {
        "1" => "the status again",
        "2" => "other orders",
        "3" => "returns and refunds",
        "4" => "the tracking link by text",
        "0" => "a person",
        "9" => "another language",
        "none" => "nothing (no answer)",
        _ => "a key the menu does not have",
    }
}

fn verified_words(verification: Option<Verification>) -> &'static str {
    match verification {
        Some(Verification::Passed(Verified::PostalCode)) => "by postal code",
        Some(Verification::Passed(Verified::CallerId)) => "by caller ID (the carrier vouched for the number)",
        Some(Verification::Passed(Verified::OrderNumber)) => "by order number and its postal code (that order only)",
        Some(Verification::Passed(Verified::NotRequired)) => "not required (caller ID trusted)",
        Some(Verification::Failed) => "failed",
        Some(Verification::Passed(Verified::No)) | None => "no",
    }
}

fn transfer_words(reason: &str) -> String {
    match TransferReason::parse(reason) {
        Some(TransferReason::Asked) => "asked for a person".into(),
        Some(TransferReason::OrderNotFound) => "the order number was not found".into(),
        Some(TransferReason::NotVerified) => "could not be verified".into(),
        Some(TransferReason::VerificationLocked) => "too many wrong postal codes: no more guesses".into(),
        Some(TransferReason::NoInput) => "did not answer the menu".into(),
        Some(TransferReason::InvalidKey) => "pressed keys the menu does not have".into(),
        Some(TransferReason::Fallback) => "something failed on our side".into(),
        Some(TransferReason::BadNews) => "bad news first, with priority".into(),
        None => reason.replace('_', " "),
    }
}
