//! One client connection's state on its shard: lifecycle, parser and carry buffer, outbound
//! buffers, negotiated CONNECT options, subscriptions by sid, keepalive bookkeeping.
//!
//! Outbound invariant: `sending` is frozen while a send is in flight (the kernel reads from it);
//! new output goes to `pending`. On a send completion the sent prefix is consumed and, once
//! `sending` is drained, the two buffers swap.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use slab::Slab;

use crate::account::AccountId;
use crate::auth::authenticate::Identity;
use crate::auth::permissions::ConnectionPermissions;
use crate::limits;
use crate::proto::json::ConnectOptions;
use crate::proto::{CloseReason, Reader};
use crate::xshard::ShardId;

use super::tls::TlsSession;

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

/// A wait on a subscriber on this shard that is over its high-water mark: by a publisher
/// here (`PauseCause::Subscriber`) or by a peer's queue (held, see `peers`). It ends when the
/// subscriber drains under a quarter of the mark, goes away, or at `until_ms` (shard clock),
/// `PUBLISHER_PAUSE_MS_MAX` after the wait began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberWait {
    pub slot: u32,
    pub generation: u32,
    pub until_ms: u64,
}

impl SubscriberWait {
    /// Shard clock when the wait began.
    pub fn began_ms(self) -> u64 {
        self.until_ms - crate::limits::PUBLISHER_PAUSE_MS_MAX
    }
}

/// A subscriber whose socket took none of its output during a whole wait of this publisher
/// on it (`backpressure::subscriber_stuck`): the publisher does not wait for it again before
/// its `in_bytes` reach `until_in_bytes` (`limits::PUBLISHER_BYTES_PER_WAIT` later), as
/// nats-server stalls a producer at most 10 ms per read. A reader that never reads then slows
/// its publisher by one wait per 64 KiB on its way to max_pending, where it is closed, not by
/// one wait per message; a subscriber that reads, however slowly, is waited for as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckSubscriber {
    pub slot: u32,
    pub generation: u32,
    pub until_in_bytes: u64,
}

/// Why a publisher's reading is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// A subscriber on this shard is over its high-water mark.
    Subscriber(SubscriberWait),
    /// The queue to this peer shard is congested. The pause ends when it drains (a peer always
    /// drains).
    Peer(ShardId),
    /// Its CONNECT waits for a bcrypt check off the shard (`AuthState::Verifying`); the
    /// answer (`Control::Verified`) ends the pause.
    Verifying,
}

/// Where a message being delivered comes from: what echo and back-pressure depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Published by the connection in this slot: `echo` applies, and a subscriber it takes
    /// over the high-water mark pauses it.
    Local(u32),
    /// From a peer shard's queue: a subscriber taken over the high-water mark holds that queue.
    Peer(ShardId),
    /// Made by the server (a no-responders status): nobody is paused or held for it.
    Internal,
}

/// Two buffers: one the kernel may be sending from (frozen), one new output goes into. The
/// fields are private so that nothing outside can write into `sending` while the kernel reads
/// it: writers only ever append to `pending` (`append`, `append_with`).
#[derive(Debug, Default)]
pub struct Outbound {
    /// Output not yet handed to a send.
    pending: Vec<u8>,
    /// Bytes handed to the send in flight; frozen while `send_in_flight`.
    sending: Vec<u8>,
    /// How much of `sending` the kernel has already taken.
    sending_offset: usize,
    /// True exactly when a send SQE naming `sending[sending_offset..]` has no completion yet.
    send_in_flight: bool,
    /// A send started since the last timer tick (`release_if_idle`).
    sent_since_tick: bool,
}

impl Outbound {
    /// Queues `bytes` after everything queued before.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Queues what `write` appends to the pending buffer (a writer of `proto::writer`); returns
    /// how many bytes it appended.
    #[inline(always)]
    pub fn append_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let before = self.pending.len();
        write(&mut self.pending);
        self.pending.len() - before
    }

    /// The last `len` bytes queued (for tracing what was just written).
    pub fn last_written(&self, len: usize) -> &[u8] {
        &self.pending[self.pending.len() - len..]
    }

    /// True exactly when a send naming this outbound's memory has no completion yet.
    #[inline]
    pub fn send_in_flight(&self) -> bool {
        self.send_in_flight
    }

    /// Bytes queued for this client and not yet written to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() + self.sending.len() - self.sending_offset
    }

    /// Starts the next send: swaps in the pending bytes when `sending` is drained, marks the
    /// send in flight and returns the bytes to hand the kernel (which stay frozen until `sent`
    /// or `send_failed`). None when nothing is queued.
    pub fn next_send(&mut self) -> Option<(*const u8, usize)> {
        assert!(!self.send_in_flight, "one send at a time");
        if self.sending_offset == self.sending.len() {
            if self.pending.is_empty() {
                return None;
            }
            self.sending.clear();
            self.sending_offset = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
        }
        let rest = &self.sending[self.sending_offset..];
        self.send_in_flight = true;
        self.sent_since_tick = true;
        Some((rest.as_ptr(), rest.len().min(limits::SEND_BYTES_MAX)))
    }

    /// `next_send` for a transport that turns the pending bytes into what goes on the wire:
    /// when the last send is drained, `seal` moves `pending` (left empty) into the empty
    /// sending buffer as it must be sent (encrypted, after records of its own).
    pub fn next_send_sealed(
        &mut self,
        seal: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    ) -> Option<(*const u8, usize)> {
        assert!(!self.send_in_flight, "one send at a time");
        if self.sending_offset == self.sending.len() {
            self.sending.clear();
            self.sending_offset = 0;
            seal(&mut self.pending, &mut self.sending);
            debug_assert!(self.pending.is_empty(), "a seal takes everything pending");
            if self.sending.is_empty() {
                return None;
            }
        }
        let rest = &self.sending[self.sending_offset..];
        self.send_in_flight = true;
        self.sent_since_tick = true;
        Some((rest.as_ptr(), rest.len().min(limits::SEND_BYTES_MAX)))
    }

    /// Everything queued, as the kernel would take it through sends that each write all they
    /// are handed (for tests of what a connection was sent, with no socket behind it).
    #[cfg(test)]
    pub fn take_as_sent(&mut self) -> Vec<u8> {
        let mut taken = Vec::new();
        while let Some((_, len)) = self.next_send() {
            taken.extend_from_slice(&self.sending[self.sending_offset..][..len]);
            self.sent(len);
        }
        taken
    }

    /// Records that the send in flight failed; its bytes stay where they are (the connection
    /// is closing).
    pub fn send_failed(&mut self) {
        debug_assert!(self.send_in_flight);
        self.send_in_flight = false;
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
            // Once the connection is idle (nothing pending either): a drained buffer that only
            // held chatter goes back (most connections are idle most of the time and should
            // cost no outbound memory); one a busy round filled is kept for the next round, a
            // large one until a tick finds the connection idle since the one before
            // (`release_if_idle`). Freed at once, a subscriber that keeps catching up with a
            // fast publisher grew it again from nothing every few rounds: with nats.go
            // subscribing to 1 KiB messages, the copies of that growth were 13% of the
            // server's CPU.
            if self.pending.is_empty() {
                for buffer in [&mut self.sending, &mut self.pending] {
                    if buffer.capacity() <= limits::OUTBOUND_CHATTER_CAPACITY_BYTES_MAX {
                        *buffer = Vec::new();
                    }
                }
            }
        }
    }

    /// On the timer tick: frees drained buffers larger than `OUTBOUND_IDLE_CAPACITY_BYTES_MAX`
    /// when no send started since the last tick.
    pub fn release_if_idle(&mut self) {
        let idle = !self.send_in_flight && self.pending_bytes() == 0;
        if idle && !self.sent_since_tick {
            for buffer in [&mut self.sending, &mut self.pending] {
                if buffer.capacity() > limits::OUTBOUND_IDLE_CAPACITY_BYTES_MAX {
                    *buffer = Vec::new();
                }
            }
            debug_assert_eq!(self.sending_offset, 0, "a drained send resets the offset");
        }
        self.sent_since_tick = false;
    }
}

/// Received bytes waiting for a paused connection to resume, oldest first. Handling them
/// advances a start index instead of moving what is left, so a publisher that pauses again and
/// again while working through a long held run costs no repeated copies (it did: a cross-shard
/// publisher spent a fifth of its shard's time in memmove).
///
/// The allocation outlives a drained run: a publisher paced by backpressure is paused every
/// few rounds, and a buffer of megabytes freed and allocated again each time costs fresh pages
/// from the kernel (`clear_page_erms` was 15% of a cross-shard run's samples). It is given
/// back on the timer tick once a whole tick passed without a pause holding bytes
/// (`release_if_idle`).
#[derive(Debug, Default)]
pub struct Held {
    bytes: Vec<u8>,
    /// `bytes[start..]` is waiting; `bytes[..start]` was handled.
    start: usize,
    /// True exactly when bytes were pushed since the last `release_if_idle`.
    pushed_since_tick: bool,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    /// Appends newer bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.is_empty() {
            self.bytes.clear();
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
        self.pushed_since_tick = true;
    }

    /// On the timer tick: frees a drained allocation larger than
    /// `HELD_IDLE_CAPACITY_BYTES_MAX` when nothing was held since the last tick.
    pub fn release_if_idle(&mut self) {
        if !self.pushed_since_tick
            && self.is_empty()
            && self.bytes.capacity() > limits::HELD_IDLE_CAPACITY_BYTES_MAX
        {
            *self = Held::default();
        }
        self.pushed_since_tick = false;
    }

    /// The bytes still waiting.
    pub fn waiting(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Records that all but the last `left` waiting bytes were handled.
    pub fn consumed_to_last(&mut self, left: usize) {
        debug_assert!(left <= self.bytes.len() - self.start);
        self.start = self.bytes.len() - left;
        if self.is_empty() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

/// A connection's subscriptions by sid: their slots in the shard's subscription slab, found by
/// the sid each subscription holds. Four bytes per subscription (a map from a copy of the sid
/// cost 24 bytes and an allocation each: a fifth of the memory of a million subscriptions).
/// Lookups compare against the slab, so an indexed slot must be live in it.
#[derive(Debug, Default)]
pub struct SidIndex {
    slots: hashbrown::HashTable<u32>,
}

impl SidIndex {
    /// Sids are client-chosen: keyed hashing (see `crate::hash`).
    fn hash(sid: &[u8]) -> u64 {
        crate::hash::hash_bytes(sid)
    }

    /// The slot of the subscription with `sid`.
    pub fn get(&self, sid: &[u8], subs: &Slab<Subscription>) -> Option<u32> {
        self.slots
            .find(Self::hash(sid), |&slot| subs[slot as usize].sid() == sid)
            .copied()
    }

    /// Indexes `slot`, which is live in `subs` and whose sid is not indexed yet.
    pub fn insert(&mut self, slot: u32, subs: &Slab<Subscription>) {
        let sid = subs[slot as usize].sid();
        debug_assert!(
            self.get(sid, subs).is_none(),
            "sids are unique per connection"
        );
        self.slots.insert_unique(Self::hash(sid), slot, |&indexed| {
            Self::hash(subs[indexed as usize].sid())
        });
    }

    /// Forgets `slot`, whose subscription has `sid` (the slab entry may already be gone).
    pub fn remove(&mut self, sid: &[u8], slot: u32) -> bool {
        match self
            .slots
            .find_entry(Self::hash(sid), |&indexed| indexed == slot)
        {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every indexed slot.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied()
    }

    /// Every indexed slot, leaving the index empty.
    pub fn drain(&mut self) -> impl Iterator<Item = u32> + '_ {
        self.slots.drain()
    }
}

/// One subscription of a connection, kept in the shard's subscription slab. Its subject, sid
/// and queue name share one allocation: a server holding a million subscriptions pays for one
/// small block each, not three.
#[derive(Debug)]
pub struct Subscription {
    pub conn_slot: u32,
    pub conn_generation: u32,
    /// This subscription slot's generation (matches the `SubHandle` in the table).
    pub generation: u32,
    /// The account whose table holds it (its connection's; kept here for the removal after
    /// the connection is gone). In what was padding: the entry stays 56 bytes.
    pub account: AccountId,
    /// Length of the subject at the start of `text`.
    subject_len: u32,
    /// Length of the sid, which follows the subject in `text`.
    sid_len: u32,
    /// The subject, the sid, then the queue name if any (a queue name is never empty, so
    /// bytes after the sid mean a queue group).
    text: Box<[u8]>,
    /// Auto-unsubscribe after this many deliveries (UNSUB sid max); `NO_MAX` when there is no
    /// limit (an explicit `u64::MAX` is the same: never reached). Not an `Option`, which would
    /// make the slab entry 64 bytes instead of 56.
    pub max: u64,
    pub delivered: u64,
}

const _: () = assert!(std::mem::size_of::<Subscription>() == 56);

impl Subscription {
    pub const NO_MAX: u64 = u64::MAX;

    pub fn new(
        conn_slot: u32,
        conn_generation: u32,
        generation: u32,
        account: AccountId,
        subject: &[u8],
        sid: &[u8],
        queue: Option<&[u8]>,
    ) -> Subscription {
        debug_assert!(
            queue.is_none_or(|queue| !queue.is_empty()),
            "queue names are not empty"
        );
        let mut text = Vec::with_capacity(subject.len() + sid.len() + queue.map_or(0, <[u8]>::len));
        text.extend_from_slice(subject);
        text.extend_from_slice(sid);
        text.extend_from_slice(queue.unwrap_or_default());
        Subscription {
            conn_slot,
            conn_generation,
            generation,
            account,
            subject_len: u32::try_from(subject.len()).expect("a control line fits in u32"),
            sid_len: u32::try_from(sid.len()).expect("a control line fits in u32"),
            text: text.into_boxed_slice(),
            max: Subscription::NO_MAX,
            delivered: 0,
        }
    }

    #[inline]
    pub fn subject(&self) -> &[u8] {
        &self.text[..self.subject_len as usize]
    }

    #[inline]
    pub fn sid(&self) -> &[u8] {
        let start = self.subject_len as usize;
        &self.text[start..start + self.sid_len as usize]
    }

    #[inline]
    pub fn queue(&self) -> Option<&[u8]> {
        let queue = &self.text[(self.subject_len + self.sid_len) as usize..];
        (!queue.is_empty()).then_some(queue)
    }
}

/// What a connection speaks: which session handles its operations and writes what is
/// delivered to it. A cluster route is the next kind: its own session module (parser,
/// handler, RMSG writer) and one arm at each `match conn.kind` (`Core::on_input`,
/// `Core::open_conn`, `Core::left_open`); its listener is one more entry in the shard's
/// listener table, with that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A client accepted on the client port.
    Client,
    /// The system service's in-process client of the system account (`system`): one end of
    /// a Unix socket pair, attached to shard 0 (`Control::AttachSystem`). It speaks the client
    /// protocol, starts CONNECTed and authenticated, and is no client for counting: not in the
    /// connection counts and limits, monitoring's connection lists, lame duck or a reload's
    /// authentication checks.
    System,
    /// A cluster route to another server (`route`): accepted on the cluster port or dialed by
    /// the cluster's dialer. No client either: not counted, listed or limited as one.
    Route,
}

/// What lies between the socket and the session's bytes. TLS (rustls on the io_uring path,
/// `tls`) decrypts at the receive seam (`Core::on_input`, before the session's reader) and
/// encrypts at the send seam (`Shard::flush_dirty`, from `Outbound`'s pending plaintext into
/// the buffer the send SQE names, `Outbound::next_send_sealed`), so the parser and the fan-out
/// templates keep working on plaintext.
#[derive(Debug)]
pub enum Transport {
    Plain,
    Tls(Box<TlsSession>),
}

impl Transport {
    #[inline(always)]
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain)
    }
}

/// A subject of at most `PUBLISH_MEMO_BYTES`, kept inline in the connection: the publish path
/// of a user with permissions compares the subject it publishes to with the one it was last
/// allowed by rule, without following a pointer, hashing or calling `memcmp` (a connection
/// repeating a subject cost 45 instructions more per message than one without permissions;
/// see `scripts/instructions.sh`).
#[derive(Debug, Clone, Default)]
pub struct PublishMemo {
    /// 0: none (an empty subject is never published).
    len: u8,
    bytes: [u8; PUBLISH_MEMO_BYTES],
}

/// The longest subject `PublishMemo` keeps; a longer one goes through the permission cache.
pub const PUBLISH_MEMO_BYTES: usize = 32;

impl PublishMemo {
    /// Whether it holds exactly `subject`: two overlapping loads from each side, of the
    /// widest size the length allows.
    #[inline(always)]
    pub fn holds(&self, subject: &[u8]) -> bool {
        let len = subject.len();
        if len != usize::from(self.len) || len == 0 {
            return false;
        }
        let memo = &self.bytes[..len];
        fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
            bytes[at..at + N].try_into().expect("N bytes")
        }
        fn both<const N: usize>(a: &[u8], b: &[u8]) -> bool {
            let last = a.len() - N;
            word::<N>(a, 0) == word::<N>(b, 0) && word::<N>(a, last) == word::<N>(b, last)
        }
        match len {
            16.. => both::<16>(subject, memo),
            8..16 => both::<8>(subject, memo),
            4..8 => both::<4>(subject, memo),
            // 1 to 3 bytes: the first, middle and last cover them all.
            _ => both::<1>(subject, memo) && subject[len / 2] == memo[len / 2],
        }
    }

    /// Keeps `subject`, or nothing if it is longer than `PUBLISH_MEMO_BYTES`.
    pub fn set(&mut self, subject: &[u8]) {
        match self.bytes.get_mut(..subject.len()) {
            Some(bytes) => {
                bytes.copy_from_slice(subject);
                self.len = subject.len() as u8;
            }
            None => self.len = 0,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

pub struct Conn {
    /// The socket's fd, as named in SQEs; owned by `stream`.
    pub fd: RawFd,
    /// Owns the socket (a TCP one for a client, a Unix one for the system connection):
    /// dropping the connection closes it.
    pub stream: socket2::Socket,
    pub generation: u32,
    pub kind: ConnKind,
    pub transport: Transport,
    /// A route's session (`ConnKind::Route` exactly); None for every other kind.
    pub route: Option<Box<super::route::RouteSession>>,
    /// The account it is in: its publishes are matched in that account's table.
    pub account: AccountId,
    pub client_id: u64,
    /// When it was accepted (wall clock, for monitoring).
    pub start: std::time::SystemTime,
    pub state: ConnState,
    pub recv: RecvState,
    /// Why the connection is closing, once it is.
    pub close_reason: Option<CloseReason>,
    /// Parser settings and the carry of a partial operation (see `proto::reader`).
    pub reader: Reader,
    /// Received bytes not parsed yet because the connection was paused (what followed the op
    /// that paused it, and data that arrived while paused), oldest first. Handled before any
    /// newer data once the connection resumes; copied here so the provided buffers they came
    /// in go straight back to the ring.
    pub held: Held,
    pub out: Outbound,
    /// True exactly when the connection is on the shard's dirty list (has output to flush).
    pub dirty: bool,
    pub options: ConnectOptions,
    /// True once a CONNECT was processed.
    pub connected: bool,
    /// True once the async INFO that answers the first PING after CONNECT was sent.
    pub sent_connect_info: bool,
    /// True exactly when a `SystemEvent::Connect` was sent for it: its close sends the
    /// `SystemEvent::Disconnect` (see `system`).
    pub announced: bool,
    /// Where it is in authentication, and who it is once authenticated.
    pub auth: AuthState,
    /// The nonce its INFO carried, when the server asks for signatures.
    pub nonce: Option<Box<str>>,
    /// What the TLS client certificate it presented names (read once, when its handshake
    /// ended), for `verify_and_map`; `None` without one.
    pub certificate: Option<Box<crate::tls::CertIdentities>>,
    /// The number of its latest authentication check (see `Core::next_auth_check`).
    pub auth_checks: u32,
    /// Set to cancel the check of it the verifier has queued, if any.
    pub check_cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// What its identity may publish and subscribe to, with this connection's decisions
    /// cached; `None`: anything.
    pub permissions: Option<Box<ConnectionPermissions>>,
    /// Its publishes need no check but the reserved subjects': no permissions, and its
    /// account has no mappings and no links (`Conn::set_publish_path`).
    pub plain: bool,
    /// With permissions, in an account as plain: the subject it was last allowed to publish
    /// to, which needs no check either (`Conn::set_publish_path` clears it).
    pub publish_memo: PublishMemo,
    /// The account whose connection count includes this connection (see `Core::join_account`).
    pub joined: Option<AccountId>,
    /// Subscriptions it may have at most by its account's and its user's limits (the server's
    /// `max_subscriptions` applies on top); -1: no such limit.
    pub subscriptions_limit: i64,
    /// Its account's and user's payload limit (the server's `max_payload` applies on top);
    /// -1: none.
    pub payload_limit: i64,
    /// Shard clock (ms) when its authentication expires (an operator-mode JWT's `exp`).
    pub expires_ms: Option<u64>,
    /// sid -> slot in the shard's subscription slab.
    pub subs: SidIndex,
    /// Operations of this connection with a completion still to come (recv, send, cancel).
    pub ops_in_flight: u32,
    pub pings_outstanding: u32,
    /// When the server's last PING went out, until its PONG (for `rtt_ns`).
    pub ping_sent: Option<std::time::Instant>,
    /// The round trip of the last server PING (nats-server's `rtt`), 0 until one came back.
    pub rtt_ns: u64,
    /// Shard clock (ms) of the next keepalive check.
    pub next_ping_ms: u64,
    /// Shard clock (ms) of the last bytes received.
    pub last_read_ms: u64,
    /// Shard clock (ms) since which the socket has accepted none of our output, while some is
    /// pending (None when nothing is stuck).
    pub write_stalled_since_ms: Option<u64>,
    /// Shard clock (ms) of the last send queued to it: input from a connection sent something
    /// lately may be its answer, which the shard watches for (see `limits::ANSWER_MS`).
    pub last_send_ms: u64,
    /// Some exactly when the connection's reading is held back (it publishes to a subscriber
    /// or a peer queue that must drain first); says what it waits for.
    pub paused: Option<PauseCause>,
    /// The subscriber this publisher's last wait found stuck, passed over for a while.
    pub stuck: Option<StuckSubscriber>,
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

    /// After its permissions or its account's mappings or links changed: whether its
    /// publishes are plain, and no subject remembered as allowed.
    pub fn set_publish_path(&mut self, account_plain: bool) {
        self.plain = self.permissions.is_none() && account_plain;
        self.publish_memo.clear();
    }

    /// The largest payload it may publish: the server's limit, or its own if smaller.
    pub fn payload_limit_with(&self, options: &crate::config::Options) -> u32 {
        match u32::try_from(self.payload_limit) {
            Ok(limit) => limit.min(options.max_payload),
            Err(_) => options.max_payload,
        }
    }

    /// On the timer tick: whether it failed to authenticate in time (`Authentication
    /// Timeout`) or its authentication expired (`User Authentication Expired`).
    pub fn auth_overdue(&self, now_ms: u64) -> Option<crate::proto::ServerError> {
        match &self.auth {
            AuthState::Awaiting { deadline_ms } if now_ms >= *deadline_ms => {
                Some(crate::proto::ServerError::AuthenticationTimeout)
            }
            AuthState::Authenticated(_) if self.expires_ms.is_some_and(|at| now_ms >= at) => {
                Some(crate::proto::ServerError::UserAuthenticationExpired)
            }
            _ => None,
        }
    }
}

/// Where a client connection is in authentication.
#[derive(Debug)]
pub enum AuthState {
    /// Authentication is required and nothing proved an identity yet: it must by
    /// `deadline_ms` (shard clock). Its input goes through `Core::on_input_before_auth`.
    Awaiting { deadline_ms: u64 },
    /// A CONNECT's bcrypt check is under way off the shard (its number is
    /// `Conn::auth_checks`); its reading is paused (`PauseCause::Verifying`) until the answer.
    Verifying { options: Box<ConnectOptions> },
    /// Who it is: its account and permissions (`Core::set_identity`).
    Authenticated(Arc<Identity>),
}

/// Takes ownership of an fd a completion handed us.
pub fn close_fd(fd: RawFd) {
    // Dropping the OwnedFd closes it.
    // SAFETY: the accept completion gave us this fd and nothing else refers to it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes a send would hand the kernel, as a slice (for checking, not for sending).
    fn sending_now(out: &Outbound, (ptr, len): (*const u8, usize)) -> Vec<u8> {
        let rest = &out.sending[out.sending_offset..];
        assert_eq!(
            (rest.as_ptr(), rest.len().min(limits::SEND_BYTES_MAX)),
            (ptr, len)
        );
        rest[..len].to_vec()
    }

    #[test]
    fn output_written_during_a_send_waits_and_nothing_moves() {
        let mut out = Outbound::default();
        assert!(out.next_send().is_none());
        out.pending.extend_from_slice(b"first ");
        let send = out.next_send().expect("something to send");
        assert_eq!(sending_now(&out, send), b"first ");
        // New output while the kernel holds `sending`: it goes to `pending`; `sending` is not
        // reallocated (same pointer).
        out.pending.extend_from_slice(&[b'x'; 100_000]);
        assert_eq!(out.sending.as_ptr(), send.0);
        assert_eq!(out.pending_bytes(), 6 + 100_000);
        // A short write: the rest is sent next from the same buffer.
        out.sent(2);
        let rest = out.next_send().unwrap();
        assert_eq!(sending_now(&out, rest), b"rst ");
        out.sent(4);
        // Drained: the pending bytes become the next send.
        let next = out.next_send().unwrap();
        assert_eq!(next.1, 100_000);
        out.sent(100_000);
        assert_eq!(out.pending_bytes(), 0);
        assert!(out.next_send().is_none());
    }

    #[test]
    fn idle_buffers_give_memory_back_busy_ones_keep_it() {
        let mut out = Outbound::default();
        out.pending.extend_from_slice(&vec![0u8; 1 << 20]);
        let (_, len) = out.next_send().unwrap();
        out.pending.extend_from_slice(b"more");
        out.sent(len);
        assert!(out.sending.capacity() >= 1 << 20, "busy: capacity kept");
        let (_, len) = out.next_send().unwrap();
        out.sent(len);
        let capacity = |out: &Outbound| (out.sending.capacity(), out.pending.capacity());
        // The 1 MiB buffer is the pending one now; the one that carried "more" is freed.
        assert_eq!(
            capacity(&out).1.min(capacity(&out).0),
            0,
            "the chatter-sized one is freed"
        );
        assert!(
            capacity(&out).0.max(capacity(&out).1) >= 1 << 20,
            "idle since this moment: kept until a tick finds it idle since the one before"
        );
        out.release_if_idle();
        assert!(
            capacity(&out).0.max(capacity(&out).1) >= 1 << 20,
            "a send started since the last tick"
        );
        out.release_if_idle();
        assert_eq!(capacity(&out), (0, 0), "idle for a whole tick: freed");
    }

    #[test]
    fn a_busy_buffer_is_not_freed_on_the_tick() {
        let mut out = Outbound::default();
        out.pending.extend_from_slice(&vec![0u8; 1 << 20]);
        out.release_if_idle();
        out.release_if_idle();
        assert!(
            out.pending.capacity() >= 1 << 20,
            "pending output is never freed"
        );
        let (_, len) = out.next_send().unwrap();
        out.release_if_idle();
        out.release_if_idle();
        assert!(out.sending.capacity() >= 1 << 20, "nor a send in flight");
        out.sent(len);
        assert_eq!(out.pending_bytes(), 0);
    }

    #[test]
    fn a_large_held_buffer_is_freed_only_after_an_idle_tick() {
        let mut held = Held::default();
        held.push(&vec![7u8; 4 * limits::HELD_IDLE_CAPACITY_BYTES_MAX]);
        held.consumed_to_last(10);
        assert_eq!(held.waiting(), &[7u8; 10]);
        // Waiting bytes are never dropped, idle or not.
        held.release_if_idle();
        held.release_if_idle();
        assert_eq!(held.waiting(), &[7u8; 10]);
        held.consumed_to_last(0);
        let capacity = held.capacity();
        assert!(capacity > limits::HELD_IDLE_CAPACITY_BYTES_MAX);
        // Drained, but nothing was pushed during the last tick: the allocation goes.
        held.release_if_idle();
        assert_eq!(held.capacity(), 0);

        // Pushed during this tick: kept for the next pause; freed at the tick after.
        held.push(&vec![1u8; capacity]);
        held.consumed_to_last(0);
        held.release_if_idle();
        assert!(held.capacity() >= capacity);
        held.push(b"again");
        assert_eq!(held.waiting(), b"again");
        held.consumed_to_last(0);
        held.release_if_idle();
        assert!(held.capacity() >= capacity, "pushed during the tick");
        held.release_if_idle();
        assert_eq!(held.capacity(), 0);

        // A small one stays.
        held.push(b"small");
        held.consumed_to_last(0);
        held.release_if_idle();
        held.release_if_idle();
        assert!(held.capacity() > 0);
    }

    #[test]
    fn subscription_text_round_trips() {
        let plain = Subscription::new(1, 2, 3, AccountId::GLOBAL, b"foo.bar", b"17", None);
        assert_eq!(
            (plain.subject(), plain.sid(), plain.queue()),
            (&b"foo.bar"[..], &b"17"[..], None)
        );
        let queued =
            Subscription::new(1, 2, 3, AccountId::GLOBAL, b"foo.*", b"x", Some(b"workers"));
        assert_eq!(
            (queued.subject(), queued.sid(), queued.queue()),
            (&b"foo.*"[..], &b"x"[..], Some(&b"workers"[..]))
        );
    }

    #[test]
    fn a_failed_send_ends_the_send() {
        let mut out = Outbound::default();
        out.pending.extend_from_slice(b"abc");
        out.next_send().unwrap();
        out.send_failed();
        assert!(!out.send_in_flight);
        assert_eq!(out.pending_bytes(), 3);
    }

    #[test]
    fn the_publish_memo_holds_exactly_its_subject_at_every_length() {
        let mut memo = PublishMemo::default();
        assert!(!memo.holds(b"a"));
        assert!(!memo.holds(b""));
        for len in 1..=PUBLISH_MEMO_BYTES {
            let subject: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            memo.set(&subject);
            assert!(memo.holds(&subject), "length {len}");
            for at in 0..len {
                let mut other = subject.clone();
                other[at] = b'Z';
                assert!(!memo.holds(&other), "length {len}, byte {at} differs");
            }
            assert!(!memo.holds(&subject[..len - 1]));
            let mut longer = subject.clone();
            longer.push(b'a');
            assert!(!memo.holds(&longer));
        }
        let long = vec![b'x'; PUBLISH_MEMO_BYTES + 1];
        memo.set(&long);
        assert!(!memo.holds(&long), "too long to keep");
        memo.set(b"foo");
        memo.clear();
        assert!(!memo.holds(b"foo"));
    }
}
