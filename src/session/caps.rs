//! What two OPENs agree on (RFC 5492 §3): the capabilities the rest of the daemon acts on.

use std::net::Ipv4Addr;

use crate::model::{AddPaths, PeerDefaults};
use crate::wire::notification::{Code, cease};
use crate::wire::open::{AddPathFamily, GrFamily, GracefulRestart, OptParam};
use crate::wire::{Capability, Family, Negotiated, Notification, Open};

/// The families wren speaks.
pub const FAMILIES: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

/// Builds wren's OPEN for one peer (RFC 4271 §4.2, capabilities per RFC 5492).
pub fn local_open(asn: u32, router_id: Ipv4Addr, s: &PeerDefaults, restarting: bool) -> Open {
    let mut caps: Vec<Capability> = FAMILIES
        .iter()
        .map(|f| Capability::Multiprotocol {
            afi: f.afi,
            safi: f.safi,
        })
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    if s.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            // N: a NOTIFICATION other than Hard Reset starts graceful restart too (RFC 8538),
            // so a peer restarted with SIGTERM (a Cease) keeps its place in the data plane.
            flags: GracefulRestart::NOTIFICATION
                | if restarting {
                    GracefulRestart::RESTART_STATE
                } else {
                    0
                },
            restart_time: s.restart_time.min(4095),
            families: FAMILIES
                .iter()
                .map(|f| GrFamily {
                    afi: f.afi,
                    safi: f.safi,
                    // RFC 4724 §3: routes stay in the kernel across our restart.
                    flags: GrFamily::FORWARDING,
                })
                .collect(),
        }));
    }
    caps.push(Capability::FourOctetAs { asn });
    let mode = match s.add_paths {
        AddPaths::Off => 0,
        AddPaths::Rx => AddPathFamily::RECEIVE,
        AddPaths::Tx => AddPathFamily::SEND,
        AddPaths::Both => AddPathFamily::RECEIVE | AddPathFamily::SEND,
    };
    if mode != 0 {
        caps.push(Capability::AddPath {
            families: FAMILIES
                .iter()
                .map(|f| AddPathFamily {
                    afi: f.afi,
                    safi: f.safi,
                    mode,
                })
                .collect(),
        });
    }
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(crate::wire::open::AS_TRANS),
        hold_time: s.hold_time,
        bgp_id: router_id,
        params: vec![OptParam::Capabilities { capabilities: caps }],
        extended_params: false,
    }
}

/// The outcome of the OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub local: Open,
    pub remote: Open,
    /// Negotiated hold time (RFC 4271 §4.2: the smaller of the two) and keepalive interval.
    pub hold_time: u16,
    pub keepalive: u16,
    /// How to read what the peer sends, and how to write what wren sends.
    pub rx: Negotiated,
    pub tx: Negotiated,
    /// Families both sides announced (IPv4 unicast implied without any MP capability,
    /// RFC 4760 §8).
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if any (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Session {
    pub fn new(local: Open, remote: Open, keepalive: Option<u16>) -> Session {
        let hold_time = local.hold_time.min(remote.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            keepalive
                .map_or(hold_time / 3, |k| k.min(hold_time / 3))
                .max(1)
        };
        let families = common_families(&local, &remote);
        let both = |c: &Capability| local.has(c) && remote.has(c);
        let peer_graceful_restart = remote.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        });
        Session {
            hold_time,
            keepalive,
            rx: Negotiated::between(&remote, &local),
            tx: Negotiated::between(&local, &remote),
            families,
            route_refresh: both(&Capability::RouteRefresh),
            enhanced_route_refresh: both(&Capability::EnhancedRouteRefresh),
            peer_graceful_restart,
            local,
            remote,
        }
    }

    /// Whether a NOTIFICATION `n` ends the session gracefully (RFC 8538 §4): both sides
    /// announced graceful restart with the N bit, and `n` is not a Cease/Hard Reset.
    pub fn notification_restart(&self, n: &Notification) -> bool {
        let n_bit = |o: &Open| {
            o.capabilities().any(|c| {
                matches!(c, Capability::GracefulRestart(g)
                    if g.flags & GracefulRestart::NOTIFICATION != 0)
            })
        };
        n_bit(&self.local)
            && n_bit(&self.remote)
            && !(n.code == Code::Cease as u8 && n.subcode == cease::HARD_RESET)
    }

    /// The peer's AS (RFC 6793 §3).
    pub fn peer_asn(&self) -> u32 {
        self.remote.asn()
    }
}

/// Families announced by both OPENs; an OPEN without MP capabilities means IPv4 unicast.
pub fn common_families(a: &Open, b: &Open) -> Vec<Family> {
    let of = |o: &Open| {
        let f: Vec<Family> = o.families().collect();
        if f.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            f
        }
    };
    let theirs = of(b);
    of(a).into_iter().filter(|f| theirs.contains(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_keepalive() {
        let s = PeerDefaults::default();
        let a = local_open(64512, Ipv4Addr::new(198, 51, 100, 1), &s, false);
        let mut b = local_open(64512, Ipv4Addr::new(198, 51, 100, 2), &s, false);
        b.hold_time = 9;
        let sess = Session::new(a.clone(), b.clone(), None);
        assert_eq!((sess.hold_time, sess.keepalive), (9, 3));
        assert_eq!(sess.families, FAMILIES.to_vec());
        assert!(sess.rx.add_path_ipv4 && sess.tx.add_path_ipv6 && sess.rx.four_octet_as);
        assert!(sess.route_refresh && sess.enhanced_route_refresh);
        b.hold_time = 0;
        assert_eq!(Session::new(a, b, None).keepalive, 0);
    }

    #[test]
    fn add_path_needs_send_and_receive() {
        let mut s = PeerDefaults::default();
        let a = local_open(1, Ipv4Addr::new(198, 51, 100, 1), &s, false);
        s.add_paths = AddPaths::Rx;
        let b = local_open(1, Ipv4Addr::new(198, 51, 100, 2), &s, false);
        let sess = Session::new(a, b, None);
        assert!(sess.tx.add_path_ipv4, "we send, they receive");
        assert!(!sess.rx.add_path_ipv4, "they do not send");
    }

    #[test]
    fn four_octet_as_uses_as_trans() {
        let o = local_open(
            4_200_000_001,
            Ipv4Addr::new(198, 51, 100, 1),
            &PeerDefaults::default(),
            true,
        );
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.asn(), 4_200_000_001);
    }
}
