//! What a caller said, turned into what the keypad would have said: the same `Input` for the same
//! question, so the call flow has one path for keys and speech. Knows a small, precise English and
//! Spanish vocabulary per question (menu choices, order numbers, postal codes, yes/no, and the
//! names of the languages, "español", which switch the call's language) and the ways Twilio's
//! speech recognition writes digits ("for" for 4, "to" for 2, "oh" for 0); hosts no speech model
//! (Twilio's `<Gather input="dtmf speech">` returns `SpeechResult` and `Confidence`). Anything it is
//! not sure of is `Unclear`, never a guess.

mod numbers;
mod spanish;
#[cfg(test)]
mod tests;

use super::flow::Input;
use crate::domain::Language;

/// The question the caller was answering: what their words may mean there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// The menu: 1 hear it again (where is my order), 2 other orders, 3 returns and refunds,
    /// 4 text me the tracking link, 5 leave a message, 6 text me the return label, 0 a person.
    Menu,
    /// An order number, said any way people say numbers.
    OrderNumber,
    /// A postal code, said as digits.
    PostalCode,
    /// Yes (1) or no (2).
    YesNo,
}

/// What an utterance was understood as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Understood {
    /// The keys the caller would have pressed.
    Keys(String),
    /// Nothing said, or only noise ("uh", "hello?"): as if no key was pressed.
    Nothing,
    /// Said something, but not sure what it means here (low confidence, or no match): ask again.
    Unclear,
    /// Asked for a language by name ("español", "English").
    Language(Language),
}

impl Understood {
    /// The flow's input for an answer that was understood; `None` when it was unclear.
    pub fn input(&self) -> Option<Input> {
        match self {
            Understood::Keys(keys) => Some(Input::Digits(keys.clone())),
            Understood::Nothing => Some(Input::Nothing),
            Understood::Language(language) => Some(Input::Language(*language)),
            Understood::Unclear => None,
        }
    }
}

/// Below this confidence (Twilio's `Confidence`, 0.0–1.0) an utterance is `Unclear`. Twilio
/// reports 0 when it has no estimate for a result, so 0 counts as unclear too.
pub const MIN_CONFIDENCE: f32 = 0.3;

/// The longest utterance read: a menu answer or an order number is a few words; the rest of a
/// 2,000-character transcript is not looked at.
const MAX_CHARS: usize = 200;

/// Understands `said` as an answer to `question`, said in `language` (the call's: the language
/// Twilio was asked to recognise). `confidence` is Twilio's, when it sent one.
pub fn understand(question: Question, language: Language, said: &str, confidence: Option<f32>) -> Understood {
    let words = words(said);
    let filler = |w: &&str| match language {
        Language::En => is_filler(w),
        Language::Es => spanish::is_filler(w),
    };
    let meaningful: Vec<&str> = words.iter().map(String::as_str).filter(|w| !filler(w)).collect();
    if meaningful.is_empty() {
        return Understood::Nothing;
    }
    if confidence.is_some_and(|c| !c.is_finite() || c < MIN_CONFIDENCE) {
        return Understood::Unclear;
    }
    if let Some(named) = language_named(&meaningful) {
        return Understood::Language(named);
    }
    let keys = match (question, language) {
        (Question::Menu, Language::En) => menu_choice(&meaningful),
        (Question::Menu, Language::Es) => spanish::menu_choice(&meaningful),
        (Question::OrderNumber | Question::PostalCode, Language::En) => numbers::digits(&meaningful),
        (Question::OrderNumber | Question::PostalCode, Language::Es) => {
            let english = spanish::number_words(&meaningful);
            numbers::digits(&english.iter().map(String::as_str).collect::<Vec<_>>())
        }
        (Question::YesNo, Language::En) => yes_or_no(&meaningful),
        (Question::YesNo, Language::Es) => spanish::yes_or_no(&meaningful),
    };
    keys.map_or(Understood::Unclear, Understood::Keys)
}

/// A short answer that names a language ("español", "en español por favor", "English"): the
/// caller asks for it, whatever the question. A longer sentence is about something else.
fn language_named(words: &[&str]) -> Option<Language> {
    if words.len() > 4 {
        return None;
    }
    words.iter().find_map(|w| match *w {
        "espanol" | "spanish" | "castellano" => Some(Language::Es),
        "english" | "ingles" => Some(Language::En),
        _ => None,
    })
}

/// Lower-case words without punctuation or accents, apostrophes dropped ("where's" → "wheres"), hyphens
/// split ("forty-two" → "forty", "two"), digits kept together with letters apart ("SO1001A" →
/// "so", "1001", "a").
fn words(said: &str) -> Vec<String> {
    let cut: String = said.chars().take(MAX_CHARS).collect();
    let mut words = Vec::new();
    let split = |c: char| c.is_whitespace() || matches!(c, '-' | ',' | '.' | '?' | '!' | '¿' | '¡');
    for raw in cut.split(split) {
        let word: String =
            raw.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).map(without_accent).collect();
        let mut run = String::new();
        for c in word.chars() {
            if !run.is_empty() && run.chars().last().is_some_and(|l| l.is_ascii_digit()) != c.is_ascii_digit() {
                words.push(std::mem::take(&mut run));
            }
            run.push(c);
        }
        if !run.is_empty() {
            words.push(run);
        }
    }
    words
}

/// Spanish letters without their accents ("devolución" → "devolucion", "español" → "espanol"):
/// Twilio writes them either way, so the vocabulary is matched without them.
fn without_accent(c: char) -> char {
    match c {
        'á' | 'à' => 'a',
        'é' | 'è' => 'e',
        'í' | 'ì' => 'i',
        'ó' | 'ò' => 'o',
        'ú' | 'ù' | 'ü' => 'u',
        'ñ' => 'n',
        other => other,
    }
}

/// Words that carry no answer: hesitation, greetings, politeness.
fn is_filler(word: &str) -> bool {
    matches!(
        word,
        "uh" | "um"
            | "umm"
            | "uhm"
            | "er"
            | "erm"
            | "hmm"
            | "hm"
            | "ah"
            | "hello"
            | "hi"
            | "hey"
            | "please"
            | "so"
            | "well"
            | "like"
            | "just"
            | "okay"
            | "ok"
            | "thanks"
            | "thank"
            | "you"
    )
}

/// The menu key the words ask for. Asking for a person wins over anything else said ("a person
/// about my refund" is a transfer); then texts, returns, other orders, the order status.
fn menu_choice(words: &[&str]) -> Option<String> {
    let has = |w: &str| words.contains(&w);
    let phrase = |p: &[&str]| words.windows(p.len()).any(|window| window == p);
    if ["agent", "person", "human", "representative", "operator", "someone", "somebody", "rep", "associate"]
        .iter()
        .any(|w| has(w))
        || phrase(&["customer", "service"])
        || phrase(&["real", "person"])
        || phrase(&["talk", "to"])
        || phrase(&["speak", "to"])
        || phrase(&["speak", "with"])
    {
        return Some("0".into());
    }
    if phrase(&["leave", "a", "message"])
        || phrase(&["leave", "a", "voicemail"])
        || phrase(&["leave", "message"])
        || has("voicemail")
    {
        return Some("5".into());
    }
    if has("label") {
        return Some("6".into());
    }
    if (has("text") || has("sms") || has("message")) && !has("return") && !has("returns") {
        return Some("4".into());
    }
    if phrase(&["send", "me"]) && (has("link") || has("tracking")) {
        return Some("4".into());
    }
    if ["return", "returns", "returning", "refund", "refunds", "refunded", "exchange", "money"].iter().any(|w| has(w))
        || phrase(&["send", "it", "back"])
    {
        return Some("3".into());
    }
    if phrase(&["other", "orders"])
        || phrase(&["other", "order"])
        || phrase(&["another", "order"])
        || phrase(&["previous", "orders"])
        || phrase(&["older", "orders"])
        || phrase(&["all", "my", "orders"])
        || phrase(&["different", "order"])
    {
        return Some("2".into());
    }
    if [
        "repeat", "again", "status", "where", "wheres", "track", "tracking", "package", "parcel", "delivery",
        "shipping",
    ]
    .iter()
    .any(|w| has(w))
        || phrase(&["my", "order"])
        || phrase(&["come", "again"])
    {
        return Some("1".into());
    }
    // A key said as a word or written as a digit ("one", "zero", "press two", "2").
    let key = |w: &&str| {
        numbers::keypad_word(w).or_else(|| w.parse::<u8>().ok().filter(|d| *d < 10).map(|d| char::from(b'0' + d)))
    };
    match words.iter().rev().find_map(key) {
        Some(key @ ('0'..='6')) if words.len() <= 3 => Some(key.to_string()),
        _ => None,
    }
}

fn yes_or_no(words: &[&str]) -> Option<String> {
    let yes = ["yes", "yeah", "yep", "yup", "sure", "correct", "right", "absolutely", "definitely", "affirmative"];
    let no = ["no", "nope", "nah", "wrong", "negative", "incorrect"];
    // "not right" is a no.
    let negated = words.contains(&"not") || words.contains(&"isnt");
    let said_no = negated || words.iter().any(|w| no.contains(w));
    let said_yes = !negated && words.iter().any(|w| yes.contains(w));
    match (said_yes, said_no) {
        (true, false) => Some("1".into()),
        (false, true) => Some("2".into()),
        _ => None,
    }
}
