//! Proving who is calling, beyond one call: postal codes compared as they are keyed on a phone
//! (letters by their keypad digit), and the failures a customer or a calling number may have
//! within a window, across calls and instances, before only a person is offered. Never decides
//! what a caller hears (the flow does) and never keeps a postal code or a number in the clear.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{AttemptKind, Store, StoreError, Ts};

/// A postal code as a caller can key it: the keypad digit of every letter and digit (K→5, A→2,
/// B→2: ITU-T E.161, the letters printed on phone keys), spaces, dashes and anything else dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPostalCode {
    keys: String,
    /// A US ZIP+4 (`94107-1234`): its first five digits are enough.
    zip_plus_four: bool,
}

/// The keypad digit a character is keyed with, if any.
pub fn keypad_digit(c: char) -> Option<char> {
    Some(match c.to_ascii_uppercase() {
        d @ '0'..='9' => d,
        'A' | 'B' | 'C' => '2',
        'D' | 'E' | 'F' => '3',
        'G' | 'H' | 'I' => '4',
        'J' | 'K' | 'L' => '5',
        'M' | 'N' | 'O' => '6',
        'P' | 'Q' | 'R' | 'S' => '7',
        'T' | 'U' | 'V' => '8',
        'W' | 'X' | 'Y' | 'Z' => '9',
        _ => return None,
    })
}

impl KeyedPostalCode {
    /// The code on file as the caller would key it; `None` when that is under three keys (too
    /// little to prove anything).
    pub fn of(on_file: &str) -> Option<KeyedPostalCode> {
        let keys: String = on_file.chars().filter_map(keypad_digit).collect();
        let zip_plus_four = keys.len() == 9 && on_file.chars().all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
        (keys.len() >= 3).then_some(KeyedPostalCode { keys, zip_plus_four })
    }

    /// Does what the caller keyed (Twilio's `Digits`: 0-9, `*`, `#`) match? The whole code, or
    /// for a ZIP+4 its first five digits.
    pub fn matches(&self, keyed: &str) -> bool {
        let keyed: String = keyed.chars().filter(char::is_ascii_digit).collect();
        !keyed.is_empty()
            && (keyed == self.keys || (self.zip_plus_four && keyed.len() == 5 && self.keys.starts_with(&keyed)))
    }
}

/// What a failure counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The customer whose postal code was guessed.
    Customer(i64),
    /// An order keyed in without a customer on it.
    Order(i64),
    /// The calling number, as Twilio gave it.
    Number(String),
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Subject::Customer(id) => format!("customer:{id}"),
            Subject::Order(id) => format!("order:{id}"),
            Subject::Number(n) => format!("number:{n}"),
        }
    }

    /// For the agent's card: which limit was reached.
    pub fn as_str(&self) -> &'static str {
        match self {
            Subject::Customer(_) | Subject::Order(_) => "customer",
            Subject::Number(_) => "calling_number",
        }
    }

    /// The calling number as a subject, unless it has no digits (withheld callers do not share
    /// one counter that anyone could fill).
    pub fn number(from: &str) -> Option<Subject> {
        from.chars().any(|c| c.is_ascii_digit()).then(|| Subject::Number(from.to_string()))
    }
}

/// How many failed verifications a subject may have within a window.
#[derive(Clone)]
pub struct VerificationLimit {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub max_failures: u32,
    pub window: Duration,
}

impl VerificationLimit {
    fn window_start(&self) -> Ts {
        Ts::from(self.clock.now() - chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::days(1)))
    }

    /// The first subject that has used up its failures, if any.
    pub async fn exhausted<'a>(&self, subjects: &'a [Subject]) -> Result<Option<&'a Subject>, StoreError> {
        let since = self.window_start();
        for subject in subjects {
            let failures = self.store.failures_since(AttemptKind::PostalCode, &subject.key(), since).await?;
            if failures >= i64::from(self.max_failures) {
                return Ok(Some(subject));
            }
        }
        Ok(None)
    }

    /// Counts one failed verification against each subject.
    pub async fn record_failure(&self, subjects: &[Subject]) -> Result<(), StoreError> {
        let keys: Vec<String> = subjects.iter().map(Subject::key).collect();
        let now = Ts::from(self.clock.now());
        self.store.record_failure(AttemptKind::PostalCode, &keys, now, self.window_start()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> KeyedPostalCode {
        KeyedPostalCode::of(s).unwrap()
    }

    #[test]
    fn a_us_zip_is_its_digits_or_for_zip_plus_four_its_first_five() {
        assert!(code("94107").matches("94107"));
        assert!(code("94107").matches("94107#"));
        assert!(code("94107-1234").matches("94107"));
        assert!(code("94107-1234").matches("941071234"));
        assert!(!code("94107").matches("94108"));
        assert!(!code("94107").matches("9410"));
        assert!(!code("94107").matches(""));
    }

    #[test]
    fn a_canadian_code_is_keyed_with_its_letters_on_the_keypad() {
        // K1A 0B1: K→5, 1, A→2, 0, B→2, 1.
        assert!(code("K1A 0B1").matches("512021"));
        assert!(code("k1a0b1").matches("512021"));
        assert!(!code("K1A 0B1").matches("101"), "the letters are not dropped");
        assert!(!code("K1A 0B1").matches("512022"));
    }

    #[test]
    fn a_uk_code_is_keyed_with_its_letters_on_the_keypad() {
        // SW1A 1AA: S→7, W→9, 1, A→2, 1, A→2, A→2.
        assert!(code("SW1A 1AA").matches("7912122"));
        assert!(code("sw1a-1aa").matches("7912122"));
        assert!(!code("SW1A 1AA").matches("79121"), "no ZIP+4 shortcut for a UK code");
        assert!(!code("SW1A 1AA").matches("11"));
    }

    #[test]
    fn a_code_too_short_to_prove_anything_is_none() {
        assert_eq!(KeyedPostalCode::of("1-"), None);
        assert_eq!(KeyedPostalCode::of("  "), None);
    }
}
