//! The subject table's read path, to choose its cross-core scheme (DESIGN §5).
//!
//! - `cached`: `MatchCache::lookup` hits, the path every publish takes in the steady state: one
//!   atomic load of the table's generation and a hash lookup, no lock, no shared write.
//! - `locked` (the baseline): `Sublist::match_subject`, the full match under the table's
//!   `RwLock` read side, which is what every publish would pay without the per-shard cache.
//!   With 2 threads the lock's reader count is a cache line both cores write.
//! - `cached_with_churn`: the cached path while another thread subscribes and unsubscribes
//!   continuously (every change bumps the generation and empties every cache).
//!
//! Each runs on 1 and 2 threads over tables of 1,000 and 100,000 subscriptions (literal
//! subjects, plus `*` and `>` subscriptions that match too).
//!
//! Run: `cargo bench --bench sublist`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use divan::{black_box, Bencher};
use natsring::sublist::{MatchCache, SubHandle, Sublist};

fn main() {
    divan::main();
}

const SIZES: [usize; 2] = [1_000, 100_000];
/// Distinct subjects published (the working set each cache holds).
const PUBLISHED: usize = 256;

fn handle(slot: usize) -> SubHandle {
    SubHandle {
        shard: (slot % 2) as u16,
        slot: slot as u32,
        generation: 1,
    }
}

/// A table of `size` literal subscriptions `orders.<n>.created`, plus `orders.*.created` and
/// `orders.>`.
fn table(size: usize) -> &'static Sublist {
    static TABLES: OnceLock<Vec<(usize, Sublist)>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        SIZES
            .iter()
            .map(|&size| {
                let table = Sublist::new();
                for n in 0..size {
                    table
                        .insert(format!("orders.{n}.created").as_bytes(), None, handle(n))
                        .unwrap();
                }
                table
                    .insert(b"orders.*.created", None, handle(size))
                    .unwrap();
                table
                    .insert(b"orders.>", Some(b"workers"), handle(size + 1))
                    .unwrap();
                (size, table)
            })
            .collect()
    });
    &tables
        .iter()
        .find(|(s, _)| *s == size)
        .expect("a benched size")
        .1
}

fn subjects(size: usize) -> Vec<Vec<u8>> {
    (0..PUBLISHED)
        .map(|i| format!("orders.{}.created", i * size / PUBLISHED).into_bytes())
        .collect()
}

thread_local! {
    static CACHE: RefCell<MatchCache> = RefCell::new(MatchCache::new());
}

#[divan::bench(args = SIZES, threads = [1, 2])]
fn cached(bencher: Bencher, size: usize) {
    let table = table(size);
    let subjects = subjects(size);
    let mut next = 0usize;
    bencher.bench_local(|| {
        next = (next + 1) % PUBLISHED;
        CACHE.with(|cache| {
            black_box(cache.borrow_mut().lookup(table, &subjects[next]))
                .plain
                .len()
        })
    });
}

#[divan::bench(args = SIZES, threads = [1, 2])]
fn locked(bencher: Bencher, size: usize) {
    let table = table(size);
    let subjects = subjects(size);
    let mut next = 0usize;
    bencher.bench_local(|| {
        next = (next + 1) % PUBLISHED;
        black_box(table.match_subject(&subjects[next])).plain.len()
    });
}

/// The cached path while a writer thread keeps changing the table (worst case for the cache).
#[divan::bench(args = [1_000], threads = [1])]
fn cached_with_churn(bencher: Bencher, size: usize) {
    let table: Arc<Sublist> = Arc::new(Sublist::new());
    for n in 0..size {
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
                let h = SubHandle {
                    shard: 1,
                    slot: 1_000_000 + n % 64,
                    generation: 1,
                };
                table.insert(b"churn.subject", None, h).unwrap();
                table.remove(b"churn.subject", None, h);
                n += 1;
            }
        })
    };
    let subjects = subjects(size);
    let mut cache = MatchCache::new();
    let mut next = 0usize;
    bencher.bench_local(|| {
        next = (next + 1) % PUBLISHED;
        black_box(cache.lookup(&table, &subjects[next])).plain.len()
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
