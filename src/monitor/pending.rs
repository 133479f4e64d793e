//! TEMPORARY until the shard side lands (branch mon-shard): the data types and `Shared`'s
//! queries, from what the shards answer today.

#![allow(dead_code)]
use std::sync::Arc;
use std::time::SystemTime;

use crate::shard::control::Control;
use crate::shard::Shared;
use crate::stats::{AccountTraffic, ShardStats};

#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub cid: u64,
    pub shard: u16,
    pub ip: String,
    pub port: u16,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    pub stop: Option<SystemTime>,
    pub reason: Option<&'static str>,
    pub rtt_ns: u64,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub authorized_user: String,
    pub account: String,
    pub jwt: String,
    pub issuer_key: String,
    pub name_tag: String,
    pub tags: Vec<String>,
    pub subs: Vec<SubInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubInfo {
    pub account: String,
    pub subject: String,
    pub queue: Option<String>,
    pub sid: String,
    pub msgs: u64,
    pub max: Option<u64>,
    pub cid: u64,
}

#[derive(Debug, Clone, Default)]
pub struct TableStats {
    pub account: String,
    pub subscriptions: u64,
    pub cache_entries: u64,
    pub inserts: u64,
    pub removes: u64,
    pub matches: u64,
    pub cache_hits: u64,
    pub max_fanout: u64,
    pub fanout_sum: u64,
    pub cache_results: u64,
}

impl Shared {
    pub fn shard_stats_now(&self) -> Vec<ShardStats> {
        self.stats
            .iter()
            .map(|s| *s.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    pub fn open_connections(&self, _subs: bool) -> Vec<ConnInfo> {
        let mut all: Vec<ConnInfo> = self
            .ask_every_shard(Control::Connections)
            .into_iter()
            .flatten()
            .map(|c| {
                let (ip, port) = c.peer.rsplit_once(':').unwrap_or(("", "0"));
                ConnInfo {
                    cid: c.cid,
                    shard: c.shard,
                    ip: ip.trim_matches(['[', ']']).to_string(),
                    port: port.parse().unwrap_or(0),
                    start: SystemTime::now(),
                    last_activity: SystemTime::now(),
                    stop: None,
                    reason: None,
                    rtt_ns: 0,
                    pending_bytes: c.pending_bytes,
                    in_msgs: c.in_msgs,
                    in_bytes: c.in_bytes,
                    out_msgs: c.out_msgs,
                    out_bytes: c.out_bytes,
                    subscriptions: c.subscriptions,
                    name: c.name,
                    lang: c.lang,
                    version: c.version,
                    authorized_user: String::new(),
                    account: c.account,
                    jwt: String::new(),
                    issuer_key: String::new(),
                    name_tag: String::new(),
                    tags: Vec::new(),
                    subs: Vec::new(),
                }
            })
            .collect();
        all.sort_by_key(|c| c.cid);
        all
    }

    pub fn closed_connections(&self) -> Vec<Arc<ConnInfo>> {
        Vec::new()
    }

    pub fn subscriptions(&self) -> Vec<SubInfo> {
        Vec::new()
    }

    pub fn table_stats(&self) -> Vec<TableStats> {
        self.settings()
            .accounts
            .iter()
            .map(|a| TableStats {
                account: a.name.clone(),
                subscriptions: a.sublist.count() as u64,
                ..Default::default()
            })
            .collect()
    }

    pub fn account_traffic(&self) -> Vec<AccountTraffic> {
        let mut total: Vec<AccountTraffic> = Vec::new();
        for shard in self.ask_every_shard(Control::AccountTraffic) {
            for (index, traffic) in shard.iter().enumerate() {
                match total.get_mut(index) {
                    Some(sum) => sum.add(traffic),
                    None => total.push(traffic.clone()),
                }
            }
        }
        total
    }
}
