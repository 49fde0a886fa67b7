//! The table: for each prefix, every path to it (each peer's Adj-RIB-In and our own routes
//! in one place), kept best first as the last decision ranked them.
//!
//! Prefixes are keyed by integers per address family in hash maps split into shards, so that
//! one lookup is a hash and a probe, and growing the table never copies all of it at once.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use super::attrs::AttrSet;
use crate::session::PeerId;
use crate::wire::{Afi, Family, Safi};

/// Who a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSource {
    /// Originated by this node.
    Local,
    /// A peer, by its index (`PeerId`).
    Peer(u32),
    /// Another protocol's route in the kernel table (BIRD's `learn`).
    Kernel,
}

impl PathSource {
    pub fn peer(id: PeerId) -> PathSource {
        PathSource::Peer(u32::try_from(id).unwrap_or(u32::MAX))
    }

    pub fn peer_id(self) -> Option<PeerId> {
        match self {
            PathSource::Peer(id) => Some(id as PeerId),
            PathSource::Local | PathSource::Kernel => None,
        }
    }
}

/// `Path::bits`: the transmit identifier in the low bits, two flags in the high ones.
const STALE: u32 = 1 << 31;
const MULTIPATH: u32 = 1 << 30;
const TX_ID: u32 = MULTIPATH - 1;

/// One path: 24 bytes.
#[derive(Debug, Clone)]
pub struct Path {
    pub attrs: Arc<AttrSet>,
    pub source: PathSource,
    /// The peer's add-path identifier (RFC 7911), 0 without add-path.
    pub rx_id: u32,
    bits: u32,
}

impl Path {
    /// Our identifier for it when we send several paths (RFC 7911); stable while it lives.
    pub fn tx_id(&self) -> u32 {
        self.bits & TX_ID
    }

    /// Kept from a session that went down under graceful restart (RFC 4724 §4.2).
    pub fn stale(&self) -> bool {
        self.bits & STALE != 0
    }

    pub fn set_stale(&mut self, stale: bool) {
        self.set(STALE, stale);
    }

    /// The best path or one equal in cost to it, as the last decision found.
    pub fn multipath(&self) -> bool {
        self.bits & MULTIPATH != 0
    }

    pub(super) fn set_multipath(&mut self, on: bool) {
        self.set(MULTIPATH, on);
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }
}

/// The paths of one prefix. Most prefixes have one: it is stored inline. 24 bytes.
#[derive(Debug, Clone, Default)]
enum Paths {
    #[default]
    Empty,
    One(Path),
    Many(Box<[Path]>),
}

/// All paths to one prefix, best first after a decision.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    paths: Paths,
}

impl Entry {
    pub fn paths(&self) -> &[Path] {
        match &self.paths {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(ps) => ps,
        }
    }

    pub fn paths_mut(&mut self) -> &mut [Path] {
        match &mut self.paths {
            Paths::Empty => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(ps) => ps,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.paths, Paths::Empty)
    }

    fn set_paths(&mut self, mut v: Vec<Path>) {
        self.paths = match v.len() {
            0 => Paths::Empty,
            1 => v.pop().map_or(Paths::Empty, Paths::One),
            _ => Paths::Many(v.into_boxed_slice()),
        };
    }

    fn take_paths(&mut self) -> Vec<Path> {
        match std::mem::take(&mut self.paths) {
            Paths::Empty => Vec::new(),
            Paths::One(p) => vec![p],
            Paths::Many(ps) => ps.into_vec(),
        }
    }

    /// Whether `source` already has this exact path, not stale: announcing it again changes
    /// nothing.
    pub fn holds(&self, source: PathSource, rx_id: u32, attrs: &Arc<AttrSet>) -> bool {
        self.paths().iter().any(|p| {
            p.source == source && p.rx_id == rx_id && Arc::ptr_eq(&p.attrs, attrs) && !p.stale()
        })
    }

    /// Adds or replaces a path; whether it is a new one (not a replacement).
    pub fn upsert(&mut self, source: PathSource, rx_id: u32, attrs: Arc<AttrSet>) -> bool {
        if let Some(p) = self
            .paths_mut()
            .iter_mut()
            .find(|p| p.source == source && p.rx_id == rx_id)
        {
            p.attrs = attrs;
            p.set_stale(false);
            return false;
        }
        let mut tx_id = 1;
        while self.paths().iter().any(|p| p.tx_id() == tx_id) {
            tx_id += 1;
        }
        let path = Path {
            attrs,
            source,
            rx_id,
            bits: tx_id & TX_ID,
        };
        self.paths = match std::mem::take(&mut self.paths) {
            Paths::Empty => Paths::One(path),
            Paths::One(p) => Paths::Many(Box::new([p, path])),
            Paths::Many(ps) => {
                let mut v = ps.into_vec();
                v.push(path);
                Paths::Many(v.into_boxed_slice())
            }
        };
        true
    }

    /// Whether `source` has paths that `pick` selects.
    pub fn has(&self, source: PathSource, pick: impl Fn(&Path) -> bool) -> bool {
        self.paths().iter().any(|p| p.source == source && pick(p))
    }

    /// Removes the paths of `source` that `pick` selects; how many went.
    pub fn remove(&mut self, source: PathSource, pick: impl Fn(&Path) -> bool) -> usize {
        let gone = |p: &Path| p.source == source && pick(p);
        match &self.paths {
            Paths::Empty => 0,
            Paths::One(p) => {
                if gone(p) {
                    self.paths = Paths::Empty;
                    1
                } else {
                    0
                }
            }
            Paths::Many(_) => {
                let mut v = self.take_paths();
                let before = v.len();
                v.retain(|p| !gone(p));
                let n = before - v.len();
                self.set_paths(v);
                n
            }
        }
    }

    /// The best path (after a decision).
    pub fn best(&self) -> Option<&Path> {
        self.paths().first()
    }

    /// The best path and those equal in cost to it.
    pub fn multipath(&self) -> impl Iterator<Item = &Path> {
        self.paths().iter().take_while(|p| p.multipath())
    }
}

/// An integer key for a prefix of one address family.
trait Key: Copy + Eq + Hash {
    fn prefix(self) -> Option<(Family, IpNet)>;
    /// A hash for choosing the shard (independent of the bits the map's own hash uses).
    fn spread(self) -> u64;
}

const SHARDS: usize = 64;
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// IPv4: SAFI << 40 | address << 8 | length.
fn v4_key(safi: Safi, n: &Ipv4Net) -> u64 {
    u64::from(safi.0) << 40 | u64::from(u32::from(n.network())) << 8 | u64::from(n.prefix_len())
}

/// IPv6: (address, SAFI << 8 | length).
fn v6_key(safi: Safi, n: &Ipv6Net) -> (u128, u16) {
    (
        u128::from(n.network()),
        u16::from(safi.0) << 8 | u16::from(n.prefix_len()),
    )
}

impl Key for u64 {
    fn prefix(self) -> Option<(Family, IpNet)> {
        let net = Ipv4Net::new(Ipv4Addr::from((self >> 8) as u32), self as u8).ok()?;
        let family = Family {
            afi: Afi::IPV4,
            safi: Safi((self >> 40) as u8),
        };
        Some((family, IpNet::V4(net)))
    }

    fn spread(self) -> u64 {
        (self ^ self >> 32).wrapping_mul(SPREAD)
    }
}

impl Key for (u128, u16) {
    fn prefix(self) -> Option<(Family, IpNet)> {
        let net = Ipv6Net::new(Ipv6Addr::from(self.0), self.1 as u8).ok()?;
        let family = Family {
            afi: Afi::IPV6,
            safi: Safi((self.1 >> 8) as u8),
        };
        Some((family, IpNet::V6(net)))
    }

    fn spread(self) -> u64 {
        let folded = (self.0 as u64) ^ ((self.0 >> 64) as u64) ^ u64::from(self.1);
        folded.spread()
    }
}

/// One family's prefixes in `SHARDS` hash maps, so that a map that grows copies only its own
/// part (the table never holds two copies of itself). Shard `i` gets a share of the keys
/// proportional to `2^(i/SHARDS)`: the shards cross their growth thresholds at table sizes
/// spread over an octave, so the average load stays near the mean of hashbrown's range (7/16
/// to 7/8) whatever the table size, instead of all shards doubling at once.
#[derive(Debug)]
struct Shards<K> {
    maps: Vec<FxHashMap<K, Entry>>,
    /// `bounds[i]`: the largest spread hash that goes to shard `i`.
    bounds: Vec<u64>,
}

impl<K: Key> Shards<K> {
    /// Bytes held: each map's slots (key, entry and a control byte) and the path lists of
    /// prefixes with more than one path.
    fn bytes(&self) -> usize {
        let slot = size_of::<K>() + size_of::<Entry>() + 1;
        self.maps
            .iter()
            .map(|m| {
                m.capacity() * slot
                    + m.values()
                        .filter(|e| matches!(e.paths, Paths::Many(_)))
                        .map(|e| size_of_val(e.paths()))
                        .sum::<usize>()
            })
            .sum()
    }

    fn new() -> Shards<K> {
        let weights: Vec<f64> = (0..SHARDS)
            .map(|i| (i as f64 / SHARDS as f64).exp2())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let mut bounds: Vec<u64> = weights
            .iter()
            .map(|w| {
                sum += w;
                (sum / total * u64::MAX as f64) as u64
            })
            .collect();
        if let Some(last) = bounds.last_mut() {
            *last = u64::MAX;
        }
        Shards {
            maps: (0..SHARDS).map(|_| FxHashMap::default()).collect(),
            bounds,
        }
    }

    fn shard(&self, k: K) -> usize {
        let h = k.spread();
        self.bounds.partition_point(|b| *b < h).min(SHARDS - 1)
    }

    fn map(&self, k: K) -> &FxHashMap<K, Entry> {
        &self.maps[self.shard(k)]
    }

    fn map_mut(&mut self, k: K) -> &mut FxHashMap<K, Entry> {
        let i = self.shard(k);
        &mut self.maps[i]
    }

    fn len(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = ((Family, IpNet), &Entry)> {
        self.maps
            .iter()
            .flatten()
            .filter_map(|(k, e)| Some((k.prefix()?, e)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = ((Family, IpNet), &mut Entry)> {
        self.maps
            .iter_mut()
            .flatten()
            .filter_map(|(k, e)| Some((k.prefix()?, e)))
    }
}

/// Every prefix of every family.
#[derive(Debug)]
pub struct Table {
    v4: Shards<u64>,
    v6: Shards<(u128, u16)>,
}

impl Default for Table {
    fn default() -> Table {
        Table::new()
    }
}

/// Runs `$body` on the shard map of `$key` in the right family, with the integer key bound
/// to `$k` and the map to `$m`.
macro_rules! with_map {
    ($self:ident . $map:ident, $key:expr, |$m:ident, $k:ident| $body:expr) => {{
        let (f, net): &(Family, IpNet) = $key;
        match net {
            IpNet::V4(n) => {
                let $k = v4_key(f.safi, n);
                let $m = $self.v4.$map($k);
                $body
            }
            IpNet::V6(n) => {
                let $k = v6_key(f.safi, n);
                let $m = $self.v6.$map($k);
                $body
            }
        }
    }};
}

impl Table {
    pub fn new() -> Table {
        Table {
            v4: Shards::new(),
            v6: Shards::new(),
        }
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Bytes the table holds (for `show memory`).
    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &(Family, IpNet)) -> Option<&Entry> {
        with_map!(self.map, key, |m, k| m.get(&k))
    }

    pub fn get_mut(&mut self, key: &(Family, IpNet)) -> Option<&mut Entry> {
        with_map!(self.map_mut, key, |m, k| m.get_mut(&k))
    }

    pub fn contains_key(&self, key: &(Family, IpNet)) -> bool {
        self.get(key).is_some()
    }

    /// The entry for a prefix, created empty if missing.
    pub fn entry(&mut self, key: &(Family, IpNet)) -> &mut Entry {
        with_map!(self.map_mut, key, |m, k| m.entry(k).or_default())
    }

    pub fn remove(&mut self, key: &(Family, IpNet)) {
        with_map!(self.map_mut, key, |m, k| {
            m.remove(&k);
        })
    }

    /// Every prefix and its entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ((Family, IpNet), &Entry)> {
        self.v4.iter().chain(self.v6.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = ((Family, IpNet), &mut Entry)> {
        self.v4.iter_mut().chain(self.v6.iter_mut())
    }

    pub fn keys(&self) -> impl Iterator<Item = (Family, IpNet)> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.iter().map(|(_, e)| e)
    }

    /// Every prefix in order (family, then address and length), for display.
    pub fn sorted_keys(&self) -> Vec<(Family, IpNet)> {
        let mut keys: Vec<(Family, IpNet)> = self.keys().collect();
        keys.sort_unstable();
        keys
    }

    /// The longest prefix of a unicast or multicast family that holds `addr` (one lookup per
    /// prefix length).
    pub fn longest_match(&self, addr: IpAddr) -> Option<(Family, IpNet)> {
        let afi = match addr {
            IpAddr::V4(_) => Afi::IPV4,
            IpAddr::V6(_) => Afi::IPV6,
        };
        let max = if afi == Afi::IPV4 { 32 } else { 128 };
        (0..=max).rev().find_map(|len| {
            let net = IpNet::new(addr, len).ok()?.trunc();
            [Safi::UNICAST, Safi::MULTICAST]
                .into_iter()
                .map(|safi| (Family { afi, safi }, net))
                .find(|key| self.contains_key(key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_and_remove_keep_ids_stable() {
        let a = Arc::new(AttrSet::local());
        let mut e = Entry::default();
        assert!(e.upsert(PathSource::Peer(0), 0, a.clone()));
        assert!(
            e.holds(PathSource::Peer(0), 0, &a),
            "same attributes: no change"
        );
        assert!(e.upsert(PathSource::Peer(1), 0, a.clone()));
        assert!(e.upsert(PathSource::Peer(1), 7, a.clone()));
        let ids: Vec<u32> = e.paths().iter().map(|p| p.tx_id()).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(e.remove(PathSource::Peer(1), |p| p.rx_id == 0), 1);
        assert!(e.upsert(PathSource::Peer(2), 0, a.clone()));
        let ids: Vec<u32> = e.paths().iter().map(|p| p.tx_id()).collect();
        assert_eq!(ids, vec![1, 3, 2], "freed id reused, others untouched");
        e.paths_mut()[0].set_stale(true);
        assert!(
            !e.holds(PathSource::Peer(0), 0, &a),
            "refreshing a stale path is a change"
        );
        assert!(!e.upsert(PathSource::Peer(0), 0, a), "a replacement");
        assert!(!e.paths()[0].stale());
        assert_eq!(e.remove(PathSource::Peer(2), |_| true), 1);
        assert_eq!(e.remove(PathSource::Peer(1), |_| true), 1);
        assert_eq!(e.paths().len(), 1);
        assert_eq!(e.remove(PathSource::Peer(0), |_| true), 1);
        assert!(e.is_empty());
    }

    #[test]
    fn shards_get_growing_shares() {
        let s: Shards<u64> = Shards::new();
        let mut counts = [0usize; SHARDS];
        for i in 0..200_000u64 {
            counts[s.shard(i << 8 | 24)] += 1;
        }
        let (first, last) = (counts[0] as f64, counts[SHARDS - 1] as f64);
        assert!(
            (1.7..2.3).contains(&(last / first)),
            "the last shard gets about twice the first: {counts:?}"
        );
    }

    #[test]
    fn layout_is_compact() {
        assert_eq!(size_of::<Path>(), 24);
        assert_eq!(size_of::<Entry>(), 24);
    }

    #[test]
    fn keys_round_trip_and_lookups() {
        let mut t = Table::new();
        let keys: Vec<(Family, IpNet)> = [
            (Family::IPV4_UNICAST, "198.18.0.0/15"),
            (Family::IPV4_UNICAST, "198.18.1.0/26"),
            (Family::IPV4_UNICAST, "0.0.0.0/0"),
            (
                Family {
                    afi: Afi::IPV4,
                    safi: Safi::MULTICAST,
                },
                "198.18.1.0/26",
            ),
            (Family::IPV6_UNICAST, "2001:db8::/32"),
            (Family::IPV6_UNICAST, "2001:db8:1::40/122"),
        ]
        .into_iter()
        .map(|(f, n)| (f, n.parse().unwrap()))
        .collect();
        let a = Arc::new(AttrSet::local());
        for k in &keys {
            t.entry(k).upsert(PathSource::Local, 0, a.clone());
        }
        assert_eq!(t.len(), keys.len());
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(t.sorted_keys(), sorted);
        assert_eq!(
            t.longest_match("198.18.1.5".parse().unwrap()),
            Some(keys[1]),
            "unicast wins over multicast at one length"
        );
        assert_eq!(
            t.longest_match("198.19.0.1".parse().unwrap()),
            Some(keys[0])
        );
        assert_eq!(t.longest_match("192.0.2.1".parse().unwrap()), Some(keys[2]));
        assert_eq!(
            t.longest_match("2001:db8:1::41".parse().unwrap()),
            Some(keys[5])
        );
        assert_eq!(t.longest_match("2001:db9::1".parse().unwrap()), None);
        t.remove(&keys[1]);
        assert!(!t.contains_key(&keys[1]));
        assert!(t.contains_key(&keys[3]));
        assert_eq!(t.len(), keys.len() - 1);
    }
}
