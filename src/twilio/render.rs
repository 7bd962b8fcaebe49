//! The one renderer of what callers hear: each IVR step is a template in `twiml/` (built in, and
//! replaceable file by file from ORDERLINE_TWIML_DIR): `NAME.xml` is its TwiML, with XML escaping,
//! and `NAME.speech` its clip sequence for Media Streams calls. Every template is rendered at
//! start-up (TwiML parsed, speech checked against the clip library), so a broken one stops
//! `serve` instead of a caller's call.

use std::path::Path;
use std::sync::Arc;

use minijinja::value::Object;
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;

use super::transfer_end::{QueueWaitView, TransferEnd, TransferEndView};
use super::{twiml, xml_text};
use crate::config::SpokenLanguage;
use crate::domain::Language;
use crate::ivr::Step;
use crate::speech::{self, ClipLibrary, Piece};

/// The built-in templates, as shipped in `twiml/`.
const BUILT_IN: &[(&str, &str)] = &[
    ("_macros.xml", include_str!("../../twiml/_macros.xml")),
    ("_connect.xml", include_str!("../../twiml/_connect.xml")),
    ("_offer.xml", include_str!("../../twiml/_offer.xml")),
    ("menu.xml", include_str!("../../twiml/menu.xml")),
    ("other_orders.xml", include_str!("../../twiml/other_orders.xml")),
    ("returns.xml", include_str!("../../twiml/returns.xml")),
    ("ask_order_number.xml", include_str!("../../twiml/ask_order_number.xml")),
    ("ask_postal_code.xml", include_str!("../../twiml/ask_postal_code.xml")),
    ("closed.xml", include_str!("../../twiml/closed.xml")),
    ("transfer.xml", include_str!("../../twiml/transfer.xml")),
    ("goodbye.xml", include_str!("../../twiml/goodbye.xml")),
    ("hold.xml", include_str!("../../twiml/hold.xml")),
    ("fallback.xml", include_str!("../../twiml/fallback.xml")),
    ("whisper.xml", include_str!("../../twiml/whisper.xml")),
    ("stream.xml", include_str!("../../twiml/stream.xml")),
    ("after_stream.xml", include_str!("../../twiml/after_stream.xml")),
    ("relay.xml", include_str!("../../twiml/relay.xml")),
    ("transfer_ended.xml", include_str!("../../twiml/transfer_ended.xml")),
    ("voicemail.xml", include_str!("../../twiml/voicemail.xml")),
    ("voicemail_left.xml", include_str!("../../twiml/voicemail_left.xml")),
    ("callback_requested.xml", include_str!("../../twiml/callback_requested.xml")),
    ("callback_answer.xml", include_str!("../../twiml/callback_answer.xml")),
    ("callback_machine.xml", include_str!("../../twiml/callback_machine.xml")),
    ("queue_wait.xml", include_str!("../../twiml/queue_wait.xml")),
    ("_speech.speech", include_str!("../../twiml/_speech.speech")),
    ("menu.speech", include_str!("../../twiml/menu.speech")),
    ("other_orders.speech", include_str!("../../twiml/other_orders.speech")),
    ("returns.speech", include_str!("../../twiml/returns.speech")),
    ("voicemail.speech", include_str!("../../twiml/voicemail.speech")),
    ("ask_order_number.speech", include_str!("../../twiml/ask_order_number.speech")),
    ("ask_postal_code.speech", include_str!("../../twiml/ask_postal_code.speech")),
    ("closed.speech", include_str!("../../twiml/closed.speech")),
    ("transfer.speech", include_str!("../../twiml/transfer.speech")),
    ("goodbye.speech", include_str!("../../twiml/goodbye.speech")),
    ("hold.speech", include_str!("../../twiml/hold.speech")),
    ("fallback.speech", include_str!("../../twiml/fallback.speech")),
];

/// The built-in Spanish templates (`twiml/es-US/`), said to every Spanish language configured
/// (es-US, es-MX, …). `stream.xml`, `after_stream.xml` and `relay.xml` say nothing (the greeting
/// is the first step's words) and are shared with English;
/// there are no Spanish `.speech` templates (the Media Streams recordings are English).
const BUILT_IN_ES: &[(&str, &str)] = &[
    ("_macros.xml", include_str!("../../twiml/es-US/_macros.xml")),
    ("_connect.xml", include_str!("../../twiml/es-US/_connect.xml")),
    ("_offer.xml", include_str!("../../twiml/es-US/_offer.xml")),
    ("menu.xml", include_str!("../../twiml/es-US/menu.xml")),
    ("other_orders.xml", include_str!("../../twiml/es-US/other_orders.xml")),
    ("returns.xml", include_str!("../../twiml/es-US/returns.xml")),
    ("ask_order_number.xml", include_str!("../../twiml/es-US/ask_order_number.xml")),
    ("ask_postal_code.xml", include_str!("../../twiml/es-US/ask_postal_code.xml")),
    ("closed.xml", include_str!("../../twiml/es-US/closed.xml")),
    ("transfer.xml", include_str!("../../twiml/es-US/transfer.xml")),
    ("goodbye.xml", include_str!("../../twiml/es-US/goodbye.xml")),
    ("hold.xml", include_str!("../../twiml/es-US/hold.xml")),
    ("fallback.xml", include_str!("../../twiml/es-US/fallback.xml")),
    ("whisper.xml", include_str!("../../twiml/es-US/whisper.xml")),
    ("stream.xml", include_str!("../../twiml/stream.xml")),
    ("after_stream.xml", include_str!("../../twiml/after_stream.xml")),
    ("relay.xml", include_str!("../../twiml/relay.xml")),
    ("transfer_ended.xml", include_str!("../../twiml/es-US/transfer_ended.xml")),
    ("voicemail.xml", include_str!("../../twiml/es-US/voicemail.xml")),
    ("voicemail_left.xml", include_str!("../../twiml/es-US/voicemail_left.xml")),
    ("callback_requested.xml", include_str!("../../twiml/es-US/callback_requested.xml")),
    ("callback_answer.xml", include_str!("../../twiml/es-US/callback_answer.xml")),
    ("callback_machine.xml", include_str!("../../twiml/es-US/callback_machine.xml")),
    ("queue_wait.xml", include_str!("../../twiml/es-US/queue_wait.xml")),
];

/// The built-in templates of a language.
fn built_in_for(language: Language) -> &'static [(&'static str, &'static str)] {
    match language {
        Language::En => BUILT_IN,
        Language::Es => BUILT_IN_ES,
    }
}

/// Templates rendered outside the step samples (or only imported), so the coverage check skips them.
const NOT_STEPS: [&str; 11] = [
    "fallback",
    "whisper",
    "stream",
    "relay",
    "after_stream",
    "transfer_ended",
    "queue_wait",
    "voicemail_left",
    "callback_requested",
    "callback_answer",
    "callback_machine",
];

/// A call that ends without a word (a caller who has hung up, a fax machine).
pub const HANG_UP: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Hangup/></Response>";

/// What callers hear if even the fallback template cannot be rendered: no settings, no data.
pub const LAST_RESORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Say>Sorry, we can't take your call right now. Please try again in a few minutes.</Say><Hangup/></Response>"#;

/// How the caller reaches a person, as the templates' `connect` macro needs it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TransferView {
    pub kind: &'static str,
    pub address: String,
    pub workflow_sid: Option<String>,
    /// The caller's context as TaskRouter task attributes (JSON).
    pub task: String,
    pub whisper_url: String,
    /// `<Parameter>`s for a Client transfer.
    pub params: Vec<(String, String)>,
    /// The SIP URI with the context as `X-` headers.
    pub sip_uri: String,
    /// Absolute: where Twilio goes when a `<Dial>` ends.
    pub dial_action: String,
    /// Absolute: where Twilio goes when the caller leaves the queue.
    pub queue_action: String,
    /// Absolute: what a queued caller hears while waiting.
    pub wait_url: String,
    /// The TaskRouter task's priority (bad news first); 0: the workflow's default.
    pub priority: u32,
}

/// What `relay.xml` needs: where the session connects and ends, what it says first, what its
/// speech recognition should expect, and the call's context.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RelayView {
    /// `wss://…/twilio/relay`.
    pub relay_url: String,
    /// Absolute: the `<Connect action>`.
    pub action_url: String,
    /// The welcome greeting: the first step's words.
    pub greeting: String,
    /// The call's language (its BCP-47 tag): what Twilio speaks and listens for.
    pub language: String,
    /// Comma-separated words and phrases the questions expect.
    pub hints: String,
    /// `<Parameter>`s.
    pub params: Vec<(String, String)>,
    /// `ttsProvider` and `voice`, when ORDERLINE_VOICE names one ConversationRelay knows.
    pub tts_provider: Option<String>,
    pub tts_voice: Option<String>,
}

/// The voicemail `<Record>`'s URLs and length, from the settings.
#[derive(Debug, Clone, Serialize)]
pub struct RecordUrls {
    pub action: String,
    pub status_callback: String,
    pub transcribe_callback: String,
    /// Seconds.
    pub max_length: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{template}: line {line}: {message}")]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub message: String,
}

/// The templates of every configured language: this one (the default language's) and the others.
pub struct Renderer {
    env: Environment<'static>,
    language: Language,
    /// The BCP-47 tag said in `<Say language>` and `<Gather language>`.
    tag: String,
    others: Vec<Renderer>,
}

impl Renderer {
    /// One language's templates (English: the built-in ones), with any file of the same name in
    /// `dir` in their place, and the settings every template may use.
    pub fn load(dir: Option<&Path>, voice: &str, language: &str, shop_name: &str) -> Result<Renderer, TemplateError> {
        let spoken = SpokenLanguage {
            tag: language.to_string(),
            language: Language::of_tag(language).unwrap_or(Language::En),
            voice: voice.to_string(),
        };
        Renderer::load_one(dir, &spoken, shop_name, true)
    }

    /// The templates of every language in `languages` (the default first): built in for English
    /// (`twiml/`) and Spanish (`twiml/es-US/`); a file in `dir/<tag>/` replaces a built-in one
    /// of that language, and for the default language a file in `dir` itself too (as before
    /// there were languages).
    pub fn load_languages(
        dir: Option<&Path>,
        languages: &[SpokenLanguage],
        shop_name: &str,
    ) -> Result<Renderer, TemplateError> {
        let Some((first, rest)) = languages.split_first() else {
            return Err(TemplateError { template: "ORDERLINE_LANGUAGES".into(), line: 0, message: "none".into() });
        };
        let mut renderer = Renderer::load_one(dir, first, shop_name, true)?;
        for spoken in rest {
            renderer.others.push(Renderer::load_one(dir, spoken, shop_name, false)?);
        }
        Ok(renderer)
    }

    /// The templates of `language` (the default language's when it is none or not configured).
    pub fn in_language(&self, language: Option<Language>) -> &Renderer {
        match language {
            Some(l) if l != self.language => self.others.iter().find(|r| r.language == l).unwrap_or(self),
            _ => self,
        }
    }

    /// The language these templates speak, and its tag.
    pub fn language(&self) -> (Language, &str) {
        (self.language, &self.tag)
    }

    /// `<Say>Para español, oprima nueve.</Say>`: the line offering this language, in this
    /// language, said inside another language's question (`_offer.xml`).
    pub fn offer(&self) -> Result<String, TemplateError> {
        self.render("_offer.xml", minijinja::context! {})
    }

    fn load_one(
        dir: Option<&Path>,
        spoken: &SpokenLanguage,
        shop_name: &str,
        default: bool,
    ) -> Result<Renderer, TemplateError> {
        let (voice, language) = (spoken.voice.as_str(), spoken.tag.as_str());
        let mut env = Environment::new();
        // TwiML is XML; speech is clip ids, which need no escaping.
        env.set_auto_escape_callback(|name| if name.ends_with(".xml") { AutoEscape::Html } else { AutoEscape::None });
        env.set_formatter(xml_formatter);
        add_speech_functions(&mut env);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_keep_trailing_newline(false);
        env.add_global("voice", voice);
        env.add_global("language", language);
        env.add_global("shop_name", shop_name);
        env.add_function("say", say(voice, language));
        env.add_function("gather", gather(language));
        for &(name, built_in) in built_in_for(spoken.language) {
            let own = dir.map(|d| d.join(language).join(name)).filter(|p| p.is_file());
            let shared = dir.filter(|_| default).map(|d| d.join(name)).filter(|p| p.is_file());
            let source = match own.or(shared) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| TemplateError {
                    template: path.display().to_string(),
                    line: 0,
                    message: e.to_string(),
                })?,
                None => built_in.to_string(),
            };
            check_vocabulary(name, &source)?;
            env.add_template_owned(name.to_string(), source).map_err(|e| template_error(name, &e))?;
        }
        Ok(Renderer { env, language: spoken.language, tag: spoken.tag.clone(), others: Vec::new() })
    }

    /// The ids of the recordings Media Streams calls can say (the speech templates' `recorded`:
    /// `{% if "shop_name" in recorded %}`), the merchant's own among them: a map, so that looking
    /// up one of over a thousand ids is not a scan.
    pub fn speak_from(&mut self, clips: &ClipLibrary) {
        let ids: std::collections::BTreeMap<&str, bool> = clips.ids().map(|id| (id, true)).collect();
        self.env.add_global("recorded", Value::from_serialize(&ids));
        for other in &mut self.others {
            other.speak_from(clips);
        }
    }

    /// Whether questions listen for words as well as keys (the templates' `speech_input`).
    pub fn listen_for_speech(&mut self, on: bool) {
        self.env.add_global("speech_input", on);
        for other in &mut self.others {
            other.listen_for_speech(on);
        }
    }

    /// Renders a step; `action` is where the caller's answer goes (absolute path and query).
    pub fn step(&self, step: &Step, action: Option<&str>, transfer: &TransferView) -> Result<String, TemplateError> {
        self.step_asking(step, action, transfer, &Asking::default())
    }

    /// Renders a step the way `asking` says: with another language's offer, the keys spelled
    /// out after words that were not understood, or listening for keys only.
    pub fn step_asking(
        &self,
        step: &Step,
        action: Option<&str>,
        transfer: &TransferView,
        asking: &Asking,
    ) -> Result<String, TemplateError> {
        let name = format!("{}.xml", step.template());
        let ctx = Context::asking(step, action.unwrap_or(""), transfer, self.language, asking);
        self.render(&name, ctx.into_value())
    }

    /// What a Media Streams call hears at a step: the clips and pauses of `NAME.speech`.
    pub fn speech(&self, step: &Step) -> Result<Vec<Piece>, TemplateError> {
        let name = format!("{}.speech", step.template());
        let ctx = Context::plain(step, "", &TransferView::default(), self.language).into_value();
        self.utterance(&name, ctx)
    }

    /// What a Media Streams call hears when anything goes wrong.
    pub fn speech_fallback(&self) -> Result<Vec<Piece>, TemplateError> {
        self.utterance("fallback.speech", minijinja::context! {})
    }

    fn utterance(&self, name: &str, ctx: Value) -> Result<Vec<Piece>, TemplateError> {
        let text = self.render(name, ctx)?;
        speech::parse_utterance(&text).map_err(|message| TemplateError { template: name.into(), line: 0, message })
    }

    /// The answer to an incoming call in Media Streams mode: connect the stream (with the call's
    /// context as parameters), then come back to `after_url` when orderline closes it.
    pub fn stream(
        &self,
        stream_url: &str,
        params: &[(String, String)],
        after_url: &str,
        status_url: &str,
    ) -> Result<String, TemplateError> {
        self.render("stream.xml", minijinja::context! { stream_url, params, after_url, status_url })
    }

    /// The answer to an incoming call in ConversationRelay mode: the session, its welcome greeting
    /// and the call's context as parameters; Twilio comes back to `view.action_url` when it ends.
    pub fn relay(&self, view: &RelayView) -> Result<String, TemplateError> {
        self.render("relay.xml", Value::from_serialize(view))
    }

    /// The TwiML after a stream closed: the transfer, the message's `<Record>` or the goodbye of `step`
    /// (any other step hangs up).
    pub fn after_stream(&self, step: &Step, transfer: &TransferView) -> Result<String, TemplateError> {
        self.render("after_stream.xml", Context::plain(step, "", transfer, self.language).into_value())
    }

    pub fn fallback(&self, transfer: &TransferView) -> Result<String, TemplateError> {
        self.render("fallback.xml", minijinja::context! { transfer })
    }

    /// After a `<Dial>` or `<Enqueue>`: quiet when someone took the call, else a goodbye.
    pub fn transfer_ended(&self, view: &TransferEndView) -> Result<String, TemplateError> {
        self.render("transfer_ended.xml", Value::from_serialize(view))
    }

    /// After the caller left a message (`kept`: long enough to be kept).
    pub fn voicemail_left(&self, kept: bool) -> Result<String, TemplateError> {
        self.render("voicemail_left.xml", minijinja::context! { kept })
    }

    /// Where `<Record>` sends the message, its file and its transcription (absolute URLs), and
    /// its longest length: the templates' `record`.
    pub fn record_messages_at(&mut self, urls: &RecordUrls) {
        self.env.add_global("record", Value::from_serialize(urls));
        for other in &mut self.others {
            other.record_messages_at(urls);
        }
    }

    /// After a queued caller pressed 1 for a call-back.
    pub fn callback_requested(&self, view: &super::callback::CallbackRequestedView) -> Result<String, TemplateError> {
        self.render("callback_requested.xml", Value::from_serialize(view))
    }

    /// What a customer hears on answering a call-back, then the way to a person.
    pub fn callback_answer(&self, transfer: &TransferView) -> Result<String, TemplateError> {
        self.render("callback_answer.xml", minijinja::context! { transfer => Value::from_serialize(transfer) })
    }

    /// What a voicemail box hears on answering a call-back; `again`: another attempt will follow.
    pub fn callback_machine(&self, again: bool) -> Result<String, TemplateError> {
        self.render("callback_machine.xml", minijinja::context! { again })
    }

    /// The queue's waitUrl document.
    pub fn queue_wait(&self, view: &QueueWaitView) -> Result<String, TemplateError> {
        self.render("queue_wait.xml", Value::from_serialize(view))
    }

    pub fn whisper(&self, ctx: Value) -> Result<String, TemplateError> {
        self.render("whisper.xml", ctx)
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| template_error(name, &e))?;
        template.render(ctx).map_err(|e| template_error(name, &e))
    }

    /// Renders every template for every sample in `samples` and parses the result as TwiML: the
    /// start-up check. The first failure names the template and the line.
    /// Every speech template is rendered too, and each clip it names must be in `clips`.
    /// Every configured language is checked; a failure in another language than the default
    /// names its folder (`es-US/menu.xml`).
    pub fn check(
        &self,
        samples: &[(Step, Option<&str>)],
        transfers: &[TransferView],
        clips: &ClipLibrary,
    ) -> Result<usize, TemplateError> {
        let mut checked = 0;
        let all: Vec<&Renderer> = std::iter::once(self).chain(self.others.iter()).collect();
        for (i, renderer) in all.iter().enumerate() {
            // Each language's offer, said inside the next language's questions.
            let offer = all[(i + 1) % all.len()].offer().map_err(|e| renderer.named(e))?;
            renderer
                .parse_rendered("_offer.xml", &format!("<Response>{offer}</Response>"))
                .map_err(|e| renderer.named(e))?;
            checked += renderer.check_one(samples, transfers, clips, &offer).map_err(|e| renderer.named(e))?;
        }
        Ok(checked)
    }

    /// An error in a language other than the default names the language's folder.
    fn named(&self, e: TemplateError) -> TemplateError {
        if self.language == Language::En && self.tag.eq_ignore_ascii_case("en-US") {
            e
        } else {
            TemplateError { template: format!("{}/{}", self.tag, e.template), ..e }
        }
    }

    fn check_one(
        &self,
        samples: &[(Step, Option<&str>)],
        transfers: &[TransferView],
        clips: &ClipLibrary,
        offer: &str,
    ) -> Result<usize, TemplateError> {
        let mut checked = 0;
        let mut seen = std::collections::HashSet::new();
        let askings = [
            Asking { offer: Some(offer.to_string()), spell_keys: true, keys_only: false },
            Asking { offer: None, spell_keys: true, keys_only: true },
        ];
        for (t, transfer) in transfers.iter().enumerate() {
            for (step, action) in samples {
                let xml = self.step(step, *action, transfer)?;
                self.parse_rendered(&format!("{}.xml", step.template()), &xml)?;
                seen.insert(step.template());
                checked += 1;
                if t == 0 && action.is_some() {
                    for asking in &askings {
                        let xml = self.step_asking(step, *action, transfer, asking)?;
                        self.parse_rendered(&format!("{}.xml", step.template()), &xml)?;
                        checked += 1;
                    }
                }
                if matches!(step, Step::Transfer(_) | Step::Goodbye(_)) {
                    self.parse_rendered("after_stream.xml", &self.after_stream(step, transfer)?)?;
                    checked += 1;
                }
            }
            self.parse_rendered("fallback.xml", &self.fallback(transfer)?)?;
            self.parse_rendered("callback_answer.xml", &self.callback_answer(transfer)?)?;
            checked += 2;
        }
        let speaks = self.language == Language::En;
        for (step, _) in samples.iter().filter(|_| speaks) {
            let name = format!("{}.speech", step.template());
            check_clips(&name, &self.speech(step)?, clips)?;
            checked += 1;
        }
        if speaks {
            check_clips("fallback.speech", &self.speech_fallback()?, clips)?;
        }
        let params = [("from".to_string(), "O'Brien & Sons <Ltd>".to_string())];
        self.parse_rendered(
            "stream.xml",
            &self.stream(
                "wss://h.example/twilio/media",
                &params,
                "https://h.example/twilio/voice/x",
                "https://h.example/s?a=1&b=2",
            )?,
        )?;
        checked += 2;
        for (greeting, tts) in [("", None), ("O'Brien & Sons <Ltd> \"quoted\" Ann\u{8}e", Some("Amazon"))] {
            let view = RelayView {
                relay_url: "wss://h.example/p/twilio/relay".into(),
                action_url: "https://h.example/p/twilio/relay/end?a=1&b=2".into(),
                greeting: greeting.into(),
                language: "es-US".into(),
                hints: "dónde está mi pedido, agent".into(),
                params: params.to_vec(),
                tts_provider: tts.map(Into::into),
                tts_voice: tts.map(|_| "Joanna-Neural".into()),
            };
            self.parse_rendered("relay.xml", &self.relay(&view)?)?;
            checked += 1;
        }
        let whisper = self
            .whisper(minijinja::context! { first_name => "O'Brien & Sons <Ltd>", verified => "postal_code",
            order => minijinja::context! { number_spoken => "1 0 4 2", state => "shipped" } })?;
        self.parse_rendered("whisper.xml", &whisper)?;
        self.parse_rendered("whisper.xml", &self.whisper(minijinja::context! {})?)?;
        checked += 2;
        for outcome in TransferEnd::ALL {
            for back_at in [None, Some("Monday at 9 AM".to_string())] {
                for voicemail in [false, true] {
                    self.parse_rendered(
                        "transfer_ended.xml",
                        &self.transfer_ended(&TransferEndView { outcome, back_at: back_at.clone(), voicemail })?,
                    )?;
                    checked += 1;
                }
            }
        }
        for request in ["requested", "withheld", "unavailable"] {
            let view = super::callback::CallbackRequestedView {
                request,
                wait_url: "https://h.example/twilio/voice/queue-wait?a=1&b=2".into(),
            };
            self.parse_rendered("callback_requested.xml", &self.callback_requested(&view)?)?;
            checked += 1;
        }
        for kept in [false, true] {
            self.parse_rendered("voicemail_left.xml", &self.voicemail_left(kept)?)?;
            checked += 1;
        }
        for again in [false, true] {
            self.parse_rendered("callback_machine.xml", &self.callback_machine(again)?)?;
            checked += 1;
        }
        for (position, queue_time, average) in
            [(Some(1), 0, None), (Some(7), 30, Some(600)), (None, 100, Some(90)), (Some(2), 9_999, None)]
        {
            let mut view = QueueWaitView::of(position, queue_time, average, 300, "https://h.example/music.mp3?a=1&b=2");
            self.parse_rendered("queue_wait.xml", &self.queue_wait(&view)?)?;
            view.callback = true;
            view.callback_action = "https://h.example/twilio/voice/queue-callback?p=2&x=<&>".into();
            self.parse_rendered("queue_wait.xml", &self.queue_wait(&view)?)?;
            checked += 2;
        }
        for (name, _) in built_in_for(self.language) {
            let template = name.trim_end_matches(".xml").trim_end_matches(".speech");
            let covered = name.starts_with('_') || NOT_STEPS.contains(&template) || seen.contains(template);
            if !covered {
                return Err(TemplateError {
                    template: (*name).into(),
                    line: 0,
                    message: "no sample renders it".into(),
                });
            }
        }
        Ok(checked)
    }
}

/// What a step's template reads: the step's facts (its fields, at the top level, and `step`, its
/// name) and how it is put. An object that answers each name with a `match` rather than a map:
/// built as a serde map (the step's fields flattened into it), the context was hashed key by key
/// to build and again at every name a template read: 14,000 of a call's 237,000 instructions
/// (issue 14, callgrind under `cargo bench --bench incoming_calls`).
#[derive(Debug)]
struct Context {
    /// The step, as its struct serializes: its fields by name.
    step: Value,
    action: Value,
    transfer: Value,
    /// Another language's one-line offer (`<Say>` markup made by that language's `_offer.xml`).
    language_offer: Value,
    spell_keys: bool,
    keys_only: bool,
    /// How the step's question takes its answer (the templates' `gather` macro).
    ask: Value,
}

impl Context {
    fn plain(step: &Step, action: &str, transfer: &TransferView, language: Language) -> Context {
        Context::asking(step, action, transfer, language, &Asking::default())
    }

    fn asking(step: &Step, action: &str, transfer: &TransferView, language: Language, asking: &Asking) -> Context {
        Context {
            step: Value::from_serialize(step),
            action: Value::from(action),
            transfer: Value::from_serialize(transfer),
            language_offer: Value::from_safe_string(asking.offer.clone().unwrap_or_default()),
            spell_keys: asking.spell_keys,
            keys_only: asking.keys_only,
            ask: Value::from_serialize(AskView::of(step, language)),
        }
    }

    fn into_value(self) -> Value {
        Value::from_object(self)
    }
}

impl Object for Context {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let value = match key.as_str()? {
            "action" => self.action.clone(),
            "transfer" => self.transfer.clone(),
            "language_offer" => self.language_offer.clone(),
            "spell_keys" => Value::from(self.spell_keys),
            "keys_only" => Value::from(self.keys_only),
            "ask" => self.ask.clone(),
            field => return self.step.get_attr(field).ok().filter(|v| !v.is_undefined()),
        };
        Some(value)
    }
}

/// A step's question (`ivr::Stage::ask` and its hints) as the `<Gather>` attributes say it.
#[derive(Serialize)]
struct AskView {
    num_digits: Option<u8>,
    /// Empty: no key ends the answer.
    finish_on_key: String,
    timeout: u8,
    hints: &'static str,
}

impl AskView {
    fn of(step: &Step, language: Language) -> Option<AskView> {
        let stage = step.asks()?;
        let ask = stage.ask();
        Some(AskView {
            num_digits: ask.max_digits,
            finish_on_key: ask.finish_on.map(String::from).unwrap_or_default(),
            timeout: ask.timeout_secs,
            hints: stage.hints(language),
        })
    }
}

/// How a question is put, beyond its step's facts.
#[derive(Debug, Clone, Default)]
pub struct Asking {
    /// The other language's offer, as its `_offer.xml` rendered it.
    pub offer: Option<String>,
    /// The caller's words were not understood: name every key and what to say for it.
    pub spell_keys: bool,
    /// Words were not understood twice: listen for keys only (`<Gather input="dtmf">`).
    pub keys_only: bool,
}

impl Renderer {
    /// Parses what a template rendered; an error names the template's line that wrote the
    /// offending element when it can be found there, else the line of the rendered TwiML.
    fn parse_rendered(&self, name: &str, xml: &str) -> Result<(), TemplateError> {
        let Err(e) = twiml::parse(xml) else { return Ok(()) };
        let source = self.env.get_template(name).map(|t| t.source().to_string()).unwrap_or_default();
        let element =
            e.message.split_once('<').and_then(|(_, rest)| rest.split_once(['>', ' ', '/'])).map(|(el, _)| el);
        let in_template = element
            .filter(|el| !el.is_empty())
            .and_then(|el| source.lines().position(|line| line.contains(&format!("<{el}"))))
            .map(|index| index + 1);
        Err(match in_template {
            Some(line) => TemplateError { template: name.into(), line, message: e.message },
            None => TemplateError {
                template: name.into(),
                line: e.line,
                message: format!("{} (line {} of the rendered TwiML)", e.message, e.line),
            },
        })
    }
}

/// A speech template's clips must all be recorded.
fn check_clips(name: &str, pieces: &[Piece], clips: &ClipLibrary) -> Result<(), TemplateError> {
    match speech::render(clips, pieces) {
        Ok(_) => Ok(()),
        Err(missing) => Err(TemplateError { template: name.into(), line: 0, message: missing.to_string() }),
    }
}

/// The speech engine, for `.speech` templates: each function returns clip ids as text.
fn add_speech_functions(env: &mut Environment<'static>) {
    let text = |pieces: Vec<Piece>| speech::utterance_text(&pieces);
    env.add_function("order_number", move |name: Option<String>| text(speech::order_number(&name.unwrap_or_default())));
    env.add_function("digits", move |value: Option<String>| text(speech::digits(&value.unwrap_or_default())));
    env.add_function("date", move |iso: Option<String>| {
        let day = iso.and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        day.map(|d| text(speech::date(d))).unwrap_or_default()
    });
    env.add_function("carrier", move |name: Option<String>| {
        name.and_then(|n| speech::carrier(&n)).map(text).unwrap_or_default()
    });
    env.add_function("opening", move |days_ahead: i64, date: Option<String>, hour: u32, minute: u32| {
        let day = date.and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        day.map(|d| text(speech::opening(days_ahead, d, hour, minute))).unwrap_or_default()
    });
    env.add_function("money", move |total: Option<String>, currency: Option<String>| {
        total.and_then(|t| speech::money(&t, currency.as_deref())).map(text).unwrap_or_default()
    });
    env.add_function("count", move |n: u32| text(speech::count(n)));
    env.add_function("name_id", move |first: Option<String>| {
        first.and_then(|f| speech::name_id(&f)).unwrap_or_default()
    });
}

/// The templates' `say(text)`: `<Say voice="…" language="…">text</Say>` in this language's voice.
fn say(voice: &str, language: &str) -> impl Fn(Value) -> Value + Send + Sync + 'static {
    let mut open = String::from("<Say voice=\"");
    write_xml(&mut open, &Value::from(voice));
    open.push_str("\" language=\"");
    write_xml(&mut open, &Value::from(language));
    open.push_str("\">");
    move |text: Value| {
        let mut out = String::with_capacity(open.len() + 200);
        out.push_str(&open);
        write_xml(&mut out, &text);
        out.push_str("</Say>");
        Value::from_safe_string(out)
    }
}

/// The templates' `gather(ask, action, keys_only=false)`: a question's `<Gather>` attributes
/// (twilio.com/docs/voice/twiml/gather: input, hints, speechTimeout, language, numDigits,
/// finishOnKey, timeout), from `ask` (an [`AskView`]), where the answer goes, and whether words
/// are listened for too (`speech_input`, unless `keys_only`: words were not understood twice).
fn gather(language: &str) -> impl Fn(&minijinja::State, Value, Value, Option<bool>) -> Value + Send + Sync + 'static {
    let language = Value::from(language);
    move |state: &minijinja::State, ask: Value, action: Value, keys_only: Option<bool>| {
        let words = state.lookup("speech_input").is_some_and(|v| v.is_true()) && !keys_only.unwrap_or(false);
        let field = |name: &str| ask.get_attr(name).unwrap_or_default();
        let mut out = String::with_capacity(300);
        out.push_str(if words { "input=\"dtmf speech\"" } else { "input=\"dtmf\"" });
        if words {
            out.push_str(" hints=\"");
            write_xml(&mut out, &field("hints"));
            out.push_str("\" speechTimeout=\"auto\" language=\"");
            write_xml(&mut out, &language);
            out.push('"');
        }
        let digits = field("num_digits");
        if digits.is_true() {
            out.push_str(" numDigits=\"");
            write_xml(&mut out, &digits);
            out.push('"');
        }
        out.push_str(" finishOnKey=\"");
        write_xml(&mut out, &field("finish_on_key"));
        out.push_str("\" timeout=\"");
        write_xml(&mut out, &field("timeout"));
        out.push_str("\" action=\"");
        write_xml(&mut out, &action);
        out.push_str("\" method=\"POST\"");
        Value::from_safe_string(out)
    }
}

/// A value as TwiML's formatter writes it (below): markup a macro made as it is, every other
/// string through the one XML filter, nothing for an undefined value or none.
fn write_xml(out: &mut String, value: &Value) {
    use std::fmt::Write;
    // Writing into a String never fails.
    let _ = match value.as_str() {
        Some(plain) if !value.is_safe() => xml_text::escape_into(out, plain),
        _ if value.is_undefined() || value.is_none() => Ok(()),
        _ => write!(out, "{value}"),
    };
}

/// Writes a value into a template: in TwiML, every string (whatever it came from: Shopify, the
/// caller, the settings) goes through the one XML filter (forbidden characters dropped, the five
/// specials escaped, `/` left alone); markup a macro made is already filtered and goes as it is.
fn xml_formatter(out: &mut minijinja::Output, state: &minijinja::State, value: &Value) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            xml_text::escape_into(out, text).map_err(|_| minijinja::Error::from(minijinja::ErrorKind::WriteFailure))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> TemplateError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    TemplateError { template: e.name().unwrap_or(name).to_string(), line: e.line().unwrap_or(0), message }
}

/// The names a template may compare a field with (`reason == "not_verified"`), by the field's
/// last path segment: the names of the enum the field holds. A name that is not among them would
/// compile and silently fall through to the `{% else %}`.
fn vocabulary() -> Vec<(&'static str, Vec<&'static str>)> {
    use crate::domain::{AskReason, RetryReason, TransferReason, Verified};
    use crate::ivr::order_status::OrderState;
    let names = |all: &[&'static str]| all.to_vec();
    let mut steps: Vec<&'static str> = sample_steps().iter().map(|(step, _)| step.template()).collect();
    steps.dedup();
    vec![
        (
            "reason",
            AskReason::ALL
                .iter()
                .map(|r| r.as_str())
                .chain(TransferReason::ALL.iter().map(|r| r.as_str()))
                .chain(crate::domain::VoicemailReason::ALL.iter().map(|r| r.as_str()))
                .collect(),
        ),
        ("retry", RetryReason::ALL.iter().map(|r| r.as_str()).collect()),
        ("news", crate::domain::BadNews::ALL.iter().map(|r| r.as_str()).collect()),
        ("text", crate::domain::SmsResult::ALL.iter().map(|r| r.as_str()).collect()),
        ("verified", Verified::ALL.iter().map(|v| v.as_str()).collect()),
        ("state", OrderState::ALL.iter().map(|s| s.as_str()).collect()),
        ("stage", crate::ivr::returns::ReturnStage::ALL.iter().map(|s| s.as_str()).collect()),
        ("decline", crate::ivr::returns::DECLINE_WORDS.to_vec()),
        ("about", names(&["account", "order"])),
        ("outcome", TransferEnd::ALL.iter().map(|o| o.as_str()).collect()),
        ("kind", names(&super::transfer::TransferTarget::KINDS)),
        ("step", steps),
    ]
}

/// Fails on a comparison of a known field with a name its enum does not have (a typo such as
/// `reason == "not_verfied"`), naming the template, the line and the names it may use.
fn check_vocabulary(template: &str, source: &str) -> Result<(), TemplateError> {
    let vocabulary = vocabulary();
    for (line_index, line) in source.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(['=', '!']) {
            let (before, after) = rest.split_at(at);
            rest = &after[1..];
            if !after[1..].starts_with('=') {
                continue;
            }
            let field = before.trim_end().rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).next();
            let field = field.unwrap_or("").rsplit('.').next().unwrap_or("");
            let literal = after[2..].trim_start();
            let Some(literal) = literal.strip_prefix('"').and_then(|l| l.split_once('"')).map(|(name, _)| name) else {
                continue;
            };
            let Some((_, allowed)) = vocabulary.iter().find(|(name, _)| *name == field) else { continue };
            if !allowed.contains(&literal) {
                return Err(TemplateError {
                    template: template.to_string(),
                    line: line_index + 1,
                    message: format!("`{field}` is never {literal:?}; it is one of {}", allowed.join(", ")),
                });
            }
        }
    }
    Ok(())
}

/// Key 3 with the `i`-th return stage (every stage, decline reason, label or none, exchange or
/// none, refund or none, window or none, over the samples).
fn returns_sample(i: usize, hostile: &str, menu: crate::ivr::flow::MenuOptions) -> crate::ivr::returns::ReturnsStep {
    use crate::ivr::returns::{DECLINE_WORDS, OrderReturns, RefundFacts, ReturnFacts, ReturnStage, ReturnsStep};
    let stages = ReturnStage::ALL;
    let stage = stages[i % stages.len()];
    let odd = i % 2 == 1;
    let r = ReturnFacts {
        stage,
        carrier: odd.then(|| hostile.to_string()),
        label: odd || i.is_multiple_of(3),
        decline: (stage == ReturnStage::Declined).then(|| DECLINE_WORDS[(i / 2) % DECLINE_WORDS.len()]),
        exchange_items: (i % 3) as u16,
    };
    ReturnsStep {
        orders: vec![OrderReturns {
            name: "#1042".into(),
            number_spoken: "1 0 4 2".into(),
            returns: if i % 4 == 3 { vec![] } else { vec![r] },
            refund: (i.is_multiple_of(2) || i % 4 == 3).then(|| RefundFacts {
                amount: (i % 3 != 2).then(|| "$21.23".into()),
                total: (i % 3 != 2).then(|| ["21.23", "1.00", "1250.05", "0.99"][i % 4].into()),
                currency: (i % 3 != 2).then(|| ["USD", "CAD"][i % 2].into()),
                day: odd.then(|| "Tuesday, November 17".into()),
                date: odd.then(|| "2026-11-17".into()),
            }),
        }],
        window_days: odd.then_some(30),
        past_window: if i % 3 == 1 { vec!["1 0 4 3".into()] } else { vec![] },
        label_text: [None, Some(crate::domain::SmsResult::Sent), Some(crate::domain::SmsResult::Failed)][i % 3],
        menu: crate::ivr::flow::MenuOptions { text_label: odd, ..menu },
    }
}

/// Steps that together reach every branch of every template, with the awkward inputs callers'
/// data can hold (a name full of XML specials, no name, no order, every order state).
/// A closed line's next opening, as the template check speaks it (a Monday, three days ahead).
fn sample_opening() -> crate::ivr::hours::NextOpening {
    crate::ivr::hours::NextOpening {
        words: "Monday at 9 AM".into(),
        date: "2026-12-07".into(),
        days_ahead: 3,
        hour: 9,
        minute: 0,
    }
}

pub fn sample_steps() -> Vec<(Step, Option<&'static str>)> {
    use crate::domain::{AskReason, RetryReason, SmsResult, TransferReason, VoicemailReason};
    use crate::ivr::flow::{
        AskOrderNumber, AskPostalCode, CallContext, ClosedStep, GoodbyeStep, MenuOptions, MenuStep, OrdersStep,
        PostalCodeOf, TransferStep, VoicemailStep,
    };
    use crate::ivr::order_status::{OrderFacts, OrderState};

    const HOSTILE: &str = "O'Brien & Sons <Ltd> \"quoted\" Ann\u{8}e\u{1b}[0m\u{fffe}";
    let action = Some("/twilio/voice/menu?n=2&v=p&t=0&c=9007199254740993");
    let states = OrderState::ALL;
    let order = |state: OrderState, odd: bool| OrderFacts {
        name: "#1042".into(),
        number_spoken: "1 0 4 2".into(),
        state,
        partial: odd,
        partly_refunded: odd,
        carrier: odd.then(|| HOSTILE.to_string()),
        day: "Tuesday, November 17".into(),
        date: "2026-11-17".into(),
        expected_day: odd.then(|| "Tuesday, December 8".into()),
        expected_date: odd.then(|| "2026-12-08".into()),
        tracking_number: Some("1Z<&>".into()),
        total: Some("59.00".into()),
        currency: Some("USD".into()),
        refunds: if odd { 2 } else { 0 },
    };
    let menus = [
        MenuOptions {
            other_orders: true,
            agents_open: true,
            text_tracking: true,
            text_label: false,
            voicemail: false,
            voicemail_key: false,
        },
        MenuOptions {
            other_orders: false,
            agents_open: false,
            text_tracking: false,
            text_label: false,
            voicemail: true,
            voicemail_key: false,
        },
        MenuOptions {
            other_orders: true,
            agents_open: true,
            text_tracking: false,
            text_label: false,
            voicemail: true,
            voicemail_key: true,
        },
    ];
    let mut samples = Vec::new();
    for (i, state) in states.into_iter().enumerate() {
        let odd = i % 2 == 1;
        let menu = menus[i % menus.len()].clone();
        samples.push((
            Step::Menu(MenuStep {
                greet: Some(if odd { HOSTILE.into() } else { "Dana".into() }),
                closed_until: (!menu.agents_open).then(sample_opening),
                closed: !menu.agents_open,
                order: Some(order(state, odd)),
                menu: menu.clone(),
                reprompt: odd,
                // Every text result (and none) with every order state.
                text: [None, Some(SmsResult::Sent), Some(SmsResult::Failed)][i % 3],
                news: None,
            }),
            action,
        ));
        samples.push((Step::OtherOrders(OrdersStep { orders: vec![order(state, odd)], menu: menu.clone() }), action));
        samples.push((Step::Returns(returns_sample(i, HOSTILE, menu)), action));
    }
    for menu in menus.clone() {
        samples.push((
            Step::Menu(MenuStep {
                greet: None,
                closed_until: None,
                closed: true,
                order: None,
                menu: menu.clone(),
                reprompt: false,
                text: None,
                news: None,
            }),
            action,
        ));
        samples.push((Step::OtherOrders(OrdersStep { orders: vec![], menu: menu.clone() }), action));
        samples.push((
            Step::Returns(crate::ivr::returns::ReturnsStep {
                orders: vec![],
                window_days: menu.agents_open.then_some(30),
                past_window: if menu.agents_open { vec!["1 0 4 2".to_string()] } else { Vec::new() },
                menu: menu.clone(),
                label_text: None,
            }),
            action,
        ));
        samples.push((Step::Closed(ClosedStep { closed_until: Some(sample_opening()), menu: menu.clone() }), action));
        samples.push((Step::Closed(ClosedStep { closed_until: None, menu }), action));
    }
    for reason in AskReason::ALL.iter().copied() {
        let retries =
            [(None, None), (Some(RetryReason::NotFound), Some("1 0 4 2")), (Some(RetryReason::NoInput), None)];
        for (retry, entered) in retries {
            samples.push((
                Step::AskOrderNumber(AskOrderNumber { reason, retry, entered: entered.map(Into::into) }),
                action,
            ));
        }
    }
    for retry in [None, Some(RetryReason::Mismatch), Some(RetryReason::NoInput)] {
        for about in [PostalCodeOf::Account, PostalCodeOf::Order] {
            samples.push((Step::AskPostalCode(AskPostalCode { about, retry }), action));
        }
    }
    let context = CallContext {
        call_sid: "CA00000000000000000000000000000000".into(),
        from: "+15551234567".into(),
        customer_id: Some("9007199254740993".into()),
        first_name: Some(HOSTILE.into()),
        last_name: Some(HOSTILE.into()),
        verified: "postal_code",
        order_id: Some("9007199254741107".into()),
        order_name: Some("#1042".into()),
        order_state: Some("shipped".into()),
    };
    for reason in TransferReason::ALL.iter().copied() {
        samples
            .push((Step::Transfer(TransferStep { reason, context: context.clone(), news: None, greet: None }), None));
        samples.push((Step::Goodbye(GoodbyeStep { reason, closed_until: Some(sample_opening()) }), None));
        samples.push((Step::Goodbye(GoodbyeStep { reason, closed_until: None }), None));
    }
    samples.push((Step::Hold, Some("/twilio/voice/continue?n=2&v=n&t=0")));
    // Bad news first: each kind, with and without a greeting, put through and (closed) with the menu.
    for (i, news) in crate::domain::BadNews::ALL.iter().copied().enumerate() {
        let odd = i % 2 == 1;
        let facts = crate::ivr::bad_news::NewsFacts {
            news,
            order: (news != crate::domain::BadNews::RepeatCaller || odd).then(|| order(OrderState::Shipped, odd)),
            days: Some(6),
        };
        let greet = odd.then(|| HOSTILE.to_string());
        samples.push((
            Step::Transfer(TransferStep {
                reason: TransferReason::BadNews,
                context: context.clone(),
                news: Some(facts.clone()),
                greet: greet.clone(),
            }),
            None,
        ));
        samples.push((
            Step::Menu(MenuStep {
                greet,
                closed_until: Some(sample_opening()),
                closed: true,
                order: facts.order.clone(),
                menu: menus[1].clone(),
                reprompt: false,
                text: None,
                news: Some(facts),
            }),
            action,
        ));
    }
    for reason in VoicemailReason::ALL.iter().copied() {
        for closed_until in [None, Some(sample_opening())] {
            samples.push((Step::Voicemail(VoicemailStep { reason, closed_until }), None));
        }
    }
    samples
}

/// A built-in template's source, by file name (`menu.xml`): a starting point for an override.
pub fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, source)| *source)
}
