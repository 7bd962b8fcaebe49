//! Phone numbers as callers and Shopify give them, parsed into E.164 at the edge.
//! Owns normalisation and masking; never guesses a number it cannot parse.

use std::fmt;

use phonenumber::country;

/// A phone number in E.164 form (`+15551234567`), the only form the index and the cache use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a raw phone string could not become a [`PhoneNumber`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("no phone number in the text")]
    NotANumber,
    #[error("the number has no country code and no region to assume")]
    NoRegion,
}

impl PhoneNumber {
    /// Parses free text (`(555) 123-4567`, `+44 20 7946 0958`, `555-555-SHIP`) into E.164.
    /// `region` is an ISO 3166 alpha-2 code used when the text has no `+` country code.
    /// Letters are read as keypad digits, as libphonenumber does for vanity numbers.
    pub fn parse(raw: &str, region: Option<&str>) -> Result<Self, PhoneError> {
        let text = raw.trim();
        if text.is_empty() || !text.chars().any(|c| c.is_ascii_digit()) {
            return Err(PhoneError::NotANumber);
        }
        let region: Option<country::Id> = region.and_then(|r| r.trim().to_ascii_uppercase().parse().ok());
        if region.is_none() && !text.starts_with('+') && !text.starts_with("00") {
            return Err(PhoneError::NoRegion);
        }
        let keypad = keypad_digits(text);
        let number = phonenumber::parse(region, &keypad).map_err(|_| PhoneError::NotANumber)?;
        // E.164 is `+`, the country code and the national number (leading zeros kept), which is
        // what `number.format().mode(Mode::E164)` writes, after matching the national number
        // against every format of its region for a layout E.164 does not use (about a fifth of a
        // parse: issue 14).
        let e164 = format!("+{}{}", number.code().value(), number.national());
        if e164.len() < 8 || e164.len() > 16 {
            return Err(PhoneError::NotANumber);
        }
        Ok(PhoneNumber(e164))
    }

    /// Loads the phone-number metadata (libphonenumber's database and the patterns of the
    /// default region) now, so the first caller after a start does not wait for it.
    pub fn load_metadata(default_region: &str) {
        let _ = PhoneNumber::parse("(201) 555-0123", Some(default_region));
        let _ = PhoneNumber::parse("+1 201 555 0123", None);
    }

    /// Accepts a string that must already be E.164 (`+` then 7 to 15 digits).
    pub fn from_e164(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('+')?;
        let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| PhoneNumber(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form for logs: country code and last four digits (`+1•••••4567`).
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug is masked too, so a number never reaches a log by `{:?}`.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Letters on a phone keypad become their digits (`SHIP` → `7447`); the rest is kept.
fn keypad_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_ascii_uppercase() {
            'A'..='C' => '2',
            'D'..='F' => '3',
            'G'..='I' => '4',
            'J'..='L' => '5',
            'M'..='O' => '6',
            'P'..='S' => '7',
            'T'..='V' => '8',
            'W'..='Z' => '9',
            _ => c,
        })
        .collect()
}

/// Masks any phone-like text for logs: keeps a leading `+` and first digit and the last four,
/// with a fixed-width mask so the length does not show either.
pub fn mask_phone(raw: &str) -> String {
    let digits: Vec<char> = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() <= 4 {
        return "•••".to_string();
    }
    let last: String = digits[digits.len() - 4..].iter().collect();
    let hidden = "•••••";
    if raw.trim_start().starts_with('+') {
        format!("+{}{}{}", digits[0], hidden, last)
    } else {
        format!("{hidden}{last}")
    }
}

/// Masks an email for logs: first letter of the local part and the domain (`j•••@example.com`).
pub fn mask_email(raw: &str) -> String {
    match raw.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_string(),
    }
}

/// Masks every email and phone-like run (seven digits or more) in free text, such as an error
/// message that quotes a payload, before it reaches a log.
pub fn mask_pii(text: &str) -> String {
    mask_digit_runs(&mask_emails(text))
}

/// Masks each run of the characters an address is written with that holds an `@`: runs end at
/// anything else (space, comma, semicolon, quote, bracket), so every address of a list is masked.
fn mask_emails(text: &str) -> String {
    let is_address = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_address) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_address(c)).unwrap_or(rest.len());
        let run = &rest[..end];
        if run.contains('@') {
            let trimmed = run.trim_matches(|c: char| !c.is_alphanumeric());
            out.push_str(&run.replacen(trimmed, &mask_email(trimmed), 1));
        } else {
            out.push_str(run);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces runs of digits (with the separators phone numbers use) that hold 7+ digits.
fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    // Separators people write numbers with: ASCII ones, `/`, the Unicode hyphens and dashes
    // (U+2010–U+2015), the minus sign and the no-break spaces.
    let is_part = |c: char| {
        c.is_ascii_digit()
            || matches!(c, '+' | '(' | ')' | '-' | '.' | ' ' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}')
            || matches!(c, '\u{00A0}' | '\u{2007}' | '\u{202F}')
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || chars[i] == '+' {
            let mut j = i;
            while j < chars.len() && is_part(chars[j]) {
                j += 1;
            }
            let run: String = chars[i..j].iter().collect();
            let trailing = run.len() - run.trim_end_matches(|c: char| !c.is_ascii_digit()).len();
            let core = &run[..run.len() - trailing];
            if core.chars().filter(|c| c.is_ascii_digit()).count() >= 7 {
                out.push_str(&mask_phone(core));
                out.push_str(&run[run.len() - trailing..]);
            } else {
                out.push_str(&run);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(raw: &str, region: Option<&str>) -> Result<String, PhoneError> {
        PhoneNumber::parse(raw, region).map(|p| p.as_str().to_string())
    }

    #[test]
    fn every_address_and_number_in_a_dead_letters_error_is_masked() {
        let masked = mask_pii("customer emails: jane@example.com,joe@example.org;ann@example.net <bo@example.com>");
        for address in ["jane@", "joe@", "ann@", "bo@"] {
            assert!(!masked.contains(address), "{address} left in {masked}");
        }
        assert_eq!(masked.matches("•••@").count(), 4, "{masked}");
        for phone in ["555/123/4567", "555‐123‐4567", "555–123–4567", "+1 555\u{a0}123\u{a0}4567", "555−123−4567"]
        {
            let masked = mask_pii(&format!("phone {phone} is not valid"));
            assert!(!masked.contains("123"), "{phone}: {masked}");
            assert!(masked.ends_with("4567 is not valid"), "{phone}: {masked}");
        }
    }

    #[test]
    fn national_formats_use_the_region() {
        assert_eq!(e164("(555) 123-4567", Some("US")).unwrap(), "+15551234567");
        assert_eq!(e164("555.123.4567", Some("us")).unwrap(), "+15551234567");
        assert_eq!(e164("0161 496 0000", Some("GB")).unwrap(), "+441614960000");
    }

    #[test]
    fn international_formats_ignore_the_region() {
        assert_eq!(e164("+44 20 7946 0958", Some("US")).unwrap(), "+442079460958");
        assert_eq!(e164("+1 (415) 555-0132", None).unwrap(), "+14155550132");
        assert_eq!(e164("+15551234567", None).unwrap(), "+15551234567");
    }

    #[test]
    fn e164_is_written_as_libphonenumber_writes_it() {
        // Italian numbers keep their leading zero; a national prefix after the country code goes.
        let texts = [
            ("+39 06 1234 5678", None),
            ("06 1234 5678", Some("IT")),
            ("+44 (0)20 7946 0958", None),
            ("020 7946 0958", Some("GB")),
            ("+49 30 901820", None),
            ("+61 2 9374 4000", None),
            ("+81 3-1234-5678", None),
            ("+1 415 555 0132", None),
        ];
        for (text, region) in texts {
            let region_id = region.map(|r| r.parse::<country::Id>().unwrap());
            let library =
                phonenumber::parse(region_id, text).unwrap().format().mode(phonenumber::Mode::E164).to_string();
            assert_eq!(e164(text, region).unwrap(), library, "{text}");
        }
    }

    #[test]
    fn vanity_letters_are_keypad_digits() {
        assert_eq!(e164("555-555-SHIP", Some("US")).unwrap(), "+15555557447");
    }

    #[test]
    fn text_that_is_not_a_number_is_refused() {
        assert_eq!(e164("not a phone", Some("US")), Err(PhoneError::NotANumber));
        assert_eq!(e164("", Some("US")), Err(PhoneError::NotANumber));
        assert_eq!(e164("12", Some("US")), Err(PhoneError::NotANumber));
        assert_eq!(e164("555 1234", None), Err(PhoneError::NoRegion));
    }

    #[test]
    fn masks_keep_only_the_country_and_last_four() {
        assert_eq!(mask_phone("+15551234567"), "+1•••••4567");
        assert_eq!(PhoneNumber::from_e164("+15551234567").unwrap().masked(), "+1•••••4567");
        assert_eq!(format!("{:?}", PhoneNumber::from_e164("+15551234567").unwrap()), "PhoneNumber(+1•••••4567)");
        assert_eq!(mask_email("jane@example.com"), "j•••@example.com");
    }

    #[test]
    fn free_text_is_masked_before_logging() {
        let masked = mask_pii(r#"invalid type: string "+1 555 123 4567" for jane@example.com, order 1042"#);
        assert!(!masked.contains("123 4567") && !masked.contains("jane@"), "{masked}");
        assert!(masked.contains("4567") && masked.contains("order 1042"), "{masked}");
    }
}
