//! The utterance table: what callers say, as Twilio writes it, and what each must mean.

use super::{Question, Understood, understand};
use crate::domain::Language;

const EN: Language = Language::En;
const ES: Language = Language::Es;

const MENU: Question = Question::Menu;
const ORDER: Question = Question::OrderNumber;
const POSTAL: Question = Question::PostalCode;
const YES_NO: Question = Question::YesNo;

/// (question, what Twilio wrote, what it must mean: keys, "" for nothing, "?" for unclear)
const TABLE: &[(Question, &str, &str)] = &[
    // The order status (menu 1)
    (MENU, "where's my order", "1"),
    (MENU, "Where is my order?", "1"),
    (MENU, "where is my package", "1"),
    (MENU, "Where's my package?", "1"),
    (MENU, "order status", "1"),
    (MENU, "status", "1"),
    (MENU, "the status of my order", "1"),
    (MENU, "track my order", "1"),
    (MENU, "tracking", "1"),
    (MENU, "I want to track my parcel", "1"),
    (MENU, "when will my delivery arrive", "1"),
    (MENU, "shipping", "1"),
    (MENU, "repeat", "1"),
    (MENU, "repeat that", "1"),
    (MENU, "can you repeat that please", "1"),
    (MENU, "say that again", "1"),
    (MENU, "again", "1"),
    (MENU, "come again", "1"),
    (MENU, "um where's my order", "1"),
    (MENU, "uh, order status please", "1"),
    (MENU, "Hello? Where is my order?", "1"),
    (MENU, "one", "1"),
    (MENU, "press one", "1"),
    (MENU, "won", "1"),
    (MENU, "1", "1"),
    (MENU, "my order", "1"),
    // Other orders (menu 2)
    (MENU, "my other orders", "2"),
    (MENU, "other orders", "2"),
    (MENU, "other order", "2"),
    (MENU, "another order", "2"),
    (MENU, "a different order", "2"),
    (MENU, "my previous orders", "2"),
    (MENU, "older orders", "2"),
    (MENU, "all my orders", "2"),
    (MENU, "what about my other orders", "2"),
    (MENU, "two", "2"),
    (MENU, "press two", "2"),
    (MENU, "too", "2"),
    (MENU, "2", "2"),
    // Returns and refunds (menu 3)
    (MENU, "returns", "3"),
    (MENU, "return", "3"),
    (MENU, "I want to return something", "3"),
    (MENU, "refund", "3"),
    (MENU, "where is my refund", "3"),
    (MENU, "my refund", "3"),
    (MENU, "refunds", "3"),
    (MENU, "I was refunded but", "3"),
    (MENU, "exchange", "3"),
    (MENU, "I'd like to exchange an item", "3"),
    (MENU, "how do I send it back", "3"),
    (MENU, "I want my money back", "3"),
    (MENU, "returning an item", "3"),
    (MENU, "three", "3"),
    (MENU, "3", "3"),
    // The tracking link by text (menu 4)
    (MENU, "text me the link", "4"),
    (MENU, "text me", "4"),
    (MENU, "send me a text", "4"),
    (MENU, "send me the tracking link", "4"),
    (MENU, "can you text me the tracking number", "4"),
    (MENU, "send me an SMS", "4"),
    (MENU, "four", "4"),
    (MENU, "press four", "4"),
    (MENU, "4", "4"),
    // A message for the team (menu 5; the flow takes it as 0 while closed with voicemail on)
    (MENU, "leave a message", "5"),
    (MENU, "I'd like to leave a message", "5"),
    (MENU, "can I leave a voicemail", "5"),
    (MENU, "voicemail", "5"),
    (MENU, "five", "5"),
    // The return label by text (menu 6, offered after returns)
    (MENU, "text me the return label", "6"),
    (MENU, "send me the label", "6"),
    (MENU, "I need my return label", "6"),
    (MENU, "where's the label", "6"),
    (MENU, "six", "6"),
    // A person (menu 0)
    (MENU, "agent", "0"),
    (MENU, "an agent", "0"),
    (MENU, "a person", "0"),
    (MENU, "person", "0"),
    (MENU, "representative", "0"),
    (MENU, "a representative please", "0"),
    (MENU, "operator", "0"),
    (MENU, "human", "0"),
    (MENU, "a real person", "0"),
    (MENU, "talk to someone", "0"),
    (MENU, "I want to talk to somebody", "0"),
    (MENU, "speak to a human", "0"),
    (MENU, "can I speak with someone", "0"),
    (MENU, "customer service", "0"),
    (MENU, "rep", "0"),
    (MENU, "agent agent agent", "0"),
    (MENU, "AGENT!", "0"),
    (MENU, "I need to talk to a person about my refund", "0"),
    (MENU, "a person about my order", "0"),
    (MENU, "zero", "0"),
    (MENU, "press zero", "0"),
    (MENU, "0", "0"),
    // Nothing said, or only noise
    (MENU, "", ""),
    (MENU, "   ", ""),
    (MENU, "uh", ""),
    (MENU, "um", ""),
    (MENU, "uh um", ""),
    (MENU, "hello?", ""),
    (MENU, "Hello? Hello?", ""),
    (MENU, "hmm", ""),
    (MENU, "okay", ""),
    (MENU, "thank you", ""),
    (MENU, "...", ""),
    // Said, but not a menu choice
    (MENU, "banana", "?"),
    (MENU, "what", "?"),
    (MENU, "I don't know", "?"),
    (MENU, "blah blah blah", "?"),
    (MENU, "the weather is nice today", "?"),
    (MENU, "seven", "?"),
    (MENU, "nine", "?"),
    (MENU, "press nine", "?"),
    (MENU, "cancel my subscription", "?"),
    // Order numbers, said every way people say them
    (ORDER, "1042", "1042"),
    (ORDER, "10 42", "1042"),
    (ORDER, "ten forty-two", "1042"),
    (ORDER, "ten forty two", "1042"),
    (ORDER, "Ten forty two.", "1042"),
    (ORDER, "one oh four two", "1042"),
    (ORDER, "one zero four two", "1042"),
    (ORDER, "one o four two", "1042"),
    (ORDER, "1 0 4 2", "1042"),
    (ORDER, "order number 1042", "1042"),
    (ORDER, "order number ten forty two", "1042"),
    (ORDER, "it's 1042", "1042"),
    (ORDER, "It's ten forty-two", "1042"),
    (ORDER, "number 1042", "1042"),
    (ORDER, "#1042", "1042"),
    (ORDER, "hash 1042", "1042"),
    (ORDER, "pound ten forty two", "1042"),
    (ORDER, "one thousand forty two", "1042"),
    (ORDER, "one thousand and forty two", "1042"),
    (ORDER, "um 1042", "1042"),
    (ORDER, "uh ten forty two", "1042"),
    (ORDER, "oh, it's 1042", "1042"),
    (ORDER, "I think it's 1042", "1042"),
    (ORDER, "it's S O 1001 A", "1001"),
    (ORDER, "SO1001A", "1001"),
    (ORDER, "S O one thousand one A", "1001"),
    (ORDER, "1001", "1001"),
    (ORDER, "ten oh one", "1001"),
    (ORDER, "one oh oh one", "1001"),
    (ORDER, "ten zero one", "1001"),
    (ORDER, "1,001", "1001"),
    (ORDER, "twelve hundred", "1200"),
    (ORDER, "twelve hundred thirty four", "1234"),
    (ORDER, "twelve thirty four", "1234"),
    (ORDER, "one two three four", "1234"),
    (ORDER, "one thousand two hundred thirty four", "1234"),
    (ORDER, "fifteen hundred", "1500"),
    (ORDER, "fifteen hundred and five", "1505"),
    (ORDER, "nineteen oh five", "1905"),
    (ORDER, "nineteen zero five", "1905"),
    (ORDER, "twenty twenty six", "2026"),
    (ORDER, "two thousand twenty six", "2026"),
    (ORDER, "forty two", "42"),
    (ORDER, "forty-two", "42"),
    (ORDER, "fourty two", "42"),
    (ORDER, "five", "5"),
    (ORDER, "ninety nine ninety nine", "9999"),
    (ORDER, "nine nine nine nine", "9999"),
    (ORDER, "double four one two", "4412"),
    (ORDER, "one double oh two", "1002"),
    (ORDER, "one for two", "142"),
    (ORDER, "ten for two", "1042"),
    (ORDER, "one to three", "123"),
    (ORDER, "one too three", "123"),
    (ORDER, "ate ate", "88"),
    (ORDER, "one won one", "111"),
    (ORDER, "sixty one oh seven", "6107"),
    (ORDER, "thirty three thirty three", "3333"),
    (ORDER, "eleven eleven", "1111"),
    (ORDER, "seventeen seventy six", "1776"),
    (ORDER, "eighty eight", "88"),
    (ORDER, "one hundred", "100"),
    (ORDER, "a hundred and one", "101"),
    (ORDER, "three hundred twelve", "312"),
    (ORDER, "order 5001", "5001"),
    (ORDER, "my order number is 5001", "5001"),
    (ORDER, "the number is fifty oh one", "5001"),
    (ORDER, "I'd like to check order 1042", "1042"),
    (ORDER, "", ""),
    (ORDER, "um", ""),
    (ORDER, "hello?", ""),
    (ORDER, "I don't know", "?"),
    (ORDER, "I don't have it", "?"),
    (ORDER, "where is my order", "?"),
    (ORDER, "banana", "?"),
    (ORDER, "oh", "?"),
    (ORDER, "to", "?"),
    // Postal codes, as digits
    (POSTAL, "94107", "94107"),
    (POSTAL, "9 4 1 0 7", "94107"),
    (POSTAL, "nine four one oh seven", "94107"),
    (POSTAL, "nine four one zero seven", "94107"),
    (POSTAL, "ninety four one oh seven", "94107"),
    (POSTAL, "nine for one oh seven", "94107"),
    (POSTAL, "my zip code is 94107", "94107"),
    (POSTAL, "zip 94107", "94107"),
    (POSTAL, "it's nine four one oh seven", "94107"),
    (POSTAL, "one oh oh oh one", "10001"),
    (POSTAL, "one zero zero zero one", "10001"),
    (POSTAL, "ten thousand one", "10001"),
    (POSTAL, "zero two one three nine", "02139"),
    (POSTAL, "oh two one three nine", "2139"),
    (POSTAL, "0 2 1 3 9", "02139"),
    (POSTAL, "six oh six one one", "60611"),
    (POSTAL, "nine oh two one oh", "90210"),
    (POSTAL, "90210", "90210"),
    (POSTAL, "seven five two oh one", "75201"),
    (POSTAL, "three three one three one", "33131"),
    (POSTAL, "double three one three one", "33131"),
    (POSTAL, "eight oh two oh two", "80202"),
    (POSTAL, "nine eight one oh one", "98101"),
    (POSTAL, "two oh oh oh one", "20001"),
    (POSTAL, "um nine four one oh seven", "94107"),
    (POSTAL, "", ""),
    (POSTAL, "uh", ""),
    (POSTAL, "I don't remember", "?"),
    (POSTAL, "no idea", "?"),
    // Yes and no
    (YES_NO, "yes", "1"),
    (YES_NO, "yeah", "1"),
    (YES_NO, "yep", "1"),
    (YES_NO, "yup", "1"),
    (YES_NO, "sure", "1"),
    (YES_NO, "correct", "1"),
    (YES_NO, "that's right", "1"),
    (YES_NO, "yes please", "1"),
    (YES_NO, "absolutely", "1"),
    (YES_NO, "no", "2"),
    (YES_NO, "nope", "2"),
    (YES_NO, "nah", "2"),
    (YES_NO, "no thanks", "2"),
    (YES_NO, "that's not right", "2"),
    (YES_NO, "wrong", "2"),
    (YES_NO, "yes no", "?"),
    (YES_NO, "maybe", "?"),
    (YES_NO, "", ""),
    (YES_NO, "um", ""),
];

fn meaning(expected: &str) -> Understood {
    match expected {
        "" => Understood::Nothing,
        "?" => Understood::Unclear,
        keys => Understood::Keys(keys.to_string()),
    }
}

#[test]
fn the_table_is_understood_as_written() {
    assert!(TABLE.len() >= 200, "at least 200 utterances: {}", TABLE.len());
    let wrong: Vec<String> = TABLE
        .iter()
        .filter_map(|(question, said, expected)| {
            let got = understand(*question, EN, said, Some(0.9));
            (got != meaning(expected)).then(|| format!("{question:?} {said:?}: {got:?}, expected {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} misunderstood:\n{}", wrong.len(), TABLE.len(), wrong.join("\n"));
}

#[test]
fn low_or_missing_confidence_is_unclear_but_silence_is_nothing() {
    assert_eq!(understand(MENU, EN, "agent", Some(0.1)), Understood::Unclear);
    assert_eq!(understand(MENU, EN, "agent", Some(0.0)), Understood::Unclear, "Twilio's 0: no estimate");
    assert_eq!(understand(MENU, EN, "agent", Some(f32::NAN)), Understood::Unclear);
    assert_eq!(understand(MENU, EN, "agent", None), Understood::Keys("0".into()), "no confidence sent: words decide");
    assert_eq!(understand(MENU, EN, "", Some(0.0)), Understood::Nothing);
}

#[test]
fn a_two_thousand_character_utterance_is_read_only_at_its_start() {
    let long = format!("agent {}", "blah ".repeat(400));
    assert!(long.len() >= 2000);
    assert_eq!(understand(MENU, EN, &long, Some(0.9)), Understood::Keys("0".into()));
    let digits = "1".repeat(2000);
    let Understood::Keys(keys) = understand(ORDER, EN, &digits, Some(0.9)) else { panic!("digits are digits") };
    assert!(keys.len() <= 200, "cut to the first 200 characters");
    assert_eq!(understand(MENU, EN, &"é".repeat(2000), Some(0.9)), Understood::Unclear);
}

#[test]
fn understood_answers_are_the_flow_input_the_keypad_gives() {
    use crate::ivr::Input;
    assert_eq!(understand(ORDER, EN, "ten forty two", None).input(), Some(Input::Digits("1042".into())));
    assert_eq!(understand(ORDER, EN, "um", None).input(), Some(Input::Nothing));
    assert_eq!(understand(ORDER, EN, "banana", None).input(), None);
}

/// Lo que dicen las personas que llaman en español, como lo escribe Twilio (language="es-US"), y
/// lo que debe significar: keys, "" for nothing, "?" for unclear, "es"/"en" for a language asked
/// for by name.
const SPANISH: &[(Question, &str, &str)] = &[
    // El estado del pedido (1)
    (MENU, "¿dónde está mi pedido?", "1"),
    (MENU, "donde esta mi pedido", "1"),
    (MENU, "Dónde está mi paquete", "1"),
    (MENU, "estado de mi pedido", "1"),
    (MENU, "el estado de mi orden", "1"),
    (MENU, "quiero rastrear mi pedido", "1"),
    (MENU, "seguimiento", "1"),
    (MENU, "¿cuándo llega mi envío?", "1"),
    (MENU, "la entrega", "1"),
    (MENU, "repetir", "1"),
    (MENU, "repita por favor", "1"),
    (MENU, "¿me lo puede repetir?", "1"),
    (MENU, "otra vez", "1"),
    (MENU, "de nuevo", "1"),
    (MENU, "eh, mi pedido", "1"),
    (MENU, "uno", "1"),
    (MENU, "oprima uno", "1"),
    (MENU, "1", "1"),
    // Otros pedidos (2)
    (MENU, "otros pedidos", "2"),
    (MENU, "mis otros pedidos", "2"),
    (MENU, "otro pedido", "2"),
    (MENU, "quiero saber de otra orden", "2"),
    (MENU, "mis pedidos anteriores", "2"),
    (MENU, "todos mis pedidos", "2"),
    (MENU, "dos", "2"),
    // Devoluciones y reembolsos (3)
    (MENU, "devoluciones", "3"),
    (MENU, "devolución", "3"),
    (MENU, "devolucion", "3"),
    (MENU, "quiero devolver algo", "3"),
    (MENU, "reembolso", "3"),
    (MENU, "¿dónde está mi reembolso?", "3"),
    (MENU, "mi dinero", "3"),
    (MENU, "un cambio", "3"),
    (MENU, "tres", "3"),
    // El enlace por mensaje (4)
    (MENU, "mándeme un mensaje de texto", "4"),
    (MENU, "por mensaje", "4"),
    (MENU, "envíeme el enlace", "4"),
    (MENU, "cuatro", "4"),
    (MENU, "quiero dejar un mensaje", "5"),
    (MENU, "buzón de voz", "5"),
    (MENU, "mándeme la guía de devolución", "6"),
    (MENU, "la etiqueta de devolución", "6"),
    (MENU, "seis", "6"),
    // Una persona (0)
    (MENU, "agente", "0"),
    (MENU, "un agente por favor", "0"),
    (MENU, "una persona", "0"),
    (MENU, "quiero hablar con una persona", "0"),
    (MENU, "representante", "0"),
    (MENU, "operador", "0"),
    (MENU, "operadora", "0"),
    (MENU, "servicio al cliente", "0"),
    (MENU, "hablar con alguien", "0"),
    (MENU, "un asesor", "0"),
    (MENU, "una persona sobre mi reembolso", "0"),
    (MENU, "cero", "0"),
    // Ruido y lo que no se entiende
    (MENU, "eh", ""),
    (MENU, "este...", ""),
    (MENU, "¿bueno? ¿hola?", ""),
    (MENU, "mmm, pues", ""),
    (MENU, "gracias", ""),
    (MENU, "plátano", "?"),
    (MENU, "nueve ocho siete seis", "?"),
    // El idioma, por su nombre
    (MENU, "español", "es"),
    (MENU, "en español por favor", "es"),
    (MENU, "Spanish", "es"),
    (MENU, "inglés", "en"),
    (ORDER, "español", "es"),
    // Números de pedido
    (ORDER, "mil cuarenta y dos", "1042"),
    (ORDER, "diez cuarenta y dos", "1042"),
    (ORDER, "uno cero cuatro dos", "1042"),
    (ORDER, "el número de pedido es uno cero cuatro dos", "1042"),
    (ORDER, "mil uno", "1001"),
    (ORDER, "mil", "1000"),
    (ORDER, "dos mil veinticinco", "2025"),
    (ORDER, "ciento veinte", "120"),
    (ORDER, "mil doscientos treinta y cuatro", "1234"),
    (ORDER, "novecientos noventa y nueve", "999"),
    (ORDER, "diez dieciséis", "1016"),
    (ORDER, "veinte cero cinco", "2005"),
    (ORDER, "es el 1042", "1042"),
    (ORDER, "S O mil uno A", "1001"),
    (ORDER, "cuarenta y dos", "42"),
    (ORDER, "eh, mil cuarenta y dos", "1042"),
    (ORDER, "no sé", "?"),
    (ORDER, "este", ""),
    // Códigos postales
    (POSTAL, "nueve cuatro uno cero siete", "94107"),
    (POSTAL, "cero dos uno uno cero", "02110"),
    (POSTAL, "noventa y cuatro ciento siete", "94107"),
    (POSTAL, "9 4 1 0 7", "94107"),
    // Sí o no
    (YES_NO, "sí", "1"),
    (YES_NO, "si", "1"),
    (YES_NO, "claro que sí", "1"),
    (YES_NO, "correcto", "1"),
    (YES_NO, "así es", "1"),
    (YES_NO, "no", "2"),
    (YES_NO, "no, gracias", "2"),
    (YES_NO, "negativo", "2"),
    (YES_NO, "sí no", "?"),
    (YES_NO, "quizás", "?"),
];

fn spanish_meaning(expected: &str) -> Understood {
    match expected {
        "es" => Understood::Language(Language::Es),
        "en" => Understood::Language(Language::En),
        other => meaning(other),
    }
}

#[test]
fn the_spanish_table_is_understood_as_written() {
    assert!(SPANISH.len() >= 60, "at least 60 Spanish utterances: {}", SPANISH.len());
    let wrong: Vec<String> = SPANISH
        .iter()
        .filter_map(|(question, said, expected)| {
            let got = understand(*question, ES, said, Some(0.9));
            (got != spanish_meaning(expected)).then(|| format!("{question:?} {said:?}: {got:?}, expected {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} misunderstood:\n{}", wrong.len(), SPANISH.len(), wrong.join("\n"));
}

#[test]
fn a_language_is_asked_for_by_name_in_either_language() {
    assert_eq!(understand(MENU, EN, "Spanish please", Some(0.9)), Understood::Language(Language::Es));
    assert_eq!(understand(MENU, EN, "español", Some(0.9)), Understood::Language(Language::Es));
    assert_eq!(understand(MENU, ES, "English", Some(0.9)), Understood::Language(Language::En));
    // A sentence that mentions a language is about something else.
    assert_eq!(understand(MENU, EN, "my order from the spanish shop is late", Some(0.9)), Understood::Keys("1".into()));
}
