//! Cross-shard delivery as the shard does it (DESIGN §6), over the peers' state
//! (`peers::Peers`): sending a matched message to the peers with targets, a queue-group
//! delivery to one member's shard, a one-target frame; receiving every peer's frames with a
//! byte budget, holding a peer's queue while a subscriber here is over its high-water mark,
//! and requeueing a queue delivery whose listed members are gone.

use super::conn::Origin;
use super::core::Core;
use crate::account::AccountId;
use crate::limits;
use crate::proto::Message;
use crate::sublist::{QueueGroup, SubHandle};
use crate::xshard::frame::{self, Frame, QueueRoute, Target};
use crate::xshard::link::FrameSink;
use crate::xshard::ShardId;

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
        account: AccountId,
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
            account: account.0,
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
            Some(route) if super::route_forward::is_forward(&route) => {
                for target in frame.targets() {
                    let handle = SubHandle {
                        shard: self.index.0,
                        slot: target.slot,
                        generation: target.generation,
                    };
                    let account = AccountId(route.account);
                    self.forward_here(handle, account, message, route.queue, origin);
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
        let account = AccountId(route.account);
        let Some(view) = self.accounts.get_mut(account.index()) else {
            self.stats.queue_messages_dropped += 1;
            return;
        };
        let matched = view.lookup(message.subject);
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
        self.send_queue_to_peer(message, group, member, account, route.hops + 1);
        self.stats.queue_messages_passed_on += 1;
    }
}
