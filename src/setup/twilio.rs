//! `orderline setup twilio`: what the line's Twilio number must hold (VoiceUrl, VoiceFallbackUrl,
//! StatusCallback and their methods, all under ORDERLINE_PUBLIC_URL), the difference from what it
//! holds, and one update with only what differs. Plans completely before changing anything.

use crate::config::Settings;
use crate::domain::{PhoneNumber, mask_phone};
use crate::twilio::public_url::PublicUrl;
use crate::twilio::rest::{IncomingNumber, TwilioError, TwilioRest};
use crate::twilio::voice::{FALLBACK_PATH, STATUS_PATH, VOICE_PATH};

/// One setting of the number that must change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// Twilio's parameter name (`VoiceUrl`).
    pub param: &'static str,
    pub from: String,
    pub to: String,
}

/// The number as found, and what must change on it (empty: nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioPlan {
    pub number: IncomingNumber,
    pub changes: Vec<FieldChange>,
}

/// What the number must hold for ORDERLINE_PUBLIC_URL `public_url`, as Twilio's update
/// parameters with the current value read from `number`.
fn wanted(public_url: &str, number: &IncomingNumber) -> Vec<(&'static str, Option<String>, String)> {
    let urls = PublicUrl::new(public_url);
    let now = |v: &Option<String>| v.clone();
    vec![
        ("VoiceUrl", now(&number.voice_url), urls.to(VOICE_PATH)),
        ("VoiceMethod", now(&number.voice_method), "POST".into()),
        ("VoiceFallbackUrl", now(&number.voice_fallback_url), urls.to(FALLBACK_PATH)),
        ("VoiceFallbackMethod", now(&number.voice_fallback_method), "POST".into()),
        ("StatusCallback", now(&number.status_callback), urls.to(STATUS_PATH)),
        ("StatusCallbackMethod", now(&number.status_callback_method), "POST".into()),
        // A TwiML app on the number overrides every URL above (IncomingPhoneNumber resource:
        // "If a voice_application_sid is present, we ignore all of the voice urls"): cleared.
        ("VoiceApplicationSid", now(&number.voice_application_sid), String::new()),
    ]
}

/// The number named by `--number` (else TWILIO_PHONE_NUMBER), as E.164.
pub fn number_to_configure(settings: &Settings, flag: Option<&str>) -> Result<String, String> {
    let raw = flag
        .map(str::to_string)
        .or_else(|| settings.twilio.phone_number.clone())
        .ok_or("no number given: pass --number +1… (the Twilio number callers dial) or set TWILIO_PHONE_NUMBER")?;
    PhoneNumber::parse(&raw, Some(&settings.lookup.default_region)).map(|n| n.to_string()).map_err(|_| {
        format!("{} is not a phone number: give the Twilio number in E.164, e.g. +14155550100", mask_phone(&raw))
    })
}

/// Finds the number and works out the difference; changes nothing.
pub async fn plan(rest: &TwilioRest, settings: &Settings, e164: &str) -> Result<TwilioPlan, String> {
    let number = rest.find_number(e164).await.map_err(|e| explain(&e, e164, settings))?.ok_or_else(|| {
        format!(
            "the Twilio account {} has no number {}: check --number (or TWILIO_PHONE_NUMBER) against Phone Numbers → \
             Active numbers, and TWILIO_ACCOUNT_SID (a number bought in a subaccount belongs to that subaccount)",
            rest.credentials().account_sid,
            mask_phone(e164)
        )
    })?;
    Ok(plan_for(number, settings))
}

/// The difference between what `number` holds and what this instance needs.
pub fn plan_for(number: IncomingNumber, settings: &Settings) -> TwilioPlan {
    let changes = wanted(&settings.server.public_url, &number)
        .into_iter()
        .filter(|(_, now, want)| now.as_deref().unwrap_or("") != want)
        .map(|(param, now, to)| FieldChange { param, from: now.unwrap_or_default(), to })
        .collect();
    TwilioPlan { number, changes }
}

/// Sends the plan's changes in one update.
pub async fn apply(rest: &TwilioRest, settings: &Settings, plan: &TwilioPlan) -> Result<(), String> {
    if plan.changes.is_empty() {
        return Ok(());
    }
    let fields: Vec<(&str, &str)> = plan.changes.iter().map(|c| (c.param, c.to.as_str())).collect();
    let updated = rest
        .update_number(&plan.number.sid, &fields)
        .await
        .map_err(|e| explain(&e, &plan.number.phone_number, settings))?;
    let left = wanted(&settings.server.public_url, &updated)
        .into_iter()
        .filter(|(param, now, want)| *param != "VoiceApplicationSid" && now.as_deref().unwrap_or("") != want)
        .map(|(param, ..)| param)
        .collect::<Vec<_>>();
    if !left.is_empty() {
        return Err(format!("Twilio accepted the update but still answers other values for {}", left.join(", ")));
    }
    Ok(())
}

/// The plan as lines for the terminal.
pub fn describe(plan: &TwilioPlan) -> Vec<String> {
    let who = format!("{} ({})", mask_phone(&plan.number.phone_number), plan.number.sid);
    if plan.changes.is_empty() {
        return vec![format!("Twilio number {who}: nothing to change")];
    }
    let mut lines = vec![format!("Twilio number {who}: {} to change", plan.changes.len())];
    for c in &plan.changes {
        let from = if c.from.is_empty() { "(empty)" } else { c.from.as_str() };
        let to = if c.to.is_empty() { "(empty)" } else { c.to.as_str() };
        lines.push(format!("  ~ {}: {from} → {to}", c.param));
    }
    lines
}

/// A REST error as a message naming the setting to fix.
pub fn explain(error: &TwilioError, e164: &str, settings: &Settings) -> String {
    match error {
        TwilioError::Unauthorized(_) => error.to_string(),
        TwilioError::NotFound(_) => format!(
            "Twilio does not know the account {} or its number {}: check TWILIO_ACCOUNT_SID ({error})",
            settings.twilio.account_sid.as_deref().unwrap_or("?"),
            mask_phone(e164)
        ),
        TwilioError::Timeout | TwilioError::Transport(_) => {
            format!("{error}: check TWILIO_API_URL ({}) and the network", settings.twilio.api_url)
        }
        _ => error.to_string(),
    }
}
