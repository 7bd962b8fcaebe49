//! Speech: the library of recorded phrases (8 kHz μ-law clips) and the engine that strings them into
//! audio for Media Streams. Pure: it never touches the network, the database or a synthesiser at run time.
//!
//! The clips are `speech/clips/<id>.ulaw`, made from `speech/phrases.txt` by `speech/generate.sh`. `build.rs`
//! embeds them into the binary, so [`ClipLibrary::built_in`] needs no files next to the deployed binary;
//! [`ClipLibrary::load`] reads a folder of the merchant's own recordings (`ORDERLINE_SPEECH_DIR`: raw
//! `.ulaw` or 8 kHz mono `.wav`), which [`ClipLibrary::overlaid`] lays over the built-in ones.

use std::{borrow::Cow, collections::BTreeMap, fs, io, path::Path};

use chrono::{Datelike, NaiveDate};

use crate::ivr::order_status::OrderState;

/// Bytes of audio per millisecond: 8000 Hz, one byte per sample.
pub const BYTES_PER_MS: usize = 8;
/// One Media Streams frame: 20 ms of 8 kHz μ-law.
pub const FRAME_BYTES: usize = 160;
/// μ-law silence (the code for a zero sample).
pub const MULAW_SILENCE: u8 = 0xFF;

/// Ids of the fixed words the engine puts between dynamic values.
pub mod clip {
    pub const YOUR_ORDER_NUMBER: &str = "your_order_number";
    pub const SHIPPED_ON: &str = "shipped_on";
    pub const DELIVERED_ON: &str = "delivered_on";
    pub const WITH: &str = "with";
}

/// Every recorded phrase, by id.
#[derive(Debug, Clone)]
pub struct ClipLibrary {
    clips: BTreeMap<String, Cow<'static, [u8]>>,
}

const BUILT_IN: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/speech_clips.rs"));

impl ClipLibrary {
    /// The clips embedded at build time from `speech/clips`.
    pub fn built_in() -> Self {
        let clips = BUILT_IN.iter().map(|&(id, audio)| (id.to_owned(), Cow::Borrowed(audio))).collect();
        ClipLibrary { clips }
    }

    /// Every `<id>.ulaw` (raw 8 kHz μ-law) and `<id>.wav` (8 kHz mono, μ-law or 16-bit PCM) in
    /// `dir`; other files are ignored. An id is lowercase letters, digits and `_`, as in
    /// `phrases.txt`. A file that is none of these, or empty, is an error naming it (with the sox
    /// line that converts it), never a clip that plays noise.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let mut clips = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let extension = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if extension != "ulaw" && extension != "wav" {
                continue;
            }
            let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
            let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(bad("a clip's name is lowercase letters, digits and `_` (`shop_name.wav`)".into()));
            }
            let bytes = fs::read(&path)?;
            let audio = if extension == "wav" { wav_to_mulaw(&bytes).map_err(bad)? } else { bytes };
            if audio.is_empty() {
                return Err(bad("no audio".into()));
            }
            clips.insert(id.to_owned(), Cow::Owned(audio));
        }
        Ok(ClipLibrary { clips })
    }

    /// The built-in clips with the merchant's own from `dir` (ORDERLINE_SPEECH_DIR) laid over them.
    pub fn built_in_with(dir: Option<&Path>) -> io::Result<Self> {
        let built_in = ClipLibrary::built_in();
        Ok(match dir {
            Some(dir) => built_in.overlaid(ClipLibrary::load(dir)?),
            None => built_in,
        })
    }

    /// This library with `own`'s clips added, replacing any of the same id.
    pub fn overlaid(mut self, own: ClipLibrary) -> ClipLibrary {
        self.clips.extend(own.clips);
        self
    }

    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.clips.get(id).map(|audio| audio.as_ref())
    }

    /// Ids in sorted order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.clips.keys().map(String::as_str)
    }
}

/// The audio of a WAV file as 8 kHz μ-law: its `data` as it is when the file is μ-law (format 7,
/// 8 bits), encoded when it is 16-bit PCM (format 1); mono, 8000 Hz either way. Anything else is
/// refused with the sox line that converts it.
fn wav_to_mulaw(wav: &[u8]) -> Result<Vec<u8>, String> {
    const CONVERT: &str = "convert it with `sox IN.wav -r 8000 -c 1 -e mu-law OUT.wav`";
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err("not a WAV file (no RIFF/WAVE header)".into());
    }
    let (mut format, mut data) = (None, None);
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        let body = &wav[at + 8..(at + 8).saturating_add(len).min(wav.len())];
        match id {
            b"fmt " if body.len() >= 16 => {
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => data = Some(body),
            _ => {}
        }
        // Chunks are padded to an even length.
        at = at.saturating_add(8).saturating_add(len).saturating_add(len % 2);
    }
    let Some((code, channels, rate, bits)) = format else { return Err("a WAV file without a fmt chunk".into()) };
    let data = data.ok_or("a WAV file without a data chunk")?;
    if channels != 1 || rate != 8000 {
        return Err(format!("{rate} Hz, {channels} channel(s); Media Streams plays 8000 Hz mono: {CONVERT}"));
    }
    match (code, bits) {
        (7, 8) => Ok(data.to_vec()),
        (1, 16) => Ok(data.chunks_exact(2).map(|s| mulaw(i16::from_le_bytes([s[0], s[1]]))).collect()),
        _ => Err(format!("WAV format {code} with {bits}-bit samples: {CONVERT}")),
    }
}

/// One 16-bit linear sample as G.711 μ-law (ITU-T G.711: bias 132, clipped at 32,635, sign,
/// 3-bit exponent, 4-bit mantissa, every bit inverted).
pub fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = i32::from(sample).abs().min(CLIP) + BIAS;
    // The highest set bit above the 7 lowest: 0 for 132..=255, 7 for 16,384 and up.
    let exponent = 31 - ((magnitude >> 7) as u32).leading_zeros();
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// One step of an utterance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Piece {
    /// A recorded phrase, by id.
    Clip(String),
    /// A pause, in milliseconds.
    Silence(u32),
}

fn clip(id: impl Into<String>) -> Piece {
    Piece::Clip(id.into())
}

/// An utterance names a clip the library does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no recording for speech clip `{id}`")]
pub struct MissingClip {
    pub id: String,
}

/// "Your order number one zero four two": the digits of a Shopify order name (`#1042`, `1042`,
/// `order 1042`), one by one. Anything that is not a digit has no recording and is not spoken;
/// a name without digits gives nothing to say.
pub fn order_number(name: &str) -> Vec<Piece> {
    let digits: Vec<Piece> = name.chars().filter_map(|c| c.to_digit(10)).map(|d| clip(format!("digit_{d}"))).collect();
    if digits.is_empty() {
        return digits;
    }
    std::iter::once(clip(clip::YOUR_ORDER_NUMBER)).chain(digits).collect()
}

/// "November the twentieth": month and ordinal day; the year is not spoken.
pub fn date(day: NaiveDate) -> Vec<Piece> {
    vec![clip(format!("month_{}", day.month())), clip(format!("ord_{}", day.day()))]
}

/// The clip of an order state ("is out for delivery").
pub fn state(state: OrderState) -> Vec<Piece> {
    vec![clip(format!("state_{}", state.as_str()))]
}

/// The carriers with a recording, as Shopify's `tracking_company` names them (compared without case,
/// spaces or punctuation).
const CARRIERS: &[(&str, &str)] = &[
    ("ups", "carrier_ups"),
    ("usps", "carrier_usps"),
    ("fedex", "carrier_fedex"),
    ("dhl", "carrier_dhl"),
    ("dhlexpress", "carrier_dhl"),
    ("dhlecommerce", "carrier_dhl"),
];

/// A known carrier's clip; any other carrier has no recording and is not spoken (`None`).
pub fn carrier(name: &str) -> Option<Vec<Piece>> {
    let key: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    CARRIERS.iter().find(|(known, _)| *known == key).map(|(_, id)| vec![clip(*id)])
}

/// "One zero four two": every digit of `text`, one by one (`#1042`, `1 0 4 2`); nothing else is spoken.
pub fn digits(text: &str) -> Vec<Piece> {
    text.chars().filter_map(|c| c.to_digit(10)).map(|d| clip(format!("digit_{d}"))).collect()
}

/// A number from 1 to 99 ("nine", "twelve", "thirty five"); nothing for any other.
fn number(n: u32) -> Vec<Piece> {
    match n {
        1..=9 => vec![clip(format!("digit_{n}"))],
        10..=19 => vec![clip(format!("number_{n}"))],
        20..=99 if n.is_multiple_of(10) => vec![clip(format!("number_{n}"))],
        20..=99 => vec![clip(format!("number_{}", n - n % 10)), clip(format!("digit_{}", n % 10))],
        _ => Vec::new(),
    }
}

/// A count as it is said: "zero", "forty two", "one hundred five", "twelve thousand three hundred
/// forty", "two million five hundred thousand", up to 999,999,999 (larger numbers are said as
/// digits: there is no "billion" recording).
pub fn count(n: u32) -> Vec<Piece> {
    fn below_thousand(n: u32) -> Vec<Piece> {
        let mut pieces = Vec::new();
        if n >= 100 {
            pieces.extend([clip(format!("digit_{}", n / 100)), clip("hundred")]);
        }
        pieces.extend(number(n % 100));
        pieces
    }
    match n {
        0 => vec![clip("digit_0")],
        1..=999 => below_thousand(n),
        1_000..=999_999 => [below_thousand(n / 1000), vec![clip("thousand")], below_thousand(n % 1000)].concat(),
        1_000_000..=999_999_999 => {
            let rest = n % 1_000_000;
            let rest = if rest == 0 { Vec::new() } else { count(rest) };
            [below_thousand(n / 1_000_000), vec![clip("million")], rest].concat()
        }
        _ => digits(&n.to_string()),
    }
}

/// A currency with recordings: its unit's clips (one, several) and its minor unit's, if it has
/// one (yen has none).
struct Currency {
    unit: (&'static str, &'static str),
    minor: Option<(&'static str, &'static str)>,
}

const DOLLARS: Currency = Currency { unit: ("dollar", "dollars"), minor: Some(("cent", "cents")) };

/// The currencies [`money`] can say, by ISO 4217 code (compared without case); no others.
const CURRENCIES: &[(&str, Currency)] = &[
    ("USD", DOLLARS),
    ("CAD", DOLLARS),
    ("AUD", DOLLARS),
    ("NZD", DOLLARS),
    ("EUR", Currency { unit: ("euro", "euros"), minor: Some(("cent", "cents")) }),
    ("GBP", Currency { unit: ("pound", "pounds"), minor: Some(("penny", "pence")) }),
    ("MXN", Currency { unit: ("peso", "pesos"), minor: Some(("centavo", "centavos")) }),
    ("JPY", Currency { unit: ("yen", "yen"), minor: None }),
];

/// A money amount as Shopify gives it (`21.23`, currency code) in words: "twenty one dollars and
/// twenty three cents", "one pound and one penny", "one thousand two hundred yen". Dollars (USD,
/// CAD, AUD, NZD; no currency: the shop's, assumed dollars as `Language::money` does), euros
/// (EUR, cents), pounds (GBP, pence), Mexican pesos (MXN, centavos) and yen (JPY, whole yen only)
/// have recordings. Any other currency, a yen amount with a fraction, or an amount that is not a
/// plain decimal with at most two decimals gives none (and is not said).
pub fn money(amount: &str, currency: Option<&str>) -> Option<Vec<Piece>> {
    let currency = match currency {
        None => &DOLLARS,
        Some(code) => &CURRENCIES.iter().find(|(known, _)| known.eq_ignore_ascii_case(code.trim()))?.1,
    };
    let (whole, minor) = crate::domain::language::plain_amount(amount)?;
    let whole = u32::try_from(whole).ok()?;
    let say = |n: u32, (one, many): (&'static str, &'static str)| {
        let mut pieces = count(n);
        pieces.push(clip(if n == 1 { one } else { many }));
        pieces
    };
    let mut pieces = Vec::new();
    if whole > 0 || minor == 0 {
        pieces.extend(say(whole, currency.unit));
    }
    if minor > 0 {
        // A currency without a minor unit (yen) has no word for a fraction.
        let words = currency.minor?;
        if whole > 0 {
            pieces.push(clip("and"));
        }
        pieces.extend(say(minor, words));
    }
    Some(pieces)
}

/// When the line opens again (`ivr::hours::NextOpening`: its local date, how many days from
/// today, hour and minute), in clips as `Language::day_and_time` words it in English: "today at
/// nine AM", "tomorrow at…", "Monday at…" within the week, "Saturday, December twenty-sixth at…"
/// further ahead.
pub fn opening(days_ahead: i64, date: NaiveDate, hour: u32, minute: u32) -> Vec<Piece> {
    let weekday = clip(format!("weekday_{}", date.weekday().number_from_monday()));
    let mut pieces = match days_ahead {
        0 => vec![clip("today")],
        1 => vec![clip("tomorrow")],
        2..=6 => vec![weekday],
        _ => [vec![weekday], self::date(date)].concat(),
    };
    pieces.push(clip("at"));
    pieces.extend(time_of_day(hour, minute));
    pieces
}

/// A 24-hour local time on a 12-hour clock: `9:00` → "nine AM", `12:30` → "twelve thirty PM",
/// `9:05` → "nine oh five AM".
fn time_of_day(hour: u32, minute: u32) -> Vec<Piece> {
    let hour = hour % 24;
    let period = if hour < 12 { "am" } else { "pm" };
    let mut pieces = number(match hour % 12 {
        0 => 12,
        h => h,
    });
    match minute {
        1..=9 => pieces.extend([clip("oh"), clip(format!("digit_{minute}"))]),
        10..=59 => pieces.extend(number(minute)),
        _ => {}
    }
    pieces.push(clip(period));
    pieces
}

/// An utterance written as text, as the `.speech` templates render it: clip ids separated by
/// whitespace, `pause:MS` for a pause.
pub fn parse_utterance(text: &str) -> Result<Vec<Piece>, String> {
    text.split_whitespace()
        .map(|token| match token.strip_prefix("pause:") {
            Some(ms) => ms.parse::<u32>().map(Piece::Silence).map_err(|_| format!("`{token}`: a pause is pause:MS")),
            None if token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(clip(token)),
            None => Err(format!("`{token}` is not a clip id (letters, digits and _)")),
        })
        .collect()
}

/// `pieces` written as an utterance's text (the inverse of [`parse_utterance`]).
pub fn utterance_text(pieces: &[Piece]) -> String {
    let tokens: Vec<String> = pieces
        .iter()
        .map(|p| match p {
            Piece::Clip(id) => id.clone(),
            Piece::Silence(ms) => format!("pause:{ms}"),
        })
        .collect();
    tokens.join(" ")
}

const PHRASES: &str = include_str!("../../speech/phrases.txt");
/// First names, from the 1990 US Census lists (`speech/names.sh`).
const NAMES: &str = include_str!("../../speech/names.txt");

/// The words a built-in clip says, from `speech/phrases.txt` or `speech/names.txt`.
pub fn phrase(id: &str) -> Option<&'static str> {
    let lines = PHRASES.lines().chain(NAMES.lines());
    lines.filter_map(|line| line.split_once('\t')).find(|(i, _)| *i == id).map(|(_, text)| text)
}

/// The clip id a first name would have (`Dana` → `name_dana`): letters a to z only, any case;
/// none for a name with anything else in it ("Mary Ann", "José"), which is not said.
pub fn name_id(first_name: &str) -> Option<String> {
    let name = first_name.trim();
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| format!("name_{}", name.to_ascii_lowercase()))
}

/// The clips `audio` is made of, in order, as a listener who knows the library hears them: each
/// stretch that is exactly a clip is that clip (the longest when several fit), audio that ends in
/// the beginning of a clip (a prompt cut short) is that clip (the shortest that fits), μ-law silence is skipped, and
/// anything else is `?`. The inverse of [`render`] for audio made from `lib`.
pub fn recognise(lib: &ClipLibrary, audio: &[u8]) -> Vec<String> {
    const KEY: usize = 4;
    let mut by_start: std::collections::HashMap<&[u8], Vec<(&str, &[u8])>> = std::collections::HashMap::new();
    for (id, clip) in &lib.clips {
        if clip.len() >= KEY {
            by_start.entry(&clip[..KEY]).or_default().push((id.as_str(), clip.as_ref()));
        }
    }
    // Longest first; among clips that sound the same ("May" the month and May the name, "Ann"
    // and "Anne"), the word before the name, then the first id.
    let is_name = |id: &str| id.starts_with("name_");
    for candidates in by_start.values_mut() {
        candidates.sort_by_key(|(id, clip)| (std::cmp::Reverse(clip.len()), is_name(id), *id));
    }
    let mut heard = Vec::new();
    let mut at = 0;
    while at < audio.len() {
        let rest = &audio[at..];
        let candidates = rest.get(..KEY).and_then(|key| by_start.get(key));
        let found = candidates.and_then(|c| c.iter().find(|(_, clip)| rest.starts_with(clip)));
        // Several clips can begin alike ("Thanks for calling." and "Thanks for calling. Goodbye."): the shortest.
        let cut_short = candidates.and_then(|c| {
            c.iter().filter(|(_, clip)| clip.starts_with(rest)).min_by_key(|(id, clip)| (clip.len(), is_name(id), *id))
        });
        if let (None, Some((id, _))) = (found, cut_short) {
            heard.push((*id).to_string());
            break;
        }
        match found {
            Some((id, clip)) => {
                heard.push((*id).to_string());
                at += clip.len();
            }
            None => {
                if rest[0] != MULAW_SILENCE && heard.last().is_none_or(|last| last != "?") {
                    heard.push("?".into());
                }
                at += 1;
            }
        }
    }
    heard
}

/// The μ-law audio of `pieces`, clips back to back and silences as μ-law silence; allocated
/// once, with room for [`in_frames`]' padding.
pub fn render(lib: &ClipLibrary, pieces: &[Piece]) -> Result<Vec<u8>, MissingClip> {
    // Each piece as its clip and its silence, looked up once.
    let parts: Vec<(&[u8], usize)> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Clip(id) => lib.get(id).map(|clip| (clip, 0)).ok_or_else(|| MissingClip { id: id.clone() }),
            Piece::Silence(ms) => Ok((&[][..], *ms as usize * BYTES_PER_MS)),
        })
        .collect::<Result<_, _>>()?;
    let len: usize = parts.iter().map(|(clip, silence)| clip.len() + silence).sum();
    let mut audio = Vec::with_capacity(len.next_multiple_of(FRAME_BYTES));
    for (clip, silence) in parts {
        audio.extend_from_slice(clip);
        audio.resize(audio.len() + silence, MULAW_SILENCE);
    }
    Ok(audio)
}

/// `audio` as whole 20 ms Media Streams frames: the last one padded with μ-law silence.
pub fn in_frames(mut audio: Vec<u8>) -> Vec<u8> {
    audio.resize(audio.len().next_multiple_of(FRAME_BYTES), MULAW_SILENCE);
    audio
}

#[cfg(test)]
mod tests;
