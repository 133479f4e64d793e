//! Deployment and start/restart robustness, with the real `natsring` binary where it matters:
//! io_uring refused (a seccomp filter installed in the child, as Docker's default profile
//! does) gives one clear line and status 1; a restart right after `kill -9` serves; a clean
//! stop frees the port before it returns; a port another live server holds is still refused
//! (after the bounded wait); the seccomp profile in `deploy/` is Docker's default plus exactly
//! the three io_uring calls.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_natsring");

/// The README section every "io_uring is unavailable" line points at.
const README_ANCHOR: &str = "README.md#running-in-containers-and-under-systemd";

/// A seccomp filter that makes the system call `number` fail with `errno` (x86_64 only; the
/// test that uses it skips elsewhere).
#[cfg(target_arch = "x86_64")]
fn seccomp_filter(number: libc::c_long, errno: i32) -> [libc::sock_filter; 6] {
    // AUDIT_ARCH_X86_64: EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    // A classic BPF instruction: `code` on `value`; a jump skips `if_true` or `if_false`
    // instructions.
    let statement = |code: u32, value: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k: value,
    };
    let jump = |code: u32, value: u32, if_true: u8, if_false: u8| libc::sock_filter {
        code: code as u16,
        jt: if_true,
        jf: if_false,
        k: value,
    };
    let arch_offset = std::mem::offset_of!(libc::seccomp_data, arch) as u32;
    let number_offset = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
    [
        // 0: load the architecture; 1: not x86_64 -> 5 (allow).
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, arch_offset),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            3,
        ),
        // 2: load the system call number; 3: the one refused -> 4, else -> 5.
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, number_offset),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            number as u32,
            0,
            1,
        ),
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | errno as u32,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Runs natsring on a random port with system call `number` failing with `errno` (the filter
/// is installed in the child between fork and exec, so only the server is confined) and
/// returns how it exited, within 10 s.
#[cfg(target_arch = "x86_64")]
fn run_confined(number: libc::c_long, errno: i32) -> std::process::Output {
    use std::os::unix::process::CommandExt;

    let filter = seccomp_filter(number, errno);
    let mut command = Command::new(BIN);
    command.args(["-a", "127.0.0.1", "-p", "-1"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let install = move || {
        let mut filter = filter;
        // A filter may be installed without privileges once the process (and what it
        // executes) can never gain any.
        // SAFETY: prctl with integer arguments only; it changes this (child) process.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `program` names `filter`, both on this stack frame for the whole call; the
        // kernel copies the program before prctl returns.
        let installed = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &program as *const libc::sock_fprog,
            )
        };
        if installed != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // The closure runs in the forked child before exec: it calls prctl twice (async-signal
    // safe), allocates nothing and touches no lock.
    // SAFETY: as above; nothing it uses can be left inconsistent by the fork.
    unsafe { command.pre_exec(install) };
    let mut child = command.spawn().expect("natsring starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("natsring without io_uring did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Checks the one line natsring printed when `call` was refused with `errno_name`.
#[cfg(target_arch = "x86_64")]
fn assert_one_clear_line(output: &std::process::Output, call: &str, errno_name: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status; stderr: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr}");
    let line = lines[0];
    eprintln!("natsring said: {line}");
    for expected in [
        "[FTL] io_uring is unavailable: ",
        "seccomp filter",
        &format!("{call} failed with {errno_name}"),
        "Docker's default seccomp profile",
        "--security-opt seccomp=",
        README_ANCHOR,
    ] {
        assert!(line.contains(expected), "{expected:?} in {line:?}");
    }
    // A bare errno is what this replaces.
    assert!(!line.contains("os error"), "no bare errno: {line}");
}

/// Docker's default seccomp profile refuses io_uring_setup with EPERM.
#[test]
fn io_uring_setup_refused_with_eperm_is_one_clear_line() {
    #[cfg(target_arch = "x86_64")]
    {
        let output = run_confined(libc::SYS_io_uring_setup, libc::EPERM);
        assert_one_clear_line(&output, "io_uring_setup", "EPERM");
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("skipped: the seccomp filter here is written for x86_64 only");
}

/// Podman's default profile (and kernels without io_uring) answer ENOSYS.
#[test]
fn io_uring_setup_refused_with_enosys_is_one_clear_line() {
    #[cfg(target_arch = "x86_64")]
    {
        let output = run_confined(libc::SYS_io_uring_setup, libc::ENOSYS);
        assert_one_clear_line(&output, "io_uring_setup", "ENOSYS");
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("skipped: the seccomp filter here is written for x86_64 only");
}

/// A profile that allows io_uring_setup but not io_uring_register: the line names the call.
#[test]
fn io_uring_register_refused_is_one_clear_line() {
    #[cfg(target_arch = "x86_64")]
    {
        let output = run_confined(libc::SYS_io_uring_register, libc::EPERM);
        assert_one_clear_line(&output, "io_uring_register", "EPERM");
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("skipped: the seccomp filter here is written for x86_64 only");
}

/// A loopback port free now (the kernel's pick; nothing else is told to use it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The natsring binary on 127.0.0.1:`port` (with `--shards` when `NATSRING_TEST_SHARDS` is
/// set; otherwise its default, one per CPU), its log on a pipe read once it exited.
fn spawn_natsring(port: u16) -> Child {
    let mut command = Command::new(BIN);
    command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    if std::env::var("NATSRING_TEST_SHARDS").is_ok() {
        command.args(["--shards", &common::test_shards().to_string()]);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("natsring starts")
}

/// Waits until `child` serves on `port`: a connection gets the INFO only the new server can
/// send (a connection to a dead server's listener, which lingers for milliseconds, gets
/// nothing and is retried). Panics with the child's log if it exits first, or after 10 s.
fn wait_serving(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut log = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut log);
            panic!("natsring on port {port} exited ({status}) instead of serving:\n{log}");
        }
        assert!(Instant::now() < deadline, "natsring serves on port {port}");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) {
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut info = [0u8; 5];
            if stream.read_exact(&mut info).is_ok() && &info == b"INFO " {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `[min, median, max]` of `durations`, in milliseconds.
fn spread_ms(durations: &mut [Duration]) -> [f64; 3] {
    durations.sort();
    [0, durations.len() / 2, durations.len() - 1].map(|at| durations[at].as_secs_f64() * 1e3)
}

/// Item 7 of issue 14: after `kill -9` the kernel tears the dead server's io_uring down
/// asynchronously, and the armed accept keeps its listener for milliseconds. A server started
/// at once in that window must wait for the port (bounded) and serve, 50 times in a row.
#[test]
fn restarts_at_once_after_kill_9_serve_50_times_in_a_row() {
    let port = free_port();
    let mut server = spawn_natsring(port);
    wait_serving(&mut server, port);
    let mut restarts = Vec::with_capacity(50);
    for _ in 0..50 {
        // A client is connected, as when a server dies in service.
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        server.kill().unwrap();
        server.wait().unwrap();
        let killed = Instant::now();
        server = spawn_natsring(port);
        wait_serving(&mut server, port);
        restarts.push(killed.elapsed());
        drop(client);
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let [min, median, max] = spread_ms(&mut restarts);
    eprintln!(
        "kill -9 -> serving again on the same port: min {min:.1} ms, median {median:.1} ms, \
         max {max:.1} ms over 50 restarts"
    );
}

/// A clean stop frees the port before `shutdown` returns: a fresh server (std's bind, with
/// SO_REUSEADDR as nats-server's Go listener has) can bind it at once.
#[test]
fn shutdown_frees_the_port_before_it_returns() {
    // Two shards at least: a shard with no connection to close ended its loop before its
    // accept's cancellation completed.
    let options = natsring::Options {
        shards: common::test_shards().max(2),
        ..common::options()
    };
    for round in 0..20 {
        let server = common::start_with(options.clone());
        let port = server.port;
        let mut client = common::Raw::connect(port);
        client.read_until(b"\r\n", Duration::from_secs(10));
        drop(server);
        if let Err(err) = TcpListener::bind(("127.0.0.1", port)) {
            panic!("round {round}: port {port} still bound after shutdown returned: {err}");
        }
    }
}

/// The same for the binary: once it exited after SIGTERM, its port is free.
#[test]
fn sigterm_frees_the_port_before_the_process_exits() {
    for round in 0..10 {
        let port = free_port();
        let mut server = spawn_natsring(port);
        wait_serving(&mut server, port);
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.read_exact(&mut [0u8; 5]).unwrap();
        // SAFETY: kill(2) on our own child, which keeps its pid until we wait for it.
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        assert_eq!(server.wait().unwrap().code(), Some(0));
        if let Err(err) = TcpListener::bind(("127.0.0.1", port)) {
            panic!("round {round}: port {port} still bound after natsring exited: {err}");
        }
    }
}

/// A port a live nats-server listens on is still refused, with nats-server's error, once
/// the bounded wait has passed (logged once, as a warning naming the address).
#[test]
fn a_port_held_by_a_live_nats_server_is_refused_after_the_wait() {
    let reference = common::start_reference(&[]);
    let port = reference.port;
    let started = Instant::now();
    let output = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .output()
        .unwrap();
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let wait = Duration::from_millis(natsring::limits::ADDRESS_IN_USE_WAIT_MS_MAX);
    assert!(waited >= wait, "gave up after {waited:?}, before {wait:?}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("[WRN]")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].contains(&format!("127.0.0.1:{port} is in use, waiting up to 2s")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "[FTL] Error listening on port: 127.0.0.1:{port}, \"listen tcp 127.0.0.1:{port}: bind: address already in use\""
        )),
        "{stderr}"
    );
    // The reference still serves: nothing was shared with it.
    common::assert_serves(port);
}
/// The anchor the error line points at is a README heading.
#[test]
fn readme_has_the_section_the_error_points_at() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme
            .lines()
            .any(|line| line == "## Running in containers and under systemd"),
        "README heading for {README_ANCHOR}"
    );
}

/// The git blob id of moby's `profiles/seccomp/default.json` that `deploy/seccomp-io_uring.json`
/// starts from (github.com/moby/profiles at seccomp/v0.2.3, as vendored by moby/moby).
const DOCKER_DEFAULT_PROFILE_BLOB: &str = "ea5a494afb8d64898fa0f4f47ae0c4f5ba9cbbc9";

/// The io_uring calls the profile adds to Docker's default.
const IO_URING_CALLS: [&str; 3] = ["io_uring_enter", "io_uring_register", "io_uring_setup"];

/// `deploy/seccomp-io_uring.json` is well-formed, allows the three io_uring calls without
/// conditions, and is Docker's default profile byte for byte once their three lines are
/// taken out (the same git blob).
#[test]
fn seccomp_profile_is_dockers_default_plus_io_uring() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/seccomp-io_uring.json");
    let text = std::fs::read_to_string(path).unwrap();
    let profile: serde_json::Value = serde_json::from_str(&text).expect("well-formed JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let rules = profile["syscalls"].as_array().unwrap();
    for call in IO_URING_CALLS {
        let naming: Vec<&serde_json::Value> = rules
            .iter()
            .filter(|rule| {
                rule["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|name| name == call)
            })
            .collect();
        assert_eq!(naming.len(), 1, "{call} in one rule");
        let rule = naming[0].as_object().unwrap();
        assert_eq!(rule["action"], "SCMP_ACT_ALLOW", "{call}");
        assert!(
            rule.keys().all(|key| key == "names" || key == "action"),
            "{call} allowed without conditions: {rule:?}"
        );
    }
    let added: Vec<String> = IO_URING_CALLS
        .iter()
        .map(|call| format!("\t\t\t\t\"{call}\",\n"))
        .collect();
    let mut original = text.clone();
    for line in &added {
        assert_eq!(original.matches(line.as_str()).count(), 1, "{line:?}");
        original = original.replacen(line.as_str(), "", 1);
    }
    let hashed = Command::new("git")
        .args(["hash-object", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut git| {
            use std::io::Write;
            git.stdin.take().unwrap().write_all(original.as_bytes())?;
            git.wait_with_output()
        });
    match hashed {
        Ok(output) if output.status.success() => assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            DOCKER_DEFAULT_PROFILE_BLOB,
            "without the io_uring lines, the profile is Docker's default unchanged"
        ),
        _ => eprintln!("skipped the comparison with Docker's default profile: no git here"),
    }
}
