//! What the server looks like from outside, in nats-server's shapes: every endpoint's answer
//! made from the shards' answers (`Shared`'s queries). Both ways in use it: HTTP monitoring
//! (`http`) and the system account's requests (`system`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime};

use super::{accounts, connz, gotime, metrics, process, routez, subsz, varz};
use crate::shard::Shared;

/// A request nats-server refuses, with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl From<super::query::QueryError> for Refused {
    fn from(error: super::query::QueryError) -> Refused {
        Refused(error.0)
    }
}

/// The server's monitoring state: what it is asked through, and what it keeps itself.
pub struct Inspector {
    pub shared: Arc<Shared>,
    pub server_id: String,
    pub start: SystemTime,
    started: Instant,
    config_load_time: Mutex<SystemTime>,
    /// HTTP requests per endpoint (`http_req_stats`), by nats-server's path names.
    requests: Mutex<BTreeMap<String, u64>>,
    cpu: Mutex<process::CpuSampler>,
    /// The HTTP monitoring port bound, once it is.
    pub http_port: OnceLock<u16>,
}

/// `/healthz`'s answer: its status code and body.
pub struct Health {
    pub status_code: u16,
    pub body: serde_json::Value,
}

impl Inspector {
    pub fn new(shared: Arc<Shared>, server_id: &str) -> Inspector {
        Inspector {
            shared,
            server_id: server_id.to_string(),
            start: SystemTime::now(),
            started: Instant::now(),
            config_load_time: Mutex::new(SystemTime::now()),
            requests: Mutex::new(BTreeMap::new()),
            cpu: Mutex::new(process::CpuSampler::new()),
            http_port: OnceLock::new(),
        }
    }

    /// A reload was put in force: `config_load_time` is now.
    pub fn reloaded(&self) {
        *self
            .config_load_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = SystemTime::now();
    }

    fn config_load_time(&self) -> SystemTime {
        *self
            .config_load_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an HTTP request to `endpoint` (`http_req_stats`).
    pub fn count_request(&self, endpoint: &str) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(endpoint.to_string())
            .or_default() += 1;
    }

    /// The server's name: configured, else its id.
    pub fn server_name(&self) -> String {
        self.shared
            .settings()
            .options
            .server_name
            .clone()
            .unwrap_or_else(|| self.server_id.clone())
    }

    /// CPU percent since the previous reading.
    pub fn cpu_percent(&self) -> f64 {
        self.cpu
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .percent()
    }

    pub fn varz(&self) -> varz::Varz {
        let settings = self.shared.settings();
        let stats = crate::stats::ShardStats::sum(&self.shared.shard_stats_now());
        let subscriptions = self
            .shared
            .table_stats()
            .iter()
            .map(|table| table.subscriptions)
            .sum();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        varz::varz(varz::VarzInputs {
            server_id: &self.server_id,
            options: &settings.options,
            auth_required: settings.info.auth_required,
            tls: settings.tls.as_deref(),
            tls_required: settings.info.tls_required,
            tls_verify: settings.info.tls_verify,
            system_account: settings.system_account.map(|id| settings.account_name(id)),
            start: self.start,
            now: SystemTime::now(),
            config_load_time: self.config_load_time(),
            stats: &stats,
            subscriptions,
            http_req_stats: requests,
            mem: process::resident_bytes(),
            cpu: self.cpu_percent(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shards: self.shared.shard_count,
            cluster: self
                .shared
                .cluster
                .as_ref()
                .map(|cluster| varz::ClusterFacts {
                    name: cluster.info.cluster.clone(),
                    port: cluster.listen_port,
                    routes: cluster.route_count(),
                    client_urls: cluster.client_urls(),
                    tls_cert_not_after: settings
                        .route_tls
                        .as_ref()
                        .and_then(|tls| tls.cert_not_after),
                }),
        })
    }

    pub fn connz(&self, query: &connz::ConnzQuery) -> connz::Connz {
        let open = if query.state == connz::State::Closed {
            Vec::new()
        } else {
            self.shared.open_connections(query.wants_subscriptions())
        };
        let closed = if query.state == connz::State::Open {
            Vec::new()
        } else {
            self.shared.closed_connections()
        };
        let settings = self.shared.settings();
        let account_exists =
            query.account.is_empty() || settings.accounts.iter().any(|a| a.name == query.account);
        connz::connz(
            query,
            &self.server_id,
            SystemTime::now(),
            &open,
            &closed,
            account_exists,
        )
    }

    pub fn subsz(&self, query: &subsz::SubszQuery) -> subsz::Subsz {
        let tables = self.shared.table_stats();
        let subscriptions = if query.subs {
            self.shared.subscriptions()
        } else {
            Vec::new()
        };
        subsz::subsz(
            query,
            &self.server_id,
            SystemTime::now(),
            &tables,
            &subscriptions,
        )
    }

    pub fn routez(&self, options: routez::RoutezOptions) -> routez::Routez {
        let routes = if self.shared.cluster.is_some() {
            self.shared.routes(options.wants_subscriptions())
        } else {
            Vec::new()
        };
        let permissions = self
            .shared
            .cluster
            .as_ref()
            .map(|cluster| cluster.rules().0.info_fields())
            .unwrap_or_default();
        routez::routez(
            options,
            &self.server_id,
            &self.server_name(),
            SystemTime::now(),
            permissions,
            &routes,
        )
    }

    /// `/gatewayz` and `/leafz` of a server with neither.
    pub fn gatewayz(&self) -> serde_json::Value {
        serde_json::json!({
            "server_id": self.server_id, "server_name": self.server_name(),
            "now": gotime::rfc3339_utc(SystemTime::now()),
            "outbound_gateways": {}, "inbound_gateways": {}
        })
    }

    pub fn leafz(&self) -> serde_json::Value {
        serde_json::json!({
            "server_id": self.server_id, "now": gotime::rfc3339_utc(SystemTime::now()),
            "leafnodes": 0, "leafs": []
        })
    }

    fn system_account_name(&self) -> String {
        let settings = self.shared.settings();
        settings
            .system_account
            .map(|id| settings.account_name(id).to_string())
            .unwrap_or_default()
    }

    /// The accounts (no `account`), or one in detail.
    pub fn accountz(&self, account: Option<&str>) -> Result<accounts::Accountz, Refused> {
        let settings = self.shared.settings();
        let system = self.system_account_name();
        let now = gotime::rfc3339_utc(SystemTime::now());
        let Some(wanted) = account.filter(|name| !name.is_empty()) else {
            return Ok(accounts::Accountz {
                server_id: self.server_id.clone(),
                now,
                system_account: system,
                accounts: Some(settings.accounts.iter().map(|a| a.name.clone()).collect()),
                account_detail: None,
            });
        };
        let detail = self.account_info(wanted)?;
        Ok(accounts::Accountz {
            server_id: self.server_id.clone(),
            now,
            system_account: system,
            accounts: None,
            account_detail: Some(detail),
        })
    }

    /// One account in detail (`/accountz?acc=`, `$SYS.REQ.ACCOUNT.<acc>.INFO`).
    pub fn account_info(&self, wanted: &str) -> Result<accounts::AccountInfo, Refused> {
        let settings = self.shared.settings();
        let Some(account) = settings.accounts.iter().find(|a| a.name == wanted) else {
            return Err(Refused(format!("Account {wanted} does not exist")));
        };
        let traffic = self.shared.account_traffic();
        let tables = self.shared.table_stats();
        Ok(accounts::account_info(accounts::AccountDetail {
            name: &account.name,
            is_system: account.name == self.system_account_name(),
            config: settings.options.accounts.iter().find(|c| c.name == wanted),
            global_mappings: &settings.options.mappings,
            traffic: traffic.iter().find(|t| t.account == wanted),
            table: tables.iter().find(|t| t.account == wanted),
            updated: self.config_load_time(),
        }))
    }

    /// Every account's statistics (those with connections, unless `unused`), or only the
    /// accounts named.
    pub fn accstatz(&self, unused: bool, only: &[String]) -> accounts::AccountStatz {
        let traffic = self.shared.account_traffic();
        let tables = self.shared.table_stats();
        let account_statz = traffic
            .iter()
            .filter(|t| only.is_empty() || only.contains(&t.account))
            .filter(|t| unused || t.connections > 0)
            .map(|t| {
                let subscriptions = tables
                    .iter()
                    .find(|table| table.account == t.account)
                    .map_or(0, |table| table.subscriptions);
                accounts::account_stat(t, subscriptions)
            })
            .collect();
        accounts::AccountStatz {
            server_id: self.server_id.clone(),
            now: gotime::rfc3339_utc(SystemTime::now()),
            account_statz,
        }
    }

    /// nats-server's `healthz` for a server without JetStream: ok (200), unless the options
    /// are inconsistent (400, `error`, or `errors` with `details`), whatever the JetStream
    /// checks ask.
    pub fn healthz(&self, account: &str, stream: &str, consumer: &str, details: bool) -> Health {
        let missing = if account.is_empty() && !stream.is_empty() {
            Some(("account", "stream"))
        } else if stream.is_empty() && !consumer.is_empty() {
            Some(("stream", "consumer"))
        } else {
            None
        };
        match missing {
            None => Health {
                status_code: 200,
                body: serde_json::json!({"status": "ok"}),
            },
            Some((field, what)) => {
                let error = format!("\"{field}\" must not be empty when checking {what} health");
                let body = if details {
                    serde_json::json!({"status": "error",
                                       "errors": [{"type": "BAD_REQUEST", "error": error}]})
                } else {
                    serde_json::json!({"status": "error", "error": error})
                };
                Health {
                    status_code: 400,
                    body,
                }
            }
        }
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        metrics::render(metrics::Snapshot {
            server_id: self.server_id.clone(),
            server_name: self.server_name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            resident_memory_bytes: process::resident_bytes(),
            cpu_seconds: process::cpu_seconds(),
            shards: self.shared.shard_stats_now(),
            accounts: self.shared.account_traffic(),
            tables: self.shared.table_stats(),
        })
    }
}
