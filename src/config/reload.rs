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
//!
//! The cluster reloads as in nats-server: its listener (host and port) cannot move, start or
//! stop (`config reload not supported for cluster port: old=.., new=..`); everything else may
//! change (routes, credentials, permissions, name, pool size, pinned accounts, compression,
//! ping settings), announced as `Reloaded: cluster` and `Reloaded: cluster routes`; what the
//! route layer must then do is [`super::cluster_diff`].
//!
//! Client TLS reloads, as in nats-server (the new certificate, key, CA and verification apply
//! to connections accepted after the reload): `tls = enabled|disabled`, `tls timeout`,
//! `pinned_certs` and the handshake-first settings are announced in nats-server's words.
//! natsring also reloads `allow_non_tls` and `verify_and_map`, which nats-server refuses
//! (`AllowNonTLS`, `TLSMap`): each is read when a client connects.

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

/// Go's `%v` of a `[]string`.
fn list(values: &[String]) -> String {
    format!("[{}]", values.join(" "))
}

fn refused(field: &str, old: &str, new: &str) -> ReloadRefused {
    ReloadRefused(format!(
        "config reload not supported for {field}: old={old}, new={new}"
    ))
}

/// Why `new` cannot replace `old` while running, if it cannot. `new.port == 0` (a random port
/// asked for) is no change, as in nats-server.
///
/// Of authentication and accounts, as nats-server: users, nkeys, the single user, the token,
/// the timeout, accounts (their imports, exports, mappings) and the server's mappings may
/// change; `no_auth_user` may only be dropped together with its user; the system account, the
/// trusted keys and operators may not change, nor may a resolver come or go.
pub fn reload_refusal(old: &Options, new: &Options) -> Option<ReloadRefused> {
    let port = if new.port == 0 { old.port } else { new.port };
    let head: [(&str, String, String); 4] = [
        ("ServerName", text(&old.server_name), text(&new.server_name)),
        ("Host", old.host.clone(), new.host.clone()),
        ("Port", old.port.to_string(), port.to_string()),
        (
            "NoHeaderSupport",
            old.no_header_support.to_string(),
            new.no_header_support.to_string(),
        ),
    ];
    if let Some((field, old, new)) = head.into_iter().find(|(_, old, new)| old != new) {
        return Some(refused(field, &old, &new));
    }
    if let Some(refusal) = auth_refusal(old, new) {
        return Some(refusal);
    }
    // Monitoring keeps its listener: nats-server refuses these (its default case).
    let monitoring: [(&str, String, String); 4] = [
        (
            "HTTPHost",
            old.monitoring_host().to_string(),
            new.monitoring_host().to_string(),
        ),
        (
            "HTTPPort",
            old.http_port.to_string(),
            new.http_port.to_string(),
        ),
        (
            "HTTPBasePath",
            old.http_base_path.clone(),
            new.http_base_path.clone(),
        ),
        (
            "HTTPSPort",
            old.https_port.to_string(),
            new.https_port.to_string(),
        ),
    ];
    if let Some((field, old, new)) = monitoring.into_iter().find(|(_, old, new)| old != new) {
        return Some(refused(field, &old, &new));
    }
    if let Some(refusal) = super::cluster::reload_refusal(old, new) {
        return Some(ReloadRefused(refusal));
    }
    let tail: [(&str, String, String); 2] = [
        ("Shards", old.shards.to_string(), new.shards.to_string()),
        (
            "PinShards",
            old.pin_shards.to_string(),
            new.pin_shards.to_string(),
        ),
    ];
    if let Some((field, old, new)) = tail.into_iter().find(|(_, old, new)| old != new) {
        return Some(refused(field, &old, &new));
    }
    operator_refusal(old, new)
}

/// nats-server's rules for `NoAuthUser`, `SystemAccount` and `NoSystemAccount`, in its field
/// order.
fn auth_refusal(old: &Options, new: &Options) -> Option<ReloadRefused> {
    let old_no_auth = text(&old.auth.no_auth_user);
    let new_no_auth = text(&new.auth.no_auth_user);
    if old_no_auth != new_no_auth {
        // Dropping it is fine, unless its user is still there (then it would change who an
        // anonymous client is).
        let user_remains = new
            .auth
            .users
            .iter()
            .flatten()
            .any(|user| user.username == old_no_auth);
        if old_no_auth.is_empty() || !new_no_auth.is_empty() || user_remains {
            return Some(refused("NoAuthUser", &old_no_auth, &new_no_auth));
        }
    }
    // The running server's system account is `$SYS` when none was configured; a file that
    // names none keeps it.
    let old_system = old
        .system_account
        .as_deref()
        .unwrap_or(crate::account::SYSTEM_ACCOUNT_DEFAULT);
    let new_system = new.system_account.as_deref().unwrap_or_default();
    if old_system != new_system
        && !(old_system == crate::account::SYSTEM_ACCOUNT_DEFAULT && new_system.is_empty())
    {
        return Some(refused("SystemAccount", old_system, new_system));
    }
    if old.no_system_account != new.no_system_account {
        return Some(refused(
            "NoSystemAccount",
            &old.no_system_account.to_string(),
            &new.no_system_account.to_string(),
        ));
    }
    None
}

/// Trusted keys and operators cannot change; a resolver cannot come or go.
fn operator_refusal(old: &Options, new: &Options) -> Option<ReloadRefused> {
    // With operators, nats-server fills the trusted keys from them and compares the operators
    // instead.
    if old.operators.is_empty() && old.trusted_keys != new.trusted_keys {
        return Some(refused(
            "TrustedKeys",
            &list(&old.trusted_keys),
            &list(&new.trusted_keys),
        ));
    }
    if old.operators != new.operators {
        return Some(refused(
            "TrustedOperators",
            &list(&old.operators),
            &list(&new.operators),
        ));
    }
    if old.resolver.is_some() != new.resolver.is_some() {
        return Some(ReloadRefused(
            "config reload does not support moving to or from an account resolver".to_string(),
        ));
    }
    None
}

/// The notices of authentication changes, in nats-server's order and words (which name what
/// changed, never a secret).
fn auth_notices(old: &Options, new: &Options) -> Vec<String> {
    let timeout_seconds = |options: &Options| {
        options
            .auth
            .auth_timeout
            .unwrap_or(std::time::Duration::from_secs(2))
            .as_secs_f64()
    };
    let changes = [
        (
            old.auth.nkeys != new.auth.nkeys,
            "authorization nkey users".to_string(),
        ),
        (
            old.auth.users != new.auth.users,
            "authorization users".to_string(),
        ),
        (
            old.accounts != new.accounts || old.mappings != new.mappings,
            "accounts".to_string(),
        ),
        (
            old.auth.username != new.auth.username,
            "authorization username".to_string(),
        ),
        (
            old.auth.password != new.auth.password,
            "authorization password".to_string(),
        ),
        (
            old.auth.token != new.auth.token,
            "authorization token".to_string(),
        ),
        (
            timeout_seconds(old) != timeout_seconds(new),
            format!(
                "authorization timeout = {}",
                super::auth_file::go_float(timeout_seconds(new))
            ),
        ),
    ];
    changes
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, what)| format!("Reloaded: {what}"))
        .collect()
}

/// How one option's value is written in a notice.
type Shown = fn(&Options) -> String;

/// The notices of client TLS changes, in nats-server's order and words (`allow_non_tls`, which
/// nats-server does not reload, in natsring's).
fn tls_notices(old: &Options, new: &Options) -> Vec<String> {
    let timeout = |options: &Options| {
        options.tls.as_ref().map_or(
            std::time::Duration::from_millis(crate::limits::TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT),
            |tls| tls.timeout,
        )
    };
    // What nats-server's `tls.Config` holds: a change of any of it is `tls = ...`.
    let config = |options: &Options| {
        options.tls.clone().map(|tls| super::TlsOptions {
            timeout: std::time::Duration::ZERO,
            pinned_certs: Vec::new(),
            handshake_first: false,
            handshake_first_fallback: None,
            ..tls
        })
    };
    let pinned = |options: &Options| options.tls.as_ref().map_or(0, |tls| tls.pinned_certs.len());
    // No block and an empty list both pin nothing (nats-server's nil set).
    let pinned_certs = |options: &Options| {
        options
            .tls
            .as_ref()
            .map(|tls| tls.pinned_certs.clone())
            .unwrap_or_default()
    };
    let pinned_changed = pinned_certs(old) != pinned_certs(new);
    let handshake_first =
        |options: &Options| options.tls.as_ref().is_some_and(|tls| tls.handshake_first);
    let fallback = |options: &Options| {
        options
            .tls
            .as_ref()
            .and_then(|tls| tls.handshake_first_fallback)
            .unwrap_or_default()
    };
    let changes = [
        (
            timeout(old) != timeout(new),
            format!(
                "Reloaded: tls timeout = {}",
                super::auth_file::go_float(timeout(new).as_secs_f64())
            ),
        ),
        (
            config(old) != config(new),
            format!(
                "Reloaded: tls = {}",
                if new.tls.is_some() {
                    "enabled"
                } else {
                    "disabled"
                }
            ),
        ),
        (
            pinned_changed,
            format!("Reloaded: {} pinned_certs", pinned(new)),
        ),
        (
            handshake_first(old) != handshake_first(new),
            format!(
                "Reloaded: Client TLS handshake first: {}",
                handshake_first(new)
            ),
        ),
        (
            fallback(old) != fallback(new),
            format!(
                "Reloaded: Client TLS handshake first fallback delay: {}",
                format_std_duration(fallback(new))
            ),
        ),
        (
            old.allow_non_tls != new.allow_non_tls,
            format!("Reloaded: allow_non_tls = {}", new.allow_non_tls),
        ),
    ];
    changes
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, notice)| notice)
        .collect()
}

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
    // nats-server's authentication fields come right after `max_connections`.
    let (before_auth, after_auth) = shown.split_at(8);
    debug_assert_eq!(before_auth[7].0, "max_connections");
    let notice = |(key, show): &(&str, Shown)| {
        let value = show(new);
        (show(old) != value).then(|| {
            // nats-server words this one differently ("Reload:", not "Reloaded:").
            let verb = if *key == "client_advertise" {
                "Reload"
            } else {
                "Reloaded"
            };
            format!("{verb}: {key} = {value}")
        })
    };
    // And its TLS fields right before `write_deadline`.
    let (before_tls, after_tls) = after_auth.split_at(9);
    debug_assert_eq!(after_tls[0].0, "write_deadline");
    let mut notices: Vec<String> = before_auth.iter().filter_map(notice).collect();
    notices.extend(auth_notices(old, new));
    notices.extend(before_tls.iter().filter_map(notice));
    notices.extend(super::cluster::reload_notices(old, new));
    notices.extend(tls_notices(old, new));
    notices.extend(after_tls.iter().filter_map(notice));
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
        assert_eq!(
            refused(Options {
                https_port: 8443,
                ..old.clone()
            })
            .as_deref(),
            Some("config reload not supported for HTTPSPort: old=0, new=8443")
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

    #[test]
    fn tls_reloads_with_nats_server_notices() {
        use crate::config::TlsOptions;
        use std::time::Duration;
        let old = Options::default();
        let tls = TlsOptions::new("cert.pem".into(), "key.pem".into());
        let new = Options {
            tls: Some(tls.clone()),
            allow_non_tls: true,
            write_deadline: Duration::from_secs(3),
            ping_max: 5,
            ..old.clone()
        };
        assert_eq!(reload_refusal(&old, &new), None);
        assert_eq!(
            reload_notices(&old, &new),
            [
                "Reloaded: ping_max = 5",
                "Reloaded: tls = enabled",
                "Reloaded: allow_non_tls = true",
                "Reloaded: write_deadline = 3s",
            ]
        );
        let changed = Options {
            tls: Some(TlsOptions {
                timeout: Duration::from_millis(1500),
                pinned_certs: vec![[1; 32], [2; 32]],
                handshake_first: true,
                handshake_first_fallback: Some(Duration::from_millis(50)),
                ..tls.clone()
            }),
            ..new.clone()
        };
        assert_eq!(reload_refusal(&new, &changed), None);
        assert_eq!(
            reload_notices(&new, &changed),
            [
                "Reloaded: tls timeout = 1.5",
                "Reloaded: 2 pinned_certs",
                "Reloaded: Client TLS handshake first: true",
                "Reloaded: Client TLS handshake first fallback delay: 50ms",
            ]
        );
        let verified = Options {
            tls: Some(TlsOptions {
                verify: true,
                verify_and_map: true,
                ca_file: Some("ca.pem".into()),
                ..tls
            }),
            ..new.clone()
        };
        assert_eq!(reload_notices(&new, &verified), ["Reloaded: tls = enabled"]);
        assert_eq!(
            reload_notices(&new, &old),
            [
                "Reloaded: ping_max = 2",
                "Reloaded: tls = disabled",
                "Reloaded: allow_non_tls = false",
                "Reloaded: write_deadline = 10s",
            ]
        );
    }

    #[test]
    fn authentication_reloads_and_what_it_refuses() {
        use crate::auth::User;
        let user = |name: &str| User {
            username: name.into(),
            ..User::default()
        };
        let mut old = Options::default();
        old.auth.users = Some(vec![user("a"), user("b")]);
        old.auth.no_auth_user = Some("a".into());
        let refused = |new: &Options| reload_refusal(&old, new).map(|refused| refused.0);

        // Users, the token, accounts and mappings may change.
        let mut new = old.clone();
        new.auth.users = Some(vec![user("a"), user("c")]);
        new.auth.token = None;
        new.mappings.push(crate::account::Mapping {
            source: "x".into(),
            destinations: Vec::new(),
        });
        new.auth.auth_timeout = Some(std::time::Duration::from_millis(500));
        assert_eq!(refused(&new), None);
        assert_eq!(
            reload_notices(&old, &new),
            [
                "Reloaded: authorization users",
                "Reloaded: accounts",
                "Reloaded: authorization timeout = 0.5"
            ]
        );

        // no_auth_user: dropped with its user is fine; anything else is refused.
        let mut new = old.clone();
        new.auth.no_auth_user = None;
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for NoAuthUser: old=a, new=")
        );
        new.auth.users = Some(vec![user("b")]);
        assert_eq!(refused(&new), None);
        let mut new = old.clone();
        new.auth.no_auth_user = Some("b".into());
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for NoAuthUser: old=a, new=b")
        );

        // The system account: $SYS stays $SYS; anything else is refused.
        let mut new = old.clone();
        new.system_account = Some("$SYS".into());
        assert_eq!(refused(&new), None);
        new.system_account = Some("SYS".into());
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for SystemAccount: old=$SYS, new=SYS")
        );
        let mut new = old.clone();
        new.no_system_account = true;
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for NoSystemAccount: old=false, new=true")
        );

        // Operators, trusted keys and resolvers.
        let mut new = old.clone();
        new.trusted_keys = vec!["OKEY".into()];
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for TrustedKeys: old=[], new=[OKEY]")
        );
        let mut new = old.clone();
        new.operators = vec!["eyJ.a.b".into()];
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload not supported for TrustedOperators: old=[], new=[eyJ.a.b]")
        );
        let mut new = old.clone();
        new.resolver = Some(crate::config::Resolver::Memory);
        assert_eq!(
            refused(&new).as_deref(),
            Some("config reload does not support moving to or from an account resolver")
        );
    }
}
