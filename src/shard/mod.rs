//! One shard: a single-threaded event loop on its own io_uring, owning its listener, its
//! connections, its provided-buffer ring, its subscriptions and its match cache.
//!
//! The loop (DESIGN §2): submit everything queued and wait for at least one completion; copy
//! completions out in batches and dispatch each; then queue one send per dirty connection. Sends
//! are never issued while parsing, so one read carrying a thousand messages costs one send per
//! subscriber.
//!
//! The parts (each owns its state; handlers take the parts they need):
//! - `uring::Io`: the ring, the provided-buffer ring, completions not handled yet, the memory
//!   armed operations name; every SQE is built there.
//! - `table::ConnTable`: connections and subscriptions in slabs with their generations, the
//!   dirty list, and the receives the round wants armed or cancelled.
//! - `peers::Peers`: the links to and from the other shards, holds, pending wake-ups (the
//!   cross-shard delivery over them is `peer_routing`).
//! - `backpressure::Pauses`: paused publishers and the marks.
//!
//! `core::Core` holds all but `Io`: the protocol handlers (`client.rs`), delivery
//! (`deliver.rs`), the peer side (`peer_routing.rs`) and the connection lifecycle run on it and ask for
//! kernel work through the table and the peers, which the loop submits at the end of the round
//! (`Shard::submit_wanted`, `Shard::wake_peers`): the kernel sees a round's SQEs only when the
//! loop enters the ring (or earlier, should the submission queue fill up), so this costs
//! nothing and changes nothing, and `Core` is unit-tested
//! with no ring (pause/resume, peer-queue hold, queue-group requeue). `Shard` is `Io`, `Core`
//! and the listeners; its methods are the loop, the completions and the submissions.
//!
//! What all shards share is `shared::Shared`; what a shard reads of the configuration is
//! `settings::Settings`, swapped whole by a reload. The modules form no import circle: the
//! session and routing files (`client`, `deliver`, `peer_routing`) hold `impl Core` blocks
//! and depend on `core`, which depends only on the parts.
//!
//! Slot rule: a connection slot is freed only when the connection is closing and none of its
//! operations is in flight (`Conn::ops_in_flight`); its fd is closed last. Completions carry the
//! slot's generation; one that does not match is counted and dropped.
//!
//! The way in from other threads is the control mailbox (`control`): stop, and questions
//! answered from the shard's own state at a safe point of the loop (`monitoring`: what
//! `/connz`, `/subsz` and `/varz` ask, in bounded chunks; `query` has the helpers other
//! threads call), and a configuration reload (`Control::Reload`: new `Settings`,
//! swapped in whole; `ServerHandle::reload` sends it to every shard and waits for all).
//!
//! Adding a connection kind (a cluster route, say). A kind is a `ConnKind` variant and a
//! session module beside `client.rs`: the session's reader handler (a `proto::Handler` over its
//! own operations; routes speak `RS+`/`RS-`/`RMSG`, which get their own parser), what it sends
//! when the connection opens (`start_client`'s counterpart), and how a delivery is written for it
//! (`RMSG` with the account, not `MSG` with a sid). Its port is one more entry in the shard's
//! listener table (`ShardSetup::listeners`, bound by `server.rs` with `SO_REUSEPORT` like the
//! client port); the accept token's slot names the listener, so `on_accept` opens the
//! connection with that listener's kind. The compiler then lists every place left to decide:
//! each `match conn.kind` (`Core::on_input`, `Core::open_conn`) must get an arm. Routing stays where it is
//! (`deliver.rs`): a route is one more kind of target for a matched message, and `Origin` gets
//! a variant so a message from a route is not sent back into the cluster.
//!
//! The first kind after the client is the system connection (`ConnKind::System`, `system`):
//! the system service's client of the system account on shard 0, over a Unix socket pair
//! (`Control::AttachSystem`); it speaks the client protocol through `client.rs` and differs
//! only in how it starts (`Core::attach_system`) and in what counts it is left out of.
//!
//! Adding a transport (TLS). A `Transport` variant holding the session state (rustls's
//! `ServerConnection`). The receive seam is `Core::on_input`: ciphertext from the provided
//! buffer goes in, the plaintext that comes out is fed to the session's reader, and handshake
//! bytes to send go into the outbound. The send seam is in `Shard::flush_dirty`: the plaintext that
//! `Outbound::next_send` freezes is encrypted into the transport's own buffer, and that buffer is
//! what the send SQE names (it must then stay put until the completion, as the `# Safety` of
//! `Io::send` says). Parser, templates and delivery never see ciphertext.
//!
//! Must not touch: token matching (that is `sublist`), wire formats (that is `proto`).

mod auth;
mod backpressure;
mod buf_ring;
mod client;
mod conn;
pub mod control;
mod core;
mod deliver;
mod lame_duck;
mod links;
mod monitoring;
mod peer_routing;
mod peers;
mod query;
mod ring;
mod route;
mod route_forward;
mod route_tls;
mod settings;
mod shared;
mod spin;
mod system;
mod table;
mod templates;
mod tls;
mod tls_records;
mod uring;

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::cqueue;

use crate::limits;
use crate::proto::CloseReason;

use crate::xshard::link::{Incoming, Outgoing};
use crate::xshard::ShardId;
pub use conn::ConnKind;
use conn::{close_fd, ConnState, RecvState, Transport};
use core::Core;
pub use ring::check_io_uring;
use ring::{OpKind, Token};
pub use route_tls::RouteTls;
pub use settings::Settings;
pub use shared::Shared;
use spin::SpinPolicy;
pub use tls::ClientTls;
/// For `crate::fuzzing` (fuzz/) only; the shard itself reaches them as `tls::...`.
pub use tls::{Event as TlsEvent, Received as TlsReceived, TlsSession};
use uring::{Completion, Io};

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

/// One listening socket of the shard's.
struct Listener {
    /// `None` once closed: the shard stopped accepting and no accept names it any more.
    socket: Option<TcpListener>,
    /// What its connections speak.
    kind: ConnKind,
    /// A multishot accept is armed on it.
    accept_armed: bool,
}

/// Which listeners of a shard take new connections, from the most to the least: the shard only
/// ever moves down this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Accepting {
    /// Stopping: no listener.
    Nothing,
    /// Lame duck mode: the cluster port only (nats-server closes its client listener then and
    /// keeps its route listener until it shuts down).
    RoutesOnly,
    /// Running: every listener.
    Everything,
}

impl Accepting {
    /// Whether a listener of connections of `kind` takes new ones.
    fn takes(self, kind: ConnKind) -> bool {
        match self {
            Accepting::Nothing => false,
            Accepting::RoutesOnly => kind == ConnKind::Route,
            Accepting::Everything => true,
        }
    }
}

use buf_ring::CQE_F_BUFFER;

/// A shard: its ring (`Io`) and everything else (`Core`), with the sockets it listens on.
/// The loop and the completions are here; what they mean for connections is `Core`'s.
pub struct Shard {
    // Field order matters for drop: `io` (the ring) goes first, so no operation can still
    // name the buffer ring, the timespecs, the wake buffer or a connection's output when
    // they are freed.
    io: Io,
    core: Core,
    /// Indexed by the slot of their accept tokens.
    listeners: Vec<Listener>,
    wake_fd: Arc<OwnedFd>,
    started: Instant,
    stopping: bool,
    /// Which listeners take new connections: the others' accepts are cancelled and never
    /// re-armed.
    accepting: Accepting,
    /// Whether to watch the ring before sleeping (`busy_poll`).
    spin: SpinPolicy,
}

/// The calling thread's CPU time, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

impl Shard {
    /// Builds the shard's ring and buffer ring. Runs on the shard's own thread (the ring is
    /// single-issuer).
    pub fn new(setup: ShardSetup) -> io::Result<Shard> {
        let io = Io::new()?;
        setup.shared.ring_fds[setup.index.index()].store(io.ring.as_raw_fd(), Ordering::Release);
        let seed = (std::process::id() as u64) << 32
            ^ setup.index.0 as u64
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
            ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Shard {
            io,
            core: Core::new(setup.index, setup.shared, setup.links, seed),
            listeners: setup
                .listeners
                .into_iter()
                .map(|(kind, socket)| Listener {
                    socket: Some(socket),
                    kind,
                    accept_armed: false,
                })
                .collect(),
            wake_fd: setup.wake_fd,
            started: Instant::now(),
            stopping: false,
            accepting: Accepting::Everything,
            spin: SpinPolicy::new(seed.rotate_left(17)),
        })
    }

    /// The event loop. Returns when the server stops, every connection is gone and every
    /// accept has ended, with the listeners closed: the port is free when it returns. (An
    /// accept still armed when the ring is dropped keeps its listener until the kernel has
    /// torn the ring down, asynchronously, milliseconds later: a server started then found
    /// the port in use.)
    pub fn run(mut self) -> io::Result<()> {
        self.arm_accepts();
        self.io.arm_timer();
        self.arm_wake();
        let mut batch: Vec<Completion> = Vec::with_capacity(limits::COMPLETION_BATCH_MAX);
        let mut ready_left = false;
        let mut worked = false;
        // The shard sent something (to a client or a peer) since its last idle period: someone
        // may answer it soon, and it may watch for that (`spin::SpinPolicy`). Input alone (a
        // publisher streaming, nothing to deliver) is not watched for; nor is a stream that is
        // delivered (see `streaming` below).
        let mut answered = false;
        // The last round sent something (to a client or a peer).
        let mut sent = false;
        // Bytes the last round received from connections sent nothing lately (0 when any input
        // came from one that was: see `receive_round`).
        let mut streamed = 0usize;
        // The shard's last sleep (rounds that found work ready do not sleep) ended within
        // `limits::STREAMING_GAP_MICROS`.
        let mut brief = false;
        while !(self.stopping && self.core.conns.is_empty() && !self.any_accept_armed()) {
            // Wait only when nothing that can be handled now is left over.
            let mut want = usize::from(!ready_left && self.io.early.is_empty());
            // An idle period: this round's work is submitted and nothing is ready.
            let mut idle: Option<(Instant, bool)> = None;
            let window = Duration::from_micros(self.core.settings.options.busy_poll_micros);
            // A publisher streaming, whether or not to subscribers: sleep for a batch (see
            // `limits::STREAMING_ROUND_BYTES`), not for each arriving segment, and do not
            // watch: its next bytes come when it writes them, however soon the shard looks.
            // Much input, or, when the round sent nothing, any right after a brief sleep (small
            // writes in a steady stream; see `limits::STREAMING_GAP_MICROS`). Never when the
            // round routed a request: its reply is due.
            let requests = std::mem::take(&mut self.core.request_routed);
            let streaming = want == 1
                && !requests
                && (streamed >= limits::STREAMING_ROUND_BYTES || (brief && streamed > 0 && !sent));
            if want == 1 && worked && answered && !streaming && !window.is_zero() {
                // Hand this round's sends to the kernel, then see what is ready.
                self.io.enter(0)?;
                if self.ready() {
                    want = 0;
                } else {
                    answered = false;
                    let since = Instant::now();
                    let watched = self.spin.watch();
                    if watched {
                        self.core.stats.idle_watched += 1;
                        if self.busy_poll(since + window) {
                            want = 0;
                        }
                    }
                    idle = Some((since, watched));
                }
            }
            if want == 1 {
                let slept = Instant::now();
                if streaming {
                    self.io.enter_streaming()?;
                } else {
                    self.io.enter(1)?;
                }
                brief = slept.elapsed() <= Duration::from_micros(limits::STREAMING_GAP_MICROS);
            } else {
                self.io.enter(0)?;
            }
            if let Some((since, watched)) = idle {
                let waited = since.elapsed();
                if waited <= window && watched {
                    self.core.stats.idle_watch_hits += 1;
                }
                self.spin.ended(waited, window, watched);
            }
            self.core.now_ms = self.started.elapsed().as_millis() as u64;
            self.core.stats.loop_rounds += 1;
            self.io.reap(&mut batch);
            worked = !batch.is_empty() || !self.io.recv_backlog.is_empty();
            for completion in &batch {
                self.dispatch(*completion);
            }
            let (took_frames, peers_left) = if self.core.peers.is_empty() {
                (false, false)
            } else {
                self.core.drain_peers()
            };
            // Frames taken from a peer are work too: a busy-poll may follow.
            worked |= took_frames;
            let left;
            (left, streamed) = self.receive_round();
            ready_left = left | peers_left;
            debug_assert_eq!(
                self.io.buf_ring.leased(),
                0,
                "a receive buffer was not given back"
            );
            // Completions held for a connection resumed now can be handled in the next round.
            ready_left |= self.resume_paused() && !self.io.recv_backlog.is_empty();
            sent = self.flush_dirty();
            // What the round asked of the kernel for receives (arm, cancel), then the peers.
            self.submit_wanted();
            if !self.core.peers.is_empty() {
                sent |= self.wake_peers();
            }
            answered |= sent;
        }
        // What the last round queued (peers' wake-ups while stopping) goes out too.
        self.io.enter(0)?;
        self.publish_stats();
        // Each listener was closed when its accept ended (`on_accept`), or at once if none was
        // armed (`stop_accepting`): the port is free now.
        debug_assert!(self
            .listeners
            .iter()
            .all(|listener| listener.socket.is_none()));
        Ok(())
    }

    /// Whether a multishot accept is armed on any listener (`begin_stop` cancels them; each
    /// ends with a completion without IORING_CQE_F_MORE).
    fn any_accept_armed(&self) -> bool {
        self.listeners.iter().any(|listener| listener.accept_armed)
    }

    /// Whether there is something to reap: a posted completion, deferred task work the kernel
    /// flags, or frames a peer published mid-round (`limits::PEER_PUBLISH_BYTES`).
    fn ready(&mut self) -> bool {
        self.io.ring.submission().taskrun()
            || !self.io.ring.completion().is_empty()
            || self.core.peers.frames_waiting()
    }

    /// Watches for something to reap (`ready`) until `deadline`, instead of sleeping: waking a
    /// sleeping thread costs tens of microseconds on this kind of machine, twice per
    /// request/reply through the server. `SpinPolicy` decides when this pays. Returns true
    /// when there is something to reap.
    fn busy_poll(&mut self, deadline: Instant) -> bool {
        // While bcrypt checks wait or run, the verifier is runnable, maybe on this core: a
        // yield would hand it the core for a whole slice (a steady client's p99 went from
        // 0.1 ms to 3 ms, `scripts/auth_stall.py`). So the watch spins without yielding; the
        // checks get the core when the shard sleeps, and its wake-up takes it back at once
        // (`auth::verifier`). The window bounds the spin.
        let verifying = self.core.shared.verifier.busy();
        if verifying {
            self.core.stats.idle_watched_verifying += 1;
        }
        loop {
            if self.ready() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if verifying {
                std::hint::spin_loop();
            } else {
                // Not a bare spin: when another thread could run on this CPU (a client on
                // the same core, another shard), it runs; otherwise this returns at once.
                std::thread::yield_now();
            }
        }
    }

    /// Handles received data in arrival order until `RECV_BYTES_PER_ROUND_MAX` bytes are in;
    /// the rest waits for the next round, after what this round produced is flushed. Buffers
    /// named by waiting completions stay out of the ring meanwhile: when it runs dry, the
    /// kernel stops reading (ENOBUFS ends the multishot receive), and TCP pushes back on the
    /// publisher. Completions of a paused connection are held, in order, until it resumes:
    /// with their buffers while paused connections keep at most `BufRing::paused_pieces_max` of
    /// them, their data copied out beyond that (see `hold_data`).
    /// Returns true when completions that could be handled now are left over, and the bytes
    /// received from connections sent nothing lately (0 when any came from one that was:
    /// maybe an answer, see `limits::ANSWER_MS`).
    fn receive_round(&mut self) -> (bool, usize) {
        let mut received = 0usize;
        let mut unanswered = 0usize;
        let mut answers = false;
        let answer_since = self.core.now_ms.saturating_sub(limits::ANSWER_MS);
        let mut held = std::mem::take(&mut self.io.recv_held);
        debug_assert!(held.is_empty());
        // Buffer pieces kept by the held completions (all of them are looked at again each
        // round).
        let mut kept = 0usize;
        while received < limits::RECV_BYTES_PER_ROUND_MAX {
            let Some(completion) = self.io.recv_backlog.pop_front() else {
                break;
            };
            let (paused, answer) = Token::decode(completion.user_data)
                .and_then(|token| self.core.conns.by_token(token))
                .map_or((false, false), |conn| {
                    (
                        conn.paused.is_some() && conn.is_open(),
                        conn.last_send_ms >= answer_since,
                    )
                });
            if paused {
                if cqueue::buffer_select(completion.flags).is_some() {
                    if kept < self.io.buf_ring.paused_pieces_max() {
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
            let bytes = completion.result.max(0) as usize;
            received += bytes;
            if answer {
                answers = true;
            } else {
                unanswered += bytes;
            }
            self.dispatch(completion);
        }
        let ready_left = !self.io.recv_backlog.is_empty();
        if !held.is_empty() {
            // Held completions are older than the rest: they go back in front, in order.
            held.append(&mut self.io.recv_backlog);
            std::mem::swap(&mut held, &mut self.io.recv_backlog);
        }
        self.io.recv_held = held;
        (ready_left, if answers { 0 } else { unanswered })
    }

    /// Copies out, in order, the data of the held completions of the receive `user_data` names
    /// that still keep their buffer pieces. Returns how many pieces were given back.
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
    /// connection's `held` bytes and gives the piece back, so that paused publishers keep at
    /// most `BufRing::paused_pieces_max` pieces of provided buffers. Returns the completion
    /// without its buffer, to be handled (in order) once the connection resumes; its data then
    /// comes from `held`.
    fn hold_data(&mut self, mut completion: Completion) -> Completion {
        let Some(mut lease) = self.io.buf_ring.lease(&completion) else {
            return completion;
        };
        let token = Token::decode(completion.user_data).expect("a receive token");
        if let Some(conn) = self.core.conns.by_token(token) {
            if conn.transport.is_plain() {
                conn.held.push(lease.bytes());
            } else if completion.result > 0 {
                // Held bytes are the session's: a transport's go through it now (paused, the
                // plaintext that comes out is held).
                self.core.on_input(token.slot, lease.bytes_mut());
            }
        }
        self.io.buf_ring.give_back(lease);
        completion.flags &= !CQE_F_BUFFER;
        completion
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
                self.io.resume_armed = false;
            }
            OpKind::CancelAccept => {}
            // Peers' frames are drained every round; the wake-up only ended our wait.
            OpKind::Mailbox => {}
            OpKind::WakePeer => {
                // Only failures complete (SKIP_SUCCESS). None needs action: EOVERFLOW means the
                // peer's completion queue is full, so it is busy and drains its queues anyway;
                // EBADFD/EBADF means its ring is gone, which happens only while stopping (a
                // failed shard stops the whole server). Counted, logged at debug level.
                self.core.stats.peer_wakeups_failed += 1;
                crate::log_debug!(
                    "Shard {} could not wake shard {}: {}",
                    self.core.index,
                    token.slot,
                    io::Error::from_raw_os_error(-completion.result)
                );
            }
        }
    }

    /// Arms a multishot accept on every listener that has none and takes connections.
    fn arm_accepts(&mut self) {
        for index in 0..self.listeners.len() {
            let listener = &self.listeners[index];
            if !listener.accept_armed && self.accepting.takes(listener.kind) {
                self.arm_accept(index as u32);
            }
        }
    }

    fn arm_accept(&mut self, listener: u32) {
        let Some(socket) = &self.listeners[listener as usize].socket else {
            return;
        };
        self.io.arm_accept(socket.as_raw_fd(), listener);
        self.listeners[listener as usize].accept_armed = true;
    }

    fn arm_wake(&mut self) {
        self.io.arm_wake(self.wake_fd.as_raw_fd());
    }

    fn arm_recv(&mut self, slot: u32) {
        let conn = &mut self.core.conns[slot];
        debug_assert_eq!(conn.recv, RecvState::Idle);
        conn.recv = RecvState::Armed;
        conn.ops_in_flight += 1;
        let token = Token::new(OpKind::Recv, slot, conn.generation);
        self.io.arm_recv(conn.fd, token);
        self.core.stats.recv_arms += 1;
    }

    /// Publishes what this round queued for each peer and wakes those peers that need it,
    /// one `MSG_RING` each. Returns true when it woke one.
    pub(super) fn wake_peers(&mut self) -> bool {
        let Shard { io, core, .. } = self;
        let (shared, from, stats) = (&core.shared, core.index, &mut core.stats);
        let mut woke = false;
        core.peers.end_round(|target| {
            woke = true;
            let ring_fd = shared.ring_fds[target.index()].load(Ordering::Acquire);
            io.post(
                ring_fd,
                Token::new(OpKind::Mailbox, from.0 as u32, 0),
                Token::new(OpKind::WakePeer, target.0 as u32, 0),
            );
            stats.peer_wakeups += 1;
        });
        woke
    }

    /// Submits what the round asked of the connection table: the cancels of receives (pauses,
    /// closes), then the receives to arm (see `ConnTable::to_arm`) of the connections that
    /// still want one.
    fn submit_wanted(&mut self) {
        let conns = &mut self.core.conns;
        while let Some(slot) = conns.to_cancel.pop() {
            // Counted in `ops_in_flight` when it was asked for, so the slot is still this
            // connection's.
            let generation = conns[slot].generation;
            self.io.cancel(
                Token::new(OpKind::Recv, slot, generation),
                Token::new(OpKind::CancelRecv, slot, generation),
            );
        }
        while let Some(slot) = self.core.conns.next_to_arm() {
            self.arm_recv(slot);
        }
    }

    /// Queues one send per dirty connection with output and no send in flight. Returns true
    /// when it queued one.
    fn flush_dirty(&mut self) -> bool {
        let mut queued = false;
        let mut dirty = std::mem::take(&mut self.core.conns.dirty);
        for &slot in &dirty {
            let Some(conn) = self.core.conns.get_mut(slot) else {
                continue;
            };
            conn.dirty = false;
            if conn.state == ConnState::Closing || conn.out.send_in_flight() {
                continue;
            }
            // The send seam: what the transport makes of the outbound bytes.
            let closing = conn.state == ConnState::Draining;
            let next = match &mut conn.transport {
                Transport::Plain => conn.out.next_send(),
                Transport::Tls(session) => conn
                    .out
                    .next_send_sealed(|pending, sending| session.seal(pending, sending, closing)),
            };
            let Some((ptr, len)) = next else {
                if conn.state == ConnState::Draining {
                    let reason = conn.close_reason.unwrap_or(CloseReason::ClientClosed);
                    self.core.close(slot, reason);
                }
                continue;
            };
            conn.ops_in_flight += 1;
            conn.last_send_ms = self.core.now_ms;
            if conn.write_stalled_since_ms.is_none() {
                conn.write_stalled_since_ms = Some(self.core.now_ms);
            }
            let token = Token::new(OpKind::Send, slot, conn.generation);
            // `send_in_flight()` holds until this send's completion is handled, and the slot is
            // not reused while `ops_in_flight` counts it.
            // SAFETY: `Outbound` neither moves nor frees the bytes `next_send` froze meanwhile.
            unsafe { self.io.send(conn.fd, ptr, len, token) };
            queued = true;
        }
        dirty.clear();
        if self.core.conns.dirty.is_empty() {
            self.core.conns.dirty = dirty;
        }
        queued
    }

    /// A connection accepted on listener `listener` (the accept token's slot).
    fn on_accept(&mut self, listener: u32, completion: Completion) {
        let short_of_resources =
            [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&-completion.result);
        let kind = self.listeners[listener as usize].kind;
        let taken = self.accepting.takes(kind);
        if !cqueue::more(completion.flags) {
            self.listeners[listener as usize].accept_armed = false;
            if taken {
                // Out of fds or memory: retrying at once would fail at once; the next tick
                // re-arms.
                if !short_of_resources {
                    self.arm_accept(listener);
                }
            } else {
                // Cancelled: nothing names the socket any more, so closing it refuses new
                // connections at once (they would otherwise wait in its backlog).
                self.listeners[listener as usize].socket = None;
            }
        }
        match completion.result {
            fd if fd >= 0 => {
                if taken {
                    self.core.open_conn(fd, kind);
                } else {
                    close_fd(fd);
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
        let lease = self.io.buf_ring.lease(&completion);
        let ended = !cqueue::more(completion.flags);
        let slot = token.slot;
        self.core.stats.recv_completions += 1;
        if self.core.conns.by_token(token).is_none() {
            if let Some(lease) = lease {
                self.io.buf_ring.give_back(lease);
            }
            self.core.stats.stale_completions += 1;
            return;
        }
        if completion.result > 0 {
            self.core.conns[slot].last_read_ms = self.core.now_ms;
        }
        // Bytes held while the connection was paused are older than this completion's.
        self.core.handle_held(slot);
        if let Some(mut lease) = lease {
            let conn = &mut self.core.conns[slot];
            if completion.result > 0 && conn.is_open() {
                let bytes = lease.bytes_mut();
                // A paused connection's bytes wait (a transport other than plain decrypts
                // first, and holds the plaintext itself).
                let left = if conn.paused.is_some() && conn.transport.is_plain() {
                    bytes.len()
                } else {
                    self.core.on_input(slot, bytes)
                };
                if left > 0 {
                    self.core.conns[slot]
                        .held
                        .push(&bytes[bytes.len() - left..]);
                }
            }
            self.io.buf_ring.give_back(lease);
        }
        match completion.result {
            // The client finished sending: what it asked for is still flushed (nats-server
            // flushes on a client close), then the connection closes.
            0 => {
                let reason = self.core.client_gone_reason(slot);
                self.core.drain_and_close(slot, reason)
            }
            n if n > 0 => {}
            err => match -err {
                // The buffer ring ran dry or we cancelled the receive: re-armed below if wanted.
                libc::ENOBUFS => self.core.stats.recv_no_buffers += 1,
                libc::ECANCELED => {}
                libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT | libc::EHOSTUNREACH => {
                    let reason = self.core.client_gone_reason(slot);
                    self.core.close(slot, reason)
                }
                _ => self.core.close(slot, CloseReason::ReadError),
            },
        }
        if ended {
            let conn = &mut self.core.conns[slot];
            conn.recv = RecvState::Idle;
            conn.ops_in_flight -= 1;
            if conn.is_open() && conn.paused.is_none() {
                // Re-armed at the end of the round (`submit_wanted`): after the round gave its
                // buffers back when the ring ran dry (ENOBUFS), and after any cancel asked for
                // this round, which names the same token and would otherwise reach the kernel
                // after the new receive and end it.
                self.core.conns.want_recv(slot);
            }
            self.core.release_if_done(slot);
        }
    }

    fn on_send(&mut self, token: Token, completion: Completion) {
        let slot = token.slot;
        let now_ms = self.core.now_ms;
        let Some(conn) = self.core.conns.by_token(token) else {
            self.core.stats.stale_completions += 1;
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
                    self.core.mark_dirty(slot);
                }
            }
            err => {
                conn.out.send_failed();
                if conn.state != ConnState::Closing {
                    let reason = match -err {
                        libc::EPIPE | libc::ECONNRESET => CloseReason::ClientClosed,
                        _ => CloseReason::WriteError,
                    };
                    self.core.close(slot, reason);
                }
            }
        }
        self.core.release_if_done(slot);
    }

    fn on_cancel_recv(&mut self, token: Token, _completion: Completion) {
        // The result (0, ENOENT when the receive had already ended, EALREADY) needs no action:
        // the receive's own final completion does the bookkeeping.
        let slot = token.slot;
        let Some(conn) = self.core.conns.by_token(token) else {
            self.core.stats.stale_completions += 1;
            return;
        };
        conn.ops_in_flight -= 1;
        self.core.release_if_done(slot);
    }

    fn on_timer(&mut self, completion: Completion) {
        debug_assert!(completion.result == -libc::ETIME || completion.result == 0);
        if self.accepting != Accepting::Nothing {
            self.arm_accepts();
        }
        self.core.tick();
        self.publish_stats();
        crate::alloc::release_freed_memory();
        if !self.stopping {
            self.io.arm_timer();
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
                self.core.index,
                io::Error::from_raw_os_error(-completion.result)
            );
        }
        // The time answering takes is time the shard serves no client: the longest is kept,
        // as the thread's CPU time (what the answers cost; the kernel's preemption is not
        // theirs).
        let answering = thread_cpu_ns();
        for command in self.core.shared.mailboxes[self.core.index.index()].take() {
            let command_started = thread_cpu_ns();
            let name = command.name();
            self.on_control(command);
            let command_ns = thread_cpu_ns().saturating_sub(command_started);
            if command_ns > limits::MAILBOX_ANSWER_LOGGED_NS {
                crate::log_debug!(
                    "Shard {}: answering {name} took {} µs",
                    self.core.index,
                    command_ns / 1_000
                );
            }
        }
        let answered_ns = thread_cpu_ns().saturating_sub(answering);
        let stats = &mut self.core.stats;
        stats.mailbox_answer_max_ns = stats.mailbox_answer_max_ns.max(answered_ns);
        stats.mailbox_answers += 1;
        stats.mailbox_answers_over_1ms += u64::from(answered_ns > 1_000_000);
        // A stop arrives as `Control::Stop` (`Shared::stop_all` sends it to every shard); the
        // doorbell failing for good stops the shard too.
        if !retry {
            self.begin_stop();
        }
        if !self.stopping {
            self.arm_wake();
        }
    }

    /// Carries out one command of the mailbox.
    fn on_control(&mut self, command: control::Control) {
        {
            match command {
                control::Control::Stop => self.begin_stop(),
                control::Control::Stats(reply) => {
                    let _ = reply.send(self.stats_now());
                }
                control::Control::OpenConnections {
                    after,
                    max,
                    subs,
                    reply,
                } => {
                    let _ = reply.send(self.core.open_connections(after, max, subs));
                }
                control::Control::ClosedConnections(reply) => {
                    let _ = reply.send(self.core.closed.records());
                }
                control::Control::Subscriptions { after, max, reply } => {
                    let _ = reply.send(self.core.subscriptions(after, max));
                }
                control::Control::Routes { subs, reply } => {
                    let _ = reply.send(self.core.routes(subs));
                }
                control::Control::TableStats(reply) => {
                    let _ = reply.send(self.core.table_stats());
                }
                control::Control::AccountTraffic { after, max, reply } => {
                    let (traffic, next) = self.core.account_traffic_chunk(after, max);
                    let _ = reply.send((vec![traffic], next));
                }
                control::Control::Reload(settings, done) => {
                    self.core.reload(settings);
                    let _ = done.send(());
                }
                control::Control::LameDuck(urls, reply) => {
                    self.stop_accepting(Accepting::RoutesOnly);
                    let _ = reply.send(self.core.begin_lame_duck(urls));
                }
                control::Control::CloseClients(count, cause, reply) => {
                    let _ = reply.send(self.core.close_clients(count, cause));
                }
                control::Control::AttachSystem(stream) => {
                    // While stopping, dropped: the service sees its end close.
                    if !self.stopping {
                        self.core.attach_system(stream);
                    }
                }
                control::Control::AttachRoute(stream, target) => {
                    if self.stopping {
                        target.ended();
                    } else {
                        self.core.attach_route(stream, target);
                    }
                }
                control::Control::RouteOutbox => self.core.drain_route_outboxes(),
                control::Control::ClientUrls(urls) => self.core.client_urls_changed(urls),
                control::Control::RoutesRemoved(urls) => self.core.close_removed_routes(&urls),
                control::Control::Verified {
                    slot,
                    generation,
                    check,
                    identity,
                    verification,
                } => self
                    .core
                    .on_verified(slot, generation, check, identity, verification),
            }
        }
    }

    /// The shard's counters now, the ring's among them (`Control::Stats`).
    fn stats_now(&mut self) -> crate::stats::ShardStats {
        self.core.stats.sqes_submitted = self.io.sqes_submitted;
        self.core.stats_now()
    }

    /// Publishes the counters for `Shared::stats` (on the tick, and when the loop ends).
    fn publish_stats(&mut self) {
        self.core.stats.sqes_submitted = self.io.sqes_submitted;
        self.core.publish_stats();
    }

    /// Takes no more connections: every armed accept is cancelled, and none is armed again.
    /// Narrows what the shard accepts to `accepting` (never widens it): the accepts of the
    /// listeners left out are cancelled, and each listener is closed once none names it.
    fn stop_accepting(&mut self, accepting: Accepting) {
        if accepting >= self.accepting {
            return;
        }
        self.accepting = accepting;
        for index in 0..self.listeners.len() as u32 {
            if accepting.takes(self.listeners[index as usize].kind) {
                continue;
            }
            if !self.listeners[index as usize].accept_armed {
                // No accept names it: closed now.
                self.listeners[index as usize].socket = None;
                continue;
            }
            self.io.cancel(
                Token::new(OpKind::Accept, index, 0),
                Token::new(OpKind::CancelAccept, index, 0),
            );
        }
    }

    /// Stops accepting and closes every connection; the loop ends when the last slot is free.
    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_accepting(Accepting::Nothing);
        let slots: Vec<u32> = self
            .core
            .conns
            .slots
            .iter()
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in slots {
            self.core.close(slot, CloseReason::ServerShutdown);
        }
    }

    /// Resumes publishers whose pause ran out or whose slow subscriber drained (their
    /// receives are armed by `submit_wanted`), and keeps the resume timer armed while any
    /// publisher or peer queue still waits. Returns whether any was resumed.
    fn resume_paused(&mut self) -> bool {
        let resumed = self.core.resume_paused();
        if !self.core.pauses.is_empty() || self.core.peers.any_held() {
            self.io.arm_resume();
        }
        resumed
    }
}
