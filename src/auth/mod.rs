//! Who may connect and what they may do: the configured identities (users, nkey users, the
//! single user or token), their permissions, and the accounts they belong to, as the
//! configuration file, the flags and (in operator mode) JWTs describe them. No sockets here:
//! the shard asks this module whether a CONNECT is authorized and what its connection may do.
//!
//! This file is the model (what the configuration says), shared by the configuration layer
//! that produces it and the checks that use it. Each type mirrors nats-server's structure of
//! the same name (`server/auth.go`, `server/opts.go`), including the difference between a list
//! that is absent (`None`) and one that is empty.

pub mod authenticate;
pub mod dn;
pub mod jwt;
pub mod operator;
pub mod permissions;
pub mod verifier;

use std::collections::BTreeSet;
use std::time::Duration;

/// A publish or subscribe permission: subjects allowed and denied (`"foo.>"`, and for
/// subscriptions `"foo.> queue"`). `None` means the list was not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// `allow_responses`: the user may publish to the reply subjects of requests it received, at
/// most `max_msgs` times each and within `expires` of receiving the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    pub max_msgs: i64,
    pub expires: Duration,
}

impl ResponsePermission {
    /// nats-server's `DEFAULT_ALLOW_RESPONSE_MAX_MSGS`.
    pub const MAX_MSGS_DEFAULT: i64 = 1;
    /// nats-server's `DEFAULT_ALLOW_RESPONSE_EXPIRATION`.
    pub const EXPIRES_DEFAULT: Duration = Duration::from_secs(2 * 60);
}

/// A user's permissions (`permissions { publish, subscribe, allow_responses }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    pub response: Option<ResponsePermission>,
}

/// The connection types a user may connect with (`allowed_connection_types`), upper-cased:
/// `STANDARD`, `WEBSOCKET`, `LEAFNODE`, `LEAFNODE_WS`, `MQTT`, `MQTT_WS`, `IN_PROCESS`. `None`
/// or empty: any.
pub type ConnectionTypes = Option<BTreeSet<String>>;

/// The connection type of a plain client connection.
pub const CONNECTION_TYPE_STANDARD: &str = "STANDARD";

/// A user with a name and a password (plain, or a bcrypt hash: see `is_bcrypt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: String,
    pub permissions: Option<Permissions>,
    /// The account it is in; `None`: the global account `$G`.
    pub account: Option<String>,
    pub allowed_connection_types: ConnectionTypes,
}

/// A user identified by an nkey (a public key starting with `U`), who proves it by signing
/// the nonce of the server's INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NkeyUser {
    pub nkey: String,
    pub permissions: Option<Permissions>,
    pub account: Option<String>,
    pub allowed_connection_types: ConnectionTypes,
}

/// Everything about authentication the options hold (outside accounts, which
/// `crate::account::AccountConfig` describes; their users are in `users`/`nkeys` with
/// `account` set, as nats-server keeps them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthOptions {
    /// The single user (`--user`, `authorization { user }`).
    pub username: Option<String>,
    /// Its password (`--pass`, `authorization { password }`), plain or bcrypt.
    pub password: Option<String>,
    /// The token (`--auth`, `authorization { token }`), plain or bcrypt.
    pub token: Option<String>,
    /// `authorization { timeout }`; `None`: nats-server's default (2 s).
    pub auth_timeout: Option<Duration>,
    /// Users with passwords, from `authorization { users }` and every account's `users`;
    /// `None` when neither gave any.
    pub users: Option<Vec<User>>,
    /// Users with nkeys, likewise.
    pub nkeys: Option<Vec<NkeyUser>>,
    /// `no_auth_user`: the user a client that presents no credentials is taken as.
    pub no_auth_user: Option<String>,
    /// The file has an `authorization` block (even an empty one): nats-server then does not
    /// keep `$G` open to anonymous clients when only the system account has users.
    pub authorization_block: bool,
}

impl AuthOptions {
    /// Whether clients must authenticate (INFO's `auth_required`): any user, nkey, single
    /// user or token is configured.
    pub fn required(&self) -> bool {
        self.users.is_some()
            || self.nkeys.is_some()
            || self.username.is_some()
            || self.token.is_some()
    }
}

/// Whether a configured password or token is a bcrypt hash (nats-server's `isBcrypt`:
/// `^\$2[abxy]\$\d{2}\$.*`); anything else is compared as plain text, in constant time.
pub fn is_bcrypt(secret: &str) -> bool {
    let bytes = secret.as_bytes();
    bytes.len() >= 7
        && bytes[0] == b'$'
        && bytes[1] == b'2'
        && matches!(bytes[2], b'a' | b'b' | b'x' | b'y')
        && bytes[3] == b'$'
        && bytes[4].is_ascii_digit()
        && bytes[5].is_ascii_digit()
        && bytes[6] == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_are_told_from_plain_secrets() {
        assert!(is_bcrypt(
            "$2a$11$PWIFAL8RsWyGI3jVZtO9Nu8.6jOxzxfZo7c/W0eLk017hjgUKWrhy"
        ));
        assert!(is_bcrypt("$2y$10$"));
        assert!(!is_bcrypt("$2c$10$abc"));
        assert!(!is_bcrypt("$2a$1$abc"));
        assert!(!is_bcrypt("s3cr3t"));
        assert!(!is_bcrypt("$2a$10"));
    }
}
