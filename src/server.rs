//! Starting and stopping a server: bind one `SO_REUSEPORT` listener per shard on the same
//! address, spawn the shard threads (optionally pinned), and stop them gracefully.
//! No per-message work happens here.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{self, Options, Ports};
use crate::lame_duck::LameDuck;
use crate::limits;
use crate::proto::json::{server_id, Info};
use crate::shard::control::{CloseCause, Control, Mailbox};
use crate::shard::{ConnKind, Settings, Shard, ShardSetup, Shared};
use crate::stats::{AccountTraffic, ConnInfo, ShardStats};
use crate::xshard::link::{link, Incoming, Outgoing};
use crate::xshard::ShardId;

/// The protocol version natsring advertises in INFO. Clients gate features on it, so it is a
/// nats-server 2.x semver, not our crate version.
pub const ADVERTISED_VERSION: &str = "2.11.0";
/// The `go` natsring reports in INFO and `/varz`: clients and tools gate nothing on it, but
/// some expect a Go version there.
pub const GO_VERSION: &str = "go1.24.0";
/// Backlog of each listener.
const LISTEN_BACKLOG: i32 = 4096;

pub struct Server;

/// How many shards `--shards` asks for: 0 is one per CPU the process may run on.
fn resolved_shards(asked: usize) -> usize {
    match asked {
        0 => allowed_cpus().len().max(1),
        n => n,
    }
    .min(limits::SHARDS_MAX)
}

/// Where clients are told this server is (INFO `host` and `port`): `client_advertise` when
/// set (`host` or `host:port`; a missing, 0 or -1 port is the listening one), else the listen
/// address. The error is Go's (nats-server's `parseHostPort`).
fn advertised(options: &Options, port: u16) -> Result<(String, u16), String> {
    match &options.client_advertise {
        Some(advertise) => config::go::parse_host_port(advertise, port),
        None => Ok((options.host.clone(), port)),
    }
}

/// The INFO of server `id` listening on `port` with `options`, before a client's own fields.
fn info_for(options: &Options, id: &str, port: u16) -> Info {
    let (host, port) = advertised(options, port).unwrap_or((options.host.clone(), port));
    Info {
        server_id: id.to_string(),
        server_name: options
            .server_name
            .clone()
            .unwrap_or_else(|| id.to_string()),
        version: ADVERTISED_VERSION.to_string(),
        go: GO_VERSION.to_string(),
        host,
        port,
        headers: !options.no_header_support,
        max_payload: options.max_payload,
        client_id: 0,
        client_ip: String::new(),
        auth_required: false,
        // Set with the TLS settings (`Settings::with_tls`).
        tls_required: false,
        tls_verify: false,
        tls_available: false,
        connect_info: false,
        remote_account: None,
        acc_is_sys: false,
        nonce: None,
        cluster: None,
        cluster_dynamic: false,
        connect_urls: Vec::new(),
        ldm: false,
    }
}

/// A running server. `shutdown` stops it and reports how the shards ended; dropping the handle
/// stops it too.
pub struct ServerHandle {
    port: u16,
    server_id: String,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The ports file written for `ports_file_dir`, removed at shutdown (or moved by a reload).
    ports_file: Mutex<Option<PathBuf>>,
    /// What monitoring reads (HTTP and the system account's requests).
    inspector: Arc<crate::monitor::Inspector>,
    /// HTTP monitoring, when a port was given.
    monitor: Option<crate::monitor::Monitor>,
    /// The system account's requests and events, when there is a system account.
    system: Option<crate::monitor::SystemService>,
    /// The cluster's dialer thread, when a cluster is configured.
    dialer: Option<JoinHandle<()>>,
    /// The port routes connect to, when a cluster is configured.
    cluster_port: Option<u16>,
}

/// Held while a shard runs. However its loop ends, its mailbox is closed (nobody waits on a
/// shard that is gone); if it ended with an error or a panic unwinds it (`armed`), every other
/// shard is stopped too, so the server fails whole instead of half-working.
struct FailStop {
    shared: Arc<Shared>,
    shard: ShardId,
    armed: bool,
}

impl Drop for FailStop {
    fn drop(&mut self) {
        self.shared.mailboxes[self.shard.index()].close();
        if self.armed {
            crate::log_error!("A shard stopped unexpectedly: stopping the server");
            self.shared.stop_all();
        }
    }
}

impl Server {
    /// Binds, starts every shard and returns once all of them are ready to accept.
    pub fn start(options: Options) -> io::Result<ServerHandle> {
        // Before binding: when io_uring is refused, that is what the error says.
        crate::shard::check_io_uring()?;
        // Operator JWTs that do not verify stop the start, as in nats-server.
        let operator = crate::auth::operator::OperatorMode::new(&options)
            .map_err(io::Error::other)?
            .map(Arc::new);
        if let Err(err) = monitoring_allowed(&options) {
            return Err(io::Error::other(format!("Can't start monitoring: {err}")));
        }
        let shard_count = resolved_shards(options.shards);
        let listeners = bind_listeners(&options.host, options.port, shard_count)?;
        let port = listeners[0].local_addr()?.port();
        if let Err(err) = advertised(&options, port) {
            return Err(io::Error::other(format!(
                "Error setting server INFO with ClientAdvertise value of {}, err={err}",
                options.client_advertise.as_deref().unwrap_or_default()
            )));
        }
        let pid_file = options.pid_file.clone();
        let ports_file_dir = options.ports_file_dir.clone();
        let mut ports = Ports::for_client(
            &options.host,
            port,
            options.tls.is_some() && !options.allow_non_tls,
        );

        let id = server_id();
        let mut info = info_for(&options, &id, port);
        let mut cluster = ClusterStart::new(&options, &info, shard_count)?;
        if let Some(start) = &cluster {
            // Clients of a cluster's server learn the cluster's name; the URLs to fail over to
            // come with the first route (`Control::ClientUrls`), as nats-server lists none
            // before it has had a route.
            info.cluster = Some(start.cluster.info.cluster.clone());
            info.cluster_dynamic = start.cluster.info.cluster_dynamic;
        }
        let pin_shards = options.pin_shards;
        // Every mailbox first: a failure here leaves no thread behind.
        let mut readers = Vec::with_capacity(shard_count);
        let mut mailboxes = Vec::with_capacity(shard_count);
        for _ in 0..shard_count {
            let (mailbox, reader) = Mailbox::new()?;
            readers.push(reader);
            mailboxes.push(mailbox);
        }
        // The options in force say the port bound (a random one included), as nats-server's
        // do: a reload compares with it.
        let options = Options { port, ..options };
        let tls = client_tls(&options).map_err(io::Error::other)?;
        let route_tls = route_tls(&options).map_err(io::Error::other)?;
        let (cluster_state, mut cluster_listeners) = match &mut cluster {
            Some(start) => (
                Some(Arc::clone(&start.cluster)),
                std::mem::take(&mut start.listeners),
            ),
            None => (None, Vec::new()),
        };
        if let Some(start) = &cluster {
            ports.cluster = start.ports.clone();
        }
        let shared = Shared::new(
            Settings::new(options, info, None, operator)
                .with_tls(tls)
                .with_route_tls(route_tls),
            mailboxes,
            cluster_state,
        )?;

        if let Some(cluster) = &shared.cluster {
            announce_response_prefixes(cluster, &shared.settings());
        }
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut threads = Vec::with_capacity(shard_count);
        let cpus = if pin_shards {
            allowed_cpus()
        } else {
            Vec::new()
        };
        let mut links = peer_links(shard_count);
        let mut go = Vec::with_capacity(shard_count);
        for (index, (listener, reader)) in listeners.into_iter().zip(readers).enumerate() {
            let mut shard_listeners = vec![(ConnKind::Client, listener)];
            if !cluster_listeners.is_empty() {
                shard_listeners.push((ConnKind::Route, cluster_listeners.remove(0)));
            }
            let setup = ShardSetup {
                index: ShardId(index as u16),
                listeners: shard_listeners,
                wake_fd: Arc::new(OwnedFd::from(reader)),
                shared: Arc::clone(&shared),
                links: std::mem::take(&mut links[index]),
            };
            let ready = ready_tx.clone();
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            go.push(go_tx);
            let cpu = cpus.get(index % cpus.len().max(1)).copied();
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to_cpu(cpu);
                    }
                    let shared = Arc::clone(&setup.shared);
                    // Creating the ring publishes its fd for the peers' wake-ups.
                    let shard = match Shard::new(setup) {
                        Ok(shard) => shard,
                        Err(err) => {
                            let copy = io::Error::new(err.kind(), err.to_string());
                            let _ = ready.send(Err(err));
                            return Err(copy);
                        }
                    };
                    let _ = ready.send(Ok(()));
                    // Run only once every shard is ready (every ring fd published); a start-up
                    // that failed elsewhere sends false or drops the sender.
                    if go_rx.recv() != Ok(true) {
                        return Ok(());
                    }
                    let mut fail_stop = FailStop {
                        shared,
                        shard: ShardId(index as u16),
                        armed: true,
                    };
                    let result = shard.run();
                    fail_stop.armed = result.is_err();
                    result
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    drop(go);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(err);
                }
            }
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..shard_count {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failure = failure.or(Some(err)),
                Err(_) => {
                    failure = failure.or(Some(io::Error::other(
                        "a shard thread exited during start-up",
                    )))
                }
            }
        }
        let all_ready = failure.is_none();
        for go in &go {
            let _ = go.send(all_ready);
        }
        let mut handle = ServerHandle {
            port,
            server_id: id.clone(),
            shared: Arc::clone(&shared),
            threads,
            ports_file: Mutex::new(None),
            inspector: Arc::new(crate::monitor::Inspector::new(Arc::clone(&shared), &id)),
            monitor: None,
            system: None,
            dialer: None,
            cluster_port: cluster.as_ref().map(|start| start.port),
        };
        if let Some(err) = failure {
            drop(handle);
            return Err(err);
        }
        // Before the clients come (every one is announced), after the shards are ready.
        match crate::monitor::SystemService::start(Arc::clone(&handle.inspector)) {
            Ok(system) => handle.system = system,
            Err(err) => {
                drop(handle);
                return Err(err);
            }
        }
        let settings = handle.shared.settings();
        if settings.options.http_port != 0 || settings.options.https_port != 0 {
            match crate::monitor::Monitor::start(Arc::clone(&handle.inspector)) {
                Ok(monitor) => {
                    ports = ports.with_monitoring(
                        monitor.scheme(),
                        settings.options.monitoring_host(),
                        monitor.address().port(),
                    );
                    handle.monitor = Some(monitor);
                }
                Err(err) => {
                    drop(handle);
                    return Err(io::Error::new(
                        err.kind(),
                        format!("Can't start monitoring: {err}"),
                    ));
                }
            }
        }
        if let Some(start) = cluster {
            handle.dialer = Some(start.run_dialer(Arc::clone(&handle.shared))?);
        }
        // As nats-server: a pid file that cannot be written stops the server; a ports file
        // that cannot be written is logged.
        if let Some(path) = &pid_file {
            if let Err(err) = config::write_pid_file(path) {
                drop(handle);
                return Err(io::Error::new(
                    err.kind(),
                    format!("Could not write pidfile: {err}"),
                ));
            }
        }
        if let Some(dir) = &ports_file_dir {
            handle.write_ports_file(dir, &ports);
        }
        Ok(handle)
    }
}

impl ServerHandle {
    /// The port clients connect to (the bound one when the options asked for a random port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where HTTP monitoring listens, when it runs.
    pub fn monitor_address(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(|monitor| monitor.address())
    }

    /// The port cluster routes connect to, when a cluster is configured (the bound one when
    /// the options asked for a random port).
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// The server's INFO `server_id`.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Puts `options` in force, as nats-server's reload does (`SIGHUP`, `--signal reload`):
    /// every shard swaps them in between completions, and this returns once all have. Limits
    /// apply to open connections too (see `Core::reload`); logging is reopened with the new
    /// settings; the pid file is written anew and the ports file moved when they changed.
    /// Returns the `Reloaded: <option> = <value>` lines for what changed (logged here too).
    /// Refused, with nothing changed, when an option that cannot change while running differs
    /// (`config::reload_refusal`: nats-server's `config reload not supported for <Field>: old=<v>,
    /// new=<v>`).
    pub fn reload(&self, options: Options) -> Result<Vec<String>, config::ReloadRefused> {
        // Held to the end: reloads run one at a time, each compared with the one before. No
        // shard takes this lock while it runs, so waiting for them under it is safe.
        let mut current = self
            .shared
            .settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = &current.options;
        if let Some(refused) = config::reload_refusal(old, &options) {
            return Err(refused);
        }
        if let Some(advertise) = &options.client_advertise {
            if let Err(err) = config::go::parse_host_port(advertise, 0) {
                return Err(config::ReloadRefused(format!(
                    "invalid ClientAdvertise value of {advertise}, err={err}"
                )));
            }
        }
        let operator = crate::auth::operator::OperatorMode::new(&options)
            .map_err(config::ReloadRefused)?
            .map(Arc::new);
        let tls = client_tls(&options).map_err(config::ReloadRefused)?;
        let route_tls = route_tls(&options).map_err(config::ReloadRefused)?;
        crate::log::init(&options).map_err(|err| config::ReloadRefused(err.to_string()))?;
        let notices = config::reload_notices(old, &options);
        let old_max_connections = old.max_connections;
        if old.pid_file != options.pid_file {
            if let Some(path) = &options.pid_file {
                if let Err(err) = config::write_pid_file(path) {
                    crate::log_error!("Failed to write pidfile: {err}");
                }
            }
        }
        if old.ports_file_dir != options.ports_file_dir {
            self.remove_ports_file();
            if let Some(dir) = &options.ports_file_dir {
                let mut ports = Ports::for_client(&old.host, self.port, current.info.tls_required);
                if let Some(monitor) = &self.monitor {
                    ports = ports.with_monitoring(
                        monitor.scheme(),
                        old.monitoring_host(),
                        monitor.address().port(),
                    );
                }
                self.write_ports_file(dir, &ports);
            }
        }
        let mut info = info_for(&options, &self.server_id, self.port);
        // The cluster a server is in does not change on reload.
        info.cluster = current.info.cluster.clone();
        info.cluster_dynamic = current.info.cluster_dynamic;
        info.connect_urls = current.info.connect_urls.clone();
        let options = Options {
            // The listening port stays what was bound (a random one included).
            port: old.port,
            ..options
        };
        let settings = Arc::new(
            Settings::new(options, info, Some(&current), operator)
                .with_tls(tls)
                .with_route_tls(route_tls),
        );
        let cluster_changes = config::cluster_diff(&current.options, &settings.options);
        *current = Arc::clone(&settings);
        if cluster_changes.permissions_changed {
            self.reload_route_permissions(&settings.options);
        }
        // A shard that is gone (stopping) has nothing left to apply them to.
        self.shared
            .ask_every_shard(|done| Control::Reload(Arc::clone(&settings), done));
        if !cluster_changes.routes_added.is_empty() || !cluster_changes.routes_removed.is_empty() {
            self.reload_routes(&settings.options, &cluster_changes.routes_removed);
        }
        if settings.options.max_connections < old_max_connections {
            let closed = self.close_over_max_connections(settings.options.max_connections);
            if closed > 0 {
                crate::log_notice!("Closed {closed} connections to fall within max_connections");
            }
        }
        for notice in &notices {
            crate::log_notice!("{notice}");
        }
        self.inspector.reloaded();
        match &settings.options.config_digest {
            Some(digest) => crate::log_notice!("Reloaded server configuration ({digest})"),
            None => crate::log_notice!("Reloaded server configuration"),
        }
        Ok(notices)
    }

    /// A reload changed the route permissions: the cluster re-filters the interest it
    /// announces (and tells the peers); each shard, applying the reload after this, drops
    /// what its routes' peers sent that may no longer be exported (`Core::reload`).
    fn reload_route_permissions(&self, options: &Options) {
        let Some(cluster) = &self.shared.cluster else {
            return;
        };
        let permissions = options
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.permissions.as_ref());
        let mailboxes = &self.shared.mailboxes;
        cluster.reload_permissions(permissions, &mut |shard| {
            mailboxes[usize::from(shard)].send(Control::RouteOutbox);
        });
    }

    /// A reload changed the configured routes: the dialer dials the new list, and routes this
    /// server dialed for a URL no longer listed close (`RouteRemoved`), as nats-server's reload
    /// removes them.
    fn reload_routes(&self, options: &Options, removed: &[config::RouteUrl]) {
        use crate::cluster::dialer::{Dial, RouteUrl};
        let Some(cluster) = &self.shared.cluster else {
            return;
        };
        let routes = options
            .cluster
            .as_ref()
            .map(|cluster| cluster.routes.iter().map(RouteUrl::from).collect())
            .unwrap_or_default();
        cluster.dialer.send(Dial::Configured(routes));
        if !removed.is_empty() {
            let removed: Arc<[RouteUrl]> = removed.iter().map(RouteUrl::from).collect();
            for mailbox in &self.shared.mailboxes {
                mailbox.send(Control::RoutesRemoved(Arc::clone(&removed)));
            }
        }
    }

    /// Enters lame duck mode, as nats-server's `lameDuckMode` (see `lame_duck`): every shard
    /// stops accepting and tells its clients, and the clients are closed after
    /// `lame_duck_grace_period`, one at a time, at most a second apart. The caller stops the
    /// server once [`LameDuck::is_finished`].
    pub fn enter_lame_duck(&self) -> LameDuck {
        crate::lame_duck::enter(Arc::clone(&self.shared))
    }

    /// Closes open clients until at most `max_connections` are left, each told with `-ERR
    /// 'maximum connections exceeded'`, as nats-server's reload of a lower `max_connections`
    /// does. Returns how many were closed.
    fn close_over_max_connections(&self, max_connections: u32) -> usize {
        let open = self
            .shared
            .connections
            .load(std::sync::atomic::Ordering::Relaxed) as usize;
        let mut excess = open.saturating_sub(max_connections as usize);
        let mut closed = 0;
        for mailbox in &self.shared.mailboxes {
            if excess == 0 {
                break;
            }
            let (reply, answer) = mpsc::channel();
            if mailbox.send(Control::CloseClients(
                excess,
                CloseCause::MaxConnections,
                reply,
            )) {
                if let Ok((closed_here, _)) = answer.recv() {
                    excess -= closed_here.min(excess);
                    closed += closed_here;
                }
            }
        }
        closed
    }

    fn lock_ports_file(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.ports_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the ports file written, if any (at shutdown, or when a reload moves it).
    fn remove_ports_file(&self) {
        if let Some(path) = self.lock_ports_file().take() {
            config::remove_ports_file(&path);
        }
    }

    /// Writes the ports file in `dir`, remembering it for shutdown; a failure is logged as
    /// nats-server logs it.
    fn write_ports_file(&self, dir: &std::path::Path, ports: &Ports) {
        match config::write_ports_file(dir, ports) {
            Ok(path) => *self.lock_ports_file() = Some(path),
            Err(err) => crate::log_error!(
                "Error writing ports file ({}): {err}",
                config::ports_file_path(dir).display()
            ),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.threads.len()
    }

    /// Counters summed over every shard, as last published (each shard publishes on its tick).
    pub fn stats(&self) -> ShardStats {
        let all: Vec<ShardStats> = self
            .shared
            .stats
            .iter()
            .map(|s| *s.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        ShardStats::sum(&all)
    }

    /// Every open client connection, as each shard sees it now: each shard is asked through
    /// its mailbox and answers at the next turn of its loop (a shard that has ended answers
    /// nothing). Sorted by cid. (`Shared::open_connections`.)
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.shared.open_connections(false)
    }

    /// Every account's traffic, added up over the shards, in `AccountId` order (`$G` first).
    /// (`Shared::account_traffic`.)
    pub fn account_traffic(&self) -> Vec<AccountTraffic> {
        self.shared.account_traffic()
    }

    /// What the shards share, through which the monitor asks them its questions
    /// (`Shared::open_connections`, `closed_connections`, `subscriptions`, `table_stats`,
    /// `account_traffic`, `shard_stats_now`).
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// True once the server is stopping: `shutdown` was asked for, or a shard failed.
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }

    /// Closes every connection and waits for the shards to exit.
    /// Stops every shard and waits for them; returns their final counters.
    pub fn shutdown(mut self) -> io::Result<ShardStats> {
        let stopped = self.stop_threads();
        self.remove_ports_file();
        stopped?;
        Ok(self.stats())
    }

    fn stop_threads(&mut self) -> io::Result<()> {
        // Monitoring first: no request waits on a shard that is stopping. The system services
        // after the shards (which close the system client), told first that it is no error.
        drop(self.monitor.take());
        // The dialer before the shards: nothing is attached to a shard that is stopping.
        if let Some(dialer) = self.dialer.take() {
            if let Some(cluster) = &self.shared.cluster {
                cluster.dialer.send(crate::cluster::dialer::Dial::Stop);
            }
            let _ = dialer.join();
        }
        if let Some(system) = &self.system {
            system.begin_stop();
        }
        if self.threads.is_empty() {
            drop(self.system.take());
            return Ok(());
        }
        self.shared.stop_all();
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => result = Err(err),
                Err(_) => result = Err(io::Error::other("a shard thread panicked")),
            }
        }
        drop(self.system.take());
        result
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_threads();
        self.remove_ports_file();
    }
}

/// The links between every ordered pair of shards: `result[i][j]` holds (the link i -> j, the
/// link j -> i), None for j = i.
fn peer_links(count: usize) -> Vec<Vec<Option<(Outgoing, Incoming)>>> {
    let mut outgoing: Vec<Vec<Option<Outgoing>>> = (0..count)
        .map(|_| (0..count).map(|_| None).collect())
        .collect();
    let mut incoming: Vec<Vec<Option<Incoming>>> = (0..count)
        .map(|_| (0..count).map(|_| None).collect())
        .collect();
    for from in 0..count {
        for to in 0..count {
            if from != to {
                let (out, inc) = link();
                outgoing[from][to] = Some(out);
                incoming[to][from] = Some(inc);
            }
        }
    }
    outgoing
        .into_iter()
        .zip(incoming)
        .map(|(outs, incs)| {
            outs.into_iter()
                .zip(incs)
                .map(|(out, inc)| Some((out?, inc?)))
                .collect()
        })
        .collect()
}

/// Responses to requests that crossed into an account (a service import) come back on its
/// response prefix (`_R_.<random>.`), from other servers too: the cluster hears of interest in
/// `<prefix>>` for every account that answers requests, as nats-server's internal
/// subscription on it makes it known.
fn announce_response_prefixes(cluster: &crate::cluster::Cluster, settings: &Settings) {
    for (account, links) in settings.accounts.iter().zip(&settings.links) {
        if links.as_ref().is_some_and(|links| links.answers_requests) {
            let mut subject = account.response_prefix.to_vec();
            subject.push(b'>');
            cluster.interest_changed(&account.name, &subject, None, 1, &mut |_| {});
        }
    }
}

/// What starting a cluster takes: its listeners (one per shard, bound before the shards
/// start), its shared state, and what the dialer will need once the shards run.
struct ClusterStart {
    listeners: Vec<TcpListener>,
    cluster: Arc<crate::cluster::Cluster>,
    dials: mpsc::Receiver<crate::cluster::dialer::Dial>,
    routes: Vec<crate::cluster::dialer::RouteUrl>,
    connect_retries: u32,
    ports: Vec<String>,
    port: u16,
}

impl ClusterStart {
    /// Binds the cluster port and prepares the cluster's state, when `options` configure one.
    fn new(options: &Options, info: &Info, shard_count: usize) -> io::Result<Option<ClusterStart>> {
        use crate::cluster::{dialer, Authorization, Cluster};
        // A cluster block without a port neither accepts nor dials routes (nats-server too).
        let Some((cluster, cluster_port)) = options
            .cluster
            .as_ref()
            .and_then(|cluster| Some((cluster, cluster.port?)))
        else {
            return Ok(None);
        };
        let bind_host = if cluster.host.is_empty() {
            limits::HOST_DEFAULT.to_string()
        } else {
            cluster.host.clone()
        };
        let listeners = bind_listeners(&bind_host, cluster_port, shard_count)?;
        let port = listeners[0].local_addr()?.port();
        let (name, dynamic) = match &cluster.name {
            Some(name) => (name.clone(), false),
            None => (server_id()[..22].to_string(), true),
        };
        let (host, advertised_port, ip) = match &cluster.advertise {
            Some(advertise) => {
                let (host, port) = config::go::parse_host_port(advertise, port).map_err(|err| {
                    io::Error::other(format!("Cluster advertise address error: {err}"))
                })?;
                let ip = format!("nats-route://{host}:{port}/");
                (host, port, Some(ip))
            }
            None => (bind_host.clone(), port, None),
        };
        let connect_urls = if cluster.no_advertise {
            Vec::new()
        } else {
            vec![format!("{}:{}", info.host, info.port)]
        };
        let local = crate::proto::route::RouteInfo {
            server_id: info.server_id.clone(),
            server_name: info.server_name.clone(),
            version: info.version.clone(),
            go: info.go.clone(),
            host,
            port: advertised_port,
            headers: info.headers,
            auth_required: cluster.authorization.is_some(),
            // As nats-server's: TLS on routes is always verified both ways.
            tls_required: cluster.tls.is_some(),
            tls_verify: cluster.tls.is_some(),
            max_payload: info.max_payload,
            ip,
            cluster: name.clone(),
            cluster_dynamic: dynamic,
            connect_urls,
            ldm: false,
            compression_off: false,
            gossip_mode: 0,
            // The route permissions are the cluster's (`Cluster::route_info`).
            import: None,
            export: None,
        };
        let authorization = cluster.authorization.as_ref().map(|auth| Authorization {
            user: auth.user.clone(),
            password: auth.password.clone(),
            timeout: auth.timeout,
        });
        let (sender, dials) = mpsc::channel();
        let routes = cluster.routes.iter().map(dialer::RouteUrl::from).collect();
        crate::log_notice!("Cluster name is {name}");
        crate::log_notice!("Listening for route connections on {bind_host}:{port}");
        if cluster.tls.as_ref().is_some_and(|tls| tls.insecure) {
            crate::log_warn!("TLS certificate chain and hostname of solicited routes will not be verified. DO NOT USE IN PRODUCTION!");
        }
        Ok(Some(ClusterStart {
            listeners,
            cluster: Arc::new(
                Cluster::new(local, authorization, dialer::DialerHandle::new(sender))
                    .listening_on(port)
                    .with_permissions(cluster.permissions.as_ref()),
            ),
            dials,
            routes,
            connect_retries: cluster.connect_retries,
            ports: vec![format!("nats://{bind_host}:{port}")],
            port,
        }))
    }

    /// Starts the dialer on the running shards.
    fn run_dialer(self, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
        let ClusterStart {
            dials,
            routes,
            connect_retries,
            ..
        } = self;
        std::thread::Builder::new()
            .name("route-dialer".into())
            .spawn(move || crate::cluster::dialer::run(shared, routes, connect_retries, dials))
    }
}

/// Binds `count` listeners on the same address with `SO_REUSEPORT`; the kernel spreads
/// incoming connections over them. Port 0 binds a random port for the first and reuses it.
/// An error names the address, as nats-server's does (`Error listening on port: 0.0.0.0:4222,
/// "listen tcp 0.0.0.0:4222: bind: address already in use"`).
fn bind_listeners(host: &str, port: u16, count: usize) -> io::Result<Vec<TcpListener>> {
    bind_listeners_at(host, port, count).map_err(|err| {
        let host = if host.is_empty() {
            limits::HOST_DEFAULT
        } else {
            host
        };
        let what = err.to_string();
        // "Address already in use (os error 98)" -> "address already in use", as Go writes it.
        let what = what.split(" (os error").next().unwrap_or(&what).to_lowercase();
        io::Error::new(
            err.kind(),
            format!("Error listening on port: {host}:{port}, \"listen tcp {host}:{port}: bind: {what}\""),
        )
    })
}

fn bind_listeners_at(host: &str, port: u16, count: usize) -> io::Result<Vec<TcpListener>> {
    let host = if host.is_empty() {
        limits::HOST_DEFAULT
    } else {
        host
    };
    let addr: SocketAddr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {host}"),
        )
    })?;
    // SO_REUSEPORT would let a second server share a given port silently: first make sure
    // nobody listens there (a plain bind fails when any socket does), then bind the group. A
    // random port (0) needs no probe: the first socket gets a free one from the kernel and the
    // others join it.
    if addr.port() != 0 {
        wait_until_unused(addr)?;
    }
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_cloexec(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: TcpListener = socket.into();
        addr.set_port(listener.local_addr()?.port());
        listeners.push(listener);
    }
    debug_assert!(listeners.iter().all(|l| l.as_raw_fd() >= 0));
    Ok(listeners)
}

/// Returns once no socket listens on `addr` (a plain bind, SO_REUSEADDR without SO_REUSEPORT,
/// succeeds), or the bind's error. A server killed just before (`kill -9`) keeps its port
/// until the kernel has torn its rings down, milliseconds later and asynchronously, so "in
/// use" is retried for `limits::ADDRESS_IN_USE_WAIT_MS_MAX`, with one warning: a restart at
/// once serves instead of failing, and a port a live server holds still fails, after the wait.
fn wait_until_unused(addr: SocketAddr) -> io::Result<()> {
    let started = Instant::now();
    let wait = Duration::from_millis(limits::ADDRESS_IN_USE_WAIT_MS_MAX);
    let mut warned = false;
    loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        match probe.bind(&addr.into()) {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && started.elapsed() < wait => {
                if !warned {
                    crate::log_warn!(
                        "Address {addr} is in use, waiting up to {}s for it to be released (a \
                         server that just exited may still hold it)",
                        wait.as_secs_f64()
                    );
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(limits::ADDRESS_IN_USE_RETRY_MS));
            }
            result => return result,
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let mut bounds = part
            .split('-')
            .filter_map(|b| b.trim().parse::<usize>().ok());
        match (bounds.next(), bounds.next()) {
            (Some(a), Some(b)) => cpus.extend(a..=b),
            (Some(a), None) => cpus.push(a),
            _ => {}
        }
    }
    cpus
}

/// Pins the calling thread to one CPU (best effort: a failure leaves it unpinned).
fn pin_to_cpu(cpu: usize) {
    // cpu_set_t is plain data; CPU_SET writes inside it (cpu is bounded by CPU_SETSIZE below)
    // and sched_setaffinity reads it during the call only.
    // SAFETY: only the stack-local set is written, in bounds; nothing outlives the call.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// nats-server's `StartMonitoring` checks, in its order and words: HTTP and HTTPS are not
/// served together, and HTTPS needs `tls {}` (its certificate and key).
fn monitoring_allowed(options: &Options) -> Result<(), String> {
    if options.http_port != 0 && options.https_port != 0 {
        return Err(format!(
            "can't specify both HTTP ({}) and HTTPs ({}) ports",
            options.http_port, options.https_port
        ));
    }
    if options.https_port != 0 && options.tls.is_none() {
        return Err("TLS cert and key required for HTTPS".to_string());
    }
    Ok(())
}

/// The shards' cluster TLS of `options` (`cluster { tls {} }`), read again on each reload as
/// `client_tls` is: routes made after a reload use its files.
fn route_tls(options: &Options) -> Result<Option<Arc<crate::shard::RouteTls>>, String> {
    let Some(cluster) = &options.cluster else {
        return Ok(None);
    };
    let Some(tls) = &cluster.tls else {
        return Ok(None);
    };
    let loaded = crate::tls::load_route(tls)?;
    let name = cluster
        .routes
        .iter()
        .map(|route| route.host.trim_start_matches('[').trim_end_matches(']'))
        .find(|host| host.parse::<std::net::IpAddr>().is_err())
        .map(str::to_string);
    Ok(Some(Arc::new(crate::shard::RouteTls {
        server: loaded.server,
        client: loaded.client,
        timeout_ms: tls.timeout.as_millis() as u64,
        pinned_certs: tls.pinned_certs.clone(),
        name,
        cert_not_after: loaded.cert_not_after,
    })))
}

/// The shards' client TLS of `options` (`tls {}`, `--tls*`): the certificate, key and CA
/// files are read again, so a reload serves new connections with the files as they are now.
fn client_tls(options: &Options) -> Result<Option<Arc<crate::shard::ClientTls>>, String> {
    let Some(tls) = &options.tls else {
        return Ok(None);
    };
    let loaded = crate::tls::load(tls)?;
    Ok(Some(Arc::new(crate::shard::ClientTls {
        config: loaded.config,
        monitoring_config: loaded.monitoring_config,
        cert_not_after: loaded.cert_not_after,
        pinned_certs: loaded.pinned_certs,
        timeout_ms: tls.timeout.as_millis() as u64,
        handshake_first: tls.handshake_first,
        first_fallback_ms: tls
            .handshake_first_fallback
            .map(|fallback| fallback.as_millis() as u64),
        allow_non_tls: options.allow_non_tls,
        verify: tls.verify || tls.verify_and_map,
        verify_and_map: tls.verify_and_map,
    })))
}
