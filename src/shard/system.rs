//! The system connection (`ConnKind::System`) and what shards tell the system service.
//!
//! The system service (in `monitor`) is nats-server's internal clients of the system account:
//! it answers `$SYS.REQ...` requests and publishes `$SYS.ACCOUNT.<account>.CONNECT` and
//! `DISCONNECT` events. It reaches the subject tables as any client does: through a
//! connection on shard 0, over one end of a Unix socket pair (`Shared::attach_system`,
//! `Control::AttachSystem`), writing `SUB`/`PUB` lines and reading `MSG`/`HMSG` frames. That
//! connection speaks the client protocol through the ordinary session (`client.rs`); what is
//! its own is here: it starts CONNECTed and authenticated in the system account (no INFO, no
//! authentication deadline, no server PINGs), and it is no client for counting (see
//! `ConnKind::System`).
//!
//! The events (`SystemEvent`) go over `Shared::system_events` when it is set: `Connect` when a
//! client's CONNECT took effect (nats-server's `accountConnectEvent`), `Disconnect` when a
//! client announced that way stops being open (its `accountDisconnectEvent`). A client, never
//! the system connection. One event per connection open and close, never per message; a
//! failed send (the service is gone) is ignored.
//!
//! Must not: run per message, or block a shard (the channel is unbounded).

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::conn::{AuthState, ConnKind};
use super::core::Core;
use crate::auth::authenticate::Identity;
use crate::limits;
use crate::proto::json::ConnectOptions;
use crate::proto::CloseReason;
use crate::stats::SystemEvent;

/// The name the system connection's options carry (what a trace or log shows).
pub const SYSTEM_CONNECTION_NAME: &str = "$SYS";

/// The system connection's parser limits: nats-server's internal clients are bound by no
/// protocol limit, and the system services' answers may be larger than a client may publish
/// (a `CONNZ` of thousands of connections) and their `PUB` lines longer than the configured
/// `max_control_line` (a requester's reply subject, itself up to that long).
pub(super) fn system_parser_limits(options: &crate::config::Options) -> (u32, u32) {
    (
        options.max_payload.max(limits::SYSTEM_PAYLOAD_BYTES_MAX),
        options
            .max_control_line
            .saturating_add(limits::SYSTEM_CONTROL_LINE_EXTRA_BYTES)
            .max(limits::CONTROL_LINE_BYTES_MAX_DEFAULT),
    )
}

impl Core {
    /// Opens the system connection on `stream` (`Control::AttachSystem`): in the system
    /// account, reading from this round on. Returns its slot; None, with the stream dropped
    /// (closed), when there is no system account or the shard is full.
    pub(super) fn attach_system(&mut self, stream: UnixStream) -> Option<u32> {
        let Some(account) = self.settings.system_account else {
            crate::log_error!("No system account: the system connection is refused");
            return None;
        };
        if self.conns.len() >= limits::CONNECTIONS_PER_SHARD_MAX {
            crate::log_error!(
                "Shard {} is full: the system connection is refused",
                self.index
            );
            return None;
        }
        let slot = self.insert_conn(
            socket2::Socket::from(stream),
            ConnKind::System,
            String::new(),
        );
        let identity = Arc::new(Identity {
            label: SYSTEM_CONNECTION_NAME.to_string(),
            user: String::new(),
            account,
            permissions: None,
            secret: String::new(),
            disconnect_after: None,
            max_subscriptions: -1,
            max_payload: -1,
            jwt_user: None,
        });
        let account_plain = self.accounts[account.index()].plain;
        let options = &self.settings.options;
        let conn = &mut self.conns[slot];
        conn.options = ConnectOptions {
            verbose: false,
            pedantic: false,
            headers: true,
            echo: true,
            no_responders: false,
            protocol: 1,
            name: SYSTEM_CONNECTION_NAME.to_string(),
            ..ConnectOptions::default()
        };
        conn.reader.parser.headers = true;
        let (max_payload, max_control_line) = system_parser_limits(options);
        conn.reader.parser.max_payload = max_payload;
        conn.reader.parser.max_control_line = max_control_line;
        conn.connected = true;
        // Nothing asks it for an INFO: its first PING gets a PONG alone.
        conn.sent_connect_info = true;
        // Not counted in its account (`join_account`): no connection limit applies to it,
        // and no account or user limit on subscriptions or payloads.
        conn.account = account;
        conn.permissions = None;
        conn.set_publish_path(account_plain);
        conn.auth = AuthState::Authenticated(identity);
        // No server PINGs, so no stale detection.
        conn.next_ping_ms = u64::MAX;
        crate::log_debug!(
            "cid:{} - System connection attached",
            self.conns[slot].client_id
        );
        self.conns.want_recv(slot);
        self.system_slots.push(slot);
        Some(slot)
    }

    /// The system connection in `slot` stops being open, for `reason`: logged as an error
    /// (the system service loses its subscriptions), but for the server's shutdown.
    pub(super) fn system_closed(&mut self, slot: u32, reason: CloseReason) {
        self.system_slots.retain(|&system| system != slot);
        let conn = &self.conns[slot];
        debug_assert_eq!(conn.kind, ConnKind::System);
        let closed = &mut self.system_traffic_closed;
        closed.in_msgs += conn.in_msgs;
        closed.in_bytes += conn.in_bytes;
        closed.out_msgs += conn.out_msgs;
        closed.out_bytes += conn.out_bytes;
        if reason == CloseReason::ServerShutdown {
            crate::log_debug!(
                "cid:{} - System connection closed: {}",
                conn.client_id,
                reason.as_str()
            );
        } else {
            crate::log_error!(
                "cid:{} - System connection closed: {}",
                conn.client_id,
                reason.as_str()
            );
        }
    }

    /// A client's CONNECT took effect (it is authenticated, in its account): the system
    /// service hears of it, when it listens.
    pub(super) fn announce_connect(&mut self, slot: u32) {
        let Some(events) = self.shared.system_events.get() else {
            return;
        };
        debug_assert_eq!(self.conns[slot].kind, ConnKind::Client);
        let info = self.conn_info(slot, 0);
        let sent = events.send(SystemEvent::Connect(info)).is_ok();
        self.conns[slot].announced |= sent;
    }

    /// The client in `slot` stops being open now, for `reason`: if its connect was announced,
    /// the system service hears of its end, with its final counters.
    pub(super) fn announce_disconnect(&mut self, slot: u32, reason: CloseReason) {
        if !self.conns[slot].announced {
            return;
        }
        self.conns[slot].announced = false;
        let Some(events) = self.shared.system_events.get() else {
            return;
        };
        let mut info = self.conn_info(slot, 0);
        info.stop = Some(std::time::SystemTime::now());
        info.reason = Some(reason.as_str());
        let _ = events.send(SystemEvent::Disconnect(info));
    }
}
