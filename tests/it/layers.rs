//! Imports point one way: `twilio`, `agent`, `sim` → `ivr` → `lookup` → `shopify` → `store` →
//! `domain` (the README's layout section draws it). This reads every source file under `src/`
//! and fails on a `crate::` path that points up that chain, and on any `crate::` path out of
//! `domain`. Any upward import fails (`KNOWN` lists none); a listed one that is gone fails too
//! (take it off the list).

use std::collections::BTreeSet;
use std::path::Path;

/// Lower numbers sit lower in the house. Modules not listed (app, config, ops, clock, speech)
/// are wiring and utilities, not layers of the call path.
const LAYERS: [(&str, u8); 8] =
    [("domain", 0), ("store", 1), ("shopify", 2), ("lookup", 3), ("ivr", 4), ("twilio", 5), ("agent", 5), ("sim", 5)];

/// Upward imports not yet removed: (file, module it reaches up to). None are left: the store
/// takes plain write structs (`store::Change`), never a Shopify payload, and the vocabulary the
/// layers share (`ShopifyId`, `ReturnStatus`, …) lives in `domain`. Keep it empty: move a
/// shared type down instead of listing an import here.
const KNOWN: [(&str, &str); 0] = [];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every module named right after `crate::` in `source` (comments included: a doc link up the
/// chain is a dependency of the reader too).
fn crate_paths(source: &str) -> BTreeSet<String> {
    source
        .match_indices("crate::")
        .filter(|(at, _)| !source[..*at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .map(|(at, _)| {
            source[at + "crate::".len()..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect()
        })
        .collect()
}

#[test]
fn imports_point_down_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut upward = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let Some(module) = relative.strip_prefix("src/").and_then(|p| p.split(['/', '.']).next()) else { continue };
        let Some(rank) = layer(module) else { continue };
        for target in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
            let up = match layer(&target) {
                _ if target == module => false,
                _ if module == "domain" => true,
                Some(target_rank) => target_rank > rank,
                None => false,
            };
            if up {
                upward.insert((relative.clone(), target));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
    let new: Vec<_> = upward.difference(&known).collect();
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(new.is_empty(), "imports pointing up the layers (move the shared type down, to `domain`): {new:?}");
    assert!(gone.is_empty(), "no longer upward, take them off KNOWN: {gone:?}");
}

#[test]
fn the_scan_sees_paths_as_the_compiler_does() {
    let paths =
        crate_paths("use crate::store::Store;\nlet x = crate::domain::mask_pii(y); $crate::common::x; my_crate::ivr");
    assert_eq!(paths, BTreeSet::from(["store".to_string(), "domain".to_string()]));
}
