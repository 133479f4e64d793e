//! What a shard does for lame duck mode and for a lowered `max_connections`, when told
//! (`Control::LameDuck`, `Control::CloseClients`): the schedule of the closes is the server's
//! (`crate::lame_duck`, one for all shards, spaced as nats-server spaces them); a shard only
//! stops accepting, tells its clients, and closes as many of them as it is asked, at once.
//!
//! Must not: decide when to close, or hold any other shard's state.

use super::conn::{ConnKind, ConnState};
use super::control::CloseCause;
use super::core::Core;
use crate::proto::json::write_info;
use crate::proto::{CloseReason, ServerError};

impl Core {
    /// Client connections open (not closing or draining).
    pub(super) fn open_clients(&self) -> impl Iterator<Item = u32> + '_ {
        self.conns
            .slots
            .iter()
            .filter(|(_, conn)| conn.kind == ConnKind::Client && conn.state == ConnState::Open)
            .map(|(slot, _)| slot as u32)
    }

    /// Lame duck mode begins (the loop has stopped accepting clients): every client that can
    /// hear it gets an INFO with `"ldm":true` (protocol 1 clients past their first PING, as
    /// nats-server's `sendAsyncInfoToClients`), listing `urls` when given (in a cluster: the
    /// other servers' client URLs, as nats-server's `sendLDMToClients`). Returns how many
    /// clients are open.
    pub(super) fn begin_lame_duck(&mut self, urls: Option<std::sync::Arc<[String]>>) -> usize {
        if urls.is_some() {
            self.client_urls = urls;
        }
        let clients: Vec<u32> = self.open_clients().collect();
        for &slot in &clients {
            let conn = &self.conns[slot];
            if conn.options.protocol >= 1 && conn.sent_connect_info {
                let mut info = self.client_info(slot);
                info.ldm = true;
                self.conns[slot]
                    .out
                    .append_with(|out| write_info(out, &info));
                self.mark_dirty(slot);
            }
        }
        clients.len()
    }

    /// Closes up to `count` open clients for `cause`, each after what it has pending is sent
    /// (lame duck: nats-server's `closeConnection(ServerShutdown)` flushes; a lowered
    /// `max_connections`: its `-ERR 'maximum connections exceeded'` first). Returns how many
    /// it closed and how many stay open.
    pub(super) fn close_clients(&mut self, count: usize, cause: CloseCause) -> (usize, usize) {
        let chosen: Vec<u32> = self.open_clients().take(count).collect();
        for &slot in &chosen {
            match cause {
                CloseCause::LameDuck => self.drain_and_close(slot, CloseReason::ServerShutdown),
                CloseCause::MaxConnections => {
                    self.send_error_and_drain(slot, &ServerError::MaxConnections)
                }
            }
        }
        (chosen.len(), self.open_clients().count())
    }
}
