//! nats-server's configuration file format: text in, a tree of positioned values out, with
//! nats-server's results and error texts (its `conf` package in pedantic mode, what
//! `nats-server -t` and the server use), and its digest. Not the meaning of any key: that is
//! the option layer's.
//!
//! What it owns: the scanner (`scanner`: tokens, positions, lexer errors), the parser
//! (`parser`: the tree, variables, includes, bounds), the digest (`digest`), the tree's types
//! (`tree`), and the few pieces of Go's standard library whose behaviour shows in results
//! (`go`). It reads files (the one given and its includes) and the environment, both through
//! [`Sources`] (the process's by default); it writes nothing and keeps no state between calls.
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
//! things like `127.0.0.1:4222` and `1.2.3` are strings. `$NAME` is a key set earlier in an
//! enclosing map (innermost first), else an environment variable parsed as a value; the
//! definition it used is marked [`Item::used_variable`]. `include path` merges a file's keys
//! into the current map; the path is relative to the including file's directory, even when it
//! is absolute (Go's `filepath.Join`). The scanner's module docs list the accidents of
//! nats-server's lexer reproduced here (so `[1, 2]` is not an array of two integers).
//!
//! The reference is the nats-server 2.15.1 binary (`nats-server -t`), checked by hand and by
//! random differential runs; its lexer has one fix the 2.15.0 source lacks (see `scanner`).
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
//!   all and 64 MiB of parsed tree (variable copies included).
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
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::limits;

pub use digest::{digest, encode_json};
pub(crate) use go::path_error_text;
pub use tree::{Item, Map, Position, Value};

/// How a variable is looked up in the environment: the value of `NAME`, if set.
pub type Environment<'environment> = &'environment dyn Fn(&str) -> Option<String>;

/// How a file is read: its bytes, of which more than `cap` make the parse fail (so reading
/// `cap + 1` is enough).
pub type ReadFile<'read> = &'read dyn Fn(&Path, usize) -> Result<Vec<u8>, ReadFailure>;

/// Why a file could not be read, as Go's `os.ReadFile` tells it: which step failed (`"open"` or
/// `"read"`) and the OS error (printed as Go prints errno).
#[derive(Debug)]
pub struct ReadFailure {
    pub operation: &'static str,
    pub error: io::Error,
}

/// What a parse reads besides its text: environment variables and (included) files. The
/// process's are [`Sources::process`]; tests and the fuzz target give fixed ones.
#[derive(Clone, Copy)]
pub struct Sources<'sources> {
    pub environment: Environment<'sources>,
    pub read_file: ReadFile<'sources>,
}

impl Sources<'static> {
    /// The process environment and the file system.
    pub fn process() -> Sources<'static> {
        Sources {
            environment: &process_environment,
            read_file: &read_file_from_disk,
        }
    }
}

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

/// Reads `path` as Go's `os.ReadFile` does, but at most `cap + 1` bytes.
pub fn read_file_from_disk(path: &Path, cap: usize) -> Result<Vec<u8>, ReadFailure> {
    let file = std::fs::File::open(path).map_err(|error| ReadFailure {
        operation: "open",
        error,
    })?;
    let mut text = Vec::new();
    file.take(cap as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|error| ReadFailure {
            operation: "read",
            error,
        })?;
    Ok(text)
}

/// Reads and parses the file at `path`. Errors reading it are Go's (`open /x: no such file or
/// directory`, `read /etc: is a directory`); positions name the file as `path` is written.
pub fn parse_file(path: &Path) -> Result<Map, ConfError> {
    parse_file_with(path, Sources::process())
}

/// [`parse_file`] with `environment` as the environment.
pub fn parse_file_with_env(path: &Path, environment: Environment<'_>) -> Result<Map, ConfError> {
    let sources = Sources {
        environment,
        read_file: &read_file_from_disk,
    };
    parse_file_with(path, sources)
}

/// [`parse_file`] reading through `sources`.
pub fn parse_file_with(path: &Path, sources: Sources<'_>) -> Result<Map, ConfError> {
    let mut session = parser::Session::new(sources);
    session.parse_file(
        path.as_os_str().as_bytes(),
        true,
        limits::CONF_NESTING_DEPTH_MAX,
    )
}

/// Parses `text`, which has no file: includes are relative to the current directory, and
/// `config is invalid` names no file.
pub fn parse_str(text: &str) -> Result<Map, ConfError> {
    parse_bytes_with(text.as_bytes(), None, Sources::process())
}

/// [`parse_str`] with `environment` as the environment (tests use a fixed one).
pub fn parse_str_with_env(text: &str, environment: Environment<'_>) -> Result<Map, ConfError> {
    let sources = Sources {
        environment,
        read_file: &read_file_from_disk,
    };
    parse_bytes_with(text.as_bytes(), None, sources)
}

/// Parses `text` (bytes: nats-server reads files as bytes; what is not UTF-8 becomes U+FFFD)
/// as if read from `file` (`None`: no file), reading through `sources`.
pub fn parse_bytes_with(
    text: &[u8],
    file: Option<&Path>,
    sources: Sources<'_>,
) -> Result<Map, ConfError> {
    let mut session = parser::Session::new(sources);
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
