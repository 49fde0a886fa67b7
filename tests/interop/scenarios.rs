//! What each interop test does, for any peer kind.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wren::wire::open::{GrFamily, GracefulRestart};
use wren::wire::{Afi, Capability, Message, Prefix, Safi, Update};

use crate::harness::bgp::{ASN, Raw, ibgp_attributes, open};
use crate::harness::lab::WREN_ASN;
use crate::harness::lab::{CONVERGE, ESTABLISH, Fam, Lab};
use crate::harness::peers::{Kind, Peer, PeerOpts, wait_established, wait_routes};
use crate::harness::proc::{holds_for, wait_until};
use crate::harness::wrend::{Wren, WrenConf};

/// Who opens the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dial {
    /// wrend dials, the peer is passive.
    Wren,
    /// The peer dials, wrend is passive.
    Peer,
    /// Both dial (as in Calico's node mesh).
    Both,
}

fn confs(kind: Kind, fam: Fam, dial: Dial) -> (WrenConf, PeerOpts) {
    let mut w = WrenConf::new(fam, kind.asn());
    let mut p = PeerOpts::new(fam);
    w.passive = dial == Dial::Peer;
    p.passive = dial == Dial::Wren;
    (w, p)
}

fn lab(id: &str, kind: Kind) -> Lab {
    Lab::new(id, &kind.binaries())
}

/// Starts the listening side first, so the dialling side's first attempt finds it (OpenBGPD
/// waits its 120 s connect-retry time after a refused connection).
fn start(lab: &Lab, kind: Kind, w: WrenConf, p: PeerOpts) -> (Wren, Peer) {
    if w.passive {
        let wren = lab.start_wren(w);
        let peer = Peer::start(lab, kind, p);
        (wren, peer)
    } else {
        let peer = Peer::start(lab, kind, p);
        let wren = lab.start_wren(w);
        (wren, peer)
    }
}

/// wrend dials a peer of `kind` over IPv4 (both with their defaults); returns once the session
/// is Established on both sides and the routes are in.
fn up_v4(lab: &Lab, kind: Kind) -> (Wren, Peer) {
    let (w, p) = confs(kind, Fam::V4, Dial::Wren);
    let (wren, peer) = start(lab, kind, w, p);
    wait_established(lab, &wren, &peer);
    wait_routes(lab, &wren, &peer);
    (wren, peer)
}

/// The session comes up with `dial` deciding who connects, both sides say Established,
/// and each side has the other's prefix with the right next hop.
pub fn session(id: &str, kind: Kind, fam: Fam, dial: Dial) {
    let lab = lab(id, kind);
    let (w, p) = confs(kind, fam, dial);
    let (wren, peer) = start(&lab, kind, w, p);
    wait_established(&lab, &wren, &peer);
    lab.log("established on both sides");
    wait_routes(&lab, &wren, &peer);
    lab.log("routes exchanged both ways");
}

/// Same TCP MD5 password on both sides: the session comes up and routes flow.
pub fn md5_match(id: &str, kind: Kind, dial: Dial) {
    let lab = lab(id, kind);
    let (mut w, mut p) = confs(kind, Fam::V4, dial);
    w.password = Some("wren-md5-Secret".into());
    p.password = Some("wren-md5-Secret".into());
    let (wren, peer) = start(&lab, kind, w, p);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    lab.log("established with matching MD5 keys");
}

/// Different passwords (both sides dialling): never Established, on either side.
pub fn md5_mismatch(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (mut w, mut p) = confs(kind, Fam::V4, Dial::Both);
    w.password = Some("wren-md5-Secret".into());
    p.password = Some("another-Secret".into());
    let (wren, peer) = start(&lab, kind, w, p);
    let r = holds_for(
        "sessions with mismatched MD5 keys stay down",
        Duration::from_secs(15),
        || {
            let row = lab.wren_row(&wren)?;
            if row.established() || row.info.starts_with("OpenConfirm") {
                return Err(format!("wrend got past TCP: {:?}", row.raw));
            }
            match peer.established(&lab) {
                Ok(()) => Err(format!("{kind:?} shows the session Established")),
                Err(_) => Ok(()),
            }
        },
    );
    lab.must(r);
    let row = lab.must(lab.wren_row(&wren));
    lab.log(&format!("still down after 15 s: {:?}", row.raw));
}

/// A peer without graceful restart, hold time 6 on both sides, is frozen with SIGSTOP:
/// within 10 s wrend drops the session (hold timer) and the peer's routes.
pub fn hold_timer(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (mut w, mut p) = confs(kind, Fam::V4, Dial::Wren);
    w.hold_time = 6;
    p.hold_time = 6;
    p.graceful_restart = false;
    let (wren, peer) = start(&lab, kind, w, p);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    peer.stop(&lab);
    let stopped = Instant::now();
    let r = wait_until(
        "wrend drops the session with the frozen peer",
        Duration::from_secs(10),
        || match lab.wren_row(&wren) {
            Ok(row) if row.established() => Err(format!("still {:?}", row.raw)),
            Ok(row) => Ok(row),
            Err(e) => Err(e),
        },
    );
    let row = lab.must(r);
    lab.log(&format!(
        "session dropped {:.1} s after SIGSTOP: {:?}",
        stopped.elapsed().as_secs_f64(),
        row.raw
    ));
    let net = Fam::V4.peer_net();
    let r = wait_until(
        &format!("wrend withdraws {net} of the frozen peer (no graceful restart)"),
        Duration::from_secs(10).saturating_sub(stopped.elapsed()),
        || lab.wren_lacks_route(&wren, net),
    );
    lab.must(r);
    let r = lab.wren_cmd(&wren, &format!("show protocols all {}", wren.name));
    let details = lab.must(r);
    if !details.contains("Hold timer expired") {
        lab.fail(&format!(
            "wrend dropped the session, but not for its hold timer:\n{details}"
        ));
    }
    peer.cont(&lab);
}

/// The peer asks for a route refresh: wrend sends its routes again (the peer's count
/// of received UPDATEs grows) and the session stays up.
pub fn route_refresh(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (wren, peer) = up_v4(&lab, kind);
    // let the initial burst (UPDATEs, End-of-RIB) settle so the counter is stable
    let mut before = lab.must(peer.updates_received(&lab));
    let r = wait_until(
        "the UPDATE counter settles",
        Duration::from_secs(10),
        || {
            std::thread::sleep(Duration::from_secs(1));
            let now = peer.updates_received(&lab)?;
            if now == before {
                Ok(now)
            } else {
                before = now;
                Err(format!("{now}"))
            }
        },
    );
    let before = lab.must(r);
    lab.log(&format!(
        "{kind:?} has received {before} updates; asking for a refresh"
    ));
    lab.must(peer.request_refresh());
    let r = wait_until(
        "wrend answers the ROUTE-REFRESH with its routes again",
        Duration::from_secs(10),
        || {
            let now = peer.updates_received(&lab)?;
            if now > before {
                Ok(now)
            } else {
                Err(format!("{kind:?} update counter still {now}"))
            }
        },
    );
    let after = r.unwrap_or_else(|e| {
        let logged = lab.log_contains(wren.proc, "route refresh requested");
        lab.fail(&format!(
            "{e}\n(wrend's log {} \"route refresh requested\")",
            if logged { "has" } else { "does not have" }
        ))
    });
    lab.log(&format!("{kind:?} update counter {before} -> {after}"));
    lab.must(lab.wren_established(&wren));
    lab.must(peer.has_wren_route(&lab, Some(false)));
}

/// wrend is SIGKILLed while Established with a graceful-restart peer: the peer keeps
/// wrend's route (stale) during the gap; wrend restarted with `-R` gets the session back and
/// the route is fresh again.
pub fn gr_wren_killed(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (mut wren, peer) = up_v4(&lab, kind);
    lab.kill(wren.proc);
    let r = wait_until(
        "the peer notices wrend is gone",
        Duration::from_secs(10),
        || match peer.established(&lab) {
            Ok(()) => Err("still Established".into()),
            Err(_) => Ok(()),
        },
    );
    lab.must(r);
    let r = wait_until(
        "the peer keeps wrend's route, marked stale, during the restart",
        Duration::from_secs(5),
        || peer.has_wren_route(&lab, Some(true)),
    );
    let kept = lab.must(r);
    lab.log(&format!(
        "peer keeps: {}",
        kept.raw.lines().next().unwrap_or("")
    ));
    // still there a little later: not just slow to withdraw
    std::thread::sleep(Duration::from_secs(2));
    lab.must(peer.has_wren_route(&lab, Some(true)));
    lab.restart_wren(&mut wren, true);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    lab.log("session and routes back after wrend's restart");
}

/// The peer (graceful restart on) is SIGKILLed: wrend keeps its routes marked stale
/// `(100s/0)`; once the peer is back they are fresh again.
pub fn gr_peer_killed(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (wren, mut peer) = up_v4(&lab, kind);
    peer.kill(&lab);
    let net = Fam::V4.peer_net();
    let r = wait_until(
        "wrend notices the peer is gone",
        Duration::from_secs(10),
        || match lab.wren_row(&wren) {
            Ok(row) if row.established() => Err(format!("still {:?}", row.raw)),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
    );
    lab.must(r);
    let r = lab.wren_has_peer_route(&wren, net, Some(true));
    let kept = lab.must(r);
    lab.log(&format!("wrend keeps: {:?}", kept.raw));
    std::thread::sleep(Duration::from_secs(2));
    lab.must(lab.wren_has_peer_route(&wren, net, Some(true)));
    peer.restart(&lab);
    wait_established(&lab, &wren, &peer);
    let r = wait_until(
        &format!("wrend's {net} is fresh again after the peer's End-of-RIB"),
        ESTABLISH,
        || lab.wren_has_peer_route(&wren, net, Some(false)),
    );
    lab.must(r);
    wait_routes(&lab, &wren, &peer);
}

/// A peer whose graceful restart capability lists no address family (OpenBGPD announces it
/// only for End-of-RIB) is SIGKILLed: it preserves no forwarding state, so RFC 4724 §4.2
/// does not apply and wrend must drop its routes at once; they come back with the new
/// session.
pub fn gr_peer_killed_without_families(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (wren, mut peer) = up_v4(&lab, kind);
    peer.kill(&lab);
    let net = Fam::V4.peer_net();
    let r = wait_until(
        &format!("wrend drops {net} of the dead peer"),
        Duration::from_secs(10),
        || lab.wren_lacks_route(&wren, net),
    );
    lab.must(r);
    peer.restart(&lab);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
}

/// After a restart with `-R` has completed (session back, routes exchanged, End-of-RIB both
/// ways), wrend's later OPENs must not claim a restart any more: RFC 4724 §3 sets the Restart
/// State bit because "the BGP speaker has restarted", and peers skip waiting for End-of-RIB
/// when they see it. The peer resets the session and checks the bit in the new OPEN.
pub fn restart_state_cleared_after_recovery(id: &str, kind: Kind) {
    let lab = lab(id, kind);
    let (mut wren, peer) = up_v4(&lab, kind);
    lab.kill(wren.proc);
    lab.restart_wren(&mut wren, true);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    match peer.saw_restart_state() {
        Ok(true) => lab.log("the OPEN after `wrend -R` has the Restart State bit, as it should"),
        Ok(false) => lab.fail("the OPEN right after `wrend -R` lacks the Restart State bit"),
        Err(e) => lab.fail(&e),
    }
    // recovery is over: give wrend a few seconds more, then have the peer reset the session
    std::thread::sleep(Duration::from_secs(5));
    lab.must(peer.reset_session());
    std::thread::sleep(Duration::from_secs(1));
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    if lab.must(peer.saw_restart_state()) {
        lab.fail(
            "wrend still sets the graceful restart Restart State bit (\"Restart recovery\" in \
             BIRD's view of its OPEN) on a session opened long after its restart with -R had \
             completed; it should be set only until the restart is over (RFC 4724 §3)",
        );
    }
}

/// wrend never sends a peer its own route back (issue 13; BIRD and FRR don't): the peer's
/// prefix is exportable (its /24 is a pool), yet what the peer holds from wrend is wrend's
/// prefix only. `ibgp`: the peer is wrend's route-reflector client (it would get its route
/// with ORIGINATOR_ID = itself); otherwise an eBGP peer.
pub fn own_route_not_sent_back(id: &str, kind: Kind, ibgp: bool) {
    let lab = lab(id, kind);
    let mut w = WrenConf::new(Fam::V4, if ibgp { WREN_ASN } else { kind.asn() });
    w.reflect = true;
    let mut p = PeerOpts::new(Fam::V4);
    p.ibgp = ibgp;
    p.passive = true;
    let (wren, peer) = start(&lab, kind, w, p);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    let (own, theirs) = (Fam::V4.peer_net(), Fam::V4.wren_net());
    let r = holds_for(
        &format!("the peer holds {theirs} from wrend and not its own {own}"),
        Duration::from_secs(3),
        || {
            let held = peer.adj_in(&lab)?;
            match (held.contains(theirs), held.contains(own)) {
                (true, false) => Ok(()),
                _ => Err(format!("its Adj-RIB-In from wrend:\n{held}")),
            }
        },
    );
    lab.must(r);
}

/// `show protocols all` for the BGP peer, wrend's against BIRD 1.6.8's, line by line: the
/// two peer with each other (both AS 64512, each announcing one block, both with Calico's
/// description and inline filters, BIRD multihop), so each shows the same kind of session
/// from its side, with the `Description`, `Input filter` and `Output filter` lines its
/// configuration gives. What must differ is normalised: the protocol name and the time in
/// the first row, the addresses and router IDs (each shows the other's), and the timers'
/// remaining seconds. Three differences are left, on purpose:
///
/// - BIRD's "Route change stats" table (5 lines) is not compared: wrend does not print it.
///   Its export rows count every route any of BIRD's protocols puts in its table (here
///   4 received, 2 rejected, 1 filtered: the static block, the peer's own route, the
///   `direct` interface routes), which wren, with no device, direct or static protocols,
///   has no counterpart for; and calico-node reads none of it (contract §4.3).
/// - The timers: wrend prints the hold and keepalive times the session negotiated
///   (`Hold timer: 9`), not BIRD's remaining/total (`5/9`): the timers run in the session
///   task, which does not report them. Both normalise to `N/9`.
/// - Long-lived graceful restart in `Neighbor caps`: each side lists the other's capabilities,
///   and BIRD 1.6.8 sends LLGR (so wrend shows `llgr-aware`) where wrend sends none.
pub fn show_protocols_all_like_bird16(id: &str) {
    let kind = Kind::Bird16;
    let lab = lab(id, kind);
    let (mut w, mut p) = confs(kind, Fam::V4, Dial::Both);
    p.calico = true;
    w.extra = "import_filter = \"inline\"\n".into();
    let (wren, peer) = start(&lab, kind, w, p);
    wait_established(&lab, &wren, &peer);
    wait_routes(&lab, &wren, &peer);
    // Both sides have sent and taken in everything (End-of-RIB included).
    std::thread::sleep(Duration::from_secs(2));
    let ours = lab.must(Peer::bird16_birdc(
        &wren.ctl,
        &format!("show protocols all {}", wren.name),
    ));
    let bird = lab.must(peer.status_text(&lab));
    let (a, b) = (protocol_block(&ours), protocol_block(&bird));
    let none = String::new();
    let diff: Vec<String> = (0..a.len().max(b.len()))
        .map(|i| (a.get(i).unwrap_or(&none), b.get(i).unwrap_or(&none)))
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("wrend: {x:?}\nBIRD:  {y:?}"))
        .collect();
    if !diff.is_empty() {
        lab.fail(&format!(
            "`show protocols all` differs from BIRD 1.6.8's:\n{}\n\nwrend:\n{ours}\nBIRD 1.6.8:\n{bird}",
            diff.join("\n")
        ));
    }
}

/// The lines of `show protocols all NAME` as birdc prints them (from the header row on),
/// with what must differ between two speakers replaced.
fn protocol_block(out: &str) -> Vec<String> {
    // The router IDs are the addresses.
    let addresses = [Fam::V4.wren(), Fam::V4.peer()];
    const CHANGE_STATS: [&str; 5] = [
        "  Route change stats:",
        "    Import updates:",
        "    Import withdraws:",
        "    Export updates:",
        "    Export withdraws:",
    ];
    out.lines()
        .skip_while(|l| !l.starts_with("name "))
        .filter(|l| !CHANGE_STATS.iter().any(|s| l.starts_with(s)))
        .map(|l| {
            let mut l = l.to_string();
            if !l.starts_with(' ') && !l.starts_with("name ") && !l.is_empty() {
                // The row: NAME BGP master up HH:MM:SS INFO.
                let cols: Vec<&str> = l.split_whitespace().collect();
                l = format!("NAME {} TIME {}", cols[1..4].join(" "), cols[5..].join(" "));
            }
            for a in addresses {
                l = l.replace(a, "ADDR");
            }
            if l.starts_with("    Neighbor caps:") {
                l = l.replace(" llgr-aware", "").replace(" llgr-able", "");
            }
            for timer in ["Hold timer:", "Keepalive timer:"] {
                if let Some(at) = l.find(timer) {
                    let value = l[at + timer.len()..].trim();
                    let total = value.rsplit('/').next().unwrap_or("").to_string();
                    l = format!("{}{timer} N/{total}", &l[..at]);
                }
            }
            l
        })
        .collect()
}

/// RFC 4724 §4.2 as the Receiving Speaker, against a scripted peer (restart time 5 s) that
/// wrend's kernel routes must never lose while the RFC keeps them:
///
/// 1. The peer announces A and B, then its connection drops: both stay, stale.
/// 2. It is back within a second and withholds its End-of-RIB past its old restart time:
///    the restart timer stopped when it came back, so A and B stay, in wrend's RIB and its
///    kernel, the whole time.
/// 3. It announces A again and drops before its End-of-RIB: B, still stale from the first
///    restart, goes at once ("a route previously marked as stale MUST be deleted"); A stays.
/// 4. It comes back without the graceful restart capability: A goes at once, well before
///    the restart time.
pub fn gr_receiving_speaker_restart_timer(id: &str) {
    let lab = Lab::new(id, &[]);
    let mut w = WrenConf::new(Fam::V4, WREN_ASN);
    w.passive = true;
    // The scripted peer sends no KEEPALIVE: a hold time longer than the test.
    w.hold_time = HOLD;
    let wren = lab.start_wren(w);
    let (a, b) = (Fam::V4.peer_net(), "203.0.113.128/26");
    let has = |net: &str| -> Result<(), String> {
        lab.wren_has_peer_route(&wren, net, None)?;
        lab.wren_kernel_has_peer_route(&wren, net)
    };
    let lacks = |net: &str| -> Result<(), String> {
        lab.wren_lacks_route(&wren, net)?;
        let kernel = lab.wren_kernel_routes(net)?;
        match kernel.trim().is_empty() {
            true => Ok(()),
            false => Err(format!("{net} still in wrend's kernel: {kernel:?}")),
        }
    };
    let down = |raw: ScriptedPeer| -> Instant {
        drop(raw);
        let at = Instant::now();
        let r = wait_until("wrend notices the peer is gone", ESTABLISH, || {
            match lab.wren_row(&wren)? {
                row if row.established() => Err(format!("still {:?}", row.raw)),
                _ => Ok(()),
            }
        });
        lab.must(r);
        at
    };

    let mut peer = ScriptedPeer::connect(&lab, Some(0));
    peer.announce(&[a, b]);
    peer.end_of_rib();
    let r = wait_until("A and B in wrend's RIB and kernel", CONVERGE, || {
        has(a).and_then(|()| has(b))
    });
    lab.must(r);

    // 1 and 2, with `show protocols all` as BIRD 1.6 has it: the restart active, its timer
    // counting down while the peer is away, gone once it is back.
    let restarting = || -> Result<(bool, Option<u64>), String> {
        let out = lab.wren_cmd(&wren, &format!("show protocols all {}", wren.name))?;
        let active = out
            .lines()
            .any(|l| l.trim() == "Neighbor graceful restart active");
        let timer = (out.lines())
            .find_map(|l| l.trim().strip_prefix("Restart timer:"))
            .and_then(|v| v.trim().strip_suffix("/-")?.parse().ok());
        Ok((active, timer))
    };
    lab.must(restarting().and_then(|r| match r {
        (false, None) => Ok(()),
        other => Err(format!("no restart yet, but {other:?}")),
    }));
    let lost = down(peer);
    lab.must(has(a).and_then(|()| has(b)));
    let r = wait_until("the restart shown", CONVERGE, || match restarting()? {
        (true, Some(left)) if left <= RESTART_TIME.into() => Ok(()),
        other => Err(format!("the peer away: restart active, timer: {other:?}")),
    });
    lab.must(r);
    let peer = ScriptedPeer::connect(&lab, Some(RESTART_STATE));
    let r = wait_until("the restart timer gone", CONVERGE, || match restarting()? {
        (true, None) => Ok(()),
        other => Err(format!("the peer back before End-of-RIB: {other:?}")),
    });
    lab.must(r);
    lab.log(&format!(
        "the peer is back {:.1} s after it went",
        lost.elapsed().as_secs_f64()
    ));
    let past = Duration::from_secs(u64::from(RESTART_TIME) + 3);
    let r = holds_for(
        "the peer's routes, stale, while it withholds End-of-RIB past its restart time",
        past.saturating_sub(lost.elapsed()),
        || has(a).and_then(|()| has(b)),
    );
    lab.must(r);
    lab.must(lab.wren_has_peer_route(&wren, b, Some(true)).map(drop));

    // 3.
    let mut peer = peer;
    peer.announce(&[a]);
    let r = wait_until("A fresh again", CONVERGE, || {
        lab.wren_has_peer_route(&wren, a, Some(false))
    });
    lab.must(r);
    let lost = down(peer);
    let r = wait_until("B, stale since the first restart, gone", CONVERGE, || {
        lacks(b)
    });
    lab.must(r);
    before_restart_time(&lab, lost, "B", "the session dropped again");
    lab.must(has(a));

    // 4.
    let _peer = ScriptedPeer::connect(&lab, None);
    let r = wait_until(
        "A gone once the peer is back without graceful restart",
        CONVERGE,
        || lacks(a),
    );
    lab.must(r);
    before_restart_time(
        &lab,
        lost,
        "A",
        "the peer came back without graceful restart",
    );
}

/// Fails unless less than the restart time passed since `lost`: what went, went `when`, not
/// when the restart timer ran out.
fn before_restart_time(lab: &Lab, lost: Instant, what: &str, when: &str) {
    let took = lost.elapsed();
    if took >= Duration::from_secs(RESTART_TIME.into()) {
        lab.fail(&format!(
            "{what} went {:.1} s after the session did: at the restart time, not when {when}",
            took.as_secs_f64()
        ));
    }
}

/// The scripted peer's hold time and wrend's: longer than the test, so neither needs a
/// KEEPALIVE.
const HOLD: u16 = 240;
/// The scripted peer's graceful restart time, in seconds.
const RESTART_TIME: u16 = 5;
/// The Restart State bit of the graceful restart capability (RFC 4724 §3).
const RESTART_STATE: u8 = 0x8;

/// A BGP peer at the peer's address made of wren's own codec, dialling wrend.
struct ScriptedPeer(Raw);

impl ScriptedPeer {
    /// Connects and reaches Established; `restart_flags`: with the graceful restart
    /// capability for IPv4 (Forwarding State bit set, restart time [`RESTART_TIME`]) and
    /// these Restart Flags, or without it.
    fn connect(lab: &Lab, restart_flags: Option<u8>) -> ScriptedPeer {
        let from = SocketAddr::new(
            lab.must(Fam::V4.peer().parse().map_err(|e| format!("{e}"))),
            0,
        );
        let to = SocketAddr::new(
            lab.must(Fam::V4.wren().parse().map_err(|e| format!("{e}"))),
            179,
        );
        let caps: Vec<Capability> = restart_flags
            .map(|flags| {
                Capability::GracefulRestart(GracefulRestart {
                    flags,
                    restart_time: RESTART_TIME,
                    families: vec![GrFamily {
                        afi: Afi::IPV4,
                        safi: Safi::UNICAST,
                        flags: GrFamily::FORWARDING,
                    }],
                })
            })
            .into_iter()
            .collect();
        let r = wait_until("wrend takes the peer's connection", ESTABLISH, || {
            Raw::connect_in(&lab.ns_peer, from, to)
        });
        let mut raw = lab.must(r);
        let Ok(bgp_id) = Fam::V4.peer().parse() else {
            lab.fail("the peer's address");
        };
        raw.send_msg(&Message::Open(open(ASN, bgp_id, HOLD, &caps)));
        match raw.recv() {
            Some(Message::Open(_)) => {}
            other => lab.fail(&format!("expected wrend's OPEN, got {other:?}")),
        }
        raw.send_msg(&Message::Keepalive);
        ScriptedPeer(raw)
    }

    /// An UPDATE announcing `nets` as a plain iBGP route via the peer's address.
    fn announce(&mut self, nets: &[&str]) {
        let Ok(next_hop) = Fam::V4.peer().parse() else {
            return;
        };
        let nlri: Vec<Prefix> = (nets.iter())
            .filter_map(|n| n.parse().ok())
            .map(|net| Prefix { net, path_id: None })
            .collect();
        self.0.send_msg(&Message::Update(Update {
            withdrawn: Default::default(),
            attributes: ibgp_attributes(next_hop).into(),
            nlri: nlri.into(),
        }));
    }

    /// End-of-RIB for IPv4 unicast (RFC 4724 §2: an empty UPDATE).
    fn end_of_rib(&mut self) {
        self.0.send_msg(&Message::Update(Update::default()));
    }
}
