//! The configuration file as operators use it, through the real binaries: `-t` against
//! nats-server 2.15.1 on the corpus (`tests/conf/corpus/`), limits set by a file compared byte
//! for byte with nats-server on the same file, flags over the file, SIGHUP reloads (also under
//! full publish load: no connection and no message lost), `--signal`, and lame duck mode with
//! the official clients moving to another server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

fn natsring() -> &'static str {
    env!("CARGO_BIN_EXE_natsring")
}

/// Runs `program -t -c file`: whether it accepted the file, and what it printed on stderr.
fn check(program: &str, file: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(["-t", "-c"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `-t` message without the program's name, its lines sorted (nats-server reports a file's
/// errors in the order of a Go map walk), blank lines dropped.
fn message_lines(stderr: &str, program_name: &str) -> Vec<String> {
    let mut lines: Vec<String> = stderr
        .lines()
        .map(|line| {
            line.strip_prefix(&format!("{program_name}: "))
                .unwrap_or(line)
                .to_string()
        })
        .filter(|line| !line.is_empty())
        .collect();
    lines.sort();
    lines
}

/// Corpus files whose error nats-server words differently from natsring, and why. Their
/// accept/reject decision must still agree.
const WORDING_DIFFERS: &[(&str, &str)] = &[];

#[test]
fn dash_t_agrees_with_nats_server_on_the_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conf/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("the corpus directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (reference_accepts, reference_says) = check("nats-server", file);
        let (accepts, says) = check(natsring(), file);
        let expected_by_name = name.starts_with("accept-");
        if reference_accepts != expected_by_name {
            failures.push(format!(
                "{name}: named for {}, but nats-server {}: {reference_says}",
                if expected_by_name { "accept" } else { "reject" },
                if reference_accepts {
                    "accepts it"
                } else {
                    "rejects it"
                }
            ));
            continue;
        }
        if accepts != reference_accepts {
            failures.push(format!(
                "{name}: nats-server {} it, natsring {}:\n  nats-server: {reference_says}  natsring:    {says}",
                if reference_accepts { "accepts" } else { "rejects" },
                if accepts { "accepts" } else { "rejects" },
            ));
            continue;
        }
        let ours = message_lines(&says, "natsring");
        let theirs = message_lines(&reference_says, "nats-server");
        if WORDING_DIFFERS.iter().any(|(differs, _)| *differs == name) {
            continue;
        }
        if ours != theirs {
            failures.push(format!(
                "{name}: both {}, in other words:\n  nats-server: {theirs:?}\n  natsring:    {ours:?}",
                if accepts { "accept" } else { "reject" }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Writes `text` to a fresh `.conf` file.
fn conf_file(text: &str) -> PathBuf {
    let path = temp_path("check").with_extension("conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dash_t_prints_what_nats_server_prints() {
    for text in [
        "port: 4333\nmax_payload: 2MB\nping_interval: \"30s\"\n",
        "port: 4333\nfoo: 1\n",
        "port: 4333\nfoo: {\n",
        "max_payload: 3000000000\nmax_sub_tokens: 0\n",
        "ping_interval: 60\n",
        "",
    ] {
        let file = conf_file(text);
        let (reference_accepts, reference_says) = check("nats-server", &file);
        let (accepts, says) = check(natsring(), &file);
        assert_eq!(accepts, reference_accepts, "{text:?}");
        assert_eq!(
            message_lines(&says, "natsring"),
            message_lines(&reference_says, "nats-server"),
            "{text:?}"
        );
        std::fs::remove_file(&file).unwrap();
    }
    // Without -c, both refuse -t the same way.
    let ours = Command::new(natsring()).arg("-t").output().unwrap();
    assert!(!ours.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr).trim_end(),
        "natsring: must specify [-c, --config] option to check configuration file syntax"
    );
}

/// `-t` on client TLS blocks: a certificate and key made here by rcgen (never committed), then
/// blocks both servers take, and blocks both refuse with the same words at the same place
/// (nats-server loads the files while it parses, and so does natsring).
#[test]
fn dash_t_on_tls_blocks_prints_what_nats_server_prints() {
    let dir = temp_path("tls-check");
    std::fs::create_dir_all(&dir).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    let (cert, key, other_key, missing) = (
        cert.display().to_string(),
        key.display().to_string(),
        other_key.display().to_string(),
        dir.join("missing.pem").display().to_string(),
    );
    for text in [
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n}}\nallow_non_tls: true\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{cert}\"\n  verify_and_map: true\n  timeout: 0.5\n  handshake_first: auto\n  min_version: \"1.3\"\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{missing}\"\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{other_key}\"\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{missing}\"\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  min_version: \"1.1\"\n}}\n"),
        format!("tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  bogus: 1\n}}\n"),
        "tls: true\nallow_non_tls: 1\n".to_string(),
    ] {
        let file = conf_file(&text);
        let (reference_accepts, reference_says) = check("nats-server", &file);
        let (accepts, says) = check(natsring(), &file);
        assert_eq!(accepts, reference_accepts, "{text}: {says} / {reference_says}");
        assert_eq!(
            message_lines(&says, "natsring"),
            message_lines(&reference_says, "nats-server"),
            "{text}"
        );
        std::fs::remove_file(&file).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `cluster {}` blocks, good and bad: `-t` accepts and refuses them as nats-server does, in its
/// words and at its positions (one error each: nats-server walks a block in random order).
#[test]
fn dash_t_on_cluster_blocks_agrees_with_nats_server() {
    for text in [
        "cluster { name: n, listen: \"127.0.0.1:6222\", advertise: \"x:1\", no_advertise: true, connect_retries: 3, connect_backoff: true, pool_size: 5, accounts: [A, B], compression: s2_best, ping_interval: \"5s\", ping_max: 4, write_deadline: \"3s\", write_timeout: close, routes: [\"nats-route://u:p@h1:6222\", \"nats://h2:6222\"], authorization { user: u, password: p, timeout: 3 }, permissions { import: { allow: \"a.>\" }, export: { deny: [\"b\"] } } }\n",
        "cluster { net: \"127.0.0.1\", port: 6222, cluster_advertise: \"x\", compression: { mode: s2_auto, rtt_thresholds: [\"10ms\", \"20ms\"] } }\n",
        "cluster { port: 6222, foo: 1 }\n",
        "cluster { name: \"a b\", port: 6222 }\n",
        "cluster { port: \"x\" }\n",
        "cluster { listen: \"abc\" }\n",
        "cluster: 5\n",
        "cluster { port: 6222, routes: [\"nats://a:1\", \"nats://a:1\", \"nats://%zz\"] }\n",
        "cluster { port: -1, routes: [\"nats://a:x\", \"127.0.0.1:6222\", \"nats://[::1\", \"nats://h :1\"] }\n",
        "cluster { port: -1, authorization { users: [{user: a, password: b}] } }\n",
        "cluster { port: -1, authorization { token: abc } }\n",
        "cluster { port: -1, authorization { user: a, password: b, timeout: 90 } }\n",
        "cluster { port: -1, authorization { user: a, password: b, permissions: { import: \"foo\" } } }\n",
        "cluster { port: -1, authorization: 5 }\n",
        "cluster { port: -1, compression: 5 }\n",
        "cluster { port: -1, ping_interval: \"10m\" }\n",
        "cluster { port: -1, ping_interval: 30 }\n",
        "cluster { port: -1, permissions: { import: \"a.>\", export: { allow: [\"foo bar\"] } } }\n",
        "cluster { port: -1, permissions: { import: \"a.>\", allow_responses: true } }\n",
        "cluster { port: -1, write_timeout: \"x\" }\n",
        "cluster { port: -1, accounts: 5 }\n",
    ] {
        let file = conf_file(text);
        let (reference_accepts, reference_says) = check("nats-server", &file);
        let (accepts, says) = check(natsring(), &file);
        assert_eq!(accepts, reference_accepts, "{text}: {says} / {reference_says}");
        if !accepts {
            assert_eq!(
                message_lines(&says, "natsring"),
                message_lines(&reference_says, "nats-server"),
                "{text}"
            );
        }
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn features_natsring_does_not_have_yet_are_refused_by_name() {
    for (text, key, feature) in [
        ("jetstream {}\n", "jetstream", "JetStream"),
        ("leafnodes { port: 7422 }\n", "leafnodes", "leaf nodes"),
        (
            "resolver_pinned_accounts: [A]\n",
            "resolver_pinned_accounts",
            "authentication, authorization and accounts",
        ),
        ("websocket { port: 8080 }\n", "websocket", "WebSocket"),
    ] {
        let file = conf_file(text);
        // nats-server takes each of these; natsring says what it lacks, on -t and at start.
        assert!(check("nats-server", &file).0, "{text}");
        let (accepts, says) = check(natsring(), &file);
        assert!(!accepts, "{text}");
        let expected = format!(
            "{}:1:0: field \"{key}\" is not supported by natsring yet ({feature})",
            file.display()
        );
        assert_eq!(says.trim_end(), format!("natsring: {expected}"));
        let start = Command::new(natsring())
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(start.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&start.stderr).trim_end(),
            format!("natsring: {expected}")
        );
        std::fs::remove_file(&file).unwrap();
    }
}

/// Reads what arrives on a fresh raw connection after `input` (INFO normalized, server PINGs
/// dropped), and whether the server closed it.
fn session(port: u16, input: &[u8]) -> (String, bool) {
    let mut raw = Raw::connect(port);
    let mut out = raw.read_until(b"\r\n", WAIT);
    raw.send(input);
    let (rest, closed) = raw.settle_after(input, WAIT);
    out.extend_from_slice(&rest);
    (
        String::from_utf8_lossy(&normalize_info(without_server_pings(out).as_bytes())).into_owned(),
        closed,
    )
}

#[test]
fn limits_from_a_file_behave_as_in_nats_server() {
    let config =
        "max_subscriptions: 2\nmax_sub_tokens: 3\nmax_payload: 1KB\nmax_control_line: 256\n";
    let ours = start_natsring_with_config(config, &[]);
    let reference = start_reference_with_config(config);
    let payload_at_limit = format!(
        "CONNECT {{\"verbose\":false}}\r\nPUB a 1024\r\n{}\r\nPING\r\n",
        "x".repeat(1024)
    );
    let control_line_over = format!(
        "CONNECT {{\"verbose\":false}}\r\nSUB {} 1\r\n",
        "a".repeat(260)
    );
    let cases: [&[u8]; 4] = [
        // The token limit first, then the subscription limit (also for a duplicate sid and a
        // bad subject), as nats-server orders them.
        b"CONNECT {\"verbose\":true}\r\nSUB a.b.c.d 1\r\nSUB x 9\r\nSUB a 1\r\nSUB b 2\r\nSUB a 1\r\nSUB a.b.c.d.e 4\r\nSUB foo..bar 5\r\nUNSUB 9\r\nSUB b 2\r\nPING\r\n",
        // max_payload advertised (INFO) and enforced.
        payload_at_limit.as_bytes(),
        b"CONNECT {\"verbose\":false}\r\nPUB a 1025\r\n",
        // max_control_line.
        control_line_over.as_bytes(),
    ];
    for input in cases {
        assert_eq!(
            session(ours.port, input),
            session(reference.port, input),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn header_support_off_from_a_file_behaves_as_in_nats_server() {
    let config = "no_header_support: true\n";
    let ours = start_natsring_with_config(config, &[]);
    let reference = start_reference_with_config(config);
    for input in [
        &b"CONNECT {\"verbose\":true,\"headers\":true}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n"[..],
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    ] {
        let (ours_out, ours_closed) = session(ours.port, input);
        assert!(ours_out.contains("headers=false"), "{ours_out}");
        assert_eq!(
            (ours_out, ours_closed),
            session(reference.port, input),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn keepalive_from_a_file_behaves_as_in_nats_server() {
    // A client that never answers the server's PING is stale after ping_max of them.
    let config = "ping_interval: \"300ms\"\nping_max: 1\n";
    let ours = start_natsring_with_config(config, &[]);
    let reference = start_reference_with_config(config);
    let mut outcomes = Vec::new();
    for port in [ours.port, reference.port] {
        let mut raw = Raw::connect_quiet(port);
        let out = raw.read_until_closed(WAIT);
        outcomes.push(String::from_utf8_lossy(&out).into_owned());
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0], "PING\r\n-ERR 'Stale Connection'\r\n");
}

#[test]
fn max_connections_from_a_file_behaves_as_in_nats_server() {
    let config = "max_connections: 1\n";
    let ours = start_natsring_with_config(config, &[]);
    let reference = start_reference_with_config(config);
    for port in [ours.port, reference.port] {
        let mut first = Raw::connect_quiet(port);
        first.send(b"PING\r\n");
        first.read_until(b"PONG\r\n", WAIT);
        let mut second = Raw::connect(port);
        let out = second.read_until_closed(WAIT);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.starts_with("INFO {"), "{text}");
        assert!(
            text.ends_with("-ERR 'maximum connections exceeded'\r\n"),
            "port {port}: {text}"
        );
    }
}

/// The INFO a fresh connection gets, as JSON.
fn info(port: u16) -> serde_json::Value {
    let mut raw = Raw::connect(port);
    let line = raw.read_until(b"\r\n", WAIT);
    serde_json::from_slice(line[5..].trim_ascii()).expect("INFO json")
}

#[test]
fn flags_win_over_the_file() {
    let server = start_natsring_with_config(
        "server_name: from-file\nmax_payload: 2KB\nport: 1\nhost: 10.0.0.1\n",
        &["-n", "from-flag"],
    );
    let info = info(server.port);
    assert_eq!(info["server_name"], "from-flag");
    assert_eq!(info["max_payload"], 2048, "the file's, no flag for it");
    // The harness's `-a 127.0.0.1 -p -1` won over the file's host and port.
    assert_eq!(info["host"], "127.0.0.1");
}

#[test]
fn client_advertise_sets_the_info_host_and_port_as_in_nats_server() {
    for config in [
        "client_advertise: \"nats.example.com:5555\"\n",
        "client_advertise: \"nats.example.com\"\n",
    ] {
        let ours = start_natsring_with_config(config, &[]);
        let reference = start_reference_with_config(config);
        let (ours_info, reference_info) = (info(ours.port), info(reference.port));
        assert_eq!(ours_info["host"], reference_info["host"], "{config}");
        // Without a port, the listening port (each its own) is advertised.
        if config.contains("5555") {
            assert_eq!(ours_info["port"], 5555);
            assert_eq!(reference_info["port"], 5555);
        } else {
            assert_eq!(ours_info["port"], ours.port);
            assert_eq!(reference_info["port"], reference.port);
        }
    }
}

/// Waits until the log file holds `needle`; returns the log.
fn wait_for_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged; the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_file_and_refuses_what_cannot_change() {
    let log = temp_path("reload").with_extension("log");
    let server = start_natsring_with_config(
        "max_payload: 64KB\nserver_name: first\n",
        &["-l", log.to_str().unwrap()],
    );
    let config = server.config_path().unwrap().to_path_buf();
    let mut open = Raw::connect_quiet(server.port);
    assert_eq!(info(server.port)["max_payload"], 65536);

    std::fs::write(&config, "max_payload: 1KB\nserver_name: first\n").unwrap();
    server.signal(libc::SIGHUP);
    wait_for_log(&log, "Reloaded: max_payload = 1024");
    wait_for_log(&log, "Reloaded server configuration (sha256:");
    assert_eq!(info(server.port)["max_payload"], 1024);
    // Applied to the connection already open, as nats-server applies it.
    open.send(b"PUB a 2000\r\n");
    let out = open.read_until_closed(WAIT);
    assert!(String::from_utf8_lossy(&out).contains("-ERR 'Maximum Payload Violation'"));

    // A change that cannot happen while running: refused, logged, nothing changes.
    std::fs::write(&config, "max_payload: 2KB\nserver_name: second\n").unwrap();
    server.signal(libc::SIGHUP);
    wait_for_log(
        &log,
        "[ERR] Failed to reload server configuration: config reload not supported for ServerName: old=first, new=second",
    );
    assert_eq!(info(server.port)["max_payload"], 1024);
    // A file with an error: refused, logged with its position, and the server serves on.
    std::fs::write(&config, "max_payload: 2KB\nbogus: 1\n").unwrap();
    server.signal(libc::SIGHUP);
    let text = wait_for_log(&log, "unknown field \"bogus\"");
    assert!(
        text.contains(&format!(
            "[ERR] Failed to reload server configuration: {}:2:1: unknown field \"bogus\"",
            config.display()
        )),
        "{text}"
    );
    assert_eq!(info(server.port)["max_payload"], 1024);
    assert_serves(server.port);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn signal_flag_reaches_the_server_by_pid_and_pid_file() {
    let log = temp_path("signal").with_extension("log");
    let pid_file = temp_path("signal").with_extension("pid");
    let mut server = start_natsring_with_config(
        &format!("pid_file: \"{}\"\n", pid_file.display()),
        &["-l", log.to_str().unwrap()],
    );
    let config = server.config_path().unwrap().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        server.pid().to_string(),
        "the pid file, written as nats-server writes it"
    );
    std::fs::write(
        &config,
        format!("pid_file: \"{}\"\nmax_payload: 4KB\n", pid_file.display()),
    )
    .unwrap();
    let reload = Command::new(natsring())
        .args(["--signal", &format!("reload={}", pid_file.display())])
        .output()
        .unwrap();
    assert!(reload.status.success(), "{reload:?}");
    wait_for_log(&log, "Reloaded: max_payload = 4096");
    let reopen = Command::new(natsring())
        .args(["-sl", &format!("reopen={}", server.pid())])
        .status()
        .unwrap();
    assert!(reopen.success());
    wait_for_log(&log, "File log re-opened");
    let unknown = Command::new(natsring())
        .args(["-sl", &format!("nap={}", server.pid())])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim_end(),
        "natsring: unknown signal \"nap\""
    );
    let quit = Command::new(natsring())
        .args(["-sl", &format!("quit={}", server.pid())])
        .status()
        .unwrap();
    assert!(quit.success());
    let status = server.wait_exit(WAIT).expect("quit stops the server");
    assert!(status.success(), "{status:?}");
    wait_for_log(&log, "Server Exiting..");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&pid_file);
}

#[test]
fn reload_under_full_publish_load_loses_no_connection_and_no_message() {
    let log = temp_path("reload-load").with_extension("log");
    let server = start_natsring_with_config("max_payload: 1MB\n", &["-l", log.to_str().unwrap()]);
    let config = server.config_path().unwrap().to_path_buf();
    let url = format!("nats://127.0.0.1:{}", server.port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let connect = |events: std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
            async_nats::ConnectOptions::new()
                .event_callback(move |event| {
                    let events = events.clone();
                    async move { events.lock().unwrap().push(event.to_string()) }
                })
                .connect(url.clone())
        };
        let subscriber_client = connect(events.clone()).await.unwrap();
        let publisher = connect(events.clone()).await.unwrap();
        let mut subscriber = subscriber_client.subscribe("load").await.unwrap();
        sync(&subscriber_client).await;
        // The subscriber checks every message arrives, in order, until the end marker.
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = received.clone();
        let progress = received.clone();
        let receiving = tokio::spawn(async move {
            let mut expected = 0u64;
            loop {
                let message = tokio::time::timeout(WAIT, subscriber.next())
                    .await
                    .expect("messages keep arriving")
                    .expect("subscription open");
                if message.payload.as_ref() == b"end" {
                    return expected;
                }
                let sequence = u64::from_be_bytes(message.payload[..8].try_into().unwrap());
                assert_eq!(sequence, expected, "every message, in order");
                expected += 1;
                counted.store(expected, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // The publisher publishes as fast as the subscriber takes the messages (at most
        // `IN_FLIGHT` ahead: this client drops what overflows its subscription's channel,
        // which would be the test's loss, not the server's) until the reloads are over.
        const IN_FLIGHT: u64 = 20_000;
        let reloads_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let over = reloads_over.clone();
        let publishing = tokio::spawn(async move {
            let mut sequence = 0u64;
            while !over.load(std::sync::atomic::Ordering::Relaxed) {
                while sequence - received.load(std::sync::atomic::Ordering::Relaxed) > IN_FLIGHT {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                publisher
                    .publish("load", sequence.to_be_bytes().to_vec().into())
                    .await
                    .unwrap();
                sequence += 1;
                if sequence.is_multiple_of(1024) {
                    tokio::task::yield_now().await;
                }
            }
            publisher.publish("load", "end".into()).await.unwrap();
            publisher.flush().await.unwrap();
            (publisher, sequence)
        });
        // Reloads while the messages flow: limits change each time (within what the
        // messages need), and every one is put in force.
        let reloading = tokio::task::spawn_blocking(move || {
            let mut seen = 0;
            for round in 0..10u64 {
                // Each reload while messages flow: some arrived since the last one.
                let deadline = Instant::now() + WAIT;
                while progress.load(std::sync::atomic::Ordering::Relaxed) < seen + 1_000 {
                    assert!(
                        Instant::now() < deadline,
                        "messages flow before reload {round}"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                seen = progress.load(std::sync::atomic::Ordering::Relaxed);
                std::fs::write(
                    &config,
                    format!(
                        "max_payload: {}\nmax_pending: {}MB\nping_interval: \"{}s\"\n",
                        1024 * 1024 - round * 1024,
                        64 + round,
                        30 + round
                    ),
                )
                .unwrap();
                let reload = Command::new(natsring())
                    .args(["--signal", &format!("reload={}", server.pid())])
                    .status()
                    .unwrap();
                assert!(reload.success());
                wait_for_log(&log, &format!("Reloaded: ping_interval = {}s", 30 + round));
            }
            reloads_over.store(true, std::sync::atomic::Ordering::Relaxed);
            (server, log)
        });
        let (server, log) = reloading.await.unwrap();
        let (publisher, published) = publishing.await.unwrap();
        let arrived = match receiving.await {
            Ok(received) => received,
            Err(err) => panic!(
                "{err}; events {:?}; the log:\n{}",
                events.lock().unwrap(),
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        assert_eq!(arrived, published, "every message published arrived");
        assert!(
            published > 10_000,
            "the load ran during the reloads: {published}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches("Reloaded server configuration").count(), 10);
        assert!(!text.contains("Failed to reload"), "{text}");
        assert_eq!(
            publisher.connection_state(),
            async_nats::connection::State::Connected
        );
        assert_eq!(
            *events.lock().unwrap(),
            ["connected", "connected"],
            "each client connected once: no disconnect, no error"
        );
        drop(server);
        let _ = std::fs::remove_file(&log);
    });
}

/// Lame duck mode, as nats-server: SIGUSR2 stops the listener, sends the clients an INFO with
/// `"ldm":true`, closes them after the grace period, then the process exits 0. The client
/// (async-nats) reconnects to the other server with no error surfaced and goes on working.
#[test]
fn lame_duck_moves_an_async_nats_client_to_the_other_server() {
    let log = temp_path("ldm").with_extension("log");
    let mut leaving = start_natsring_with_config(
        "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n",
        &["-l", log.to_str().unwrap()],
    );
    let staying = start();
    let urls = vec![
        format!("nats://127.0.0.1:{}", leaving.port),
        format!("nats://127.0.0.1:{}", staying.port),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let recorded = events.clone();
        let client = async_nats::ConnectOptions::new()
            .retain_servers_order()
            .event_callback(move |event| {
                let recorded = recorded.clone();
                async move { recorded.lock().unwrap().push(event.to_string()) }
            })
            .connect(urls)
            .await
            .unwrap();
        let mut subscription = client.subscribe("ldm.test").await.unwrap();
        sync(&client).await;
        client.publish("ldm.test", "before".into()).await.unwrap();
        assert_eq!(subscription.next().await.unwrap().payload, "before");
        assert_eq!(
            client.server_info().port,
            leaving.port,
            "connected to the server that leaves"
        );

        // Load all along: the client publishes a numbered message every millisecond to its
        // own subscription, through lame duck mode and the move to the other server.
        let published = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let publishing = {
            let (client, published, stop) = (client.clone(), published.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sequence = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    client
                        .publish("ldm.test", sequence.to_be_bytes().to_vec().into())
                        .await
                        .expect("publishing never fails");
                    sequence += 1;
                    published.store(sequence, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let latest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let receiving = {
            let latest = latest.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut next = 0u64;
                while let Ok(Some(message)) = tokio::time::timeout(WAIT, subscription.next()).await
                {
                    let sequence = u64::from_be_bytes(message.payload[..8].try_into().unwrap());
                    assert!(
                        sequence >= next,
                        "in order, no duplicate: {sequence} after {next}"
                    );
                    next = sequence + 1;
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    latest.store(next, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };

        let began = Instant::now();
        leaving.signal(libc::SIGUSR2);
        wait_for_log(&log, "Entering lame duck mode, stop accepting new clients");
        // New clients are refused at once: the listener is closed.
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", leaving.port)).is_ok() {
            assert!(Instant::now() < deadline, "the listener closes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = tokio::task::block_in_place(|| leaving.wait_exit(WAIT))
            .expect("the server exits once its client is gone");
        assert!(status.success(), "exit status 0: {status:?}");
        assert!(
            began.elapsed() >= Duration::from_secs(1),
            "no client closed before the grace period"
        );
        // The client is on the other server now; its subscription came along, and the
        // messages it publishes there arrive.
        let deadline = Instant::now() + WAIT;
        while client.server_info().port != staying.port {
            assert!(Instant::now() < deadline, "reconnected to the other server");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let moved_at = published.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + WAIT;
        while latest.load(std::sync::atomic::Ordering::Relaxed) < moved_at + 100 {
            assert!(
                Instant::now() < deadline,
                "messages flow on the other server"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        publishing.await.unwrap();
        // Everything published on the other server arrives, in order. Around the move, what
        // was still in the client's buffers or on the wire when the first server closed it may
        // be gone (NATS is at most once); how much is reported, not required.
        let total = published.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + WAIT;
        while latest.load(std::sync::atomic::Ordering::Relaxed) < total {
            assert!(Instant::now() < deadline, "the last message arrives");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        receiving.abort();
        let received = counted.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "lame duck under load: {received} of {total} messages arrived ({} lost in the move)",
            total - received
        );
        let events = events.lock().unwrap().clone();
        assert!(
            events.contains(&"lame duck mode detected".to_string()),
            "{events:?}"
        );
        assert!(
            events.iter().all(
                |event| ["lame duck mode detected", "disconnected", "connected"]
                    .contains(&event.as_str())
            ),
            "no error surfaced: {events:?}"
        );
    });
    let text = std::fs::read_to_string(&log).unwrap();
    for line in [
        "Trapped \"user defined signal 2\" signal",
        "Entering lame duck mode, stop accepting new clients",
        "Closing existing clients",
        "Server Exiting..",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    let _ = std::fs::remove_file(&log);
}

/// The same with the Python client (nats-py): `tests/clients/python/lame_duck.py` connects to
/// the leaving server first, sends SIGUSR2 itself, and checks it carries on through the other
/// server with no call failing. The script is run against two nats-servers first: what it
/// requires is what nats-server gives a nats-py application.
#[test]
fn lame_duck_moves_a_nats_py_client_to_the_other_server() {
    let config = "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n";
    let run_script = |leaving: &ChildServer, staying_port: u16| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/lame_duck.py");
        let output = Command::new("python3")
            .arg(&script)
            .args([
                format!("nats://127.0.0.1:{}", leaving.port),
                format!("nats://127.0.0.1:{staying_port}"),
                leaving.pid().to_string(),
            ])
            .output()
            .expect("python3 runs (scripts/test.sh installs nats-py)");
        assert!(
            output.status.success(),
            "nats-py lame duck script:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let mut reference_leaving = start_reference_with_config(config);
    let reference_staying = start_reference(&[]);
    run_script(&reference_leaving, reference_staying.port);
    assert!(reference_leaving
        .wait_exit(WAIT)
        .is_some_and(|s| s.success()));

    let mut leaving = start_natsring_with_config(config, &[]);
    let staying = start();
    run_script(&leaving, staying.port);
    let status = leaving.wait_exit(WAIT).expect("the server exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn lame_duck_with_no_client_exits_at_once_and_sigterm_does_not_cut_it_short() {
    // No client: it exits at once, not after the (long) grace period.
    let mut empty = start_natsring_with_config(
        "lame_duck_duration: \"2m\"\nlame_duck_grace_period: \"60s\"\n",
        &[],
    );
    empty.signal(libc::SIGUSR2);
    let status = empty.wait_exit(WAIT).expect("no client: exits at once");
    assert!(status.success());

    // With a client: SIGTERM is ignored during lame duck mode (nats-server), SIGINT is not.
    let log = temp_path("ldm-sigterm").with_extension("log");
    let mut busy = start_natsring_with_config(
        "lame_duck_duration: \"2m\"\nlame_duck_grace_period: \"60s\"\n",
        &["-l", log.to_str().unwrap()],
    );
    let mut client = Raw::connect_quiet(busy.port);
    client.send(b"CONNECT {\"protocol\":1,\"verbose\":false}\r\nPING\r\n");
    // The first PING's PONG and the async INFO: the client can now hear an LDM INFO.
    client.read_until(b"\"connect_info\":true", WAIT);
    busy.signal(libc::SIGUSR2);
    let out = client.read_until(b"\"ldm\":true", WAIT);
    assert!(String::from_utf8_lossy(&out).contains("INFO {"));
    busy.signal(libc::SIGTERM);
    wait_for_log(&log, "Trapped \"terminated\" signal");
    // Handled and ignored: the server still answers this client.
    client.send(b"PING\r\n");
    client.read_until(b"PONG\r\n", WAIT);
    assert!(busy.wait_exit(Duration::ZERO).is_none(), "still running");
    busy.signal(libc::SIGINT);
    let status = busy.wait_exit(WAIT).expect("SIGINT stops it");
    assert!(status.success());
    let _ = std::fs::remove_file(&log);
}

/// Several clients over two shards: none is closed before the grace period, then they are
/// closed one at a time, spaced as nats-server spaces them (the window shared among them, at
/// most a second apart, at least half that: here 29 s for 4 clients, so 0.5 to 1 s), not all at
/// once and not over the whole window.
#[test]
fn lame_duck_spaces_the_closes_as_nats_server_does() {
    let mut server = start_natsring_with_config(
        "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n",
        &["--shards", "2"],
    );
    let mut clients: Vec<Raw> = (0..4)
        .map(|_| {
            let mut client = Raw::connect_quiet(server.port);
            client.send(b"CONNECT {\"protocol\":1,\"verbose\":false}\r\nPING\r\n");
            client.read_until(b"\"connect_info\":true", WAIT);
            client
        })
        .collect();
    let began = Instant::now();
    server.signal(libc::SIGUSR2);
    let readers: Vec<_> = clients
        .drain(..)
        .map(|mut client| {
            std::thread::spawn(move || {
                let out = client.read_until_closed(Duration::from_secs(30));
                assert!(String::from_utf8_lossy(&out).contains("\"ldm\":true"));
                began.elapsed()
            })
        })
        .collect();
    let mut closed: Vec<Duration> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    closed.sort();
    assert!(
        closed[0] >= Duration::from_secs(1),
        "grace period: {closed:?}"
    );
    for pair in closed.windows(2) {
        let gap = pair[1] - pair[0];
        // At least about half a second apart (the closes are not a burst), at most about a
        // second plus what a loaded machine adds (not spread over 29 s).
        assert!(
            gap >= Duration::from_millis(400) && gap <= Duration::from_secs(3),
            "gaps between closes: {closed:?}"
        );
    }
    let status = server.wait_exit(WAIT).expect("exits after the last close");
    assert!(status.success());
}

#[test]
fn a_lower_max_connections_on_reload_closes_the_excess() {
    let log = temp_path("max-conn-reload").with_extension("log");
    let server =
        start_natsring_with_config("max_connections: 10\n", &["-l", log.to_str().unwrap()]);
    let config = server.config_path().unwrap().to_path_buf();
    let mut clients: Vec<Raw> = (0..3)
        .map(|_| {
            let mut client = Raw::connect_quiet(server.port);
            client.send(b"PING\r\n");
            client.read_until(b"PONG\r\n", WAIT);
            client
        })
        .collect();
    std::fs::write(&config, "max_connections: 1\n").unwrap();
    server.signal(libc::SIGHUP);
    wait_for_log(&log, "Closed 2 connections to fall within max_connections");
    wait_for_log(&log, "Reloaded: max_connections = 1");
    let mut told = 0;
    for client in &mut clients {
        let (out, closed) = client.read_until_close_within(Duration::from_secs(2));
        if closed {
            assert_eq!(
                without_server_pings(out),
                "-ERR 'maximum connections exceeded'\r\n"
            );
            told += 1;
        }
    }
    assert_eq!(told, 2, "two closed with the -ERR, one left open");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn logging_settings_from_a_file_apply_and_the_log_rotates() {
    let dir = temp_path("log-rotation");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("natsring.log");
    let server = start_natsring_with_config(
        &format!(
            "log_file: \"{}\"\ntrace: true\nlogtime: false\nlog_size_limit: 4KB\nlog_max_num: 3\n",
            log.display()
        ),
        &[],
    );
    // Each traced PUB is a few lines: enough of them rotate the log a few times.
    let mut raw = Raw::connect_quiet(server.port);
    for _ in 0..200 {
        raw.send(b"PUB trace.me 5\r\nhello\r\nPING\r\n");
        raw.read_until(b"PONG\r\n", WAIT);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        let backups = names
            .iter()
            .filter(|name| name.starts_with("natsring.log."))
            .count();
        if backups == 2 {
            break;
        }
        // A rotation renames before it purges: three backups may show for a moment.
        assert!(
            Instant::now() < deadline,
            "log_max_num 3 keeps two backups besides the log: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let current = std::fs::read_to_string(&log).unwrap();
    let pid = server.pid();
    assert!(
        current.starts_with(&format!("[{pid}] [INF] Rotated log, backup saved as \"")),
        "logtime false, and the rotation noted first: {current}"
    );
    assert!(current.contains("[TRC] "), "trace on: {current}");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example file README shows and the container image runs: natsring takes it, and
/// nats-server takes all of it but natsring's own keys.
#[test]
fn the_example_configuration_file_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/natsring.conf");
    let (accepts, says) = check(natsring(), &example);
    assert!(accepts, "{says}");
    let text = std::fs::read_to_string(&example).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let shown = readme
        .split_once("A complete example")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(block, _)| block)
        .expect("README's example block");
    assert_eq!(shown, text, "README shows deploy/natsring.conf as it is");
    let without_ours: String = text
        .lines()
        .filter(|line| {
            !["shards", "pin_shards", "busy_poll"]
                .iter()
                .any(|key| line.starts_with(key))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let file = conf_file(&without_ours);
    let (reference_accepts, reference_says) = check("nats-server", &file);
    assert!(reference_accepts, "{reference_says}");
    std::fs::remove_file(&file).unwrap();
}

/// `tests/conf/refused/`: files nats-server takes (several from its documentation) that use
/// what natsring does not have yet. natsring refuses each with one error per such key, naming
/// it, and nothing else: their format parses and no supported key is refused.
#[test]
fn files_using_features_natsring_lacks_are_refused_key_by_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conf/refused");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    for file in &files {
        let (reference_accepts, reference_says) = check("nats-server", file);
        assert!(reference_accepts, "{}: {reference_says}", file.display());
        let (accepts, says) = check(natsring(), file);
        assert!(!accepts, "{}", file.display());
        let lines = message_lines(&says, "natsring");
        assert!(!lines.is_empty());
        for line in &lines {
            assert!(
                line.contains("is not supported by natsring yet ("),
                "{}: {line}",
                file.display()
            );
        }
    }
}
