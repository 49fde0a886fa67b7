//! BGP's own propagation rules: iBGP split horizon, route reflection (RFC 4456), next hop
//! self/keep, AS_PATH and LOCAL_PREF handling on eBGP (RFC 4271 §5.1), and the loop checks
//! applied on import.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::attrs::AttrSet;
use crate::model::NextHopMode;
use crate::wire::Family;
use crate::wire::attr::flags;

/// This speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Set on a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
}

/// Where a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub local: bool,
    pub ibgp: bool,
    pub rr_client: bool,
    pub bgp_id: Ipv4Addr,
}

/// Where it goes: the settings an update group's members share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub ibgp: bool,
    pub rr_client: bool,
    pub next_hop: NextHopMode,
    /// The session's own addresses: the next hop when it is "self".
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
    /// The AS the session speaks as, when not the speaker's (BIRD's `local as`).
    pub local_asn: Option<u32>,
}

impl Speaker {
    /// RFC 4456 §7: the cluster ID, the router ID when none is configured.
    fn cluster(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }

    /// Import checks. eBGP: our AS in the path more than `allow_local_as` times is a loop
    /// (RFC 4271 §9.1.2). Reflected routes: our router ID as ORIGINATOR_ID or our cluster ID in
    /// the CLUSTER_LIST is a loop (RFC 4456 §8).
    pub fn accepts(&self, a: &AttrSet, ebgp: bool, allow_local_as: usize) -> bool {
        if ebgp && a.count_as(self.asn) > allow_local_as {
            return false;
        }
        a.originator_id != Some(self.router_id) && !a.cluster_list.contains(&self.cluster())
    }

    /// RFC 4271 §9.2 with RFC 4456 §6: routes learned over iBGP are not passed to iBGP
    /// peers, except by a reflector when the source or the target is one of its clients.
    pub fn propagates(&self, from: &Source, to: &Target) -> bool {
        if from.local || !from.ibgp || !to.ibgp {
            return true;
        }
        self.cluster_id.is_some() && (from.rr_client || to.rr_client)
    }

    /// Whether a path goes to the target: it propagates there, and the target gets a next
    /// hop for it (its own address when the next hop is set to self).
    pub fn exports(&self, from: &Source, to: &Target, family: Family, a: &AttrSet) -> bool {
        self.propagates(from, to)
            && (!next_hop_self(from, to, a) || own_address(to, family).is_some())
    }

    /// The attributes a path is announced with, or `None` when the target has no next hop
    /// to give for the family.
    pub fn rewrite(
        &self,
        from: &Source,
        to: &Target,
        family: Family,
        a: &AttrSet,
    ) -> Option<AttrSet> {
        let mut out = a.clone();
        // RFC 4271 §5: unrecognised non-transitive attributes are not passed on.
        out.other.retain(|o| o.flags & flags::TRANSITIVE != 0);
        // A kernel route's metric is not an attribute of the announcement.
        out.krt_metric = None;
        if next_hop_self(from, to, a) {
            out.next_hop = Some(own_address(to, family)?);
            out.link_local = None;
        }
        if to.ibgp {
            if from.ibgp && !from.local {
                // RFC 4456 §8: reflecting.
                out.originator_id.get_or_insert(from.bgp_id);
                out.cluster_list.insert(0, self.cluster());
            }
            // RFC 4271 §5.1.5: iBGP peers always get a LOCAL_PREF.
            out.local_pref.get_or_insert(100);
        } else {
            // RFC 4271 §5.1.2: our AS goes first; §5.1.5: no LOCAL_PREF; RFC 4456 §8: the
            // reflection attributes stay inside the AS; §5.1.4: a MED learned from another
            // AS is not passed to a third one.
            // With `local as N`, BIRD prepends N, the session's AS, and not the node's.
            out.prepend(to.local_asn.unwrap_or(self.asn));
            out.local_pref = None;
            out.originator_id = None;
            out.cluster_list.clear();
            if !from.ibgp && !from.local {
                out.med = None;
            }
        }
        Some(out)
    }
}

/// The target's own address for the family (what "next hop self" gives).
fn own_address(to: &Target, family: Family) -> Option<IpAddr> {
    if family == Family::IPV4_UNICAST {
        to.local_v4.map(IpAddr::V4)
    } else {
        to.local_v6.map(IpAddr::V6)
    }
}

/// RFC 4271 §5.1.3: whether the next hop becomes our own address: always for our own routes
/// and those without one, toward eBGP peers in `auto` mode, or as configured.
fn next_hop_self(from: &Source, to: &Target, a: &AttrSet) -> bool {
    let keep = match to.next_hop {
        NextHopMode::Myself => false,
        NextHopMode::Keep => true,
        NextHopMode::Auto => to.ibgp,
    };
    from.local || !keep || a.next_hop.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::{Segment, SegmentKind};

    const ME: Speaker = Speaker {
        asn: 64512,
        router_id: Ipv4Addr::new(198, 51, 100, 1),
        cluster_id: None,
    };
    const RR: Speaker = Speaker {
        cluster_id: Some(Ipv4Addr::new(244, 0, 0, 1)),
        ..ME
    };

    fn src(local: bool, ibgp: bool, rr_client: bool) -> Source {
        Source {
            local,
            ibgp,
            rr_client,
            bgp_id: Ipv4Addr::new(198, 51, 100, 2),
        }
    }

    fn tgt(ibgp: bool, rr_client: bool, next_hop: NextHopMode) -> Target {
        Target {
            ibgp,
            rr_client,
            next_hop,
            local_v4: Some(Ipv4Addr::new(198, 51, 100, 1)),
            local_v6: None,
            local_asn: None,
        }
    }

    #[test]
    fn split_horizon_and_reflection() {
        let auto = NextHopMode::Auto;
        let rows = [
            (
                ME,
                src(false, true, false),
                tgt(true, false, auto),
                false,
                "iBGP → iBGP, no reflector",
            ),
            (
                ME,
                src(false, false, false),
                tgt(true, false, auto),
                true,
                "eBGP → iBGP",
            ),
            (
                ME,
                src(false, true, false),
                tgt(false, false, auto),
                true,
                "iBGP → eBGP",
            ),
            (
                ME,
                src(true, false, false),
                tgt(true, false, auto),
                true,
                "own route",
            ),
            (
                RR,
                src(false, true, true),
                tgt(true, false, auto),
                true,
                "client → non-client",
            ),
            (
                RR,
                src(false, true, false),
                tgt(true, true, auto),
                true,
                "non-client → client",
            ),
            (
                RR,
                src(false, true, false),
                tgt(true, false, auto),
                false,
                "non-client → non-client",
            ),
        ];
        for (me, from, to, want, why) in rows {
            assert_eq!(me.propagates(&from, &to), want, "{why}");
        }
    }

    #[test]
    fn reflection_sets_originator_and_cluster_list() {
        let mut a = AttrSet::local();
        a.next_hop = Some("198.51.100.2".parse().unwrap());
        let out = RR
            .rewrite(
                &src(false, true, true),
                &tgt(true, true, NextHopMode::Auto),
                Family::IPV4_UNICAST,
                &a,
            )
            .unwrap();
        assert_eq!(out.originator_id, Some(Ipv4Addr::new(198, 51, 100, 2)));
        assert_eq!(out.cluster_list, vec![Ipv4Addr::new(244, 0, 0, 1)]);
        assert_eq!(out.next_hop, a.next_hop, "next hop kept on iBGP");
        assert_eq!(out.local_pref, Some(100));
        // The reflected route comes back: both loop checks reject it.
        assert!(!RR.accepts(&out, false, 0));
        let mut from_me = AttrSet::local();
        from_me.originator_id = Some(ME.router_id);
        assert!(!ME.accepts(&from_me, false, 0));
    }

    #[test]
    fn ebgp_rewrite() {
        let mut a = AttrSet::local();
        a.next_hop = Some("198.51.100.7".parse().unwrap());
        a.local_pref = Some(300);
        a.med = Some(5);
        a.cluster_list = vec![Ipv4Addr::new(244, 0, 0, 1)];
        let out = ME
            .rewrite(
                &src(false, false, false),
                &tgt(false, false, NextHopMode::Auto),
                Family::IPV4_UNICAST,
                &a,
            )
            .unwrap();
        assert_eq!(out.as_path[0].asns, vec![64512]);
        assert_eq!(out.next_hop, Some("198.51.100.1".parse().unwrap()));
        assert_eq!((out.local_pref, out.med), (None, None));
        assert!(out.cluster_list.is_empty());
        let kept = ME
            .rewrite(
                &src(false, true, false),
                &tgt(false, false, NextHopMode::Keep),
                Family::IPV4_UNICAST,
                &a,
            )
            .unwrap();
        assert_eq!(kept.next_hop, a.next_hop);
        assert_eq!(kept.med, Some(5), "an iBGP-learned MED may go to eBGP");
        // No IPv6 address on the session: IPv6 routes cannot go.
        assert!(
            ME.rewrite(
                &src(true, false, false),
                &tgt(false, false, NextHopMode::Auto),
                Family::IPV6_UNICAST,
                &AttrSet::local()
            )
            .is_none()
        );
    }

    #[test]
    fn as_loop_allowance() {
        let mut a = AttrSet::local();
        a.as_path = vec![Segment {
            kind: SegmentKind::Sequence,
            asns: vec![65000, 64512],
        }];
        assert!(!ME.accepts(&a, true, 0));
        assert!(ME.accepts(&a, true, 1));
        assert!(
            ME.accepts(&a, false, 0),
            "iBGP paths are not checked for our AS"
        );
    }
}
