//! `/routez`: the registered routes, as nats-server's `Routez` (monitor.go): the same options
//! (`subs=1`, `subs=detail`) and JSON.
//!
//! natsring runs nats-server's legacy single route per peer (no pool, no compression), so each
//! route is listed as a nats-server node with `pool_size: -1` and `compression: not_supported`
//! lists its: one per peer, no `account`, `compression` "not supported" (natsring's route INFO
//! has no `compression`, which is what makes nats-server write that). The route permissions
//! are listed as nats-server lists them: this server's at the top (`import`/`export`), each
//! peer's (from its INFO) in its route. A route's subscriptions are the keys of interest its
//! peer sent (`RS+`), listed as nats-server lists a route's: `sid` is `R <account> <subject>[
//! <queue>]`, the cid is the route's; their `msgs` are 0 (natsring counts no message per
//! remote key: that would be on the message path).

use std::time::SystemTime;

use serde::Serialize;

use super::connz::SubJson;
use super::gotime;
use super::query::{Query, QueryError};
use crate::auth::SubjectPermission;
use crate::stats::RouteConnInfo;

/// What nats-server's `RouteInfo.Compression` says of a route without compression whose
/// peer's INFO names none, as natsring's never does.
const COMPRESSION: &str = "not supported";

/// What a `/routez` request asks for (nats-server's `RoutezOptions`, also the JSON options of
/// `$SYS.REQ.SERVER.*.ROUTEZ`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RoutezOptions {
    pub subscriptions: bool,
    pub subscriptions_detail: bool,
}

impl RoutezOptions {
    /// nats-server's `decodeSubs`: `subs=detail` (any case), else `subs` as a boolean.
    pub fn parse(query: &Query) -> Result<RoutezOptions, QueryError> {
        let subscriptions_detail = query.get("subs").eq_ignore_ascii_case("detail");
        let subscriptions = !subscriptions_detail && query.bool("subs")?;
        Ok(RoutezOptions {
            subscriptions,
            subscriptions_detail,
        })
    }

    /// Whether the peers' keys of interest must be fetched.
    pub fn wants_subscriptions(&self) -> bool {
        self.subscriptions || self.subscriptions_detail
    }
}

#[derive(Debug, Serialize)]
pub struct Routez {
    pub server_id: String,
    pub server_name: String,
    pub now: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<PermissionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<PermissionJson>,
    pub num_routes: usize,
    pub routes: Vec<RouteJson>,
}

/// One route (nats-server's `RouteInfo`).
#[derive(Debug, Serialize)]
pub struct RouteJson {
    pub rid: u64,
    pub remote_id: String,
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
    pub start: String,
    pub last_activity: String,
    /// `omitempty` in Go, but `Duration.String()` is never empty.
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<PermissionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<PermissionJson>,
    pub pending_size: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubJson>,
    pub compression: &'static str,
}

/// nats-server's `SubjectPermission` JSON: `allow` and `deny`, each left out when empty.
#[derive(Debug, Serialize)]
pub struct PermissionJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl PermissionJson {
    fn of(permission: &Option<SubjectPermission>) -> Option<PermissionJson> {
        permission.as_ref().map(|permission| PermissionJson {
            allow: permission.allow.clone().unwrap_or_default(),
            deny: permission.deny.clone().unwrap_or_default(),
        })
    }
}

/// Builds the answer from the shards' routes (sorted by rid) and this server's route
/// permissions (`import`, `export`).
pub fn routez(
    options: RoutezOptions,
    server_id: &str,
    server_name: &str,
    now: SystemTime,
    (import, export): (Option<SubjectPermission>, Option<SubjectPermission>),
    routes: &[RouteConnInfo],
) -> Routez {
    Routez {
        server_id: server_id.to_string(),
        server_name: server_name.to_string(),
        now: gotime::rfc3339_utc(now),
        import: PermissionJson::of(&import),
        export: PermissionJson::of(&export),
        num_routes: routes.len(),
        routes: routes
            .iter()
            .map(|route| route_json(route, options, now))
            .collect(),
    }
}

fn route_json(route: &RouteConnInfo, options: RoutezOptions, now: SystemTime) -> RouteJson {
    let (subscriptions_list, subscriptions_list_detail) = if options.subscriptions_detail {
        let detail = route
            .subs
            .iter()
            .map(|key| {
                let mut sid = format!("R {} {}", key.account, key.subject);
                if let Some(queue) = &key.queue {
                    sid.push(' ');
                    sid.push_str(queue);
                }
                SubJson {
                    account: String::new(),
                    account_tag: String::new(),
                    subject: key.subject.clone(),
                    qgroup: key.queue.clone().unwrap_or_default(),
                    sid,
                    msgs: 0,
                    max: 0,
                    cid: route.rid,
                }
            })
            .collect();
        (Vec::new(), detail)
    } else if options.subscriptions {
        let list = route.subs.iter().map(|key| key.subject.clone()).collect();
        (list, Vec::new())
    } else {
        (Vec::new(), Vec::new())
    };
    RouteJson {
        rid: route.rid,
        remote_id: route.remote_id.clone(),
        remote_name: route.remote_name.clone(),
        did_solicit: route.did_solicit,
        is_configured: route.is_configured,
        ip: route.ip.clone(),
        port: route.port,
        start: gotime::rfc3339(route.start),
        last_activity: gotime::rfc3339(route.last_activity),
        rtt: gotime::rtt(route.rtt_ns),
        uptime: gotime::uptime(gotime::since(now, route.start)),
        idle: gotime::uptime(gotime::since(now, route.last_activity)),
        import: PermissionJson::of(&route.peer_import),
        export: PermissionJson::of(&route.peer_export),
        pending_size: route.pending_bytes,
        in_msgs: route.in_msgs,
        out_msgs: route.out_msgs,
        in_bytes: route.in_bytes,
        out_bytes: route.out_bytes,
        subscriptions: route.subscriptions,
        subscriptions_list,
        subscriptions_list_detail,
        compression: COMPRESSION,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::RemoteInterest;

    fn route() -> RouteConnInfo {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        RouteConnInfo {
            rid: 7,
            shard: 0,
            remote_id: "NPEER".into(),
            remote_name: "B".into(),
            did_solicit: true,
            is_configured: true,
            ip: "127.0.0.1".into(),
            port: 40_000,
            start,
            last_activity: start + Duration::from_secs(50),
            rtt_ns: 312_345,
            pending_bytes: 0,
            in_msgs: 3,
            in_bytes: 30,
            out_msgs: 2,
            out_bytes: 20,
            peer_import: None,
            peer_export: Some(SubjectPermission {
                allow: Some(vec!["x.>".into()]),
                deny: Some(Vec::new()),
            }),
            subscriptions: 2,
            subs: vec![
                RemoteInterest {
                    account: "$G".into(),
                    subject: "bar.*".into(),
                    queue: Some("q1".into()),
                },
                RemoteInterest {
                    account: "$G".into(),
                    subject: "foo".into(),
                    queue: None,
                },
            ],
        }
    }

    /// The answer to `query`, as text and as a value.
    fn answer(query: &str) -> (String, serde_json::Value) {
        let options = RoutezOptions::parse(&Query::parse(Some(query))).expect("valid");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_061);
        let permissions = (
            Some(SubjectPermission {
                allow: None,
                deny: Some(vec!["secret".into()]),
            }),
            None,
        );
        let text =
            serde_json::to_string(&routez(options, "NSELF", "A", now, permissions, &[route()]))
                .unwrap();
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    /// The keys of `text` that `keys` names, in the order they are written.
    fn written_order<'a>(text: &str, keys: &[&'a str]) -> Vec<&'a str> {
        let mut found: Vec<(usize, &str)> = keys
            .iter()
            .filter_map(|key| text.find(&format!("\"{key}\":")).map(|at| (at, *key)))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, key)| key).collect()
    }

    /// The keys in nats-server 2.15.1's order (`RouteInfo` of a `pool_size: -1` node).
    const ROUTE_KEYS: [&str; 22] = [
        "rid",
        "remote_id",
        "remote_name",
        "did_solicit",
        "is_configured",
        "ip",
        "port",
        "start",
        "last_activity",
        "rtt",
        "uptime",
        "idle",
        "export",
        "pending_size",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
        "subscriptions",
        "subscriptions_list",
        "subscriptions_list_detail",
        "compression",
    ];

    #[test]
    fn routes_are_written_as_nats_server_writes_them() {
        let (text, plain) = answer("");
        assert_eq!(
            written_order(
                &text,
                &[
                    "server_id",
                    "server_name",
                    "now",
                    "import",
                    "num_routes",
                    "routes"
                ]
            ),
            [
                "server_id",
                "server_name",
                "now",
                "import",
                "num_routes",
                "routes"
            ]
        );
        assert_eq!(plain["num_routes"], 1);
        // This server's permissions at the top, the peer's in its route; absent ones and
        // empty lists left out.
        assert_eq!(plain["import"], serde_json::json!({"deny": ["secret"]}));
        assert!(plain.get("export").is_none());
        assert_eq!(
            plain["routes"][0]["export"],
            serde_json::json!({"allow": ["x.>"]})
        );
        assert!(plain["routes"][0].get("import").is_none());
        let without_lists: Vec<&str> = ROUTE_KEYS
            .iter()
            .copied()
            .filter(|k| !k.starts_with("subscriptions_list"))
            .collect();
        assert_eq!(
            written_order(&text, &ROUTE_KEYS),
            without_lists,
            "without subs, no list"
        );
        let route = &plain["routes"][0];
        assert_eq!(route["rtt"], "312µs");
        assert_eq!(route["uptime"], "1m1s");
        assert_eq!(route["idle"], "11s");
        assert_eq!(route["compression"], "not supported");
        assert_eq!(route["subscriptions"], 2);

        let (text, listed) = answer("subs=1");
        let with_list: Vec<&str> = ROUTE_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "subscriptions_list_detail")
            .collect();
        assert_eq!(written_order(&text, &ROUTE_KEYS), with_list);
        assert_eq!(
            listed["routes"][0]["subscriptions_list"],
            serde_json::json!(["bar.*", "foo"])
        );

        let (text, detailed) = answer("subs=DETAIL");
        let with_detail: Vec<&str> = ROUTE_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "subscriptions_list")
            .collect();
        assert_eq!(written_order(&text, &ROUTE_KEYS), with_detail);
        let detail = &detailed["routes"][0]["subscriptions_list_detail"];
        assert_eq!(
            detail[0],
            serde_json::json!({"subject": "bar.*", "qgroup": "q1", "sid": "R $G bar.* q1",
                               "msgs": 0, "cid": 7})
        );
        assert_eq!(
            detail[1],
            serde_json::json!({"subject": "foo", "sid": "R $G foo", "msgs": 0, "cid": 7})
        );
    }

    #[test]
    fn options_decode_as_nats_server_decodes_them() {
        let parse = |text: &str| RoutezOptions::parse(&Query::parse(Some(text)));
        assert_eq!(parse("").unwrap(), RoutezOptions::default());
        assert!(parse("subs=true").unwrap().subscriptions);
        assert!(parse("subs=detail").unwrap().subscriptions_detail);
        assert_eq!(
            parse("subs=x").unwrap_err().0,
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"x\": invalid syntax"
        );
        let none = routez(
            RoutezOptions::default(),
            "N",
            "N",
            SystemTime::now(),
            (None, None),
            &[],
        );
        assert_eq!(
            serde_json::to_value(none).unwrap()["routes"],
            serde_json::json!([])
        );
    }
}
