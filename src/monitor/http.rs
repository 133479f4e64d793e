//! HTTP monitoring (`-m/--http_port`, `http_port`, `http`, `http_base_path`): one thread of its
//! own runs HTTP/1 (hyper, on a current-thread tokio runtime); each request is answered on
//! tokio's blocking pool, where the `Inspector` asks the shards. Paths, status codes, headers
//! and error texts are nats-server 2.15.1's.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use super::inspector::{Inspector, Refused};
use super::query::Query;
use super::{connz, subsz};

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

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A running HTTP monitor: its listener's address and its thread. Dropping it stops it.
pub struct Monitor {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the request handlers share.
struct Site {
    inspector: Arc<Inspector>,
    base_path: String,
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
    pub fn start(inspector: Arc<Inspector>) -> io::Result<Monitor> {
        let settings = inspector.shared.settings();
        let options = &settings.options;
        let host = options.monitoring_host().to_string();
        let port = options.http_port.max(0) as u16;
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
            "Starting http monitor on {}",
            crate::config::go::join_host_port(&host, address.port())
        );
        Ok(Monitor {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the monitor listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
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
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                crate::log_debug!("monitoring: accept failed: {err}");
                // Out of fds and the like: do not spin on it.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let site = Arc::clone(&site);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let site = Arc::clone(&site);
                async move { Ok::<_, Infallible>(respond(site, request).await) }
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
            ROUTEZ => Reply::json(&inspector.routez()),
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
