//! The fuzz targets as plain binaries, for a stable toolchain without `cargo fuzz`:
//!
//! ```text
//! cargo run --release --bin parser_splits -- seeds/parser_splits corpus/parser_splits
//! cargo run --release --bin parser_splits -- --mutate 30 seeds/parser_splits
//! ```
//!
//! Every file named (directories: every file in them, not recursing) is run through the
//! target's check once. With `--mutate SECONDS`, the files are then mutated at random (byte
//! flips, inserts, deletes, splices; no coverage feedback) for that long; an input that panics
//! is written to `artifacts/<target>/crash-<n>` before the panic ends the process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `check` over the files named on the command line. Exits non-zero (by the check's
/// panic) on a finding.
pub fn main(target: &str, check: fn(&[u8])) {
    let mut mutate_for = None;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--mutate" {
            let seconds: u64 = args
                .next()
                .and_then(|seconds| seconds.parse().ok())
                .expect("--mutate takes a number of seconds");
            mutate_for = Some(Duration::from_secs(seconds));
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    let inputs = read_inputs(&paths);
    for (path, input) in &inputs {
        run_one(target, check, input, Some(path));
    }
    println!("{target}: {} inputs replayed, no finding", inputs.len());
    if let Some(duration) = mutate_for {
        let seeds: Vec<Vec<u8>> = inputs.into_iter().map(|(_, input)| input).collect();
        let runs = mutate(target, check, &seeds, duration);
        println!(
            "{target}: {runs} mutated inputs in {}s ({}/s), no finding",
            duration.as_secs(),
            runs / duration.as_secs().max(1)
        );
    }
}

fn read_inputs(paths: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
                .map(|entry| entry.expect("directory entry").path())
                .filter(|path| path.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let input = std::fs::read(&path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            (path, input)
        })
        .collect()
}

/// Runs one input; on a panic, saves it (mutated inputs only) and lets the panic go on.
fn run_one(target: &str, check: fn(&[u8]), input: &[u8], path: Option<&Path>) {
    let outcome = std::panic::catch_unwind(|| check(input));
    if let Err(panic) = outcome {
        match path {
            Some(path) => eprintln!("{target}: finding in {}", path.display()),
            None => {
                let directory = PathBuf::from("artifacts").join(target);
                std::fs::create_dir_all(&directory).expect("create artifacts directory");
                let saved = directory.join(format!("crash-{}", std::process::id()));
                std::fs::write(&saved, input).expect("write crash input");
                eprintln!("{target}: finding saved to {}", saved.display());
            }
        }
        std::panic::resume_unwind(panic);
    }
}

/// Random mutations of the seeds for `duration`; returns the number of inputs run.
fn mutate(target: &str, check: fn(&[u8]), seeds: &[Vec<u8>], duration: Duration) -> u64 {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let start = Instant::now();
    let mut runs = 0u64;
    let empty = Vec::new();
    while start.elapsed() < duration {
        let seed = if seeds.is_empty() {
            &empty
        } else {
            &seeds[random.below(seeds.len())]
        };
        let mut input = seed.clone();
        for _ in 0..=random.below(8) {
            let position = random.below(input.len() + 1);
            match random.below(5) {
                0 if position < input.len() => input[position] ^= 1 << random.below(8),
                1 if position < input.len() => input[position] = random.next() as u8,
                2 => input.insert(position, random.next() as u8),
                3 if position < input.len() => {
                    input.remove(position);
                }
                _ => {
                    // Splice: a slice of another seed at `position`.
                    if let Some(other) = seeds.get(random.below(seeds.len().max(1))) {
                        let from = random.below(other.len() + 1);
                        let to = from + random.below(other.len() - from + 1);
                        input.splice(position..position, other[from..to].iter().copied());
                    }
                }
            }
        }
        run_one(target, check, &input, None);
        runs += 1;
    }
    runs
}

/// xorshift64: enough randomness for mutations, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}
