//! natsring's own Prometheus endpoint, `/metrics` on the monitoring port: after some traffic
//! its body must parse with a real Prometheus text parser (Python `prometheus_client`'s
//! `text_string_to_metric_families`, run as a subprocess), every family must have HELP and
//! TYPE, counters' samples must be named `..._total` in the text, and the families of [`EXPECTED_FAMILIES`] must
//! be there with sane values: per shard (label `shard`) and per account (label `account`).
//!
//! Needs `prometheus-client` in the Python on PATH (scripts/test.sh installs it in its venv).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{start_natsring_with_config, Raw};

const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------
// THE EXPECTED METRIC NAMES: aligned with the implementation when it lands.
// ------------------------------------------------------------------------------------------

/// How a family's samples are checked after [`drive_traffic`].
#[derive(Clone, Copy, Debug)]
enum Check {
    /// The sum of the family's samples (without `_created` ones) is at least this.
    SumAtLeast(f64),
    /// The sum of the family's samples is exactly this.
    SumEquals(f64),
    /// The family has samples for every value of `label` in the list, each at least `min`.
    PerLabel {
        label: &'static str,
        values: &'static [&'static str],
        min: f64,
    },
}

/// (family name as the parser reports it (counters without `_total`), TYPE, check).
///
/// The traffic: 2 clients in account A (one subscribed to `orders.>`, one publishing 10
/// messages of 5 bytes to `orders.new`) and 1 in account B publishing 4 messages of 3 bytes to
/// `nobody` (no subscriber), on a server with 2 shards.
const EXPECTED_FAMILIES: &[(&str, &str, Check)] = &[
    ("natsring_in_messages", "counter", Check::SumAtLeast(14.0)),
    ("natsring_out_messages", "counter", Check::SumAtLeast(10.0)),
    ("natsring_in_bytes", "counter", Check::SumAtLeast(62.0)),
    ("natsring_out_bytes", "counter", Check::SumAtLeast(50.0)),
    ("natsring_connections", "gauge", Check::SumEquals(3.0)),
    ("natsring_subscriptions", "gauge", Check::SumAtLeast(1.0)),
    (
        "natsring_shard_connections",
        "gauge",
        Check::PerLabel {
            label: "shard",
            values: &["0", "1"],
            min: 0.0,
        },
    ),
    (
        "natsring_account_in_messages",
        "counter",
        Check::PerLabel {
            label: "account",
            values: &["A", "B"],
            min: 4.0,
        },
    ),
    (
        "natsring_account_connections",
        "gauge",
        Check::PerLabel {
            label: "account",
            values: &["A", "B"],
            min: 1.0,
        },
    ),
];

/// Shards the server runs with: per-shard series must name each.
const SHARDS: &str = "2";

// ------------------------------------------------------------------------------------------

/// A metric family as the parser returns it.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    /// None when not finite (NaN, ±Inf).
    value: Option<f64>,
}

/// The parser, reading the exposition from stdin, printing the families as JSON.
const PARSER: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "help": family.documentation,
        "samples": [
            {"name": s.name, "labels": dict(s.labels),
             "value": s.value if math.isfinite(s.value) else None}
            for s in family.samples
        ],
    })
print(json.dumps(families))
"#;

/// Parses `body` with `prometheus_client`; panics with the parser's error when it fails.
fn parse_with_prometheus_client(body: &str) -> Vec<Family> {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .expect("body to the parser");
    let output = child.wait_with_output().expect("parser output");
    assert!(
        output.status.success(),
        "prometheus_client rejects /metrics: {}\n--- body ---\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("parser JSON");
    parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|family| Family {
            name: family["name"].as_str().unwrap().to_string(),
            kind: family["type"].as_str().unwrap().to_string(),
            help: family["help"].as_str().unwrap().to_string(),
            samples: family["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|sample| Sample {
                    name: sample["name"].as_str().unwrap().to_string(),
                    labels: sample["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect(),
                    value: sample["value"].as_f64(),
                })
                .collect(),
        })
        .collect()
}

fn prometheus_client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn client(port: u16, user: &str) -> Raw {
    let mut raw = Raw::connect(port);
    raw.read_until(b"\r\n", WAIT);
    let connect = json!({"verbose": false, "user": user, "pass": user, "name": user});
    raw.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    raw.read_until(b"PONG\r\n", WAIT);
    raw
}

/// The traffic [`EXPECTED_FAMILIES`] describes; returns the connections, kept open.
fn drive_traffic(port: u16) -> Vec<Raw> {
    let mut subscriber = client(port, "a");
    subscriber.send(b"SUB orders.> 1\r\nPING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    let mut publisher_a = client(port, "a");
    let mut publisher_b = client(port, "b");
    let mut bytes = Vec::new();
    for _ in 0..10 {
        bytes.extend_from_slice(b"PUB orders.new 5\r\nhello\r\n");
    }
    bytes.extend_from_slice(b"PING\r\n");
    publisher_a.send(&bytes);
    publisher_a.read_until(b"PONG\r\n", WAIT);
    let mut bytes = Vec::new();
    for _ in 0..4 {
        bytes.extend_from_slice(b"PUB nobody 3\r\nbye\r\n");
    }
    bytes.extend_from_slice(b"PING\r\n");
    publisher_b.send(&bytes);
    publisher_b.read_until(b"PONG\r\n", WAIT);
    // Every message delivered before /metrics is read.
    let received = subscriber.read_until(
        b"MSG orders.new 1 5\r\nhello\r\n".repeat(10).as_slice(),
        WAIT,
    );
    assert!(received.windows(4).filter(|w| w == b"MSG ").count() >= 10);
    subscriber.send(b"PING\r\n");
    subscriber.read_until(b"PONG\r\n", WAIT);
    vec![subscriber, publisher_a, publisher_b]
}

fn get_metrics(http_port: u16) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://127.0.0.1:{http_port}/metrics"))
        .call()
        .expect("GET /metrics");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let status = response.status().as_u16();
    (
        status,
        content_type,
        response.body_mut().read_to_string().expect("body"),
    )
}

/// Counter samples named without `_total` in the exposition `body`. The parser cannot tell:
/// it renames a counter's `x` sample to `x_total` on its own.
fn counters_without_total(body: &str) -> Vec<String> {
    let counters: BTreeSet<&str> = body
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            let name = words.next()?;
            (words.next()? == "counter").then(|| name.strip_suffix("_total").unwrap_or(name))
        })
        .collect();
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let name = line.split(['{', ' ']).next()?;
            counters
                .contains(name)
                .then(|| format!("counter sample {name} does not end in _total"))
        })
        .collect()
}

/// The problems of `families` (parsed from `body`) against the rules and
/// [`EXPECTED_FAMILIES`].
fn problems(body: &str, families: &[Family]) -> Vec<String> {
    let mut problems = counters_without_total(body);
    for family in families {
        if family.kind == "unknown" || family.kind.is_empty() {
            problems.push(format!("{}: no TYPE", family.name));
        }
        if family.help.trim().is_empty() {
            problems.push(format!("{}: no HELP", family.name));
        }
        if family.samples.is_empty() {
            problems.push(format!("{}: no samples", family.name));
        }
    }
    let by_name: BTreeMap<&str, &Family> = families.iter().map(|f| (f.name.as_str(), f)).collect();
    for &(name, kind, check) in EXPECTED_FAMILIES {
        let Some(family) = by_name.get(name) else {
            problems.push(format!("{name}: missing (expected {kind})"));
            continue;
        };
        if family.kind != kind {
            problems.push(format!(
                "{name}: TYPE {} where {kind} is expected",
                family.kind
            ));
        }
        let samples: Vec<&Sample> = family
            .samples
            .iter()
            .filter(|s| !s.name.ends_with("_created"))
            .collect();
        if samples.iter().any(|s| s.value.is_none_or(|v| v < 0.0)) {
            problems.push(format!("{name}: a negative or non-finite sample"));
        }
        let sum: f64 = samples.iter().filter_map(|s| s.value).sum();
        match check {
            Check::SumAtLeast(min) if sum < min => {
                problems.push(format!(
                    "{name}: sum {sum} where at least {min} is expected"
                ));
            }
            Check::SumEquals(expected) if sum != expected => {
                problems.push(format!("{name}: sum {sum} where {expected} is expected"));
            }
            Check::PerLabel { label, values, min } => {
                let mut per_value: BTreeMap<&str, f64> = BTreeMap::new();
                for sample in &samples {
                    if let Some(value) = sample.labels.get(label) {
                        *per_value.entry(value.as_str()).or_default() +=
                            sample.value.unwrap_or(0.0);
                    } else {
                        problems.push(format!("{name}: sample without label {label:?}"));
                    }
                }
                for value in values {
                    match per_value.get(value) {
                        None => problems.push(format!("{name}: no series {label}={value:?}")),
                        Some(&v) if v < min => problems.push(format!(
                            "{name}{{{label}={value:?}}}: {v} where at least {min} is expected"
                        )),
                        Some(_) => {}
                    }
                }
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn metrics_parse_with_prometheus_client() {
    assert!(
        prometheus_client_available(),
        "python3 with prometheus_client must be on PATH (scripts/test.sh installs it)"
    );
    let http_port = free_port();
    let config = "accounts {\n  A { users [{user: a, password: a}] }\n  B { users [{user: b, password: b}] }\n}\n";
    let server =
        start_natsring_with_config(config, &["-m", &http_port.to_string(), "--shards", SHARDS]);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on -m {http_port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _connections = drive_traffic(server.port);
    let (status, content_type, body) = get_metrics(http_port);
    assert_eq!(status, 200, "/metrics: {body}");
    assert!(
        content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain") && t.contains("version=0.0.4")),
        "/metrics Content-Type {content_type:?}: the Prometheus text format is \
         `text/plain; version=0.0.4; charset=utf-8`"
    );
    let families = parse_with_prometheus_client(&body);
    let problems = problems(&body, &families);
    assert!(
        problems.is_empty(),
        "/metrics: {} problems:\n  {}\n--- body ---\n{body}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The checks themselves, on a hand-written exposition: one that passes, and one that breaks
/// each rule. Runs now: it needs only the parser.
#[test]
fn metric_checks_pass_and_fail() {
    assert!(
        prometheus_client_available(),
        "python3 with prometheus_client must be on PATH (scripts/test.sh installs it)"
    );
    let mut good = String::new();
    for &(name, kind, check) in EXPECTED_FAMILIES {
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        good.push_str(&format!(
            "# HELP {sample} What {name} counts.\n# TYPE {sample} {kind}\n"
        ));
        match check {
            Check::SumAtLeast(v) | Check::SumEquals(v) => {
                good.push_str(&format!("{sample} {v}\n"));
            }
            Check::PerLabel { label, values, min } => {
                for value in values {
                    good.push_str(&format!("{sample}{{{label}=\"{value}\"}} {min}\n"));
                }
            }
        }
    }
    let families = parse_with_prometheus_client(&good);
    assert_eq!(problems(&good, &families), Vec::<String>::new(), "{good}");

    let bad = "\
# TYPE natsring_in_messages counter
natsring_in_messages 3
natsring_undocumented 1
# HELP natsring_shard_connections Connections per shard.
# TYPE natsring_shard_connections gauge
natsring_shard_connections{shard=\"0\"} 1
";
    let families = parse_with_prometheus_client(bad);
    let found: BTreeSet<String> = problems(bad, &families).into_iter().collect();
    for expected in [
        "natsring_in_messages: no HELP",
        "counter sample natsring_in_messages does not end in _total",
        "natsring_in_messages: sum 3 where at least 14 is expected",
        "natsring_undocumented: no TYPE",
        "natsring_undocumented: no HELP",
        "natsring_shard_connections: no series shard=\"1\"",
        "natsring_out_messages: missing (expected counter)",
    ] {
        assert!(found.contains(expected), "{expected:?} not in {found:#?}");
    }
    // Not Prometheus text at all: the parser refuses it, and the test says so.
    let refused = std::panic::catch_unwind(|| parse_with_prometheus_client("natsring_x{ 1\n"));
    assert!(refused.is_err(), "the parser accepts a broken exposition");
}
