use std::collections::BTreeSet;

use super::*;

const PHRASES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/speech/phrases.txt"));
const NAMES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/speech/names.txt"));

fn phrase_ids() -> BTreeSet<&'static str> {
    let lines = PHRASES.lines().chain(NAMES.lines());
    lines.filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|l| l.split('\t').next()).collect()
}

fn ids(pieces: &[Piece]) -> Vec<&str> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Clip(id) => id.as_str(),
            Piece::Silence(_) => "<silence>",
        })
        .collect()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A library with made-up audio, so lengths are known.
fn fake_library(clips: &[(&str, &[u8])]) -> ClipLibrary {
    let dir = tempfile::tempdir().unwrap();
    for (id, audio) in clips {
        fs::write(dir.path().join(format!("{id}.ulaw")), audio).unwrap();
    }
    fs::write(dir.path().join("README.txt"), b"not a clip").unwrap();
    ClipLibrary::load(dir.path()).unwrap()
}

const STATES: [OrderState; OrderState::ALL.len()] = OrderState::ALL;

#[test]
fn order_1042_shipped_on_november_20_is_spoken_digit_by_digit_then_month_and_ordinal() {
    let mut pieces = order_number("#1042");
    pieces.push(Piece::Clip(clip::SHIPPED_ON.into()));
    pieces.extend(date(day(2026, 11, 20)));
    assert_eq!(
        ids(&pieces),
        ["your_order_number", "digit_1", "digit_0", "digit_4", "digit_2", "shipped_on", "month_11", "ord_20"]
    );
}

#[test]
fn an_order_name_speaks_only_its_digits() {
    assert_eq!(ids(&order_number("order 1042")), ids(&order_number("#1042")));
    assert_eq!(ids(&order_number("ORD-07")), ["your_order_number", "digit_0", "digit_7"]);
    assert!(order_number("#ABC").is_empty(), "a name without digits has nothing to say");
}

#[test]
fn every_id_the_engine_can_emit_is_a_phrase_and_a_built_in_clip() {
    let phrases = phrase_ids();
    let lib = ClipLibrary::built_in();
    let mut emitted: Vec<Piece> = order_number("#0123456789");
    // Every day of a leap year: all twelve months and ordinals 1 to 31.
    let mut d = day(2024, 1, 1);
    while d.year() == 2024 {
        emitted.extend(date(d));
        d = d.succ_opt().unwrap();
    }
    for s in STATES {
        emitted.extend(state(s));
    }
    for (name, _) in CARRIERS {
        emitted.extend(carrier(name).unwrap());
    }
    emitted.extend([clip::YOUR_ORDER_NUMBER, clip::SHIPPED_ON, clip::DELIVERED_ON, clip::WITH].map(clip));
    // Every currency's words, one and several of the unit and of the minor unit.
    for (code, _) in CURRENCIES {
        for amount in ["1.01", "2.02", "2"] {
            emitted.extend(money(amount, Some(*code)).unwrap_or_default());
        }
    }
    for id in ids(&emitted) {
        assert!(phrases.contains(id), "{id} is not in speech/phrases.txt");
        assert!(lib.get(id).is_some_and(|a| !a.is_empty()), "{id} has no clip in speech/clips");
    }
}

#[test]
fn the_built_in_clips_are_exactly_the_phrases() {
    let lib = ClipLibrary::built_in();
    let clips: BTreeSet<&str> = lib.ids().collect();
    assert_eq!(clips, phrase_ids(), "run speech/generate.sh after editing speech/phrases.txt");
    let disk = ClipLibrary::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/speech/clips"))).unwrap();
    for id in lib.ids() {
        assert_eq!(lib.get(id), disk.get(id), "{id}: embedded clip differs from the file");
    }
}

#[test]
fn every_built_in_clip_lasts_between_a_tenth_of_a_second_and_five_seconds() {
    let lib = ClipLibrary::built_in();
    for id in lib.ids() {
        let ms = lib.get(id).unwrap().len() / BYTES_PER_MS;
        assert!((100..5_000).contains(&ms), "{id} lasts {ms} ms");
    }
}

#[test]
fn rendering_concatenates_clips_and_silences_in_order() {
    let lib = fake_library(&[("digit_1", &[1, 2, 3]), ("digit_2", &[4, 5])]);
    let pieces = [clip("digit_1"), Piece::Silence(2), clip("digit_2"), clip("digit_1")];
    let audio = render(&lib, &pieces).unwrap();
    assert_eq!(audio.len(), 3 + 2 * BYTES_PER_MS + 2 + 3);
    let mut expected = vec![1, 2, 3];
    expected.extend([MULAW_SILENCE; 16]);
    expected.extend([4, 5, 1, 2, 3]);
    assert_eq!(audio, expected);
}

#[test]
fn a_rendered_sentence_lasts_its_clips_plus_its_pauses() {
    let lib = ClipLibrary::built_in();
    let mut pieces = order_number("#1042");
    pieces.push(Piece::Silence(250));
    pieces.extend(date(day(2026, 11, 20)));
    let clips: usize = ids(&pieces).iter().filter_map(|id| lib.get(id)).map(<[u8]>::len).sum();
    assert_eq!(render(&lib, &pieces).unwrap().len(), clips + 250 * BYTES_PER_MS);
}

#[test]
fn a_missing_clip_is_an_error_naming_it() {
    let lib = fake_library(&[("digit_1", &[1])]);
    let err = render(&lib, &[clip("digit_1"), clip("carrier_pigeon"), clip("digit_9")]).unwrap_err();
    assert_eq!(err, MissingClip { id: "carrier_pigeon".into() });
    assert!(err.to_string().contains("carrier_pigeon"));
}

#[test]
fn frames_are_160_bytes_and_the_last_is_padded_with_mulaw_silence() {
    let audio: Vec<u8> = (0..400u32).map(|i| (i % 200) as u8).collect();
    let framed = in_frames(audio.clone());
    assert_eq!(framed.len(), 3 * FRAME_BYTES);
    assert_eq!(&framed[..400], &audio[..]);
    assert!(framed[400..].iter().all(|&b| b == MULAW_SILENCE));
}

#[test]
fn whole_frames_get_no_padding_and_no_audio_gives_no_frames() {
    assert_eq!(in_frames(vec![7; 320]), vec![7; 2 * FRAME_BYTES]);
    assert!(in_frames(Vec::new()).is_empty());
}

#[test]
fn rendered_audio_is_framed_without_moving_it() {
    let lib = fake_library(&[("digit_1", &[1; 100])]);
    let audio = render(&lib, &[clip("digit_1"), Piece::Silence(10), clip("digit_1")]).unwrap();
    let before = audio.as_ptr();
    let framed = in_frames(audio);
    assert_eq!((framed.len(), framed.as_ptr()), (2 * FRAME_BYTES, before), "padded in place");
}

#[test]
fn known_carriers_are_spoken_whatever_their_spelling() {
    assert_eq!(ids(&carrier("UPS").unwrap()), ["carrier_ups"]);
    assert_eq!(ids(&carrier("FedEx").unwrap()), ["carrier_fedex"]);
    assert_eq!(ids(&carrier("DHL Express").unwrap()), ["carrier_dhl"]);
    assert_eq!(ids(&carrier("usps").unwrap()), ["carrier_usps"]);
}

#[test]
fn an_unknown_carrier_is_not_spoken() {
    assert_eq!(carrier("Royal Mail"), None);
    assert_eq!(carrier(""), None);
}

#[test]
fn every_order_state_has_its_own_clip() {
    let spoken: BTreeSet<Vec<Piece>> = STATES.iter().map(|&s| state(s)).collect();
    assert_eq!(spoken.len(), STATES.len(), "two states would sound the same");
    assert_eq!(ids(&state(OrderState::OutForDelivery)), ["state_out_for_delivery"]);
}

#[test]
fn rendered_audio_is_recognised_as_its_clips_even_when_cut_short() {
    let lib = ClipLibrary::built_in();
    let mut pieces = order_number("#1042");
    pieces.push(Piece::Silence(300));
    pieces.extend([clip(clip::SHIPPED_ON)]);
    pieces.extend(date(day(2026, 11, 20)));
    let audio = render(&lib, &pieces).unwrap();
    let clips: Vec<String> = ids(&pieces).into_iter().filter(|id| *id != "<silence>").map(String::from).collect();
    assert_eq!(recognise(&lib, &audio), clips);
    // Frames pad the end with silence, which is heard as nothing.
    let framed = in_frames(audio.clone());
    assert_eq!(recognise(&lib, &framed), clips);
    // Cut short near the end of "shipped on": that clip, and nothing after it. (Its first
    // moments are also the first of "shipped": a cut there could be either.)
    let cut = render(&lib, &pieces[..7]).unwrap().len() - 400;
    assert_eq!(recognise(&lib, &audio[..cut]), clips[..6]);
    assert_eq!(recognise(&lib, &[1, 2, 3, 4, 5, 6]), ["?"]);
}

#[test]
fn when_the_line_opens_is_said_from_recordings() {
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    // 2026-12-07 is a Monday.
    assert_eq!(ids(&opening(3, day("2026-12-07"), 9, 0)), ["weekday_1", "at", "digit_9", "am"]);
    assert_eq!(ids(&opening(1, day("2026-12-05"), 12, 30)), ["tomorrow", "at", "number_12", "number_30", "pm"]);
    assert_eq!(ids(&opening(0, day("2026-12-04"), 9, 5)), ["today", "at", "digit_9", "oh", "digit_5", "am"]);
    assert_eq!(ids(&opening(0, day("2026-12-04"), 10, 45)), ["today", "at", "number_10", "number_40", "digit_5", "am"]);
    assert_eq!(ids(&opening(0, day("2026-12-04"), 0, 0)), ["today", "at", "number_12", "am"], "midnight");
    assert_eq!(
        ids(&opening(9, day("2026-12-26"), 10, 0)),
        ["weekday_6", "month_12", "ord_26", "at", "number_10", "am"]
    );
}

#[test]
fn utterances_are_clip_ids_and_pauses() {
    let pieces = parse_utterance("welcome_back pause:250\n  digit_1").unwrap();
    assert_eq!(pieces, [clip("welcome_back"), Piece::Silence(250), clip("digit_1")]);
    assert_eq!(utterance_text(&pieces), "welcome_back pause:250 digit_1");
    assert!(parse_utterance("pause:soon").unwrap_err().contains("pause:MS"));
    assert!(parse_utterance("Hi <Dana>").unwrap_err().contains("not a clip id"));
}

#[test]
fn counts_and_money_amounts_are_said_from_recordings() {
    assert_eq!(ids(&count(0)), ["digit_0"]);
    assert_eq!(ids(&count(30)), ["number_30"]);
    assert_eq!(ids(&count(99)), ["number_90", "digit_9"]);
    assert_eq!(ids(&count(105)), ["digit_1", "hundred", "digit_5"]);
    assert_eq!(ids(&count(1250)), ["digit_1", "thousand", "digit_2", "hundred", "number_50"]);
    assert_eq!(ids(&count(12_340)), ["number_12", "thousand", "digit_3", "hundred", "number_40"]);
    assert_eq!(ids(&count(1_000_000)), ["digit_1", "million"]);
    assert_eq!(ids(&count(2_500_007)), ["digit_2", "million", "digit_5", "hundred", "thousand", "digit_7"]);
    assert_eq!(
        ids(&count(1_000_000_000)),
        ["digit_1", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0"]
    );
    let money = |amount: &str, currency: Option<&str>| {
        money(amount, currency).map(|p| ids(&p).into_iter().map(str::to_string).collect::<Vec<_>>())
    };
    assert_eq!(
        money("21.23", Some("USD")).unwrap(),
        ["number_20", "digit_1", "dollars", "and", "number_20", "digit_3", "cents"]
    );
    assert_eq!(money("1.00", None).unwrap(), ["digit_1", "dollar"]);
    assert_eq!(money("0.99", Some("cad")).unwrap(), ["number_90", "digit_9", "cents"]);
    assert_eq!(money("0.5", Some("USD")).unwrap(), ["number_50", "cents"]);
    assert_eq!(money("0.00", Some("USD")).unwrap(), ["digit_0", "dollars"]);
    assert_eq!(money("12.00", Some("GBP")).unwrap(), ["number_12", "pounds"]);
    assert_eq!(money("1e3", Some("USD")), None);
    assert_eq!(money("-4.00", Some("USD")), None);
    assert_eq!(money("4.005", Some("USD")), None);
    let lib = ClipLibrary::built_in();
    for n in [0, 7, 19, 60, 70, 80, 90, 100, 999, 1000, 45_678, 3_000_000, 999_999_999] {
        assert!(count(n).iter().all(|p| matches!(p, Piece::Clip(id) if lib.get(id).is_some())), "{n}");
    }
}

fn money_ids(amount: &str, currency: Option<&str>) -> Option<Vec<String>> {
    money(amount, currency).map(|p| ids(&p).into_iter().map(str::to_string).collect())
}

#[test]
fn euros_pounds_pesos_and_yen_are_said_in_their_own_words() {
    assert_eq!(
        money_ids("21.23", Some("EUR")).unwrap(),
        ["number_20", "digit_1", "euros", "and", "number_20", "digit_3", "cents"]
    );
    assert_eq!(money_ids("1.00", Some("eur")).unwrap(), ["digit_1", "euro"]);
    assert_eq!(money_ids("0.01", Some("EUR")).unwrap(), ["digit_1", "cent"]);
    assert_eq!(money_ids("1.01", Some("GBP")).unwrap(), ["digit_1", "pound", "and", "digit_1", "penny"]);
    assert_eq!(money_ids("2.50", Some("GBP")).unwrap(), ["digit_2", "pounds", "and", "number_50", "pence"]);
    assert_eq!(
        money_ids("350.75", Some("MXN")).unwrap(),
        ["digit_3", "hundred", "number_50", "pesos", "and", "number_70", "digit_5", "centavos"]
    );
    assert_eq!(money_ids("1.01", Some("MXN")).unwrap(), ["digit_1", "peso", "and", "digit_1", "centavo"]);
    assert_eq!(money_ids("1200.00", Some("JPY")).unwrap(), ["digit_1", "thousand", "digit_2", "hundred", "yen"]);
    assert_eq!(
        money_ids("1500000", Some("JPY")).unwrap(),
        ["digit_1", "million", "digit_5", "hundred", "thousand", "yen"]
    );
    assert_eq!(money_ids("1", Some("JPY")).unwrap(), ["digit_1", "yen"]);
    assert_eq!(money_ids("0", Some("JPY")).unwrap(), ["digit_0", "yen"]);
}

#[test]
fn a_yen_amount_with_a_fraction_and_an_unknown_currency_are_not_said() {
    assert_eq!(money_ids("1200.50", Some("JPY")), None, "yen has no minor unit");
    assert_eq!(money_ids("0.01", Some("JPY")), None);
    assert_eq!(money_ids("12.00", Some("CHF")), None, "francs have no recording");
    assert_eq!(money_ids("12.00", Some("")), None, "an empty code is not dollars");
    assert_eq!(money_ids("12.00", Some("EURO")), None);
}

#[test]
fn linear_samples_are_encoded_as_g711_mu_law() {
    assert_eq!(mulaw(0), MULAW_SILENCE);
    assert_eq!(mulaw(-1), 0x7F);
    assert_eq!(mulaw(i16::MAX), 0x80);
    assert_eq!(mulaw(i16::MIN), 0x00);
    // Every code decodes back near the sample it came from (G.711's decoding table).
    let decode = |code: u8| {
        let code = !code;
        let magnitude = ((((code & 0x0F) as i32) << 3) + 0x84) << ((code >> 4) & 7);
        if code & 0x80 != 0 { 0x84 - magnitude } else { magnitude - 0x84 }
    };
    for sample in (-32_000i32..32_000).step_by(97) {
        let back = decode(mulaw(sample as i16));
        assert!((back - sample).abs() <= sample.abs() / 16 + 8, "{sample} → {back}");
    }
}

/// A WAV file: a `fmt ` chunk (format code, channels, rate, bits) and a `data` chunk.
fn wav(code: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let mut fmt = Vec::new();
    fmt.extend(code.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * u32::from(bits / 8) * u32::from(channels)).to_le_bytes());
    fmt.extend((bits / 8 * channels).to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    let mut out = b"RIFF".to_vec();
    out.extend(((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend(b"WAVE");
    for (id, body) in [(b"fmt ", fmt.as_slice()), (b"data", data)] {
        out.extend(id);
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(body);
    }
    out
}

#[test]
fn the_merchants_own_recordings_are_read_from_ulaw_and_8_khz_wav_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("shop_name.wav"), wav(7, 1, 8000, 8, &[1, 2, 3])).unwrap();
    let pcm: Vec<u8> = [0i16, -1, i16::MAX].iter().flat_map(|s| s.to_le_bytes()).collect();
    fs::write(dir.path().join("welcome_back.wav"), wav(1, 1, 8000, 16, &pcm)).unwrap();
    fs::write(dir.path().join("goodbye.ulaw"), [9, 9]).unwrap();
    fs::write(dir.path().join("notes.txt"), "not a clip").unwrap();
    let own = ClipLibrary::load(dir.path()).unwrap();
    assert_eq!(own.get("shop_name"), Some(&[1u8, 2, 3][..]));
    assert_eq!(own.get("welcome_back"), Some(&[MULAW_SILENCE, 0x7F, 0x80][..]));
    let lib = ClipLibrary::built_in().overlaid(own);
    assert_eq!(lib.get("goodbye"), Some(&[9u8, 9][..]), "the merchant's replaces the built-in one");
    assert_eq!(lib.get("shop_name"), Some(&[1u8, 2, 3][..]), "and adds its own");
    assert_eq!(lib.get("digit_1"), ClipLibrary::built_in().get("digit_1"), "the rest stay");
}

#[test]
fn a_recording_media_streams_cannot_play_is_refused_with_how_to_convert_it() {
    for (name, file, expected) in [
        ("hello.wav", wav(1, 1, 16_000, 16, &[0, 0]), "16000 Hz, 1 channel(s); Media Streams plays 8000 Hz mono"),
        ("hello.wav", wav(1, 2, 8000, 16, &[0, 0, 0, 0]), "8000 Hz, 2 channel(s)"),
        ("hello.wav", wav(3, 1, 8000, 32, &[0, 0, 0, 0]), "WAV format 3 with 32-bit samples"),
        ("hello.wav", b"ID3 an mp3".to_vec(), "not a WAV file"),
        ("hello.ulaw", Vec::new(), "no audio"),
        ("Shop Name.ulaw", vec![1], "lowercase letters, digits and `_`"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), file).unwrap();
        let e = ClipLibrary::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(expected), "{name}: {e}");
    }
}

#[test]
fn a_first_name_has_a_clip_id_when_it_is_letters_only() {
    assert_eq!(name_id("Dana").as_deref(), Some("name_dana"));
    assert_eq!(name_id(" MARY ").as_deref(), Some("name_mary"));
    assert_eq!(name_id("Mary Ann"), None);
    assert_eq!(name_id("José"), None);
    assert_eq!(name_id(""), None);
    let lib = ClipLibrary::built_in();
    assert_eq!(phrase("name_dana"), Some("Dana"));
    assert!(lib.get("name_dana").is_some() && lib.get("name_mary").is_some() && lib.get("name_james").is_some());
    assert!(lib.get("name_sofia").is_none(), "not among the 1990 Census's most frequent");
}

#[test]
fn a_word_that_sounds_like_a_first_name_is_heard_as_the_word() {
    let lib = ClipLibrary::built_in();
    assert_eq!(lib.get("month_5"), lib.get("name_may"), "espeak-ng says both alike");
    let audio = render(&lib, &[clip("month_5"), clip("penny"), clip("name_dana")]).unwrap();
    assert_eq!(recognise(&lib, &audio), ["month_5", "penny", "name_dana"]);
}
