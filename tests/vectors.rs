//! Golden vectors: messages captured from real BIRD 1.6, BIRD 2, GoBGP, FRR and OpenBGPD
//! sessions (tests/vectors/*.hex), each checked both ways against its decoded form
//! (tests/vectors/*.jsonl): decode(bytes) == value and encode(value) == bytes. And the same
//! files through `wrenc decode` and `wrenc encode`: decode's standard output is JSON
//! throughout (so `| jq` works), and `decode | encode` gives back every message and directive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The captured sessions, tests/vectors/*.hex.
fn vector_files() -> Vec<PathBuf> {
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
    files
}

#[test]
fn captured_vectors_decode_and_reencode_both_ways() {
    let files = vector_files();
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

/// Runs `program` with `args`, `input` on its standard input (written from a thread, so a
/// full output pipe cannot stall it); it must succeed.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (jq comes from tests/peers/install.sh)"));
    let mut stdin = child.stdin.take().expect("stdin");
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(input).expect("write stdin"));
        child.wait_with_output().expect("wait")
    });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wrenc(args: &[&str], input: &[u8]) -> Output {
    pipe(env!("CARGO_BIN_EXE_wrenc"), args, input)
}

#[test]
fn decode_prints_only_json_lines() {
    for file in vector_files() {
        let out = wrenc(&["decode", &file.to_string_lossy()], b"");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut messages = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", file.display()));
            assert!(v.is_object(), "{}: {line}", file.display());
            messages += usize::from(v.get("type").is_some());
        }
        assert!(messages > 0, "{}: no message decoded", file.display());
    }
}

#[test]
fn decode_output_goes_through_jq() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bird2-to-gobgp.hex");
    let decoded = wrenc(&["decode", &file.to_string_lossy()], b"");
    let out = pipe("jq", &["-r", "select(.type) | .type"], &decoded.stdout);
    let types = String::from_utf8_lossy(&out.stdout);
    // The file's own count: "Messages: OPEN 1, UPDATE 12, NOTIFICATION 1, KEEPALIVE 6".
    for (kind, n) in [
        ("open", 1),
        ("update", 12),
        ("notification", 1),
        ("keepalive", 6),
    ] {
        assert_eq!(types.lines().filter(|l| *l == kind).count(), n, "{kind}");
    }
}

#[test]
fn decode_then_encode_gives_back_messages_and_directives() {
    for file in vector_files() {
        let original = std::fs::read_to_string(&file).expect("read vector");
        let decoded = wrenc(&["decode", &file.to_string_lossy()], b"");
        let encoded = wrenc(&["encode"], &decoded.stdout);
        let want: Vec<&str> = original
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && (!l.starts_with('#') || l.starts_with("#!")))
            .collect();
        let got = String::from_utf8_lossy(&encoded.stdout);
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "{}", file.display());
    }
}
