//! Hostile clients: limits pushed one byte past their edge, control lines that never end,
//! thousands of connections reset in the middle of a message, subscribers that never read.
//! Where the bytes are deterministic the exchange runs against nats-server 2.15.1 too and must
//! match; after every case the server must still serve a fresh client (`assert_serves`).
//! Plain bytes-in/bytes-out cases with default settings live in `differential.rs`.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    abort, assert_serves, normalize_info, options, start, start_reference,
    start_reference_with_config, start_with, without_server_pings_bytes, Raw, TestServer,
};

const WAIT: Duration = Duration::from_secs(20);

/// Sends `chunks` on a fresh connection, one write each with a pause after it (so the server
/// sees separate reads), then settles it (a PING answered, or a close). Returns the output
/// (INFO normalized) and whether the server closed.
fn exchange(port: u16, chunks: &[&[u8]]) -> (String, bool) {
    let mut raw = Raw::connect(port);
    let mut out = raw.read_until(b"\r\n", WAIT);
    for chunk in chunks {
        if raw.stream.write_all(chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let (rest, closed) = raw.settle_after(chunks.last().copied().unwrap_or_default(), WAIT);
    out.extend_from_slice(&rest);
    (
        String::from_utf8_lossy(&normalize_info(&without_server_pings_bytes(out))).into_owned(),
        closed,
    )
}

/// Runs each case on both servers and returns the differences, one line each.
fn differences(ours: u16, reference: u16, cases: &[(String, Vec<Vec<u8>>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, chunks) in cases {
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let expected = exchange(reference, &chunks);
        let got = exchange(ours, &chunks);
        if expected != got {
            failures.push(format!(
                "case {name:?}\n  nats-server: {expected:?}\n  natsring:    {got:?}"
            ));
        }
    }
    failures
}

const CONNECT: &[u8] = b"CONNECT {\"verbose\":false}\r\n";
const CONNECT_HEADERS: &[u8] = b"CONNECT {\"verbose\":false,\"headers\":true}\r\n";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `max_control_line: 64` and `max_payload: 128`: every limit at its value and one over,
/// with complete lines and with lines still incomplete when the server reads them.
#[test]
fn small_configured_limits_match_nats_server() {
    let mut opts = options();
    opts.max_control_line = 64;
    opts.max_payload = 128;
    let ours = start_with(opts);
    let reference = start_reference_with_config("max_control_line: 64\nmax_payload: 128\n");
    // SUB arguments of exactly `len` bytes: "<subject> 1".
    let sub_arg = |len: usize| format!("{} 1", "s".repeat(len - 2)).into_bytes();
    let payload = |len: usize| "p".repeat(len).into_bytes();
    let mut cases: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for len in [64usize, 65] {
        cases.push((
            format!("SUB line of {len} argument bytes"),
            vec![cat(&[CONNECT, b"SUB ", &sub_arg(len), b"\r\nPING\r\n"])],
        ));
        cases.push((
            format!("SUB line of {len} argument bytes, bare newline"),
            vec![cat(&[CONNECT, b"SUB ", &sub_arg(len), b"\nPING\r\n"])],
        ));
        cases.push((
            format!("SUB line of {len} argument bytes read before its end"),
            vec![
                cat(&[CONNECT, b"SUB ", &sub_arg(len)]),
                b"\r\nPING\r\n".to_vec(),
            ],
        ));
        cases.push((
            format!("CONNECT of {len} argument bytes"),
            vec![cat(&[
                b"CONNECT {\"verbose\":false,\"name\":\"",
                "n".repeat(len - 29).as_bytes(),
                b"\"}\r\nPING\r\n",
            ])],
        ));
    }
    for len in [128usize, 129] {
        cases.push((
            format!("PUB of {len} bytes"),
            vec![cat(&[
                CONNECT,
                b"SUB p 1\r\n",
                format!("PUB p {len}\r\n").as_bytes(),
                &payload(len),
                b"\r\nPING\r\n",
            ])],
        ));
        cases.push((
            format!("HPUB of {len} bytes in all"),
            vec![cat(&[
                CONNECT_HEADERS,
                b"SUB p 1\r\n",
                format!("HPUB p 12 {len}\r\nNATS/1.0\r\n\r\n").as_bytes(),
                &payload(len - 12),
                b"\r\nPING\r\n",
            ])],
        ));
    }
    cases.push((
        "PUB size over max_payload, announced alone".into(),
        vec![cat(&[CONNECT, b"PUB p 129\r\n"])],
    ));
    cases.push((
        "PUB whose line is over the limit but whose payload is small".into(),
        vec![cat(&[
            CONNECT,
            format!("PUB {} 1\r\nx\r\nPING\r\n", "s".repeat(64)).as_bytes(),
        ])],
    ));
    cases.push((
        "PING with trailing bytes past the limit, complete".into(),
        vec![cat(&[b"PING ", &payload(200), b"\r\n"])],
    ));
    let failures = differences(ours.port, reference.port, &cases);
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_serves(ours.port);
}

/// The connection over `max_connections` gets INFO, then `-ERR 'maximum connections
/// exceeded'`, and is closed; once a connection leaves, a new one is served.
#[test]
fn max_connections_matches_nats_server() {
    let mut opts = options();
    opts.max_connections = 2;
    let ours = start_with(opts);
    let reference = start_reference_with_config("max_connections: 2\n");
    let run = |port: u16| {
        let mut first = Raw::connect_quiet(port);
        let mut second = Raw::connect_quiet(port);
        for raw in [&mut first, &mut second] {
            raw.send(b"PING\r\n");
            raw.read_until(b"PONG\r\n", WAIT);
        }
        let over = exchange(port, &[CONNECT, b"PING\r\n"]);
        drop(first);
        // The server learns of the close asynchronously: retry until a slot is free (a
        // rejected attempt holds one until its own close is handled, so keep the one that
        // got in).
        let deadline = Instant::now() + WAIT;
        let mut fresh = loop {
            let mut raw = Raw::connect(port);
            raw.read_until(b"\r\n", WAIT);
            if !raw.settle(WAIT).1 {
                break raw;
            }
            assert!(
                Instant::now() < deadline,
                "a closed connection frees its slot"
            );
        };
        common::assert_serves_connection(&mut fresh);
        drop(second);
        over
    };
    let expected = run(reference.port);
    assert_eq!(
        expected,
        (
            "INFO <headers=true,max_payload=1048576,proto=1>\r\n-ERR 'maximum connections exceeded'\r\n"
                .to_string(),
            true
        )
    );
    assert_eq!(run(ours.port), expected);
}

/// Unanswered server PINGs: two PINGs, then `-ERR 'Stale Connection'` and a close.
#[test]
fn stale_connection_matches_nats_server() {
    let mut opts = options();
    opts.ping_interval = std::time::Duration::from_millis(300);
    opts.ping_max = 2;
    let ours = start_with(opts);
    let reference = start_reference_with_config("ping_interval: \"300ms\"\nping_max: 2\n");
    let run = |port: u16| {
        let mut raw = Raw::connect_quiet(port);
        let (out, closed) = raw.read_until_or_close(b"-ERR 'Stale Connection'\r\n", WAIT);
        let (rest, closed_after) = if closed {
            (Vec::new(), true)
        } else {
            raw.read_until_quiet(Duration::from_secs(5))
        };
        (
            String::from_utf8_lossy(&[out, rest].concat()).into_owned(),
            closed_after,
        )
    };
    let expected = run(reference.port);
    assert_eq!(
        expected,
        (
            "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n".to_string(),
            true
        )
    );
    assert_eq!(run(ours.port), expected);
    assert_serves(ours.port);
}

/// Sends `prefix` and then `filler` a little at a time, never a newline, until the server
/// answers or closes. Returns the answer, whether it closed, and how many filler bytes had
/// been sent then. Gives up (returns open) after 1 MiB: a server that kept buffering that
/// much for one line would not be bounded by `max_control_line`. Once `wait_at` bytes are
/// sent it stops and waits (up to `WAIT`) for the close a bounded server answers with, so a
/// loaded machine does not let the sender run past the bound before the answer is read.
fn never_ending_line(
    port: u16,
    prefix: &[u8],
    filler: u8,
    wait_at: usize,
) -> (String, bool, usize) {
    const STEP_BYTES: usize = 256;
    const GIVE_UP_BYTES: usize = 1024 * 1024;
    let mut raw = Raw::connect(port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(prefix);
    let mut sent = 0usize;
    let mut out = Vec::new();
    let step = vec![filler; STEP_BYTES];
    let big = vec![filler; 64 * 1024];
    while sent < GIVE_UP_BYTES {
        // Small steps around the limit, then big ones: a server that does not cut the line
        // at the limit gets the whole megabyte quickly.
        let chunk = if sent < 16 * 1024 { &step } else { &big };
        if raw.stream.write_all(chunk).is_err() {
            let (rest, _) = raw.read_until_close_within(WAIT);
            out.extend_from_slice(&rest);
            return (String::from_utf8_lossy(&out).into_owned(), true, sent);
        }
        sent += chunk.len();
        let (rest, closed) = if sent >= wait_at && sent - chunk.len() < wait_at {
            raw.read_until_close_within(WAIT)
        } else {
            raw.read_until_quiet(Duration::from_millis(20))
        };
        out.extend_from_slice(&rest);
        // A keepalive PING (the first comes about 2 s after connect) is not an answer.
        out = without_server_pings_bytes(out);
        if closed || !out.is_empty() {
            if !closed {
                let (rest, now_closed) = raw.read_until_close_within(WAIT);
                out.extend_from_slice(&rest);
                return (String::from_utf8_lossy(&out).into_owned(), now_closed, sent);
            }
            return (String::from_utf8_lossy(&out).into_owned(), true, sent);
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false, sent)
}

/// A control line that never ends is cut at `max_control_line` (4096) with `-ERR 'maximum
/// control line exceeded'` and a close, by both servers, in every op that buffers its line.
#[test]
fn control_line_that_never_ends_is_cut_at_the_limit() {
    let ours = start();
    let reference = start_reference(&[]);
    let prefixes: [&[u8]; 6] = [
        b"SUB ",
        b"PUB ",
        b"UNSUB ",
        b"CONNECT ",
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB ",
        b"CONNECT {\"verbose\":false}\r\nsub foo ",
    ];
    for prefix in prefixes {
        let name = String::from_utf8_lossy(prefix).into_owned();
        let expected = never_ending_line(reference.port, prefix, b'a', 8 * 1024);
        let got = never_ending_line(ours.port, prefix, b'a', 8 * 1024);
        assert_eq!(
            (expected.0.as_str(), expected.1),
            ("-ERR 'maximum control line exceeded'\r\n", true),
            "nats-server, {name:?}"
        );
        assert_eq!(
            (got.0.as_str(), got.1),
            (expected.0.as_str(), expected.1),
            "natsring, {name:?}"
        );
        // Cut near the limit (the sender waits for the close at 8 KiB), not after a megabyte.
        assert!(
            got.2 <= 16 * 1024,
            "natsring cut {name:?} only after {} bytes",
            got.2
        );
    }
    assert_serves(ours.port);
}

/// Where nats-server keeps nothing (blanks after an op name, bytes after PING) it never
/// closes an endless line; natsring has to carry those bytes and cuts them at the limit
/// instead (documented in `proto::parser`). Either way memory stays bounded.
#[test]
fn endless_bytes_nats_server_skips_are_bounded_too() {
    let ours = start();
    let reference = start_reference(&[]);
    for (prefix, filler) in [
        (&b"PING "[..], b'j'),
        (&b"SUB"[..], b' '),
        (&b"PONG"[..], b'\t'),
    ] {
        let name = String::from_utf8_lossy(prefix).into_owned();
        let (out, closed, sent) = never_ending_line(reference.port, prefix, filler, usize::MAX);
        assert_eq!(
            (out.as_str(), closed),
            ("", false),
            "nats-server keeps {name:?} open"
        );
        assert!(sent >= 1024 * 1024);
        let (out, closed, sent) = never_ending_line(ours.port, prefix, filler, 8 * 1024);
        assert_eq!(
            (out.as_str(), closed),
            ("-ERR 'maximum control line exceeded'\r\n", true),
            "natsring, {name:?}"
        );
        assert!(
            sent <= 16 * 1024,
            "natsring cut {name:?} only after {sent} bytes"
        );
    }
    assert_serves(ours.port);
}

/// A raw subscriber on `subject` (sid 1) with its PONG read.
fn subscriber(port: u16, subject: &str) -> Raw {
    let mut raw = Raw::connect_quiet(port);
    raw.send(format!("SUB {subject} 1\r\nPING\r\n").as_bytes());
    raw.read_until(b"PONG\r\n", WAIT);
    raw
}

/// Reads the periodic stream `frame, frame, ...` from `raw` until `expected_bytes` of frames
/// have arrived or the server closed, checking every byte. A server keepalive `PING\r\n`
/// between two frames is skipped (the first one comes about 2 s after CONNECT). Returns the
/// frame bytes read.
fn read_frames(raw: &mut Raw, frame: &[u8], expected_bytes: usize) -> usize {
    const PING: &[u8] = b"PING\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut in_ping: Option<usize> = None;
    raw.stream.set_read_timeout(Some(WAIT)).unwrap();
    while got < expected_bytes {
        let n = match raw.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read after {got} of {expected_bytes} bytes: {e}"),
        };
        for &byte in &buf[..n] {
            let offset = got % frame.len();
            match in_ping {
                Some(index) => {
                    assert_eq!(byte, PING[index], "keepalive PING between frames");
                    in_ping = (index + 1 < PING.len()).then_some(index + 1);
                }
                None if offset == 0 && byte == PING[0] => in_ping = Some(1),
                None => {
                    assert_eq!(
                        byte,
                        frame[offset],
                        "byte {got} of the stream (frame of {} bytes)",
                        frame.len()
                    );
                    got += 1;
                }
            }
        }
    }
    got
}

/// Publishes `count` copies of `payload` on `subject` from a raw connection, then waits for
/// the PONG of a final PING (every message was handled).
fn publish_all(port: u16, subject: &str, payload: &[u8], count: usize) {
    let mut publisher = Raw::connect_quiet(port);
    let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    let batch = frame.repeat(16);
    for _ in 0..count / 16 {
        publisher.send(&batch);
    }
    for _ in 0..count % 16 {
        publisher.send(&frame);
    }
    publisher.send(b"PING\r\n");
    publisher.read_until(b"PONG\r\n", Duration::from_secs(60));
}

fn msg_frame(subject: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = format!("MSG {subject} 1 {}\r\n", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    frame
}

/// A subscriber that never reads is closed as a slow consumer once `max_pending` is
/// exceeded: no `-ERR` (nats-server sends none), just the close, and what it did get is an
/// intact prefix of the stream. The subscribers that read get every message.
fn slow_consumer_case(port: u16) {
    const COUNT: usize = 3_000;
    let payload = vec![b'z'; 16 * 1024];
    let frame = msg_frame("slow", &payload);
    let mut stuck = subscriber(port, "slow");
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut raw = subscriber(port, "slow");
            let frame = frame.clone();
            std::thread::spawn(move || read_frames(&mut raw, &frame, COUNT * frame.len()))
        })
        .collect();
    publish_all(port, "slow", &payload, COUNT);
    for reader in readers {
        assert_eq!(
            reader.join().unwrap(),
            COUNT * frame.len(),
            "a reading subscriber gets every message"
        );
    }
    // Everything the stuck subscriber was given before its close, then the close.
    let got = read_frames(&mut stuck, &frame, COUNT * frame.len());
    assert!(
        got < COUNT * frame.len(),
        "the stuck subscriber was closed before getting everything"
    );
}

#[test]
fn slow_consumer_is_closed_without_err_and_the_others_get_everything() {
    let reference = start_reference_with_config("max_pending: 8MB\n");
    slow_consumer_case(reference.port);
    let mut opts = options();
    opts.max_pending = 8 * 1000 * 1000;
    // Only max_pending may close the stuck subscriber in time, not the write deadline.
    opts.write_deadline = std::time::Duration::from_millis(120_000);
    let ours = start_with(opts);
    slow_consumer_case(ours.port);
    // Counters are published on each shard's tick (250 ms): the close may be newer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.handle().stats().slow_consumers == 0 {
        assert!(Instant::now() < deadline, "counted as a slow consumer");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_serves(ours.port);
}

/// Waits until the server counts `connections` open connections.
fn wait_for_connections(server: &TestServer, connections: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let open = server.handle().stats().connections;
        if open == connections {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still open, expected {connections}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A publisher and a subscriber that exchange numbered messages until `stop`, checking each
/// arrives in order. Returns the number of messages checked.
fn healthy_pair(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sub = subscriber(port, "healthy");
        let mut publisher = Raw::connect_quiet(port);
        let mut checked = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            let mut expected = Vec::new();
            for i in checked..checked + 50 {
                let payload = i.to_string();
                batch.extend_from_slice(
                    format!("PUB healthy {}\r\n{payload}\r\n", payload.len()).as_bytes(),
                );
                expected.extend_from_slice(
                    format!("MSG healthy 1 {}\r\n{payload}\r\n", payload.len()).as_bytes(),
                );
            }
            publisher.send(&batch);
            // No PING from the subscriber to mark the end: its PONG is not ordered after
            // messages coming from a publisher on another shard.
            let mut raw = Vec::new();
            let mut got = String::new();
            while got.len() < expected.len() {
                raw.extend_from_slice(&sub.read_until(b"\r\n", WAIT));
                got = common::without_server_pings(raw.clone());
            }
            assert_eq!(got, String::from_utf8_lossy(&expected), "healthy messages");
            checked += 50;
        }
        checked
    })
}

/// Thousands of connections, each cut off with a TCP RST in the middle of something: a
/// control line, a payload, a header block, a long line, right after subscribing to a subject
/// a healthy client is using, or before sending anything. The healthy pair keeps working
/// throughout, every connection is accounted closed, and the server serves a fresh client.
#[test]
fn thousands_of_connections_reset_mid_message() {
    const CONNECTIONS: usize = 2_000;
    const WAVE: usize = 200;
    let server = start();
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = healthy_pair(server.port, stop.clone());
    let kinds: [Vec<u8>; 7] = [
        cat(&[CONNECT, b"PUB healthy 1"]),
        cat(&[CONNECT, b"PUB storm 100\r\n", &[b'x'; 50]]),
        cat(&[
            CONNECT,
            b"SUB healthy 9\r\nPUB storm 1000000\r\n",
            &[b'y'; 4000],
        ]),
        cat(&[CONNECT_HEADERS, b"HPUB storm 20 40\r\nNATS/1"]),
        cat(&[CONNECT, b"SUB storm.", &[b'a'; 2000]]),
        cat(&[CONNECT, b"SUB healthy 3\r\nSUB storm.> 4\r\nPING\r\n"]),
        Vec::new(),
    ];
    for wave in 0..CONNECTIONS / WAVE {
        let streams: Vec<_> = (0..WAVE)
            .map(|i| {
                let mut stream =
                    std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
                let bytes = &kinds[(wave * WAVE + i) % kinds.len()];
                if !bytes.is_empty() {
                    stream.write_all(bytes).expect("send before the reset");
                }
                stream
            })
            .collect();
        // Let the server read some of them before the resets.
        std::thread::sleep(Duration::from_millis(20));
        for stream in streams {
            abort(stream);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let checked = healthy.join().expect("the healthy pair kept working");
    assert!(checked > 0);
    wait_for_connections(&server, 0);
    assert_serves(server.port);
}

/// A large fan-out with some subscribers reset mid-stream (some mid-message): the others get
/// every message, byte for byte.
#[test]
fn connections_reset_during_a_large_fan_out() {
    const SUBSCRIBERS: usize = 30;
    const RESET_EVERY: usize = 3;
    const COUNT: usize = 1_000;
    let server = start();
    let payload = vec![b'f'; 2000];
    let frame = msg_frame("fan", &payload);
    let readers: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut raw = subscriber(server.port, "fan");
            let frame = frame.clone();
            std::thread::spawn(move || {
                if i % RESET_EVERY == 0 {
                    // Reset after a few messages and a half: mid-message, output in flight.
                    let stop_at = frame.len() * (5 + i * 7) + frame.len() / 2;
                    read_frames(&mut raw, &frame, stop_at);
                    raw.reset();
                    None
                } else {
                    Some(read_frames(&mut raw, &frame, COUNT * frame.len()))
                }
            })
        })
        .collect();
    publish_all(server.port, "fan", &payload, COUNT);
    for reader in readers {
        if let Some(got) = reader.join().unwrap() {
            assert_eq!(got, COUNT * frame.len(), "a subscriber gets every message");
        }
    }
    wait_for_connections(&server, 0);
    assert_serves(server.port);
}
