//! The subject table: a trie of subject tokens behind one `RwLock`, with an atomic generation.
//!
//! Shape (as nats-server's `level`/`node`): a level maps literal tokens to child nodes and has
//! two dedicated children for `*` and `>`. A node holds the subscriptions whose subject ends at
//! it (plain ones, and queue ones grouped by queue name) and the next level.
//!
//! Matching a literal subject walks the levels token by token; at each level the `>` child
//! matches everything left, the `*` child continues with the next token, and the literal child
//! named by the token continues. Branches are kept on an explicit stack, and every walk here is
//! a loop, so a subject with thousands of tokens cannot overflow the thread's stack (dropping the
//! trie is iterative too, see `Drop for Level`).
//!
//! Invariants:
//! - no node is empty (no subscriptions and no children) after an operation returns: `remove`
//!   prunes the nodes it emptied;
//! - `count` is the number of (subject, queue, handle) entries in the trie;
//! - `generation` is bumped, while the write lock is still held, by every operation that changed
//!   the trie. So a generation read under the read lock names exactly the state that lock sees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use super::subject::TokenKind;
use super::subject::{has_empty_token, split_first_token, token_kind, valid_subscribe_subject};
use super::subset::SubSet;
use super::{InvalidSubject, MatchResult, QueueGroup, SubHandle};

/// One level of the trie: the children for the token at one position. Most nodes are leaves,
/// so an empty level allocates nothing (one pointer in the node).
#[derive(Debug, Default)]
struct Level {
    /// Some exactly when the level has at least one child.
    children: Option<Box<Children>>,
}

#[derive(Debug, Default)]
struct Children {
    /// Children for literal tokens, found by the token each holds (`Node::token`); never a `*`
    /// or `>` one. A bucket is one pointer: a level with a million children (a million distinct
    /// subjects under one prefix) spends 9 bytes a bucket, not the 25 of a (key, node) map.
    literals: HashTable<Box<Node>>,
    /// Child for the `*` token.
    wildcard_one: Option<Box<Node>>,
    /// Child for the `>` token (its own next level is always empty).
    wildcard_rest: Option<Box<Node>>,
}

impl Children {
    fn literal(&self, token: &[u8]) -> Option<&Node> {
        self.literals
            .find(token_hash(token), |node| *node.token == *token)
            .map(|node| &**node)
    }

    fn count(&self) -> usize {
        self.literals.len()
            + usize::from(self.wildcard_one.is_some())
            + usize::from(self.wildcard_rest.is_some())
    }
}

/// Subscriptions ending at one token position, and the level below. 48 bytes: the leaf of a
/// subject with one plain subscriber is this one allocation and its token's.
#[derive(Debug, Default)]
struct Node {
    /// The literal token leading here from the parent level; empty for a `*` or `>` child.
    token: Box<[u8]>,
    next: Level,
    plain: SubSet,
    /// `None` rather than an empty list: most nodes have no queue group, and pay one pointer.
    queues: Option<Box<Queues>>,
}

const _: () = assert!(
    std::mem::size_of::<Node>() == 48,
    "a leaf stays one 48-byte block"
);

/// One entry per queue name with members at a node; never an entry with no members. Searched by
/// name: a subject rarely has more than a handful of queue names.
#[derive(Debug, Default)]
struct Queues {
    groups: Vec<QueueSubs>,
}

/// Tokens are client-chosen: keyed hashing (see `crate::hash`).
fn token_hash(token: &[u8]) -> u64 {
    crate::hash::hash_bytes(token)
}

#[derive(Debug)]
struct QueueSubs {
    name: Box<[u8]>,
    members: SubSet,
}

impl Level {
    fn child_count(&self) -> usize {
        self.children.as_deref().map_or(0, Children::count)
    }

    fn is_empty(&self) -> bool {
        self.children.is_none()
    }

    /// The child a subscription token leads to (`*` and `>` are wildcards here).
    fn child(&self, token: &[u8]) -> Option<&Node> {
        let children = self.children.as_deref()?;
        match token_kind(token) {
            TokenKind::Literal => children.literal(token),
            TokenKind::WildcardOne => children.wildcard_one.as_deref(),
            TokenKind::WildcardRest => children.wildcard_rest.as_deref(),
        }
    }

    fn child_mut(&mut self, token: &[u8]) -> Option<&mut Node> {
        let children = self.children.as_deref_mut()?;
        match token_kind(token) {
            TokenKind::Literal => children
                .literals
                .find_mut(token_hash(token), |node| *node.token == *token),
            TokenKind::WildcardOne => children.wildcard_one.as_mut(),
            TokenKind::WildcardRest => children.wildcard_rest.as_mut(),
        }
        .map(|node| &mut **node)
    }

    fn child_or_insert(&mut self, token: &[u8]) -> &mut Node {
        let children = self.children.get_or_insert_with(Box::default);
        match token_kind(token) {
            TokenKind::Literal => children
                .literals
                .entry(
                    token_hash(token),
                    |node| *node.token == *token,
                    |node| token_hash(&node.token),
                )
                .or_insert_with(|| {
                    Box::new(Node {
                        token: token.into(),
                        ..Node::default()
                    })
                })
                .into_mut(),
            TokenKind::WildcardOne => children.wildcard_one.get_or_insert_with(Box::default),
            TokenKind::WildcardRest => children.wildcard_rest.get_or_insert_with(Box::default),
        }
    }

    fn remove_child(&mut self, token: &[u8]) -> Option<Box<Node>> {
        let children = self.children.as_deref_mut()?;
        let removed = match token_kind(token) {
            TokenKind::Literal => {
                let removed = children
                    .literals
                    .find_entry(token_hash(token), |node| *node.token == *token)
                    .ok()
                    .map(|entry| entry.remove().0);
                // A level that held a million children and lost most keeps no buckets for them.
                if children.literals.len() < children.literals.capacity() / 4 {
                    children
                        .literals
                        .shrink_to_fit(|node| token_hash(&node.token));
                }
                removed
            }
            TokenKind::WildcardOne => children.wildcard_one.take(),
            TokenKind::WildcardRest => children.wildcard_rest.take(),
        };
        if children.count() == 0 {
            self.children = None;
        }
        removed
    }

    /// Moves every child out (used by the iterative drop), still boxed: a level with a million
    /// children then needs a list of pointers, not a 48 MB copy of the nodes.
    #[allow(
        clippy::vec_box,
        reason = "the nodes stay where they are; only pointers move"
    )]
    fn take_children(&mut self, into: &mut Vec<Box<Node>>) {
        let Some(mut children) = self.children.take() else {
            return;
        };
        into.extend(children.literals.drain());
        into.extend(children.wildcard_one.take());
        into.extend(children.wildcard_rest.take());
    }
}

impl Drop for Level {
    /// Drops the subtree with an explicit stack instead of recursion: a subscription subject
    /// with many tokens is a chain of that many nodes.
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.next.take_children(&mut pending);
            // `node` drops here with an empty next level: no recursion.
        }
    }
}

impl Node {
    fn has_subscriptions(&self) -> bool {
        !self.plain.is_empty() || self.queues.is_some()
    }

    fn is_empty(&self) -> bool {
        !self.has_subscriptions() && self.next.is_empty()
    }

    fn add(&mut self, queue: Option<&[u8]>, handle: SubHandle) -> bool {
        let Some(name) = queue else {
            return self.plain.insert(handle);
        };
        let queues = &mut self.queues.get_or_insert_with(Box::default).groups;
        match queues.iter_mut().find(|group| *group.name == *name) {
            Some(group) => group.members.insert(handle),
            None => {
                let mut members = SubSet::default();
                members.insert(handle);
                queues.push(QueueSubs {
                    name: name.into(),
                    members,
                });
                true
            }
        }
    }

    fn remove(&mut self, queue: Option<&[u8]>, handle: SubHandle) -> bool {
        let Some(name) = queue else {
            return self.plain.remove(handle);
        };
        let Some(queues) = self.queues.as_deref_mut().map(|queues| &mut queues.groups) else {
            return false;
        };
        let Some(index) = queues.iter().position(|group| *group.name == *name) else {
            return false;
        };
        let removed = queues[index].members.remove(handle);
        if queues[index].members.is_empty() {
            queues.swap_remove(index);
            if queues.is_empty() {
                self.queues = None;
            }
        }
        removed
    }

    /// Adds this node's subscriptions to `result`. Queue members join the result's group of the
    /// same name, whichever node it came from (nats-server `addNodeToResults` + `findQSlot`).
    fn collect_into(&self, result: &mut MatchResult) {
        result.plain.extend_from_slice(self.plain.as_slice());
        for group in self.queues.iter().flat_map(|queues| &queues.groups) {
            let members = group.members.as_slice();
            match result
                .queues
                .iter_mut()
                .find(|existing| *existing.name == *group.name)
            {
                Some(existing) => existing.members.extend_from_slice(members),
                None => result.queues.push(QueueGroup {
                    name: group.name.clone(),
                    members: members.to_vec(),
                }),
            }
        }
    }
}

/// The trie and its subscription counts: what the lock protects.
#[derive(Debug, Default)]
struct Trie {
    root: Level,
    count: usize,
    /// Entries ever added (an insert of one already present adds nothing and is not counted).
    inserts: u64,
    /// Entries ever removed.
    removes: u64,
}

impl Trie {
    /// Inserts; false (no change) when exactly this entry is already present.
    /// The subject must be a valid subscribe subject.
    fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>, handle: SubHandle) -> bool {
        debug_assert!(valid_subscribe_subject(subject));
        let mut level = &mut self.root;
        let mut rest = subject;
        loop {
            let (token, after) = split_first_token(rest);
            let node = level.child_or_insert(token);
            match after {
                Some(after) => {
                    level = &mut node.next;
                    rest = after;
                }
                None => {
                    let added = node.add(queue, handle);
                    self.count += usize::from(added);
                    self.inserts += u64::from(added);
                    return added;
                }
            }
        }
    }

    /// Removes exactly this entry and prunes the nodes left empty; false when it was absent.
    fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, handle: SubHandle) -> bool {
        if !valid_subscribe_subject(subject) {
            return false;
        }
        // Walk down to the leaf and remove the handle there.
        let mut level = &mut self.root;
        let mut rest = subject;
        let leaf_now_empty = loop {
            let (token, after) = split_first_token(rest);
            let Some(node) = level.child_mut(token) else {
                return false;
            };
            match after {
                Some(after) => {
                    level = &mut node.next;
                    rest = after;
                }
                None => {
                    if !node.remove(queue, handle) {
                        return false;
                    }
                    break node.is_empty();
                }
            }
        };
        self.count -= 1;
        self.removes += 1;
        if leaf_now_empty {
            self.prune(subject);
        }
        true
    }

    /// Removes the empty leaf at the end of `subject`'s path together with every ancestor that
    /// only existed to lead to it: the topmost node of the path's tail in which each node has no
    /// subscriptions and one child (the next node of the path).
    fn prune(&mut self, subject: &[u8]) {
        // Find the depth of the topmost node to cut, walking down read-only.
        let mut cut_depth: Option<usize> = None;
        let mut level = &self.root;
        let mut rest = subject;
        let mut depth = 0;
        loop {
            let (token, after) = split_first_token(rest);
            let node = level.child(token).expect("the removal walked this path");
            let Some(after) = after else { break };
            if node.has_subscriptions() || node.next.child_count() != 1 {
                cut_depth = None;
            } else if cut_depth.is_none() {
                cut_depth = Some(depth);
            }
            level = &node.next;
            rest = after;
            depth += 1;
        }
        let cut_depth = cut_depth.unwrap_or(depth);
        // Walk down again to the level holding that node, and cut it off.
        let mut level = &mut self.root;
        let mut rest = subject;
        for _ in 0..cut_depth {
            let (token, after) = split_first_token(rest);
            let node = level
                .child_mut(token)
                .expect("the removal walked this path");
            level = &mut node.next;
            rest = after.expect("cut_depth is within the subject");
        }
        let (token, _) = split_first_token(rest);
        let removed = level.remove_child(token);
        debug_assert!(removed.is_some(), "pruned node existed");
    }

    /// Every subscription matching the literal `subject`, plain ones sorted by shard.
    fn match_subject(&self, subject: &[u8]) -> MatchResult {
        let mut result = MatchResult::default();
        if has_empty_token(subject) {
            return result;
        }
        // Branches still to walk: (level, the part of the subject still to match there).
        let mut pending: Vec<(&Level, &[u8])> = Vec::new();
        let mut next = Some((&self.root, subject));
        while let Some((mut level, mut rest)) = next.take().or_else(|| pending.pop()) {
            loop {
                let (token, after) = split_first_token(rest);
                let Some(children) = level.children.as_deref() else {
                    break;
                };
                if let Some(node) = &children.wildcard_rest {
                    node.collect_into(&mut result);
                }
                if let Some(node) = &children.wildcard_one {
                    match after {
                        None => node.collect_into(&mut result),
                        Some(after) if !node.next.is_empty() => pending.push((&node.next, after)),
                        Some(_) => {}
                    }
                }
                // A published token is always literal text: `*` or `>` in a published subject
                // is matched only by wildcards, never looked up as a wildcard child.
                let Some(node) = children.literal(token) else {
                    break;
                };
                match after {
                    None => {
                        node.collect_into(&mut result);
                        break;
                    }
                    Some(after) => {
                        level = &node.next;
                        rest = after;
                    }
                }
            }
        }
        // Stable: subscribers of one shard keep the order the trie gave them.
        result.plain.sort_by_key(|handle| handle.shard);
        result
    }
}

/// The subject table of one account: every subscription, for matching published subjects.
///
/// `Send + Sync`: shards match against it concurrently and write it on SUB/UNSUB. The hot path
/// does not come here: each shard's [`super::MatchCache`] answers repeated subjects and only
/// reads [`Sublist::generation`].
#[derive(Default)]
pub struct Sublist {
    trie: RwLock<Trie>,
    /// Bumped under the write lock by every change. Starts at 0.
    generation: AtomicU64,
}

impl Sublist {
    pub fn new() -> Sublist {
        Sublist::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Trie> {
        // Every mutation keeps the trie consistent before anything that could panic, so a
        // poisoned lock still guards a usable trie.
        self.trie.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Trie> {
        self.trie.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscription. Err(InvalidSubject) exactly when nats-server's `Sublist.Insert`
    /// refuses the subject (see [`super::valid_subscribe_subject`]); the caller answers
    /// `-ERR 'Invalid Subject'`. Inserting an entry that is already present changes nothing.
    pub fn insert(
        &self,
        subject: &[u8],
        queue: Option<&[u8]>,
        handle: SubHandle,
    ) -> Result<(), InvalidSubject> {
        if !valid_subscribe_subject(subject) {
            return Err(InvalidSubject);
        }
        let mut trie = self.write();
        if trie.insert(subject, queue, handle) {
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Removes that exact (subject, queue, handle); returns whether it was there. Prunes the
    /// nodes it leaves empty.
    pub fn remove(&self, subject: &[u8], queue: Option<&[u8]>, handle: SubHandle) -> bool {
        let mut trie = self.write();
        let removed = trie.remove(subject, queue, handle);
        if removed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// Removes many subscriptions under one write lock with one generation bump (a closing
    /// connection's subscriptions). Returns how many were there.
    pub fn remove_many<'a, I>(&self, subscriptions: I) -> usize
    where
        I: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>, SubHandle)>,
    {
        let mut trie = self.write();
        let removed = subscriptions
            .into_iter()
            .filter(|&(subject, queue, handle)| trie.remove(subject, queue, handle))
            .count();
        if removed > 0 {
            self.generation.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// Full match of the literal `subject` from the trie, under the read lock. A subject with an
    /// empty token (or the empty subject) matches nothing, as in nats-server.
    pub fn match_subject(&self, subject: &[u8]) -> MatchResult {
        self.read().match_subject(subject)
    }

    /// [`Sublist::match_subject`] and the generation of the table state it was computed from
    /// (read under the same lock, so exact). What a cache must tag the result with.
    pub fn match_with_generation(&self, subject: &[u8]) -> (MatchResult, u64) {
        let trie = self.read();
        let result = trie.match_subject(subject);
        (result, self.generation.load(Ordering::Acquire))
    }

    /// Bumped by every insert/remove that changed the table; lock-free (an acquire load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Subscriptions in the table.
    pub fn count(&self) -> usize {
        self.read().count
    }

    /// Subscriptions in the table, and how many were ever inserted and removed, read together
    /// (for monitoring: nats-server's `SublistStats` `num_subscriptions`, `num_inserts`,
    /// `num_removes`).
    pub fn counts(&self) -> (usize, u64, u64) {
        let trie = self.read();
        (trie.count, trie.inserts, trie.removes)
    }
}

impl std::fmt::Debug for Sublist {
    /// The counts only: the trie may hold millions of nodes.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sublist")
            .field("count", &self.count())
            .field("generation", &self.generation())
            .finish()
    }
}

#[cfg(test)]
impl Sublist {
    /// Nodes in the trie, for pruning tests.
    pub(crate) fn node_count(&self) -> usize {
        let trie = self.read();
        let mut count = 0;
        let mut pending: Vec<&Level> = vec![&trie.root];
        while let Some(level) = pending.pop() {
            let Some(level) = level.children.as_deref() else {
                continue;
            };
            let children = level
                .literals
                .iter()
                .chain(level.wildcard_one.iter())
                .chain(level.wildcard_rest.iter());
            for node in children {
                assert!(!node.is_empty(), "no empty node survives an operation");
                count += 1;
                pending.push(&node.next);
            }
        }
        count
    }
}
