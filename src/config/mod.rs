//! Turns argv (later also the configuration file) into validated [`Options`]; no runtime state.
//!
//! What it owns: the `Options` every other module reads, the Go-style flag parser (`cli`), the
//! help and version texts, and the two small files nats-server writes for tooling (the pid file
//! and the ports file). What it must not touch: sockets, shards, the logger's state.
//!
//! Invariants of a parsed `Options`: `port == 0` means "pick a random port" (`-p -1` on the
//! command line, as nats-server), `shards <= limits::SHARDS_MAX`, `server_name` is non-empty,
//! has no spaces and is at most `limits::SERVER_NAME_BYTES_MAX` bytes, and empty strings given
//! to path flags mean "not set" (as in nats-server).

mod cli;
pub mod conf;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::limits;

pub use cli::{parse_args, usage, version_text, CLI_ERROR_EXIT_CODE};

/// Everything the server needs to start, with nats-server's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bind address (`-a/--addr/--net`).
    pub host: String,
    /// Client port (`-p/--port`); 0 means "random" (`-p -1`), as nats-server.
    pub port: u16,
    /// Server name (`-n/--name/--server_name`); `None` means "use the server id".
    pub server_name: Option<String>,
    /// Event loops (`--shards`); 0 = one per CPU the process may run on (resolved by the server).
    pub shards: usize,
    /// Pin shard i to the i-th allowed CPU (`--pin_shards`).
    pub pin_shards: bool,
    /// Microseconds a shard watches for work before sleeping after a busy round
    /// (`--busy_poll`); 0 never spins.
    pub busy_poll_micros: u64,
    pub max_payload: u32,
    pub max_control_line: u32,
    pub max_pending: u64,
    pub max_connections: u32,
    pub ping_interval_ms: u64,
    pub ping_max: u32,
    pub write_deadline_ms: u64,
    pub no_header_support: bool,
    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    /// Log file (`-l/--log`), appended to; `None` logs to stderr.
    pub log_file: Option<PathBuf>,
    /// Pid file (`-P/--pid`).
    pub pid_file: Option<PathBuf>,
    /// Directory for the ports file (`--ports_file_dir`).
    pub ports_file_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: limits::HOST_DEFAULT.to_string(),
            port: limits::PORT_DEFAULT,
            server_name: None,
            shards: 0,
            pin_shards: false,
            busy_poll_micros: limits::BUSY_POLL_MICROS,
            max_payload: limits::PAYLOAD_BYTES_MAX_DEFAULT,
            max_control_line: limits::CONTROL_LINE_BYTES_MAX_DEFAULT,
            max_pending: limits::PENDING_BYTES_MAX_DEFAULT,
            max_connections: limits::CONNECTIONS_MAX_DEFAULT,
            ping_interval_ms: limits::PING_INTERVAL_MS_DEFAULT,
            ping_max: limits::PINGS_OUTSTANDING_MAX_DEFAULT,
            write_deadline_ms: limits::WRITE_DEADLINE_MS_DEFAULT,
            no_header_support: false,
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            pid_file: None,
            ports_file_dir: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start the server with these options.
    Run(Options),
    /// Print [`usage`] to stdout (with `print!`) and exit 0.
    Help,
    /// Print [`version_text`] to stdout and exit 0.
    Version,
}

/// A command-line error. `Display` is the exact text to print on stderr (one line, no newline);
/// the process then exits with [`CLI_ERROR_EXIT_CODE`].
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
    pub fn for_client(host: &str, port: u16) -> Ports {
        let nats = match host {
            "" | "0.0.0.0" => vec![format!("nats://127.0.0.1:{port}")],
            "::" | "[::]" => vec![
                format!("nats://127.0.0.1:{port}"),
                format!("nats://[::1]:{port}"),
            ],
            host if host.contains(':') && !host.starts_with('[') => {
                vec![format!("nats://[{host}]:{port}")]
            }
            host => vec![format!("nats://{host}:{port}")],
        };
        Ports {
            nats,
            ..Ports::default()
        }
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
        assert_eq!(options.ping_interval_ms, 120_000);
        assert_eq!(options.ping_max, 2);
        assert_eq!(options.write_deadline_ms, 10_000);
        assert!(options.logtime);
        assert!(!options.logtime_utc && !options.debug && !options.trace);
        assert!(!options.no_header_support && !options.pin_shards);
        assert_eq!(options.shards, 0);
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
    }

    #[test]
    fn client_ports_for_each_kind_of_host() {
        let urls = |host: &str| Ports::for_client(host, 4222).nats;
        assert_eq!(urls("0.0.0.0"), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls(""), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls("::"), ["nats://127.0.0.1:4222", "nats://[::1]:4222"]);
        assert_eq!(urls("127.0.0.1"), ["nats://127.0.0.1:4222"]);
        assert_eq!(urls("::1"), ["nats://[::1]:4222"]);
        assert_eq!(urls("localhost"), ["nats://localhost:4222"]);
        assert_eq!(
            serde_json::to_string(&Ports::for_client("127.0.0.1", 45471)).unwrap(),
            r#"{"nats":["nats://127.0.0.1:45471"]}"#
        );
    }

    #[test]
    fn empty_ports_serialize_to_an_empty_object() {
        assert_eq!(serde_json::to_string(&Ports::default()).unwrap(), "{}");
    }
}
