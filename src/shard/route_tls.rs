//! TLS on cluster routes (`cluster { tls {} }`), as nats-server 2.15.1 runs it: the handshake
//! comes first, before any byte of the route protocol, on both sides. The accepting side is
//! the TLS server (`TlsSession::accepted_route`) and sends its INFO once the handshake is done;
//! the soliciting side is the TLS client (`TlsSession::solicited_route`) and sends CONNECT
//! (`"tls_required":true`) and INFO once it is done. Both sides present the cluster's
//! certificate and require the peer's, checked against `ca_file` (nats-server forces
//! `RequireAndVerifyClientCert` for clusters and mirrors the CA into its roots); the dialing
//! side also checks the peer's certificate against the route URL's host, or, for a URL naming
//! an IP address, the first host name among the configured routes (nats-server's
//! `routeTLSName`). `tls { timeout }` bounds the handshake; `pinned_certs` restricts the
//! peer's certificate once it is verified.
//!
//! The transport is the clients' (`tls.rs`): one `TlsSession` per connection between the ring
//! buffers and the route's parser. What is here is only what a route does around it.
//!
//! Must not: touch the route protocol itself (`route.rs` greets once this says the
//! handshake is done), or run when the cluster has no `tls {}` (routes stay plain TCP then).

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::ServerConfig;
use rustls::CommonState;

use super::conn::Transport;
use super::core::Core;
use super::settings::Settings;
use super::tls::TlsSession;
use crate::cluster::Cluster;
use crate::limits;
use crate::proto::route::RouteInfo;
use crate::proto::CloseReason;

/// What the shards need of the cluster's TLS configuration, made once per start or reload
/// (`server.rs`): new routes use the latest, routes already up keep theirs.
#[derive(Debug)]
pub struct RouteTls {
    /// What an accepted route is served with (the peer's certificate required).
    pub server: Arc<ServerConfig>,
    /// What a solicited route dials with (this server's certificate presented).
    pub client: Arc<rustls::ClientConfig>,
    /// `tls { timeout }`: how long a handshake may take, in ms.
    pub timeout_ms: u64,
    /// `tls { pinned_certs }`: SHA-256 of the SubjectPublicKeyInfo of each peer certificate
    /// allowed; empty: any that the configurations accept.
    pub pinned_certs: Vec<[u8; 32]>,
    /// The first host name (not an IP address) among the configured routes: what a route
    /// dialed by IP address checks the peer's certificate against (nats-server's
    /// `routeTLSName`, used for gossiped routes, which are named by IP).
    pub name: Option<String>,
    /// When the certificate expires (`/varz`'s `cluster.tls_cert_not_after`).
    pub cert_not_after: Option<std::time::SystemTime>,
}

impl RouteTls {
    /// The name a route dialed at `host` checks its peer's certificate against.
    pub fn server_name(&self, host: &str) -> Option<ServerName<'static>> {
        let host = match (host.parse::<IpAddr>(), &self.name) {
            (Ok(_), Some(name)) => name.as_str(),
            _ => host,
        };
        ServerName::try_from(host.to_string()).ok()
    }
}

impl Core {
    /// This server's route INFO as it is now: the cluster's (with the route permissions), with `tls_required` and
    /// `tls_verify` as the settings have cluster TLS (a reload may turn it on or off, as
    /// nats-server's reload does for routes made after it).
    pub(super) fn local_route_info(&self, cluster: &Cluster) -> RouteInfo {
        let tls = self.settings.route_tls.is_some();
        RouteInfo {
            tls_required: tls,
            tls_verify: tls,
            ..cluster.route_info()
        }
    }

    /// With cluster TLS, gives the new route in `slot` (its session begun, not greeted yet)
    /// its TLS session: accepted, the server side; solicited, the client side, whose
    /// ClientHello goes out now. Returns false when the cluster has no TLS (the route greets
    /// at once, in plain text); true otherwise, also when no session could be made (the route
    /// is closed then).
    pub(super) fn secure_route(&mut self, slot: u32) -> bool {
        let Some(tls) = self.settings.route_tls.clone() else {
            return false;
        };
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        let solicited = conn
            .route
            .as_ref()
            .and_then(|session| session.solicited.as_ref())
            .map(|target| target.url.host.clone());
        let session = match &solicited {
            None => TlsSession::accepted_route(&tls.server, tls.timeout_ms, now_ms),
            Some(host) => match tls.server_name(host) {
                Some(name) => {
                    TlsSession::solicited_route(&tls.client, name, tls.timeout_ms, now_ms)
                }
                None => Err(rustls::Error::General(format!(
                    "invalid host name {host:?}"
                ))),
            },
        };
        match session {
            Ok(session) => {
                let output = session.has_output();
                conn.transport = Transport::Tls(Box::new(session));
                // Keepalive starts when the handshake ends (`route_tls_established`).
                conn.next_ping_ms = u64::MAX;
                crate::log_debug!(
                    "{} - rid:{} - Starting TLS route {} handshake",
                    conn.peer,
                    conn.client_id,
                    if solicited.is_some() {
                        "client"
                    } else {
                        "server"
                    }
                );
                if output {
                    self.mark_dirty(slot);
                }
                self.conns.want_recv(slot);
            }
            Err(error) => {
                crate::log_error!(
                    "{} - rid:{} - TLS route handshake error: {error}",
                    conn.peer,
                    conn.client_id
                );
                self.close(slot, CloseReason::TLSHandshakeError);
            }
        }
        true
    }

    /// After a reload that changed the cluster's `pinned_certs` (from `old`'s): the routes
    /// whose peer's key the new list leaves out (and plain ones) close, as nats-server's
    /// `recheckPinnedCerts` closes them (`TLS Handshake Failure`).
    pub(super) fn recheck_route_pins(&mut self, old: &Settings) {
        let pins = |settings: &Settings| {
            settings
                .route_tls
                .as_ref()
                .map(|tls| tls.pinned_certs.clone())
                .unwrap_or_default()
        };
        let pinned = pins(&self.settings);
        if pinned.is_empty() || pinned == pins(old) {
            return;
        }
        let refused: Vec<u32> = self
            .route_slots
            .iter()
            .copied()
            .filter(|&slot| match &self.conns[slot].transport {
                Transport::Tls(session)
                    if session.is_established() && self.conns[slot].is_open() =>
                {
                    let key = session.peer_leaf().and_then(crate::tls::spki_sha256);
                    !key.is_some_and(|key| pinned.contains(&key))
                }
                // A plain route (the reload turned TLS on with the pins) has no key to match:
                // nats-server's `matchesPinnedCert` refuses a connection without TLS.
                Transport::Plain => self.conns[slot].is_open(),
                // Still in its handshake: checked against the new list when it ends.
                _ => false,
            })
            .collect();
        if refused.is_empty() {
            return;
        }
        crate::log_notice!(
            "Disconnect {} clients due to pinned certs reload",
            refused.len()
        );
        for slot in refused {
            self.drain_and_close(slot, CloseReason::TLSHandshakeError);
        }
    }

    /// The TLS handshake of the route in `slot` ended (`tls`), its peer's certificate
    /// verified: unless `pinned_certs` refuses it, the route protocol starts, as it starts on
    /// a plain route at once (its keepalive, then INFO, or CONNECT and INFO).
    pub(super) fn route_tls_established(&mut self, slot: u32, tls: &CommonState) {
        let leaf = tls
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| der.as_ref());
        let pinned_certs = self
            .settings
            .route_tls
            .as_ref()
            .map(|tls| tls.pinned_certs.clone())
            .unwrap_or_default();
        if !self.pinned(slot, leaf, &pinned_certs) {
            return;
        }
        let jitter_ms = self.jitter_ms(limits::ROUTE_FIRST_PING_MS / 5);
        let conn = &mut self.conns[slot];
        conn.next_ping_ms = self.now_ms + limits::ROUTE_FIRST_PING_MS + jitter_ms;
        if crate::log::enabled_debug() {
            crate::log_debug!(
                "{} - rid:{} - TLS handshake complete",
                conn.peer,
                conn.client_id
            );
            let (version, suite) =
                super::tls::version_and_suite(tls).unwrap_or(("unknown", "unknown".to_string()));
            crate::log_debug!(
                "{} - rid:{} - TLS version {version}, cipher suite {suite}",
                conn.peer,
                conn.client_id
            );
        }
        let solicited = conn
            .route
            .as_ref()
            .is_some_and(|session| session.solicited.is_some());
        if solicited {
            self.greet_solicited_route(slot, true);
        } else {
            self.greet_accepted_route(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_tls(name: Option<&str>) -> RouteTls {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = rustls::pki_types::CertificateDer::from(certified.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::from(
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        RouteTls {
            server: Arc::new(server),
            client: Arc::new(client),
            timeout_ms: 2000,
            pinned_certs: Vec::new(),
            name: name.map(Into::into),
            cert_not_after: None,
        }
    }

    #[test]
    fn a_route_dialed_by_ip_checks_the_configured_host_name() {
        let named = route_tls(Some("routes.example"));
        let plain = route_tls(None);
        let ip = |tls: &RouteTls, host: &str| tls.server_name(host).unwrap().to_str().into_owned();
        assert_eq!(ip(&named, "127.0.0.1"), "routes.example");
        assert_eq!(ip(&named, "other.example"), "other.example");
        assert_eq!(ip(&plain, "127.0.0.1"), "127.0.0.1");
        assert!(plain.server_name("bad host").is_none());
    }

    /// Both sides of a route, each a `TlsSession` (no rustls buffered connection): the
    /// client's hello comes first, the handshake ends on both sides, and bytes cross both ways.
    #[test]
    fn a_solicited_and_an_accepted_session_speak() {
        let tls = route_tls(None);
        let name = tls.server_name("localhost").unwrap();
        let mut client = TlsSession::solicited_route(&tls.client, name, 2000, 0).unwrap();
        let mut server = TlsSession::accepted_route(&tls.server, 2000, 0).unwrap();
        assert!(client.has_output(), "the ClientHello is ready");
        let mut from_server = Vec::new();
        let mut from_client = Vec::new();
        for _ in 0..6 {
            let mut bytes = sealed(&mut client, b"");
            server
                .receive(&mut bytes, &mut |event| {
                    if let super::super::tls::Event::Plaintext(text) = event {
                        from_client.extend_from_slice(text)
                    }
                })
                .unwrap();
            let mut bytes = sealed(&mut server, b"");
            client
                .receive(&mut bytes, &mut |event| {
                    if let super::super::tls::Event::Plaintext(text) = event {
                        from_server.extend_from_slice(text)
                    }
                })
                .unwrap();
        }
        assert!(client.is_established() && server.is_established());
        let mut bytes = sealed(&mut client, b"CONNECT {}\r\nINFO {} \r\n");
        server
            .receive(&mut bytes, &mut |event| {
                if let super::super::tls::Event::Plaintext(text) = event {
                    from_client.extend_from_slice(text)
                }
            })
            .unwrap();
        let mut bytes = sealed(&mut server, b"INFO {} \r\n");
        client
            .receive(&mut bytes, &mut |event| {
                if let super::super::tls::Event::Plaintext(text) = event {
                    from_server.extend_from_slice(text)
                }
            })
            .unwrap();
        assert_eq!(from_client, b"CONNECT {}\r\nINFO {} \r\n");
        assert_eq!(from_server, b"INFO {} \r\n");
    }

    /// A route writes nothing in the clear: what is written before its handshake ends is
    /// dropped (the handshake's own records still go out).
    #[test]
    fn nothing_goes_in_the_clear_on_a_route() {
        let tls = route_tls(None);
        let name = tls.server_name("localhost").unwrap();
        let mut client = TlsSession::solicited_route(&tls.client, name, 2000, 0).unwrap();
        let hello = sealed(&mut client, b"PING\r\n");
        assert_eq!(hello.first(), Some(&super::super::tls::HANDSHAKE_RECORD));
        assert!(
            !hello.windows(4).any(|window| window == b"PING"),
            "{hello:?}"
        );
        let mut server = TlsSession::accepted_route(&tls.server, 2000, 0).unwrap();
        assert!(sealed(&mut server, b"INFO {} \r\n").is_empty());
    }

    /// A plain peer (its INFO where the handshake should be) ends a solicited session.
    #[test]
    fn a_plain_peer_ends_a_solicited_session() {
        let tls = route_tls(None);
        let name = tls.server_name("localhost").unwrap();
        let mut client = TlsSession::solicited_route(&tls.client, name, 2000, 0).unwrap();
        let _hello = sealed(&mut client, b"");
        let mut info = b"INFO {\"server_id\":\"N\"} \r\n".to_vec();
        assert!(client.receive(&mut info, &mut |_| {}).is_err());
        assert!(!client.is_established());
    }

    fn sealed(session: &mut TlsSession, plaintext: &[u8]) -> Vec<u8> {
        let (mut pending, mut sending) = (plaintext.to_vec(), Vec::new());
        session.seal(&mut pending, &mut sending, false);
        sending
    }
}
