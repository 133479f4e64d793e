//! The set of subscription handles held by one trie leaf (its plain subscribers, or one queue
//! group's members at that leaf).
//!
//! Most leaves hold one or a few handles (a million subscriptions on distinct subjects), some hold
//! thousands (a thousand subscribers on one subject). So the handles live in a dense `Vec` that a
//! match copies out in one `extend`, and only a large set also keeps a handle -> position index
//! for O(1) removal (`swap_remove`, then fix the index of the handle that moved). A small set
//! finds a handle by a linear scan of at most `INDEX_BUILD_LEN` entries, which costs less than
//! hashing would, and costs no memory beyond the `Vec`.
//!
//! A set of zero or one handle (the leaf of a subject with one subscriber) is stored inline in
//! the node, with no allocation; the `Vec` and index above belong to sets of two or more.
//!
//! Invariants: no handle appears twice; when `positions` is `Some`, it maps every member to its
//! position in `members` and nothing else; a `LargeSet` in a `SubSet` has two or more members.

use rustc_hash::FxHashMap;

use super::SubHandle;

/// A set grows an index when it gets longer than this.
const INDEX_BUILD_LEN: usize = 32;
/// An indexed set drops its index when it gets this short (below the build length, so a set
/// hovering around the threshold does not rebuild the index on every insert).
const INDEX_DROP_LEN: usize = 8;
/// Capacity kept at most when a set is at a quarter of its capacity or less: a subject that
/// once had a thousand subscribers does not pin their memory forever.
const IDLE_CAPACITY_MAX: usize = 64;

/// The set: no allocation for zero or one handle (the common leaf), a `LargeSet` otherwise.
/// 16 bytes in the trie node.
#[derive(Debug, Default)]
pub(crate) enum SubSet {
    /// Exactly when the set is empty.
    #[default]
    Empty,
    One(SubHandle),
    /// Exactly when the set has two or more members.
    Many(Box<LargeSet>),
}

impl SubSet {
    pub(crate) fn as_slice(&self) -> &[SubHandle] {
        match self {
            SubSet::Empty => &[],
            SubSet::One(handle) => std::slice::from_ref(handle),
            SubSet::Many(set) => set.as_slice(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, SubSet::Empty)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Adds `handle`; false (and no change) when it is already a member.
    pub(crate) fn insert(&mut self, handle: SubHandle) -> bool {
        match self {
            SubSet::Empty => *self = SubSet::One(handle),
            SubSet::One(member) if *member == handle => return false,
            SubSet::One(member) => {
                let mut set = LargeSet::default();
                set.insert(*member);
                set.insert(handle);
                *self = SubSet::Many(Box::new(set));
            }
            SubSet::Many(set) => return set.insert(handle),
        }
        true
    }

    /// Removes `handle`; false when it was not a member.
    pub(crate) fn remove(&mut self, handle: SubHandle) -> bool {
        match self {
            SubSet::Empty => false,
            SubSet::One(member) if *member == handle => {
                *self = SubSet::Empty;
                true
            }
            SubSet::One(_) => false,
            SubSet::Many(set) => {
                let removed = set.remove(handle);
                if let [last] = set.as_slice() {
                    *self = SubSet::One(*last);
                }
                removed
            }
        }
    }
}

/// A set of two or more handles (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct LargeSet {
    /// The handles, in no particular order.
    members: Vec<SubHandle>,
    /// Position of each member in `members`; `Some` exactly when the set grew past
    /// `INDEX_BUILD_LEN` and has not since shrunk to `INDEX_DROP_LEN`.
    positions: Option<Box<FxHashMap<SubHandle, u32>>>,
}

impl LargeSet {
    fn as_slice(&self) -> &[SubHandle] {
        &self.members
    }

    fn position(&self, handle: SubHandle) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(&handle).map(|&position| position as usize),
            None => self.members.iter().position(|&member| member == handle),
        }
    }

    /// Adds `handle`; false (and no change) when it is already a member.
    pub(crate) fn insert(&mut self, handle: SubHandle) -> bool {
        if self.position(handle).is_some() {
            return false;
        }
        let position = self.members.len();
        self.members.push(handle);
        match &mut self.positions {
            Some(positions) => {
                positions.insert(handle, to_position(position));
            }
            None if self.members.len() > INDEX_BUILD_LEN => {
                let index = self
                    .members
                    .iter()
                    .enumerate()
                    .map(|(position, &member)| (member, to_position(position)))
                    .collect();
                self.positions = Some(Box::new(index));
            }
            None => {}
        }
        self.debug_check();
        true
    }

    /// Removes `handle`; false when it was not a member.
    pub(crate) fn remove(&mut self, handle: SubHandle) -> bool {
        let Some(position) = self.position(handle) else {
            return false;
        };
        self.members.swap_remove(position);
        if let Some(positions) = &mut self.positions {
            positions.remove(&handle);
            if let Some(&moved) = self.members.get(position) {
                positions.insert(moved, to_position(position));
            }
            if self.members.len() <= INDEX_DROP_LEN {
                self.positions = None;
            }
        }
        if self.members.capacity() > IDLE_CAPACITY_MAX
            && self.members.len() <= self.members.capacity() / 4
        {
            self.members.shrink_to(self.members.len() * 2);
        }
        self.debug_check();
        true
    }

    fn debug_check(&self) {
        if let Some(positions) = &self.positions {
            debug_assert_eq!(
                positions.len(),
                self.members.len(),
                "index covers every member"
            );
            debug_assert!(
                self.members.len() > INDEX_DROP_LEN,
                "index kept only for large sets"
            );
        }
    }
}

/// A position as stored in the index. A leaf never holds 2^32 subscriptions (they would not fit
/// in memory), so the conversion failing is a broken invariant.
fn to_position(position: usize) -> u32 {
    u32::try_from(position).expect("a leaf holds fewer than 2^32 subscriptions")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(slot: u32) -> SubHandle {
        SubHandle {
            shard: (slot % 3) as u16,
            slot,
            generation: 1,
        }
    }

    #[test]
    fn insert_remove_small_and_large() {
        let mut set = SubSet::default();
        for slot in 0..1000 {
            assert!(set.insert(handle(slot)));
            assert!(!set.insert(handle(slot)), "duplicate refused");
        }
        assert_eq!(set.len(), 1000);
        let SubSet::Many(large) = &set else {
            panic!("a thousand members make a large set")
        };
        assert!(large.positions.is_some());
        // Remove in an order that moves members around.
        for slot in (0..1000).step_by(2) {
            assert!(set.remove(handle(slot)));
            assert!(!set.remove(handle(slot)));
        }
        assert_eq!(set.len(), 500);
        let mut left: Vec<u32> = set.as_slice().iter().map(|member| member.slot).collect();
        left.sort_unstable();
        assert_eq!(left, (1..1000).step_by(2).collect::<Vec<_>>());
        for slot in (1..1000).step_by(2) {
            assert!(set.remove(handle(slot)), "slot {slot}");
        }
        assert!(set.is_empty());
        assert!(matches!(set, SubSet::Empty));
    }

    #[test]
    fn a_large_set_gives_memory_back_as_it_shrinks() {
        let mut set = SubSet::default();
        for slot in 0..1000 {
            set.insert(handle(slot));
        }
        for slot in 2..1000 {
            set.remove(handle(slot));
            if let SubSet::Many(large) = &set {
                assert!(
                    large.members.len() > 1,
                    "two or more members in a large set"
                );
                if large.members.len() <= INDEX_DROP_LEN {
                    assert!(large.positions.is_none());
                }
                if large.members.len() <= IDLE_CAPACITY_MAX / 4 {
                    assert!(large.members.capacity() <= IDLE_CAPACITY_MAX);
                }
            }
        }
        let mut left: Vec<u32> = set.as_slice().iter().map(|member| member.slot).collect();
        left.sort_unstable();
        assert_eq!(left, [0, 1]);
        assert!(matches!(set, SubSet::Many(_)));
        set.remove(handle(0));
        assert!(matches!(set, SubSet::One(member) if member == handle(1)));
    }

    #[test]
    fn generation_distinguishes_handles() {
        let mut set = SubSet::default();
        let old = handle(7);
        let new = SubHandle {
            generation: 2,
            ..old
        };
        assert!(set.insert(old));
        assert!(!set.remove(new));
        assert!(set.remove(old));
    }
}
