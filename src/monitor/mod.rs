//! HTTP monitoring (`-m/--http_port`, `http_port`, `http`, `http_base_path`): nats-server's
//! endpoints with its JSON (`/varz`, `/connz`, `/subsz`, `/routez`, `/accountz`, `/accstatz`,
//! `/healthz`, the index page), and natsring's own Prometheus `/metrics`.
//!
//! Served off the shards: one thread of its own runs HTTP/1 (hyper, on a current-thread tokio
//! runtime); each request is answered on tokio's blocking pool, where the shards are asked
//! through their mailboxes (`Shared`'s queries) and answer between completions. Nothing here
//! touches a shard's state, and nothing a shard does per message is counted for us: the
//! shards' plain counters are read when asked.
//!
//! Invariant: the monitor never holds a lock a shard takes, and a shard that has ended
//! answers nothing (its part of an answer is empty), so a request cannot hang on a stopping
//! server.

mod accounts;
mod connz;
mod data;
mod go_json;
pub mod gotime;
mod metrics;
mod process;
mod query;
mod subsz;
mod varz;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::shard::Shared;
use go_json::go_float;
use query::{Query, QueryError};

/// The paths nats-server serves (without the base path), as its `httpReqStats` names them.
const VARZ: &str = "/varz";
const CONNZ: &str = "/connz";
const ROUTEZ: &str = "/routez";
const GATEWAYZ: &str = "/gatewayz";
const LEAFZ: &str = "/leafz";
const SUBSZ: &str = "/subsz";
const SUBSCRIPTIONSZ: &str = "/subscriptionsz";
const ACCOUNTZ: &str = "/accountz";
const ACCSTATZ: &str = "/accstatz";
const HEALTHZ: &str = "/healthz";
const METRICS: &str = "/metrics";
const ROOT: &str = "/";

const JSON: &str = "application/json";

/// A running monitor: its listener's address and its thread. Dropping it stops it.
pub struct Monitor {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<State>,
}

/// What the handlers share.
struct State {
    shared: Arc<Shared>,
    server_id: String,
    start: SystemTime,
    started: Instant,
    /// The bound monitoring port (the random one when -1 was asked for).
    port: u16,
    base_path: String,
    config_load_time: Mutex<SystemTime>,
    /// Requests per endpoint (`http_req_stats`), by nats-server's path names.
    requests: Mutex<BTreeMap<String, u64>>,
    cpu: Mutex<process::CpuSampler>,
}

/// nats-server's `normalizeBasePath`: a leading `/`, cleaned; empty is `/`.
fn normalized_base_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `path.Join(base, endpoint)`.
fn joined(base: &str, endpoint: &str) -> String {
    normalized_base_path(&format!("{base}/{endpoint}"))
}

impl Monitor {
    /// Binds the monitoring listener (as nats-server: `can't listen to the monitor port: ...`
    /// on failure) and starts serving.
    pub fn start(shared: Arc<Shared>, server_id: &str) -> io::Result<Monitor> {
        let settings = shared.settings();
        let options = &settings.options;
        let host = options.monitoring_host().to_string();
        let port = if options.http_port < 0 {
            0
        } else {
            options.http_port as u16
        };
        let listener = bind(&host, port).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("can't listen to the monitor port: listen tcp {host}:{port}: {err}"),
            )
        })?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let state = Arc::new(State {
            shared: Arc::clone(&shared),
            server_id: server_id.to_string(),
            start: SystemTime::now(),
            started: Instant::now(),
            port: address.port(),
            base_path: normalized_base_path(&options.http_base_path),
            config_load_time: Mutex::new(SystemTime::now()),
            requests: Mutex::new(BTreeMap::new()),
            cpu: Mutex::new(process::CpuSampler::new()),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("monitor-blocking")
            .max_blocking_threads(limits_blocking_threads())
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("monitor".to_string())
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))?;
        crate::log_notice!(
            "Starting http monitor on {}",
            crate::config::go::join_host_port(&host, address.port())
        );
        Ok(Monitor {
            address,
            stop: Some(stop),
            thread: Some(thread),
            state,
        })
    }

    /// The address the monitor listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A reload was put in force: `config_load_time` is now.
    pub fn reloaded(&self) {
        *self
            .state
            .config_load_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = SystemTime::now();
    }
}

/// Threads that may answer requests at once (each waits on the shards).
fn limits_blocking_threads() -> usize {
    crate::limits::MONITOR_REQUESTS_IN_FLIGHT_MAX
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let address: SocketAddr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {host}"),
        )
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&address.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Accepts and serves connections until `stopped` fires.
async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            crate::log_error!("Error starting monitor: {err}");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                crate::log_debug!("monitoring: accept failed: {err}");
                // Out of fds and the like: do not spin on it.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(state, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                crate::log_debug!("monitoring: connection ended: {err}");
            }
        });
    }
}

/// An answer before it is an HTTP response.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(value: &impl serde::Serialize) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: JSON,
            // MarshalIndent(v, "", "  "), as nats-server writes it.
            body: serde_json::to_vec_pretty(value).unwrap_or_default(),
        }
    }

    /// A parameter nats-server refuses: status 400 with its text (Go sniffs it as text).
    fn bad_request(error: QueryError) -> Reply {
        Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: "text/plain; charset=utf-8",
            body: error.0.into_bytes(),
        }
    }

    /// Go's `http.NotFound`.
    fn not_found() -> Reply {
        Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/plain; charset=utf-8",
            body: b"404 page not found\n".to_vec(),
        }
    }
}

async fn respond(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let query = Query::parse(request.uri().query());
    let reply = tokio::task::spawn_blocking(move || state.handle(&path, &query))
        .await
        .unwrap_or_else(|_| Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            content_type: "text/plain; charset=utf-8",
            body: b"internal error\n".to_vec(),
        });
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.content_type == JSON {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    response
}

impl State {
    /// Routes `path` as nats-server's mux does: each endpoint at exactly its path under the
    /// base path, the index at exactly the base path, anything else not found.
    fn handle(&self, path: &str, query: &Query) -> Reply {
        let endpoint = if path == self.base_path {
            ROOT
        } else {
            let Some(endpoint) = [
                VARZ,
                CONNZ,
                ROUTEZ,
                GATEWAYZ,
                LEAFZ,
                SUBSZ,
                SUBSCRIPTIONSZ,
                ACCOUNTZ,
                ACCSTATZ,
                HEALTHZ,
                METRICS,
            ]
            .into_iter()
            .find(|endpoint| joined(&self.base_path, endpoint) == path) else {
                return Reply::not_found();
            };
            endpoint
        };
        // `/subscriptionsz` counts as `/subsz`, as in nats-server.
        let counted = if endpoint == SUBSCRIPTIONSZ {
            SUBSZ
        } else {
            endpoint
        };
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(counted.to_string())
            .or_default() += 1;
        let answer = match endpoint {
            ROOT => Ok(self.index()),
            VARZ => Ok(Reply::json(&self.varz())),
            CONNZ => self.connz(query).map(|connz| Reply::json(&connz)),
            ROUTEZ => Ok(Reply::json(&self.routez())),
            GATEWAYZ | LEAFZ => Ok(Reply::json(&self.empty_cluster_kind(endpoint))),
            SUBSZ | SUBSCRIPTIONSZ => self.subsz(query).map(|subsz| Reply::json(&subsz)),
            ACCOUNTZ => self.accountz(query).map(|accountz| Reply::json(&accountz)),
            ACCSTATZ => self.accstatz(query).map(|accstatz| Reply::json(&accstatz)),
            HEALTHZ => self.healthz(query),
            METRICS => Ok(self.metrics()),
            _ => Ok(Reply::not_found()),
        };
        answer.unwrap_or_else(Reply::bad_request)
    }

    fn index(&self) -> Reply {
        let mut links = String::new();
        for endpoint in [
            VARZ, CONNZ, ROUTEZ, GATEWAYZ, LEAFZ, SUBSZ, ACCOUNTZ, ACCSTATZ, HEALTHZ, METRICS,
        ] {
            let href = joined(&self.base_path, endpoint);
            links.push_str(&format!(
                "    <a href=\"{href}\">{}</a>\n",
                endpoint.trim_start_matches('/')
            ));
        }
        let body = format!(
            "<html lang=\"en\">\n  <head><title>natsring</title></head>\n  <body>\n    \
             <h1>natsring v{}</h1>\n{links}  </body>\n</html>\n",
            env!("CARGO_PKG_VERSION")
        );
        Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        }
    }

    fn varz(&self) -> varz::Varz {
        let settings = self.shared.settings();
        let shards = self.shared.shard_stats_now();
        let stats = crate::stats::ShardStats::sum(&shards);
        let subscriptions = self
            .shared
            .table_stats()
            .iter()
            .map(|table| table.subscriptions)
            .sum();
        let options = crate::Options {
            port: settings.options.port,
            ..settings.options.clone()
        };
        let cpu = self
            .cpu
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .percent();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut options = options;
        if options.http_port == 0 {
            options.http_port = i32::from(self.port);
        }
        varz::varz(varz::VarzInputs {
            server_id: &self.server_id,
            options: &options,
            auth_required: settings.info.auth_required,
            system_account: settings.system_account.map(|id| settings.account_name(id)),
            start: self.start,
            now: SystemTime::now(),
            config_load_time: *self
                .config_load_time
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            stats: &stats,
            subscriptions,
            http_req_stats: requests,
            mem: process::resident_bytes(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shards: self.shared.shard_count,
        })
    }

    fn connz(&self, query: &Query) -> Result<connz::Connz, QueryError> {
        let query = connz::ConnzQuery::parse(query)?;
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
        Ok(connz::connz(
            &query,
            &self.server_id,
            SystemTime::now(),
            &open,
            &closed,
            account_exists,
        ))
    }

    fn subsz(&self, query: &Query) -> Result<subsz::Subsz, QueryError> {
        let query = subsz::SubszQuery::parse(query)?;
        let tables = self.shared.table_stats();
        let subscriptions = if query.subs {
            self.shared.subscriptions()
        } else {
            Vec::new()
        };
        Ok(subsz::subsz(
            &query,
            &self.server_id,
            SystemTime::now(),
            &tables,
            &subscriptions,
        ))
    }

    fn routez(&self) -> Routez {
        let settings = self.shared.settings();
        Routez {
            server_id: self.server_id.clone(),
            server_name: settings
                .options
                .server_name
                .clone()
                .unwrap_or_else(|| self.server_id.clone()),
            now: gotime::rfc3339_utc(SystemTime::now()),
            num_routes: 0,
            routes: Vec::new(),
        }
    }

    fn empty_cluster_kind(&self, endpoint: &str) -> serde_json::Value {
        let now = gotime::rfc3339_utc(SystemTime::now());
        let settings = self.shared.settings();
        let name = settings
            .options
            .server_name
            .clone()
            .unwrap_or_else(|| self.server_id.clone());
        if endpoint == LEAFZ {
            serde_json::json!({
                "server_id": self.server_id, "now": now, "leafnodes": 0, "leafs": []
            })
        } else {
            serde_json::json!({
                "server_id": self.server_id, "server_name": name, "now": now,
                "outbound_gateways": {}, "inbound_gateways": {}
            })
        }
    }

    fn accountz(&self, query: &Query) -> Result<accounts::Accountz, QueryError> {
        let settings = self.shared.settings();
        let system = settings
            .system_account
            .map(|id| settings.account_name(id).to_string())
            .unwrap_or_default();
        let now = gotime::rfc3339_utc(SystemTime::now());
        let wanted = query.get("acc");
        if wanted.is_empty() {
            return Ok(accounts::Accountz {
                server_id: self.server_id.clone(),
                now,
                system_account: system,
                accounts: Some(settings.accounts.iter().map(|a| a.name.clone()).collect()),
                account_detail: None,
            });
        }
        let Some(account) = settings.accounts.iter().find(|a| a.name == wanted) else {
            return Err(QueryError(format!("Account {wanted} does not exist")));
        };
        let traffic = self.shared.account_traffic();
        let tables = self.shared.table_stats();
        let detail = accounts::account_info(accounts::AccountDetail {
            name: &account.name,
            is_system: account.name == system,
            config: settings.options.accounts.iter().find(|c| c.name == wanted),
            global_mappings: &settings.options.mappings,
            traffic: traffic.iter().find(|t| t.account == wanted),
            table: tables.iter().find(|t| t.account == wanted),
            updated: *self
                .config_load_time
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        });
        Ok(accounts::Accountz {
            server_id: self.server_id.clone(),
            now,
            system_account: system,
            accounts: None,
            account_detail: Some(detail),
        })
    }

    fn accstatz(&self, query: &Query) -> Result<accounts::AccountStatz, QueryError> {
        let unused = query.bool("unused")?;
        let traffic = self.shared.account_traffic();
        let tables = self.shared.table_stats();
        let account_statz = traffic
            .iter()
            .filter(|t| unused || t.connections > 0)
            .map(|t| {
                let subscriptions = tables
                    .iter()
                    .find(|table| table.account == t.account)
                    .map_or(0, |table| table.subscriptions);
                accounts::account_stat(t, subscriptions)
            })
            .collect();
        Ok(accounts::AccountStatz {
            server_id: self.server_id.clone(),
            now: gotime::rfc3339_utc(SystemTime::now()),
            account_statz,
        })
    }

    /// nats-server's `/healthz` for a server without JetStream: ok (200), unless the query
    /// is malformed (400, `error`), whatever `js-enabled-only`/`js-server-only` ask.
    fn healthz(&self, query: &Query) -> Result<Reply, QueryError> {
        for flag in [
            "js-enabled",
            "js-enabled-only",
            "js-server-only",
            "js-meta-only",
        ] {
            query.bool(flag)?;
        }
        let details = query.bool("details")?;
        let (account, stream, consumer) = (
            query.get("account"),
            query.get("stream"),
            query.get("consumer"),
        );
        let missing = if account.is_empty() && !stream.is_empty() {
            Some(("account", "stream"))
        } else if stream.is_empty() && !consumer.is_empty() {
            Some(("stream", "consumer"))
        } else {
            None
        };
        let (status, body) = match missing {
            None => (StatusCode::OK, serde_json::json!({"status": "ok"})),
            Some((field, what)) => {
                let error = format!("\"{field}\" must not be empty when checking {what} health");
                let body = if details {
                    serde_json::json!({"status": "error", "errors": [{"type": "BAD_REQUEST", "error": error}]})
                } else {
                    serde_json::json!({"status": "error", "error": error})
                };
                (StatusCode::BAD_REQUEST, body)
            }
        };
        Ok(Reply {
            status,
            content_type: JSON,
            // json.Marshal: compact, unlike the other endpoints.
            body: serde_json::to_vec(&body).unwrap_or_default(),
        })
    }

    fn metrics(&self) -> Reply {
        let settings = self.shared.settings();
        let snapshot = metrics::Snapshot {
            server_id: self.server_id.clone(),
            server_name: settings
                .options
                .server_name
                .clone()
                .unwrap_or_else(|| self.server_id.clone()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            resident_memory_bytes: process::resident_bytes(),
            cpu_seconds: process::cpu_seconds(),
            shards: self.shared.shard_stats_now(),
            accounts: self.shared.account_traffic(),
            tables: self.shared.table_stats(),
        };
        Reply {
            status: StatusCode::OK,
            content_type: metrics::CONTENT_TYPE,
            body: metrics::render(snapshot).into_bytes(),
        }
    }
}

/// `/routez` until natsring has routes.
#[derive(Debug, serde::Serialize)]
struct Routez {
    server_id: String,
    server_name: String,
    now: String,
    num_routes: u64,
    routes: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalized_and_joined_as_go_does() {
        assert_eq!(normalized_base_path(""), "/");
        assert_eq!(normalized_base_path("mon"), "/mon");
        assert_eq!(normalized_base_path("/mon/"), "/mon");
        assert_eq!(normalized_base_path("/a/./b/../c"), "/a/c");
        assert_eq!(joined("/", "/varz"), "/varz");
        assert_eq!(joined("/mon", "/varz"), "/mon/varz");
    }
}
