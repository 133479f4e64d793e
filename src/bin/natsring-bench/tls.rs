//! The generator's TLS client (`--tls`): a blocking rustls connection (the `ring` provider)
//! over the connection's `TcpStream`, and [`Stream`], what every generator connection reads
//! and writes through.
//!
//! NATS over TLS, as nats-server speaks it: the server sends its INFO in plain text (with
//! `tls_required` or `tls_available`), the client then starts the TLS handshake, and
//! everything after it (CONNECT first) goes through TLS. With `handshake_first` in the
//! server's `tls` block (`--tls-first` here, nats-server 2.10.4 and later) the client
//! handshakes at once and the INFO comes through TLS.
//!
//! What this module owns: the client configuration (trusted CA, optional client
//! certificate, no session resumption: every connection is a full handshake, which the
//! `handshakes` scenario measures), and the handshake itself, driven to its end before
//! anything else is sent. A plain connection stays a plain `TcpStream` in [`Stream::Plain`]:
//! the variant is chosen once per connection, and each read or write of up to a megabyte
//! costs one branch on it, never one per message.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use natsring::tls_record::{self, Direction, RecordLayer};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How every connection of the run speaks TLS (`--tls`, `--tls-ca`, `--tls-cert`,
/// `--tls-key`, `--tls-first`).
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// The name the server's certificate must carry: the host of `--server` (an IP address
    /// such as 127.0.0.1, or a DNS name such as localhost).
    server_name: ServerName<'static>,
    /// Handshake before the INFO (the server's `handshake_first`).
    pub first: bool,
}

/// What the command line says about TLS, before the files are read.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM file of the CA the server's certificate chains to (none: the system's roots are
    /// not loaded either, so `--tls` without `--tls-ca` fails at the first handshake).
    pub ca_path: Option<String>,
    /// PEM files of a client certificate and its key, for a server with `verify: true`.
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
    pub first: bool,
    /// `--tls-no-verify`: the server's certificate and handshake signature are not checked
    /// (`NoVerification`): a full handshake costs the generator about what it costs the server
    /// then, so the handshakes mode measures the server.
    pub no_verify: bool,
}

impl Tls {
    /// Reads the files and builds the client configuration for connections to `address`
    /// (HOST:PORT).
    pub fn new(options: &TlsOptions, address: &str) -> io::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if let Some(path) = &options.ca_path {
            for cert in CertificateDer::pem_file_iter(path).map_err(|err| pem_error(path, err))? {
                roots
                    .add(cert.map_err(|err| pem_error(path, err))?)
                    .map_err(|err| io::Error::other(format!("{path}: {err}")))?;
            }
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots);
        let mut config = match (&options.cert_path, &options.key_path) {
            (Some(cert_path), Some(key_path)) => {
                let chain = CertificateDer::pem_file_iter(cert_path)
                    .map_err(|err| pem_error(cert_path, err))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| pem_error(cert_path, err))?;
                let key = PrivateKeyDer::from_pem_file(key_path)
                    .map_err(|err| pem_error(key_path, err))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| io::Error::other(format!("client certificate: {err}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(io::Error::other("--tls-cert and --tls-key go together")),
        };
        // Every connection a full handshake: what a new client costs the server.
        config.resumption = Resumption::disabled();
        if options.no_verify {
            let provider = Arc::clone(config.crypto_provider());
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(NoVerification(provider)));
        }
        // After the handshake the records are sealed and opened here (`RecordStream`).
        config.enable_secret_extraction = true;
        let host = match address.rsplit_once(':') {
            Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => address,
        };
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|err| io::Error::other(format!("--server host {host:?}: {err}")))?;
        Ok(Tls {
            config: Arc::new(config),
            server_name,
            first: options.first,
        })
    }

    /// Runs the TLS handshake over `socket` to its end (the read timeout set on the socket
    /// bounds each wait).
    pub fn handshake(&self, mut socket: TcpStream) -> io::Result<Stream> {
        let mut connection =
            ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
                .map_err(io::Error::other)?;
        while connection.is_handshaking() {
            let (read, written) = connection
                .complete_io(&mut socket)
                .map_err(|err| io::Error::new(err.kind(), format!("TLS handshake: {err}")))?;
            if read == 0 && written == 0 && connection.is_handshaking() {
                return Err(io::Error::other(
                    "TLS handshake: server closed the connection",
                ));
            }
        }
        if self.first {
            // The server's INFO follows its handshake at once: rustls may hold it already,
            // and it would be lost with the connection, so rustls keeps the records.
            return Ok(Stream::Tls(Box::new(StreamOwned::new(connection, socket))));
        }
        // The server sends nothing after its handshake before CONNECT (but session tickets,
        // which come with its Finished and rustls has read): the records are ours from here.
        let tls13 = connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let secrets = connection
            .dangerous_extract_secrets()
            .map_err(|err| io::Error::other(format!("TLS secrets: {err}")))?;
        let layer = RecordLayer {
            tls13,
            rx: Direction::new(secrets.rx).map_err(io::Error::other)?,
            tx: Direction::new(secrets.tx).map_err(io::Error::other)?,
        };
        Ok(Stream::Records(Box::new(RecordStream::new(socket, layer))))
    }
}

/// Accepts any server certificate and handshake signature (`--tls-no-verify`): for a load
/// generator that measures what handshakes cost the server, never for anything else.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn pem_error(path: &str, err: rustls::pki_types::pem::Error) -> io::Error {
    io::Error::other(format!("{path}: {err}"))
}

/// A generator connection's byte stream: plain TCP, or TLS over it. Chosen once, when the
/// connection is made.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a rustls connection is a few hundred bytes beside a socket's four.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// TLS after the handshake, sealed and opened in place (`natsring::tls_record`, what the
    /// server's shards use): rustls's buffered stream copies every record twice and
    /// allocates for each, and at 1 KiB publishes that made the generator the bottleneck.
    Records(Box<RecordStream>),
}

/// Ciphertext read at a time (and the largest record fits).
const INPUT_BYTES: usize = 256 * 1024;

/// TLS records over a socket, with the keys rustls negotiated.
pub struct RecordStream {
    socket: TcpStream,
    layer: RecordLayer,
    /// Ciphertext read: `start..filled` is not opened yet.
    input: Vec<u8>,
    start: usize,
    filled: usize,
    /// Opened plaintext in `input` not handed out yet.
    plaintext: std::ops::Range<usize>,
    /// Sealed records not written yet (a nonblocking socket took part of them): `sent..`.
    output: Vec<u8>,
    sent: usize,
}

impl RecordStream {
    fn new(socket: TcpStream, layer: RecordLayer) -> RecordStream {
        RecordStream {
            socket,
            layer,
            input: vec![0; INPUT_BYTES],
            start: 0,
            filled: 0,
            plaintext: 0..0,
            output: Vec::new(),
            sent: 0,
        }
    }

    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.plaintext.is_empty() {
                let len = buffer.len().min(self.plaintext.len());
                let from = self.plaintext.start;
                buffer[..len].copy_from_slice(&self.input[from..from + len]);
                self.plaintext.start += len;
                return Ok(len);
            }
            let waiting = &self.input[self.start..self.filled];
            if let Some(header) = waiting.get(..tls_record::HEADER_BYTES) {
                let header: [u8; tls_record::HEADER_BYTES] = header.try_into().expect("five");
                let body = tls_record::body_len(&header).map_err(io::Error::other)?;
                let end = self.start + tls_record::HEADER_BYTES + body;
                if end <= self.filled {
                    let body_start = self.start + tls_record::HEADER_BYTES;
                    let (content_type, opened) = self
                        .layer
                        .open(&header, &mut self.input[body_start..end])
                        .map_err(io::Error::other)?;
                    let (len, at) = (opened.len(), opened.as_ptr() as usize);
                    let offset = at - self.input.as_ptr() as usize;
                    self.start = end;
                    match content_type {
                        tls_record::APPLICATION_DATA => self.plaintext = offset..offset + len,
                        // Session tickets after the handshake: not used (no resumption).
                        tls_record::HANDSHAKE => {}
                        tls_record::ALERT => return Ok(0),
                        _ => return Err(io::Error::other("an unexpected TLS record")),
                    }
                    continue;
                }
            }
            // Keep the incomplete record at the front, then read more.
            self.input.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
            let read = self.socket.read(&mut self.input[self.filled..])?;
            if read == 0 {
                return Ok(0);
            }
            self.filled += read;
        }
    }

    /// Writes what is sealed and not written yet; a nonblocking socket's WouldBlock is the
    /// caller's.
    fn drain(&mut self) -> io::Result<()> {
        while self.sent < self.output.len() {
            match self.socket.write(&self.output[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.sent += written,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.output.clear();
        self.sent = 0;
        Ok(())
    }

    /// Seals all of `bytes` and writes what the socket takes (the rest on the next call).
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.drain()?;
        self.layer
            .seal(tls_record::APPLICATION_DATA, bytes, &mut self.output);
        match self.drain() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(bytes.len()),
            other => other.map(|()| bytes.len()),
        }
    }
}

/// A publisher's whole run of writes, sealed before the clock starts
/// ([`Stream::preseal`]): what goes on the wire is exactly what sealing each write as it is
/// made would send, but the publisher's core does no AEAD and no plaintext copy while the
/// server is measured. Write i carries the frames the publisher's write i would (all
/// `frames_per_write` but the last).
pub struct Presealed {
    bytes: Vec<u8>,
    /// Where each write's records end in `bytes`.
    ends: Vec<usize>,
}

impl Presealed {
    /// The writes in order: the sealed records of each.
    pub fn writes(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let records = &self.bytes[start..end];
            start = end;
            records
        })
    }
}

/// The most ciphertext the publishers of a run seal ahead, all together (`Stream::preseal`
/// gets its share): above it, they seal as they write.
pub const PRESEAL_BYTES_MAX: usize = 6 << 30;

impl Stream {
    /// The TCP socket underneath (socket options, the descriptor to poll).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &tls.sock,
            Stream::Records(records) => &records.socket,
        }
    }

    /// The TCP socket of a plain stream, for a TLS handshake over it (`Tls::handshake`).
    ///
    /// # Panics
    /// On a TLS stream: its socket carries records that the stream alone can read.
    pub fn into_plain_socket(self) -> TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(_) | Stream::Records(_) => {
                panic!("into_plain_socket on a TLS stream: a handshake over TLS")
            }
        }
    }

    /// Seals `count` frames of `run` (`frame_len` bytes each, `frames_per_write` at most per
    /// write) ahead of time, for a stream whose records are sealed here; none for a plain
    /// stream, for rustls's own, or above `budget` bytes.
    pub fn preseal(
        &mut self,
        run: &[u8],
        frame_len: usize,
        frames_per_write: usize,
        count: u64,
        budget: usize,
    ) -> Option<Presealed> {
        let Stream::Records(records) = self else {
            return None;
        };
        let write_bytes = frames_per_write * frame_len;
        let records_per_write = write_bytes.div_ceil(tls_record::PLAINTEXT_BYTES_MAX);
        let writes = usize::try_from(count.div_ceil(frames_per_write as u64)).ok()?;
        let sealed =
            writes.checked_mul(write_bytes + records_per_write * tls_record::OVERHEAD_BYTES)?;
        if sealed > budget {
            return None;
        }
        let mut presealed = Presealed {
            bytes: Vec::with_capacity(sealed),
            ends: Vec::with_capacity(writes),
        };
        let mut left = count;
        while left > 0 {
            let frames = left.min(frames_per_write as u64);
            records.layer.seal(
                tls_record::APPLICATION_DATA,
                &run[..frames as usize * frame_len],
                &mut presealed.bytes,
            );
            presealed.ends.push(presealed.bytes.len());
            left -= frames;
        }
        Some(presealed)
    }

    /// Writes records sealed by [`Stream::preseal`] on this stream, as they are.
    pub fn write_sealed(&mut self, sealed: &[u8]) -> io::Result<()> {
        match self {
            Stream::Records(records) => {
                records.drain()?;
                records.socket.write_all(sealed)
            }
            Stream::Plain(_) | Stream::Tls(_) => Err(io::Error::other(
                "write_sealed on a stream that does not seal its own records",
            )),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket().set_nonblocking(nonblocking)
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buffer),
            Stream::Tls(tls) => tls.read(buffer),
            Stream::Records(records) => records.read(buffer),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(bytes),
            Stream::Tls(tls) => tls.write(bytes),
            Stream::Records(records) => records.write(bytes),
        }
    }

    /// A TLS stream's `write` may leave encrypted bytes queued when the socket blocks (a
    /// nonblocking one): `write_all` flushes so that whatever was written is on its way.
    #[inline]
    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.write_all(bytes),
            Stream::Tls(tls) => {
                while !bytes.is_empty() {
                    match tls.write(bytes) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(written) => bytes = &bytes[written..],
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                tls.flush()
            }
            Stream::Records(records) => {
                records.write(bytes)?;
                records.drain()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
            Stream::Records(records) => records.drain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_name_is_the_host_of_the_address() {
        let options = TlsOptions::default();
        let ip = Tls::new(&options, "127.0.0.1:4222").unwrap();
        assert!(matches!(ip.server_name, ServerName::IpAddress(_)));
        let dns = Tls::new(&options, "localhost:4222").unwrap();
        assert_eq!(dns.server_name.to_str(), "localhost");
        let v6 = Tls::new(&options, "[::1]:4222").unwrap();
        assert!(matches!(v6.server_name, ServerName::IpAddress(_)));
    }

    fn record_stream(socket: TcpStream) -> Stream {
        let secrets = || {
            let key = rustls::crypto::cipher::AeadKey::from([7; 32]);
            let iv = rustls::crypto::cipher::Iv::new([9; 12]);
            (
                0,
                rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv },
            )
        };
        let layer = RecordLayer {
            tls13: true,
            rx: Direction::new(secrets()).unwrap(),
            tx: Direction::new(secrets()).unwrap(),
        };
        Stream::Records(Box::new(RecordStream::new(socket, layer)))
    }

    #[test]
    fn presealed_writes_are_the_records_sealing_as_it_goes_would_send() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut publisher =
            record_stream(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let mut server = record_stream(listener.accept().unwrap().0);
        // Frames of 7,000 bytes, three a write: writes of 21,000 bytes, two records each.
        let frame: Vec<u8> = (0..7_000).map(|i| (i % 251) as u8).collect();
        let run = frame.repeat(3);
        let presealed = publisher.preseal(&run, frame.len(), 3, 8, 1 << 20).unwrap();
        // Writes of 3, 3 and 2 frames.
        let sizes: Vec<usize> = presealed.writes().map(<[u8]>::len).collect();
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert!(sizes[0] == sizes[1] && sizes[2] < sizes[1], "{sizes:?}");
        let reader = std::thread::spawn(move || {
            let mut plaintext = vec![0; 8 * 7_000 + 6];
            server.read_exact(&mut plaintext).unwrap();
            plaintext
        });
        for records in presealed.writes() {
            publisher.write_sealed(records).unwrap();
        }
        // Sealing goes on from the presealed records' sequence numbers.
        publisher.write_all(b"PING\r\n").unwrap();
        let plaintext = reader.join().unwrap();
        assert!(
            plaintext[..8 * 7_000] == frame.repeat(8),
            "the frames, in order"
        );
        assert_eq!(&plaintext[8 * 7_000..], b"PING\r\n");
        assert!(
            Stream::Plain(TcpStream::connect(listener.local_addr().unwrap()).unwrap())
                .preseal(&run, frame.len(), 3, 8, 1 << 20)
                .is_none()
        );
        assert!(
            publisher.preseal(&run, frame.len(), 3, 8, 1_000).is_none(),
            "over the budget"
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let options = TlsOptions {
            cert_path: Some("client-cert.pem".into()),
            ..TlsOptions::default()
        };
        let err = Tls::new(&options, "127.0.0.1:4222").unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
    }
}
