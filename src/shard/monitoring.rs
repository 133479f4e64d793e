//! What a shard answers the monitor with (`Control::Stats`, `OpenConnections`,
//! `ClosedConnections`, `Subscriptions`, `Routes`, `TableStats`, `AccountTraffic`): descriptions built
//! from the shard's own state when asked, at a safe point of its loop, and the ring of closed
//! connections it keeps for `/connz?state=closed`.
//!
//! Invariants: nothing here runs per message. A connection's record is made once, when it
//! stops being open (`Core::record_closed`, from the two places a connection leaves
//! `ConnState::Open`), and never changes after (shared as `Arc<ConnInfo>`, so answering with
//! the ring copies pointers). Large answers come in chunks of a bounded number of items
//! (`limits::MONITOR_*`), each resuming after the slab slot the previous one ended at, so no
//! question pauses the shard for long whatever the number of connections or subscriptions.
//!
//! Must not: count anything on the message path; hold an answer across loop rounds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::conn::{Conn, ConnKind, Subscription, Transport};
use super::core::Core;
use crate::limits;
use crate::proto::CloseReason;
use crate::stats::{ConnInfo, RemoteInterest, RouteConnInfo, ShardStats, SubInfo, TableStats};

/// The shard's closed connections, oldest first, at most `max` of them (`max_closed_clients`;
/// 0 keeps none).
#[derive(Debug, Default)]
pub struct ClosedRing {
    records: VecDeque<Arc<ConnInfo>>,
    max: usize,
}

impl ClosedRing {
    pub fn new(max: usize) -> ClosedRing {
        ClosedRing {
            records: VecDeque::new(),
            max,
        }
    }

    /// Whether a record pushed now would be kept (so whether to make one).
    pub fn keeps_records(&self) -> bool {
        self.max > 0
    }

    /// Keeps `record` as the newest, dropping the oldest past the bound.
    pub fn push(&mut self, record: Arc<ConnInfo>) {
        if self.max == 0 {
            return;
        }
        while self.records.len() >= self.max {
            self.records.pop_front();
        }
        self.records.push_back(record);
        debug_assert!(self.records.len() <= self.max);
    }

    /// A new bound (a reload): the oldest records past it go at once.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
        let excess = self.records.len().saturating_sub(max);
        self.records.drain(..excess);
        if self.records.capacity() > 2 * max.max(16) {
            self.records.shrink_to_fit();
        }
    }

    /// Every record kept, oldest first.
    pub fn records(&self) -> Vec<Arc<ConnInfo>> {
        self.records.iter().cloned().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// The address part and the port of `peer` (`ip:port` as `Conn::peer` writes it, an IPv6
/// address without brackets); empty and 0 when it is not one.
fn split_peer(peer: &str) -> (String, u16) {
    match peer.rsplit_once(':') {
        Some((ip, port)) => (
            ip.trim_matches(['[', ']']).to_string(),
            port.parse().unwrap_or(0),
        ),
        None => (String::new(), 0),
    }
}

/// The value of a CONNECT field, when given and not empty.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|value| !value.is_empty())
}

/// The slots `from..end` of a slab, as a chunk visits them: at most `limit` of them (so a
/// sparse slab costs more chunks, not a longer one), and the cursor to resume after (`None`
/// when the chunk reached the end).
fn chunk_slots(after: Option<u32>, end: usize, limit: usize) -> (std::ops::Range<usize>, bool) {
    let from = after.map_or(0, |slot| slot as usize + 1);
    let to = end.min(from.saturating_add(limit.max(1)));
    (from.min(to)..to, to < end)
}

/// How long one monitoring answer may take a shard: describing stops when it is spent (and
/// the asker asks again from where it stopped), whatever the chunk's size, so a cold cache or
/// a slow machine makes more questions, not longer pauses.
struct Budget {
    started: std::time::Instant,
}

impl Budget {
    fn start() -> Budget {
        Budget {
            started: std::time::Instant::now(),
        }
    }

    /// Whether the time is up (a vDSO clock read: tens of nanoseconds, per item described).
    fn spent(&self) -> bool {
        self.started.elapsed().as_micros() >= u128::from(limits::MONITOR_ANSWER_BUDGET_US)
    }
}

impl Core {
    /// The counters now, with the gauges measured now (`Control::Stats`, and what the tick
    /// publishes).
    pub(super) fn stats_now(&mut self) -> ShardStats {
        self.stats.peer_queue_bytes = self.peers.queued_bytes() as u64;
        // The system services' traffic is no client's: nats-server counts neither its internal
        // clients' publishes nor deliveries to internal subscriptions. Taken out here, so the
        // per-message counters stay plain adds.
        let mut own = self.system_traffic_closed.clone();
        for &slot in &self.system_slots {
            if let Some(conn) = self.conns.get(slot) {
                own.in_msgs += conn.in_msgs;
                own.in_bytes += conn.in_bytes;
                own.out_msgs += conn.out_msgs;
                own.out_bytes += conn.out_bytes;
            }
        }
        let mut stats = self.stats;
        stats.in_msgs = stats.in_msgs.saturating_sub(own.in_msgs);
        stats.in_bytes = stats.in_bytes.saturating_sub(own.in_bytes);
        stats.out_msgs = stats.out_msgs.saturating_sub(own.out_msgs);
        stats.out_bytes = stats.out_bytes.saturating_sub(own.out_bytes);
        stats
    }

    /// The wall-clock time of the shard clock's `ms`.
    fn wall_clock(&self, ms: u64) -> SystemTime {
        self.clock_started + Duration::from_millis(ms)
    }

    /// One subscription as monitoring shows it, its connection's cid given.
    fn sub_info(&self, sub: &Subscription, cid: u64) -> SubInfo {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        SubInfo {
            account: self.settings.account_name(sub.account).to_string(),
            subject: text(sub.subject()),
            queue: sub.queue().map(text),
            sid: text(sub.sid()),
            msgs: sub.delivered,
            max: (sub.max != Subscription::NO_MAX).then_some(sub.max),
            cid,
        }
    }

    /// The subscriptions of `conn`, at most `max`.
    fn subs_of(&self, conn: &Conn, max: usize) -> Vec<SubInfo> {
        conn.subs
            .iter()
            .take(max)
            .map(|sub_slot| self.sub_info(&self.conns.subs[sub_slot as usize], conn.client_id))
            .collect()
    }

    /// The connection in `slot` as monitoring shows it while it is open, with at most
    /// `subs_max` of its subscriptions.
    pub(super) fn conn_info(&self, slot: u32, subs_max: usize) -> ConnInfo {
        let conn = &self.conns[slot];
        let (ip, port) = split_peer(&conn.peer);
        let options = &conn.options;
        let jwt_user = match &conn.auth {
            super::conn::AuthState::Authenticated(identity) => identity.jwt_user.clone(),
            _ => None,
        };
        // nats-server's `getRawAuthUser`.
        let authorized_user = if let Some(nkey) = given(&options.nkey) {
            nkey.to_string()
        } else if let Some(user) = given(&options.user) {
            user.to_string()
        } else if given(&options.jwt).is_some() {
            jwt_user
                .as_ref()
                .map(|user| user.public_key.clone())
                .unwrap_or_default()
        } else if given(&options.auth_token).is_some() {
            "[REDACTED]".to_string()
        } else {
            String::new()
        };
        let jwt = match &jwt_user {
            Some(user) if !user.bearer => options.jwt.clone().unwrap_or_default(),
            _ => String::new(),
        };
        ConnInfo {
            cid: conn.client_id,
            shard: self.index.0,
            ip,
            port,
            start: conn.start,
            last_activity: self.wall_clock(conn.last_read_ms).max(conn.start),
            stop: None,
            reason: None,
            rtt_ns: conn.rtt_ns,
            pending_bytes: conn.out.pending_bytes(),
            in_msgs: conn.in_msgs,
            in_bytes: conn.in_bytes,
            out_msgs: conn.out_msgs,
            out_bytes: conn.out_bytes,
            subscriptions: conn.subs.len(),
            name: options.name.clone(),
            lang: options.lang.clone(),
            version: options.version.clone(),
            authorized_user,
            account: self.settings.account_name(conn.account).to_string(),
            jwt,
            issuer_key: jwt_user
                .as_ref()
                .map(|user| user.issuer_key.clone())
                .unwrap_or_default(),
            name_tag: String::new(),
            tags: jwt_user
                .as_ref()
                .map(|user| user.tags.clone())
                .unwrap_or_default(),
            subs: if subs_max > 0 {
                self.subs_of(conn, subs_max)
            } else {
                Vec::new()
            },
            tls: match &conn.transport {
                Transport::Tls(session) => session.info(),
                Transport::Plain => None,
            },
        }
    }

    /// The open client connections after slot `after`, at most `max` (at least one when any
    /// is left in the slots this chunk looks at), with their subscriptions when `subs` (a
    /// chunk ends early once it described `MONITOR_SUBSCRIPTIONS_PER_CHUNK` of them); and
    /// the cursor to resume after. See `Control::OpenConnections`.
    pub(super) fn open_connections(
        &self,
        after: Option<u32>,
        max: usize,
        subs: bool,
    ) -> (Vec<ConnInfo>, Option<u32>) {
        let max = max.max(1);
        let limit = max.saturating_mul(limits::MONITOR_SLOTS_SCANNED_PER_ITEM);
        let (slots, more) = chunk_slots(after, self.conns.slots.capacity(), limit);
        // Grown, a vector of hundreds of descriptions is a large reallocation: a 100 KB copy
        // into fresh memory took a shard 2.5 ms (measured), so the chunk is small and its
        // room made at once.
        let mut found = Vec::with_capacity(max.min(limits::MONITOR_CONNECTIONS_PER_CHUNK));
        let mut subs_described = 0;
        let budget = Budget::start();
        let mut last = slots.start.checked_sub(1);
        for slot in slots {
            last = Some(slot);
            let Some(conn) = self.conns.slots.get(slot) else {
                continue;
            };
            if !conn.is_open() || conn.kind != ConnKind::Client {
                continue;
            }
            let subs_max = if subs { conn.subs.len() } else { 0 };
            let mut info = self.conn_info(slot as u32, subs_max);
            // Only open connections show their certificates (nats-server's closed records
            // leave them out).
            if let (Some(tls), Transport::Tls(session)) = (&mut info.tls, &conn.transport) {
                tls.peer_certs = session.peer_certs();
            }
            found.push(info);
            subs_described += subs_max;
            if found.len() >= max
                || subs_described >= limits::MONITOR_SUBSCRIPTIONS_PER_CHUNK
                || budget.spent()
            {
                let rest = slot + 1 < self.conns.slots.capacity();
                return (found, rest.then_some(slot as u32));
            }
        }
        (found, more.then(|| last.map(|slot| slot as u32)).flatten())
    }

    /// The subscriptions after slot `after` of the subscription slab, at most `max`, and the
    /// cursor to resume after. See `Control::Subscriptions`.
    pub(super) fn subscriptions(
        &self,
        after: Option<u32>,
        max: usize,
    ) -> (Vec<SubInfo>, Option<u32>) {
        let max = max.max(1);
        let limit = max.saturating_mul(limits::MONITOR_SLOTS_SCANNED_PER_ITEM);
        let (slots, more) = chunk_slots(after, self.conns.subs.capacity(), limit);
        let mut found = Vec::with_capacity(max.min(limits::MONITOR_SUBSCRIPTIONS_PER_CHUNK));
        let budget = Budget::start();
        let mut last = slots.start.checked_sub(1);
        for slot in slots {
            last = Some(slot);
            let Some(sub) = self.conns.subs.get(slot) else {
                continue;
            };
            let cid = self
                .conns
                .get(sub.conn_slot)
                .filter(|conn| conn.generation == sub.conn_generation)
                .map_or(0, |conn| conn.client_id);
            found.push(self.sub_info(sub, cid));
            if found.len() >= max || budget.spent() {
                let rest = slot + 1 < self.conns.subs.capacity();
                return (found, rest.then_some(slot as u32));
            }
        }
        (found, more.then(|| last.map(|slot| slot as u32)).flatten())
    }

    /// The registered routes of this shard, with the keys of interest each peer sent when
    /// `subs`. See `Control::Routes`.
    pub(super) fn routes(&self, subs: bool) -> Vec<RouteConnInfo> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        self.route_slots
            .iter()
            .filter_map(|&slot| {
                let conn = self.conns.get(slot).filter(|conn| conn.is_open())?;
                let session = conn.route.as_ref()?;
                // nats-server lists the routes it registered (`forEachRoute`).
                let peer = session.peer.as_ref()?;
                let (ip, port) = split_peer(&conn.peer);
                let mut keys: Vec<RemoteInterest> = if subs {
                    session
                        .remote_keys()
                        .map(|(account, subject, queue)| RemoteInterest {
                            account: self.settings.account_name(account).to_string(),
                            subject: text(subject),
                            queue: queue.map(text),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                keys.sort_unstable();
                Some(RouteConnInfo {
                    rid: conn.client_id,
                    shard: self.index.0,
                    remote_id: peer.server_id.clone(),
                    remote_name: peer.server_name.clone(),
                    did_solicit: session.solicited.is_some(),
                    is_configured: session
                        .solicited
                        .as_ref()
                        .is_some_and(|target| !target.implicit),
                    ip,
                    port,
                    start: conn.start,
                    last_activity: self.wall_clock(conn.last_read_ms).max(conn.start),
                    rtt_ns: conn.rtt_ns,
                    pending_bytes: conn.out.pending_bytes(),
                    in_msgs: conn.in_msgs,
                    in_bytes: conn.in_bytes,
                    out_msgs: conn.out_msgs,
                    out_bytes: conn.out_bytes,
                    peer_import: session.peer_permissions().0.clone(),
                    peer_export: session.peer_permissions().1.clone(),
                    subscriptions: session.remote_key_count(),
                    subs: keys,
                })
            })
            .collect()
    }

    /// This shard's match cache figures for each account, indexed by `AccountId` (the
    /// tables' own counts are left 0: see `Control::TableStats`).
    pub(super) fn table_stats(&self) -> Vec<TableStats> {
        self.accounts
            .iter()
            .map(|view| {
                let (max_fanout, fanout_sum, cache_results) = view.cache.fanout();
                TableStats {
                    account: view.account.name.clone(),
                    cache_entries: view.cache.len() as u64,
                    matches: view.cache.hits() + view.cache.misses(),
                    cache_hits: view.cache.hits(),
                    max_fanout: max_fanout as u64,
                    fanout_sum: fanout_sum as u64,
                    cache_results: cache_results as u64,
                    ..TableStats::default()
                }
            })
            .collect()
    }

    /// The connection in `slot` stops being open now, for `reason`: counted against its
    /// account when it is a slow consumer, and recorded in the ring of closed connections
    /// (with its subscriptions, which the caller removes next). What nats-server's
    /// `saveClosedClient` records: every client connection accepted, CONNECT or not.
    pub(super) fn record_closed(&mut self, slot: u32, reason: CloseReason) {
        let account = self.conns[slot].account;
        if matches!(
            reason,
            CloseReason::SlowConsumerPendingBytes | CloseReason::SlowConsumerWriteDeadline
        ) {
            self.accounts[account.index()].closed_traffic.slow_consumers += 1;
        }
        if !self.closed.keeps_records() {
            return;
        }
        let mut record = self.conn_info(slot, limits::CLOSED_CONNECTION_SUBSCRIPTIONS_MAX);
        record.stop = Some(SystemTime::now());
        record.reason = Some(reason.as_str());
        self.closed.push(Arc::new(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cid: u64) -> Arc<ConnInfo> {
        Arc::new(ConnInfo {
            cid,
            shard: 0,
            ip: String::new(),
            port: 0,
            start: SystemTime::UNIX_EPOCH,
            last_activity: SystemTime::UNIX_EPOCH,
            stop: None,
            reason: None,
            rtt_ns: 0,
            pending_bytes: 0,
            in_msgs: 0,
            in_bytes: 0,
            out_msgs: 0,
            out_bytes: 0,
            subscriptions: 0,
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            authorized_user: String::new(),
            account: String::new(),
            jwt: String::new(),
            issuer_key: String::new(),
            name_tag: String::new(),
            tags: Vec::new(),
            subs: Vec::new(),
            tls: None,
        })
    }

    fn cids(ring: &ClosedRing) -> Vec<u64> {
        ring.records().iter().map(|record| record.cid).collect()
    }

    #[test]
    fn the_ring_keeps_the_newest_up_to_its_bound_and_a_lower_bound_trims_it() {
        let mut ring = ClosedRing::new(3);
        for cid in 1..=5 {
            ring.push(record(cid));
        }
        assert_eq!(cids(&ring), [3, 4, 5], "oldest first, the newest kept");
        ring.set_max(2);
        assert_eq!(
            cids(&ring),
            [4, 5],
            "a reload lowering the bound trims at once"
        );
        ring.set_max(4);
        ring.push(record(6));
        ring.push(record(7));
        assert_eq!(cids(&ring), [4, 5, 6, 7]);
        ring.set_max(0);
        assert_eq!(ring.len(), 0);
        assert!(!ring.keeps_records());
        ring.push(record(8));
        assert_eq!(ring.len(), 0, "0 keeps none");
    }

    #[test]
    fn peers_split_into_address_and_port() {
        assert_eq!(split_peer("127.0.0.1:4222"), ("127.0.0.1".into(), 4222));
        assert_eq!(split_peer("::1:5000"), ("::1".into(), 5000));
        assert_eq!(split_peer("[fe80::1]:7"), ("fe80::1".into(), 7));
        assert_eq!(split_peer(""), (String::new(), 0));
    }

    #[test]
    fn chunks_of_slots_resume_after_the_cursor_and_end_at_the_end() {
        assert_eq!(chunk_slots(None, 10, 4), (0..4, true));
        assert_eq!(chunk_slots(Some(3), 10, 4), (4..8, true));
        assert_eq!(chunk_slots(Some(7), 10, 4), (8..10, false));
        assert_eq!(chunk_slots(Some(9), 10, 4), (10..10, false));
        assert_eq!(chunk_slots(Some(20), 10, 4), (10..10, false));
        assert_eq!(chunk_slots(None, 0, 4), (0..0, false));
    }
}
