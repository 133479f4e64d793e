//! Operator mode (decentralised authentication, as `nsc` sets it up): NATS JWTs decoded,
//! verified and turned into what the server uses. Pure: no sockets, no clock (every check
//! takes `now`, Unix seconds), no logging; the server calls in and logs the reasons.
//!
//! The chain of trust: the configured operator JWTs name the trusted keys (the operator's
//! own, unless `strict_signing_key_usage`, and its signing keys); an account JWT must be
//! signed by one of them; a user JWT by the account or one of the account's signing keys
//! (then `issuer_account` names the account); a CONNECT carries the user JWT and, unless the
//! user is a bearer, the server's nonce signed with the user's key.
//!
//! Files:
//! - `claims`: the JSON payloads (serde types), field for field as nats-io/jwt v2.
//! - this file: the compact form (`header.payload.signature`), signatures, the checks Go's
//!   `Validate` makes, and the errors.
//! - `trust`: operators, accounts (-> `crate::account::AccountConfig`), the memory resolver,
//!   activation tokens.
//! - `connect`: the connect-time check (`authenticate`), users (-> `crate::auth::Permissions`).
//! - `template`: scoped signing keys' permission templates (`{{name()}}`, `{{tag(x)}}`, ...).
//! - `creds`: `.creds` files.
//! - `issue`: making JWTs (tests, tools): operator, account, user, activation.
//!
//! Invariant: a value of `Verified<T>` only comes out of `decode`, after the signature, the
//! header, the claim type and the issuer's key type were checked.

pub mod claims;
pub mod connect;
pub mod creds;
pub mod issue;
pub mod template;
pub mod trust;

use std::fmt;
use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};
use serde::de::DeserializeOwned;

pub use connect::{authenticate, authenticate_user, AuthenticatedUser, ConnectAttempt};
pub use trust::{MemoryResolver, TrustedOperators, VerifiedAccount};

/// The largest JWT nats-io/jwt decodes (`MaxTokenSize`).
pub const TOKEN_BYTES_MAX: usize = 1024 * 1024;

/// Why a JWT, or a connection presenting one, was refused. The `Display` text is what
/// nats-server logs at debug level (the client only sees `Authorization Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, bad JSON, bad header, too large.
    Malformed(String),
    /// A version newer than 2, or version 1 (pre-2.0 JWTs, which natsring does not read).
    UnsupportedVersion(i64),
    /// The `nats.type` is not the one asked for.
    WrongType {
        expected: &'static str,
        found: String,
    },
    /// The issuer is not a public key of a type allowed to sign this claim.
    BadIssuerKey(String),
    /// The signature does not verify with the issuer's key.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
    /// A blocking validation issue (Go's `vr.IsBlocking`), described.
    Invalid(String),
    /// An account JWT not signed by a trusted operator key.
    UntrustedAccountIssuer,
    /// An account JWT whose subject is not the account looked up.
    AccountMismatch,
    /// No account JWT for the account the user names.
    AccountNotFound(String),
    /// The CONNECT has no JWT.
    JwtRequired,
    /// The user's issuer is neither the account nor one of its signing keys.
    UnknownUserIssuer,
    /// A scoped signing key issued a user that carries permissions or limits of its own.
    ScopedUserHasPermissions,
    /// A scope template expanded to something invalid.
    TemplateInvalid(String),
    /// The account JWT has expired.
    AccountExpired,
    /// A bearer user in an account that disallows bearer tokens.
    BearerDisallowed,
    /// The user may not connect with this connection type.
    ConnectionTypeNotAllowed,
    /// No `sig` in the CONNECT of a user that must sign the nonce.
    SignatureMissing,
    /// `sig` is neither base64url nor standard base64.
    SignatureNotBase64,
    /// The user's public key is not a valid user key.
    UserKeyInvalid,
    /// `sig` does not verify the nonce.
    SignatureNotVerified,
    /// The account revoked this user (or all users) at or after its issue time.
    Revoked,
    /// The client's address is outside the user's `src` CIDRs.
    SourceNotAllowed,
    /// Now is outside the user's `times`.
    OutsideConnectTimes,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(why) => write!(f, "JWT not valid: {why}"),
            JwtError::UnsupportedVersion(version) => {
                write!(f, "JWT version {version} not supported")
            }
            JwtError::WrongType { expected, found } => {
                write!(f, "not {expected} claim (found {found:?})")
            }
            JwtError::BadIssuerKey(issuer) => {
                write!(
                    f,
                    "unable to validate expected prefixes of issuer {issuer:?}"
                )
            }
            JwtError::BadSignature => write!(f, "claim failed V2 signature verification"),
            JwtError::Expired => write!(f, "claim is expired"),
            JwtError::NotYetValid => write!(f, "claim is not yet valid"),
            JwtError::Invalid(why) => write!(f, "JWT not valid: {why}"),
            JwtError::UntrustedAccountIssuer => {
                write!(f, "Account JWT not signed by trusted operator")
            }
            JwtError::AccountMismatch => write!(f, "Account JWT subject mismatch"),
            JwtError::AccountNotFound(account) => {
                write!(f, "Account JWT lookup error: {account} not found")
            }
            JwtError::JwtRequired => write!(f, "Authentication requires a user JWT"),
            JwtError::UnknownUserIssuer => write!(f, "User JWT issuer is not known"),
            JwtError::ScopedUserHasPermissions => write!(
                f,
                "User JWT is not valid: scoped users require no permissions or limits set"
            ),
            JwtError::TemplateInvalid(why) => {
                write!(f, "User JWT generated invalid permissions: {why}")
            }
            JwtError::AccountExpired => write!(f, "Account JWT has expired"),
            JwtError::BearerDisallowed => write!(f, "Account does not allow bearer tokens"),
            JwtError::ConnectionTypeNotAllowed => write!(f, "Connection type not allowed"),
            JwtError::SignatureMissing => write!(f, "Signature missing"),
            JwtError::SignatureNotBase64 => write!(f, "Signature not valid base64"),
            JwtError::UserKeyInvalid => write!(f, "User nkey not valid"),
            JwtError::SignatureNotVerified => write!(f, "Signature not verified"),
            JwtError::Revoked => write!(f, "User authentication revoked"),
            JwtError::SourceNotAllowed => write!(f, "Bad src Ip"),
            JwtError::OutsideConnectTimes => write!(f, "Outside connect times"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Go's `base64.RawURLEncoding`: no padding, and (unlike `data_encoding::BASE64URL_NOPAD`)
/// trailing bits are not checked, as Go's non-strict decoder does not check them.
pub(crate) static BASE64URL_RAW: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols
        .push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    spec.check_trailing_bits = false;
    spec.encoding().expect("base64url specification is valid")
});

/// Go's `base64.StdEncoding` (padded), for the nonce signature's fallback.
pub(crate) static BASE64_STD: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols
        .push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    spec.padding = Some('=');
    spec.check_trailing_bits = false;
    spec.encoding().expect("base64 specification is valid")
});

/// The kind of key a public key is, by its prefix letter (nkeys' prefix bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Operator,
    Account,
    User,
}

/// Whether `key` is a valid public nkey of `kind` (length, base32, checksum, prefix), as Go's
/// `nkeys.IsValidPublic{Operator,Account,User}Key`.
pub fn is_public_key(key: &str, kind: KeyKind) -> bool {
    let expected = match kind {
        KeyKind::Operator => b'O',
        KeyKind::Account => b'A',
        KeyKind::User => b'U',
    };
    key.as_bytes().first() == Some(&expected) && nkeys::from_public_key(key).is_ok()
}

/// A claim type this module decodes: its `nats.type` and which keys may issue it.
pub trait ClaimKind: DeserializeOwned {
    const TYPE: &'static str;
    /// The key kinds that may sign it (Go's `ExpectedPrefixes`).
    const ISSUERS: &'static [KeyKind];
    fn data(&self) -> &claims::ClaimsData;
}

impl ClaimKind for claims::OperatorClaims {
    const TYPE: &'static str = claims::OPERATOR_CLAIM;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Operator];
    fn data(&self) -> &claims::ClaimsData {
        &self.data
    }
}

impl ClaimKind for claims::AccountClaims {
    const TYPE: &'static str = claims::ACCOUNT_CLAIM;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account, KeyKind::Operator];
    fn data(&self) -> &claims::ClaimsData {
        &self.data
    }
}

impl ClaimKind for claims::UserClaims {
    const TYPE: &'static str = claims::USER_CLAIM;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account];
    fn data(&self) -> &claims::ClaimsData {
        &self.data
    }
}

impl ClaimKind for claims::ActivationClaims {
    const TYPE: &'static str = claims::ACTIVATION_CLAIM;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account, KeyKind::Operator];
    fn data(&self) -> &claims::ClaimsData {
        &self.data
    }
}

/// Claims whose signature was checked by `decode`. Deref gives the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Decodes a JWT of claim type `T` and checks what Go's `jwt.Decode` and `Decode*Claims`
/// check: three base64url parts, the header (`typ` JWT, `alg` ed25519-nkey), claims
/// version 2, the claim type, the issuer's key kind, and the ed25519 signature over
/// `header.payload` by the issuer's key. Times and contents are checked by `validate_*`.
pub fn decode<T: ClaimKind>(token: &str) -> Result<Verified<T>, JwtError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(JwtError::Malformed(format!(
            "token size {} exceeds maximum of {TOKEN_BYTES_MAX} bytes",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected 3 chunks".into()));
    };
    check_header(header)?;
    let payload_json = BASE64URL_RAW
        .decode(payload.as_bytes())
        .map_err(|e| JwtError::Malformed(format!("payload: {e}")))?;
    let identity: serde_json::Value = serde_json::from_slice(&payload_json)
        .map_err(|e| JwtError::Malformed(format!("payload: {e}")))?;
    let (claim_type, version) = claim_type_and_version(&identity);
    if version != claims::CLAIMS_VERSION {
        return Err(JwtError::UnsupportedVersion(version));
    }
    if claim_type != T::TYPE {
        return Err(JwtError::WrongType {
            expected: T::TYPE,
            found: claim_type,
        });
    }
    let claims: T = serde_json::from_value(identity)
        .map_err(|e| JwtError::Malformed(format!("{} claims: {e}", T::TYPE)))?;
    let signature = BASE64URL_RAW
        .decode(signature.as_bytes())
        .map_err(|e| JwtError::Malformed(format!("signature: {e}")))?;
    let issuer = &claims.data().issuer;
    let issuer_key = nkeys::KeyPair::from_public_key(issuer).map_err(|_| JwtError::BadSignature)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    issuer_key
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;
    if !T::ISSUERS.iter().any(|&kind| is_public_key(issuer, kind)) {
        return Err(JwtError::BadIssuerKey(issuer.clone()));
    }
    Ok(Verified(claims))
}

/// The header must be `{"typ":"JWT","alg":"ed25519-nkey"}` (case-insensitively, and the
/// older `ed25519` is accepted too, as Go's `Header.Valid`).
fn check_header(header: &str) -> Result<(), JwtError> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(default)]
        typ: String,
        #[serde(default)]
        alg: String,
    }
    let json = BASE64URL_RAW
        .decode(header.as_bytes())
        .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
    if !header.typ.eq_ignore_ascii_case("JWT") {
        return Err(JwtError::Malformed(format!(
            "not supported type {:?}",
            header.typ
        )));
    }
    let algorithm = header.alg.to_ascii_lowercase();
    if algorithm != "ed25519" && algorithm != "ed25519-nkey" {
        return Err(JwtError::Malformed(format!(
            "unexpected {:?} algorithm",
            header.alg
        )));
    }
    Ok(())
}

/// A v1 JWT has `type` at the top level; a v2 one `nats.type` and `nats.version`.
fn claim_type_and_version(payload: &serde_json::Value) -> (String, i64) {
    if let Some(claim_type) = payload.get("type").and_then(|t| t.as_str()) {
        if !claim_type.is_empty() {
            return (claim_type.to_string(), 1);
        }
    }
    let nats = payload.get("nats");
    let claim_type = nats
        .and_then(|n| n.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    let version = nats
        .and_then(|n| n.get("version"))
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    (claim_type, version)
}

/// The time checks of Go's `ClaimsData.Validate`: expired when now is past `exp`, not yet
/// valid before `nbf`. nats-server counts both as blocking.
pub fn validate_times(data: &claims::ClaimsData, now: i64) -> Result<(), JwtError> {
    if data.expires > 0 && now > data.expires {
        return Err(JwtError::Expired);
    }
    if data.not_before > 0 && data.not_before > now {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

/// Go's `Subject.Validate`: not empty, no spaces, no empty token.
fn validate_subject(subject: &str) -> Result<(), JwtError> {
    if subject.is_empty() {
        return Err(JwtError::Invalid("subject cannot be empty".into()));
    }
    if subject.contains(' ') {
        return Err(JwtError::Invalid(format!(
            "subject {subject:?} cannot have spaces"
        )));
    }
    if subject.starts_with('.') || subject.ends_with('.') || subject.contains("..") {
        return Err(JwtError::Invalid(format!(
            "subject {subject:?} has an empty token"
        )));
    }
    Ok(())
}

/// Go's `Permissions.Validate`: every entry a subject; subscriptions may add a queue.
fn validate_permissions(permissions: &claims::Permissions) -> Result<(), JwtError> {
    for (permission, queue_allowed) in [
        (&permissions.publish, false),
        (&permissions.subscribe, true),
    ] {
        for entry in permission.allow.iter().chain(&permission.deny) {
            let mut words = entry.split(' ');
            let subject = words.next().unwrap_or_default();
            validate_subject(subject)?;
            match (words.next(), words.next()) {
                (None, _) => {}
                (Some(queue), None) if queue_allowed => validate_subject(queue)?,
                _ => {
                    return Err(JwtError::Invalid(format!(
                        "permission subject {entry:?} is not allowed"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Go's `UserPermissionLimits` checks (`Permissions.Validate`, `Limits.Validate`).
fn validate_user_limits(limits: &claims::UserPermissionLimits) -> Result<(), JwtError> {
    validate_permissions(&limits.permissions)?;
    for cidr in &limits.src {
        if connect::parse_cidr(cidr).is_none() {
            return Err(JwtError::Invalid(format!(
                "invalid cidr {cidr:?} in user src limits"
            )));
        }
    }
    for range in &limits.times {
        for end in [&range.start, &range.end] {
            if connect::parse_clock(end).is_none() {
                return Err(JwtError::Invalid(format!("time range {end:?} is invalid")));
            }
        }
    }
    Ok(())
}

/// Everything Go's `UserClaims.Validate` makes blocking.
pub fn validate_user(user: &claims::UserClaims, now: i64) -> Result<(), JwtError> {
    validate_times(&user.data, now)?;
    validate_user_limits(&user.nats.limits)?;
    if !user.nats.issuer_account.is_empty()
        && !is_public_key(&user.nats.issuer_account, KeyKind::Account)
    {
        return Err(JwtError::Invalid(
            "account_id is not an account public key".into(),
        ));
    }
    Ok(())
}

/// Go's `OperatorClaims.Validate`, without the URL checks (natsring fetches nothing).
pub fn validate_operator(operator: &claims::OperatorClaims, now: i64) -> Result<(), JwtError> {
    validate_times(&operator.data, now)?;
    for key in &operator.nats.signing_keys {
        if !is_public_key(key, KeyKind::Operator) {
            return Err(JwtError::Invalid(format!(
                "{key} is not an operator public key"
            )));
        }
    }
    let system = &operator.nats.system_account;
    if !system.is_empty() && !is_public_key(system, KeyKind::Account) {
        return Err(JwtError::Invalid(format!(
            "{system} is not an account public key"
        )));
    }
    Ok(())
}

/// The blocking checks of Go's `AccountClaims.Validate` that bear on what natsring does:
/// times, export and import subjects and types, default permissions, mappings' weights,
/// signing keys.
pub fn validate_account(account: &claims::AccountClaims, now: i64) -> Result<(), JwtError> {
    validate_times(&account.data, now)?;
    let nats = &account.nats;
    for export in &nats.exports {
        validate_subject(&export.subject)?;
        let response_type_valid = match export.export_type {
            claims::ExportType::Service => {
                matches!(
                    export.response_type.as_str(),
                    "" | "Singleton" | "Stream" | "Chunked"
                )
            }
            claims::ExportType::Stream => export.response_type.is_empty(),
        };
        if !response_type_valid {
            return Err(JwtError::Invalid(format!(
                "invalid response type {:?}",
                export.response_type
            )));
        }
        if export.response_threshold < 0 {
            return Err(JwtError::Invalid(
                "negative response threshold is invalid".into(),
            ));
        }
        if export.account_token_position > 0 {
            let tokens: Vec<&str> = export.subject.split('.').collect();
            let position = export.account_token_position as usize;
            if tokens.get(position - 1) != Some(&"*") {
                return Err(JwtError::Invalid(format!(
                    "Account Token Position {position} must match a * in {}",
                    export.subject
                )));
            }
        }
    }
    for import in &nats.imports {
        validate_subject(&import.subject)?;
        if import.account.is_empty() {
            return Err(JwtError::Invalid(
                "account to import from is not specified".into(),
            ));
        }
        if !import.local_subject.is_empty() && !import.to.is_empty() {
            return Err(JwtError::Invalid("Local Subject replaces To".into()));
        }
        if import.share && import.import_type != claims::ExportType::Service {
            return Err(JwtError::Invalid(
                "sharing information is only valid for services".into(),
            ));
        }
    }
    validate_permissions(&nats.default_permissions)?;
    for (source, destinations) in &nats.mappings {
        validate_subject(source)?;
        let mut total: u32 = 0;
        for destination in destinations {
            validate_subject(&destination.subject)?;
            let weight = mapping_weight(destination.weight);
            if weight > 100 {
                return Err(JwtError::Invalid(format!(
                    "Mapping {source:?} has a weight {weight} that exceeds 100"
                )));
            }
            if destination.cluster.is_empty() {
                total += u32::from(weight);
            }
        }
        if total > 100 {
            return Err(JwtError::Invalid(format!(
                "Mapping {source:?} exceeds 100% among all of it's weighted to mappings"
            )));
        }
    }
    for (key, scope) in &nats.signing_keys.0 {
        if !is_public_key(key, KeyKind::Account) {
            return Err(JwtError::Invalid(format!(
                "{key:?} is not a valid account signing key"
            )));
        }
        if let Some(scope) = scope {
            validate_user_limits(&scope.template)?;
        }
    }
    Ok(())
}

/// A mapping's weight: 0 (absent) reads as 100 (Go's `GetWeight`).
pub(crate) fn mapping_weight(weight: u8) -> u8 {
    if weight == 0 {
        100
    } else {
        weight
    }
}

/// Whether `key` issued at `issued_at` is revoked by `revocations` (Go's `isRevoked`): its
/// own entry, or the `*` entry, is at or after its issue time.
pub fn is_revoked(
    revocations: &std::collections::BTreeMap<String, i64>,
    key: &str,
    issued_at: i64,
) -> bool {
    [key, claims::REVOKE_ALL]
        .iter()
        .any(|k| revocations.get(*k).is_some_and(|&at| at >= issued_at))
}

#[cfg(test)]
mod tests;
