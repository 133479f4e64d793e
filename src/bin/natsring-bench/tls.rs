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
        Ok(Stream::Tls(Box::new(StreamOwned::new(connection, socket))))
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
}

impl Stream {
    /// The TCP socket underneath (socket options, the descriptor to poll).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &tls.sock,
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
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(bytes),
            Stream::Tls(tls) => tls.write(bytes),
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
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
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
