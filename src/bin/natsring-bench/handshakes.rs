//! `handshakes`: new connections a second, and what each costs the server. `--clients N`
//! threads each make connections one after another for `--seconds`: connect, the TLS
//! handshake (with `--tls`), read the INFO, CONNECT and PING, wait for the PONG, close. The
//! report has the handshakes made (`published`), their rate, the server's CPU per handshake
//! (`server_cpu_ns_per_msg`) and the time each took from `connect` to the PONG.
//!
//! Every handshake is a full one: the TLS client resumes no session (`tls.rs`). A connection
//! is closed by dropping it (a TCP close, no TLS close_notify), as a client that exits does.
//! The first failed handshake fails the run: a server that refuses or drops connections has
//! no handshake rate.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{server_stats, Config, Latency, Report};
use crate::wire::Client;

pub fn run(config: &Config) -> io::Result<Report> {
    let clients = config.requester_count.max(1);
    let run_for = Duration::from_secs_f64(config.seconds);
    let made = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start_line = Arc::new(Barrier::new(clients + 1));
    let mut threads = Vec::with_capacity(clients);
    for index in 0..clients {
        let (made, failed, start_line) = (
            Arc::clone(&made),
            Arc::clone(&failed),
            Arc::clone(&start_line),
        );
        let target = config.target.clone();
        threads.push(thread::spawn(move || -> io::Result<Histogram<u64>> {
            let mut histogram = new_histogram();
            start_line.wait();
            let start = Instant::now();
            while start.elapsed() < run_for && !failed.load(Ordering::Relaxed) {
                let began = Instant::now();
                let client = Client::connect(&target, None).map_err(|err| {
                    failed.store(true, Ordering::Relaxed);
                    io::Error::other(format!(
                        "connector {index}, after {} handshakes in all: {err}",
                        made.load(Ordering::Relaxed)
                    ))
                })?;
                histogram.saturating_record((began.elapsed().as_nanos() as u64).max(1));
                drop(client);
                made.fetch_add(1, Ordering::Relaxed);
            }
            Ok(histogram)
        }));
    }
    let cpu_before = server_stats::cpu_ns_sum(&config.server_pids);
    start_line.wait();
    let start = Instant::now();
    let mut histogram = new_histogram();
    let mut errors = Vec::new();
    for handle in threads {
        match handle.join().expect("connector thread") {
            Ok(part) => histogram.add(&part).expect("same bounds"),
            Err(err) => errors.push(err.to_string()),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = server_stats::cpu_ns_sum(&config.server_pids);
    if !errors.is_empty() {
        return Err(io::Error::other(errors.join("; ")));
    }
    let handshakes = made.load(Ordering::Relaxed);
    let server_cpu_ns = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64),
        _ => None,
    };
    Ok(Report {
        mode: config.mode.clone(),
        publishers: clients,
        published: handshakes,
        seconds,
        publish_rate_msgs: handshakes as f64 / seconds,
        server_cpu_seconds: server_cpu_ns.map(|ns| ns / 1e9),
        server_cpu_ns_per_msg: server_cpu_ns.map(|ns| ns / handshakes.max(1) as f64),
        server_rss_bytes: server_stats::rss_bytes_sum(&config.server_pids),
        latency_us: Some(Latency::of(&histogram)),
        conns: clients,
        ..Report::default()
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds")
}
