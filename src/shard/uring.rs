//! The shard's ring and what the kernel reads or writes through it: the io_uring itself, the
//! provided-buffer ring receives fill, the completions copied out and not handled yet, and the
//! boxed memory that armed operations name (the timers' timespecs, the doorbell's read
//! target). Every SQE the shard submits is built here, so the one `unsafe` rule of
//! submissions (the memory an entry names stays put until its completion, see `ring::push`)
//! is stated where the entries are made.
//!
//! Must not know connections' protocol state: callers pass fds and tokens.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};

use super::buf_ring::BufRing;
use super::ring::{self, OpKind, Token};
use crate::limits;

/// A completion copied out of the ring.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
    /// Where a receive's piece starts in the buffer its flags name (`BufRing::arrive`).
    pub offset: u32,
}

pub struct Io {
    // Field order matters for drop: the ring goes first, so no operation can still name the
    // buffer ring, the timespecs or the wake buffer when they are freed.
    pub ring: IoUring,
    pub buf_ring: BufRing,
    /// Destination of the doorbell read; boxed so its address is stable while the read is armed.
    wake_buf: Box<u64>,
    timer_spec: Box<types::Timespec>,
    resume_spec: Box<types::Timespec>,
    /// The resume timer is armed.
    pub resume_armed: bool,
    /// Non-receive completions moved out of the ring while pushing (see `push`), handled first
    /// in the next round.
    pub early: Vec<Completion>,
    /// Receive completions not handled yet, oldest first (see `Shard::receive_round`).
    pub recv_backlog: VecDeque<Completion>,
    /// Receive completions of paused connections, set aside during a round (kept to reuse).
    pub recv_held: VecDeque<Completion>,
    /// Submission queue entries handed to the kernel (`ShardStats::sqes_submitted`).
    pub sqes_submitted: u64,
}

impl Io {
    /// The ring and its buffer ring. On the shard's own thread (the ring is single-issuer).
    pub fn new() -> io::Result<Io> {
        let ring = ring::create()?;
        let buf_ring = BufRing::for_receives(&ring.submitter(), 0)?;
        Ok(Io {
            ring,
            buf_ring,
            wake_buf: Box::new(0),
            timer_spec: Box::new(Duration::from_millis(limits::TIMER_TICK_MS).into()),
            resume_spec: Box::new(Duration::from_millis(limits::PUBLISHER_PAUSE_MS_MAX).into()),
            resume_armed: false,
            early: Vec::new(),
            recv_backlog: VecDeque::new(),
            recv_held: VecDeque::new(),
            sqes_submitted: 0,
        })
    }

    /// Submits, then sleeps until `limits::STREAMING_WAIT_COMPLETIONS` completions are ready
    /// or, once `limits::STREAMING_WAIT_MICROS` have passed, any one is (or none: then it
    /// returns at that time). A plain `enter(1)` on a kernel without IORING_FEAT_MIN_TIMEOUT.
    pub fn enter_streaming(&mut self) -> io::Result<()> {
        if !self.ring.params().is_feature_min_timeout() {
            return self.enter(1);
        }
        let args = types::SubmitArgs::new().min_wait_usec(limits::STREAMING_WAIT_MICROS);
        let result = self
            .ring
            .submitter()
            .submit_with_args(limits::STREAMING_WAIT_COMPLETIONS, &args);
        entered(result, &mut self.sqes_submitted)
    }

    /// Submits the queued SQEs and, with `want` 1, waits for a completion.
    pub fn enter(&mut self, want: usize) -> io::Result<()> {
        let result = self.ring.submit_and_wait(want);
        entered(result, &mut self.sqes_submitted)
    }

    /// Queues one SQE. When the kernel refuses to take more because its completion queue is
    /// backed up, completions are moved out of the ring (handled next round) and it retries,
    /// so this never spins.
    ///
    /// # Safety
    /// As `ring::push`: the memory `entry` names stays in place until its completion. Each
    /// caller says why. (`ring` is the first field, so it is dropped, and the kernel lets go of
    /// every operation, before the buffers and boxes declared after it.)
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: passed on from the caller.
            let pushed = unsafe { ring::push(&mut self.ring, entry, &mut self.sqes_submitted) };
            match pushed {
                ring::Push::Queued => break,
                ring::Push::CompletionsBackedUp => self.move_completions_out(),
            }
        }
    }

    /// Copies every completion out of the ring: receive completions to the backlog, the rest
    /// to `early`, which the next round handles first.
    pub fn move_completions_out(&mut self) {
        for cqe in self.ring.completion() {
            let mut completion = Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
                offset: 0,
            };
            if Token::decode(completion.user_data).is_some_and(|t| t.kind == OpKind::Recv) {
                // Pieces are placed in the order the kernel posted them, here, whatever order
                // they are handled in.
                self.buf_ring.arrive(&mut completion);
                self.recv_backlog.push_back(completion);
            } else {
                self.early.push(completion);
            }
        }
    }

    /// Empties the completion queue: receive completions join the FIFO backlog, everything
    /// else (sends, accepts, timers, cancels) goes into `batch` to be handled right away. So a
    /// send completion never waits behind a long run of received data, and a subscriber's
    /// frozen buffer is released as soon as the kernel is done with it.
    pub fn reap(&mut self, batch: &mut Vec<Completion>) {
        self.move_completions_out();
        batch.clear();
        batch.append(&mut self.early);
    }

    /// A multishot accept on the listening socket `fd`, listener `listener` of the shard.
    pub fn arm_accept(&mut self, fd: RawFd, listener: u32) {
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Token::new(OpKind::Accept, listener, 0).encode());
        // SAFETY: an accept names no memory (the peer address is not asked for).
        unsafe { self.push(&entry) };
    }

    /// The periodic tick (`TIMER_TICK_MS`).
    pub fn arm_timer(&mut self) {
        let entry = opcode::Timeout::new(&*self.timer_spec)
            .build()
            .user_data(Token::new(OpKind::Timer, 0, 0).encode());
        // SAFETY: `timer_spec` is boxed, owned by `Io` and never replaced.
        unsafe { self.push(&entry) };
    }

    /// The resume timer (`PUBLISHER_PAUSE_MS_MAX`), unless it is armed already.
    pub fn arm_resume(&mut self) {
        if self.resume_armed {
            return;
        }
        let entry = opcode::Timeout::new(&*self.resume_spec)
            .build()
            .user_data(Token::new(OpKind::Resume, 0, 0).encode());
        // SAFETY: `resume_spec` is boxed, owned by `Io` and never replaced.
        unsafe { self.push(&entry) };
        self.resume_armed = true;
    }

    /// The read of the mailbox doorbell `fd`. One is armed at a time (re-armed only on its
    /// completion).
    pub fn arm_wake(&mut self, fd: RawFd) {
        let entry = opcode::Read::new(types::Fd(fd), (&mut *self.wake_buf as *mut u64).cast(), 8)
            .build()
            .user_data(Token::new(OpKind::Wake, 0, 0).encode());
        // SAFETY: `wake_buf` is boxed, owned by `Io` and never replaced.
        unsafe { self.push(&entry) };
    }

    /// A multishot receive on `fd` into the buffer ring, completing with `token`.
    pub fn arm_recv(&mut self, fd: RawFd, token: Token) {
        let entry = opcode::RecvMulti::new(types::Fd(fd), self.buf_ring.group_id())
            .build()
            .user_data(token.encode());
        // It fills buffers of the registered buffer ring, mapped for the shard's whole life.
        // SAFETY: a multishot receive names no memory of its own.
        unsafe { self.push(&entry) };
    }

    /// Cancels the operation submitted with `target`; completes with `token`.
    pub fn cancel(&mut self, target: Token, token: Token) {
        let entry = opcode::AsyncCancel::new(target.encode())
            .build()
            .user_data(token.encode());
        // SAFETY: a cancel names no memory (its target is a user_data value).
        unsafe { self.push(&entry) };
    }

    /// Sends `len` bytes at `ptr` on `fd`, completing with `token`.
    ///
    /// # Safety
    /// The `len` bytes at `ptr` stay valid and in place until the send's completion is handled.
    pub unsafe fn send(&mut self, fd: RawFd, ptr: *const u8, len: usize, token: Token) {
        let entry = opcode::Send::new(types::Fd(fd), ptr, len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(token.encode());
        // SAFETY: the caller keeps the bytes in place until the completion.
        unsafe { self.push(&entry) };
    }

    /// Posts `data` into the ring `ring_fd` (another shard's: its wait ends). Only a failure
    /// completes here, with `token`.
    pub fn post(&mut self, ring_fd: RawFd, data: Token, token: Token) {
        let entry = opcode::MsgRingData::new(types::Fd(ring_fd), 0, data.encode(), None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(token.encode());
        // SAFETY: a MSG_RING with data names no memory (it posts a value to the other ring).
        unsafe { self.push(&entry) };
    }
}

/// What an enter returned, as the loop sees it: interrupted (EINTR), the completion queue
/// backed up (EBUSY) or a short wait ended with nothing ready (ETIME, `enter_streaming`) are
/// no errors, since reaping comes next either way. The entries submitted are added to
/// `submitted`.
fn entered(result: io::Result<usize>, submitted: &mut u64) -> io::Result<()> {
    match result {
        Ok(count) => {
            *submitted += count as u64;
            Ok(())
        }
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::EINTR | libc::EBUSY | libc::ETIME)
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}
