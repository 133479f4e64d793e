//! Deployment and start/restart robustness, with the real `natsring` binary where it matters:
//! io_uring refused (a seccomp filter installed in the child, as Docker's default profile
//! does) gives one clear line and status 1; a restart right after `kill -9` serves; a clean
//! stop frees the port before it returns; a port another live server holds is still refused
//! (after the bounded wait); the seccomp profile in `deploy/` is Docker's default plus exactly
//! the three io_uring calls.

use std::process::{Command, Stdio};
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
    let statement = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let arch = std::mem::offset_of!(libc::seccomp_data, arch) as u32;
    let nr = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
    [
        // 0: load the architecture; 1: not x86_64 -> 5 (allow).
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, arch),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            3,
        ),
        // 2: load the system call number; 3: the one refused -> 4, else -> 5.
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, nr),
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
