//! `orderline doctor`: every check the line needs, printed as a checklist (✓ passed, ✗ failed
//! with the fix, – not checked because an earlier check failed); exit code 0 only when every
//! check passed. Reuses `setup shopify`'s and `setup twilio`'s plans (nothing to change = pass)
//! and the start-up template check; changes nothing anywhere (no migration, no subscription).

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{public_url_answers, public_url_problem};
use crate::config::{PromptMode, Settings};
use crate::ops::Metrics;
use crate::shopify::graphql::API_VERSION;
use crate::store::Store;
use crate::twilio::public_url::PublicUrl;
use crate::twilio::rest::{TwilioError, TwilioRest};

/// Largest clock difference from Shopify's and Twilio's `Date` allowed: webhook freshness and
/// signature checks compare times with theirs, and `Date` has whole seconds.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 5;

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail { problem: String, fix: String },
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Pass(detail.into()) }
}

fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Fail { problem: problem.into(), fix: fix.into() } }
}

fn skipped(name: &'static str, why: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Skipped(why.into()) }
}

impl Check {
    pub fn lines(&self) -> Vec<String> {
        match &self.outcome {
            Outcome::Pass(detail) => vec![format!("✓ {}: {detail}", self.name)],
            Outcome::Fail { problem, fix } => {
                let mut lines = vec![format!("✗ {}: {problem}", self.name)];
                lines.extend(fix.lines().map(|l| format!("    fix: {l}")));
                lines
            }
            Outcome::Skipped(why) => vec![format!("– {}: not checked ({why})", self.name)],
        }
    }
}

/// The checklist for a configuration that failed to parse: that one line.
pub fn settings_failed(error: &str) -> ExitCode {
    let check = fail("settings parse", error, "correct the setting named above (environment or orderline.toml)");
    for line in check.lines() {
        println!("{line}");
    }
    println!("1 check failed");
    ExitCode::FAILURE
}

/// Runs every check and prints the checklist.
pub async fn run(settings: &Settings, external: bool, number: Option<&str>) -> ExitCode {
    let checks = checks(settings, external, number).await;
    let failed = checks.iter().filter(|c| !matches!(c.outcome, Outcome::Pass(_))).count();
    for check in &checks {
        for line in check.lines() {
            println!("{line}");
        }
    }
    if failed == 0 {
        println!("all {} checks passed", checks.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} checks failed or could not be made", checks.len());
        ExitCode::FAILURE
    }
}

pub async fn checks(settings: &Settings, external: bool, number: Option<&str>) -> Vec<Check> {
    let mut checks = vec![pass("settings parse", "environment and orderline.toml read")];
    checks.push(database(settings).await);
    checks.extend(public_url(settings, external).await);
    let (shopify, shopify_date) = shopify(settings).await;
    checks.extend(shopify);
    let (twilio, twilio_date) = twilio(settings, number).await;
    checks.extend(twilio);
    checks.push(templates(settings));
    checks.push(clock(Utc::now(), shopify_date, twilio_date));
    checks
}

async fn database(settings: &Settings) -> Check {
    const NAME: &str = "database reachable and migrated";
    let store = match Store::connect_with(&settings.server.database_url, 2).await {
        Ok(store) => store,
        Err(e) => {
            return fail(NAME, format!("cannot connect: {e}"), "check DATABASE_URL and that the database server runs");
        }
    };
    let result = store.readiness().await;
    store.close().await;
    match result {
        Ok(()) => pass(NAME, "every migration this build carries is applied"),
        // A database no migration has touched has no migrations table at all.
        Err(e) if e.contains("_sqlx_migrations") => {
            fail(NAME, "no migrations applied (an empty database)", "run `orderline migrate` (serve also applies them)")
        }
        Err(e) if e.contains("migrations applied") => {
            fail(NAME, e, "run `orderline migrate` (serve also applies them)")
        }
        Err(e) => fail(NAME, e, "check DATABASE_URL and that the database server runs"),
    }
}

async fn public_url(settings: &Settings, external: bool) -> Vec<Check> {
    const NAME: &str = "ORDERLINE_PUBLIC_URL";
    let mut checks = Vec::new();
    let mut strict = settings.clone();
    strict.server.allow_insecure_public_url = false;
    let form = match public_url_problem(&strict) {
        None => pass(NAME, format!("{} is https and public", settings.server.public_url)),
        Some(_) if settings.server.allow_insecure_public_url => pass(
            NAME,
            format!(
                "{} (http/localhost allowed by ORDERLINE_ALLOW_INSECURE_PUBLIC_URL: a local setup)",
                settings.server.public_url
            ),
        ),
        Some(problem) => {
            fail(NAME, problem, "set ORDERLINE_PUBLIC_URL=https://… (the address Twilio and Shopify reach)")
        }
    };
    let form_ok = matches!(form.outcome, Outcome::Pass(_));
    checks.push(form);
    if let Some((path, mode)) = settings.ivr.prompt_mode.websocket() {
        let name = if settings.ivr.prompt_mode == PromptMode::MediaStream {
            "Media Streams URL (wss)"
        } else {
            "ConversationRelay URL (wss)"
        };
        let urls = PublicUrl::new(&settings.server.public_url);
        checks.push(match urls.check_stream_url(path, mode) {
            Ok(()) => pass(name, urls.websocket(path)),
            Err(problem) => fail(name, problem, "set ORDERLINE_PUBLIC_URL to an https:// address on port 443"),
        });
    }
    if external {
        const ANSWERS: &str = "ORDERLINE_PUBLIC_URL answers /healthz";
        checks.push(if !form_ok && !settings.server.allow_insecure_public_url {
            skipped(ANSWERS, "the URL itself is refused above")
        } else {
            match public_url_answers(settings).await {
                Ok(()) => pass(ANSWERS, format!("{}/healthz answered 200", settings.server.public_url)),
                Err(problem) => fail(ANSWERS, problem, "see above"),
            }
        });
    }
    checks
}

async fn shopify(settings: &Settings) -> (Vec<Check>, Option<DateTime<Utc>>) {
    const TOKEN: &str = "Shopify token";
    const SCOPES: &str = "Shopify scopes";
    const PROTECTED: &str = "Shopify protected customer data";
    const VERSION: &str = "Shopify API version";
    const SUBSCRIPTIONS: &str = "Shopify webhook subscriptions";
    let later = [SCOPES, PROTECTED, VERSION, SUBSCRIPTIONS];
    let client = match super::shopify::client(settings) {
        Ok(client) => client,
        Err(problem) => {
            let mut checks = vec![fail(TOKEN, problem, "see README \"Go live\", step Shopify")];
            checks.extend(later.map(|name| skipped(name, "no Shopify client")));
            return (checks, None);
        }
    };
    let plan = match super::shopify::plan(&client, settings).await {
        Ok(plan) => plan,
        Err(problem) => {
            let mut checks = vec![fail(
                TOKEN,
                problem,
                "check SHOPIFY_CLIENT_ID/SHOPIFY_CLIENT_SECRET (or SHOPIFY_ACCESS_TOKEN) and SHOPIFY_SHOP",
            )];
            checks.extend(later.map(|name| skipped(name, "Shopify did not answer")));
            return (checks, client.last_server_date());
        }
    };
    let mut checks = vec![pass(TOKEN, format!("the Admin API answers ({})", client.credentials().mode()))];
    let problems = super::shopify::access_problems(&plan, settings.ivr.verify);
    let (scope_lines, field_lines): (Vec<&String>, Vec<&String>) =
        problems.iter().partition(|l| l.starts_with("missing scope"));
    checks.push(if scope_lines.is_empty() {
        pass(SCOPES, "every scope orderline needs is granted")
    } else {
        fail(
            SCOPES,
            format!("{} missing", plan.missing_scopes.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", ")),
            scope_lines.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"),
        )
    });
    checks.push(if field_lines.is_empty() {
        pass(PROTECTED, "no field withheld")
    } else {
        fail(
            PROTECTED,
            format!("Shopify withholds {}", plan.withheld.join(", ")),
            field_lines.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"),
        )
    });
    checks.push(match client.served_version() {
        Some(served) if served == API_VERSION && !client.deprecation_flagged() => {
            pass(VERSION, format!("{API_VERSION} served as asked"))
        }
        Some(served) if served == API_VERSION => fail(
            VERSION,
            format!("{API_VERSION} is served but Shopify flags deprecated use (X-Shopify-API-Deprecated-Reason)"),
            "upgrade orderline before the deprecation becomes a removal",
        ),
        Some(served) => fail(
            VERSION,
            format!("asked {API_VERSION}, Shopify served {served}: the pinned version is no longer supported"),
            "upgrade orderline to a release pinned to a supported version",
        ),
        None => fail(VERSION, "Shopify did not say which version it served", "check SHOPIFY_API_URL"),
    });
    checks.push(if plan.subscriptions_in_place() {
        pass(SUBSCRIPTIONS, format!("{} topics delivered to {}", plan.kept, plan.uri))
    } else {
        let lines = super::shopify::describe(&plan);
        let text = lines.join("\n      ");
        let text = text.strip_prefix("Shopify webhook subscriptions: ").unwrap_or(&text);
        fail(SUBSCRIPTIONS, text, "run `orderline setup shopify`")
    });
    (checks, client.last_server_date())
}

async fn twilio(settings: &Settings, number: Option<&str>) -> (Vec<Check>, Option<DateTime<Utc>>) {
    const CREDENTIALS: &str = "Twilio credentials";
    const NUMBER: &str = "Twilio number";
    let rest = match TwilioRest::from_settings(settings, Arc::new(Metrics::new())) {
        Ok(rest) => rest,
        Err(problem) => {
            let checks = vec![
                fail(CREDENTIALS, problem, "set TWILIO_ACCOUNT_SID and TWILIO_API_KEY + TWILIO_API_SECRET"),
                skipped(NUMBER, "no Twilio credentials"),
            ];
            return (checks, None);
        }
    };
    let e164 = match super::twilio::number_to_configure(settings, number) {
        Ok(e164) => e164,
        Err(problem) => {
            let checks = vec![
                skipped(CREDENTIALS, "no number to look up"),
                fail(NUMBER, problem, "set TWILIO_PHONE_NUMBER=+1… or pass --number"),
            ];
            return (checks, None);
        }
    };
    let found = rest.find_number(&e164).await;
    let date = rest.last_server_date();
    let checks = match found {
        Err(e @ TwilioError::Unauthorized(_)) => vec![
            fail(CREDENTIALS, e.to_string(), "create an API key in the Twilio console and set TWILIO_API_KEY/SECRET"),
            skipped(NUMBER, "Twilio refused the credentials"),
        ],
        Err(e) => vec![
            fail(
                CREDENTIALS,
                super::twilio::explain(&e, &e164, settings),
                "check TWILIO_ACCOUNT_SID and TWILIO_API_URL",
            ),
            skipped(NUMBER, "Twilio did not answer"),
        ],
        Ok(None) => vec![
            pass(CREDENTIALS, format!("the REST API answers ({})", rest.credentials().mode())),
            fail(
                NUMBER,
                format!("the account has no number {}", crate::domain::mask_phone(&e164)),
                "check TWILIO_PHONE_NUMBER (or --number) and TWILIO_ACCOUNT_SID",
            ),
        ],
        Ok(Some(found)) => {
            let plan = super::twilio::plan_for(found, settings);
            let number = if plan.changes.is_empty() {
                pass(NUMBER, format!("{} points at {}", crate::domain::mask_phone(&e164), settings.server.public_url))
            } else {
                let lines = super::twilio::describe(&plan);
                let text = lines.join("\n      ");
                let text = text.strip_prefix("Twilio number ").unwrap_or(&text);
                fail(NUMBER, text, "run `orderline setup twilio`")
            };
            vec![pass(CREDENTIALS, format!("the REST API answers ({})", rest.credentials().mode())), number]
        }
    };
    (checks, date)
}

fn templates(settings: &Settings) -> Check {
    const NAME: &str = "templates render";
    let rendered = crate::app::clips(settings).and_then(|clips| crate::app::renderer(settings, &clips));
    match rendered {
        Ok(_) => pass(NAME, "every TwiML and speech template renders"),
        Err(e @ crate::app::StartError::Speech(_)) => {
            fail(NAME, e.to_string(), "correct or convert the recording named above")
        }
        Err(e) => fail(NAME, e.to_string(), "correct the template named above (ORDERLINE_TWIML_DIR)"),
    }
}

/// Compares this machine's clock with the `Date` of Shopify's and Twilio's answers.
pub fn clock(now: DateTime<Utc>, shopify: Option<DateTime<Utc>>, twilio: Option<DateTime<Utc>>) -> Check {
    const NAME: &str = "clock in sync";
    let dates: Vec<(&str, DateTime<Utc>)> =
        [("Shopify", shopify), ("Twilio", twilio)].into_iter().filter_map(|(who, d)| d.map(|d| (who, d))).collect();
    if dates.is_empty() {
        return skipped(NAME, "neither Shopify nor Twilio answered with a Date");
    }
    let off: Vec<String> = dates
        .iter()
        .filter(|(_, d)| (now - *d).num_seconds().abs() > MAX_CLOCK_SKEW_SECONDS)
        .map(|(who, d)| format!("{} s off {who}'s clock", (now - *d).num_seconds()))
        .collect();
    if off.is_empty() {
        let who: Vec<&str> = dates.iter().map(|(w, _)| *w).collect();
        pass(NAME, format!("within {MAX_CLOCK_SKEW_SECONDS} s of {}", who.join(" and ")))
    } else {
        fail(
            NAME,
            format!("this machine's clock is {}", off.join(", ")),
            "enable time synchronisation (chrony or systemd-timesyncd): signature checks and freshness depend on it",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_more_than_five_seconds_off_fails_and_says_by_how_much() {
        let now = Utc::now();
        let check = clock(now, Some(now - chrono::TimeDelta::seconds(2)), None);
        assert!(matches!(check.outcome, Outcome::Pass(_)), "{check:?}");
        let check = clock(now, Some(now), Some(now - chrono::TimeDelta::seconds(9)));
        let text = check.lines().join("\n");
        assert!(text.starts_with("✗ clock in sync") && text.contains("9 s off Twilio"), "{text}");
        assert!(matches!(clock(now, None, None).outcome, Outcome::Skipped(_)));
    }
}
