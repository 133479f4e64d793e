//! What the shards answer the monitor with, through `ServerHandle::shared()`: open and closed
//! connections, subscriptions, subject tables, account traffic and loop counters, with one
//! shard and with two (the answers are put together across shards), and thousands of
//! connections coming back whole through small chunks.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natsring::stats::ConnInfo;
use natsring::Shared;

use common::{options, start_with, Raw, TestServer};

const WAIT: Duration = Duration::from_secs(10);
/// The system account, whose own client (the system services') subscribes to its requests.
const SYSTEM_ACCOUNT: &str = "$SYS";

/// The subscriptions of the clients (those of the system services' client left out).
fn clients_subscriptions(shared: &Shared) -> Vec<natsring::stats::SubInfo> {
    shared
        .subscriptions()
        .into_iter()
        .filter(|sub| sub.account != SYSTEM_ACCOUNT)
        .collect()
}

fn server(shards: usize, max_closed_clients: u32) -> TestServer {
    let mut options = options();
    options.shards = shards;
    options.max_closed_clients = max_closed_clients;
    start_with(options)
}

/// Polls `check` until it gives something, or fails after `WAIT` saying `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A connection that has sent its CONNECT (named `name`), whose server answered a PING after
/// `ops`: everything before it was handled. Returns it and its cid.
fn client(port: u16, name: &str, ops: &str) -> (Raw, u64) {
    let mut raw = Raw::connect(port);
    let info = raw.read_until(b"\r\n", WAIT);
    let json: serde_json::Value = serde_json::from_slice(info[5..].trim_ascii()).unwrap();
    let cid = json["client_id"].as_u64().unwrap();
    raw.send(
        format!("CONNECT {{\"verbose\":false,\"name\":\"{name}\"}}\r\n{ops}PING\r\n").as_bytes(),
    );
    raw.read_until(b"PONG\r\n", WAIT);
    (raw, cid)
}

fn closed_cids(shared: &Shared) -> Vec<u64> {
    shared
        .closed_connections()
        .iter()
        .map(|conn| conn.cid)
        .collect()
}

fn data_of_open_and_closed_connections(shards: usize) {
    let server = server(shards, 100);
    let shared = server.handle().shared();
    let port = server.port;
    let (_subscriber, subscriber_cid) = client(port, "subscriber", "SUB foo 1\r\nSUB bar q 2\r\n");
    let (_publisher, publisher_cid) = client(
        port,
        "publisher",
        "PUB foo 5\r\nhello\r\nPUB foo 5\r\nhello\r\n",
    );
    let (leaver, leaver_cid) = client(port, "leaver", "SUB gone 9\r\n");
    let (mut violator, violator_cid) = client(port, "violator", "");

    let open = shared.open_connections(true);
    let cids: Vec<u64> = open.iter().map(|conn| conn.cid).collect();
    let mut sorted = vec![subscriber_cid, publisher_cid, leaver_cid, violator_cid];
    sorted.sort_unstable();
    assert_eq!(cids, sorted, "every open connection, by cid");
    let by_cid = |cid: u64| open.iter().find(|conn| conn.cid == cid).unwrap().clone();
    let subscriber = by_cid(subscriber_cid);
    assert_eq!(subscriber.name, "subscriber");
    assert_eq!(subscriber.ip, "127.0.0.1");
    assert_eq!((subscriber.subscriptions, subscriber.subs.len()), (2, 2));
    assert_eq!((subscriber.out_msgs, subscriber.out_bytes), (2, 10));
    assert!(subscriber.stop.is_none() && subscriber.reason.is_none());
    let publisher = by_cid(publisher_cid);
    assert_eq!((publisher.in_msgs, publisher.in_bytes), (2, 10));
    assert!(publisher.last_activity >= publisher.start);
    assert!(open.iter().all(|conn| usize::from(conn.shard) < shards));
    assert!(shared
        .open_connections(false)
        .iter()
        .all(|conn| conn.subs.is_empty()));

    let mut subs: Vec<(String, Option<String>, u64)> = clients_subscriptions(&shared)
        .into_iter()
        .map(|sub| (sub.subject, sub.queue, sub.cid))
        .collect();
    subs.sort();
    assert_eq!(
        subs,
        [
            ("bar".into(), Some("q".into()), subscriber_cid),
            ("foo".into(), None, subscriber_cid),
            ("gone".into(), None, leaver_cid),
        ]
    );

    let tables = shared.table_stats();
    let global = &tables[0];
    assert_eq!(global.account, "$G");
    assert_eq!(
        (global.subscriptions, global.inserts, global.removes),
        (3, 3, 0)
    );
    assert_eq!(
        (global.matches, global.cache_hits),
        (2, 1),
        "two publishes to foo"
    );
    assert_eq!(
        (global.cache_entries, global.max_fanout, global.fanout_sum),
        (1, 1, 1)
    );

    // The leaver closes its socket; then the violator breaks the protocol.
    drop(leaver);
    wait_for("the leaver's record", || {
        (closed_cids(&shared) == [leaver_cid]).then_some(())
    });
    violator.send(b"FOO\r\n");
    violator.read_until_closed(WAIT);
    let closed = wait_for("the violator's record", || {
        let closed = shared.closed_connections();
        (closed.len() == 2).then_some(closed)
    });
    let described: Vec<(u64, Option<&str>, usize)> = closed
        .iter()
        .map(|conn| (conn.cid, conn.reason, conn.subs.len()))
        .collect();
    assert_eq!(
        described,
        [
            (leaver_cid, Some("Client Closed"), 1),
            (violator_cid, Some("Protocol Violation"), 0),
        ],
        "oldest first"
    );
    assert_eq!(closed[0].subs[0].subject, "gone");
    assert!(closed.iter().all(|conn| conn.stop.is_some()));
    let open: Vec<u64> = shared
        .open_connections(false)
        .iter()
        .map(|conn| conn.cid)
        .collect();
    assert!(!open.contains(&leaver_cid) && !open.contains(&violator_cid));

    let traffic = &shared.account_traffic()[0];
    assert_eq!(traffic.account, "$G");
    assert_eq!((traffic.total_connections, traffic.connections), (4, 2));
    assert_eq!((traffic.in_msgs, traffic.out_msgs), (2, 2));
    let tables = shared.table_stats();
    assert_eq!((tables[0].subscriptions, tables[0].removes), (2, 1));

    let stats = shared.shard_stats_now();
    assert_eq!(stats.len(), shards);
    assert!(stats
        .iter()
        .all(|shard| shard.loop_rounds > 0 && shard.sqes_submitted > 0));
    assert_eq!(
        stats
            .iter()
            .map(|shard| shard.total_connections)
            .sum::<u64>(),
        4
    );
    assert_eq!(
        stats
            .iter()
            .map(|shard| shard.peer_queue_bytes)
            .sum::<u64>(),
        0,
        "nothing waits between shards now"
    );
    // Asked now, not the tick's copy: every accepted connection is counted at once.
    assert_eq!(server.handle().connections().len(), 2);
}

#[test]
fn open_and_closed_connections_subscriptions_and_tables_on_one_shard() {
    data_of_open_and_closed_connections(1);
}

#[test]
fn open_and_closed_connections_subscriptions_and_tables_on_two_shards() {
    data_of_open_and_closed_connections(2);
}

#[test]
fn closed_connections_keep_the_newest_max_closed_clients_across_shards() {
    let server = server(2, 3);
    let shared = server.handle().shared();
    let mut order = Vec::new();
    for index in 0..7 {
        let (raw, cid) = client(server.port, &format!("c{index}"), "");
        drop(raw);
        wait_for("the record", || {
            closed_cids(&shared).contains(&cid).then_some(())
        });
        order.push(cid);
    }
    assert_eq!(
        closed_cids(&shared),
        order[4..],
        "the newest three, oldest first"
    );
    let reasons: Vec<Option<&str>> = shared
        .closed_connections()
        .iter()
        .map(|conn| conn.reason)
        .collect();
    assert_eq!(reasons, [Some("Client Closed"); 3]);
}

/// Raises this process's open-file limit as far as allowed; returns the limit now.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed, during the call.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

fn many_connections_in_small_chunks(shards: usize) {
    // Each connection is two fds here (the client's and the server's end).
    let limit = raise_open_files_limit();
    let count = 3000.min((limit.saturating_sub(200) / 2) as usize);
    assert!(
        count >= 500,
        "the fd limit ({limit}) allows too few connections"
    );
    let server = server(shards, 10);
    let shared: Arc<Shared> = server.handle().shared();
    let clients: Vec<TcpStream> = (0..count)
        .map(|index| {
            let mut raw = Raw::connect(server.port);
            raw.send(format!("CONNECT {{}}\r\nSUB s.{index} {index}\r\n").as_bytes());
            raw.stream
        })
        .collect();
    let ports: HashSet<u16> = clients
        .iter()
        .map(|stream| stream.local_addr().unwrap().port())
        .collect();
    let open: Vec<ConnInfo> = wait_for("every connection accepted", || {
        let open = shared.open_connections_in_chunks(false, 7);
        (open.len() >= count).then_some(open)
    });
    assert_eq!(open.len(), count, "each listed once");
    let listed: HashSet<u16> = open.iter().map(|conn| conn.port).collect();
    assert_eq!(listed, ports, "exactly the connections made");
    let cids: HashSet<u64> = open.iter().map(|conn| conn.cid).collect();
    assert_eq!(cids.len(), count);

    let subjects = wait_for("every subscription made", || {
        let subs: Vec<_> = shared
            .subscriptions_in_chunks(13)
            .into_iter()
            .filter(|sub| sub.account != SYSTEM_ACCOUNT)
            .collect();
        (subs.len() >= count).then_some(subs)
    });
    assert_eq!(subjects.len(), count);
    let distinct: HashSet<&str> = subjects.iter().map(|sub| sub.subject.as_str()).collect();
    assert_eq!(distinct.len(), count);
    assert!(subjects.iter().all(|sub| cids.contains(&sub.cid)));
    // The default chunks give the same.
    assert_eq!(shared.open_connections(false).len(), count);
    assert_eq!(clients_subscriptions(&shared).len(), count);
    drop(clients);
}

#[test]
fn thousands_of_connections_come_back_whole_in_small_chunks() {
    many_connections_in_small_chunks(1);
}

#[test]
fn thousands_of_connections_on_two_shards_come_back_whole_in_small_chunks() {
    many_connections_in_small_chunks(2);
}

/// The first open connection's description once a client with `connect` options has
/// connected (and its CONNECT was handled).
async fn described(
    server: &TestServer,
    connect: async_nats::ConnectOptions,
) -> (async_nats::Client, ConnInfo) {
    let client = connect.connect(server.url()).await.expect("connects");
    client.flush().await.unwrap();
    // A round trip: the CONNECT was handled before the PONG.
    let _ = client
        .request("nobody.listens", "".into())
        .await
        .expect_err("no responders");
    let cid = client.server_info().client_id;
    let info = server
        .handle()
        .shared()
        .open_connections(false)
        .into_iter()
        .find(|conn| conn.cid == cid)
        .expect("listed");
    (client, info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_users_are_shown_as_nats_server_shows_them() {
    use natsring::auth::jwt::{creds, issue};
    use nkeys::KeyPair;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Users with passwords: the user name.
    let mut with_users = options();
    with_users.auth.users = Some(vec![natsring::auth::User {
        username: "alice".into(),
        password: "pw".into(),
        ..natsring::auth::User::default()
    }]);
    let server = start_with(with_users);
    let (_alice, info) = described(
        &server,
        async_nats::ConnectOptions::with_user_and_password("alice".into(), "pw".into()),
    )
    .await;
    assert_eq!(
        (info.authorized_user.as_str(), info.jwt.as_str()),
        ("alice", "")
    );
    assert_eq!(info.account, "$G");

    // A token: redacted.
    let mut with_token = options();
    with_token.auth.token = Some("s3cr3t".into());
    let server = start_with(with_token);
    let (_client, info) = described(
        &server,
        async_nats::ConnectOptions::with_token("s3cr3t".into()),
    )
    .await;
    assert_eq!(info.authorized_user, "[REDACTED]");

    // Operator mode: the user's public key, its JWT, the account that issued it, its tags.
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let mut operator_claims = issue::operator_claims(&operator.public_key());
    operator_claims.nats.system_account = system.public_key();
    let mut system_claims = issue::account_claims(&system.public_key());
    system_claims.data.name = "SYS".into();
    let mut account_claims = issue::account_claims(&account.public_key());
    account_claims.data.name = "APP".into();
    let user = KeyPair::new_user();
    let mut user_claims = issue::user_claims(&user.public_key());
    user_claims.data.name = "user".into();
    user_claims.nats.generic.tags = vec!["blue".into()];
    let user_jwt = issue::user(user_claims, &account, now);
    let mut operator_mode = options();
    operator_mode.operators = vec![issue::operator(operator_claims, &operator, now)];
    operator_mode.system_account = Some(system.public_key());
    operator_mode.resolver = Some(natsring::config::Resolver::Memory);
    operator_mode.resolver_preload = vec![
        (
            system.public_key(),
            issue::account(system_claims, &operator, now),
        ),
        (
            account.public_key(),
            issue::account(account_claims, &operator, now),
        ),
    ];
    let server = start_with(operator_mode);
    let credentials = creds::format(&user_jwt, &user.seed().unwrap());
    let (_client, info) = described(
        &server,
        async_nats::ConnectOptions::with_credentials(&credentials).unwrap(),
    )
    .await;
    assert_eq!(info.authorized_user, user.public_key());
    assert_eq!(info.jwt, user_jwt);
    assert_eq!(info.issuer_key, account.public_key());
    assert_eq!(info.tags, ["blue"]);
    assert_eq!(info.account, account.public_key());
}
