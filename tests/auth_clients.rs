//! Authentication, permissions, accounts and operator mode through real clients: async-nats
//! and nats-py against natsring (the binary, at two shards) and against nats-server 2.15.1
//! started on the same file, with the same outcome required of both; accounts kept apart under
//! load with clients on both shards; service and stream imports crossing accounts and shards;
//! reloads (SIGHUP) that remove users and tighten permissions under connected clients; and the
//! connection, subscription and payload limits of operator-mode JWTs.
//!
//! The raw differential tests of the same features are in `tests/auth.rs` and
//! `tests/jwt_nats_server.rs`; nothing here repeats them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerError};
use futures::{FutureExt, StreamExt};
use nkeys::KeyPair;
use tokio::sync::mpsc;
use tokio::time::timeout;

use natsring::auth::jwt::claims::{AccountClaims, UserClaims};
use natsring::auth::jwt::{creds, issue};
use natsring::shard_of_client_id;

use common::{
    normalize_info, start_natsring_with_config, start_reference_with_config, sync, temp_path,
    without_server_pings, ChildServer, Raw,
};

/// How long one awaited step may take (a bound on a wait, never what is asserted).
const WAIT: Duration = Duration::from_secs(10);

/// The shard count of every natsring started here.
const SHARDS: usize = 2;

fn url(port: u16) -> String {
    format!("nats://127.0.0.1:{port}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// nats-server and natsring (two shards), each started on `config`, with their names.
fn both_servers(config: &str) -> [(&'static str, ChildServer); 2] {
    [
        ("nats-server", start_reference_with_config(config)),
        ("natsring", natsring_on(config)),
    ]
}

/// natsring alone, at two shards.
fn natsring_on(config: &str) -> ChildServer {
    start_natsring_with_config(config, &["--shards", &SHARDS.to_string()])
}

/// An operator that trusts itself, its system account, and the accounts it signs: the
/// configuration of a server in operator mode with a memory resolver preloaded with them.
struct Operator {
    key: KeyPair,
    jwt: String,
    system_account: String,
    /// Public key and JWT of each account, the system account's first.
    accounts: Vec<(String, String)>,
}

impl Operator {
    fn new() -> Operator {
        let key = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let mut claims = issue::operator_claims(&key.public_key());
        claims.data.name = "natsring-clients".into();
        claims.nats.system_account = system.public_key();
        let jwt = issue::operator(claims, &key, now());
        let mut system_claims = issue::account_claims(&system.public_key());
        system_claims.data.name = "SYS".into();
        let system_jwt = issue::account(system_claims, &key, now());
        Operator {
            key,
            jwt,
            system_account: system.public_key(),
            accounts: vec![(system.public_key(), system_jwt)],
        }
    }

    /// A new account named `name`, its claims edited by `edit`, signed and preloaded.
    fn account(&mut self, name: &str, edit: impl FnOnce(&mut AccountClaims)) -> KeyPair {
        let account = KeyPair::new_account();
        let mut claims = issue::account_claims(&account.public_key());
        claims.data.name = name.into();
        edit(&mut claims);
        let jwt = issue::account(claims, &self.key, now());
        self.accounts.push((account.public_key(), jwt));
        account
    }

    fn config(&self) -> String {
        let preload: String = self
            .accounts
            .iter()
            .map(|(key, jwt)| format!("  {key}: {jwt}\n"))
            .collect();
        format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
            self.jwt, self.system_account
        )
    }
}

/// A user of `account` (signed by `account`), its claims edited by `edit`: the JWT and the
/// user's key pair.
fn user_of(account: &KeyPair, edit: impl FnOnce(&mut UserClaims)) -> (String, KeyPair) {
    let user = KeyPair::new_user();
    let mut claims = issue::user_claims(&user.public_key());
    claims.data.name = "user".into();
    edit(&mut claims);
    (issue::user(claims, account, now()), user)
}

/// The `.creds` text of a user of `account`.
fn creds_of(account: &KeyPair, edit: impl FnOnce(&mut UserClaims)) -> String {
    let (jwt, user) = user_of(account, edit);
    creds::format(&jwt, &user.seed().unwrap())
}

/// Writes `text` to a fresh file ending in `extension`.
fn write_temp(tag: &str, extension: &str, text: &str) -> PathBuf {
    let path = temp_path(tag).with_extension(extension);
    std::fs::write(&path, text).unwrap();
    path
}

/// What a client made of its connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Connected, and a message published by a second connection with the same credentials
    /// arrived at a subscription of the first.
    RoundTrip,
    /// The server answered CONNECT with `-ERR 'Authorization Violation'`.
    AuthorizationViolation,
    /// Refused otherwise: the error, as async-nats reports it.
    Refused(String),
}

/// Connects twice with `options()` to the server on `port`: a subscriber and a publisher.
async fn outcome(port: u16, options: &dyn Fn() -> ConnectOptions) -> Outcome {
    let subscriber = match options().connect(url(port)).await {
        Ok(client) => client,
        Err(err) if err.kind() == ConnectErrorKind::AuthorizationViolation => {
            return Outcome::AuthorizationViolation
        }
        Err(err) => return Outcome::Refused(format!("{:?}: {err}", err.kind())),
    };
    let publisher = options()
        .connect(url(port))
        .await
        .expect("the second connection with the same credentials");
    round_trip(&publisher, &subscriber, "round.trip").await;
    Outcome::RoundTrip
}

/// `publisher` publishes on `subject` and `subscriber`, subscribed first, gets the message.
async fn round_trip(publisher: &Client, subscriber: &Client, subject: &'static str) {
    let mut sub = subscriber.subscribe(subject).await.unwrap();
    sync(subscriber).await;
    publisher.publish(subject, "hello".into()).await.unwrap();
    sync(publisher).await;
    let msg = timeout(WAIT, sub.next())
        .await
        .expect("the message in time")
        .expect("the subscription is open");
    assert_eq!(msg.subject.as_str(), subject);
    assert_eq!(&msg.payload[..], b"hello");
}

/// One way of connecting, and what both servers must make of it.
struct Mode {
    name: &'static str,
    options: Box<dyn Fn() -> ConnectOptions>,
    expected: Outcome,
}

fn mode(
    name: &'static str,
    options: impl Fn() -> ConnectOptions + 'static,
    expected: Outcome,
) -> Mode {
    Mode {
        name,
        options: Box::new(options),
        expected,
    }
}

/// Runs every mode against nats-server and natsring started on `config`: each must give the
/// mode's expected outcome on both.
async fn agree_on_outcomes(config: &str, modes: &[Mode]) {
    let servers = both_servers(config);
    let mut failures = Vec::new();
    for mode in modes {
        for (server_name, server) in &servers {
            let got = outcome(server.port, &*mode.options).await;
            if got != mode.expected {
                failures.push(format!(
                    "{}: {server_name} gave {got:?}, expected {:?}",
                    mode.name, mode.expected
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_token_auth_as_nats_server() {
    let options = |token: &'static str| move || ConnectOptions::with_token(token.into());
    agree_on_outcomes(
        "authorization { token: \"s3cr3t\" }\n",
        &[
            mode("right token", options("s3cr3t"), Outcome::RoundTrip),
            mode(
                "wrong token",
                options("s3cr3"),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "no token",
                ConnectOptions::new,
                Outcome::AuthorizationViolation,
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_user_password_plain_and_bcrypt_as_nats_server() {
    let hash = bcrypt::hash("b0b-pw", 4).unwrap();
    let config = format!(
        "authorization {{ users = [
            {{ user: alice, password: \"al1ce-pw\" }}
            {{ user: bob, password: \"{hash}\" }}
        ] }}\n"
    );
    let options = |user: &'static str, password: &'static str| {
        move || ConnectOptions::with_user_and_password(user.into(), password.into())
    };
    agree_on_outcomes(
        &config,
        &[
            mode(
                "plain password",
                options("alice", "al1ce-pw"),
                Outcome::RoundTrip,
            ),
            mode(
                "wrong plain password",
                options("alice", "al1ce"),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "bcrypt password",
                options("bob", "b0b-pw"),
                Outcome::RoundTrip,
            ),
            mode(
                "wrong bcrypt password",
                options("bob", "B0B-pw"),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "the hash itself as the password",
                move || ConnectOptions::with_user_and_password("bob".into(), hash.clone()),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "unknown user",
                options("carol", "al1ce-pw"),
                Outcome::AuthorizationViolation,
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_nkey_auth_as_nats_server() {
    let user = KeyPair::new_user();
    let stranger = KeyPair::new_user();
    let config = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    let seed = user.seed().unwrap();
    let stranger_seed = stranger.seed().unwrap();
    agree_on_outcomes(
        &config,
        &[
            mode(
                "the user's seed",
                move || ConnectOptions::with_nkey(seed.clone()),
                Outcome::RoundTrip,
            ),
            mode(
                "another user's seed",
                move || ConnectOptions::with_nkey(stranger_seed.clone()),
                Outcome::AuthorizationViolation,
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_credentials_in_operator_mode_as_nats_server() {
    let mut operator = Operator::new();
    let account = operator.account("APP", |_| {});
    // An account the server was not given, signed by an operator it does not trust.
    let stranger = KeyPair::new_account();
    let good = creds_of(&account, |_| {});
    let file = write_temp("clients", "creds", &good);
    let expired = creds_of(&account, |u| u.data.expires = now() - 10);
    let untrusted = creds_of(&stranger, |_| {});
    // The JWT of one user with the seed of another: the nonce signature does not match.
    let (jwt, _) = user_of(&account, |_| {});
    let mismatched = creds::format(&jwt, &KeyPair::new_user().seed().unwrap());
    let from_file = file.clone();
    agree_on_outcomes(
        &operator.config(),
        &[
            mode(
                "creds text",
                move || ConnectOptions::with_credentials(&good).unwrap(),
                Outcome::RoundTrip,
            ),
            mode(
                "creds file",
                move || {
                    let contents = std::fs::read_to_string(&from_file).unwrap();
                    // `credentials_file` is async; reading the file here is the same thing.
                    ConnectOptions::with_credentials(&contents).unwrap()
                },
                Outcome::RoundTrip,
            ),
            mode(
                "expired user",
                move || ConnectOptions::with_credentials(&expired).unwrap(),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "user of an account nobody trusts",
                move || ConnectOptions::with_credentials(&untrusted).unwrap(),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "seed of another user",
                move || ConnectOptions::with_credentials(&mismatched).unwrap(),
                Outcome::AuthorizationViolation,
            ),
            mode(
                "no credentials",
                ConnectOptions::new,
                Outcome::AuthorizationViolation,
            ),
        ],
    )
    .await;
    // And async-nats' own reading of the file.
    let servers = both_servers(&operator.config());
    for (name, server) in &servers {
        let client = ConnectOptions::with_credentials_file(&file)
            .await
            .unwrap()
            .connect(url(server.port))
            .await
            .unwrap_or_else(|err| panic!("{name}: credentials_file: {err}"));
        round_trip(&client, &client, "creds.file").await;
    }
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_no_auth_user_as_nats_server() {
    let config = "accounts {
        A { users = [ { user: guest, password: guest }, { user: member, password: member } ] }
        B { users = [ { user: other, password: other } ] }
    }
    no_auth_user: guest\n";
    agree_on_outcomes(
        config,
        &[
            mode("no credentials", ConnectOptions::new, Outcome::RoundTrip),
            mode(
                "the user by name",
                || ConnectOptions::with_user_and_password("guest".into(), "guest".into()),
                Outcome::RoundTrip,
            ),
            mode(
                "a wrong password is not anonymous",
                || ConnectOptions::with_user_and_password("guest".into(), "nope".into()),
                Outcome::AuthorizationViolation,
            ),
        ],
    )
    .await;
    // The anonymous client is in account A: a member of A reaches it.
    for (name, server) in both_servers(config) {
        let anonymous = async_nats::connect(url(server.port)).await.unwrap();
        let member = ConnectOptions::with_user_and_password("member".into(), "member".into())
            .connect(url(server.port))
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        round_trip(&member, &anonymous, "in.account.a").await;
    }
}

/// Connects with `options()` to natsring on `port` until the connection lands on `shard` (the
/// kernel spreads connections over the shards' listeners; the INFO's `client_id` tells where).
async fn client_on(port: u16, shard: usize, options: &dyn Fn() -> ConnectOptions) -> Client {
    for _ in 0..200 {
        let client = options().connect(url(port)).await.expect("connect");
        if shard_of_client_id(client.server_info().client_id, SHARDS) == shard {
            return client;
        }
    }
    panic!("no connection landed on shard {shard} in 200 tries");
}

/// The user/password options of a user whose password is its name.
fn as_user(user: &'static str) -> impl Fn() -> ConnectOptions {
    move || ConnectOptions::with_user_and_password(user.into(), user.into())
}

/// Two accounts that share nothing but a `fence` subject each exports, which the other
/// imports as `load.fence`: what one account publishes on `fence` after its load reaches
/// the other's `load.>` subscribers last, so any of its load that leaked would have arrived
/// before it (one publisher's messages reach a connection in order).
const TWO_ACCOUNTS_WITH_FENCES: &str = "accounts {
    A {
        users = [ { user: a, password: a } ]
        exports = [ { stream: fence } ]
        imports = [ { stream: { account: B, subject: fence }, prefix: load } ]
    }
    B {
        users = [ { user: b, password: b } ]
        exports = [ { stream: fence } ]
        imports = [ { stream: { account: A, subject: fence }, prefix: load } ]
    }
}\n";

/// What one subscription of an account received, classified by the payload's account tag.
#[derive(Debug, Default)]
struct Received {
    /// The sequence numbers of the own account's load, in arrival order.
    own: Vec<usize>,
    own_end: bool,
    other_fence: bool,
    /// Anything else: the other account's load, or what no one published.
    foreign: Vec<String>,
}

impl Received {
    fn take(&mut self, own_tag: &str, other_tag: &str, subject: &str, payload: &[u8]) {
        let payload = String::from_utf8_lossy(payload).into_owned();
        let sequence = payload
            .strip_prefix(own_tag)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.parse::<usize>().ok());
        match (subject, sequence) {
            (_, Some(sequence)) if subject.starts_with("load.") => self.own.push(sequence),
            ("load.end", None) if payload == format!("{own_tag}:end") => self.own_end = true,
            ("load.fence", None) if payload == format!("{other_tag}:fence") => {
                self.other_fence = true
            }
            _ => self.foreign.push(format!("{subject} {payload}")),
        }
    }

    fn complete(&self, total: usize) -> bool {
        self.own.len() >= total && self.own_end && self.other_fence
    }
}

/// Publishes `tag:0 .. tag:total-1` over `load.0 .. load.3`, then `tag:end` on `load.end`
/// and `tag:fence` on `fence` (which only the other account sees, as `load.fence`).
async fn publish_load(publisher: Client, tag: &'static str, total: usize) {
    for sequence in 0..total {
        publisher
            .publish(
                format!("load.{}", sequence % 4),
                format!("{tag}:{sequence}").into(),
            )
            .await
            .unwrap();
    }
    publisher
        .publish("load.end", format!("{tag}:end").into())
        .await
        .unwrap();
    publisher
        .publish("fence", format!("{tag}:fence").into())
        .await
        .unwrap();
    sync(&publisher).await;
}

/// Reads `sub` until it has the account's whole load, its end and the other account's fence.
async fn receive_load(
    mut sub: async_nats::Subscriber,
    own_tag: &'static str,
    other_tag: &'static str,
    total: usize,
) -> Received {
    let mut received = Received::default();
    while !received.complete(total) {
        let msg = match timeout(WAIT, sub.next()).await {
            Ok(Some(msg)) => msg,
            _ => panic!(
                "{own_tag}: stalled with {} of {total}, end {}, fence {}, foreign {:?}",
                received.own.len(),
                received.own_end,
                received.other_fence,
                received.foreign.first()
            ),
        };
        received.take(own_tag, other_tag, msg.subject.as_str(), &msg.payload);
    }
    // Whatever is already buffered behind the fence was read off the socket before it.
    while let Some(Some(msg)) = sub.next().now_or_never() {
        received.take(own_tag, other_tag, msg.subject.as_str(), &msg.payload);
    }
    received
}

/// Accounts A and B both subscribe to `load.>` on both shards, plainly and in a queue group
/// `workers` with a member on each shard; A publishes from shard 1 and B from shard 0, 20,000
/// messages each on the same subjects. Every plain subscription gets exactly its own account's
/// messages, all of them, in order; each account's queue group gets each of its own messages
/// exactly once in total, on both members; no subscription sees the other account's load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_stay_isolated_under_load_across_two_shards() {
    const TOTAL: usize = 20_000;
    let server = natsring_on(TWO_ACCOUNTS_WITH_FENCES);
    let accounts = [("A", "B", "a", 1usize), ("B", "A", "b", 0usize)];
    let mut plain = Vec::new();
    let mut queue = Vec::new();
    let mut clients = Vec::new();
    for &(tag, other, user, _) in &accounts {
        for shard in 0..SHARDS {
            let client = client_on(server.port, shard, &as_user(user)).await;
            let sub = client.subscribe("load.>").await.unwrap();
            let member = client
                .queue_subscribe("load.>", "workers".into())
                .await
                .unwrap();
            sync(&client).await;
            plain.push((
                format!("{tag} plain on shard {shard}"),
                tokio::spawn(receive_load(sub, tag, other, TOTAL)),
            ));
            queue.push((tag, shard, member));
            clients.push(client);
        }
    }
    let mut publishers = Vec::new();
    for &(tag, _, user, shard) in &accounts {
        let publisher = client_on(server.port, shard, &as_user(user)).await;
        publishers.push(tokio::spawn(publish_load(publisher, tag, TOTAL)));
    }

    // The queue groups: each message of an account to one member of its group.
    let (sender, mut receiver) = mpsc::unbounded_channel();
    for (tag, shard, mut member) in queue {
        let sender = sender.clone();
        tokio::spawn(async move {
            while let Some(msg) = member.next().await {
                if sender.send((tag, shard, msg)).is_err() {
                    break;
                }
            }
        });
    }
    for publisher in publishers {
        timeout(Duration::from_secs(60), publisher)
            .await
            .expect("publishing in time")
            .unwrap();
    }
    for (name, received) in plain {
        let received = timeout(Duration::from_secs(60), received)
            .await
            .expect("received in time")
            .unwrap();
        assert!(
            received.foreign.is_empty(),
            "{name}: {} messages of another account, first {:?}",
            received.foreign.len(),
            received.foreign.first()
        );
        assert!(
            received.own.iter().copied().eq(0..TOTAL),
            "{name}: its own {TOTAL} in order, got {} (first out of place at {:?})",
            received.own.len(),
            received
                .own
                .iter()
                .enumerate()
                .find(|(at, &sequence)| *at != sequence)
        );
    }
    let mut groups = [
        ("A", "B", Received::default(), [0usize; SHARDS]),
        ("B", "A", Received::default(), [0usize; SHARDS]),
    ];
    while !groups
        .iter()
        .all(|(_, _, received, _)| received.complete(TOTAL))
    {
        let (tag, shard, msg) = timeout(WAIT, receiver.recv())
            .await
            .unwrap_or_else(|_| panic!("queue groups stalled: {groups:?}"))
            .expect("members run");
        let group = groups.iter_mut().find(|group| group.0 == tag).unwrap();
        group
            .2
            .take(tag, group.1, msg.subject.as_str(), &msg.payload);
        group.3[shard] += 1;
    }
    // Whatever the members read off their sockets before the last fence, too.
    tokio::task::yield_now().await;
    while let Ok((tag, shard, msg)) = receiver.try_recv() {
        let group = groups.iter_mut().find(|group| group.0 == tag).unwrap();
        group
            .2
            .take(tag, group.1, msg.subject.as_str(), &msg.payload);
        group.3[shard] += 1;
    }
    for (tag, _, received, per_shard) in &groups {
        assert!(
            received.foreign.is_empty(),
            "queue group of {tag}: {:?}",
            received.foreign.first()
        );
        let mut seen = vec![0u32; TOTAL];
        for &sequence in &received.own {
            seen[sequence] += 1;
        }
        let wrong: Vec<(usize, u32)> = seen
            .iter()
            .enumerate()
            .filter(|(_, &times)| times != 1)
            .map(|(sequence, &times)| (sequence, times))
            .take(5)
            .collect();
        assert!(
            wrong.is_empty() && received.own.len() == TOTAL,
            "queue group of {tag}: each of {TOTAL} exactly once, got {} (first wrong {wrong:?})",
            received.own.len()
        );
        assert!(
            per_shard.iter().all(|&count| count > 0),
            "queue group of {tag}: members on both shards served: {per_shard:?}"
        );
    }
    drop(clients);
}

/// Each account exports a service `svc.<account>.>` and a stream `events.<account>.>`, and
/// imports the other's: the service under its own subject, the stream with a prefix
/// `from<Account>`.
const TWO_ACCOUNTS_LINKED: &str = "accounts {
    A {
        users = [ { user: a, password: a } ]
        exports = [ { service: \"svc.a.>\" }, { stream: \"events.a.>\" } ]
        imports = [
            { service: { account: B, subject: \"svc.b.>\" } }
            { stream: { account: B, subject: \"events.b.>\" }, prefix: fromB }
        ]
    }
    B {
        users = [ { user: b, password: b } ]
        exports = [ { service: \"svc.b.>\" }, { stream: \"events.b.>\" } ]
        imports = [
            { service: { account: A, subject: \"svc.a.>\" } }
            { stream: { account: A, subject: \"events.a.>\" }, prefix: fromA }
        ]
    }
}\n";

/// async-nats `request` through a service import: the responder in one account on one shard,
/// the requester in the other account on the other shard, in all four combinations. Each
/// request gets its own answer, and the responder sees the request on a reply subject of the
/// import (`_R_.`), never the requester's inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_import_requests_cross_accounts_and_shards() {
    const REQUESTS: usize = 200;
    let server = natsring_on(TWO_ACCOUNTS_LINKED);
    for (serving, asking, responder_shard) in
        [("a", "b", 0), ("a", "b", 1), ("b", "a", 0), ("b", "a", 1)]
    {
        let case = format!("{serving} on shard {responder_shard} serves {asking}");
        let responder = client_on(server.port, responder_shard, &as_user(serving)).await;
        let subject = format!("svc.{serving}.echo");
        let mut requests = responder.subscribe(subject.clone()).await.unwrap();
        sync(&responder).await;
        let answering = responder.clone();
        let service = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let reply = request.reply.expect("a request has a reply subject");
                let answer = format!(
                    "{serving} answers {} via import: {}",
                    String::from_utf8_lossy(&request.payload),
                    reply.as_str().starts_with("_R_.")
                );
                answering.publish(reply, answer.into()).await.unwrap();
            }
        });
        let requester =
            client_on(server.port, SHARDS - 1 - responder_shard, &as_user(asking)).await;
        for number in 0..REQUESTS {
            let answer = timeout(
                WAIT,
                requester.request(subject.clone(), number.to_string().into()),
            )
            .await
            .unwrap_or_else(|_| panic!("{case}: request {number} in time"))
            .unwrap_or_else(|err| panic!("{case}: request {number}: {err}"));
            assert_eq!(
                String::from_utf8_lossy(&answer.payload),
                format!("{serving} answers {number} via import: true"),
                "{case}"
            );
        }
        service.abort();
    }
}

/// A stream import with a prefix: what one account publishes on `events.<account>.*` from one
/// shard reaches the other account's subscribers of `from<Account>.events.<account>.>` on both
/// shards, every message in order and under the prefixed subject; a subscriber of the
/// unprefixed subject in the importing account gets none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_import_with_prefix_reaches_the_other_account_on_both_shards() {
    const TOTAL: usize = 2_000;
    let server = natsring_on(TWO_ACCOUNTS_LINKED);
    for (exporting, importing, publisher_shard) in [("a", "b", 0), ("b", "a", 1)] {
        let prefix = format!("from{}", exporting.to_uppercase());
        let mut subscribers = Vec::new();
        for shard in 0..SHARDS {
            let client = client_on(server.port, shard, &as_user(importing)).await;
            let imported = client
                .subscribe(format!("{prefix}.events.{exporting}.>"))
                .await
                .unwrap();
            let unprefixed = client
                .subscribe(format!("events.{exporting}.>"))
                .await
                .unwrap();
            sync(&client).await;
            subscribers.push((shard, client, imported, unprefixed));
        }
        let publisher = client_on(server.port, publisher_shard, &as_user(exporting)).await;
        for number in 0..TOTAL {
            publisher
                .publish(
                    format!("events.{exporting}.{}", number % 3),
                    number.to_string().into(),
                )
                .await
                .unwrap();
        }
        sync(&publisher).await;
        for (shard, _client, imported, unprefixed) in &mut subscribers {
            let case = format!(
                "{importing} on shard {shard}, from {exporting} on shard {publisher_shard}"
            );
            for number in 0..TOTAL {
                let msg = timeout(WAIT, imported.next())
                    .await
                    .unwrap_or_else(|_| panic!("{case}: message {number} in time"))
                    .unwrap();
                assert_eq!(
                    msg.subject.as_str(),
                    format!("{prefix}.events.{exporting}.{}", number % 3),
                    "{case}"
                );
                assert_eq!(&msg.payload[..], number.to_string().as_bytes(), "{case}");
            }
            // The same connection read anything of the unprefixed subscription before the
            // last imported message: it would be buffered by now.
            assert!(
                unprefixed.next().now_or_never().is_none(),
                "{case}: the unprefixed subject got the export"
            );
        }
    }
}

/// nats-py with `user_credentials=` (a `.creds` file) against a server in operator mode, and
/// with a user and password against another: `tests/clients/python/auth_creds.py` checks a
/// round trip and a request with each, and that an untrusted user's creds and a wrong
/// password are refused. Run against two nats-servers first: what the script requires is what
/// nats-server gives a nats-py application.
#[test]
fn nats_py_connects_with_creds_and_passwords() {
    let mut operator = Operator::new();
    let account = operator.account("APP", |_| {});
    let creds = write_temp("py", "creds", &creds_of(&account, |_| {}));
    let untrusted = write_temp("py", "creds", &creds_of(&KeyPair::new_account(), |_| {}));
    let hash = bcrypt::hash("py-pw", 4).unwrap();
    let passwords =
        format!("authorization {{ users = [ {{ user: py, password: \"{hash}\" }} ] }}\n");
    let run_script = |server_name: &str, operator_port: u16, password_port: u16| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/auth_creds.py");
        let output = Command::new("python3")
            .arg(&script)
            .arg(url(operator_port))
            .arg(&creds)
            .arg(&untrusted)
            .arg(url(password_port))
            .args(["py", "py-pw"])
            .output()
            .expect("python3 runs (scripts/test.sh installs nats-py and nkeys)");
        assert!(
            output.status.success(),
            "nats-py credentials script against {server_name}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let reference_operator = start_reference_with_config(&operator.config());
    let reference_passwords = start_reference_with_config(&passwords);
    run_script(
        "nats-server",
        reference_operator.port,
        reference_passwords.port,
    );
    let natsring_operator = natsring_on(&operator.config());
    let natsring_passwords = natsring_on(&passwords);
    run_script("natsring", natsring_operator.port, natsring_passwords.port);
    let _ = std::fs::remove_file(&creds);
    let _ = std::fs::remove_file(&untrusted);
}

/// A server whose configuration logs to a file of its own, so that a test knows when a reload
/// is done: both servers log `Reloaded server configuration` once it is in force (natsring
/// after every shard took it).
struct Reloadable {
    name: &'static str,
    server: ChildServer,
    log: PathBuf,
}

impl Reloadable {
    fn config(log: &Path, body: &str) -> String {
        format!("log_file: \"{}\"\n{body}", log.display())
    }

    /// nats-server and natsring (two shards), each on `body` and its own log file.
    fn both(body: &str) -> [Reloadable; 2] {
        let reference_log = temp_path("reload-reference").with_extension("log");
        let natsring_log = temp_path("reload-natsring").with_extension("log");
        [
            Reloadable {
                name: "nats-server",
                server: start_reference_with_config(&Reloadable::config(&reference_log, body)),
                log: reference_log,
            },
            Reloadable {
                name: "natsring",
                server: natsring_on(&Reloadable::config(&natsring_log, body)),
                log: natsring_log,
            },
        ]
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    fn reloads_logged(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Reloaded server configuration")
            .count()
    }

    /// Rewrites the configuration file with `body`, sends SIGHUP, and waits until the reload
    /// is logged as done.
    fn reload(&self, body: &str) {
        let done = self.reloads_logged();
        let path = self.server.config_path().expect("started on a file");
        std::fs::write(path, Reloadable::config(&self.log, body)).unwrap();
        self.server.signal(libc::SIGHUP);
        let deadline = Instant::now() + WAIT;
        while self.reloads_logged() == done {
            assert!(
                Instant::now() < deadline,
                "{}: the reload was not done; the log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends each step on its connection; a step ending in PING waits for its PONG (or the close).
fn run_steps(
    conns: &mut [Raw],
    outputs: &mut [Vec<u8>],
    closed: &mut [bool],
    steps: &[(usize, &[u8])],
) {
    for &(index, bytes) in steps {
        if closed[index] {
            continue;
        }
        if std::io::Write::write_all(&mut conns[index].stream, bytes).is_err() {
            closed[index] = true;
            continue;
        }
        if bytes.ends_with(b"PING\r\n") {
            let (got, was_closed) = conns[index].read_until_or_close(b"PONG\r\n", WAIT);
            outputs[index].extend_from_slice(&got);
            closed[index] = was_closed;
        }
    }
}

/// On `connections` raw connections to `server`: `before`, a reload to `after_body`, then
/// `after`; every connection still open is settled (a PING of its own, answered or closed).
/// Returns each connection's output (INFO normalized, server PINGs dropped, runs of `-ERR`
/// lines sorted) and whether the server closed it.
fn exchange_across_reload(
    server: &Reloadable,
    connections: usize,
    before: &[(usize, &[u8])],
    after_body: &str,
    after: &[(usize, &[u8])],
) -> Vec<(String, bool)> {
    let mut conns: Vec<Raw> = (0..connections)
        .map(|_| Raw::connect(server.port()))
        .collect();
    let mut outputs: Vec<Vec<u8>> = conns
        .iter_mut()
        .map(|raw| raw.read_until(b"\r\n", WAIT))
        .collect();
    let mut closed = vec![false; connections];
    run_steps(&mut conns, &mut outputs, &mut closed, before);
    server.reload(after_body);
    run_steps(&mut conns, &mut outputs, &mut closed, after);
    conns
        .iter_mut()
        .zip(outputs)
        .zip(closed)
        .map(|((raw, mut out), was_closed)| {
            let closed = was_closed || {
                let (rest, closed) = raw.settle(WAIT);
                out.extend_from_slice(&rest);
                closed
            };
            let text =
                String::from_utf8_lossy(&normalize_info(without_server_pings(out).as_bytes()))
                    .into_owned();
            (errors_sorted(&text), closed)
        })
        .collect()
}

/// `text` with each run of consecutive `-ERR` lines sorted: nats-server reports the
/// subscriptions a reload removed in the order of a Go map walk.
fn errors_sorted(text: &str) -> String {
    let mut out = String::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with("-ERR ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        out.extend(run.drain(..));
        out.push_str(line);
    }
    run.sort_unstable();
    out.extend(run.drain(..));
    out
}

/// Runs the exchange across the reload on nats-server and natsring: natsring must give each
/// connection what nats-server gave it. Returns nats-server's outputs.
fn reload_agrees(
    before_body: &str,
    connections: usize,
    before: &[(usize, &[u8])],
    after_body: &str,
    after: &[(usize, &[u8])],
) -> Vec<(String, bool)> {
    let [reference, natsring] = Reloadable::both(before_body);
    let expected = exchange_across_reload(&reference, connections, before, after_body, after);
    let got = exchange_across_reload(&natsring, connections, before, after_body, after);
    assert_eq!(
        got, expected,
        "natsring (left) and nats-server (right) across the reload"
    );
    expected
}

const ALICE_AND_BOB: &str =
    "authorization { users = [ { user: alice, password: a }, { user: bob, password: b } ] }\n";
const BOB_ONLY: &str = "authorization { users = [ { user: bob, password: b } ] }\n";

/// async-nats: a reload that removes alice disconnects alice's client, and she cannot connect
/// again; bob's client, on the same server, stays on its first connection and keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_removing_a_user_disconnects_her_async_nats_client() {
    for server in Reloadable::both(ALICE_AND_BOB) {
        let name = server.name;
        let (alice, mut alice_events) =
            with_events(server.port(), as_user_named("alice", "a")()).await;
        let bob = as_user_named("bob", "b")()
            .connect(url(server.port()))
            .await
            .unwrap();
        round_trip(&alice, &bob, "before.reload").await;

        let server = tokio::task::spawn_blocking(move || {
            server.reload(BOB_ONLY);
            server
        })
        .await
        .unwrap();
        let mut seen = Vec::new();
        loop {
            let event = timeout(WAIT, alice_events.recv())
                .await
                .unwrap_or_else(|_| panic!("{name}: alice not disconnected; events {seen:?}"))
                .expect("alice's client runs");
            let disconnected = matches!(event, Event::Disconnected);
            seen.push(event.to_string());
            if disconnected {
                break;
            }
        }
        // Only an authorization violation may come before the disconnect.
        assert!(
            seen[..seen.len() - 1].iter().all(|event| *event
                == Event::ServerError(ServerError::AuthorizationViolation).to_string()),
            "{name}: alice's events {seen:?}"
        );
        let again = as_user_named("alice", "a")()
            .connect(url(server.port()))
            .await;
        assert_eq!(
            again.map(|_| ()).map_err(|err| err.kind()),
            Err(ConnectErrorKind::AuthorizationViolation),
            "{name}: alice connects again"
        );
        let other = async_nats::ConnectOptions::with_user_and_password("bob".into(), "b".into())
            .connect(url(server.port()))
            .await
            .unwrap();
        round_trip(&bob, &other, "after.reload").await;
        assert_eq!(
            bob.statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{name}: bob stayed on his first connection"
        );
    }
}

/// Connects with `options`, its events (but `Connected`, which every connection starts with)
/// sent to the returned receiver.
async fn with_events(
    port: u16,
    options: ConnectOptions,
) -> (Client, mpsc::UnboundedReceiver<Event>) {
    let (events, receiver) = mpsc::unbounded_channel();
    let client = options
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                if !matches!(event, Event::Connected) {
                    let _ = events.send(event);
                }
            }
        })
        .connect(url(port))
        .await
        .unwrap();
    (client, receiver)
}

/// The user/password options of `user`.
fn as_user_named(user: &'static str, password: &'static str) -> impl Fn() -> ConnectOptions {
    move || ConnectOptions::with_user_and_password(user.into(), password.into())
}

/// async-nats: a reload that narrows bob's publish permission to `y` applies to his open
/// connection: his next publish to `x` gets `Permissions Violation for Publish to "x"` and is
/// not delivered, while the connection stays up and his publish to `y` is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_tightening_a_publish_permission_applies_to_the_open_async_nats_client() {
    let before = "authorization { users = [ { user: bob, password: b }, { user: watcher, password: w } ] }\n";
    let after = "authorization { users = [ { user: bob, password: b, permissions: { publish: \"y\" } }, { user: watcher, password: w } ] }\n";
    for server in Reloadable::both(before) {
        let name = server.name;
        let (bob, mut bob_events) = with_events(server.port(), as_user_named("bob", "b")()).await;
        let watcher = as_user_named("watcher", "w")()
            .connect(url(server.port()))
            .await
            .unwrap();
        let mut x = watcher.subscribe("x").await.unwrap();
        let mut y = watcher.subscribe("y").await.unwrap();
        sync(&watcher).await;
        bob.publish("x", "allowed".into()).await.unwrap();
        sync(&bob).await;
        let msg = timeout(WAIT, x.next()).await.expect("x before").unwrap();
        assert_eq!(&msg.payload[..], b"allowed", "{name}");

        let server = tokio::task::spawn_blocking(move || {
            server.reload(after);
            server
        })
        .await
        .unwrap();
        // No `sync` for bob from here: its request would be denied too.
        bob.publish("x", "denied".into()).await.unwrap();
        bob.publish("y", "still allowed".into()).await.unwrap();
        bob.flush().await.unwrap();
        let event = timeout(WAIT, bob_events.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: no error for the denied publish"))
            .unwrap();
        assert_eq!(
            event.to_string(),
            Event::ServerError(ServerError::Other(
                "Permissions Violation for Publish to \"x\"".into()
            ))
            .to_string(),
            "{name}"
        );
        let msg = timeout(WAIT, y.next()).await.expect("y after").unwrap();
        assert_eq!(&msg.payload[..], b"still allowed", "{name}");
        // The watcher's connection read anything on x before that message on y.
        assert!(x.next().now_or_never().is_none(), "{name}: x was delivered");
        assert_eq!(
            bob.statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{name}: bob stayed on his first connection"
        );
        assert!(bob_events.try_recv().is_err(), "{name}: one event only");
        drop(server);
    }
}

/// The same on raw connections, byte for byte with nats-server: the error, on the same
/// connection, which stays open, and the delivery to the watcher.
#[test]
fn reload_tightening_a_publish_permission_as_nats_server() {
    tightening_agrees("", b"PUB x 1\r\n1\r\n");
}

/// The same with bob restricted before too, and x published three times first: a subject it
/// was allowed, remembered on the publish path (`PublishMemo`), is checked again after the
/// reload.
#[test]
fn reload_tightening_a_remembered_publish_permission_as_nats_server() {
    tightening_agrees(
        ", permissions: { publish: [x, y] }",
        b"PUB x 1\r\n1\r\nPUB x 1\r\n1\r\nPUB x 1\r\n1\r\n",
    );
}

/// bob (with `permissions_before`) publishes `first` to x, a watcher subscribed to x and y;
/// a reload allows bob only y; bob's next publish to x gets the violation, as from
/// nats-server, and the one to y goes through.
fn tightening_agrees(permissions_before: &str, first: &[u8]) {
    let before = format!("authorization {{ users = [ {{ user: bob, password: b{permissions_before} }}, {{ user: watcher, password: w }} ] }}\n");
    let after = "authorization { users = [ { user: bob, password: b, permissions: { publish: \"y\" } }, { user: watcher, password: w } ] }\n";
    let bob = [
        &b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"b\"}\r\n"[..],
        first,
        b"PING\r\n",
    ]
    .concat();
    let expected = reload_agrees(
        &before,
        2,
        &[
            (1, b"CONNECT {\"verbose\":false,\"user\":\"watcher\",\"pass\":\"w\"}\r\nSUB x 1\r\nSUB y 2\r\nPING\r\n"),
            (0, &bob),
        ],
        after,
        &[
            (0, b"PUB x 1\r\n2\r\nPUB y 1\r\n3\r\nPING\r\n"),
            (1, b"PING\r\n"),
        ],
    );
    assert!(
        expected[0]
            .0
            .ends_with("PONG\r\n-ERR 'Permissions Violation for Publish to \"x\"'\r\nPONG\r\n")
            && !expected[0].1,
        "nats-server's behaviour: {expected:?}"
    );
}

/// A reload that removes alice: nats-server closes her connection without a word (she no
/// longer has an account: `clientHasMovedToDifferentAccount`, closed as `ClientClosed`), and
/// bob's connection carries on.
#[test]
fn reload_removing_a_user_closes_her_connection_as_nats_server() {
    let expected = reload_agrees(
        ALICE_AND_BOB,
        2,
        &[
            (0, b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"a\"}\r\nSUB foo 1\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"b\"}\r\nSUB foo 1\r\nPING\r\n"),
        ],
        BOB_ONLY,
        &[(1, b"PUB foo 2\r\nhi\r\nPING\r\n")],
    );
    assert_eq!(
        expected,
        [
            ("INFO <auth_required=true,headers=true,max_payload=1048576,proto=1>\r\nPONG\r\n".to_string(), true),
            ("INFO <auth_required=true,headers=true,max_payload=1048576,proto=1>\r\nPONG\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n".to_string(), false),
        ],
        "nats-server's behaviour"
    );
}

/// A reload that changes alice's password: her connection proved the old one, so nats-server
/// ends it with an authorization violation.
#[test]
fn reload_changing_a_password_ends_the_connection_as_nats_server() {
    let expected = reload_agrees(
        ALICE_AND_BOB,
        2,
        &[
            (0, b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"a\"}\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"b\"}\r\nPING\r\n"),
        ],
        "authorization { users = [ { user: alice, password: changed }, { user: bob, password: b } ] }\n",
        &[],
    );
    assert!(
        expected[0]
            .0
            .ends_with("-ERR 'Authorization Violation'\r\n")
            && expected[0].1,
        "nats-server's behaviour: {expected:?}"
    );
    assert!(!expected[1].1, "bob stays: {expected:?}");
}

/// A reload that narrows bob's subscribe permission: nats-server removes his subscriptions it
/// no longer allows, telling him of each (`Permissions Violation for Subscription to "x"
/// (sid "1")`), and stops delivering on them.
#[test]
fn reload_tightening_a_subscribe_permission_as_nats_server() {
    let expected = reload_agrees(
        "authorization { users = [ { user: bob, password: b }, { user: pub, password: p } ] }\n",
        2,
        &[
            (0, b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"b\"}\r\nSUB x 1\r\nSUB y 2\r\nSUB x q 3\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false,\"user\":\"pub\",\"pass\":\"p\"}\r\nPING\r\n"),
        ],
        "authorization { users = [ { user: bob, password: b, permissions: { subscribe: \"y\" } }, { user: pub, password: p } ] }\n",
        &[
            (1, b"PUB x 1\r\n1\r\nPUB y 1\r\n2\r\nPING\r\n"),
            (0, b"PING\r\n"),
        ],
    );
    assert_eq!(
        expected[0],
        (
            "INFO <auth_required=true,headers=true,max_payload=1048576,proto=1>\r\nPONG\r\n\
             -ERR 'Permissions Violation for Subscription to \"x\" (sid \"1\")'\r\n\
             -ERR 'Permissions Violation for Subscription to \"x\" using queue \"q\" (sid \"3\")'\r\n\
             MSG y 2 1\r\n2\r\nPONG\r\n"
                .to_string(),
            false
        ),
        "nats-server's behaviour"
    );
}

/// A reload that moves carol from the global account into account A: nats-server closes her
/// connection (`clientHasMovedToDifferentAccount`) so that she reconnects into A.
#[test]
fn reload_moving_a_user_to_another_account_as_nats_server() {
    let expected = reload_agrees(
        "authorization { users = [ { user: carol, password: c } ] }\naccounts { A { users = [ { user: dave, password: d } ] } }\n",
        1,
        &[(0, b"CONNECT {\"verbose\":false,\"user\":\"carol\",\"pass\":\"c\"}\r\nSUB m 1\r\nPING\r\n")],
        "accounts { A { users = [ { user: carol, password: c }, { user: dave, password: d } ] } }\n",
        &[],
    );
    assert_eq!(
        expected,
        [(
            "INFO <auth_required=true,headers=true,max_payload=1048576,proto=1>\r\nPONG\r\n"
                .to_string(),
            true
        )],
        "nats-server's behaviour"
    );
}

/// A raw connection to `port` that presented `jwt` with the INFO's nonce signed by `key`
/// (nothing read after the CONNECT yet); on natsring placed on `shard`, on nats-server
/// (`shard` None) wherever it is.
fn jwt_connection(port: u16, shard: Option<usize>, jwt: &str, key: &KeyPair) -> Raw {
    for _ in 0..200 {
        let mut raw = Raw::connect(port);
        let info = raw.read_until(b"\r\n", WAIT);
        let info: serde_json::Value =
            serde_json::from_slice(info[5..].trim_ascii()).expect("INFO json");
        let client_id = info["client_id"].as_u64().expect("a client_id");
        if shard.is_some_and(|shard| shard_of_client_id(client_id, SHARDS) != shard) {
            continue;
        }
        let nonce = info["nonce"].as_str().expect("a nonce in operator mode");
        let connect = serde_json::json!({
            "verbose": false, "pedantic": false, "protocol": 1, "headers": true,
            "jwt": jwt, "sig": issue::sign_nonce(key, nonce.as_bytes()),
        });
        raw.send(format!("CONNECT {connect}\r\n").as_bytes());
        return raw;
    }
    panic!("no connection landed on shard {shard:?} in 200 tries");
}

/// What a connection gets for its CONNECT: the first PING's answer (a `-ERR` and the close
/// when refused) and then, up to a second PING's PONG, the INFO nats-server sends after its
/// first PONG to a client of protocol 1 (`connect_info`, the account, the connection's own
/// `max_payload`). INFO normalized to the fields both servers must agree on.
fn greeting(raw: &mut Raw) -> (String, bool) {
    let (mut out, closed) = raw.settle(WAIT);
    let closed = closed || {
        let (info, closed) = raw.settle(WAIT);
        out.extend_from_slice(&info);
        closed
    };
    (
        String::from_utf8_lossy(&normalize_info(without_server_pings(out).as_bytes())).into_owned(),
        closed,
    )
}

/// The greeting of an accepted connection: the connect INFO with `max_payload`.
fn accepted(account: &KeyPair, max_payload: usize) -> (String, bool) {
    (
        format!(
            "INFO <auth_required=true,connect_info=true,headers=true,max_payload={max_payload},proto=1,remote_account=\"{}\">\r\n",
            account.public_key()
        ),
        false,
    )
}

/// Sends `input` (ending in PING) and reads what answers it, up to its PONG or the close;
/// server PINGs dropped.
fn answer(raw: &mut Raw, input: &[u8]) -> (String, bool) {
    raw.send(input);
    let (out, closed) = raw.settle_after(input, WAIT);
    (without_server_pings(out), closed)
}

/// natsring's shard for the `index`-th connection of a test (alternating), None on nats-server.
fn placement(server_name: &str, index: usize) -> Option<usize> {
    (server_name == "natsring").then_some(index % SHARDS)
}

/// An account JWT with `conn: 1`: a second connection gets nats-server's
/// `-ERR 'maximum account active connections exceeded'` and is closed, on natsring also when
/// the two are on different shards; once the first has gone, a new one is let in. async-nats
/// reports the refusal with the same words from both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_connection_limit_as_nats_server() {
    let mut operator = Operator::new();
    let account = operator.account("ONE", |claims| claims.nats.limits.conn = 1);
    let (jwt, key) = user_of(&account, |_| {});
    let creds_text = creds::format(&jwt, &key.seed().unwrap());
    let mut outcomes = Vec::new();
    for (name, server) in both_servers(&operator.config()) {
        let mut first = jwt_connection(server.port, placement(name, 0), &jwt, &key);
        let first_answer = greeting(&mut first);
        let mut second = jwt_connection(server.port, placement(name, 1), &jwt, &key);
        let second_answer = greeting(&mut second);
        let refused = ConnectOptions::with_credentials(&creds_text)
            .unwrap()
            .connect(url(server.port))
            .await
            .map(|_| ())
            .map_err(|err| format!("{:?}: {err}", err.kind()));
        outcomes.push((name, first_answer, second_answer, refused));
        // The first still works; once it has gone, a new connection gets its place.
        assert_eq!(
            answer(&mut first, b"SUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n"),
            ("MSG a 1 2\r\nhi\r\nPONG\r\n".to_string(), false),
            "{name}"
        );
        drop(first);
        let deadline = Instant::now() + WAIT;
        loop {
            let mut next = jwt_connection(server.port, placement(name, 1), &jwt, &key);
            let got = greeting(&mut next);
            if !got.1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no place after the first left: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, first, second, refused) = &outcomes[0];
    assert_eq!(first, &accepted(&account, 1024 * 1024), "nats-server");
    assert_eq!(
        second,
        &(
            "-ERR 'maximum account active connections exceeded'\r\n".to_string(),
            true
        ),
        "nats-server"
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|err| err.contains("maximum account active connections exceeded")),
        "nats-server: {refused:?}"
    );
    assert_eq!(outcomes[1].1, outcomes[0].1, "natsring's first connection");
    assert_eq!(outcomes[1].2, outcomes[0].2, "natsring's second connection");
    assert_eq!(outcomes[1].3, outcomes[0].3, "async-nats on natsring");
}

/// A user JWT with `subs: 1`: the second SUB gets `-ERR 'maximum subscriptions exceeded'`,
/// the connection stays and its first subscription works; after an UNSUB there is room again.
/// An account's `subs` limit binds each connection of the account the same way (two
/// connections, on natsring on different shards, get one subscription each), as in
/// nats-server.
#[test]
fn subscription_limits_as_nats_server() {
    let mut operator = Operator::new();
    let open = operator.account("OPEN", |_| {});
    let limited = operator.account("LIMITED", |claims| claims.nats.limits.subs = 1);
    let (user_jwt, user_key) = user_of(&open, |claims| claims.nats.limits.subs = 1);
    let (member_jwt, member_key) = user_of(&limited, |_| {});
    let input: &[u8] = b"SUB a 1\r\nSUB b 2\r\nPUB a 2\r\nhi\r\nPUB b 2\r\nhi\r\nUNSUB 1\r\nSUB b 3\r\nPUB b 2\r\nhi\r\nPING\r\n";
    let mut outcomes = Vec::new();
    for (name, server) in both_servers(&operator.config()) {
        let mut user = jwt_connection(server.port, placement(name, 0), &user_jwt, &user_key);
        let mut member = jwt_connection(server.port, placement(name, 0), &member_jwt, &member_key);
        let mut other = jwt_connection(server.port, placement(name, 1), &member_jwt, &member_key);
        let greetings = [
            greeting(&mut user),
            greeting(&mut member),
            greeting(&mut other),
        ];
        assert_eq!(
            greetings,
            [
                accepted(&open, 1024 * 1024),
                accepted(&limited, 1024 * 1024),
                accepted(&limited, 1024 * 1024),
            ],
            "{name}"
        );
        outcomes.push((
            name,
            answer(&mut user, input),
            answer(&mut member, input),
            answer(&mut other, input),
        ));
    }
    let expected = (
        "-ERR 'maximum subscriptions exceeded'\r\nMSG a 1 2\r\nhi\r\nMSG b 3 2\r\nhi\r\nPONG\r\n"
            .to_string(),
        false,
    );
    let (_, user, member, other) = &outcomes[0];
    assert_eq!(user, &expected, "nats-server, user limit");
    assert_eq!(member, &expected, "nats-server, account limit");
    assert_eq!(
        other, &expected,
        "nats-server, account limit, second connection"
    );
    assert_eq!(outcomes[1].1, outcomes[0].1, "natsring, user limit");
    assert_eq!(outcomes[1].2, outcomes[0].2, "natsring, account limit");
    assert_eq!(
        outcomes[1].3, outcomes[0].3,
        "natsring, account limit, second connection on the other shard"
    );
}

/// One connection's run against a payload limit: the server, the case, what the connection was
/// greeted with, the answer to a message at the limit, and to one a byte over it.
struct PayloadRun {
    server: &'static str,
    case: &'static str,
    limit: usize,
    account: String,
    greeting: (String, bool),
    at_limit: (String, bool),
    over: (String, bool),
}

/// Users with `payload` limits from their JWT, their account's JWT, or both (the smaller
/// binds), each connected to nats-server and to natsring (on alternating shards): a message at
/// the limit, then one a byte over it. nats-server's runs first.
fn payload_runs() -> Vec<PayloadRun> {
    let mut operator = Operator::new();
    let open = operator.account("OPEN", |_| {});
    let small = operator.account("SMALL", |claims| claims.nats.limits.payload = 8);
    let users = [
        (
            "user limit 16",
            user_of(&open, |claims| claims.nats.limits.payload = 16),
            16,
            &open,
        ),
        ("account limit 8", user_of(&small, |_| {}), 8, &small),
        (
            "account 8, user 16",
            user_of(&small, |claims| claims.nats.limits.payload = 16),
            8,
            &small,
        ),
        (
            "account 8, user 4",
            user_of(&small, |claims| claims.nats.limits.payload = 4),
            4,
            &small,
        ),
    ];
    let mut runs = Vec::new();
    for (server_name, server) in both_servers(&operator.config()) {
        for (index, (case, (jwt, key), limit, account)) in users.iter().enumerate() {
            let mut raw = jwt_connection(server.port, placement(server_name, index), jwt, key);
            let greeting = greeting(&mut raw);
            let at_limit = format!(
                "SUB p 1\r\nPUB p {limit}\r\n{}\r\nPING\r\n",
                "x".repeat(*limit)
            );
            let over = format!(
                "PUB p {}\r\n{}\r\nPING\r\n",
                limit + 1,
                "x".repeat(limit + 1)
            );
            runs.push(PayloadRun {
                server: server_name,
                case,
                limit: *limit,
                account: account.public_key(),
                greeting,
                at_limit: answer(&mut raw, at_limit.as_bytes()),
                over: answer(&mut raw, over.as_bytes()),
            });
        }
    }
    runs
}

/// `payload` limits from the user JWT and from the account JWT: the smaller of the two binds;
/// a message at the limit is delivered, one byte more is `-ERR 'Maximum Payload Violation'`
/// and a close, as in nats-server.
#[test]
fn payload_limits_as_nats_server() {
    let runs = payload_runs();
    let (reference, natsring) = runs.split_at(runs.len() / 2);
    for (theirs, ours) in reference.iter().zip(natsring) {
        let (case, limit) = (theirs.case, theirs.limit);
        assert_eq!((theirs.server, ours.server), ("nats-server", "natsring"));
        assert_eq!(
            theirs.at_limit,
            (
                format!("MSG p 1 {limit}\r\n{}\r\nPONG\r\n", "x".repeat(limit)),
                false
            ),
            "nats-server, {case}"
        );
        assert_eq!(
            theirs.over,
            ("-ERR 'Maximum Payload Violation'\r\n".to_string(), true),
            "nats-server, {case}"
        );
        assert_eq!(
            ours.at_limit, theirs.at_limit,
            "natsring, {case}, at the limit"
        );
        assert_eq!(ours.over, theirs.over, "natsring, {case}, over the limit");
    }
}

/// The INFO nats-server sends after the first PONG advertises the connection's own payload
/// limit as `max_payload` (`generateClientInfoJSON` puts the client's `mpay` there), so a
/// client refuses a too large message itself instead of being disconnected for it.
#[test]
fn payload_limit_is_advertised_after_connect_as_nats_server() {
    let runs = payload_runs();
    let (reference, natsring) = runs.split_at(runs.len() / 2);
    for (theirs, ours) in reference.iter().zip(natsring) {
        let expected = (
            format!(
                "INFO <auth_required=true,connect_info=true,headers=true,max_payload={},proto=1,remote_account=\"{}\">\r\n",
                theirs.limit, theirs.account
            ),
            false,
        );
        assert_eq!(theirs.greeting, expected, "nats-server, {}", theirs.case);
        assert_eq!(ours.greeting, theirs.greeting, "natsring, {}", ours.case);
    }
}
