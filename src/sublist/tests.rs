//! Tests of the table and the cache: hand-written cases, then property tests against the naive
//! oracle (`oracle.rs`).

use std::rc::Rc;

use proptest::prelude::*;

use super::oracle::{canonical, NaiveSublist};
use super::{InvalidSubject, MatchCache, MatchResult, QueueGroup, SubHandle, Sublist};

fn handle(shard: u16, slot: u32) -> SubHandle {
    SubHandle {
        shard,
        slot,
        generation: 1,
    }
}

fn plain_set(result: &MatchResult) -> Vec<SubHandle> {
    canonical(result).plain
}

fn queue_sets(result: &MatchResult) -> Vec<(String, Vec<SubHandle>)> {
    canonical(result)
        .queues
        .into_iter()
        .map(|group| {
            (
                String::from_utf8_lossy(&group.name).into_owned(),
                group.members,
            )
        })
        .collect()
}

#[test]
fn literal_insert_match_remove() {
    let table = Sublist::new();
    let a = handle(0, 1);
    let b = handle(1, 2);
    table.insert(b"foo.bar", None, a).unwrap();
    table.insert(b"foo.bar", None, b).unwrap();
    table.insert(b"foo.baz", None, b).unwrap();
    assert_eq!(table.count(), 3);
    assert_eq!(plain_set(&table.match_subject(b"foo.bar")), vec![a, b]);
    assert_eq!(plain_set(&table.match_subject(b"foo.baz")), vec![b]);
    assert!(table.match_subject(b"foo").is_empty());
    assert!(table.match_subject(b"foo.bar.baz").is_empty());
    assert!(table.match_subject(b"bar").is_empty());

    assert!(table.remove(b"foo.bar", None, a));
    assert!(!table.remove(b"foo.bar", None, a), "already removed");
    assert!(!table.remove(b"foo.bar", Some(b"q"), b), "queue must match");
    assert!(!table.remove(b"foo.nope", None, b));
    assert_eq!(plain_set(&table.match_subject(b"foo.bar")), vec![b]);
    assert_eq!(table.count(), 2);
}

#[test]
fn wildcards() {
    let table = Sublist::new();
    let one = handle(0, 1); // foo.*
    let rest = handle(0, 2); // foo.>
    let all = handle(0, 3); // >
    let middle = handle(0, 4); // *.bar.*
    let literal = handle(0, 5); // foo.bar
    let star_literal = handle(0, 6); // foo* is a literal token
    table.insert(b"foo.*", None, one).unwrap();
    table.insert(b"foo.>", None, rest).unwrap();
    table.insert(b">", None, all).unwrap();
    table.insert(b"*.bar.*", None, middle).unwrap();
    table.insert(b"foo.bar", None, literal).unwrap();
    table.insert(b"foo*", None, star_literal).unwrap();

    let plain = |subject: &[u8]| plain_set(&table.match_subject(subject));
    assert_eq!(plain(b"foo.bar"), vec![one, rest, all, literal]);
    assert_eq!(plain(b"foo.baz"), vec![one, rest, all]);
    assert_eq!(plain(b"foo.bar.baz"), vec![rest, all, middle]);
    assert_eq!(
        plain(b"foo"),
        vec![all],
        "foo.> needs at least one more token"
    );
    assert_eq!(plain(b"x.bar.y"), vec![all, middle]);
    assert_eq!(plain(b"x.bar"), vec![all]);
    assert_eq!(plain(b"foo*"), vec![all, star_literal]);
    assert_eq!(plain(b"foox"), vec![all]);
    // Wildcards in a published subject are literal text, matched only by wildcards.
    assert_eq!(plain(b"foo.*"), vec![one, rest, all]);
    assert_eq!(plain(b"*"), vec![all]);
    // Subjects with empty tokens match nothing (nats-server returns the empty result).
    for subject in [&b""[..], b".", b"foo.", b".foo", b"foo..bar"] {
        assert!(table.match_subject(subject).is_empty(), "{subject:?}");
    }
}

#[test]
fn invalid_subjects_are_refused() {
    let table = Sublist::new();
    for subject in [
        &b""[..],
        b".",
        b"foo.",
        b".foo",
        b"foo..bar",
        b">.foo",
        b"foo.>.bar",
        b">.>",
    ] {
        assert_eq!(
            table.insert(subject, None, handle(0, 1)),
            Err(InvalidSubject),
            "{subject:?}"
        );
        assert!(!table.remove(subject, None, handle(0, 1)));
    }
    assert_eq!(table.count(), 0);
    assert_eq!(table.generation(), 0, "a refused insert changes nothing");
    // nats-server's Insert does not look for whitespace (the parser already split on it).
    assert_eq!(table.insert(b"foo\x0cbar", None, handle(0, 1)), Ok(()));
}

#[test]
fn queue_groups_merge_by_name_across_subjects() {
    let table = Sublist::new();
    let star_q1 = handle(0, 1);
    let literal_q1 = handle(1, 2);
    let literal_q2 = handle(2, 3);
    let plain = handle(3, 4);
    table.insert(b"foo.*", Some(b"q1"), star_q1).unwrap();
    table.insert(b"foo.bar", Some(b"q1"), literal_q1).unwrap();
    table.insert(b"foo.bar", Some(b"q2"), literal_q2).unwrap();
    table.insert(b"foo.bar", None, plain).unwrap();

    let result = table.match_subject(b"foo.bar");
    assert_eq!(result.plain, vec![plain]);
    assert_eq!(
        queue_sets(&result),
        vec![
            ("q1".to_string(), vec![star_q1, literal_q1]),
            ("q2".to_string(), vec![literal_q2]),
        ]
    );
    let result = table.match_subject(b"foo.baz");
    assert!(result.plain.is_empty());
    assert_eq!(queue_sets(&result), vec![("q1".to_string(), vec![star_q1])]);

    // Removing the last member of a group drops the group.
    assert!(table.remove(b"foo.bar", Some(b"q2"), literal_q2));
    assert_eq!(table.match_subject(b"foo.bar").queues.len(), 1);
    assert!(
        !table.remove(b"foo.bar", Some(b"q1"), star_q1),
        "subject must match"
    );
    assert!(table.remove(b"foo.*", Some(b"q1"), star_q1));
    assert_eq!(
        table.match_subject(b"foo.bar").queues,
        vec![QueueGroup {
            name: (*b"q1").into(),
            members: vec![literal_q1]
        }]
    );
}

#[test]
fn plain_sorted_by_shard_stably() {
    let table = Sublist::new();
    let handles = [
        handle(3, 1),
        handle(1, 2),
        handle(3, 3),
        handle(0, 4),
        handle(1, 5),
    ];
    for &h in &handles {
        table.insert(b"a.b", None, h).unwrap();
    }
    table.insert(b"a.*", None, handle(2, 6)).unwrap();
    table.insert(b">", None, handle(0, 7)).unwrap();
    let result = table.match_subject(b"a.b");
    assert_eq!(result.plain.len(), 7);
    assert!(result
        .plain
        .windows(2)
        .all(|pair| pair[0].shard <= pair[1].shard));
}

#[test]
fn removal_prunes_nodes() {
    let table = Sublist::new();
    let h = handle(0, 1);
    table.insert(b"a.b.c.d", None, h).unwrap();
    assert_eq!(table.node_count(), 4);
    table.insert(b"a.b", None, h).unwrap();
    table.insert(b"a.*.c", Some(b"q"), h).unwrap();
    table.insert(b"a.>", None, h).unwrap();
    assert_eq!(table.node_count(), 4 + 2 + 1);
    assert!(table.remove(b"a.b.c.d", None, h));
    assert_eq!(
        table.node_count(),
        2 + 2 + 1,
        "c and d pruned, a.b kept: it has a sub"
    );
    assert!(table.remove(b"a.*.c", Some(b"q"), h));
    assert_eq!(table.node_count(), 3);
    assert!(table.remove(b"a.b", None, h));
    assert_eq!(table.node_count(), 2);
    assert!(table.remove(b"a.>", None, h));
    assert_eq!(table.node_count(), 0);
    assert_eq!(table.count(), 0);
}

#[test]
fn generation_bumps_only_on_change() {
    let table = Sublist::new();
    let h = handle(0, 1);
    assert_eq!(table.generation(), 0);
    table.insert(b"foo", None, h).unwrap();
    assert_eq!(table.generation(), 1);
    table.insert(b"foo", None, h).unwrap();
    assert_eq!(table.generation(), 1, "duplicate insert changes nothing");
    assert_eq!(table.count(), 1);
    assert!(!table.remove(b"bar", None, h));
    assert_eq!(table.generation(), 1);
    assert!(table.remove(b"foo", None, h));
    assert_eq!(table.generation(), 2);
    let _ = table.match_subject(b"foo");
    assert_eq!(table.generation(), 2, "matching changes nothing");
}

#[test]
fn inserts_and_removes_are_counted_only_when_they_change_the_table() {
    let table = Sublist::new();
    let (a, b) = (handle(0, 1), handle(1, 2));
    assert_eq!(table.counts(), (0, 0, 0));
    table.insert(b"foo", None, a).unwrap();
    table.insert(b"foo", None, a).unwrap();
    table.insert(b"foo.*", Some(b"q"), b).unwrap();
    assert!(table.insert(b"foo..bar", None, a).is_err());
    assert_eq!(
        table.counts(),
        (2, 2, 0),
        "a duplicate or refused insert is not counted"
    );
    assert!(!table.remove(b"foo", None, b), "not there");
    assert!(table.remove(b"foo", None, a));
    assert_eq!(table.counts(), (1, 2, 1));
    assert_eq!(
        table.remove_many([(&b"foo.*"[..], Some(&b"q"[..]), b), (&b"gone"[..], None, a)]),
        1
    );
    assert_eq!(table.counts(), (0, 2, 2));
    table.insert(b"foo", None, a).unwrap();
    assert_eq!(table.counts(), (1, 3, 2), "inserted again: counted again");
}

#[test]
fn cache_fanout_counts_plain_subscribers_and_queue_groups_of_each_cached_result() {
    let table = Sublist::new();
    let mut cache = MatchCache::new();
    assert_eq!(cache.fanout(), (0, 0, 0));
    for slot in 0..3 {
        table.insert(b"a", None, handle(0, slot)).unwrap();
    }
    // Two groups of two members each on `a.b`: two, not four, and one plain `a.>`.
    for slot in 10..12 {
        table.insert(b"a.b", Some(b"q1"), handle(0, slot)).unwrap();
        table.insert(b"a.*", Some(b"q2"), handle(1, slot)).unwrap();
    }
    table.insert(b"a.>", None, handle(0, 20)).unwrap();
    cache.lookup(&table, b"a");
    cache.lookup(&table, b"a.b");
    cache.lookup(&table, b"nothing");
    assert_eq!(cache.fanout(), (3, 3 + 3, 3));
    assert_eq!(cache.len(), 3);
}

#[test]
fn remove_many_bumps_once() {
    let table = Sublist::new();
    let h = handle(0, 1);
    table.insert(b"a", None, h).unwrap();
    table.insert(b"b.*", Some(b"q"), h).unwrap();
    table.insert(b"c.>", None, h).unwrap();
    let before = table.generation();
    let removed = table.remove_many([
        (&b"a"[..], None, h),
        (&b"b.*"[..], Some(&b"q"[..]), h),
        (&b"missing"[..], None, h),
    ]);
    assert_eq!(removed, 2);
    assert_eq!(table.generation(), before + 1);
    assert_eq!(table.count(), 1);
    assert_eq!(table.remove_many([(&b"missing"[..], None, h)]), 0);
    assert_eq!(table.generation(), before + 1);
}

#[test]
fn many_subscribers_on_one_subject() {
    let table = Sublist::new();
    for slot in 0..1000 {
        table
            .insert(b"hot", None, handle((slot % 4) as u16, slot))
            .unwrap();
        table
            .insert(b"hot", Some(b"workers"), handle(0, 10_000 + slot))
            .unwrap();
    }
    let result = table.match_subject(b"hot");
    assert_eq!(result.plain.len(), 1000);
    assert_eq!(result.queues.len(), 1);
    assert_eq!(result.queues[0].members.len(), 1000);
    for slot in 0..1000 {
        assert!(table.remove(b"hot", None, handle((slot % 4) as u16, slot)));
        assert!(table.remove(b"hot", Some(b"workers"), handle(0, 10_000 + slot)));
    }
    assert_eq!(table.count(), 0);
    assert_eq!(table.node_count(), 0);
}

#[test]
fn deep_subjects_do_not_overflow_the_stack() {
    // 100,000 tokens: every walk (insert, match, prune, drop) must be a loop.
    let table = Sublist::new();
    let deep: Vec<u8> = b"a.".repeat(100_000)[..199_999].to_vec();
    let deep_stars: Vec<u8> = b"*.".repeat(100_000)[..199_999].to_vec();
    table.insert(&deep, None, handle(0, 1)).unwrap();
    table.insert(&deep_stars, None, handle(0, 2)).unwrap();
    assert_eq!(table.match_subject(&deep).plain.len(), 2);
    assert!(table.remove(&deep, None, handle(0, 1)));
    assert_eq!(table.match_subject(&deep).plain, vec![handle(0, 2)]);
    drop(table); // the `*` chain is dropped iteratively
}

#[test]
fn table_is_shared_between_threads() {
    let table = std::sync::Arc::new(Sublist::new());
    let writers: Vec<_> = (0..4u16)
        .map(|shard| {
            let table = std::sync::Arc::clone(&table);
            std::thread::spawn(move || {
                for slot in 0..200 {
                    table.insert(b"x.y", None, handle(shard, slot)).unwrap();
                    assert!(!table.match_subject(b"x.y").is_empty());
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(table.count(), 800);
    assert_eq!(table.generation(), 800);
}

#[test]
fn cache_hit_miss_and_invalidation() {
    let table = Sublist::new();
    let mut cache = MatchCache::new();
    let a = handle(0, 1);
    let b = handle(1, 2);
    table.insert(b"foo.*", None, a).unwrap();

    let first = cache.lookup(&table, b"foo.bar");
    assert_eq!(first.plain, vec![a]);
    assert_eq!((cache.hits(), cache.misses()), (0, 1));
    let second = cache.lookup(&table, b"foo.bar");
    assert!(
        Rc::ptr_eq(&first, &second),
        "a hit returns the cached result"
    );
    assert_eq!((cache.hits(), cache.misses()), (1, 1));

    // Subjects nobody listens to share one empty result.
    let none1 = cache.lookup(&table, b"nobody");
    let none2 = cache.lookup(&table, b"nobody.else");
    assert!(none1.is_empty() && Rc::ptr_eq(&none1, &none2));
    assert_eq!(cache.misses(), 3);

    // A SUB anywhere invalidates: the next lookup sees it.
    table.insert(b"foo.bar", None, b).unwrap();
    let third = cache.lookup(&table, b"foo.bar");
    assert_eq!(plain_set(&third), vec![a, b]);
    assert_eq!(cache.misses(), 4);
    assert_eq!(cache.len(), 1, "entries of the old generation were dropped");
    assert_eq!(
        first.plain,
        vec![a],
        "results handed out earlier are unchanged"
    );

    // An UNSUB too.
    assert!(table.remove(b"foo.*", None, a));
    assert_eq!(cache.lookup(&table, b"foo.bar").plain, vec![b]);
    assert_eq!(cache.lookup(&table, b"foo.bar").plain, vec![b]);
    assert_eq!((cache.hits(), cache.misses()), (2, 5));
}

#[test]
fn cache_is_bounded() {
    let table = Sublist::new();
    table.insert(b">", None, handle(0, 1)).unwrap();
    let mut cache = MatchCache::with_entries_max(64);
    for index in 0..1000 {
        let subject = format!("s.{index}");
        assert_eq!(cache.lookup(&table, subject.as_bytes()).plain.len(), 1);
        assert!(cache.len() <= 64);
    }
    assert_eq!(cache.misses(), 1000);
    // The most recent subject is always cached.
    let _ = cache.lookup(&table, b"s.999");
    assert_eq!(cache.hits(), 1);
    let mut default_cache = MatchCache::new();
    for index in 0..(crate::limits::MATCH_CACHE_ENTRIES_MAX + 10) {
        let subject = format!("t.{index}");
        let _ = default_cache.lookup(&table, subject.as_bytes());
    }
    assert!(default_cache.len() <= crate::limits::MATCH_CACHE_ENTRIES_MAX);
}

// ---- property tests against the naive oracle ----

/// Subscription subjects over a small alphabet: 1..=4 tokens of `a`, `b`, `c`, `*`, `>`, with `>`
/// only last (and, rarely, invalid subjects that both sides must refuse).
fn subscription_subject() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec!["a", "b", "c", "*"]);
    let valid = (
        prop::collection::vec(token, 1..=4),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(mut tokens, rest)| {
            if rest {
                *tokens.last_mut().expect("at least one token") = ">";
            }
            tokens.join(".").into_bytes()
        });
    let invalid = prop::sample::select(vec!["", "a..b", "a.", ">.a", "a.>.b", ".a"])
        .prop_map(|subject| subject.as_bytes().to_vec());
    prop_oneof![20 => valid, 1 => invalid]
}

/// Published subjects: mostly literals over `a`, `b`, `c`; sometimes with a `*` or `>` token
/// (matched as text) or an empty token (matches nothing).
fn published_subject() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        12 => prop::sample::select(vec!["a", "b", "c"]),
        1 => prop::sample::select(vec!["*", ">", "", "d"]),
    ];
    prop::collection::vec(token, 1..=5).prop_map(|tokens| tokens.join(".").into_bytes())
}

fn any_handle() -> impl Strategy<Value = SubHandle> {
    (0u16..3, 0u32..6, 0u32..2).prop_map(|(shard, slot, generation)| SubHandle {
        shard,
        slot,
        generation,
    })
}

fn any_queue() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(b"q1".to_vec())),
        1 => Just(Some(b"q2".to_vec())),
    ]
}

#[derive(Debug, Clone)]
enum Operation {
    Insert(Vec<u8>, Option<Vec<u8>>, SubHandle),
    /// Remove the existing entry at this index (modulo the count), if any.
    RemoveExisting(prop::sample::Index),
    /// Remove something that is probably not there.
    RemoveRandom(Vec<u8>, Option<Vec<u8>>, SubHandle),
    /// Look a subject up through the cache (checks invalidation between operations).
    Lookup(Vec<u8>),
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (subscription_subject(), any_queue(), any_handle())
            .prop_map(|(subject, queue, handle)| Operation::Insert(subject, queue, handle)),
        3 => any::<prop::sample::Index>().prop_map(Operation::RemoveExisting),
        1 => (subscription_subject(), any_queue(), any_handle())
            .prop_map(|(subject, queue, handle)| Operation::RemoveRandom(subject, queue, handle)),
        4 => published_subject().prop_map(Operation::Lookup),
    ]
}

fn assert_same(got: &MatchResult, expected: &MatchResult, subject: &[u8]) {
    assert!(
        got.plain
            .windows(2)
            .all(|pair| pair[0].shard <= pair[1].shard),
        "plain sorted by shard for {subject:?}: {got:?}"
    );
    let mut names: Vec<&[u8]> = got.queues.iter().map(|group| &*group.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), got.queues.len(), "group names unique: {got:?}");
    assert!(got.queues.iter().all(|group| !group.members.is_empty()));
    assert_eq!(
        canonical(got),
        canonical(expected),
        "match of {:?}",
        String::from_utf8_lossy(subject)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn table_and_cache_agree_with_oracle(
        operations in prop::collection::vec(operation(), 1..60),
        probes in prop::collection::vec(published_subject(), 1..20),
    ) {
        let table = Sublist::new();
        let mut oracle = NaiveSublist::default();
        let mut cache = MatchCache::with_entries_max(8);
        let mut generation = table.generation();
        for operation in operations {
            match operation {
                Operation::Insert(subject, queue, handle) => {
                    let valid = super::valid_subscribe_subject(&subject);
                    let changed = oracle.insert(&subject, queue.as_deref(), handle);
                    let inserted = table.insert(&subject, queue.as_deref(), handle);
                    prop_assert_eq!(inserted.is_ok(), valid);
                    if changed {
                        prop_assert!(table.generation() > generation);
                    } else {
                        prop_assert_eq!(table.generation(), generation);
                    }
                }
                Operation::RemoveExisting(index) => {
                    if oracle.entries.is_empty() {
                        continue;
                    }
                    let entry = oracle.entries[index.index(oracle.entries.len())].clone();
                    prop_assert!(oracle.remove(&entry.subject, entry.queue.as_deref(), entry.handle));
                    prop_assert!(table.remove(&entry.subject, entry.queue.as_deref(), entry.handle));
                    prop_assert!(table.generation() > generation);
                }
                Operation::RemoveRandom(subject, queue, handle) => {
                    let expected = oracle.remove(&subject, queue.as_deref(), handle);
                    prop_assert_eq!(table.remove(&subject, queue.as_deref(), handle), expected);
                }
                Operation::Lookup(subject) => {
                    let got = cache.lookup(&table, &subject);
                    assert_same(&got, &oracle.match_subject(&subject), &subject);
                }
            }
            generation = table.generation();
            prop_assert_eq!(table.count(), oracle.entries.len());
        }
        for subject in &probes {
            assert_same(&table.match_subject(subject), &oracle.match_subject(subject), subject);
            assert_same(&cache.lookup(&table, subject), &oracle.match_subject(subject), subject);
        }
        // Removing everything leaves an empty trie: pruning missed no node.
        for entry in std::mem::take(&mut oracle.entries) {
            prop_assert!(table.remove(&entry.subject, entry.queue.as_deref(), entry.handle));
        }
        prop_assert_eq!(table.count(), 0);
        prop_assert_eq!(table.node_count(), 0);
    }
}
