//! Monitoring (`http_port`) against nats-server 2.15.1: both servers are started on the same
//! configuration file (the HTTP port aside), driven by the same traffic, then asked every
//! endpoint in every query form. Each pair of answers must have the same HTTP status,
//! `Content-Type` and `Access-Control-Allow-Origin`; JSON bodies the same keys and the same
//! JSON type for every value, recursively (the comparator shared with
//! tests/system_nats_server.rs, tests/common/shapes.rs; [`ALLOWED_DIFFERENCES`] lists what may
//! differ, each with its reason); error bodies the same text; and the values identical traffic
//! fixes ([`compare_values`]) the same values.
//!
//! Left out of the values: what nats-server's system account does internally and natsring has
//! no counterpart for. Its internal subscriptions (service imports of
//! `$SYS.REQ.*`: 4 in each of A, B and `$G`, 56 in SYS) are subtracted from every subscription
//! count and dropped from subscription lists ([`Facts`]); `/varz`'s `subscriptions` and the
//! sublist statistics (`num_cache`, `num_inserts`, `num_matches`, `cache_hit_rate`, fanouts)
//! are compared by type only. Measured values (times, `rtt`, `mem`, `cpu`, ports, cids, ids)
//! are compared by type only. nats-server 2.15.1 ignores `?callback=` (no JSONP): those
//! answers are plain JSON on both sides.
//!
//! - `natsring_matches_nats_server`: natsring against nats-server.
//! - `nats_server_matches_itself`: the same comparison between two nats-server processes: it
//!   proves the comparison can pass and that the traffic gives the same answers twice. With
//!   `NATSRING_MONITOR_SAMPLES=<file>` it also writes nats-server's raw answers there.
//! - `comparator_*`: the comparator fails on a type mismatch, a missing key, an extra key.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::shapes::{
    assert_no_differences, go_duration_nanos, is_go_time, shape_differences, Allowances,
};
use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer, Raw,
};

/// How long any one wait may take (a bound, not a schedule: answers end waits).
const WAIT: Duration = Duration::from_secs(10);

/// Pause between steps whose order monitoring shows by timestamps (`sort=start|last|idle|
/// uptime|stop`), so a millisecond clock still orders them.
const STEP_PAUSE: Duration = Duration::from_millis(3);

// ------------------------------------------------------------------------------------------
// Differences
// ------------------------------------------------------------------------------------------

/// Keys one side may have and the other not, as (endpoint path, JSON path of the key, reason).
/// The endpoint path is the request's path without the query (`/accountz`); the JSON path
/// names array elements `[]` (`.connections[].rtt`).
const ALLOWED_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "/varz",
        ".git_commit",
        "the commit nats-server was built from; natsring's build embeds none, and Go leaves \
         the field out when empty (`omitempty`), so every tool treats it as optional",
    ),
    (
        "/accountz",
        ".account_detail.imports",
        "nats-server gives every account (A, B, SYS, $G) service imports from the system \
         account: `$SYS.REQ.ACCOUNT.PING.CONNZ|STATZ`, `$SYS.REQ.SERVER.PING.CONNZ`, \
         `$SYS.REQ.USER.INFO`: how its system services reach other accounts; natsring's \
         answer from their own client of the system account and need none, and `imports` \
         is omitted when empty",
    ),
    (
        "/accountz",
        ".account_detail.exports",
        "the system account's exports are those services (`$SYS.REQ.ACCOUNT.*.CONNZ|STATZ`, \
         `$SYS.DEBUG.SUBSCRIBERS`, `$SYS.REQ.USER.*.INFO`): none in natsring",
    ),
    // nats-server lists subscriptions in no particular order (it walks hash maps), so a page
    // holds any of them: the keys Go omits when empty may be on one side's page only.
    (
        PAGED_SUBSZ,
        ".subscriptions_list[].max",
        "omitted when 0 (only `limited` has a max): a page may not hold it",
    ),
    (
        PAGED_SUBSZ,
        ".subscriptions_list[].qgroup",
        "omitted for plain subscriptions: a page may hold no queue subscription",
    ),
    (
        "/varz",
        ".feature_flags",
        "JetStream's feature flags (`js_ack_fc_v2`, `js_api_reply_v2`, `js_raft_delete_range`, \
         `js_snapshot_sources`): natsring has no JetStream",
    ),
    (
        "/varz",
        ".disk_io_wait_stats",
        "contention on JetStream's file store disk semaphore: natsring has no JetStream",
    ),
];

/// The endpoint name [`ALLOWED_DIFFERENCES`] gives a page of `/subsz` (`offset=`, `limit=`).
const PAGED_SUBSZ: &str = "/subsz (a page)";

/// Arrays that may be empty on one side and not on the other, as (endpoint path, JSON path,
/// reason). Elsewhere the traffic fills both sides or neither.
const ALLOWED_EMPTY: &[(&str, &str, &str)] = &[];

/// Both lists, for the shared comparator (tests/common/shapes.rs: the JSON types, Go's float64
/// keys, the time and duration formats).
const ALLOWANCES: Allowances = Allowances {
    differences: ALLOWED_DIFFERENCES,
    empty: ALLOWED_EMPTY,
};

// ------------------------------------------------------------------------------------------
// Servers and HTTP
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Implementation {
    NatsServer,
    Natsring,
}

/// A free TCP port: bound on 127.0.0.1:0 and released. The configuration file needs the number
/// before the server starts (the client port uses `-p -1` and the ports file instead).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The configuration both servers get: accounts A and B, the system account SYS with a user,
/// and a closed-connection list larger than the test's closes.
fn configuration(http_port: u16, base_path: &str) -> String {
    let base = if base_path.is_empty() {
        String::new()
    } else {
        format!("http_base_path: \"{base_path}\"\n")
    };
    format!(
        "# tests/monitor_nats_server.rs: the same text for both servers, the port aside.
http_port: {http_port}
{base}max_closed_clients: 16
accounts {{
  A {{ users [{{user: a, password: a}}] }}
  B {{ users [{{user: b, password: b}}] }}
  SYS {{ users [{{user: sys, password: sys}}] }}
}}
system_account: SYS
"
    )
}

/// One HTTP answer: what the comparison looks at.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    allow_origin: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A server with monitoring on, killed when dropped.
struct Monitored {
    implementation: Implementation,
    server: ChildServer,
    http_port: u16,
    base_path: &'static str,
    agent: ureq::Agent,
}

impl Monitored {
    fn start(implementation: Implementation, base_path: &'static str) -> Monitored {
        let http_port = free_port();
        let config = configuration(http_port, base_path);
        let server = match implementation {
            Implementation::NatsServer => start_reference_with_config(&config),
            // One shard: natsring's cids count up per shard (shard i hands out i + 1, i + 1 + n,
            // ...), so with more, `sort=cid` is by cid but not by arrival, as nats-server's
            // global counter is. The shards' answers put together are tests/monitor_data.rs's.
            Implementation::Natsring => start_natsring_with_config(&config, &["--shards", "1"]),
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{implementation:?}: nothing listens on http_port {http_port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WAIT))
            .build()
            .into();
        Monitored {
            implementation,
            server,
            http_port,
            base_path,
            agent,
        }
    }

    /// `target` (`/connz?sort=cid`) under the base path; the index `/` is the base path itself
    /// (nats-server registers `path.Join(base, "/")`).
    fn under_base(&self, target: &str) -> String {
        if self.base_path.is_empty() {
            return target.to_string();
        }
        match target.strip_prefix('/') {
            Some(rest) if rest.is_empty() || rest.starts_with('?') => {
                format!("{}{rest}", self.base_path)
            }
            _ => format!("{}{target}", self.base_path),
        }
    }

    /// GET of exactly `path_and_query`.
    fn get_exact(&self, path_and_query: &str) -> Answer {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.http_port);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("{:?}: GET {url}: {e}", self.implementation));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII header").to_string())
        };
        let status = response.status().as_u16();
        let content_type = header("content-type");
        let allow_origin = header("access-control-allow-origin");
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{:?}: body of {url}: {e}", self.implementation));
        Answer {
            status,
            content_type,
            allow_origin,
            body,
        }
    }

    fn get(&self, target: &str) -> Answer {
        self.get_exact(&self.under_base(target))
    }

    fn get_json(&self, target: &str) -> Value {
        let answer = self.get(target);
        assert_eq!(
            answer.status, 200,
            "{:?}: {target}: {answer:?}",
            self.implementation
        );
        answer
            .json()
            .unwrap_or_else(|| panic!("{:?}: {target}: not JSON: {answer:?}", self.implementation))
    }

    /// The closed connections before the traffic: the harness's start-up probe (a connect
    /// and close without CONNECT, reason `Read Error` or `Client Closed` as the race between
    /// INFO and the close goes) when the server lists it, which nats-server does at once.
    fn closed_before_traffic(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let total = self.get_json("/connz?state=closed")["total"]
                .as_u64()
                .expect("total");
            if total > 0 || Instant::now() >= deadline {
                return total;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/connz?state=closed` until it lists `count` connections.
    fn wait_closed(&self, count: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let total = self.get_json("/connz?state=closed")["total"].as_u64();
            if total == Some(count) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?}: {count} closed connections expected, /connz?state=closed has {total:?}",
                self.implementation
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Traffic
// ------------------------------------------------------------------------------------------

/// The clients the traffic makes, in connection order: (name, user). The password is the user.
const OPEN_CLIENTS: &[(&str, &str)] = &[
    ("sub-a", "a"),
    ("sub-b", "b"),
    ("pub-a", "a"),
    ("pub-b", "b"),
    ("sys-client", "sys"),
];

/// The connections the traffic closes, in order, with the reason nats-server gives.
const CLOSED_CLIENTS: &[(&str, &str)] = &[
    ("closer", "Client Closed"),
    ("violator", "Protocol Violation"),
    ("intruder", "Authentication Failure"),
];

/// Messages each subscriber receives (see [`drive_traffic`]).
const SUB_A_MESSAGES: usize = 11;
const SUB_B_MESSAGES: usize = 6;

/// Connects as `user` (password = user) with a name, lang and version, and waits for the PONG
/// of a PING sent with the CONNECT (as client libraries do).
fn client(port: u16, user: &str, name: &str) -> Raw {
    let mut raw = Raw::connect(port);
    raw.read_until(b"\r\n", WAIT);
    let connect = json!({
        "verbose": false, "pedantic": false, "user": user, "pass": user, "name": name,
        "lang": "rust", "version": "1.2.3", "protocol": 1, "headers": true, "no_responders": true,
    });
    raw.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    raw.read_until(b"PONG\r\n", WAIT);
    raw
}

/// Sends `bytes` and a PING and waits for the PONG: the server has processed `bytes`.
fn send_and_sync(raw: &mut Raw, bytes: &[u8]) {
    let mut out = bytes.to_vec();
    out.extend_from_slice(b"PING\r\n");
    raw.send(&out);
    raw.read_until(b"PONG\r\n", WAIT);
}

/// Reads until `messages` MSG frames have arrived, answering the server's PINGs.
fn receive(raw: &mut Raw, messages: usize) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut received = 0;
    let started = Instant::now();
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    loop {
        // Whole frames first.
        while let Some(line_end) = pending.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&pending[..line_end]).into_owned();
            let mut frame_end = line_end + 2;
            if line.starts_with("MSG ") {
                let size: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
                if pending.len() < frame_end + size + 2 {
                    break;
                }
                frame_end += size + 2;
                received += 1;
            } else if line == "PING" {
                raw.send(b"PONG\r\n");
            } else {
                assert!(
                    line == "PONG" || line.starts_with("+OK"),
                    "unexpected {line:?}"
                );
            }
            pending.drain(..frame_end);
        }
        if received >= messages {
            assert_eq!(received, messages, "messages received");
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "{received} of {messages} messages in time"
        );
        match raw.stream.read(&mut buf) {
            Ok(0) => panic!("closed while receiving"),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The connections the traffic leaves open, in [`OPEN_CLIENTS`] order, kept open until the
/// answers are fetched.
struct Traffic {
    open: Vec<Raw>,
}

/// The same traffic against any server:
/// - `sub-a` (account A): `orders.*`, `orders.new` in queue `workers`, `metrics.>`, and
///   `limited` auto-unsubscribed after 5 messages;
/// - `sub-b` (account B): `orders.new` and `orders.new` in queue `workers`;
/// - `pub-a` publishes 3 `orders.new` (2 deliveries each to sub-a), 2 `limited`, 1
///   `metrics.cpu`, 1 to a subject nobody has, then a request (reply subject) to
///   `orders.new`: sub-a gets 11 messages;
/// - `pub-b` publishes 2 `orders.new` and a request: sub-b gets 6;
/// - every client sends its CONNECT with a PING and waits for the PONG, as client libraries
///   do: nats-server sets `rtt` at the CONNECT (the time since the accept), so every client
///   shows one; the subscribers answer any PING the server sends;
/// - `sys-client` connects to the system account;
/// - `closer` subscribes and closes its socket (Client Closed), `violator` sends an unknown
///   operation (Protocol Violation), `intruder` gives a wrong password (Authentication
///   Failure);
/// - every open connection ends with a subscribe and unsubscribe, in connection order.
fn drive_traffic(server: &Monitored) -> Traffic {
    let port = server.server.port;
    let pause = || std::thread::sleep(STEP_PAUSE);
    let closed_before = server.closed_before_traffic();
    let mut sub_a = client(port, "a", "sub-a");
    send_and_sync(
        &mut sub_a,
        b"SUB orders.* 1\r\nSUB orders.new workers 2\r\nSUB metrics.> 3\r\nSUB limited 4\r\nUNSUB 4 5\r\n",
    );
    pause();
    let mut sub_b = client(port, "b", "sub-b");
    send_and_sync(
        &mut sub_b,
        b"SUB orders.new 1\r\nSUB orders.new workers 2\r\n",
    );
    pause();
    let mut pub_a = client(port, "a", "pub-a");
    send_and_sync(
        &mut pub_a,
        b"PUB orders.new 5\r\nfirst\r\nPUB orders.new 6\r\nsecond\r\nPUB orders.new 5\r\nthird\r\n\
          PUB limited 2\r\nhi\r\nPUB limited 2\r\nho\r\nPUB metrics.cpu 2\r\n42\r\n\
          PUB nobody.listens 4\r\nlost\r\nPUB orders.new _INBOX.monitor.reply.a 7\r\nrequest\r\n",
    );
    pause();
    let mut pub_b = client(port, "b", "pub-b");
    send_and_sync(
        &mut pub_b,
        b"PUB orders.new 2\r\nhi\r\nPUB orders.new 3\r\nbye\r\n\
          PUB orders.new _INBOX.monitor.reply.b 7\r\nrequest\r\n",
    );
    receive(&mut sub_a, SUB_A_MESSAGES);
    receive(&mut sub_b, SUB_B_MESSAGES);
    send_and_sync(&mut sub_a, b"");
    send_and_sync(&mut sub_b, b"");
    pause();
    let sys = client(port, "sys", "sys-client");
    pause();

    let mut closer = client(port, "a", "closer");
    send_and_sync(&mut closer, b"SUB tmp 1\r\n");
    closer.stream.shutdown(Shutdown::Both).expect("shutdown");
    drop(closer);
    server.wait_closed(closed_before + 1);
    pause();

    let mut violator = client(port, "b", "violator");
    violator.send(b"FOO bar\r\n");
    violator.read_until_closed(WAIT);
    server.wait_closed(closed_before + 2);
    pause();

    let mut intruder = Raw::connect(port);
    intruder.read_until(b"\r\n", WAIT);
    let connect = json!({
        "verbose": false, "user": "a", "pass": "wrong", "name": "intruder", "lang": "rust",
        "version": "1.2.3", "protocol": 1,
    });
    intruder.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    intruder.read_until_closed(WAIT);
    server.wait_closed(closed_before + 3);

    // Last activity in connection order, one connection at a time: nats-server marks it on
    // messages and subscription changes (not PINGs), and a delivery marks the publisher and
    // the receivers with the same instant, so `sort=last|idle` would have ties without this.
    let mut open = vec![sub_a, sub_b, pub_a, pub_b, sys];
    for raw in &mut open {
        pause();
        send_and_sync(raw, b"SUB activity 99\r\nUNSUB 99\r\n");
    }
    Traffic { open }
}

// ------------------------------------------------------------------------------------------
// Queries
// ------------------------------------------------------------------------------------------

/// What an answer's body is compared by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// JSON: shapes and values.
    Json,
    /// The HTML index: status and content type only.
    Html,
    /// An error text: equal bytes.
    Text,
}

/// Connection sort keys of `/connz` (monitor_sort_opts.go) and how their order is checked.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// The same connection names in the same order (the key is fixed by the traffic's order).
    Names,
    /// The same sequence of this field's values (ties make the names' order unspecified).
    Values(&'static str),
    /// Each side sorted by its own RTTs, descending (RTTs are measured, not fixed).
    RttDescending,
}

const SORTS: &[(&str, Order)] = &[
    ("cid", Order::Names),
    ("start", Order::Names),
    ("subs", Order::Values("subscriptions")),
    ("pending", Order::Values("pending_bytes")),
    ("msgs_to", Order::Values("out_msgs")),
    ("msgs_from", Order::Values("in_msgs")),
    ("bytes_to", Order::Values("out_bytes")),
    ("bytes_from", Order::Values("in_bytes")),
    ("last", Order::Names),
    ("idle", Order::Names),
    ("uptime", Order::Names),
    ("rtt", Order::RttDescending),
];

/// Sort keys that need `state=closed`.
const CLOSED_SORTS: &[(&str, Order)] =
    &[("stop", Order::Names), ("reason", Order::Values("reason"))];

/// Every request, in order. `{cid:NAME}` stands for the connection id of the connection named
/// NAME on the server asked (cids differ: nats-server's internal clients take some).
fn queries() -> Vec<(String, Body)> {
    let mut list: Vec<(String, Body)> = Vec::new();
    let mut json = |target: &str| list.push((target.to_string(), Body::Json));
    json("/varz");
    json("/connz");
    for (key, _) in SORTS {
        json(&format!("/connz?sort={key}"));
    }
    for (key, _) in CLOSED_SORTS {
        json(&format!("/connz?state=closed&sort={key}"));
    }
    json("/connz?state=all&sort=cid");
    for target in [
        "/connz?offset=1",
        "/connz?limit=2",
        "/connz?offset=1&limit=2&sort=cid",
        "/connz?offset=100",
        "/connz?subs=1",
        "/connz?subs=true",
        "/connz?subs=detail",
        "/connz?cid={cid:sub-a}",
        "/connz?cid={cid:sub-a}&subs=detail",
        "/connz?cid={cid:closer}&state=closed&subs=detail",
        "/connz?cid={cid:closer}",
        "/connz?cid=999999",
        "/connz?state=open",
        "/connz?state=closed",
        "/connz?state=closed&subs=1",
        "/connz?state=closed&subs=detail",
        "/connz?state=closed&auth=1",
        "/connz?state=all",
        "/connz?state=any",
        "/connz?state=all&subs=detail&auth=1",
        "/connz?auth=1",
        "/connz?auth=1&subs=detail",
        "/connz?acc=A",
        "/connz?acc=A&auth=1",
        "/connz?acc=B&state=closed",
        "/connz?acc=SYS&auth=1",
        "/connz?acc=NOPE",
        "/connz?user=a&auth=1",
        "/connz?callback=cb",
        "/connz?sort=cid&callback=cb",
        "/subsz",
        "/subsz?subs=1",
        "/subsz?subs=1&test=orders.new",
        "/subsz?subs=1&test=metrics.cpu.load",
        "/subsz?subs=1&test=nothing.here",
        "/subsz?test=orders.new",
        "/subsz?acc=A",
        "/subsz?acc=A&subs=1",
        "/subsz?acc=B&subs=1&test=orders.new",
        "/subsz?acc=A&subs=1&offset=1&limit=2",
        "/subsz?subs=1&test=orders.new&offset=1&limit=2",
        "/subsz?acc=NOPE&subs=1",
        "/subscriptionsz",
        "/subscriptionsz?acc=A&subs=1",
        "/routez",
        "/routez?subs=1",
        "/accountz",
        "/accountz?acc=A",
        "/accountz?acc=B",
        "/accountz?acc=SYS",
        "/accountz?acc=$G",
        "/accstatz",
        "/accstatz?unused=1",
        "/accstatz?unused=true",
        "/healthz",
        "/healthz?js-enabled-only=true",
        "/healthz?js-server-only=true",
        "/healthz?js-enabled-only=1&js-server-only=1",
        "/healthz?details=true",
        "/varz?callback=cb",
    ] {
        json(target);
    }
    list.push(("/".to_string(), Body::Html));
    for target in [
        "/connz?sort=stop",
        "/connz?sort=reason",
        "/connz?sort=bogus",
        "/connz?state=bogus",
        "/connz?subs=yes",
        "/connz?auth=yes",
        "/connz?offset=x",
        "/connz?limit=x",
        "/connz?cid=x",
        "/subsz?test=orders.*",
        "/subsz?subs=maybe",
        "/accountz?acc=NOPE",
        "/accstatz?unused=maybe",
        "/healthz?js-enabled-only=maybe",
        "/nope",
        "/connz/",
        "/varz/x",
    ] {
        list.push((target.to_string(), Body::Text));
    }
    // Last, so every count in /varz's http_req_stats is settled.
    list.push(("/varz".to_string(), Body::Json));
    list
}

/// The requests of the run with `http_base_path`: (exact path, body), not put under the base.
fn base_path_queries(base: &str) -> Vec<(String, Body)> {
    vec![
        (base.to_string(), Body::Html),
        (format!("{base}/"), Body::Text),
        ("/".to_string(), Body::Text),
        ("/varz".to_string(), Body::Text),
        (format!("{base}/varz"), Body::Json),
        (format!("{base}/connz?subs=1&auth=1"), Body::Json),
        (format!("{base}/subsz"), Body::Json),
        (format!("{base}/subscriptionsz"), Body::Json),
        (format!("{base}/routez"), Body::Json),
        (format!("{base}/accountz"), Body::Json),
        (format!("{base}/accstatz"), Body::Json),
        (format!("{base}/healthz"), Body::Json),
        (format!("{base}/nope"), Body::Text),
        (format!("{base}/varz"), Body::Json),
    ]
}

/// The connection ids of every connection by name, open and closed.
fn cids(server: &Monitored) -> BTreeMap<String, u64> {
    let connz = server.get_json("/connz?state=all&limit=1000");
    connz["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), c["cid"].as_u64()?)))
        .collect()
}

fn resolve(target: &str, cids: &BTreeMap<String, u64>) -> String {
    let mut out = target.to_string();
    while let Some(start) = out.find("{cid:") {
        let end = start + out[start..].find('}').expect("closing brace");
        let name = &out[start + 5..end];
        let cid = cids
            .get(name)
            .unwrap_or_else(|| panic!("no connection named {name}"));
        out.replace_range(start..=end, &cid.to_string());
    }
    out
}

// ------------------------------------------------------------------------------------------
// Values that identical traffic fixes
// ------------------------------------------------------------------------------------------

/// What each server's answers depend on beyond the traffic: its connection ids, and the
/// subscriptions nats-server's system account makes internally in each account (service
/// imports of `$SYS.REQ.*`, natsring has none yet).
struct Facts {
    cids: BTreeMap<String, u64>,
    internal_subscriptions: BTreeMap<String, u64>,
}

impl Facts {
    fn gather(server: &Monitored) -> Facts {
        let cids = cids(server);
        let clients: BTreeSet<u64> = cids.values().copied().collect();
        let mut internal_subscriptions = BTreeMap::new();
        let accountz = server.get_json("/accountz");
        let accounts: Vec<&str> = accountz["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for account in accounts {
            let subsz = server.get_json(&format!("/subsz?acc={account}&subs=1&limit=100000"));
            let total = subsz["num_subscriptions"].as_u64().unwrap_or(0);
            let of_clients = subsz["subscriptions_list"].as_array().map_or(0, |list| {
                list.iter()
                    .filter(|s| s["cid"].as_u64().is_some_and(|c| clients.contains(&c)))
                    .count() as u64
            });
            internal_subscriptions.insert(account.to_string(), total - of_clients);
        }
        Facts {
            cids,
            internal_subscriptions,
        }
    }

    fn internal(&self, account: &str) -> u64 {
        self.internal_subscriptions
            .get(account)
            .copied()
            .unwrap_or(0)
    }

    /// The internal subscriptions of `account`, or of every account when None.
    fn internal_in(&self, account: Option<&str>) -> u64 {
        match account {
            Some(account) => self.internal(account),
            None => self.internal_subscriptions.values().sum(),
        }
    }
}

/// The named connections of a `/connz` answer by name (each test connection has one; the
/// harness's start-up probe has none, and its close reason is a race).
fn connections_by_name(connz: &Value) -> BTreeMap<String, &Value> {
    named_connections(connz)
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c))
        .collect()
}

/// The connections of a `/connz` answer that have a name, in order.
fn named_connections(connz: &Value) -> Vec<&Value> {
    connz["connections"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|c| c["name"].as_str().is_some_and(|n| !n.is_empty()))
                .collect()
        })
        .unwrap_or_default()
}

/// Fields of a connection that identical traffic fixes.
const CONNECTION_VALUES: &[&str] = &[
    "kind",
    "type",
    "ip",
    "pending_bytes",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "subscriptions",
    "name",
    "lang",
    "version",
    "reason",
    "authorized_user",
    "account",
];

/// A subscription's identity in `/subsz` and `subscriptions_list_detail`: everything but `cid`.
fn subscription_key(sub: &Value) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        sub["account"], sub["subject"], sub["qgroup"], sub["sid"], sub["msgs"], sub["max"]
    )
}

fn sorted_keys(list: &Value, key: fn(&Value) -> String) -> Vec<String> {
    let mut keys: Vec<String> = list
        .as_array()
        .map(|l| l.iter().map(key).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Pushes a difference when `ours[field] != reference[field]`.
fn same(what: &str, field: &str, ours: &Value, reference: &Value, differences: &mut Vec<String>) {
    if ours.get(field) != reference.get(field) {
        differences.push(format!(
            "{what} {field}: {} where nats-server has {}",
            ours.get(field).unwrap_or(&Value::Null),
            reference.get(field).unwrap_or(&Value::Null)
        ));
    }
}

/// Compares what identical traffic fixes in the answers to `target`.
fn compare_values(
    target: &str,
    ours: &Value,
    reference: &Value,
    our_facts: &Facts,
    reference_facts: &Facts,
    differences: &mut Vec<String>,
) {
    let endpoint = target.split('?').next().unwrap();
    let endpoint = endpoint.rsplit('/').next().map_or(endpoint, |e| e);
    match endpoint {
        "connz" => {
            for field in ["num_connections", "total", "offset", "limit"] {
                same(target, field, ours, reference, differences);
            }
            let a = connections_by_name(ours);
            let b = connections_by_name(reference);
            if a.keys().collect::<Vec<_>>() != b.keys().collect::<Vec<_>>() {
                differences.push(format!(
                    "{target}: connections {:?} where nats-server has {:?}",
                    a.keys().collect::<Vec<_>>(),
                    b.keys().collect::<Vec<_>>()
                ));
            }
            for (name, conn) in &a {
                let Some(other) = b.get(name) else { continue };
                let what = format!("{target} connection {name:?}");
                for field in CONNECTION_VALUES {
                    // What a connection had unsent when it closed is a race of the close
                    // against the flush.
                    if *field == "pending_bytes" && other.get("reason").is_some() {
                        continue;
                    }
                    same(&what, field, conn, other, differences);
                }
                // Measured, so not equal; but set wherever nats-server has measured it.
                let zero = |c: &Value| c["rtt"].as_str().is_none_or(|r| r == "0s");
                if zero(conn) && !zero(other) {
                    differences.push(format!(
                        "{what} rtt: {} where nats-server has measured {}",
                        conn["rtt"], other["rtt"]
                    ));
                }
                let list = |c: &Value| {
                    let mut l: Vec<String> = c["subscriptions_list"]
                        .as_array()
                        .map(|l| l.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default();
                    l.sort();
                    l
                };
                if list(conn) != list(other) {
                    differences.push(format!(
                        "{what} subscriptions_list: {:?} where nats-server has {:?}",
                        list(conn),
                        list(other)
                    ));
                }
                let detail =
                    |c: &Value| sorted_keys(&c["subscriptions_list_detail"], subscription_key);
                if detail(conn) != detail(other) {
                    differences.push(format!(
                        "{what} subscriptions_list_detail: {:?} where nats-server has {:?}",
                        detail(conn),
                        detail(other)
                    ));
                }
            }
            compare_order(target, ours, reference, differences);
        }
        "varz" => {
            for field in [
                "connections",
                "total_connections",
                "routes",
                "remotes",
                "leafnodes",
                "in_msgs",
                "out_msgs",
                "in_bytes",
                "out_bytes",
                "in_client_msgs",
                "out_client_msgs",
                "in_client_bytes",
                "out_client_bytes",
                "slow_consumers",
                "max_connections",
                "max_payload",
                "max_control_line",
                "max_pending",
                "ping_interval",
                "ping_max",
                "auth_required",
                "system_account",
                "http_base_path",
                "proto",
            ] {
                same(target, field, ours, reference, differences);
            }
            let keys = |v: &Value| {
                v["http_req_stats"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            if keys(ours) != keys(reference) {
                differences.push(format!(
                    "{target} http_req_stats paths: {:?} where nats-server has {:?}",
                    keys(ours),
                    keys(reference)
                ));
            }
        }
        "subsz" | "subscriptionsz" => {
            for field in ["offset", "limit"] {
                same(target, field, ours, reference, differences);
            }
            let account = query_value(target, "acc");
            let listed = ours.get("subscriptions_list").is_some()
                || reference.get("subscriptions_list").is_some();
            let paged =
                query_value(target, "offset").is_some() || query_value(target, "limit").is_some();
            // Only what the clients subscribed: nats-server also lists its system account's
            // internal subscriptions.
            let clients = |v: &Value, facts: &Facts| {
                let ids: BTreeSet<u64> = facts.cids.values().copied().collect();
                let filtered: Vec<Value> = v["subscriptions_list"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter(|s| s["cid"].as_u64().is_some_and(|c| ids.contains(&c)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                sorted_keys(&Value::Array(filtered), subscription_key)
            };
            if !listed {
                same(target, "total", ours, reference, differences);
            } else if paged {
                // A page of a list in no particular order (nats-server walks a hash map), with
                // the internal subscriptions mixed in: its length, and the total less the
                // internal subscriptions.
                let length = |v: &Value| v["subscriptions_list"].as_array().map(Vec::len);
                if length(ours) != length(reference) {
                    differences.push(format!(
                        "{target} subscriptions_list length: {:?} where nats-server has {:?}",
                        length(ours),
                        length(reference)
                    ));
                }
                let total = |v: &Value, facts: &Facts| {
                    v["total"].as_u64().map(|n| {
                        // The test subjects match no internal subscription (all `$SYS.`).
                        let internal = if query_value(target, "test").is_some() {
                            0
                        } else {
                            facts.internal_in(account)
                        };
                        n as i64 - internal as i64
                    })
                };
                if total(ours, our_facts) != total(reference, reference_facts) {
                    differences.push(format!(
                        "{target} total less internal subscriptions: {:?} where nats-server has {:?}",
                        total(ours, our_facts),
                        total(reference, reference_facts)
                    ));
                }
            } else if clients(ours, our_facts) != clients(reference, reference_facts) {
                differences.push(format!(
                    "{target} subscriptions_list: {:?} where nats-server has {:?}",
                    clients(ours, our_facts),
                    clients(reference, reference_facts)
                ));
            }
            let count = |v: &Value, facts: &Facts| {
                v["num_subscriptions"]
                    .as_u64()
                    .map(|n| n as i64 - facts.internal_in(account) as i64)
            };
            if count(ours, our_facts) != count(reference, reference_facts) {
                differences.push(format!(
                    "{target} num_subscriptions less internal ones: {:?} where nats-server has {:?}",
                    count(ours, our_facts),
                    count(reference, reference_facts)
                ));
            }
        }
        "routez" => same(target, "num_routes", ours, reference, differences),
        "accountz" => {
            same(target, "system_account", ours, reference, differences);
            let names = |v: &Value| {
                let mut n: Vec<String> = v["accounts"]
                    .as_array()
                    .map(|l| l.iter().map(|a| a.to_string()).collect())
                    .unwrap_or_default();
                n.sort();
                n
            };
            if names(ours) != names(reference) {
                differences.push(format!(
                    "{target} accounts: {:?} where nats-server has {:?}",
                    names(ours),
                    names(reference)
                ));
            }
            let (a, b) = (&ours["account_detail"], &reference["account_detail"]);
            if !b.is_null() {
                let what = format!("{target} account_detail");
                for field in [
                    "account_name",
                    "is_system",
                    "expired",
                    "complete",
                    "jetstream_enabled",
                    "leafnode_connections",
                    "client_connections",
                ] {
                    same(&what, field, a, b, differences);
                }
                let account = b["account_name"].as_str().unwrap_or("");
                let count = |v: &Value, facts: &Facts| {
                    v["subscriptions"]
                        .as_u64()
                        .map(|n| n as i64 - facts.internal(account) as i64)
                };
                if count(a, our_facts) != count(b, reference_facts) {
                    differences.push(format!(
                        "{what} subscriptions less internal ones: {:?} where nats-server has {:?}",
                        count(a, our_facts),
                        count(b, reference_facts)
                    ));
                }
            }
        }
        "accstatz" => {
            let by_account = |v: &Value| -> BTreeMap<String, Value> {
                v["account_statz"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|a| (a["acc"].as_str().unwrap_or("").to_string(), a.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (a, b) = (by_account(ours), by_account(reference));
            if a.keys().collect::<Vec<_>>() != b.keys().collect::<Vec<_>>() {
                differences.push(format!(
                    "{target} accounts: {:?} where nats-server has {:?}",
                    a.keys().collect::<Vec<_>>(),
                    b.keys().collect::<Vec<_>>()
                ));
            }
            for account in ["A", "B"] {
                let (Some(x), Some(y)) = (a.get(account), b.get(account)) else {
                    continue;
                };
                let what = format!("{target} account {account}");
                for field in [
                    "name",
                    "conns",
                    "leafnodes",
                    "total_conns",
                    "sent",
                    "received",
                    "slow_consumers",
                ] {
                    same(&what, field, x, y, differences);
                }
                let count = |v: &Value, facts: &Facts| {
                    v["num_subscriptions"]
                        .as_u64()
                        .map(|n| n as i64 - facts.internal(account) as i64)
                };
                if count(x, our_facts) != count(y, reference_facts) {
                    differences.push(format!(
                        "{what} num_subscriptions less internal ones: {:?} where nats-server has {:?}",
                        count(x, our_facts),
                        count(y, reference_facts)
                    ));
                }
            }
        }
        "healthz" => {
            for field in ["status", "error", "status_code"] {
                same(target, field, ours, reference, differences);
            }
        }
        _ => {}
    }
}

/// The value of `name` in `target`'s query.
fn query_value<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The order of `/connz?sort=KEY`'s connections, checked as [`SORTS`] says.
fn compare_order(target: &str, ours: &Value, reference: &Value, differences: &mut Vec<String>) {
    let Some(key) = query_value(target, "sort") else {
        return;
    };
    let Some(&(_, order)) = SORTS.iter().chain(CLOSED_SORTS).find(|(k, _)| *k == key) else {
        return;
    };
    let column = |v: &Value, field: &str| -> Vec<Value> {
        named_connections(v)
            .iter()
            .map(|c| c[field].clone())
            .collect()
    };
    match order {
        Order::Names | Order::Values(_) => {
            let field = match order {
                Order::Values(field) => field,
                _ => "name",
            };
            if column(ours, field) != column(reference, field) {
                differences.push(format!(
                    "{target} order of {field}: {:?} where nats-server has {:?}",
                    column(ours, field),
                    column(reference, field)
                ));
            }
        }
        Order::RttDescending => {
            for (side, answer) in [("ours", ours), ("nats-server's", reference)] {
                let rtts: Vec<f64> = column(answer, "rtt")
                    .iter()
                    .map(|r| r.as_str().and_then(go_duration_nanos).unwrap_or(0.0))
                    .collect();
                if rtts.windows(2).any(|w| w[0] < w[1]) {
                    differences.push(format!(
                        "{target}: {side} is not by rtt descending: {rtts:?}"
                    ));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The comparison
// ------------------------------------------------------------------------------------------

/// Compares one pair of answers to `target`; returns the differences.
fn compare_answers(
    target: &str,
    body: Body,
    ours: &Answer,
    reference: &Answer,
    our_facts: &Facts,
    reference_facts: &Facts,
) -> Vec<String> {
    let mut differences = Vec::new();
    if ours.status != reference.status {
        differences.push(format!(
            "{target}: status {} where nats-server has {}",
            ours.status, reference.status
        ));
    }
    if ours.content_type != reference.content_type {
        differences.push(format!(
            "{target}: Content-Type {:?} where nats-server has {:?}",
            ours.content_type, reference.content_type
        ));
    }
    if ours.allow_origin != reference.allow_origin {
        differences.push(format!(
            "{target}: Access-Control-Allow-Origin {:?} where nats-server has {:?}",
            ours.allow_origin, reference.allow_origin
        ));
    }
    match body {
        Body::Html => {}
        Body::Text => {
            if ours.body != reference.body {
                differences.push(format!(
                    "{target}: body {:?} where nats-server has {:?}",
                    ours.body, reference.body
                ));
            }
        }
        Body::Json => {
            let path = target.split('?').next().unwrap();
            let paged =
                query_value(target, "offset").is_some() || query_value(target, "limit").is_some();
            let endpoint = if path == "/subsz" && paged {
                PAGED_SUBSZ
            } else {
                path
            };
            let (Some(a), Some(b)) = (ours.json(), reference.json()) else {
                differences.push(format!(
                    "{target}: not JSON on both sides: ours {:?}, nats-server's {:?}",
                    ours.body, reference.body
                ));
                return differences;
            };
            differences.extend(shape_differences(&ALLOWANCES, endpoint, &a, &b));
            compare_values(target, &a, &b, our_facts, reference_facts, &mut differences);
        }
    }
    differences
}

/// Runs the traffic against both servers, fetches every query from each, and returns the
/// differences; with `samples`, appends the reference's raw answers as markdown.
fn compare_servers(
    ours: Implementation,
    base_path: &'static str,
    mut samples: Option<&mut String>,
) -> Vec<String> {
    let reference = Monitored::start(Implementation::NatsServer, base_path);
    let candidate = Monitored::start(ours, base_path);
    let mut reference_traffic = drive_traffic(&reference);
    let mut our_traffic = drive_traffic(&candidate);
    let mut differences = Vec::new();
    assert_traffic_shows(&reference);
    let reference_facts = Facts::gather(&reference);
    let our_facts = Facts::gather(&candidate);
    let requests: Vec<(String, String, String, Body)> = if base_path.is_empty() {
        queries()
            .into_iter()
            .map(|(target, body)| {
                (
                    target.clone(),
                    reference.under_base(&resolve(&target, &reference_facts.cids)),
                    candidate.under_base(&resolve(&target, &our_facts.cids)),
                    body,
                )
            })
            .collect()
    } else {
        base_path_queries(base_path)
            .into_iter()
            .map(|(path, body)| (path.clone(), path.clone(), path, body))
            .collect()
    };
    for (target, reference_path, our_path, body) in requests {
        let theirs = reference.get_exact(&reference_path);
        let mine = candidate.get_exact(&our_path);
        if let Some(samples) = samples.as_deref_mut() {
            write_sample(samples, &reference_path, body, &theirs);
        }
        // The base path is the server's business, not the comparison's.
        let target = target
            .strip_prefix(base_path)
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(&target);
        differences.extend(compare_answers(
            target,
            body,
            &mine,
            &theirs,
            &our_facts,
            &reference_facts,
        ));
    }
    // Every connection stayed open through the fetches.
    for traffic in [&mut reference_traffic, &mut our_traffic] {
        for raw in &mut traffic.open {
            send_and_sync(raw, b"");
        }
    }
    differences
}

/// The reference's connections are the ones [`drive_traffic`] means to leave: guards the
/// traffic itself.
fn assert_traffic_shows(reference: &Monitored) {
    let names = |target: &str, field: &str| -> Vec<(String, String)> {
        reference.get_json(target)["connections"]
            .as_array()
            .expect("connections")
            .iter()
            .filter(|c| c["name"].as_str().is_some_and(|n| !n.is_empty()))
            .map(|c| {
                let value = |f: &str| c[f].as_str().unwrap_or("").to_string();
                (value("name"), value(field))
            })
            .collect()
    };
    let expected = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        names("/connz?sort=cid&auth=1", "authorized_user"),
        expected(OPEN_CLIENTS),
        "open connections and their users"
    );
    assert_eq!(
        names("/connz?state=closed&sort=cid", "reason"),
        expected(CLOSED_CLIENTS),
        "closed connections and their reasons"
    );
}

fn write_sample(samples: &mut String, path: &str, body: Body, answer: &Answer) {
    use std::fmt::Write as _;
    let _ = writeln!(
        samples,
        "### `GET {path}`\n\nstatus {}, Content-Type {:?}, Access-Control-Allow-Origin {:?}\n",
        answer.status, answer.content_type, answer.allow_origin
    );
    let text = match body {
        Body::Html => format!("({} bytes of HTML)", answer.body.len()),
        _ => answer.body.clone(),
    };
    let fence = if body == Body::Json { "json" } else { "text" };
    let _ = writeln!(samples, "```{fence}\n{}\n```\n", text.trim_end());
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn natsring_matches_nats_server() {
    assert_nats_server_available();
    assert_no_differences(
        "natsring against nats-server",
        &compare_servers(Implementation::Natsring, "", None),
    );
    assert_no_differences(
        "natsring against nats-server, http_base_path /mon",
        &compare_servers(Implementation::Natsring, "/mon", None),
    );
}

/// Two nats-server processes, the same traffic: no differences. Proves the comparison can pass
/// and the traffic is deterministic; `NATSRING_MONITOR_SAMPLES=<file>` writes the answers.
#[test]
fn nats_server_matches_itself() {
    assert_nats_server_available();
    let mut samples = String::from(
        "# nats-server 2.15.1 monitoring answers\n\nWritten by `NATSRING_MONITOR_SAMPLES=<file> \
         cargo test --test monitor_nats_server nats_server_matches_itself` under the traffic \
         of `drive_traffic` (tests/monitor_nats_server.rs).\n\n",
    );
    let differences = compare_servers(Implementation::NatsServer, "", Some(&mut samples));
    samples.push_str("## With `http_base_path: \"/mon\"`\n\n");
    let base_path_differences =
        compare_servers(Implementation::NatsServer, "/mon", Some(&mut samples));
    if let Ok(path) = std::env::var("NATSRING_MONITOR_SAMPLES") {
        std::fs::write(&path, samples).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    assert_no_differences("nats-server against itself", &differences);
    assert_no_differences("nats-server against itself, /mon", &base_path_differences);
}

fn shapes_differences(endpoint: &str, ours: Value, reference: Value) -> Vec<String> {
    shape_differences(&ALLOWANCES, endpoint, &ours, &reference)
}

#[test]
fn comparator_detects_a_type_mismatch() {
    // ping_interval is an integer of nanoseconds in Go: a float, or a string, breaks clients.
    let reference = json!({"ping_interval": 120000000000_u64, "cpu": 0});
    let differences = shapes_differences(
        "/varz",
        json!({"ping_interval": 120000000000.0, "cpu": 0}),
        reference.clone(),
    );
    assert_eq!(
        differences,
        ["/varz .ping_interval: float where nats-server has integer"]
    );
    let differences = shapes_differences(
        "/varz",
        json!({"ping_interval": "2m0s", "cpu": 0}),
        reference.clone(),
    );
    assert_eq!(
        differences,
        ["/varz .ping_interval: string where nats-server has integer"]
    );
    // cpu is a float64 in Go: 0 and 0.5 are one type.
    assert!(shapes_differences(
        "/varz",
        json!({"ping_interval": 120000000000_u64, "cpu": 0.5}),
        reference
    )
    .is_empty());
    // Inside arrays, against the union of the elements; formats of times and durations.
    let reference = json!({"connections": [
        {"cid": 1, "rtt": "1.2ms", "start": "2026-01-02T03:04:05.123456789Z"},
        {"cid": 2, "start": "2026-01-02T03:04:05Z"},
    ]});
    let differences = shapes_differences(
        "/connz",
        json!({"connections": [{"cid": "1", "rtt": "1.2 ms", "start": "2026-01-02 03:04:05"}]}),
        reference,
    );
    assert_eq!(
        differences,
        [
            "/connz .connections[].cid: string where nats-server has integer",
            "/connz .connections[].rtt: string (NotDuration) where nats-server has string (Duration)",
            "/connz .connections[].start: string (NotTime) where nats-server has string (Time)",
        ]
    );
}

#[test]
fn comparator_detects_missing_and_extra_keys() {
    let differences = shapes_differences(
        "/connz",
        json!({"server_id": "x", "connections": [{"cid": 1, "extra": true}], "now": "2026-01-02T03:04:05Z"}),
        json!({"server_id": "y", "connections": [{"cid": 1, "name": "n"}, {"cid": 2}], "now": "2026-01-02T03:04:05Z", "total": 1}),
    );
    assert_eq!(
        differences,
        [
            "/connz .total: missing (nats-server has it)",
            "/connz .connections[].name: missing (nats-server has it)",
            "/connz .connections[].extra: extra (nats-server lacks it)",
        ]
    );
    // An empty array against a full one cannot be checked, so it is a difference.
    let differences = shapes_differences("/subsz", json!({"list": []}), json!({"list": [1]}));
    assert_eq!(
        differences,
        ["/subsz .list: ours is empty, nats-server's is not (types unchecked)"]
    );
    // The allow-list covers exactly its (endpoint, path) pairs.
    let ours = json!({"account_detail": {"account_name": "A"}});
    let reference = json!({"account_detail": {"account_name": "A", "imports": [{"subject": "$SYS.REQ.SERVER.PING.CONNZ"}]}});
    assert!(shapes_differences("/accountz", ours.clone(), reference.clone()).is_empty());
    assert_eq!(
        shapes_differences("/varz", ours, reference),
        ["/varz .account_detail.imports: missing (nats-server has it)"]
    );
}

#[test]
fn comparator_detects_value_and_header_differences() {
    let facts = || Facts {
        cids: BTreeMap::new(),
        internal_subscriptions: BTreeMap::new(),
    };
    let answer = |status: u16, content_type: &str, body: Value| Answer {
        status,
        content_type: Some(content_type.to_string()),
        allow_origin: Some("*".to_string()),
        body: body.to_string(),
    };
    let reference = answer(
        200,
        "application/json",
        json!({"num_connections": 1, "total": 1, "offset": 0, "limit": 1024, "connections": [
            {"cid": 5, "name": "sub-a", "in_msgs": 3, "rtt": "1ms"}]}),
    );
    let ours = answer(
        200,
        "application/json; charset=utf-8",
        json!({"num_connections": 1, "total": 1, "offset": 0, "limit": 1024, "connections": [
            {"cid": 1, "name": "sub-a", "in_msgs": 4, "rtt": "1ms"}]}),
    );
    let differences = compare_answers("/connz", Body::Json, &ours, &reference, &facts(), &facts());
    assert_eq!(
        differences,
        [
            "/connz: Content-Type Some(\"application/json; charset=utf-8\") where nats-server has Some(\"application/json\")",
            "/connz connection \"sub-a\" in_msgs: 4 where nats-server has 3",
        ]
    );
}

#[test]
fn go_formats() {
    assert!(is_go_time("2026-12-07T09:25:52.802296216Z"));
    assert!(is_go_time("2026-12-07T09:25:52Z"));
    assert!(is_go_time("2026-12-07T09:25:52.8+01:00"));
    assert!(!is_go_time("2026-12-07 09:25:52Z"));
    assert!(!is_go_time("1733563552"));
    assert_eq!(go_duration_nanos("0s"), Some(0.0));
    assert_eq!(go_duration_nanos("1.5ms"), Some(1.5e6));
    assert_eq!(go_duration_nanos("812µs"), Some(812e3));
    assert_eq!(go_duration_nanos("1h2m3s"), Some(3723e9));
    assert_eq!(go_duration_nanos("1d2h3m4s"), Some(93784e9));
    assert_eq!(go_duration_nanos("1.2 ms"), None);
    assert_eq!(go_duration_nanos("12"), None);
}
