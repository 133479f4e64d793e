//! Route permissions (`cluster { permissions { import, export } }`) with real servers: a node
//! with permissions (natsring, or nats-server 2.15.1 as the reference) routed to a nats-server
//! peer without any, async-nats clients on both. Each scenario counts which messages cross in
//! each direction and compares natsring's counts with nats-server's, and with the counts
//! written here (so that a server ignoring the permissions fails too).
//!
//! Interest crosses asynchronously: every subscription is made before a probe subscription on
//! the same connection, and each direction is measured only once its probe crossed (the route
//! carries interest lines in order), plus a short pause for the messages in flight.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::timeout;

use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer,
};

const WAIT: Duration = Duration::from_secs(10);
const MESSAGES_PER_SUBJECT: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Natsring,
    Go,
}

/// A node of `kind` in cluster `c1`, routes to `routes`, with `extra` in its cluster block.
fn node(kind: Kind, name: &str, routes: &[u16], extra: &str) -> ChildServer {
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("nats-route://127.0.0.1:{port}"))
        .collect();
    let config = format!(
        "server_name: {name}\ncluster {{\n  name: c1\n  host: 127.0.0.1\n  port: -1\n  routes: [{}]\n{extra}\n}}\n",
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

async fn client(server: &ChildServer) -> async_nats::Client {
    async_nats::connect(format!("nats://127.0.0.1:{}", server.port))
        .await
        .expect("connect")
}

/// Publishes on `subject` from `publisher` until `subscriber` gets one, then drains.
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
    while let Ok(Some(_)) = timeout(Duration::from_millis(200), subscriber.next()).await {}
}

/// Subscriptions `subscriptions` (`"subject"` or `"subject queue"`) on `to`'s server, then
/// `MESSAGES_PER_SUBJECT` messages on each of `subjects` from `from`'s: what each subscription
/// received, as `"<subscription> <- <subject>" -> count` (zero counts left out).
async fn crossing(
    from: &async_nats::Client,
    to: &async_nats::Client,
    subscriptions: &[&str],
    subjects: &[&str],
    probe: &str,
) -> BTreeMap<String, usize> {
    let mut subscribers = Vec::new();
    for &subscription in subscriptions {
        let subscriber = match subscription.split_once(' ') {
            Some((subject, queue)) => to
                .queue_subscribe(subject.to_string(), queue.to_string())
                .await
                .unwrap(),
            None => to.subscribe(subscription.to_string()).await.unwrap(),
        };
        subscribers.push((subscription, subscriber));
    }
    let mut probe_subscriber = to.subscribe(probe.to_string()).await.unwrap();
    to.flush().await.unwrap();
    await_route(from, &mut probe_subscriber, probe).await;
    for &subject in subjects {
        for _ in 0..MESSAGES_PER_SUBJECT {
            from.publish(subject.to_string(), "m".into()).await.unwrap();
        }
    }
    from.flush().await.unwrap();
    // The last probe after the messages: once it crossed, they did (one route, in order).
    from.publish(probe.to_string(), "end".into()).await.unwrap();
    from.flush().await.unwrap();
    timeout(WAIT, probe_subscriber.next())
        .await
        .expect("the end probe crossed")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut counts = BTreeMap::new();
    for (subscription, mut subscriber) in subscribers {
        while let Ok(Some(message)) = timeout(Duration::from_millis(20), subscriber.next()).await {
            *counts
                .entry(format!("{subscription} <- {}", message.subject))
                .or_insert(0) += 1;
        }
        subscriber.unsubscribe().await.unwrap();
    }
    counts
}

fn counts(expected: &[(&str, usize)]) -> BTreeMap<String, usize> {
    expected
        .iter()
        .map(|&(key, count)| (key.to_string(), count))
        .collect()
}

const PERMISSIONS: &str = r#"  permissions {
    import: { allow: ["imp.>", "both.>", "req.>"], deny: ["imp.secret", "imp.x.*"] }
    export: { allow: ["exp.>", "both.>", "req.>"], deny: ["exp.secret"] }
  }"#;

/// What crosses between a node with `PERMISSIONS` (of `kind`) and a nats-server peer without
/// permissions that it dials: into the node (its `import`), out of it (its `export`), and
/// whether a request from the node is answered (the reply subject is not importable).
async fn permissions_scenario(
    kind: Kind,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>, bool) {
    let peer = node(Kind::Go, "P", &[], "");
    let with = node(kind, "N", &[peer.cluster_port.unwrap()], PERMISSIONS);
    let (on_node, on_peer) = (client(&with).await, client(&peer).await);
    let into = crossing(
        &on_peer,
        &on_node,
        &[
            "imp.a",
            "imp.secret",
            "imp.*",
            "imp.x.*",
            "imp.>",
            "exp.a",
            "other",
        ],
        &["imp.a", "imp.secret", "imp.b", "imp.x.y", "exp.a", "other"],
        "both.in",
    )
    .await;
    let out = crossing(
        &on_node,
        &on_peer,
        &[
            "exp.a",
            "exp.secret",
            "exp.*",
            "exp.>",
            "exp.q workers",
            "imp.a",
            "other",
        ],
        &[
            "exp.a",
            "exp.secret",
            "exp.b",
            "exp.q",
            "exp.c.d",
            "imp.a",
            "other",
        ],
        "both.out",
    )
    .await;
    // A responder on the peer, a request from the node: the request crosses (`req.>` is
    // exported), the reply does not (`_INBOX.` is not imported).
    let mut responder = on_peer.subscribe("req.echo").await.unwrap();
    on_peer.flush().await.unwrap();
    let mut probe = on_peer.subscribe("both.req").await.unwrap();
    on_peer.flush().await.unwrap();
    await_route(&on_node, &mut probe, "both.req").await;
    tokio::spawn({
        let on_peer = on_peer.clone();
        async move {
            while let Some(request) = responder.next().await {
                if let Some(reply) = request.reply {
                    on_peer.publish(reply, "pong".into()).await.unwrap();
                    on_peer.flush().await.unwrap();
                }
            }
        }
    });
    let answered = timeout(
        Duration::from_millis(1500),
        on_node.request("req.echo", "ping".into()),
    )
    .await
    .is_ok_and(|answer| answer.is_ok());
    (into, out, answered)
}

/// Import and export, allow and deny, literal and wildcard interest, a queue group and a
/// request: natsring lets across exactly what nats-server 2.15.1 lets across.
#[tokio::test]
async fn route_permissions_filter_as_nats_server_filters_them() {
    let go = permissions_scenario(Kind::Go).await;
    let natsring = permissions_scenario(Kind::Natsring).await;
    // Into the node: interest it may not import is never announced. A wildcard the import
    // allows (`imp.*`: the deny `imp.secret` does not catch the subject `imp.*`) is announced,
    // and then everything it matches crosses, `imp.secret` included; a message that came in is
    // delivered to every local subscriber it matches (messages in are not checked), so the
    // subscribers on `imp.secret` and `imp.x.*`, never announced, get them too.
    let into = counts(&[
        ("imp.secret <- imp.secret", 10),
        ("imp.x.* <- imp.x.y", 10),
        ("imp.a <- imp.a", 10),
        ("imp.* <- imp.a", 10),
        ("imp.* <- imp.secret", 10),
        ("imp.* <- imp.b", 10),
        ("imp.> <- imp.a", 10),
        ("imp.> <- imp.secret", 10),
        ("imp.> <- imp.b", 10),
        ("imp.> <- imp.x.y", 10),
    ]);
    // Out of the node: the peer's interest it may not export is dropped. A wildcard the export
    // allows but that overlaps its deny (`exp.*`, `exp.>` with `exp.secret`) is kept, and each
    // message on a denied subject stays home.
    let out = counts(&[
        ("exp.a <- exp.a", 10),
        ("exp.* <- exp.a", 10),
        ("exp.* <- exp.b", 10),
        ("exp.* <- exp.q", 10),
        ("exp.> <- exp.a", 10),
        ("exp.> <- exp.b", 10),
        ("exp.> <- exp.q", 10),
        ("exp.> <- exp.c.d", 10),
        ("exp.q workers <- exp.q", 10),
    ]);
    assert_eq!(
        go,
        (into.clone(), out.clone(), false),
        "nats-server as expected"
    );
    assert_eq!(natsring, (into, out, false), "natsring as nats-server");
}

/// The `import` and `export` of the route INFO, byte for byte as nats-server writes them; also
/// from the deprecated form (`authorization { permissions }` in the cluster block).
#[test]
fn the_route_info_carries_the_permissions_as_nats_server_writes_them() {
    let fields = |kind: Kind, permissions: &str| {
        let server = node(kind, "N", &[], permissions);
        let mut raw = common::Raw::connect(server.cluster_port.unwrap());
        let info = String::from_utf8(raw.read_until(b"\r\n", WAIT)).unwrap();
        let start = info.find(",\"import\":").expect("import in the INFO");
        let export = info.find(",\"export\":").expect("export in the INFO");
        let end = export + info[export..].find('}').unwrap() + 1;
        info[start..end].to_string()
    };
    let go = fields(Kind::Go, PERMISSIONS);
    assert_eq!(
        go,
        r#","import":{"allow":["imp.\u003e","both.\u003e","req.\u003e"],"deny":["imp.secret","imp.x.*"]},"export":{"allow":["exp.\u003e","both.\u003e","req.\u003e"],"deny":["exp.secret"]}"#
    );
    assert_eq!(fields(Kind::Natsring, PERMISSIONS), go);
    let deprecated = r#"  authorization { user: u, password: p, permissions { import: "in.>", export: { deny: "out" } } }"#;
    let go = fields(Kind::Go, deprecated);
    assert_eq!(
        go,
        r#","import":{"allow":["in.\u003e"]},"export":{"deny":["out"]}"#
    );
    assert_eq!(fields(Kind::Natsring, deprecated), go);
}

/// A reload (SIGHUP) that swaps the permissions: interest no longer importable is withdrawn,
/// newly importable announced, the peer's interest no longer exportable dropped, and newly
/// exportable interest comes back from the peer (it resends on the async INFO). Run with both
/// nodes nats-server (the reference), each one natsring, and both natsring.
#[tokio::test]
async fn route_permissions_follow_a_reload_as_in_nats_server() {
    let before = "  permissions { import: \"a.>\", export: \"x.>\" }";
    let after = "  permissions { import: \"b.>\", export: \"y.>\" }";
    let expected_before = (counts(&[("a.1 <- a.1", 10)]), counts(&[("x.1 <- x.1", 10)]));
    let expected_after = (counts(&[("b.1 <- b.1", 10)]), counts(&[("y.1 <- y.1", 10)]));
    for (reloading, peer_kind) in [
        (Kind::Go, Kind::Go),
        (Kind::Natsring, Kind::Go),
        (Kind::Go, Kind::Natsring),
        (Kind::Natsring, Kind::Natsring),
    ] {
        let peer = node(peer_kind, "P", &[], "");
        let with = node(reloading, "N", &[peer.cluster_port.unwrap()], before);
        let (on_node, on_peer) = (client(&with).await, client(&peer).await);
        let measure = |probe_in: &'static str, probe_out: &'static str| {
            let (on_node, on_peer) = (on_node.clone(), on_peer.clone());
            async move {
                let into = crossing(
                    &on_peer,
                    &on_node,
                    &["a.1", "b.1"],
                    &["a.1", "b.1"],
                    probe_in,
                )
                .await;
                let out = crossing(
                    &on_node,
                    &on_peer,
                    &["x.1", "y.1"],
                    &["x.1", "y.1"],
                    probe_out,
                )
                .await;
                (into, out)
            }
        };
        let what = format!("{reloading:?} reloading, {peer_kind:?} peer");
        assert_eq!(
            measure("a.probe", "x.probe").await,
            expected_before,
            "{what}"
        );
        // Subscriptions that stay across the reload: the interest must be re-filtered.
        let mut held_in = on_node.subscribe("b.held").await.unwrap();
        let mut held_out = on_peer.subscribe("y.held").await.unwrap();
        on_node.flush().await.unwrap();
        on_peer.flush().await.unwrap();
        let path = with.config_path().unwrap();
        let config = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, config.replace(before, after)).unwrap();
        with.signal(libc::SIGHUP);
        await_route(&on_peer, &mut held_in, "b.held").await;
        await_route(&on_node, &mut held_out, "y.held").await;
        assert_eq!(
            measure("b.probe", "y.probe").await,
            expected_after,
            "{what}"
        );
    }
}
