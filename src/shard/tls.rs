//! TLS between the ring's receive buffers and a connection's session: rustls's unbuffered
//! connection, so that ciphertext is decrypted where the kernel put it and plaintext is
//! encrypted straight into the buffer the send SQE names. No thread, no extra system call.
//! Clients and accepted routes are its server side; a route this server dials is its client
//! side (`TlsSession::solicited_route`, see `route_tls`). Both sides go through the same steps
//! (`step`, `write_step`, `alert_step`, generic over rustls's side), and both take the record
//! layer over once the handshake is done (`tls_records`).
//!
//! Receive (`TlsSession::receive`): once the handshake is done, a provided buffer's records are
//! handed to rustls in place. Only a record cut by the end of a buffer is copied, into `carry`,
//! and completed from the next buffer with just the bytes it lacks; the rest of that buffer is
//! then processed in place again. (rustls 0.23 still moves each decrypted record's plaintext
//! into a `Vec` of its own before handing it out; its own `TODO` is to hand it out in place,
//! and this layout is ready for that.) During the handshake everything goes through `carry`:
//! rustls keeps a handshake message that spans records in the caller's buffer until it is
//! whole, and the handshake is a few kilobytes.
//!
//! Send (`TlsSession::seal`): the handshake records rustls produced (`wire`) go first, then the
//! outbound's plaintext, encrypted in one call into the buffer the send names. Before the
//! handshake ends nothing but INFO is ever written, and that goes in plain text, as
//! nats-server sends it before the handshake.
//!
//! The phases of a connection (`Phase`) are nats-server's (`createClient`): INFO first and
//! then the handshake; with `handshake_first` the handshake first and INFO after it, or, with
//! a fallback delay, INFO first after all when the client says nothing for that long; with
//! `allow_non_tls` INFO first, and the client's first byte tells a handshake from plain text.
//!
//! At the handshake's end (`Core::tls_established`) a client certificate that `pinned_certs`
//! does not list closes the connection, and what an accepted one names is kept on the
//! connection for `verify_and_map` (read once, not per CONNECT). A connection past its
//! handshake that the server closes after draining ends with the TLS close_notify, as Go's
//! `tls.Conn.Close` ends it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};
use rustls::CommonState;

use super::conn::{AuthState, ConnKind, Transport};
use super::core::Core;
use super::tls_records::{Kernel, Records};
use crate::limits;
use crate::proto::CloseReason;
use crate::tls_record::{body_len, HEADER_BYTES, OVERHEAD_BYTES, PLAINTEXT_BYTES_MAX};

/// The first byte of a TLS handshake record: what `allow_non_tls` looks for.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// What the shards need of the client TLS configuration, made once per start or reload
/// (`server.rs`) and shared by every connection it is used for.
#[derive(Debug)]
pub struct ClientTls {
    pub config: Arc<ServerConfig>,
    /// What HTTPS monitoring serves with: `config` without client certificates (see
    /// `crate::tls::ServerTls::monitoring_config`). Here so that a reload's files reach new
    /// monitoring connections too, as nats-server's `getMonitoringTLSConfig` does.
    pub monitoring_config: Arc<ServerConfig>,
    /// When the server's certificate expires (`/varz`'s `tls_cert_not_after`).
    pub cert_not_after: Option<std::time::SystemTime>,
    /// `tls { timeout }`: how long a handshake may take, in ms.
    pub timeout_ms: u64,
    /// `tls { handshake_first }`: the handshake comes before INFO.
    pub handshake_first: bool,
    /// With `handshake_first`: after this long without a byte from the client, INFO goes out
    /// first after all (`handshake_first: "300ms"`, `"auto"`).
    pub first_fallback_ms: Option<u64>,
    /// `allow_non_tls`: plain clients are served too.
    pub allow_non_tls: bool,
    /// `tls { verify }` (or `verify_and_map`): clients must present a certificate that
    /// `config`'s verifier accepts.
    pub verify: bool,
    /// `tls { verify_and_map }`: the client's certificate names its user.
    pub verify_and_map: bool,
    /// `tls { pinned_certs }`: SHA-256 of the SubjectPublicKeyInfo of each client
    /// certificate allowed; empty: any that `config` accepts.
    pub pinned_certs: Vec<[u8; 32]>,
}

/// Where a TLS connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `handshake_first` with a fallback: nothing was sent; a byte from the client before
    /// `until_ms` starts the handshake, silence until then sends INFO first.
    FirstWait {
        until_ms: u64,
    },
    /// `allow_non_tls`: INFO went out; the client's first byte tells a handshake record from
    /// plain text, which it must send by `deadline_ms`.
    Sniffing {
        deadline_ms: u64,
    },
    /// The handshake runs and must end by `deadline_ms` (`tls { timeout }`).
    Handshaking {
        deadline_ms: u64,
    },
    Established,
}

/// What `TlsSession::receive` hands its caller, in order.
pub enum Event<'a> {
    /// The handshake just ended (before any plaintext that came with its last flight): the
    /// connection's state, to read what was negotiated and the peer's certificates.
    Established(&'a CommonState),
    /// Decrypted bytes for the connection's session.
    Plaintext(&'a [u8]),
}

/// What `TlsSession::receive` did besides its events.
#[derive(Debug, Default)]
pub struct Received {
    /// rustls produced bytes to send (handshake records, alerts): the connection has output.
    pub output: bool,
    /// The client sent close_notify: nothing more comes.
    pub peer_closed: bool,
}

/// rustls's unbuffered connection of either side: a client's or an accepted route's
/// (server), or a solicited route's (client). The two differ only in their types; what the
/// session does with them is the same (`step`, `write_step`, `alert_step`, generic over it).
enum Rustls {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl Rustls {
    fn common(&self) -> &CommonState {
        match self {
            Rustls::Server(conn) => conn,
            Rustls::Client(conn) => conn,
        }
    }
}

/// The TLS state of one connection (`Transport::Tls`).
pub struct TlsSession {
    /// rustls's connection, until the handshake is done and the record layer taken over
    /// (`records`); kept for the whole connection when secrets may not be extracted.
    conn: Option<Rustls>,
    /// The record layer once established (`tls_records`): in place both ways.
    records: Option<Box<Records>>,
    /// The configuration lets the record layer be taken over (`enable_secret_extraction`).
    take_over: bool,
    /// What the handshake negotiated (for `/connz`), once established.
    negotiated: Option<crate::stats::TlsInfo>,
    /// The certificates the client sent, leaf first (for `/connz`), once established.
    peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Ciphertext received and not yet consumed by rustls: a record cut by the end of a
    /// receive buffer, or the handshake so far. Empty most of the time once established.
    carry: Vec<u8>,
    /// Bytes rustls produced to send, before anything encrypted after them.
    wire: Vec<u8>,
    pub phase: Phase,
    /// INFO waits for the handshake (`handshake_first`): written when it ends.
    pub info_after_handshake: bool,
    /// rustls failed: nothing more is decrypted or encrypted (an alert may still go out).
    failed: bool,
    /// The server closes the connection and its close_notify alert went out: nothing is
    /// encrypted after it.
    close_notified: bool,
    /// Bytes came from the client.
    started: bool,
    /// The handshake came before INFO (`handshake_first`, not fallen back).
    first: bool,
    /// What is written before the handshake ends goes out in plain text (a client's INFO).
    /// False on routes, whose handshake comes before any protocol byte: nothing written then
    /// reaches the wire (as Go's writes to an unfinished `tls.Conn` do not).
    clear_before_handshake: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("phase", &self.phase)
            .field("carry", &self.carry.len())
            .field("wire", &self.wire.len())
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A session for a client accepted at `now_ms` under `tls`.
    pub fn new(tls: &ClientTls, now_ms: u64) -> Result<TlsSession, rustls::Error> {
        let deadline_ms = now_ms + tls.timeout_ms;
        let phase = match (tls.handshake_first, tls.first_fallback_ms) {
            (true, Some(fallback_ms)) => Phase::FirstWait {
                until_ms: now_ms + fallback_ms,
            },
            (true, None) => Phase::Handshaking { deadline_ms },
            (false, _) if tls.allow_non_tls => Phase::Sniffing { deadline_ms },
            (false, _) => Phase::Handshaking { deadline_ms },
        };
        Ok(TlsSession {
            conn: Some(Rustls::Server(UnbufferedServerConnection::new(
                Arc::clone(&tls.config),
            )?)),
            records: None,
            take_over: tls.config.enable_secret_extraction,
            negotiated: None,
            peer_certificates: Vec::new(),
            carry: Vec::new(),
            wire: Vec::new(),
            phase,
            info_after_handshake: tls.handshake_first,
            failed: false,
            close_notified: false,
            started: false,
            first: tls.handshake_first,
            clear_before_handshake: true,
        })
    }

    /// A session for a route accepted at `now_ms`: this side is the TLS server, and the
    /// handshake comes first (nats-server's `createRoute`: no INFO before it).
    pub fn accepted_route(
        config: &Arc<ServerConfig>,
        timeout_ms: u64,
        now_ms: u64,
    ) -> Result<TlsSession, rustls::Error> {
        let conn = Rustls::Server(UnbufferedServerConnection::new(Arc::clone(config))?);
        Ok(TlsSession::route(
            conn,
            config.enable_secret_extraction,
            timeout_ms,
            now_ms,
        ))
    }

    /// A session for a route this server dialed at `now_ms`: this side is the TLS client,
    /// checking the peer's certificate against `name`. Its ClientHello is ready to send.
    pub fn solicited_route(
        config: &Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        timeout_ms: u64,
        now_ms: u64,
    ) -> Result<TlsSession, rustls::Error> {
        let conn = Rustls::Client(UnbufferedClientConnection::new(Arc::clone(config), name)?);
        let mut session =
            TlsSession::route(conn, config.enable_secret_extraction, timeout_ms, now_ms);
        // The peer's first bytes may be an alert; rustls judges them, not the plain-text test.
        session.started = true;
        let mut received = Received::default();
        session.process(&mut [], &mut |_| {}, &mut received)?;
        Ok(session)
    }

    fn route(conn: Rustls, take_over: bool, timeout_ms: u64, now_ms: u64) -> TlsSession {
        TlsSession {
            conn: Some(conn),
            records: None,
            take_over,
            negotiated: None,
            peer_certificates: Vec::new(),
            carry: Vec::new(),
            wire: Vec::new(),
            phase: Phase::Handshaking {
                deadline_ms: now_ms + timeout_ms,
            },
            info_after_handshake: false,
            failed: false,
            close_notified: false,
            started: false,
            first: false,
            clear_before_handshake: false,
        }
    }

    /// Whether rustls produced bytes that have not been sent yet (a new solicited route's
    /// ClientHello).
    pub fn has_output(&self) -> bool {
        !self.wire.is_empty()
    }

    /// Received ciphertext rustls has not consumed yet (`carry`): a record cut by the end of
    /// a buffer, or an unfinished handshake. 0 when the input so far ended on a record boundary.
    pub fn carried_bytes(&self) -> usize {
        self.carry.len()
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the client is bound to TLS and has not finished its handshake: a close now is
    /// nats-server's "TLS Handshake Failure" (not so while `allow_non_tls` waits to see).
    pub fn in_handshake(&self) -> bool {
        matches!(
            self.phase,
            Phase::FirstWait { .. } | Phase::Handshaking { .. }
        )
    }

    /// The time by which the current phase must end, if it has one.
    pub fn due_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::FirstWait { until_ms } => Some(until_ms),
            Phase::Sniffing { deadline_ms } | Phase::Handshaking { deadline_ms } => {
                Some(deadline_ms)
            }
            Phase::Established => None,
        }
    }

    /// What the handshake negotiated, as nats-server's `/connz` names it (`"1.3"`,
    /// `"TLS_AES_128_GCM_SHA256"`), once established.
    pub fn info(&self) -> Option<crate::stats::TlsInfo> {
        self.negotiated.clone()
    }

    /// `info`, read from rustls's connection when the handshake ends.
    fn negotiated(&self, conn: &CommonState) -> Option<crate::stats::TlsInfo> {
        let (version, cipher_suite) = version_and_suite(conn)?;
        Some(crate::stats::TlsInfo {
            version,
            cipher_suite,
            first: self.first,
            peer_certs: Vec::new(),
        })
    }

    /// The peer's certificate (the leaf of what it sent), once established.
    pub fn peer_leaf(&self) -> Option<&[u8]> {
        self.peer_certificates.first().map(|der| der.as_ref())
    }

    /// The certificates the client sent, leaf first, as `/connz` shows them (parsed and
    /// hashed on each call: monitoring only).
    pub fn peer_certs(&self) -> Vec<crate::tls::PeerCert> {
        self.peer_certificates
            .iter()
            .filter_map(|der| crate::tls::peer_cert(der))
            .collect()
    }

    /// Feeds received ciphertext (which rustls decrypts in place, hence `&mut`), calling
    /// `on_event` with what comes out, in order. An error ends the session: the caller closes
    /// the connection after sending what `seal` still has (an alert, when rustls made one).
    pub fn receive(
        &mut self,
        mut bytes: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Received, rustls::Error> {
        let mut received = Received::default();
        if self.failed {
            return Err(rustls::Error::HandshakeNotComplete);
        }
        if !self.started {
            self.started = true;
            if bytes.first() != Some(&HANDSHAKE_RECORD) {
                // Not TLS at all (a plain client on a TLS port): closed with nothing sent, as
                // Go's TLS gives up on a first record that is no handshake, without an alert.
                self.failed = true;
                return Err(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                ));
            }
        }
        if let Phase::FirstWait { .. } | Phase::Sniffing { .. } = self.phase {
            // Data came: what follows is the handshake, which has its own time (nats-server
            // starts the handshake's timer after the first wait).
            self.phase = Phase::Handshaking {
                deadline_ms: self.due_ms().unwrap_or_default(),
            };
        }
        let result = (|| {
            if !self.is_established() {
                self.carry.extend_from_slice(bytes);
                let mut carry = std::mem::take(&mut self.carry);
                let used = self.process(&mut carry, on_event, &mut received);
                carry.drain(..*used.as_ref().unwrap_or(&0));
                self.carry = carry;
                return used.map(|_| ());
            }
            while !self.carry.is_empty() && !bytes.is_empty() {
                let take = missing(&self.carry)?.min(bytes.len());
                let (head, rest) = std::mem::take(&mut bytes).split_at_mut(take);
                self.carry.extend_from_slice(head);
                bytes = rest;
                let mut carry = std::mem::take(&mut self.carry);
                let used = self.open(&mut carry, on_event, &mut received)?;
                carry.drain(..used);
                self.carry = carry;
            }
            if self.carry.is_empty() && !bytes.is_empty() {
                let used = self.open(bytes, on_event, &mut received)?;
                self.carry.extend_from_slice(&bytes[used..]);
            }
            Ok(())
        })();
        let result = result.and_then(|()| self.take_over_records());
        match result {
            Ok(()) => {
                received.output |= !self.wire.is_empty();
                Ok(received)
            }
            Err(error) => {
                self.fail();
                Err(error)
            }
        }
    }

    /// Established: the records at the front of `buffer`, by the record layer once taken
    /// over, by rustls until then; returns how many bytes are done with.
    fn open(
        &mut self,
        buffer: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>),
        received: &mut Received,
    ) -> Result<usize, rustls::Error> {
        match &mut self.records {
            Some(records) => records.open_records(buffer, on_event, received, &mut self.wire),
            None => self.process(buffer, on_event, received),
        }
    }

    /// Once the handshake is done and rustls has nothing left to send, its connection becomes
    /// the record layer's keys (`tls_records`), if the configuration allows it.
    fn take_over_records(&mut self) -> Result<(), rustls::Error> {
        if !self.take_over || !self.is_established() || self.records.is_some() {
            return Ok(());
        }
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let (secrets, kernel) = match conn {
            Rustls::Server(conn) => {
                let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
                (secrets, Kernel::Server(kernel))
            }
            Rustls::Client(conn) => {
                let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
                (secrets, Kernel::Client(kernel))
            }
        };
        self.records = Some(Box::new(Records::new(secrets, kernel)?));
        Ok(())
    }

    /// Runs rustls over `buffer` until it needs more bytes; returns how many bytes at its
    /// front rustls is done with.
    fn process(
        &mut self,
        buffer: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>),
        received: &mut Received,
    ) -> Result<usize, rustls::Error> {
        let mut used = 0;
        let mut told = false;
        loop {
            self.note_established(on_event);
            // Plaintext that came with the handshake's last flight (CONNECT after the
            // client's Finished): the handshake's end is told first.
            let hold = !self.is_established() && !told;
            let input = &mut buffer[used..];
            let (discard, next) = match self.conn.as_mut() {
                None => return Err(rustls::Error::HandshakeNotComplete),
                Some(Rustls::Server(conn)) => step(
                    conn.process_tls_records(input),
                    hold,
                    &mut self.wire,
                    received,
                    on_event,
                )?,
                Some(Rustls::Client(conn)) => step(
                    conn.process_tls_records(input),
                    hold,
                    &mut self.wire,
                    received,
                    on_event,
                )?,
            };
            used += discard;
            match next {
                Next::Again => {}
                Next::Held => told = true,
                Next::Wait => {
                    self.note_established(on_event);
                    return Ok(used);
                }
            }
        }
    }

    /// Moves to `Established` once rustls's handshake is over, and says so.
    fn note_established(&mut self, on_event: &mut dyn FnMut(Event<'_>)) {
        let Some(conn) = self.conn.as_ref().map(Rustls::common) else {
            return;
        };
        if !self.is_established() && !conn.is_handshaking() {
            self.phase = Phase::Established;
            self.negotiated = self.negotiated(conn);
            // Kept for `/connz`: rustls's connection goes when the record layer is taken over.
            self.peer_certificates = conn.peer_certificates().unwrap_or_default().to_vec();
            on_event(Event::Established(conn));
        }
    }

    /// Moves what is to be sent from `pending` (the outbound's plaintext) into `sending` (what
    /// the next send SQE names): rustls's own records first, then `pending` encrypted, or in
    /// plain text before the handshake ended (INFO). `pending` is left empty. `closing`: the
    /// connection is draining to its close, so after the last of its bytes comes the TLS
    /// close_notify, as Go's `tls.Conn.Close` sends it once the handshake is done.
    pub fn seal(&mut self, pending: &mut Vec<u8>, sending: &mut Vec<u8>, closing: bool) {
        sending.append(&mut self.wire);
        if !pending.is_empty() {
            if !self.is_established() {
                if self.clear_before_handshake {
                    sending.extend_from_slice(pending);
                }
            } else if !self.failed && !self.close_notified {
                let plaintext = &pending[..];
                let encrypted = match &mut self.records {
                    Some(records) => records.seal(plaintext, sending),
                    None => {
                        let records = plaintext.len().div_ceil(PLAINTEXT_BYTES_MAX).max(1);
                        let room = plaintext.len() + records * OVERHEAD_BYTES;
                        self.write_traffic(sending, room, Write::Encrypt(plaintext))
                    }
                };
                if encrypted.is_err() {
                    self.fail();
                    sending.append(&mut self.wire);
                }
            }
            pending.clear();
        }
        if closing && self.is_established() && !self.failed && !self.close_notified {
            self.close_notified = true;
            let notified = match &mut self.records {
                Some(records) => {
                    records.close_notify(sending);
                    Ok(())
                }
                None => {
                    let room = OVERHEAD_BYTES + 2;
                    self.write_traffic(sending, room, Write::CloseNotify)
                }
            };
            if notified.is_err() {
                self.fail();
                sending.append(&mut self.wire);
            }
        }
    }

    /// Has `write` (an encryption) write onto the end of `out`, after any record rustls has to
    /// send first, with `room` bytes to start with.
    fn write_traffic(
        &mut self,
        out: &mut Vec<u8>,
        room: usize,
        write: Write<'_>,
    ) -> Result<(), rustls::Error> {
        let mut carry = std::mem::take(&mut self.carry);
        let result = self.write_traffic_with(&mut carry, out, room, write);
        self.carry = carry;
        result
    }

    /// `write_traffic`, with rustls handed the received bytes it has not consumed (`carry`):
    /// never another buffer, since a handshake message it is joining refers to those bytes
    /// (handed an empty one then, rustls 0.23 panics).
    fn write_traffic_with(
        &mut self,
        carry: &mut Vec<u8>,
        out: &mut Vec<u8>,
        mut room: usize,
        write: Write<'_>,
    ) -> Result<(), rustls::Error> {
        loop {
            let (discard, done) = match self.conn.as_mut() {
                None => return Err(rustls::Error::EncryptError),
                Some(Rustls::Server(conn)) => {
                    write_step(conn.process_tls_records(carry), out, &mut room, &write)?
                }
                Some(Rustls::Client(conn)) => {
                    write_step(conn.process_tls_records(carry), out, &mut room, &write)?
                }
            };
            carry.drain(..discard);
            if let Some(done) = done {
                return done;
            }
        }
    }

    /// Ends the session: whatever rustls still has to say (a fatal alert) goes into `wire`,
    /// and nothing is decrypted or encrypted after.
    fn fail(&mut self) {
        self.failed = true;
        // Only what rustls has queued is taken: while it has something (`wants_write`),
        // `process_tls_records` hands it out before it looks at any input. Past that it would
        // read the input again, find the record it just refused and queue a second fatal
        // alert (a debug assertion in rustls). As in `encrypt_with`, it is handed the bytes
        // it has not consumed.
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut carry = std::mem::take(&mut self.carry);
        while conn.common().wants_write() {
            let alert = match conn {
                Rustls::Server(conn) => {
                    alert_step(conn.process_tls_records(&mut carry), &mut self.wire)
                }
                Rustls::Client(conn) => {
                    alert_step(conn.process_tls_records(&mut carry), &mut self.wire)
                }
            };
            if !alert {
                break;
            }
        }
        self.carry = carry;
    }
}

/// What `process` does after one `step`.
enum Next {
    /// rustls has more to say about the same input.
    Again,
    /// Plaintext waits until the handshake's end is told.
    Held,
    /// rustls needs more bytes.
    Wait,
}

/// One state of rustls's connection while it reads (`TlsSession::process`), for either side:
/// how many input bytes it is done with, and what next. `hold`: plaintext is not taken yet.
fn step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    hold: bool,
    wire: &mut Vec<u8>,
    received: &mut Received,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<(usize, Next), rustls::Error> {
    let UnbufferedStatus { mut discard, state } = status;
    let next = match state? {
        ConnectionState::ReadTraffic(_) if hold => Next::Held,
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let record = record?;
                discard += record.discard;
                on_event(Event::Plaintext(record.payload));
            }
            Next::Again
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(wire, |out| encode.encode(out));
            Next::Again
        }
        // What `wire` holds goes out with the connection's next send.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            Next::Again
        }
        ConnectionState::PeerClosed => {
            received.peer_closed = true;
            Next::Again
        }
        // Waits for more bytes (established: `WriteTraffic`).
        _ => Next::Wait,
    };
    Ok((discard, next))
}

/// What `write_traffic` has rustls write.
enum Write<'a> {
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// One state of rustls's connection while it writes (`TlsSession::write_traffic_with`), for
/// either side: how many input bytes it is done with, and the result once written (`None`:
/// again, after what rustls had to send first).
fn write_step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    out: &mut Vec<u8>,
    room: &mut usize,
    write: &Write<'_>,
) -> Result<(usize, Option<Result<(), rustls::Error>>), rustls::Error> {
    let UnbufferedStatus { discard, state } = status;
    let done = match state? {
        ConnectionState::WriteTraffic(mut traffic) => Some({
            let start = out.len();
            loop {
                out.resize(start + *room, 0);
                match write_with(&mut traffic, write, &mut out[start..]) {
                    Ok(written) => {
                        out.truncate(start + written);
                        break Ok(());
                    }
                    Err(EncryptError::InsufficientSize(short)) => *room = short.required_size,
                    Err(_) => {
                        out.truncate(start);
                        break Err(rustls::Error::EncryptError);
                    }
                }
            }
        }),
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(out, |buffer| encode.encode(buffer));
            None
        }
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            None
        }
        // Decrypted bytes are always taken as they come, and a handshake is over.
        _ => Some(Err(rustls::Error::EncryptError)),
    };
    Ok((discard, done))
}

fn write_with<Data>(
    traffic: &mut WriteTraffic<'_, Data>,
    write: &Write<'_>,
    out: &mut [u8],
) -> Result<usize, EncryptError> {
    match write {
        Write::Encrypt(plaintext) => traffic.encrypt(plaintext, out),
        Write::CloseNotify => traffic.queue_close_notify(out),
    }
}

/// One state of rustls's connection while it fails (`TlsSession::fail`): the alert it queued
/// into `wire`; false when rustls offers something else (plaintext decrypted before the
/// failure comes first; it is not wanted now).
fn alert_step<Data>(status: UnbufferedStatus<'_, '_, Data>, wire: &mut Vec<u8>) -> bool {
    match status.state {
        Ok(ConnectionState::EncodeTlsData(mut encode)) => {
            encode_into(wire, |out| encode.encode(out));
            true
        }
        _ => false,
    }
}

/// Appends what `encode` writes to `out`, growing it to the size `encode` asks for.
fn encode_into(out: &mut Vec<u8>, mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) {
    let start = out.len();
    let mut room = 4096;
    loop {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                return;
            }
            Err(EncodeError::InsufficientSize(short)) => room = short.required_size,
            Err(EncodeError::AlreadyEncoded) => {
                out.truncate(start);
                return;
            }
        }
    }
}

/// How many more bytes `carry` (ciphertext starting at a record boundary, established) needs
/// before rustls can do something with it: the rest of its first incomplete record, or of
/// that record's header. A header announcing more than a record may hold is an error.
fn missing(carry: &[u8]) -> Result<usize, rustls::Error> {
    let mut at = 0;
    loop {
        let Some(header) = carry.get(at..at + HEADER_BYTES) else {
            return Ok(at + HEADER_BYTES - carry.len());
        };
        let end = at + HEADER_BYTES + body_len(header)?;
        if end > carry.len() {
            return Ok(end - carry.len());
        }
        at = end;
    }
}

impl Core {
    /// Received ciphertext of TLS connection `slot` (open): decrypted and handed to its
    /// session, or, with `allow_non_tls`, a plain client's first bytes, after which it is plain
    /// TCP for good. What a pause leaves unparsed is held here, as plaintext.
    pub(super) fn on_tls_input(&mut self, slot: u32, bytes: &mut [u8]) {
        let conn = &mut self.conns[slot];
        let Transport::Tls(session) = &mut conn.transport else {
            return;
        };
        if matches!(session.phase, Phase::Sniffing { .. })
            && bytes.first() != Some(&HANDSHAKE_RECORD)
        {
            conn.transport = Transport::Plain;
            self.tls_plaintext(slot, bytes);
            return;
        }
        // Out of the connection while its plaintext is handled (which needs the whole core);
        // nothing looks at a connection's transport meanwhile.
        let Transport::Tls(mut session) = std::mem::replace(&mut conn.transport, Transport::Plain)
        else {
            unreachable!("matched above")
        };
        let info_after_handshake = session.info_after_handshake;
        let result = session.receive(bytes, &mut |event| match event {
            Event::Established(tls) => self.tls_established(slot, info_after_handshake, tls),
            Event::Plaintext(text) => self.tls_plaintext(slot, text),
        });
        if session.is_established() {
            session.info_after_handshake = false;
        }
        let established = session.is_established();
        self.conns[slot].transport = Transport::Tls(session);
        match result {
            Ok(received) => {
                if received.output {
                    self.mark_dirty(slot);
                }
                if received.peer_closed {
                    self.drain_and_close(slot, CloseReason::ClientClosed);
                }
            }
            Err(error) => {
                let conn = &self.conns[slot];
                if conn.kind == ConnKind::Route {
                    // Go surfaces a route's TLS failures as errors (`doTLSHandshake`).
                    let during = if established { "" } else { " handshake" };
                    crate::log_error!(
                        "{} - rid:{} - TLS route{during} error: {error}",
                        conn.peer,
                        conn.client_id
                    );
                } else if established {
                    crate::log_debug!(
                        "{} - cid:{} - TLS error: {error}",
                        conn.peer,
                        conn.client_id
                    );
                } else {
                    crate::log_debug!(
                        "{} - cid:{} - TLS handshake error: {error}",
                        conn.peer,
                        conn.client_id
                    );
                }
                // The alert rustls made, if any, goes out before the close.
                self.mark_dirty(slot);
                let reason = if established {
                    CloseReason::ReadError
                } else {
                    CloseReason::TLSHandshakeError
                };
                self.drain_and_close(slot, reason);
            }
        }
    }

    /// Why `slot` closes when its client goes away: a client that left in the middle of a
    /// TLS handshake is nats-server's "TLS Handshake Failure".
    pub(super) fn client_gone_reason(&self, slot: u32) -> CloseReason {
        match &self.conns[slot].transport {
            Transport::Tls(session) if session.in_handshake() => CloseReason::TLSHandshakeError,
            _ => CloseReason::ClientClosed,
        }
    }

    /// Decrypted bytes of `slot` for its session, or held while it is paused.
    fn tls_plaintext(&mut self, slot: u32, text: &[u8]) {
        let conn = &mut self.conns[slot];
        if !conn.is_open() {
            return;
        }
        if conn.paused.is_some() || !conn.held.is_empty() {
            conn.held.push(text);
            return;
        }
        let left = self.on_session_input(slot, text);
        if left > 0 {
            self.conns[slot].held.push(&text[text.len() - left..]);
        }
    }

    /// The handshake of `slot` ended: a client certificate that `pinned_certs` does not list
    /// closes it (see `pinned`); otherwise what its certificate names is kept (for
    /// `verify_and_map`), its keepalive starts, its authentication timer starts again
    /// (nats-server starts it after the handshake), and with `handshake_first` INFO goes out
    /// now, encrypted.
    fn tls_established(&mut self, slot: u32, info_after_handshake: bool, tls: &CommonState) {
        if !self.conns[slot].is_open() {
            return;
        }
        let leaf = tls
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| der.as_ref());
        if self.conns[slot].kind == ConnKind::Route {
            return self.route_tls_established(slot, tls);
        }
        let pinned_certs = self
            .settings
            .tls
            .as_ref()
            .map(|tls| tls.pinned_certs.clone())
            .unwrap_or_default();
        if !self.pinned(slot, leaf, &pinned_certs) {
            return;
        }
        let now_ms = self.now_ms;
        let options = &self.settings.options;
        let first_ping_ms =
            (options.ping_interval.as_millis() as u64).min(limits::FIRST_PING_INTERVAL_MS);
        let auth_timeout_ms = self.settings.auth.timeout().as_millis() as u64;
        let conn = &mut self.conns[slot];
        conn.certificate = leaf.and_then(crate::tls::cert_identities).map(Box::new);
        conn.next_ping_ms = now_ms + first_ping_ms;
        if let AuthState::Awaiting { deadline_ms } = &mut conn.auth {
            if *deadline_ms != u64::MAX {
                *deadline_ms = now_ms + auth_timeout_ms;
            }
        }
        if crate::log::enabled_debug() {
            crate::log_debug!(
                "{} - cid:{} - TLS handshake complete",
                conn.peer,
                conn.client_id
            );
        }
        if info_after_handshake {
            let open = self.shared.connections.load(Ordering::Relaxed);
            self.greet_client(slot, open, true);
        }
    }

    /// Whether the client of `slot`, whose handshake just ended with `leaf` as its certificate,
    /// may stay under `pinned_certs` (nats-server's `matchesPinnedCert`: the SHA-256 of the
    /// leaf's SubjectPublicKeyInfo is listed; no certificate is refused). If not, it is closed
    /// as nats-server closes it: no byte of the protocol (not even a `handshake_first` INFO),
    /// the TLS close_notify, `TLS handshake error: certificate not pinned` logged as an error,
    /// and the reason `TLS Handshake Failure`.
    pub(super) fn pinned(
        &mut self,
        slot: u32,
        leaf: Option<&[u8]>,
        pinned_certs: &[[u8; 32]],
    ) -> bool {
        if pinned_certs.is_empty() {
            return true;
        }
        let key = leaf.and_then(crate::tls::spki_sha256);
        if key.is_some_and(|key| pinned_certs.contains(&key)) {
            return true;
        }
        let conn = &self.conns[slot];
        match key {
            Some(key) => crate::log_debug!(
                "{} - cid:{} - Failed pinned cert test for key id: {}",
                conn.peer,
                conn.client_id,
                data_encoding::HEXLOWER.encode(&key)
            ),
            None => crate::log_debug!(
                "{} - cid:{} - Failed pinned cert test as client did not provide a certificate",
                conn.peer,
                conn.client_id
            ),
        }
        if conn.kind == ConnKind::Route {
            crate::log_error!(
                "{} - rid:{} - TLS route handshake error: certificate not pinned",
                conn.peer,
                conn.client_id
            );
        } else {
            crate::log_error!(
                "{} - cid:{} - TLS handshake error: certificate not pinned",
                conn.peer,
                conn.client_id
            );
        }
        self.drain_and_close(slot, CloseReason::TLSHandshakeError);
        false
    }

    /// A TLS connection of `slot` whose phase ran out at the timer tick: the first wait of
    /// `handshake_first` falls back to INFO first; `allow_non_tls`'s wait for the first byte
    /// makes it a plain client; a handshake past `tls { timeout }` closes the connection, as
    /// nats-server's `tlsTimeout` does (its `-ERR` never reaches the wire: it is written to
    /// the unfinished TLS connection).
    pub(super) fn tls_due(&mut self, slot: u32) {
        let now_ms = self.now_ms;
        let conn = &mut self.conns[slot];
        let Transport::Tls(session) = &mut conn.transport else {
            return;
        };
        match session.phase {
            Phase::FirstWait { .. } => {
                let Some(tls) = self.settings.tls.clone() else {
                    return self.close(slot, CloseReason::TLSHandshakeError);
                };
                let deadline_ms = now_ms + tls.timeout_ms;
                session.phase = if tls.allow_non_tls {
                    Phase::Sniffing { deadline_ms }
                } else {
                    Phase::Handshaking { deadline_ms }
                };
                session.info_after_handshake = false;
                session.first = false;
                let open = self.shared.connections.load(Ordering::Relaxed);
                self.greet_client(slot, open, false);
            }
            // `allow_non_tls` and a client that says nothing: nats-server's look at the
            // first bytes gives up after the timeout and takes it for a plain client.
            Phase::Sniffing { .. } => conn.transport = Transport::Plain,
            // A route's handshake is no client's probe: nats-server logs it as an error.
            Phase::Handshaking { .. } if conn.kind == ConnKind::Route => {
                crate::log_error!(
                    "{} - rid:{} - TLS route handshake error: timeout",
                    conn.peer,
                    conn.client_id
                );
                self.close(slot, CloseReason::TLSHandshakeError);
            }
            Phase::Handshaking { .. } => {
                crate::log_debug!(
                    "{} - cid:{} - TLS handshake timeout",
                    conn.peer,
                    conn.client_id
                );
                self.close(slot, CloseReason::TLSHandshakeError);
            }
            Phase::Established => {}
        }
    }
}

/// The negotiated TLS version and cipher suite as nats-server names them (`1.3`,
/// `TLS_AES_128_GCM_SHA256`: rustls calls the TLS 1.3 suites `TLS13_*`, Go and IANA `TLS_*`).
pub(super) fn version_and_suite(conn: &CommonState) -> Option<(&'static str, String)> {
    let version = match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_2 => "1.2",
        rustls::ProtocolVersion::TLSv1_3 => "1.3",
        _ => "unknown",
    };
    let name = conn
        .negotiated_cipher_suite()?
        .suite()
        .as_str()
        .unwrap_or("unknown");
    let suite = match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    };
    Some((version, suite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use std::io::{Read, Write};

    /// A server configuration with a fresh self-signed certificate for `localhost`, and a
    /// client configuration that trusts it.
    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let (server, client, _) = configs_with(true);
        (server, client)
    }

    /// `extract`: the session takes the record layer over after the handshake (as the
    /// server's configuration has it); without, rustls keeps it.
    fn configs_with(
        extract: bool,
    ) -> (
        Arc<ServerConfig>,
        Arc<rustls::ClientConfig>,
        CertificateDer<'static>,
    ) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        server.enable_secret_extraction = extract;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client), cert)
    }

    fn tls(config: &Arc<ServerConfig>) -> ClientTls {
        ClientTls {
            config: Arc::clone(config),
            monitoring_config: Arc::clone(config),
            cert_not_after: None,
            timeout_ms: 2000,
            handshake_first: false,
            first_fallback_ms: None,
            allow_non_tls: false,
            verify: false,
            verify_and_map: false,
            pinned_certs: Vec::new(),
        }
    }

    /// What a session produced: its plaintext, whether it was established, and its events'
    /// order was right (no plaintext before `Established`).
    #[derive(Default)]
    struct Seen {
        plaintext: Vec<u8>,
        established: bool,
    }

    fn feed(session: &mut TlsSession, bytes: &[u8], seen: &mut Seen) {
        let mut copy = bytes.to_vec();
        session
            .receive(&mut copy, &mut |event| match event {
                Event::Established(_) => seen.established = true,
                Event::Plaintext(text) => {
                    assert!(seen.established, "plaintext before the handshake ended");
                    seen.plaintext.extend_from_slice(text)
                }
            })
            .unwrap();
    }

    /// The server's output so far, as the send path takes it.
    fn sent(session: &mut TlsSession, plaintext: &[u8]) -> Vec<u8> {
        let (mut pending, mut sending) = (plaintext.to_vec(), Vec::new());
        session.seal(&mut pending, &mut sending, false);
        assert!(pending.is_empty());
        sending
    }

    /// A client and a session past the handshake, with nothing in flight.
    fn established(
        server: &Arc<ServerConfig>,
        client_config: &Arc<rustls::ClientConfig>,
    ) -> (rustls::ClientConnection, TlsSession, Seen) {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::clone(client_config), name).unwrap();
        let mut session = TlsSession::new(&tls(server), 0).unwrap();
        let mut seen = Seen::default();
        for _ in 0..10 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            feed(&mut session, &flight, &mut seen);
            let back = sent(&mut session, b"");
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && seen.established {
                return (client, session, seen);
            }
        }
        panic!("no handshake");
    }

    fn client_records(client: &mut rustls::ClientConnection, plaintext: &[u8]) -> Vec<u8> {
        let mut records = Vec::new();
        for chunk in plaintext.chunks(16_384) {
            client.writer().write_all(chunk).unwrap();
            while client.wants_write() {
                client.write_tls(&mut records).unwrap();
            }
        }
        records
    }

    fn protocol_bytes(len: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut i = 0u32;
        while bytes.len() < len {
            bytes.extend_from_slice(format!("PUB subject.{i} 5\r\nhello\r\n").as_bytes());
            i += 1;
        }
        bytes.truncate(len);
        bytes
    }

    #[test]
    fn records_cut_anywhere_come_out_whole_and_in_order() {
        let (server, client_config) = configs();
        // Three records (rustls writes 16 KiB of plaintext per record), so cuts fall in
        // headers, bodies and at boundaries.
        let plaintext = protocol_bytes(40_000);
        let (_, _, _) = established(&server, &client_config);
        let mut cuts: Vec<usize> = (0..=64).collect();
        for boundary in [16_384 + 22, 2 * (16_384 + 22)] {
            cuts.extend(boundary - 8..boundary + 8);
        }
        cuts.extend((0..40_000).step_by(4_099));
        for cut in cuts {
            let (mut client, mut session, mut seen) = established(&server, &client_config);
            let records = client_records(&mut client, &plaintext);
            let cut = cut.min(records.len());
            feed(&mut session, &records[..cut], &mut seen);
            feed(&mut session, &records[cut..], &mut seen);
            assert_eq!(seen.plaintext, plaintext, "cut at {cut}");
            assert!(session.carry.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn many_small_buffers_and_a_handshake_cut_in_pieces() {
        let (server, client_config) = configs();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut session = TlsSession::new(&tls(&server), 0).unwrap();
        let mut seen = Seen::default();
        // The handshake, in 7-byte pieces.
        for _ in 0..10 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            for piece in flight.chunks(7) {
                feed(&mut session, piece, &mut seen);
            }
            let back = sent(&mut session, b"");
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && seen.established {
                break;
            }
        }
        assert!(session.is_established());
        let plaintext = protocol_bytes(100_000);
        let records = client_records(&mut client, &plaintext);
        for piece in records.chunks(1_000) {
            feed(&mut session, piece, &mut seen);
        }
        assert_eq!(seen.plaintext, plaintext);
    }

    #[test]
    fn what_the_server_sends_the_client_reads() {
        let (server, client_config) = configs();
        let (mut client, mut session, _) = established(&server, &client_config);
        let plaintext = protocol_bytes(70_000);
        let records = sent(&mut session, &plaintext);
        let (mut records, mut read) = (&records[..], Vec::new());
        while !records.is_empty() {
            client.read_tls(&mut records).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut read);
        }
        assert_eq!(read, plaintext);
    }

    /// A client that speaks only `suite` at `version`, trusting `trusting`'s certificate.
    fn client_with(
        trusting: &CertificateDer<'static>,
        suite: rustls::SupportedCipherSuite,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![suite];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trusting.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Both directions through a session, with records cut at a few places.
    fn round_trip(server: &Arc<ServerConfig>, client_config: &Arc<rustls::ClientConfig>) {
        let plaintext = protocol_bytes(40_000);
        for cut in [0, 3, 5, 6, 700, 16_400, 16_411, 39_999] {
            let (mut client, mut session, mut seen) = established(server, client_config);
            let records = client_records(&mut client, &plaintext);
            let cut = cut.min(records.len());
            feed(&mut session, &records[..cut], &mut seen);
            feed(&mut session, &records[cut..], &mut seen);
            assert_eq!(seen.plaintext, plaintext, "cut at {cut}");
            let back = protocol_bytes(70_000);
            let sealed = sent(&mut session, &back);
            assert_eq!(read_all(&mut client, &sealed), back);
        }
    }

    fn read_all(client: &mut rustls::ClientConnection, records: &[u8]) -> Vec<u8> {
        let (mut records, mut read) = (records, Vec::new());
        while !records.is_empty() {
            client.read_tls(&mut records).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut read);
        }
        read
    }

    #[test]
    fn every_suite_and_version_through_the_record_layer_and_through_rustls() {
        use rustls::crypto::ring::cipher_suite::*;
        use rustls::version::{TLS12, TLS13};
        for extract in [true, false] {
            let (server, _, trusting) = configs_with(extract);
            for (suite, version) in [
                (TLS13_AES_128_GCM_SHA256, &TLS13),
                (TLS13_AES_256_GCM_SHA384, &TLS13),
                (TLS13_CHACHA20_POLY1305_SHA256, &TLS13),
                (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, &TLS12),
                (TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, &TLS12),
                (TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, &TLS12),
            ] {
                let client = client_with(&trusting, suite, version);
                round_trip(&server, &client);
                let (_, session, _) = established(&server, &client);
                assert_eq!(session.records.is_some(), extract, "{suite:?}");
            }
        }
    }

    /// The client side (a solicited route) against rustls's buffered server, which sends TLS
    /// 1.3 session tickets after the handshake: the session takes the record layer over, drops
    /// the tickets, follows the server's key update (TLS 1.3), and bytes cross both ways; TLS
    /// 1.2 too.
    #[test]
    fn a_client_session_takes_the_record_layer_over_past_session_tickets() {
        use rustls::crypto::ring::cipher_suite::{
            TLS13_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        };
        use rustls::version::{TLS12, TLS13};
        let (server_config, _, trusting) = configs_with(true);
        let mut server_config = (*server_config).clone();
        server_config.send_tls13_tickets = 2;
        let server_config = Arc::new(server_config);
        for (suite, version) in [
            (TLS13_AES_128_GCM_SHA256, &TLS13),
            (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, &TLS12),
        ] {
            let mut client_config = (*client_with(&trusting, suite, version)).clone();
            client_config.enable_secret_extraction = true;
            let client_config = Arc::new(client_config);
            let mut server = rustls::ServerConnection::new(Arc::clone(&server_config)).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut session = TlsSession::solicited_route(&client_config, name, 2000, 0).unwrap();
            let mut seen = Seen::default();
            for _ in 0..10 {
                let flight = sent(&mut session, b"");
                server.read_tls(&mut &flight[..]).unwrap();
                server.process_new_packets().unwrap();
                let mut back = Vec::new();
                while server.wants_write() {
                    server.write_tls(&mut back).unwrap();
                }
                if !back.is_empty() {
                    feed(&mut session, &back, &mut seen);
                }
                if session.is_established() && !server.is_handshaking() {
                    break;
                }
            }
            assert!(session.is_established(), "{version:?}");
            server.writer().write_all(b"INFO {} \r\n").unwrap();
            if version == &TLS13 {
                server.refresh_traffic_keys().unwrap();
            }
            server.writer().write_all(b"PING\r\n").unwrap();
            let mut records = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut records).unwrap();
            }
            feed(&mut session, &records, &mut seen);
            assert_eq!(seen.plaintext, b"INFO {} \r\nPING\r\n", "{version:?}");
            assert!(
                session.records.is_some(),
                "the record layer is the session's"
            );
            let sealed = sent(&mut session, b"CONNECT {}\r\n");
            server.read_tls(&mut &sealed[..]).unwrap();
            server.process_new_packets().unwrap();
            let mut read = Vec::new();
            let _ = server.reader().read_to_end(&mut read);
            assert_eq!(read, b"CONNECT {}\r\n", "{version:?}");
        }
    }

    #[test]
    fn a_key_update_the_client_asks_for_is_answered() {
        let (server, client_config) = configs();
        let (mut client, mut session, mut seen) = established(&server, &client_config);
        client.refresh_traffic_keys().unwrap();
        let records = client_records(&mut client, b"PING\r\n");
        feed(&mut session, &records, &mut seen);
        assert_eq!(seen.plaintext, b"PING\r\n");
        // Ours (asked for) goes first, then what is sealed under the new key.
        let sealed = sent(&mut session, b"PONG\r\n");
        assert_eq!(read_all(&mut client, &sealed), b"PONG\r\n");
        let more = client_records(&mut client, b"PING\r\n");
        feed(&mut session, &more, &mut seen);
        assert_eq!(seen.plaintext, b"PING\r\nPING\r\n");
    }

    #[test]
    fn the_sending_key_is_updated_before_its_limit() {
        let (server, client_config) = configs();
        let (mut client, mut session, _) = established(&server, &client_config);
        session.records.as_mut().unwrap().set_tx_limit(3);
        let plaintext = protocol_bytes(200_000);
        let sealed = sent(&mut session, &plaintext);
        assert_eq!(read_all(&mut client, &sealed), plaintext);
    }

    #[test]
    fn a_tampered_record_is_an_error() {
        let (server, client_config) = configs();
        let (mut client, mut session, _) = established(&server, &client_config);
        let mut records = client_records(&mut client, b"PING\r\n");
        let last = records.len() - 1;
        records[last] ^= 1;
        assert!(session.receive(&mut records, &mut |_| {}).is_err());
    }

    #[test]
    fn close_notify_ends_the_input() {
        let (server, client_config) = configs();
        let (mut client, mut session, _) = established(&server, &client_config);
        client.send_close_notify();
        let mut records = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut records).unwrap();
        }
        let received = session.receive(&mut records, &mut |_| {}).unwrap();
        assert!(received.peer_closed);
    }

    #[test]
    fn info_before_the_handshake_goes_in_plain_text() {
        let (server, _) = configs();
        let mut session = TlsSession::new(&tls(&server), 0).unwrap();
        assert_eq!(sent(&mut session, b"INFO {} \r\n"), b"INFO {} \r\n");
    }

    #[test]
    fn plain_text_on_a_tls_session_is_an_error() {
        let (server, _) = configs();
        let mut session = TlsSession::new(&tls(&server), 0).unwrap();
        let mut bytes = b"CONNECT {}\r\nPING\r\n".to_vec();
        assert!(session.receive(&mut bytes, &mut |_| {}).is_err());
    }

    /// Found by fuzz/tls_handover: a record rustls refuses while deframing (here application
    /// data in the middle of the handshake) makes rustls queue a fatal alert; `fail` then ran
    /// rustls over the same bytes again to collect the alert, rustls refused the same record
    /// again and made a second alert, which its debug assertion forbids (a panic in debug
    /// builds, a second alert queued in release).
    #[test]
    fn a_refused_record_makes_one_alert_and_no_panic() {
        let (server, client_config) = configs();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut session = TlsSession::new(&tls(&server), 0).unwrap();
        let mut hello = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut hello).unwrap();
        }
        feed(&mut session, &hello, &mut Seen::default());
        assert!(
            !sent(&mut session, b"").is_empty(),
            "the server's first flight"
        );
        let mut bad = b"\x17\x03\x03\x00\x05hello".to_vec();
        assert!(session.receive(&mut bad, &mut |_| {}).is_err());
        let alert = sent(&mut session, b"");
        assert!(alert.len() > HEADER_BYTES, "an alert: {alert:?}");
        assert_eq!(
            alert.len(),
            HEADER_BYTES + body_len(&alert).unwrap(),
            "one record, the alert: {alert:?}"
        );
        assert!(
            !session.conn.as_ref().unwrap().common().wants_write(),
            "nothing else queued"
        );
        let mut more = b"\x17\x03\x03\x00\x01x".to_vec();
        assert!(session.receive(&mut more, &mut |_| {}).is_err());
    }

    #[test]
    fn a_record_header_announcing_too_much_is_an_error() {
        assert!(missing(&[0x17, 3, 3, 0xff, 0xff]).is_err());
        assert_eq!(missing(&[0x17, 3, 3]).unwrap(), 2);
        assert_eq!(missing(&[0x17, 3, 3, 0, 10, 1]).unwrap(), 9);
        assert_eq!(
            missing(&[0x17, 3, 3, 0, 1, 0, 0x17, 3, 3, 0, 2]).unwrap(),
            2
        );
    }
}
