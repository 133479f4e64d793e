//! Cluster (route) options: the `cluster {}` block of a configuration file as nats-server's
//! `parseCluster` reads it, the cluster flags as its `ConfigureOptions` applies them
//! (`--cluster`/`--cluster_listen`, `--routes`, `--cluster_name`, `--cluster_advertise`,
//! `--no_advertise`, `--connect_retries`), the start-up checks of its `validateCluster`, and what
//! a reload may change (`validateClusterOpts`, `diffRoutes`).
//!
//! What it owns: [`ClusterOptions`] and its parts, and [`cluster_diff`], the changes a reload
//! asks the route layer to make. What it must not touch: sockets. No route is dialled or
//! accepted here; the runtime reads these options.
//!
//! nats-server walks the block in Go's random map order; natsring walks it in file order. As in
//! nats-server, a value of the wrong type ends the block (its recovered panic): the keys after
//! it are not read. Other errors are reported and the walk goes on.
//!
//! Where natsring refuses what nats-server takes, the value could not work: a port over 65535
//! (nats-server fails at listen), a route URL with no host or port to dial (nats-server takes it
//! and fails every connect). Where natsring refuses earlier than nats-server: a compression mode
//! nats-server checks only at start (`-t` passes it there) is refused while the file is read.

use std::time::Duration;

use super::auth_file::{self, Abandoned};
use super::conf::{Item, Value};
use super::file::{self, source, Report};
use super::go::{self, quote};
use super::{Options, TlsOptions};
use crate::auth::SubjectPermission;
use crate::limits;

/// The cluster a server belongs to (`cluster {}` and the cluster flags), as nats-server's
/// `ClusterOpts` (and its `Routes`) holds it.
///
/// [`Options::cluster`] is `Some` exactly when the file has a `cluster` block or a cluster flag
/// was given. Routes are accepted (and `routes` dialled) exactly when `port` is `Some`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// The cluster's name (`name`, `--cluster_name`); `None`: nats-server makes one up (and
    /// warns), and takes the first peer's.
    pub name: Option<String>,
    /// Where routes are accepted (`host`, `net`, `listen`, `--cluster`); an empty one is
    /// `0.0.0.0`, as nats-server.
    pub host: String,
    /// The route port (`port`, `listen`, `--cluster`): `None` when not given or 0 (nats-server
    /// then accepts no route and dials none); `Some(0)` a random port (`-1`).
    pub port: Option<u16>,
    /// The route URL advertised to peers (`advertise`, `cluster_advertise`,
    /// `--cluster_advertise`): `host` or `host:port`.
    pub advertise: Option<String>,
    /// Do not tell clients about the cluster's other servers (`no_advertise`,
    /// `--no_advertise`).
    pub no_advertise: bool,
    /// The routes to dial (`routes`, `--routes`), in order, without duplicates.
    pub routes: Vec<RouteUrl>,
    /// What peers must present (`authorization { user, password, timeout }`, or the user of a
    /// `--cluster nats://user:pass@host:port`); `Some` exactly when a user is given.
    pub authorization: Option<RouteAuthorization>,
    /// Which subjects' interest crosses routes (`permissions { import, export }`).
    pub permissions: Option<RoutePermissions>,
    /// TLS for routes, both ways (`tls {}`).
    pub tls: Option<TlsOptions>,
    /// Route connections per peer (`pool_size`): nats-server's 3 by default; a negative one
    /// means a single route and no pinned accounts.
    pub pool_size: i32,
    /// Accounts given a route of their own (`accounts`), as configured; see
    /// [`ClusterOptions::pinned_accounts`] for the list nats-server uses.
    pub accounts: Vec<String>,
    /// Route compression (`compression`); nats-server's default is `accept`.
    pub compression: Compression,
    /// Dial attempts for a route learned from a peer (implicit) before giving up
    /// (`connect_retries`, `--connect_retries`); 0: none after the first.
    pub connect_retries: u32,
    /// Back off between route dial attempts, up to a limit (`connect_backoff`).
    pub connect_backoff: bool,
    /// Interval between PINGs on routes (`ping_interval`); `None`: the server's
    /// `ping_interval`. Either is capped to `limits::ROUTE_PING_INTERVAL_MS_MAX`.
    pub ping_interval: Option<Duration>,
    /// PINGs outstanding before a route is stale (`ping_max`); `None`: the server's.
    pub ping_max: Option<u32>,
    /// How long a write to a route may make no progress (`write_deadline`); `None`: the
    /// server's `write_deadline`.
    pub write_deadline: Option<Duration>,
    /// What a write deadline does to a route (`write_timeout`).
    pub write_timeout: RouteWriteTimeout,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: None,
            host: limits::HOST_DEFAULT.to_string(),
            port: None,
            advertise: None,
            no_advertise: false,
            routes: Vec::new(),
            authorization: None,
            permissions: None,
            tls: None,
            pool_size: limits::ROUTE_POOL_SIZE_DEFAULT,
            accounts: Vec::new(),
            compression: Compression::Accept,
            connect_retries: 0,
            connect_backoff: false,
            ping_interval: None,
            ping_max: None,
            write_deadline: None,
            write_timeout: RouteWriteTimeout::Default,
        }
    }
}

impl ClusterOptions {
    /// The accounts with routes of their own, as nats-server's `setBaselineOptions` makes the
    /// list: `accounts`, then the system account (`system_account`, `$SYS` unless
    /// `no_system_account`) when it is not listed, the pool is on (`pool_size > 0`) and routes
    /// are accepted.
    pub fn pinned_accounts(&self, options: &Options) -> Vec<String> {
        let mut accounts = self.accounts.clone();
        if self.port.is_some() && self.pool_size > 0 {
            let system = match (&options.system_account, options.no_system_account) {
                (Some(name), _) => Some(name.as_str()),
                (None, false) => Some(crate::account::SYSTEM_ACCOUNT_DEFAULT),
                (None, true) => None,
            };
            if let Some(system) = system {
                if !accounts.iter().any(|account| account == system) {
                    accounts.push(system.to_string());
                }
            }
        }
        accounts
    }

    /// The interval between PINGs on a route: `ping_interval`, else the server's, capped as
    /// nats-server caps it.
    pub fn route_ping_interval(&self, options: &Options) -> Duration {
        self.ping_interval
            .unwrap_or(options.ping_interval)
            .min(Duration::from_millis(limits::ROUTE_PING_INTERVAL_MS_MAX))
    }
}

/// A route to dial (`routes`, `--routes`), as Go's `url.Parse` reads it, with a host and port
/// natsring can dial. Any scheme is taken (nats-server dials the host whatever the scheme:
/// `nats-route`, `nats`, `tls`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// As written (spaces around it trimmed); it may hold a password: log [`RouteUrl::redacted`].
    pub text: String,
    /// Lower-cased, as Go keeps it.
    pub scheme: String,
    /// The user to connect as (`nats-route://user:pass@host:port`), unescaped.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Go's parse of it, which decides whether two routes are the same (nats-server compares
    /// parsed URLs: `NATS://h:1` and `nats://h:1` are one route).
    parsed: go::Url,
}

impl RouteUrl {
    /// Parses a route as nats-server does (`parseURL`: spaces trimmed, Go's `url.Parse`), and
    /// checks natsring can dial it. The error is Go's text or natsring's refusal, without
    /// nats-server's `error parsing route url` prefix.
    pub fn parse(text: &str) -> Result<RouteUrl, String> {
        let text = text.trim();
        let parsed = go::parse_url(text)?;
        let no_target = || {
            format!(
                "{} has no host and port to dial (nats-server takes it and fails every connect)",
                quote(text)
            )
        };
        if parsed.host.is_empty() {
            return Err(no_target());
        }
        let (host, port) = go::split_host_port(&parsed.host).map_err(|_| no_target())?;
        if host.is_empty() || port.is_empty() {
            return Err(no_target());
        }
        let port = match port.parse::<u32>() {
            Ok(port @ 1..=65535) => port as u16,
            _ => {
                return Err(format!(
                    "{}: port {} is out of range (1-65535)",
                    quote(text),
                    quote(port)
                ))
            }
        };
        Ok(RouteUrl {
            text: text.to_string(),
            scheme: parsed.scheme.clone(),
            username: parsed.username.clone(),
            password: parsed.password.clone(),
            host: host.to_string(),
            port,
            parsed,
        })
    }

    /// Whether nats-server takes `self` and `other` for the same route (`urlsAreEqual`).
    pub fn same_route(&self, other: &RouteUrl) -> bool {
        self.parsed == other.parsed
    }

    /// The URL for logs: the password replaced by `xxxxx`, as Go's `URL.Redacted`.
    pub fn redacted(&self) -> String {
        if self.password.is_none() {
            return self.text.clone();
        }
        let user = self.username.as_deref().unwrap_or_default();
        let scheme = if self.scheme.is_empty() {
            String::new()
        } else {
            format!("{}:", self.scheme)
        };
        format!(
            "{scheme}//{user}:xxxxx@{}{}",
            self.parsed.host, self.parsed.rest
        )
    }
}

/// The credentials routes present and require (`cluster { authorization {} }`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAuthorization {
    /// Non-empty.
    pub user: String,
    pub password: String,
    /// How long a peer has to authenticate (`timeout`); nats-server's default is 2 s, or the
    /// cluster TLS handshake timeout plus 1 s with cluster TLS.
    pub timeout: Duration,
}

/// Which subjects' interest crosses routes: `import` is what this server asks peers for
/// (nats-server announces its interest in a subject only if it may import it), `export` what
/// peers may ask it for (a peer's `RS+` it may not export is dropped). Subjects only (no queue
/// groups). Applied by `cluster::permissions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePermissions {
    pub import: Option<SubjectPermission>,
    pub export: Option<SubjectPermission>,
}

/// Route compression modes, as nats-server names them (`off`, `accept`, `s2_auto`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Compression {
    /// `not supported` (`not_supported`): behave as a server without compression.
    NotSupported,
    /// `off` (`disabled`, `false`, or `compression: false`).
    Off,
    /// `accept`: compress only if the peer asks to (the default).
    Accept,
    /// `s2_auto` (`auto`): the level follows the round trip time; each threshold is where the
    /// next level starts (uncompressed, fast, better, best), at most 4, ascending, zero for a
    /// level not used.
    S2Auto { rtt_thresholds: Vec<Duration> },
    /// `s2_fast` (`fast`, `on`, `enabled`, `true`, or `compression: true`).
    S2Fast,
    /// `s2_better` (`better`).
    S2Better,
    /// `s2_best` (`best`).
    S2Best,
}

impl Compression {
    /// nats-server's name of the mode (`CompressionS2Fast` is `s2_fast`).
    pub fn mode_name(&self) -> &'static str {
        match self {
            Compression::NotSupported => "not supported",
            Compression::Off => "off",
            Compression::Accept => "accept",
            Compression::S2Auto { .. } => "s2_auto",
            Compression::S2Fast => "s2_fast",
            Compression::S2Better => "s2_better",
            Compression::S2Best => "s2_best",
        }
    }
}

/// nats-server's `defaultCompressionS2AutoRTTThresholds`.
const S2_AUTO_RTT_THRESHOLDS_MS: [u64; 3] = [10, 50, 100];

/// What a route's write deadline does (`write_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteWriteTimeout {
    /// Not given, or `default`: for routes, retry (`/varz` shows it as nothing).
    Default,
    /// Keep the route and retry (`retry`).
    Retry,
    /// Close the route (`close`).
    Close,
}

impl RouteWriteTimeout {
    /// nats-server's `WriteTimeoutPolicy.String()` (`/varz`): empty for the default.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteWriteTimeout::Default => "",
            RouteWriteTimeout::Retry => "retry",
            RouteWriteTimeout::Close => "close",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file.
// ---------------------------------------------------------------------------------------------

/// Whether the walk of the block goes on after a key.
enum Walk {
    Next,
    /// A wrong type: nats-server's recovered panic ends the block.
    Stop,
}

/// `cluster { ... }`: sets [`Options::cluster`].
pub(super) fn parse_block(options: &mut Options, item: &Item, report: &mut Report) {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            format!(
                "Expected map to define cluster, got {}",
                item.value.go_type_name()
            ),
        );
        return;
    };
    let mut cluster = ClusterOptions::default();
    let mut auth_timeout = None;
    for (key, entry) in map.iter() {
        if let Walk::Stop = apply_key(&mut cluster, &mut auth_timeout, key, entry, report) {
            break;
        }
    }
    if let Some(authorization) = &mut cluster.authorization {
        authorization.timeout =
            auth_timeout.unwrap_or_else(|| default_auth_timeout(cluster.tls.as_ref()));
    }
    options.cluster = Some(cluster);
}

/// nats-server's `getDefaultAuthTimeout` for routes.
fn default_auth_timeout(tls: Option<&TlsOptions>) -> Duration {
    match tls {
        Some(tls) => tls.timeout + Duration::from_secs(1),
        None => Duration::from_millis(limits::AUTH_TIMEOUT_MS_DEFAULT),
    }
}

fn apply_key(
    cluster: &mut ClusterOptions,
    auth_timeout: &mut Option<Duration>,
    key: &str,
    item: &Item,
    report: &mut Report,
) -> Walk {
    // A wrong type stops the walk; `?` on these reads it.
    let text = |report: &mut Report| file::string(item, report).map(str::to_string);
    let integer = |report: &mut Report| file::integer(item, report);
    let boolean = |report: &mut Report| match item.value {
        Value::Bool(value) => Some(value),
        _ => {
            report.wrong_type(item, "bool");
            None
        }
    };
    let walk = |read: Option<()>| match read {
        Some(()) => Walk::Next,
        None => Walk::Stop,
    };
    match key.to_lowercase().as_str() {
        "name" => walk(text(report).map(|name| {
            if name.contains(' ') {
                report.error(item, "cluster name cannot contain spaces");
            } else {
                cluster.name = (!name.is_empty()).then_some(name);
            }
        })),
        "listen" => {
            if let Some((host, port)) = file::listen(item, report) {
                cluster.host = host;
                if let Some(port) = route_port(item, port, report) {
                    cluster.port = port;
                }
            }
            Walk::Next
        }
        "port" => walk(integer(report).map(|port| {
            if let Some(port) = route_port(item, port, report) {
                cluster.port = port;
            }
        })),
        "host" | "net" => walk(text(report).map(|host| {
            cluster.host = if host.is_empty() {
                limits::HOST_DEFAULT.to_string()
            } else {
                host
            };
        })),
        "authorization" => authorization(cluster, auth_timeout, item, report),
        "routes" => {
            let Value::Array(entries) = &item.value else {
                report.wrong_type(item, "[]interface {}");
                return Walk::Stop;
            };
            match routes(entries, report) {
                Some(Some(routes)) => cluster.routes = routes,
                Some(None) => {}
                None => return Walk::Stop,
            }
            Walk::Next
        }
        "tls" => {
            if let Some(tls) = super::tls::parse_block(item, report) {
                // Both sides of a route's TLS, checked now as nats-server's `getTLSConfig`
                // builds them while it parses (`-t` reports a missing `ca_file`).
                if tls.verify_and_map {
                    // nats-server authorizes routes by their certificate with it; natsring
                    // does not yet, and says so rather than ignore it.
                    report.error(
                        item,
                        "verify_and_map in the cluster's tls block is not supported by natsring yet",
                    );
                    return Walk::Next;
                }
                match crate::tls::load_route(&tls) {
                    Ok(_) => cluster.tls = Some(tls),
                    Err(error) => report.error(item, error),
                }
            }
            Walk::Next
        }
        "cluster_advertise" | "advertise" => walk(text(report).map(|advertise| {
            cluster.advertise = (!advertise.is_empty()).then_some(advertise);
        })),
        "no_advertise" => walk(boolean(report).map(|on| cluster.no_advertise = on)),
        "connect_retries" => walk(integer(report).map(|retries| {
            // nats-server: zero or less, no retries.
            cluster.connect_retries = retries.clamp(0, i64::from(u32::MAX)) as u32;
        })),
        "connect_backoff" => walk(boolean(report).map(|on| cluster.connect_backoff = on)),
        "permissions" => {
            if let Some(permissions) = auth_file::parse_permissions(item, report) {
                if permissions.response.is_some() {
                    report.error(item, "Cluster permissions do not support dynamic responses");
                } else {
                    let permissions = RoutePermissions {
                        import: permissions.publish,
                        export: permissions.subscribe,
                    };
                    match check_permission_subjects(&permissions) {
                        Err(error) => report.error(item, error),
                        // Over any the authorization block gave.
                        Ok(()) => cluster.permissions = Some(permissions),
                    }
                }
            }
            Walk::Next
        }
        "pool_size" => walk(integer(report).map(|size| {
            cluster.pool_size = match size {
                0 => limits::ROUTE_POOL_SIZE_DEFAULT,
                size => size.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            };
        })),
        "accounts" => {
            if let Some(accounts) = string_array("accounts", item, report) {
                cluster.accounts = accounts;
            }
            Walk::Next
        }
        "compression" => {
            if let Some(compression) = compression(key, item, report) {
                cluster.compression = compression;
            }
            Walk::Next
        }
        "ping_interval" => {
            if !matches!(item.value, Value::String(_) | Value::Integer(_)) {
                report.wrong_type(item, "int64");
                return Walk::Stop;
            }
            if let Some(interval) = file::duration_or_seconds("ping_interval", item, report) {
                let max = Duration::from_millis(limits::ROUTE_PING_INTERVAL_MS_MAX);
                if interval > max {
                    report.warnings.push(format!(
                        "{}: Cluster 'ping_interval' will reset to {} which is the max for routes",
                        source(item),
                        go::format_std_duration(max)
                    ));
                }
                cluster.ping_interval = (!interval.is_zero()).then_some(interval);
            }
            Walk::Next
        }
        "ping_max" => walk(integer(report).map(|count| {
            // nats-server: zero or less, the server's.
            cluster.ping_max = (count > 0).then(|| count.min(i64::from(u32::MAX)) as u32);
        })),
        "write_deadline" => {
            if !matches!(item.value, Value::String(_) | Value::Integer(_)) {
                report.wrong_type(item, "int64");
                return Walk::Stop;
            }
            if let Some(deadline) = file::duration_or_seconds("write_deadline", item, report) {
                cluster.write_deadline = (!deadline.is_zero()).then_some(deadline);
            }
            Walk::Next
        }
        "write_timeout" => walk(text(report).map(|policy| match policy.as_str() {
            "default" => cluster.write_timeout = RouteWriteTimeout::Default,
            "retry" => cluster.write_timeout = RouteWriteTimeout::Retry,
            "close" => cluster.write_timeout = RouteWriteTimeout::Close,
            _ => report.error(item, "write_timeout must be 'default', 'close' or 'retry'"),
        })),
        _ => {
            auth_file::unknown_field(item, key, report);
            Walk::Next
        }
    }
}

/// A route port as nats-server reads it: -1 is a random port (`Some(0)`), 0 none. `None` after
/// reporting a port natsring cannot listen on.
fn route_port(item: &Item, port: i64, report: &mut Report) -> Option<Option<u16>> {
    match port {
        -1 => Some(Some(0)),
        0 => Some(None),
        1..=65535 => Some(Some(port as u16)),
        _ => {
            report.error(
                item,
                format!("port {port} is out of range (1-65535, or -1 for a random port)"),
            );
            None
        }
    }
}

/// `cluster { authorization {} }`: one user, no token.
fn authorization(
    cluster: &mut ClusterOptions,
    auth_timeout: &mut Option<Duration>,
    item: &Item,
    report: &mut Report,
) -> Walk {
    let block = match auth_file::parse_authorization(item, report) {
        Ok(block) => block,
        Err(Abandoned::Refused) => return Walk::Next,
        Err(Abandoned::Panicked) => {
            // nats-server then dereferences the missing block, which ends the cluster block.
            report.error(item, auth_file::NIL_DEREFERENCE);
            return Walk::Stop;
        }
    };
    if block.users.is_some() {
        report.error(item, "Cluster authorization does not allow multiple users");
        return Walk::Next;
    }
    if !block.token.is_empty() {
        report.error(item, "Cluster authorization does not support tokens");
        return Walk::Next;
    }
    cluster.authorization = (!block.user.is_empty()).then_some(RouteAuthorization {
        user: block.user,
        password: block.password,
        // Set once the block is read (the default depends on `tls`).
        timeout: Duration::ZERO,
    });
    *auth_timeout = block.timeout;
    if let Some(permissions) = block.default_permissions {
        let permissions = RoutePermissions {
            import: permissions.publish,
            export: permissions.subscribe,
        };
        if let Err(error) = check_permission_subjects(&permissions) {
            report.error(item, error);
            return Walk::Next;
        }
        report.warnings.push(format!(
            "{}: invalid use of field \"authorization\": setting \"permissions\" within cluster authorization block is deprecated",
            source(item)
        ));
        // The cluster's own `permissions` win, whichever comes first.
        cluster.permissions.get_or_insert(permissions);
    }
    Walk::Next
}

/// nats-server's `checkClusterPermissionSubjects`: subjects only, no queue groups.
fn check_permission_subjects(permissions: &RoutePermissions) -> Result<(), String> {
    for (name, permission) in [
        ("import", &permissions.import),
        ("export", &permissions.export),
    ] {
        let Some(permission) = permission else {
            continue;
        };
        for (list_name, list) in [("allow", &permission.allow), ("deny", &permission.deny)] {
            if let Some(subjects) = list {
                auth_file::check_permission_subjects(subjects, false)
                    .map_err(|error| format!("cluster {name} {list_name}: {error}"))?;
            }
        }
    }
    Ok(())
}

/// nats-server's `parseURLs` for routes: `Some(None)` when an entry is refused (the list is
/// then not used), `None` on a wrong type (which ends the block).
fn routes(entries: &[Item], report: &mut Report) -> Option<Option<Vec<RouteUrl>>> {
    let mut routes: Vec<RouteUrl> = Vec::with_capacity(entries.len());
    let mut seen: Vec<&str> = Vec::with_capacity(entries.len());
    let mut refused = false;
    for entry in entries {
        let Value::String(text) = &entry.value else {
            report.wrong_type(entry, "string");
            return None;
        };
        if seen.contains(&text.as_str()) {
            report.warnings.push(format!(
                "{}: invalid use of field {}: Duplicate route entry detected",
                source(entry),
                quote(text)
            ));
            continue;
        }
        seen.push(text);
        match RouteUrl::parse(text) {
            Ok(route) => routes.push(route),
            Err(error) => {
                refused = true;
                report.error(entry, route_error(text, &error));
            }
        }
    }
    Some((!refused).then_some(routes))
}

/// nats-server's `error parsing route url ["..."]`, with natsring's reason when nats-server
/// would have taken the URL.
fn route_error(text: &str, error: &str) -> String {
    let prefix = format!("error parsing route url [{}]", quote(text.trim()));
    if error.starts_with("parse ") {
        // Go's: nats-server says no more.
        prefix
    } else {
        format!("{prefix}: {error}")
    }
}

/// nats-server's `parseStringArray`: a string or a list of strings.
fn string_array(field: &str, item: &Item, report: &mut Report) -> Option<Vec<String>> {
    match &item.value {
        Value::String(text) => Some(vec![text.clone()]),
        Value::Array(entries) => Some(
            entries
                .iter()
                .filter_map(|entry| match &entry.value {
                    Value::String(text) => Some(text.clone()),
                    other => {
                        report.error(
                            entry,
                            format!(
                                "error parsing {field}: unsupported type in array {}",
                                other.go_type_name()
                            ),
                        );
                        None
                    }
                })
                .collect(),
        ),
        other => {
            report.error(
                item,
                format!(
                    "error parsing {field}: unsupported type {}",
                    other.go_type_name()
                ),
            );
            None
        }
    }
}

/// `compression`: a mode, a boolean, or `{ mode, rtt_thresholds }`, read as nats-server's
/// `parseCompression` reads it and checked as its `validateAndNormalizeCompressionOption`
/// checks it at start.
fn compression(key: &str, item: &Item, report: &mut Report) -> Option<Compression> {
    let (mode, thresholds) = match &item.value {
        Value::Bool(true) => return Some(Compression::S2Fast),
        Value::Bool(false) => return Some(Compression::Off),
        Value::String(mode) => (mode.clone(), Vec::new()),
        Value::Map(map) => {
            let mut mode = String::new();
            let mut thresholds = Vec::new();
            for (field, entry) in map.iter() {
                match field.to_lowercase().as_str() {
                    "mode" => mode = file::string(entry, report)?.to_string(),
                    "rtt_thresholds" | "thresholds" | "rtts" | "rtt" => {
                        let Value::Array(values) = &entry.value else {
                            report.wrong_type(entry, "[]interface {}");
                            return None;
                        };
                        for value in values {
                            let text = file::string(value, report)?;
                            match go::parse_duration(text) {
                                // nats-server: a negative threshold is 0.
                                Ok(nanos) => thresholds.push(nanos.max(0)),
                                Err(error) => {
                                    report.error(entry, error);
                                    return None;
                                }
                            }
                        }
                    }
                    _ => {
                        if !entry.used_variable {
                            report.error(entry, format!("unknown field {}", quote(field)));
                            return None;
                        }
                    }
                }
            }
            (mode, thresholds)
        }
        other => {
            report.error(
                item,
                format!(
                    "field {} should be a boolean or a structure, got {}",
                    quote(key),
                    other.go_type_name()
                ),
            );
            return None;
        }
    };
    match compression_mode(&mode, &thresholds) {
        Ok(compression) => Some(compression),
        Err(error) => {
            report.error(item, error);
            None
        }
    }
}

/// nats-server's `validateAndNormalizeCompressionOption` for routes (`on` is `s2_fast`); an
/// empty mode is the default, `accept`.
fn compression_mode(mode: &str, thresholds_nanos: &[i64]) -> Result<Compression, String> {
    let lower = mode.to_lowercase();
    Ok(match lower.as_str() {
        "" | "accept" => Compression::Accept,
        "not supported" | "not_supported" => Compression::NotSupported,
        "disabled" | "off" | "false" => Compression::Off,
        "on" | "enabled" | "true" | "fast" | "s2_fast" => Compression::S2Fast,
        "better" | "s2_better" => Compression::S2Better,
        "best" | "s2_best" => Compression::S2Best,
        "auto" | "s2_auto" => Compression::S2Auto {
            rtt_thresholds: s2_auto_thresholds(mode, thresholds_nanos)?,
        },
        _ => return Err(format!("unsupported compression mode {}", quote(mode))),
    })
}

/// The `s2_auto` thresholds: the default ones when none are given; else ascending (zeros
/// allowed anywhere), trailing zeros dropped, 1 to 4 left.
fn s2_auto_thresholds(mode: &str, given_nanos: &[i64]) -> Result<Vec<Duration>, String> {
    if given_nanos.is_empty() {
        return Ok(S2_AUTO_RTT_THRESHOLDS_MS
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect());
    }
    let shown = || {
        let all: Vec<String> = given_nanos
            .iter()
            .map(|n| go::format_duration(*n))
            .collect();
        format!("[{}]", all.join(" "))
    };
    let mut thresholds: Vec<i64> = Vec::with_capacity(given_nanos.len());
    for &nanos in given_nanos {
        if nanos != 0 && thresholds.iter().any(|&earlier| nanos < earlier) {
            return Err(format!(
                "RTT threshold values {} should be in ascending order",
                shown()
            ));
        }
        thresholds.push(nanos);
    }
    while thresholds.last() == Some(&0) {
        thresholds.pop();
    }
    if thresholds.len() > 4 {
        return Err(format!(
            "compression mode {} should have no more than 4 RTT thresholds: {}",
            quote(mode),
            shown()
        ));
    }
    if thresholds.is_empty() {
        return Err(format!(
            "compression mode {} requires at least one RTT threshold",
            quote(mode)
        ));
    }
    Ok(thresholds
        .into_iter()
        .map(|nanos| Duration::from_nanos(nanos as u64))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The flags.
// ---------------------------------------------------------------------------------------------

/// `--cluster <url>` (`--cluster_listen`), as nats-server's `overrideCluster`: the URL's host
/// and port (`-1` a random one, 0 none) replace the file's, and its user and password replace
/// the file's route credentials (no user clears them). An empty URL turns route listening off.
/// The error is nats-server's (Go's URL and address texts).
pub(super) fn apply_listen_flag(options: &mut Options, url: &str) -> Result<(), String> {
    let cluster = options.cluster.get_or_insert_with(ClusterOptions::default);
    if url.is_empty() {
        cluster.port = None;
        return Ok(());
    }
    // Go's URL parser refuses `:-1`: nats-server parses `:0` and asks for a random port after.
    let (url, random) = match url.strip_suffix(":-1") {
        Some(head) => (format!("{head}:0"), true),
        None => (url.to_string(), false),
    };
    let parsed = go::parse_url(&url)?;
    let (host, port) = go::split_host_port(&parsed.host)?;
    let port: Option<u16> = if random {
        Some(0)
    } else {
        match port.parse::<i64>() {
            Ok(0) => None,
            Ok(port @ 1..=65535) => Some(port as u16),
            Ok(port) => {
                return Err(format!(
                    "cluster port {port} is out of range (1-65535, or -1 for a random port)"
                ))
            }
            // fmt.Sscan of an empty port.
            Err(_) => return Err("EOF".to_string()),
        }
    };
    cluster.host = if host.is_empty() {
        limits::HOST_DEFAULT.to_string()
    } else {
        host.to_string()
    };
    cluster.port = port;
    let timeout = cluster
        .authorization
        .as_ref()
        .map(|authorization| authorization.timeout);
    cluster.authorization = match (parsed.username, parsed.password) {
        (Some(_), None) => return Err("expected cluster password to be set".to_string()),
        (Some(user), Some(password)) if !user.is_empty() => Some(RouteAuthorization {
            user,
            password,
            timeout: timeout.unwrap_or_else(|| default_auth_timeout(cluster.tls.as_ref())),
        }),
        _ => None,
    };
    Ok(())
}

/// `--routes <url,url,...>`, as nats-server's `RoutesFromStr`: they replace the file's; an
/// empty list clears them. nats-server keeps a URL it cannot parse (and crashes on it later):
/// natsring refuses it with Go's text.
pub(super) fn apply_routes_flag(options: &mut Options, list: &str) -> Result<(), String> {
    let routes = if list.is_empty() {
        Vec::new()
    } else {
        list.split(',')
            .map(RouteUrl::parse)
            .collect::<Result<Vec<_>, _>>()?
    };
    if !routes.is_empty() && options.cluster.as_ref().is_none_or(|c| c.port.is_none()) {
        return Err("solicited routes require cluster capabilities, e.g. --cluster".to_string());
    }
    options
        .cluster
        .get_or_insert_with(ClusterOptions::default)
        .routes = routes;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Start-up checks and reloads.
// ---------------------------------------------------------------------------------------------

/// nats-server's `validateCluster` (and the route INFO check of its start), with natsring's
/// own check that the route and client listeners do not collide.
pub(super) fn validate(options: &Options) -> Result<(), String> {
    let Some(cluster) = &options.cluster else {
        return Ok(());
    };
    if cluster
        .name
        .as_deref()
        .is_some_and(|name| name.contains(' '))
    {
        return Err("cluster name cannot contain spaces".to_string());
    }
    if let Some(permissions) = &cluster.permissions {
        check_permission_subjects(permissions)?;
    }
    let pinned = cluster.pinned_accounts(options);
    if !pinned.is_empty() {
        if cluster.pool_size < 0 {
            return Err(
                "pool_size cannot be negative if pinned accounts are specified".to_string(),
            );
        }
        for (index, account) in pinned.iter().enumerate() {
            if pinned[..index].contains(account) {
                let all: Vec<String> = pinned.iter().map(|name| quote(name)).collect();
                return Err(format!(
                    "found duplicate account name {} in pinned accounts list [{}]",
                    quote(account),
                    all.join(" ")
                ));
            }
        }
    }
    if let Some(port) = cluster.port {
        if let Some(advertise) = &cluster.advertise {
            if let Err(error) = go::parse_host_port(advertise, port) {
                return Err(format!(
                    "Error setting route INFO with Cluster.Advertise value of {advertise}, err={error}"
                ));
            }
        }
        let overlap = |a: &str, b: &str| a == b || is_unspecified(a) || is_unspecified(b);
        if port != 0 && port == options.port && overlap(&cluster.host, &options.host) {
            return Err(format!(
                "cluster port {port} is the client port (nats-server fails to listen: address already in use)"
            ));
        }
    }
    Ok(())
}

fn is_unspecified(host: &str) -> bool {
    matches!(host, "" | "0.0.0.0" | "::" | "[::]")
}

/// What the route layer listens on, as a reload compares it: nothing (`("", 0)`) without a
/// route port.
fn listen(options: &Options) -> (&str, u16) {
    match &options.cluster {
        Some(ClusterOptions {
            host,
            port: Some(port),
            ..
        }) => (host, *port),
        _ => ("", 0),
    }
}

/// nats-server's `validateClusterOpts`: the route listener cannot move (nor start or stop);
/// a new `advertise` must parse. A random port asked for again (`-1`) is no change.
pub(super) fn reload_refusal(old: &Options, new: &Options) -> Option<String> {
    let (old_host, old_port) = listen(old);
    let (new_host, mut new_port) = listen(new);
    if new_port == 0 && new.cluster.as_ref().is_some_and(|c| c.port == Some(0)) {
        new_port = old_port;
    }
    if old_host != new_host {
        return Some(format!(
            "config reload not supported for cluster host: old={old_host}, new={new_host}"
        ));
    }
    if old_port != new_port {
        return Some(format!(
            "config reload not supported for cluster port: old={old_port}, new={new_port}"
        ));
    }
    let advertise = new.cluster.as_ref().and_then(|c| c.advertise.as_deref())?;
    go::parse_host_port(advertise, 0)
        .err()
        .map(|error| format!("invalid Cluster.Advertise value of {advertise}, err={error}"))
}

/// nats-server's notices: `Reloaded: cluster` when anything of the cluster but its routes
/// changed, `Reloaded: cluster routes` when the routes did.
pub(super) fn reload_notices(old: &Options, new: &Options) -> Vec<String> {
    let without_routes = |options: &Options| {
        options.cluster.clone().map(|cluster| ClusterOptions {
            routes: Vec::new(),
            ..cluster
        })
    };
    let diff = cluster_diff(old, new);
    let mut notices = Vec::new();
    if without_routes(old) != without_routes(new) {
        notices.push("Reloaded: cluster".to_string());
    }
    if !diff.routes_added.is_empty() || !diff.routes_removed.is_empty() {
        notices.push("Reloaded: cluster routes".to_string());
    }
    notices
}

/// What a reload from `old` to `new` asks of the route layer (which applies it after
/// [`super::reload_refusal`] let the reload through), as nats-server's `diffRoutes` and
/// `clusterOption` compute it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterDiff {
    /// Routes to dial now (in `new`, not in `old`), in `new`'s order.
    pub routes_added: Vec<RouteUrl>,
    /// Routes to close, without reconnecting (in `old`, not in `new`), in `old`'s order.
    pub routes_removed: Vec<RouteUrl>,
    /// Pinned accounts ([`ClusterOptions::pinned_accounts`]) added: their routes are dialled.
    pub accounts_added: Vec<String>,
    /// Pinned accounts removed (with the system account when the pool was turned off).
    pub accounts_removed: Vec<String>,
    /// `pool_size` changed: the pooled routes are redone.
    pub pool_size_changed: bool,
    /// `compression` changed: each route changes its level, or is closed to negotiate again
    /// (from or to `off`, or to `accept`).
    pub compression_changed: bool,
    /// `permissions` changed: the interest sent to and accepted from peers is redone.
    pub permissions_changed: bool,
    /// The new name, when it changed to a non-empty one (nats-server takes the new name).
    pub name_changed: Option<String>,
}

/// The changes from `old` to `new` the route layer applies on a reload. Without a cluster on
/// either side, everything there is counts as added or removed.
pub fn cluster_diff(old: &Options, new: &Options) -> ClusterDiff {
    let empty = ClusterOptions::default();
    let old_cluster = old.cluster.as_ref().unwrap_or(&empty);
    let new_cluster = new.cluster.as_ref().unwrap_or(&empty);
    let missing_from = |routes: &[RouteUrl], from: &[RouteUrl]| -> Vec<RouteUrl> {
        routes
            .iter()
            .filter(|route| !from.iter().any(|other| other.same_route(route)))
            .cloned()
            .collect()
    };
    let old_accounts = old_cluster.pinned_accounts(old);
    let new_accounts = new_cluster.pinned_accounts(new);
    let mut accounts_removed: Vec<String> = old_accounts
        .iter()
        .filter(|account| !new_accounts.contains(account))
        .cloned()
        .collect();
    // nats-server: turning the pool off drops the system account's routes too.
    if new_cluster.pool_size < 0 && old_cluster.pool_size >= 0 {
        let system = old
            .system_account
            .clone()
            .unwrap_or_else(|| crate::account::SYSTEM_ACCOUNT_DEFAULT.to_string());
        if !old.no_system_account && !accounts_removed.contains(&system) {
            accounts_removed.push(system);
        }
    }
    ClusterDiff {
        routes_added: missing_from(&new_cluster.routes, &old_cluster.routes),
        routes_removed: missing_from(&old_cluster.routes, &new_cluster.routes),
        accounts_added: new_accounts
            .iter()
            .filter(|account| !old_accounts.contains(account))
            .cloned()
            .collect(),
        accounts_removed,
        pool_size_changed: old_cluster.pool_size != new_cluster.pool_size,
        compression_changed: old_cluster.compression != new_cluster.compression,
        permissions_changed: old_cluster.permissions != new_cluster.permissions,
        name_changed: new_cluster
            .name
            .clone()
            .filter(|name| old_cluster.name.as_ref() != Some(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_args, Command};

    /// Applies `text` as a configuration file over the defaults: the options and warnings, or
    /// the error lines without the file's path.
    fn load(text: &str) -> Result<(Options, Vec<String>), Vec<String>> {
        let dir = std::env::temp_dir().join(format!(
            "natsring-cluster-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test.conf");
        std::fs::write(&path, text).unwrap();
        let mut options = Options::default();
        let result = super::super::file::apply_file(&mut options, &path);
        std::fs::remove_dir_all(&dir).unwrap();
        let strip = |line: &str| {
            line.split_once("test.conf")
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_else(|| line.to_string())
        };
        match result {
            Ok(warnings) => Ok((options, warnings.iter().map(|w| strip(w)).collect())),
            Err(all) => Err(all.lines().map(strip).collect()),
        }
    }

    fn cluster(text: &str) -> ClusterOptions {
        let (options, warnings) = load(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        options.cluster.unwrap()
    }

    fn errors(text: &str) -> Vec<String> {
        load(text).unwrap_err()
    }

    fn warnings(text: &str) -> Vec<String> {
        load(text).unwrap().1
    }

    fn route(text: &str) -> RouteUrl {
        RouteUrl::parse(text).unwrap()
    }

    /// The options of a command line (`$DIR` is `dir`).
    fn run(args: &[&str]) -> Result<Options, String> {
        match parse_args(args.iter().map(|arg| arg.to_string())) {
            Ok(Command::Run(invocation)) => invocation.options().map_err(|error| error.0),
            Ok(other) => panic!("{args:?} gave {other:?}"),
            Err(error) => Err(error.0),
        }
    }

    #[test]
    fn every_key_and_alias() {
        let cluster = cluster(
            r#"
            cluster {
              name: n1
              listen: "127.0.0.1:6222"
              advertise: "public:7222"
              no_advertise: true
              connect_retries: 3
              connect_backoff: true
              pool_size: 5
              accounts: [A, B]
              compression: s2_best
              ping_interval: "5s"
              ping_max: 4
              write_deadline: "3s"
              write_timeout: close
              routes: ["nats-route://u:p@h1:6222", " nats://h2:6223 "]
              authorization { user: ru, password: rp, timeout: 3 }
              permissions { import: { allow: "a.>" }, export: { deny: ["b"] } }
            }
            "#,
        );
        assert_eq!(cluster.name.as_deref(), Some("n1"));
        assert_eq!(
            (cluster.host.as_str(), cluster.port),
            ("127.0.0.1", Some(6222))
        );
        assert_eq!(cluster.advertise.as_deref(), Some("public:7222"));
        assert!(cluster.no_advertise && cluster.connect_backoff);
        assert_eq!(cluster.connect_retries, 3);
        assert_eq!(cluster.pool_size, 5);
        assert_eq!(cluster.accounts, ["A", "B"]);
        assert_eq!(cluster.compression, Compression::S2Best);
        assert_eq!(cluster.ping_interval, Some(Duration::from_secs(5)));
        assert_eq!(cluster.ping_max, Some(4));
        assert_eq!(cluster.write_deadline, Some(Duration::from_secs(3)));
        assert_eq!(cluster.write_timeout, RouteWriteTimeout::Close);
        assert_eq!(cluster.routes.len(), 2);
        let first = &cluster.routes[0];
        assert_eq!(first.text, "nats-route://u:p@h1:6222");
        assert_eq!(first.scheme, "nats-route");
        assert_eq!(
            (first.username.as_deref(), first.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!((first.host.as_str(), first.port), ("h1", 6222));
        assert_eq!(cluster.routes[1].text, "nats://h2:6223", "trimmed");
        assert_eq!(
            cluster.authorization,
            Some(RouteAuthorization {
                user: "ru".into(),
                password: "rp".into(),
                timeout: Duration::from_secs(3),
            })
        );
        let permissions = cluster.permissions.unwrap();
        assert_eq!(
            permissions.import.unwrap().allow,
            Some(vec!["a.>".to_string()])
        );
        assert_eq!(
            permissions.export.unwrap().deny,
            Some(vec!["b".to_string()])
        );

        // The other spellings.
        let other = self::cluster(
            "cluster { NET: 127.0.0.2, Port: 6333, cluster_advertise: x, compression: false }",
        );
        assert_eq!((other.host.as_str(), other.port), ("127.0.0.2", Some(6333)));
        assert_eq!(other.advertise.as_deref(), Some("x"));
        assert_eq!(other.compression, Compression::Off);
        assert_eq!(self::cluster("cluster { host: h }").host, "h");
        assert_eq!(self::cluster("cluster { listen: 6444 }").port, Some(6444));
        assert_eq!(self::cluster("cluster { accounts: A }").accounts, ["A"]);
    }

    #[test]
    fn defaults_mirror_nats_server() {
        assert_eq!(Options::default().cluster, None);
        let cluster = cluster("cluster { port: 6222 }");
        assert_eq!(cluster.host, "0.0.0.0");
        assert_eq!(cluster.pool_size, 3);
        assert_eq!(cluster.compression, Compression::Accept);
        assert_eq!(cluster.write_timeout, RouteWriteTimeout::Default);
        assert!(cluster.name.is_none() && cluster.authorization.is_none());
        assert!(cluster.routes.is_empty() && cluster.accounts.is_empty());
        assert_eq!((cluster.ping_interval, cluster.ping_max), (None, None));
        assert_eq!(cluster.connect_retries, 0);
        // -1 is random, 0 (or none) accepts no route.
        assert_eq!(self::cluster("cluster { port: -1 }").port, Some(0));
        assert_eq!(self::cluster("cluster { port: 0 }").port, None);
        assert_eq!(self::cluster("cluster { name: x }").port, None);
        // Zero is the default for these, as in nats-server.
        let zeros = self::cluster(
            "cluster { pool_size: 0, ping_interval: \"0s\", ping_max: 0, write_deadline: \"0s\", write_timeout: default }",
        );
        assert_eq!(zeros.pool_size, 3);
        assert_eq!(
            (zeros.ping_interval, zeros.ping_max, zeros.write_deadline),
            (None, None, None)
        );
        assert_eq!(zeros.write_timeout, RouteWriteTimeout::Default);
        assert_eq!(self::cluster("cluster { pool_size: -1 }").pool_size, -1);
        // The authorization timeout: 2 s, or the TLS timeout plus 1 s.
        let auth = self::cluster("cluster { authorization { user: u, password: p } }");
        assert_eq!(auth.authorization.unwrap().timeout, Duration::from_secs(2));
        // No user, no authorization.
        assert_eq!(
            self::cluster("cluster { authorization { password: p } }").authorization,
            None
        );
    }

    #[test]
    fn cluster_tls_and_its_auth_timeout() {
        use crate::tls::test_files::{temp_dir, write_pair};
        let dir = temp_dir("cluster-tls");
        let (cert, key) = write_pair(&dir, "route");
        let cluster = cluster(&format!(
            "cluster {{ port: 6222, authorization {{ user: u, password: p }}, tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", timeout: 4 }} }}",
            cert.display(),
            key.display(),
            cert.display()
        ));
        let tls = cluster.tls.unwrap();
        assert_eq!(tls.timeout, Duration::from_secs(4));
        assert_eq!(
            cluster.authorization.unwrap().timeout,
            Duration::from_secs(5),
            "TLS timeout + 1 s"
        );
        let refused = errors(&format!(
            "cluster {{ port: 6222, tls {{ cert_file: \"{}\", key_file: \"{}\" }} }}",
            cert.display(),
            key.display()
        ));
        assert!(
            refused.len() == 1 && refused[0].ends_with("cluster 'tls' without 'ca_file' is not supported by natsring yet (route certificates are checked against 'ca_file' only)"),
            "{refused:?}"
        );
        let refused = errors(&format!(
            "cluster {{ port: 6222, tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify_and_map: true }} }}",
            cert.display(),
            key.display(),
            cert.display()
        ));
        assert!(
            refused.len() == 1
                && refused[0].ends_with(
                    "verify_and_map in the cluster's tls block is not supported by natsring yet"
                ),
            "{refused:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compression_forms() {
        let mode = |text: &str| cluster(&format!("cluster {{ compression: {text} }}")).compression;
        assert_eq!(mode("true"), Compression::S2Fast);
        assert_eq!(mode("on"), Compression::S2Fast);
        assert_eq!(mode("\"Enabled\""), Compression::S2Fast);
        assert_eq!(mode("fast"), Compression::S2Fast);
        assert_eq!(mode("better"), Compression::S2Better);
        assert_eq!(mode("s2_best"), Compression::S2Best);
        assert_eq!(mode("disabled"), Compression::Off);
        assert_eq!(mode("accept"), Compression::Accept);
        assert_eq!(mode("\"not supported\""), Compression::NotSupported);
        assert_eq!(mode("not_supported"), Compression::NotSupported);
        let ms = Duration::from_millis;
        assert_eq!(
            mode("auto"),
            Compression::S2Auto {
                rtt_thresholds: vec![ms(10), ms(50), ms(100)]
            }
        );
        assert_eq!(
            mode("{ mode: s2_auto, rtt_thresholds: [\"0ms\", \"20ms\", \"0ms\"] }"),
            Compression::S2Auto {
                rtt_thresholds: vec![ms(0), ms(20)]
            }
        );
        assert_eq!(
            mode("{ mode: s2_auto, rtts: [\"5ms\"] }"),
            Compression::S2Auto {
                rtt_thresholds: vec![ms(5)]
            }
        );
        assert_eq!(mode("{ mode: fast }").mode_name(), "s2_fast");
        // nats-server's texts (it checks the mode at start; natsring while reading the file).
        assert_eq!(
            errors("cluster { compression: bogus }"),
            [":1:10: unsupported compression mode \"bogus\""]
        );
        assert_eq!(
            errors("cluster { compression: { mode: auto, rtt: [\"10ms\", \"5ms\"] } }"),
            [":1:10: RTT threshold values [10ms 5ms] should be in ascending order"]
        );
        assert_eq!(
            errors("cluster { compression: { mode: auto, rtt: [\"0s\"] } }"),
            [":1:10: compression mode \"auto\" requires at least one RTT threshold"]
        );
        assert_eq!(
            errors("cluster { compression: { mode: auto, rtt: [\"1ms\", \"2ms\", \"3ms\", \"4ms\", \"5ms\"] } }"),
            [":1:10: compression mode \"auto\" should have no more than 4 RTT thresholds: [1ms 2ms 3ms 4ms 5ms]"]
        );
        assert_eq!(
            errors("cluster { compression: 5 }"),
            [":1:10: field \"compression\" should be a boolean or a structure, got int64"]
        );
    }

    /// Each checked against `nats-server -t` 2.15.1 (tests/conf/corpus has some of them too).
    #[test]
    fn nats_server_errors_and_warnings_with_positions() {
        for (text, expected) in [
            ("cluster { port: 6222, foo: 1 }", &[":1:22: unknown field \"foo\""][..]),
            ("cluster { name: \"a b\", port: 6222 }", &[":1:10: cluster name cannot contain spaces"]),
            ("cluster { port: \"x\" }", &[":1:10: interface conversion: interface {} is string, not int64"]),
            ("cluster { listen: \"abc\" }", &[":1:10: could not parse address string \"abc\""]),
            ("cluster: 5", &[":1:0: Expected map to define cluster, got int64"]),
            ("cluster { routes: \"nats://a:1\" }", &[":1:10: interface conversion: interface {} is string, not []interface {}"]),
            ("cluster { authorization { users: [{user: a, password: b}] } }", &[":1:10: Cluster authorization does not allow multiple users"]),
            ("cluster { authorization { token: abc } }", &[":1:10: Cluster authorization does not support tokens"]),
            ("cluster { authorization { user: a, timeout: \"x\" } }", &[":1:35: error parsing authorization config, 'timeout' time: invalid duration \"x\""]),
            ("cluster { authorization { user: a, foo: 1 } }", &[":1:35: unknown field \"foo\""]),
            ("cluster { authorization: 5 }", &[
                ":1:10: interface conversion: interface {} is int64, not map[string]interface {}",
                ":1:10: runtime error: invalid memory address or nil pointer dereference",
            ]),
            ("cluster { ping_max: \"x\" }", &[":1:10: interface conversion: interface {} is string, not int64"]),
            ("cluster { connect_backoff: 1 }", &[":1:10: interface conversion: interface {} is int64, not bool"]),
            ("cluster { advertise: 5 }", &[":1:10: interface conversion: interface {} is int64, not string"]),
            ("cluster { permissions: { import: \"a\", export: { allow: [\"foo bar\"] } } }", &[":1:10: cluster export allow: subject \"foo bar\" is not a valid subject"]),
            ("cluster { permissions: { import: \"a\", allow_responses: true } }", &[":1:10: Cluster permissions do not support dynamic responses"]),
            ("cluster { permissions: { import: \"a..b\" } }", &["subject \"a..b\" is not a valid subject"]),
            ("cluster { write_timeout: x }", &[":1:10: write_timeout must be 'default', 'close' or 'retry'"]),
            ("cluster { write_deadline: \"x\" }", &[":1:10: error parsing write_deadline: time: invalid duration \"x\""]),
            ("cluster { accounts: 5 }", &[":1:10: error parsing accounts: unsupported type int64"]),
            ("cluster { compression: { mode: 1 } }", &[":1:25: interface conversion: interface {} is int64, not string"]),
        ] {
            assert_eq!(errors(text), expected, "{text}");
        }
        // Duplicates are warnings; bad URLs errors (the list is then not used).
        assert_eq!(
            errors("cluster { routes: [\"nats://a:1\", \"nats://a:1\", \"nats://%zz\"] }"),
            [
                ":1:34: invalid use of field \"nats://a:1\": Duplicate route entry detected",
                ":1:48: error parsing route url [\"nats://%zz\"]",
            ]
        );
        assert_eq!(
            warnings("cluster { authorization { user: a, password: b, timeout: 90 } }"),
            [":1:48: invalid use of field \"timeout\": timeout of 90 (90.000000 seconds) is high, consider keeping it under 60 seconds. possibly caused by unquoted duration; use '1m' instead of 1m, for example"]
        );
        assert_eq!(
            warnings("cluster { ping_interval: \"10m\" }"),
            [":1:10: Cluster 'ping_interval' will reset to 30s which is the max for routes"]
        );
        assert_eq!(
            warnings("cluster { ping_interval: 30 }"),
            [":1:10: invalid use of field \"ping_interval\": ping_interval should be converted to a duration"]
        );
        // Deprecated permissions in the authorization block: used, unless the cluster has its
        // own.
        let (options, warned) =
            load("cluster { authorization { user: a, permissions: { import: \"x\" } } }").unwrap();
        assert_eq!(
            warned,
            [":1:10: invalid use of field \"authorization\": setting \"permissions\" within cluster authorization block is deprecated"]
        );
        let permissions = options.cluster.unwrap().permissions.unwrap();
        assert_eq!(permissions.import.unwrap().allow, Some(vec!["x".into()]));
        let (options, _) = load(
            "cluster { permissions: { import: \"own\" }, authorization { user: a, permissions: { import: \"x\" } } }",
        )
        .unwrap();
        let permissions = options.cluster.unwrap().permissions.unwrap();
        assert_eq!(permissions.import.unwrap().allow, Some(vec!["own".into()]));
    }

    #[test]
    fn a_wrong_type_ends_the_block_as_in_nats_server() {
        // nats-server's recovered panic: what follows is not read (no unknown-field error).
        assert_eq!(
            errors("cluster { port: \"x\", foo: 1 }"),
            [":1:10: interface conversion: interface {} is string, not int64"]
        );
        assert_eq!(
            errors("cluster { authorization { user: 1 }, foo: 2 }"),
            [
                ":1:26: interface conversion: interface {} is int64, not string",
                ":1:10: runtime error: invalid memory address or nil pointer dereference",
            ]
        );
        // Other errors do not end it.
        assert_eq!(
            errors("cluster { name: \"a b\", foo: 1 }"),
            [
                ":1:10: cluster name cannot contain spaces",
                ":1:23: unknown field \"foo\"",
            ]
        );
        // A used variable is no unknown field.
        assert_eq!(cluster("cluster { p = 6222, port: $p }").port, Some(6222));
    }

    #[test]
    fn route_urls_as_go_parses_them() {
        let v6 = route("nats://[::1]:6222");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6222));
        assert_eq!(route("TLS://h:1").scheme, "tls");
        assert!(route("NATS://h:1").same_route(&route("nats://h:1")));
        assert!(!route("nats://h:1").same_route(&route("nats://h:2")));
        assert!(!route("nats://a:b@h:1").same_route(&route("nats://h:1")));
        assert_eq!(
            route("nats://u:secret@h:1/x").redacted(),
            "nats://u:xxxxx@h:1/x"
        );
        assert_eq!(route("nats://u@h:1").redacted(), "nats://u@h:1");
        assert_eq!(route("nats://u@h:1").password, None);
        // Go's errors, which nats-server reports as `error parsing route url [...]`.
        for (text, go_error) in [
            (
                "nats://a:x",
                "parse \"nats://a:x\": invalid port \":x\" after host",
            ),
            (
                "127.0.0.1:6222",
                "parse \"127.0.0.1:6222\": first path segment in URL cannot contain colon",
            ),
            ("nats://[::1", "parse \"nats://[::1\": missing ']' in host"),
            (
                "nats://h :1",
                "parse \"nats://h :1\": invalid character \" \" in host name",
            ),
            (
                "nats://%41:1",
                "parse \"nats://%41:1\": invalid URL escape \"%41\"",
            ),
            (
                "nats://h:-1",
                "parse \"nats://h:-1\": invalid port \":-1\" after host",
            ),
            (":x", "parse \":x\": missing protocol scheme"),
            (
                "nats://h\x01:1",
                "parse \"nats://h\\x01:1\": net/url: invalid control character in URL",
            ),
            (
                "nats://a b@h:1",
                "parse \"nats://a b@h:1\": net/url: invalid userinfo",
            ),
        ] {
            assert_eq!(RouteUrl::parse(text).unwrap_err(), go_error, "{text}");
        }
        // What Go takes and natsring cannot dial.
        for text in ["abc", "a:1", "nats-route://h", "nats://h:", "", "nats://:1"] {
            assert!(
                RouteUrl::parse(text)
                    .unwrap_err()
                    .contains("no host and port to dial"),
                "{text}"
            );
        }
        assert_eq!(
            RouteUrl::parse("nats://h:99999").unwrap_err(),
            "\"nats://h:99999\": port \"99999\" is out of range (1-65535)"
        );
        assert_eq!(
            errors("cluster { routes: [\"abc\"] }"),
            [":1:20: error parsing route url [\"abc\"]: \"abc\" has no host and port to dial (nats-server takes it and fails every connect)"]
        );
    }

    #[test]
    fn flags_as_nats_server_applies_them() {
        let options = run(&[
            "--cluster",
            "nats://ru:rp@127.0.0.1:6222",
            "--routes",
            "nats://h1:6222, nats://h2:6223",
            "--cluster_name",
            "c1",
            "--cluster_advertise",
            "adv:1",
            "--no_advertise",
            "--connect_retries",
            "7",
        ])
        .unwrap();
        let cluster = options.cluster.unwrap();
        assert_eq!(
            (cluster.host.as_str(), cluster.port),
            ("127.0.0.1", Some(6222))
        );
        let authorization = cluster.authorization.unwrap();
        assert_eq!(
            (authorization.user.as_str(), authorization.password.as_str()),
            ("ru", "rp")
        );
        assert_eq!(authorization.timeout, Duration::from_secs(2));
        assert_eq!(
            cluster
                .routes
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>(),
            ["nats://h1:6222", "nats://h2:6223"]
        );
        assert_eq!(cluster.name.as_deref(), Some("c1"));
        assert_eq!(cluster.advertise.as_deref(), Some("adv:1"));
        assert!(cluster.no_advertise);
        assert_eq!(cluster.connect_retries, 7);
        // --cluster_listen is --cluster; -1 a random port, 0 none.
        let random = run(&["--cluster_listen=nats://0.0.0.0:-1"]).unwrap();
        assert_eq!(random.cluster.unwrap().port, Some(0));
        assert_eq!(
            run(&["-cluster", "nats://h:0"])
                .unwrap()
                .cluster
                .unwrap()
                .port,
            None
        );
        // A name alone makes a cluster that accepts no route.
        let named = run(&["--cluster_name", "c"]).unwrap().cluster.unwrap();
        assert_eq!((named.name.as_deref(), named.port), (Some("c"), None));
        // nats-server's errors.
        for (args, expected) in [
            (&["--routes", "nats://h:1"][..], "solicited routes require cluster capabilities, e.g. --cluster"),
            (&["--cluster", "", "--routes", "nats://h:1"], "solicited routes require cluster capabilities, e.g. --cluster"),
            (&["--cluster", "127.0.0.1:6999"], "parse \"127.0.0.1:6999\": first path segment in URL cannot contain colon"),
            (&["--cluster", "nats://u@127.0.0.1:-1"], "expected cluster password to be set"),
            (&["--cluster", "nats://127.0.0.1"], "address 127.0.0.1: missing port in address"),
            (&["--cluster", "nats://127.0.0.1:x"], "parse \"nats://127.0.0.1:x\": invalid port \":x\" after host"),
            (&["--cluster", "nats://h:"], "EOF"),
            (&["--cluster_name", "a b"], "natsring: cluster name cannot contain spaces"),
            (&["--cluster", "nats://h:-1", "--cluster_advertise", "a:b:c"], "Error setting route INFO with Cluster.Advertise value of a:b:c, err=address a:b:c: too many colons in address"),
            (&["--connect_retries", "x"], "invalid value \"x\" for flag -connect_retries: parse error"),
            (&["--no_advertise=maybe"], "invalid boolean value \"maybe\" for -no_advertise: parse error"),
        ] {
            assert_eq!(run(args).unwrap_err(), expected, "{args:?}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = crate::tls::test_files::temp_dir("cluster-flags");
        let file = dir.join("c.conf");
        std::fs::write(
            &file,
            "cluster { name: file, listen: \"127.0.0.1:6222\", advertise: f, no_advertise: true, connect_retries: 2, routes: [\"nats://f:1\"], authorization { user: fu, password: fp, timeout: 9 } }\n",
        )
        .unwrap();
        let config = file.display().to_string();
        let file_only = run(&["-c", &config]).unwrap().cluster.unwrap();
        assert_eq!(file_only.authorization.as_ref().unwrap().user, "fu");
        let options = run(&[
            "-c",
            &config,
            "--cluster",
            "nats://127.0.0.2:7222",
            "--routes",
            "nats://g:2",
            "--cluster_name",
            "flag",
            "--no_advertise=false",
            "--connect_retries",
            "0",
            "--cluster_advertise",
            "",
        ])
        .unwrap();
        let cluster = options.cluster.unwrap();
        assert_eq!(
            (cluster.host.as_str(), cluster.port),
            ("127.0.0.2", Some(7222))
        );
        assert_eq!(
            cluster.authorization, None,
            "a URL without a user clears the file's"
        );
        assert_eq!(cluster.routes[0].text, "nats://g:2");
        assert_eq!(cluster.name.as_deref(), Some("flag"));
        assert!(!cluster.no_advertise);
        assert_eq!(cluster.connect_retries, 0);
        assert_eq!(cluster.advertise, None);
        // A user in the URL replaces the file's, keeping its timeout; an empty --routes clears
        // the file's routes; an empty --cluster stops route listening.
        let cluster = run(&["-c", &config, "--cluster", "nats://x:y@h:1", "--routes="])
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(
            cluster.authorization,
            Some(RouteAuthorization {
                user: "x".into(),
                password: "y".into(),
                timeout: Duration::from_secs(9),
            })
        );
        assert!(cluster.routes.is_empty());
        let cluster = run(&["-c", &config, "--cluster="])
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(cluster.port, None);
        assert_eq!(cluster.name.as_deref(), Some("file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn start_up_checks() {
        let with = |cluster: ClusterOptions| Options {
            cluster: Some(cluster),
            ..Options::default()
        };
        let listening = ClusterOptions {
            port: Some(6222),
            ..ClusterOptions::default()
        };
        assert_eq!(with(listening.clone()).validate(), Ok(()));
        let pinned = |accounts: &[&str], pool_size: i32| {
            with(ClusterOptions {
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
                pool_size,
                ..listening.clone()
            })
            .validate()
        };
        assert_eq!(
            pinned(&["A"], -1),
            Err("pool_size cannot be negative if pinned accounts are specified".into())
        );
        assert_eq!(
            pinned(&["A", "A"], 3),
            Err(
                "found duplicate account name \"A\" in pinned accounts list [\"A\" \"A\" \"$SYS\"]"
                    .into()
            )
        );
        assert_eq!(pinned(&["A", "$SYS"], 3), Ok(()));
        assert_eq!(pinned(&[], -1), Ok(()));
        // The system account is pinned as nats-server pins it.
        let options = with(listening.clone());
        assert_eq!(listening.pinned_accounts(&options), ["$SYS"]);
        let no_system = Options {
            no_system_account: true,
            ..options.clone()
        };
        assert!(listening.pinned_accounts(&no_system).is_empty());
        let unpooled = ClusterOptions {
            pool_size: -1,
            ..listening.clone()
        };
        assert!(unpooled.pinned_accounts(&options).is_empty());
        // natsring's own: the route port is not the client port on an overlapping address.
        let same_port = with(ClusterOptions {
            port: Some(4222),
            ..listening.clone()
        });
        assert_eq!(
            same_port.validate(),
            Err("cluster port 4222 is the client port (nats-server fails to listen: address already in use)".into())
        );
        let other_host = Options {
            host: "127.0.0.1".into(),
            cluster: Some(ClusterOptions {
                host: "127.0.0.2".into(),
                port: Some(4222),
                ..listening.clone()
            }),
            ..Options::default()
        };
        assert_eq!(other_host.validate(), Ok(()));
        // The route ping interval is capped as nats-server caps it.
        let slow = ClusterOptions {
            ping_interval: Some(Duration::from_secs(600)),
            ..listening.clone()
        };
        assert_eq!(slow.route_ping_interval(&options), Duration::from_secs(30));
        assert_eq!(
            listening.route_ping_interval(&options),
            Duration::from_secs(30)
        );
        let fast = Options {
            ping_interval: Duration::from_secs(5),
            ..options
        };
        assert_eq!(listening.route_ping_interval(&fast), Duration::from_secs(5));
    }

    #[test]
    fn reloads_as_nats_server_allows_them() {
        use crate::config::{reload_notices, reload_refusal};
        let with = |cluster: Option<ClusterOptions>| Options {
            cluster,
            ..Options::default()
        };
        let base = ClusterOptions {
            port: Some(6222),
            routes: vec![route("nats://a:1"), route("nats://b:1")],
            ..ClusterOptions::default()
        };
        let old = with(Some(base.clone()));
        let refused = |new: &Options| reload_refusal(&old, new).map(|refused| refused.0);
        assert_eq!(refused(&old), None);
        // The listener cannot move, start or stop.
        for (cluster, expected) in [
            (
                Some(ClusterOptions { port: Some(6333), ..base.clone() }),
                "config reload not supported for cluster port: old=6222, new=6333",
            ),
            (
                Some(ClusterOptions { host: "127.0.0.1".into(), ..base.clone() }),
                "config reload not supported for cluster host: old=0.0.0.0, new=127.0.0.1",
            ),
            (None, "config reload not supported for cluster host: old=0.0.0.0, new="),
            (
                Some(ClusterOptions { advertise: Some("a:b:c".into()), ..base.clone() }),
                "invalid Cluster.Advertise value of a:b:c, err=address a:b:c: too many colons in address",
            ),
        ] {
            assert_eq!(refused(&with(cluster)).as_deref(), Some(expected));
        }
        assert_eq!(
            reload_refusal(&with(None), &old).map(|r| r.0).as_deref(),
            Some("config reload not supported for cluster host: old=, new=0.0.0.0")
        );
        // A random port asked for again is no change.
        let random = with(Some(ClusterOptions {
            port: Some(0),
            ..base.clone()
        }));
        assert_eq!(refused(&random), None);

        // Everything else may change.
        let mut changed = base.clone();
        changed.routes = vec![route("nats://b:1"), route("nats://c:1")];
        changed.name = Some("renamed".into());
        changed.pool_size = -1;
        changed.compression = Compression::S2Fast;
        changed.ping_interval = Some(Duration::from_secs(5));
        changed.authorization = Some(RouteAuthorization {
            user: "u".into(),
            password: "p".into(),
            timeout: Duration::from_secs(2),
        });
        changed.permissions = Some(RoutePermissions::default());
        let new = with(Some(changed));
        assert_eq!(refused(&new), None);
        assert_eq!(
            reload_notices(&old, &new),
            ["Reloaded: cluster", "Reloaded: cluster routes"]
        );
        let diff = cluster_diff(&old, &new);
        assert_eq!(diff.routes_added, [route("nats://c:1")]);
        assert_eq!(diff.routes_removed, [route("nats://a:1")]);
        assert!(diff.accounts_added.is_empty());
        assert_eq!(diff.accounts_removed, ["$SYS"], "the pool turned off");
        assert!(diff.pool_size_changed && diff.compression_changed && diff.permissions_changed);
        assert_eq!(diff.name_changed.as_deref(), Some("renamed"));

        // Routes only: one notice; the same route written differently is no change.
        let routes_only = with(Some(ClusterOptions {
            routes: vec![
                route("NATS://a:1"),
                route("nats://b:1"),
                route("nats://d:1"),
            ],
            ..base.clone()
        }));
        assert_eq!(
            reload_notices(&old, &routes_only),
            ["Reloaded: cluster routes"]
        );
        let diff = cluster_diff(&old, &routes_only);
        assert_eq!(diff.routes_added, [route("nats://d:1")]);
        assert!(diff.routes_removed.is_empty());
        assert_eq!(cluster_diff(&old, &old), ClusterDiff::default());

        // Pinned accounts added and removed.
        let pinned = with(Some(ClusterOptions {
            accounts: vec!["A".into()],
            ..base.clone()
        }));
        let diff = cluster_diff(&old, &pinned);
        assert_eq!(diff.accounts_added, ["A"]);
        assert!(diff.accounts_removed.is_empty());
        assert_eq!(cluster_diff(&pinned, &old).accounts_removed, ["A"]);
    }
}
