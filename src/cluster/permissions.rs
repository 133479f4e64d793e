//! Route permissions (`cluster { permissions { import, export } }`), as nats-server 2.15.1
//! applies them (`server/route.go`: `setRoutePermissions`, `canImport`, `canExport`,
//! `sendSubsToRoute`, `processRemoteSub`, `updateRemoteRoutePerms`; `server/reload.go`:
//! `reloadClusterPermissions`).
//!
//! nats-server turns them into a user's permissions, `import` as publish and `export` as
//! subscribe, and checks subjects of interest, never messages:
//! - `import`: the local interest this server announces to its peers (the dump when a route
//!   registers, every later `RS+`/`RS-`) leaves out subjects it may not import, so a peer never
//!   sends messages on them. The publish check, on the interest's subject taken literally
//!   (`foo.*` passes `allow: "foo.>"`, not `allow: "foo.bar"`).
//! - `export`: an `RS+` from a peer on a subject it may not export is dropped (logged at debug),
//!   so no message on it goes to that peer. The subscribe check, without the queue group. An
//!   allowed wildcard that overlaps a deny entry (`RS+ foo.*` with `deny: "foo.bar"`) turns on
//!   the route's delivery filter: from then on each message forwarded to that route is checked
//!   against the deny list (`checkDenySub`). Without such an overlap, forwarding costs nothing.
//! - No subject is exempt (`$SYS`, `_INBOX.`, JetStream and reply subjects are checked like any
//!   other), except that the allow lists do not apply to `$MQTT.` subjects (not a client).
//!   Messages that come in on a route are not checked.
//! - Both INFOs carry them (`"import"`/`"export"`, nats-server's `SubjectPermission` JSON). A
//!   peer whose async INFO widens its `export` gets `RS+` for the local interest it may now
//!   take (and this server may import). A reload re-filters: `RS+`/`RS-` for interest that
//!   became importable or not, peers' interest no longer exportable dropped, and an async INFO.
//!
//! Must not: run per message (the delivery filter is `auth::permissions`' and the route
//! session's).

use std::sync::Arc;

use crate::auth::permissions::CompiledPermissions;
use crate::auth::{Permissions, SubjectPermission};
use crate::config::RoutePermissions;

/// The route permissions in force, as configured and compiled. Immutable; a reload makes new
/// ones.
#[derive(Debug, Default)]
pub struct RouteRules {
    /// As configured (what the route INFO's `import`/`export` say); None: no permissions.
    pub configured: Option<RoutePermissions>,
    /// `import` as publish, `export` as subscribe; present exactly when `configured` is.
    compiled: Option<Arc<CompiledPermissions>>,
}

impl RouteRules {
    pub fn new(configured: Option<&RoutePermissions>) -> RouteRules {
        let compiled = configured.map(|permissions| Arc::new(compile(permissions)));
        RouteRules {
            configured: configured.cloned(),
            compiled,
        }
    }

    /// nats-server's `canImport`: whether this server announces its interest in `subject` to
    /// its peers.
    pub fn can_import(&self, subject: &[u8]) -> bool {
        self.compiled
            .as_ref()
            .is_none_or(|rules| rules.server_publish_permitted(subject))
    }

    /// The compiled rules a route checks its peer's `RS+` against (`canExport`); None: no
    /// permissions, everything is accepted.
    pub fn export_rules(&self) -> Option<&Arc<CompiledPermissions>> {
        self.compiled.as_ref()
    }

    /// The `import` and `export` of the route INFO.
    pub fn info_fields(&self) -> (Option<SubjectPermission>, Option<SubjectPermission>) {
        match &self.configured {
            Some(permissions) => (permissions.import.clone(), permissions.export.clone()),
            None => (None, None),
        }
    }
}

/// nats-server's `setRoutePermissions`: a user's permissions with `import` as publish and
/// `export` as subscribe.
fn compile(permissions: &RoutePermissions) -> CompiledPermissions {
    CompiledPermissions::new(&Permissions {
        publish: permissions.import.clone(),
        subscribe: permissions.export.clone(),
        response: None,
    })
}

/// A peer's `export` as a tester of its `canExport` (nats-server's `updateRemoteRoutePerms`
/// builds one from the peer's INFO): None when the peer sent none.
pub fn peer_export_tester(
    export: Option<&SubjectPermission>,
) -> Option<crate::auth::permissions::ConnectionPermissions> {
    export.map(|export| {
        crate::auth::permissions::ConnectionPermissions::new(Arc::new(compile(&RoutePermissions {
            import: None,
            export: Some(export.clone()),
        })))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(subjects: &[&str]) -> Option<Vec<String>> {
        Some(subjects.iter().map(|subject| subject.to_string()).collect())
    }

    fn rules(
        import: (&[&str], &[&str]),
        export: (&[&str], &[&str]),
    ) -> (RouteRules, crate::auth::permissions::ConnectionPermissions) {
        let permission = |(allow, deny): (&[&str], &[&str])| SubjectPermission {
            allow: (!allow.is_empty()).then(|| list(allow).unwrap()),
            deny: (!deny.is_empty()).then(|| list(deny).unwrap()),
        };
        let rules = RouteRules::new(Some(&RoutePermissions {
            import: Some(permission(import)),
            export: Some(permission(export)),
        }));
        let export = crate::auth::permissions::ConnectionPermissions::new(Arc::clone(
            rules.export_rules().unwrap(),
        ));
        (rules, export)
    }

    #[test]
    fn import_takes_the_interest_subject_literally() {
        let (rules, _) = rules((&["foo.>", "bar.*"], &["foo.secret"]), (&[], &[]));
        assert!(rules.can_import(b"foo.a"));
        assert!(rules.can_import(b"foo.*"), "foo.> covers foo.*");
        assert!(rules.can_import(b"foo.>"));
        assert!(
            rules.can_import(b"bar.>"),
            "the * of bar.* matches the token >"
        );
        assert!(!rules.can_import(b"foo.secret"));
        assert!(
            rules.can_import(b"foo.*"),
            "a deny on a literal does not catch foo.*"
        );
        assert!(!rules.can_import(b"baz"));
        assert!(!rules.can_import(b">"));
        assert!(
            !rules.can_import(b"$SYS.REQ.SERVER.PING"),
            "no exemption for $SYS"
        );
        assert!(
            rules.can_import(b"$MQTT.sub.x"),
            "the allow list skips $MQTT."
        );
        assert!(RouteRules::new(None).can_import(b"anything"));
    }

    #[test]
    fn export_filters_deliveries_once_a_wildcard_overlaps_a_deny() {
        let (_, mut export) = rules((&[], &[]), (&["pub.>"], &["pub.secret", "pub.x.*"]));
        assert!(!export.server_subscribe_allowed(b"other"));
        assert!(!export.server_subscribe_allowed(b"pub.secret"));
        assert!(export.server_subscribe_allowed(b"pub.a"));
        assert!(!export.filters_deliveries(), "a literal overlaps no deny");
        assert!(export.server_subscribe_allowed(b"pub.*"));
        assert!(export.filters_deliveries());
        assert!(export.delivery_denied(b"pub.secret", None));
        assert!(!export.delivery_denied(b"pub.a", None));
        assert!(export.delivery_denied(b"pub.x.y", None));
    }

    #[test]
    fn info_fields_are_the_configured_lists() {
        let (rules, _) = rules((&["a"], &[]), (&[], &["b"]));
        let (import, export) = rules.info_fields();
        assert_eq!(import.unwrap().allow, list(&["a"]));
        assert_eq!(export.unwrap().deny, list(&["b"]));
        assert_eq!(RouteRules::new(None).info_fields(), (None, None));
    }
}
