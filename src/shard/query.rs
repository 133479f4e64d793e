//! The monitoring questions other threads (the monitor, `ServerHandle`) ask the shards, as
//! blocking helpers on `Shared`: each sends every shard its `Control` command, waits for the
//! answers, and puts them together (the shards answer from their own state between
//! completions: see `monitoring`). A shard that has ended answers nothing, and is left out.
//!
//! Large answers are asked for in chunks (`limits::MONITOR_*`): every shard still having some
//! is asked for its next chunk at once, then every answer is waited for, round after round.
//! So a shard pauses for one chunk at a time, and the shards work on one question together.
//!
//! Must not: be called from a shard's own thread (it would wait for itself).

use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use super::control::Control;
use super::shared::Shared;
use crate::limits;
use crate::stats::{AccountTraffic, ConnInfo, RouteConnInfo, ShardStats, SubInfo, TableStats};

/// One chunk's answer: the items, and the cursor to ask with next (`None`: no more).
type Chunk<T> = (Vec<T>, Option<u32>);

impl Shared {
    /// Every shard's counters now (not the last tick's), in shard order; a shard that has
    /// ended gives its last published ones.
    pub fn shard_stats_now(&self) -> Vec<ShardStats> {
        let (reply_senders, answers): (Vec<_>, Vec<_>) =
            (0..self.shard_count).map(|_| mpsc::channel()).unzip();
        let asked: Vec<bool> = self
            .mailboxes
            .iter()
            .zip(reply_senders)
            .map(|(mailbox, reply)| mailbox.send(Control::Stats(reply)))
            .collect();
        answers
            .into_iter()
            .zip(asked)
            .enumerate()
            .map(|(shard, (answer, asked))| {
                asked
                    .then(|| answer.recv().ok())
                    .flatten()
                    .unwrap_or_else(|| self.published_stats(shard))
            })
            .collect()
    }

    /// The counters shard `shard` published last.
    fn published_stats(&self, shard: usize) -> ShardStats {
        *self.stats[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every open client connection on every shard, with their subscriptions when `subs`,
    /// sorted by cid.
    pub fn open_connections(&self, subs: bool) -> Vec<ConnInfo> {
        self.open_connections_in_chunks(subs, limits::MONITOR_CONNECTIONS_PER_CHUNK)
    }

    /// `open_connections`, asking each shard for at most `per_chunk` connections at a time.
    pub fn open_connections_in_chunks(&self, subs: bool, per_chunk: usize) -> Vec<ConnInfo> {
        let mut all: Vec<ConnInfo> = self
            .ask_in_chunks(|after, reply| Control::OpenConnections {
                after,
                max: per_chunk,
                subs,
                reply,
            })
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|conn| conn.cid);
        all
    }

    /// The closed connections of every shard, oldest first (by the time they closed), the
    /// newest `max_closed_clients` of them.
    pub fn closed_connections(&self) -> Vec<Arc<ConnInfo>> {
        let mut all: Vec<Arc<ConnInfo>> = self
            .ask_every_shard(Control::ClosedConnections)
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|conn| (conn.stop, conn.cid));
        let keep = self.settings().options.max_closed_clients as usize;
        let excess = all.len().saturating_sub(keep);
        all.drain(..excess);
        all
    }

    /// Every subscription on every shard (shard by shard).
    pub fn subscriptions(&self) -> Vec<SubInfo> {
        self.subscriptions_in_chunks(limits::MONITOR_SUBSCRIPTIONS_PER_CHUNK)
    }

    /// `subscriptions`, asking each shard for at most `per_chunk` at a time.
    pub fn subscriptions_in_chunks(&self, per_chunk: usize) -> Vec<SubInfo> {
        self.ask_in_chunks(|after, reply| Control::Subscriptions {
            after,
            max: per_chunk,
            reply,
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// Every registered route on every shard, sorted by rid, with the keys of interest each
    /// peer sent when `subs`.
    pub fn routes(&self, subs: bool) -> Vec<RouteConnInfo> {
        let mut all: Vec<RouteConnInfo> = self
            .ask_every_shard(|reply| Control::Routes { subs, reply })
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|route| route.rid);
        all
    }

    /// Each account's subject table with the shards' caches for it, in `AccountId` order
    /// (`$G` first): the table's counts read once, the caches' figures summed over the shards.
    pub fn table_stats(&self) -> Vec<TableStats> {
        let shards = self.ask_every_shard(Control::TableStats);
        let settings = self.settings();
        settings
            .accounts
            .iter()
            .enumerate()
            .map(|(index, account)| {
                let (subscriptions, inserts, removes) = account.sublist.counts();
                let mut total = TableStats {
                    account: account.name.clone(),
                    subscriptions: subscriptions as u64,
                    inserts,
                    removes,
                    ..TableStats::default()
                };
                for shard in shards.iter().filter_map(|shard| shard.get(index)) {
                    total.add_cache(shard);
                }
                total
            })
            .collect()
    }

    /// Every account's traffic, added up over the shards, in `AccountId` order (`$G` first).
    pub fn account_traffic(&self) -> Vec<AccountTraffic> {
        let mut total: Vec<AccountTraffic> = Vec::new();
        let chunks = self.ask_in_chunks(|after, reply| Control::AccountTraffic {
            after,
            max: limits::MONITOR_CONNECTIONS_SUMMED_PER_CHUNK,
            reply,
        });
        for chunk in chunks.iter().flatten() {
            for (index, traffic) in chunk.iter().enumerate() {
                match total.get_mut(index) {
                    Some(sum) => sum.add(traffic),
                    None => total.push(traffic.clone()),
                }
            }
        }
        total
    }

    /// Asks every shard for chunks of something until each has said it has no more: each
    /// round sends every shard not done the command `ask` makes with its cursor, then waits
    /// for all of them. Returns each shard's items, in shard order. A shard's cursor only
    /// moves forward, so this ends.
    fn ask_in_chunks<T>(
        &self,
        ask: impl Fn(Option<u32>, Sender<Chunk<T>>) -> Control,
    ) -> Vec<Vec<T>> {
        let mut found: Vec<Vec<T>> = (0..self.shard_count).map(|_| Vec::new()).collect();
        // Per shard: None once done, else the cursor to ask with (None: from the start).
        let mut cursors: Vec<Option<Option<u32>>> = vec![Some(None); self.shard_count];
        while cursors.iter().any(Option::is_some) {
            let answers: Vec<_> = cursors
                .iter()
                .zip(&self.mailboxes)
                .map(|(cursor, mailbox)| {
                    let after = (*cursor)?;
                    let (reply, answer) = mpsc::channel();
                    mailbox.send(ask(after, reply)).then_some(answer)
                })
                .collect();
            for ((answer, cursor), found) in answers.into_iter().zip(&mut cursors).zip(&mut found) {
                let before = *cursor;
                *cursor = match answer.and_then(|answer| answer.recv().ok()) {
                    Some((items, next)) => {
                        found.extend(items);
                        next.map(Some)
                    }
                    None => None,
                };
                debug_assert!(
                    match (before, *cursor) {
                        (Some(Some(before)), Some(Some(next))) => next > before,
                        _ => true,
                    },
                    "a shard's cursor moves forward"
                );
            }
        }
        found
    }
}
