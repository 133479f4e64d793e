//! The connect-time check in operator mode, step for step as the JWT branch of nats-server's
//! `processClientOrLeafAuthentication`: decode and validate the user JWT, find its account
//! (`issuer_account`, else the issuer), check the issuer is the account or one of its signing
//! keys (a scoped key's template replacing the user's permissions), the account's expiry and
//! bearer policy, the connection type, the nonce signature (unless bearer), revocation, `src`
//! and `times`. The outcome is the user as the server applies it: account, permissions
//! (the account's `default_permissions` when the user has none), limits and expiry.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use super::claims::{UserClaims, UserPermissionLimits};
use super::template::{self, TemplateValues};
use super::trust::{permissions_from_claims, VerifiedAccount};
use super::{decode, is_public_key, is_revoked, JwtError, KeyKind, BASE64URL_RAW, BASE64_STD};
use crate::auth::{ConnectionTypes, Permissions};

/// The connection types nats-server knows (`convertAllowedConnectionTypes`).
pub const KNOWN_CONNECTION_TYPES: [&str; 7] = [
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

/// What a CONNECT presents, and what the server knows of the connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectAttempt<'a> {
    /// CONNECT's `jwt`.
    pub jwt: Option<&'a str>,
    /// CONNECT's `sig`: the nonce signed with the user's key, base64url (raw) or base64.
    pub signature: Option<&'a str>,
    /// The nonce as sent in INFO (its ASCII bytes are what the client signs).
    pub nonce: &'a [u8],
    /// `crate::auth::CONNECTION_TYPE_STANDARD`, `WEBSOCKET`, ...
    pub connection_type: &'a str,
    /// The client's address, for `src`.
    pub client_ip: Option<IpAddr>,
    /// Unix seconds.
    pub now: i64,
}

/// An authenticated operator-mode user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user's public key (nats-server logs it and keeps it as the client's `pubKey`).
    pub public_key: String,
    /// The account's public key: the account the connection joins.
    pub account: String,
    /// The JWT's `name` (the client's `nameTag`).
    pub name: String,
    pub tags: Vec<String>,
    /// The signing key that issued the user, when not the account itself.
    pub signing_key: Option<String>,
    /// The user's permissions, or the account's default permissions when it has none;
    /// `None`: everything allowed.
    pub permissions: Option<Permissions>,
    /// Whether `permissions` came from the account's `default_permissions`.
    pub default_permissions: bool,
    /// Known types only, upper-cased; `None`: any.
    pub allowed_connection_types: ConnectionTypes,
    /// The user's own limits (-1 unlimited, 0 taken literally as nats-server does); the
    /// server applies the smaller of these, the account's and its own.
    pub max_subscriptions: i64,
    pub max_payload: i64,
    pub max_data: i64,
    /// `iat`.
    pub issued_at: i64,
    /// The user JWT's `exp` (Unix seconds), if any.
    pub expires: Option<i64>,
    /// When the server must disconnect the user (nats-server's `setExpiration`): the sooner
    /// of `exp` and the end of the current `times` window, from `now`; `None`: never.
    pub disconnect_after: Option<Duration>,
    /// Bearer user: no nonce signature was required.
    pub bearer: bool,
}

/// Decodes and validates a user JWT (signature, type, times, contents).
pub fn decode_user(jwt: &str, now: i64) -> Result<UserClaims, JwtError> {
    let user = decode::<UserClaims>(jwt)?.into_inner();
    super::validate_user(&user, now)?;
    if !is_public_key(&user.data.subject, KeyKind::User) {
        return Err(JwtError::Invalid(
            "expected subject to be user public key".into(),
        ));
    }
    Ok(user)
}

/// The account a user belongs to: `issuer_account` when a signing key issued it, else the
/// issuer.
pub fn user_account(user: &UserClaims) -> &str {
    if user.nats.issuer_account.is_empty() {
        &user.data.issuer
    } else {
        &user.nats.issuer_account
    }
}

/// The whole check: `lookup` finds the (verified) account by public key, for example
/// `|key| resolver.lookup(&operators, key, now)`.
pub fn authenticate<'a, F>(
    attempt: &ConnectAttempt,
    lookup: F,
) -> Result<AuthenticatedUser, JwtError>
where
    F: FnOnce(&str) -> Result<&'a VerifiedAccount, JwtError>,
{
    let jwt = attempt
        .jwt
        .filter(|jwt| !jwt.is_empty())
        .ok_or(JwtError::JwtRequired)?;
    let user = decode_user(jwt, attempt.now)?;
    let account = lookup(user_account(&user))?;
    authenticate_user(user, account, attempt)
}

/// The checks after the account is found. `account` must be the one `user_account` names.
pub fn authenticate_user(
    mut user: UserClaims,
    account: &VerifiedAccount,
    attempt: &ConnectAttempt,
) -> Result<AuthenticatedUser, JwtError> {
    if account.public_key != user_account(&user) {
        return Err(JwtError::AccountMismatch);
    }
    let scope = account
        .signing_keys
        .get(&user.data.issuer)
        .ok_or(JwtError::UnknownUserIssuer)?;
    if let Some(scope) = scope {
        if !user.nats.limits.is_empty() {
            return Err(JwtError::ScopedUserHasPermissions);
        }
        let values = TemplateValues {
            user: &user,
            account_name: &account.name,
            account_tags: &account.tags,
        };
        user.nats.limits = template::apply(&scope.template, &values)?;
    }
    if account.is_expired(attempt.now) {
        return Err(JwtError::AccountExpired);
    }
    let limits: &UserPermissionLimits = &user.nats.limits;
    if limits.bearer_token && account.disallow_bearer {
        return Err(JwtError::BearerDisallowed);
    }
    let allowed_connection_types = connection_types(&limits.allowed_connection_types)?;
    if let Some(allowed) = &allowed_connection_types {
        if !allowed.contains(attempt.connection_type) {
            return Err(JwtError::ConnectionTypeNotAllowed);
        }
    }
    if !limits.bearer_token {
        verify_nonce_signature(&user.data.subject, attempt.signature, attempt.nonce)?;
    }
    if is_revoked(
        &account.revocations,
        &user.data.subject,
        user.data.issued_at,
    ) {
        return Err(JwtError::Revoked);
    }
    if !source_allowed(&limits.src, attempt.client_ip) {
        return Err(JwtError::SourceNotAllowed);
    }
    let window_left = time_window_left(limits, attempt.now)?;

    let own_permissions = permissions_from_claims(&limits.permissions);
    let default_permissions = own_permissions.is_none();
    let permissions = own_permissions.or_else(|| account.config.default_permissions.clone());
    let expires = (user.data.expires > 0).then_some(user.data.expires);
    let until_expiry =
        expires.map(|at| Duration::from_secs(at.saturating_sub(attempt.now).max(0) as u64));
    let disconnect_after = match (until_expiry, window_left) {
        (Some(expiry), Some(window)) => Some(expiry.min(window)),
        (expiry, window) => expiry.or(window),
    };
    Ok(AuthenticatedUser {
        public_key: user.data.subject.clone(),
        account: account.public_key.clone(),
        name: user.data.name.clone(),
        tags: user.nats.generic.tags.clone(),
        signing_key: (!user.nats.issuer_account.is_empty()).then(|| user.data.issuer.clone()),
        permissions,
        default_permissions,
        allowed_connection_types,
        max_subscriptions: limits.subs,
        max_payload: limits.payload,
        max_data: limits.data,
        issued_at: user.data.issued_at,
        expires,
        disconnect_after,
        bearer: limits.bearer_token,
    })
}

/// Upper-cased known types; unknown ones are dropped, but if nothing known is left the
/// user was meant for a type this server lacks and is refused.
fn connection_types(types: &[String]) -> Result<ConnectionTypes, JwtError> {
    if types.is_empty() {
        return Ok(None);
    }
    let known: BTreeSet<String> = types
        .iter()
        .map(|t| t.to_uppercase())
        .filter(|t| KNOWN_CONNECTION_TYPES.contains(&t.as_str()))
        .collect();
    if known.is_empty() {
        return Err(JwtError::ConnectionTypeNotAllowed);
    }
    Ok(Some(known))
}

/// Verifies CONNECT's `sig` over the nonce with the user's key (base64url without padding,
/// falling back to standard base64, as nats-server).
pub fn verify_nonce_signature(
    user_key: &str,
    signature: Option<&str>,
    nonce: &[u8],
) -> Result<(), JwtError> {
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or(JwtError::SignatureMissing)?;
    let raw = BASE64URL_RAW
        .decode(signature.as_bytes())
        .or_else(|_| BASE64_STD.decode(signature.as_bytes()))
        .map_err(|_| JwtError::SignatureNotBase64)?;
    let key = nkeys::KeyPair::from_public_key(user_key).map_err(|_| JwtError::UserKeyInvalid)?;
    key.verify(nonce, &raw)
        .map_err(|_| JwtError::SignatureNotVerified)
}

/// nats-server's `validateSrc`: no `src`, any address; else the address must be in one of
/// the CIDRs (an unknown address is refused).
fn source_allowed(cidrs: &[String], client_ip: Option<IpAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(ip) = client_ip else {
        return false;
    };
    cidrs.iter().any(|cidr| match parse_cidr(cidr) {
        Some((network, prefix_bits)) => cidr_contains(network, prefix_bits, ip),
        None => false,
    })
}

/// `"10.0.0.0/8"`, `"fd00::/8"`: the network address and prefix length (Go's
/// `net.ParseCIDR`, which requires the `/n`).
pub(crate) fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = cidr.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max_bits = if address.is_ipv4() { 32 } else { 128 };
    (bits <= max_bits).then_some((address, bits))
}

fn cidr_contains(network: IpAddr, prefix_bits: u8, ip: IpAddr) -> bool {
    // Go matches an IPv4 address against an IPv4 network also when it comes as IPv4-mapped
    // IPv6, and the other way round.
    let as_v4 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match network {
        IpAddr::V4(network) => match as_v4(ip) {
            Some(ip) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix_bits))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            None => false,
        },
        IpAddr::V6(network) => match ip {
            IpAddr::V6(ip) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix_bits))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            IpAddr::V4(_) => false,
        },
    }
}

/// `"15:04:05"` as Go's `time.Parse` reads it: seconds since midnight.
pub(crate) fn parse_clock(clock: &str) -> Option<i64> {
    let mut parts = clock.split(':');
    let (Some(hours), Some(minutes), Some(seconds), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let number = |text: &str, min_len: usize, max: i64| -> Option<i64> {
        if text.len() < min_len || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i64 = text.parse().ok()?;
        (value <= max).then_some(value)
    };
    Some(number(hours, 1, 23)? * 3600 + number(minutes, 2, 59)? * 60 + number(seconds, 2, 59)?)
}

const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// nats-server's `validateTimes`: no `times`, always (`None` left); else now must be inside
/// one of the daily windows, and what is left of the longest one is returned. Clock times
/// are taken in UTC: natsring has no time zone database, so a `times_location` other than
/// UTC refuses the user rather than guess (nats-server uses the server's local zone when it
/// is empty; natsring's servers run in UTC).
fn time_window_left(limits: &UserPermissionLimits, now: i64) -> Result<Option<Duration>, JwtError> {
    if limits.times.is_empty() {
        return Ok(None);
    }
    if !matches!(limits.locale.as_str(), "" | "UTC" | "Etc/UTC") {
        return Err(JwtError::OutsideConnectTimes);
    }
    let today = now - now.rem_euclid(SECONDS_PER_DAY);
    let mut best: Option<i64> = None;
    for range in &limits.times {
        let (Some(start), Some(end)) = (parse_clock(&range.start), parse_clock(&range.end)) else {
            return Err(JwtError::OutsideConnectTimes);
        };
        let (start, end) = (today + start, today + end);
        let left = if start < now && end > now {
            Some(end - now)
        } else if start > end && end > now {
            // Crosses midnight, now after midnight.
            Some(end - now)
        } else if start > end && start < now && end + SECONDS_PER_DAY > now {
            // Crosses midnight, now before midnight.
            Some(end + SECONDS_PER_DAY - now)
        } else {
            None
        };
        if let Some(left) = left {
            best = Some(best.map_or(left, |best: i64| best.max(left)));
        }
    }
    match best {
        Some(left) => Ok(Some(Duration::from_secs(left as u64))),
        None => Err(JwtError::OutsideConnectTimes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::claims::TimeRange;

    #[test]
    fn cidrs_match_like_go() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let list = vec!["10.0.0.0/8".to_string(), "fd00::/8".to_string()];
        assert!(source_allowed(&list, ip("10.1.2.3")));
        assert!(source_allowed(&list, ip("::ffff:10.1.2.3")));
        assert!(source_allowed(&list, ip("fd12::1")));
        assert!(!source_allowed(&list, ip("11.0.0.1")));
        assert!(!source_allowed(&list, None));
        assert!(source_allowed(&[], None));
        assert!(source_allowed(&["0.0.0.0/0".to_string()], ip("1.2.3.4")));
        assert!(parse_cidr("10.0.0.1").is_none());
        assert!(parse_cidr("10.0.0.1/33").is_none());
    }

    #[test]
    fn times_are_daily_windows_in_utc() {
        let mut limits = UserPermissionLimits {
            times: vec![TimeRange {
                start: "22:00:00".into(),
                end: "06:00:00".into(),
            }],
            ..UserPermissionLimits::default()
        };
        let day = 19_000 * SECONDS_PER_DAY;
        let at = |clock: &str| day + parse_clock(clock).unwrap();
        assert_eq!(
            time_window_left(&limits, at("23:00:00")),
            Ok(Some(Duration::from_secs(7 * 3600)))
        );
        assert_eq!(
            time_window_left(&limits, at("05:00:00")),
            Ok(Some(Duration::from_secs(3600)))
        );
        assert_eq!(
            time_window_left(&limits, at("12:00:00")),
            Err(JwtError::OutsideConnectTimes)
        );
        limits.locale = "Europe/Paris".into();
        assert!(time_window_left(&limits, at("23:00:00")).is_err());
        assert_eq!(parse_clock("9:05:00"), Some(9 * 3600 + 300));
        assert_eq!(parse_clock("24:00:00"), None);
    }

    #[test]
    fn connection_types_keep_the_known_ones() {
        assert_eq!(connection_types(&[]), Ok(None));
        let types = connection_types(&["standard".into(), "FUTURE".into()]).unwrap();
        assert_eq!(types.unwrap().into_iter().collect::<Vec<_>>(), ["STANDARD"]);
        assert!(connection_types(&["FUTURE".into()]).is_err());
    }
}
