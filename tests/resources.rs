//! Resource bounds: no client makes the server's memory grow past its limits, and what
//! connections took (file descriptors, memory) is given back when they close.
//!
//! These tests run the natsring binary as a child process, so `/proc/<pid>` shows the
//! server's own file descriptors and memory and nothing of the test's. The child runs with
//! the default limits (natsring takes no limit flags, as nats-server has none): 4096-byte
//! control lines, 1 MiB payloads, 64 MiB pending per subscriber.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{abort, assert_serves, start_natsring_process, test_shards, ChildServer, Raw};

const WAIT: Duration = Duration::from_secs(20);
const MIB: u64 = 1024 * 1024;

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`: given there in kB).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

fn server() -> ChildServer {
    let shards = test_shards().to_string();
    start_natsring_process(&["--shards", &shards])
}

/// Polls until `check` holds, for at most `WAIT`; returns whether it did.
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

const CONNECT: &[u8] = b"CONNECT {\"verbose\":false}\r\n";

/// One round of connections: `idle` connections that subscribe and stay open until the end
/// of the round, `reset` ones cut off with an RST in the middle of a control line or a
/// payload, and `held` ones that announce a 1 MiB payload, send half of it and are then
/// closed normally; then one connection with `subscriptions` subscriptions closes without
/// unsubscribing.
fn connection_round(port: u16, idle: usize, reset: usize, held: usize, subscriptions: usize) {
    let mut idle_connections = Vec::new();
    for i in 0..idle {
        let mut raw = Raw::connect_quiet(port);
        raw.send(format!("SUB idle.{i} 1\r\nSUB idle.> 2\r\nPING\r\n").as_bytes());
        idle_connections.push(raw);
    }
    for i in 0..reset {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let partial: &[u8] = match i % 3 {
            0 => b"SUB reset.aaaaaaaaaaaaaaaaaaaa",
            1 => b"PUB idle.0 1000\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            _ => b"PUB reset 5000\r\n",
        };
        stream.write_all(&[CONNECT, partial].concat()).unwrap();
        abort(stream);
    }
    let half = vec![b'h'; 512 * 1024];
    let held_connections: Vec<Raw> = (0..held)
        .map(|_| {
            let mut raw = Raw::connect_quiet(port);
            raw.send(b"PUB held 1048576\r\n");
            raw.send(&half);
            raw
        })
        .collect();
    // Every idle connection is subscribed before the round ends.
    for raw in &mut idle_connections {
        raw.read_until(b"PONG\r\n", WAIT);
    }
    let mut probe = Raw::connect_quiet(port);
    probe.send(b"PUB idle.0 2\r\nhi\r\nPING\r\n");
    probe.read_until(b"PONG\r\n", WAIT);
    drop(held_connections);
    drop(idle_connections);
    // One client with many subscriptions, gone without unsubscribing.
    let mut subscriber = Raw::connect_quiet(port);
    let subs: String = (0..subscriptions)
        .map(|i| format!("SUB many.{i}.x {i}\r\n"))
        .collect();
    subscriber.send(subs.as_bytes());
    subscriber.send(b"PING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
}

/// Sends each shard's receive-buffer ring worth of bytes twice over (`RECV_BUFFER_COUNT` buffers of
/// `RECV_BUFFER_BYTES`, in `limits`) from a connection on that shard, so that all of them are resident.
fn fill_receive_buffers(port: u16, shards: usize) {
    let ring_bytes =
        natsring::limits::RECV_BUFFER_COUNT as usize * natsring::limits::RECV_BUFFER_BYTES as usize;
    let frame = [b"PUB void 65536\r\n".as_slice(), &[b'v'; 65536], b"\r\n"].concat();
    let batch = frame.repeat(16);
    let mut filled = vec![false; shards];
    let deadline = Instant::now() + WAIT;
    while filled.contains(&false) {
        assert!(Instant::now() < deadline, "a connection on every shard");
        let mut raw = Raw::connect(port);
        let info = raw.read_until(b"\r\n", WAIT);
        let info: serde_json::Value = serde_json::from_slice(&info[5..]).expect("INFO json");
        let shard = natsring::shard_of_client_id(info["client_id"].as_u64().unwrap(), shards);
        if filled[shard] {
            continue;
        }
        raw.send(CONNECT);
        for _ in 0..2 * ring_bytes / batch.len() + 1 {
            raw.send(&batch);
        }
        raw.send(b"PING\r\n");
        raw.read_until(b"PONG\r\n", WAIT);
        filled[shard] = true;
    }
}

/// File descriptors return exactly to what the server had before any client came; memory
/// does not creep up round after round (what a round took is reused by the next).
#[test]
fn file_descriptors_and_memory_return_after_connections_close() {
    let server = server();
    let pid = server.pid();
    // The harness's readiness probe (a connection opened and closed) may still be open.
    let fds_before = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            open_fds(pid)
        })
        .min()
        .unwrap();
    // Warm-up: every receive buffer of every shard is written once (they are mapped at start
    // and become resident as the kernel first fills them), and one round grows the
    // connection slab and the allocator's caches to this workload's size.
    fill_receive_buffers(server.port, test_shards());
    connection_round(server.port, 500, 500, 20, 100_000);
    assert!(
        eventually(|| open_fds(pid) == fds_before),
        "file descriptors back to {fds_before} after the warm-up round, now {}",
        open_fds(pid)
    );
    // The allocator returns freed memory to the OS about a second after the free.
    std::thread::sleep(Duration::from_secs(2));
    let rss_warm = status_bytes(pid, "VmRSS");
    for round in 1..=3 {
        connection_round(server.port, 500, 500, 20, 100_000);
        assert!(
            eventually(|| open_fds(pid) == fds_before),
            "file descriptors back to {fds_before} after round {round}, now {}",
            open_fds(pid)
        );
    }
    // 24 MiB: allocator and kernel slack (the resident size after a round varies by about
    // +-10 MiB between runs). A leak of a few KiB per connection over 3 x 1022 connections, of
    // the held payload buffers (20 MiB a round) or of the subscriptions (100k a round) goes
    // past it.
    let tolerance = 24 * MIB;
    assert!(
        eventually(|| status_bytes(pid, "VmRSS") <= rss_warm + tolerance),
        "RSS {} MiB after three more rounds, {} MiB after the warm-up round",
        status_bytes(pid, "VmRSS") / MIB,
        rss_warm / MIB
    );
    assert_serves(server.port);
    assert!(eventually(|| open_fds(pid) == fds_before));
}

/// A subscriber that never reads, sent sixteen times `max_pending` (16 MiB here): the
/// server's peak memory grows by about `max_pending` (the stuck subscriber's pending bytes),
/// not by what was published, and the subscriber is closed. In-process (natsring has no flag
/// for `max_pending`), with a write deadline long enough that only `max_pending` can close
/// the subscriber in time; the peak is then the test process's, which adds little here.
#[test]
fn a_stuck_subscriber_costs_at_most_max_pending() {
    let mut opts = common::options();
    opts.max_pending = 16 * MIB;
    opts.write_deadline = std::time::Duration::from_millis(120_000);
    let server = common::start_with(opts);
    let pid = std::process::id();
    let payload = vec![b's'; 16 * 1024];
    let frame = [b"PUB stuck 16384\r\n".as_slice(), &payload, b"\r\n"].concat();
    let batch = frame.repeat(64);
    // Warm-up: the same publisher traffic with a subscriber that reads, so the receive
    // buffers and both sides' buffers are at their working size before the peak is taken.
    let mut reader = Raw::connect_quiet(server.port);
    reader.send(b"SUB stuck 1\r\nPING\r\n");
    reader.read_until(b"PONG\r\n", WAIT);
    let mut drain = reader.stream.try_clone().unwrap();
    let drainer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut publisher = Raw::connect_quiet(server.port);
    for _ in 0..64 {
        publisher.send(&batch);
    }
    publisher.send(b"PING\r\n");
    publisher.read_until(b"PONG\r\n", WAIT);
    reader.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drainer.join().unwrap();
    drop(reader);
    let peak_before = status_bytes(pid, "VmHWM");

    let mut stuck = Raw::connect_quiet(server.port);
    stuck.send(b"SUB stuck 1\r\nPING\r\n");
    stuck.read_until(b"PONG\r\n", WAIT);
    // 256 MiB published, read by nobody.
    for _ in 0..256 {
        publisher.send(&batch);
    }
    publisher.send(b"PING\r\n");
    publisher.read_until(b"PONG\r\n", Duration::from_secs(60));
    // The stuck subscriber was closed: what it gets is at most its kernel buffers' worth
    // and max_pending.
    let mut buf = vec![0u8; 1024 * 1024];
    let mut received = 0u64;
    stuck.stream.set_read_timeout(Some(WAIT)).unwrap();
    loop {
        match stuck.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stuck subscriber is closed, not left hanging: {e}"),
        }
    }
    assert!(
        received < 64 * MIB,
        "closed long before 256 MiB: {received}"
    );
    let growth = status_bytes(pid, "VmHWM").saturating_sub(peak_before);
    // The pending bytes sit in one buffer that grows by doubling: up to twice max_pending
    // reserved, and the old and new buffers both live while it grows. Four times max_pending
    // leaves room for that and for allocator slack; without the bound it is all 256 MiB.
    assert!(
        growth <= 4 * 16 * MIB,
        "peak memory grew by {} MiB for a 16 MiB max_pending",
        growth / MIB
    );
    // Counted in the shards' stats snapshot, taken on their next timer tick.
    assert!(eventually(|| server.handle().stats().slow_consumers >= 1));
    drop(publisher);
    assert_serves(server.port);
}
