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
use crate::sublist::subject::{pattern_matches, tokens};

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
    /// in time; a singleton's route is used up.
    pub fn take(&self, subject: &[u8]) -> Option<ResponseRoute> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let route = routes.get(subject)?;
        if route.expires <= Instant::now() {
            routes.remove(subject);
            return None;
        }
        if route.singleton {
            return routes.remove(subject);
        }
        Some(route.clone())
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
}

/// Whether `subject` (an import's) is within `pattern` (an export's): every subject the
/// first matches, the second matches too.
fn within(subject: &str, pattern: &str) -> bool {
    let subject: Vec<&[u8]> = tokens(subject.as_bytes()).collect();
    let pattern: Vec<&[u8]> = tokens(pattern.as_bytes()).collect();
    for (index, &wanted) in pattern.iter().enumerate() {
        if wanted == b">" {
            return subject.len() > index;
        }
        match subject.get(index) {
            Some(&got) if got == b">" => return false,
            Some(&got) if wanted == b"*" || wanted == got => {}
            _ => return false,
        }
    }
    subject.len() == pattern.len()
}

/// Whether `exporter` lets `importer` import `subject` as `kind`.
fn authorized(exporter: &AccountConfig, importer: &str, kind: ExportKind, subject: &str) -> bool {
    exporter.exports.iter().any(|export| {
        export.kind == kind
            && within(subject, &export.subject)
            && export
                .accounts
                .as_ref()
                .is_none_or(|accounts| accounts.iter().any(|name| name == importer))
    })
}

/// Every account's links, indexed by `AccountId` (`None`: no links, the common case). Imports
/// the exporter does not allow, or of accounts that do not exist, are left out (the
/// configuration layer reports them, as nats-server does).
pub fn build(configs: &[AccountConfig], accounts: &[Arc<Account>]) -> Vec<Option<Arc<Links>>> {
    let mut links: Vec<Links> = vec![Links::default(); accounts.len()];
    let config_of = |name: &str| configs.iter().find(|config| config.name == name);
    for config in configs {
        let Some(importer) = find(accounts, &config.name) else {
            continue;
        };
        for import in &config.imports {
            let (Some(exporter), Some(exporter_config)) =
                (find(accounts, &import.account), config_of(&import.account))
            else {
                continue;
            };
            if exporter == importer
                || !authorized(exporter_config, &config.name, import.kind, &import.subject)
            {
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
                            && within(&import.subject, &export.subject)
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
        let links = build(&[a, b, c], &all);
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
    fn within_is_subset() {
        assert!(within("foo.bar", "foo.*"));
        assert!(within("foo.*", "foo.>"));
        assert!(!within("foo.>", "foo.*"));
        assert!(!within("foo", "foo.>"));
        assert!(within("foo.>", "foo.>"));
    }

    #[test]
    fn singleton_routes_are_used_once_and_expire() {
        let routes = ResponseRoutes::default();
        let later = Instant::now() + Duration::from_secs(60);
        routes.insert(
            b"_R_.a".as_slice().into(),
            ResponseRoute {
                account: AccountId(1),
                reply: b"inbox".as_slice().into(),
                singleton: true,
                expires: later,
            },
        );
        routes.insert(
            b"_R_.b".as_slice().into(),
            ResponseRoute {
                account: AccountId(1),
                reply: b"inbox2".as_slice().into(),
                singleton: false,
                expires: later,
            },
        );
        routes.insert(
            b"_R_.c".as_slice().into(),
            ResponseRoute {
                account: AccountId(1),
                reply: b"x".as_slice().into(),
                singleton: false,
                expires: Instant::now(),
            },
        );
        assert_eq!(&*routes.take(b"_R_.a").unwrap().reply, b"inbox");
        assert!(routes.take(b"_R_.a").is_none());
        assert!(routes.take(b"_R_.b").is_some());
        assert!(routes.take(b"_R_.b").is_some());
        assert!(routes.take(b"_R_.c").is_none(), "expired");
    }
}
