//! A configuration file onto [`Options`], as nats-server's `processConfigFile` maps it: each
//! top-level key (case-insensitive, with nats-server's aliases) sets an option; values of the
//! wrong type, out of range or malformed are errors carrying `file:line:column` and
//! nats-server's wording; an unknown key is an error unless it is a variable something used;
//! a key nats-server knows but natsring does not support yet is refused by name (never
//! ignored); every error of the file is reported, warnings first, as nats-server reports them.
//!
//! Where natsring refuses a value nats-server takes (a port over 65535, a negative size), the
//! value could not work: nats-server fails later (at listen) or behaves in ways nobody asks
//! for (a negative `max_payload` is no limit at all). Those refusals say so.
//!
//! Must not: read anything but the file (and what it includes), or keep any state.

use std::path::Path;
use std::time::Duration;

use super::auth_file;
use super::conf::{self, Item, Value};
use super::go::{self, quote};
use super::Options;
use crate::limits;

/// What a file's mapping found wrong: warnings (the file is still used) and errors (it is not).
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) warnings: Vec<String>,
    pub(super) errors: Vec<String>,
}

/// Where an item was written, as nats-server prints it: `file:line:column`.
pub(super) fn source(item: &Item) -> String {
    let file = item
        .position
        .file
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    format!("{file}:{}:{}", item.position.line, item.position.column)
}

impl Report {
    pub(super) fn error(&mut self, item: &Item, reason: impl AsRef<str>) {
        self.errors
            .push(format!("{}: {}", source(item), reason.as_ref()));
    }

    /// nats-server's text when a value has the wrong type (its `interface conversion` panic,
    /// recovered into an error).
    pub(super) fn wrong_type(&mut self, item: &Item, expected: &str) {
        self.error(
            item,
            format!(
                "interface conversion: interface {{}} is {}, not {expected}",
                item.value.go_type_name()
            ),
        );
    }
}

/// Reads `path` and applies it to `options`. `Ok` carries the warnings (each a line to print);
/// `Err` is every warning and error, one per line, as nats-server prints them.
pub(super) fn apply_file(options: &mut Options, path: &Path) -> Result<Vec<String>, String> {
    let map = conf::parse_file(path).map_err(|error| error.to_string())?;
    options.config_file = Some(path.to_path_buf());
    options.config_digest = Some(conf::digest(&map));
    let mut report = Report::default();
    if map.is_empty() {
        report.warnings.push(format!(
            "{}: config has no values or is empty",
            path.display()
        ));
    }
    // nats-server reads the system account first: other keys' checks depend on it.
    auth_file::system_account(options, &map, &mut report);
    for (key, item) in map.iter() {
        apply_key(options, key, item, &mut report);
    }
    if report.errors.is_empty() {
        return Ok(report.warnings);
    }
    let mut all = report.warnings;
    all.extend(report.errors);
    Err(all.join("\n"))
}

/// Keys nats-server knows that natsring does not support yet, with what they belong to.
const NOT_YET: &[(&[&str], &str)] = &[
    (
        &[
            "resolver_tls",
            "resolver_pinned_accounts",
            "default_sentinel",
        ],
        "authentication, authorization and accounts",
    ),
    (&["ocsp", "ocsp_cache"], "OCSP stapling"),
    (&["gateway"], "gateways"),
    (&["leaf", "leafnodes"], "leaf nodes"),
    (
        &["jetstream", "store_dir", "storedir", "default_js_domain"],
        "JetStream",
    ),
    (&["websocket", "ws"], "WebSocket"),
    (&["mqtt"], "MQTT"),
    (&["syslog", "remote_syslog"], "syslog"),
    (&["prof_port", "prof_block_rate"], "profiling"),
    (&["proxy_protocol", "proxies"], "proxies"),
    (
        &[
            "server_tags",
            "server_metadata",
            "feature_flags",
            "disable_sublist_cache",
            "no_sublist_cache",
            "no_fast_producer_stall",
            "max_traced_msg_len",
            "trace_headers",
        ],
        "this setting",
    ),
];

fn apply_key(options: &mut Options, key: &str, item: &Item, report: &mut Report) {
    let lower = key.to_lowercase();
    match lower.as_str() {
        "listen" => {
            if let Some((host, port)) = listen(item, report) {
                options.host = host;
                if let Some(port) = port_value(item, port, report) {
                    options.port = port;
                }
            }
        }
        "http" => {
            if let Some((host, port)) = http_listen(item, report) {
                options.http_host = host;
                options.http_port = port;
            }
        }
        "http_port" | "monitor_port" => {
            if let Some(port) = integer(item, report) {
                if let Some(port) = http_port_value(item, port, report) {
                    options.http_port = port;
                }
            }
        }
        // As nats-server: `https` sets the same host as `http`.
        "https" => {
            if let Some((host, port)) = http_listen(item, report) {
                options.http_host = host;
                options.https_port = port;
            }
        }
        "https_port" => {
            if let Some(port) = integer(item, report) {
                if let Some(port) = http_port_value(item, port, report) {
                    options.https_port = port;
                }
            }
        }
        "http_base_path" => {
            if let Some(path) = string(item, report) {
                options.http_base_path = path.to_string();
            }
        }
        "port" => {
            if let Some(port) = integer(item, report) {
                if let Some(port) = port_value(item, port, report) {
                    options.port = port;
                }
            }
        }
        "host" | "net" => {
            if let Some(host) = string(item, report) {
                options.host = if host.is_empty() {
                    limits::HOST_DEFAULT.to_string()
                } else {
                    host.to_string()
                };
            }
        }
        "server_name" => {
            if let Some(name) = string(item, report) {
                if name.contains(' ') {
                    report.error(item, "server name cannot contain spaces");
                } else {
                    options.server_name = (!name.is_empty()).then(|| name.to_string());
                }
            }
        }
        "client_advertise" => {
            if let Some(url) = string(item, report) {
                options.client_advertise = (!url.is_empty()).then(|| url.to_string());
            }
        }
        "debug" => set_bool(&mut options.debug, item, report),
        "trace" => set_bool(&mut options.trace, item, report),
        // natsring's trace has no verbose form: it is trace.
        "trace_verbose" => set_bool(&mut options.trace, item, report),
        "logtime" => set_bool(&mut options.logtime, item, report),
        "logtime_utc" => set_bool(&mut options.logtime_utc, item, report),
        "log_file" | "logfile" => set_path(&mut options.log_file, item, report),
        "log_size_limit" | "logfile_size_limit" => {
            if let Some(bytes) = integer(item, report) {
                // nats-server: zero or less never rotates.
                options.log_size_limit = bytes.max(0) as u64;
            }
        }
        "log_max_num" | "logfile_max_num" => {
            if let Some(count) = count(key, item, report) {
                options.log_max_num = count;
            }
        }
        "pid_file" | "pidfile" => set_path(&mut options.pid_file, item, report),
        "ports_file_dir" => set_path(&mut options.ports_file_dir, item, report),
        "max_control_line" => {
            if let Some(bytes) = size_up_to_int32(key, item, report) {
                options.max_control_line =
                    or_default(bytes, limits::CONTROL_LINE_BYTES_MAX_DEFAULT);
            }
        }
        "max_payload" => {
            if let Some(bytes) = size_up_to_int32(key, item, report) {
                options.max_payload = or_default(bytes, limits::PAYLOAD_BYTES_MAX_DEFAULT);
            }
        }
        "max_pending" => {
            if let Some(bytes) = non_negative(key, item, report) {
                options.max_pending = or_default(bytes, limits::PENDING_BYTES_MAX_DEFAULT);
            }
        }
        "max_connections" | "max_conn" => {
            if let Some(count) = integer(item, report) {
                // nats-server: 0 (and anything negative) admits no connection at all.
                options.max_connections = count.clamp(0, i64::from(u32::MAX)) as u32;
            }
        }
        "max_subscriptions" | "max_subs" => {
            // nats-server: -1 is "no limit" too (jwt.NoLimit), as is 0.
            if matches!(item.value, Value::Integer(-1)) {
                options.max_subscriptions = 0;
            } else if let Some(count) = count(key, item, report) {
                options.max_subscriptions = count;
            }
        }
        "max_sub_tokens" | "max_subscription_tokens" => {
            if let Some(count) = integer(item, report) {
                if count > i64::from(u8::MAX) {
                    report.error(item, format!("{key} value is too big"));
                } else if count <= 0 {
                    report.error(item, format!("{key} value can not be negative"));
                } else {
                    options.max_sub_tokens = count as u8;
                }
            }
        }
        "ping_interval" => {
            if let Some(interval) = duration_or_seconds("ping_interval", item, report) {
                options.ping_interval = or_default(
                    interval,
                    Duration::from_millis(limits::PING_INTERVAL_MS_DEFAULT),
                );
            }
        }
        "ping_max" => {
            if let Some(count) = count(key, item, report) {
                options.ping_max = or_default(count, limits::PINGS_OUTSTANDING_MAX_DEFAULT);
            }
        }
        "write_deadline" => {
            if let Some(deadline) = duration_or_seconds("write_deadline", item, report) {
                options.write_deadline = or_default(
                    deadline,
                    Duration::from_millis(limits::WRITE_DEADLINE_MS_DEFAULT),
                );
            }
        }
        "write_timeout" => {
            // nats-server's policy on a write deadline: for clients, "default" is "close",
            // which is what natsring does; "retry" it does not do yet.
            if let Some(policy) = string(item, report) {
                match policy {
                    "default" | "close" => {}
                    "retry" => report.error(
                        item,
                        "write_timeout \"retry\" is not supported by natsring yet (it closes)",
                    ),
                    _ => report.error(item, "write_timeout must be 'default', 'close' or 'retry'"),
                }
            }
        }
        "no_header_support" => set_bool(&mut options.no_header_support, item, report),
        "cluster" => super::cluster::parse_block(options, item, report),
        "tls" => {
            if let Some(tls) = super::tls::parse_block(item, report) {
                options.tls = Some(tls);
            }
        }
        "allow_non_tls" => set_bool(&mut options.allow_non_tls, item, report),
        "lame_duck_duration" => {
            if let Some(text) = string(item, report) {
                match go::parse_duration(text) {
                    Err(error) => {
                        report.error(item, format!("error parsing lame_duck_duration: {error}"))
                    }
                    Ok(nanos) if nanos < (limits::LAME_DUCK_DURATION_MS_MIN * 1_000_000) as i64 => {
                        report.error(
                            item,
                            format!(
                                "invalid lame_duck_duration of {}, minimum is 30 seconds",
                                go::format_duration(nanos)
                            ),
                        )
                    }
                    Ok(nanos) => options.lame_duck_duration = Duration::from_nanos(nanos as u64),
                }
            }
        }
        "lame_duck_grace_period" => {
            if let Some(text) = string(item, report) {
                match go::parse_duration(text) {
                    Err(error) => report.error(
                        item,
                        format!("error parsing lame_duck_grace_period: {error}"),
                    ),
                    Ok(nanos) if nanos < 0 => {
                        report.error(item, "invalid lame_duck_grace_period, needs to be positive")
                    }
                    Ok(nanos) => {
                        options.lame_duck_grace_period = or_default(
                            Duration::from_nanos(nanos as u64),
                            Duration::from_millis(limits::LAME_DUCK_GRACE_PERIOD_MS_DEFAULT),
                        )
                    }
                }
            }
        }
        "connect_error_reports" => {
            if let Some(count) = count(key, item, report) {
                options.connect_error_reports =
                    or_default(count, limits::CONNECT_ERROR_REPORTS_DEFAULT);
            }
        }
        "reconnect_error_reports" => {
            if let Some(count) = count(key, item, report) {
                options.reconnect_error_reports =
                    or_default(count, limits::RECONNECT_ERROR_REPORTS_DEFAULT);
            }
        }
        "max_closed_clients" => {
            if let Some(count) = count(key, item, report) {
                options.max_closed_clients = or_default(count, limits::CLOSED_CLIENTS_MAX_DEFAULT);
            }
        }
        "authorization" => auth_file::authorization(options, item, report),
        "accounts" => auth_file::accounts(options, item, report),
        "mappings" | "maps" => auth_file::server_mappings(options, item, report),
        "no_auth_user" => auth_file::no_auth_user(options, item, report),
        // Read before the walk (`auth_file::system_account`).
        "system_account" | "system" => {}
        "no_system_account" | "no_system" | "no_sys_acc" => {
            auth_file::no_system_account(options, item, report)
        }
        "operator" | "operators" | "root" | "roots" | "root_operator" | "root_operators" => {
            auth_file::operators(options, item, report)
        }
        "resolver" | "account_resolver" | "accounts_resolver" => {
            auth_file::resolver(options, item, report)
        }
        "resolver_preload" => auth_file::resolver_preload(options, item, report),
        "trusted" | "trusted_keys" => auth_file::trusted_keys(options, item, report),
        // natsring's own.
        "shards" => {
            if let Some(count) = non_negative(key, item, report) {
                if count > limits::SHARDS_MAX as u64 {
                    report.error(
                        item,
                        format!(
                            "shards value is too big (0-{}, 0 = one per CPU)",
                            limits::SHARDS_MAX
                        ),
                    );
                } else {
                    options.shards = count as usize;
                }
            }
        }
        "pin_shards" => set_bool(&mut options.pin_shards, item, report),
        "busy_poll" => {
            if let Some(micros) = non_negative(key, item, report) {
                if micros > limits::BUSY_POLL_MICROS_MAX {
                    report.error(
                        item,
                        format!(
                            "busy_poll value is too big (0-{} µs)",
                            limits::BUSY_POLL_MICROS_MAX
                        ),
                    );
                } else {
                    options.busy_poll_micros = micros;
                }
            }
        }
        _ => {
            if let Some((_, feature)) = NOT_YET
                .iter()
                .find(|(keys, _)| keys.contains(&lower.as_str()))
            {
                report.error(
                    item,
                    format!(
                        "field {} is not supported by natsring yet ({feature})",
                        quote(key)
                    ),
                );
            } else if !item.used_variable {
                report.error(item, format!("unknown field {}", quote(key)));
            }
        }
    }
}

pub(super) fn string<'a>(item: &'a Item, report: &mut Report) -> Option<&'a str> {
    match &item.value {
        Value::String(text) => Some(text),
        _ => {
            report.wrong_type(item, "string");
            None
        }
    }
}

pub(super) fn integer(item: &Item, report: &mut Report) -> Option<i64> {
    match item.value {
        Value::Integer(value) => Some(value),
        _ => {
            report.wrong_type(item, "int64");
            None
        }
    }
}

pub(super) fn set_bool(target: &mut bool, item: &Item, report: &mut Report) {
    match item.value {
        Value::Bool(value) => *target = value,
        _ => report.wrong_type(item, "bool"),
    }
}

/// An integer natsring needs to be at least 0.
fn non_negative(key: &str, item: &Item, report: &mut Report) -> Option<u64> {
    let value = integer(item, report)?;
    if value < 0 {
        report.error(
            item,
            format!("{key} value can not be negative (natsring has no meaning for {value})"),
        );
        return None;
    }
    Some(value as u64)
}

/// A size nats-server keeps in an int32: over 2^31-1 is its `value is too big`.
fn size_up_to_int32(key: &str, item: &Item, report: &mut Report) -> Option<u32> {
    let value = non_negative(key, item, report)?;
    if value > limits::PAYLOAD_BYTES_MAX_CEILING as u64 {
        report.error(item, format!("{key} value is too big"));
        return None;
    }
    Some(value as u32)
}

/// A count natsring keeps in a `u32` (larger ones are as good as unlimited).
fn count(key: &str, item: &Item, report: &mut Report) -> Option<u32> {
    non_negative(key, item, report).map(|count| count.min(u64::from(u32::MAX)) as u32)
}

/// nats-server's rule for most settings: zero (unset) is the default.
fn or_default<T: Default + PartialEq>(value: T, default: T) -> T {
    if value == T::default() {
        default
    } else {
        value
    }
}

/// A path setting: a string, empty meaning "not set" (as nats-server).
fn set_path(target: &mut Option<std::path::PathBuf>, item: &Item, report: &mut Report) {
    if let Some(path) = string(item, report) {
        *target = (!path.is_empty()).then(|| path.into());
    }
}

/// A port as nats-server reads it: -1 is a random port (0 here), 0 the default port.
fn port_value(item: &Item, port: i64, report: &mut Report) -> Option<u16> {
    match port {
        -1 => Some(0),
        0 => Some(limits::PORT_DEFAULT),
        1..=65535 => Some(port as u16),
        _ => {
            report.error(
                item,
                format!("port {port} is out of range (1-65535, or -1 for a random port)"),
            );
            None
        }
    }
}

/// A monitoring port (HTTP or HTTPS): -1 (random), 0 (none) or a port.
fn http_port_value(item: &Item, port: i64, report: &mut Report) -> Option<i32> {
    if (-1..=65535).contains(&port) {
        Some(port as i32)
    } else {
        report.error(
            item,
            format!("port {port} is out of range (1-65535, or -1 for a random port)"),
        );
        None
    }
}

/// `http`, `https`: a port alone (the host stays the client one) or `host:port`.
fn http_listen(item: &Item, report: &mut Report) -> Option<(Option<String>, i32)> {
    let (host, port) = listen(item, report)?;
    let host = matches!(item.value, Value::String(_)).then_some(host);
    Some((host, http_port_value(item, port, report)?))
}

/// `listen`: a port alone, or `host:port` (Go's `net.SplitHostPort`: `[::1]:4222` for IPv6).
pub(super) fn listen(item: &Item, report: &mut Report) -> Option<(String, i64)> {
    match &item.value {
        Value::Integer(port) => Some((limits::HOST_DEFAULT.to_string(), *port)),
        Value::String(text) => {
            let Ok((host, port)) = go::split_host_port(text) else {
                report.error(
                    item,
                    format!("could not parse address string {}", quote(text)),
                );
                return None;
            };
            let Ok(port) = port.parse::<i64>() else {
                report.error(item, format!("could not parse port {}", quote(port)));
                return None;
            };
            let host = if host.is_empty() {
                limits::HOST_DEFAULT.to_string()
            } else {
                host.to_string()
            };
            Some((host, port))
        }
        other => {
            report.error(
                item,
                format!("expected port or host:port, got {}", other.go_type_name()),
            );
            None
        }
    }
}

/// A duration as nats-server reads `ping_interval` and `write_deadline`: a Go duration string,
/// or (deprecated, with a warning) an integer of seconds.
pub(super) fn duration_or_seconds(
    field: &str,
    item: &Item,
    report: &mut Report,
) -> Option<Duration> {
    match &item.value {
        Value::String(text) => match go::parse_duration(text) {
            Ok(nanos) if nanos < 0 => {
                report.error(
                    item,
                    format!(
                        "error parsing {field}: negative duration {} (natsring needs a positive one)",
                        go::format_duration(nanos)
                    ),
                );
                None
            }
            Ok(nanos) => Some(Duration::from_nanos(nanos as u64)),
            Err(error) => {
                report.error(item, format!("error parsing {field}: {error}"));
                None
            }
        },
        Value::Integer(seconds) => {
            report.warnings.push(format!(
                "{}: invalid use of field {}: {field} should be converted to a duration",
                source(item),
                quote(field)
            ));
            if *seconds < 0 {
                report.error(
                    item,
                    format!(
                        "error parsing {field}: negative duration (natsring needs a positive one)"
                    ),
                );
                return None;
            }
            Some(Duration::from_secs(*seconds as u64))
        }
        _ => {
            report.wrong_type(item, "int64");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to a fresh file and applies it over the defaults.
    fn load(text: &str) -> Result<(Options, Vec<String>), String> {
        let dir = std::env::temp_dir().join(format!(
            "natsring-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test.conf");
        std::fs::write(&path, text).unwrap();
        let mut options = Options::default();
        let result = apply_file(&mut options, &path);
        std::fs::remove_dir_all(&dir).unwrap();
        result.map(|warnings| (options, warnings))
    }

    fn options(text: &str) -> Options {
        let (options, warnings) = load(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        options
    }

    /// The error lines, without the file's path (a temporary one).
    fn errors(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .lines()
            .map(|line| {
                line.split_once("test.conf")
                    .map(|(_, rest)| rest.to_string())
                    .unwrap_or_else(|| line.to_string())
            })
            .collect()
    }

    #[test]
    fn every_core_setting() {
        let options = options(
            r#"
            host: 127.0.0.1
            port: 4333
            server_name: "n1"
            client_advertise: "public.example.com:4222"
            max_payload: 2MB
            max_connections: 100
            max_control_line: 2KB
            max_pending: 10MB
            max_subscriptions: 50
            max_sub_tokens: 16
            ping_interval: "30s"
            ping_max: 3
            write_deadline: "2s"
            no_header_support: true
            lame_duck_duration: "1m"
            lame_duck_grace_period: "5s"
            debug: true
            trace: true
            logtime: false
            logtime_utc: true
            log_file: "/tmp/x.log"
            log_size_limit: 1MB
            log_max_num: 3
            pid_file: "/tmp/x.pid"
            ports_file_dir: "/tmp"
            connect_error_reports: 10
            reconnect_error_reports: 2
            max_closed_clients: 50
            write_timeout: close
            shards: 2
            pin_shards: true
            busy_poll: 0
            "#,
        );
        assert_eq!(options.host, "127.0.0.1");
        assert_eq!(options.port, 4333);
        assert_eq!(options.server_name.as_deref(), Some("n1"));
        assert_eq!(
            options.client_advertise.as_deref(),
            Some("public.example.com:4222")
        );
        assert_eq!(options.max_payload, 2 * 1024 * 1024);
        assert_eq!(options.max_connections, 100);
        assert_eq!(options.max_control_line, 2048);
        assert_eq!(options.max_pending, 10 * 1024 * 1024);
        assert_eq!(options.max_subscriptions, 50);
        assert_eq!(options.max_sub_tokens, 16);
        assert_eq!(options.ping_interval, Duration::from_secs(30));
        assert_eq!(options.ping_max, 3);
        assert_eq!(options.write_deadline, Duration::from_secs(2));
        assert!(options.no_header_support);
        assert_eq!(options.lame_duck_duration, Duration::from_secs(60));
        assert_eq!(options.lame_duck_grace_period, Duration::from_secs(5));
        assert!(options.debug && options.trace && !options.logtime && options.logtime_utc);
        assert_eq!(options.log_file, Some("/tmp/x.log".into()));
        assert_eq!(options.log_size_limit, 1024 * 1024);
        assert_eq!(options.log_max_num, 3);
        assert_eq!(options.pid_file, Some("/tmp/x.pid".into()));
        assert_eq!(options.ports_file_dir, Some("/tmp".into()));
        assert_eq!(
            (
                options.connect_error_reports,
                options.reconnect_error_reports
            ),
            (10, 2)
        );
        assert_eq!(options.max_closed_clients, 50);
        assert_eq!(options.shards, 2);
        assert!(options.pin_shards);
        assert_eq!(options.busy_poll_micros, 0);
        assert!(options
            .config_digest
            .as_deref()
            .is_some_and(|digest| digest.starts_with("sha256:")));
        assert_eq!(options.validate(), Ok(()));
    }

    #[test]
    fn aliases_and_case() {
        let options = options("NET: 127.0.0.2\nMax_Conn: 7\nmax_subs: 3\nPIDFILE: p\nlogfile: l\n");
        assert_eq!(options.host, "127.0.0.2");
        assert_eq!(options.max_connections, 7);
        assert_eq!(options.max_subscriptions, 3);
        assert_eq!(options.pid_file, Some("p".into()));
        assert_eq!(options.log_file, Some("l".into()));
    }

    #[test]
    fn listen_forms() {
        let loaded = options("listen: 127.0.0.1:4999");
        assert_eq!((loaded.host.as_str(), loaded.port), ("127.0.0.1", 4999));
        let loaded = options("listen: \"[::1]:5000\"");
        assert_eq!((loaded.host.as_str(), loaded.port), ("::1", 5000));
        let loaded = options("listen: 5001");
        assert_eq!((loaded.host.as_str(), loaded.port), ("0.0.0.0", 5001));
        let loaded = options("listen: \":5002\"");
        assert_eq!((loaded.host.as_str(), loaded.port), ("0.0.0.0", 5002));
        let loaded = options("port: -1");
        assert_eq!(loaded.port, 0, "random");
        let loaded = options("port: 0");
        assert_eq!(loaded.port, 4222, "default");
        assert_eq!(
            errors("listen: \"abc\""),
            [r#":1:0: could not parse address string "abc""#]
        );
        assert_eq!(
            errors("listen: \"h:x\""),
            [r#":1:0: could not parse port "x""#]
        );
    }

    #[test]
    fn zero_means_the_default_as_in_nats_server() {
        let options = options(
            "max_payload: 0\nmax_control_line: 0\nmax_pending: 0\nping_max: 0\nping_interval: \"0s\"\nwrite_deadline: \"0s\"\nlame_duck_grace_period: \"0s\"\n",
        );
        let defaults = Options::default();
        assert_eq!(options.max_payload, defaults.max_payload);
        assert_eq!(options.max_control_line, defaults.max_control_line);
        assert_eq!(options.max_pending, defaults.max_pending);
        assert_eq!(options.ping_max, defaults.ping_max);
        assert_eq!(options.ping_interval, defaults.ping_interval);
        assert_eq!(options.write_deadline, defaults.write_deadline);
        assert_eq!(
            options.lame_duck_grace_period,
            defaults.lame_duck_grace_period
        );
        assert_eq!(
            self::options("max_connections: 0").max_connections,
            0,
            "none allowed"
        );
        assert_eq!(
            self::options("max_subscriptions: 0").max_subscriptions,
            0,
            "no limit"
        );
    }

    #[test]
    fn nats_server_errors_with_positions() {
        assert_eq!(
            errors("max_payload: 3000000000\nmax_sub_tokens: 0\nlame_duck_duration: \"10s\"\nlame_duck_grace_period: \"-1s\"\n"),
            [
                ":1:0: max_payload value is too big",
                ":2:1: max_sub_tokens value can not be negative",
                ":3:1: invalid lame_duck_duration of 10s, minimum is 30 seconds",
                ":4:1: invalid lame_duck_grace_period, needs to be positive",
            ]
        );
        assert_eq!(
            errors("port: \"abc\""),
            [":1:0: interface conversion: interface {} is string, not int64"]
        );
        assert_eq!(
            errors("debug: 1"),
            [":1:0: interface conversion: interface {} is int64, not bool"]
        );
        assert_eq!(errors("port: 1\nfoo: 1"), [r#":2:1: unknown field "foo""#]);
        assert_eq!(
            errors("lame_duck_duration: \"1d\""),
            [r#":1:0: error parsing lame_duck_duration: time: unknown unit "d" in duration "1d""#]
        );
        assert_eq!(
            errors("ping_interval: \"x\""),
            [r#":1:0: error parsing ping_interval: time: invalid duration "x""#]
        );
        assert_eq!(
            errors("server_name: \"a b\""),
            [":1:0: server name cannot contain spaces"]
        );
        assert_eq!(
            errors("max_sub_tokens: 256"),
            [":1:0: max_sub_tokens value is too big"]
        );
        assert_eq!(
            errors("write_timeout: sometimes"),
            [":1:0: write_timeout must be 'default', 'close' or 'retry'"]
        );
    }

    #[test]
    fn integer_seconds_are_a_warning_that_still_applies() {
        let (options, warnings) = load("ping_interval: 60\n").unwrap();
        assert_eq!(options.ping_interval, Duration::from_secs(60));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].ends_with(
            ":1:0: invalid use of field \"ping_interval\": ping_interval should be converted to a duration"
        ));
        let (_, warnings) = load("").unwrap();
        assert!(warnings[0].ends_with("test.conf: config has no values or is empty"));
    }

    #[test]
    fn used_variables_are_not_unknown_fields() {
        let options = options("p = 4777\nport: $p\n");
        assert_eq!(options.port, 4777);
        assert_eq!(errors("p = 4777\n"), [r#":1:0: unknown field "p""#]);
    }

    #[test]
    fn features_not_supported_yet_are_refused_by_name() {
        for (text, feature) in [
            ("jetstream: {}", "JetStream"),
            ("jetstream: enabled", "JetStream"),
            ("leafnodes { port: 7422 }", "leaf nodes"),
            (
                "resolver_tls { verify: true }",
                "authentication, authorization and accounts",
            ),
            (
                "default_sentinel: x",
                "authentication, authorization and accounts",
            ),
            ("ocsp: true", "OCSP stapling"),
            ("websocket {}", "WebSocket"),
            ("server_tags: [a]", "this setting"),
        ] {
            let key = text.split([':', ' ']).next().unwrap();
            assert_eq!(
                errors(text),
                [format!(
                    ":1:0: field \"{key}\" is not supported by natsring yet ({feature})"
                )],
                "{text}"
            );
        }
    }

    #[test]
    fn https_monitoring_keys() {
        let random = options("https_port: -1\n");
        assert_eq!((random.https_port, random.http_port), (-1, 0));
        assert_eq!(random.http_host, None);
        // `https` sets monitoring's host, as `http` does.
        let listen = options("https: \"127.0.0.2:8443\"\n");
        assert_eq!(listen.https_port, 8443);
        assert_eq!(listen.monitoring_host(), "127.0.0.2");
        let port_alone = options("https: 8443\n");
        assert_eq!((port_alone.https_port, port_alone.http_host), (8443, None));
        // Both ports, or HTTPS without `tls {}`, pass here (and `-t`), as in nats-server:
        // they are refused when the server starts.
        let both = options("http_port: 8222\nhttps_port: 8443\n");
        assert_eq!((both.http_port, both.https_port), (8222, 8443));
        assert_eq!(
            errors("https_port: \"abc\"\n"),
            [":1:0: interface conversion: interface {} is string, not int64"]
        );
        assert_eq!(
            errors("https_port: 70000\n"),
            [":1:0: port 70000 is out of range (1-65535, or -1 for a random port)"]
        );
    }

    #[test]
    fn values_natsring_cannot_run_with_are_refused() {
        assert_eq!(
            errors("port: 99999"),
            [":1:0: port 99999 is out of range (1-65535, or -1 for a random port)"]
        );
        assert!(errors("max_payload: -5")[0].contains("max_payload value can not be negative"));
        assert!(errors("max_pending: -1")[0].contains("max_pending value can not be negative"));
        assert!(errors("ping_interval: \"-1s\"")[0].contains("negative duration -1s"));
    }
}
