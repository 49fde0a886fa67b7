//! The control socket through real BIRD clients (`birdc` from BIRD 1.6.8, Calico's version,
//! and `birdc`/`birdcl` from BIRD 2), the layout calico-node parses, the Prometheus endpoint,
//! convergence, the run-time log level and `down`, against two wrend nodes on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wren::demo::Node;

mod harness;

const METRICS: &str = "127.0.0.84:9324";

/// Node A (127.0.0.`a`, metrics on) and B (127.0.0.`a+1`) in an iBGP mesh, each with a
/// block. Each test has its own addresses, so they run in parallel.
type Pair = harness::wrend::Nodes;

fn config(me: u8, peer: u8, block: &str, extra: &str) -> String {
    format!(
        "router_id = \"127.0.0.{me}\"\nasn = 64512\noriginate = [\"{block}\"]\n{extra}\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.{me}\"]\nport = 1179\n\
         [defaults]\nhold_time = 9\nconnect_delay = 1\nconnect_retry = 2\nsource_address = \"127.0.0.{me}\"\n\
         [[peer]]\nname = \"Mesh_127_0_0_{peer}\"\naddress = \"127.0.0.{peer}\"\nasn = 64512\nport = 1179\npassive = {}\n",
        peer < me
    )
}

impl Pair {
    fn start(tag: &str, a: u8) -> Pair {
        let dir = std::env::temp_dir().join(format!("wren-control-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let wrend = Path::new(env!("CARGO_BIN_EXE_wrend"));
        let mut pair = Pair {
            dir,
            nodes: Vec::new(),
        };
        let metrics = if a == 84 {
            format!("metrics = \"{METRICS}\"")
        } else {
            String::new()
        };
        let (ca, cb) = (
            config(a, a + 1, "198.18.0.0/26", &metrics),
            config(a + 1, a, "198.18.0.64/26", ""),
        );
        for (name, c) in [("a", ca), ("b", cb)] {
            let node = Node::spawn(wrend, &pair.dir, name, &c).expect("start wrend");
            pair.nodes.push(node);
        }
        pair.wait("convergence", 0, "show status", |s| {
            s.contains("Converged: yes (End-of-RIB from 1 of 1 peers")
        });
        pair
    }

    fn socket(&self) -> &Path {
        &self.nodes[0].socket
    }

    /// Waits until node `i`'s answer to `cmd` is `ok`.
    fn wait(&self, what: &str, i: usize, cmd: &str, ok: impl Fn(&str) -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !self.nodes[i].ask(cmd).is_some_and(|s| ok(&s)) {
            assert!(
                Instant::now() < end,
                "{what} not reached; logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The BIRD client binaries the tests drive (installed by tests/peers/install.sh).
fn clients() -> Vec<PathBuf> {
    let bird16 = std::env::var_os("WREN_BIRD16_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/bird16/usr/sbin"),
        PathBuf::from,
    );
    let list = vec![
        bird16.join("birdc"),
        PathBuf::from("/usr/sbin/birdc"),
        PathBuf::from("/usr/sbin/birdcl"),
    ];
    for c in &list {
        assert!(
            c.is_file(),
            "{} missing: run `sudo bash tests/peers/install.sh`",
            c.display()
        );
    }
    list
}

/// Runs a BIRD client one-shot (`birdc -s SOCKET command…`): its exit status and output.
fn run(client: &Path, socket: &Path, cmd: &str) -> (bool, String) {
    let out = Command::new(client)
        .arg("-s")
        .arg(socket)
        .args(cmd.split_whitespace())
        .output()
        .expect("run the BIRD client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// What a BIRD client prints for a reply: the hello, then the text of each line.
fn expected(node: &Node, cmd: &str) -> String {
    let reply = node.ask(cmd).expect("wrend answers");
    format!("BIRD v{}+wren ready.\n{reply}", env!("CARGO_PKG_VERSION"))
}

/// Times of day and dates change between two runs of a command.
fn untimed(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let clock = w.len() == 8 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':';
            if clock { "TIME" } else { w }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn real_bird_clients_read_every_command() {
    let pair = Pair::start("clients", 80);
    let a = &pair.nodes[0];
    let commands = [
        "show status",
        "show protocols",
        "show protocols all",
        "show protocols all Mesh_127_0_0_81",
        "show route",
        "show route all",
        "show route count",
        "show route for 198.18.0.70",
        "show route 198.18.0.64/26",
        "show route protocol Mesh_127_0_0_81",
        "show route 10.9.9.9/32",
        "show protocols nosuch",
        "configure check",
        "reload in Mesh_127_0_0_81",
    ];
    let clients = clients();
    for client in &clients {
        for cmd in commands {
            let (_, out) = run(client, pair.socket(), cmd);
            assert_eq!(
                untimed(&out),
                untimed(&expected(a, cmd)),
                "{} {cmd}",
                client.display()
            );
        }
        // Memory figures move between two runs: the layout is what must match.
        let numbers = |s: &str| -> String {
            s.split_whitespace()
                .map(|w| if w.parse::<u64>().is_ok() { "N" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (_, out) = run(client, pair.socket(), "show memory");
        assert_eq!(numbers(&out), numbers(&expected(a, "show memory")));
        assert!(
            out.contains("Routing tables:") && out.contains("Total:"),
            "{out}"
        );
        // Calico's bird-live: `birdcl -s SOCKET show status` exits 0, output starts `BIRD`.
        let (ok, out) = run(client, pair.socket(), "show status");
        assert!(ok && out.starts_with("BIRD"), "{out}");
        assert!(out.contains("Daemon is up and running"), "{out}");
    }
    // Peer commands change state, and the client prints the daemon's answer. Once, with
    // Calico's client: each Cease doubles the peer's error wait (5 s up to 30 s, contract §2.7).
    {
        let client = &clients[0];
        let (_, out) = run(client, pair.socket(), "disable Mesh_127_0_0_81");
        assert!(out.contains("Mesh_127_0_0_81: disabled"), "{out}");
        pair.wait("the peer down", 1, "show protocols", |s| {
            !s.contains("Established")
        });
        let (_, out) = run(client, pair.socket(), "enable Mesh_127_0_0_81");
        assert!(out.contains("Mesh_127_0_0_81: enabled"), "{out}");
        pair.wait("the peer back", 0, "show status", |s| {
            s.contains("Converged: yes")
        });
    }
}

/// calico-node's bird-ready and calicoctl parse `show protocols` by whitespace tokens
/// (contract §4.2): the heading fields exactly, then rows of name, proto, table, state,
/// since, info; a BGP row's name gives the peer type and address.
#[test]
fn show_protocols_parses_as_calico_does() {
    let pair = Pair::start("calico", 82);
    let mut c = wren::control::client::Client::connect(pair.socket()).expect("connect");
    let reply = c.command("show protocols").expect("reply");
    let mut rows = 0;
    for l in &reply {
        match l.code {
            2002 => assert_eq!(
                l.text.split_whitespace().collect::<Vec<_>>(),
                ["name", "proto", "table", "state", "since", "info"]
            ),
            // kernel1 and device1 come first, with no info: Calico skips rows that are not
            // BGP's.
            1002 if !l.text.contains(" BGP ") => {
                let t: Vec<&str> = l.text.split_whitespace().collect();
                assert_eq!(t.len(), 5, "{t:?}");
                assert!(["Kernel", "Device", "Static"].contains(&t[1]), "{t:?}");
            }
            1002 => {
                let t: Vec<&str> = l.text.split_whitespace().collect();
                let (kind, ip) = t[0].split_once('_').expect("Mesh_ name");
                assert_eq!(
                    (kind, ip.replace('_', ".").as_str()),
                    ("Mesh", "127.0.0.83")
                );
                assert_eq!(&t[1..4], ["BGP", "master", "up"]);
                assert_eq!(t[4].len(), 8, "since is one token: {t:?}");
                assert_eq!(t[5], "Established");
                rows += 1;
            }
            0 => {}
            other => panic!("bird-ready rejects code {other}: {l:?}"),
        }
    }
    assert_eq!(rows, 1);
    // bird-ready's `show status` rule: only 1000, 1011, 0024 and the closing 0013.
    let status = c.command("show status").expect("reply");
    assert!(
        status
            .iter()
            .all(|l| [1000, 1011, 24, 13].contains(&l.code))
    );
    assert_eq!(status.last().map(|l| l.code), Some(13));
}

fn scrape(path: &str) -> String {
    let mut s = TcpStream::connect(METRICS).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

#[test]
fn metrics_log_level_and_down() {
    let mut pair = Pair::start("metrics", 84);
    let m = scrape("/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    let peer = "{peer=\"Mesh_127_0_0_85\",address=\"127.0.0.85\",asn=\"64512\"}";
    for want in [
        "wren_converged 1".to_string(),
        format!("wren_peer_state{peer} 6"),
        format!("wren_peer_up{peer} 1"),
        format!("wren_peer_prefixes_accepted{peer} 1"),
        format!("wren_peer_prefixes_advertised{peer} 1"),
        "wren_rib_prefixes 2".to_string(),
    ] {
        assert!(m.lines().any(|l| l == want), "{want} not in:\n{m}");
    }
    let counter = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{peer} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(counter("wren_peer_updates_received_total") >= 2, "{m}"); // block + End-of-RIB
    assert!(counter("wren_peer_updates_sent_total") >= 2, "{m}");
    assert!(counter("wren_peer_prefixes_received_total") >= 1, "{m}");
    assert!(scrape("/other").starts_with("HTTP/1.1 404"));

    let a = &pair.nodes[0];
    assert_eq!(
        a.ask("log level debug").as_deref(),
        Some("Log level debug\n")
    );
    assert!(
        a.ask("log level loud")
            .is_some_and(|r| r.contains("syntax error"))
    );

    let reply = a.ask("down").expect("reply to down");
    assert_eq!(reply, "Shutdown requested\n");
    let end = Instant::now() + Duration::from_secs(5);
    while pair.nodes[0].running().is_ok() {
        assert!(Instant::now() < end, "wrend still running after down");
        std::thread::sleep(Duration::from_millis(50));
    }
    // B saw a Cease, not a hold-timer expiry.
    pair.wait("B to see A go", 1, "show protocols", |s| {
        s.contains("Received: Cease / Administrative Shutdown")
    });
}

/// `wrenc` with no command is an interactive session, as `birdc` is; without a terminal it
/// reads commands line by line from standard input.
#[test]
fn wrenc_interactive_session() {
    use std::process::Stdio;
    let pair = Pair::start("interactive", 86);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wrenc"))
        .arg("-s")
        .arg(pair.socket())
        .env("HOME", &pair.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wrenc");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"show protocols\n\nshow route count\nbogus\nquit\nshow status\n")
        .expect("write commands");
    let out = child.wait_with_output().expect("wrenc output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("BIRD v"), "{text}");
    assert!(text.contains("Mesh_127_0_0_87 BGP"), "{text}");
    assert!(text.contains("2 of 2 routes for 2 networks"), "{text}");
    assert!(text.contains("syntax error"), "{text}");
    // `quit` ended the session: the command after it never ran.
    assert!(!text.contains("Daemon is up and running"), "{text}");
}

/// A client that floods the socket with an endless line, one that sends garbage, and one
/// that leaves in the middle of a reply harm nobody: the daemon answers the next client
/// and keeps its sessions.
#[test]
fn abusive_clients_harm_nothing() {
    use std::os::unix::net::UnixStream;
    let pair = Pair::start("abuse", 88);
    // An endless command line: 8 MiB without a newline, then one.
    let mut flood = UnixStream::connect(pair.socket()).expect("connect");
    flood.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        if flood.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = flood.write_all(b"\nshow status\n");
    // Binary garbage and invalid UTF-8.
    let mut junk = UnixStream::connect(pair.socket()).expect("connect");
    let _ = junk.write_all(&[0xff, 0xfe, 0x00, b'\n', 0xc3, b'\n']);
    // Many clients that ask and hang up before reading the reply.
    for _ in 0..50 {
        let mut gone = UnixStream::connect(pair.socket()).expect("connect");
        let _ = gone.write_all(b"show route all\nshow protocols all\n");
    }
    drop((flood, junk));
    let reply = pair.nodes[0]
        .ask("show protocols")
        .expect("the daemon still answers");
    assert!(reply.contains("Established"), "{reply}");
    let mut c = wren::control::client::Client::connect(pair.socket()).expect("connect");
    let long = format!("show route {}", "x".repeat(5000));
    let r = c.command(&long).expect("reply to a long line");
    assert_eq!(r.last().map(|l| l.code), Some(9000), "{r:?}");
    let r = c.command("show route count").expect("reply after it");
    assert!(r.iter().any(|l| l.text.contains("2 of 2 routes")), "{r:?}");
}

/// The daemon's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS of wrend")
}

/// Ten clients that ask for `show route` of 100k routes and never read cost the daemon a
/// chunk each, not a reply each: its RSS grows by less than 10 MiB, `show status` from
/// another client is answered meanwhile, a client that reads gets every route in order, and
/// the ten are dropped once their sockets have taken nothing for 30 s.
#[test]
fn clients_that_never_read_hold_one_chunk() {
    use std::io::BufRead;
    use std::os::unix::net::UnixStream;
    const ROUTES: usize = 100_000;
    let dir = std::env::temp_dir().join(format!("wren-control-unread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut pair = Pair {
        dir: dir.clone(),
        nodes: Vec::new(),
    };
    let config = "router_id = \"127.0.0.90\"\nasn = 64512\n[kernel]\nenabled = false\n\
        [listen]\naddresses = [\"127.0.0.90\"]\nport = 1179\n\
        [[peer]]\nname = \"Feeder\"\naddress = \"127.0.0.91\"\nasn = 64512\nport = 1179\npassive = true\n";
    let wrend = Path::new(env!("CARGO_BIN_EXE_wrend"));
    let node = Node::spawn(wrend, &dir, "a", config).expect("start wrend");
    pair.nodes.push(node);
    let nets: Vec<_> = (0..ROUTES).map(|k| harness::feeder::block(k, 28)).collect();
    let _feed = harness::feeder::feed(
        "127.0.0.91".parse().unwrap(),
        "127.0.0.90:1179".parse().unwrap(),
        64512,
        &nets,
    )
    .expect("feed wrend");
    let node = &pair.nodes[0];
    let all_in = format!("{ROUTES} of {ROUTES} routes");
    let end = Instant::now() + Duration::from_secs(60);
    while !node
        .ask("show route count")
        .is_some_and(|r| r.contains(&all_in))
    {
        assert!(
            Instant::now() < end,
            "routes not in; logs in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = node.pid();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);

    let silent: Vec<UnixStream> = (0..10)
        .map(|_| {
            let mut s = UnixStream::connect(&node.socket).expect("connect");
            s.write_all(b"show route\n").expect("ask");
            s
        })
        .collect();
    // Time for each to be answered as far as its socket takes.
    std::thread::sleep(Duration::from_secs(2));
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown <= 10 * 1024,
        "RSS grew {grown} KiB for ten silent clients"
    );

    let asked = Instant::now();
    let status = node.ask("show status").expect("show status answered");
    assert!(status.contains("Daemon is up and running"), "{status}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "show status took {:?} beside the silent clients",
        asked.elapsed()
    );

    let mut c = wren::control::client::Client::connect(&node.socket).expect("connect");
    let reply = c.command("show route").expect("a whole show route");
    let shown: Vec<ipnet::Ipv4Net> = reply
        .iter()
        .filter(|l| l.code == 1007)
        .filter_map(|l| l.text.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(shown, nets, "every route once, in prefix order");
    assert_eq!(reply.last().map(|l| l.code), Some(0));
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown <= 10 * 1024, "RSS grew {grown} KiB");

    // 30 s without taking anything: each silent client is dropped, its reply cut short.
    std::thread::sleep(Duration::from_secs(32));
    for s in silent {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut r = std::io::BufReader::new(s);
        let (mut last, mut line) = (String::new(), String::new());
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            std::mem::swap(&mut last, &mut line);
            line.clear();
        }
        assert!(
            !last.is_empty() && !last.starts_with("0000 "),
            "dropped before the end of the reply: {last:?}"
        );
    }
}
