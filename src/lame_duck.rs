//! Lame duck mode, as nats-server's `lameDuckMode` runs it, for all shards at once: every shard
//! stops accepting clients (its client listeners close, so new clients are refused and try
//! another server; routes are still accepted) and tells its clients (`Control::LameDuck`),
//! listing only the other servers' client URLs; in a cluster, when there are clients, every
//! route gets an INFO with `"ldm":true`, so the peers stop sending clients here. After
//! `lame_duck_grace_period` the clients open at the start are closed one at a time,
//! `min(window / clients, 1 s)` apart (a random wait of at least half that), the window being
//! `lame_duck_duration` minus the grace period, in batches when there are more clients than
//! nanoseconds in it; then it is finished and the server may stop. A close is one
//! `Control::CloseClients` to the shard with the most clients left, so the closes are spread
//! over the shards as evenly as over time. Clients that leave on their own (most reconnect
//! elsewhere when the INFO arrives) shorten the list.
//!
//! It runs on a thread of its own (the main thread keeps handling signals meanwhile) and ends
//! early when the server stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Options;
use crate::shard::control::{CloseCause, Control};
use crate::shard::Shared;

/// The longest wait between two closes (nats-server caps its interval at one second).
const CLOSE_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// How often a wait looks whether the server is stopping.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// A lame duck mode under way (`ServerHandle::enter_lame_duck`).
pub struct LameDuck {
    finished: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LameDuck {
    /// True once every client it had is closed (or there were none): the server may stop.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl Drop for LameDuck {
    fn drop(&mut self) {
        // The thread ends once the server stops (or it has finished).
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// When the clients' closes come: `interval` apart, `batch` at a time (nats-server's `si` and
/// `batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSchedule {
    pub interval: Duration,
    pub batch: usize,
}

impl CloseSchedule {
    /// nats-server's: the window (`lame_duck_duration` minus the grace period, at least a
    /// second) shared by the clients, at most a second each; more clients than nanoseconds
    /// are closed in batches a nanosecond apart.
    pub fn new(options: &Options, clients: usize) -> CloseSchedule {
        let window = options
            .lame_duck_duration
            .saturating_sub(options.lame_duck_grace_period);
        let window = if window.is_zero() {
            Duration::from_secs(1)
        } else {
            window
        };
        let window_nanos = window.as_nanos().max(1);
        let clients = clients.max(1) as u128;
        let interval_nanos = window_nanos / clients;
        if interval_nanos < 1 {
            CloseSchedule {
                interval: Duration::from_nanos(1),
                batch: (clients / window_nanos) as usize,
            }
        } else {
            CloseSchedule {
                interval: Duration::from_nanos(interval_nanos.min(u64::MAX as u128) as u64)
                    .min(CLOSE_INTERVAL_MAX),
                batch: 1,
            }
        }
    }

    /// The wait after a close: random, from half the interval to the interval.
    pub fn wait(&self, random: u64) -> Duration {
        let interval = self.interval.as_nanos() as u64;
        let half = interval / 2;
        Duration::from_nanos(half + random % (interval - half).max(1))
    }
}

/// Starts lame duck mode: asks every shard to stop accepting and tell its clients, then closes
/// them on a thread of its own. Logs as nats-server does.
pub fn enter(shared: Arc<Shared>) -> LameDuck {
    crate::log_notice!("Entering lame duck mode, stop accepting new clients");
    let settings = shared.settings();
    let options = settings.options.clone();
    let began = Instant::now();
    // In a cluster this server's own client URLs go: its clients' INFO lists the others'.
    let urls = shared
        .cluster
        .as_ref()
        .map(|cluster| cluster.withdraw_own_client_urls());
    let open: Vec<usize> = shared.ask_every_shard(|reply| Control::LameDuck(urls.clone(), reply));
    // The routes hear of it only when there are clients to move (nats-server shuts down at
    // once, without telling them, when there are none).
    if let Some(cluster) = shared
        .cluster
        .as_ref()
        .filter(|_| open.iter().sum::<usize>() > 0)
    {
        let mailboxes = &shared.mailboxes;
        cluster.send_lame_duck_to_routes(settings.route_tls.is_some(), &mut |shard| {
            mailboxes[usize::from(shard)].send(Control::RouteOutbox);
        });
    }
    drop(settings);
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let thread = std::thread::Builder::new()
        .name("lame-duck".to_string())
        .spawn(move || {
            close_clients(&shared, &options, began, open);
            done.store(true, Ordering::Release);
        });
    let thread = match thread {
        Ok(thread) => Some(thread),
        Err(err) => {
            // Without the thread nothing closes the clients: let the server stop now.
            crate::log_error!("Cannot start lame duck mode's thread: {err}");
            finished.store(true, Ordering::Release);
            None
        }
    };
    LameDuck { finished, thread }
}

/// Waits for the grace period, then closes the clients on schedule, `open[i]` being shard i's
/// clients left as last heard. Returns when none is left, or early when the server stops.
fn close_clients(shared: &Shared, options: &Options, began: Instant, mut open: Vec<usize>) {
    let clients: usize = open.iter().sum();
    if clients == 0 {
        return;
    }
    let schedule = CloseSchedule::new(options, clients);
    if !sleep_unless_stopping(shared, began + options.lame_duck_grace_period) {
        return;
    }
    crate::log_notice!("Closing existing clients");
    let mut random = seed();
    loop {
        let mut batch_left = schedule.batch;
        while batch_left > 0 {
            // The shard with the most clients left: the closes spread evenly over them. A shard
            // that closes none has none open (its clients left on their own): its count drops
            // to 0, so this ends.
            let Some((shard, &left)) = open
                .iter()
                .enumerate()
                .max_by_key(|(_, &left)| left)
                .filter(|(_, &left)| left > 0)
            else {
                return;
            };
            let (reply, answer) = mpsc::channel();
            let command = Control::CloseClients(batch_left.min(left), CloseCause::LameDuck, reply);
            if !shared.mailboxes[shard].send(command) {
                open[shard] = 0;
                continue;
            }
            // No answer: the shard ended, the server is stopping.
            let Ok((closed, left_now)) = answer.recv() else {
                return;
            };
            open[shard] = left_now;
            batch_left -= closed.min(batch_left);
        }
        if open.iter().all(|&left| left == 0) {
            return;
        }
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        if !sleep_unless_stopping(shared, Instant::now() + schedule.wait(random)) {
            return;
        }
    }
}

/// Sleeps until `until`, or returns false as soon as the server is stopping.
fn sleep_unless_stopping(shared: &Shared, until: Instant) -> bool {
    loop {
        if shared.is_stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(STOP_CHECK_INTERVAL));
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |since| since.as_nanos() as u64)
        | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(duration_secs: u64, grace_secs: u64) -> Options {
        Options {
            lame_duck_duration: Duration::from_secs(duration_secs),
            lame_duck_grace_period: Duration::from_secs(grace_secs),
            ..Options::default()
        }
    }

    #[test]
    fn closes_are_spaced_as_nats_server_spaces_them() {
        // Few clients: a second apart at most, not spread over the whole window.
        assert_eq!(
            CloseSchedule::new(&options(120, 10), 10),
            CloseSchedule {
                interval: Duration::from_secs(1),
                batch: 1
            }
        );
        // Many: the window shared out.
        assert_eq!(
            CloseSchedule::new(&options(120, 10), 1_000),
            CloseSchedule {
                interval: Duration::from_millis(110),
                batch: 1
            }
        );
        // A grace period as long as the duration leaves a one-second window.
        assert_eq!(
            CloseSchedule::new(&options(30, 30), 4).interval,
            Duration::from_millis(250)
        );
        // More clients than nanoseconds in the window: batches.
        let tiny = Options {
            lame_duck_duration: Duration::from_nanos(1_000),
            lame_duck_grace_period: Duration::ZERO,
            ..Options::default()
        };
        assert_eq!(
            CloseSchedule::new(&tiny, 5_000),
            CloseSchedule {
                interval: Duration::from_nanos(1),
                batch: 5
            }
        );
    }

    #[test]
    fn a_wait_is_between_half_the_interval_and_the_interval() {
        let schedule = CloseSchedule {
            interval: Duration::from_secs(1),
            batch: 1,
        };
        for random in [0u64, 1, 7, 499_999_999, 500_000_000, u64::MAX] {
            let wait = schedule.wait(random);
            assert!(wait >= Duration::from_millis(500) && wait < Duration::from_secs(1));
        }
    }
}
