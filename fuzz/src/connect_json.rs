//! `connect_json`: decoding CONNECT options (`proto::json::parse_connect_onto`) against an
//! oracle, and the client-INFO check (`check_client_info`) for panics.
//!
//! The server decodes CONNECT with a hand-written serde visitor that applies Go's
//! `encoding/json` rules as nats-server meets them (`src/proto/json.rs` docs). The oracle
//! below reaches the same answer another way: `serde_json` reads the document into plain
//! `Value`s, keeping the object's entries in document order, duplicates included (a
//! `serde_json::Map` would sort and merge them, and Go applies every entry in order), and
//! then the rules are applied to those values one by one (values of unknown keys are only
//! syntax-checked, as Go does, since `Value` refuses numbers like `1e999`):
//! - invalid UTF-8 is replaced first (Go's decoder does the same inside strings), and so is a
//!   `\u` escape of half a UTF-16 surrogate pair without its other half (Go: U+FFFD);
//! - the document is `null` (nothing changes) or an object; anything else fails;
//! - keys match the known fields case-insensitively, as Go folds case ([`go_fold`]); unknown
//!   keys are ignored, whatever their value;
//! - a value `null` leaves the field as it was; otherwise it must have the field's type (bool;
//!   a JSON integer that fits `i64` for `protocol`; string; for `import`/`export` an object
//!   whose `allow`/`deny` are arrays of strings), or the whole decode fails;
//! - `user`, `pass`, `auth_token`, `nkey`, `sig`, `jwt`, `account`: `""` means not given.
//!
//! Checked: no panic on any input; `Ok`/`Err` and every field agree with the oracle; for a
//! decoded options, `check()` gives the error nats-server gives, in its order (protocol,
//! then account, then no_responders without headers).
//!
//! Input layout: byte 0, bit 0: decode onto a previous CONNECT's options (not the defaults),
//! as a second CONNECT does; the rest is the JSON.

use std::fmt;

use natsring::proto::json::{check_client_info, parse_connect_onto, ConnectOptions};
use natsring::proto::ServerError;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::Cursor;

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let settings = cursor.byte();
    let json = cursor.rest();
    let previous = if settings & 1 != 0 {
        previous_connect()
    } else {
        ConnectOptions::default()
    };

    let _ = check_client_info(json);

    let real = parse_connect_onto(json, &previous);
    let expected = oracle(json, &previous).map_err(|()| ServerError::ParseError);
    assert_eq!(
        real,
        expected,
        "CONNECT {:?} onto {previous:?}",
        String::from_utf8_lossy(json)
    );
    if let Ok(options) = real {
        assert_eq!(
            options.check(),
            expected_check(&options),
            "check() of {options:?}"
        );
    }
}

/// Options a first CONNECT could have left: every field away from its default.
fn previous_connect() -> ConnectOptions {
    ConnectOptions {
        verbose: false,
        pedantic: false,
        echo: false,
        headers: true,
        no_responders: true,
        protocol: 1,
        tls_required: true,
        name: "first".into(),
        lang: "go".into(),
        version: "1.0.0".into(),
        user: Some("user".into()),
        pass: Some("pass".into()),
        auth_token: Some("token".into()),
        nkey: Some("UNKEY".into()),
        sig: Some("sig".into()),
        jwt: Some("jwt".into()),
        account: None,
        new_account: Some(false),
    }
}

/// nats-server's checks after decoding, in its order.
fn expected_check(options: &ConnectOptions) -> Result<(), ServerError> {
    if options.protocol != 0 && options.protocol != 1 {
        Err(ServerError::InvalidClientProtocol)
    } else if options.account.is_some() || options.new_account == Some(true) {
        Err(ServerError::AuthorizationViolation)
    } else if options.no_responders && !options.headers {
        Err(ServerError::NoRespondersRequiresHeaders)
    } else {
        Ok(())
    }
}

/// The CONNECT keys the decoder reads (after [`go_fold`]); `import` and `export` are read as
/// objects with [`PERMISSION_KEYS`].
const CONNECT_KEYS: [&str; 20] = [
    "verbose",
    "pedantic",
    "echo",
    "headers",
    "no_responders",
    "protocol",
    "tls_required",
    "name",
    "lang",
    "version",
    "user",
    "pass",
    "auth_token",
    "nkey",
    "sig",
    "jwt",
    "account",
    "new_account",
    "remote_account",
    "proxy_sig",
];
const NESTED_KEYS: [&str; 2] = ["import", "export"];
const PERMISSION_KEYS: [&str; 2] = ["allow", "deny"];

/// A JSON document as the oracle keeps it: an object's entries in document order, duplicates
/// included (a `serde_json::Map` would sort and merge them, and Go applies every entry in
/// order).
enum Document {
    Null,
    Object(Vec<(String, Entry)>),
    /// Any other JSON value.
    Other,
}

/// One object entry's value.
enum Entry {
    /// The value of a key nobody reads, skipped unread: Go checks only its syntax, so
    /// `1e999` there is fine, where `serde_json::Value` would refuse it.
    Ignored,
    Value(Value),
    /// `import`/`export`, read one level down the same way.
    Nested(Document),
}

/// Reads a [`Document`] whose objects have the known keys `keys` and `nested`.
#[derive(Clone, Copy)]
struct DocumentSeed {
    keys: &'static [&'static str],
    nested: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for DocumentSeed {
    type Value = Document;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed {
    type Value = Document;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Document, E> {
        Ok(Document::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Document, E> {
        Ok(Document::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Document, E> {
        Ok(Document::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Document, E> {
        Ok(Document::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Document, E> {
        Ok(Document::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Document, E> {
        Ok(Document::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Document, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Document::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let folded = go_fold(&key);
            let entry = if self.nested.contains(&folded.as_str()) {
                let seed = DocumentSeed {
                    keys: &PERMISSION_KEYS,
                    nested: &[],
                };
                Entry::Nested(map.next_value_seed(seed)?)
            } else if self.keys.contains(&folded.as_str()) {
                Entry::Value(map.next_value()?)
            } else {
                map.next_value::<IgnoredAny>()?;
                Entry::Ignored
            };
            entries.push((folded, entry));
        }
        Ok(Document::Object(entries))
    }
}

/// The options nats-server would hold after this CONNECT, or `Err` where it closes.
fn oracle(json: &[u8], previous: &ConnectOptions) -> Result<ConnectOptions, ()> {
    let text = go_surrogates(&String::from_utf8_lossy(json));
    let seed = DocumentSeed {
        keys: &CONNECT_KEYS,
        nested: &NESTED_KEYS,
    };
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    let document = seed.deserialize(&mut deserializer).map_err(|_| ())?;
    deserializer.end().map_err(|_| ())?;
    let entries = match document {
        Document::Null => return Ok(previous.clone()),
        Document::Object(entries) => entries,
        Document::Other => return Err(()),
    };
    let mut options = previous.clone();
    for (key, entry) in entries {
        match entry {
            Entry::Ignored => {}
            Entry::Value(value) => apply(&mut options, &key, value)?,
            Entry::Nested(permission) => subject_permission(permission)?,
        }
    }
    Ok(options)
}

/// `text` with each `\uXXXX` escape of a UTF-16 surrogate that does not pair with the escape
/// right after it replaced by `\ufffd`, which is how Go decodes it (serde_json refuses it).
/// Walks the text as JSON does: escapes exist only between unescaped quotes.
fn go_surrogates(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    // The code unit of a `\uXXXX` escape at `index`.
    let unit_at = |index: usize| -> Option<u32> {
        let escape = chars.get(index..index + 6)?;
        let hex: String = escape[2..].iter().collect();
        let is_escape = escape[0] == '\\' && escape[1] == 'u';
        let is_hex = hex.chars().all(|digit| digit.is_ascii_hexdigit());
        (is_escape && is_hex).then(|| u32::from_str_radix(&hex, 16).expect("hex"))
    };
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut index = 0;
    while index < chars.len() {
        let character = chars[index];
        let taken = if !in_string || character != '\\' {
            if character == '"' {
                in_string = !in_string;
            }
            1
        } else {
            match unit_at(index) {
                Some(0xD800..=0xDBFF) if matches!(unit_at(index + 6), Some(0xDC00..=0xDFFF)) => 12,
                Some(0xD800..=0xDFFF) => {
                    out.push_str("\\ufffd");
                    index += 6;
                    continue;
                }
                Some(_) => 6,
                None => 2,
            }
        };
        let end = (index + taken).min(chars.len());
        out.extend(&chars[index..end]);
        index = end;
    }
    out
}

/// A key as Go's `encoding/json` compares it with a field name (Unicode simple case folding,
/// here to lower case): ASCII letters, and the two non-ASCII letters whose fold set holds an
/// ASCII one, U+017F (long s) and U+212A (Kelvin sign). Checked against nats-server 2.15.1:
/// `{"verbo\u{17f}e":false}` turns verbose off.
fn go_fold(key: &str) -> String {
    key.chars()
        .map(|character| match character {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// nats-server's `SubjectPermission` (`import`/`export`): `null`, or an object whose `allow`
/// and `deny` (case-folded) are `null` or arrays of strings (or `null`s); other keys ignored.
fn subject_permission(permission: Document) -> Result<(), ()> {
    let entries = match permission {
        Document::Null => return Ok(()),
        Document::Object(entries) => entries,
        Document::Other => return Err(()),
    };
    for (_, entry) in entries {
        let fits = match entry {
            Entry::Ignored | Entry::Value(Value::Null) => true,
            Entry::Value(Value::Array(items)) => {
                items.iter().all(|item| item.is_string() || item.is_null())
            }
            Entry::Value(_) | Entry::Nested(_) => false,
        };
        if !fits {
            return Err(());
        }
    }
    Ok(())
}

/// Applies one entry; `Err` on a value of the wrong type.
fn apply(options: &mut ConnectOptions, key: &str, value: Value) -> Result<(), ()> {
    if value.is_null() {
        return Ok(());
    }
    let flag = |value: &Value| value.as_bool().ok_or(());
    let text = |value: Value| match value {
        Value::String(text) => Ok(text),
        _ => Err(()),
    };
    let optional_text = |value: Value| text(value).map(|text| Some(text).filter(|t| !t.is_empty()));
    match key {
        "verbose" => options.verbose = flag(&value)?,
        "pedantic" => options.pedantic = flag(&value)?,
        "echo" => options.echo = flag(&value)?,
        "headers" => options.headers = flag(&value)?,
        "no_responders" => options.no_responders = flag(&value)?,
        "tls_required" => options.tls_required = flag(&value)?,
        "new_account" => options.new_account = Some(flag(&value)?),
        // An integer: `1.0` and `1e0` are floats to Go's decoder and fail for an int field.
        "protocol" => match &value {
            Value::Number(number) if number.is_i64() || number.is_u64() => {
                options.protocol = number.as_i64().ok_or(())?;
            }
            _ => return Err(()),
        },
        "name" => options.name = text(value)?,
        "lang" => options.lang = text(value)?,
        "version" => options.version = text(value)?,
        "user" => options.user = optional_text(value)?,
        "pass" => options.pass = optional_text(value)?,
        "auth_token" => options.auth_token = optional_text(value)?,
        "nkey" => options.nkey = optional_text(value)?,
        "sig" => options.sig = optional_text(value)?,
        "jwt" => options.jwt = optional_text(value)?,
        "account" => options.account = optional_text(value)?,
        "remote_account" | "proxy_sig" => {
            text(value)?;
        }
        _ => {}
    }
    Ok(())
}
