//! TwiML as data: a parser that checks a document the way Twilio reads it (well-formed XML, one
//! `<Response>`, known verbs, allowed nesting) and a small model to assert on and to walk.
//! It owns no rendering and no HTTP; an error always names the 1-based line at fault.

use quick_xml::errors::IllFormedError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use quick_xml::{Decoder, XmlVersion};

/// A parsed TwiML document: the verbs inside `<Response>`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    pub verbs: Vec<Verb>,
}

/// One element: a verb (`Say`, `Gather`, …), a noun (`Number`, `Stream`, …) or SSML inside `<Say>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verb {
    pub name: String,
    /// Attributes in document order, entities decoded.
    pub attrs: Vec<(String, String)>,
    /// Character data directly inside the element, entities decoded, whitespace as written. For
    /// `<Say>` and the SSML inside it, the text of nested SSML elements is included.
    pub text: String,
    pub children: Vec<Verb>,
}

impl Verb {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The text with runs of whitespace collapsed to one space and trimmed: what `<Say>` speaks.
    pub fn spoken(&self) -> String {
        collapse_whitespace(&self.text)
    }

    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Verb)) {
        visit(self);
        for child in &self.children {
            child.walk(visit);
        }
    }
}

impl Document {
    /// The text of every `<Say>` in document order (nested ones too), whitespace collapsed.
    pub fn says(&self) -> Vec<String> {
        self.find_all("Say").into_iter().map(Verb::spoken).collect()
    }

    /// Every `<Say>` joined with a space.
    pub fn spoken(&self) -> String {
        self.says().into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// The first element named `name`, depth-first.
    pub fn find(&self, name: &str) -> Option<&Verb> {
        self.find_all(name).into_iter().next()
    }

    /// Every element named `name`, depth-first.
    pub fn find_all(&self, name: &str) -> Vec<&Verb> {
        let mut found = Vec::new();
        for verb in &self.verbs {
            verb.walk(&mut |v| {
                if v.name == name {
                    found.push(v)
                }
            });
        }
        found
    }
}

/// Why a document is not TwiML Twilio would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TwimlError {
    pub line: usize,
    pub message: String,
}

/// Verbs allowed directly inside `<Response>` (twilio.com/docs/voice/twiml: Connect, Dial,
/// Enqueue, Gather, Hangup, Leave, Pause, Pay, Play, Record, Redirect, Refer, Reject, Say, Start,
/// Stop; Message/Sms for messaging).
pub const VERBS: &[&str] = &[
    "Say", "Play", "Pause", "Gather", "Dial", "Enqueue", "Redirect", "Hangup", "Reject", "Record", "Leave", "Connect",
    "Refer", "Message", "Sms", "Start", "Stop", "Pay",
];

/// What an element may contain, besides comments.
struct Content {
    children: &'static [&'static str],
    text: bool,
}

const fn content(children: &'static [&'static str], text: bool) -> Content {
    Content { children, text }
}

/// The content model of every TwiML element except `<Say>` (which takes text and any SSML).
fn content_of(name: &str) -> Option<Content> {
    Some(match name {
        "Response" => content(VERBS, false),
        "Gather" => content(&["Say", "Play", "Pause"], false),
        "Dial" => content(&["Number", "Client", "Sip", "Queue", "Conference", "Application"], true),
        "Enqueue" => content(&["Task"], true),
        "Connect" => {
            content(&["Stream", "Room", "Conversation", "VirtualAgent", "ConversationRelay", "Assistant"], false)
        }
        // <Start>/<Stop>: forked streams, SIPREC, real-time transcription (…/twiml/stream, …/siprec,
        // …/transcription); <Pay> takes <Prompt>s and <Parameter>s (…/twiml/pay).
        "Start" | "Stop" => content(&["Stream", "Siprec", "Transcription"], false),
        "Siprec" | "Transcription" => content(&["Parameter"], false),
        "Pay" => content(&["Prompt", "Parameter"], false),
        "Prompt" => content(&["Say", "Play", "Pause"], false),
        "Application" => content(&["ApplicationSid", "Parameter"], true),
        "ConversationRelay" | "Assistant" => content(&["Language", "Parameter"], false),
        "Stream" => content(&["Parameter"], false),
        "Client" => content(&["Identity", "Parameter"], true),
        "VirtualAgent" => content(&["Config", "Parameter"], false),
        "Refer" => content(&["Sip"], false),
        "Message" => content(&["Body", "Media"], true),
        "Play" | "Redirect" | "Sms" | "Number" | "Sip" | "Queue" | "Task" | "Identity" | "Conference" | "Room"
        | "Body" | "Media" | "ApplicationSid" => content(&[], true),
        "Pause" | "Hangup" | "Reject" | "Leave" | "Record" | "Parameter" | "Config" | "Conversation" | "Language" => {
            content(&[], false)
        }
        _ => return None,
    })
}

/// SSML elements that separate words when spoken (a pause, a paragraph, a sentence).
fn ssml_separates_words(name: &str) -> bool {
    matches!(name, "break" | "p" | "s")
}

struct Open {
    verb: Verb,
    line: usize,
    /// True for `<Say>` and every SSML element inside it.
    speech: bool,
}

/// Parses and validates a TwiML document.
pub fn parse(xml: &str) -> Result<Document, TwimlError> {
    let document = walk(xml)?;
    conformant(xml)?;
    Ok(document)
}

/// Reads the document's events into the model, checking TwiML's rules as it goes.
fn walk(xml: &str) -> Result<Document, TwimlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_comments = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut document: Option<Document> = None;
    let mut seen_markup = false;
    loop {
        let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                let hint = match e {
                    quick_xml::Error::IllFormed(IllFormedError::UnclosedReference) => {
                        " (an unescaped '&'? write &amp;)"
                    }
                    _ => "",
                };
                return Err(error(xml, at, format!("malformed XML: {e}{hint}")));
            }
        };
        match event {
            Event::Decl(_) => {
                if seen_markup {
                    return Err(error(xml, position, "the XML declaration must come first"));
                }
                seen_markup = true;
            }
            Event::DocType(_) => return Err(error(xml, position, "a DOCTYPE is not allowed in TwiML")),
            Event::PI(_) | Event::Comment(_) => seen_markup = true,
            Event::Start(start) => {
                seen_markup = true;
                let open = open_element(xml, position, &start, &stack, document.is_some(), reader.decoder())?;
                stack.push(open);
            }
            Event::Empty(start) => {
                seen_markup = true;
                let open = open_element(xml, position, &start, &stack, document.is_some(), reader.decoder())?;
                stack.push(open);
                close_element(&mut stack, &mut document);
            }
            Event::End(_) => close_element(&mut stack, &mut document),
            Event::Text(raw) => {
                // Errors point at the first character that is not blank, counted in the raw input.
                let leading = raw.iter().take_while(|b| b.is_ascii_whitespace()).count();
                let text = raw.xml10_content().map_err(|e| error(xml, position, format!("malformed text: {e}")))?;
                add_text(xml, position + leading, &text, &mut stack)?;
            }
            Event::CData(data) => {
                let text = data.xml10_content().map_err(|e| error(xml, position, format!("malformed CDATA: {e}")))?;
                add_text(xml, position, &text, &mut stack)?;
            }
            Event::GeneralRef(reference) => {
                let text = resolve_reference(&reference).map_err(|message| error(xml, position, message))?;
                add_text(xml, position, &text, &mut stack)?;
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        let message = format!("<{}> is never closed", open.verb.name);
        return Err(TwimlError { line: open.line, message });
    }
    document.ok_or_else(|| error(xml, xml.len(), "no <Response> element"))
}

/// The document as a conformant XML 1.0 parser reads it. quick-xml (which the walk below uses
/// for its events) accepts characters XML 1.0 forbids, raw or as references (its `parse_number`
/// rejects only `&#0;`); roxmltree checks every character against XML 1.0's Char production, as
/// the parser Twilio runs does (a document it rejects is error 12100). DTDs are refused too.
/// Twilio takes Amazon's SSML extensions (`<amazon:effect>`, twilio.com/docs/voice/twiml/say/
/// text-speech#amazon-polly-ssml) without a namespace declaration, so the check declares that
/// prefix on `<Response>` (same line: error lines stay right) when the document does not.
fn conformant(xml: &str) -> Result<(), TwimlError> {
    let options = roxmltree::ParsingOptions { allow_dtd: false, ..roxmltree::ParsingOptions::default() };
    let declared;
    let text = match xml.find("<Response") {
        Some(at) if !xml.contains("xmlns:amazon") => {
            let end = at + "<Response".len();
            declared = format!("{} xmlns:amazon=\"urn:twilio:ssml:amazon\"{}", &xml[..end], &xml[end..]);
            declared.as_str()
        }
        _ => xml,
    };
    match roxmltree::Document::parse_with_options(text, options) {
        Ok(_) => Ok(()),
        Err(e) => {
            let hint = match e {
                roxmltree::Error::NonXmlChar(c, _) => format!(
                    " (U+{:04X} is not allowed in XML 1.0, not even escaped: drop it before rendering)",
                    u32::from(c)
                ),
                roxmltree::Error::DtdDetected => " (a DOCTYPE is not allowed in TwiML)".to_string(),
                _ => String::new(),
            };
            Err(TwimlError { line: e.pos().row as usize, message: format!("malformed XML: {e}{hint}") })
        }
    }
}

fn open_element(
    xml: &str,
    position: usize,
    start: &BytesStart<'_>,
    stack: &[Open],
    root_done: bool,
    decoder: Decoder,
) -> Result<Open, TwimlError> {
    let line = line_at(xml, position);
    let fail = |message: String| TwimlError { line, message };
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| fail("an element name is not UTF-8".into()))?
        .to_string();
    if !is_xml_name(&name) {
        return Err(fail(format!("malformed XML: invalid element name {name:?} (an unescaped '<' in text?)")));
    }
    let speech = match stack.last() {
        None if root_done => {
            return Err(fail(format!("a second root element <{name}>: only one <Response> is allowed")));
        }
        None if name != "Response" => return Err(fail(format!("the root element must be <Response>, not <{name}>"))),
        None => false,
        Some(parent) if parent.speech => true,
        Some(parent) if parent.verb.name == "Response" => {
            if !VERBS.contains(&name.as_str()) {
                return Err(fail(format!("unknown verb <{name}>")));
            }
            name == "Say"
        }
        Some(parent) => {
            let allowed = content_of(&parent.verb.name).map(|c| c.children).unwrap_or(&[]);
            if !allowed.contains(&name.as_str()) {
                return Err(fail(format!("<{name}> is not allowed inside <{}>", parent.verb.name)));
            }
            name == "Say"
        }
    };
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| fail(format!("malformed attribute in <{name}>: {e}")))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if attr.value.contains(&b'<') {
            return Err(fail(format!("unescaped '<' in attribute {key} of <{name}>")));
        }
        let value = attr
            .decoded_and_normalized_value(XmlVersion::Implicit1_0, decoder)
            .map_err(|e| fail(format!("malformed attribute {key} of <{name}>: {e} (an unescaped '&'?)")))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Open { verb: Verb { name, attrs, ..Verb::default() }, line, speech })
}

fn close_element(stack: &mut Vec<Open>, document: &mut Option<Document>) {
    // quick-xml checks that end tags match, so an End always closes the top of the stack.
    let Some(closed) = stack.pop() else { return };
    match stack.last_mut() {
        Some(parent) => {
            if closed.speech && parent.speech {
                let separate = ssml_separates_words(&closed.verb.name);
                if separate {
                    parent.verb.text.push(' ');
                }
                parent.verb.text.push_str(&closed.verb.text);
                if separate {
                    parent.verb.text.push(' ');
                }
            }
            parent.verb.children.push(closed.verb);
        }
        None => *document = Some(Document { verbs: closed.verb.children }),
    }
}

fn add_text(xml: &str, position: usize, text: &str, stack: &mut [Open]) -> Result<(), TwimlError> {
    let blank = text.trim().is_empty();
    let Some(top) = stack.last_mut() else {
        return if blank {
            Ok(())
        } else {
            Err(error(xml, position, format!("text {} outside <Response>", quote(text))))
        };
    };
    if !top.speech {
        let allowed = content_of(&top.verb.name).is_some_and(|c| c.text);
        if !allowed && !blank {
            let message = if top.verb.name == "Response" {
                format!("text {} outside a verb", quote(text))
            } else {
                format!("<{}> cannot contain text (found {})", top.verb.name, quote(text))
            };
            return Err(error(xml, position, message));
        }
        if !allowed {
            return Ok(());
        }
    }
    top.verb.text.push_str(text);
    Ok(())
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            Ok(None) => Err("malformed character reference".into()),
            Err(e) => Err(format!("malformed character reference: {e}")),
        };
    }
    let name = reference.decode().map_err(|e| format!("malformed entity reference: {e}"))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name}; (an unescaped '&'?)"))
}

/// XML's Name production, restricted to what a hand-written or templated document uses.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

fn quote(text: &str) -> String {
    let collapsed = collapse_whitespace(text);
    match collapsed.char_indices().nth(40) {
        Some((i, _)) => format!("{:?}…", &collapsed[..i]),
        None => format!("{collapsed:?}"),
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_at(xml: &str, position: usize) -> usize {
    let end = position.min(xml.len());
    xml.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

fn error(xml: &str, position: usize, message: impl Into<String>) -> TwimlError {
    TwimlError { line: line_at(xml, position), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(xml: &str) -> TwimlError {
        match parse(xml) {
            Ok(doc) => panic!("expected an error, parsed {doc:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_verbs_attributes_and_nesting_in_order() {
        let doc = parse(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say voice="Polly.Joanna">Welcome back.</Say>
  <Gather action="/twilio/voice/menu?n=1" numDigits="1">
    <Say>Press 1 for your order.</Say>
    <Pause length="1"/>
  </Gather>
  <Dial callerId="+18005550100"><Number>+15551234567</Number></Dial>
</Response>"#,
        )
        .unwrap();
        let names: Vec<&str> = doc.verbs.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["Say", "Gather", "Dial"]);
        assert_eq!(doc.verbs[0].attr("voice"), Some("Polly.Joanna"));
        assert_eq!(doc.verbs[0].attr("language"), None);
        let gather = doc.find("Gather").unwrap();
        assert_eq!(gather.attr("action"), Some("/twilio/voice/menu?n=1"));
        assert_eq!(gather.children.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["Say", "Pause"]);
        assert_eq!(doc.find("Pause").unwrap().attr("length"), Some("1"));
        assert_eq!(doc.find("Number").unwrap().text, "+15551234567");
        assert_eq!(doc.says(), ["Welcome back.", "Press 1 for your order."]);
        assert_eq!(doc.spoken(), "Welcome back. Press 1 for your order.");
        assert_eq!(doc.find_all("Say").len(), 2);
        assert!(doc.find("Hangup").is_none());
    }

    #[test]
    fn the_declaration_is_optional_and_an_empty_response_is_valid() {
        assert_eq!(parse("<Response/>").unwrap().verbs, vec![]);
        assert_eq!(parse("<Response></Response>\n").unwrap().verbs, vec![]);
        assert_eq!(parse("<Response><Hangup/></Response>").unwrap().verbs[0].name, "Hangup");
        assert_eq!(parse("<!-- greeting -->\n<Response><!-- none --></Response>").unwrap().verbs, vec![]);
    }

    #[test]
    fn entities_are_decoded_in_text_and_attributes() {
        let doc = parse(
            "<Response><Say>O&apos;Brien &amp; Sons &lt;Ltd&gt;</Say>\
             <Redirect method=\"POST\">/twilio/voice/step?a=1&amp;b=&quot;2&quot;</Redirect>\
             <Say>caf&#233; &#x263A;</Say><Play loop=\"&#50;\">https://x/a.mp3</Play></Response>",
        )
        .unwrap();
        assert_eq!(doc.says(), ["O'Brien & Sons <Ltd>", "café ☺"]);
        assert_eq!(doc.find("Redirect").unwrap().text, "/twilio/voice/step?a=1&b=\"2\"");
        assert_eq!(doc.find("Play").unwrap().attr("loop"), Some("2"));
        let doc = parse(r#"<Response><Gather action="/m?a=1&amp;b=O&apos;B"/></Response>"#).unwrap();
        assert_eq!(doc.verbs[0].attr("action"), Some("/m?a=1&b=O'B"));
        let doc = parse("<Response><Say><![CDATA[a < b & c]]></Say></Response>").unwrap();
        assert_eq!(doc.says(), ["a < b & c"]);
    }

    #[test]
    fn an_unescaped_ampersand_is_an_error_on_its_line() {
        let e = err("<Response>\n  <Say>Smith & Sons</Say>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("unescaped '&'"), "{e}");
        let e = err("<Response>\r\n  <Say>one</Say>\r\n  <Say>Smith & Sons</Say>\r\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        let e = err("<Response>\n<Say>one</Say>\n<Say>Tom &amp; Jerry &amp Co</Say>\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        let e = err("<Response>\n\n<Gather action=\"/m?a=1&b=2\"/>\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().starts_with("line 3: "), "{e}");
        let e = err("<Response><Say>&nbsp;</Say></Response>");
        assert!(e.message.contains("nbsp"), "{e}");
    }

    #[test]
    fn an_unescaped_less_than_is_an_error_on_its_line() {
        let e = err("<Response>\n  <Say>one</Say>\n  <Say>1 < 2</Say>\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        let e = err("<Response>\n  <Say>a <b</Say>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("<Response>\n\n\n  <Play loop=\"<2\">x</Play>\n</Response>");
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn malformed_xml_names_the_line() {
        let e = err("<Response>\n  <Say>hi</Gather>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("<Response>\n  <Say>hi</Say>\n");
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.contains("<Response> is never closed"), "{e}");
        let e = err("<Response>\n  <Say>hi</Say>\n</Response>\n</Response>");
        assert_eq!(e.line, 4, "{e}");
        let e = err("<Response>\n  <Pause length=\"1\" length=\"2\"/>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("<Response>\n  <Say voice=Polly>hi</Say>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("");
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.contains("no <Response>"), "{e}");
    }

    #[test]
    fn the_root_must_be_one_response() {
        let e = err("<?xml version=\"1.0\"?>\n<Reply><Say>hi</Say></Reply>");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("<Response>") && e.message.contains("<Reply>"), "{e}");
        let e = err("<Response/>\n<Response/>");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("only one"), "{e}");
        let e = err("<Response>\n</Response>\n<Say>late</Say>");
        assert_eq!(e.line, 3, "{e}");
        let e = err("<Say>hi</Say>");
        assert!(e.message.contains("<Say>"), "{e}");
        let e = err("<Response/>\n<?xml version=\"1.0\"?>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("<!DOCTYPE Response [<!ENTITY x \"y\">]>\n<Response/>");
        assert!(e.message.contains("DOCTYPE"), "{e}");
    }

    #[test]
    fn an_unknown_verb_is_named() {
        let e = err("<Response>\n  <Say>hi</Say>\n  <Speak>hi</Speak>\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.message, "unknown verb <Speak>");
        // Verbs are case-sensitive, as Twilio reads them.
        let e = err("<Response><say>hi</say></Response>");
        assert_eq!(e.message, "unknown verb <say>");
        // A noun is not a verb at the top level.
        let e = err("<Response><Number>+15551234567</Number></Response>");
        assert_eq!(e.message, "unknown verb <Number>");
    }

    #[test]
    fn every_top_level_verb_is_accepted() {
        for verb in VERBS {
            let doc = parse(&format!("<Response><{verb}/></Response>")).unwrap();
            assert_eq!(doc.verbs[0].name, *verb);
        }
    }

    #[test]
    fn text_outside_a_verb_is_an_error() {
        let e = err("<Response>\n  hello\n  <Hangup/>\n</Response>");
        assert_eq!(e.line, 2, "{e}");
        let e = err("<Response>\r\n\r\n  hello\r\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("outside a verb") && e.message.contains("hello"), "{e}");
        let e = err("stray\n<Response/>");
        assert_eq!(e.line, 1, "{e}");
        let e = err("<Response/>\n\ntrailing");
        assert_eq!(e.line, 3, "{e}");
        let e = err("<Response><![CDATA[x]]></Response>");
        assert!(e.message.contains("outside a verb"), "{e}");
    }

    #[test]
    fn gather_takes_say_play_and_pause_only() {
        parse("<Response><Gather><Say>a</Say><Play>https://x/a.mp3</Play><Pause/></Gather></Response>").unwrap();
        let e = err("<Response>\n<Gather>\n  <Dial>+15551234567</Dial>\n</Gather>\n</Response>");
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.message, "<Dial> is not allowed inside <Gather>");
        let e = err("<Response><Gather><Gather/></Gather></Response>");
        assert_eq!(e.message, "<Gather> is not allowed inside <Gather>");
        let e = err("<Response><Gather>press one</Gather></Response>");
        assert!(e.message.contains("<Gather> cannot contain text"), "{e}");
    }

    #[test]
    fn dial_takes_its_nouns_or_a_plain_number() {
        let doc = parse(
            "<Response><Dial>+15551234567</Dial><Dial><Number>+1555</Number><Client>agent</Client>\
             <Sip>sip:a@b</Sip><Queue>support</Queue><Conference>room</Conference></Dial></Response>",
        )
        .unwrap();
        assert_eq!(doc.verbs[0].text, "+15551234567");
        assert_eq!(doc.verbs[1].children.len(), 5);
        let e = err("<Response><Dial><Say>hi</Say></Dial></Response>");
        assert_eq!(e.message, "<Say> is not allowed inside <Dial>");
    }

    #[test]
    fn enqueue_connect_stream_and_client_take_their_nouns() {
        let doc = parse(r#"<Response><Enqueue workflowSid="WW1"><Task>{"a":1}</Task></Enqueue></Response>"#).unwrap();
        assert_eq!(doc.find("Task").unwrap().text, r#"{"a":1}"#);
        parse("<Response><Enqueue>support</Enqueue></Response>").unwrap();
        let doc = parse(
            "<Response><Connect><Stream url=\"wss://h/media\"><Parameter name=\"CallSid\" value=\"CA1\"/></Stream>\
             </Connect></Response>",
        )
        .unwrap();
        assert_eq!(doc.find("Parameter").unwrap().attr("value"), Some("CA1"));
        parse("<Response><Connect><Room>r</Room></Connect><Connect><Conversation/></Connect></Response>").unwrap();
        parse("<Response><Connect><VirtualAgent/></Connect></Response>").unwrap();
        parse("<Response><Dial><Client><Identity>joey</Identity><Parameter name=\"a\" value=\"b\"/></Client></Dial></Response>")
            .unwrap();
        let e = err("<Response><Enqueue><Say>hi</Say></Enqueue></Response>");
        assert_eq!(e.message, "<Say> is not allowed inside <Enqueue>");
        let e = err("<Response><Connect><Number>1</Number></Connect></Response>");
        assert_eq!(e.message, "<Number> is not allowed inside <Connect>");
        let e = err("<Response><Connect><Stream url=\"wss://h\"><Say>x</Say></Stream></Connect></Response>");
        assert_eq!(e.message, "<Say> is not allowed inside <Stream>");
        let e = err("<Response><Dial><Client><Number>1</Number></Client></Dial></Response>");
        assert_eq!(e.message, "<Number> is not allowed inside <Client>");
        let e = err("<Response><Connect>wss://h</Connect></Response>");
        assert!(e.message.contains("<Connect> cannot contain text"), "{e}");
    }

    #[test]
    fn text_only_elements_take_no_children() {
        for (outer, inner) in [
            ("<Dial><Number><Say>x</Say></Number></Dial>", "<Say> is not allowed inside <Number>"),
            ("<Dial><Sip><Say>x</Say></Sip></Dial>", "<Say> is not allowed inside <Sip>"),
            ("<Dial><Queue><Say>x</Say></Queue></Dial>", "<Say> is not allowed inside <Queue>"),
            ("<Enqueue><Task><Say>x</Say></Task></Enqueue>", "<Say> is not allowed inside <Task>"),
            (
                "<Dial><Client><Identity><Say>x</Say></Identity></Client></Dial>",
                "<Say> is not allowed inside <Identity>",
            ),
            ("<Redirect><Say>x</Say></Redirect>", "<Say> is not allowed inside <Redirect>"),
            ("<Play><Pause/></Play>", "<Pause> is not allowed inside <Play>"),
        ] {
            assert_eq!(err(&format!("<Response>{outer}</Response>")).message, inner, "{outer}");
        }
        let e = err("<Response><Pause>5</Pause></Response>");
        assert!(e.message.contains("<Pause> cannot contain text"), "{e}");
        let e = err("<Response><Hangup>now</Hangup></Response>");
        assert!(e.message.contains("<Hangup> cannot contain text"), "{e}");
    }

    #[test]
    fn ssml_inside_say_is_part_of_its_text() {
        let doc = parse(
            r#"<Response>
  <Say voice="Polly.Joanna">Your order <say-as interpret-as="digits">1042</say-as> shipped<break time="300ms"/>on
    <prosody rate="slow"><emphasis level="strong">Tuesday</emphasis></prosody>.
    <amazon:effect name="whispered">Thanks!</amazon:effect><lang xml:lang="fr-FR">Merci</lang>
    <p><s>One.</s><s>Two.</s></p><sub alias="U P S">UPS</sub> <w role="amazon:VB">read</w>
    <phoneme alphabet="ipa" ph="pɪˈkɑːn">pecan</phoneme></Say>
</Response>"#,
        )
        .unwrap();
        assert_eq!(doc.says(), ["Your order 1042 shipped on Tuesday. Thanks!Merci One. Two. UPS read pecan"]);
        let say = &doc.verbs[0];
        assert_eq!(say.find_child("say-as").attr("interpret-as"), Some("digits"));
        assert_eq!(say.find_child("say-as").text, "1042");
        assert_eq!(say.find_child("break").attr("time"), Some("300ms"));
        assert_eq!(doc.find("emphasis").unwrap().text, "Tuesday");
        assert_eq!(doc.find("prosody").unwrap().text, "Tuesday");
        assert_eq!(doc.find("amazon:effect").unwrap().attr("name"), Some("whispered"));
        assert_eq!(doc.find("lang").unwrap().attr("xml:lang"), Some("fr-FR"));
    }

    #[test]
    fn nested_says_count_and_whitespace_collapses() {
        let doc = parse(
            "<Response>\n<Say>\n   Hello,\n\t  caller.  </Say>\n<Gather><Say>Press\n 1</Say></Gather><Say/></Response>",
        )
        .unwrap();
        assert_eq!(doc.says(), ["Hello, caller.", "Press 1", ""]);
        assert_eq!(doc.spoken(), "Hello, caller. Press 1");
    }

    #[test]
    fn characters_xml_forbids_are_refused_raw_or_escaped() {
        for bad in ["Ann\u{8}e", "esc\u{1b}[0m", "nul\u{0}", "\u{fffe}", "\u{ffff}"] {
            let e = err(&format!("<Response>\n  <Say>{bad}</Say>\n</Response>"));
            assert_eq!(e.line, 2, "{bad:?}: {e}");
            assert!(e.message.contains("not allowed in XML 1.0"), "{bad:?}: {e}");
            let e = err(&format!("<Response>\n<Gather action=\"/m?n={bad}\"/>\n</Response>"));
            assert_eq!(e.line, 2, "{bad:?}: {e}");
        }
        for reference in ["&#8;", "&#x1B;", "&#xFFFE;", "&#x1f;"] {
            let e = err(&format!("<Response><Say>a{reference}b</Say></Response>"));
            assert!(e.message.contains("malformed XML"), "{reference}: {e}");
        }
        // Tab, LF and CR are allowed, raw or escaped; so is everything above U+001F but U+FFFE/F.
        parse("<Response><Say>a\tb&#9;&#10;&#13;é&#xE9;🎉</Say></Response>").unwrap();
    }

    #[test]
    fn start_stop_pay_application_and_conversation_relay_are_known() {
        parse(
            "<Response><Start><Stream url=\"wss://h/s\"><Parameter name=\"a\" value=\"b\"/></Stream></Start>\
             <Stop><Stream name=\"s\"/></Stop><Start><Transcription/></Start>\
             <Pay><Prompt for=\"payment-card-number\"><Say>card</Say></Prompt><Parameter name=\"x\" value=\"y\"/></Pay>\
             <Dial><Application><ApplicationSid>AP1</ApplicationSid><Parameter name=\"a\" value=\"b\"/></Application></Dial>\
             <Connect><ConversationRelay url=\"wss://h/r\"><Language code=\"en-US\"/></ConversationRelay></Connect></Response>",
        )
        .unwrap();
        let e = err("<Response><Start><Say>x</Say></Start></Response>");
        assert_eq!(e.message, "<Say> is not allowed inside <Start>");
    }

    #[test]
    fn amazon_ssml_needs_no_namespace_declaration() {
        let doc =
            parse("<Response><Say><amazon:effect name=\"whispered\">hi</amazon:effect></Say></Response>").unwrap();
        assert_eq!(doc.says(), ["hi"]);
        let e = err("<Response><Say><amazon:effect>\u{8}</amazon:effect></Say></Response>");
        assert!(e.message.contains("not allowed in XML 1.0"), "{e}");
    }

    impl Verb {
        fn find_child(&self, name: &str) -> &Verb {
            self.children.iter().find(|c| c.name == name).unwrap()
        }
    }
}
