//! The client protocol parser: one call, one operation.
//!
//! [`Parser::parse`] looks at the start of its input (always an operation boundary) and
//! returns one [`Step`]: a whole operation and the bytes it took, "pending" (the caller keeps
//! the bytes and calls again with more), or an error. Operations borrow from the input; the
//! parser keeps no state between calls, so the caller owns the carry buffer.
//!
//! How it reads an operation:
//! 1. The op name is matched byte by byte, case-insensitively, so a wrong byte is an error
//!    as soon as it arrives (`XYZ` with no `\n` yet already gets `Unknown Protocol
//!    Operation`), as nats-server's byte-at-a-time state machine does.
//! 2. Blanks (space, tab) after the name are skipped; the argument starts at the first other
//!    byte, whatever it is. `memchr` then finds the `\n` that ends the line, searching from
//!    the byte *after* that first argument byte (nats-server consumes it in its `*_SPC`
//!    state, so `SUB \nfoo 1\r\n` is one line whose argument is `\nfoo 1`).
//! 3. If any `\r` was seen in the argument (after its first byte), the last byte before `\n`
//!    is dropped: normally that `\r` itself; with a bare `\n` and a `\r` earlier in the line,
//!    whatever byte is last (nats-server's `drop` flag does exactly this).
//! 4. Argument bytes (after the name and blanks, without the dropped byte) longer than
//!    `max_control_line` are `-ERR 'maximum control line exceeded'`, checked on complete lines
//!    and on incomplete ones (the bytes seen so far), before the arguments are looked at.
//!    Verified against nats-server 2.15.1 with `max_control_line: 64`: 64 argument bytes pass,
//!    65 fail, complete or not; the op name, the blanks after it and a trailing `\r` do not
//!    count.
//! 5. PUB/HPUB arguments split on runs of blanks; SUB/UNSUB on runs of blanks, `\r` and `\n`
//!    (nats-server's `splitArg`). Sizes are 1 to 9 decimal digits, nothing else (`parseSize`:
//!    a tenth digit is an error, so nothing can overflow). The payload length is checked
//!    against `max_payload` as soon as the line is parsed, then the payload is skipped by
//!    length and must be followed by exactly `\r\n`; a wrong byte there is an error as soon
//!    as it arrives.
//!
//! The receive loop first tries [`Parser::parse_pub`], the form every client sends (`PUB`,
//! arguments separated by blanks, `\r\n` right after the last one, a whole payload): one pass
//! over the line finds the tokens and its end. Anything else gets `None` and goes to `parse`,
//! which gives the same answer for every input `parse_pub` takes.
//!
//! Where this differs from nats-server, on purpose:
//! - nats-server keeps nothing for the bytes it skips (blanks after an op name, junk after
//!   `PING`/`PONG`/`+OK`), so it accepts any number of them. This parser must carry them, so
//!   an *incomplete* line in those states longer than `max_control_line` is
//!   `maximum control line exceeded`. Complete lines are treated exactly as nats-server does.
//! - `HMSG` from a client: nats-server (single read) skips the line and then requires `\r\n`,
//!   publishing an empty message to an empty subject (`+OK` in verbose mode). That is what
//!   this parser returns. When the read ends right after the line, nats-server instead fails
//!   with `Unknown Protocol Operation`; a stateless parser cannot see read boundaries.

use memchr::memchr;

use super::error::ServerError;
use super::message::Message;

/// Longest size argument nats-server accepts (`parseSize`: 9 digits, "999M").
const SIZE_DIGITS_MAX: usize = 9;
/// The bytes after a payload.
pub(super) const PAYLOAD_TRAILER_BYTES: usize = 2;

/// Parser settings of one connection. Copy it, change it (e.g. `headers` after CONNECT).
#[derive(Debug, Clone)]
pub struct Parser {
    /// PUB/HPUB total size above this -> `Step::Error(ServerError::MaxPayload)`.
    pub max_payload: u32,
    /// Longest control line arguments, in bytes (default 4096). See the module docs.
    pub max_control_line: u32,
    /// False until CONNECT negotiates `headers: true`; HPUB while false closes the
    /// connection without `-ERR`, as nats-server does.
    pub headers: bool,
}

/// One client operation, borrowing from the parser's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `CONNECT <json>`: the JSON is not parsed here (see `json::parse_connect`).
    Connect {
        json: &'a [u8],
    },
    /// `PUB` (`headers` None) or `HPUB` (`headers` Some: the first `#hdr` bytes of the body,
    /// `payload` the rest).
    Pub(Message<'a>),
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    /// `max` is `None` when absent *or not a valid size*: nats-server treats an unparsable
    /// max (and 0) as "unsubscribe now" rather than as an error.
    Unsub {
        sid: &'a [u8],
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// `+OK` from a client: ignored by nats-server. (A `-ERR` from a client is no op:
    /// nats-server closes the connection, "Parse Error", so `parse` returns
    /// `Step::Error(ServerError::ClientError)`.)
    Ok,
    /// `INFO` from a client whose JSON decodes as nats-server's `Info`: ignored. Bad JSON is
    /// `Step::Error(ServerError::ParseError)`, as nats-server closes on it.
    Info,
}

/// What one call to [`Parser::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// One whole operation, and how many bytes of the input it took (control line, payload
    /// and trailer).
    Op(Op<'a>, usize),
    /// The input holds only the start of an operation. `needed` is the total length of that
    /// whole operation once it is known (control line complete, payload length announced),
    /// else None. The caller copies the remaining input into its carry buffer and calls
    /// again with more bytes.
    Pending { needed: Option<usize> },
    /// Bad input. The caller sends `error.wire()` if any and closes if `error.closes()`.
    Error(ServerError),
}

/// Why a scan stopped before it had a whole operation.
pub(super) enum Stop {
    /// More bytes are needed; the total length of the operation if known.
    Pending(Option<usize>),
    Bad(ServerError),
}

pub(super) type Scan<T> = Result<T, Stop>;

impl Parser {
    pub fn new(max_payload: u32, max_control_line: u32) -> Parser {
        Parser {
            max_payload,
            max_control_line,
            headers: false,
        }
    }

    /// The common case on its own: a whole, valid `PUB` at the start of `input` as
    /// (message, bytes used). None for anything else, which [`Parser::parse`]
    /// then handles in full (it gives the same answer for every input this accepts).
    /// Returning the three slices directly, instead of a `Step`, lets them stay in registers
    /// when this is inlined into the receive loop: building and reading back the `Step` cost a
    /// stalled load per message.
    #[inline(always)]
    pub fn parse_pub<'a>(&self, input: &'a [u8]) -> Option<(Message<'a>, usize)> {
        let head = input.get(..4)?;
        if head[0] | 0x20 != b'p' || head[1] | 0x20 != b'u' || head[2] | 0x20 != b'b' {
            return None;
        }
        if !is_blank(head[3]) {
            return None;
        }
        // One pass over the argument: tokens separated by runs of blanks, ended by `\r\n`
        // right after the last one. Anything else (a bare `\n`, blanks before the line end,
        // a line not yet complete, too many tokens) is left to `parse`.
        let mut index = 4;
        while index < input.len() && is_blank(input[index]) {
            index += 1;
        }
        let arg_start = index;
        let mut tokens = [(0, 0); 3];
        let mut count = 0;
        loop {
            let start = index;
            while index < input.len() && is_arg_text(input[index]) {
                index += 1;
            }
            if index == start || count == tokens.len() {
                return None;
            }
            tokens[count] = (start, index);
            count += 1;
            match ARG_BYTE_CLASS[usize::from(*input.get(index)?)] {
                ARG_CR => break,
                ARG_BLANK => {}
                _ => return None,
            }
            while index < input.len() && is_blank(input[index]) {
                index += 1;
            }
        }
        if *input.get(index + 1)? != b'\n' || index - arg_start > self.max_control_line as usize {
            return None;
        }
        let (subject, reply, (size_start, size_end)) = match count {
            2 => (tokens[0], None, tokens[1]),
            3 => (tokens[0], Some(tokens[1]), tokens[2]),
            _ => return None,
        };
        let size = parse_size(&input[size_start..size_end])?;
        if size as u64 > u64::from(self.max_payload) {
            return None;
        }
        let body_start = index + 2;
        let end = body_start + size;
        if input.get(end..end + PAYLOAD_TRAILER_BYTES)? != b"\r\n" {
            return None;
        }
        let message = Message {
            subject: &input[subject.0..subject.1],
            reply: reply.map(|(start, end)| &input[start..end]),
            headers: None,
            payload: &input[body_start..end],
        };
        Some((message, end + PAYLOAD_TRAILER_BYTES))
    }

    /// Parses the first operation in `input` (which starts at an op boundary).
    /// Empty input -> `Pending { needed: None }`.
    #[inline(always)]
    pub fn parse<'a>(&self, input: &'a [u8]) -> Step<'a> {
        match self.scan(input) {
            Ok((op, consumed)) => {
                debug_assert!(
                    consumed > 0 && consumed <= input.len(),
                    "consumed in bounds"
                );
                Step::Op(op, consumed)
            }
            Err(Stop::Pending(needed)) => {
                debug_assert!(
                    needed.is_none_or(|n| n > input.len()),
                    "pending means short"
                );
                Step::Pending { needed }
            }
            Err(Stop::Bad(error)) => Step::Error(error),
        }
    }

    #[inline(always)]
    fn scan<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let Some(&first) = input.first() else {
            return Err(Stop::Pending(None));
        };
        match first.to_ascii_lowercase() {
            b'p' => match byte_lower(input, 1)? {
                b'u' => self.scan_pub(input),
                b'i' => self.scan_bare(input, b"ng", Op::Ping),
                b'o' => self.scan_bare(input, b"ng", Op::Pong),
                _ => Err(Stop::Bad(ServerError::UnknownOp)),
            },
            b'h' => match byte_lower(input, 1)? {
                b'p' => self.scan_hpub(input),
                b'm' => self.scan_hmsg(input),
                _ => Err(Stop::Bad(ServerError::UnknownOp)),
            },
            b's' => self.scan_sub(input),
            b'u' => self.scan_unsub(input),
            b'c' => self.scan_connect(input),
            b'i' => self.scan_info(input),
            b'+' => {
                let end_of_name = expect_name(input, 1, b"ok")?;
                Ok((Op::Ok, self.skip_line(input, end_of_name)?))
            }
            b'-' => self.scan_client_err(input),
            // Includes MSG, RS+, LS+, A+...: route/leaf-only ops are parse errors on a client.
            _ => Err(Stop::Bad(ServerError::UnknownOp)),
        }
    }

    /// PUB <subject> [reply] <#bytes>\r\n<payload>\r\n
    #[inline(always)]
    fn scan_pub<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"b")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        let (arg, body_start) = self.control_line(input, arg_start)?;
        let mut tokens: [&[u8]; 3] = [&[]; 3];
        let (subject, reply, size) = match split_blanks(arg, &mut tokens) {
            Some(2) => (tokens[0], None, tokens[1]),
            Some(3) => (tokens[0], Some(tokens[1]), tokens[2]),
            _ => return Err(Stop::Bad(ServerError::ParseError)),
        };
        let size = parse_size(size).ok_or(Stop::Bad(ServerError::ParseError))?;
        self.check_payload_size(size)?;
        let (payload, consumed) = body(input, body_start, size)?;
        Ok((
            Op::Pub(Message {
                headers: None,
                subject,
                reply,
                payload,
            }),
            consumed,
        ))
    }

    /// HPUB <subject> [reply] <#hdr bytes> <#total bytes>\r\n<headers><payload>\r\n
    fn scan_hpub<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"ub")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        let (arg, body_start) = self.control_line(input, arg_start)?;
        if !self.headers {
            return Err(Stop::Bad(ServerError::ParseError));
        }
        let mut tokens: [&[u8]; 4] = [&[]; 4];
        let (subject, reply, headers_size, total_size) = match split_blanks(arg, &mut tokens) {
            Some(3) => (tokens[0], None, tokens[1], tokens[2]),
            Some(4) => (tokens[0], Some(tokens[1]), tokens[2], tokens[3]),
            _ => return Err(Stop::Bad(ServerError::ParseError)),
        };
        let headers_size = parse_size(headers_size).ok_or(Stop::Bad(ServerError::ParseError))?;
        let total_size = parse_size(total_size).ok_or(Stop::Bad(ServerError::ParseError))?;
        if headers_size > total_size {
            return Err(Stop::Bad(ServerError::ParseError));
        }
        self.check_payload_size(total_size)?;
        let (body, consumed) = body(input, body_start, total_size)?;
        let (headers, payload) = body.split_at(headers_size);
        Ok((
            Op::Pub(Message {
                subject,
                reply,
                headers: Some(headers),
                payload,
            }),
            consumed,
        ))
    }

    /// `HMSG <anything>\r\n` then `\r\n`: what nats-server does with it on a client
    /// connection (see the module docs).
    fn scan_hmsg<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"sg")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        let (_, body_start) = self.control_line(input, arg_start)?;
        let (payload, consumed) = body(input, body_start, 0)?;
        let op = Op::Pub(Message {
            headers: None,
            subject: b"",
            reply: None,
            payload,
        });
        Ok((op, consumed))
    }

    /// SUB <subject> [queue] <sid>\r\n
    fn scan_sub<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 1, b"ub")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        let (arg, consumed) = self.control_line(input, arg_start)?;
        let mut tokens: [&[u8]; 3] = [&[]; 3];
        let op = match split_blanks_and_newlines(arg, &mut tokens) {
            Some(2) => Op::Sub {
                subject: tokens[0],
                queue: None,
                sid: tokens[1],
            },
            Some(3) => Op::Sub {
                subject: tokens[0],
                queue: Some(tokens[1]),
                sid: tokens[2],
            },
            _ => return Err(Stop::Bad(ServerError::ParseError)),
        };
        Ok((op, consumed))
    }

    /// UNSUB <sid> [max_msgs]\r\n
    fn scan_unsub<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 1, b"nsub")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        let (arg, consumed) = self.control_line(input, arg_start)?;
        let mut tokens: [&[u8]; 2] = [&[]; 2];
        let op = match split_blanks_and_newlines(arg, &mut tokens) {
            Some(1) => Op::Unsub {
                sid: tokens[0],
                max: None,
            },
            Some(2) => Op::Unsub {
                sid: tokens[0],
                max: parse_size(tokens[1]).map(|max| max as u64),
            },
            _ => return Err(Stop::Bad(ServerError::ParseError)),
        };
        Ok((op, consumed))
    }

    /// CONNECT <json>\r\n; no blank is needed after the name (`CONNECT{}` is accepted).
    fn scan_connect<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 1, b"onnect")?;
        let arg_start = self.arg_start(input, end_of_name, false)?;
        let (json, consumed) = self.control_line(input, arg_start)?;
        Ok((Op::Connect { json }, consumed))
    }

    /// INFO <json>\r\n from a client: decoded and dropped, as nats-server does.
    fn scan_info<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 1, b"nfo")?;
        let arg_start = self.arg_start(input, end_of_name, false)?;
        let (json, consumed) = self.control_line(input, arg_start)?;
        super::json::check_client_info(json).map_err(Stop::Bad)?;
        Ok((Op::Info, consumed))
    }

    /// -ERR <text>\r\n from a client: nats-server closes without a reply.
    fn scan_client_err<'a>(&self, input: &'a [u8]) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 1, b"err")?;
        let arg_start = self.arg_start(input, end_of_name, true)?;
        self.control_line(input, arg_start)?;
        Err(Stop::Bad(ServerError::ClientError))
    }

    /// PING / PONG: the name, then anything up to `\n`.
    fn scan_bare<'a>(&self, input: &'a [u8], rest: &[u8], op: Op<'a>) -> Scan<(Op<'a>, usize)> {
        let end_of_name = expect_name(input, 2, rest)?;
        Ok((op, self.skip_line(input, end_of_name)?))
    }

    fn check_payload_size(&self, size: usize) -> Scan<()> {
        if size as u64 > u64::from(self.max_payload) {
            return Err(Stop::Bad(ServerError::MaxPayload));
        }
        Ok(())
    }

    #[inline(always)]
    fn arg_start(&self, input: &[u8], end_of_name: usize, blank_required: bool) -> Scan<usize> {
        arg_start(
            input,
            end_of_name,
            blank_required,
            self.max_control_line as usize,
        )
    }

    #[inline(always)]
    fn control_line<'a>(&self, input: &'a [u8], arg_start: usize) -> Scan<(&'a [u8], usize)> {
        control_line(input, arg_start, self.max_control_line as usize)
    }

    #[inline(always)]
    fn skip_line(&self, input: &[u8], from: usize) -> Scan<usize> {
        skip_line(input, from, self.max_control_line as usize)
    }
}

// The steps below are shared with the route parser (`proto::route`), which reads lines the
// same way under its own limit; `limit` is the longest control line argument in bytes.

/// Skips the blanks after an op name (requiring at least one if `blank_required`) and
/// returns the index of the first argument byte.
#[inline]
pub(super) fn arg_start(
    input: &[u8],
    end_of_name: usize,
    blank_required: bool,
    limit: usize,
) -> Scan<usize> {
    let mut index = end_of_name;
    if blank_required {
        match input.get(index) {
            None => return Err(Stop::Pending(None)),
            Some(b' ' | b'\t') => index += 1,
            Some(_) => return Err(Stop::Bad(ServerError::UnknownOp)),
        }
    }
    while let Some(&byte) = input.get(index) {
        if !is_blank(byte) {
            return Ok(index);
        }
        index += 1;
    }
    Err(pending_unbuffered(input, limit))
}

/// Finds the end of the control line whose argument starts at `arg_start` (see the module
/// docs for the exact rules) and checks its length against `limit`. Returns the argument and
/// the index just after the `\n`.
#[inline]
pub(super) fn control_line(input: &[u8], arg_start: usize, limit: usize) -> Scan<(&[u8], usize)> {
    debug_assert!(
        arg_start < input.len(),
        "the first argument byte is in the input"
    );
    let searched = &input[arg_start + 1..];
    let Some(offset) = memchr(b'\n', searched) else {
        // Incomplete line: nats-server checks what it has buffered so far.
        let seen = input.len() - arg_start;
        if seen > limit + 1 || (seen == limit + 1 && memchr(b'\r', searched).is_none()) {
            return Err(Stop::Bad(ServerError::MaxControlLine));
        }
        return Err(Stop::Pending(None));
    };
    let newline = arg_start + 1 + offset;
    let in_arg_state = &searched[..offset];
    let drop = match in_arg_state.last() {
        Some(b'\r') => 1,
        Some(_) => usize::from(memchr(b'\r', in_arg_state).is_some()),
        None => 0,
    };
    let arg = &input[arg_start..newline - drop];
    if arg.len() > limit {
        return Err(Stop::Bad(ServerError::MaxControlLine));
    }
    Ok((arg, newline + 1))
}

/// Skips to just after the next `\n` at or after `from`.
pub(super) fn skip_line(input: &[u8], from: usize, limit: usize) -> Scan<usize> {
    match memchr(b'\n', &input[from..]) {
        Some(offset) => Ok(from + offset + 1),
        None => Err(pending_unbuffered(input, limit)),
    }
}

/// Pending in a state where nats-server buffers nothing (see the module docs): bounded
/// here by `limit` so the caller's carry buffer is.
fn pending_unbuffered(input: &[u8], limit: usize) -> Stop {
    if input.len() > limit {
        Stop::Bad(ServerError::MaxControlLine)
    } else {
        Stop::Pending(None)
    }
}

/// The payload of `size` bytes at `start` and the total length through its `\r\n`.
#[inline]
pub(super) fn body(input: &[u8], start: usize, size: usize) -> Scan<(&[u8], usize)> {
    let end = start + size;
    let needed = end + PAYLOAD_TRAILER_BYTES;
    // Check the trailer bytes that have arrived, so a bad one fails as early as in nats-server.
    if input.len() > end && input[end] != b'\r' {
        return Err(Stop::Bad(ServerError::UnknownOp));
    }
    if input.len() > end + 1 && input[end + 1] != b'\n' {
        return Err(Stop::Bad(ServerError::UnknownOp));
    }
    if input.len() < needed {
        return Err(Stop::Pending(Some(needed)));
    }
    Ok((&input[start..end], needed))
}

/// Byte `index` of the input in lower case, or pending if it has not arrived.
pub(super) fn byte_lower(input: &[u8], index: usize) -> Scan<u8> {
    match input.get(index) {
        Some(byte) => Ok(byte.to_ascii_lowercase()),
        None => Err(Stop::Pending(None)),
    }
}

/// Matches the rest of an op name (given in lower case) at `start`, case-insensitively.
/// Returns the index after it.
#[inline]
pub(super) fn expect_name(input: &[u8], start: usize, rest: &[u8]) -> Scan<usize> {
    for (index, &expected) in (start..).zip(rest) {
        if byte_lower(input, index)? != expected {
            return Err(Stop::Bad(ServerError::UnknownOp));
        }
    }
    Ok(start + rest.len())
}

/// Classes of argument bytes for `Parser::parse_pub`'s one pass.
pub(super) const ARG_TEXT: u8 = 0;
pub(super) const ARG_BLANK: u8 = 1;
pub(super) const ARG_CR: u8 = 2;
const ARG_LF: u8 = 3;

pub(super) const ARG_BYTE_CLASS: [u8; 256] = {
    let mut classes = [ARG_TEXT; 256];
    classes[b' ' as usize] = ARG_BLANK;
    classes[b'\t' as usize] = ARG_BLANK;
    classes[b'\r' as usize] = ARG_CR;
    classes[b'\n' as usize] = ARG_LF;
    classes
};

/// Whether `byte` is part of a `PUB` argument token. Every byte above the space is, so the
/// common byte costs one comparison and no table load.
#[inline(always)]
fn is_arg_text(byte: u8) -> bool {
    byte > b' ' || ARG_BYTE_CLASS[usize::from(byte)] == ARG_TEXT
}

pub(super) fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Splits on runs of spaces and tabs (PUB, HPUB). `None` if there are more than `N` tokens.
/// A plain byte loop: the arguments are short (subject, reply, size), where setting up a SIMD
/// search per token costs more than it saves (measured: the PUB path spent a fifth of its time
/// in `memchr2` calls).
#[inline]
pub(super) fn split_blanks<'a, const N: usize>(
    arg: &'a [u8],
    tokens: &mut [&'a [u8]; N],
) -> Option<usize> {
    let mut count = 0;
    let mut index = 0;
    loop {
        while index < arg.len() && is_blank(arg[index]) {
            index += 1;
        }
        if index == arg.len() {
            return Some(count);
        }
        let start = index;
        while index < arg.len() && !is_blank(arg[index]) {
            index += 1;
        }
        *tokens.get_mut(count)? = &arg[start..index];
        count += 1;
    }
}

/// Splits on runs of spaces, tabs, `\r` and `\n` (SUB, UNSUB: nats-server's `splitArg`).
/// `None` if there are more than `N` tokens.
pub(super) fn split_blanks_and_newlines<'a, const N: usize>(
    arg: &'a [u8],
    tokens: &mut [&'a [u8]; N],
) -> Option<usize> {
    let is_separator = |byte: u8| matches!(byte, b' ' | b'\t' | b'\r' | b'\n');
    let mut count = 0;
    let mut start = None;
    for (index, &byte) in arg.iter().enumerate() {
        match (is_separator(byte), start) {
            (true, Some(token_start)) => {
                *tokens.get_mut(count)? = &arg[token_start..index];
                count += 1;
                start = None;
            }
            (false, None) => start = Some(index),
            _ => {}
        }
    }
    if let Some(token_start) = start {
        *tokens.get_mut(count)? = &arg[token_start..];
        count += 1;
    }
    Some(count)
}

/// nats-server's `parseSize`: 1 to 9 ASCII digits, no sign. Leading zeros are fine.
#[inline]
pub fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > SIZE_DIGITS_MAX {
        return None;
    }
    let mut size = 0usize;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        size = size * 10 + usize::from(digit - b'0');
    }
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_PAYLOAD: u32 = 1024 * 1024;
    const MAX_CONTROL_LINE: u32 = 4096;

    fn parser() -> Parser {
        Parser::new(MAX_PAYLOAD, MAX_CONTROL_LINE)
    }

    fn with_headers() -> Parser {
        Parser {
            headers: true,
            ..parser()
        }
    }

    fn op(input: &[u8]) -> (Op<'_>, usize) {
        match parser().parse(input) {
            Step::Op(op, consumed) => (op, consumed),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn error(parser: &Parser, input: &[u8]) -> ServerError {
        match parser.parse(input) {
            Step::Error(error) => error,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn pending(parser: &Parser, input: &[u8]) -> Option<usize> {
        match parser.parse(input) {
            Step::Pending { needed } => needed,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn publish<'a>(subject: &'a [u8], reply: Option<&'a [u8]>, payload: &'a [u8]) -> Op<'a> {
        Op::Pub(Message {
            headers: None,
            subject,
            reply,
            payload,
        })
    }

    fn sub<'a>(subject: &'a [u8], queue: Option<&'a [u8]>, sid: &'a [u8]) -> Op<'a> {
        Op::Sub {
            subject,
            queue,
            sid,
        }
    }

    #[test]
    fn empty_input_is_pending() {
        assert_eq!(pending(&parser(), b""), None);
    }

    #[test]
    fn pub_two_and_three_args() {
        assert_eq!(
            op(b"PUB foo 5\r\nhello\r\n"),
            (publish(b"foo", None, b"hello"), 18)
        );
        let input = b"PUB foo.bar _INBOX.1 2\r\nhi\r\nPING\r\n";
        assert_eq!(
            op(input),
            (publish(b"foo.bar", Some(b"_INBOX.1"), b"hi"), 28)
        );
    }

    #[test]
    fn pub_payload_is_skipped_not_scanned() {
        let input = b"PUB a 6\r\n\r\nPING\r\n";
        assert_eq!(op(input), (publish(b"a", None, b"\r\nPING"), input.len()));
        let input = b"PUB a 4\r\n\n\n\r\n\r\n";
        assert_eq!(op(input), (publish(b"a", None, b"\n\n\r\n"), input.len()));
    }

    #[test]
    fn zero_length_payloads() {
        assert_eq!(op(b"PUB foo 0\r\n\r\n"), (publish(b"foo", None, b""), 13));
        let hpub = with_headers().parse(b"HPUB foo 0 0\r\n\r\n");
        let expected = Op::Pub(Message {
            subject: b"foo",
            reply: None,
            headers: Some(b""),
            payload: b"",
        });
        assert_eq!(hpub, Step::Op(expected, 16));
    }

    #[test]
    fn op_names_are_case_insensitive() {
        assert_eq!(op(b"pub foo 1\r\nx\r\n").0, publish(b"foo", None, b"x"));
        assert_eq!(op(b"PuB foo 1\r\nx\r\n").0, publish(b"foo", None, b"x"));
        assert_eq!(op(b"sUb foo 1\r\n").0, sub(b"foo", None, b"1"));
        assert_eq!(
            op(b"UnSuB 1\r\n").0,
            Op::Unsub {
                sid: b"1",
                max: None
            }
        );
        assert_eq!(op(b"ping\r\n").0, Op::Ping);
        assert_eq!(op(b"PiNg\r\n").0, Op::Ping);
        assert_eq!(op(b"pong\r\n").0, Op::Pong);
        assert_eq!(op(b"connect {}\r\n").0, Op::Connect { json: b"{}" });
        assert_eq!(op(b"+ok\r\n").0, Op::Ok);
        assert_eq!(op(b"info {}\r\n").0, Op::Info);
        let hpub = with_headers().parse(b"hPuB s 0 1\r\nx\r\n");
        assert!(
            matches!(
                hpub,
                Step::Op(
                    Op::Pub(Message {
                        headers: Some(_),
                        ..
                    }),
                    15
                )
            ),
            "{hpub:?}"
        );
    }

    #[test]
    fn blanks_and_tabs_separate_args() {
        let input = b"PUB\tfoo\t\t3\r\nabc\r\n";
        assert_eq!(op(input), (publish(b"foo", None, b"abc"), input.len()));
        let input = b"PUB  foo   3 \r\nabc\r\n";
        assert_eq!(op(input), (publish(b"foo", None, b"abc"), input.len()));
        assert_eq!(
            op(b"SUB \t foo \t q \t 9 \r\n").0,
            sub(b"foo", Some(b"q"), b"9")
        );
        assert_eq!(op(b"CONNECT\t{}\r\n").0, Op::Connect { json: b"{}" });
        // CONNECT and INFO need no blank at all.
        assert_eq!(op(b"CONNECT{}\r\n").0, Op::Connect { json: b"{}" });
    }

    #[test]
    fn bare_newline_ends_lines() {
        assert_eq!(op(b"PING\n"), (Op::Ping, 5));
        assert_eq!(op(b"SUB foo 1\n"), (sub(b"foo", None, b"1"), 10));
        assert_eq!(op(b"PUB foo 1\nx\r\n"), (publish(b"foo", None, b"x"), 13));
        assert_eq!(op(b"+OK\n"), (Op::Ok, 4));
    }

    #[test]
    fn ping_pong_ok_ignore_trailing_bytes() {
        assert_eq!(op(b"PINGjunk here\r\nPONG\r\n"), (Op::Ping, 15));
        assert_eq!(op(b"PINGPONG\r\n"), (Op::Ping, 10));
        assert_eq!(op(b"PING \r\n"), (Op::Ping, 7));
        assert_eq!(op(b"PONG\t\tx\r\n"), (Op::Pong, 9));
        assert_eq!(op(b"+OKjunk\r\n"), (Op::Ok, 9));
        assert_eq!(pending(&parser(), b"PING"), None);
        assert_eq!(pending(&parser(), b"PINGjunk\r"), None);
    }

    #[test]
    fn sub_and_unsub() {
        assert_eq!(op(b"SUB foo 1\r\n"), (sub(b"foo", None, b"1"), 11));
        assert_eq!(
            op(b"SUB foo.* q 22\r\n").0,
            sub(b"foo.*", Some(b"q"), b"22")
        );
        let unsub = |input: &'static [u8]| match op(input).0 {
            Op::Unsub { sid, max } => (sid, max),
            other => panic!("{other:?}"),
        };
        assert_eq!(unsub(b"UNSUB 1\r\n"), (&b"1"[..], None));
        assert_eq!(unsub(b"UNSUB 1 5\r\n"), (&b"1"[..], Some(5)));
        assert_eq!(unsub(b"UNSUB 1 0\r\n"), (&b"1"[..], Some(0)));
        assert_eq!(
            unsub(b"UNSUB 1 999999999\r\n"),
            (&b"1"[..], Some(999_999_999))
        );
        // nats-server keeps the connection and unsubscribes at once for these.
        assert_eq!(unsub(b"UNSUB 1 x\r\n"), (&b"1"[..], None));
        assert_eq!(unsub(b"UNSUB 1 -1\r\n"), (&b"1"[..], None));
        assert_eq!(unsub(b"UNSUB 1 1000000000\r\n"), (&b"1"[..], None));
    }

    #[test]
    fn sub_splits_on_carriage_returns_too() {
        // nats-server's splitArg separates on \r and \n as well as blanks.
        assert_eq!(op(b"SUB foo\r1\r\n").0, sub(b"foo", None, b"1"));
        assert_eq!(op(b"SUB foo 1\r\r\n").0, sub(b"foo", None, b"1"));
        // A \r anywhere makes the last byte before \n drop, whatever it is.
        assert_eq!(op(b"SUB foo 1\rx\n").0, sub(b"foo", None, b"1"));
        assert_eq!(op(b"SUB foo\r1 x\n").0, sub(b"foo", None, b"1"));
    }

    #[test]
    fn pub_keeps_carriage_returns_in_args() {
        // PUB splits on blanks only: `foo\r` is the subject (nats-server accepts it).
        let input = b"PUB foo\r 1\r\nx\r\n";
        assert_eq!(op(input), (publish(b"foo\r", None, b"x"), input.len()));
        // `1\rx\n`: the x is dropped, `1\r` is not a size: closed silently.
        assert_eq!(
            error(&parser(), b"PUB foo 1\rx\nx\r\n"),
            ServerError::ParseError
        );
    }

    #[test]
    fn newline_right_after_the_blanks_starts_the_argument() {
        assert_eq!(op(b"SUB \nfoo 1\r\n").0, sub(b"foo", None, b"1"));
        assert_eq!(op(b"PUB \nfoo 1\r\nx\r\n").0, publish(b"\nfoo", None, b"x"));
        assert_eq!(op(b"CONNECT\n{}\r\n").0, Op::Connect { json: b"\n{}" });
    }

    #[test]
    fn connect_json_is_passed_through() {
        let input = b"CONNECT {\"verbose\":false}\r\nPING\r\n";
        assert_eq!(
            op(input),
            (
                Op::Connect {
                    json: b"{\"verbose\":false}"
                },
                27
            )
        );
        // Empty or bad JSON is the caller's to reject (json::parse_connect).
        assert_eq!(op(b"CONNECT\r\n").0, Op::Connect { json: b"\r" });
    }

    #[test]
    fn info_from_client() {
        assert_eq!(op(b"INFO {}\r\n"), (Op::Info, 9));
        assert_eq!(op(b"INFO {\"port\":1}\r\n").0, Op::Info);
        for bad in [
            &b"INFO\r\n"[..],
            b"INFO \r\n",
            b"INFOx\r\n",
            b"INFO [1]\r\n",
        ] {
            assert_eq!(error(&parser(), bad), ServerError::ParseError);
        }
        assert_eq!(
            error(&parser(), b"INFO {\"server_id\":5}\r\n"),
            ServerError::ParseError
        );
    }

    #[test]
    fn err_from_client_closes_silently() {
        assert_eq!(error(&parser(), b"-ERR 'x'\r\n"), ServerError::ClientError);
        assert_eq!(error(&parser(), b"-err x\r\n"), ServerError::ClientError);
        assert_eq!(pending(&parser(), b"-ERR 'x'"), None);
        assert_eq!(error(&parser(), b"-ERR\r\n"), ServerError::UnknownOp);
        assert_eq!(error(&parser(), b"-ERRx\r\n"), ServerError::UnknownOp);
    }

    #[test]
    fn unknown_ops() {
        let unknown = [
            &b"FOO\r\n"[..],
            b"\r\n",
            b"\n",
            b" PING\r\n",
            b"\tPING\r\n",
            b"PIN\r\n",
            b"PUB\r\n",
            b"PUBX foo 3\r\n",
            b"SUB\r\n",
            b"UNSUB\r\n",
            b"+O\r\n",
            b"MSG foo 1 3\r\nabc\r\n",
            b"RS+ foo\r\n",
            b"LS+ foo\r\n",
            b"A+ foo\r\n",
            b"HMSG\r\n",
            b"CONNECX {}\r\n",
        ];
        for input in unknown {
            assert_eq!(error(&parser(), input), ServerError::UnknownOp, "{input:?}");
        }
    }

    #[test]
    fn unknown_ops_fail_before_the_newline() {
        assert_eq!(error(&parser(), b"XYZ"), ServerError::UnknownOp);
        assert_eq!(error(&parser(), b"PUX"), ServerError::UnknownOp);
        assert_eq!(error(&parser(), b"PUBX"), ServerError::UnknownOp);
        for prefix in [
            &b"P"[..],
            b"PU",
            b"PUB",
            b"PUB ",
            b"PUB  foo",
            b"CONNEC",
            b"-ER",
            b"+",
        ] {
            assert_eq!(pending(&parser(), prefix), None, "{prefix:?}");
        }
    }

    #[test]
    fn bad_args_close_silently() {
        let bad = [
            &b"PUB foo\r\n"[..],
            b"PUB \r\n",
            b"PUB foo -1\r\n",
            b"PUB foo +3\r\n",
            b"PUB foo bar\r\n",
            b"PUB foo 3x\r\n",
            b"PUB foo r x 3\r\n",
            b"PUB foo 99999999999999999999999\r\n",
            b"PUB foo 0000000003\r\n",
            b"SUB foo\r\n",
            b"SUB \r\n",
            b"SUB foo q 1 extra\r\n",
            b"UNSUB \r\n",
            b"UNSUB 1 2 3\r\n",
        ];
        for input in bad {
            assert_eq!(
                error(&parser(), input),
                ServerError::ParseError,
                "{input:?}"
            );
        }
        // Nine digits are fine, leading zeros included.
        assert_eq!(
            op(b"PUB foo 000000003\r\nabc\r\n").0,
            publish(b"foo", None, b"abc")
        );
    }

    #[test]
    fn hpub_sizes() {
        let p = with_headers();
        let input = b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let expected = Op::Pub(Message {
            subject: b"foo",
            reply: None,
            headers: Some(b"NATS/1.0\r\n\r\n"),
            payload: b"hi",
        });
        assert_eq!(p.parse(input), Step::Op(expected, input.len()));
        let input = b"HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n";
        let expected = Op::Pub(Message {
            subject: b"foo",
            reply: Some(b"r"),
            headers: Some(b"NATS/1.0\r\n\r\n"),
            payload: b"",
        });
        assert_eq!(p.parse(input), Step::Op(expected, input.len()));
        // Header size 0 is accepted, as by nats-server.
        let Step::Op(
            Op::Pub(Message {
                headers: Some(headers),
                payload,
                ..
            }),
            _,
        ) = p.parse(b"HPUB foo 0 2\r\nab\r\n")
        else {
            panic!()
        };
        assert_eq!((headers, payload), (&b""[..], &b"ab"[..]));
        for bad in [
            &b"HPUB foo 3 2\r\n"[..],
            b"HPUB foo 12\r\n",
            b"HPUB foo x 14\r\n",
            b"HPUB foo 12 x\r\n",
            b"HPUB foo -1 14\r\n",
            b"HPUB foo 1 -1\r\n",
            b"HPUB foo r 12 14 x\r\n",
            b"HPUB foo 2000000 12\r\n",
        ] {
            assert_eq!(error(&p, bad), ServerError::ParseError, "{bad:?}");
        }
        assert_eq!(
            error(&p, b"HPUB foo 12 2000000\r\n"),
            ServerError::MaxPayload
        );
        assert_eq!(
            error(&p, b"HPUB foo 2000000 2000000\r\n"),
            ServerError::MaxPayload
        );
        assert_eq!(pending(&p, b"HPUB foo 12 14\r\nNATS/1.0\r\n"), Some(32));
    }

    #[test]
    fn hpub_without_negotiated_headers_closes_silently() {
        let input = b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        assert_eq!(error(&parser(), input), ServerError::ParseError);
        assert_eq!(
            error(&parser(), b"HpUb foo 0 0\r\n\r\n"),
            ServerError::ParseError
        );
    }

    #[test]
    fn hmsg_from_client_is_an_empty_publish() {
        let input = b"HMSG foo 1 0 0\r\n\r\nPING\r\n";
        assert_eq!(op(input), (publish(b"", None, b""), 18));
        assert_eq!(
            error(&parser(), b"HMSG foo 1 0 0\r\nPING\r\n"),
            ServerError::UnknownOp
        );
        assert_eq!(pending(&parser(), b"HMSG x\r\n"), Some(10));
    }

    #[test]
    fn payload_trailer_must_be_crlf() {
        assert_eq!(
            error(&parser(), b"PUB foo 3\r\nabcd\r\n"),
            ServerError::UnknownOp
        );
        assert_eq!(
            error(&parser(), b"PUB foo 3\r\nab\r\n"),
            ServerError::UnknownOp
        );
        assert_eq!(
            error(&parser(), b"PUB foo 3\r\nabc\nPING\r\n"),
            ServerError::UnknownOp
        );
        assert_eq!(
            error(&parser(), b"PUB foo 3\r\nabc\rX"),
            ServerError::UnknownOp
        );
        // Detected as soon as the wrong byte arrives.
        assert_eq!(
            error(&parser(), b"PUB foo 3\r\nabcd"),
            ServerError::UnknownOp
        );
        assert_eq!(pending(&parser(), b"PUB foo 3\r\nabc\r"), Some(16));
    }

    #[test]
    fn pending_reports_the_needed_length() {
        let whole = b"PUB foo 5\r\nhello\r\n";
        for cut in 0..whole.len() {
            let needed = pending(&parser(), &whole[..cut]);
            let line_complete = cut >= b"PUB foo 5\r\n".len();
            assert_eq!(needed, line_complete.then_some(whole.len()), "cut {cut}");
        }
    }

    #[test]
    fn max_payload_at_and_over() {
        let p = Parser::new(100, MAX_CONTROL_LINE);
        let mut input = b"PUB a 100\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\r\n");
        assert!(matches!(
            p.parse(&input),
            Step::Op(Op::Pub(Message { .. }), 113)
        ));
        // Checked as soon as the line is in, before any payload.
        assert_eq!(pending(&p, b"PUB a 100\r\n"), Some(113));
        assert_eq!(error(&p, b"PUB a 101\r\n"), ServerError::MaxPayload);
        assert_eq!(
            error(&parser(), b"PUB foo 1048577\r\n"),
            ServerError::MaxPayload
        );
        assert_eq!(
            pending(&parser(), b"PUB foo 1048576\r\n"),
            Some(1048576 + 19)
        );
        assert_eq!(
            error(&parser(), b"PUB foo 999999999\r\n"),
            ServerError::MaxPayload
        );
    }

    /// `SUB <subject> 1` whose argument (`<subject> 1`) is `len` bytes.
    fn sub_line(len: usize) -> Vec<u8> {
        let mut line = b"SUB ".to_vec();
        line.extend(std::iter::repeat_n(b'a', len - 2));
        line.extend_from_slice(b" 1");
        line
    }

    #[test]
    fn control_line_at_and_over_the_limit() {
        // As nats-server 2.15.1 with max_control_line: 64 (see the module docs).
        let p = Parser::new(100, 64);
        for (len, ok) in [
            (63, true),
            (64, true),
            (65, false),
            (66, false),
            (1000, false),
        ] {
            let mut complete = sub_line(len);
            complete.extend_from_slice(b"\r\n");
            let partial = sub_line(len);
            let mut partial_cr = sub_line(len);
            partial_cr.push(b'\r');
            if ok {
                assert!(
                    matches!(p.parse(&complete), Step::Op(Op::Sub { .. }, _)),
                    "{len}"
                );
                assert_eq!(pending(&p, &partial), None, "{len}");
                assert_eq!(pending(&p, &partial_cr), None, "{len}");
            } else {
                assert_eq!(error(&p, &complete), ServerError::MaxControlLine, "{len}");
                assert_eq!(error(&p, &partial), ServerError::MaxControlLine, "{len}");
                assert_eq!(error(&p, &partial_cr), ServerError::MaxControlLine, "{len}");
            }
        }
        // The op name and the blanks after it do not count; bare \n lines count the same.
        let mut spaced = b"SUB".to_vec();
        spaced.extend_from_slice(&[b' '; 40]);
        spaced.extend_from_slice(&sub_line(64)[4..]);
        spaced.push(b'\n');
        assert!(matches!(p.parse(&spaced), Step::Op(Op::Sub { .. }, _)));
        // The limit is checked before the arguments: too long and bad is still too long.
        let mut bad = b"PUB ".to_vec();
        bad.extend_from_slice(&[b'a'; 70]);
        bad.extend_from_slice(b" bar\r\n");
        assert_eq!(error(&p, &bad), ServerError::MaxControlLine);
        // Every op with an argument is checked: CONNECT, INFO, -ERR too.
        for name in [&b"CONNECT "[..], b"INFO ", b"-ERR ", b"UNSUB ", b"PUB "] {
            let mut line = name.to_vec();
            line.extend_from_slice(&[b'x'; 65]);
            assert_eq!(error(&p, &line), ServerError::MaxControlLine, "{name:?}");
            line.extend_from_slice(b"\r\n");
            assert_eq!(error(&p, &line), ServerError::MaxControlLine, "{name:?}");
        }
        // PING/PONG/+OK lines have no argument: complete ones are never too long.
        let mut ping = b"PING".to_vec();
        ping.extend_from_slice(&[b' '; 100]);
        ping.extend_from_slice(b"\r\n");
        assert_eq!(p.parse(&ping), Step::Op(Op::Ping, ping.len()));
    }

    #[test]
    fn unbuffered_pending_states_are_bounded() {
        // nats-server would wait forever here; a carry buffer cannot (see the module docs).
        let p = Parser::new(100, 64);
        let mut ping = b"PING".to_vec();
        ping.extend_from_slice(&[b'x'; 60]);
        assert_eq!(pending(&p, &ping), None);
        ping.extend_from_slice(&[b'x'; 10]);
        assert_eq!(error(&p, &ping), ServerError::MaxControlLine);
        let mut blanks = b"SUB".to_vec();
        blanks.extend_from_slice(&[b' '; 70]);
        assert_eq!(error(&p, &blanks), ServerError::MaxControlLine);
    }

    /// Feeds `chunks` as a connection would: parse what is there, carry the rest.
    fn feed(parser: &Parser, chunks: &[&[u8]]) -> Vec<String> {
        let mut carry: Vec<u8> = Vec::new();
        let mut ops = Vec::new();
        for chunk in chunks {
            carry.extend_from_slice(chunk);
            let mut offset = 0;
            loop {
                match parser.parse(&carry[offset..]) {
                    Step::Op(op, consumed) => {
                        ops.push(format!("{op:?}"));
                        offset += consumed;
                    }
                    Step::Pending { needed } => {
                        if let Some(needed) = needed {
                            assert!(needed > carry.len() - offset, "pending but complete");
                        }
                        break;
                    }
                    Step::Error(error) => panic!("{error:?} at {offset}"),
                }
            }
            carry.drain(..offset);
        }
        assert!(carry.is_empty(), "left over: {carry:?}");
        ops
    }

    fn mixed_stream() -> Vec<u8> {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"CONNECT {\"verbose\":false,\"headers\":true}\r\n");
        stream.extend_from_slice(b"PING\r\nPONG\r\nping junk\r\n+OK\r\nINFO {}\r\n");
        stream.extend_from_slice(b"SUB foo 1\r\nsub\tbar.*  q\t2\r\nSUB \nbaz 3\n");
        stream.extend_from_slice(b"PUB foo 5\r\nhello\r\npub foo reply 0\r\n\r\n");
        stream.extend_from_slice(b"PUB foo 6\r\n\r\nPUB \r\n");
        stream.extend_from_slice(b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        stream.extend_from_slice(b"hpub foo r 18 18\r\nNATS/1.0\r\nA: B\r\n\r\n\r\n");
        stream.extend_from_slice(b"UNSUB 1\r\nUNSUB 2 10\nunsub\t3  x\r\n");
        stream.extend_from_slice(b"PUB a\r 3\r\n\r\n\n\r\nHMSG x\r\n\r\nPING\n");
        stream
    }

    #[test]
    fn split_at_every_offset_gives_the_same_ops() {
        let p = with_headers();
        let stream = mixed_stream();
        let whole = feed(&p, &[&stream]);
        assert_eq!(whole.len(), 20, "{whole:#?}");
        for cut in 0..=stream.len() {
            let (first, second) = stream.split_at(cut);
            assert_eq!(feed(&p, &[first, second]), whole, "cut at {cut}");
        }
        for cut in 0..stream.len() {
            let (first, rest) = stream.split_at(cut);
            let (second, third) = rest.split_at(rest.len().min(7));
            assert_eq!(
                feed(&p, &[first, second, third]),
                whole,
                "cuts at {cut}, +7"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed(&p, &bytes), whole, "byte by byte");
    }

    /// A generated operation: its bytes, and the op the parser must return for them.
    #[derive(Debug, Clone)]
    enum GenOp {
        Ping,
        Pong,
        Pub(Vec<u8>, Option<Vec<u8>>, Vec<u8>),
        Hpub(Vec<u8>, Option<Vec<u8>>, Vec<u8>, Vec<u8>),
        Sub(Vec<u8>, Option<Vec<u8>>, Vec<u8>),
        Unsub(Vec<u8>, Option<u64>),
        Connect(Vec<u8>),
    }

    fn token() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'.'), Just(b'*'), Just(b'>'), b'a'..=b'z', b'0'..=b'9'],
            1..12,
        )
    }

    fn gen_op() -> impl Strategy<Value = GenOp> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            Just(GenOp::Ping),
            Just(GenOp::Pong),
            (token(), proptest::option::of(token()), bytes())
                .prop_map(|(s, r, p)| GenOp::Pub(s, r, p)),
            (token(), proptest::option::of(token()), bytes(), bytes())
                .prop_map(|(s, r, h, p)| GenOp::Hpub(s, r, h, p)),
            (token(), proptest::option::of(token()), token())
                .prop_map(|(s, q, i)| GenOp::Sub(s, q, i)),
            (token(), proptest::option::of(0u64..1_000_000)).prop_map(|(i, m)| GenOp::Unsub(i, m)),
            "[a-z{}\":, ]{0,30}".prop_map(|json| GenOp::Connect(format!("{{{json}}}").into())),
        ]
    }

    /// Writes `op` with the given blank style and op-name casing; returns the expected op.
    fn encode(op: &GenOp, tab: bool, upper: bool, bare_newline: bool, out: &mut Vec<u8>) {
        let blank: &[u8] = if tab { b"\t " } else { b" " };
        let newline: &[u8] = if bare_newline { b"\n" } else { b"\r\n" };
        let name = |out: &mut Vec<u8>, name: &str| {
            let name = if upper {
                name.to_ascii_uppercase()
            } else {
                name.to_ascii_lowercase()
            };
            out.extend_from_slice(name.as_bytes());
        };
        let args = |out: &mut Vec<u8>, args: &[&[u8]]| {
            for arg in args {
                out.extend_from_slice(blank);
                out.extend_from_slice(arg);
            }
            out.extend_from_slice(newline);
        };
        match op {
            GenOp::Ping => {
                name(out, "ping");
                out.extend_from_slice(newline);
            }
            GenOp::Pong => {
                name(out, "pong");
                out.extend_from_slice(newline);
            }
            GenOp::Pub(subject, reply, payload) => {
                name(out, "pub");
                let size = payload.len().to_string();
                let mut list: Vec<&[u8]> = vec![subject];
                list.extend(reply.as_deref());
                list.push(size.as_bytes());
                args(out, &list);
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            GenOp::Hpub(subject, reply, headers, payload) => {
                name(out, "hpub");
                let headers_size = headers.len().to_string();
                let total_size = (headers.len() + payload.len()).to_string();
                let mut list: Vec<&[u8]> = vec![subject];
                list.extend(reply.as_deref());
                list.push(headers_size.as_bytes());
                list.push(total_size.as_bytes());
                args(out, &list);
                out.extend_from_slice(headers);
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            GenOp::Sub(subject, queue, sid) => {
                name(out, "sub");
                let mut list: Vec<&[u8]> = vec![subject];
                list.extend(queue.as_deref());
                list.push(sid);
                args(out, &list);
            }
            GenOp::Unsub(sid, max) => {
                name(out, "unsub");
                let max = max.map(|max| max.to_string());
                let mut list: Vec<&[u8]> = vec![sid];
                list.extend(max.as_ref().map(|max| max.as_bytes()));
                args(out, &list);
            }
            GenOp::Connect(json) => {
                name(out, "connect");
                args(out, &[json]);
            }
        }
    }

    fn expected(op: &GenOp) -> String {
        let op = match op {
            GenOp::Ping => Op::Ping,
            GenOp::Pong => Op::Pong,
            GenOp::Pub(subject, reply, payload) => Op::Pub(Message {
                headers: None,
                subject,
                reply: reply.as_deref(),
                payload,
            }),
            GenOp::Hpub(subject, reply, headers, payload) => Op::Pub(Message {
                subject,
                reply: reply.as_deref(),
                headers: Some(headers),
                payload,
            }),
            GenOp::Sub(subject, queue, sid) => Op::Sub {
                subject,
                queue: queue.as_deref(),
                sid,
            },
            GenOp::Unsub(sid, max) => Op::Unsub { sid, max: *max },
            GenOp::Connect(json) => Op::Connect { json },
        };
        format!("{op:?}")
    }

    proptest! {
        #[test]
        fn random_ops_in_random_splits(
            ops in proptest::collection::vec((gen_op(), any::<bool>(), any::<bool>(), any::<bool>()), 1..30),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let p = with_headers();
            let mut stream = Vec::new();
            for (op, tab, upper, bare_newline) in &ops {
                encode(op, *tab, *upper, *bare_newline, &mut stream);
            }
            let want: Vec<String> = ops.iter().map(|(op, ..)| expected(op)).collect();
            prop_assert_eq!(&feed(&p, &[&stream]), &want);
            let mut offsets: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
            offsets.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for offset in offsets {
                chunks.push(&stream[start..offset]);
                start = offset;
            }
            chunks.push(&stream[start..]);
            prop_assert_eq!(feed(&p, &chunks), want);
        }

        #[test]
        fn parse_pub_agrees_with_parse(
            ops in proptest::collection::vec((gen_op(), any::<bool>(), any::<bool>(), any::<bool>()), 1..4),
            garbage in proptest::collection::vec(any::<u8>(), 0..40),
            cut in any::<prop::sample::Index>(),
        ) {
            let p = with_headers();
            let mut stream = Vec::new();
            for (op, tab, upper, bare_newline) in &ops {
                encode(op, *tab, *upper, *bare_newline, &mut stream);
            }
            stream.extend_from_slice(&garbage);
            // What every client sends (one PUB line ended by `\r\n`) takes the fast path.
            let canonical_pub = matches!(ops[0], (GenOp::Pub(..), _, _, false));
            for (input, first_op_whole) in [
                (&stream[..], true),
                (&stream[..cut.index(stream.len() + 1)], false),
                (&garbage[..], false),
            ] {
                if let Some((message, used)) = p.parse_pub(input) {
                    prop_assert_eq!(p.parse(input), Step::Op(Op::Pub(message), used));
                } else if first_op_whole && canonical_pub {
                    prop_assert!(false, "a canonical PUB took the long way");
                }
            }
        }

        #[test]
        fn never_panics_on_garbage(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let p = Parser { max_control_line: 32, ..with_headers() };
            if let Step::Op(_, consumed) = p.parse(&input) {
                prop_assert!(consumed > 0 && consumed <= input.len());
            }
        }
    }

    /// Every `PUB ` followed by up to 6 bytes of a small alphabet (blanks, CR, LF, letters,
    /// digits) and one of a few tails, under tiny and default limits: whenever `parse_pub`
    /// answers, `parse` gives the same operation (from a second pair of eyes on the fast path).
    #[test]
    fn parse_pub_agrees_with_parse_exhaustively() {
        let alphabet = b" \t\r\nab10";
        for (max_payload, max_control_line) in [(1, 4), (2, 3), (0, 5), (1024, 4096)] {
            let parser = Parser::new(max_payload, max_control_line);
            let mut taken = 0u64;
            for len in 0..=6u32 {
                for mut n in 0..(alphabet.len() as u64).pow(len) {
                    let mut input = b"PUB ".to_vec();
                    for _ in 0..len {
                        input.push(alphabet[(n % alphabet.len() as u64) as usize]);
                        n /= alphabet.len() as u64;
                    }
                    for tail in [&b""[..], b"\r\n", b"x\r\n", b"\r\nPING\r\n"] {
                        let mut whole = input.clone();
                        whole.extend_from_slice(tail);
                        if let Some((message, used)) = parser.parse_pub(&whole) {
                            taken += 1;
                            assert_eq!(
                                parser.parse(&whole),
                                Step::Op(Op::Pub(message), used),
                                "{whole:?}"
                            );
                        }
                    }
                }
            }
            assert!(taken > 0, "the fast path took some inputs");
        }
    }

    #[test]
    fn parse_size_rules() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"007"), Some(7));
        assert_eq!(parse_size(b"999999999"), Some(999_999_999));
        for bad in [&b""[..], b"1000000000", b"-1", b"+1", b" 1", b"1x", b"0x1"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
