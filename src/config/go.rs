//! Go's text forms that nats-server's users see, reproduced: `time.ParseDuration` (durations in
//! the configuration file), `time.Duration.String()` (durations in messages), `%q` quoting, and
//! `url.Parse` (route URLs, `--cluster`).
//!
//! A duration is an `i64` count of nanoseconds here, as Go's `time.Duration`: configuration
//! values may be negative, and the option layer decides what a negative one means.

/// Nanoseconds in each unit `time.ParseDuration` accepts.
const UNITS: [(&str, u64); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),       // U+00B5 micro sign
    ("\u{3bc}s", 1_000), // U+03BC Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    // Sentinel to keep the table's length obvious; never matches a unit (units have letters).
    ("", 0),
];

/// One nanosecond more than the largest positive duration: the magnitude of the most negative.
const MAGNITUDE_MAX: u64 = 1 << 63;

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each with an optional
/// fraction and a unit (`"300ms"`, `"-1.5h"`, `"2h45m"`); `"0"` alone needs no unit. The error
/// is Go's text (`time: invalid duration "x"`, `time: missing unit in duration "10"`,
/// `time: unknown unit "d" in duration "1d"`).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote_like_time(text));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for byte in rest[..digits].bytes() {
            if whole > MAGNITUDE_MAX / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(byte - b'0');
            if whole > MAGNITUDE_MAX {
                return Err(invalid());
            }
        }
        rest = &rest[digits..];
        // The fraction: digits past what fits are ignored, as Go does.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if let Some(after_point) = rest.strip_prefix('.') {
            rest = after_point;
            fraction_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for byte in rest[..fraction_digits].bytes() {
                if overflowed || fraction > (i64::MAX as u64) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(byte - b'0');
                if next > i64::MAX as u64 {
                    overflowed = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = &rest[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or point.
        let unit_len = rest
            .bytes()
            .take_while(|byte| *byte != b'.' && !byte.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                quote_like_time(text)
            ));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, nanos)) = UNITS
            .iter()
            .find(|(name, nanos)| *nanos != 0 && *name == unit)
        else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                quote_like_time(unit),
                quote_like_time(text)
            ));
        };
        if whole > MAGNITUDE_MAX / nanos {
            return Err(invalid());
        }
        let mut value = whole * nanos;
        if fraction > 0 {
            value += (fraction as f64 * (nanos as f64 / scale)) as u64;
            if value > MAGNITUDE_MAX {
                return Err(invalid());
            }
        }
        // Go adds in a uint64, which wraps (two halves of 2^64 make 0, and it accepts that).
        total = total.wrapping_add(value);
        if total > MAGNITUDE_MAX {
            return Err(invalid());
        }
    }
    if negative {
        Ok((total as i64).wrapping_neg())
    } else if total > i64::MAX as u64 {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

/// Go's `time.Duration.String()`: `"2m0s"`, `"1h30m0s"`, `"250ms"`, `"1.5µs"`, `"0s"`.
pub fn format_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let magnitude = nanos.unsigned_abs();
    let mut text = String::new();
    if magnitude == 0 {
        return "0s".to_string();
    }
    if magnitude < 1_000_000_000 {
        let (unit, precision) = if magnitude < 1_000 {
            ("ns", 0)
        } else if magnitude < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (whole, fraction) = split_fraction(magnitude, precision);
        text.push_str(&whole.to_string());
        text.push_str(&fraction);
        text.push_str(unit);
    } else {
        let (seconds_total, fraction) = split_fraction(magnitude, 9);
        let hours = seconds_total / 3600;
        let minutes = seconds_total / 60 % 60;
        let seconds = seconds_total % 60;
        if hours > 0 {
            text.push_str(&format!("{hours}h{minutes}m"));
        } else if seconds_total >= 60 {
            text.push_str(&format!("{minutes}m"));
        }
        text.push_str(&seconds.to_string());
        text.push_str(&fraction);
        text.push('s');
    }
    if negative {
        text.insert(0, '-');
    }
    text
}

/// [`format_duration`] of a `std` duration (one past Go's range prints as its largest).
pub fn format_std_duration(duration: std::time::Duration) -> String {
    format_duration(duration.as_nanos().min(i64::MAX as u128) as i64)
}

/// `value / 10^precision` as (integer part, `".fff"` without trailing zeros, or `""`).
fn split_fraction(value: u64, precision: u32) -> (u64, String) {
    let divisor = 10u64.pow(precision);
    let (whole, fraction) = (value / divisor, value % divisor);
    if fraction == 0 {
        return (whole, String::new());
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    (whole, format!(".{}", digits.trim_end_matches('0')))
}

/// Go's `net.JoinHostPort`: `host:port`, an IPv6 host in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The quoting of Go's `time` package errors: double quotes, `"` and `\` escaped, bytes of
/// control or non-ASCII characters written as `\xNN`.
fn quote_like_time(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        if (character as u32) < 0x20 || !character.is_ascii() {
            let mut bytes = [0u8; 4];
            for byte in character.encode_utf8(&mut bytes).bytes() {
                quoted.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if character == '"' || character == '\\' {
                quoted.push('\\');
            }
            quoted.push(character);
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `%q` (`strconv.Quote`) for the strings users write: double quotes, `"` and `\`
/// escaped, `\n` `\r` `\t` `\a` `\b` `\f` `\v` by name, other control characters as `\xNN`
/// (`\u00NN` above 0x7e), printable Unicode kept as it is.
pub fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `net.SplitHostPort`: `host:port`, `[host]:port` (IPv6), with Go's error text
/// (`address x: missing port in address`, `... too many colons in address`, ...).
pub fn split_host_port(text: &str) -> Result<(&str, &str), String> {
    let fail = |why: &str| format!("address {text}: {why}");
    let Some(last_colon) = text.rfind(':') else {
        return Err(fail("missing port in address"));
    };
    let (host, host_start, host_end) = if text.starts_with('[') {
        let Some(end) = text.find(']') else {
            return Err(fail("missing ']' in address"));
        };
        if end + 1 == text.len() {
            return Err(fail("missing port in address"));
        }
        if end + 1 != last_colon {
            return Err(if text.as_bytes()[end + 1] == b':' {
                fail("too many colons in address")
            } else {
                fail("missing port in address")
            });
        }
        (&text[1..end], 1, end + 1)
    } else {
        let host = &text[..last_colon];
        if host.contains(':') {
            return Err(fail("too many colons in address"));
        }
        (host, 0, 0)
    };
    if text[host_start..].contains('[') {
        return Err(fail("unexpected '[' in address"));
    }
    if text[host_end..].contains(']') {
        return Err(fail("unexpected ']' in address"));
    }
    Ok((host, &text[last_colon + 1..]))
}

/// nats-server's `parseHostPort`: `host` or `host:port`; a missing port, or 0 or -1, is
/// `default_port`. The error is Go's.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let with_default;
    let (host, port) = match split_host_port(text) {
        Ok(parts) => parts,
        Err(error) if error.ends_with("missing port in address") => {
            with_default = format!("{text}:{default_port}");
            split_host_port(&with_default)?
        }
        Err(error) => return Err(error),
    };
    let port = match port.trim().parse::<i64>() {
        Ok(0 | -1) => default_port,
        Ok(port) if (1..=65535).contains(&port) => port as u16,
        Ok(port) => return Err(format!("port {port} is out of range (1-65535)")),
        Err(_) => {
            return Err(format!(
                "strconv.Atoi: parsing {}: invalid syntax",
                quote(port.trim())
            ))
        }
    };
    Ok((host.trim().to_string(), port))
}

/// What Go's `url.Parse` finds in a URL, as far as nats-server's callers use it: the scheme
/// (lower-cased, as Go keeps it), the user information (unescaped), the host as Go's
/// `URL.Host` holds it (`host:port`, an IPv6 host in brackets, still escaped), and whatever
/// follows the authority, as written (path, query, fragment; or the opaque part of `a:b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub username: Option<String>,
    /// `Some` when the user information has a `:` (even an empty password), as Go's
    /// `Userinfo.Password()` reports it.
    pub password: Option<String>,
    pub host: String,
    pub rest: String,
}

/// Go's `url.Parse`, with its error texts (`parse "<url>": <why>`): control characters, a
/// missing scheme before `:`, a colon in a first path segment, bad user information, a host
/// with a bad port, a bad character or a bad escape, bad escapes in the path and fragment.
/// Go checks nothing else: `abc`, `a:1` and `http://h` are URLs (with no host, or no port).
pub fn parse_url(text: &str) -> Result<Url, String> {
    let (before_fragment, fragment) = match text.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (text, None),
    };
    let fail = |url: &str, why: String| format!("parse {}: {why}", quote(url));
    let mut url =
        parse_url_without_fragment(before_fragment).map_err(|why| fail(before_fragment, why))?;
    if let Some(fragment) = fragment {
        unescape(fragment, Escaping::Other).map_err(|why| fail(text, why))?;
        url.rest.push('#');
        url.rest.push_str(fragment);
    }
    Ok(url)
}

/// Go's `url.parse` (not via a request).
fn parse_url_without_fragment(text: &str) -> Result<Url, String> {
    if text.bytes().any(|byte| byte < 0x20 || byte == 0x7f) {
        return Err("net/url: invalid control character in URL".to_string());
    }
    let (scheme, rest) = url_scheme(text)?;
    let mut url = Url {
        scheme: scheme.to_ascii_lowercase(),
        username: None,
        password: None,
        host: String::new(),
        rest: String::new(),
    };
    // The query is kept as written; Go checks nothing in it.
    let (path_part, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if !path_part.starts_with('/') {
        if !url.scheme.is_empty() {
            // Opaque: `mailto:x`, `a:1`.
            url.rest = rest.to_string();
            return Ok(url);
        }
        let first_segment = path_part.split('/').next().unwrap_or_default();
        if first_segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".to_string());
        }
    }
    let mut path = path_part;
    if path_part.starts_with("//") && (!url.scheme.is_empty() || !path_part.starts_with("///")) {
        let authority_and_path = &path_part[2..];
        let (authority, after) = match authority_and_path.find('/') {
            Some(at) => authority_and_path.split_at(at),
            None => (authority_and_path, ""),
        };
        let host_start = authority.rfind('@').map_or(0, |at| at + 1);
        url.host = url_host(&authority[host_start..])?;
        if host_start > 0 {
            let userinfo = &authority[..host_start - 1];
            if !userinfo
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&byte))
            {
                return Err("net/url: invalid userinfo".to_string());
            }
            match userinfo.split_once(':') {
                Some((user, password)) => {
                    url.username = Some(unescape(user, Escaping::Other)?);
                    url.password = Some(unescape(password, Escaping::Other)?);
                }
                None => url.username = Some(unescape(userinfo, Escaping::Other)?),
            }
        }
        path = after;
    }
    unescape(path, Escaping::Other)?;
    url.rest = path.to_string();
    if let Some(query) = query {
        url.rest.push('?');
        url.rest.push_str(query);
    }
    Ok(url)
}

/// Go's `getScheme`.
fn url_scheme(text: &str) -> Result<(&str, &str), String> {
    for (index, byte) in text.bytes().enumerate() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if index > 0 => {}
            b':' if index == 0 => return Err("missing protocol scheme".to_string()),
            b':' => return Ok((&text[..index], &text[index + 1..])),
            _ => return Ok(("", text)),
        }
    }
    Ok(("", text))
}

/// Go's `parseHost`: a port must be digits; the host's characters and escapes are checked.
fn url_host(host: &str) -> Result<String, String> {
    let colon_port = if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".to_string());
        };
        &host[end + 1..]
    } else {
        host.rfind(':').map_or("", |at| &host[at..])
    };
    let valid_port = colon_port.is_empty()
        || (colon_port.starts_with(':') && colon_port[1..].bytes().all(|b| b.is_ascii_digit()));
    if !valid_port {
        return Err(format!("invalid port {} after host", quote(colon_port)));
    }
    unescape(host, Escaping::Host)?;
    Ok(host.to_string())
}

/// Which of Go's `unescape` modes: the host's (strict about characters and escapes) or any
/// other part's (only escapes are checked).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escaping {
    Host,
    Other,
}

/// Go's `url.unescape`, returning the unescaped text.
fn unescape(text: &str, escaping: Escaping) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
            let (Some(high), Some(low)) = (hex(index + 1), hex(index + 2)) else {
                let end = (index + 3).min(bytes.len());
                return Err(format!(
                    "invalid URL escape {}",
                    quote(&String::from_utf8_lossy(&bytes[index..end]))
                ));
            };
            if escaping == Escaping::Host && high < 8 && &text[index..index + 3] != "%25" {
                return Err(format!(
                    "invalid URL escape {}",
                    quote(&text[index..index + 3])
                ));
            }
            unescaped.push((high * 16 + low) as u8);
            index += 3;
            continue;
        }
        if escaping == Escaping::Host
            && byte < 0x80
            && !byte.is_ascii_alphanumeric()
            && !b"!$&'()*+,;=:[]<>\"-_.~".contains(&byte)
        {
            return Err(format!(
                "invalid character {} in host name",
                quote(&(byte as char).to_string())
            ));
        }
        unescaped.push(byte);
        index += 1;
    }
    Ok(String::from_utf8_lossy(&unescaped).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn durations_parse_as_go_parses_them() {
        for (text, nanos) in [
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("2m", 120 * SECOND),
            ("1h30m", 5400 * SECOND),
            ("1h30m10s", 5410 * SECOND),
            ("250ms", 250_000_000),
            ("1.5s", 1_500_000_000),
            ("-1.5s", -1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5 * SECOND),
            ("100us", 100_000),
            ("100µs", 100_000),
            ("100\u{3bc}s", 100_000),
            ("7ns", 7),
            ("0.000000001s", 1),
            ("0.0000000015s", 1),
            ("1.0000000000000000000000001s", SECOND),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("2562047h47m16.854775807s", i64::MAX),
            // Go's uint64 sum wraps: 2^63 + 2^63 is 0.
            ("9223372036854775808ns9223372036854775808ns", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn bad_durations_get_go_errors() {
        for (text, error) in [
            ("", r#"time: invalid duration """#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            (".s", r#"time: invalid duration ".s""#),
            ("1", r#"time: missing unit in duration "1""#),
            ("10", r#"time: missing unit in duration "10""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("1s2", r#"time: missing unit in duration "1s2""#),
            ("1 s", r#"time: unknown unit " s" in duration "1 s""#),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            ("abc", r#"time: invalid duration "abc""#),
            (
                "1é",
                r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#,
            ),
        ] {
            assert_eq!(parse_duration(text), Err(error.to_string()), "{text:?}");
        }
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (250_000_000, "250ms"),
            (SECOND, "1s"),
            (1_500_000_000, "1.5s"),
            (30 * SECOND, "30s"),
            (60 * SECOND, "1m0s"),
            (120 * SECOND, "2m0s"),
            (5400 * SECOND, "1h30m0s"),
            (3600 * SECOND + 1, "1h0m0.000000001s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(format_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn host_and_port_split_as_go_splits_them() {
        assert_eq!(split_host_port("a:1"), Ok(("a", "1")));
        assert_eq!(split_host_port(":1"), Ok(("", "1")));
        assert_eq!(split_host_port("[::1]:1"), Ok(("::1", "1")));
        assert_eq!(
            split_host_port("::1:1"),
            Err("address ::1:1: too many colons in address".into())
        );
        assert_eq!(
            split_host_port("a"),
            Err("address a: missing port in address".into())
        );
        assert_eq!(
            split_host_port("[::1]"),
            Err("address [::1]: missing port in address".into())
        );
        assert_eq!(
            split_host_port("[::1"),
            Err("address [::1: missing ']' in address".into())
        );
        assert_eq!(
            split_host_port("a]:1"),
            Err("address a]:1: unexpected ']' in address".into())
        );
        assert_eq!(parse_host_port("h", 4222), Ok(("h".into(), 4222)));
        assert_eq!(parse_host_port("[::1]", 4222), Ok(("::1".into(), 4222)));
        assert_eq!(parse_host_port("h:0", 4222), Ok(("h".into(), 4222)));
        assert_eq!(parse_host_port("h:-1", 4222), Ok(("h".into(), 4222)));
        assert_eq!(parse_host_port("h:5555", 4222), Ok(("h".into(), 5555)));
        assert_eq!(
            parse_host_port("h:x", 4222),
            Err(r#"strconv.Atoi: parsing "x": invalid syntax"#.into())
        );
        assert_eq!(
            parse_host_port("a:b:c", 4222),
            Err("address a:b:c: too many colons in address".into())
        );
    }

    #[test]
    fn quotes_as_go_percent_q() {
        assert_eq!(quote("foo"), r#""foo""#);
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("a\nb\tc\u{1}"), r#""a\nb\tc\x01""#);
        assert_eq!(quote("é"), "\"é\"");
        assert_eq!(quote("\u{7f}"), r#""\x7f""#);
        assert_eq!(quote("\u{85}"), r#""\u0085""#);
    }
}
