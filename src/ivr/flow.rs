//! The call flow: given who is calling and what they pressed, what to say and what to ask next.
//! Knows the caller lookup, the verification policy and limits, and the business hours; knows
//! nothing of HTTP or TwiML (a `Reply` names a step and its facts; `twilio` turns it into speech).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::future::Cache;
use serde::Serialize;

use super::bad_news::{NewsFacts, news_of};
use super::hours::{BusinessHours, NextOpening};
use super::order_status::{OrderFacts, spoken_digits};
use super::returns::ReturnsStep;
use super::state::{CallState, Stage};
use super::texts::{TextPlan, TextRequest, Texts};
use super::verification::{KeyedPostalCode, Subject, VerificationLimit};
use crate::clock::Clock;
use crate::config::{BadNewsPolicy, VerifyPolicy, VoicemailOffer};
use crate::domain::call::VerificationResult;
use crate::domain::{
    AskReason, Event, GoodbyeReason, Language, RetryReason, SmsResult, TextKind, TransferReason, Verification,
    Verified, VoicemailReason,
};
use crate::lookup::caller_id::CallerId;
use crate::lookup::{CallerAnswer, CallerLookup, CustomerCard, LookupError, OrderCard, OrderMatch, Source};
use crate::store::StoreError;

/// STIR/SHAKEN full attestation: the carrier vouches that the caller owns the number.
pub const FULL_ATTESTATION: &str = "TN-Validation-Passed-A";

/// A call as the flow sees it: who is calling, and how sure the network is of it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub call_sid: String,
    /// The caller ID as Twilio sent it (`From`).
    pub from: String,
    /// The number called (`To`): where a text comes from unless ORDERLINE_SMS_FROM says otherwise.
    pub to: Option<String>,
    pub stir_verstat: Option<String>,
}

/// What the caller did at the last question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Digits(String),
    /// The question timed out, or the caller pressed only `#`.
    Nothing,
    /// The caller said something that was not understood (or not with enough confidence).
    Unclear,
    /// The caller asked for a language by name ("español").
    Language(Language),
}

/// One turn of the call: the step to speak, where the answer goes, and what to record.
#[derive(Debug, Clone)]
pub struct Reply {
    pub step: Step,
    /// The question being asked and the state its answer carries (none when the call leaves
    /// the menu: transfer or goodbye).
    pub next: Option<(Stage, CallState)>,
    /// What happened, for the call record.
    pub events: Vec<Event>,
    pub outcome: Outcome,
    /// The language the step is said in.
    pub language: Language,
    /// The question offers the next configured language ("Para español, oprima nueve").
    pub offer: bool,
}

/// What the call has concluded so far, for the call record and the agent's screen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub customer_id: Option<i64>,
    pub verification: Option<Verification>,
    /// The transfer's reason as the call record keeps it: the spoken reason, except
    /// `VerificationLocked` (spoken as `NotVerified`), which tells the agent the caller was
    /// refused more guesses.
    pub transfer: Option<TransferReason>,
    /// The caller ID as the lookup parsed it, when this turn looked the caller up (so the call
    /// record does not parse it again).
    pub caller: Option<CallerId>,
}

/// The steps of the flow; each is one template in `twiml/`, and its fields are the facts the
/// template may speak.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Menu(MenuStep),
    OtherOrders(OrdersStep),
    Returns(ReturnsStep),
    AskOrderNumber(AskOrderNumber),
    AskPostalCode(AskPostalCode),
    Closed(ClosedStep),
    Transfer(TransferStep),
    Goodbye(GoodbyeStep),
    Hold,
    Voicemail(VoicemailStep),
}

impl Step {
    /// The template that speaks this step.
    pub fn template(&self) -> &'static str {
        match self {
            Step::Menu(_) => "menu",
            Step::OtherOrders(_) => "other_orders",
            Step::Returns(_) => "returns",
            Step::AskOrderNumber(_) => "ask_order_number",
            Step::AskPostalCode(_) => "ask_postal_code",
            Step::Closed(_) => "closed",
            Step::Transfer(_) => "transfer",
            Step::Goodbye(_) => "goodbye",
            Step::Hold => "hold",
            Step::Voicemail(_) => "voicemail",
        }
    }

    /// The question this step ends with, whose answer comes back at that stage's path; none
    /// when the call leaves the flow (transfer, goodbye, voicemail).
    pub fn asks(&self) -> Option<Stage> {
        match self {
            Step::Menu(_) | Step::OtherOrders(_) | Step::Returns(_) | Step::Closed(_) => Some(Stage::Menu),
            Step::AskOrderNumber(_) => Some(Stage::OrderNumber),
            Step::AskPostalCode(_) => Some(Stage::PostalCode),
            Step::Hold => Some(Stage::Continue),
            Step::Transfer(_) | Step::Goodbye(_) | Step::Voicemail(_) => None,
        }
    }
}

/// What the menu keys offer, as the templates need it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MenuOptions {
    /// 2: the caller's other recent orders (only when verified for the whole account).
    pub other_orders: bool,
    /// 0: someone, during business hours.
    pub agents_open: bool,
    /// 4: the tracking link by text (a tracking URL, a verified caller, a number that is not
    /// withheld, and texts configured).
    pub text_tracking: bool,
    /// 6: the return label's link by text; offered on the returns step (key 3) when an open
    /// return on a recent order has a label link (and a text may go to the caller, as for 4).
    pub text_label: bool,
    /// Voicemail is offered: 0 while the line is closed, and 5 at any time with
    /// ORDERLINE_VOICEMAIL=menu (see `voicemail_key`).
    pub voicemail: bool,
    /// 5 leaves a message (ORDERLINE_VOICEMAIL=menu).
    pub voicemail_key: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MenuStep {
    /// The first name to greet with, on the first menu of the call.
    pub greet: Option<String>,
    /// Outside business hours, on the first menu: when the line opens again, in words.
    pub closed_until: Option<NextOpening>,
    pub closed: bool,
    /// The latest order (or the one keyed in); none when the customer has no orders.
    pub order: Option<OrderFacts>,
    pub menu: MenuOptions,
    /// The last answer was invalid or missing: say so before the menu.
    pub reprompt: bool,
    /// The caller pressed 4: whether the text was sent (said before the menu).
    pub text: Option<SmsResult>,
    /// Bad news first, while nobody can take the call: said instead of the order's sentence.
    pub news: Option<NewsFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrdersStep {
    pub orders: Vec<OrderFacts>,
    pub menu: MenuOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct AskOrderNumber {
    /// Why we ask. No name is spoken: nobody is verified yet.
    pub reason: AskReason,
    /// Set when asking again: `NotFound` or `NoInput`.
    pub retry: Option<RetryReason>,
    /// What the caller keyed, spoken digit by digit (with `not_found`).
    pub entered: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AskPostalCode {
    /// Whose postal code: the account's (the latest order's) or the order keyed in. No name is
    /// spoken: a caller ID can be spoofed.
    pub about: PostalCodeOf,
    /// Set when asking again: `Mismatch` or `NoInput`.
    pub retry: Option<RetryReason>,
}

/// What a postal code is asked to prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PostalCodeOf {
    /// The account the calling number leads to: the code its latest order ships to.
    Account,
    /// The order whose number the caller keyed: the code that order ships to.
    Order,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClosedStep {
    pub closed_until: Option<NextOpening>,
    pub menu: MenuOptions,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransferStep {
    pub reason: TransferReason,
    pub context: CallContext,
    /// Bad news first (`reason` bad_news): what the caller hears before being put through.
    pub news: Option<NewsFacts>,
    /// The first name to greet with, before the news.
    pub greet: Option<String>,
}

/// The caller's context, handed to the agent with the call (Task attributes, whisper, SIP
/// headers) and shown on their screen.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CallContext {
    pub call_sid: String,
    pub from: String,
    /// As a string: Shopify IDs exceed what a JavaScript number holds.
    pub customer_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub verified: &'static str,
    /// As a string, like `customer_id`.
    pub order_id: Option<String>,
    pub order_name: Option<String>,
    pub order_state: Option<String>,
}

/// The caller is asked to leave a message after the tone (`<Record>`).
#[derive(Debug, Clone, Serialize)]
pub struct VoicemailStep {
    pub reason: VoicemailReason,
    /// When the line opens again, in words (a closed line).
    pub closed_until: Option<NextOpening>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GoodbyeStep {
    /// Outside business hours, where no transfer is offered.
    pub reason: GoodbyeReason,
    pub closed_until: Option<NextOpening>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("lookup: {0}")]
    Lookup(#[from] LookupError),
    #[error("the caller lookup did not finish in time")]
    LookupTimedOut,
    #[error("verification attempts: {0}")]
    Attempts(#[from] StoreError),
}

/// The most keys of one answer that are looked up, recorded or spoken back: an order number or
/// a menu key is far shorter, and an answer of 60,000 keys must not become a 120 KB reply.
pub const MAX_KEYS: usize = 20;

type PendingLookup = Shared<BoxFuture<'static, Result<CallerAnswer, LookupError>>>;

/// The longest a `continue` request waits for a lookup that made the caller hold.
const CONTINUE_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CallFlow {
    lookup: CallerLookup,
    clock: Arc<dyn Clock>,
    policy: VerifyPolicy,
    hours: Arc<BusinessHours>,
    hold_after: Duration,
    limit: VerificationLimit,
    tz: chrono_tz::Tz,
    /// Lookups that outlasted `hold_after`, by CallSid, for the `continue` request.
    pending: Cache<String, PendingLookup>,
    /// The tracking link by text (key 4), when configured.
    texts: Option<Texts>,
    /// When callers may leave a message (TwiML mode; `Off` for Media Streams).
    voicemail: VoicemailOffer,
    /// Bad news first (TwiML mode).
    bad_news: BadNewsPolicy,
    /// The shop's return window in days (key 3), when set.
    return_window: Option<u32>,
    /// The languages callers may hear, the default first (one: no choice is offered).
    languages: Vec<Language>,
}

impl CallFlow {
    pub fn new(
        lookup: CallerLookup,
        clock: Arc<dyn Clock>,
        policy: VerifyPolicy,
        hours: BusinessHours,
        hold_after: Duration,
        limit: VerificationLimit,
    ) -> CallFlow {
        let tz = hours.timezone();
        CallFlow {
            lookup,
            clock,
            policy,
            hours: Arc::new(hours),
            hold_after,
            limit,
            tz,
            pending: Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build(),
            texts: None,
            voicemail: VoicemailOffer::Off,
            bad_news: BadNewsPolicy { on: false, stalled_after: Duration::MAX, repeat_within: Duration::ZERO },
            return_window: None,
            languages: vec![Language::En],
        }
    }

    /// Speaks `languages` (the default first); with more than one, callers whose language is not
    /// known from Shopify are offered the next one, and key 9 (or its name) switches.
    pub fn with_languages(mut self, languages: Vec<Language>) -> CallFlow {
        if !languages.is_empty() {
            self.languages = languages;
        }
        self
    }

    /// The call's language: the state's when configured, else the default.
    fn lang(&self, state: CallState) -> Language {
        state.lang.filter(|l| self.languages.contains(l)).unwrap_or(self.languages[0])
    }

    /// The language key 9 switches to from `current`: the next configured one.
    fn next_language(&self, current: Language) -> Option<Language> {
        if self.languages.len() < 2 {
            return None;
        }
        let at = self.languages.iter().position(|l| *l == current).unwrap_or(0);
        Some(self.languages[(at + 1) % self.languages.len()])
    }

    /// The tag's language when this line speaks it (a Shopify locale: `es`, `es-MX`).
    fn spoken(&self, locale: Option<&str>) -> Option<Language> {
        locale.and_then(Language::of_tag).filter(|l| self.languages.contains(l))
    }

    /// Says the shop's return window on key 3, and which orders are past it.
    pub fn with_return_window(mut self, days: Option<u32>) -> CallFlow {
        self.return_window = days;
        self
    }

    /// Tells bad news first, as `policy` says.
    pub fn with_bad_news(mut self, policy: BadNewsPolicy) -> CallFlow {
        self.bad_news = policy;
        self
    }

    /// Offers voicemail as `offer` says (TwiML and Media Streams modes: `<Record>` is TwiML, which a
    /// Media Streams call reaches after its stream).
    pub fn with_voicemail(mut self, offer: VoicemailOffer) -> CallFlow {
        self.voicemail = offer;
        self
    }

    /// Offers the tracking link by text (key 4) through `texts`.
    pub fn with_texts(mut self, texts: Texts) -> CallFlow {
        self.texts = Some(texts);
        self
    }

    /// The incoming call. Looks the caller up; when that takes longer than `hold_after`, the
    /// caller hears "one moment" and the answer is picked up by the `continue` request.
    pub async fn incoming(&self, caller: &Caller) -> Result<Reply, FlowError> {
        let state = CallState { step: 1, ..CallState::default() };
        let lookup = self.lookup.clone();
        let from = caller.from.clone();
        let mut lookup: BoxFuture<'static, Result<CallerAnswer, LookupError>> =
            async move { lookup.lookup(&from).await }.boxed();
        // A warm caller's lookup is done at its first poll: answered here, no task needed. Only
        // one that has to wait (store, Shopify) becomes a task, which may outlast the hold.
        if let Poll::Ready(answer) = futures::poll!(&mut lookup) {
            return Ok(self.said_in(self.greet(caller, state, answer?).await?, state));
        }
        let task = tokio::spawn(lookup);
        let pending: PendingLookup =
            async move { task.await.unwrap_or_else(|e| Err(LookupError::Store(format!("lookup task failed: {e}")))) }
                .boxed()
                .shared();
        match tokio::time::timeout(self.hold_after, pending.clone()).await {
            Ok(answer) => Ok(self.said_in(self.greet(caller, state, answer?).await?, state)),
            Err(_) => {
                self.pending.insert(caller.call_sid.clone(), pending).await;
                let mut reply = reply(Step::Hold, Some(state.fresh()));
                reply.events.push(Event::Lookup("slow: caller asked to hold".into()));
                Ok(self.said_in(reply, state))
            }
        }
    }

    /// The reply's language: its next question's state's, else `state`'s.
    fn said_in(&self, mut reply: Reply, state: CallState) -> Reply {
        reply.language = self.lang(reply.next.map_or(state, |(_, next)| next));
        reply
    }

    /// A later request of the call: the answer to the question `stage` asked.
    pub async fn answer(
        &self,
        caller: &Caller,
        stage: Stage,
        state: CallState,
        input: Input,
    ) -> Result<Reply, FlowError> {
        let current = self.lang(state);
        let switch_to = match &input {
            _ if stage == Stage::Continue => None,
            Input::Language(l) if *l != current && self.languages.contains(l) => {
                Some((*l, format!("said \"{}\"", l.english_name())))
            }
            Input::Digits(d) if d.trim_end_matches('#') == "9" => {
                self.next_language(current).map(|l| (l, "key 9".into()))
            }
            _ => None,
        };
        if let Some((language, how)) = switch_to {
            let state = CallState { lang: Some(language), unclear: 0, ..state };
            let mut reply = self.ask_again(caller, stage, state, false).await?;
            if matches!(input, Input::Digits(_)) {
                reply.events.insert(0, Event::Key(Some("9".into())));
            }
            reply.events.push(self.language_event(language, &format!("chosen ({how})")));
            return Ok(self.said_in(reply, state));
        }
        if input == Input::Unclear && stage != Stage::Continue {
            // Not understood: asked again once with the keys spelled out, then keys only.
            let state = CallState { unclear: state.unclear.saturating_add(1).min(2), ..state };
            let mut reply = self.ask_again(caller, stage, state, true).await?;
            reply.events.insert(0, Event::Key(Some("?".into())));
            return Ok(self.said_in(reply, state));
        }
        // Understood after one spelled-out question: words are listened for again.
        let state = if state.unclear == 1 { CallState { unclear: 0, ..state } } else { state };
        let input = match input {
            Input::Unclear | Input::Language(_) => Input::Nothing,
            other => other,
        };
        let reply = self.dispatch(caller, stage, state, input).await?;
        Ok(self.said_in(reply, state))
    }

    /// The question of `stage` again (in the state's language): the menu with the order's
    /// status, the order number, the postal code. `reprompt`: after words not understood.
    async fn ask_again(
        &self,
        caller: &Caller,
        stage: Stage,
        state: CallState,
        reprompt: bool,
    ) -> Result<Reply, FlowError> {
        let state = CallState { step: state.step.saturating_add(1), ..state };
        Ok(match stage {
            Stage::Menu | Stage::Continue => {
                let mut reply = self
                    .dispatch(caller, Stage::Menu, CallState { tries: 0, ..state }, Input::Digits("1".into()))
                    .await?;
                // The menu's own "1" is not what the caller pressed.
                reply.events.retain(|e| !matches!(e, Event::Key(_)));
                if let Some((_, next)) = &mut reply.next {
                    next.tries = state.tries;
                }
                if let Step::Menu(menu) = &mut reply.step {
                    menu.reprompt = reprompt;
                }
                reply
            }
            Stage::OrderNumber => {
                let retry = reprompt.then_some(RetryReason::NoInput);
                let reason = if reprompt { AskReason::Retry } else { AskReason::Unknown };
                reply(Step::AskOrderNumber(AskOrderNumber { reason, retry, entered: None }), Some(state))
            }
            Stage::PostalCode => {
                let about = if state.order.is_some() { PostalCodeOf::Order } else { PostalCodeOf::Account };
                let retry = reprompt.then_some(RetryReason::NoInput);
                reply(Step::AskPostalCode(AskPostalCode { about, retry }), Some(state))
            }
        })
    }

    /// The call's language, for the call record and the agent's card: `Spanish (es): …`.
    fn language_event(&self, language: Language, why: &str) -> Event {
        Event::Language(format!("{} ({}): {why}", language.english_name(), language.code()))
    }

    async fn dispatch(
        &self,
        caller: &Caller,
        stage: Stage,
        state: CallState,
        input: Input,
    ) -> Result<Reply, FlowError> {
        match stage {
            Stage::Continue => {
                let answer = match self.pending.remove(&caller.call_sid).await {
                    Some(pending) => {
                        tokio::time::timeout(CONTINUE_WAIT, pending).await.map_err(|_| FlowError::LookupTimedOut)??
                    }
                    // Another instance put the caller on hold, or the entry expired: ask again.
                    None => self.lookup.lookup(&caller.from).await?,
                };
                self.greet(caller, state, answer).await
            }
            Stage::PostalCode => self.postal_code(caller, state, input).await,
            Stage::OrderNumber => self.order_number(caller, state, input).await,
            Stage::Menu => self.menu(caller, state, input).await,
        }
    }

    fn agents_open(&self) -> bool {
        self.hours.is_open(self.clock.now())
    }

    fn closed_until(&self, language: Language) -> Option<NextOpening> {
        let now = self.clock.now();
        if self.hours.is_open(now) { None } else { self.hours.next_opening_in(now, language) }
    }

    /// First words to a caller whose lookup is done.
    async fn greet(&self, caller: &Caller, state: CallState, answer: CallerAnswer) -> Result<Reply, FlowError> {
        let lookup_event = Event::Lookup(answer.source.as_str().to_string());
        let customers: &[CustomerCard] = answer.record.as_ref().map_or(&[], |r| &r.customers);
        let locale = match customers {
            [customer] => self.spoken(customer.locale.as_deref()),
            _ => None,
        };
        let state = CallState { lang: locale.filter(|l| *l != self.languages[0]), ..state };
        let mut reply = match customers {
            [] => {
                let reason = if answer.source == Source::Withheld { AskReason::Withheld } else { AskReason::Unknown };
                self.ask_order_number(state.fresh(), reason)
            }
            [customer] => self.greet_customer(caller, state, customer).await?,
            _ => self.ask_order_number(state.fresh(), AskReason::Shared),
        };
        reply.events.insert(0, lookup_event);
        if self.languages.len() > 1 {
            let language = self.lang(state);
            let why = match (locale, customers) {
                (Some(_), [customer]) => {
                    format!("the customer's locale {}", customer.locale.as_deref().unwrap_or_default())
                }
                _ => "the line's default".to_string(),
            };
            reply.events.push(self.language_event(language, &why));
            // Only a caller whose language is not known hears the choice, and only at a question.
            reply.offer = locale.is_none() && reply.next.is_some();
        }
        reply.outcome.caller = Some(answer.caller);
        Ok(reply)
    }

    async fn greet_customer(
        &self,
        caller: &Caller,
        state: CallState,
        customer: &CustomerCard,
    ) -> Result<Reply, FlowError> {
        let state = CallState { customer: Some(customer.id), ..state };
        let verified = match self.policy {
            VerifyPolicy::None => Verified::NotRequired,
            VerifyPolicy::CallerId if caller.stir_verstat.as_deref() == Some(FULL_ATTESTATION) => Verified::CallerId,
            VerifyPolicy::CallerId | VerifyPolicy::PostalCode => Verified::No,
        };
        if verified == Verified::No {
            let subjects = subjects(Subject::Customer(customer.id), caller);
            if let Some(reached) = self.limit.exhausted(&subjects).await? {
                return Ok(self.locked_out(caller, state, reached, Some(customer)));
            }
            let mut reply = if account_postal_code(customer).is_some() {
                let step = Step::AskPostalCode(AskPostalCode { about: PostalCodeOf::Account, retry: None });
                reply(step, Some(state.fresh()))
            } else {
                // Nothing on file to check against: the caller proves an order instead.
                self.ask_order_number(state.fresh(), AskReason::Verify)
            };
            reply.outcome.customer_id = Some(customer.id);
            return Ok(reply);
        }
        let state = CallState { verified, ..state };
        let reply = self.menu_for_customer(caller, state.fresh(), customer, true, false);
        let mut reply = self.news_first(caller, state, reply, Some(customer), None).await;
        reply.events.push(passed(verified));
        reply.outcome.verification = Some(Verification::Passed(verified));
        Ok(reply)
    }

    /// Too many failed verifications for this customer or number: no more guesses, only a
    /// person (or goodbye when nobody is there); the agent's card says why.
    fn locked_out(
        &self,
        caller: &Caller,
        state: CallState,
        reached: &Subject,
        customer: Option<&CustomerCard>,
    ) -> Reply {
        let context = self.context(caller, state, customer, None);
        let mut reply = self.give_up(TransferReason::NotVerified, context, self.lang(state));
        let window = humantime::format_duration(self.limit.window);
        let why = format!(
            "{} failed postal codes within {window} for this {}",
            self.limit.max_failures,
            reached.as_str().replace('_', " ")
        );
        reply
            .events
            .insert(0, Event::Verification { method: Verified::PostalCode, result: VerificationResult::Locked(why) });
        reply.outcome.verification = Some(Verification::Failed);
        if reply.outcome.transfer.is_some() {
            reply.outcome.transfer = Some(TransferReason::VerificationLocked);
        }
        reply.outcome.customer_id = customer.map(|c| c.id).or(state.customer);
        reply
    }

    fn ask_order_number(&self, state: CallState, reason: AskReason) -> Reply {
        let step = Step::AskOrderNumber(AskOrderNumber { reason, retry: None, entered: None });
        reply(step, Some(state))
    }

    /// The menu about a customer's latest order.
    fn menu_for_customer(
        &self,
        caller: &Caller,
        state: CallState,
        customer: &CustomerCard,
        greet: bool,
        reprompt: bool,
    ) -> Reply {
        let order = customer.orders.first().map(|o| OrderFacts::of_in(o, self.tz, self.lang(state)));
        let menu = self.menu_options(caller, state.verified, customer.orders.first());
        let closed = !menu.agents_open;
        let step = Step::Menu(MenuStep {
            greet: if greet { customer.first_name.as_deref().map(str::to_string) } else { None },
            closed_until: if greet && closed { self.closed_until(self.lang(state)) } else { None },
            closed,
            order,
            menu,
            reprompt,
            text: None,
            news: None,
        });
        let mut reply = reply(step, Some(state));
        reply.outcome.customer_id = Some(customer.id);
        reply
    }

    /// The menu about one order the caller keyed in.
    fn menu_for_order(
        &self,
        caller: &Caller,
        state: CallState,
        found: &OrderMatch,
        greet: bool,
        reprompt: bool,
    ) -> Reply {
        let menu = self.menu_options(caller, state.verified, Some(&found.order));
        let closed = !menu.agents_open;
        let step = Step::Menu(MenuStep {
            greet: if greet { found.first_name.clone() } else { None },
            closed_until: if greet && closed { self.closed_until(self.lang(state)) } else { None },
            closed,
            order: Some(OrderFacts::of_in(&found.order, self.tz, self.lang(state))),
            menu,
            reprompt,
            text: None,
            news: None,
        });
        let mut reply = reply(step, Some(state));
        reply.outcome.customer_id = found.customer_id;
        reply
    }

    fn menu_options(&self, caller: &Caller, verified: Verified, order: Option<&OrderCard>) -> MenuOptions {
        MenuOptions {
            other_orders: verified.covers_account(),
            agents_open: self.agents_open(),
            text_tracking: self.texts.as_ref().and_then(|t| t.plan(verified, &caller.from, order)).is_some(),
            text_label: false,
            voicemail: match self.voicemail {
                VoicemailOffer::Off => false,
                VoicemailOffer::On => !self.agents_open(),
                VoicemailOffer::Menu => true,
            },
            voicemail_key: self.voicemail == VoicemailOffer::Menu,
        }
    }

    async fn postal_code(&self, caller: &Caller, state: CallState, input: Input) -> Result<Reply, FlowError> {
        // What is being proved: the order keyed in, or the account the calling number leads to.
        let proving = match state.order {
            Some(order) => match self.lookup.order_by_id(order).await? {
                Some(found) => Proving::Order(found),
                None => return Ok(self.ask_order_number(state.fresh(), AskReason::Unknown)),
            },
            None => match self.customer_of(caller, state).await? {
                Some(customer) => Proving::Account(customer),
                // The number no longer leads to that customer (changed meanwhile): start over.
                None => return Ok(self.ask_order_number(state.fresh(), AskReason::Unknown)),
            },
        };
        let (expected, about, subject) = match &proving {
            Proving::Account(c) => (account_postal_code(c), PostalCodeOf::Account, Subject::Customer(c.id)),
            Proving::Order(o) => {
                let subject = o.customer_id.map_or(Subject::Order(o.order.id), Subject::Customer);
                (o.order.shipping_zip.as_deref().and_then(KeyedPostalCode::of), PostalCodeOf::Order, subject)
            }
        };
        let entered = Event::PostalCode { entered: true };
        let (retry, event) = match &input {
            Input::Digits(d) if expected.as_ref().is_some_and(|code| code.matches(d)) => {
                let mut reply = match &proving {
                    Proving::Account(customer) => {
                        let state = CallState { verified: Verified::PostalCode, ..state };
                        let reply = self.menu_for_customer(caller, state.fresh(), customer, true, false);
                        let mut reply = self.news_first(caller, state, reply, Some(customer), None).await;
                        reply.events.push(passed(Verified::PostalCode));
                        reply.outcome.verification = Some(Verification::Passed(Verified::PostalCode));
                        reply
                    }
                    Proving::Order(found) => {
                        let state = CallState { verified: Verified::OrderNumber, ..state };
                        let reply = self.menu_for_order(caller, state.fresh(), found, true, false);
                        let mut reply = self.news_first(caller, state, reply, None, Some(found)).await;
                        reply.events.push(passed(Verified::OrderNumber));
                        reply.outcome.verification = Some(Verification::Passed(Verified::OrderNumber));
                        reply
                    }
                };
                reply.events.insert(0, entered);
                return Ok(reply);
            }
            Input::Digits(_) => {
                let subjects = subjects(subject, caller);
                self.limit.record_failure(&subjects).await?;
                if let Some(reached) = self.limit.exhausted(&subjects).await? {
                    let mut reply = self.locked_out(caller, state, reached, proving.customer());
                    reply.events.insert(0, entered);
                    return Ok(reply);
                }
                (RetryReason::Mismatch, entered)
            }
            Input::Nothing | Input::Unclear | Input::Language(_) => {
                (RetryReason::NoInput, Event::PostalCode { entered: false })
            }
        };
        if state.tries == 0 {
            let step = Step::AskPostalCode(AskPostalCode { about, retry: Some(retry) });
            let mut reply = reply(step, Some(state.retry()));
            reply.events.insert(0, event);
            return Ok(reply);
        }
        let context = self.context(caller, state, proving.customer(), None);
        let mut reply = self.give_up(TransferReason::NotVerified, context, self.lang(state));
        reply.events.insert(0, event);
        reply
            .events
            .insert(1, Event::Verification { method: Verified::PostalCode, result: VerificationResult::Failed });
        reply.outcome.verification = Some(Verification::Failed);
        Ok(reply)
    }

    async fn order_number(&self, caller: &Caller, state: CallState, input: Input) -> Result<Reply, FlowError> {
        let digits = match &input {
            Input::Digits(d) => d.chars().filter(char::is_ascii_digit).take(MAX_KEYS + 1).collect::<String>(),
            Input::Nothing | Input::Unclear | Input::Language(_) => String::new(),
        };
        // Longer than any order number: not looked up, recorded or spoken back.
        let digits = if digits.len() > MAX_KEYS { String::new() } else { digits };
        let key_event = Event::Key((!digits.is_empty()).then(|| digits.clone()));
        let found = if digits.is_empty() { None } else { self.lookup.order_by_number(&digits).await? };
        if let Some(found) = &found
            && self.policy != VerifyPolicy::None
        {
            // The order number alone proves nothing (order numbers are sequential): the caller
            // keys the postal code that order ships to before hearing anything about it.
            let customer = found.customer_id.or(state.customer);
            let state = CallState { order: Some(found.order.id), customer, verified: Verified::No, ..state };
            let subject = found.customer_id.map_or(Subject::Order(found.order.id), Subject::Customer);
            let subjects = subjects(subject, caller);
            let mut reply = if let Some(reached) = self.limit.exhausted(&subjects).await? {
                self.locked_out(caller, state, reached, None)
            } else if found.order.shipping_zip.as_deref().and_then(KeyedPostalCode::of).is_some() {
                let step = Step::AskPostalCode(AskPostalCode { about: PostalCodeOf::Order, retry: None });
                reply(step, Some(state.fresh()))
            } else {
                let mut reply = self.give_up(
                    TransferReason::NotVerified,
                    self.context(caller, state, None, None),
                    self.lang(state),
                );
                reply.events.insert(
                    0,
                    Event::Verification {
                        method: Verified::OrderNumber,
                        result: VerificationResult::Unverifiable("no postal code on file to check".into()),
                    },
                );
                reply.outcome.verification = Some(Verification::Failed);
                reply
            };
            reply.events.insert(0, key_event);
            reply.outcome.customer_id = customer;
            return Ok(reply);
        }
        if let Some(found) = found {
            let state = CallState { order: Some(found.order.id), verified: Verified::OrderNumber, ..state };
            let state = CallState { customer: found.customer_id.or(state.customer), ..state };
            let reply = self.menu_for_order(caller, state.fresh(), &found, true, false);
            let mut reply = self.news_first(caller, state, reply, None, Some(&found)).await;
            reply.events.insert(0, key_event);
            reply.events.push(Event::Order(found.order.name.to_string()));
            reply.events.push(passed(Verified::OrderNumber));
            reply.outcome.verification = Some(Verification::Passed(Verified::OrderNumber));
            return Ok(reply);
        }
        let retry = if digits.is_empty() { RetryReason::NoInput } else { RetryReason::NotFound };
        if state.tries == 0 {
            let step = Step::AskOrderNumber(AskOrderNumber {
                reason: AskReason::Retry,
                retry: Some(retry),
                entered: (!digits.is_empty()).then(|| spoken_digits(&digits)),
            });
            let mut reply = reply(step, Some(state.retry()));
            reply.events.insert(0, key_event);
            return Ok(reply);
        }
        let reason = if digits.is_empty() { TransferReason::NoInput } else { TransferReason::OrderNotFound };
        let mut reply = self.give_up(reason, self.context(caller, state, None, None), self.lang(state));
        reply.events.insert(0, key_event);
        Ok(reply)
    }

    async fn menu(&self, caller: &Caller, state: CallState, input: Input) -> Result<Reply, FlowError> {
        // What the menu is about: the order keyed in, or the verified customer's account.
        let about = match (state.order, state.verified.covers_account()) {
            (Some(order), false) if state.verified == Verified::OrderNumber => {
                match self.lookup.order_by_id(order).await? {
                    Some(found) => About::Order(found),
                    None => return Ok(self.ask_order_number(state.fresh(), AskReason::Unknown)),
                }
            }
            (_, true) => match self.customer_of(caller, state).await? {
                Some(customer) => About::Customer(customer),
                None => return Ok(self.ask_order_number(state.fresh(), AskReason::Unknown)),
            },
            // Not verified: nobody should be at the menu; start the call's questions over.
            (_, false) => return Ok(self.ask_order_number(state.fresh(), AskReason::Unknown)),
        };
        let key = match &input {
            Input::Digits(d) => d.trim_end_matches('#').chars().take(MAX_KEYS).collect(),
            Input::Nothing | Input::Unclear | Input::Language(_) => String::new(),
        };
        let key_event = Event::Key((!key.is_empty()).then(|| key.clone()));
        let menu = self.menu_options(caller, state.verified, about.orders().first().copied());
        let mut reply = match (key.as_str(), &about) {
            ("4", about) if menu.text_tracking => self.text_tracking(caller, state, about).await,
            ("1", About::Customer(c)) => self.menu_for_customer(caller, state.fresh(), c, false, false),
            ("1", About::Order(o)) => self.menu_for_order(caller, state.fresh(), o, false, false),
            ("2", About::Customer(c)) if menu.other_orders => {
                let orders = c.orders.iter().skip(1).map(|o| OrderFacts::of_in(o, self.tz, self.lang(state))).collect();
                reply(Step::OtherOrders(OrdersStep { orders, menu }), Some(state.fresh()))
            }
            ("3", about) => self.returns(caller, state, about, menu, None),
            ("6", about) if self.label_plan(caller, state, about).is_some() => {
                self.text_label(caller, state, about, menu).await
            }
            ("0", about) if menu.agents_open => {
                let (customer, order) = about.parts();
                self.transfer(TransferReason::Asked, self.context(caller, state, customer, order))
            }
            ("0", _) if menu.voicemail => self.voicemail(VoicemailReason::Closed, self.lang(state)),
            ("5", _) if menu.voicemail_key => self.voicemail(VoicemailReason::Asked, self.lang(state)),
            // "Leave a message" said while the line is closed: the message 0 would lead to.
            ("5", _) if menu.voicemail => self.voicemail(VoicemailReason::Closed, self.lang(state)),
            ("0", _) => {
                let step = Step::Closed(ClosedStep { closed_until: self.closed_until(self.lang(state)), menu });
                reply(step, Some(state.fresh()))
            }
            // Invalid or none: once more, then someone (or goodbye, when nobody is there).
            (_, about) if state.tries == 0 => match about {
                About::Customer(c) => self.menu_for_customer(caller, state.retry(), c, false, true),
                About::Order(o) => self.menu_for_order(caller, state.retry(), o, false, true),
            },
            (_, about) => {
                let (customer, order) = about.parts();
                let reason = if key.is_empty() { TransferReason::NoInput } else { TransferReason::InvalidKey };
                self.give_up(reason, self.context(caller, state, customer, order), self.lang(state))
            }
        };
        // Every menu of the call speaks the news instead of the reassurance, not only the first.
        if matches!(reply.step, Step::Menu(_)) {
            let (customer, order) = about.parts();
            reply = self.news_first(caller, state, reply, customer, order).await;
        }
        reply.events.insert(0, key_event);
        if let Some(c) = about.customer_id() {
            reply.outcome.customer_id.get_or_insert(c);
        }
        Ok(reply)
    }

    /// Key 4: the tracking link by text, then the menu again saying whether it was sent. The
    /// sender answers within its budget whatever Twilio does; the call goes on either way.
    async fn text_tracking(&self, caller: &Caller, state: CallState, about: &About) -> Reply {
        let order = about.orders().first().copied();
        let plan = self.texts.as_ref().and_then(|t| Some((t, t.plan(state.verified, &caller.from, order)?)));
        let outcome = match (plan, order) {
            (Some((texts, plan)), Some(order)) => {
                let request = TextRequest {
                    call_sid: caller.call_sid.clone(),
                    customer_id: about.customer_id(),
                    order_id: order.id,
                    kind: TextKind::Tracking,
                    to: plan.to.as_str().to_string(),
                    called: caller.to.clone(),
                    body: plan.body,
                };
                Some(texts.sender.send(request).await)
            }
            _ => None,
        };
        let mut reply = match about {
            About::Customer(c) => self.menu_for_customer(caller, state.fresh(), c, false, false),
            About::Order(o) => self.menu_for_order(caller, state.fresh(), o, false, false),
        };
        if let Step::Menu(step) = &mut reply.step {
            step.text = Some(outcome.as_ref().map_or(SmsResult::Failed, |o| o.result));
        }
        let detail = outcome.map_or_else(|| "failed: not offered".to_string(), |o| o.detail);
        reply.events.push(Event::Sms(detail));
        reply
    }

    /// Key 3: each recent order's returns and refunds, offering 6 when a return label can be
    /// texted; `label_text` says first how the label text went (after 6).
    fn returns(
        &self,
        caller: &Caller,
        state: CallState,
        about: &About,
        mut menu: MenuOptions,
        label_text: Option<SmsResult>,
    ) -> Reply {
        menu.text_label = self.label_plan(caller, state, about).is_some();
        let mut step =
            ReturnsStep::of_in(&about.orders(), self.clock.now(), self.tz, self.return_window, menu, self.lang(state));
        step.label_text = label_text;
        reply(Step::Returns(step), Some(state.fresh()))
    }

    fn label_plan(&self, caller: &Caller, state: CallState, about: &About) -> Option<TextPlan> {
        self.texts.as_ref()?.plan_label(state.verified, &caller.from, &about.orders())
    }

    /// Key 6: the return label's link by text, then the returns again saying whether it was sent.
    async fn text_label(&self, caller: &Caller, state: CallState, about: &About, menu: MenuOptions) -> Reply {
        let outcome = match (self.texts.as_ref(), self.label_plan(caller, state, about)) {
            (Some(texts), Some(plan)) => {
                let request = TextRequest {
                    call_sid: caller.call_sid.clone(),
                    customer_id: about.customer_id(),
                    order_id: plan.order_id,
                    kind: TextKind::ReturnLabel,
                    to: plan.to.as_str().to_string(),
                    called: caller.to.clone(),
                    body: plan.body,
                };
                Some(texts.sender.send(request).await)
            }
            _ => None,
        };
        let result = outcome.as_ref().map_or(SmsResult::Failed, |o| o.result);
        let mut reply = self.returns(caller, state, about, menu, Some(result));
        let detail = outcome.map_or_else(|| "failed: not offered".to_string(), |o| o.detail);
        reply.events.push(Event::Sms(format!("return label {detail}")));
        reply
    }

    /// Bad news first: when the order a verified caller is about to hear about went wrong (or
    /// they called again soon), the menu's reassurance gives way to the honest state and an
    /// apology, and they go to a person with priority while someone is there; outside hours the
    /// menu follows the news. Any other reply passes unchanged.
    async fn news_first(
        &self,
        caller: &Caller,
        state: CallState,
        mut reply: Reply,
        customer: Option<&CustomerCard>,
        found: Option<&OrderMatch>,
    ) -> Reply {
        if !self.bad_news.on {
            return reply;
        }
        let Step::Menu(menu) = &mut reply.step else { return reply };
        let order = found.map(|o| &o.order).or_else(|| customer.and_then(|c| c.orders.first()));
        let customer_id = customer.map(|c| c.id).or_else(|| found.and_then(|o| o.customer_id));
        let now = self.clock.now();
        let recent = match customer_id {
            Some(id) => {
                let since = now - chrono::Duration::from_std(self.bad_news.repeat_within).unwrap_or_default();
                self.lookup.customer_calls_since(id, since, &caller.call_sid).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not count the customer's recent calls");
                    0
                })
            }
            None => 0,
        };
        let facts = menu.order.clone();
        let Some(news) = news_of(order.zip(facts.as_ref()), recent, now, &self.bad_news) else { return reply };
        reply.events.push(Event::BadNews(news.detail()));
        if !self.agents_open() {
            menu.news = Some(news);
            return reply;
        }
        let greet = menu.greet.clone();
        let context = self.context(caller, state, customer, found);
        reply.step = Step::Transfer(TransferStep { reason: TransferReason::BadNews, context, news: Some(news), greet });
        reply.next = None;
        // The caller hears the news and a transfer, not the menu.
        for event in reply.events.iter_mut() {
            if *event == Event::Step("menu") {
                *event = Event::Step("transfer");
            }
        }
        reply.events.push(Event::Transfer(TransferReason::BadNews));
        reply.outcome.transfer = Some(TransferReason::BadNews);
        reply
    }

    /// The caller leaves a message: the `<Record>` step, which ends the flow's questions (Twilio
    /// posts the recording to `/twilio/voicemail/*`).
    fn voicemail(&self, reason: VoicemailReason, language: Language) -> Reply {
        let closed_until = if reason == VoicemailReason::Closed { self.closed_until(language) } else { None };
        let mut reply = reply(Step::Voicemail(VoicemailStep { reason, closed_until }), None);
        reply.events.push(Event::Voicemail(format!("offered: {reason}")));
        reply
    }

    /// After the second failed answer: someone, during business hours; goodbye otherwise.
    fn give_up(&self, reason: TransferReason, context: CallContext, language: Language) -> Reply {
        if self.agents_open() {
            self.transfer(reason, context)
        } else {
            let step = Step::Goodbye(GoodbyeStep { reason, closed_until: self.closed_until(language) });
            let mut reply = reply(step, None);
            reply.events.push(Event::Goodbye(reason));
            reply
        }
    }

    fn transfer(&self, reason: TransferReason, context: CallContext) -> Reply {
        let mut reply = reply(Step::Transfer(TransferStep { reason, context, news: None, greet: None }), None);
        reply.events.push(Event::Transfer(reason));
        reply.outcome.transfer = Some(reason);
        reply
    }

    fn context(
        &self,
        caller: &Caller,
        state: CallState,
        customer: Option<&CustomerCard>,
        order: Option<&OrderMatch>,
    ) -> CallContext {
        let order_card = order.map(|o| &o.order).or_else(|| customer.and_then(|c| c.orders.first()));
        let may_name = state.verified != Verified::No;
        CallContext {
            call_sid: caller.call_sid.clone(),
            from: caller.from.clone(),
            customer_id: customer.map(|c| c.id).or(order.and_then(|o| o.customer_id)).map(|id| id.to_string()),
            first_name: customer
                .and_then(|c| c.first_name.as_deref().map(str::to_string))
                .or_else(|| order.and_then(|o| o.first_name.clone())),
            last_name: customer
                .and_then(|c| c.last_name.as_deref().map(str::to_string))
                .or_else(|| order.and_then(|o| o.last_name.clone())),
            verified: state.verified.as_str(),
            order_id: order_card.filter(|_| may_name).map(|o| o.id.to_string()),
            order_name: order_card.filter(|_| may_name).map(|o| o.name.to_string()),
            order_state: order_card.filter(|_| may_name).map(|o| OrderFacts::of(o, self.tz).state.as_str().to_string()),
        }
    }

    /// The customer this call is about, as the caller's number finds them now.
    async fn customer_of(&self, caller: &Caller, state: CallState) -> Result<Option<CustomerCard>, FlowError> {
        let answer = self.lookup.lookup(&caller.from).await?;
        let Some(record) = answer.record else { return Ok(None) };
        Ok(record.customers.iter().find(|c| Some(c.id) == state.customer).cloned())
    }
}

/// What a postal code is checked against.
enum Proving {
    Account(CustomerCard),
    Order(OrderMatch),
}

impl Proving {
    fn customer(&self) -> Option<&CustomerCard> {
        match self {
            Proving::Account(c) => Some(c),
            Proving::Order(_) => None,
        }
    }
}

/// What a failed verification counts against: the customer (or order), and the calling number.
fn subjects(about: Subject, caller: &Caller) -> Vec<Subject> {
    std::iter::once(about).chain(Subject::number(&caller.from)).collect()
}

enum About {
    Customer(CustomerCard),
    Order(OrderMatch),
}

impl About {
    fn orders(&self) -> Vec<&OrderCard> {
        match self {
            About::Customer(c) => c.orders.iter().collect(),
            About::Order(o) => vec![&o.order],
        }
    }

    fn parts(&self) -> (Option<&CustomerCard>, Option<&OrderMatch>) {
        match self {
            About::Customer(c) => (Some(c), None),
            About::Order(o) => (None, Some(o)),
        }
    }

    fn customer_id(&self) -> Option<i64> {
        match self {
            About::Customer(c) => Some(c.id),
            About::Order(o) => o.customer_id,
        }
    }
}

fn passed(method: Verified) -> Event {
    Event::Verification { method, result: VerificationResult::Passed }
}

/// The step, and the state its question's answer carries (the stage is the step's question).
fn reply(step: Step, next: Option<CallState>) -> Reply {
    let next = next.and_then(|state| Some((step.asks()?, state)));
    let events = vec![Event::Step(step.template())];
    Reply { step, next, events, outcome: Outcome::default(), language: Language::En, offer: false }
}

/// The postal code a caller must key to prove the account: the latest order's shipping address,
/// else the customer's default address. None when it is too short to prove anything.
fn account_postal_code(customer: &CustomerCard) -> Option<KeyedPostalCode> {
    let zip = customer.orders.first().and_then(|o| o.shipping_zip.as_deref()).or(customer.default_zip.as_deref())?;
    KeyedPostalCode::of(zip)
}
