//! Everything a shard is but its ring: the connection table, the accounts with their match
//! caches, the peers, the back-pressure state, the counters. Every protocol handler
//! (`client.rs`), delivery (`deliver.rs`) and the peer side of cross-shard delivery
//! (`peers.rs`) runs on `Core`, so each is unit-tested with no ring (see the tests below);
//! what needs the kernel (arming and cancelling receives, sends, wake-ups) is asked for in the
//! connection table or the peers and submitted by the loop at the end of the round.

use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::backpressure::{subscriber_stuck, subscriber_wait_over, Backlog, Pauses};
use super::conn::{
    close_fd, AuthState, Conn, ConnKind, ConnState, PauseCause, RecvState, StuckSubscriber,
    SubscriberWait, Transport,
};
use super::monitoring::ClosedRing;
use super::peers::Peers;
use super::settings::Settings;
use super::shared::Shared;
use super::table::ConnTable;
use super::templates::Templates;
use crate::account::links::Links;
use crate::account::Account;
use crate::account::AccountId;
use crate::limits;
use crate::mapping::MappingTable;
use crate::proto::{CloseReason, ServerError};
use crate::stats::{AccountTraffic, ShardStats};
use crate::sublist::MatchCache;
use crate::xshard::link::{Incoming, Outgoing};
use crate::xshard::ShardId;

/// One account as a shard uses it: the account (its subject table) and the shard's match cache
/// for it, side by side so a publish reaches both through one index.
pub struct AccountView {
    pub account: Arc<Account>,
    pub cache: MatchCache,
    /// The shard's cache of its remote table (the interest the cluster's routes sent).
    pub remote_cache: MatchCache,
    /// Its exports and imports, when it has any (`Settings::links`).
    pub links: Option<Arc<Links>>,
    /// Its subject mappings, when it has any (`Settings::mappings`).
    pub mappings: Option<Arc<MappingTable>>,
    /// Neither mappings nor links a publish on an ordinary subject can take (see
    /// `Links::on_special_subjects_only`): such a publish needs nothing but its table.
    pub plain: bool,
    /// The traffic of its connections on this shard that have closed (open ones count their
    /// own; `Core::account_traffic` adds them up), so the message path counts nothing twice;
    /// and the counts made when a connection joins (`total_connections`) or closes
    /// (`slow_consumers`).
    pub closed_traffic: AccountTraffic,
}

impl AccountView {
    /// What `subject` matches in this account, through the shard's cache.
    #[inline]
    pub fn lookup(&mut self, subject: &[u8]) -> std::rc::Rc<crate::sublist::MatchResult> {
        self.cache.lookup(&self.account.sublist, subject)
    }
}

pub struct Core {
    pub index: ShardId,
    pub shared: Arc<Shared>,
    /// The configuration this shard works with, swapped whole by `reload`.
    pub settings: Arc<Settings>,
    pub conns: ConnTable,
    /// Every account as this shard uses it, indexed by `AccountId`.
    pub accounts: Vec<AccountView>,
    /// The other shards; empty with one shard.
    pub peers: Peers,
    /// Paused publishers and the back-pressure marks (see `backpressure`).
    pub pauses: Pauses,
    /// Set by a delivery of a peer's frame (`Origin::Peer`) that took a subscriber over its
    /// high-water mark; taken by `drain_peers`, which holds that peer's queue.
    pub over_high_water: Option<SubscriberWait>,
    /// The next client id this shard hands out; ids of shard i are i+1 modulo the shard count,
    /// so anyone can tell a connection's shard from its INFO `client_id`.
    next_client_id: u64,
    pub(super) rng: u64,
    /// Milliseconds since the shard started, read once per loop iteration.
    pub now_ms: u64,
    /// A message with a reply subject was routed since the loop last looked: its answer is
    /// due soon, so the shard does not sleep for a batch (see `Shard::run`).
    pub request_routed: bool,
    /// The wall-clock time of shard clock 0 (`now_ms` counts from it): what monitoring turns
    /// shard-clock times into dates with.
    pub clock_started: std::time::SystemTime,
    /// The system connections' slots (the system services' client; one, usually).
    pub system_slots: Vec<u32>,
    /// The traffic of system connections that closed: left out of the counters with the open
    /// ones' (nats-server counts none of its internal clients' traffic).
    pub system_traffic_closed: AccountTraffic,
    /// The connections closed here, kept for monitoring (`monitoring`).
    pub closed: ClosedRing,
    pub stats: ShardStats,
    /// Scratch space for small control-plane writes (INFO, no-responders headers).
    pub scratch: Vec<u8>,
    /// The frames of the message being delivered (see `templates`).
    pub templates: Templates,
    /// Where a publish's mapped subject is written (`publish_checked`).
    pub mapped_subject: Vec<u8>,
    /// When this shard last logged a SUB over `max_subscriptions`: nats-server logs that at
    /// most once per `limits::MAX_SUBSCRIPTIONS_LOG_INTERVAL_MS` (per account there; per shard
    /// here until accounts have their own state).
    pub max_subscriptions_logged_ms: Option<u64>,
    /// A cluster is configured (`Shared::cluster`): publishes look at the remote tables too,
    /// and local interest is counted for the routes.
    pub clustered: bool,
    /// The routes a message being forwarded goes to (`route_forward`), kept for its capacity.
    pub forwards: Vec<super::route_forward::Forward>,
    /// The slots of this shard's route connections.
    pub route_slots: Vec<u32>,
    /// The cluster's client URLs once routes changed them (`Control::ClientUrls`); None: the
    /// settings' INFO has them (this server's own).
    pub client_urls: Option<Arc<[String]>>,
}

impl Core {
    /// Shard `index`'s state, with `links[i]` the link to and from shard `i` (None for itself).
    pub fn new(
        index: ShardId,
        shared: Arc<Shared>,
        links: Vec<Option<(Outgoing, Incoming)>>,
        seed: u64,
    ) -> Core {
        let settings = shared.settings();
        let max_closed_clients = settings.options.max_closed_clients as usize;
        let accounts = settings
            .accounts
            .iter()
            .enumerate()
            .map(|(index, account)| AccountView {
                account: Arc::clone(account),
                cache: MatchCache::new(),
                remote_cache: MatchCache::new(),
                links: settings.links[index].clone(),
                mappings: settings.mappings[index].clone(),
                plain: plain_account(
                    settings.links[index].as_deref(),
                    settings.mappings[index].is_none(),
                ),
                closed_traffic: AccountTraffic::default(),
            })
            .collect();
        let clustered = shared.cluster.is_some();
        Core {
            index,
            clustered,
            pauses: Pauses::new(settings.options.max_pending),
            settings,
            shared,
            conns: ConnTable::new(),
            accounts,
            peers: Peers::new(links),
            over_high_water: None,
            next_client_id: index.0 as u64 + 1,
            rng: seed | 1,
            now_ms: 0,
            request_routed: false,
            clock_started: std::time::SystemTime::now(),
            system_slots: Vec::new(),
            system_traffic_closed: AccountTraffic::default(),
            closed: ClosedRing::new(max_closed_clients),
            stats: ShardStats::default(),
            scratch: Vec::new(),
            templates: Default::default(),
            mapped_subject: Vec::new(),
            max_subscriptions_logged_ms: None,
            forwards: Vec::new(),
            route_slots: Vec::new(),
            client_urls: None,
        }
    }

    /// The receive seam: bytes from the socket of `slot` (open), through its transport, to its
    /// session. Returns how many bytes at the end were left unparsed because the connection
    /// paused (the caller holds them). One match per received buffer, not per message.
    #[inline]
    pub(super) fn on_input(&mut self, slot: u32, bytes: &mut [u8]) -> usize {
        match self.conns[slot].transport {
            Transport::Plain => self.on_session_input(slot, bytes),
            // TLS holds what a pause leaves unparsed itself (plaintext).
            Transport::Tls(_) => {
                self.on_tls_input(slot, bytes);
                0
            }
        }
    }

    /// Plaintext for the session of `slot`'s kind; returns how many bytes at the end were
    /// left unparsed because the connection paused.
    #[inline]
    pub(super) fn on_session_input(&mut self, slot: u32, bytes: &[u8]) -> usize {
        match self.conns[slot].kind {
            // The system connection speaks the client protocol, authenticated from the start.
            ConnKind::Client | ConnKind::System => self.on_client_input(slot, bytes),
            ConnKind::Route => self.on_route_input(slot, bytes),
        }
    }

    /// Notes that `slot` has new output to flush this round. Every writer calls it, so this
    /// is where any output (PONGs, +OKs, -ERRs, PINGs, messages) that takes a connection past
    /// `max_pending` makes it a slow consumer, as nats-server checks on every queued write.
    pub(super) fn mark_dirty(&mut self, slot: u32) {
        self.conns.mark(slot);
        let conn = &self.conns[slot];
        if conn.state == ConnState::Open
            && self.pauses.backlog(conn.out.pending_bytes()) == Backlog::SlowConsumer
        {
            self.slow_consumer(slot);
        }
    }

    /// Each account's traffic on this shard, indexed by `AccountId`, in one go (tests).
    #[cfg(test)]
    pub(super) fn account_traffic(&self) -> Vec<AccountTraffic> {
        self.account_traffic_chunk(None, usize::MAX).0
    }

    /// `Control::AccountTraffic`: each account's traffic (indexed by `AccountId`) over the
    /// connection slots after `after`, at most `max` of them, and the cursor to resume after
    /// (None: done). The first chunk has the closed connections' traffic too, so the chunks
    /// add up to the shard's.
    pub(super) fn account_traffic_chunk(
        &self,
        after: Option<u32>,
        max: usize,
    ) -> (Vec<AccountTraffic>, Option<u32>) {
        let mut traffic: Vec<AccountTraffic> = self
            .accounts
            .iter()
            .map(|view| AccountTraffic {
                account: view.account.name.clone(),
                ..if after.is_none() {
                    view.closed_traffic.clone()
                } else {
                    AccountTraffic::default()
                }
            })
            .collect();
        let end = self.conns.slots.capacity();
        let from = after.map_or(0, |slot| slot as usize + 1).min(end);
        let to = end.min(from.saturating_add(max.max(1)));
        for slot in from..to {
            let Some(conn) = self.conns.slots.get(slot) else {
                continue;
            };
            let account = &mut traffic[conn.account.index()];
            let client = conn.kind == ConnKind::Client;
            account.connections += u64::from(conn.is_open() && client);
            // The system services' traffic is no client's (nats-server counts none of its
            // internal clients').
            if client {
                account.in_msgs += conn.in_msgs;
                account.in_bytes += conn.in_bytes;
                account.out_msgs += conn.out_msgs;
                account.out_bytes += conn.out_bytes;
            }
        }
        (traffic, (to < end).then(|| to as u32 - 1))
    }

    /// A connection accepted on a listener of `kind`: its slot, or None when the shard is
    /// full (the fd is closed then).
    pub(super) fn open_conn(&mut self, fd: RawFd, kind: ConnKind) -> Option<u32> {
        if self.conns.len() >= limits::CONNECTIONS_PER_SHARD_MAX {
            close_fd(fd);
            return None;
        }
        // The stream now owns the fd and closes it when the connection is dropped, after its
        // last operation completed.
        // SAFETY: the accept completion handed us this fresh fd, owned by nothing else.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .ok()
            .map(|addr| format!("{}:{}", addr.ip(), addr.port()))
            .unwrap_or_default();
        let slot = self.insert_conn(socket2::Socket::from(stream), kind, peer);
        match kind {
            ConnKind::Client => {
                if let Some(tls) = &self.settings.tls {
                    match super::tls::TlsSession::new(tls, self.now_ms) {
                        Ok(session) => {
                            let conn = &mut self.conns[slot];
                            conn.transport = Transport::Tls(Box::new(session));
                            // Keepalive starts when the handshake ends.
                            conn.next_ping_ms = u64::MAX;
                        }
                        Err(error) => {
                            crate::log_error!("TLS: no session for a new client: {error}");
                            self.conns.slots.remove(slot as usize);
                            return None;
                        }
                    }
                }
                self.stats.total_connections += 1;
                self.stats.connections += 1;
                let open = self.shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                self.start_client(slot, open);
            }
            ConnKind::Route => self.start_accepted_route(slot),
            ConnKind::System => unreachable!("no listener accepts system connections"),
        }
        Some(slot)
    }

    /// A new connection of `kind` on `stream` (which it owns from now on), from `peer`
    /// (`ip:port`, or empty): its slot, with a new client id, open and not reading yet. What it
    /// is sent and when it reads is its kind's (`start_client`, `start_system`).
    pub(super) fn insert_conn(
        &mut self,
        stream: socket2::Socket,
        kind: ConnKind,
        peer: String,
    ) -> u32 {
        let generation = self.conns.take_generation();
        let client_id = self.next_client_id;
        self.next_client_id += self.shared.shard_count as u64;
        let options = &self.settings.options;
        let first_ping_ms =
            (options.ping_interval.as_millis() as u64).min(limits::FIRST_PING_INTERVAL_MS);
        let conn = Conn {
            fd: stream.as_raw_fd(),
            stream,
            generation,
            kind,
            transport: Transport::Plain,
            route: None,
            account: AccountId::GLOBAL,
            client_id,
            start: std::time::SystemTime::now(),
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
            announced: false,
            auth: AuthState::Awaiting {
                deadline_ms: u64::MAX,
            },
            nonce: None,
            certificate: None,
            auth_checks: 0,
            check_cancel: None,
            permissions: None,
            plain: true,
            publish_memo: Default::default(),
            joined: None,
            subscriptions_limit: -1,
            payload_limit: -1,
            expires_ms: None,
            subs: Default::default(),
            ops_in_flight: 0,
            pings_outstanding: 0,
            ping_sent: None,
            rtt_ns: 0,
            next_ping_ms: self.now_ms + first_ping_ms + self.jitter_ms(first_ping_ms / 5),
            last_read_ms: self.now_ms,
            write_stalled_since_ms: None,
            last_send_ms: 0,
            paused: None,
            stuck: None,
            peer,
            in_msgs: 0,
            in_bytes: 0,
            out_msgs: 0,
            out_bytes: 0,
        };
        self.conns.slots.insert(conn) as u32
    }

    /// Sends `err`'s -ERR (when it has one) after the output already queued, stops reading,
    /// and closes once everything is flushed.
    pub(super) fn send_error_and_drain(&mut self, slot: u32, err: &ServerError) {
        let conn = &mut self.conns[slot];
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
    pub(super) fn drain_and_close(&mut self, slot: u32, reason: CloseReason) {
        let conn = &mut self.conns[slot];
        if conn.state != ConnState::Open {
            return;
        }
        conn.state = ConnState::Draining;
        conn.close_reason = Some(reason);
        self.left_open(slot, reason);
        self.remove_all_subs(slot);
        self.conns.cancel_recv(slot);
        self.mark_dirty(slot);
    }

    /// Closes now: abandons output, unsubscribes everything, shuts the socket down so every
    /// operation in flight completes, and frees the slot once they have.
    pub(super) fn close(&mut self, slot: u32, reason: CloseReason) {
        let conn = &mut self.conns[slot];
        if conn.state == ConnState::Closing {
            return;
        }
        let was_open = conn.state == ConnState::Open;
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
        if was_open {
            self.left_open(slot, reason);
        }
        self.remove_all_subs(slot);
        self.conns.cancel_recv(slot);
        self.release_if_done(slot);
    }

    /// Frees the slot of a closing connection with nothing in flight; closes its fd last.
    pub(super) fn release_if_done(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if conn.state != ConnState::Closing || conn.ops_in_flight > 0 {
            return;
        }
        debug_assert_eq!(conn.recv, RecvState::Idle);
        debug_assert!(!conn.out.send_in_flight());
        debug_assert!(conn.subs.is_empty());
        self.leave_account(slot);
        let conn = &self.conns[slot];
        if let Some(cancel) = &conn.check_cancel {
            cancel.store(true, Ordering::Relaxed);
        }
        // The system services' traffic is no client's (see `Core::stats_now`).
        if conn.kind == ConnKind::Client {
            let closed = &mut self.accounts[conn.account.index()].closed_traffic;
            closed.in_msgs += conn.in_msgs;
            closed.in_bytes += conn.in_bytes;
            closed.out_msgs += conn.out_msgs;
            closed.out_bytes += conn.out_bytes;
        }
        // Dropping the connection closes its socket, last.
        let conn = self.conns.slots.remove(slot as usize);
        if conn.kind == ConnKind::Client {
            self.stats.connections -= 1;
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        }
        drop(conn);
    }

    /// The connection in `slot` stops being open now, for `reason`: called from the two places
    /// a connection leaves `ConnState::Open` (`drain_and_close`, `close`), so once. A client
    /// is announced gone to the system service (if it was announced) and recorded for
    /// monitoring, as nats-server's `saveClosedClient`; the system connection's close is
    /// logged.
    fn left_open(&mut self, slot: u32, reason: CloseReason) {
        match self.conns[slot].kind {
            ConnKind::Client => {
                self.announce_disconnect(slot, reason);
                self.record_closed(slot, reason);
            }
            ConnKind::System => self.system_closed(slot, reason),
            ConnKind::Route => self.route_closed(slot, reason),
        }
    }

    /// Keepalive PINGs, stale connections, write deadlines, authentication deadlines. Runs
    /// every `TIMER_TICK_MS`.
    pub(super) fn tick(&mut self) {
        let now_ms = self.now_ms;
        let options = &self.settings.options;
        let (ping_interval_ms, ping_max) =
            (options.ping_interval.as_millis() as u64, options.ping_max);
        let write_deadline_ms = options.write_deadline.as_millis() as u64;
        let mut stale = Vec::new();
        let mut stalled = Vec::new();
        let mut ping = Vec::new();
        let mut overdue = Vec::new();
        let mut tls_due = Vec::new();
        for (slot, conn) in self.conns.slots.iter_mut() {
            if conn.state == ConnState::Closing {
                continue;
            }
            if conn.is_open() {
                if let Some(err) = conn.auth_overdue(now_ms) {
                    overdue.push((slot as u32, err));
                    continue;
                }
                if let Transport::Tls(session) = &conn.transport {
                    if session.due_ms().is_some_and(|due_ms| now_ms >= due_ms) {
                        tls_due.push(slot as u32);
                        continue;
                    }
                }
            }
            conn.held.release_if_idle();
            conn.out.release_if_idle();
            if let Some(since) = conn.write_stalled_since_ms {
                if now_ms.saturating_sub(since) > write_deadline_ms {
                    stalled.push(slot as u32);
                    continue;
                }
            }
            if conn.state != ConnState::Open || now_ms < conn.next_ping_ms {
                continue;
            }
            conn.next_ping_ms = now_ms
                + match conn.kind {
                    ConnKind::Route => ping_interval_ms.min(limits::ROUTE_PING_INTERVAL_MS_MAX),
                    ConnKind::Client | ConnKind::System => ping_interval_ms,
                };
            if conn.pings_outstanding + 1 > ping_max {
                stale.push(slot as u32);
            } else {
                conn.pings_outstanding += 1;
                conn.ping_sent = Some(std::time::Instant::now());
                conn.out.append(crate::proto::writer::PING);
                ping.push(slot as u32);
            }
        }
        for slot in ping {
            self.mark_dirty(slot);
        }
        // Response routes past their time go (one shard sweeps; they are shared).
        if self.index.0 == 0 {
            let now = std::time::Instant::now();
            for view in &self.accounts {
                if view
                    .links
                    .as_ref()
                    .is_some_and(|links| links.answers_requests)
                {
                    view.account.responses.remove_expired(now);
                }
            }
        }
        for slot in tls_due {
            self.tls_due(slot);
        }
        for (slot, err) in overdue {
            let conn = &mut self.conns[slot];
            conn.expires_ms = None;
            crate::log_debug!(
                "{} - cid:{} - {}",
                conn.peer,
                conn.client_id,
                err.close_reason().map_or("", |reason| reason.as_str())
            );
            self.send_error_and_drain(slot, &err);
        }
        for slot in stale {
            self.stats.stale_connections += 1;
            let conn = &self.conns[slot];
            crate::log_debug!(
                "{} - cid:{} - Stale Client Connection - Closing",
                conn.peer,
                conn.client_id
            );
            self.send_error_and_drain(slot, &ServerError::StaleConnection);
        }
        for slot in stalled {
            self.stats.slow_consumers += 1;
            let conn = &self.conns[slot];
            crate::log_notice!(
                "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {}ms Exceeded",
                conn.peer,
                conn.client_id,
                write_deadline_ms
            );
            self.close(slot, CloseReason::SlowConsumerWriteDeadline);
        }
    }

    /// True when a wait on a subscriber is over (see `backpressure::subscriber_wait_over`).
    pub(super) fn subscriber_wait_over(&self, wait: SubscriberWait) -> bool {
        let subscriber = self.conns.subscriber_now(wait.slot);
        subscriber_wait_over(wait, subscriber, self.now_ms, self.pauses.low_water_bytes())
    }

    /// Parses the bytes held for `slot` while it was paused, if it is open and not paused.
    pub(super) fn handle_held(&mut self, slot: u32) {
        let conn = &mut self.conns[slot];
        if conn.held.is_empty() || conn.paused.is_some() || !conn.is_open() {
            return;
        }
        let mut held = std::mem::take(&mut conn.held);
        let left = self.on_session_input(slot, held.waiting());
        held.consumed_to_last(left);
        if let Some(conn) = self.conns.get_mut(slot) {
            debug_assert!(
                conn.held.is_empty(),
                "nothing is held while held bytes are handled"
            );
            // Keep what is still waiting (paused again) without moving it, and the
            // allocation for the next pause (the tick frees it once idle).
            conn.held = held;
        }
    }

    /// Stops reading `slot` until `cause` clears (see `PauseCause` for when each ends), unless
    /// it waits for a subscriber its last wait found stuck (`Conn::stuck`).
    pub(super) fn pause(&mut self, slot: u32, cause: PauseCause) {
        let conn = &mut self.conns[slot];
        if conn.paused.is_some() || !conn.is_open() {
            return;
        }
        if let (PauseCause::Subscriber(wait), Some(stuck)) = (cause, conn.stuck) {
            if stuck.slot == wait.slot
                && stuck.generation == wait.generation
                && conn.in_bytes < stuck.until_in_bytes
            {
                return;
            }
        }
        conn.paused = Some(cause);
        self.stats.publisher_pauses += 1;
        self.pauses.add(slot);
        self.conns.cancel_recv(slot);
    }

    /// Takes the publishers whose pause ran out or whose slow subscriber drained: handles
    /// what they had sent meanwhile (which may pause one again) and asks for the receives of
    /// the others. Returns whether any was resumed.
    pub(super) fn resume_paused(&mut self) -> bool {
        if self.pauses.is_empty() && !self.peers.any_held() {
            return false;
        }
        let (conns, peers, now_ms) = (&self.conns, &mut self.peers, self.now_ms);
        let low_water_bytes = self.pauses.low_water_bytes();
        let resumed_slots = self.pauses.take_resumable(|slot| {
            let conn = conns.get(slot)?;
            Some(
                !conn.is_open()
                    || match conn.paused {
                        None => true,
                        Some(PauseCause::Subscriber(wait)) => {
                            let subscriber = conns.subscriber_now(wait.slot);
                            subscriber_wait_over(wait, subscriber, now_ms, low_water_bytes)
                        }
                        Some(PauseCause::Peer(shard)) => peers.drained(shard),
                        Some(PauseCause::Verifying) => false,
                    },
            )
        });
        for &slot in &resumed_slots {
            // Every resumed pause is cleared here; one that waited on a subscriber may also
            // have found it stuck.
            let Some(PauseCause::Subscriber(wait)) = self.conns[slot].paused.take() else {
                continue;
            };
            if subscriber_stuck(wait, self.conns.subscriber_now(wait.slot)) {
                let conn = &mut self.conns[slot];
                conn.stuck = Some(StuckSubscriber {
                    slot: wait.slot,
                    generation: wait.generation,
                    until_in_bytes: conn.in_bytes + limits::PUBLISHER_BYTES_PER_WAIT,
                });
            }
        }
        for &slot in &resumed_slots {
            // What was held is handled first; it may pause the connection again.
            self.handle_held(slot);
            self.conns.want_recv(slot);
        }
        !resumed_slots.is_empty()
    }

    /// A reload's new settings (`Control::Reload`), between completions. Limits apply at
    /// once, to connections already open too, as nats-server applies them: the payload and
    /// control-line limits of every parser, the back-pressure marks, the keepalive and write
    /// deadline at the next tick; a lower max_connections closes what is over it
    /// (`ServerHandle::reload` asks for that with `Control::CloseClients`); INFO has the new
    /// values for connections opened from now on.
    pub(super) fn reload(&mut self, settings: Arc<Settings>) {
        let options = &settings.options;
        for (_, conn) in self.conns.slots.iter_mut() {
            let (max_payload, max_control_line) = match conn.kind {
                ConnKind::Client => (conn.payload_limit_with(options), options.max_control_line),
                ConnKind::System => super::system::system_parser_limits(options),
                // A route's parser has its own limits (`route`).
                ConnKind::Route => continue,
            };
            let parser = &mut conn.reader.parser;
            parser.max_payload = max_payload;
            parser.max_control_line = max_control_line;
        }
        self.pauses.set_max_pending(options.max_pending);
        self.closed.set_max(options.max_closed_clients as usize);
        let auth_changed = crate::config::auth_changed(&self.settings.options, options);
        // A reload only adds accounts: the new ones get their views here.
        for account in &settings.accounts[self.accounts.len()..] {
            self.accounts.push(AccountView {
                account: Arc::clone(account),
                cache: MatchCache::new(),
                remote_cache: MatchCache::new(),
                links: None,
                mappings: None,
                plain: true,
                closed_traffic: AccountTraffic::default(),
            });
        }
        for (index, view) in self.accounts.iter_mut().enumerate() {
            view.links = settings.links[index].clone();
            view.mappings = settings.mappings[index].clone();
            view.plain = plain_account(view.links.as_deref(), view.mappings.is_none());
        }
        for (_, conn) in self.conns.slots.iter_mut() {
            conn.set_publish_path(self.accounts[conn.account.index()].plain);
        }
        let old = std::mem::replace(&mut self.settings, settings);
        self.recheck_route_pins(&old);
        if auth_changed {
            self.reauthenticate_all();
        }
        if self.shared.cluster.is_some() {
            self.route_permissions_reloaded();
        }
    }

    pub(super) fn publish_stats(&mut self) {
        let stats = self.stats_now();
        if let Ok(mut published) = self.shared.stats[self.index.index()].lock() {
            *published = stats;
        }
    }

    pub(super) fn jitter_ms(&mut self, span_ms: u64) -> u64 {
        if span_ms == 0 {
            0
        } else {
            self.random() % span_ms
        }
    }

    /// xorshift64*: the shard's cheap source of randomness (queue member choice, jitter).
    pub(super) fn random(&mut self) -> u64 {
        next_random(&mut self.rng)
    }
}

/// Whether publishes in an account with these links (and mappings, unless `no_mappings`) take
/// the plain path: no mappings, and no links or links on `$`/`_` subjects only (which `on_pub`
/// checks for apart).
fn plain_account(links: Option<&Links>, no_mappings: bool) -> bool {
    no_mappings && links.is_none_or(Links::on_special_subjects_only)
}

/// xorshift64* over `state`: the shard's generator, as a function of its state alone so a
/// caller holding other parts of the shard can draw from it.
pub(super) fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The shard's parts at work with no ring: connections on real sockets (accepted from a
/// loopback listener, so a connection is what the loop would open), input fed as the loop feeds
/// it, output taken as the kernel would take it, peers' queues filled and read as the other
/// shards would.
#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::IntoRawFd;

    use super::*;
    use crate::config::Options;
    use crate::proto::Message;
    use crate::sublist::SubHandle;
    use crate::xshard::frame::{self, Frame, QueueRoute, Target};
    use crate::xshard::link::{link, FrameSink, PeerLink};

    /// 4 KiB of max_pending: the high-water mark is 3 KiB, the low-water mark 768 B.
    const MAX_PENDING: u64 = 4096;
    /// For peer queues: a drain takes a chunk of frames (64 KiB) before it looks at the mark,
    /// so the margin from the mark to max_pending must be wider than a chunk.
    const MAX_PENDING_FOR_PEERS: u64 = 512 * 1024;
    const PAYLOAD: [u8; 1000] = [b'x'; 1000];

    struct Bench {
        core: Core,
        listener: TcpListener,
        /// The client ends of the connections, kept open.
        clients: Vec<TcpStream>,
        /// Per peer shard: the link from it into this shard (its sending side), and the link
        /// from this shard to it (its receiving side).
        from_peer: Vec<Option<PeerLink>>,
        to_peer: Vec<Option<Incoming>>,
    }

    /// Shard 0 of `shards`, with every link to and from the others.
    fn bench(shards: usize) -> Bench {
        bench_with(shards, MAX_PENDING)
    }

    fn bench_with(shards: usize, max_pending: u64) -> Bench {
        let options = Options {
            max_pending,
            ..Options::default()
        };
        let shared = Shared::for_tests(shards, options);
        let mut links = Vec::new();
        let (mut from_peer, mut to_peer) = (Vec::new(), Vec::new());
        for peer in 0..shards {
            if peer == 0 {
                links.push(None);
                from_peer.push(None);
                to_peer.push(None);
                continue;
            }
            let (out_to_peer, peer_in) = link();
            let (peer_out, in_from_peer) = link();
            links.push(Some((out_to_peer, in_from_peer)));
            from_peer.push(Some(PeerLink::new(peer_out)));
            to_peer.push(Some(peer_in));
        }
        Bench {
            core: Core::new(ShardId(0), shared, links, 42),
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            clients: Vec::new(),
            from_peer,
            to_peer,
        }
    }

    impl Bench {
        /// A client connection, CONNECTed, its receive "armed" as the loop would arm it, its
        /// INFO taken.
        fn connect(&mut self) -> u32 {
            let client = TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
            let (server_end, _) = self.listener.accept().unwrap();
            self.clients.push(client);
            let slot = self
                .core
                .open_conn(server_end.into_raw_fd(), ConnKind::Client)
                .expect("opened");
            assert_eq!(self.core.conns.to_arm.pop(), Some(slot));
            let conn = &mut self.core.conns[slot];
            conn.recv = RecvState::Armed;
            conn.ops_in_flight += 1;
            self.input(slot, b"CONNECT {\"verbose\":false}\r\n");
            assert!(self.output(slot).starts_with(b"INFO "));
            slot
        }

        /// Feeds `bytes` as received; what a pause leaves unparsed is held, as the loop does.
        fn input(&mut self, slot: u32, bytes: &[u8]) {
            let left = self.core.on_input(slot, &mut bytes.to_vec());
            if left > 0 {
                self.core.conns[slot]
                    .held
                    .push(&bytes[bytes.len() - left..]);
            }
        }

        /// What `slot` was sent, all of it, as the kernel would take it; off the dirty list.
        fn output(&mut self, slot: u32) -> Vec<u8> {
            let conns = &mut self.core.conns;
            conns.dirty.retain(|&dirty| dirty != slot);
            conns[slot].dirty = false;
            conns[slot].out.take_as_sent()
        }

        fn handle(&self, sub_slot: u32) -> SubHandle {
            SubHandle {
                shard: 0,
                slot: sub_slot,
                generation: self.core.conns.subs[sub_slot as usize].generation,
            }
        }

        /// The subscription slot of `sid` on connection `slot`.
        fn sub_slot(&self, slot: u32, sid: &[u8]) -> u32 {
            self.core.conns[slot]
                .subs
                .get(sid, &self.core.conns.subs)
                .expect("subscribed")
        }

        /// Peer `peer` sends a frame of `PAYLOAD` on `subject` to `target`. Returns whether
        /// its queue into this shard is congested (it then waits for room).
        fn peer_sends(&mut self, peer: usize, subject: &[u8], target: SubHandle) -> bool {
            let message = Message {
                subject,
                reply: None,
                headers: None,
                payload: &PAYLOAD,
            };
            let link = self.from_peer[peer].as_mut().unwrap();
            let len = frame::encoded_len(&message, 1, None);
            let targets = [Target::from(target)];
            link.send(len, |buf| frame::encode(buf, &message, &targets, None))
        }

        /// The loop's bookkeeping when `slot`'s receive has ended (and its cancel, if one was
        /// asked for, completed): nothing of it is in flight any more.
        fn receive_ended(&mut self, slot: u32) {
            let cancelled = self.core.conns.to_cancel.contains(&slot);
            self.core.conns.to_cancel.retain(|&s| s != slot);
            let conn = &mut self.core.conns[slot];
            conn.ops_in_flight -= 1 + u32::from(cancelled);
            conn.recv = RecvState::Idle;
        }

        fn peer_ends_round(&mut self, peer: usize) {
            self.from_peer[peer].as_mut().unwrap().end_round();
        }
    }

    fn msgs(output: &[u8]) -> usize {
        output.windows(4).filter(|w| w == b"MSG ").count()
    }

    /// One shard: a subscriber to `foo` that reads nothing, and a publisher that has sent
    /// `count` messages of `PAYLOAD` to it in one read. Returns the subscriber's and the
    /// publisher's slots.
    fn publishing_to_a_subscriber(count: usize) -> (Bench, u32, u32) {
        let mut b = bench(1);
        let subscriber = b.connect();
        let publisher = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        let burst: Vec<u8> = (0..count).flat_map(|_| pub_op("foo")).collect();
        b.input(publisher, &burst);
        (b, subscriber, publisher)
    }

    fn pub_op(subject: &str) -> Vec<u8> {
        let mut op = format!("PUB {subject} {}\r\n", PAYLOAD.len()).into_bytes();
        op.extend_from_slice(&PAYLOAD);
        op.extend_from_slice(b"\r\n");
        op
    }

    #[test]
    fn a_publisher_pauses_for_a_full_subscriber_and_resumes_when_it_drains() {
        let (mut b, subscriber, publisher) = publishing_to_a_subscriber(6);
        // Past 3 KiB pending after the fourth message: the publisher pauses there, its receive
        // is to be cancelled, and the rest of what it sent waits, unparsed.
        let conn = &b.core.conns[publisher];
        assert!(matches!(conn.paused, Some(PauseCause::Subscriber(_))));
        assert_eq!(conn.recv, RecvState::Cancelling);
        assert_eq!(b.core.conns.to_cancel, vec![publisher]);
        assert!(!conn.held.is_empty());
        assert_eq!(b.core.stats.publisher_pauses, 1);
        assert_eq!(b.core.stats.in_msgs, 4);
        b.receive_ended(publisher);

        assert!(!b.core.resume_paused(), "the subscriber has not drained");
        assert_eq!(msgs(&b.output(subscriber)), 4);
        assert!(b.core.resume_paused(), "drained: the publisher goes on");
        assert_eq!(b.core.conns[publisher].paused, None);
        assert_eq!(b.core.stats.in_msgs, 6, "what it had sent is handled first");
        assert_eq!(b.core.conns.to_arm, vec![publisher], "then it reads again");
        assert_eq!(msgs(&b.output(subscriber)), 2);
        assert!(b.core.pauses.is_empty());
    }

    #[test]
    fn a_pause_ends_when_its_time_is_up_even_if_the_subscriber_never_reads() {
        let (mut b, _, publisher) = publishing_to_a_subscriber(4);
        assert!(b.core.conns[publisher].paused.is_some());
        b.core.now_ms += limits::PUBLISHER_PAUSE_MS_MAX - 1;
        assert!(!b.core.resume_paused());
        b.core.now_ms += 1;
        assert!(b.core.resume_paused());
        assert_eq!(b.core.conns[publisher].paused, None);
        // Its receive is still being cancelled: not armed again until that completes.
        assert_eq!(b.core.conns.next_to_arm(), None);
        b.receive_ended(publisher);
        b.core.conns.want_recv(publisher);
        assert_eq!(b.core.conns.next_to_arm(), Some(publisher));
    }

    #[test]
    fn a_subscriber_that_never_reads_costs_its_publisher_one_wait_per_64_kib() {
        // 1 MiB of max_pending: the high-water mark (768 KiB) is passed by the 773rd message
        // (1,018 bytes of MSG each), max_pending by the 1,031st. A wait on a subscriber that
        // took nothing meanwhile buys 64 KiB of published payload (1,000 bytes a message)
        // without another.
        assert_eq!(limits::PUBLISHER_BYTES_PER_WAIT, 65_536);
        let mut b = bench_with(1, 1024 * 1024);
        let subscriber = b.connect();
        let publisher = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        // Its socket has taken nothing since a send was queued at the start, as the loop marks
        // a send that never completes.
        b.core.conns[subscriber].write_stalled_since_ms = Some(b.core.now_ms);
        let burst: Vec<u8> = (0..1100).flat_map(|_| pub_op("foo")).collect();
        b.input(publisher, &burst);
        b.receive_ended(publisher);
        let mut waited_at = Vec::new();
        while b.core.conns[publisher].paused.is_some() {
            waited_at.push(b.core.stats.in_msgs);
            b.core.now_ms += limits::PUBLISHER_PAUSE_MS_MAX;
            assert!(b.core.resume_paused());
        }
        assert_eq!(
            waited_at,
            vec![773, 839, 905, 971],
            "one wait per 65.5 messages"
        );
        assert_eq!(b.core.stats.publisher_pauses, 4);
        // The subscriber was closed once past max_pending, as nats-server closes it, and the
        // publisher went through all it had sent.
        assert_eq!(b.core.stats.slow_consumers, 1);
        assert!(!b.core.conns[subscriber].is_open());
        assert_eq!(b.core.stats.in_msgs, 1100);
    }

    #[test]
    fn a_subscriber_that_reads_slowly_is_waited_for_at_each_message_past_the_mark() {
        let mut b = bench_with(1, 1024 * 1024);
        let subscriber = b.connect();
        let publisher = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        let burst: Vec<u8> = (0..800).flat_map(|_| pub_op("foo")).collect();
        b.input(publisher, &burst);
        b.receive_ended(publisher);
        for waited_at in 773..780 {
            assert!(b.core.conns[publisher].paused.is_some());
            assert_eq!(b.core.stats.in_msgs, waited_at);
            // A send of some of its output completed during the wait, not enough to drain it.
            b.core.now_ms += limits::PUBLISHER_PAUSE_MS_MAX;
            b.core.conns[subscriber].write_stalled_since_ms = Some(b.core.now_ms - 1);
            assert!(b.core.resume_paused());
        }
        assert_eq!(b.core.conns[publisher].stuck, None);
    }

    #[test]
    fn a_receive_asked_for_is_not_armed_once_the_connection_closed() {
        let mut b = bench(1);
        let slot = b.connect();
        b.receive_ended(slot);
        b.core.conns.want_recv(slot);
        b.core.close(slot, CloseReason::ClientClosed);
        assert_eq!(b.core.conns.next_to_arm(), None);
    }

    #[test]
    fn a_peer_waiting_for_room_is_woken_once_its_queue_is_emptied() {
        let mut b = bench_with(2, 1 << 30);
        let subscriber = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        let target = b.handle(b.sub_slot(subscriber, b"1"));
        let mut sent = 1;
        while !b.peer_sends(1, b"foo", target) {
            sent += 1;
        }
        b.peer_ends_round(1);
        let mut woken = Vec::new();
        b.core.peers.end_round(|shard| woken.push(shard));
        assert!(woken.is_empty(), "nothing for peer 1 yet");
        let mut received = 0;
        while received < sent {
            b.core.drain_peers();
            received += msgs(&b.output(subscriber));
            b.peer_ends_round(1);
        }
        b.core.peers.end_round(|shard| woken.push(shard));
        assert_eq!(
            woken,
            vec![ShardId(1)],
            "emptied: the waiting sender is woken"
        );
        b.core.peers.end_round(|shard| woken.push(shard));
        assert_eq!(woken, vec![ShardId(1)], "once");
    }

    #[test]
    fn a_peer_queue_is_held_while_its_subscriber_is_full_and_released_when_it_drains() {
        let mut b = bench_with(2, MAX_PENDING_FOR_PEERS);
        let high_water = b.core.pauses.low_water_bytes() * 4;
        let subscriber = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        let target = b.handle(b.sub_slot(subscriber, b"1"));
        let total = 2 * MAX_PENDING_FOR_PEERS as usize / PAYLOAD.len();
        for _ in 0..total {
            b.peer_sends(1, b"foo", target);
        }
        b.peer_ends_round(1);

        let (took, left) = b.core.drain_peers();
        assert!(took);
        assert!(!left, "a held queue's frames are not work for now");
        assert_eq!(b.core.stats.peer_holds, 1);
        assert!(b.core.peers.any_held());
        let pending = b.core.conns[subscriber].out.pending_bytes();
        assert!(
            pending > high_water,
            "held once past the mark ({pending} B)"
        );
        assert!(b.core.conns[subscriber].is_open(), "not a slow consumer");
        let first = b.core.stats.out_msgs as usize;
        assert!(first < total);
        assert_eq!(
            b.core.drain_peers(),
            (false, false),
            "still held: nothing taken"
        );
        assert_eq!(b.core.stats.out_msgs as usize, first);

        // The subscriber reads: each drain releases the hold and takes more, until all came.
        let mut received = msgs(&b.output(subscriber));
        for _ in 0..total {
            if received == total {
                break;
            }
            b.peer_ends_round(1);
            let (took, _) = b.core.drain_peers();
            assert!(took, "drained subscriber: the hold ends");
            received += msgs(&b.output(subscriber));
        }
        assert_eq!(received, total);
        assert!(b.core.conns[subscriber].is_open());
        assert!(!b.core.peers.any_held());
        assert_eq!(b.core.stats.slow_consumers, 0);
    }

    #[test]
    fn a_held_queue_is_released_when_its_subscriber_goes_away() {
        let mut b = bench_with(2, MAX_PENDING_FOR_PEERS);
        let subscriber = b.connect();
        b.input(subscriber, b"SUB foo 1\r\n");
        let target = b.handle(b.sub_slot(subscriber, b"1"));
        let total = MAX_PENDING_FOR_PEERS as usize / PAYLOAD.len();
        for _ in 0..total {
            b.peer_sends(1, b"foo", target);
        }
        b.peer_ends_round(1);
        b.core.drain_peers();
        assert!(b.core.peers.any_held());
        let delivered = b.core.stats.out_msgs;
        b.core.close(subscriber, CloseReason::ClientClosed);
        for _ in 0..total {
            b.peer_ends_round(1);
            if !b.core.drain_peers().0 {
                break;
            }
        }
        assert!(!b.core.peers.any_held());
        assert_eq!(b.core.stats.out_msgs, delivered);
        assert_eq!(
            b.core.stats.cross_shard_stale_targets,
            total as u64 - delivered,
            "the rest had no taker"
        );
    }

    /// Shard 0 of one, whose only user `bob` has a bcrypt password (`pw`), and a connection
    /// whose CONNECT with it waits for the verifier, with a PING and a SUB behind it.
    fn waiting_for_bcrypt() -> (Bench, u32) {
        let mut options = Options::default();
        options.auth.users = Some(vec![crate::auth::User {
            username: "bob".into(),
            password: bcrypt::hash("pw", 4).unwrap(),
            ..crate::auth::User::default()
        }]);
        let mut b = Bench {
            core: Core::new(ShardId(0), Shared::for_tests(1, options), vec![None], 42),
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            clients: Vec::new(),
            from_peer: vec![None],
            to_peer: vec![None],
        };
        let client = TcpStream::connect(b.listener.local_addr().unwrap()).unwrap();
        let (server_end, _) = b.listener.accept().unwrap();
        b.clients.push(client);
        let slot = b
            .core
            .open_conn(server_end.into_raw_fd(), ConnKind::Client)
            .expect("opened");
        b.core.conns.to_arm.clear();
        let info = b.output(slot);
        assert!(info.starts_with(b"INFO ") && info.windows(13).any(|w| w == b"auth_required"));
        b.input(
            slot,
            b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"pw\"}\r\nSUB foo 1\r\nPING\r\n",
        );
        assert!(matches!(
            b.core.conns[slot].auth,
            AuthState::Verifying { .. }
        ));
        assert_eq!(b.core.conns[slot].paused, Some(PauseCause::Verifying));
        assert!(
            b.output(slot).is_empty(),
            "nothing answered while verifying"
        );
        assert!(!b.core.conns[slot].held.is_empty(), "what followed waits");
        (b, slot)
    }

    /// The identity `bob`'s CONNECT proves (what the verifier's answer carries).
    fn bobs_identity(b: &Bench) -> Arc<crate::auth::authenticate::Identity> {
        let connect = crate::proto::json::ConnectOptions {
            user: Some("bob".into()),
            pass: Some("pw".into()),
            ..Default::default()
        };
        match b.core.settings.auth.check(&connect, b"", "", None) {
            crate::auth::authenticate::Verdict::Bcrypt { identity, .. } => identity,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_connect_waiting_for_bcrypt_goes_on_with_the_answer() {
        use crate::auth::verifier::Verification;
        let (mut b, slot) = waiting_for_bcrypt();
        let (generation, check) = (
            b.core.conns[slot].generation,
            b.core.conns[slot].auth_checks,
        );
        let identity = bobs_identity(&b);
        // An answer to an older check is dropped.
        b.core.on_verified(
            slot,
            generation,
            check.wrapping_sub(1),
            None,
            Verification::Connect,
        );
        assert!(b.core.conns[slot].is_open());
        assert_eq!(b.core.conns[slot].paused, Some(PauseCause::Verifying));
        b.core.on_verified(
            slot,
            generation,
            check,
            Some(identity),
            Verification::Connect,
        );
        assert!(matches!(
            b.core.conns[slot].auth,
            AuthState::Authenticated(_)
        ));
        assert_eq!(b.core.conns[slot].paused, None);
        assert_eq!(
            b.output(slot),
            b"PONG\r\n",
            "the PING behind the CONNECT is answered"
        );
        assert_eq!(b.core.conns[slot].subs.len(), 1, "and the SUB took effect");
        assert_eq!(b.core.conns.next_to_arm(), Some(slot), "reading goes on");
    }

    #[test]
    fn a_failed_bcrypt_check_is_an_authorization_violation() {
        use crate::auth::verifier::Verification;
        let (mut b, slot) = waiting_for_bcrypt();
        let (generation, check) = (
            b.core.conns[slot].generation,
            b.core.conns[slot].auth_checks,
        );
        b.core
            .on_verified(slot, generation, check, None, Verification::Connect);
        assert_eq!(b.output(slot), b"-ERR 'Authorization Violation'\r\n");
        assert!(!b.core.conns[slot].is_open());
        assert_eq!(
            b.core.conns[slot].subs.len(),
            0,
            "the SUB behind it never ran"
        );
    }

    #[test]
    fn a_reload_during_a_bcrypt_check_checks_the_connect_again_against_the_new_users() {
        use crate::auth::verifier::Verification;
        let (mut b, slot) = waiting_for_bcrypt();
        let (generation, check) = (
            b.core.conns[slot].generation,
            b.core.conns[slot].auth_checks,
        );
        let identity = bobs_identity(&b);
        // bob is gone from the new configuration.
        let mut options = Options::default();
        options.auth.users = Some(vec![crate::auth::User {
            username: "alice".into(),
            password: "x".into(),
            ..crate::auth::User::default()
        }]);
        let settings = Settings::new(options, Default::default(), Some(&b.core.settings), None);
        b.core.reload(Arc::new(settings));
        assert_eq!(b.output(slot), b"-ERR 'Authorization Violation'\r\n");
        assert!(!b.core.conns[slot].is_open());
        // The verifier's answer for the old check comes too late to let it in.
        b.core.on_verified(
            slot,
            generation,
            check,
            Some(identity),
            Verification::Connect,
        );
        assert!(!matches!(
            b.core.conns[slot].auth,
            AuthState::Authenticated(_)
        ));
    }

    /// What a peer received from this shard: each frame's queue route and target slots.
    #[derive(Default)]
    struct Received(Vec<(Route, Vec<u32>)>);

    /// A received frame's queue route: the group and the hop count.
    type Route = Option<(Vec<u8>, u32)>;

    impl FrameSink for Received {
        fn one(&mut self, _: Message<'_>, target: Target) {
            self.0.push((None, vec![target.slot]));
        }
        fn full(&mut self, frame: Frame<'_>) {
            let route = frame.route.map(|r| (r.queue.to_vec(), r.hops));
            self.0
                .push((route, frame.targets().map(|t| t.slot).collect()));
        }
    }

    /// Peer 1 sends a queue-group frame for group `q` on `foo`, listing `members` here.
    fn queue_frame(b: &mut Bench, members: &[SubHandle], hops: u32) {
        let message = Message {
            subject: b"foo",
            reply: None,
            headers: None,
            payload: b"hi",
        };
        let targets: Vec<Target> = members.iter().map(|&m| Target::from(m)).collect();
        let route = Some(QueueRoute {
            queue: b"q",
            hops,
            account: 0,
        });
        let len = frame::encoded_len(&message, targets.len(), route);
        let link = b.from_peer[1].as_mut().unwrap();
        link.send(len, |buf| frame::encode(buf, &message, &targets, route));
        b.peer_ends_round(1);
    }

    /// Shard 0 of `shards`, and the handle of a member of group `q` on `foo` that was here
    /// and has unsubscribed (what a peer's frame still lists).
    fn bench_with_a_member_gone(shards: usize) -> (Bench, SubHandle) {
        let mut b = bench(shards);
        let gone = b.connect();
        b.input(gone, b"SUB foo q 1\r\n");
        let listed = b.handle(b.sub_slot(gone, b"1"));
        b.input(gone, b"UNSUB 1\r\n");
        (b, listed)
    }

    /// A member of group `q` on `foo` on shard 2 (slot 7), as shard 2 would have added it.
    fn member_on_shard_2(b: &Bench) {
        let elsewhere = SubHandle {
            shard: 2,
            slot: 7,
            generation: 3,
        };
        let table = &b.core.accounts[0].account.sublist;
        table.insert(b"foo", Some(b"q"), elsewhere).unwrap();
    }

    #[test]
    fn a_queue_delivery_whose_member_left_goes_to_another_member_here() {
        let mut b = bench(2);
        let gone = b.connect();
        let stays = b.connect();
        b.input(gone, b"SUB foo q 1\r\n");
        b.input(stays, b"SUB foo q 1\r\n");
        let listed = b.handle(b.sub_slot(gone, b"1"));
        b.input(gone, b"UNSUB 1\r\n");
        queue_frame(&mut b, &[listed], 0);
        b.core.drain_peers();
        assert_eq!(b.core.stats.cross_shard_stale_targets, 1);
        assert_eq!(msgs(&b.output(stays)), 1);
        assert_eq!(b.core.stats.queue_messages_passed_on, 0);
    }

    #[test]
    fn a_queue_delivery_with_no_member_left_here_is_passed_on_with_one_more_hop() {
        let (mut b, listed) = bench_with_a_member_gone(3);
        member_on_shard_2(&b);
        // 5 hops, one under the bound of 2 × shard count: still passed on.
        queue_frame(&mut b, &[listed], 5);
        b.core.drain_peers();
        assert_eq!(b.core.stats.queue_messages_passed_on, 1);
        let mut woken = Vec::new();
        b.core.peers.end_round(|shard| woken.push(shard));
        assert_eq!(woken, vec![ShardId(2)], "the new frame wakes shard 2");
        let mut received = Received::default();
        let peer_in = b.to_peer[2].as_mut().unwrap();
        peer_in.drain_chunk(&mut received);
        assert_eq!(received.0, vec![(Some((b"q".to_vec(), 6)), vec![7])]);
    }

    #[test]
    fn a_queue_delivery_with_no_member_anywhere_or_too_many_hops_is_dropped() {
        let (mut b, listed) = bench_with_a_member_gone(3);
        queue_frame(&mut b, &[listed], 0);
        b.core.drain_peers();
        assert_eq!(b.core.stats.queue_messages_dropped, 1, "no member anywhere");

        member_on_shard_2(&b);
        // 2 × shard count hops: it has gone round enough.
        queue_frame(&mut b, &[listed], 6);
        b.core.drain_peers();
        assert_eq!(b.core.stats.queue_messages_dropped, 2, "bounded hops");
        assert_eq!(b.core.stats.queue_messages_passed_on, 0);
    }

    /// Every item a chunked question gives, asking on with each cursor, `max` at a time.
    fn all_chunks<T>(mut ask: impl FnMut(Option<u32>) -> (Vec<T>, Option<u32>)) -> Vec<T> {
        let (mut all, mut cursor) = ask(None);
        let mut chunks = 1;
        while let Some(after) = cursor {
            let (more, next) = ask(Some(after));
            assert!(
                next.is_none_or(|next| next > after),
                "the cursor moves forward"
            );
            all.extend(more);
            cursor = next;
            chunks += 1;
            assert!(chunks < 10_000, "the chunks end");
        }
        all
    }

    #[test]
    fn chunks_of_open_connections_list_each_exactly_once() {
        let mut b = bench(1);
        let slots: Vec<u32> = (0..40).map(|_| b.connect()).collect();
        // Holes in the slab: closed ones (slot freed) and closing ones (slot still held).
        for &slot in slots.iter().step_by(3) {
            b.core.close(slot, CloseReason::ClientClosed);
            b.receive_ended(slot);
            b.core.release_if_done(slot);
            assert!(b.core.conns.get(slot).is_none(), "slot freed");
        }
        b.core.drain_and_close(slots[1], CloseReason::ClientClosed);
        let open: Vec<u64> = slots
            .iter()
            .filter(|&&slot| b.core.conns.get(slot).is_some_and(Conn::is_open))
            .map(|&slot| b.core.conns[slot].client_id)
            .collect();
        assert_eq!(open.len(), 40 - 14 - 1);
        for max in [1, 2, 3, 7, 512] {
            let mut listed: Vec<u64> =
                all_chunks(|after| b.core.open_connections(after, max, false))
                    .iter()
                    .map(|conn| conn.cid)
                    .collect();
            listed.sort_unstable();
            assert_eq!(listed, open, "chunks of {max}");
        }
        let (first, _) = b.core.open_connections(None, 2, false);
        assert_eq!(first.len(), 2, "a chunk holds at most max");
    }

    #[test]
    fn an_open_connection_is_described_with_its_subscriptions_when_asked() {
        let mut b = bench(1);
        let slot = b.connect();
        b.input(slot, b"SUB foo 1\r\nSUB bar q 2\r\nUNSUB 2 5\r\n");
        b.input(slot, &pub_op("foo"));
        let (conns, _) = b.core.open_connections(None, 10, true);
        let conn = &conns[0];
        assert_eq!(conn.ip, "127.0.0.1");
        assert_eq!(conn.port, b.clients[0].local_addr().unwrap().port());
        assert_eq!((conn.in_msgs, conn.out_msgs, conn.subscriptions), (1, 1, 2));
        assert_eq!(conn.account, "$G");
        assert!(conn.stop.is_none() && conn.reason.is_none());
        assert!(conn.last_activity >= conn.start);
        let mut subs = conn.subs.clone();
        subs.sort_by(|a, b| a.sid.cmp(&b.sid));
        assert_eq!(
            subs.iter()
                .map(|sub| (
                    sub.subject.as_str(),
                    sub.queue.as_deref(),
                    sub.msgs,
                    sub.max
                ))
                .collect::<Vec<_>>(),
            [("foo", None, 1, None), ("bar", Some("q"), 0, Some(5))]
        );
        assert!(subs
            .iter()
            .all(|sub| sub.cid == conn.cid && sub.account == "$G"));
        let (conns, _) = b.core.open_connections(None, 10, false);
        assert!(conns[0].subs.is_empty(), "not asked for");
    }

    #[test]
    fn chunks_of_subscriptions_list_each_exactly_once() {
        let mut b = bench(1);
        let (one, two) = (b.connect(), b.connect());
        for sid in 0..30 {
            b.input(one, format!("SUB s.{sid} {sid}\r\n").as_bytes());
            b.input(two, format!("SUB t.{sid} {sid}\r\n").as_bytes());
        }
        for sid in (0..30).step_by(4) {
            b.input(one, format!("UNSUB {sid}\r\n").as_bytes());
        }
        let cid = |slot: u32| b.core.conns[slot].client_id;
        let mut expected: Vec<(String, u64)> = (0..30)
            .filter(|sid| sid % 4 != 0)
            .map(|sid| (format!("s.{sid}"), cid(one)))
            .chain((0..30).map(|sid| (format!("t.{sid}"), cid(two))))
            .collect();
        expected.sort();
        for max in [1, 4, 2048] {
            let mut listed: Vec<(String, u64)> =
                all_chunks(|after| b.core.subscriptions(after, max))
                    .into_iter()
                    .map(|sub| (sub.subject, sub.cid))
                    .collect();
            listed.sort();
            assert_eq!(listed, expected, "chunks of {max}");
        }
    }

    #[test]
    fn a_closing_connection_is_recorded_once_with_its_reason_and_subscriptions() {
        let mut b = bench(1);
        let (client_gone, violator) = (b.connect(), b.connect());
        let client = TcpStream::connect(b.listener.local_addr().unwrap()).unwrap();
        let (server_end, _) = b.listener.accept().unwrap();
        b.clients.push(client);
        let never_connected = b
            .core
            .open_conn(server_end.into_raw_fd(), ConnKind::Client)
            .expect("opened");
        b.input(client_gone, b"SUB foo 1\r\nSUB bar 2\r\n");
        b.input(client_gone, &pub_op("foo"));
        b.input(violator, b"SUB baz 1\r\n");
        let cids: Vec<u64> = [client_gone, violator, never_connected]
            .iter()
            .map(|&slot| b.core.conns[slot].client_id)
            .collect();
        // Each is recorded once, when it stops being open: the one that drains first and
        // closes after (the client went away; a violation's -ERR) as well as the one closed
        // at once.
        b.core
            .drain_and_close(client_gone, CloseReason::ClientClosed);
        b.core.close(client_gone, CloseReason::ClientClosed);
        b.input(violator, b"FOO\r\n");
        assert!(!b.core.conns[violator].is_open());
        b.core.close(violator, CloseReason::ReadError);
        b.core.close(never_connected, CloseReason::StaleConnection);
        let records = b.core.closed.records();
        let described: Vec<_> = records
            .iter()
            .map(|record| {
                (
                    record.cid,
                    record.reason,
                    record.subscriptions,
                    record.subs.len(),
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                (cids[0], Some("Client Closed"), 2, 2),
                (cids[1], Some("Protocol Violation"), 1, 1),
                (cids[2], Some("Stale Connection"), 0, 0),
            ]
        );
        let gone = &records[0];
        assert_eq!((gone.in_msgs, gone.out_msgs), (1, 1));
        assert!(gone.stop.is_some_and(|stop| stop >= gone.start));
        assert!(
            records.windows(2).all(|w| w[0].stop <= w[1].stop),
            "oldest first"
        );
        let (open, _) = b.core.open_connections(None, 10, false);
        assert!(open.is_empty(), "closing ones are not open");
    }

    #[test]
    fn a_closed_connection_keeps_a_bounded_number_of_subscriptions() {
        let mut b = bench(1);
        let slot = b.connect();
        let many = limits::CLOSED_CONNECTION_SUBSCRIPTIONS_MAX + 10;
        let subs: Vec<u8> = (0..many)
            .flat_map(|sid| format!("SUB s.{sid} {sid}\r\n").into_bytes())
            .collect();
        b.input(slot, &subs);
        b.core.close(slot, CloseReason::ClientClosed);
        let record = &b.core.closed.records()[0];
        assert_eq!(record.subscriptions, many);
        assert_eq!(
            record.subs.len(),
            limits::CLOSED_CONNECTION_SUBSCRIPTIONS_MAX
        );
    }

    #[test]
    fn the_closed_ring_follows_max_closed_clients_and_its_reloads() {
        let mut options = Options {
            max_closed_clients: 2,
            ..Options::default()
        };
        let mut b = Bench {
            core: Core::new(
                ShardId(0),
                Shared::for_tests(1, options.clone()),
                vec![None],
                1,
            ),
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            clients: Vec::new(),
            from_peer: vec![None],
            to_peer: vec![None],
        };
        let slots: Vec<u32> = (0..4).map(|_| b.connect()).collect();
        let cids: Vec<u64> = slots
            .iter()
            .map(|&slot| b.core.conns[slot].client_id)
            .collect();
        for &slot in &slots[..3] {
            b.core.close(slot, CloseReason::ClientClosed);
        }
        let kept = |b: &Bench| -> Vec<u64> {
            b.core
                .closed
                .records()
                .iter()
                .map(|record| record.cid)
                .collect()
        };
        assert_eq!(kept(&b), cids[1..3], "the newest two");
        options.max_closed_clients = 1;
        let settings = Settings::new(
            options.clone(),
            Default::default(),
            Some(&b.core.settings),
            None,
        );
        b.core.reload(Arc::new(settings));
        assert_eq!(kept(&b), cids[2..3], "a reload lowering it trims");
        options.max_closed_clients = 0;
        let settings = Settings::new(options, Default::default(), Some(&b.core.settings), None);
        b.core.reload(Arc::new(settings));
        b.core.close(slots[3], CloseReason::ClientClosed);
        assert!(kept(&b).is_empty(), "0 keeps none");
    }

    #[test]
    fn slow_consumers_and_connections_are_counted_per_account() {
        let (mut b, subscriber, _) = publishing_to_a_subscriber(3);
        // Past max_pending (4 KiB): a slow consumer.
        let burst: Vec<u8> = (0..8).flat_map(|_| pub_op("foo")).collect();
        b.core.conns[subscriber].out.append(&burst);
        b.core.mark_dirty(subscriber);
        assert!(!b.core.conns[subscriber].is_open());
        let traffic = &b.core.account_traffic()[0];
        assert_eq!((traffic.total_connections, traffic.slow_consumers), (2, 1));
        assert_eq!(traffic.connections, 1);
    }

    #[test]
    fn table_stats_give_the_cache_figures_of_each_account() {
        // Room for every delivery: a slow consumer's close would change the table.
        let mut b = bench_with(1, MAX_PENDING_FOR_PEERS);
        let (subscriber, publisher) = (b.connect(), b.connect());
        b.input(subscriber, b"SUB foo 1\r\nSUB foo q 2\r\nSUB foo.* 3\r\n");
        for subject in ["foo", "foo", "foo.bar", "nothing"] {
            b.input(publisher, &pub_op(subject));
        }
        let stats = b.core.table_stats();
        let names: Vec<&str> = stats.iter().map(|table| table.account.as_str()).collect();
        assert_eq!(
            names,
            b.core
                .settings
                .accounts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
        );
        let global = &stats[0];
        assert_eq!(global.account, "$G");
        assert_eq!((global.matches, global.cache_hits), (4, 1));
        assert_eq!((global.cache_entries, global.cache_results), (3, 3));
        // foo: one plain and one group; foo.bar: one plain; nothing: none.
        assert_eq!((global.max_fanout, global.fanout_sum), (2, 3));
        assert_eq!(
            global.subscriptions, 0,
            "the table's own figures are not a shard's"
        );
    }

    #[test]
    fn stats_now_measure_the_queues_to_peers() {
        let mut b = bench(2);
        let subscriber_elsewhere = SubHandle {
            shard: 1,
            slot: 3,
            generation: 1,
        };
        let table = &b.core.accounts[0].account.sublist;
        table.insert(b"foo", None, subscriber_elsewhere).unwrap();
        assert_eq!(b.core.stats_now().peer_queue_bytes, 0);
        let publisher = b.connect();
        b.input(publisher, &pub_op("foo"));
        b.core.peers.end_round(|_| {});
        let queued = b.core.stats_now().peer_queue_bytes;
        assert!(queued > PAYLOAD.len() as u64, "{queued}");
        b.to_peer[1]
            .as_mut()
            .unwrap()
            .drain_chunk(&mut Received::default());
        assert_eq!(b.core.stats_now().peer_queue_bytes, 0, "taken by the peer");
    }

    /// The system connection, attached as `Control::AttachSystem` attaches it, its receive
    /// "armed"; and the service's end of the pair.
    fn attach_system(b: &mut Bench) -> (u32, std::os::unix::net::UnixStream) {
        let (shard_end, service_end) = std::os::unix::net::UnixStream::pair().unwrap();
        let slot = b.core.attach_system(shard_end).expect("attached");
        assert_eq!(b.core.conns.to_arm.pop(), Some(slot), "it reads at once");
        let conn = &mut b.core.conns[slot];
        conn.recv = RecvState::Armed;
        conn.ops_in_flight += 1;
        (slot, service_end)
    }

    #[test]
    fn the_system_connection_is_a_client_of_the_system_account_that_is_not_counted() {
        let mut b = bench(1);
        let (system, _service) = attach_system(&mut b);
        let sys = b.core.settings.system_account.expect("a system account");
        assert_eq!(b.core.conns[system].account, sys);
        assert!(b.output(system).is_empty(), "no INFO");
        b.input(system, b"SUB $SYS.REQ.SERVER.PING 1\r\nPING\r\n");
        assert_eq!(b.output(system), b"PONG\r\n", "no +OK, no async INFO");
        b.input(
            system,
            b"CONNECT {\"verbose\":true,\"user\":\"x\"}\r\nPING\r\n",
        );
        assert_eq!(b.output(system), b"PONG\r\n", "a CONNECT changes nothing");
        b.input(
            system,
            b"HPUB $SYS.REQ.SERVER.PING 12 14\r\nNATS/1.0\r\n\r\nok\r\n",
        );
        assert_eq!(
            b.output(system),
            b"HMSG $SYS.REQ.SERVER.PING 1 12 14\r\nNATS/1.0\r\n\r\nok\r\n",
            "headers and echo"
        );

        // Not counted anywhere a client is.
        assert_eq!(
            (b.core.stats.connections, b.core.stats.total_connections),
            (0, 0)
        );
        assert_eq!(b.core.shared.connections.load(Ordering::Relaxed), 0);
        let in_account = &b.core.accounts[sys.index()].account.connections;
        assert_eq!(in_account.load(Ordering::Relaxed), 0);
        let traffic = &b.core.account_traffic()[sys.index()];
        assert_eq!((traffic.connections, traffic.total_connections), (0, 0));
        assert_eq!(
            (traffic.in_msgs, traffic.out_msgs),
            (0, 0),
            "nor its traffic (nats-server counts none of its internal clients')"
        );
        assert!(b.core.open_connections(None, 10, false).0.is_empty());

        // Accounts isolate: a client of `$G` does not reach it.
        let client = b.connect();
        b.input(client, &pub_op("$SYS.REQ.SERVER.PING"));
        assert!(b.output(system).is_empty());

        // No server PINGs; lame duck passes it by.
        b.core.now_ms += 10 * limits::FIRST_PING_INTERVAL_MS;
        b.core.tick();
        assert!(b.output(system).is_empty(), "no PING");
        assert_eq!(b.core.begin_lame_duck(None), 1, "the client alone");
        let closed = b
            .core
            .close_clients(10, super::super::control::CloseCause::LameDuck);
        assert_eq!(closed, (1, 0));
        assert!(b.core.conns[system].is_open());

        // Its close is not recorded; its slot goes as any.
        b.core.close(system, CloseReason::ServerShutdown);
        b.receive_ended(system);
        b.core.release_if_done(system);
        assert!(b.core.conns.get(system).is_none());
        let records = b.core.closed.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].cid, b.core.conns[client].client_id);
        assert_eq!(b.core.stats.connections, 1, "the draining client");
    }

    #[test]
    fn no_system_account_no_system_connection() {
        let options = Options {
            no_system_account: true,
            ..Options::default()
        };
        let mut core = Core::new(ShardId(0), Shared::for_tests(1, options), vec![None], 1);
        let (shard_end, mut service_end) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(core.attach_system(shard_end).is_none());
        assert!(core.conns.is_empty());
        let mut read = [0u8; 1];
        use std::io::Read;
        assert_eq!(service_end.read(&mut read).unwrap(), 0, "its end is closed");
    }

    #[test]
    fn clients_are_announced_to_the_system_service_when_they_connect_and_close() {
        use crate::stats::SystemEvent;
        let mut b = bench(1);
        let (events, heard) = std::sync::mpsc::channel();
        b.core.shared.set_system_events(events).unwrap();
        let (system, _service) = attach_system(&mut b);
        let client = b.connect();
        let cid = b.core.conns[client].client_id;
        match heard.try_recv() {
            Ok(SystemEvent::Connect(info)) => {
                assert_eq!((info.cid, info.account.as_str()), (cid, "$G"));
                assert!(info.stop.is_none() && info.reason.is_none() && info.subs.is_empty());
            }
            other => panic!("a connect, not {other:?}"),
        }
        // One that never sent CONNECT is not announced, nor is its close.
        let never = TcpStream::connect(b.listener.local_addr().unwrap()).unwrap();
        let (server_end, _) = b.listener.accept().unwrap();
        b.clients.push(never);
        let silent = b
            .core
            .open_conn(server_end.into_raw_fd(), ConnKind::Client)
            .expect("opened");
        b.core.close(silent, CloseReason::StaleConnection);

        b.input(client, b"SUB foo 1\r\n");
        b.input(client, &pub_op("foo"));
        b.core.drain_and_close(client, CloseReason::ClientClosed);
        b.core.close(client, CloseReason::ClientClosed);
        match heard.try_recv() {
            Ok(SystemEvent::Disconnect(info)) => {
                assert_eq!(info.cid, cid);
                assert_eq!(info.reason, Some("Client Closed"));
                assert!(info.stop.is_some());
                assert_eq!((info.in_msgs, info.out_msgs), (1, 1), "final counters");
                assert!(info.subs.is_empty());
            }
            other => panic!("a disconnect, not {other:?}"),
        }
        b.core.close(system, CloseReason::ReadError);
        assert!(heard.try_recv().is_err(), "nothing else, once each");
    }
}
