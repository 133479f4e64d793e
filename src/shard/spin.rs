//! When a shard watches its ring before sleeping (`--busy_poll`), and when it sleeps at once.
//!
//! Waking a sleeping shard costs tens of microseconds of latency here (and a few of CPU), so a
//! shard that will get work within the window is better off watching for it; one that will
//! not wastes the whole window of CPU and sleeps anyway. Which case a shard is in shows in how
//! its recent idle periods ended: an idle period starts when a round's work is submitted and no
//! completion is ready, and ends with the next completion (or frames from a peer). `SpinPolicy`
//! keeps a score of them: one that ended within the window is a hit (+1), one that did not is a
//! miss (-2), and the shard watches only while the score is at least `WATCH_FROM`. So it keeps
//! watching while more than two idle periods in three end within the window (a client in a
//! request/reply loop, a publisher a little slower than the shard), and stops when they do not
//! (a request a millisecond, where only the responder's half of the round trip is quick: a hit
//! and a miss in turn never reach the mark).
//!
//! Only idle periods after the shard sent something (to a client or a peer) are candidates:
//! someone may answer that. A publisher streaming to a subject nobody reads gets nothing back
//! from the shard, and reacting to its next write a few microseconds sooner makes it no faster
//! (nats.go publishing 1 KiB: the watching was a third of the server's CPU and bought nothing).
//! Nor does a publisher streaming to subscribers, so a round of streamed input is not watched
//! though it delivered (`limits::STREAMING_ROUND_BYTES`).
//!
//! A period slept through is measured with the wake-up in it, so it proves a hit when it ended
//! within the window and a miss only when it ended after twice the window; in between it says
//! nothing. To learn that watching pays again when those are all it sees, one idle period in
//! `PROBE_ONE_IN` is watched anyway (chosen at random: a fixed stride could fall on the same
//! half of a request/reply every time).

use std::time::Duration;

/// The score at which the shard watches.
const WATCH_FROM: u8 = 4;
/// The highest score: after a long run of hits, three misses in a row stop the watching.
const SCORE_MAX: u8 = 8;
/// While not watching, one idle period in this many is watched to measure it.
const PROBE_ONE_IN: u32 = 16;

/// How the shard's recent idle periods ended (see the module).
#[derive(Debug, Clone)]
pub struct SpinPolicy {
    score: u8,
    /// xorshift32 state for the probes (never 0).
    rng: u32,
}

impl SpinPolicy {
    pub fn new(seed: u64) -> SpinPolicy {
        SpinPolicy {
            score: 0,
            rng: ((seed ^ (seed >> 32)) as u32) | 1,
        }
    }

    /// Whether to watch the idle period that is starting.
    pub fn watch(&mut self) -> bool {
        self.score >= WATCH_FROM || self.probe()
    }

    /// An idle period ended after `waited`; `watched` when the shard watched it (and then
    /// slept, if it ended after the window).
    pub fn ended(&mut self, waited: Duration, window: Duration, watched: bool) {
        if waited <= window {
            self.score = (self.score + 1).min(SCORE_MAX);
        } else if watched || waited > 2 * window {
            self.score = self.score.saturating_sub(2);
        }
    }

    fn probe(&mut self) -> bool {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.is_multiple_of(PROBE_ONE_IN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(50);

    fn us(micros: u64) -> Duration {
        Duration::from_micros(micros)
    }

    /// Runs `periods` idle periods whose true lengths `gap(i)` gives, the way the loop does:
    /// a watched period ends at its true length when that is within the window and is slept
    /// through otherwise; a slept one is seen `wake` later than it ended. Returns how many of
    /// the last half were watched, and how many of those ended within the window.
    fn run(periods: usize, wake: Duration, gap: impl Fn(usize) -> Duration) -> (usize, usize) {
        let mut policy = SpinPolicy::new(0x1234_5678_9abc_def0);
        let (mut watched_late, mut hits_late) = (0, 0);
        for i in 0..periods {
            let true_gap = gap(i);
            let watched = policy.watch();
            let seen = if watched && true_gap <= WINDOW {
                true_gap
            } else {
                true_gap + wake
            };
            policy.ended(seen, WINDOW, watched);
            if i >= periods / 2 && watched {
                watched_late += 1;
                hits_late += usize::from(true_gap <= WINDOW);
            }
        }
        (watched_late, hits_late)
    }

    #[test]
    fn a_request_reply_loop_is_watched() {
        // Both halves of the round trip come back in 20-30 µs; a wake-up adds 30.
        let (watched, hits) = run(2000, us(30), |i| us(20 + (i % 11) as u64));
        assert!(watched >= 990, "watched {watched} of 1000");
        assert_eq!(hits, watched);
    }

    #[test]
    fn watching_starts_even_when_sleeping_makes_every_period_look_long() {
        // 40 µs gaps seen as 70 µs when slept through: neither a hit nor a miss; the probes
        // find the hits.
        let (watched, _) = run(4000, us(30), |_| us(40));
        assert!(watched >= 1990, "watched {watched} of 2000");
    }

    #[test]
    fn a_request_a_millisecond_is_not_watched() {
        // The responder answers in 25 µs, the next request comes a millisecond later.
        let (watched, hits) = run(4000, us(30), |i| if i % 2 == 0 { us(25) } else { us(1000) });
        // Only the probes: about one period in 16, half of them on the long gap.
        assert!(watched <= 2000 / 8, "watched {watched} of 2000");
        assert!(
            watched - hits <= 2000 / 16,
            "missed {} of 2000",
            watched - hits
        );
    }

    #[test]
    fn an_idle_shard_is_not_watched() {
        let (watched, hits) = run(4000, us(30), |_| us(250_000));
        assert!(watched <= 2000 / 8, "watched {watched} of 2000");
        assert_eq!(hits, 0);
    }

    #[test]
    fn watching_stops_when_the_gaps_grow() {
        let mut policy = SpinPolicy::new(7);
        for _ in 0..100 {
            policy.ended(us(10), WINDOW, true);
        }
        assert!(policy.watch());
        for _ in 0..3 {
            policy.ended(us(400), WINDOW, true);
        }
        assert!(policy.score < WATCH_FROM);
    }

    #[test]
    fn mostly_quick_periods_keep_it_watching() {
        // Three in four within the window.
        let (watched, _) = run(4000, us(30), |i| if i % 4 == 3 { us(300) } else { us(10) });
        assert!(watched >= 1900, "watched {watched} of 2000");
    }
}
