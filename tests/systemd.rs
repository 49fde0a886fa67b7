//! wrend under systemd's notify protocol, with a fake $NOTIFY_SOCKET: READY=1 once it
//! listens, WATCHDOG=1 on time, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on
//! SIGTERM, and a clean exit.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn next(sock: &UnixDatagram, want: &str) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    loop {
        assert!(Instant::now() < end, "no {want} from wrend");
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.starts_with(want) {
                return msg;
            }
        }
    }
}

#[test]
fn notify_protocol_and_signals() {
    let dir = std::env::temp_dir().join(format!("wren-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let conf = dir.join("wren.toml");
    std::fs::write(
        &conf,
        "router_id = \"127.0.0.70\"\nasn = 64512\n[kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.70\"]\nport = 1179\n",
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wrend"))
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(dir.join("ctl"))
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .expect("start wrend");
    let pid = child.id() as i32;
    next(&sock, "READY=1");
    next(&sock, "WATCHDOG=1");
    // SAFETY: signalling the child we started, by its pid.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloading = next(&sock, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    next(&sock, "READY=1");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    next(&sock, "STOPPING=1");
    let status = child.wait().expect("wait");
    assert!(status.success(), "wrend exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
