//! HTTP monitoring (`-m/--http_port`, `http_port`, `http`, `http_base_path`), or HTTPS
//! monitoring (`-ms/--https_port`, `https_port`, `https`), never both: one thread of its own
//! runs HTTP/1 (hyper, on a current-thread tokio runtime); each request is answered on tokio's
//! blocking pool, where the `Inspector` asks the shards. Paths, status codes, headers and error
//! texts are nats-server 2.15.1's.
//!
//! HTTPS, as nats-server serves it: the client `tls {}` certificate, versions and suites, but
//! no client certificate asked for even with `verify` (Go's monitoring sets `ClientAuth` to
//! `NoClientCert`); each connection takes the configuration in force when it arrives, so a
//! reload's files reach it (Go's `GetConfigForClient`); no ALPN, so HTTP/1.1 only; the
//! handshake bounded by the 5 s that bound a request's headers (Go's `http.Server` uses
//! `ReadHeaderTimeout` for both). A first record that is not TLS is refused as Go's
//! `crypto/tls` and `net/http` refuse it: a plain HTTP request gets Go's `400 Bad Request` text,
//! anything else is closed; both are logged as nats-server logs them (`monitoring: TLS
//! handshake error from <address>: <reason>`).

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::inspector::{Inspector, Refused};
use super::query::Query;
use super::{connz, routez, subsz};

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
/// Every endpoint but the index.
const ENDPOINTS: [&str; 11] = [
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
];

/// How long a request's headers may take to arrive, and a TLS handshake (nats-server's
/// `ReadHeaderTimeout`, which Go's `http.Server` also bounds the handshake with).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS record header: content type (1), version (2), length (2).
const TLS_RECORD_HEADER_BYTES: usize = 5;
/// The most read from a connection before its first record header is looked at (and then
/// replayed to rustls). Reads take what has arrived, as Go's do: a plain request is consumed
/// with its first bytes, so closing after the answer sends a FIN, not a reset.
const FIRST_READ_BYTES_MAX: usize = 4096;
const _: () = assert!(FIRST_READ_BYTES_MAX >= TLS_RECORD_HEADER_BYTES);
/// The content types a TLS connection may start with: alert, handshake.
const TLS_RECORD_TYPES_FIRST: [u8; 2] = [0x15, 0x16];
/// What Go's `net/http` answers a plain HTTP request on a TLS port with, before it closes.
const PLAIN_HTTP_ON_HTTPS_RESPONSE: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A running HTTP monitor: its listener's address and its thread. Dropping it stops it.
pub struct Monitor {
    address: SocketAddr,
    scheme: Scheme,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the request handlers share.
struct Site {
    inspector: Arc<Inspector>,
    base_path: String,
    transport: Transport,
}

/// How connections are served.
enum Transport {
    /// Plain HTTP (`http_port`).
    Plain,
    /// HTTPS (`https_port`). Each connection takes the monitoring configuration of the client
    /// TLS in force (`Settings::tls`); this one, the configuration at start, only if a reload
    /// took `tls {}` away.
    Tls(Arc<ServerConfig>),
}

/// What the monitor speaks, as its ports file URLs and its start-up notice name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
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
    /// on failure) and starts serving: HTTPS when `https_port` is set (the server has checked
    /// that `http_port` is not, and that `tls {}` is there), else HTTP.
    pub fn start(inspector: Arc<Inspector>) -> io::Result<Monitor> {
        let settings = inspector.shared.settings();
        let options = &settings.options;
        let host = options.monitoring_host().to_string();
        let (scheme, port) = if options.https_port != 0 {
            (Scheme::Https, options.https_port)
        } else {
            (Scheme::Http, options.http_port)
        };
        let transport = match scheme {
            Scheme::Http => Transport::Plain,
            Scheme::Https => {
                let Some(tls) = &settings.tls else {
                    return Err(io::Error::other("TLS cert and key required for HTTPS"));
                };
                Transport::Tls(Arc::clone(&tls.monitoring_config))
            }
        };
        // -1 is a random port.
        let port = port.max(0) as u16;
        let listener = bind(&host, port).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("can't listen to the monitor port: listen tcp {host}:{port}: {err}"),
            )
        })?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let _ = inspector.http_port.set(address.port());
        let site = Arc::new(Site {
            inspector,
            base_path: normalized_base_path(&options.http_base_path),
            transport,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("monitor-request")
            .on_thread_start(|| super::lower_priority("monitoring"))
            .max_blocking_threads(crate::limits::MONITOR_REQUESTS_IN_FLIGHT_MAX)
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("monitor".to_string())
            .spawn(move || {
                super::lower_priority("monitoring");
                runtime.block_on(serve(listener, site, stopped))
            })?;
        crate::log_notice!(
            "Starting {} monitor on {}",
            scheme.as_str(),
            crate::config::go::join_host_port(&host, address.port())
        );
        Ok(Monitor {
            address,
            scheme,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the monitor listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme.as_str()
    }
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
    site: Arc<Site>,
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
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                crate::log_debug!("monitoring: accept failed: {err}");
                // Out of fds and the like: do not spin on it.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let site = Arc::clone(&site);
        tokio::spawn(async move {
            match &site.transport {
                Transport::Plain => serve_connection(stream, site).await,
                Transport::Tls(config_at_start) => {
                    let config = site.inspector.shared.settings().tls.as_ref().map_or_else(
                        || Arc::clone(config_at_start),
                        |tls| Arc::clone(&tls.monitoring_config),
                    );
                    match accept_tls(stream, config).await {
                        Ok(stream) => serve_connection(stream, site).await,
                        Err(reason) => crate::log_error!(
                            "monitoring: TLS handshake error from {peer}: {reason}"
                        ),
                    }
                }
            }
        });
    }
}

/// Serves HTTP/1 requests on one connection (plain or TLS) until it ends.
async fn serve_connection<S>(stream: S, site: Arc<Site>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let site = Arc::clone(&site);
        async move { Ok::<_, Infallible>(respond(site, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    if let Err(err) = connection.await {
        crate::log_debug!("monitoring: connection ended: {err}");
    }
}

/// Go's `tlsRecordHeaderLooksLikeHTTP`: the first five bytes of the methods it recognizes.
fn looks_like_http(header: &[u8; TLS_RECORD_HEADER_BYTES]) -> bool {
    matches!(header, b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
}

/// The TLS handshake of a monitoring connection, within [`HEADER_READ_TIMEOUT`]. The first
/// record's header is read here so that what is not TLS is refused as Go refuses it; the
/// error is the reason nats-server logs (Go's texts where it has one, rustls's otherwise).
async fn accept_tls(
    mut stream: TcpStream,
    config: Arc<ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<Replayed>, String> {
    let handshake = async {
        let mut first = Vec::with_capacity(FIRST_READ_BYTES_MAX);
        while first.len() < TLS_RECORD_HEADER_BYTES {
            match stream.read_buf(&mut first).await {
                Ok(0) if first.is_empty() => return Err("EOF".to_string()),
                Ok(0) => return Err("unexpected EOF".to_string()),
                Ok(_) => {}
                Err(err) => return Err(err.to_string()),
            }
        }
        debug_assert!(first.len() <= FIRST_READ_BYTES_MAX);
        let header: &[u8; TLS_RECORD_HEADER_BYTES] = first[..TLS_RECORD_HEADER_BYTES]
            .try_into()
            .expect("the loop above read a whole header");
        if !TLS_RECORD_TYPES_FIRST.contains(&header[0]) {
            if looks_like_http(header) {
                // Best effort, as Go's: the connection is closed either way.
                let _ = stream.write_all(PLAIN_HTTP_ON_HTTPS_RESPONSE).await;
                let _ = stream.shutdown().await;
                return Err("client sent an HTTP request to an HTTPS server".to_string());
            }
            return Err("tls: first record does not look like a TLS handshake".to_string());
        }
        let replayed = Replayed {
            first,
            first_taken: 0,
            stream,
        };
        tokio_rustls::TlsAcceptor::from(config)
            .accept(replayed)
            .await
            .map_err(|err| err.to_string())
    };
    tokio::time::timeout(HEADER_READ_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| Err("i/o timeout".to_string()))
}

/// A connection whose first bytes were read to look at its first record header, handed to
/// rustls as if unread: those bytes come first, then the stream's.
struct Replayed {
    first: Vec<u8>,
    /// How many of `first` were read already; `first.len()`: all, exactly when reads go to
    /// `stream`.
    first_taken: usize,
    stream: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        debug_assert!(this.first_taken <= this.first.len());
        if this.first_taken < this.first.len() {
            let rest = &this.first[this.first_taken..];
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..count]);
            this.first_taken += count;
            if this.first_taken == this.first.len() {
                // Replayed: its memory is not kept for the connection's life.
                this.first = Vec::new();
                this.first_taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
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

    /// A request nats-server refuses: status 400 with its text (Go sniffs it as text).
    fn refused(refused: Refused) -> Reply {
        Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            body: refused.0.into_bytes(),
        }
    }

    /// Go's `http.NotFound`.
    fn not_found() -> Reply {
        Reply {
            status: StatusCode::NOT_FOUND,
            content_type: TEXT,
            body: b"404 page not found\n".to_vec(),
        }
    }
}

async fn respond(site: Arc<Site>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let query = Query::parse(request.uri().query());
    let reply = tokio::task::spawn_blocking(move || site.handle(&path, &query))
        .await
        .unwrap_or_else(|_| Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            content_type: TEXT,
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

impl Site {
    /// Routes `path` as nats-server's mux does: each endpoint at exactly its path under the
    /// base path, the index at exactly the base path, anything else not found.
    fn handle(&self, path: &str, query: &Query) -> Reply {
        let endpoint = if path == self.base_path {
            ROOT
        } else {
            let Some(endpoint) = ENDPOINTS
                .into_iter()
                .find(|endpoint| joined(&self.base_path, endpoint) == path)
            else {
                return Reply::not_found();
            };
            endpoint
        };
        // `/subscriptionsz` counts as `/subsz`, as in nats-server.
        self.inspector.count_request(if endpoint == SUBSCRIPTIONSZ {
            SUBSZ
        } else {
            endpoint
        });
        self.answer(endpoint, query).unwrap_or_else(Reply::refused)
    }

    fn answer(&self, endpoint: &str, query: &Query) -> Result<Reply, Refused> {
        let inspector = &self.inspector;
        Ok(match endpoint {
            ROOT => self.index(),
            VARZ => Reply::json(&inspector.varz()),
            CONNZ => Reply::json(&inspector.connz(&connz::ConnzQuery::parse(query)?)),
            ROUTEZ => Reply::json(&inspector.routez(routez::RoutezOptions::parse(query)?)),
            GATEWAYZ => Reply::json(&inspector.gatewayz()),
            LEAFZ => Reply::json(&inspector.leafz()),
            SUBSZ | SUBSCRIPTIONSZ => {
                Reply::json(&inspector.subsz(&subsz::SubszQuery::parse(query)?))
            }
            ACCOUNTZ => Reply::json(&inspector.accountz(Some(query.get("acc")))?),
            ACCSTATZ => Reply::json(&inspector.accstatz(query.bool("unused")?, &[])),
            HEALTHZ => {
                for flag in [
                    "js-enabled",
                    "js-enabled-only",
                    "js-server-only",
                    "js-meta-only",
                ] {
                    query.bool(flag)?;
                }
                let health = inspector.healthz(
                    query.get("account"),
                    query.get("stream"),
                    query.get("consumer"),
                    query.bool("details")?,
                );
                Reply {
                    status: StatusCode::from_u16(health.status_code).unwrap_or(StatusCode::OK),
                    content_type: JSON,
                    // json.Marshal: compact, unlike the other endpoints.
                    body: serde_json::to_vec(&health.body).unwrap_or_default(),
                }
            }
            METRICS => Reply {
                status: StatusCode::OK,
                content_type: super::metrics::CONTENT_TYPE,
                body: inspector.metrics().into_bytes(),
            },
            _ => Reply::not_found(),
        })
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
