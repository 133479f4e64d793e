//! The command line, parsed as nats-server's Go `flag` package parses it.
//!
//! Go `flag` rules, reproduced: `-name` and `--name` are the same flag; a value is given as
//! `-name value` or `-name=value` (the next argument is taken as the value even when it starts
//! with `-`, so `-p -1` works); boolean flags take no separate value but accept `-name=<bool>`
//! (`1 t T TRUE true True 0 f F FALSE false False`); multi-letter single-dash names (`-DV`, `-VV`,
//! `-DVV`, `-sl`, `-js`) are flags of their own, never clusters; parsing stops at the first
//! non-flag argument, at `-` and after `--`; integers are Go's `strconv.ParseInt(s, 0, 64)`
//! (`0x1F`, `0o17`, `017`, `0b101`, `1_000`). The first error ends parsing.
//!
//! nats-server's order, reproduced: `-v` wins over `-h`; then the first positional argument
//! decides (`version`, `help`, or `unrecognized command`); then the rest.
//!
//! Deliberate difference: nats-server prints the flag error and its usage and exits with
//! status 0; natsring prints the same error line and exits with status 1 ([`CLI_ERROR_EXIT_CODE`]).
//! Flags nats-server has but natsring does not implement yet are parsed (so their values are
//! checked as nats-server checks them) and then refused with an error naming the flag.
//!
//! The result is an [`Invocation`]: the configuration file, and the flags as given, to be
//! applied over whatever the file says (at start and again on every reload, as nats-server's
//! `FlagSnapshot` is).

use std::path::PathBuf;

use super::go::quote as go_quote;
use super::{CliError, Command, ConfigError, Loaded, Options};
use crate::limits;

/// Exit status after a [`CliError`].
pub const CLI_ERROR_EXIT_CODE: i32 = 1;

/// The program name in messages, help and version (nats-server hardcodes its own likewise).
const PROGRAM_NAME: &str = "natsring";

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No separate value; `-name=<bool>` is accepted.
    Bool,
    /// A string value.
    Text,
    /// A Go `int` value (checked even for flags natsring refuses, as nats-server checks it).
    Integer,
}

/// What a flag sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Host,
    Port,
    ServerName,
    PidFile,
    PortsFileDir,
    LogFile,
    Logtime,
    LogtimeUtc,
    Debug,
    Trace,
    /// `-VV`: verbose trace; natsring has no verbose trace yet, so it is trace.
    TraceVerbose,
    /// `-DV`: debug and trace.
    DebugAndTrace,
    /// `-DVV`: debug and verbose trace.
    DebugAndTraceVerbose,
    /// `-m/--http_port`: HTTP monitoring's port.
    HttpPort,
    /// `-ms/--https_port`: HTTPS monitoring's port.
    HttpsPort,
    Shards,
    PinShards,
    BusyPoll,
    ClientAdvertise,
    /// `--user`: the single user's name.
    Username,
    /// `--pass`: the single user's password.
    Password,
    /// `--auth`: the token.
    Token,
    /// `--tls`: client TLS on (from the `--tls*` flags) or, given false, off.
    Tls,
    /// `--tlscert`: the server's certificate file; implies `--tls`.
    TlsCert,
    /// `--tlskey`: the certificate's key file; implies `--tls`.
    TlsKey,
    /// `--tlsverify`: require client certificates; implies `--tls`.
    TlsVerify,
    /// `--tlscacert`: the CA client certificates must chain to; implies `--tls`.
    TlsCaCert,
    LogSizeLimit,
    /// `--cluster`/`--cluster_listen`: the route listener (and credentials), as a URL.
    ClusterListen,
    /// `--routes`: the routes to dial, comma-separated.
    Routes,
    ClusterName,
    ClusterAdvertise,
    NoAdvertise,
    ConnectRetries,
    ConfigFile,
    CheckConfig,
    Signal,
    Help,
    Version,
    /// A nats-server flag natsring does not implement yet.
    Unsupported,
}

struct Flag {
    names: &'static [&'static str],
    kind: Kind,
    target: Target,
}

const fn flag(names: &'static [&'static str], kind: Kind, target: Target) -> Flag {
    Flag {
        names,
        kind,
        target,
    }
}

/// Every flag nats-server v2.15.1 defines (checked one by one against the binary), plus
/// natsring's own (`--shards`, `--pin_shards`, `--busy_poll`).
const FLAGS: &[Flag] = &[
    flag(&["a", "addr", "net"], Kind::Text, Target::Host),
    flag(&["p", "port"], Kind::Integer, Target::Port),
    flag(
        &["n", "name", "server_name"],
        Kind::Text,
        Target::ServerName,
    ),
    flag(&["P", "pid"], Kind::Text, Target::PidFile),
    flag(&["ports_file_dir"], Kind::Text, Target::PortsFileDir),
    flag(&["l", "log"], Kind::Text, Target::LogFile),
    flag(&["T", "logtime"], Kind::Bool, Target::Logtime),
    flag(&["logtime_utc"], Kind::Bool, Target::LogtimeUtc),
    flag(&["D", "debug"], Kind::Bool, Target::Debug),
    flag(&["V", "trace"], Kind::Bool, Target::Trace),
    flag(&["VV"], Kind::Bool, Target::TraceVerbose),
    flag(&["DV"], Kind::Bool, Target::DebugAndTrace),
    flag(&["DVV"], Kind::Bool, Target::DebugAndTraceVerbose),
    flag(&["shards"], Kind::Integer, Target::Shards),
    flag(&["pin_shards"], Kind::Bool, Target::PinShards),
    flag(&["busy_poll"], Kind::Integer, Target::BusyPoll),
    flag(&["client_advertise"], Kind::Text, Target::ClientAdvertise),
    flag(&["user"], Kind::Text, Target::Username),
    flag(&["pass"], Kind::Text, Target::Password),
    flag(&["auth"], Kind::Text, Target::Token),
    flag(&["tls"], Kind::Bool, Target::Tls),
    flag(&["tlscert"], Kind::Text, Target::TlsCert),
    flag(&["tlskey"], Kind::Text, Target::TlsKey),
    flag(&["tlsverify"], Kind::Bool, Target::TlsVerify),
    flag(&["tlscacert"], Kind::Text, Target::TlsCaCert),
    flag(&["log_size_limit"], Kind::Integer, Target::LogSizeLimit),
    flag(&["routes"], Kind::Text, Target::Routes),
    flag(
        &["cluster", "cluster_listen"],
        Kind::Text,
        Target::ClusterListen,
    ),
    flag(&["cluster_name"], Kind::Text, Target::ClusterName),
    flag(&["no_advertise"], Kind::Bool, Target::NoAdvertise),
    flag(&["cluster_advertise"], Kind::Text, Target::ClusterAdvertise),
    flag(&["connect_retries"], Kind::Integer, Target::ConnectRetries),
    flag(&["c", "config"], Kind::Text, Target::ConfigFile),
    flag(&["t"], Kind::Bool, Target::CheckConfig),
    flag(&["sl", "signal"], Kind::Text, Target::Signal),
    flag(&["h", "help"], Kind::Bool, Target::Help),
    flag(&["v", "version"], Kind::Bool, Target::Version),
    flag(&["m", "http_port"], Kind::Integer, Target::HttpPort),
    flag(&["ms", "https_port"], Kind::Integer, Target::HttpsPort),
    // nats-server flags not implemented yet.
    flag(&["s", "syslog"], Kind::Bool, Target::Unsupported),
    flag(&["r", "remote_syslog"], Kind::Text, Target::Unsupported),
    flag(&["max_traced_msg_len"], Kind::Integer, Target::Unsupported),
    flag(&["js", "jetstream"], Kind::Bool, Target::Unsupported),
    flag(&["sd", "store_dir"], Kind::Text, Target::Unsupported),
    flag(&["profile"], Kind::Integer, Target::Unsupported),
    flag(&["help_tls"], Kind::Bool, Target::Unsupported),
];

fn find_flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.names.contains(&name))
}

/// A flag's value after Go-style checking.
#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    Text(String),
    Integer(i64),
}

/// One flag as given on the command line, checked: applied over the file's options at start
/// and on every reload.
#[derive(Debug, Clone)]
struct FlagSetting {
    target: Target,
    value: Value,
}

/// `--signal <command>[=<pid or pid file>]`, to send to a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRequest {
    /// `stop`, `quit`, `term`, `reopen`, `reload` or `ldm` (checked when it is sent, as
    /// nats-server checks it).
    pub command: String,
    /// The pid, a pid file's path, or `None` to find the process by name.
    pub pid: Option<String>,
}

/// A command line to run a server from: its configuration file and its flags.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `-c FILE`; `None` (or empty): flags only.
    pub config_file: Option<PathBuf>,
    /// The flags given, in order, already checked.
    flags: Vec<FlagSetting>,
}

impl Invocation {
    /// The options this command line asks for, made as nats-server makes them: the defaults,
    /// then the configuration file, then the flags on top, then validation. Called at start
    /// and again on every reload (the file may have changed; the flags have not). The error is
    /// what to print (the program name first, as nats-server prints it).
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let (mut options, warnings) = self.file_options()?;
        apply_flags(&mut options, &self.flags);
        apply_cluster_flags(&mut options, &self.flags).map_err(ConfigError)?;
        apply_tls_flags(&mut options, &self.flags).map_err(ConfigError)?;
        options.validate().map_err(ConfigError)?;
        Ok(Loaded { options, warnings })
    }

    /// [`Invocation::load`]'s options, the file's warnings dropped.
    pub fn options(&self) -> Result<Options, ConfigError> {
        self.load().map(|loaded| loaded.options)
    }

    /// `-t`: the configuration file's own checks, as nats-server's `-t` runs them (no flags, no
    /// start-up checks; a warning fails the check). `Ok` is the line to print.
    pub fn check(&self) -> Result<String, ConfigError> {
        let (options, warnings) = self.file_options()?;
        if !warnings.is_empty() {
            return Err(ConfigError(warnings.join("\n")));
        }
        Ok(format!(
            "{PROGRAM_NAME}: configuration file {} is valid ({})",
            self.config_file
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            options.config_digest.unwrap_or_default()
        ))
    }

    /// The defaults with the configuration file on top, and the file's warnings.
    fn file_options(&self) -> Result<(Options, Vec<String>), ConfigError> {
        let mut options = Options::default();
        let mut warnings = Vec::new();
        if let Some(path) = &self.config_file {
            warnings = super::file::apply_file(&mut options, path).map_err(ConfigError)?;
        }
        Ok((options, warnings))
    }
}

/// Puts the flags' values into `options`, in the order given (the last of a flag wins).
fn apply_flags(options: &mut Options, flags: &[FlagSetting]) {
    // The combined flags' last values, if given; applied after all the others.
    let mut debug_and_trace = None;
    let mut trace_verbose = None;
    let mut debug_and_trace_verbose = None;
    for setting in flags {
        match (setting.target, &setting.value) {
            (Target::Host, Value::Text(host)) => {
                // nats-server: an empty host is the default host.
                options.host = if host.is_empty() {
                    limits::HOST_DEFAULT.to_string()
                } else {
                    host.clone()
                };
            }
            (Target::Port, Value::Integer(port)) => {
                options.port = match *port {
                    -1 => 0,
                    // nats-server: port 0 is the default port, not a random one (and a flag
                    // given as 0 still overrides the file's port).
                    0 => limits::PORT_DEFAULT,
                    port => port as u16,
                };
            }
            // As nats-server 2.15.1, which parses the flags again over the file's options: a
            // flag of 0 turns the file's monitoring port off.
            (Target::HttpPort, Value::Integer(port)) => options.http_port = *port as i32,
            (Target::HttpsPort, Value::Integer(port)) => options.https_port = *port as i32,
            (Target::ServerName, Value::Text(name)) => {
                // As Go's flag package: the flag's value replaces the file's, even empty.
                options.server_name = non_empty(name.clone());
            }
            (Target::ClientAdvertise, Value::Text(url)) => {
                // As Go's flag package: the flag's value replaces the file's, even empty.
                options.client_advertise = non_empty(url.clone());
            }
            // As Go's flag package: the flag's value replaces the file's, even empty (which
            // nats-server takes as not set).
            (Target::Username, Value::Text(name)) => {
                options.auth.username = non_empty(name.clone())
            }
            (Target::Password, Value::Text(password)) => {
                options.auth.password = non_empty(password.clone())
            }
            (Target::Token, Value::Text(token)) => options.auth.token = non_empty(token.clone()),
            (Target::PidFile, Value::Text(path)) => {
                // As Go's flag package: the flag's value replaces the file's, even empty.
                options.pid_file = non_empty(path.clone()).map(Into::into);
            }
            (Target::PortsFileDir, Value::Text(path)) => {
                // As Go's flag package: the flag's value replaces the file's, even empty.
                options.ports_file_dir = non_empty(path.clone()).map(Into::into);
            }
            (Target::LogFile, Value::Text(path)) => {
                // As Go's flag package: the flag's value replaces the file's, even empty.
                options.log_file = non_empty(path.clone()).map(Into::into);
            }
            (Target::LogSizeLimit, Value::Integer(bytes)) => {
                options.log_size_limit = (*bytes).max(0) as u64;
            }
            (Target::Logtime, Value::Bool(on)) => options.logtime = *on,
            (Target::LogtimeUtc, Value::Bool(on)) => options.logtime_utc = *on,
            (Target::Debug, Value::Bool(on)) => options.debug = *on,
            (Target::Trace, Value::Bool(on)) => options.trace = *on,
            (Target::TraceVerbose, Value::Bool(on)) => trace_verbose = Some(*on),
            (Target::DebugAndTrace, Value::Bool(on)) => debug_and_trace = Some(*on),
            (Target::DebugAndTraceVerbose, Value::Bool(on)) => debug_and_trace_verbose = Some(*on),
            (Target::Shards, Value::Integer(shards)) => options.shards = *shards as usize,
            (Target::PinShards, Value::Bool(on)) => options.pin_shards = *on,
            (Target::BusyPoll, Value::Integer(micros)) => options.busy_poll_micros = *micros as u64,
            // As Go's flag package: the flag's value replaces the file's, even empty.
            (Target::ClusterName, Value::Text(name)) => {
                cluster(options).name = non_empty(name.clone())
            }
            (Target::ClusterAdvertise, Value::Text(url)) => {
                cluster(options).advertise = non_empty(url.clone())
            }
            (Target::NoAdvertise, Value::Bool(on)) => cluster(options).no_advertise = *on,
            (Target::ConnectRetries, Value::Integer(retries)) => {
                // nats-server: zero or less, no retries.
                cluster(options).connect_retries = (*retries).clamp(0, i64::from(u32::MAX)) as u32
            }
            // After the others, in nats-server's order: `apply_cluster_flags`.
            (Target::ClusterListen | Target::Routes, _) => {}
            // Together, after the file is read: `apply_tls_flags`.
            (
                Target::Tls
                | Target::TlsCert
                | Target::TlsKey
                | Target::TlsVerify
                | Target::TlsCaCert,
                _,
            ) => {}
            (target, value) => {
                unreachable!("flag {target:?} with {value:?} is not an option setting")
            }
        }
    }
    // As nats-server (its last `fs.Visit`, in the flags' name order DV, DVV, VV): a combined
    // flag given sets what it names to its value, over the single flags and the file, so
    // `-D -DV=false` logs no debug and `-DV -D=false` does. (natsring's trace has no verbose
    // form: verbose trace is trace.)
    if let Some(on) = debug_and_trace {
        options.debug = on;
        options.trace = on;
    }
    if let Some(on) = debug_and_trace_verbose {
        options.debug = on;
        options.trace = on;
    }
    if let Some(on) = trace_verbose {
        options.trace = on;
    }
}

/// The cluster options the flags change, made if the file has no `cluster` block.
fn cluster(options: &mut Options) -> &mut super::ClusterOptions {
    options.cluster.get_or_insert_with(Default::default)
}

/// `--cluster` (`--cluster_listen`) and then `--routes`, the last of each given, as nats-server
/// applies them after the file (its `fs.Visit`, in the flags' name order). The error is
/// nats-server's.
fn apply_cluster_flags(options: &mut Options, flags: &[FlagSetting]) -> Result<(), String> {
    let last = |wanted: Target| {
        flags
            .iter()
            .rev()
            .find_map(|setting| match (&setting.value, setting.target) {
                (Value::Text(text), target) if target == wanted => Some(text.as_str()),
                _ => None,
            })
    };
    if let Some(url) = last(Target::ClusterListen) {
        super::cluster::apply_listen_flag(options, url)?;
    }
    if let Some(list) = last(Target::Routes) {
        super::cluster::apply_routes_flag(options, list)?;
    }
    Ok(())
}

/// The `--tls*` flags over the file's options, as nats-server's `overrideTLS` applies them:
/// `--tls=false` turns client TLS off (and the other `--tls*` flags are ignored); otherwise any
/// `--tls*` flag makes a TLS configuration from the flags alone (`--tlscert`, `--tlskey`,
/// `--tlscacert`, `--tlsverify`, default suites and curves), which must name a certificate and
/// a key, and whose files are loaded to check them. What nats-server keeps from the file's
/// `tls {}` block (its other fields live outside `TLSConfig`) natsring keeps too: `timeout`,
/// `pinned_certs`, `handshake_first` and its fallback, and `verify_and_map` when the flags
/// verify. The error is nats-server's text.
fn apply_tls_flags(options: &mut Options, flags: &[FlagSetting]) -> Result<(), String> {
    let mut given = false;
    let mut enabled = None;
    let (mut cert_file, mut key_file, mut ca_file) = (String::new(), String::new(), String::new());
    let mut verify = false;
    for setting in flags {
        match (setting.target, &setting.value) {
            (Target::Tls, Value::Bool(on)) => enabled = Some(*on),
            (Target::TlsCert, Value::Text(path)) => cert_file.clone_from(path),
            (Target::TlsKey, Value::Text(path)) => key_file.clone_from(path),
            (Target::TlsCaCert, Value::Text(path)) => ca_file.clone_from(path),
            (Target::TlsVerify, Value::Bool(on)) => verify = *on,
            _ => continue,
        }
        given = true;
    }
    if !given {
        return Ok(());
    }
    if enabled == Some(false) {
        options.tls = None;
        return Ok(());
    }
    if cert_file.is_empty() {
        return Err("TLS Server certificate must be present and valid".to_string());
    }
    if key_file.is_empty() {
        return Err("TLS Server private key must be present and valid".to_string());
    }
    let mut tls = super::TlsOptions::new(cert_file.into(), key_file.into());
    tls.ca_file = non_empty(ca_file).map(Into::into);
    tls.verify = verify;
    if let Some(file) = options.tls.take() {
        tls.timeout = file.timeout;
        tls.pinned_certs = file.pinned_certs;
        tls.handshake_first = file.handshake_first;
        tls.handshake_first_fallback = file.handshake_first_fallback;
        tls.verify_and_map = file.verify_and_map && verify;
    }
    crate::tls::load(&tls)?;
    options.tls = Some(tls);
    Ok(())
}

/// Parse state: what is decided only after all flags are seen.
#[derive(Default)]
struct Parsed {
    flags: Vec<FlagSetting>,
    config_file: Option<PathBuf>,
    check_config: bool,
    signal: Option<String>,
    help: bool,
    version: bool,
    /// The first refused flag, as given (`-config`), reported after help and version.
    first_unsupported: Option<String>,
}

/// Parses the arguments (without `argv[0]`) the way nats-server does.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let args: Vec<String> = args.into_iter().collect();
    let mut parsed = Parsed::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        // Go: "-" and anything not starting with '-' end the flags; "--" ends them and is eaten.
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        index += 1;
        if arg == "--" {
            break;
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        let body = &arg[dashes..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(CliError(format!("bad flag syntax: {arg}")));
        }
        let (name, inline_value) = match body.find('=') {
            Some(at) => (&body[..at], Some(&body[at + 1..])),
            None => (body, None),
        };
        let Some(flag) = find_flag(name) else {
            return Err(CliError(format!("flag provided but not defined: -{name}")));
        };
        // The value as given: inline after '=', else the next argument for non-boolean flags.
        let raw = match (inline_value, flag.kind) {
            (Some(text), _) => text,
            (None, Kind::Bool) => "",
            (None, Kind::Text | Kind::Integer) => {
                let Some(next) = args.get(index) else {
                    return Err(CliError(format!("flag needs an argument: -{name}")));
                };
                index += 1;
                next.as_str()
            }
        };
        let value = match flag.kind {
            Kind::Bool if inline_value.is_none() => Value::Bool(true),
            Kind::Bool => Value::Bool(parse_go_bool(raw).ok_or_else(|| {
                CliError(format!(
                    "invalid boolean value {} for -{name}: parse error",
                    go_quote(raw)
                ))
            })?),
            Kind::Text => Value::Text(raw.to_string()),
            Kind::Integer => Value::Integer(
                parse_go_int(raw).map_err(|error| invalid_value(raw, name, error.message()))?,
            ),
        };
        take(&mut parsed, flag.target, name, raw, value)?;
    }

    if parsed.version {
        return Ok(Command::Version);
    }
    if parsed.help {
        return Ok(Command::Help);
    }
    // nats-server: the first positional argument decides; the rest are ignored.
    if let Some(first) = args.get(index) {
        return match first.as_str() {
            "version" => Ok(Command::Version),
            "help" => Ok(Command::Help),
            other => Err(CliError(format!(
                "{PROGRAM_NAME}: unrecognized command: {}",
                go_quote(other)
            ))),
        };
    }
    if let Some(name) = parsed.first_unsupported {
        return Err(CliError(format!(
            "{PROGRAM_NAME}: flag -{name} is not supported yet (see {PROGRAM_NAME} -h)"
        )));
    }
    // nats-server handles --signal before it reads the configuration file.
    if let Some(signal) = parsed.signal {
        return signal_request(&signal).map(Command::Signal);
    }
    let invocation = Invocation {
        config_file: parsed.config_file,
        flags: parsed.flags,
    };
    if parsed.check_config {
        if invocation.config_file.is_none() {
            return Err(CliError(format!(
                "{PROGRAM_NAME}: must specify [-c, --config] option to check configuration file syntax"
            )));
        }
        return Ok(Command::Check(invocation));
    }
    // The flags' own checks (a server name with spaces), before any file is read.
    let mut flags_only = Options::default();
    apply_flags(&mut flags_only, &invocation.flags);
    flags_only
        .validate()
        .map_err(|error| CliError(format!("{PROGRAM_NAME}: {error}")))?;
    Ok(Command::Run(invocation))
}

/// `--signal`'s value: `<command>` or `<command>=<pid or pid file>` (a third `=` part is
/// nats-server's `invalid signal parameters`). A pid file is read now, as nats-server reads it.
fn signal_request(text: &str) -> Result<SignalRequest, CliError> {
    let parts: Vec<&str> = text.split('=').collect();
    if parts.len() > 2 {
        return Err(CliError(format!(
            "{PROGRAM_NAME}: invalid signal parameters: [{}]",
            parts[2..].join(" ")
        )));
    }
    let pid = parts.get(1).map(|pid_or_file| {
        std::fs::read_to_string(pid_or_file).unwrap_or_else(|_| pid_or_file.to_string())
    });
    Ok(SignalRequest {
        command: parts[0].to_string(),
        pid,
    })
}

/// Checks a flag's value as nats-server (and natsring's own bounds) do, and keeps it.
fn take(
    parsed: &mut Parsed,
    target: Target,
    name: &str,
    raw: &str,
    value: Value,
) -> Result<(), CliError> {
    match (target, &value) {
        (Target::Port | Target::HttpPort | Target::HttpsPort, Value::Integer(port))
            if !(-1..=65535).contains(port) =>
        {
            return Err(invalid_value(
                raw,
                name,
                "port out of range (1-65535, or -1 for a random port)",
            ));
        }
        (Target::Shards, Value::Integer(shards))
            if !usize::try_from(*shards).is_ok_and(|shards| shards <= limits::SHARDS_MAX) =>
        {
            return Err(invalid_value(
                raw,
                name,
                &format!(
                    "value out of range (0-{}, 0 = one per CPU)",
                    limits::SHARDS_MAX
                ),
            ));
        }
        (Target::BusyPoll, Value::Integer(micros))
            if !u64::try_from(*micros)
                .is_ok_and(|micros| micros <= limits::BUSY_POLL_MICROS_MAX) =>
        {
            return Err(invalid_value(
                raw,
                name,
                &format!("value out of range (0-{} µs)", limits::BUSY_POLL_MICROS_MAX),
            ));
        }
        (Target::ConfigFile, Value::Text(path)) => {
            parsed.config_file = (!path.is_empty()).then(|| path.into());
            return Ok(());
        }
        (Target::CheckConfig, Value::Bool(on)) => {
            parsed.check_config = *on;
            return Ok(());
        }
        (Target::Signal, Value::Text(signal)) => {
            parsed.signal = (!signal.is_empty()).then(|| signal.clone());
            return Ok(());
        }
        (Target::Help, Value::Bool(on)) => {
            parsed.help = *on;
            return Ok(());
        }
        (Target::Version, Value::Bool(on)) => {
            parsed.version = *on;
            return Ok(());
        }
        (Target::Unsupported, _) => {
            if parsed.first_unsupported.is_none() {
                parsed.first_unsupported = Some(name.to_string());
            }
            return Ok(());
        }
        _ => {}
    }
    parsed.flags.push(FlagSetting { target, value });
    Ok(())
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn invalid_value(text: &str, name: &str, reason: &str) -> CliError {
    CliError(format!(
        "invalid value {} for flag -{name}: {reason}",
        go_quote(text)
    ))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntError {
    Syntax,
    Range,
}

impl IntError {
    /// The text Go's `flag` package prints for it.
    fn message(self) -> &'static str {
        match self {
            IntError::Syntax => "parse error",
            IntError::Range => "value out of range",
        }
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`: optional sign, base prefix `0x`/`0o`/`0b` or a leading
/// `0` for octal, underscores allowed only between digits (or after a base prefix).
fn parse_go_int(text: &str) -> Result<i64, IntError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned.is_empty() {
        return Err(IntError::Syntax);
    }
    let bytes = unsigned.as_bytes();
    let (base, digits) = if bytes[0] == b'0' && bytes.len() >= 3 {
        match bytes[1].to_ascii_lowercase() {
            b'x' => (16, &unsigned[2..]),
            b'o' => (8, &unsigned[2..]),
            b'b' => (2, &unsigned[2..]),
            _ => (8, &unsigned[1..]),
        }
    } else if bytes[0] == b'0' {
        (8, &unsigned[1..])
    } else {
        (10, unsigned)
    };
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    let mut saw_underscore = false;
    for byte in digits.bytes() {
        if byte == b'_' {
            saw_underscore = true;
            continue;
        }
        let digit = match byte {
            b'0'..=b'9' => u64::from(byte - b'0'),
            b'a'..=b'z' => u64::from(byte - b'a') + 10,
            b'A'..=b'Z' => u64::from(byte - b'A') + 10,
            _ => return Err(IntError::Syntax),
        };
        if digit >= base {
            return Err(IntError::Syntax);
        }
        match magnitude
            .checked_mul(base)
            .and_then(|value| value.checked_add(digit))
        {
            Some(value) => magnitude = value,
            None => overflow = true,
        }
    }
    if saw_underscore && !underscores_between_digits(text) {
        return Err(IntError::Syntax);
    }
    let limit = if negative {
        1u64 << 63
    } else {
        (1u64 << 63) - 1
    };
    if overflow || magnitude > limit {
        return Err(IntError::Range);
    }
    Ok(if negative {
        (magnitude as i64).wrapping_neg()
    } else {
        magnitude as i64
    })
}

/// Go's `underscoreOK`: each underscore sits between two digits, or between a base prefix and a
/// digit.
fn underscores_between_digits(text: &str) -> bool {
    let mut bytes = text.as_bytes();
    if let Some(b'-' | b'+') = bytes.first() {
        bytes = &bytes[1..];
    }
    #[derive(PartialEq)]
    enum Last {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut last = Last::Start;
    let mut hex = false;
    let mut start = 0;
    if bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x')
    {
        start = 2;
        last = Last::Digit;
        hex = bytes[1].eq_ignore_ascii_case(&b'x');
    }
    for &byte in &bytes[start..] {
        if byte.is_ascii_digit() || (hex && byte.is_ascii_hexdigit()) {
            last = Last::Digit;
        } else if byte == b'_' {
            if last != Last::Digit {
                return false;
            }
            last = Last::Underscore;
        } else {
            if last == Last::Underscore {
                return false;
            }
            last = Last::Other;
        }
    }
    last != Last::Underscore
}

/// `<program>: v<version>`, as `nats-server -v` prints `nats-server: v2.15.1`.
pub fn version_text() -> String {
    format!("{PROGRAM_NAME}: v{}", env!("CARGO_PKG_VERSION"))
}

/// The help text, in nats-server's layout (leading blank line, trailing blank line: print it with
/// `print!`). Lists what natsring supports and the nats-server flags it refuses for now.
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "
Usage: natsring [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for a random port)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).
    -m, --http_port <port>           Use port for http monitoring (-1 for a random port)
    -ms,--https_port <port>          Use port for https monitoring (-1 for a random port)
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to natsring process (ldm, stop, quit, term, reopen, reload)
                                     pid can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natsring.pid)

Logging Options:
    -l, --log <file>                 File to redirect log output
        --log_size_limit <bytes>     Rotate the log file once it is this big (default: 0, never)
    -T, --logtime                    Timestamp log entries (default: true)
        --logtime_utc                Timestamps in UTC instead of local timezone (default: false)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (same as -V for now)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (same as -DV for now)

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes
    (natsring reads these options and does not connect routes yet)

Shard Options (natsring only):
        --shards <n>                 Event loops, one thread each (default: 0, one per CPU the process may run on)
        --pin_shards                 Pin shard i to the i-th CPU the process may run on (default: false)
        --busy_poll <us>             Watch for work up to this long before sleeping, while it pays (default: 50; 0: never)

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version

Not Supported Yet (nats-server flags; natsring stops with an error and exit status 1):
    -s, --syslog   -r, --remote_syslog
    --max_traced_msg_len   -js, --jetstream   -sd, --store_dir   --profile   --help_tls

Flags follow Go's rules: -port, --port, -p 4222, -p=4222 are the same; -D=false turns a flag off.
A bad flag or value prints one error line on stderr and exits with status 1
(nats-server prints its usage and exits 0).

";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, CliError> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    fn run(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(invocation)) => invocation.options().unwrap(),
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args) {
            Err(CliError(message)) => message,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    /// Every way Go's flag package accepts to give `name` the value `value`.
    fn spellings(name: &str, value: &str) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for dashes in ["-", "--"] {
            all.push(vec![format!("{dashes}{name}"), value.to_string()]);
            all.push(vec![format!("{dashes}{name}={value}")]);
        }
        all
    }

    fn run_owned(args: Vec<String>) -> Options {
        match parse_args(args.clone()) {
            Ok(Command::Run(invocation)) => invocation.options().unwrap(),
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let options = run(&[]);
        assert_eq!(options.host, "0.0.0.0");
        assert_eq!(options.port, 4222);
        assert!(options.logtime);
    }

    #[test]
    fn host_in_every_spelling() {
        for name in ["a", "addr", "net"] {
            for args in spellings(name, "127.0.0.1") {
                assert_eq!(run_owned(args).host, "127.0.0.1");
            }
        }
        assert_eq!(run(&["-a", ""]).host, "0.0.0.0");
        assert_eq!(run(&["-a", "::1"]).host, "::1");
    }

    #[test]
    fn port_in_every_spelling() {
        for name in ["p", "port"] {
            for args in spellings(name, "4333") {
                assert_eq!(run_owned(args).port, 4333);
            }
            for args in spellings(name, "-1") {
                assert_eq!(run_owned(args).port, 0, "-1 means random");
            }
        }
        assert_eq!(run(&["-p", "0"]).port, 4222, "0 means the default port");
        assert_eq!(run(&["-p", "65535"]).port, 65535);
        assert_eq!(run(&["-p", "0x10"]).port, 16);
        assert_eq!(run(&["-p", "1_000"]).port, 1000);
        assert_eq!(run(&["-p", "+5"]).port, 5);
        assert_eq!(run(&["-p", "1", "-p", "2"]).port, 2, "last wins");
    }

    #[test]
    fn bad_ports() {
        assert_eq!(
            error(&["-p", "abc"]),
            r#"invalid value "abc" for flag -p: parse error"#
        );
        assert_eq!(
            error(&["--port=abc"]),
            r#"invalid value "abc" for flag -port: parse error"#
        );
        assert_eq!(
            error(&["-port", "abc"]),
            r#"invalid value "abc" for flag -port: parse error"#
        );
        assert_eq!(
            error(&["-p", "99999999999999999999"]),
            r#"invalid value "99999999999999999999" for flag -p: value out of range"#
        );
        for port in ["65536", "-2", "99999"] {
            assert!(
                error(&["-p", port]).starts_with(&format!(
                    "invalid value \"{port}\" for flag -p: port out of range"
                )),
                "{port}"
            );
        }
        assert!(
            error(&["--port=0x10000"]).starts_with(r#"invalid value "0x10000" for flag -port:"#),
            "the value is quoted as given"
        );
        assert_eq!(error(&["-p"]), "flag needs an argument: -p");
        assert_eq!(error(&["-T=false", "-p"]), "flag needs an argument: -p");
        assert_eq!(
            error(&["-p", ""]),
            r#"invalid value "" for flag -p: parse error"#
        );
    }

    #[test]
    fn server_name_in_every_spelling() {
        for name in ["n", "name", "server_name"] {
            for args in spellings(name, "alpha") {
                assert_eq!(run_owned(args).server_name.as_deref(), Some("alpha"));
            }
        }
        assert_eq!(run(&["-n", ""]).server_name, None);
        assert_eq!(
            run(&["-n", "-D"]).server_name.as_deref(),
            Some("-D"),
            "a value may start with a dash"
        );
        assert_eq!(
            error(&["-n", "a b"]),
            "natsring: server name cannot contain spaces"
        );
        let long = "x".repeat(limits::SERVER_NAME_BYTES_MAX + 1);
        assert!(error(&["-n", &long]).contains("cannot be longer"));
        let longest = "x".repeat(limits::SERVER_NAME_BYTES_MAX);
        assert_eq!(run(&["-n", &longest]).server_name, Some(longest));
    }

    #[test]
    fn paths_in_every_spelling() {
        for name in ["l", "log"] {
            for args in spellings(name, "/tmp/n.log") {
                assert_eq!(run_owned(args).log_file, Some("/tmp/n.log".into()));
            }
        }
        for name in ["P", "pid"] {
            for args in spellings(name, "/tmp/n.pid") {
                assert_eq!(run_owned(args).pid_file, Some("/tmp/n.pid".into()));
            }
        }
        for args in spellings("ports_file_dir", "/tmp/ports") {
            assert_eq!(run_owned(args).ports_file_dir, Some("/tmp/ports".into()));
        }
        let options = run(&["-l", "", "-P", "", "--ports_file_dir", ""]);
        assert!(options.log_file.is_none() && options.pid_file.is_none());
        assert!(options.ports_file_dir.is_none());
    }

    #[test]
    fn boolean_flags_in_every_form() {
        type Get = fn(&Options) -> bool;
        let cases: [(&[&str], Get); 5] = [
            (&["D", "debug"], |o| o.debug),
            (&["V", "trace"], |o| o.trace),
            (&["logtime_utc"], |o| o.logtime_utc),
            (&["pin_shards"], |o| o.pin_shards),
            (&["T", "logtime"], |o| o.logtime),
        ];
        for (names, get) in cases {
            for name in names {
                for dashes in ["-", "--"] {
                    assert!(get(&run_owned(vec![format!("{dashes}{name}")])));
                    for yes in ["1", "t", "T", "TRUE", "true", "True"] {
                        assert!(get(&run_owned(vec![format!("{dashes}{name}={yes}")])));
                    }
                    for no in ["0", "f", "F", "FALSE", "false", "False"] {
                        assert!(!get(&run_owned(vec![format!("{dashes}{name}={no}")])));
                    }
                }
            }
        }
        assert!(!run(&["-T=false"]).logtime);
        assert!(!run(&["-D", "-D=false"]).debug, "last wins");
    }

    #[test]
    fn bad_boolean_values() {
        assert_eq!(
            error(&["-D=maybe"]),
            r#"invalid boolean value "maybe" for -D: parse error"#
        );
        assert_eq!(
            error(&["--logtime=yes"]),
            r#"invalid boolean value "yes" for -logtime: parse error"#
        );
        assert_eq!(
            error(&["-D=", "-p", "1"]),
            r#"invalid boolean value "" for -D: parse error"#
        );
        // A boolean flag never takes the next argument: it is a positional one.
        assert_eq!(
            error(&["-D", "true"]),
            r#"natsring: unrecognized command: "true""#
        );
    }

    #[test]
    fn combined_logging_flags_are_their_own_flags() {
        let options = run(&["-DV"]);
        assert!(options.debug && options.trace);
        let options = run(&["--DVV"]);
        assert!(options.debug && options.trace);
        let options = run(&["-VV"]);
        assert!(!options.debug && options.trace);
        // As nats-server (checked by its debug lines): a combined flag given wins over the
        // single ones, whatever the order, and over the file.
        let options = run(&["-DV", "-D=false", "-V=false"]);
        assert!(options.debug && options.trace);
        let options = run(&["-D", "-V", "-DV=false"]);
        assert!(!options.debug && !options.trace);
        let options = run(&["-DV=false"]);
        assert!(!options.debug && !options.trace);
        let options = run(&["-DV", "-VV=false"]);
        assert!(options.debug && !options.trace, "VV is applied after DV");
        assert_eq!(error(&["-DX"]), "flag provided but not defined: -DX");
        assert_eq!(error(&["-VD"]), "flag provided but not defined: -VD");
    }

    #[test]
    fn busy_poll() {
        assert_eq!(run(&[]).busy_poll_micros, limits::BUSY_POLL_MICROS);
        for args in spellings("busy_poll", "0") {
            assert_eq!(run_owned(args).busy_poll_micros, 0);
        }
        assert_eq!(run(&["--busy_poll", "200"]).busy_poll_micros, 200);
        assert!(error(&["--busy_poll", "-1"])
            .starts_with(r#"invalid value "-1" for flag -busy_poll: value out of range"#));
        assert!(error(&["--busy_poll", "10001"])
            .starts_with(r#"invalid value "10001" for flag -busy_poll: value out of range"#));
    }

    #[test]
    fn shards() {
        for args in spellings("shards", "4") {
            assert_eq!(run_owned(args).shards, 4);
        }
        assert_eq!(run(&["--shards", "0"]).shards, 0);
        assert_eq!(
            run(&["--shards", &limits::SHARDS_MAX.to_string()]).shards,
            limits::SHARDS_MAX
        );
        assert!(error(&["--shards", "-1"])
            .starts_with(r#"invalid value "-1" for flag -shards: value out of range"#));
        assert!(error(&["--shards", "257"])
            .starts_with(r#"invalid value "257" for flag -shards: value out of range"#));
        assert_eq!(
            error(&["--shards", "x"]),
            r#"invalid value "x" for flag -shards: parse error"#
        );
    }

    #[test]
    fn unknown_flags_and_bad_syntax() {
        assert_eq!(error(&["--bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(error(&["-bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(
            error(&["--max_payload", "5"]),
            "flag provided but not defined: -max_payload"
        );
        assert_eq!(
            error(&["--bogus=1"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(error(&["---port", "1"]), "bad flag syntax: ---port");
        assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(error(&["--=x"]), "bad flag syntax: --=x");
        // The first error ends parsing.
        assert_eq!(
            error(&["-p", "x", "--bogus"]),
            r#"invalid value "x" for flag -p: parse error"#
        );
    }

    #[test]
    fn positional_arguments() {
        assert_eq!(error(&["foo"]), r#"natsring: unrecognized command: "foo""#);
        assert_eq!(
            error(&["-p", "4223", "foo", "bar"]),
            r#"natsring: unrecognized command: "foo""#
        );
        assert_eq!(
            error(&["--", "-D"]),
            r#"natsring: unrecognized command: "-D""#
        );
        assert_eq!(error(&["-"]), r#"natsring: unrecognized command: "-""#);
        assert_eq!(
            error(&["foo", "-D"]),
            r#"natsring: unrecognized command: "foo""#,
            "flags end at the first positional argument"
        );
        assert_eq!(
            error(&["say \"hi\""]),
            r#"natsring: unrecognized command: "say \"hi\"""#
        );
        assert!(matches!(parse(&["help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["help", "foo"]), Ok(Command::Help)));
        assert!(matches!(parse(&["version"]), Ok(Command::Version)));
        assert!(matches!(parse(&["version", "help"]), Ok(Command::Version)));
        assert!(matches!(
            parse(&["-p", "1", "--", "help"]),
            Ok(Command::Help)
        ));
        assert!(parse(&["foo", "help"]).is_err());
    }

    #[test]
    fn help_and_version() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["-help"],
            &["-h=true"],
            &["-h", "foo"],
        ] {
            assert!(matches!(parse(args), Ok(Command::Help)), "{args:?}");
        }
        for args in [
            &["-v"][..],
            &["--version"],
            &["-v", "-h"],
            &["-h", "-v"],
            &["-v", "foo"],
        ] {
            assert!(matches!(parse(args), Ok(Command::Version)), "{args:?}");
        }
        assert!(matches!(parse(&["-h", "version"]), Ok(Command::Help)));
        assert!(matches!(parse(&["-h=false"]), Ok(Command::Run(_))));
        // Flag errors come before help, as in nats-server.
        assert!(parse(&["-h", "-p", "abc"]).is_err());
        assert!(matches!(
            parse(&["-c", "/nonexistent", "-h"]),
            Ok(Command::Help)
        ));
        assert_eq!(
            version_text(),
            format!("natsring: v{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn config_file_check_and_signal() {
        for args in [
            &["-c", "server.conf"][..],
            &["--config=server.conf"],
            &["-config", "server.conf"],
        ] {
            match parse(args) {
                Ok(Command::Run(invocation)) => {
                    assert_eq!(
                        invocation.config_file,
                        Some("server.conf".into()),
                        "{args:?}"
                    )
                }
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert!(matches!(
            parse(&["-c", ""]),
            Ok(Command::Run(Invocation {
                config_file: None,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["-t", "-c", "x.conf"]),
            Ok(Command::Check(_))
        ));
        assert!(matches!(
            parse(&["-c", "x.conf", "-t=true"]),
            Ok(Command::Check(_))
        ));
        assert!(matches!(
            parse(&["-c", "x.conf", "-t=false"]),
            Ok(Command::Run(_))
        ));
        assert_eq!(
            error(&["-t"]),
            "natsring: must specify [-c, --config] option to check configuration file syntax"
        );
        for (args, command, pid) in [
            (&["-sl", "reload"][..], "reload", None),
            (&["--signal=ldm=1234"], "ldm", Some("1234")),
            (
                &["-signal", "stop=/nonexistent/natsring.pid"],
                "stop",
                Some("/nonexistent/natsring.pid"),
            ),
        ] {
            match parse(args) {
                Ok(Command::Signal(request)) => {
                    assert_eq!(request.command, command);
                    assert_eq!(request.pid.as_deref(), pid);
                }
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert_eq!(
            error(&["-sl", "quit=1=2=3"]),
            "natsring: invalid signal parameters: [2 3]"
        );
        // A pid file's content is the pid.
        let path = std::env::temp_dir().join(format!("natsring-cli-{}.pid", std::process::id()));
        std::fs::write(&path, "4321").unwrap();
        match parse(&["-sl", &format!("term={}", path.display())]) {
            Ok(Command::Signal(request)) => assert_eq!(request.pid.as_deref(), Some("4321")),
            other => panic!("gave {other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn flags_win_over_the_file_and_empty_ones_clear_it() {
        let mut options = Options {
            port: 5000,
            server_name: Some("from-file".into()),
            debug: true,
            log_size_limit: 7,
            ..Options::default()
        };
        let Ok(Command::Run(invocation)) = parse(&[
            "-p",
            "6000",
            "-n",
            "",
            "-D=false",
            "--log_size_limit",
            "1024",
        ]) else {
            panic!()
        };
        apply_flags(&mut options, &invocation.flags);
        assert_eq!(options.port, 6000);
        assert_eq!(options.server_name, None);
        assert!(!options.debug);
        assert_eq!(options.log_size_limit, 1024);
        assert_eq!(options.client_advertise, None);
        let Ok(Command::Run(invocation)) = parse(&["-p", "0", "--client_advertise", "me:1"]) else {
            panic!()
        };
        apply_flags(&mut options, &invocation.flags);
        assert_eq!(options.port, 4222, "-p 0 is the default port");
        assert_eq!(options.client_advertise.as_deref(), Some("me:1"));
    }

    #[test]
    fn monitoring_port_flags() {
        for spelling in spellings("ms", "8443")
            .into_iter()
            .chain(spellings("https_port", "8443"))
        {
            let options = run_owned(spelling.clone());
            assert_eq!(
                (options.https_port, options.http_port),
                (8443, 0),
                "{spelling:?}"
            );
        }
        assert_eq!(run(&["-ms", "-1"]).https_port, -1);
        assert_eq!(
            error(&["-ms", "maybe"]),
            r#"invalid value "maybe" for flag -ms: parse error"#
        );
        assert!(error(&["--https_port", "65536"]).contains("port out of range"));
        // nats-server 2.15.1 parses the flags again over the file's options: 0 turns the
        // file's port off (`-c` with `http_port: 8222` and `-m 0` starts no monitor).
        let mut options = Options {
            http_port: 8222,
            https_port: 8443,
            ..Options::default()
        };
        let Ok(Command::Run(invocation)) = parse(&["-m", "0", "--https_port=0"]) else {
            panic!()
        };
        apply_flags(&mut options, &invocation.flags);
        assert_eq!((options.http_port, options.https_port), (0, 0));
    }

    #[test]
    fn user_pass_and_auth_flags_set_the_single_user_and_the_token() {
        let mut options = Options::default();
        options.auth.username = Some("file-user".into());
        options.auth.password = Some("file-pass".into());
        let Ok(Command::Run(invocation)) =
            parse(&["--user", "u", "--pass", "p", "--auth", "s3cr3t"])
        else {
            panic!()
        };
        apply_flags(&mut options, &invocation.flags);
        assert_eq!(options.auth.username.as_deref(), Some("u"));
        assert_eq!(options.auth.password.as_deref(), Some("p"));
        assert_eq!(options.auth.token.as_deref(), Some("s3cr3t"));
        assert!(options.auth.required());
        // An empty flag clears the file's value, as Go's flag package sets it to "".
        let Ok(Command::Run(invocation)) = parse(&["-user="]) else {
            panic!()
        };
        apply_flags(&mut options, &invocation.flags);
        assert_eq!(options.auth.username, None);
    }

    /// Loads the options of `args`, with `$CERT`, `$KEY` and `$DIR` replaced.
    fn load_with(dir: &std::path::Path, args: &[&str]) -> Result<Options, ConfigError> {
        let args: Vec<String> = args
            .iter()
            .map(|arg| {
                arg.replace("$CERT", &dir.join("server-cert.pem").display().to_string())
                    .replace("$KEY", &dir.join("server-key.pem").display().to_string())
                    .replace("$DIR", &dir.display().to_string())
            })
            .collect();
        match parse_args(args.clone()) {
            Ok(Command::Run(invocation)) => invocation.options(),
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn tls_flags_as_nats_server_applies_them() {
        use crate::tls::test_files::{temp_dir, write_pair};
        let dir = temp_dir("cli-flags");
        write_pair(&dir, "server");
        let cert_file = dir.join("server-cert.pem");
        let key_file = dir.join("server-key.pem");
        let tls = load_with(&dir, &["--tls", "--tlscert", "$CERT", "--tlskey", "$KEY"])
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(
            tls,
            super::super::TlsOptions::new(cert_file.clone(), key_file.clone())
        );
        // Any --tls* flag implies --tls.
        let tls = load_with(
            &dir,
            &[
                "-tlscert=$CERT",
                "-tlskey=$KEY",
                "--tlsverify",
                "--tlscacert",
                "$CERT",
            ],
        )
        .unwrap()
        .tls
        .unwrap();
        assert!(tls.verify);
        assert_eq!(tls.ca_file, Some(cert_file.clone()));
        // --tls=false turns TLS off, whatever the other flags say.
        let options = load_with(&dir, &["--tls=false", "--tlscert", "$CERT"]).unwrap();
        assert_eq!(options.tls, None);
        // nats-server's errors.
        assert_eq!(
            load_with(&dir, &["--tlsverify"]).unwrap_err().0,
            "TLS Server certificate must be present and valid"
        );
        assert_eq!(
            load_with(&dir, &["--tls", "--tlscert", "$CERT"])
                .unwrap_err()
                .0,
            "TLS Server private key must be present and valid"
        );
        assert_eq!(
            load_with(&dir, &["--tlscert", "$CERT", "--tlskey", "$DIR/nope.pem"])
                .unwrap_err()
                .0,
            format!(
                "error parsing X509 certificate/key pair: open {}/nope.pem: no such file or directory",
                dir.display()
            )
        );

        // Flags win over the file's block, which keeps what lives outside nats-server's
        // TLSConfig; --tls=false turns the file's TLS off.
        let file = dir.join("tls.conf");
        std::fs::write(
            &file,
            format!(
                "tls {{ cert_file: \"{}\", key_file: \"{}\", timeout: 5, handshake_first: true, min_version: \"1.3\" }}\n",
                cert_file.display(),
                key_file.display()
            ),
        )
        .unwrap();
        let config = file.display().to_string();
        let tls = load_with(
            &dir,
            &["-c", &config, "--tlscert", "$CERT", "--tlskey", "$KEY"],
        )
        .unwrap()
        .tls
        .unwrap();
        assert_eq!(tls.timeout, std::time::Duration::from_secs(5));
        assert!(tls.handshake_first);
        assert_eq!(
            tls.min_version, None,
            "the flags' TLSConfig has the defaults"
        );
        let options = load_with(&dir, &["-c", &config, "--tls=false"]).unwrap();
        assert_eq!(options.tls, None);
        let options = load_with(&dir, &["-c", &config]).unwrap();
        assert_eq!(
            options.tls.unwrap().min_version,
            Some(super::super::TlsVersion::V1_3)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsupported_nats_server_flags_are_refused_by_name() {
        assert_eq!(
            error(&["--syslog", "-js"]),
            "natsring: flag -syslog is not supported yet (see natsring -h)"
        );
        assert!(error(&["-js"]).contains("flag -js is not supported yet"));
        assert!(error(&["--help_tls"]).contains("flag -help_tls is not supported yet"));
        // Their values are still checked the way nats-server checks them.
        assert_eq!(
            error(&["--max_traced_msg_len", "maybe"]),
            r#"invalid value "maybe" for flag -max_traced_msg_len: parse error"#
        );
        assert_eq!(
            error(&["-js=maybe"]),
            r#"invalid boolean value "maybe" for -js: parse error"#
        );
        assert_eq!(error(&["-sl"]), "flag needs an argument: -sl");
        // A positional argument is reported before an unsupported flag, as nats-server does.
        assert_eq!(
            error(&["-m", "1", "foo"]),
            r#"natsring: unrecognized command: "foo""#
        );
    }

    #[test]
    fn every_flag_nats_server_defines_is_known() {
        let nats_server_flags = [
            "a",
            "addr",
            "net",
            "p",
            "port",
            "n",
            "name",
            "server_name",
            "P",
            "pid",
            "m",
            "http_port",
            "ms",
            "https_port",
            "c",
            "config",
            "t",
            "sl",
            "signal",
            "client_advertise",
            "ports_file_dir",
            "l",
            "log",
            "T",
            "logtime",
            "logtime_utc",
            "s",
            "syslog",
            "r",
            "remote_syslog",
            "D",
            "debug",
            "V",
            "trace",
            "VV",
            "DV",
            "DVV",
            "log_size_limit",
            "max_traced_msg_len",
            "js",
            "jetstream",
            "sd",
            "store_dir",
            "user",
            "pass",
            "auth",
            "tls",
            "tlscert",
            "tlskey",
            "tlsverify",
            "tlscacert",
            "routes",
            "cluster",
            "cluster_name",
            "no_advertise",
            "cluster_advertise",
            "connect_retries",
            "cluster_listen",
            "profile",
            "h",
            "help",
            "v",
            "version",
            "help_tls",
        ];
        for name in nats_server_flags {
            assert!(find_flag(name).is_some(), "{name}");
        }
        let table_names = FLAGS.iter().flat_map(|flag| flag.names.iter()).count();
        assert_eq!(
            table_names,
            nats_server_flags.len() + 3,
            "plus --shards, --pin_shards, --busy_poll"
        );
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_go_int("0"), Ok(0));
        assert_eq!(parse_go_int("-0"), Ok(0));
        assert_eq!(parse_go_int("017"), Ok(15));
        assert_eq!(parse_go_int("0o17"), Ok(15));
        assert_eq!(parse_go_int("0O17"), Ok(15));
        assert_eq!(parse_go_int("0x1F"), Ok(31));
        assert_eq!(parse_go_int("0X1f"), Ok(31));
        assert_eq!(parse_go_int("0b101"), Ok(5));
        assert_eq!(parse_go_int("0x_1F"), Ok(31));
        assert_eq!(parse_go_int("0_17"), Ok(15));
        assert_eq!(parse_go_int("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_go_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_go_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(parse_go_int("-9223372036854775809"), Err(IntError::Range));
        for bad in [
            "", "-", "+", "abc", "0x", "0b", "08", "0b2", "1__0", "_1", "1_", "1.5", " 1", "1 ",
            "--1", "0x_", "1e3",
        ] {
            assert_eq!(parse_go_int(bad), Err(IntError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("a\nb\x01"), r#""a\nb\x01""#);
    }

    #[test]
    fn usage_layout() {
        let text = usage();
        assert!(text.starts_with("\nUsage: natsring [options]\n\nServer Options:\n"));
        assert!(text.ends_with("\n\n"));
        for section in [
            "Server Options:",
            "Logging Options:",
            "Common Options:",
            "Not Supported Yet",
        ] {
            assert!(text.contains(&format!("\n{section}")), "{section}");
        }
        // Descriptions start at column 37, as in nats-server's usage.
        for line in text.lines().filter(|line| line.starts_with("    -")) {
            if let Some(at) = line.find("  Show") {
                assert_eq!(at + 2, 37, "{line}");
            }
        }
        for flag in FLAGS
            .iter()
            .filter(|flag| flag.target != Target::Unsupported)
        {
            for name in flag.names {
                let single_dash = name.len() == 1
                    || name.chars().all(|c| c.is_ascii_uppercase())
                    || *name == "sl"
                    || *name == "ms";
                let dashes = if single_dash { "-" } else { "--" };
                assert!(text.contains(&format!("{dashes}{name}")), "{name}");
            }
        }
        for flag in FLAGS
            .iter()
            .filter(|flag| flag.target == Target::Unsupported)
        {
            assert!(
                text.contains(&format!("-{}", flag.names[0])),
                "{:?}",
                flag.names
            );
        }
    }
}
