//! Making NATS JWTs: operator, account, user and activation claims signed with nkeys key
//! pairs, as nats-io/jwt's `Encode` writes them (header `{"typ":"JWT","alg":"ed25519-nkey"}`,
//! `iss` the signer, `iat` now, `jti` the SHA-512/256 of the registered claims, `nats.type`
//! and `nats.version` 2). For tests and tools: natsring itself only reads JWTs.
//!
//! ```
//! use natsring::auth::jwt::{claims, creds, issue};
//! let operator = nkeys::KeyPair::new_operator();
//! let account = nkeys::KeyPair::new_account();
//! let user = nkeys::KeyPair::new_user();
//! let now = 1_700_000_000;
//! let operator_jwt = issue::operator(issue::operator_claims(&operator.public_key()), &operator, now);
//! let account_jwt = issue::account(issue::account_claims(&account.public_key()), &operator, now);
//! let user_jwt = issue::user(issue::user_claims(&user.public_key()), &account, now);
//! let file = creds::format(&user_jwt, &user.seed().unwrap());
//! # let _ = (operator_jwt, account_jwt, file);
//! ```

use serde::Serialize;
use sha2::{Digest, Sha512_256};

use super::claims::{
    AccountClaims, ActivationClaims, ClaimsData, GenericFields, OperatorClaims, OperatorLimits,
    UserClaims, UserPermissionLimits, ACCOUNT_CLAIM, ACTIVATION_CLAIM, CLAIMS_VERSION,
    OPERATOR_CLAIM, USER_CLAIM,
};
use super::BASE64URL_RAW;

/// An operator's claims about itself (sign them with the operator's key pair).
pub fn operator_claims(operator_public_key: &str) -> OperatorClaims {
    let mut claims = OperatorClaims::default();
    claims.data.subject = operator_public_key.to_string();
    claims
}

/// An account's claims as `jwt.NewAccountClaims` starts them: limits unlimited.
pub fn account_claims(account_public_key: &str) -> AccountClaims {
    let mut claims = AccountClaims::default();
    claims.data.subject = account_public_key.to_string();
    claims.nats.limits = OperatorLimits::unlimited();
    claims
}

/// A user's claims as `jwt.NewUserClaims` starts them: no permissions, limits unlimited.
/// (A user for a scoped signing key needs `nats.limits` left empty: set it to
/// `UserPermissionLimits::default()`.)
pub fn user_claims(user_public_key: &str) -> UserClaims {
    let mut claims = UserClaims::default();
    claims.data.subject = user_public_key.to_string();
    claims.nats.limits = UserPermissionLimits::unlimited();
    claims
}

/// Signs operator claims.
pub fn operator(mut claims: OperatorClaims, signer: &nkeys::KeyPair, now: i64) -> String {
    stamp(
        &mut claims.data,
        &mut claims.nats.generic,
        OPERATOR_CLAIM,
        signer,
        now,
    );
    sign(&claims, signer)
}

/// Signs account claims (with the operator's key or one of its signing keys).
pub fn account(mut claims: AccountClaims, signer: &nkeys::KeyPair, now: i64) -> String {
    stamp(
        &mut claims.data,
        &mut claims.nats.generic,
        ACCOUNT_CLAIM,
        signer,
        now,
    );
    sign(&claims, signer)
}

/// Signs user claims (with the account's key, or a signing key: then set
/// `nats.issuer_account`).
pub fn user(mut claims: UserClaims, signer: &nkeys::KeyPair, now: i64) -> String {
    stamp(
        &mut claims.data,
        &mut claims.nats.generic,
        USER_CLAIM,
        signer,
        now,
    );
    sign(&claims, signer)
}

/// Signs activation claims (with the exporting account's key).
pub fn activation(mut claims: ActivationClaims, signer: &nkeys::KeyPair, now: i64) -> String {
    stamp(
        &mut claims.data,
        &mut claims.nats.generic,
        ACTIVATION_CLAIM,
        signer,
        now,
    );
    sign(&claims, signer)
}

/// Signs a nonce as a client does for CONNECT's `sig` (base64url, no padding).
pub fn sign_nonce(user: &nkeys::KeyPair, nonce: &[u8]) -> String {
    BASE64URL_RAW.encode(&user.sign(nonce).expect("a key pair with a seed signs"))
}

/// Sets what `Encode` sets: the issuer, the issue time (unless the caller set one, for
/// revocation tests), the type and version, and the `jti`.
fn stamp(
    data: &mut ClaimsData,
    generic: &mut GenericFields,
    claim_type: &str,
    signer: &nkeys::KeyPair,
    now: i64,
) {
    data.issuer = signer.public_key();
    if data.issued_at == 0 {
        data.issued_at = now;
    }
    data.id.clear();
    let registered = serde_json::to_vec(data).expect("claims serialize");
    data.id = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(&registered));
    generic.claim_type = claim_type.to_string();
    generic.version = CLAIMS_VERSION;
}

fn sign<T: Serialize>(claims: &T, signer: &nkeys::KeyPair) -> String {
    let header = BASE64URL_RAW.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = BASE64URL_RAW.encode(&serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("{header}.{payload}");
    let signature = signer
        .sign(signed.as_bytes())
        .expect("a key pair with a seed signs");
    format!("{signed}.{}", BASE64URL_RAW.encode(&signature))
}
