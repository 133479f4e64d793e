//! The key/type comparison of two JSON answers, nats-server's being the reference: the JSON
//! type of every value, recursively (an array's is the union of its elements'), Go's float64
//! keys, and the formats of the Go `time.Time` and `time.Duration` strings clients parse.
//! Differences an [`Allowances`] names, each with its reason, are not reported.
//!
//! Used by tests/monitor_nats_server.rs (HTTP monitoring) and tests/system_nats_server.rs (the
//! system account's services and events).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What may differ between the two answers: entries are (endpoint, JSON path, reason). The
/// endpoint is whatever name the test gives the answer (`/accountz`, `VARZ`), or `*` for
/// every answer; the JSON path names array elements `[]` (`.connections[].rtt`).
#[derive(Clone, Copy, Debug)]
pub struct Allowances<'a> {
    /// Keys one side may have and the other not.
    pub differences: &'a [(&'a str, &'a str, &'a str)],
    /// Arrays that may be empty on one side and not on the other.
    pub empty: &'a [(&'a str, &'a str, &'a str)],
}

impl Allowances<'_> {
    /// Nothing may differ.
    pub const NONE: Allowances<'static> = Allowances {
        differences: &[],
        empty: &[],
    };
}

/// Keys whose Go type is `float64`: Go prints a whole float64 without a fraction (`"cpu": 0`,
/// `"auth_timeout": 2`), so integer and float are one type there. Every other number is an
/// integer in Go (`ping_interval` is a `time.Duration` in nanoseconds): a fraction there
/// fails Go clients' decoding.
pub const FLOAT_KEYS: &[&str] = &[
    "cpu",
    "cache_hit_rate",
    "avg_fanout",
    "auth_timeout",
    "tls_timeout",
];

/// Keys holding a Go `time.Time` (RFC 3339 with nanoseconds, `Z`).
pub const TIME_KEYS: &[&str] = &[
    "now",
    "start",
    "last_activity",
    "stop",
    "config_load_time",
    "update_time",
    // The system account's envelopes and events.
    "time",
    "timestamp",
];

/// Keys holding a Go `time.Duration` printed by `String()` (`1.234ms`, `0s`) or nats-server's
/// own uptime format (`1h2m3s`, `1d2h3m4s`).
pub const DURATION_KEYS: &[&str] = &["rtt", "uptime", "idle"];

/// Whether `list` covers the key at `json_path` of the answer named `endpoint`.
pub fn allowed(list: &[(&str, &str, &str)], endpoint: &str, json_path: &str) -> bool {
    list.iter()
        .any(|&(e, p, _reason)| (e == "*" || endpoint == e) && json_path == p)
}

/// What a string holds, for the keys whose format Go clients parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Text {
    Plain,
    Time,
    Duration,
    /// A `TIME_KEYS` value that is not RFC 3339.
    NotTime,
    /// A `DURATION_KEYS` value that is not a Go duration.
    NotDuration,
}

/// A JSON value's type, recursively; an array's is the union of its elements'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Null,
    Bool,
    Integer,
    Float,
    /// A Go float64: integer or float.
    Number,
    String(Text),
    /// The union of the elements' shapes; None when empty.
    Array(Option<Box<Shape>>),
    Object(BTreeMap<String, Shape>),
    /// Elements of different types in one array (their type names).
    Mixed(BTreeSet<String>),
}

impl Shape {
    pub fn of(value: &Value, key: Option<&str>) -> Shape {
        let key_in = |list: &[&str]| key.is_some_and(|k| list.contains(&k));
        match value {
            Value::Null => Shape::Null,
            Value::Bool(_) => Shape::Bool,
            Value::Number(_) if key_in(FLOAT_KEYS) => Shape::Number,
            Value::Number(n) if n.is_f64() => Shape::Float,
            Value::Number(_) => Shape::Integer,
            Value::String(s) if key_in(TIME_KEYS) => Shape::String(if is_go_time(s) {
                Text::Time
            } else {
                Text::NotTime
            }),
            Value::String(s) if key_in(DURATION_KEYS) => {
                Shape::String(if go_duration_nanos(s).is_some() {
                    Text::Duration
                } else {
                    Text::NotDuration
                })
            }
            Value::String(_) => Shape::String(Text::Plain),
            Value::Array(items) => Shape::Array(
                items
                    .iter()
                    .map(|item| Shape::of(item, key))
                    .reduce(Shape::merge)
                    .map(Box::new),
            ),
            Value::Object(map) => Shape::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Shape::of(v, Some(k))))
                    .collect(),
            ),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Shape::Null => "null".into(),
            Shape::Bool => "bool".into(),
            Shape::Integer => "integer".into(),
            Shape::Float => "float".into(),
            Shape::Number => "number".into(),
            Shape::String(Text::Plain) => "string".into(),
            Shape::String(text) => format!("string ({text:?})"),
            Shape::Array(_) => "array".into(),
            Shape::Object(_) => "object".into(),
            Shape::Mixed(names) => format!("mixed {names:?}"),
        }
    }

    /// The union of two elements of one array: objects keep every key either has.
    pub fn merge(self, other: Shape) -> Shape {
        match (self, other) {
            (Shape::Object(mut a), Shape::Object(b)) => {
                for (key, shape) in b {
                    let merged = match a.remove(&key) {
                        Some(existing) => existing.merge(shape),
                        None => shape,
                    };
                    a.insert(key, merged);
                }
                Shape::Object(a)
            }
            (Shape::Array(a), Shape::Array(b)) => Shape::Array(match (a, b) {
                (Some(a), Some(b)) => Some(Box::new(a.merge(*b))),
                (a, b) => a.or(b),
            }),
            (a, b) if a == b => a,
            (a, b) => {
                let mut names = BTreeSet::new();
                for shape in [a, b] {
                    match shape {
                        Shape::Mixed(inner) => names.extend(inner),
                        other => {
                            names.insert(other.name());
                        }
                    }
                }
                Shape::Mixed(names)
            }
        }
    }
}

/// Compares `ours` against `reference` (the nats-server answer) at `path` of the answer to
/// `endpoint`, pushing every difference `allowances` does not cover.
pub fn compare_shapes(
    allowances: &Allowances,
    endpoint: &str,
    path: &str,
    ours: &Shape,
    reference: &Shape,
    differences: &mut Vec<String>,
) {
    match (ours, reference) {
        (Shape::Object(a), Shape::Object(b)) => {
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                let at = format!("{path}.{key}");
                if !allowed(allowances.differences, endpoint, &at) {
                    differences.push(format!("{endpoint} {at}: missing (nats-server has it)"));
                }
            }
            for key in a.keys().filter(|k| !b.contains_key(*k)) {
                let at = format!("{path}.{key}");
                if !allowed(allowances.differences, endpoint, &at) {
                    differences.push(format!("{endpoint} {at}: extra (nats-server lacks it)"));
                }
            }
            for (key, shape) in a {
                if let Some(other) = b.get(key) {
                    compare_shapes(
                        allowances,
                        endpoint,
                        &format!("{path}.{key}"),
                        shape,
                        other,
                        differences,
                    );
                }
            }
        }
        (Shape::Array(a), Shape::Array(b)) => match (a, b) {
            (Some(a), Some(b)) => compare_shapes(
                allowances,
                endpoint,
                &format!("{path}[]"),
                a,
                b,
                differences,
            ),
            (None, None) => {}
            (a, _) => {
                if !allowed(allowances.empty, endpoint, path) {
                    let (empty, full) = if a.is_none() {
                        ("ours", "nats-server's")
                    } else {
                        ("nats-server's", "ours")
                    };
                    differences.push(format!(
                        "{endpoint} {path}: {empty} is empty, {full} is not (types unchecked)"
                    ));
                }
            }
        },
        (a, b) if a == b => {}
        (a, b) => differences.push(format!(
            "{endpoint} {path}: {} where nats-server has {}",
            a.name(),
            b.name()
        )),
    }
}

/// Whether `text` is a Go `time.Time` in JSON: `2006-01-02T15:04:05[.fraction](Z|±hh:mm)`.
pub fn is_go_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if bytes.len() < 20
        || !digits(0..4)
        || bytes[4] != b'-'
        || !digits(5..7)
        || bytes[7] != b'-'
        || !digits(8..10)
        || bytes[10] != b'T'
        || !digits(11..13)
        || bytes[13] != b':'
        || !digits(14..16)
        || bytes[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let count = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 || count > 9 {
            return false;
        }
        rest = &fraction[count..];
    }
    rest == "Z" || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')))
}

/// The nanoseconds of a Go duration (`time.Duration.String()`: `1h2m3.5s`, `1.234ms`, `0s`) or
/// of nats-server's uptime format (`1d2h3m4s`, `1y2d...`), or None when `text` is neither.
pub fn go_duration_nanos(text: &str) -> Option<f64> {
    if text == "0s" {
        return Some(0.0);
    }
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let units: [(&str, f64); 9] = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
            ("d", 86400e9),
            ("y", 365.0 * 86400e9),
        ];
        let &(unit, scale) = units.iter().find(|(unit, _)| rest.starts_with(unit))?;
        total += number * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

/// The differences between the shapes of `ours` and `reference` (nats-server's), for the
/// answer named `endpoint`.
pub fn shape_differences(
    allowances: &Allowances,
    endpoint: &str,
    ours: &Value,
    reference: &Value,
) -> Vec<String> {
    let mut differences = Vec::new();
    compare_shapes(
        allowances,
        endpoint,
        "",
        &Shape::of(ours, None),
        &Shape::of(reference, None),
        &mut differences,
    );
    differences
}

/// Fails with every difference, one a line.
pub fn assert_no_differences(what: &str, differences: &[String]) {
    assert!(
        differences.is_empty(),
        "{what}: {} differences:\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}
