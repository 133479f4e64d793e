//! The `natsring` binary: argv (and the configuration file) -> Options -> Server::start ->
//! signals, as nats-server's `main` and `handleSignals`. No logic beyond.
//!
//! Signals: SIGINT stops; SIGTERM stops unless in lame duck mode (as nats-server); SIGUSR1
//! reopens the log file; SIGUSR2 enters lame duck mode; SIGHUP reloads the configuration
//! (the file again, the same flags on top).

use std::process::ExitCode;
use std::time::Duration;

use natsring::config::{self, Command, Invocation};
use natsring::{log_error, log_notice, LameDuck, Server, ServerHandle, ADVERTISED_VERSION};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the main thread looks at signals and at a lame duck mode under way.
const MAIN_LOOP_PERIOD: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let invocation = match config::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(invocation)) => invocation,
        Ok(Command::Check(invocation)) => {
            return match invocation.check() {
                Ok(valid) => {
                    eprintln!("{valid}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("natsring: {err}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Command::Signal(request)) => {
            return match natsring::signals::send(&request) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("natsring: {err}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Command::Help) => {
            print!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!(
                "natsring: v{} (nats-server protocol {ADVERTISED_VERSION})",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(1);
        }
    };
    let loaded = match invocation.load() {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("natsring: {err}");
            return ExitCode::from(1);
        }
    };
    // As nats-server: the file's warnings go to stderr, and the server starts anyway.
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let options = loaded.options;
    if let Err(err) = natsring::log::init(&options) {
        eprintln!("natsring: cannot open the log file: {err}");
        return ExitCode::from(1);
    }
    // Before anything is logged: without io_uring, one line says why (see `check_io_uring`).
    if let Err(err) = natsring::check_io_uring() {
        natsring::log_fatal!("{err}");
        return ExitCode::from(1);
    }
    // Signals are registered before the shards start so none arrives unhandled.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP]) {
        Ok(signals) => signals,
        Err(err) => {
            log_error!("Cannot install signal handlers: {err}");
            return ExitCode::from(1);
        }
    };
    log_notice!("Starting natsring");
    log_notice!(
        "  Version:  {ADVERTISED_VERSION} (natsring {})",
        env!("CARGO_PKG_VERSION")
    );
    let server = match Server::start(options.clone()) {
        Ok(server) => server,
        Err(err) => {
            natsring::log_fatal!("{err}");
            return ExitCode::from(1);
        }
    };
    log_notice!(
        "  Name:     {}",
        options.server_name.as_deref().unwrap_or(server.server_id())
    );
    log_notice!("  ID:       {}", server.server_id());
    log_notice!("  Shards:   {}", server.shard_count());
    if let (Some(path), Some(digest)) = (&options.config_file, &options.config_digest) {
        log_notice!("Using configuration file: {} ({digest})", path.display());
    }
    log_notice!(
        "Listening for client connections on {}:{}",
        options.host,
        server.port()
    );
    log_notice!("Server is ready");

    let mut lame_duck: Option<LameDuck> = None;
    loop {
        let mut stop = false;
        for signal in signals.pending() {
            log_notice!("Trapped {:?} signal", signal_name(signal));
            match signal {
                SIGINT => stop = true,
                // nats-server ignores SIGTERM in lame duck mode: the mode ends the server.
                SIGTERM => stop |= lame_duck.is_none(),
                SIGUSR1 => reopen_log(),
                // Once is enough: a second SIGUSR2 changes nothing.
                SIGUSR2 if lame_duck.is_none() => lame_duck = Some(server.enter_lame_duck()),
                SIGHUP => reload(&server, &invocation),
                _ => {}
            }
        }
        if lame_duck.as_ref().is_some_and(LameDuck::is_finished) {
            stop = true;
        }
        if stop {
            break;
        }
        if server.is_stopping() {
            log_error!("The server stopped: a shard failed");
            break;
        }
        std::thread::sleep(MAIN_LOOP_PERIOD);
    }
    log_notice!("Initiating Shutdown...");
    let result = server.shutdown();
    // Its thread has ended with the shards (or had finished).
    drop(lame_duck);
    log_notice!("Server Exiting..");
    match result {
        Ok(stats) => {
            // What benchmarks read to explain a figure (receives, ENOBUFS, the idle watch).
            natsring::log_debug!("Counters at exit: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            log_error!("{err}");
            ExitCode::from(1)
        }
    }
}

/// SIGUSR1 (after log rotation by another tool): the log file opened again, in nats-server's
/// words.
fn reopen_log() {
    match natsring::log::reopen() {
        Ok(true) => log_notice!("File log re-opened"),
        Ok(false) => log_notice!("File log re-open ignored, not a file logger"),
        Err(err) => log_error!("Could not reopen the log file: {err}"),
    }
}

/// SIGHUP: the configuration again (the file read anew, the same flags on top), put in force
/// if it is valid and changes nothing that cannot change; otherwise logged and nothing changes.
fn reload(server: &ServerHandle, invocation: &Invocation) {
    if invocation.config_file.is_none() {
        log_error!(
            "Failed to reload server configuration: can only reload config when a file is provided using -c or --config"
        );
        return;
    }
    let loaded = match invocation.load() {
        Ok(loaded) => loaded,
        Err(err) => {
            log_error!("Failed to reload server configuration: {err}");
            return;
        }
    };
    for warning in &loaded.warnings {
        natsring::log_warn!("{warning}");
    }
    if let Err(err) = server.reload(loaded.options) {
        log_error!("Failed to reload server configuration: {err}");
    }
}

/// The name Go prints for a signal (`%q` of `os.Signal`), as nats-server logs `Trapped "..."`.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "interrupt",
        SIGTERM => "terminated",
        SIGUSR1 => "user defined signal 1",
        SIGUSR2 => "user defined signal 2",
        SIGHUP => "hangup",
        _ => "signal",
    }
}
