//! `/subsz` (and `/subscriptionsz`): the subject tables' statistics and, with `subs=1`, their
//! subscriptions, as nats-server's `Subsz` (monitor.go) and `SublistStats` (sublist.go).

use serde::Serialize;

use super::connz::SubJson;
use super::data::{SubInfo, TableStats};
use super::go_float;
use super::gotime;
use super::query::{Query, QueryError};
use crate::sublist::subject::pattern_matches;

/// Subscriptions listed when no `limit` is given (nats-server's `DefaultSubListSize`).
pub const DEFAULT_LIMIT: usize = 1024;

#[derive(Debug, Clone)]
pub struct SubszQuery {
    pub subs: bool,
    pub offset: usize,
    pub limit: usize,
    pub test: Option<String>,
    pub account: String,
}

/// nats-server's `SubszOptions` as JSON (a `$SYS.REQ.*.SUBSZ` request's options).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SubszOptions {
    pub offset: i64,
    pub limit: i64,
    pub subscriptions: bool,
    pub account: String,
    pub test: String,
}

impl SubszQuery {
    pub fn parse(query: &Query) -> Result<SubszQuery, QueryError> {
        let subscriptions = query.bool("subs")?;
        let offset = query.int("offset")?;
        let limit = query.int("limit")?;
        SubszQuery::new(SubszOptions {
            offset,
            limit,
            subscriptions,
            account: query.get("acc").to_string(),
            test: query.get("test").to_string(),
        })
    }

    /// Checks `options` as nats-server's `Subsz` does.
    pub fn new(options: SubszOptions) -> Result<SubszQuery, QueryError> {
        let test = options.test;
        if !test.is_empty() && !crate::sublist::valid_literal_subject(test.as_bytes()) {
            return Err(QueryError(format!(
                "invalid test subject, must be valid publish subject: {test}"
            )));
        }
        Ok(SubszQuery {
            subs: options.subscriptions,
            offset: options.offset.max(0) as usize,
            limit: if options.limit <= 0 {
                DEFAULT_LIMIT
            } else {
                options.limit as usize
            },
            test: (!test.is_empty()).then_some(test),
            account: options.account,
        })
    }
}

/// nats-server's `SublistStats`, summed over accounts as its `add` sums them.
#[derive(Debug, Serialize, Default, Clone)]
pub struct SublistStats {
    pub num_subscriptions: u64,
    pub num_cache: u64,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    #[serde(serialize_with = "go_float")]
    pub cache_hit_rate: f64,
    pub max_fanout: u64,
    #[serde(serialize_with = "go_float")]
    pub avg_fanout: f64,
}

impl SublistStats {
    /// The statistics of the tables given (all accounts', or one's).
    pub fn of<'a>(tables: impl IntoIterator<Item = &'a TableStats>) -> SublistStats {
        let mut stats = SublistStats::default();
        let (mut hits, mut fanout, mut results) = (0u64, 0u64, 0u64);
        for table in tables {
            stats.num_subscriptions += table.subscriptions;
            stats.num_cache += table.cache_entries;
            stats.num_inserts += table.inserts;
            stats.num_removes += table.removes;
            stats.num_matches += table.matches;
            stats.max_fanout = stats.max_fanout.max(table.max_fanout);
            hits += table.cache_hits;
            fanout += table.fanout_sum;
            results += table.cache_results;
        }
        if fanout > 0 && results > 0 {
            stats.avg_fanout = fanout as f64 / results as f64;
        }
        if stats.num_matches > 0 {
            stats.cache_hit_rate = hits as f64 / stats.num_matches as f64;
        }
        stats
    }
}

#[derive(Debug, Serialize)]
pub struct Subsz {
    pub server_id: String,
    pub now: String,
    #[serde(flatten)]
    pub stats: SublistStats,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<SubJson>,
}

/// The answer to `query`, from every account's table figures and (when `subs`) every
/// subscription.
pub fn subsz(
    query: &SubszQuery,
    server_id: &str,
    now: std::time::SystemTime,
    tables: &[TableStats],
    subscriptions: &[SubInfo],
) -> Subsz {
    let in_account = |account: &str| query.account.is_empty() || account == query.account;
    let stats = SublistStats::of(tables.iter().filter(|t| in_account(&t.account)));
    let (total, list) = if query.subs {
        let matching: Vec<&SubInfo> = subscriptions
            .iter()
            .filter(|sub| in_account(&sub.account))
            .filter(|sub| {
                query
                    .test
                    .as_ref()
                    .is_none_or(|test| pattern_matches(sub.subject.as_bytes(), test.as_bytes()))
            })
            .collect();
        let start = query.offset.min(matching.len());
        let end = start + query.limit.min(matching.len() - start);
        let list = matching[start..end]
            .iter()
            .map(|sub| SubJson::with_account(sub))
            .collect();
        (matching.len(), list)
    } else {
        (0, Vec::new())
    };
    Subsz {
        server_id: server_id.to_string(),
        now: gotime::rfc3339_utc(now),
        stats,
        total,
        offset: query.offset,
        limit: query.limit,
        subscriptions_list: list,
    }
}
