//! Subject syntax: splitting a subject into tokens and the validity checks nats-server applies.
//!
//! A subject is a byte string of tokens separated by `.`. `*` (one token) and `>` (one or more
//! tokens) are wildcards only as a whole token: `foo*` and `>bar` are literal tokens. Subjects are
//! case-sensitive bytes; UTF-8 is neither required nor checked (nats-server's default checks do
//! not look at runes either).
//!
//! Which check applies where (nats-server `sublist.go`, `client.go`):
//! - `SUB`: whatever [`valid_subscribe_subject`] accepts is inserted (`Sublist.Insert` rejects only
//!   an empty token and a `>` that is not last; the parser has already split on space, tab, CR
//!   and LF). A rejected subject gets `-ERR 'Invalid Subject'`.
//! - pedantic `PUB`/`HPUB`: [`valid_literal_subject`] (`IsValidLiteralSubject`: no empty token,
//!   no wildcard token; whitespace is not checked).
//! - configuration and permissions: [`valid_subject`] (`IsValidSubject`: also rejects space,
//!   tab, CR, LF and FF anywhere) and [`valid_publish_subject`] (`IsValidPublishSubject`).
//!
//! Everything here is pure and allocation-free.

/// Separates the tokens of a subject.
pub const TOKEN_SEPARATOR: u8 = b'.';
/// The wildcard token matching exactly one token.
pub const WILDCARD_ONE: &[u8] = b"*";
/// The wildcard token matching one or more tokens; only valid as the last token.
pub const WILDCARD_REST: &[u8] = b">";

/// What a single token of a subscription subject means to the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Matches only a token with exactly these bytes.
    Literal,
    /// `*`: matches any one token.
    WildcardOne,
    /// `>`: matches one or more trailing tokens.
    WildcardRest,
}

/// Classifies one token (the token is not checked for emptiness or whitespace).
#[inline]
pub fn token_kind(token: &[u8]) -> TokenKind {
    match token {
        b"*" => TokenKind::WildcardOne,
        b">" => TokenKind::WildcardRest,
        _ => TokenKind::Literal,
    }
}

/// Splits off the first token: `(token, Some(rest after the separator))`, or `(subject, None)`
/// when `subject` is the last token. Empty tokens are returned as they are.
#[inline]
pub fn split_first_token(subject: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(TOKEN_SEPARATOR, subject) {
        Some(index) => (&subject[..index], Some(&subject[index + 1..])),
        None => (subject, None),
    }
}

/// Iterator over the tokens of a subject, like Go's `strings.Split(subject, ".")`: the empty
/// subject yields one empty token, and `a..b` yields an empty token between `a` and `b`.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    /// What is left to split; `None` once the last token was returned.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let subject = self.rest?;
        let (token, rest) = split_first_token(subject);
        self.rest = rest;
        Some(token)
    }
}

/// The tokens of `subject`, split on `.` (see [`Tokens`]).
#[inline]
pub fn tokens(subject: &[u8]) -> Tokens<'_> {
    Tokens {
        rest: Some(subject),
    }
}

/// True when the byte is one nats-server refuses inside a token (`" \t\n\r\f"`).
#[inline]
fn is_forbidden_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// The subjects `Sublist::insert` accepts (nats-server `Sublist.Insert`): at least one token, no
/// empty token, and `>` only as the last token. Whitespace is not checked, exactly as in
/// nats-server (a SUB's arguments were already split on space, tab, CR and LF).
pub fn valid_subscribe_subject(subject: &[u8]) -> bool {
    let mut seen_wildcard_rest = false;
    for token in tokens(subject) {
        if token.is_empty() || seen_wildcard_rest {
            return false;
        }
        seen_wildcard_rest = token == WILDCARD_REST;
    }
    true
}

/// nats-server `IsValidSubject`: non-empty, no empty token, `>` only last, and no space, tab,
/// CR, LF or FF anywhere. Wildcards are allowed.
pub fn valid_subject(subject: &[u8]) -> bool {
    if subject.iter().copied().any(is_forbidden_whitespace) {
        return false;
    }
    valid_subscribe_subject(subject)
}

/// nats-server `IsValidLiteralSubject`, the pedantic PUB/HPUB check: no empty token and no
/// wildcard token. Like nats-server, it does not look for whitespace.
pub fn valid_literal_subject(subject: &[u8]) -> bool {
    tokens(subject).all(|token| !token.is_empty() && token_kind(token) == TokenKind::Literal)
}

/// nats-server `IsValidPublishSubject`: [`valid_subject`] and [`is_literal`].
pub fn valid_publish_subject(subject: &[u8]) -> bool {
    valid_subject(subject) && is_literal(subject)
}

/// nats-server `subjectIsLiteral`: true when no token is a wildcard. Does not check validity
/// (`foo..bar` is literal, `foo*` is literal).
pub fn is_literal(subject: &[u8]) -> bool {
    tokens(subject).all(|token| token_kind(token) == TokenKind::Literal)
}

/// True when `subject` has an empty token (or is empty). A publish to such a subject matches
/// nothing (nats-server `Sublist.match` returns the empty result for it).
#[inline]
pub fn has_empty_token(subject: &[u8]) -> bool {
    if subject.is_empty()
        || subject[0] == TOKEN_SEPARATOR
        || subject[subject.len() - 1] == TOKEN_SEPARATOR
    {
        return true;
    }
    let mut previous: Option<usize> = None;
    for index in memchr::memchr_iter(TOKEN_SEPARATOR, subject) {
        if previous == Some(index.wrapping_sub(1)) {
            return true;
        }
        previous = Some(index);
    }
    false
}

/// Whether the published `subject` matches the subscription subject `pattern` (`*` one
/// token, `>` one or more, everything else equal), without allocating. A published subject
/// with an empty token matches nothing.
pub fn pattern_matches(pattern: &[u8], subject: &[u8]) -> bool {
    if has_empty_token(subject) {
        return false;
    }
    let mut published = tokens(subject);
    for wanted in tokens(pattern) {
        if wanted == WILDCARD_REST {
            return published.next().is_some();
        }
        match published.next() {
            Some(got) if wanted == b"*" || wanted == got => {}
            _ => return false,
        }
    }
    published.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (subject, valid_subject, valid_subscribe_subject, valid_literal_subject, is_literal)
    const TABLE: &[(&[u8], bool, bool, bool, bool)] = &[
        (b"foo", true, true, true, true),
        (b"foo.bar", true, true, true, true),
        (b"foo.bar.baz", true, true, true, true),
        (b"*", true, true, false, false),
        (b">", true, true, false, false),
        (b"foo.*", true, true, false, false),
        (b"foo.>", true, true, false, false),
        (b"*.bar", true, true, false, false),
        (b"*.*.>", true, true, false, false),
        (b"foo.*.baz", true, true, false, false),
        (b"foo*", true, true, true, true),
        (b"foo.bar*", true, true, true, true),
        (b"foo>", true, true, true, true),
        (b"foo.>bar", true, true, true, true),
        (b"**", true, true, true, true),
        (b">>", true, true, true, true),
        (b"foo.**.bar", true, true, true, true),
        (b"$SYS.foo", true, true, true, true),
        (b"_INBOX.abc123", true, true, true, true),
        ("ünïcödé.日本".as_bytes(), true, true, true, true),
        (b"a-b_c:d/e", true, true, true, true),
        (b"", false, false, false, true),
        (b".", false, false, false, true),
        (b"foo.", false, false, false, true),
        (b".foo", false, false, false, true),
        (b"foo..bar", false, false, false, true),
        (b"..", false, false, false, true),
        (b">.foo", false, false, false, false),
        (b"foo.>.bar", false, false, false, false),
        (b">.>", false, false, false, false),
        (b"foo.>.*", false, false, false, false),
        (b"foo.*.", false, false, false, false),
        (b"foo bar", false, true, true, true),
        (b"foo\tbar", false, true, true, true),
        (b"foo.\r", false, true, true, true),
        (b"foo.\n.bar", false, true, true, true),
        (b"foo\x0cbar", false, true, true, true),
        (b" ", false, true, true, true),
        (b"foo. .bar", false, true, true, true),
        (b"foo.* ", false, true, true, true),
    ];

    #[test]
    fn validity_table() {
        for &(subject, valid, subscribe, literal, is_lit) in TABLE {
            let shown = String::from_utf8_lossy(subject);
            assert_eq!(valid_subject(subject), valid, "valid_subject({shown:?})");
            assert_eq!(
                valid_subscribe_subject(subject),
                subscribe,
                "valid_subscribe_subject({shown:?})"
            );
            assert_eq!(
                valid_literal_subject(subject),
                literal,
                "valid_literal_subject({shown:?})"
            );
            assert_eq!(is_literal(subject), is_lit, "is_literal({shown:?})");
            assert_eq!(
                valid_publish_subject(subject),
                valid && is_lit,
                "valid_publish_subject({shown:?})"
            );
        }
    }

    #[test]
    fn tokens_split_like_go() {
        fn split(subject: &[u8]) -> Vec<&[u8]> {
            tokens(subject).collect()
        }
        assert_eq!(split(b""), vec![b"" as &[u8]]);
        assert_eq!(split(b"a"), vec![b"a" as &[u8]]);
        assert_eq!(split(b"a.b.c"), vec![b"a" as &[u8], b"b", b"c"]);
        assert_eq!(split(b"a..b"), vec![b"a" as &[u8], b"", b"b"]);
        assert_eq!(split(b".a."), vec![b"" as &[u8], b"a", b""]);
    }

    #[test]
    fn empty_token_detection() {
        for &(subject, ..) in TABLE {
            let expected = tokens(subject).any(|token| token.is_empty());
            assert_eq!(has_empty_token(subject), expected, "{subject:?}");
        }
        assert!(has_empty_token(b"a.b..c"));
        assert!(!has_empty_token(b"a.b.c"));
    }

    #[test]
    fn token_kinds() {
        assert_eq!(token_kind(b"*"), TokenKind::WildcardOne);
        assert_eq!(token_kind(b">"), TokenKind::WildcardRest);
        assert_eq!(token_kind(b"*>"), TokenKind::Literal);
        assert_eq!(token_kind(b""), TokenKind::Literal);
    }
}
