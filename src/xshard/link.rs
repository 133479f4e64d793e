//! One direction between two shards, as each end keeps it: the sender's `Outgoing` half and
//! the receiver's `Incoming` half of the SPSC queue, the side channel for frames too large for
//! it, and the sender's congestion bookkeeping (`PeerLink`). No shard, ring or connection here:
//! the shard decides what to do when a link is congested (pause a publisher) and wakes peers.
//!
//! Frames are appended to the queue as records, a `u32` length and the frame
//! (`Producer::append`): the records of a round share queue frames, so the queue's per-frame
//! work (room check, header, the consumer's step) is paid once per few hundred messages. A
//! frame larger than the queue's largest travels through the side channel, announced in the
//! queue by a 4-byte marker record so order is kept. A frame that finds the queue full waits,
//! encoded, in the overflow list, and the publisher is paused until the queue drains; the
//! receiver always drains (it is a shard, not a client), so the pause ends.
//!
//! Waiting for room is a handshake on `sender_waiting` (`wait_for_room` and
//! `Incoming::take_sender_waiting`): a store then a load on each side, so both use SeqCst
//! fences, and either the receiver sees the flag or the sender sees the freed room.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::frame::{self, Decoded, Frame, Target};
use super::spsc::{Consumer, Producer};
use crate::limits;
use crate::proto::Message;

/// A shard's index in the server (0-based, below the shard count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The 4-byte record that says "the next frame is in the side channel".
const LARGE_MARKER: [u8; 4] = u32::MAX.to_le_bytes();

/// Bytes of the length in front of each record in the queue.
const RECORD_LEN_BYTES: usize = 4;

/// The sending half towards one peer.
pub struct Outgoing {
    producer: Producer,
    /// Frames larger than the queue's largest frame.
    large: Sender<Box<[u8]>>,
    /// Bytes sent through `large` and not yet taken by the peer (shared with it).
    large_bytes: Arc<AtomicUsize>,
    /// Set by the sender while a publisher waits for this queue to drain; the receiver clears
    /// it and wakes the sender once it has emptied the queue.
    sender_waiting: Arc<AtomicBool>,
}

/// The receiving half from one peer.
pub struct Incoming {
    consumer: Consumer,
    large: Receiver<Box<[u8]>>,
    large_bytes: Arc<AtomicUsize>,
    sender_waiting: Arc<AtomicBool>,
}

/// Creates the link from one shard to another: (the sender's half, the receiver's half).
pub fn link() -> (Outgoing, Incoming) {
    link_with_capacity(limits::PEER_QUEUE_BYTES)
}

/// `link` with a queue of `capacity_bytes` (a power of two; tests use small ones).
pub fn link_with_capacity(capacity_bytes: usize) -> (Outgoing, Incoming) {
    let (producer, consumer) = super::spsc::channel(capacity_bytes);
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

/// The sender's side of one link, with what it keeps about the link's congestion.
pub struct PeerLink {
    out: Outgoing,
    /// Encoded frames that found the queue full, oldest first.
    overflow: VecDeque<Box<[u8]>>,
    /// True when frames sent through the side channel may not have been taken yet (so the
    /// cheap congestion estimate, which ignores them, is not enough).
    large_in_flight: bool,
    /// Frames were published mid-round (`PEER_PUBLISH_BYTES`) since the last `end_round`: the
    /// peer needs the round's wake-up even when nothing is left to publish at its end (a
    /// publisher paused for congestion right after a mid-round publish sends nothing more; the
    /// peer, not woken, slept on those frames until its next timer tick).
    published_mid_round: bool,
}

impl PeerLink {
    pub fn new(out: Outgoing) -> PeerLink {
        PeerLink {
            out,
            overflow: VecDeque::new(),
            large_in_flight: false,
            published_mid_round: false,
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
    /// either the receiver sees the flag or this check sees the freed room (see the module
    /// docs).
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

    /// Bytes waiting for the peer: in the queue (published or not), in the side channel and
    /// in the overflow. For monitoring (it reloads the receiver's position).
    pub fn queued_bytes(&mut self) -> usize {
        self.out.producer.used_bytes()
            + self.out.large_bytes.load(Ordering::Relaxed)
            + self.overflow.iter().map(|frame| frame.len()).sum::<usize>()
    }

    /// True when a publisher paused for this peer may go on: the queue and side channel are
    /// down to a quarter. When not, the peer will wake this shard once it has emptied the
    /// queue.
    pub fn drained(&mut self) -> bool {
        self.drained_now() || self.wait_for_room()
    }

    /// Largest frame that travels in the queue (a record holds its length and the frame).
    #[inline]
    pub fn max_frame_bytes(&self) -> usize {
        self.out.producer.max_frame_bytes() - RECORD_LEN_BYTES
    }

    /// Queues the `len`-byte frame `fill` writes, in order behind any overflow: appended to
    /// the queue as a record when it has room, else to the side channel when it is larger than
    /// `max_frame_bytes`, else onto the overflow list. Returns true when the peer is congested
    /// (the caller pauses the publisher; the receiver is asked to wake this shard once it has
    /// drained). Every `PEER_PUBLISH_BYTES` the queue is published, so the peer can start on a
    /// long round's frames.
    #[inline]
    pub fn send(&mut self, len: usize, fill: impl Fn(&mut [u8])) -> bool {
        if len <= self.max_frame_bytes() {
            return self.send_fitting(len, fill);
        }
        {
            let mut large = vec![0u8; len].into_boxed_slice();
            fill(&mut large);
            self.out.large_bytes.fetch_add(len, Ordering::Relaxed);
            self.large_in_flight = true;
            // The receiver lives as long as the peer shard; after it stopped the frame is moot.
            let _ = self.out.large.send(large);
            self.queue(LARGE_MARKER.len(), |buf| buf.copy_from_slice(&LARGE_MARKER));
        }
        self.sent()
    }

    /// `send` for a frame the caller knows fits the queue (`len <= max_frame_bytes()`).
    #[inline]
    pub fn send_fitting(&mut self, len: usize, fill: impl Fn(&mut [u8])) -> bool {
        debug_assert!(len <= self.max_frame_bytes());
        self.queue(len, fill);
        self.sent()
    }

    /// After a frame was queued: publishes every `PEER_PUBLISH_BYTES`, and returns whether the
    /// peer is congested (then asks the receiver to wake this shard once it has drained).
    #[inline]
    fn sent(&mut self) -> bool {
        if self.out.producer.unpublished_bytes() >= limits::PEER_PUBLISH_BYTES {
            self.published_mid_round |= self.out.producer.publish();
        }
        let congested = self.congested();
        if congested {
            self.wait_for_room();
        }
        congested
    }

    fn queue(&mut self, len: usize, fill: impl Fn(&mut [u8])) {
        if self.overflow.is_empty() && append_record(&mut self.out.producer, len, &fill) {
            return;
        }
        let mut bytes = vec![0u8; len].into_boxed_slice();
        fill(&mut bytes);
        self.overflow.push_back(bytes);
    }

    /// At the end of a loop round: moves overflowed frames into the queue while there is room
    /// (frames still waiting ask the peer to wake this shard when it has emptied the queue),
    /// then publishes. Returns true when the round published something (now or mid-round): the
    /// peer needs a wake-up.
    pub fn end_round(&mut self) -> bool {
        while let Some(bytes) = self.overflow.front() {
            if !append_record(&mut self.out.producer, bytes.len(), |buf| {
                buf.copy_from_slice(bytes)
            }) {
                break;
            }
            self.overflow.pop_front();
        }
        if !self.overflow.is_empty() {
            self.wait_for_room();
        }
        // `|`, not `||`: whatever is left is published either way.
        self.out.producer.publish() | std::mem::take(&mut self.published_mid_round)
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

/// Splits the first record (its frame) off `records`, the body of one queue frame; None when
/// none is left.
#[inline]
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

/// What `Incoming::drain_chunk` hands each record to, decoded. A trait rather than a closure
/// over an enum: the receiving shard's `one` (the common case, one target) is
/// `#[inline(always)]` into the drain loop; a closure taking the decoded enum was a call with
/// the frame in memory, about 30 instructions a message (scripts/callgrind.py, cross shard).
pub trait FrameSink {
    /// A one-target frame, read in place.
    fn one(&mut self, message: Message<'_>, target: Target);
    /// A full frame (several targets, or a queue group's route), read in place or taken from
    /// the side channel.
    fn full(&mut self, frame: Frame<'_>);
}

impl Incoming {
    /// True when no frame is waiting in the queue.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// Hands every record of one chunk of published queue frames (up to `DRAIN_CHUNK_BYTES`)
    /// to `deliver`, in order, decoded. Returns the bytes taken (queue and side channel); 0
    /// when the queue is empty. Between chunks the caller checks whether a delivery took a
    /// subscriber over its high-water mark (then it holds the queue).
    #[inline]
    pub fn drain_chunk(&mut self, sink: &mut impl FrameSink) -> usize {
        let mut drained = 0usize;
        let large = &self.large;
        let large_bytes = &self.large_bytes;
        self.consumer.drain(DRAIN_CHUNK_BYTES, |mut records| {
            drained += records.len();
            while let Some((bytes, rest)) = next_record(records) {
                records = rest;
                if bytes == LARGE_MARKER {
                    let Ok(frame_bytes) = large.try_recv() else {
                        unreachable!("a large-frame marker without its frame");
                    };
                    large_bytes.fetch_sub(frame_bytes.len(), Ordering::Relaxed);
                    drained += frame_bytes.len();
                    let Some(frame) = Frame::decode(&frame_bytes) else {
                        unreachable!(
                            "a large cross-shard frame that does not decode ({} bytes)",
                            frame_bytes.len()
                        );
                    };
                    sink.full(frame);
                    continue;
                }
                let Some(decoded) = frame::decode(bytes) else {
                    unreachable!(
                        "a cross-shard frame that does not decode ({} bytes)",
                        bytes.len()
                    );
                };
                match decoded {
                    Decoded::One { message, target } => sink.one(message, target),
                    Decoded::Full(frame) => sink.full(frame),
                }
            }
        });
        drained
    }

    /// After a drain that emptied the queue: true when the sender was waiting for room (it
    /// must be woken), clearing the flag. See the module docs for the handshake.
    pub fn take_sender_waiting(&mut self) -> bool {
        if !self.consumer.is_empty() {
            return false;
        }
        fence(Ordering::SeqCst);
        self.sender_waiting.load(Ordering::Relaxed)
            && self.sender_waiting.swap(false, Ordering::AcqRel)
    }
}

/// Bytes of queue frames handed over per `Consumer::drain` call: between calls the receiver
/// checks whether a delivery took a subscriber over its high-water mark.
const DRAIN_CHUNK_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Message;
    use crate::xshard::frame::{encode_one_target, encoded_len, one_target_len, Target};

    fn message(payload: &[u8]) -> Message<'_> {
        Message {
            subject: b"s",
            reply: None,
            headers: None,
            payload,
        }
    }

    fn send_one(link: &mut PeerLink, payload: &[u8], slot: u32) -> bool {
        let m = message(payload);
        let len = one_target_len(&m).unwrap();
        link.send(len, |buf| {
            encode_one_target(
                buf,
                &m,
                Target {
                    slot,
                    generation: 1,
                },
            )
        })
    }

    /// Drains everything, returning (slot, payload) of each one-target frame and the payloads
    /// of full (large) frames, in order.
    fn drain_all(incoming: &mut Incoming) -> Vec<(u32, Vec<u8>)> {
        let mut got = Collect(Vec::new());
        while incoming.drain_chunk(&mut got) > 0 {}
        got.0
    }

    /// Collects (slot, payload) of every target, one-target and full frames alike.
    struct Collect(Vec<(u32, Vec<u8>)>);

    impl FrameSink for Collect {
        fn one(&mut self, message: Message<'_>, target: Target) {
            self.0.push((target.slot, message.payload.to_vec()));
        }
        fn full(&mut self, frame: Frame<'_>) {
            for target in frame.targets() {
                self.0.push((target.slot, frame.message.payload.to_vec()));
            }
        }
    }

    #[test]
    fn frames_arrive_in_order_after_end_round() {
        let (out, mut incoming) = link_with_capacity(1 << 16);
        let mut link = PeerLink::new(out);
        for slot in 0..100 {
            assert!(!send_one(&mut link, b"x", slot));
        }
        assert!(
            incoming.is_empty(),
            "nothing is seen before it is published"
        );
        assert!(link.end_round(), "a round with frames needs a wake-up");
        let got = drain_all(&mut incoming);
        assert_eq!(got.len(), 100);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (slot, _))| *slot == i as u32));
        assert!(!link.end_round(), "nothing new: no wake-up");
    }

    /// Frames published mid-round (every `PEER_PUBLISH_BYTES`) still ask for the round's
    /// wake-up when the round's last frame was the one that published them: the peer may be
    /// asleep, and nothing else would wake it.
    #[test]
    fn a_round_published_mid_way_still_wakes_the_peer() {
        let (out, mut incoming) = link_with_capacity(1 << 20);
        let mut link = PeerLink::new(out);
        let payload = vec![b'x'; 1000];
        let mut sent = 0;
        while incoming.is_empty() {
            assert!(!send_one(&mut link, &payload, sent));
            sent += 1;
        }
        // The last send published everything; nothing follows it this round.
        assert!(link.end_round(), "the peer is woken for what was published");
        assert_eq!(drain_all(&mut incoming).len(), sent as usize);
        assert!(!link.end_round(), "nothing new: no wake-up");
    }

    /// A frame too large for the queue goes through the side channel, in order between the
    /// frames around it, and counts as congestion until the receiver took it.
    #[test]
    fn large_frames_keep_their_place() {
        let (out, mut incoming) = link_with_capacity(1 << 16);
        let mut link = PeerLink::new(out);
        send_one(&mut link, b"before", 1);
        let big = vec![b'b'; 50_000];
        let m = message(&big);
        let targets = [Target {
            slot: 2,
            generation: 1,
        }];
        let len = encoded_len(&m, 1, None);
        assert!(len > link.max_frame_bytes());
        let congested = link.send(len, |buf| frame::encode(buf, &m, &targets, None));
        assert!(
            congested,
            "10 KB waiting in the side channel of a 4 KiB queue"
        );
        send_one(&mut link, b"after", 3);
        link.end_round();
        let got = drain_all(&mut incoming);
        assert_eq!(
            got.iter().map(|(slot, _)| *slot).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(got[1].1, big);
        assert!(link.drained(), "taken: no longer congested");
    }

    /// A full queue: frames wait in the overflow list (congested), keep their order, and the
    /// receiver that empties the queue is told to wake the waiting sender.
    #[test]
    fn overflow_waits_in_order_and_the_receiver_wakes_the_sender() {
        let (out, mut incoming) = link_with_capacity(1 << 16);
        let mut link = PeerLink::new(out);
        let payload = [b'p'; 2000];
        let mut congested_at = None;
        for slot in 0..60 {
            if send_one(&mut link, &payload, slot) && congested_at.is_none() {
                congested_at = Some(slot);
            }
        }
        assert!(
            congested_at.is_some(),
            "12 KB into a 4 KiB queue congests it"
        );
        assert!(!link.drained());
        link.end_round();
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(drain_all(&mut incoming));
            let wake = incoming.take_sender_waiting();
            if got.len() == 60 {
                break;
            }
            assert!(
                wake || !incoming.is_empty(),
                "an emptied queue wakes the waiting sender"
            );
            link.end_round();
        }
        assert_eq!(got.len(), 60);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (slot, _))| *slot == i as u32));
        assert!(link.drained());
        assert!(!incoming.take_sender_waiting(), "the flag was taken once");
    }

    /// One chunk is at most `DRAIN_CHUNK_BYTES` of queue frames (the caller may hold the queue
    /// after it), and the rest is still there for later, in order.
    #[test]
    fn a_drain_stopped_by_the_caller_leaves_the_rest() {
        let (out, mut incoming) = link_with_capacity(1 << 20);
        let mut link = PeerLink::new(out);
        let payload = vec![b'p'; 12 * 1024];
        for slot in 0..20 {
            send_one(&mut link, &payload, slot);
            // One queue frame each (a publish closes the open frame).
            link.end_round();
        }
        let mut first = Collect(Vec::new());
        incoming.drain_chunk(&mut first);
        let first: Vec<u32> = first.0.iter().map(|(slot, _)| *slot).collect();
        assert!(!first.is_empty() && first.len() < 20, "{first:?}");
        let rest = drain_all(&mut incoming);
        assert_eq!(first.len() + rest.len(), 20);
        assert_eq!(rest[0].0, first.len() as u32);
    }
}
