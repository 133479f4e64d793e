//! Subject mapping: nats-server's subject transforms (`subject_transform.go`) and an account's
//! mapping table (`Account.AddWeightedMappings` / `selectMappedSubject` in `accounts.go`).
//!
//! What it owns:
//! - [`Transform`]: a source pattern (`*`, `>`) compiled with a destination template (`$1`,
//!   `{{wildcard(1)}}`, `{{partition(n,...)}}`, `{{split(1,-)}}`, ...), validated with
//!   nats-server's exact error texts.
//! - [`MappingTable`]: one account's mappings, built once per configuration, asked once per
//!   client publish: [`MappingTable::map`].
//!
//! Invariants:
//! - Building does all the checking; mapping a subject never fails and never allocates beyond
//!   the caller's reused output buffer. A subject that no source matches costs a token walk
//!   per mapping and nothing else; an account without mappings costs one branch.
//! - Mapping is a pure function of (table, subject, the caller's random numbers): no clock, no
//!   global RNG, no interior state.
//!
//! Where natsring decides differently from nats-server 2.15.1 (each one is a nats-server result
//! that depends on Go's random map order or crashes the server):
//! - A literal source with a `{{partition(n)}}` destination hashes the published subject. In
//!   nats-server the key is the empty string when that mapping happens to be the first one its
//!   account checks, the subject otherwise; which one it is follows Go's random iteration of
//!   the configuration map, so the same file gives `lp.1` or `lp.9` from one start to the next.
//! - Overlapping sources (`ov.*` and `ov.>`): the first in configuration order wins; in
//!   nats-server the order is Go's random map order, again per start.
//! - An empty destination (`"foo": ""`) is refused when building; nats-server accepts it and
//!   dereferences a nil transform on the first publish to `foo`.
//!
//! It must not touch: connections, the subject table, options parsing. The configuration layer
//! prefixes the errors (`Error adding mapping for "src" to "dest" : <error>`).

use std::fmt;

use crate::account::Mapping;
use crate::proto::writer::write_u64;
use crate::sublist::subject::{tokens, valid_subject, TOKEN_SEPARATOR};

/// Why nats-server refuses a destination (`ErrInvalidMappingDestination` and its wrappers in
/// `errors.go`); the text after `invalid mapping destination: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationReason {
    /// An empty token, a token after `>`, or whitespace (`ErrInvalidMappingDestinationSubject`).
    InvalidTransform,
    /// An import transform does not place every source wildcard.
    NotUsingAllWildcards,
    /// `{{...}}` that names no mapping function.
    UnknownFunction,
    /// A wildcard index above the source's `*` count, or any index with no `*` in the source.
    IndexOutOfRange,
    NotEnoughArgs,
    InvalidArg,
    TooManyArgs,
    /// An import transform uses a function other than `wildcard`.
    NotSupportedForImport,
}

impl DestinationReason {
    fn text(self) -> &'static str {
        match self {
            DestinationReason::InvalidTransform => "invalid transform",
            DestinationReason::NotUsingAllWildcards => "not using all of the token wildcard(s)",
            DestinationReason::UnknownFunction => "unknown function",
            DestinationReason::IndexOutOfRange => "wildcard index out of range",
            DestinationReason::NotEnoughArgs => "not enough arguments passed to the function",
            DestinationReason::InvalidArg => "function argument is invalid or in the wrong format",
            DestinationReason::TooManyArgs => "too many arguments passed to the function",
            DestinationReason::NotSupportedForImport => {
                "the only mapping function allowed for import transforms is {{Wildcard()}}"
            }
        }
    }
}

/// A mapping nats-server refuses; `Display` is the text nats-server prints after
/// `Error adding mapping for ... : `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingError {
    /// `invalid subject`: a bad source, a `*` in the destination, or `>` on one side only.
    InvalidSubject,
    /// `invalid mapping destination: <reason> in <token>` (no ` in ` when `token` is empty).
    Destination {
        reason: DestinationReason,
        token: String,
    },
    /// `duplicate entry for "<subject>"`.
    DuplicateEntry(String),
    /// `individual weights need to be <= 100`.
    IndividualWeight,
    /// `total weight needs to be <= 100` (per cluster).
    TotalWeight,
    /// natsring only: an empty destination subject (nats-server accepts it, then crashes).
    EmptyDestination,
}

impl MappingError {
    fn destination(reason: DestinationReason, token: impl Into<String>) -> MappingError {
        MappingError::Destination {
            reason,
            token: token.into(),
        }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::InvalidSubject => f.write_str("invalid subject"),
            MappingError::Destination { reason, token } if token.is_empty() => {
                write!(f, "invalid mapping destination: {}", reason.text())
            }
            MappingError::Destination { reason, token } => {
                write!(
                    f,
                    "invalid mapping destination: {} in {token}",
                    reason.text()
                )
            }
            MappingError::DuplicateEntry(subject) => {
                write!(
                    f,
                    "duplicate entry for {}",
                    crate::config::go::quote(subject)
                )
            }
            MappingError::IndividualWeight => f.write_str("individual weights need to be <= 100"),
            MappingError::TotalWeight => f.write_str("total weight needs to be <= 100"),
            MappingError::EmptyDestination => {
                f.write_str("invalid mapping destination: empty destination subject")
            }
        }
    }
}

impl std::error::Error for MappingError {}

// ---------------------------------------------------------------------------------------------
// Template parsing: nats-server matches each `{{...}}` token against one regular expression per
// function, `{{\s*[nN]ame\s*\((.*)\)\s*}}`, unanchored, and splits the capture on `,\s*`. The
// functions below reproduce exactly that (leftmost match, greedy capture that stops at a
// newline, `\s` = tab, newline, form feed, carriage return, space).
// ---------------------------------------------------------------------------------------------

/// The mapping functions, in the order nats-server tries them. In a name an upper-case letter
/// accepts either case and a lower-case letter only itself (`[sS]plit[fF]rom[lL]eft`).
const FUNCTION_NAMES: [(&str, Function); 10] = [
    ("Wildcard", Function::Wildcard),
    ("Partition", Function::Partition),
    ("SplitFromLeft", Function::SplitFromLeft),
    ("SplitFromRight", Function::SplitFromRight),
    ("SliceFromLeft", Function::SliceFromLeft),
    ("SliceFromRight", Function::SliceFromRight),
    ("Right", Function::Right),
    ("Left", Function::Left),
    ("Split", Function::Split),
    ("Random", Function::Random),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Wildcard,
    Partition,
    SplitFromLeft,
    SplitFromRight,
    SliceFromLeft,
    SliceFromRight,
    Right,
    Left,
    Split,
    Random,
}

/// Go regexp `\s`.
fn is_regex_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn skip_spaces(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() && is_regex_space(bytes[index]) {
        index += 1;
    }
    index
}

/// The length of `name` at the start of `bytes` under the case rule of [`FUNCTION_NAMES`].
fn match_name(bytes: &[u8], name: &str) -> Option<usize> {
    let name = name.as_bytes();
    if bytes.len() < name.len() {
        return None;
    }
    let matches = name.iter().zip(bytes).all(|(&expected, &actual)| {
        if expected.is_ascii_uppercase() {
            actual.eq_ignore_ascii_case(&expected)
        } else {
            actual == expected
        }
    });
    matches.then_some(name.len())
}

/// The capture of `{{\s*name\s*\((.*)\)\s*}}` in `token`, as Go's `FindStringSubmatch` finds it.
fn function_capture<'t>(token: &'t str, name: &str) -> Option<&'t str> {
    let bytes = token.as_bytes();
    for start in memchr::memmem::find_iter(bytes, b"{{") {
        let mut index = skip_spaces(bytes, start + 2);
        let Some(name_len) = match_name(&bytes[index..], name) else {
            continue;
        };
        index = skip_spaces(bytes, index + name_len);
        if bytes.get(index) != Some(&b'(') {
            continue;
        }
        let capture_start = index + 1;
        // `.` does not match a newline: the capture ends before the first one.
        let limit = memchr::memchr(b'\n', &bytes[capture_start..])
            .map_or(bytes.len(), |offset| capture_start + offset);
        // Greedy: the last `)` before the limit that is followed by `\s*}}`.
        let close = bytes[capture_start..limit]
            .iter()
            .enumerate()
            .rev()
            .filter(|&(_, &byte)| byte == b')')
            .map(|(offset, _)| capture_start + offset)
            .find(|&close| bytes[skip_spaces(bytes, close + 1)..].starts_with(b"}}"));
        if let Some(close) = close {
            return Some(&token[capture_start..close]);
        }
    }
    None
}

/// Go's `regexp.MustCompile(`,\s*`).Split(capture, -1)`.
fn split_arguments(capture: &str) -> Vec<&str> {
    let bytes = capture.as_bytes();
    let mut arguments = Vec::new();
    let mut start = 0;
    for comma in memchr::memchr_iter(b',', bytes) {
        arguments.push(&capture[start..comma]);
        start = skip_spaces(bytes, comma + 1);
    }
    arguments.push(&capture[start..]);
    arguments
}

/// Go's `strconv.Atoi` (64-bit `int`): an optional sign, then decimal digits only.
fn go_atoi(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let magnitude: i128 = digits.parse().ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// `strings.Trim(argument, " ")` then `strconv.Atoi`.
fn integer_argument(argument: &str) -> Option<i64> {
    go_atoi(argument.trim_matches(' '))
}

/// One destination token as nats-server's `indexPlaceHolders` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    /// A literal token (including `$foo`, `{{}}`, `>`).
    None,
    Wildcard(i64),
    /// `partition(buckets, index...)`; no index means the whole subject.
    Partition {
        buckets: i32,
        indexes: Vec<i64>,
    },
    /// A function of one wildcard and one 32-bit integer (split/slice/left/right).
    IndexInteger {
        function: Function,
        index: i64,
        integer: i32,
    },
    Split {
        index: i64,
        separator: String,
    },
    Random(i32),
}

/// nats-server `indexPlaceHolders`.
fn parse_placeholder(token: &str) -> Result<Placeholder, MappingError> {
    let bytes = token.as_bytes();
    let error = |reason| Err(MappingError::destination(reason, token));
    if bytes.len() > 1 && bytes[0] == b'$' {
        // `$1`; anything else starting with `$` is a literal token (`$SYS`).
        return Ok(go_atoi(&token[1..]).map_or(Placeholder::None, Placeholder::Wildcard));
    }
    let looks_like_function = bytes.len() > 4 && token.starts_with("{{") && token.ends_with("}}");
    if !looks_like_function {
        return Ok(Placeholder::None);
    }
    for (name, function) in FUNCTION_NAMES {
        let Some(capture) = function_capture(token, name) else {
            continue;
        };
        let arguments = split_arguments(capture);
        return match function {
            Function::Wildcard => match arguments.as_slice() {
                [""] => error(DestinationReason::NotEnoughArgs),
                [index] => match integer_argument(index) {
                    Some(index) => Ok(Placeholder::Wildcard(index)),
                    None => error(DestinationReason::InvalidArg),
                },
                _ => error(DestinationReason::TooManyArgs),
            },
            Function::Partition => {
                let Some(buckets) =
                    integer_argument(arguments[0]).filter(|&n| n <= i32::MAX as i64)
                else {
                    return error(DestinationReason::InvalidArg);
                };
                let mut indexes = Vec::with_capacity(arguments.len() - 1);
                for argument in &arguments[1..] {
                    match integer_argument(argument) {
                        Some(index) => indexes.push(index),
                        None => return error(DestinationReason::InvalidArg),
                    }
                }
                // Go's `int32(n)`: a value below i32::MIN wraps, as it does there.
                Ok(Placeholder::Partition {
                    buckets: buckets as i32,
                    indexes,
                })
            }
            Function::Split => match arguments.as_slice() {
                [_] => error(DestinationReason::NotEnoughArgs),
                [index, separator] => {
                    let Some(index) = integer_argument(index) else {
                        return error(DestinationReason::InvalidArg);
                    };
                    if separator.contains(' ') || separator.contains('.') {
                        return error(DestinationReason::InvalidArg);
                    }
                    Ok(Placeholder::Split {
                        index,
                        separator: (*separator).to_owned(),
                    })
                }
                _ => error(DestinationReason::TooManyArgs),
            },
            Function::Random => match arguments.as_slice() {
                [ceiling] => match integer_argument(ceiling).filter(|&n| n <= i32::MAX as i64) {
                    Some(ceiling) => Ok(Placeholder::Random(ceiling as i32)),
                    None => error(DestinationReason::InvalidArg),
                },
                _ => error(DestinationReason::NotEnoughArgs),
            },
            _ => match arguments.as_slice() {
                [_] => error(DestinationReason::NotEnoughArgs),
                [index, integer] => {
                    let index = integer_argument(index);
                    let integer = go_atoi(integer.trim_matches(' '))
                        .and_then(|value| i32::try_from(value).ok());
                    match (index, integer) {
                        (Some(index), Some(integer)) => Ok(Placeholder::IndexInteger {
                            function,
                            index,
                            integer,
                        }),
                        _ => error(DestinationReason::InvalidArg),
                    }
                }
                _ => error(DestinationReason::TooManyArgs),
            },
        };
    }
    error(DestinationReason::UnknownFunction)
}

/// nats-server `ValidateMapping`'s walk over the destination, before the transform is built:
/// empty tokens, tokens after `>`, unknown functions and whitespace, reported in token order.
fn check_destination_tokens(destination: &str) -> Result<(), MappingError> {
    let mut seen_rest = false;
    for token in destination.split('.') {
        if token.is_empty() || seen_rest {
            return Err(MappingError::destination(
                DestinationReason::InvalidTransform,
                token,
            ));
        }
        if token.len() > 4 && token.starts_with("{{") && token.ends_with("}}") {
            if FUNCTION_NAMES
                .iter()
                .any(|(name, _)| function_capture(token, name).is_some())
            {
                continue;
            }
            return Err(MappingError::destination(
                DestinationReason::UnknownFunction,
                token,
            ));
        }
        if token == ">" {
            seen_rest = true;
        } else if token
            .bytes()
            .any(|byte| matches!(byte, b'\t' | b'\n' | 0x0c | b'\r' | b' '))
        {
            return Err(MappingError::destination(
                DestinationReason::InvalidTransform,
                "",
            ));
        }
    }
    Ok(())
}

/// nats-server `subjectInfo`: `(tokens, number of '*', has '>')`, or `None` when the subject
/// is empty, has an empty token, or has a token after `>` (whitespace is not checked).
fn subject_info(subject: &str) -> Option<(Vec<&str>, usize, bool)> {
    if subject.is_empty() {
        return None;
    }
    let mut wildcards_one = 0;
    let mut has_rest = false;
    let tokens: Vec<&str> = subject.split('.').collect();
    for token in &tokens {
        if token.is_empty() || has_rest {
            return None;
        }
        match *token {
            ">" => has_rest = true,
            "*" => wildcards_one += 1,
            _ => {}
        }
    }
    Some((tokens, wildcards_one, has_rest))
}

// ---------------------------------------------------------------------------------------------
// The compiled transform.
// ---------------------------------------------------------------------------------------------

/// One source token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternToken {
    Literal(Box<[u8]>),
    /// `*`
    One,
    /// `>`
    Rest,
}

/// A source subject with `*` and `>` tokens (nats-server matches it with `isSubsetMatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Box<[PatternToken]>,
}

impl Pattern {
    /// `source` is a valid subject (checked by the caller).
    fn new(source: &str) -> Pattern {
        let tokens = source
            .split('.')
            .map(|token| match token {
                "*" => PatternToken::One,
                ">" => PatternToken::Rest,
                literal => PatternToken::Literal(literal.as_bytes().into()),
            })
            .collect();
        Pattern { tokens }
    }

    fn is_literal(&self) -> bool {
        self.tokens
            .iter()
            .all(|token| matches!(token, PatternToken::Literal(_)))
    }

    /// nats-server `isSubsetMatch(subject tokens, source)`: a subject token matches a `*`
    /// or an equal literal unless it is empty or `>`, and a subject `*` matches only a `*`;
    /// a `>` matches one or more tokens of any kind. Allocation-free.
    fn matches(&self, subject: &[u8]) -> bool {
        let mut subject_tokens = tokens(subject);
        for pattern in self.tokens.iter() {
            let literal = match pattern {
                PatternToken::Rest => return subject_tokens.next().is_some(),
                PatternToken::One => None,
                PatternToken::Literal(literal) => Some(literal),
            };
            let Some(token) = subject_tokens.next() else {
                return false;
            };
            if token.is_empty() || token == b">" {
                return false;
            }
            // A literal token is never `*`, so a subject `*` only passes a pattern `*`.
            if literal.is_some_and(|literal| token != &literal[..]) {
                return false;
            }
        }
        subject_tokens.next().is_none()
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// What `partition` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PartitionKey {
    /// The whole published subject (its tokens joined by `.`).
    Subject,
    /// These source tokens, concatenated without separator.
    Tokens(Box<[usize]>),
}

/// One destination token, compiled. Token indexes are positions in the published subject
/// (equal to positions in the source pattern, which the subject matched).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<[u8]>),
    Wildcard(usize),
    Partition { buckets: i32, key: PartitionKey },
    SplitFromLeft { token: usize, position: i32 },
    SplitFromRight { token: usize, position: i32 },
    SliceFromLeft { token: usize, size: i32 },
    SliceFromRight { token: usize, size: i32 },
    Left { token: usize, length: i32 },
    Right { token: usize, length: i32 },
    Split { token: usize, separator: Box<[u8]> },
    Random { ceiling: i32 },
}

/// A source pattern compiled with a destination template (nats-server `subjectTransform`).
///
/// Invariant: every token index a [`Part`] holds is below the pattern's token count, so a
/// subject the pattern matched has that token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    source: Pattern,
    /// The destination tokens before a trailing `>`.
    parts: Box<[Part]>,
    /// The destination ends with `>`: the subject's tokens from the source's `>` on follow.
    ends_with_rest: bool,
}

impl Transform {
    /// nats-server `NewSubjectTransform(source, destination)` (an empty source means `>`).
    pub fn new(source: &str, destination: &str) -> Result<Transform, MappingError> {
        Transform::build(source, destination, false)
    }

    /// nats-server `NewSubjectTransformStrict`, for import mappings that must be reversible:
    /// only `$n`/`{{wildcard(n)}}`, and every source `*` placed.
    pub fn new_strict(source: &str, destination: &str) -> Result<Transform, MappingError> {
        Transform::build(source, destination, true)
    }

    fn build(source: &str, destination: &str, strict: bool) -> Result<Transform, MappingError> {
        if destination.is_empty() {
            return Err(MappingError::EmptyDestination);
        }
        let source = if source.is_empty() { ">" } else { source };
        let (Some((source_tokens, wildcards_one, source_rest)), Some(destination_info)) =
            (subject_info(source), subject_info(destination))
        else {
            return Err(MappingError::InvalidSubject);
        };
        let (destination_tokens, destination_wildcards_one, destination_rest) = destination_info;
        if destination_wildcards_one > 0 || source_rest != destination_rest {
            return Err(MappingError::InvalidSubject);
        }
        // Wildcard number n (1-based) -> its position among the source tokens. Go reads a
        // missing key of its map as 0, so an index of 0 or below names the first token.
        let wildcard_positions: Vec<usize> = source_tokens
            .iter()
            .enumerate()
            .filter(|(_, token)| **token == "*")
            .map(|(position, _)| position)
            .collect();
        let position_of = |index: i64| -> usize {
            if index >= 1 {
                wildcard_positions[(index - 1) as usize]
            } else {
                0
            }
        };
        let has_wildcards = wildcards_one > 0 || source_rest;
        let mut parts = Vec::with_capacity(destination_tokens.len());
        let mut placed = 0usize;
        for token in &destination_tokens {
            let placeholder = parse_placeholder(token)?;
            let reversible = matches!(placeholder, Placeholder::None | Placeholder::Wildcard(_));
            if strict && has_wildcards && !reversible {
                return Err(MappingError::destination(
                    DestinationReason::NotSupportedForImport,
                    *token,
                ));
            }
            // The source wildcard indexes the placeholder reads, checked against the source.
            let indexes: &[i64] = match &placeholder {
                Placeholder::None | Placeholder::Random(_) => &[],
                Placeholder::Wildcard(index)
                | Placeholder::IndexInteger { index, .. }
                | Placeholder::Split { index, .. } => std::slice::from_ref(index),
                Placeholder::Partition { indexes, .. } => indexes,
            };
            if !has_wildcards {
                // A literal source: only literal tokens, `random` and `partition` (whose
                // indexes are then ignored: it hashes the whole subject).
                let allowed = matches!(
                    placeholder,
                    Placeholder::None | Placeholder::Random(_) | Placeholder::Partition { .. }
                );
                if !allowed {
                    return Err(MappingError::destination(
                        DestinationReason::IndexOutOfRange,
                        *token,
                    ));
                }
            } else {
                placed += indexes.len();
                if let Some(&index) = indexes.iter().find(|&&i| i > wildcards_one as i64) {
                    return Err(MappingError::destination(
                        DestinationReason::IndexOutOfRange,
                        format!("{token}: [{index}]"),
                    ));
                }
            }
            let part = match placeholder {
                Placeholder::None if *token == ">" => break,
                Placeholder::None => Part::Literal(token.as_bytes().into()),
                Placeholder::Wildcard(index) => Part::Wildcard(position_of(index)),
                Placeholder::Random(ceiling) => Part::Random { ceiling },
                Placeholder::Partition { buckets, indexes } => Part::Partition {
                    buckets,
                    key: if indexes.is_empty() || !has_wildcards {
                        PartitionKey::Subject
                    } else {
                        PartitionKey::Tokens(indexes.iter().map(|&i| position_of(i)).collect())
                    },
                },
                Placeholder::Split { index, separator } => Part::Split {
                    token: position_of(index),
                    separator: separator.into_bytes().into(),
                },
                Placeholder::IndexInteger {
                    function,
                    index,
                    integer,
                } => {
                    let token = position_of(index);
                    match function {
                        Function::SplitFromLeft => Part::SplitFromLeft {
                            token,
                            position: integer,
                        },
                        Function::SplitFromRight => Part::SplitFromRight {
                            token,
                            position: integer,
                        },
                        Function::SliceFromLeft => Part::SliceFromLeft {
                            token,
                            size: integer,
                        },
                        Function::SliceFromRight => Part::SliceFromRight {
                            token,
                            size: integer,
                        },
                        Function::Left => Part::Left {
                            token,
                            length: integer,
                        },
                        Function::Right => Part::Right {
                            token,
                            length: integer,
                        },
                        _ => unreachable!("parse_placeholder: {function:?} has its own variant"),
                    }
                }
            };
            parts.push(part);
        }
        if strict && has_wildcards && placed < wildcards_one {
            return Err(MappingError::destination(
                DestinationReason::NotUsingAllWildcards,
                destination,
            ));
        }
        Ok(Transform {
            source: Pattern::new(source),
            parts: parts.into(),
            ends_with_rest: destination_rest,
        })
    }

    /// Does the published `subject` match the source (nats-server `isSubsetMatch`)?
    pub fn matches(&self, subject: &[u8]) -> bool {
        self.source.matches(subject)
    }

    /// nats-server `subjectTransform.Match`: the mapped subject when `subject` is a valid
    /// literal subject that the source matches.
    pub fn apply<'o>(
        &self,
        subject: &[u8],
        random: &mut impl FnMut() -> u32,
        out: &'o mut Vec<u8>,
    ) -> Option<&'o [u8]> {
        // nats-server's special case: `>` to `>` is the identity, checked before validity.
        let identity = matches!(&self.source.tokens[..], [PatternToken::Rest])
            && self.parts.is_empty()
            && self.ends_with_rest;
        if identity {
            out.clear();
            out.extend_from_slice(subject);
            return Some(&out[..]);
        }
        if !crate::sublist::subject::valid_literal_subject(subject) || !self.matches(subject) {
            return None;
        }
        self.write(subject, random, out);
        Some(&out[..])
    }

    /// Writes the destination for a `subject` this transform's source matched into `out`
    /// (cleared first). nats-server `TransformTokenizedSubject`.
    pub fn write(&self, subject: &[u8], random: &mut impl FnMut() -> u32, out: &mut Vec<u8>) {
        out.clear();
        for (index, part) in self.parts.iter().enumerate() {
            if index > 0 {
                out.push(TOKEN_SEPARATOR);
            }
            write_part(part, subject, random, out);
        }
        if self.ends_with_rest {
            if !self.parts.is_empty() {
                out.push(TOKEN_SEPARATOR);
            }
            out.extend_from_slice(tokens_from(subject, self.source.len() - 1));
        }
    }
}

/// Token `index` of `subject`, or empty when it has fewer tokens (nats-server's guard for
/// `wildcard`; the other functions only read tokens a matched subject has).
fn token_at(subject: &[u8], index: usize) -> &[u8] {
    tokens(subject).nth(index).unwrap_or(b"")
}

/// `subject` from its token `index` on.
fn tokens_from(subject: &[u8], index: usize) -> &[u8] {
    if index == 0 {
        return subject;
    }
    match memchr::memchr_iter(TOKEN_SEPARATOR, subject).nth(index - 1) {
        Some(separator) => &subject[separator + 1..],
        None => b"",
    }
}

/// FNV-1a, 32 bits (Go `hash/fnv.New32a`), as nats-server's `partition` hashes its key.
fn fnv1a_32(pieces: impl IntoIterator<Item = impl AsRef<[u8]>>) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for piece in pieces {
        for &byte in piece.as_ref() {
            hash ^= byte as u32;
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// Length of the piece Go's `strings.Split(text, "")` cuts at `text[0]`: one UTF-8 sequence,
/// or one byte when the bytes there are not valid UTF-8.
fn utf8_piece_len(text: &[u8]) -> usize {
    let expected = match text[0] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    if expected > 1 && text.len() >= expected && std::str::from_utf8(&text[..expected]).is_ok() {
        expected
    } else {
        1
    }
}

/// The pieces of Go's `strings.Split(text, separator)`.
fn go_split<'t>(text: &'t [u8], separator: &'t [u8]) -> impl Iterator<Item = &'t [u8]> + 't {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let remaining = rest?;
        if separator.is_empty() {
            if remaining.is_empty() {
                rest = None;
                return None;
            }
            let length = utf8_piece_len(remaining);
            rest = Some(&remaining[length..]);
            return Some(&remaining[..length]);
        }
        match memchr::memmem::find(remaining, separator) {
            Some(at) => {
                rest = Some(&remaining[at + separator.len()..]);
                Some(&remaining[..at])
            }
            None => {
                rest = None;
                Some(remaining)
            }
        }
    })
}

/// `true` when `0 < n < length`: the functions leave a token whole otherwise.
fn inside(n: i32, length: usize) -> bool {
    n > 0 && (n as usize) < length
}

fn write_part(part: &Part, subject: &[u8], random: &mut impl FnMut() -> u32, out: &mut Vec<u8>) {
    match part {
        Part::Literal(literal) => out.extend_from_slice(literal),
        Part::Wildcard(token) => out.extend_from_slice(token_at(subject, *token)),
        Part::Partition { buckets, key } => {
            if *buckets == 0 {
                out.push(b'0');
                return;
            }
            let hash = match key {
                PartitionKey::Subject => fnv1a_32([subject]),
                PartitionKey::Tokens(indexes) => {
                    fnv1a_32(indexes.iter().map(|&index| token_at(subject, index)))
                }
            };
            // Go: `h.Sum32() % uint32(numBuckets)`; a negative count wraps to a large one.
            write_u64(out, (hash % *buckets as u32) as u64);
        }
        Part::SplitFromLeft { token, position } => {
            let source = token_at(subject, *token);
            if inside(*position, source.len()) {
                let at = *position as usize;
                out.extend_from_slice(&source[..at]);
                out.push(TOKEN_SEPARATOR);
                out.extend_from_slice(&source[at..]);
            } else {
                out.extend_from_slice(source);
            }
        }
        Part::SplitFromRight { token, position } => {
            let source = token_at(subject, *token);
            if inside(*position, source.len()) {
                let at = source.len() - *position as usize;
                out.extend_from_slice(&source[..at]);
                out.push(TOKEN_SEPARATOR);
                out.extend_from_slice(&source[at..]);
            } else {
                out.extend_from_slice(source);
            }
        }
        Part::SliceFromLeft { token, size } => {
            let source = token_at(subject, *token);
            if !inside(*size, source.len()) {
                out.extend_from_slice(source);
                return;
            }
            // Whole slices from the left, the short remainder last.
            for (index, slice) in source.chunks(*size as usize).enumerate() {
                if index > 0 {
                    out.push(TOKEN_SEPARATOR);
                }
                out.extend_from_slice(slice);
            }
        }
        Part::SliceFromRight { token, size } => {
            let source = token_at(subject, *token);
            if !inside(*size, source.len()) {
                out.extend_from_slice(source);
                return;
            }
            // The short remainder first, then whole slices.
            let remainder = source.len() % *size as usize;
            if remainder > 0 {
                out.extend_from_slice(&source[..remainder]);
                out.push(TOKEN_SEPARATOR);
            }
            for (index, slice) in source[remainder..].chunks(*size as usize).enumerate() {
                if index > 0 {
                    out.push(TOKEN_SEPARATOR);
                }
                out.extend_from_slice(slice);
            }
        }
        Part::Left { token, length } => {
            let source = token_at(subject, *token);
            let end = if inside(*length, source.len()) {
                *length as usize
            } else {
                source.len()
            };
            out.extend_from_slice(&source[..end]);
        }
        Part::Right { token, length } => {
            let source = token_at(subject, *token);
            let start = if inside(*length, source.len()) {
                source.len() - *length as usize
            } else {
                0
            };
            out.extend_from_slice(&source[start..]);
        }
        Part::Split { token, separator } => {
            // nats-server's loop, kept as it is: empty pieces are dropped, and a separator is
            // written before a non-empty piece unless the previous piece was empty and first.
            let source = token_at(subject, *token);
            let mut pieces = go_split(source, separator).peekable();
            let mut first = true;
            while let Some(piece) = pieces.next() {
                out.extend_from_slice(piece);
                if let Some(next) = pieces.peek() {
                    let after_empty_first = first && piece.is_empty();
                    if !next.is_empty() && !after_empty_first {
                        out.push(TOKEN_SEPARATOR);
                    }
                }
                first = false;
            }
        }
        Part::Random { ceiling } => {
            if *ceiling == 0 {
                out.push(b'0');
                return;
            }
            // Go: `int(rand.Int31()) % ceiling`; the result has the dividend's sign (>= 0).
            let value = (random() >> 1) % ceiling.unsigned_abs();
            write_u64(out, value as u64);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The mapping table.
// ---------------------------------------------------------------------------------------------

/// One weighted choice of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    /// Cumulative percent: this choice is taken for a draw in `[previous bound, bound)`.
    bound: u8,
    transform: Transform,
}

/// One mapping, its destinations resolved for this server's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    source: Box<[u8]>,
    /// The source has no wildcard: equality decides.
    literal: bool,
    /// The source pattern, for wildcard sources.
    pattern: Pattern,
    /// Ascending `bound`s. When the last bound is below 100 (or there is no choice), a draw
    /// at or above it drops the message: the source was listed as a destination at less than
    /// 100%, nats-server's "they want loss".
    choices: Box<[Choice]>,
}

/// An account's subject mappings, built once per configuration (nats-server `a.mappings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingTable {
    entries: Box<[Entry]>,
}

impl MappingTable {
    /// Builds the table from the configuration's mappings, in their order (the first source
    /// that matches a subject wins; a later mapping with the same source replaces an earlier
    /// one in its place, as `AddWeightedMappings` does). `cluster` is this server's cluster
    /// name: destinations scoped to it replace the unscoped ones; `None` (natsring has no
    /// cluster yet) selects the unscoped ones, like nats-server without a cluster name.
    ///
    /// The error names the mapping (its index in `mappings`) and nats-server's reason.
    pub fn new(
        mappings: &[Mapping],
        cluster: Option<&str>,
    ) -> Result<MappingTable, (usize, MappingError)> {
        let mut entries: Vec<Entry> = Vec::with_capacity(mappings.len());
        for (index, mapping) in mappings.iter().enumerate() {
            let entry = compile(mapping, cluster).map_err(|error| (index, error))?;
            match entries.iter_mut().find(|e| e.source == entry.source) {
                Some(existing) => *existing = entry,
                None => entries.push(entry),
            }
        }
        Ok(MappingTable {
            entries: entries.into(),
        })
    }

    /// True when the account has no mappings (the publish path's one branch).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// nats-server `selectMappedSubject`: the subject a client's publish to `subject` goes to,
    /// written into `out`, or `None` when no mapping's source matches (then the subject is
    /// used as it is). `random` is the shard's generator, called only for weighted choices
    /// and `{{random(n)}}`.
    ///
    /// An empty result means the message is dropped: its mapping listed its own source at
    /// less than 100% and the draw fell in the remainder. nats-server then publishes to the
    /// empty subject, which nothing matches (with publish permissions that have an allow
    /// list, it also reports a permissions violation for `""`).
    #[inline]
    pub fn map<'o>(
        &self,
        subject: &[u8],
        random: &mut impl FnMut() -> u32,
        out: &'o mut Vec<u8>,
    ) -> Option<&'o [u8]> {
        if self.entries.is_empty() {
            return None;
        }
        self.map_slow(subject, random, out)
    }

    fn map_slow<'o>(
        &self,
        subject: &[u8],
        random: &mut impl FnMut() -> u32,
        out: &'o mut Vec<u8>,
    ) -> Option<&'o [u8]> {
        let entry = self.entries.iter().find(|entry| {
            if entry.literal {
                &entry.source[..] == subject
            } else {
                entry.pattern.matches(subject)
            }
        })?;
        let choice = match &entry.choices[..] {
            [only] if only.bound == 100 => Some(only),
            choices => {
                let draw = percent(random());
                choices.iter().find(|choice| draw < choice.bound)
            }
        };
        match choice {
            Some(choice) => choice.transform.write(subject, random, out),
            None => out.clear(),
        }
        Some(&out[..])
    }
}

/// A draw in `[0, 100)` from 32 random bits (multiply-shift, like Go's `fastrand.Uint32n`).
fn percent(random: u32) -> u8 {
    ((random as u64 * 100) >> 32) as u8
}

/// Checks one mapping as nats-server's `AddWeightedMappings` does, in its order: the source,
/// then each destination (duplicate, weight, total weight per cluster, template).
pub fn check(mapping: &Mapping) -> Result<(), MappingError> {
    compile(mapping, None).map(|_| ())
}

fn compile(mapping: &Mapping, cluster: Option<&str>) -> Result<Entry, MappingError> {
    let source = mapping.source.as_str();
    if !valid_subject(source.as_bytes()) {
        return Err(MappingError::InvalidSubject);
    }
    let cluster_of = |destination: &crate::account::WeightedDestination| {
        destination.cluster.as_deref().unwrap_or("").to_owned()
    };
    let mut total_per_cluster: Vec<(String, u32)> = Vec::new();
    // (cluster, weight, transform) of every destination, in order.
    let mut compiled: Vec<(String, u8, Transform)> = Vec::new();
    for (index, destination) in mapping.destinations.iter().enumerate() {
        let duplicate = mapping.destinations[..index]
            .iter()
            .any(|earlier| earlier.subject == destination.subject);
        if duplicate {
            return Err(MappingError::DuplicateEntry(destination.subject.clone()));
        }
        if destination.weight > 100 {
            return Err(MappingError::IndividualWeight);
        }
        let cluster = cluster_of(destination);
        let total = match total_per_cluster.iter_mut().find(|(c, _)| *c == cluster) {
            Some((_, total)) => total,
            None => {
                total_per_cluster.push((cluster.clone(), 0));
                &mut total_per_cluster.last_mut().expect("just pushed").1
            }
        };
        *total += destination.weight as u32;
        if *total > 100 {
            return Err(MappingError::TotalWeight);
        }
        if destination.subject.is_empty() {
            return Err(MappingError::EmptyDestination);
        }
        check_destination_tokens(&destination.subject)?;
        let transform = Transform::new(source, &destination.subject)?;
        compiled.push((cluster, destination.weight, transform));
    }
    let source_listed = mapping.destinations.iter().any(|d| d.subject == source);
    let resolve = |wanted: &str| -> Result<Box<[Choice]>, MappingError> {
        let mut choices: Vec<(u8, Transform)> = compiled
            .iter()
            .filter(|(cluster, ..)| cluster == wanted)
            .map(|(_, weight, transform)| (*weight, transform.clone()))
            .collect();
        let total: u32 = choices.iter().map(|(weight, _)| *weight as u32).sum();
        // The remainder keeps the original subject, unless the source was listed itself.
        if total != 100 && !source_listed {
            let remainder = if choices.is_empty() { 100 } else { 100 - total };
            let keep = Transform::new(source, &numbered_wildcards(source))?;
            choices.push((remainder as u8, keep));
        }
        // Go sorts by weight with `slices.SortFunc`, an insertion sort (stable) for up to 12.
        choices.sort_by_key(|(weight, _)| *weight);
        let mut bound = 0u8;
        Ok(choices
            .into_iter()
            .map(|(weight, transform)| {
                bound += weight;
                Choice { bound, transform }
            })
            .collect())
    };
    let unscoped = resolve("")?;
    // nats-server checks every cluster's list when adding; do the same, keep only ours.
    let mut scoped = None;
    for (name, _) in total_per_cluster
        .iter()
        .filter(|(name, _)| !name.is_empty())
    {
        let choices = resolve(name)?;
        if Some(name.as_str()) == cluster {
            scoped = Some(choices);
        }
    }
    let pattern = Pattern::new(source);
    Ok(Entry {
        source: source.as_bytes().into(),
        literal: pattern.is_literal(),
        pattern,
        choices: scoped.unwrap_or(unscoped),
    })
}

/// nats-server `transformTokenize`: `foo.*.*.>` -> `foo.$1.$2.>`, the destination that keeps
/// a subject as it is.
fn numbered_wildcards(source: &str) -> String {
    let mut number = 0;
    source
        .split('.')
        .map(|token| {
            if token == "*" {
                number += 1;
                format!("${number}")
            } else {
                token.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests;
