//! `tls_handover`: ciphertext from a real TLS client, cut into receive buffers anywhere, comes
//! out of `TlsSession::receive` as exactly the plaintext the client wrote, and the parser fed
//! with that plaintext event by event (as `Core::tls_plaintext` feeds a connection's `Reader`)
//! sees the same operations as when it parses the plaintext in one piece.
//!
//! The client is rustls's buffered `ClientConnection`, the server the shard's `TlsSession`
//! (through `natsring::fuzzing`), both in memory: the handshake is driven flight by flight, the
//! server's output taken by `seal` as the send path takes it. One rustls configuration pair,
//! made once ([`configs`]): a self-signed Ed25519 certificate from rcgen (Ed25519 so that a
//! handshake's length does not vary with the signature, as ECDSA's DER does), the ring
//! provider, TLS 1.3 or, for the client, TLS 1.2 only.
//!
//! Input layout: byte 0 is the settings, bits 0..=1 the mode, bits 2..=3 how a byte stream is
//! cut (0 and 3: at input-chosen positions, 1: in one piece, 2: in pieces of one input-chosen
//! size, 1 to 256 bytes, so 1 is byte by byte). What follows depends on the mode. A "cut spec"
//! is 31 bytes: one byte (the position count, modulo 16, or the piece size less one), then 15
//! little-endian `u16` positions (the first count of them used, each modulo the stream's
//! length + 1). "Patches" are 22 bytes: a count (modulo 8), then 7 times a `u16` position and
//! a byte XORed in there. A "length" is a `u16` modulo [`PLAINTEXT_BYTES_MAX`] + 1. "The
//! template" is the rest of the input, repeated to the length (NATS protocol text in the seeds),
//! so small inputs make streams of records that span buffers. Fixed-size fields keep the
//! template's offset fixed, whatever the cuts.
//!
//! - mode 0, hand-over: bit 4 TLS 1.2; bit 5 part of the plaintext is written before the
//!   handshake ends (it rides with the client's last flight, after its Finished in TLS 1.3);
//!   bit 6 the server seals a small message after each of the first pieces (rustls is then
//!   asked to encrypt while a record is cut in the session's carry); bit 7 the client updates
//!   its keys halfway (TLS 1.3). Then: the handshake's cut positions (a count modulo 8 and `u16`s,
//!   applied to every client flight), the length, the early length (bit 5), the ciphertext's cut
//!   spec, the template. Checked: the handshake completes; `Established` comes once, before
//!   any plaintext; the plaintext equals what was written; the carry is empty at the end; the
//!   parser's operations (and error or leftover) equal those of one parse, with the one
//!   difference `parser_splits` allows; what the server sealed reads back at the client; the
//!   client's close_notify is seen.
//! - mode 1, noise before the handshake: bit 4 the bytes start with a real ClientHello
//!   (truncated at an input `u16`), bit 5 `handshake_first`, bit 6 `allow_non_tls`, bit 7 the
//!   ClientHello of a TLS 1.2 client. Then the cut spec, up to 7 patches (count byte, then a
//!   `u16` position and a byte XORed in, each), the truncation, the noise appended (the rest).
//! - mode 2, noise past the handshake: bit 4 TLS 1.2, bit 5 the bytes are the rest of the input
//!   as they are (else the client's records of the template, patched). Then the length, the cut
//!   spec, the patches, the template or noise. Checked: plaintext that comes out is a prefix of
//!   what was written (all of it when no patch changed a byte).
//! - mode 3, server to client: bit 4 TLS 1.2. Then the length, the cut spec (the plaintext is
//!   sealed piece by piece, as the outbound hands it over), the template. Checked: the client
//!   reads exactly the plaintext.
//!
//! In modes 1 and 2 errors are fine, panics are not; after an error the session refuses more
//! input, and `seal` still takes what it is given.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use natsring::fuzzing::{ClientTls, TlsEvent, TlsSession};
use natsring::proto::{Fed, Parser, Reader, ServerError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig};

use crate::parser_splits::{parse_whole, unbuffered_state, Event, Recorder};
use crate::Cursor;

/// The longest plaintext a run writes: a few records of 16 KiB, so cuts fall in headers, in
/// bodies and on boundaries.
pub const PLAINTEXT_BYTES_MAX: usize = 40 * 1024;
/// Plaintext the client writes before its handshake ends at most (rustls buffers it).
const EARLY_BYTES_MAX: usize = 16 * 1024;
/// What the client writes at a time: one record's worth, drained after each.
const CLIENT_WRITE_BYTES: usize = 16 * 1024;
/// Flights before a handshake must be over (TLS 1.2 takes 2 from the client, 1.3 takes 2).
const HANDSHAKE_FLIGHTS_MAX: usize = 6;
/// Pieces after which the server seals a message (mode 0, bit 6).
const INTERLEAVED_SEALS_MAX: usize = 32;
/// nats-server's default limits.
const PAYLOAD_BYTES_MAX: u32 = 1024 * 1024;
const CONTROL_LINE_BYTES_MAX: u32 = 4096;

struct Configs {
    /// As natsring configures it: the shard takes the record layer over after the handshake
    /// (`enable_secret_extraction`).
    server: Arc<ServerConfig>,
    /// Without that: rustls keeps the record layer.
    server_rustls: Arc<ServerConfig>,
    client_tls13: Arc<ClientConfig>,
    client_tls12: Arc<ClientConfig>,
}

/// The server and client configurations, made on first use.
fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("name");
        let certificate = params.self_signed(&key_pair).expect("certificate");
        let cert = CertificateDer::from(certificate.der().to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_rustls = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let mut server = server_rustls.clone();
        server.enable_secret_extraction = true;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
            Arc::new(
                ClientConfig::builder_with_provider(Arc::clone(&provider))
                    .with_protocol_versions(versions)
                    .expect("versions")
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth(),
            )
        };
        Configs {
            server: Arc::new(server),
            server_rustls: Arc::new(server_rustls),
            client_tls13: client(&[&rustls::version::TLS13]),
            client_tls12: client(&[&rustls::version::TLS12]),
        }
    })
}

thread_local! {
    /// This input's sessions take the record layer over (even input lengths) or leave it to
    /// rustls (odd): both paths, from every mode.
    static TAKEOVER: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

fn client_tls(handshake_first: bool, allow_non_tls: bool) -> ClientTls {
    let configs = configs();
    let server = if TAKEOVER.with(|takeover| takeover.get()) {
        &configs.server
    } else {
        &configs.server_rustls
    };
    ClientTls {
        config: Arc::clone(server),
        monitoring_config: Arc::clone(server),
        cert_not_after: None,
        timeout_ms: 2000,
        handshake_first,
        first_fallback_ms: None,
        allow_non_tls,
        verify: false,
        verify_and_map: false,
        pinned_certs: Vec::new(),
    }
}

fn client(tls12: bool) -> ClientConnection {
    let configs = configs();
    let config = if tls12 {
        &configs.client_tls12
    } else {
        &configs.client_tls13
    };
    let name = ServerName::try_from("localhost").expect("name");
    ClientConnection::new(Arc::clone(config), name).expect("client")
}

/// The body of the fuzz target.
pub fn check(data: &[u8]) {
    TAKEOVER.with(|takeover| takeover.set(data.len() % 2 == 0));
    let mut cursor = Cursor::new(data);
    let settings = cursor.byte();
    match settings & 0b11 {
        0 => handover(settings, cursor),
        1 => noise_before_handshake(settings, cursor),
        2 => noise_after_handshake(settings, cursor),
        _ => server_to_client(settings, cursor),
    }
}

/// Where a stream of `len` bytes is cut: the ends of its pieces, ascending, the last `len`
/// (none when `len` is 0). Reads a cut spec from `cursor`.
fn piece_ends(style: u8, cursor: &mut Cursor<'_>, len: usize) -> Vec<usize> {
    let parameter = cursor.byte();
    let mut ends = match style & 0b11 {
        1 => Vec::new(),
        2 => {
            let size = usize::from(parameter) + 1;
            (1..len.div_ceil(size)).map(|index| index * size).collect()
        }
        _ => (0..parameter % 16)
            .map(|_| usize::from(cursor.u16()) % (len + 1))
            .collect(),
    };
    ends.push(len);
    ends.sort_unstable();
    ends.dedup();
    ends.retain(|&end| end > 0);
    ends
}

/// `len` bytes of `template` repeated (empty when the template is).
fn repeated(template: &[u8], len: usize) -> Vec<u8> {
    if template.is_empty() {
        return Vec::new();
    }
    template.iter().copied().cycle().take(len).collect()
}

fn length(cursor: &mut Cursor<'_>) -> usize {
    usize::from(cursor.u16()) % (PLAINTEXT_BYTES_MAX + 1)
}

/// XORs up to 7 input-chosen bytes into `bytes`; whether any byte changed.
fn patch(cursor: &mut Cursor<'_>, bytes: &mut [u8]) -> bool {
    let mut changed = false;
    for _ in 0..cursor.byte() % 8 {
        let (at, mask) = (usize::from(cursor.u16()), cursor.byte());
        if !bytes.is_empty() {
            let len = bytes.len();
            bytes[at % len] ^= mask;
            changed |= mask != 0;
        }
    }
    changed
}

/// Everything the client has to send.
fn drain(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).expect("write_tls to a Vec");
    }
    out
}

/// The client's records of `plaintext`, written a record's worth at a time.
fn client_records(client: &mut ClientConnection, plaintext: &[u8]) -> Vec<u8> {
    let mut records = Vec::new();
    for chunk in plaintext.chunks(CLIENT_WRITE_BYTES) {
        client.writer().write_all(chunk).expect("client write");
        records.extend_from_slice(&drain(client));
    }
    records
}

/// What the server sends now, as the send path takes it.
fn sealed(session: &mut TlsSession, plaintext: &[u8]) -> Vec<u8> {
    let (mut pending, mut sending) = (plaintext.to_vec(), Vec::new());
    session.seal(&mut pending, &mut sending, false);
    assert!(pending.is_empty(), "seal left plaintext pending");
    sending
}

/// Hands the server's bytes to the client; returns the plaintext the client read.
fn client_read(client: &mut ClientConnection, mut bytes: &[u8]) -> Vec<u8> {
    let mut read = Vec::new();
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).expect("read_tls from a slice");
        client
            .process_new_packets()
            .expect("the client rejects what the server sent");
        match client.reader().read_to_end(&mut read) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("client read: {error}"),
        }
    }
    read
}

/// What the server side saw: its events in order, and its parser fed as a connection's is.
struct Sink {
    established: bool,
    plaintext: Vec<u8>,
    reader: Reader,
    ops: Recorder,
    /// The parser's error, if it failed (what it fed after is not parsed).
    parse_error: Option<Event>,
}

impl Sink {
    fn new() -> Sink {
        let mut parser = Parser::new(PAYLOAD_BYTES_MAX, CONTROL_LINE_BYTES_MAX);
        parser.headers = true;
        Sink {
            established: false,
            plaintext: Vec::new(),
            reader: Reader::new(parser),
            ops: Recorder::new(false),
            parse_error: None,
        }
    }

    fn on_event(&mut self, event: TlsEvent<'_>) {
        match event {
            TlsEvent::Established(_) => {
                assert!(!self.established, "Established told twice");
                self.established = true;
            }
            TlsEvent::Plaintext(text) => {
                assert!(self.established, "plaintext before the handshake ended");
                self.plaintext.extend_from_slice(text);
                if self.parse_error.is_none() {
                    self.parse(text);
                }
            }
        }
    }

    /// Feeds `text` to the reader, in place, as `Core::tls_plaintext` does.
    fn parse(&mut self, text: &[u8]) {
        match self.reader.feed(text, &mut self.ops) {
            Fed::Done => {}
            Fed::Paused { .. } | Fed::Stopped => unreachable!("the recorder goes on"),
            Fed::Error(error) => {
                // Everything so far was given, the recorded ops took `consumed`: the rest is
                // what the reader held when it failed.
                let pending = &self.plaintext[self.ops.consumed..];
                let documented = error == ServerError::MaxControlLine
                    && pending.len() > self.reader.parser.max_control_line as usize
                    && unbuffered_state(pending);
                self.parse_error = Some(if documented {
                    Event::UnbufferedTooLong
                } else {
                    Event::Error(error)
                });
            }
        }
    }

    /// The parser's run over the plaintext event by event equals one parse of all of it.
    fn check_parse(self) {
        let mut split = self.ops.events;
        match self.parse_error {
            Some(error) => split.push(error),
            None => {
                assert_eq!(
                    self.ops.consumed + self.reader.carried_bytes(),
                    self.plaintext.len(),
                    "the ops and the reader's carry account for the plaintext"
                );
                split.push(Event::End {
                    leftover: self.reader.carried_bytes(),
                });
            }
        }
        let whole = parse_whole(&self.reader.parser, &self.plaintext);
        let same = whole.iter().zip(&split).take_while(|(a, b)| a == b).count();
        if split.len() == same + 1 && split[same] == Event::UnbufferedTooLong {
            return; // parser_splits's documented difference, after equal events
        }
        assert!(
            whole == split,
            "the parser fed plaintext events differs from one parse after {same} equal events\n\
             whole: {:?}\nevents: {:?}",
            &whole[same..],
            &split[same..],
        );
    }
}

/// Feeds `bytes` as one receive buffer; the session's result.
fn receive(
    session: &mut TlsSession,
    bytes: &[u8],
    sink: &mut Sink,
) -> Result<natsring::fuzzing::TlsReceived, rustls::Error> {
    let mut buffer = bytes.to_vec();
    session.receive(&mut buffer, &mut |event| sink.on_event(event))
}

/// Drives the handshake between `client` and `session`, each client flight cut at `cuts`
/// (offsets, taken modulo the flight's length + 1). Panics when it does not complete.
fn handshake(
    client: &mut ClientConnection,
    session: &mut TlsSession,
    sink: &mut Sink,
    cuts: &[u16],
) {
    for _ in 0..HANDSHAKE_FLIGHTS_MAX {
        let flight = drain(client);
        let mut ends: Vec<usize> = cuts
            .iter()
            .map(|&cut| usize::from(cut) % (flight.len() + 1))
            .chain([flight.len()])
            .collect();
        ends.sort_unstable();
        let mut start = 0;
        for end in ends {
            if end > start {
                receive(session, &flight[start..end], sink).expect("handshake refused");
                start = end;
            }
        }
        let back = sealed(session, b"");
        let early = client_read(client, &back);
        assert!(early.is_empty(), "the server wrote before it was asked to");
        if !client.is_handshaking() && sink.established && !client.wants_write() {
            assert!(session.is_established());
            return;
        }
    }
    panic!("no handshake after {HANDSHAKE_FLIGHTS_MAX} flights");
}

fn handover(settings: u8, mut cursor: Cursor<'_>) {
    let tls12 = settings & 0b1_0000 != 0;
    let early_write = settings & 0b10_0000 != 0;
    let interleave = settings & 0b100_0000 != 0;
    let key_update = settings & 0b1000_0000 != 0;
    let handshake_cuts: Vec<u16> = (0..cursor.byte() % 8).map(|_| cursor.u16()).collect();
    let len = length(&mut cursor);
    let early_len = if early_write {
        (usize::from(cursor.u16()) % (len + 1)).min(EARLY_BYTES_MAX)
    } else {
        0
    };
    let update_at = if key_update {
        usize::from(cursor.u16()) % (len + 1)
    } else {
        0
    };
    let cut_parameters = cursor.take(1 + 2 * 15);
    let plaintext = repeated(cursor.rest(), len);
    let early_len = early_len.min(plaintext.len());
    let update_at = update_at.clamp(early_len, plaintext.len());

    let mut client = client(tls12);
    let mut session = TlsSession::new(&client_tls(false, false), 0).expect("session");
    let mut sink = Sink::new();
    if early_len > 0 {
        client
            .writer()
            .write_all(&plaintext[..early_len])
            .expect("early write");
    }
    handshake(&mut client, &mut session, &mut sink, &handshake_cuts);

    let mut ciphertext = client_records(&mut client, &plaintext[early_len..update_at]);
    if key_update && !tls12 {
        client.refresh_traffic_keys().expect("key update");
        ciphertext.extend_from_slice(&drain(&mut client));
    }
    ciphertext.extend_from_slice(&client_records(&mut client, &plaintext[update_at..]));
    let ends = piece_ends(
        settings >> 2,
        &mut Cursor::new(cut_parameters),
        ciphertext.len(),
    );

    let (mut server_wrote, mut server_sent) = (Vec::new(), Vec::new());
    let mut start = 0;
    for (index, &end) in ends.iter().enumerate() {
        let received = receive(&mut session, &ciphertext[start..end], &mut sink)
            .unwrap_or_else(|error| panic!("piece {start}..{end} refused: {error}"));
        assert!(!received.peer_closed, "close_notify out of nowhere");
        start = end;
        if interleave && index < INTERLEAVED_SEALS_MAX {
            let message = format!("+OK {index}\r\n");
            server_sent.extend_from_slice(&sealed(&mut session, message.as_bytes()));
            server_wrote.extend_from_slice(message.as_bytes());
        }
    }
    assert!(
        sink.plaintext == plaintext,
        "plaintext out ({} bytes) differs from what the client wrote ({} bytes)",
        sink.plaintext.len(),
        plaintext.len()
    );
    assert_eq!(
        session.carried_bytes(),
        0,
        "a carry left at a record boundary"
    );

    // What the server sent (tickets, a key update's answer, the interleaved messages) reads
    // back at the client.
    server_sent.extend_from_slice(&sealed(&mut session, b""));
    assert_eq!(client_read(&mut client, &server_sent), server_wrote);

    client.send_close_notify();
    let close = drain(&mut client);
    let received = receive(&mut session, &close, &mut sink).expect("close_notify refused");
    assert!(received.peer_closed, "close_notify not seen");
    sink.check_parse();
}

/// Feeds `bytes` cut at `ends` until the session refuses; after that it must keep refusing, and
/// `seal` must still take plaintext. Returns whether it refused.
fn feed_noise(session: &mut TlsSession, bytes: &[u8], ends: &[usize], sink: &mut Sink) -> bool {
    let mut start = 0;
    let mut refused = false;
    for &end in ends {
        if receive(session, &bytes[start..end], sink).is_err() {
            refused = true;
            break;
        }
        start = end;
    }
    if refused {
        assert!(
            receive(session, b"\x17\x03\x03\x00\x01x", sink).is_err(),
            "a failed session took more input"
        );
    }
    sealed(session, b"PING\r\n");
    refused
}

fn noise_before_handshake(settings: u8, mut cursor: Cursor<'_>) {
    let with_hello = settings & 0b1_0000 != 0;
    let handshake_first = settings & 0b10_0000 != 0;
    let allow_non_tls = settings & 0b100_0000 != 0;
    let tls12 = settings & 0b1000_0000 != 0;
    let cut_parameters = cursor.take(1 + 2 * 15);
    let patches = cursor.take(1 + 3 * 7);
    let truncate_at = usize::from(cursor.u16());
    let mut bytes = Vec::new();
    if with_hello {
        let hello = drain(&mut client(tls12));
        bytes.extend_from_slice(&hello[..truncate_at.min(hello.len())]);
    }
    bytes.extend_from_slice(cursor.rest());
    patch(&mut Cursor::new(patches), &mut bytes);
    let ends = piece_ends(settings >> 2, &mut Cursor::new(cut_parameters), bytes.len());
    let mut session =
        TlsSession::new(&client_tls(handshake_first, allow_non_tls), 0).expect("session");
    let mut sink = Sink::new();
    feed_noise(&mut session, &bytes, &ends, &mut sink);
}

fn noise_after_handshake(settings: u8, mut cursor: Cursor<'_>) {
    let tls12 = settings & 0b1_0000 != 0;
    let raw = settings & 0b10_0000 != 0;
    let len = length(&mut cursor);
    let cut_parameters = cursor.take(1 + 2 * 15);
    let patches = cursor.take(1 + 3 * 7);
    let rest = cursor.rest();

    let mut client = client(tls12);
    let mut session = TlsSession::new(&client_tls(false, false), 0).expect("session");
    let mut sink = Sink::new();
    handshake(&mut client, &mut session, &mut sink, &[]);
    let plaintext = if raw { Vec::new() } else { repeated(rest, len) };
    let mut bytes = if raw {
        rest.to_vec()
    } else {
        client_records(&mut client, &plaintext)
    };
    let changed = patch(&mut Cursor::new(patches), &mut bytes);
    let ends = piece_ends(settings >> 2, &mut Cursor::new(cut_parameters), bytes.len());
    let refused = feed_noise(&mut session, &bytes, &ends, &mut sink);
    assert!(
        plaintext.starts_with(&sink.plaintext),
        "plaintext out is not a prefix of what the client wrote"
    );
    if !raw && !changed {
        assert!(!refused, "the client's own records refused");
        assert!(sink.plaintext == plaintext, "plaintext lost");
        assert_eq!(
            session.carried_bytes(),
            0,
            "a carry left at a record boundary"
        );
    }
}

fn server_to_client(settings: u8, mut cursor: Cursor<'_>) {
    let tls12 = settings & 0b1_0000 != 0;
    let len = length(&mut cursor);
    let cut_parameters = cursor.take(1 + 2 * 15);
    let plaintext = repeated(cursor.rest(), len);

    let mut client = client(tls12);
    let mut session = TlsSession::new(&client_tls(false, false), 0).expect("session");
    let mut sink = Sink::new();
    handshake(&mut client, &mut session, &mut sink, &[]);
    let ends = piece_ends(
        settings >> 2,
        &mut Cursor::new(cut_parameters),
        plaintext.len(),
    );
    let (mut sent, mut start) = (Vec::new(), 0);
    for end in ends {
        sent.extend_from_slice(&sealed(&mut session, &plaintext[start..end]));
        start = end;
    }
    assert!(
        client_read(&mut client, &sent) == plaintext,
        "the client read something else than the server sealed"
    );
}
