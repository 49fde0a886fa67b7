//! BFD (RFC 5880) against real peers in network namespaces: BIRD 2's `protocol bfd` and
//! FRR's `bfdd`, single-hop over IPv4 and IPv6 (RFC 5881), multihop (RFC 5883), keyed
//! MD5 and meticulous keyed SHA1 (RFC 5880 §6.7), and BGP as the client (RFC 5882): a
//! frozen peer's session and routes go within the detection time, long before the hold
//! timer; a wrong key never comes Up, and then BGP never comes up either; the peer's
//! AdminDown is no failure (§3.2). wrend's side picks single-hop or multihop from its BGP
//! session as BIRD does (`ttl = 1`, BIRD's `direct`, or iBGP's multihop default), also
//! across a router; no false Down through a reload or a 1M-route burst into its kernel;
//! and `show bfd sessions` reads as BIRD 2's, line by line against a live BIRD 2.
//!
//!     sudo cargo test --test bfd
//!
//! They need root and the peer daemons (tests/peers/install.sh), and fail without them.
//! Work files stay in /tmp/wren-interop/<test>.<pid>/.

mod harness;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use harness::lab::{ESTABLISH, Fam, Lab, WREN_ASN};
use harness::peers::{Kind, Peer, PeerBfd, PeerOpts, frr_bfdd, wait_established, wait_routes};
use harness::proc::{cli, holds_for, system_bin, wait_until};
use harness::wrend::{Wren, WrenConf};

/// 100 ms × 3 on both sides: a detection time of 300 ms.
const INTERVAL_MS: u32 = 100;
const MULTIPLIER: u8 = 3;

/// The programs a lab with `kind` as the BFD peer needs.
fn binaries(kind: Kind) -> Vec<std::path::PathBuf> {
    let mut bins = kind.binaries();
    if kind == Kind::Frr {
        bins.push(frr_bfdd());
    }
    bins.push(system_bin("ip"));
    bins
}

/// The peer's side of a session: its BFD with wrend as `peer_bfd`, and wrend's `bfd` (TOML).
/// wrend's iBGP session is directly connected (`ttl = 1`) when the peer's BFD is
/// single-hop; otherwise it is left to iBGP's default, multihop.
fn lab_up(
    id: &str,
    kind: Kind,
    fam: Fam,
    peer_bfd: PeerBfd,
    wren_bfd: String,
) -> (Lab, Wren, Peer) {
    let lab = Lab::new(id, &binaries(kind));
    let mut p = PeerOpts::new(fam);
    p.bfd = Some(peer_bfd);
    start(lab, kind, p, wren_bfd, |_| {})
}

/// Starts the peer (`opts`, passive) and wrend (its `bfd`, then `more`) in `lab`.
fn start(
    lab: Lab,
    kind: Kind,
    mut opts: PeerOpts,
    wren_bfd: String,
    more: impl FnOnce(&mut WrenConf),
) -> (Lab, Wren, Peer) {
    let mut w = WrenConf::new(opts.fam, kind.asn());
    w.bfd = Some(wren_bfd);
    w.direct = opts.bfd.as_ref().is_some_and(|b| !b.multihop);
    more(&mut w);
    opts.passive = true;
    let peer = Peer::start(&lab, kind, opts);
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

/// wrend's `bfd = { ... }` for the same session; `auth` is wrend's name for the type. The
/// hop mode is not set here: wrend takes it from the BGP session.
fn wren_bfd(auth: Option<(&str, &str)>) -> String {
    let mut s =
        format!("{{ min_tx = {INTERVAL_MS}, min_rx = {INTERVAL_MS}, multiplier = {MULTIPLIER}");
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
    let (lab, wren, peer) = lab_up(id, kind, fam, peer_bfd(multihop, None), wren_bfd(None));
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
        wren_bfd(Some((wren_kind, wren_key))),
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
        wren_bfd(None),
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

/// Routes in the burst: /30 blocks of 100.64.0.0/10 (which holds 1,048,576).
const BURST: usize = 1_000_000;
/// The feeder's address, a second one in the peer's namespace.
const FEEDER: &str = "198.51.100.3";

/// BFD at 100 ms x 3 with BIRD 2 stays Up while a second peer (the harness's feeder, from
/// another address of the peer's namespace) announces 1M routes that wrend writes into its
/// kernel, and while they all leave it again when that session closes: BFD runs on its own
/// thread, so neither the RIB nor the FIB delays a packet. Neither side's BFD session
/// changes state (its Since stays the same), nor does wrend's BGP session with BIRD 2.
fn burst_without_a_flap(id: &str) {
    let lab = Lab::new(id, &binaries(Kind::Bird2));
    let mut p = PeerOpts::new(Fam::V4);
    p.bfd = Some(peer_bfd(false, None));
    let (lab, wren, peer) = start(lab, Kind::Bird2, p, wren_bfd(None), |w| {
        w.extra = format!(
            "\n[[peer]]\naddress = \"{FEEDER}\"\nasn = {WREN_ASN}\npassive = true\nttl = 1\n"
        );
    });
    wait_bfd_and_bgp(&lab, &wren, &peer);
    let sinces = bfd_sinces(&lab, &wren, &peer);
    let bgp = lab.must(lab.wren_row(&wren)).raw;
    let base = lab.must(kernel_prefixes(&lab));
    harness::netns::ip(&[
        "-n",
        &lab.ns_peer,
        "addr",
        "add",
        &format!("{FEEDER}/24"),
        "dev",
        "pe0",
    ]);
    let nets: Vec<_> = (0..BURST).map(|k| harness::feeder::block(k, 30)).collect();
    let t0 = Instant::now();
    let feed = harness::netns::in_netns(&lab.ns_peer, || {
        let from: Ipv4Addr = FEEDER.parse().map_err(std::io::Error::other)?;
        let to: Ipv4Addr = Fam::V4.wren().parse().map_err(std::io::Error::other)?;
        harness::feeder::feed(from, (to, 179).into(), WREN_ASN, &nets)
    });
    let feed = lab.must(feed.map_err(|e| format!("feeding {BURST} routes: {e}")));
    let in_kernel = |what: &str, t0: Instant, done: &dyn Fn(i64) -> bool| {
        let r = wait_until(what, Duration::from_secs(180), || {
            let n = kernel_prefixes(&lab)?;
            if done(n) {
                Ok(n)
            } else {
                Err(format!("{n} prefixes in wrend's kernel"))
            }
        });
        let n = lab.must(r);
        lab.log(&format!(
            "{what}: {n} prefixes, {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
    };
    in_kernel("the burst in wrend's kernel", t0, &|n| {
        n >= base + BURST as i64
    });
    lab.must(peer.bfd_up());
    let t0 = Instant::now();
    drop(feed);
    in_kernel("the burst gone from wrend's kernel", t0, &|n| n <= base);
    lab.must(peer.bfd_up());
    // BIRD prints its monotonic change time as wall-clock time, converted anew each time:
    // the same Since may read a millisecond apart. A flap moves it by at least the
    // detection time.
    let now = bfd_sinces(&lab, &wren, &peer);
    if now.iter().zip(&sinces).any(|(a, b)| (a - b).abs() > 50) {
        lab.fail(&format!(
            "a BFD session changed state: [wrend's, BIRD 2's] Since (ms of the day) was \
             {sinces:?}, now {now:?}"
        ));
    }
    let row = lab.must(lab.wren_row(&wren)).raw;
    if row != bgp {
        lab.fail(&format!("the BGP session changed: {row:?} (was {bgp:?})"));
    }
    let log = std::fs::read_to_string(lab.log_path(wren.proc)).unwrap_or_default();
    let downs: Vec<&str> = (log.lines())
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

/// Prefixes in wrend's namespace's main table (fib_triestat: no dump of a million routes).
fn kernel_prefixes(lab: &Lab) -> Result<i64, String> {
    let pid = (harness::netns::netns_pids(&lab.ns_wren).into_iter().next())
        .ok_or("no process in wrend's namespace")?;
    harness::kernel::prefixes_in(&format!("/proc/{pid}/net/fib_triestat"))
        .map_err(|e| e.to_string())
}

/// The Since of wrend's BFD session with the peer and of the peer's (BIRD's) with wrend,
/// in milliseconds of the day (`HH:MM:SS.mmm`).
fn bfd_sinces(lab: &Lab, wren: &Wren, peer: &Peer) -> [i64; 2] {
    let since = |text: &str, addr: &str| {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(addr));
        let t = row.and_then(|l| l.split_whitespace().nth(3)).unwrap_or("");
        let ms = t
            .split([':', '.'])
            .map(str::parse::<i64>)
            .collect::<Result<Vec<_>, _>>();
        match ms.as_deref() {
            Ok([h, m, s, ms]) => Ok(((h * 60 + m) * 60 + s) * 1000 + ms),
            _ => Err(format!("no BFD session Since for {addr}: {text:?}")),
        }
    };
    let fam = wren.conf.fam;
    let ours = lab.must(lab.wren_cmd(wren, "show bfd sessions"));
    let theirs = lab.must(peer.bfd_text());
    [
        lab.must(since(&ours, fam.peer())),
        lab.must(since(&theirs, fam.wren())),
    ]
}

/// FRR shuts its BFD session with wrend down (`shutdown` in bfdd: AdminDown, RFC 5880
/// §6.8.16). wrend's session goes Down, logging the peer's state and diagnostic, but that
/// is no failure (RFC 5882 §3.2): the BGP session stays Established, with the same since,
/// and FRR's route stays in wrend's kernel. `no shutdown` brings BFD Up again, still without a BGP
/// reset.
fn remote_admin_down(id: &str) {
    let (lab, wren, peer) = lab_up(
        id,
        Kind::Frr,
        Fam::V4,
        peer_bfd(false, None),
        wren_bfd(None),
    );
    wait_bfd_and_bgp(&lab, &wren, &peer);
    let bgp = lab.must(lab.wren_row(&wren)).raw;
    let net = Fam::V4.peer_net();
    let kernel_has_route = || lab.wren_kernel_has_peer_route(&wren, net);
    lab.must(kernel_has_route());
    lab.must(peer.bfd_shutdown(true));
    let r = wait_until(
        "wrend's BFD session Down",
        Duration::from_secs(5),
        || match lab.wren_bfd(&wren)? {
            (s, ..) if s == "Down" => Ok(()),
            other => Err(format!("wrend: {other:?}")),
        },
    );
    lab.must(r);
    // With the peer's own diagnostic (FRR 8.4's bfdd sends none with its AdminDown).
    let said = "BFD session Up -> Down (Neighbor Signaled Session Down; the peer is AdminDown: ";
    if !lab.log_contains(wren.proc, said) {
        lab.fail(&format!("wrend's log lacks {said:?}"));
    }
    let r = holds_for(
        "BGP Established and the route in the kernel with the peer AdminDown",
        Duration::from_secs(4),
        || {
            let row = lab.wren_row(&wren)?;
            if row.raw != bgp {
                return Err(format!(
                    "the BGP session changed: {:?} (was {bgp:?})",
                    row.raw
                ));
            }
            kernel_has_route()?;
            match lab.wren_bfd(&wren)? {
                (s, ..) if s == "Down" => Ok(()),
                other => Err(format!("wrend's BFD session left Down: {other:?}")),
            }
        },
    );
    lab.must(r);
    lab.log("the peer AdminDown: BFD Down, BGP and the route kept");
    lab.must(peer.bfd_shutdown(false));
    let r = wait_until("BFD Up again on both sides", ESTABLISH, || {
        match lab.wren_bfd(&wren)? {
            (s, ..) if s == "Up" => peer.bfd_up(),
            other => Err(format!("wrend: {other:?}")),
        }
    });
    lab.must(r);
    let row = lab.must(lab.wren_row(&wren)).raw;
    if row != bgp {
        lab.fail(&format!("the BGP session changed: {row:?} (was {bgp:?})"));
    }
    lab.must(kernel_has_route());
    if lab.log_contains(wren.proc, "BFD session down (") {
        lab.fail("wrend closed the BGP session for BFD");
    }
}

/// BFD's hop mode comes from the BGP session, as BIRD's `bfd on` takes it: wrend's iBGP
/// peer with no TTL set is multihop (BIRD's iBGP default), so across a router its BFD runs
/// over UDP 4784 (RFC 5883) with BIRD 2's `multihop` session; a directly connected one
/// (`ttl = 1`, BIRD's `direct`) runs single-hop over 3784 (RFC 5881) with BIRD 2's
/// `direct`. BIRD keeps its sessions of each kind apart by port, so Up on both sides means
/// the same mode; both show it in the Interface column (`---` for multihop).
fn hop_mode_from_the_session(id: &str, routed: bool) {
    let bins = binaries(Kind::Bird2);
    let lab = match routed {
        true => Lab::routed(id, &bins),
        false => Lab::new(id, &bins),
    };
    let mut p = PeerOpts::new(Fam::V4);
    p.bfd = Some(peer_bfd(routed, None));
    // wrend's side: `ttl = 1` when directly connected, nothing over the router.
    let (lab, wren, peer) = start(lab, Kind::Bird2, p, wren_bfd(None), |_| {});
    let r = wait_until("BFD Up on both sides", ESTABLISH, || {
        match lab.wren_bfd(&wren)? {
            (s, ..) if s == "Up" => peer.bfd_up(),
            other => Err(format!("wrend: {other:?}")),
        }
    });
    lab.must(r);
    wait_established(&lab, &wren, &peer);
    let interface = |text: &str, addr: &str| {
        (text.lines())
            .find(|l| l.split_whitespace().next() == Some(addr))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    };
    let ours = lab.must(lab.wren_cmd(&wren, "show bfd sessions"));
    let theirs = lab.must(peer.bfd_text());
    let seen = (
        interface(&ours, Fam::V4.peer()),
        interface(&theirs, Fam::V4.wren()),
    );
    let want = match routed {
        true => ("---", "---"),
        false => ("wr0", "pe0"),
    };
    if seen != (Some(want.0.into()), Some(want.1.into())) {
        lab.fail(&format!(
            "BFD interfaces (wrend's, BIRD's) {seen:?}, expected {want:?}:\n{ours}\n{theirs}"
        ));
    }
}

/// The same sessions from both ends, wrend's and BIRD 2's: one Up between them, and on
/// each side one single-hop and one multihop session with an address nobody has (Down).
/// `show bfd sessions` from each, through the socket (raw, with the reply codes), BIRD 2's
/// `birdc` and `wrenc`, reads the same line by line once each side's addresses and
/// interface are written as the other's (wrend's 198.51.100.2, .9, .6 and wr0 as BIRD's
/// .1, .8, .7 and pe0) and the Since times' digits as 9s; the times keep their shape,
/// BIRD 2's `HH:MM:SS.mmm`.
fn show_bfd_sessions_as_bird2(id: &str) {
    let mut bins = binaries(Kind::Bird2);
    bins.push(harness::wrend::wrenc_bin());
    let lab = Lab::new(id, &bins);
    let mut p = PeerOpts::new(Fam::V4);
    p.bfd = Some(peer_bfd(false, None));
    p.bfd_neighbors = vec![("198.51.100.8", false), ("198.51.100.7", true)];
    let (lab, wren, peer) = start(lab, Kind::Bird2, p, wren_bfd(None), |w| {
        let silent = |addr: &str, more: &str| {
            format!("\n[[peer]]\naddress = \"{addr}\"\nasn = {WREN_ASN}\npassive = true\n{more}\n")
        };
        w.extra = silent(
            "198.51.100.9",
            &format!("ttl = 1\nbfd = {}", wren_bfd(None)),
        ) + &silent("198.51.100.6", &format!("bfd = {}", wren_bfd(None)));
    });
    wait_bfd_and_bgp(&lab, &wren, &peer);
    let as_bird = |text: &str| {
        let mut t = text.to_string();
        for (ours, theirs) in [
            ("198.51.100.2 ", "198.51.100.1 "),
            ("198.51.100.9 ", "198.51.100.8 "),
            ("198.51.100.6 ", "198.51.100.7 "),
            (" wr0 ", " pe0 "),
        ] {
            t = t.replace(ours, theirs);
        }
        t
    };
    let bird_ctl = lab.dir.join("bird.ctl");
    let replies = |who: &str| -> [String; 2] {
        let (ctl, client) = match who {
            "wrend" => (&wren.ctl, harness::wrend::wrenc_bin()),
            _ => (&bird_ctl, system_bin("birdc")),
        };
        let ctl_arg = ctl.display().to_string();
        let client_out = cli(None, &client, &["-s", &ctl_arg, "show", "bfd", "sessions"]);
        [
            lab.must(raw_reply(ctl, "show bfd sessions")),
            lab.must(client_out),
        ]
    };
    let same = || {
        let bird = replies("bird").map(|t| normalised(&t));
        let ours = replies("wrend").map(|t| normalised(&as_bird(&t)));
        match bird == ours {
            true => Ok(()),
            false => Err(format!("BIRD 2:\n{bird:#?}\nwrend, as BIRD's:\n{ours:#?}")),
        }
    };
    // Both sides' silent sessions settle Down (timers at their slow start) and stay so.
    let r = wait_until(
        "the same `show bfd sessions`",
        Duration::from_secs(10),
        same,
    );
    lab.must(r);
}

/// A reply with the Since column's digits as 9s, rows (but the header) sorted (BIRD lists
/// its sessions in hash order), and the `birdc` greeting, which `wrenc` does not print,
/// left out.
fn normalised(text: &str) -> String {
    let mut head = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with("BIRD ")) {
        // Rows have an address first and the time 48 characters on; raw, after a reply
        // code (`1020-`) or the space of a continuation.
        let b = line.as_bytes();
        let at = match b {
            [b' ', ..] => 1,
            _ if b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) => 5,
            _ => 0,
        };
        match line.get(at..).is_some_and(|body| body.starts_with("198.")) {
            true => {
                let mut l: Vec<char> = line.chars().collect();
                for c in l.iter_mut().skip(at + 48).take(12) {
                    if c.is_ascii_digit() {
                        *c = '9';
                    }
                }
                rows.push(l.into_iter().collect::<String>());
            }
            false => head.push(line.to_string()),
        }
    }
    rows.sort();
    let tail = head.split_off(head.len().min(2));
    [head, rows, tail].concat().join("\n")
}

/// One command's reply on a BIRD control socket, as it comes (codes and all), after the
/// greeting; up to its last line (`0000`, or an error code followed by a space).
fn raw_reply(ctl: &std::path::Path, cmd: &str) -> Result<String, String> {
    use std::io::{BufRead, BufReader, Write};
    let s = std::os::unix::net::UnixStream::connect(ctl).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    (&s).write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("the socket closed after {out:?}"));
        }
        out.push_str(&line);
        let b = line.as_bytes();
        if b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
            return Ok(out);
        }
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
    fn multihop_inferred_across_a_router() {
        hop_mode_from_the_session("bfd-hopr", true);
    }

    #[test]
    fn single_hop_when_directly_connected() {
        hop_mode_from_the_session("bfd-hopd", false);
    }

    #[test]
    fn show_bfd_sessions_reads_as_bird2s() {
        show_bfd_sessions_as_bird2("bfd-show");
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

    #[test]
    fn remote_admin_down_is_no_failure() {
        remote_admin_down("bfd-fadm");
    }
}
