//! The shard's side of cross-shard delivery (DESIGN §6): for every other shard, the sending
//! link to it (`xshard::link::PeerLink`), the receiving half of the link from it, the targets
//! collected there for the message being routed, and whether its queue is held.
//!
//! Sending: a message matching subscriptions on a peer is encoded once per peer, with the list
//! of that peer's targets (`send_to_peer`), or as a one-target frame when its only match is one
//! subscription there (`send_to_one`). At the end of a loop round every peer given new frames,
//! and every peer waiting for room in a queue this shard emptied, gets one wake-up
//! (`IORING_OP_MSG_RING`, `Peers::end_round`).
//!
//! Receiving: on a wake-up (or whenever a queue is not empty) frames are drained with a byte
//! budget per round, and each target is revalidated (slot generation) before delivery. When a
//! delivery takes a subscriber here over its high-water mark, that peer's queue is held: the
//! queue then fills and the sending shard pauses the publisher, as a local one would be.
//!
//! With one shard none of this runs: `Peers` is empty.

use std::sync::atomic::Ordering;

use super::conn::{Origin, SubscriberWait};
use super::core::Core;
use super::ring::{OpKind, Token};
use super::Shard;
use crate::account::AccountId;
use crate::limits;
use crate::proto::Message;
use crate::sublist::{QueueGroup, SubHandle};
use crate::xshard::frame::{self, Frame, QueueRoute, Target};
use crate::xshard::link::{FrameSink, Incoming, Outgoing, PeerLink};
use crate::xshard::ShardId;

/// Everything this shard keeps about one peer (its receiving half is in `Peers::incoming`).
pub struct Peer {
    link: PeerLink,
    /// Targets on this peer for the message being routed (reused, so no allocation).
    targets: Vec<Target>,
    /// Some exactly while this peer's incoming queue is not drained because a subscriber here
    /// that its frames feed is over the high-water mark.
    hold: Option<SubscriberWait>,
    /// This peer is to be woken at the end of the round even if it gets no new frames: it
    /// waits for room in the queue from it, which this shard has just emptied.
    wake: bool,
}

/// The other shards, indexed by shard id (this shard's own entry is None).
#[derive(Default)]
pub struct Peers {
    by_shard: Vec<Option<Peer>>,
    /// The receiving half of each link from a peer, by shard id; taken out of `Peers` while
    /// its frames are delivered (delivery needs the whole shard).
    incoming: Vec<Option<Incoming>>,
    /// Peers with targets for the message being routed.
    with_targets: Vec<ShardId>,
    /// Targets of the queue-group frame being built (reused, so no allocation).
    queue_targets: Vec<Target>,
}

impl Peers {
    /// `links[i]` is the link to and from shard `i`: None for `own`.
    pub fn new(links: Vec<Option<(Outgoing, Incoming)>>) -> Peers {
        let (by_shard, incoming) = links
            .into_iter()
            .map(|link| match link {
                Some((out, incoming)) => (
                    Some(Peer {
                        link: PeerLink::new(out),
                        targets: Vec::new(),
                        hold: None,
                        wake: false,
                    }),
                    Some(incoming),
                ),
                None => (None, None),
            })
            .unzip();
        Peers {
            by_shard,
            incoming,
            with_targets: Vec::new(),
            queue_targets: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_shard.iter().all(Option::is_none)
    }

    #[inline]
    fn get(&mut self, shard: ShardId) -> &mut Peer {
        let Some(Some(peer)) = self.by_shard.get_mut(shard.index()) else {
            unreachable!("shard {} is not a peer", shard.0);
        };
        peer
    }

    /// True when a publisher paused for `shard`'s queue may go on.
    pub fn drained(&mut self, shard: ShardId) -> bool {
        self.get(shard).link.drained()
    }

    /// True when some peer's queue is held (the loop keeps a short timer armed meanwhile).
    pub fn any_held(&self) -> bool {
        self.by_shard
            .iter()
            .flatten()
            .any(|peer| peer.hold.is_some())
    }

    /// True when a peer's queue has frames this shard may deliver now (not held): what a
    /// busy-polling shard watches besides its ring, so frames published mid-round are taken
    /// without waiting for the round's wake-up.
    pub fn frames_waiting(&self) -> bool {
        self.by_shard
            .iter()
            .zip(&self.incoming)
            .any(|(peer, incoming)| match (peer, incoming) {
                (Some(peer), Some(incoming)) => peer.hold.is_none() && !incoming.is_empty(),
                _ => false,
            })
    }

    /// Notes a subscription on another shard as a target of the message being routed.
    #[inline]
    pub fn add_target(&mut self, handle: SubHandle) {
        let shard = ShardId(handle.shard);
        let Some(Some(peer)) = self.by_shard.get_mut(shard.index()) else {
            unreachable!("shard {} is not a peer", shard.0);
        };
        if peer.targets.is_empty() {
            self.with_targets.push(shard);
        }
        peer.targets.push(Target::from(handle));
    }

    pub fn have_targets(&self) -> bool {
        !self.with_targets.is_empty()
    }

    /// At the end of a loop round: publishes what was queued for each peer and calls `wake`
    /// for each peer that needs a wake-up (it got new frames, or it waits for room in the
    /// queue from it, which this shard emptied this round).
    pub fn end_round(&mut self, mut wake: impl FnMut(ShardId)) {
        for (index, peer) in self.by_shard.iter_mut().enumerate() {
            let Some(peer) = peer else {
                continue;
            };
            // `|`, not `||`: the round's frames are published either way.
            if peer.link.end_round() | std::mem::take(&mut peer.wake) {
                wake(ShardId(index as u16));
            }
        }
    }
}

/// Where a peer's frames go: delivered on this shard.
struct FromPeer<'s> {
    shard: &'s mut Core,
    origin: Origin,
}

impl FrameSink for FromPeer<'_> {
    /// The common case, inlined into the drain loop.
    #[inline(always)]
    fn one(&mut self, message: Message<'_>, target: Target) {
        self.shard.templates.reset(false);
        self.shard.deliver_to_target(message, target, self.origin);
    }

    fn full(&mut self, frame: Frame<'_>) {
        self.shard.deliver_frame(frame, self.origin);
    }
}

impl Core {
    /// Sends `message` to the targets collected on every peer (`Peers::add_target`), then
    /// clears them; pauses `publisher` for each peer that is congested.
    pub(super) fn send_to_peers_with_targets(&mut self, publisher: u32, message: Message<'_>) {
        let mut with_targets = std::mem::take(&mut self.peers.with_targets);
        for &shard in &with_targets {
            let peer = self.peers.get(shard);
            let targets = &peer.targets;
            let len = frame::encoded_len(&message, targets.len(), None);
            let congested = peer
                .link
                .send(len, |buf| frame::encode(buf, &message, targets, None));
            peer.targets.clear();
            if congested {
                self.pause_for_peer(publisher, shard);
            }
        }
        with_targets.clear();
        self.peers.with_targets = with_targets;
    }

    /// Sends one queue-group delivery to `first`'s shard: the frame lists every member of
    /// `group` on that shard, `first` first, and that shard gives it to the first that can take
    /// it (or passes it on, see `requeue`). Returns true when the peer is congested.
    pub(super) fn send_queue_to_peer(
        &mut self,
        message: Message<'_>,
        group: &QueueGroup,
        first: SubHandle,
        hops: u32,
    ) -> bool {
        let targets = &mut self.peers.queue_targets;
        targets.clear();
        targets.push(Target::from(first));
        targets.extend(
            group
                .members
                .iter()
                .filter(|member| member.shard == first.shard && **member != first)
                .map(|&member| Target::from(member)),
        );
        let route = Some(QueueRoute {
            queue: &group.name,
            hops,
        });
        let targets = std::mem::take(&mut self.peers.queue_targets);
        let peer = self.peers.get(ShardId(first.shard));
        let len = frame::encoded_len(&message, targets.len(), route);
        let congested = peer
            .link
            .send(len, |buf| frame::encode(buf, &message, &targets, route));
        self.peers.queue_targets = targets;
        congested
    }

    /// Sends `message` to the one subscription `handle` on another shard (the message matched
    /// nothing else there): a one-target frame when it fits. Returns true when the peer is
    /// congested (the caller pauses the publisher).
    #[inline]
    pub(super) fn send_to_one(&mut self, handle: SubHandle, message: Message<'_>) -> bool {
        let target = Target::from(handle);
        let peer = self.peers.get(ShardId(handle.shard));
        match frame::one_target_len(&message) {
            Some(len) if len <= peer.link.max_frame_bytes() => peer
                .link
                .send_fitting(len, |buf| frame::encode_one_target(buf, &message, target)),
            _ => {
                let len = frame::encoded_len(&message, 1, None);
                peer.link
                    .send(len, |buf| frame::encode(buf, &message, &[target], None))
            }
        }
    }

    /// Delivers frames from every peer's queue, at most `RECV_BYTES_PER_ROUND_MAX` bytes from
    /// each this round. When a delivery takes a subscriber over its high-water mark, that
    /// peer's queue is held (not drained) until the subscriber drains or
    /// `PUBLISHER_PAUSE_MS_MAX` passes. Returns whether any frame was taken, and whether frames
    /// that can be handled now are left over.
    pub(super) fn drain_peers(&mut self) -> (bool, bool) {
        let mut took = false;
        let mut left = false;
        let mut incomings = std::mem::take(&mut self.peers.incoming);
        for (index, incoming) in incomings.iter_mut().enumerate() {
            let Some(incoming) = incoming else {
                continue;
            };
            let shard = ShardId(index as u16);
            if !self.release_hold(shard) {
                continue;
            }
            let mut drained = 0usize;
            while drained < limits::RECV_BYTES_PER_ROUND_MAX && !incoming.is_empty() {
                drained += incoming.drain_chunk(&mut FromPeer {
                    shard: &mut *self,
                    origin: Origin::Peer(shard),
                });
                if let Some(wait) = self.over_high_water.take() {
                    self.peers.get(shard).hold = Some(wait);
                    self.stats.peer_holds += 1;
                    break;
                }
            }
            took |= drained > 0;
            if self.peers.get(shard).hold.is_none() {
                left |= !incoming.is_empty();
            }
            // The sender waits for room: once the queue is empty, wake it (without this it
            // would only notice on its pause timer).
            if incoming.take_sender_waiting() {
                self.peers.get(shard).wake = true;
            }
        }
        self.peers.incoming = incomings;
        (took, left)
    }

    /// Ends the hold on `shard`'s queue when its subscriber drained, went away, or the hold
    /// timed out. Returns whether the queue may be drained now.
    fn release_hold(&mut self, shard: ShardId) -> bool {
        let Some(wait) = self.peers.get(shard).hold else {
            return true;
        };
        if self.subscriber_wait_over(wait) {
            self.peers.get(shard).hold = None;
            return true;
        }
        false
    }

    /// Delivers a full frame's message to its targets (to one of them, for a queue group).
    fn deliver_frame(&mut self, frame: Frame<'_>, origin: Origin) {
        let message = frame.message;
        match frame.route {
            None => {
                self.templates.reset(frame.targets().len() > 1);
                for target in frame.targets() {
                    self.deliver_to_target(message, target, origin);
                }
            }
            Some(route) => {
                self.templates.reset(false);
                for target in frame.targets() {
                    if self.deliver_to_target(message, target, origin) {
                        return;
                    }
                }
                self.requeue(message, route, origin);
            }
        }
    }

    /// Delivers `message` to the subscription `target` names on this shard. Returns whether it
    /// took it; a target gone meanwhile (closed, unsubscribed, limit reached) is counted.
    #[inline]
    fn deliver_to_target(&mut self, message: Message<'_>, target: Target, origin: Origin) -> bool {
        let handle = SubHandle {
            shard: self.index.0,
            slot: target.slot,
            generation: target.generation,
        };
        let taken = self.deliver(handle, origin, message);
        if !taken {
            self.stats.cross_shard_stale_targets += 1;
        }
        taken
    }

    /// A queue-group delivery none of whose listed members here could take (they closed or
    /// unsubscribed meanwhile): give it to a member of the group as the table has it now,
    /// here first, else on another shard. Bounded by `hops`, so it cannot circle forever; it
    /// is dropped only when the group has no member left anywhere (or the bound is reached).
    fn requeue(&mut self, message: Message<'_>, route: QueueRoute<'_>, origin: Origin) {
        // Cross-shard frames carry no account yet: every connection is in `$G` until the
        // accounts issue, which adds the account to the frame.
        let account = AccountId::GLOBAL.index();
        let matched = self.accounts[account].lookup(message.subject);
        let Some(group) = matched
            .queues
            .iter()
            .find(|group| &*group.name == route.queue)
        else {
            self.stats.queue_messages_dropped += 1;
            return;
        };
        let here = self.index.0;
        for &member in group.members.iter().filter(|member| member.shard == here) {
            if self.deliver(member, origin, message) {
                return;
            }
        }
        let elsewhere = group
            .members
            .iter()
            .filter(|member| member.shard != here)
            .count();
        if elsewhere == 0 || route.hops as usize >= 2 * self.shared.shard_count {
            self.stats.queue_messages_dropped += 1;
            return;
        }
        let pick = (self.random() % elsewhere as u64) as usize;
        let Some(&member) = group
            .members
            .iter()
            .filter(|member| member.shard != here)
            .nth(pick)
        else {
            return;
        };
        self.send_queue_to_peer(message, group, member, route.hops + 1);
        self.stats.queue_messages_passed_on += 1;
    }
}

impl Shard {
    /// Publishes what this round queued for each peer and wakes those peers that need it,
    /// one `MSG_RING` each.
    pub(super) fn wake_peers(&mut self) {
        let Shard { io, core, .. } = self;
        let (shared, from, stats) = (&core.shared, core.index, &mut core.stats);
        core.peers.end_round(|target| {
            let ring_fd = shared.ring_fds[target.index()].load(Ordering::Acquire);
            io.post(
                ring_fd,
                Token::new(OpKind::Mailbox, from.0 as u32, 0),
                Token::new(OpKind::WakePeer, target.0 as u32, 0),
            );
            stats.peer_wakeups += 1;
        });
    }
}
