//! Routing a published message and writing it to subscribers: the match (through the
//! shard's cache of the subject table), local deliveries, targets on other shards, one member
//! per queue group, the no-responders status, and the back-pressure a delivery causes.
//!
//! Delivery writes `MSG`/`HMSG` into each subscriber's pending outbound and marks it dirty; the
//! loop sends once per dirty connection after the whole batch of completions. A subscriber
//! taken over its high-water mark pauses a local publisher (`Origin::Local`) or holds the
//! queue of the peer it came from (`Origin::Peer`); over `max_pending` it is a slow consumer.

use std::rc::Rc;

use memchr::memchr;

use super::backpressure::Backlog;
use super::conn::{Conn, ConnState, Origin, PauseCause};
use super::core::Core;
use crate::account::AccountId;
use crate::auth::permissions::Allowed;
use crate::proto::{CloseReason, Message, ServerError};
use crate::sublist::{valid_literal_subject, MatchResult, QueueGroup, SubHandle};
use crate::xshard::ShardId;

/// `-V`: logs a delivery as nats-server traces it, for the subscriber (`->> [MSG foo 1 2]`,
/// then `->> MSG_PAYLOAD: ["..."]`). Called only when tracing is on.
fn trace_delivery(conn: &Conn, written: &[u8], payload: &[u8]) {
    let line_end = memchr(b'\r', written).unwrap_or(written.len());
    let line = String::from_utf8_lossy(&written[..line_end]);
    crate::log_trace!("{} - cid:{} - ->> [{}]", conn.peer, conn.client_id, line);
    crate::log_trace!(
        "{} - cid:{} - ->> MSG_PAYLOAD: [{:?}]",
        conn.peer,
        conn.client_id,
        String::from_utf8_lossy(payload)
    );
}

/// Whether the subject or the reply starts with `_` or `$`, as every reserved one does: two
/// loads and a table lookup each, so most publishes are done with the reserved subjects here.
#[inline(always)]
fn starts_specially(subject: &[u8], reply: Option<&[u8]>) -> bool {
    const SPECIAL: [bool; 256] = {
        let mut table = [false; 256];
        table[b'_' as usize] = true;
        table[b'$' as usize] = true;
        table
    };
    let first = |bytes: &[u8]| {
        bytes
            .first()
            .is_some_and(|&byte| SPECIAL[usize::from(byte)])
    };
    first(subject) || reply.is_some_and(first)
}

/// Whether a publish may use a subject or reply nats-server reserves (`_GR_.`, `$NRG.`; replies
/// `_R_.`, `$JS.ACK.`, `_GR_.`): two bytes each, so the common case (`_INBOX.` replies
/// included) is told apart at once and `permissions::publish_check` decides the rest.
#[inline(always)]
fn maybe_reserved(subject: &[u8], reply: Option<&[u8]>) -> bool {
    // The first two bytes as one number (0 for a shorter subject, which no prefix matches).
    let first_two = |bytes: &[u8]| match bytes {
        [first, second, ..] => u16::from_le_bytes([*first, *second]),
        _ => 0,
    };
    const fn two(prefix: &[u8; 2]) -> u16 {
        u16::from_le_bytes(*prefix)
    }
    let subject = first_two(subject);
    if subject == two(b"_G") || subject == two(b"$N") {
        return true;
    }
    match reply {
        Some(reply) => {
            let reply = first_two(reply);
            reply == two(b"_R") || reply == two(b"$J") || reply == two(b"_G")
        }
        None => false,
    }
}

impl Core {
    /// A `PUB`/`HPUB` from the client in `slot`; an `HPUB`'s empty header block was already
    /// dropped (`Message::without_empty_headers`, in `handle_op`: the fast path's `PUB` has
    /// none to drop).
    pub(super) fn on_pub(&mut self, slot: u32, message: Message<'_>) {
        let total = message.body_len();
        self.stats.in_msgs += 1;
        self.stats.in_bytes += total as u64;
        let conn = &mut self.conns[slot];
        conn.in_msgs += 1;
        conn.in_bytes += total as u64;
        let account = conn.account;
        // One test for what most publishes never need: a mapping, links, permissions, a
        // subject or reply nats-server reserves. A publisher with permissions repeating a
        // subject it was allowed is as plain.
        let plain = conn.plain || conn.publish_memo.holds(message.subject);
        if conn.options.pedantic && !valid_literal_subject(message.subject) {
            // nats-server reports it and still acks and routes the message (a wildcard in a
            // published subject is plain text, so it may still match a wildcard subscription).
            self.protocol_error(slot, &ServerError::InvalidPublishSubject);
        }
        if !plain
            || (starts_specially(message.subject, message.reply)
                && (maybe_reserved(message.subject, message.reply)
                    || (starts_specially(message.subject, None)
                        && self.accounts[account.index()].links.is_some())))
        {
            return self.publish_checked(slot, account, message);
        }
        self.publish_as_is(slot, account, message, false);
    }

    /// A publish that passed every check: `+OK` if verbose, then delivered in its account and
    /// across its account's links; a request nobody received gets the no-responders status.
    /// `links`: the account may have links to follow (never for a plain publisher).
    #[inline(always)]
    fn publish_as_is(&mut self, slot: u32, account: AccountId, message: Message<'_>, links: bool) {
        self.reply_ok(slot);
        if message.reply.is_some() {
            self.request_routed = true;
        }
        let mut delivered = self.route(account, message, slot);
        if links {
            delivered |= self.follow_links(account, message, slot, 0);
        }
        if !delivered {
            if let Some(reply) = message.reply {
                self.send_no_responders(slot, message.subject, reply);
            }
        }
    }

    /// A publish that needs its account's mapping or links or its connection's permissions
    /// (or may use a reserved subject), as nats-server processes it: the subject is mapped
    /// first, then checked; a violation gets its `-ERR` (the connection stays open) and goes
    /// nowhere. Kept out of line so the plain path stays small.
    #[inline(never)]
    fn publish_checked(&mut self, slot: u32, account: AccountId, message: Message<'_>) {
        let mut mapped = std::mem::take(&mut self.mapped_subject);
        let mut message = message;
        // Borrowed, not cloned: an `Arc` clone per message would bump a count every shard
        // shares.
        let (accounts, rng) = (&self.accounts, &mut self.rng);
        if let Some(table) = accounts[account.index()].mappings.as_deref() {
            mapped.clear();
            let mut random = || super::core::next_random(rng) as u32;
            if let Some(subject) = table.map(message.subject, &mut random, &mut mapped) {
                if crate::log::enabled_trace() {
                    let conn = &self.conns[slot];
                    crate::log_trace!(
                        "{} - cid:{} - <<- [MAPPING {} -> {}]",
                        conn.peer,
                        conn.client_id,
                        String::from_utf8_lossy(message.subject),
                        String::from_utf8_lossy(subject)
                    );
                }
                message.subject = subject;
            }
        }
        let in_system_account = self.settings.system_account == Some(account);
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        let reply = message.reply.unwrap_or_default();
        let checked = crate::auth::permissions::publish_check(
            conn.permissions.as_deref_mut(),
            message.subject,
            reply,
            in_system_account,
            now_ms,
        );
        match checked {
            Ok(allowed) => {
                let view = &self.accounts[account.index()];
                // Remembered only where nothing else needs a check (the path is cleared when
                // that changes: `Conn::set_publish_path`), and only a subject the permissions
                // allow by rule (not as a counted response).
                if view.plain && conn.permissions.is_some() && allowed == Allowed::ByRule {
                    conn.publish_memo.set(message.subject);
                }
                let links = view.links.is_some();
                self.publish_as_is(slot, account, message, links)
            }
            Err(violation) => {
                crate::log_error!(
                    "{} - cid:{} - {}",
                    conn.peer,
                    conn.client_id,
                    violation.log_text(message.subject, reply)
                );
                let text = violation.error_text(message.subject, reply);
                conn.out
                    .append_with(|out| crate::proto::writer::write_err_text(out, &text));
                self.mark_dirty(slot);
            }
        }
        self.mapped_subject = mapped;
    }

    /// Delivers `message`, published by the client in `slot`, to every subscription in
    /// `account` it matches: here, through peer queues to the others, one member per queue
    /// group; and, in a cluster, to the routes whose servers want it (`route_clustered`).
    /// Returns whether anyone is to receive it.
    #[inline(always)]
    pub(super) fn route(&mut self, account: AccountId, message: Message<'_>, slot: u32) -> bool {
        let matched: Rc<MatchResult> = self.accounts[account.index()].lookup(message.subject);
        let mut delivered = self.deliver_plain(&matched, message, slot);
        if self.clustered {
            return self.route_clustered(account, message, slot, &matched, delivered);
        }
        for group in &matched.queues {
            delivered |= self.deliver_to_group(group, account, message, slot);
        }
        if self.peers.have_targets() {
            delivered = true;
            self.send_to_peers_with_targets(slot, message);
        }
        delivered
    }

    /// The plain subscribers of a match: here at once, on other shards collected as the
    /// peers' targets (sent by the caller). Returns whether anyone here or elsewhere is to
    /// receive it.
    #[inline(always)]
    pub(super) fn deliver_plain(
        &mut self,
        matched: &MatchResult,
        message: Message<'_>,
        slot: u32,
    ) -> bool {
        let origin = Origin::Local(slot);
        let mut delivered = false;
        self.templates.reset(matched.plain.len() > 1);
        match *matched.plain {
            // The only subscription is on another shard (the cross-shard 1 → 1 stream): a
            // one-target frame, without collecting targets per peer.
            [handle] if handle.shard != self.index.0 => {
                delivered = true;
                if self.send_to_one(handle, message) {
                    self.pause_for_peer(slot, ShardId(handle.shard));
                }
            }
            _ => {
                for &handle in &matched.plain {
                    if handle.shard == self.index.0 {
                        delivered |= self.deliver(handle, origin, message);
                    } else {
                        self.peers.add_target(handle);
                    }
                }
            }
        }
        delivered
    }

    /// One member of `group` gets the message: start at a random member, take the first that
    /// can take it. A member on another shard gets a frame listing the group's members there;
    /// that shard gives it to one of them or passes it on (see `requeue`). Returns whether a
    /// member is to receive it.
    #[inline(always)]
    pub(super) fn deliver_to_group(
        &mut self,
        group: &QueueGroup,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
    ) -> bool {
        let members = group.members.len();
        if members == 0 {
            return false;
        }
        let start = (self.random() % members as u64) as usize;
        for offset in 0..members {
            let member = group.members[(start + offset) % members];
            if member.shard != self.index.0 {
                if self.send_queue_to_peer(message, group, member, account, 0) {
                    self.pause_for_peer(slot, ShardId(member.shard));
                }
                return true;
            }
            if self.deliver(member, Origin::Local(slot), message) {
                return true;
            }
        }
        false
    }

    /// Pauses the publisher in `slot` until the queue to `shard` drains.
    pub(super) fn pause_for_peer(&mut self, slot: u32, shard: ShardId) {
        self.pause(slot, PauseCause::Peer(shard));
    }

    /// A request nobody received: a publisher that asked for it gets a 503 status message on
    /// its own subscription matching the reply subject.
    fn send_no_responders(&mut self, slot: u32, subject: &[u8], reply: &[u8]) {
        let conn = &self.conns[slot];
        if !conn.is_open() || !conn.options.no_responders || !conn.options.headers {
            return;
        }
        let account = conn.account.index();
        let matched = self.accounts[account].lookup(reply);
        let own = matched.plain.iter().copied().find(|handle| {
            self.conns
                .subs
                .get(handle.slot as usize)
                .is_some_and(|sub| sub.generation == handle.generation && sub.conn_slot == slot)
        });
        let Some(handle) = own else { return };
        let mut headers = std::mem::take(&mut self.scratch);
        headers.clear();
        crate::proto::writer::write_no_responders_headers(&mut headers, subject);
        let message = Message {
            subject: reply,
            reply: None,
            headers: Some(&headers),
            payload: b"",
        };
        self.templates.reset(false);
        // Internal: the status pauses nobody (it used to be taken for a peer's frame, which
        // could hold a peer queue for up to PUBLISHER_PAUSE_MS_MAX for nothing).
        self.deliver(handle, Origin::Internal, message);
        self.scratch = headers;
    }

    /// Writes `message` to one subscription on this shard. `origin` decides echo and what
    /// back-pressure does. The frame comes from `self.templates`, which the caller resets
    /// before the first delivery of each message. Returns whether the subscriber took it.
    pub(super) fn deliver(
        &mut self,
        handle: SubHandle,
        origin: Origin,
        message: Message<'_>,
    ) -> bool {
        debug_assert_eq!(
            handle.shard, self.index.0,
            "a subscription on another shard is delivered through its peer queue"
        );
        let Some(sub) = self.conns.subs.get_mut(handle.slot as usize) else {
            return false;
        };
        if sub.generation != handle.generation {
            return false;
        }
        let Some(conn) = self.conns.slots.get_mut(sub.conn_slot as usize) else {
            return false;
        };
        if conn.generation != sub.conn_generation || conn.state != ConnState::Open {
            return false;
        }
        if !conn.options.echo
            && matches!(origin, Origin::Local(publisher) if publisher == sub.conn_slot)
        {
            return false;
        }
        if let Some(permissions) = conn.permissions.as_deref_mut() {
            // A subscription that overlaps a denied subject does not get it; a request to a
            // user allowed to respond lets it publish the response.
            if permissions.delivery_denied(message.subject, sub.queue()) {
                return false;
            }
            if let Some(reply) = message.reply {
                permissions.note_request_delivered(reply, self.now_ms);
            }
        }
        let written = conn.out.append_with(|pending| {
            self.templates
                .write(pending, message, sub.sid(), conn.options.headers)
        });
        if crate::log::enabled_trace() {
            trace_delivery(conn, conn.out.last_written(written), message.payload);
        }
        // Counted as nats-server counts (`msgSize` in `deliverMsg`): the message's headers and
        // payload as this subscriber gets them, not the bytes of the MSG line.
        let size = if conn.options.headers {
            message.body_len()
        } else {
            message.payload.len()
        } as u64;
        conn.out_msgs += 1;
        conn.out_bytes += size;
        self.stats.out_msgs += 1;
        self.stats.out_bytes += size;
        sub.delivered += 1;
        let sub_done = sub.delivered >= sub.max;
        let subscriber = sub.conn_slot;
        let pending_bytes = conn.out.pending_bytes();
        // `ConnTable::mark`, written out: `conn` and `sub` still borrow the table's slabs.
        if !conn.dirty {
            conn.dirty = true;
            self.conns.dirty.push(subscriber);
        }
        if sub_done {
            self.remove_sub(handle.slot);
        }
        match self.pauses.backlog(pending_bytes) {
            Backlog::Fine => {}
            Backlog::SlowConsumer => self.slow_consumer(subscriber),
            Backlog::OverHighWater => {
                let generation = self.conns[subscriber].generation;
                let wait = self.pauses.wait_on(subscriber, generation, self.now_ms);
                match origin {
                    Origin::Local(publisher) if publisher != subscriber => {
                        self.pause(publisher, PauseCause::Subscriber(wait));
                    }
                    Origin::Local(_) | Origin::Internal => {}
                    // The queue it came through is held (see `drain_peers`).
                    Origin::Peer(_) => self.over_high_water = Some(wait),
                }
            }
        }
        true
    }

    /// A subscriber over max_pending: nats-server sends no -ERR; it logs, counts and closes.
    pub(super) fn slow_consumer(&mut self, slot: u32) {
        let conn = &self.conns[slot];
        crate::log_notice!(
            "{} - {}:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            conn.peer,
            if conn.kind == super::conn::ConnKind::Route {
                "rid"
            } else {
                "cid"
            },
            conn.client_id,
            self.settings.options.max_pending
        );
        self.stats.slow_consumers += 1;
        self.close(slot, CloseReason::SlowConsumerPendingBytes);
    }
}
