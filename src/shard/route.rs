//! The route session (`ConnKind::Route`): a connection to another server of the cluster, on
//! this shard's ring like a client, speaking nats-server's route protocol
//! (`../shared/ROUTES.md`) in its legacy single-route form: one connection per peer server,
//! every account on it, the account named in every line.
//!
//! The handshake, as nats-server 2.15.1 does it:
//! - accepted (on the cluster port): send INFO at once; the first operation must be CONNECT
//!   (anything else: `-ERR 'Authorization Violation'`), checked for a client's fields, the
//!   cluster name and the cluster credentials; then the peer's INFO registers the route;
//! - solicited (dialed by `cluster::dialer`): send CONNECT and INFO at once; the peer's INFO
//!   registers the route.
//!
//! With cluster TLS both happen after the TLS handshake, which comes first (`route_tls`).
//!
//! Registration (`cluster::Cluster::register`) refuses a second route to the same server
//! (closed without `-ERR`, as nats-server's "Duplicate Route") and a route to this server
//! itself. A registered route receives every local interest key (the dump), then each change;
//! its peer's INFO is gossiped to the other routes. Later INFOs naming another server are
//! gossip: the dialer is asked to dial that server.
//!
//! What a route sends in is kept per route (`RouteSession::remote`): `RS+`/`RS-` update the
//! account's remote table (an `RS+` the route permissions may not export is dropped,
//! `cluster::permissions`), `RMSG`/`HMSG` are delivered to local subscribers only
//! (`route_forward`). When the route closes, its remote entries go and the dialer redials it
//! if it was solicited.
//!
//! Must not: deliver a routed message to another route; send `-ERR` to a peer for anything
//! nats-server would not (a Go peer closes the route on any `-ERR` it receives).

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::Arc;

use super::conn::{AuthState, ConnKind, ConnState};
use super::core::Core;
use super::route_forward::route_handle;
use crate::account::AccountId;
use crate::auth::permissions::ConnectionPermissions;
use crate::auth::SubjectPermission;
use crate::cluster::dialer::{Dial, DialTarget, RouteUrl};
use crate::cluster::{Outbox, PeerSummary, Refused, RouteAddress};
use crate::limits;
use crate::proto::route::{
    parse_route_connect, parse_route_info, write_route_connect, write_route_info, PeerRouteInfo,
    RouteConnect, RouteFed, RouteHandler, RouteOp, RouteParser, RouteReader,
};
use crate::proto::{CloseReason, Flow};

/// The reader's handler for one route's input.
struct RouteInput<'s> {
    shard: &'s mut Core,
    slot: u32,
}

impl RouteHandler for RouteInput<'_> {
    fn op(&mut self, op: RouteOp<'_>, _: usize, parser: &mut RouteParser) -> Flow {
        self.shard.route_op(self.slot, op, parser);
        match self.shard.conns.get(self.slot) {
            Some(conn) if conn.is_open() && conn.paused.is_none() => Flow::Continue,
            Some(conn) if conn.is_open() => Flow::Pause,
            _ => Flow::Stop,
        }
    }
}

/// Where a route is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteState {
    /// Accepted: the peer's CONNECT must come first.
    AwaitingConnect,
    /// CONNECT seen (accepted) or sent (solicited): the peer's INFO registers the route.
    AwaitingInfo,
    /// Registered in the cluster: interest and messages flow.
    Registered,
}

/// A key of interest a route's peer sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RemoteKey {
    account: AccountId,
    subject: Box<[u8]>,
    queue: Option<Box<[u8]>>,
}

/// A route connection's own state (`Conn::route`).
#[derive(Debug)]
pub struct RouteSession {
    pub state: RouteState,
    pub reader: RouteReader,
    /// The dialer's target when this node dialed it.
    pub solicited: Option<Arc<DialTarget>>,
    /// The peer, once its INFO came.
    pub peer: Option<PeerSummary>,
    /// Lines other threads produced for it (interest, gossip).
    pub outbox: Arc<Outbox>,
    /// Both sides said `headers: true`: `HMSG` may be sent.
    pub headers: bool,
    /// Interest the peer sent, with each key's weight (1 for a plain one).
    remote: HashMap<RemoteKey, u32>,
    /// The route permissions' `export` as this route checks its peer's `RS+` against them,
    /// with the route's delivery filter (`cluster::permissions`); None: no permissions.
    pub export: Option<ConnectionPermissions>,
    /// The `import` and `export` of the peer's INFO (an async INFO changing them is acted on).
    peer_permissions: (Option<SubjectPermission>, Option<SubjectPermission>),
    /// The generation of the cluster's route permissions `export` came from.
    rules_generation: u64,
}

impl RouteSession {
    /// The `import` and `export` of the peer's INFO (the last one that had them).
    pub fn peer_permissions(&self) -> &(Option<SubjectPermission>, Option<SubjectPermission>) {
        &self.peer_permissions
    }

    /// How many keys of interest (account, subject, queue) the peer sent and still holds.
    pub fn remote_key_count(&self) -> usize {
        self.remote.len()
    }

    /// Those keys: account, subject, queue (in no particular order).
    pub fn remote_keys(&self) -> impl Iterator<Item = (AccountId, &[u8], Option<&[u8]>)> {
        self.remote
            .keys()
            .map(|key| (key.account, &*key.subject, key.queue.as_deref()))
    }
}

impl Core {
    /// A route accepted on the cluster port, in `slot` (`open_conn`): INFO, then reading
    /// (with cluster TLS, the handshake first: `route_tls`).
    pub(super) fn start_accepted_route(&mut self, slot: u32) {
        self.begin_route(slot, RouteState::AwaitingConnect, None);
        if !self.secure_route(slot) {
            self.greet_accepted_route(slot);
        }
    }

    /// The accepting side's greeting: INFO, and the deadline for the peer's CONNECT.
    pub(super) fn greet_accepted_route(&mut self, slot: u32) {
        let cluster = Arc::clone(self.shared.cluster.as_ref().expect("a route in a cluster"));
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        // With cluster credentials the CONNECT must come in time (`Authentication Timeout`).
        if let Some(authorization) = &cluster.authorization {
            conn.auth = AuthState::Awaiting {
                deadline_ms: now_ms + authorization.timeout.as_millis() as u64,
            };
        }
        let info = self.local_route_info(&cluster);
        self.conns[slot]
            .out
            .append_with(|out| write_route_info(out, &info));
        self.mark_dirty(slot);
        self.conns.want_recv(slot);
    }

    /// A route the dialer connected (`Control::AttachRoute`): CONNECT and INFO, then reading.
    pub(super) fn attach_route(&mut self, stream: TcpStream, target: Arc<DialTarget>) {
        if self.conns.len() >= limits::CONNECTIONS_PER_SHARD_MAX {
            target.ended();
            return;
        }
        let peer = stream
            .peer_addr()
            .map(|addr| format!("{}:{}", addr.ip(), addr.port()))
            .unwrap_or_default();
        let slot = self.insert_conn(socket2::Socket::from(stream), ConnKind::Route, peer);
        self.begin_route(slot, RouteState::AwaitingInfo, Some(target));
        if !self.secure_route(slot) {
            self.greet_solicited_route(slot, false);
        }
    }

    /// The soliciting side's greeting: CONNECT (`tls_required` says whether the route is
    /// `tls`) and INFO.
    pub(super) fn greet_solicited_route(&mut self, slot: u32, tls: bool) {
        let cluster = Arc::clone(self.shared.cluster.as_ref().expect("a route in a cluster"));
        let conn = &self.conns[slot];
        let Some(target) = conn
            .route
            .as_ref()
            .and_then(|route| route.solicited.clone())
        else {
            return;
        };
        // The URL's credentials, else the cluster's own (what an implicit route presents).
        let (user, pass) = match (&target.url.user, &cluster.authorization) {
            (Some(user), _) => (Some(user.clone()), target.url.password.clone()),
            (None, Some(auth)) => (Some(auth.user.clone()), Some(auth.password.clone())),
            (None, None) => (None, None),
        };
        let connect = RouteConnect {
            user,
            pass,
            tls_required: tls,
            headers: cluster.info.headers,
            name: cluster.server_id.clone(),
            cluster: cluster.info.cluster.clone(),
            cluster_dynamic: cluster.info.cluster_dynamic,
        };
        let info = self.local_route_info(&cluster);
        let conn = &mut self.conns[slot];
        conn.out.append_with(|out| {
            write_route_connect(out, &connect);
            write_route_info(out, &info);
        });
        crate::log_debug!(
            "{} - rid:{} - Route connection created",
            conn.peer,
            conn.client_id
        );
        self.mark_dirty(slot);
        self.conns.want_recv(slot);
    }

    /// Gives the new route connection in `slot` its session and its keepalive.
    fn begin_route(&mut self, slot: u32, state: RouteState, solicited: Option<Arc<DialTarget>>) {
        self.reserve_route_generations();
        let mut parser = RouteParser::new(self.settings.options.max_control_line);
        parser.awaiting_connect = state == RouteState::AwaitingConnect;
        let jitter_ms = self.jitter_ms(limits::ROUTE_FIRST_PING_MS / 5);
        let conn = &mut self.conns[slot];
        conn.next_ping_ms = self.now_ms + limits::ROUTE_FIRST_PING_MS + jitter_ms;
        conn.route = Some(Box::new(RouteSession {
            state,
            reader: RouteReader::new(parser),
            solicited,
            peer: None,
            outbox: Arc::default(),
            headers: false,
            remote: HashMap::new(),
            export: None,
            peer_permissions: (None, None),
            rules_generation: 0,
        }));
        self.route_slots.push(slot);
    }

    /// Handles bytes received on the route in `slot`. Returns the bytes left unparsed by a
    /// pause (a subscriber here over its high-water mark), for the caller to hold.
    pub(super) fn on_route_input(&mut self, slot: u32, input: &[u8]) -> usize {
        let Some(session) = self.conns[slot].route.as_mut() else {
            return 0;
        };
        let placeholder = RouteReader::new(RouteParser::new(0));
        let mut reader = std::mem::replace(&mut session.reader, placeholder);
        let fed = reader.feed(input, &mut RouteInput { shard: self, slot });
        if let Some(session) = self
            .conns
            .get_mut(slot)
            .and_then(|conn| conn.route.as_mut())
        {
            session.reader = reader;
        }
        match fed {
            RouteFed::Paused { left } => left,
            RouteFed::Error(err) => {
                let conn = &mut self.conns[slot];
                crate::log_error!(
                    "{} - rid:{} - Route protocol error: {err:?}",
                    conn.peer,
                    conn.client_id
                );
                if let Some(wire) = err.wire() {
                    conn.out.append(wire);
                }
                self.drain_and_close(slot, err.close_reason());
                0
            }
            RouteFed::Done | RouteFed::Stopped => 0,
        }
    }

    /// One route operation.
    fn route_op(&mut self, slot: u32, op: RouteOp<'_>, parser: &mut RouteParser) {
        let state = self.conns[slot]
            .route
            .as_ref()
            .map_or(RouteState::Registered, |session| session.state);
        match (state, op) {
            (RouteState::AwaitingConnect, RouteOp::Connect { json }) => {
                parser.awaiting_connect = false;
                self.on_route_connect(slot, json)
            }
            (RouteState::AwaitingConnect, _) => self.route_refused(
                slot,
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            ),
            (_, RouteOp::Connect { .. }) => {}
            (_, RouteOp::Info { json }) => self.on_route_info(slot, json, parser),
            (_, RouteOp::Ping) => {
                self.conns[slot].out.append(crate::proto::writer::PONG);
                self.mark_dirty(slot);
            }
            (_, RouteOp::Pong) => {
                let conn = &mut self.conns[slot];
                conn.pings_outstanding = 0;
                if let Some(sent) = conn.ping_sent.take() {
                    conn.rtt_ns = sent.elapsed().as_nanos() as u64;
                }
            }
            (_, RouteOp::Err { text }) => {
                let conn = &self.conns[slot];
                let text = String::from_utf8_lossy(text);
                // A Go node with route pooling tries a dedicated `$SYS` connection beside the
                // single route, and gives it up with this error: expected, not a failure.
                if text.contains("Not possible to have a dedicated route") {
                    crate::log_debug!(
                        "{} - rid:{} - Route Error {text}",
                        conn.peer,
                        conn.client_id
                    );
                } else {
                    crate::log_error!(
                        "{} - rid:{} - Route Error {text}",
                        conn.peer,
                        conn.client_id
                    );
                }
                self.close(slot, CloseReason::ParseError);
            }
            (
                RouteState::Registered,
                RouteOp::Interest {
                    added,
                    account,
                    subject,
                    queue,
                    weight,
                    ..
                },
            ) => {
                let Some(account) = self.account_named(account.unwrap_or(b"$G")) else {
                    return;
                };
                if added && !self.route_may_export(slot, subject) {
                    return;
                }
                let weight = if added { weight.max(1) } else { 0 };
                self.remote_interest(slot, account, subject, queue, weight);
            }
            (RouteState::Registered, RouteOp::Message(routed)) => {
                let Some(account) = self.account_named(routed.account.unwrap_or(b"$G")) else {
                    return;
                };
                let message = if self.conns[slot].route.as_ref().is_some_and(|s| s.headers) {
                    routed.message
                } else {
                    crate::proto::Message {
                        headers: None,
                        ..routed.message
                    }
                };
                self.deliver_routed(slot, account, message, routed.queues);
            }
            // Before registration nats-server has no route to act for; what a peer sends then
            // is dropped, as it drops what it ignores (`+OK`, `SUB`).
            (_, _) => {}
        }
    }

    /// The id of the account named `name`, if this server has it (nats-server logs and ignores
    /// interest in an unknown account).
    fn account_named(&self, name: &[u8]) -> Option<AccountId> {
        self.accounts
            .iter()
            .position(|view| view.account.name.as_bytes() == name)
            .map(|index| AccountId(index as u32))
    }

    /// `-ERR '<text>'` and close, as nats-server refuses a route.
    fn route_refused(&mut self, slot: u32, text: &str, reason: CloseReason) {
        let conn = &mut self.conns[slot];
        crate::log_error!("{} - rid:{} - {text}", conn.peer, conn.client_id);
        conn.out
            .append_with(|out| crate::proto::writer::write_err_text(out, text));
        self.drain_and_close(slot, reason);
    }

    /// The peer's CONNECT on an accepted route: not a client's, not a gateway's, our cluster's
    /// name, the cluster credentials when they are required.
    fn on_route_connect(&mut self, slot: u32, json: &[u8]) {
        let Ok(connect) = parse_route_connect(json) else {
            return self.route_refused(
                slot,
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
        };
        if let Some((text, reason)) = connect.rejection() {
            return self.route_refused(slot, &text, reason);
        }
        let cluster = self.shared.cluster.as_ref().expect("a route in a cluster");
        if let Some(required) = &cluster.authorization {
            if connect.user.as_deref() != Some(required.user.as_str())
                || connect.pass.as_deref() != Some(required.password.as_str())
            {
                return self.route_refused(
                    slot,
                    "Authorization Violation",
                    CloseReason::AuthenticationViolation,
                );
            }
        }
        let ours = &cluster.info.cluster;
        if !cluster.info.cluster_dynamic
            && !connect.cluster_dynamic
            && !connect.cluster.is_empty()
            && connect.cluster != *ours
        {
            let text = format!(
                "Rejecting connection, cluster name {:?} does not match {ours:?}",
                connect.cluster
            );
            return self.route_refused(slot, &text, CloseReason::ClusterNameConflict);
        }
        let conn = &mut self.conns[slot];
        conn.auth = AuthState::Awaiting {
            deadline_ms: u64::MAX,
        };
        if let Some(session) = conn.route.as_mut() {
            session.state = RouteState::AwaitingInfo;
            session.headers = connect.headers;
        }
    }

    /// An INFO from the peer: the first registers the route; later ones naming another server
    /// are gossip.
    fn on_route_info(&mut self, slot: u32, json: &[u8], parser: &mut RouteParser) {
        let Ok(info) = parse_route_info(json) else {
            return self.close(slot, CloseReason::ProtocolViolation);
        };
        let cluster = Arc::clone(self.shared.cluster.as_ref().expect("a route in a cluster"));
        let conn = &self.conns[slot];
        let Some(session) = conn.route.as_ref() else {
            return;
        };
        if session.state == RouteState::Registered {
            let peer_id = session.peer.as_ref().map(|peer| peer.server_id.as_str());
            if peer_id == Some(info.server_id.as_str()) && info.ldm {
                // The peer entered lame duck mode: clients stop being sent to it (nats-server's
                // `processRouteInfo`; the route stays, the permissions are not looked at).
                let address = RouteAddress {
                    shard: self.index.0,
                    slot,
                    generation: conn.generation,
                };
                if cluster.peer_entered_lame_duck(address) {
                    self.announce_client_urls();
                }
                return;
            }
            if peer_id == Some(info.server_id.as_str()) {
                return self.peer_permissions_changed(slot, info.import, info.export);
            }
            if peer_id != Some(info.server_id.as_str())
                && info.server_id != cluster.server_id
                && !cluster.is_connected(&info.server_id)
            {
                if let Some(url) = gossiped_url(&info, &conn.peer) {
                    cluster.dialer.send(Dial::Implicit {
                        url,
                        server_id: info.server_id.clone(),
                    });
                }
            }
            return;
        }
        if !cluster.info.cluster_dynamic
            && !info.cluster_dynamic
            && info.cluster != cluster.info.cluster
        {
            return self.close(slot, CloseReason::ClusterNameConflict);
        }
        if info.server_name == cluster.info.server_name && info.server_id != cluster.server_id {
            crate::log_error!(
                "{} - rid:{} - Remote server has a duplicate name: {:?}",
                conn.peer,
                conn.client_id,
                cluster.info.server_name
            );
            return self.close(slot, CloseReason::DuplicateServerName);
        }
        let peer = PeerSummary {
            server_id: info.server_id.clone(),
            server_name: info.server_name.clone(),
            route_url: gossiped_url(&info, &conn.peer)
                .map(|url| format!("nats-route://{}/", url.address()))
                .unwrap_or_default(),
            cluster: info.cluster.clone(),
            connect_urls: info.connect_urls.clone(),
        };
        if let Some(target) = &session.solicited {
            target.reached(&info.server_id);
        }
        let implicit = session
            .solicited
            .as_ref()
            .is_some_and(|target| target.implicit);
        let address = RouteAddress {
            shard: self.index.0,
            slot,
            generation: conn.generation,
        };
        let outbox = Arc::clone(&session.outbox);
        let shared = Arc::clone(&self.shared);
        let mut wake = |shard: u16| {
            shared.mailboxes[usize::from(shard)].send(super::control::Control::RouteOutbox);
        };
        let gossip = |peer: &PeerSummary| crate::cluster::gossip_info(&cluster.info, peer);
        match cluster.register(peer.clone(), address, outbox, implicit, gossip, &mut wake) {
            Ok(()) => {
                let conn = &mut self.conns[slot];
                crate::log_notice!(
                    "{} - rid:{} - Route connection created",
                    conn.peer,
                    conn.client_id
                );
                if let Some(session) = conn.route.as_mut() {
                    session.state = RouteState::Registered;
                    session.headers = info.headers && !self.settings.options.no_header_support;
                    session.peer = Some(peer);
                    let (rules, generation) = cluster.rules();
                    session.export = rules
                        .export_rules()
                        .map(|rules| ConnectionPermissions::new(Arc::clone(rules)));
                    session.rules_generation = generation;
                    session.peer_permissions = (info.import, info.export);
                }
                parser.headers = true;
                self.announce_client_urls();
            }
            Err(Refused::Duplicate) => {
                let conn = &self.conns[slot];
                crate::log_debug!("{} - rid:{} - Duplicate Route", conn.peer, conn.client_id);
                self.close(slot, CloseReason::DuplicateRoute);
            }
            Err(Refused::ToSelf) => {
                let conn = &self.conns[slot];
                crate::log_debug!("{} - rid:{} - Route to self", conn.peer, conn.client_id);
                self.close(slot, CloseReason::DuplicateRoute);
            }
        }
    }

    /// nats-server's `canExport` for an `RS+` on `subject` from the route in `slot`: false
    /// (logged at debug) when the route permissions refuse it. An allowed wildcard that
    /// overlaps an `export` deny turns the route's delivery filter on.
    fn route_may_export(&mut self, slot: u32, subject: &[u8]) -> bool {
        let newer = self.shared.cluster.as_ref().is_some_and(|cluster| {
            self.conns[slot]
                .route
                .as_ref()
                .is_some_and(|session| session.rules_generation != cluster.rules_generation())
        });
        if newer {
            // A reload the cluster took and this shard has not applied yet.
            self.route_permissions_reloaded();
        }
        let conn = &mut self.conns[slot];
        let Some(export) = conn
            .route
            .as_mut()
            .and_then(|session| session.export.as_mut())
        else {
            return true;
        };
        if export.server_subscribe_allowed(subject) {
            return true;
        }
        crate::log_debug!(
            "{} - rid:{} - Can not export {}, ignoring remote subscription request",
            conn.peer,
            conn.client_id,
            crate::auth::permissions::quote(subject)
        );
        false
    }

    /// An async INFO from the peer of the registered route in `slot` (not lame duck): when its
    /// `import` or `export` changed, they are kept, and a wider `export` gets the interest it
    /// now admits (`Cluster::peer_export_changed`, nats-server's `updateRemoteRoutePerms`).
    fn peer_permissions_changed(
        &mut self,
        slot: u32,
        import: Option<SubjectPermission>,
        export: Option<SubjectPermission>,
    ) {
        let conn = &mut self.conns[slot];
        let generation = conn.generation;
        let Some(session) = conn.route.as_mut() else {
            return;
        };
        let (old_import, old_export) = &session.peer_permissions;
        if *old_import == import && *old_export == export {
            return;
        }
        let old_export = old_export.clone();
        session.peer_permissions = (import, export.clone());
        let Some(cluster) = self.shared.cluster.as_ref() else {
            return;
        };
        let address = RouteAddress {
            shard: self.index.0,
            slot,
            generation,
        };
        let mailboxes = &self.shared.mailboxes;
        cluster.peer_export_changed(
            address,
            old_export.as_ref(),
            export.as_ref(),
            &mut |shard| {
                mailboxes[usize::from(shard)].send(super::control::Control::RouteOutbox);
            },
        );
    }

    /// A reload (`Core::reload`, after the cluster took the new route permissions, or the
    /// first `RS+` that comes before it): each registered route checks its peer's interest
    /// against the new `export` and drops what it may no longer export (nats-server's
    /// `reloadClusterPermissions`). The delivery filter starts again from the interest kept.
    pub(super) fn route_permissions_reloaded(&mut self) {
        let Some(cluster) = self.shared.cluster.as_ref() else {
            return;
        };
        let (rules, generation) = cluster.rules();
        let current = rules.export_rules();
        for index in 0..self.route_slots.len() {
            let slot = self.route_slots[index];
            let Some(session) = self.conns[slot].route.as_mut() else {
                continue;
            };
            if session.state != RouteState::Registered {
                continue;
            }
            session.rules_generation = generation;
            let same = match (session.export.as_ref(), current) {
                (Some(export), Some(current)) => Arc::ptr_eq(export.rules(), current),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            session.export = current.map(|rules| ConnectionPermissions::new(Arc::clone(rules)));
            let Some(export) = session.export.as_mut() else {
                continue;
            };
            let refused: Vec<RemoteKey> = session
                .remote
                .keys()
                .filter(|key| !export.server_subscribe_allowed(&key.subject))
                .cloned()
                .collect();
            for key in refused {
                self.remote_interest(slot, key.account, &key.subject, key.queue.as_deref(), 0);
            }
        }
    }

    /// The route in `slot` says its server's interest in (account, subject, queue) is now
    /// `weight` (0: none): the account's remote table gets or loses its entries.
    fn remote_interest(
        &mut self,
        slot: u32,
        account: AccountId,
        subject: &[u8],
        queue: Option<&[u8]>,
        weight: u32,
    ) {
        if !crate::sublist::valid_subject(subject) {
            return;
        }
        let index = self.index;
        let conn = &mut self.conns[slot];
        let generation = conn.generation;
        let Some(session) = conn.route.as_mut() else {
            return;
        };
        let key = RemoteKey {
            account,
            subject: subject.into(),
            queue: queue.map(Into::into),
        };
        // A plain key has one entry; a queue key one per unit of weight, up to the bound.
        let wanted = match queue {
            None => weight.min(1),
            Some(_) => weight.min(limits::ROUTE_QUEUE_WEIGHT_MAX),
        };
        let had = if wanted == 0 {
            session.remote.remove(&key).unwrap_or(0)
        } else {
            session.remote.insert(key, wanted).unwrap_or(0)
        };
        let table = &self.accounts[account.index()].account.remote;
        for copy in had..wanted {
            let _ = table.insert(subject, queue, route_handle(index, slot, generation, copy));
        }
        if wanted < had {
            table.remove_many(
                (wanted..had)
                    .map(|copy| (subject, queue, route_handle(index, slot, generation, copy))),
            );
        }
    }

    /// The route in `slot` stops being open: out of the cluster's registry, its peer's interest
    /// out of the remote tables, its dial target told (so a solicited route is dialed again).
    pub(super) fn route_closed(&mut self, slot: u32, reason: CloseReason) {
        self.route_slots.retain(|&route| route != slot);
        let index = self.index;
        let conn = &mut self.conns[slot];
        let generation = conn.generation;
        let Some(session) = conn.route.as_mut() else {
            return;
        };
        let registered = session.state == RouteState::Registered;
        let remote = std::mem::take(&mut session.remote);
        if let Some(target) = &session.solicited {
            target.ended();
        }
        if registered {
            crate::log_notice!(
                "{} - rid:{} - Router connection closed: {}",
                conn.peer,
                conn.client_id,
                reason.as_str()
            );
            if let Some(cluster) = &self.shared.cluster {
                cluster.unregister(RouteAddress {
                    shard: index.0,
                    slot,
                    generation,
                });
            }
            self.announce_client_urls();
        }
        for (key, weight) in remote {
            let table = &self.accounts[key.account.index()].account.remote;
            table.remove_many((0..weight).map(|copy| {
                (
                    &*key.subject,
                    key.queue.as_deref(),
                    route_handle(index, slot, generation, copy),
                )
            }));
        }
    }

    /// Tells every shard the cluster's client URLs (after a route registered or closed).
    fn announce_client_urls(&self) {
        let Some(cluster) = &self.shared.cluster else {
            return;
        };
        let mailboxes = &self.shared.mailboxes;
        cluster.announce_client_urls(|urls| {
            for mailbox in mailboxes {
                mailbox.send(super::control::Control::ClientUrls(Arc::clone(&urls)));
            }
        });
    }

    /// `Control::ClientUrls`: clients' INFO lists `urls` from now on; clients that take async
    /// INFO (protocol 1, past their first PING, as nats-server's `sendAsyncInfoToClients`) get
    /// one now.
    pub(super) fn client_urls_changed(&mut self, urls: Arc<[String]>) {
        if self.client_urls.as_deref() == Some(&*urls) {
            return;
        }
        self.client_urls = Some(urls);
        let clients: Vec<u32> = self.open_clients().collect();
        for slot in clients {
            let conn = &self.conns[slot];
            if conn.options.protocol >= 1 && conn.sent_connect_info {
                let info = self.client_info(slot);
                self.conns[slot]
                    .out
                    .append_with(|out| crate::proto::json::write_info(out, &info));
                self.mark_dirty(slot);
            }
        }
    }

    /// `Control::RoutesRemoved`: routes dialed for these URLs close.
    pub(super) fn close_removed_routes(&mut self, urls: &[RouteUrl]) {
        let removed: Vec<u32> = self
            .route_slots
            .iter()
            .copied()
            .filter(|&slot| {
                self.conns[slot]
                    .route
                    .as_ref()
                    .and_then(|session| session.solicited.as_ref())
                    .is_some_and(|target| !target.implicit && urls.contains(&target.url))
            })
            .collect();
        for slot in removed {
            self.drain_and_close(slot, CloseReason::RouteRemoved);
        }
    }

    /// `Control::RouteOutbox`: what other threads wrote for this shard's routes goes out.
    pub(super) fn drain_route_outboxes(&mut self) {
        for index in 0..self.route_slots.len() {
            let slot = self.route_slots[index];
            let conn = &mut self.conns[slot];
            if conn.state != ConnState::Open {
                continue;
            }
            let Some(session) = conn.route.as_ref() else {
                continue;
            };
            if !session.outbox.has_pending() {
                continue;
            }
            let outbox = Arc::clone(&session.outbox);
            conn.out.append_with(|out| outbox.drain_into(out));
            self.mark_dirty(slot);
        }
    }

    /// A new route connection's generation is followed by `ROUTE_QUEUE_WEIGHT_MAX - 1` that no
    /// other connection or subscription of this shard gets, so its remote-table entries (the
    /// generation plus the copy) name it alone.
    fn reserve_route_generations(&mut self) {
        for _ in 1..limits::ROUTE_QUEUE_WEIGHT_MAX {
            self.conns.take_generation();
        }
    }
}

/// The route URL a peer's INFO gives for dialing it: its `ip` (advertise), else the address
/// it connected from with the `port` it listens on.
fn gossiped_url(info: &PeerRouteInfo, connected_from: &str) -> Option<RouteUrl> {
    if !info.ip.is_empty() {
        return RouteUrl::parse(&info.ip);
    }
    let host = if info.host.is_empty() || info.host == "0.0.0.0" || info.host == "::" {
        connected_from.rsplit_once(':')?.0.to_string()
    } else {
        info.host.clone()
    };
    let port = u16::try_from(info.port).ok().filter(|&port| port != 0)?;
    Some(RouteUrl {
        host,
        port,
        user: None,
        password: None,
    })
}
