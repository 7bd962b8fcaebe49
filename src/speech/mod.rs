//! Speech: the library of recorded phrases (8 kHz μ-law clips) and the engine that strings them into
//! audio for Media Streams. Pure: it never touches the network, the database or a synthesiser at run time.
//!
//! The clips are `speech/clips/<id>.ulaw`, made from `speech/phrases.txt` by `speech/generate.sh`. `build.rs`
//! embeds them into the binary, so [`ClipLibrary::built_in`] needs no files next to the deployed binary;
//! [`ClipLibrary::load`] reads a folder instead (new recordings without a rebuild).

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

    /// Every `<id>.ulaw` in `dir`; other files are ignored.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let mut clips = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "ulaw") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            clips.insert(id.to_owned(), Cow::Owned(fs::read(&path)?));
        }
        Ok(ClipLibrary { clips })
    }

    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.clips.get(id).map(|audio| audio.as_ref())
    }

    /// Ids in sorted order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.clips.keys().map(String::as_str)
    }
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

/// The μ-law audio of `pieces`, clips back to back and silences as μ-law silence.
pub fn render(lib: &ClipLibrary, pieces: &[Piece]) -> Result<Vec<u8>, MissingClip> {
    let mut audio = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Clip(id) => audio.extend_from_slice(lib.get(id).ok_or_else(|| MissingClip { id: id.clone() })?),
            Piece::Silence(ms) => audio.resize(audio.len() + *ms as usize * BYTES_PER_MS, MULAW_SILENCE),
        }
    }
    Ok(audio)
}

/// `audio` as 20 ms Media Streams frames; the last one is padded with μ-law silence.
pub fn frames(audio: &[u8]) -> Vec<[u8; FRAME_BYTES]> {
    audio
        .chunks(FRAME_BYTES)
        .map(|chunk| {
            let mut frame = [MULAW_SILENCE; FRAME_BYTES];
            frame[..chunk.len()].copy_from_slice(chunk);
            frame
        })
        .collect()
}

#[cfg(test)]
mod tests;
