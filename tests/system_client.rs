//! The system connection (the system service's in-process client of the system account on
//! shard 0) and the connect/disconnect events the shards send the system service, tested by
//! doing the service's job by hand: a Unix socket pair, one end attached
//! (`Shared::attach_system`), `SUB`/`PUB` written into the other and `MSG` frames read from
//! it; the events read from a channel set with `Shared::set_system_events`. Each test runs on
//! one shard and on two.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::Raw;
use natsring::account::AccountConfig;
use natsring::auth::User;
use natsring::stats::{ConnInfo, SystemEvent};
use natsring::{shard_of_client_id, Options};

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
fn next_event(events: &Receiver<SystemEvent>) -> SystemEvent {
    events.recv_timeout(TIMEOUT).expect("an event")
}

fn connected(event: SystemEvent) -> ConnInfo {
    match event {
        SystemEvent::Connect(info) => info,
        other => panic!("a Connect, not {other:?}"),
    }
}

fn disconnected(event: SystemEvent) -> ConnInfo {
    match event {
        SystemEvent::Disconnect(info) => info,
        other => panic!("a Disconnect, not {other:?}"),
    }
}

#[test]
fn clients_are_announced_when_they_connect_and_close() {
    each_shard_count(|shards| {
        let server = common::start_with(system_options(shards));
        let (sender, events) = mpsc::channel();
        assert!(server
            .handle()
            .shared()
            .set_system_events(sender.clone())
            .is_ok());
        assert!(
            server.handle().shared().set_system_events(sender).is_err(),
            "once"
        );
        let mut service = attach(&server);
        service.send(b"SUB x 1\r\n");
        service.settle();

        // A plain password.
        let (mut plain, cid) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"sys\",\"pass\":\"sys\",\"name\":\"one\"}\r\n",
        );
        let info = connected(next_event(&events));
        assert_eq!(
            (
                info.cid,
                info.account.as_str(),
                info.authorized_user.as_str()
            ),
            (cid, "SYS", "sys")
        );
        assert_eq!(info.name, "one");
        assert!(info.stop.is_none() && info.reason.is_none() && info.subs.is_empty());
        plain.send(b"PUB x 2\r\nhi\r\n");
        plain.settle(TIMEOUT);

        // bcrypt, checked off the shard (the verifier).
        let (mut crypt, crypt_cid) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"crypt\",\"pass\":\"crypt-pw\",\"name\":\"two\"}\r\n",
        );
        let info = connected(next_event(&events));
        assert_eq!(
            (
                info.cid,
                info.account.as_str(),
                info.authorized_user.as_str()
            ),
            (crypt_cid, "A", "crypt")
        );
        assert_eq!(info.name, "two");
        crypt.settle(TIMEOUT);

        // no_auth_user: by a CONNECT without credentials, and by a first operation that is
        // not a CONNECT.
        let (mut guest, guest_cid) = client(&server, "CONNECT {\"verbose\":false}\r\n");
        let info = connected(next_event(&events));
        assert_eq!((info.cid, info.account.as_str()), (guest_cid, "A"));
        guest.settle(TIMEOUT);
        let (mut silent, silent_cid) = client(&server, "PING\r\n");
        silent.read_until(b"PONG\r\n", TIMEOUT);
        let info = connected(next_event(&events));
        assert_eq!((info.cid, info.account.as_str()), (silent_cid, "A"));

        // A refused one is not announced, nor its close.
        let (mut refused, _) = client(
            &server,
            "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"wrong\"}\r\n",
        );
        refused.read_until_closed(TIMEOUT);

        // Closes, with the reason and the final counters.
        drop(plain);
        let info = disconnected(next_event(&events));
        assert_eq!((info.cid, info.account.as_str()), (cid, "SYS"));
        assert_eq!(info.reason, Some("Client Closed"));
        assert!(info.stop.is_some());
        assert_eq!((info.in_msgs, info.in_bytes), (1, 2));
        crypt.send(b"FOO\r\n");
        crypt.read_until_closed(TIMEOUT);
        let info = disconnected(next_event(&events));
        assert_eq!(
            (info.cid, info.reason),
            (crypt_cid, Some("Protocol Violation"))
        );
        drop(guest);
        drop(silent);
        let mut gone: Vec<u64> = (0..2)
            .map(|_| disconnected(next_event(&events)).cid)
            .collect();
        gone.sort_unstable();
        assert_eq!(gone, [guest_cid.min(silent_cid), guest_cid.max(silent_cid)]);

        // The system connection is never announced, even as it closes.
        drop(service);
        assert!(events.recv_timeout(QUIET).is_err(), "nothing else");
    });
}
