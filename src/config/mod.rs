//! Turns argv and the configuration file into validated [`Options`]; no runtime state.
//!
//! What it owns: the `Options` every other module reads, the Go-style flag parser (`cli`), the
//! mapping of a configuration file onto options (`file`, over the format parser `conf`), the
//! cluster's options (`cluster`: read and checked, carried for a route layer that does not exist
//! yet), what may change on a reload (`reload`), Go's duration, quoting and URL forms (`go`),
//! the help and version texts, and the two small files nats-server writes for tooling (the pid file and the
//! ports file). What it must not touch: sockets, shards, the logger's state.
//!
//! How options are made, as nats-server makes them: the defaults, then the configuration file
//! (`-c`), then every flag given on the command line on top (flags win), then validation. A
//! reload repeats exactly that (the file is read again, the same flags win again), so the
//! running options are always the product of one file and one command line: [`Invocation`].
//!
//! Invariants of a loaded `Options`: `port == 0` means "pick a random port" (`-p -1`, `port:
//! -1`), `shards <= limits::SHARDS_MAX`, `server_name` is non-empty, has no spaces and is at
//! most `limits::SERVER_NAME_BYTES_MAX` bytes, empty strings given to paths mean "not set" (as
//! in nats-server), `max_payload <= max_pending`, and `lame_duck_grace_period <
//! lame_duck_duration` (the file layer refuses negative durations, which nats-server takes).

mod auth_file;
mod cli;
mod cluster;
pub mod conf;
mod file;
pub mod go;
mod reload;
pub mod tls;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::limits;

pub use cli::{parse_args, usage, version_text, Invocation, SignalRequest, CLI_ERROR_EXIT_CODE};
pub use cluster::{
    cluster_diff, ClusterDiff, ClusterOptions, Compression, RouteAuthorization, RoutePermissions,
    RouteUrl, RouteWriteTimeout,
};
pub use reload::{reload_notices, reload_refusal, ReloadRefused};
pub use tls::{TlsOptions, TlsVersion};

/// Everything the server needs to run, with nats-server's defaults. Produced by
/// [`Invocation::options`] (or built directly by tests and embedders).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The configuration file (`-c`), read again on every reload; `None`: flags only.
    pub config_file: Option<PathBuf>,
    /// `sha256:<hex>` of the configuration file's parsed content, as nats-server computes it
    /// (printed by `-t`, logged at start, `config_digest` in monitoring later).
    pub config_digest: Option<String>,

    /// Bind address (`-a/--addr/--net`, `host`, `net`, `listen`).
    pub host: String,
    /// Client port (`-p/--port`, `port`, `listen`); 0 means "random" (`-1`), as nats-server.
    pub port: u16,
    /// Server name (`-n/--name/--server_name`, `server_name`); `None`: the server id.
    pub server_name: Option<String>,
    /// The client URL this server advertises to clients of a cluster (`--client_advertise`,
    /// `client_advertise`): `host`, `host:port`. Without a cluster it has no effect on the wire
    /// (nats-server's INFO has no `connect_urls` then either).
    pub client_advertise: Option<String>,

    /// Event loops (`--shards`, `shards`); 0 = one per CPU the process may run on (resolved by
    /// the server).
    pub shards: usize,
    /// Pin shard i to the i-th allowed CPU (`--pin_shards`, `pin_shards`).
    pub pin_shards: bool,
    /// Microseconds a shard watches for work before sleeping after a busy round
    /// (`--busy_poll`, `busy_poll`); 0 never spins.
    pub busy_poll_micros: u64,

    /// Largest payload a client may publish (`max_payload`).
    pub max_payload: u32,
    /// Longest control line (`max_control_line`).
    pub max_control_line: u32,
    /// Outbound bytes a subscriber may have pending before it is a slow consumer.
    pub max_pending: u64,
    /// Client connections at most, server-wide (`max_connections`, `max_conn`); 0 admits none
    /// (nats-server's `max_connections: 0`, i.e. -1).
    pub max_connections: u32,
    /// Subscriptions per connection at most (`max_subscriptions`, `max_subs`); 0: no limit.
    pub max_subscriptions: u32,
    /// Tokens a subscription's subject may have at most (`max_sub_tokens`); 0: no limit.
    pub max_sub_tokens: u8,
    /// Interval between server PINGs (`ping_interval`).
    pub ping_interval: Duration,
    /// PINGs outstanding before a connection is stale (`ping_max`).
    pub ping_max: u32,
    /// How long a flush may make no progress before the subscriber is a slow consumer.
    pub write_deadline: Duration,
    /// Refuse headers (`no_header_support`): INFO says `headers:false`, HPUB is an error.
    pub no_header_support: bool,

    /// Client TLS (`tls {}`, `--tls`, `--tlscert`, `--tlskey`, `--tlsverify`, `--tlscacert`);
    /// `None`: clients connect in the clear.
    pub tls: Option<TlsOptions>,
    /// With `tls`: clients may also connect without TLS (`allow_non_tls`; INFO then says
    /// `tls_available` instead of `tls_required`). Without `tls` it changes nothing.
    pub allow_non_tls: bool,

    /// Lame duck mode lasts this long in all (`lame_duck_duration`): the grace period, then
    /// the clients' closes spread over the rest.
    pub lame_duck_duration: Duration,
    /// Lame duck mode closes no client before this much time (`lame_duck_grace_period`).
    pub lame_duck_grace_period: Duration,

    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    /// Log file (`-l/--log`, `log_file`), appended to; `None` logs to stderr.
    pub log_file: Option<PathBuf>,
    /// Bytes after which the log file is rotated (`--log_size_limit`, `log_size_limit`);
    /// 0: never.
    pub log_size_limit: u64,
    /// Rotated log files kept (`log_max_num`), the current one included; 0: all.
    pub log_max_num: u32,
    /// Pid file (`-P/--pid`, `pid_file`).
    pub pid_file: Option<PathBuf>,
    /// Directory for the ports file (`--ports_file_dir`, `ports_file_dir`).
    pub ports_file_dir: Option<PathBuf>,
    /// Of repeated failed connect attempts (routes, gateways), every this many is logged
    /// (`connect_error_reports`); kept for the cluster issue.
    pub connect_error_reports: u32,
    /// Of repeated failed reconnect attempts, every this many is logged
    /// (`reconnect_error_reports`); kept for the cluster issue.
    pub reconnect_error_reports: u32,
    /// Closed connections kept for monitoring (`max_closed_clients`): `/connz?state=closed`.
    pub max_closed_clients: u32,
    /// HTTP monitoring's port (`-m/--http_port`, `http_port`, `monitor_port`, `http`): 0 serves
    /// no monitoring, -1 a random port, as nats-server.
    pub http_port: i32,
    /// HTTPS monitoring's port (`-ms/--https_port`, `https_port`, `https`): 0 serves none, -1
    /// a random port. Served with the `tls {}` certificate; nats-server refuses to start with
    /// both this and `http_port`, or with this and no `tls {}` (`Server::start` checks both).
    pub https_port: i32,
    /// Monitoring's bind address (`http: host:port`, `https: host:port`); `None`: the client
    /// `host`.
    pub http_host: Option<String>,
    /// The path the monitoring endpoints are under (`http_base_path`, `--http_base_path`);
    /// empty: the root.
    pub http_base_path: String,

    /// Authentication: the single user or token, users and nkey users (of every account),
    /// `no_auth_user` (`authorization {}`, `accounts {}`, `--user`/`--pass`/`--auth`).
    pub auth: crate::auth::AuthOptions,
    /// The configured accounts (`accounts {}`), in the file's order; `$G` and the system
    /// account exist whether or not they are listed.
    pub accounts: Vec<crate::account::AccountConfig>,
    /// Server-level subject mappings (`mappings {}`): the global account's.
    pub mappings: Vec<crate::account::Mapping>,
    /// The system account's name (`system_account`); `None`: `$SYS`.
    pub system_account: Option<String>,
    /// `no_system_account`: no system account is made.
    pub no_system_account: bool,
    /// Operator mode: the trusted operators' JWTs (`operator`), as read from their files.
    pub operators: Vec<String>,
    /// Operator mode: where account JWTs come from (`resolver`).
    pub resolver: Option<Resolver>,
    /// Operator mode: account JWTs by account public key (`resolver_preload`).
    pub resolver_preload: Vec<(String, String)>,
    /// Operator public keys trusted to sign accounts (`trusted`, `trusted_keys`), without an
    /// operator JWT.
    pub trusted_keys: Vec<String>,

    /// The cluster (`cluster {}`, `--cluster`, `--routes`, ...); `None`: no `cluster` block and
    /// no cluster flag. Routes are accepted and dialled only with a route port
    /// ([`ClusterOptions::port`]); natsring has no route layer yet, so it only carries them.
    pub cluster: Option<ClusterOptions>,
}

/// Where operator mode finds account JWTs (`resolver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// `MEMORY`: only the preloaded JWTs (`resolver_preload`).
    Memory,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            config_digest: None,
            host: limits::HOST_DEFAULT.to_string(),
            port: limits::PORT_DEFAULT,
            server_name: None,
            client_advertise: None,
            shards: 0,
            pin_shards: false,
            busy_poll_micros: limits::BUSY_POLL_MICROS,
            max_payload: limits::PAYLOAD_BYTES_MAX_DEFAULT,
            max_control_line: limits::CONTROL_LINE_BYTES_MAX_DEFAULT,
            max_pending: limits::PENDING_BYTES_MAX_DEFAULT,
            max_connections: limits::CONNECTIONS_MAX_DEFAULT,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            ping_interval: Duration::from_millis(limits::PING_INTERVAL_MS_DEFAULT),
            ping_max: limits::PINGS_OUTSTANDING_MAX_DEFAULT,
            write_deadline: Duration::from_millis(limits::WRITE_DEADLINE_MS_DEFAULT),
            no_header_support: false,
            tls: None,
            allow_non_tls: false,
            lame_duck_duration: Duration::from_millis(limits::LAME_DUCK_DURATION_MS_DEFAULT),
            lame_duck_grace_period: Duration::from_millis(
                limits::LAME_DUCK_GRACE_PERIOD_MS_DEFAULT,
            ),
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            log_size_limit: 0,
            log_max_num: 0,
            pid_file: None,
            ports_file_dir: None,
            connect_error_reports: limits::CONNECT_ERROR_REPORTS_DEFAULT,
            reconnect_error_reports: limits::RECONNECT_ERROR_REPORTS_DEFAULT,
            max_closed_clients: limits::CLOSED_CLIENTS_MAX_DEFAULT,
            http_port: 0,
            https_port: 0,
            http_host: None,
            http_base_path: String::new(),
            auth: Default::default(),
            accounts: Vec::new(),
            mappings: Vec::new(),
            system_account: None,
            no_system_account: false,
            operators: Vec::new(),
            resolver: None,
            resolver_preload: Vec::new(),
            trusted_keys: Vec::new(),
            cluster: None,
        }
    }
}

impl Options {
    /// Where monitoring (HTTP or HTTPS) listens: `http_host`, else the client host
    /// (nats-server's default).
    pub fn monitoring_host(&self) -> &str {
        self.http_host.as_deref().unwrap_or(&self.host)
    }

    /// nats-server's start-up checks (`validateOptions`) and natsring's own bounds; the error
    /// is the line nats-server prints (without the program name).
    pub fn validate(&self) -> Result<(), String> {
        if self.lame_duck_grace_period >= self.lame_duck_duration {
            return Err(format!(
                "lame duck grace period ({}) should be strictly lower than lame duck duration ({})",
                go::format_std_duration(self.lame_duck_grace_period),
                go::format_std_duration(self.lame_duck_duration)
            ));
        }
        if u64::from(self.max_payload) > self.max_pending {
            return Err(format!(
                "max_payload ({}) cannot be higher than max_pending ({})",
                self.max_payload, self.max_pending
            ));
        }
        if let Some(server_name) = &self.server_name {
            if server_name.contains(' ') {
                return Err("server name cannot contain spaces".to_string());
            }
            if server_name.len() > limits::SERVER_NAME_BYTES_MAX {
                return Err(format!(
                    "server name cannot be longer than {} bytes",
                    limits::SERVER_NAME_BYTES_MAX
                ));
            }
        }
        auth_file::validate(self)?;
        cluster::validate(self)
    }
}

/// Whether a reload from `old` to `new` changes who may connect or what they may do (users,
/// tokens, permissions, accounts, operator mode): connected clients are then checked again.
pub fn auth_changed(old: &Options, new: &Options) -> bool {
    old.auth != new.auth
        || old.accounts != new.accounts
        || old.system_account != new.system_account
        || old.no_system_account != new.no_system_account
        || old.operators != new.operators
        || old.resolver_preload != new.resolver_preload
        || old.trusted_keys != new.trusted_keys
        || old.max_subscriptions != new.max_subscriptions
}

/// A configuration that cannot be used: the file's errors (one per line, warnings first, as
/// nats-server reports them) or a start-up check's. `Display` is the text without the program
/// name (`natsring: ` goes first on stderr; a failed reload logs it after `Failed to reload
/// server configuration: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Options loaded from a command line, with the configuration file's warnings (each a line to
/// print; the file was used anyway, as nats-server uses it).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub options: Options,
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start the server from this command line (and its configuration file).
    Run(Invocation),
    /// `-t`: load the configuration file, report whether it is valid, and exit.
    Check(Invocation),
    /// `--signal <command>[=<pid or pid file>]`: signal a running server and exit.
    Signal(SignalRequest),
    /// Print [`usage`] to stdout (with `print!`) and exit 0.
    Help,
    /// Print [`version_text`] to stdout and exit 0.
    Version,
}

/// A command-line or configuration error. `Display` is the exact text to print on stderr after
/// the program name (one or more lines, no trailing newline); the process then exits with
/// [`CLI_ERROR_EXIT_CODE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Writes this process's pid (decimal, no newline) to `path`, as nats-server does (mode 0600,
/// replacing any previous content). nats-server leaves the file in place at shutdown.
pub fn write_pid_file(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(std::process::id().to_string().as_bytes())
}

/// The URLs a running server listens on, serialized like nats-server's ports file:
/// `{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`; empty lists are
/// left out. nats-server lists one URL per interface address when bound to 0.0.0.0; filling the
/// lists is the server's job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ports {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nats: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub monitoring: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<String>,
}

impl Ports {
    /// The ports of a server whose only listener is the client port `port` on `host`.
    /// nats-server lists one URL per interface address when bound to an unspecified address;
    /// natsring lists the loopback address(es) instead (enumerating interfaces needs
    /// `getifaddrs`), first as nats-server does, so tools that dial the first URL connect.
    /// `tls_required`: `tls://` URLs, as nats-server writes them when its INFO says
    /// `tls_required` (`tls {}` without `allow_non_tls`).
    pub fn for_client(host: &str, port: u16, tls_required: bool) -> Ports {
        let scheme = if tls_required { "tls" } else { "nats" };
        Ports {
            nats: urls(scheme, host, port),
            ..Ports::default()
        }
    }

    /// These ports with monitoring's, listening on `host` and `port`; `scheme` is `http` or
    /// `https` (nats-server's `https://` URLs when `https_port` is set).
    pub fn with_monitoring(self, scheme: &str, host: &str, port: u16) -> Ports {
        debug_assert!(scheme == "http" || scheme == "https", "{scheme}");
        Ports {
            monitoring: urls(scheme, host, port),
            ..self
        }
    }
}

/// The URLs of a listener, as nats-server's ports file lists them.
fn urls(scheme: &str, host: &str, port: u16) -> Vec<String> {
    match host {
        "" | "0.0.0.0" => vec![format!("{scheme}://127.0.0.1:{port}")],
        "::" | "[::]" => vec![
            format!("{scheme}://127.0.0.1:{port}"),
            format!("{scheme}://[::1]:{port}"),
        ],
        host if host.contains(':') && !host.starts_with('[') => {
            vec![format!("{scheme}://[{host}]:{port}")]
        }
        host => vec![format!("{scheme}://{host}:{port}")],
    }
}

/// The ports file of this process in `dir`: `<executable_name>_<pid>.ports`, the executable
/// name being the last component of `argv[0]` (as nats-server).
pub fn ports_file_path(dir: &Path) -> PathBuf {
    let executable_name = std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "natsring".to_string());
    dir.join(format!("{executable_name}_{}.ports", std::process::id()))
}

/// Writes `ports` as JSON (no trailing newline) to [`ports_file_path`]`(dir)` and returns that
/// path, for [`remove_ports_file`] at shutdown.
/// nats-server logs a failure as `[ERR] Error writing ports file (<path>): <error>` and goes on.
pub fn write_ports_file(dir: &Path, ports: &Ports) -> io::Result<PathBuf> {
    let path = ports_file_path(dir);
    let json = serde_json::to_vec(ports).map_err(io::Error::other)?;
    fs::write(&path, json)?;
    Ok(path)
}

/// Removes the ports file at `path` (the path [`write_ports_file`] returned), at shutdown.
/// A failure is logged as nats-server logs it (`[ERR] Error cleaning up ports file <path>:
/// <error>`): there is nothing else to do about it while exiting.
pub fn remove_ports_file(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        crate::log_error!("Error cleaning up ports file {}: {error}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "natsring-config-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults_mirror_nats_server() {
        let options = Options::default();
        assert_eq!(options.host, "0.0.0.0");
        assert_eq!(options.port, 4222);
        assert_eq!(options.max_payload, 1024 * 1024);
        assert_eq!(options.max_control_line, 4096);
        assert_eq!(options.max_pending, 64 * 1024 * 1024);
        assert_eq!(options.max_connections, 64 * 1024);
        assert_eq!(options.ping_interval, Duration::from_secs(120));
        assert_eq!(options.ping_max, 2);
        assert_eq!(options.write_deadline, Duration::from_secs(10));
        assert_eq!(options.lame_duck_duration, Duration::from_secs(120));
        assert_eq!(options.lame_duck_grace_period, Duration::from_secs(10));
        assert_eq!((options.max_subscriptions, options.max_sub_tokens), (0, 0));
        assert_eq!(options.connect_error_reports, 3600);
        assert_eq!(options.reconnect_error_reports, 1);
        assert_eq!(options.max_closed_clients, 10_000);
        assert_eq!(options.validate(), Ok(()));
        assert!(options.logtime);
        assert!(!options.logtime_utc && !options.debug && !options.trace);
        assert!(!options.no_header_support && !options.pin_shards);
        assert_eq!(options.shards, 0);
        assert!(options.tls.is_none() && !options.allow_non_tls);
        assert!(options.server_name.is_none() && options.log_file.is_none());
        assert!(options.pid_file.is_none() && options.ports_file_dir.is_none());
    }

    #[test]
    fn pid_file_holds_the_pid_without_newline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("pid");
        let path = dir.join("server.pid");
        fs::write(&path, "a much longer previous content").unwrap();
        write_pid_file(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        let fresh = dir.join("fresh.pid");
        write_pid_file(&fresh).unwrap();
        let mode = fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777 & !0o600,
            0,
            "at most rw------- (0600 under the umask)"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ports_file_matches_nats_server() {
        let dir = temp_dir("ports");
        let ports = Ports {
            nats: vec![
                "nats://127.0.0.1:4222".to_string(),
                "nats://[::1]:4222".to_string(),
            ],
            monitoring: vec!["http://127.0.0.1:8222".to_string()],
            ..Ports::default()
        };
        let path = write_ports_file(&dir, &ports).unwrap();
        assert_eq!(path, ports_file_path(&dir));
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(&format!("_{}.ports", std::process::id())));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"nats":["nats://127.0.0.1:4222","nats://[::1]:4222"],"monitoring":["http://127.0.0.1:8222"]}"#
        );
        remove_ports_file(&path);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();

        // With TLS required and HTTPS monitoring, as nats-server 2.15.1 wrote them.
        let tls = Ports::for_client("127.0.0.1", 38739, true).with_monitoring(
            "https",
            "127.0.0.1",
            18443,
        );
        assert_eq!(
            serde_json::to_string(&tls).unwrap(),
            r#"{"nats":["tls://127.0.0.1:38739"],"monitoring":["https://127.0.0.1:18443"]}"#
        );
    }

    #[test]
    fn client_ports_for_each_kind_of_host() {
        let urls = |host: &str| Ports::for_client(host, 4222, false).nats;
        assert_eq!(urls("0.0.0.0"), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls(""), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls("::"), ["nats://127.0.0.1:4222", "nats://[::1]:4222"]);
        assert_eq!(urls("127.0.0.1"), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls("::1"), ["nats://[::1]:4222"]);
        assert_eq!(urls("localhost"), ["nats://localhost:4222"]);
        assert_eq!(
            serde_json::to_string(&Ports::for_client("127.0.0.1", 45471, false)).unwrap(),
            r#"{"nats":["nats://127.0.0.1:45471"]}"#
        );
    }

    #[test]
    fn empty_ports_serialize_to_an_empty_object() {
        assert_eq!(serde_json::to_string(&Ports::default()).unwrap(), "{}");
    }
}
