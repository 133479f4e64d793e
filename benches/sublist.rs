//! The subject table's read path: how many publishes per second it can answer, each beside a
//! baseline.
//!
//! Every bench looks up one published subject per iteration (items = matches), cycling over
//! [`PUBLISHED`] literal subjects `orders.<n>.created` spread evenly over the table. Each runs
//! over tables of 1,000, 100,000 and 1,000,000 subscriptions, in three mixes:
//!
//! - `literal`: `orders.<n>.created` for every n below the size.
//! - `with_star`: the same, except every 10th subscription is `orders.<n>.*` (every event of one
//!   order), plus one `orders.*.created` (every order's creation). Each publish also walks the
//!   `*` branches, and matches two subscriptions.
//! - `with_gt`: the same with `>`: every 10th is `orders.<n>.>`, plus one `orders.>`.
//!
//! In the `literal` mix each publish matches one subscription.
//!
//! The benches:
//!
//! - `cache_hit`: `MatchCache::lookup` answered from the cache, the path every publish takes in
//!   the steady state: one atomic load of the table's generation and one hash lookup, no lock,
//!   no shared write. The published subjects fit the cache (checked before timing).
//! - `cache_miss`: `MatchCache::lookup` that must go to the table: the failed hash lookup, the
//!   locked match, the result's `Rc` and key allocation, and the amortized eviction when the
//!   cache is full. The cache is bounded at [`MISS_CACHE_ENTRIES_MAX`] entries, an eighth of
//!   the published subjects, so cycling over them evicts each before it comes back (checked
//!   before timing: under 1% hits). The real bound (`MATCH_CACHE_ENTRIES_MAX`, 4096) would need
//!   more distinct matching subjects than the smallest table has; a miss does the same work.
//! - `locked` (baseline): `Sublist::match_subject`, the full match under the table's `RwLock`
//!   read side, what every publish would pay without the per-shard cache.
//! - `hash_baseline` (baseline): an `FxHashMap<Box<[u8]>, Vec<SubHandle>>` of the table's
//!   literal subscriptions, looked up by the published subject: the floor for answering a
//!   publish, blind to wildcards (so it answers less than the table).
//! - `two_threads`: `cache_hit` and `locked` on 2 threads at once over the 100,000 `literal`
//!   table. The lock's reader count is a cache line both cores write; the cache's is not.
//! - `cache_hit_with_churn`: `cache_hit` while another thread subscribes and unsubscribes
//!   continuously (every change bumps the generation and empties every cache, so most lookups
//!   miss and wait for the writer's lock), 1,000 `literal`.
//!
//! The published subjects are a hot working set: the trie nodes they walk stay in the CPU's
//! caches, so the table's size shows mostly in the width of the hash maps walked, not in memory
//! latency. Each timed sample is [`SAMPLE_SIZE`] lookups (see there why it is fixed).
//!
//! Tables are built lazily, once per (size, mix), and shared by the benches that use them
//! (building the 1,000,000 ones takes a few seconds and about 2 GB in all).
//!
//! Run: `cargo bench --bench sublist` (`-- cache_hit` to pick a group, `-- --sample-count 20`
//! to go faster).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use natsring::sublist::{MatchCache, SubHandle, Sublist};
use rustc_hash::FxHashMap;

fn main() {
    divan::main();
}

/// Subscriptions per table.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const MIXES: [Mix; 3] = [Mix::Literal, Mix::WithStar, Mix::WithGt];
/// Distinct subjects published: the working set a shard's cache holds.
const PUBLISHED: usize = 256;
/// The bound of the cache in `cache_miss`: an eighth of the working set.
const MISS_CACHE_ENTRIES_MAX: usize = PUBLISHED / 8;
/// Lookups per timed sample: every published subject 4 times. Fixed, because divan's tuning
/// settles on 1 iteration per sample when the first lookup is cold (page and cache misses), and
/// samples of one ~10 ns lookup measure the harness, not the lookup.
const SAMPLE_SIZE: u32 = 4 * PUBLISHED as u32;
/// One subscription in this many is a wildcard in the `with_star` and `with_gt` mixes.
const WILDCARD_EVERY: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    Literal,
    WithStar,
    WithGt,
}

impl fmt::Display for Mix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Mix::Literal => "literal",
            Mix::WithStar => "with_star",
            Mix::WithGt => "with_gt",
        })
    }
}

/// One benched table: the subject table, the baseline's hash map of its literal subscriptions,
/// and the subjects published to it.
struct Table {
    sublist: Sublist,
    literals: FxHashMap<Box<[u8]>, Vec<SubHandle>>,
    published: Vec<Vec<u8>>,
}

fn handle(slot: usize) -> SubHandle {
    SubHandle {
        shard: (slot % 2) as u16,
        slot: slot as u32,
        generation: 1,
    }
}

/// The table of `size` subscriptions in `mix`, built on first use and kept for the process.
fn table(size: usize, mix: Mix) -> &'static Table {
    static TABLES: Mutex<Vec<(usize, Mix, &'static Table)>> = Mutex::new(Vec::new());
    let mut tables = TABLES.lock().unwrap();
    if let Some(&(_, _, table)) = tables.iter().find(|&&(s, m, _)| s == size && m == mix) {
        return table;
    }
    let table: &'static Table = Box::leak(Box::new(build_table(size, mix)));
    tables.push((size, mix, table));
    table
}

fn build_table(size: usize, mix: Mix) -> Table {
    let sublist = Sublist::new();
    let mut literals = FxHashMap::default();
    let mut subject = Vec::new();
    for n in 0..size {
        let last = match mix {
            Mix::Literal => "created",
            _ if n % WILDCARD_EVERY != 0 => "created",
            Mix::WithStar => "*",
            Mix::WithGt => ">",
        };
        subject.clear();
        subject.extend_from_slice(format!("orders.{n}.{last}").as_bytes());
        sublist.insert(&subject, None, handle(n)).unwrap();
        if last == "created" {
            literals
                .entry(subject.clone().into_boxed_slice())
                .or_insert_with(Vec::new)
                .push(handle(n));
        }
    }
    match mix {
        Mix::Literal => {}
        Mix::WithStar => sublist
            .insert(b"orders.*.created", None, handle(size))
            .unwrap(),
        Mix::WithGt => sublist.insert(b"orders.>", None, handle(size)).unwrap(),
    }
    let published = (0..PUBLISHED)
        .map(|i| format!("orders.{}.created", i * size / PUBLISHED).into_bytes())
        .collect();
    let table = Table {
        sublist,
        literals,
        published,
    };
    // Every published subject matches something, in every mix.
    for subject in &table.published {
        assert!(!table.sublist.match_subject(subject).is_empty());
    }
    table
}

/// The next index of a cycle over `count` subjects.
fn advance(next: &mut usize, count: usize) -> usize {
    *next = (*next + 1) % count;
    *next
}

#[divan::bench(consts = SIZES, args = MIXES, sample_size = SAMPLE_SIZE)]
fn cache_hit<const SIZE: usize>(bencher: Bencher, mix: Mix) {
    let table = table(SIZE, mix);
    let mut cache = MatchCache::new();
    for subject in &table.published {
        cache.lookup(&table.sublist, subject);
    }
    let misses_warm = cache.misses();
    for subject in &table.published {
        cache.lookup(&table.sublist, subject);
    }
    assert_eq!(
        cache.misses(),
        misses_warm,
        "the working set fits the cache"
    );
    bench_lookups(bencher, table, &mut cache);
}

#[divan::bench(consts = SIZES, args = MIXES, sample_size = SAMPLE_SIZE)]
fn cache_miss<const SIZE: usize>(bencher: Bencher, mix: Mix) {
    let table = table(SIZE, mix);
    let mut cache = MatchCache::with_entries_max(MISS_CACHE_ENTRIES_MAX);
    for _ in 0..4 {
        for subject in &table.published {
            cache.lookup(&table.sublist, subject);
        }
    }
    let (hits_warm, misses_warm) = (cache.hits(), cache.misses());
    for subject in &table.published {
        cache.lookup(&table.sublist, subject);
    }
    let hits = cache.hits() - hits_warm;
    let misses = cache.misses() - misses_warm;
    assert!(
        hits * 100 < hits + misses,
        "cache_miss must miss: {hits} hits, {misses} misses"
    );
    bench_lookups(bencher, table, &mut cache);
}

#[divan::bench(consts = SIZES, args = MIXES, sample_size = SAMPLE_SIZE)]
fn locked<const SIZE: usize>(bencher: Bencher, mix: Mix) {
    let table = table(SIZE, mix);
    for subject in &table.published {
        black_box(table.sublist.match_subject(subject));
    }
    let mut next = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let subject = &table.published[advance(&mut next, PUBLISHED)];
        black_box(table.sublist.match_subject(black_box(subject)))
            .plain
            .len()
    });
}

#[divan::bench(consts = SIZES, args = MIXES, sample_size = SAMPLE_SIZE)]
fn hash_baseline<const SIZE: usize>(bencher: Bencher, mix: Mix) {
    let table = table(SIZE, mix);
    for subject in &table.published {
        black_box(table.literals.get(subject.as_slice()));
    }
    let mut next = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let subject = &table.published[advance(&mut next, PUBLISHED)];
        black_box(table.literals.get(black_box(subject.as_slice()))).map_or(0, Vec::len)
    });
}

/// Two threads publishing at once, each with its own cache (as each shard has).
mod two_threads {
    use super::*;

    const SIZE: usize = 100_000;

    thread_local! {
        static CACHE: RefCell<MatchCache> = RefCell::new(MatchCache::new());
        static NEXT: Cell<usize> = const { Cell::new(0) };
    }

    fn next_subject(table: &Table) -> &[u8] {
        let next = NEXT.with(|next| {
            let mut index = next.get();
            advance(&mut index, PUBLISHED);
            next.set(index);
            index
        });
        &table.published[next]
    }

    #[divan::bench(threads = [2], sample_size = SAMPLE_SIZE)]
    fn cache_hit(bencher: Bencher) {
        let table = table(SIZE, Mix::Literal);
        bencher.counter(ItemsCount::new(1usize)).bench(|| {
            let subject = next_subject(table);
            CACHE.with(|cache| {
                black_box(
                    cache
                        .borrow_mut()
                        .lookup(&table.sublist, black_box(subject)),
                )
                .plain
                .len()
            })
        });
    }

    #[divan::bench(threads = [2], sample_size = SAMPLE_SIZE)]
    fn locked(bencher: Bencher) {
        let table = table(SIZE, Mix::Literal);
        bencher.counter(ItemsCount::new(1usize)).bench(|| {
            let subject = next_subject(table);
            black_box(table.sublist.match_subject(black_box(subject)))
                .plain
                .len()
        });
    }
}

/// The cached path while a writer thread keeps changing the table (worst case for the cache).
#[divan::bench(sample_size = SAMPLE_SIZE)]
fn cache_hit_with_churn(bencher: Bencher) {
    const SIZE: usize = 1_000;
    let table: Arc<Sublist> = Arc::new(Sublist::new());
    for n in 0..SIZE {
        table
            .insert(format!("orders.{n}.created").as_bytes(), None, handle(n))
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let churn = SubHandle {
                    shard: 1,
                    slot: 1_000_000 + n % 64,
                    generation: 1,
                };
                table.insert(b"churn.subject", None, churn).unwrap();
                table.remove(b"churn.subject", None, churn);
                n += 1;
            }
        })
    };
    let published: Vec<Vec<u8>> = (0..PUBLISHED)
        .map(|i| format!("orders.{}.created", i * SIZE / PUBLISHED).into_bytes())
        .collect();
    let mut cache = MatchCache::new();
    let mut next = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let subject = &published[advance(&mut next, PUBLISHED)];
        black_box(cache.lookup(&table, black_box(subject)))
            .plain
            .len()
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// Looks up the published subjects in turn through `cache`, one per iteration.
fn bench_lookups(bencher: Bencher, table: &Table, cache: &mut MatchCache) {
    let mut next = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let subject = &table.published[advance(&mut next, PUBLISHED)];
        black_box(cache.lookup(&table.sublist, black_box(subject)))
            .plain
            .len()
    });
}
