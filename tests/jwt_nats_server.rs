//! The JWTs `natsring::auth::jwt::issue` makes, checked against the reference nats-server and
//! the natsring server in operator mode (`operator`, `resolver: MEMORY`, `resolver_preload`): each user connects
//! over a raw socket with its nonce signature, and nats-server's verdict (PONG, or
//! `Authorization Violation`) must be the one `auth::jwt::authenticate` gives for the same
//! JWT and nonce, and natsring started on the same file must answer each with the same first
//! line (`PONG` or the `-ERR`).

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nkeys::KeyPair;

use natsring::auth::jwt::claims::{self, UserPermissionLimits, UserScope};
use natsring::auth::jwt::connect::ConnectAttempt;
use natsring::auth::jwt::{authenticate, issue, MemoryResolver, TrustedOperators};

use common::{start_natsring_with_config, start_reference_with_config, Raw};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nats_server_available() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A user to try: its JWT, the key that signs the nonce (`None`: send no `sig`), and
/// whether it must be let in.
struct Case {
    name: &'static str,
    jwt: String,
    nonce_signer: Option<KeyPair>,
    accepted: bool,
}

/// The CONNECT's verdict from nats-server: true when it answers the PING.
fn server_accepts(port: u16, case: &Case) -> (bool, String) {
    let mut raw = Raw::connect(port);
    let info = raw.read_until(b"\r\n", Duration::from_secs(10));
    let info = String::from_utf8(info).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(info.trim().strip_prefix("INFO ").unwrap()).unwrap();
    let nonce = json["nonce"]
        .as_str()
        .expect("INFO has a nonce in operator mode");
    let mut connect = serde_json::json!({
        "verbose": false, "pedantic": false, "protocol": 1, "jwt": case.jwt,
    });
    if let Some(signer) = &case.nonce_signer {
        connect["sig"] = issue::sign_nonce(signer, nonce.as_bytes()).into();
    }
    raw.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    let (out, _closed) = raw.read_until_or_close(b"\r\n", Duration::from_secs(10));
    let out = String::from_utf8_lossy(&out).into_owned();
    (out.starts_with("PONG"), out)
}

#[test]
fn nats_server_agrees_with_our_jwts_and_verdicts() {
    assert!(
        nats_server_available(),
        "nats-server 2.15.1 must be on PATH (scripts/test.sh installs it)"
    );
    let now = now();
    let operator = KeyPair::new_operator();
    let operator_signer = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let signing_key = KeyPair::new_account();
    let scoped_key = KeyPair::new_account();
    let stranger_operator = KeyPair::new_operator();
    let stranger_account = KeyPair::new_account();
    let revoked_user = KeyPair::new_user();

    let mut operator_claims = issue::operator_claims(&operator.public_key());
    operator_claims.data.name = "natsring-test".into();
    operator_claims.nats.signing_keys = vec![operator_signer.public_key()];
    operator_claims.nats.system_account = system.public_key();
    let operator_jwt = issue::operator(operator_claims, &operator, now);

    let mut system_claims = issue::account_claims(&system.public_key());
    system_claims.data.name = "SYS".into();
    let system_jwt = issue::account(system_claims, &operator, now);

    let mut account_claims = issue::account_claims(&account.public_key());
    account_claims.data.name = "APP".into();
    account_claims
        .nats
        .signing_keys
        .0
        .insert(signing_key.public_key(), None);
    let mut template = UserPermissionLimits::unlimited();
    template.permissions.subscribe.allow = vec!["users.{{name()}}.>".into()];
    account_claims.nats.signing_keys.0.insert(
        scoped_key.public_key(),
        Some(UserScope {
            kind: claims::USER_SCOPE_KIND.into(),
            key: scoped_key.public_key(),
            role: "scoped".into(),
            template,
            description: String::new(),
        }),
    );
    account_claims
        .nats
        .revocations
        .insert(revoked_user.public_key(), now - 5);
    account_claims.nats.exports.push(claims::Export {
        subject: "svc.>".into(),
        export_type: claims::ExportType::Service,
        ..Default::default()
    });
    // Signed by the operator's signing key, not its identity key.
    let account_jwt = issue::account(account_claims, &operator_signer, now);

    // An account signed by an operator the server does not trust.
    let stranger_jwt = issue::account(
        issue::account_claims(&stranger_account.public_key()),
        &stranger_operator,
        now,
    );

    let user = |signer: &KeyPair, edit: &dyn Fn(&mut claims::UserClaims)| {
        let key = KeyPair::new_user();
        let mut claims = issue::user_claims(&key.public_key());
        edit(&mut claims);
        (issue::user(claims, signer, now), key)
    };
    let mut cases = Vec::new();
    let mut case = |name, (jwt, key): (String, KeyPair), sign: bool, accepted| {
        cases.push(Case {
            name,
            jwt,
            nonce_signer: sign.then_some(key),
            accepted,
        })
    };
    let account_key = account.public_key();
    case("plain user", user(&account, &|_| {}), true, true);
    case(
        "user with permissions and expiry",
        user(&account, &|u| {
            u.data.expires = now + 3600;
            u.nats.limits.permissions.publish.allow = vec!["orders.>".into()];
            u.nats.limits.permissions.response = Some(claims::ResponsePermission {
                max_msgs: 1,
                expires_nanos: 1_000_000_000,
            });
        }),
        true,
        true,
    );
    case(
        "user of a signing key",
        user(&signing_key, &|u| {
            u.nats.issuer_account = account_key.clone()
        }),
        true,
        true,
    );
    case(
        "user of a scoped signing key",
        user(&scoped_key, &|u| {
            u.nats.issuer_account = account_key.clone();
            u.nats.limits = UserPermissionLimits::default();
            u.data.name = "carol".into();
        }),
        true,
        true,
    );
    case(
        "scoped user with its own permissions",
        user(&scoped_key, &|u| {
            u.nats.issuer_account = account_key.clone()
        }),
        true,
        false,
    );
    case(
        "bearer user without a signature",
        user(&account, &|u| u.nats.limits.bearer_token = true),
        false,
        true,
    );
    case(
        "user without a signature",
        user(&account, &|_| {}),
        false,
        false,
    );
    case(
        "expired user",
        user(&account, &|u| u.data.expires = now - 10),
        true,
        false,
    );
    case(
        "user valid only later",
        user(&account, &|u| u.data.not_before = now + 3600),
        true,
        false,
    );
    let revoked_key = revoked_user.public_key();
    let mut revoked_claims = issue::user_claims(&revoked_key);
    revoked_claims.data.issued_at = now - 10;
    case(
        "revoked user",
        (
            issue::user(revoked_claims, &account, now),
            KeyPair::from_seed(&revoked_user.seed().unwrap()).unwrap(),
        ),
        true,
        false,
    );
    case(
        "user issued after its revocation",
        (
            issue::user(issue::user_claims(&revoked_key), &account, now),
            KeyPair::from_seed(&revoked_user.seed().unwrap()).unwrap(),
        ),
        true,
        true,
    );
    case(
        "user signed by a key the account does not list",
        user(&KeyPair::new_account(), &|u| {
            u.nats.issuer_account = account_key.clone()
        }),
        true,
        false,
    );
    case(
        "user of an untrusted account",
        user(&stranger_account, &|_| {}),
        true,
        false,
    );
    case(
        "user only for websockets",
        user(&account, &|u| {
            u.nats.limits.allowed_connection_types = vec!["WEBSOCKET".into()]
        }),
        true,
        false,
    );
    case(
        "user from another network",
        user(&account, &|u| u.nats.limits.src = vec!["10.0.0.0/8".into()]),
        true,
        false,
    );
    // A signature made with another key than the user's.
    let (jwt, _) = user(&account, &|_| {});
    cases.push(Case {
        name: "nonce signed by another key",
        jwt,
        nonce_signer: Some(KeyPair::new_user()),
        accepted: false,
    });

    let config = format!(
        "operator: {operator_jwt}\n\
         system_account: {system}\n\
         resolver: MEMORY\n\
         resolver_preload: {{\n  {system}: {system_jwt}\n  {app}: {account_jwt}\n  {stranger}: {stranger_jwt}\n}}\n",
        system = system.public_key(),
        app = account.public_key(),
        stranger = stranger_account.public_key(),
    );
    let server = start_reference_with_config(&config);
    let natsring = start_natsring_with_config(&config, &[]);

    let operators = TrustedOperators::from_jwts(&[operator_jwt.as_str()], now).unwrap();
    let mut resolver = MemoryResolver::new([
        (system.public_key(), system_jwt.clone()),
        (account.public_key(), account_jwt.clone()),
        (stranger_account.public_key(), stranger_jwt.clone()),
    ]);
    let mut failures = Vec::new();
    for case in &cases {
        let (server_verdict, output) = server_accepts(server.port, case);
        // Our verdict for the same JWT, with a nonce of our own.
        let nonce = b"our-own-nonce";
        let signature = case
            .nonce_signer
            .as_ref()
            .map(|signer| issue::sign_nonce(signer, nonce));
        let attempt = ConnectAttempt {
            jwt: Some(&case.jwt),
            signature: signature.as_deref(),
            nonce,
            connection_type: natsring::auth::CONNECTION_TYPE_STANDARD,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            now,
        };
        let ours = authenticate(&attempt, |key| resolver.lookup(&operators, key, now));
        let (natsring_verdict, natsring_output) = server_accepts(natsring.port, case);
        if server_verdict != case.accepted
            || ours.is_ok() != case.accepted
            || natsring_verdict != case.accepted
            || natsring_output.lines().next() != output.lines().next()
        {
            failures.push(format!(
                "{}: expected accepted={}, nats-server said {output:?}, the engine {ours:?}, \
                 the natsring server {natsring_output:?}",
                case.name, case.accepted
            ));
        }
        if !case.accepted && !output.contains("Authorization Violation") {
            failures.push(format!("{}: nats-server said {output:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
