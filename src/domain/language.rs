//! The languages orderline speaks, and the words it builds in each: days, months, opening times
//! and money amounts said the way a native speaker says them on the phone. Owns the word rules
//! only; never which languages a line offers (that is `config`) nor the sentences (templates).

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

/// A language orderline can say dates, times and amounts in (by the primary subtag of a BCP-47
/// tag: `es-US`, `es-MX` and `es` are all Spanish).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    En,
    Es,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Es];

    /// The language of a BCP-47 tag or a Shopify locale (`es-MX`, `es`, `en_US`), by its primary
    /// subtag; none for a language orderline has no words for.
    pub fn of_tag(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Language::En),
            "es" => Some(Language::Es),
            _ => None,
        }
    }

    /// The primary subtag: `en`, `es` (the call state's `lang=`).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
        }
    }

    /// The language's name in English, for the agent's card ("Spanish").
    pub fn english_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Es => "Spanish",
        }
    }

    pub fn weekday(self, day: Weekday) -> &'static str {
        let i = day.num_days_from_monday() as usize;
        match self {
            Language::En => ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][i],
            Language::Es => ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"][i],
        }
    }

    /// The month's name; `month` is 1–12 (anything else reads as December).
    pub fn month(self, month: u32) -> &'static str {
        let i = (month.clamp(1, 12) - 1) as usize;
        match self {
            Language::En => [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ][i],
            Language::Es => [
                "enero",
                "febrero",
                "marzo",
                "abril",
                "mayo",
                "junio",
                "julio",
                "agosto",
                "septiembre",
                "octubre",
                "noviembre",
                "diciembre",
            ][i],
        }
    }

    /// A day as said after "on" / "el": "Tuesday, November 17", "martes 17 de noviembre".
    pub fn day(self, date: NaiveDate) -> String {
        let weekday = self.weekday(date.weekday());
        let month = self.month(date.month());
        match self {
            Language::En => format!("{weekday}, {month} {}", date.day()),
            Language::Es => format!("{weekday} {} de {month}", date.day()),
        }
    }

    /// A clock time: "9 AM", "9:30 AM", "12 PM"; "las 9 de la mañana", "la 1 de la tarde", "las
    /// 12 del mediodía", "las 8:30 de la noche".
    pub fn time(self, hour: u32, minute: u32) -> String {
        let hour = hour % 24;
        match self {
            Language::En => {
                let period = if hour < 12 { "AM" } else { "PM" };
                let h = match hour % 12 {
                    0 => 12,
                    h => h,
                };
                if minute == 0 { format!("{h} {period}") } else { format!("{h}:{minute:02} {period}") }
            }
            Language::Es => {
                let part = match hour {
                    0..=5 => "de la madrugada",
                    6..=11 => "de la mañana",
                    12 => "del mediodía",
                    13..=19 => "de la tarde",
                    _ => "de la noche",
                };
                let h = match hour % 12 {
                    0 => 12,
                    h => h,
                };
                let article = if h == 1 { "la" } else { "las" };
                if minute == 0 { format!("{article} {h} {part}") } else { format!("{article} {h}:{minute:02} {part}") }
            }
        }
    }

    /// When something happens, relative to today: "today at 1 PM", "tomorrow at 9:30 AM",
    /// "Monday at 9 AM" (within the week), "Monday, June 16 at 12 PM"; "hoy a la 1 de la tarde",
    /// "mañana a las 9:30 de la mañana", "el lunes a las 9 de la mañana", "el lunes 16 de junio a
    /// las 12 del mediodía".
    pub fn day_and_time(self, date: NaiveDate, today: NaiveDate, hour: u32, minute: u32) -> String {
        let time = self.time(hour, minute);
        match (self, (date - today).num_days()) {
            (Language::En, 0) => format!("today at {time}"),
            (Language::En, 1) => format!("tomorrow at {time}"),
            (Language::En, 2..=6) => format!("{} at {time}", self.weekday(date.weekday())),
            (Language::En, _) => format!("{} at {time}", self.day(date)),
            (Language::Es, 0) => format!("hoy a {time}"),
            (Language::Es, 1) => format!("mañana a {time}"),
            (Language::Es, 2..=6) => format!("el {} a {time}", self.weekday(date.weekday())),
            (Language::Es, _) => format!("el {} a {time}", self.day(date)),
        }
    }

    /// A money amount as Shopify gives it ("21.23", the currency's code) as a voice reads it well
    /// and an agent reads it at a glance: "$21.23", "£12.00", "€5.50" (text-to-speech says the
    /// symbol's currency); other currencies with a name in words, "21 Canadian dollars and 23
    /// cents", "1200 yen"; "21 dólares con 23 centavos", "12 libras". A currency without a name
    /// here, or an amount that is not a plain decimal, as Shopify wrote it: "21.23 CHF", "21,23 CHF".
    pub fn money(self, amount: &str, currency: Option<&str>) -> String {
        let amount = amount.trim();
        let code = currency.map(|c| c.trim().to_ascii_uppercase());
        let code = code.as_deref().unwrap_or("USD");
        if self == Language::En {
            match code {
                "USD" => return format!("${amount}"),
                "GBP" => return format!("£{amount}"),
                "EUR" => return format!("€{amount}"),
                _ => {}
            }
        }
        let named = CURRENCY_NAMES.iter().find(|(c, _, _)| *c == code).map(|(_, en, es)| match self {
            Language::En => en,
            Language::Es => es,
        });
        match (named, plain_amount(amount)) {
            (Some(names), Some((whole, minor))) => {
                let unit = if whole == 1 { names.one } else { names.many };
                let and = match self {
                    Language::En => "and",
                    Language::Es => "con",
                };
                match names.minor {
                    _ if minor == 0 => format!("{whole} {unit}"),
                    Some((one, _)) if minor == 1 => format!("{whole} {unit} {and} 1 {one}"),
                    Some((_, many)) => format!("{whole} {unit} {and} {minor} {many}"),
                    // No minor unit (yen): as Shopify wrote it.
                    None => format!("{amount} {unit}"),
                }
            }
            _ => match self {
                Language::En => format!("{amount} {code}"),
                Language::Es => format!("{} {code}", amount.replace('.', ",")),
            },
        }
    }
}

/// A money amount as Shopify writes it ("21.23", "1200", "0.5") when it is a plain decimal with
/// at most two decimals: its whole units and hundredths; none otherwise ("1e3", "-4.00", "4.005").
pub fn plain_amount(amount: &str) -> Option<(u64, u32)> {
    let amount = amount.trim();
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !plain(whole) || !plain(fraction) || fraction.len() > 2 {
        return None;
    }
    Some((whole.parse().ok()?, format!("{fraction:0<2}").parse().ok()?))
}

/// How a currency is named in words: its unit (one, several) and minor unit, if it has one.
struct CurrencyName {
    one: &'static str,
    many: &'static str,
    minor: Option<(&'static str, &'static str)>,
}

const fn named(one: &'static str, many: &'static str, minor: Option<(&'static str, &'static str)>) -> CurrencyName {
    CurrencyName { one, many, minor }
}

/// The currencies [`Language::money`] names in words, by ISO 4217 code: English (after the
/// symbols it writes for USD, GBP and EUR), Spanish.
const CURRENCY_NAMES: &[(&str, CurrencyName, CurrencyName)] = &[
    (
        "USD",
        named("dollar", "dollars", Some(("cent", "cents"))),
        named("dólar", "dólares", Some(("centavo", "centavos"))),
    ),
    (
        "CAD",
        named("Canadian dollar", "Canadian dollars", Some(("cent", "cents"))),
        named("dólar canadiense", "dólares canadienses", Some(("centavo", "centavos"))),
    ),
    (
        "AUD",
        named("Australian dollar", "Australian dollars", Some(("cent", "cents"))),
        named("dólar australiano", "dólares australianos", Some(("centavo", "centavos"))),
    ),
    (
        "NZD",
        named("New Zealand dollar", "New Zealand dollars", Some(("cent", "cents"))),
        named("dólar neozelandés", "dólares neozelandeses", Some(("centavo", "centavos"))),
    ),
    ("EUR", named("euro", "euros", Some(("cent", "cents"))), named("euro", "euros", Some(("centavo", "centavos")))),
    (
        "GBP",
        named("pound", "pounds", Some(("penny", "pence"))),
        named("libra", "libras", Some(("penique", "peniques"))),
    ),
    (
        "MXN",
        named("peso", "pesos", Some(("centavo", "centavos"))),
        named("peso", "pesos", Some(("centavo", "centavos"))),
    ),
    ("JPY", named("yen", "yen", None), named("yen", "yenes", None)),
];

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn tags_and_locales_are_read_by_their_primary_subtag() {
        for tag in ["es", "es-MX", "es-US", "ES_es", " es-419 "] {
            assert_eq!(Language::of_tag(tag), Some(Language::Es), "{tag}");
        }
        assert_eq!(Language::of_tag("en-GB"), Some(Language::En));
        assert_eq!(Language::of_tag("fr-CA"), None);
        assert_eq!(Language::of_tag(""), None);
    }

    #[test]
    fn days_are_said_natively() {
        assert_eq!(Language::En.day(date("2026-11-17")), "Tuesday, November 17");
        assert_eq!(Language::Es.day(date("2026-11-17")), "martes 17 de noviembre");
        assert_eq!(Language::Es.day(date("2026-01-01")), "jueves 1 de enero");
        assert_eq!(Language::Es.day(date("2026-09-12")), "sábado 12 de septiembre");
        assert_eq!(Language::Es.day(date("2026-12-02")), "miércoles 2 de diciembre");
    }

    #[test]
    fn times_are_said_natively() {
        assert_eq!(Language::En.time(9, 0), "9 AM");
        assert_eq!(Language::En.time(0, 15), "12:15 AM");
        assert_eq!(Language::En.time(12, 0), "12 PM");
        assert_eq!(Language::Es.time(9, 0), "las 9 de la mañana");
        assert_eq!(Language::Es.time(9, 30), "las 9:30 de la mañana");
        assert_eq!(Language::Es.time(13, 0), "la 1 de la tarde");
        assert_eq!(Language::Es.time(12, 0), "las 12 del mediodía");
        assert_eq!(Language::Es.time(20, 5), "las 8:05 de la noche");
        assert_eq!(Language::Es.time(0, 15), "las 12:15 de la madrugada");
        assert_eq!(Language::Es.time(1, 0), "la 1 de la madrugada");
    }

    #[test]
    fn openings_are_relative_to_today() {
        let today = date("2025-06-06");
        assert_eq!(Language::Es.day_and_time(today, today, 13, 0), "hoy a la 1 de la tarde");
        assert_eq!(Language::Es.day_and_time(date("2025-06-07"), today, 9, 30), "mañana a las 9:30 de la mañana");
        assert_eq!(
            Language::Es.day_and_time(date("2025-06-16"), today, 12, 0),
            "el lunes 16 de junio a las 12 del mediodía"
        );
        assert_eq!(Language::En.day_and_time(date("2025-06-16"), today, 12, 0), "Monday, June 16 at 12 PM");
        assert_eq!(Language::En.day_and_time(today, today, 13, 0), "today at 1 PM");
        assert_eq!(Language::Es.day_and_time(date("2025-06-09"), today, 9, 0), "el lunes a las 9 de la mañana");
        assert_eq!(Language::En.day_and_time(date("2025-06-09"), today, 9, 0), "Monday at 9 AM");
    }

    #[test]
    fn money_is_said_natively() {
        assert_eq!(Language::En.money("21.23", Some("USD")), "$21.23");
        assert_eq!(Language::En.money("12.00", Some("GBP")), "£12.00");
        assert_eq!(Language::En.money("5.50", Some("eur")), "€5.50");
        assert_eq!(Language::En.money("21.23", Some("CAD")), "21 Canadian dollars and 23 cents");
        assert_eq!(Language::En.money("1.01", Some("AUD")), "1 Australian dollar and 1 cent");
        assert_eq!(Language::En.money("350.00", Some("MXN")), "350 pesos");
        assert_eq!(Language::En.money("1200", Some("JPY")), "1200 yen");
        assert_eq!(Language::En.money("21.23", Some("CHF")), "21.23 CHF", "no name here: as Shopify wrote it");
        assert_eq!(Language::En.money("1e3", Some("CAD")), "1e3 CAD");
        assert_eq!(Language::Es.money("21.23", Some("USD")), "21 dólares con 23 centavos");
        assert_eq!(Language::Es.money("1.00", None), "1 dólar");
        assert_eq!(Language::Es.money("59.00", Some("USD")), "59 dólares");
        assert_eq!(Language::Es.money("350.50", Some("MXN")), "350 pesos con 50 centavos");
        assert_eq!(Language::Es.money("0.01", Some("EUR")), "0 euros con 1 centavo");
        assert_eq!(Language::Es.money("21.23", Some("CAD")), "21 dólares canadienses con 23 centavos");
        assert_eq!(Language::Es.money("12.01", Some("GBP")), "12 libras con 1 penique");
        assert_eq!(Language::Es.money("1500", Some("JPY")), "1500 yenes");
        assert_eq!(Language::Es.money("21.23", Some("CHF")), "21,23 CHF");
    }
}
