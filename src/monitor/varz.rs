//! `/varz`: the server's configuration and counters, as nats-server's `Varz` (monitor.go).
//! Every field a tool decodes is here with Go's JSON type; those of features natsring does not
//! have (gateway, leaf nodes, MQTT, WebSocket, JetStream) are the empty objects nats-server
//! writes when they are off. `cluster` is nats-server's `ClusterOptsVarz` of a node running one
//! route per peer (`pool_size: -1`), as natsring's routes are.

use std::collections::BTreeMap;

use serde::Serialize;

use super::go_float;
use super::gotime;
use crate::stats::ShardStats;

/// Everything `/varz` reports, gathered by the monitor.
pub struct VarzInputs<'a> {
    pub server_id: &'a str,
    pub options: &'a crate::Options,
    pub auth_required: bool,
    /// Client TLS, when `tls {}` is set.
    pub tls: Option<&'a crate::shard::ClientTls>,
    /// INFO's `tls_required` and `tls_verify`, which `/varz` repeats.
    pub tls_required: bool,
    pub tls_verify: bool,
    pub system_account: Option<&'a str>,
    pub start: std::time::SystemTime,
    pub now: std::time::SystemTime,
    pub config_load_time: std::time::SystemTime,
    pub stats: &'a ShardStats,
    pub subscriptions: u64,
    pub http_req_stats: BTreeMap<String, u64>,
    pub mem: u64,
    pub cpu: f64,
    pub cores: usize,
    pub shards: usize,
    /// The running cluster, when routes are accepted and dialed.
    pub cluster: Option<ClusterFacts>,
}

/// What `/varz` shows of a running cluster.
pub struct ClusterFacts {
    /// The cluster's name (configured, or made up when none was).
    pub name: String,
    /// The port routes are accepted on.
    pub port: u16,
    /// Routes registered now (one per peer server).
    pub routes: usize,
    /// The client URLs announced to clients, once a route brought some.
    pub client_urls: Option<std::sync::Arc<[String]>>,
    /// When the routes' certificate expires, with cluster TLS.
    pub tls_cert_not_after: Option<std::time::SystemTime>,
}

/// nats-server's `ClusterOptsVarz`: every field `omitempty`, so a server without a cluster
/// writes `{}`.
#[derive(Debug, Serialize, Default)]
pub struct ClusterVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "addr", skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(rename = "cluster_port", skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    #[serde(serialize_with = "go_float", skip_serializing_if = "is_zero_f64")]
    pub auth_timeout: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(serialize_with = "go_float", skip_serializing_if = "is_zero_f64")]
    pub tls_timeout: f64,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub pool_size: i32,
    /// Go `Duration`: integer nanoseconds.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub write_deadline: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub write_timeout: &'static str,
    /// Go `time.Time`, `omitzero`: without cluster TLS, absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_not_after: Option<String>,
}

/// A feature natsring does not have: `{}`.
#[derive(Debug, Serialize, Default)]
pub struct Off {}

/// Kinds of connection a count is split by (`slow_consumer_stats`, `stale_connection_stats`).
#[derive(Debug, Serialize)]
pub struct ByKind {
    pub clients: u64,
    pub routes: u64,
    pub gateways: u64,
    pub leafs: u64,
}

impl ByKind {
    fn clients(clients: u64) -> ByKind {
        ByKind {
            clients,
            routes: 0,
            gateways: 0,
            leafs: 0,
        }
    }
}

/// Disk I/O waits (JetStream's); natsring writes no disk: all zero.
#[derive(Debug, Serialize, Default)]
pub struct DiskIoWaits {
    pub waiters: u64,
    pub waits: u64,
    pub wait_time: u64,
    pub max_wait_time: u64,
}

#[derive(Debug, Serialize)]
pub struct Varz {
    pub server_id: String,
    pub server_name: String,
    pub version: &'static str,
    pub proto: u32,
    pub go: &'static str,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// The client URLs of the cluster, once routes brought some (nats-server's
    /// `ClientConnectURLs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    pub max_connections: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub max_subscriptions: u32,
    /// Go `Duration`: integer nanoseconds.
    pub ping_interval: u64,
    pub ping_max: u32,
    pub http_host: String,
    pub http_port: i32,
    pub http_base_path: String,
    pub https_port: i32,
    #[serde(serialize_with = "go_float")]
    pub auth_timeout: f64,
    pub max_control_line: u32,
    pub max_payload: u32,
    pub max_pending: u64,
    pub cluster: ClusterVarz,
    pub gateway: Off,
    pub leaf: Off,
    pub mqtt: Off,
    pub websocket: Off,
    pub jetstream: Off,
    #[serde(serialize_with = "go_float")]
    pub tls_timeout: f64,
    /// Go `Duration`: integer nanoseconds.
    pub write_deadline: u64,
    pub start: String,
    pub now: String,
    pub uptime: String,
    pub mem: u64,
    pub cores: usize,
    pub gomaxprocs: usize,
    #[serde(serialize_with = "go_float")]
    pub cpu: f64,
    pub connections: u64,
    pub total_connections: u64,
    pub routes: u64,
    pub remotes: u64,
    pub leafnodes: u64,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub in_client_msgs: u64,
    pub in_client_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub out_client_msgs: u64,
    pub out_client_bytes: u64,
    pub slow_consumers: u64,
    pub stale_connections: u64,
    pub stalled_clients: u64,
    pub subscriptions: u64,
    pub http_req_stats: BTreeMap<String, u64>,
    pub config_load_time: String,
    pub config_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_account: Option<String>,
    pub slow_consumer_stats: ByKind,
    pub stale_connection_stats: ByKind,
    pub disk_io_wait_stats: DiskIoWaits,
    /// Go `time.Time` (UTC, as x509 gives it), `omitzero`: without TLS, absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_not_after: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

/// nats-server's `ClusterOptsVarz` of these options: what is configured, with nats-server's
/// defaults where a port makes the cluster run (`setBaselineOptions`), the bound port, and the
/// pool size of a node with one route per peer. `cluster { }` without a port shows its name
/// only, as nats-server's does.
fn cluster_varz(options: &crate::Options, running: Option<&ClusterFacts>) -> ClusterVarz {
    let Some(cluster) = &options.cluster else {
        return ClusterVarz::default();
    };
    let name = running
        .map(|facts| facts.name.clone())
        .or_else(|| cluster.name.clone())
        .unwrap_or_default();
    let urls = cluster
        .routes
        .iter()
        .map(|route| crate::config::go::join_host_port(&route.host, route.port))
        .collect();
    let Some(facts) = running else {
        return ClusterVarz {
            name,
            urls,
            ..ClusterVarz::default()
        };
    };
    // nats-server's `TLS_TIMEOUT` and `getDefaultAuthTimeout`.
    let tls_timeout = cluster
        .tls
        .as_ref()
        .map_or(2.0, |tls| tls.timeout.as_secs_f64());
    let auth_timeout = match (&cluster.authorization, &cluster.tls) {
        (Some(authorization), _) => authorization.timeout.as_secs_f64(),
        (None, Some(_)) => tls_timeout + 1.0,
        (None, None) => crate::limits::AUTH_TIMEOUT_MS_DEFAULT as f64 / 1000.0,
    };
    ClusterVarz {
        name,
        host: if cluster.host.is_empty() {
            crate::limits::HOST_DEFAULT.to_string()
        } else {
            cluster.host.clone()
        },
        port: facts.port,
        auth_timeout,
        urls,
        tls_timeout,
        // nats-server's: cluster TLS is always verified, both ways.
        tls_required: cluster.tls.is_some(),
        tls_verify: cluster.tls.is_some(),
        // One route per peer, whatever `pool_size` says.
        pool_size: -1,
        write_deadline: cluster
            .write_deadline
            .map_or(0, |deadline| deadline.as_nanos() as u64),
        write_timeout: cluster.write_timeout.as_str(),
        tls_cert_not_after: facts.tls_cert_not_after.map(gotime::rfc3339_utc),
    }
}

pub fn varz(inputs: VarzInputs) -> Varz {
    let options = inputs.options;
    let stats = inputs.stats;
    Varz {
        server_id: inputs.server_id.to_string(),
        server_name: options
            .server_name
            .clone()
            .unwrap_or_else(|| inputs.server_id.to_string()),
        version: crate::ADVERTISED_VERSION,
        proto: 1,
        go: crate::server::GO_VERSION,
        host: options.host.clone(),
        port: options.port,
        auth_required: inputs.auth_required,
        tls_required: inputs.tls_required,
        tls_verify: inputs.tls_verify,
        connect_urls: inputs
            .cluster
            .as_ref()
            .and_then(|facts| facts.client_urls.as_deref())
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        max_connections: options.max_connections,
        max_subscriptions: options.max_subscriptions,
        ping_interval: options.ping_interval.as_nanos() as u64,
        ping_max: options.ping_max,
        http_host: options.monitoring_host().to_string(),
        http_port: options.http_port,
        http_base_path: options.http_base_path.clone(),
        https_port: options.https_port,
        auth_timeout: options.auth.auth_timeout.map_or(
            crate::limits::AUTH_TIMEOUT_MS_DEFAULT as f64 / 1000.0,
            |t| t.as_secs_f64(),
        ),
        max_control_line: options.max_control_line,
        max_payload: options.max_payload,
        max_pending: options.max_pending,
        cluster: cluster_varz(options, inputs.cluster.as_ref()),
        gateway: Off::default(),
        leaf: Off::default(),
        mqtt: Off::default(),
        websocket: Off::default(),
        jetstream: Off::default(),
        // `tls { timeout }`, else nats-server's `TLS_TIMEOUT` (2 s), reported whether or not
        // TLS is on.
        tls_timeout: options
            .tls
            .as_ref()
            .map_or(2.0, |tls| tls.timeout.as_secs_f64()),
        write_deadline: options.write_deadline.as_nanos() as u64,
        start: gotime::rfc3339(inputs.start),
        now: gotime::rfc3339(inputs.now),
        uptime: gotime::uptime(gotime::since(inputs.now, inputs.start)),
        mem: inputs.mem,
        cores: inputs.cores,
        gomaxprocs: inputs.shards,
        cpu: inputs.cpu,
        connections: stats.connections,
        total_connections: stats.total_connections,
        // One route per peer: as many remotes as routes.
        routes: inputs
            .cluster
            .as_ref()
            .map_or(0, |facts| facts.routes as u64),
        remotes: inputs
            .cluster
            .as_ref()
            .map_or(0, |facts| facts.routes as u64),
        leafnodes: 0,
        in_msgs: stats.in_msgs,
        in_bytes: stats.in_bytes,
        // nats-server's client counters leave out what came in on and went out to routes.
        in_client_msgs: stats.in_msgs.saturating_sub(stats.route_in_msgs),
        in_client_bytes: stats.in_bytes.saturating_sub(stats.route_in_bytes),
        out_msgs: stats.out_msgs,
        out_bytes: stats.out_bytes,
        out_client_msgs: stats.out_msgs.saturating_sub(stats.route_out_msgs),
        out_client_bytes: stats.out_bytes.saturating_sub(stats.route_out_bytes),
        slow_consumers: stats.slow_consumers,
        stale_connections: stats.stale_connections,
        stalled_clients: stats.publisher_pauses,
        subscriptions: inputs.subscriptions,
        http_req_stats: inputs.http_req_stats,
        config_load_time: gotime::rfc3339(inputs.config_load_time),
        config_digest: options.config_digest.clone().unwrap_or_default(),
        system_account: inputs.system_account.map(str::to_string),
        slow_consumer_stats: ByKind::clients(stats.slow_consumers),
        stale_connection_stats: ByKind::clients(stats.stale_connections),
        disk_io_wait_stats: DiskIoWaits::default(),
        tls_cert_not_after: inputs
            .tls
            .and_then(|tls| tls.cert_not_after)
            .map(gotime::rfc3339_utc),
    }
}
