//! The way into a running shard from other threads: a mailbox of [`Control`] commands, and a
//! doorbell (a pipe the shard always has one read armed on) that makes its loop look at the
//! mailbox. A shard owns everything it touches, so every question or order from outside (stop,
//! a monitoring question, a configuration reload) is a command here, answered by the
//! shard at a safe point of its loop (between completions), never a lock on its state.
//!
//! Invariants: the doorbell is rung only when a command lands in an empty mailbox, and the
//! shard empties the mailbox on every ring it reads, so at most a few bytes ever wait in the
//! pipe and `send` never blocks. Once the shard's loop has ended, the mailbox is closed: a
//! command sent then is dropped at once (a reply channel in it reports the disconnection), so
//! nobody waits on a shard that is gone.
//!
//! Must not: carry anything a shard needs per message (those are snapshots swapped in here,
//! read without locks afterwards).

use std::collections::VecDeque;
use std::io::{self, PipeReader, PipeWriter, Write};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use super::settings::Settings;
use crate::auth::authenticate::Identity;
use crate::auth::verifier::Verification;

use crate::stats::{AccountTraffic, ConnInfo, RouteConnInfo, ShardStats, SubInfo, TableStats};

/// An order or a question for one shard.
pub enum Control {
    /// Close every connection and end the loop.
    Stop,
    /// Answer with the shard's counters as they are now (not the last tick's copy), the
    /// gauges measured now.
    Stats(Sender<ShardStats>),
    /// Answer with the open client connections in the slots after `after` (from the first
    /// when `None`): at most `max` of them (at least one, when any is left), with their
    /// subscriptions when `subs`; and the cursor to ask with next (`None`: no slot is left).
    /// Slots are visited in order, so asking on with each cursor lists every connection open
    /// throughout exactly once (one opened or closed meanwhile may or may not be listed).
    OpenConnections {
        after: Option<u32>,
        max: usize,
        subs: bool,
        reply: Sender<(Vec<ConnInfo>, Option<u32>)>,
    },
    /// Answer with the shard's closed connections, oldest first (at most
    /// `max_closed_clients`): the records are shared, so this copies pointers.
    ClosedConnections(Sender<Vec<Arc<ConnInfo>>>),
    /// Answer with the subscriptions in the slots after `after` (from the first when `None`),
    /// at most `max`, and the cursor to ask with next (`None`: no slot is left); as
    /// `OpenConnections`.
    Subscriptions {
        after: Option<u32>,
        max: usize,
        reply: Sender<(Vec<SubInfo>, Option<u32>)>,
    },
    /// Answer with the shard's registered routes, with the keys of interest each peer sent
    /// when `subs`. A shard has at most one route per peer server, so this is never long;
    /// the keys are as many as the peers' interest.
    Routes {
        subs: bool,
        reply: Sender<Vec<RouteConnInfo>>,
    },
    /// Answer with this shard's match cache figures for each account (indexed by
    /// `AccountId`); the tables' own figures (subscriptions, inserts, removes) are shared by
    /// every shard, so they are left 0 here (`Shared::table_stats` reads them once).
    TableStats(Sender<Vec<TableStats>>),
    /// Answer with each account's traffic on the shard (indexed by `AccountId`).
    AccountTraffic {
        after: Option<u32>,
        max: usize,
        reply: Sender<(Vec<Vec<AccountTraffic>>, Option<u32>)>,
    },
    /// Work with these settings from now on (a configuration reload); answer once they are
    /// in force on this shard.
    Reload(Arc<Settings>, Sender<()>),
    /// Enter lame duck mode: stop accepting clients (the client listeners close, so new
    /// clients are refused; routes are still accepted) and tell every client that can hear it
    /// (an INFO with `"ldm":true`, listing these client URLs from now on, in a cluster: the
    /// other servers'). Answered with how many clients are open.
    LameDuck(Option<Arc<[String]>>, Sender<usize>),
    /// Close this many open clients (or all there are) for this cause. Answered with how many
    /// were closed and how many stay open.
    CloseClients(usize, CloseCause, Sender<(usize, usize)>),
    /// Open the system connection on this stream (shard 0 only; see `system`): the system
    /// service holds the other end. Dropped (closed) when there is no system account or the
    /// shard is stopping.
    AttachSystem(std::os::unix::net::UnixStream),
    /// Open a route on this socket, which the cluster's dialer connected for `target`
    /// (`route`). Dropped (closed, the target told) when the shard is stopping.
    AttachRoute(std::net::TcpStream, Arc<crate::cluster::dialer::DialTarget>),
    /// Lines for this shard's routes wait in their outboxes (`cluster::Outbox`).
    RouteOutbox,
    /// The cluster's client URLs changed (a route registered or closed): clients' INFO lists
    /// these from now on, and clients that take async INFO get one now.
    ClientUrls(Arc<[String]>),
    /// A reload removed these routes from the configuration: routes this server dialed for
    /// them close (`RouteRemoved`).
    RoutesRemoved(Arc<[crate::cluster::dialer::RouteUrl]>),
    /// The verifier's answer to check number `check` of the connection in `slot` (if it is
    /// still `generation`): the identity its credentials proved, or `None` (the bcrypt check
    /// failed).
    Verified {
        slot: u32,
        generation: u32,
        check: u32,
        identity: Option<Arc<Identity>>,
        verification: Verification,
    },
}

impl Control {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Control::Stop => "Stop",
            Control::Stats(_) => "Stats",
            Control::OpenConnections { .. } => "OpenConnections",
            Control::ClosedConnections(_) => "ClosedConnections",
            Control::Subscriptions { .. } => "Subscriptions",
            Control::Routes { .. } => "Routes",
            Control::TableStats(_) => "TableStats",
            Control::AccountTraffic { .. } => "AccountTraffic",
            Control::Reload(..) => "Reload",
            Control::LameDuck(..) => "LameDuck",
            Control::CloseClients(..) => "CloseClients",
            Control::AttachSystem(_) => "AttachSystem",
            Control::AttachRoute(..) => "AttachRoute",
            Control::RouteOutbox => "RouteOutbox",
            Control::ClientUrls(_) => "ClientUrls",
            Control::RoutesRemoved(_) => "RoutesRemoved",
            Control::Verified { .. } => "Verified",
        }
    }
}

/// Why the server closes clients that did nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// Lame duck mode: closed after their output is flushed (`ServerShutdown`).
    LameDuck,
    /// A reload lowered `max_connections` below the clients open: `-ERR 'maximum connections
    /// exceeded'`, then closed, as nats-server's reload does.
    MaxConnections,
}

/// One shard's mailbox (the sending side, shared by every thread that may send).
pub struct Mailbox {
    /// None once the shard's loop has ended.
    queue: Mutex<Option<VecDeque<Control>>>,
    doorbell: PipeWriter,
}

impl Mailbox {
    /// A mailbox and the read end of its doorbell, for the shard.
    pub fn new() -> io::Result<(Mailbox, PipeReader)> {
        let (reader, doorbell) = io::pipe()?;
        let mailbox = Mailbox {
            queue: Mutex::new(Some(VecDeque::new())),
            doorbell,
        };
        Ok((mailbox, reader))
    }

    /// Sends `control`; false when the shard has ended (the command is dropped).
    pub fn send(&self, control: Control) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = queue.as_mut() else {
            return false;
        };
        let was_empty = queue.is_empty();
        queue.push_back(control);
        if was_empty {
            // Under the lock, so the shard cannot have taken this command and gone back to
            // sleep before the ring. A failed write means the shard's end is closed: its loop
            // is ending, and it closes the mailbox (dropping this command) when it has.
            let _ = (&self.doorbell).write_all(&[1]);
        }
        true
    }

    /// Every command waiting, oldest first (the shard, after its doorbell rang).
    pub(super) fn take(&self) -> VecDeque<Control> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Ends the mailbox: what is waiting is dropped and later sends are refused. Called when the
    /// shard's loop has ended, whichever way.
    pub fn close(&self) {
        let waiting = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(waiting);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn rings_once_per_batch_and_refuses_after_close() {
        let (mailbox, mut doorbell) = Mailbox::new().unwrap();
        assert!(mailbox.send(Control::Stop));
        assert!(mailbox.send(Control::Stop));
        let mut rung = [0u8; 8];
        assert_eq!(
            doorbell.read(&mut rung).unwrap(),
            1,
            "one ring for two commands"
        );
        assert_eq!(mailbox.take().len(), 2);
        assert!(mailbox.take().is_empty());
        // A command in an empty mailbox rings again.
        assert!(mailbox.send(Control::Stop));
        assert_eq!(doorbell.read(&mut rung).unwrap(), 1);
        // After close, waiting and later commands are dropped: their reply channels disconnect.
        let (reply, answers) = mpsc::channel();
        assert!(mailbox.send(Control::ClosedConnections(reply)));
        mailbox.close();
        assert!(answers.recv().is_err());
        let (reply, answers) = mpsc::channel();
        assert!(!mailbox.send(Control::Stats(reply)));
        assert!(answers.recv().is_err());
        assert!(mailbox.take().is_empty());
    }
}
