//! What a connected user may publish and subscribe to, decided as nats-server 2.15.1 decides
//! it (`server/client.go`: `setPermissions`, `pubAllowedFullCheck`, `canSubscribeInternal`,
//! `loadMsgDenyFilterIfNeeded`, `checkDenySub`, `responseAllowed`, `deliverMsg`'s reply
//! tracking, and the reserved-prefix checks of `processInboundClientMsg`).
//!
//! Two halves:
//! - [`CompiledPermissions`]: a user's [`Permissions`] compiled once per configuration into
//!   tries of subjects (allow and deny, for publish and subscribe, subscribe entries with their
//!   queue groups) and the normalized response permission. Immutable; shared as an `Arc` by
//!   every connection of the user, on every shard.
//! - [`ConnectionPermissions`]: one connection's state, owned by the connection and used from
//!   its shard only: the cache of publish decisions, the reply subjects `allow_responses`
//!   lets it answer, and (once a subscription may overlap a subscribe deny) the
//!   delivery-time deny filter.
//!
//! The shard calls [`publish_check`] on each PUB/HPUB, [`subscribe_check`] on each SUB,
//! [`ConnectionPermissions::delivery_denied`] before delivering to a connection that has
//! permissions, and [`ConnectionPermissions::note_request_delivered`] after delivering a
//! message with a reply to one. The `-ERR` texts are [`PublishViolation::error_text`] and
//! [`subscription_violation_text`]; no permission violation closes the connection
//! ([`VIOLATION_CLOSES_CONNECTION`]).
//!
//! Matching, as nats-server's `Sublist` matches: a published or subscribed subject is split on
//! `.` and each of its tokens is taken literally, `*` and `>` included; only the permission
//! entries' `*` and `>` are wildcards. So `SUB foo.*` passes `allow: "foo.*"`, `"foo.>"` or
//! `"*.*"`, but not `"foo.bar"`; and `SUB foo.>` passes `allow: "*.*"` (whose `*` matches the
//! token `>`). A subject with an empty token matches no entry at all.
//!
//! Cost on the publish path:
//! - a user without permissions (the connection holds no [`ConnectionPermissions`]): one
//!   branch on that `Option`, plus the reserved-prefix rules nats-server applies to every
//!   client (a subject starting `_GR_.` or `$NRG.`, a reply starting `_R_.`, `$JS.ACK.` or
//!   `_GR_.`): a few byte compares, no hashing, no memory written.
//! - a user with subscribe permissions only: one more branch.
//! - a user with publish permissions, cache hit: one keyed hash of the subject and one probe
//!   of a table of at most [`limits::PUBLISH_PERMISSION_CACHE_ENTRIES_MAX`] entries.
//! - cache miss: a walk of the allow trie and then the deny trie (one level per token, plus
//!   the `*` branches), one allocation for the cached key, and when the cache is over its bound
//!   it is emptied. A subject denied to a user with `allow_responses` is not cached (as in
//!   nats-server): it is looked up in the tracked replies each time.
//!
//! Must not touch: sockets, the shard's types, the subject table. Pure and single-threaded per
//! connection; time comes in as `now_ms`, the shard's monotonic milliseconds.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use super::{Permissions, ResponsePermission, SubjectPermission};
use crate::limits;
use crate::sublist::subject::{has_empty_token, is_literal, split_first_token, tokens};
use crate::sublist::valid_subject;

/// Whether a permission violation closes the connection. nats-server answers `-ERR` and keeps
/// the connection for all three (`pubPermissionViolation`, `replySubjectViolation`,
/// `subPermissionViolation` only send the error and log).
pub const VIOLATION_CLOSES_CONNECTION: bool = false;

/// The queue group nats-server reserves for its own subscriptions (`sysGroup`): a client's
/// queue subscription in it is refused whatever its permissions.
pub const SYSTEM_QUEUE_GROUP: &[u8] = b"_sys_";

/// Subjects that only gateways use (`gwReplyPrefix`): no client may publish to them, nor use
/// one as a reply.
const GATEWAY_REPLY_PREFIX: &[u8] = b"_GR_.";
/// Raft (NRG) traffic; only clients of the system account may publish to it.
const RAFT_PREFIX: &[u8] = b"$NRG.";
/// Service import replies (`replyPrefix`).
const SERVICE_REPLY_PREFIX: &[u8] = b"_R_.";
/// MQTT's internal subjects (`mqttPrefix`): a connection that is not a client is held to its
/// deny lists there, not to its allow lists.
const MQTT_PREFIX: &[u8] = b"$MQTT.";
/// JetStream acknowledgements (`jsAckPre`).
const JETSTREAM_ACK_PREFIX: &[u8] = b"$JS.ACK.";

// ---------------------------------------------------------------------------------------------
// Subject sets

/// What the entries ending at one trie node say: a plain entry (`"foo"`), and the queue
/// groups of queue entries (`"foo q1"`, `"foo v1.*"`).
#[derive(Debug, Default)]
struct Entries {
    plain: bool,
    /// Distinct queue names, as written.
    queues: Vec<Box<[u8]>>,
}

/// One token position of the trie: children by literal token, the `*` child and the `>`
/// child (nats-server's `level`).
#[derive(Debug, Default)]
struct Level {
    /// Sorted by token, distinct.
    literals: Vec<(Box<[u8]>, Node)>,
    one: Option<Box<Node>>,
    /// `>` is always last, so its node has entries and no next level.
    rest: Option<Box<Node>>,
}

/// A token of an entry: the entries that end here and the level after it.
#[derive(Debug, Default)]
struct Node {
    entries: Entries,
    next: Option<Box<Level>>,
}

/// What a subject matched in a [`SubjectSet`], as much of nats-server's `SublistResult` as
/// the permission checks read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MatchSummary {
    /// A plain entry matched (`len(r.psubs) > 0`).
    plain: bool,
    /// A queue entry matched (`len(r.qsubs) > 0`).
    queue_entries: bool,
    /// A matching queue entry's group matches the queue asked about (`queueMatches`).
    queue_matched: bool,
}

/// A set of permission entries (subjects with `*`/`>`, optionally with a queue group), matched
/// as nats-server's `Sublist` matches subjects against subscriptions.
///
/// Invariant: every entry inserted was a valid subject (`valid_subject`), so no token is empty
/// and `>` is only last.
#[derive(Debug, Default)]
pub struct SubjectSet {
    root: Level,
    /// Entries inserted (a repeated entry counts once per insertion).
    entry_count: usize,
}

impl SubjectSet {
    /// Adds an entry. `subject` must be a valid subject; `queue` a queue group (non-empty).
    fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>) {
        debug_assert!(valid_subject(subject), "entries are valid subjects");
        let node = insert_path(&mut self.root, subject);
        match queue {
            None => node.entries.plain = true,
            Some(queue) => {
                debug_assert!(!queue.is_empty());
                if !node.entries.queues.iter().any(|known| **known == *queue) {
                    node.entries.queues.push(queue.into());
                }
            }
        }
        self.entry_count += 1;
    }

    /// Entries inserted.
    pub fn len(&self) -> usize {
        self.entry_count
    }

    /// True when no entry was inserted.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Calls `found` with the entries of every node `subject` matches, until it returns true;
    /// true when it did. Nothing matches a subject with an empty token.
    fn any_match<'set>(
        &'set self,
        subject: &[u8],
        found: &mut impl FnMut(&'set Entries) -> bool,
    ) -> bool {
        if has_empty_token(subject) {
            return false;
        }
        walk(&self.root, subject, found)
    }

    /// True when a plain entry matches `subject` (what nats-server's `NumInterest` reports for
    /// publish permissions, whose entries never have queues).
    pub fn matches_plain(&self, subject: &[u8]) -> bool {
        self.any_match(subject, &mut |entries| entries.plain)
    }

    /// What `subject` matches, and whether a matching queue entry admits `queue`.
    fn summary(&self, subject: &[u8], queue: Option<&[u8]>) -> MatchSummary {
        let mut summary = MatchSummary::default();
        self.any_match(subject, &mut |entries| {
            summary.plain |= entries.plain;
            if !entries.queues.is_empty() {
                summary.queue_entries = true;
                if let Some(queue) = queue {
                    summary.queue_matched |= entries
                        .queues
                        .iter()
                        .any(|group| queue_matches(queue, group));
                }
            }
            false
        });
        summary
    }
}

/// The node for `subject` under `level`, created with the levels leading to it if needed.
fn insert_path<'set>(level: &'set mut Level, subject: &[u8]) -> &'set mut Node {
    let (token, rest) = split_first_token(subject);
    let child: &mut Node = match token {
        b"*" => level.one.get_or_insert_default(),
        b">" => level.rest.get_or_insert_default(),
        _ => {
            let index = match level
                .literals
                .binary_search_by(|(literal, _)| (**literal).cmp(token))
            {
                Ok(index) => index,
                Err(index) => {
                    level
                        .literals
                        .insert(index, (token.into(), Node::default()));
                    index
                }
            };
            &mut level.literals[index].1
        }
    };
    match rest {
        None => child,
        Some(rest) => insert_path(child.next.get_or_insert_default(), rest),
    }
}

/// nats-server's `matchLevel`, visiting instead of collecting: the `>` child matches the rest
/// (one or more tokens), the `*` child matches this token, a literal child matches equal bytes.
fn walk<'set>(
    level: &'set Level,
    subject: &[u8],
    found: &mut impl FnMut(&'set Entries) -> bool,
) -> bool {
    let (token, rest) = split_first_token(subject);
    if let Some(node) = &level.rest {
        if found(&node.entries) {
            return true;
        }
    }
    if let Some(node) = &level.one {
        if visit_node(node, rest, found) {
            return true;
        }
    }
    match level
        .literals
        .binary_search_by(|(literal, _)| (**literal).cmp(token))
    {
        Ok(index) => visit_node(&level.literals[index].1, rest, found),
        Err(_) => false,
    }
}

/// The subject's token matched `node`: its entries when that was the last token, else the
/// next level with the rest.
fn visit_node<'set>(
    node: &'set Node,
    rest: Option<&[u8]>,
    found: &mut impl FnMut(&'set Entries) -> bool,
) -> bool {
    match (rest, &node.next) {
        (None, _) => found(&node.entries),
        (Some(rest), Some(next)) => walk(next, rest, found),
        (Some(_), None) => false,
    }
}

/// nats-server's `queueMatches` for one group: the queue is the group's name, or the name has
/// a wildcard token and the queue is a subset of it (`"v1.*"` admits `v1.prod`).
fn queue_matches(queue: &[u8], group: &[u8]) -> bool {
    queue == group || (!is_literal(group) && is_subset_match(queue, group))
}

/// nats-server's `subjectIsSubsetMatch(subject, test)`: every subject `subject` matches is
/// also matched by `test` (`foo.*` is a subset of `>`, `*.*` and `foo.*`, not of `foo.bar`).
/// As in nats-server, a `test` token that merely starts with `*` matches any literal token.
pub fn is_subset_match(subject: &[u8], test: &[u8]) -> bool {
    let mut subject_tokens = tokens(subject);
    for test_token in tokens(test) {
        let Some(token) = subject_tokens.next() else {
            return false;
        };
        if test_token.is_empty() {
            return false;
        }
        if test_token == b">" {
            return true;
        }
        if token.is_empty() || token == b">" {
            return false;
        }
        if token == b"*" {
            if test_token != b"*" {
                return false;
            }
            continue;
        }
        if test_token[0] != b'*' && token != test_token {
            return false;
        }
    }
    subject_tokens.next().is_none()
}

/// nats-server's `SubjectsCollide`: whether some literal subject could match both. Used only
/// to decide when a connection needs the delivery-time deny filter; as in nats-server, a
/// token that starts with `*` or `>` is taken for a wildcard when both sides have wildcards.
pub fn subjects_collide(first: &[u8], second: &[u8]) -> bool {
    if first == second {
        return true;
    }
    let first_tokens: Vec<&[u8]> = tokens(first).collect();
    let second_tokens: Vec<&[u8]> = tokens(second).collect();
    let (first_one, first_rest) = wildcard_kinds(&first_tokens);
    let (second_one, second_rest) = wildcard_kinds(&second_tokens);
    let first_literal = !(first_one || first_rest);
    let second_literal = !(second_one || second_rest);
    match (first_literal, second_literal) {
        (true, true) => return false,
        (true, false) => return is_subset_match(first, second),
        (false, true) => return is_subset_match(second, first),
        (false, false) => {}
    }
    let (first_len, second_len) = (first_tokens.len(), second_tokens.len());
    if first_len != second_len
        && ((first_len < second_len && !first_rest) || (second_len < first_len && !second_rest))
    {
        return false;
    }
    first_tokens
        .iter()
        .zip(&second_tokens)
        .all(|(first, second)| tokens_can_match(first, second))
}

/// Whether the tokens include a `*` token and a `>` token.
fn wildcard_kinds(subject_tokens: &[&[u8]]) -> (bool, bool) {
    let one = subject_tokens.iter().any(|token| *token == b"*");
    let rest = subject_tokens.iter().any(|token| *token == b">");
    (one, rest)
}

/// nats-server's `tokensCanMatch`.
fn tokens_can_match(first: &[u8], second: &[u8]) -> bool {
    match (first.first(), second.first()) {
        (None, _) | (_, None) => false,
        (Some(b'*' | b'>'), _) | (_, Some(b'*' | b'>')) => true,
        _ => first == second,
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled permissions

/// `allow_responses` after nats-server's defaults (`validateResponsePermissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResponseLimits {
    /// Responses allowed per request; zero or less: unlimited.
    max_msgs: i64,
    /// How long after the request a response is allowed; `u64::MAX`: forever.
    expires_ms: u64,
}

impl ResponseLimits {
    fn new(permission: ResponsePermission) -> ResponseLimits {
        let max_msgs = if permission.max_msgs == 0 {
            ResponsePermission::MAX_MSGS_DEFAULT
        } else {
            permission.max_msgs
        };
        let expires = if permission.expires.is_zero() {
            ResponsePermission::EXPIRES_DEFAULT
        } else {
            permission.expires
        };
        ResponseLimits {
            max_msgs,
            expires_ms: u64::try_from(expires.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// nats-server's expiry test, `now - received > expires`.
    fn expired(&self, received_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(received_ms) > self.expires_ms
    }

    /// Whether a reply answered `responses` times may not be answered again.
    fn used_up(&self, responses: i64) -> bool {
        self.max_msgs > 0 && responses >= self.max_msgs
    }
}

/// Publish rules; present exactly when nats-server has a publish allow or deny sublist
/// (an `allow` list was given, even empty, or a non-empty `deny`).
#[derive(Debug)]
struct PublishRules {
    /// `None`: everything is allowed unless denied. `Some(empty)`: nothing is.
    allow: Option<SubjectSet>,
    /// Never empty.
    deny: Option<SubjectSet>,
}

/// A user's permissions, compiled once per configuration and shared (`Arc`) by its
/// connections. Immutable.
#[derive(Debug)]
pub struct CompiledPermissions {
    publish: Option<PublishRules>,
    /// Present exactly when the `allow` list has entries (nats-server: an empty subscribe
    /// allow list allows everything).
    subscribe_allow: Option<SubjectSet>,
    /// Present exactly when the `deny` list has entries.
    subscribe_deny: Option<SubjectSet>,
    /// The subjects of `subscribe_deny`'s entries, for the overlap test that turns the
    /// delivery filter on (nats-server's `darray`).
    subscribe_deny_subjects: Vec<Box<[u8]>>,
    response: Option<ResponseLimits>,
    /// What nats-server would log for entries it skips or reinterprets, in its words.
    warnings: Vec<String>,
}

impl CompiledPermissions {
    /// Compiles `permissions` as nats-server's `setPermissions` does, after the response
    /// permission defaults of `validateResponsePermissions`: with `allow_responses` and no
    /// publish `allow` list, the user may publish nothing but responses. An empty list is
    /// taken as absent, as nats-server's configuration parser gives it (checked: a user with
    /// `publish: { allow: [] }` may publish anything). Entries nats-server
    /// would refuse are skipped (see [`CompiledPermissions::warnings`]).
    ///
    /// Model convention: a negative `expires` (nats-server: never expires) is represented by
    /// `Duration::MAX`; zero means the default, as in nats-server.
    pub fn new(permissions: &Permissions) -> CompiledPermissions {
        let mut warnings = Vec::new();
        let response = permissions.response.map(ResponseLimits::new);
        // nats-server's configuration parser yields no list for `allow: []`, so an empty
        // publish allow list allows everything, unless `allow_responses` turned it into
        // "nothing but responses".
        let publish_allow_list = match (&permissions.publish, response) {
            (
                Some(SubjectPermission {
                    allow: Some(allow), ..
                }),
                _,
            ) if !allow.is_empty() => Some(allow.as_slice()),
            (_, Some(_)) => Some(&[][..]),
            (_, None) => None,
        };
        let publish_deny_list = permissions
            .publish
            .as_ref()
            .and_then(|publish| publish.deny.as_deref())
            .unwrap_or(&[]);

        let publish_allow = publish_allow_list.map(|list| {
            let mut set = SubjectSet::default();
            for entry in list {
                if valid_subject(entry.as_bytes()) {
                    set.insert(entry.as_bytes(), None);
                } else {
                    warnings.push(format!(
                        "invalid publish subject {}",
                        crate::config::go::quote(entry)
                    ));
                }
            }
            set
        });
        let publish_deny = (!publish_deny_list.is_empty()).then(|| {
            let mut set = SubjectSet::default();
            for entry in publish_deny_list {
                if valid_subject(entry.as_bytes()) {
                    set.insert(entry.as_bytes(), None);
                    continue;
                }
                // A queue qualifier means nothing to publishing: deny the subject.
                match split_subject_queue(entry) {
                    Some((subject, _)) => {
                        warnings.push(format!(
                            "queue qualifier is not valid for publish deny subject {}",
                            crate::config::go::quote(entry)
                        ));
                        set.insert(subject.as_bytes(), None);
                    }
                    None => warnings.push(format!(
                        "invalid publish deny subject {}",
                        crate::config::go::quote(entry)
                    )),
                }
            }
            set
        });
        let publish = (publish_allow.is_some() || publish_deny.is_some()).then_some(PublishRules {
            allow: publish_allow,
            deny: publish_deny,
        });

        let subscribe = permissions.subscribe.as_ref();
        let subscribe_allow_list = subscribe
            .and_then(|subscribe| subscribe.allow.as_deref())
            .unwrap_or(&[]);
        let subscribe_deny_list = subscribe
            .and_then(|subscribe| subscribe.deny.as_deref())
            .unwrap_or(&[]);
        let mut subscribe_deny_subjects = Vec::new();
        let subscribe_allow = (!subscribe_allow_list.is_empty())
            .then(|| subject_queue_set(subscribe_allow_list, &mut warnings, |_| {}));
        let subscribe_deny = (!subscribe_deny_list.is_empty()).then(|| {
            subject_queue_set(subscribe_deny_list, &mut warnings, |subject| {
                subscribe_deny_subjects.push(subject.as_bytes().into())
            })
        });

        CompiledPermissions {
            publish,
            subscribe_allow,
            subscribe_deny,
            subscribe_deny_subjects,
            response,
            warnings,
        }
    }

    /// Entries skipped (or, for a publish deny with a queue, reinterpreted), each in the words
    /// nats-server logs them with. Empty for a configuration nats-server's parser accepted.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether publishing is restricted at all.
    pub fn restricts_publish(&self) -> bool {
        self.publish.is_some()
    }

    /// nats-server's publish decision without the tracked replies: allow list (if any), then
    /// deny list.
    fn publish_permitted(&self, subject: &[u8]) -> bool {
        self.publish_permitted_checking(subject, true)
    }

    /// The publish decision for a connection that is not a client (a route's `canImport`,
    /// nats-server's `pubAllowedFullCheck` for a kind other than CLIENT): as
    /// `publish_permitted`, except that a subject starting `$MQTT.` is held to the deny list
    /// only.
    pub fn server_publish_permitted(&self, subject: &[u8]) -> bool {
        self.publish_permitted_checking(subject, !subject.starts_with(MQTT_PREFIX))
    }

    /// The publish decision, with or without the allow list.
    fn publish_permitted_checking(&self, subject: &[u8], check_allow: bool) -> bool {
        let Some(rules) = &self.publish else {
            return true;
        };
        let allowed = !check_allow
            || rules
                .allow
                .as_ref()
                .is_none_or(|allow| allow.matches_plain(subject));
        allowed
            && !rules
                .deny
                .as_ref()
                .is_some_and(|deny| deny.matches_plain(subject))
    }

    /// nats-server's `canSubscribeInternal` for a client connection.
    fn subscribe_permitted(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        self.subscribe_permitted_checking(subject, queue, true)
    }

    /// `canSubscribeInternal`, with or without the allow list (a connection that is not a
    /// client skips it for subjects starting `$MQTT.`).
    fn subscribe_permitted_checking(
        &self,
        subject: &[u8],
        queue: Option<&[u8]>,
        check_allow: bool,
    ) -> bool {
        let mut allowed = true;
        if let (true, Some(allow)) = (check_allow, &self.subscribe_allow) {
            let summary = allow.summary(subject, queue);
            allowed = summary.plain;
            if queue.is_some() && summary.queue_entries {
                // A queue listed for this subject decides, whatever the plain entries say.
                allowed = summary.queue_matched;
            }
        }
        allowed && !self.subscribe_denied(subject, queue)
    }

    /// Whether the subscribe deny list refuses `subject` (for `queue`): a plain entry matches,
    /// or the queue is given and a matching queue entry names it (`checkDenySub`).
    fn subscribe_denied(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(deny) = &self.subscribe_deny else {
            return false;
        };
        let summary = deny.summary(subject, queue);
        summary.plain || (queue.is_some() && summary.queue_matched)
    }
}

/// nats-server's `splitSubjectQueue`: one or two whitespace-separated fields, each a valid
/// subject.
fn split_subject_queue(entry: &str) -> Option<(&str, Option<&str>)> {
    let mut fields = entry.split_whitespace();
    let subject = fields.next()?;
    let queue = fields.next();
    if fields.next().is_some()
        || !valid_subject(subject.as_bytes())
        || queue.is_some_and(|queue| !valid_subject(queue.as_bytes()))
    {
        return None;
    }
    Some((subject, queue))
}

/// A subscribe allow or deny set from its entries (`"subject"` or `"subject queue"`); calls
/// `inserted` with the subject of each entry kept.
fn subject_queue_set(
    list: &[String],
    warnings: &mut Vec<String>,
    mut inserted: impl FnMut(&str),
) -> SubjectSet {
    let mut set = SubjectSet::default();
    for entry in list {
        match split_subject_queue(entry) {
            Some((subject, queue)) => {
                set.insert(subject.as_bytes(), queue.map(str::as_bytes));
                inserted(subject);
            }
            None => warnings.push(format!(
                "invalid subject-queue {}",
                crate::config::go::quote(entry)
            )),
        }
    }
    set
}

// ---------------------------------------------------------------------------------------------
// Per-connection state

/// A reply subject this connection received a request with and may answer
/// (nats-server's `resp`).
#[derive(Debug, Clone, Copy)]
struct TrackedReply {
    received_ms: u64,
    /// Responses published to it so far.
    responses: i64,
}

/// The replies `allow_responses` lets a connection publish to (nats-server's `c.replies`).
#[derive(Debug)]
struct ResponsePermits {
    limits: ResponseLimits,
    /// At most `RESPONSE_PERMITS_TRACKED_MAX` entries after each insertion.
    replies: HashMap<Box<[u8]>, TrackedReply, FixedState>,
    inserted_since_prune: u32,
    /// `None` until the first prune (nats-server's zero time: the first insertion prunes).
    last_prune_ms: Option<u64>,
}

impl ResponsePermits {
    /// nats-server's `responseAllowed`: counts the response; forgets the reply once it is used
    /// up or expired.
    fn allow_response(&mut self, reply: &[u8], now_ms: u64) -> bool {
        let Some(tracked) = self.replies.get_mut(reply) else {
            return false;
        };
        tracked.responses += 1;
        let over = self.limits.max_msgs > 0 && tracked.responses > self.limits.max_msgs;
        if over || self.limits.expired(tracked.received_ms, now_ms) {
            self.replies.remove(reply);
            return false;
        }
        true
    }

    /// Tracks `reply` afresh, pruning as nats-server does (every
    /// `RESPONSE_PERMITS_PRUNE_INSERTS` insertions or `RESPONSE_PERMITS_PRUNE_INTERVAL_MS`),
    /// and holding the map to `RESPONSE_PERMITS_TRACKED_MAX`.
    fn track(&mut self, reply: &[u8], now_ms: u64) {
        self.replies.insert(
            reply.into(),
            TrackedReply {
                received_ms: now_ms,
                responses: 0,
            },
        );
        self.inserted_since_prune += 1;
        let prune_due = self.inserted_since_prune > limits::RESPONSE_PERMITS_PRUNE_INSERTS
            || self.last_prune_ms.is_none_or(|last_ms| {
                now_ms.saturating_sub(last_ms) > limits::RESPONSE_PERMITS_PRUNE_INTERVAL_MS
            });
        if prune_due || self.replies.len() > limits::RESPONSE_PERMITS_TRACKED_MAX {
            self.prune(now_ms);
        }
        if self.replies.len() > limits::RESPONSE_PERMITS_TRACKED_MAX {
            self.forget_older_half();
        }
        debug_assert!(self.replies.len() <= limits::RESPONSE_PERMITS_TRACKED_MAX);
    }

    /// nats-server's `pruneReplyPerms`: drops replies used up or expired.
    fn prune(&mut self, now_ms: u64) {
        let limits = self.limits;
        self.replies.retain(|_, tracked| {
            !limits.used_up(tracked.responses) && !limits.expired(tracked.received_ms, now_ms)
        });
        self.inserted_since_prune = 0;
        self.last_prune_ms = Some(now_ms);
    }

    /// Past the bound with nothing to prune: keeps the newer half (natsring's own bound).
    fn forget_older_half(&mut self) {
        let mut received: Vec<u64> = self
            .replies
            .values()
            .map(|tracked| tracked.received_ms)
            .collect();
        let middle = received.len() / 2;
        let (_, &mut cutoff_ms, _) = received.select_nth_unstable(middle);
        self.replies
            .retain(|_, tracked| tracked.received_ms > cutoff_ms);
        // Many replies received in the same millisecond as the cutoff: keep none of them
        // rather than go over the bound.
        debug_assert!(self.replies.len() <= middle + 1);
    }
}

/// The delivery-time deny filter (nats-server's `mperms`): once a connection has a
/// subscription that may receive subjects its subscribe deny list names (a wildcard or
/// queue subscription overlapping a deny entry), each delivery to it is checked.
#[derive(Debug, Default)]
struct DeliveryFilter {
    /// (subject, queue) -> denied, keyed by `subject` or `subject SP queue` (neither contains
    /// a space). At most `DELIVERY_DENY_CACHE_ENTRIES_MAX` entries.
    decisions: HashMap<Box<[u8]>, bool, FixedState>,
    /// Reused buffer for building a key.
    key: Vec<u8>,
}

/// One connection's permission state. Owned by the connection; single-threaded.
#[derive(Debug)]
pub struct ConnectionPermissions {
    rules: std::sync::Arc<CompiledPermissions>,
    /// Publish decisions by subject, at most `PUBLISH_PERMISSION_CACHE_ENTRIES_MAX`.
    /// Denials are cached only when there are no response permissions.
    publish_decisions: HashMap<Box<[u8]>, bool, FixedState>,
    /// Present exactly when the user has `allow_responses`.
    responses: Option<ResponsePermits>,
    /// Present once a subscription may overlap a subscribe deny entry (never removed, as in
    /// nats-server).
    delivery_filter: Option<DeliveryFilter>,
}

impl ConnectionPermissions {
    /// The state of a connection that authenticated as a user with `rules`.
    pub fn new(rules: std::sync::Arc<CompiledPermissions>) -> ConnectionPermissions {
        let responses = rules.response.map(|limits| ResponsePermits {
            limits,
            replies: HashMap::with_hasher(crate::hash::seeded()),
            inserted_since_prune: 0,
            last_prune_ms: None,
        });
        ConnectionPermissions {
            rules,
            publish_decisions: HashMap::with_hasher(crate::hash::seeded()),
            responses,
            delivery_filter: None,
        }
    }

    /// The compiled permissions this connection checks against.
    pub fn rules(&self) -> &std::sync::Arc<CompiledPermissions> {
        &self.rules
    }

    /// nats-server's `pubAllowedFullCheck`: may this connection publish to `subject` now?
    /// Decided once per subject and cached; a subject the rules deny may still be a reply this
    /// connection may answer (`allow_responses`), which counts as one response and is not
    /// cached.
    pub fn publish_allowed(&mut self, subject: &[u8], now_ms: u64) -> bool {
        self.publish_decision(subject, now_ms).is_some()
    }

    /// `publish_allowed`, saying how: `None` when not allowed.
    pub fn publish_decision(&mut self, subject: &[u8], now_ms: u64) -> Option<Allowed> {
        if !self.rules.restricts_publish() {
            return Some(Allowed::ByRule);
        }
        let by_rule = |allowed: bool| allowed.then_some(Allowed::ByRule);
        if let Some(&allowed) = self.publish_decisions.get(subject) {
            return by_rule(allowed);
        }
        let allowed = self.rules.publish_permitted(subject);
        if !allowed {
            if let Some(responses) = &mut self.responses {
                return responses
                    .allow_response(subject, now_ms)
                    .then_some(Allowed::AsResponse);
            }
        }
        if self.publish_decisions.len() >= limits::PUBLISH_PERMISSION_CACHE_ENTRIES_MAX {
            self.publish_decisions.clear();
        }
        self.publish_decisions.insert(subject.into(), allowed);
        by_rule(allowed)
    }

    /// A message with reply subject `reply` was just delivered to this connection (queued to
    /// it). With `allow_responses`, the connection may now publish to `reply` (unless it may
    /// anyway). As in nats-server, the check "may it anyway" counts as a response when the
    /// reply is already tracked.
    pub fn note_request_delivered(&mut self, reply: &[u8], now_ms: u64) {
        if self.responses.is_none() || reply.is_empty() {
            return;
        }
        if self.publish_allowed(reply, now_ms) {
            return;
        }
        if let Some(responses) = &mut self.responses {
            responses.track(reply, now_ms);
        }
    }

    /// nats-server's `canSubscribe`: may this connection subscribe to `subject` (in `queue`)?
    /// Does not check the reserved queue group; [`subscribe_check`] does. When allowed and the
    /// subscription may overlap a deny entry, turns the delivery filter on.
    pub fn subscribe_allowed(&mut self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let queue = queue.filter(|queue| !queue.is_empty());
        if !self.rules.subscribe_permitted(subject, queue) {
            return false;
        }
        self.filter_deliveries_if_needed(subject, queue);
        true
    }

    /// `subscribe_allowed` for a connection that is not a client, without a queue: a route's
    /// `canExport` (nats-server calls `canSubscribe(subject)` for every `RS+`, queue or not).
    /// A subject starting `$MQTT.` is held to the deny list only.
    pub fn server_subscribe_allowed(&mut self, subject: &[u8]) -> bool {
        let check_allow = !subject.starts_with(MQTT_PREFIX);
        if !self
            .rules
            .subscribe_permitted_checking(subject, None, check_allow)
        {
            return false;
        }
        self.filter_deliveries_if_needed(subject, None);
        true
    }

    /// nats-server's `loadMsgDenyFilterIfNeeded`: a subscription now allowed that may overlap
    /// a deny entry (a queue one, or one with a wildcard) turns the delivery filter on.
    fn filter_deliveries_if_needed(&mut self, subject: &[u8], queue: Option<&[u8]>) {
        if self.delivery_filter.is_none()
            && (queue.is_some() || !is_literal(subject))
            && self
                .rules
                .subscribe_deny_subjects
                .iter()
                .any(|denied| subjects_collide(denied, subject))
        {
            self.delivery_filter = Some(DeliveryFilter::default());
        }
    }

    /// Whether delivery-time deny checks are on for this connection.
    pub fn filters_deliveries(&self) -> bool {
        self.delivery_filter.is_some()
    }

    /// nats-server's `checkDenySub`, for a message on `subject` about to be delivered to this
    /// connection's subscription in `queue` (`None` for a plain one): true when it must not be
    /// delivered. A denied queue delivery should go to another member of the group, as in
    /// nats-server. False at the cost of one branch while the filter is off.
    pub fn delivery_denied(&mut self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(filter) = &mut self.delivery_filter else {
            return false;
        };
        let queue = queue.filter(|queue| !queue.is_empty());
        filter.key.clear();
        filter.key.extend_from_slice(subject);
        if let Some(queue) = queue {
            filter.key.push(b' ');
            filter.key.extend_from_slice(queue);
        }
        if let Some(&denied) = filter.decisions.get(filter.key.as_slice()) {
            return denied;
        }
        let denied = self.rules.subscribe_denied(subject, queue);
        filter
            .decisions
            .insert(filter.key.as_slice().into(), denied);
        if filter.decisions.len() > limits::DELIVERY_DENY_CACHE_ENTRIES_MAX {
            let mut dropped = 0;
            filter.decisions.retain(|_, _| {
                dropped += 1;
                dropped > limits::DELIVERY_DENY_CACHE_PRUNE_ENTRIES
            });
        }
        denied
    }

    /// Publish decisions cached (for tests and monitoring).
    pub fn cached_publish_decisions(&self) -> usize {
        self.publish_decisions.len()
    }

    /// Reply subjects tracked for `allow_responses`.
    pub fn tracked_replies(&self) -> usize {
        self.responses
            .as_ref()
            .map_or(0, |responses| responses.replies.len())
    }
}

// ---------------------------------------------------------------------------------------------
// The checks the shard calls, and their error texts

/// Why a PUB/HPUB is refused. The message is dropped (no delivery, no `+OK`), the client gets
/// `-ERR` and stays connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishViolation {
    /// `Permissions Violation for Publish to "<subject>"`.
    Subject,
    /// `Permissions Violation for Publish with Reply of "<reply>"`.
    Reply,
}

impl PublishViolation {
    /// The `-ERR` text (without `-ERR '` and `'`).
    pub fn error_text(self, subject: &[u8], reply: &[u8]) -> String {
        match self {
            PublishViolation::Subject => {
                format!("Permissions Violation for Publish to {}", quote(subject))
            }
            PublishViolation::Reply => format!(
                "Permissions Violation for Publish with Reply of {}",
                quote(reply)
            ),
        }
    }

    /// What nats-server logs (at error level, after the connection's prefix).
    pub fn log_text(self, subject: &[u8], reply: &[u8]) -> String {
        match self {
            PublishViolation::Subject => format!("Publish Violation - Subject {}", quote(subject)),
            PublishViolation::Reply => format!("Publish Violation - Reply {}", quote(reply)),
        }
    }
}

/// How a publish was allowed: by the rules (so is every publish to the same subject, until
/// the permissions change), or as one of the responses `allow_responses` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    ByRule,
    AsResponse,
}

/// Everything nats-server checks about a client's PUB/HPUB before routing it, in its order
/// (`processInboundClientMsg`): a gateway-reserved subject; the publish permissions (which
/// may count a response); a Raft subject outside the system account; a reserved reply
/// (service import, JetStream ack, gateway). `permissions` is `None` for a user without any.
/// On `Ok`, a verbose client gets `+OK`; it says how the permissions allowed the subject.
pub fn publish_check(
    permissions: Option<&mut ConnectionPermissions>,
    subject: &[u8],
    reply: &[u8],
    in_system_account: bool,
    now_ms: u64,
) -> Result<Allowed, PublishViolation> {
    if has_prefix_and_more(subject, GATEWAY_REPLY_PREFIX) {
        return Err(PublishViolation::Subject);
    }
    let allowed = match permissions {
        Some(permissions) => permissions
            .publish_decision(subject, now_ms)
            .ok_or(PublishViolation::Subject)?,
        None => Allowed::ByRule,
    };
    if !in_system_account && subject.starts_with(RAFT_PREFIX) {
        return Err(PublishViolation::Subject);
    }
    if reply_reserved(reply) {
        return Err(PublishViolation::Reply);
    }
    Ok(allowed)
}

/// nats-server's `isReservedReply`: `_R_.` (the prefix alone included), or longer than
/// `$JS.ACK.` or `_GR_.` and starting with it.
pub fn reply_reserved(reply: &[u8]) -> bool {
    reply.starts_with(SERVICE_REPLY_PREFIX)
        || has_prefix_and_more(reply, JETSTREAM_ACK_PREFIX)
        || has_prefix_and_more(reply, GATEWAY_REPLY_PREFIX)
}

/// `bytes` starts with `prefix` and is longer than it.
#[inline]
fn has_prefix_and_more(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() > prefix.len() && bytes.starts_with(prefix)
}

/// nats-server's SUB check for a client (`processSubEx`): its permissions, then the reserved
/// queue group, which no client may use. Comes before the token limit, the subscription
/// limit and the subject's validity. On `false` the client gets `-ERR`
/// ([`subscription_violation_text`]) and stays connected.
pub fn subscribe_check(
    permissions: Option<&mut ConnectionPermissions>,
    subject: &[u8],
    queue: Option<&[u8]>,
) -> bool {
    if let Some(permissions) = permissions {
        if !permissions.subscribe_allowed(subject, queue) {
            return false;
        }
    }
    queue != Some(SYSTEM_QUEUE_GROUP)
}

/// The `-ERR` text for a refused SUB: `Permissions Violation for Subscription to "<subject>"`,
/// followed by ` using queue "<queue>"` for a queue subscription.
pub fn subscription_violation_text(subject: &[u8], queue: Option<&[u8]>) -> String {
    match queue {
        Some(queue) => format!(
            "Permissions Violation for Subscription to {} using queue {}",
            quote(subject),
            quote(queue)
        ),
        None => format!(
            "Permissions Violation for Subscription to {}",
            quote(subject)
        ),
    }
}

/// What nats-server logs for a refused SUB.
pub fn subscription_violation_log_text(subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> String {
    let sid = String::from_utf8_lossy(sid);
    match queue {
        Some(queue) => format!(
            "Subscription Violation - Subject {}, Queue: {}, SID {sid}",
            quote(subject),
            quote(queue)
        ),
        None => format!(
            "Subscription Violation - Subject {}, SID {sid}",
            quote(subject)
        ),
    }
}

/// Go's `%q` of a byte string: valid UTF-8 as `strconv.Quote` shows it, each byte of an
/// invalid sequence as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut quoted = String::with_capacity(bytes.len() + 2);
    quoted.push('"');
    for chunk in bytes.utf8_chunks() {
        let valid = crate::config::go::quote(chunk.valid());
        quoted.push_str(&valid[1..valid.len() - 1]);
        for byte in chunk.invalid() {
            quoted.push_str(&format!("\\x{byte:02x}"));
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn strings(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|entry| entry.to_string()).collect())
    }

    fn subject_permission(allow: &[&str], deny: &[&str]) -> Option<SubjectPermission> {
        Some(SubjectPermission {
            allow: (!allow.is_empty()).then(|| strings(allow)).flatten(),
            deny: (!deny.is_empty()).then(|| strings(deny)).flatten(),
        })
    }

    fn connection(permissions: Permissions) -> ConnectionPermissions {
        ConnectionPermissions::new(Arc::new(CompiledPermissions::new(&permissions)))
    }

    fn publisher(allow: &[&str], deny: &[&str]) -> ConnectionPermissions {
        connection(Permissions {
            publish: subject_permission(allow, deny),
            ..Permissions::default()
        })
    }

    fn subscriber(allow: &[&str], deny: &[&str]) -> ConnectionPermissions {
        connection(Permissions {
            subscribe: subject_permission(allow, deny),
            ..Permissions::default()
        })
    }

    fn responder(max_msgs: i64, expires: Duration) -> ConnectionPermissions {
        connection(Permissions {
            subscribe: subject_permission(&["req"], &[]),
            response: Some(ResponsePermission { max_msgs, expires }),
            ..Permissions::default()
        })
    }

    /// The answer nats-server gives a verbose client's SUB (scripts/permissions_probe.py and
    /// client_test.go `TestQueueSubscribePermissions`), without the trailing `\r\n`.
    fn sub_answer(permissions: &mut ConnectionPermissions, line: &str) -> String {
        let mut fields = line.split(' ');
        let subject = fields.next().unwrap().as_bytes();
        let queue = fields.next().map(str::as_bytes);
        if subscribe_check(Some(permissions), subject, queue) {
            "+OK".to_string()
        } else {
            format!("-ERR '{}'", subscription_violation_text(subject, queue))
        }
    }

    fn pub_answer(
        permissions: Option<&mut ConnectionPermissions>,
        subject: &[u8],
        reply: &[u8],
        now_ms: u64,
    ) -> String {
        match publish_check(permissions, subject, reply, false, now_ms) {
            Ok(_) => "+OK".to_string(),
            Err(violation) => format!("-ERR '{}'", violation.error_text(subject, reply)),
        }
    }

    #[test]
    fn publish_allow_and_deny_as_recorded_from_nats_server() {
        let mut permissions = publisher(&["foo.*", "bar.>"], &["foo.secret"]);
        let denied =
            |subject: &str| format!("-ERR 'Permissions Violation for Publish to \"{subject}\"'");
        for (subject, expected) in [
            ("foo.bar", "+OK".to_string()),
            ("foo.secret", denied("foo.secret")),
            ("foo.bar.baz", denied("foo.bar.baz")),
            ("bar.x.y", "+OK".to_string()),
            ("bar", denied("bar")),
            ("baz", denied("baz")),
            // A published subject's wildcards are literal tokens.
            ("foo.*", "+OK".to_string()),
            ("foo.>", "+OK".to_string()),
            ("bar.>", "+OK".to_string()),
            // An empty token matches no allow entry.
            ("foo..bar", denied("foo..bar")),
            ("_GR_.x", denied("_GR_.x")),
            ("_GR_.", denied("_GR_.")),
            ("$NRG.x", denied("$NRG.x")),
        ] {
            for round in 0..2 {
                let answer = pub_answer(Some(&mut permissions), subject.as_bytes(), b"", 0);
                assert_eq!(answer, expected, "{subject} (round {round}: cached)");
            }
        }
    }

    #[test]
    fn reserved_replies_as_recorded_from_nats_server() {
        let mut permissions = publisher(&["foo.*", "bar.>"], &["foo.secret"]);
        let reply_denied = |reply: &str| {
            format!("-ERR 'Permissions Violation for Publish with Reply of \"{reply}\"'")
        };
        for (reply, expected) in [
            ("_R_.", reply_denied("_R_.")),
            ("_R_.x", reply_denied("_R_.x")),
            ("$JS.ACK.", "+OK".to_string()),
            ("$JS.ACK.x", reply_denied("$JS.ACK.x")),
            ("_GR_.", "+OK".to_string()),
            ("_GR_.x", reply_denied("_GR_.x")),
            ("_INBOX.x", "+OK".to_string()),
        ] {
            assert_eq!(
                pub_answer(Some(&mut permissions), b"foo.bar", reply.as_bytes(), 0),
                expected
            );
            assert_eq!(
                pub_answer(None, b"x", reply.as_bytes(), 0),
                expected,
                "without permissions"
            );
        }
        // The subject is checked first.
        assert_eq!(
            pub_answer(Some(&mut permissions), b"foo.secret", b"_R_.x", 0),
            "-ERR 'Permissions Violation for Publish to \"foo.secret\"'"
        );
    }

    #[test]
    fn reserved_subjects_apply_to_every_client() {
        for subject in ["_GR_.x", "$NRG.x", "$NRG."] {
            assert_eq!(
                publish_check(None, subject.as_bytes(), b"", false, 0),
                Err(PublishViolation::Subject),
                "{subject}"
            );
        }
        assert_eq!(
            publish_check(None, b"_GR_", b"", false, 0),
            Ok(Allowed::ByRule)
        );
        assert_eq!(
            publish_check(None, b"$NRG.x", b"", true, 0),
            Ok(Allowed::ByRule),
            "system account"
        );
        assert_eq!(
            publish_check(None, b"_GR_.x", b"", true, 0),
            Err(PublishViolation::Subject)
        );
        assert_eq!(
            publish_check(None, b"$SYS.x", b"_INBOX.1", false, 0),
            Ok(Allowed::ByRule)
        );
    }

    #[test]
    fn empty_allow_lists_allow_everything() {
        // Recorded: `publish: { allow: [] }, subscribe: { allow: [] }` publishes and
        // subscribes freely.
        let mut permissions = connection(Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec![]),
                deny: Some(vec![]),
            }),
            subscribe: Some(SubjectPermission {
                allow: Some(vec![]),
                deny: Some(vec![]),
            }),
            response: None,
        });
        assert!(!permissions.rules().restricts_publish());
        assert!(permissions.publish_allowed(b"x", 0));
        assert_eq!(
            permissions.cached_publish_decisions(),
            0,
            "nothing to cache"
        );
        assert_eq!(sub_answer(&mut permissions, "x"), "+OK");
    }

    #[test]
    fn subscribe_permissions_as_recorded_from_nats_server() {
        let mut permissions = subscriber(
            &["foo.*", "*.*", "lit.bar", "q.> v1.*", "both", "both v2"],
            &["foo.secret", "foo.q grp"],
        );
        let denied = |subject: &str| {
            format!("-ERR 'Permissions Violation for Subscription to \"{subject}\"'")
        };
        let denied_queue = |subject: &str, queue: &str| {
            format!("-ERR 'Permissions Violation for Subscription to \"{subject}\" using queue \"{queue}\"'")
        };
        for (line, expected) in [
            ("foo.bar", "+OK".to_string()),
            ("foo.*", "+OK".to_string()),
            // `*` entries match the subscription's `>` token.
            ("foo.>", "+OK".to_string()),
            ("*.bar", "+OK".to_string()),
            ("lit.*", "+OK".to_string()),
            ("lit.bar", "+OK".to_string()),
            ("x.>", "+OK".to_string()),
            (">", denied(">")),
            ("foo.secret", denied("foo.secret")),
            ("foo.bar.baz", denied("foo.bar.baz")),
            ("foo..bar", denied("foo..bar")),
            ("q.a v1.x", "+OK".to_string()),
            ("q.a v2", denied_queue("q.a", "v2")),
            ("q.a", "+OK".to_string()),
            ("both", "+OK".to_string()),
            ("both v2", "+OK".to_string()),
            ("both v3", denied_queue("both", "v3")),
            ("foo.q grp", denied_queue("foo.q", "grp")),
            ("foo.q other", "+OK".to_string()),
            ("foo.* grp", "+OK".to_string()),
            ("foo.bar _sys_", denied_queue("foo.bar", "_sys_")),
        ] {
            assert_eq!(sub_answer(&mut permissions, line), expected, "SUB {line}");
        }
    }

    #[test]
    fn queue_subscribe_permissions_from_client_test() {
        // client_test.go TestQueueSubscribePermissions
        /// (allow, deny, subject, queue, allowed)
        type Case = (
            &'static [&'static str],
            &'static [&'static str],
            &'static str,
            Option<&'static str>,
            bool,
        );
        let cases: &[Case] = &[
            (&["foo"], &[], "foo", None, true),
            (&["foo bar"], &[], "foo", Some("bar"), true),
            (&["foo bar.*"], &[], "foo", Some("bar.fizz"), true),
            (&["> bar.>"], &[], "whizz", Some("bar.bang"), true),
            (&["> bar.>"], &[], "whizz", None, false),
            (&[">"], &["foo"], "foo", Some("bar"), false),
            (&[">"], &["foo"], "bar", None, true),
            (&[">"], &[">"], "foo", Some("bar"), false),
            (&["> v1.>"], &[], "foo", Some("v1.prod"), true),
            (&[">"], &["> >"], "foo", None, true),
            (&[], &["> >"], "foo", Some("bar"), false),
            (&[], &["> *.dev", "> *.stg"], "foo", Some("bar"), true),
            (&["> *.dev", "> *.stg"], &[], "foo", Some("bar"), false),
            (&[], &["foo >"], "foo", Some("bar"), false),
            (&["foo bar"], &[], "foo", Some("fizz"), false),
            (&["foo"], &[], "foo", Some("bar"), true),
            (
                &[">"],
                &["admin.>", "> restricted"],
                "admin.secret",
                Some("workers"),
                false,
            ),
            // opts_test.go TestQueuePermissions
            (&["foo.> *.dev"], &[], "foo.bar", Some("queue.dev"), true),
            (&["foo.> *.dev"], &[], "foo.bar", None, false),
            (&["foo.> *.dev"], &[], "foo.bar", Some("bad"), false),
            (&[], &["foo.> *.dev"], "foo.bar", None, true),
            (&[], &["foo.> *.dev"], "foo.bar", Some("queue.dev"), false),
        ];
        for &(allow, deny, subject, queue, allowed) in cases {
            let mut permissions = subscriber(allow, deny);
            assert_eq!(
                subscribe_check(
                    Some(&mut permissions),
                    subject.as_bytes(),
                    queue.map(str::as_bytes)
                ),
                allowed,
                "allow {allow:?} deny {deny:?}: SUB {subject} {queue:?}"
            );
        }
    }

    #[test]
    fn the_system_queue_group_is_refused_to_everyone() {
        assert!(!subscribe_check(None, b"foo", Some(b"_sys_")));
        assert!(subscribe_check(None, b"foo", Some(b"_sys")));
        assert!(subscribe_check(None, b"foo", None));
        assert_eq!(
            subscription_violation_text(b"foo", Some(b"_sys_")),
            "Permissions Violation for Subscription to \"foo\" using queue \"_sys_\""
        );
    }

    #[test]
    fn delivery_filter_blocks_denied_subjects_on_wildcard_subscriptions() {
        // client_test.go TestClientSubscribeDenyWildcardOverlapBlocksDelivery, as queue subs.
        for (deny, sub, blocked, allowed) in [
            ("*.secret", "foo.*", "foo.secret", "foo.public"),
            ("foo.*.bar", "foo.baz.*", "foo.baz.bar", "foo.baz.qux"),
            ("*.*.bar", "foo.*.*", "foo.baz.bar", "foo.baz.qux"),
            ("a.>", "*.b", "a.b", "z.b"),
        ] {
            assert!(subjects_collide(deny.as_bytes(), sub.as_bytes()));
            let mut permissions = subscriber(&[">"], &[deny]);
            assert!(!permissions.filters_deliveries());
            assert!(permissions.subscribe_allowed(sub.as_bytes(), Some(b"workers")));
            assert!(permissions.filters_deliveries(), "{sub} overlaps {deny}");
            for _ in 0..2 {
                assert!(permissions.delivery_denied(blocked.as_bytes(), Some(b"workers")));
                assert!(!permissions.delivery_denied(allowed.as_bytes(), Some(b"workers")));
                assert!(permissions.delivery_denied(blocked.as_bytes(), None));
            }
        }
    }

    #[test]
    fn delivery_filter_as_recorded_from_nats_server() {
        // Recorded: subs foo.* (1), foo.* grp (2), foo.* other (3), foo.> (5) with deny
        // ["foo.secret", "foo.q grp"]: foo.secret reaches none, foo.q all but grp.
        let mut permissions = subscriber(&["foo.*", "*.*"], &["foo.secret", "foo.q grp"]);
        for line in ["foo.*", "foo.* grp", "foo.* other", "foo.>"] {
            assert_eq!(sub_answer(&mut permissions, line), "+OK");
        }
        for queue in [None, Some(&b"grp"[..]), Some(b"other")] {
            assert!(permissions.delivery_denied(b"foo.secret", queue));
            assert!(!permissions.delivery_denied(b"foo.ok", queue));
            assert!(!permissions.delivery_denied(b"foo.a.b", queue));
        }
        assert!(permissions.delivery_denied(b"foo.q", Some(b"grp")));
        assert!(!permissions.delivery_denied(b"foo.q", Some(b"other")));
        assert!(!permissions.delivery_denied(b"foo.q", None));
    }

    #[test]
    fn queue_scoped_deny_blocks_only_the_matching_queue() {
        // client_test.go TestClientQueueScopedSubscribeDenyBlocksOnlyMatchingQueue
        for (deny, denied_queue, allowed_queue) in [
            ("admin.secret workers", "workers", "auditors"),
            ("admin.secret work.*", "work.prod", "audit.prod"),
        ] {
            let mut permissions = subscriber(&[">"], &[deny]);
            assert!(permissions.subscribe_allowed(b"admin.*", Some(denied_queue.as_bytes())));
            assert!(permissions.subscribe_allowed(b"admin.*", Some(allowed_queue.as_bytes())));
            assert!(permissions.subscribe_allowed(b"admin.*", None));
            assert!(permissions.delivery_denied(b"admin.secret", Some(denied_queue.as_bytes())));
            assert!(!permissions.delivery_denied(b"admin.secret", Some(allowed_queue.as_bytes())));
            assert!(!permissions.delivery_denied(b"admin.secret", None));
        }
    }

    #[test]
    fn delivery_filter_stays_off_without_an_overlapping_subscription() {
        let mut permissions = subscriber(&[], &["foo.secret"]);
        assert!(
            !permissions.delivery_denied(b"foo.secret", None),
            "filter off: one branch"
        );
        assert!(permissions.subscribe_allowed(b"bar.*", None));
        assert!(permissions.subscribe_allowed(b"foo.public", None));
        assert!(!permissions.filters_deliveries());
        assert!(!permissions.subscribe_allowed(b"foo.secret", None));
        assert!(!permissions.filters_deliveries());
        assert!(permissions.subscribe_allowed(b"*.secret", None));
        assert!(permissions.filters_deliveries());
        // A user without subscribe denies never needs it.
        let mut open = subscriber(&[">"], &[]);
        assert!(open.subscribe_allowed(b"foo.*", Some(b"q")));
        assert!(!open.filters_deliveries());
    }

    #[test]
    fn delivery_deny_cache_is_bounded() {
        let mut permissions = subscriber(&[], &["foo.secret"]);
        assert!(permissions.subscribe_allowed(b"foo.*", None));
        for index in 0..10_000 {
            let subject = format!("foo.s{index}");
            assert!(!permissions.delivery_denied(subject.as_bytes(), None));
            let filter = permissions.delivery_filter.as_ref().unwrap();
            assert!(filter.decisions.len() <= limits::DELIVERY_DENY_CACHE_ENTRIES_MAX);
        }
        assert!(permissions.delivery_denied(b"foo.secret", None));
    }

    #[test]
    fn publish_cache_is_bounded_whatever_is_published() {
        let mut permissions = publisher(&["allowed.>"], &["allowed.secret"]);
        for index in 0..10_000 {
            let subject = format!("allowed.{index}");
            assert!(permissions.publish_allowed(subject.as_bytes(), 0));
            let denied = format!("other.{index}");
            assert!(!permissions.publish_allowed(denied.as_bytes(), 0));
            assert!(
                permissions.cached_publish_decisions()
                    <= limits::PUBLISH_PERMISSION_CACHE_ENTRIES_MAX
            );
        }
        assert!(!permissions.publish_allowed(b"allowed.secret", 0));
    }

    #[test]
    fn response_permissions_as_recorded_from_nats_server() {
        // max 2, expires 5s.
        let mut permissions = responder(2, Duration::from_secs(5));
        let denied =
            |subject: &str| format!("-ERR 'Permissions Violation for Publish to \"{subject}\"'");
        assert_eq!(
            pub_answer(Some(&mut permissions), b"r1", b"", 0),
            denied("r1")
        );
        permissions.note_request_delivered(b"r1", 10);
        assert_eq!(pub_answer(Some(&mut permissions), b"r1", b"", 20), "+OK");
        assert_eq!(pub_answer(Some(&mut permissions), b"r1", b"", 30), "+OK");
        assert_eq!(
            pub_answer(Some(&mut permissions), b"r1", b"", 40),
            denied("r1")
        );
        // Two requests with the same reply: the second delivery counts as a response.
        permissions.note_request_delivered(b"r3", 50);
        permissions.note_request_delivered(b"r3", 51);
        assert_eq!(pub_answer(Some(&mut permissions), b"r3", b"", 60), "+OK");
        assert_eq!(
            pub_answer(Some(&mut permissions), b"r3", b"", 61),
            denied("r3")
        );
        assert_eq!(
            pub_answer(Some(&mut permissions), b"r3", b"", 62),
            denied("r3")
        );
        // Used up, then requested again: tracked afresh.
        permissions.note_request_delivered(b"r1", 70);
        assert_eq!(pub_answer(Some(&mut permissions), b"r1", b"", 80), "+OK");
        // Only subscribe "req" is allowed.
        assert_eq!(
            sub_answer(&mut permissions, "other"),
            "-ERR 'Permissions Violation for Subscription to \"other\"'"
        );
    }

    #[test]
    fn response_permissions_from_client_test() {
        // client_test.go TestResponsePermissions
        // max_msgs 2, expires 1h: two of ten replies pass.
        let mut permissions = responder(2, Duration::from_secs(3600));
        permissions.note_request_delivered(b"reply", 0);
        let passed = (0..10)
            .filter(|_| permissions.publish_allowed(b"reply", 1))
            .count();
        assert_eq!(passed, 2);
        // max_msgs 3, negative expires (Duration::MAX here): no expiry.
        let mut permissions = responder(3, Duration::MAX);
        permissions.note_request_delivered(b"reply", 0);
        assert!(permissions.publish_allowed(b"reply", 1));
        assert!(permissions.publish_allowed(b"reply", u64::MAX / 2));
        // max_msgs 1000, expires 100ms; and max_msgs -1 (unlimited), expires 100ms.
        for max_msgs in [1000, -1] {
            let mut permissions = responder(max_msgs, Duration::from_millis(100));
            permissions.note_request_delivered(b"reply", 1_000);
            assert!(permissions.publish_allowed(b"reply", 1_050));
            assert!(
                permissions.publish_allowed(b"reply", 1_100),
                "not yet over 100ms"
            );
            assert!(!permissions.publish_allowed(b"reply", 1_201));
            assert!(!permissions.publish_allowed(b"reply", 1_202), "forgotten");
        }
    }

    #[test]
    fn response_permission_defaults() {
        // `allow_responses: true`: one response within two minutes; and no publish allow list
        // means nothing else may be published.
        let mut permissions = responder(0, Duration::ZERO);
        assert!(!permissions.publish_allowed(b"anything", 0));
        permissions.note_request_delivered(b"s1", 0);
        assert!(permissions.publish_allowed(b"s1", 1));
        assert!(!permissions.publish_allowed(b"s1", 2));
        permissions.note_request_delivered(b"s2", 0);
        assert!(!permissions.publish_allowed(b"s2", 120_001));
        // Subjects the rules allow are not tracked.
        let mut permissions = connection(Permissions {
            publish: subject_permission(&["_INBOX.>"], &[]),
            response: Some(ResponsePermission {
                max_msgs: 1,
                expires: Duration::from_secs(1),
            }),
            ..Permissions::default()
        });
        permissions.note_request_delivered(b"_INBOX.a", 0);
        assert_eq!(permissions.tracked_replies(), 0);
        permissions.note_request_delivered(b"other", 0);
        assert_eq!(permissions.tracked_replies(), 1);
        // Denied subjects are not cached while responses are possible; allowed ones are
        // (`_INBOX.a` by the delivery check, `_INBOX.b` by the publish).
        assert!(!permissions.publish_allowed(b"denied", 0));
        assert!(permissions.publish_allowed(b"_INBOX.b", 0));
        assert_eq!(permissions.cached_publish_decisions(), 2);
    }

    #[test]
    fn tracked_replies_are_pruned_and_bounded() {
        let mut permissions = responder(1, Duration::from_secs(3600));
        // Answered replies are pruned once a second (or every 4096 insertions).
        for index in 0..100 {
            let reply = format!("r{index}");
            permissions.note_request_delivered(reply.as_bytes(), 0);
            assert!(permissions.publish_allowed(reply.as_bytes(), 0));
        }
        permissions.note_request_delivered(b"new", 2_000);
        assert_eq!(permissions.tracked_replies(), 1);
        // Unanswered replies stop at the bound, keeping the newest.
        let mut permissions = responder(-1, Duration::MAX);
        let total = limits::RESPONSE_PERMITS_TRACKED_MAX as u64 * 2;
        for index in 0..total {
            permissions.note_request_delivered(format!("r{index}").as_bytes(), index);
            assert!(permissions.tracked_replies() <= limits::RESPONSE_PERMITS_TRACKED_MAX);
        }
        assert!(permissions.publish_allowed(format!("r{}", total - 1).as_bytes(), total));
        assert!(!permissions.publish_allowed(b"r0", total));
    }

    #[test]
    fn compile_skips_what_nats_server_skips() {
        let compiled = CompiledPermissions::new(&Permissions {
            publish: subject_permission(
                &["ok", "bad subject", "foo..bar"],
                &["admin.secret workers", "a b c"],
            ),
            subscribe: subject_permission(&["x q", "x q r", "foo.>.bar"], &[]),
            response: None,
        });
        assert_eq!(
            compiled.warnings(),
            [
                "invalid publish subject \"bad subject\"",
                "invalid publish subject \"foo..bar\"",
                "queue qualifier is not valid for publish deny subject \"admin.secret workers\"",
                "invalid publish deny subject \"a b c\"",
                "invalid subject-queue \"x q r\"",
                "invalid subject-queue \"foo.>.bar\"",
            ]
        );
        // client_test.go TestClientSetPermissionsPublishDenyQueueQualifierFailsClosed
        assert!(compiled.publish_permitted(b"ok"));
        assert!(!compiled.publish_permitted(b"bad"));
        let mut only_deny = publisher(&[], &["admin.secret workers"]);
        assert!(!only_deny.publish_allowed(b"admin.secret", 0));
        assert!(only_deny.publish_allowed(b"admin.other", 0));
        // An allow list whose entries are all invalid allows nothing.
        let mut none_valid = publisher(&["bad subject"], &[]);
        assert!(!none_valid.publish_allowed(b"bad", 0));
    }

    #[test]
    fn subset_match_from_sublist_test() {
        for (subject, test, expected) in [
            ("foo.bar", "foo.bar", true),
            ("foo.*", ">", true),
            ("foo.*", "*.*", true),
            ("foo.*", "foo.*", true),
            ("foo.*", "foo.bar", false),
            ("foo.>", ">", true),
            ("foo.>", "*.>", true),
            ("foo.>", "foo.>", true),
            ("foo.>", "foo.bar", false),
            ("foo..bar", "foo.*", false),
            ("foo.*", "foo..bar", false),
            ("v1.prod", "v1.*", true),
            ("v1.prod.x", "v1.*", false),
            ("v1", "v1.>", false),
        ] {
            assert_eq!(
                is_subset_match(subject.as_bytes(), test.as_bytes()),
                expected,
                "{subject} in {test}"
            );
        }
    }

    #[test]
    fn subjects_collide_from_sublist_test() {
        assert!(!subjects_collide(b"foo.*", b"foo.*.bar.>"));
        assert!(!subjects_collide(b"foo.*.bar.>", b"foo.*"));
        assert!(subjects_collide(b"foo.*", b"foo.foo"));
        assert!(subjects_collide(b"foo.*", b"*.foo"));
        assert!(subjects_collide(b"foo.bar.>", b"*.bar.foo"));
        assert!(subjects_collide(b"a.b", b"a.b"));
        assert!(!subjects_collide(b"a.b", b"a.c"));
        assert!(!subjects_collide(b"a.*", b"b.>"));
    }

    /// A naive matcher: does pattern `entry` (with `*`/`>`) match `subject`, its tokens taken
    /// literally?
    fn naive_matches(entry: &str, subject: &str) -> bool {
        if subject.split('.').any(str::is_empty) {
            return false;
        }
        let entry: Vec<&str> = entry.split('.').collect();
        let subject: Vec<&str> = subject.split('.').collect();
        for (index, token) in entry.iter().enumerate() {
            match *token {
                ">" => return subject.len() > index,
                _ if index >= subject.len() => return false,
                "*" => {}
                literal if literal != subject[index] => return false,
                _ => {}
            }
        }
        entry.len() == subject.len()
    }

    #[test]
    fn subject_set_agrees_with_a_naive_matcher() {
        let alphabet = ["a", "b", "*", ">"];
        let mut entries = Vec::new();
        let mut subjects = Vec::new();
        for length in 1..=3 {
            let mut indexes = vec![0; length];
            loop {
                let candidate: Vec<&str> = indexes.iter().map(|&index| alphabet[index]).collect();
                let candidate = candidate.join(".");
                if valid_subject(candidate.as_bytes()) {
                    entries.push(candidate.clone());
                }
                subjects.push(candidate);
                let mut position = 0;
                while position < length {
                    indexes[position] += 1;
                    if indexes[position] < alphabet.len() {
                        break;
                    }
                    indexes[position] = 0;
                    position += 1;
                }
                if position == length {
                    break;
                }
            }
        }
        subjects.push("a..b".to_string());
        // Every pair of entries as a set, against every subject.
        for first in &entries {
            for second in &entries {
                let mut set = SubjectSet::default();
                set.insert(first.as_bytes(), None);
                set.insert(second.as_bytes(), None);
                for subject in &subjects {
                    let expected = naive_matches(first, subject) || naive_matches(second, subject);
                    assert_eq!(
                        set.matches_plain(subject.as_bytes()),
                        expected,
                        "{{{first}, {second}}} vs {subject}"
                    );
                }
            }
        }
    }

    #[test]
    fn error_texts_quote_like_go() {
        assert_eq!(
            PublishViolation::Subject.error_text(b"a\"b\\c\xff\xc3\xa9", b""),
            "Permissions Violation for Publish to \"a\\\"b\\\\c\\xffé\""
        );
        assert_eq!(
            PublishViolation::Reply.error_text(b"x", b"_R_.x"),
            "Permissions Violation for Publish with Reply of \"_R_.x\""
        );
        assert_eq!(
            PublishViolation::Subject.log_text(b"foo.secret", b""),
            "Publish Violation - Subject \"foo.secret\""
        );
        assert_eq!(
            PublishViolation::Reply.log_text(b"x", b"_R_."),
            "Publish Violation - Reply \"_R_.\""
        );
        assert_eq!(
            subscription_violation_text(b"foo", None),
            "Permissions Violation for Subscription to \"foo\""
        );
        assert_eq!(
            subscription_violation_log_text(b"foo", Some(b"_sys_"), b"9"),
            "Subscription Violation - Subject \"foo\", Queue: \"_sys_\", SID 9"
        );
        assert_eq!(
            subscription_violation_log_text(b">", None, b"8"),
            "Subscription Violation - Subject \">\", SID 8"
        );
        const { assert!(!VIOLATION_CLOSES_CONNECTION) };
    }
}
