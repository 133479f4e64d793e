//! The system connection (the system service's in-process client of the system account on
//! shard 0) and the connect/disconnect events the shards send the system service, tested by
//! doing the service's job by hand: a Unix socket pair, one end attached
//! (`Shared::attach_system`), `SUB`/`PUB` written into the other and `MSG` frames read from
//! it; the events as an operator's tool sees them, through a subscriber of the system
//! account (the system services publish them from the shards' notices). Each test runs on one
//! shard and on two.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Raw;
use natsring::account::AccountConfig;
use natsring::auth::User;
use natsring::{shard_of_client_id, Options};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// The service's end of the pair.
struct ServiceEnd {
    stream: UnixStream,
}

impl ServiceEnd {
    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("the system connection reads");
    }

    /// Reads until `needle` arrived; panics on a timeout or an end of file.
    fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let (out, closed) = self.read_until_or_close(needle, TIMEOUT);
        assert!(
            !closed,
            "closed while waiting for {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&out)
        );
        out
    }

    fn read_until_or_close(&mut self, needle: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        while needle.is_empty() || !out.windows(needle.len()).any(|w| w == needle) {
            if Instant::now() >= deadline {
                return (out, false);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        (out, false)
    }

    /// PING, then what arrived before its PONG.
    fn settle(&mut self) -> Vec<u8> {
        self.send(b"PING\r\n");
        let mut out = self.read_until(b"PONG\r\n");
        out.truncate(out.len() - b"PONG\r\n".len());
        out
    }

    /// Whether the shard closed it within `timeout`.
    fn closed_within(&mut self, timeout: Duration) -> bool {
        self.read_until_or_close(b"never", timeout).1
    }
}

/// Accounts `SYS` (the system account; user `sys`) and `A` (users `a`, the bcrypt user
/// `crypt`, and `guest`, the no_auth_user), on `shards` shards.
fn system_options(shards: usize) -> Options {
    let user = |name: &str, password: &str, account: &str| User {
        username: name.into(),
        password: password.into(),
        account: Some(account.into()),
        ..User::default()
    };
    let hash = bcrypt::hash("crypt-pw", 4).expect("a bcrypt hash");
    let mut options = common::options();
    options.shards = shards;
    options.auth.users = Some(vec![
        user("sys", "sys", "SYS"),
        user("a", "a", "A"),
        user("crypt", &hash, "A"),
        user("guest", "guest", "A"),
    ]);
    options.auth.no_auth_user = Some("guest".into());
    options.accounts = ["SYS", "A"]
        .iter()
        .map(|name| AccountConfig {
            name: name.to_string(),
            ..AccountConfig::default()
        })
        .collect();
    options.system_account = Some("SYS".into());
    options
}

/// Attaches the system connection and waits until it answers.
fn attach(server: &common::TestServer) -> ServiceEnd {
    let (shard_end, service_end) = UnixStream::pair().unwrap();
    assert!(server.handle().shared().attach_system(shard_end));
    let mut service = ServiceEnd {
        stream: service_end,
    };
    assert!(service.settle().is_empty(), "no INFO, no +OK");
    service
}

/// The `client_id` of the INFO at the start of `info`.
fn client_id(info: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(info);
    let at = text.find("\"client_id\":").expect("a client_id") + "\"client_id\":".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// A client that sent `connect` (a CONNECT line, or nothing), and its cid.
fn client(server: &common::TestServer, connect: &str) -> (Raw, u64) {
    let mut raw = Raw::connect(server.port);
    let info = raw.read_until(b"\r\n", TIMEOUT);
    raw.send(connect.as_bytes());
    (raw, client_id(&info))
}

/// A client of the system account, on `shard` (connecting again until the kernel puts one
/// there), and its cid.
fn sys_client_on(server: &common::TestServer, shard: usize) -> (Raw, u64) {
    let shards = server.handle().shard_count();
    for _ in 0..200 {
        let (mut raw, cid) = client(
            server,
            "CONNECT {\"verbose\":false,\"headers\":true,\"user\":\"sys\",\"pass\":\"sys\"}\r\n",
        );
        if shard_of_client_id(cid, shards) == shard {
            let (out, closed) = raw.settle(TIMEOUT);
            assert!(!closed, "{}", String::from_utf8_lossy(&out));
            return (raw, cid);
        }
    }
    panic!("no connection landed on shard {shard}");
}

fn each_shard_count(test: impl Fn(usize)) {
    for shards in [1, 2] {
        test(shards);
    }
}

#[test]
fn the_system_connection_answers_requests_from_any_shard() {
    each_shard_count(|shards| {
        let server = common::start_with(system_options(shards));
        let mut service = attach(&server);
        service.send(b"SUB $SYS.REQ.SERVER.PING 1\r\nPING\r\n");
        service.read_until(b"PONG\r\n");
        // The requester on the last shard: with two, the request and the reply cross shards.
        let (mut requester, _) = sys_client_on(&server, shards - 1);
        requester.send(b"SUB _INBOX.r1 9\r\nPUB $SYS.REQ.SERVER.PING _INBOX.r1 0\r\n\r\n");
        let request = service.read_until(b"\r\n\r\n");
        assert_eq!(
            String::from_utf8_lossy(&request),
            "MSG $SYS.REQ.SERVER.PING 1 _INBOX.r1 0\r\n\r\n"
        );
        service.send(b"PUB _INBOX.r1 2\r\nok\r\n");
        let reply = requester.read_until(b"ok\r\n", TIMEOUT);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "MSG _INBOX.r1 9 2\r\nok\r\n"
        );

        // A header'd request arrives as HMSG (the connection said headers).
        requester.send(b"HPUB $SYS.REQ.SERVER.PING _INBOX.r1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        let request = service.read_until(b"hi\r\n");
        assert_eq!(
            String::from_utf8_lossy(&request),
            "HMSG $SYS.REQ.SERVER.PING 1 _INBOX.r1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        );

        // Accounts isolate: a client of A publishing to the subject does not reach it.
        for _ in 0..shards * 4 {
            let (mut other, _) = client(
                &server,
                "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\n",
            );
            other.send(b"PUB $SYS.REQ.SERVER.PING _INBOX.a 1\r\nx\r\n");
            let (out, closed) = other.settle(TIMEOUT);
            assert!(
                !closed && out.is_empty(),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        assert!(service.settle().is_empty(), "nothing from another account");
    });
}

#[test]
fn the_system_connection_is_no_client_for_counting() {
    each_shard_count(|shards| {
        let mut options = system_options(shards);
        options.max_connections = 1;
        options.max_subscriptions = 1;
        let server = common::start_with(options);
        let shared = server.handle().shared();
        let mut service = attach(&server);
        // No subscription limit for it.
        service.send(b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
        assert!(service.settle().is_empty(), "no -ERR");

        assert!(server.handle().connections().is_empty());
        let open: u64 = shared.shard_stats_now().iter().map(|s| s.connections).sum();
        assert_eq!(open, 0);
        let total: u64 = shared
            .shard_stats_now()
            .iter()
            .map(|s| s.total_connections)
            .sum();
        assert_eq!(total, 0);
        let sys = |traffic: Vec<natsring::stats::AccountTraffic>| {
            traffic.into_iter().find(|t| t.account == "SYS").unwrap()
        };
        let traffic = sys(server.handle().account_traffic());
        assert_eq!((traffic.connections, traffic.total_connections), (0, 0));

        // max_connections 1 still admits one client, of the system account too.
        let (mut first, cid) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"sys\",\"pass\":\"sys\"}\r\n",
        );
        let (out, closed) = first.settle(TIMEOUT);
        assert!(!closed, "{}", String::from_utf8_lossy(&out));
        let mut second = Raw::connect(server.port);
        let refused = second.read_until_closed(TIMEOUT);
        assert!(
            String::from_utf8_lossy(&refused).contains("maximum connections exceeded"),
            "{}",
            String::from_utf8_lossy(&refused)
        );
        let listed: Vec<u64> = server
            .handle()
            .connections()
            .iter()
            .map(|c| c.cid)
            .collect();
        assert_eq!(listed, [cid]);

        // The service going away closes it, and it is not recorded as a closed client.
        drop(service);
        drop(first);
        let deadline = Instant::now() + TIMEOUT;
        let closed_cids = loop {
            let closed: Vec<u64> = shared.closed_connections().iter().map(|c| c.cid).collect();
            if closed.len() >= 2 || Instant::now() >= deadline {
                break closed;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(QUIET);
        let again: Vec<u64> = shared.closed_connections().iter().map(|c| c.cid).collect();
        assert_eq!(again, closed_cids, "nothing more closed");
        assert_eq!(closed_cids.len(), 2, "the two clients: {closed_cids:?}");
        assert!(closed_cids.contains(&cid));
        let traffic = sys(server.handle().account_traffic());
        assert_eq!(traffic.total_connections, 1, "the client of SYS alone");
    });
}

#[test]
fn lame_duck_leaves_the_system_connection_until_the_server_stops() {
    each_shard_count(|shards| {
        let mut options = system_options(shards);
        options.lame_duck_grace_period = Duration::from_millis(10);
        options.lame_duck_duration = Duration::from_millis(200);
        let server = common::start_with(options);
        let mut service = attach(&server);
        let (mut raw, _) = client(&server, "CONNECT {\"verbose\":false}\r\n");
        raw.settle(TIMEOUT);
        let lame_duck = server.handle().enter_lame_duck();
        raw.read_until_closed(TIMEOUT);
        let deadline = Instant::now() + TIMEOUT;
        while !lame_duck.is_finished() {
            assert!(Instant::now() < deadline, "lame duck mode finishes");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(service.settle().is_empty(), "still served");
        drop(lame_duck);
        drop(server);
        assert!(
            service.closed_within(TIMEOUT),
            "closed when the server stops"
        );
    });
}

#[test]
fn no_system_account_no_system_connection() {
    let mut options = system_options(1);
    options.system_account = None;
    options.no_system_account = true;
    let server = common::start_with(options);
    let (shard_end, _service_end) = UnixStream::pair().unwrap();
    assert!(!server.handle().shared().attach_system(shard_end));
}

/// The next event, within the timeout.
/// A client of the system account subscribed to every account's connect and disconnect
/// events, as an operator's tool is: what the system services publish for the shards' notices.
struct Events {
    raw: Raw,
    buffer: Vec<u8>,
}

impl Events {
    fn subscribe(server: &common::TestServer) -> Events {
        let (mut raw, _) = client(
            server,
            "CONNECT {\"verbose\":false,\"user\":\"sys\",\"pass\":\"sys\",\"name\":\"watcher\"}\r\n\
             SUB $SYS.ACCOUNT.*.CONNECT 1\r\nSUB $SYS.ACCOUNT.*.DISCONNECT 2\r\n",
        );
        let (out, closed) = raw.settle(TIMEOUT);
        assert!(!closed, "{}", String::from_utf8_lossy(&out));
        // What came before the PONG may be its own connect already (the services can publish
        // it before the PING arrives): kept for `next`.
        let mut events = Events { raw, buffer: out };
        // Its own connect is announced too, a moment later (the services publish what the
        // shards tell them, on a thread of their own).
        let own = connected(events.next());
        assert_eq!(own["name"], "watcher");
        events
    }

    /// The next event: its subject and its JSON; `None` when none came within `wait`.
    fn next_within(&mut self, wait: Duration) -> Option<(String, serde_json::Value)> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(event) = self.take_frame() {
                return Some(event);
            }
            deadline.checked_duration_since(Instant::now())?;
            let mut chunk = [0u8; 4096];
            self.raw
                .stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            match self.raw.stream.read(&mut chunk) {
                Ok(0) => panic!("the watcher was closed"),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn next(&mut self) -> (String, serde_json::Value) {
        self.next_within(TIMEOUT).expect("an event")
    }

    /// A whole `MSG` frame from the buffer (server PINGs are answered and dropped).
    fn take_frame(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            let line_end = self.buffer.windows(2).position(|w| w == b"\r\n")?;
            let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            if line == "PING" {
                self.raw.send(b"PONG\r\n");
                self.buffer.drain(..line_end + 2);
                continue;
            }
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words[0], "MSG", "{line}");
            let size: usize = words.last().unwrap().parse().unwrap();
            let start = line_end + 2;
            if self.buffer.len() < start + size + 2 {
                return None;
            }
            let payload: serde_json::Value =
                serde_json::from_slice(&self.buffer[start..start + size]).expect("JSON");
            self.buffer.drain(..start + size + 2);
            return Some((words[1].to_string(), payload));
        }
    }
}

/// The client of a CONNECT event on `subject`.
fn connected((subject, event): (String, serde_json::Value)) -> serde_json::Value {
    assert!(subject.ends_with(".CONNECT"), "{subject}");
    assert_eq!(event["type"], "io.nats.server.advisory.v1.client_connect");
    event["client"].clone()
}

/// A DISCONNECT event on `subject`: the event.
fn disconnected((subject, event): (String, serde_json::Value)) -> serde_json::Value {
    assert!(subject.ends_with(".DISCONNECT"), "{subject}");
    assert_eq!(
        event["type"],
        "io.nats.server.advisory.v1.client_disconnect"
    );
    event
}

#[test]
fn clients_are_announced_when_they_connect_and_close() {
    each_shard_count(|shards| {
        let server = common::start_with(system_options(shards));
        assert!(
            server
                .handle()
                .shared()
                .set_system_events(mpsc::channel().0)
                .is_err(),
            "the system services listen from the start, and only they"
        );
        let mut events = Events::subscribe(&server);

        // A plain password.
        let (mut plain, cid) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"sys\",\"pass\":\"sys\",\"name\":\"one\"}\r\n",
        );
        let info = connected(events.next());
        assert_eq!(
            (
                info["id"].as_u64(),
                &info["acc"],
                &info["user"],
                &info["name"]
            ),
            (Some(cid), &json!("SYS"), &json!("sys"), &json!("one"))
        );
        assert!(info.get("stop").is_none());
        plain.send(b"PUB x 2\r\nhi\r\n");
        plain.settle(TIMEOUT);

        // bcrypt, checked off the shard (the verifier).
        let (mut crypt, crypt_cid) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"crypt\",\"pass\":\"crypt-pw\",\"name\":\"two\"}\r\n",
        );
        let info = connected(events.next());
        assert_eq!(
            (
                info["id"].as_u64(),
                &info["acc"],
                &info["user"],
                &info["name"]
            ),
            (Some(crypt_cid), &json!("A"), &json!("crypt"), &json!("two"))
        );
        crypt.settle(TIMEOUT);

        // no_auth_user: by a CONNECT without credentials, and by a first operation that is
        // not a CONNECT.
        let (mut guest, guest_cid) = client(&server, "CONNECT {\"verbose\":false}\r\n");
        let info = connected(events.next());
        assert_eq!(
            (info["id"].as_u64(), &info["acc"]),
            (Some(guest_cid), &json!("A"))
        );
        guest.settle(TIMEOUT);
        let (mut silent, silent_cid) = client(&server, "PING\r\n");
        silent.read_until(b"PONG\r\n", TIMEOUT);
        let info = connected(events.next());
        assert_eq!(
            (info["id"].as_u64(), &info["acc"]),
            (Some(silent_cid), &json!("A"))
        );

        // A refused one is not announced, nor its close.
        let (mut refused, _) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"wrong\"}\r\n",
        );
        refused.read_until_closed(TIMEOUT);

        // Closes, with the reason and the final counters.
        drop(plain);
        let event = disconnected(events.next());
        assert_eq!(
            (event["client"]["id"].as_u64(), &event["client"]["acc"]),
            (Some(cid), &json!("SYS"))
        );
        assert_eq!(event["reason"], "Client Closed");
        assert!(event["client"]["stop"].is_string());
        assert_eq!(event["received"], json!({"msgs": 1, "bytes": 2}));
        crypt.send(b"FOO\r\n");
        crypt.read_until_closed(TIMEOUT);
        let event = disconnected(events.next());
        assert_eq!(
            (event["client"]["id"].as_u64(), &event["reason"]),
            (Some(crypt_cid), &json!("Protocol Violation"))
        );
        drop(guest);
        drop(silent);
        let mut gone: Vec<u64> = (0..2)
            .map(|_| {
                disconnected(events.next())["client"]["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        gone.sort_unstable();
        assert_eq!(gone, [guest_cid.min(silent_cid), guest_cid.max(silent_cid)]);

        // The system connections (the services' and one attached by hand) are never
        // announced, even as they close.
        let service = attach(&server);
        drop(service);
        assert!(events.next_within(QUIET).is_none(), "nothing else");
    });
}

/// The system services are bound by no protocol limit, as nats-server's internal clients:
/// with a `max_control_line` shorter than some of their subscriptions
/// (`SUB $SYS.REQ.SERVER.<id>.STATSZ 3`, made before the one for `PING.VARZ`: a connection
/// closed for it would not answer) and a `max_payload` smaller than their answers, they still
/// answer.
#[test]
fn the_system_services_are_bound_by_no_protocol_limit() {
    each_shard_count(|shards| {
        let mut options = system_options(shards);
        options.max_control_line = 80;
        options.max_payload = 64;
        let server = common::start_with(options);
        let (mut requester, _) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"sys\",\"pass\":\"sys\"}\r\n",
        );
        requester.send(b"SUB _INBOX.v 1\r\nPUB $SYS.REQ.SERVER.PING.VARZ _INBOX.v 0\r\n\r\n");
        let answer = requester.read_until(b"\"max_payload\":64", TIMEOUT);
        let text = String::from_utf8_lossy(&answer);
        let size: usize = text
            .split("MSG _INBOX.v 1 ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|size| size.parse().ok())
            .expect("a MSG with the answer");
        assert!(size > 64, "an answer larger than max_payload: {size} bytes");
    });
}
