//! Per-shard counters (plain integers, written only by their shard) and the snapshot each shard
//! publishes on its timer tick for the rest of the server to read. No atomics per message.

/// Counters of one shard. Only the owning shard writes them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Messages received from clients (PUB and HPUB).
    pub in_msgs: u64,
    pub in_bytes: u64,
    /// Messages written to subscribers.
    pub out_msgs: u64,
    /// Their headers and payloads (as nats-server counts: not the MSG lines).
    pub out_bytes: u64,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Connections open now.
    pub connections: u64,
    /// Subscribers closed for exceeding max_pending or the write deadline.
    pub slow_consumers: u64,
    /// Connections closed for not answering PINGs.
    pub stale_connections: u64,
    /// Completions that named a connection slot no longer holding their connection.
    pub stale_completions: u64,
    /// Times a publisher's reading was paused for a subscriber over its high-water mark.
    pub publisher_pauses: u64,
    /// Cross-shard targets found gone on arrival (closed, unsubscribed, limit reached).
    pub cross_shard_stale_targets: u64,
    /// Wake-ups (`MSG_RING`) sent to peer shards.
    pub peer_wakeups: u64,
    /// Wake-ups that failed (the peer was busy with a full completion queue, or stopping).
    pub peer_wakeups_failed: u64,
    /// Queue-group messages passed on to another shard because no member listed could take it.
    pub queue_messages_passed_on: u64,
    /// Queue-group messages dropped because the group had no member left to take them.
    pub queue_messages_dropped: u64,
    /// Times a peer's queue was held because a subscriber it feeds was over its high-water mark.
    pub peer_holds: u64,
    /// Idle periods (a round's work submitted, nothing ready) the shard watched its ring
    /// through instead of sleeping at once (`--busy_poll`, `SpinPolicy`).
    pub idle_watched: u64,
    /// Of those, the ones that ended within the window (work came before the shard slept).
    pub idle_watch_hits: u64,
    /// Of the watched ones, those watched without yielding the core, because bcrypt checks
    /// were waiting or being made (the verifier was runnable: see `auth::verifier`).
    pub idle_watched_verifying: u64,
    /// Receive completions (each carries one buffer of data, an end of file or an error).
    pub recv_completions: u64,
    /// Multishot receives ended because the buffer ring was empty (ENOBUFS): each is re-armed
    /// at the end of the round.
    pub recv_no_buffers: u64,
    /// Multishot receives armed (a connection's first, and every re-arm after one ended).
    pub recv_arms: u64,
    /// Turns of the event loop.
    pub loop_rounds: u64,
    /// Submission queue entries submitted.
    pub sqes_submitted: u64,
    /// Gauge: bytes waiting in this shard's outgoing cross-shard queues when read.
    pub peer_queue_bytes: u64,
}

impl ShardStats {
    /// The sum of several shards' counters.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a ShardStats>) -> ShardStats {
        all.into_iter().fold(ShardStats::default(), |mut acc, s| {
            acc.in_msgs += s.in_msgs;
            acc.in_bytes += s.in_bytes;
            acc.out_msgs += s.out_msgs;
            acc.out_bytes += s.out_bytes;
            acc.total_connections += s.total_connections;
            acc.connections += s.connections;
            acc.slow_consumers += s.slow_consumers;
            acc.stale_connections += s.stale_connections;
            acc.stale_completions += s.stale_completions;
            acc.publisher_pauses += s.publisher_pauses;
            acc.cross_shard_stale_targets += s.cross_shard_stale_targets;
            acc.peer_wakeups += s.peer_wakeups;
            acc.peer_wakeups_failed += s.peer_wakeups_failed;
            acc.queue_messages_passed_on += s.queue_messages_passed_on;
            acc.queue_messages_dropped += s.queue_messages_dropped;
            acc.peer_holds += s.peer_holds;
            acc.idle_watched += s.idle_watched;
            acc.idle_watch_hits += s.idle_watch_hits;
            acc.idle_watched_verifying += s.idle_watched_verifying;
            acc.recv_completions += s.recv_completions;
            acc.recv_no_buffers += s.recv_no_buffers;
            acc.recv_arms += s.recv_arms;
            acc.loop_rounds += s.loop_rounds;
            acc.sqes_submitted += s.sqes_submitted;
            acc.peer_queue_bytes += s.peer_queue_bytes;
            acc
        })
    }
}

/// One open client connection as its shard saw it when asked (`ServerHandle::connections`;
/// what the monitor's `/connz` will serve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// nats-server's `cid`, unique across the server.
    pub cid: u64,
    /// The shard the connection is on.
    pub shard: u16,
    /// The client's address as `ip:port`.
    pub peer: String,
    /// From CONNECT (empty before it).
    pub name: String,
    pub lang: String,
    pub version: String,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    /// Output queued and not yet written to the socket.
    pub pending_bytes: usize,
    /// The account it is in (`$G` unless authentication put it in another).
    pub account: String,
}

/// One account's traffic: what its clients published and received, the closed ones included,
/// as nats-server's account statistics count it (for `/accountz` and `/accstatz`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountTraffic {
    pub account: String,
    /// Client connections open in it now.
    pub connections: u64,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    /// Client connections that joined it since start.
    pub total_connections: u64,
    /// Its clients closed as slow consumers.
    pub slow_consumers: u64,
}

impl AccountTraffic {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &AccountTraffic) {
        self.connections += other.connections;
        self.in_msgs += other.in_msgs;
        self.in_bytes += other.in_bytes;
        self.out_msgs += other.out_msgs;
        self.out_bytes += other.out_bytes;
        self.total_connections += other.total_connections;
        self.slow_consumers += other.slow_consumers;
    }
}
