//! BFD (RFC 5880) against real peers in network namespaces: BIRD 2's `protocol bfd` and
//! FRR's `bfdd`, single-hop over IPv4 and IPv6 (RFC 5881), multihop (RFC 5883), keyed
//! MD5 and meticulous keyed SHA1 (RFC 5880 §6.7), and BGP as the client (RFC 5882): a
//! frozen peer's session and routes go within the detection time, long before the hold
//! timer; a wrong key never comes Up, and then BGP never comes up either.
//!
//!     sudo cargo test --test bfd
//!
//! They need root and the peer daemons (tests/peers/install.sh), and fail without them.
//! Work files stay in /tmp/wren-interop/<test>.<pid>/.

mod harness;

use std::time::{Duration, Instant};

use harness::lab::{ESTABLISH, Fam, Lab};
use harness::peers::{Kind, Peer, PeerBfd, PeerOpts, frr_bfdd, wait_established, wait_routes};
use harness::proc::{holds_for, wait_until};
use harness::wrend::{Wren, WrenConf};

/// 100 ms × 3 on both sides: a detection time of 300 ms.
const INTERVAL_MS: u32 = 100;
const MULTIPLIER: u8 = 3;

/// The peer's side of a session: its BFD with wrend as `peer_bfd`, and wrend's `bfd` (TOML).
fn lab_up(
    id: &str,
    kind: Kind,
    fam: Fam,
    peer_bfd: PeerBfd,
    wren_bfd: String,
) -> (Lab, Wren, Peer) {
    let mut bins = kind.binaries();
    if kind == Kind::Frr {
        bins.push(frr_bfdd());
    }
    let lab = Lab::new(id, &bins);
    let mut w = WrenConf::new(fam, kind.asn());
    w.bfd = Some(wren_bfd);
    let mut p = PeerOpts::new(fam);
    p.passive = true;
    p.bfd = Some(peer_bfd);
    let peer = Peer::start(&lab, kind, p);
    let wren = lab.start_wren(w);
    (lab, wren, peer)
}

fn peer_bfd(multihop: bool, auth: Option<(&'static str, &str)>) -> PeerBfd {
    PeerBfd {
        interval_ms: INTERVAL_MS,
        multiplier: MULTIPLIER,
        multihop,
        auth: auth.map(|(k, pw)| (k, pw.to_string())),
    }
}

/// wrend's `bfd = { ... }` for the same session; `auth` is wrend's name for the type.
fn wren_bfd(multihop: bool, auth: Option<(&str, &str)>) -> String {
    let mut s =
        format!("{{ min_tx = {INTERVAL_MS}, min_rx = {INTERVAL_MS}, multiplier = {MULTIPLIER}");
    if multihop {
        s.push_str(", multihop = true");
    }
    if let Some((kind, pw)) = auth {
        s.push_str(&format!(
            ", auth = \"{kind}\", password = \"{pw}\", key_id = 1"
        ));
    }
    s + " }"
}

/// BFD Up on both sides at 100 ms × 3, then the BGP session and its routes.
fn wait_bfd_and_bgp(lab: &Lab, wren: &Wren, peer: &Peer) {
    let r = wait_until("BFD Up on both sides", ESTABLISH, || {
        let (state, interval, timeout) = lab.wren_bfd(wren)?;
        if (state.as_str(), interval.as_str(), timeout.as_str()) != ("Up", "0.100", "0.300") {
            return Err(format!("wrend: {state} {interval} {timeout}"));
        }
        peer.bfd_up()
    });
    lab.must(r);
    lab.log("BFD Up on both sides, 100 ms x 3");
    wait_established(lab, wren, peer);
    wait_routes(lab, wren, peer);
}

/// The session comes up, BFD first; the peer is frozen: wrend's BGP session and the peer's
/// routes go within the detection time (and polling), not the 9 s hold time, for "BFD
/// session down" (RFC 5882 §4.3); thawed, BFD and then BGP come back.
fn up_then_frozen(id: &str, kind: Kind, fam: Fam, multihop: bool) {
    let (lab, wren, peer) = lab_up(
        id,
        kind,
        fam,
        peer_bfd(multihop, None),
        wren_bfd(multihop, None),
    );
    wait_bfd_and_bgp(&lab, &wren, &peer);
    peer.stop(&lab);
    let stopped = Instant::now();
    let net = fam.peer_net();
    let r = wait_until(
        "wrend drops the frozen peer's session and routes",
        Duration::from_secs(5),
        || {
            let row = lab.wren_row(&wren)?;
            if row.established() {
                return Err(format!("still {:?}", row.raw));
            }
            lab.wren_lacks_route(&wren, net)
        },
    );
    lab.must(r);
    let took = stopped.elapsed();
    lab.log(&format!(
        "session and {net} gone {} ms after SIGSTOP",
        took.as_millis()
    ));
    let details = lab.must(lab.wren_cmd(&wren, &format!("show protocols all {}", wren.name)));
    if !details.contains("BFD session down") {
        lab.fail(&format!(
            "the session went down, but not for BFD:\n{details}"
        ));
    }
    peer.cont(&lab);
    wait_bfd_and_bgp(&lab, &wren, &peer);
    lab.log("back after SIGCONT");
}

/// A key of the same type on both sides: BFD and BGP come up. Different keys: BFD never
/// comes Up on either side, and BGP, waiting for it, never comes up (RFC 5882 §4.3).
fn authenticated(id: &str, wren_kind: &str, bird_kind: &'static str, wren_key: &str) {
    let (lab, wren, peer) = lab_up(
        id,
        Kind::Bird2,
        Fam::V4,
        peer_bfd(false, Some((bird_kind, "Bfd-Secret"))),
        wren_bfd(false, Some((wren_kind, wren_key))),
    );
    if wren_key == "Bfd-Secret" {
        wait_bfd_and_bgp(&lab, &wren, &peer);
        return;
    }
    let r = holds_for(
        "with different keys BFD and BGP stay down",
        Duration::from_secs(10),
        || {
            let (state, ..) = lab.wren_bfd(&wren)?;
            if state == "Up" || peer.bfd_up().is_ok() {
                return Err(format!("BFD came Up (wrend: {state})"));
            }
            match lab.wren_row(&wren)? {
                row if row.established() => Err(format!("BGP came up: {:?}", row.raw)),
                _ => Ok(()),
            }
        },
    );
    lab.must(r);
    lab.log("different keys: BFD and BGP down for 10 s");
}

/// A reload that slows wrend's BFD to 300 ms (a Poll Sequence, RFC 5880 §6.8.3) and back
/// changes the timers without a false Down: BFD and BGP stay up throughout, the BGP session
/// is not reset and no BFD state change is logged.
fn reload_without_a_flap(id: &str) {
    let (lab, wren, peer) = lab_up(
        id,
        Kind::Bird2,
        Fam::V4,
        peer_bfd(false, None),
        wren_bfd(false, None),
    );
    wait_bfd_and_bgp(&lab, &wren, &peer);
    let since = lab.must(lab.wren_row(&wren)).raw;
    for (from, to, interval) in [
        ("min_tx = 100", "min_tx = 300", "0.300"),
        ("min_tx = 300", "min_tx = 100", "0.100"),
    ] {
        lab.write(
            "wren.toml",
            &std::fs::read_to_string(&wren.config)
                .unwrap_or_default()
                .replace(from, to),
        );
        let out = lab.must(lab.wren_cmd(&wren, "configure"));
        if !out.contains("Reconfigured") {
            lab.fail(&format!("configure: {out}"));
        }
        let r = wait_until(
            "the new interval applies",
            Duration::from_secs(5),
            || match lab.wren_bfd(&wren)? {
                (s, i, _) if s == "Up" && i == interval => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        lab.must(r);
        lab.log(&format!("reloaded: {to}, interval {interval}"));
    }
    let r = holds_for(
        "BFD and BGP stay up after the reloads",
        Duration::from_secs(2),
        || {
            peer.bfd_up()?;
            let row = lab.wren_row(&wren)?;
            match row.raw == since {
                true => Ok(()),
                false => Err(format!(
                    "the BGP session changed: {:?} (was {since:?})",
                    row.raw
                )),
            }
        },
    );
    lab.must(r);
    let log = std::fs::read_to_string(lab.log_path(wren.proc)).unwrap_or_default();
    let changes = log
        .lines()
        .filter(|l| l.contains("BFD session Up ->"))
        .count();
    if changes != 0 {
        lab.fail(&format!("{changes} BFD Downs through the reloads"));
    }
}

/// BFD at 100 ms x 3 stays Up through a burst of 200k routes from BIRD 2 into wrend and
/// its kernel: BFD runs on its own thread, so neither the RIB nor the FIB delays a packet.
fn burst_without_a_flap(id: &str) {
    const ROUTES: usize = 200_000;
    let mut bins = Kind::Bird2.binaries();
    bins.push(harness::proc::system_bin("ip"));
    let lab = Lab::new(id, &bins);
    let mut w = WrenConf::new(Fam::V4, Kind::Bird2.asn());
    w.bfd = Some(wren_bfd(false, None));
    let mut p = PeerOpts::new(Fam::V4);
    p.passive = true;
    p.bfd = Some(peer_bfd(false, None));
    p.burst = ROUTES;
    let peer = Peer::start(&lab, Kind::Bird2, p);
    let wren = lab.start_wren(w);
    let r = wait_until(
        "the burst in wrend's kernel",
        Duration::from_secs(300),
        || {
            let out = harness::proc::cli(
                Some(&lab.ns_wren),
                &harness::proc::system_bin("ip"),
                &["route", "show", "proto", "bird", "root", "100.64.0.0/10"],
            )?;
            match out.lines().count() {
                n if n >= ROUTES => Ok(n),
                n => Err(format!("{n} routes")),
            }
        },
    );
    let n = lab.must(r);
    lab.log(&format!("{n} routes in wrend's kernel"));
    lab.must(peer.bfd_up());
    let log = std::fs::read_to_string(lab.log_path(wren.proc)).unwrap_or_default();
    let downs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("BFD session Up ->"))
        .collect();
    if !downs.is_empty() {
        lab.fail(&format!("BFD went Down during the burst: {downs:?}"));
    }
    let ups = log.lines().filter(|l| l.contains("-> Up")).count();
    if ups != 1 {
        lab.fail(&format!("BFD came Up {ups} times"));
    }
}

mod bird2 {
    use super::*;

    #[test]
    fn ipv4_single_hop() {
        up_then_frozen("bfd-b4", Kind::Bird2, Fam::V4, false);
    }

    #[test]
    fn ipv6_single_hop() {
        up_then_frozen("bfd-b6", Kind::Bird2, Fam::V6, false);
    }

    #[test]
    fn ipv4_multihop() {
        up_then_frozen("bfd-bm", Kind::Bird2, Fam::V4, true);
    }

    #[test]
    fn reload_changes_timers_without_a_flap() {
        reload_without_a_flap("bfd-rel");
    }

    #[test]
    fn no_false_down_through_a_route_burst() {
        burst_without_a_flap("bfd-burst");
    }

    #[test]
    fn keyed_md5() {
        authenticated("bfd-md5", "keyed-md5", "keyed md5", "Bfd-Secret");
    }

    #[test]
    fn meticulous_keyed_sha1() {
        authenticated(
            "bfd-sha1",
            "meticulous-keyed-sha1",
            "meticulous keyed sha1",
            "Bfd-Secret",
        );
    }

    #[test]
    fn wrong_key_never_up() {
        authenticated("bfd-wkey", "keyed-sha1", "keyed sha1", "Not-The-Secret");
    }
}

mod frr {
    use super::*;

    #[test]
    fn ipv4_single_hop() {
        up_then_frozen("bfd-f4", Kind::Frr, Fam::V4, false);
    }

    #[test]
    fn ipv6_single_hop() {
        up_then_frozen("bfd-f6", Kind::Frr, Fam::V6, false);
    }
}
