//! Deciding a CONNECT: which configured identity its credentials prove, in nats-server's order
//! (`processClientOrLeafAuthentication`): nkey users, then users with passwords, then the
//! token, then the single user; `no_auth_user` stands in for a client that presents none.
//! With `tls { verify_and_map }` the user is the one the client's certificate names
//! ([`CertIdentities`], made when its handshake ended), not the CONNECT's.
//!
//! Built once per configuration ([`Authenticator::new`]) and shared read-only by every shard.
//! A check costs a hash lookup and a constant-time comparison, or an ed25519 verification for
//! an nkey; a bcrypt hash is never checked here: the verdict says so
//! ([`Verdict::Bcrypt`]) and the shard has it checked off its thread (`auth::verifier`),
//! since bcrypt costs milliseconds by design.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::dn::DistinguishedName;
use super::jwt::{self, ConnectAttempt, JwtError};
use super::operator::OperatorMode;
use super::permissions::CompiledPermissions;
use super::{is_bcrypt, ConnectionTypes, Permissions, CONNECTION_TYPE_STANDARD};
use crate::account::AccountId;
use crate::config::Options;
use crate::proto::json::ConnectOptions;
use crate::tls::CertIdentities;

/// nats-server's `AUTH_TIMEOUT` default.
pub const AUTH_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);

/// Who an authenticated connection is: its account and permissions, and the configured
/// secret it proved (so a reload can tell whether it must prove it again).
#[derive(Clone)]
pub struct Identity {
    /// How nats-server's logs name it (`User "alice"`, `Nkey "U..."`), empty for the token and
    /// for no authentication at all.
    pub label: String,
    /// The configured user's name, for a user of `users`; empty for anything else. With
    /// `verify_and_map` it stands for the user the CONNECT did not name (nats-server writes
    /// it into the connection's options, for logs and monitoring).
    pub user: String,
    pub account: AccountId,
    /// What it may publish and subscribe to; `None`: anything.
    pub permissions: Option<Arc<CompiledPermissions>>,
    /// The configured password (plain or bcrypt), empty for nkeys and no authentication.
    pub secret: String,
    /// Operator mode: when the connection must be closed (its JWT expires), from the check.
    pub disconnect_after: Option<Duration>,
    /// Operator mode: the user's own limits (-1: none; the account's apply too).
    pub max_subscriptions: i64,
    pub max_payload: i64,
    /// Operator mode: what monitoring shows of the user JWT that proved it.
    pub jwt_user: Option<Arc<JwtUser>>,
}

/// What monitoring (`/connz?auth=1`) shows of an operator-mode user, from its JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtUser {
    /// The user's public key (nats-server's `authorized_user` for a JWT user).
    pub public_key: String,
    /// The key that issued it: the signing key, else the account (nats-server's
    /// `issuerForClient`).
    pub issuer_key: String,
    pub tags: Vec<String>,
    /// A bearer JWT is shown to nobody (nats-server's `redactBearerJWT`).
    pub bearer: bool,
}

/// Written without the secret, which a debug log must never show.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("label", &self.label)
            .field("account", &self.account)
            .field("permissions", &self.permissions.is_some())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A connection on a server that requires no authentication: the global account, no
    /// permissions.
    pub fn anonymous() -> Arc<Identity> {
        Arc::new(Identity {
            label: String::new(),
            user: String::new(),
            account: AccountId::GLOBAL,
            permissions: None,
            secret: String::new(),
            disconnect_after: None,
            max_subscriptions: -1,
            max_payload: -1,
            jwt_user: None,
        })
    }
}

/// What a CONNECT's credentials come to.
pub enum Verdict {
    Granted(Arc<Identity>),
    /// `Authorization Violation`. The reason is for the debug log only.
    Denied(Cow<'static, str>),
    /// Granted if `candidate` matches the bcrypt `hash` (to be checked off the shard).
    Bcrypt {
        hash: String,
        candidate: String,
        identity: Arc<Identity>,
    },
}

/// Written without the candidate secret, which a debug log must never show.
impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Granted(identity) => f.debug_tuple("Granted").field(identity).finish(),
            Verdict::Denied(reason) => f.debug_tuple("Denied").field(reason).finish(),
            Verdict::Bcrypt { identity, .. } => f
                .debug_struct("Bcrypt")
                .field("identity", identity)
                .finish_non_exhaustive(),
        }
    }
}

/// A configured user or nkey user, as the checks use it.
#[derive(Debug)]
struct Entry {
    identity: Arc<Identity>,
    connection_types: ConnectionTypes,
}

impl Entry {
    fn allows_standard_connections(&self) -> bool {
        self.connection_types
            .as_ref()
            .is_none_or(|types| types.is_empty() || types.contains(CONNECTION_TYPE_STANDARD))
    }
}

/// The configured identities, ready to check CONNECTs against.
#[derive(Debug)]
pub struct Authenticator {
    required: bool,
    timeout: Duration,
    /// The token, as the identity it proves (in `$G`, its secret the token).
    token: Option<Arc<Identity>>,
    /// The single user's name, and the identity its password proves.
    single: Option<(String, Arc<Identity>)>,
    users: HashMap<String, Entry>,
    /// `tls { verify_and_map }`: with users configured, a client's user is the one its
    /// certificate names.
    tls_map: bool,
    /// With `tls_map`: the users whose names parse as distinguished names, in the
    /// configuration's order, with those names parsed (compared with a certificate's subject).
    user_dns: Vec<(DistinguishedName, String)>,
    nkeys: HashMap<String, Entry>,
    no_auth_user: Option<String>,
    /// `no_auth_user` is the one made for a server whose only configured account is the
    /// system account (see `new`): INFO still says `auth_required` then.
    no_auth_user_made: bool,
    global: Arc<Identity>,
    /// Operator mode: users prove themselves with JWTs of the verified accounts.
    operator: Option<Arc<OperatorMode>>,
    /// Account ids by name, for operator-mode users (whose accounts are their JWTs').
    account_ids: HashMap<String, AccountId>,
}

impl Authenticator {
    /// The identities `options` configure; `account_id` gives the id of an account by name
    /// (every account a user names exists by then).
    pub fn new(
        options: &Options,
        operator: Option<Arc<OperatorMode>>,
        account_id: impl Fn(&str) -> AccountId,
    ) -> Authenticator {
        let auth = &options.auth;
        let entry = |label: String,
                     user: &str,
                     secret: &str,
                     account: &Option<String>,
                     permissions: &Option<Permissions>,
                     connection_types: &ConnectionTypes| Entry {
            identity: Arc::new(Identity {
                label,
                user: user.to_string(),
                account: account.as_deref().map_or(AccountId::GLOBAL, &account_id),
                permissions: permissions
                    .as_ref()
                    .map(|permissions| Arc::new(compiled(permissions))),
                secret: secret.to_string(),
                disconnect_after: None,
                max_subscriptions: -1,
                max_payload: -1,
                jwt_user: None,
            }),
            connection_types: connection_types.clone(),
        };
        // nats-server keeps `$G` open to clients without credentials when the only account
        // configured is the system account (which is how one gives it users): it makes a user
        // of its own in `$G` and takes it as the no_auth_user.
        let system_account = crate::account::system_account_name(options);
        let made_user = (options.operators.is_empty()
            && auth.no_auth_user.is_none()
            && !auth.authorization_block
            && options.accounts.len() == 1
            && options.accounts[0].name == system_account)
            .then(|| {
                let token = String::from_utf8(crate::account::random_token(8)).unwrap_or_default();
                crate::auth::User {
                    username: format!("nats-{token}"),
                    password: token,
                    ..crate::auth::User::default()
                }
            });
        let users = auth
            .users
            .iter()
            .flatten()
            .chain(made_user.as_ref())
            .map(|user| {
                let label = format!("User {}", crate::config::go::quote(&user.username));
                let entry = entry(
                    label,
                    &user.username,
                    &user.password,
                    &user.account,
                    &user.permissions,
                    &user.allowed_connection_types,
                );
                (user.username.clone(), entry)
            })
            .collect();
        let nkeys = auth
            .nkeys
            .iter()
            .flatten()
            .map(|user| {
                let label = format!("Nkey {}", crate::config::go::quote(&user.nkey));
                let entry = entry(
                    label,
                    "",
                    "",
                    &user.account,
                    &user.permissions,
                    &user.allowed_connection_types,
                );
                (user.nkey.clone(), entry)
            })
            .collect();
        let no_auth_user_made = made_user.is_some();
        let tls_map = options.tls.as_ref().is_some_and(|tls| tls.verify_and_map);
        let user_dns = auth
            .users
            .iter()
            .flatten()
            .filter(|_| tls_map)
            .filter_map(|user| {
                let parsed = DistinguishedName::parse(&user.username)?;
                Some((parsed, user.username.clone()))
            })
            .collect();
        let account_ids = operator
            .iter()
            .flat_map(|operator| operator.accounts.keys())
            .map(|key| (key.clone(), account_id(key)))
            .collect();
        Authenticator {
            required: auth.required() || no_auth_user_made || operator.is_some(),
            // nats-server's default with TLS is the handshake's timeout and a second more.
            timeout: auth.auth_timeout.unwrap_or_else(|| match &options.tls {
                Some(tls) => tls.timeout + std::time::Duration::from_secs(1),
                None => AUTH_TIMEOUT_DEFAULT,
            }),
            token: auth.token.as_deref().map(global_with_secret),
            single: auth.username.clone().map(|user| {
                let password = auth.password.as_deref().unwrap_or_default();
                (user, global_with_secret(password))
            }),
            users,
            tls_map,
            user_dns,
            nkeys,
            no_auth_user: made_user
                .map(|user| user.username)
                .or_else(|| auth.no_auth_user.clone()),
            no_auth_user_made,
            global: Identity::anonymous(),
            operator,
            account_ids,
        }
    }

    /// The identity of a client when no authentication is required: the global account, no
    /// permissions.
    pub fn anonymous(&self) -> &Arc<Identity> {
        &self.global
    }

    /// Whether clients must authenticate (INFO's `auth_required`, the auth timeout).
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether a new client's first INFO says `auth_required`: not when a configured
    /// no_auth_user takes clients without credentials (nats-server's rule; the INFO after
    /// CONNECT says it again).
    pub fn info_says_required(&self) -> bool {
        self.required && (self.no_auth_user.is_none() || self.no_auth_user_made)
    }

    /// Whether INFO carries a nonce for the client to sign (nkey users are configured).
    pub fn needs_nonce(&self) -> bool {
        !self.nkeys.is_empty() || self.operator.is_some()
    }

    /// How long a client has to authenticate (`authorization { timeout }`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the client whose CONNECT was `connect`, now in `account`, names a user or nkey
    /// this configuration no longer has, or has in another account: nats-server closes such
    /// clients on a reload (`clientHasMovedToDifferentAccount`) so they reconnect.
    pub fn moved_or_gone(&self, connect: &ConnectOptions, account: AccountId) -> bool {
        let given = |field: &Option<String>| field.clone().filter(|value| !value.is_empty());
        let entry = if let Some(nkey) = given(&connect.nkey) {
            self.nkeys.get(&nkey)
        } else if let Some(user) = given(&connect.user) {
            self.users.get(&user)
        } else {
            return false;
        };
        entry.is_none_or(|entry| entry.identity.account != account)
    }

    /// Whether a client that sends an operation before CONNECT is taken as the
    /// `no_auth_user` (nats-server lets a telnet session work then); the verdict for it.
    /// `certificate`: what the client's certificate names, as for [`Authenticator::check`].
    pub fn no_auth_user_verdict(&self, certificate: Option<&CertIdentities>) -> Option<Verdict> {
        // Before any CONNECT, nats-server looks for it among the users with passwords only.
        let name = self.no_auth_user.as_deref()?;
        let entry = self.users.get(name)?;
        entry
            .allows_standard_connections()
            .then(|| self.check(&ConnectOptions::default(), b"", "", certificate))
    }

    /// The verdict on a CONNECT's credentials, `nonce` being what this connection's INFO
    /// carried (empty when none), `peer` the client's `ip:port` and `certificate` what its
    /// TLS client certificate names, if it sent one (read with `verify_and_map` only).
    pub fn check(
        &self,
        connect: &ConnectOptions,
        nonce: &[u8],
        peer: &str,
        certificate: Option<&CertIdentities>,
    ) -> Verdict {
        if !self.required {
            return Verdict::Granted(Arc::clone(&self.global));
        }
        if let Some(operator) = &self.operator {
            return self.check_jwt(operator, connect, nonce, peer);
        }
        fn given(field: &Option<String>) -> Option<&str> {
            field.as_deref().filter(|value| !value.is_empty())
        }
        let (mut user, mut pass, token, mut nkey) = (
            given(&connect.user),
            given(&connect.pass),
            given(&connect.auth_token),
            given(&connect.nkey),
        );
        // no_auth_user: a client with no credentials at all is taken as that user, with its
        // configured secret as if the client had sent it (as nats-server substitutes them).
        let no_auth = self.no_auth_user.as_deref();
        if !self.nkeys.is_empty()
            && user.is_none()
            && pass.is_none()
            && token.is_none()
            && nkey.is_none()
        {
            if let Some(name) = no_auth.filter(|name| self.nkeys.contains_key(*name)) {
                nkey = Some(name);
            }
        }
        let nkey_entry = match nkey {
            Some(key) if !self.nkeys.is_empty() => match self.nkeys.get(key) {
                Some(entry) if entry.allows_standard_connections() => Some(entry),
                _ => {
                    return Verdict::Denied(Cow::Borrowed(
                        "unknown nkey or connection type not allowed",
                    ))
                }
            },
            _ => None,
        };
        if let Some(entry) = nkey_entry {
            if Some(nkey.unwrap_or_default()) != no_auth {
                if let Err(reason) = verify_nonce_signature(
                    nkey.unwrap_or_default(),
                    nonce,
                    connect.sig.as_deref().unwrap_or_default(),
                ) {
                    return Verdict::Denied(Cow::Borrowed(reason));
                }
            }
            return Verdict::Granted(Arc::clone(&entry.identity));
        }
        if !self.users.is_empty() {
            if self.tls_map {
                return self.check_certificate(user, pass, certificate);
            }
            if user.is_none() && pass.is_none() && token.is_none() {
                if let Some(entry) = no_auth.and_then(|name| self.users.get(name)) {
                    user = no_auth;
                    pass = Some(entry.identity.secret.as_str());
                }
            }
            if let Some(name) = user {
                let Some(entry) = self.users.get(name) else {
                    return Verdict::Denied(Cow::Borrowed("unknown user"));
                };
                if !entry.allows_standard_connections() {
                    return Verdict::Denied(Cow::Borrowed("connection type not allowed"));
                }
                return secret_verdict(
                    &entry.identity.secret,
                    pass.unwrap_or_default(),
                    &entry.identity,
                );
            }
        }
        if let Some(identity) = &self.token {
            return secret_verdict(&identity.secret, token.unwrap_or_default(), identity);
        }
        if let Some((name, identity)) = &self.single {
            if user.unwrap_or_default() != name {
                return Verdict::Denied(Cow::Borrowed("wrong user"));
            }
            return secret_verdict(&identity.secret, pass.unwrap_or_default(), identity);
        }
        Verdict::Denied(Cow::Borrowed("no credentials match"))
    }
}

impl Authenticator {
    /// Whether a client's user is the one its certificate names (`verify_and_map` with users
    /// configured): the shard then keeps that user's name as the CONNECT's, as nats-server
    /// does.
    pub fn maps_certificates(&self) -> bool {
        self.tls_map && !self.users.is_empty()
    }

    /// `verify_and_map`: the user `certificate` names, whose password the CONNECT must still
    /// give (none for both, as such users are configured: nats-server compares them). A user
    /// the CONNECT names is ignored, with nats-server's warning.
    fn check_certificate(
        &self,
        user: Option<&str>,
        pass: Option<&str>,
        certificate: Option<&CertIdentities>,
    ) -> Verdict {
        let Some(certificate) = certificate else {
            return Verdict::Denied(Cow::Borrowed(
                "User required in cert, no peer certificates found",
            ));
        };
        let Some(entry) = self.certificate_user(certificate) else {
            return Verdict::Denied(Cow::Borrowed("User in cert not found"));
        };
        if let Some(user) = user {
            crate::log_warn!(
                "User {} found in connect proto, but user required from cert",
                crate::config::go::quote(user)
            );
        }
        secret_verdict(
            &entry.identity.secret,
            pass.unwrap_or_default(),
            &entry.identity,
        )
    }

    /// The user a certificate names, looked for in nats-server's order
    /// (`checkClientTLSCertSubject`): its alternative names, then each user whose name is a
    /// distinguished name equal to the subject (the same RDNs in the same order, then in any
    /// order), then the subject as Go prints it (with its domain components, then without).
    /// A user whose connection types leave out standard clients is passed over.
    fn certificate_user(&self, certificate: &CertIdentities) -> Option<&Entry> {
        let lookup = |name: &str| {
            self.users
                .get(name)
                .filter(|entry| entry.allows_standard_connections())
        };
        if let Some(entry) = certificate.alternative_names.iter().find_map(|n| lookup(n)) {
            return Some(entry);
        }
        if let Some(subject) = &certificate.subject {
            let candidates = || {
                self.user_dns
                    .iter()
                    .filter_map(|(dn, name)| Some((dn, lookup(name)?)))
            };
            let found = candidates()
                .find(|(dn, _)| dn.equal(subject))
                .or_else(|| candidates().find(|(dn, _)| dn.rdns_match(subject)));
            if let Some((_, entry)) = found {
                return Some(entry);
            }
        }
        certificate.subject_names.iter().find_map(|n| lookup(n))
    }

    /// Operator mode: the CONNECT's user JWT, signed by one of the verified accounts (or its
    /// signing keys), and its signature of the nonce.
    fn check_jwt(
        &self,
        operator: &OperatorMode,
        connect: &ConnectOptions,
        nonce: &[u8],
        peer: &str,
    ) -> Verdict {
        let client_ip = peer
            .rsplit_once(':')
            .and_then(|(ip, _)| ip.trim_matches(['[', ']']).parse().ok());
        let attempt = ConnectAttempt {
            jwt: connect.jwt.as_deref(),
            signature: connect.sig.as_deref(),
            nonce,
            connection_type: CONNECTION_TYPE_STANDARD,
            client_ip,
            now: super::operator::unix_now(),
        };
        let user = jwt::authenticate(&attempt, |key| {
            operator
                .accounts
                .get(key)
                .ok_or_else(|| JwtError::AccountNotFound(key.to_string()))
        });
        let user = match user {
            Ok(user) => user,
            Err(err) => return Verdict::Denied(Cow::Owned(err.to_string())),
        };
        let Some(&account) = self.account_ids.get(&user.account) else {
            return Verdict::Denied(Cow::Borrowed("account not loaded"));
        };
        Verdict::Granted(Arc::new(Identity {
            label: format!("JWT User {}", crate::config::go::quote(&user.public_key)),
            user: String::new(),
            account,
            permissions: user
                .permissions
                .as_ref()
                .map(|permissions| Arc::new(compiled(permissions))),
            secret: String::new(),
            disconnect_after: user.disconnect_after,
            max_subscriptions: user.max_subscriptions,
            max_payload: user.max_payload,
            jwt_user: Some(Arc::new(JwtUser {
                issuer_key: user
                    .signing_key
                    .clone()
                    .unwrap_or_else(|| user.account.clone()),
                public_key: user.public_key,
                tags: user.tags,
                bearer: user.bearer,
            })),
        }))
    }
}

/// An identity in the global account with no permissions, proved by `secret` (the token or
/// the single user's password).
fn global_with_secret(secret: &str) -> Arc<Identity> {
    Arc::new(Identity {
        secret: secret.to_string(),
        ..Identity::clone(&Identity::anonymous())
    })
}

/// A user's permissions compiled, with what nats-server would warn about logged.
fn compiled(permissions: &Permissions) -> CompiledPermissions {
    let compiled = CompiledPermissions::new(permissions);
    for warning in compiled.warnings() {
        crate::log_warn!("{warning}");
    }
    compiled
}

/// The verdict on a client's secret against the configured one: bcrypt is left to the
/// verifier, a plain secret is compared in constant time.
fn secret_verdict(configured: &str, given: &str, identity: &Arc<Identity>) -> Verdict {
    if is_bcrypt(configured) {
        return Verdict::Bcrypt {
            hash: configured.to_string(),
            candidate: given.to_string(),
            identity: Arc::clone(identity),
        };
    }
    if constant_time_eq(configured.as_bytes(), given.as_bytes()) {
        Verdict::Granted(Arc::clone(identity))
    } else {
        Verdict::Denied(Cow::Borrowed("wrong secret"))
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ (Go's
/// `subtle.ConstantTimeCompare`, which nats-server uses for plain secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Whether `candidate` is the password `hash` (a bcrypt hash) was made from. Costs what the
/// hash's cost factor says (milliseconds): call it off the shard.
pub fn bcrypt_matches(hash: &str, candidate: &str) -> bool {
    bcrypt::verify(candidate, hash).unwrap_or(false)
}

/// Checks an nkey user's signature of the nonce: `sig` is base64url without padding (standard
/// base64 accepted too, as nats-server falls back to it), made by the key `public_key` names.
pub fn verify_nonce_signature(
    public_key: &str,
    nonce: &[u8],
    sig: &str,
) -> Result<(), &'static str> {
    if sig.is_empty() {
        return Err("signature missing");
    }
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .or_else(|_| data_encoding::BASE64.decode(sig.as_bytes()))
        .map_err(|_| "signature not valid base64")?;
    let key = nkeys::KeyPair::from_public_key(public_key).map_err(|_| "user nkey not valid")?;
    key.verify(nonce, &signature)
        .map_err(|_| "signature not verified")
}

/// A fresh nonce for an INFO, as nats-server makes it: 11 random bytes in base64url without
/// padding (15 characters).
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 11];
    // The kernel's random source; it cannot fail on Linux once the system is up, and a nonce
    // of zeros would still be one the client must sign.
    let _ = getrandom::fill(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{NkeyUser, User};

    fn connect(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            user: user.map(str::to_string),
            pass: pass.map(str::to_string),
            auth_token: token.map(str::to_string),
            ..ConnectOptions::default()
        }
    }

    fn granted(verdict: Verdict) -> Arc<Identity> {
        match verdict {
            Verdict::Granted(identity) => identity,
            other => panic!("not granted: {other:?}"),
        }
    }

    fn accounts(name: &str) -> AccountId {
        match name {
            "A" => AccountId(1),
            _ => AccountId(2),
        }
    }

    #[test]
    fn no_configuration_grants_everyone_the_global_account() {
        let auth = Authenticator::new(&Options::default(), None, accounts);
        assert!(!auth.required());
        let identity = granted(auth.check(&connect(None, None, None), b"", "", None));
        assert_eq!(identity.account, AccountId::GLOBAL);
    }

    #[test]
    fn a_token_is_compared_exactly() {
        let mut options = Options::default();
        options.auth.token = Some("s3cr3t".into());
        let auth = Authenticator::new(&options, None, accounts);
        assert!(auth.required());
        granted(auth.check(&connect(None, None, Some("s3cr3t")), b"", "", None));
        assert!(matches!(
            auth.check(&connect(None, None, Some("s3cr3")), b"", "", None),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            auth.check(
                &connect(Some("s3cr3t"), Some("s3cr3t"), None),
                b"",
                "",
                None
            ),
            Verdict::Denied(_)
        ));
    }

    #[test]
    fn users_are_found_by_name_and_land_in_their_account() {
        let mut options = Options::default();
        options.auth.users = Some(vec![
            User {
                username: "alice".into(),
                password: "pw".into(),
                account: Some("A".into()),
                ..User::default()
            },
            User {
                username: "bob".into(),
                password: "$2a$04$abcdefghijklmnopqrstuu".into(),
                ..User::default()
            },
        ]);
        let auth = Authenticator::new(&options, None, accounts);
        let alice = granted(auth.check(&connect(Some("alice"), Some("pw"), None), b"", "", None));
        assert_eq!(alice.account, AccountId(1));
        assert_eq!(alice.label, "User \"alice\"");
        assert!(matches!(
            auth.check(&connect(Some("alice"), Some("PW"), None), b"", "", None),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            auth.check(&connect(Some("carol"), Some("pw"), None), b"", "", None),
            Verdict::Denied(_)
        ));
        match auth.check(&connect(Some("bob"), Some("x"), None), b"", "", None) {
            Verdict::Bcrypt {
                candidate,
                identity,
                ..
            } => {
                assert_eq!(candidate, "x");
                assert_eq!(identity.account, AccountId::GLOBAL);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_auth_user_stands_in_for_a_client_without_credentials() {
        let mut options = Options::default();
        options.auth.users = Some(vec![User {
            username: "guest".into(),
            password: "pw".into(),
            account: Some("A".into()),
            ..User::default()
        }]);
        options.auth.no_auth_user = Some("guest".into());
        let auth = Authenticator::new(&options, None, accounts);
        assert_eq!(
            granted(auth.check(&connect(None, None, None), b"", "", None)).account,
            AccountId(1)
        );
        assert!(matches!(
            auth.check(&connect(Some("guest"), Some("no"), None), b"", "", None),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            auth.no_auth_user_verdict(None),
            Some(Verdict::Granted(_))
        ));
    }

    #[test]
    fn nkey_users_sign_the_nonce() {
        let user = nkeys::KeyPair::new_user();
        let mut options = Options::default();
        options.auth.nkeys = Some(vec![NkeyUser {
            nkey: user.public_key(),
            ..NkeyUser::default()
        }]);
        let auth = Authenticator::new(&options, None, accounts);
        assert!(auth.needs_nonce());
        let nonce = new_nonce();
        assert_eq!(nonce.len(), 15);
        let sig = data_encoding::BASE64URL_NOPAD.encode(&user.sign(nonce.as_bytes()).unwrap());
        let mut hello = connect(None, None, None);
        hello.nkey = Some(user.public_key());
        hello.sig = Some(sig.clone());
        granted(auth.check(&hello, nonce.as_bytes(), "", None));
        // Standard base64 is taken too.
        let std_sig = data_encoding::BASE64.encode(&user.sign(nonce.as_bytes()).unwrap());
        hello.sig = Some(std_sig);
        granted(auth.check(&hello, nonce.as_bytes(), "", None));
        // Another nonce, another key, no signature: refused.
        hello.sig = Some(sig);
        assert!(matches!(
            auth.check(&hello, b"another nonce", "", None),
            Verdict::Denied(Cow::Borrowed("signature not verified"))
        ));
        hello.nkey = Some(nkeys::KeyPair::new_user().public_key());
        assert!(matches!(
            auth.check(&hello, nonce.as_bytes(), "", None),
            Verdict::Denied(_)
        ));
        hello.nkey = Some(user.public_key());
        hello.sig = None;
        assert!(matches!(
            auth.check(&hello, nonce.as_bytes(), "", None),
            Verdict::Denied(Cow::Borrowed("signature missing"))
        ));
    }

    #[test]
    fn a_user_limited_to_other_connection_types_is_refused() {
        let mut options = Options::default();
        options.auth.users = Some(vec![User {
            username: "ws".into(),
            password: "pw".into(),
            allowed_connection_types: Some(["WEBSOCKET".to_string()].into()),
            ..User::default()
        }]);
        let auth = Authenticator::new(&options, None, accounts);
        assert!(matches!(
            auth.check(&connect(Some("ws"), Some("pw"), None), b"", "", None),
            Verdict::Denied(_)
        ));
    }

    /// What a certificate names, as `crate::tls::cert_identities` would read it.
    fn certificate(alternative: &[&str], subject: &str, names: &[&str]) -> CertIdentities {
        CertIdentities {
            alternative_names: alternative.iter().map(|n| n.to_string()).collect(),
            subject: DistinguishedName::parse(subject),
            subject_names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn verify_and_map_takes_the_user_the_certificate_names() {
        let user = |name: &str, account: Option<&str>| User {
            username: name.into(),
            account: account.map(str::to_string),
            ..User::default()
        };
        let mut options = Options::default();
        options.auth.users = Some(vec![
            user("app@acme.io", Some("A")),
            user("CN=app,OU=x,O=acme", None),
            user("O=acme,CN=reordered", Some("A")),
            User {
                password: "pw".into(),
                ..user("CN=with password", None)
            },
            User {
                allowed_connection_types: Some(["WEBSOCKET".to_string()].into()),
                ..user("ws@acme.io", None)
            },
        ]);
        let mut tls = crate::config::TlsOptions::new("c".into(), "k".into());
        tls.verify_and_map = true;
        options.tls = Some(tls);
        let auth = Authenticator::new(&options, None, accounts);
        assert!(auth.maps_certificates());
        let check = |connect: &ConnectOptions, certificate: &CertIdentities| {
            auth.check(connect, b"", "", Some(certificate))
        };
        let nobody = connect(None, None, None);

        // An alternative name first, whatever the CONNECT says (its user is ignored).
        let named = certificate(
            &["app@acme.io"],
            "CN=app,OU=x,O=acme",
            &["CN=app,OU=x,O=acme"],
        );
        let identity = granted(check(
            &connect(Some("CN=app,OU=x,O=acme"), None, None),
            &named,
        ));
        assert_eq!(
            (identity.user.as_str(), identity.account),
            ("app@acme.io", AccountId(1))
        );
        // The subject as a DN: equal, then reordered (`FromRawCertSubject` reads it last first).
        let subject = certificate(&["other@acme.io"], "CN=app,OU=x,O=acme", &["nope"]);
        assert_eq!(granted(check(&nobody, &subject)).user, "CN=app,OU=x,O=acme");
        let reordered = certificate(&[], "CN=reordered,O=acme", &[]);
        assert_eq!(
            granted(check(&nobody, &reordered)).user,
            "O=acme,CN=reordered"
        );
        // The subject as Go prints it, looked up as a name.
        let printed = certificate(&[], "CN=x,1.2=y", &["app@acme.io"]);
        assert_eq!(granted(check(&nobody, &printed)).user, "app@acme.io");
        // A mapped user's password is still compared with the CONNECT's.
        let with_password = certificate(&[], "CN=with password", &[]);
        assert!(matches!(check(&nobody, &with_password), Verdict::Denied(_)));
        granted(check(&connect(None, Some("pw"), None), &with_password));
        // Names no user, or only one not allowed on this connection type; no certificate.
        let unknown = certificate(&["who@acme.io", "ws@acme.io"], "CN=who", &["CN=who"]);
        assert!(matches!(check(&nobody, &unknown), Verdict::Denied(_)));
        assert!(matches!(
            auth.check(&connect(Some("app@acme.io"), None, None), b"", "", None),
            Verdict::Denied(_)
        ));

        // Without users, verify_and_map maps nothing.
        options.auth.users = None;
        options.auth.token = Some("t".into());
        let auth = Authenticator::new(&options, None, accounts);
        assert!(!auth.maps_certificates());
        granted(auth.check(&connect(None, None, Some("t")), b"", "", Some(&named)));
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(bcrypt_matches(&hash, "pw"));
        assert!(!bcrypt_matches(&hash, "pW"));
        assert!(!bcrypt_matches("$2a$04$garbage", "pw"));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
