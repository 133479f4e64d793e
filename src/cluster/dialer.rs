//! The dialer: a thread that opens the routes this node solicits and hands each connected
//! socket to a shard (`Control::AttachRoute`), where the route lives from then on. Explicit
//! routes (`cluster { routes }`, `--routes`) are dialed until connected and again after they
//! close, `ROUTE_RETRY_MS` apart plus jitter, for as long as they are configured; implicit ones
//! (a peer's gossip told of a server this node has no route to) are dialed once, plus
//! `connect_retries` more times, as nats-server does.
//!
//! The dialer never blocks a shard and shards never wait for it: targets share a small state
//! (`DialTarget`) with the connection made for them, which says when it ended and which server
//! it reached (so a route to a server reached another way, a duplicate, is not dialed again
//! while that server is connected).
//!
//! Must not: speak the protocol (the shard does, as for an accepted route).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::shard::Shared;

/// Between two dials of an explicit route (nats-server's `DEFAULT_ROUTE_RECONNECT`, 1 s).
pub const ROUTE_RETRY_MS: u64 = 1000;
/// Jitter added to each retry, up to this (nats-server adds up to 100 ms).
const ROUTE_RETRY_JITTER_MS: u64 = 100;
/// How long one dial may take (nats-server's `DEFAULT_ROUTE_DIAL`, 1 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the dialer looks at its targets when nothing is asked of it.
const TICK: Duration = Duration::from_millis(50);

/// Where a route is dialed, with the credentials its URL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl From<&crate::config::RouteUrl> for RouteUrl {
    /// A configured route (`routes`, `--routes`) as the dialer dials it.
    fn from(route: &crate::config::RouteUrl) -> RouteUrl {
        RouteUrl {
            host: route.host.clone(),
            port: route.port,
            user: route.username.clone(),
            password: route.password.clone(),
        }
    }
}

impl RouteUrl {
    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses `nats-route://user:pass@host:port[/]` (any scheme, or none).
    pub fn parse(text: &str) -> Option<RouteUrl> {
        let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
        let rest = rest.trim_end_matches('/');
        let (credentials, host_port) = match rest.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, rest),
        };
        let (host, port) = host_port.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().ok()?;
        let (user, password) = match credentials {
            Some(credentials) => match credentials.split_once(':') {
                Some((user, password)) => (Some(user.to_string()), Some(password.to_string())),
                None => (Some(credentials.to_string()), None),
            },
            None => (None, None),
        };
        Some(RouteUrl {
            host: host.to_string(),
            port,
            user,
            password,
        })
    }
}

/// One route this node dials, shared with the connection made for it.
#[derive(Debug)]
pub struct DialTarget {
    pub url: RouteUrl,
    /// Learned by gossip, not configured.
    pub implicit: bool,
    /// True while a connection made for it is open.
    pub connected: AtomicBool,
    /// The server its last connection reached (from that server's INFO).
    pub server_id: Mutex<Option<String>>,
}

impl DialTarget {
    /// Its connection ended (closed, or refused as a duplicate).
    pub fn ended(&self) {
        self.connected.store(false, Ordering::Release);
    }

    /// Its connection reached the server `server_id`.
    pub fn reached(&self, server_id: &str) {
        *self
            .server_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(server_id.into());
    }

    fn known_server(&self) -> Option<String> {
        self.server_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the dialer is asked.
pub enum Dial {
    /// Gossip told of the server `server_id` at `url`: dial it if it has no route yet.
    Implicit {
        url: RouteUrl,
        server_id: String,
    },
    /// The configured routes are now these (a reload).
    Configured(Vec<RouteUrl>),
    Stop,
}

/// The way to the dialer thread (a detached one drops everything, for tests).
#[derive(Debug, Clone)]
pub struct DialerHandle {
    sender: Option<Sender<Dial>>,
}

impl DialerHandle {
    pub fn new(sender: Sender<Dial>) -> DialerHandle {
        DialerHandle {
            sender: Some(sender),
        }
    }

    /// A handle that reaches no thread.
    pub fn detached() -> DialerHandle {
        DialerHandle { sender: None }
    }

    pub fn send(&self, dial: Dial) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(dial);
        }
    }
}

/// A target's place in the dialer's schedule.
struct Scheduled {
    target: Arc<DialTarget>,
    /// When it may be dialed next.
    due: Instant,
    /// Dials left for an implicit target (None: unbounded, an explicit one).
    attempts_left: Option<u32>,
}

/// Runs the dialer until `Dial::Stop` (or the sender is gone): dials `configured` and what
/// gossip adds, attaching each connected socket to a shard in turn.
pub fn run(
    shared: Arc<Shared>,
    configured: Vec<RouteUrl>,
    connect_retries: u32,
    dials: Receiver<Dial>,
) {
    let now = Instant::now();
    let mut targets: Vec<Scheduled> = configured
        .into_iter()
        .map(|url| Scheduled {
            target: Arc::new(DialTarget {
                url,
                implicit: false,
                connected: AtomicBool::new(false),
                server_id: Mutex::new(None),
            }),
            due: now,
            attempts_left: None,
        })
        .collect();
    let mut next_shard = 0usize;
    let mut seed = now.elapsed().as_nanos() as u64 ^ std::process::id() as u64 ^ 0x9e37_79b9;
    loop {
        match dials.recv_timeout(TICK) {
            Ok(Dial::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Dial::Implicit { url, server_id }) => {
                let known = targets.iter().any(|scheduled| {
                    scheduled.target.url == url
                        || scheduled.target.known_server().as_deref() == Some(&server_id)
                });
                if !known {
                    targets.push(Scheduled {
                        target: Arc::new(DialTarget {
                            url,
                            implicit: true,
                            connected: AtomicBool::new(false),
                            server_id: Mutex::new(Some(server_id)),
                        }),
                        due: Instant::now(),
                        attempts_left: Some(connect_retries + 1),
                    });
                }
            }
            Ok(Dial::Configured(urls)) => {
                targets.retain(|scheduled| {
                    scheduled.target.implicit || urls.contains(&scheduled.target.url)
                });
                for url in urls {
                    if !targets.iter().any(|scheduled| scheduled.target.url == url) {
                        targets.push(Scheduled {
                            target: Arc::new(DialTarget {
                                url,
                                implicit: false,
                                connected: AtomicBool::new(false),
                                server_id: Mutex::new(None),
                            }),
                            due: Instant::now(),
                            attempts_left: None,
                        });
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if shared.is_stopping() {
            return;
        }
        let Some(cluster) = shared.cluster.as_ref() else {
            return;
        };
        let now = Instant::now();
        for scheduled in &mut targets {
            let target = &scheduled.target;
            if target.connected.load(Ordering::Acquire) || now < scheduled.due {
                continue;
            }
            // Reached another way (the peer dialed us): nothing to do while that lasts.
            if target
                .known_server()
                .is_some_and(|server_id| cluster.is_connected(&server_id))
            {
                scheduled.due = now + Duration::from_millis(ROUTE_RETRY_MS);
                continue;
            }
            if scheduled.attempts_left == Some(0) {
                continue;
            }
            if let Some(left) = &mut scheduled.attempts_left {
                *left -= 1;
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let jitter = seed % ROUTE_RETRY_JITTER_MS;
            scheduled.due = now + Duration::from_millis(ROUTE_RETRY_MS + jitter);
            crate::log_debug!("Trying to connect to route on {}", target.url.address());
            let Some(stream) = dial(&target.url) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            target.connected.store(true, Ordering::Release);
            let shard = next_shard % shared.shard_count;
            next_shard += 1;
            if !shared.attach_route(shard, stream, Arc::clone(target)) {
                target.ended();
            }
        }
        targets.retain(|scheduled| {
            scheduled.attempts_left != Some(0) || scheduled.target.connected.load(Ordering::Acquire)
        });
    }
}

/// Connects to `url` within `DIAL_TIMEOUT`, trying each address it resolves to.
fn dial(url: &RouteUrl) -> Option<TcpStream> {
    let addresses: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .ok()?
        .collect();
    for address in addresses {
        match TcpStream::connect_timeout(&address, DIAL_TIMEOUT) {
            Ok(stream) => return Some(stream),
            Err(err) => crate::log_debug!("Error trying to connect to route ({address}): {err}"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls_parse_as_nats_server_writes_them() {
        assert_eq!(
            RouteUrl::parse("nats-route://ru:rp@127.0.0.1:4245"),
            Some(RouteUrl {
                host: "127.0.0.1".into(),
                port: 4245,
                user: Some("ru".into()),
                password: Some("rp".into()),
            })
        );
        assert_eq!(
            RouteUrl::parse("nats://localhost:6222/"),
            Some(RouteUrl {
                host: "localhost".into(),
                port: 6222,
                user: None,
                password: None,
            })
        );
        assert_eq!(
            RouteUrl::parse("nats://[::1]:6222").unwrap().address(),
            "[::1]:6222"
        );
        assert_eq!(RouteUrl::parse("nats://host"), None);
    }
}
