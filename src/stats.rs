//! Per-shard counters (plain integers, written only by their shard) and the snapshot each shard
//! publishes on its timer tick for the rest of the server to read. No atomics per message.
//! Also the shapes of what the shards answer the monitor with (`ConnInfo`, `SubInfo`,
//! `TableStats`, `AccountTraffic`), built from their state when asked, never per message, and
//! the events they send the system service (`SystemEvent`).

use std::time::SystemTime;

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
    /// Of `in_msgs`/`in_bytes`, the messages that came in on cluster routes (nats-server
    /// counts them in `in_msgs`, not in `in_client_msgs`).
    pub route_in_msgs: u64,
    pub route_in_bytes: u64,
    /// Of `out_msgs`/`out_bytes`, the messages written to cluster routes.
    pub route_out_msgs: u64,
    pub route_out_bytes: u64,
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
    /// Turns of the event loop (each enters the ring once, or twice when it watched for work
    /// before sleeping): submissions per round are `sqes_submitted / loop_rounds`.
    pub loop_rounds: u64,
    /// Submission queue entries handed to the kernel.
    pub sqes_submitted: u64,
    /// A gauge: bytes waiting now in this shard's outgoing cross-shard queues (frames not yet
    /// taken by their peer), measured when the counters are asked for or published.
    pub peer_queue_bytes: u64,
    /// The longest the shard spent answering its mailbox at once (monitoring questions,
    /// reloads, ...), in CPU time of its thread: how long it served no client for it. A
    /// maximum since start.
    pub mailbox_answer_max_ns: u64,
    /// Visits to the mailbox (each answers every command waiting).
    pub mailbox_answers: u64,
    /// Of those, the ones that took over a millisecond of the shard's CPU time. On a virtual
    /// machine that time includes what the host stole from the vCPU meanwhile.
    pub mailbox_answers_over_1ms: u64,
}

impl ShardStats {
    /// The sum of several shards' counters.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a ShardStats>) -> ShardStats {
        all.into_iter().fold(ShardStats::default(), |mut acc, s| {
            acc.in_msgs += s.in_msgs;
            acc.in_bytes += s.in_bytes;
            acc.out_msgs += s.out_msgs;
            acc.out_bytes += s.out_bytes;
            acc.route_in_msgs += s.route_in_msgs;
            acc.route_in_bytes += s.route_in_bytes;
            acc.route_out_msgs += s.route_out_msgs;
            acc.route_out_bytes += s.route_out_bytes;
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
            acc.mailbox_answer_max_ns = acc.mailbox_answer_max_ns.max(s.mailbox_answer_max_ns);
            acc.mailbox_answers += s.mailbox_answers;
            acc.mailbox_answers_over_1ms += s.mailbox_answers_over_1ms;
            acc
        })
    }
}

/// One client connection as its shard saw it (`Shared::open_connections`), or as it was when
/// it closed (`Shared::closed_connections`): what the monitor's `/connz` serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// nats-server's `cid`, unique across the server.
    pub cid: u64,
    /// The shard the connection is (or was) on.
    pub shard: u16,
    /// The client's IP address, without the port (an IPv6 one without brackets); empty when
    /// the socket could not tell.
    pub ip: String,
    pub port: u16,
    /// When it was accepted.
    pub start: SystemTime,
    /// When it last sent something (nats-server's `last_activity`; its accept until then).
    /// To the shard clock's precision: the start of the loop round that received the bytes.
    pub last_activity: SystemTime,
    /// When it closed (began closing); `None` while open.
    pub stop: Option<SystemTime>,
    /// Why it closed (`CloseReason::as_str`, nats-server's text); `None` while open.
    pub reason: Option<&'static str>,
    /// The round trip of the server's last PING, 0 until one came back.
    pub rtt_ns: u64,
    /// Output queued and not yet written to the socket.
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    /// Subscriptions it has (had, when it closed).
    pub subscriptions: usize,
    /// From CONNECT (empty before it).
    pub name: String,
    pub lang: String,
    pub version: String,
    /// Who its credentials say it is, as nats-server's `/connz?auth=1` shows
    /// (`getRawAuthUser`): the nkey, else the user name, else the user JWT's public key, else
    /// `[REDACTED]` for a token; empty without credentials.
    pub authorized_user: String,
    /// The account it is in (`$G` unless authentication put it in another).
    pub account: String,
    /// Operator mode: the user JWT it connected with (empty otherwise).
    pub jwt: String,
    /// Operator mode fields nats-server shows with `auth=1`; left empty for now.
    pub issuer_key: String,
    pub name_tag: String,
    pub tags: Vec<String>,
    /// Its subscriptions: for an open connection only when asked for; for a closed one always,
    /// at most `limits::CLOSED_CONNECTION_SUBSCRIPTIONS_MAX` of them.
    pub subs: Vec<SubInfo>,
    /// What its TLS handshake negotiated; `None` for a plain connection (or one whose
    /// handshake has not ended).
    pub tls: Option<TlsInfo>,
}

/// A TLS connection's negotiated parameters, as nats-server's `/connz` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"1.2"`, `"1.3"`.
    pub version: &'static str,
    /// Go's name of the cipher suite (`TLS_AES_128_GCM_SHA256`).
    pub cipher_suite: String,
    /// The handshake came before INFO (`handshake_first`).
    pub first: bool,
    /// The certificates the client sent, leaf first (`/connz?auth=1` `tls_peer_certs`); left
    /// empty for closed connections, as nats-server keeps them only while open.
    pub peer_certs: Vec<crate::tls::PeerCert>,
}

impl ConnInfo {
    /// `ip:port`, with an IPv6 address in brackets.
    pub fn peer(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}

/// What a shard tells the system service (`Shared::system_events`): once per client
/// connection's CONNECT and close, never per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    /// A client completed its CONNECT (authenticated, in its account): its `ConnInfo` (no
    /// subscriptions). nats-server's `accountConnectEvent`; sent again if a later CONNECT
    /// authenticates it again.
    Connect(ConnInfo),
    /// A client that was announced with `Connect` closed: `stop` and `reason` set, final
    /// counters. nats-server's `accountDisconnectEvent`.
    Disconnect(ConnInfo),
}

/// One registered route as its shard saw it (`Shared::routes`): what the monitor's `/routez`
/// serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConnInfo {
    /// The route connection's id (its `client_id`, nats-server's `rid`).
    pub rid: u64,
    pub shard: u16,
    /// The peer server, as its INFO named it.
    pub remote_id: String,
    pub remote_name: String,
    /// This server dialed it.
    pub did_solicit: bool,
    /// This server dialed it for a configured route (not one learned by gossip).
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
    pub start: std::time::SystemTime,
    pub last_activity: std::time::SystemTime,
    pub rtt_ns: u64,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    /// The route permissions the peer's INFO announced (`import`, `export`).
    pub peer_import: Option<crate::auth::SubjectPermission>,
    pub peer_export: Option<crate::auth::SubjectPermission>,
    /// How many keys of interest (account, subject, queue) the peer sent.
    pub subscriptions: usize,
    /// Those keys, when asked for (sorted by account, subject, queue).
    pub subs: Vec<RemoteInterest>,
}

/// One key of interest a route's peer sent (`RS+`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteInterest {
    pub account: String,
    pub subject: String,
    pub queue: Option<String>,
}

/// One subscription (nats-server's `SubDetail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubInfo {
    pub account: String,
    pub subject: String,
    pub queue: Option<String>,
    pub sid: String,
    /// Messages delivered to it.
    pub msgs: u64,
    /// Its auto-unsubscribe limit (`UNSUB <sid> <max>`), if any.
    pub max: Option<u64>,
    /// Its connection's cid.
    pub cid: u64,
}

/// One account's subject table and the shards' match caches for it, summed over the shards
/// (nats-server's `SublistStats`; `/subsz` and `/accstatz`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    pub account: String,
    /// Subscriptions in the table now.
    pub subscriptions: u64,
    /// Match results cached now, over every shard's cache.
    pub cache_entries: u64,
    /// Subscriptions ever added to the table (an insert of one already there is not counted).
    pub inserts: u64,
    /// Subscriptions ever removed from it.
    pub removes: u64,
    /// Lookups of a published subject (cache hits and misses).
    pub matches: u64,
    /// Of those, the ones answered by a cache.
    pub cache_hits: u64,
    /// The largest fanout (plain subscribers plus queue groups) of a cached result.
    pub max_fanout: u64,
    /// The fanouts of the cached results added up, over `cache_results` results (their average
    /// is nats-server's `avg_fanout`).
    pub fanout_sum: u64,
    pub cache_results: u64,
}

impl TableStats {
    /// Adds a shard's cache figures (`cache_entries`, `matches`, `cache_hits`, fanouts) to
    /// these. The table's own figures (`subscriptions`, `inserts`, `removes`) are the table's,
    /// not a shard's: they are left alone.
    pub fn add_cache(&mut self, other: &TableStats) {
        self.cache_entries += other.cache_entries;
        self.matches += other.matches;
        self.cache_hits += other.cache_hits;
        self.max_fanout = self.max_fanout.max(other.max_fanout);
        self.fanout_sum += other.fanout_sum;
        self.cache_results += other.cache_results;
    }
}

/// One account's traffic: what its clients published and received, the closed ones included,
/// as nats-server's account statistics count it (for `/accountz` and `/accstatz`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountTraffic {
    pub account: String,
    /// Client connections open in it now.
    pub connections: u64,
    /// Client connections that ever joined it (counted when one joins).
    pub total_connections: u64,
    /// Its connections closed as slow consumers (counted when one closes).
    pub slow_consumers: u64,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

impl AccountTraffic {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &AccountTraffic) {
        self.connections += other.connections;
        self.total_connections += other.total_connections;
        self.slow_consumers += other.slow_consumers;
        self.in_msgs += other.in_msgs;
        self.in_bytes += other.in_bytes;
        self.out_msgs += other.out_msgs;
        self.out_bytes += other.out_bytes;
    }
}
