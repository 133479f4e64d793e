//! Monitoring of a cluster: `/routez` (and its `$SYS.REQ.SERVER.<id>.ROUTEZ` request) and
//! `/varz`'s cluster fields, on two natsring nodes routed to each other, and against two
//! nats-server 2.15.1 nodes on the same configuration (`pool_size: -1`: nats-server's legacy
//! single route per peer, which is natsring's).
//!
//! - `natsring_lists_its_routes`: each node lists the other with the right ids, names,
//!   direction, and the keys of interest the other node's client made (counted, listed,
//!   detailed); `/varz` and the system request agree.
//! - `routez_matches_nats_server`: the answers' keys and JSON types (tests/common/shapes.rs)
//!   are nats-server's, in every query form.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::shapes::{assert_no_differences, shape_differences, Allowances};
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

/// A node of cluster `c1` named `name`, with monitoring, an application account `APP` (user
/// `app`) and the system account `SYS` (user `sys`), routed to the cluster ports `routes`.
fn node(kind: Kind, name: &str, routes: &[u16]) -> ChildServer {
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
        .collect();
    let config = format!(
        "server_name: {name}
http_port: -1
accounts {{
  APP {{ users [{{user: app, password: app}}] }}
  SYS {{ users [{{user: sys, password: sys}}] }}
}}
system_account: SYS
cluster {{
  name: c1
  host: 127.0.0.1
  port: -1
  pool_size: -1
  routes: [{}]
}}
",
        routes.join(", ")
    );
    let server = match kind {
        Kind::Natsring => start_natsring_with_config(&config, &[]),
        Kind::Go => {
            assert_nats_server_available();
            start_reference_with_config(&config)
        }
    };
    assert!(server.monitoring_url.is_some(), "{name}: monitoring runs");
    server
}

fn get(server: &ChildServer, target: &str) -> Value {
    let url = format!("{}{target}", server.monitoring_url.as_ref().unwrap());
    let body = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Polls `target` until `done` holds of the answer; the last answer.
fn wait_for(server: &ChildServer, target: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = get(server, target);
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{target} never became what was waited for: {answer:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The route count of `/routez` is 1.
fn one_route(routez: &Value) -> bool {
    routez["num_routes"] == 1
}

/// Two nodes of `kind`, `b` routed to `a`, both listing their route.
fn pair(kind: Kind) -> (ChildServer, ChildServer) {
    let a = node(kind, "A", &[]);
    let b = node(kind, "B", &[a.cluster_port.expect("A's cluster port")]);
    wait_for(&a, "/routez", one_route);
    wait_for(&b, "/routez", one_route);
    (a, b)
}

/// A client of `APP` on `server` with a plain subscription and two members of one queue
/// group: two keys of interest.
fn subscriber(server: &ChildServer) -> Raw {
    let mut raw = Raw::connect(server.port);
    raw.send(
        b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\"}\r\n\
          SUB foo 1\r\nSUB bar.* q1 2\r\nSUB bar.* q1 3\r\nPING\r\n",
    );
    raw.read_until(b"PONG\r\n", WAIT);
    raw
}

fn route(routez: &Value) -> &Value {
    &routez["routes"][0]
}

#[test]
fn natsring_lists_its_routes() {
    let (a, b) = pair(Kind::Natsring);
    let (a_id, b_id) = (
        get(&a, "/varz")["server_id"].clone(),
        get(&b, "/varz")["server_id"].clone(),
    );
    let before = route(&get(&a, "/routez"))["subscriptions"]
        .as_u64()
        .expect("a count");
    let _client = subscriber(&b);
    let routez = wait_for(&a, "/routez", |routez| {
        route(routez)["subscriptions"].as_u64() == Some(before + 2)
    });
    let on_a = route(&routez);
    assert_eq!(routez["server_id"], a_id);
    assert_eq!(routez["server_name"], "A");
    assert_eq!(on_a["remote_id"], b_id);
    assert_eq!(on_a["remote_name"], "B");
    assert_eq!(on_a["did_solicit"], false, "B dialed A");
    assert_eq!(on_a["is_configured"], false);
    assert_eq!(on_a["ip"], "127.0.0.1");
    assert_eq!(on_a["compression"], "not supported");
    let routez_b = get(&b, "/routez");
    let on_b = route(&routez_b);
    assert_eq!(on_b["remote_id"], a_id);
    assert_eq!(on_b["remote_name"], "A");
    assert_eq!(
        (&on_b["did_solicit"], &on_b["is_configured"]),
        (&true.into(), &true.into())
    );
    assert_eq!(on_b["port"], a.cluster_port.unwrap());
    assert!(on_a["rid"].as_u64().is_some());

    let listed = get(&a, "/routez?subs=1");
    let subjects = route(&listed)["subscriptions_list"]
        .as_array()
        .expect("a list");
    assert_eq!(subjects.len() as u64, before + 2);
    for subject in ["foo", "bar.*"] {
        assert!(
            subjects.contains(&subject.into()),
            "{subject} in {subjects:?}"
        );
    }
    let detailed = get(&a, "/routez?subs=detail");
    let rid = route(&detailed)["rid"].clone();
    let details = route(&detailed)["subscriptions_list_detail"]
        .as_array()
        .expect("details");
    let queue = details
        .iter()
        .find(|sub| sub["subject"] == "bar.*")
        .expect("the queue's key");
    assert_eq!(queue["qgroup"], "q1");
    assert_eq!(queue["sid"], "R APP bar.* q1");
    assert_eq!(queue["cid"], rid, "a route's keys carry its rid");
    assert!(details.iter().all(|sub| sub.get("account").is_none()));

    let varz = get(&b, "/varz");
    assert_eq!((&varz["routes"], &varz["remotes"]), (&1.into(), &1.into()));
    let cluster = &varz["cluster"];
    assert_eq!(cluster["name"], "c1");
    assert_eq!(cluster["addr"], "127.0.0.1");
    assert_eq!(cluster["cluster_port"], b.cluster_port.unwrap());
    assert_eq!(cluster["pool_size"], -1);
    assert_eq!(
        cluster["urls"],
        serde_json::json!([format!("127.0.0.1:{}", a.cluster_port.unwrap())])
    );
    assert!(get(&a, "/varz")["cluster"].get("urls").is_none());
    let urls = varz["connect_urls"].as_array().expect("connect_urls");
    assert_eq!(urls.len(), 2, "both nodes' client URLs: {urls:?}");

    // The system account's request, to A by id.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer: Value = runtime.block_on(async {
        let sys = async_nats::ConnectOptions::with_user_and_password("sys".into(), "sys".into())
            .connect(format!("nats://127.0.0.1:{}", a.port))
            .await
            .expect("sys connects");
        let subject = format!("$SYS.REQ.SERVER.{}.ROUTEZ", a_id.as_str().unwrap());
        let reply = tokio::time::timeout(
            WAIT,
            sys.request(subject, r#"{"subscriptions":true}"#.into()),
        )
        .await
        .expect("an answer in time")
        .expect("an answer");
        serde_json::from_slice(&reply.payload).unwrap()
    });
    let data = &answer["data"];
    assert_eq!(data["num_routes"], 1);
    assert_eq!(route(data)["remote_name"], "B");
    assert!(route(data)["subscriptions_list"]
        .as_array()
        .is_some_and(|list| list.contains(&"foo".into())));
}

/// What may differ: nothing.
const ALLOWANCES: Allowances = Allowances::NONE;

#[test]
fn routez_matches_nats_server() {
    assert_nats_server_available();
    let (go_a, go_b) = pair(Kind::Go);
    let (our_a, our_b) = pair(Kind::Natsring);
    let _clients = [subscriber(&go_b), subscriber(&our_b)];
    // Go's node takes the keys when they come; wait until both see the queue's.
    for server in [&go_a, &our_a] {
        wait_for(server, "/routez?subs=1", |routez| {
            route(routez)["subscriptions_list"]
                .as_array()
                .is_some_and(|list| list.contains(&"bar.*".into()))
        });
    }
    let mut differences = Vec::new();
    for (ours, reference) in [(&our_a, &go_a), (&our_b, &go_b)] {
        for target in ["/routez", "/routez?subs=1", "/routez?subs=detail"] {
            differences.extend(shape_differences(
                &ALLOWANCES,
                target,
                &get(ours, target),
                &get(reference, target),
            ));
        }
        let cluster = |server: &ChildServer| get(server, "/varz")["cluster"].clone();
        differences.extend(shape_differences(
            &ALLOWANCES,
            "/varz .cluster",
            &cluster(ours),
            &cluster(reference),
        ));
        let connect_urls = |server: &ChildServer| {
            get(server, "/varz")["connect_urls"]
                .as_array()
                .map(Vec::len)
        };
        assert_eq!(
            connect_urls(ours).is_some(),
            connect_urls(reference).is_some()
        );
    }
    assert_no_differences(
        "natsring's cluster monitoring against nats-server's",
        &differences,
    );
}

/// The answers to `subject` (with `payload`) a system client of `server` gets: a ping of
/// every server in the cluster. Waits for `expected` answers (at most `WAIT`), then 300 ms
/// more for any surplus; when none are expected, a second.
async fn survey(server: &ChildServer, subject: &str, payload: &str, expected: usize) -> Vec<Value> {
    use futures::StreamExt;
    let sys = async_nats::ConnectOptions::with_user_and_password("sys".into(), "sys".into())
        .connect(format!("nats://127.0.0.1:{}", server.port))
        .await
        .expect("sys connects");
    let inbox = sys.new_inbox();
    let mut answers = sys.subscribe(inbox.clone()).await.unwrap();
    sys.publish_with_reply(subject.to_string(), inbox, payload.to_string().into())
        .await
        .unwrap();
    sys.flush().await.unwrap();
    let mut all = Vec::new();
    let start = tokio::time::Instant::now();
    let mut until = start
        + if expected == 0 {
            Duration::from_secs(1)
        } else {
            WAIT
        };
    while let Ok(Some(answer)) = tokio::time::timeout_at(until, answers.next()).await {
        all.push(serde_json::from_slice(&answer.payload).expect("JSON"));
        if all.len() == expected {
            until = tokio::time::Instant::now() + Duration::from_millis(300);
        }
    }
    all
}

/// The answer of the server named `name` among `answers` (in an envelope, or a bare IDZ).
fn answer_of<'a>(answers: &'a [Value], name: &str) -> &'a Value {
    answers
        .iter()
        .find(|answer| answer["server"]["name"] == name || answer["name"] == name)
        .unwrap_or_else(|| panic!("no answer from {name} in {answers:?}"))
}

/// A mixed pair (natsring N, nats-server G): the system account's requests reach both servers
/// from a client of either, and natsring answers them as a clustered nats-server does: its
/// envelope names the cluster, STATSZ lists its route and counts the servers, IDZ is the bare
/// id, a `cluster` filter selects it (exactly or not), and GATEWAYZ is answered.
#[test]
fn system_requests_cross_a_mixed_cluster() {
    assert_nats_server_available();
    let g = node(Kind::Go, "G", &[]);
    let n = node(
        Kind::Natsring,
        "N",
        &[g.cluster_port.expect("G's cluster port")],
    );
    wait_for(&g, "/routez", one_route);
    wait_for(&n, "/routez", one_route);
    let n_id = get(&n, "/varz")["server_id"].as_str().unwrap().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for asked in [&g, &n] {
            let statsz = survey(asked, "$SYS.REQ.SERVER.PING", "", 2).await;
            assert_eq!(statsz.len(), 2, "both servers answer: {statsz:?}");
            let ours = answer_of(&statsz, "N");
            assert_eq!(ours["server"]["cluster"], "c1", "{ours}");
            assert_eq!(ours["server"]["id"], n_id.as_str());
            let routes = ours["statsz"]["routes"].as_array().expect("routes");
            assert_eq!(routes.len(), 1, "{routes:?}");
            assert_eq!(routes[0]["name"], "G");
            assert!(routes[0]["rid"].as_u64().is_some());
            assert_eq!(ours["statsz"]["active_servers"], 2);
            let theirs = answer_of(&statsz, "G");
            assert_eq!(theirs["statsz"]["routes"][0]["name"], "N", "{theirs}");

            let idz = survey(asked, "$SYS.REQ.SERVER.PING.IDZ", "", 2).await;
            assert_eq!(idz.len(), 2, "{idz:?}");
            let ours = answer_of(&idz, "N");
            assert_eq!(
                ours,
                &serde_json::json!({"name": "N", "host": "127.0.0.1", "id": n_id}),
                "IDZ is the bare id, as G's: {:?}",
                answer_of(&idz, "G")
            );

            for (filter, expected) in [
                (r#"{"cluster":"c1"}"#, 2),
                (r#"{"cluster":"c"}"#, 2),
                (r#"{"cluster":"c","exact_match":true}"#, 0),
                (r#"{"cluster":"other"}"#, 0),
            ] {
                let varz = survey(asked, "$SYS.REQ.SERVER.PING.VARZ", filter, expected).await;
                assert_eq!(
                    varz.len(),
                    expected,
                    "asked {}: {filter}: {varz:?}",
                    asked.port
                );
            }

            let gatewayz = survey(asked, "$SYS.REQ.SERVER.PING.GATEWAYZ", "", 2).await;
            assert_eq!(gatewayz.len(), 2, "{gatewayz:?}");
            let ours = answer_of(&gatewayz, "N");
            assert_eq!(ours["data"]["server_id"], n_id.as_str(), "{ours}");

            let direct = survey(asked, &format!("$SYS.REQ.SERVER.{n_id}.VARZ"), "", 1).await;
            assert_eq!(direct.len(), 1, "{direct:?}");
            assert_eq!(direct[0]["data"]["server_id"], n_id.as_str());
        }
    });

    // Messages that cross the route count in N's in/out messages, not its client ones, as
    // nats-server counts them (G's route to N is checked the same way).
    let mut subscriber = Raw::connect(n.port);
    subscriber.send(
        b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\"}\r\nSUB crossing 1\r\nPING\r\n",
    );
    subscriber.read_until(b"PONG\r\n", WAIT);
    let mut publisher = Raw::connect(g.port);
    publisher.send(b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"app\"}\r\nPING\r\n");
    publisher.read_until(b"PONG\r\n", WAIT);
    let before = get(&n, "/varz");
    wait_for(&g, "/routez?subs=1", |routez| {
        route(routez)["subscriptions_list"]
            .as_array()
            .is_some_and(|list| list.contains(&"crossing".into()))
    });
    for _ in 0..10 {
        publisher.send(b"PUB crossing 5\r\nhello\r\n");
    }
    publisher.send(b"PING\r\n");
    publisher.read_until(b"PONG\r\n", WAIT);
    let mut seen = Vec::new();
    while seen.windows(5).filter(|w| w == b"hello").count() < 10 {
        seen.extend_from_slice(&subscriber.read_until(b"hello\r\n", WAIT));
    }
    let after = get(&n, "/varz");
    let grew = |key: &str| after[key].as_u64().unwrap() - before[key].as_u64().unwrap();
    // (N's own STATSZ heartbeat, published by its system client, may fall in between.)
    assert_eq!(
        grew("in_msgs") - grew("in_client_msgs"),
        10,
        "routed messages are not a client's: {before} {after}"
    );
    assert_eq!(grew("out_client_msgs"), 10, "{before} {after}");
    assert!(grew("out_msgs") >= 10);
}
