//! Cross-shard behaviour, on purpose: every test places its clients on chosen shards (a
//! connection's shard is known from the `client_id` in its INFO) and checks that N shards look
//! like one server.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use natsring::shard_of_client_id;
use tokio::time::timeout;

use common::{options, start_with, sync, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn server(shards: usize) -> TestServer {
    let mut opts = options();
    opts.shards = shards;
    start_with(opts)
}

/// Connects until the connection lands on `shard` (the kernel spreads connections by hash).
async fn client_on(server: &TestServer, shard: usize) -> async_nats::Client {
    let shards = server.handle().shard_count();
    for _ in 0..200 {
        let client = async_nats::connect(server.url()).await.expect("connect");
        if shard_of_client_id(client.server_info().client_id, shards) == shard {
            return client;
        }
        drop(client);
    }
    panic!("no connection landed on shard {shard} in 200 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_tell_the_shard_and_every_shard_gets_connections() {
    let server = server(4);
    let mut seen = [0usize; 4];
    for _ in 0..64 {
        let client = async_nats::connect(server.url()).await.unwrap();
        seen[shard_of_client_id(client.server_info().client_id, 4)] += 1;
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "connections on every shard: {seen:?}"
    );
    // And the placement helper finds each shard.
    for shard in 0..4 {
        let client = client_on(&server, shard).await;
        assert_eq!(shard_of_client_id(client.server_info().client_id, 4), shard);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_across_shards_complete_and_in_order() {
    let server = server(2);
    let subscriber = client_on(&server, 1).await;
    let mut sub = subscriber.subscribe("seq").await.unwrap();
    sync(&subscriber).await;
    let publisher = client_on(&server, 0).await;
    common::assert_sequence_in_order(publisher, &mut sub, "seq", 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reaches_subscribers_on_every_shard() {
    let server = server(4);
    let mut subs = Vec::new();
    for shard in 0..4 {
        for _ in 0..2 {
            let client = client_on(&server, shard).await;
            let sub = client.subscribe("fan.>").await.unwrap();
            sync(&client).await;
            subs.push((client, sub));
        }
    }
    let publisher = client_on(&server, 2).await;
    let total = 1_000;
    for i in 0..total {
        publisher
            .publish(format!("fan.{}", i % 7), i.to_string().into())
            .await
            .unwrap();
    }
    sync(&publisher).await;
    for (_, sub) in subs.iter_mut() {
        for expected in 0..total {
            let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
            assert_eq!(
                std::str::from_utf8(&msg.payload).unwrap(),
                expected.to_string()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_across_shards_is_fair_and_exclusive() {
    let server = server(4);
    let total = 10_000usize;
    let mut members = Vec::new();
    for shard in 0..4 {
        let client = client_on(&server, shard).await;
        let sub = client
            .queue_subscribe("jobs", "workers".into())
            .await
            .unwrap();
        sync(&client).await;
        members.push((client, sub));
    }
    let publisher = client_on(&server, 1).await;
    for i in 0..total {
        publisher
            .publish("jobs", i.to_string().into())
            .await
            .unwrap();
    }
    sync(&publisher).await;
    let mut seen = vec![0u8; total];
    let mut counts = Vec::new();
    for (_, sub) in members.iter_mut() {
        let mut count = 0usize;
        while let Ok(Some(msg)) = timeout(Duration::from_millis(700), sub.next()).await {
            seen[std::str::from_utf8(&msg.payload)
                .unwrap()
                .parse::<usize>()
                .unwrap()] += 1;
            count += 1;
        }
        counts.push(count);
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "each message to exactly one member; counts {counts:?}"
    );
    for &count in &counts {
        let share = count as f64 / (total / 4) as f64;
        assert!((0.9..=1.1).contains(&share), "fair within 10%: {counts:?}");
    }
}

/// The visibility rule: once SUB and a later PING's PONG are done, a message published
/// afterwards on any shard is delivered. Repeated to catch races.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_is_visible_everywhere_after_its_pong() {
    let server = server(2);
    let subscriber = client_on(&server, 0).await;
    let publisher = client_on(&server, 1).await;
    for round in 0..300 {
        let subject = format!("race.{round}");
        let mut sub = subscriber.subscribe(subject.clone()).await.unwrap();
        sync(&subscriber).await; // PING/PONG
        publisher.publish(subject, "x".into()).await.unwrap();
        sync(&publisher).await;
        if timeout(WAIT, sub.next()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            panic!(
                "round {round}: message lost; stats {:?}",
                server.handle().stats()
            );
        }
        sub.unsubscribe().await.unwrap();
    }
}

/// A short burst into a shard that has been idle since its SUB (a fresh server each round, so
/// every receiving shard is asleep in its ring): all of it arrives, for every pair of shards.
/// The round trip is `sync`'s: async-nats' `flush` only writes out its buffer and sends no
/// PING, so it says nothing about the server having handled the SUB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_burst_into_an_idle_shard_arrives_whole() {
    for round in 0..24 {
        let (from, to) = (round % 4, (round / 4 + 1 + round % 4) % 4);
        if from == to {
            continue;
        }
        let server = server(4);
        let subscriber = client_on(&server, to).await;
        let publisher = client_on(&server, from).await;
        let mut sub = subscriber.subscribe("burst").await.unwrap();
        sync(&subscriber).await;
        for i in 0..5 {
            publisher
                .publish("burst", i.to_string().into())
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
        for i in 0..5 {
            let msg = timeout(WAIT, sub.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "round {round}, shard {from} to {to}: message {i} lost; {:?}",
                        server.handle().stats()
                    )
                })
                .unwrap();
            assert_eq!(std::str::from_utf8(&msg.payload).unwrap(), i.to_string());
        }
    }
}

/// And unsubscribing: after UNSUB and a later PONG, nothing more arrives from any shard. Raw
/// connections: async-nats drops a subscription's messages itself once `unsubscribe` is called,
/// so a client-side check could not see the server deliver too much.
#[test]
fn unsubscribe_takes_effect_everywhere_after_its_pong() {
    let server = server(2);
    let mut subscriber = raw_on(&server, 0);
    let mut publisher = raw_on(&server, 1);
    subscriber.send(b"SUB gone 1\r\nSUB gone.marker 2\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    subscriber.send(b"UNSUB 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    publisher.send(&b"PUB gone 4\r\nlate\r\n".repeat(100));
    publisher.send(b"PUB gone.marker 3\r\nend\r\n");
    // The marker went the same way after the others: once it is in, nothing else is coming.
    let got = subscriber.read_until(b"MSG gone.marker 2 3\r\nend\r\n", WAIT);
    assert!(
        !got.windows(9).any(|window| window == b"MSG gone "),
        "delivered after UNSUB: {}",
        String::from_utf8_lossy(&got)
    );
}

/// `UNSUB sid 100` with publishers on four shards: exactly 100 arrive, none more. Counted on a
/// raw connection, since async-nats stops a subscription at its limit on its own.
#[test]
fn auto_unsubscribe_limit_reached_by_several_shards() {
    let server = server(4);
    let mut subscriber = raw_on(&server, 0);
    subscriber.send(b"SUB limited 1\r\nUNSUB 1 100\r\nSUB limited.end 2\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    let publishers: Vec<_> = (0..4).map(|shard| raw_on(&server, shard)).collect();
    let threads: Vec<_> = publishers
        .into_iter()
        .map(|mut publisher| {
            std::thread::spawn(move || {
                publisher.send(&b"PUB limited 2\r\nhi\r\n".repeat(100));
                // Per-publisher order: once its marker is in, its messages are too.
                publisher.send(b"PUB limited.end 0\r\n\r\nPING\r\n");
                publisher.read_until(b"PONG\r\n", WAIT);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got
        .windows(19)
        .filter(|w| *w == b"MSG limited.end 2 0")
        .count()
        < 4
    {
        assert!(std::time::Instant::now() < deadline, "four markers arrive");
        let (chunk, closed) = subscriber.read_until_quiet(Duration::from_millis(50));
        assert!(!closed);
        got.extend_from_slice(&chunk);
    }
    let delivered = got
        .windows(16)
        .filter(|window| *window == b"MSG limited 1 2\r")
        .count();
    assert_eq!(
        delivered, 100,
        "exactly the limit, whichever shards the messages came from"
    );
}

/// A subscriber goes away while a publisher on another shard keeps sending to it: the frames
/// in flight find it gone, nothing breaks, and everyone else is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_closing_while_messages_are_in_flight() {
    let server = server(2);
    let publisher = client_on(&server, 0).await;
    let survivor = client_on(&server, 1).await;
    let mut kept = survivor.subscribe("flood").await.unwrap();
    sync(&survivor).await;
    for round in 0..20 {
        let leaver = client_on(&server, 1).await;
        let mut sub = leaver.subscribe("flood").await.unwrap();
        sync(&leaver).await;
        let sender = publisher.clone();
        let flood = tokio::spawn(async move {
            for i in 0..2_000 {
                sender
                    .publish("flood", format!("{round}.{i}").into())
                    .await
                    .unwrap();
            }
            sync(&sender).await;
        });
        timeout(WAIT, sub.next()).await.unwrap().unwrap();
        drop(sub);
        drop(leaver);
        flood.await.unwrap();
        for _ in 0..2_000 {
            timeout(WAIT, kept.next())
                .await
                .expect("survivor gets everything")
                .unwrap();
        }
    }
    let fresh = client_on(&server, 1).await;
    sync(&fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_across_shards() {
    let server = server(2);
    let responder = client_on(&server, 0).await;
    let mut service = responder.subscribe("svc").await.unwrap();
    sync(&responder).await;
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            responder
                .publish(msg.reply.unwrap(), msg.payload)
                .await
                .unwrap();
        }
    });
    let requester = client_on(&server, 1).await;
    let mut answers: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        let reply = timeout(WAIT, requester.request("svc", format!("{i}").into()))
            .await
            .unwrap()
            .unwrap();
        *answers
            .entry(String::from_utf8(reply.payload.to_vec()).unwrap())
            .or_default() += 1;
    }
    assert_eq!(answers.len(), 200);
    // No responders crosses shards too: nobody on any shard listens here.
    let err = requester
        .request("nobody", "x".into())
        .await
        .expect_err("no responders");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_cross_shards() {
    let server = server(2);
    let subscriber = client_on(&server, 1).await;
    let mut sub = subscriber.subscribe("big").await.unwrap();
    sync(&subscriber).await;
    let publisher = client_on(&server, 0).await;
    for round in 0..20u8 {
        let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i as u8) ^ round).collect();
        publisher
            .publish("big", payload.clone().into())
            .await
            .unwrap();
        let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert!(msg.payload[..] == payload[..], "payload {round} intact");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_shards_than_cores_still_deliver() {
    let server = server(8);
    let mut subs = Vec::new();
    for shard in [0, 3, 5, 7] {
        let client = client_on(&server, shard).await;
        let sub = client.subscribe("many").await.unwrap();
        sync(&client).await;
        subs.push((client, sub));
    }
    let publisher = client_on(&server, 6).await;
    for i in 0..500 {
        publisher
            .publish("many", i.to_string().into())
            .await
            .unwrap();
    }
    sync(&publisher).await;
    for (_, sub) in subs.iter_mut() {
        for i in 0..500 {
            let msg = timeout(WAIT, sub.next()).await.unwrap().unwrap();
            assert_eq!(std::str::from_utf8(&msg.payload).unwrap(), i.to_string());
        }
    }
}

/// A raw connection on a chosen shard (its INFO's client_id tells where it landed).
fn raw_on(server: &TestServer, shard: usize) -> common::Raw {
    let shards = server.handle().shard_count();
    for _ in 0..200 {
        let mut raw = common::Raw::connect(server.port);
        let info = raw.read_until(b"\r\n", WAIT);
        let json: serde_json::Value = serde_json::from_slice(info[5..].trim_ascii()).unwrap();
        if shard_of_client_id(json["client_id"].as_u64().unwrap(), shards) == shard {
            raw.send(b"CONNECT {\"verbose\":false}\r\n");
            return raw;
        }
    }
    panic!("no raw connection landed on shard {shard}");
}

/// The visibility rule exactly as clients rely on it: SUB, then PING; once PONG is back, a
/// PUB from a connection on another shard is delivered. And UNSUB + PING/PONG stops it.
#[test]
fn visibility_rule_with_raw_ping_pong() {
    let server = server(2);
    let mut subscriber = raw_on(&server, 0);
    let mut publisher = raw_on(&server, 1);
    for round in 0..300 {
        subscriber.send(format!("SUB vis.{round} {round}\r\nPING\r\n").as_bytes());
        subscriber.read_until(b"PONG\r\n", WAIT);
        publisher.send(format!("PUB vis.{round} 2\r\nok\r\n").as_bytes());
        let expected = format!("MSG vis.{round} {round} 2\r\nok\r\n");
        // A long (loaded) run sees the server's keepalive PINGs too.
        let got = common::without_server_pings(subscriber.read_until(expected.as_bytes(), WAIT));
        assert_eq!(got, expected, "round {round}");
        subscriber.send(format!("UNSUB {round}\r\nPING\r\n").as_bytes());
        subscriber.read_until(b"PONG\r\n", WAIT);
        publisher.send(format!("PUB vis.{round} 4\r\nlate\r\nPING\r\n").as_bytes());
        publisher.read_until(b"PONG\r\n", WAIT);
    }
    // Nothing published after an UNSUB's PONG arrived.
    subscriber.send(b"PING\r\n");
    let rest = common::without_server_pings(subscriber.read_until(b"PONG\r\n", WAIT));
    assert_eq!(rest, "PONG\r\n");
}

/// Reads from `first` and `second` until `total` `MSG` frames have arrived between them
/// (bounded by `WAIT`), then settles each (a PING answered: what was on its way to it has
/// come, so a doubled message is counted). Returns the count of each.
fn count_msgs(first: &mut common::Raw, second: &mut common::Raw, total: usize) -> (usize, usize) {
    let count = |bytes: &[u8]| bytes.windows(4).filter(|w| w == b"MSG ").count();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let deadline = std::time::Instant::now() + WAIT;
    while count(&a) + count(&b) < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{} + {} of {total} arrived",
            count(&a),
            count(&b)
        );
        a.extend_from_slice(&first.read_until_quiet(Duration::from_millis(20)).0);
        b.extend_from_slice(&second.read_until_quiet(Duration::from_millis(20)).0);
    }
    a.extend_from_slice(&first.settle(WAIT).0);
    b.extend_from_slice(&second.settle(WAIT).0);
    (count(&a), count(&b))
}

/// A queue-group member on another shard that leaves while messages chosen for it are in
/// flight: those messages go to another member instead of being lost (exactly one member gets
/// each). Here the remote member auto-unsubscribes after 5 while 1,000 arrive in one write.
#[test]
fn queue_messages_for_a_member_that_left_go_to_another_member() {
    let server = server(2);
    for round in 0..5 {
        let mut leaving = raw_on(&server, 0);
        let mut staying = raw_on(&server, 1);
        let mut publisher = raw_on(&server, 1);
        leaving.send(format!("SUB q.{round} workers 1\r\nUNSUB 1 5\r\nPING\r\n").as_bytes());
        leaving.read_until(b"PONG\r\n", WAIT);
        staying.send(format!("SUB q.{round} workers 1\r\nPING\r\n").as_bytes());
        staying.read_until(b"PONG\r\n", WAIT);
        let burst = format!("PUB q.{round} 1\r\nx\r\n").repeat(1000);
        publisher.send(burst.as_bytes());
        let (left, stayed) = count_msgs(&mut leaving, &mut staying, 1000);
        assert_eq!(left, 5, "round {round}: the leaving member got its 5");
        assert_eq!(
            left + stayed,
            1000,
            "round {round}: none lost, none doubled ({left} + {stayed})"
        );
    }
}

/// A subscriber that reads slowly (at most ~16 MB/s) paces a publisher on another shard the way it paces one on
/// its own shard: the cross-shard queue is held while the subscriber is over its high-water
/// mark, so the subscriber is not closed as a slow consumer just because of where its
/// publisher landed.
#[test]
fn slow_subscriber_paces_a_publisher_on_another_shard() {
    let mut opts = options();
    opts.shards = 2;
    opts.max_pending = 16 * 1024 * 1024;
    let server = start_with(opts);
    let mut subscriber = raw_on(&server, 0);
    let mut publisher = raw_on(&server, 1);
    subscriber.send(b"SUB slow 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    // 48 MiB to a subscriber reading about 16 MB/s: far more than max_pending if not paced.
    let frame = format!("PUB slow 16384\r\n{}\r\n", "x".repeat(16384));
    let burst = frame.repeat(64);
    let mut writer = publisher.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..48 {
            writer.write_all(burst.as_bytes()).unwrap();
        }
        writer.write_all(b"PING\r\n").unwrap();
    });
    let expected = 48 * 64;
    // At most ~16 MB/s.
    let got = subscriber.read_messages_slowly(expected, Duration::from_millis(1));
    assert!(
        got == expected,
        "subscriber closed after {got} of {expected} messages: {:?}",
        server.handle().stats()
    );
    sender.join().unwrap();
    publisher.read_until(b"PONG\r\n", WAIT);
    assert_eq!(server.handle().stats().slow_consumers, 0);
}
