//! The operator and account links of the chain of trust: which keys may sign accounts
//! (`TrustedOperators`), account JWTs checked against them and turned into the account model
//! (`VerifiedAccount`), the `MEMORY` resolver over `resolver_preload`, and activation tokens
//! (private exports).
//!
//! Invariant: a `VerifiedAccount` was signed by a trusted key and passed validation at the
//! `now` it was built with; its `expires` is rechecked at each connect.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::claims::{self, ExportType, UserScope};
use super::{decode, is_public_key, is_revoked, JwtError, KeyKind};
use crate::account::{
    AccountConfig, AccountLimits, Export, ExportKind, Import, Mapping, ResponseType,
    WeightedDestination,
};
use crate::auth::{Permissions, ResponsePermission, SubjectPermission};

/// The trusted operators (the `operator` option), and the keys they trust to sign accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedOperators {
    /// Each operator's claims, in configuration order.
    pub operators: Vec<claims::OperatorClaims>,
    /// Keys that may sign account JWTs: each operator's own key (unless it has
    /// `strict_signing_key_usage`) and its signing keys (nats-server's `trustedKeys`).
    trusted_keys: BTreeSet<String>,
    /// Signing keys of strict operators: an account they sign may not sign users with its
    /// own identity key, only with its signing keys (nats-server's `strictSigningKeyUsage`).
    strict_signing_keys: BTreeSet<String>,
}

impl TrustedOperators {
    /// Decodes and checks the operator JWTs (each must be self-signed or signed by one of its
    /// signing keys, and valid at `now`), as nats-server does at start-up.
    pub fn from_jwts<S: AsRef<str>>(jwts: &[S], now: i64) -> Result<TrustedOperators, JwtError> {
        let mut operators = Vec::with_capacity(jwts.len());
        let mut trusted_keys = BTreeSet::new();
        let mut strict_signing_keys = BTreeSet::new();
        for jwt in jwts {
            let operator = decode::<claims::OperatorClaims>(jwt.as_ref().trim())?.into_inner();
            super::validate_operator(&operator, now)?;
            let data = &operator.data;
            if !is_public_key(&data.subject, KeyKind::Operator) {
                return Err(JwtError::Invalid(
                    "expected subject to be an operator public key".into(),
                ));
            }
            if data.issuer != data.subject && !operator.nats.signing_keys.contains(&data.issuer) {
                return Err(JwtError::Invalid(
                    "operator JWT not signed by the operator or its signing keys".into(),
                ));
            }
            if operator.nats.strict_signing_key_usage {
                strict_signing_keys.extend(operator.nats.signing_keys.iter().cloned());
            } else {
                trusted_keys.insert(data.subject.clone());
            }
            trusted_keys.extend(operator.nats.signing_keys.iter().cloned());
            operators.push(operator);
        }
        Ok(TrustedOperators {
            operators,
            trusted_keys,
            strict_signing_keys,
        })
    }

    /// The system account the first operator that names one names (nats-server checks a
    /// configured `system_account` against these; see `validateTrustedOperators`).
    pub fn system_account(&self) -> Option<&str> {
        self.operators
            .iter()
            .map(|operator| operator.nats.system_account.as_str())
            .find(|account| !account.is_empty())
    }

    /// Whether `key` may sign account JWTs.
    pub fn trusts(&self, key: &str) -> bool {
        self.trusted_keys.contains(key)
    }

    /// Decodes an account JWT and checks it as nats-server's `verifyAccountClaims` does:
    /// signed by a trusted key, valid at `now`. Then converts it.
    pub fn verify_account(&self, jwt: &str, now: i64) -> Result<VerifiedAccount, JwtError> {
        let account = decode::<claims::AccountClaims>(jwt.trim())?.into_inner();
        if !self.trusts(&account.data.issuer) {
            return Err(JwtError::UntrustedAccountIssuer);
        }
        if !is_public_key(&account.data.subject, KeyKind::Account) {
            return Err(JwtError::Invalid(
                "expected subject to be account public key".into(),
            ));
        }
        super::validate_account(&account, now)?;
        let strict = self.strict_signing_keys.contains(&account.data.issuer);
        Ok(VerifiedAccount::from_claims(account, strict))
    }
}

/// What an export needs beyond `crate::account::Export` in operator mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportAuth {
    /// `token_req`: importers need an activation token (`check_activation`). The matching
    /// `Export` has `accounts: Some(vec![])` (nobody without a token).
    pub token_required: bool,
    /// Importing account public key (or `*`) -> Unix seconds: activations issued at or before
    /// are revoked.
    pub revocations: BTreeMap<String, i64>,
}

/// An account JWT, verified and converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccount {
    /// The account's public key (also `config.name`: nats-server names JWT accounts so).
    pub public_key: String,
    /// The key that signed it (the operator or an operator signing key).
    pub issuer: String,
    /// The JWT's `name` (nats-server's `nameTag`, for `{{account-name()}}` and logs).
    pub name: String,
    /// Its tags, lower-cased as Go's `TagList` keeps them.
    pub tags: Vec<String>,
    pub config: AccountConfig,
    /// Parallel to `config.exports`: index `i` belongs to `config.exports[i]`.
    pub export_auth: Vec<ExportAuth>,
    /// Parallel to `config.imports`: the import claims as written (the activation `token`,
    /// the exporter's view of the subject), for `check_activation`.
    pub import_claims: Vec<claims::Import>,
    /// Keys that may issue users: signing keys (with their scope, if scoped) and the
    /// account's own key (`None`), unless a strict operator signing key signed the account.
    pub signing_keys: BTreeMap<String, Option<UserScope>>,
    /// User public key (or `*`) -> Unix seconds (see `super::is_revoked`).
    pub revocations: BTreeMap<String, i64>,
    /// `exp`, Unix seconds; `None`: never.
    pub expires: Option<i64>,
    /// Users of this account may not be bearer tokens.
    pub disallow_bearer: bool,
    /// `limits.leaf`: leaf node connections (-1 unlimited).
    pub max_leaf_connections: i64,
}

impl VerifiedAccount {
    fn from_claims(account: claims::AccountClaims, strict: bool) -> VerifiedAccount {
        let claims::AccountClaims { data, nats } = account;
        let mut signing_keys = nats.signing_keys.0;
        if !strict {
            signing_keys.insert(data.subject.clone(), None);
        }
        let mut exports = Vec::with_capacity(nats.exports.len());
        let mut export_auth = Vec::with_capacity(nats.exports.len());
        for export in &nats.exports {
            exports.push(convert_export(export));
            export_auth.push(ExportAuth {
                token_required: export.token_req,
                revocations: export.revocations.clone(),
            });
        }
        let imports = nats.imports.iter().map(convert_import).collect();
        let mappings = nats
            .mappings
            .iter()
            .map(|(source, destinations)| Mapping {
                source: source.clone(),
                destinations: destinations
                    .iter()
                    .map(|destination| WeightedDestination {
                        subject: destination.subject.clone(),
                        weight: super::mapping_weight(destination.weight),
                        cluster: (!destination.cluster.is_empty())
                            .then(|| destination.cluster.clone()),
                    })
                    .collect(),
            })
            .collect();
        let limits = AccountLimits {
            max_connections: nats.limits.conn,
            max_subscriptions: nats.limits.subs,
            max_payload: nats.limits.payload,
            max_data: nats.limits.data,
        };
        VerifiedAccount {
            public_key: data.subject.clone(),
            issuer: data.issuer,
            name: data.name,
            tags: nats
                .generic
                .tags
                .iter()
                .map(|tag| tag.trim().to_lowercase())
                .collect(),
            config: AccountConfig {
                name: data.subject,
                exports,
                imports,
                mappings,
                default_permissions: permissions_from_claims(&nats.default_permissions),
                limits,
            },
            export_auth,
            import_claims: nats.imports,
            signing_keys,
            revocations: nats.revocations,
            expires: (data.expires > 0).then_some(data.expires),
            disallow_bearer: nats.limits.disallow_bearer,
            max_leaf_connections: nats.limits.leaf_node_conn,
        }
    }

    /// Whether the account JWT has expired at `now` (nats-server: `exp <= now` once loaded).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }

    /// Checks the activation token of the import `import` of account `importer` against this
    /// (exporting) account, as nats-server's `checkActivation` with the import's `Validate`:
    /// the token is an activation JWT issued by this account (or by one of its signing keys
    /// with `issuer_account` naming it), for `importer`, of the import's type, covering the
    /// imported subject, not expired at `now`, not revoked by the export.
    /// `export_index` is the export it was matched to (for its revocations), if any.
    pub fn check_activation(
        &self,
        importer: &str,
        import: &claims::Import,
        export_index: Option<usize>,
        now: i64,
    ) -> Result<(), JwtError> {
        if import.token.is_empty() {
            return Err(JwtError::Invalid("import has no activation token".into()));
        }
        let activation = decode::<claims::ActivationClaims>(&import.token)?.into_inner();
        let issuer_account = &activation.nats.issuer_account;
        if !(activation.data.issuer == import.account || *issuer_account == import.account) {
            return Err(JwtError::Invalid(
                "activation token doesn't match account for import".into(),
            ));
        }
        if activation.data.subject != importer {
            return Err(JwtError::Invalid(
                "activation token doesn't match account it is being included in".into(),
            ));
        }
        if activation.nats.import_type != import.import_type {
            return Err(JwtError::Invalid(
                "mismatch between token import type and type of import".into(),
            ));
        }
        let imported = if import.import_type == ExportType::Service && !import.to.is_empty() {
            &import.to
        } else {
            &import.subject
        };
        if !subject_contained_in(imported, &activation.nats.import_subject) {
            return Err(JwtError::Invalid(
                "activation token import subject doesn't match import".into(),
            ));
        }
        // Go's isIssuerClaimTrusted: with issuer_account, it must be us and the issuer one
        // of our keys; without, the issuer was compared with the import's account above.
        if !issuer_account.is_empty()
            && (*issuer_account != self.public_key
                || !self.signing_keys.contains_key(&activation.data.issuer))
        {
            return Err(JwtError::Invalid(
                "activation token issuer is not trusted".into(),
            ));
        }
        super::validate_times(&activation.data, now)?;
        if activation.data.expires != 0 && activation.data.expires <= now {
            return Err(JwtError::Expired);
        }
        if let Some(auth) = export_index.and_then(|index| self.export_auth.get(index)) {
            if is_revoked(
                &auth.revocations,
                &activation.data.subject,
                activation.data.issued_at,
            ) {
                return Err(JwtError::Revoked);
            }
        }
        Ok(())
    }
}

/// Go's `Subject.IsContainedIn`: every subject `subject` matches, `container` matches.
fn subject_contained_in(subject: &str, container: &str) -> bool {
    let mine: Vec<&str> = subject.split('.').collect();
    let other: Vec<&str> = container.split('.').collect();
    if mine.len() < other.len() {
        return false;
    }
    if mine.len() > other.len() && other.last() != Some(&">") {
        return false;
    }
    for (index, token) in other.iter().enumerate() {
        if index == other.len() - 1 && *token == ">" {
            return true;
        }
        if *token != mine[index] && *token != "*" {
            return false;
        }
    }
    true
}

fn convert_export(export: &claims::Export) -> Export {
    let kind = match export.export_type {
        ExportType::Stream => ExportKind::Stream,
        ExportType::Service => ExportKind::Service,
    };
    let response_type = match export.response_type.as_str() {
        "Stream" => ResponseType::Stream,
        "Chunked" => ResponseType::Chunked,
        _ => ResponseType::Singleton,
    };
    Export {
        kind,
        subject: export.subject.clone(),
        // A token-required export admits nobody without an activation token; a public one
        // everybody (Go's `authAccounts(tokenReq)`).
        accounts: export.token_req.then(Vec::new),
        response_type,
        response_threshold: (export.response_threshold > 0)
            .then(|| Duration::from_nanos(export.response_threshold as u64)),
        account_token_position: export.account_token_position,
    }
}

/// Imports in the model's terms (`Import::subject` is the exporter's subject, `to` the local
/// one), from v2's fields as nats-server's `updateAccountClaimsWithRefresh` reads them.
fn convert_import(import: &claims::Import) -> Import {
    let some = |text: &String| (!text.is_empty()).then(|| text.clone());
    match import.import_type {
        ExportType::Stream => {
            let local = some(&import.local_subject);
            let prefix = local.is_none() && !import.to.is_empty();
            Import {
                kind: ExportKind::Stream,
                account: import.account.clone(),
                subject: import.subject.clone(),
                to: local.or_else(|| some(&import.to)),
                prefix,
                share: false,
            }
        }
        ExportType::Service => {
            let (remote, local) = if !import.local_subject.is_empty() {
                (import.subject.clone(), some(&import.local_subject))
            } else if !import.to.is_empty() {
                // The deprecated form: `subject` is local, `to` the exporter's.
                (import.to.clone(), some(&import.subject))
            } else {
                (import.subject.clone(), None)
            };
            Import {
                kind: ExportKind::Service,
                account: import.account.clone(),
                subject: remote,
                to: local,
                prefix: false,
                share: import.share,
            }
        }
    }
}

/// Go's `buildPermissionsFromJwt`: publish and subscribe only when they list something;
/// `resp` turns off the blanket publish allow and gets nats-server's defaults for zeros.
pub fn permissions_from_claims(permissions: &claims::Permissions) -> Option<Permissions> {
    let subject_permission = |permission: &claims::Permission| {
        (!permission.is_empty()).then(|| SubjectPermission {
            allow: (!permission.allow.is_empty()).then(|| permission.allow.clone()),
            deny: (!permission.deny.is_empty()).then(|| permission.deny.clone()),
        })
    };
    let mut result = Permissions {
        publish: subject_permission(&permissions.publish),
        subscribe: subject_permission(&permissions.subscribe),
        response: None,
    };
    if let Some(response) = permissions.response {
        let publish = result
            .publish
            .get_or_insert_with(SubjectPermission::default);
        publish.allow.get_or_insert_with(Vec::new);
        result.response = Some(ResponsePermission {
            max_msgs: if response.max_msgs == 0 {
                ResponsePermission::MAX_MSGS_DEFAULT
            } else {
                response.max_msgs
            },
            expires: if response.expires_nanos == 0 {
                ResponsePermission::EXPIRES_DEFAULT
            } else {
                Duration::from_nanos(response.expires_nanos.max(0) as u64)
            },
        });
    }
    (result != Permissions::default()).then_some(result)
}

/// nats-server's `MEMORY` resolver: the account JWTs of `resolver_preload`, verified when
/// first looked up (as nats-server does) and kept.
#[derive(Debug, Clone, Default)]
pub struct MemoryResolver {
    /// Account public key -> its JWT, as configured.
    preload: BTreeMap<String, String>,
    /// Accounts verified so far.
    verified: BTreeMap<String, VerifiedAccount>,
}

impl MemoryResolver {
    pub fn new<I: IntoIterator<Item = (String, String)>>(preload: I) -> MemoryResolver {
        MemoryResolver {
            preload: preload.into_iter().collect(),
            verified: BTreeMap::new(),
        }
    }

    /// The account `public_key`, verified against `operators` at `now` on first use (an
    /// account whose JWT is missing, untrusted, invalid or not about `public_key` is
    /// refused, and tried again at the next lookup).
    pub fn lookup(
        &mut self,
        operators: &TrustedOperators,
        public_key: &str,
        now: i64,
    ) -> Result<&VerifiedAccount, JwtError> {
        if !self.verified.contains_key(public_key) {
            if !is_public_key(public_key, KeyKind::Account) {
                return Err(JwtError::AccountNotFound(public_key.to_string()));
            }
            let jwt = self
                .preload
                .get(public_key)
                .ok_or_else(|| JwtError::AccountNotFound(public_key.to_string()))?;
            let account = operators.verify_account(jwt, now)?;
            if account.public_key != public_key {
                return Err(JwtError::AccountMismatch);
            }
            self.verified.insert(public_key.to_string(), account);
        }
        Ok(&self.verified[public_key])
    }

    /// Verifies every preloaded account (start-up), returning those that fail and why
    /// (nats-server warns about them and starts anyway).
    pub fn verify_all(
        &mut self,
        operators: &TrustedOperators,
        now: i64,
    ) -> Vec<(String, JwtError)> {
        let keys: Vec<String> = self.preload.keys().cloned().collect();
        keys.into_iter()
            .filter_map(|key| match self.lookup(operators, &key, now) {
                Ok(_) => None,
                Err(error) => Some((key, error)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_follows_wildcards() {
        assert!(subject_contained_in("a.b", "a.b"));
        assert!(subject_contained_in("a.b", "a.*"));
        assert!(subject_contained_in("a.b.c", "a.>"));
        assert!(!subject_contained_in("a", "a.>"));
        assert!(!subject_contained_in("a.b.c", "a.*"));
        assert!(!subject_contained_in("b.c", "a.*"));
    }

    #[test]
    fn jwt_permissions_become_the_model() {
        let mut claims = claims::Permissions::default();
        assert_eq!(permissions_from_claims(&claims), None);
        claims.subscribe.allow = vec!["_INBOX.>".into()];
        claims.response = Some(claims::ResponsePermission {
            max_msgs: 0,
            expires_nanos: 0,
        });
        let permissions = permissions_from_claims(&claims).unwrap();
        assert_eq!(
            permissions.publish,
            Some(SubjectPermission {
                allow: Some(vec![]),
                deny: None
            })
        );
        assert_eq!(
            permissions.subscribe.unwrap().allow,
            Some(vec!["_INBOX.>".to_string()])
        );
        assert_eq!(
            permissions.response,
            Some(ResponsePermission {
                max_msgs: 1,
                expires: Duration::from_secs(120)
            })
        );
    }

    #[test]
    fn imports_take_the_v2_renaming_rules() {
        let service = |subject: &str, to: &str, local: &str| claims::Import {
            subject: subject.into(),
            to: to.into(),
            local_subject: local.into(),
            account: "A".into(),
            import_type: ExportType::Service,
            ..Default::default()
        };
        let plain = convert_import(&service("svc", "", ""));
        assert_eq!((plain.subject.as_str(), plain.to), ("svc", None));
        let local = convert_import(&service("svc.*", "", "mine.$1"));
        assert_eq!(
            (local.subject.as_str(), local.to.as_deref()),
            ("svc.*", Some("mine.$1"))
        );
        let deprecated = convert_import(&service("mine", "svc", ""));
        assert_eq!(
            (deprecated.subject.as_str(), deprecated.to.as_deref()),
            ("svc", Some("mine"))
        );
        let stream = convert_import(&claims::Import {
            subject: "events.>".into(),
            to: "imported".into(),
            account: "A".into(),
            ..Default::default()
        });
        assert!(stream.prefix);
        assert_eq!(stream.to.as_deref(), Some("imported"));
    }
}
