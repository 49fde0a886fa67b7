//! Calico sees wren as it sees BIRD (contract §4–§5): calico-node's `-bird-ready` and
//! `-bird-live`, `calicoctl node status` and the CalicoNodeStatus reporter, their rules
//! written again in `harness::calico`, read a node's live control socket while its peer is
//! up, down, administratively disabled, and while a `-R` restart waits for End-of-RIB; the
//! same walk runs with BIRD 1.6.8 as the node, and the verdicts must be the same.
//!
//!     sudo bash tests/peers/install.sh      # once: BIRD 1.6.8 unpacked under target/peers
//!     sudo flock /tmp/wren-net.lock cargo test --test calico

mod harness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use harness::bgp::{ASN, Raw, graceful_restart_ipv4, open};
use harness::calico::{
    BgpPeer, MESH_PEER, Node, Speaker, THRESHOLD, bird_live, bird_ready, get_peers, gr_in_progress,
    reporter_status,
};
use harness::lab::{ESTABLISH, Fam, Lab};
use harness::peers::{Kind, Peer, PeerOpts, bird16_dir};
use harness::wrend::wren_bin;
use wren::wire::Message;

/// What Calico's tools conclude from a node's socket at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    /// `-bird-ready` within the threshold of calico-node's start, and after it.
    ready_at_start: Result<(), String>,
    ready_later: Result<(), String>,
    /// `show status` has the `0024` block.
    graceful_restart: bool,
    /// `calicoctl node status`'s rows: address, type, state column, Established or not.
    peers: Vec<(String, String, String, bool)>,
    /// `-bird-live` with BIRD 1.6.8's client and with wren's `birdcl`.
    live_birdc: Result<(), String>,
    live_birdcl: Result<(), String>,
    /// The reporter: hello seen, router ID, boot time read.
    reporter: (bool, String, bool),
    /// The BGP rows of `show protocols` as a reader that keeps every row sees them: the
    /// state column, and whether there is an info column (a disabled peer has none).
    bgp_rows: Vec<(String, bool)>,
}

/// The tools' views, with the rows printed for a failure message.
fn verdict(lab: &Lab, node: &Node, birdcl: &Path) -> (Verdict, Vec<BgpPeer>) {
    let young = lab.write("nodename-young", "node-a\n");
    let old = lab.write("nodename-old", "node-a\n");
    let touched = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&old)
        .status();
    assert!(touched.is_ok_and(|s| s.success()), "touch -d");
    let rows = get_peers(&node.ctl, Fam::V4).unwrap_or_else(|e| lab.fail(&e));
    let status = reporter_status(&node.ctl).unwrap_or_else(|e| lab.fail(&e));
    let v = Verdict {
        ready_at_start: bird_ready(&node.ctl, Fam::V4, &young, THRESHOLD),
        ready_later: bird_ready(&node.ctl, Fam::V4, &old, THRESHOLD),
        graceful_restart: gr_in_progress(&node.ctl).unwrap_or_else(|e| lab.fail(&e)),
        peers: rows
            .iter()
            .map(|p| {
                (
                    p.ip.clone(),
                    p.kind.clone(),
                    p.state.clone(),
                    p.bgp_state == "Established",
                )
            })
            .collect(),
        live_birdc: bird_live(&bird16_dir().join("birdc"), &node.ctl),
        live_birdcl: bird_live(birdcl, &node.ctl),
        reporter: (
            status.ready,
            status.router_id.clone(),
            !status.last_boot.is_empty(),
        ),
        bgp_rows: lab
            .must(node.raw("show protocols"))
            .iter()
            .map(|l| {
                l.get(5..)
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
            })
            .filter(|t| t.get(1) == Some(&"BGP"))
            .map(|t| (t[3].to_string(), t.len() >= 6))
            .collect(),
    };
    (v, rows)
}

/// Waits until the node's peer rows satisfy `ok`.
fn wait_rows(lab: &Lab, node: &Node, what: &str, ok: impl Fn(&[BgpPeer]) -> bool) {
    let r = harness::proc::wait_until(what, ESTABLISH, || {
        let rows = get_peers(&node.ctl, Fam::V4)?;
        if ok(&rows) {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    });
    lab.must(r);
}

fn established(rows: &[BgpPeer]) -> bool {
    rows.len() == 1 && rows[0].bgp_state == "Established"
}

/// A peer that reaches Established with graceful restart for IPv4 (RFC 4724) and never
/// sends its End-of-RIB: a restarting node keeps waiting for it.
fn peer_without_end_of_rib(lab: &Lab) -> Raw {
    let from: SocketAddr = "198.51.100.2:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let to: SocketAddr = "198.51.100.1:179".parse().unwrap_or_else(|e| panic!("{e}"));
    let gr = graceful_restart_ipv4();
    let mut raw = Raw::connect_in(&lab.ns_peer, from, to).unwrap_or_else(|e| lab.fail(&e));
    let id = "198.51.100.2".parse().unwrap_or_else(|e| panic!("{e}"));
    raw.send_msg(&Message::Open(open(ASN, id, 240, &[gr])));
    match raw.recv() {
        Some(Message::Open(_)) => {}
        other => lab.fail(&format!("expected the node's OPEN, got {other:?}")),
    }
    raw.send_msg(&Message::Keepalive);
    raw
}

/// The walk, for one speaker as the node: the verdict in each situation, by name.
fn walk(
    lab: &Lab,
    peer: &mut Peer,
    speaker: Speaker,
    birdcl: &Path,
) -> Vec<(&'static str, Verdict)> {
    let mut seen = Vec::new();
    let mut node = Node::start(lab, speaker);
    let mut look = |name: &'static str, node: &Node| {
        let (v, rows) = verdict(lab, node, birdcl);
        lab.log(&format!("{speaker:?} {name}: {v:?} {rows:?}"));
        seen.push((name, v));
    };

    wait_rows(lab, &node, "the peer Established", established);
    look("peer up", &node);

    // `disable`: the row loses its info column and Calico no longer counts the peer.
    lab.must(node.raw(&format!("disable {MESH_PEER}")).map(drop));
    wait_rows(lab, &node, "the peer disabled", |r| r.is_empty());
    look("peer disabled", &node);
    lab.must(node.raw(&format!("enable {MESH_PEER}")).map(drop));
    wait_rows(lab, &node, "the peer Established again", established);

    peer.kill(lab);
    wait_rows(lab, &node, "the session down", |r| {
        r.len() == 1 && r[0].bgp_state != "Established"
    });
    look("peer down", &node);

    // The pod-restart path: SIGKILL, then `bird -R` with the peer still away.
    node.kill_and_restart(lab);
    wait_rows(lab, &node, "the restarted node's row", |r| r.len() == 1);
    look("restart, peer away", &node);

    let raw = peer_without_end_of_rib(lab);
    wait_rows(
        lab,
        &node,
        "the End-of-RIB-less peer Established",
        established,
    );
    look("restart, End-of-RIB pending", &node);
    drop(raw);

    node.stop(lab);
    peer.restart(lab);
    seen
}

#[test]
fn health_checks_give_birds_verdicts() {
    let mut bins = Kind::Bird16.binaries();
    bins.push(wren_bin());
    let lab = Lab::new("calico-health", &bins);
    let birdcl: PathBuf = lab.dir.join("birdcl");
    std::os::unix::fs::symlink(wren_bin(), &birdcl).unwrap_or_else(|e| panic!("{e}"));
    let mut peer = Peer::start(&lab, Kind::Bird16, PeerOpts::new(Fam::V4));

    let bird = walk(&lab, &mut peer, Speaker::Bird16, &birdcl);
    let wren = walk(&lab, &mut peer, Speaker::Wren, &birdcl);

    // BIRD's verdicts are the contract's (§5); wren's must be the same.
    let not_established = Err("BGP not established with 198.51.100.2".to_string());
    let expect = |name: &str| -> (Result<(), String>, Result<(), String>, bool) {
        match name {
            "peer up" | "peer disabled" => (Ok(()), Ok(()), false),
            "peer down" => (not_established.clone(), not_established.clone(), false),
            "restart, peer away" => (not_established.clone(), not_established.clone(), true),
            "restart, End-of-RIB pending" => {
                (Err("graceful restart in progress".into()), Ok(()), true)
            }
            _ => unreachable!("{name}"),
        }
    };
    assert_eq!(bird.len(), 5);
    for ((name, b), (_, w)) in bird.iter().zip(&wren) {
        let (at_start, later, gr) = expect(name);
        assert_eq!(
            (&b.ready_at_start, &b.ready_later, b.graceful_restart),
            (&at_start, &later, gr),
            "BIRD 1.6.8, {name}: {b:?}"
        );
        assert_eq!(b.live_birdc, Ok(()), "BIRD, {name}");
        assert_eq!(w, b, "{name}: wren (left) and BIRD 1.6.8 (right) differ");
    }
}

/// The commands Calico's tools and operators send, as BIRD 1.6.8's own `birdc` sends them.
const COMMANDS: &[&str] = &[
    "show status",
    "show protocols",
    "show protocols all Mesh_198_51_100_2",
    "show route",
    "show route protocol Mesh_198_51_100_2",
    "show route 203.0.113.0/26 count",
    "show route 203.0.113.64/26",
    "show route 10.9.9.9/32",
    "show protocols nosuch",
    "sh pro",
    "bogus",
];

/// A reply with what may differ between two speakers in the same situation made equal:
/// times, dates and the version; and without what one of them adds, each named:
/// - wren's `Converged:` line in `show status` (a 1011 continuation every reader skips);
/// - BIRD's `direct1` protocol and its connected-subnet routes, which wren keeps for next-hop
///   resolution but does not list;
/// - BIRD's route change statistics in `show protocols all`, which wren does not count;
/// - the remaining time in BIRD's `Hold timer: r/t` and `Keepalive timer: r/t` (wren prints
///   the negotiated times).
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut stats = false;
    for line in text.lines() {
        if line.starts_with("Converged: ") || line.contains("direct1") {
            continue;
        }
        // The statistics table: its heading and the four rows under it.
        if line.starts_with("  Route change stats:") {
            stats = true;
            continue;
        }
        const STATS: [&str; 4] = [
            "Import updates:",
            "Import withdraws:",
            "Export updates:",
            "Export withdraws:",
        ];
        if stats && STATS.iter().any(|k| line.trim_start().starts_with(k)) {
            continue;
        }
        stats = false;
        let line = match line.split_once("timer:") {
            Some((k, v)) => format!("{k}timer: {}", v.trim().rsplit('/').next().unwrap_or("")),
            None => line.to_string(),
        };
        let line = match line.strip_prefix("BIRD ") {
            Some(rest) => {
                let tail = rest.split_once(' ').map_or("", |(_, t)| t);
                format!("BIRD VERSION {tail}")
            }
            None => line,
        };
        out.push_str(&times(&line));
        out.push('\n');
    }
    out
}

/// `HH:MM:SS` and `YYYY-MM-DD` anywhere in a line made `TIME` and `DATE`.
fn times(line: &str) -> String {
    let shape = |s: &[u8], seps: &[usize], sep: u8| {
        s.iter().enumerate().all(|(i, b)| {
            if seps.contains(&i) {
                *b == sep
            } else {
                b.is_ascii_digit()
            }
        })
    };
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b.len() - i >= 8 && shape(&b[i..i + 8], &[2, 5], b':') {
            out.push_str("TIME");
            i += 8;
        } else if b.len() - i >= 10 && shape(&b[i..i + 10], &[4, 7], b'-') {
            out.push_str("DATE");
            i += 10;
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn birdc_gets_birds_answers() {
    let bins = {
        let mut b = Kind::Bird16.binaries();
        b.push(wren_bin());
        b
    };
    let lab = Lab::new("calico-birdc", &bins);
    let _peer = Peer::start(&lab, Kind::Bird16, PeerOpts::new(Fam::V4));
    let mut answers = Vec::new();
    for speaker in [Speaker::Bird16, Speaker::Wren] {
        let node = Node::start(&lab, speaker);
        wait_rows(&lab, &node, "the peer Established", established);
        let ctl = node.ctl.display().to_string();
        let replies: Vec<String> = COMMANDS
            .iter()
            .map(|cmd| {
                let mut args = vec!["-s", ctl.as_str()];
                args.extend(cmd.split_whitespace());
                let out = harness::proc::cli(None, &bird16_dir().join("birdc"), &args);
                normalise(&lab.must(out))
            })
            .collect();
        node.stop(&lab);
        answers.push(replies);
    }
    let mut differ = Vec::new();
    for ((cmd, b), w) in COMMANDS.iter().zip(&answers[0]).zip(&answers[1]) {
        if b != w {
            differ.push(format!("`{cmd}`:\n--- BIRD 1.6.8\n{b}--- wren\n{w}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// `dist/calico/install.sh` makes the links calico-node runs, and through them the one
/// executable is BIRD: `bird -p` and `bird6 -p` accept the corpus's Calico configurations and
/// refuse a broken one in BIRD's words; `birdcl` with no daemon says so and exits 1.
#[test]
fn installed_links_play_birds_parts() {
    let root = std::env::temp_dir().join(format!("wren-calico-root.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/calico/install.sh");
    let ok = std::process::Command::new("sh")
        .arg(&script)
        .arg(wren_bin())
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "install.sh failed");
    let bin = root.join("bin");
    for name in ["bird", "bird6", "birdcl", "birdcl6"] {
        let link = std::fs::read_link(bin.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(link, Path::new("wrend"), "{name}");
    }
    let run = |prog: &str, args: &[&str]| {
        let out = std::process::Command::new(bin.join(prog))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bird");
    let mut checked = 0;
    for shape in ["v3.31", "v3.32"] {
        for e in std::fs::read_dir(corpus.join(shape)).unwrap_or_else(|e| panic!("{e}")) {
            let dir = e.unwrap_or_else(|e| panic!("{e}")).path();
            for (prog, file) in [("bird", "bird.cfg"), ("bird6", "bird6.cfg")] {
                let f = dir.join(file);
                if f.exists() {
                    let f = f.display().to_string();
                    assert_eq!(
                        run(prog, &["-p", "-c", &f]),
                        (Some(0), String::new()),
                        "{f}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 26, "{checked} files");
    let typo = corpus.join("broken/typo/bird.cfg").display().to_string();
    let (code, err) = run("bird", &["-p", "-c", &typo]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("bird: {typo}:25:8 syntax error")),
        "{err}"
    );
    // A v6 configuration is not bird's.
    let v6 = corpus
        .join("v3.32/ipv6-peers/bird6.cfg")
        .display()
        .to_string();
    assert_eq!(run("bird", &["-p", "-c", &v6]).0, Some(1));
    let missing = root.join("nope.ctl").display().to_string();
    let (code, err) = run("birdcl", &["-s", &missing, "show", "status"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        format!(
            "Unable to connect to server control socket ({missing}): No such file or directory"
        )
    );
    let _ = std::fs::remove_dir_all(&root);
}
