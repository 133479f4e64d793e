//! Client TLS: [`TlsOptions`] into a rustls `ServerConfig`, and what nats-server reads from a
//! client's certificate (the names `verify_and_map` tries, the key `pinned_certs` hashes, what
//! `/connz` shows of each certificate a client sent).
//!
//! What it owns: reading the PEM certificate chain, key and CA file (with nats-server's error
//! texts where Go has one), and the choice of what rustls offers: ring as the crypto provider,
//! restricted to `cipher_suites` and `curve_preferences` when given; TLS 1.2 and 1.3, or 1.3
//! alone with `min_version: "1.3"`; a client certificate required (and checked against
//! `ca_file`) exactly with `verify` or `verify_and_map`; no session resumption (no tickets, no
//! session cache: nats clients do not resume, and each cache entry is memory per client); no
//! ALPN. What it must not touch: sockets, shards, options (it reads them).
//!
//! [`load_route`] builds both sides of a cluster route's TLS (`cluster { tls {} }`): mutual
//! verification against `ca_file`, as nats-server forces it for clusters, with `insecure`
//! skipping the check of a dialed peer's certificate.
//!
//! [`load`] is called by the configuration layer to check a file or flags (nats-server loads
//! the files while it parses, so `-t` fails on a missing key) and again by the server for the
//! configuration it serves.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::DigitallySignedStruct;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::auth::dn::DistinguishedName;
use crate::config::conf::path_error_text;
use crate::config::tls::{cipher_suite, curve, CipherSupport};
use crate::config::{TlsOptions, TlsVersion};

/// A loaded client TLS configuration, for the shards.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// What rustls serves each client connection with.
    pub config: Arc<ServerConfig>,
    /// What HTTPS monitoring (`https_port`) serves with: `config` without client certificates,
    /// as nats-server's monitoring clones its TLS configuration with `ClientAuth` set to
    /// `NoClientCert` (`verify` does not apply to it). The same `Arc` as `config` when that
    /// asks for none.
    pub monitoring_config: Arc<ServerConfig>,
    /// When the server's (leaf) certificate expires, as `/varz`'s `tls_cert_not_after` says;
    /// `None` if its date does not parse (Go reports the zero time then, and omits it).
    pub cert_not_after: Option<SystemTime>,
    /// SHA-256 of the SubjectPublicKeyInfo of each client certificate allowed (`pinned_certs`);
    /// empty: any certificate `config` accepts. Check with [`spki_sha256`] of the client's
    /// leaf certificate after the handshake (nats-server closes the connection otherwise).
    pub pinned_certs: Vec<[u8; 32]>,
}

/// Prefix of nats-server's errors about the certificate and key files.
const PAIR_ERROR: &str = "error parsing X509 certificate/key pair: ";

/// Reads the certificate chain, key and CA file of `options` and builds the rustls server
/// configuration. The error is the text nats-server gives for the same fault where it has one
/// (`error parsing X509 certificate/key pair: open cert.pem: no such file or directory`,
/// `... tls: private key does not match public key`, `failed to parse root ca certificate`).
pub fn load(options: &TlsOptions) -> Result<ServerTls, String> {
    let provider = Arc::new(provider(options)?);
    let chain = read_chain(&options.cert_file)?;
    let key = read_key(&options.key_file)?;
    let cert_not_after = chain.first().and_then(|leaf| not_after(leaf));
    // nats-server reads the CA file even when it does not verify clients (and fails on it).
    let roots = options.ca_file.as_deref().map(read_roots).transpose()?;
    let versions: &[&SupportedProtocolVersion] = match options.min_version {
        Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
        Some(TlsVersion::V1_2) | None => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| format!("TLS configuration: {error}"))?;
    let verify = options.verify || options.verify_and_map;
    let builder = if verify {
        let Some(roots) = roots else {
            return Err(
                "'verify' without 'ca_file' is not supported by natsring yet (client certificates are checked against 'ca_file' only)"
                    .to_string(),
            );
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|error| format!("TLS client verification: {error}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let monitoring_config = if verify {
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|error| format!("TLS configuration: {error}"))?;
        Some(finished(
            builder
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(pair_error)?,
        ))
    } else {
        None
    };
    let config = finished(builder.with_single_cert(chain, key).map_err(pair_error)?);
    Ok(ServerTls {
        monitoring_config: monitoring_config.unwrap_or_else(|| Arc::clone(&config)),
        config,
        cert_not_after,
        pinned_certs: options.pinned_certs.clone(),
    })
}

/// A loaded cluster TLS configuration (`cluster { tls {} }`), for the shards' routes.
#[derive(Debug, Clone)]
pub struct RouteTlsConfigs {
    /// What an accepted route is served with: the peer's certificate is required and checked
    /// against `ca_file`, whatever `verify` says (nats-server forces
    /// `RequireAndVerifyClientCert` for clusters).
    pub server: Arc<ServerConfig>,
    /// What a solicited route dials with: the same certificate presented, the peer's
    /// checked against the same `ca_file` (nats-server mirrors `ClientCAs` into `RootCAs`)
    /// and against the route URL's host.
    pub client: Arc<ClientConfig>,
    /// When the certificate expires (`/varz`'s `cluster.tls_cert_not_after`).
    pub cert_not_after: Option<SystemTime>,
}

/// Reads the files of a cluster's `tls {}` and builds both sides of a route's TLS, as
/// nats-server's `getTLSConfig` does for clusters: mutual verification against `ca_file`.
/// Without `ca_file` nats-server would verify against the system's roots; natsring refuses
/// that (a cluster's peers are its own, and its CA is named).
pub fn load_route(options: &TlsOptions) -> Result<RouteTlsConfigs, String> {
    let provider = Arc::new(provider(options)?);
    let chain = read_chain(&options.cert_file)?;
    let key = read_key(&options.key_file)?;
    let cert_not_after = chain.first().and_then(|leaf| not_after(leaf));
    let Some(ca_file) = options.ca_file.as_deref() else {
        return Err(
            "cluster 'tls' without 'ca_file' is not supported by natsring yet (route certificates are checked against 'ca_file' only)"
                .to_string(),
        );
    };
    let roots = Arc::new(read_roots(ca_file)?);
    let versions: &[&SupportedProtocolVersion] = match options.min_version {
        Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
        Some(TlsVersion::V1_2) | None => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|error| format!("TLS client verification: {error}"))?;
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| format!("TLS configuration: {error}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(pair_error)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| format!("TLS configuration: {error}"))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut client = builder
        .with_client_auth_cert(chain, key)
        .map_err(pair_error)?;
    // As nats-server's routes: no session resumption (Go's `ClientSessionCache` is unset).
    client.resumption = Resumption::disabled();
    // The shards take the record layer over once the handshake is done, as on the server
    // side (src/shard/tls_records.rs).
    client.enable_secret_extraction = true;
    Ok(RouteTlsConfigs {
        server: finished(server),
        client: Arc::new(client),
        cert_not_after,
    })
}

/// What a solicited route checks of its peer's certificate with `insecure`: nothing, as Go's
/// `InsecureSkipVerify` (neither the chain nor the name); the handshake's signatures are still
/// checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A certificate's `notAfter`.
fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let seconds = certificate.validity().not_after.timestamp();
    match u64::try_from(seconds) {
        Ok(after) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs())),
    }
}

/// Go's text for a certificate and key rustls refuses.
fn pair_error(error: rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            format!("{PAIR_ERROR}tls: private key does not match public key")
        }
        rustls::Error::InvalidCertificate(_) => {
            format!("{PAIR_ERROR}x509: malformed certificate")
        }
        rustls::Error::General(_) => format!("{PAIR_ERROR}tls: failed to parse private key"),
        other => format!("{PAIR_ERROR}{other}"),
    }
}

/// What every configuration gets: no session resumption, no ALPN (so HTTPS monitoring speaks
/// HTTP/1.1 only, as nats-server's, whose TLS configuration names no `h2`).
fn finished(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    // The shards take the record layer over once the handshake is done (src/shard/
    // tls_records.rs): rustls hands them the traffic secrets, as it would to kTLS.
    config.enable_secret_extraction = true;
    config.ignore_client_order = true;
    debug_assert!(config.alpn_protocols.is_empty());
    Arc::new(config)
}

/// ring's provider, offering only the suites and groups the options name (in their order).
fn provider(options: &TlsOptions) -> Result<CryptoProvider, String> {
    let mut provider = ring::default_provider();
    // Go's server order where the CPU has AES instructions (its `cipherSuitesPreferenceOrder`),
    // which the server follows rather than the client's (`ignore_client_order`): TLS 1.3 first,
    // AES-128-GCM before AES-256-GCM before ChaCha20. AES-128's suites hash with SHA-256, which
    // this CPU does in hardware; a TLS 1.3 handshake on AES-256's SHA-384 cost the shard 9% of
    // its time in SHA-512 blocks.
    provider.cipher_suites.sort_by_key(|suite| {
        let aead = match suite.suite().as_str().unwrap_or_default() {
            name if name.contains("AES_128") => 0,
            name if name.contains("AES_256") => 1,
            _ => 2,
        };
        (suite.version() != &rustls::version::TLS13, aead)
    });
    if !options.cipher_suites.is_empty() {
        // As Go: the list chooses TLS 1.2's suites; TLS 1.3 always offers its own.
        let mut suites: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|suite| suite.version() == &rustls::version::TLS13)
            .collect();
        for name in &options.cipher_suites {
            if let Some(suite) = tls12_suite(name)? {
                suites.push(suite);
            }
        }
        provider.cipher_suites = suites;
    }
    if !options.curve_preferences.is_empty() {
        provider.kx_groups = options
            .curve_preferences
            .iter()
            .map(|name| kx_group(name))
            .collect::<Result<_, _>>()?;
    }
    Ok(provider)
}

/// rustls' TLS 1.2 suite for a Go suite name; `None` for a TLS 1.3 name.
fn tls12_suite(name: &str) -> Result<Option<SupportedCipherSuite>, String> {
    use ring::cipher_suite as suite;
    let found = match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => {
            return match cipher_suite(name) {
                Some(CipherSupport::Tls13) => Ok(None),
                Some(CipherSupport::Tls12) => {
                    unreachable!("cipher suite {name} is supported but not mapped")
                }
                Some(CipherSupport::Missing | CipherSupport::Insecure) => Err(format!(
                    "cipher suite {name} is not supported by natsring (its TLS library implements no CBC, 3DES or RC4 suites)"
                )),
                None => Err(format!("unrecognized cipher {name}")),
            }
        }
    };
    debug_assert_eq!(cipher_suite(name), Some(CipherSupport::Tls12));
    Ok(Some(found))
}

/// rustls' key exchange group for a Go curve name.
fn kx_group(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    match name {
        "X25519" => Ok(ring::kx_group::X25519),
        "CurveP256" => Ok(ring::kx_group::SECP256R1),
        "CurveP384" => Ok(ring::kx_group::SECP384R1),
        _ => Err(match curve(name) {
            Some(_) => format!(
                "curve preference {name} is not supported by natsring (its TLS library implements X25519, CurveP256 and CurveP384)"
            ),
            None => format!("unrecognized curve preference {name}"),
        }),
    }
}

/// A file's bytes; the error is Go's `os.ReadFile` text (`open x: no such file or directory`).
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| {
        let operation = if error.raw_os_error() == Some(libc::EISDIR) {
            "read"
        } else {
            "open"
        };
        path_error_text(operation, &path.display().to_string(), &error)
    })
}

/// The PEM sections of `bytes` rustls knows, in order; a malformed section ends them (as Go's
/// `pem.Decode` finds nothing more).
fn sections(bytes: &[u8]) -> Vec<(SectionKind, Vec<u8>)> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .map_while(Result::ok)
        .collect()
}

/// The PEM type of a section, as Go names it in its messages.
fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "UNKNOWN",
    }
}

/// The certificate chain of `cert_file`, as Go's `tls.X509KeyPair` reads it.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path).map_err(|error| format!("{PAIR_ERROR}{error}"))?;
    let mut chain = Vec::new();
    let mut skipped = Vec::new();
    for (kind, der) in sections(&bytes) {
        match kind {
            SectionKind::Certificate => chain.push(CertificateDer::from(der)),
            other => skipped.push(label(other)),
        }
    }
    if !chain.is_empty() {
        return Ok(chain);
    }
    Err(format!(
        "{PAIR_ERROR}{}",
        match skipped.as_slice() {
            [] => "tls: failed to find any PEM data in certificate input".to_string(),
            [only] if only.ends_with("PRIVATE KEY") => "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched".to_string(),
            types => format!("tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: [{}]", types.join(" ")),
        }
    ))
}

/// The private key of `key_file` (the first PKCS#8, PKCS#1 or SEC1 section), as Go's
/// `tls.X509KeyPair` looks for it.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path).map_err(|error| format!("{PAIR_ERROR}{error}"))?;
    let mut skipped = Vec::new();
    for (kind, der) in sections(&bytes) {
        if let Some(key) = PrivateKeyDer::from_pem(kind, der) {
            return Ok(key);
        }
        skipped.push(label(kind));
    }
    Err(format!(
        "{PAIR_ERROR}{}",
        match skipped.as_slice() {
            [] => "tls: failed to find any PEM data in key input".to_string(),
            ["CERTIFICATE"] => "tls: found a certificate rather than a key in the PEM for the private key".to_string(),
            types => format!("tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: [{}]", types.join(" ")),
        }
    ))
}

/// The CA certificates of `ca_file`; nats-server's errors (Go's `AppendCertsFromPEM` takes
/// what parses and fails only when nothing does).
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let bytes = read(path)?;
    let mut roots = RootCertStore::empty();
    let certificates = sections(&bytes)
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der));
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err("failed to parse root ca certificate".to_string());
    }
    Ok(roots)
}

/// SHA-256 of a certificate's DER SubjectPublicKeyInfo: what nats-server's `pinned_certs` list
/// (as hex). `None` when `der` is not a certificate.
pub fn spki_sha256(der: &[u8]) -> Option<[u8; 32]> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(Sha256::digest(certificate.public_key().raw).into())
}

/// What nats-server's `verify_and_map` reads of a client's leaf certificate to find its user
/// (`checkClientTLSCertSubject`), in the order it tries it. Made once, when the handshake ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentities {
    /// The e-mail addresses, then the DNS names, then the URIs of the subject alternative
    /// names: each looked up as a user name.
    pub alternative_names: Vec<String>,
    /// The subject as go-ldap reads the raw subject (`FromRawCertSubject`: RDNs and their
    /// attributes last first), compared with each user whose name parses as a distinguished
    /// name; `None` where go-ldap fails (an attribute type outside its table, such as an
    /// e-mail address, or a value that is no string): then no user is compared.
    pub subject: Option<DistinguishedName>,
    /// The subject as Go prints it (`pkix.Name.ToRDNSequence().String()`: SERIALNUMBER, CN,
    /// OU, O, POSTALCODE, STREET, L, ST, C, several values of one type joined by `+`, other
    /// attributes left out, RFC 2253 escapes) followed by its domain components when it has
    /// some (`CN=x,O=y,DC=a,DC=b`), then the same without them: each looked up as a user name.
    pub subject_names: Vec<String>,
}

/// The identities of a client certificate (see [`CertIdentities`]); empty names are left out,
/// as they match no user. `None` when `der` is not a certificate, or names nothing at all (no
/// alternative name and an empty subject: nats-server's "User required in cert, none found").
pub fn cert_identities(der: &[u8]) -> Option<CertIdentities> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut alternative_names = Vec::new();
    if let Ok(Some(names)) = certificate.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        let general_names = &names.value.general_names;
        for general_name in general_names {
            if let GeneralName::RFC822Name(email) = general_name {
                alternative_names.push(email.to_string());
            }
        }
        for general_name in general_names {
            if let GeneralName::DNSName(dns) = general_name {
                alternative_names.push(dns.to_string());
            }
        }
        for general_name in general_names {
            if let GeneralName::URI(uri) = general_name {
                alternative_names.push(uri.to_string());
            }
        }
    }
    let name = certificate.subject();
    if alternative_names.is_empty() && go_name_string(name).is_empty() {
        return None;
    }
    let subject = go_subject(name);
    let domain_components: Vec<String> = name
        .iter_attributes()
        .filter(|attribute| attribute.attr_type().to_id_string() == DOMAIN_COMPONENT)
        .filter_map(|attribute| attribute.as_str().ok())
        .map(|value| format!("DC={value}"))
        .collect();
    let mut subject_names = Vec::new();
    if !domain_components.is_empty() {
        subject_names.push(format!("{subject},{}", domain_components.join(",")));
    }
    subject_names.push(subject);
    alternative_names.retain(|identity| !identity.is_empty());
    subject_names.retain(|identity| !identity.is_empty());
    Some(CertIdentities {
        alternative_names,
        subject: ldap_subject(name),
        subject_names,
    })
}

/// go-ldap's `FromRawCertSubject`: the RDNs last first, each one's attributes last first, each
/// type by its name in go-ldap's table; `None` for a type outside it or a value that is no
/// string.
fn ldap_subject(name: &x509_parser::x509::X509Name<'_>) -> Option<DistinguishedName> {
    let mut rdns = Vec::new();
    for rdn in name.iter().collect::<Vec<_>>().into_iter().rev() {
        let mut attributes = Vec::new();
        for attribute in rdn.iter().collect::<Vec<_>>().into_iter().rev() {
            let oid = attribute.attr_type().to_id_string();
            let (_, kind) = LDAP_ATTRIBUTE_TYPES
                .iter()
                .find(|(known, _)| *known == oid)?;
            attributes.push(crate::auth::dn::Attribute {
                kind: kind.as_bytes().to_vec(),
                value: attribute.as_str().ok()?.as_bytes().to_vec(),
            });
        }
        if !attributes.is_empty() {
            rdns.push(attributes);
        }
    }
    Some(DistinguishedName { rdns })
}

/// go-ldap's `attributeTypeNames`: the attribute types it reads from a certificate.
const LDAP_ATTRIBUTE_TYPES: [(&str, &str); 10] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
    (DOMAIN_COMPONENT, "DC"),
];

/// One certificate of the chain a client sent, as nats-server's `/connz?auth=1` shows it
/// (`makePeerCerts`): its subject as Go prints it, and SHA-256 of its SubjectPublicKeyInfo and
/// of the whole certificate, in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub subject: String,
    pub spki_sha256: String,
    pub cert_sha256: String,
}

/// [`PeerCert`] of a certificate; `None` when `der` is not one.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(PeerCert {
        subject: go_name_string(certificate.subject()),
        spki_sha256: data_encoding::HEXLOWER.encode(&Sha256::digest(certificate.public_key().raw)),
        cert_sha256: data_encoding::HEXLOWER.encode(&Sha256::digest(der)),
    })
}

/// A name as Go's `pkix.Name.String()` prints it: [`go_subject`]'s attributes, then every
/// other attribute, last first, as its OID and `#` and the hex of its value's DER as Go's
/// `asn1.Marshal` writes a string again (a PrintableString when every character allows it,
/// else a UTF8String).
fn go_name_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts = vec![go_subject(name)];
    parts.retain(|part| !part.is_empty());
    let others: Vec<_> = name
        .iter_attributes()
        .filter(|attribute| {
            let oid = attribute.attr_type().to_id_string();
            !SUBJECT_ATTRIBUTES.iter().any(|(known, _, _)| *known == oid)
        })
        .collect();
    for attribute in others.into_iter().rev() {
        let Ok(value) = attribute.as_str() else {
            continue;
        };
        parts.push(format!(
            "{}=#{}",
            attribute.attr_type().to_id_string(),
            data_encoding::HEXLOWER.encode(&go_string_der(value))
        ));
    }
    parts.join(",")
}

/// Go's `asn1.Marshal` of a string: PrintableString (tag 19) when every character is one
/// PrintableString allows (letters, digits, space and `'()+,-./:=?`), else UTF8String (12).
fn go_string_der(value: &str) -> Vec<u8> {
    let printable = value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&byte));
    let mut der = vec![if printable { 19 } else { 12 }];
    let length = value.len();
    if length < 128 {
        der.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let significant = &bytes[bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1)..];
        der.push(0x80 | significant.len() as u8);
        der.extend_from_slice(significant);
    }
    der.extend_from_slice(value.as_bytes());
    der
}

/// The `domainComponent` attribute's OID.
const DOMAIN_COMPONENT: &str = "0.9.2342.19200300.100.1.25";

/// The attributes Go keeps in a `pkix.Name`, by OID, in the order `String()` prints them, with
/// the name it prints and whether the name keeps only the last value (`CommonName`,
/// `SerialNumber`) or all of them.
const SUBJECT_ATTRIBUTES: [(&str, &str, bool); 9] = [
    ("2.5.4.5", "SERIALNUMBER", true),
    ("2.5.4.3", "CN", true),
    ("2.5.4.11", "OU", false),
    ("2.5.4.10", "O", false),
    ("2.5.4.17", "POSTALCODE", false),
    ("2.5.4.9", "STREET", false),
    ("2.5.4.7", "L", false),
    ("2.5.4.8", "ST", false),
    ("2.5.4.6", "C", false),
];

/// A subject as Go's `pkix.Name.ToRDNSequence().String()` prints it.
fn go_subject(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for (oid, type_name, last_only) in SUBJECT_ATTRIBUTES {
        let mut values: Vec<&str> = name
            .iter_attributes()
            .filter(|attribute| attribute.attr_type().to_id_string() == oid)
            .filter_map(|attribute| attribute.as_str().ok())
            .collect();
        if last_only && values.len() > 1 {
            values.drain(..values.len() - 1);
        }
        if values.is_empty() {
            continue;
        }
        let set: Vec<String> = values
            .iter()
            .map(|value| format!("{type_name}={}", escape_rfc2253(value)))
            .collect();
        parts.push(set.join("+"));
    }
    parts.join(",")
}

/// Go's escaping of an attribute value in `RDNSequence.String()`.
fn escape_rfc2253(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let last = value.len().saturating_sub(1);
    for (index, character) in value.char_indices() {
        let escape = match character {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => index == 0 || index == last,
            '#' => index == 0,
            _ => false,
        };
        if escape {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Certificates and keys for tests, made by rcgen (never committed).
#[cfg(test)]
pub(crate) mod test_files {
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system's temporary one.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "natsring-tls-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A self-signed certificate for `localhost` and its key (PKCS#8), written to
    /// `dir/<name>-cert.pem` and `dir/<name>-key.pem`; returns both paths.
    pub(crate) fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_file = dir.join(format!("{name}-cert.pem"));
        let key_file = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_file, pair.cert.pem()).unwrap();
        std::fs::write(&key_file, pair.signing_key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

#[cfg(test)]
mod tests {
    use super::test_files::{temp_dir, write_pair};
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SanType};

    #[test]
    fn loads_a_pair_without_resumption_or_alpn() {
        let dir = temp_dir("load");
        let (cert_file, key_file) = write_pair(&dir, "server");
        let mut options = TlsOptions::new(cert_file.clone(), key_file);
        options.pinned_certs = vec![[7; 32]];
        let loaded = load(&options).unwrap();
        assert_eq!(loaded.config.send_tls13_tickets, 0);
        // The shards take the record layer over, and the server's suite order decides.
        assert!(loaded.config.enable_secret_extraction);
        assert!(loaded.config.ignore_client_order);
        assert!(loaded.config.alpn_protocols.is_empty());
        assert!(!loaded.config.session_storage.can_cache());
        assert_eq!(loaded.pinned_certs, [[7; 32]]);
        // rcgen's default validity ends in 4096.
        assert_eq!(
            crate::monitor::gotime::rfc3339_utc(loaded.cert_not_after.unwrap()),
            "4096-01-01T00:00:00Z"
        );
        // ring's defaults when nothing is restricted.
        let provider = loaded.config.crypto_provider();
        assert_eq!(provider.cipher_suites.len(), 9);
        assert_eq!(provider.kx_groups.len(), 3);

        // A CA file without verify is read (and must parse) but asks nothing of clients; with
        // verify, client certificates are required.
        options.ca_file = Some(cert_file.clone());
        assert!(load(&options).is_ok());
        options.verify = true;
        assert!(load(&options).is_ok());
        options.min_version = Some(TlsVersion::V1_3);
        assert!(load(&options).is_ok());
        options.ca_file = None;
        assert!(load(&options)
            .unwrap_err()
            .contains("'verify' without 'ca_file' is not supported by natsring yet"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A handshake in memory between `server` and a client that trusts `ca_file` and has no
    /// certificate of its own: the server's error, if any.
    fn handshake_without_client_cert(
        server: &Arc<ServerConfig>,
        ca_file: &Path,
    ) -> Result<(), rustls::Error> {
        let provider = Arc::new(ring::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(read_roots(ca_file).unwrap())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::clone(server)).unwrap();
        // Bounded: a handshake is a few flights.
        for _ in 0..10 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            let mut reader = &flight[..];
            while !reader.is_empty() {
                server.read_tls(&mut reader).unwrap();
                server.process_new_packets()?;
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            let mut reader = &flight[..];
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
                client.process_new_packets().unwrap();
            }
            if !server.is_handshaking() && !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn monitoring_asks_no_client_certificate() {
        let dir = temp_dir("monitoring");
        let (cert_file, key_file) = write_pair(&dir, "server");
        let mut options = TlsOptions::new(cert_file.clone(), key_file);
        let loaded = load(&options).unwrap();
        assert!(Arc::ptr_eq(&loaded.config, &loaded.monitoring_config));
        handshake_without_client_cert(&loaded.monitoring_config, &cert_file).unwrap();

        // With verify, clients need a certificate; HTTPS monitoring still asks none
        // (nats-server's `ClientAuth = tls.NoClientCert`), with the same certificate,
        // versions and suites.
        options.ca_file = Some(cert_file.clone());
        options.verify = true;
        options.min_version = Some(TlsVersion::V1_3);
        let loaded = load(&options).unwrap();
        assert!(handshake_without_client_cert(&loaded.config, &cert_file).is_err());
        handshake_without_client_cert(&loaded.monitoring_config, &cert_file).unwrap();
        assert_eq!(loaded.monitoring_config.send_tls13_tickets, 0);
        assert!(loaded.monitoring_config.alpn_protocols.is_empty());
        assert_eq!(
            loaded
                .monitoring_config
                .crypto_provider()
                .cipher_suites
                .len(),
            loaded.config.crypto_provider().cipher_suites.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_errors_in_nats_server_words() {
        let dir = temp_dir("errors");
        let (cert_file, key_file) = write_pair(&dir, "a");
        let (_, other_key) = write_pair(&dir, "b");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "junk\n").unwrap();
        let missing = dir.join("missing.pem");
        let error = |cert: &Path, key: &Path, ca: Option<&Path>| {
            let mut options = TlsOptions::new(cert.into(), key.into());
            options.ca_file = ca.map(Into::into);
            load(&options).unwrap_err()
        };
        let pair = "error parsing X509 certificate/key pair: ";
        assert_eq!(
            error(&missing, &key_file, None),
            format!(
                "{pair}open {}: no such file or directory",
                missing.display()
            )
        );
        assert_eq!(
            error(&cert_file, &missing, None),
            format!(
                "{pair}open {}: no such file or directory",
                missing.display()
            )
        );
        assert_eq!(
            error(&junk, &key_file, None),
            format!("{pair}tls: failed to find any PEM data in certificate input")
        );
        assert_eq!(
            error(&cert_file, &junk, None),
            format!("{pair}tls: failed to find any PEM data in key input")
        );
        assert_eq!(
            error(&key_file, &key_file, None),
            format!("{pair}tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched")
        );
        assert_eq!(
            error(&cert_file, &cert_file, None),
            format!(
                "{pair}tls: found a certificate rather than a key in the PEM for the private key"
            )
        );
        assert_eq!(
            error(&cert_file, &other_key, None),
            format!("{pair}tls: private key does not match public key")
        );
        assert_eq!(
            error(&cert_file, &key_file, Some(&missing)),
            format!("open {}: no such file or directory", missing.display())
        );
        assert_eq!(
            error(&cert_file, &key_file, Some(&junk)),
            "failed to parse root ca certificate"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cipher_suites_and_curves_restrict_the_provider() {
        let mut options = TlsOptions::new("unused".into(), "unused".into());
        options.cipher_suites = vec![
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string(),
            "TLS_AES_128_GCM_SHA256".to_string(),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".to_string(),
        ];
        options.curve_preferences = vec!["CurveP384".to_string(), "X25519".to_string()];
        let restricted = provider(&options).unwrap();
        let suites: Vec<rustls::CipherSuite> = restricted
            .cipher_suites
            .iter()
            .map(|suite| suite.suite())
            .collect();
        // TLS 1.3 keeps its three (Go does not let them be chosen), in Go's order (AES-128
        // first); TLS 1.2 has the two named, in their order.
        assert_eq!(
            suites,
            [
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
        let groups: Vec<rustls::NamedGroup> = restricted
            .kx_groups
            .iter()
            .map(|group| group.name())
            .collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::X25519]
        );

        options.curve_preferences = vec!["CurveP521".to_string()];
        assert_eq!(
            provider(&options).unwrap_err(),
            "curve preference CurveP521 is not supported by natsring (its TLS library implements X25519, CurveP256 and CurveP384)"
        );
        options.curve_preferences = vec!["P256".to_string()];
        assert_eq!(
            provider(&options).unwrap_err(),
            "unrecognized curve preference P256"
        );
        options.curve_preferences.clear();
        options.cipher_suites = vec!["TLS_RSA_WITH_AES_128_CBC_SHA".to_string()];
        assert!(provider(&options)
            .unwrap_err()
            .starts_with("cipher suite TLS_RSA_WITH_AES_128_CBC_SHA is not supported by natsring"));
        options.cipher_suites = vec!["TLS_NOPE".to_string()];
        assert_eq!(
            provider(&options).unwrap_err(),
            "unrecognized cipher TLS_NOPE"
        );
    }

    /// A certificate with these subject attributes and alternative names, and its key.
    fn certificate(subject: &[(DnType, &str)], names: Vec<SanType>) -> (Vec<u8>, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut distinguished_name = DistinguishedName::new();
        for (kind, value) in subject {
            distinguished_name.push(kind.clone(), *value);
        }
        params.distinguished_name = distinguished_name;
        params.subject_alt_names = names;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn identities_in_nats_server_order() {
        let dc = DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]);
        let (der, _) = certificate(
            &[
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Synadia"),
                (DnType::OrganizationalUnitName, "nats.io"),
                (DnType::CommonName, "example.com"),
                (dc, "example"),
            ],
            vec![
                SanType::DnsName("app.example.com".try_into().unwrap()),
                SanType::Rfc822Name("derek@nats.io".try_into().unwrap()),
                SanType::URI("nats://app.example.com".try_into().unwrap()),
                SanType::DnsName("www.example.com".try_into().unwrap()),
            ],
        );
        let identities = cert_identities(&der).unwrap();
        assert_eq!(
            identities.alternative_names,
            [
                "derek@nats.io",
                "app.example.com",
                "www.example.com",
                "nats://app.example.com",
            ]
        );
        assert_eq!(
            identities.subject_names,
            [
                "CN=example.com,OU=nats.io,O=Synadia,C=US,DC=example",
                "CN=example.com,OU=nats.io,O=Synadia,C=US",
            ]
        );
        // go-ldap's reading: the certificate's RDNs last first, DC by its name.
        let ldap = crate::auth::dn::DistinguishedName::parse(
            "DC=example,CN=example.com,OU=nats.io,O=Synadia,C=US",
        );
        assert!(identities.subject.as_ref().unwrap().equal(&ldap.unwrap()));

        // Go's order, not the certificate's; values escaped as RFC 2253 says.
        let (der, _) = certificate(
            &[
                (DnType::CommonName, " a,b+c "),
                (DnType::LocalityName, "#here"),
                (DnType::StateOrProvinceName, "CA"),
            ],
            Vec::new(),
        );
        let identities = cert_identities(&der).unwrap();
        assert!(identities.alternative_names.is_empty());
        assert_eq!(
            identities.subject_names,
            ["CN=\\ a\\,b\\+c\\ ,L=\\#here,ST=CA"]
        );
        // An attribute go-ldap has no name for: no DN to compare.
        let email = DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]);
        let (der, _) = certificate(&[(DnType::CommonName, "x"), (email, "x@y")], Vec::new());
        let identities = cert_identities(&der).unwrap();
        assert_eq!(identities.subject, None);
        assert_eq!(identities.subject_names, ["CN=x"]);
        // Nothing to name a user by.
        let (der, _) = certificate(&[], Vec::new());
        assert_eq!(cert_identities(&der), None);
        assert_eq!(cert_identities(b"not a certificate"), None);
        assert_eq!(escape_rfc2253("x;y<z>\"\\"), "x\\;y\\<z\\>\\\"\\\\");
        assert_eq!(escape_rfc2253("a b#"), "a b#");
    }

    #[test]
    fn pinned_certs_hash_the_subject_public_key_info() {
        let (der, key) = certificate(&[(DnType::CommonName, "pinned")], Vec::new());
        let expected: [u8; 32] = Sha256::digest(key.subject_public_key_info()).into();
        assert_eq!(spki_sha256(&der), Some(expected));
        assert_eq!(spki_sha256(b"junk"), None);
    }

    #[test]
    fn peer_certs_as_connz_shows_them() {
        let email = DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]);
        let dc = DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]);
        let (der, key) = certificate(
            &[
                (DnType::OrganizationName, "natsring"),
                (email, "x@y"),
                (DnType::CommonName, "app"),
                (dc, "example"),
            ],
            Vec::new(),
        );
        let shown = peer_cert(&der).unwrap();
        // Go's fields first, then the others last first, re-encoded as Go's asn1 would.
        assert_eq!(
            shown.subject,
            "CN=app,O=natsring,0.9.2342.19200300.100.1.25=#13076578616d706c65,1.2.840.113549.1.9.1=#0c03784079"
        );
        assert_eq!(
            shown.spki_sha256,
            data_encoding::HEXLOWER.encode(&Sha256::digest(key.subject_public_key_info()))
        );
        assert_eq!(
            shown.cert_sha256,
            data_encoding::HEXLOWER.encode(&Sha256::digest(&der))
        );
        assert_eq!(peer_cert(b"junk"), None);
        let long = "a".repeat(300);
        assert_eq!(&go_string_der(&long)[..4], &[19, 0x82, 1, 44]);
        assert_eq!(go_string_der("a*b"), [12, 3, b'a', b'*', b'b']);
    }
}
