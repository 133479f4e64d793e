//! Cluster routes with real servers: natsring nodes among themselves and mixed with
//! nats-server 2.15.1 nodes, driven by async-nats clients on every node. Each node is a child
//! process with a configuration file (`cluster { name, host, port: -1, routes }`); the ports
//! file says which cluster port it bound.
//!
//! Interest travels between servers asynchronously (nats-server makes no promise either), so
//! each test first waits until a probe published on one node reaches a subscriber on another;
//! from then on counts are exact: no loss, no duplicate.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::time::timeout;

use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer, Raw,
};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Natsring,
    Go,
}

/// Starts a node of `kind` in cluster `c1`, named `name`, with routes to the cluster ports
/// `routes` (on `cluster_port`, or a random one when 0).
fn node(kind: Kind, name: &str, cluster_port: u16, routes: &[u16]) -> ChildServer {
    let port = if cluster_port == 0 {
        "-1".to_string()
    } else {
        cluster_port.to_string()
    };
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("nats-route://127.0.0.1:{port}"))
        .collect();
    let config = format!(
        "server_name: {name}\ncluster {{\n  name: c1\n  host: 127.0.0.1\n  port: {port}\n  routes: [{}]\n}}\n",
        routes.join(", ")
    );
    let server = match kind {
        Kind::Natsring => start_natsring_with_config(&config, &[]),
        Kind::Go => {
            assert_nats_server_available();
            start_reference_with_config(&config)
        }
    };
    assert!(server.cluster_port.is_some(), "{name} listens for routes");
    server
}

fn cluster_port(server: &ChildServer) -> u16 {
    server.cluster_port.expect("a cluster port")
}

async fn client(server: &ChildServer) -> async_nats::Client {
    async_nats::connect(format!("nats://127.0.0.1:{}", server.port))
        .await
        .expect("connect")
}

/// Publishes probes on `subject` from `publisher` until `subscriber` receives one (interest
/// reached the publisher's server), then drains the probes still on their way.
async fn await_route(
    publisher: &async_nats::Client,
    subscriber: &mut async_nats::Subscriber,
    subject: &str,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        publisher
            .publish(subject.to_string(), "probe".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if let Ok(Some(_)) = timeout(Duration::from_millis(100), subscriber.next()).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no route for {subject} within {WAIT:?}"
        );
    }
    while let Ok(Some(_)) = timeout(Duration::from_millis(300), subscriber.next()).await {}
}

/// Receives exactly `count` messages on `subscriber`, then checks that no more come.
async fn receive_exactly(
    subscriber: &mut async_nats::Subscriber,
    count: usize,
) -> Vec<async_nats::Message> {
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        match timeout(WAIT, subscriber.next()).await {
            Ok(Some(message)) => messages.push(message),
            _ => panic!("{} of {count} messages", messages.len()),
        }
    }
    if let Ok(Some(extra)) = timeout(Duration::from_millis(300), subscriber.next()).await {
        panic!("a message more than {count}: {:?}", extra.payload);
    }
    messages
}

/// Plain pub/sub both ways between `a` and `b`, in order, exactly once each; headers too.
async fn plain_both_ways(a: &ChildServer, b: &ChildServer) {
    let (ca, cb) = (client(a).await, client(b).await);
    for (from, to, subject) in [(&cb, &ca, "to.a"), (&ca, &cb, "to.b")] {
        let mut sub = to.subscribe(subject.to_string()).await.unwrap();
        to.flush().await.unwrap();
        await_route(from, &mut sub, subject).await;
        for i in 0..500 {
            from.publish(subject.to_string(), Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("X-Key", "value");
        from.publish_with_headers(subject.to_string(), headers, "with headers".into())
            .await
            .unwrap();
        from.flush().await.unwrap();
        let messages = receive_exactly(&mut sub, 501).await;
        for (i, message) in messages[..500].iter().enumerate() {
            assert_eq!(message.payload, Bytes::from(i.to_string()), "in order");
        }
        let last = &messages[500];
        assert_eq!(&last.payload[..], b"with headers");
        assert_eq!(
            last.headers
                .as_ref()
                .and_then(|h| h.get("X-Key"))
                .map(|v| v.as_str()),
            Some("value")
        );
    }
}

/// Wildcard subscribers on one node, publisher on the other: one copy each, none twice
/// (a route matching two subscriptions still gets each message once).
async fn wildcards_once(a: &ChildServer, b: &ChildServer) {
    let (ca, cb) = (client(a).await, client(b).await);
    let mut star = ca.subscribe("wild.*").await.unwrap();
    let mut full = ca.subscribe("wild.>").await.unwrap();
    ca.flush().await.unwrap();
    await_route(&cb, &mut star, "wild.x").await;
    while let Ok(Some(_)) = timeout(Duration::from_millis(300), full.next()).await {}
    for i in 0..100 {
        cb.publish(format!("wild.{i}"), "w".into()).await.unwrap();
    }
    cb.flush().await.unwrap();
    receive_exactly(&mut star, 100).await;
    receive_exactly(&mut full, 100).await;
}

/// A queue group with members on both nodes: each message to exactly one member
/// cluster-wide, and members on both nodes get some.
async fn queue_group_once(a: &ChildServer, b: &ChildServer) {
    let (ca, cb) = (client(a).await, client(b).await);
    let mut probe = ca.subscribe("work.probe").await.unwrap();
    ca.flush().await.unwrap();
    await_route(&cb, &mut probe, "work.probe").await;
    let mut members = Vec::new();
    for client in [&ca, &ca, &cb, &cb] {
        members.push(
            client
                .queue_subscribe("work", "q".to_string())
                .await
                .unwrap(),
        );
    }
    ca.flush().await.unwrap();
    cb.flush().await.unwrap();
    // Interest in `work` from both sides: wait until a message published on each side can
    // reach the other's members (the probe's route is up; the queue RS+ follows it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    const COUNT: usize = 2000;
    for i in 0..COUNT {
        let publisher = if i % 2 == 0 { &ca } else { &cb };
        publisher
            .publish("work", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    ca.flush().await.unwrap();
    cb.flush().await.unwrap();
    let mut seen: HashMap<Bytes, usize> = HashMap::new();
    let mut per_member = Vec::new();
    for member in &mut members {
        let mut got = 0;
        while let Ok(Some(message)) = timeout(Duration::from_millis(500), member.next()).await {
            *seen.entry(message.payload).or_default() += 1;
            got += 1;
        }
        per_member.push(got);
    }
    assert_eq!(seen.len(), COUNT, "every message delivered: {per_member:?}");
    assert!(seen.values().all(|&n| n == 1), "none twice: {per_member:?}");
    let on_a = per_member[0] + per_member[1];
    let on_b = per_member[2] + per_member[3];
    assert!(
        on_a > COUNT / 5 && on_b > COUNT / 5,
        "spread over both nodes: {per_member:?}"
    );
}

/// Request on one node, responder on the other; a request nobody serves gets no responders.
async fn request_reply(a: &ChildServer, b: &ChildServer) {
    let (ca, cb) = (client(a).await, client(b).await);
    let mut service = ca.subscribe("service").await.unwrap();
    ca.flush().await.unwrap();
    await_route(&cb, &mut service, "service").await;
    let responder = ca.clone();
    let task = tokio::spawn(async move {
        while let Some(request) = service.next().await {
            if let Some(reply) = request.reply {
                let mut answer = b"re:".to_vec();
                answer.extend_from_slice(&request.payload);
                responder.publish(reply, answer.into()).await.unwrap();
            }
        }
    });
    // A request right after the subscription to its reply subject, in the same write, is
    // answered the first time: the requester's node sends the peer the inbox's RS+ before the
    // request (as nats-server queues the RS+ when it handles the SUB), every time.
    // Several connections, so that (with the test's shards) some are on the route's shard
    // (the lines are drained at the SUB) and some on another (sent before the request by the
    // route's shard); the kernel spreads them, so each run covers both only with odds of
    // 1 - 2^-5. (Raw blocks: off the runtime, whose thread the responder needs.)
    let port = b.port;
    tokio::task::spawn_blocking(move || {
        let mut raws: Vec<Raw> = (0..6).map(|_| Raw::connect(port)).collect();
        for raw in &mut raws {
            raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
            raw.read_until(b"PONG\r\n", WAIT);
        }
        for i in 0..30 {
            let raw = &mut raws[i % 6];
            raw.send(
                format!("SUB _INBOX.fresh.{i} {i}\r\nPUB service _INBOX.fresh.{i} 4\r\nping\r\n")
                    .as_bytes(),
            );
            let answer = raw.read_until(b"re:ping\r\n", WAIT);
            assert!(
                String::from_utf8_lossy(&answer).contains(&format!("MSG _INBOX.fresh.{i} {i} 7")),
                "request {i}: {}",
                String::from_utf8_lossy(&answer)
            );
            raw.send(format!("UNSUB {i}\r\n").as_bytes());
        }
    })
    .await
    .unwrap();
    // The requester's inbox interest must reach the responder's node first.
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout(
            Duration::from_millis(500),
            cb.request("service", "ping".into()),
        )
        .await
        {
            Ok(Ok(answer)) => {
                assert_eq!(&answer.payload[..], b"re:ping");
                break;
            }
            _ => assert!(Instant::now() < deadline, "no answer across the route"),
        }
    }
    for i in 0..100 {
        let answer = cb
            .request("service", Bytes::from(i.to_string()))
            .await
            .unwrap();
        assert_eq!(answer.payload, Bytes::from(format!("re:{i}")));
    }
    let error = cb.request("nobody.home", "x".into()).await.unwrap_err();
    assert_eq!(
        error.kind(),
        async_nats::client::RequestErrorKind::NoResponders
    );
    task.abort();
}

async fn pair_behaves(a: &ChildServer, b: &ChildServer) {
    plain_both_ways(a, b).await;
    wildcards_once(a, b).await;
    queue_group_once(a, b).await;
    request_reply(a, b).await;
}

#[tokio::test]
async fn two_natsring_nodes() {
    let a = node(Kind::Natsring, "A", 0, &[]);
    let b = node(Kind::Natsring, "B", 0, &[cluster_port(&a)]);
    pair_behaves(&a, &b).await;
}

#[tokio::test]
async fn natsring_dials_nats_server() {
    let a = node(Kind::Go, "A", 0, &[]);
    let b = node(Kind::Natsring, "B", 0, &[cluster_port(&a)]);
    pair_behaves(&a, &b).await;
}

#[tokio::test]
async fn nats_server_dials_natsring() {
    let a = node(Kind::Natsring, "A", 0, &[]);
    let b = node(Kind::Go, "B", 0, &[cluster_port(&a)]);
    pair_behaves(&a, &b).await;
}

/// Three nodes from one seed: B and C know only A; gossip makes B and C meet, so a message
/// from B reaches C's subscriber (A relays nothing).
async fn mesh_from_one_seed(kinds: [Kind; 3]) {
    let a = node(kinds[0], "A", 0, &[]);
    let b = node(kinds[1], "B", 0, &[cluster_port(&a)]);
    let c = node(kinds[2], "C", 0, &[cluster_port(&a)]);
    let (cb, cc) = (client(&b).await, client(&c).await);
    let mut sub = cc.subscribe("mesh").await.unwrap();
    cc.flush().await.unwrap();
    await_route(&cb, &mut sub, "mesh").await;
    for i in 0..200 {
        cb.publish("mesh", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    cb.flush().await.unwrap();
    receive_exactly(&mut sub, 200).await;
}

#[tokio::test]
async fn three_natsring_nodes_mesh_from_one_seed() {
    mesh_from_one_seed([Kind::Natsring; 3]).await;
}

#[tokio::test]
async fn mixed_mesh_with_a_nats_server_seed() {
    mesh_from_one_seed([Kind::Go, Kind::Natsring, Kind::Natsring]).await;
}

#[tokio::test]
async fn mixed_mesh_with_a_natsring_seed() {
    mesh_from_one_seed([Kind::Natsring, Kind::Go, Kind::Go]).await;
}

/// A node that dies and comes back on the same cluster port: its peer dials it again and
/// interest converges (subscriptions made while it was down are known once it is back).
#[tokio::test]
async fn a_restarted_node_rejoins() {
    for kinds in [[Kind::Natsring, Kind::Natsring], [Kind::Go, Kind::Natsring]] {
        let a = node(kinds[0], "A", 0, &[]);
        let port = cluster_port(&a);
        let b = node(kinds[1], "B", 0, &[port]);
        let cb = client(&b).await;
        let mut sub = cb.subscribe("back").await.unwrap();
        cb.flush().await.unwrap();
        {
            let ca = client(&a).await;
            await_route(&ca, &mut sub, "back").await;
        }
        drop(a);
        let a = node(kinds[0], "A", port, &[]);
        let ca = client(&a).await;
        await_route(&ca, &mut sub, "back").await;
        for i in 0..100 {
            ca.publish("back", Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        ca.flush().await.unwrap();
        receive_exactly(&mut sub, 100).await;
    }
}

/// The `connect_urls` of the INFO a client of `a` gets: what the reads so far end with.
fn last_connect_urls(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let info = text
        .split("\r\n")
        .filter(|line| line.starts_with("INFO "))
        .last()
        .expect("an INFO");
    let json: serde_json::Value = serde_json::from_str(info[5..].trim()).unwrap();
    assert_eq!(json["cluster"], "c1", "the cluster's name: {info}");
    json["connect_urls"]
        .as_array()
        .map(|urls| {
            urls.iter()
                .map(|url| url.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Clients learn the cluster's client URLs as nats-server tells them: none in the first INFO of
/// a server that never had a route, then an async INFO (to protocol 1 clients past their first
/// PING) when a server joins or leaves, listing this server first.
#[tokio::test]
async fn clients_learn_the_cluster_urls() {
    for kind in [Kind::Go, Kind::Natsring] {
        let a = node(kind, "A", 0, &[]);
        let own = format!("127.0.0.1:{}", a.port);
        let mut raw = common::Raw::connect(a.port);
        let first = raw.read_until(b"\r\n", WAIT);
        assert!(last_connect_urls(&first).is_empty(), "{kind:?}");
        raw.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
        raw.read_until(b"PONG\r\n", WAIT);
        let b = node(Kind::Natsring, "B", 0, &[cluster_port(&a)]);
        let other = format!("127.0.0.1:{}", b.port);
        let joined = raw.read_until(other.as_bytes(), WAIT);
        assert_eq!(
            last_connect_urls(&joined),
            [own.clone(), other.clone()],
            "{kind:?}"
        );
        drop(b);
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let (bytes, _) = raw.read_until_quiet(Duration::from_millis(200));
            seen.extend_from_slice(&bytes);
            let infos = String::from_utf8_lossy(&seen).matches("INFO ").count();
            if infos > 0 && last_connect_urls(&seen) == [own.clone()] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?}: no INFO without B: {:?}",
                String::from_utf8_lossy(&seen)
            );
        }
    }
}

/// `routes` change on reload (SIGHUP): a route added is dialed, a route removed closes.
#[tokio::test]
async fn routes_follow_a_reload() {
    let a = node(Kind::Natsring, "A", 0, &[]);
    let b = node(Kind::Natsring, "B", 0, &[]);
    let config = std::fs::read_to_string(b.config_path().unwrap()).unwrap();
    let with_route = config.replace(
        "routes: []",
        &format!("routes: [nats-route://127.0.0.1:{}]", cluster_port(&a)),
    );
    assert_ne!(with_route, config);
    std::fs::write(b.config_path().unwrap(), &with_route).unwrap();
    b.signal(libc::SIGHUP);
    let (ca, cb) = (client(&a).await, client(&b).await);
    let mut sub = ca.subscribe("reloaded").await.unwrap();
    ca.flush().await.unwrap();
    await_route(&cb, &mut sub, "reloaded").await;
    std::fs::write(b.config_path().unwrap(), &config).unwrap();
    b.signal(libc::SIGHUP);
    // Once the route is gone, nothing published on B reaches A.
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(Some(_)) = timeout(Duration::from_millis(50), sub.next()).await {}
        cb.publish("reloaded", "after".into()).await.unwrap();
        cb.flush().await.unwrap();
        if timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed route still carries messages"
        );
    }
}

/// What a peer gets back for `script` sent on a fresh route connection to `port`: the lines
/// that are not INFO, PING or interest (`RS+`/`RS-`: each server's own system subscriptions
/// differ), and whether the server closed the connection.
fn fake_peer(port: u16, script: &[u8]) -> (Vec<String>, bool) {
    // Each connection is a new peer server: `NFAKEPEER` gets a number of its own, so a route
    // the last script left registered (the server may not have seen its close yet) does not
    // make this one a duplicate, which both servers close without a word.
    static PEERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let peer = PEERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let script = String::from_utf8_lossy(script).replace("NFAKEPEER", &format!("NFAKEPEER{peer}"));
    let mut raw = common::Raw::connect(port);
    raw.read_until(b"\r\n", WAIT);
    raw.send(script.as_bytes());
    let (bytes, closed) = raw.read_until_close_within(Duration::from_millis(1500));
    let lines = String::from_utf8_lossy(&bytes)
        .split("\r\n")
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("INFO ")
                && *line != "PING"
                && !line.starts_with("RS+ ")
                && !line.starts_with("RS- ")
        })
        .map(String::from)
        .collect();
    (lines, closed)
}

/// `script` from a fake peer gets the same answers from natsring as from nats-server. A server
/// that closes on bad input may reset the connection before its last line is read (the peer's
/// unread bytes make the close a TCP reset, which drops what the peer had not read yet), on
/// either side: a difference is tried again, up to three times, before it counts.
fn assert_same_answers(go: &ChildServer, natsring: &ChildServer, what: &str, script: &str) {
    let mut answers = Vec::new();
    for _ in 0..3 {
        let expected = fake_peer(cluster_port(go), script.as_bytes());
        let got = fake_peer(cluster_port(natsring), script.as_bytes());
        if got == expected {
            return;
        }
        answers.push((got, expected));
    }
    panic!("{what}: natsring (left) vs nats-server (right), three times: {answers:?}");
}

/// A raw peer on the cluster port gets from natsring what nats-server 2.15.1 sends it, line for
/// line: the handshake's refusals and the protocol errors (`../shared/ROUTES.md` §7).
#[tokio::test]
async fn a_fake_peer_is_answered_as_nats_server_answers_it() {
    let go = node(Kind::Go, "A", 0, &[]);
    let natsring = node(Kind::Natsring, "A", 0, &[]);
    let connect = r#"CONNECT {"echo":true,"verbose":false,"pedantic":false,"tls_required":false,"headers":true,"name":"NFAKEPEER","cluster":"c1"}"#;
    let info = r#"INFO {"server_id":"NFAKEPEER","server_name":"F","version":"2.15.1","proto":3,"host":"127.0.0.1","port":1,"headers":true,"max_payload":1048576,"cluster":"c1"}"#;
    let registered = format!("{connect}\r\n{info}\r\n");
    let scripts: Vec<(&str, String)> = vec![
        ("interest before CONNECT", "RS+ $G foo\r\n".into()),
        ("INFO before CONNECT", format!("{info}\r\n")),
        (
            "a client's CONNECT",
            "CONNECT {\"lang\":\"go\",\"verbose\":false}\r\n".into(),
        ),
        (
            "another cluster",
            connect.replace("\"c1\"", "\"other\"") + "\r\n",
        ),
        (
            "a gateway's CONNECT",
            connect.replace("\"cluster\":\"c1\"", "\"gateway\":\"gw1\"") + "\r\n",
        ),
        ("PING", format!("{registered}PING\r\n")),
        (
            "+OK ignored, then PING",
            format!("{registered}+OK\r\nSUB foo 1\r\nPING\r\n"),
        ),
        ("an unknown op", format!("{registered}FOO bar\r\n")),
        ("a bare RS+", format!("{registered}RS+\r\n")),
        (
            "a queue RS+ without weight",
            format!("{registered}RS+ $G foo q\r\n"),
        ),
        (
            "RS- of unknown interest",
            format!("{registered}RS- $G nothing\r\nPING\r\n"),
        ),
        (
            "RMSG with a bad size",
            format!("{registered}RMSG $G foo x\r\n"),
        ),
        (
            "a payload too long",
            format!("{registered}RMSG $G foo 2\r\nabc\r\n"),
        ),
        (
            "an unknown account",
            format!("{registered}RMSG NOPE foo 2\r\nhi\r\nPING\r\n"),
        ),
        ("the peer's -ERR", format!("{registered}-ERR 'bye'\r\n")),
    ];
    for (what, script) in scripts {
        assert_same_answers(&go, &natsring, what, &script);
    }
}

/// A free port on 127.0.0.1 (bound and released: the JetStream servers must know each other's
/// cluster ports before they start).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// JetStream through the cluster: two nats-server 2.15.1 nodes with JetStream (fewer than two
/// elect no meta leader) and a node without it; nats-py, connected to the node without it,
/// creates a stream, publishes with acks and consumes with a pull and a push consumer. The
/// same script runs against a Go node in that place first, so the test checks the script too.
#[tokio::test]
async fn jetstream_through_the_cluster() {
    assert_nats_server_available();
    let ports = [free_port(), free_port()];
    let store = common::temp_path("jetstream");
    let jetstream_node = |name: &str, port: u16, other: u16| {
        let config = format!(
            "server_name: {name}\njetstream {{ store_dir: {:?} }}\ncluster {{\n  name: c1\n  host: 127.0.0.1\n  port: {port}\n  routes: [nats-route://127.0.0.1:{other}]\n}}\n",
            store.join(name).to_string_lossy()
        );
        start_reference_with_config(&config)
    };
    let _j1 = jetstream_node("J1", ports[0], ports[1]);
    let _j2 = jetstream_node("J2", ports[1], ports[0]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/python/jetstream_cluster.py");
    for kind in [Kind::Go, Kind::Natsring] {
        let name = format!("N{kind:?}");
        let n = node(kind, &name, 0, &[ports[0]]);
        let output = std::process::Command::new("python3")
            .arg(&script)
            .arg(format!("nats://127.0.0.1:{}", n.port))
            .output()
            .expect("python3 runs (scripts/test.sh installs nats-py)");
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
            "{kind:?}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The next run makes the stream again.
        let _ = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import asyncio, nats\nasync def m():\n  nc = await nats.connect('nats://127.0.0.1:{}')\n  await nc.jetstream().delete_stream('S1')\n  await nc.close()\nasyncio.run(m())",
                n.port
            ))
            .output();
    }
    let _ = std::fs::remove_dir_all(&store);
}

/// Every node lists every node (itself included), the usual way to write a cluster's
/// configuration: routes dialed both ways at once settle to one per pair (a route to itself is
/// dropped), and messages go from every node to every other exactly once.
#[tokio::test]
async fn every_node_listing_every_node() {
    for kinds in [
        [Kind::Natsring; 3],
        [Kind::Natsring, Kind::Go, Kind::Natsring],
    ] {
        let ports = [free_port(), free_port(), free_port()];
        let nodes: Vec<ChildServer> = ["A", "B", "C"]
            .iter()
            .zip(kinds)
            .zip(ports)
            .map(|((name, kind), port)| node(kind, name, port, &ports))
            .collect();
        let mut clients = Vec::new();
        for node in &nodes {
            clients.push(client(node).await);
        }
        for (to, subscriber) in clients.iter().enumerate() {
            let subject = format!("all.{to}");
            let mut sub = subscriber.subscribe(subject.clone()).await.unwrap();
            subscriber.flush().await.unwrap();
            for (from, publisher) in clients.iter().enumerate() {
                if from != to {
                    await_route(publisher, &mut sub, &subject).await;
                }
            }
            for publisher in &clients {
                for i in 0..50 {
                    publisher
                        .publish(subject.clone(), Bytes::from(i.to_string()))
                        .await
                        .unwrap();
                }
                publisher.flush().await.unwrap();
            }
            receive_exactly(&mut sub, 150).await;
        }
    }
}

/// 100,000 subscriptions already there when a route connects: the whole interest crosses
/// (a message on the last subject published at the other node arrives), whichever node kind
/// is on the other side.
#[tokio::test]
async fn a_route_to_a_node_with_100000_subscriptions() {
    const SUBJECTS: usize = 100_000;
    for kind in [Kind::Natsring, Kind::Go] {
        let a = node(Kind::Natsring, "A", 0, &[]);
        let mut raw = common::Raw::connect_quiet(a.port);
        let mut subs = Vec::with_capacity(SUBJECTS * 24);
        for i in 0..SUBJECTS {
            subs.extend_from_slice(format!("SUB many.{i} {i}\r\n").as_bytes());
        }
        subs.extend_from_slice(b"PING\r\n");
        raw.send(&subs);
        raw.read_until(b"PONG\r\n", WAIT);
        let b = node(kind, "B", 0, &[cluster_port(&a)]);
        let cb = client(&b).await;
        let last = format!("many.{}", SUBJECTS - 1);
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(&format!("MSG {last} ")) {
            cb.publish(last.clone(), "x".into()).await.unwrap();
            cb.flush().await.unwrap();
            let (bytes, closed) = raw.read_until_quiet(Duration::from_millis(100));
            assert!(!closed);
            seen.extend_from_slice(&bytes);
            assert!(
                Instant::now() < deadline,
                "{kind:?}: the interest did not cross"
            );
        }
    }
}

/// With cluster credentials (`authorization {}`), a peer is answered as nats-server answers it:
/// wrong credentials, none, and a CONNECT that never comes.
#[tokio::test]
async fn route_credentials_are_checked_as_nats_server_checks_them() {
    assert_nats_server_available();
    let config = "server_name: A\ncluster {\n  name: c1\n  host: 127.0.0.1\n  port: -1\n  authorization { user: ru, password: rp, timeout: 0.5 }\n}\n";
    let go = start_reference_with_config(config);
    let natsring = start_natsring_with_config(config, &[]);
    let connect = |credentials: &str| {
        format!(
            "CONNECT {{\"echo\":true,\"verbose\":false,\"pedantic\":false,{credentials}\"tls_required\":false,\"headers\":true,\"name\":\"NFAKEPEER\",\"cluster\":\"c1\"}}\r\nINFO {{\"server_id\":\"NFAKEPEER\",\"server_name\":\"F\",\"host\":\"127.0.0.1\",\"port\":1,\"headers\":true,\"cluster\":\"c1\"}}\r\nPING\r\n"
        )
    };
    let scripts = [
        (
            "right credentials",
            connect("\"user\":\"ru\",\"pass\":\"rp\","),
        ),
        (
            "a wrong password",
            connect("\"user\":\"ru\",\"pass\":\"no\","),
        ),
        ("no credentials", connect("")),
        ("no CONNECT in time", String::new()),
    ];
    for (what, script) in scripts {
        assert_same_answers(&go, &natsring, what, &script);
    }
}

/// A node killed and restarted while traffic flows between two others: their clients lose
/// nothing, and once the node is back its clients get messages again.
#[tokio::test]
async fn traffic_goes_on_while_a_node_restarts() {
    for kinds in [
        [Kind::Natsring; 3],
        [Kind::Go, Kind::Natsring, Kind::Natsring],
    ] {
        let ports = [free_port(), free_port(), free_port()];
        let mut a = Some(node(kinds[0], "A", ports[0], &ports));
        let b = node(kinds[1], "B", ports[1], &ports);
        let c = node(kinds[2], "C", ports[2], &ports);
        let (cb, cc) = (client(&b).await, client(&c).await);
        let mut sub = cc.subscribe("steady").await.unwrap();
        cc.flush().await.unwrap();
        await_route(&cb, &mut sub, "steady").await;
        const COUNT: usize = 3000;
        let publisher = cb.clone();
        let sending = tokio::spawn(async move {
            for i in 0..COUNT {
                publisher
                    .publish("steady", Bytes::from(i.to_string()))
                    .await
                    .unwrap();
                if i % 100 == 0 {
                    publisher.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            publisher.flush().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(a.take());
        tokio::time::sleep(Duration::from_millis(150)).await;
        a = Some(node(kinds[0], "A", ports[0], &ports));
        let messages = receive_exactly(&mut sub, COUNT).await;
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(
                message.payload,
                Bytes::from(i.to_string()),
                "{kinds:?}: in order"
            );
        }
        sending.await.unwrap();
        let ca = client(a.as_ref().unwrap()).await;
        let mut back = ca.subscribe("after").await.unwrap();
        ca.flush().await.unwrap();
        await_route(&cb, &mut back, "after").await;
        await_route(&cc, &mut back, "after").await;
    }
}

/// A raw client of `server` that takes async INFO: protocol 1, past its first PING (nats-server
/// sends async INFO to no other). Returns it with what it read (the first INFO and more).
fn info_client(server: &ChildServer) -> (Raw, Vec<u8>) {
    let mut raw = Raw::connect(server.port);
    let mut seen = raw.read_until(b"\r\n", WAIT);
    raw.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
    seen.extend_from_slice(&raw.read_until(b"PONG\r\n", WAIT));
    (raw, seen)
}

/// The INFO lines in `bytes`, parsed.
fn infos(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("INFO "))
        .map(|json| serde_json::from_str(json.trim()).unwrap())
        .collect()
}

/// An INFO's `connect_urls`, sorted (nats-server lists the other servers' in map order).
fn urls_of(info: &serde_json::Value) -> Vec<String> {
    let mut urls: Vec<String> = info["connect_urls"]
        .as_array()
        .map(|urls| {
            urls.iter()
                .map(|url| url.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    urls.sort();
    urls
}

/// Reads `raw` until an INFO lists exactly `expected` (in any order), `seen` holding what was
/// read before; returns the INFOs in `seen` (the last one listing them).
fn await_urls(
    raw: &mut Raw,
    seen: &mut Vec<u8>,
    expected: &[&String],
    what: &str,
) -> Vec<serde_json::Value> {
    let mut expected: Vec<String> = expected.iter().map(|url| url.to_string()).collect();
    expected.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let read = infos(seen);
        if read.last().is_some_and(|info| urls_of(info) == expected) {
            return read;
        }
        let (bytes, closed) = raw.read_until_quiet(Duration::from_millis(100));
        seen.extend_from_slice(&bytes);
        assert!(
            !closed && Instant::now() < deadline,
            "{what}: no INFO listing {expected:?}: {:?}",
            String::from_utf8_lossy(seen)
        );
    }
}

/// What the clients see when `leaving` enters lame duck mode (SIGUSR2) in a cluster with
/// `staying`: at once (long before the 10 s grace period ends and the routes close), the
/// clients of `staying` get an async INFO no longer listing `leaving` (its route INFO said
/// `"ldm":true`), and the clients of `leaving` an INFO with `"ldm":true` listing `staying`
/// alone. `leaving` still accepts routes, and no longer clients. Returns how many INFOs the
/// client of `staying` got for it.
fn lame_duck_in_a_cluster(leaving: Kind, staying: Kind) -> usize {
    let what = format!("{leaving:?} leaving, {staying:?} staying");
    let a = node(leaving, "A", 0, &[]);
    let b = node(staying, "B", 0, &[cluster_port(&a)]);
    let (url_a, url_b) = (
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    );
    let (mut client_a, mut seen_a) = info_client(&a);
    let (mut client_b, mut seen_b) = info_client(&b);
    await_urls(&mut client_b, &mut seen_b, &[&url_a, &url_b], &what);
    await_urls(&mut client_a, &mut seen_a, &[&url_a, &url_b], &what);
    // Whatever else was on its way (a second INFO as the route settles) before the signal.
    client_a.read_until_quiet(Duration::from_millis(300));
    client_b.read_until_quiet(Duration::from_millis(300));
    seen_a.clear();
    seen_b.clear();
    let entered = Instant::now();
    a.signal(libc::SIGUSR2);
    let told = await_urls(&mut client_a, &mut seen_a, &[&url_b], &what);
    assert_eq!(
        told.len(),
        1,
        "{what}: one INFO for the lame duck: {told:?}"
    );
    assert_eq!(told[0]["ldm"], true, "{what}: {told:?}");
    let seen = await_urls(&mut client_b, &mut seen_b, &[&url_b], &what);
    assert!(
        entered.elapsed() < Duration::from_secs(5),
        "{what}: told by the route INFO, not by the route's close"
    );
    assert!(seen.iter().all(|info| info.get("ldm").is_none()), "{what}");
    // Nothing more for a while: the route is still up.
    let (more, closed) = client_b.read_until_quiet(Duration::from_millis(500));
    assert!(!closed && infos(&more).is_empty(), "{what}: {more:?}");
    // The cluster port still takes routes; the client port no longer takes clients (refused
    // at once). A connect that neither succeeds nor is refused must not hang the test.
    let connect = |port: u16| {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(3))
    };
    let mut route = Raw {
        stream: connect(cluster_port(&a))
            .unwrap_or_else(|err| panic!("{what}: the cluster port after SIGUSR2: {err}")),
    };
    route.read_until(b"INFO {", WAIT);
    match connect(a.port) {
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!("{what}: a client connecting to the lame duck: {other:?}"),
    }
    seen.len()
}

/// Lame duck mode in a cluster, as nats-server 2.15.1 runs it, each kind leaving with each kind
/// staying: the same INFOs reach the clients on both sides.
#[test]
fn lame_duck_moves_the_clients_of_every_node() {
    let mut counts = Vec::new();
    for (leaving, staying) in [
        (Kind::Go, Kind::Go),
        (Kind::Natsring, Kind::Go),
        (Kind::Go, Kind::Natsring),
        (Kind::Natsring, Kind::Natsring),
    ] {
        counts.push((leaving, staying, lame_duck_in_a_cluster(leaving, staying)));
    }
    let reference = counts[0].2;
    for (leaving, staying, count) in counts {
        assert_eq!(
            count, reference,
            "{leaving:?} leaving, {staying:?} staying: INFOs after the signal"
        );
    }
}
