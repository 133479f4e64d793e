//! The `natsring` binary as a user runs it: flags, the ports file, signals, log lines.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_natsring");

#[test]
fn unknown_flag_is_an_error_with_status_1() {
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("flag provided but not defined: -bogus")
    );
}

#[test]
fn bad_port_value_is_an_error() {
    let out = Command::new(BIN).args(["-p", "abc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value \"abc\" for flag -p"));
}

#[test]
fn help_and_version() {
    let help = Command::new(BIN).arg("-h").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--ports_file_dir"));
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("natsring: v"));
}

/// `-p -1 --ports_file_dir` as test harnesses use it: a random port, announced in the ports
/// file; SIGTERM stops the server with status 0 and removes the file.
#[test]
fn random_port_ports_file_and_graceful_sigterm() {
    let dir = std::env::temp_dir().join(format!("natsring-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut port = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        assert!(
            line.starts_with(&format!("[{}] ", child.id())),
            "nats-server log format: {line}"
        );
        if let Some(rest) = line
            .split("Listening for client connections on 127.0.0.1:")
            .nth(1)
        {
            port = Some(rest.trim().parse::<u16>().unwrap());
        }
        if line.ends_with("[INF] Server is ready") {
            break;
        }
    }
    let port = port.expect("listening line");
    assert_ne!(port, 0);
    let ports_file = dir.join(format!("natsring_{}.ports", child.id()));
    let ports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ports_file).unwrap()).unwrap();
    assert_eq!(ports["nats"][0], format!("nats://127.0.0.1:{port}"));

    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut info = [0u8; 5];
    conn.read_exact(&mut info).unwrap();
    assert_eq!(&info, b"INFO ");

    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server stops after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(
        rest.iter().any(|l| l.ends_with("[INF] Server Exiting..")),
        "{rest:?}"
    );
    assert!(!ports_file.exists(), "ports file removed at exit");
    // The client saw the connection closed.
    let mut buf = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = conn.read_to_end(&mut buf);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Log rotation: after the log file is moved away, SIGUSR1 makes the server write to a new
/// file at the configured path (as nats-server does), and SIGTERM still stops it.
#[test]
fn sigusr1_reopens_the_log_file() {
    let dir = std::env::temp_dir().join(format!("natsring-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("natsring.log");
    let mut child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "-1", "-l"])
        .arg(&log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Server is ready")
    {
        assert!(Instant::now() < deadline, "server ready in its log file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rotated = dir.join("natsring.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&child, libc::SIGUSR1);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("File log re-opened")
    {
        assert!(Instant::now() < deadline, "a new log file after SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(
        new.contains("Server Exiting.."),
        "later lines go to the new file: {new}"
    );
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("Server Exiting.."));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `signal` to our own child.
fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid, which it keeps until we wait for it.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// A port already taken is a fatal error that names the address, as nats-server's does
/// (`Error listening on port: 127.0.0.1:4222, "listen tcp 127.0.0.1:4222: bind: address
/// already in use"`), with status 1, once natsring has waited `ADDRESS_IN_USE_WAIT_MS_MAX`
/// for it (see tests/deploy.rs).
#[test]
fn a_taken_port_is_fatal_and_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[FTL] Error listening on port: 127.0.0.1:{port}, \"listen tcp 127.0.0.1:{port}: bind: address already in use\""
        )),
        "{stderr}"
    );
}
