//! A client's authentication on its shard, as nats-server does it: INFO says `auth_required`
//! (and carries a nonce when nkey users or operator mode are configured); until a CONNECT
//! proves an identity the client may send nothing else (`-ERR 'Authorization Violation'` and a
//! close, unless `no_auth_user` takes it as that user); a failed CONNECT gets the same; no
//! CONNECT within `authorization { timeout }` gets `-ERR 'Authentication Timeout'` and a
//! close. A bcrypt check runs on the verifier thread: the connection's reading is paused
//! meanwhile and the answer arrives as `Control::Verified`, so the shard's other clients never
//! wait for it. A reload that changes who may connect checks every connection again, as
//! nats-server's does: clients no longer authorized are closed with an authorization
//! violation, those whose user moved to another account are closed, the others take their new
//! permissions and lose the subscriptions those no longer allow.
//!
//! The connection's state is `Conn::auth` (`AuthState`); its identity is its account, its
//! permissions and its limits, set by `set_identity` and read by the protocol handlers
//! (`client.rs`) and delivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::conn::{AuthState, ConnKind, ConnState, PauseCause};
use super::core::Core;
use crate::account::AccountId;
use crate::auth::authenticate::{Identity, Verdict};
use crate::auth::permissions::ConnectionPermissions;
use crate::auth::verifier::Verification;
use crate::proto::json::{ConnectOptions, Info};
use crate::proto::{CloseReason, Flow, Handler, Message, Op, Parser, ServerError};

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
    /// or gets `no_auth_user`'s now. Otherwise it is closed (an authorization violation, or
    /// its account is full).
    fn admitted(&mut self) -> bool {
        let shard = &mut *self.shard;
        if matches!(shard.conns[self.slot].auth, AuthState::Authenticated(_)) {
            return true;
        }
        // nats-server runs the CONNECT check with no credentials; a bcrypt no_auth_user then
        // compares its hash with itself, which never matches.
        let certificate = shard.conns[self.slot].certificate.as_deref();
        match shard.settings.auth.no_auth_user_verdict(certificate) {
            Some(Verdict::Granted(identity)) => {
                shard.conns[self.slot].connected = true;
                let admitted = shard.set_identity(self.slot, identity);
                if admitted {
                    shard.announce_connect(self.slot);
                }
                admitted
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
    /// global account), or a deadline, and a nonce in its INFO when the server asks for
    /// signatures.
    pub(super) fn prepare_auth(&mut self, slot: u32, info: &mut Info) {
        let auth = &self.settings.auth;
        if !auth.required() {
            let identity = Arc::clone(auth.anonymous());
            let joined = self.set_identity(slot, identity);
            debug_assert!(joined, "the global account has no connection limit");
            return;
        }
        info.auth_required = auth.info_says_required();
        let deadline_ms = self.now_ms + auth.timeout().as_millis() as u64;
        let nonce = auth
            .needs_nonce()
            .then(crate::auth::authenticate::new_nonce);
        info.nonce = nonce.clone();
        let conn = &mut self.conns[slot];
        conn.auth = AuthState::Awaiting { deadline_ms };
        conn.nonce = nonce.map(String::into_boxed_str);
    }

    /// A CONNECT, decoded onto the connection's earlier options: its credentials decide who
    /// the connection is, then nats-server's remaining checks, then it takes effect. The
    /// authentication deadline no longer applies once a CONNECT arrived (nats-server clears
    /// its timer then), however long a bcrypt check takes.
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
        let conn = &self.conns[slot];
        let nonce = conn.nonce.as_deref().unwrap_or_default().as_bytes();
        let certificate = conn.certificate.as_deref();
        match self
            .settings
            .auth
            .check(&options, nonce, &conn.peer, certificate)
        {
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
                let check = self.next_auth_check(slot);
                let conn = &mut self.conns[slot];
                conn.auth = AuthState::Verifying {
                    options: Box::new(options),
                };
                // Paused, not through `pause`: this is no back-pressure, and it ends only with
                // the answer (`on_verified` resumes it).
                conn.paused = Some(PauseCause::Verifying);
                self.conns.cancel_recv(slot);
                let verification = Verification::Connect;
                if !self.verify_off_shard(slot, check, hash, candidate, identity, verification) {
                    self.auth_violation(slot);
                }
            }
        }
    }

    /// A new number for a check of the connection in `slot`: an answer to an older one is
    /// then told apart and dropped (a reload or another CONNECT came meanwhile).
    fn next_auth_check(&mut self, slot: u32) -> u32 {
        let conn = &mut self.conns[slot];
        conn.auth_checks = conn.auth_checks.wrapping_add(1);
        conn.auth_checks
    }

    /// Has the verifier check `candidate` against the bcrypt `hash`; the answer comes back as
    /// `Control::Verified` for check number `check` of the connection in `slot`. False when
    /// the verifier is full (the caller refuses the client).
    fn verify_off_shard(
        &mut self,
        slot: u32,
        check: u32,
        hash: String,
        candidate: String,
        identity: Arc<Identity>,
        verification: Verification,
    ) -> bool {
        let cancelled = Arc::new(AtomicBool::new(false));
        let conn = &mut self.conns[slot];
        if let Some(previous) = conn.check_cancel.replace(Arc::clone(&cancelled)) {
            previous.store(true, Ordering::Relaxed);
        }
        let generation = conn.generation;
        let shared = Arc::clone(&self.shared);
        let shard = self.index.index();
        self.shared
            .verifier
            .bcrypt(hash, candidate, cancelled, move |matches| {
                shared.mailboxes[shard].send(super::control::Control::Verified {
                    slot,
                    generation,
                    check,
                    identity: matches.then_some(identity),
                    verification,
                });
            })
    }

    /// The verifier's answer to check `check` of the connection in `slot` (if that is still
    /// the connection and the check it waits for): a CONNECT takes effect or is an
    /// authorization violation, and reading resumes; a reload's check keeps the connection
    /// (with its identity's new form) or closes it.
    pub(super) fn on_verified(
        &mut self,
        slot: u32,
        generation: u32,
        check: u32,
        identity: Option<Arc<Identity>>,
        verification: Verification,
    ) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.generation != generation || conn.auth_checks != check || !conn.is_open() {
            return;
        }
        conn.check_cancel = None;
        if verification == Verification::Reload {
            match identity {
                Some(identity) => self.keep_identity(slot, identity),
                None => self.auth_violation(slot),
            }
            return;
        }
        let AuthState::Verifying { options } =
            std::mem::replace(&mut conn.auth, AuthState::Awaiting { deadline_ms: 0 })
        else {
            return;
        };
        conn.paused = None;
        match identity {
            Some(identity) => self.with_parser(slot, |core, parser| {
                core.finish_connect(slot, *options, identity, parser)
            }),
            None => {
                self.conns[slot].options = *options;
                self.auth_violation(slot);
            }
        }
        // What arrived meanwhile is handled now, then reading goes on.
        if self.conns.get(slot).is_some_and(|conn| conn.is_open()) {
            self.handle_held(slot);
            self.conns.want_recv(slot);
        }
    }

    /// Runs `work` with the parser of `slot`'s connection taken out of it (outside input
    /// handling, where it is in its place), and puts it back.
    fn with_parser(&mut self, slot: u32, work: impl FnOnce(&mut Core, &mut Parser)) {
        let mut reader = std::mem::take(&mut self.conns[slot].reader);
        work(self, &mut reader.parser);
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.reader = reader;
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
        let headers_allowed = !self.settings.options.no_header_support;
        let conn = &mut self.conns[slot];
        parser.headers = options.headers && headers_allowed;
        conn.options = options;
        conn.options.headers = parser.headers;
        conn.connected = true;
        if !self.set_identity(slot, identity) {
            return;
        }
        self.announce_connect(slot);
        parser.max_payload = self.conns[slot].payload_limit_with(&self.settings.options);
        self.reply_ok(slot);
    }

    /// The connection in `slot` is `identity` from now on: its account, its permissions, its
    /// own limits (its account's and its user's; the server's apply on top) and when its
    /// authentication expires; with `verify_and_map`, the user its certificate named stands
    /// as its CONNECT's (nats-server's `c.opts.Username`, which logs, `/connz` and a reload's
    /// check read). False, with the connection closing, when the account is at its
    /// connection limit (`-ERR 'maximum account active connections exceeded'`).
    pub(super) fn set_identity(&mut self, slot: u32, identity: Arc<Identity>) -> bool {
        let account = identity.account;
        if self.conns[slot].joined != Some(account) {
            self.leave_account(slot);
            if !self.join_account(slot, account) {
                crate::log_error!(
                    "{} - cid:{} - maximum account active connections exceeded",
                    self.conns[slot].peer,
                    self.conns[slot].client_id
                );
                self.send_error_and_drain(slot, &ServerError::MaxAccountConnections);
                return false;
            }
        }
        let limits = self.settings.limits[account.index()];
        // A JWT's limits: -1 none, 0 and up taken literally (nats-server's `minLimit`).
        let smallest = |a: i64, b: i64| match (a >= 0, b >= 0) {
            (true, true) => a.min(b),
            (true, false) => a,
            _ => b,
        };
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        if self.settings.auth.maps_certificates() && !identity.user.is_empty() {
            conn.options.user = Some(identity.user.clone());
        }
        conn.account = account;
        conn.subscriptions_limit = smallest(limits.max_subscriptions, identity.max_subscriptions);
        conn.payload_limit = smallest(limits.max_payload, identity.max_payload);
        conn.expires_ms = identity
            .disconnect_after
            .map(|after| now_ms + after.as_millis() as u64);
        conn.permissions = identity
            .permissions
            .as_ref()
            .map(|rules| Box::new(ConnectionPermissions::new(Arc::clone(rules))));
        conn.set_publish_path(self.accounts[account.index()].plain);
        conn.auth = AuthState::Authenticated(identity);
        true
    }

    /// Counts the connection in `slot` in `account`, unless the account is at its connection
    /// limit (false then).
    fn join_account(&mut self, slot: u32, account: AccountId) -> bool {
        let limit = self.settings.limits[account.index()].max_connections;
        let counter = &self.accounts[account.index()].account.connections;
        let joined = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (limit < 0 || i64::from(open) < limit).then_some(open + 1)
            })
            .is_ok();
        if joined {
            self.conns[slot].joined = Some(account);
            self.accounts[account.index()]
                .closed_traffic
                .total_connections += 1;
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
        match auth_user(&conn.options) {
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

    /// After a reload that changed who may connect or what they may do: every connection is
    /// checked again, as nats-server's `reloadAuthorization` does (see the module docs).
    pub(super) fn reauthenticate_all(&mut self) {
        let slots: Vec<u32> = self
            .conns
            .slots
            .iter()
            .filter(|(_, conn)| conn.is_open() && conn.kind == ConnKind::Client)
            .map(|(slot, _)| slot as u32)
            .collect();
        let required = self.settings.auth.required();
        for slot in slots {
            let check = self.next_auth_check(slot);
            let conn = &mut self.conns[slot];
            match std::mem::replace(&mut conn.auth, AuthState::Awaiting { deadline_ms: 0 }) {
                AuthState::Awaiting { deadline_ms } => {
                    conn.auth = AuthState::Awaiting { deadline_ms };
                }
                // The CONNECT waiting for its check is checked again, against the new
                // identities (the older answer will be dropped).
                AuthState::Verifying { options } => {
                    conn.paused = None;
                    self.with_parser(slot, |core, parser| {
                        core.authenticate_connect(slot, *options, parser)
                    });
                    if self.conns[slot].is_open() && self.conns[slot].paused.is_none() {
                        self.handle_held(slot);
                        self.conns.want_recv(slot);
                    }
                }
                AuthState::Authenticated(previous) => {
                    conn.auth = AuthState::Authenticated(Arc::clone(&previous));
                    if !conn.connected {
                        // No CONNECT yet: it was let in without authentication, which is
                        // required now.
                        if required {
                            self.auth_violation(slot);
                        }
                        continue;
                    }
                    let conn = &self.conns[slot];
                    if self
                        .settings
                        .auth
                        .moved_or_gone(&conn.options, conn.account)
                    {
                        self.close(slot, CloseReason::ClientClosed);
                        continue;
                    }
                    let nonce = conn.nonce.as_deref().unwrap_or_default().as_bytes();
                    let certificate = conn.certificate.as_deref();
                    let verdict =
                        self.settings
                            .auth
                            .check(&conn.options, nonce, &conn.peer, certificate);
                    match verdict {
                        Verdict::Granted(identity) => self.keep_identity(slot, identity),
                        Verdict::Bcrypt { hash, identity, .. } if hash == previous.secret => {
                            self.keep_identity(slot, identity)
                        }
                        Verdict::Bcrypt {
                            hash,
                            candidate,
                            identity,
                        } => {
                            let verification = Verification::Reload;
                            if !self.verify_off_shard(
                                slot,
                                check,
                                hash,
                                candidate,
                                identity,
                                verification,
                            ) {
                                self.auth_violation(slot);
                            }
                        }
                        Verdict::Denied(_) => self.auth_violation(slot),
                    }
                }
            }
        }
    }

    /// A connection still authorized after a reload takes its identity's new form. One whose
    /// user moved to another account is closed (it reconnects into the new one), as
    /// nats-server closes it; a subscription its new permissions no longer allow is removed,
    /// with `-ERR 'Permissions Violation for Subscription to "s" (sid "n")'`.
    fn keep_identity(&mut self, slot: u32, identity: Arc<Identity>) {
        if self.conns[slot]
            .joined
            .is_some_and(|joined| joined != identity.account)
        {
            return self.close(slot, CloseReason::ClientClosed);
        }
        if !self.set_identity(slot, identity) {
            return;
        }
        let options = &self.settings.options;
        let conn = &mut self.conns[slot];
        conn.reader.parser.max_payload = conn.payload_limit_with(options);
        if conn.permissions.is_none() {
            return;
        }
        let sub_slots: Vec<u32> = conn.subs.iter().collect();
        let mut refused = Vec::new();
        for sub_slot in sub_slots {
            let sub = &self.conns.subs[sub_slot as usize];
            let permissions = self.conns.slots[slot as usize]
                .permissions
                .as_deref_mut()
                .expect("checked above");
            // Also turns the delivery filter on for a wildcard subscription that overlaps a
            // denied subject, as at SUB.
            if !permissions.subscribe_allowed(sub.subject(), sub.queue()) {
                refused.push(sub_slot);
            }
        }
        for sub_slot in refused {
            let sub = &self.conns.subs[sub_slot as usize];
            let quote = crate::auth::permissions::quote;
            let text = match sub.queue() {
                Some(queue) => format!(
                    "Permissions Violation for Subscription to {} using queue {} (sid {})",
                    quote(sub.subject()),
                    quote(queue),
                    quote(sub.sid())
                ),
                None => format!(
                    "Permissions Violation for Subscription to {} (sid {})",
                    quote(sub.subject()),
                    quote(sub.sid())
                ),
            };
            self.remove_sub(sub_slot);
            self.conns[slot]
                .out
                .append_with(|out| crate::proto::writer::write_err_text(out, &text));
            self.mark_dirty(slot);
        }
    }
}

/// How nats-server's logs name a client's credentials (`getAuthUser`), when it gave any.
fn auth_user(options: &ConnectOptions) -> Option<String> {
    let given = |field: &Option<String>| {
        field
            .as_deref()
            .filter(|value| !value.is_empty())
            .map(crate::config::go::quote)
    };
    if let Some(nkey) = given(&options.nkey) {
        Some(format!("Nkey {nkey}"))
    } else if let Some(user) = given(&options.user) {
        Some(format!("User {user}"))
    } else if options.jwt.as_deref().is_some_and(|jwt| !jwt.is_empty()) {
        Some("JWT User".to_string())
    } else if options.auth_token.as_deref().is_some_and(|t| !t.is_empty()) {
        Some(format!("Token {}", crate::config::go::quote("[REDACTED]")))
    } else {
        None
    }
}
