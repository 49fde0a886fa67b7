//! Golden vectors: messages captured from real BIRD 1.6, BIRD 2, GoBGP, FRR and OpenBGPD
//! sessions (tests/vectors/*.hex), each checked both ways against its decoded form
//! (tests/vectors/*.jsonl): decode(bytes) == value and encode(value) == bytes.

use std::path::Path;

use wren::wire::text::{self, Line};
use wren::wire::{Message, Negotiated};

/// The messages of a vector file with the options in force for each.
fn messages(path: &Path) -> Vec<(usize, Negotiated, String)> {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut neg = Negotiated::default();
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate() {
        match text::classify(line, &mut neg) {
            Ok(Line::Message(m)) => out.push((n + 1, neg, m.to_string())),
            Ok(_) => {}
            Err(e) => panic!("{}:{}: {e}", path.display(), n + 1),
        }
    }
    out
}

#[test]
fn captured_vectors_decode_and_reencode_both_ways() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/vectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the captured vector files, found {files:?}"
    );
    let mut total = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for hex_path in &files {
        let json_path = hex_path.with_extension("jsonl");
        let golden = messages(&json_path);
        let captured = messages(hex_path);
        assert_eq!(
            golden.len(),
            captured.len(),
            "{} vs {}",
            hex_path.display(),
            json_path.display()
        );
        for ((line, neg, hex_text), (_, _, json)) in captured.iter().zip(&golden) {
            let at = format!("{}:{line}", hex_path.display());
            let (bytes, decoded) =
                text::decode_hex(hex_text, neg).unwrap_or_else(|e| panic!("{at}: {e}"));
            let expected: Message =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{at}: golden JSON: {e}"));
            assert_eq!(
                decoded, expected,
                "{at}: decode(bytes) differs from the golden value"
            );
            let encoded = expected
                .to_bytes(neg)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                hex::encode(encoded),
                hex::encode(&bytes),
                "{at}: encode(value) differs"
            );
            *kinds
                .entry(format!("{:?}", std::mem::discriminant(&decoded)))
                .or_insert(0) += 1;
            total += 1;
        }
    }
    assert!(total >= 100, "only {total} messages in the vectors");
    assert_eq!(kinds.len(), 5, "every message type is captured: {kinds:?}");
}
