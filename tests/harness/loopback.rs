//! One wrend on 127.0.0.1 at a free port, its control socket in a temp directory, for the
//! loopback tests that talk to it from raw sockets (tests/malformed.rs, tests/memory.rs):
//! started from a config that names the port, killed and cleaned up when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Wrend {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Drop for Wrend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Wrend {
    /// Starts wrend with the config `config(port)` in /tmp/wren-NAME-PID-PORT (tests of one
    /// binary run in parallel), and waits until it listens.
    pub fn start(name: &str, config: impl FnOnce(u16) -> String) -> Wrend {
        let port = free_port();
        let text = config(port);
        Wrend::start_on(name, port, text)
    }

    /// Starts wrend with `config`, whose BGP port is `port` (a configuration from
    /// elsewhere, such as a datastore), and waits until it listens there.
    pub fn start_on(name: &str, port: u16, config: String) -> Wrend {
        let dir = (std::env::temp_dir()).join(format!("wren-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf = dir.join("wren.toml");
        std::fs::write(&conf, config).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_wrend"))
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(dir.join("ctl"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start wrend");
        let w = Wrend { child, dir, port };
        wait_for(
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "wrend listening",
        );
        w
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A control command's reply, as it comes (codes included).
    pub fn control(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(self.dir.join("ctl")).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.write_all(format!("{cmd}\n").as_bytes())
            .expect("write command");
        let mut out = String::new();
        let mut buf = [0u8; 4096];
        // The hello, then the reply ends with a line "DDDD " (code and a space).
        while !out
            .lines()
            .skip(1)
            .any(|l| l.len() >= 5 && l.as_bytes()[4] == b' ')
        {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        out
    }
}

/// Polls `ok` every 50 ms for up to 10 s.
pub fn wait_for(ok: impl FnMut() -> bool, what: &str) {
    wait_up_to(Duration::from_secs(10), ok, what);
}

pub fn wait_up_to(limit: Duration, mut ok: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port on 127.0.0.1 nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
