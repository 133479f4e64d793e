//! Client TLS options: the `tls {}` block of a configuration file as nats-server's `parseTLS`
//! and `GenTLSConfig` read it, and the Go names of cipher suites and curves natsring can serve.
//!
//! What it owns: [`TlsOptions`] (what the loader in `crate::tls` turns into a rustls
//! configuration) and the checks nats-server makes while it parses the file: wrong types,
//! unknown keys, a certificate without a key (or a key without a certificate), and files that
//! cannot be read or parsed (nats-server loads them while parsing, so `-t` fails on them; so
//! does natsring's, through [`crate::tls::load`]). Errors carry nats-server's words and its
//! positions: a key's own for what `parseTLS` finds, the `tls` key's for what `GenTLSConfig`
//! finds. Like `parseTLS`, the first error of a block ends it (nats-server walks the block in Go
//! map order, i.e. at random; natsring walks it in file order).
//!
//! What natsring refuses that nats-server takes, each by name: keys rustls cannot honour
//! (certificate stores, OCSP peer checks, several certificates, rate limits), cipher
//! suites and curves rustls (with its ring provider) does not implement, and a block without a
//! certificate and key (nats-server starts with it, and then fails every handshake).
//!
//! Must not: open sockets or keep state.

use std::path::PathBuf;
use std::time::Duration;

use super::conf::{Item, Value};
use super::file::{source, Report};
use super::go::{self, quote};
use crate::limits;

/// The client `tls {}` block (or the `--tls*` flags), as nats-server keeps it in `Options`
/// (`TLSConfig`, `TLSTimeout`, `TLSMap`, `TLSPinnedCerts`, `TLSHandshakeFirst`,
/// `TLSHandshakeFirstFallback`).
///
/// Invariants of one made by the file or the flags: `cert_file` and `key_file` are non-empty
/// and were loadable when the options were made (they are read again by [`crate::tls::load`]);
/// `verify_and_map` implies `verify` (nats-server's `verify_and_map: true` sets both), and
/// either implies `ca_file`; `handshake_first_fallback` is `Some` only with `handshake_first`,
/// and then strictly positive; `timeout` is positive; every name in `cipher_suites` and
/// `curve_preferences` is one [`cipher_suite`] and [`curve`] know and natsring supports;
/// `pinned_certs` has no duplicates.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsOptions {
    /// The server's certificate chain, PEM, leaf first (`cert_file`, `--tlscert`). A relative
    /// path is relative to the working directory, as in nats-server.
    pub cert_file: PathBuf,
    /// The certificate's private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`key_file`,
    /// `--tlskey`).
    pub key_file: PathBuf,
    /// CA certificates client certificates must chain to (`ca_file`, `--tlscacert`). Without
    /// `verify` it asks nothing of clients, as in nats-server.
    pub ca_file: Option<PathBuf>,
    /// Require a client certificate that chains to `ca_file` (`verify`, `--tlsverify`).
    pub verify: bool,
    /// Require a client certificate and take the user from it (`verify_and_map`): see
    /// [`crate::tls::cert_identities`].
    pub verify_and_map: bool,
    /// How long the TLS handshake may take (`timeout`: seconds, fractions allowed, or a
    /// duration string); nats-server's default is 2 s.
    pub timeout: Duration,
    /// The TLS handshake comes first, before the server's INFO (`handshake_first`, alias
    /// `first`, `immediate`).
    pub handshake_first: bool,
    /// With `handshake_first`: how long to wait for the client's TLS hello before falling back
    /// to INFO first (`handshake_first: auto` is 50 ms, or a duration). `None`: no fallback,
    /// the client must start with TLS.
    pub handshake_first_fallback: Option<Duration>,
    /// The oldest protocol accepted (`min_version`); `None`: TLS 1.2, as nats-server.
    pub min_version: Option<TlsVersion>,
    /// Go names of the TLS 1.2 cipher suites offered, in preference order (`cipher_suites`);
    /// empty: all natsring supports. As in Go, TLS 1.3 suites are not configurable: their
    /// names are accepted and TLS 1.3 always offers its three.
    pub cipher_suites: Vec<String>,
    /// Go names of the key exchange groups, in preference order (`curve_preferences`); empty:
    /// all natsring supports.
    pub curve_preferences: Vec<String>,
    /// SHA-256 of the DER SubjectPublicKeyInfo of the client certificates allowed
    /// (`pinned_certs`, written as hex); empty: no pinning. See [`crate::tls::spki_sha256`].
    pub pinned_certs: Vec<[u8; 32]>,
    /// Do not verify the certificate of a server this server dials (`insecure`): only routes
    /// dial here (`cluster { tls {} }`); a client-facing block takes it and has no use for
    /// it, as nats-server's.
    pub insecure: bool,
}

impl TlsOptions {
    /// The options nats-server's `--tls --tlscert --tlskey` make: defaults for all the rest.
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> TlsOptions {
        TlsOptions {
            cert_file,
            key_file,
            ca_file: None,
            verify: false,
            verify_and_map: false,
            timeout: Duration::from_millis(limits::TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT),
            handshake_first: false,
            handshake_first_fallback: None,
            min_version: None,
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            pinned_certs: Vec::new(),
            insecure: false,
        }
    }
}

/// A TLS protocol version natsring serves (nats-server refuses older ones too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// How natsring serves a cipher suite nats-server (Go's `crypto/tls`) knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSupport {
    /// A TLS 1.3 suite: always offered with TLS 1.3 (Go does not let them be chosen).
    Tls13,
    /// A TLS 1.2 suite rustls implements.
    Tls12,
    /// Go counts it secure, rustls does not implement it (ECDHE with CBC and SHA-1).
    Missing,
    /// Go counts it insecure (`tls.InsecureCipherSuites()`); rustls implements none of them.
    Insecure,
}

/// Every cipher suite name nats-server v2.15.1 accepts (checked one by one against the binary).
const CIPHER_SUITES: &[(&str, CipherSupport)] = &[
    ("TLS_AES_128_GCM_SHA256", CipherSupport::Tls13),
    ("TLS_AES_256_GCM_SHA384", CipherSupport::Tls13),
    ("TLS_CHACHA20_POLY1305_SHA256", CipherSupport::Tls13),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSupport::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        CipherSupport::Missing,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        CipherSupport::Missing,
    ),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", CipherSupport::Missing),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", CipherSupport::Missing),
    ("TLS_RSA_WITH_RC4_128_SHA", CipherSupport::Insecure),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", CipherSupport::Insecure),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", CipherSupport::Insecure),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", CipherSupport::Insecure),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", CipherSupport::Insecure),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", CipherSupport::Insecure),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", CipherSupport::Insecure),
    ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", CipherSupport::Insecure),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", CipherSupport::Insecure),
    (
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        CipherSupport::Insecure,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        CipherSupport::Insecure,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        CipherSupport::Insecure,
    ),
];

/// How natsring serves the cipher suite Go calls `name`; `None`: Go does not know it either.
pub fn cipher_suite(name: &str) -> Option<CipherSupport> {
    CIPHER_SUITES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, support)| *support)
}

/// Every curve name nats-server v2.15.1 (built with Go 1.26+) accepts, and whether rustls'
/// ring provider implements it.
const CURVES: &[(&str, bool)] = &[
    ("X25519", true),
    ("CurveP256", true),
    ("CurveP384", true),
    ("CurveP521", false),
    ("X25519MLKEM768", false),
    ("SecP256r1MLKEM768", false),
    ("SecP384r1MLKEM1024", false),
];

/// Whether natsring serves the curve Go calls `name`; `None`: Go does not know it either.
pub fn curve(name: &str) -> Option<bool> {
    CURVES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, supported)| *supported)
}

/// Keys of a `tls {}` block nats-server takes that natsring cannot honour yet, with what they
/// are.
const NOT_YET: &[(&[&str], &str)] = &[
    (
        &[
            "cert_store",
            "cert_match_by",
            "cert_match",
            "cert_match_skip_invalid",
            "ca_certs_match",
        ],
        "TLS certificate stores",
    ),
    (&["certs", "certificates"], "several TLS certificates"),
    (&["ocsp_peer"], "OCSP checks of client certificates"),
    (&["connection_rate_limit"], "TLS connection rate limits"),
];

/// The `tls {}` block under construction: what its keys said so far.
#[derive(Default)]
struct Draft {
    cert_file: String,
    key_file: String,
    ca_file: String,
    verify: bool,
    verify_and_map: bool,
    timeout_seconds: f64,
    handshake_first: bool,
    handshake_first_fallback: Option<Duration>,
    min_version: Option<TlsVersion>,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    pinned_certs: Vec<[u8; 32]>,
    insecure: bool,
    allow_insecure_cipher_suites: bool,
    /// Insecure suites listed (nats-server checks them once the block is read).
    insecure_cipher_suites: Vec<String>,
}

/// Reads a `tls {}` block, loads its certificate and key to check them as nats-server does,
/// and returns the options; `None` after reporting the first error.
pub(super) fn parse_block(item: &Item, report: &mut Report) -> Option<TlsOptions> {
    let Value::Map(map) = &item.value else {
        report.wrong_type(item, "map[string]interface {}");
        return None;
    };
    let mut draft = Draft::default();
    for (key, entry) in map.iter() {
        if let Err(error) = apply_key(&mut draft, key, entry) {
            report.errors.push(error);
            return None;
        }
    }
    if !draft.insecure_cipher_suites.is_empty() {
        let names = draft.insecure_cipher_suites.join(", ");
        if draft.allow_insecure_cipher_suites {
            report.error(
                item,
                format!("insecure cipher suites are not supported by natsring (its TLS library implements none): {names}"),
            );
        } else {
            report.error(item, format!("insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: {names}"));
        }
        return None;
    }
    let options = match finish(draft) {
        Ok(options) => options,
        Err(error) => {
            report.error(item, error);
            return None;
        }
    };
    if let Err(error) = crate::tls::load(&options) {
        report.error(item, error);
        return None;
    }
    Some(options)
}

/// `GenTLSConfig`'s checks of what the block gave, and natsring's own.
fn finish(draft: Draft) -> Result<TlsOptions, String> {
    match (draft.cert_file.is_empty(), draft.key_file.is_empty()) {
        (false, true) => return Err("missing 'key_file' in TLS configuration".to_string()),
        (true, false) => return Err("missing 'cert_file' in TLS configuration".to_string()),
        (true, true) => {
            return Err(
                "missing 'cert_file' and 'key_file' in TLS configuration (natsring needs both to serve TLS)"
                    .to_string(),
            )
        }
        (false, false) => {}
    }
    if (draft.verify || draft.verify_and_map) && draft.ca_file.is_empty() {
        return Err(
            "'verify' without 'ca_file' is not supported by natsring yet (client certificates are checked against 'ca_file' only)"
                .to_string(),
        );
    }
    let timeout = if draft.timeout_seconds == 0.0 {
        Duration::from_millis(limits::TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT)
    } else {
        Duration::from_secs_f64(draft.timeout_seconds)
    };
    Ok(TlsOptions {
        cert_file: draft.cert_file.into(),
        key_file: draft.key_file.into(),
        ca_file: (!draft.ca_file.is_empty()).then(|| draft.ca_file.into()),
        verify: draft.verify || draft.verify_and_map,
        verify_and_map: draft.verify_and_map,
        timeout,
        handshake_first: draft.handshake_first,
        handshake_first_fallback: draft
            .handshake_first_fallback
            .filter(|_| draft.handshake_first),
        min_version: draft.min_version,
        cipher_suites: draft.cipher_suites,
        curve_preferences: draft.curve_preferences,
        pinned_certs: draft.pinned_certs,
        insecure: draft.insecure,
    })
}

/// An error at `item`, as nats-server places it.
fn at(item: &Item, reason: impl AsRef<str>) -> String {
    format!("{}: {}", source(item), reason.as_ref())
}

/// nats-server's text when a value has the wrong type (a recovered `interface conversion`).
fn wrong_type(item: &Item, expected: &str) -> String {
    at(
        item,
        format!(
            "interface conversion: interface {{}} is {}, not {expected}",
            item.value.go_type_name()
        ),
    )
}

fn file_name(item: &Item, key: &str) -> Result<String, String> {
    match &item.value {
        Value::String(path) => Ok(path.clone()),
        _ => Err(at(
            item,
            format!("error parsing tls config, expected '{key}' to be filename"),
        )),
    }
}

fn boolean(item: &Item, key: &str) -> Result<bool, String> {
    match item.value {
        Value::Bool(value) => Ok(value),
        _ => Err(at(
            item,
            format!("error parsing tls config, expected '{key}' to be a boolean"),
        )),
    }
}

/// A non-empty array of strings, as `cipher_suites` and `curve_preferences` are.
fn names<'a>(item: &'a Item, key: &str) -> Result<Vec<(&'a Item, &'a str)>, String> {
    let Value::Array(elements) = &item.value else {
        return Err(wrong_type(item, "[]interface {}"));
    };
    if elements.is_empty() {
        return Err(at(
            item,
            format!("error parsing tls config, '{key}' cannot be empty"),
        ));
    }
    elements
        .iter()
        .map(|element| match &element.value {
            Value::String(name) => Ok((element, name.as_str())),
            _ => Err(wrong_type(element, "string")),
        })
        .collect()
}

/// Go's `%v` of a scalar configuration value, for nats-server's messages that print one.
fn go_value(value: &Value) -> String {
    match value {
        Value::Integer(number) => number.to_string(),
        Value::Float(number) => super::auth_file::go_float(*number),
        Value::Bool(truth) => truth.to_string(),
        Value::String(text) | Value::Datetime(text) => text.clone(),
        Value::Array(_) => "[...]".to_string(),
        Value::Map(_) => "map[...]".to_string(),
    }
}

fn apply_key(draft: &mut Draft, key: &str, item: &Item) -> Result<(), String> {
    let lower = key.to_lowercase();
    match lower.as_str() {
        "cert_file" => draft.cert_file = file_name(item, "cert_file")?,
        "key_file" => draft.key_file = file_name(item, "key_file")?,
        "ca_file" => draft.ca_file = file_name(item, "ca_file")?,
        "verify" => draft.verify = boolean(item, "verify")?,
        "insecure" => draft.insecure = boolean(item, "insecure")?,
        "verify_and_map" => {
            let on = boolean(item, "verify_and_map")?;
            draft.verify |= on;
            draft.verify_and_map = on;
        }
        "verify_cert_and_check_known_urls" => {
            if boolean(item, "verify_cert_and_check_known_urls")? {
                return Err(at(
                    item,
                    "verify_cert_and_check_known_urls not supported in this context",
                ));
            }
        }
        "allow_insecure_cipher_suites" => {
            draft.allow_insecure_cipher_suites = boolean(item, "allow_insecure_cipher_suites")?
        }
        "cipher_suites" => {
            draft.cipher_suites.clear();
            draft.insecure_cipher_suites.clear();
            for (element, name) in names(item, "cipher_suites")? {
                match cipher_suite(name) {
                    None => return Err(at(element, format!("unrecognized cipher {name}"))),
                    Some(CipherSupport::Missing) => {
                        return Err(at(
                            element,
                            format!("cipher suite {name} is not supported by natsring (its TLS library implements no CBC suites)"),
                        ))
                    }
                    Some(CipherSupport::Insecure) => {
                        draft.insecure_cipher_suites.push(name.to_string())
                    }
                    Some(CipherSupport::Tls12 | CipherSupport::Tls13) => {}
                }
                draft.cipher_suites.push(name.to_string());
            }
        }
        "curve_preferences" => {
            draft.curve_preferences.clear();
            for (element, name) in names(item, "curve_preferences")? {
                match curve(name) {
                    None => {
                        return Err(at(
                            element,
                            format!("unrecognized curve preference {name}"),
                        ))
                    }
                    Some(false) => {
                        return Err(at(
                            element,
                            format!("curve preference {name} is not supported by natsring (its TLS library implements X25519, CurveP256 and CurveP384)"),
                        ))
                    }
                    Some(true) => draft.curve_preferences.push(name.to_string()),
                }
            }
        }
        "timeout" => {
            let seconds = match &item.value {
                Value::Integer(seconds) => *seconds as f64,
                Value::Float(seconds) => *seconds,
                Value::String(text) => match go::parse_duration(text) {
                    Ok(nanos) => nanos as f64 / 1e9,
                    Err(error) => {
                        return Err(at(
                            item,
                            format!("error parsing tls config, 'timeout' {error}"),
                        ))
                    }
                },
                _ => return Err(at(item, "error parsing tls config, 'timeout' wrong type")),
            };
            if !(0.0..=limits::TLS_HANDSHAKE_TIMEOUT_SECONDS_MAX).contains(&seconds) {
                return Err(at(
                    item,
                    format!(
                        "error parsing tls config, 'timeout' of {} seconds is out of range (natsring needs 0 to {} seconds, 0 for the default)",
                        go_value(&Value::Float(seconds)),
                        limits::TLS_HANDSHAKE_TIMEOUT_SECONDS_MAX
                    ),
                ));
            }
            draft.timeout_seconds = seconds;
        }
        "pinned_certs" => {
            let Value::Array(elements) = &item.value else {
                return Err(at(item, "error parsing tls config, expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"));
            };
            draft.pinned_certs.clear();
            for element in elements {
                let Value::String(text) = &element.value else {
                    return Err(wrong_type(element, "string"));
                };
                let entry = text.to_lowercase();
                let Some(digest) = sha256_hex(&entry) else {
                    return Err(at(element, format!("error parsing tls config, 'pinned_certs' key {entry} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")));
                };
                if !draft.pinned_certs.contains(&digest) {
                    draft.pinned_certs.push(digest);
                }
            }
        }
        "handshake_first" | "first" | "immediate" => match &item.value {
            Value::Bool(on) => {
                draft.handshake_first = *on;
                draft.handshake_first_fallback = None;
            }
            Value::String(text) => match text.to_lowercase().as_str() {
                "true" | "on" => {
                    draft.handshake_first = true;
                    draft.handshake_first_fallback = None;
                }
                "false" | "off" => {
                    draft.handshake_first = false;
                    draft.handshake_first_fallback = None;
                }
                "auto" | "auto_fallback" => {
                    draft.handshake_first = true;
                    draft.handshake_first_fallback = Some(Duration::from_millis(
                        limits::TLS_HANDSHAKE_FIRST_FALLBACK_MS_DEFAULT,
                    ));
                }
                _ => match go::parse_duration(text) {
                    Ok(nanos) => {
                        draft.handshake_first = true;
                        // nats-server falls back only after a positive delay.
                        draft.handshake_first_fallback =
                            (nanos > 0).then(|| Duration::from_nanos(nanos as u64));
                    }
                    Err(_) => {
                        return Err(at(
                            item,
                            format!("field {}'s value {} is invalid", quote(key), quote(text)),
                        ))
                    }
                },
            },
            other => {
                return Err(at(
                    item,
                    format!(
                        "field {} should be a boolean or a string, got {}",
                        quote(key),
                        other.go_type_name()
                    ),
                ))
            }
        },
        "min_version" => {
            let Value::String(text) = &item.value else {
                return Err(at(
                    item,
                    format!(
                        "error parsing tls config: 'min_version' wrong type: {}",
                        go_value(&item.value)
                    ),
                ));
            };
            draft.min_version = Some(match text.as_str() {
                "1.2" => TlsVersion::V1_2,
                "1.3" => TlsVersion::V1_3,
                "1.0" | "1.1" => {
                    return Err(at(
                        item,
                        format!("error parsing tls config: unsupported TLS version: TLS {text}"),
                    ))
                }
                _ => {
                    return Err(at(
                        item,
                        format!("error parsing tls config: unknown version: {text}"),
                    ))
                }
            });
        }
        _ => {
            if let Some((_, feature)) = NOT_YET
                .iter()
                .find(|(keys, _)| keys.contains(&lower.as_str()))
            {
                return Err(at(
                    item,
                    format!(
                        "field {} is not supported by natsring yet ({feature})",
                        quote(key)
                    ),
                ));
            }
            return Err(at(
                item,
                format!("error parsing tls config, unknown field {}", quote(key)),
            ));
        }
    }
    Ok(())
}

/// 64 lowercase hex digits as 32 bytes (nats-server's `^[A-Fa-f0-9]{64}$`, after lowercasing).
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_files::{temp_dir, write_pair};
    use crate::Options;
    use std::path::Path;

    /// Applies `text` (with `$CERT`, `$KEY` and `$DIR` replaced) as a configuration file.
    fn load(dir: &Path, text: &str) -> Result<Options, Vec<String>> {
        let text = text
            .replace("$CERT", &dir.join("server-cert.pem").display().to_string())
            .replace("$KEY", &dir.join("server-key.pem").display().to_string())
            .replace("$DIR", &dir.display().to_string());
        let path = dir.join("test.conf");
        std::fs::write(&path, text).unwrap();
        let mut options = Options::default();
        match super::super::file::apply_file(&mut options, &path) {
            Ok(warnings) => {
                assert!(warnings.is_empty(), "{warnings:?}");
                Ok(options)
            }
            Err(errors) => Err(errors
                .lines()
                .map(|line| {
                    line.split_once("test.conf")
                        .map_or(line, |(_, rest)| rest)
                        .to_string()
                })
                .collect()),
        }
    }

    #[test]
    fn every_key() {
        let dir = temp_dir("config-keys");
        write_pair(&dir, "server");
        let options = load(
            &dir,
            r#"
            allow_non_tls: true
            tls {
                cert_file: "$CERT"
                KEY_FILE: "$KEY"
                ca_file: "$CERT"
                verify_and_map: true
                timeout: 0.5
                handshake_first: auto
                min_version: "1.3"
                cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
                curve_preferences: [X25519, CurveP256]
                pinned_certs: ["ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789",
                               "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"]
                allow_insecure_cipher_suites: false
                verify_cert_and_check_known_urls: false
            }
            "#,
        )
        .unwrap();
        assert!(options.allow_non_tls);
        let tls = options.tls.unwrap();
        assert_eq!(tls.cert_file, dir.join("server-cert.pem"));
        assert_eq!(tls.key_file, dir.join("server-key.pem"));
        assert_eq!(tls.ca_file, Some(dir.join("server-cert.pem")));
        assert!(tls.verify && tls.verify_and_map, "verify_and_map verifies");
        assert_eq!(tls.timeout, Duration::from_millis(500));
        assert!(tls.handshake_first);
        assert_eq!(
            tls.handshake_first_fallback,
            Some(Duration::from_millis(50))
        );
        assert_eq!(tls.min_version, Some(TlsVersion::V1_3));
        assert_eq!(
            tls.cipher_suites,
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(tls.curve_preferences, ["X25519", "CurveP256"]);
        assert_eq!(tls.pinned_certs.len(), 1, "the same digest twice is one");
        assert_eq!(tls.pinned_certs[0][..4], [0xab, 0xcd, 0xef, 0x01]);

        // The defaults, and the other forms of timeout and handshake_first.
        let tls = load(&dir, "tls { cert_file: $CERT, key_file: $KEY }")
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(
            tls,
            TlsOptions::new(dir.join("server-cert.pem"), dir.join("server-key.pem"))
        );
        assert_eq!(tls.timeout, Duration::from_secs(2));
        for (value, timeout) in [("3", 3000), ("\"250ms\"", 250), ("0", 2000)] {
            let text = format!("tls {{ cert_file: $CERT, key_file: $KEY, timeout: {value} }}");
            let tls = load(&dir, &text).unwrap().tls.unwrap();
            assert_eq!(tls.timeout, Duration::from_millis(timeout), "{value}");
        }
        for (value, first, fallback) in [
            ("true", true, None),
            ("\"on\"", true, None),
            ("false", false, None),
            ("\"300ms\"", true, Some(300)),
            ("\"0s\"", true, None),
        ] {
            let text = format!("tls {{ cert_file: $CERT, key_file: $KEY, first: {value} }}");
            let tls = load(&dir, &text).unwrap().tls.unwrap();
            assert_eq!(tls.handshake_first, first, "{value}");
            assert_eq!(
                tls.handshake_first_fallback,
                fallback.map(Duration::from_millis),
                "{value}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nats_server_errors_with_positions() {
        let dir = temp_dir("config-errors");
        write_pair(&dir, "server");
        let pair = "cert_file: $CERT, key_file: $KEY";
        // Positions are nats-server's: the key inside the block for parseTLS' errors, the
        // `tls` key for GenTLSConfig's.
        for (text, expected) in [
            ("tls: true", ":1:0: interface conversion: interface {} is bool, not map[string]interface {}".to_string()),
            ("allow_non_tls: 1", ":1:0: interface conversion: interface {} is int64, not bool".to_string()),
            ("tls {\n  cert_file: 1\n}", ":2:3: error parsing tls config, expected 'cert_file' to be filename".to_string()),
            ("tls {\n  verify: \"yes\"\n}", ":2:3: error parsing tls config, expected 'verify' to be a boolean".to_string()),
            ("tls {\n  bogus: 3\n}", ":2:3: error parsing tls config, unknown field \"bogus\"".to_string()),
            ("tls { cert_file: $CERT }", ":1:0: missing 'key_file' in TLS configuration".to_string()),
            ("tls { key_file: $KEY }", ":1:0: missing 'cert_file' in TLS configuration".to_string()),
            ("tls {}", ":1:0: missing 'cert_file' and 'key_file' in TLS configuration (natsring needs both to serve TLS)".to_string()),
            ("tls { cert_file: $DIR/nope.pem, key_file: $KEY }", format!(":1:0: error parsing X509 certificate/key pair: open {}/nope.pem: no such file or directory", dir.display())),
            (&format!("tls {{ {pair}, ca_file: $DIR/nope.pem }}"), format!(":1:0: open {}/nope.pem: no such file or directory", dir.display())),
            (&format!("tls {{\n  {pair}\n  cipher_suites: []\n}}"), ":3:3: error parsing tls config, 'cipher_suites' cannot be empty".to_string()),
            (&format!("tls {{\n  {pair}\n  cipher_suites: TLS_AES_128_GCM_SHA256\n}}"), ":3:3: interface conversion: interface {} is string, not []interface {}".to_string()),
            (&format!("tls {{\n  {pair}\n  cipher_suites: [\n TLS_FOO\n]\n}}"), ":4:2: unrecognized cipher TLS_FOO".to_string()),
            (&format!("tls {{ {pair}, cipher_suites: [TLS_RSA_WITH_RC4_128_SHA, TLS_RSA_WITH_AES_128_CBC_SHA] }}"), ":1:0: insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: TLS_RSA_WITH_RC4_128_SHA, TLS_RSA_WITH_AES_128_CBC_SHA".to_string()),
            (&format!("tls {{\n  {pair}\n  curve_preferences: [\n P256\n]\n}}"), ":4:2: unrecognized curve preference P256".to_string()),
            (&format!("tls {{\n  {pair}\n  curve_preferences: []\n}}"), ":3:3: error parsing tls config, 'curve_preferences' cannot be empty".to_string()),
            (&format!("tls {{\n  {pair}\n  min_version: 1.3\n}}"), ":3:3: error parsing tls config: 'min_version' wrong type: 1.3".to_string()),
            (&format!("tls {{\n  {pair}\n  min_version: \"1.1\"\n}}"), ":3:3: error parsing tls config: unsupported TLS version: TLS 1.1".to_string()),
            (&format!("tls {{\n  {pair}\n  min_version: \"TLS1.2\"\n}}"), ":3:3: error parsing tls config: unknown version: TLS1.2".to_string()),
            (&format!("tls {{\n  {pair}\n  timeout: \"x\"\n}}"), ":3:3: error parsing tls config, 'timeout' time: invalid duration \"x\"".to_string()),
            (&format!("tls {{\n  {pair}\n  timeout: true\n}}"), ":3:3: error parsing tls config, 'timeout' wrong type".to_string()),
            (&format!("tls {{\n  {pair}\n  handshake_first: maybe\n}}"), ":3:3: field \"handshake_first\"'s value \"maybe\" is invalid".to_string()),
            (&format!("tls {{\n  {pair}\n  immediate: 1\n}}"), ":3:3: field \"immediate\" should be a boolean or a string, got int64".to_string()),
            (&format!("tls {{\n  {pair}\n  pinned_certs: abc\n}}"), ":3:3: error parsing tls config, expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo".to_string()),
            (&format!("tls {{\n  {pair}\n  pinned_certs: [\n ABC\n]\n}}"), ":4:2: error parsing tls config, 'pinned_certs' key abc does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo".to_string()),
            (&format!("tls {{\n  {pair}\n  verify_cert_and_check_known_urls: true\n}}"), ":3:3: verify_cert_and_check_known_urls not supported in this context".to_string()),
        ] {
            assert_eq!(load(&dir, text).unwrap_err(), [expected.as_str()], "{text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_natsring_cannot_do_is_refused_by_name() {
        let dir = temp_dir("config-refusals");
        write_pair(&dir, "server");
        let pair = "cert_file: $CERT, key_file: $KEY";
        for (text, expected) in [
            (format!("tls {{\n  {pair}\n  cert_store: WindowsCurrentUser\n}}"), ":3:3: field \"cert_store\" is not supported by natsring yet (TLS certificate stores)"),
            (format!("tls {{\n  {pair}\n  ocsp_peer: true\n}}"), ":3:3: field \"ocsp_peer\" is not supported by natsring yet (OCSP checks of client certificates)"),
            ("tls {\n  certs: []\n}".to_string(), ":2:3: field \"certs\" is not supported by natsring yet (several TLS certificates)"),
            (format!("tls {{\n  {pair}\n  connection_rate_limit: 5\n}}"), ":3:3: field \"connection_rate_limit\" is not supported by natsring yet (TLS connection rate limits)"),
            (format!("tls {{\n  {pair}\n  insecure: 1\n}}"), ":3:3: error parsing tls config, expected 'insecure' to be a boolean"),
            (format!("tls {{\n  {pair}\n  cipher_suites: [\n TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n]\n}}"), ":4:2: cipher suite TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not supported by natsring (its TLS library implements no CBC suites)"),
            (format!("tls {{ {pair}, allow_insecure_cipher_suites: true, cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256] }}"), ":1:0: insecure cipher suites are not supported by natsring (its TLS library implements none): TLS_RSA_WITH_AES_128_GCM_SHA256"),
            (format!("tls {{\n  {pair}\n  curve_preferences: [\n CurveP521\n]\n}}"), ":4:2: curve preference CurveP521 is not supported by natsring (its TLS library implements X25519, CurveP256 and CurveP384)"),
            (format!("tls {{ {pair}, verify: true }}"), ":1:0: 'verify' without 'ca_file' is not supported by natsring yet (client certificates are checked against 'ca_file' only)"),
            (format!("tls {{\n  {pair}\n  timeout: -1\n}}"), ":3:3: error parsing tls config, 'timeout' of -1 seconds is out of range (natsring needs 0 to 3600 seconds, 0 for the default)"),
        ] {
            assert_eq!(load(&dir, &text).unwrap_err(), [expected], "{text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
