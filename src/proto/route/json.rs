//! The JSON of the route handshake: the INFO and CONNECT natsring sends (ROUTES.md §2.1, §2.2
//! and §10's minimal checklist: a legacy single route, no pool, no compression, no leaf-origin
//! capabilities), and the INFO and CONNECT a peer sends, decoded with the fields a route
//! runtime needs.
//!
//! Decoding follows Go's `encoding/json` as nats-server uses it (see `proto::json`): keys
//! match field names case-insensitively, `null` leaves a field at its zero value, unknown keys
//! are ignored, and a wrong type for any field nats-server knows fails the whole decode
//! (`RouteError::ParseError`: nats-server closes the route without `-ERR`). An object naming
//! one field twice under different spellings (`"port"` and `"PORT"`) may keep a different one
//! than Go, which keeps the last in document order.

use serde_json::{Map, Value};

use crate::auth::SubjectPermission;
use crate::proto::error::{CloseReason, RouteError};
use crate::proto::json::{key_matches, parse_connect, utf8_lossy, write_json_string};
use crate::proto::writer::write_u64;

/// The route protocol version natsring announces (nats-server 2.15's `MsgTraceProto`; it only
/// enables forwarding of message-trace headers, and has no handshake check).
const ROUTE_PROTO_VERSION: u64 = 3;

/// What natsring tells a route peer in INFO. Never pool, account or leaf-origin fields:
/// without `route_pool_size` nats-server runs the legacy single route (one connection per
/// peer, every account on it, account names in every op).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub go: String,
    /// The cluster listen (or advertise) address: peers re-dial `host:port`.
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub auth_required: bool,
    pub tls_required: bool,
    /// Peers' certificates are checked: with cluster TLS, always (nats-server forces it).
    pub tls_verify: bool,
    pub max_payload: u32,
    /// `nats-route://host:port/`, with `cluster.advertise` only.
    pub ip: Option<String>,
    pub cluster: String,
    /// The cluster name was generated, not configured.
    pub cluster_dynamic: bool,
    /// This server's client URLs (omitted when empty).
    pub connect_urls: Vec<String>,
    /// Lame duck mode (async INFO).
    pub ldm: bool,
    /// True: `"compression":"off"`; false: the field is left out (nats-server then treats
    /// this server as one that cannot compress). Never `accept`.
    pub compression_off: bool,
    /// In an INFO forwarded by gossip: 1 "connect to it but do not re-gossip", 2 override;
    /// 0 (left out) otherwise.
    pub gossip_mode: u8,
    /// Route permissions (`cluster { permissions }`), left out when None.
    pub import: Option<SubjectPermission>,
    pub export: Option<SubjectPermission>,
}

/// Appends `INFO {json} \r\n`, fields in nats-server's `Info` order, `omitempty` ones left out
/// when false or empty: `server_id, server_name, version, proto (3), go, host, port, headers,
/// [auth_required], [tls_required], [tls_verify], max_payload, [ip], [cluster], [cluster_dynamic],
/// [connect_urls], [ldm], [compression], [import], [export], [gossip_mode]`. The space before `\r\n` is what
/// nats-server's initial and lame-duck INFOs have; its parser takes either form.
pub fn write_route_info(out: &mut Vec<u8>, info: &RouteInfo) {
    out.extend_from_slice(b"INFO {\"server_id\":");
    write_json_string(out, &info.server_id);
    out.extend_from_slice(b",\"server_name\":");
    write_json_string(out, &info.server_name);
    out.extend_from_slice(b",\"version\":");
    write_json_string(out, &info.version);
    out.extend_from_slice(b",\"proto\":");
    write_u64(out, ROUTE_PROTO_VERSION);
    out.extend_from_slice(b",\"go\":");
    write_json_string(out, &info.go);
    out.extend_from_slice(b",\"host\":");
    write_json_string(out, &info.host);
    out.extend_from_slice(b",\"port\":");
    write_u64(out, u64::from(info.port));
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
    out.extend_from_slice(b",\"max_payload\":");
    write_u64(out, u64::from(info.max_payload));
    if let Some(ip) = info.ip.as_deref().filter(|ip| !ip.is_empty()) {
        out.extend_from_slice(b",\"ip\":");
        write_json_string(out, ip);
    }
    crate::proto::json::write_cluster_fields(
        out,
        &info.cluster,
        info.cluster_dynamic,
        &info.connect_urls,
        info.ldm,
    );
    if info.compression_off {
        out.extend_from_slice(b",\"compression\":\"off\"");
    }
    if let Some(import) = &info.import {
        out.extend_from_slice(b",\"import\":");
        write_subject_permission(out, import);
    }
    if let Some(export) = &info.export {
        out.extend_from_slice(b",\"export\":");
        write_subject_permission(out, export);
    }
    if info.gossip_mode != 0 {
        out.extend_from_slice(b",\"gossip_mode\":");
        write_u64(out, u64::from(info.gossip_mode));
    }
    out.extend_from_slice(b"} \r\n");
}

/// nats-server's `SubjectPermission` JSON: `{"allow":[...],"deny":[...]}`, each list left out
/// when absent or empty (`omitempty`), so `{}` when both are.
fn write_subject_permission(out: &mut Vec<u8>, permission: &SubjectPermission) {
    out.push(b'{');
    let mut first = true;
    for (name, list) in [("allow", &permission.allow), ("deny", &permission.deny)] {
        let Some(list) = list.as_deref().filter(|list| !list.is_empty()) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":[");
        for (index, subject) in list.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_string(out, subject);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// What natsring sends in CONNECT when it dials a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteConnect {
    /// From the route URL (`nats-route://user:pass@host:port`).
    pub user: Option<String>,
    pub pass: Option<String>,
    /// TLS is in use on this connection.
    pub tls_required: bool,
    pub headers: bool,
    /// This server's `server_id` (not its name).
    pub name: String,
    pub cluster: String,
    pub cluster_dynamic: bool,
}

/// Appends `CONNECT {json}\r\n` as nats-server's `connectInfo` marshals it: `echo` true,
/// `verbose` and `pedantic` false, `[user]`, `[pass]`, `tls_required`, `headers`, `name`,
/// `cluster`, `[cluster_dynamic]`. Never `lang` or `gateway` (nats-server rejects them on the
/// route port), never `lnoc`/`lnocu`/`ln`.
pub fn write_route_connect(out: &mut Vec<u8>, connect: &RouteConnect) {
    out.extend_from_slice(b"CONNECT {\"echo\":true,\"verbose\":false,\"pedantic\":false");
    if let Some(user) = connect.user.as_deref().filter(|user| !user.is_empty()) {
        out.extend_from_slice(b",\"user\":");
        write_json_string(out, user);
    }
    if let Some(pass) = connect.pass.as_deref().filter(|pass| !pass.is_empty()) {
        out.extend_from_slice(b",\"pass\":");
        write_json_string(out, pass);
    }
    out.extend_from_slice(b",\"tls_required\":");
    out.extend_from_slice(if connect.tls_required {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b",\"headers\":");
    out.extend_from_slice(if connect.headers { b"true" } else { b"false" });
    out.extend_from_slice(b",\"name\":");
    write_json_string(out, &connect.name);
    out.extend_from_slice(b",\"cluster\":");
    write_json_string(out, &connect.cluster);
    if connect.cluster_dynamic {
        out.extend_from_slice(b",\"cluster_dynamic\":true");
    }
    out.extend_from_slice(b"}\r\n");
}

/// A peer's route INFO, as nats-server decodes it into a fresh `Info` (zero values for what is
/// absent or `null`; an empty string means absent). Only the fields a route runtime uses are
/// kept; every other field of nats-server's `Info` is type-checked and dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerRouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub host: String,
    pub port: i64,
    /// `nats-route://h:p/` when the peer advertises; else dial the TCP peer IP and `port`.
    pub ip: String,
    pub cluster: String,
    pub cluster_dynamic: bool,
    pub headers: bool,
    pub connect_urls: Vec<String>,
    /// 0 when absent: a legacy "no pool" peer.
    pub route_pool_size: i64,
    pub route_pool_idx: i64,
    /// Non-empty: this connection is dedicated to that account.
    pub route_account: String,
    pub gossip_mode: u8,
    pub ldm: bool,
    /// Empty when absent (an old server: never compress).
    pub compression: String,
    pub lnoc: bool,
    pub lnocu: bool,
    pub ln: bool,
    pub jetstream: bool,
    pub auth_required: bool,
    pub tls_required: bool,
    /// Route permissions (`{"allow":[...],"deny":[...]}`), as nats-server decodes a
    /// `*SubjectPermission`: None when absent or `null`, a list None when absent or `null`.
    pub import: Option<SubjectPermission>,
    pub export: Option<SubjectPermission>,
}

/// A peer's route CONNECT: nats-server decodes it twice, as client options (`ClientOpts`:
/// `verbose`, `user`, `pass`, `lang`, ...) and as `connectInfo` (`cluster`, `gateway`, ...);
/// a type error in either fails it. Absent `verbose` is true, as nats-server's client options
/// default (a route CONNECT without it gets `+OK`s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRouteConnect {
    pub verbose: bool,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub tls_required: bool,
    pub headers: bool,
    /// The peer's `server_id`.
    pub name: String,
    pub cluster: String,
    pub cluster_dynamic: bool,
    pub lnoc: bool,
    pub lnocu: bool,
    pub ln: bool,
    /// Non-empty: a client dialed the route port.
    pub lang: String,
    /// Non-empty: a gateway dialed the route port.
    pub gateway: String,
}

impl PeerRouteConnect {
    /// nats-server's first checks on a route CONNECT (`processRouteConnect`), in its order:
    /// `lang` given -> `-ERR 'attempted to connect to route port'`, close "Incorrect Port";
    /// `gateway` given -> `-ERR 'Rejecting connection from gateway "<name>" on the Route
    /// port'`, close "Wrong Gateway". Returns the `-ERR` text (without quotes) and the close
    /// reason. Credentials and the cluster name are the runtime's to check.
    pub fn rejection(&self) -> Option<(String, CloseReason)> {
        if !self.lang.is_empty() {
            let text = "attempted to connect to route port".to_string();
            return Some((text, CloseReason::WrongPort));
        }
        if !self.gateway.is_empty() {
            // Go's %q; Rust's `{:?}` writes printable text the same way.
            let text = format!(
                "Rejecting connection from gateway {:?} on the Route port",
                self.gateway
            );
            return Some((text, CloseReason::WrongGateway));
        }
        None
    }
}

/// Decodes a peer's route INFO.
pub fn parse_route_info(json: &[u8]) -> Result<PeerRouteInfo, RouteError> {
    let mut info = PeerRouteInfo::default();
    let Some(fields) = decode_object(json)? else {
        return Ok(info);
    };
    for (key, value) in &fields {
        let Some(field) = InfoField::of(key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        match field {
            InfoField::ServerId => info.server_id = text(value)?,
            InfoField::ServerName => info.server_name = text(value)?,
            InfoField::Version => info.version = text(value)?,
            InfoField::Host => info.host = text(value)?,
            InfoField::Port => info.port = int(value, i64::MIN, i64::MAX)?,
            InfoField::Ip => info.ip = text(value)?,
            InfoField::Cluster => info.cluster = text(value)?,
            InfoField::ClusterDynamic => info.cluster_dynamic = flag(value)?,
            InfoField::Headers => info.headers = flag(value)?,
            InfoField::ConnectUrls => info.connect_urls = text_list(value)?,
            InfoField::RoutePoolSize => info.route_pool_size = int(value, i64::MIN, i64::MAX)?,
            InfoField::RoutePoolIdx => info.route_pool_idx = int(value, i64::MIN, i64::MAX)?,
            InfoField::RouteAccount => info.route_account = text(value)?,
            InfoField::GossipMode => info.gossip_mode = int(value, 0, 255)? as u8,
            InfoField::Ldm => info.ldm = flag(value)?,
            InfoField::Compression => info.compression = text(value)?,
            InfoField::Lnoc => info.lnoc = flag(value)?,
            InfoField::Lnocu => info.lnocu = flag(value)?,
            InfoField::Ln => info.ln = flag(value)?,
            InfoField::Jetstream => info.jetstream = flag(value)?,
            InfoField::AuthRequired => info.auth_required = flag(value)?,
            InfoField::TlsRequired => info.tls_required = flag(value)?,
            InfoField::Import => info.import = Some(permissions(value)?),
            InfoField::Export => info.export = Some(permissions(value)?),
            InfoField::OtherText => {
                text(value)?;
            }
            InfoField::OtherFlag => {
                flag(value)?;
            }
            InfoField::OtherInt { min, max } => {
                int(value, min, max)?;
            }
            InfoField::OtherUnsigned => {
                value.as_u64().ok_or(RouteError::ParseError)?;
            }
            InfoField::OtherTextList => {
                text_list(value)?;
            }
        }
    }
    Ok(info)
}

/// Decodes a peer's route CONNECT (see [`PeerRouteConnect`]).
pub fn parse_route_connect(json: &[u8]) -> Result<PeerRouteConnect, RouteError> {
    let options = parse_connect(json).map_err(|_| RouteError::ParseError)?;
    let mut connect = PeerRouteConnect {
        verbose: options.verbose,
        user: options.user,
        pass: options.pass,
        tls_required: options.tls_required,
        headers: options.headers,
        name: options.name,
        lang: options.lang,
        ..PeerRouteConnect::default()
    };
    let Some(fields) = decode_object(json)? else {
        return Ok(connect);
    };
    for (key, value) in &fields {
        if value.is_null() {
            continue;
        }
        if key_matches("cluster", key) {
            connect.cluster = text(value)?;
        } else if key_matches("cluster_dynamic", key) {
            connect.cluster_dynamic = flag(value)?;
        } else if key_matches("lnoc", key) {
            connect.lnoc = flag(value)?;
        } else if key_matches("lnocu", key) {
            connect.lnocu = flag(value)?;
        } else if key_matches("ln", key) {
            connect.ln = flag(value)?;
        } else if key_matches("gateway", key) {
            connect.gateway = text(value)?;
        }
    }
    Ok(connect)
}

/// The JSON object's entries, None for `null`; anything else fails.
fn decode_object(json: &[u8]) -> Result<Option<Map<String, Value>>, RouteError> {
    let text = utf8_lossy(json);
    match serde_json::from_str(&text).map_err(|_| RouteError::ParseError)? {
        Value::Null => Ok(None),
        Value::Object(fields) => Ok(Some(fields)),
        _ => Err(RouteError::ParseError),
    }
}

fn text(value: &Value) -> Result<String, RouteError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or(RouteError::ParseError)
}

fn flag(value: &Value) -> Result<bool, RouteError> {
    value.as_bool().ok_or(RouteError::ParseError)
}

/// A JSON integer in `min..=max` (Go refuses `1.0` and out-of-range numbers for an int).
fn int(value: &Value, min: i64, max: i64) -> Result<i64, RouteError> {
    value
        .as_i64()
        .filter(|n| (min..=max).contains(n))
        .ok_or(RouteError::ParseError)
}

/// Go's `[]string`: an array of strings (a `null` item is "").
fn text_list(value: &Value) -> Result<Vec<String>, RouteError> {
    let items = value.as_array().ok_or(RouteError::ParseError)?;
    items
        .iter()
        .map(|item| match item {
            Value::Null => Ok(String::new()),
            item => text(item),
        })
        .collect()
}

/// nats-server's `*SubjectPermission`: an object whose `allow` and `deny` are `[]string`.
fn permissions(value: &Value) -> Result<SubjectPermission, RouteError> {
    let fields = value.as_object().ok_or(RouteError::ParseError)?;
    let mut permission = SubjectPermission::default();
    for (key, list) in fields {
        let slot = if key_matches("allow", key) {
            &mut permission.allow
        } else if key_matches("deny", key) {
            &mut permission.deny
        } else {
            continue;
        };
        if !list.is_null() {
            *slot = Some(text_list(list)?);
        }
    }
    Ok(permission)
}

/// A key of nats-server's `Info`.
#[derive(Clone, Copy)]
enum InfoField {
    ServerId,
    ServerName,
    Version,
    Host,
    Port,
    Ip,
    Cluster,
    ClusterDynamic,
    Headers,
    ConnectUrls,
    RoutePoolSize,
    RoutePoolIdx,
    RouteAccount,
    GossipMode,
    Ldm,
    Compression,
    Lnoc,
    Lnocu,
    Ln,
    Jetstream,
    AuthRequired,
    TlsRequired,
    Import,
    Export,
    OtherText,
    OtherFlag,
    OtherInt { min: i64, max: i64 },
    OtherUnsigned,
    OtherTextList,
}

impl InfoField {
    fn of(key: &str) -> Option<InfoField> {
        const INT: InfoField = InfoField::OtherInt {
            min: i64::MIN,
            max: i64::MAX,
        };
        const FIELDS: [(&str, InfoField); 50] = [
            ("server_id", InfoField::ServerId),
            ("server_name", InfoField::ServerName),
            ("version", InfoField::Version),
            ("proto", INT),
            ("git_commit", InfoField::OtherText),
            ("go", InfoField::OtherText),
            ("host", InfoField::Host),
            ("port", InfoField::Port),
            ("headers", InfoField::Headers),
            ("auth_required", InfoField::AuthRequired),
            ("tls_required", InfoField::TlsRequired),
            ("tls_verify", InfoField::OtherFlag),
            ("tls_available", InfoField::OtherFlag),
            (
                "max_payload",
                InfoField::OtherInt {
                    min: i32::MIN as i64,
                    max: i32::MAX as i64,
                },
            ),
            ("jetstream", InfoField::Jetstream),
            ("ip", InfoField::Ip),
            ("client_id", InfoField::OtherUnsigned),
            ("client_ip", InfoField::OtherText),
            ("nonce", InfoField::OtherText),
            ("cluster", InfoField::Cluster),
            ("cluster_dynamic", InfoField::ClusterDynamic),
            ("domain", InfoField::OtherText),
            ("connect_urls", InfoField::ConnectUrls),
            ("ws_connect_urls", InfoField::OtherTextList),
            ("ldm", InfoField::Ldm),
            ("compression", InfoField::Compression),
            ("connect_info", InfoField::OtherFlag),
            ("remote_account", InfoField::OtherText),
            ("acc_is_sys", InfoField::OtherFlag),
            ("api_lvl", INT),
            ("import", InfoField::Import),
            ("export", InfoField::Export),
            ("lnoc", InfoField::Lnoc),
            ("lnocu", InfoField::Lnocu),
            ("ln", InfoField::Ln),
            ("info_on_connect", InfoField::OtherFlag),
            ("route_pool_size", InfoField::RoutePoolSize),
            ("route_pool_idx", InfoField::RoutePoolIdx),
            ("route_account", InfoField::RouteAccount),
            ("route_acc_add_reqid", InfoField::OtherText),
            ("gossip_mode", InfoField::GossipMode),
            ("gateway", InfoField::OtherText),
            ("gateway_urls", InfoField::OtherTextList),
            ("gateway_url", InfoField::OtherText),
            ("gateway_cmd", InfoField::OtherInt { min: 0, max: 255 }),
            // []byte: base64 text.
            ("gateway_cmd_payload", InfoField::OtherText),
            ("gateway_nrp", InfoField::OtherFlag),
            ("gateway_iom", InfoField::OtherFlag),
            ("leafnode_urls", InfoField::OtherTextList),
            ("xkey", InfoField::OtherText),
        ];
        FIELDS
            .iter()
            .find(|(name, _)| key_matches(name, key))
            .map(|&(_, field)| field)
    }
}
