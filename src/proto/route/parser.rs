//! The route protocol parser: one call, one operation, as [`crate::proto::Parser`] for
//! clients, and reading lines the same way (it shares that parser's line steps: op names
//! matched byte by byte case-insensitively, blanks after the name skipped, `memchr` for the
//! `\n`, the `\r` dropped, the limit checked on complete and incomplete lines; see
//! `proto::parser`'s module docs). What differs is the set of ops and their arguments, taken
//! from nats-server's `parser.go` for a `ROUTER` connection and `route.go`'s
//! `processRemoteSub`, `parseUnsubProto`, `processRoutedMsgArgs`,
//! `processRoutedHeaderMsgArgs` and `processRoutedOriginClusterMsgArgs`:
//!
//! | op | arguments (`[acc]` present exactly when `RouteParser::accounts`) | gives |
//! |---|---|---|
//! | `RS+` | `[acc] subj` or `[acc] subj queue weight` | `Interest { added: true }` |
//! | `RS-`, `UNSUB` | `[acc] subj [queue]` | `Interest { added: false }` |
//! | `LS+` | `origin [acc] subj [queue weight]` | `Interest { leaf: true }` |
//! | `LS-` | `[origin] [acc] subj [queue]` (origin iff `leaf_unsub_origin`) | `Interest { leaf: true }` |
//! | `RMSG` | `[acc] subj [reply \| + reply q.. \| '\|' q..] size` | `Message` |
//! | `HMSG` | `[acc] subj [reply \| + reply q.. \| '\|' q..] hdr total` | `Message` |
//! | `LMSG` | `origin [acc] subj [reply \| + reply q.. \| '\|' q..] hdr total` | `Message` |
//! | `INFO`, `CONNECT` | JSON, not decoded here (`route::json`) | `Info`, `Connect` |
//! | `PING`, `PONG`, `+OK` | anything up to `\n` | `Ping`, `Pong`, `Ok` |
//! | `-ERR` | text | `Err` (the runtime closes, "Parse Error") |
//! | `SUB`, `A+`, `A-`, `Au` | anything | `Ignored` (nats-server does nothing with them on a route) |
//! | `PUB`, `HPUB` | as from a client, no `max_payload` | `Ignored` (parsed, then dropped) |
//! | `MSG`, anything else | | `RouteError::UnknownOp` |
//!
//! Interest and routed-message arguments split on runs of blanks, `\r` and `\n` (Go's
//! `splitArg`); PUB/HPUB on blanks only (Go's `processPub`). Sizes are
//! `proto::parser::parse_size`'s (1 to 9 digits). A queue RS+/LS+ must carry a weight
//! (four fields with an account), but, as in Go, a weight that is not a size is not an
//! error: it reads as 0, and the runtime takes `weight.max(1)` as Go does.
//!
//! The receive loop first tries [`RouteParser::parse_rmsg`], the form that carries nearly all
//! of a cluster's messages (`RMSG [acc ]subj [reply ]size\r\n`, single blanks, a whole
//! payload); it gives the same answer as [`RouteParser::parse`] for every input it takes.
//!
//! Where this differs from nats-server, on purpose: the two differences the client parser
//! documents (bounded pending states; see `proto::parser`), and `LS-` with
//! `leaf_unsub_origin` but no fields at all, which crashes nats-server (index out of range)
//! and is a `ParseError` here.

use crate::limits;
use crate::proto::error::{RouteError, ServerError};
use crate::proto::message::Message;
use crate::proto::parser::{
    arg_start, body, byte_lower, control_line, expect_name, is_blank, parse_size, skip_line,
    split_blanks, split_blanks_and_newlines, Scan, Stop, ARG_BLANK, ARG_BYTE_CLASS, ARG_CR,
    ARG_TEXT, PAYLOAD_TRAILER_BYTES,
};

/// Parser settings of one route connection. Copy it, change it as the handshake goes (the
/// reader hands the handler a `&mut`, so a change applies to the rest of the same input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteParser {
    /// Longest control line arguments in bytes: the *route* limit, 16 x the server's
    /// `max_control_line` ([`RouteParser::new`] computes it).
    pub max_control_line: u32,
    /// True: every RS+/RS-/LS+/LS-/UNSUB/RMSG/HMSG/LMSG carries an account (legacy single
    /// route, pooled connections). False: a connection dedicated to one account (its INFO
    /// carried `route_account`); no account field.
    pub accounts: bool,
    /// True once both sides said `headers: true`: HPUB (dropped anyway) is allowed. HMSG is
    /// always parsed, as in nats-server.
    pub headers: bool,
    /// True when LS- carries the origin: nats-server reads it when the *peer* announced
    /// `lnocu` (or `ln`) in its INFO or CONNECT.
    pub leaf_unsub_origin: bool,
    /// True on an accepted route until its CONNECT has been handled: the first byte of any
    /// other op is `RouteError::AuthorizationViolation`, as in nats-server (`authSet`).
    pub awaiting_connect: bool,
}

impl RouteParser {
    /// A legacy-route parser (accounts in every op, no headers, no LS- origin, not awaiting a
    /// CONNECT) for a server whose client `max_control_line` is `client_max_control_line`.
    pub fn new(client_max_control_line: u32) -> RouteParser {
        RouteParser {
            max_control_line: route_control_line_limit(client_max_control_line),
            accounts: true,
            headers: false,
            leaf_unsub_origin: false,
            awaiting_connect: false,
        }
    }
}

/// A route's control line limit for a server `max_control_line` (16 x, saturating).
pub fn route_control_line_limit(client_max_control_line: u32) -> u32 {
    client_max_control_line.saturating_mul(limits::ROUTE_CONTROL_LINE_FACTOR)
}

/// One route operation, borrowing from the parser's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp<'a> {
    /// `INFO <json>`: decode with `route::parse_route_info`.
    Info {
        json: &'a [u8],
    },
    /// `CONNECT <json>`: decode with `route::parse_route_connect`.
    Connect {
        json: &'a [u8],
    },
    Ping,
    Pong,
    /// `+OK`: ignored by nats-server.
    Ok,
    /// `-ERR <text>` from the peer (`text` as sent, quotes included). nats-server logs
    /// "Route Error <text>" and closes with `CloseReason::ParseError`, sending nothing.
    Err {
        text: &'a [u8],
    },
    /// RS+/RS-/LS+/LS-, and UNSUB (which nats-server handles as RS-).
    Interest {
        /// RS+/LS+ (true) or RS-/LS-/UNSUB (false).
        added: bool,
        /// LS+/LS- (true): leaf interest, keyed apart from route interest (nats-server's `L`
        /// and `R` key prefixes).
        leaf: bool,
        /// The origin cluster of LS+, and of LS- when `leaf_unsub_origin`.
        leaf_origin: Option<&'a [u8]>,
        /// Present exactly when `RouteParser::accounts`.
        account: Option<&'a [u8]>,
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        /// A queue RS+/LS+'s weight (members of the group behind it), 0 if the field is not a
        /// size; 0 for plain interest and for removals. Use `weight.max(1)`, as nats-server.
        weight: u32,
    },
    /// RMSG, HMSG, LMSG.
    Message(RoutedMessage<'a>),
    /// What nats-server accepts on a route and does nothing with: SUB, A+/A-, PUB and HPUB
    /// (parsed, checked, dropped).
    Ignored,
}

/// A message from a route peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedMessage<'a> {
    /// The leaf origin cluster of an LMSG; None for RMSG/HMSG.
    pub origin: Option<&'a [u8]>,
    /// Present exactly when `RouteParser::accounts`.
    pub account: Option<&'a [u8]>,
    /// Subject, reply, payload; `headers` Some for HMSG/LMSG (possibly empty: LMSG always
    /// carries a header size), None for RMSG.
    pub message: Message<'a>,
    /// The queue groups the receiver must serve (the `+ reply q..` / `| q..` lists). Empty:
    /// deliver to plain subscriptions only.
    pub queues: Queues<'a>,
}

/// The queue group names of a routed message, in order: an iterator over the argument bytes
/// that hold them (names separated by runs of blanks, `\r`, `\n`). Copying it is free; it
/// allocates nothing.
#[derive(Clone, Copy, Default)]
pub struct Queues<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Queues<'a> {
    /// No queue groups.
    pub const NONE: Queues<'static> = Queues { rest: &[] };

    /// The names in `text`, separated by runs of blanks, `\r` and `\n`.
    pub fn new(text: &'a [u8]) -> Queues<'a> {
        Queues { rest: text }
    }

    /// True when there is no name left.
    pub fn is_empty(&self) -> bool {
        self.rest.iter().all(|&byte| is_separator(byte))
    }
}

impl<'a> Iterator for Queues<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&byte| !is_separator(byte))?;
        let rest = &self.rest[start..];
        let len = rest
            .iter()
            .position(|&byte| is_separator(byte))
            .unwrap_or(rest.len());
        self.rest = &rest[len..];
        Some(&rest[..len])
    }
}

/// The names, as text.
impl std::fmt::Debug for Queues<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries((*self).map(String::from_utf8_lossy))
            .finish()
    }
}

/// Two lists are equal when they name the same groups in the same order.
impl PartialEq for Queues<'_> {
    fn eq(&self, other: &Queues<'_>) -> bool {
        (*self).eq(*other)
    }
}

impl Eq for Queues<'_> {}

/// Go's `splitArg` separators.
fn is_separator(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// What one call to [`RouteParser::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteStep<'a> {
    /// One whole operation and the bytes it took (control line, payload and trailer).
    Op(RouteOp<'a>, usize),
    /// The input holds only the start of an operation; `needed` is its total length once
    /// known. Keep the bytes and call again with more.
    Pending { needed: Option<usize> },
    /// Bad input: send `error.wire()` if any, then close with `error.close_reason()`.
    Error(RouteError),
}

/// The arguments of RMSG/HMSG/LMSG.
struct RoutedArgs<'a> {
    origin: Option<&'a [u8]>,
    account: Option<&'a [u8]>,
    subject: &'a [u8],
    reply: Option<&'a [u8]>,
    queues: Queues<'a>,
    /// HMSG/LMSG only.
    headers_size: usize,
    total_size: usize,
}

impl RouteParser {
    /// The common case on its own: a whole, valid `RMSG [acc ]subj [reply ]size\r\n<payload>\r\n`
    /// at the start of `input` (arguments separated by blanks, `\r\n` right after the last) as
    /// (message, bytes used). None for anything else, which [`RouteParser::parse`] handles
    /// (with the same answer for every input this takes).
    #[inline(always)]
    pub fn parse_rmsg<'a>(&self, input: &'a [u8]) -> Option<(RoutedMessage<'a>, usize)> {
        let head = input.get(..5)?;
        let name_matches = head[0] | 0x20 == b'r'
            && head[1] | 0x20 == b'm'
            && head[2] | 0x20 == b's'
            && head[3] | 0x20 == b'g'
            && is_blank(head[4]);
        if !name_matches || self.awaiting_connect {
            return None;
        }
        let mut index = 5;
        while index < input.len() && is_blank(input[index]) {
            index += 1;
        }
        let arg_start = index;
        let mut tokens = [(0, 0); 4];
        let mut count = 0;
        loop {
            let start = index;
            while index < input.len() && ARG_BYTE_CLASS[usize::from(input[index])] == ARG_TEXT {
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
        let (account, subject, reply, size) = match (self.accounts, count) {
            (true, 3) => (Some(tokens[0]), tokens[1], None, tokens[2]),
            (true, 4) => (Some(tokens[0]), tokens[1], Some(tokens[2]), tokens[3]),
            (false, 2) => (None, tokens[0], None, tokens[1]),
            (false, 3) => (None, tokens[0], Some(tokens[1]), tokens[2]),
            _ => return None,
        };
        let size = parse_size(&input[size.0..size.1])?;
        let body_start = index + 2;
        let end = body_start + size;
        if input.get(end..end + PAYLOAD_TRAILER_BYTES)? != b"\r\n" {
            return None;
        }
        let slice = |(start, end): (usize, usize)| &input[start..end];
        let message = RoutedMessage {
            origin: None,
            account: account.map(slice),
            message: Message {
                subject: slice(subject),
                reply: reply.map(slice),
                headers: None,
                payload: &input[body_start..end],
            },
            queues: Queues::NONE,
        };
        Some((message, end + PAYLOAD_TRAILER_BYTES))
    }

    /// Parses the first operation in `input` (which starts at an op boundary).
    /// Empty input -> `Pending { needed: None }`.
    pub fn parse<'a>(&self, input: &'a [u8]) -> RouteStep<'a> {
        match self.scan(input) {
            Ok((op, consumed)) => {
                debug_assert!(
                    consumed > 0 && consumed <= input.len(),
                    "consumed in bounds"
                );
                RouteStep::Op(op, consumed)
            }
            Err(Stop::Pending(needed)) => {
                debug_assert!(
                    needed.is_none_or(|n| n > input.len()),
                    "pending means short"
                );
                RouteStep::Pending { needed }
            }
            Err(Stop::Bad(error)) => RouteStep::Error(route_error(error)),
        }
    }

    fn limit(&self) -> usize {
        self.max_control_line as usize
    }

    fn scan<'a>(&self, input: &'a [u8]) -> Scan<(RouteOp<'a>, usize)> {
        let Some(&first) = input.first() else {
            return Err(Stop::Pending(None));
        };
        let first = first.to_ascii_lowercase();
        if self.awaiting_connect && first != b'c' {
            return Err(Stop::Bad(ServerError::AuthorizationViolation));
        }
        match first {
            b'p' => match byte_lower(input, 1)? {
                b'u' => self.scan_pub(input),
                b'i' => self.scan_bare(input, RouteOp::Ping),
                b'o' => self.scan_bare(input, RouteOp::Pong),
                _ => Err(Stop::Bad(ServerError::UnknownOp)),
            },
            b'h' => match byte_lower(input, 1)? {
                b'p' => self.scan_hpub(input),
                b'm' => self.scan_routed(input, false, true),
                _ => Err(Stop::Bad(ServerError::UnknownOp)),
            },
            b'r' | b'l' => {
                let leaf = first == b'l';
                match byte_lower(input, 1)? {
                    b's' => self.scan_interest(input, leaf),
                    b'm' => self.scan_routed(input, leaf, leaf),
                    _ => Err(Stop::Bad(ServerError::UnknownOp)),
                }
            }
            b's' => {
                // SUB: nats-server's SUB_ARG does nothing for a route.
                let end_of_name = expect_name(input, 1, b"ub")?;
                let (_, consumed) = self.line(input, end_of_name, true)?;
                Ok((RouteOp::Ignored, consumed))
            }
            b'u' => {
                // UNSUB: nats-server's UNSUB_ARG calls processRemoteUnsub, as for RS-.
                let end_of_name = expect_name(input, 1, b"nsub")?;
                let (arg, consumed) = self.line(input, end_of_name, true)?;
                Ok((self.interest(arg, false, false)?, consumed))
            }
            b'a' => {
                // A+, A- and Au (lower-case u only, as parser.go): gateway ops, no-ops here.
                match input.get(1) {
                    None => return Err(Stop::Pending(None)),
                    Some(b'+' | b'-' | b'u') => {}
                    Some(_) => return Err(Stop::Bad(ServerError::UnknownOp)),
                }
                let (_, consumed) = self.line(input, 2, true)?;
                Ok((RouteOp::Ignored, consumed))
            }
            b'c' => {
                let end_of_name = expect_name(input, 1, b"onnect")?;
                let (json, consumed) = self.line(input, end_of_name, false)?;
                Ok((RouteOp::Connect { json }, consumed))
            }
            b'i' => {
                let end_of_name = expect_name(input, 1, b"nfo")?;
                let (json, consumed) = self.line(input, end_of_name, false)?;
                Ok((RouteOp::Info { json }, consumed))
            }
            b'+' => {
                let end_of_name = expect_name(input, 1, b"ok")?;
                Ok((RouteOp::Ok, skip_line(input, end_of_name, self.limit())?))
            }
            b'-' => {
                let end_of_name = expect_name(input, 1, b"err")?;
                let (text, consumed) = self.line(input, end_of_name, true)?;
                Ok((RouteOp::Err { text }, consumed))
            }
            _ => Err(Stop::Bad(ServerError::UnknownOp)),
        }
    }

    /// The argument of the control line whose op name ends at `end_of_name`, and the index
    /// after its `\n`.
    #[inline]
    fn line<'a>(
        &self,
        input: &'a [u8],
        end_of_name: usize,
        blank_required: bool,
    ) -> Scan<(&'a [u8], usize)> {
        let start = arg_start(input, end_of_name, blank_required, self.limit())?;
        control_line(input, start, self.limit())
    }

    /// PING / PONG: the name, then anything up to `\n`.
    fn scan_bare<'a>(&self, input: &'a [u8], op: RouteOp<'a>) -> Scan<(RouteOp<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"ng")?;
        Ok((op, skip_line(input, end_of_name, self.limit())?))
    }

    /// RS+ / RS- / LS+ / LS-.
    fn scan_interest<'a>(&self, input: &'a [u8], leaf: bool) -> Scan<(RouteOp<'a>, usize)> {
        let added = match input.get(2) {
            None => return Err(Stop::Pending(None)),
            Some(b'+') => true,
            Some(b'-') => false,
            Some(_) => return Err(Stop::Bad(ServerError::UnknownOp)),
        };
        let (arg, consumed) = self.line(input, 3, true)?;
        Ok((self.interest(arg, added, leaf)?, consumed))
    }

    /// The fields of an interest op (see the module docs' table).
    fn interest<'a>(&self, arg: &'a [u8], added: bool, leaf: bool) -> Scan<RouteOp<'a>> {
        const BAD: Stop = Stop::Bad(ServerError::ParseError);
        let has_origin = leaf && (added || self.leaf_unsub_origin);
        // origin, account, subject, queue, weight
        let mut tokens: [&[u8]; 5] = [&[]; 5];
        let count = split_blanks_and_newlines(arg, &mut tokens).ok_or(BAD)?;
        let subject_index = usize::from(has_origin) + usize::from(self.accounts);
        let (queue, weight) = match (added, count.checked_sub(subject_index)) {
            (_, Some(1)) => (None, 0),
            (true, Some(3)) => {
                let weight =
                    parse_size(tokens[subject_index + 2]).map_or(0, |weight| weight as u32);
                (Some(tokens[subject_index + 1]), weight)
            }
            (false, Some(2)) => (Some(tokens[subject_index + 1]), 0),
            _ => return Err(BAD),
        };
        Ok(RouteOp::Interest {
            added,
            leaf,
            leaf_origin: has_origin.then(|| tokens[0]),
            account: self.accounts.then(|| tokens[subject_index - 1]),
            subject: tokens[subject_index],
            queue,
            weight,
        })
    }

    /// RMSG (no origin, no headers), HMSG (headers), LMSG (origin and headers).
    fn scan_routed<'a>(
        &self,
        input: &'a [u8],
        has_origin: bool,
        has_headers: bool,
    ) -> Scan<(RouteOp<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"sg")?;
        let start = arg_start(input, end_of_name, true, self.limit())?;
        let (arg, body_start) = control_line(input, start, self.limit())?;
        let args = self
            .routed_args(arg, has_origin, has_headers)
            .ok_or(Stop::Bad(ServerError::ParseError))?;
        let (body, consumed) = body(input, body_start, args.total_size)?;
        let (headers, payload) = if has_headers {
            let (headers, payload) = body.split_at(args.headers_size);
            (Some(headers), payload)
        } else {
            (None, body)
        };
        let message = RoutedMessage {
            origin: args.origin,
            account: args.account,
            message: Message {
                subject: args.subject,
                reply: args.reply,
                headers,
                payload,
            },
            queues: args.queues,
        };
        Ok((RouteOp::Message(message), consumed))
    }

    /// `[origin] [acc] subj [reply | + reply q.. | '|' q..] [hdr] size`, as nats-server reads
    /// them: after the subject, one field is a reply, two or more start with a one-byte
    /// indicator (`+`: a reply and queues follow; `|`: queues follow). None where nats-server
    /// fails (`... Parse Error`, `Bad or Missing ...`, `Header Size larger then TotalSize`).
    fn routed_args<'a>(
        &self,
        arg: &'a [u8],
        has_origin: bool,
        has_headers: bool,
    ) -> Option<RoutedArgs<'a>> {
        let mut fields = Queues::new(arg);
        let origin = if has_origin {
            Some(fields.next()?)
        } else {
            None
        };
        let account = if self.accounts {
            Some(fields.next()?)
        } else {
            None
        };
        let subject = fields.next()?;
        let sizes = 1 + usize::from(has_headers);
        // Counting consumes a copy (`Queues` is `Copy`); `fields` stays after the subject.
        let after_subject = fields.count().checked_sub(sizes)?;
        let (reply, queues) = match after_subject {
            0 => (None, Queues::NONE),
            1 => (fields.next(), Queues::NONE),
            _ => {
                let (reply, queue_count) = match fields.next()? {
                    b"+" => (Some(fields.next()?), after_subject - 2),
                    b"|" => (None, after_subject - 1),
                    _ => return None,
                };
                let before = fields;
                for _ in 0..queue_count {
                    fields.next();
                }
                let taken = before.rest.len() - fields.rest.len();
                (reply, Queues::new(&before.rest[..taken]))
            }
        };
        let headers_size = if has_headers {
            parse_size(fields.next()?)?
        } else {
            0
        };
        let total_size = parse_size(fields.next()?)?;
        if headers_size > total_size {
            return None;
        }
        debug_assert!(fields.next().is_none(), "every field was read");
        Some(RoutedArgs {
            origin,
            account,
            subject,
            reply,
            queues,
            headers_size,
            total_size,
        })
    }

    /// PUB on a route: parsed as from a client (no payload limit), then dropped.
    fn scan_pub<'a>(&self, input: &'a [u8]) -> Scan<(RouteOp<'a>, usize)> {
        let end_of_name = expect_name(input, 2, b"b")?;
        let start = arg_start(input, end_of_name, true, self.limit())?;
        let (arg, body_start) = control_line(input, start, self.limit())?;
        let mut tokens: [&[u8]; 3] = [&[]; 3];
        let size = match split_blanks(arg, &mut tokens) {
            Some(2) => tokens[1],
            Some(3) => tokens[2],
            _ => return Err(Stop::Bad(ServerError::ParseError)),
        };
        let size = parse_size(size).ok_or(Stop::Bad(ServerError::ParseError))?;
        let (_, consumed) = body(input, body_start, size)?;
        Ok((RouteOp::Ignored, consumed))
    }

    /// HPUB on a route: as from a client (headers negotiated, no payload limit), dropped.
    fn scan_hpub<'a>(&self, input: &'a [u8]) -> Scan<(RouteOp<'a>, usize)> {
        const BAD: Stop = Stop::Bad(ServerError::ParseError);
        let end_of_name = expect_name(input, 2, b"ub")?;
        let start = arg_start(input, end_of_name, true, self.limit())?;
        let (arg, body_start) = control_line(input, start, self.limit())?;
        if !self.headers {
            return Err(BAD);
        }
        let mut tokens: [&[u8]; 4] = [&[]; 4];
        let (headers_size, total_size) = match split_blanks(arg, &mut tokens) {
            Some(3) => (tokens[1], tokens[2]),
            Some(4) => (tokens[2], tokens[3]),
            _ => return Err(BAD),
        };
        let headers_size = parse_size(headers_size).ok_or(BAD)?;
        let total_size = parse_size(total_size).ok_or(BAD)?;
        if headers_size > total_size {
            return Err(BAD);
        }
        let (_, consumed) = body(input, body_start, total_size)?;
        Ok((RouteOp::Ignored, consumed))
    }
}

/// The route error for what the shared line steps and this parser report.
fn route_error(error: ServerError) -> RouteError {
    match error {
        ServerError::UnknownOp => RouteError::UnknownOp,
        ServerError::ParseError => RouteError::ParseError,
        ServerError::MaxControlLine => RouteError::MaxControlLine,
        ServerError::AuthorizationViolation => RouteError::AuthorizationViolation,
        other => unreachable!("the route parser never reports {other:?}"),
    }
}
