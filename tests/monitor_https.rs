//! HTTPS monitoring (`https_port`, issue 17) against nats-server 2.15.1: both servers are
//! started on the same configuration (`tls {}` with `verify: true`, `https_port: -1`,
//! certificates generated per test by tests/common/certs.rs) and asked over HTTPS by a rustls
//! client that trusts the test CA and has no certificate of its own.
//!
//! What nats-server 2.15.1 does, recorded here and asserted below:
//! - monitoring over TLS with the client `tls {}` certificate, without asking for a client
//!   certificate even under `verify` (Go's monitoring sets `ClientAuth` to `NoClientCert`);
//! - the ports file's monitoring URL is `https://...`; `/varz` says `"https_port": -1` (the
//!   option, not the bound port) and `"http_port": 0`;
//! - a plain HTTP request on the HTTPS port is answered `HTTP/1.0 400 Bad Request` with
//!   "Client sent an HTTP request to an HTTPS server." and closed; other bytes that are not a
//!   TLS record are closed without an answer;
//! - `-t` accepts `https_port` with `http_port`, and `https_port` without `tls {}`; starting
//!   refuses both (`Can't start monitoring: can't specify both HTTP (..) and HTTPs (..)
//!   ports`, `Can't start monitoring: TLS cert and key required for HTTPS`), exit status 1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use common::certs::Pki;
use common::shapes::{assert_no_differences, shape_differences, Allowances};
use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer,
};

/// How long one read or connect may take (a bound, not a schedule).
const WAIT: Duration = Duration::from_secs(10);

/// Go's answer to a plain HTTP request on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// `/varz` keys one side may have and the other not, as in tests/monitor_nats_server.rs.
const ALLOWED_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "/varz",
        ".git_commit",
        "the commit nats-server was built from; natsring's build embeds none (omitempty)",
    ),
    (
        "/varz",
        ".feature_flags",
        "JetStream's feature flags: natsring has no JetStream",
    ),
    (
        "/varz",
        ".disk_io_wait_stats",
        "JetStream's file store disk semaphore: natsring has no JetStream",
    ),
];

const ALLOWANCES: Allowances = Allowances {
    differences: ALLOWED_DIFFERENCES,
    empty: &[],
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Implementation {
    NatsServer,
    Natsring,
}

const BOTH: [Implementation; 2] = [Implementation::NatsServer, Implementation::Natsring];

/// The `tls {}` block both servers get (`verify: true`: clients need a certificate, HTTPS
/// monitoring does not).
fn tls_block(pki: &Pki) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
        pki.server.cert_file.display(),
        pki.server.key_file.display(),
        pki.ca_file.display(),
    )
}

fn start(implementation: Implementation, config: &str) -> ChildServer {
    match implementation {
        Implementation::NatsServer => start_reference_with_config(config),
        Implementation::Natsring => start_natsring_with_config(config, &["--shards", "1"]),
    }
}

/// The port of the ports file's monitoring URL, which must be `https://127.0.0.1:<port>`.
fn https_port(server: &ChildServer, implementation: Implementation) -> u16 {
    let url = server
        .monitoring_url
        .as_deref()
        .unwrap_or_else(|| panic!("{implementation:?}: no monitoring URL in the ports file"));
    let port = url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("{implementation:?}: monitoring URL {url}"));
    port.parse().expect("a port")
}

/// A rustls client trusting the test CA, without a certificate of its own.
fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.expect("the CA's PEM")).expect("the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls's versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS answer.
#[derive(Debug)]
struct Answer {
    status_line: String,
    content_type: Option<String>,
    body: String,
}

/// `GET path` over HTTPS as HTTP/1.0, so that both servers answer without chunks and close.
fn get(config: &Arc<rustls::ClientConfig>, port: u16, path: &str) -> Answer {
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .expect("the TLS handshake and the request");
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A close without close_notify once the answer is in is an end too.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(err) => panic!("reading {path}: {err}"),
    }
    let text = String::from_utf8(bytes).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default().to_string();
    let content_type = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_string())
    });
    Answer {
        status_line,
        content_type,
        body: body.to_string(),
    }
}

/// What a plain TCP client gets after sending `bytes`: everything until the server closes.
fn plain_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server closes the connection");
    answer
}

#[test]
fn https_monitoring_matches_nats_server() {
    assert_nats_server_available();
    let pki = Pki::generate();
    let config = format!(
        "# tests/monitor_https.rs: the same text for both servers.\nhttps_port: -1\n{}",
        tls_block(&pki)
    );
    let client = client_config(&pki);
    let mut varz = Vec::new();
    for implementation in BOTH {
        let server = start(implementation, &config);
        let port = https_port(&server, implementation);

        let answer = get(&client, port, "/varz");
        assert_eq!(answer.status_line, "HTTP/1.0 200 OK", "{implementation:?}");
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/json"),
            "{implementation:?}"
        );
        let value: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(value["https_port"], -1, "{implementation:?}");
        assert_eq!(value["http_port"], 0, "{implementation:?}");
        assert_eq!(value["tls_verify"], true, "{implementation:?}");
        varz.push(value);

        let health = get(&client, port, "/healthz");
        assert_eq!(health.status_line, "HTTP/1.0 200 OK", "{implementation:?}");
        assert_eq!(health.body, r#"{"status":"ok"}"#, "{implementation:?}");

        // Plain HTTP on the HTTPS port: Go's 400 text, then the close; other bytes: the close.
        assert_eq!(
            String::from_utf8_lossy(&plain_exchange(
                port,
                b"GET /varz HTTP/1.1\r\nHost: x\r\n\r\n"
            )),
            String::from_utf8_lossy(PLAIN_HTTP_ANSWER),
            "{implementation:?}"
        );
        assert_eq!(
            plain_exchange(port, b"hello there\r\n\r\n"),
            b"",
            "{implementation:?}"
        );
        // Still serving after them.
        assert_eq!(get(&client, port, "/healthz").body, r#"{"status":"ok"}"#);
    }
    let (reference, ours) = (&varz[0], &varz[1]);
    assert_no_differences(
        "/varz over HTTPS",
        &shape_differences(&ALLOWANCES, "/varz", ours, reference),
    );
}

/// The last line a process wrote on stderr, without its log prefix (`[pid] date [FTL] `).
fn fatal_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().last().unwrap_or_default();
    line.split_once("[FTL] ")
        .map_or(line, |(_, message)| message)
        .to_string()
}

fn program(implementation: Implementation) -> &'static str {
    match implementation {
        Implementation::NatsServer => "nats-server",
        Implementation::Natsring => env!("CARGO_BIN_EXE_natsring"),
    }
}

#[test]
fn refusals_at_start_match_nats_server() {
    assert_nats_server_available();
    let pki = Pki::generate();
    let cases = [
        (
            format!("http_port: 18222\nhttps_port: 18443\n{}", tls_block(&pki)),
            "Can't start monitoring: can't specify both HTTP (18222) and HTTPs (18443) ports",
        ),
        (
            "https_port: -1\n".to_string(),
            "Can't start monitoring: TLS cert and key required for HTTPS",
        ),
    ];
    for (text, expected) in cases {
        let path = common::temp_path("monitor-https.conf");
        std::fs::write(&path, &text).unwrap();
        for implementation in BOTH {
            // `-t` accepts the file: these are refused when the server starts.
            let check = Command::new(program(implementation))
                .arg("-t")
                .arg("-c")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{implementation:?} -t {text}: {}",
                String::from_utf8_lossy(&check.stderr)
            );
            let run = Command::new(program(implementation))
                .args(["-a", "127.0.0.1", "-p", "-1", "-c"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(run.status.code(), Some(1), "{implementation:?} {text}");
            assert_eq!(
                fatal_line(&run.stderr),
                expected,
                "{implementation:?} {text}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}
