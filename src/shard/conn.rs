//! One client connection's state on its shard: lifecycle, parser and carry buffer, outbound
//! buffers, negotiated CONNECT options, subscriptions by sid, keepalive bookkeeping.
//!
//! Outbound invariant: `sending` is frozen while a send is in flight (the kernel reads from it);
//! new output goes to `pending`. On a send completion the sent prefix is consumed and, once
//! `sending` is drained, the two buffers swap.

use std::os::fd::RawFd;

use rustc_hash::FxHashMap;

use crate::limits;
use crate::proto::json::ConnectOptions;
use crate::proto::{CloseReason, Parser};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Reading and writing. True exactly when the connection has not been asked to close.
    Open,
    /// Closing after its outbound is flushed (an -ERR the client should see): not read any more.
    Draining,
    /// Closing now: output is abandoned; the slot waits only for its operations in flight.
    Closing,
}

/// Whether the connection's multishot receive is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// No receive in flight. True exactly when a new one must be armed to read more.
    Idle,
    /// A multishot receive is in flight.
    Armed,
    /// A cancel of the armed receive is in flight (paused or closing); the receive's last
    /// completion has not arrived yet.
    Cancelling,
}

/// Why a publisher's reading is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// A subscriber on this shard (slot, generation) is over its high-water mark. The pause
    /// ends when it drains, goes away, or `PUBLISHER_PAUSE_MS_MAX` passes.
    Subscriber { slot: u32, generation: u32 },
    /// The queue to a peer shard (index in `Shard::peers`) is congested. The pause ends when it
    /// drains (a peer always drains).
    Peer(u16),
}

/// Two buffers: one the kernel may be sending from (frozen), one new output goes into.
#[derive(Debug, Default)]
pub struct Outbound {
    /// Output not yet handed to a send.
    pub pending: Vec<u8>,
    /// Bytes handed to the send in flight; frozen while `send_in_flight`.
    pub sending: Vec<u8>,
    /// How much of `sending` the kernel has already taken.
    pub sending_offset: usize,
    /// True exactly when a send SQE naming `sending[sending_offset..]` has no completion yet.
    pub send_in_flight: bool,
}

impl Outbound {
    /// Bytes queued for this client and not yet written to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() + self.sending.len() - self.sending_offset
    }

    /// Prepares the next send: swaps in the pending bytes when `sending` is drained. Returns the
    /// bytes to send, or None when nothing is queued. The caller marks the send in flight.
    pub fn next_send(&mut self) -> Option<(*const u8, usize)> {
        debug_assert!(!self.send_in_flight);
        if self.sending_offset == self.sending.len() {
            if self.pending.is_empty() {
                return None;
            }
            self.sending.clear();
            self.sending_offset = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
        }
        let rest = &self.sending[self.sending_offset..];
        Some((rest.as_ptr(), rest.len().min(limits::SEND_BYTES_MAX)))
    }

    /// Records that the send in flight wrote `written` bytes.
    pub fn sent(&mut self, written: usize) {
        debug_assert!(self.send_in_flight);
        self.send_in_flight = false;
        self.sending_offset += written;
        debug_assert!(self.sending_offset <= self.sending.len());
        if self.sending_offset == self.sending.len() {
            self.sending.clear();
            self.sending_offset = 0;
            // Give a burst's memory back only once the connection is idle; a busy one keeps
            // its buffers so steady traffic does not reallocate every round.
            if self.pending.is_empty()
                && self.sending.capacity() > limits::OUTBOUND_IDLE_CAPACITY_BYTES_MAX
            {
                self.sending = Vec::new();
            }
        }
    }
}

/// One subscription of a connection, kept in the shard's subscription slab.
#[derive(Debug)]
pub struct Subscription {
    pub conn_slot: u32,
    pub conn_generation: u32,
    /// This subscription slot's generation (matches the `SubHandle` in the table).
    pub generation: u32,
    pub sid: Box<[u8]>,
    pub subject: Box<[u8]>,
    pub queue: Option<Box<[u8]>>,
    /// Auto-unsubscribe after this many deliveries (UNSUB sid max).
    pub max: Option<u64>,
    pub delivered: u64,
}

pub struct Conn {
    /// The socket's fd, as named in SQEs; owned by `stream`.
    pub fd: RawFd,
    /// Owns the socket: dropping the connection closes it.
    pub stream: std::net::TcpStream,
    pub generation: u32,
    pub client_id: u64,
    pub state: ConnState,
    pub recv: RecvState,
    /// Why the connection is closing, once it is.
    pub close_reason: Option<CloseReason>,
    pub parser: Parser,
    /// The start of an operation that did not fit in the last receive buffer.
    pub carry: Vec<u8>,
    /// Total length of the carried operation, once its control line is known.
    pub carry_needed: Option<usize>,
    pub out: Outbound,
    /// True exactly when the connection is on the shard's dirty list (has output to flush).
    pub dirty: bool,
    pub options: ConnectOptions,
    /// True once a CONNECT was processed.
    pub connected: bool,
    /// True once the async INFO that answers the first PING after CONNECT was sent.
    pub sent_connect_info: bool,
    /// sid -> slot in the shard's subscription slab.
    pub subs: FxHashMap<Box<[u8]>, u32>,
    /// Operations of this connection with a completion still to come (recv, send, cancel).
    pub ops_in_flight: u32,
    pub pings_outstanding: u32,
    /// Shard clock (ms) of the next keepalive check.
    pub next_ping_ms: u64,
    /// Shard clock (ms) of the last bytes received.
    pub last_read_ms: u64,
    /// Shard clock (ms) since which the socket has accepted none of our output, while some is
    /// pending (None when nothing is stuck).
    pub write_stalled_since_ms: Option<u64>,
    /// True exactly when the connection's receive is held back because a subscriber it feeds
    /// is over the high-water mark; `paused_until_ms` bounds it.
    pub paused: bool,
    pub paused_until_ms: u64,
    /// What the connection waits for, while `paused`.
    pub paused_for: PauseCause,
    pub peer: String,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

impl Conn {
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }
}
