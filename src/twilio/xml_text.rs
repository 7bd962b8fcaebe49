//! The one filter between data and TwiML: every value from Shopify or the caller that is written
//! into a TwiML document (text, attributes, Task JSON, `<Parameter>`s, SIP headers) loses the
//! characters XML 1.0 forbids and is escaped for XML. Owns no template and no parsing.
//!
//! XML 1.0 §2.2 (https://www.w3.org/TR/xml/#charsets): Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] |
//! [#xE000-#xFFFD] | [#x10000-#x10FFFF]; a forbidden character is not allowed even as a character
//! reference, so it cannot be escaped, only dropped.

use std::borrow::Cow;

/// True for a character XML 1.0 allows in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `text` without the characters XML 1.0 forbids (U+0000–U+001F other than tab, LF and CR;
/// U+FFFE, U+FFFF); borrowed when there were none.
pub fn xml_chars(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

/// `text` filtered by [`xml_chars`] and escaped for XML text and attribute values (`&`, `<`, `>`,
/// `"`, `'`); nothing else is touched, so a URL stays readable (`/twilio/voice/menu?n=2&amp;v=x`).
/// Runs of plain text are written whole (one write each, not one a character), and ASCII is
/// looked at byte by byte (only the rest is decoded to be checked).
pub fn escape_into(out: &mut impl std::fmt::Write, text: &str) -> std::fmt::Result {
    let bytes = text.as_bytes();
    let (mut plain_from, mut at) = (0, 0);
    while at < bytes.len() {
        let (replacement, len) = match bytes[at] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&apos;", 1),
            b'\t' | b'\n' | b'\r' | 0x20..=0x7f => {
                at += 1;
                continue;
            }
            0x00..=0x1f => ("", 1),
            _ => {
                let c = text[at..].chars().next().unwrap_or('\u{fffd}');
                if is_xml_char(c) {
                    at += c.len_utf8();
                    continue;
                }
                ("", c.len_utf8())
            }
        };
        out.write_str(&text[plain_from..at])?;
        out.write_str(replacement)?;
        at += len;
        plain_from = at;
    }
    out.write_str(&text[plain_from..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_dropped_and_the_rest_kept() {
        assert_eq!(xml_chars("Ann\u{8}e\u{1b}[0m"), "Anne[0m");
        assert_eq!(xml_chars("a\u{0}b\u{1f}c\u{fffe}d\u{ffff}e"), "abcde");
        assert_eq!(xml_chars("tab\tlf\ncr\r é 日本 🎉"), "tab\tlf\ncr\r é 日本 🎉");
        assert!(matches!(xml_chars("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaping_covers_the_five_specials_and_leaves_slashes_alone() {
        let mut out = String::new();
        escape_into(&mut out, "O'Brien & Sons <Ltd> \"q\" /twilio/voice?a=1&b=2\u{8}").unwrap();
        assert_eq!(out, "O&apos;Brien &amp; Sons &lt;Ltd&gt; &quot;q&quot; /twilio/voice?a=1&amp;b=2");
    }

    #[test]
    fn escaping_keeps_every_allowed_character_and_drops_the_forbidden_ones() {
        let text = "tab\tlf\ncr\r del\u{7f} é 日本 🎉\u{0}\u{1f}\u{fffe}x\u{ffff}<é>&";
        let mut out = String::new();
        escape_into(&mut out, text).unwrap();
        assert_eq!(out, "tab\tlf\ncr\r del\u{7f} é 日本 🎉x&lt;é&gt;&amp;");
        let mut by_char = String::new();
        for c in text.chars().filter(|c| is_xml_char(*c)) {
            match c {
                '&' => by_char.push_str("&amp;"),
                '<' => by_char.push_str("&lt;"),
                '>' => by_char.push_str("&gt;"),
                c => by_char.push(c),
            }
        }
        assert_eq!(out, by_char);
    }
}
