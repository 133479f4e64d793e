//! The parser: builds the tree from the scanner's tokens, one token at a time, the way
//! nats-server's parser does; resolves `$NAME` variables and `include`s; enforces the bounds.
//!
//! What it owns: what each token does to the tree, variable lookup and the environment
//! re-parse, include files (reading them, their paths, their error texts), and the
//! [`Session`] budgets that one configuration (file, includes, environment values) shares.
//!
//! # nats-server's parser, as reproduced
//!
//! It keeps a stack of open containers (the top-level map first) and, apart from it, a stack
//! of keys waiting for their values. A key token pushes a key; a value token is appended to
//! the open array, or set in the open map under the key it pops, with that key's position. So
//! a value that is dropped (an integer with a unit suffix nats-server does not know, `1kbb`)
//! leaves its key waiting, and the next value set in a map takes it: `m { port = 1kbb }`
//! sets `port` (not `m`) to the map at the top level. The same happens to `a` in `m { a }`.
//!
//! Variables are looked up in the open maps, innermost first (arrays are skipped), among the
//! keys set so far, then in the environment; an environment value is parsed as the file
//! `pk=<value>` (without nats-server's pedantic mode, which only changes how its includes'
//! errors read) and its `pk` is the value. A name being resolved through the environment while
//! it is already being resolved is a cycle. `$2a$...` (bcrypt) is the string itself.
//!
//! Invariants: the value set at container depth `d` (the number of containers around it,
//! the top map not counted) has a tree at most `depth_max - d` deep; every byte read and every
//! item made is charged to the [`Session`] before it exists.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::go;
use super::scanner::{self, Stopped, Token, TokenKind, TokenSink};
use super::tree::{Item, Map, Position, Value};
use super::{ConfError, Sources};
use crate::limits;

/// What one configuration shares across its file, its includes and the environment values it
/// parses: where it reads from, the names being resolved through the environment, and the
/// budgets.
pub struct Session<'sources> {
    sources: Sources<'sources>,
    /// Names being resolved through the environment right now (nats-server's cycle check).
    environment_references: HashSet<String>,
    input_bytes_left: usize,
    tree_bytes_left: usize,
    include_depth: usize,
    environment_depth: usize,
}

impl<'sources> Session<'sources> {
    pub fn new(sources: Sources<'sources>) -> Session<'sources> {
        Session {
            sources,
            environment_references: HashSet::new(),
            input_bytes_left: limits::CONF_INPUT_BYTES_MAX,
            tree_bytes_left: limits::CONF_TREE_BYTES_MAX,
            include_depth: 0,
            environment_depth: 0,
        }
    }

    /// A session with smaller budgets, so tests reach them quickly.
    #[cfg(test)]
    pub fn with_budgets(
        sources: Sources<'sources>,
        input_bytes: usize,
        tree_bytes: usize,
    ) -> Session<'sources> {
        Session {
            input_bytes_left: input_bytes,
            tree_bytes_left: tree_bytes,
            ..Session::new(sources)
        }
    }

    /// Reads and parses the file at `path` (as nats-server names it: the path given, or an
    /// include's joined path). `pedantic` is nats-server's mode; outside it, read errors are
    /// prefixed `error opening config file: `.
    pub fn parse_file(
        &mut self,
        path: &[u8],
        pedantic: bool,
        depth_max: usize,
    ) -> Result<Map, ConfError> {
        let text = self.read_file(path).map_err(|message| {
            let message = if pedantic {
                message
            } else {
                format!("error opening config file: {message}")
            };
            ConfError::new(message, None)
        })?;
        let file: Arc<Path> = Arc::from(Path::new(OsStr::from_bytes(path)));
        self.parse_text(&text, Some(file), pedantic, depth_max)
    }

    /// Parses `text`, which came from `file` (`None`: no file, includes relative to the
    /// current directory). The bytes must have been charged already.
    pub fn parse_text(
        &mut self,
        text: &[u8],
        file: Option<Arc<Path>>,
        pedantic: bool,
        depth_max: usize,
    ) -> Result<Map, ConfError> {
        let file_path = file
            .as_ref()
            .map(|path| path.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        let mut parser = Parser {
            directory: go::directory_of(&file_path),
            file,
            pedantic,
            depth_max,
            frames: vec![Frame::Map(Map::new())],
            waiting_keys: Vec::new(),
            previous: Previous::Nothing,
            failure: None,
            session: self,
        };
        scanner::scan(text, depth_max, &mut parser);
        if let Some(failure) = parser.failure {
            return Err(failure);
        }
        // The top-level map, even when the input ended inside a container (`a = ['`).
        match parser.frames.into_iter().next() {
            Some(Frame::Map(map)) => Ok(map),
            _ => Ok(Map::new()),
        }
    }

    /// Charges `bytes` of input, or says why not.
    pub fn charge_input(&mut self, bytes: usize) -> Result<(), String> {
        match self.input_bytes_left.checked_sub(bytes) {
            Some(left) => {
                self.input_bytes_left = left;
                Ok(())
            }
            None => Err(input_too_large()),
        }
    }

    /// The file's bytes (charged), or nats-server's text for the error.
    fn read_file(&mut self, path: &[u8]) -> Result<Vec<u8>, String> {
        let name = String::from_utf8_lossy(path);
        let os_path = Path::new(OsStr::from_bytes(path));
        let text = (self.sources.read_file)(os_path, self.input_bytes_left)
            .map_err(|failure| go::path_error_text(failure.operation, &name, &failure.error))?;
        self.charge_input(text.len())?;
        Ok(text)
    }

    fn charge_tree(&mut self, bytes: usize) -> Result<(), ConfError> {
        match self.tree_bytes_left.checked_sub(bytes) {
            Some(left) => {
                self.tree_bytes_left = left;
                Ok(())
            }
            None => Err(tree_too_large()),
        }
    }
}

fn tree_too_large() -> ConfError {
    ConfError::new(
        format!(
            "the configuration's values, with the copies variable references make, take more \
             than {} bytes (natsring's limit)",
            limits::CONF_TREE_BYTES_MAX
        ),
        None,
    )
}

fn input_too_large() -> String {
    format!(
        "the configuration, its includes and the environment values it uses are larger than \
         {} bytes (natsring's limit)",
        limits::CONF_INPUT_BYTES_MAX
    )
}

/// Why a variable could not be resolved.
enum LookUpError {
    /// nats-server's "could not be parsed" (a cycle, an environment value's error).
    Unparsable(ConfError),
    /// A natsring limit, reported as is.
    Limit(ConfError),
}

/// Why a value could not be copied.
enum CopyFailure {
    /// It nests deeper than allowed where it goes.
    TooDeep,
    /// The tree budget ran out.
    TooLarge,
}

/// A copy of `value` that may nest `allowance` containers deep (itself included), each item
/// charged to `tree_bytes_left`. Recurses at most `allowance` deep.
fn copy_within(
    value: &Value,
    allowance: usize,
    tree_bytes_left: &mut usize,
) -> Result<Value, CopyFailure> {
    let charge = |tree_bytes_left: &mut usize, key_bytes: usize, value: &Value| {
        let left = tree_bytes_left
            .checked_sub(item_cost(key_bytes, value))
            .ok_or(CopyFailure::TooLarge)?;
        *tree_bytes_left = left;
        Ok(())
    };
    let copy = match value {
        Value::Array(items) => {
            let inner_allowance = allowance.checked_sub(1).ok_or(CopyFailure::TooDeep)?;
            let mut copied = Vec::with_capacity(items.len());
            for item in items {
                charge(tree_bytes_left, 0, &item.value)?;
                let value = copy_within(&item.value, inner_allowance, tree_bytes_left)?;
                copied.push(Item {
                    value,
                    position: item.position.clone(),
                    used_variable: item.used_variable,
                });
            }
            Value::Array(copied)
        }
        Value::Map(map) => {
            let inner_allowance = allowance.checked_sub(1).ok_or(CopyFailure::TooDeep)?;
            let mut copied = Map::new();
            for (key, item) in map.iter() {
                charge(tree_bytes_left, key.len(), &item.value)?;
                let value = copy_within(&item.value, inner_allowance, tree_bytes_left)?;
                copied.insert(
                    key.to_string(),
                    Item {
                        value,
                        position: item.position.clone(),
                        used_variable: item.used_variable,
                    },
                );
            }
            Value::Map(copied)
        }
        scalar => scalar.clone(),
    };
    Ok(copy)
}

/// Gives everything inside `value` the position `position` (values from the environment have
/// no position of their own in nats-server: errors about them point at the reference).
fn relocate(value: &mut Value, position: &Position) {
    let relocate_item = |item: &mut Item| {
        item.position = position.clone();
        item.used_variable = false;
        relocate(&mut item.value, position);
    };
    match value {
        Value::Array(items) => items.iter_mut().for_each(relocate_item),
        Value::Map(map) => map.values_mut().for_each(relocate_item),
        _ => {}
    }
}

/// Go's integer conversion of an integer token: the leading digits and `-` (counted in
/// characters, then cut in bytes, as nats-server does), `strconv.ParseInt`, then the unit
/// suffix. `Ok(None)`: a suffix nats-server does not know (it sets nothing).
fn integer(text: &[u8]) -> Result<Option<i64>, String> {
    let prefix_characters = go::runes(text)
        .take_while(|&character| go::is_digit(character) || character == '-')
        .count();
    let cut = prefix_characters.min(text.len());
    let number = go::parse_int(&text[..cut]).map_err(|error| match error {
        go::ParseIntError::Range => format!("integer '{}' is out of the range", text_of(text)),
        go::ParseIntError::Syntax => format!("expected integer, but got '{}'", text_of(text)),
    })?;
    let suffix = &text[cut..];
    let is = |words: &[&str]| words.iter().any(|word| go::lowercases_to(suffix, word));
    const THOUSAND: i64 = 1000;
    const KIBI: i64 = 1024;
    let multiplier = if suffix.is_empty() {
        1
    } else if is(&["k"]) {
        THOUSAND
    } else if is(&["kb", "ki", "kib"]) {
        KIBI
    } else if is(&["m"]) {
        THOUSAND.pow(2)
    } else if is(&["mb", "mi", "mib"]) {
        KIBI.pow(2)
    } else if is(&["g"]) {
        THOUSAND.pow(3)
    } else if is(&["gb", "gi", "gib"]) {
        KIBI.pow(3)
    } else if is(&["t"]) {
        THOUSAND.pow(4)
    } else if is(&["tb", "ti", "tib"]) {
        KIBI.pow(4)
    } else if is(&["p"]) {
        THOUSAND.pow(5)
    } else if is(&["pb", "pi", "pib"]) {
        KIBI.pow(5)
    } else if is(&["e"]) {
        THOUSAND.pow(6)
    } else if is(&["eb", "ei", "eib"]) {
        KIBI.pow(6)
    } else {
        return Ok(None);
    };
    // Go's int64 multiplication wraps (`10e` is negative), and so does this.
    Ok(Some(number.wrapping_mul(multiplier)))
}

/// Go's `strconv.ParseFloat(text, 64)` of a float token (`-?digits.digits`, where nats-server's
/// digits may be any Unicode decimal digits, which Go refuses).
fn float(text: &[u8]) -> Result<f64, String> {
    let parsed = std::str::from_utf8(text)
        .ok()
        .filter(|text| text.is_ascii())
        .and_then(|text| text.parse::<f64>().ok());
    match parsed {
        Some(number) if number.is_finite() => Ok(number),
        Some(_) => Err(format!("float '{}' is out of the range", text_of(text))),
        None => Err(format!("expected float, but got '{}'", text_of(text))),
    }
}

/// An open container.
enum Frame {
    Map(Map),
    Array(Vec<Item>),
}

/// A key whose value has not come yet.
struct WaitingKey {
    text: String,
    position: Position,
}

/// The token before the current one, as far as the end-of-input check cares.
enum Previous {
    /// No token yet.
    Nothing,
    /// A key; `closing_brace` exactly when its text is `}` (a JSON-like file's last line).
    Key { closing_brace: bool },
    /// Anything else.
    Other,
}

struct Parser<'session, 'sources> {
    session: &'session mut Session<'sources>,
    /// The file being parsed, as nats-server names it (`None` for text without a file).
    file: Option<Arc<Path>>,
    /// Go's `filepath.Dir` of the file's name: where includes are found.
    directory: Vec<u8>,
    pedantic: bool,
    /// Containers that may nest below this parse's top-level map.
    depth_max: usize,
    /// The open containers; the first is the top-level map and is never closed.
    frames: Vec<Frame>,
    waiting_keys: Vec<WaitingKey>,
    previous: Previous,
    failure: Option<ConfError>,
}

impl TokenSink for Parser<'_, '_> {
    fn accept(&mut self, token: Token<'_>) -> Result<(), Stopped> {
        let handled = self.handle(token);
        self.previous = match token.kind {
            TokenKind::Key => Previous::Key {
                closing_brace: token.text == b"}",
            },
            _ => Previous::Other,
        };
        handled.map_err(|failure| {
            self.failure = Some(failure);
            Stopped
        })
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What an item costs the tree budget, roughly its memory: the item, its key (kept twice by a
/// map), its text.
fn item_cost(key_bytes: usize, value: &Value) -> usize {
    let text_bytes = match value {
        Value::String(text) | Value::Datetime(text) => text.len(),
        _ => 0,
    };
    std::mem::size_of::<Item>() + 2 * key_bytes + text_bytes
}

impl Parser<'_, '_> {
    fn position(&self, token: &Token<'_>) -> Position {
        Position {
            file: self.file.clone(),
            line: token.line,
            column: token.column,
        }
    }

    /// Containers open around the next value (the top-level map not counted).
    fn depth(&self) -> usize {
        self.frames.len() - 1
    }

    fn file_name(&self) -> String {
        self.file
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default()
    }

    fn handle(&mut self, token: Token<'_>) -> Result<(), ConfError> {
        let position = self.position(&token);
        match token.kind {
            TokenKind::Error => Err(ConfError::new(
                format!(
                    "Parse error on line {}: '{}'",
                    token.line,
                    text_of(token.text)
                ),
                Some(position),
            )),
            TokenKind::Key => {
                self.waiting_keys.push(WaitingKey {
                    text: text_of(token.text),
                    position,
                });
                Ok(())
            }
            TokenKind::MapStart => {
                self.frames.push(Frame::Map(Map::new()));
                Ok(())
            }
            TokenKind::ArrayStart => {
                self.frames.push(Frame::Array(Vec::new()));
                Ok(())
            }
            TokenKind::MapEnd | TokenKind::ArrayEnd => {
                // The scanner closes only what it opened, and never the top-level map.
                debug_assert!(self.frames.len() > 1, "closing the top-level map");
                if self.frames.len() <= 1 {
                    return Ok(());
                }
                let value = match self.frames.pop() {
                    Some(Frame::Map(map)) => Value::Map(map),
                    Some(Frame::Array(items)) => Value::Array(items),
                    None => return Ok(()),
                };
                self.set(Item::new(value, position))
            }
            TokenKind::String => self.set(Item::new(Value::String(text_of(token.text)), position)),
            TokenKind::Integer => match integer(token.text) {
                Ok(Some(number)) => self.set(Item::new(Value::Integer(number), position)),
                // An unknown unit suffix: nats-server sets nothing (the key stays waiting).
                Ok(None) => Ok(()),
                Err(message) => Err(ConfError::new(message, Some(position))),
            },
            TokenKind::Float => match float(token.text) {
                Ok(number) => self.set(Item::new(Value::Float(number), position)),
                Err(message) => Err(ConfError::new(message, Some(position))),
            },
            TokenKind::Bool => {
                let truth = ["true", "yes", "on"]
                    .iter()
                    .any(|word| go::lowercases_to(token.text, word));
                self.set(Item::new(Value::Bool(truth), position))
            }
            TokenKind::Datetime => {
                if !go::is_zulu_datetime(token.text) {
                    return Err(ConfError::new(
                        format!(
                            "expected Zulu formatted DateTime, but got '{}'",
                            text_of(token.text)
                        ),
                        Some(position),
                    ));
                }
                self.set(Item::new(Value::Datetime(text_of(token.text)), position))
            }
            TokenKind::Variable => self.variable(&token, position),
            TokenKind::Include => self.include(&token, position),
            TokenKind::Comment => Ok(()),
            TokenKind::Eof => match self.previous {
                Previous::Key {
                    closing_brace: false,
                } => Err(ConfError::new(
                    format!(
                        "config is invalid ({}:{}:{})",
                        self.file_name(),
                        token.line,
                        token.column
                    ),
                    Some(position),
                )),
                _ => Ok(()),
            },
        }
    }

    /// Puts `item` in the open container: appended to an array, or set in a map under the
    /// waiting key it takes, with that key's position (nats-server's pedantic mode).
    fn set(&mut self, mut item: Item) -> Result<(), ConfError> {
        let pedantic = self.pedantic;
        match self.frames.last_mut() {
            Some(Frame::Array(items)) => {
                self.session.charge_tree(item_cost(0, &item.value))?;
                items.push(item);
            }
            Some(Frame::Map(map)) => {
                // Every value in a map follows its key, so a key is waiting.
                let Some(key) = self.waiting_keys.pop() else {
                    debug_assert!(false, "a value in a map with no key waiting");
                    return Ok(());
                };
                self.session
                    .charge_tree(item_cost(key.text.len(), &item.value))?;
                if pedantic {
                    item.position = key.position;
                }
                map.insert(key.text, item);
            }
            None => debug_assert!(false, "no open container"),
        }
        Ok(())
    }

    fn variable(&mut self, token: &Token<'_>, position: Position) -> Result<(), ConfError> {
        let name = text_of(token.text);
        let value = match self.look_up(&name, &position) {
            Ok(Some(value)) => value,
            Ok(None) => {
                return Err(ConfError::new(
                    format!(
                        "variable reference for '{name}' on line {} can not be found",
                        token.line
                    ),
                    Some(position),
                ))
            }
            Err(LookUpError::Unparsable(inner)) => {
                return Err(ConfError::new(
                    format!(
                        "variable reference for '{name}' on line {} could not be parsed: {}",
                        token.line,
                        inner.message()
                    ),
                    inner.position().cloned().or(Some(position)),
                ))
            }
            Err(LookUpError::Limit(error)) => return Err(error),
        };
        self.set(Item::new(value, position))
    }

    /// The value of `$name`: bcrypt text, a copy of a key set so far in an open map (marked
    /// used), or an environment variable's value parsed.
    fn look_up(&mut self, name: &str, position: &Position) -> Result<Option<Value>, LookUpError> {
        if name.starts_with("2a$") {
            return Ok(Some(Value::String(format!("${name}"))));
        }
        let allowance = self.depth_max - self.depth();
        let pedantic = self.pedantic;
        for frame in self.frames.iter_mut().rev() {
            let Frame::Map(map) = frame else { continue };
            let Some(item) = map.get_mut(name) else {
                continue;
            };
            if pedantic {
                item.used_variable = true;
            }
            return match copy_within(&item.value, allowance, &mut self.session.tree_bytes_left) {
                Ok(value) => Ok(Some(value)),
                Err(CopyFailure::TooLarge) => Err(LookUpError::Limit(tree_too_large())),
                Err(CopyFailure::TooDeep) => Err(LookUpError::Limit(ConfError::new(
                    format!(
                        "variable reference for '{name}' on line {} nests values deeper than \
                         {} levels (natsring's limit)",
                        position.line,
                        limits::CONF_NESTING_DEPTH_MAX
                    ),
                    Some(position.clone()),
                ))),
            };
        }
        if self.session.environment_references.contains(name) {
            return Err(LookUpError::Unparsable(ConfError::new(
                format!("variable reference cycle for '{name}'"),
                Some(position.clone()),
            )));
        }
        self.session.environment_references.insert(name.to_string());
        let value = self.environment_value(name, allowance, position);
        self.session.environment_references.remove(name);
        value.map_err(LookUpError::Unparsable)
    }

    /// The environment variable `name` parsed as `pk=<value>`, if it is set.
    fn environment_value(
        &mut self,
        name: &str,
        allowance: usize,
        position: &Position,
    ) -> Result<Option<Value>, ConfError> {
        // Names Go's environment cannot hold (and std would refuse).
        if name.is_empty() || name.contains(['=', '\0']) {
            return Ok(None);
        }
        let Some(text) = (self.session.sources.environment)(name) else {
            return Ok(None);
        };
        if self.session.environment_depth >= limits::CONF_ENVIRONMENT_DEPTH_MAX {
            return Err(ConfError::new(
                format!(
                    "environment variables referencing environment variables nest deeper than \
                     {} (natsring's limit)",
                    limits::CONF_ENVIRONMENT_DEPTH_MAX
                ),
                Some(position.clone()),
            ));
        }
        let source = format!("pk={text}");
        self.session
            .charge_input(source.len())
            .map_err(|message| ConfError::new(message, Some(position.clone())))?;
        self.session.environment_depth += 1;
        let parsed = self
            .session
            .parse_text(source.as_bytes(), None, false, allowance);
        self.session.environment_depth -= 1;
        let Some(item) = parsed?.remove("pk") else {
            return Ok(None);
        };
        let mut value = item.value;
        relocate(&mut value, position);
        Ok(Some(value))
    }

    fn include(&mut self, token: &Token<'_>, position: Position) -> Result<(), ConfError> {
        let path = go::join_paths(&self.directory, token.text);
        let included = if self.session.include_depth >= limits::CONF_INCLUDE_DEPTH_MAX {
            Err(ConfError::new(
                format!(
                    "includes nest deeper than {} files (natsring's limit)",
                    limits::CONF_INCLUDE_DEPTH_MAX
                ),
                None,
            ))
        } else {
            let allowance = self.depth_max - self.depth();
            self.session.include_depth += 1;
            let included = self.session.parse_file(&path, self.pedantic, allowance);
            self.session.include_depth -= 1;
            included
        };
        let map = included.map_err(|inner| {
            let inner_position = inner.position().cloned();
            ConfError::new(
                format!(
                    "error parsing include file '{}', {}",
                    text_of(token.text),
                    inner.message()
                ),
                inner_position.or(Some(position)),
            )
        })?;
        // Each entry as if its key had just been read (so it takes the entry's position).
        for (key, item) in map {
            self.waiting_keys.push(WaitingKey {
                text: key,
                position: item.position.clone(),
            });
            self.set(item)?;
        }
        Ok(())
    }
}
