//! The authentication, authorization and account keys of a configuration file onto
//! [`Options`], as nats-server's `processConfigFileLine` maps them (`server/opts.go`:
//! `parseAuthorization`, `parseUsers`, `parseUserPermissions`, `parseAccounts`, their
//! imports, exports and mappings, `operator`, `resolver`, `resolver_preload`, `trusted`), with
//! nats-server's texts and positions, and the start-up checks of `validateOptions` that concern
//! them ([`validate`]).
//!
//! nats-server walks maps in Go's random order; natsring walks them in file order. Where
//! nats-server's result depends on its order (which of two conflicting keys is reported, an
//! `authorization` block before or after `accounts`), natsring's is one of nats-server's.
//!
//! What nats-server checks only by decoding a JWT (an operator's claims, a preloaded account
//! JWT) is not checked here: the text is kept for the JWT layer. Keys natsring cannot honour
//! (`auth_callout`, `proxy_required`, message tracing, an account's `jetstream`, resolvers
//! other than `MEMORY`) are refused by name.
//!
//! Must not: read anything but the operator JWT files the configuration names.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use super::conf::{Item, Map, Value};
use super::file::{integer, set_bool, source, string, Report};
use super::go::{self, quote};
use super::{Options, Resolver};
use crate::account::{
    AccountConfig, AccountLimits, Export, ExportKind, Import, Mapping, ResponseType,
    WeightedDestination, GLOBAL_ACCOUNT,
};
use crate::auth::jwt::{is_public_key, KeyKind};
use crate::auth::{NkeyUser, Permissions, ResponsePermission, SubjectPermission, User};
use crate::sublist::subject::valid_subject;

/// The connection types nats-server knows (`jwt.ConnectionType*`).
const CONNECTION_TYPES: [&str; 7] = [
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

/// What nats-server prints when its option code dereferences the nil result of a block it
/// could not parse (a wrong type inside `authorization {}` aborts the block).
pub(super) const NIL_DEREFERENCE: &str =
    "runtime error: invalid memory address or nil pointer dereference";

/// What a refused key belongs to, in the project's wording.
fn not_yet(item: &Item, key: &str, feature: &str, report: &mut Report) {
    report.error(
        item,
        format!(
            "field {} is not supported by natsring yet ({feature})",
            quote(key)
        ),
    );
}

pub(super) fn unknown_field(item: &Item, key: &str, report: &mut Report) {
    if !item.used_variable {
        report.error(item, format!("unknown field {}", quote(key)));
    }
}

/// Go's `%v` of a configuration value, for the messages that print one (`got 1`).
fn go_value(value: &Value) -> String {
    match value {
        Value::Integer(number) => number.to_string(),
        Value::Float(number) => go_float(*number),
        Value::Bool(truth) => truth.to_string(),
        Value::String(text) | Value::Datetime(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|item| go_value(&item.value))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Map(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(key, item)| format!("{key}:{}", go_value(&item.value)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%v` of a float64 (shortest form; `1e+21` and up in exponent form).
pub(super) fn go_float(number: f64) -> String {
    if number.abs() >= 1e21 || (number != 0.0 && number.abs() < 1e-4) {
        let text = format!("{number:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(digits) => ('-', digits),
                    None => ('+', exponent),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => text,
        }
    } else {
        format!("{number}")
    }
}

// ---------------------------------------------------------------------------------------------
// Top-level keys.
// ---------------------------------------------------------------------------------------------

/// `authorization { ... }`: the single user or token, the users, the timeout.
pub(super) fn authorization(options: &mut Options, item: &Item, report: &mut Report) {
    let block = match parse_authorization(item, report) {
        Ok(block) => block,
        Err(Abandoned::Refused) => return,
        Err(Abandoned::Panicked) => {
            report.error(item, NIL_DEREFERENCE);
            return;
        }
    };
    options.auth.authorization_block = true;
    options.auth.username = non_empty(&block.user);
    options.auth.password = non_empty(&block.password);
    options.auth.token = non_empty(&block.token);
    options.auth.auth_timeout = block.timeout;
    if (!block.user.is_empty() || !block.password.is_empty()) && !block.token.is_empty() {
        report.error(item, "Cannot have a user/pass and token");
        return;
    }
    let mut names = configured_names(options);
    if block.users.is_some() || !names.is_empty() {
        if !block.user.is_empty() {
            report.error(item, "Can not have a single user/pass and a users array");
            return;
        }
        if !block.token.is_empty() {
            report.error(item, "Can not have a token and a users array");
            return;
        }
    }
    let (nkeys, users) = block.users.unwrap_or_default();
    for user in &users {
        if !names.insert(user.username.clone()) {
            report.error(
                item,
                format!("Duplicate user {} detected", quote(&user.username)),
            );
            return;
        }
    }
    extend(&mut options.auth.users, users);
    for nkey in &nkeys {
        if !names.insert(nkey.nkey.clone()) {
            report.error(
                item,
                format!("Duplicate nkey {} detected", quote(&nkey.nkey)),
            );
            return;
        }
    }
    extend(&mut options.auth.nkeys, nkeys);
}

/// `mappings {}` / `maps {}` at the top level: the global account's.
pub(super) fn server_mappings(options: &mut Options, item: &Item, report: &mut Report) {
    if let Some(mappings) = parse_mappings(item, report) {
        options.mappings = mappings;
    }
}

/// `accounts { A { ... } }` or `accounts [A, B]`.
pub(super) fn accounts(options: &mut Options, item: &Item, report: &mut Report) {
    let mut exports: Vec<(usize, Export)> = Vec::new();
    let mut imports: Vec<(usize, Import)> = Vec::new();
    match &item.value {
        Value::Array(names) => {
            let mut seen = HashSet::new();
            for entry in names {
                let Some(name) = string(entry, report) else {
                    return;
                };
                if name == GLOBAL_ACCOUNT {
                    report.error(entry, format!("{} is a Reserved Account", quote(name)));
                    continue;
                }
                if !seen.insert(name.to_string()) {
                    report.error(entry, format!("Duplicate Account Entry: {name}"));
                    continue;
                }
                options.accounts.push(AccountConfig {
                    name: name.to_string(),
                    ..AccountConfig::default()
                });
            }
        }
        Value::Map(map) => {
            let mut names = configured_names(options);
            for (name, entry) in map.iter() {
                if entry.used_variable {
                    continue;
                }
                let Value::Map(fields) = &entry.value else {
                    report.error(entry, "Expected map entries for accounts");
                    continue;
                };
                if name == GLOBAL_ACCOUNT {
                    report.error(entry, format!("{} is a Reserved Account", quote(name)));
                    continue;
                }
                let index = options.accounts.len();
                options.accounts.push(AccountConfig {
                    name: name.to_string(),
                    ..AccountConfig::default()
                });
                let account = parse_account(fields, report);
                options.accounts[index].default_permissions = account.default_permissions.clone();
                options.accounts[index].mappings = account.mappings;
                options.accounts[index].limits = account.limits;
                exports.extend(account.exports.into_iter().map(|export| (index, export)));
                imports.extend(account.imports.into_iter().map(|import| (index, import)));
                let Some((users_item, mut nkeys, mut users)) = account.users else {
                    continue;
                };
                if !nkeys.is_empty() || !users.is_empty() {
                    if options.auth.username.is_some() {
                        report.error(users_item, "Can not have a single user/pass and accounts");
                        continue;
                    }
                    if options.auth.token.is_some() {
                        report.error(users_item, "Can not have a token and accounts");
                        continue;
                    }
                }
                apply_default_permissions(
                    &mut users,
                    &mut nkeys,
                    account.default_permissions.as_ref(),
                );
                for nkey in &mut nkeys {
                    if !names.insert(nkey.nkey.clone()) {
                        report.error(
                            users_item,
                            format!("Duplicate nkey {} detected", quote(&nkey.nkey)),
                        );
                    }
                    nkey.account = Some(name.to_string());
                }
                extend(&mut options.auth.nkeys, nkeys);
                for user in &mut users {
                    if !names.insert(user.username.clone()) {
                        report.error(
                            users_item,
                            format!("Duplicate user {} detected", quote(&user.username)),
                        );
                    }
                    user.account = Some(name.to_string());
                }
                extend(&mut options.auth.users, users);
            }
        }
        _ => {}
    }
    // nats-server checks exports and imports against each other only when the file had no
    // error so far, and reports what it finds at the `accounts` key.
    if !report.errors.is_empty() {
        return;
    }
    let names: Vec<String> = options
        .accounts
        .iter()
        .map(|account| account.name.clone())
        .collect();
    for (index, export) in exports {
        add_export(&names, &mut options.accounts[index], export, item, report);
    }
    for (index, import) in imports {
        add_import(options, index, import, item, report);
    }
}

/// `no_auth_user`.
pub(super) fn no_auth_user(options: &mut Options, item: &Item, report: &mut Report) {
    if let Some(name) = string(item, report) {
        options.auth.no_auth_user = non_empty(name);
    }
}

/// `system_account` / `system`: nats-server reads these (exactly so spelled, `system_account`
/// first) before any other key, and skips them in its walk of the keys.
pub(super) fn system_account(options: &mut Options, map: &Map, report: &mut Report) {
    let Some(item) = map.get("system_account").or_else(|| map.get("system")) else {
        return;
    };
    match &item.value {
        Value::String(name) => options.system_account = non_empty(name),
        _ => report.error(item, "system account name must be a string"),
    }
}

/// `no_system_account` / `no_system` / `no_sys_acc`.
pub(super) fn no_system_account(options: &mut Options, item: &Item, report: &mut Report) {
    set_bool(&mut options.no_system_account, item, report);
}

/// `operator` and its aliases: JWTs, or files holding them (read from the working directory,
/// as nats-server reads them).
pub(super) fn operators(options: &mut Options, item: &Item, report: &mut Report) {
    let mut names = Vec::new();
    match &item.value {
        Value::String(name) => names.push(name.clone()),
        Value::Array(entries) => {
            for entry in entries {
                match &entry.value {
                    Value::String(name) => names.push(name.clone()),
                    _ => {
                        report.error(
                            item,
                            "error parsing operators: unsupported type *conf.item where string is expected",
                        );
                        break;
                    }
                }
            }
        }
        other => report.error(
            item,
            format!(
                "error parsing operators: unsupported type {}",
                other.go_type_name()
            ),
        ),
    }
    options.operators.clear();
    for name in names {
        match read_operator_jwt(&name) {
            Ok(jwt) => options.operators.push(jwt),
            Err(error) => report.error(item, format!("error parsing operator JWT: {error}")),
        }
    }
}

/// nats-server's `readOperatorJWT` short of decoding: the file's content, or the value itself
/// when no such file exists and it looks like a JWT (`eyJ...`); a decorated file (a `nsc`
/// creds-style block) gives the JWT inside.
fn read_operator_jwt(name: &str) -> Result<String, String> {
    let contents = match std::fs::read(name) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // An inline JWT.
        Err(_) if name.starts_with("eyJ") => name.to_string(),
        Err(error) => return Err(super::conf::path_error_text("open", name, &error)),
    };
    Ok(decorated_jwt(&contents))
}

/// `jwt.ParseDecoratedJWT`: the first line between `-----BEGIN ...-----` and `------END`
/// when the text is decorated, else the text trimmed.
fn decorated_jwt(contents: &str) -> String {
    let mut lines = contents.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("-----BEGIN") && line.ends_with("-----") {
            if let Some(jwt) = lines.find(|line| !line.is_empty()) {
                return jwt.to_string();
            }
        }
    }
    contents.trim().to_string()
}

/// `resolver` / `account_resolver` / `accounts_resolver`.
pub(super) fn resolver(options: &mut Options, item: &Item, report: &mut Report) {
    options.resolver = None;
    match &item.value {
        Value::String(text) => {
            let lower = text.to_lowercase();
            // nats-server's regular expressions are unanchored: any "mem" is MEMORY, else any
            // "url" is a URL resolver.
            if lower.contains("mem") {
                options.resolver = Some(Resolver::Memory);
            } else if lower.contains("url") {
                report.error(
                    item,
                    "resolver type \"URL\" is not supported by natsring yet (authentication, authorization and accounts)",
                );
                return;
            }
        }
        Value::Map(map) => {
            let mut kind = String::new();
            for (key, entry) in map.iter() {
                match key {
                    "type" => match string(entry, report) {
                        Some(text) => kind = text.to_uppercase(),
                        None => return,
                    },
                    "dir" if string(entry, report).is_none() => return,
                    "allow_delete" | "hard_delete" => {
                        let mut ignored = false;
                        set_bool(&mut ignored, entry, report);
                    }
                    "limit" if integer(entry, report).is_none() => return,
                    "ttl" | "interval" | "timeout" => {
                        let Some(text) = string(entry, report) else {
                            return;
                        };
                        if let Err(error) = go::parse_duration(text) {
                            report.error(item, error);
                            return;
                        }
                    }
                    // nats-server does not look at other keys.
                    _ => {}
                }
            }
            match kind.as_str() {
                "MEM" | "MEMORY" => options.resolver = Some(Resolver::Memory),
                "FULL" | "CACHE" => {
                    report.error(
                        item,
                        format!(
                            "resolver type {} is not supported by natsring yet (authentication, authorization and accounts)",
                            quote(&kind.to_lowercase())
                        ),
                    );
                    return;
                }
                _ => {}
            }
        }
        other => {
            report.error(
                item,
                format!(
                    "error parsing operator resolver, wrong type {}",
                    other.go_type_name()
                ),
            );
            return;
        }
    }
    if options.resolver.is_none() {
        report.error(
            item,
            "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])",
        );
    }
}

/// `resolver_preload { <account public key>: <account JWT> }`.
pub(super) fn resolver_preload(options: &mut Options, item: &Item, report: &mut Report) {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            "preload should be a map of account_public_key:account_jwt",
        );
        return;
    };
    options.resolver_preload.clear();
    for (key, entry) in map.iter() {
        match &entry.value {
            Value::String(jwt) => options
                .resolver_preload
                .push((key.to_string(), jwt.clone())),
            _ => report.error(entry, "preload map value should be a string JWT"),
        }
    }
}

/// `trusted` / `trusted_keys`: operator public keys.
pub(super) fn trusted_keys(options: &mut Options, item: &Item, report: &mut Report) {
    match &item.value {
        Value::String(key) => options.trusted_keys = vec![key.clone()],
        Value::Array(entries) => {
            let mut keys = Vec::with_capacity(entries.len());
            for entry in entries {
                match &entry.value {
                    Value::String(key) => keys.push(key.clone()),
                    other => report.error(
                        entry,
                        format!(
                            "error parsing trusted: unsupported type in array {}",
                            other.go_type_name()
                        ),
                    ),
                }
            }
            options.trusted_keys = keys;
        }
        other => report.error(
            item,
            format!(
                "error parsing trusted: unsupported type {}",
                other.go_type_name()
            ),
        ),
    }
    for key in &options.trusted_keys {
        if !is_public_key(key, KeyKind::Operator) {
            report.error(
                item,
                format!(
                    "trust key {} required to be a valid public operator nkey",
                    quote(key)
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users and permissions.
// ---------------------------------------------------------------------------------------------

/// What an `authorization {}` block says.
#[derive(Default)]
pub(super) struct AuthorizationBlock {
    pub(super) user: String,
    pub(super) password: String,
    pub(super) token: String,
    pub(super) timeout: Option<Duration>,
    /// `users [...]` when given (even empty): nkey users and users.
    pub(super) users: Option<(Vec<NkeyUser>, Vec<User>)>,
    /// `default_permissions` (`permissions`), already given to the users without their own.
    pub(super) default_permissions: Option<Permissions>,
}

/// Why nats-server gave up on an `authorization` block (the error is reported).
pub(super) enum Abandoned {
    /// It returned an error.
    Refused,
    /// A wrong type panicked; nats-server then dereferences the missing result too.
    Panicked,
}

/// nats-server's `parseAuthorization`.
pub(super) fn parse_authorization(
    item: &Item,
    report: &mut Report,
) -> Result<AuthorizationBlock, Abandoned> {
    let Value::Map(map) = &item.value else {
        report.wrong_type(item, "map[string]interface {}");
        return Err(Abandoned::Panicked);
    };
    let text = |entry: &Item, report: &mut Report| {
        string(entry, report)
            .map(str::to_string)
            .ok_or(Abandoned::Panicked)
    };
    let mut block = AuthorizationBlock::default();
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "user" | "username" => block.user = text(entry, report)?,
            "pass" | "password" => block.password = text(entry, report)?,
            "token" => block.token = text(entry, report)?,
            "timeout" => {
                block.timeout = Some(auth_timeout(key, entry, report).ok_or(Abandoned::Refused)?)
            }
            "users" => {
                if let Some(users) = parse_users(entry, report) {
                    block.users = Some(users);
                }
            }
            "default_permission" | "default_permissions" | "permissions" => {
                if let Some(permissions) = parse_permissions(entry, report) {
                    block.default_permissions = Some(permissions);
                }
            }
            "auth_callout" | "auth_hook" => not_yet(entry, key, "authorization callouts", report),
            "proxy_required" => not_yet(entry, key, "proxies", report),
            _ => unknown_field(entry, key, report),
        }
    }
    if let Some((nkeys, users)) = &mut block.users {
        apply_default_permissions(users, nkeys, block.default_permissions.as_ref());
    }
    Ok(block)
}

/// `authorization { timeout }`: seconds (integer or float) or a duration string; over a minute
/// is nats-server's warning. `None` when nats-server gives up on the block.
fn auth_timeout(key: &str, item: &Item, report: &mut Report) -> Option<Duration> {
    let (seconds, shown) = match &item.value {
        Value::Integer(seconds) => (*seconds as f64, seconds.to_string()),
        Value::Float(seconds) => (*seconds, go_float(*seconds)),
        Value::String(text) => match go::parse_duration(text) {
            Ok(nanos) => (nanos as f64 / 1e9, text.clone()),
            Err(error) => {
                report.error(
                    item,
                    format!("error parsing authorization config, 'timeout' {error}"),
                );
                return None;
            }
        },
        _ => {
            report.error(
                item,
                "error parsing authorization config, 'timeout' wrong type",
            );
            return None;
        }
    };
    if seconds > 60.0 {
        report.warnings.push(format!(
            "{}: invalid use of field {}: timeout of {shown} ({seconds:.6} seconds) is high, consider keeping it under 60 seconds. possibly caused by unquoted duration; use '1m' instead of 1m, for example",
            source(item),
            quote(key)
        ));
    }
    if seconds < 0.0 || !seconds.is_finite() {
        report.error(
            item,
            format!("error parsing authorization config, 'timeout' of {shown} is negative (natsring needs a positive one)"),
        );
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

/// nats-server's `parseUsers`: `None` when the list is refused as a whole (an entry without a
/// user, a bad nkey), the error reported.
fn parse_users(item: &Item, report: &mut Report) -> Option<(Vec<NkeyUser>, Vec<User>)> {
    let Value::Array(entries) = &item.value else {
        report.error(
            item,
            format!(
                "Expected users field to be an array, got {}",
                go_value(&item.value)
            ),
        );
        return None;
    };
    let mut nkeys = Vec::new();
    let mut users = Vec::new();
    for entry in entries {
        let Value::Map(fields) = &entry.value else {
            report.error(
                entry,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    go_value(&entry.value)
                ),
            );
            continue;
        };
        let mut user = User::default();
        let mut nkey = String::new();
        let mut permissions = None;
        // nats-server reports a bad entry at the last field it looked at.
        let mut last = entry;
        for (key, field) in fields.iter() {
            last = field;
            match key.to_lowercase().as_str() {
                "nkey" => nkey = string(field, report)?.to_string(),
                "user" | "username" => user.username = string(field, report)?.to_string(),
                "pass" | "password" => user.password = string(field, report)?.to_string(),
                "permission" | "permissions" | "authorization" => {
                    permissions = parse_permissions(field, report)
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    user.allowed_connection_types = connection_types(field, report)
                }
                "proxy_required" => not_yet(field, key, "proxies", report),
                _ => unknown_field(field, key, report),
            }
        }
        if nkey.is_empty() && user.username.is_empty() {
            report.error(last, "User entry requires a user");
            return None;
        }
        if nkey.is_empty() {
            user.permissions = permissions;
            users.push(user);
            continue;
        }
        if !is_public_key(&nkey, KeyKind::User) {
            report.error(last, "Not a valid public nkey for a user");
            return None;
        }
        if !user.username.is_empty() || !user.password.is_empty() {
            report.error(last, "Nkey users do not take usernames or passwords");
            return None;
        }
        nkeys.push(NkeyUser {
            nkey,
            permissions,
            account: None,
            allowed_connection_types: user.allowed_connection_types,
        });
    }
    Some((nkeys, users))
}

/// `allowed_connection_types`: a string or a list of strings, upper-cased; unknown ones are
/// an error (the known ones are kept, as nats-server keeps them).
fn connection_types(item: &Item, report: &mut Report) -> Option<BTreeSet<String>> {
    let given: Vec<&str> = match &item.value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(entries) => entries
            .iter()
            .filter_map(|entry| match &entry.value {
                Value::String(text) => Some(text.as_str()),
                other => {
                    report.error(
                        entry,
                        format!(
                            "error parsing allowed connection types: unsupported type in array {}",
                            other.go_type_name()
                        ),
                    );
                    None
                }
            })
            .collect(),
        other => {
            report.error(
                item,
                format!(
                    "error parsing allowed connection types: unsupported type {}",
                    other.go_type_name()
                ),
            );
            return None;
        }
    };
    let mut known = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in given {
        let upper = name.to_uppercase();
        if CONNECTION_TYPES.contains(&upper.as_str()) {
            known.insert(upper);
        } else {
            unknown.push(quote(&upper));
        }
    }
    if !unknown.is_empty() {
        report.error(
            item,
            format!("invalid connection types [{}]", unknown.join(" ")),
        );
    }
    Some(known)
}

/// nats-server's `parseUserPermissions` (with `validateResponsePermissions`' defaults).
pub(super) fn parse_permissions(item: &Item, report: &mut Report) -> Option<Permissions> {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            format!(
                "Expected permissions to be a map/struct, got {}",
                go_value(&item.value)
            ),
        );
        return None;
    };
    let mut permissions = Permissions::default();
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "pub" | "publish" | "import" => {
                if let Ok(publish) = subject_permission(entry, false, report) {
                    permissions.publish = publish;
                }
            }
            "sub" | "subscribe" | "export" => {
                if let Ok(subscribe) = subject_permission(entry, true, report) {
                    permissions.subscribe = subscribe;
                }
            }
            "publish_allow_responses" | "allow_responses" => {
                permissions.response = match &entry.value {
                    Value::Bool(true) => Some(ResponsePermission {
                        max_msgs: ResponsePermission::MAX_MSGS_DEFAULT,
                        expires: ResponsePermission::EXPIRES_DEFAULT,
                    }),
                    Value::Bool(false) => None,
                    _ => allow_responses(entry, report),
                };
            }
            _ => {
                if !entry.used_variable {
                    report.error(
                        entry,
                        format!("Unknown field {} parsing permissions", quote(key)),
                    );
                }
            }
        }
    }
    if permissions.response.is_some() {
        // Responses only: the blanket publish allow is turned off.
        let publish = permissions.publish.get_or_insert_with(Default::default);
        publish.allow.get_or_insert_with(Vec::new);
    }
    Some(permissions)
}

/// `publish`/`subscribe`: a subject, a list, or `{allow, deny}`. `Err` when nats-server drops
/// it (the error reported); `Ok(None)` for an empty map, which nats-server takes as not set.
fn subject_permission(
    item: &Item,
    allow_queue: bool,
    report: &mut Report,
) -> Result<Option<SubjectPermission>, ()> {
    let Value::Map(map) = &item.value else {
        // nats-server passes the bare value on: errors about it have no position.
        let allow = permission_subjects(item, false, allow_queue, report)?;
        return Ok(Some(SubjectPermission {
            allow: Some(allow),
            deny: None,
        }));
    };
    if map.is_empty() {
        return Ok(None);
    }
    let mut permission = SubjectPermission::default();
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "allow" => {
                if let Ok(subjects) = permission_subjects(entry, true, allow_queue, report) {
                    permission.allow = Some(subjects);
                }
            }
            "deny" => {
                if let Ok(subjects) = permission_subjects(entry, true, allow_queue, report) {
                    permission.deny = Some(subjects);
                }
            }
            _ => {
                if !entry.used_variable {
                    report.error(
                        entry,
                        format!(
                            "Unknown field name {} parsing subject permissions, only 'allow' or 'deny' are permitted",
                            quote(key)
                        ),
                    );
                }
            }
        }
    }
    Ok(Some(permission))
}

/// nats-server's `parsePermSubjects`: a subject or a list of them, checked by
/// `checkPermSubjectArray`. `positioned`: whether nats-server knows where the value is.
fn permission_subjects(
    item: &Item,
    positioned: bool,
    allow_queue: bool,
    report: &mut Report,
) -> Result<Vec<String>, ()> {
    let fail = |report: &mut Report, reason: String| {
        if positioned {
            report.error(item, reason);
        } else {
            report.errors.push(reason);
        }
    };
    let subjects = match &item.value {
        Value::String(subject) => vec![subject.clone()],
        Value::Array(entries) => {
            let mut subjects = Vec::with_capacity(entries.len());
            for entry in entries {
                match &entry.value {
                    Value::String(subject) => subjects.push(subject.clone()),
                    _ => {
                        report.error(
                            entry,
                            "Subject in permissions array cannot be cast to string",
                        );
                        return Err(());
                    }
                }
            }
            subjects
        }
        other => {
            fail(
                report,
                format!(
                    "Expected subject permissions to be a subject, or array of subjects, got {}",
                    other.go_type_name()
                ),
            );
            return Err(());
        }
    };
    if let Err(reason) = check_permission_subjects(&subjects, allow_queue) {
        fail(report, reason);
        return Err(());
    }
    Ok(subjects)
}

/// nats-server's `checkPermSubjectArray`: valid subjects; for subscriptions also
/// `"<subject> <queue>"`.
pub(crate) fn check_permission_subjects(
    subjects: &[String],
    allow_queue: bool,
) -> Result<(), String> {
    for subject in subjects {
        if valid_subject(subject.as_bytes()) {
            continue;
        }
        let invalid = |subject: &str| format!("subject {} is not a valid subject", quote(subject));
        if !allow_queue {
            return Err(invalid(subject));
        }
        let fields: Vec<&str> = subject.split_ascii_whitespace().collect();
        match fields.as_slice() {
            [subject, queue] => {
                if !valid_subject(subject.as_bytes()) {
                    return Err(invalid(subject));
                }
                if !valid_subject(queue.as_bytes()) {
                    return Err(format!("queue {} is not a valid queue", quote(queue)));
                }
            }
            _ => return Err(invalid(subject)),
        }
    }
    Ok(())
}

/// `allow_responses { max, expires }`. Negative values mean no limit (nats-server's words);
/// zero, the default.
fn allow_responses(item: &Item, report: &mut Report) -> Option<ResponsePermission> {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            "error parsing response permissions, expected a boolean or a map",
        );
        return None;
    };
    let mut response = ResponsePermission {
        max_msgs: ResponsePermission::MAX_MSGS_DEFAULT,
        expires: ResponsePermission::EXPIRES_DEFAULT,
    };
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "max" | "max_msgs" | "max_messages" | "max_responses" => {
                let max = integer(entry, report)?;
                if max != 0 {
                    response.max_msgs = max;
                }
            }
            "expires" | "expiration" | "ttl" => {
                let Value::String(text) = &entry.value else {
                    report.error(entry, "error parsing expires, not a duration string");
                    return None;
                };
                match go::parse_duration(text) {
                    Err(error) => {
                        report.error(entry, format!("error parsing expires: {error}"));
                        return None;
                    }
                    Ok(0) => {}
                    // Negative: no expiry.
                    Ok(nanos) if nanos < 0 => response.expires = Duration::MAX,
                    Ok(nanos) => response.expires = Duration::from_nanos(nanos as u64),
                }
            }
            _ => {
                if !entry.used_variable {
                    report.error(
                        entry,
                        format!("Unknown field {} parsing permissions", quote(key)),
                    );
                }
            }
        }
    }
    Some(response)
}

fn apply_default_permissions(
    users: &mut [User],
    nkeys: &mut [NkeyUser],
    defaults: Option<&Permissions>,
) {
    let Some(defaults) = defaults else {
        return;
    };
    for user in users {
        user.permissions.get_or_insert_with(|| defaults.clone());
    }
    for nkey in nkeys {
        nkey.permissions.get_or_insert_with(|| defaults.clone());
    }
}

/// The user names and nkeys configured so far (nats-server's duplicate check).
fn configured_names(options: &Options) -> HashSet<String> {
    let users = options
        .auth
        .users
        .iter()
        .flatten()
        .map(|user| user.username.clone());
    let nkeys = options
        .auth
        .nkeys
        .iter()
        .flatten()
        .map(|nkey| nkey.nkey.clone());
    users.chain(nkeys).collect()
}

/// Appends to a list that is `None` until it has an entry (nats-server's nil slice).
fn extend<T>(list: &mut Option<Vec<T>>, more: Vec<T>) {
    if !more.is_empty() {
        list.get_or_insert_with(Vec::new).extend(more);
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

// ---------------------------------------------------------------------------------------------
// Accounts.
// ---------------------------------------------------------------------------------------------

/// One account block, parsed.
#[derive(Default)]
struct AccountBlock<'file> {
    exports: Vec<Export>,
    imports: Vec<Import>,
    mappings: Vec<Mapping>,
    default_permissions: Option<Permissions>,
    limits: AccountLimits,
    /// `users`: where it was written, the nkey users and the users.
    users: Option<(&'file Item, Vec<NkeyUser>, Vec<User>)>,
}

fn parse_account<'file>(fields: &'file Map, report: &mut Report) -> AccountBlock<'file> {
    let mut account = AccountBlock::default();
    for (key, entry) in fields.iter() {
        match key.to_lowercase().as_str() {
            "nkey" => match &entry.value {
                Value::String(key) if is_public_key(key, KeyKind::Account) => {}
                other => report.error(
                    entry,
                    format!(
                        "Not a valid public nkey for an account: {}",
                        match other {
                            Value::String(text) => quote(text),
                            other => format!("%!q({}={})", other.go_type_name(), go_value(other)),
                        }
                    ),
                ),
            },
            "imports" => {
                if let Some(imports) = parse_imports(entry, report) {
                    account.imports.extend(imports);
                }
            }
            "exports" => {
                if let Some(exports) = parse_exports(entry, report) {
                    account.exports.extend(exports);
                }
            }
            "jetstream" => not_yet(entry, key, "JetStream", report),
            "users" => {
                if let Some((nkeys, users)) = parse_users(entry, report) {
                    account.users = Some((entry, nkeys, users));
                }
            }
            "default_permissions" => {
                if let Some(permissions) = parse_permissions(entry, report) {
                    account.default_permissions = Some(permissions);
                }
            }
            "mappings" | "maps" => {
                if let Some(mappings) = parse_mappings(entry, report) {
                    account.mappings = mappings;
                }
            }
            "limits" => parse_limits(entry, &mut account.limits, report),
            "msg_trace" | "trace_dest" => not_yet(entry, key, "message tracing", report),
            _ => unknown_field(entry, key, report),
        }
    }
    account
}

/// `limits { max_connections, max_subscriptions, max_payload, max_leafnodes }`.
fn parse_limits(item: &Item, limits: &mut AccountLimits, report: &mut Report) {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            format!(
                "Expected account limits to be a map/struct, got {}",
                go_value(&item.value)
            ),
        );
        return;
    };
    for (key, entry) in map.iter() {
        let target = match key.to_lowercase().as_str() {
            "max_connections" | "max_conn" => &mut limits.max_connections,
            "max_subscriptions" | "max_subs" => &mut limits.max_subscriptions,
            "max_payload" | "max_pay" => &mut limits.max_payload,
            // Leaf nodes: natsring has none, so no connection can count against it.
            "max_leafnodes" | "max_leafs" => {
                if integer(entry, report).is_none() {
                    return;
                }
                continue;
            }
            _ => {
                if !entry.used_variable {
                    report.error(
                        entry,
                        format!("Unknown field {} parsing account limits", quote(key)),
                    );
                }
                continue;
            }
        };
        let Some(value) = integer(entry, report) else {
            return;
        };
        // nats-server keeps these in an int32.
        *target = i64::from(value as i32);
    }
}

/// nats-server's `parseAccountExports`.
fn parse_exports(item: &Item, report: &mut Report) -> Option<Vec<Export>> {
    let Value::Array(entries) = &item.value else {
        report.error(
            item,
            format!(
                "Exports should be an array, got {}",
                item.value.go_type_name()
            ),
        );
        return None;
    };
    Some(
        entries
            .iter()
            .filter_map(|entry| parse_export(entry, report))
            .collect(),
    )
}

/// nats-server's `parseExportStreamOrService`; `None` also for an entry naming neither.
fn parse_export(item: &Item, report: &mut Report) -> Option<Export> {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            format!(
                "Export Items should be a map with type entry, got {}",
                item.value.go_type_name()
            ),
        );
        return None;
    };
    let mut kind_subject: Option<(ExportKind, String)> = None;
    let mut accounts = None;
    let mut response: Option<(&Item, ResponseType)> = None;
    let mut threshold: Option<(&Item, Option<Duration>)> = None;
    let mut latency: Option<&Item> = None;
    let mut account_token_position = 0;
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            kind @ ("stream" | "service") => {
                let (this, other) = if kind == "stream" {
                    (ExportKind::Stream, "service")
                } else {
                    (ExportKind::Service, "stream")
                };
                if kind_subject.is_some() {
                    report.error(
                        entry,
                        format!(
                            "Detected {kind} {} but already saw a {other}",
                            go_quote_value(&entry.value)
                        ),
                    );
                    continue;
                }
                let Value::String(subject) = &entry.value else {
                    report.error(
                        entry,
                        format!(
                            "Expected {kind} name to be string, got {}",
                            entry.value.go_type_name()
                        ),
                    );
                    continue;
                };
                kind_subject = Some((this, subject.clone()));
            }
            "response" | "response_type" => {
                if response.is_some() {
                    report.error(entry, "Duplicate response type definition");
                    continue;
                }
                let Value::String(text) = &entry.value else {
                    report.error(
                        entry,
                        format!(
                            "Expected response type to be string, got {}",
                            entry.value.go_type_name()
                        ),
                    );
                    response = Some((entry, ResponseType::Singleton));
                    continue;
                };
                let kind = match text.to_lowercase().as_str() {
                    "single" | "singleton" => ResponseType::Singleton,
                    "stream" => ResponseType::Stream,
                    "chunk" | "chunked" => ResponseType::Chunked,
                    _ => {
                        report.error(entry, format!("Unknown response type: {}", quote(text)));
                        response = Some((entry, ResponseType::Singleton));
                        continue;
                    }
                };
                response = Some((entry, kind));
            }
            "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                if threshold.is_some() {
                    report.error(entry, "Duplicate response threshold detected");
                    continue;
                }
                let Value::String(text) = &entry.value else {
                    report.error(
                        entry,
                        format!(
                            "Expected response threshold to be a parseable time duration, got {}",
                            entry.value.go_type_name()
                        ),
                    );
                    threshold = Some((entry, None));
                    continue;
                };
                match go::parse_duration(text) {
                    Ok(nanos) => {
                        threshold = Some((
                            entry,
                            (nanos > 0).then(|| Duration::from_nanos(nanos as u64)),
                        ))
                    }
                    Err(_) => {
                        report.error(
                            entry,
                            format!(
                                "Expected response threshold to be a parseable time duration, got {}",
                                quote(text)
                            ),
                        );
                        threshold = Some((entry, None));
                    }
                }
            }
            "accounts" => {
                let Value::Array(names) = &entry.value else {
                    report.wrong_type(entry, "[]interface {}");
                    return None;
                };
                let mut list = Vec::with_capacity(names.len());
                for name in names {
                    list.push(string(name, report)?.to_string());
                }
                accounts = Some(list);
            }
            "latency" => {
                if check_latency(entry, report) {
                    latency = Some(entry);
                }
            }
            "account_token_position" => {
                account_token_position =
                    integer(entry, report)?.clamp(0, i64::from(u32::MAX)) as u32
            }
            "allow_trace" => not_yet(entry, key, "message tracing", report),
            _ => unknown_field(entry, key, report),
        }
    }
    let (kind, subject) = kind_subject?;
    if kind == ExportKind::Stream {
        for directive in [
            response.map(|(item, _)| item),
            threshold.map(|(item, _)| item),
        ]
        .into_iter()
        .flatten()
        {
            report.error(directive, "Detected response directive on non-service");
        }
        if let Some(latency) = latency {
            report.error(latency, "Detected latency directive on non-service");
        }
    }
    Some(Export {
        kind,
        subject,
        accounts,
        response_type: response.map(|(_, kind)| kind).unwrap_or_default(),
        response_threshold: threshold.and_then(|(_, threshold)| threshold),
        account_token_position,
    })
}

/// Go's `%q` of a value that may not be a string (`%!q(int64=1)` for what Go cannot quote).
fn go_quote_value(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        other => format!("%!q({}={})", other.go_type_name(), go_value(other)),
    }
}

/// nats-server's `parseServiceLatency`, for its errors only: natsring does not sample latency
/// (it has no system account events yet), so a valid `latency` is accepted and ignored.
fn check_latency(item: &Item, report: &mut Report) -> bool {
    let map = match &item.value {
        Value::String(_) => return true,
        Value::Map(map) => map,
        other => {
            report.error(
                item,
                format!(
                    "Expected latency entry to be a map/struct or string, got {}",
                    other.go_type_name()
                ),
            );
            return false;
        }
    };
    if let Some(sampling) = map.get("sampling") {
        let sample = match &sampling.value {
            Value::Integer(sample) => Some(*sample),
            Value::String(text) if text.trim().eq_ignore_ascii_case("headers") => None,
            Value::String(text) => {
                let digits = text.strip_suffix('%').unwrap_or(text);
                match go_atoi(digits) {
                    Ok(sample) => Some(sample),
                    Err(error) => {
                        report.error(sampling, format!("Failed to parse latency sample: {error}"));
                        return false;
                    }
                }
            }
            other => {
                report.error(
                    sampling,
                    format!(
                        "Expected latency sample to be a string or map/struct, got {}",
                        other.go_type_name()
                    ),
                );
                return false;
            }
        };
        if sample.is_some_and(|sample| !(1..=100).contains(&sample)) {
            report.error(sampling, "bad sampling percentage, should be 1-100");
            return false;
        }
    }
    match map.get("subject") {
        None => {
            report.error(item, "Latency subject required, but missing");
            false
        }
        Some(subject) if !matches!(subject.value, Value::String(_)) => {
            report.error(
                subject,
                "Expected latency subject to be a string, got string",
            );
            false
        }
        Some(_) => true,
    }
}

/// Go's `strconv.Atoi`, its error as `%v` prints it.
fn go_atoi(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            quote(text)
        ));
    }
    text.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", quote(text)))
}

/// nats-server's `parseAccountImports`.
fn parse_imports(item: &Item, report: &mut Report) -> Option<Vec<Import>> {
    let Value::Array(entries) = &item.value else {
        report.error(
            item,
            format!(
                "Imports should be an array, got {}",
                item.value.go_type_name()
            ),
        );
        return None;
    };
    let mut imports: Vec<Import> = Vec::new();
    for entry in entries {
        let Some(import) = parse_import(entry, report) else {
            continue;
        };
        if import.kind == ExportKind::Service {
            let to = import.to.as_deref().unwrap_or(&import.subject);
            if let Some(earlier) = imports.iter().find(|earlier| {
                earlier.kind == ExportKind::Service
                    && earlier.account == import.account
                    && earlier.to.as_deref().unwrap_or(&earlier.subject) == to
            }) {
                report.error(
                    entry,
                    format!(
                        "Duplicate service import subject {}, previously used in import for account {}, subject {}",
                        quote(to),
                        quote(&earlier.account),
                        quote(&earlier.subject)
                    ),
                );
                continue;
            }
        }
        imports.push(import);
    }
    Some(imports)
}

/// nats-server's `parseImportStreamOrService`; `None` also for an entry naming neither.
fn parse_import(item: &Item, report: &mut Report) -> Option<Import> {
    let Value::Map(map) = &item.value else {
        report.error(
            item,
            format!(
                "Import Items should be a map with type entry, got {}",
                item.value.go_type_name()
            ),
        );
        return None;
    };
    let mut found: Option<(ExportKind, String, String)> = None;
    let mut prefix: Option<(&Item, String)> = None;
    let mut to: Option<(&Item, String)> = None;
    let mut share = false;
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            kind @ ("stream" | "service") => {
                let (this, other, name) = if kind == "stream" {
                    (ExportKind::Stream, "service", "Stream")
                } else {
                    (ExportKind::Service, "stream", "Service")
                };
                if found.is_some() {
                    report.error(entry, format!("Detected {kind} but already saw a {other}"));
                    continue;
                }
                let Value::Map(source) = &entry.value else {
                    report.error(
                        entry,
                        format!(
                            "{name} entry should be an account map, got {}",
                            entry.value.go_type_name()
                        ),
                    );
                    continue;
                };
                let (account, subject) = import_source(source, report)?;
                if account.is_empty() || subject.is_empty() {
                    report.error(entry, "Expect an account name and a subject");
                    continue;
                }
                found = Some((this, account, subject));
            }
            "prefix" => prefix = Some((entry, string(entry, report)?.to_string())),
            "to" => to = Some((entry, string(entry, report)?.to_string())),
            "share" => set_bool(&mut share, entry, report),
            "allow_trace" => not_yet(entry, key, "message tracing", report),
            _ => unknown_field(entry, key, report),
        }
    }
    let (kind, account, subject) = found?;
    let empty = |value: &Option<(&Item, String)>| {
        value
            .as_ref()
            .map(|(_, text)| text.clone())
            .filter(|text| !text.is_empty())
    };
    if kind == ExportKind::Stream {
        if let (Some(_), Some((to_item, _))) = (empty(&prefix), &to) {
            report.error(
                to_item,
                "Stream import can not have a 'prefix' and a 'to' property",
            );
        }
        let (to, is_prefix) = match (empty(&prefix), empty(&to)) {
            (Some(prefix), _) => (Some(prefix), true),
            (None, to) => (to, false),
        };
        return Some(Import {
            kind,
            account,
            subject,
            to,
            prefix: is_prefix,
            share: false,
        });
    }
    Some(Import {
        kind,
        account,
        subject,
        to: empty(&to),
        prefix: false,
        share,
    })
}

/// `{account, subject}` of an import.
fn import_source(map: &Map, report: &mut Report) -> Option<(String, String)> {
    let mut account = String::new();
    let mut subject = String::new();
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "account" => account = string(entry, report)?.to_string(),
            "subject" => subject = string(entry, report)?.to_string(),
            _ => unknown_field(entry, key, report),
        }
    }
    Some((account, subject))
}

/// Adds an export to its account after nats-server's checks (`addStreamExportWithAccountPos`,
/// `addServiceExportWithResponseAndAccountPos`), reported at the `accounts` key.
fn add_export(
    names: &[String],
    account: &mut AccountConfig,
    export: Export,
    at: &Item,
    report: &mut Report,
) {
    let what = match export.kind {
        ExportKind::Stream => "stream",
        ExportKind::Service => "service",
    };
    for name in export.accounts.iter().flatten() {
        if !names.contains(name) {
            report.error(
                at,
                format!("{} account not defined for {what} export", quote(name)),
            );
        }
    }
    if export.account_token_position > 0 {
        let position = export.account_token_position as usize;
        let tokens: Vec<&str> = export.subject.split('.').collect();
        if tokens.len() < position || tokens[position - 1] != "*" {
            report.error(
                at,
                format!(
                    "Error adding {what} export {}: sublist: invalid subject",
                    quote(&export.subject)
                ),
            );
            return;
        }
    }
    // A later export of the same subject and kind replaces the earlier one.
    account
        .exports
        .retain(|earlier| earlier.kind != export.kind || earlier.subject != export.subject);
    account.exports.push(export);
}

/// Adds an import to its account after nats-server's checks: the exporting account exists,
/// exports the subject to the importer, a stream's prefix is literal, a stream is not imported
/// twice, a service's subjects are valid.
fn add_import(options: &mut Options, index: usize, import: Import, at: &Item, report: &mut Report) {
    let what = match import.kind {
        ExportKind::Stream => "stream",
        ExportKind::Service => "service",
    };
    let Some(exporter) = options
        .accounts
        .iter()
        .find(|account| account.name == import.account)
    else {
        report.error(
            at,
            format!(
                "{} account not defined for {what} import",
                quote(&import.account)
            ),
        );
        return;
    };
    let importer = options.accounts[index].name.clone();
    let fail = |report: &mut Report, reason: &str| {
        report.error(
            at,
            format!(
                "Error adding {what} import {}: {reason}",
                quote(&import.subject)
            ),
        );
    };
    match import.kind {
        ExportKind::Stream => {
            if !crate::account::links::import_authorized(
                exporter,
                ExportKind::Stream,
                &import.subject,
                &importer,
            ) {
                fail(report, "stream import not authorized");
                return;
            }
            if import.prefix {
                let prefix = import.to.as_deref().unwrap_or_default();
                if !crate::sublist::subject::is_literal(prefix.as_bytes()) {
                    fail(
                        report,
                        "stream import prefix can not contain wildcard tokens",
                    );
                    return;
                }
            }
            let duplicate = options.accounts[index].imports.iter().any(|earlier| {
                earlier.kind == ExportKind::Stream
                    && earlier.account == import.account
                    && earlier.subject == import.subject
            });
            if duplicate {
                fail(report, "stream import already exists");
                return;
            }
        }
        ExportKind::Service => {
            let to = import.to.as_deref().unwrap_or(&import.subject);
            if !valid_subject(import.subject.as_bytes()) || !valid_subject(to.as_bytes()) {
                fail(report, "sublist: invalid subject");
                return;
            }
            if !crate::account::links::import_authorized(
                exporter,
                ExportKind::Service,
                &import.subject,
                &importer,
            ) {
                fail(report, "service import not authorized");
                return;
            }
        }
    }
    options.accounts[index].imports.push(import);
}

// ---------------------------------------------------------------------------------------------
// Mappings.
// ---------------------------------------------------------------------------------------------

/// nats-server's `parseAccountMappings`: `{ "source": "destination" }`, or a destination
/// `{destination, weight, cluster}`, or a list of those. `None` when the value is not a map.
fn parse_mappings(item: &Item, report: &mut Report) -> Option<Vec<Mapping>> {
    let Value::Map(map) = &item.value else {
        report.wrong_type(item, "map[string]interface {}");
        return None;
    };
    let mut mappings: Vec<Mapping> = Vec::new();
    for (source, entry) in map.iter() {
        if !valid_subject(source.as_bytes()) {
            report.error(
                item,
                format!("Subject {} is not a valid subject", quote(source)),
            );
            continue;
        }
        let result = match &entry.value {
            Value::String(destination) => check_mapping(
                source,
                &[WeightedDestination {
                    subject: destination.clone(),
                    weight: 100,
                    cluster: None,
                }],
            )
            .map_err(|error| {
                format!(
                    "Error adding mapping for {} to {} : {error}",
                    quote(source),
                    quote(destination)
                )
            })
            .map(|()| {
                vec![WeightedDestination {
                    subject: destination.clone(),
                    weight: 100,
                    cluster: None,
                }]
            }),
            Value::Array(elements) => {
                let destinations: Vec<WeightedDestination> = elements
                    .iter()
                    .filter_map(|element| map_destination(element, report))
                    .collect();
                check_mapping(source, &destinations)
                    .map_err(|error| {
                        format!("Error adding mapping for {} : {error}", quote(source))
                    })
                    .map(|()| destinations)
            }
            _ => {
                let Some(destination) = map_destination(entry, report) else {
                    continue;
                };
                let destinations = vec![destination];
                check_mapping(source, &destinations)
                    .map_err(|error| {
                        format!("Error adding mapping for {} : {error}", quote(source))
                    })
                    .map(|()| destinations)
            }
        };
        match result {
            Err(reason) => report.error(entry, reason),
            Ok(destinations) => mappings.push(Mapping {
                source: source.to_string(),
                destinations,
            }),
        }
    }
    Some(mappings)
}

/// nats-server's `parseAccountMapDest`.
fn map_destination(item: &Item, report: &mut Report) -> Option<WeightedDestination> {
    let Value::Map(map) = &item.value else {
        report.error(item, "Expected an entry for the mapping destination");
        return None;
    };
    let mut destination = WeightedDestination {
        subject: String::new(),
        weight: 0,
        cluster: None,
    };
    let mut weighted = false;
    for (key, entry) in map.iter() {
        match key.to_lowercase().as_str() {
            "dest" | "destination" => destination.subject = string(entry, report)?.to_string(),
            "weight" => {
                let weight = match &entry.value {
                    Value::String(text) => {
                        let digits = text.strip_suffix('%').unwrap_or(text);
                        match go_atoi(digits) {
                            Ok(weight) => weight,
                            Err(_) => {
                                report.error(
                                    entry,
                                    format!(
                                        "Invalid weight {} for mapping destination",
                                        quote(digits)
                                    ),
                                );
                                return None;
                            }
                        }
                    }
                    Value::Integer(weight) => *weight,
                    other => {
                        report.error(
                            entry,
                            format!("Unknown entry type for weight of {}\n", go_value(other)),
                        );
                        return None;
                    }
                };
                if !(0..=100).contains(&weight) {
                    report.error(
                        entry,
                        format!("Invalid weight {weight} for mapping destination"),
                    );
                    return None;
                }
                destination.weight = weight as u8;
                weighted = true;
            }
            "cluster" => destination.cluster = non_empty(string(entry, report)?),
            _ => {
                report.error(
                    entry,
                    format!("Unknown field {} for mapping destination", quote(key)),
                );
                return None;
            }
        }
    }
    if !weighted {
        report.error(
            item,
            format!(
                "Missing weight for mapping destination {}",
                quote(&destination.subject)
            ),
        );
        return None;
    }
    Some(destination)
}

/// nats-server's `AddWeightedMappings` checks: no destination twice, weights per cluster at
/// most 100 in all, and each destination a valid template for the source (`ValidateMapping`).
fn check_mapping(source: &str, destinations: &[WeightedDestination]) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut totals: Vec<(Option<&str>, u32)> = Vec::new();
    for destination in destinations {
        if !seen.insert(destination.subject.as_str()) {
            return Err(format!(
                "duplicate entry for {}",
                quote(&destination.subject)
            ));
        }
        let cluster = destination.cluster.as_deref();
        let total = match totals.iter_mut().find(|(name, _)| *name == cluster) {
            Some((_, total)) => total,
            None => {
                totals.push((cluster, 0));
                &mut totals.last_mut().expect("just pushed").1
            }
        };
        *total += u32::from(destination.weight);
        if *total > 100 {
            return Err("total weight needs to be <= 100".to_string());
        }
        mapping_template::validate(source, &destination.subject)?;
    }
    Ok(())
}

/// The checks nats-server makes on a mapping's destination when the configuration is loaded
/// (`ValidateMapping`, and the shape checks of `NewSubjectTransform`), with its texts. What a
/// function's arguments mean beyond their count and wildcard indexes is the mapping engine's.
mod mapping_template {
    use crate::sublist::subject::valid_subscribe_subject;

    const INVALID: &str = "invalid mapping destination";

    /// nats-server's `mappingDestinationErr`: the reason, and the token when there is one.
    fn in_token(token: &str, reason: &str) -> String {
        if token.is_empty() {
            return format!("{INVALID}: {reason}");
        }
        format!("{INVALID}: {reason} in {token}")
    }

    /// The function names nats-server knows, as it spells them: each word's first letter may
    /// be either case, no other.
    const FUNCTIONS: [&str; 10] = [
        "partition",
        "wildcard",
        "splitFromLeft",
        "splitFromRight",
        "sliceFromLeft",
        "sliceFromRight",
        "split",
        "left",
        "right",
        "random",
    ];

    /// The function `name` is, lower-cased, if nats-server knows it.
    fn known_function(name: &str) -> Option<String> {
        FUNCTIONS.iter().find_map(|canonical| {
            let same = name.len() == canonical.len()
                && name.bytes().zip(canonical.bytes()).enumerate().all(
                    |(index, (given, expected))| {
                        let word_start = index == 0 || expected.is_ascii_uppercase();
                        given == expected || (word_start && given.eq_ignore_ascii_case(&expected))
                    },
                );
            same.then(|| canonical.to_lowercase())
        })
    }

    /// `{{ name(args) }}` split into its function (lower-cased, if nats-server knows it) and
    /// its arguments' text.
    fn function(token: &str) -> Option<(Option<String>, &str)> {
        let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
        let open = inner.find('(')?;
        let close = inner.rfind(')')?;
        if close < open || !inner[close + 1..].trim().is_empty() {
            return None;
        }
        Some((
            known_function(inner[..open].trim_end()),
            &inner[open + 1..close],
        ))
    }

    fn is_function_token(token: &str) -> bool {
        let bytes = token.as_bytes();
        bytes.len() > 4 && token.starts_with("{{") && token.ends_with("}}")
    }

    pub(super) fn validate(source: &str, destination: &str) -> Result<(), String> {
        if destination.is_empty() {
            return Ok(());
        }
        let mut after_rest = false;
        for token in destination.split('.') {
            if token.is_empty() || after_rest {
                return Err(in_token(token, "invalid transform"));
            }
            if is_function_token(token) {
                if function(token).is_none_or(|(known, _)| known.is_none()) {
                    return Err(in_token(token, "unknown function"));
                }
                continue;
            }
            if token == ">" {
                after_rest = true;
            } else if token.contains([' ', '\t', '\n', '\r', '\x0c']) {
                return Err(format!("{INVALID}: invalid transform"));
            }
        }
        transform_shape(source, destination)
    }

    /// `NewSubjectTransform`'s checks that do not need the engine: both sides subjects, no
    /// `*` in the destination, `>` on both sides or neither, and wildcard indexes that exist.
    fn transform_shape(source: &str, destination: &str) -> Result<(), String> {
        let source_tokens: Vec<&str> = source.split('.').collect();
        let destination_tokens: Vec<&str> = destination.split('.').collect();
        let source_wildcards = source_tokens.iter().filter(|token| **token == "*").count();
        let source_rest = source_tokens.last() == Some(&">");
        let destination_rest = destination_tokens.last() == Some(&">");
        // nats-server's `subjectInfo`: no empty token, `>` last; spaces are not looked at.
        if !valid_subscribe_subject(source.as_bytes())
            || !valid_subscribe_subject(destination.as_bytes())
            || destination_tokens.contains(&"*")
            || source_rest != destination_rest
        {
            return Err("invalid subject".to_string());
        }
        for token in destination_tokens {
            let indexes = wildcard_indexes(token)?;
            if source_wildcards == 0 && !source_rest {
                if let Some(kind) = indexes {
                    if kind.uses_wildcards {
                        return Err(in_token(token, "wildcard index out of range"));
                    }
                }
                continue;
            }
            for index in indexes.map(|kind| kind.indexes).unwrap_or_default() {
                if index > source_wildcards as i64 {
                    return Err(in_token(
                        &format!("{token}: [{index}]"),
                        "wildcard index out of range",
                    ));
                }
            }
        }
        Ok(())
    }

    struct Placeholders {
        /// Whether the function takes wildcard indexes (all but `partition` with only a
        /// count, and `random`).
        uses_wildcards: bool,
        indexes: Vec<i64>,
    }

    /// The wildcard indexes a destination token refers to (`$1`, `{{wildcard(1)}}`,
    /// `{{partition(10,1,2)}}`, `{{split(1,-)}}`, ...), with nats-server's argument-count
    /// errors. `None`: a literal token.
    fn wildcard_indexes(token: &str) -> Result<Option<Placeholders>, String> {
        if let Some(number) = token.strip_prefix('$') {
            if let Ok(index) = number.parse::<i64>() {
                return Ok(Some(Placeholders {
                    uses_wildcards: true,
                    indexes: vec![index],
                }));
            }
            return Ok(None);
        }
        if !is_function_token(token) {
            return Ok(None);
        }
        let Some((Some(name), arguments)) = function(token) else {
            return Ok(None);
        };
        let arguments: Vec<&str> = arguments.split(',').map(str::trim).collect();
        let not_enough = || in_token(token, "not enough arguments passed to the function");
        let too_many = || in_token(token, "too many arguments passed to the function");
        let invalid = || in_token(token, "function argument is invalid or in the wrong format");
        let index = |text: &str| text.parse::<i64>().map_err(|_| invalid());
        let single = |indexes| {
            Ok(Some(Placeholders {
                uses_wildcards: true,
                indexes,
            }))
        };
        match name.as_str() {
            "wildcard" => match arguments.as_slice() {
                [""] => Err(not_enough()),
                [one] => single(vec![index(one)?]),
                _ => Err(too_many()),
            },
            "partition" => match arguments.as_slice() {
                [""] => Err(not_enough()),
                [count, rest @ ..] => {
                    count.parse::<i32>().map_err(|_| invalid())?;
                    let indexes = rest
                        .iter()
                        .map(|text| index(text))
                        .collect::<Result<_, _>>()?;
                    Ok(Some(Placeholders {
                        uses_wildcards: false,
                        indexes,
                    }))
                }
                [] => Err(not_enough()),
            },
            "random" => match arguments.as_slice() {
                [""] => Err(not_enough()),
                [count] => {
                    count.parse::<i32>().map_err(|_| invalid())?;
                    Ok(Some(Placeholders {
                        uses_wildcards: false,
                        indexes: Vec::new(),
                    }))
                }
                _ => Err(too_many()),
            },
            // Two arguments: a wildcard index and a number or a delimiter.
            _ => match arguments.as_slice() {
                [] | [_] => Err(not_enough()),
                [first, _] => single(vec![index(first)?]),
                _ => Err(too_many()),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up checks.
// ---------------------------------------------------------------------------------------------

/// nats-server's `validateTrustedOperators` (short of the JWTs' claims), `validateAuth` and
/// `validateNoAuthUser`: the error nats-server prints at start.
pub(super) fn validate(options: &Options) -> Result<(), String> {
    if !options.operators.is_empty() {
        if options.resolver.is_none() {
            return Err("operators require an account resolver to be configured".to_string());
        }
        if !options.accounts.is_empty() || !options.mappings.is_empty() {
            return Err("operators do not allow Accounts to be configured directly".to_string());
        }
        if options.auth.users.is_some() || options.auth.nkeys.is_some() {
            return Err("operators do not allow users to be configured directly".to_string());
        }
        if !options.trusted_keys.is_empty() {
            return Err("conflicting options for 'TrustedKeys' and 'TrustedOperators'".to_string());
        }
    }
    for user in options.auth.users.iter().flatten() {
        check_connection_types(user.allowed_connection_types.as_ref())?;
        check_permissions(user.permissions.as_ref()).map_err(|error| {
            format!(
                "invalid permissions for user {}: {error}",
                quote(&user.username)
            )
        })?;
    }
    for nkey in options.auth.nkeys.iter().flatten() {
        check_connection_types(nkey.allowed_connection_types.as_ref())?;
        check_permissions(nkey.permissions.as_ref()).map_err(|error| {
            format!(
                "invalid permissions for nkey {}: {error}",
                quote(&nkey.nkey)
            )
        })?;
    }
    let Some(no_auth_user) = &options.auth.no_auth_user else {
        return Ok(());
    };
    if !options.operators.is_empty() {
        return Err("no_auth_user not compatible with Trusted Operator".to_string());
    }
    if options.auth.users.is_none() && options.auth.nkeys.is_none() {
        return Err(format!(
            "no_auth_user: \"{no_auth_user}\" present, but users/nkeys are not defined"
        ));
    }
    let known = options
        .auth
        .users
        .iter()
        .flatten()
        .any(|user| &user.username == no_auth_user)
        || options
            .auth
            .nkeys
            .iter()
            .flatten()
            .any(|nkey| &nkey.nkey == no_auth_user);
    if known {
        return Ok(());
    }
    Err(format!(
        "no_auth_user: \"{no_auth_user}\" not present as user or nkey in authorization block or account configuration"
    ))
}

fn check_connection_types(types: Option<&BTreeSet<String>>) -> Result<(), String> {
    for name in types.into_iter().flatten() {
        if !CONNECTION_TYPES.contains(&name.to_uppercase().as_str()) {
            return Err(format!("unknown connection type {}", quote(name)));
        }
    }
    Ok(())
}

/// nats-server's `validatePermissionSubjects`.
fn check_permissions(permissions: Option<&Permissions>) -> Result<(), String> {
    let Some(permissions) = permissions else {
        return Ok(());
    };
    let lists = [
        (
            "publish allow",
            permissions.publish.as_ref().and_then(|p| p.allow.as_ref()),
            false,
        ),
        (
            "publish deny",
            permissions.publish.as_ref().and_then(|p| p.deny.as_ref()),
            false,
        ),
        (
            "subscribe allow",
            permissions
                .subscribe
                .as_ref()
                .and_then(|p| p.allow.as_ref()),
            true,
        ),
        (
            "subscribe deny",
            permissions.subscribe.as_ref().and_then(|p| p.deny.as_ref()),
            true,
        ),
    ];
    for (name, subjects, allow_queue) in lists {
        if let Some(subjects) = subjects {
            check_permission_subjects(subjects, allow_queue)
                .map_err(|error| format!("{name}: {error}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to a fresh file and applies it over the defaults.
    fn load(text: &str) -> Result<(Options, Vec<String>), String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "natsring-auth-file-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test.conf");
        std::fs::write(&path, text).unwrap();
        let mut options = Options::default();
        let result = super::super::file::apply_file(&mut options, &path);
        std::fs::remove_dir_all(&dir).unwrap();
        result.map(|warnings| (options, warnings))
    }

    fn options(text: &str) -> Options {
        let (options, warnings) = load(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        options
    }

    /// The error lines, without the file's path, sorted (nats-server's order is a map walk's).
    fn errors(text: &str) -> Vec<String> {
        let mut lines: Vec<String> = load(text)
            .unwrap_err()
            .lines()
            .map(|line| {
                line.split_once("test.conf")
                    .map(|(_, rest)| rest.to_string())
                    .unwrap_or_else(|| line.to_string())
            })
            .collect();
        lines.sort();
        lines
    }

    fn user_key(seed: u8) -> String {
        nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [seed; 32])
            .unwrap()
            .public_key()
    }

    fn subjects(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|subject| subject.to_string()).collect())
    }

    #[test]
    fn single_user_token_and_timeout() {
        let loaded =
            options("authorization { user: derek, password: \"$2a$11$abc\", timeout: 1.5 }");
        assert_eq!(loaded.auth.username.as_deref(), Some("derek"));
        assert_eq!(loaded.auth.password.as_deref(), Some("$2a$11$abc"));
        assert_eq!(loaded.auth.auth_timeout, Some(Duration::from_millis(1500)));
        assert!(loaded.auth.required());
        let loaded = options("authorization { token: s3cr3t, timeout: \"3s\" }");
        assert_eq!(loaded.auth.token.as_deref(), Some("s3cr3t"));
        assert_eq!(loaded.auth.auth_timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            options("authorization { timeout: 2 }").auth.auth_timeout,
            Some(Duration::from_secs(2))
        );
        assert!(
            !options("authorization { users: [] }").auth.required(),
            "an empty list is none"
        );
    }

    #[test]
    fn authorization_errors_in_nats_server_words() {
        assert_eq!(
            errors("authorization { user: a, token: b }"),
            [":1:0: Cannot have a user/pass and token"]
        );
        assert_eq!(
            errors("authorization { user: a, users: [{user: b}] }"),
            [":1:0: Can not have a single user/pass and a users array"]
        );
        assert_eq!(
            errors("authorization { token: t, users: [{user: b}] }"),
            [":1:0: Can not have a token and a users array"]
        );
        assert_eq!(
            errors("authorization { users: [{user: a}, {user: a}] }"),
            [":1:0: Duplicate user \"a\" detected"]
        );
        assert_eq!(
            errors("authorization { user: 1 }"),
            [
                ":1:0: runtime error: invalid memory address or nil pointer dereference",
                ":1:16: interface conversion: interface {} is int64, not string"
            ]
        );
        assert_eq!(
            errors("authorization { timeout: \"x\" }"),
            [":1:16: error parsing authorization config, 'timeout' time: invalid duration \"x\""]
        );
        assert_eq!(
            errors("authorization { timeout: true }"),
            [":1:16: error parsing authorization config, 'timeout' wrong type"]
        );
        assert_eq!(
            errors("authorization { foo: 1 }"),
            [":1:16: unknown field \"foo\""]
        );
        assert_eq!(
            errors("authorization { auth_callout { issuer: x } }"),
            [":1:16: field \"auth_callout\" is not supported by natsring yet (authorization callouts)"]
        );
        // Over a minute is a warning, which fails -t but not a start.
        let (loaded, warnings) = load("authorization { timeout: 120 }").unwrap();
        assert_eq!(loaded.auth.auth_timeout, Some(Duration::from_secs(120)));
        assert!(warnings[0].ends_with(
            ":1:16: invalid use of field \"timeout\": timeout of 120 (120.000000 seconds) is high, consider keeping it under 60 seconds. possibly caused by unquoted duration; use '1m' instead of 1m, for example"
        ));
    }

    #[test]
    fn users_and_nkeys() {
        let key = user_key(7);
        let loaded = options(&format!(
            "authorization {{ users: [ {{user: a, password: p, allowed_connection_types: [standard, \"websocket\"]}}, {{nkey: {key}}} ] }}"
        ));
        let users = loaded.auth.users.unwrap();
        assert_eq!(
            (users[0].username.as_str(), users[0].password.as_str()),
            ("a", "p")
        );
        assert_eq!(users[0].account, None);
        assert_eq!(
            users[0].allowed_connection_types,
            Some(["STANDARD".to_string(), "WEBSOCKET".to_string()].into())
        );
        let nkeys = loaded.auth.nkeys.unwrap();
        assert_eq!(nkeys[0].nkey, key);
        assert_eq!(
            errors("authorization { users: [{pass: x}] }"),
            [":1:25: User entry requires a user"]
        );
        assert_eq!(
            errors("authorization { users: [{nkey: UABC}] }"),
            [":1:25: Not a valid public nkey for a user"]
        );
        let account_key = nkeys::KeyPair::new_account().public_key();
        assert_eq!(
            errors(&format!(
                "authorization {{ users: [{{nkey: {account_key}}}] }}"
            )),
            [":1:25: Not a valid public nkey for a user"]
        );
        assert_eq!(
            errors(&format!(
                "authorization {{ users: [{{nkey: {key}, user: x}}] }}"
            )),
            [":1:89: Nkey users do not take usernames or passwords"]
        );
        assert_eq!(
            errors("authorization { users: 1 }"),
            [":1:16: Expected users field to be an array, got 1"]
        );
        assert_eq!(
            errors(
                "authorization { users: [{user: a, allowed_connection_types: [foo, STANDARD]}] }"
            ),
            [":1:34: invalid connection types [\"FOO\"]"]
        );
        assert_eq!(
            errors("authorization { users: [{user: a, allowed_connection_types: 1}] }"),
            [":1:34: error parsing allowed connection types: unsupported type int64"]
        );
    }

    #[test]
    fn permission_shapes() {
        let loaded = options(
            r#"authorization { users: [
                {user: a, permissions: {publish: "x.>", subscribe: ["y", "z.* q"]}}
                {user: b, permissions: {pub: {allow: ["x"], deny: "x.secret"}, sub: {deny: [">"]}}}
                {user: c, permissions: {import: [], export: {}}}
            ] }"#,
        );
        let users = loaded.auth.users.unwrap();
        let a = users[0].permissions.clone().unwrap();
        assert_eq!(a.publish.unwrap().allow, subjects(&["x.>"]));
        assert_eq!(a.subscribe.unwrap().allow, subjects(&["y", "z.* q"]));
        let b = users[1].permissions.clone().unwrap();
        let publish = b.publish.unwrap();
        assert_eq!(
            (publish.allow, publish.deny),
            (subjects(&["x"]), subjects(&["x.secret"]))
        );
        assert_eq!(
            b.subscribe.unwrap(),
            SubjectPermission {
                allow: None,
                deny: subjects(&[">"])
            }
        );
        let c = users[2].permissions.clone().unwrap();
        assert_eq!(
            c.publish.unwrap().allow,
            Some(Vec::new()),
            "an empty list allows nothing"
        );
        assert_eq!(c.subscribe, None, "an empty map is not set");
    }

    #[test]
    fn permission_errors_in_nats_server_words() {
        let user = |permissions: &str| {
            format!("authorization {{ users: [ {{user: a, permissions: {permissions} }} ] }}")
        };
        // A bare value is passed on without its position, as nats-server does.
        assert_eq!(
            errors(&user("{ publish: 1 }")),
            ["Expected subject permissions to be a subject, or array of subjects, got int64"]
        );
        assert_eq!(
            errors(&user("{ publish: \"a b\" }")),
            ["subject \"a b\" is not a valid subject"]
        );
        assert_eq!(
            errors(&user("{ subscribe: [\"a b c\"] }")),
            ["subject \"a b c\" is not a valid subject"]
        );
        assert_eq!(
            errors(&user("{ subscribe: \"a.> b.>.c\" }")),
            ["queue \"b.>.c\" is not a valid queue"]
        );
        assert_eq!(
            errors(&user("{ subscribe: \"a..b q\" }")),
            ["subject \"a..b\" is not a valid subject"]
        );
        assert_eq!(
            errors(&user("{ subscribe: { allow: \"a b c\" } }")),
            [":1:63: subject \"a b c\" is not a valid subject"]
        );
        assert_eq!(
            errors(&user("{ publish: { allower: x } }")),
            [":1:61: Unknown field name \"allower\" parsing subject permissions, only 'allow' or 'deny' are permitted"]
        );
        assert_eq!(
            errors(&user("{ foo: 1 }")),
            [":1:50: Unknown field \"foo\" parsing permissions"]
        );
        assert_eq!(
            errors("authorization { permissions: 1 }"),
            [":1:16: Expected permissions to be a map/struct, got 1"]
        );
    }

    #[test]
    fn allow_responses_and_its_defaults() {
        let first_permissions = |text: &str| {
            options(&format!(
                "authorization {{ users: [ {{user: a, permissions: {text} }} ] }}"
            ))
            .auth
            .users
            .unwrap()[0]
                .permissions
                .clone()
                .unwrap()
        };
        let on = first_permissions("{ allow_responses: true }");
        assert_eq!(
            on.response,
            Some(ResponsePermission {
                max_msgs: 1,
                expires: Duration::from_secs(120)
            })
        );
        assert_eq!(
            on.publish.unwrap().allow,
            Some(Vec::new()),
            "the blanket allow is off"
        );
        let off = first_permissions("{ allow_responses: false }");
        assert_eq!((off.response, off.publish), (None, None));
        let custom = first_permissions(
            "{ publish: { deny: x }, allow_responses: { max: 5, expires: \"1m\" } }",
        );
        assert_eq!(
            custom.response,
            Some(ResponsePermission {
                max_msgs: 5,
                expires: Duration::from_secs(60)
            })
        );
        let publish = custom.publish.unwrap();
        assert_eq!(
            (publish.allow, publish.deny),
            (Some(Vec::new()), subjects(&["x"]))
        );
        let defaults = first_permissions("{ allow_responses: { max: 0, expires: \"0s\" } }");
        assert_eq!(defaults.response, on.response);
        let unlimited = first_permissions("{ allow_responses: { max: -1, expires: \"-1s\" } }");
        assert_eq!(
            unlimited.response,
            Some(ResponsePermission {
                max_msgs: -1,
                expires: Duration::MAX
            })
        );
        let user = |text: &str| {
            format!("authorization {{ users: [ {{user: a, permissions: {{ allow_responses: {text} }} }} ] }}")
        };
        assert_eq!(
            errors(&user("1")),
            [":1:50: error parsing response permissions, expected a boolean or a map"]
        );
        assert_eq!(
            errors(&user("{ expires: 5 }")),
            [":1:69: error parsing expires, not a duration string"]
        );
        assert_eq!(
            errors(&user("{ expires: \"x\" }")),
            [":1:69: error parsing expires: time: invalid duration \"x\""]
        );
    }

    #[test]
    fn default_permissions_apply_to_users_without_their_own() {
        let loaded = options(
            "authorization { default_permissions: { publish: \"pub.>\" }, users: [ {user: a}, {user: b, permissions: {publish: \"b\"}} ] }",
        );
        let users = loaded.auth.users.unwrap();
        assert_eq!(
            users[0].permissions.clone().unwrap().publish.unwrap().allow,
            subjects(&["pub.>"])
        );
        assert_eq!(
            users[1].permissions.clone().unwrap().publish.unwrap().allow,
            subjects(&["b"])
        );
        let loaded = options(
            "accounts { A { users: [ {user: a} ], default_permissions: { subscribe: \"s\" } } }",
        );
        let users = loaded.auth.users.unwrap();
        assert_eq!(
            users[0]
                .permissions
                .clone()
                .unwrap()
                .subscribe
                .unwrap()
                .allow,
            subjects(&["s"])
        );
        assert_eq!(
            loaded.accounts[0]
                .default_permissions
                .clone()
                .unwrap()
                .subscribe
                .unwrap()
                .allow,
            subjects(&["s"])
        );
    }

    #[test]
    fn accounts_with_users_exports_imports_and_mappings() {
        let key = user_key(3);
        let loaded = options(&format!(
            r#"accounts {{
                A {{
                    users: [ {{user: a, password: a}}, {{nkey: {key}}} ]
                    exports: [
                        {{stream: "puba.>"}}
                        {{service: "pubq.>", response: stream, threshold: "5s"}}
                        {{stream: "b.>", accounts: [B]}}
                        {{service: "q.*", account_token_position: 2}}
                    ]
                    mappings: {{ "m": "n" }}
                    limits: {{ max_connections: 10, max_subs: 5, max_payload: 1024, max_leafnodes: 1 }}
                }}
                B {{
                    users: [ {{user: b}} ]
                    imports: [
                        {{stream: {{account: A, subject: "b.>"}}}}
                        {{stream: {{account: A, subject: "puba.x"}}, prefix: from_a}}
                        {{service: {{account: A, subject: "pubq.x"}}, to: "q", share: true}}
                        {{service: {{account: A, subject: "q.B"}}}}
                    ]
                }}
            }}"#
        ));
        let users = loaded.auth.users.unwrap();
        assert_eq!(
            users
                .iter()
                .map(|user| (user.username.as_str(), user.account.as_deref()))
                .collect::<Vec<_>>(),
            [("a", Some("A")), ("b", Some("B"))]
        );
        assert_eq!(loaded.auth.nkeys.unwrap()[0].account.as_deref(), Some("A"));
        let a = &loaded.accounts[0];
        assert_eq!(a.name, "A");
        assert_eq!(a.exports.len(), 4);
        assert_eq!(a.exports[1].response_type, ResponseType::Stream);
        assert_eq!(
            a.exports[1].response_threshold,
            Some(Duration::from_secs(5))
        );
        assert_eq!(a.exports[2].accounts, Some(vec!["B".to_string()]));
        assert_eq!(a.exports[3].account_token_position, 2);
        assert_eq!(a.mappings[0].source, "m");
        assert_eq!(
            a.limits,
            AccountLimits {
                max_connections: 10,
                max_subscriptions: 5,
                max_payload: 1024,
                max_data: -1
            }
        );
        let b = &loaded.accounts[1];
        assert_eq!(b.imports.len(), 4);
        assert_eq!(b.imports[1].to.as_deref(), Some("from_a"));
        assert!(b.imports[1].prefix);
        assert_eq!(b.imports[2].to.as_deref(), Some("q"));
        assert!(b.imports[2].share);
        assert_eq!(b.imports[3].kind, ExportKind::Service);
        // The array form names accounts only.
        let loaded = options("accounts: [A, B]");
        assert_eq!(
            loaded
                .accounts
                .iter()
                .map(|account| account.name.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
    }

    #[test]
    fn account_errors_in_nats_server_words() {
        assert_eq!(
            errors("accounts [A, B, A, \"$G\"]"),
            [
                ":1:16: Duplicate Account Entry: A",
                ":1:20: \"$G\" is a Reserved Account"
            ]
        );
        assert_eq!(
            errors("accounts { \"$G\": {} }"),
            [":1:12: \"$G\" is a Reserved Account"]
        );
        assert_eq!(
            errors("accounts { A: 1 }"),
            [":1:11: Expected map entries for accounts"]
        );
        assert_eq!(
            errors("accounts { A { users: [{user: a}] }, B { users: [{user: a}] } }"),
            [":1:41: Duplicate user \"a\" detected"]
        );
        assert_eq!(
            errors("accounts { A { imports: [{stream: {account: B, subject: x}}] } }"),
            [":1:0: \"B\" account not defined for stream import"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: x}] }, B { imports: [{stream: {account: A, subject: y}}] } }"),
            [":1:0: Error adding stream import \"y\": stream import not authorized"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: x, accounts: [C]}] }, B { imports: [{stream: {account: A, subject: x}}] }, C {} }"),
            [":1:0: Error adding stream import \"x\": stream import not authorized"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{service: x}] }, B { imports: [{service: {account: A, subject: z}}] } }"),
            [":1:0: Error adding service import \"z\": service import not authorized"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: \"x.*\", account_token_position: 1}] } }"),
            [":1:0: Error adding stream export \"x.*\": sublist: invalid subject"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: x, accounts: [Z]}] } }"),
            [":1:0: \"Z\" account not defined for stream export"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: x}] }, B { imports: [{stream: {account: A, subject: x}, prefix: \"p.*\"}] } }"),
            [":1:0: Error adding stream import \"x\": stream import prefix can not contain wildcard tokens"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{stream: \"x\", response: stream}] } }"),
            [":1:39: Detected response directive on non-service"]
        );
        assert_eq!(
            errors("accounts { A { exports: [{service: \"x\", response: bogus}] } }"),
            [":1:40: Unknown response type: \"bogus\""]
        );
        assert_eq!(
            errors("accounts { A { exports: [{service: \"x\", threshold: \"bogus\"}] } }"),
            [":1:40: Expected response threshold to be a parseable time duration, got \"bogus\""]
        );
        assert_eq!(
            errors("accounts { A { exports: [{service: \"x\", latency: {sampling: 200, subject: lat}}] } }"),
            [":1:50: bad sampling percentage, should be 1-100"]
        );
        assert_eq!(
            errors("accounts { A { exports: 1 } }"),
            [":1:15: Exports should be an array, got int64"]
        );
        assert_eq!(
            errors("accounts { A { imports: 1 } }"),
            [":1:15: Imports should be an array, got int64"]
        );
        assert_eq!(
            errors("accounts { A { imports: [{stream: {account: A}}] } }"),
            [":1:26: Expect an account name and a subject"]
        );
        assert_eq!(
            errors("accounts { A { imports: [{service: {account: B, subject: x}}, {service: {account: B, subject: x}}] }, B {} }"),
            [":1:97: Duplicate service import subject \"x\", previously used in import for account \"B\", subject \"x\""]
        );
        assert_eq!(
            errors("accounts { A { foo: 1 } }"),
            [":1:15: unknown field \"foo\""]
        );
        assert_eq!(
            errors("accounts { A { limits: {max_conn: 1, foo: 2} } }"),
            [":1:37: Unknown field \"foo\" parsing account limits"]
        );
        assert_eq!(
            errors("accounts { A { nkey: x } }"),
            [":1:15: Not a valid public nkey for an account: \"x\""]
        );
        assert_eq!(
            errors("accounts { A { jetstream: enabled } }"),
            [":1:15: field \"jetstream\" is not supported by natsring yet (JetStream)"]
        );
        assert_eq!(
            errors("accounts { A { users: [{user: a}] } }\nauthorization { user: b }"),
            [":2:1: Can not have a single user/pass and a users array"]
        );
        assert_eq!(
            errors("authorization { token: t }\naccounts { A { users: [{user: a}] } }"),
            [":2:16: Can not have a token and accounts"]
        );
    }

    #[test]
    fn mappings_shapes_and_checks() {
        let loaded = options(
            r#"mappings {
                foo: bar
                "a.*": "b.{{wildcard(1)}}.$1"
                "w": [ {destination: w1, weight: 60}, {destination: w2, weight: "40%", cluster: c1} ]
                "s": {destination: s1, weight: 50}
            }"#,
        );
        let mappings = &loaded.mappings;
        assert_eq!(mappings[0].source, "foo");
        assert_eq!(
            mappings[0].destinations,
            [WeightedDestination {
                subject: "bar".into(),
                weight: 100,
                cluster: None
            }]
        );
        assert_eq!(
            mappings[2].destinations[1],
            WeightedDestination {
                subject: "w2".into(),
                weight: 40,
                cluster: Some("c1".into())
            }
        );
        assert_eq!(mappings[3].destinations[0].weight, 50);
        assert_eq!(
            errors("mappings { \"foo.*\": \"bar.$2\" }"),
            [":1:12: Error adding mapping for \"foo.*\" to \"bar.$2\" : invalid mapping destination: wildcard index out of range in $2: [2]"]
        );
        assert_eq!(
            errors("mappings { \"foo\": [{destination: a, weight: 60}, {destination: b, weight: 50}] }"),
            [":1:12: Error adding mapping for \"foo\" : total weight needs to be <= 100"]
        );
        assert_eq!(
            errors("mappings { \"foo\": [{destination: a}] }"),
            [":1:35: Missing weight for mapping destination \"a\""]
        );
        assert_eq!(
            errors("mappings { \"foo\": [{destination: a, weight: 101}] }"),
            [":1:36: Invalid weight 101 for mapping destination"]
        );
        assert_eq!(
            errors("mappings { \"foo\": [{destination: a, weight: \"x%\"}] }"),
            [":1:36: Invalid weight \"x\" for mapping destination"]
        );
        assert_eq!(
            errors("mappings { \"foo\": \"{{bogus(1)}}\" }"),
            [":1:12: Error adding mapping for \"foo\" to \"{{bogus(1)}}\" : invalid mapping destination: unknown function in {{bogus(1)}}"]
        );
        assert_eq!(
            errors("mappings { \"foo bar\": \"x\" }"),
            [":1:0: Subject \"foo bar\" is not a valid subject"]
        );
        assert_eq!(
            errors("mappings { \"foo\": \"bar.*\" }"),
            [":1:12: Error adding mapping for \"foo\" to \"bar.*\" : invalid subject"]
        );
        // Function names: each word's first letter either case; spaces inside the braces.
        options(
            "mappings { \"a.*\": \"{{SplitFromLeft(1,2)}}.{{left(1,2)}}.{{ Wildcard( 1 ) }}\" }",
        );
        assert_eq!(
            errors("mappings { \"a.*\": \"{{SPLITFROMLEFT(1,2)}}\" }"),
            [":1:12: Error adding mapping for \"a.*\" to \"{{SPLITFROMLEFT(1,2)}}\" : invalid mapping destination: unknown function in {{SPLITFROMLEFT(1,2)}}"]
        );
        assert_eq!(
            errors("mappings { \"a.*\": \"b..c\" }"),
            [":1:12: Error adding mapping for \"a.*\" to \"b..c\" : invalid mapping destination: invalid transform"]
        );
        assert_eq!(
            errors("mappings { \"a.*\": \"{{wildcard(1,2)}}\" }"),
            [":1:12: Error adding mapping for \"a.*\" to \"{{wildcard(1,2)}}\" : invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"]
        );
        assert_eq!(
            errors("mappings: 1"),
            [":1:0: interface conversion: interface {} is int64, not map[string]interface {}"]
        );
    }

    #[test]
    fn top_level_keys() {
        let loaded = options("system_account: SYS\nno_system_account: true\naccounts { SYS {}, A { users: [{user: a}] } }\nno_auth_user: a\n");
        assert_eq!(loaded.system_account.as_deref(), Some("SYS"));
        assert!(loaded.no_system_account);
        assert_eq!(loaded.auth.no_auth_user.as_deref(), Some("a"));
        assert_eq!(loaded.validate(), Ok(()));
        assert_eq!(options("system: S").system_account.as_deref(), Some("S"));
        assert_eq!(
            errors("system_account: 1"),
            [":1:0: system account name must be a string"]
        );
        assert_eq!(options("resolver: MEMORY").resolver, Some(Resolver::Memory));
        assert_eq!(
            options("resolver: { type: mem }").resolver,
            Some(Resolver::Memory)
        );
        assert_eq!(
            errors("resolver: { type: full, dir: \".\" }"),
            [":1:0: resolver type \"full\" is not supported by natsring yet (authentication, authorization and accounts)"]
        );
        assert_eq!(
            errors("resolver: URL(http://localhost:9090/jwt/v1/accounts/)"),
            [":1:0: resolver type \"URL\" is not supported by natsring yet (authentication, authorization and accounts)"]
        );
        assert_eq!(
            errors("resolver: bogus"),
            [":1:0: error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])"]
        );
        assert_eq!(
            errors("resolver: 1"),
            [":1:0: error parsing operator resolver, wrong type int64"]
        );
        let loaded = options("resolver_preload: { AABC: \"eyJhbGciOi\" }");
        assert_eq!(
            loaded.resolver_preload,
            [("AABC".to_string(), "eyJhbGciOi".to_string())]
        );
        assert_eq!(
            errors("resolver_preload: 1"),
            [":1:0: preload should be a map of account_public_key:account_jwt"]
        );
        assert_eq!(
            errors("resolver_preload: { A: 1 }"),
            [":1:20: preload map value should be a string JWT"]
        );
        let operator_key = nkeys::KeyPair::new_operator().public_key();
        assert_eq!(
            options(&format!("trusted: {operator_key}")).trusted_keys,
            [operator_key]
        );
        assert_eq!(
            errors("trusted: [x]"),
            [":1:0: trust key \"x\" required to be a valid public operator nkey"]
        );
        assert_eq!(
            errors("trusted: [\n  1\n]"),
            [":2:3: error parsing trusted: unsupported type in array int64"]
        );
        assert_eq!(
            errors("operator: /nonexistent/op.jwt"),
            [":1:0: error parsing operator JWT: open /nonexistent/op.jwt: no such file or directory"]
        );
        assert_eq!(
            options("operator: eyJhbGciOi.x.y").operators,
            ["eyJhbGciOi.x.y"]
        );
        assert_eq!(
            errors("resolver_tls {}"),
            [":1:0: field \"resolver_tls\" is not supported by natsring yet (authentication, authorization and accounts)"]
        );
    }

    #[test]
    fn operator_jwt_files_are_read_and_undecorated() {
        let path = std::env::temp_dir().join(format!("natsring-op-{}.jwt", std::process::id()));
        std::fs::write(
            &path,
            "-----BEGIN NATS OPERATOR JWT-----\neyJ0eXAi.op.sig\n------END NATS OPERATOR JWT------\n",
        )
        .unwrap();
        let loaded = options(&format!("operator: \"{}\"", path.display()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.operators, ["eyJ0eXAi.op.sig"]);
        assert_eq!(decorated_jwt("  eyJ.a.b \n"), "eyJ.a.b");
    }

    #[test]
    fn start_up_checks() {
        let check = |text: &str| options(text).validate();
        assert_eq!(
            check("no_auth_user: a"),
            Err("no_auth_user: \"a\" present, but users/nkeys are not defined".to_string())
        );
        assert_eq!(
            check("no_auth_user: b\nauthorization { users: [{user: a}] }"),
            Err("no_auth_user: \"b\" not present as user or nkey in authorization block or account configuration".to_string())
        );
        assert_eq!(
            check("no_auth_user: a\nauthorization { users: [{user: a}] }"),
            Ok(())
        );
        assert_eq!(
            check("operator: eyJ.a.b"),
            Err("operators require an account resolver to be configured".to_string())
        );
        assert_eq!(
            check("operator: eyJ.a.b\nresolver: MEMORY\naccounts { A {} }"),
            Err("operators do not allow Accounts to be configured directly".to_string())
        );
        assert_eq!(
            check("operator: eyJ.a.b\nresolver: MEMORY\nauthorization { users: [{user: a}] }"),
            Err("operators do not allow users to be configured directly".to_string())
        );
        assert_eq!(check("operator: eyJ.a.b\nresolver: MEMORY"), Ok(()));
        // Embedders can build options the file would refuse: the start-up check sees them.
        let mut options = Options::default();
        options.auth.users = Some(vec![User {
            username: "u".into(),
            permissions: Some(Permissions {
                subscribe: Some(SubjectPermission {
                    allow: subjects(&["a b c"]),
                    deny: None,
                }),
                ..Permissions::default()
            }),
            ..User::default()
        }]);
        assert_eq!(
            options.validate(),
            Err("invalid permissions for user \"u\": subscribe allow: subject \"a b c\" is not a valid subject".to_string())
        );
        options.auth.users.as_mut().unwrap()[0].permissions = None;
        options.auth.users.as_mut().unwrap()[0].allowed_connection_types =
            Some(["CARRIER_PIGEON".to_string()].into());
        assert_eq!(
            options.validate(),
            Err("unknown connection type \"CARRIER_PIGEON\"".to_string())
        );
    }

    #[test]
    fn subset_matches_as_nats_server() {
        use crate::auth::permissions::is_subset_match;
        assert!(is_subset_match(b"foo.bar", b"foo.*"));
        assert!(is_subset_match(b"foo.*", b"foo.>"));
        assert!(is_subset_match(b"foo.*", b"foo.*"));
        assert!(!is_subset_match(b"foo.*", b"foo.bar"));
        assert!(!is_subset_match(b"foo.>", b"foo.*"));
        assert!(!is_subset_match(b"foo", b"foo.bar"));
        assert!(!is_subset_match(b"foo.bar.baz", b"foo.bar"));
    }
}
