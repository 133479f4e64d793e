//! Subject mappings end to end: a server-level `mappings` block and an account's, a subscriber
//! on `>` and a publisher on the sources, over raw sockets. The expectations are what
//! nats-server 2.15.1 delivered; `src/mapping/tests.rs` pins the same subjects for
//! `MappingTable`. The scenario bodies take only a port, so the same checks run against
//! natsring: the `natsring_*` tests run the same checks.

mod common;

use std::time::Duration;

use common::Raw;

const TIMEOUT: Duration = Duration::from_secs(10);

const SERVER_MAPPINGS: &str = r#"
mappings {
  "f.*": "f1.{{splitFromLeft(1,3)}}.{{splitFromRight(1,3)}}.{{sliceFromLeft(1,3)}}.{{sliceFromRight(1,3)}}"
  "g.*": "g1.{{left(1,2)}}.{{right(1,2)}}.{{split(1,-)}}.{{partition(7,1)}}.{{Wildcard(1)}}.$1"
  "h.*.*": "h1.{{partition(10)}}.{{partition(10,2)}}.{{partition(10,1,2)}}.$0.$2"
  "r.*": "r1.{{random(3)}}"
  "t.>": "t1.>"
  "u.*.>": "u1.$1.>"
  "w.*": [{dest: "a.$1", weight: 30%}, {dest: "b.$1", weight: 50%}]
  "loss": [{dest: "loss", weight: 40%}, {dest: "other", weight: 10%}]
  "cl.*": [{dest: "c1.$1", weight: 100%, cluster: c1}]
  "cl2.*": [{dest: "c2.$1", weight: 100%, cluster: c1}, {dest: "main.$1", weight: 50%}]
}
authorization { users: [{user: g, password: g}] }
no_auth_user: g
accounts {
  A: { users: [{user: a, password: a}], mappings: { "in.*": "acc.$1" } }
}
"#;

/// Connects (as `user`, whose password is its name, when given) and waits for the PONG.
fn client(port: u16, user: Option<&str>) -> Raw {
    let mut raw = Raw::connect(port);
    raw.read_until(b"\r\n", TIMEOUT);
    let connect = match user {
        Some(user) => format!(
            "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\nPING\r\n"
        ),
        None => "CONNECT {\"verbose\":false}\r\nPING\r\n".to_owned(),
    };
    raw.send(connect.as_bytes());
    raw.read_until(b"PONG\r\n", TIMEOUT);
    raw
}

/// Publishes each subject `repeat` times with a one-byte payload and returns the subjects a
/// subscriber on `>` in the same account received, in order.
fn delivered(port: u16, user: Option<&str>, subjects: &[&str], repeat: usize) -> Vec<String> {
    let mut subscriber = client(port, user);
    subscriber.send(b"SUB > 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", TIMEOUT);
    let mut publisher = client(port, user);
    let mut batch = Vec::new();
    for subject in subjects {
        for _ in 0..repeat {
            batch.extend_from_slice(format!("PUB {subject} 1\r\nx\r\n").as_bytes());
        }
    }
    batch.extend_from_slice(b"PING\r\n");
    publisher.send(&batch);
    let reply = publisher.read_until(b"PONG\r\n", TIMEOUT);
    assert!(!reply.windows(4).any(|w| w == b"-ERR"), "{reply:?}");
    // Everything published before the publisher's PONG reaches the subscriber before the
    // PONG to a PING it sends afterwards.
    subscriber.send(b"PING\r\n");
    let received = subscriber.read_until(b"PONG\r\n", TIMEOUT);
    let text = String::from_utf8(received).expect("ascii");
    let mut subjects = Vec::new();
    let mut lines = text.split("\r\n");
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("MSG ") {
            subjects.push(rest.split(' ').next().expect("subject").to_owned());
            assert_eq!(lines.next(), Some("x"), "payload");
        }
    }
    subjects
}

fn count(subjects: &[String], subject: &str) -> usize {
    subjects.iter().filter(|s| *s == subject).count()
}

/// Every function, in the server-level block.
fn functions_scenario(port: u16) {
    let subjects = delivered(
        port,
        None,
        &[
            "f.1234567890",
            "f.ab",
            "g.abc-def--x",
            "h.foo.bar",
            "h.a.b",
            "t.a.b.c",
            "u.a.b.c",
            "nomatch",
            "cl.x",
        ],
        1,
    );
    assert_eq!(
        subjects,
        [
            "f1.123.4567890.1234567.890.123.456.789.0.1.234.567.890",
            "f1.ab.ab.ab.ab",
            "g1.ab.-x.abc.def.x.5.abc-def--x.abc-def--x",
            "h1.8.2.0.h.bar",
            "h1.4.7.6.h.b",
            "t1.a.b.c",
            "u1.a.b.c",
            "nomatch",
            // A destination scoped to a cluster this server is not in does not apply.
            "cl.x",
        ]
    );
    let randoms = delivered(port, None, &["r.x"], 300);
    assert_eq!(randoms.len(), 300);
    for digit in ["r1.0", "r1.1", "r1.2"] {
        assert!(count(&randoms, digit) > 50, "{digit}: {randoms:?}");
    }
}

/// Weighted destinations: the remainder keeps the subject, or is dropped when the source is
/// listed itself. Proportions within 5 points over 2000 publishes each.
fn weights_scenario(port: u16) {
    let draws = 2000;
    let near = |subjects: &[String], subject: &str, percent: usize| {
        let got = count(subjects, subject);
        let expected = draws * percent / 100;
        assert!(
            got.abs_diff(expected) <= draws * 5 / 100,
            "{subject}: {got} of {draws}, expected about {percent}%"
        );
    };
    let subjects = delivered(port, None, &["w.x"], draws);
    near(&subjects, "a.x", 30);
    near(&subjects, "b.x", 50);
    near(&subjects, "w.x", 20);
    let subjects = delivered(port, None, &["loss"], draws);
    near(&subjects, "loss", 40);
    near(&subjects, "other", 10);
    assert!(
        subjects.iter().all(|s| s == "loss" || s == "other"),
        "dropped, not delivered"
    );
    let subjects = delivered(port, None, &["cl2.x"], draws);
    near(&subjects, "main.x", 50);
    near(&subjects, "cl2.x", 50);
}

/// An account's mappings apply to its own clients only.
fn account_scenario(port: u16) {
    assert_eq!(
        delivered(port, Some("a"), &["in.x", "f.ab"], 1),
        ["acc.x", "f.ab"]
    );
}

#[test]
fn reference_functions() {
    let server = common::start_reference_with_config(SERVER_MAPPINGS);
    functions_scenario(server.port);
}

#[test]
fn reference_weights() {
    let server = common::start_reference_with_config(SERVER_MAPPINGS);
    weights_scenario(server.port);
}

#[test]
fn reference_account() {
    let server = common::start_reference_with_config(SERVER_MAPPINGS);
    account_scenario(server.port);
}

#[test]
fn natsring_functions() {
    let server = common::start_natsring_with_config(SERVER_MAPPINGS, &[]);
    functions_scenario(server.port);
}

#[test]
fn natsring_weights() {
    let server = common::start_natsring_with_config(SERVER_MAPPINGS, &[]);
    weights_scenario(server.port);
}

#[test]
fn natsring_account() {
    let server = common::start_natsring_with_config(SERVER_MAPPINGS, &[]);
    account_scenario(server.port);
}
