//! `wrend -p` through the real binary: a configuration it refuses exits 1 with
//! `FILE:LINE:COL: message` on stderr, whether the error is found parsing or checking.

use std::path::PathBuf;
use std::process::Command;

/// Runs `wrend -p -c FILE` on `text`: (exit code, stderr).
fn check(name: &str, text: &str) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("wren-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file: PathBuf = dir.join(name);
    std::fs::write(&file, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wrend"))
        .arg("-p")
        .arg("-c")
        .arg(&file)
        .output()
        .expect("wrend runs");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        stderr.replace(&format!("{}", file.display()), name),
    )
}

const PEER: &str = "[[peer]]\naddress = \"198.51.100.2\"\nasn = 64512\n";

#[test]
fn refuses_a_duplicate_neighbour_with_its_position() {
    let text = format!("router_id = \"198.51.100.1\"\nasn = 64512\n{PEER}{PEER}");
    let (code, err) = check("dup.toml", &text);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "dup.toml:7:1: peer Node_198_51_100_2: neighbour 198.51.100.2 port 179 is already peer \
         Node_198_51_100_2"
    );
}

#[test]
fn refuses_host_bits_router_id_zero_and_a_short_hold_time() {
    let cases = [
        (
            "router_id = \"198.51.100.1\"\nasn = 64512\noriginate = [\"10.0.0.1/24\"]\n",
            "bits.toml:3:14: 10.0.0.1/24 has host bits set (the prefix is 10.0.0.0/24)",
        ),
        (
            "router_id = \"0.0.0.0\"\nasn = 64512\n",
            "bits.toml:1:1: router_id must not be 0.0.0.0",
        ),
        (
            "router_id = \"198.51.100.1\"\nasn = 64512\n[defaults]\nhold_time = 2\n[[peer]]\n\
             address = \"198.51.100.2\"\nasn = 64512\n",
            "bits.toml:4:1: peer Node_198_51_100_2: hold_time must be 0 or at least 3 (RFC 4271 §4.2)",
        ),
        (
            "router_id = \"198.51.100.1\"\nasn = 64512\nhold = 2\n",
            "bits.toml:3:1: unknown field `hold`",
        ),
    ];
    for (text, want) in cases {
        let (code, err) = check("bits.toml", text);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn accepts_a_good_file() {
    let text = format!("router_id = \"198.51.100.1\"\nasn = 64512\n{PEER}import_limit = 10\n");
    let (code, err) = check("good.toml", &text);
    assert_eq!(code, Some(0), "{err}");
}
