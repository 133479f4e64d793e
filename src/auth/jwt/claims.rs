//! The JSON payloads of NATS JWTs, version 2, field for field as the nats-io/jwt Go library
//! writes them (`v2/*_claims.go`, `types.go`, `imports.go`, `exports.go`). Decoding is
//! lenient where Go's `encoding/json` is (unknown fields are ignored, absent fields are their
//! zero value); encoding leaves out what Go's `omitempty` leaves out, so a JWT made by
//! `issue` reads like one made by `nsc`.
//!
//! Only data here: no checks. `super::validate` holds what `Validate` does in Go.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `nats.type` of an operator JWT.
pub const OPERATOR_CLAIM: &str = "operator";
/// `nats.type` of an account JWT.
pub const ACCOUNT_CLAIM: &str = "account";
/// `nats.type` of a user JWT.
pub const USER_CLAIM: &str = "user";
/// `nats.type` of an activation JWT (the token that grants a private export to an importer).
pub const ACTIVATION_CLAIM: &str = "activation";
/// The claims version this module reads and writes.
pub const CLAIMS_VERSION: i64 = 2;
/// The revocation key that revokes every user (or activation) issued at or before its time.
pub const REVOKE_ALL: &str = "*";
/// A limit of -1: unlimited (`jwt.NoLimit`).
pub const NO_LIMIT: i64 = -1;

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The registered claims every NATS JWT has (Go's `ClaimsData`), in the order Go writes them.
/// Times are Unix seconds; 0 means not set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsData {
    #[serde(rename = "aud", default, skip_serializing_if = "String::is_empty")]
    pub audience: String,
    #[serde(rename = "exp", default, skip_serializing_if = "is_zero")]
    pub expires: i64,
    #[serde(rename = "jti", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "iat", default, skip_serializing_if = "is_zero")]
    pub issued_at: i64,
    #[serde(rename = "iss", default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "nbf", default, skip_serializing_if = "is_zero")]
    pub not_before: i64,
    #[serde(rename = "sub", default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// The fields every `nats` object carries (Go's `GenericFields`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenericFields {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: i64,
}

/// An operator JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorClaims {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default)]
    pub nats: Operator,
}

/// An operator JWT's `nats` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Operator keys (`O...`) that may sign account JWTs besides the operator's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_server_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_service_urls: Vec<String>,
    /// The system account's public key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assert_server_version: String,
    /// Only signing keys may sign accounts: the operator's identity key may not.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    #[serde(flatten)]
    pub generic: GenericFields,
}

/// An account JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountClaims {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default)]
    pub nats: Account,
}

/// An account JWT's `nats` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    #[serde(default)]
    pub limits: OperatorLimits,
    #[serde(default, skip_serializing_if = "SigningKeys::is_empty")]
    pub signing_keys: SigningKeys,
    /// User public key (or `*`) -> Unix seconds: users issued at or before are revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    #[serde(default)]
    pub default_permissions: Permissions,
    /// Source subject -> weighted destinations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<String, Vec<WeightedMapping>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info_url: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

/// An account's limits as the operator set them (Go's `OperatorLimits`: `NatsLimits`,
/// `AccountLimits` and the JetStream limits, flattened into one object). Absent means 0, and
/// nats-server takes 0 literally; -1 is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorLimits {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imports: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exports: i64,
    #[serde(rename = "wildcards", default, skip_serializing_if = "is_false")]
    pub wildcard_exports: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disallow_bearer: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conn: i64,
    #[serde(rename = "leaf", default, skip_serializing_if = "is_zero")]
    pub leaf_node_conn: i64,
}

impl OperatorLimits {
    /// What `jwt.NewAccountClaims` starts with: everything unlimited, wildcard exports allowed.
    pub fn unlimited() -> OperatorLimits {
        OperatorLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcard_exports: true,
            disallow_bearer: false,
            conn: NO_LIMIT,
            leaf_node_conn: NO_LIMIT,
        }
    }
}

/// A stream or service, as `"stream"`/`"service"` in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportType {
    #[default]
    Stream,
    Service,
}

/// One of an account's `exports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(rename = "type", default)]
    pub export_type: ExportType,
    /// Private: an importer needs an activation token from this account.
    #[serde(default, skip_serializing_if = "is_false")]
    pub token_req: bool,
    /// Activation subject (importing account) -> Unix seconds: revoked activations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// `Singleton` (or empty), `Stream`, `Chunked`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_type: String,
    /// Nanoseconds (Go's `time.Duration`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub response_threshold: i64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub account_token_position: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub advertise: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info_url: String,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// One of an account's `imports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The subject in the exporting account (for a service without `local_subject` but with
    /// the deprecated `to`: the local subject, `to` being the exporter's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The exporting account's public key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// An activation JWT, for a private (`token_req`) export.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Deprecated: a stream's prefix, a service's remote subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// Where the import appears locally, with `$1`-style references to `subject`'s wildcards.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    #[serde(rename = "type", default)]
    pub import_type: ExportType,
    #[serde(default, skip_serializing_if = "is_false")]
    pub share: bool,
}

/// One destination of a subject mapping (`weight` 0 reads as 100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedMapping {
    pub subject: String,
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub weight: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
}

fn is_zero_u8(value: &u8) -> bool {
    *value == 0
}

/// A publish or subscribe permission (`allow`/`deny` lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// `resp`: how many responses and for how long (nanoseconds, Go's `time.Duration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    #[serde(rename = "max", default)]
    pub max_msgs: i64,
    #[serde(rename = "ttl", default)]
    pub expires_nanos: i64,
}

/// `pub`, `sub`, `resp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(rename = "pub", default)]
    pub publish: Permission,
    #[serde(rename = "sub", default)]
    pub subscribe: Permission,
    #[serde(rename = "resp", default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponsePermission>,
}

/// `times`: a daily window, `"HH:MM:SS"` each end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// A user's permissions and limits (Go's `UserPermissionLimits`: `Permissions`, `Limits`
/// (`UserLimits` and `NatsLimits`) and the flags, flattened into one object). This is also
/// the template of a scoped signing key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPermissionLimits {
    #[serde(flatten)]
    pub permissions: Permissions,
    /// CIDRs the user may connect from; a JSON list, or one comma-separated string.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "cidr_list"
    )]
    pub src: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(
        rename = "times_location",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub locale: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    /// No nonce signature needed: the JWT alone authenticates.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxy_required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

impl UserPermissionLimits {
    /// What `jwt.NewUserClaims` starts with: no permissions, limits unlimited.
    pub fn unlimited() -> UserPermissionLimits {
        UserPermissionLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            ..UserPermissionLimits::default()
        }
    }

    /// Nothing set at all (Go's `HasEmptyPermissions`): what a user issued by a scoped
    /// signing key must carry, the scope's template supplying everything.
    pub fn is_empty(&self) -> bool {
        *self == UserPermissionLimits::default()
    }
}

/// Go's `CIDRList` reads a list, or a comma-separated string (lower-cased, trimmed, without
/// empties or duplicates).
fn cidr_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match Option::<ListOrString>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(ListOrString::List(list)) => list,
        Some(ListOrString::String(joined)) => {
            let mut list: Vec<String> = Vec::new();
            for item in joined.to_lowercase().split(',') {
                let item = item.trim().to_string();
                if !item.is_empty() && !list.contains(&item) {
                    list.push(item);
                }
            }
            list
        }
    })
}

/// A user JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default)]
    pub nats: User,
}

/// A user JWT's `nats` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    /// Set when a signing key of the account issued the user: the account's public key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

/// An activation JWT: the exporting account grants `subject` (the importing account) the
/// import of `nats.subject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationClaims {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default)]
    pub nats: Activation,
}

/// An activation JWT's `nats` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    #[serde(rename = "subject", default, skip_serializing_if = "String::is_empty")]
    pub import_subject: String,
    #[serde(rename = "kind", default)]
    pub import_type: ExportType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

/// A scoped signing key (`{"kind":"user_scope", ...}`): users it issues get `template`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// Always `user_scope`.
    pub kind: String,
    pub key: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub template: UserPermissionLimits,
    #[serde(default)]
    pub description: String,
}

/// The `kind` of a user scope.
pub const USER_SCOPE_KIND: &str = "user_scope";

/// An account's signing keys: key -> its scope, `None` for a plain (unscoped) key. In JSON a
/// list mixing key strings and scope objects (Go's `SigningKeys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningKeys(pub BTreeMap<String, Option<UserScope>>);

impl SigningKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for SigningKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Entry<'a> {
            Key(&'a str),
            Scope(&'a UserScope),
        }
        // A BTreeMap iterates sorted by key, as Go sorts them.
        let entries: Vec<Entry> = self
            .0
            .iter()
            .map(|(key, scope)| match scope {
                Some(scope) => Entry::Scope(scope),
                None => Entry::Key(key),
            })
            .collect();
        entries.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SigningKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SigningKeys, D::Error> {
        let items =
            Option::<Vec<serde_json::Value>>::deserialize(deserializer)?.unwrap_or_default();
        let mut keys = BTreeMap::new();
        for item in items {
            match item {
                serde_json::Value::String(key) => {
                    keys.insert(key, None);
                }
                serde_json::Value::Object(ref object) => {
                    let kind = object.get("kind").and_then(|kind| kind.as_str());
                    if kind != Some(USER_SCOPE_KIND) {
                        return Err(serde::de::Error::custom(format!(
                            "unknown signing key scope {kind:?}"
                        )));
                    }
                    let mut scope: UserScope =
                        serde_json::from_value(item.clone()).map_err(serde::de::Error::custom)?;
                    // Go starts a scope's template from NewUserScope: limits unlimited unless
                    // the JSON sets them.
                    let template = object.get("template").and_then(|t| t.as_object());
                    for (field, value) in [
                        ("subs", &mut scope.template.subs),
                        ("data", &mut scope.template.data),
                        ("payload", &mut scope.template.payload),
                    ] {
                        if template.is_none_or(|t| !t.contains_key(field)) {
                            *value = NO_LIMIT;
                        }
                    }
                    keys.insert(scope.key.clone(), Some(scope));
                }
                // Go ignores other JSON values here.
                _ => {}
            }
        }
        Ok(SigningKeys(keys))
    }
}
