//! The subject table and subject validation. Owns: which subscriptions exist (by subject and
//! queue group), what a published subject matches, and each shard's cache of those answers.
//! Must not touch: connections, file descriptors, IO, message bytes. Subscriptions are opaque
//! [`SubHandle`]s; the shard that owns a handle knows what it stands for.
//!
//! - [`subject`]: token splitting and the validity checks nats-server applies (SUB, pedantic
//!   PUB, configuration).
//! - [`Sublist`]: one table per account, shared by all shards (`Send + Sync`). A trie of tokens
//!   with `*` and `>` children behind one `RwLock`, and an atomic generation bumped (under the
//!   write lock) by every change.
//! - [`MatchCache`]: one per shard (and table), literal subject -> `Rc<MatchResult>` tagged with
//!   the generation. A cache hit takes no lock and writes no shared memory; a publish after a
//!   SUB's PONG sees the SUB because the SUB bumped the generation before it was answered.
//!
//! Match results follow nats-server (`sublist.go` `matchLevel`/`addNodeToResults`): every
//! matching plain subscription, and every matching queue subscription grouped **by queue name
//! across all matching subjects**. So `foo.*` in `q1` and `foo.bar` in `q1` are one group for a
//! publish to `foo.bar`, and one of their members gets each message.

mod cache;
#[cfg(test)]
mod oracle;
pub mod subject;
mod subset;
mod table;
#[cfg(test)]
mod tests;

pub use cache::MatchCache;
pub use subject::{
    is_literal, valid_literal_subject, valid_publish_subject, valid_subject,
    valid_subscribe_subject,
};
pub use table::Sublist;

/// Identity of one subscription: which shard owns it, its slot in that shard's subscription slab,
/// and that slot's generation. Opaque to the table (compared for equality on removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubHandle {
    pub shard: u16,
    pub slot: u32,
    pub generation: u32,
}

/// The members of one queue group that match a subject. Exactly one of them should receive
/// each message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueGroup {
    pub name: Box<[u8]>,
    /// Never empty in a match result; in no particular order.
    pub members: Vec<SubHandle>,
}

/// What a literal subject matches: plain subscribers sorted by shard (stable), and each matching
/// queue group with all its members. A group is identified by its name alone: members of the
/// same queue name subscribed on different subjects that both match (`foo.*` q1 and `foo.bar`
/// q1) form ONE group, as in nats-server. Group names are unique within a result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MatchResult {
    pub plain: Vec<SubHandle>,
    pub queues: Vec<QueueGroup>,
}

impl MatchResult {
    /// True when nothing matched (no plain subscriber and no queue group).
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

/// A subscription subject nats-server's `Sublist.Insert` refuses (empty token, `>` not last).
/// The client is answered `-ERR 'Invalid Subject'` and stays connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSubject;

impl std::fmt::Display for InvalidSubject {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Invalid Subject")
    }
}

impl std::error::Error for InvalidSubject {}

/// The table is shared between shard threads; keep it so.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sublist>();
};
