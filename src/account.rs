//! Accounts: isolated subject spaces, each with its own subject table. A connection belongs to
//! one account, and a publish is matched in that account's table only. Today there is one
//! account, nats-server's global `$G`, which every client is in; the authentication issue adds
//! configured accounts (and the system account), with imports and exports between them.
//!
//! Invariants: `AccountId` indexes `Shared::accounts` and each shard's match caches, in the
//! same order; account 0 is `$G`.

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

/// One account: its name and its subject table.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub sublist: Sublist,
}

impl Account {
    /// The global account, `$G`.
    pub fn global() -> Account {
        Account {
            name: "$G".to_string(),
            sublist: Sublist::new(),
        }
    }
}
