//! The configuration digest nats-server prints for `-t` and serves as `/varz`'s
//! `config_digest`: `sha256:<hex>` of the parsed tree as Go's `encoding/json` Encoder writes it.
//!
//! What Go's encoder does, reproduced: map keys sorted by their bytes; no spaces; a newline at
//! the end; integers in decimal; floats as `strconv.FormatFloat(f, 'f', -1, 64)` (the shortest
//! text that reads back exactly), or `'e'` below 1e-6 and from 1e21 on, with a two-digit
//! exponent trimmed to one for `e-07`..`e-09` (`1e-7`, `1e+21`); datetimes as RFC 3339 text
//! (which is how they are written in the file); strings with `"`, `\`, `\b`, `\f`, `\n`, `\r`,
//! `\t` escaped by letter, other control characters, `<`, `>`, `&`, U+2028 and U+2029 as
//! `\u00XX` / `\u20XX` (lower-case hex).
//!
//! Where it differs: nats-server keeps bytes that are not UTF-8 (from the file or a `\xHH`
//! escape) and Go writes each as `\ufffd`; the tree here holds U+FFFD instead (one per bad
//! sequence), written as itself, so such a file's digest differs from nats-server's.

use sha2::{Digest, Sha256};

use super::tree::{Map, Value};

/// `sha256:<64 lower-case hex digits>` of `map` encoded as nats-server's Go encodes it.
pub fn digest(map: &Map) -> String {
    let json = encode_json(map);
    let hash = Sha256::digest(&json);
    let mut text = String::with_capacity("sha256:".len() + 64);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The bytes Go's `json.NewEncoder(w).Encode(map)` writes (with its trailing newline): what
/// [`digest`] hashes.
pub fn encode_json(map: &Map) -> Vec<u8> {
    let mut json = Vec::new();
    encode_map(&mut json, map);
    json.push(b'\n');
    json
}

fn encode_map(json: &mut Vec<u8>, map: &Map) {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|(left, _), (right, _)| left.as_bytes().cmp(right.as_bytes()));
    json.push(b'{');
    for (index, (key, item)) in entries.into_iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        encode_string(json, key);
        json.push(b':');
        encode_value(json, &item.value);
    }
    json.push(b'}');
}

/// Recurses as deep as the tree, which the parser bounds (`limits::CONF_NESTING_DEPTH_MAX`).
fn encode_value(json: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Integer(number) => json.extend_from_slice(number.to_string().as_bytes()),
        Value::Float(number) => json.extend_from_slice(go_float(*number).as_bytes()),
        Value::Bool(truth) => json.extend_from_slice(if *truth { b"true" } else { b"false" }),
        Value::String(text) | Value::Datetime(text) => encode_string(json, text),
        Value::Array(items) => {
            json.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    json.push(b',');
                }
                encode_value(json, &item.value);
            }
            json.push(b']');
        }
        Value::Map(map) => encode_map(json, map),
    }
}

/// Go's `encoding/json` float text (the parser never makes NaN or infinities).
fn go_float(number: f64) -> String {
    let magnitude = number.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        // Rust's shortest round-trip decimal is Go's `'f', -1`.
        return number.to_string();
    }
    // Rust writes `1.5e-7` / `1e21`; Go `1.5e-07` trimmed to `1.5e-7` / `1e+21`.
    let text = format!("{number:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            format!("{mantissa}e+{exponent}")
        }
        _ => text,
    }
}

fn encode_string(json: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    json.push(b'"');
    for character in text.chars() {
        match character {
            '"' => json.extend_from_slice(b"\\\""),
            '\\' => json.extend_from_slice(b"\\\\"),
            '\u{8}' => json.extend_from_slice(b"\\b"),
            '\u{c}' => json.extend_from_slice(b"\\f"),
            '\n' => json.extend_from_slice(b"\\n"),
            '\r' => json.extend_from_slice(b"\\r"),
            '\t' => json.extend_from_slice(b"\\t"),
            '\0'..='\u{1f}' | '<' | '>' | '&' => {
                let byte = character as u8;
                json.extend_from_slice(b"\\u00");
                json.push(HEX[usize::from(byte >> 4)]);
                json.push(HEX[usize::from(byte & 0xf)]);
            }
            '\u{2028}' => json.extend_from_slice(b"\\u2028"),
            '\u{2029}' => json.extend_from_slice(b"\\u2029"),
            _ => {
                let mut buffer = [0u8; 4];
                json.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    json.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_go_writes_them() {
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(-0.0), "-0");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e22), "1.5e+22");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(0.0000001), "1e-7");
        assert_eq!(go_float(1.25e-10), "1.25e-10");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let mut json = Vec::new();
        encode_string(
            &mut json,
            "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}<>&\u{7f}é\u{2028}\u{2029}\u{FFFD}",
        );
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\\u003c\\u003e\\u0026\u{7f}é\\u2028\\u2029\u{FFFD}\""
        );
    }
}
