//! `conf_parse`: the configuration file format (`config::conf`) on arbitrary text.
//!
//! Checked, for every input: no panic, no hang and bounded memory (the parser's own bounds in
//! `limits::CONF_*` do that work); parsing twice gives the same result (digest or error),
//! one tree alive at a time (a tree may take the whole 64 MiB tree budget).
//! For a tree: it nests at most `limits::CONF_NESTING_DEPTH_MAX` deep; every position lies in
//! the text it names (line at most one past the text's newlines, column at most its length);
//! `digest` gives `sha256:` and 64 hex digits, twice the same; `encode_json` (what the digest
//! hashes) is, up to 1 MiB, JSON that `serde_json` reads back as the same tree (keys, strings,
//! booleans and integers exactly; floats within a relative 1e-15, since serde_json's default
//! float parsing may be one unit off in the last place; integral floats come back as integers,
//! as Go writes them without a fraction). For an error: a non-empty message, and a position
//! in its text.
//!
//! Input layout: the bytes, as (lossy) UTF-8 text. The environment and the files the text may
//! include are the fixed fakes below (`environment`, `read_file`), so a run depends on the
//! input only, never on the machine: includes resolve to names like `a.conf` (Go's
//! `filepath.Join(".", name)`), which `read_file` answers from `FILES` or with ENOENT (EISDIR
//! for `dir`, EACCES for `secret.conf`).

use std::io;
use std::path::Path;

use natsring::config::conf::{
    digest, encode_json, parse_bytes_with, ConfError, Item, Map, Position, ReadFailure, Sources,
    Value,
};
use natsring::limits;

/// The largest encoding read back through serde_json (bigger trees are only encoded).
const JSON_READ_BACK_BYTES_MAX: usize = 1024 * 1024;

/// Files an input can include, by the name the parser asks for.
const FILES: &[(&str, &str)] = &[
    ("a.conf", "x = 1\ny = $x\nz = [ 1.5, \"s\", true ]\n"),
    ("self.conf", "include self.conf\n"),
    ("loop.conf", "include 'loop2.conf'\n"),
    ("loop2.conf", "k = 1\ninclude loop.conf\n"),
    ("map.conf", "m { include a.conf, w = [ 1, 2 ] }\n"),
    ("bad.conf", "key\n"),
    ("vars.conf", "N = 42\nS = 'included'\n"),
    ("json.conf", "{ \"port\": 4222, \"list\": [ 1, 2 ] }\n"),
];

/// The fake environment: plain values, a map, a cycle, an error, an include, and a chain long
/// enough to reach the environment depth limit (`C0` -> `C1` -> ...).
fn environment(name: &str) -> Option<String> {
    let value = match name {
        "N" => "4222",
        "S" => "hello",
        "M" => "{ a = 1, b = [ 1, 2 ], c = $N }",
        "A" => "$B",
        "B" => "$A",
        "BAD" => "\"unterminated",
        "INC" => "{ include a.conf }",
        "DEEP" => "[ [ [ [ 1 ] ] ] ]",
        "EMPTY" => "",
        _ => {
            let level: usize = name.strip_prefix('C')?.parse().ok()?;
            return (level < 40).then(|| format!("$C{}", level + 1));
        }
    };
    Some(value.to_string())
}

fn read_file(path: &Path, cap: usize) -> Result<Vec<u8>, ReadFailure> {
    let name = path.to_string_lossy();
    let failure = |operation, errno| ReadFailure {
        operation,
        error: io::Error::from_raw_os_error(errno),
    };
    match name.as_ref() {
        "dir" => return Err(failure("read", libc::EISDIR)),
        "secret.conf" => return Err(failure("open", libc::EACCES)),
        _ => {}
    }
    let (_, text) = FILES
        .iter()
        .find(|(file, _)| *file == name)
        .ok_or_else(|| failure("open", libc::ENOENT))?;
    let bytes = text.as_bytes();
    Ok(bytes[..bytes.len().min(cap.saturating_add(1))].to_vec())
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let sources = Sources {
        environment: &environment,
        read_file: &read_file,
    };
    let texts = Texts::new(&text);
    // One tree at a time: a tree may take the whole tree budget (64 MiB).
    let first = fingerprint(&texts, parse_bytes_with(text.as_bytes(), None, sources));
    let second = fingerprint(&texts, parse_bytes_with(text.as_bytes(), None, sources));
    assert_eq!(first, second, "two parses of {text:?} differ");
}

/// What a parse must give each time: the digest, or the error; checked on the way.
fn fingerprint(texts: &Texts<'_>, outcome: Result<Map, ConfError>) -> Result<String, ConfError> {
    match outcome {
        Ok(map) => {
            check_tree(texts, &map);
            Ok(digest(&map))
        }
        Err(error) => {
            check_error(texts, &error);
            Err(error)
        }
    }
}

/// A text positions may point into, with its line count (counted once: a tree can hold
/// millions of items).
struct Text<'text> {
    text: &'text str,
    lines: usize,
}

impl<'text> Text<'text> {
    fn new(text: &'text str) -> Text<'text> {
        let lines = text.bytes().filter(|&byte| byte == b'\n').count() + 1;
        Text { text, lines }
    }
}

/// The input and the fake files, as positions name them.
struct Texts<'text> {
    input: Text<'text>,
    files: Vec<(&'static str, Text<'static>)>,
}

impl<'text> Texts<'text> {
    fn new(input: &'text str) -> Texts<'text> {
        let files = FILES
            .iter()
            .map(|&(name, text)| (name, Text::new(text)))
            .collect();
        Texts {
            input: Text::new(input),
            files,
        }
    }

    /// The text a position's file holds: the input, or a fake file.
    fn of(&self, position: &Position) -> &Text<'_> {
        match &position.file {
            None => &self.input,
            Some(path) => {
                let name = path.to_string_lossy();
                self.files
                    .iter()
                    .find(|(file, _)| *file == name)
                    .map(|(_, text)| text)
                    .unwrap_or_else(|| panic!("a position in {name}, which was never read"))
            }
        }
    }
}

fn check_position(texts: &Texts<'_>, position: &Position) {
    let Text { text, lines } = texts.of(position);
    assert!(
        (1..=*lines).contains(&position.line),
        "line {} outside 1..={lines} in {text:?}",
        position.line
    );
    assert!(
        position.column <= text.len(),
        "column {} past the {} bytes of {text:?}",
        position.column,
        text.len()
    );
}

fn check_error(texts: &Texts<'_>, error: &ConfError) {
    assert!(!error.message().is_empty());
    if let Some(position) = error.position() {
        check_position(texts, position);
    }
}

/// Containers nested in `value` (itself included); asserts the bound on the way.
fn depth(value: &Value, around: usize) -> usize {
    let inner: Box<dyn Iterator<Item = &Item>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Map(map) => Box::new(map.iter().map(|(_, item)| item)),
        _ => return 0,
    };
    assert!(
        around < limits::CONF_NESTING_DEPTH_MAX,
        "the tree nests deeper than {}",
        limits::CONF_NESTING_DEPTH_MAX
    );
    1 + inner
        .map(|item| depth(&item.value, around + 1))
        .max()
        .unwrap_or(0)
}

fn check_items(texts: &Texts<'_>, map: &Map) {
    for (_, item) in map.iter() {
        check_item(texts, item);
    }
}

fn check_item(texts: &Texts<'_>, item: &Item) {
    check_position(texts, &item.position);
    match &item.value {
        Value::Array(items) => items.iter().for_each(|item| check_item(texts, item)),
        Value::Map(map) => check_items(texts, map),
        _ => {}
    }
}

fn check_tree(texts: &Texts<'_>, map: &Map) {
    let deepest = map
        .iter()
        .map(|(_, item)| depth(&item.value, 0))
        .max()
        .unwrap_or(0);
    check_items(texts, map);

    let hash = digest(map);
    assert_eq!(hash, digest(map));
    let hex = hash.strip_prefix("sha256:").expect("sha256: prefix");
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    );

    let json = encode_json(map);
    assert_eq!(
        json.last(),
        Some(&b'\n'),
        "Go's encoder ends with a newline"
    );
    // serde_json refuses to nest past 128 levels, and the parser allows that many below the
    // top; a tree of megabytes (variable copies) says no more than a small one and takes long.
    if deepest + 1 < 128 && json.len() <= JSON_READ_BACK_BYTES_MAX {
        let decoded: serde_json::Value = serde_json::from_slice(&json)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&json)));
        assert_same_map(map, &decoded);
    }
}

fn assert_same_map(map: &Map, decoded: &serde_json::Value) {
    let object = decoded.as_object().expect("a JSON object");
    assert_eq!(object.len(), map.len(), "keys of {decoded}");
    for (key, item) in map.iter() {
        let decoded_value = object
            .get(key)
            .unwrap_or_else(|| panic!("key {key:?} lost in {decoded}"));
        assert_same_value(&item.value, decoded_value);
    }
}

fn assert_same_value(value: &Value, decoded: &serde_json::Value) {
    match value {
        Value::Integer(number) => assert_eq!(decoded.as_i64(), Some(*number), "{decoded}"),
        Value::Float(number) => {
            let read = decoded.as_f64().expect("a number");
            let tolerance = number.abs() * 1e-15;
            assert!(
                (read - number).abs() <= tolerance,
                "{number} read as {read}"
            );
        }
        Value::Bool(truth) => assert_eq!(decoded.as_bool(), Some(*truth)),
        Value::String(text) | Value::Datetime(text) => {
            assert_eq!(decoded.as_str(), Some(text.as_str()))
        }
        Value::Array(items) => {
            let decoded_items = decoded.as_array().expect("a JSON array");
            assert_eq!(decoded_items.len(), items.len());
            for (item, decoded_item) in items.iter().zip(decoded_items) {
                assert_same_value(&item.value, decoded_item);
            }
        }
        Value::Map(map) => assert_same_map(map, decoded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fakes_are_reachable() {
        check(b"include a.conf\nm { include map.conf }\nv = $M\nw = $DEEP\n");
        check(b"include self.conf");
        check(b"port = $A");
        check(b"port = $C0");
        check(b"include dir\n");
        check(b"include secret.conf\n");
        check(b"x = $INC\n");
    }
}
