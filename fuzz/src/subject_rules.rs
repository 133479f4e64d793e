//! `subject_rules`: every subject check in `sublist::subject` against rules written out here
//! from PROTOCOL.md §1 and nats-server's `sublist.go` (the source's docs say which check
//! applies where):
//!
//! | check | the rule |
//! |---|---|
//! | `valid_subscribe_subject` (SUB, `Sublist::insert`) | tokens split on `.`; none empty; `>` only as the last token |
//! | `valid_subject` (`IsValidSubject`) | the same, and no space, tab, LF, CR or FF anywhere |
//! | `valid_literal_subject` (pedantic PUB/HPUB) | no empty token; no token is exactly `*` or `>` (whitespace not checked) |
//! | `is_literal` | no token is exactly `*` or `>` (nothing else checked) |
//! | `valid_publish_subject` (`IsValidPublishSubject`) | `valid_subject` and `is_literal` |
//! | `has_empty_token` | some token is empty (the empty subject is one empty token) |
//!
//! plus the splitting helpers (`tokens` as Go's `strings.Split`, `split_first_token`,
//! `token_kind`), and the subject table on arbitrary bytes (the `sublist_oracle` target uses a
//! five-token alphabet): a fresh `Sublist` takes a subscription exactly when the SUB rule holds,
//! and a publish matches it exactly when the oracle's matcher says so.
//!
//! Input layout: byte 0, bit 0: the bytes are mapped onto [`ALPHABET`] (byte & 15), so that
//! separators, wildcards and whitespace are dense; otherwise they are used as they are. Byte 1
//! is the length of the subscription subject, which follows; the rest is the published subject.

use natsring::sublist::subject::{
    has_empty_token, split_first_token, token_kind, tokens, TokenKind,
};
use natsring::sublist::{
    is_literal, valid_literal_subject, valid_publish_subject, valid_subject,
    valid_subscribe_subject, SubHandle, Sublist,
};

use crate::Cursor;

/// What mapped bytes stand for: the bytes the rules care about, and some they must not.
pub const ALPHABET: [&[u8]; 16] = [
    b"a",
    b"b",
    b".",
    b".",
    b"*",
    b">",
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b"\x0c",
    b"**",
    b"*>",
    "é".as_bytes(),
    b"\0",
    b"\x0b",
];

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let mapped = cursor.byte() & 1 != 0;
    let subscribe_len = usize::from(cursor.byte());
    let subscribe = subject(cursor.take(subscribe_len), mapped);
    let publish = subject(cursor.rest(), mapped);

    check_rules(&subscribe);
    check_rules(&publish);

    let table = Sublist::new();
    let handle = SubHandle {
        shard: 0,
        slot: 1,
        generation: 1,
    };
    let inserted = table.insert(&subscribe, None, handle).is_ok();
    assert_eq!(
        inserted,
        rules::subscribe(&subscribe),
        "Sublist::insert({:?})",
        String::from_utf8_lossy(&subscribe)
    );
    if inserted {
        let result = table.match_subject(&publish);
        let expected = rules::matches(&subscribe, &publish);
        assert_eq!(
            result.plain,
            if expected { vec![handle] } else { vec![] },
            "{:?} published to {:?}",
            String::from_utf8_lossy(&subscribe),
            String::from_utf8_lossy(&publish)
        );
        assert!(result.queues.is_empty());
    }
}

fn subject(bytes: &[u8], mapped: bool) -> Vec<u8> {
    if !mapped {
        return bytes.to_vec();
    }
    bytes
        .iter()
        .flat_map(|&byte| ALPHABET[usize::from(byte & 15)].iter().copied())
        .collect()
}

fn check_rules(subject: &[u8]) {
    let shown = String::from_utf8_lossy(subject);
    let cases = [
        (
            "valid_subscribe_subject",
            valid_subscribe_subject(subject),
            rules::subscribe(subject),
        ),
        (
            "valid_subject",
            valid_subject(subject),
            rules::valid(subject),
        ),
        (
            "valid_literal_subject",
            valid_literal_subject(subject),
            rules::literal_publish(subject),
        ),
        (
            "is_literal",
            is_literal(subject),
            rules::no_wildcard(subject),
        ),
        (
            "valid_publish_subject",
            valid_publish_subject(subject),
            rules::valid(subject) && rules::no_wildcard(subject),
        ),
        (
            "has_empty_token",
            has_empty_token(subject),
            rules::split(subject).iter().any(|token| token.is_empty()),
        ),
    ];
    for (name, real, expected) in cases {
        assert_eq!(real, expected, "{name}({shown:?})");
    }

    let split = rules::split(subject);
    let real: Vec<&[u8]> = tokens(subject).collect();
    assert_eq!(real, split, "tokens({shown:?})");
    let (first, rest) = split_first_token(subject);
    assert_eq!(first, split[0], "split_first_token({shown:?})");
    assert_eq!(
        rest.is_none(),
        split.len() == 1,
        "split_first_token({shown:?})"
    );
    if let Some(rest) = rest {
        assert_eq!(
            rules::split(rest),
            split[1..],
            "split_first_token({shown:?})"
        );
    }
    for token in split {
        let expected = match token {
            b"*" => TokenKind::WildcardOne,
            b">" => TokenKind::WildcardRest,
            _ => TokenKind::Literal,
        };
        assert_eq!(token_kind(token), expected, "token_kind({token:?})");
    }
}

/// The rules, written as plainly as possible.
mod rules {
    /// Go's `strings.Split(subject, ".")`: the empty subject is one empty token.
    pub fn split(subject: &[u8]) -> Vec<&[u8]> {
        subject.split(|&byte| byte == b'.').collect()
    }

    fn is_wildcard(token: &[u8]) -> bool {
        token == b"*" || token == b">"
    }

    /// SUB: no empty token, `>` only last.
    pub fn subscribe(subject: &[u8]) -> bool {
        let tokens = split(subject);
        let last = tokens.len() - 1;
        tokens
            .iter()
            .enumerate()
            .all(|(index, &token)| !token.is_empty() && (token != b">" || index == last))
    }

    /// `IsValidSubject`: the SUB rule and none of space, tab, LF, CR, FF.
    pub fn valid(subject: &[u8]) -> bool {
        let whitespace = subject.iter().any(|byte| b" \t\n\r\x0c".contains(byte));
        !whitespace && subscribe(subject)
    }

    /// Pedantic PUB: no empty token, no wildcard token.
    pub fn literal_publish(subject: &[u8]) -> bool {
        split(subject)
            .iter()
            .all(|&token| !token.is_empty() && !is_wildcard(token))
    }

    pub fn no_wildcard(subject: &[u8]) -> bool {
        !split(subject).into_iter().any(is_wildcard)
    }

    /// Does a publish to `subject` reach subscription `pattern` (valid)? A published subject
    /// with an empty token reaches nothing; wildcards in it are plain bytes to the matcher
    /// (a publish to `*` reaches a subscription on `*`).
    pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
        let published = split(subject);
        if published.iter().any(|token| token.is_empty()) {
            return false;
        }
        let wanted = split(pattern);
        for (index, &token) in wanted.iter().enumerate() {
            match token {
                b">" => return published.len() > index,
                b"*" if index < published.len() => {}
                literal if published.get(index) == Some(&literal) => {}
                _ => return false,
            }
        }
        wanted.len() == published.len()
    }
}
