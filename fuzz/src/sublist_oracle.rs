//! `sublist_oracle`: the subject table against a list scanned token by token.
//!
//! The input is a program: each operation is one byte (the low 2 bits say which) followed by
//! the bytes it needs. Subjects are built from a tiny token alphabet so that subscriptions
//! overlap and wildcards matter:
//! - insert: a subscription subject of 1-4 tokens from `a b c * > ""` (so some are invalid:
//!   empty tokens, `>` not last), an optional queue `q1`/`q2`, a handle from 4 shards x 4 slots;
//! - remove: either an entry the oracle holds (picked by index) or an arbitrary one;
//! - match: a published subject of 1-4 tokens from `a b c ""` (an empty token matches nothing).
//!
//! Checked after every operation: insert accepts exactly the subjects the oracle finds valid
//! (at least one token, none empty, `>` only last); insert and remove report a change exactly
//! when the oracle changed, and the generation moves exactly then; `count` equals the oracle's
//! length; a match equals the oracle's (plain handles as a multiset, queue groups merged by
//! name across subjects, members as multisets), both from the table and through a
//! `MatchCache` that lives across the whole program.

use natsring::sublist::{MatchCache, MatchResult, SubHandle, Sublist};

use crate::Cursor;

/// Tokens of subscription subjects.
const SUBSCRIBE_TOKENS: [&[u8]; 6] = [b"a", b"b", b"c", b"*", b">", b""];
/// Tokens of published subjects (literal; the empty token makes the subject match nothing).
const PUBLISH_TOKENS: [&[u8]; 4] = [b"a", b"b", b"c", b""];
const QUEUES: [Option<&[u8]>; 3] = [None, Some(b"q1"), Some(b"q2")];
/// Operations per input, so a long input cannot make one run slow.
const OPERATIONS_MAX: usize = 256;

/// A match result in one order: plain handles sorted, then (queue name, sorted members) sorted
/// by name.
type Canonical = (Vec<SubHandle>, Vec<(Vec<u8>, Vec<SubHandle>)>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    subject: Vec<u8>,
    queue: Option<Vec<u8>>,
    handle: SubHandle,
}

/// Every subscription in a list; matching scans all of them.
#[derive(Debug, Default)]
struct Oracle {
    entries: Vec<Entry>,
}

/// Splits like Go's `strings.Split(subject, ".")`: `""` is one empty token.
fn split_tokens(subject: &[u8]) -> Vec<&[u8]> {
    subject.split(|&byte| byte == b'.').collect()
}

/// What `Sublist::insert` must accept: no empty token, `>` only as the last token.
fn valid_subscription(subject: &[u8]) -> bool {
    let tokens = split_tokens(subject);
    let last = tokens.len() - 1;
    tokens
        .iter()
        .enumerate()
        .all(|(index, token)| !token.is_empty() && (*token != b">" || index == last))
}

/// Does subscription `pattern` match published `subject`? `*` is one token, `>` one or more.
fn pattern_matches(pattern: &[u8], subject: &[u8]) -> bool {
    let published = split_tokens(subject);
    if published.iter().any(|token| token.is_empty()) {
        return false;
    }
    let wanted = split_tokens(pattern);
    for (index, token) in wanted.iter().enumerate() {
        match *token {
            b">" => return published.len() > index,
            b"*" if index < published.len() => {}
            literal if published.get(index) == Some(&literal) => {}
            _ => return false,
        }
    }
    wanted.len() == published.len()
}

impl Oracle {
    fn insert(&mut self, entry: Entry) -> bool {
        if self.entries.contains(&entry) {
            return false;
        }
        self.entries.push(entry);
        true
    }

    fn remove(&mut self, entry: &Entry) -> bool {
        match self.entries.iter().position(|held| held == entry) {
            Some(index) => {
                self.entries.swap_remove(index);
                true
            }
            None => false,
        }
    }

    /// Canonical result: plain sorted, groups sorted by name, members sorted.
    fn match_subject(&self, subject: &[u8]) -> Canonical {
        let mut plain = Vec::new();
        let mut groups: Vec<(Vec<u8>, Vec<SubHandle>)> = Vec::new();
        for entry in &self.entries {
            if !pattern_matches(&entry.subject, subject) {
                continue;
            }
            match &entry.queue {
                None => plain.push(entry.handle),
                Some(name) => match groups.iter_mut().find(|(group, _)| group == name) {
                    Some((_, members)) => members.push(entry.handle),
                    None => groups.push((name.clone(), vec![entry.handle])),
                },
            }
        }
        plain.sort_unstable();
        for (_, members) in &mut groups {
            members.sort_unstable();
        }
        groups.sort_unstable();
        (plain, groups)
    }
}

/// A table result in the oracle's canonical form; also checks the result's own promises.
fn canonical(result: &MatchResult) -> Canonical {
    let mut plain = result.plain.clone();
    plain.sort_unstable();
    let mut groups: Vec<(Vec<u8>, Vec<SubHandle>)> = result
        .queues
        .iter()
        .map(|group| {
            assert!(!group.members.is_empty(), "empty queue group in a result");
            let mut members = group.members.clone();
            members.sort_unstable();
            (group.name.to_vec(), members)
        })
        .collect();
    groups.sort_unstable();
    assert!(
        groups.windows(2).all(|pair| pair[0].0 != pair[1].0),
        "a queue name appears twice in one result: {result:?}"
    );
    (plain, groups)
}

fn subject(cursor: &mut Cursor<'_>, alphabet: &[&[u8]]) -> Vec<u8> {
    let shape = cursor.byte();
    let token_count = usize::from(shape & 0b11) + 1;
    let mut subject = Vec::new();
    for index in 0..token_count {
        if index > 0 {
            subject.push(b'.');
        }
        let token = alphabet[usize::from(cursor.byte()) % alphabet.len()];
        subject.extend_from_slice(token);
    }
    subject
}

fn entry(cursor: &mut Cursor<'_>) -> Entry {
    let subject = subject(cursor, &SUBSCRIBE_TOKENS);
    let who = cursor.byte();
    Entry {
        subject,
        queue: QUEUES[usize::from(who % 3)].map(<[u8]>::to_vec),
        handle: SubHandle {
            shard: u16::from((who >> 2) & 0b11),
            slot: u32::from((who >> 4) & 0b11),
            generation: u32::from(who >> 6),
        },
    }
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let table = Sublist::new();
    let mut cache = MatchCache::with_entries_max(4);
    let mut oracle = Oracle::default();
    for _ in 0..OPERATIONS_MAX {
        if cursor.is_empty() {
            break;
        }
        let operation = cursor.byte();
        let generation_before = table.generation();
        match operation & 0b11 {
            0 => {
                let entry = entry(&mut cursor);
                let inserted = table.insert(&entry.subject, entry.queue.as_deref(), entry.handle);
                let valid = valid_subscription(&entry.subject);
                assert_eq!(
                    inserted.is_ok(),
                    valid,
                    "insert validity of {:?}",
                    String::from_utf8_lossy(&entry.subject)
                );
                let changed = valid && oracle.insert(entry);
                assert_eq!(
                    table.generation() != generation_before,
                    changed,
                    "generation moves exactly when insert changed the table"
                );
            }
            1 | 2 => {
                let entry = if operation & 0b11 == 1 && !oracle.entries.is_empty() {
                    let index = usize::from(cursor.byte()) % oracle.entries.len();
                    oracle.entries[index].clone()
                } else {
                    entry(&mut cursor)
                };
                let removed = table.remove(&entry.subject, entry.queue.as_deref(), entry.handle);
                assert_eq!(removed, oracle.remove(&entry), "remove of {entry:?}");
                assert_eq!(
                    table.generation() != generation_before,
                    removed,
                    "generation moves exactly when remove changed the table"
                );
            }
            _ => {
                let published = subject(&mut cursor, &PUBLISH_TOKENS);
                let expected = oracle.match_subject(&published);
                let fresh = table.match_subject(&published);
                assert_eq!(
                    canonical(&fresh),
                    expected,
                    "match of {:?} with {:?}",
                    String::from_utf8_lossy(&published),
                    oracle.entries
                );
                let cached = cache.lookup(&table, &published);
                assert_eq!(
                    canonical(&cached),
                    expected,
                    "cached match of {:?}",
                    String::from_utf8_lossy(&published)
                );
                assert_eq!(
                    table.generation(),
                    generation_before,
                    "match changes nothing"
                );
            }
        }
        assert_eq!(table.count(), oracle.entries.len(), "count");
    }
}
