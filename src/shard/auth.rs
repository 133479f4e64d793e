//! A client's authentication on its shard, as nats-server does it: INFO says `auth_required`
//! (and carries a nonce when nkey users are configured); until a CONNECT proves an identity
//! the client may send nothing else (`-ERR 'Authorization Violation'` and a close, unless
//! `no_auth_user` takes it as that user); a failed CONNECT gets the same; no CONNECT within
//! `authorization { timeout }` gets `-ERR 'Authentication Timeout'` and a close. A bcrypt
//! check runs on the verifier thread: the connection's reading is paused meanwhile and the
//! answer arrives as `Control::Verified`, so the shard's other clients never wait for it.
//! A reload checks every connection again against the new identities.
//!
//! The connection's identity is its account and its permissions: set here, read by the
//! protocol handlers (`client.rs`) and delivery.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::conn::{ConnState, PauseCause};
use super::core::Core;
use crate::auth::authenticate::{Identity, Verdict};
use crate::auth::permissions::ConnectionPermissions;
use crate::proto::json::{ConnectOptions, Info};
use crate::proto::{Flow, Handler, Message, Op, Parser, ServerError};

/// The reader's handler for a connection that has not authenticated yet: a CONNECT is handled,
/// anything else first needs `no_auth_user` (else it is an authorization violation). Used for
/// the received buffers before authentication only, so the hot path never checks.
struct BeforeAuth<'s> {
    shard: &'s mut Core,
    slot: u32,
}

impl BeforeAuth<'_> {
    fn flow(&self) -> Flow {
        match self.shard.conns.get(self.slot) {
            Some(conn) if conn.is_open() && conn.paused.is_none() => Flow::Continue,
            Some(conn) if conn.is_open() => Flow::Pause,
            _ => Flow::Stop,
        }
    }

    /// Whether an operation other than CONNECT may go on: the connection has an identity,
    /// or gets `no_auth_user`'s now. Otherwise it is closed for an authorization violation.
    fn admitted(&mut self) -> bool {
        let shard = &mut *self.shard;
        if shard.conns[self.slot].identity.is_some() {
            return true;
        }
        // nats-server runs the CONNECT check with no credentials; a bcrypt no_auth_user then
        // compares its hash with itself, which never matches.
        match shard.settings.auth.no_auth_user_verdict() {
            Some(Verdict::Granted(identity)) => {
                shard.conns[self.slot].connected = true;
                shard.set_identity(self.slot, identity);
                true
            }
            _ => {
                shard.auth_violation(self.slot);
                false
            }
        }
    }
}

impl Handler for BeforeAuth<'_> {
    fn publish(&mut self, message: Message<'_>, _: usize, _: &mut Parser) -> Flow {
        if self.admitted() {
            if crate::log::enabled_trace() {
                self.shard.trace_op(self.slot, &Op::Pub(message));
            }
            self.shard.on_pub(self.slot, message);
        }
        self.flow()
    }

    fn op(&mut self, op: Op<'_>, _: usize, parser: &mut Parser) -> Flow {
        if matches!(op, Op::Connect { .. }) || self.admitted() {
            self.shard.handle_op(self.slot, op, parser);
        }
        self.flow()
    }
}

impl Core {
    /// Bytes from a connection that has not authenticated yet (see `BeforeAuth`); what
    /// `on_client_input` returns.
    pub(super) fn on_input_before_auth(&mut self, slot: u32, input: &[u8]) -> usize {
        let mut reader = std::mem::take(&mut self.conns[slot].reader);
        let fed = reader.feed(input, &mut BeforeAuth { shard: self, slot });
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.reader = reader;
        }
        self.after_feed(slot, fed)
    }

    /// What a new client connection needs for authentication: none (it is anonymous in the
    /// global account), or a deadline, and a nonce in its INFO when nkeys are configured.
    pub(super) fn prepare_auth(&mut self, slot: u32, info: &mut Info) {
        let auth = &self.settings.auth;
        if !auth.required() {
            self.conns[slot].identity = Some(Identity::anonymous());
            self.join_account(slot, crate::account::AccountId::GLOBAL);
            return;
        }
        info.auth_required = auth.info_says_required();
        let deadline_ms = self.now_ms + auth.timeout().as_millis() as u64;
        let nonce = auth
            .needs_nonce()
            .then(crate::auth::authenticate::new_nonce);
        info.nonce = nonce.clone();
        let conn = &mut self.conns[slot];
        conn.auth_deadline_ms = Some(deadline_ms);
        conn.nonce = nonce.map(String::into_boxed_str);
    }

    /// A CONNECT, decoded onto the connection's earlier options: its credentials decide who
    /// the connection is, then nats-server's remaining checks, then it takes effect.
    pub(super) fn authenticate_connect(
        &mut self,
        slot: u32,
        options: ConnectOptions,
        parser: &mut Parser,
    ) {
        // A second CONNECT authenticates again and may move the client to another account:
        // nats-server drops its subscriptions first.
        if self.conns[slot].connected {
            self.remove_all_subs(slot);
        }
        let nonce = self.conns[slot]
            .nonce
            .as_deref()
            .unwrap_or_default()
            .as_bytes();
        let peer = &self.conns[slot].peer;
        match self.settings.auth.check(&options, nonce, peer) {
            Verdict::Granted(identity) => self.finish_connect(slot, options, identity, parser),
            Verdict::Denied(reason) => {
                self.conns[slot].options = options;
                if crate::log::enabled_debug() {
                    let conn = &self.conns[slot];
                    crate::log_debug!("{} - cid:{} - {reason}", conn.peer, conn.client_id);
                }
                self.auth_violation(slot);
            }
            Verdict::Bcrypt {
                hash,
                candidate,
                identity,
            } => {
                let conn = &mut self.conns[slot];
                conn.verifying = Some(Box::new(options));
                let generation = conn.generation;
                // Paused, not through `pause`: this is no back-pressure, and it ends only with
                // the answer.
                conn.paused = Some(PauseCause::Verifying);
                self.pauses.add(slot);
                self.conns.cancel_recv(slot);
                self.verify_off_shard(slot, generation, hash, candidate, identity, false);
            }
        }
    }

    /// Has the verifier check `candidate` against the bcrypt `hash`; the answer comes back as
    /// `Control::Verified` for the connection in `slot` (if still that `generation`).
    fn verify_off_shard(
        &self,
        slot: u32,
        generation: u32,
        hash: String,
        candidate: String,
        identity: Arc<Identity>,
        reload: bool,
    ) {
        let shared = Arc::clone(&self.shared);
        let shard = self.index.index();
        self.shared
            .verifier
            .bcrypt(hash, candidate, move |matches| {
                shared.mailboxes[shard].send(super::control::Control::Verified {
                    slot,
                    generation,
                    identity: matches.then_some(identity),
                    reload,
                });
            });
    }

    /// The verifier's answer for the CONNECT waiting in `slot` (if that connection is still
    /// the one that asked): it takes effect, or it is an authorization violation. Its reading
    /// resumes at the next `resume_paused`. For a reload's check (`reload`), the connection
    /// keeps its identity's new form or is closed.
    pub(super) fn on_verified(
        &mut self,
        slot: u32,
        generation: u32,
        identity: Option<Arc<Identity>>,
        reload: bool,
    ) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.generation != generation || !conn.is_open() {
            return;
        }
        if reload {
            match identity {
                Some(identity) => self.keep_identity(slot, identity),
                None => self.auth_violation(slot),
            }
            return;
        }
        if conn.paused != Some(PauseCause::Verifying) {
            return;
        }
        conn.paused = None;
        let Some(options) = conn.verifying.take() else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        match identity {
            Some(identity) => {
                // The parser is in its place (no input is being handled): CONNECT's header
                // choice goes there.
                let mut reader = std::mem::take(&mut conn.reader);
                self.finish_connect(slot, *options, identity, &mut reader.parser);
                if let Some(conn) = self.conns.get_mut(slot) {
                    conn.reader = reader;
                }
            }
            None => {
                conn.options = *options;
                self.auth_violation(slot);
            }
        }
    }

    /// A CONNECT whose credentials proved `identity`: nats-server's remaining checks (an
    /// `account` field, the protocol, no_responders without headers), then the options and
    /// the identity take effect, and `+OK` if verbose.
    fn finish_connect(
        &mut self,
        slot: u32,
        options: ConnectOptions,
        identity: Arc<Identity>,
        parser: &mut Parser,
    ) {
        if options.account.is_some() || options.new_account == Some(true) {
            self.conns[slot].options = options;
            return self.auth_violation(slot);
        }
        if let Err(err) = options.check() {
            return self.protocol_error(slot, &err);
        }
        // The payload limit: the server's, or the account's or the user's if smaller.
        let account_max = self.settings.limits[identity.account.index()].max_payload;
        parser.max_payload = [account_max, identity.max_payload]
            .into_iter()
            .filter(|&limit| limit >= 0)
            .fold(self.settings.options.max_payload, |max, limit| {
                max.min(u32::try_from(limit).unwrap_or(u32::MAX))
            });
        let headers_allowed = !self.settings.options.no_header_support;
        let conn = &mut self.conns[slot];
        parser.headers = options.headers && headers_allowed;
        conn.options = options;
        conn.options.headers = parser.headers;
        conn.connected = true;
        self.set_identity(slot, identity);
        self.reply_ok(slot);
    }

    /// The connection in `slot` is `identity` from now on: its account, its permissions, its
    /// limits (the smallest of the server's, the account's and the user's) and when its
    /// authentication expires. Refused (`-ERR 'maximum account active connections
    /// exceeded'` and a close) when the account is at its connection limit.
    pub(super) fn set_identity(&mut self, slot: u32, identity: Arc<Identity>) {
        let account = identity.account;
        if self.conns[slot].joined != Some(account) {
            self.leave_account(slot);
            if !self.join_account(slot, account) {
                return self.send_error_and_drain(slot, &ServerError::MaxAccountConnections);
            }
        }
        let limits = self.settings.limits[account.index()];
        let server_max_subscriptions = i64::from(self.settings.options.max_subscriptions);
        let max_subscriptions = [
            server_max_subscriptions,
            limits.max_subscriptions,
            identity.max_subscriptions,
        ]
        .into_iter()
        .filter(|&limit| limit > 0)
        .min()
        .unwrap_or(0);
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        conn.auth_deadline_ms = None;
        conn.account = account;
        conn.max_subscriptions = u32::try_from(max_subscriptions).unwrap_or(u32::MAX);
        conn.expires_ms = identity
            .disconnect_after
            .map(|after| now_ms + after.as_millis() as u64);
        conn.permissions = identity
            .permissions
            .as_ref()
            .map(|rules| Box::new(ConnectionPermissions::new(Arc::clone(rules))));
        conn.identity = Some(identity);
    }

    /// Counts the connection in `slot` in `account`, unless the account is at its connection
    /// limit (false then).
    pub(super) fn join_account(&mut self, slot: u32, account: crate::account::AccountId) -> bool {
        let limit = self.settings.limits[account.index()].max_connections;
        let counter = &self.accounts[account.index()].account.connections;
        let joined = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (limit < 0 || i64::from(open) < limit).then_some(open + 1)
            })
            .is_ok();
        if joined {
            self.conns[slot].joined = Some(account);
        }
        joined
    }

    /// Takes the connection in `slot` out of its account's count.
    pub(super) fn leave_account(&mut self, slot: u32) {
        if let Some(account) = self.conns[slot].joined.take() {
            self.accounts[account.index()]
                .account
                .connections
                .fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// `-ERR 'Authorization Violation'` and a close, logged as nats-server logs it
    /// (`authentication error - User "x"`).
    pub(super) fn auth_violation(&mut self, slot: u32) {
        let conn = &self.conns[slot];
        if conn.state != ConnState::Open {
            return;
        }
        let user = auth_user(&conn.options);
        match user {
            Some(user) => crate::log_error!(
                "{} - cid:{} - authentication error - {user}",
                conn.peer,
                conn.client_id
            ),
            None => crate::log_error!(
                "{} - cid:{} - authentication error",
                conn.peer,
                conn.client_id
            ),
        }
        self.send_error_and_drain(slot, &ServerError::AuthorizationViolation);
    }

    /// On the timer tick: connections that did not authenticate in time, and those whose
    /// authentication expired.
    pub(super) fn check_auth_deadlines(&mut self) {
        let now_ms = self.now_ms;
        let expired: Vec<u32> = self
            .conns
            .slots
            .iter()
            .filter(|(_, conn)| conn.is_open() && conn.expires_ms.is_some_and(|at| now_ms >= at))
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in expired {
            let conn = &mut self.conns[slot];
            conn.expires_ms = None;
            crate::log_debug!(
                "{} - cid:{} - User Authentication Expired",
                conn.peer,
                conn.client_id
            );
            self.send_error_and_drain(slot, &ServerError::UserAuthenticationExpired);
        }
        let late: Vec<u32> = self
            .conns
            .slots
            .iter()
            .filter(|(_, conn)| {
                conn.is_open()
                    && conn
                        .auth_deadline_ms
                        .is_some_and(|deadline| now_ms >= deadline)
            })
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in late {
            let conn = &mut self.conns[slot];
            conn.auth_deadline_ms = None;
            crate::log_debug!(
                "{} - cid:{} - Authentication Timeout",
                conn.peer,
                conn.client_id
            );
            self.send_error_and_drain(slot, &ServerError::AuthenticationTimeout);
        }
    }

    /// After a reload: every authenticated connection is checked again with the credentials
    /// of its CONNECT against the new identities, as nats-server does. One no longer
    /// authorized gets an authorization violation; one still authorized takes its new
    /// permissions (and account); a bcrypt secret the connection already proved is not
    /// checked again while the configured hash is unchanged.
    pub(super) fn reauthenticate_all(&mut self) {
        let slots: Vec<u32> = self
            .conns
            .slots
            .iter()
            .filter(|(_, conn)| conn.is_open() && conn.identity.is_some())
            .map(|(slot, _)| slot as u32)
            .collect();
        let required = self.settings.auth.required();
        for slot in slots {
            let conn = &self.conns[slot];
            if !conn.connected {
                // Anonymous and not yet CONNECTed: a CONNECT will decide, within the timeout.
                if required {
                    self.conns[slot].identity = None;
                    self.conns[slot].auth_deadline_ms =
                        Some(self.now_ms + self.settings.auth.timeout().as_millis() as u64);
                }
                continue;
            }
            let nonce = conn.nonce.as_deref().unwrap_or_default().as_bytes();
            let previous = conn
                .identity
                .as_ref()
                .map(|identity| identity.secret.as_str());
            match self.settings.auth.check(&conn.options, nonce, &conn.peer) {
                Verdict::Granted(identity) => self.keep_identity(slot, identity),
                Verdict::Bcrypt { hash, identity, .. } if previous == Some(hash.as_str()) => {
                    self.keep_identity(slot, identity)
                }
                Verdict::Bcrypt {
                    hash,
                    candidate,
                    identity,
                } => {
                    let generation = conn.generation;
                    self.verify_off_shard(slot, generation, hash, candidate, identity, true);
                }
                Verdict::Denied(_) => self.auth_violation(slot),
            }
        }
    }

    /// A connection still authorized after a reload takes its identity's new form: new
    /// permissions, and if its user moved to another account, that account (its
    /// subscriptions, made in the old one, are dropped, as a second CONNECT drops them).
    fn keep_identity(&mut self, slot: u32, identity: Arc<Identity>) {
        if identity.account != self.conns[slot].account {
            self.remove_all_subs(slot);
        }
        self.set_identity(slot, identity);
    }
}

/// How nats-server's logs name a client's credentials (`getAuthUser`), when it gave any.
fn auth_user(options: &ConnectOptions) -> Option<String> {
    let given =
        |field: &Option<String>| field.as_deref().filter(|value| !value.is_empty()).is_some();
    let quote = crate::config::go::quote;
    if given(&options.nkey) {
        Some(format!(
            "Nkey {}",
            quote(options.nkey.as_deref().unwrap_or_default())
        ))
    } else if given(&options.user) {
        Some(format!(
            "User {}",
            quote(options.user.as_deref().unwrap_or_default())
        ))
    } else if given(&options.jwt) {
        Some("JWT User".to_string())
    } else if given(&options.auth_token) {
        Some(format!("Token {}", quote("[REDACTED]")))
    } else {
        None
    }
}
