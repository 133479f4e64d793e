//! The system account's services and events against nats-server 2.15.1, through a real client
//! (async-nats, connected as the system account's user): both servers are started on the same
//! configuration, driven by the same clients, then sent every `$SYS.REQ...` request natsring
//! answers, with several bodies. Each pair of answers must have the same keys and the same JSON
//! type for every value, recursively (the shared comparator, tests/common/shapes.rs, with its
//! Go float64 keys and time formats; [`ALLOWED_DIFFERENCES`] lists what may differ, each with
//! its reason), nats-server's answer being the reference; an error envelope the same `code`;
//! a request nats-server leaves unanswered (a filter that excludes the server, the `STATZ` of
//! an account without clients) no answer either. Then the events a subscriber of `$SYS.>`
//! sees: `CONNECT`, `DISCONNECT` (with the same `reason`), `account_connections` on both its
//! subjects, and the `STATSZ` heartbeat.
//!
//! Values are compared only where identical traffic fixes them (error codes, reasons, the
//! events' type, account and client identity): counts include nats-server's own internal
//! subscriptions (service imports of `$SYS.REQ.*` in every account), which natsring has no
//! counterpart for.
//!
//! - `natsring_matches_nats_server`, `natsring_on_two_shards_matches_nats_server`.
//! - `nats_server_matches_itself`: the same comparison between two nats-server processes, which
//!   proves it can pass and that the traffic gives the same answers twice.
//! - `comparator_*`: the allow-list's `*` endpoint, types and time formats in envelopes and
//!   events, the error codes, answers where there should be none and none where there should
//!   be one. The comparator's own tests (types, missing and extra keys, Go formats) are in
//!   tests/monitor_nats_server.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use common::shapes::{assert_no_differences, shape_differences, Allowances};
use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer, Raw,
};

/// How long any one wait for something that comes may take (a bound, not a schedule).
const WAIT: Duration = Duration::from_secs(10);

/// How long a request nobody should answer waits before it counts as unanswered.
const NO_ANSWER: Duration = Duration::from_millis(1500);

/// How long the `STATSZ` heartbeat may take: nats-server sends it 250 ms after start and then
/// at doubling intervals up to 10 s; natsring 500 ms after start and then every 10 s.
const HEARTBEAT_WAIT: Duration = Duration::from_secs(12);

/// The configuration both servers get.
const CONFIG: &str = "# tests/system_nats_server.rs: the same text for both servers.
accounts {
  A { users [{user: a, password: a}] }
  B { users [{user: b, password: b}] }
  SYS { users [{user: sys, password: sys}] }
}
system_account: SYS
";

// ------------------------------------------------------------------------------------------
// Differences
// ------------------------------------------------------------------------------------------

/// Keys one side may have and the other not, as (answer, JSON path, reason). The answer is a
/// request's endpoint (`VARZ`, `ACCOUNT.INFO`; `STATSZ` for `$SYS.REQ.SERVER.PING` too), an
/// event (`CONNECT`, `DISCONNECT`, `account_connections`, `STATSZ heartbeat`), or `*`.
const ALLOWED_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "*",
        ".server.feature_flags",
        "JetStream's feature flags (`js_ack_fc_v2`, `js_api_reply_v2`, `js_raft_delete_range`, \
         `js_snapshot_sources`) in every envelope's `ServerInfo`: natsring has no JetStream, \
         and Go omits the map when empty (`omitempty`)",
    ),
    (
        "*",
        "[].server.feature_flags",
        "the same, in the events (several events of a kind are compared as one array)",
    ),
    (
        "VARZ",
        ".data.feature_flags",
        "the same JetStream feature flags in `/varz` (as tests/monitor_nats_server.rs allows)",
    ),
    (
        "VARZ",
        ".data.git_commit",
        "the commit nats-server was built from; natsring's build embeds none, and Go omits \
         the field when empty (as tests/monitor_nats_server.rs allows)",
    ),
    (
        "ACCOUNT.INFO",
        ".data.imports",
        "nats-server gives every account service imports from the system account \
         (`$SYS.REQ.ACCOUNT.PING.CONNZ|STATZ`, `$SYS.REQ.SERVER.PING.CONNZ`, \
         `$SYS.REQ.USER.INFO`): that is how its own system services reach other accounts. \
         natsring's system service answers from its own client of the system account and \
         needs none; `imports` is omitted when empty",
    ),
    (
        "ACCOUNT.INFO",
        ".data.exports",
        "the system account's exports are those services (`$SYS.REQ.ACCOUNT.*.CONNZ|STATZ`, \
         `$SYS.DEBUG.SUBSCRIBERS`, `$SYS.REQ.USER.*.INFO`): none in natsring, and `exports` \
         is omitted when empty",
    ),
];

/// Arrays that may be empty on one side and not on the other, as (answer, JSON path, reason).
const ALLOWED_EMPTY: &[(&str, &str, &str)] = &[];

const ALLOWANCES: Allowances = Allowances {
    differences: ALLOWED_DIFFERENCES,
    empty: ALLOWED_EMPTY,
};

// ------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------

/// The endpoints of `$SYS.REQ.SERVER.PING.<E>` and `$SYS.REQ.SERVER.<id>.<E>`.
const SERVER_ENDPOINTS: [&str; 8] = [
    "STATSZ", "VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "ACCOUNTZ", "HEALTHZ", "LEAFZ",
];

/// The endpoints of `$SYS.REQ.ACCOUNT.<account>.<E>`.
const ACCOUNT_ENDPOINTS: [&str; 4] = ["CONNZ", "SUBSZ", "INFO", "STATZ"];

/// What a request gets from nats-server (checked on the reference too, so the traffic guards
/// itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `{"server", "data"}`, or `{"server", "statsz"}` for `STATSZ`.
    Answer,
    /// `{"server", "error": {"code": <code>, "description"}}`.
    Error(u64),
    /// Nothing: the server is not among those asked, or has nothing to say.
    Nothing,
}

/// One request: its subject (`{id}` stands for the server's id), its body, the answer's name
/// in [`ALLOWED_DIFFERENCES`], and what nats-server answers.
#[derive(Clone, Debug)]
struct Case {
    subject: String,
    body: &'static str,
    endpoint: String,
    expect: Expect,
}

impl Case {
    fn new(subject: String, body: &'static str, endpoint: String, expect: Expect) -> Case {
        Case {
            subject,
            body,
            endpoint,
            expect,
        }
    }

    fn describe(&self) -> String {
        format!("{} {:?}", self.subject, self.body)
    }
}

/// Bodies every endpoint gets: none, an empty object, and a malformed one (nats-server's 400,
/// `unexpected end of JSON input`: the text is Go's, so only the code is compared).
const COMMON_BODIES: [(&str, Expect); 3] = [
    ("", Expect::Answer),
    ("{}", Expect::Answer),
    ("{", Expect::Error(400)),
];

/// A filter that names another server: no answer from either.
const OTHER_SERVER: &str = r#"{"server_name":"nope"}"#;

/// Every request, in the order sent: run after [`drive_traffic`], so `{"state":1}` lists the
/// closed clients and the accounts have clients.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (body, expect) in COMMON_BODIES {
        cases.push(Case::new(
            "$SYS.REQ.SERVER.PING".into(),
            body,
            "STATSZ".into(),
            expect,
        ));
    }
    cases.push(Case::new(
        "$SYS.REQ.SERVER.PING".into(),
        OTHER_SERVER,
        "STATSZ".into(),
        Expect::Nothing,
    ));
    for target in ["PING", "{id}"] {
        for endpoint in SERVER_ENDPOINTS {
            let subject = format!("$SYS.REQ.SERVER.{target}.{endpoint}");
            for (body, expect) in COMMON_BODIES {
                cases.push(Case::new(subject.clone(), body, endpoint.into(), expect));
            }
            cases.push(Case::new(
                subject.clone(),
                OTHER_SERVER,
                endpoint.into(),
                Expect::Nothing,
            ));
        }
        let connz = format!("$SYS.REQ.SERVER.{target}.CONNZ");
        for body in [
            r#"{"limit":2,"sort":"bytes_to","subscriptions":true}"#,
            r#"{"state":1}"#,
            r#"{"state":1,"sort":"stop","subscriptions":true}"#,
        ] {
            cases.push(Case::new(
                connz.clone(),
                body,
                "CONNZ".into(),
                Expect::Answer,
            ));
        }
        cases.push(Case::new(
            connz,
            r#"{"sort":"bogus"}"#,
            "CONNZ".into(),
            Expect::Error(500),
        ));
        cases.push(Case::new(
            format!("$SYS.REQ.SERVER.{target}.SUBSZ"),
            r#"{"subscriptions":true,"test":"orders.new"}"#,
            "SUBSZ".into(),
            Expect::Answer,
        ));
    }
    for account in ["A", "B", "SYS"] {
        for endpoint in ACCOUNT_ENDPOINTS {
            let subject = format!("$SYS.REQ.ACCOUNT.{account}.{endpoint}");
            let name = format!("ACCOUNT.{endpoint}");
            for (body, expect) in COMMON_BODIES {
                cases.push(Case::new(subject.clone(), body, name.clone(), expect));
            }
            cases.push(Case::new(
                subject,
                OTHER_SERVER,
                name.clone(),
                Expect::Nothing,
            ));
        }
    }
    let a_connz = "$SYS.REQ.ACCOUNT.A.CONNZ".to_string();
    for body in [
        r#"{"limit":2,"sort":"bytes_to","subscriptions":true}"#,
        r#"{"state":1}"#,
    ] {
        cases.push(Case::new(
            a_connz.clone(),
            body,
            "ACCOUNT.CONNZ".into(),
            Expect::Answer,
        ));
    }
    cases.push(Case::new(
        a_connz,
        r#"{"sort":"bogus"}"#,
        "ACCOUNT.CONNZ".into(),
        Expect::Error(500),
    ));
    cases.push(Case::new(
        "$SYS.REQ.ACCOUNT.A.SUBSZ".into(),
        r#"{"subscriptions":true,"test":"orders.new"}"#,
        "ACCOUNT.SUBSZ".into(),
        Expect::Answer,
    ));
    // Bodies Go's `json.Unmarshal` reads its own way: blank is malformed, `null` is no
    // options, an array or a mistyped field is a 400.
    for (body, expect) in [
        (" ", Expect::Error(400)),
        ("null", Expect::Answer),
        ("[]", Expect::Error(400)),
        (r#"{"limit":"x"}"#, Expect::Error(400)),
    ] {
        cases.push(Case::new(
            "$SYS.REQ.SERVER.PING.CONNZ".into(),
            body,
            "CONNZ".into(),
            expect,
        ));
    }
    // The endpoints' own errors (500, with `"data": null`).
    cases.push(Case::new(
        "$SYS.REQ.SERVER.PING.SUBSZ".into(),
        r#"{"test":"orders.*"}"#,
        "SUBSZ".into(),
        Expect::Error(500),
    ));
    cases.push(Case::new(
        "$SYS.REQ.SERVER.PING.ACCOUNTZ".into(),
        r#"{"account":"NOPE"}"#,
        "ACCOUNTZ".into(),
        Expect::Error(500),
    ));
    cases.push(Case::new(
        "$SYS.REQ.ACCOUNT.NOPE.INFO".into(),
        "",
        "ACCOUNT.INFO".into(),
        Expect::Error(500),
    ));
    // Every account's STATZ, or those named; silent when none has clients.
    for (body, expect) in [
        ("", Expect::Answer),
        (r#"{"accounts":["B"]}"#, Expect::Answer),
        (r#"{"accounts":["NOPE"]}"#, Expect::Nothing),
        (
            r#"{"accounts":["NOPE"],"include_unused":true}"#,
            Expect::Answer,
        ),
        (OTHER_SERVER, Expect::Nothing),
    ] {
        cases.push(Case::new(
            "$SYS.REQ.ACCOUNT.PING.STATZ".into(),
            body,
            "ACCOUNT.STATZ".into(),
            expect,
        ));
    }
    // An account without clients: nats-server's STATZ stays silent unless `include_unused`.
    cases.push(Case::new(
        "$SYS.REQ.ACCOUNT.$G.STATZ".into(),
        "",
        "ACCOUNT.STATZ".into(),
        Expect::Nothing,
    ));
    cases.push(Case::new(
        "$SYS.REQ.ACCOUNT.$G.STATZ".into(),
        r#"{"include_unused":true}"#,
        "ACCOUNT.STATZ".into(),
        Expect::Answer,
    ));
    cases
}

// ------------------------------------------------------------------------------------------
// Servers and traffic
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Implementation {
    NatsServer,
    Natsring { shards: usize },
}

fn start(implementation: Implementation) -> ChildServer {
    match implementation {
        Implementation::NatsServer => start_reference_with_config(CONFIG),
        Implementation::Natsring { shards } => {
            start_natsring_with_config(CONFIG, &["--shards", &shards.to_string()])
        }
    }
}

/// What a subscriber of `$SYS.>` received under `$SYS.ACCOUNT.` and `$SYS.SERVER.`, in the order
/// the server sent it: (subject, payload).
type Events = Arc<Mutex<Vec<(String, Value)>>>;

/// Everything one server said.
struct Observed {
    implementation: Implementation,
    server_id: String,
    /// One per [`cases`], in order: the answer, or None when none came.
    answers: Vec<Option<Value>>,
    events: Vec<(String, Value)>,
}

/// The clients of account A that the events come from, with the `reason` nats-server gives
/// their close.
const CLOSED_CLIENTS: [(&str, &str); 2] = [
    ("closer", "Client Closed"),
    ("violator", "Protocol Violation"),
];

async fn connect(port: u16, user: &str, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .name(name)
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"))
}

/// A raw client of account A named `name`: CONNECT (with a PING, as client libraries do) and
/// the PONG; then it closes its socket, or sends an unknown operation and is closed.
fn raw_client(port: u16, name: &str, violate: bool) {
    let mut raw = Raw::connect(port);
    raw.read_until(b"\r\n", WAIT);
    let connect = json!({
        "verbose": false, "pedantic": false, "user": "a", "pass": "a", "name": name,
        "lang": "rust", "version": "1.2.3", "protocol": 1, "headers": true, "no_responders": true,
    });
    raw.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    raw.read_until(b"PONG\r\n", WAIT);
    if violate {
        raw.send(b"BOGUS\r\n");
        raw.read_until_closed(WAIT);
    }
}

/// The events whose subject is `subject`.
fn on_subject<'a>(events: &'a [(String, Value)], subject: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(s, _)| s == subject)
        .map(|(_, event)| event)
        .collect()
}

/// The `CONNECT` or `DISCONNECT` event of account A's client `name`.
fn client_event<'a>(events: &'a [(String, Value)], what: &str, name: &str) -> Option<&'a Value> {
    on_subject(events, &format!("$SYS.ACCOUNT.A.{what}"))
        .into_iter()
        .find(|event| event["client"]["name"] == name)
}

/// Polls `events` until `lacking` finds nothing lacking; panics after `timeout`, saying what
/// still lacked and listing the events seen (each with its envelope's `server.seq`, the order
/// the server sent them in).
async fn wait_for(
    events: &Events,
    timeout: Duration,
    what: &str,
    lacking: impl Fn(&[(String, Value)]) -> Vec<String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let events = events.lock().unwrap();
            let lacked = lacking(&events);
            if lacked.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}: lacking {lacked:#?}; events: {:#?}",
                events
                    .iter()
                    .map(|(subject, event)| format!("{subject} (seq {})", event["server"]["seq"]))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one request; the answer as JSON, or None when none came in time.
async fn request(client: &async_nats::Client, case: &Case, server_id: &str) -> Option<Value> {
    let subject = case.subject.replace("{id}", server_id);
    let timeout = if case.expect == Expect::Nothing {
        NO_ANSWER
    } else {
        WAIT
    };
    let request = async_nats::Request::new()
        .payload(Bytes::from_static(case.body.as_bytes()))
        .timeout(Some(timeout));
    match client.send_request(subject.clone(), request).await {
        Ok(message) => Some(
            serde_json::from_slice(&message.payload).unwrap_or_else(|e| {
                panic!(
                    "{subject} {:?}: not JSON ({e}): {:?}",
                    case.body,
                    String::from_utf8_lossy(&message.payload)
                )
            }),
        ),
        Err(err) if err.kind() == async_nats::RequestErrorKind::TimedOut => None,
        Err(err) => panic!("{subject} {:?}: {err}", case.body),
    }
}

/// The same traffic against any server, then every request; returns what it said.
/// - `sys-client` (account SYS) subscribes to `$SYS.>` and keeps what comes under
///   `$SYS.ACCOUNT.` and `$SYS.SERVER.` (one subscription: the client hands its messages over
///   in the order they came; two, merged, would interleave them their own way, and a count
///   could be seen before the DISCONNECT the server sent ahead of it);
/// - `sub-a` (A) subscribes to `orders.new` and `orders.*`, `sub-b` (B) to `orders.new`;
///   `sub-a` publishes 3 `orders.new` (2 deliveries each to itself), `sub-b` 1;
/// - `closer` (A) connects and closes its socket, `violator` (A) connects and sends an
///   unknown operation (Protocol Violation);
/// - every request of [`cases`], in order;
/// - then the `STATSZ` heartbeat is awaited.
async fn observe(implementation: Implementation) -> Observed {
    let server = start(implementation);
    let port = server.port;
    let sys = connect(port, "sys", "sys-client").await;
    let server_id = sys.server_info().server_id;
    let events: Events = Arc::default();
    let mut subscription = sys.subscribe("$SYS.>").await.unwrap();
    let collected = Arc::clone(&events);
    let collector = tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            // Not the requests (`$SYS.REQ.`), this client's own among them.
            if !["$SYS.ACCOUNT.", "$SYS.SERVER."]
                .iter()
                .any(|prefix| message.subject.starts_with(prefix))
            {
                continue;
            }
            let event = serde_json::from_slice(&message.payload).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&message.payload).into_owned())
            });
            collected
                .lock()
                .unwrap()
                .push((message.subject.to_string(), event));
        }
    });
    common::sync(&sys).await;
    let subscribed = Instant::now();

    let sub_a = connect(port, "a", "sub-a").await;
    let _orders_new = sub_a.subscribe("orders.new").await.unwrap();
    let _orders_any = sub_a.subscribe("orders.*").await.unwrap();
    let sub_b = connect(port, "b", "sub-b").await;
    let _orders_b = sub_b.subscribe("orders.new").await.unwrap();
    common::sync(&sub_a).await;
    common::sync(&sub_b).await;
    for i in 0..3 {
        sub_a
            .publish("orders.new", format!("order {i}").into())
            .await
            .unwrap();
    }
    sub_b.publish("orders.new", "order b".into()).await.unwrap();
    common::sync(&sub_a).await;
    common::sync(&sub_b).await;

    for (name, _reason) in CLOSED_CLIENTS {
        let violate = name == "violator";
        tokio::task::spawn_blocking(move || raw_client(port, name, violate))
            .await
            .unwrap();
    }
    // Both closes announced, and account A's connection count after the last of them, on
    // each subject: nats-server sends `account_connections` before every CONNECT or
    // DISCONNECT; natsring after them, one for each batch of the notices that waited together
    // (under a storm of connections, one look at the shards per batch, not per connection).
    let what = format!("{implementation:?}: the clients' events");
    wait_for(&events, WAIT, &what, |events| {
        let mut lacking: Vec<String> = CLOSED_CLIENTS
            .iter()
            .filter(|(name, _)| client_event(events, "DISCONNECT", name).is_none())
            .map(|(name, _)| format!("DISCONNECT of {name}"))
            .collect();
        let last_disconnect = events
            .iter()
            .rposition(|(subject, _)| subject == "$SYS.ACCOUNT.A.DISCONNECT");
        for subject in ["$SYS.ACCOUNT.A.SERVER.CONNS", "$SYS.SERVER.ACCOUNT.A.CONNS"] {
            let last_count = events.iter().rposition(|(s, _)| s == subject);
            match (implementation, last_disconnect, last_count) {
                // nats-server's count comes first: any will do.
                (Implementation::NatsServer, _, Some(_)) => {}
                (_, Some(disconnect), Some(count)) if count > disconnect => {}
                (_, _, None) => lacking.push(subject.to_string()),
                _ => lacking.push(format!("{subject} after the last DISCONNECT")),
            }
        }
        lacking
    })
    .await;

    // All at once: the silent ones wait out their timeout together.
    let cases = cases();
    let answers =
        futures::future::join_all(cases.iter().map(|case| request(&sys, case, &server_id))).await;

    let heartbeat = format!("$SYS.SERVER.{server_id}.STATSZ");
    let left = HEARTBEAT_WAIT.saturating_sub(subscribed.elapsed());
    let what = format!("{implementation:?}: a STATSZ heartbeat");
    wait_for(&events, left, &what, |events| {
        if on_subject(events, &heartbeat).is_empty() {
            vec![heartbeat.clone()]
        } else {
            Vec::new()
        }
    })
    .await;
    collector.abort();
    let events = events.lock().unwrap().clone();
    drop(server);
    Observed {
        implementation,
        server_id,
        answers,
        events,
    }
}

// ------------------------------------------------------------------------------------------
// The comparison
// ------------------------------------------------------------------------------------------

/// Whether `answer` is what `expect` says: the reference's own check.
fn is_expected(answer: &Option<Value>, expect: Expect, endpoint: &str) -> bool {
    match (answer, expect) {
        (None, Expect::Nothing) => true,
        (Some(answer), Expect::Answer) => {
            let body = if endpoint == "STATSZ" {
                "statsz"
            } else {
                "data"
            };
            answer["server"].is_object() && answer[body].is_object()
        }
        (Some(answer), Expect::Error(code)) => {
            answer["server"].is_object() && answer["error"]["code"] == code
        }
        _ => false,
    }
}

/// The shapes of `ours` and `reference` (several events of one kind are compared as one array,
/// the union of their keys), each difference prefixed with `what`.
fn shapes(what: &str, endpoint: &str, ours: &Value, reference: &Value) -> Vec<String> {
    shape_differences(&ALLOWANCES, endpoint, ours, reference)
        .into_iter()
        .map(|difference| format!("{what}: {difference}"))
        .collect()
}

/// Pushes a difference unless `ours` and `reference` hold the same value at `pointer`.
fn same_value(
    what: &str,
    pointer: &str,
    ours: &Value,
    reference: &Value,
    differences: &mut Vec<String>,
) {
    let (a, b) = (ours.pointer(pointer), reference.pointer(pointer));
    if a != b {
        differences.push(format!(
            "{what} {pointer}: {a:?} where nats-server has {b:?}"
        ));
    }
}

/// Compares the answers to every request.
fn compare_answers(ours: &Observed, reference: &Observed) -> Vec<String> {
    let mut differences = Vec::new();
    for ((case, mine), theirs) in cases().iter().zip(&ours.answers).zip(&reference.answers) {
        let what = case.describe();
        assert!(
            is_expected(theirs, case.expect, &case.endpoint),
            "{:?}: {what}: expected {:?}, got {theirs:?}",
            reference.implementation,
            case.expect
        );
        match (mine, theirs) {
            (None, None) => {}
            (Some(mine), None) => differences.push(format!(
                "{what}: answered where nats-server is silent: {mine}"
            )),
            (None, Some(_)) => {
                differences.push(format!("{what}: no answer where nats-server answers"))
            }
            (Some(mine), Some(theirs)) => {
                differences.extend(shapes(&what, &case.endpoint, mine, theirs));
                same_value(&what, "/error/code", mine, theirs, &mut differences);
            }
        }
    }
    differences
}

/// The client identity an event carries, compared by value.
const CLIENT_VALUES: &[&str] = &[
    "/type",
    "/client/acc",
    "/client/user",
    "/client/name",
    "/client/lang",
    "/client/ver",
    "/client/kind",
    "/client/client_type",
    "/client/name_tag",
];

/// Compares the events both subscribers saw.
fn compare_events(ours: &Observed, reference: &Observed) -> Vec<String> {
    let mut differences = Vec::new();
    for what in ["CONNECT", "DISCONNECT"] {
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for (name, reason) in CLOSED_CLIENTS {
            let reference_event = client_event(&reference.events, what, name)
                .unwrap_or_else(|| panic!("nats-server: {what} of {name}"));
            if what == "DISCONNECT" {
                assert_eq!(
                    reference_event["reason"], reason,
                    "nats-server: the reason of {name}'s DISCONNECT"
                );
            }
            let Some(our_event) = client_event(&ours.events, what, name) else {
                differences.push(format!("{what} of {name}: missing"));
                continue;
            };
            let label = format!("{what} of {name}");
            for pointer in CLIENT_VALUES.iter().chain(&["/reason"]) {
                same_value(
                    &label,
                    pointer,
                    our_event,
                    reference_event,
                    &mut differences,
                );
            }
            mine.push(our_event.clone());
            theirs.push(reference_event.clone());
        }
        differences.extend(shapes(
            &format!("$SYS.ACCOUNT.A.{what}"),
            what,
            &Value::Array(mine),
            &Value::Array(theirs),
        ));
    }
    // sub-a's CONNECT: an async-nats client's (lang, version, no user-chosen fields).
    match (
        client_event(&ours.events, "CONNECT", "sub-a"),
        client_event(&reference.events, "CONNECT", "sub-a"),
    ) {
        (Some(mine), Some(theirs)) => {
            for pointer in CLIENT_VALUES {
                same_value("CONNECT of sub-a", pointer, mine, theirs, &mut differences);
            }
            differences.extend(shapes("CONNECT of sub-a", "CONNECT", mine, theirs));
        }
        (None, Some(_)) => differences.push("CONNECT of sub-a: missing".to_string()),
        (_, None) => panic!("nats-server: CONNECT of sub-a"),
    }
    for subject in ["$SYS.ACCOUNT.A.SERVER.CONNS", "$SYS.SERVER.ACCOUNT.A.CONNS"] {
        let mine = on_subject(&ours.events, subject);
        let theirs = on_subject(&reference.events, subject);
        assert!(!theirs.is_empty(), "nats-server: {subject}");
        if mine.is_empty() {
            differences.push(format!("{subject}: none"));
            continue;
        }
        for pointer in ["/type", "/acc", "/name"] {
            same_value(subject, pointer, mine[0], theirs[0], &mut differences);
        }
        // The last one follows the last disconnect: sub-a is A's only client left.
        for pointer in ["/conns", "/total_conns", "/leafnodes"] {
            same_value(
                &format!("{subject} (last)"),
                pointer,
                mine[mine.len() - 1],
                theirs[theirs.len() - 1],
                &mut differences,
            );
        }
        differences.extend(shapes(
            subject,
            "account_connections",
            &Value::Array(mine.into_iter().cloned().collect()),
            &Value::Array(theirs.into_iter().cloned().collect()),
        ));
    }
    let heartbeat = |observed: &Observed| {
        on_subject(
            &observed.events,
            &format!("$SYS.SERVER.{}.STATSZ", observed.server_id),
        )
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    };
    let (mine, theirs) = (heartbeat(ours), heartbeat(reference));
    differences.extend(shapes(
        "$SYS.SERVER.<id>.STATSZ",
        "STATSZ heartbeat",
        &Value::Array(mine),
        &Value::Array(theirs),
    ));
    differences
}

async fn compare_servers(ours: Implementation) -> Vec<String> {
    let (reference, candidate) = tokio::join!(observe(Implementation::NatsServer), observe(ours));
    let mut differences = compare_answers(&candidate, &reference);
    differences.extend(compare_events(&candidate, &reference));
    differences
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natsring_matches_nats_server() {
    assert_nats_server_available();
    assert_no_differences(
        "natsring against nats-server",
        &compare_servers(Implementation::Natsring { shards: 1 }).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natsring_on_two_shards_matches_nats_server() {
    assert_nats_server_available();
    assert_no_differences(
        "natsring (2 shards) against nats-server",
        &compare_servers(Implementation::Natsring { shards: 2 }).await,
    );
}

/// Two nats-server processes, the same traffic: no differences. Proves the comparison can pass
/// and the traffic is deterministic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_matches_itself() {
    assert_nats_server_available();
    assert_no_differences(
        "nats-server against itself",
        &compare_servers(Implementation::NatsServer).await,
    );
}

#[test]
fn comparator_applies_the_allow_list_to_every_answer() {
    let reference = json!({"server": {"id": "x", "feature_flags": {"js_ack_fc_v2": false}},
                           "data": {"account_name": "A", "imports": [{"subject": "s"}]}});
    let ours = json!({"server": {"id": "y"}, "data": {"account_name": "A"}});
    // `*` covers every answer; an endpoint's entry only its own.
    assert!(shapes("INFO", "ACCOUNT.INFO", &ours, &reference).is_empty());
    assert_eq!(
        shapes("CONNZ", "ACCOUNT.CONNZ", &ours, &reference),
        ["CONNZ: ACCOUNT.CONNZ .data.imports: missing (nats-server has it)"]
    );
    // Types and time formats inside envelopes and events.
    let reference = json!({"server": {"seq": 3, "time": "2026-01-02T03:04:05.123Z"},
                           "client": {"id": 9, "rtt": 636000}});
    let ours = json!({"server": {"seq": "3", "time": "2026-01-02 03:04:05"},
                      "client": {"id": 9, "rtt": "636µs"}});
    assert_eq!(
        shapes("DISCONNECT", "DISCONNECT", &ours, &reference),
        [
            "DISCONNECT: DISCONNECT .client.rtt: string (Duration) where nats-server has integer",
            "DISCONNECT: DISCONNECT .server.seq: string where nats-server has integer",
            "DISCONNECT: DISCONNECT .server.time: string (NotTime) where nats-server has string (Time)",
        ]
    );
}

#[test]
fn comparator_checks_error_codes_and_silence() {
    let observed = |implementation, answers: Vec<Option<Value>>| Observed {
        implementation,
        server_id: "id".into(),
        answers,
        events: Vec::new(),
    };
    let cases = cases();
    let error_at = cases
        .iter()
        .position(|case| case.expect == Expect::Error(500))
        .expect("an invalid sort");
    let silent_at = cases
        .iter()
        .position(|case| case.expect == Expect::Nothing)
        .expect("a filtered request");
    let server = json!({"server": {"id": "id"}});
    let error = |code: u64| {
        let mut answer = server.clone();
        answer["error"] = json!({"code": code, "description": "invalid sorting option: bogus"});
        Some(answer)
    };
    let answer = |case: &Case| match case.expect {
        Expect::Nothing => None,
        Expect::Error(code) => error(code),
        Expect::Answer => {
            let mut answer = server.clone();
            let body = if case.endpoint == "STATSZ" {
                "statsz"
            } else {
                "data"
            };
            answer[body] = json!({});
            Some(answer)
        }
    };
    let reference: Vec<Option<Value>> = cases.iter().map(answer).collect();
    let mut ours = reference.clone();
    ours[error_at] = error(400);
    ours[silent_at] = reference[error_at].clone();
    let answered_at = cases
        .iter()
        .position(|case| case.expect == Expect::Answer)
        .expect("an answered request");
    ours[answered_at] = None;
    let differences = compare_answers(
        &observed(Implementation::Natsring { shards: 1 }, ours),
        &observed(Implementation::NatsServer, reference.clone()),
    );
    assert_eq!(differences.len(), 3, "{differences:#?}");
    for expected in [
        "answered where nats-server is silent",
        "no answer where nats-server answers",
    ] {
        assert!(
            differences.iter().any(|d| d.contains(expected)),
            "{expected}: {differences:#?}"
        );
    }
    assert!(
        differences.iter().any(|d| d
            .contains("/error/code: Some(Number(400)) where nats-server has Some(Number(500))")),
        "{differences:#?}"
    );
}
