//! `/connz`: the open and recently closed client connections, as nats-server's `Connz`
//! (monitor.go): the same query parameters, sort orders, paging and JSON.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::data::{ConnInfo, SubInfo};
use super::gotime;
use super::query::{Query, QueryError};

/// Connections listed when no `limit` is given (nats-server's `DefaultConnListSize`).
pub const DEFAULT_LIMIT: usize = 1024;

/// The global account's name: `/connz?auth=1` leaves it out, as nats-server does.
const GLOBAL_ACCOUNT: &str = "$G";

/// `state=`: which connections to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Closed,
    All,
}

/// `sort=`: nats-server's `SortOpt`. Only `cid` (and `start`, the same) and `reason` and
/// `uptime` sort ascending; the rest put the largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Cid,
    Start,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
    Rtt,
}

impl Sort {
    fn parse(text: &str) -> Option<Sort> {
        Some(match text {
            "" | "cid" => Sort::Cid,
            "start" => Sort::Start,
            "subs" => Sort::Subs,
            "pending" => Sort::Pending,
            "msgs_to" => Sort::MsgsTo,
            "msgs_from" => Sort::MsgsFrom,
            "bytes_to" => Sort::BytesTo,
            "bytes_from" => Sort::BytesFrom,
            "last" => Sort::Last,
            "idle" => Sort::Idle,
            "uptime" => Sort::Uptime,
            "stop" => Sort::Stop,
            "reason" => Sort::Reason,
            "rtt" => Sort::Rtt,
            _ => return None,
        })
    }
}

/// What a `/connz` request asks for.
#[derive(Debug, Clone)]
pub struct ConnzQuery {
    pub sort: Sort,
    pub auth: bool,
    pub subs: bool,
    pub subs_detail: bool,
    pub offset: usize,
    pub limit: usize,
    pub cid: u64,
    pub state: State,
    pub user: String,
    pub account: String,
}

/// nats-server's `ConnzOptions` as JSON (the options of a `$SYS.REQ.*.CONNZ` request): every
/// field optional, unknown ones ignored, `state` a number (0 open, 1 closed, 2 all).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ConnzOptions {
    pub sort: String,
    pub auth: bool,
    pub subscriptions: bool,
    pub subscriptions_detail: bool,
    pub offset: i64,
    pub limit: i64,
    pub cid: u64,
    pub state: i64,
    pub user: String,
    pub acc: String,
}

impl ConnzQuery {
    /// Decodes the query string as nats-server's `HandleConnz` does, with its error texts
    /// (each answered with status 400).
    pub fn parse(query: &Query) -> Result<ConnzQuery, QueryError> {
        let sort = query.get("sort").to_string();
        let auth = query.bool("auth")?;
        let subscriptions_detail = query.get("subs").eq_ignore_ascii_case("detail");
        let subscriptions = !subscriptions_detail && query.bool("subs")?;
        let offset = query.int("offset")?;
        let limit = query.int("limit")?;
        let cid = query.uint("cid")?;
        let state = match query.get("state").to_ascii_lowercase().as_str() {
            "" | "open" => 0,
            "closed" => 1,
            "any" | "all" => 2,
            _ => {
                return Err(QueryError(format!(
                    "Error decoding state for {}",
                    query.get("state")
                )))
            }
        };
        ConnzQuery::new(ConnzOptions {
            sort,
            auth,
            subscriptions,
            subscriptions_detail,
            offset,
            limit,
            cid,
            state,
            user: query.get("user").to_string(),
            acc: query.get("acc").to_string(),
        })
    }

    /// Checks `options` as nats-server's `Connz` does.
    pub fn new(options: ConnzOptions) -> Result<ConnzQuery, QueryError> {
        let state = match options.state {
            1 => State::Closed,
            2 => State::All,
            _ => State::Open,
        };
        let sort = Sort::parse(&options.sort)
            .ok_or_else(|| QueryError(format!("invalid sorting option: {}", options.sort)))?;
        if sort == Sort::Stop && state != State::Closed {
            return Err(QueryError(
                "sort by stop only valid on closed connections".into(),
            ));
        }
        if sort == Sort::Reason && state != State::Closed {
            return Err(QueryError(
                "sort by reason only valid on closed connections".into(),
            ));
        }
        let mut limit = if options.limit <= 0 {
            DEFAULT_LIMIT
        } else {
            options.limit as usize
        };
        if options.cid > 0 {
            limit = 1;
        }
        Ok(ConnzQuery {
            sort,
            auth: options.auth,
            subs: options.subscriptions,
            subs_detail: options.subscriptions_detail,
            offset: options.offset.max(0) as usize,
            limit,
            cid: options.cid,
            state,
            user: options.user,
            account: options.acc,
        })
    }

    /// Whether the open connections' subscriptions must be fetched.
    pub fn wants_subscriptions(&self) -> bool {
        self.subs || self.subs_detail
    }
}

#[derive(Debug, Serialize)]
pub struct Connz {
    pub server_id: String,
    pub now: String,
    pub num_connections: usize,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// `null` for an account that does not exist, as nats-server writes it.
    pub connections: Option<Vec<ConnJson>>,
}

/// One connection (nats-server's `ConnInfo`).
#[derive(Debug, Serialize)]
pub struct ConnJson {
    pub cid: u64,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub kind_type: &'static str,
    pub ip: String,
    pub port: u16,
    pub start: String,
    pub last_activity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub tls_version: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_cipher_suite: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_peer_certs: Vec<PeerCertJson>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_first: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubJson>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One certificate a TLS client sent (nats-server's `TLSPeerCert`).
#[derive(Debug, Serialize)]
pub struct PeerCertJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spki_sha256: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_sha256: String,
}

/// One subscription (nats-server's `SubDetail`): `account` only in `/subsz`.
#[derive(Debug, Clone, Serialize)]
pub struct SubJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_tag: String,
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub qgroup: String,
    pub sid: String,
    pub msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub cid: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl SubJson {
    /// As listed under a connection (no account).
    pub fn of_connection(sub: &SubInfo) -> SubJson {
        SubJson {
            account: String::new(),
            account_tag: String::new(),
            subject: sub.subject.clone(),
            qgroup: sub.queue.clone().unwrap_or_default(),
            sid: sub.sid.clone(),
            msgs: sub.msgs,
            max: sub.max.unwrap_or(0),
            cid: sub.cid,
        }
    }

    /// As listed by `/subsz` (with its account).
    pub fn with_account(sub: &SubInfo) -> SubJson {
        SubJson {
            account: sub.account.clone(),
            account_tag: sub.account.clone(),
            ..SubJson::of_connection(sub)
        }
    }
}

/// A connection of either state, for sorting and paging before it is written.
enum Listed<'a> {
    Open(&'a ConnInfo),
    Closed(&'a ConnInfo),
}

impl Listed<'_> {
    fn info(&self) -> &ConnInfo {
        match self {
            Listed::Open(info) | Listed::Closed(info) => info,
        }
    }
}

/// Builds the answer from the open connections (with their subscriptions when the query asks)
/// and the closed ones (oldest first), as nats-server's `Connz` does. `account_exists`: whether
/// the account the query names (if any) exists; nats-server answers an unknown one with no
/// server id and `null` connections.
pub fn connz(
    query: &ConnzQuery,
    server_id: &str,
    now: SystemTime,
    open: &[ConnInfo],
    closed: &[Arc<ConnInfo>],
    account_exists: bool,
) -> Connz {
    if !account_exists {
        return Connz {
            server_id: String::new(),
            now: gotime::rfc3339_utc(now),
            num_connections: 0,
            total: 0,
            offset: query.offset,
            limit: query.limit,
            connections: None,
        };
    }
    let wants_open = matches!(query.state, State::Open | State::All);
    let wants_closed = matches!(query.state, State::Closed | State::All);
    let account_ok = |info: &ConnInfo| query.account.is_empty() || info.account == query.account;
    // nats-server's `total` counts the state's connections in the account, before the user
    // and cid filters (and whatever paging leaves).
    let total = if wants_open {
        open.iter().filter(|info| account_ok(info)).count()
    } else {
        0
    } + if wants_closed {
        closed.iter().filter(|info| account_ok(info)).count()
    } else {
        0
    };
    let user_ok = |info: &ConnInfo| query.user.is_empty() || info.authorized_user == query.user;
    let mut listed: Vec<Listed> = Vec::new();
    if query.cid > 0 {
        let open_match = open.iter().find(|info| info.cid == query.cid);
        match open_match {
            Some(info) if wants_open => listed.push(Listed::Open(info)),
            _ if wants_closed => {
                if let Some(info) = closed.iter().find(|info| info.cid == query.cid) {
                    listed.push(Listed::Closed(info));
                }
            }
            _ => {}
        }
    } else {
        if wants_open {
            listed.extend(
                open.iter()
                    .filter(|info| account_ok(info) && user_ok(info))
                    .map(Listed::Open),
            );
        }
        if wants_closed {
            listed.extend(
                closed
                    .iter()
                    .filter(|info| account_ok(info) && user_ok(info))
                    .map(|info| Listed::Closed(info)),
            );
        }
    }
    sort(&mut listed, query.sort, now);
    let listed_count = listed.len();
    let start = query.offset.min(listed_count);
    let end = start + query.limit.min(listed_count - start);
    let connections: Vec<ConnJson> = listed[start..end]
        .iter()
        .map(|listed| conn_json(listed, query, now))
        .collect();
    Connz {
        server_id: server_id.to_string(),
        now: gotime::rfc3339_utc(now),
        num_connections: connections.len(),
        total,
        offset: query.offset,
        limit: query.limit,
        connections: Some(connections),
    }
}

fn sort(listed: &mut [Listed], by: Sort, now: SystemTime) {
    let up = |info: &ConnInfo| gotime::since(info.stop.unwrap_or(now), info.start);
    let idle = |info: &ConnInfo| gotime::since(now, info.last_activity);
    match by {
        Sort::Cid => listed.sort_by_key(|l| l.info().cid),
        // nats-server's cids count up server-wide, so it sorts `start` by cid; natsring's
        // count up per shard (shard i hands out i + 1, i + 1 + n, ...): by start time.
        Sort::Start => listed.sort_by_key(|l| (l.info().start, l.info().cid)),
        Sort::Subs => listed.sort_by_key(|l| std::cmp::Reverse(l.info().subscriptions)),
        Sort::Pending => listed.sort_by_key(|l| std::cmp::Reverse(l.info().pending_bytes)),
        Sort::MsgsTo => listed.sort_by_key(|l| std::cmp::Reverse(l.info().out_msgs)),
        Sort::MsgsFrom => listed.sort_by_key(|l| std::cmp::Reverse(l.info().in_msgs)),
        Sort::BytesTo => listed.sort_by_key(|l| std::cmp::Reverse(l.info().out_bytes)),
        Sort::BytesFrom => listed.sort_by_key(|l| std::cmp::Reverse(l.info().in_bytes)),
        Sort::Last => listed.sort_by_key(|l| std::cmp::Reverse(l.info().last_activity)),
        Sort::Idle => listed.sort_by_key(|l| std::cmp::Reverse(idle(l.info()))),
        Sort::Uptime => listed.sort_by_key(|l| up(l.info())),
        Sort::Stop => listed.sort_by_key(|l| std::cmp::Reverse(l.info().stop)),
        Sort::Reason => listed.sort_by_key(|l| l.info().reason.unwrap_or_default()),
        Sort::Rtt => listed.sort_by_key(|l| std::cmp::Reverse(l.info().rtt_ns)),
    }
}

/// `name_tag` with `auth=1`: the account's tag (its JWT's name), else its name; for a closed
/// connection only outside the global account, as nats-server fills them.
fn name_tag(listed: &Listed, auth: bool) -> String {
    let info = listed.info();
    let tag = || {
        if info.name_tag.is_empty() {
            info.account.clone()
        } else {
            info.name_tag.clone()
        }
    };
    match listed {
        _ if !auth => String::new(),
        Listed::Open(_) => tag(),
        Listed::Closed(_) if info.account == GLOBAL_ACCOUNT || info.account.is_empty() => {
            String::new()
        }
        Listed::Closed(_) => tag(),
    }
}

fn conn_json(listed: &Listed, query: &ConnzQuery, now: SystemTime) -> ConnJson {
    let info = listed.info();
    let (stop, reason, until) = match listed {
        Listed::Open(_) => (None, "", now),
        Listed::Closed(info) => {
            let stop = info.stop.unwrap_or(now);
            (
                Some(gotime::rfc3339(stop)),
                info.reason.unwrap_or_default(),
                stop,
            )
        }
    };
    // A closed connection's subscriptions name their account (nats-server keeps them so).
    let detail = match listed {
        Listed::Open(_) => SubJson::of_connection,
        Listed::Closed(_) => SubJson::with_account,
    };
    let (subscriptions_list, subscriptions_list_detail) = if query.subs_detail {
        (Vec::new(), info.subs.iter().map(detail).collect())
    } else if query.subs {
        (
            info.subs.iter().map(|sub| sub.subject.clone()).collect(),
            Vec::new(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let auth = |value: &String| {
        if query.auth {
            value.clone()
        } else {
            String::new()
        }
    };
    ConnJson {
        cid: info.cid,
        kind: "Client",
        kind_type: "nats",
        ip: info.ip.clone(),
        port: info.port,
        start: gotime::rfc3339(info.start),
        last_activity: gotime::rfc3339(info.last_activity),
        stop,
        reason,
        rtt: gotime::rtt(info.rtt_ns),
        uptime: gotime::uptime(gotime::since(until, info.start)),
        idle: gotime::uptime(gotime::since(until, info.last_activity)),
        pending_bytes: info.pending_bytes,
        in_msgs: info.in_msgs,
        out_msgs: info.out_msgs,
        in_bytes: info.in_bytes,
        out_bytes: info.out_bytes,
        subscriptions: info.subscriptions,
        name: info.name.clone(),
        lang: info.lang.clone(),
        version: info.version.clone(),
        tls_version: info.tls.as_ref().map_or("", |tls| tls.version),
        tls_cipher_suite: info
            .tls
            .as_ref()
            .map(|tls| tls.cipher_suite.clone())
            .unwrap_or_default(),
        // nats-server shows them with `auth` only.
        tls_peer_certs: match &info.tls {
            Some(tls) if query.auth => tls
                .peer_certs
                .iter()
                .map(|cert| PeerCertJson {
                    subject: cert.subject.clone(),
                    spki_sha256: cert.spki_sha256.clone(),
                    cert_sha256: cert.cert_sha256.clone(),
                })
                .collect(),
            _ => Vec::new(),
        },
        tls_first: info.tls.as_ref().is_some_and(|tls| tls.first),
        authorized_user: auth(&info.authorized_user),
        account: if info.account == GLOBAL_ACCOUNT {
            String::new()
        } else {
            auth(&info.account)
        },
        subscriptions_list,
        subscriptions_list_detail,
        jwt: auth(&info.jwt),
        issuer_key: auth(&info.issuer_key),
        name_tag: name_tag(listed, query.auth),
        tags: if query.auth {
            info.tags.clone()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn info(cid: u64, account: &str) -> ConnInfo {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + cid);
        ConnInfo {
            cid,
            shard: 0,
            ip: "127.0.0.1".into(),
            port: 40_000 + cid as u16,
            start,
            last_activity: start + Duration::from_secs(cid),
            stop: None,
            reason: None,
            rtt_ns: cid * 1_000,
            pending_bytes: 0,
            in_msgs: 10 - cid,
            in_bytes: 0,
            out_msgs: cid,
            out_bytes: 0,
            subscriptions: 1,
            name: format!("c{cid}"),
            lang: "rust".into(),
            version: "1".into(),
            authorized_user: format!("u{cid}"),
            account: account.into(),
            jwt: String::new(),
            issuer_key: String::new(),
            name_tag: String::new(),
            tags: Vec::new(),
            subs: vec![SubInfo {
                account: account.into(),
                subject: format!("s.{cid}"),
                queue: None,
                sid: "1".into(),
                msgs: 0,
                max: None,
                cid,
            }],
            tls: None,
        }
    }

    fn closed(cid: u64, reason: &'static str) -> Arc<ConnInfo> {
        let mut info = info(cid, "$G");
        info.stop = Some(info.start + Duration::from_secs(cid * 10 + 45));
        info.reason = Some(reason);
        Arc::new(info)
    }

    fn query(text: &str) -> ConnzQuery {
        ConnzQuery::parse(&Query::parse(Some(text))).expect("a valid query")
    }

    fn cids(connz: &Connz) -> Vec<u64> {
        connz.connections.iter().flatten().map(|c| c.cid).collect()
    }

    fn run(text: &str) -> Connz {
        let open = vec![info(3, "$G"), info(1, "A"), info(2, "$G")];
        let closed = vec![closed(5, "Client Closed"), closed(4, "Parse Error")];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        connz(&query(text), "ID", now, &open, &closed, true)
    }

    #[test]
    fn sorts_as_nats_server_sorts() {
        assert_eq!(cids(&run("")), [1, 2, 3]);
        assert_eq!(cids(&run("sort=start")), [1, 2, 3]);
        assert_eq!(cids(&run("sort=msgs_to")), [3, 2, 1], "largest first");
        assert_eq!(cids(&run("sort=msgs_from")), [1, 2, 3]);
        assert_eq!(cids(&run("sort=rtt")), [3, 2, 1]);
        assert_eq!(cids(&run("sort=last")), [3, 2, 1]);
        assert_eq!(cids(&run("sort=idle")), [1, 2, 3], "the longest idle first");
        assert_eq!(
            cids(&run("sort=uptime")),
            [3, 2, 1],
            "the shortest uptime first"
        );
        assert_eq!(
            cids(&run("state=closed&sort=stop")),
            [5, 4],
            "the latest stop first"
        );
        assert_eq!(
            cids(&run("state=closed&sort=reason")),
            [5, 4],
            "by reason's text"
        );
        assert_eq!(cids(&run("state=all")), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn pages_and_filters() {
        let page = run("offset=1&limit=1");
        assert_eq!(
            (cids(&page), page.total, page.num_connections),
            (vec![2], 3, 1)
        );
        assert_eq!(page.limit, 1);
        let beyond = run("offset=10");
        assert_eq!((beyond.num_connections, beyond.total), (0, 3));
        assert_eq!(cids(&run("cid=2")), [2]);
        assert_eq!(
            run("cid=2").limit,
            1,
            "a cid query has limit 1, as nats-server's"
        );
        assert_eq!(cids(&run("cid=4&state=all")), [4], "a closed one by cid");
        assert!(
            cids(&run("cid=4")).is_empty(),
            "closed ones only when asked"
        );
        assert_eq!(cids(&run("acc=A")), [1]);
        assert_eq!(cids(&run("user=u3&auth=1")), [3]);
    }

    #[test]
    fn optional_fields_appear_as_nats_server_writes_them() {
        let first = |text: &str| serde_json::to_value(&run(text).connections.unwrap()[0]).unwrap();
        let plain = first("cid=1");
        for absent in [
            "account",
            "authorized_user",
            "subscriptions_list",
            "stop",
            "reason",
        ] {
            assert!(plain.get(absent).is_none(), "{absent} without auth or subs");
        }
        assert_eq!(plain["rtt"], "1µs");
        let detailed = first("cid=1&auth=1&subs=detail");
        assert_eq!(detailed["account"], "A");
        assert_eq!(detailed["authorized_user"], "u1");
        assert_eq!(detailed["subscriptions_list_detail"][0]["subject"], "s.1");
        assert!(detailed["subscriptions_list_detail"][0]
            .get("account")
            .is_none());
        let global = first("cid=2&auth=1&subs=1");
        assert!(
            global.get("account").is_none(),
            "$G is left out, as nats-server does"
        );
        assert_eq!(global["subscriptions_list"][0], "s.2");
        let closed = first("cid=5&state=closed&subs=detail");
        assert_eq!(closed["reason"], "Client Closed");
        assert!(closed["stop"].as_str().unwrap().starts_with("1970-01-01T"));
        assert_eq!(closed["uptime"], "1m35s", "up from start to stop");
        assert_eq!(closed["subscriptions_list_detail"][0]["account"], "$G");
        assert_eq!(detailed["name_tag"], "A");
    }

    #[test]
    fn refuses_what_nats_server_refuses() {
        let error = |text: &str| ConnzQuery::parse(&Query::parse(Some(text))).unwrap_err().0;
        assert_eq!(error("sort=nope"), "invalid sorting option: nope");
        assert_eq!(
            error("sort=stop"),
            "sort by stop only valid on closed connections"
        );
        assert_eq!(
            error("sort=reason&state=all"),
            "sort by reason only valid on closed connections"
        );
        assert_eq!(error("state=gone"), "Error decoding state for gone");
        assert!(error("limit=x").starts_with("Error decoding int for 'limit'"));
    }
}
