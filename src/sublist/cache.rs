//! One shard's cache of match results: literal subject -> `Rc<MatchResult>`, all entries tagged
//! with the one table generation they were computed at (nats-server's per-client L1 cache with
//! its `genid`).
//!
//! A hit costs one acquire load of the table's generation and one hash lookup (or, for the same
//! subject as the previous lookup, one compare: publishers send runs to one subject): no lock, no write
//! to memory another core reads (the `Rc` count and the hit counter are this shard's). When the
//! generation moved, every entry is dropped at once: a SUB or UNSUB anywhere may change any
//! subject's result, and recomputing the subjects a shard actually publishes to is cheap.
//!
//! Invariants: every entry was computed from the table state of generation `generation`; the
//! cache holds at most `entries_max` entries (when full, about half are evicted before an insert).
//! Not `Sync` (it hands out `Rc`s): each shard owns its caches, one per table it matches against.

use std::rc::Rc;

use std::collections::HashMap;

use foldhash::fast::FixedState;

use super::{MatchResult, Sublist};
use crate::limits::MATCH_CACHE_ENTRIES_MAX;

pub struct MatchCache {
    /// Keys are shared with `last`, so remembering a subject copies no bytes.
    /// Subjects are client-chosen: keyed hashing (see `crate::hash`).
    entries: HashMap<Rc<[u8]>, Rc<MatchResult>, FixedState>,
    /// The table generation every entry was computed at.
    generation: u64,
    entries_max: usize,
    /// Shared by every subject nobody subscribes to, so a miss with no subscribers allocates
    /// only the key.
    empty: Rc<MatchResult>,
    /// The subject of the last lookup and its result (computed at `generation`; None after a
    /// reset): a publisher that sends a run of messages to one subject is answered by one
    /// compare, no hashing.
    last: Option<(Rc<[u8]>, Rc<MatchResult>)>,
    hits: u64,
    misses: u64,
}

impl MatchCache {
    pub fn new() -> MatchCache {
        MatchCache::with_entries_max(MATCH_CACHE_ENTRIES_MAX)
    }

    /// A cache holding at most `entries_max` results (at least 1).
    pub fn with_entries_max(entries_max: usize) -> MatchCache {
        assert!(entries_max > 0, "a match cache holds at least one entry");
        MatchCache {
            entries: HashMap::with_hasher(crate::hash::seeded()),
            generation: 0,
            entries_max,
            empty: Rc::new(MatchResult::default()),
            last: None,
            hits: 0,
            misses: 0,
        }
    }

    /// The match result for the literal `subject`: cached when the table's generation is the one
    /// the cache was filled at, otherwise computed from the table, cached and returned.
    ///
    /// The cache must always be used with the same table: generations of different tables are
    /// unrelated numbers.
    pub fn lookup(&mut self, table: &Sublist, subject: &[u8]) -> Rc<MatchResult> {
        let generation = table.generation();
        if generation == self.generation {
            if let Some((last_subject, result)) = &self.last {
                if **last_subject == *subject {
                    self.hits += 1;
                    return Rc::clone(result);
                }
            }
            if let Some((key, result)) = self.entries.get_key_value(subject) {
                self.hits += 1;
                let result = Rc::clone(result);
                self.last = Some((Rc::clone(key), Rc::clone(&result)));
                return result;
            }
        } else {
            self.reset(generation);
        }
        self.misses += 1;
        let (result, computed_at) = table.match_with_generation(subject);
        // A SUB or UNSUB may have landed between the generation check and the match: then the
        // result is newer than every entry, so the entries go.
        if computed_at != self.generation {
            self.reset(computed_at);
        }
        let result = if result.is_empty() {
            Rc::clone(&self.empty)
        } else {
            Rc::new(result)
        };
        if self.entries.len() >= self.entries_max {
            self.evict_half();
        }
        let key: Rc<[u8]> = subject.into();
        self.entries.insert(Rc::clone(&key), Rc::clone(&result));
        debug_assert!(self.entries.len() <= self.entries_max);
        self.last = Some((key, Rc::clone(&result)));
        result
    }

    fn reset(&mut self, generation: u64) {
        self.entries.clear();
        self.last = None;
        self.generation = generation;
    }

    /// Drops every other entry in the map's (arbitrary) order: the bound holds with room for
    /// `entries_max / 2` new subjects, and a working set a little over the bound keeps half its
    /// hits instead of none.
    fn evict_half(&mut self) {
        let mut keep = false;
        self.entries.retain(|_, _| {
            keep = !keep;
            keep
        });
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that went to the table.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The fanout of every cached result (plain subscribers plus queue groups, as
    /// nats-server's `Sublist.Stats` counts it): (the largest, their sum, how many results).
    /// Walks the cache (at most `entries_max` entries): for monitoring, when asked.
    pub fn fanout(&self) -> (usize, usize, usize) {
        self.entries
            .values()
            .fold((0, 0, 0), |(max, sum, results), result| {
                let fanout = result.plain.len() + result.queues.len();
                (max.max(fanout), sum + fanout, results + 1)
            })
    }

    /// Results cached now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for MatchCache {
    fn default() -> MatchCache {
        MatchCache::new()
    }
}

impl std::fmt::Debug for MatchCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MatchCache")
            .field("entries", &self.entries.len())
            .field("entries_max", &self.entries_max)
            .field("generation", &self.generation)
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}
