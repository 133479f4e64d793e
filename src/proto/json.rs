//! The JSON of the client protocol: CONNECT options in, INFO out, INFO in (checked and
//! dropped), and the server's nkey-style id.
//!
//! Decoding follows Go's `encoding/json` as nats-server uses it, since that is what clients
//! are tested against: object keys match field names case-insensitively (as Go folds case,
//! see `key_matches`), fields apply in
//! document order (a repeated key: the last one wins), `null` leaves a field as it was,
//! unknown keys are ignored, a wrong type anywhere or trailing bytes fail the whole decode,
//! and invalid UTF-8 inside strings is replaced, not rejected. A failed decode is
//! [`ServerError::ParseError`]: nats-server closes without any `-ERR`. A UTF-16 surrogate
//! escape that is not half of a pair (`"\ud800"`) is U+FFFD, as in Go.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::error::ServerError;

/// A client's CONNECT options (nats-server `ClientOpts`), with nats-server's defaults for
/// what is absent: verbose, pedantic and echo true; everything else false or empty.
/// Empty strings are `None`, as nats-server treats `""` as "not given".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub protocol: i64,
    pub tls_required: bool,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
    pub jwt: Option<String>,
    pub account: Option<String>,
    pub new_account: Option<bool>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
            protocol: 0,
            tls_required: false,
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            user: None,
            pass: None,
            auth_token: None,
            nkey: None,
            sig: None,
            jwt: None,
            account: None,
            new_account: None,
        }
    }
}

/// Client protocol versions nats-server accepts in CONNECT (`ClientProtoZero`,
/// `ClientProtoInfo`).
const CLIENT_PROTOCOL_MIN: i64 = 0;
const CLIENT_PROTOCOL_MAX: i64 = 1;

impl ConnectOptions {
    /// The checks nats-server makes on a decoded CONNECT, in its order:
    /// `protocol` not 0 or 1 -> `InvalidClientProtocol`; then (after the caller's own
    /// authentication check, when auth is configured) `account`/`new_account` given ->
    /// `AuthorizationViolation`; then `no_responders` without `headers` ->
    /// `NoRespondersRequiresHeaders`. All three close the connection.
    pub fn check(&self) -> Result<(), ServerError> {
        if !(CLIENT_PROTOCOL_MIN..=CLIENT_PROTOCOL_MAX).contains(&self.protocol) {
            return Err(ServerError::InvalidClientProtocol);
        }
        if self.account.is_some() || self.new_account == Some(true) {
            return Err(ServerError::AuthorizationViolation);
        }
        if self.no_responders && !self.headers {
            return Err(ServerError::NoRespondersRequiresHeaders);
        }
        Ok(())
    }
}

/// A CONNECT's JSON as `-V` traces it: the values of `auth_token*`, `pass*`, `sig`,
/// `proxy_sig` and `nkey` replaced by `[REDACTED]`, the rest as sent (nats-server's
/// `removeSecretsFromTrace`).
pub fn redact_connect(json: &[u8]) -> String {
    let text = String::from_utf8_lossy(json);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'"') {
        let start = at + offset + 1;
        let Some(length) = bytes[start..].iter().position(|&b| b == b'"') else {
            break;
        };
        let key = &text[start..start + length];
        at = start + length + 1;
        let secret = key.starts_with("auth_token")
            || key.starts_with("pass")
            || matches!(key, "sig" | "proxy_sig" | "nkey");
        // The value: after optional blanks, a ':' or '=', blanks and an optional quote, up to
        // a quote, comma, line end or closing brace.
        let mut value = at;
        while bytes.get(value).is_some_and(u8::is_ascii_whitespace) {
            value += 1;
        }
        if !secret || !matches!(bytes.get(value), Some(b':' | b'=')) {
            continue;
        }
        value += 1;
        while bytes.get(value).is_some_and(u8::is_ascii_whitespace) {
            value += 1;
        }
        if bytes.get(value) == Some(&b'"') {
            value += 1;
        }
        let end = bytes[value..]
            .iter()
            .position(|b| matches!(b, b'"' | b',' | b'\r' | b'\n' | b'}'))
            .map_or(bytes.len(), |length| value + length);
        out.push_str(&text[copied..value]);
        out.push_str("[REDACTED]");
        copied = end;
        at = end + usize::from(bytes.get(end) == Some(&b'"'));
    }
    out.push_str(&text[copied..]);
    out
}

/// Decodes a first CONNECT's JSON onto the defaults.
pub fn parse_connect(json: &[u8]) -> Result<ConnectOptions, ServerError> {
    parse_connect_onto(json, &ConnectOptions::default())
}

/// Decodes a CONNECT's JSON onto `previous`: nats-server decodes every CONNECT into the same
/// options, so a second CONNECT keeps what it does not mention (verified: `CONNECT
/// {"verbose":false}` then `CONNECT {}` stays quiet).
pub fn parse_connect_onto(
    json: &[u8],
    previous: &ConnectOptions,
) -> Result<ConnectOptions, ServerError> {
    let text = utf8_lossy(json);
    let mut options = previous.clone();
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    ConnectSeed(&mut options)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|_| ServerError::ParseError)?;
    Ok(options)
}

/// The JSON as text serde_json decodes the way Go does: invalid UTF-8 replaced (Go's decoder
/// replaces it inside strings; outside them it is a syntax error either way), and UTF-16
/// surrogate escapes that are not half of a pair replaced by `\ufffd`.
pub(super) fn utf8_lossy(json: &[u8]) -> Cow<'_, str> {
    let mut text = String::from_utf8_lossy(json);
    if memchr::memchr(b'\\', text.as_bytes()).is_some() {
        replace_lone_surrogates(text.to_mut());
    }
    text
}

/// Go's `encoding/json` decodes a surrogate escape that does not pair with the escape after
/// it (`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`) as U+FFFD; serde_json refuses the document.
/// Rewrites each such escape as `\ufffd`, in place (same length). A backslash always starts
/// an escape inside a string, and is a syntax error outside one, so no string tracking is
/// needed. Verified on nats-server 2.15.1: `CONNECT {"name":"\ud800"}` is accepted.
fn replace_lone_surrogates(text: &mut String) {
    /// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
    fn escape_at(bytes: &[u8], at: usize) -> Option<u16> {
        let escape = bytes.get(at..at + 6)?;
        if escape[..2] != *b"\\u" || !escape[2..].iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let hex = std::str::from_utf8(&escape[2..]).ok()?;
        u16::from_str_radix(hex, 16).ok()
    }
    let is_high = |unit: u16| (0xD800..0xDC00).contains(&unit);
    let is_low = |unit: u16| (0xDC00..0xE000).contains(&unit);
    let mut at = 0;
    let next_backslash = |text: &String, from: usize| {
        let rest = text.as_bytes().get(from..)?;
        memchr::memchr(b'\\', rest).map(|offset| from + offset)
    };
    while let Some(backslash) = next_backslash(text, at) {
        at = backslash;
        let bytes = text.as_bytes();
        match escape_at(bytes, at) {
            Some(unit) if is_high(unit) && escape_at(bytes, at + 6).is_some_and(is_low) => at += 12,
            Some(unit) if is_high(unit) || is_low(unit) => {
                text.replace_range(at + 2..at + 6, "fffd");
                at += 6;
            }
            Some(_) => at += 6,
            // `\"`, `\\`, `\n`, ...: the escaped byte is not the start of anything.
            None => at += 2,
        }
    }
}

/// A CONNECT key, matched case-insensitively like Go's `encoding/json`.
#[derive(Clone, Copy)]
enum ConnectField {
    Verbose,
    Pedantic,
    Echo,
    Headers,
    NoResponders,
    Protocol,
    TlsRequired,
    Name,
    Lang,
    Version,
    User,
    Pass,
    AuthToken,
    Nkey,
    Sig,
    Jwt,
    Account,
    NewAccount,
    /// Route/leaf/proxy fields: unused by a client, but type-checked as nats-server does.
    OtherString,
    OtherPermissions,
    Unknown,
}

impl ConnectField {
    fn of(key: &str) -> ConnectField {
        const NAMES: [(&str, ConnectField); 22] = [
            ("verbose", ConnectField::Verbose),
            ("pedantic", ConnectField::Pedantic),
            ("echo", ConnectField::Echo),
            ("headers", ConnectField::Headers),
            ("no_responders", ConnectField::NoResponders),
            ("protocol", ConnectField::Protocol),
            ("tls_required", ConnectField::TlsRequired),
            ("name", ConnectField::Name),
            ("lang", ConnectField::Lang),
            ("version", ConnectField::Version),
            ("user", ConnectField::User),
            ("pass", ConnectField::Pass),
            ("auth_token", ConnectField::AuthToken),
            ("nkey", ConnectField::Nkey),
            ("sig", ConnectField::Sig),
            ("jwt", ConnectField::Jwt),
            ("account", ConnectField::Account),
            ("new_account", ConnectField::NewAccount),
            ("remote_account", ConnectField::OtherString),
            ("proxy_sig", ConnectField::OtherString),
            ("import", ConnectField::OtherPermissions),
            ("export", ConnectField::OtherPermissions),
        ];
        NAMES
            .iter()
            .find(|(name, _)| key_matches(name, key))
            .map_or(ConnectField::Unknown, |&(_, field)| field)
    }
}

/// True when JSON object key `key` names the field `name` (ASCII lower case, as all names
/// here are) for Go's `encoding/json`, which compares them with Unicode simple case folding.
/// For ASCII names that is ASCII case-insensitivity plus the two non-ASCII letters whose fold
/// set holds an ASCII letter: U+017F LATIN SMALL LETTER LONG S (`s`) and U+212A KELVIN SIGN
/// (`k`). Verified on nats-server 2.15.1: `{"verbo\u{17f}e":false}` turns verbose off.
pub(super) fn key_matches(name: &str, key: &str) -> bool {
    let mut key_chars = key.chars();
    let same = name.bytes().all(|expected| {
        let folded = match key_chars.next() {
            Some('\u{17f}') => 's',
            Some('\u{212a}') => 'k',
            Some(other) => other.to_ascii_lowercase(),
            None => return false,
        };
        folded == char::from(expected)
    });
    same && key_chars.next().is_none()
}

/// nats-server's `SubjectPermission`, the type of CONNECT's `import` and `export`: an object
/// whose `allow` and `deny` are lists of subjects. Decoded only to fail where nats-server
/// fails (verified on 2.15.1: `{"allow":5}` and `{"deny":"a"}` close the connection, other
/// keys are ignored); natsring has no use for the lists.
struct SubjectPermission;

impl<'de> Deserialize<'de> for SubjectPermission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SubjectPermission, D::Error> {
        deserializer.deserialize_map(SubjectPermissionVisitor)
    }
}

struct SubjectPermissionVisitor;

impl<'de> Visitor<'de> for SubjectPermissionVisitor {
    type Value = SubjectPermission;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object with allow and deny lists")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SubjectPermission, A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key_matches("allow", &key) || key_matches("deny", &key) {
                // Go's []string: null, or an array of strings and nulls.
                map.next_value::<Option<Vec<Option<String>>>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(SubjectPermission)
    }
}

/// Decodes `null` (nothing changes) or an object of CONNECT fields onto the options.
struct ConnectSeed<'o>(&'o mut ConnectOptions);

impl<'de> DeserializeSeed<'de> for ConnectSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ConnectSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of CONNECT options, or null")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let options = self.0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match ConnectField::of(&key) {
                ConnectField::Verbose => set(&mut options.verbose, map.next_value()?),
                ConnectField::Pedantic => set(&mut options.pedantic, map.next_value()?),
                ConnectField::Echo => set(&mut options.echo, map.next_value()?),
                ConnectField::Headers => set(&mut options.headers, map.next_value()?),
                ConnectField::NoResponders => set(&mut options.no_responders, map.next_value()?),
                ConnectField::Protocol => set(&mut options.protocol, map.next_value()?),
                ConnectField::TlsRequired => set(&mut options.tls_required, map.next_value()?),
                ConnectField::Name => set(&mut options.name, map.next_value()?),
                ConnectField::Lang => set(&mut options.lang, map.next_value()?),
                ConnectField::Version => set(&mut options.version, map.next_value()?),
                ConnectField::User => set_text(&mut options.user, map.next_value()?),
                ConnectField::Pass => set_text(&mut options.pass, map.next_value()?),
                ConnectField::AuthToken => set_text(&mut options.auth_token, map.next_value()?),
                ConnectField::Nkey => set_text(&mut options.nkey, map.next_value()?),
                ConnectField::Sig => set_text(&mut options.sig, map.next_value()?),
                ConnectField::Jwt => set_text(&mut options.jwt, map.next_value()?),
                ConnectField::Account => set_text(&mut options.account, map.next_value()?),
                ConnectField::NewAccount => {
                    if let Some(value) = map.next_value::<Option<bool>>()? {
                        options.new_account = Some(value);
                    }
                }
                ConnectField::OtherString => {
                    map.next_value::<Option<String>>()?;
                }
                ConnectField::OtherPermissions => {
                    map.next_value::<Option<SubjectPermission>>()?;
                }
                ConnectField::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `null` leaves the field as it was.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// `null` leaves the field as it was; `""` clears it.
fn set_text(field: &mut Option<String>, value: Option<String>) {
    if let Some(value) = value {
        *field = Some(value).filter(|text| !text.is_empty());
    }
}

/// The JSON type a field of nats-server's `Info` must have.
#[derive(Clone, Copy)]
enum InfoFieldType {
    Text,
    Flag,
    Int { min: i64, max: i64 },
    Unsigned,
    TextList,
}

/// Checks an INFO a client sent: nats-server decodes it into its `Info` and closes on
/// failure, then ignores it. Returns `ParseError` where nats-server would close.
pub fn check_client_info(json: &[u8]) -> Result<(), ServerError> {
    let text = utf8_lossy(json);
    let value: Value = serde_json::from_str(&text).map_err(|_| ServerError::ParseError)?;
    let fields = match value {
        Value::Null => return Ok(()),
        Value::Object(fields) => fields,
        _ => return Err(ServerError::ParseError),
    };
    for (key, value) in &fields {
        let Some(field_type) = info_field_type(key) else {
            continue;
        };
        let fits = match (field_type, value) {
            (_, Value::Null) => true,
            (InfoFieldType::Text, Value::String(_)) => true,
            (InfoFieldType::Flag, Value::Bool(_)) => true,
            (InfoFieldType::Int { min, max }, Value::Number(n)) => {
                n.as_i64().is_some_and(|n| (min..=max).contains(&n))
            }
            (InfoFieldType::Unsigned, Value::Number(n)) => n.as_u64().is_some(),
            (InfoFieldType::TextList, Value::Array(items)) => {
                items.iter().all(|item| item.is_string() || item.is_null())
            }
            _ => false,
        };
        if !fits {
            return Err(ServerError::ParseError);
        }
    }
    Ok(())
}

fn info_field_type(key: &str) -> Option<InfoFieldType> {
    const INT: InfoFieldType = InfoFieldType::Int {
        min: i64::MIN,
        max: i64::MAX,
    };
    const INT32: InfoFieldType = InfoFieldType::Int {
        min: i32::MIN as i64,
        max: i32::MAX as i64,
    };
    const FIELDS: [(&str, InfoFieldType); 31] = [
        ("server_id", InfoFieldType::Text),
        ("server_name", InfoFieldType::Text),
        ("version", InfoFieldType::Text),
        ("proto", INT),
        ("git_commit", InfoFieldType::Text),
        ("go", InfoFieldType::Text),
        ("host", InfoFieldType::Text),
        ("port", INT),
        ("headers", InfoFieldType::Flag),
        ("auth_required", InfoFieldType::Flag),
        ("tls_required", InfoFieldType::Flag),
        ("tls_verify", InfoFieldType::Flag),
        ("tls_available", InfoFieldType::Flag),
        ("max_payload", INT32),
        ("jetstream", InfoFieldType::Flag),
        ("ip", InfoFieldType::Text),
        ("client_id", InfoFieldType::Unsigned),
        ("client_ip", InfoFieldType::Text),
        ("nonce", InfoFieldType::Text),
        ("cluster", InfoFieldType::Text),
        ("cluster_dynamic", InfoFieldType::Flag),
        ("domain", InfoFieldType::Text),
        ("connect_urls", InfoFieldType::TextList),
        ("ws_connect_urls", InfoFieldType::TextList),
        ("ldm", InfoFieldType::Flag),
        ("compression", InfoFieldType::Text),
        ("connect_info", InfoFieldType::Flag),
        ("remote_account", InfoFieldType::Text),
        ("acc_is_sys", InfoFieldType::Flag),
        ("api_lvl", INT),
        ("xkey", InfoFieldType::Text),
    ];
    FIELDS
        .iter()
        .find(|(name, _)| key_matches(name, key))
        .map(|&(_, field_type)| field_type)
}

/// What the server tells a client in INFO (the subset of nats-server's `Info` natsring sends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: u32,
    pub client_id: u64,
    pub client_ip: String,
    pub auth_required: bool,
    /// Clients must speak TLS (`tls {}` without `allow_non_tls`, or `handshake_first`).
    pub tls_required: bool,
    /// Clients must present a certificate (`tls { verify }`).
    pub tls_verify: bool,
    /// TLS is offered but not required (`allow_non_tls`).
    pub tls_available: bool,
    /// True only in the INFO answering the first PING after CONNECT.
    pub connect_info: bool,
    pub remote_account: Option<String>,
    /// The connection's account is the system account (with `remote_account`).
    pub acc_is_sys: bool,
    /// What the client signs to prove an nkey (only when nkey users are configured).
    pub nonce: Option<String>,
    /// The cluster's name, when the server is in one.
    pub cluster: Option<String>,
    /// The cluster's name was made up (no `cluster.name`).
    pub cluster_dynamic: bool,
    /// The client URLs of the cluster's servers, this one first (when in a cluster and
    /// advertising): what clients fail over to.
    pub connect_urls: Vec<String>,
    /// Lame duck mode.
    pub ldm: bool,
}

/// Appends the cluster fields of an INFO, each when set: `,"cluster":..,"cluster_dynamic":true,
/// "connect_urls":[..],"ldm":true` (nats-server's `Info` order; client and route INFO alike).
pub(super) fn write_cluster_fields(
    out: &mut Vec<u8>,
    cluster: &str,
    dynamic: bool,
    connect_urls: &[String],
    ldm: bool,
) {
    if !cluster.is_empty() {
        out.extend_from_slice(b",\"cluster\":");
        write_json_string(out, cluster);
    }
    if dynamic {
        out.extend_from_slice(b",\"cluster_dynamic\":true");
    }
    if !connect_urls.is_empty() {
        out.extend_from_slice(b",\"connect_urls\":[");
        for (index, url) in connect_urls.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_string(out, url);
        }
        out.push(b']');
    }
    if ldm {
        out.extend_from_slice(b",\"ldm\":true");
    }
}

/// Appends `INFO {json} \r\n` (with the space nats-server sends before `\r\n`).
///
/// Field order and omissions are nats-server 2.15.1's (its `Info` struct order, `omitempty`
/// fields left out when false/zero/empty): `server_id, server_name, version, proto, go,
/// host, port, headers, [auth_required], [tls_required], [tls_verify], [tls_available],
/// max_payload, [client_id], [client_ip], [nonce], [cluster], [cluster_dynamic],
/// [connect_urls], [ldm], [connect_info], [remote_account], [acc_is_sys]`. nats-server also sends `git_commit`, `api_lvl` and
/// `xkey`, which natsring does not have.
pub fn write_info(out: &mut Vec<u8>, info: &Info) {
    out.extend_from_slice(b"INFO {\"server_id\":");
    write_json_string(out, &info.server_id);
    out.extend_from_slice(b",\"server_name\":");
    write_json_string(out, &info.server_name);
    out.extend_from_slice(b",\"version\":");
    write_json_string(out, &info.version);
    out.extend_from_slice(b",\"proto\":1,\"go\":");
    write_json_string(out, &info.go);
    out.extend_from_slice(b",\"host\":");
    write_json_string(out, &info.host);
    out.extend_from_slice(b",\"port\":");
    super::writer::write_u64(out, u64::from(info.port));
    out.extend_from_slice(b",\"headers\":");
    out.extend_from_slice(if info.headers { b"true" } else { b"false" });
    if info.auth_required {
        out.extend_from_slice(b",\"auth_required\":true");
    }
    if info.tls_required {
        out.extend_from_slice(b",\"tls_required\":true");
    }
    if info.tls_verify {
        out.extend_from_slice(b",\"tls_verify\":true");
    }
    if info.tls_available {
        out.extend_from_slice(b",\"tls_available\":true");
    }
    out.extend_from_slice(b",\"max_payload\":");
    super::writer::write_u64(out, u64::from(info.max_payload));
    if info.client_id != 0 {
        out.extend_from_slice(b",\"client_id\":");
        super::writer::write_u64(out, info.client_id);
    }
    if !info.client_ip.is_empty() {
        out.extend_from_slice(b",\"client_ip\":");
        write_json_string(out, &info.client_ip);
    }
    if let Some(nonce) = info.nonce.as_deref().filter(|nonce| !nonce.is_empty()) {
        out.extend_from_slice(b",\"nonce\":");
        write_json_string(out, nonce);
    }
    write_cluster_fields(
        out,
        info.cluster.as_deref().unwrap_or_default(),
        info.cluster_dynamic,
        &info.connect_urls,
        info.ldm,
    );
    if info.connect_info {
        out.extend_from_slice(b",\"connect_info\":true");
    }
    if let Some(account) = info.remote_account.as_deref().filter(|a| !a.is_empty()) {
        out.extend_from_slice(b",\"remote_account\":");
        write_json_string(out, account);
    }
    if info.acc_is_sys {
        out.extend_from_slice(b",\"acc_is_sys\":true");
    }
    out.extend_from_slice(b"} \r\n");
}

/// Appends `text` as a JSON string escaped as Go's `encoding/json` does: `"`, `\`, `\n`,
/// `\r`, `\t`, `\b`, `\f` by name; other control characters, `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u00xx`/`\u20xx` (lower-case hex).
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut copied = 0;
    for (index, character) in text.char_indices() {
        let named: &[u8] = match character {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            '<' | '>' | '&' | '\0'..='\u{1f}' => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..index]);
        if named.is_empty() {
            let code = character as u8;
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(code >> 4)]);
            out.push(HEX[usize::from(code & 0xf)]);
        } else {
            out.extend_from_slice(named);
        }
        copied = index + character.len_utf8();
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// nkeys prefix byte of a server public key ('N' once base32-encoded).
const NKEY_PREFIX_SERVER: u8 = 13 << 3;
/// A public nkey: prefix byte, 32-byte ed25519 key, CRC-16 (little-endian).
const NKEY_RAW_BYTES: usize = 1 + 32 + 2;
/// Base32 length of a public nkey (35 bytes = 280 bits = 56 five-bit symbols, no padding).
pub const NKEY_TEXT_BYTES: usize = 56;
const _: () = assert!(NKEY_RAW_BYTES * 8 == NKEY_TEXT_BYTES * 5);

/// A fresh server id shaped like nats-server's: a server public nkey (56 characters of
/// base32, starting with 'N', with a valid CRC-16) over 32 random bytes.
pub fn server_id() -> String {
    let mut key = [0u8; 32];
    fill_random(&mut key);
    encode_public_nkey(NKEY_PREFIX_SERVER, &key)
}

/// Fills `buffer` from /dev/urandom; if that is unavailable, from the standard library's
/// randomly seeded hasher (still unpredictable per process, which is all an id needs).
fn fill_random(buffer: &mut [u8]) {
    let read = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(buffer));
    if read.is_ok() {
        return;
    }
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    for (index, chunk) in buffer.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(index);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn encode_public_nkey(prefix: u8, key: &[u8; 32]) -> String {
    let mut raw = [0u8; NKEY_RAW_BYTES];
    raw[0] = prefix;
    raw[1..33].copy_from_slice(key);
    let crc = crc16_xmodem(&raw[..33]);
    raw[33..].copy_from_slice(&crc.to_le_bytes());
    base32_encode(&raw)
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys checksums keys.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// RFC 4648 base32, upper case, no padding.
fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut text = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for &byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        bit_count += 8;
        while bit_count >= 5 {
            bit_count -= 5;
            text.push(char::from(ALPHABET[((bits >> bit_count) & 31) as usize]));
        }
    }
    if bit_count > 0 {
        text.push(char::from(
            ALPHABET[((bits << (5 - bit_count)) & 31) as usize],
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> Result<ConnectOptions, ServerError> {
        parse_connect(json.as_bytes())
    }

    #[test]
    fn connect_defaults() {
        let options = connect("{}").unwrap();
        assert_eq!(options, ConnectOptions::default());
        assert!(options.verbose && options.pedantic && options.echo);
        assert!(!options.headers && !options.no_responders && !options.tls_required);
        assert_eq!(options.protocol, 0);
        // `null` decodes to the defaults too (nats-server: `CONNECT null` gets +OK).
        assert_eq!(connect(" null ").unwrap(), ConnectOptions::default());
    }

    #[test]
    fn connect_typical_client() {
        let json = r#"{"verbose":false,"pedantic":false,"tls_required":false,"name":"svc",
            "lang":"go","version":"1.37.0","protocol":1,"echo":true,"headers":true,
            "no_responders":true,"user":"u","pass":"p","auth_token":"t","nkey":"UA",
            "sig":"s","jwt":"j"}"#;
        let options = connect(json).unwrap();
        assert!(!options.verbose && !options.pedantic);
        assert!(options.headers && options.no_responders && options.echo);
        assert_eq!(options.protocol, 1);
        assert_eq!(
            (options.name.as_str(), options.lang.as_str()),
            ("svc", "go")
        );
        assert_eq!(options.version, "1.37.0");
        assert_eq!(options.user.as_deref(), Some("u"));
        assert_eq!(options.pass.as_deref(), Some("p"));
        assert_eq!(options.auth_token.as_deref(), Some("t"));
        assert_eq!(options.nkey.as_deref(), Some("UA"));
        assert_eq!(options.sig.as_deref(), Some("s"));
        assert_eq!(options.jwt.as_deref(), Some("j"));
        assert_eq!(options.check(), Ok(()));
    }

    #[test]
    fn connect_like_go_encoding_json() {
        // Unknown fields ignored; null keeps the default; keys case-insensitive, last wins.
        let options = connect(r#"{"verbose":false,"foo":[1,{"a":null}]}"#).unwrap();
        assert!(!options.verbose);
        assert!(connect(r#"{"verbose":null}"#).unwrap().verbose);
        assert!(!connect(r#"{"Verbose":false}"#).unwrap().verbose);
        assert!(
            connect(r#"{"verbose":false,"VERBOSE":true}"#)
                .unwrap()
                .verbose
        );
        assert!(
            connect(r#"{"verbose":false,"verbose":true}"#)
                .unwrap()
                .verbose
        );
        assert!(
            !connect(r#"{"verbose":true,"verbose":false}"#)
                .unwrap()
                .verbose
        );
        // Surrounding whitespace is fine; invalid UTF-8 in a string is replaced.
        assert!(connect(" \t{} \t").is_ok());
        let name = parse_connect(b"{\"name\":\"a\xffb\"}").unwrap().name;
        assert_eq!(name, "a\u{fffd}b");
        // Empty strings are "not given".
        assert_eq!(connect(r#"{"user":""}"#).unwrap().user, None);
        assert_eq!(connect(r#"{"account":""}"#).unwrap().check(), Ok(()));
    }

    #[test]
    fn keys_fold_case_like_go() {
        // Checked on nats-server 2.15.1: long s and the Kelvin sign fold onto `s` and `k`.
        assert!(!connect("{\"verbo\u{17f}e\":false}").unwrap().verbose);
        assert!(!connect("{\"VERBO\u{17f}E\":false}").unwrap().verbose);
        let options = connect("{\"n\u{212a}ey\":\"U\",\"no_re\u{17f}ponders\":true}").unwrap();
        assert_eq!(options.nkey.as_deref(), Some("U"));
        assert!(options.no_responders);
        // A key that folds onto no field is unknown, whatever its value.
        assert!(connect("{\"\u{212a}ey\":1}").unwrap().verbose);
        assert!(
            connect(r#"{"verbos":false,"verbosee":false}"#)
                .unwrap()
                .verbose
        );
        assert_eq!(connect("{\"n\u{212a}ey\":1}"), Err(ServerError::ParseError));
        // A client's INFO too: `hoſt` is `host`, which must be a string.
        let info = |json: &str| check_client_info(json.as_bytes());
        assert_eq!(info("{\"ho\u{17f}t\":5}"), Err(ServerError::ParseError));
        assert_eq!(info("{\"ho\u{17f}t\":\"x\"}"), Ok(()));
        assert!(key_matches("sig", "SIG") && key_matches("sig", "\u{17f}ig"));
        assert!(!key_matches("sig", "si") && !key_matches("sig", "sigs"));
    }

    #[test]
    fn lone_surrogates_are_replaced_like_go() {
        // Each accepted by nats-server 2.15.1; `"\ud80"` closes.
        let name = |json: &str| connect(json).map(|options| options.name);
        assert_eq!(name(r#"{"name":"\ud800"}"#), Ok("\u{fffd}".into()));
        assert_eq!(name(r#"{"name":"\udc00x"}"#), Ok("\u{fffd}x".into()));
        assert_eq!(name(r#"{"name":"\ud800\u0041"}"#), Ok("\u{fffd}A".into()));
        assert_eq!(
            name(r#"{"name":"\ud800\ud800"}"#),
            Ok("\u{fffd}\u{fffd}".into())
        );
        assert_eq!(name(r#"{"name":"\ud83d\ude00"}"#), Ok("\u{1f600}".into()));
        assert_eq!(name(r#"{"name":"\\ud800"}"#), Ok("\\ud800".into()));
        assert_eq!(
            name(r#"{"name":"\ud800\\ud800"}"#),
            Ok("\u{fffd}\\ud800".into())
        );
        assert!(connect(r#"{"\ud800":1,"x":"\udfff"}"#).is_ok());
        assert_eq!(name(r#"{"name":"\ud80"}"#), Err(ServerError::ParseError));
        assert_eq!(name(r#"{"name":"\ud80"#), Err(ServerError::ParseError));
        assert_eq!(name(r#"{"name":"\u+d80"}"#), Err(ServerError::ParseError));
        assert_eq!(name("{\"name\":\"\\"), Err(ServerError::ParseError));
    }

    #[test]
    fn import_export_are_subject_permissions() {
        // Each checked on nats-server 2.15.1.
        for ok in [
            r#"{"import":{"allow":["a"]}}"#,
            r#"{"import":{"x":5}}"#,
            r#"{"import":null,"export":{"allow":null,"deny":["b",null]}}"#,
            r#"{"export":{"Deny":[]}}"#,
        ] {
            assert!(connect(ok).is_ok(), "{ok}");
        }
        for bad in [
            r#"{"import":{"allow":5}}"#,
            r#"{"export":{"deny":"a"}}"#,
            r#"{"export":{"DENY":[1]}}"#,
            r#"{"import":[]}"#,
            r#"{"import":"x"}"#,
        ] {
            assert_eq!(connect(bad), Err(ServerError::ParseError), "{bad}");
        }
    }

    #[test]
    fn connect_failures_close_silently() {
        // Each of these closed the connection with no -ERR on nats-server 2.15.1.
        let bad = [
            "",
            "{bad",
            "[1]",
            "\"x\"",
            "5",
            r#"{"verbose":"yes"}"#,
            r#"{"verbose":1}"#,
            r#"{"protocol":"1"}"#,
            r#"{"protocol":1.5}"#,
            r#"{"protocol":1e0}"#,
            r#"{"protocol":99999999999999999999}"#,
            r#"{"name":5}"#,
            r#"{"user":5}"#,
            r#"{"headers":1}"#,
            r#"{"import":5}"#,
            r#"{"proxy_sig":5}"#,
            r#"{"remote_account":5}"#,
            r#"{"verbose":false} trailing"#,
            r#"{"verbose":false}  {}"#,
        ];
        for json in bad {
            assert_eq!(connect(json), Err(ServerError::ParseError), "{json}");
        }
    }

    #[test]
    fn connect_checks_in_nats_server_order() {
        let check = |json: &str| connect(json).unwrap().check();
        assert_eq!(check(r#"{"protocol":0}"#), Ok(()));
        assert_eq!(check(r#"{"protocol":1}"#), Ok(()));
        assert_eq!(
            check(r#"{"protocol":2}"#),
            Err(ServerError::InvalidClientProtocol)
        );
        assert_eq!(
            check(r#"{"protocol":-1}"#),
            Err(ServerError::InvalidClientProtocol)
        );
        assert_eq!(
            check(r#"{"protocol":2,"no_responders":true}"#),
            Err(ServerError::InvalidClientProtocol)
        );
        assert_eq!(
            check(r#"{"protocol":2,"account":"A"}"#),
            Err(ServerError::InvalidClientProtocol)
        );
        assert_eq!(
            check(r#"{"account":"A"}"#),
            Err(ServerError::AuthorizationViolation)
        );
        assert_eq!(
            check(r#"{"new_account":true}"#),
            Err(ServerError::AuthorizationViolation)
        );
        assert_eq!(check(r#"{"new_account":false}"#), Ok(()));
        assert_eq!(check(r#"{"new_account":null}"#), Ok(()));
        assert_eq!(
            check(r#"{"no_responders":true,"account":"A"}"#),
            Err(ServerError::AuthorizationViolation)
        );
        assert_eq!(
            check(r#"{"no_responders":true}"#),
            Err(ServerError::NoRespondersRequiresHeaders)
        );
        assert_eq!(check(r#"{"no_responders":true,"headers":true}"#), Ok(()));
    }

    #[test]
    fn second_connect_layers_on_the_first() {
        let first = connect(r#"{"verbose":false,"headers":true,"name":"a"}"#).unwrap();
        let second = parse_connect_onto(br#"{"pedantic":false}"#, &first).unwrap();
        assert!(!second.verbose && !second.pedantic && second.headers);
        assert_eq!(second.name, "a");
        let third = parse_connect_onto(b"{\"name\":\"b\"}", &second).unwrap();
        assert_eq!(third.name, "b");
    }

    #[test]
    fn client_info_checks() {
        for ok in [
            "{}",
            "null",
            r#"{"server_id":"x","port":4222,"connect_urls":["a"]}"#,
        ] {
            assert_eq!(check_client_info(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "{bad",
            "[1]",
            r#"{"server_id":5}"#,
            r#"{"port":"x"}"#,
            r#"{"ldm":1}"#,
        ] {
            assert_eq!(
                check_client_info(bad.as_bytes()),
                Err(ServerError::ParseError),
                "{bad}"
            );
        }
    }

    fn info_text(info: &Info) -> String {
        let mut out = Vec::new();
        write_info(&mut out, info);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn secrets_are_redacted_from_a_traced_connect() {
        assert_eq!(
            redact_connect(br#"{"verbose":false,"user":"u","pass":"p4ss","auth_token":"t0k"}"#),
            r#"{"verbose":false,"user":"u","pass":"[REDACTED]","auth_token":"[REDACTED]"}"#
        );
        assert_eq!(
            redact_connect(br#"{"nkey":"UABC","sig":"xyz","proxy_sig":"q","name":"sig"}"#),
            r#"{"nkey":"[REDACTED]","sig":"[REDACTED]","proxy_sig":"[REDACTED]","name":"sig"}"#
        );
        assert_eq!(
            redact_connect(br#"{"password" : "a,b"}"#),
            r#"{"password" : "[REDACTED],b"}"#
        );
        assert_eq!(redact_connect(b"{}"), "{}");
    }

    fn sample_info() -> Info {
        Info {
            server_id: "NDRSTRQASQEZ7DJZAS3CK53UOB7POKNWU4L5JTAWBLSO7Z5TWW45AQXI".into(),
            server_name: "NDRSTRQASQEZ7DJZAS3CK53UOB7POKNWU4L5JTAWBLSO7Z5TWW45AQXI".into(),
            version: "2.15.1".into(),
            go: "go1.27.2".into(),
            host: "0.0.0.0".into(),
            port: 4999,
            headers: true,
            max_payload: 1048576,
            client_id: 5,
            client_ip: "127.0.0.1".into(),
            ..Info::default()
        }
    }

    #[test]
    fn info_matches_nats_server_layout() {
        // nats-server 2.15.1's greeting, minus git_commit, api_lvl and xkey.
        let expected = concat!(
            r#"INFO {"server_id":"NDRSTRQASQEZ7DJZAS3CK53UOB7POKNWU4L5JTAWBLSO7Z5TWW45AQXI","#,
            r#""server_name":"NDRSTRQASQEZ7DJZAS3CK53UOB7POKNWU4L5JTAWBLSO7Z5TWW45AQXI","#,
            r#""version":"2.15.1","proto":1,"go":"go1.27.2","host":"0.0.0.0","port":4999,"#,
            r#""headers":true,"max_payload":1048576,"client_id":5,"client_ip":"127.0.0.1"} "#,
            "\r\n"
        );
        assert_eq!(info_text(&sample_info()), expected);
    }

    #[test]
    fn info_optional_fields() {
        let info = Info {
            auth_required: true,
            connect_info: true,
            remote_account: Some("$G".into()),
            ldm: true,
            ..sample_info()
        };
        let text = info_text(&info);
        assert!(text.contains(r#""headers":true,"auth_required":true,"max_payload":1048576,"#));
        let tail =
            r#""client_ip":"127.0.0.1","ldm":true,"connect_info":true,"remote_account":"$G"} "#;
        assert!(text.ends_with(&format!("{tail}\r\n")), "{text}");
        // The JSON between "INFO " and " \r\n" is valid.
        let json = &text["INFO ".len()..text.len() - " \r\n".len()];
        let value: Value = serde_json::from_str(json).unwrap();
        assert_eq!(value["remote_account"], "$G");
        assert_eq!(value["proto"], 1);

        // omitempty: client_id 0, empty client_ip and remote_account are left out.
        let bare = Info {
            client_id: 0,
            client_ip: String::new(),
            remote_account: Some(String::new()),
            headers: false,
            ..sample_info()
        };
        let text = info_text(&bare);
        assert!(
            text.ends_with("\"headers\":false,\"max_payload\":1048576} \r\n"),
            "{text}"
        );
    }

    #[test]
    fn json_strings_escaped_like_go() {
        let mut out = Vec::new();
        write_json_string(
            &mut out,
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}é€",
        );
        let expected = r#""a\"b\\c\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028\u2029é€""#;
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}é€");
    }

    fn base32_decode(text: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        let (mut bits, mut count) = (0u32, 0);
        for symbol in text.bytes() {
            let value = match symbol {
                b'A'..=b'Z' => symbol - b'A',
                b'2'..=b'7' => symbol - b'2' + 26,
                _ => panic!("not base32: {symbol}"),
            };
            bits = (bits << 5) | u32::from(value);
            count += 5;
            if count >= 8 {
                count -= 8;
                bytes.push((bits >> count) as u8);
            }
        }
        bytes
    }

    #[test]
    fn crc_and_base32_match_a_real_server_id() {
        // The id nats-server 2.15.1 generated for itself.
        let real = "NDRSTRQASQEZ7DJZAS3CK53UOB7POKNWU4L5JTAWBLSO7Z5TWW45AQXI";
        let raw = base32_decode(real);
        assert_eq!(raw.len(), NKEY_RAW_BYTES);
        assert_eq!(raw[0], NKEY_PREFIX_SERVER);
        let crc = crc16_xmodem(&raw[..33]);
        assert_eq!(crc.to_le_bytes(), [raw[33], raw[34]]);
        let key: [u8; 32] = raw[1..33].try_into().unwrap();
        assert_eq!(encode_public_nkey(NKEY_PREFIX_SERVER, &key), real);
        // CRC-16/XMODEM check value.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    }

    #[test]
    fn server_ids_are_fresh_nkeys() {
        let first = server_id();
        let second = server_id();
        assert_ne!(first, second);
        for id in [first, second] {
            assert_eq!(id.len(), NKEY_TEXT_BYTES);
            assert!(id.starts_with('N'));
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
            let raw = base32_decode(&id);
            assert_eq!(crc16_xmodem(&raw[..33]).to_le_bytes(), [raw[33], raw[34]]);
        }
    }
}
