//! TLS on cluster routes (`cluster { tls {} }`) with real servers: natsring nodes among
//! themselves and with nats-server 2.15.1 nodes, both directions, driven by async-nats clients;
//! what the route port does on the wire before and after the handshake, next to nats-server's;
//! and the routes that must not form (a peer certified by another CA, a plain peer).
//!
//! Certificates come from `common::certs` (generated per run): each node presents the same
//! route certificate (`localhost`, `127.0.0.1`; server and client use) on both sides and
//! verifies its peers against the CA.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::rustls;
use async_nats::rustls::pki_types::pem::PemObject;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::timeout;

use common::certs::{Identity, Pki};
use common::{
    assert_nats_server_available, start_natsring_with_config, start_reference_with_config,
    ChildServer,
};

const WAIT: Duration = Duration::from_secs(10);
/// How long a route that must not form is given to form anyway (nats-server redials an
/// explicit route every second).
const REFUSED_FOR: Duration = Duration::from_millis(2500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Natsring,
    Go,
}

/// What a node's `cluster { tls {} }` says: its certificate and the CA it trusts; `None`: no
/// TLS on its routes.
#[derive(Clone, Copy)]
struct RouteTls<'a> {
    identity: &'a Identity,
    ca_file: &'a std::path::Path,
    timeout: &'a str,
    /// More lines for the block (`insecure: true`, `pinned_certs: [...]`).
    extra: &'a str,
}

/// Starts a node of `kind` in cluster `c1`, named `name`, with routes to the cluster ports
/// `routes` (at 127.0.0.1), over TLS when `tls` says so.
fn node(kind: Kind, name: &str, routes: &[u16], tls: Option<RouteTls<'_>>) -> ChildServer {
    node_at(kind, name, "127.0.0.1", routes, tls)
}

/// `node`, with its routes at `host`.
fn node_at(
    kind: Kind,
    name: &str,
    host: &str,
    routes: &[u16],
    tls: Option<RouteTls<'_>>,
) -> ChildServer {
    let config = config_for(name, host, routes, tls);
    let server = match kind {
        Kind::Natsring => start_natsring_with_config(&config, &[]),
        Kind::Go => {
            assert_nats_server_available();
            start_reference_with_config(&config)
        }
    };
    assert!(server.cluster_port.is_some(), "{name} listens for routes");
    server
}

/// The configuration file of a node (see `node_at`).
fn config_for(name: &str, host: &str, routes: &[u16], tls: Option<RouteTls<'_>>) -> String {
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("nats-route://{host}:{port}"))
        .collect();
    let tls = tls.map_or(String::new(), |tls| {
        format!(
            "  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n    ca_file: \"{}\"\n    timeout: {}\n    {}\n  }}\n",
            tls.identity.cert_file.display(),
            tls.identity.key_file.display(),
            tls.ca_file.display(),
            tls.timeout,
            tls.extra,
        )
    });
    format!(
        "server_name: {name}\nhttp_port: -1\ncluster {{\n  name: c1\n  host: 127.0.0.1\n  port: -1\n  routes: [{}]\n{tls}}}\n",
        routes.join(", ")
    )
}

/// The route TLS every well-configured node of these tests has.
fn trusted(pki: &Pki) -> RouteTls<'_> {
    RouteTls {
        identity: &pki.route,
        ca_file: &pki.ca_file,
        timeout: "2",
        extra: "",
    }
}

fn cluster_port(server: &ChildServer) -> u16 {
    server.cluster_port.expect("a cluster port")
}

async fn client(server: &ChildServer) -> async_nats::Client {
    async_nats::connect(format!("nats://127.0.0.1:{}", server.port))
        .await
        .expect("connect")
}

/// Publishes probes on `subject` from `publisher` until `subscriber` receives one, within
/// `within`; then drains the probes still on their way. Whether one arrived.
async fn route_carries(
    publisher: &async_nats::Client,
    subscriber: &mut async_nats::Subscriber,
    subject: &str,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        publisher
            .publish(subject.to_string(), "probe".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if let Ok(Some(_)) = timeout(Duration::from_millis(100), subscriber.next()).await {
            break;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
    while let Ok(Some(_)) = timeout(Duration::from_millis(300), subscriber.next()).await {}
    true
}

/// Receives exactly `count` messages on `subscriber`, then checks that no more come.
async fn receive_exactly(subscriber: &mut async_nats::Subscriber, count: usize) -> Vec<Bytes> {
    let mut payloads = Vec::with_capacity(count);
    while payloads.len() < count {
        match timeout(WAIT, subscriber.next()).await {
            Ok(Some(message)) => payloads.push(message.payload),
            _ => panic!("{} of {count} messages", payloads.len()),
        }
    }
    if let Ok(Some(extra)) = timeout(Duration::from_millis(300), subscriber.next()).await {
        panic!("a message more than {count}: {:?}", extra.payload);
    }
    payloads
}

/// Messages both ways between `a` and `b`, in order, exactly once, one with headers; then a
/// queue group with members on both nodes: each message to exactly one member, both nodes
/// getting some.
async fn pair_behaves(a: &ChildServer, b: &ChildServer) {
    let (ca, cb) = (client(a).await, client(b).await);
    for (from, to, subject) in [(&cb, &ca, "to.a"), (&ca, &cb, "to.b")] {
        let mut sub = to.subscribe(subject.to_string()).await.unwrap();
        to.flush().await.unwrap();
        assert!(
            route_carries(from, &mut sub, subject, WAIT).await,
            "no route for {subject} within {WAIT:?}"
        );
        for i in 0..300 {
            from.publish(subject.to_string(), Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("X-Key", "value");
        from.publish_with_headers(subject.to_string(), headers, "with headers".into())
            .await
            .unwrap();
        from.flush().await.unwrap();
        let payloads = receive_exactly(&mut sub, 301).await;
        for (i, payload) in payloads[..300].iter().enumerate() {
            assert_eq!(payload, &Bytes::from(i.to_string()), "in order");
        }
        assert_eq!(&payloads[300][..], b"with headers");
    }

    let mut members = Vec::new();
    for client in [&ca, &ca, &cb, &cb] {
        members.push(client.queue_subscribe("work", "q".into()).await.unwrap());
    }
    ca.flush().await.unwrap();
    cb.flush().await.unwrap();
    // Probes from `a` until one reaches a member on `b` (the queue interest crossed), then the
    // probes still on their way are drained.
    let deadline = std::time::Instant::now() + WAIT;
    'crossed: loop {
        ca.publish("work", "probe".into()).await.unwrap();
        ca.flush().await.unwrap();
        for member in &mut members[2..] {
            if let Ok(Some(_)) = timeout(Duration::from_millis(50), member.next()).await {
                break 'crossed;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue interest never crossed"
        );
    }
    for member in &mut members {
        while let Ok(Some(_)) = timeout(Duration::from_millis(300), member.next()).await {}
    }
    // All from `a`: what `b`'s members get crossed the route.
    const COUNT: usize = 1000;
    for i in 0..COUNT {
        ca.publish("work", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    ca.flush().await.unwrap();
    let mut seen = std::collections::HashMap::<Bytes, usize>::new();
    let mut per_member = Vec::new();
    for member in &mut members {
        let mut got = 0;
        while let Ok(Some(message)) = timeout(Duration::from_millis(500), member.next()).await {
            *seen.entry(message.payload).or_default() += 1;
            got += 1;
        }
        per_member.push(got);
    }
    assert_eq!(seen.len(), COUNT, "every message delivered: {per_member:?}");
    assert!(seen.values().all(|&n| n == 1), "none twice: {per_member:?}");
    let (on_a, on_b) = (per_member[0] + per_member[1], per_member[2] + per_member[3]);
    assert!(
        on_a > COUNT / 5 && on_b > COUNT / 5,
        "spread over both nodes: {per_member:?}"
    );
}

/// Subscribes on `a`, publishes on `b` for `REFUSED_FOR`: whether anything crossed. The
/// subject is `b`'s own (several of these run at once, some with the same `a`).
async fn anything_crosses(a: &ChildServer, b: &ChildServer) -> bool {
    let (ca, cb) = (client(a).await, client(b).await);
    let subject = format!("crossing.{}", b.port);
    let mut sub = ca.subscribe(subject.clone()).await.unwrap();
    ca.flush().await.unwrap();
    route_carries(&cb, &mut sub, &subject, REFUSED_FOR).await
}

#[tokio::test]
async fn two_natsring_nodes_over_tls() {
    let pki = Pki::generate();
    let a = node(Kind::Natsring, "A", &[], Some(trusted(&pki)));
    let b = node(
        Kind::Natsring,
        "B",
        &[cluster_port(&a)],
        Some(trusted(&pki)),
    );
    pair_behaves(&a, &b).await;
}

#[tokio::test]
async fn natsring_dials_nats_server_over_tls() {
    let pki = Pki::generate();
    let a = node(Kind::Go, "A", &[], Some(trusted(&pki)));
    let b = node(
        Kind::Natsring,
        "B",
        &[cluster_port(&a)],
        Some(trusted(&pki)),
    );
    pair_behaves(&a, &b).await;
}

#[tokio::test]
async fn nats_server_dials_natsring_over_tls() {
    let pki = Pki::generate();
    let a = node(Kind::Natsring, "A", &[], Some(trusted(&pki)));
    let b = node(Kind::Go, "B", &[cluster_port(&a)], Some(trusted(&pki)));
    pair_behaves(&a, &b).await;
}

/// A peer whose certificate another CA signed is refused, whichever side checks it: the
/// accepting natsring node checks the dialer's (natsring's and nats-server's), and a dialing
/// natsring node checks the nats-server it dials. No message crosses.
#[tokio::test]
async fn a_peer_certified_by_another_ca_is_refused() {
    let pki = Pki::generate();
    let stranger = RouteTls {
        identity: &pki.other_route,
        ..trusted(&pki)
    };
    let natsring = node(Kind::Natsring, "A1", &[], Some(trusted(&pki)));
    let natsring_stranger = node(
        Kind::Natsring,
        "B1",
        &[cluster_port(&natsring)],
        Some(stranger),
    );
    let go_stranger = node(Kind::Go, "B2", &[cluster_port(&natsring)], Some(stranger));
    // The Go node trusts only the other CA: it refuses natsring's certificate (as server), and
    // natsring refuses its own (as client).
    let go = node(
        Kind::Go,
        "A3",
        &[],
        Some(RouteTls {
            identity: &pki.other_route,
            ca_file: &pki.other_ca_file,
            ..trusted(&pki)
        }),
    );
    let natsring_dialer = node(
        Kind::Natsring,
        "B3",
        &[cluster_port(&go)],
        Some(trusted(&pki)),
    );
    let (one, two, three) = tokio::join!(
        anything_crosses(&natsring, &natsring_stranger),
        anything_crosses(&natsring, &go_stranger),
        anything_crosses(&go, &natsring_dialer),
    );
    assert!(
        !one,
        "natsring accepted a natsring route certified by another CA"
    );
    assert!(
        !two,
        "natsring accepted a nats-server route certified by another CA"
    );
    assert!(
        !three,
        "natsring dialed a nats-server certified by another CA"
    );
    // The same nodes do form routes with trusted peers (the refusal was the certificate's).
    let friend = node(
        Kind::Natsring,
        "C1",
        &[cluster_port(&natsring)],
        Some(trusted(&pki)),
    );
    assert!(anything_crosses(&natsring, &friend).await);
}

/// A peer without TLS and a node with it form no route, either way round and with either
/// server on the other side.
#[tokio::test]
async fn a_plain_peer_forms_no_route_with_a_tls_node() {
    let pki = Pki::generate();
    let secure = node(Kind::Natsring, "A1", &[], Some(trusted(&pki)));
    let plain_natsring = node(Kind::Natsring, "B1", &[cluster_port(&secure)], None);
    let plain_go = node(Kind::Go, "B2", &[cluster_port(&secure)], None);
    let go_plain = node(Kind::Go, "A3", &[], None);
    let secure_dialer = node(
        Kind::Natsring,
        "B3",
        &[cluster_port(&go_plain)],
        Some(trusted(&pki)),
    );
    let (one, two, three) = tokio::join!(
        anything_crosses(&secure, &plain_natsring),
        anything_crosses(&secure, &plain_go),
        anything_crosses(&go_plain, &secure_dialer),
    );
    assert!(!one, "a plain natsring route to a TLS node");
    assert!(!two, "a plain nats-server route to a TLS node");
    assert!(!three, "a TLS node's route to a plain nats-server");
}

/// A TLS client configuration for a raw route connection: the route certificate presented,
/// the CA trusted.
fn route_client(pki: &Pki) -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(pki.route.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.route.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

/// Reads from `stream` until `until` says the bytes are enough, or the stream ends or stays
/// silent for `quiet`.
fn read_until(stream: &mut impl Read, quiet: Duration, until: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while !until(&bytes) && Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if quiet.is_zero() {
                    continue;
                }
                break;
            }
            Err(_) => break,
        }
    }
    bytes
}

/// What a TLS cluster port does on the wire, natsring next to nats-server: nothing before the
/// handshake (no INFO in plain text: the handshake comes first); after it, INFO with
/// `"tls_required":true,"tls_verify":true` in nats-server's field order; a peer that never
/// starts its handshake is closed after `tls { timeout }`, having been sent nothing; `/varz`
/// describes the cluster's TLS as nats-server's does.
#[tokio::test]
async fn the_route_port_speaks_tls_first_as_nats_server() {
    let pki = Pki::generate();
    let quick = RouteTls {
        timeout: "0.5",
        ..trusted(&pki)
    };
    let natsring = node(Kind::Natsring, "N", &[], Some(quick));
    let go = node(Kind::Go, "G", &[], Some(quick));
    for (what, server) in [("natsring", &natsring), ("nats-server", &go)] {
        let port = cluster_port(server);
        // Silent peer: nothing sent to it, and closed after the timeout.
        let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let started = Instant::now();
        let first = read_until(&mut silent, Duration::from_millis(300), |_| false);
        assert!(
            first.is_empty(),
            "{what}: nothing before the handshake: {first:?}"
        );
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let rest = read_until(&mut silent, Duration::ZERO, |_| false);
        let closed_after = started.elapsed();
        assert!(rest.is_empty(), "{what}: nothing at the timeout: {rest:?}");
        assert!(
            closed_after >= Duration::from_millis(400) && closed_after < Duration::from_secs(3),
            "{what}: closed after the 0.5 s timeout, not {closed_after:?}"
        );

        // A peer that does its handshake gets INFO.
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(route_client(&pki), stream);
        let _ = tls.flush();
        let info = read_until(&mut tls, Duration::ZERO, |bytes| bytes.ends_with(b"\r\n"));
        let info = String::from_utf8_lossy(&info);
        assert!(info.starts_with("INFO {"), "{what}: {info}");
        assert!(
            info.contains("\"tls_required\":true,\"tls_verify\":true,\"max_payload\":"),
            "{what}: {info}"
        );
    }
    // `/varz` says the same of the cluster's TLS (same certificate, same timeout).
    let tls_fields = |server: &ChildServer| {
        let url = format!("{}/varz", server.monitoring_url.as_ref().unwrap());
        let body = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        let varz: serde_json::Value = serde_json::from_str(&body).unwrap();
        let cluster = &varz["cluster"];
        [
            "tls_required",
            "tls_verify",
            "tls_timeout",
            "tls_cert_not_after",
        ]
        .map(|key| (key, cluster[key].clone()))
    };
    let ours = tls_fields(&natsring);
    assert_eq!(ours, tls_fields(&go));
    assert_eq!(ours[0].1, serde_json::Value::Bool(true), "{ours:?}");
    assert!(ours[3].1.is_string(), "{ours:?}");
}

/// `insecure` on a dialing natsring node: the peer's certificate (here from another CA) is not
/// checked, as Go's `InsecureSkipVerify`; without it the same peer is refused. The peer still
/// checks the dialer's certificate.
#[tokio::test]
async fn insecure_skips_checking_the_dialed_peer() {
    let pki = Pki::generate();
    let go = node(
        Kind::Go,
        "A",
        &[],
        Some(RouteTls {
            identity: &pki.other_route,
            ..trusted(&pki)
        }),
    );
    let insecure = node(
        Kind::Natsring,
        "B1",
        &[cluster_port(&go)],
        Some(RouteTls {
            extra: "insecure: true",
            ..trusted(&pki)
        }),
    );
    let checking = node(
        Kind::Natsring,
        "B2",
        &[cluster_port(&go)],
        Some(trusted(&pki)),
    );
    let (insecure_crosses, checking_crosses) = tokio::join!(
        anything_crosses(&go, &insecure),
        anything_crosses(&go, &checking)
    );
    assert!(insecure_crosses, "an insecure route forms");
    assert!(
        !checking_crosses,
        "a checking route to the same peer does not"
    );
}

/// Hex SHA-256 of a PEM certificate's SubjectPublicKeyInfo, as `pinned_certs` lists it.
fn spki_sha256_hex(cert_pem: &str) -> String {
    use sha2::Digest;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
    let digest = sha2::Sha256::digest(certificate.tbs_certificate.subject_pki.raw);
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `pinned_certs` on an accepting natsring node: a verified peer whose key is not listed is
/// refused; listed, it is taken.
#[tokio::test]
async fn pinned_certs_restrict_the_peers() {
    let pki = Pki::generate();
    let pinned_other = format!(
        "pinned_certs: [\"{}\"]",
        spki_sha256_hex(&pki.server.cert_pem)
    );
    let pinned_route = format!(
        "pinned_certs: [\"{}\"]",
        spki_sha256_hex(&pki.route.cert_pem)
    );
    let strict = node(
        Kind::Natsring,
        "A1",
        &[],
        Some(RouteTls {
            extra: &pinned_other,
            ..trusted(&pki)
        }),
    );
    let pinned = node(
        Kind::Natsring,
        "A2",
        &[],
        Some(RouteTls {
            extra: &pinned_route,
            ..trusted(&pki)
        }),
    );
    let refused = node(
        Kind::Go,
        "B1",
        &[cluster_port(&strict)],
        Some(trusted(&pki)),
    );
    let taken = node(
        Kind::Go,
        "B2",
        &[cluster_port(&pinned)],
        Some(trusted(&pki)),
    );
    let (refused_crosses, taken_crosses) = tokio::join!(
        anything_crosses(&strict, &refused),
        anything_crosses(&pinned, &taken)
    );
    assert!(!refused_crosses, "a peer whose key is not pinned");
    assert!(taken_crosses, "a peer whose key is pinned");
}

/// A reload that pins other keys (`pinned_certs`) closes the routes whose peer it leaves out,
/// as nats-server's `recheckPinnedCerts`; the peer's next dial is refused.
#[tokio::test]
async fn a_reload_that_pins_other_keys_closes_the_route() {
    let pki = Pki::generate();
    let a = node(Kind::Natsring, "A", &[], Some(trusted(&pki)));
    let b = node(Kind::Go, "B", &[cluster_port(&a)], Some(trusted(&pki)));
    let (ca, cb) = (client(&a).await, client(&b).await);
    let mut sub = ca.subscribe("pins").await.unwrap();
    ca.flush().await.unwrap();
    assert!(
        route_carries(&cb, &mut sub, "pins", WAIT).await,
        "the route is up"
    );
    let pinned = format!(
        "pinned_certs: [\"{}\"]",
        spki_sha256_hex(&pki.server.cert_pem)
    );
    let config = config_for(
        "A",
        "127.0.0.1",
        &[],
        Some(RouteTls {
            extra: &pinned,
            ..trusted(&pki)
        }),
    );
    std::fs::write(a.config_path().unwrap(), config).unwrap();
    a.signal(libc::SIGHUP);
    // The route closes once the reload is applied: wait until probes stop crossing, then
    // drain what was on its way.
    let deadline = std::time::Instant::now() + WAIT;
    while route_carries(&cb, &mut sub, "pins", Duration::from_millis(500)).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the route still carries after the reload"
        );
    }
    while let Ok(Some(_)) = timeout(Duration::from_millis(300), sub.next()).await {}
    assert!(
        !route_carries(&cb, &mut sub, "pins", REFUSED_FOR).await,
        "the route is gone and stays gone"
    );
}

/// A reload rereads the cluster's TLS files: a node whose certificate its peer refused
/// serves the new one to the peer's next dial, and the route forms.
#[tokio::test]
async fn a_reload_serves_new_route_certificates() {
    let pki = Pki::generate();
    let dir = common::temp_path("route-tls-reload");
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &pki.other_route.cert_pem).unwrap();
    std::fs::write(&key_file, &pki.other_route.key_pem).unwrap();
    let swapped = Identity {
        cert_pem: String::new(),
        key_pem: String::new(),
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
    };
    let a = node(
        Kind::Natsring,
        "A",
        &[],
        Some(RouteTls {
            identity: &swapped,
            ..trusted(&pki)
        }),
    );
    let b = node(
        Kind::Natsring,
        "B",
        &[cluster_port(&a)],
        Some(trusted(&pki)),
    );
    assert!(
        !anything_crosses(&a, &b).await,
        "B refuses A's first certificate"
    );
    std::fs::write(&cert_file, &pki.route.cert_pem).unwrap();
    std::fs::write(&key_file, &pki.route.key_pem).unwrap();
    a.signal(libc::SIGHUP);
    let (ca, cb) = (client(&a).await, client(&b).await);
    let mut sub = ca.subscribe("reloaded").await.unwrap();
    ca.flush().await.unwrap();
    assert!(
        route_carries(&cb, &mut sub, "reloaded", WAIT).await,
        "the route forms with the reloaded certificate"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three nodes over TLS from one seed, named `localhost` in `routes`, with certificates for
/// that name only: B and C meet by gossip, which names them by IP address, so each checks the
/// other's certificate against the host name of its configured route (nats-server's
/// `routeTLSName`). A message from B reaches C's subscriber (A relays nothing).
async fn mesh_over_tls_from_one_seed(kinds: [Kind; 3]) {
    let pki = Pki::generate();
    let tls = RouteTls {
        identity: &pki.route_by_name,
        ..trusted(&pki)
    };
    let a = node_at(kinds[0], "A", "localhost", &[], Some(tls));
    let b = node_at(kinds[1], "B", "localhost", &[cluster_port(&a)], Some(tls));
    let c = node_at(kinds[2], "C", "localhost", &[cluster_port(&a)], Some(tls));
    let (cb, cc) = (client(&b).await, client(&c).await);
    let mut sub = cc.subscribe("mesh").await.unwrap();
    cc.flush().await.unwrap();
    assert!(
        route_carries(&cb, &mut sub, "mesh", WAIT).await,
        "B and C meet over TLS"
    );
    for i in 0..200 {
        cb.publish("mesh", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    cb.flush().await.unwrap();
    receive_exactly(&mut sub, 200).await;
}

#[tokio::test]
async fn natsring_nodes_mesh_over_tls_from_a_nats_server_seed() {
    mesh_over_tls_from_one_seed([Kind::Go, Kind::Natsring, Kind::Natsring]).await;
}

#[tokio::test]
async fn a_mixed_mesh_over_tls_from_a_natsring_seed() {
    mesh_over_tls_from_one_seed([Kind::Natsring, Kind::Go, Kind::Natsring]).await;
}
