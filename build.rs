//! Embeds the recorded phrases (speech/clips/*.ulaw) into the binary as a table that
//! `speech::ClipLibrary::built_in` reads; it never generates audio (speech/generate.sh does).
use std::{env, fs, path::Path};

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let clips = Path::new(&manifest).join("speech/clips");
    println!("cargo::rerun-if-changed={}", clips.display());
    // sqlx::migrate! embeds migrations/ at compile time: a new migration must rebuild the crate.
    println!("cargo::rerun-if-changed={}", Path::new(&manifest).join("migrations").display());
    let mut entries: Vec<_> =
        fs::read_dir(&clips).map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    entries.retain(|p| p.extension().is_some_and(|x| x == "ulaw"));
    entries.sort();
    let mut table = String::from("&[\n");
    for path in &entries {
        let id = path.file_stem().and_then(|s| s.to_str()).expect("clip names are UTF-8");
        table.push_str(&format!("    ({id:?}, include_bytes!({:?}).as_slice()),\n", path.display().to_string()));
    }
    table.push_str("]\n");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("speech_clips.rs");
    fs::write(out, table).expect("write the clip table");
}
