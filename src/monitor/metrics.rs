//! `/metrics`: natsring's own Prometheus endpoint (text format 0.0.4), written by the
//! `prometheus-client` crate from one snapshot of the server: server-wide, per-shard (`shard`
//! label) and per-account (`account` label) series, with the event loop's figures nats-server
//! cannot give (ring submissions per loop round, buffer-ring exhaustion, cross-shard queue
//! depth). Names follow Prometheus's conventions: counters end in `_total`, sizes are in bytes,
//! times in seconds.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::data::TableStats;
use crate::stats::{AccountTraffic, ShardStats};

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything one scrape reports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub uptime_seconds: f64,
    pub resident_memory_bytes: u64,
    pub cpu_seconds: f64,
    pub shards: Vec<ShardStats>,
    pub accounts: Vec<AccountTraffic>,
    pub tables: Vec<TableStats>,
}

/// The Prometheus text of `snapshot`.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::with_prefix("natsring");
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// A value of a shard's counters.
type ShardValue = fn(&ShardStats) -> u64;
/// A value of an account's traffic.
type AccountValue = fn(&AccountTraffic) -> u64;

/// Per-shard counters: (name without `_total`, help, value).
const SHARD_COUNTERS: &[(&str, &str, ShardValue)] = &[
    ("shard_in_messages", "Messages received from clients by the shard.", |s| s.in_msgs),
    ("shard_in_bytes", "Payload and header bytes received from clients by the shard.", |s| s.in_bytes),
    ("shard_out_messages", "Messages written to subscribers by the shard.", |s| s.out_msgs),
    ("shard_out_bytes", "Payload and header bytes written to subscribers by the shard.", |s| s.out_bytes),
    ("shard_accepted_connections", "Client connections the shard accepted since start.", |s| s.total_connections),
    ("shard_slow_consumers", "Subscribers the shard closed as slow consumers.", |s| s.slow_consumers),
    ("shard_stale_connections", "Connections the shard closed for not answering PINGs.", |s| s.stale_connections),
    ("shard_loop_rounds", "Turns of the shard's event loop.", |s| s.loop_rounds),
    ("shard_ring_submissions", "Submission queue entries the shard submitted to its io_uring (divide by loop rounds for submissions per round).", |s| s.sqes_submitted),
    ("shard_receive_completions", "Receive completions (a buffer of data, an end of file or an error).", |s| s.recv_completions),
    ("shard_receive_buffer_exhaustions", "Multishot receives ended because the provided buffer ring was empty (ENOBUFS).", |s| s.recv_no_buffers),
    ("shard_receive_arms", "Multishot receives armed (first arms and re-arms).", |s| s.recv_arms),
    ("shard_peer_wakeups", "Wake-ups (MSG_RING) sent to other shards.", |s| s.peer_wakeups),
    ("shard_peer_wakeups_failed", "Wake-ups to other shards that failed.", |s| s.peer_wakeups_failed),
    ("shard_publisher_pauses", "Times a publisher's reading was paused for a subscriber over its high-water mark.", |s| s.publisher_pauses),
    ("shard_peer_holds", "Times a cross-shard queue was held for a subscriber over its high-water mark.", |s| s.peer_holds),
    ("shard_queue_messages_passed_on", "Queue-group messages passed on to another shard.", |s| s.queue_messages_passed_on),
    ("shard_queue_messages_dropped", "Queue-group messages dropped for want of a member.", |s| s.queue_messages_dropped),
    ("shard_idle_watches", "Idle periods the shard watched its ring through before sleeping (busy poll).", |s| s.idle_watched),
    ("shard_idle_watch_hits", "Watched idle periods that ended with work before the shard slept.", |s| s.idle_watch_hits),
    ("shard_stale_completions", "Completions for a connection slot no longer holding their connection.", |s| s.stale_completions),
    ("shard_mailbox_answers", "Visits to the shard's control mailbox (monitoring questions, reloads, ...).", |s| s.mailbox_answers),
    ("shard_mailbox_answers_over_1ms", "Visits to the control mailbox that took the shard over 1 ms of CPU time (on a VM, time the host stole included).", |s| s.mailbox_answers_over_1ms),
];

/// Per-shard gauges.
const SHARD_GAUGES: &[(&str, &str, ShardValue)] = &[
    (
        "shard_connections",
        "Client connections open on the shard.",
        |s| s.connections,
    ),
    (
        "shard_peer_queue_bytes",
        "Bytes waiting in the shard's outgoing cross-shard queues.",
        |s| s.peer_queue_bytes,
    ),
];

/// Per-account counters.
const ACCOUNT_COUNTERS: &[(&str, &str, AccountValue)] = &[
    (
        "account_in_messages",
        "Messages the account's clients published.",
        |a| a.in_msgs,
    ),
    (
        "account_in_bytes",
        "Bytes the account's clients published.",
        |a| a.in_bytes,
    ),
    (
        "account_out_messages",
        "Messages delivered to the account's clients.",
        |a| a.out_msgs,
    ),
    (
        "account_out_bytes",
        "Bytes delivered to the account's clients.",
        |a| a.out_bytes,
    ),
    (
        "account_accepted_connections",
        "Client connections that joined the account since start.",
        |a| a.total_connections,
    ),
    (
        "account_slow_consumers",
        "The account's clients closed as slow consumers.",
        |a| a.slow_consumers,
    ),
];

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let total = ShardStats::sum(&self.shards);
        // The server as a whole.
        let info = [
            ("server_id", self.server_id.as_str()),
            ("server_name", self.server_name.as_str()),
            ("version", self.version.as_str()),
        ];
        let gauge = ConstGauge::new(1i64);
        let mut metric = encoder.encode_descriptor(
            "server_info",
            "The server's identity (always 1).",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric.encode_family(&info)?)?;
        gauge_f64(
            &mut encoder,
            "uptime_seconds",
            "Seconds since the server started.",
            self.uptime_seconds,
        )?;
        gauge_u64(
            &mut encoder,
            "resident_memory_bytes",
            "Resident memory of the process.",
            self.resident_memory_bytes,
        )?;
        let cpu = ConstCounter::new(self.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "cpu_seconds",
            "User and system CPU time the process used.",
            None,
            cpu.metric_type(),
        )?)?;
        gauge_u64(
            &mut encoder,
            "shards",
            "Event loops (shards) running.",
            self.shards.len() as u64,
        )?;
        gauge_u64(
            &mut encoder,
            "connections",
            "Client connections open.",
            total.connections,
        )?;
        let subscriptions: u64 = self.tables.iter().map(|t| t.subscriptions).sum();
        gauge_u64(
            &mut encoder,
            "subscriptions",
            "Subscriptions in every account's subject table.",
            subscriptions,
        )?;
        for (name, help, value) in [
            (
                "in_messages",
                "Messages received from clients.",
                total.in_msgs,
            ),
            (
                "in_bytes",
                "Payload and header bytes received from clients.",
                total.in_bytes,
            ),
            (
                "out_messages",
                "Messages written to subscribers.",
                total.out_msgs,
            ),
            (
                "out_bytes",
                "Payload and header bytes written to subscribers.",
                total.out_bytes,
            ),
            (
                "accepted_connections",
                "Client connections accepted since start.",
                total.total_connections,
            ),
            (
                "slow_consumers",
                "Subscribers closed as slow consumers.",
                total.slow_consumers,
            ),
            (
                "stale_connections",
                "Connections closed for not answering PINGs.",
                total.stale_connections,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        // Per shard.
        let shard_labels: Vec<[(&str, String); 1]> = (0..self.shards.len())
            .map(|index| [("shard", index.to_string())])
            .collect();
        let shards = || self.shards.iter().zip(&shard_labels);
        for (name, help, value) in SHARD_COUNTERS {
            counters(
                &mut encoder,
                name,
                help,
                shards().map(|(s, l)| (l, value(s))),
            )?;
        }
        for (name, help, value) in SHARD_GAUGES {
            gauges(
                &mut encoder,
                name,
                help,
                shards().map(|(s, l)| (l, value(s))),
            )?;
        }
        gauges(
            &mut encoder,
            "shard_mailbox_answer_max_seconds",
            "The longest time the shard spent answering its control mailbox at once (monitoring \
             questions, reloads): a pause for its clients. A maximum since start.",
            shards().map(|(s, l)| (l, s.mailbox_answer_max_ns as f64 / 1e9)),
        )?;
        gauges(
            &mut encoder,
            "shard_ring_submissions_per_round",
            "Submission queue entries per loop round since start (ring submissions / loop rounds).",
            shards().map(|(s, l)| {
                let per_round = if s.loop_rounds == 0 {
                    0.0
                } else {
                    s.sqes_submitted as f64 / s.loop_rounds as f64
                };
                (l, per_round)
            }),
        )?;
        // Per account.
        let account_labels: Vec<[(&str, &str); 1]> = self
            .accounts
            .iter()
            .map(|traffic| [("account", traffic.account.as_str())])
            .collect();
        let accounts = || self.accounts.iter().zip(&account_labels);
        for (name, help, value) in ACCOUNT_COUNTERS {
            counters(
                &mut encoder,
                name,
                help,
                accounts().map(|(a, l)| (l, value(a))),
            )?;
        }
        gauges(
            &mut encoder,
            "account_connections",
            "Client connections open in the account.",
            accounts().map(|(a, l)| (l, a.connections)),
        )?;
        let table_labels: Vec<[(&str, &str); 1]> = self
            .tables
            .iter()
            .map(|table| [("account", table.account.as_str())])
            .collect();
        gauges(
            &mut encoder,
            "account_subscriptions",
            "Subscriptions in the account's subject table.",
            self.tables
                .iter()
                .zip(&table_labels)
                .map(|(table, labels)| (labels, table.subscriptions)),
        )?;
        Ok(())
    }
}

/// A counter family: one sample per labelled value.
fn counters<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge family: one sample per labelled value.
fn gauges<'a, L: EncodeLabelSet + 'a, V: EncodeGaugeValue + std::fmt::Debug + Send + Sync>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a L, V)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge_u64(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn gauge_f64(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}
