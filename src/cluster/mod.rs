//! Cluster routes: what the shards share about the cluster. Owns the local interest counts
//! (what this node tells its peers it wants), the registry of routes (one per peer server),
//! each route's outbox (interest lines and gossip written by any shard, sent by the route's
//! own shard), and the dialer (`dialer`) that opens the routes this node solicits.
//!
//! How a cluster works here (nats-server's route protocol, `../shared/ROUTES.md`):
//! - A route is a connection kind of the shards (`ConnKind::Route`, `shard/route.rs`): it lives
//!   on one shard's ring like a client, with its own parser. Accepted routes land on any shard
//!   (the cluster port is bound with `SO_REUSEPORT` on every shard); solicited ones are
//!   connected by the dialer and attached to a shard (`Control::AttachRoute`).
//! - natsring speaks the legacy single-route mode that nats-server keeps for peers without
//!   pooling: one connection per peer server, every account on it, the account named in every
//!   `RS+`/`RS-`/`RMSG`; no `route_pool_size` in the INFO, compression declined. nats-server
//!   2.15.1 accepts that as a "no pool" route.
//! - Interest: a node tells each peer which (account, subject, queue) its local clients want.
//!   The counts here are per key across every shard, so a SUB on any shard that makes a key's
//!   count go 0 -> 1 writes one `RS+` to every route, a queue's every change writes `RS+` with
//!   the new weight, and the last UNSUB writes `RS-`. A route that registers gets every key
//!   at once (the dump), under the same lock, so no change is lost or written twice.
//! - Interest a peer sends is kept in the account's remote table (`Account::remote`), matched
//!   by publishes of local clients (`shard/deliver.rs`); a message from a route is delivered
//!   to local subscribers only, never to another route (the mesh is full; nobody relays).
//! - Route permissions (`permissions`): the interest announced is filtered by `import`, here;
//!   a peer's interest is filtered by `export` by the route's shard.
//! - Gossip: when a route registers, its peer's INFO is forwarded to the other routes (with
//!   `gossip_mode`), so their servers dial it and the mesh completes from one seed.
//!
//! - Lame duck mode (nats-server's `sendLDMToRoutes`, `processRouteInfo`): a server entering
//!   it tells every route with its INFO plus `"ldm":true`, and stops listing its own client
//!   URLs; a peer that hears it stops listing that server's. The route stays until the server
//!   stops.
//!
//! Must not: run per message. Everything here is taken on SUB/UNSUB (only when a cluster is
//! configured), route registration and close.

pub mod dialer;
pub mod permissions;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::auth::SubjectPermission;
use permissions::RouteRules;

/// A key of local interest: the account's name, the subject, and the queue group (None for a
/// plain subscription). Plain and queue interest on one subject are separate keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InterestKey {
    account: Box<str>,
    subject: Box<[u8]>,
    queue: Option<Box<[u8]>>,
}

/// What one route's shard must send it that other threads produced: interest lines and
/// gossip INFOs, in the order they were made.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Mutex<Vec<u8>>,
    /// `pending` is not empty: what the route's shard looks at, without the lock, before it
    /// writes a message to the route (`has_pending`). On a cache line of its own, away from
    /// the lock the announcing shards take, and written only when it changes: the route's
    /// shard reads it for every message it forwards.
    filled: Filled,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Filled(AtomicBool);

impl Outbox {
    /// Everything waiting, appended to `out`.
    pub fn drain_into(&self, out: &mut Vec<u8>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend_from_slice(&pending);
        pending.clear();
        self.filled.0.store(false, Ordering::Relaxed);
    }

    /// Whether lines wait. A message forwarded by a shard after it wrote interest lines here
    /// (its frame published after them) sees true: the route's shard sends the lines first,
    /// so a peer hears of a subscription before a message that may answer to it.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.filled.0.load(Ordering::Acquire)
    }

    /// Appends with `write`; returns whether the outbox was empty before (the route's shard
    /// must then be woken to take it).
    fn append(&self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = pending.is_empty();
        write(&mut pending);
        if !pending.is_empty() && !self.filled.0.load(Ordering::Relaxed) {
            self.filled.0.store(true, Ordering::Release);
        }
        was_empty && !pending.is_empty()
    }
}

/// Where a registered route lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteAddress {
    pub shard: u16,
    pub slot: u32,
    pub generation: u32,
}

/// A peer server as its route INFO described it: what gossip tells the other peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSummary {
    pub server_id: String,
    pub server_name: String,
    /// The route URL others dial it at: `nats-route://host:port/`.
    pub route_url: String,
    pub cluster: String,
    pub connect_urls: Vec<String>,
}

/// One registered route.
#[derive(Debug)]
struct Registered {
    peer: PeerSummary,
    address: RouteAddress,
    outbox: Arc<Outbox>,
    /// True exactly when the peer sent an INFO with `"ldm":true` on this route: it is leaving,
    /// so its client URLs are no longer announced (nats-server's `processRouteInfo` removes
    /// them then, and never adds them back for that route).
    peer_in_lame_duck: bool,
}

/// Why a route could not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A route to that server is registered already: the new one closes ("Duplicate Route").
    Duplicate,
    /// The peer is this server.
    ToSelf,
}

#[derive(Default)]
struct Book {
    counts: HashMap<InterestKey, u32>,
    routes: Vec<Registered>,
    /// The client URLs last announced (`announce_client_urls`); None: never (nats-server's
    /// `ClientConnectURLs` stay empty until a route brings some).
    client_urls: Option<Arc<[String]>>,
    /// The route permissions in force (a reload swaps them, under this lock, so that no
    /// interest line is filtered by one and written after the other's).
    rules: Arc<RouteRules>,
    /// True exactly when this server entered lame duck mode: its own client URLs are no longer
    /// announced to its clients (nats-server's `sendLDMToClients` clears them for good).
    in_lame_duck: bool,
}

/// The credentials a peer's CONNECT must carry (`cluster { authorization }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub user: String,
    pub password: String,
    /// How long an accepted route may take to send its CONNECT.
    pub timeout: std::time::Duration,
}

/// The cluster state every shard shares (`Shared::cluster`).
pub struct Cluster {
    pub server_id: String,
    /// What this server's route INFO says.
    pub info: crate::proto::route::RouteInfo,
    pub authorization: Option<Authorization>,
    /// The port routes are accepted on (bound, so a random one `-1` asked for is known).
    pub listen_port: u16,
    book: Mutex<Book>,
    /// Bumped (under the registry's lock, before anything is written with them) each time a
    /// reload swaps the route permissions: a route's shard that sees a number newer than its
    /// own takes the new `export` before it judges a peer's `RS+`, so an `RS+` the peer sent in
    /// answer to the new INFO is never judged by the old rules (the shards apply the reload
    /// after the cluster, one by one). One atomic load per `RS+`, none per message.
    rules_generation: std::sync::atomic::AtomicU64,
    /// Where routes to dial are told (implicit routes learned by gossip) and closes reported.
    pub dialer: dialer::DialerHandle,
}

/// Writes `RS+ <account> <subject>[ <queue> <weight>]\r\n` (weight > 0) or
/// `RS- <account> <subject>[ <queue>]\r\n` (weight 0).
pub fn write_interest(
    out: &mut Vec<u8>,
    account: &str,
    subject: &[u8],
    queue: Option<&[u8]>,
    weight: u32,
) {
    use crate::proto::route::{write_rs_minus, write_rs_plus};
    let account = Some(account.as_bytes());
    match weight {
        0 => write_rs_minus(out, account, subject, queue),
        _ => write_rs_plus(out, account, subject, queue.map(|queue| (queue, weight))),
    }
}

/// `INFO {...}` about `peer` for the other routes (gossip, `gossip_mode` 1: "connect to it,
/// do not gossip it on"): what they need to dial it, in this server's INFO's other fields.
pub fn gossip_info(local: &crate::proto::route::RouteInfo, peer: &PeerSummary) -> Vec<u8> {
    let url = dialer::RouteUrl::parse(&peer.route_url);
    let (host, port) = url
        .as_ref()
        .map_or((String::new(), 0), |url| (url.host.clone(), url.port));
    let info = crate::proto::route::RouteInfo {
        server_id: peer.server_id.clone(),
        server_name: peer.server_name.clone(),
        host,
        port,
        ip: (!peer.route_url.is_empty()).then(|| peer.route_url.clone()),
        cluster: peer.cluster.clone(),
        cluster_dynamic: false,
        connect_urls: peer.connect_urls.clone(),
        ldm: false,
        auth_required: false,
        gossip_mode: 1,
        import: None,
        export: None,
        ..local.clone()
    };
    let mut out = Vec::new();
    crate::proto::route::write_route_info(&mut out, &info);
    out
}

impl Cluster {
    pub fn new(
        info: crate::proto::route::RouteInfo,
        authorization: Option<Authorization>,
        dialer: dialer::DialerHandle,
    ) -> Cluster {
        Cluster {
            server_id: info.server_id.clone(),
            // The advertised port until the server says which it bound (`listen_port`).
            listen_port: info.port,
            info,
            authorization,
            book: Mutex::new(Book::default()),
            rules_generation: std::sync::atomic::AtomicU64::new(0),
            dialer,
        }
    }

    /// The port routes are accepted on, once bound.
    pub fn listening_on(self, port: u16) -> Cluster {
        Cluster {
            listen_port: port,
            ..self
        }
    }

    /// The route permissions at start (`cluster { permissions }`).
    pub fn with_permissions(
        self,
        permissions: Option<&crate::config::RoutePermissions>,
    ) -> Cluster {
        self.book().rules = Arc::new(RouteRules::new(permissions));
        self
    }

    /// The route permissions in force now, and their generation (see `rules_generation`).
    pub fn rules(&self) -> (Arc<RouteRules>, u64) {
        let book = self.book();
        let generation = self
            .rules_generation
            .load(std::sync::atomic::Ordering::Acquire);
        (Arc::clone(&book.rules), generation)
    }

    /// The generation of the route permissions in force (changed by each reload that changed
    /// them).
    pub fn rules_generation(&self) -> u64 {
        self.rules_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// This server's route INFO as it is now (with the permissions in force).
    pub fn route_info(&self) -> crate::proto::route::RouteInfo {
        let (import, export) = self.book().rules.info_fields();
        crate::proto::route::RouteInfo {
            import,
            export,
            ..self.info.clone()
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Local interest in (account, subject, queue) changed by `delta` subscriptions (a SUB
    /// +1, an UNSUB -1). Writes what the routes must hear into their outboxes and calls
    /// `wake` with the shard of each outbox that was empty.
    pub fn interest_changed(
        &self,
        account: &str,
        subject: &[u8],
        queue: Option<&[u8]>,
        delta: i32,
        wake: &mut impl FnMut(u16),
    ) {
        self.interest_changed_many([(account, subject, queue, delta)], wake);
    }

    /// `interest_changed` for many keys under one lock (a closing connection's
    /// subscriptions). Returns whether lines were written (some key was announced).
    pub fn interest_changed_many<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, &'a [u8], Option<&'a [u8]>, i32)>,
        wake: &mut impl FnMut(u16),
    ) -> bool {
        let mut book = self.book();
        let Book {
            counts,
            routes,
            rules,
            ..
        } = &mut *book;
        let mut lines = Vec::new();
        for (account, subject, queue, delta) in changes {
            let key = InterestKey {
                account: account.into(),
                subject: subject.into(),
                queue: queue.map(Into::into),
            };
            let (before, after) = match counts.entry(key) {
                Entry::Occupied(mut entry) => {
                    let before = *entry.get();
                    let after = before.saturating_add_signed(delta);
                    if after == 0 {
                        entry.remove();
                    } else {
                        entry.insert(after);
                    }
                    (before, after)
                }
                Entry::Vacant(entry) => {
                    let after = 0u32.saturating_add_signed(delta);
                    if after > 0 {
                        entry.insert(after);
                    }
                    (0, after)
                }
            };
            // Plain interest is announced on 0 -> 1 and withdrawn on 1 -> 0; a queue's
            // weight is announced on every change.
            let announce = match queue {
                None => (before == 0) != (after == 0),
                Some(_) => before != after,
            };
            // Interest this server may not import is never announced (`canImport`).
            if announce && rules.can_import(subject) {
                write_interest(&mut lines, account, subject, queue, after);
            }
        }
        if lines.is_empty() {
            return false;
        }
        for route in routes.iter() {
            if route.outbox.append(|out| out.extend_from_slice(&lines)) {
                wake(route.address.shard);
            }
        }
        true
    }

    /// Registers the route to `peer` at `address`, writing every local interest key into
    /// `outbox` first (the dump), and `peer`'s INFO into every other route's outbox (gossip)
    /// unless the route is `implicit`. Calls `wake` for outboxes that need their shard.
    pub fn register(
        &self,
        peer: PeerSummary,
        address: RouteAddress,
        outbox: Arc<Outbox>,
        implicit: bool,
        gossip: impl Fn(&PeerSummary) -> Vec<u8>,
        wake: &mut impl FnMut(u16),
    ) -> Result<(), Refused> {
        if peer.server_id == self.server_id {
            return Err(Refused::ToSelf);
        }
        let mut book = self.book();
        if book
            .routes
            .iter()
            .any(|route| route.peer.server_id == peer.server_id)
        {
            return Err(Refused::Duplicate);
        }
        let dumped = outbox.append(|out| {
            for (key, &count) in &book.counts {
                if book.rules.can_import(&key.subject) {
                    write_interest(out, &key.account, &key.subject, key.queue.as_deref(), count);
                }
            }
        });
        if dumped {
            wake(address.shard);
        }
        if !implicit {
            let info = gossip(&peer);
            for route in &book.routes {
                if route.outbox.append(|out| out.extend_from_slice(&info)) {
                    wake(route.address.shard);
                }
            }
        }
        book.routes.push(Registered {
            peer,
            address,
            outbox,
            peer_in_lame_duck: false,
        });
        Ok(())
    }

    /// A reload changed the route permissions to `permissions`, as nats-server's
    /// `reloadClusterPermissions`: every route gets an async INFO with the new `import` and
    /// `export`, then `RS+` for each key of local interest that may be imported now and could
    /// not before, then `RS-` for each that could and may not now. (What peers sent that may
    /// no longer be exported is each route's shard's to drop, `Cluster::rules` telling it.)
    /// Calls `wake` for outboxes that need their shard.
    pub fn reload_permissions(
        &self,
        permissions: Option<&crate::config::RoutePermissions>,
        wake: &mut impl FnMut(u16),
    ) {
        let mut book = self.book();
        if book.rules.configured.as_ref() == permissions {
            return;
        }
        let rules = Arc::new(RouteRules::new(permissions));
        let old = std::mem::replace(&mut book.rules, Arc::clone(&rules));
        self.rules_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let (import, export) = rules.info_fields();
        let info = crate::proto::route::RouteInfo {
            import,
            export,
            ..self.info.clone()
        };
        let mut lines = Vec::new();
        crate::proto::route::write_route_info(&mut lines, &info);
        let mut withdrawn = Vec::new();
        for (key, &count) in &book.counts {
            let (then, now) = (old.can_import(&key.subject), rules.can_import(&key.subject));
            let (out, weight) = match (then, now) {
                (false, true) => (&mut lines, count),
                (true, false) => (&mut withdrawn, 0),
                _ => continue,
            };
            write_interest(
                out,
                &key.account,
                &key.subject,
                key.queue.as_deref(),
                weight,
            );
        }
        lines.extend_from_slice(&withdrawn);
        for route in &book.routes {
            if route.outbox.append(|out| out.extend_from_slice(&lines)) {
                wake(route.address.shard);
            }
        }
    }

    /// The peer of the route at `address` changed its `export` from `old` to `new` (an async
    /// INFO), as nats-server's `updateRemoteRoutePerms`: the route gets `RS+` for each key of
    /// local interest the peer may export now and could not before, if this server may import
    /// it. Nothing is withdrawn (nats-server sends no `RS-` there either).
    pub fn peer_export_changed(
        &self,
        address: RouteAddress,
        old: Option<&SubjectPermission>,
        new: Option<&SubjectPermission>,
        wake: &mut impl FnMut(u16),
    ) {
        let mut old = permissions::peer_export_tester(old);
        let mut new = permissions::peer_export_tester(new);
        let book = self.book();
        let Some(route) = book.routes.iter().find(|route| route.address == address) else {
            return;
        };
        let can_export = |tester: &mut Option<crate::auth::permissions::ConnectionPermissions>,
                          subject: &[u8]| {
            tester
                .as_mut()
                .is_none_or(|tester| tester.server_subscribe_allowed(subject))
        };
        let mut lines = Vec::new();
        for (key, &count) in &book.counts {
            if can_export(&mut new, &key.subject)
                && !can_export(&mut old, &key.subject)
                && book.rules.can_import(&key.subject)
            {
                write_interest(
                    &mut lines,
                    &key.account,
                    &key.subject,
                    key.queue.as_deref(),
                    count,
                );
            }
        }
        if !lines.is_empty() && route.outbox.append(|out| out.extend_from_slice(&lines)) {
            wake(route.address.shard);
        }
    }

    /// The route at `address` closed: it is no longer registered (no-op if it never was).
    pub fn unregister(&self, address: RouteAddress) {
        self.book().routes.retain(|route| route.address != address);
    }

    /// Whether a route to the server `server_id` is registered.
    pub fn is_connected(&self, server_id: &str) -> bool {
        self.book()
            .routes
            .iter()
            .any(|route| route.peer.server_id == server_id)
    }

    /// The client URLs of the cluster as they are now (this server's first, then each peer's,
    /// no URL twice; empty with `no_advertise`), handed to `send` under the registry's lock so
    /// that lists computed one after another are sent in that order. Left out: this server's
    /// own once it is in lame duck mode, and those of peers that said they are.
    pub fn announce_client_urls(&self, send: impl FnOnce(Arc<[String]>)) {
        let mut book = self.book();
        if self.info.connect_urls.is_empty() {
            return;
        }
        let urls = self.current_client_urls(&book);
        book.client_urls = Some(Arc::clone(&urls));
        send(urls);
    }

    fn current_client_urls(&self, book: &Book) -> Arc<[String]> {
        let mut urls = if book.in_lame_duck {
            Vec::new()
        } else {
            self.info.connect_urls.clone()
        };
        for route in book.routes.iter().filter(|route| !route.peer_in_lame_duck) {
            for url in &route.peer.connect_urls {
                if !urls.contains(url) {
                    urls.push(url.clone());
                }
            }
        }
        urls.into()
    }

    /// The peer of the route at `address` sent an INFO with `"ldm":true` (nats-server's
    /// `processRouteInfo`): its client URLs are no longer announced. Returns whether that
    /// changed anything (the route is registered, was not known to be leaving, and the URLs
    /// are advertised at all): the clients must then be told (`announce_client_urls`).
    pub fn peer_entered_lame_duck(&self, address: RouteAddress) -> bool {
        let mut book = self.book();
        let Some(route) = book
            .routes
            .iter_mut()
            .find(|route| route.address == address)
        else {
            return false;
        };
        let changed = !route.peer_in_lame_duck && !route.peer.connect_urls.is_empty();
        route.peer_in_lame_duck = true;
        changed && !self.info.connect_urls.is_empty()
    }

    /// This server enters lame duck mode (nats-server's `sendLDMToClients`): its own client
    /// URLs are no longer announced. Returns what its clients' INFO lists from now on (the
    /// peers' URLs only; empty with `no_advertise`).
    pub fn withdraw_own_client_urls(&self) -> Arc<[String]> {
        let mut book = self.book();
        book.in_lame_duck = true;
        if self.info.connect_urls.is_empty() {
            return Arc::from(Vec::new());
        }
        let urls = self.current_client_urls(&book);
        book.client_urls = Some(Arc::clone(&urls));
        urls
    }

    /// Tells every route this server is in lame duck mode (nats-server's `sendLDMToRoutes`):
    /// an async INFO, this server's route INFO with `"ldm":true` (`tls` says whether cluster
    /// TLS is on, as the greeting's INFO does). Calls `wake` for outboxes that need their
    /// shard. Routes registered later get the plain INFO, as with nats-server.
    pub fn send_lame_duck_to_routes(&self, tls: bool, wake: &mut impl FnMut(u16)) {
        let info = crate::proto::route::RouteInfo {
            ldm: true,
            tls_required: tls,
            tls_verify: tls,
            ..self.route_info()
        };
        let mut line = Vec::new();
        crate::proto::route::write_route_info(&mut line, &info);
        let book = self.book();
        for route in &book.routes {
            if route.outbox.append(|out| out.extend_from_slice(&line)) {
                wake(route.address.shard);
            }
        }
    }

    /// The client URLs last announced to clients (`/varz`'s `connect_urls`): None before any
    /// route registered.
    pub fn client_urls(&self) -> Option<Arc<[String]>> {
        self.book().client_urls.clone()
    }

    /// How many routes are registered (one per peer server).
    pub fn route_count(&self) -> usize {
        self.book().routes.len()
    }

    /// How many (account, subject, queue) keys of local interest there are.
    pub fn interest_keys(&self) -> usize {
        self.book().counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let info = crate::proto::route::RouteInfo {
            server_id: "NSELF".into(),
            ..Default::default()
        };
        Cluster::new(info, None, dialer::DialerHandle::detached())
    }

    fn drained(outbox: &Outbox) -> String {
        let mut out = Vec::new();
        outbox.drain_into(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn peer(id: &str) -> PeerSummary {
        PeerSummary {
            server_id: id.into(),
            route_url: format!("nats-route://127.0.0.1:1/{id}"),
            ..PeerSummary::default()
        }
    }

    fn address(slot: u32) -> RouteAddress {
        RouteAddress {
            shard: 0,
            slot,
            generation: 1,
        }
    }

    #[test]
    fn interest_is_counted_per_key_and_announced_on_transitions() {
        let cluster = cluster();
        let outbox = Arc::new(Outbox::default());
        let mut woken = Vec::new();
        let mut wake = |shard| woken.push(shard);
        cluster
            .register(
                peer("NA"),
                address(1),
                Arc::clone(&outbox),
                false,
                |_| Vec::new(),
                &mut wake,
            )
            .unwrap();
        cluster.interest_changed("$G", b"foo", None, 1, &mut wake);
        cluster.interest_changed("$G", b"foo", None, 1, &mut wake);
        cluster.interest_changed("$G", b"bar", Some(b"q1"), 1, &mut wake);
        cluster.interest_changed("$G", b"bar", Some(b"q1"), 1, &mut wake);
        cluster.interest_changed("$G", b"bar", Some(b"q1"), -1, &mut wake);
        cluster.interest_changed("$G", b"bar", Some(b"q1"), -1, &mut wake);
        cluster.interest_changed("$G", b"foo", None, -1, &mut wake);
        cluster.interest_changed("$G", b"foo", None, -1, &mut wake);
        assert_eq!(
            drained(&outbox),
            "RS+ $G foo\r\nRS+ $G bar q1 1\r\nRS+ $G bar q1 2\r\nRS+ $G bar q1 1\r\n\
             RS- $G bar q1\r\nRS- $G foo\r\n"
        );
        assert_eq!(woken, vec![0], "woken once: the outbox was never drained");
        assert_eq!(cluster.interest_keys(), 0);
    }

    fn import(allow: &[&str], deny: &[&str]) -> crate::config::RoutePermissions {
        let list = |subjects: &[&str]| {
            (!subjects.is_empty()).then(|| subjects.iter().map(|s| s.to_string()).collect())
        };
        crate::config::RoutePermissions {
            import: Some(SubjectPermission {
                allow: list(allow),
                deny: list(deny),
            }),
            export: None,
        }
    }

    #[test]
    fn import_filters_the_dump_the_changes_and_a_reload() {
        let cluster = cluster().with_permissions(Some(&import(&["foo.>", "q"], &["foo.no"])));
        let mut wake = |_| {};
        cluster.interest_changed("$G", b"foo.a", None, 1, &mut wake);
        cluster.interest_changed("$G", b"bar", None, 1, &mut wake);
        let outbox = Arc::new(Outbox::default());
        cluster
            .register(
                peer("NA"),
                address(1),
                Arc::clone(&outbox),
                false,
                |_| Vec::new(),
                &mut wake,
            )
            .unwrap();
        assert_eq!(
            drained(&outbox),
            "RS+ $G foo.a\r\n",
            "bar is not importable"
        );
        cluster.interest_changed("$G", b"foo.no", None, 1, &mut wake);
        cluster.interest_changed("$G", b"foo.*", None, 1, &mut wake);
        cluster.interest_changed("$G", b"q", Some(b"g"), 2, &mut wake);
        cluster.interest_changed("$G", b"bar", None, -1, &mut wake);
        assert_eq!(drained(&outbox), "RS+ $G foo.*\r\nRS+ $G q g 2\r\n");
        assert_eq!(cluster.interest_keys(), 4, "counted, announced or not");
        // Reload: bar and foo.no become importable, foo.* and q no longer, foo.a stays.
        cluster.interest_changed("$G", b"bar", None, 1, &mut wake);
        cluster.reload_permissions(Some(&import(&["bar", "foo.a", "foo.no"], &[])), &mut wake);
        let out = drained(&outbox);
        let (info, lines) = out.split_once("\r\n").unwrap();
        assert!(
            info.ends_with(r#""import":{"allow":["bar","foo.a","foo.no"]}} "#),
            "{info}"
        );
        let mut lines: Vec<&str> = lines.split_terminator("\r\n").collect();
        lines[..2].sort();
        lines[2..].sort();
        assert_eq!(
            lines,
            ["RS+ $G bar", "RS+ $G foo.no", "RS- $G foo.*", "RS- $G q g"]
        );
        assert!(cluster.route_info().import.is_some());
        // The same permissions again: nothing.
        cluster.reload_permissions(Some(&import(&["bar", "foo.a", "foo.no"], &[])), &mut wake);
        assert_eq!(drained(&outbox), "");
        // A peer whose export widens gets what it now admits and this server may import.
        let narrow = SubjectPermission {
            allow: Some(vec!["bar".into()]),
            deny: None,
        };
        cluster.peer_export_changed(address(1), Some(&narrow), None, &mut wake);
        let mut widened: Vec<String> = drained(&outbox)
            .split_terminator("\r\n")
            .map(String::from)
            .collect();
        widened.sort();
        assert_eq!(
            widened,
            ["RS+ $G foo.a", "RS+ $G foo.no"],
            "not bar, not foo.*"
        );
    }

    #[test]
    fn lame_duck_withdraws_client_urls_both_ways() {
        let info = crate::proto::route::RouteInfo {
            server_id: "NSELF".into(),
            connect_urls: vec!["127.0.0.1:4222".into()],
            ..Default::default()
        };
        let cluster = Cluster::new(info, None, dialer::DialerHandle::detached());
        let mut wake = |_| {};
        let outboxes: Vec<Arc<Outbox>> = (0..2).map(|_| Arc::default()).collect();
        for (index, (id, url)) in [("NA", "127.0.0.1:4223"), ("NB", "127.0.0.1:4224")]
            .into_iter()
            .enumerate()
        {
            let peer = PeerSummary {
                connect_urls: vec![url.into()],
                ..peer(id)
            };
            let outbox = Arc::clone(&outboxes[index]);
            cluster
                .register(
                    peer,
                    address(index as u32),
                    outbox,
                    true,
                    |_| Vec::new(),
                    &mut wake,
                )
                .unwrap();
        }
        let announced = || {
            let mut urls = Vec::new();
            cluster.announce_client_urls(|announced| urls = announced.to_vec());
            urls
        };
        assert_eq!(
            announced(),
            ["127.0.0.1:4222", "127.0.0.1:4223", "127.0.0.1:4224"]
        );
        // NA said "ldm": once.
        assert!(cluster.peer_entered_lame_duck(address(0)));
        assert!(!cluster.peer_entered_lame_duck(address(0)));
        assert!(
            !cluster.peer_entered_lame_duck(address(7)),
            "not registered"
        );
        assert_eq!(announced(), ["127.0.0.1:4222", "127.0.0.1:4224"]);
        // This server enters it: only NB's left, and every route is told.
        assert_eq!(&*cluster.withdraw_own_client_urls(), ["127.0.0.1:4224"]);
        assert_eq!(announced(), ["127.0.0.1:4224"]);
        assert_eq!(cluster.client_urls().unwrap().to_vec(), ["127.0.0.1:4224"]);
        cluster.send_lame_duck_to_routes(false, &mut wake);
        for outbox in &outboxes {
            let sent = drained(outbox);
            assert!(sent.starts_with("INFO {\"server_id\":\"NSELF\""), "{sent}");
            assert!(
                sent.ends_with(",\"connect_urls\":[\"127.0.0.1:4222\"],\"ldm\":true} \r\n"),
                "{sent}"
            );
        }
    }

    #[test]
    fn a_new_route_gets_the_dump_and_others_get_its_info() {
        let cluster = cluster();
        let mut wake = |_| {};
        cluster.interest_changed("$G", b"foo", None, 1, &mut wake);
        cluster.interest_changed("ACC", b"bar", Some(b"q"), 3, &mut wake);
        let first = Arc::new(Outbox::default());
        let gossip = |peer: &PeerSummary| format!("INFO {}\r\n", peer.server_id).into_bytes();
        cluster
            .register(
                peer("NA"),
                address(1),
                Arc::clone(&first),
                false,
                gossip,
                &mut wake,
            )
            .unwrap();
        let mut dump: Vec<String> = drained(&first)
            .split_terminator("\r\n")
            .map(String::from)
            .collect();
        dump.sort();
        assert_eq!(dump, ["RS+ $G foo", "RS+ ACC bar q 3"]);
        let second = Arc::new(Outbox::default());
        cluster
            .register(
                peer("NB"),
                address(2),
                Arc::clone(&second),
                false,
                gossip,
                &mut wake,
            )
            .unwrap();
        assert_eq!(drained(&first), "INFO NB\r\n");
        assert_eq!(
            cluster.register(
                peer("NB"),
                address(3),
                Arc::default(),
                false,
                gossip,
                &mut wake
            ),
            Err(Refused::Duplicate)
        );
        assert_eq!(
            cluster.register(
                peer("NSELF"),
                address(4),
                Arc::default(),
                false,
                gossip,
                &mut wake
            ),
            Err(Refused::ToSelf)
        );
        cluster.unregister(address(2));
        assert!(!cluster.is_connected("NB"));
        assert!(cluster.is_connected("NA"));
    }
}
