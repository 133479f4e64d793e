//! The scanner: turns the bytes of one file (or one environment value) into tokens, handed one
//! at a time to a [`TokenSink`] (the parser), which can stop it, as nats-server's lexer feeds
//! its parser item by item. The first error or the end of input is the last token.
//!
//! What it owns: which characters make which token, where a token starts and ends, the texts
//! of nats-server's lexer errors, and the line and column of every token.
//!
//! # How nats-server lexes, and therefore how this does
//!
//! The reference is nats-server 2.15.1 as released: its `conf/lex.go` is the 2.15.0 source
//! plus nats-server commit cdf3fcf4c (a unit suffix followed by anything but the end of the
//! value makes the token a string: `1k5`, `5e7bcd`), which the binary was checked to have.
//!
//! The grammar is written as one function per context (the top level, a top-level `{ }` block,
//! a key, a value, an array, a map, a string, a number, an include), each a loop over
//! characters. Those functions make exactly the decisions nats-server's lexer makes, including
//! its accidents, because real files depend on them and nats-server's errors quote them:
//! - an unquoted value that starts with a digit but is not a number becomes a string that
//!   takes the character that made it one, so `[1, 2]` is the integer 1 and the string `2]`
//!   (and the array is not closed), while `[1, 2 ]` is two integers;
//! - an unquoted string ends at a blank, a newline, `;`, `,`, `]`, `}` or a `'` (taken), but
//!   not at `#`, `{`, `=` or `:`; `true`, `no`, `off`, ... are booleans and `$name` a variable
//!   only when the whole unquoted string is that;
//! - `key` alone then the end of input, `key = "` then the end of input, and a NUL byte in
//!   some places end the input (Go's lexer uses rune 0 for "end");
//! - a lone `/` is a separator after a value in a map or array, a blank after a top-level
//!   value, a key's first character dropped at a map's key position, and an error elsewhere;
//! - a block string `(` runs to a `)` alone on its line; at the very end of the input the `)`
//!   and the newline before it stay in the string.
//!
//! # Positions
//!
//! nats-server's column is the token's end offset, minus the offset of the newline last read
//! when the previous token ended or was skipped (0 on line 1), minus the byte length of the
//! token's decoded text: so it is 0-based on line 1 and 1-based after, counts bytes, and an
//! escape shifts it right by the bytes the escape saved. The line is the line the token ends
//! on. The scanner keeps the same four numbers nats-server keeps (offset, line, offset of the
//! last newline read, and that offset when the current token began) and moves them at the same
//! steps, so both agree on every token; a look at the next character counts as reading it.
//!
//! Invariants: the sink sees tokens in input order; the last token is [`TokenKind::Eof`] or
//! [`TokenKind::Error`], unless the sink stopped the scan; nesting of maps, arrays and
//! top-level blocks never exceeds the depth given to [`scan`] (an error token otherwise), which
//! bounds the recursion.

use super::go;

/// Rune 0: what nats-server's lexer reads at the end of the input, and also a NUL byte.
const END: char = '\0';

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Key,
    String,
    Bool,
    Integer,
    Float,
    Datetime,
    ArrayStart,
    ArrayEnd,
    MapStart,
    MapEnd,
    /// `$name`; the text is the name, without the `$`.
    Variable,
    /// `include x`; the text is the path as written.
    Include,
    /// `# ...` or `// ...`; the text is what follows the marker.
    Comment,
    Eof,
    /// The text is nats-server's message; the column is where the scanner stopped.
    Error,
}

/// One token: its kind, its decoded text (bytes: `\xHH` escapes and the input itself may hold
/// invalid UTF-8) and where nats-server says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'text> {
    pub kind: TokenKind,
    pub text: &'text [u8],
    pub line: usize,
    pub column: usize,
}

/// Scanning stopped: the sink refused a token, or the last token was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// What scanning produces, one token at a time.
pub trait TokenSink {
    /// Takes the next token; `Err(Stopped)` ends the scan (no further token is produced).
    fn accept(&mut self, token: Token<'_>) -> Result<(), Stopped>;
}

type Step = Result<(), Stopped>;

/// Scans `input` to its end, first error, or until `sink` stops it. Maps, arrays and
/// top-level blocks may nest `nesting_depth_max` deep; deeper is an error token.
pub fn scan(input: &[u8], nesting_depth_max: usize, sink: &mut dyn TokenSink) {
    let mut scanner = Scanner {
        input,
        offset: 0,
        last_width: 0,
        line: 1,
        newline_offset: 0,
        token_newline_offset: 0,
        token_start: 0,
        decoded: Vec::new(),
        has_escapes: false,
        nesting_depth: 0,
        nesting_depth_max,
        sink,
    };
    // Every path ends with an Eof or Error token, or the sink's refusal.
    let _ = scanner.top_level();
}

/// How a top-level block continues after a value or an inner block.
enum BlockFlow {
    /// More keys in this block.
    More,
    /// This block's `}` was read.
    Closed,
}

/// What an unquoted key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFound {
    Key,
    /// The `include` keyword; the include's value follows.
    Include,
}

/// What a map's key position held.
enum MapKeyFound {
    Key,
    Include,
    /// The map's `}`.
    End,
}

struct Scanner<'input, 'sink> {
    input: &'input [u8],
    /// Offset of the next byte to read.
    offset: usize,
    /// Width of the last character read (0 after reading the end), for `back`.
    last_width: usize,
    /// 1 + newlines before `offset`.
    line: usize,
    /// Offset of the newline read last (0 before any).
    newline_offset: usize,
    /// `newline_offset` as it was when the current token began (at the last skip or emit).
    token_newline_offset: usize,
    /// Offset where the current token's raw text begins.
    token_start: usize,
    /// Decoded text of escapes and the raw runs between them, when the token has escapes.
    decoded: Vec<u8>,
    /// The current token had an escape (its text is `decoded` + the raw rest).
    has_escapes: bool,
    nesting_depth: usize,
    nesting_depth_max: usize,
    sink: &'sink mut dyn TokenSink,
}

fn is_newline(character: char) -> bool {
    character == '\n' || character == '\r'
}

/// Space or tab: what separates things on one line.
fn is_blank(character: char) -> bool {
    character == ' ' || character == '\t'
}

fn is_key_separator(character: char) -> bool {
    character == '=' || character == ':'
}

/// The first letter of a unit suffix (`k`, `mb`, `GiB`, ...).
fn is_unit_letter(character: char) -> bool {
    matches!(
        character,
        'k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T' | 'p' | 'P' | 'e' | 'E'
    )
}

/// Where an unquoted integer ends (note: not at `]`).
fn ends_number(character: char) -> bool {
    is_newline(character) || matches!(character, END | '}' | ';' | ',') || is_blank(character)
}

/// A character as nats-server quotes it in an error: a newline as `\n`, anything else as is.
fn quoted(character: char) -> String {
    if character == '\n' {
        "\\n".to_string()
    } else {
        character.to_string()
    }
}

impl Scanner<'_, '_> {
    // ---- The cursor: reading, stepping back, skipping and emitting. ----

    /// Reads the next character; [`END`] (width 0) at the end of the input.
    fn next(&mut self) -> char {
        let Some(rest) = self
            .input
            .get(self.offset..)
            .filter(|rest| !rest.is_empty())
        else {
            self.last_width = 0;
            return END;
        };
        if rest[0] == b'\n' {
            self.line += 1;
            self.newline_offset = self.offset;
        }
        let (character, width) = go::decode_rune(rest);
        self.last_width = width;
        self.offset += width;
        character
    }

    /// Steps back over the last character read (by its width, even when called twice).
    fn back(&mut self) {
        self.offset -= self.last_width;
        if self.input.get(self.offset) == Some(&b'\n') {
            self.line -= 1;
        }
    }

    /// The next character, not consumed (but a newline counts as read for positions).
    fn peek(&mut self) -> char {
        let character = self.next();
        self.back();
        character
    }

    /// Drops what was read since the current token began: the next token starts here.
    fn skip(&mut self) {
        self.token_start = self.offset;
        self.token_newline_offset = self.newline_offset;
    }

    /// Keeps the raw text read so far of a token with escapes, up to `trailing` bytes before
    /// the cursor (the escape's backslash).
    fn keep_raw_run(&mut self, trailing: usize) {
        let end = self.offset - trailing;
        self.decoded
            .extend_from_slice(&self.input[self.token_start..end]);
        self.has_escapes = true;
        self.token_start = self.offset;
    }

    /// Appends an escape's decoded bytes to the current token.
    fn keep_decoded(&mut self, bytes: &[u8]) {
        self.decoded.extend_from_slice(bytes);
        self.has_escapes = true;
        self.token_start = self.offset;
    }

    /// Sends the text from the token's start to the cursor (after any decoded escapes) as a
    /// token of `kind`, and starts the next token here.
    fn emit(&mut self, kind: TokenKind) -> Step {
        let raw = &self.input[self.token_start..self.offset];
        let text: &[u8] = if self.has_escapes {
            self.decoded.extend_from_slice(raw);
            &self.decoded
        } else {
            raw
        };
        let column = self
            .offset
            .saturating_sub(self.token_newline_offset)
            .saturating_sub(text.len());
        let token = Token {
            kind,
            text,
            line: self.line,
            column,
        };
        let accepted = self.sink.accept(token);
        self.decoded.clear();
        self.has_escapes = false;
        self.token_start = self.offset;
        self.token_newline_offset = self.newline_offset;
        accepted
    }

    /// Sends an error token with nats-server's `message`; the scan ends.
    fn error(&mut self, message: &str) -> Stopped {
        let token = Token {
            kind: TokenKind::Error,
            text: message.as_bytes(),
            line: self.line,
            column: self.offset.saturating_sub(self.newline_offset),
        };
        let _ = self.sink.accept(token);
        Stopped
    }

    /// The end of the input (or a NUL) where nats-server takes it calmly: the end of the
    /// scan, unless something was read since the current token began (a stray `/`, a NUL, an
    /// unterminated string's text), which is an error.
    fn end_of_input(&mut self) -> Step {
        if self.offset > self.token_start {
            return Err(self.error("Unexpected EOF."));
        }
        let _ = self.emit(TokenKind::Eof);
        Err(Stopped)
    }

    /// One more level of maps, arrays or blocks, or an error past the limit.
    fn enter_nesting(&mut self) -> Step {
        if self.nesting_depth >= self.nesting_depth_max {
            // The allowance of an included file is what its include site left of the limit.
            let message = format!(
                "Maps, arrays and blocks nested deeper than {} levels (natsring's limit).",
                crate::limits::CONF_NESTING_DEPTH_MAX
            );
            return Err(self.error(&message));
        }
        self.nesting_depth += 1;
        Ok(())
    }

    fn leave_nesting(&mut self) {
        debug_assert!(self.nesting_depth > 0, "left a nesting level never entered");
        self.nesting_depth -= 1;
    }

    /// A comment whose `#` or `//` was just read: its text, to the end of the line.
    fn comment(&mut self) -> Step {
        self.skip();
        loop {
            let character = self.peek();
            if is_newline(character) || character == END {
                return self.emit(TokenKind::Comment);
            }
            self.next();
        }
    }

    /// After a `/` was read: a comment if another `/` follows (returns true), else steps back
    /// over the character after the `/` (returns false; the `/` stays read).
    fn slash_comment(&mut self) -> Result<bool, Stopped> {
        if self.next() == '/' {
            self.comment()?;
            return Ok(true);
        }
        self.back();
        Ok(false)
    }

    // ---- The top level and top-level blocks. ----

    fn top_level(&mut self) -> Step {
        loop {
            let character = self.next();
            if go::is_space(character) {
                self.skip();
                continue;
            }
            match character {
                '{' => {
                    self.skip();
                    self.block()?;
                }
                '#' => self.comment()?,
                '/' => {
                    if !self.slash_comment()? {
                        return self.end_of_input();
                    }
                }
                END => return self.end_of_input(),
                _ => {
                    self.back();
                    self.key_and_value()?;
                    self.after_top_level_value()?;
                }
            }
        }
    }

    /// What may follow a top-level value: blanks, a comment, then a newline, `;`, `,`, `}`
    /// or the end.
    fn after_top_level_value(&mut self) -> Step {
        loop {
            let character = self.next();
            match character {
                '#' => return self.comment(),
                '/' => {
                    if self.slash_comment()? {
                        return Ok(());
                    }
                }
                ' ' | '\t' => {}
                '\n' | '\r' | END | ';' | ',' | '}' => {
                    self.skip();
                    return Ok(());
                }
                _ => {
                    return Err(self.error(&format!(
                        "Expected a top-level value to end with a new line, comment or EOF, \
                         but got '{}' instead.",
                        quoted(character)
                    )))
                }
            }
        }
    }

    /// A top-level `{ ... }` (its `{` read): keys of the top-level map, and inner blocks.
    /// Returns after its `}`; the end of the input before it ends the scan without error.
    fn block(&mut self) -> Step {
        self.enter_nesting()?;
        loop {
            let character = self.next();
            if go::is_space(character) {
                self.skip();
                continue;
            }
            let flow = match character {
                '{' => {
                    self.skip();
                    self.block()?;
                    self.after_inner_block()?
                }
                '}' => {
                    self.skip();
                    BlockFlow::Closed
                }
                '#' => {
                    self.comment()?;
                    BlockFlow::More
                }
                '/' => {
                    if !self.slash_comment()? {
                        return self.end_of_input();
                    }
                    BlockFlow::More
                }
                END => return self.end_of_input(),
                _ => {
                    self.back();
                    self.key_and_value()?;
                    self.after_block_value()?
                }
            };
            if let BlockFlow::Closed = flow {
                self.leave_nesting();
                return Ok(());
            }
        }
    }

    /// What may follow a value in a top-level block: like the top level's, and `}`.
    fn after_block_value(&mut self) -> Result<BlockFlow, Stopped> {
        loop {
            let character = self.next();
            match character {
                '#' => self.comment()?,
                '/' => {
                    self.slash_comment()?;
                }
                ' ' | '\t' => {}
                '\n' | '\r' | ';' | ',' => {
                    self.skip();
                    return Ok(BlockFlow::More);
                }
                '}' => {
                    self.skip();
                    return Ok(BlockFlow::Closed);
                }
                _ => {
                    return Err(self.error(&format!(
                        "Expected a block-level value to end with a new line, comment or EOF, \
                         but got '{}' instead.",
                        quoted(character)
                    )));
                }
            }
        }
    }

    /// What may follow an inner block: blank lines, then `}`, `;`, `,` or a comment.
    fn after_inner_block(&mut self) -> Result<BlockFlow, Stopped> {
        loop {
            let character = self.next();
            match character {
                '#' => {
                    self.comment()?;
                    return Ok(BlockFlow::More);
                }
                '/' => {
                    if self.slash_comment()? {
                        return Ok(BlockFlow::More);
                    }
                }
                '\n' | '\r' | ' ' | '\t' => {}
                ';' | ',' => {
                    self.skip();
                    return Ok(BlockFlow::More);
                }
                '}' => {
                    self.skip();
                    return Ok(BlockFlow::Closed);
                }
                _ => {
                    return Err(self.error(&format!(
                        "Expected a block-level to end with a '}}', but got '{}' instead.",
                        quoted(character)
                    )));
                }
            }
        }
    }

    // ---- Keys. ----

    /// A key of the top-level map (at the top level or in a block), then its value or the
    /// include it names.
    fn key_and_value(&mut self) -> Step {
        let first = loop {
            let character = self.peek();
            if is_key_separator(character) {
                let message = format!("Unexpected key separator '{}'", quoted(character));
                return Err(self.error(&message));
            }
            if !go::is_space(character) {
                break character;
            }
            self.next();
            self.skip();
        };
        if first == '"' || first == '\'' {
            self.next();
            self.skip();
            self.quoted_top_level_key(first)?;
        } else {
            self.skip();
            self.next();
            if self.unquoted_key(false)? == KeyFound::Include {
                return self.include();
            }
        }
        // After the key: blanks and newlines, at most one separator.
        loop {
            let character = self.next();
            if go::is_space(character) {
                self.skip();
                continue;
            }
            if is_key_separator(character) {
                self.skip();
                break;
            }
            if character == END {
                let _ = self.emit(TokenKind::Eof);
                return Err(Stopped);
            }
            self.back();
            break;
        }
        self.value()
    }

    /// A quoted key of the top-level map (its quote read); the end of the input inside it is
    /// an error, unless the key is still empty (then the scan just ends).
    fn quoted_top_level_key(&mut self, quote: char) -> Step {
        loop {
            let character = self.peek();
            if character == quote {
                self.emit(TokenKind::Key)?;
                self.next();
                self.skip();
                return Ok(());
            }
            if character == END {
                return self.end_of_input();
            }
            self.next();
        }
    }

    /// An unquoted key (its first character read): to a blank or newline, a separator, or
    /// (at the top level only) the end. Followed by a blank, a key spelled `include` (any
    /// case) is the include keyword instead.
    fn unquoted_key(&mut self, in_map: bool) -> Result<KeyFound, Stopped> {
        loop {
            let character = self.peek();
            if in_map && character == END {
                return Err(self.error("Unexpected EOF processing map key."));
            }
            if go::is_space(character) {
                let text = &self.input[self.token_start..self.offset];
                if go::lowercases_to(text, "include") {
                    self.skip();
                    return Ok(KeyFound::Include);
                }
                self.emit(TokenKind::Key)?;
                return Ok(KeyFound::Key);
            }
            if is_key_separator(character) || character == END {
                self.emit(TokenKind::Key)?;
                return Ok(KeyFound::Key);
            }
            self.next();
        }
    }

    // ---- Includes. ----

    /// The value of an `include` (the keyword read): a quoted or unquoted path.
    fn include(&mut self) -> Step {
        loop {
            let character = self.next();
            if is_blank(character) {
                self.skip();
                continue;
            }
            self.back();
            break;
        }
        let character = self.next();
        let refusal = match character {
            '\'' | '"' => {
                self.skip();
                return self.quoted_include(character);
            }
            '[' => "Expected include value but found start of an array",
            '{' => "Expected include value but found start of a map",
            '(' => "Expected include value but found start of a block",
            '\\' => "Expected include value but found escape sequence",
            '-' => "Expected include value but found start of a number",
            _ if go::is_digit(character) => "Expected include value but found start of a number",
            _ if is_newline(character) => "Expected include value but found new line",
            _ => {
                self.back();
                return self.unquoted_include();
            }
        };
        Err(self.error(refusal))
    }

    fn quoted_include(&mut self, quote: char) -> Step {
        loop {
            let character = self.next();
            if character == quote {
                self.back();
                self.emit(TokenKind::Include)?;
                self.next();
                self.skip();
                return Ok(());
            }
            if character == END {
                return Err(self.error(if quote == '"' {
                    "Unexpected EOF in double quoted include"
                } else {
                    "Unexpected EOF in quoted include"
                }));
            }
        }
    }

    /// An unquoted include path: to a blank, newline, `;`, `}`, the end, or a `'` (taken).
    fn unquoted_include(&mut self) -> Step {
        loop {
            let character = self.next();
            if is_newline(character) || is_blank(character) || matches!(character, END | ';' | '}')
            {
                self.back();
                return self.emit(TokenKind::Include);
            }
            if character == '\'' {
                self.back();
                self.emit(TokenKind::Include)?;
                self.next();
                self.skip();
                return Ok(());
            }
        }
    }

    // ---- Values. ----

    /// A value, after blanks (a newline before it is an error).
    fn value(&mut self) -> Step {
        loop {
            let character = self.next();
            if is_blank(character) {
                self.skip();
                continue;
            }
            return match character {
                '[' => {
                    self.skip();
                    self.emit(TokenKind::ArrayStart)?;
                    self.array()
                }
                '{' => {
                    self.skip();
                    self.emit(TokenKind::MapStart)?;
                    self.map()
                }
                '\'' => {
                    self.skip();
                    self.single_quoted_string()
                }
                '"' => {
                    self.skip();
                    self.double_quoted_string()
                }
                '-' => self.negative_number(),
                '(' => {
                    self.skip();
                    self.block_string()
                }
                '.' => Err(self.error("Floats must start with a digit")),
                _ if go::is_digit(character) => self.number(),
                _ if is_newline(character) => Err(self.error("Expected value but found new line")),
                _ => {
                    self.back();
                    self.unquoted_string()
                }
            };
        }
    }

    /// An unquoted string from the token's start (also the rest of a would-be number).
    fn unquoted_string(&mut self) -> Step {
        loop {
            let character = self.next();
            match character {
                '\\' => {
                    self.keep_raw_run(1);
                    self.escape()?;
                }
                '\'' => {
                    self.back();
                    self.emit(TokenKind::String)?;
                    self.next();
                    self.skip();
                    return Ok(());
                }
                _ if is_newline(character)
                    || is_blank(character)
                    || matches!(character, END | ';' | ',' | ']' | '}') =>
                {
                    self.back();
                    let text = &self.input[self.token_start..self.offset];
                    let kind = if self.has_escapes {
                        TokenKind::String
                    } else if ["true", "false", "yes", "no", "on", "off"]
                        .iter()
                        .any(|word| go::lowercases_to(text, word))
                    {
                        TokenKind::Bool
                    } else if text.first() == Some(&b'$') {
                        self.token_start += 1;
                        TokenKind::Variable
                    } else {
                        TokenKind::String
                    };
                    return self.emit(kind);
                }
                _ => {}
            }
        }
    }

    fn single_quoted_string(&mut self) -> Step {
        loop {
            let character = self.next();
            if character == '\'' {
                self.back();
                self.emit(TokenKind::String)?;
                self.next();
                self.skip();
                return Ok(());
            }
            if character == END {
                return self.end_of_input();
            }
        }
    }

    fn double_quoted_string(&mut self) -> Step {
        loop {
            let character = self.next();
            match character {
                '\\' => {
                    self.keep_raw_run(1);
                    self.escape()?;
                }
                '"' => {
                    self.back();
                    self.emit(TokenKind::String)?;
                    self.next();
                    self.skip();
                    return Ok(());
                }
                // The end of the input right after an escape ends the scan with no error.
                END => return self.end_of_input(),
                _ => {}
            }
        }
    }

    /// An escape in a string (its `\` read).
    fn escape(&mut self) -> Step {
        let character = self.next();
        let decoded: &[u8] = match character {
            'x' => return self.hex_escape(),
            't' => b"\t",
            'n' => b"\n",
            'r' => b"\r",
            '"' => b"\"",
            '\\' => b"\\",
            _ => {
                return Err(self.error(&format!(
                    "Invalid escape character '{}'. Only the following escape characters are \
                     allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                    quoted(character)
                )))
            }
        };
        self.keep_decoded(decoded);
        Ok(())
    }

    /// `\xHH` (the `\x` read): one byte, from the two bytes before the cursor once two
    /// characters are read.
    fn hex_escape(&mut self) -> Step {
        const END_OF_LINE: &str =
            "Expected two hexadecimal digits after '\\x', but hit end of line";
        if is_newline(self.next()) || is_newline(self.next()) {
            return Err(self.error(END_OF_LINE));
        }
        let digits = &self.input[self.offset - 2..self.offset];
        let value = |digit: u8| char::from(digit).to_digit(16);
        match (value(digits[0]), value(digits[1])) {
            (Some(high), Some(low)) => {
                let byte = (high * 16 + low) as u8;
                self.keep_decoded(&[byte]);
                Ok(())
            }
            _ => {
                let message = format!(
                    "Expected two hexadecimal digits after '\\x', but got '{}'",
                    String::from_utf8_lossy(digits)
                );
                Err(self.error(&message))
            }
        }
    }

    /// `( ... )` (the `(` read): everything up to a `)` that is alone at the start of a line
    /// and followed by a newline or the end.
    fn block_string(&mut self) -> Step {
        loop {
            let character = self.next();
            if character == END {
                return Err(self.error("Unexpected EOF processing block."));
            }
            if character != ')' {
                continue;
            }
            // Look at the byte before the `)`; both steps back are one byte (the `)`'s width).
            self.back();
            self.back();
            if self.next() != '\n' {
                self.next();
                continue;
            }
            self.next();
            let after = self.next();
            if after == '\n' || after == END {
                // Steps back by the width of `after`: to the `)`, or nowhere at the very end
                // (so the `)` and the newline before it stay in the string).
                self.back();
                self.back();
                self.emit(TokenKind::String)?;
                self.next();
                self.skip();
                return Ok(());
            }
            self.back();
        }
    }

    // ---- Numbers, datetimes and addresses. ----

    /// Something that starts with a digit (one read): an integer, a float, a datetime, an
    /// IP address, or a string.
    fn number(&mut self) -> Step {
        loop {
            let character = self.next();
            match character {
                '-' => {
                    if self.offset - self.token_start != 5 {
                        return Err(self.error("All ISO8601 dates must be in full Zulu form."));
                    }
                    return self.datetime_after_year();
                }
                '.' => return self.fraction(),
                _ if go::is_digit(character) => {}
                _ if is_unit_letter(character) => return self.unit_suffix(),
                _ if ends_number(character) => {
                    self.back();
                    return self.emit(TokenKind::Integer);
                }
                // Not a number: a string, which keeps the character just read.
                _ => return self.unquoted_string(),
            }
        }
    }

    /// After `-`: digits, then an integer or a float.
    fn negative_number(&mut self) -> Step {
        let character = self.next();
        if !go::is_digit(character) {
            if character == '.' {
                return Err(self.error("Floats must start with a digit, not '.'."));
            }
            return Err(self.error(&format!(
                "Expected a digit but got '{}'.",
                quoted(character)
            )));
        }
        loop {
            let character = self.next();
            match character {
                '.' => return self.fraction(),
                _ if go::is_digit(character) => {}
                _ if is_unit_letter(character) => return self.unit_suffix(),
                _ => {
                    self.back();
                    return self.emit(TokenKind::Integer);
                }
            }
        }
    }

    /// After a unit's first letter: any of `bBiI`, then an integer if what follows ends it,
    /// else (even a digit: `1k5`, `5e7bcd`) a string. The 2.15.0 source ended the integer at a
    /// digit; nats-server 2.15.1 has the later fix (nats-server commit cdf3fcf4c).
    fn unit_suffix(&mut self) -> Step {
        loop {
            let character = self.next();
            if matches!(character, 'b' | 'B' | 'i' | 'I') {
                continue;
            }
            self.back();
            if ends_number(character) {
                return self.emit(TokenKind::Integer);
            }
            return self.unquoted_string();
        }
    }

    /// After the `.` of a number: digits make a float; a second `.` makes an address.
    fn fraction(&mut self) -> Step {
        let character = self.next();
        if !go::is_digit(character) {
            return Err(self.error(&format!(
                "Floats must have a digit after the '.', but got '{}' instead.",
                quoted(character)
            )));
        }
        loop {
            let character = self.next();
            if go::is_digit(character) {
                continue;
            }
            if character == '.' {
                return self.address();
            }
            self.back();
            return self.emit(TokenKind::Float);
        }
    }

    /// The rest of something like `127.0.0.1:4222` (digits, `.`, `:`, `-`): a string.
    fn address(&mut self) -> Step {
        loop {
            let character = self.next();
            if go::is_digit(character) || matches!(character, '.' | ':' | '-') {
                continue;
            }
            self.back();
            return self.emit(TokenKind::String);
        }
    }

    /// The rest of `YYYY-MM-DDTHH:MM:SSZ` after `YYYY-`.
    fn datetime_after_year(&mut self) -> Step {
        for expected in "00-00T00:00:00Z".chars() {
            let character = self.next();
            if expected == '0' {
                if !go::is_digit(character) {
                    return Err(self.error(&format!(
                        "Expected digit in ISO8601 datetime, but found '{}' instead.",
                        quoted(character)
                    )));
                }
            } else if character != expected {
                return Err(self.error(&format!(
                    "Expected '{}' in ISO8601 datetime, but found '{}' instead.",
                    quoted(expected),
                    quoted(character)
                )));
            }
        }
        self.emit(TokenKind::Datetime)
    }

    // ---- Arrays and maps. ----

    /// An array's values (its `[` read and sent), separated by `,` or newlines, to its `]`.
    fn array(&mut self) -> Step {
        self.enter_nesting()?;
        'value: loop {
            let character = self.next();
            if go::is_space(character) {
                self.skip();
                continue;
            }
            match character {
                '#' => {
                    self.comment()?;
                    continue;
                }
                '/' | ',' => {
                    if character == '/' && self.slash_comment()? {
                        continue;
                    }
                    return Err(self.error("Unexpected array value terminator ','."));
                }
                ']' => return self.array_end(),
                _ => {
                    self.back();
                    self.value()?;
                }
            }
            loop {
                let character = self.next();
                match character {
                    ' ' | '\t' => self.skip(),
                    '#' => self.comment()?,
                    '/' => {
                        if !self.slash_comment()? {
                            self.skip();
                            continue 'value;
                        }
                    }
                    ',' | '\n' | '\r' => {
                        self.skip();
                        continue 'value;
                    }
                    ']' => return self.array_end(),
                    _ => {
                        return Err(self.error(&format!(
                            "Expected an array value terminator \",\" or an array terminator \
                             \"]\", but got '{}' instead.",
                            quoted(character)
                        )))
                    }
                }
            }
        }
    }

    fn array_end(&mut self) -> Step {
        self.skip();
        self.emit(TokenKind::ArrayEnd)?;
        self.leave_nesting();
        Ok(())
    }

    fn map_end(&mut self) -> Step {
        self.skip();
        self.emit(TokenKind::MapEnd)?;
        self.leave_nesting();
        Ok(())
    }

    /// A map's entries (its `{` read and sent) to its `}`.
    fn map(&mut self) -> Step {
        self.enter_nesting()?;
        loop {
            match self.map_key()? {
                MapKeyFound::End => return self.map_end(),
                MapKeyFound::Include => self.include()?,
                MapKeyFound::Key => {
                    // After the key: spaces, at most one separator, spaces; `}` closes the map
                    // (the key gets no value).
                    loop {
                        let character = self.next();
                        if go::is_space(character) {
                            self.skip();
                            continue;
                        }
                        if is_key_separator(character) {
                            self.skip();
                            break;
                        }
                        self.back();
                        break;
                    }
                    loop {
                        let character = self.next();
                        if go::is_space(character) {
                            self.skip();
                            continue;
                        }
                        if character == ',' {
                            return Err(self.error("Unexpected map value terminator \",\"."));
                        }
                        if character == '}' {
                            return self.map_end();
                        }
                        self.back();
                        self.value()?;
                        break;
                    }
                }
            }
            // After the value: blanks, a comment, then `,`, `;`, a newline (or a lone `/`),
            // or `}`.
            loop {
                let character = self.next();
                match character {
                    ' ' | '\t' => self.skip(),
                    '#' => self.comment()?,
                    '/' => {
                        if !self.slash_comment()? {
                            self.skip();
                            break;
                        }
                    }
                    ';' | ',' | '\n' | '\r' => {
                        self.skip();
                        break;
                    }
                    '}' => return self.map_end(),
                    _ => {
                        return Err(self.error(&format!(
                            "Expected a map value terminator \",\" or a map terminator \"}}\", \
                             but got '{}' instead.",
                            quoted(character)
                        )))
                    }
                }
            }
        }
    }

    /// A map's key position: spaces and comments, then a key, an include, or the `}`.
    fn map_key(&mut self) -> Result<MapKeyFound, Stopped> {
        loop {
            let character = self.peek();
            if is_key_separator(character) {
                return Err(self.error(&format!(
                    "Unexpected key separator '{}'.",
                    quoted(character)
                )));
            }
            if go::is_space(character) {
                self.next();
                self.skip();
                continue;
            }
            match character {
                ']' => return Err(self.error("Unexpected array end ']' processing map.")),
                '}' => {
                    self.next();
                    self.skip();
                    return Ok(MapKeyFound::End);
                }
                '#' => {
                    self.next();
                    self.comment()?;
                    continue;
                }
                '"' | '\'' => {
                    self.next();
                    self.skip();
                    self.quoted_map_key(character)?;
                    return Ok(MapKeyFound::Key);
                }
                END => return Err(self.error("Unexpected EOF processing map.")),
                _ => {
                    if character == '/' {
                        self.next();
                        if self.slash_comment()? {
                            continue;
                        }
                        // A lone `/` is dropped: the key starts after it.
                    }
                    self.skip();
                    self.next();
                }
            }
            return Ok(match self.unquoted_key(true)? {
                KeyFound::Key => MapKeyFound::Key,
                KeyFound::Include => MapKeyFound::Include,
            });
        }
    }

    fn quoted_map_key(&mut self, quote: char) -> Step {
        loop {
            let character = self.peek();
            if character == END {
                return Err(self.error(if quote == '"' {
                    "Unexpected EOF processing double quoted map key."
                } else {
                    "Unexpected EOF processing quoted map key."
                }));
            }
            if character == quote {
                self.emit(TokenKind::Key)?;
                self.next();
                self.skip();
                return Ok(());
            }
            self.next();
        }
    }
}

#[cfg(test)]
mod tests;
