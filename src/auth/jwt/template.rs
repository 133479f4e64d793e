//! Permission templates of scoped signing keys (nats-server's
//! `processUserPermissionsTemplate`): a user issued by a scoped key gets the scope's
//! template, in which `{{name()}}`, `{{subject()}}`, `{{account-name()}}`,
//! `{{account-subject()}}`, `{{tag(x)}}` and `{{account-tag(x)}}` are replaced by the user's
//! and the account's values. A tag with several values expands to one subject per value
//! (all combinations, at most `EXPANSIONS_MAX`).
//!
//! Failure modes follow nats-server: in an allow list, an entry that does not become a valid
//! subject is dropped (and an allow list emptied that way turns into `deny >`); in a deny
//! list it refuses the user.

use super::claims::{UserClaims, UserPermissionLimits};
use super::JwtError;

/// The most subjects one template list may expand to (`maxPermTemplateSubjectExpansions`).
pub const EXPANSIONS_MAX: usize = 4096;

/// What the templates may refer to.
pub struct TemplateValues<'a> {
    pub user: &'a UserClaims,
    /// The account's JWT `name`.
    pub account_name: &'a str,
    pub account_tags: &'a [String],
}

/// The scope's `template` with its templates expanded for this user and account.
pub fn apply(
    template: &UserPermissionLimits,
    values: &TemplateValues,
) -> Result<UserPermissionLimits, JwtError> {
    let mut limits = template.clone();
    let permissions = &mut limits.permissions;
    let subscribe_allow_was_set = !permissions.subscribe.allow.is_empty();
    let publish_allow_was_set = !permissions.publish.allow.is_empty();
    permissions.subscribe.allow = expand_list(&permissions.subscribe.allow, values, false)?;
    permissions.subscribe.deny = expand_list(&permissions.subscribe.deny, values, true)?;
    permissions.publish.allow = expand_list(&permissions.publish.allow, values, false)?;
    permissions.publish.deny = expand_list(&permissions.publish.deny, values, true)?;
    for (was_set, permission) in [
        (subscribe_allow_was_set, &mut permissions.subscribe),
        (publish_allow_was_set, &mut permissions.publish),
    ] {
        if was_set && permission.allow.is_empty() && !permission.deny.iter().any(|d| d == ">") {
            permission.deny.push(">".to_string());
        }
    }
    Ok(limits)
}

/// The `{{...}}` spans of `entry` (Go's `{{2}([^}]+)}{2}`): each `{{`, one or more non-`}`
/// characters, `}}`.
fn find_templates(entry: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = entry;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let inner_start = start + 2;
        let inner_len = rest[inner_start..]
            .find('}')
            .unwrap_or(rest.len() - inner_start);
        let inner_end = inner_start + inner_len;
        if inner_len > 0 && rest[inner_end..].starts_with("}}") {
            found.push(&entry[offset + start..offset + inner_end + 2]);
            offset += inner_end + 2;
            rest = &entry[offset..];
        } else {
            offset += start + 1;
            rest = &entry[offset..];
        }
    }
    found
}

fn expand_list(
    list: &[String],
    values: &TemplateValues,
    fail_on_bad_subject: bool,
) -> Result<Vec<String>, JwtError> {
    if !list.iter().any(|entry| !find_templates(entry).is_empty()) {
        return Ok(list.to_vec());
    }
    let mut emitted: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        let templates = find_templates(entry);
        let mut choices: Vec<Vec<String>> = Vec::with_capacity(templates.len());
        for template in &templates {
            choices.push(resolve(template, entry, values, fail_on_bad_subject)?);
        }
        let combinations: usize = choices
            .iter()
            .try_fold(1usize, |count, values| count.checked_mul(values.len()))
            .unwrap_or(usize::MAX);
        if emitted.len().saturating_add(combinations) > EXPANSIONS_MAX {
            return Err(JwtError::TemplateInvalid(format!(
                "template expansion exceeds {EXPANSIONS_MAX} subjects"
            )));
        }
        let mut picks = vec![0usize; templates.len()];
        for _ in 0..combinations {
            let mut subject = entry.clone();
            for (index, template) in templates.iter().enumerate() {
                subject = subject.replace(template, &choices[index][picks[index]]);
            }
            if is_valid_subject(&subject) {
                emitted.push(subject);
            } else if fail_on_bad_subject {
                return Err(JwtError::TemplateInvalid(
                    "generated invalid subject".into(),
                ));
            }
            // The next combination, last template fastest (as Go's cartesian product).
            for index in (0..picks.len()).rev() {
                picks[index] += 1;
                if picks[index] < choices[index].len() {
                    break;
                }
                picks[index] = 0;
            }
        }
    }
    Ok(emitted)
}

/// The values one `{{op}}` stands for.
fn resolve(
    template: &str,
    entry: &str,
    values: &TemplateValues,
    fail_on_bad_subject: bool,
) -> Result<Vec<String>, JwtError> {
    let operation = template[2..template.len() - 2].trim();
    let lower = operation.to_ascii_lowercase();
    let user = values.user;
    let single = |value: &str| Ok(vec![value.to_string()]);
    match lower.as_str() {
        "name()" => return single(&user.data.name),
        "subject()" => return single(&user.data.subject),
        "account-name()" => return single(values.account_name),
        "account-subject()" => return single(&user.nats.issuer_account),
        _ => {}
    }
    let (tags, tag_name) = if lower.starts_with("tag(") && lower.ends_with(')') {
        (
            &user.nats.generic.tags[..],
            &operation[4..operation.len() - 1],
        )
    } else if lower.starts_with("account-tag(") && lower.ends_with(')') {
        (values.account_tags, &operation[12..operation.len() - 1])
    } else {
        return Err(JwtError::TemplateInvalid(format!(
            "template operation in {entry:?}: {operation:?} is not defined"
        )));
    };
    let prefix = format!("{}:", tag_name.to_lowercase());
    let found: Vec<String> = tags
        .iter()
        .filter_map(|tag| tag.strip_prefix(prefix.as_str()))
        .map(str::to_string)
        .collect();
    if !found.is_empty() {
        Ok(found)
    } else if fail_on_bad_subject {
        Err(JwtError::TemplateInvalid(format!(
            "generated invalid subject {entry:?}: {tag_name:?} is not defined"
        )))
    } else {
        // An invalid subject: the entry is dropped.
        Ok(vec![" ".to_string()])
    }
}

/// nats-server's `IsValidSubject`: non-empty tokens, no whitespace, `>` only last.
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut full_wildcard_seen = false;
    for token in subject.split('.') {
        if token.is_empty() || full_wildcard_seen {
            return false;
        }
        if token.len() > 1 {
            if token.contains([' ', '\t', '\n', '\r', '\x0c']) {
                return false;
            }
            continue;
        }
        match token.as_bytes()[0] {
            b'>' => full_wildcard_seen = true,
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::claims::Permission;

    fn user() -> UserClaims {
        let mut user = UserClaims::default();
        user.data.name = "alice".into();
        user.data.subject = "UKEY".into();
        user.nats.issuer_account = "AKEY".into();
        user.nats.generic.tags = vec!["dept:eng".into(), "dept:ops".into(), "x:y".into()];
        user
    }

    fn template(allow: &[&str], deny: &[&str]) -> UserPermissionLimits {
        let mut limits = UserPermissionLimits::default();
        limits.permissions.publish = Permission {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        limits
    }

    #[test]
    fn templates_expand_names_subjects_and_tags() {
        let user = user();
        let values = TemplateValues {
            user: &user,
            account_name: "acme",
            account_tags: &["region:eu".to_string()],
        };
        let out = apply(
            &template(
                &[
                    "u.{{name()}}.>",
                    "k.{{ subject() }}",
                    "a.{{account-name()}}.{{account-subject()}}",
                    "t.{{tag(dept)}}.{{account-tag(region)}}",
                    "plain",
                ],
                &[],
            ),
            &values,
        )
        .unwrap();
        assert_eq!(
            out.permissions.publish.allow,
            vec![
                "u.alice.>",
                "k.UKEY",
                "a.acme.AKEY",
                "t.eng.eu",
                "t.ops.eu",
                "plain"
            ]
        );
    }

    #[test]
    fn missing_tags_drop_allows_and_refuse_denies() {
        let user = user();
        let values = TemplateValues {
            user: &user,
            account_name: "",
            account_tags: &[],
        };
        let out = apply(&template(&["t.{{tag(missing)}}"], &[]), &values).unwrap();
        assert!(out.permissions.publish.allow.is_empty());
        assert_eq!(out.permissions.publish.deny, vec![">"]);
        assert!(apply(&template(&[], &["t.{{tag(missing)}}"]), &values).is_err());
        assert!(apply(&template(&["{{bogus()}}"], &[]), &values).is_err());
    }

    #[test]
    fn subjects_are_validated_like_nats_server() {
        assert!(is_valid_subject("a.b.>"));
        assert!(is_valid_subject("a.*.c"));
        assert!(!is_valid_subject("a.>.c"));
        assert!(!is_valid_subject("a..b"));
        assert!(!is_valid_subject(" "));
        assert!(!is_valid_subject("a b"));
    }
}
