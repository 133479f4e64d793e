//! Every numeric bound of the server in one place, each with the reason for its value.
//!
//! Defaults that mirror nats-server (const.go / opts.go) say so; the rest are natsring's own
//! and are checked against each other at compile time at the bottom of this file.
//! This module imports nothing: every other module may read it.

/// Default client port (nats-server `DEFAULT_PORT`).
pub const PORT_DEFAULT: u16 = 4222;
/// Default bind address (nats-server `DEFAULT_HOST`).
pub const HOST_DEFAULT: &str = "0.0.0.0";

/// Largest payload a client may publish, by default (nats-server `MAX_PAYLOAD_SIZE`, 1 MiB).
pub const PAYLOAD_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// The hard ceiling for a configured `max_payload` (nats-server rejects larger: 2^31-1 fits a Go int32).
pub const PAYLOAD_BYTES_MAX_CEILING: u32 = i32::MAX as u32;
/// Longest control line (the op and its arguments, before the payload), by default
/// (nats-server `MAX_CONTROL_LINE_SIZE`).
pub const CONTROL_LINE_BYTES_MAX_DEFAULT: u32 = 4096;
/// A route's control line limit is this many times `max_control_line` (nats-server's
/// `overMaxControlLineLimit` for non-client connections: RMSG lines carry an account, a reply
/// and queue names; 64 KiB by default).
pub const ROUTE_CONTROL_LINE_FACTOR: u32 = 16;
/// Outbound bytes a client may have pending before it is a slow consumer
/// (nats-server `MAX_PENDING_SIZE`, 64 MiB).
pub const PENDING_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Maximum connections by default (nats-server `DEFAULT_MAX_CONNECTIONS`, 64K).
pub const CONNECTIONS_MAX_DEFAULT: u32 = 64 * 1024;

/// Interval between server PINGs (nats-server `DEFAULT_PING_INTERVAL`, 2 minutes).
pub const PING_INTERVAL_MS_DEFAULT: u64 = 2 * 60 * 1000;
/// PINGs outstanding before the connection is stale (nats-server `DEFAULT_PING_MAX_OUT`).
pub const PINGS_OUTSTANDING_MAX_DEFAULT: u32 = 2;
/// The first server PING comes this soon after CONNECT at the latest (plus jitter), so that
/// clients learn their RTT and get the async INFO (nats-server `firstPingInterval`).
pub const FIRST_PING_INTERVAL_MS: u64 = 2_000;
/// How long a flush may stall before the subscriber is a slow consumer
/// (nats-server `DEFAULT_FLUSH_DEADLINE`, 10 s).
pub const WRITE_DEADLINE_MS_DEFAULT: u64 = 10_000;
/// Lame duck mode's whole length by default (nats-server `DEFAULT_LAME_DUCK_DURATION`).
pub const LAME_DUCK_DURATION_MS_DEFAULT: u64 = 2 * 60 * 1000;
/// The shortest `lame_duck_duration` a configuration file may set (nats-server refuses less).
pub const LAME_DUCK_DURATION_MS_MIN: u64 = 30_000;
/// Lame duck mode closes no client for this long by default, so clients can move on their own
/// (nats-server `DEFAULT_LAME_DUCK_GRACE_PERIOD`).
pub const LAME_DUCK_GRACE_PERIOD_MS_DEFAULT: u64 = 10_000;
/// How long a client's TLS handshake may take before the connection is closed (nats-server
/// `TLS_TIMEOUT`, 2 s; `tls { timeout }`).
pub const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// The longest `tls { timeout }` a file may set, in seconds (a float, as nats-server reads it):
/// a handshake slower than an hour is a stuck client, and the bound keeps the conversion to a
/// `Duration` exact.
pub const TLS_HANDSHAKE_TIMEOUT_SECONDS_MAX: f64 = 3_600.0;
/// With `handshake_first: auto`, how long the server waits for a client's TLS hello before it
/// sends INFO in the clear (nats-server `DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY`, 50 ms).
pub const TLS_HANDSHAKE_FIRST_FALLBACK_MS_DEFAULT: u64 = 50;
/// Of repeated failed connect attempts, every this many is logged (nats-server
/// `DEFAULT_CONNECT_ERROR_REPORTS`: once an hour at one attempt a second).
pub const CONNECT_ERROR_REPORTS_DEFAULT: u32 = 3600;
/// Of repeated failed reconnect attempts, every this many is logged (nats-server
/// `DEFAULT_RECONNECT_ERROR_REPORTS`: each one).
pub const RECONNECT_ERROR_REPORTS_DEFAULT: u32 = 1;
/// A SUB over `max_subscriptions` is logged at most once per this long (nats-server
/// `defaultMaxSubLimitReportThreshold`): a client looping on it must not flood the log.
pub const MAX_SUBSCRIPTIONS_LOG_INTERVAL_MS: u64 = 2_000;

/// Permissions (`auth::permissions`), per connection of a user that has them.
///
/// Publish decisions cached per connection (nats-server `maxPermCacheSize`). A miss costs a
/// walk of the user's allow and deny tries, so a small cache is enough; over the bound it is
/// emptied, which is what nats-server's pruning amounts to on one connection.
pub const PUBLISH_PERMISSION_CACHE_ENTRIES_MAX: usize = 128;
/// Delivery-time subscribe-deny decisions cached per connection (nats-server
/// `maxDenyPermCacheSize`).
pub const DELIVERY_DENY_CACHE_ENTRIES_MAX: usize = 256;
/// Entries dropped from that cache when it goes over its bound (nats-server deletes until it
/// has deleted more than `pruneSize` = 32).
pub const DELIVERY_DENY_CACHE_PRUNE_ENTRIES: usize = 33;
/// `allow_responses`: reply subjects tracked since the last prune that trigger the next one
/// (nats-server `replyPermLimit`).
pub const RESPONSE_PERMITS_PRUNE_INSERTS: u32 = 4096;
/// `allow_responses`: a reply tracked this long after the last prune triggers the next one
/// (nats-server `replyPruneTime`).
pub const RESPONSE_PERMITS_PRUNE_INTERVAL_MS: u64 = 1_000;
/// `allow_responses`: reply subjects tracked per connection at most (natsring's own; nats-server
/// has no bound, so a responder that falls behind with unlimited `max`/`expires` grows without
/// limit). Past it, after pruning, the older half is forgotten: a responder more than 64Ki
/// requests behind loses the right to answer its oldest ones.
pub const RESPONSE_PERMITS_TRACKED_MAX: usize = 64 * 1024;
/// Closed connections remembered for monitoring (nats-server `DEFAULT_MAX_CLOSED_CLIENTS`).
pub const CLOSED_CLIENTS_MAX_DEFAULT: u32 = 10_000;
/// Subscriptions remembered per closed connection at most (nats-server keeps them all): a
/// closed client had any number of them, and `max_closed_clients` of them are kept, so only
/// this bound keeps the ring's memory bounded (10,000 × 1,024 small records at worst).
pub const CLOSED_CONNECTION_SUBSCRIPTIONS_MAX: usize = 512;
/// Connections one monitoring question (`Control::OpenConnections`) has a shard describe at
/// most: a `/connz` of any size is answered in chunks, so no shard pauses for long. Each
/// chunk also stops when `MONITOR_ANSWER_BUDGET_US` is spent. With 512 a shard paused 3-5 ms,
/// mostly growing the answer's vector past 128 and 256 descriptions (large reallocations into
/// fresh memory, scripts/monitor_cost.py); 128, allocated at once, stays well under 1 ms.
pub const MONITOR_CONNECTIONS_PER_CHUNK: usize = 128;
/// The time one chunk of connections or subscriptions may take a shard to describe, in
/// microseconds: the bound is 1 ms per pause.
pub const MONITOR_ANSWER_BUDGET_US: u64 = 250;
/// Connection slots one `Control::AccountTraffic` question adds up at most: summing is cheap
/// per connection (a few counters), but 2,048 of them took 0.7 ms, cold.
pub const MONITOR_CONNECTIONS_SUMMED_PER_CHUNK: usize = 1024;
/// Subscriptions one monitoring question (`Control::Subscriptions`, or the subscription
/// lists of `Control::OpenConnections`) has a shard describe at most, for the same reason.
pub const MONITOR_SUBSCRIPTIONS_PER_CHUNK: usize = 512;
/// Slab slots (vacant ones included) one chunk looks at per item it may answer with at most:
/// a sparse slab (many connections gone) costs more questions, never a longer pause.
pub const MONITOR_SLOTS_SCANNED_PER_ITEM: usize = 8;
/// Authentication timeout (nats-server `AUTH_TIMEOUT`, 2 s); runs only when auth is required.
pub const AUTH_TIMEOUT_MS_DEFAULT: u64 = 2_000;

/// Route connections per peer server (`cluster { pool_size }`, nats-server
/// `DEFAULT_ROUTE_POOL_SIZE`); a negative `pool_size` means one route and no pinned accounts.
pub const ROUTE_POOL_SIZE_DEFAULT: i32 = 3;
/// The longest interval between PINGs on a route (nats-server `routeMaxPingInterval`): a longer
/// `cluster { ping_interval }` is a warning and is capped to it.
pub const ROUTE_PING_INTERVAL_MS_MAX: u64 = 30_000;

/// How long a start waits for its address while another socket listens there, before it fails
/// as nats-server does (`bind: address already in use`). After `kill -9` the kernel tears the
/// dead server's io_uring down asynchronously, and until then its armed multishot accept keeps
/// the listener: 5-12 ms here (nats-server's port is free within 0.2 ms), while supervisors
/// and test harnesses restart at once. 2 s covers that teardown on a loaded machine many times
/// over, and still reports a port held by a live server promptly.
pub const ADDRESS_IN_USE_WAIT_MS_MAX: u64 = 2_000;
/// Pause between two tries while waiting for the address: a restart is late by at most this.
pub const ADDRESS_IN_USE_RETRY_MS: u64 = 1;

/// Submission queue entries per shard ring. A full queue is submitted and retried, so this
/// bounds batch size, not correctness.
pub const RING_ENTRIES: u32 = 4096;
/// Completion queue entries per shard ring (multishot ops post many CQEs per SQE).
pub const RING_COMPLETION_ENTRIES: u32 = 4 * RING_ENTRIES;
/// Entries of the ring that checks at start-up that io_uring is usable (`check_io_uring`), in
/// both of its queues: it runs one no-op, and is dropped at once.
pub const PROBE_RING_ENTRIES: u32 = 4;
/// Initial capacity of the batch of non-receive completions handled per round.
pub const COMPLETION_BATCH_MAX: usize = 512;
/// Received bytes one loop round handles before it flushes what they produced. Sends are queued
/// only between rounds, so this bounds how much one burst can pile onto a subscriber's
/// outbound before the kernel is given any of it.
pub const RECV_BYTES_PER_ROUND_MAX: usize = 512 * 1024;

/// Provided buffers per shard (a power of two, as the kernel requires), consumed incrementally
/// (`shard::buf_ring`): many small reads share a buffer, so the count need not cover the
/// connections that have data at once. The ring is also the depth of the shard's read-ahead:
/// the kernel fills it as fast as data arrives while the shard handles
/// `RECV_BYTES_PER_ROUND_MAX` per round, and a fast publisher's data is parsed that many bytes
/// after the kernel wrote it. It must stay within the core's L2 cache (1 MiB here) for the
/// parser and the payload copies to find the data there. At 64 buffers of 64 KiB (4 MiB), a 1
/// KiB publisher's data was out of L2 when parsed (the first load of each payload's trailer was
/// 10% of a cluster node's samples, the payload memmove another 14%); at 512 (32 MiB)
/// publish-only 16 B was 40.4 M msg/s against 45.6 at 64. Few large buffers also mean fewer
/// receives (and fewer window updates) per byte. Two-node cluster 1 KiB, both nodes' CPU per
/// message, in alternating runs of scripts/cluster-ab.sh (4-5 rounds each): 64 x 64 KiB 1238
/// ns, 16 x 64 KiB 1132, 64 x 16 KiB 1103, 32 x 32 KiB 1062, 16 x 128 KiB 928, 8 x 128 KiB
/// 840-891, 4 x 256 KiB 894. When the ring runs dry the kernel stops reading (ENOBUFS) until
/// buffers come back, and the receives it ended are re-armed.
pub const RECV_BUFFER_COUNT: u16 = 8;
/// Size of one provided receive buffer.
pub const RECV_BUFFER_BYTES: u32 = 128 * 1024;
/// Provided buffers per shard on a kernel that consumes each whole (before 6.12): every
/// receive takes one, so there must be enough for the connections with data at once (at 16, a
/// thousand publishers ran the ring dry on most receives, and their p99 went from 1.3 ms to
/// 1.3 s).
pub const RECV_BUFFER_COUNT_WHOLE: u16 = 64;
/// Size of one such buffer: big enough that a fast publisher's read carries many messages.
pub const RECV_BUFFER_BYTES_WHOLE: u32 = 64 * 1024;

/// Outbound bytes at which a subscriber pauses the publishers feeding it (the publisher stops
/// being read until this subscriber drains under the low-water mark). The mark in force is the
/// smaller of this and three quarters of `max_pending`, where nats-server starts stalling
/// producers.
pub const OUTBOUND_HIGH_WATER_BYTES: usize = 8 * 1024 * 1024;
/// Longest a publisher stays paused because of one slow subscriber before it is resumed
/// anyway (the subscriber then either drains or becomes a slow consumer at `max_pending`).
pub const PUBLISHER_PAUSE_MS_MAX: u64 = 10;

/// Published bytes (payloads) a publisher's wait on a subscriber that took nothing meanwhile
/// buys: it waits for that one at most once per this much (`conn::StuckSubscriber`), as
/// nats-server stalls a producer at most 10 ms per read of up to 64 KiB. A subscriber that
/// never reads then slows its publisher to this much per `PUBLISHER_PAUSE_MS_MAX` (6.4 MB/s)
/// until it passes max_pending and is closed.
pub const PUBLISHER_BYTES_PER_WAIT: u64 = 64 * 1024;
/// Bytes handed to one send operation at most; bounds how long a single send pins memory.
pub const SEND_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Capacity above which a drained outbound buffer is freed once a timer tick finds its
/// connection idle since the tick before, so one burst does not pin memory (`Outbound::release_if_idle`).
pub const OUTBOUND_IDLE_CAPACITY_BYTES_MAX: usize = 64 * 1024;
/// An idle connection's drained outbound buffer of at most this capacity is freed: it held
/// chatter (INFO, PONG, a few messages), and idle connections should cost no outbound memory.
/// A larger one held a busy round's output and is kept (up to the bound above) for the next.
pub const OUTBOUND_CHATTER_CAPACITY_BYTES_MAX: usize = 4 * 1024;
/// Carry buffer capacity kept after a partial op is consumed.
pub const CARRY_IDLE_CAPACITY_BYTES_MAX: usize = 16 * 1024;
/// Capacity of a paused connection's held-bytes buffer kept even when no pause used it for a
/// whole timer tick (a larger one is freed then; see `shard::conn::Held`). Four receive
/// buffers' worth.
pub const HELD_IDLE_CAPACITY_BYTES_MAX: usize = 256 * 1024;

/// Bytes of the queue from one shard to another (per ordered pair). Frames bigger than a
/// quarter of it go through a side channel; a publisher is paused when it is 3/4 full.
pub const PEER_QUEUE_BYTES: usize = 1024 * 1024;

/// Bytes of frames a shard pushes to a peer's queue before it publishes them, even mid-round:
/// a publishing shard's round can take a millisecond, and a peer watching its queue (see
/// `Shard::busy_poll`) can deliver what is there meanwhile instead of waiting for the end of
/// the round. Publishing is one store; the wake-up (`MSG_RING`) still comes once per round.
pub const PEER_PUBLISH_BYTES: usize = 64 * 1024;

/// Entries in a shard's match cache before it is cleared (literal subject -> match result).
pub const MATCH_CACHE_ENTRIES_MAX: usize = 4096;

/// The default of `--busy_poll`: the longest a shard watches its ring for work before it
/// sleeps (see `Shard::busy_poll`): a wake-up from sleep costs tens of microseconds here, and a
/// request/reply crosses the server twice. Spent only after the shard sent something and
/// while recent idle periods ended within it (`spin::SpinPolicy`), so an idle or lightly
/// loaded shard sleeps at once.
pub const BUSY_POLL_MICROS: u64 = 50;

/// After a round that received at least `STREAMING_ROUND_BYTES`, none of it from a connection
/// sent something in the last `ANSWER_MS` (a publisher streaming, to subscribers or to no one),
/// a shard sleeps until
/// `STREAMING_WAIT_COMPLETIONS` completions are ready or, once `STREAMING_WAIT_MICROS` have
/// passed, any one is (IORING_FEAT_MIN_TIMEOUT, Linux 6.12+). On loopback the receiver's
/// wake-up runs on the sender's CPU, inside its write: a shard woken for every arriving
/// segment made the client pay a cross-CPU wake-up each time (async-nats publishing 1 KiB,
/// scripts/ab.sh with AB_GENERATOR, 3 rounds: 1.74 -> 2.82 M msgs/s, the client's CPU 572 ->
/// 354 ns/msg, the server's 216 -> 235 ns/msg).
///
/// Such a round does not start a watch (`--busy_poll`) either, though it delivered: the
/// publisher's next bytes come when it writes them, and a client that is the bottleneck gains
/// nothing from a shard that looks sooner. async-nats pubsub 1 KiB, `scripts/ab.sh 7` with
/// AB_GENERATOR: the server's CPU 818 -> 658 ns/msg (the watch's yields were a third of it),
/// the client's 1,639 -> 1,450 ns/msg. A round with input from a connection sent something
/// lately, or that routed a message with a reply subject (`Core::request_routed`), is not
/// streaming: a request/reply of any size is watched for as before (sleeping for a batch
/// there cost 32 KiB round trips 40 us at p50).
pub const STREAMING_ROUND_BYTES: usize = 16 * 1024;
pub const STREAMING_WAIT_COMPLETIONS: usize = 16;
pub const STREAMING_WAIT_MICROS: u32 = 20;
/// A round of streamed input smaller than `STREAMING_ROUND_BYTES` is streaming too when the
/// shard's sleep before it ended within this: a client writing a few KiB at a time (async-nats
/// publishing 16 B writes about 4.3 KB per writev, 30,000 a second) never filled a round, so the
/// shard was woken for each write, and the client paid for each wake-up inside its writev.
/// `scripts/ab.sh 3` with AB_GENERATOR natsring-asyncbench, pub 16 B: 3.95 -> 4.65 M msgs/s,
/// the client's CPU 253 -> 215 ns/msg, the server's 81 -> 110 ns/msg (it wakes on its own
/// timer instead); nats.go publish 16 B and 1 KiB unchanged (25.1 M/s, 2.9 M/s). Only for a
/// round that sent nothing: a delivered stream of small writes is left to the watch.
pub const STREAMING_GAP_MICROS: u64 = 100;
/// Input from a connection the shard queued a send to within this many milliseconds (of the
/// shard's clock) may be its answer: a round with such input is not streaming.
pub const ANSWER_MS: u64 = 2;
/// The most `--busy_poll` may ask for.
pub const BUSY_POLL_MICROS_MAX: u64 = 10_000;

/// Pieces of provided buffers that completions of paused connections may keep, per shard,
/// with incremental buffers (an eighth of the buffers when each is consumed whole). A paused
/// publisher's receive is cancelled, but the kernel has usually put the socket's backlog into
/// several pieces by then (a multishot receive retries up to 32 times per enter): copying
/// those out was 82% of a cross-shard publisher's input. Kept, they are handled in place when
/// it resumes; the rest of the ring stays for everyone else (a kept piece keeps its whole
/// buffer out of the ring, so this is a quarter of `RECV_BUFFER_COUNT`).
pub const PAUSED_PIECES_KEPT_MAX: usize = RECV_BUFFER_COUNT as usize / 4;

/// Timer tick of each shard: keepalive, auth and write-deadline checks run at this period.
pub const TIMER_TICK_MS: u64 = 250;

/// Shards at most (shard index must fit the `user_data` codec and the match result).
pub const SHARDS_MAX: usize = 256;
/// Connection slots per shard at most (slot index must fit the `user_data` codec).
pub const CONNECTIONS_PER_SHARD_MAX: usize = 1 << 24;

/// Longest `server_name` accepted.
pub const SERVER_NAME_BYTES_MAX: usize = 256;

/// Configuration files (`config::conf`). nats-server bounds none of these: a file that includes
/// itself overflows its stack, and variables can copy a value exponentially often.
///
/// Files included inside included files, at most: real setups nest two or three deep.
pub const CONF_INCLUDE_DEPTH_MAX: usize = 64;
/// Maps, arrays and top-level `{ }` blocks nested in one another, at most (also the depth of
/// the parsed tree, including what variables and includes put there): bounds the recursion
/// of the scanner and of everything that walks the tree.
pub const CONF_NESTING_DEPTH_MAX: usize = 128;
/// Environment variables whose values reference further environment variables, nested at
/// most (nats-server stops only at a cycle).
pub const CONF_ENVIRONMENT_DEPTH_MAX: usize = 16;
/// Bytes read in total for one configuration: the file, its includes (each time included) and
/// the environment values parsed. Large real files are JWT preloads, a few MiB.
pub const CONF_INPUT_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Approximate bytes of the parsed tree (items, keys and strings), counting every copy a
/// variable reference makes: what a "billion laughs" file would otherwise multiply. Holds a
/// 32 MiB file of strings or ~500k items; a 300-byte file reaching it parses in ~0.2 s.
pub const CONF_TREE_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(OUTBOUND_CHATTER_CAPACITY_BYTES_MAX < OUTBOUND_IDLE_CAPACITY_BYTES_MAX);
const _: () = assert!(RECV_BUFFER_COUNT.is_power_of_two());
const _: () = assert!(RECV_BUFFER_COUNT_WHOLE.is_power_of_two());
const _: () = assert!(
    RECV_BUFFER_COUNT <= 32768 && RECV_BUFFER_COUNT_WHOLE <= 32768,
    "kernel limit on buffer ring entries"
);
const _: () =
    assert!(PAUSED_PIECES_KEPT_MAX >= 1 && PAUSED_PIECES_KEPT_MAX < RECV_BUFFER_COUNT as usize);
const _: () = assert!((OUTBOUND_HIGH_WATER_BYTES as u64) < PENDING_BYTES_MAX_DEFAULT);
const _: () = assert!(PAYLOAD_BYTES_MAX_DEFAULT <= PAYLOAD_BYTES_MAX_CEILING);
const _: () = assert!(COMPLETION_BATCH_MAX <= RING_COMPLETION_ENTRIES as usize);
const _: () = assert!(RECV_BYTES_PER_ROUND_MAX >= RECV_BUFFER_BYTES as usize);
const _: () = assert!(FIRST_PING_INTERVAL_MS < PING_INTERVAL_MS_DEFAULT);
const _: () = assert!(LAME_DUCK_GRACE_PERIOD_MS_DEFAULT < LAME_DUCK_DURATION_MS_MIN);
const _: () = assert!(TLS_HANDSHAKE_FIRST_FALLBACK_MS_DEFAULT < TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT);
const _: () = assert!(LAME_DUCK_DURATION_MS_MIN <= LAME_DUCK_DURATION_MS_DEFAULT);
const _: () = assert!(SHARDS_MAX <= 1 << 8);
const _: () = assert!(TIMER_TICK_MS < 1000 && PUBLISHER_PAUSE_MS_MAX < TIMER_TICK_MS);
const _: () = assert!(ADDRESS_IN_USE_RETRY_MS < ADDRESS_IN_USE_WAIT_MS_MAX);
const _: () = assert!(
    CONF_INPUT_BYTES_MAX <= CONF_TREE_BYTES_MAX,
    "a file's own strings fit the tree"
);
const _: () = assert!(DELIVERY_DENY_CACHE_PRUNE_ENTRIES < DELIVERY_DENY_CACHE_ENTRIES_MAX);
const _: () = assert!(RESPONSE_PERMITS_PRUNE_INSERTS as usize <= RESPONSE_PERMITS_TRACKED_MAX);
const _: () = assert!(
    CLOSED_CONNECTION_SUBSCRIPTIONS_MAX <= MONITOR_SUBSCRIPTIONS_PER_CHUNK,
    "a closed connection's subscriptions cost no more than one chunk's"
);
const _: () = assert!(MONITOR_CONNECTIONS_PER_CHUNK > 0 && MONITOR_SUBSCRIPTIONS_PER_CHUNK > 0);

/// Routes of responses to cross-account requests one account keeps at most: past it, expired
/// routes go, then the oldest half (a requestor that never gets answers cannot grow it).
pub const RESPONSE_ROUTES_MAX: usize = 1 << 20;

/// bcrypt checks waiting for the verifier thread at most (each is a client whose CONNECT
/// waits); past it a client needing one is refused (`Authorization Violation`), so a flood of
/// logins costs a bounded queue, never unbounded memory or minutes of backlog.
pub const VERIFICATIONS_QUEUED_MAX: usize = 1024;

/// Accounts a message may cross through imports at most (a cycle of imports stops there).
pub const ACCOUNT_LINK_DEPTH_MAX: usize = 4;

/// HTTP monitoring requests answered at once (each a thread of the monitor's blocking pool
/// waiting on the shards); more wait their turn.
pub const MONITOR_REQUESTS_IN_FLIGHT_MAX: usize = 4;

/// A mailbox command whose answer takes a shard more CPU time than this is logged at debug
/// level (`-D`), named: monitoring's answers are meant to pause no shard for over 1 ms.
pub const MAILBOX_ANSWER_LOGGED_NS: u64 = 500_000;

/// Connect and disconnect notices the system services take together at most: their account
/// connection counts cost one pass over the connections per batch, not per notice.
pub const SYSTEM_NOTICES_BATCH_MAX: usize = 4096;

/// The largest message the system services may publish (an answer to `CONNZ` lists every
/// connection: some 500 bytes each), whatever `max_payload` is.
pub const SYSTEM_PAYLOAD_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// How much longer than `max_control_line` a system services' `PUB` line may be: the reply
/// subject (up to that long) with `PUB ` and the size around it.
pub const SYSTEM_CONTROL_LINE_EXTRA_BYTES: u32 = 64;

/// The largest queue weight a route's `RS+` counts (a weight of n is n entries in the remote
/// table, so the pick over local and remote members is weighted as nats-server's; past this a
/// huge group on another server is picked as if it had this many members).
pub const ROUTE_QUEUE_WEIGHT_MAX: u32 = 1024;
/// A route's first PING comes this soon after it opened (nats-server: 1 s plus jitter).
pub const ROUTE_FIRST_PING_MS: u64 = 1_000;
