//! A map from prefixes to values, for tables of a million routes: prefixes are keyed by
//! integers per address family, in hash maps split into shards, so that one lookup is a hash
//! and a probe, and growing the map never copies (or holds twice) more than one shard.
//! The RIB's table and the FIB's record of the kernel are both one.

use std::collections::BinaryHeap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::wire::{Afi, Family, Safi};

/// Keys are prefixes peers chose: the maps' hasher is seeded per process.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An integer key for a prefix of one address family.
trait Key: Copy + Ord + Hash {
    fn prefix(self) -> Option<(Family, IpNet)>;
    /// A hash for choosing the shard (independent of the bits the map's own hash uses).
    fn spread(self) -> u64;
    /// The key's place in prefix order within its address family: SAFI, address, length,
    /// as `(Family, IpNet)` sorts.
    fn order(self) -> Self::Order;
    type Order: Ord + Copy;
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

    type Order = u64;

    /// The key's bits are already SAFI, address, length.
    fn order(self) -> u64 {
        self
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

    type Order = (u16, u128, u16);

    fn order(self) -> (u16, u128, u16) {
        (self.1 >> 8, self.0, self.1 & 0xff)
    }
}

/// One family's prefixes in `SHARDS` hash maps. Shard `i` gets a share of the keys
/// proportional to `2^(i/SHARDS)`: the shards cross their growth thresholds at sizes spread
/// over an octave, so the average load stays near the mean of hashbrown's range (7/16 to
/// 7/8) whatever the size, instead of all shards doubling at once.
#[derive(Debug)]
struct Shards<K, V> {
    maps: Vec<Map<K, V>>,
    /// `bounds[i]`: the largest spread hash that goes to shard `i`.
    bounds: Vec<u64>,
    /// Per value of a spread hash's top 8 bits, the first shard such hashes can go to: the
    /// shard is then at most one step on (every shard spans more than 1/256 of the hashes),
    /// instead of a binary search of `bounds` for every lookup.
    first: [u8; 256],
}

impl<K: Key, V> Shards<K, V> {
    fn new() -> Shards<K, V> {
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
        let first = std::array::from_fn(|top| {
            let h = (top as u64) << 56;
            bounds.partition_point(|b| *b < h).min(SHARDS - 1) as u8
        });
        Shards {
            maps: (0..SHARDS).map(|_| Map::default()).collect(),
            bounds,
            first,
        }
    }

    fn shard(&self, k: K) -> usize {
        self.shard_of(k.spread())
    }

    /// The first shard whose bound is at least spread hash `h`.
    fn shard_of(&self, h: u64) -> usize {
        let mut i = usize::from(self.first[(h >> 56) as usize]);
        while i < SHARDS - 1 && self.bounds[i] < h {
            i += 1;
        }
        i
    }

    fn map(&self, k: K) -> &Map<K, V> {
        &self.maps[self.shard(k)]
    }

    fn map_mut(&mut self, k: K) -> &mut Map<K, V> {
        let i = self.shard(k);
        &mut self.maps[i]
    }

    fn len(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }

    /// Slots allocated (each a key, a value and a control byte).
    fn capacity(&self) -> usize {
        self.maps.iter().map(|m| m.capacity()).sum()
    }

    fn part_keys(&self, i: usize) -> Vec<(Family, IpNet)> {
        self.maps
            .get(i)
            .map(|m| m.keys().filter_map(|k| k.prefix()).collect())
            .unwrap_or_default()
    }

    /// The `n` first keys in prefix order after `after`, in order: one pass over every key,
    /// keeping the `n` smallest in a heap.
    fn first_after(&self, after: Option<K::Order>, n: usize) -> Vec<(Family, IpNet)> {
        let mut heap: BinaryHeap<(K::Order, K)> = BinaryHeap::with_capacity(n);
        if n == 0 {
            return Vec::new();
        }
        for k in self.maps.iter().flat_map(|m| m.keys()) {
            let o = k.order();
            if after.is_some_and(|a| o <= a) {
                continue;
            }
            if heap.len() < n {
                heap.push((o, *k));
            } else if let Some(mut top) = heap.peek_mut()
                && o < top.0
            {
                *top = (o, *k);
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .filter_map(|(_, k)| k.prefix())
            .collect()
    }

    fn iter(&self) -> impl Iterator<Item = ((Family, IpNet), &V)> {
        self.maps
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.prefix()?, v)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = ((Family, IpNet), &mut V)> {
        self.maps
            .iter_mut()
            .flatten()
            .filter_map(|(k, v)| Some((k.prefix()?, v)))
    }
}

/// `PrefixMap::part_keys` splits the map into this many parts.
pub const PARTS: usize = 2 * SHARDS;

/// Every prefix of every family, with a value each.
#[derive(Debug)]
pub struct PrefixMap<V> {
    v4: Shards<u64, V>,
    v6: Shards<(u128, u16), V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> PrefixMap<V> {
        PrefixMap::new()
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

impl<V> PrefixMap<V> {
    pub fn new() -> PrefixMap<V> {
        PrefixMap {
            v4: Shards::new(),
            v6: Shards::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the slots allocated, not counting what values hold elsewhere.
    pub fn bytes(&self) -> usize {
        let slot = |key: usize| key + size_of::<V>() + 1;
        self.v4.capacity() * slot(size_of::<u64>())
            + self.v6.capacity() * slot(size_of::<(u128, u16)>())
    }

    pub fn get(&self, key: &(Family, IpNet)) -> Option<&V> {
        with_map!(self.map, key, |m, k| m.get(&k))
    }

    pub fn get_mut(&mut self, key: &(Family, IpNet)) -> Option<&mut V> {
        with_map!(self.map_mut, key, |m, k| m.get_mut(&k))
    }

    pub fn contains_key(&self, key: &(Family, IpNet)) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: &(Family, IpNet), value: V) -> Option<V> {
        with_map!(self.map_mut, key, |m, k| m.insert(k, value))
    }

    /// Removes a prefix; a shard left mostly empty gives its memory back (`shrink_sparse`).
    pub fn remove(&mut self, key: &(Family, IpNet)) -> Option<V> {
        with_map!(self.map_mut, key, |m, k| {
            let v = m.remove(&k);
            shrink_sparse(m, 64);
            v
        })
    }

    /// The value for a prefix, created by `default` if missing.
    pub fn entry_or_default(&mut self, key: &(Family, IpNet)) -> &mut V
    where
        V: Default,
    {
        self.entry(key).0
    }

    /// The value for a prefix, created by `default` if missing, and whether it was.
    pub fn entry(&mut self, key: &(Family, IpNet)) -> (&mut V, bool)
    where
        V: Default,
    {
        use std::collections::hash_map::Entry;
        with_map!(self.map_mut, key, |m, k| match m.entry(k) {
            Entry::Occupied(o) => (o.into_mut(), false),
            Entry::Vacant(v) => (v.insert(V::default()), true),
        })
    }

    /// Every prefix and its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ((Family, IpNet), &V)> {
        self.v4.iter().chain(self.v6.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = ((Family, IpNet), &mut V)> {
        self.v4.iter_mut().chain(self.v6.iter_mut())
    }

    pub fn keys(&self) -> impl Iterator<Item = (Family, IpNet)> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The `n` first prefixes after `after` (from the first when `None`) in the order
    /// `(Family, IpNet)` sorts: for walking the map in order a chunk at a time while it
    /// changes, each chunk one pass over the keys and no copy of them all.
    pub fn first_after(&self, after: Option<&(Family, IpNet)>, n: usize) -> Vec<(Family, IpNet)> {
        let mut out: Vec<(Family, IpNet)> = Vec::with_capacity(n);
        let v6_after = match after {
            Some((f, IpNet::V6(net))) => Some(v6_key(f.safi, net).order()),
            Some((f, IpNet::V4(net))) => {
                out.extend(self.v4.first_after(Some(v4_key(f.safi, net)), n));
                None
            }
            None => {
                out.extend(self.v4.first_after(None, n));
                None
            }
        };
        // IPv6 sorts after every IPv4 prefix.
        let left = n - out.len();
        out.extend(self.v6.first_after(v6_after, left));
        out
    }

    /// The prefixes of part `i` of `PARTS` (one shard), for walking a large map a part at a
    /// time while it changes.
    pub fn part_keys(&self, i: usize) -> Vec<(Family, IpNet)> {
        if i < SHARDS {
            self.v4.part_keys(i)
        } else {
            self.v6.part_keys(i - SHARDS)
        }
    }
}

/// Shrinks a map of more than `floor` slots that is under a quarter full to twice what it
/// holds (at least `floor`), so that a table emptied (a full-table peer gone) returns its
/// memory, and one that refills does not reallocate at once. A shrink copies what is left,
/// after three quarters of the slots were emptied: the cost per removal stays constant.
pub fn shrink_sparse<K: Eq + Hash, V, S: std::hash::BuildHasher>(
    m: &mut std::collections::HashMap<K, V, S>,
    floor: usize,
) {
    if m.capacity() > floor && m.len() < m.capacity() / 4 {
        m.shrink_to((m.len() * 2).max(floor));
    }
}

/// Prefixes of every kind a map holds: IPv4 unicast (a default route among them), IPv4
/// multicast sharing an address and length with a unicast one, IPv6.
#[cfg(test)]
pub(crate) fn sample_keys() -> Vec<(Family, IpNet)> {
    [
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
    .filter_map(|(f, n)| Some((f, n.parse().ok()?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_get_growing_shares() {
        let s: Shards<u64, ()> = Shards::new();
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

    /// The shard found from the top bits is the one a binary search of the bounds finds.
    #[test]
    fn shard_is_the_first_bound_at_or_above_the_hash() {
        let s: Shards<u64, ()> = Shards::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let bounds = s
            .bounds
            .iter()
            .flat_map(|b| [b.wrapping_sub(1), *b, b.wrapping_add(1)]);
        let random = (0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        });
        for h in bounds.chain(random).chain([0, u64::MAX]) {
            let want = s.bounds.partition_point(|b| *b < h).min(SHARDS - 1);
            assert_eq!(s.shard_of(h), want, "hash {h:#x}");
            assert!(want - usize::from(s.first[(h >> 56) as usize]) <= 1);
        }
    }

    #[test]
    fn keys_round_trip() {
        let mut m = PrefixMap::new();
        let keys = sample_keys();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.insert(k, i), None);
        }
        assert_eq!(m.len(), keys.len());
        let mut back: Vec<_> = m.iter().map(|(k, v)| (*v, k)).collect();
        back.sort();
        assert_eq!(back.into_iter().map(|(_, k)| k).collect::<Vec<_>>(), keys);
        for k in keys.iter().filter(|k| k.0.afi == Afi::IPV4) {
            assert!(m.remove(k).is_some());
        }
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(&keys[4]), Some(4));
        assert!(!m.contains_key(&keys[4]));
        assert!(m.bytes() > 0);
        let mut parts: Vec<_> = (0..PARTS).flat_map(|i| m.part_keys(i)).collect();
        parts.sort();
        assert_eq!(parts, vec![keys[5]], "every part walked: the map");
    }

    #[test]
    fn emptied_map_gives_its_memory_back() {
        let mut m = PrefixMap::new();
        let key = |i: u32| {
            let net = Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + i), 32).unwrap();
            (Family::IPV4_UNICAST, IpNet::V4(net))
        };
        for i in 0..100_000 {
            m.insert(&key(i), i);
        }
        let full = m.bytes();
        for i in 10..100_000 {
            m.remove(&key(i));
        }
        assert_eq!(m.len(), 10);
        assert!(
            m.bytes() < full / 10,
            "{} bytes of {full} left for 10 prefixes (a few slots a shard)",
            m.bytes()
        );
    }

    #[test]
    fn walks_in_order_a_chunk_at_a_time() {
        let mut m = PrefixMap::new();
        let mut keys = sample_keys();
        // More IPv6 multicast and IPv4 prefixes sharing an address with others.
        keys.push((
            Family {
                afi: Afi::IPV6,
                safi: Safi::MULTICAST,
            },
            "2001:db8::/32".parse().unwrap(),
        ));
        keys.push((Family::IPV4_UNICAST, "198.18.0.0/16".parse().unwrap()));
        for k in &keys {
            m.insert(k, ());
        }
        keys.sort();
        for n in 1..=keys.len() + 1 {
            let mut walked: Vec<(Family, IpNet)> = Vec::new();
            let mut after = None;
            loop {
                let chunk = m.first_after(after.as_ref(), n);
                walked.extend(&chunk);
                after = chunk.last().copied();
                if chunk.len() < n {
                    break;
                }
            }
            assert_eq!(walked, keys, "chunks of {n}");
        }
        assert_eq!(m.first_after(keys.last(), 3), Vec::new());
    }
}
