//! The decision process (RFC 4271 §9.1.2.2, RFC 4456 §9): two paths compared at a time, one
//! small function per step, and the step that decided is named so `show route all` can say
//! why a path lost. MED only compares paths from the same neighbouring AS, so the order is
//! not total: the best path is found by a pairwise scan over candidates in a fixed order
//! (peer address, path identifier), which makes the result independent of arrival order.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use crate::attrs::AttrSet;

/// What the decision needs to know about a path besides its attributes.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub attrs: &'a AttrSet,
    /// BIRD's route preference: own routes 200 (static), BGP 100, learned kernel routes 10.
    pub preference: u8,
    pub ebgp: bool,
    /// The BGP identifier of the peer it came from.
    pub peer_id: Ipv4Addr,
    pub peer_addr: IpAddr,
    /// Whether the next hop can be reached (RFC 4271 §9.1.2.1).
    pub reachable: bool,
}

/// The steps, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    NextHop,
    Preference,
    LocalPref,
    AsPathLength,
    Origin,
    Med,
    External,
    RouterId,
    ClusterList,
    PeerAddress,
    Equal,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::NextHop => "next hop unreachable",
            Step::Preference => "lower preference (own 200, BGP 100, kernel 10)",
            Step::LocalPref => "lower LOCAL_PREF",
            Step::AsPathLength => "longer AS_PATH",
            Step::Origin => "higher ORIGIN",
            Step::Med => "higher MED",
            Step::External => "iBGP, eBGP preferred",
            Step::RouterId => "higher router ID",
            Step::ClusterList => "longer CLUSTER_LIST",
            Step::PeerAddress => "higher peer address",
            Step::Equal => "equal",
        }
    }
}

/// Compares two paths: `Less` when `a` is better, with the step that decided.
pub fn compare(a: &Candidate, b: &Candidate) -> (Ordering, Step) {
    type Rule = fn(&Candidate, &Candidate) -> Ordering;
    let steps: [(Step, Rule); 10] = [
        (Step::NextHop, next_hop),
        (Step::Preference, preference),
        (Step::LocalPref, local_pref),
        (Step::AsPathLength, as_path_length),
        (Step::Origin, origin),
        (Step::Med, med),
        (Step::External, external),
        (Step::RouterId, router_id),
        (Step::ClusterList, cluster_list),
        (Step::PeerAddress, peer_address),
    ];
    for (step, f) in steps {
        let o = f(a, b);
        if o != Ordering::Equal {
            return (o, step);
        }
    }
    (Ordering::Equal, Step::Equal)
}

/// Whether `b` may share `a`'s kernel route (ECMP): nothing before the router-ID tie-break
/// tells them apart (BIRD's `merge paths`).
pub fn equal_cost(a: &Candidate, b: &Candidate) -> bool {
    a.preference == BGP && b.preference == BGP && compare(a, b).1 > Step::External
}

/// RFC 4271 §9.1.2.1: an unreachable next hop excludes the path.
fn next_hop(a: &Candidate, b: &Candidate) -> Ordering {
    b.reachable.cmp(&a.reachable)
}

/// Route preferences, as BIRD's protocols have them.
pub const OWN: u8 = 200;
pub const BGP: u8 = 100;
pub const KERNEL: u8 = 10;

/// Higher preference first: a peer's route for our block never replaces our blackhole, and a
/// route learned from the kernel only serves when no peer has one.
fn preference(a: &Candidate, b: &Candidate) -> Ordering {
    b.preference.cmp(&a.preference)
}

/// RFC 4271 §9.1.1: higher LOCAL_PREF; eBGP routes without one count as 100.
fn local_pref(a: &Candidate, b: &Candidate) -> Ordering {
    let lp = |c: &Candidate| c.attrs.local_pref.unwrap_or(100);
    lp(b).cmp(&lp(a))
}

/// RFC 4271 §9.1.2.2 a.
fn as_path_length(a: &Candidate, b: &Candidate) -> Ordering {
    a.attrs.path_len().cmp(&b.attrs.path_len())
}

/// RFC 4271 §9.1.2.2 b: IGP < EGP < INCOMPLETE.
fn origin(a: &Candidate, b: &Candidate) -> Ordering {
    (a.attrs.origin as u8).cmp(&(b.attrs.origin as u8))
}

/// RFC 4271 §9.1.2.2 c: lower MED, only between paths from the same neighbouring AS; a
/// missing MED counts as 0.
fn med(a: &Candidate, b: &Candidate) -> Ordering {
    if a.attrs.neighbor_as() != b.attrs.neighbor_as() {
        return Ordering::Equal;
    }
    a.attrs.med.unwrap_or(0).cmp(&b.attrs.med.unwrap_or(0))
}

/// RFC 4271 §9.1.2.2 d: eBGP over iBGP.
fn external(a: &Candidate, b: &Candidate) -> Ordering {
    b.ebgp.cmp(&a.ebgp)
}

/// RFC 4271 §9.1.2.2 f with RFC 4456 §9: lower BGP identifier, the ORIGINATOR_ID standing
/// in for it on reflected routes.
fn router_id(a: &Candidate, b: &Candidate) -> Ordering {
    let id = |c: &Candidate| u32::from(c.attrs.originator_id.unwrap_or(c.peer_id));
    id(a).cmp(&id(b))
}

/// RFC 4456 §9: shorter CLUSTER_LIST.
fn cluster_list(a: &Candidate, b: &Candidate) -> Ordering {
    a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len())
}

/// RFC 4271 §9.1.2.2 g: lower peer address.
fn peer_address(a: &Candidate, b: &Candidate) -> Ordering {
    a.peer_addr.cmp(&b.peer_addr)
}

/// Orders items best first by repeated pairwise selection (never a sort: MED makes the
/// relation intransitive); among equals the given order stands. In place, no allocation.
pub fn rank<T>(items: &mut [T], cand: impl for<'a> Fn(&'a T) -> Candidate<'a>) {
    for start in 0..items.len() {
        let mut best = start;
        for i in start + 1..items.len() {
            if compare(&cand(&items[i]), &cand(&items[best])).0 == Ordering::Less {
                best = i;
            }
        }
        // The rest keep their order.
        items[start..=best].rotate_right(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::{Origin, Segment, SegmentKind};

    fn attrs(f: impl FnOnce(&mut AttrSet)) -> AttrSet {
        let mut a = AttrSet::local();
        f(&mut a);
        a
    }

    fn cand(a: &AttrSet) -> Candidate<'_> {
        Candidate {
            attrs: a,
            preference: BGP,
            ebgp: false,
            peer_id: Ipv4Addr::new(198, 51, 100, 2),
            peer_addr: "198.51.100.2".parse().unwrap(),
            reachable: true,
        }
    }

    fn path(asns: &[u32]) -> Vec<Segment> {
        vec![Segment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }]
    }

    /// One row per step: `better` must beat `worse` at exactly that step.
    #[test]
    fn each_step_decides() {
        let base = AttrSet::local();
        let lp200 = attrs(|a| a.local_pref = Some(200));
        let short = attrs(|a| a.as_path = path(&[1]));
        let long = attrs(|a| a.as_path = path(&[1, 2]));
        let egp = attrs(|a| a.origin = Origin::Egp);
        let med5 = attrs(|a| {
            a.as_path = path(&[1]);
            a.med = Some(5)
        });
        let med9 = attrs(|a| {
            a.as_path = path(&[1]);
            a.med = Some(9)
        });
        let orig_low = attrs(|a| a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1)));
        let cl1 = attrs(|a| a.cluster_list = vec![Ipv4Addr::new(244, 0, 0, 1)]);
        let rows: Vec<(Candidate, Candidate, Step)> = vec![
            (
                cand(&base),
                Candidate {
                    reachable: false,
                    ..cand(&base)
                },
                Step::NextHop,
            ),
            (
                Candidate {
                    preference: OWN,
                    ..cand(&base)
                },
                cand(&lp200),
                Step::Preference,
            ),
            (cand(&lp200), cand(&base), Step::LocalPref),
            (cand(&short), cand(&long), Step::AsPathLength),
            (cand(&base), cand(&egp), Step::Origin),
            (cand(&med5), cand(&med9), Step::Med),
            (
                Candidate {
                    ebgp: true,
                    ..cand(&base)
                },
                cand(&base),
                Step::External,
            ),
            (cand(&orig_low), cand(&base), Step::RouterId),
            (cand(&base), cand(&cl1), Step::ClusterList),
            (
                cand(&base),
                Candidate {
                    peer_addr: "198.51.100.9".parse().unwrap(),
                    ..cand(&base)
                },
                Step::PeerAddress,
            ),
        ];
        for (better, worse, step) in rows {
            assert_eq!(compare(&better, &worse), (Ordering::Less, step), "{step:?}");
            assert_eq!(
                compare(&worse, &better),
                (Ordering::Greater, step),
                "{step:?}"
            );
        }
    }

    #[test]
    fn med_only_within_one_neighbour_as() {
        let a = attrs(|a| {
            a.as_path = path(&[1]);
            a.med = Some(100)
        });
        let b = attrs(|a| {
            a.as_path = path(&[2]);
            a.med = Some(1)
        });
        assert_ne!(compare(&cand(&a), &cand(&b)).1, Step::Med);
    }

    #[test]
    fn ecmp_and_rank() {
        let x = AttrSet::local();
        let p1 = Candidate {
            peer_id: Ipv4Addr::new(198, 51, 100, 3),
            peer_addr: "198.51.100.3".parse().unwrap(),
            ..cand(&x)
        };
        let p2 = cand(&x);
        assert!(equal_cost(&p1, &p2));
        let lp = attrs(|a| a.local_pref = Some(50));
        let p3 = cand(&lp);
        assert!(!equal_cost(&p2, &p3));
        let mut ranked = [p3, p1, p2];
        rank(&mut ranked, |c| *c);
        let addr = |c: &Candidate| c.peer_addr.to_string();
        assert_eq!(addr(&ranked[0]), "198.51.100.2");
        assert_eq!(ranked[0].attrs.local_pref, None);
        assert_eq!(addr(&ranked[1]), "198.51.100.3");
        assert_eq!(ranked[2].attrs.local_pref, Some(50));
    }
}
