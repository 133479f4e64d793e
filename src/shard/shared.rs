//! What every shard shares (`Shared`): the settings in force, the accounts and their subject
//! tables, each shard's ring fd, mailbox and published counters, server-wide counts. The
//! monitoring questions asked of every shard through the mailboxes are `Shared`'s too, in
//! `query`.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::control;
use super::settings::Settings;
use crate::auth::verifier::Verifier;
use crate::stats::{ShardStats, SystemEvent};

/// What every shard shares: the configuration, the subject tables, server-wide counters.
pub struct Shared {
    /// The settings in force (the last reload's, else the start's): what a shard starts with
    /// and what the next reload is compared with. Shards read their own copy (`Core::settings`).
    pub settings: Mutex<Arc<Settings>>,
    /// Where bcrypt checks are done, off the shards.
    pub verifier: Verifier,
    pub shard_count: usize,
    /// Each shard's ring fd (the target of peers' `MSG_RING`), set before any shard runs.
    pub ring_fds: Vec<AtomicI32>,
    /// Open client connections across all shards (max_connections is server-wide).
    pub connections: AtomicU32,
    /// Set once to ask every shard to stop.
    pub stopping: AtomicBool,
    /// Each shard's counters, published on its timer tick and when it stops.
    pub stats: Vec<Mutex<ShardStats>>,
    /// Each shard's mailbox (see `control`).
    pub mailboxes: Vec<control::Mailbox>,
    /// Where shards send the system service the clients' connects and disconnects (see
    /// `system`); set once, when the service starts (`set_system_events`). Unset: no events.
    pub system_events: OnceLock<Sender<SystemEvent>>,
    /// The cluster this server is part of (`cluster {}`, `--cluster`); None: no routes.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// Sends every shard the command `ask` makes with a reply channel, and waits for each
    /// answer (all are asked before any is waited for). A shard that has ended answers
    /// nothing: its answer is the type's default, so answers stay indexed by shard.
    pub fn ask_every_shard<T: Default>(
        &self,
        ask: impl Fn(std::sync::mpsc::Sender<T>) -> control::Control,
    ) -> Vec<T> {
        let answers: Vec<_> = self
            .mailboxes
            .iter()
            .map(|mailbox| {
                let (reply, answer) = std::sync::mpsc::channel();
                mailbox.send(ask(reply)).then_some(answer)
            })
            .collect();
        answers
            .into_iter()
            .map(|answer| {
                answer
                    .and_then(|answer| answer.recv().ok())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Asks every shard to stop (close its connections and exit). Used for shutdown, and by
    /// a shard whose loop ended on an error, so the server fails whole, never half-working.
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::Release);
        for mailbox in &self.mailboxes {
            mailbox.send(control::Control::Stop);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Hands a route the cluster's dialer connected for `target` to `shard`
    /// (`Control::AttachRoute`); false when that shard has ended (the stream is dropped).
    pub fn attach_route(
        &self,
        shard: usize,
        stream: std::net::TcpStream,
        target: Arc<crate::cluster::dialer::DialTarget>,
    ) -> bool {
        self.mailboxes[shard].send(control::Control::AttachRoute(stream, target))
    }

    /// Hands `stream` to shard 0 as the system connection (`Control::AttachSystem`): a client
    /// of the system account, CONNECTed and authenticated, that the system service speaks the
    /// client protocol over from the other end of the pair. False, with the stream dropped,
    /// when there is no system account or shard 0 has ended. Whatever closes the connection
    /// later (the other end closing, a slow consumer, the server stopping), the service sees
    /// its end of the pair reach end of file.
    pub fn attach_system(&self, stream: UnixStream) -> bool {
        if self.settings().system_account.is_none() {
            return false;
        }
        self.mailboxes[0].send(control::Control::AttachSystem(stream))
    }

    /// Has the shards send `events` each client's connect and disconnect from now on (see
    /// `system`). Once for the server's life: a second sender is handed back.
    pub fn set_system_events(
        &self,
        events: Sender<SystemEvent>,
    ) -> Result<(), Sender<SystemEvent>> {
        self.system_events.set(events)
    }
    /// What the shards share, one mailbox each (so `mailboxes.len()` shards).
    pub fn new(
        settings: Settings,
        mailboxes: Vec<control::Mailbox>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> std::io::Result<Arc<Shared>> {
        let shard_count = mailboxes.len();
        Ok(Arc::new(Shared {
            settings: Mutex::new(Arc::new(settings)),
            verifier: Verifier::start()?,
            shard_count,
            ring_fds: (0..shard_count).map(|_| AtomicI32::new(-1)).collect(),
            connections: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            stats: (0..shard_count)
                .map(|_| Mutex::new(ShardStats::default()))
                .collect(),
            mailboxes,
            system_events: OnceLock::new(),
            cluster,
        }))
    }

    /// For tests of a shard's parts (no ring, no listener, no thread reading the mailboxes).
    #[cfg(test)]
    pub fn for_tests(shard_count: usize, options: crate::config::Options) -> Arc<Shared> {
        let mailboxes = (0..shard_count)
            .map(|_| control::Mailbox::new().expect("a pipe").0)
            .collect();
        let info = crate::proto::json::Info::default();
        Shared::new(Settings::new(options, info, None, None), mailboxes, None).expect("a thread")
    }
}
