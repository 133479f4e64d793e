//! The chain of trust end to end: JWTs made by `issue`, checked by `decode`, `trust` and
//! `connect`, each refusal nats-server makes provoked once.

use std::collections::BTreeMap;
use std::time::Duration;

use nkeys::KeyPair;

use super::claims::{self, ExportType, UserPermissionLimits, UserScope};
use super::connect::{authenticate, ConnectAttempt};
use super::trust::{MemoryResolver, TrustedOperators};
use super::{decode, issue, JwtError};
use crate::account::{ExportKind, ResponseType};

const NOW: i64 = 1_700_000_000;
const NONCE: &[u8] = b"mT3bRrTOtx6ENt0";

/// An operator, one account signed by it, and what the tests vary.
struct World {
    operator: KeyPair,
    account: KeyPair,
    operators: TrustedOperators,
    resolver: MemoryResolver,
}

impl World {
    fn new(edit: impl FnOnce(&mut claims::AccountClaims)) -> World {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let operator_jwt = issue::operator(
            issue::operator_claims(&operator.public_key()),
            &operator,
            NOW,
        );
        let operators = TrustedOperators::from_jwts(&[operator_jwt], NOW).unwrap();
        let mut claims = issue::account_claims(&account.public_key());
        edit(&mut claims);
        let account_jwt = issue::account(claims, &operator, NOW);
        let resolver = MemoryResolver::new([(account.public_key(), account_jwt)]);
        World {
            operator,
            account,
            operators,
            resolver,
        }
    }

    fn connect(
        &mut self,
        jwt: &str,
        signature: Option<&str>,
    ) -> Result<super::AuthenticatedUser, JwtError> {
        let attempt = ConnectAttempt {
            jwt: Some(jwt),
            signature,
            nonce: NONCE,
            connection_type: crate::auth::CONNECTION_TYPE_STANDARD,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            now: NOW,
        };
        let (resolver, operators) = (&mut self.resolver, &self.operators);
        authenticate(&attempt, |key| resolver.lookup(operators, key, NOW))
    }

    /// A user of the account, signed by `signer`, connecting with a good nonce signature.
    fn connect_user(
        &mut self,
        signer: &KeyPair,
        edit: impl FnOnce(&mut claims::UserClaims),
    ) -> Result<super::AuthenticatedUser, JwtError> {
        let user = KeyPair::new_user();
        let mut claims = issue::user_claims(&user.public_key());
        edit(&mut claims);
        let jwt = issue::user(claims, signer, NOW);
        let signature = issue::sign_nonce(&user, NONCE);
        self.connect(&jwt, Some(&signature))
    }
}

#[test]
fn a_user_of_a_trusted_account_connects() {
    let mut world = World::new(|_| {});
    let account = world.account.public_key();
    let signer = KeyPair::from_seed(&world.account.seed().unwrap()).unwrap();
    let user = world
        .connect_user(&signer, |user| {
            user.data.name = "alice".into();
            user.data.expires = NOW + 60;
            user.nats.limits.permissions.publish.allow = vec!["orders.>".into()];
        })
        .unwrap();
    assert_eq!(user.account, account);
    assert_eq!(user.name, "alice");
    assert_eq!(user.expires, Some(NOW + 60));
    assert_eq!(user.disconnect_after, Some(Duration::from_secs(60)));
    assert_eq!(user.max_subscriptions, -1);
    assert!(!user.default_permissions);
    let publish = user.permissions.unwrap().publish.unwrap();
    assert_eq!(publish.allow, Some(vec!["orders.>".to_string()]));
    assert_eq!(user.signing_key, None);
}

#[test]
fn tampered_and_mistyped_jwts_are_refused() {
    let world = World::new(|_| {});
    let user = KeyPair::new_user();
    let jwt = issue::user(issue::user_claims(&user.public_key()), &world.account, NOW);
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&super::BASE64URL_RAW.decode(parts[1].as_bytes()).unwrap()).unwrap();
    payload["nats"]["bearer_token"] = true.into();
    parts[1] = super::BASE64URL_RAW.encode(&serde_json::to_vec(&payload).unwrap());
    assert_eq!(
        decode::<claims::UserClaims>(&parts.join(".")).unwrap_err(),
        JwtError::BadSignature
    );
    assert!(matches!(
        decode::<claims::AccountClaims>(&jwt).unwrap_err(),
        JwtError::WrongType { .. }
    ));
    assert!(matches!(
        decode::<claims::UserClaims>("a.b").unwrap_err(),
        JwtError::Malformed(_)
    ));
    // A user JWT signed by a user key: the issuer's kind is wrong.
    let jwt = issue::user(issue::user_claims(&user.public_key()), &user, NOW);
    assert!(matches!(
        decode::<claims::UserClaims>(&jwt).unwrap_err(),
        JwtError::BadIssuerKey(_)
    ));
}

#[test]
fn expired_and_premature_users_are_refused() {
    let mut world = World::new(|_| {});
    let signer = KeyPair::from_seed(&world.account.seed().unwrap()).unwrap();
    assert_eq!(
        world
            .connect_user(&signer, |u| u.data.expires = NOW - 1)
            .unwrap_err(),
        JwtError::Expired
    );
    assert_eq!(
        world
            .connect_user(&signer, |u| u.data.not_before = NOW + 10)
            .unwrap_err(),
        JwtError::NotYetValid
    );
    // Expiring this very second is still valid (Go: expired when now > exp).
    assert!(world
        .connect_user(&signer, |u| u.data.expires = NOW)
        .is_ok());
}

#[test]
fn accounts_must_come_from_a_trusted_operator() {
    let mut world = World::new(|_| {});
    let stranger = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let jwt = issue::account(issue::account_claims(&account.public_key()), &stranger, NOW);
    assert_eq!(
        world.operators.verify_account(&jwt, NOW).unwrap_err(),
        JwtError::UntrustedAccountIssuer
    );
    // A user of an account nobody preloaded.
    let user = KeyPair::new_user();
    let user_jwt = issue::user(issue::user_claims(&user.public_key()), &account, NOW);
    let signature = issue::sign_nonce(&user, NONCE);
    assert!(matches!(
        world.connect(&user_jwt, Some(&signature)).unwrap_err(),
        JwtError::AccountNotFound(_)
    ));
    // An expired account JWT.
    let jwt = issue::account(
        {
            let mut claims = issue::account_claims(&account.public_key());
            claims.data.expires = NOW - 5;
            claims
        },
        &world.operator,
        NOW,
    );
    assert_eq!(
        world.operators.verify_account(&jwt, NOW).unwrap_err(),
        JwtError::Expired
    );
}

#[test]
fn operator_signing_keys_and_strict_usage() {
    let operator = KeyPair::new_operator();
    let operator_signer = KeyPair::new_operator();
    let mut claims = issue::operator_claims(&operator.public_key());
    claims.nats.signing_keys = vec![operator_signer.public_key()];
    let account = KeyPair::new_account();
    let account_jwt = issue::account(
        issue::account_claims(&account.public_key()),
        &operator_signer,
        NOW,
    );
    let by_identity = issue::account(issue::account_claims(&account.public_key()), &operator, NOW);

    let relaxed =
        TrustedOperators::from_jwts(&[issue::operator(claims.clone(), &operator, NOW)], NOW)
            .unwrap();
    let verified = relaxed.verify_account(&account_jwt, NOW).unwrap();
    assert!(verified.signing_keys.contains_key(&account.public_key()));
    assert!(relaxed.verify_account(&by_identity, NOW).is_ok());

    claims.nats.strict_signing_key_usage = true;
    let strict =
        TrustedOperators::from_jwts(&[issue::operator(claims, &operator, NOW)], NOW).unwrap();
    assert_eq!(
        strict.verify_account(&by_identity, NOW).unwrap_err(),
        JwtError::UntrustedAccountIssuer
    );
    // Under a strict operator the account's identity key may not sign users.
    let verified = strict.verify_account(&account_jwt, NOW).unwrap();
    assert!(!verified.signing_keys.contains_key(&account.public_key()));
}

#[test]
fn users_from_account_signing_keys_need_issuer_account() {
    let signing_key = KeyPair::new_account();
    let mut world = World::new(|account| {
        account
            .nats
            .signing_keys
            .0
            .insert(signing_key.public_key(), None);
    });
    let account = world.account.public_key();
    let user = world
        .connect_user(&signing_key, |u| u.nats.issuer_account = account.clone())
        .unwrap();
    assert_eq!(user.account, account);
    assert_eq!(user.signing_key, Some(signing_key.public_key()));
    // Without issuer_account the signing key is taken for the account, which is unknown.
    assert!(matches!(
        world.connect_user(&signing_key, |_| {}).unwrap_err(),
        JwtError::AccountNotFound(_)
    ));
    // A key the account does not list.
    let stranger = KeyPair::new_account();
    assert_eq!(
        world
            .connect_user(&stranger, |u| u.nats.issuer_account = account.clone())
            .unwrap_err(),
        JwtError::UnknownUserIssuer
    );
}

#[test]
fn scoped_signing_keys_impose_their_template() {
    let scoped = KeyPair::new_account();
    let mut template = UserPermissionLimits::unlimited();
    template.permissions.subscribe.allow = vec!["users.{{name()}}.>".into()];
    template.subs = 10;
    let scope = UserScope {
        kind: claims::USER_SCOPE_KIND.into(),
        key: scoped.public_key(),
        role: "dev".into(),
        template,
        description: String::new(),
    };
    let mut world = World::new(|account| {
        account
            .nats
            .signing_keys
            .0
            .insert(scoped.public_key(), Some(scope));
    });
    let account = world.account.public_key();
    let user = world
        .connect_user(&scoped, |u| {
            u.nats.issuer_account = account.clone();
            u.nats.limits = UserPermissionLimits::default();
            u.data.name = "bob".into();
        })
        .unwrap();
    assert_eq!(user.max_subscriptions, 10);
    let subscribe = user.permissions.unwrap().subscribe.unwrap();
    assert_eq!(subscribe.allow, Some(vec!["users.bob.>".to_string()]));
    // A scoped user may not bring permissions or limits of its own.
    assert_eq!(
        world
            .connect_user(&scoped, |u| u.nats.issuer_account = account.clone())
            .unwrap_err(),
        JwtError::ScopedUserHasPermissions
    );
}

#[test]
fn revocations_apply_at_or_after_issue_time() {
    let revoked_user = KeyPair::new_user();
    let other_user = KeyPair::new_user();
    let revoked_key = revoked_user.public_key();
    let mut world = World::new(|account| {
        account.nats.revocations.insert(revoked_key.clone(), NOW);
    });
    let connect = |world: &mut World, user: &KeyPair, issued_at: i64| {
        let mut claims = issue::user_claims(&user.public_key());
        claims.data.issued_at = issued_at;
        let jwt = issue::user(claims, &world.account, NOW);
        world.connect(&jwt, Some(&issue::sign_nonce(user, NONCE)))
    };
    assert_eq!(
        connect(&mut world, &revoked_user, NOW).unwrap_err(),
        JwtError::Revoked
    );
    assert!(connect(&mut world, &revoked_user, NOW + 1).is_ok());
    assert!(connect(&mut world, &other_user, NOW).is_ok());

    let mut world = World::new(|account| {
        account.nats.revocations.insert("*".into(), NOW);
    });
    assert_eq!(
        connect(&mut world, &other_user, NOW - 1).unwrap_err(),
        JwtError::Revoked
    );
    assert!(connect(&mut world, &other_user, NOW + 1).is_ok());
}

#[test]
fn the_nonce_signature_is_checked_unless_bearer() {
    let mut world = World::new(|_| {});
    let user = KeyPair::new_user();
    let jwt = issue::user(issue::user_claims(&user.public_key()), &world.account, NOW);
    assert_eq!(
        world.connect(&jwt, None).unwrap_err(),
        JwtError::SignatureMissing
    );
    let wrong = issue::sign_nonce(&user, b"another nonce");
    assert_eq!(
        world.connect(&jwt, Some(&wrong)).unwrap_err(),
        JwtError::SignatureNotVerified
    );
    assert_eq!(
        world.connect(&jwt, Some("!!!")).unwrap_err(),
        JwtError::SignatureNotBase64
    );
    // Standard base64 (padded) is accepted as nats-server falls back to it.
    let standard = super::BASE64_STD.encode(&user.sign(NONCE).unwrap());
    assert!(world.connect(&jwt, Some(&standard)).is_ok());

    let mut claims = issue::user_claims(&user.public_key());
    claims.nats.limits.bearer_token = true;
    let bearer = issue::user(claims, &world.account, NOW);
    assert!(world.connect(&bearer, None).unwrap().bearer);

    let mut world = World::new(|account| account.nats.limits.disallow_bearer = true);
    let mut claims = issue::user_claims(&user.public_key());
    claims.nats.limits.bearer_token = true;
    let bearer = issue::user(claims, &world.account, NOW);
    assert_eq!(
        world.connect(&bearer, None).unwrap_err(),
        JwtError::BearerDisallowed
    );
}

#[test]
fn connection_types_and_sources_restrict_users() {
    let mut world = World::new(|_| {});
    let signer = KeyPair::from_seed(&world.account.seed().unwrap()).unwrap();
    assert_eq!(
        world
            .connect_user(&signer, |u| u.nats.limits.allowed_connection_types =
                vec!["WEBSOCKET".into()])
            .unwrap_err(),
        JwtError::ConnectionTypeNotAllowed
    );
    assert!(world
        .connect_user(&signer, |u| u.nats.limits.allowed_connection_types =
            vec!["standard".into()])
        .is_ok());
    assert_eq!(
        world
            .connect_user(&signer, |u| u.nats.limits.src = vec!["10.0.0.0/8".into()])
            .unwrap_err(),
        JwtError::SourceNotAllowed
    );
    assert!(world
        .connect_user(&signer, |u| u.nats.limits.src = vec!["127.0.0.0/8".into()])
        .is_ok());
}

#[test]
fn account_claims_become_the_account_model() {
    let exporter = KeyPair::new_account();
    let world = World::new(|account| {
        account.data.name = "ACME".into();
        account.nats.limits.conn = 5;
        account.nats.limits.subs = 100;
        account.nats.limits.payload = 1024;
        account.nats.limits.data = 4096;
        account.nats.exports.push(claims::Export {
            subject: "svc.>".into(),
            export_type: ExportType::Service,
            token_req: true,
            response_type: "Stream".into(),
            response_threshold: 5_000_000_000,
            ..Default::default()
        });
        account.nats.imports.push(claims::Import {
            subject: "events.>".into(),
            account: exporter.public_key(),
            local_subject: "acme.events.>".into(),
            import_type: ExportType::Stream,
            ..Default::default()
        });
        account.nats.mappings.insert(
            "in".into(),
            vec![claims::WeightedMapping {
                subject: "out".into(),
                weight: 0,
                cluster: String::new(),
            }],
        );
        account.nats.default_permissions.subscribe.deny = vec!["secret.>".into()];
    });
    let mut resolver = world.resolver.clone();
    let account = resolver
        .lookup(&world.operators, &world.account.public_key(), NOW)
        .unwrap();
    let config = &account.config;
    assert_eq!(config.name, world.account.public_key());
    assert_eq!(account.name, "ACME");
    assert_eq!(
        (
            config.limits.max_connections,
            config.limits.max_subscriptions
        ),
        (5, 100)
    );
    assert_eq!(
        (config.limits.max_payload, config.limits.max_data),
        (1024, 4096)
    );
    let export = &config.exports[0];
    assert_eq!(export.kind, ExportKind::Service);
    assert_eq!(export.response_type, ResponseType::Stream);
    assert_eq!(export.response_threshold, Some(Duration::from_secs(5)));
    assert_eq!(export.accounts, Some(vec![]));
    assert!(account.export_auth[0].token_required);
    let import = &config.imports[0];
    assert_eq!(
        (import.subject.as_str(), import.to.as_deref(), import.prefix),
        ("events.>", Some("acme.events.>"), false)
    );
    assert_eq!(config.mappings[0].destinations[0].weight, 100);
    let defaults = config.default_permissions.as_ref().unwrap();
    assert_eq!(
        defaults.subscribe.as_ref().unwrap().deny,
        Some(vec!["secret.>".to_string()])
    );
}

#[test]
fn default_permissions_apply_to_users_without_their_own() {
    let mut world = World::new(|account| {
        account.nats.default_permissions.publish.deny = vec![">".into()];
    });
    let signer = KeyPair::from_seed(&world.account.seed().unwrap()).unwrap();
    let user = world.connect_user(&signer, |_| {}).unwrap();
    assert!(user.default_permissions);
    assert_eq!(
        user.permissions.unwrap().publish.unwrap().deny,
        Some(vec![">".to_string()])
    );
}

#[test]
fn activation_tokens_grant_private_exports() {
    let operator = KeyPair::new_operator();
    let operators = TrustedOperators::from_jwts(
        &[issue::operator(
            issue::operator_claims(&operator.public_key()),
            &operator,
            NOW,
        )],
        NOW,
    )
    .unwrap();
    let exporter = KeyPair::new_account();
    let importer = KeyPair::new_account();
    let mut exporter_claims = issue::account_claims(&exporter.public_key());
    exporter_claims.nats.exports.push(claims::Export {
        subject: "private.>".into(),
        export_type: ExportType::Stream,
        token_req: true,
        ..Default::default()
    });
    let activation = |subject: &str, expires: i64| {
        let mut claims = claims::ActivationClaims::default();
        claims.data.subject = importer.public_key();
        claims.data.expires = expires;
        claims.nats.import_subject = subject.into();
        claims.nats.import_type = ExportType::Stream;
        issue::activation(claims, &exporter, NOW)
    };
    let import = |token: String| claims::Import {
        subject: "private.orders".into(),
        account: exporter.public_key(),
        token,
        import_type: ExportType::Stream,
        ..Default::default()
    };
    let exporter_account = operators
        .verify_account(
            &issue::account(exporter_claims.clone(), &operator, NOW),
            NOW,
        )
        .unwrap();
    let importer_key = importer.public_key();
    assert!(exporter_account
        .check_activation(
            &importer_key,
            &import(activation("private.>", 0)),
            Some(0),
            NOW
        )
        .is_ok());
    assert!(exporter_account
        .check_activation(
            &importer_key,
            &import(activation("other.>", 0)),
            Some(0),
            NOW
        )
        .is_err());
    assert!(exporter_account
        .check_activation(
            &importer_key,
            &import(activation("private.>", NOW)),
            Some(0),
            NOW
        )
        .is_err());
    assert!(exporter_account
        .check_activation(&importer_key, &import(String::new()), Some(0), NOW)
        .is_err());
    // For another importer.
    assert!(exporter_account
        .check_activation(
            &exporter.public_key(),
            &import(activation("private.>", 0)),
            Some(0),
            NOW
        )
        .is_err());
    // Revoked by the export.
    exporter_claims.nats.exports[0].revocations = BTreeMap::from([(importer.public_key(), NOW)]);
    let exporter_account = operators
        .verify_account(&issue::account(exporter_claims, &operator, NOW), NOW)
        .unwrap();
    assert_eq!(
        exporter_account
            .check_activation(
                &importer_key,
                &import(activation("private.>", 0)),
                Some(0),
                NOW
            )
            .unwrap_err(),
        JwtError::Revoked
    );
}

#[test]
fn claims_survive_a_round_trip_through_json() {
    let scoped = KeyPair::new_account();
    let mut claims = issue::account_claims(&KeyPair::new_account().public_key());
    claims.nats.signing_keys.0.insert(
        scoped.public_key(),
        Some(UserScope {
            kind: claims::USER_SCOPE_KIND.into(),
            key: scoped.public_key(),
            ..Default::default()
        }),
    );
    claims
        .nats
        .signing_keys
        .0
        .insert(KeyPair::new_account().public_key(), None);
    let operator = KeyPair::new_operator();
    let jwt = issue::account(claims.clone(), &operator, NOW);
    let decoded = decode::<claims::AccountClaims>(&jwt).unwrap().into_inner();
    assert_eq!(decoded.nats.signing_keys.0.len(), 2);
    assert_eq!(decoded.nats.limits, claims.nats.limits);
    assert_eq!(decoded.data.issuer, operator.public_key());
    assert_eq!(decoded.nats.generic.version, 2);
    assert_eq!(decoded.data.id.len(), 52);
}
