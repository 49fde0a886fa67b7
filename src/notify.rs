//! systemd's readiness protocol (sd_notify): datagrams to `$NOTIFY_SOCKET` saying READY=1,
//! RELOADING=1, STOPPING=1 and WATCHDOG=1. Without the variable nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification; errors are ignored (systemd may be gone).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket name.
        abstract_addr(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
}

fn abstract_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

/// `RELOADING=1` needs the time it started (sd_notify(3), MONOTONIC_USEC).
pub fn reloading() {
    let usec = monotonic_usec();
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

fn monotonic_usec() -> u128 {
    crate::sys::monotonic().as_micros()
}

/// Half the watchdog interval systemd asked for ($WATCHDOG_USEC), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let pid_ok = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|p| p == std::process::id());
    (pid_ok && usec > 0).then(|| Duration::from_micros(usec / 2))
}
