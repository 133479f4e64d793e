//! The links between accounts that exports and imports make, as a shard follows them when a
//! client publishes: a stream another account imports carries the message into that account
//! (under its local subject); a service this account imports carries a request into the
//! exporting account, with a reply subject of that account's own (`_R_.…`) that routes the
//! responses back to the requestor's reply subject.
//!
//! Built once per configuration (`build`), read by every shard. The response routes are the
//! one piece of state shared between shards (a responder may be on any shard): a map per
//! exporting account behind a mutex, touched only by requests crossing accounts and by
//! publishes on that account's response prefix, never by other traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{find, Account, AccountConfig, AccountId, ExportKind, ResponseType};
use crate::auth::permissions::is_subset_match;
use crate::sublist::subject::{pattern_matches, tokens, valid_subject};

/// nats-server's default `response_threshold`: how long a service's responses may come.
pub const RESPONSE_THRESHOLD_DEFAULT: Duration = Duration::from_secs(2 * 60);

/// Routes of responses to requests that crossed into this account, by the reply subject the
/// request carried here. Bounded: past `limits::RESPONSE_ROUTES_MAX` the expired ones are
/// dropped, then the oldest half.
#[derive(Debug, Default)]
pub struct ResponseRoutes {
    routes: Mutex<HashMap<Box<[u8]>, ResponseRoute>>,
}

/// Where the responses to one request go.
#[derive(Debug, Clone)]
pub struct ResponseRoute {
    /// The requestor's account and reply subject there.
    pub account: AccountId,
    pub reply: Box<[u8]>,
    /// A singleton service gets one response: the route goes with it.
    pub singleton: bool,
    /// How long after the request, or after the last response of a stream, responses may
    /// come (the export's `response_threshold`).
    pub threshold: Duration,
    pub expires: Instant,
}

impl ResponseRoutes {
    /// Remembers that responses to `reply` (in this account) go to `route`.
    pub fn insert(&self, reply: Box<[u8]>, route: ResponseRoute) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if routes.len() >= crate::limits::RESPONSE_ROUTES_MAX {
            let now = Instant::now();
            routes.retain(|_, route| route.expires > now);
            if routes.len() >= crate::limits::RESPONSE_ROUTES_MAX {
                let mut expiries: Vec<Instant> = routes.values().map(|r| r.expires).collect();
                expiries.sort_unstable();
                let cut = expiries[expiries.len() / 2];
                routes.retain(|_, route| route.expires > cut);
            }
        }
        routes.insert(reply, route);
    }

    /// Where a response published on `subject` goes, if it answers a request routed here and
    /// in time. A singleton's route is used up; a stream's lasts another threshold from this
    /// response, until an empty message (`last`) ends it, as nats-server's do.
    pub fn take(&self, subject: &[u8], last: bool) -> Option<ResponseRoute> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let route = routes.get_mut(subject)?;
        let now = Instant::now();
        if route.expires <= now {
            routes.remove(subject);
            return None;
        }
        if route.singleton || last {
            return routes.remove(subject);
        }
        route.expires = now + route.threshold;
        Some(route.clone())
    }

    /// Forgets the route of `reply` (its request reached nobody).
    pub fn remove(&self, reply: &[u8]) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(reply);
    }

    /// Drops the routes whose time is up (the timer tick's sweep).
    pub fn remove_expired(&self, now: Instant) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if !routes.is_empty() {
            routes.retain(|_, route| route.expires > now);
        }
    }

    /// How many routes wait (for `/accountz` and tests).
    pub fn len(&self) -> usize {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a subject is rewritten on its way into another account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Unchanged.
    Same,
    /// `prefix.` + subject (a stream import's `prefix`).
    Prefix(Box<[u8]>),
    /// From one pattern to another: the n-th wildcard of the destination takes the token(s)
    /// the n-th wildcard of the source matched (nats-server's transform of an import `to`).
    Wildcards { destination: Box<[u8]> },
    /// To a literal subject.
    Literal(Box<[u8]>),
}

impl Rewrite {
    /// The rewrite from subjects matching `source` to `destination`.
    fn between(source: &str, destination: &str) -> Rewrite {
        if source == destination {
            Rewrite::Same
        } else if tokens(destination.as_bytes()).any(|t| t == b"*" || t == b">") {
            Rewrite::Wildcards {
                destination: destination.as_bytes().into(),
            }
        } else {
            Rewrite::Literal(destination.as_bytes().into())
        }
    }

    /// Appends the rewritten `subject` (which matched `source`) to `out`.
    pub fn apply(&self, source: &[u8], subject: &[u8], out: &mut Vec<u8>) {
        match self {
            Rewrite::Same => out.extend_from_slice(subject),
            Rewrite::Prefix(prefix) => {
                out.extend_from_slice(prefix);
                out.push(b'.');
                out.extend_from_slice(subject);
            }
            Rewrite::Literal(literal) => out.extend_from_slice(literal),
            Rewrite::Wildcards { destination } => {
                // What each wildcard of the source matched, in order.
                let mut captures: Vec<&[u8]> = Vec::new();
                let mut rest = Some(subject);
                for wanted in tokens(source) {
                    let Some(remaining) = rest else { break };
                    if wanted == b">" {
                        captures.push(remaining);
                        break;
                    }
                    let (token, after) = crate::sublist::subject::split_first_token(remaining);
                    if wanted == b"*" {
                        captures.push(token);
                    }
                    rest = after;
                }
                let mut captured = captures.into_iter();
                for (index, token) in tokens(destination).enumerate() {
                    if index > 0 {
                        out.push(b'.');
                    }
                    if token == b"*" || token == b">" {
                        out.extend_from_slice(captured.next().unwrap_or(token));
                    } else {
                        out.extend_from_slice(token);
                    }
                }
            }
        }
    }
}

/// A stream another account imports from this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLink {
    /// The subjects of this account it carries.
    pub filter: Box<[u8]>,
    pub importer: AccountId,
    pub rewrite: Rewrite,
}

/// A service this account imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLink {
    /// The subjects in this account that are requests to the service.
    pub filter: Box<[u8]>,
    pub exporter: AccountId,
    pub rewrite: Rewrite,
    pub response_type: ResponseType,
    pub threshold: Duration,
}

/// One account's links, as a publish in it follows them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Links {
    pub streams_out: Vec<StreamLink>,
    pub services_in: Vec<ServiceLink>,
    /// It exports services: a publish on its response prefix may be a response to route.
    pub answers_requests: bool,
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.streams_out.is_empty() && self.services_in.is_empty() && !self.answers_requests
    }

    /// Whether only subjects that start with `$` or `_` can take a link: no stream goes out,
    /// every service import's subjects start so (`$JS.API.>`, the JetStream import a clustered
    /// server makes), and responses come on `_R_.…`. A publish on any other subject then needs
    /// nothing of the links, so the account's publishes stay on the plain path (`on_pub` sends
    /// the `$`/`_` ones the checked way).
    pub fn on_special_subjects_only(&self) -> bool {
        self.streams_out.is_empty()
            && self
                .services_in
                .iter()
                .all(|link| matches!(link.filter.first(), Some(b'$' | b'_')))
    }
}

/// nats-server's `checkStreamImportAuthorized` / `checkServiceImportAuthorized` for a
/// configured account: an export of exactly the subject, else one the subject is a subset of,
/// that is public, lists the importer, or has the importer's name at its account token.
pub fn import_authorized(
    exporter: &AccountConfig,
    kind: ExportKind,
    subject: &str,
    importer: &str,
) -> bool {
    if kind == ExportKind::Stream && !valid_subject(subject.as_bytes()) {
        return false;
    }
    let exports = || exporter.exports.iter().filter(|export| export.kind == kind);
    let allowed = |export: &super::Export, tokens: Option<&[&str]>| {
        if export.account_token_position > 0 {
            let position = export.account_token_position as usize;
            return tokens.is_some_and(|tokens| {
                position <= tokens.len() && tokens[position - 1] == importer
            });
        }
        match &export.accounts {
            None => true,
            Some(accounts) => accounts.iter().any(|name| name == importer),
        }
    };
    if let Some(export) = exports().find(|export| export.subject == subject) {
        return allowed(export, None);
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    exports()
        .find(|export| is_subset_match(subject.as_bytes(), export.subject.as_bytes()))
        .is_some_and(|export| allowed(export, Some(&tokens)))
}

/// Every account's links, indexed by `AccountId` (`None`: no links, the common case). Imports
/// the exporter does not allow, or of accounts that do not exist, are left out (the
/// configuration layer reports them, as nats-server does).
/// `activated(importer, index)` says whether an import the exports alone do not allow carries
/// a valid activation token (operator mode).
pub fn build(
    configs: &[AccountConfig],
    accounts: &[Arc<Account>],
    activated: &dyn Fn(&str, usize) -> bool,
) -> Vec<Option<Arc<Links>>> {
    let mut links: Vec<Links> = vec![Links::default(); accounts.len()];
    let config_of = |name: &str| configs.iter().find(|config| config.name == name);
    for config in configs {
        let Some(importer) = find(accounts, &config.name) else {
            continue;
        };
        for (index, import) in config.imports.iter().enumerate() {
            let (Some(exporter), Some(exporter_config)) =
                (find(accounts, &import.account), config_of(&import.account))
            else {
                continue;
            };
            let authorized =
                import_authorized(exporter_config, import.kind, &import.subject, &config.name)
                    || activated(&config.name, index);
            if exporter == importer || !authorized {
                continue;
            }
            if forms_cycle(configs, import, &config.name) {
                crate::log_error!(
                    "Error adding {} import {}: import forms a cycle",
                    if import.kind == ExportKind::Stream {
                        "stream"
                    } else {
                        "service"
                    },
                    crate::config::go::quote(&import.subject)
                );
                continue;
            }
            match import.kind {
                ExportKind::Stream => {
                    let rewrite = match &import.to {
                        Some(prefix) if import.prefix => {
                            Rewrite::Prefix(prefix.trim_end_matches('.').as_bytes().into())
                        }
                        Some(to) => Rewrite::between(&import.subject, to),
                        None => Rewrite::Same,
                    };
                    links[exporter.index()].streams_out.push(StreamLink {
                        filter: import.subject.as_bytes().into(),
                        importer,
                        rewrite,
                    });
                }
                ExportKind::Service => {
                    let local = import.to.as_deref().unwrap_or(&import.subject);
                    let export = exporter_config.exports.iter().find(|export| {
                        export.kind == ExportKind::Service
                            && is_subset_match(import.subject.as_bytes(), export.subject.as_bytes())
                    });
                    links[importer.index()].services_in.push(ServiceLink {
                        filter: local.as_bytes().into(),
                        exporter,
                        rewrite: Rewrite::between(local, &import.subject),
                        response_type: export.map(|e| e.response_type).unwrap_or_default(),
                        threshold: export
                            .and_then(|e| e.response_threshold)
                            .unwrap_or(RESPONSE_THRESHOLD_DEFAULT),
                    });
                    links[exporter.index()].answers_requests = true;
                }
            }
        }
    }
    links
        .into_iter()
        .map(|links| (!links.is_empty()).then(|| Arc::new(links)))
        .collect()
}

/// Whether `import` (of the account `importer`) closes a cycle of imports of its kind, as
/// nats-server's `streamImportFormsCycle`/`serviceImportFormsCycle` find them: following the
/// exporter's own imports of that kind whose local subjects collide with the one imported
/// leads back to the importer.
fn forms_cycle(configs: &[AccountConfig], import: &super::Import, importer: &str) -> bool {
    use crate::auth::permissions::subjects_collide;
    let local = |import: &super::Import| match (&import.to, import.prefix) {
        (Some(prefix), true) => format!("{}.{}", prefix.trim_end_matches('.'), import.subject),
        (Some(to), false) => to.clone(),
        (None, _) => import.subject.clone(),
    };
    // (account, subject there) pairs still to follow, and the accounts seen.
    let mut pending = vec![(import.account.as_str(), import.subject.clone())];
    let mut seen = vec![importer];
    while let Some((account, subject)) = pending.pop() {
        let Some(config) = configs.iter().find(|config| config.name == account) else {
            continue;
        };
        for next in config
            .imports
            .iter()
            .filter(|next| next.kind == import.kind)
        {
            if !subjects_collide(local(next).as_bytes(), subject.as_bytes()) {
                continue;
            }
            if seen.contains(&next.account.as_str()) {
                return true;
            }
            seen.push(&next.account);
            pending.push((&next.account, next.subject.clone()));
        }
    }
    false
}

impl StreamLink {
    pub fn carries(&self, subject: &[u8]) -> bool {
        pattern_matches(&self.filter, subject)
    }
}

impl ServiceLink {
    pub fn carries(&self, subject: &[u8]) -> bool {
        pattern_matches(&self.filter, subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Export, Import};

    fn export(kind: ExportKind, subject: &str, accounts: Option<&[&str]>) -> Export {
        Export {
            kind,
            subject: subject.into(),
            accounts: accounts.map(|names| names.iter().map(|n| n.to_string()).collect()),
            response_type: ResponseType::Singleton,
            response_threshold: None,
            account_token_position: 0,
        }
    }

    fn import(
        kind: ExportKind,
        account: &str,
        subject: &str,
        to: Option<&str>,
        prefix: bool,
    ) -> Import {
        Import {
            kind,
            account: account.into(),
            subject: subject.into(),
            to: to.map(str::to_string),
            prefix,
            share: false,
        }
    }

    fn accounts(names: &[&str]) -> Vec<Arc<Account>> {
        names
            .iter()
            .map(|name| Arc::new(Account::new(name)))
            .collect()
    }

    fn rewritten(rewrite: &Rewrite, source: &str, subject: &str) -> String {
        let mut out = Vec::new();
        rewrite.apply(source.as_bytes(), subject.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn subjects_are_rewritten_by_prefix_and_by_wildcards() {
        assert_eq!(
            rewritten(&Rewrite::Prefix(b"p".as_slice().into()), "foo.>", "foo.x"),
            "p.foo.x"
        );
        let wild = Rewrite::between("foo.*.>", "bar.*.baz.>");
        assert_eq!(rewritten(&wild, "foo.*.>", "foo.a.b.c"), "bar.a.baz.b.c");
        assert_eq!(
            rewritten(&Rewrite::between("svc", "req"), "svc", "svc"),
            "req"
        );
        assert_eq!(Rewrite::between("x.>", "x.>"), Rewrite::Same);
    }

    #[test]
    fn only_authorized_imports_link_accounts() {
        let all = accounts(&["$G", "A", "B", "C"]);
        let a = AccountConfig {
            name: "A".into(),
            exports: vec![
                export(ExportKind::Stream, "public.>", None),
                export(ExportKind::Stream, "private.>", Some(&["B"])),
                export(ExportKind::Service, "svc.*", None),
            ],
            ..AccountConfig::default()
        };
        let b = AccountConfig {
            name: "B".into(),
            imports: vec![
                import(ExportKind::Stream, "A", "public.x", Some("p"), true),
                import(ExportKind::Stream, "A", "private.>", None, false),
                import(ExportKind::Service, "A", "svc.q", Some("ask"), false),
                import(ExportKind::Stream, "A", "unexported", None, false),
            ],
            ..AccountConfig::default()
        };
        let c = AccountConfig {
            name: "C".into(),
            imports: vec![import(ExportKind::Stream, "A", "private.>", None, false)],
            ..AccountConfig::default()
        };
        let links = build(&[a, b, c], &all, &|_, _| false);
        let a_links = links[1].as_ref().unwrap();
        assert_eq!(
            a_links.streams_out.len(),
            2,
            "C may not import the private stream"
        );
        assert!(a_links
            .streams_out
            .iter()
            .all(|l| l.importer == AccountId(2)));
        assert!(a_links.answers_requests);
        let b_links = links[2].as_ref().unwrap();
        assert_eq!(b_links.services_in.len(), 1);
        assert_eq!(&*b_links.services_in[0].filter, b"ask");
        assert_eq!(b_links.services_in[0].exporter, AccountId(1));
        assert!(links[3].is_none());
        assert!(links[0].is_none());
    }

    #[test]
    fn an_export_at_an_account_token_admits_only_that_account() {
        let mut exporter = AccountConfig {
            name: "A".into(),
            exports: vec![export(ExportKind::Stream, "x.*.>", None)],
            ..AccountConfig::default()
        };
        exporter.exports[0].account_token_position = 2;
        assert!(import_authorized(
            &exporter,
            ExportKind::Stream,
            "x.B.>",
            "B"
        ));
        assert!(!import_authorized(
            &exporter,
            ExportKind::Stream,
            "x.B.>",
            "C"
        ));
        assert!(!import_authorized(
            &exporter,
            ExportKind::Service,
            "x.B.>",
            "B"
        ));
    }

    #[test]
    fn singleton_routes_are_used_once_stream_routes_until_the_end_or_the_threshold() {
        let routes = ResponseRoutes::default();
        let route = |singleton: bool, threshold: Duration| ResponseRoute {
            account: AccountId(1),
            reply: b"inbox".as_slice().into(),
            singleton,
            threshold,
            expires: Instant::now() + threshold,
        };
        let minute = Duration::from_secs(60);
        routes.insert(b"_R_.a".as_slice().into(), route(true, minute));
        routes.insert(b"_R_.b".as_slice().into(), route(false, minute));
        routes.insert(b"_R_.c".as_slice().into(), route(false, Duration::ZERO));
        routes.insert(b"_R_.d".as_slice().into(), route(false, minute));
        assert_eq!(&*routes.take(b"_R_.a", false).unwrap().reply, b"inbox");
        assert!(
            routes.take(b"_R_.a", false).is_none(),
            "a singleton answers once"
        );
        assert!(routes.take(b"_R_.b", false).is_some());
        assert!(
            routes.take(b"_R_.b", false).is_some(),
            "a stream answers again"
        );
        assert!(
            routes.take(b"_R_.b", true).is_some(),
            "the empty message goes too"
        );
        assert!(
            routes.take(b"_R_.b", false).is_none(),
            "and ends the stream"
        );
        assert!(routes.take(b"_R_.c", false).is_none(), "expired");
        routes.remove(b"_R_.d");
        assert!(routes.is_empty());
        routes.insert(b"_R_.e".as_slice().into(), route(false, Duration::ZERO));
        routes.remove_expired(Instant::now());
        assert!(routes.is_empty(), "swept");
    }
}
