//! The system account's services, as nats-server's internal system client provides them
//! (events.go): the `$SYS.REQ.SERVER.PING[.<ENDPOINT>]`, `$SYS.REQ.SERVER.<id>.<ENDPOINT>` and
//! `$SYS.REQ.ACCOUNT.<account>.<ENDPOINT>` requests (`nats server list`, `nats server report
//! connections`, surveyor), the `$SYS.SERVER.<id>.STATSZ` heartbeat, and the
//! `$SYS.ACCOUNT.<account>.CONNECT`/`DISCONNECT` events, with nats-server's envelopes.
//!
//! How: an in-process client of the system account. Its connection lives on shard 0's ring
//! like any client (`ConnKind::System`, over one end of a Unix socket pair); this side holds
//! the other end and speaks the client protocol on it: `SUB` to the request subjects, `MSG`
//! frames in, `PUB` replies and events out. Two threads: one reads requests and answers them
//! (the answers are the `Inspector`'s, as HTTP monitoring's), one turns the shards' connect
//! and disconnect notices (`Shared::system_events`) and a timer into events. Both write whole
//! frames under one lock.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connz::{ConnzOptions, ConnzQuery};
use super::gotime;
use super::inspector::{Inspector, Refused};
use super::subsz::{SubszOptions, SubszQuery};
use crate::stats::{ConnInfo, SystemEvent};

/// nats-server's `statsHBInterval`: how often `$SYS.SERVER.<id>.STATSZ` is published.
const STATSZ_INTERVAL: Duration = Duration::from_secs(10);
/// nats-server's `eventsHBInterval`: how often an account with clients has its connection
/// count published.
const ACCOUNT_CONNS_INTERVAL: Duration = Duration::from_secs(30);
/// How often the events thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The endpoints a server answers as `$SYS.REQ.SERVER.PING.<NAME>` and
/// `$SYS.REQ.SERVER.<id>.<NAME>`.
const SERVER_ENDPOINTS: [&str; 10] = [
    "IDZ", "STATSZ", "VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "GATEWAYZ", "ACCOUNTZ", "HEALTHZ", "LEAFZ",
];
/// The endpoints of `$SYS.REQ.ACCOUNT.<account>.<NAME>`.
const ACCOUNT_ENDPOINTS: [&str; 4] = ["CONNZ", "SUBSZ", "INFO", "STATZ"];

/// The running services; dropping it stops them.
pub struct SystemService {
    stopping: Arc<AtomicBool>,
    stream: UnixStream,
    threads: Vec<JoinHandle<()>>,
}

/// What both threads share: the answers, and the one way out.
struct Service {
    inspector: Arc<Inspector>,
    writer: Mutex<UnixStream>,
    /// nats-server's `ServerInfo.seq`: one more for every message sent.
    sequence: AtomicU64,
}

impl SystemService {
    /// Starts the services when the server has a system account: attaches the system client
    /// to shard 0 and subscribes it to the request subjects. `None` without a system account.
    pub fn start(inspector: Arc<Inspector>) -> io::Result<Option<SystemService>> {
        let shared = Arc::clone(&inspector.shared);
        if shared.settings().system_account.is_none() {
            return Ok(None);
        }
        let (ours, theirs) = UnixStream::pair()?;
        if !shared.attach_system(theirs) {
            return Ok(None);
        }
        let (events, notices) = std::sync::mpsc::channel();
        let _ = shared.set_system_events(events);
        let service = Arc::new(Service {
            inspector,
            writer: Mutex::new(ours.try_clone()?),
            sequence: AtomicU64::new(0),
        });
        service.subscribe()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let reader = BufReader::new(ours.try_clone()?);
        let requests = {
            let service = Arc::clone(&service);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("system-requests".to_string())
                .spawn(move || {
                    super::lower_priority("system services");
                    service.answer_requests(reader, &stopping)
                })?
        };
        let announcements = {
            let service = Arc::clone(&service);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("system-events".to_string())
                .spawn(move || {
                    super::lower_priority("system services");
                    service.announce(notices, &stopping)
                })?
        };
        Ok(Some(SystemService {
            stopping,
            stream: ours,
            threads: vec![requests, announcements],
        }))
    }
}

impl SystemService {
    /// The server is stopping: what fails from now on (the shards close the system client)
    /// is not an error.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

impl Drop for SystemService {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // The reader sees the end of its stream; the shard closes its end on its own.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// nats-server's `ServerInfo`: who answers, in every envelope.
#[derive(Debug, Serialize)]
struct ServerInfo {
    name: String,
    host: String,
    id: String,
    /// The cluster's name, when the server runs one (`omitempty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    ver: &'static str,
    jetstream: bool,
    flags: u64,
    seq: u64,
    time: String,
}

/// nats-server's `EventFilterOptions`: a request that names another server gets no answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Filter {
    server_name: String,
    cluster: String,
    host: String,
    /// The three above must equal, not contain, this server's.
    exact_match: bool,
    tags: Vec<String>,
    domain: String,
}

/// A request as it came: its subject's tokens after `$SYS.REQ.`, its reply, its payload.
struct Request {
    subject: String,
    reply: Option<String>,
    payload: Vec<u8>,
}

/// A received frame the services care about.
enum Frame {
    Message(Request),
    Ping,
    Other,
}

/// Reads one frame of what the server writes to a client: `MSG`, `HMSG` (headers skipped),
/// `PING`, and lines it ignores (`PONG`, `+OK`, `-ERR`). `None` at the end of the stream.
fn read_frame(reader: &mut impl BufRead) -> io::Result<Option<Frame>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let mut words = line.split(' ').filter(|word| !word.is_empty());
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {line:?}"));
    match words.next() {
        Some("MSG") => {
            let args: Vec<&str> = words.collect();
            let (subject, reply, size) = match args.as_slice() {
                [subject, _sid, size] => (*subject, None, *size),
                [subject, _sid, reply, size] => (*subject, Some(*reply), *size),
                _ => return Err(invalid()),
            };
            let size: usize = size.parse().map_err(|_| invalid())?;
            let payload = read_body(reader, size)?;
            Ok(Some(Frame::Message(Request {
                subject: subject.to_string(),
                reply: reply.map(str::to_string),
                payload,
            })))
        }
        Some("HMSG") => {
            let args: Vec<&str> = words.collect();
            let (subject, reply, header_size, total) = match args.as_slice() {
                [subject, _sid, headers, total] => (*subject, None, *headers, *total),
                [subject, _sid, reply, headers, total] => {
                    (*subject, Some(*reply), *headers, *total)
                }
                _ => return Err(invalid()),
            };
            let header_size: usize = header_size.parse().map_err(|_| invalid())?;
            let total: usize = total.parse().map_err(|_| invalid())?;
            let mut body = read_body(reader, total)?;
            let payload = body.split_off(header_size.min(body.len()));
            Ok(Some(Frame::Message(Request {
                subject: subject.to_string(),
                reply: reply.map(str::to_string),
                payload,
            })))
        }
        Some("PING") => Ok(Some(Frame::Ping)),
        _ => Ok(Some(Frame::Other)),
    }
}

/// `size` bytes and the `\r\n` after them.
fn read_body(reader: &mut impl BufRead, size: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; size + 2];
    reader.read_exact(&mut body)?;
    body.truncate(size);
    Ok(body)
}

/// A random 22-character id, as nats-server's `nuid` makes event ids.
fn event_id() -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut random = [0u8; 22];
    if getrandom::fill(&mut random).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        random = std::array::from_fn(|i| (nanos >> (i % 16 * 8)) as u8);
    }
    random
        .iter()
        .map(|byte| DIGITS[usize::from(*byte) % DIGITS.len()] as char)
        .collect()
}

impl Service {
    fn server_info(&self) -> ServerInfo {
        let settings = self.inspector.shared.settings();
        ServerInfo {
            name: self.inspector.server_name(),
            host: settings.options.host.clone(),
            id: self.inspector.server_id.clone(),
            cluster: self.cluster_name(),
            ver: crate::ADVERTISED_VERSION,
            jetstream: false,
            flags: 0,
            seq: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            time: gotime::rfc3339_utc(SystemTime::now()),
        }
    }

    /// Writes whole frames (the two threads never interleave theirs).
    fn write(&self, frames: &[u8]) -> io::Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(frames)
    }

    fn publish(&self, subject: &str, payload: &Value) -> io::Result<()> {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let mut frame = format!("PUB {subject} {}\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\r\n");
        self.write(&frame)
    }

    fn subscribe(&self) -> io::Result<()> {
        let id = &self.inspector.server_id;
        let mut subjects = vec!["$SYS.REQ.SERVER.PING".to_string()];
        for endpoint in SERVER_ENDPOINTS {
            subjects.push(format!("$SYS.REQ.SERVER.PING.{endpoint}"));
            subjects.push(format!("$SYS.REQ.SERVER.{id}.{endpoint}"));
        }
        for endpoint in ACCOUNT_ENDPOINTS {
            subjects.push(format!("$SYS.REQ.ACCOUNT.*.{endpoint}"));
        }
        let mut frames = String::new();
        for (sid, subject) in subjects.iter().enumerate() {
            frames.push_str(&format!("SUB {subject} {}\r\n", sid + 1));
        }
        self.write(frames.as_bytes())
    }

    /// The requests thread: until the stream ends.
    fn answer_requests(&self, mut reader: BufReader<UnixStream>, stopping: &AtomicBool) {
        loop {
            match read_frame(&mut reader) {
                Ok(Some(Frame::Message(request))) => {
                    let Some(reply) = request.reply.as_deref().filter(|r| !r.is_empty()) else {
                        continue;
                    };
                    if let Some(answer) = self.answer(&request) {
                        if let Err(err) = self.publish(reply, &answer) {
                            if !stopping.load(Ordering::Acquire) {
                                crate::log_error!("System account services: {err}");
                            }
                            return;
                        }
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = self.write(b"PONG\r\n");
                }
                Ok(Some(Frame::Other)) => {}
                Ok(None) => return,
                Err(err) => {
                    if !stopping.load(Ordering::Acquire) {
                        crate::log_error!("System account services stopped reading: {err}");
                    }
                    return;
                }
            }
        }
    }

    /// The answer to `request`, or `None` when this server is not the one asked (a filter) or
    /// the request is not one it answers.
    fn answer(&self, request: &Request) -> Option<Value> {
        let tokens: Vec<&str> = request.subject.split('.').collect();
        // `$SYS.REQ.SERVER.PING`: the statistics, as `.STATSZ`.
        let (endpoint, account) = match tokens.as_slice() {
            ["$SYS", "REQ", "SERVER", "PING"] => ("STATSZ", None),
            ["$SYS", "REQ", "SERVER", _, endpoint] => (*endpoint, None),
            ["$SYS", "REQ", "ACCOUNT", account, endpoint] => (*endpoint, Some(*account)),
            _ => return None,
        };
        // nats-server's `idzReq`: the bare id, no envelope; the body (options, filters) is not read.
        if endpoint == "IDZ" && account.is_none() {
            let settings = self.inspector.shared.settings();
            return Some(serde_json::json!({
                "name": self.inspector.server_name(),
                "host": settings.options.host,
                "id": self.inspector.server_id,
            }));
        }
        let options = match request_options(&request.payload) {
            Ok(options) => options,
            Err(description) => return Some(self.envelope(Err((400, description)))),
        };
        let filter: Filter = serde_json::from_value(options.clone()).unwrap_or_default();
        if !self.is_asked(&filter) {
            return None;
        }
        if endpoint == "STATSZ" && account.is_none() {
            return Some(serde_json::json!({
                "server": self.server_info(),
                "statsz": self.statsz(),
            }));
        }
        let data = match account {
            None => self.server_endpoint(endpoint, options),
            Some(account) => self.account_endpoint(account, endpoint, options)?,
        };
        Some(self.envelope(data))
    }

    /// nats-server's `filterRequest`: whether this server is among those the options name.
    fn is_asked(&self, filter: &Filter) -> bool {
        let settings = self.inspector.shared.settings();
        let matches = |value: &str, wanted: &str| {
            wanted.is_empty()
                || if filter.exact_match {
                    value == wanted
                } else {
                    value.contains(wanted)
                }
        };
        let cluster = self.cluster_name().unwrap_or_default();
        matches(&self.inspector.server_name(), &filter.server_name)
            && matches(&settings.options.host, &filter.host)
            && matches(&cluster, &filter.cluster)
            // No tags, no JetStream domain: a filter on either excludes it.
            && filter.tags.is_empty()
            && filter.domain.is_empty()
    }

    /// The running cluster's name (configured, or the one made up when none was).
    fn cluster_name(&self) -> Option<String> {
        let cluster = self.inspector.shared.cluster.as_ref()?;
        Some(cluster.info.cluster.clone())
    }

    /// `{"server": ..., "data": ...}`, or `"error": {"code", "description"}`. An error of the
    /// endpoint itself (500: an invalid sort, an unknown account) comes with `"data": null`,
    /// as nats-server's does: its handlers return a typed nil pointer with the error, which
    /// `omitempty` keeps. An error reading the options (400) comes without.
    fn envelope(&self, data: Result<Value, (u16, String)>) -> Value {
        match data {
            Ok(data) => serde_json::json!({"server": self.server_info(), "data": data}),
            Err((code, description)) => {
                let mut envelope = serde_json::json!({
                    "server": self.server_info(),
                    "error": {"code": code, "description": description},
                });
                if code != 400 {
                    envelope["data"] = Value::Null;
                }
                envelope
            }
        }
    }

    fn server_endpoint(&self, endpoint: &str, options: Value) -> Result<Value, (u16, String)> {
        let inspector = &self.inspector;
        match endpoint {
            "VARZ" => Ok(json(&inspector.varz())),
            "CONNZ" => {
                let options: ConnzOptions = parse(options)?;
                let query = ConnzQuery::new(options).map_err(|err| (500, err.0))?;
                Ok(json(&inspector.connz(&query)))
            }
            "SUBSZ" => {
                let options: SubszOptions = parse(options)?;
                let query = SubszQuery::new(options).map_err(|err| (500, err.0))?;
                Ok(json(&inspector.subsz(&query)))
            }
            "ROUTEZ" => Ok(json(&inspector.routez(parse(options)?))),
            "GATEWAYZ" => Ok(inspector.gatewayz()),
            "LEAFZ" => Ok(inspector.leafz()),
            "ACCOUNTZ" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct AccountzOptions {
                    account: String,
                }
                let options: AccountzOptions = parse(options)?;
                inspector
                    .accountz(Some(&options.account))
                    .map(|accountz| json(&accountz))
                    .map_err(|Refused(text)| (500, text))
            }
            "HEALTHZ" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct HealthzOptions {
                    account: String,
                    stream: String,
                    consumer: String,
                    details: bool,
                }
                let options: HealthzOptions = parse(options)?;
                let health = inspector.healthz(
                    &options.account,
                    &options.stream,
                    &options.consumer,
                    options.details,
                );
                // Over NATS the status code is part of the answer, as nats-server sends it.
                let mut body = health.body;
                body["status_code"] = Value::from(health.status_code);
                Ok(body)
            }
            _ => Err((404, format!("unknown endpoint {endpoint}"))),
        }
    }

    /// `$SYS.REQ.ACCOUNT.<account>.<endpoint>`; `None`: no answer (nats-server's `STATZ` of an
    /// account without clients).
    fn account_endpoint(
        &self,
        account: &str,
        endpoint: &str,
        options: Value,
    ) -> Option<Result<Value, (u16, String)>> {
        let inspector = &self.inspector;
        Some(match endpoint {
            "CONNZ" => parse::<ConnzOptions>(options).and_then(|mut options| {
                options.acc = account.to_string();
                let query = ConnzQuery::new(options).map_err(|err| (500, err.0))?;
                Ok(json(&inspector.connz(&query)))
            }),
            "SUBSZ" => parse::<SubszOptions>(options).and_then(|mut options| {
                options.subscriptions = true;
                options.account = account.to_string();
                let query = SubszQuery::new(options).map_err(|err| (500, err.0))?;
                Ok(json(&inspector.subsz(&query)))
            }),
            "INFO" => inspector
                .account_info(account)
                .map(|info| json(&info))
                .map_err(|Refused(text)| (500, text)),
            "STATZ" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct StatzOptions {
                    accounts: Vec<String>,
                    include_unused: bool,
                }
                let mut options: StatzOptions = match parse(options) {
                    Ok(options) => options,
                    Err(err) => return Some(Err(err)),
                };
                // `$SYS.REQ.ACCOUNT.PING.STATZ` is every account's (or the `accounts` the
                // options name), as nats-server's own subscription to it answers; any other
                // account's is its own.
                if account != "PING" {
                    options.accounts = vec![account.to_string()];
                }
                let statz = inspector.accstatz(options.include_unused, &options.accounts);
                if statz.account_statz.is_empty() && !options.include_unused {
                    return None;
                }
                Ok(json(&statz))
            }
            _ => return None,
        })
    }

    /// nats-server's `ServerStats`.
    fn statsz(&self) -> Value {
        let inspector = &self.inspector;
        let varz = inspector.varz();
        let accounts = inspector.shared.account_traffic();
        let active_accounts = accounts.iter().filter(|a| a.connections > 0).count();
        let data = |msgs: u64, bytes: u64| serde_json::json!({"msgs": msgs, "bytes": bytes});
        // nats-server's `RouteStat` of each route (`omitempty`: none, no key).
        let routes: Vec<Value> = match &inspector.shared.cluster {
            Some(_) => inspector
                .shared
                .routes(false)
                .iter()
                .map(|route| {
                    serde_json::json!({
                        "rid": route.rid,
                        "name": route.remote_name,
                        "sent": data(route.out_msgs, route.out_bytes),
                        "received": data(route.in_msgs, route.in_bytes),
                        "pending": route.pending_bytes,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        // nats-server counts the servers it heard from; each of ours has a route to us.
        let active_servers = 1 + routes.len();
        let mut statsz = serde_json::json!({
            "start": gotime::rfc3339(inspector.start),
            "mem": varz.mem,
            "cores": varz.cores,
            "cpu": super::go_json::go_number(varz.cpu),
            "connections": varz.connections,
            "total_connections": varz.total_connections,
            "active_accounts": active_accounts,
            "subscriptions": varz.subscriptions,
            "sent": data(varz.out_msgs, varz.out_bytes),
            "sent_to_clients": data(varz.out_client_msgs, varz.out_client_bytes),
            "received": data(varz.in_msgs, varz.in_bytes),
            "received_from_clients": data(varz.in_client_msgs, varz.in_client_bytes),
            "slow_consumers": varz.slow_consumers,
            "active_servers": active_servers,
            "gomaxprocs": varz.gomaxprocs,
        });
        if !routes.is_empty() {
            statsz["routes"] = Value::from(routes);
        }
        statsz
    }

    /// The events thread: the shards' notices as events, and the heartbeats, until stopped.
    /// Notices that wait are taken together: each gets its CONNECT or DISCONNECT, and each
    /// account they touched one connection count, from one look at the shards (a count costs
    /// a pass over every connection: per notice, a storm of connections would cost the
    /// square of their number).
    fn announce(&self, notices: Receiver<SystemEvent>, stopping: &AtomicBool) {
        let statsz_subject = format!("$SYS.SERVER.{}.STATSZ", self.inspector.server_id);
        // nats-server sends its first heartbeat soon after start.
        let mut next_statsz = Instant::now() + Duration::from_millis(500);
        let mut next_account_conns = Instant::now() + ACCOUNT_CONNS_INTERVAL;
        while !stopping.load(Ordering::Acquire) {
            let first = match notices.recv_timeout(STOP_CHECK) {
                Ok(notice) => Some(notice),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let batch = first.into_iter().chain(
                std::iter::from_fn(|| notices.try_recv().ok())
                    .take(crate::limits::SYSTEM_NOTICES_BATCH_MAX),
            );
            let mut touched: Vec<String> = Vec::new();
            let mut result = Ok(());
            for notice in batch {
                let (info, connected) = match &notice {
                    SystemEvent::Connect(info) => (info, true),
                    SystemEvent::Disconnect(info) => (info, false),
                };
                if !touched.contains(&info.account) {
                    touched.push(info.account.clone());
                }
                result = result.and_then(|()| self.client_event(info, connected));
            }
            let now = Instant::now();
            let result = result.and_then(|()| {
                if !touched.is_empty() {
                    self.accounts_conns(&touched)?;
                }
                if now >= next_statsz {
                    next_statsz = now + STATSZ_INTERVAL;
                    let statsz = serde_json::json!({
                        "server": self.server_info(),
                        "statsz": self.statsz(),
                    });
                    self.publish(&statsz_subject, &statsz)?;
                }
                if now >= next_account_conns {
                    next_account_conns = now + ACCOUNT_CONNS_INTERVAL;
                    let active: Vec<String> = self
                        .inspector
                        .shared
                        .account_traffic()
                        .into_iter()
                        .filter(|account| account.connections > 0)
                        .map(|account| account.account)
                        .collect();
                    if !active.is_empty() {
                        self.accounts_conns(&active)?;
                    }
                }
                Ok(())
            });
            if let Err(err) = result {
                if !stopping.load(Ordering::Acquire) {
                    crate::log_error!("System account events stopped: {err}");
                }
                return;
            }
        }
    }

    /// `$SYS.ACCOUNT.<account>.CONNECT` or `.DISCONNECT` for a client.
    fn client_event(&self, info: &ConnInfo, connected: bool) -> io::Result<()> {
        let mut client = serde_json::json!({
            "start": gotime::rfc3339_utc(info.start),
            "host": info.ip,
            "id": info.cid,
            "acc": info.account,
            "kind": "Client",
            "client_type": "nats",
        });
        let fields = [
            ("user", &info.authorized_user),
            ("name", &info.name),
            ("lang", &info.lang),
            ("ver", &info.version),
            ("jwt", &info.jwt),
            ("issuer_key", &info.issuer_key),
        ];
        for (key, value) in fields {
            if !value.is_empty() {
                client[key] = Value::from(value.as_str());
            }
        }
        client["name_tag"] = Value::from(if info.name_tag.is_empty() {
            info.account.as_str()
        } else {
            info.name_tag.as_str()
        });
        if !info.tags.is_empty() {
            client["tags"] = Value::from(info.tags.clone());
        }
        // nats-server's CONNECT event carries no `rtt` (its `accountConnectEvent` leaves
        // `ClientInfo.RTT` unset: it is sent before the first PONG measures one); the
        // DISCONNECT's is the last measured, omitted when none was.
        if !connected && info.rtt_ns > 0 {
            client["rtt"] = Value::from(info.rtt_ns);
        }
        let mut event = serde_json::json!({
            "type": if connected {
                "io.nats.server.advisory.v1.client_connect"
            } else {
                "io.nats.server.advisory.v1.client_disconnect"
            },
            "id": event_id(),
            "timestamp": gotime::rfc3339_utc(SystemTime::now()),
            "server": self.server_info(),
        });
        let what = if connected {
            "CONNECT"
        } else {
            if let Some(stop) = info.stop {
                client["stop"] = Value::from(gotime::rfc3339_utc(stop));
            }
            let data = |msgs: u64, bytes: u64| serde_json::json!({"msgs": msgs, "bytes": bytes});
            event["sent"] = data(info.out_msgs, info.out_bytes);
            event["received"] = data(info.in_msgs, info.in_bytes);
            event["reason"] = Value::from(info.reason.unwrap_or_default());
            "DISCONNECT"
        };
        event["client"] = client;
        self.publish(&format!("$SYS.ACCOUNT.{}.{what}", info.account), &event)
    }

    /// The accounts' connection counts (`account_connections`), each on both subjects
    /// nats-server publishes it to, from one look at the shards.
    fn accounts_conns(&self, accounts: &[String]) -> io::Result<()> {
        let statz = self.inspector.accstatz(true, accounts);
        for stat in &statz.account_statz {
            let mut event = serde_json::to_value(stat).unwrap_or_default();
            event["type"] = Value::from("io.nats.server.advisory.v1.account_connections");
            event["id"] = Value::from(event_id());
            event["timestamp"] = Value::from(gotime::rfc3339_utc(SystemTime::now()));
            event["server"] = serde_json::to_value(self.server_info()).unwrap_or_default();
            let account = &stat.acc;
            self.publish(&format!("$SYS.ACCOUNT.{account}.SERVER.CONNS"), &event)?;
            self.publish(&format!("$SYS.SERVER.ACCOUNT.{account}.CONNS"), &event)?;
        }
        Ok(())
    }
}

/// A request's options as JSON: none (an empty payload) and `null` are the defaults, as Go's
/// `json.Unmarshal` leaves them; anything but an object is nats-server's 400, and so is a
/// payload that is not JSON, blank included (nats-server parses any non-empty payload).
fn request_options(payload: &[u8]) -> Result<Value, String> {
    if payload.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Null) => Ok(Value::Object(Default::default())),
        Ok(options @ Value::Object(_)) => Ok(options),
        Ok(other) => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                _ => "array",
            };
            Err(format!("json: cannot unmarshal {kind} into Go value"))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// A request's options as `T`; a mismatch is nats-server's 400.
fn parse<T: for<'de> Deserialize<'de>>(options: Value) -> Result<T, (u16, String)> {
    serde_json::from_value(options).map_err(|err| (400, err.to_string()))
}

/// An answer as a JSON value.
fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_as_a_client_reads_them() {
        let text = b"MSG $SYS.REQ.SERVER.PING 1 _INBOX.x 2\r\n{}\r\nPING\r\n\
                     HMSG $SYS.REQ.ACCOUNT.A.CONNZ 9 _INBOX.y 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
                     +OK\r\nMSG a 1 0\r\n\r\n";
        let mut reader = &text[..];
        let Some(Frame::Message(first)) = read_frame(&mut reader).unwrap() else {
            panic!("a message")
        };
        assert_eq!(first.subject, "$SYS.REQ.SERVER.PING");
        assert_eq!(first.reply.as_deref(), Some("_INBOX.x"));
        assert_eq!(first.payload, b"{}");
        assert!(matches!(
            read_frame(&mut reader).unwrap(),
            Some(Frame::Ping)
        ));
        let Some(Frame::Message(second)) = read_frame(&mut reader).unwrap() else {
            panic!("a message with headers")
        };
        assert_eq!(
            (second.subject.as_str(), second.payload.as_slice()),
            ("$SYS.REQ.ACCOUNT.A.CONNZ", &b"hi"[..])
        );
        assert!(matches!(
            read_frame(&mut reader).unwrap(),
            Some(Frame::Other)
        ));
        let Some(Frame::Message(empty)) = read_frame(&mut reader).unwrap() else {
            panic!("an empty message")
        };
        assert_eq!((empty.reply, empty.payload.len()), (None, 0));
        assert!(read_frame(&mut reader).unwrap().is_none());
        assert!(
            read_frame(&mut &b"MSG a b\r\n"[..]).is_err(),
            "too few arguments"
        );
    }

    #[test]
    fn options_are_read_as_go_unmarshals_them() {
        let empty = Value::Object(Default::default());
        assert_eq!(request_options(b""), Ok(empty.clone()));
        assert_eq!(request_options(b"null"), Ok(empty));
        assert_eq!(
            request_options(br#"{"limit":2}"#),
            Ok(serde_json::json!({"limit": 2}))
        );
        for refused in [&b" "[..], b"{", b"[]", b"3", b"\"x\"", b"true"] {
            assert!(request_options(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn event_ids_look_like_nuids() {
        let id = event_id();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, event_id());
    }
}
