//! `--signal <command>[=<pid>]`: sends a running natsring the signal nats-server's command
//! names (`stop` SIGKILL, `quit` SIGINT, `term` SIGTERM, `reopen` SIGUSR1, `reload` SIGHUP,
//! `ldm` SIGUSR2), as nats-server's `ProcessSignal` does: to the pid given (a pid file was read
//! by the flag parser), to every process whose pid starts with the digits before a trailing
//! `*`, or, with no pid, to the one natsring process running (an error when there are none or
//! several). Errors are nats-server's texts with its name replaced.
//!
//! One difference: nats-server finds its process with `pgrep nats-server`, a pattern that also
//! matches other programs whose names contain it; natsring reads `/proc` for processes whose
//! name is exactly `natsring` (no dependency on procps, no `natsring-bench` taken for a server).

use crate::config::SignalRequest;

/// The process name looked for when no pid is given.
const PROCESS_NAME: &str = "natsring";

/// The signal a command names.
fn signal_of(command: &str) -> Result<libc::c_int, String> {
    Ok(match command {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        "term" => libc::SIGTERM,
        _ => {
            return Err(format!(
                "unknown signal {}",
                crate::config::go::quote(command)
            ))
        }
    })
}

/// Every other process named `natsring`, by pid.
fn natsring_pids() -> Vec<i32> {
    let own = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim_end() == PROCESS_NAME)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends the request's signal; the error is what to print after the program name.
pub fn send(request: &SignalRequest) -> Result<(), String> {
    let pid_text = request
        .pid
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let glob = pid_text.ends_with('*');
    let prefix = pid_text.trim_end_matches('*');
    let mut pids = Vec::new();
    if !prefix.is_empty() {
        pids.push(
            prefix
                .parse::<i32>()
                .map_err(|_| format!("invalid pid: {prefix}"))?,
        );
    }
    if prefix.is_empty() || glob {
        pids = natsring_pids();
    }
    if pids.len() > 1 && !glob {
        let mut text = format!("multiple {PROCESS_NAME} processes running:");
        for pid in &pids {
            text.push_str(&format!("\n{pid}"));
        }
        return Err(text);
    }
    if pids.is_empty() {
        return Err(format!("no {PROCESS_NAME} processes running"));
    }
    let signal = signal_of(&request.command)?;
    let mut errors = String::new();
    for pid in pids {
        if glob && !pid.to_string().starts_with(prefix) {
            continue;
        }
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let sent = unsafe { libc::kill(pid, signal) };
        if sent != 0 {
            let error = std::io::Error::last_os_error();
            errors.push_str(&format!(
                "\nsignal {} {pid}: {}",
                crate::config::go::quote(&request.command),
                error
                    .to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or_default()
                    .to_lowercase()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: &str, pid: Option<&str>) -> SignalRequest {
        SignalRequest {
            command: command.to_string(),
            pid: pid.map(str::to_string),
        }
    }

    #[test]
    fn commands_map_to_nats_server_signals() {
        assert_eq!(signal_of("stop"), Ok(libc::SIGKILL));
        assert_eq!(signal_of("quit"), Ok(libc::SIGINT));
        assert_eq!(signal_of("term"), Ok(libc::SIGTERM));
        assert_eq!(signal_of("reopen"), Ok(libc::SIGUSR1));
        assert_eq!(signal_of("reload"), Ok(libc::SIGHUP));
        assert_eq!(signal_of("ldm"), Ok(libc::SIGUSR2));
        assert_eq!(signal_of("nap"), Err(r#"unknown signal "nap""#.to_string()));
    }

    #[test]
    fn errors_as_nats_server_words_them() {
        assert_eq!(
            send(&request("reload", Some("abc"))),
            Err("invalid pid: abc".to_string())
        );
        assert_eq!(
            send(&request("nap", Some("1"))),
            Err(r#"unknown signal "nap""#.to_string())
        );
        // A pid that exists nowhere: kill fails with ESRCH.
        assert_eq!(
            send(&request("reload", Some("2147483646"))),
            Err("\nsignal \"reload\" 2147483646: no such process".to_string())
        );
    }
}
