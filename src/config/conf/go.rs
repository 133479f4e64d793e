//! The pieces of Go's standard library whose exact behaviour shows in nats-server's results:
//! rune decoding (`utf8.DecodeRune`), `unicode.IsDigit`, `strconv.ParseInt`, `time.Parse` of the
//! one layout the format uses, `path/filepath`'s `Clean`, `Dir` and `Join`, and the texts of
//! `os` errors.
//!
//! Nothing here knows about the configuration format; each function says which Go function it
//! reproduces and where it differs (nowhere, unless it says so).

use std::io;

/// What Go's `utf8.DecodeRune` returns for bytes that are not valid UTF-8.
pub const REPLACEMENT_CHARACTER: char = '\u{FFFD}';

/// Go's `utf8.DecodeRune`: the character at the start of `bytes` and its width in bytes. An
/// invalid or truncated sequence is one U+FFFD one byte wide, as in Go; `bytes` is not empty.
pub fn decode_rune(bytes: &[u8]) -> (char, usize) {
    let first = bytes[0];
    if first < 0x80 {
        return (char::from(first), 1);
    }
    let width = match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (REPLACEMENT_CHARACTER, 1),
    };
    let Some(sequence) = bytes.get(..width) else {
        return (REPLACEMENT_CHARACTER, 1);
    };
    // `from_utf8` refuses overlong forms, surrogates and code points past U+10FFFF, as Go does.
    match std::str::from_utf8(sequence) {
        Ok(text) => (text.chars().next().unwrap_or(REPLACEMENT_CHARACTER), width),
        Err(_) => (REPLACEMENT_CHARACTER, 1),
    }
}

/// The characters of `bytes` as Go's `for _, r := range string(bytes)` yields them.
pub fn runes(bytes: &[u8]) -> impl Iterator<Item = char> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let rest = bytes.get(offset..).filter(|rest| !rest.is_empty())?;
        let (character, width) = decode_rune(rest);
        offset += width;
        Some(character)
    })
}

/// Go's `unicode.IsSpace` (the same set as Rust's `char::is_whitespace`: Unicode White_Space).
pub fn is_space(character: char) -> bool {
    character.is_whitespace()
}

/// Unicode's decimal digits (category Nd) as the Go that built nats-server 2.15.1 knows them
/// (Unicode 17: it lexes U+11DE0, new in 17.0, as a digit). Ranges, inclusive, sorted.
const DECIMAL_DIGIT_RANGES: [(u32, u32); 72] = [
    (0x0030, 0x0039),
    (0x0660, 0x0669),
    (0x06F0, 0x06F9),
    (0x07C0, 0x07C9),
    (0x0966, 0x096F),
    (0x09E6, 0x09EF),
    (0x0A66, 0x0A6F),
    (0x0AE6, 0x0AEF),
    (0x0B66, 0x0B6F),
    (0x0BE6, 0x0BEF),
    (0x0C66, 0x0C6F),
    (0x0CE6, 0x0CEF),
    (0x0D66, 0x0D6F),
    (0x0DE6, 0x0DEF),
    (0x0E50, 0x0E59),
    (0x0ED0, 0x0ED9),
    (0x0F20, 0x0F29),
    (0x1040, 0x1049),
    (0x1090, 0x1099),
    (0x17E0, 0x17E9),
    (0x1810, 0x1819),
    (0x1946, 0x194F),
    (0x19D0, 0x19D9),
    (0x1A80, 0x1A89),
    (0x1A90, 0x1A99),
    (0x1B50, 0x1B59),
    (0x1BB0, 0x1BB9),
    (0x1C40, 0x1C49),
    (0x1C50, 0x1C59),
    (0xA620, 0xA629),
    (0xA8D0, 0xA8D9),
    (0xA900, 0xA909),
    (0xA9D0, 0xA9D9),
    (0xA9F0, 0xA9F9),
    (0xAA50, 0xAA59),
    (0xABF0, 0xABF9),
    (0xFF10, 0xFF19),
    (0x104A0, 0x104A9),
    (0x10D30, 0x10D39),
    (0x10D40, 0x10D49),
    (0x11066, 0x1106F),
    (0x110F0, 0x110F9),
    (0x11136, 0x1113F),
    (0x111D0, 0x111D9),
    (0x112F0, 0x112F9),
    (0x11450, 0x11459),
    (0x114D0, 0x114D9),
    (0x11650, 0x11659),
    (0x116C0, 0x116C9),
    (0x116D0, 0x116E3),
    (0x11730, 0x11739),
    (0x118E0, 0x118E9),
    (0x11950, 0x11959),
    (0x11BF0, 0x11BF9),
    (0x11C50, 0x11C59),
    (0x11D50, 0x11D59),
    (0x11DA0, 0x11DA9),
    (0x11DE0, 0x11DE9),
    (0x11F50, 0x11F59),
    (0x16130, 0x16139),
    (0x16A60, 0x16A69),
    (0x16AC0, 0x16AC9),
    (0x16B50, 0x16B59),
    (0x16D70, 0x16D79),
    (0x1CCF0, 0x1CCF9),
    (0x1D7CE, 0x1D7FF),
    (0x1E140, 0x1E149),
    (0x1E2F0, 0x1E2F9),
    (0x1E4F0, 0x1E4F9),
    (0x1E5F1, 0x1E5FA),
    (0x1E950, 0x1E959),
    (0x1FBF0, 0x1FBF9),
];

/// Go's `unicode.IsDigit`: any Unicode decimal digit, not only `0`-`9`.
pub fn is_digit(character: char) -> bool {
    if character.is_ascii() {
        return character.is_ascii_digit();
    }
    let code = u32::from(character);
    let index = DECIMAL_DIGIT_RANGES.partition_point(|&(_, last)| last < code);
    DECIMAL_DIGIT_RANGES
        .get(index)
        .is_some_and(|&(first, _)| first <= code)
}

/// Go's `unicode.ToLower` where the result is ASCII: ASCII letters, U+0130 (İ) and U+212A
/// (Kelvin sign), the only non-ASCII characters whose simple lowercase is ASCII. Others are
/// returned unchanged, which is enough to compare against an ASCII keyword.
pub fn to_lower_for_ascii_keyword(character: char) -> char {
    match character {
        '\u{0130}' => 'i',
        '\u{212A}' => 'k',
        _ => character.to_ascii_lowercase(),
    }
}

/// Whether Go's `strings.ToLower(text) == keyword`, for an ASCII lowercase `keyword`.
pub fn lowercases_to(text: &[u8], keyword: &str) -> bool {
    let mut expected = keyword.chars();
    for character in runes(text) {
        if expected.next() != Some(to_lower_for_ascii_keyword(character)) {
            return false;
        }
    }
    expected.next().is_none()
}

/// Why Go's `strconv.ParseInt` refused a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseIntError {
    /// `strconv.ErrSyntax`.
    Syntax,
    /// `strconv.ErrRange`.
    Range,
}

/// Go's `strconv.ParseInt(text, 10, 64)`, byte by byte as Go reads it (so which error comes
/// first, range or syntax, is Go's: `99999999999999999999x` is out of range).
pub fn parse_int(text: &[u8]) -> Result<i64, ParseIntError> {
    let (negative, digits) = match text.split_first() {
        None => return Err(ParseIntError::Syntax),
        Some((b'+', rest)) => (false, rest),
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, text),
    };
    if digits.is_empty() {
        return Err(ParseIntError::Syntax);
    }
    // strconv.ParseUint(digits, 10, 64).
    let mut magnitude: u64 = 0;
    let mut overflowed = false;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(ParseIntError::Syntax);
        }
        match magnitude
            .checked_mul(10)
            .and_then(|shifted| shifted.checked_add(u64::from(byte - b'0')))
        {
            Some(next) => magnitude = next,
            None => {
                overflowed = true;
                break;
            }
        }
    }
    let limit = 1u64 << 63;
    if overflowed || (!negative && magnitude >= limit) || (negative && magnitude > limit) {
        return Err(ParseIntError::Range);
    }
    Ok(if negative {
        // magnitude <= 2^63, so this is exact (2^63 itself is i64::MIN).
        0i64.wrapping_sub_unsigned(magnitude)
    } else {
        magnitude as i64
    })
}

/// Whether Go's `time.Parse("2006-01-02T15:04:05Z", text)` accepts `text`: ASCII digits in
/// the layout's places, month 1-12, a day that exists in that month and year, hour 0-23,
/// minute and second 0-59.
pub fn is_zulu_datetime(text: &[u8]) -> bool {
    const LAYOUT: &[u8; 20] = b"0000-00-00T00:00:00Z";
    if text.len() != LAYOUT.len() {
        return false;
    }
    for (&byte, &expected) in text.iter().zip(LAYOUT.iter()) {
        let matches = if expected == b'0' {
            byte.is_ascii_digit()
        } else {
            byte == expected
        };
        if !matches {
            return false;
        }
    }
    let number = |range: std::ops::Range<usize>| {
        text[range]
            .iter()
            .fold(0u32, |total, &digit| total * 10 + u32::from(digit - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day) && hour < 24 && minute < 60 && second < 60
}

/// Go's `filepath.Clean` on Unix: the shortest path naming the same file by lexical rules
/// (`//` and `.` elements dropped, `x/..` removed, `..` at the root dropped, `""` is `.`).
pub fn clean_path(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut elements: Vec<&[u8]> = Vec::new();
    // Elements of `..` that could not be cancelled (only in relative paths).
    let mut leading_parents = 0usize;
    for element in path.split(|&byte| byte == b'/') {
        match element {
            b"" | b"." => {}
            b".." => {
                if elements.pop().is_none() && !rooted {
                    leading_parents += 1;
                }
            }
            _ => elements.push(element),
        }
    }
    let mut cleaned = Vec::with_capacity(path.len());
    if rooted {
        cleaned.push(b'/');
    }
    let parents = std::iter::repeat_n(&b".."[..], leading_parents);
    for (index, element) in parents.chain(elements.iter().copied()).enumerate() {
        if index > 0 {
            cleaned.push(b'/');
        }
        cleaned.extend_from_slice(element);
    }
    if cleaned.is_empty() {
        cleaned.push(b'.');
    }
    cleaned
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned (`.` when there is none).
pub fn directory_of(path: &[u8]) -> Vec<u8> {
    let cut = path
        .iter()
        .rposition(|&byte| byte == b'/')
        .map_or(0, |slash| slash + 1);
    clean_path(&path[..cut])
}

/// Go's `filepath.Join(directory, name)`: the two joined by `/` and cleaned. As in Go, an
/// absolute `name` is still taken relative to `directory` (`Join("/etc", "/x")` is `/etc/x`).
pub fn join_paths(directory: &[u8], name: &[u8]) -> Vec<u8> {
    match (directory.is_empty(), name.is_empty()) {
        (true, true) => Vec::new(),
        (true, false) => clean_path(name),
        (false, _) => {
            let mut joined = Vec::with_capacity(directory.len() + 1 + name.len());
            joined.extend_from_slice(directory);
            joined.push(b'/');
            joined.extend_from_slice(name);
            clean_path(&joined)
        }
    }
}

/// The text Go's `syscall.Errno.Error()` gives for an errno: Go's own table, which is glibc's
/// `strerror` in lower case for all but a few (spelled out here).
fn errno_text(errno: i32) -> String {
    let fixed = match errno {
        libc::ENOENT => "no such file or directory",
        libc::EACCES => "permission denied",
        libc::EISDIR => "is a directory",
        libc::ENOTDIR => "not a directory",
        libc::ELOOP => "too many levels of symbolic links",
        libc::ENAMETOOLONG => "file name too long",
        libc::EMFILE => "too many open files",
        libc::ENFILE => "too many open files in system",
        libc::EIO => "input/output error",
        libc::ENXIO => "no such device or address",
        libc::ENODEV => "no such device",
        libc::EPERM => "operation not permitted",
        libc::EINVAL => "invalid argument",
        libc::EFBIG => "file too large",
        libc::EOVERFLOW => "value too large for defined data type",
        libc::ENOMEM => "cannot allocate memory",
        libc::EINTR => "interrupted system call",
        libc::EAGAIN => "resource temporarily unavailable",
        libc::ESTALE => "stale NFS file handle",
        libc::ETXTBSY => "text file busy",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    // glibc's text without Rust's " (os error N)", first letter lowered as Go's table has it.
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => format!("errno {errno}"),
    }
}

/// What Go prints for an `*os.PathError`: `<operation> <path>: <errno text>`, e.g.
/// `open /x: no such file or directory` or `read /etc: is a directory`.
pub fn path_error_text(operation: &str, path: &str, error: &io::Error) -> String {
    let reason = match error.raw_os_error() {
        Some(errno) => errno_text(errno),
        None => error.to_string(),
    };
    format!("{operation} {path}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rune_is_go_decode_rune() {
        assert_eq!(decode_rune(b"a"), ('a', 1));
        assert_eq!(decode_rune("é!".as_bytes()), ('é', 2));
        assert_eq!(decode_rune("𑽐".as_bytes()), ('𑽐', 4));
        assert_eq!(decode_rune(b"\xff"), (REPLACEMENT_CHARACTER, 1));
        assert_eq!(decode_rune(b"\xe2\x82"), (REPLACEMENT_CHARACTER, 1));
        assert_eq!(decode_rune(b"\xc0\x80"), (REPLACEMENT_CHARACTER, 1));
        assert_eq!(decode_rune(b"\xed\xa0\x80"), (REPLACEMENT_CHARACTER, 1));
        assert_eq!(runes(b"a\xffb").collect::<String>(), "a\u{FFFD}b");
    }

    #[test]
    fn digits_are_unicode_decimal_digits() {
        assert!(is_digit('0') && is_digit('9') && !is_digit('a') && !is_digit('/'));
        assert!(is_digit('\u{0660}') && is_digit('\u{11DE0}') && is_digit('\u{1D7FF}'));
        assert!(!is_digit('\u{00B2}') && !is_digit('\u{2160}') && !is_digit('\u{1D800}'));
        for &(first, last) in &DECIMAL_DIGIT_RANGES {
            assert!(first <= last);
        }
        assert!(DECIMAL_DIGIT_RANGES
            .windows(2)
            .all(|pair| pair[0].1 < pair[1].0));
    }

    #[test]
    fn keyword_comparison_folds_as_go() {
        assert!(lowercases_to(b"INCLUDE", "include"));
        assert!(lowercases_to("\u{0130}nclude".as_bytes(), "include"));
        assert!(!lowercases_to(b"includes", "include"));
        assert!(!lowercases_to(b"includ", "include"));
    }

    #[test]
    fn parse_int_is_go_parse_int() {
        assert_eq!(parse_int(b"0"), Ok(0));
        assert_eq!(parse_int(b"-12"), Ok(-12));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), Err(ParseIntError::Range));
        assert_eq!(
            parse_int(b"-9223372036854775809"),
            Err(ParseIntError::Range)
        );
        assert_eq!(
            parse_int(b"99999999999999999999x"),
            Err(ParseIntError::Range)
        );
        assert_eq!(parse_int(b"12x"), Err(ParseIntError::Syntax));
        assert_eq!(parse_int(b"-"), Err(ParseIntError::Syntax));
        assert_eq!(parse_int(b""), Err(ParseIntError::Syntax));
    }

    #[test]
    fn datetimes_are_checked_as_go_time_parse() {
        assert!(is_zulu_datetime(b"2016-05-04T18:53:41Z"));
        assert!(is_zulu_datetime(b"2024-02-29T23:59:59Z"));
        assert!(is_zulu_datetime(b"0000-01-01T00:00:00Z"));
        assert!(!is_zulu_datetime(b"2023-02-29T00:00:00Z"));
        assert!(!is_zulu_datetime(b"1900-02-29T00:00:00Z"));
        assert!(!is_zulu_datetime(b"2016-13-04T18:53:41Z"));
        assert!(!is_zulu_datetime(b"2016-00-04T18:53:41Z"));
        assert!(!is_zulu_datetime(b"2016-04-31T18:53:41Z"));
        assert!(!is_zulu_datetime(b"2016-05-04T24:00:00Z"));
        assert!(!is_zulu_datetime(b"2016-05-04T18:60:41Z"));
        assert!(!is_zulu_datetime(b"2016-05-04T18:53:60Z"));
        assert!(!is_zulu_datetime("2016-05-0٤T18:53:41Z".as_bytes()));
    }

    #[test]
    fn paths_are_cleaned_and_joined_as_go() {
        let clean = |path: &str| String::from_utf8(clean_path(path.as_bytes())).unwrap();
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("a//b/./c/"), "a/b/c");
        assert_eq!(clean("/../a/.."), "/");
        assert_eq!(clean("../a/../../b"), "../../b");
        assert_eq!(clean("a/.."), ".");
        let directory = |path: &str| String::from_utf8(directory_of(path.as_bytes())).unwrap();
        assert_eq!(directory(""), ".");
        assert_eq!(directory("t.conf"), ".");
        assert_eq!(directory("/t.conf"), "/");
        assert_eq!(directory("a/b/t.conf"), "a/b");
        let join = |directory: &str, name: &str| {
            String::from_utf8(join_paths(directory.as_bytes(), name.as_bytes())).unwrap()
        };
        assert_eq!(join(".", "inc.conf"), "inc.conf");
        assert_eq!(join("/tmp/x", ""), "/tmp/x");
        assert_eq!(join("/tmp/x", "/etc/passwd"), "/tmp/x/etc/passwd");
        assert_eq!(join("a", "../b.conf"), "b.conf");
        assert_eq!(join("", ""), "");
    }

    #[test]
    fn os_errors_read_as_go_prints_them() {
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            path_error_text("open", "/x", &missing),
            "open /x: no such file or directory"
        );
        let directory = io::Error::from_raw_os_error(libc::EISDIR);
        assert_eq!(
            path_error_text("read", "inc", &directory),
            "read inc: is a directory"
        );
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            path_error_text("open", "a", &denied),
            "open a: permission denied"
        );
        let busy = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(
            path_error_text("open", "a", &busy),
            "open a: device or resource busy"
        );
    }
}
