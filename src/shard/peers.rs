//! The shard's state for cross-shard delivery (DESIGN §6; the delivery itself is
//! `peer_routing`): for every other shard, the sending
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

use super::conn::SubscriberWait;
use crate::sublist::SubHandle;
use crate::xshard::frame::Target;
use crate::xshard::link::{Incoming, Outgoing, PeerLink};
use crate::xshard::ShardId;

/// Everything this shard keeps about one peer (its receiving half is in `Peers::incoming`).
pub struct Peer {
    pub(super) link: PeerLink,
    /// Targets on this peer for the message being routed (reused, so no allocation).
    pub(super) targets: Vec<Target>,
    /// Some exactly while this peer's incoming queue is not drained because a subscriber here
    /// that its frames feed is over the high-water mark.
    pub(super) hold: Option<SubscriberWait>,
    /// This peer is to be woken at the end of the round even if it gets no new frames: it
    /// waits for room in the queue from it, which this shard has just emptied.
    pub(super) wake: bool,
}

/// The other shards, indexed by shard id (this shard's own entry is None).
#[derive(Default)]
pub struct Peers {
    pub(super) by_shard: Vec<Option<Peer>>,
    /// The receiving half of each link from a peer, by shard id; taken out of `Peers` while
    /// its frames are delivered (delivery needs the whole shard).
    pub(super) incoming: Vec<Option<Incoming>>,
    /// Peers with targets for the message being routed.
    pub(super) with_targets: Vec<ShardId>,
    /// Targets of the queue-group frame being built (reused, so no allocation).
    pub(super) queue_targets: Vec<Target>,
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
    pub(super) fn get(&mut self, shard: ShardId) -> &mut Peer {
        let Some(Some(peer)) = self.by_shard.get_mut(shard.index()) else {
            unreachable!("shard {} is not a peer", shard.0);
        };
        peer
    }

    /// True when a publisher paused for `shard`'s queue may go on.
    pub fn drained(&mut self, shard: ShardId) -> bool {
        self.get(shard).link.drained()
    }

    /// Bytes waiting now in the queues to the peers (and their overflow), for monitoring.
    pub fn queued_bytes(&mut self) -> usize {
        self.by_shard
            .iter_mut()
            .flatten()
            .map(|peer| peer.link.queued_bytes())
            .sum()
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
