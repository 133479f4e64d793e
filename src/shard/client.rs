//! What a shard does with the bytes a client sent: parse in place (carrying only a trailing
//! partial operation), and act on each client operation (CONNECT, SUB, UNSUB, PING, PONG; a
//! PUB goes to `deliver`). The client protocol's session: nothing here knows other shards.

use super::conn::{AuthState, ConnKind, Subscription, Transport};
use super::core::Core;
use crate::limits;
use crate::proto::json::{parse_connect_onto, write_info};
use crate::proto::writer::{write_err, write_err_text, OK, PONG};
use crate::proto::{Fed, Flow, Handler, Message, Op, Parser, ServerError};
use crate::sublist::SubHandle;

/// The reader's handler for one client connection's input.
struct ClientInput<'s> {
    shard: &'s mut Core,
    slot: u32,
}

impl ClientInput<'_> {
    /// Whether the reader goes on after an operation.
    #[inline(always)]
    fn flow(&self) -> Flow {
        match self.shard.conns.get(self.slot) {
            Some(conn) if conn.is_open() && conn.paused.is_none() => Flow::Continue,
            // The last op paused the connection: the rest waits, unparsed, so a paused
            // publisher routes nothing more until it resumes. The caller keeps it.
            Some(conn) if conn.is_open() => Flow::Pause,
            _ => Flow::Stop,
        }
    }
}

impl Handler for ClientInput<'_> {
    /// The hot path: inlined into the reader's loop.
    #[inline(always)]
    fn publish(&mut self, message: Message<'_>, _: usize, _: &mut Parser) -> Flow {
        if crate::log::enabled_trace() {
            self.shard.trace_op(self.slot, &Op::Pub(message));
        }
        self.shard.on_pub(self.slot, message);
        self.flow()
    }

    fn op(&mut self, op: Op<'_>, _: usize, parser: &mut Parser) -> Flow {
        self.shard.handle_op(self.slot, op, parser);
        self.flow()
    }
}

impl Core {
    /// Handles bytes received on `slot` (which is open): the connection's `Reader` parses them
    /// (in place, carrying only a trailing partial operation) and each operation is handled
    /// here. Returns how many bytes at the end of `input` were left unparsed because an
    /// operation paused the connection: the caller keeps them (in `Conn::held`) for when it
    /// resumes.
    pub(super) fn on_client_input(&mut self, slot: u32, input: &[u8]) -> usize {
        if !matches!(self.conns[slot].auth, AuthState::Authenticated(_)) {
            return self.on_input_before_auth(slot, input);
        }
        // The reader is taken out while its operations are handled (they need the shard).
        let mut reader = std::mem::take(&mut self.conns[slot].reader);
        let fed = reader.feed(input, &mut ClientInput { shard: self, slot });
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.reader = reader;
        }
        self.after_feed(slot, fed)
    }

    /// What a feed's outcome leaves for the caller: the bytes left unparsed by a pause; a
    /// protocol error is answered here.
    pub(super) fn after_feed(&mut self, slot: u32, fed: Fed) -> usize {
        match fed {
            Fed::Paused { left } => left,
            Fed::Error(err) => {
                self.protocol_error(slot, &err);
                0
            }
            Fed::Done | Fed::Stopped => 0,
        }
    }

    /// A client connection just opened in `slot` (`open` client connections now, server-wide):
    /// its INFO, then reading, unless it is over `max_connections`.
    pub(super) fn start_client(&mut self, slot: u32, open: u32) {
        if let Transport::Tls(session) = &self.conns[slot].transport {
            if session.info_after_handshake {
                // `handshake_first`: INFO when the handshake ends (`Core::tls_established`).
                self.conns.want_recv(slot);
                return;
            }
        }
        self.greet_client(slot, open, false);
    }

    /// Sends INFO and starts authentication; `open` is the server's client count with this
    /// one. `tls_first`: the handshake came first, so INFO says TLS is required (nats-server
    /// says so even with `allow_non_tls` then).
    pub(super) fn greet_client(&mut self, slot: u32, open: u32, tls_first: bool) {
        // INFO first, always (nats-server sends it before checking max_connections).
        let mut info = self.client_info(slot);
        if tls_first {
            info.tls_required = true;
            info.tls_available = false;
        }
        self.prepare_auth(slot, &mut info);
        self.conns[slot]
            .out
            .append_with(|out| crate::proto::json::write_info(out, &info));
        self.mark_dirty(slot);
        if crate::log::enabled_debug() {
            crate::log_debug!(
                "{} - cid:{} - Client connection created",
                self.conns[slot].peer,
                self.conns[slot].client_id
            );
        }

        if open > self.settings.options.max_connections {
            self.send_error_and_drain(slot, &ServerError::MaxConnections);
            return;
        }
        self.conns.want_recv(slot);
    }

    /// Sends the error's `-ERR` (if it has one) and closes when nats-server would.
    pub(super) fn protocol_error(&mut self, slot: u32, err: &ServerError) {
        if err.closes() {
            // Output already queued (and the -ERR, if any) is flushed before the close.
            self.send_error_and_drain(slot, err);
        } else {
            self.conns[slot].out.append_with(|out| write_err(out, err));
            self.mark_dirty(slot);
        }
    }

    /// One client operation; `parser` is the connection's (CONNECT changes it).
    pub(super) fn handle_op(&mut self, slot: u32, op: Op<'_>, parser: &mut Parser) {
        if crate::log::enabled_trace() {
            self.trace_op(slot, &op);
        }
        match op {
            Op::Pub(message) => self.on_pub(slot, message.without_empty_headers()),
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.on_sub(slot, subject, queue, sid),
            Op::Unsub { sid, max } => self.on_unsub(slot, sid, max),
            Op::Ping => self.on_ping(slot),
            Op::Pong => {
                let conn = &mut self.conns[slot];
                conn.pings_outstanding = 0;
                if let Some(sent) = conn.ping_sent.take() {
                    conn.rtt_ns = sent.elapsed().as_nanos().max(1) as u64;
                }
            }
            Op::Connect { json } => self.on_connect(slot, json, parser),
            Op::Ok | Op::Info => {}
        }
    }

    /// `-V`: logs an inbound operation as nats-server traces it (`<<- [PUB foo 2]`, then the
    /// payload as `<<- MSG_PAYLOAD: ["..."]`). Off the hot path unless tracing is on.
    pub(super) fn trace_op(&self, slot: u32, op: &Op<'_>) {
        let conn = &self.conns[slot];
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let with_reply =
            |reply: &Option<&[u8]>| reply.map(|r| format!(" {}", text(r))).unwrap_or_default();
        let (line, payload) = match op {
            Op::Connect { json } => (
                format!("CONNECT {}", crate::proto::json::redact_connect(json)),
                None,
            ),
            Op::Pub(Message {
                subject,
                reply,
                headers: None,
                payload,
            }) => (
                format!(
                    "PUB {}{} {}",
                    text(subject),
                    with_reply(reply),
                    payload.len()
                ),
                Some(*payload),
            ),
            Op::Pub(Message {
                subject,
                reply,
                headers: Some(headers),
                payload,
            }) => (
                format!(
                    "HPUB {}{} {} {}",
                    text(subject),
                    with_reply(reply),
                    headers.len(),
                    headers.len() + payload.len()
                ),
                Some(*payload),
            ),
            Op::Sub {
                subject,
                queue,
                sid,
            } => (
                format!("SUB {}{} {}", text(subject), with_reply(queue), text(sid)),
                None,
            ),
            Op::Unsub { sid, max } => (
                format!(
                    "UNSUB {}{}",
                    text(sid),
                    max.map(|m| format!(" {m}")).unwrap_or_default()
                ),
                None,
            ),
            Op::Ping => ("PING".to_string(), None),
            Op::Pong => ("PONG".to_string(), None),
            Op::Ok => ("+OK".to_string(), None),
            Op::Info => ("INFO".to_string(), None),
        };
        crate::log_trace!("{} - cid:{} - <<- [{}]", conn.peer, conn.client_id, line);
        if let Some(payload) = payload {
            crate::log_trace!(
                "{} - cid:{} - <<- MSG_PAYLOAD: [{:?}]",
                conn.peer,
                conn.client_id,
                text(payload)
            );
        }
    }

    pub(super) fn reply_ok(&mut self, slot: u32) {
        let conn = &mut self.conns[slot];
        if conn.options.verbose {
            conn.out.append(OK);
            self.mark_dirty(slot);
        }
    }

    fn on_connect(&mut self, slot: u32, json: &[u8], parser: &mut Parser) {
        // The system connection is in the system account from the start, with its options
        // (`Core::attach_system`): a CONNECT changes nothing.
        if self.conns[slot].kind == ConnKind::System {
            return;
        }
        // nats-server's estimate of the round trip (`/connz`'s `rtt`) until a server PING
        // measures one: from the INFO, sent at accept, to this CONNECT.
        let conn = &mut self.conns[slot];
        let since_accept = conn.start.elapsed().unwrap_or_default();
        conn.rtt_ns = (since_accept.as_nanos() as u64).max(1);
        // A later CONNECT is applied on top of the earlier one, as nats-server does.
        let options = match parse_connect_onto(json, &self.conns[slot].options) {
            Ok(options) => options,
            Err(err) => return self.protocol_error(slot, &err),
        };
        self.authenticate_connect(slot, options, parser);
    }

    fn on_ping(&mut self, slot: u32) {
        let conn = &mut self.conns[slot];
        conn.out.append(PONG);
        // The first PING after CONNECT from a protocol-1 client also gets the async INFO with
        // connect_info (nats-server does this so clients learn what CONNECT established).
        if conn.connected && !conn.sent_connect_info && conn.options.protocol >= 1 {
            conn.sent_connect_info = true;
            let mut info = self.client_info(slot);
            info.connect_info = true;
            let account = self.conns[slot].account;
            info.remote_account = Some(self.settings.account_name(account).to_string());
            info.acc_is_sys = self.settings.system_account == Some(account);
            // The connection's own payload limit (its account's or user's, if smaller).
            info.max_payload = self.conns[slot].payload_limit_with(&self.settings.options);
            self.conns[slot]
                .out
                .append_with(|out| write_info(out, &info));
        }
        self.mark_dirty(slot);
    }

    /// The INFO this server sends the client in `slot`: the server's, with the client's id and
    /// address.
    pub(super) fn client_info(&self, slot: u32) -> crate::proto::json::Info {
        let conn = &self.conns[slot];
        let mut info = self.settings.info.clone();
        if let Some(urls) = &self.client_urls {
            info.connect_urls = urls.to_vec();
        }
        info.client_id = conn.client_id;
        // `peer` is `<ip>:<port>` (an IPv6 address unbracketed): the IP is before the last ':'.
        info.client_ip = conn
            .peer
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default();
        info
    }

    fn on_sub(&mut self, slot: u32, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        // nats-server's order: permissions (and the reserved queue group) first, then the
        // subject's token limit, then the subscription limit, then the subscription itself.
        let conn = &mut self.conns[slot];
        if !crate::auth::permissions::subscribe_check(
            conn.permissions.as_deref_mut(),
            subject,
            queue,
        ) {
            use crate::auth::permissions::{
                subscription_violation_log_text, subscription_violation_text,
            };
            crate::log_error!(
                "{} - cid:{} - {}",
                conn.peer,
                conn.client_id,
                subscription_violation_log_text(subject, queue, sid)
            );
            let text = subscription_violation_text(subject, queue);
            conn.out.append_with(|out| write_err_text(out, &text));
            return self.mark_dirty(slot);
        }
        let options = &self.settings.options;
        // A duplicate sid at the subscription limit gets the error too.
        let max_tokens = usize::from(options.max_sub_tokens);
        if max_tokens > 0 && memchr::memchr_iter(b'.', subject).count() + 1 > max_tokens {
            let quoted = crate::config::go::quote(&String::from_utf8_lossy(subject));
            crate::log_error!(
                "{} - cid:{} - Subscription Violation Too Many Tokens - Subject {quoted}, SID {}",
                self.conns[slot].peer,
                self.conns[slot].client_id,
                String::from_utf8_lossy(sid)
            );
            let conn = &mut self.conns[slot];
            conn.out.append_with(|out| {
                write_err_text(
                    out,
                    &format!("Permissions Violation for Subscription to {quoted}, too many tokens"),
                )
            });
            return self.mark_dirty(slot);
        }
        let conn = &self.conns[slot];
        // The system connection has no subscription limit (nats-server's internal clients
        // have none): the system service's subscriptions are the server's own.
        let server_max = match conn.kind {
            ConnKind::Client => options.max_subscriptions as usize,
            ConnKind::System | ConnKind::Route => 0,
        };
        let own_max = usize::try_from(conn.subscriptions_limit).ok();
        let subscriptions = conn.subs.len();
        if (server_max > 0 && subscriptions >= server_max)
            || own_max.is_some_and(|max| subscriptions >= max)
        {
            let quiet = self.max_subscriptions_logged_ms.is_some_and(|logged_ms| {
                self.now_ms.saturating_sub(logged_ms) < limits::MAX_SUBSCRIPTIONS_LOG_INTERVAL_MS
            });
            if !quiet {
                self.max_subscriptions_logged_ms = Some(self.now_ms);
                crate::log_error!(
                    "{} - cid:{} - maximum subscriptions exceeded",
                    conn.peer,
                    conn.client_id
                );
            }
            return self.protocol_error(slot, &ServerError::MaxSubscriptions);
        }
        if conn.subs.get(sid, &self.conns.subs).is_some() {
            // A duplicate sid is ignored (nats-server keeps the existing subscription).
            return self.reply_ok(slot);
        }
        let conn_slot = slot;
        let conn_generation = conn.generation;
        let generation = self.conns.take_generation();
        let account = self.conns[slot].account;
        let sub_slot = self.conns.subs.insert(Subscription::new(
            conn_slot,
            conn_generation,
            generation,
            account,
            subject,
            sid,
            queue,
        )) as u32;
        let handle = SubHandle {
            shard: self.index.0,
            slot: sub_slot,
            generation,
        };
        let table = &self.accounts[account.index()].account.sublist;
        if table.insert(subject, queue, handle).is_err() {
            self.conns.subs.remove(sub_slot as usize);
            return self.protocol_error(slot, &ServerError::InvalidSubject);
        }
        let conns = &mut self.conns;
        conns.slots[slot as usize]
            .subs
            .insert(sub_slot, &conns.subs);
        if self.clustered {
            self.local_interest_changed([(account, subject, queue, 1)]);
        }
        self.reply_ok(slot);
    }

    fn on_unsub(&mut self, slot: u32, sid: &[u8], max: Option<u64>) {
        if let Some(sub_slot) = self.conns[slot].subs.get(sid, &self.conns.subs) {
            let sub = &mut self.conns.subs[sub_slot as usize];
            match max {
                Some(max) if max > sub.delivered => sub.max = max,
                _ => self.remove_sub(sub_slot),
            }
        }
        self.reply_ok(slot);
    }

    /// Removes one subscription from the table, the slab and its connection.
    pub(super) fn remove_sub(&mut self, sub_slot: u32) {
        let sub = self.conns.subs.remove(sub_slot as usize);
        let handle = SubHandle {
            shard: self.index.0,
            slot: sub_slot,
            generation: sub.generation,
        };
        let removed = self.accounts[sub.account.index()].account.sublist.remove(
            sub.subject(),
            sub.queue(),
            handle,
        );
        debug_assert!(removed, "a live subscription is in the table");
        if self.clustered {
            self.local_interest_changed([(sub.account, sub.subject(), sub.queue(), -1)]);
        }
        if let Some(conn) = self.conns.get_mut(sub.conn_slot) {
            if conn.generation == sub.conn_generation {
                conn.subs.remove(sub.sid(), sub_slot);
            }
        }
    }

    /// Removes every subscription of a closing connection, under one table write.
    pub(super) fn remove_all_subs(&mut self, slot: u32) {
        let mut sids = std::mem::take(&mut self.conns[slot].subs);
        if sids.is_empty() {
            return;
        }
        let removed: Vec<(u32, Subscription)> = sids
            .drain()
            .map(|sub_slot| (sub_slot, self.conns.subs.remove(sub_slot as usize)))
            .collect();
        let index = self.index.0;
        // A connection's subscriptions are all in its account's table.
        let account = self.conns[slot].account;
        let count = self.accounts[account.index()]
            .account
            .sublist
            .remove_many(removed.iter().map(|(sub_slot, sub)| {
                let handle = SubHandle {
                    shard: index,
                    slot: *sub_slot,
                    generation: sub.generation,
                };
                (sub.subject(), sub.queue(), handle)
            }));
        debug_assert_eq!(
            count,
            removed.len(),
            "every live subscription is in the table"
        );
        if self.clustered {
            self.local_interest_changed(
                removed
                    .iter()
                    .map(|(_, sub)| (account, sub.subject(), sub.queue(), -1)),
            );
        }
    }

    /// In a cluster: local interest changed by these (account, subject, queue, delta); the
    /// routes hear of it through their outboxes (`cluster::Cluster::interest_changed_many`).
    pub(super) fn local_interest_changed<'a>(
        &mut self,
        changes: impl IntoIterator<Item = (crate::account::AccountId, &'a [u8], Option<&'a [u8]>, i32)>,
    ) {
        let Some(cluster) = &self.shared.cluster else {
            return;
        };
        let accounts = &self.accounts;
        let mailboxes = &self.shared.mailboxes;
        let own = self.index.0;
        let announced = cluster.interest_changed_many(
            changes.into_iter().map(|(account, subject, queue, delta)| {
                (
                    accounts[account.index()].account.name.as_str(),
                    subject,
                    queue,
                    delta,
                )
            }),
            &mut |shard| {
                if shard != own {
                    mailboxes[usize::from(shard)].send(super::control::Control::RouteOutbox);
                }
            },
        );
        // This shard's routes get the lines now, ahead of anything a later command of the same
        // input forwards to them: a peer hears of a subscription before a request that names
        // it as its reply, as nats-server queues the RS+ when it handles the SUB. (A route on
        // another shard sends them before its next message: `forward_here`.)
        if announced && !self.route_slots.is_empty() {
            self.drain_route_outboxes();
        }
    }
}
