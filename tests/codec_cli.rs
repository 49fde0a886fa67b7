//! `wrenc decode` and `wrenc encode` on every captured session in tests/vectors: decode's
//! standard output is JSON throughout (so `| jq` works), and `decode | encode` gives back
//! every message and directive byte for byte.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn wrenc(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wrenc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wrenc");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for wrenc");
    assert!(
        out.status.success(),
        "wrenc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/vectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "vectors in {}", dir.display());
    files
}

#[test]
fn decode_prints_only_json_lines() {
    for file in vectors() {
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
    let mut jq = Command::new("jq")
        .args(["-r", "select(.type) | .type"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jq (tests/peers/install.sh installs it)");
    jq.stdin
        .take()
        .expect("stdin")
        .write_all(&decoded.stdout)
        .expect("feed jq");
    let out = jq.wait_with_output().expect("wait for jq");
    assert!(
        out.status.success(),
        "jq: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    for file in vectors() {
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
