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

use super::go::format_std_duration;
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

/// How one option's value is written in a notice.
type Shown = fn(&Options) -> String;

/// The `Reloaded: <key> = <value>` lines for what differs between `old` and `new`, in
/// nats-server's words where it has them.
pub fn reload_notices(old: &Options, new: &Options) -> Vec<String> {
    // Each option a reload may change, in nats-server's order where it has one, and how its
    // value is written.
    let shown: [(&str, Shown); 25] = [
        ("trace", |o| o.trace.to_string()),
        ("debug", |o| o.debug.to_string()),
        ("logtime", |o| o.logtime.to_string()),
        ("logtime_utc", |o| o.logtime_utc.to_string()),
        ("log_file", |o| path(&o.log_file)),
        ("log_size_limit", |o| o.log_size_limit.to_string()),
        ("log_max_num", |o| o.log_max_num.to_string()),
        ("max_connections", |o| o.max_connections.to_string()),
        ("pid_file", |o| path(&o.pid_file)),
        ("ports_file_dir", |o| path(&o.ports_file_dir)),
        ("max_control_line", |o| o.max_control_line.to_string()),
        ("max_payload", |o| o.max_payload.to_string()),
        ("max_pending", |o| o.max_pending.to_string()),
        ("max_subscriptions", |o| o.max_subscriptions.to_string()),
        ("max_sub_tokens", |o| o.max_sub_tokens.to_string()),
        ("ping_interval", |o| format_std_duration(o.ping_interval)),
        ("ping_max", |o| o.ping_max.to_string()),
        ("write_deadline", |o| format_std_duration(o.write_deadline)),
        ("client_advertise", |o| text(&o.client_advertise)),
        ("lame_duck_duration", |o| {
            format_std_duration(o.lame_duck_duration)
        }),
        ("lame_duck_grace_period", |o| {
            format_std_duration(o.lame_duck_grace_period)
        }),
        ("connect_error_reports", |o| {
            o.connect_error_reports.to_string()
        }),
        ("reconnect_error_reports", |o| {
            o.reconnect_error_reports.to_string()
        }),
        ("max_closed_clients", |o| o.max_closed_clients.to_string()),
        ("busy_poll", |o| o.busy_poll_micros.to_string()),
    ];
    shown
        .into_iter()
        .filter_map(|(key, show)| {
            let value = show(new);
            (show(old) != value).then(|| {
                // nats-server words this one differently ("Reload:", not "Reloaded:").
                let verb = if key == "client_advertise" {
                    "Reload"
                } else {
                    "Reloaded"
                };
                format!("{verb}: {key} = {value}")
            })
        })
        .collect()
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
            ping_interval: std::time::Duration::from_secs(30),
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
