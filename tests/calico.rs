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

use harness::bgp::{ASN, Raw, open};
use harness::calico::{
    BgpPeer, MESH_PEER, Node, Speaker, THRESHOLD, bird_live, bird_ready, get_peers, gr_in_progress,
    reporter_status,
};
use harness::lab::{ESTABLISH, Fam, Lab};
use harness::peers::{Kind, Peer, PeerOpts, bird16_dir};
use harness::wrend::wren_bin;
use wren::wire::open::{GrFamily, GracefulRestart};
use wren::wire::{Afi, Capability, Message, Safi};

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
    let gr = Capability::GracefulRestart(GracefulRestart {
        flags: 0,
        restart_time: 120,
        families: vec![GrFamily {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            flags: 0,
        }],
    });
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
