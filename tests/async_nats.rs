//! Integration tests with the official Rust client (async-nats) over real sockets.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::time::timeout;

use common::{options, start, start_with, sync, Raw};

const WAIT: Duration = Duration::from_secs(10);

async fn client(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("connect")
}

#[tokio::test]
async fn publish_subscribe() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut sub = nc.subscribe("greet.joe").await.unwrap();
    sync(&nc).await;
    nc.publish("greet.joe", "hello".into()).await.unwrap();
    let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(msg.subject.as_str(), "greet.joe");
    assert_eq!(&msg.payload[..], b"hello");
}

#[tokio::test]
async fn server_info_fields() {
    let server = start();
    let nc = client(&server.url()).await;
    let info = nc.server_info();
    assert!(info.headers);
    assert_eq!(info.max_payload, 1024 * 1024);
    assert_eq!(info.proto, 1);
    assert_eq!(info.server_id.len(), 56);
    assert!(info.server_id.starts_with('N'));
    assert!(info.version.starts_with("2."));
    assert_eq!(info.port, server.port);
}

#[tokio::test]
async fn wildcards() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut star = nc.subscribe("a.*").await.unwrap();
    let mut full = nc.subscribe("a.>").await.unwrap();
    let mut mid = nc.subscribe("*.b.*").await.unwrap();
    sync(&nc).await;
    for subject in ["a.b", "a.b.c", "b.x", "x.b.y"] {
        nc.publish(subject, subject.into()).await.unwrap();
    }
    nc.publish("done", "".into()).await.unwrap();
    sync(&nc).await;
    assert_eq!(collect(&mut star, 1).await, vec!["a.b"]);
    assert_eq!(collect(&mut full, 2).await, vec!["a.b", "a.b.c"]);
    assert_eq!(collect(&mut mid, 2).await, vec!["a.b.c", "x.b.y"]);
    // Nothing more arrives for any of them.
    for sub in [&mut star, &mut full, &mut mid] {
        assert!(timeout(Duration::from_millis(200), sub.next())
            .await
            .is_err());
    }
}

async fn collect(sub: &mut async_nats::Subscriber, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            timeout(WAIT, sub.next())
                .await
                .unwrap()
                .unwrap()
                .subject
                .to_string(),
        );
    }
    got
}

#[tokio::test]
async fn queue_group_is_fair_and_exclusive() {
    let server = start();
    let publisher = client(&server.url()).await;
    let members = 4;
    let total = 10_000usize;
    let mut subs = Vec::new();
    for _ in 0..members {
        let nc = client(&server.url()).await;
        let sub = nc.queue_subscribe("work", "workers".into()).await.unwrap();
        sync(&nc).await;
        subs.push((nc, sub));
    }
    let mut plain = publisher.subscribe("work").await.unwrap();
    sync(&publisher).await;
    for i in 0..total {
        publisher
            .publish("work", i.to_string().into())
            .await
            .unwrap();
    }
    sync(&publisher).await;
    // Every message reaches one member: read them all (whichever members they went to).
    let mut seen = vec![0u8; total];
    let mut counts = vec![0usize; members];
    let mut received = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while received < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{received} of {total} delivered, counts {counts:?}"
        );
        for (member, (_, sub)) in subs.iter_mut().enumerate() {
            while let Ok(Some(msg)) = timeout(Duration::from_millis(10), sub.next()).await {
                let i: usize = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
                seen[i] += 1;
                counts[member] += 1;
                received += 1;
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every message delivered to exactly one member"
    );
    let fair = total / members;
    for count in &counts {
        let diff = (*count as f64 - fair as f64).abs() / fair as f64;
        assert!(
            diff <= 0.10,
            "member got {count} of {total}, counts {counts:?}"
        );
    }
    // The plain subscriber on the same subject gets every message too.
    for _ in 0..total {
        timeout(WAIT, plain.next()).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn request_reply() {
    let server = start();
    let responder = client(&server.url()).await;
    let mut service = responder.subscribe("svc.echo").await.unwrap();
    sync(&responder).await;
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&msg.payload);
            responder
                .publish(msg.reply.unwrap(), reply.into())
                .await
                .unwrap();
        }
    });
    let requester = client(&server.url()).await;
    for i in 0..50 {
        let answer = timeout(WAIT, requester.request("svc.echo", format!("{i}").into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.payload, Bytes::from(format!("echo:{i}")));
    }
}

#[tokio::test]
async fn headers_round_trip() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut sub = nc.subscribe("h").await.unwrap();
    sync(&nc).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Test", "1");
    headers.append("X-Multi", "a");
    headers.append("X-Multi", "b");
    nc.publish_with_headers("h", headers, "body".into())
        .await
        .unwrap();
    let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    let got = msg.headers.expect("headers");
    assert_eq!(got.get("X-Test").map(|v| v.as_str()), Some("1"));
    let multi: Vec<&str> = got.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, vec!["a", "b"]);
    assert_eq!(&msg.payload[..], b"body");
}

#[tokio::test]
async fn no_responders() {
    let server = start();
    let nc = client(&server.url()).await;
    let err = nc
        .request("nobody.home", "x".into())
        .await
        .expect_err("no responders");
    // The 503 status answered it: a timeout would be RequestErrorKind::TimedOut.
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn echo_off() {
    let server = start();
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(server.url())
        .await
        .unwrap();
    let other = client(&server.url()).await;
    let mut sub = quiet.subscribe("e").await.unwrap();
    sync(&quiet).await;
    quiet.publish("e", "mine".into()).await.unwrap();
    sync(&quiet).await;
    other.publish("e", "theirs".into()).await.unwrap();
    sync(&other).await;
    let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(&msg.payload[..], b"theirs");
    assert!(timeout(Duration::from_millis(200), sub.next())
        .await
        .is_err());
}

#[tokio::test]
async fn auto_unsubscribe() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut sub = nc.subscribe("au").await.unwrap();
    sub.unsubscribe_after(5).await.unwrap();
    sync(&nc).await;
    for i in 0..10 {
        nc.publish("au", format!("{i}").into()).await.unwrap();
    }
    sync(&nc).await;
    // The subscription ends after its fifth message: the stream closes.
    let mut got = Vec::new();
    while let Some(msg) = timeout(WAIT, sub.next()).await.expect("the stream ends") {
        got.push(String::from_utf8(msg.payload.to_vec()).unwrap());
    }
    assert_eq!(got, vec!["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn one_mebibyte_payloads() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut sub = nc.subscribe("big").await.unwrap();
    sync(&nc).await;
    for round in 0..5u8 {
        let payload: Vec<u8> = (0..1024 * 1024)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(round))
            .collect();
        nc.publish("big", payload.clone().into()).await.unwrap();
        let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!(msg.payload.len(), payload.len());
        assert!(msg.payload[..] == payload[..], "payload {round} intact");
    }
}

#[tokio::test]
async fn max_payload_violation_closes() {
    let server = start();
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false}\r\nPUB foo 1048577\r\n");
    let out = raw.read_until_closed(WAIT);
    assert_eq!(out, b"-ERR 'Maximum Payload Violation'\r\n");
    // The server still serves others.
    let nc = client(&server.url()).await;
    sync(&nc).await;
}

#[tokio::test]
async fn unknown_operation_closes() {
    let server = start();
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false}\r\nHELLO\r\n");
    let out = raw.read_until_closed(WAIT);
    assert_eq!(out, b"-ERR 'Unknown Protocol Operation'\r\n");
}

#[tokio::test]
async fn verbose_and_pedantic() {
    let server = start();
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":true,\"pedantic\":true}\r\nSUB a 1\r\nPUB a.* 1\r\nx\r\nPUB a 1\r\ny\r\nPING\r\n");
    let out = raw.read_until(b"PONG\r\n", WAIT);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "+OK\r\n+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\n+OK\r\nMSG a 1 1\r\ny\r\nPONG\r\n"
    );
}

#[tokio::test]
async fn thousand_subscribers_on_one_subject() {
    let server = start();
    let nc = client(&server.url()).await;
    let mut subs = Vec::new();
    for _ in 0..1000 {
        subs.push(nc.subscribe("fan").await.unwrap());
    }
    sync(&nc).await;
    let publisher = client(&server.url()).await;
    for i in 0..3 {
        publisher
            .publish("fan", format!("{i}").into())
            .await
            .unwrap();
    }
    sync(&publisher).await;
    for sub in subs.iter_mut() {
        for i in 0..3 {
            let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
            assert_eq!(msg.payload, Bytes::from(format!("{i}")));
        }
    }
}

#[tokio::test]
async fn hundred_thousand_messages_complete_and_in_order() {
    let server = start();
    let subscriber = client(&server.url()).await;
    let mut sub = subscriber.subscribe("seq").await.unwrap();
    sync(&subscriber).await;
    let publisher = client(&server.url()).await;
    common::assert_sequence_in_order(publisher, &mut sub, "seq", 100_000).await;
}

#[tokio::test]
async fn many_publishers_keep_per_publisher_order() {
    let server = start();
    let subscriber = client(&server.url()).await;
    let mut sub = subscriber.subscribe("multi.>").await.unwrap();
    sync(&subscriber).await;
    let publishers = 4;
    let per = 5_000u64;
    for p in 0..publishers {
        let nc = client(&server.url()).await;
        tokio::spawn(async move {
            for i in 0..per {
                nc.publish(format!("multi.{p}"), i.to_string().into())
                    .await
                    .unwrap();
            }
            sync(&nc).await;
        });
    }
    let mut next: HashMap<String, u64> = HashMap::new();
    for _ in 0..publishers as u64 * per {
        let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        let i: u64 = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
        let expected = next.entry(msg.subject.to_string()).or_insert(0);
        assert_eq!(i, *expected, "order within {}", msg.subject);
        *expected += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_others_unaffected() {
    let mut opts = options();
    opts.max_pending = 8 * 1024 * 1024;
    let server = start_with(opts);
    // A subscriber that never reads.
    let mut stuck = Raw::connect(server.port);
    stuck.read_until(b"\r\n", WAIT);
    stuck.send(b"CONNECT {\"verbose\":false}\r\nSUB slow 1\r\nPING\r\n");
    stuck.read_until(b"PONG\r\n", WAIT);
    stuck.stream.set_read_timeout(None).unwrap();
    let healthy = client(&server.url()).await;
    let mut good = healthy.subscribe("slow").await.unwrap();
    sync(&healthy).await;
    let publisher = client(&server.url()).await;
    let payload = Bytes::from(vec![b'x'; 16 * 1024]);
    // 64 MiB: far more than the stuck socket's kernel buffers and max_pending hold together.
    let total = 4_000usize;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            timeout(WAIT, good.next())
                .await
                .expect("healthy subscriber keeps receiving")
                .unwrap();
            n += 1;
        }
        n
    });
    for _ in 0..total {
        publisher.publish("slow", payload.clone()).await.unwrap();
    }
    sync(&publisher).await;
    assert_eq!(reader.await.unwrap(), total);
    // The stuck subscriber was closed as a slow consumer.
    let deadline = std::time::Instant::now() + WAIT;
    while server.handle().stats().slow_consumers == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "slow consumer detected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keepalive_pings_then_stale_connection() {
    let mut opts = options();
    opts.ping_interval = std::time::Duration::from_millis(300);
    opts.ping_max = 2;
    let server = start_with(opts);
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false}\r\n");
    // Two PINGs go unanswered; the third interval ends the connection.
    let (out, closed) = {
        let deadline = std::time::Instant::now() + WAIT;
        let mut all = Vec::new();
        loop {
            let (chunk, closed) = raw.read_until_quiet(Duration::from_millis(200));
            all.extend_from_slice(&chunk);
            if closed || std::time::Instant::now() > deadline {
                break (all, closed);
            }
        }
    };
    assert_eq!(
        String::from_utf8_lossy(&out),
        "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n"
    );
    assert!(closed);
}

#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let mut opts = options();
    // A loaded machine may take a while to answer: up to two intervals pass unanswered
    // before the server would close.
    opts.ping_interval = std::time::Duration::from_millis(500);
    opts.ping_max = 2;
    let server = start_with(opts);
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false}\r\n");
    for _ in 0..4 {
        raw.read_until(b"PING\r\n", WAIT);
        raw.send(b"PONG\r\n");
    }
    raw.send(b"PING\r\n");
    raw.read_until(b"PONG\r\n", WAIT);
}

/// A subscriber whose socket accepts nothing for longer than `write_deadline` is closed as a
/// slow consumer even though it is under `max_pending`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_deadline_closes_a_stalled_subscriber() {
    let mut opts = options();
    opts.write_deadline = std::time::Duration::from_millis(500);
    opts.max_pending = 256 * 1024 * 1024;
    let server = start_with(opts);
    let mut stuck = Raw::connect(server.port);
    stuck.read_until(b"\r\n", WAIT);
    stuck.send(b"CONNECT {\"verbose\":false}\r\nSUB stall 1\r\nPING\r\n");
    stuck.read_until(b"PONG\r\n", WAIT);
    let publisher = client(&server.url()).await;
    // 24 MiB: more than the stuck socket's kernel buffers hold, less than max_pending.
    let payload = Bytes::from(vec![b'x'; 64 * 1024]);
    for _ in 0..384 {
        publisher.publish("stall", payload.clone()).await.unwrap();
    }
    sync(&publisher).await;
    let deadline = std::time::Instant::now() + WAIT;
    while server.handle().stats().slow_consumers == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "write deadline enforced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The publisher was slowed, never stopped: it is still served.
    sync(&publisher).await;
}

/// A client that sends its last commands and half-closes (as `printf ... | nc` does) still
/// gets every reply, the -ERR included, before the server closes (nats-server flushes too).
#[tokio::test]
async fn replies_are_flushed_when_the_client_half_closes() {
    let server = start();
    for _ in 0..20 {
        let mut raw = Raw::connect(server.port);
        raw.read_until(b"\r\n", WAIT);
        raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\nFOO\r\n");
        raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let out = raw.read_until_closed(WAIT);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "PONG\r\n-ERR 'Unknown Protocol Operation'\r\n"
        );
    }
}

/// Output other than messages counts against max_pending too: a client that floods PINGs and
/// never reads its PONGs is closed as a slow consumer instead of growing server memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_without_reading_is_bounded_by_max_pending() {
    let mut opts = options();
    opts.max_pending = 1024 * 1024;
    let server = start_with(opts);
    let mut raw = Raw::connect(server.port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false}\r\n");
    let flood = b"PING\r\n".repeat(100_000);
    let mut stream = raw.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // 6 MB of PONGs owed per round; stop when the server closes us.
        for _ in 0..20 {
            if stream.write_all(&flood).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    while server.handle().stats().slow_consumers == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "flooding client closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.join().unwrap();
}

/// A publisher paused for a slow subscriber keeps what it sent: the bytes received while it
/// was paused (and its end of file after them) are handled in order once it resumes, so a
/// burst followed by a close arrives complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_publisher_that_closes_loses_nothing() {
    let server = start();
    let mut subscriber = Raw::connect(server.port);
    subscriber.read_until(b"\r\n", WAIT);
    subscriber.send(b"CONNECT {\"verbose\":false}\r\nSUB burst 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    let mut publisher = Raw::connect(server.port);
    publisher.read_until(b"\r\n", WAIT);
    let count = 3_000usize;
    let frame = format!("PUB burst 16384\r\n{}\r\n", "y".repeat(16384));
    let mut stream = publisher.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        stream
            .write_all(b"CONNECT {\"verbose\":false}\r\n")
            .unwrap();
        for _ in 0..count {
            stream.write_all(frame.as_bytes()).unwrap();
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // A slow reader: the publisher is paused.
    let got = subscriber.read_messages_slowly(count, Duration::from_micros(500));
    assert_eq!(got, count, "the subscriber was not closed");
    sender.join().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while server.handle().stats().publisher_pauses == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst paused the publisher at least once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ServerHandle::connections` asks every shard through its control mailbox: each client is
/// listed once, on the shard it is on, with what it did (CONNECT name, messages in and out,
/// subscriptions), and a closed client drops out of the list. The client publishes to its own
/// subscription, so the counts do not depend on a delivery across shards.
#[tokio::test]
async fn connection_snapshots_through_the_shards_mailboxes() {
    let server = start();
    let connect_named = |name: &'static str| {
        let url = server.url();
        async move {
            async_nats::ConnectOptions::new()
                .name(name)
                .connect(url)
                .await
                .expect("connect")
        }
    };
    let client = connect_named("the client").await;
    let _other = connect_named("the other").await;
    let leaver = connect_named("the leaver").await;
    let mut sub_a = client.subscribe("snap.a").await.unwrap();
    let _sub_b = client.subscribe("snap.b").await.unwrap();
    // Publishing on the subscribing connection itself: its SUBs are handled before its PUBs,
    // so no round trip is needed (and `sync`'s request would count as a message).
    // async-nats' `flush` only writes out its buffer; it sends no PING.
    for _ in 0..5 {
        client.publish("snap.a", "12345".into()).await.unwrap();
    }
    client.flush().await.unwrap();
    for _ in 0..5 {
        timeout(WAIT, sub_a.next()).await.unwrap().unwrap();
    }

    let all = server.handle().connections();
    let named = |name: &str| {
        let found: Vec<_> = all.iter().filter(|conn| conn.name == name).collect();
        assert_eq!(found.len(), 1, "{name} listed once in {all:?}");
        found[0].clone()
    };
    let (c, o, l) = (named("the client"), named("the other"), named("the leaver"));
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        (
            c.in_msgs,
            c.in_bytes,
            c.out_msgs,
            c.out_bytes,
            c.subscriptions
        ),
        (5, 25, 5, 25, 2)
    );
    assert_eq!((o.in_msgs, o.out_msgs, o.subscriptions), (0, 0, 0));
    assert_eq!(c.lang, "rust");
    assert!(all
        .iter()
        .all(|conn| usize::from(conn.shard) < server.handle().shard_count()));
    assert!(all
        .iter()
        .all(|conn| conn.ip == "127.0.0.1" && conn.peer().starts_with("127.0.0.1:")));
    let mut cids: Vec<u64> = all.iter().map(|conn| conn.cid).collect();
    cids.dedup();
    assert_eq!(cids.len(), 3, "cids are distinct (and sorted): {all:?}");

    drop(leaver);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = server.handle().connections();
        if now.iter().all(|conn| conn.cid != l.cid) {
            assert_eq!(now.len(), 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the leaver is still listed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
