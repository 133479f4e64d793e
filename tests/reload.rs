//! A configuration reload (`ServerHandle::reload`, what SIGHUP will call): every shard takes
//! the new settings before it returns; limits apply to connections already open, as
//! nats-server applies them; options that cannot change while running are refused with
//! nats-server's wording, and nothing changes then.

mod common;

use std::time::Duration;

use common::{options, start_with, Raw};

const WAIT: Duration = Duration::from_secs(10);

/// The `max_payload` a new connection's INFO announces.
fn announced_max_payload(port: u16) -> u64 {
    let mut raw = Raw::connect(port);
    let info = raw.read_until(b"\r\n", WAIT);
    let json: serde_json::Value = serde_json::from_slice(info[5..].trim_ascii()).unwrap();
    json["max_payload"].as_u64().expect("max_payload in INFO")
}

fn pub_of(len: usize) -> Vec<u8> {
    let mut op = format!("PUB foo {len}\r\n").into_bytes();
    op.extend(std::iter::repeat_n(b'x', len));
    op.extend_from_slice(b"\r\n");
    op
}

#[test]
fn a_reload_lowers_max_payload_for_open_and_new_connections() {
    let server = start_with(options());
    let mut open = Raw::connect_quiet(server.port);
    open.send(&pub_of(2000));
    open.send(b"PING\r\n");
    open.read_until(b"PONG\r\n", WAIT);

    let mut lower = options();
    lower.max_payload = 1024;
    server.handle().reload(lower).expect("reloadable");

    // Every shard took it before reload returned: new connections, wherever they land.
    for _ in 0..8 {
        assert_eq!(announced_max_payload(server.port), 1024);
    }
    // And the connection opened before: 2000 bytes are over the limit now.
    open.send(&pub_of(2000));
    let (bytes, closed) = open.read_until_or_close(b"Violation'\r\n", WAIT);
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        "-ERR 'Maximum Payload Violation'\r\n"
    );
    assert!(closed || open.read_until_quiet(Duration::from_secs(2)).1);
    // Up to the new limit is fine.
    let mut fresh = Raw::connect_quiet(server.port);
    fresh.send(&pub_of(1024));
    fresh.send(b"PING\r\n");
    let (bytes, _) = fresh.read_until_or_close(b"PONG\r\n", WAIT);
    assert!(
        bytes.ends_with(b"PONG\r\n"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn a_reload_of_an_option_that_cannot_change_is_refused_and_changes_nothing() {
    let server = start_with(options());
    let mut changed = options();
    changed.host = "localhost".into();
    changed.max_payload = 1024;
    let err = server
        .handle()
        .reload(changed)
        .expect_err("host cannot change");
    assert_eq!(
        err.to_string(),
        "config reload not supported for Host: old=127.0.0.1, new=localhost"
    );
    assert_eq!(announced_max_payload(server.port), 1024 * 1024);

    let mut changed = options();
    changed.port = server.port.wrapping_add(1).max(1);
    let err = server
        .handle()
        .reload(changed)
        .expect_err("port cannot change");
    assert!(
        err.to_string()
            .starts_with("config reload not supported for Port: old="),
        "{err}"
    );
    // Port 0 is "not set", as in nats-server: no change, so this reload goes through.
    let mut same = options();
    same.max_payload = 4096;
    server.handle().reload(same).expect("port 0 is no change");
    assert_eq!(announced_max_payload(server.port), 4096);
}

#[test]
fn a_reload_lowers_max_pending_for_subscribers_already_open() {
    let server = start_with(options());
    let mut subscriber = Raw::connect_quiet(server.port);
    subscriber.send(b"SUB foo 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    let mut lower = options();
    lower.max_pending = 64 * 1024;
    server.handle().reload(lower).expect("reloadable");
    // The subscriber stops reading; 16 MiB for it fill the sockets' buffers and leave far
    // more than 64 KiB pending: a slow consumer now (with 64 MiB it would not be).
    let mut publisher = Raw::connect_quiet(server.port);
    let burst: Vec<u8> = (0..256).flat_map(|_| pub_of(64 * 1024)).collect();
    publisher.send(&burst);
    let deadline = std::time::Instant::now() + WAIT;
    while server.handle().stats().slow_consumers == 0 {
        assert!(std::time::Instant::now() < deadline, "no slow consumer");
        std::thread::sleep(Duration::from_millis(50));
    }
}
