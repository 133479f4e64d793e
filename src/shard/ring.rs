//! The shard's io_uring: creation (with an explanation when io_uring is not permitted), the
//! `user_data` codec, and submission with a full-queue retry.
//!
//! `user_data` is a `Token`: (operation kind, slot, generation). One place encodes and decodes
//! it. Kinds that are not per connection (accept, timer, wake-up) use slot 0 and generation 0.

use std::io;

use io_uring::{squeue, IoUring};

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

/// Creates the shard's ring, or an error whose text names the cause and the fix.
pub fn create() -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        // The kernel flags pending deferred work in the SQ ring, so a submit that does not
        // wait still runs it (io-uring then enters with GETEVENTS); without it, sends would not
        // complete while the loop works through leftover completions.
        .setup_taskrun_flag()
        .setup_cqsize(limits::RING_COMPLETION_ENTRIES);
    builder
        .build(limits::RING_ENTRIES)
        .map_err(explain_setup_error)
}

/// Turns an `io_uring_setup` failure into a message saying why and how to allow io_uring.
pub fn explain_setup_error(err: io::Error) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let why = match (err.raw_os_error(), disabled) {
        (Some(libc::ENOSYS), _) => "io_uring is not available: the kernel has no io_uring, or a \
             seccomp profile blocks it (Docker's default profile does: run the container with \
             --security-opt seccomp=unconfined or a profile allowing io_uring_setup, \
             io_uring_enter and io_uring_register)"
            .to_string(),
        (Some(libc::EPERM), Some(d)) if d > 0 => format!(
            "io_uring is disabled by the sysctl kernel.io_uring_disabled={d}: allow it with \
             `sysctl -w kernel.io_uring_disabled=0`"
        ),
        (Some(libc::EPERM), _) => "io_uring is denied to this process (seccomp or an LSM \
             policy): allow io_uring_setup, io_uring_enter and io_uring_register"
            .to_string(),
        (Some(libc::EINVAL), _) => "the kernel's io_uring lacks SINGLE_ISSUER / DEFER_TASKRUN: \
             natsring needs Linux 6.1 or newer"
            .to_string(),
        (Some(libc::ENOMEM), _) => "io_uring could not lock memory for its rings: raise \
             `ulimit -l` (RLIMIT_MEMLOCK)"
            .to_string(),
        _ => "io_uring setup failed".to_string(),
    };
    io::Error::new(err.kind(), format!("{why} ({err})"))
}

/// What pushing an SQE found.
pub enum Push {
    Queued,
    /// The submission queue is full and the kernel refused a submit with EBUSY: its completion
    /// queue is backed up. The caller must move completions out of the ring, then push again.
    CompletionsBackedUp,
}

/// Queues one SQE, submitting what is queued first when the submission queue is full.
///
/// # Safety
/// The kernel reads or writes the memory `entry` names (a send's bytes, a read's target, a
/// timeout's timespec) after this returns, until the operation completes: that memory must stay
/// valid and in place until the entry's completion has been reaped (or the ring is dropped).
pub unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Push {
    loop {
        // SAFETY: the caller keeps the memory `entry` names in place until its completion.
        let pushed = unsafe { ring.submission().push(entry) };
        if pushed.is_ok() {
            return Push::Queued;
        }
        match ring.submit() {
            Ok(_) => {}
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
}
