//! Accounts: isolated subject spaces, each with its own subject table. A connection belongs to
//! one account, and a publish is matched in that account's table only. Today there is one
//! account, nats-server's global `$G`, which every client is in; the authentication issue adds
//! configured accounts (and the system account), with imports and exports between them.
//!
//! Invariants: `AccountId` indexes `Shared::accounts` and each shard's match caches, in the
//! same order; account 0 is `$G`.

use std::time::Duration;

use crate::auth::Permissions;
use crate::sublist::Sublist;

/// An account's index in the server's account list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub u32);

impl AccountId {
    /// nats-server's global account, `$G`: every client's, while no accounts are configured.
    pub const GLOBAL: AccountId = AccountId(0);

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

pub mod links;

/// One account: its name, its subject table, and the routes of responses to requests that
/// came into it through service imports.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub sublist: Sublist,
    /// The interest other servers of the cluster sent for this account, by route (see
    /// `shard::route_forward`); empty without a cluster.
    pub remote: Sublist,
    /// The start of the reply subjects requests get on their way into this account
    /// (`_R_.<6 random characters>.`, as nats-server makes them).
    pub response_prefix: Box<[u8]>,
    pub responses: links::ResponseRoutes,
    /// Client connections in it, across all shards (its JWT's `conn` limit counts these).
    pub connections: std::sync::atomic::AtomicU32,
}

impl Account {
    /// An account with an empty subject table.
    pub fn new(name: &str) -> Account {
        let mut prefix = b"_R_.".to_vec();
        prefix.extend_from_slice(&random_token(6));
        prefix.push(b'.');
        Account {
            name: name.to_string(),
            sublist: Sublist::new(),
            remote: Sublist::new(),
            response_prefix: prefix.into_boxed_slice(),
            responses: Default::default(),
            connections: Default::default(),
        }
    }

    /// The global account, `$G`.
    pub fn global() -> Account {
        Account::new(GLOBAL_ACCOUNT)
    }
}

/// `len` random characters of nats-server's reply alphabet (digits and letters).
pub fn random_token(len: usize) -> Vec<u8> {
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = vec![0u8; len];
    // The kernel's random source; reply subjects must not be guessable by other accounts.
    let _ = getrandom::fill(&mut bytes);
    bytes
        .into_iter()
        .map(|byte| DIGITS[usize::from(byte) % DIGITS.len()])
        .collect()
}

/// The accounts `configs` describe, indexed by `AccountId`: `$G` first, then every account
/// of `previous` (a reload keeps each account it had, its subject table and its id, so
/// connections and subscriptions in it stay valid; one the new configuration no longer names
/// just has no users any more), then the configured ones not there yet, in order, then the
/// system account (`system`) unless it is configured.
pub fn accounts_for(
    configs: &[AccountConfig],
    system: Option<&str>,
    previous: &[std::sync::Arc<Account>],
) -> Vec<std::sync::Arc<Account>> {
    let mut accounts: Vec<std::sync::Arc<Account>> = if previous.is_empty() {
        vec![std::sync::Arc::new(Account::global())]
    } else {
        previous.to_vec()
    };
    let configured = configs.iter().map(|account| account.name.as_str());
    for name in configured.chain(system) {
        if !accounts.iter().any(|account| account.name == name) {
            accounts.push(std::sync::Arc::new(Account::new(name)));
        }
    }
    accounts
}

/// The system account's name (`system_account`, else `$SYS`).
pub fn system_account_name(options: &crate::config::Options) -> &str {
    options
        .system_account
        .as_deref()
        .unwrap_or(SYSTEM_ACCOUNT_DEFAULT)
}

/// The id of the account named `name` among `accounts`.
pub fn find(accounts: &[std::sync::Arc<Account>], name: &str) -> Option<AccountId> {
    accounts
        .iter()
        .position(|account| account.name == name)
        .map(|index| AccountId(index as u32))
}

/// What an export or import carries: a stream (messages flow to the importer) or a service
/// (requests flow to the exporter, responses back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Stream,
    Service,
}

/// How many responses a service request may have (`response_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseType {
    /// One response (the default).
    #[default]
    Singleton,
    /// Any number of responses, until the threshold passes with none.
    Stream,
    /// Any number of responses, in chunks of one response.
    Chunked,
}

/// One entry of an account's `exports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub kind: ExportKind,
    /// The exported subject (wildcards allowed).
    pub subject: String,
    /// `accounts: [...]`: only these may import it (a private export); `None`: public.
    pub accounts: Option<Vec<String>>,
    /// Services only.
    pub response_type: ResponseType,
    /// Services only: how long a response may take (`response_threshold`); `None`:
    /// nats-server's default (2 min).
    pub response_threshold: Option<Duration>,
    /// `account_token_position`: the subject token that must be the importer's account name
    /// (1-based); 0: none.
    pub account_token_position: u32,
}

/// One entry of an account's `imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub kind: ExportKind,
    /// The exporting account.
    pub account: String,
    /// The subject in the exporting account.
    pub subject: String,
    /// Where it appears in the importing account: a stream's `prefix` or `to`, a service's
    /// `to`; `None`: the same subject.
    pub to: Option<String>,
    /// Streams: the prefix form (`prefix`), which nats-server joins with a `.`.
    pub prefix: bool,
    /// Services: share the requestor's latency tracking (`share`); kept for monitoring.
    pub share: bool,
}

/// One destination of a subject mapping, taken `weight` percent of the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedDestination {
    pub subject: String,
    /// Percent, 1 to 100.
    pub weight: u8,
    /// Only in this cluster (`cluster`); natsring has no cluster yet.
    pub cluster: Option<String>,
}

/// A subject mapping (`mappings { "src": "dest" }`): a publish to a subject matching `source`
/// is routed to one of `destinations`, its subject rewritten by the destination's template
/// (`{{wildcard(1)}}`, `$1`, `{{partition(n,1)}}`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub source: String,
    pub destinations: Vec<WeightedDestination>,
}

/// An account's limits (`limits { ... }` in a JWT; in a file, what the account block sets).
/// -1 means no limit, as in nats-server's JWT claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_connections: i64,
    pub max_subscriptions: i64,
    pub max_payload: i64,
    pub max_data: i64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_connections: -1,
            max_subscriptions: -1,
            max_payload: -1,
            max_data: -1,
        }
    }
}

/// One configured account (`accounts { A { ... } }`, or an account JWT in operator mode). Its
/// users are in `AuthOptions::users`/`nkeys`, with `account` naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountConfig {
    pub name: String,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    pub mappings: Vec<Mapping>,
    /// Permissions for its users that have none of their own (`default_permissions`).
    pub default_permissions: Option<Permissions>,
    pub limits: AccountLimits,
}

/// nats-server's name for the system account unless `system_account` says otherwise.
pub const SYSTEM_ACCOUNT_DEFAULT: &str = "$SYS";
/// nats-server's global account.
pub const GLOBAL_ACCOUNT: &str = "$G";
