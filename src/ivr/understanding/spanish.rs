//! The Spanish vocabulary: menu choices ("¿dónde está mi pedido?", "devoluciones", "agente"),
//! yes/no, hesitation, and numbers as Spanish speakers say them ("mil cuarenta y dos", "diez
//! cuarenta y dos", "uno cero cuatro dos"), which are rewritten as the English number words the
//! one number reader (`numbers`) already understands. Words arrive lower-case and without accents.

/// Words that carry no answer: hesitation, greetings, politeness.
pub fn is_filler(word: &str) -> bool {
    matches!(
        word,
        "eh" | "em"
            | "mm"
            | "mmm"
            | "ah"
            | "este"
            | "pues"
            | "bueno"
            | "hola"
            | "oiga"
            | "alo"
            | "alo?"
            | "bueno?"
            | "por"
            | "favor"
            | "gracias"
            | "okay"
            | "ok"
            | "vale"
            | "digame"
            | "mire"
    )
}

/// The menu key the words ask for, in the same order of precedence as English: a person, a
/// text, returns, other orders, the order's status, then a key said as a number.
pub fn menu_choice(words: &[&str]) -> Option<String> {
    let has = |w: &str| words.contains(&w);
    let phrase = |p: &[&str]| words.windows(p.len()).any(|window| window == p);
    if [
        "agente",
        "persona",
        "representante",
        "operador",
        "operadora",
        "humano",
        "alguien",
        "asesor",
        "asesora",
        "agent",
    ]
    .iter()
    .any(|w| has(w))
        || phrase(&["servicio", "al", "cliente"])
        || phrase(&["hablar", "con"])
    {
        return Some("0".into());
    }
    if phrase(&["dejar", "un", "mensaje"])
        || phrase(&["dejarle", "un", "mensaje"])
        || phrase(&["dejar", "mensaje"])
        || phrase(&["buzon", "de", "voz"])
    {
        return Some("5".into());
    }
    if has("guia") || has("etiqueta") {
        return Some("6".into());
    }
    let returns = ["devolucion", "devoluciones", "devolver", "reembolso", "reembolsos", "cambio", "dinero", "regresar"];
    if (has("mensaje") || has("texto") || has("sms")) && !returns.iter().any(|w| has(w)) {
        return Some("4".into());
    }
    if (has("enlace") || has("link")) && (has("mande") || has("mandeme") || has("envie") || has("envieme")) {
        return Some("4".into());
    }
    if returns.iter().any(|w| has(w)) {
        return Some("3".into());
    }
    if phrase(&["otros", "pedidos"])
        || phrase(&["otro", "pedido"])
        || phrase(&["otra", "orden"])
        || phrase(&["otras", "ordenes"])
        || phrase(&["pedidos", "anteriores"])
        || phrase(&["todos", "mis", "pedidos"])
        || phrase(&["pedido", "diferente"])
    {
        return Some("2".into());
    }
    if [
        "repetir",
        "repita",
        "repite",
        "repitame",
        "estado",
        "donde",
        "rastrear",
        "rastreo",
        "seguimiento",
        "paquete",
        "envio",
        "entrega",
    ]
    .iter()
    .any(|w| has(w))
        || phrase(&["otra", "vez"])
        || phrase(&["de", "nuevo"])
        || phrase(&["mi", "pedido"])
        || phrase(&["mi", "orden"])
    {
        return Some("1".into());
    }
    // A key said as a word or written as a digit ("uno", "cero", "oprima dos", "2").
    let key = |w: &&str| {
        unit(w)
            .map(|d| char::from(b'0' + d as u8))
            .or_else(|| w.parse::<u8>().ok().filter(|d| *d < 10).map(|d| char::from(b'0' + d)))
    };
    match words.iter().rev().find_map(key) {
        Some(key @ ('0'..='6')) if words.len() <= 3 => Some(key.to_string()),
        _ => None,
    }
}

pub fn yes_or_no(words: &[&str]) -> Option<String> {
    let yes = ["si", "claro", "correcto", "exacto", "afirmativo", "efectivamente", "eso"];
    let said_no = words.iter().any(|w| matches!(*w, "no" | "negativo" | "incorrecto"));
    let said_yes = words.iter().any(|w| yes.contains(w)) || words.windows(2).any(|p| p == ["asi", "es"]);
    match (said_yes, said_no) {
        (true, false) => Some("1".into()),
        (false, true) => Some("2".into()),
        _ => None,
    }
}

fn unit(word: &str) -> Option<u64> {
    Some(match word {
        "cero" => 0,
        "uno" | "una" | "un" => 1,
        "dos" => 2,
        "tres" => 3,
        "cuatro" => 4,
        "cinco" => 5,
        "seis" => 6,
        "siete" => 7,
        "ocho" => 8,
        "nueve" => 9,
        _ => return None,
    })
}

fn teen_or_twenty(word: &str) -> Option<u64> {
    Some(match word {
        "diez" => 10,
        "once" => 11,
        "doce" => 12,
        "trece" => 13,
        "catorce" => 14,
        "quince" => 15,
        "dieciseis" => 16,
        "diecisiete" => 17,
        "dieciocho" => 18,
        "diecinueve" => 19,
        "veintiuno" | "veintiun" | "veintiuna" => 21,
        "veintidos" => 22,
        "veintitres" => 23,
        "veinticuatro" => 24,
        "veinticinco" => 25,
        "veintiseis" => 26,
        "veintisiete" => 27,
        "veintiocho" => 28,
        "veintinueve" => 29,
        _ => return None,
    })
}

fn tens(word: &str) -> Option<u64> {
    Some(match word {
        "veinte" => 20,
        "treinta" => 30,
        "cuarenta" => 40,
        "cincuenta" => 50,
        "sesenta" => 60,
        "setenta" => 70,
        "ochenta" => 80,
        "noventa" => 90,
        _ => return None,
    })
}

fn hundreds(word: &str) -> Option<u64> {
    Some(match word {
        "cien" | "ciento" => 1,
        "doscientos" | "doscientas" => 2,
        "trescientos" | "trescientas" => 3,
        "cuatrocientos" | "cuatrocientas" => 4,
        "quinientos" | "quinientas" => 5,
        "seiscientos" | "seiscientas" => 6,
        "setecientos" | "setecientas" => 7,
        "ochocientos" | "ochocientas" => 8,
        "novecientos" | "novecientas" => 9,
        _ => return None,
    })
}

const ENGLISH_UNITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const ENGLISH_TEENS: [&str; 10] =
    ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
const ENGLISH_TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

fn english_below_100(n: u64, out: &mut Vec<String>) {
    match n {
        0..=9 => out.push(ENGLISH_UNITS[n as usize].into()),
        10..=19 => out.push(ENGLISH_TEENS[(n - 10) as usize].into()),
        _ => {
            out.push(ENGLISH_TENS[(n / 10 - 2) as usize].into());
            if !n.is_multiple_of(10) {
                out.push(ENGLISH_UNITS[(n % 10) as usize].into());
            }
        }
    }
}

/// Spanish number words as the English ones of the same value, so "mil cuarenta y dos" reads as
/// "thousand forty two" (1042) and "diez cuarenta y dos" as "ten forty two" (1042). "y" between
/// a tens word and a unit joins them ("cuarenta y dos"); any other "y", and "o" ("or"), is a
/// plain word. Words that are not numbers pass unchanged (they end the number being said).
pub fn number_words(words: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let after_tens = i > 0 && tens(words[i - 1]).is_some();
        let before_unit = words.get(i + 1).is_some_and(|w| unit(w).is_some_and(|u| u > 0));
        match *word {
            "y" if after_tens && before_unit => {}
            "y" => out.push("and".into()),
            "o" => out.push("or".into()),
            "mil" => out.push("thousand".into()),
            w if hundreds(w).is_some() => {
                out.push(ENGLISH_UNITS[hundreds(w).unwrap_or(1) as usize].into());
                out.push("hundred".into());
            }
            w if unit(w).is_some() => english_below_100(unit(w).unwrap_or(0), &mut out),
            w if teen_or_twenty(w).is_some() => english_below_100(teen_or_twenty(w).unwrap_or(0), &mut out),
            w if tens(w).is_some() => english_below_100(tens(w).unwrap_or(0), &mut out),
            // English homophones of digits mean nothing in Spanish: kept out of the number.
            "to" | "too" | "for" | "won" | "ate" | "oh" => out.push("_".into()),
            other => out.push(other.to_string()),
        }
    }
    out
}
