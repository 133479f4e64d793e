//! The shard's io_uring: creation, the start-up check that io_uring is usable here (with one
//! line saying why not and how to allow it: the sysctl, a seccomp filter, a kernel too old),
//! the `user_data` codec, and submission with a full-queue retry.
//!
//! `user_data` is a `Token`: (operation kind, slot, generation). One place encodes and decodes
//! it. Kinds that are not per connection (accept, timer, wake-up) use slot 0 and generation 0.

use std::io;

use std::sync::OnceLock;

use io_uring::{opcode, squeue, IoUring, Probe};

use super::buf_ring::BufRing;
use crate::limits;

/// What operation a completion belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// Multishot accept on the shard's listener.
    Accept = 1,
    /// Multishot receive of a connection, into the buffer ring.
    Recv = 2,
    /// A send of a connection's frozen outbound buffer.
    Send = 3,
    /// A cancel of a connection's receive (pausing it or closing it).
    CancelRecv = 4,
    /// The shard's periodic tick (keepalive, deadlines).
    Timer = 5,
    /// A read of the mailbox doorbell (a pipe, see `control`): a command is waiting.
    Wake = 6,
    /// The short timeout that resumes paused publishers.
    Resume = 7,
    /// A cancel of the accept (shutdown).
    CancelAccept = 8,
    /// A peer shard's wake-up (posted into our ring by its `MSG_RING`); slot = the peer's index.
    Mailbox = 9,
    /// Our `MSG_RING` to a peer, completing only when it failed; slot = the peer's index.
    WakePeer = 10,
}

impl OpKind {
    fn from_bits(bits: u64) -> Option<OpKind> {
        Some(match bits {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::CancelRecv,
            5 => OpKind::Timer,
            6 => OpKind::Wake,
            7 => OpKind::Resume,
            8 => OpKind::CancelAccept,
            9 => OpKind::Mailbox,
            10 => OpKind::WakePeer,
            _ => return None,
        })
    }
}

/// Decoded `user_data`: kind in the top 4 bits, generation in the next 28, slot in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: OpKind,
    pub slot: u32,
    /// The connection slot's generation, truncated to `GENERATION_MASK`.
    pub generation: u32,
}

/// Bits of a slot generation that travel in `user_data`.
pub const GENERATION_MASK: u32 = (1 << 28) - 1;

impl Token {
    pub fn new(kind: OpKind, slot: u32, generation: u32) -> Token {
        Token {
            kind,
            slot,
            generation: generation & GENERATION_MASK,
        }
    }

    pub fn encode(self) -> u64 {
        ((self.kind as u64) << 60) | ((self.generation as u64) << 32) | self.slot as u64
    }

    /// `None` for user_data the shard never submits (a bug or a foreign CQE).
    pub fn decode(user_data: u64) -> Option<Token> {
        let kind = OpKind::from_bits(user_data >> 60)?;
        Some(Token {
            kind,
            slot: user_data as u32,
            generation: ((user_data >> 32) as u32) & GENERATION_MASK,
        })
    }
}

/// The ring setup features natsring uses, in the order the kernel gained them, with the
/// first release that has each: `builder_with(count)` sets the first `count`.
const SETUP_FEATURES: [(&str, &str); 5] = [
    ("IORING_SETUP_CQSIZE", "5.5"),
    ("IORING_SETUP_COOP_TASKRUN", "5.19"),
    // Needs COOP_TASKRUN or DEFER_TASKRUN, set before it.
    ("IORING_SETUP_TASKRUN_FLAG", "5.19"),
    ("IORING_SETUP_SINGLE_ISSUER", "6.0"),
    // Needs SINGLE_ISSUER, set before it.
    ("IORING_SETUP_DEFER_TASKRUN", "6.1"),
];

/// The operations the shard submits, with the first release that has each. Multishot accept
/// (5.19), multishot receive (6.0) and provided-buffer rings (5.19) are flags and a register
/// call, not opcodes: a kernel that takes DEFER_TASKRUN (6.1) has them all.
const OPERATIONS: [(u8, &str, &str); 7] = [
    (opcode::Accept::CODE, "IORING_OP_ACCEPT", "5.5"),
    (opcode::Recv::CODE, "IORING_OP_RECV", "5.6"),
    (opcode::Send::CODE, "IORING_OP_SEND", "5.6"),
    (opcode::Read::CODE, "IORING_OP_READ", "5.6"),
    (opcode::Timeout::CODE, "IORING_OP_TIMEOUT", "5.4"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL", "5.5"),
    (opcode::MsgRingData::CODE, "IORING_OP_MSG_RING", "5.18"),
];

/// The oldest kernel with everything natsring uses (DEFER_TASKRUN is the newest of them).
pub const KERNEL_MINIMUM: &str = "6.1";

/// Where README explains how to allow io_uring; every "io_uring is unavailable" line ends
/// with it. The test in `tests/deploy.rs` checks that README has this heading.
pub const README_SECTION: &str = "README.md#running-in-containers-and-under-systemd";

/// A ring builder with the first `count` of `SETUP_FEATURES` set, its completion queue sized
/// for `completion_entries`.
fn builder_with(count: usize, completion_entries: u32) -> io_uring::Builder {
    let mut builder = IoUring::builder();
    let setters: [fn(&mut io_uring::Builder, u32); 5] = [
        |builder, completion_entries| {
            builder.setup_cqsize(completion_entries);
        },
        |builder, _| {
            builder.setup_coop_taskrun();
        },
        // The kernel flags pending deferred work in the SQ ring, so a submit that does not
        // wait still runs it (io-uring then enters with GETEVENTS); without it, sends would not
        // complete while the loop works through leftover completions.
        |builder, _| {
            builder.setup_taskrun_flag();
        },
        |builder, _| {
            builder.setup_single_issuer();
        },
        |builder, _| {
            builder.setup_defer_taskrun();
        },
    ];
    for set in &setters[..count] {
        set(&mut builder, completion_entries);
    }
    builder
}

/// Creates the shard's ring, or an error whose text names the cause and the fix.
pub fn create() -> io::Result<IoUring> {
    builder_with(SETUP_FEATURES.len(), limits::RING_COMPLETION_ENTRIES)
        .build(limits::RING_ENTRIES)
        .map_err(|err| unavailable(Call::Setup, &err))
}

/// Checks, once per process, that this kernel and this process's confinement let natsring
/// use io_uring: a ring with the shard's setup flags (a tiny one, dropped at once), the
/// opcodes the shard submits, a provided-buffer ring, and one entered no-op, so each of
/// `io_uring_setup`, `io_uring_register` and `io_uring_enter` is tried. `Server::start` runs
/// it before binding and `main` before it logs anything, so whatever refuses io_uring, the
/// user gets the same single line: what refused it, and how to allow it.
///
/// The probe runs on a thread of its own, which has exited when this returns. The kernel
/// tears a closed ring down later, from a work queue, and then interrupts each thread that
/// used it (task work with TWA_SIGNAL) to detach it: a caller's blocking receive with a
/// timeout would fail with EINTR milliseconds later (seen in a test). A thread that exited
/// was detached when it exited.
pub fn check_io_uring() -> io::Result<()> {
    static CHECKED: OnceLock<Result<(), (io::ErrorKind, String)>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let checked = std::thread::Builder::new()
                .name("io_uring-check".to_string())
                .spawn(probe)
                .and_then(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("the io_uring check panicked")))
                });
            checked.map_err(|err| (err.kind(), err.to_string()))
        })
        .clone()
        .map_err(|(kind, message)| io::Error::new(kind, message))
}

fn probe() -> io::Result<()> {
    let ring = match builder_with(SETUP_FEATURES.len(), limits::PROBE_RING_ENTRIES)
        .build(limits::PROBE_RING_ENTRIES)
    {
        Ok(ring) => ring,
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            return Err(missing_setup_feature().unwrap_or_else(|| unavailable(Call::Setup, &err)))
        }
        Err(err) => return Err(unavailable(Call::Setup, &err)),
    };
    let mut supported = Probe::new();
    ring.submitter()
        .register_probe(&mut supported)
        .map_err(|err| unavailable(Call::Register, &err))?;
    if let Some((_, name, release)) = OPERATIONS
        .iter()
        .find(|(code, _, _)| !supported.is_supported(*code))
    {
        return Err(too_old(&format!("the operation {name} (Linux {release})")));
    }
    // One buffer of 64 bytes: registering the group is what is tried.
    let _buffers = BufRing::new(&ring.submitter(), 0, 1, 64, false)?;
    // Bound after `_buffers`, so dropped before it on every way out: the ring goes before the
    // buffer ring it names, as in `uring::Io`.
    let mut ring = ring;
    let nop = opcode::Nop::new().build().user_data(0);
    // SAFETY: a no-op names no memory.
    unsafe { ring.submission().push(&nop) }.expect("an empty submission queue has room");
    ring.submit_and_wait(1)
        .map_err(|err| unavailable(Call::Enter, &err))?;
    ring.completion().for_each(drop);
    Ok(())
}

/// After a setup with every flag failed with EINVAL: the first feature whose flag makes a
/// ring that builds without it fail, as a "kernel too old" error. None when even a plain
/// ring fails the same way (then it is not a missing feature).
fn missing_setup_feature() -> Option<io::Error> {
    (0..=SETUP_FEATURES.len())
        .find(|&count| {
            builder_with(count, limits::PROBE_RING_ENTRIES)
                .build(limits::PROBE_RING_ENTRIES)
                .is_err()
        })
        .filter(|&count| count > 0)
        .map(|count| {
            let (name, release) = SETUP_FEATURES[count - 1];
            too_old(&format!("{name} (Linux {release})"))
        })
}

/// "The kernel is too old" naming what it lacks.
fn too_old(lacking: &str) -> io::Error {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "io_uring is unavailable: this kernel ({}) lacks {lacking}; natsring needs Linux \
             {KERNEL_MINIMUM} or newer; see {README_SECTION}",
            release.trim()
        ),
    )
}

/// An io_uring system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Setup,
    Register,
    Enter,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Setup => "io_uring_setup",
            Call::Register => "io_uring_register",
            Call::Enter => "io_uring_enter",
        }
    }
}

/// What the host says about io_uring, read when a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Confinement {
    /// `kernel.io_uring_disabled` (6.6+): 0 allowed, 1 only for `kernel.io_uring_group`
    /// (and CAP_SYS_ADMIN), 2 never. None when the kernel has no such sysctl.
    disabled: Option<u32>,
    /// `kernel.io_uring_group`: the group io_uring is limited to when `disabled` is 1.
    group: Option<i64>,
    /// A seccomp filter is installed on this process (`Seccomp: 2` in /proc/self/status).
    seccomp_filtered: bool,
}

impl Confinement {
    fn read() -> Confinement {
        let number = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
        };
        let seccomp_filtered = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Seccomp:"))
                    .map(|mode| mode.trim() == "2")
            })
            .unwrap_or(false);
        Confinement {
            disabled: number("/proc/sys/kernel/io_uring_disabled").map(|value| value as u32),
            group: number("/proc/sys/kernel/io_uring_group"),
            seccomp_filtered,
        }
    }
}

/// `err` from `call` as the one line a user reads: why io_uring is unavailable and how to
/// allow it, never a bare errno.
fn unavailable(call: Call, err: &io::Error) -> io::Error {
    let errno = err.raw_os_error().unwrap_or(0);
    let message = explain(call, errno, &Confinement::read());
    io::Error::new(err.kind(), message)
}

/// The message for `errno` from `call` under `host`. Most certain cause first: the sysctl
/// (the kernel's own switch), then a seccomp filter (which answers before the kernel's
/// io_uring code runs: EPERM under Docker's default profile, ENOSYS under Podman's), then
/// what the errno alone says.
fn explain(call: Call, errno: i32, host: &Confinement) -> String {
    let name = call.name();
    let errno_name = errno_name(errno);
    let why = match (errno, host.disabled) {
        (libc::EPERM, Some(2)) => "the sysctl kernel.io_uring_disabled=2 disables it on this \
             host: set it to 0 (`sysctl -w kernel.io_uring_disabled=0`)"
            .to_string(),
        (libc::EPERM, Some(1)) => format!(
            "the sysctl kernel.io_uring_disabled=1 limits it to the group \
             kernel.io_uring_group ({}), which this process is not in: run natsring in that \
             group or set the sysctl to 0",
            host.group
                .filter(|group| *group >= 0)
                .map_or("unset".to_string(), |group| format!("gid {group}"))
        ),
        (libc::EPERM | libc::ENOSYS, _) if host.seccomp_filtered => format!(
            "this process's seccomp filter blocks it ({name} failed with {errno_name}), as \
             Docker's default seccomp profile does: run the container with --security-opt \
             seccomp=seccomp-io_uring.json (in natsring's deploy/), or allow io_uring_setup, \
             io_uring_enter and io_uring_register in the Kubernetes seccompProfile or the \
             systemd SystemCallFilter="
        ),
        (libc::ENOSYS, _) => format!(
            "this kernel has none ({name} failed with ENOSYS: built without CONFIG_IO_URING, \
             or an emulated kernel): natsring needs Linux {KERNEL_MINIMUM} or newer with \
             io_uring"
        ),
        (libc::EPERM | libc::EACCES, _) => format!(
            "a security policy denies it ({name} failed with {errno_name}): a seccomp filter \
             of a parent process or an LSM such as SELinux; allow io_uring_setup, \
             io_uring_enter and io_uring_register"
        ),
        (libc::EINVAL, _) => format!(
            "the kernel refused natsring's ring ({name} failed with EINVAL): natsring needs \
             Linux {KERNEL_MINIMUM} or newer (single-issuer, deferred task run rings)"
        ),
        (libc::ENOMEM, _) => format!(
            "no memory for its rings ({name} failed with ENOMEM): raise `ulimit -l` \
             (RLIMIT_MEMLOCK, LimitMEMLOCK= under systemd) or the memory limit"
        ),
        (libc::EMFILE | libc::ENFILE, _) => format!(
            "no file descriptor left for a ring ({name} failed with {errno_name}): raise \
             `ulimit -n` (LimitNOFILE= under systemd)"
        ),
        _ => format!("{name} failed ({})", io::Error::from_raw_os_error(errno)),
    };
    format!("io_uring is unavailable: {why}; see {README_SECTION}")
}

/// The symbolic name of the errnos io_uring's calls return.
fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        libc::EBUSY => "EBUSY",
        libc::EINTR => "EINTR",
        libc::ENXIO => "ENXIO",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "an error",
    }
}

/// A refused registration of a provided-buffer ring (`BufRing::new`), explained.
pub fn buffer_ring_refused(err: &io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::EINVAL) => {
            too_old("provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19)")
        }
        _ => unavailable(Call::Register, err),
    }
}

/// What pushing an SQE found.
pub enum Push {
    Queued,
    /// The submission queue is full and the kernel refused a submit with EBUSY: its completion
    /// queue is backed up. The caller must move completions out of the ring, then push again.
    CompletionsBackedUp,
}

/// Queues one SQE, submitting what is queued first when the submission queue is full (adding
/// how many entries that handed the kernel to `submitted`).
///
/// # Safety
/// The kernel reads or writes the memory `entry` names (a send's bytes, a read's target, a
/// timeout's timespec) after this returns, until the operation completes: that memory must stay
/// valid and in place until the entry's completion has been reaped (or the ring is dropped).
pub unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry, submitted: &mut u64) -> Push {
    loop {
        // SAFETY: the caller keeps the memory `entry` names in place until its completion.
        let pushed = unsafe { ring.submission().push(entry) };
        if pushed.is_ok() {
            return Push::Queued;
        }
        match ring.submit() {
            Ok(count) => *submitted += count as u64,
            Err(err) if err.raw_os_error() == Some(libc::EINTR) => {}
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                return Push::CompletionsBackedUp
            }
            Err(err) => {
                panic!("io_uring_enter failed while flushing a full submission queue: {err}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        for kind in [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::Timer,
            OpKind::CancelAccept,
        ] {
            for slot in [0u32, 1, 77, u32::MAX] {
                for generation in [0u32, 1, GENERATION_MASK, u32::MAX] {
                    let token = Token::new(kind, slot, generation);
                    assert_eq!(Token::decode(token.encode()), Some(token));
                    assert_eq!(token.generation, generation & GENERATION_MASK);
                }
            }
        }
        assert_eq!(Token::decode(0), None);
    }

    fn host(disabled: Option<u32>, seccomp_filtered: bool) -> Confinement {
        Confinement {
            disabled,
            group: None,
            seccomp_filtered,
        }
    }

    /// Each cause gets its own words, every line the README pointer, none a bare errno.
    #[test]
    fn every_refusal_is_explained() {
        let cases: [(Call, i32, Confinement, &str); 10] = [
            (
                Call::Setup,
                libc::EPERM,
                host(Some(2), true),
                "kernel.io_uring_disabled=2",
            ),
            (
                Call::Setup,
                libc::EPERM,
                host(Some(1), false),
                "kernel.io_uring_group (unset)",
            ),
            (
                Call::Setup,
                libc::EPERM,
                host(Some(0), true),
                "seccomp filter blocks it (io_uring_setup failed with EPERM)",
            ),
            (
                Call::Enter,
                libc::ENOSYS,
                host(None, true),
                "seccomp filter blocks it (io_uring_enter failed with ENOSYS)",
            ),
            (
                Call::Setup,
                libc::ENOSYS,
                host(None, false),
                "CONFIG_IO_URING",
            ),
            (
                Call::Register,
                libc::EPERM,
                host(Some(0), false),
                "security policy",
            ),
            (
                Call::Setup,
                libc::EINVAL,
                host(Some(0), false),
                "Linux 6.1 or newer",
            ),
            (
                Call::Setup,
                libc::ENOMEM,
                host(Some(0), false),
                "RLIMIT_MEMLOCK",
            ),
            (
                Call::Setup,
                libc::EMFILE,
                host(Some(0), false),
                "LimitNOFILE",
            ),
            (
                Call::Setup,
                libc::EIO,
                host(Some(0), false),
                "io_uring_setup failed (",
            ),
        ];
        for (call, errno, confinement, expected) in cases {
            let line = explain(call, errno, &confinement);
            assert!(line.starts_with("io_uring is unavailable: "), "{line}");
            assert!(line.contains(expected), "{expected:?} in {line:?}");
            assert!(line.ends_with(&format!("; see {README_SECTION}")), "{line}");
            assert!(!line.contains('\n'), "one line: {line}");
            if errno != libc::EIO {
                assert!(!line.contains("os error"), "no bare errno: {line}");
            }
        }
        // The sysctl outranks a seccomp filter: it is certain, the filter only likely.
        assert!(explain(Call::Setup, libc::EPERM, &host(Some(2), true)).contains("sysctl"));
    }

    #[test]
    fn too_old_names_the_feature_and_the_minimum() {
        let line = too_old("IORING_SETUP_DEFER_TASKRUN (Linux 6.1)").to_string();
        assert!(
            line.contains("lacks IORING_SETUP_DEFER_TASKRUN (Linux 6.1)"),
            "{line}"
        );
        assert!(line.contains("natsring needs Linux 6.1 or newer"), "{line}");
        assert!(line.ends_with(README_SECTION), "{line}");
    }

    /// This machine runs the tests, so it has io_uring: the check passes, and twice (cached).
    #[test]
    fn io_uring_is_usable_here() {
        check_io_uring().expect("io_uring usable");
        check_io_uring().expect("io_uring usable");
        assert_eq!(
            builder_with(SETUP_FEATURES.len(), 8)
                .build(4)
                .map(drop)
                .ok(),
            Some(())
        );
    }
}
