//! `many`: thousands of publishers, each a steady trickle, and a hundred subscribers, with
//! delivery latency. What a server with many clients does: many receives of a few hundred
//! bytes each (where a buffer ring can run dry), instead of one publisher's large writes.
//!
//! Publisher `i` publishes to `<subject>.many.<i % subs>`; subscriber `j` subscribes to
//! `<subject>.many.<j>`, so every message is delivered once. Each payload is 16 hexadecimal
//! digits, the nanoseconds from the run's epoch at which its write started; a subscriber
//! records now minus that. Publisher threads share the connections and write `--batch`
//! messages at a time to each in turn, paced in 1 ms steps so that all of them together send
//! `--rate` a second; a blocked write (a server that cannot keep up) slows them down, and the
//! report has the rate reached.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{server_stats, Config, Latency, Report};
use crate::wire::Client;

/// Threads that write for the publishers.
const PUBLISHER_THREADS: usize = 2;
/// Payload bytes: a u64 in hexadecimal.
const PAYLOAD_BYTES: usize = 16;
/// Latencies of the first part of the run are not recorded (connections warming up).
const WARMUP: Duration = Duration::from_millis(500);

pub fn run(config: &Config) -> io::Result<Report> {
    let subs = config.subscriber_count.max(1);
    let conns = config.idle_conn_count.max(1);
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));

    let mut subscribers = Vec::with_capacity(subs);
    for index in 0..subs {
        let mut client = Client::connect(&config.target, config.sub_shard)?;
        let sub = format!("SUB {}.many.{index} 1\r\n", config.subject);
        client.stream.write_all(sub.as_bytes())?;
        client.round_trip()?;
        subscribers.push(client);
    }
    let mut publishers: Vec<Vec<(Client, Vec<u8>)>> =
        (0..PUBLISHER_THREADS).map(|_| Vec::new()).collect();
    for index in 0..conns {
        let client = Client::connect(&config.target, config.pub_shard)
            .map_err(|err| io::Error::other(format!("publisher {index}: {err}")))?;
        let subject = format!("{}.many.{}", config.subject, index % subs);
        publishers[index % PUBLISHER_THREADS].push((client, subject.into_bytes()));
    }

    let start_line = Arc::new(Barrier::new(1 + PUBLISHER_THREADS + 1));
    // One thread reads every subscriber, waiting in poll(2) for whichever has data: a thread
    // per subscriber, on the generator's one CPU, cost more than the server (each delivery
    // woke one, and the server paid for the wake-up in its send).
    let subscriber_thread = {
        let (stop, delivered, start_line) = (
            Arc::clone(&stop),
            Arc::clone(&delivered),
            Arc::clone(&start_line),
        );
        thread::spawn(move || -> io::Result<Histogram<u64>> {
            let mut histogram = new_histogram();
            let mut inputs: Vec<Vec<u8>> = Vec::with_capacity(subscribers.len());
            for client in &mut subscribers {
                client.stream.set_nonblocking(true)?;
                inputs.push(std::mem::take(&mut client.leftover));
            }
            let mut polled: Vec<libc::pollfd> = subscribers
                .iter()
                .map(|client| libc::pollfd {
                    fd: client.stream.socket().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let mut chunk = vec![0u8; 256 * 1024];
            start_line.wait();
            while !stop.load(Ordering::Relaxed) {
                let (fds, count) = (polled.as_mut_ptr(), polled.len() as libc::nfds_t);
                // SAFETY: `fds` points to `count` live pollfd structures, borrowed for the call.
                let ready = unsafe { libc::poll(fds, count, 100) };
                if ready < 0 {
                    let err = io::Error::last_os_error();
                    if err.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(err);
                }
                for (index, entry) in polled.iter_mut().enumerate() {
                    if entry.revents == 0 {
                        continue;
                    }
                    entry.revents = 0;
                    let (client, input) = (&mut subscribers[index], &mut inputs[index]);
                    loop {
                        match client.stream.read(&mut chunk) {
                            Ok(0) => return Err(io::Error::other("server closed a subscriber")),
                            Ok(read) => input.extend_from_slice(&chunk[..read]),
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                            Err(err) => return Err(err),
                        }
                    }
                    let now = epoch.elapsed().as_nanos() as u64;
                    let (used, count) = take_messages(input, |sent| {
                        if sent >= WARMUP.as_nanos() as u64 {
                            histogram.saturating_record(now.saturating_sub(sent).max(1));
                        }
                    })?;
                    input.drain(..used);
                    delivered.fetch_add(count, Ordering::Relaxed);
                }
            }
            Ok(histogram)
        })
    };

    let per_thread_rate = config.rate / PUBLISHER_THREADS as f64;
    let run_for = Duration::from_secs_f64(config.seconds);
    let batch = config.batch;
    let mut publisher_threads = Vec::new();
    for mut clients in publishers {
        let (published, start_line) = (Arc::clone(&published), Arc::clone(&start_line));
        publisher_threads.push(thread::spawn(move || -> io::Result<()> {
            let mut frames = Vec::with_capacity(batch * 64);
            let mut writes_done = 0u64;
            let mut next = 0usize;
            start_line.wait();
            let start = Instant::now();
            while start.elapsed() < run_for {
                let due = (start.elapsed().as_secs_f64() * per_thread_rate / batch as f64) as u64;
                while writes_done < due && !clients.is_empty() {
                    let count = clients.len();
                    let (client, subject) = &mut clients[next];
                    next = (next + 1) % count;
                    // One send time for the whole write, formatted once.
                    let sent = format!("{:016x}\r\n", epoch.elapsed().as_nanos() as u64);
                    frames.clear();
                    for _ in 0..batch {
                        frames.extend_from_slice(b"PUB ");
                        frames.extend_from_slice(subject);
                        frames.extend_from_slice(b" 16\r\n");
                        frames.extend_from_slice(sent.as_bytes());
                    }
                    client.stream.write_all(&frames)?;
                    writes_done += 1;
                    published.fetch_add(batch as u64, Ordering::Relaxed);
                }
                let steps = (start.elapsed().as_micros() / 1000) as u32;
                let wake = start + Duration::from_millis(1) * (steps + 1);
                if let Some(wait) = wake.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            Ok(())
        }));
    }

    let cpu_before = server_stats::cpu_ns_sum(&config.server_pids);
    start_line.wait();
    let start = Instant::now();
    let mut errors = Vec::new();
    for handle in publisher_threads {
        if let Err(err) = handle.join().expect("publisher thread") {
            errors.push(format!("publisher: {err}"));
        }
    }
    let sending_seconds = start.elapsed().as_secs_f64();
    // Every message written is delivered, or the run stalls.
    let total = published.load(Ordering::Relaxed);
    let mut last = (0, Instant::now());
    loop {
        let now = delivered.load(Ordering::Relaxed);
        if now >= total || !errors.is_empty() {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > config.stall {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = server_stats::cpu_ns_sum(&config.server_pids);
    stop.store(true, Ordering::Relaxed);
    let mut histogram = new_histogram();
    match subscriber_thread.join().expect("subscriber thread") {
        Ok(part) => histogram.add(&part).expect("same bounds"),
        Err(err) => errors.push(format!("subscriber: {err}")),
    }
    let got = delivered.load(Ordering::Relaxed);
    if got != total && !config.allow_loss {
        errors.push(format!("{total} messages published, {got} delivered"));
    }
    if !errors.is_empty() {
        return Err(io::Error::other(errors.join("; ")));
    }
    let server_cpu_ns = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64),
        _ => None,
    };
    Ok(Report {
        mode: config.mode.clone(),
        payload_bytes: PAYLOAD_BYTES,
        publishers: conns,
        subscribers: subs,
        published: total,
        delivered: got,
        expected_deliveries: total,
        seconds,
        publish_rate_msgs: total as f64 / sending_seconds,
        delivery_rate_msgs: got as f64 / seconds,
        payload_rate_bytes: (got * PAYLOAD_BYTES as u64) as f64 / seconds,
        server_cpu_seconds: server_cpu_ns.map(|ns| ns / 1e9),
        server_cpu_ns_per_msg: server_cpu_ns.map(|ns| ns / got.max(1) as f64),
        server_rss_bytes: server_stats::rss_bytes_sum(&config.server_pids),
        latency_us: Some(Latency::of(&histogram)),
        conns,
        ..Report::default()
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds")
}

/// Takes the whole MSG frames at the start of `input`, calling `sent` with each one's send
/// time; returns the bytes they took and how many there were. Anything but a MSG with a
/// 16-byte payload, PING or +OK is an error (a server's -ERR, say).
fn take_messages(input: &[u8], mut sent: impl FnMut(u64)) -> io::Result<(usize, u64)> {
    let (mut used, mut count) = (0, 0);
    while let Some(end) = memchr::memchr(b'\n', &input[used..]) {
        let line = &input[used..used + end + 1];
        if line.starts_with(b"MSG ") {
            let size: usize = line
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|last| std::str::from_utf8(last).ok())
                .and_then(|last| last.trim_end().parse().ok())
                .ok_or_else(|| io::Error::other("bad MSG line"))?;
            let payload_at = used + line.len();
            if input.len() < payload_at + size + 2 {
                break;
            }
            let payload = &input[payload_at..payload_at + size];
            let stamp = std::str::from_utf8(payload)
                .ok()
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .ok_or_else(|| io::Error::other("payload is not a send time"))?;
            sent(stamp);
            count += 1;
            used = payload_at + size + 2;
        } else if line.starts_with(b"PING") || line.starts_with(b"+OK") {
            used += line.len();
        } else {
            return Err(io::Error::other(format!(
                "unexpected from the server: {:?}",
                String::from_utf8_lossy(line)
            )));
        }
    }
    Ok((used, count))
}
