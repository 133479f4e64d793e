//! What a reload may change, and what it says about it, as nats-server's `diffOptions`: an
//! option that cannot change while the server runs refuses the whole reload (nothing changes)
//! with `config reload not supported for <Field>: old=<v>, new=<v>`, `<Field>` being the Go
//! field's name; each option that did change is announced as `Reloaded: <key> = <value>`.
//!
//! natsring reloads a few options nats-server refuses (`max_pending`, `max_subscriptions`,
//! `max_sub_tokens`, `lame_duck_duration`, `lame_duck_grace_period`, `log_size_limit`,
//! `log_max_num`, `max_closed_clients`): each is read where it applies, so nothing stops it
//! from changing, and refusing would throw away the rest of an operator's edit. It refuses the
//! ones that shape what is already open: the listen address, the server's name, header support
//! (clients negotiated it), and its own shard layout.

use std::path::PathBuf;
use std::time::Duration;

use super::go::format_duration;
use super::Options;

/// A reload refused, with nats-server's wording; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefused(pub String);

impl std::fmt::Display for ReloadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReloadRefused {}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn path(value: &Option<PathBuf>) -> String {
    value
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_default()
}

fn duration(value: Duration) -> String {
    format_duration(value.as_nanos().min(i64::MAX as u128) as i64)
}

/// Why `new` cannot replace `old` while running, if it cannot. `new.port == 0` (a random port
/// asked for) is no change, as in nats-server.
pub fn reload_refusal(old: &Options, new: &Options) -> Option<ReloadRefused> {
    let port = if new.port == 0 { old.port } else { new.port };
    let fixed: [(&str, String, String); 6] = [
        ("ServerName", text(&old.server_name), text(&new.server_name)),
        ("Host", old.host.clone(), new.host.clone()),
        ("Port", old.port.to_string(), port.to_string()),
        (
            "NoHeaderSupport",
            old.no_header_support.to_string(),
            new.no_header_support.to_string(),
        ),
        ("Shards", old.shards.to_string(), new.shards.to_string()),
        (
            "PinShards",
            old.pin_shards.to_string(),
            new.pin_shards.to_string(),
        ),
    ];
    fixed
        .into_iter()
        .find(|(_, old, new)| old != new)
        .map(|(field, old, new)| {
            ReloadRefused(format!(
                "config reload not supported for {field}: old={old}, new={new}"
            ))
        })
}

/// The `Reloaded: <key> = <value>` lines for what differs between `old` and `new`, in
/// nats-server's words where it has them.
pub fn reload_notices(old: &Options, new: &Options) -> Vec<String> {
    let mut notices = Vec::new();
    let mut changed = |key: &str, old: String, new: String| {
        if old != new {
            // nats-server words this one differently ("Reload:", not "Reloaded:").
            let verb = if key == "client_advertise" {
                "Reload"
            } else {
                "Reloaded"
            };
            notices.push(format!("{verb}: {key} = {new}"));
        }
    };
    changed("trace", old.trace.to_string(), new.trace.to_string());
    changed("debug", old.debug.to_string(), new.debug.to_string());
    changed("logtime", old.logtime.to_string(), new.logtime.to_string());
    changed(
        "logtime_utc",
        old.logtime_utc.to_string(),
        new.logtime_utc.to_string(),
    );
    changed("log_file", path(&old.log_file), path(&new.log_file));
    changed(
        "log_size_limit",
        old.log_size_limit.to_string(),
        new.log_size_limit.to_string(),
    );
    changed(
        "log_max_num",
        old.log_max_num.to_string(),
        new.log_max_num.to_string(),
    );
    changed(
        "max_connections",
        old.max_connections.to_string(),
        new.max_connections.to_string(),
    );
    changed("pid_file", path(&old.pid_file), path(&new.pid_file));
    changed(
        "ports_file_dir",
        path(&old.ports_file_dir),
        path(&new.ports_file_dir),
    );
    changed(
        "max_control_line",
        old.max_control_line.to_string(),
        new.max_control_line.to_string(),
    );
    changed(
        "max_payload",
        old.max_payload.to_string(),
        new.max_payload.to_string(),
    );
    changed(
        "max_pending",
        old.max_pending.to_string(),
        new.max_pending.to_string(),
    );
    changed(
        "max_subscriptions",
        old.max_subscriptions.to_string(),
        new.max_subscriptions.to_string(),
    );
    changed(
        "max_sub_tokens",
        old.max_sub_tokens.to_string(),
        new.max_sub_tokens.to_string(),
    );
    changed(
        "ping_interval",
        duration(old.ping_interval),
        duration(new.ping_interval),
    );
    changed(
        "ping_max",
        old.ping_max.to_string(),
        new.ping_max.to_string(),
    );
    changed(
        "write_deadline",
        duration(old.write_deadline),
        duration(new.write_deadline),
    );
    changed(
        "client_advertise",
        text(&old.client_advertise),
        text(&new.client_advertise),
    );
    changed(
        "lame_duck_duration",
        duration(old.lame_duck_duration),
        duration(new.lame_duck_duration),
    );
    changed(
        "lame_duck_grace_period",
        duration(old.lame_duck_grace_period),
        duration(new.lame_duck_grace_period),
    );
    changed(
        "connect_error_reports",
        old.connect_error_reports.to_string(),
        new.connect_error_reports.to_string(),
    );
    changed(
        "reconnect_error_reports",
        old.reconnect_error_reports.to_string(),
        new.reconnect_error_reports.to_string(),
    );
    changed(
        "max_closed_clients",
        old.max_closed_clients.to_string(),
        new.max_closed_clients.to_string(),
    );
    changed(
        "busy_poll",
        old.busy_poll_micros.to_string(),
        new.busy_poll_micros.to_string(),
    );
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_options_refuse_in_nats_server_words() {
        let old = Options {
            host: "127.0.0.1".into(),
            port: 4556,
            ..Options::default()
        };
        let refused = |new: Options| reload_refusal(&old, &new).map(|refused| refused.0);
        assert_eq!(refused(old.clone()), None);
        assert_eq!(
            refused(Options {
                port: 4557,
                ..old.clone()
            })
            .as_deref(),
            Some("config reload not supported for Port: old=4556, new=4557")
        );
        assert_eq!(
            refused(Options {
                port: 0,
                ..old.clone()
            }),
            None,
            "random is no change"
        );
        assert_eq!(
            refused(Options {
                no_header_support: true,
                ..old.clone()
            })
            .as_deref(),
            Some("config reload not supported for NoHeaderSupport: old=false, new=true")
        );
        // The first field in nats-server's order is the one named.
        assert_eq!(
            refused(Options {
                host: "localhost".into(),
                server_name: Some("x".into()),
                ..old.clone()
            })
            .as_deref(),
            Some("config reload not supported for ServerName: old=, new=x")
        );
    }

    #[test]
    fn notices_name_what_changed() {
        let old = Options::default();
        let new = Options {
            max_payload: 1024,
            trace: true,
            ping_interval: Duration::from_secs(30),
            ..old.clone()
        };
        assert_eq!(
            reload_notices(&old, &new),
            [
                "Reloaded: trace = true",
                "Reloaded: max_payload = 1024",
                "Reloaded: ping_interval = 30s"
            ]
        );
        assert!(reload_notices(&old, &old).is_empty());
    }
}
