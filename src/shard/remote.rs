//! The shard's side of cross-shard delivery (DESIGN §6): per peer shard, the outgoing half of
//! the queue to it and the incoming half of the queue from it.
//!
//! Sending: a message matching subscriptions on a peer is encoded once per peer, with the list
//! of that peer's target subscriptions. Frames too big for the queue travel through a side
//! channel, announced in the queue by a marker frame so order is kept. A frame that finds the
//! queue full waits in the peer's overflow list, and the publisher is paused until the queue
//! drains; the peer always drains (it is a shard, not a client), so the pause ends. At the end
//! of a loop round every peer given new frames gets one wake-up (`IORING_OP_MSG_RING`).
//!
//! Frames are appended to the queue as records, a `u32` length and the frame
//! (`Producer::append`): the records of a round share queue frames, so the queue's per-frame
//! work (room check, header, the consumer's step) is paid once per few hundred messages.
//!
//! Receiving: on a wake-up (or whenever a queue is not empty) frames are drained with a byte
//! budget per round and each target is revalidated (slot generation) before delivery.
//!
//! With one shard none of this exists: `Shard::peers` is empty.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::client::Message;
use super::conn::PauseCause;
use super::ring::{OpKind, Token};
use super::Shard;
use crate::limits;
use crate::route::frame::{self, Decoded, Frame, QueueRoute, Target};
use crate::route::spsc::{Consumer, Producer};
use crate::sublist::{QueueGroup, SubHandle};

/// Bytes of frames delivered between checks for a subscriber over its high-water mark.
const DRAIN_CHUNK_BYTES: usize = 64 * 1024;

/// The 4-byte frame that says "the next frame is in the side channel".
const LARGE_MARKER: [u8; 4] = u32::MAX.to_le_bytes();

/// Bytes of the length in front of each record in the queue.
const RECORD_LEN_BYTES: usize = 4;

/// Splits the first record (its frame) off `records`, the body of one queue frame; None when
/// none is left.
fn next_record(records: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = records.split_first_chunk::<RECORD_LEN_BYTES>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let Some(split) = rest.split_at_checked(len) else {
        unreachable!(
            "a cross-shard record of {len} bytes in {} bytes",
            rest.len()
        );
    };
    Some(split)
}

/// The sending half towards one peer.
pub struct Outgoing {
    pub producer: Producer,
    /// Frames larger than the queue's largest frame.
    pub large: Sender<Box<[u8]>>,
    /// Bytes sent through `large` and not yet taken by the peer (shared with it).
    pub large_bytes: Arc<AtomicUsize>,
    /// Set by the sender while a publisher waits for this queue to drain; the receiver clears
    /// it and wakes the sender once it has emptied the queue.
    pub sender_waiting: Arc<AtomicBool>,
}

/// The receiving half from one peer.
pub struct Incoming {
    pub consumer: Consumer,
    pub large: Receiver<Box<[u8]>>,
    pub large_bytes: Arc<AtomicUsize>,
    pub sender_waiting: Arc<AtomicBool>,
}

/// Creates the link from one shard to another: (the sender's half, the receiver's half).
pub fn link() -> (Outgoing, Incoming) {
    let (producer, consumer) = crate::route::spsc::channel(limits::PEER_QUEUE_BYTES);
    let (large_tx, large_rx) = std::sync::mpsc::channel();
    let large_bytes = Arc::new(AtomicUsize::new(0));
    let sender_waiting = Arc::new(AtomicBool::new(false));
    (
        Outgoing {
            producer,
            large: large_tx,
            large_bytes: Arc::clone(&large_bytes),
            sender_waiting: Arc::clone(&sender_waiting),
        },
        Incoming {
            consumer,
            large: large_rx,
            large_bytes,
            sender_waiting,
        },
    )
}

/// Everything this shard keeps about one peer.
pub struct Peer {
    pub out: Outgoing,
    /// Taken out while its frames are being delivered.
    pub incoming: Option<Incoming>,
    /// Targets on this peer for the message being routed (reused, so no allocation).
    pub targets: Vec<Target>,
    /// Encoded frames that found the queue full, oldest first.
    pub overflow: VecDeque<Box<[u8]>>,
    /// True when frames sent through the side channel may not have been taken yet (so the
    /// cheap congestion estimate, which ignores them, is not enough).
    large_in_flight: bool,
    /// Some exactly while this peer's incoming queue is not drained because a subscriber here
    /// that its frames feed is over the high-water mark (always a `PauseCause::Subscriber`).
    pub hold: Option<PauseCause>,
}

impl Peer {
    pub fn new(out: Outgoing, incoming: Incoming) -> Peer {
        Peer {
            out,
            incoming: Some(incoming),
            targets: Vec::new(),
            overflow: VecDeque::new(),
            large_in_flight: false,
            hold: None,
        }
    }

    /// True when a publisher feeding this peer should wait: frames are waiting for room, or
    /// the queue and side channel hold more than three quarters of the queue's capacity. The
    /// receiver's position is reloaded only when the cached one says "maybe", so the common
    /// case touches no shared cache line.
    fn congested(&mut self) -> bool {
        let limit = self.out.producer.capacity_bytes() / 4 * 3;
        if !self.overflow.is_empty() {
            return true;
        }
        if !self.large_in_flight && self.out.producer.used_bytes_at_most() <= limit {
            return false;
        }
        let large_bytes = self.out.large_bytes.load(Ordering::Relaxed);
        self.large_in_flight = large_bytes > 0;
        self.out.producer.used_bytes() + large_bytes > limit
    }

    /// Tells the receiver that this shard waits for the queue to empty, then checks again, so
    /// either the receiver sees the flag or this check sees the freed room (the fences pair
    /// with the receiver's in `drain_peers`: a store then a load on each side needs SeqCst).
    fn wait_for_room(&mut self) -> bool {
        self.out.sender_waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.drained_now()
    }

    fn drained_now(&mut self) -> bool {
        self.overflow.is_empty()
            && self.out.producer.used_bytes() + self.out.large_bytes.load(Ordering::Relaxed)
                <= self.out.producer.capacity_bytes() / 4
    }

    /// True when a publisher paused for this peer may go on. When not, the peer will wake this
    /// shard once it has emptied the queue.
    pub fn drained(&mut self) -> bool {
        self.drained_now() || self.wait_for_room()
    }

    /// Queues one encoded frame, in order behind any overflow.
    fn push_encoded(&mut self, bytes: &[u8]) {
        self.push_with(bytes.len(), |buf| buf.copy_from_slice(bytes));
    }

    /// Largest frame that travels in the queue (a record: its length and the frame).
    fn max_frame_bytes(&self) -> usize {
        self.out.producer.max_frame_bytes() - RECORD_LEN_BYTES
    }

    /// Queues the `len`-byte frame `fill` writes, in order behind any overflow: appended to
    /// the queue as a record when it has room, otherwise onto the overflow list (the publisher
    /// is paused).
    fn push_with(&mut self, len: usize, fill: impl Fn(&mut [u8])) {
        if self.overflow.is_empty() && append_record(&mut self.out.producer, len, &fill) {
            return;
        }
        let mut bytes = vec![0u8; len].into_boxed_slice();
        fill(&mut bytes);
        self.overflow.push_back(bytes);
    }

    /// After a frame was queued: publishes every `PEER_PUBLISH_BYTES` so the peer can start on
    /// a long round's frames, and returns whether the peer is congested (then the receiver is
    /// asked to wake this shard once it has drained).
    #[inline]
    fn pushed(&mut self) -> bool {
        if self.out.producer.unpublished_bytes() >= limits::PEER_PUBLISH_BYTES {
            self.out.producer.publish();
        }
        let congested = self.congested();
        if congested {
            self.wait_for_room();
        }
        congested
    }

    /// Moves overflowed frames into the queue while there is room.
    pub fn flush_overflow(&mut self) {
        while let Some(bytes) = self.overflow.front() {
            if !append_record(&mut self.out.producer, bytes.len(), |buf| {
                buf.copy_from_slice(bytes)
            }) {
                return;
            }
            self.overflow.pop_front();
        }
    }
}

/// Appends a record of the `len`-byte frame `fill` writes; false when the queue lacks room.
#[inline]
fn append_record(producer: &mut Producer, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
    producer.append(RECORD_LEN_BYTES + len, |buf| {
        let (len_bytes, frame) = buf.split_at_mut(RECORD_LEN_BYTES);
        len_bytes.copy_from_slice(&(len as u32).to_le_bytes());
        fill(frame);
    })
}

impl Shard {
    /// Sends `message` to every target collected for `peer_index`, then clears the targets.
    /// Returns true when the peer is congested (the caller pauses the publisher).
    pub(super) fn send_to_peer(&mut self, peer_index: usize, message: Message<'_>) -> bool {
        let mut targets = std::mem::take(&mut self.peers[peer_index].targets);
        let congested = self.push_frame(peer_index, message, &targets, None);
        targets.clear();
        self.peers[peer_index].targets = targets;
        congested
    }

    /// Sends one queue-group delivery to shard `shard`: the frame lists every member of `group`
    /// on that shard, `first` first, and that shard gives it to the first that can take it (or
    /// passes it on, see `requeue`). Returns true when the peer is congested.
    pub(super) fn send_queue_to_peer(
        &mut self,
        message: Message<'_>,
        group: &QueueGroup,
        first: SubHandle,
        hops: u32,
    ) -> bool {
        let mut targets = std::mem::take(&mut self.queue_targets);
        targets.clear();
        targets.push(Target {
            slot: first.slot,
            generation: first.generation,
        });
        targets.extend(
            group
                .members
                .iter()
                .filter(|member| member.shard == first.shard && **member != first)
                .map(|member| Target {
                    slot: member.slot,
                    generation: member.generation,
                }),
        );
        let route = QueueRoute {
            queue: &group.name,
            hops,
        };
        let congested = self.push_frame(
            peer_index_of(self.index, first.shard),
            message,
            &targets,
            Some(route),
        );
        self.queue_targets = targets;
        congested
    }

    /// Sends `message` to the one subscription `handle` on another shard (the message matched
    /// nothing else there): a one-target frame when it fits. Returns true when the peer is
    /// congested (the caller pauses the publisher).
    pub(super) fn send_to_one(&mut self, handle: SubHandle, message: Message<'_>) -> bool {
        let peer_index = peer_index_of(self.index, handle.shard);
        let target = Target {
            slot: handle.slot,
            generation: handle.generation,
        };
        let peer = &mut self.peers[peer_index];
        match frame::one_target_len(&message) {
            Some(len) if len <= peer.max_frame_bytes() => {
                peer.push_with(len, |buf| frame::encode_one_target(buf, &message, target));
                peer.pushed()
            }
            _ => self.push_frame(peer_index, message, &[target], None),
        }
    }

    /// Encodes one full frame into the queue to `peer_index` (the side channel for a large one,
    /// the overflow list when the queue is full). Returns true when the peer is congested.
    fn push_frame(
        &mut self,
        peer_index: usize,
        message: Message<'_>,
        targets: &[Target],
        route: Option<QueueRoute<'_>>,
    ) -> bool {
        let peer = &mut self.peers[peer_index];
        let len = frame::encoded_len(&message, targets.len(), route);
        let encode = |buf: &mut [u8]| frame::encode(buf, &message, targets, route);
        if len > peer.max_frame_bytes() {
            let mut large = vec![0u8; len].into_boxed_slice();
            encode(&mut large);
            peer.out.large_bytes.fetch_add(len, Ordering::Relaxed);
            peer.large_in_flight = true;
            // The receiver lives as long as the peer shard; after it stopped the frame is moot.
            let _ = peer.out.large.send(large);
            peer.push_encoded(&LARGE_MARKER);
        } else {
            peer.push_with(len, encode);
        }
        peer.pushed()
    }

    /// True when a peer's queue has frames this shard may deliver now (not held): what a
    /// busy-polling shard watches besides its ring, so frames published mid-round are taken
    /// without waiting for the round's wake-up.
    pub(super) fn peer_frames_waiting(&self) -> bool {
        self.peers.iter().any(|peer| {
            peer.hold.is_none()
                && peer
                    .incoming
                    .as_ref()
                    .is_some_and(|incoming| !incoming.consumer.is_empty())
        })
    }

    /// Delivers frames from every peer's queue, at most `RECV_BYTES_PER_ROUND_MAX` bytes from
    /// each this round, in chunks. When a delivery takes a subscriber over its high-water mark,
    /// that peer's queue is held (not drained) until the subscriber drains or
    /// `PUBLISHER_PAUSE_MS_MAX` passes: the queue then fills and the sending shard pauses the
    /// publisher, as a local publisher would be paused. Returns whether any frame was taken,
    /// and whether frames that can be handled now are left over.
    pub(super) fn drain_peers(&mut self) -> (bool, bool) {
        let mut took = false;
        let mut left = false;
        for peer_index in 0..self.peers.len() {
            if !self.release_hold(peer_index) {
                continue;
            }
            let Some(mut incoming) = self.peers[peer_index].incoming.take() else {
                continue;
            };
            let mut drained = 0usize;
            while drained < limits::RECV_BYTES_PER_ROUND_MAX && !incoming.consumer.is_empty() {
                incoming.consumer.drain(DRAIN_CHUNK_BYTES, |mut records| {
                    drained += records.len();
                    while let Some((frame, rest)) = next_record(records) {
                        records = rest;
                        drained +=
                            self.deliver_record(&incoming.large, &incoming.large_bytes, frame);
                    }
                });
                if let Some((slot, generation)) = self.over_high_water.take() {
                    let until_ms = self.now_ms + limits::PUBLISHER_PAUSE_MS_MAX;
                    self.peers[peer_index].hold = Some(PauseCause::Subscriber {
                        slot,
                        generation,
                        until_ms,
                    });
                    self.stats.peer_holds += 1;
                    break;
                }
            }
            took |= drained > 0;
            if self.peers[peer_index].hold.is_none() {
                left |= !incoming.consumer.is_empty();
            }
            // The sender waits for room: once the queue is empty, wake it (without this it
            // would only notice on its pause timer). The fence pairs with `wait_for_room`.
            if incoming.consumer.is_empty() {
                fence(Ordering::SeqCst);
                if incoming.sender_waiting.load(Ordering::Relaxed)
                    && incoming.sender_waiting.swap(false, Ordering::AcqRel)
                {
                    self.send_wake(peer_shard_index(self.index, peer_index));
                }
            }
            self.peers[peer_index].incoming = Some(incoming);
        }
        (took, left)
    }

    /// Ends the hold on `peer_index`'s queue when its subscriber drained under a quarter of
    /// the high-water mark, went away, or the hold timed out. Returns whether the queue may be
    /// drained now.
    fn release_hold(&mut self, peer_index: usize) -> bool {
        let Some(PauseCause::Subscriber {
            slot,
            generation,
            until_ms,
        }) = self.peers[peer_index].hold
        else {
            return true;
        };
        if self.subscriber_wait_over(slot, generation, until_ms) {
            self.peers[peer_index].hold = None;
            return true;
        }
        false
    }

    /// True when some peer's queue is held (the loop keeps a short timer armed meanwhile).
    pub(super) fn any_peer_held(&self) -> bool {
        self.peers.iter().any(|peer| peer.hold.is_some())
    }

    /// One `MSG_RING` into shard `target`'s ring: it ends that shard's wait.
    fn send_wake(&mut self, target: usize) {
        let ring_fd = self.shared.ring_fds[target].load(Ordering::Acquire);
        let entry = opcode::MsgRingData::new(
            types::Fd(ring_fd),
            0,
            Token::new(OpKind::Mailbox, self.index as u32, 0).encode(),
            None,
        )
        .build()
        .flags(squeue::Flags::SKIP_SUCCESS)
        .user_data(Token::new(OpKind::WakePeer, target as u32, 0).encode());
        self.push(&entry);
        self.stats.peer_wakeups += 1;
    }

    /// Delivers the message of one record from a peer's queue: a frame, or the marker of one
    /// in the side channel (`large`, whose byte count is `large_bytes`). Returns the bytes
    /// taken from the side channel.
    #[inline]
    fn deliver_record(
        &mut self,
        large: &Receiver<Box<[u8]>>,
        large_bytes: &AtomicUsize,
        bytes: &[u8],
    ) -> usize {
        if bytes == LARGE_MARKER {
            let Ok(large) = large.try_recv() else {
                unreachable!("a large-frame marker without its frame");
            };
            large_bytes.fetch_sub(large.len(), Ordering::Relaxed);
            let Some(frame) = Frame::decode(&large) else {
                unreachable!(
                    "a large cross-shard frame that does not decode ({} bytes)",
                    large.len()
                );
            };
            self.deliver_frame(frame);
            return large.len();
        }
        match frame::decode(bytes) {
            Some(Decoded::One { parts, target }) => self.deliver_one(parts, target),
            Some(Decoded::Full(frame)) => self.deliver_frame(frame),
            None => unreachable!(
                "a cross-shard frame that does not decode ({} bytes)",
                bytes.len()
            ),
        }
        0
    }

    /// Delivers a one-target frame's message.
    #[inline]
    fn deliver_one(&mut self, message: Message<'_>, target: Target) {
        self.templates.reset(false);
        self.deliver_to_target(message, target);
    }

    /// Delivers a full frame's message to its targets (to one of them, for a queue group).
    fn deliver_frame(&mut self, frame: Frame<'_>) {
        let message = frame.parts;
        match frame.route {
            None => {
                self.templates.reset(frame.targets().len() > 1);
                for target in frame.targets() {
                    self.deliver_to_target(message, target);
                }
            }
            Some(route) => {
                self.templates.reset(false);
                for target in frame.targets() {
                    if self.deliver_to_target(message, target) {
                        return;
                    }
                }
                self.requeue(message, route);
            }
        }
    }

    /// Delivers `message` to the subscription `target` names on this shard. Returns whether it
    /// took it; a target gone meanwhile (closed, unsubscribed, limit reached) is counted.
    #[inline]
    fn deliver_to_target(&mut self, message: Message<'_>, target: Target) -> bool {
        let handle = SubHandle {
            shard: self.index,
            slot: target.slot,
            generation: target.generation,
        };
        let taken = self.deliver(handle, None, message);
        if !taken {
            self.stats.cross_shard_stale_targets += 1;
        }
        taken
    }

    /// A queue-group delivery none of whose listed members here could take (they closed or
    /// unsubscribed meanwhile): give it to a member of the group as the table has it now,
    /// here first, else on another shard. Bounded by `hops`, so it cannot circle forever; it
    /// is dropped only when the group has no member left anywhere (or the bound is reached).
    fn requeue(&mut self, message: Message<'_>, route: QueueRoute<'_>) {
        let matched = self.cache.lookup(&self.shared.sublist, message.subject);
        let Some(group) = matched
            .queues
            .iter()
            .find(|group| &*group.name == route.queue)
        else {
            self.stats.queue_messages_dropped += 1;
            return;
        };
        let here = self.index;
        for &member in group.members.iter().filter(|member| member.shard == here) {
            if self.deliver(member, None, message) {
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

    /// Publishes what this round queued for each peer and wakes those peers, one
    /// `MSG_RING` each.
    pub(super) fn wake_peers(&mut self) {
        for peer_index in 0..self.peers.len() {
            let peer = &mut self.peers[peer_index];
            peer.flush_overflow();
            if !peer.overflow.is_empty() {
                // Frames still wait for room: have the peer wake us when it has emptied the
                // queue, even if no publisher is paused for it any more.
                peer.wait_for_room();
            }
            if !peer.out.producer.publish() {
                continue;
            }
            self.send_wake(peer_shard_index(self.index, peer_index));
        }
    }
}

/// The shard index of `peer_index` in the peer list of shard `own` (which skips itself).
pub fn peer_shard_index(own: u16, peer_index: usize) -> usize {
    if peer_index < own as usize {
        peer_index
    } else {
        peer_index + 1
    }
}

/// The position of shard `shard` in the peer list of shard `own`.
pub fn peer_index_of(own: u16, shard: u16) -> usize {
    debug_assert_ne!(own, shard);
    if shard < own {
        shard as usize
    } else {
        shard as usize - 1
    }
}
