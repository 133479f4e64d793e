//! `/accountz` (the accounts, or one in detail) and `/accstatz` (each account's traffic), as
//! nats-server's `Accountz`/`AccountInfo` and `AccountStatz`/`AccountStat` (monitor.go,
//! events.go).

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::TableStats;
use super::gotime;
use super::subsz::SublistStats;
use crate::account::{AccountConfig, ExportKind};
use crate::stats::AccountTraffic;

#[derive(Debug, Serialize)]
pub struct Accountz {
    pub server_id: String,
    pub now: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_detail: Option<AccountInfo>,
}

/// nats-server's `AccountInfo` (the fields of accounts from a configuration file; the JWT
/// ones are left out when empty, as there).
#[derive(Debug, Serialize)]
pub struct AccountInfo {
    pub account_name: String,
    pub update_time: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_system: bool,
    pub expired: bool,
    pub complete: bool,
    pub jetstream_enabled: bool,
    pub leafnode_connections: u64,
    pub client_connections: u64,
    pub subscriptions: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<String, Vec<MapDest>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<ImportJson>,
    pub name_tag: String,
    pub sublist_stats: SublistStats,
}

#[derive(Debug, Serialize)]
pub struct MapDest {
    pub subject: String,
    pub weight: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
}

/// An export (jwt's `Export` with nats-server's `approved_accounts`).
#[derive(Debug, Serialize)]
pub struct ExportJson {
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub response_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_threshold: Option<u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub account_token_position: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_accounts: Vec<String>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// An import (jwt's `Import` with nats-server's `invalid`, `share` and `tracking`).
#[derive(Debug, Serialize)]
pub struct ImportJson {
    pub subject: String,
    pub account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub invalid: bool,
    pub share: bool,
    pub tracking: bool,
}

fn kind_name(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Stream => "stream",
        ExportKind::Service => "service",
    }
}

/// What one account's detail is made of.
pub struct AccountDetail<'a> {
    pub name: &'a str,
    pub is_system: bool,
    pub config: Option<&'a AccountConfig>,
    pub global_mappings: &'a [crate::account::Mapping],
    pub traffic: Option<&'a AccountTraffic>,
    pub table: Option<&'a TableStats>,
    pub updated: std::time::SystemTime,
}

pub fn account_info(detail: AccountDetail) -> AccountInfo {
    let mappings_configured = match detail.config {
        Some(config) => &config.mappings[..],
        None if detail.name == crate::account::GLOBAL_ACCOUNT => detail.global_mappings,
        None => &[],
    };
    let mappings = mappings_configured
        .iter()
        .map(|mapping| {
            let destinations = mapping
                .destinations
                .iter()
                .map(|d| MapDest {
                    subject: d.subject.clone(),
                    weight: d.weight,
                    cluster: d.cluster.clone().unwrap_or_default(),
                })
                .collect();
            (mapping.source.clone(), destinations)
        })
        .collect();
    let exports = detail
        .config
        .map(|config| {
            config
                .exports
                .iter()
                .map(|export| ExportJson {
                    subject: export.subject.clone(),
                    kind: kind_name(export.kind),
                    response_type: match export.kind {
                        ExportKind::Stream => "",
                        ExportKind::Service => match export.response_type {
                            crate::account::ResponseType::Singleton => "Singleton",
                            crate::account::ResponseType::Stream => "Stream",
                            crate::account::ResponseType::Chunked => "Chunked",
                        },
                    },
                    response_threshold: export
                        .response_threshold
                        .map(|threshold| threshold.as_nanos() as u64),
                    account_token_position: export.account_token_position,
                    approved_accounts: export.accounts.clone().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let imports = detail
        .config
        .map(|config| {
            config
                .imports
                .iter()
                .map(|import| {
                    let local = match (&import.to, import.prefix) {
                        (Some(prefix), true) => format!("{prefix}.{}", import.subject),
                        (Some(to), false) => to.clone(),
                        (None, _) => import.subject.clone(),
                    };
                    ImportJson {
                        subject: import.subject.clone(),
                        account: import.account.clone(),
                        to: match import.kind {
                            ExportKind::Service => local.clone(),
                            ExportKind::Stream => String::new(),
                        },
                        local_subject: local,
                        kind: kind_name(import.kind),
                        invalid: false,
                        share: import.share,
                        tracking: false,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let table = detail.table.cloned().unwrap_or_default();
    AccountInfo {
        account_name: detail.name.to_string(),
        update_time: gotime::rfc3339_utc(detail.updated),
        is_system: detail.is_system,
        expired: false,
        complete: true,
        jetstream_enabled: false,
        leafnode_connections: 0,
        client_connections: detail.traffic.map_or(0, |t| t.connections),
        subscriptions: table.subscriptions,
        mappings,
        exports,
        imports,
        name_tag: detail.name.to_string(),
        sublist_stats: SublistStats::of([&table]),
    }
}

#[derive(Debug, Serialize)]
pub struct AccountStatz {
    pub server_id: String,
    pub now: String,
    pub account_statz: Vec<AccountStat>,
}

#[derive(Debug, Serialize)]
pub struct MsgBytes {
    pub msgs: u64,
    pub bytes: u64,
}

/// Messages and bytes, with the (zero) parts that came over gateways, routes and leaf nodes.
#[derive(Debug, Serialize)]
pub struct DataStats {
    pub msgs: u64,
    pub bytes: u64,
    pub gateways: MsgBytes,
    pub routes: MsgBytes,
    pub leafs: MsgBytes,
}

impl DataStats {
    fn clients(msgs: u64, bytes: u64) -> DataStats {
        let zero = || MsgBytes { msgs: 0, bytes: 0 };
        DataStats {
            msgs,
            bytes,
            gateways: zero(),
            routes: zero(),
            leafs: zero(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountStat {
    pub acc: String,
    pub name: String,
    pub conns: u64,
    pub leafnodes: u64,
    pub total_conns: u64,
    pub num_subscriptions: u64,
    /// What the server sent to the account's clients.
    pub sent: DataStats,
    /// What the account's clients published.
    pub received: DataStats,
    pub slow_consumers: u64,
}

/// One account's statistics (nats-server's `Account.statz`: `total_conns` is the open client
/// and leaf node connections, not a count since start).
pub fn account_stat(traffic: &AccountTraffic, subscriptions: u64) -> AccountStat {
    AccountStat {
        acc: traffic.account.clone(),
        name: traffic.account.clone(),
        conns: traffic.connections,
        leafnodes: 0,
        total_conns: traffic.connections,
        num_subscriptions: subscriptions,
        sent: DataStats::clients(traffic.out_msgs, traffic.out_bytes),
        received: DataStats::clients(traffic.in_msgs, traffic.in_bytes),
        slow_consumers: traffic.slow_consumers,
    }
}
