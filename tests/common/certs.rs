//! Certificates for the TLS tests, generated on every run with rcgen so that no private key is
//! ever committed: a CA, a server certificate and two client certificates it signs (with
//! different names and keys), a second CA nothing trusts with a client certificate of its
//! own, an expired server certificate, and route certificates (server and client use) from
//! each CA.
//! Everything is written as PEM files into a directory of its own, removed when the [`Pki`]
//! is dropped.
//!
//! Self-contained (it uses nothing else of `tests/common`), so a bench can include it with
//! `#[path = "../tests/common/certs.rs"] mod certs;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The subject of the client certificate, as nats-server prints it for `verify_and_map`
/// (RFC 2253 order, most specific first).
pub const CLIENT_SUBJECT: &str = "CN=natsring client,OU=tests,O=natsring";
/// The email address in the client certificate's subject alternative names.
pub const CLIENT_EMAIL: &str = "client@natsring.test";
/// The common name of the client certificate.
pub const CLIENT_COMMON_NAME: &str = "natsring client";
/// The subject of the second client certificate, as nats-server prints it.
pub const STRANGER_SUBJECT: &str = "CN=stranger,OU=tests,O=natsring";
/// The email address in the second client certificate's subject alternative names.
pub const STRANGER_EMAIL: &str = "stranger@natsring.test";

/// A certificate and its private key, as PEM text and as files.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Every certificate a TLS test needs, in a directory of its own, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA the servers and clients trust (its certificate only: `ca_file`).
    pub ca_pem: String,
    pub ca_file: PathBuf,
    /// Signed by the CA for `localhost` and `127.0.0.1`, valid from 1975 to 4096.
    pub server: Identity,
    /// Signed by the CA for client authentication: the subject [`CLIENT_SUBJECT`], an email
    /// subject alternative name [`CLIENT_EMAIL`].
    pub client: Identity,
    /// Signed by the CA for client authentication too, with a key of its own: the subject
    /// [`STRANGER_SUBJECT`], the email [`STRANGER_EMAIL`].
    pub stranger: Identity,
    /// A second CA, unrelated to the first: a client that trusts only it rejects the server.
    pub other_ca_pem: String,
    pub other_ca_file: PathBuf,
    /// A client certificate signed by the other CA: a server that verifies clients against
    /// the first CA rejects it.
    pub other_client: Identity,
    /// A server certificate signed by the CA for the same names, expired since 2001.
    pub expired_server: Identity,
    /// A cluster route's certificate, signed by the CA for `localhost` and `127.0.0.1`, for
    /// both server and client authentication (a route presents it on either side).
    pub route: Identity,
    /// The same, signed by the other CA: a node that verifies routes against the first CA
    /// refuses it.
    pub other_route: Identity,
    /// A route certificate signed by the CA for the name `localhost` only (no IP address): a
    /// route dialed by IP address must check it against a configured host name.
    pub route_by_name: Identity,
}

impl Pki {
    /// Generates everything and writes it under a fresh directory in the temporary directory.
    pub fn generate() -> Pki {
        let dir = fresh_dir();

        let (ca_params, ca_key) = ca("natsring test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA self-signs");
        let ca_issuer = Issuer::new(ca_params, ca_key);
        let ca_pem = ca_cert.pem();
        let ca_file = write(&dir, "ca.pem", &ca_pem);

        let (other_params, other_key) = ca("natsring unrelated CA");
        let other_cert = other_params.self_signed(&other_key).expect("CA self-signs");
        let other_issuer = Issuer::new(other_params, other_key);
        let other_ca_pem = other_cert.pem();
        let other_ca_file = write(&dir, "other-ca.pem", &other_ca_pem);

        let server = issue(&dir, "server", server_params(), &ca_issuer);
        let client = issue(
            &dir,
            "client",
            client_params(CLIENT_COMMON_NAME, CLIENT_EMAIL),
            &ca_issuer,
        );
        let stranger = issue(
            &dir,
            "stranger",
            client_params("stranger", STRANGER_EMAIL),
            &ca_issuer,
        );
        let other_client = issue(
            &dir,
            "other-client",
            client_params(CLIENT_COMMON_NAME, CLIENT_EMAIL),
            &other_issuer,
        );
        let mut expired = server_params();
        expired.not_before = date_time_ymd(2000, 1, 1);
        expired.not_after = date_time_ymd(2001, 1, 1);
        let expired_server = issue(&dir, "expired-server", expired, &ca_issuer);
        let route = issue(&dir, "route", route_params(), &ca_issuer);
        let other_route = issue(&dir, "other-route", route_params(), &other_issuer);
        let mut by_name = route_params();
        by_name.subject_alt_names = vec![SanType::DnsName(
            "localhost".try_into().expect("an ASCII name"),
        )];
        let route_by_name = issue(&dir, "route-by-name", by_name, &ca_issuer);

        Pki {
            dir,
            ca_pem,
            ca_file,
            server,
            client,
            stranger,
            other_ca_pem,
            other_ca_file,
            other_client,
            expired_server,
            route,
            other_route,
            route_by_name,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory no other test (or test process) uses.
fn fresh_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "natsring-pki-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the certificate directory");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A CA's parameters and key (ECDSA P-256, rcgen's default, which Go, rustls and OpenSSL all
/// accept).
fn ca(common_name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "natsring");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params, KeyPair::generate().expect("generate a key"))
}

fn server_params() -> CertificateParams {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server names");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A route certificate's parameters: the server's names, for both ends of a connection.
fn route_params() -> CertificateParams {
    let mut params = server_params();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

/// A client certificate's parameters: `O=natsring, OU=tests, CN=<common_name>` (in that
/// order in the certificate) and the email subject alternative name `email`.
fn client_params(common_name: &str, email: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "natsring");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "tests");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = vec![SanType::Rfc822Name(
        email.try_into().expect("an ASCII email"),
    )];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A fresh key and a certificate for it with `params`, signed by `issuer`, written as
/// `<name>-cert.pem` and `<name>-key.pem`.
fn issue(
    dir: &Path,
    name: &str,
    params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Identity {
    let key = KeyPair::generate().expect("generate a key");
    let cert = params.signed_by(&key, issuer).expect("the CA signs");
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    Identity {
        cert_file: write(dir, &format!("{name}-cert.pem"), &cert_pem),
        key_file: write(dir, &format!("{name}-key.pem"), &key_pem),
        cert_pem,
        key_pem,
    }
}
