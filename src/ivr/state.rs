//! What a call carries from one request to the next: the stage the caller is answering (a path
//! below /twilio/voice) and a small state (a query string). Twilio signs every URL it requests,
//! so the state cannot be forged, and any instance can serve any step of any call.

use std::fmt::Write;

use crate::domain::{Language, Verified};

/// The question the caller is answering: the path segment of the action URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The main menu (1 again, 2 other orders, 3 returns, 0 someone).
    Menu,
    /// Keying in an order number.
    OrderNumber,
    /// Keying in the shipping postal code, to be verified.
    PostalCode,
    /// After "one moment": the lookup is finishing.
    Continue,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Menu, Stage::OrderNumber, Stage::PostalCode, Stage::Continue];

    pub fn path(self) -> &'static str {
        match self {
            Stage::Menu => "menu",
            Stage::OrderNumber => "order-number",
            Stage::PostalCode => "postal-code",
            Stage::Continue => "continue",
        }
    }

    pub fn from_path(path: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.path() == path)
    }

    /// How this question takes its answer: the one description TwiML's `<Gather>`, Media
    /// Streams and ConversationRelay all read.
    pub fn ask(self) -> Ask {
        match self {
            Stage::Menu => Ask { max_digits: Some(1), finish_on: Some('#'), timeout_secs: 6 },
            Stage::OrderNumber | Stage::PostalCode => Ask { max_digits: None, finish_on: Some('#'), timeout_secs: 8 },
            // "One moment": nothing is asked; the flow answers it with no input as soon as the
            // lookup is done (TwiML redirects, the streams wait for it).
            Stage::Continue => Ask { max_digits: None, finish_on: None, timeout_secs: 1 },
        }
    }

    /// The words this question expects, to help speech recognition (`<Gather hints>`), in the
    /// call's language.
    pub fn hints(self, language: Language) -> &'static str {
        match (self, language) {
            (Stage::Menu, Language::En) => {
                "where is my order, order status, repeat, other orders, returns, refund, return label, leave a message, agent, representative"
            }
            (Stage::Menu, Language::Es) => {
                "dónde está mi pedido, estado de mi pedido, repetir, otros pedidos, devoluciones, reembolso, guía de devolución, dejar un mensaje, agente, representante"
            }
            (Stage::OrderNumber, Language::En) => "order number",
            (Stage::OrderNumber, Language::Es) => "número de pedido, pedido",
            (Stage::PostalCode, Language::En) => "postal code, zip code",
            (Stage::PostalCode, Language::Es) => "código postal",
            (Stage::Continue, _) => "",
        }
    }
}

/// How a question takes keys (twilio.com/docs/voice/twiml/gather: numDigits; finishOnKey,
/// default `#`; timeout, default 5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// The answer is complete after this many keys.
    pub max_digits: Option<u8>,
    /// This key ends the answer (and is not part of it).
    pub finish_on: Option<char>,
    /// Silence, once the question has been said, before the answer is taken as it is.
    pub timeout_secs: u8,
}

impl Ask {
    pub fn timeout(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.timeout_secs))
    }
}

/// The verification level in the signed call state: one letter.
fn verified_code(verified: Verified) -> &'static str {
    match verified {
        Verified::No => "n",
        Verified::NotRequired => "x",
        Verified::CallerId => "c",
        Verified::PostalCode => "p",
        Verified::OrderNumber => "o",
    }
}

fn verified_from_code(code: &str) -> Option<Verified> {
    Some(match code {
        "n" => Verified::No,
        "x" => Verified::NotRequired,
        "c" => Verified::CallerId,
        "p" => Verified::PostalCode,
        "o" => Verified::OrderNumber,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallState {
    /// Requests of this call answered so far; numbers the call's events. Stops at `u32::MAX`
    /// rather than wrapping to 0 (which would renumber the call's events from the start).
    pub step: u32,
    /// The customer the call is about.
    pub customer: Option<i64>,
    /// The order the call is about, when the caller keyed it in.
    pub order: Option<i64>,
    pub verified: Verified,
    /// Failed answers (wrong, invalid or none) at the current question.
    pub tries: u8,
    /// Spoken answers that were not understood: 1, the question is asked again with its keys
    /// spelled out; 2, the call listens for keys only from then on.
    pub unclear: u8,
    /// The call's language (`lang=es`); none: the line's default language.
    pub lang: Option<Language>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("call state: {0}")]
pub struct StateError(String);

impl CallState {
    /// The query string (without `?`) that carries this state to the next request.
    pub fn to_query(&self) -> String {
        let mut q = format!("n={}&v={}&t={}", self.step, verified_code(self.verified), self.tries);
        if let Some(c) = self.customer {
            let _ = write!(q, "&c={c}");
        }
        if let Some(o) = self.order {
            let _ = write!(q, "&o={o}");
        }
        if self.unclear > 0 {
            let _ = write!(q, "&u={}", self.unclear);
        }
        if let Some(lang) = self.lang {
            let _ = write!(q, "&lang={}", lang.code());
        }
        q
    }

    /// Reads the state back from the query's pairs; unknown names are ignored.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<CallState, StateError> {
        let mut state = CallState::default();
        for (name, value) in pairs {
            let bad = || StateError(format!("{name}={value:?} is not valid"));
            match name {
                "n" => state.step = value.parse().map_err(|_| bad())?,
                "v" => state.verified = verified_from_code(value).ok_or_else(bad)?,
                "t" => state.tries = value.parse().map_err(|_| bad())?,
                "c" => state.customer = Some(value.parse().map_err(|_| bad())?),
                "o" => state.order = Some(value.parse().map_err(|_| bad())?),
                "u" => state.unclear = value.parse().map_err(|_| bad())?,
                // A language this build has no words for is the default's: never an error.
                "lang" => state.lang = Language::of_tag(value),
                _ => {}
            }
        }
        Ok(state)
    }

    /// The state for the next request: one step on, the same question's failures counted.
    pub fn next(self) -> CallState {
        CallState { step: self.step.saturating_add(1), ..self }
    }

    /// The state for a new question: one step on, no failures yet.
    pub fn fresh(self) -> CallState {
        CallState { step: self.step.saturating_add(1), tries: 0, ..self }
    }

    /// The state for asking the same question again after a failure.
    pub fn retry(self) -> CallState {
        CallState { step: self.step.saturating_add(1), tries: self.tries.saturating_add(1), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(&str, &str)> {
        q.split('&').filter_map(|p| p.split_once('=')).collect()
    }

    #[test]
    fn a_state_survives_the_round_trip_through_a_url() {
        let state = CallState {
            step: 4,
            customer: Some(9_007_199_254_740_993),
            order: Some(9_007_199_254_741_107),
            verified: Verified::PostalCode,
            tries: 1,
            unclear: 0,
            lang: None,
        };
        let query = state.to_query();
        assert_eq!(query, "n=4&v=p&t=1&c=9007199254740993&o=9007199254741107");
        assert_eq!(CallState::from_query(pairs(&query)), Ok(state));
        assert_eq!(CallState::from_query(pairs("n=1&v=n&t=0")), Ok(CallState { step: 1, ..CallState::default() }));
    }

    #[test]
    fn the_calls_language_and_unclear_answers_ride_in_the_url() {
        let state = CallState { step: 2, unclear: 1, lang: Some(Language::Es), ..CallState::default() };
        let query = state.to_query();
        assert_eq!(query, "n=2&v=n&t=0&u=1&lang=es");
        assert_eq!(CallState::from_query(pairs(&query)), Ok(state));
        let read = |q: &str| CallState::from_query(pairs(q)).unwrap().lang;
        assert_eq!(read("n=2&lang=es-US"), Some(Language::Es));
        assert_eq!(read("n=2&lang=fr-CA"), None, "unknown: the default language");
        assert_eq!(read("n=2"), None);
        assert!(CallState::from_query(pairs("u=x")).is_err());
    }

    #[test]
    fn the_step_counter_stops_at_its_maximum_instead_of_wrapping() {
        let last = CallState { step: u32::MAX, tries: u8::MAX, ..CallState::default() };
        assert_eq!(last.next().step, u32::MAX);
        assert_eq!(last.fresh().step, u32::MAX);
        assert_eq!((last.retry().step, last.retry().tries), (u32::MAX, u8::MAX));
        let query = last.next().to_query();
        assert_eq!(CallState::from_query(pairs(&query)).unwrap().step, u32::MAX);
    }

    #[test]
    fn a_malformed_state_is_refused() {
        assert!(CallState::from_query(pairs("n=one")).is_err());
        assert!(CallState::from_query(pairs("v=z")).is_err());
        assert!(CallState::from_query(pairs("c=9007199254740993.0")).is_err());
    }

    #[test]
    fn stages_have_stable_paths() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_path(stage.path()), Some(stage));
        }
        assert_eq!(Stage::from_path("menu"), Some(Stage::Menu));
        assert_eq!(Stage::from_path("nope"), None);
    }

    #[test]
    fn only_account_level_proof_covers_the_account() {
        assert!(Verified::PostalCode.covers_account());
        assert!(Verified::CallerId.covers_account());
        assert!(Verified::NotRequired.covers_account());
        assert!(!Verified::OrderNumber.covers_account());
        assert!(!Verified::No.covers_account());
    }
}
