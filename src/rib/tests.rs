//! The RIB driven as the daemon drives it: sessions come up, UPDATEs arrive, and what goes
//! out to each peer is decoded and checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::{Config, LimitAction, PeerDefaults};
use crate::route::{Hop, Interfaces, KernelRoute, Target};
use crate::session::caps::local_open;
use crate::wire::attr::{Origin, Segment, SegmentKind};
use crate::wire::{Attr, Message, Negotiated, PathAttribute, Prefix, decode, frame};

/// Node 198.51.100.1 in AS 64512 with block 198.18.1.0/26 in pool 198.18.0.0/16. Peers: .2
/// and .3 iBGP (mesh, or route-reflector clients with `CLIENTS`), .4 eBGP (AS 65000), .5
/// iBGP route-reflector client (with a cluster id).
fn config(extra: &str) -> Config {
    config_with_pool("198.18.0.0/16", extra)
}

fn config_with_pool(pool: &str, extra: &str) -> Config {
    Config::parse(&format!(
        r#"
router_id = "198.51.100.1"
asn = 64512
originate = ["198.18.1.0/26"]
{extra}
[[pool]]
cidr = "{pool}"
[[peer]]
address = "198.51.100.2"
asn = 64512
rr_client = {clients}
[[peer]]
address = "198.51.100.3"
asn = 64512
rr_client = {clients}
[[peer]]
address = "198.51.100.4"
asn = 65000
[[peer]]
address = "198.51.100.5"
asn = 64512
rr_client = {rr}
"#,
        rr = extra.contains("cluster_id"),
        clients = extra.contains(CLIENTS),
    ))
    .unwrap()
}

/// `extra` for a route reflector whose peers .2 and .3 are clients too.
const CLIENTS: &str = "cluster_id = \"244.0.0.1\"\n# .2 and .3 are clients";

/// A RIB with `config`'s peers, each at its index as id (as the daemon's registry numbers
/// them at start).
fn with_peers(config: &Config) -> Rib {
    let mut rib = Rib::new(config);
    for (id, p) in config.peers.iter().enumerate() {
        rib.add_peer(id, p.clone());
    }
    rib
}

fn session(rib: &Rib, id: PeerId) -> Session {
    let p = &rib.peer(id).unwrap().config;
    let me = local_open(
        rib.speaker.asn,
        rib.speaker.router_id,
        &PeerDefaults::default(),
        false,
    );
    let IpAddr::V4(a) = p.address else { panic!() };
    let them = local_open(p.asn, a, &PeerDefaults::default(), false);
    Session::new(me, them, None)
}

/// Peer `id`'s session comes up, and the flush it comes in with ends.
fn up(rib: &mut Rib, id: PeerId) -> Vec<Outgoing> {
    let s = session(rib, id);
    let mut out = rib.up(id, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    out.extend(rib.flush_changes());
    out
}

/// The UPDATEs a peer is sent in `out` (End-of-RIB markers left out).
/// A reflector (`CLIENTS`) with clients 0 and 1 and peer 3 up.
fn clients_up() -> Rib {
    let mut rib = with_peers(&config(CLIENTS));
    for id in [0, 1, 3] {
        up(&mut rib, id);
    }
    rib
}

fn sent_to(rib: &Rib, out: &[Outgoing], id: PeerId) -> Vec<Update> {
    let tx = rib.peer(id).unwrap().session.as_ref().unwrap().tx;
    let mut updates = Vec::new();
    for o in out.iter().filter(|o| o.peers.contains(&id)) {
        let mut rest = &o.bytes[..];
        while !rest.is_empty() {
            let n = frame(rest, &tx).unwrap().unwrap();
            if let Message::Update(u) = decode(&rest[..n], &tx).unwrap()
                && u.end_of_rib().is_none()
            {
                updates.push(u);
            }
            rest = &rest[n..];
        }
    }
    updates
}

/// An UPDATE's NEXT_HOP attribute (IPv4 unicast).
fn next_hop(u: &Update) -> Option<Ipv4Addr> {
    match u.attr(crate::wire::attr::code::NEXT_HOP) {
        Some(Attr::NextHop { next_hop }) => Some(*next_hop),
        _ => None,
    }
}

fn announced(us: &[Update]) -> Vec<IpNet> {
    us.iter()
        .flat_map(|u| u.announced().map(|(_, p)| p.net))
        .collect()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// An UPDATE from a peer announcing `nets` with next hop `nh` and `path`.
pub(crate) fn announce(nets: &[&str], nh: [u8; 4], path: &[u32]) -> Update {
    let segments = if path.is_empty() {
        Vec::new()
    } else {
        vec![Segment {
            kind: SegmentKind::Sequence,
            asns: path.to_vec(),
        }]
    };
    Update {
        withdrawn: Default::default(),
        attributes: vec![
            PathAttribute::new(Attr::Origin {
                origin: Origin::Igp,
            }),
            PathAttribute::new(Attr::AsPath { segments }),
            PathAttribute::new(Attr::NextHop {
                next_hop: Ipv4Addr::from(nh),
            }),
        ]
        .into(),
        // Add-path is negotiated between these test speakers: path identifier 1.
        nlri: nets
            .iter()
            .map(|n| Prefix {
                net: net(n),
                path_id: Some(1),
            })
            .collect(),
    }
}

#[test]
fn own_block_goes_to_everyone_with_next_hop_self() {
    let mut rib = with_peers(&config(""));
    let out = up(&mut rib, 0);
    let us = sent_to(&rib, &out, 0);
    assert_eq!(announced(&us), vec![net("198.18.1.0/26")]);
    let a = AttrSet::from_update(&us[0], Family::IPV4_UNICAST, &Negotiated::default());
    assert_eq!(a.next_hop, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(a.local_pref, Some(100));
    assert!(a.as_path.is_empty());
    let out = up(&mut rib, 2);
    let us = sent_to(&rib, &out, 2);
    let a = AttrSet::from_update(&us[0], Family::IPV4_UNICAST, &Negotiated::default());
    assert_eq!(a.as_path[0].asns, vec![64512], "eBGP: our AS prepended");
    assert_eq!(a.local_pref, None, "no LOCAL_PREF over eBGP");
}

#[test]
fn ibgp_split_horizon_in_a_mesh() {
    let mut rib = with_peers(&config(""));
    for id in 0..3 {
        up(&mut rib, id);
    }
    assert_eq!(
        rib.group_count(),
        2,
        "the two mesh peers share one update group"
    );
    let out = rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert!(
        announced(&sent_to(&rib, &out, 1)).is_empty(),
        "iBGP → iBGP: not re-advertised"
    );
    let to_ebgp = sent_to(&rib, &out, 2);
    assert_eq!(
        announced(&to_ebgp),
        vec![net("198.18.2.0/26")],
        "iBGP → eBGP"
    );
    let a = AttrSet::from_update(&to_ebgp[0], Family::IPV4_UNICAST, &Negotiated::default());
    assert_eq!(a.next_hop, Some("198.51.100.1".parse().unwrap()));
    // eBGP-learned goes to iBGP peers, next hop kept.
    let out = rib.update(
        2,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    let to_mesh = sent_to(&rib, &out, 0);
    let a = AttrSet::from_update(&to_mesh[0], Family::IPV4_UNICAST, &Negotiated::default());
    assert_eq!(a.next_hop, Some("198.51.100.4".parse().unwrap()));
    assert_eq!(a.local_pref, Some(100));
}

#[test]
fn route_reflection() {
    let mut rib = with_peers(&config("cluster_id = \"244.0.0.1\""));
    for id in [0, 3] {
        up(&mut rib, id);
    }
    // From a client: reflected to the non-client with ORIGINATOR_ID and CLUSTER_LIST.
    let out = rib.update(
        3,
        &announce(&["198.18.5.0/26"], [198, 51, 100, 5], &[]),
        false,
    );
    let us = sent_to(&rib, &out, 0);
    assert_eq!(announced(&us), vec![net("198.18.5.0/26")]);
    let a = AttrSet::from_update(&us[0], Family::IPV4_UNICAST, &Negotiated::default());
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(198, 51, 100, 5)));
    assert_eq!(a.cluster_list, vec![Ipv4Addr::new(244, 0, 0, 1)]);
    // From a non-client: reflected to the client only.
    let out = rib.update(
        0,
        &announce(&["198.18.6.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!(
        announced(&sent_to(&rib, &out, 3)),
        vec![net("198.18.6.0/26")]
    );
    // A route carrying our cluster ID is a loop: not used.
    let mut looped = announce(&["198.18.7.0/26"], [198, 51, 100, 2], &[]);
    looped
        .attributes
        .push(PathAttribute::new(Attr::ClusterList {
            cluster_list: vec![Ipv4Addr::new(244, 0, 0, 1)],
        }));
    rib.update(0, &looped, false);
    assert!(
        !rib.table
            .contains_key(&(Family::IPV4_UNICAST, net("198.18.7.0/26")))
    );
}

#[test]
fn calico_export_rules() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 2);
    let out = rib.update(
        2,
        &announce(
            &[
                "198.18.1.5/32",
                "198.18.9.0/26",
                "192.0.2.0/24",
                "198.18.1.0/26",
            ],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    up(&mut rib, 0);
    let out = [out, up(&mut rib, 0)].concat();
    let to_mesh = announced(&sent_to(&rib, &out, 0));
    assert!(
        to_mesh.contains(&net("198.18.9.0/26")),
        "pool route exported: {to_mesh:?}"
    );
    assert!(
        !to_mesh.contains(&net("198.18.1.5/32")),
        "inside own block: aggregated"
    );
    assert!(!to_mesh.contains(&net("192.0.2.0/24")), "outside pools");
    // Our own block stays ours: the peer's path for it loses to the local route.
    let e = rib
        .table
        .get(&(Family::IPV4_UNICAST, net("198.18.1.0/26")))
        .unwrap();
    assert_eq!(e.best().map(|p| p.source()), Some(PathSource::Local));
}

#[test]
fn ebgp_loop_and_allowance() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 2);
    rib.update(
        2,
        &announce(&["198.18.8.0/26"], [198, 51, 100, 4], &[65000, 64512]),
        false,
    );
    assert!(
        !rib.table
            .contains_key(&(Family::IPV4_UNICAST, net("198.18.8.0/26")))
    );
}

#[test]
fn ecmp_set_and_withdrawal() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    up(&mut rib, 1);
    rib.update(
        0,
        &announce(&["198.18.4.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.update(
        1,
        &announce(&["198.18.4.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    let key = (Family::IPV4_UNICAST, net("198.18.4.0/26"));
    assert_eq!(rib.table.get(&key).unwrap().multipath().count(), 2);
    assert!(rib.fib_dirty.contains(&key));
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: net("198.18.4.0/26"),
        path_id: Some(1),
    });
    rib.update(0, &w, false);
    rib.update(1, &w, false);
    assert!(!rib.table.contains_key(&key));
}

/// Peers `id` and `observer` up, `id` (198.51.100.2 + `id`) announcing `route`, then its
/// connection lost: what that sent.
fn lost_with(rib: &mut Rib, id: PeerId, observer: PeerId, route: &str) -> Vec<Outgoing> {
    up(rib, id);
    up(rib, observer);
    rib.update(
        id,
        &announce(&[route], [198, 51, 100, 2 + id as u8], &[]),
        false,
    );
    rib.down(id, true)
}

#[test]
fn graceful_restart_keeps_then_flushes() {
    let mut rib = with_peers(&config(""));
    let key = (Family::IPV4_UNICAST, net("198.18.2.0/26"));
    let out = lost_with(&mut rib, 0, 2, "198.18.2.0/26");
    assert!(rib.table.get(&key).unwrap().paths()[0].stale());
    assert!(
        sent_to(&rib, &out, 2).is_empty(),
        "stale routes are still advertised"
    );
    up(&mut rib, 0);
    let out = rib.update(0, &Update::default(), false); // End-of-RIB, nothing re-sent
    assert!(!rib.table.contains_key(&key));
    assert_eq!(sent_to(&rib, &out, 2)[0].withdrawn.len(), 1);
    // After a NOTIFICATION (not graceful) the routes go at once.
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.down(0, false);
    assert!(!rib.table.contains_key(&key));
}

/// RFC 4724 §4.2: a peer back from a restart that kept no forwarding state for a family (no
/// graceful restart capability, or its Forwarding State bit clear) has its stale routes of
/// that family dropped at once, not at its End-of-RIB; with the bit set they stay.
#[test]
fn stale_routes_go_at_once_when_the_peer_kept_no_forwarding_state() {
    for (graceful_restart, forwarding) in [(true, true), (true, false), (false, false)] {
        let mut rib = with_peers(&config(""));
        lost_with(&mut rib, 0, 2, "198.18.2.0/26");
        let me = local_open(
            64512,
            rib.speaker.router_id,
            &PeerDefaults::default(),
            false,
        );
        let d = PeerDefaults {
            graceful_restart,
            ..PeerDefaults::default()
        };
        let mut them = local_open(64512, Ipv4Addr::new(198, 51, 100, 2), &d, true);
        for param in &mut them.params {
            let crate::wire::open::OptParam::Capabilities { capabilities } = param else {
                continue;
            };
            for c in capabilities {
                if let crate::wire::Capability::GracefulRestart(g) = c
                    && !forwarding
                {
                    g.families.iter_mut().for_each(|f| f.flags = 0);
                }
            }
        }
        let session = Session::new(me, them, None);
        let out = rib.up(0, session, SocketAddr::from(([198, 51, 100, 1], 179)));
        let key = (Family::IPV4_UNICAST, net("198.18.2.0/26"));
        let withdrawn = sent_to(&rib, &out, 2)
            .iter()
            .map(|u| u.withdrawn.len())
            .sum::<usize>();
        let case = format!("graceful restart {graceful_restart}, forwarding {forwarding}");
        if forwarding {
            assert!(rib.table.get(&key).unwrap().paths()[0].stale(), "{case}");
            assert_eq!(withdrawn, 0, "{case}");
        } else {
            assert!(!rib.table.contains_key(&key), "{case}");
            assert_eq!(rib.peer(0).unwrap().stale, 0, "{case}");
            assert_eq!(withdrawn, 1, "{case}");
        }
    }
}

/// RFC 4724 §4.2, what the daemon's stale-route timer runs on: while the peer is away its
/// stale paths stay for the restart time it advertised; once it is back that timer stops and
/// they wait for its End-of-RIB, for the stale-path time at most; with none left, no timer.
#[test]
fn stale_time_is_the_restart_time_then_the_stale_path_time() {
    let mut rib = with_peers(&config(""));
    let stale_time = |rib: &Rib| rib.peer(0).unwrap().stale_time();
    assert_eq!(stale_time(&rib), None);
    lost_with(&mut rib, 0, 2, "198.18.2.0/26");
    assert_eq!(stale_time(&rib), Some(Duration::from_secs(120)));
    up(&mut rib, 0);
    assert_eq!(
        stale_time(&rib),
        Some(STALE_PATH_TIME),
        "back before its restart time: the restart timer stops, the routes wait for End-of-RIB"
    );
    rib.update(0, &Update::default(), false);
    assert_eq!(stale_time(&rib), None, "End-of-RIB: nothing stale left");
    // Back without graceful restart: its stale routes are gone at once, so is the timer.
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.down(0, true);
    assert_eq!(stale_time(&rib), Some(Duration::from_secs(120)));
    let mut s = session(&rib, 0);
    s.peer_graceful_restart = None;
    rib.up(0, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    assert_eq!(stale_time(&rib), None);
    // A NOTIFICATION (not graceful) keeps nothing.
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.down(0, false);
    assert_eq!(stale_time(&rib), None);
}

/// RFC 4724 §4.2: "to deal with possible consecutive restarts, a route (from the peer)
/// previously marked as stale MUST be deleted". The session drops again before End-of-RIB:
/// what the peer announced again since is kept, stale; what it did not is withdrawn.
#[test]
fn consecutive_restarts_drop_routes_still_stale() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    up(&mut rib, 2);
    let (a, b) = ("198.18.2.0/26", "198.18.3.0/26");
    rib.update(0, &announce(&[a, b], [198, 51, 100, 2], &[]), false);
    rib.down(0, true);
    up(&mut rib, 0);
    rib.update(0, &announce(&[a], [198, 51, 100, 2], &[]), false);
    let out = rib.down(0, true);
    let key = |n| (Family::IPV4_UNICAST, net(n));
    assert!(rib.table.get(&key(a)).unwrap().paths()[0].stale());
    assert!(!rib.table.contains_key(&key(b)), "{b} was still stale");
    assert_eq!((rib.peer(0).unwrap().stale, rib.received(0)), (1, 1));
    let withdrawn: Vec<IpNet> = (sent_to(&rib, &out, 2).iter())
        .flat_map(|u| u.withdrawals().map(|(_, p)| p.net))
        .collect();
    assert_eq!(withdrawn, vec![net(b)]);
}

/// A peer back with the Forwarding State bit for a family its new session does not carry
/// (no multiprotocol capability for it): no End-of-RIB will come for it, so its stale routes
/// go at once, as BIRD ends such a family's graceful restart.
#[test]
fn stale_routes_of_a_family_the_new_session_lacks_go_at_once() {
    let mut rib = with_peers(&config(""));
    lost_with(&mut rib, 0, 2, "198.18.2.0/26");
    let mut s = session(&rib, 0);
    s.families.retain(|f| *f != Family::IPV4_UNICAST);
    rib.up(0, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    assert!(
        !rib.table
            .contains_key(&(Family::IPV4_UNICAST, net("198.18.2.0/26")))
    );
    assert_eq!(rib.peer(0).unwrap().stale_time(), None);
}

/// RFC 4724 §4.2: the routes kept are those of "the address families that were previously
/// received in the Graceful Restart Capability"; a family it left out goes with the session.
#[test]
fn routes_of_a_family_without_graceful_restart_go_with_the_session() {
    let mut rib = with_peers(&config(""));
    let mut s = session(&rib, 0);
    if let Some(g) = s.peer_graceful_restart.as_mut() {
        g.families.retain(|f| f.afi == crate::wire::Afi::IPV6);
    }
    rib.up(0, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.down(0, true);
    assert!(
        !rib.table
            .contains_key(&(Family::IPV4_UNICAST, net("198.18.2.0/26")))
    );
    assert_eq!(rib.peer(0).unwrap().stale_time(), None);
}

proptest! {
    /// Whatever order different peers' announcements and withdrawals interleave in, the
    /// resulting best paths are the same; withdrawing everything leaves only our own block.
    #[test]
    fn loc_rib_independent_of_interleaving(
        ops in proptest::collection::vec((0usize..3, 0u8..6, any::<bool>(), 0u32..4), 1..30),
        seed in any::<u64>(),
    ) {
        let run = |order: &[usize]| {
            let mut rib = with_peers(&config(""));
            for id in 0..3 {
                up(&mut rib, id);
            }
            for &i in order {
                let (peer, n, withdraw, len) = ops[i];
                let prefix = format!("198.18.{n}.0/26");
                let nh = [198, 51, 100, 2 + peer as u8];
                let path: Vec<u32> = if peer == 2 { vec![65000; 1 + len as usize] } else { Vec::new() };
                let u = if withdraw {
                    Update { withdrawn: vec![Prefix { net: net(&prefix), path_id: Some(1) }].into(), ..Update::default() }
                } else {
                    announce(&[&prefix], nh, &path)
                };
                rib.update(peer, &u, false);
            }
            let mut best = rib
                .table
                .iter()
                .map(|(k, e)| (k, e.best().map(|p| (p.source(), p.attrs.clone()))))
                .collect::<Vec<_>>();
            best.sort_by_key(|(k, _)| *k);
            best
        };
        // Each peer's own updates keep their order; peers interleave differently.
        let mut order: Vec<usize> = (0..ops.len()).collect();
        let natural = run(&order);
        let mut rng = seed;
        let mut shuffled = Vec::new();
        let mut queues: Vec<Vec<usize>> = (0..3).map(|p| order.iter().copied().filter(|i| ops[*i].0 == p).collect()).collect();
        while queues.iter().any(|q| !q.is_empty()) {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let q = (rng >> 33) as usize % 3;
            if !queues[q].is_empty() {
                shuffled.push(queues[q].remove(0));
            }
        }
        prop_assert_eq!(run(&shuffled), natural);

        // Withdraw everything each peer announced: only our block is left.
        order.sort();
        let mut rib = with_peers(&config(""));
        for id in 0..3 {
            up(&mut rib, id);
        }
        for &(peer, n, _, _) in &ops {
            rib.update(peer, &announce(&[&format!("198.18.{n}.0/26")], [198, 51, 100, 2 + peer as u8], &[]), false);
        }
        for &(peer, n, _, _) in &ops {
            let w = Update { withdrawn: vec![Prefix { net: net(&format!("198.18.{n}.0/26")), path_id: Some(1) }].into(), ..Update::default() };
            rib.update(peer, &w, false);
        }
        let left: Vec<IpNet> = rib.table.keys().map(|(_, n)| n).collect();
        prop_assert_eq!(left, vec![net("198.18.1.0/26")]);
    }
}

/// A removed peer's routes go with it, and a message its task sent before it stopped (read
/// after the removal) finds no peer: it neither joins a group nor adds routes.
#[test]
fn removed_peer_leaves_nothing_behind() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    up(&mut rib, 2);
    let out = rib.update(
        2,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert_eq!(
        announced(&sent_to(&rib, &out, 0)),
        vec![net("198.18.3.0/26")]
    );
    let s = session(&rib, 2);
    let out = rib.remove_peer(2);
    let gone: Vec<IpNet> = sent_to(&rib, &out, 0)
        .iter()
        .flat_map(|u| u.withdrawals().map(|(_, p)| p.net))
        .collect();
    assert_eq!(gone, vec![net("198.18.3.0/26")]);
    assert!(rib.peer(2).is_none() && rib.received(2) == 0);
    let late = rib.up(2, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    assert!(late.is_empty());
    assert_eq!(rib.group_count(), 1, "only peer 0's group");
    assert!(rib.peers().all(|(id, _)| id != 2));
    // A peer configured again comes under a new id.
    let again = config("").peers[2].clone();
    rib.add_peer(4, again);
    let out = up(&mut rib, 4);
    assert_eq!(
        announced(&sent_to(&rib, &out, 4)),
        vec![net("198.18.1.0/26")]
    );
}

#[test]
fn end_of_rib_from_every_peer_ends_initial_sync() {
    let mut rib = with_peers(&config(""));
    for id in 0..4 {
        up(&mut rib, id);
    }
    assert!(!rib.initial_sync_done());
    for id in 0..4 {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let eor = Update::end_of_rib_for(f);
            let tx = rib.peer(id).unwrap().session.as_ref().unwrap().rx;
            let bytes = Message::Update(eor).to_bytes(&tx).unwrap();
            let Message::Update(u) = decode(&bytes, &tx).unwrap() else {
                panic!()
            };
            rib.update(id, &u, false);
        }
    }
    assert!(rib.initial_sync_done());
}

/// What a peer holds from us: (prefix, path identifier) → attributes, built from the
/// UPDATEs it was sent. A withdrawal of something it does not hold is an error.
type Held = std::collections::BTreeMap<(IpNet, Option<u32>), AttrSet>;

fn apply(held: &mut Held, us: &[Update]) -> Result<(), String> {
    for u in us {
        for (_, p) in u.withdrawals() {
            if held.remove(&(p.net, p.path_id)).is_none() {
                return Err(format!(
                    "withdrawal of {} ({:?}), never advertised",
                    p.net, p.path_id
                ));
            }
        }
        for (f, p) in u.announced() {
            let a = AttrSet::from_update(u, f, &Negotiated::default());
            held.insert((p.net, p.path_id), a);
        }
    }
    Ok(())
}

/// What a route refresh gives the peer now.
fn refreshed(rib: &mut Rib, id: PeerId) -> Held {
    let request = RouteRefresh {
        afi: crate::wire::Afi::IPV4,
        subtype: RouteRefresh::REQUEST,
        safi: crate::wire::Safi::UNICAST,
    };
    let out = rib.refresh(id, request);
    let mut held = Held::new();
    apply(&mut held, &sent_to(rib, &out, id)).unwrap();
    held
}

#[test]
fn withdrawals_only_for_what_was_advertised() {
    let mut rib = with_peers(&config(""));
    for id in 0..3 {
        up(&mut rib, id);
    }
    // iBGP-learned: the eBGP peer gets it, the mesh does not (split horizon).
    let out = rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!(announced(&sent_to(&rib, &out, 2)).len(), 1);
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: net("198.18.2.0/26"),
        path_id: Some(1),
    });
    let out = rib.update(0, &w, false);
    assert!(
        sent_to(&rib, &out, 1).is_empty(),
        "never advertised to the mesh"
    );
    assert_eq!(sent_to(&rib, &out, 2)[0].withdrawn.len(), 1);
    // Outside every pool: kept, exported to no one, so its withdrawal goes nowhere.
    let out = rib.update(
        2,
        &announce(&["203.0.113.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert!(out.is_empty());
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: net("203.0.113.0/26"),
        path_id: Some(1),
    });
    assert!(rib.update(2, &w, false).is_empty());
    // Withdrawing what is not there changes nothing.
    assert!(rib.update(2, &w, false).is_empty());
    // The best path moves from eBGP to iBGP: the mesh loses it, the eBGP peer keeps it.
    rib.update(
        2,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    let mut lp = announce(&["198.18.3.0/26"], [198, 51, 100, 2], &[]);
    lp.attributes
        .push(PathAttribute::new(Attr::LocalPref { local_pref: 200 }));
    let out = rib.update(0, &lp, false);
    let to_mesh = sent_to(&rib, &out, 1);
    assert_eq!(to_mesh.len(), 1);
    assert_eq!(to_mesh[0].withdrawn.len(), 1);
    assert!(announced(&to_mesh).is_empty());
    assert_eq!(
        announced(&sent_to(&rib, &out, 2)),
        vec![net("198.18.3.0/26")]
    );
    assert_eq!(rib.received(0), 1);
    assert_eq!(rib.received(2), 1);
    assert_eq!(rib.advertised(2), 2, "own block and 198.18.3.0/26");
}

/// A route never goes back to the peer it came from (as in BIRD and FRR): not to a reflector
/// client, not to an eBGP peer; when the best path moves from one client to another, the
/// first gets the second's path and the second a withdrawal of the first's, and back.
#[test]
fn routes_never_go_back_to_their_source() {
    let mut rib = with_peers(&config(CLIENTS));
    for id in 0..4 {
        up(&mut rib, id);
    }
    let x = net("198.18.2.0/26");
    let out = rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert!(
        sent_to(&rib, &out, 0).is_empty(),
        "not reflected to its client"
    );
    for id in 1..4 {
        assert_eq!(announced(&sent_to(&rib, &out, id)), vec![x], "to peer {id}");
    }
    let out = rib.update(
        2,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert!(
        sent_to(&rib, &out, 2).is_empty(),
        "not back to the eBGP peer"
    );
    assert_eq!(
        announced(&sent_to(&rib, &out, 0)),
        vec![net("198.18.3.0/26")]
    );
    assert_eq!(rib.advertised(2), 2, "own block and the client's route");
    assert_eq!((rib.preferred(0), rib.preferred(2)), (1, 1));
    assert_eq!(rib.advertised(0), 2, "own block and the eBGP route");
    assert_eq!(rib.advertised(1), 3);
    let next_hop =
        |u: &Update| AttrSet::from_update(u, Family::IPV4_UNICAST, &Negotiated::default()).next_hop;
    // The best path moves from client .2 to client .3.
    let mut lp = announce(&["198.18.2.0/26"], [198, 51, 100, 3], &[]);
    lp.attributes
        .push(PathAttribute::new(Attr::LocalPref { local_pref: 200 }));
    let out = rib.update(1, &lp, false);
    let to_a = sent_to(&rib, &out, 0);
    assert_eq!(announced(&to_a), vec![x]);
    assert_eq!(next_hop(&to_a[0]), Some(IpAddr::from([198, 51, 100, 3])));
    let to_b = sent_to(&rib, &out, 1);
    assert!(announced(&to_b).is_empty(), "{to_b:?}");
    let withdrawn: Vec<IpNet> = to_b
        .iter()
        .flat_map(|u| u.withdrawals().map(|(_, p)| p.net))
        .collect();
    assert_eq!(withdrawn, vec![x], "the client loses the other's path");
    assert_eq!(announced(&sent_to(&rib, &out, 3)), vec![x]);
    assert_eq!((rib.advertised(0), rib.advertised(1)), (3, 2));
    assert_eq!(
        (rib.preferred(0), rib.preferred(1)),
        (0, 1),
        "BIRD's preferred"
    );
    // .3 withdraws: .2's path is best again; .2 loses .3's, .3 gets .2's.
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: x,
        path_id: Some(1),
    });
    let out = rib.update(1, &w, false);
    let to_a = sent_to(&rib, &out, 0);
    assert!(announced(&to_a).is_empty());
    assert_eq!(to_a.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 1);
    let to_b = sent_to(&rib, &out, 1);
    assert_eq!(announced(&to_b), vec![x]);
    assert_eq!(next_hop(&to_b[0]), Some(IpAddr::from([198, 51, 100, 2])));
    assert_eq!((rib.advertised(0), rib.advertised(1)), (2, 3));
    assert_eq!((rib.preferred(0), rib.preferred(1)), (1, 0));
    // A client that joins again gets everything but its own route, and so does a refresh.
    rib.down(0, false);
    rib.update(
        1,
        &announce(&["198.18.4.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    let out = up(&mut rib, 0);
    let mut held = Held::new();
    apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!(refreshed(&mut rib, 0), held);
    assert!(!held.contains_key(&(x, None)));
    assert_eq!(rib.advertised(0), held.len());
}

/// Sessions that come up in one batch of messages join at its flush, after its changes went
/// to the members before them: each route reaches each peer once, none goes back to its
/// source, and the newcomers share one encoding of the table.
#[test]
fn sessions_up_in_one_batch_share_one_table_and_cost_no_flush_each() {
    let mut rib = with_peers(&config(CLIENTS));
    up(&mut rib, 0);
    let local = SocketAddr::from(([198, 51, 100, 1], 179));
    let (a, b) = (net("198.18.2.0/26"), net("198.18.3.0/26"));
    rib.receive(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    for id in [1, 3] {
        let s = session(&rib, id);
        assert!(rib.up(id, s, local).is_empty(), "no flush at a session up");
    }
    // Peer 1's own route, received after it came up, in the same batch.
    rib.receive(
        1,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    let s = session(&rib, 2);
    rib.up(2, s, local);
    // A session going down flushes (its routes' withdrawals go at once).
    let mut out = rib.down(2, false);
    out.extend(rib.flush_changes());
    assert_eq!(
        announced(&sent_to(&rib, &out, 0)),
        vec![b],
        "the member: the change"
    );
    let mut to_1 = announced(&sent_to(&rib, &out, 1));
    to_1.sort();
    assert_eq!(to_1, vec![net("198.18.1.0/26"), a], "all but its own");
    let mut to_3 = announced(&sent_to(&rib, &out, 3));
    to_3.sort();
    assert_eq!(to_3, vec![net("198.18.1.0/26"), a, b]);
    assert!(
        out.iter().all(|o| !o.peers.contains(&2)),
        "up and down: nothing"
    );
    assert_eq!((rib.advertised(1), rib.advertised(3)), (2, 3));
    // Each newcomer's last messages are its End-of-RIBs.
    for id in [1, 3] {
        let last = out.iter().rev().find(|o| o.peers.contains(&id)).unwrap();
        let tx = rib.peer(id).unwrap().session.as_ref().unwrap().tx;
        let n = frame(&last.bytes[..], &tx).unwrap().unwrap();
        let Ok(Message::Update(u)) = decode(&last.bytes[..n], &tx) else {
            panic!("{last:?}")
        };
        assert!(u.end_of_rib().is_some());
    }
    // Peer 1's table is cut from the bytes encoded for peer 3, not encoded again.
    let shared = out
        .iter()
        .find(|o| o.peers == vec![3])
        .unwrap()
        .bytes
        .as_ptr_range();
    let cut = out.iter().filter(|o| o.peers == vec![1]);
    assert!(cut.clone().count() > 0);
    for o in cut {
        assert!(
            shared.contains(&o.bytes.as_ptr()),
            "peer 1 got bytes of its own"
        );
    }
    assert_eq!(rib.group_count(), 1);
}

#[test]
fn stale_paths_counted_and_end_of_rib_without_them_is_free() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    rib.update(
        0,
        &announce(&["198.18.2.0/26", "198.18.3.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.down(0, true);
    assert_eq!(rib.peer(0).unwrap().stale, 2);
    up(&mut rib, 0);
    rib.update(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!((rib.peer(0).unwrap().stale, rib.received(0)), (1, 2));
    rib.update(0, &Update::default(), false);
    assert_eq!((rib.peer(0).unwrap().stale, rib.received(0)), (0, 1));
    let key = (Family::IPV4_UNICAST, net("198.18.3.0/26"));
    assert!(!rib.table.contains_key(&key));
}

#[test]
fn stale_paths_go_when_the_peer_returns_with_another_identifier() {
    let mut rib = with_peers(&config("cluster_id = \"244.0.0.1\""));
    lost_with(&mut rib, 3, 0, "198.18.5.0/26");
    let mut s = session(&rib, 3);
    s.remote.bgp_id = Ipv4Addr::new(198, 51, 100, 55);
    let out = rib.up(3, s, SocketAddr::from(([198, 51, 100, 1], 179)));
    let key = (Family::IPV4_UNICAST, net("198.18.5.0/26"));
    assert!(!rib.table.contains_key(&key));
    assert_eq!(sent_to(&rib, &out, 0)[0].withdrawn.len(), 1);
    // Announced again: reflected with the new ORIGINATOR_ID.
    let out = rib.update(
        3,
        &announce(&["198.18.5.0/26"], [198, 51, 100, 5], &[]),
        false,
    );
    let a = AttrSet::from_update(
        &sent_to(&rib, &out, 0)[0],
        Family::IPV4_UNICAST,
        &Negotiated::default(),
    );
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(198, 51, 100, 55)));
}

#[test]
fn new_member_and_refresh_get_what_the_group_was_sent() {
    let mut rib = with_peers(&config(""));
    let mut held = Held::new();
    let out = up(&mut rib, 0);
    apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    up(&mut rib, 2);
    for (peer, nets, nh, path) in [
        (2, vec!["198.18.2.0/26", "198.18.3.0/26"], 4, vec![65000]),
        (0, vec!["198.18.4.0/26"], 2, vec![]),
        (
            2,
            vec!["198.18.4.0/26", "203.0.113.0/26"],
            4,
            vec![65000, 65001],
        ),
    ] {
        let out = rib.update(peer, &announce(&nets, [198, 51, 100, nh], &path), false);
        apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    }
    // Peer .3 joins the mesh group: its dump comes from the table.
    let out = up(&mut rib, 1);
    let mut joined = Held::new();
    apply(&mut joined, &sent_to(&rib, &out, 1)).unwrap();
    // The own block and the eBGP routes inside the pool; not 198.18.4.0/26 (the iBGP path
    // with the shorter AS_PATH wins) nor 203.0.113.0/26 (outside every pool).
    assert_eq!(held.len(), 3, "{held:?}");
    assert_eq!(joined, held);
    assert_eq!(refreshed(&mut rib, 1), held);
    assert_eq!(rib.advertised(1), held.len());
}

proptest! {
    /// Whatever peers announce and withdraw, and then a policy change: each peer holds exactly
    /// what a route refresh would give it, no withdrawal is for something it was not sent,
    /// and the group's count matches. With add-path, up to two paths per prefix.
    #[test]
    fn what_peers_hold_is_what_the_table_exports(
        ops in proptest::collection::vec((0usize..3, 0u8..8, any::<bool>(), 0u32..3), 1..40),
        add_path in any::<bool>(),
        reflect in any::<bool>(),
    ) {
        let extra = format!(
            "{}\n{}",
            if reflect { CLIENTS } else { "" },
            if add_path { "[defaults]\nadd_paths_send = 2" } else { "" },
        );
        let extra = extra.as_str();
        let mut rib = with_peers(&config(extra));
        let mut held: Vec<Held> = vec![Held::new(); 3];
        for (id, h) in held.iter_mut().enumerate() {
            let out = up(&mut rib, id);
            apply(h, &sent_to(&rib, &out, id)).unwrap();
        }
        let prefix = |n: u8| if n < 6 {
            format!("198.18.{n}.0/26")
        } else {
            format!("203.0.113.{}/26", (n - 6) * 64)
        };
        for &(peer, n, withdraw, len) in &ops {
            let p = prefix(n);
            let u = if withdraw {
                Update { withdrawn: vec![Prefix { net: net(&p), path_id: Some(1) }].into(), ..Update::default() }
            } else {
                let path: Vec<u32> = if peer == 2 { vec![65000; 1 + len as usize] } else { Vec::new() };
                let mut u = announce(&[&p], [198, 51, 100, 2 + peer as u8], &path);
                u.attributes.push(PathAttribute::new(Attr::MultiExitDisc { med: len }));
                u
            };
            let out = rib.update(peer, &u, false);
            for (id, h) in held.iter_mut().enumerate() {
                let r = apply(h, &sent_to(&rib, &out, id));
                prop_assert!(r.is_ok(), "{:?}", r);
            }
        }
        // The same policy again: nothing to send.
        prop_assert!(rib.reconfigure(&config(extra)).is_empty());
        // The pool moves: what the old one exported and the new one does not is withdrawn.
        let out = rib.reconfigure(&config_with_pool("203.0.113.0/24", extra));
        for (id, h) in held.iter_mut().enumerate() {
            let r = apply(h, &sent_to(&rib, &out, id));
            prop_assert!(r.is_ok(), "{:?}", r);
        }
        for (id, h) in held.iter().enumerate() {
            // Never a peer's own path: its next hop (iBGP) or its AS (eBGP).
            let own_nh = IpAddr::from([198, 51, 100, 2 + id as u8]);
            let own = h.values().find(|a| {
                a.next_hop == Some(own_nh) || (id == 2 && a.as_path.iter().any(|s| s.asns.contains(&65000)))
            });
            prop_assert!(own.is_none(), "peer {} holds its own path {:?}", id, own);
            prop_assert_eq!(&refreshed(&mut rib, id), h);
            let best = rib.table.values().filter(|e| e.best().is_some_and(|p| p.source() == PathSource::peer(id)));
            prop_assert_eq!(rib.preferred(id), best.count());
            prop_assert_eq!(rib.advertised(id), h.len());
        }
    }
}

/// BIRD's `learn`: a kernel route (preference 10) is exported by Calico's rules, loses to a
/// peer's route for the same prefix, and goes when the kernel no longer has it. Its metric
/// is BIRD's `krt_metric`, not a MED: it is announced without one.
#[test]
fn learned_kernel_routes() {
    use crate::route::{Alien, AlienKind, Learning};
    let felix = |n: &str| Alien {
        net: net(n),
        kind: AlienKind::Unicast,
        gateway: None,
        device: Some("cali1".into()),
        metric: Some(7),
    };
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    up(&mut rib, 1);
    up(&mut rib, 2);
    // A pod IP borrowed from another node's block is announced; one inside our block is not.
    let out = rib.learn(Learning::Learned(felix("198.18.7.5/32")));
    assert_eq!(
        announced(&sent_to(&rib, &out, 0)),
        vec![net("198.18.7.5/32")]
    );
    for id in [0, 2] {
        let sent = sent_to(&rib, &out, id);
        assert!(!sent.is_empty(), "peer {id}");
        let med = |u: &Update| u.attr(crate::wire::attr::code::MULTI_EXIT_DISC).is_some();
        assert!(
            !sent.iter().any(med),
            "peer {id} got the kernel metric as a MED"
        );
    }
    let out = rib.learn(Learning::Learned(felix("198.18.1.9/32")));
    assert!(sent_to(&rib, &out, 0).is_empty());
    // A peer's route for the same prefix wins: it is iBGP-learned, so peer 0 loses ours.
    let key = (Family::IPV4_UNICAST, net("198.18.7.5/32"));
    let out = rib.update(
        1,
        &announce(&["198.18.7.5/32"], [198, 51, 100, 3], &[]),
        false,
    );
    assert_eq!(
        rib.table
            .get(&key)
            .and_then(|e| e.best())
            .map(|p| p.source()),
        Some(PathSource::peer(1))
    );
    let withdrawn: Vec<IpNet> = sent_to(&rib, &out, 0)
        .iter()
        .flat_map(|u| u.withdrawals().map(|(_, p)| p.net))
        .collect();
    assert_eq!(withdrawn, vec![net("198.18.7.5/32")]);
    // The kernel's full list no longer has them: the learned paths go.
    rib.learn(Learning::All(Vec::new()));
    assert!(
        !rib.table
            .contains_key(&(Family::IPV4_UNICAST, net("198.18.1.9/32")))
    );
    assert!(
        rib.table
            .get(&key)
            .is_some_and(|e| e.paths().iter().all(|p| p.source() != PathSource::Kernel))
    );
}

/// A RIB whose peer 0 has an import limit of 2 with `action`; its session is up.
fn limited(action: LimitAction) -> Rib {
    let mut c = config("");
    c.peers[0].settings.import_limit = Some(2);
    c.peers[0].settings.import_limit_action = action;
    let mut rib = with_peers(&c);
    up(&mut rib, 0);
    rib
}

/// Three routes from a peer with import limit 2: what each action imports and asks for.
#[test]
fn import_limit_actions() {
    let three = announce(
        &["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"],
        [198, 51, 100, 2],
        &[],
    );
    for (action, received, hit, torn) in [
        (LimitAction::Warn, 3, true, false),
        (LimitAction::Block, 2, true, false),
        (LimitAction::Restart, 2, true, true),
        (LimitAction::Disable, 2, true, true),
    ] {
        let mut rib = limited(action);
        rib.update(0, &three, false);
        assert_eq!(rib.received(0), received, "{action:?}");
        let limit = rib.import_limit(0).map(|(l, hit)| (l.max, hit));
        assert_eq!(limit, Some((2, hit)), "{action:?}");
        let exceeded = rib.take_exceeded();
        assert_eq!(exceeded.len(), usize::from(torn), "{action:?}");
        if let Some(e) = exceeded.first() {
            assert_eq!((e.peer, e.family), (0, Family::IPV4_UNICAST));
            assert_eq!(e.notification().data, [0, 1, 1, 0, 0, 0, 2]);
        }
        assert!(rib.take_exceeded().is_empty());
        // The other peers have no limit.
        up(&mut rib, 1);
        rib.update(1, &three, false);
        assert_eq!(rib.received(1), 3, "{action:?}");
    }
}

/// `block`: a route beyond the limit is not imported; once the count falls, new routes are
/// imported again; a route the peer replaces does not count twice.
#[test]
fn import_limit_block_lifts_when_the_count_falls() {
    let mut rib = limited(LimitAction::Block);
    rib.update(
        0,
        &announce(&["10.1.0.0/24", "10.2.0.0/24"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.update(
        0,
        &announce(&["10.1.0.0/24"], [198, 51, 100, 9], &[]),
        false,
    );
    rib.update(
        0,
        &announce(&["10.3.0.0/24"], [198, 51, 100, 2], &[]),
        false,
    );
    let held = |rib: &Rib| {
        (rib.table.get(&(Family::IPV4_UNICAST, net("10.3.0.0/24")))).is_some_and(|e| !e.is_empty())
    };
    assert_eq!(rib.received(0), 2);
    assert!(!held(&rib));
    let w = Update {
        withdrawn: vec![Prefix {
            net: net("10.1.0.0/24"),
            path_id: Some(1),
        }]
        .into(),
        ..Update::default()
    };
    rib.update(0, &w, false);
    rib.update(
        0,
        &announce(&["10.3.0.0/24"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!(rib.received(0), 2);
    assert!(held(&rib));
    assert_eq!(rib.import_limit(0).map(|l| l.1), Some(false));
}

/// A new limit applies to the running session: no reset, the next route is judged by it.
#[test]
fn import_limit_changes_without_a_reset() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    rib.update(
        0,
        &announce(&["10.1.0.0/24", "10.2.0.0/24"], [198, 51, 100, 2], &[]),
        false,
    );
    let mut p = rib.peer(0).unwrap().config.clone();
    p.settings.import_limit = Some(2);
    p.settings.import_limit_action = LimitAction::Block;
    rib.set_peer_config(0, p);
    assert!(rib.peer(0).unwrap().session.is_some());
    rib.update(
        0,
        &announce(&["10.3.0.0/24"], [198, 51, 100, 2], &[]),
        false,
    );
    assert_eq!(rib.received(0), 2);
}

/// RFC 4271 §9.1.2.1: a path whose next hop does not resolve loses to one that does, however
/// much better it is otherwise; when its next hop becomes reachable (a learned kernel route
/// holds it: `gateway recursive`; or a connected subnet: `gateway direct`), it takes over and
/// the kernel is handed the new route.
#[test]
fn unreachable_next_hop_loses_until_it_resolves() {
    use crate::route::{Alien, AlienKind, Learning};
    let eth0 = on_eth0;
    let mut rib = with_peers(&config(""));
    rib.set_interfaces(eth0(&[]));
    up(&mut rib, 0);
    up(&mut rib, 1);
    // Peer .2's path is shorter, but its next hop is on no subnet of ours.
    let pod = "198.18.7.0/26";
    rib.update(0, &announce(&[pod], [203, 0, 113, 2], &[]), false);
    rib.update(1, &announce(&[pod], [198, 51, 100, 3], &[65001]), false);
    let key = (Family::IPV4_UNICAST, net(pod));
    let best = |rib: &Rib| {
        rib.table
            .get(&key)
            .and_then(|e| e.best())
            .map(|p| p.source())
    };
    let kernel = |rib: &mut Rib| {
        let changes = rib.kernel_changes(1 << 20);
        changes
            .into_iter()
            .find(|(n, _)| *n == net(pod))
            .map(|(_, r)| r)
    };
    let via = |gw: &str| Some(Some(via_route(pod, gw, None)));
    assert_eq!(best(&rib), Some(PathSource::peer(1)));
    assert_eq!(kernel(&mut rib), via("198.51.100.3"));
    // A learned route holds the next hop: it resolves recursively, and peer .2 takes over.
    let route = Alien {
        net: net("203.0.113.0/24"),
        kind: AlienKind::Unicast,
        gateway: Some("198.51.100.254".parse().unwrap()),
        device: Some("eth0".into()),
        metric: None,
    };
    rib.learn(Learning::Learned(route));
    assert_eq!(best(&rib), Some(PathSource::peer(0)));
    assert_eq!(kernel(&mut rib), via("203.0.113.2"));
    // It goes: back to peer .3.
    rib.learn(Learning::Forgotten(net("203.0.113.0/24")));
    assert_eq!(best(&rib), Some(PathSource::peer(1)));
    assert_eq!(kernel(&mut rib), via("198.51.100.3"));
    // An address on 203.0.113.0/24 makes it directly connected.
    rib.set_interfaces(eth0(&["203.0.113.0/24"]));
    assert_eq!(best(&rib), Some(PathSource::peer(0)));
    assert_eq!(kernel(&mut rib), via("203.0.113.2"));
}

/// With the kernel not followed (`[kernel] enabled = false`), every next hop is reachable.
#[test]
fn next_hops_reachable_without_a_kernel() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    up(&mut rib, 1);
    let pod = "198.18.7.0/26";
    rib.update(0, &announce(&[pod], [203, 0, 113, 2], &[]), false);
    rib.update(1, &announce(&[pod], [198, 51, 100, 3], &[]), false);
    let key = (Family::IPV4_UNICAST, net(pod));
    let e = rib.table.get(&key).unwrap();
    assert_eq!(e.best().map(|p| p.source()), Some(PathSource::peer(0)));
    assert!(e.paths().iter().all(Path::reachable));
}

/// Filters for the BGPFilter tests: `in` refuses 198.18.8.0/26 on import; `out` exports
/// 192.0.2.0/24 (outside every pool: Calico's rules would not) and keeps our own block in
/// (Calico's rules would export it); `felix` keeps routes through `cali*` devices in.
const FILTERS: &str = r#"
[[filters]]
name = "in"
import_v4 = [{ action = "reject", cidr = "198.18.8.0/26", match = "equal" }]
[[filters]]
name = "out"
export_v4 = [
  { action = "accept", cidr = "192.0.2.0/24", match = "equal" },
  { action = "reject", cidr = "198.18.1.0/26", match = "equal" },
]
[[filters]]
name = "felix"
export_v4 = [{ action = "reject", interface = "cali*" }]
"#;

/// `config` with FILTERS, and peer `id` given the filters `names`.
fn filtered(peers: &[(PeerId, &[&str])]) -> Config {
    let mut c = config(FILTERS);
    for (id, names) in peers {
        c.peers[*id].settings.filters = names.iter().map(|n| n.to_string()).collect();
    }
    c
}

fn has(rib: &Rib, n: &str) -> bool {
    rib.table.contains_key(&(Family::IPV4_UNICAST, net(n)))
}

#[test]
fn bgp_filter_import_reject_keeps_a_route_out_without_touching_the_session() {
    let mut rib = with_peers(&filtered(&[(2, &["in"])]));
    up(&mut rib, 2);
    up(&mut rib, 0);
    let out = rib.update(
        2,
        &announce(
            &["198.18.8.0/26", "198.18.9.0/26"],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    assert!(!has(&rib, "198.18.8.0/26"), "refused by the import rule");
    assert!(has(&rib, "198.18.9.0/26"), "no rule decides: accepted");
    assert_eq!(announced(&sent_to(&rib, &out, 0)), [net("198.18.9.0/26")]);
    assert!(rib.take_exceeded().is_empty());
    assert!(rib.peer(2).unwrap().session.is_some());
    assert_eq!(rib.received(2), 1);
    // The same prefix from a peer without the filter is accepted.
    up(&mut rib, 1);
    rib.update(
        1,
        &announce(&["198.18.8.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    assert!(has(&rib, "198.18.8.0/26"));
    // A route accepted before and refused now (the peer re-announces it) goes.
    let out = rib.update(
        2,
        &announce(
            &["198.18.9.0/26", "198.18.8.0/26"],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    assert!(sent_to(&rib, &out, 0).is_empty(), "nothing changed");
}

#[test]
fn bgp_filter_export_rules_run_before_calicos() {
    let mut rib = with_peers(&filtered(&[(0, &["out"])]));
    up(&mut rib, 2);
    rib.update(
        2,
        &announce(
            &["192.0.2.0/24", "198.18.9.0/26", "203.0.113.0/24"],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    let out = [up(&mut rib, 0), up(&mut rib, 1)].concat();
    let mut filtered = announced(&sent_to(&rib, &out, 0));
    filtered.sort();
    // accept: exported though outside every pool; reject: our own block is kept in; no
    // rule decides for 198.18.9.0/26 or 203.0.113.0/24: Calico's rules.
    assert_eq!(filtered, [net("192.0.2.0/24"), net("198.18.9.0/26")]);
    let mut plain = announced(&sent_to(&rib, &out, 1));
    plain.sort();
    assert_eq!(plain, [net("198.18.1.0/26"), net("198.18.9.0/26")]);
    let group = |id| rib.peer(id).unwrap().group;
    assert_ne!(group(0), group(1), "other rules, another update group");
}

#[test]
fn bgp_filter_interface_rule_matches_kernel_routes_only() {
    use crate::route::{Alien, AlienKind, Learning};
    let mut rib = with_peers(&filtered(&[(0, &["felix"])]));
    up(&mut rib, 0);
    up(&mut rib, 1);
    up(&mut rib, 2);
    let felix = Alien {
        net: net("198.18.7.5/32"),
        kind: AlienKind::Unicast,
        gateway: None,
        device: Some("cali1".into()),
        metric: None,
    };
    let out = rib.learn(Learning::Learned(felix));
    assert!(sent_to(&rib, &out, 0).is_empty(), "through cali1: rejected");
    assert_eq!(announced(&sent_to(&rib, &out, 1)), [net("198.18.7.5/32")]);
    // A BGP route has no interface: the rule does not match it.
    let out = rib.update(
        2,
        &announce(&["198.18.9.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert_eq!(announced(&sent_to(&rib, &out, 0)), [net("198.18.9.0/26")]);
}

#[test]
fn bgp_filter_change_refilters_without_a_reset() {
    let mut c = filtered(&[]);
    let mut rib = with_peers(&c);
    up(&mut rib, 2);
    rib.update(
        2,
        &announce(
            &["192.0.2.0/24", "198.18.8.0/26", "198.18.9.0/26"],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    let mut held = Held::new();
    let out = up(&mut rib, 0);
    apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    let keys = |h: &Held| h.keys().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(
        keys(&held),
        [
            net("198.18.1.0/26"),
            net("198.18.8.0/26"),
            net("198.18.9.0/26")
        ]
    );
    // Export: peer 0 gets `out`; it is sent the difference at once.
    c.peers[0].settings.filters = vec!["out".into()];
    rib.set_peer_config(0, c.peers[0].clone());
    let (out, refresh) = rib.refilter(0);
    assert!(!refresh, "import rules unchanged");
    apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    assert_eq!(
        keys(&held),
        [
            net("192.0.2.0/24"),
            net("198.18.8.0/26"),
            net("198.18.9.0/26")
        ]
    );
    assert_eq!(held, refreshed(&mut rib, 0), "what a refresh would give");
    assert!(rib.peer(0).unwrap().session.is_some());
    assert_eq!(rib.refilter(0).0.len(), 0, "nothing changed: nothing sent");
    // Import: peer 2 gets `in`; the route it refuses goes at once, and the peer is to be
    // asked for its routes again (for those refused before, which are not kept).
    c.peers[2].settings.filters = vec!["in".into()];
    rib.set_peer_config(2, c.peers[2].clone());
    let (out, refresh) = rib.refilter(2);
    assert!(refresh);
    assert!(!has(&rib, "198.18.8.0/26"));
    apply(&mut held, &sent_to(&rib, &out, 0)).unwrap();
    assert_eq!(keys(&held), [net("192.0.2.0/24"), net("198.18.9.0/26")]);
    assert_eq!(rib.received(2), 2);
    // A filter's definition changes under the same name.
    let mut filters = c.filters.clone();
    filters[0].import_v4.clear();
    rib.set_filters(&filters);
    assert!(rib.refilter(2).1);
    rib.update(
        2,
        &announce(&["198.18.8.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert!(has(&rib, "198.18.8.0/26"), "accepted again");
}

#[test]
fn local_as_decides_ibgp_and_is_prepended() {
    let mut c = config("");
    // .4 (AS 65000) with local AS 65001: eBGP, and 65001 is what it sees first.
    c.peers[2].settings.local_asn = Some(65001);
    // .2 (AS 64512 as the node) with local AS 65002: eBGP for it.
    c.peers[0].settings.local_asn = Some(65002);
    let mut rib = with_peers(&c);
    assert!(rib.peer(0).unwrap().ebgp(rib.speaker.asn));
    let out = up(&mut rib, 2);
    let us = sent_to(&rib, &out, 2);
    let a = AttrSet::from_update(&us[0], Family::IPV4_UNICAST, &Negotiated::default());
    let path: Vec<u32> = a.as_path.iter().flat_map(|s| s.asns.clone()).collect();
    assert_eq!(path, [65001]);
    assert_eq!(a.local_pref, None);
    // A route with the local AS in its path is a loop for that session, not the node's AS.
    rib.update(
        2,
        &announce(&["198.18.8.0/26"], [198, 51, 100, 4], &[65000, 65001]),
        false,
    );
    assert!(!has(&rib, "198.18.8.0/26"));
    rib.update(
        2,
        &announce(&["198.18.9.0/26"], [198, 51, 100, 4], &[65000, 64512]),
        false,
    );
    assert!(has(&rib, "198.18.9.0/26"));
}

#[test]
fn refilter_counts_the_stale_paths_it_drops() {
    let mut c = filtered(&[]);
    let mut rib = with_peers(&c);
    up(&mut rib, 2);
    rib.update(
        2,
        &announce(
            &["198.18.8.0/26", "198.18.9.0/26"],
            [198, 51, 100, 4],
            &[65000],
        ),
        false,
    );
    rib.down(2, true);
    assert_eq!((rib.peer(2).unwrap().stale, rib.received(2)), (2, 2));
    c.peers[2].settings.filters = vec!["in".into()];
    rib.set_peer_config(2, c.peers[2].clone());
    assert!(rib.refilter(2).1);
    assert!(!has(&rib, "198.18.8.0/26") && has(&rib, "198.18.9.0/26"));
    assert_eq!((rib.peer(2).unwrap().stale, rib.received(2)), (1, 1));
    rib.flush_stale(2, None);
    assert_eq!((rib.peer(2).unwrap().stale, rib.received(2)), (0, 0));
    assert!(!has(&rib, "198.18.9.0/26"));
}

#[test]
fn updates_received_together_go_out_once_and_never_back() {
    let mut rib = clients_up();
    // .5 comes back after a graceful restart with a stale route its End-of-RIB drops.
    rib.update(
        3,
        &announce(&["198.18.9.0/26"], [198, 51, 100, 5], &[]),
        false,
    );
    rib.down(3, true);
    up(&mut rib, 3);
    let (a, b, stale) = (
        net("198.18.2.0/26"),
        net("198.18.3.0/26"),
        net("198.18.9.0/26"),
    );
    rib.receive(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    rib.receive(
        1,
        &announce(&["198.18.3.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    rib.receive(3, &Update::default(), false);
    assert_eq!(
        rib.peer(3).unwrap().stale,
        0,
        "End-of-RIB drops the stale path"
    );
    // One flush: each peer is sent each prefix once (as slices of one encoding).
    let out = rib.flush_changes();
    assert_eq!(announced(&sent_to(&rib, &out, 0)), vec![b]);
    assert_eq!(announced(&sent_to(&rib, &out, 1)), vec![a]);
    let to_c = sent_to(&rib, &out, 3);
    assert_eq!(announced(&to_c), vec![a, b]);
    let withdrawn: Vec<IpNet> = (sent_to(&rib, &out, 0).iter())
        .flat_map(|u| u.withdrawals().map(|(_, p)| p.net))
        .collect();
    assert_eq!(withdrawn, vec![stale], "the stale route is withdrawn");
    assert!(rib.flush_changes().is_empty(), "nothing twice");
}

/// A prefix changed more than once in a batch of received UPDATEs is sent to each peer only
/// as the batch leaves it (RFC 4271 §9.2): here a better path from another peer after the
/// first, and an announcement withdrawn again.
#[test]
fn a_prefix_changed_again_in_a_batch_goes_out_as_it_ends() {
    let mut rib = clients_up();
    let (p, q) = (net("198.18.2.0/26"), net("198.18.4.0/26"));
    rib.receive(
        0,
        &announce(
            &["198.18.2.0/26", "198.18.4.0/26"],
            [198, 51, 100, 2],
            &[65010, 65011],
        ),
        false,
    );
    rib.receive(
        1,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: q,
        path_id: Some(1),
    });
    rib.receive(0, &w, false);
    let out = rib.flush_changes();
    let to_c = sent_to(&rib, &out, 3);
    assert_eq!(announced(&to_c), vec![p], "{p} once, {q} not at all");
    assert!(to_c.iter().all(|u| u.withdrawals().next().is_none()));
    assert_eq!(
        next_hop(&to_c[0]),
        Some(Ipv4Addr::new(198, 51, 100, 3)),
        "the better path"
    );
    assert_eq!(announced(&sent_to(&rib, &out, 0)), vec![p]);
    assert_eq!((rib.preferred(0), rib.preferred(1)), (0, 1));
    assert!(rib.flush_changes().is_empty(), "nothing twice");
}

/// A session that comes up while the RIB holds UPDATEs it has taken but not sent yet (the
/// daemon batches them) gets every route: here a route withdrawn and announced again with
/// the same attributes around its start, a batch that changes nothing for the others. Its
/// initial table was computed mid-batch without the route, and the batch's flush, which
/// compares with what the table had before the batch, found nothing to send.
#[test]
fn a_session_up_mid_batch_gets_every_route() {
    let mut rib = with_peers(&config(CLIENTS));
    up(&mut rib, 0);
    let p = net("198.18.2.0/26");
    let route = announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]);
    rib.update(0, &route, false);
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: p,
        path_id: Some(1),
    });
    rib.receive(0, &w, false);
    let mut out = up(&mut rib, 1);
    rib.receive(0, &route, false);
    out.extend(rib.flush_changes());
    let mut held = Held::new();
    apply(&mut held, &sent_to(&rib, &out, 1)).unwrap();
    assert!(
        held.keys().any(|(n, _)| *n == p),
        "{p} missing: {:?}",
        held.keys()
    );
}

/// The LOCAL_PREF of each announcement in `us`, by prefix.
fn local_prefs(us: &[Update]) -> Vec<(IpNet, Option<u32>)> {
    let lp = |u: &Update| match u.attr(crate::wire::attr::code::LOCAL_PREF) {
        Some(Attr::LocalPref { local_pref }) => Some(*local_pref),
        _ => None,
    };
    us.iter()
        .flat_map(|u| u.announced().map(move |(_, p)| (p.net, lp(u))))
        .collect()
}

/// The kernel route wanted for `n`, from what waits for the FIB.
fn kernel_route_of(rib: &mut Rib, n: &str) -> Option<KernelRoute> {
    rib.kernel_changes(1 << 20)
        .into_iter()
        .find(|(k, _)| *k == net(n))
        .and_then(|(_, r)| r)
}

fn on_eth0(more: &[&str]) -> Interfaces {
    Interfaces {
        subnets: std::iter::once("198.51.100.0/24")
            .chain(more.iter().copied())
            .map(|s| (net(s), "eth0".to_string()))
            .collect(),
        tunl0: None,
    }
}

/// `n via gw` with `metric`, as wren writes it.
fn via_route(n: &str, gw: &str, metric: Option<u32>) -> KernelRoute {
    KernelRoute {
        net: net(n),
        metric,
        target: hop(gw),
    }
}

fn hop(gw: &str) -> Target {
    Target::Via(vec![Hop {
        gateway: gw.parse().unwrap(),
        oif: None,
        onlink: false,
    }])
}

/// Calico 3.32 (`normal_route_priority = 1024`): BGP routes are written with metric
/// 2^31 − 1 − LOCAL_PREF, the node's routes go to iBGP peers with LOCAL_PREF 2^31 − 1 − their
/// metric (1024 when none), and an elevated workload route inside an own block is announced.
#[test]
fn normal_route_priority_couples_kernel_metric_and_local_pref() {
    use crate::route::{Alien, AlienKind, Learning};
    for coupled in [false, true] {
        let extra = match coupled {
            true => "normal_route_priority = 1024\n",
            false => "",
        };
        let mut rib = with_peers(&config(extra));
        rib.set_interfaces(on_eth0(&[]));
        for id in 0..3 {
            up(&mut rib, id);
        }
        // A 3.32 node's block: LOCAL_PREF 2^31 − 1 − 1024, written with metric 1024.
        let mut from_node = announce(&["198.18.7.0/26"], [198, 51, 100, 2], &[]);
        from_node
            .attributes
            .push(PathAttribute::new(Attr::LocalPref {
                local_pref: 2_147_482_623,
            }));
        rib.update(0, &from_node, false);
        let metric = |m: u32| coupled.then_some(m);
        let via = via_route;
        assert_eq!(
            kernel_route_of(&mut rib, "198.18.7.0/26"),
            Some(via("198.18.7.0/26", "198.51.100.2", metric(1024)))
        );
        // An eBGP route has BIRD's default LOCAL_PREF 100: metric 2^31 − 1 − 100.
        rib.update(
            2,
            &announce(&["198.18.9.0/26"], [198, 51, 100, 4], &[65000]),
            false,
        );
        assert_eq!(
            kernel_route_of(&mut rib, "198.18.9.0/26"),
            Some(via("198.18.9.0/26", "198.51.100.4", metric(2_147_483_547)))
        );
        // Own blackholes carry no metric (the kernel filter sets one on BGP routes only).
        rib.sweep_fib();
        assert_eq!(
            kernel_route_of(&mut rib, "198.18.1.0/26").map(|r| r.metric),
            Some(None)
        );
        // Felix's routes inside the own block: an elevated one (metric 100) is announced
        // with LOCAL_PREF 2^31 − 1 − 100 when coupled; an ordinary one never.
        let felix = |n: &str, metric: u32| Alien {
            net: net(n),
            kind: AlienKind::Unicast,
            gateway: None,
            device: Some("cali1".into()),
            metric: Some(metric),
        };
        let out = rib.learn(Learning::Learned(felix("198.18.1.9/32", 100)));
        let want: Vec<(IpNet, Option<u32>)> = match coupled {
            true => vec![(net("198.18.1.9/32"), Some(2_147_483_547))],
            false => Vec::new(),
        };
        assert_eq!(local_prefs(&sent_to(&rib, &out, 1)), want, "{coupled}");
        let out = rib.learn(Learning::Learned(felix("198.18.1.10/32", 1024)));
        assert!(sent_to(&rib, &out, 1).is_empty());
        // The own block goes to a new iBGP session with LOCAL_PREF 2^31 − 1 − 1024 (100
        // without the coupling); eBGP peers get none; a BGP route keeps its own.
        rib.down(1, false);
        let out = up(&mut rib, 1);
        let got = local_prefs(&sent_to(&rib, &out, 1));
        let block = got.iter().find(|(n, _)| *n == net("198.18.1.0/26"));
        let own = if coupled { 2_147_482_623 } else { 100 };
        assert_eq!(block, Some(&(net("198.18.1.0/26"), Some(own))));
        let learned = got.iter().find(|(n, _)| *n == net("198.18.9.0/26"));
        assert_eq!(learned, Some(&(net("198.18.9.0/26"), Some(100))));
        rib.down(2, false);
        let out = up(&mut rib, 2);
        let got = local_prefs(&sent_to(&rib, &out, 2));
        assert!(got.iter().all(|(_, lp)| lp.is_none()), "{got:?}");
    }
}

/// reachableBy (`[[static_route]]`): the route is written via its gateway, and a BGP next
/// hop inside it is written as that gateway (BIRD's `gateway recursive`), which the
/// kernel cannot resolve itself.
#[test]
fn static_route_is_written_and_resolves_next_hops_through_its_gateway() {
    let extra = "[[static_route]]\nprefix = \"203.0.113.254/32\"\nvia = \"198.51.100.9\"\n";
    let mut rib = with_peers(&config(extra));
    rib.set_interfaces(on_eth0(&[]));
    up(&mut rib, 2);
    assert_eq!(
        kernel_route_of(&mut rib, "203.0.113.254/32").map(|r| r.target),
        Some(hop("198.51.100.9"))
    );
    // The ToR (eBGP, .4's session) sends a route whose next hop is its own address.
    rib.update(
        2,
        &announce(&["198.18.9.0/26"], [203, 0, 113, 254], &[65000]),
        false,
    );
    assert_eq!(
        kernel_route_of(&mut rib, "198.18.9.0/26").map(|r| r.target),
        Some(hop("198.51.100.9"))
    );
    // Not exported: outside every pool (Calico's rules, as BIRD's static route).
    let out = up(&mut rib, 0);
    assert!(!announced(&sent_to(&rib, &out, 0)).contains(&net("203.0.113.254/32")));
    // Removed by a reload: the route goes, and the next hop no longer resolves.
    rib.reconfigure(&config(""));
    // As the daemon's reload does when static routes change.
    rib.sweep_fib();
    let changes = rib.kernel_changes(1 << 20);
    assert!(
        changes.contains(&(net("203.0.113.254/32"), None)),
        "{changes:?}"
    );
    assert!(
        changes.contains(&(net("198.18.9.0/26"), None)),
        "{changes:?}"
    );
}

/// Filters whose rules match on the new conditions and change routes.
const OPERATIONS: &str = r#"
[[filters]]
name = "tag-in"
import_v4 = [
  { action = "reject", peer_type = "ibgp", cidr = "198.18.9.0/26", match = "equal" },
  { action = "accept", as_path_prefix = [65000, 65010], operations = [{ set_priority = 100 }, { add_community = "65000:7" }] },
  { action = "reject", community = "65000:9" },
]
[[filters]]
name = "tag-out"
export_v4 = [
  { action = "accept", cidr = "198.18.1.0/26", match = "equal", operations = [{ prepend_as_path = [65100, 65101] }, { add_community = "64512:1:2" }, { set_priority = 5 }] },
]
[[filters]]
name = "prio-out"
export_v4 = [{ action = "accept", peer_type = "ibgp", operations = [{ set_priority = 100 }] }]
"#;

fn stored(rib: &Rib, n: &str) -> Vec<Arc<AttrSet>> {
    let e = rib.table.get(&(Family::IPV4_UNICAST, net(n))).unwrap();
    e.paths().iter().map(|p| p.attrs.clone()).collect()
}

#[test]
fn bgp_filter_import_operations_change_the_stored_route() {
    let mut c = config(OPERATIONS);
    c.peers[0].settings.filters = vec!["tag-in".into()];
    c.peers[2].settings.filters = vec!["tag-in".into()];
    let mut rib = with_peers(&c);
    up(&mut rib, 0);
    up(&mut rib, 2);
    let tagged = announce(&["198.18.8.0/26"], [198, 51, 100, 4], &[65000, 65010]);
    rib.update(2, &tagged, false);
    let a = stored(&rib, "198.18.8.0/26");
    assert_eq!(a[0].local_pref, Some(2_147_483_547), "priority 100");
    assert_eq!(a[0].communities, ["65000:7".parse().unwrap()]);
    let path: Vec<u32> = a[0].as_path.iter().flat_map(|s| s.asns.clone()).collect();
    assert_eq!(path, [65000, 65010], "the path itself is not changed");
    // No rule decides: accepted as sent.
    rib.update(
        2,
        &announce(&["198.18.10.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    let a = stored(&rib, "198.18.10.0/26");
    assert_eq!((a[0].local_pref, a[0].communities.len()), (None, 0));
    // A community condition: the route carrying it is refused.
    let mut tagged = announce(&["198.18.11.0/26"], [198, 51, 100, 4], &[65000]);
    tagged
        .attributes
        .push(PathAttribute::new(Attr::Communities {
            communities: vec!["65000:9".parse().unwrap()],
        }));
    rib.update(2, &tagged, false);
    assert!(!has(&rib, "198.18.11.0/26"), "carries 65000:9");
    // The peer-type rule: iBGP peer .2's 198.18.9.0/26 is refused, eBGP peer .4's is not.
    rib.update(
        0,
        &announce(&["198.18.9.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    assert!(!has(&rib, "198.18.9.0/26"), "refused from an iBGP peer");
    rib.update(
        2,
        &announce(&["198.18.9.0/26"], [198, 51, 100, 4], &[65000]),
        false,
    );
    assert!(has(&rib, "198.18.9.0/26"), "accepted from an eBGP peer");
}

#[test]
fn bgp_filter_export_operations_change_what_a_group_is_sent() {
    let mut c = config(OPERATIONS);
    c.peers[2].settings.filters = vec!["tag-out".into()];
    c.peers[1].settings.filters = vec!["prio-out".into()];
    let mut rib = with_peers(&c);
    let sent = |rib: &Rib, out: &[Outgoing], id| {
        let us = sent_to(rib, out, id);
        assert_eq!(announced(&us), [net("198.18.1.0/26")]);
        AttrSet::from_update(&us[0], Family::IPV4_UNICAST, &Negotiated::default())
    };
    let path =
        |a: &AttrSet| -> Vec<u32> { a.as_path.iter().flat_map(|s| s.asns.clone()).collect() };
    // eBGP: the rule's AS numbers before our own, which BIRD's protocol adds before the
    // export filter runs; no LOCAL_PREF, whatever the rule sets.
    let out = up(&mut rib, 2);
    let a = sent(&rib, &out, 2);
    assert_eq!(path(&a), [65100, 65101, 64512]);
    assert_eq!(a.local_pref, None);
    assert_eq!(a.large_communities, ["64512:1:2".parse().unwrap()]);
    // iBGP with the priority operation: LOCAL_PREF 2147483647 - 100.
    let out = up(&mut rib, 1);
    let a = sent(&rib, &out, 1);
    assert_eq!(a.local_pref, Some(2_147_483_547));
    assert!(path(&a).is_empty() && a.large_communities.is_empty());
    // A peer without rules gets the route unchanged.
    let out = up(&mut rib, 0);
    let a = sent(&rib, &out, 0);
    assert_ne!(a.local_pref, Some(2_147_483_547));
    assert!(path(&a).is_empty() && a.large_communities.is_empty());
}

/// On export to eBGP an AS path test sees the session's AS first, as BIRD's export filter
/// does; on iBGP the path as it is.
#[test]
fn bgp_filter_export_path_test_sees_the_sessions_as_on_ebgp() {
    let mut c = config(
        "[[filters]]\nname = \"ours\"\n\
         export_v4 = [{ action = \"reject\", as_path_prefix = [64512] }]\n",
    );
    c.peers[0].settings.filters = vec!["ours".into()];
    c.peers[2].settings.filters = vec!["ours".into()];
    let mut rib = with_peers(&c);
    let out = up(&mut rib, 2);
    assert!(
        sent_to(&rib, &out, 2).is_empty(),
        "eBGP: 64512 leads the path"
    );
    let out = up(&mut rib, 0);
    assert_eq!(announced(&sent_to(&rib, &out, 0)), [net("198.18.1.0/26")]);
}

/// A route refused by the import limit in the batch that withdrew it: the prefix, left with
/// no path, keeps its place until the flush, which sends its withdrawal (the entry made for
/// the refused route is not simply dropped).
#[test]
fn a_route_refused_by_the_limit_after_its_withdrawal_is_withdrawn() {
    let mut c = config(CLIENTS);
    c.peers[0].settings.import_limit = Some(1);
    c.peers[0].settings.import_limit_action = LimitAction::Block;
    let mut rib = with_peers(&c);
    up(&mut rib, 0);
    up(&mut rib, 1);
    let (p, q) = ("198.18.2.0/26", "198.18.3.0/26");
    let out = rib.update(0, &announce(&[p], [198, 51, 100, 2], &[]), false);
    assert_eq!(announced(&sent_to(&rib, &out, 1)), vec![net(p)]);
    let mut w = Update::default();
    w.withdrawn.push(Prefix {
        net: net(p),
        path_id: Some(1),
    });
    assert_eq!(rib.receive(0, &w, false), 1);
    assert_eq!(
        rib.receive(0, &announce(&[q], [198, 51, 100, 2], &[]), false),
        1
    );
    // Over the limit now: refused.
    rib.receive(0, &announce(&[p], [198, 51, 100, 2], &[]), false);
    assert_eq!(rib.received(0), 1);
    let out = rib.flush_changes();
    let to_b = sent_to(&rib, &out, 1);
    let withdrawn: Vec<IpNet> = (to_b.iter())
        .flat_map(|u| u.withdrawals().map(|(_, x)| x.net))
        .collect();
    assert_eq!(withdrawn, vec![net(p)]);
    assert_eq!(announced(&to_b), vec![net(q)]);
    assert!(!rib.table.contains_key(&(Family::IPV4_UNICAST, net(p))));
}

/// Without a kernel (`[kernel] enabled = false`) nothing is marked for the FIB; with one,
/// every prefix whose best path changed is.
#[test]
fn prefixes_are_marked_for_the_fib_only_with_a_kernel() {
    for (kernel, marked) in [("", 2), ("[kernel]\nenabled = false", 0)] {
        let mut rib = with_peers(&config(kernel));
        up(&mut rib, 0);
        rib.fib_forget();
        let two = announce(&["198.18.2.0/26", "198.18.3.0/26"], [198, 51, 100, 2], &[]);
        assert_eq!(rib.receive(0, &two, false), 2);
        rib.flush_changes();
        assert_eq!(rib.fib_backlog(), marked, "{kernel:?}");
    }
}

/// The map of prefixes changed since the last flush keeps the room a large batch of
/// received UPDATEs took while batches stay large (a burst), up to 16,384 slots, and gives
/// it back after a small one or any other flush (a peer's table gone).
#[test]
fn dirty_map_keeps_a_bursts_room_only() {
    let mut rib = with_peers(&config(""));
    up(&mut rib, 0);
    let nets: Vec<String> = (0..20_000u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = nets.iter().map(String::as_str).collect();
    for chunk in refs.chunks(256) {
        rib.receive(0, &announce(chunk, [198, 51, 100, 2], &[]), false);
    }
    rib.flush_changes();
    let room = rib.dirty.capacity();
    assert!((16_384..32_768).contains(&room), "{room} slots kept");
    rib.receive(0, &announce(&refs[..1], [198, 51, 100, 9], &[]), false);
    rib.flush_changes();
    assert!(
        rib.dirty.capacity() < 8192,
        "{} slots",
        rib.dirty.capacity()
    );
    for chunk in refs.chunks(256) {
        rib.receive(0, &announce(chunk, [198, 51, 100, 3], &[]), false);
    }
    rib.flush_changes();
    assert!(rib.dirty.capacity() >= 16_384);
    rib.down(0, false);
    assert!(
        rib.dirty.capacity() < 8192,
        "{} slots",
        rib.dirty.capacity()
    );
}

/// A reload that comes while received UPDATEs are not yet flushed sends what they changed:
/// a prefix new to the table in that batch had nothing before, so it is announced, once.
#[test]
fn a_reload_before_the_flush_announces_the_batchs_new_prefixes() {
    let mut rib = clients_up();
    let (p, q) = (net("198.18.2.0/26"), net("198.18.4.0/26"));
    rib.receive(
        0,
        &announce(&["198.18.2.0/26", "198.18.4.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    // `q` changes again in the batch: a better path from another peer.
    rib.receive(
        1,
        &announce(&["198.18.4.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    let out = rib.reconfigure(&config(CLIENTS));
    let mut to_c = announced(&sent_to(&rib, &out, 3));
    to_c.sort();
    assert_eq!(to_c, vec![p, q], "each new prefix once");
    assert!(rib.flush_changes().is_empty(), "nothing twice");
}

/// A session that goes down while received UPDATEs wait for their flush: those go out
/// first, then what the peer's leaving changes, so the last word on each prefix is the
/// table's. Here a client's route that another client's batch also announced falls back to
/// that one, and the leaving client's other route is withdrawn.
#[test]
fn a_session_down_sends_the_waiting_batch_first() {
    let mut rib = clients_up();
    let (p, q) = (net("198.18.2.0/26"), net("198.18.4.0/26"));
    rib.update(
        1,
        &announce(&["198.18.2.0/26", "198.18.4.0/26"], [198, 51, 100, 3], &[]),
        false,
    );
    // Not flushed yet: client .2's path to `p`.
    rib.receive(
        0,
        &announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]),
        false,
    );
    let out = rib.down(1, false);
    let to_c = sent_to(&rib, &out, 3);
    let last_word = |n: IpNet| {
        to_c.iter().rev().find_map(|u| {
            if u.withdrawals().any(|(_, x)| x.net == n) {
                Some(None)
            } else if u.announced().any(|(_, x)| x.net == n) {
                Some(next_hop(u))
            } else {
                None
            }
        })
    };
    assert_eq!(
        last_word(p),
        Some(Some(Ipv4Addr::new(198, 51, 100, 2))),
        "{p} through .2"
    );
    assert_eq!(last_word(q), Some(None), "{q} withdrawn");
    assert!(rib.flush_changes().is_empty(), "nothing left");
}
