//! The `natsring` binary: argv -> Options -> Server::start -> wait for a signal. No logic beyond.

use std::process::ExitCode;

use natsring::config::{self, Command};
use natsring::{log_error, log_notice, Server, ADVERTISED_VERSION};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let options = match config::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
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
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGUSR1]) {
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
    log_notice!(
        "Listening for client connections on {}:{}",
        options.host,
        server.port()
    );
    if let Some(path) = &options.pid_file {
        if let Err(err) = config::write_pid_file(path) {
            log_error!("Could not write pidfile: {err}");
        }
    }
    let ports_file = options.ports_file_dir.as_ref().and_then(|dir| {
        let ports = config::Ports::for_client(&options.host, server.port());
        config::write_ports_file(dir, &ports)
            .map_err(|err| log_error!("Error writing ports file: {err}"))
            .ok()
    });
    log_notice!("Server is ready");

    // Wait for SIGINT/SIGTERM, or for the server to stop on its own (a shard failed).
    loop {
        let mut stop = false;
        for signal in signals.pending() {
            if signal == SIGUSR1 {
                // After log rotation: reopen the log file, as nats-server does.
                match natsring::log::reopen() {
                    Ok(()) => log_notice!("Reopened log file"),
                    Err(err) => log_error!("Could not reopen the log file: {err}"),
                }
                continue;
            }
            let name = if signal == SIGINT {
                "interrupt"
            } else {
                "terminated"
            };
            log_notice!("Trapped \"{name}\" signal");
            stop = true;
        }
        if stop {
            break;
        }
        if server.is_stopping() {
            log_error!("The server stopped: a shard failed");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    log_notice!("Initiating Shutdown...");
    let result = server.shutdown();
    if let Some(path) = ports_file {
        config::remove_ports_file(&path);
    }
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
