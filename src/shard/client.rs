//! What a shard does with the bytes a client sent: parse in place (carrying only a trailing
//! partial operation), act on each operation, and deliver messages to matching subscribers.
//!
//! Delivery writes `MSG`/`HMSG` into each subscriber's pending outbound and marks it dirty; the
//! loop sends once per dirty connection after the whole batch of completions.

use std::rc::Rc;

use memchr::memchr;

use super::conn::{ConnState, PauseCause, Subscription};
use super::Shard;
use crate::limits;
use crate::proto::json::{parse_connect_onto, write_info};
use crate::proto::writer::write_err;
use crate::proto::{CloseReason, Op, ServerError, Step};
use crate::route::frame::Target;
use crate::sublist::{valid_literal_subject, MatchResult, SubHandle};

const OK: &[u8] = b"+OK\r\n";
const PONG: &[u8] = b"PONG\r\n";

/// A message being routed: everything a subscriber's `MSG`/`HMSG` is made of. The same parts a
/// cross-shard frame carries, so a frame is encoded from it and decoded back into it as is.
pub(super) use crate::route::frame::Parts as Message;

/// `-V`: logs a delivery as nats-server traces it, for the subscriber (`->> [MSG foo 1 2]`,
/// then `->> MSG_PAYLOAD: ["..."]`). Called only when tracing is on.
fn trace_delivery(conn: &super::conn::Conn, written: &[u8], payload: &[u8]) {
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

impl Shard {
    /// Handles bytes received on `slot` (which is open). Completes a carried partial
    /// operation first, then parses straight from `input`; what is left of an unfinished
    /// operation is copied into the carry buffer. Returns how many bytes at the end of `input`
    /// were left unparsed because an operation paused the connection: the caller keeps them
    /// (in `Conn::held`) for when it resumes.
    pub(super) fn on_input(&mut self, slot: u32, mut input: &[u8]) -> usize {
        let conn = &mut self.conns[slot as usize];
        if !conn.carry.is_empty() {
            let mut carry = std::mem::take(&mut conn.carry);
            loop {
                let conn = &mut self.conns[slot as usize];
                match conn.carry_needed {
                    Some(total) => {
                        let take = (total - carry.len()).min(input.len());
                        carry.extend_from_slice(&input[..take]);
                        input = &input[take..];
                        if carry.len() < total {
                            conn.carry = carry;
                            return 0;
                        }
                    }
                    None => match memchr(b'\n', input) {
                        Some(end) => {
                            carry.extend_from_slice(&input[..=end]);
                            input = &input[end + 1..];
                        }
                        None => {
                            carry.extend_from_slice(input);
                            input = &[];
                        }
                    },
                }
                match conn.parser.parse(&carry) {
                    Step::Op(op, used) => {
                        debug_assert_eq!(used, carry.len(), "a carried op ends the carry");
                        conn.carry_needed = None;
                        self.handle_op(slot, op);
                        break;
                    }
                    Step::Pending { needed } => {
                        conn.carry_needed = needed;
                        if let Some(total) = needed {
                            carry.reserve(total.saturating_sub(carry.len()));
                        }
                        if input.is_empty() {
                            conn.carry = carry;
                            return 0;
                        }
                    }
                    Step::Error(err) => {
                        self.protocol_error(slot, &err);
                        return 0;
                    }
                }
            }
            // Keep the carry's allocation for the next partial op unless it grew large.
            carry.clear();
            if carry.capacity() <= limits::CARRY_IDLE_CAPACITY_BYTES_MAX {
                if let Some(conn) = self.conns.get_mut(slot as usize) {
                    conn.carry = carry;
                }
            }
        }
        while !input.is_empty() {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                return 0;
            };
            if !conn.is_open() {
                return 0;
            }
            if conn.paused.is_some() {
                // The last op paused the connection: the rest waits, unparsed, so a paused
                // publisher routes nothing more until it resumes. The caller keeps it.
                return input.len();
            }
            if let Some(parts) = conn.parser.parse_pub(input) {
                input = &input[parts.used..];
                let message = Message {
                    subject: parts.subject,
                    reply: parts.reply,
                    headers: None,
                    payload: parts.payload,
                };
                if crate::log::enabled_trace() {
                    self.trace_op(
                        slot,
                        &Op::Pub {
                            subject: message.subject,
                            reply: message.reply,
                            payload: message.payload,
                        },
                    );
                }
                self.on_pub(slot, message);
                continue;
            }
            match conn.parser.parse(input) {
                Step::Op(op, used) => {
                    input = &input[used..];
                    self.handle_op(slot, op);
                }
                Step::Pending { needed } => {
                    conn.carry_needed = needed;
                    conn.carry.reserve(needed.unwrap_or(0).max(input.len()));
                    conn.carry.extend_from_slice(input);
                    return 0;
                }
                Step::Error(err) => {
                    self.protocol_error(slot, &err);
                    return 0;
                }
            }
        }
        0
    }

    /// Sends the error's `-ERR` (if it has one) and closes when nats-server would.
    fn protocol_error(&mut self, slot: u32, err: &ServerError) {
        if err.closes() {
            // Output already queued (and the -ERR, if any) is flushed before the close.
            self.send_error_and_drain(slot, err);
        } else {
            write_err(&mut self.conns[slot as usize].out.pending, err);
            self.mark_dirty(slot);
        }
    }

    fn handle_op(&mut self, slot: u32, op: Op<'_>) {
        if crate::log::enabled_trace() {
            self.trace_op(slot, &op);
        }
        match op {
            Op::Pub {
                subject,
                reply,
                payload,
            } => self.on_pub(
                slot,
                Message {
                    subject,
                    reply,
                    headers: None,
                    payload,
                },
            ),
            Op::Hpub {
                subject,
                reply,
                headers,
                payload,
            } => self.on_pub(
                slot,
                Message {
                    subject,
                    reply,
                    // nats-server keys HMSG on a header size above zero (`pa.hdr > 0`): an
                    // `HPUB` with an empty header block is delivered as a plain MSG.
                    headers: (!headers.is_empty()).then_some(headers),
                    payload,
                },
            ),
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.on_sub(slot, subject, queue, sid),
            Op::Unsub { sid, max } => self.on_unsub(slot, sid, max),
            Op::Ping => self.on_ping(slot),
            Op::Pong => {
                self.conns[slot as usize].pings_outstanding = 0;
            }
            Op::Connect { json } => self.on_connect(slot, json),
            Op::Ok | Op::Err | Op::Info => {}
        }
    }

    /// `-V`: logs an inbound operation as nats-server traces it (`<<- [PUB foo 2]`, then the
    /// payload as `<<- MSG_PAYLOAD: ["..."]`). Off the hot path unless tracing is on.
    fn trace_op(&self, slot: u32, op: &Op<'_>) {
        let conn = &self.conns[slot as usize];
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let with_reply =
            |reply: &Option<&[u8]>| reply.map(|r| format!(" {}", text(r))).unwrap_or_default();
        let (line, payload) = match op {
            Op::Connect { json } => (format!("CONNECT {}", text(json)), None),
            Op::Pub {
                subject,
                reply,
                payload,
            } => (
                format!(
                    "PUB {}{} {}",
                    text(subject),
                    with_reply(reply),
                    payload.len()
                ),
                Some(*payload),
            ),
            Op::Hpub {
                subject,
                reply,
                headers,
                payload,
            } => (
                format!(
                    "HPUB {}{} {} {}",
                    text(subject),
                    with_reply(reply),
                    headers.len(),
                    headers.len() + payload.len()
                ),
                Some(*payload),
            ),
            Op::Sub {
                subject,
                queue,
                sid,
            } => (
                format!("SUB {}{} {}", text(subject), with_reply(queue), text(sid)),
                None,
            ),
            Op::Unsub { sid, max } => (
                format!(
                    "UNSUB {}{}",
                    text(sid),
                    max.map(|m| format!(" {m}")).unwrap_or_default()
                ),
                None,
            ),
            Op::Ping => ("PING".to_string(), None),
            Op::Pong => ("PONG".to_string(), None),
            Op::Ok => ("+OK".to_string(), None),
            Op::Err => ("-ERR".to_string(), None),
            Op::Info => ("INFO".to_string(), None),
        };
        crate::log_trace!("{} - cid:{} - <<- [{}]", conn.peer, conn.client_id, line);
        if let Some(payload) = payload {
            crate::log_trace!(
                "{} - cid:{} - <<- MSG_PAYLOAD: [{:?}]",
                conn.peer,
                conn.client_id,
                text(payload)
            );
        }
    }

    fn reply_ok(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        if conn.options.verbose {
            conn.out.pending.extend_from_slice(OK);
            self.mark_dirty(slot);
        }
    }

    fn on_connect(&mut self, slot: u32, json: &[u8]) {
        // A later CONNECT is applied on top of the earlier one, as nats-server does.
        let options = match parse_connect_onto(json, &self.conns[slot as usize].options) {
            Ok(options) => options,
            Err(err) => return self.protocol_error(slot, &err),
        };
        if let Err(err) = options.check() {
            return self.protocol_error(slot, &err);
        }
        let headers_allowed = !self.shared.options.no_header_support;
        let conn = &mut self.conns[slot as usize];
        conn.parser.headers = options.headers && headers_allowed;
        conn.options = options;
        conn.options.headers = conn.parser.headers;
        conn.connected = true;
        self.reply_ok(slot);
    }

    fn on_ping(&mut self, slot: u32) {
        let conn = &mut self.conns[slot as usize];
        conn.out.pending.extend_from_slice(PONG);
        // The first PING after CONNECT from a protocol-1 client also gets the async INFO with
        // connect_info (nats-server does this so clients learn what CONNECT established).
        if conn.connected && !conn.sent_connect_info && conn.options.protocol >= 1 {
            conn.sent_connect_info = true;
            let mut info = self.shared.info.clone();
            info.client_id = conn.client_id;
            info.client_ip = conn
                .peer
                .rsplit_once(':')
                .map(|(ip, _)| ip.to_string())
                .unwrap_or_default();
            info.connect_info = true;
            info.remote_account = Some("$G".to_string());
            write_info(&mut conn.out.pending, &info);
        }
        self.mark_dirty(slot);
    }

    fn on_sub(&mut self, slot: u32, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        let conn = &self.conns[slot as usize];
        if conn.subs.get(sid, &self.subs).is_some() {
            // A duplicate sid is ignored (nats-server keeps the existing subscription).
            return self.reply_ok(slot);
        }
        let conn_slot = slot;
        let conn_generation = conn.generation;
        let generation = self.take_generation();
        let sub_slot = self.subs.insert(Subscription::new(
            conn_slot,
            conn_generation,
            generation,
            subject,
            sid,
            queue,
        )) as u32;
        let handle = SubHandle {
            shard: self.index,
            slot: sub_slot,
            generation,
        };
        if self.shared.sublist.insert(subject, queue, handle).is_err() {
            self.subs.remove(sub_slot as usize);
            return self.protocol_error(slot, &ServerError::InvalidSubject);
        }
        self.conns[slot as usize].subs.insert(sub_slot, &self.subs);
        self.reply_ok(slot);
    }

    fn on_unsub(&mut self, slot: u32, sid: &[u8], max: Option<u64>) {
        if let Some(sub_slot) = self.conns[slot as usize].subs.get(sid, &self.subs) {
            let sub = &mut self.subs[sub_slot as usize];
            match max {
                Some(max) if max > sub.delivered => sub.max = max,
                _ => self.remove_sub(sub_slot),
            }
        }
        self.reply_ok(slot);
    }

    /// Removes one subscription from the table, the slab and its connection.
    pub(super) fn remove_sub(&mut self, sub_slot: u32) {
        let sub = self.subs.remove(sub_slot as usize);
        let handle = SubHandle {
            shard: self.index,
            slot: sub_slot,
            generation: sub.generation,
        };
        let removed = self
            .shared
            .sublist
            .remove(sub.subject(), sub.queue(), handle);
        debug_assert!(removed, "a live subscription is in the table");
        if let Some(conn) = self.conns.get_mut(sub.conn_slot as usize) {
            if conn.generation == sub.conn_generation {
                conn.subs.remove(sub.sid(), sub_slot);
            }
        }
    }

    /// Removes every subscription of a closing connection, under one table write.
    pub(super) fn remove_all_subs(&mut self, slot: u32) {
        let mut sids = std::mem::take(&mut self.conns[slot as usize].subs);
        if sids.is_empty() {
            return;
        }
        let removed: Vec<(u32, Subscription)> = sids
            .drain()
            .map(|sub_slot| (sub_slot, self.subs.remove(sub_slot as usize)))
            .collect();
        let index = self.index;
        let count = self
            .shared
            .sublist
            .remove_many(removed.iter().map(|(sub_slot, sub)| {
                let handle = SubHandle {
                    shard: index,
                    slot: *sub_slot,
                    generation: sub.generation,
                };
                (sub.subject(), sub.queue(), handle)
            }));
        debug_assert_eq!(
            count,
            removed.len(),
            "every live subscription is in the table"
        );
    }

    fn on_pub(&mut self, slot: u32, message: Message<'_>) {
        let total = message.payload.len() + message.headers.map_or(0, <[u8]>::len);
        self.stats.in_msgs += 1;
        self.stats.in_bytes += total as u64;
        let conn = &mut self.conns[slot as usize];
        conn.in_msgs += 1;
        conn.in_bytes += total as u64;
        if conn.options.pedantic && !valid_literal_subject(message.subject) {
            // nats-server reports it and still acks and routes the message (a wildcard in a
            // published subject is plain text, so it may still match a wildcard subscription).
            self.protocol_error(slot, &ServerError::InvalidPublishSubject);
        }
        self.reply_ok(slot);

        let matched: Rc<MatchResult> = self.cache.lookup(&self.shared.sublist, message.subject);
        let mut delivered = false;
        self.templates.reset(matched.plain.len() > 1);
        match *matched.plain {
            // The only subscription is on another shard (the cross-shard 1 → 1 stream): a
            // one-target frame, without collecting targets per peer.
            [handle] if handle.shard != self.index => {
                delivered = true;
                if self.send_to_one(handle, message) {
                    let peer_index = super::remote::peer_index_of(self.index, handle.shard) as u16;
                    self.pause(slot, PauseCause::Peer(peer_index));
                }
            }
            _ => {
                for &handle in &matched.plain {
                    if handle.shard == self.index {
                        delivered |= self.deliver(handle, Some(slot), message);
                    } else {
                        self.add_peer_target(handle);
                    }
                }
            }
        }
        for group in &matched.queues {
            let members = group.members.len();
            if members == 0 {
                continue;
            }
            // One member per group: start at a random member, take the first that can take it.
            // A member on another shard gets a frame listing the group's members there; that
            // shard gives it to one of them or passes it on (see `requeue`).
            let start = (self.random() % members as u64) as usize;
            for offset in 0..members {
                let member = group.members[(start + offset) % members];
                if member.shard != self.index {
                    if self.send_queue_to_peer(message, group, member, 0) {
                        let peer_index =
                            super::remote::peer_index_of(self.index, member.shard) as u16;
                        self.pause(slot, PauseCause::Peer(peer_index));
                    }
                    delivered = true;
                    break;
                }
                if self.deliver(member, Some(slot), message) {
                    delivered = true;
                    break;
                }
            }
        }
        if !self.peers_with_targets.is_empty() {
            delivered = true;
            let mut peers = std::mem::take(&mut self.peers_with_targets);
            for &peer_index in &peers {
                if self.send_to_peer(peer_index as usize, message) {
                    self.pause(slot, PauseCause::Peer(peer_index));
                }
            }
            peers.clear();
            self.peers_with_targets = peers;
        }
        if !delivered {
            if let Some(reply) = message.reply {
                self.send_no_responders(slot, message.subject, reply);
            }
        }
    }

    /// Notes a subscription on another shard as a target of the message being routed.
    fn add_peer_target(&mut self, handle: SubHandle) {
        let peer_index = super::remote::peer_index_of(self.index, handle.shard);
        let peer = &mut self.peers[peer_index];
        if peer.targets.is_empty() {
            self.peers_with_targets.push(peer_index as u16);
        }
        peer.targets.push(Target {
            slot: handle.slot,
            generation: handle.generation,
        });
    }

    /// A request nobody received: a publisher that asked for it gets a 503 status message on
    /// its own subscription matching the reply subject.
    fn send_no_responders(&mut self, slot: u32, subject: &[u8], reply: &[u8]) {
        let conn = &self.conns[slot as usize];
        if !conn.is_open() || !conn.options.no_responders || !conn.options.headers {
            return;
        }
        let matched = self.cache.lookup(&self.shared.sublist, reply);
        let own = matched.plain.iter().copied().find(|handle| {
            self.subs
                .get(handle.slot as usize)
                .is_some_and(|sub| sub.generation == handle.generation && sub.conn_slot == slot)
        });
        let Some(handle) = own else { return };
        let mut headers = std::mem::take(&mut self.scratch);
        headers.clear();
        headers.extend_from_slice(b"NATS/1.0 503\r\nNats-Subject: ");
        headers.extend_from_slice(subject);
        headers.extend_from_slice(b"\r\n\r\n");
        let message = Message {
            subject: reply,
            reply: None,
            headers: Some(&headers),
            payload: b"",
        };
        self.templates.reset(false);
        self.deliver(handle, None, message);
        self.scratch = headers;
    }

    /// Writes `message` to one subscription. `publisher` is the publishing connection's slot
    /// when echo rules apply. The frame comes from `self.templates`, which the caller resets
    /// before the first delivery of each message. Returns whether the subscriber took it.
    pub(super) fn deliver(
        &mut self,
        handle: SubHandle,
        publisher: Option<u32>,
        message: Message<'_>,
    ) -> bool {
        debug_assert_eq!(
            handle.shard, self.index,
            "a subscription on another shard is delivered through its peer queue"
        );
        let Some(sub) = self.subs.get_mut(handle.slot as usize) else {
            return false;
        };
        if sub.generation != handle.generation {
            return false;
        }
        let Some(conn) = self.conns.get_mut(sub.conn_slot as usize) else {
            return false;
        };
        if conn.generation != sub.conn_generation || conn.state != ConnState::Open {
            return false;
        }
        if !conn.options.echo && publisher == Some(sub.conn_slot) {
            return false;
        }
        let before = conn.out.pending.len();
        self.templates.write(
            &mut conn.out.pending,
            message,
            sub.sid(),
            conn.options.headers,
        );
        let written = conn.out.pending.len() - before;
        if crate::log::enabled_trace() {
            trace_delivery(conn, &conn.out.pending[before..], message.payload);
        }
        conn.out_msgs += 1;
        conn.out_bytes += written as u64;
        self.stats.out_msgs += 1;
        self.stats.out_bytes += written as u64;
        sub.delivered += 1;
        let sub_done = sub.delivered >= sub.max;
        let subscriber = sub.conn_slot;
        let pending_bytes = conn.out.pending_bytes();
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(subscriber);
        }
        if sub_done {
            self.remove_sub(handle.slot);
        }
        if pending_bytes as u64 > self.shared.options.max_pending {
            self.slow_consumer(subscriber);
        } else if pending_bytes > self.high_water_bytes {
            let generation = self.conns[subscriber as usize].generation;
            match publisher {
                Some(publisher) if publisher != subscriber => {
                    let until_ms = self.now_ms + limits::PUBLISHER_PAUSE_MS_MAX;
                    self.pause(
                        publisher,
                        PauseCause::Subscriber {
                            slot: subscriber,
                            generation,
                            until_ms,
                        },
                    );
                }
                Some(_) => {}
                // From another shard: the queue it came through is held (see `drain_peers`).
                None => self.over_high_water = Some((subscriber, generation)),
            }
        }
        true
    }

    /// A subscriber over max_pending: nats-server sends no -ERR; it logs, counts and closes.
    pub(super) fn slow_consumer(&mut self, slot: u32) {
        let conn = &self.conns[slot as usize];
        crate::log_notice!(
            "{} - cid:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            conn.peer,
            conn.client_id,
            self.shared.options.max_pending
        );
        self.stats.slow_consumers += 1;
        self.close(slot, CloseReason::SlowConsumerPendingBytes);
    }
}
