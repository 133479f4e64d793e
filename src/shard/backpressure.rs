//! Back-pressure's rules, as a part of the shard that owns its state and needs no ring, no
//! socket and no connection table: what a subscriber's backlog asks for (`Backlog`), when a
//! wait on a subscriber is over (`subscriber_wait_over`), and the list of paused publishers
//! (`Pauses`), from which the shard takes the ones whose wait is over. The shard applies the
//! answers (cancelling or re-arming receives, holding a peer queue); the decisions are here, and
//! unit-tested here.
//!
//! The rules (DESIGN §3): a subscriber whose pending output passes `max_pending` is a slow
//! consumer (closed, as nats-server does); one past the high-water mark (three quarters of
//! `max_pending`, at most `OUTBOUND_HIGH_WATER_BYTES`) slows whoever feeds it: a local
//! publisher is paused, a peer shard's queue is held. The wait ends when the subscriber drains
//! to a quarter of the mark, goes away, or `PUBLISHER_PAUSE_MS_MAX` passes, so a publisher is
//! slowed for a bounded time and never stalled by one slow reader. A wait that ends on time
//! with a subscriber that took nothing meanwhile found it stuck (`subscriber_stuck`): the
//! publisher then waits for it at most once per `PUBLISHER_BYTES_PER_WAIT` (64 KiB) it
//! publishes (`conn::StuckSubscriber`), as nats-server stalls a producer at most 10 ms per
//! read, so a reader that never reads costs it one wait per 64 KiB on its way to max_pending,
//! not one per message.

use super::conn::SubscriberWait;
use crate::limits;

/// What a subscriber's pending output asks for, after a write to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    Fine,
    /// Past the high-water mark: slow down whoever feeds it.
    OverHighWater,
    /// Past `max_pending`: close it.
    SlowConsumer,
}

/// The subscriber a wait is on, as the shard sees it now (None: its slot is free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberNow {
    pub generation: u32,
    pub open: bool,
    pub pending_bytes: usize,
    /// Shard clock since which its socket has taken none of its output (None: nothing stuck).
    pub write_stalled_since_ms: Option<u64>,
}

/// The paused publishers and the marks.
#[derive(Debug)]
pub struct Pauses {
    high_water_bytes: usize,
    max_pending_bytes: u64,
    /// Slots whose reading is paused, in no particular order.
    paused: Vec<u32>,
}

impl Pauses {
    pub fn new(max_pending_bytes: u64) -> Pauses {
        let mut pauses = Pauses {
            high_water_bytes: 0,
            max_pending_bytes: 0,
            paused: Vec::new(),
        };
        pauses.set_max_pending(max_pending_bytes);
        pauses
    }

    /// New marks for `max_pending_bytes` (a reload); the paused publishers stay paused, and
    /// their waits end by the new low-water mark.
    pub fn set_max_pending(&mut self, max_pending_bytes: u64) {
        self.high_water_bytes =
            limits::OUTBOUND_HIGH_WATER_BYTES.min((max_pending_bytes / 4 * 3) as usize);
        self.max_pending_bytes = max_pending_bytes;
    }

    /// What `pending_bytes` of output waiting for a subscriber asks for.
    #[inline]
    pub fn backlog(&self, pending_bytes: usize) -> Backlog {
        if pending_bytes as u64 > self.max_pending_bytes {
            Backlog::SlowConsumer
        } else if pending_bytes > self.high_water_bytes {
            Backlog::OverHighWater
        } else {
            Backlog::Fine
        }
    }

    /// A wait on subscriber `slot` (of `generation`) beginning at `now_ms`.
    pub fn wait_on(&self, slot: u32, generation: u32, now_ms: u64) -> SubscriberWait {
        SubscriberWait {
            slot,
            generation,
            until_ms: now_ms + limits::PUBLISHER_PAUSE_MS_MAX,
        }
    }

    /// Pending bytes a waited-on subscriber must drain to: a quarter of the high-water mark.
    pub fn low_water_bytes(&self) -> usize {
        self.high_water_bytes / 4
    }

    /// Notes that `slot` is paused (the caller set its cause).
    pub fn add(&mut self, slot: u32) {
        debug_assert!(!self.paused.contains(&slot), "paused once");
        self.paused.push(slot);
    }

    pub fn is_empty(&self) -> bool {
        self.paused.is_empty()
    }

    /// Removes and returns the paused slots whose pause is over: `over(slot)` answers
    /// Some(true) to resume it, Some(false) to keep it paused, None when the slot holds no
    /// connection any more (forgotten, not returned).
    pub fn take_resumable(&mut self, mut over: impl FnMut(u32) -> Option<bool>) -> Vec<u32> {
        let mut resumed = Vec::new();
        self.paused.retain(|&slot| match over(slot) {
            None => false,
            Some(true) => {
                resumed.push(slot);
                false
            }
            Some(false) => true,
        });
        resumed
    }
}

/// True when a wait on a subscriber is over: its time passed, or the subscriber drained to
/// `low_water_bytes`, closed, or went away (its slot freed or reused: another generation).
pub fn subscriber_wait_over(
    wait: SubscriberWait,
    subscriber: Option<SubscriberNow>,
    now_ms: u64,
    low_water_bytes: usize,
) -> bool {
    now_ms >= wait.until_ms
        || subscriber
            .filter(|sub| sub.generation == wait.generation && sub.open)
            .is_none_or(|sub| sub.pending_bytes <= low_water_bytes)
}

/// True when a wait that ended found its subscriber stuck: still there and backed up, and
/// its socket took none of its output since before the wait began (a reader that reads,
/// however slowly, completes sends). The publisher then passes it over for a while
/// (`StuckSubscriber`).
pub fn subscriber_stuck(wait: SubscriberWait, subscriber: Option<SubscriberNow>) -> bool {
    subscriber
        .filter(|sub| sub.generation == wait.generation && sub.open)
        .and_then(|sub| sub.write_stalled_since_ms)
        .is_some_and(|since| since <= wait.began_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_marks_follow_max_pending() {
        // nats-server's default max_pending (64 MiB): the high-water mark is capped.
        let pauses = Pauses::new(64 * 1024 * 1024);
        let high = limits::OUTBOUND_HIGH_WATER_BYTES;
        assert_eq!(pauses.backlog(high), Backlog::Fine);
        assert_eq!(pauses.backlog(high + 1), Backlog::OverHighWater);
        assert_eq!(pauses.backlog(64 * 1024 * 1024), Backlog::OverHighWater);
        assert_eq!(pauses.backlog(64 * 1024 * 1024 + 1), Backlog::SlowConsumer);
        assert_eq!(pauses.low_water_bytes(), high / 4);
        // A small max_pending: the mark is three quarters of it.
        let small = Pauses::new(4000);
        assert_eq!(small.backlog(3000), Backlog::Fine);
        assert_eq!(small.backlog(3001), Backlog::OverHighWater);
        assert_eq!(small.backlog(4001), Backlog::SlowConsumer);
        assert_eq!(small.low_water_bytes(), 750);
    }

    #[test]
    fn a_wait_ends_on_drain_close_reuse_or_time() {
        let pauses = Pauses::new(4000);
        let wait = pauses.wait_on(7, 3, 1_000);
        assert_eq!(wait.until_ms, 1_000 + limits::PUBLISHER_PAUSE_MS_MAX);
        let low = pauses.low_water_bytes();
        let sub = |generation, open, pending_bytes| {
            Some(SubscriberNow {
                generation,
                open,
                pending_bytes,
                write_stalled_since_ms: None,
            })
        };
        let over = |subscriber, now_ms| subscriber_wait_over(wait, subscriber, now_ms, low);
        // Still backed up, in time: the wait goes on.
        assert!(!over(sub(3, true, low + 1), 1_000));
        assert!(!over(sub(3, true, low + 1), wait.until_ms - 1));
        // Drained to the low-water mark.
        assert!(over(sub(3, true, low), 1_000));
        // Closed, gone, or its slot reused by another connection.
        assert!(over(sub(3, false, low + 1), 1_000));
        assert!(over(None, 1_000));
        assert!(over(sub(4, true, low + 1), 1_000));
        // Time ran out however backed up it is.
        assert!(over(sub(3, true, usize::MAX), wait.until_ms));
    }

    #[test]
    fn a_subscriber_is_stuck_when_it_took_nothing_during_the_wait() {
        let wait = Pauses::new(4000).wait_on(7, 3, 1_000);
        let sub = |generation, open, write_stalled_since_ms| {
            Some(SubscriberNow {
                generation,
                open,
                pending_bytes: 4000,
                write_stalled_since_ms,
            })
        };
        // Its socket took nothing since before the wait began, or since the moment it began.
        assert!(subscriber_stuck(wait, sub(3, true, Some(900))));
        assert!(subscriber_stuck(wait, sub(3, true, Some(1_000))));
        // A send completed during the wait: it reads, however slowly.
        assert!(!subscriber_stuck(wait, sub(3, true, Some(1_001))));
        // Nothing pending any more, closed, gone, or another connection in its slot.
        assert!(!subscriber_stuck(wait, sub(3, true, None)));
        assert!(!subscriber_stuck(wait, sub(3, false, Some(900))));
        assert!(!subscriber_stuck(wait, None));
        assert!(!subscriber_stuck(wait, sub(4, true, Some(900))));
    }

    #[test]
    fn take_resumable_keeps_the_waiting_and_forgets_the_gone() {
        let mut pauses = Pauses::new(4000);
        for slot in [1, 2, 3, 4, 5] {
            pauses.add(slot);
        }
        // 2 and 4 resume, 5 is gone, 1 and 3 wait on.
        let mut resumed = pauses.take_resumable(|slot| match slot {
            2 | 4 => Some(true),
            5 => None,
            _ => Some(false),
        });
        resumed.sort_unstable();
        assert_eq!(resumed, vec![2, 4]);
        let mut asked = Vec::new();
        let resumed = pauses.take_resumable(|slot| {
            asked.push(slot);
            Some(true)
        });
        asked.sort_unstable();
        assert_eq!(asked, vec![1, 3], "only the ones still paused are asked");
        assert_eq!(resumed.len(), 2);
        assert!(pauses.is_empty());
    }
}
