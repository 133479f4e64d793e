//! Messages between this node and its cluster routes, as a shard moves them: a local client's
//! publish forwarded to the routes whose servers want it (one `RMSG` per route at most, with the
//! queue groups whose pick landed on that route), and a message that came in on a route
//! delivered to local subscribers only.
//!
//! The forwarding rules are nats-server's (`processMsgResults`, `addSubToRouteTargets`):
//! - A route is a target when any of its remote plain subscriptions matches; a queue group
//!   picks one member over local members and the routes' weighted entries together, and a
//!   pick on a route adds the group's name to that route's line (`| q1 q2`, or `+ reply q1`).
//! - A message from a route goes to every local plain subscriber and to one local member of
//!   each queue group the line names, never to another route.
//!
//! A route's entries in the remote table (`Account::remote`) are handles with the route
//! connection's shard and slot; their generations are the connection's generation plus
//! `0..weight` (a queue weight of n is n entries, so a uniform pick over entries is the
//! weighted pick nats-server makes). `Core::reserve_route_generations` keeps that range for the
//! route alone.
//!
//! Cold: nothing here runs unless a cluster is configured (`Core::clustered`).

use std::rc::Rc;

use super::backpressure::Backlog;
use super::conn::{ConnKind, ConnState, Origin, PauseCause};
use super::core::Core;
use crate::account::AccountId;
use crate::limits;
use crate::proto::Message;
use crate::sublist::{MatchResult, SubHandle};
use crate::xshard::frame::{self, QueueRoute, Target};
use crate::xshard::ShardId;

/// One route a message goes to, and the queue groups it serves there.
#[derive(Debug)]
pub struct Forward {
    pub handle: SubHandle,
    /// Queue group names separated by spaces (empty: none).
    pub queues: Vec<u8>,
}

impl Core {
    /// `route` in a cluster: local plain delivery was done (`delivered`); queue groups pick over
    /// local and remote members, and the routes with interest get the message.
    #[inline(never)]
    pub(super) fn route_clustered(
        &mut self,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
        matched: &MatchResult,
        mut delivered: bool,
    ) -> bool {
        let view = &mut self.accounts[account.index()];
        let remote: Rc<MatchResult> = view
            .remote_cache
            .lookup(&view.account.remote, message.subject);
        let mut forwards = std::mem::take(&mut self.forwards);
        forwards.clear();
        for &handle in &remote.plain {
            forward_entry(&mut forwards, handle);
        }
        for group in &matched.queues {
            let remote_members = remote
                .queues
                .iter()
                .find(|remote| remote.name == group.name)
                .map_or(&[][..], |remote| &remote.members[..]);
            let total = group.members.len() + remote_members.len();
            let pick = if total == 0 {
                0
            } else {
                (self.random() % total as u64) as usize
            };
            if pick >= group.members.len() {
                let entry =
                    forward_entry(&mut forwards, remote_members[pick - group.members.len()]);
                add_queue(&mut entry.queues, &group.name);
                delivered = true;
            } else {
                delivered |= self.deliver_to_group(group, account, message, slot);
            }
        }
        // Groups with remote members only.
        for remote_group in &remote.queues {
            if matched
                .queues
                .iter()
                .any(|group| group.name == remote_group.name)
                || remote_group.members.is_empty()
            {
                continue;
            }
            let pick = (self.random() % remote_group.members.len() as u64) as usize;
            let entry = forward_entry(&mut forwards, remote_group.members[pick]);
            add_queue(&mut entry.queues, &remote_group.name);
        }
        if self.peers.have_targets() {
            delivered = true;
            self.send_to_peers_with_targets(slot, message);
        }
        for forward in &forwards {
            delivered = true;
            if forward.handle.shard == self.index.0 {
                let origin = Origin::Local(slot);
                self.forward_here(forward.handle, account, message, &forward.queues, origin);
            } else if self.send_forward_to_peer(forward, account, message) {
                self.pause_for_peer(slot, ShardId(forward.handle.shard));
            }
        }
        self.forwards = forwards;
        delivered
    }

    /// Sends a forward to the shard of its route: a full frame for that one route, its queue
    /// names where a queue route's name goes, marked `frame::FORWARD_HOPS`. Returns whether
    /// the peer is congested.
    fn send_forward_to_peer(
        &mut self,
        forward: &Forward,
        account: AccountId,
        message: Message<'_>,
    ) -> bool {
        let route = Some(QueueRoute {
            queue: &forward.queues,
            hops: frame::FORWARD_HOPS,
            account: account.0,
        });
        let targets = [Target::from(forward.handle)];
        let peer = self.peers.get(ShardId(forward.handle.shard));
        let len = frame::encoded_len(&message, 1, route);
        peer.link
            .send(len, |buf| frame::encode(buf, &message, &targets, route))
    }

    /// Writes `message` to the route whose remote-table entry is `handle` (on this shard):
    /// `RMSG <account> <subject> [reply] <size>` or, with queue groups, `RMSG <account>
    /// <subject> + <reply> <queues> <size>` / `| <queues>`; `HMSG` with headers when the route
    /// takes them (else the headers are dropped, as nats-server does). Returns whether it was
    /// written (the route may have closed meanwhile). A route over its high-water mark slows
    /// what feeds it as a subscriber does (`deliver`): the local publisher pauses, or the
    /// queue of the peer shard it came through is held, until the route drains; a fast
    /// publisher never takes a route to `max_pending` (which closes it as a slow consumer).
    pub(super) fn forward_here(
        &mut self,
        handle: SubHandle,
        account: AccountId,
        message: Message<'_>,
        queues: &[u8],
        origin: Origin,
    ) -> bool {
        debug_assert_eq!(handle.shard, self.index.0);
        let Some(conn) = self.conns.get_mut(handle.slot) else {
            return false;
        };
        if conn.kind != ConnKind::Route
            || conn.state != ConnState::Open
            || handle.generation.wrapping_sub(conn.generation) >= limits::ROUTE_QUEUE_WEIGHT_MAX
        {
            return false;
        }
        let Some(session) = conn.route.as_deref_mut() else {
            return false;
        };
        // A wildcard interest the route permissions' `export` only partly allows: the
        // denied subjects stay here (one branch unless such interest came).
        if session
            .export
            .as_mut()
            .is_some_and(|export| export.delivery_denied(message.subject, None))
        {
            return false;
        }
        // Interest lines another shard wrote for this route before it forwarded this message go
        // first (see `cluster::Outbox::has_pending`).
        if session.outbox.has_pending() {
            let outbox = std::sync::Arc::clone(&session.outbox);
            conn.out.append_with(|out| outbox.drain_into(out));
        }
        let message = Message {
            headers: message.headers.filter(|_| session.headers),
            ..message
        };
        // An account another shard knows and this one not yet (it applied a reload first): the
        // message waits for nobody here, as a delivery to an unknown account does.
        let Some(view) = self.accounts.get(account.index()) else {
            return false;
        };
        let name = view.account.name.as_bytes();
        // The names are written as they are kept: separated by one space.
        let queues: &[&[u8]] = if queues.is_empty() { &[] } else { &[queues] };
        conn.out.append_with(|out| {
            crate::proto::route::write_routed_message(out, Some(name), &message, queues)
        });
        let size = message.body_len() as u64;
        conn.out_msgs += 1;
        conn.out_bytes += size;
        let pending_bytes = conn.out.pending_bytes();
        let generation = conn.generation;
        self.stats.out_msgs += 1;
        self.stats.out_bytes += size;
        self.stats.route_out_msgs += 1;
        self.stats.route_out_bytes += size;
        self.mark_dirty(handle.slot);
        if self.pauses.backlog(pending_bytes) == Backlog::OverHighWater {
            let wait = self.pauses.wait_on(handle.slot, generation, self.now_ms);
            match origin {
                Origin::Local(publisher) => self.pause(publisher, PauseCause::Subscriber(wait)),
                Origin::Peer(_) => self.over_high_water = Some(wait),
                Origin::Internal => {}
            }
        }
        true
    }

    /// A message that came in on the route in `slot`, in `account`: to every local plain
    /// subscriber, and to one local member of each queue group `queues` names (space
    /// separated); never to a route.
    pub(super) fn deliver_routed(
        &mut self,
        slot: u32,
        account: AccountId,
        message: Message<'_>,
        queues: crate::proto::route::Queues<'_>,
    ) {
        let total = message.body_len() as u64;
        self.stats.in_msgs += 1;
        self.stats.in_bytes += total;
        self.stats.route_in_msgs += 1;
        self.stats.route_in_bytes += total;
        let conn = &mut self.conns[slot];
        conn.in_msgs += 1;
        conn.in_bytes += total;
        let matched = self.accounts[account.index()].lookup(message.subject);
        // Matched by its subject, delivered as JetStream asks (`$JS.ACK...@<subject>`).
        let message = jetstream_ack_split(message);
        self.deliver_plain(&matched, message, slot);
        if !queues.is_empty() {
            for group in &matched.queues {
                if { queues }.any(|name| name == &*group.name) {
                    self.deliver_to_group(group, account, message, slot);
                }
            }
        }
        if self.peers.have_targets() {
            self.send_to_peers_with_targets(slot, message);
        }
        // A response to a request that crossed into this account from another here.
        let answers = self.accounts[account.index()]
            .links
            .as_ref()
            .is_some_and(|links| links.answers_requests);
        if answers {
            self.follow_response(account, message, slot, 0);
        }
    }
}

/// A message a JetStream server routes to a consumer's deliver subject carries the subject
/// the client should see after an `@` in its reply (`$JS.ACK.<stream>.<consumer>...@<subject>`,
/// at least 8 dots before the `@`): the client gets that subject, and the reply without it.
/// nats-server's `processInboundRoutedMsg` makes the same split.
fn jetstream_ack_split(message: Message<'_>) -> Message<'_> {
    let Some(reply) = message.reply else {
        return message;
    };
    if !reply.starts_with(b"$JS.ACK.") {
        return message;
    }
    let Some(at) = memchr::memrchr(b'@', reply) else {
        return message;
    };
    let (ack, shown) = (&reply[..at], &reply[at + 1..]);
    if shown.is_empty() || memchr::memchr_iter(b'.', ack).count() < 8 {
        return message;
    }
    Message {
        subject: shown,
        reply: Some(ack),
        ..message
    }
}

/// The forward to `handle`'s route, added if it is not there yet (one per route connection:
/// entries of one route differ in generation only).
fn forward_entry(forwards: &mut Vec<Forward>, handle: SubHandle) -> &mut Forward {
    let index = match forwards.iter().position(|forward| {
        forward.handle.shard == handle.shard && forward.handle.slot == handle.slot
    }) {
        Some(index) => index,
        None => {
            forwards.push(Forward {
                handle,
                queues: Vec::new(),
            });
            forwards.len() - 1
        }
    };
    &mut forwards[index]
}

fn add_queue(queues: &mut Vec<u8>, name: &[u8]) {
    if !queues.is_empty() {
        queues.push(b' ');
    }
    queues.extend_from_slice(name);
}

/// Where a frame from a peer names a route (`frame::FORWARD_HOPS`): written to it here.
pub(super) fn is_forward(route: &QueueRoute<'_>) -> bool {
    route.hops == frame::FORWARD_HOPS
}

/// The remote-table handle of a route's `copy`-th entry (see the module docs).
pub(super) fn route_handle(shard: ShardId, slot: u32, generation: u32, copy: u32) -> SubHandle {
    SubHandle {
        shard: shard.0,
        slot,
        generation: generation.wrapping_add(copy),
    }
}
