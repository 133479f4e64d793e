//! One shard: a single-threaded event loop on its own io_uring, owning its listener, its
//! connections, its provided-buffer ring, its subscriptions and its match cache.
//!
//! The loop (DESIGN §2): submit everything queued and wait for at least one completion; copy
//! completions out in batches and dispatch each; then queue one send per dirty connection. Sends
//! are never issued while parsing, so one read carrying a thousand messages costs one send per
//! subscriber.
//!
//! Slot rule: a connection slot is freed only when the connection is closing and none of its
//! operations is in flight (`Conn::ops_in_flight`); its fd is closed last. Completions carry the
//! slot's generation; one that does not match is counted and dropped.
//!
//! The way in from other threads is the control mailbox (`control`): stop, and questions
//! answered from the shard's own state at a safe point of the loop (`Control::Connections`,
//! what `/connz` will ask); a configuration reload is the next command to add there.
//!
//! Adding a connection kind (a cluster route, say). A kind is a `ConnKind` variant and a
//! session module beside `client.rs`: the session's reader handler (a `proto::Handler` over its
//! own operations; routes speak `RS+`/`RS-`/`RMSG`, which get their own parser), what it sends
//! when the connection opens (`start_client`'s counterpart), and how a delivery is written for it
//! (`RMSG` with the account, not `MSG` with a sid). Its port is one more entry in the shard's
//! listener table (`ShardSetup::listeners`, bound by `server.rs` with `SO_REUSEPORT` like the
//! client port); the accept token's slot names the listener, so `on_accept` opens the
//! connection with that listener's kind. The compiler then lists every place left to decide:
//! each `match conn.kind` (`on_input`, `open_conn`) must get an arm. Routing stays where it is
//! (`deliver.rs`): a route is one more kind of target for a matched message, and `Origin` gets
//! a variant so a message from a route is not sent back into the cluster.
//!
//! Adding a transport (TLS). A `Transport` variant holding the session state (rustls's
//! `ServerConnection`). The receive seam is `Shard::on_input`: ciphertext from the provided
//! buffer goes in, the plaintext that comes out is fed to the session's reader, and handshake
//! bytes to send go into the outbound. The send seam is in `flush_dirty`: the plaintext that
//! `Outbound::next_send` freezes is encrypted into the transport's own buffer, and that buffer is
//! what the send SQE names (it must then stay put until the completion, as the `# Safety` of
//! `push` says). Parser, templates and delivery never see ciphertext.
//!
//! Must not touch: token matching (that is `sublist`), wire formats (that is `proto`).

mod backpressure;
mod buf_ring;
mod client;
mod conn;
pub mod control;
mod deliver;
mod peers;
mod ring;
mod templates;

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::{cqueue, opcode, types, IoUring};
use slab::Slab;

use crate::account::{Account, AccountId};
use crate::config::Options;
use crate::limits;
use crate::proto::json::Info;
use crate::proto::{CloseReason, ServerError};
use crate::stats::{ConnSnapshot, ShardStats};
use crate::sublist::MatchCache;

use crate::xshard::link::{Incoming, Outgoing};
use crate::xshard::ShardId;
use backpressure::{subscriber_wait_over, Backlog, Pauses, SubscriberNow};
use buf_ring::BufRing;
pub use conn::ConnKind;
use conn::{Conn, ConnState, PauseCause, RecvState, SubscriberWait, Subscription, Transport};
use peers::Peers;
use ring::{OpKind, Token};

/// What every shard shares: read-mostly configuration, the subject table, server-wide counters.
pub struct Shared {
    pub options: Options,
    /// The INFO every client gets, before its client_id and client_ip are filled in.
    pub info: Info,
    /// Every account, indexed by `AccountId` (`$G` first), each with its subject table.
    pub accounts: Vec<Arc<Account>>,
    pub shard_count: usize,
    /// Each shard's ring fd (the target of peers' `MSG_RING`), set before any shard runs.
    pub ring_fds: Vec<AtomicI32>,
    /// Open client connections across all shards (max_connections is server-wide).
    pub connections: AtomicU32,
    /// Set once to ask every shard to stop.
    pub stopping: AtomicBool,
    /// Each shard's counters, published on its timer tick and when it stops.
    pub stats: Vec<Mutex<ShardStats>>,
    /// Each shard's mailbox (see `control`).
    pub mailboxes: Vec<control::Mailbox>,
}

impl Shared {
    /// Asks every shard to stop (close its connections and exit). Used for shutdown, and by
    /// a shard whose loop ended on an error, so the server fails whole, never half-working.
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::Release);
        for mailbox in &self.mailboxes {
            mailbox.send(control::Control::Stop);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// What a shard is started with.
pub struct ShardSetup {
    pub index: ShardId,
    /// The shard's listening sockets (one `SO_REUSEPORT` member of each port's group) and the
    /// kind of connection each accepts.
    pub listeners: Vec<(ConnKind, TcpListener)>,
    /// The read end of the shard's mailbox doorbell (`control`): a byte makes the shard take
    /// its commands; end of file stops it.
    pub wake_fd: Arc<OwnedFd>,
    pub shared: Arc<Shared>,
    /// By shard id: the link to that shard and the link from it (None for this one).
    pub links: Vec<Option<(Outgoing, Incoming)>>,
}

/// One account as a shard uses it: the account (its subject table) and the shard's match cache
/// for it, side by side so a publish reaches both through one index.
struct AccountView {
    account: Arc<Account>,
    cache: MatchCache,
}

impl AccountView {
    /// What `subject` matches in this account, through the shard's cache.
    #[inline]
    fn lookup(&mut self, subject: &[u8]) -> std::rc::Rc<crate::sublist::MatchResult> {
        self.cache.lookup(&self.account.sublist, subject)
    }
}

/// One listening socket of the shard's.
struct Listener {
    socket: TcpListener,
    /// What its connections speak.
    kind: ConnKind,
    /// A multishot accept is armed on it.
    accept_armed: bool,
}

/// `IORING_CQE_F_BUFFER`: the completion names a provided buffer (in the upper 16 bits).
const CQE_F_BUFFER: u32 = 1;

/// A completion copied out of the ring.
#[derive(Debug, Clone, Copy)]
struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

pub struct Shard {
    // Field order matters for drop: the ring goes first, so no operation can still name the
    // buffer ring, the timespecs or the wake buffer when they are freed.
    ring: IoUring,
    buf_ring: BufRing,
    index: ShardId,
    shared: Arc<Shared>,
    /// Indexed by the slot of their accept tokens.
    listeners: Vec<Listener>,
    wake_fd: Arc<OwnedFd>,
    /// Destination of the doorbell read; boxed so its address is stable while the read is armed.
    wake_buf: Box<u64>,
    timer_spec: Box<types::Timespec>,
    resume_spec: Box<types::Timespec>,
    conns: Slab<Conn>,
    subs: Slab<Subscription>,
    /// Source of connection and subscription generations (never reused while a slot lives).
    next_generation: u32,
    /// Non-receive completions moved out of the ring while pushing (see `push`), handled first
    /// in the next round.
    early: Vec<Completion>,
    /// Receive completions not handled yet, oldest first (see `receive_round`).
    recv_backlog: VecDeque<Completion>,
    /// Slots with output to flush this iteration (deduplicated by `Conn::dirty`).
    dirty: Vec<u32>,
    /// Slots whose receive ended for lack of buffers, to re-arm after this round.
    starved: Vec<u32>,
    /// Receive completions of paused connections, set aside during a round (kept to reuse).
    recv_held: VecDeque<Completion>,
    /// Paused publishers and the back-pressure marks (see `backpressure`).
    pauses: Pauses,
    /// The other shards; empty with one shard.
    peers: Peers,
    /// Set by a delivery of a peer's frame (`Origin::Peer`) that took a subscriber over its
    /// high-water mark; taken by `drain_peers`, which holds that peer's queue.
    over_high_water: Option<SubscriberWait>,
    /// The next client id this shard hands out; ids of shard i are i+1 modulo the shard count,
    /// so anyone can tell a connection's shard from its INFO `client_id`.
    next_client_id: u64,
    /// Every account as this shard uses it, indexed by `AccountId`.
    accounts: Vec<AccountView>,
    rng: u64,
    started: Instant,
    /// Milliseconds since `started`, read once per loop iteration.
    now_ms: u64,
    /// Outbound bytes over which a subscriber pauses its publishers (see limits).
    resume_armed: bool,
    stopping: bool,
    stats: ShardStats,
    /// Scratch space for small control-plane writes (INFO, no-responders headers).
    scratch: Vec<u8>,
    /// The frames of the message being delivered (see `templates`); taken out meanwhile.
    templates: templates::Templates,
}

impl Shard {
    /// Builds the shard's ring and buffer ring. Runs on the shard's own thread (the ring is
    /// single-issuer).
    pub fn new(setup: ShardSetup) -> io::Result<Shard> {
        let ring = ring::create()?;
        setup.shared.ring_fds[setup.index.index()].store(ring.as_raw_fd(), Ordering::Release);
        let accounts = setup
            .shared
            .accounts
            .iter()
            .map(|account| AccountView {
                account: Arc::clone(account),
                cache: MatchCache::new(),
            })
            .collect();
        let setup_max_pending = setup.shared.options.max_pending;
        let buf_ring = BufRing::new(
            &ring.submitter(),
            0,
            limits::RECV_BUFFER_COUNT,
            limits::RECV_BUFFER_BYTES,
        )?;
        let seed = (std::process::id() as u64) << 32
            ^ setup.index.0 as u64
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
            ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Shard {
            ring,
            buf_ring,
            index: setup.index,
            shared: setup.shared,
            listeners: setup
                .listeners
                .into_iter()
                .map(|(kind, socket)| Listener {
                    socket,
                    kind,
                    accept_armed: false,
                })
                .collect(),
            wake_fd: setup.wake_fd,
            wake_buf: Box::new(0),
            timer_spec: Box::new(Duration::from_millis(limits::TIMER_TICK_MS).into()),
            resume_spec: Box::new(Duration::from_millis(limits::PUBLISHER_PAUSE_MS_MAX).into()),
            conns: Slab::new(),
            subs: Slab::new(),
            next_generation: 1,
            early: Vec::new(),
            recv_backlog: VecDeque::new(),
            starved: Vec::new(),
            recv_held: VecDeque::new(),
            dirty: Vec::new(),
            pauses: Pauses::new(setup_max_pending),
            peers: Peers::new(setup.links),
            over_high_water: None,
            next_client_id: setup.index.0 as u64 + 1,
            accounts,
            rng: seed | 1,
            started: Instant::now(),
            now_ms: 0,
            resume_armed: false,
            stopping: false,
            stats: ShardStats::default(),
            scratch: Vec::new(),
            templates: Default::default(),
        })
    }

    /// The event loop. Returns when the server stops and every connection is gone.
    pub fn run(mut self) -> io::Result<()> {
        self.arm_accepts();
        self.arm_timer();
        self.arm_wake();
        let mut batch: Vec<Completion> = Vec::with_capacity(limits::COMPLETION_BATCH_MAX);
        let mut ready_left = false;
        let mut worked = false;
        while !(self.stopping && self.conns.is_empty()) {
            // Wait only when nothing that can be handled now is left over.
            let mut want = usize::from(!ready_left && self.early.is_empty());
            if want == 1 && worked {
                // Hand this round's sends to the kernel, then watch for what comes back.
                self.enter(0)?;
                if self.busy_poll() {
                    want = 0;
                }
            }
            self.enter(want)?;
            self.now_ms = self.started.elapsed().as_millis() as u64;
            self.reap(&mut batch);
            worked = !batch.is_empty() || !self.recv_backlog.is_empty();
            for completion in &batch {
                self.dispatch(*completion);
            }
            let (took_frames, peers_left) = if self.peers.is_empty() {
                (false, false)
            } else {
                self.drain_peers()
            };
            // Frames taken from a peer are work too: a busy-poll may follow.
            worked |= took_frames;
            ready_left = self.receive_round() | peers_left;
            debug_assert_eq!(
                self.buf_ring.leased(),
                0,
                "a receive buffer was not given back"
            );
            // Completions held for a connection resumed now can be handled in the next round.
            self.rearm_starved();
            ready_left |= self.resume_paused() && !self.recv_backlog.is_empty();
            self.flush_dirty();
            if !self.peers.is_empty() {
                self.wake_peers();
            }
        }
        self.publish_stats();
        Ok(())
    }

    /// Submits the queued SQEs and, with `want` 1, waits for a completion.
    fn enter(&mut self, want: usize) -> io::Result<()> {
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            // Interrupted, or the completion queue is backed up: reaping comes next either way.
            Err(err) if matches!(err.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Before sleeping, watches the ring for up to `BUSY_POLL_MICROS` for a completion to
    /// arrive (a posted CQE, or deferred task work the kernel flags), and the peers' queues for
    /// frames published mid-round (`limits::PEER_PUBLISH_BYTES`). Waking a sleeping thread
    /// costs tens of microseconds on this kind of machine, twice per request/reply through
    /// the server; a shard that was just busy is likely to be busy again that soon. Returns
    /// true when there is something to reap. Only after a round that handled completions, so
    /// an idle shard sleeps at once.
    fn busy_poll(&mut self) -> bool {
        if limits::BUSY_POLL_MICROS == 0 {
            return false;
        }
        let deadline = Instant::now() + Duration::from_micros(limits::BUSY_POLL_MICROS);
        loop {
            if self.ring.submission().taskrun()
                || !self.ring.completion().is_empty()
                || self.peers.frames_waiting()
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Not a bare spin: when another thread could run on this CPU (a client on the same
            // core, another shard), it runs; otherwise this returns at once.
            std::thread::yield_now();
        }
    }

    /// Queues one SQE. When the kernel refuses to take more because its completion queue is
    /// backed up, completions are moved out of the ring (handled next round) and it retries,
    /// so this never spins.
    ///
    /// # Safety
    /// As `ring::push`: the memory `entry` names stays in place until its completion. Each
    /// caller says why. (`ring` is the shard's first field, so it is dropped, and the kernel
    /// lets go of every operation, before the buffers and boxes declared after it.)
    unsafe fn push(&mut self, entry: &io_uring::squeue::Entry) {
        // SAFETY: passed on from the caller.
        while let ring::Push::CompletionsBackedUp = unsafe { ring::push(&mut self.ring, entry) } {
            self.move_completions_out();
        }
    }

    /// Copies every completion out of the ring: receive completions to the backlog, the rest
    /// to `early`, which the next round handles first.
    fn move_completions_out(&mut self) {
        for cqe in self.ring.completion() {
            let completion = Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            };
            if Token::decode(completion.user_data).is_some_and(|t| t.kind == OpKind::Recv) {
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
    fn reap(&mut self, batch: &mut Vec<Completion>) {
        self.move_completions_out();
        batch.clear();
        batch.append(&mut self.early);
    }

    /// Handles received data in arrival order until `RECV_BYTES_PER_ROUND_MAX` bytes are in;
    /// the rest waits for the next round, after what this round produced is flushed. Buffers
    /// named by waiting completions stay out of the ring meanwhile: when it runs dry, the
    /// kernel stops reading (ENOBUFS ends the multishot receive), and TCP pushes back on the
    /// publisher. Completions of a paused connection are held, in order, until it resumes:
    /// with their buffers while paused connections keep at most `PAUSED_BUFFERS_KEPT_MAX` of
    /// them, their data copied out beyond that (see `hold_data`).
    /// Returns true when completions that could be handled now are left over.
    fn receive_round(&mut self) -> bool {
        let mut received = 0usize;
        let mut held = std::mem::take(&mut self.recv_held);
        debug_assert!(held.is_empty());
        // Buffers kept by the held completions (all of them are looked at again each round).
        let mut kept = 0usize;
        while received < limits::RECV_BYTES_PER_ROUND_MAX {
            let Some(completion) = self.recv_backlog.pop_front() else {
                break;
            };
            let paused = Token::decode(completion.user_data)
                .and_then(|token| self.conn_mut(token))
                .is_some_and(|conn| conn.paused.is_some() && conn.is_open());
            if paused {
                if cqueue::buffer_select(completion.flags).is_some() {
                    if kept < limits::PAUSED_BUFFERS_KEPT_MAX {
                        kept += 1;
                        held.push_back(completion);
                        continue;
                    }
                    // Over the bound: this connection's kept completions are older than this
                    // one, so their data goes to its held bytes first.
                    kept -= self.copy_out_kept(&mut held, completion.user_data);
                }
                held.push_back(self.hold_data(completion));
                continue;
            }
            received += completion.result.max(0) as usize;
            self.dispatch(completion);
        }
        let ready_left = !self.recv_backlog.is_empty();
        if !held.is_empty() {
            // Held completions are older than the rest: they go back in front, in order.
            held.append(&mut self.recv_backlog);
            std::mem::swap(&mut held, &mut self.recv_backlog);
        }
        self.recv_held = held;
        ready_left
    }

    /// Copies out, in order, the data of the held completions of the receive `user_data` names
    /// that still keep their buffers. Returns how many buffers went back to the ring.
    fn copy_out_kept(&mut self, held: &mut VecDeque<Completion>, user_data: u64) -> usize {
        let mut copied = 0;
        for completion in held.iter_mut() {
            if completion.user_data == user_data
                && cqueue::buffer_select(completion.flags).is_some()
            {
                *completion = self.hold_data(*completion);
                copied += 1;
            }
        }
        copied
    }

    /// For a receive completion of a paused connection: copies its data (if any) to the
    /// connection's `held` bytes and gives the buffer back, so that paused publishers keep at
    /// most `PAUSED_BUFFERS_KEPT_MAX` provided buffers. Returns the completion without its
    /// buffer, to be handled (in order) once the connection resumes; its data then comes from
    /// `held`.
    fn hold_data(&mut self, mut completion: Completion) -> Completion {
        let Some(id) = cqueue::buffer_select(completion.flags) else {
            return completion;
        };
        let lease = self.buf_ring.lease(id, completion.result.max(0) as usize);
        let token = Token::decode(completion.user_data).expect("a receive token");
        if let Some(conn) = self.conn_mut(token) {
            conn.held.push(lease.bytes());
        }
        self.buf_ring.give_back(lease);
        completion.flags &= !CQE_F_BUFFER;
        completion
    }

    /// The receive seam: bytes from the socket of `slot` (open), through its transport, to its
    /// session. Returns how many bytes at the end were left unparsed because the connection
    /// paused (the caller holds them). One match per received buffer, not per message.
    #[inline]
    fn on_input(&mut self, slot: u32, bytes: &[u8]) -> usize {
        let conn = &self.conns[slot as usize];
        match (conn.transport, conn.kind) {
            (Transport::Plain, ConnKind::Client) => self.on_client_input(slot, bytes),
        }
    }

    fn dispatch(&mut self, completion: Completion) {
        let Some(token) = Token::decode(completion.user_data) else {
            unreachable!(
                "completion with user_data {:#x} the shard never submitted",
                completion.user_data
            );
        };
        match token.kind {
            OpKind::Accept => self.on_accept(token.slot, completion),
            OpKind::Recv => self.on_recv(token, completion),
            OpKind::Send => self.on_send(token, completion),
            OpKind::CancelRecv => self.on_cancel_recv(token, completion),
            OpKind::Timer => self.on_timer(completion),
            OpKind::Wake => self.on_wake(completion),
            OpKind::Resume => {
                self.resume_armed = false;
            }
            OpKind::CancelAccept => {}
            // Peers' frames are drained every round; the wake-up only ended our wait.
            OpKind::Mailbox => {}
            OpKind::WakePeer => {
                // Only failures complete (SKIP_SUCCESS). None needs action: EOVERFLOW means the
                // peer's completion queue is full, so it is busy and drains its queues anyway;
                // EBADFD/EBADF means its ring is gone, which happens only while stopping (a
                // failed shard stops the whole server). Counted, logged at debug level.
                self.stats.peer_wakeups_failed += 1;
                crate::log_debug!(
                    "Shard {} could not wake shard {}: {}",
                    self.index,
                    token.slot,
                    io::Error::from_raw_os_error(-completion.result)
                );
            }
        }
    }

    // ----- submissions -------------------------------------------------------------------

    /// Arms a multishot accept on every listener that has none.
    fn arm_accepts(&mut self) {
        for index in 0..self.listeners.len() {
            if !self.listeners[index].accept_armed {
                self.arm_accept(index as u32);
            }
        }
    }

    fn arm_accept(&mut self, listener: u32) {
        let entry = opcode::AcceptMulti::new(types::Fd(
            self.listeners[listener as usize].socket.as_raw_fd(),
        ))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(Token::new(OpKind::Accept, listener, 0).encode());
        // SAFETY: an accept names no memory (the peer address is not asked for).
        unsafe { self.push(&entry) };
        self.listeners[listener as usize].accept_armed = true;
    }

    fn arm_timer(&mut self) {
        let entry = opcode::Timeout::new(&*self.timer_spec)
            .build()
            .user_data(Token::new(OpKind::Timer, 0, 0).encode());
        // SAFETY: `timer_spec` is boxed, owned by the shard and never replaced.
        unsafe { self.push(&entry) };
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            types::Fd(self.wake_fd.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(Token::new(OpKind::Wake, 0, 0).encode());
        // One read into `wake_buf` is armed at a time (re-armed only on its completion).
        // SAFETY: `wake_buf` is boxed, owned by the shard and never replaced.
        unsafe { self.push(&entry) };
    }

    fn arm_recv(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        debug_assert_eq!(conn.recv, RecvState::Idle);
        let entry = opcode::RecvMulti::new(types::Fd(conn.fd), self.buf_ring.group_id())
            .build()
            .user_data(Token::new(OpKind::Recv, slot, conn.generation).encode());
        conn.recv = RecvState::Armed;
        conn.ops_in_flight += 1;
        // It fills buffers of the registered buffer ring, mapped for the shard's whole life.
        // SAFETY: a multishot receive names no memory of its own.
        unsafe { self.push(&entry) };
    }

    /// Cancels the connection's armed receive (to pause or close it).
    fn cancel_recv(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        if conn.recv != RecvState::Armed {
            return;
        }
        let target = Token::new(OpKind::Recv, slot, conn.generation).encode();
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Token::new(OpKind::CancelRecv, slot, conn.generation).encode());
        conn.recv = RecvState::Cancelling;
        conn.ops_in_flight += 1;
        // SAFETY: a cancel names no memory (its target is a user_data value).
        unsafe { self.push(&entry) };
    }

    /// Re-arms the receives that ended because the buffer ring was empty.
    fn rearm_starved(&mut self) {
        while let Some(slot) = self.starved.pop() {
            let Some(conn) = self.conns.get(slot as usize) else {
                continue;
            };
            if conn.is_open() && conn.paused.is_none() && conn.recv == RecvState::Idle {
                self.arm_recv(slot);
            }
        }
    }

    /// Queues one send per dirty connection with output and no send in flight.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            conn.dirty = false;
            if conn.state == ConnState::Closing || conn.out.send_in_flight() {
                continue;
            }
            // The send seam: what the transport makes of the outbound bytes.
            let next = match conn.transport {
                Transport::Plain => conn.out.next_send(),
            };
            let Some((ptr, len)) = next else {
                if conn.state == ConnState::Draining {
                    let reason = conn.close_reason.unwrap_or(CloseReason::ClientClosed);
                    self.close(slot, reason);
                }
                continue;
            };
            let entry = opcode::Send::new(types::Fd(conn.fd), ptr, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(Token::new(OpKind::Send, slot, conn.generation).encode());
            conn.ops_in_flight += 1;
            if conn.write_stalled_since_ms.is_none() {
                conn.write_stalled_since_ms = Some(self.now_ms);
            }
            // `send_in_flight()` holds until this send's completion is handled, and the slot is
            // not reused while `ops_in_flight` counts it.
            // SAFETY: `Outbound` neither moves nor frees the bytes `next_send` froze meanwhile.
            unsafe { self.push(&entry) };
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Notes that `slot` has new output to flush this round. Every writer calls it, so this
    /// is where any output (PONGs, +OKs, -ERRs, PINGs, messages) that takes a connection past
    /// `max_pending` makes it a slow consumer, as nats-server checks on every queued write.
    fn mark_dirty(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
        if conn.state == ConnState::Open
            && self.pauses.backlog(conn.out.pending_bytes()) == Backlog::SlowConsumer
        {
            self.slow_consumer(slot);
        }
    }

    // ----- completions -------------------------------------------------------------------

    /// A connection accepted on listener `listener` (the accept token's slot).
    fn on_accept(&mut self, listener: u32, completion: Completion) {
        let short_of_resources =
            [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&-completion.result);
        if !cqueue::more(completion.flags) {
            self.listeners[listener as usize].accept_armed = false;
            // Out of fds or memory: retrying at once would fail at once; the next tick re-arms.
            if !self.stopping && !short_of_resources {
                self.arm_accept(listener);
            }
        }
        match completion.result {
            fd if fd >= 0 => {
                if self.stopping {
                    close_fd(fd);
                } else {
                    let kind = self.listeners[listener as usize].kind;
                    self.open_conn(fd, kind);
                }
            }
            // Transient: the peer went away before we accepted, or fds/memory ran short. The
            // multishot accept re-arms above when it ended.
            err if [
                libc::ECONNABORTED,
                libc::EMFILE,
                libc::ENFILE,
                libc::ENOBUFS,
                libc::ENOMEM,
                libc::EINTR,
            ]
            .contains(&-err) =>
            {
                if short_of_resources {
                    crate::log_error!(
                        "Temporary error accepting client connection: {}; retrying in {}ms",
                        io::Error::from_raw_os_error(-err),
                        limits::TIMER_TICK_MS
                    );
                }
            }
            err if -err == libc::ECANCELED => {}
            err => {
                crate::log_error!(
                    "Error accepting client connection: {}",
                    io::Error::from_raw_os_error(-err)
                );
            }
        }
    }

    fn on_recv(&mut self, token: Token, completion: Completion) {
        let lease = cqueue::buffer_select(completion.flags)
            .map(|id| self.buf_ring.lease(id, completion.result.max(0) as usize));
        let ended = !cqueue::more(completion.flags);
        let slot = token.slot;
        if self.conn_mut(token).is_none() {
            if let Some(lease) = lease {
                self.buf_ring.give_back(lease);
            }
            self.stats.stale_completions += 1;
            return;
        }
        if completion.result > 0 {
            self.conns[slot as usize].last_read_ms = self.now_ms;
        }
        // Bytes held while the connection was paused are older than this completion's.
        self.handle_held(slot);
        if let Some(lease) = lease {
            let conn = &mut self.conns[slot as usize];
            if completion.result > 0 && conn.is_open() {
                if conn.paused.is_some() {
                    conn.held.push(lease.bytes());
                } else {
                    let bytes = lease.bytes();
                    let left = self.on_input(slot, bytes);
                    if left > 0 {
                        self.conns[slot as usize]
                            .held
                            .push(&bytes[bytes.len() - left..]);
                    }
                }
            }
            self.buf_ring.give_back(lease);
        }
        match completion.result {
            // The client finished sending: what it asked for is still flushed (nats-server
            // flushes on a client close), then the connection closes.
            0 => self.drain_and_close(slot, CloseReason::ClientClosed),
            n if n > 0 => {}
            err => match -err {
                // The buffer ring ran dry or we cancelled the receive: re-armed below if wanted.
                libc::ENOBUFS | libc::ECANCELED => {}
                libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT | libc::EHOSTUNREACH => {
                    self.close(slot, CloseReason::ClientClosed)
                }
                _ => self.close(slot, CloseReason::ReadError),
            },
        }
        if ended {
            let conn = &mut self.conns[slot as usize];
            conn.recv = RecvState::Idle;
            conn.ops_in_flight -= 1;
            if conn.is_open() && conn.paused.is_none() {
                if completion.result == -libc::ENOBUFS {
                    // The ring ran dry: re-armed once this round has given buffers back.
                    self.starved.push(slot);
                } else {
                    self.arm_recv(slot);
                }
            }
            self.release_if_done(slot);
        }
    }

    fn on_send(&mut self, token: Token, completion: Completion) {
        let slot = token.slot;
        let now_ms = self.now_ms;
        let Some(conn) = self.conn_mut(token) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.ops_in_flight -= 1;
        match completion.result {
            written if written >= 0 => {
                let written = written as usize;
                conn.out.sent(written);
                conn.write_stalled_since_ms = if conn.out.pending_bytes() > 0 {
                    Some(now_ms)
                } else {
                    None
                };
                if conn.state != ConnState::Closing
                    && (conn.out.pending_bytes() > 0 || conn.state == ConnState::Draining)
                {
                    self.mark_dirty(slot);
                }
            }
            err => {
                conn.out.send_failed();
                if conn.state != ConnState::Closing {
                    let reason = match -err {
                        libc::EPIPE | libc::ECONNRESET => CloseReason::ClientClosed,
                        _ => CloseReason::WriteError,
                    };
                    self.close(slot, reason);
                }
            }
        }
        self.release_if_done(slot);
    }

    fn on_cancel_recv(&mut self, token: Token, _completion: Completion) {
        // The result (0, ENOENT when the receive had already ended, EALREADY) needs no action:
        // the receive's own final completion does the bookkeeping.
        let slot = token.slot;
        let Some(conn) = self.conn_mut(token) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.ops_in_flight -= 1;
        self.release_if_done(slot);
    }

    fn on_timer(&mut self, completion: Completion) {
        debug_assert!(completion.result == -libc::ETIME || completion.result == 0);
        if !self.stopping {
            self.arm_accepts();
        }
        self.tick();
        self.publish_stats();
        crate::alloc::release_freed_memory();
        if !self.stopping {
            self.arm_timer();
        }
    }

    /// The mailbox's doorbell rang: every command waiting is handled now (a safe point: between
    /// completions). End of file or an error other than EINTR stops the shard, so it can never
    /// spin here.
    fn on_wake(&mut self, completion: Completion) {
        let retry = completion.result > 0 || completion.result == -libc::EINTR;
        if completion.result < 0 && completion.result != -libc::EINTR {
            crate::log_error!(
                "Shard {} wake-up read failed: {}",
                self.index,
                io::Error::from_raw_os_error(-completion.result)
            );
        }
        for command in self.shared.mailboxes[self.index.index()].take() {
            match command {
                control::Control::Stop => self.begin_stop(),
                control::Control::Connections(reply) => {
                    let _ = reply.send(self.connection_snapshots());
                }
            }
        }
        // A stop arrives as `Control::Stop` (`Shared::stop_all` sends it to every shard); the
        // doorbell failing for good stops the shard too.
        if !retry {
            self.begin_stop();
        }
        if !self.stopping {
            self.arm_wake();
        }
    }

    /// Every open connection, for `Control::Connections`.
    fn connection_snapshots(&self) -> Vec<ConnSnapshot> {
        self.conns
            .iter()
            .filter(|(_, conn)| conn.is_open())
            .map(|(_, conn)| ConnSnapshot {
                cid: conn.client_id,
                shard: self.index.0,
                peer: conn.peer.clone(),
                name: conn.options.name.clone(),
                lang: conn.options.lang.clone(),
                version: conn.options.version.clone(),
                in_msgs: conn.in_msgs,
                in_bytes: conn.in_bytes,
                out_msgs: conn.out_msgs,
                out_bytes: conn.out_bytes,
                subscriptions: conn.subs.len(),
                pending_bytes: conn.out.pending_bytes(),
            })
            .collect()
    }

    // ----- connection lifecycle ----------------------------------------------------------

    /// The connection a completion names, if its slot still holds that connection.
    fn conn_mut(&mut self, token: Token) -> Option<&mut Conn> {
        self.conns
            .get_mut(token.slot as usize)
            .filter(|conn| conn.generation & ring::GENERATION_MASK == token.generation)
    }

    fn take_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        generation
    }

    fn open_conn(&mut self, fd: RawFd, kind: ConnKind) {
        if self.conns.len() >= limits::CONNECTIONS_PER_SHARD_MAX {
            close_fd(fd);
            return;
        }
        // The stream now owns the fd and closes it when the connection is dropped, after its
        // last operation completed.
        // SAFETY: the accept completion handed us this fresh fd, owned by nothing else.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .ok()
            .map(|addr| (addr.ip().to_string(), addr.port()));
        let generation = self.take_generation();
        let client_id = self.next_client_id;
        self.next_client_id += self.shared.shard_count as u64;
        let options = &self.shared.options;
        let first_ping_ms = options.ping_interval_ms.min(limits::FIRST_PING_INTERVAL_MS);
        let conn = Conn {
            fd,
            stream,
            generation,
            kind,
            transport: Transport::Plain,
            account: AccountId::GLOBAL,
            client_id,
            state: ConnState::Open,
            recv: RecvState::Idle,
            close_reason: None,
            reader: crate::proto::Reader::new(crate::proto::Parser::new(
                options.max_payload,
                options.max_control_line,
            )),
            held: Default::default(),
            out: Default::default(),
            dirty: false,
            options: Default::default(),
            connected: false,
            sent_connect_info: false,
            subs: Default::default(),
            ops_in_flight: 0,
            pings_outstanding: 0,
            next_ping_ms: self.now_ms + first_ping_ms + self.jitter_ms(first_ping_ms / 5),
            last_read_ms: self.now_ms,
            write_stalled_since_ms: None,
            paused: None,
            peer: peer
                .clone()
                .map(|(ip, port)| format!("{ip}:{port}"))
                .unwrap_or_default(),
            in_msgs: 0,
            in_bytes: 0,
            out_msgs: 0,
            out_bytes: 0,
        };
        let slot = self.conns.insert(conn) as u32;
        self.stats.total_connections += 1;
        self.stats.connections += 1;
        let open = self.shared.connections.fetch_add(1, Ordering::Relaxed) + 1;

        match kind {
            ConnKind::Client => self.start_client(slot, peer.map(|(ip, _)| ip), open),
        }
    }

    /// Sends `err`'s -ERR (when it has one) after the output already queued, stops reading,
    /// and closes once everything is flushed.
    fn send_error_and_drain(&mut self, slot: u32, err: &ServerError) {
        let conn = &mut self.conns[slot as usize];
        if conn.state != ConnState::Open {
            return;
        }
        conn.out
            .append_with(|out| crate::proto::writer::write_err(out, err));
        self.drain_and_close(
            slot,
            err.close_reason().unwrap_or(CloseReason::ProtocolViolation),
        );
    }

    /// Stops reading `slot`, flushes what is queued for it, then closes it. The write deadline
    /// bounds a peer that never reads.
    fn drain_and_close(&mut self, slot: u32, reason: CloseReason) {
        let conn = &mut self.conns[slot as usize];
        if conn.state != ConnState::Open {
            return;
        }
        conn.state = ConnState::Draining;
        conn.close_reason = Some(reason);
        self.remove_all_subs(slot);
        self.cancel_recv(slot);
        self.mark_dirty(slot);
    }

    /// Closes now: abandons output, unsubscribes everything, shuts the socket down so every
    /// operation in flight completes, and frees the slot once they have.
    fn close(&mut self, slot: u32, reason: CloseReason) {
        let conn = &mut self.conns[slot as usize];
        if conn.state == ConnState::Closing {
            return;
        }
        conn.state = ConnState::Closing;
        conn.close_reason.get_or_insert(reason);
        // Ends every operation in flight on the socket: the receive completes, a send fails.
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        let reason = conn.close_reason.unwrap_or(reason);
        if crate::log::enabled_debug() {
            crate::log_debug!(
                "{} - cid:{} - Client connection closed: {}",
                conn.peer,
                conn.client_id,
                reason.as_str()
            );
        }
        self.remove_all_subs(slot);
        self.cancel_recv(slot);
        self.release_if_done(slot);
    }

    /// Frees the slot of a closing connection with nothing in flight; closes its fd last.
    fn release_if_done(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        if conn.state != ConnState::Closing || conn.ops_in_flight > 0 {
            return;
        }
        debug_assert_eq!(conn.recv, RecvState::Idle);
        debug_assert!(!conn.out.send_in_flight());
        debug_assert!(conn.subs.is_empty());
        // Dropping the connection closes its socket, last.
        drop(self.conns.remove(slot as usize));
        self.stats.connections -= 1;
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Stops accepting and closes every connection; the loop ends when the last slot is free.
    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for index in 0..self.listeners.len() as u32 {
            if !self.listeners[index as usize].accept_armed {
                continue;
            }
            let target = Token::new(OpKind::Accept, index, 0).encode();
            let entry = opcode::AsyncCancel::new(target)
                .build()
                .user_data(Token::new(OpKind::CancelAccept, index, 0).encode());
            // SAFETY: a cancel names no memory.
            unsafe { self.push(&entry) };
        }
        let slots: Vec<u32> = self.conns.iter().map(|(slot, _)| slot as u32).collect();
        for slot in slots {
            self.close(slot, CloseReason::ServerShutdown);
        }
    }

    // ----- timers ------------------------------------------------------------------------

    /// Keepalive PINGs, stale connections, write deadlines. Runs every `TIMER_TICK_MS`.
    fn tick(&mut self) {
        let now_ms = self.now_ms;
        let ping_interval_ms = self.shared.options.ping_interval_ms;
        let ping_max = self.shared.options.ping_max;
        let write_deadline_ms = self.shared.options.write_deadline_ms;
        let mut stale = Vec::new();
        let mut stalled = Vec::new();
        let mut ping = Vec::new();
        for (slot, conn) in self.conns.iter_mut() {
            if conn.state == ConnState::Closing {
                continue;
            }
            conn.held.release_if_idle();
            if let Some(since) = conn.write_stalled_since_ms {
                if now_ms.saturating_sub(since) > write_deadline_ms {
                    stalled.push(slot as u32);
                    continue;
                }
            }
            if conn.state != ConnState::Open || now_ms < conn.next_ping_ms {
                continue;
            }
            conn.next_ping_ms = now_ms + ping_interval_ms;
            if conn.pings_outstanding + 1 > ping_max {
                stale.push(slot as u32);
            } else {
                conn.pings_outstanding += 1;
                conn.out.append(crate::proto::writer::PING);
                ping.push(slot as u32);
            }
        }
        for slot in ping {
            self.mark_dirty(slot);
        }
        for slot in stale {
            self.stats.stale_connections += 1;
            let conn = &self.conns[slot as usize];
            crate::log_debug!(
                "{} - cid:{} - Stale Client Connection - Closing",
                conn.peer,
                conn.client_id
            );
            self.send_error_and_drain(slot, &ServerError::StaleConnection);
        }
        for slot in stalled {
            self.stats.slow_consumers += 1;
            let conn = &self.conns[slot as usize];
            crate::log_notice!(
                "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {}ms Exceeded",
                conn.peer,
                conn.client_id,
                write_deadline_ms
            );
            self.close(slot, CloseReason::SlowConsumerWriteDeadline);
        }
    }

    /// Resumes publishers whose pause ran out or whose slow subscriber drained. Returns whether
    /// any was resumed.
    fn resume_paused(&mut self) -> bool {
        if self.pauses.is_empty() && !self.peers.any_held() {
            return false;
        }
        let (conns, peers, now_ms) = (&self.conns, &mut self.peers, self.now_ms);
        let low_water_bytes = self.pauses.low_water_bytes();
        let resumed_slots = self.pauses.take_resumable(|slot| {
            let conn = conns.get(slot as usize)?;
            Some(
                !conn.is_open()
                    || match conn.paused {
                        None => true,
                        Some(PauseCause::Subscriber(wait)) => {
                            let subscriber = subscriber_now(conns, wait.slot);
                            subscriber_wait_over(wait, subscriber, now_ms, low_water_bytes)
                        }
                        Some(PauseCause::Peer(shard)) => peers.drained(shard),
                    },
            )
        });
        let resumed = !resumed_slots.is_empty();
        for &slot in &resumed_slots {
            self.conns[slot as usize].paused = None;
        }
        for &slot in &resumed_slots {
            // What was held is handled first; it may pause the connection again.
            self.handle_held(slot);
            let conn = &mut self.conns[slot as usize];
            if conn.is_open() && conn.paused.is_none() && conn.recv == RecvState::Idle {
                self.arm_recv(slot);
            }
        }
        if (!self.pauses.is_empty() || self.peers.any_held()) && !self.resume_armed {
            let entry = opcode::Timeout::new(&*self.resume_spec)
                .build()
                .user_data(Token::new(OpKind::Resume, 0, 0).encode());
            // SAFETY: `resume_spec` is boxed, owned by the shard and never replaced.
            unsafe { self.push(&entry) };
            self.resume_armed = true;
        }
        resumed
    }

    /// True when a wait on a subscriber is over (see `backpressure::subscriber_wait_over`).
    fn subscriber_wait_over(&self, wait: SubscriberWait) -> bool {
        let subscriber = subscriber_now(&self.conns, wait.slot);
        subscriber_wait_over(wait, subscriber, self.now_ms, self.pauses.low_water_bytes())
    }

    /// Parses the bytes held for `slot` while it was paused, if it is open and not paused.
    fn handle_held(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        if conn.held.is_empty() || conn.paused.is_some() || !conn.is_open() {
            return;
        }
        let mut held = std::mem::take(&mut conn.held);
        let left = self.on_input(slot, held.waiting());
        held.consumed_to_last(left);
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            debug_assert!(
                conn.held.is_empty(),
                "nothing is held while held bytes are handled"
            );
            // Keep what is still waiting (paused again) without moving it, and the
            // allocation for the next pause (the tick frees it once idle).
            conn.held = held;
        }
    }

    /// Stops reading `slot` until `cause` clears (see `PauseCause` for when each ends).
    fn pause(&mut self, slot: u32, cause: PauseCause) {
        let conn = &mut self.conns[slot as usize];
        if conn.paused.is_some() || !conn.is_open() {
            return;
        }
        conn.paused = Some(cause);
        self.stats.publisher_pauses += 1;
        self.pauses.add(slot);
        self.cancel_recv(slot);
    }

    fn publish_stats(&mut self) {
        if let Ok(mut published) = self.shared.stats[self.index.index()].lock() {
            *published = self.stats;
        }
    }

    fn jitter_ms(&mut self, span_ms: u64) -> u64 {
        if span_ms == 0 {
            0
        } else {
            self.random() % span_ms
        }
    }

    /// xorshift64*: the shard's cheap source of randomness (queue member choice, jitter).
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Takes ownership of an fd a completion handed us.
fn close_fd(fd: RawFd) {
    // Dropping the OwnedFd closes it.
    // SAFETY: the accept completion gave us this fd and nothing else refers to it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// The connection in `slot` as a back-pressure wait sees it.
fn subscriber_now(conns: &Slab<Conn>, slot: u32) -> Option<SubscriberNow> {
    conns.get(slot as usize).map(|conn| SubscriberNow {
        generation: conn.generation,
        open: conn.is_open(),
        pending_bytes: conn.out.pending_bytes(),
    })
}
