//! Per-peer state indexed by [`PeerId`]. The daemon's peer registry allocates the ids (the
//! next index, never one used before); every other table of per-peer state (the RIB's) only
//! puts a value at an id it was given and takes it out again.

use super::PeerId;

/// Values by peer id; a removed peer's slot stays empty, so its id is not used again while a
/// message tagged with it may still be on its way.
#[derive(Debug)]
pub struct PeerMap<T> {
    slots: Vec<Option<T>>,
}

impl<T> Default for PeerMap<T> {
    fn default() -> Self {
        PeerMap { slots: Vec::new() }
    }
}

impl<T> PeerMap<T> {
    /// Adds `v` under a new id: one past every id given so far.
    pub fn push(&mut self, v: T) -> PeerId {
        self.slots.push(Some(v));
        self.slots.len() - 1
    }

    /// Puts `v` at an id allocated elsewhere (by the registry's `push`), returning what was
    /// there.
    pub fn insert(&mut self, id: PeerId, v: T) -> Option<T> {
        if id >= self.slots.len() {
            self.slots.resize_with(id + 1, || None);
        }
        self.slots[id].replace(v)
    }

    /// Takes out a peer's value; its slot stays, empty.
    pub fn remove(&mut self, id: PeerId) -> Option<T> {
        self.slots.get_mut(id).and_then(Option::take)
    }

    pub fn get(&self, id: PeerId) -> Option<&T> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut T> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    /// The peers present, by id.
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, &T)> {
        (self.slots.iter().enumerate()).filter_map(|(id, v)| v.as_ref().map(|v| (id, v)))
    }

    /// The values present.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// One past the highest id given: the length of a list indexed by id.
    pub fn ids(&self) -> usize {
        self.slots.len()
    }

    /// Each id's value mapped by `f`, `None` for an empty slot: a list indexed by id.
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Vec<Option<U>> {
        self.slots.iter().map(|v| v.as_ref().map(&f)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused() {
        let mut m = PeerMap::default();
        assert_eq!((m.push("a"), m.push("b")), (0, 1));
        assert_eq!(m.remove(0), Some("a"));
        assert_eq!(m.remove(0), None);
        assert_eq!(m.push("c"), 2);
        assert_eq!(m.get(0), None);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(1, &"b"), (2, &"c")]);
        assert_eq!(m.map(|s| s.len()), vec![None, Some(1), Some(1)]);
        assert_eq!(m.ids(), 3);
    }

    #[test]
    fn insert_at_a_given_id() {
        let mut m = PeerMap::default();
        assert_eq!(m.insert(3, 'x'), None);
        assert_eq!((m.get(3), m.get(2), m.get(9)), (Some(&'x'), None, None));
        assert_eq!(m.insert(3, 'y'), Some('x'));
        if let Some(v) = m.get_mut(3) {
            *v = 'z';
        }
        assert_eq!(m.values().collect::<Vec<_>>(), vec![&'z']);
    }
}
