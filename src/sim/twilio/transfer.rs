//! What the emulated Twilio does when a call reaches `<Dial>` or `<Enqueue>`, with the outcome a
//! test asks for: it requests the `<Number url>` whisper for the answering party, waits in the
//! queue requesting `waitUrl` round after round (modelled time: speech at 150 words a minute,
//! `<Play>` as long as the script says, `<Pause length>`), then requests the verb's `action` with
//! the parameters Twilio sends, or reads on in the same document when there is none.
//!
//! Sources: twilio.com/docs/voice/twiml/dial (action: DialCallStatus, DialCallSid,
//! DialCallDuration; "If you do not provide an action URL … Twilio will continue to render the
//! original TwiML document"), …/twiml/number#url (the url's TwiML runs on the called party before
//! the bridge), …/twiml/enqueue (action: QueueResult, QueueSid, QueueTime, requested right away on
//! <Leave>, after both parties hang up when bridged; waitUrl: QueuePosition, QueueSid, QueueTime,
//! AvgQueueTime, CurrentQueueSize, MaxQueueSize; its document may use Play, Say, Pause, Hangup,
//! Redirect, Leave, Gather, and is requested again when it ends).

use super::{CallError, Turn, TwilioCaller, require_post, resolve_url};
use crate::twilio::twiml::Verb;

/// The default maximum size of a queue (twilio.com/docs/voice/twiml/enqueue).
const MAX_QUEUE_SIZE: u32 = 1000;
/// Modelled speaking rate of `<Say>`: 150 words a minute.
const SECONDS_PER_WORD: f64 = 0.4;

/// What happens at a `<Dial>` or `<Enqueue>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Transfer {
    /// The emulator stops at the hand-over; the call's ending names the verb.
    #[default]
    Stop,
    /// At `<Dial>`: the dialled party's answer.
    Dial(DialOutcome),
    /// At `<Enqueue>`: how the queue plays out.
    Queue(QueueScript),
}

/// A `<Dial>`'s result, as `DialCallStatus` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    /// Answered; the agent talks `talk_s` seconds and hangs up first (the caller is still there).
    Answered {
        talk_s: u32,
    },
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl DialOutcome {
    pub fn status(self) -> &'static str {
        match self {
            DialOutcome::Answered { .. } => "completed",
            DialOutcome::Busy => "busy",
            DialOutcome::NoAnswer => "no-answer",
            DialOutcome::Failed => "failed",
            DialOutcome::Canceled => "canceled",
        }
    }
}

/// How a queue treats the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueScript {
    /// The queue is full: the enqueue is refused at once.
    pub full: bool,
    /// An agent dequeues the caller after this many seconds in the queue; None: nobody does.
    pub answered_after_s: Option<u64>,
    /// Callers ahead when this one joins; one leaves every minute.
    pub ahead: u32,
    /// The queue's AvgQueueTime.
    pub avg_queue_time_s: u64,
    /// How long one `<Play>` of the hold music lasts.
    pub play_s: u64,
    /// At the first `<Gather>` of a wait document once the caller has waited this long, they
    /// press 1 (a call-back); None: they press nothing and the Gather times out.
    pub press_1_after_s: Option<u64>,
}

impl Default for QueueScript {
    fn default() -> Self {
        QueueScript {
            full: false,
            answered_after_s: None,
            ahead: 0,
            avg_queue_time_s: 0,
            play_s: 30,
            press_1_after_s: None,
        }
    }
}

/// What a transfer came to: the `action` request's extra parameters, and whether the caller is
/// still on the line to hear what comes next.
pub(super) struct TransferResult {
    pub params: Vec<(String, String)>,
    /// Seconds spent in the queue (0 for a Dial).
    pub queue_time_s: u64,
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

/// Seconds a verb of a wait document takes.
fn duration_of(verb: &Verb, play_s: u64) -> u64 {
    match verb.name.as_str() {
        "Say" => (verb.spoken().split_whitespace().count() as f64 * SECONDS_PER_WORD).ceil() as u64,
        "Play" => play_s * verb.attr("loop").and_then(|l| l.parse::<u64>().ok()).filter(|l| *l > 0).unwrap_or(1),
        "Pause" => verb.attr("length").and_then(|l| l.parse::<u64>().ok()).unwrap_or(1),
        _ => 0,
    }
}

impl TwilioCaller {
    /// Plays out a `<Dial>` as `outcome` says: the whisper of each answering noun with a `url`
    /// (recorded in `whispers`), then the action's parameters.
    pub(super) async fn dial(
        &self,
        call_sid: &str,
        doc_url: &str,
        dial: &Verb,
        outcome: DialOutcome,
        whispers: &mut Vec<Turn>,
    ) -> Result<TransferResult, CallError> {
        let child_sid = super::random_call_sid();
        if let DialOutcome::Answered { .. } = outcome {
            for noun in dial.children.iter().filter(|n| n.attr("url").is_some()) {
                require_post(noun)?;
                let url = resolve_url(doc_url, noun.attr("url").unwrap_or(""));
                let mut params = self.base_params(&child_sid, "in-progress");
                params.retain(|(n, _)| !matches!(n.as_str(), "To" | "Called" | "Direction"));
                params.extend(pairs(&[
                    ("To", noun.text.trim().to_string()),
                    ("Called", noun.text.trim().to_string()),
                    ("Direction", "outbound-dial".into()),
                    ("ParentCallSid", call_sid.to_string()),
                ]));
                whispers.push(self.post(&url, &params).await?);
            }
        }
        let duration = match outcome {
            DialOutcome::Answered { talk_s } => talk_s,
            _ => 0,
        };
        Ok(TransferResult {
            params: pairs(&[
                ("DialCallStatus", outcome.status().into()),
                ("DialCallSid", child_sid),
                ("DialCallDuration", duration.to_string()),
            ]),
            queue_time_s: 0,
        })
    }

    /// Keeps the caller in the queue as `script` says, requesting `waitUrl` round after round (its
    /// turns go into `turns`, what the caller hears through `hear`), until an agent takes the
    /// call, the wait document says `<Leave>` or `<Hangup>`, or the emulator's request limit.
    pub(super) async fn enqueue(
        &self,
        call_sid: &str,
        doc_url: &str,
        enqueue: &Verb,
        script: &QueueScript,
        turns: &mut Vec<Turn>,
        hear: &mut impl FnMut(&Verb),
    ) -> Result<Option<TransferResult>, CallError> {
        let queue_sid = "QU0d1e2a3b4c5d6e7f8091a2b3c4d5e6f7".to_string();
        let result = |result: &str, time: u64| {
            Some(TransferResult {
                params: pairs(&[
                    ("QueueResult", result.into()),
                    ("QueueSid", queue_sid.clone()),
                    ("QueueTime", time.to_string()),
                ]),
                queue_time_s: time,
            })
        };
        if script.full {
            return Ok(Some(TransferResult {
                params: pairs(&[("QueueResult", "queue-full".into())]),
                queue_time_s: 0,
            }));
        }
        let mut wait_url = enqueue.attr("waitUrl").map(|w| resolve_url(doc_url, w));
        if wait_url.is_some() {
            let method = Verb {
                name: "Enqueue".into(),
                attrs: enqueue.attr("waitUrlMethod").map(|m| vec![("method".into(), m.into())]).unwrap_or_default(),
                ..Verb::default()
            };
            require_post(&method)?;
        }
        let mut time = 0u64;
        loop {
            if let Some(after) = script.answered_after_s
                && time >= after
            {
                return Ok(result("bridged", time));
            }
            if turns.len() >= super::MAX_REQUESTS {
                return Ok(None);
            }
            let Some(url) = wait_url.clone() else {
                // Twilio's own hold music until someone answers; nobody ever does: the caller
                // waits until the emulator's request limit says so.
                return Ok(script.answered_after_s.and_then(|after| result("bridged", after)));
            };
            let ahead_now = u64::from(script.ahead).saturating_sub(time / 60);
            let mut params = self.base_params(call_sid, "in-progress");
            params.extend(pairs(&[
                ("QueueSid", queue_sid.clone()),
                ("QueuePosition", (ahead_now + 1).to_string()),
                ("QueueTime", time.to_string()),
                ("AvgQueueTime", script.avg_queue_time_s.to_string()),
                ("CurrentQueueSize", (ahead_now + 1).to_string()),
                ("MaxQueueSize", MAX_QUEUE_SIZE.to_string()),
            ]));
            let mut turn = self.post(&url, &params).await?;
            let Some(document) = turn.document.clone() else {
                turns.push(turn);
                return Ok(result("error", time));
            };
            let mut ended = None;
            for verb in &document.verbs {
                match verb.name.as_str() {
                    "Say" | "Play" | "Pause" => {
                        hear(verb);
                        turn.heard.push(verb.clone());
                        time += duration_of(verb, script.play_s);
                        // Dequeued mid-document: the wait stops there.
                        if script.answered_after_s.is_some_and(|after| time >= after) {
                            break;
                        }
                    }
                    "Leave" => {
                        ended = Some("leave");
                        break;
                    }
                    "Hangup" => {
                        ended = Some("hangup");
                        break;
                    }
                    "Redirect" => {
                        require_post(verb)?;
                        wait_url = Some(resolve_url(&url, verb.text.trim()));
                        break;
                    }
                    // A Gather in a wait document: its prompts are heard; the caller presses 1 when
                    // the script says, and the action's document takes over the wait (its Say is
                    // heard; Hangup or Leave ends it, Redirect goes back to waiting); otherwise it
                    // times out and the document reads on.
                    "Gather" => {
                        for prompt in &verb.children {
                            hear(prompt);
                            turn.heard.push(prompt.clone());
                            time += duration_of(prompt, script.play_s);
                        }
                        if script.press_1_after_s.is_none_or(|after| time < after) {
                            continue;
                        }
                        require_post(verb)?;
                        let action = resolve_url(&url, verb.attr("action").unwrap_or(""));
                        let mut params = self.base_params(call_sid, "in-progress");
                        params.push(("Digits".into(), "1".into()));
                        turns.push(std::mem::replace(&mut turn, self.post(&action, &params).await?));
                        let Some(answer) = turn.document.clone() else {
                            turns.push(turn);
                            return Ok(result("error", time));
                        };
                        for verb in &answer.verbs {
                            match verb.name.as_str() {
                                "Say" | "Play" | "Pause" => {
                                    hear(verb);
                                    turn.heard.push(verb.clone());
                                    time += duration_of(verb, script.play_s);
                                }
                                "Hangup" => ended = Some("hangup"),
                                "Leave" => ended = Some("leave"),
                                "Redirect" => wait_url = Some(resolve_url(&action, verb.text.trim())),
                                _ => {}
                            }
                            if ended.is_some() {
                                break;
                            }
                        }
                        break;
                    }
                    _ => {}
                }
            }
            turns.push(turn);
            if let Some(how) = ended {
                return Ok(result(how, time));
            }
        }
    }
}
