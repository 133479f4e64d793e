//! nats-server's configuration file format: text in, a tree of positioned values out, with
//! nats-server's results and error texts (its `conf` package in pedantic mode, what
//! `nats-server -t` and the server use), and its digest. Not the meaning of any key: that is
//! the option layer's.
//!
//! What it owns: the scanner ([`scanner`]: tokens, positions, lexer errors), the parser
//! ([`parser`]: the tree, variables, includes, bounds), the digest ([`digest`]), and the few
//! pieces of Go's standard library whose behaviour shows in results ([`go`]). It reads files
//! (the one given and its includes) and, through an injectable lookup, the environment; it
//! writes nothing and keeps no state between calls.
//!
//! # The format
//!
//! `key = value`, `key: value` or `key value`, ended by a newline, `;` or `,`; comments `#` and
//! `//`; maps `{ }` (`key { }` needs no separator), arrays `[ ]` (comma or newline separated,
//! mixed, nested); a whole file may sit in `{ }` (JSON-like); keys may be quoted. Values:
//! unquoted strings, `'single'` (raw), `"double"` (escapes `\t \n \r \" \\ \xHH`; nothing
//! else, not even `\u`), block strings `(` to a `)` alone on a line; booleans `true false yes
//! no on off` in any case; integers with an optional unit suffix, `k m g t p e` (×1000^n) or
//! `kb ki kib mb ...` (×1024^n), in any case; floats `1.5`; datetimes `2006-01-02T15:04:05Z`;
//! things like `127.0.0.1:4222` and `1.2.3` are strings; `$NAME` variables; `include path`.
//! The scanner's module docs list the accidents of nats-server's lexer reproduced here (so
//! `[1, 2]` is not an array of two integers).
//!
//! # Positions
//!
//! [`Position::column`] is nats-server's: the byte offset from the newline that ends the
//! previous line (so 1-based), or from the start of the file on line 1 (so 0-based), of the
//! token's end minus its decoded length (an escape shifts it). A map entry has its key's
//! position; an array element its own.
//!
//! # Deliberate differences from nats-server
//!
//! - Bounds (`limits::CONF_*`), each with an error naming natsring's limit: includes nest at
//!   most 64 deep (nats-server overflows its stack on a file including itself), maps, arrays
//!   and blocks 128, environment values referencing environment values 16; 32 MiB of input in
//!   all and 256 MiB of parsed tree (variable copies included).
//! - Bytes that are not UTF-8 become U+FFFD in keys and strings (nats-server keeps the bytes):
//!   such a file's digest differs.
//! - [`Map`] keeps file order (nats-server's Go map has none); a repeated key keeps its first
//!   place and takes the later value, which is nats-server's result.
//! - Values from an environment variable, and what is inside them, have the position of the
//!   `$NAME` (nats-server has no position for them and falls back to the enclosing one).

mod digest;
mod go;
mod parser;
mod scanner;
mod tree;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::limits;

pub use digest::digest;
pub use parser::Environment;
pub use tree::{Item, Map, Position, Value};

/// A configuration format error. `Display` is nats-server's text (without the leading
/// `nats-server: `), e.g. `Parse error on line 3: 'Unexpected EOF processing map.'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    message: String,
    position: Option<Position>,
}

impl ConfError {
    pub(crate) fn new(message: String, position: Option<Position>) -> ConfError {
        ConfError { message, position }
    }

    /// nats-server's text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the error is, when known (nats-server's text may not say it).
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }
}

impl std::fmt::Display for ConfError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for ConfError {}

/// The process environment, as nats-server reads it (`os.LookupEnv`); values that are not
/// UTF-8 are taken lossily.
pub fn process_environment(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// Reads and parses the file at `path`. Errors reading it are Go's (`open /x: no such file or
/// directory`, `read /etc: is a directory`); positions name the file as `path` is written.
pub fn parse_file(path: &Path) -> Result<Map, ConfError> {
    parse_file_with_env(path, &process_environment)
}

/// [`parse_file`] with `environment` as the environment.
pub fn parse_file_with_env(path: &Path, environment: Environment<'_>) -> Result<Map, ConfError> {
    let mut session = parser::Session::new(environment);
    session.parse_file(
        path.as_os_str().as_bytes(),
        true,
        limits::CONF_NESTING_DEPTH_MAX,
    )
}

/// Parses `text`, which has no file: includes are relative to the current directory, and
/// `config is invalid` names no file.
pub fn parse_str(text: &str) -> Result<Map, ConfError> {
    parse_str_with_env(text, &process_environment)
}

/// [`parse_str`] with `environment` as the environment (tests and the fuzz target use a fixed
/// one).
pub fn parse_str_with_env(text: &str, environment: Environment<'_>) -> Result<Map, ConfError> {
    parse_bytes(text.as_bytes(), None, environment)
}

/// Parses `text` read from `file` (named as nats-server should name it; `None`: no file).
pub fn parse_bytes(
    text: &[u8],
    file: Option<&Path>,
    environment: Environment<'_>,
) -> Result<Map, ConfError> {
    let mut session = parser::Session::new(environment);
    session
        .charge_input(text.len())
        .map_err(|message| ConfError::new(message, None))?;
    let file: Option<Arc<Path>> = file.map(Arc::from);
    session.parse_text(text, file, true, limits::CONF_NESTING_DEPTH_MAX)
}

/// The path of a [`Position`]'s file as nats-server prints it.
pub fn file_name(position: &Position) -> String {
    position
        .file
        .as_ref()
        .map(|path| String::from_utf8_lossy(OsStr::as_bytes(path.as_os_str())).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
