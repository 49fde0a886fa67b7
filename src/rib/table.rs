//! The table: for each prefix, every path to it (each peer's Adj-RIB-In and our own routes
//! in one place), ranked by the decision process.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use smallvec::SmallVec;

use super::attrs::AttrSet;
use crate::session::PeerId;
use crate::wire::Family;

/// Who a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSource {
    /// Originated by this node.
    Local,
    Peer(PeerId),
}

#[derive(Debug, Clone)]
pub struct Path {
    pub source: PathSource,
    /// The peer's add-path identifier (RFC 7911), 0 without add-path.
    pub rx_id: u32,
    /// Our identifier for it when we send several paths; stable while the path lives.
    pub tx_id: u32,
    pub attrs: Arc<AttrSet>,
    /// Kept from a session that went down under graceful restart (RFC 4724 §4.2).
    pub stale: bool,
}

/// All paths to one prefix.
/// Most prefixes have one path: it is stored inline, without a heap allocation.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub paths: SmallVec<[Path; 1]>,
    /// Indices into `paths`, best first, as the last decision ranked them.
    pub ranked: SmallVec<[u32; 2]>,
    /// How many of `ranked` share the best path's cost (ECMP).
    pub ecmp: usize,
    /// A digest of the best and equal-cost paths the kernel was last given.
    pub fib_digest: u64,
}

impl Entry {
    /// Adds or replaces a path; whether anything changed.
    pub fn upsert(&mut self, source: PathSource, rx_id: u32, attrs: Arc<AttrSet>) -> bool {
        if let Some(p) = self
            .paths
            .iter_mut()
            .find(|p| p.source == source && p.rx_id == rx_id)
        {
            if Arc::ptr_eq(&p.attrs, &attrs) && !p.stale {
                return false;
            }
            p.attrs = attrs;
            p.stale = false;
            return true;
        }
        let mut tx_id = 1;
        while self.paths.iter().any(|p| p.tx_id == tx_id) {
            tx_id += 1;
        }
        self.paths.push(Path {
            source,
            rx_id,
            tx_id,
            attrs,
            stale: false,
        });
        true
    }

    /// Removes the paths of `source` that `pick` selects; whether any went.
    pub fn remove(&mut self, source: PathSource, pick: impl Fn(&Path) -> bool) -> bool {
        let before = self.paths.len();
        self.paths.retain(|p| p.source != source || !pick(p));
        let removed = before != self.paths.len();
        if removed {
            // Indices moved: the next decision ranks again.
            self.ranked.clear();
            self.ecmp = 0;
        }
        removed
    }

    pub fn best(&self) -> Option<&Path> {
        self.ranked
            .first()
            .and_then(|i| self.paths.get(*i as usize))
    }

    /// The best path and those equal in cost to it.
    pub fn multipath(&self) -> impl Iterator<Item = &Path> {
        self.ranked
            .iter()
            .take(self.ecmp.max(1))
            .filter_map(|i| self.paths.get(*i as usize))
    }

    /// Identifies the multipath set (sources and attribute sets): when it changes, the
    /// kernel route must too.
    pub fn multipath_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in self.multipath() {
            (p.source, p.tx_id, Arc::as_ptr(&p.attrs) as usize).hash(&mut h);
        }
        h.finish()
    }
}

/// Every prefix of every family, ordered so that the prefixes inside a range are adjacent.
pub type Table = BTreeMap<(Family, IpNet), Entry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_and_remove_keep_ids_stable() {
        let a = Arc::new(AttrSet::local());
        let mut e = Entry::default();
        assert!(e.upsert(PathSource::Peer(0), 0, a.clone()));
        assert!(
            !e.upsert(PathSource::Peer(0), 0, a.clone()),
            "same attributes: no change"
        );
        assert!(e.upsert(PathSource::Peer(1), 0, a.clone()));
        assert!(e.upsert(PathSource::Peer(1), 7, a.clone()));
        let ids: Vec<u32> = e.paths.iter().map(|p| p.tx_id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(e.remove(PathSource::Peer(1), |p| p.rx_id == 0));
        assert!(e.upsert(PathSource::Peer(2), 0, a.clone()));
        let ids: Vec<u32> = e.paths.iter().map(|p| p.tx_id).collect();
        assert_eq!(ids, vec![1, 3, 2], "freed id reused, others untouched");
        e.paths[0].stale = true;
        assert!(
            e.upsert(PathSource::Peer(0), 0, a),
            "refreshing a stale path is a change"
        );
    }
}
