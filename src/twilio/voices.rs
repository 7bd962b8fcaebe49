//! Which `<Say voice>` speaks which `<Say language>`: ORDERLINE_VOICE and ORDERLINE_LANGUAGE are
//! checked together at start, since Twilio says "using an invalid combination of voice and
//! language may result in error and <Say> instruction failure" (twilio.com/docs/voice/twiml/say).
//! Owns the table only; voices it does not know are let through (Twilio adds voices).
//!
//! Sources: Amazon Polly's voice list (docs.aws.amazon.com/polly/latest/dg/available-voices.html,
//! language code per voice) for `Polly.NAME[-Neural|-Generative]`; Google voices carry their
//! locale in the name (`Google.en-US-Neural2-F`, twilio.com/docs/voice/twiml/say/text-speech).

/// Polly voices by the one locale each speaks (the bilingual ones, Aditi and Kajal, by both).
const POLLY: &[(&str, &[&str])] = &[
    (
        "en-US",
        &[
            "Danielle", "Gregory", "Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kevin", "Kimberly", "Matthew", "Ruth",
            "Salli", "Stephen",
        ],
    ),
    ("en-GB", &["Amy", "Arthur", "Brian", "Emma"]),
    ("en-AU", &["Nicole", "Olivia", "Russell"]),
    ("en-IN", &["Aditi", "Kajal", "Raveena"]),
    ("hi-IN", &["Aditi", "Kajal"]),
    ("en-IE", &["Niamh"]),
    ("en-NZ", &["Aria"]),
    ("en-ZA", &["Ayanda"]),
    ("en-GB-WLS", &["Geraint"]),
    ("es-US", &["Lupe", "Miguel", "Pedro", "Penelope"]),
    ("es-ES", &["Conchita", "Enrique", "Lucia", "Sergio"]),
    ("es-MX", &["Andres", "Mia"]),
    ("fr-FR", &["Celine", "Lea", "Mathieu", "Remi"]),
    ("fr-CA", &["Chantal", "Gabrielle", "Liam"]),
    ("de-DE", &["Daniel", "Hans", "Marlene", "Vicki"]),
    ("it-IT", &["Adriano", "Bianca", "Carla", "Giorgio"]),
    ("pt-BR", &["Camila", "Ricardo", "Thiago", "Vitoria"]),
    ("pt-PT", &["Cristiano", "Ines"]),
    ("nl-NL", &["Laura", "Lotte", "Ruben"]),
];

/// Whether `voice` can speak `language`; an error names both settings and what the voice speaks.
pub fn check(voice: &str, language: &str) -> Result<(), String> {
    let speaks: Vec<&str> = if let Some(rest) = voice.strip_prefix("Google.") {
        // Google.en-US-Neural2-F: the locale is the first two dash-separated parts.
        vec![google_locale(rest)]
    } else if let Some(rest) = voice.strip_prefix("Polly.") {
        let name = rest.split('-').next().unwrap_or(rest);
        POLLY.iter().filter(|(_, names)| names.contains(&name)).map(|(locale, _)| *locale).collect()
    } else {
        // man, woman, alice and voices this table does not know.
        return Ok(());
    };
    if speaks.is_empty() || speaks.iter().any(|l| l.eq_ignore_ascii_case(language)) {
        return Ok(());
    }
    Err(format!(
        "ORDERLINE_VOICE {voice:?} speaks {}, not ORDERLINE_LANGUAGE {language:?}: Twilio fails a <Say> with a voice and \
         language that do not match",
        speaks.join(" or ")
    ))
}

/// A voice that speaks `tag`, for a language ORDERLINE_VOICES gives none: Joanna for en-US and
/// Lupe for es-US (Amazon Polly's neural US voices), else the first Polly voice of that locale.
pub fn default_for(tag: &str) -> Option<String> {
    let name = match tag.to_ascii_lowercase().as_str() {
        "en-us" => "Joanna",
        "es-us" => "Lupe",
        "es-mx" => "Mia",
        "es-es" => "Lucia",
        _ => POLLY.iter().find(|(locale, _)| locale.eq_ignore_ascii_case(tag)).and_then(|(_, names)| names.first())?,
    };
    Some(format!("Polly.{name}"))
}

fn google_locale(name: &str) -> &str {
    match name.match_indices('-').nth(1) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_pairs_pass_and_unknown_voices_are_let_through() {
        for (voice, language) in [
            ("Polly.Joanna", "en-US"),
            ("Polly.Joanna-Neural", "en-US"),
            ("Polly.Lupe", "es-US"),
            ("Polly.Aditi", "hi-IN"),
            ("Google.en-GB-Standard-A", "en-GB"),
            ("Google.es-US-Neural2-B", "es-US"),
            ("alice", "en-US"),
            ("man", "fr-FR"),
            ("Polly.SomeNewVoice", "xx-XX"),
        ] {
            assert_eq!(check(voice, language), Ok(()), "{voice} {language}");
        }
    }

    #[test]
    fn every_default_voice_speaks_its_language() {
        for tag in ["en-US", "es-US", "es-MX", "es-ES", "en-GB", "fr-CA"] {
            let voice = default_for(tag).unwrap();
            assert_eq!(check(&voice, tag), Ok(()), "{tag} {voice}");
        }
        assert_eq!(default_for("es-US").as_deref(), Some("Polly.Lupe"));
        assert_eq!(default_for("xx-XX"), None);
    }

    #[test]
    fn a_voice_that_cannot_speak_the_language_is_named() {
        let err = check("Polly.Joanna", "es-US").unwrap_err();
        assert!(
            err.contains("ORDERLINE_VOICE") && err.contains("ORDERLINE_LANGUAGE") && err.contains("en-US"),
            "{err}"
        );
        assert!(check("Google.en-US-Neural2-F", "en-GB").is_err());
        assert!(check("Polly.Amy", "en-US").is_err());
    }
}
