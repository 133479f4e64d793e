//! `parser_splits`: the parser gives the same operations whatever the read boundaries.
//!
//! Input layout:
//! - byte 0, the settings: bit 0 `headers` (HPUB allowed), bit 1 a small control line limit
//!   ([`CONTROL_LINE_SMALL_BYTES`] instead of nats-server's 4096), bit 2 a small payload limit
//!   ([`PAYLOAD_SMALL_BYTES`] instead of 1 MiB), bits 3..=5 the number of split points (0-7),
//!   bit 6 pause after every operation (the split run's handler answers `Flow::Pause` and the
//!   driver feeds the bytes left over again, as a connection does when it resumes);
//! - then one little-endian `u16` per split point, taken modulo (stream length + 1);
//! - the rest is the byte stream a client sends.
//!
//! The stream is parsed twice. Whole: one buffer, `Parser::parse`, advance by `consumed`, until
//! it is empty, pending or an error. Split: exactly the way a connection reads, by
//! `proto::Reader` (the type the shard feeds every receive buffer to: fast path, parsing in
//! place, carrying a partial operation), one chunk after the other. Checked:
//! - nothing panics (debug assertions are on under `cargo fuzz`);
//! - every `Op` consumed at least one byte and no more than it was given;
//! - every `Pending { needed: Some(n) }` has `n` greater than the bytes it was given;
//! - `Parser::parse_pub` (the receive loop's fast path) returns the same `PUB` as `parse`, at
//!   the same addresses, `None` whenever `parse` returns anything else, and takes every
//!   canonical `PUB` (it may leave unusual ones to `parse`);
//! - the fast path's `publish` gets only `PUB`s without headers;
//! - a pause leaves a suffix of the input (never more than it was given);
//! - the two runs give the same events: the same operations (compared as owned data) with the
//!   same lengths, then the same error, or the same number of bytes left over (the reader's
//!   carry).
//!
//! One difference is allowed, the one `src/proto/parser.rs` documents on purpose: nats-server
//! keeps nothing for blanks after an op name or for the rest of a `PING`/`PONG`/`+OK` line, so it
//! accepts any number of them; a stateless parser must carry them, so an *incomplete* op in one
//! of those states longer than `max_control_line` is `MaxControlLine`, where the whole stream
//! (whose line is complete) may parse. The split run may end with that error exactly when the
//! pending bytes are in such a state ([`unbuffered_state`]); events before it must still match.

use natsring::proto::{Fed, Flow, Handler, Message, Op, Parser, Reader, ServerError, Step};

use crate::Cursor;

/// Control line limit when settings bit 1 is set: small, so the fuzzer reaches it.
pub const CONTROL_LINE_SMALL_BYTES: u32 = 32;
/// Payload limit when settings bit 2 is set.
pub const PAYLOAD_SMALL_BYTES: u32 = 64;
/// nats-server's defaults.
const CONTROL_LINE_DEFAULT_BYTES: u32 = 4096;
const PAYLOAD_DEFAULT_BYTES: u32 = 1024 * 1024;

/// An [`Op`] that owns its bytes, so operations from different buffers compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedOp {
    Connect {
        json: Vec<u8>,
    },
    Pub {
        subject: Vec<u8>,
        reply: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Hpub {
        subject: Vec<u8>,
        reply: Option<Vec<u8>>,
        headers: Vec<u8>,
        payload: Vec<u8>,
    },
    Sub {
        subject: Vec<u8>,
        queue: Option<Vec<u8>>,
        sid: Vec<u8>,
    },
    Unsub {
        sid: Vec<u8>,
        max: Option<u64>,
    },
    Ping,
    Pong,
    Ok,
    Info,
}

impl From<&Op<'_>> for OwnedOp {
    fn from(op: &Op<'_>) -> OwnedOp {
        let owned = |bytes: &[u8]| bytes.to_vec();
        match *op {
            Op::Connect { json } => OwnedOp::Connect { json: owned(json) },
            Op::Pub(Message {
                subject,
                reply,
                headers: None,
                payload,
            }) => OwnedOp::Pub {
                subject: owned(subject),
                reply: reply.map(owned),
                payload: owned(payload),
            },
            Op::Pub(Message {
                subject,
                reply,
                headers: Some(headers),
                payload,
            }) => OwnedOp::Hpub {
                subject: owned(subject),
                reply: reply.map(owned),
                headers: owned(headers),
                payload: owned(payload),
            },
            Op::Sub {
                subject,
                queue,
                sid,
            } => OwnedOp::Sub {
                subject: owned(subject),
                queue: queue.map(owned),
                sid: owned(sid),
            },
            Op::Unsub { sid, max } => OwnedOp::Unsub {
                sid: owned(sid),
                max,
            },
            Op::Ping => OwnedOp::Ping,
            Op::Pong => OwnedOp::Pong,
            Op::Ok => OwnedOp::Ok,
            Op::Info => OwnedOp::Info,
        }
    }
}

/// What one parse run saw, in order. A run ends with exactly one `Error`, `UnbufferedTooLong`
/// or `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Op {
        op: OwnedOp,
        consumed: usize,
    },
    Error(ServerError),
    /// `MaxControlLine` on pending bytes in a state nats-server does not buffer (split runs
    /// only; see the module docs).
    UnbufferedTooLong,
    /// The stream ran out; `leftover` bytes were pending (0 when it ended on a boundary).
    End {
        leftover: usize,
    },
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let settings = cursor.byte();
    let split_count = usize::from((settings >> 3) & 0b111);
    let split_seeds: Vec<u16> = (0..split_count).map(|_| cursor.u16()).collect();
    let stream = cursor.rest();

    let mut parser = Parser::new(
        if settings & 0b100 != 0 {
            PAYLOAD_SMALL_BYTES
        } else {
            PAYLOAD_DEFAULT_BYTES
        },
        if settings & 0b10 != 0 {
            CONTROL_LINE_SMALL_BYTES
        } else {
            CONTROL_LINE_DEFAULT_BYTES
        },
    );
    parser.headers = settings & 0b1 != 0;

    let mut splits: Vec<usize> = split_seeds
        .iter()
        .map(|&seed| usize::from(seed) % (stream.len() + 1))
        .collect();
    splits.sort_unstable();

    let pause = settings & 0b100_0000 != 0;
    let whole = parse_whole(&parser, stream);
    let split = parse_split(&parser, stream, &splits, pause);
    let same = whole.iter().zip(&split).take_while(|(a, b)| a == b).count();
    if split.len() == same + 1 && split[same] == Event::UnbufferedTooLong {
        return; // the documented difference, after equal events
    }
    if whole != split {
        panic!(
            "split parse differs from whole parse after {same} equal events\n\
             stream ({} bytes): {:?}\nsplits: {splits:?}\nwhole: {:?}\nsplit: {:?}",
            stream.len(),
            String::from_utf8_lossy(stream),
            &whole[same..],
            &split[same..],
        );
    }
}

/// Parses `stream` from one buffer.
pub fn parse_whole(parser: &Parser, stream: &[u8]) -> Vec<Event> {
    assert_eq!(parser.parse(&[]), Step::Pending { needed: None });
    let mut events = Vec::new();
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            events.push(Event::End { leftover: 0 });
            return events;
        }
        match step(parser, rest) {
            Ok(Some(event)) => {
                let Event::Op { consumed, .. } = event else {
                    unreachable!("step returns ops only")
                };
                rest = &rest[consumed..];
                events.push(event);
            }
            Ok(None) => {
                events.push(Event::End {
                    leftover: rest.len(),
                });
                return events;
            }
            Err(error) => {
                events.push(Event::Error(error));
                return events;
            }
        }
    }
}

/// Records what a `Reader` hands over (also the TLS hand-over target's parser sink).
pub struct Recorder {
    pub events: Vec<Event>,
    /// Bytes of the stream the recorded operations took.
    pub consumed: usize,
    /// Every operation pauses the connection.
    pause: bool,
}

impl Recorder {
    pub fn new(pause: bool) -> Recorder {
        Recorder {
            events: Vec::new(),
            consumed: 0,
            pause,
        }
    }

    fn record(&mut self, op: &Op<'_>, used: usize) -> Flow {
        assert!(used > 0, "an op of no bytes");
        self.consumed += used;
        self.events.push(Event::Op {
            op: OwnedOp::from(op),
            consumed: used,
        });
        if self.pause {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Handler for Recorder {
    fn publish(&mut self, message: Message<'_>, used: usize, _: &mut Parser) -> Flow {
        assert!(message.headers.is_none(), "the fast path gave headers");
        self.record(&Op::Pub(message), used)
    }

    fn op(&mut self, op: Op<'_>, used: usize, _: &mut Parser) -> Flow {
        self.record(&op, used)
    }
}

/// Parses `stream` as a connection does when its reads end at `splits` (sorted offsets): each
/// chunk fed to one `Reader`, and with `pause`, every operation pauses the connection and the
/// bytes left are fed again.
pub fn parse_split(parser: &Parser, stream: &[u8], splits: &[usize], pause: bool) -> Vec<Event> {
    let mut reader = Reader::new(parser.clone());
    let mut recorder = Recorder::new(pause);
    let mut chunk_start = 0;
    let chunk_ends = splits.iter().copied().chain([stream.len()]);
    for chunk_end in chunk_ends {
        let mut input = &stream[chunk_start..chunk_end];
        chunk_start = chunk_end;
        loop {
            match reader.feed(input, &mut recorder) {
                Fed::Done => break,
                Fed::Paused { left } => {
                    assert!(pause, "paused without being asked");
                    assert!(
                        left > 0 && left < input.len(),
                        "paused with {left} of {} bytes left",
                        input.len()
                    );
                    input = &input[input.len() - left..];
                }
                Fed::Stopped => unreachable!("the recorder never stops"),
                Fed::Error(error) => {
                    // Everything up to the chunk's end was given, the recorded ops took
                    // `consumed`: the rest is what the reader held when it failed.
                    let pending = &stream[recorder.consumed..chunk_end];
                    let documented = error == ServerError::MaxControlLine
                        && pending.len() > parser.max_control_line as usize
                        && unbuffered_state(pending);
                    let mut events = recorder.events;
                    events.push(if documented {
                        Event::UnbufferedTooLong
                    } else {
                        Event::Error(error)
                    });
                    return events;
                }
            }
        }
    }
    assert_eq!(
        recorder.consumed + reader.carried_bytes(),
        stream.len(),
        "the ops and the carry account for the stream"
    );
    let mut events = recorder.events;
    events.push(Event::End {
        leftover: reader.carried_bytes(),
    });
    events
}

/// One parse of non-empty `input`: `Ok(Some(op event))`, `Ok(None)` when pending, or the error.
/// Checks the bounds every step promises, and that the server's PUB fast path agrees.
fn step(parser: &Parser, input: &[u8]) -> Result<Option<Event>, ServerError> {
    let step = parser.parse(input);
    check_fast_pub(parser, input, &step);
    match step {
        Step::Op(op, consumed) => {
            assert!(
                consumed > 0 && consumed <= input.len(),
                "Op consumed {consumed} of {} bytes",
                input.len()
            );
            Ok(Some(Event::Op {
                op: OwnedOp::from(&op),
                consumed,
            }))
        }
        Step::Pending { needed } => {
            if let Some(needed) = needed {
                assert!(
                    needed > input.len(),
                    "Pending needs {needed} but {} bytes are there",
                    input.len()
                );
            }
            Ok(None)
        }
        Step::Error(error) => Err(error),
    }
}

/// The receive loop tries [`Parser::parse_pub`] before [`Parser::parse`] on every op boundary:
/// whenever it returns a `PUB`, it must be exactly the one `parse` returns (same slices, same
/// length), and it must return `None` whenever `parse` returns anything else. It may leave an
/// unusual `PUB` (tabs, runs of blanks, a bare `\n`, `\r` inside a token) to `parse`, but it
/// must take every canonical one (not a correctness matter: a missed fast path is a silent
/// slowdown of the common case).
fn check_fast_pub(parser: &Parser, input: &[u8], step: &Step<'_>) {
    let fast = parser.parse_pub(input);
    let expected = match *step {
        Step::Op(Op::Pub(message @ Message { headers: None, .. }), used) => Some((message, used)),
        _ => None,
    };
    let same_slices = |a: &(Message<'_>, usize), b: &(Message<'_>, usize)| {
        let ((a, a_used), (b, b_used)) = (a, b);
        a == b
            && a_used == b_used
            && a.subject.as_ptr() == b.subject.as_ptr()
            && a.payload.as_ptr() == b.payload.as_ptr()
            && a.reply.map(<[u8]>::as_ptr) == b.reply.map(<[u8]>::as_ptr)
    };
    let agree = match (&fast, &expected) {
        (None, None) => true,
        (Some(fast), Some(expected)) => same_slices(fast, expected),
        (None, Some(expected)) => !is_canonical_pub(input, expected),
        (Some(_), None) => false,
    };
    assert!(
        agree,
        "parse_pub and parse disagree on {:?}\nparse_pub: {fast:?}\nparse: {step:?}",
        String::from_utf8_lossy(input)
    );
}

/// True when the `PUB` that `parse` found in `input` is written the common way: the op name,
/// one space before each argument, the size in plain decimal, `\r\n`, no CR or LF inside an
/// argument.
fn is_canonical_pub(input: &[u8], (found, used): &(Message<'_>, usize)) -> bool {
    let mut canonical = input[..3].to_vec();
    for argument in [Some(found.subject), found.reply].into_iter().flatten() {
        if argument.contains(&b'\r') || argument.contains(&b'\n') {
            return false;
        }
        canonical.push(b' ');
        canonical.extend_from_slice(argument);
    }
    canonical.push(b' ');
    canonical.extend_from_slice(found.payload.len().to_string().as_bytes());
    canonical.extend_from_slice(b"\r\n");
    canonical.extend_from_slice(found.payload);
    canonical.extend_from_slice(b"\r\n");
    input[..*used] == canonical[..]
}

/// True when `pending` (an incomplete op) is in a state nats-server keeps no bytes for: a whole
/// op name followed by blanks only (the argument has not started), or `PING`/`PONG`/`+OK`
/// followed by anything without a `\n`.
pub fn unbuffered_state(pending: &[u8]) -> bool {
    const NAMES_WITH_ARGUMENTS: [&[u8]; 8] = [
        b"pub", b"hpub", b"hmsg", b"sub", b"unsub", b"connect", b"info", b"-err",
    ];
    const NAMES_WITHOUT_ARGUMENTS: [&[u8]; 3] = [b"ping", b"pong", b"+ok"];
    let starts_with_name = |name: &[u8]| {
        pending.len() >= name.len() && pending[..name.len()].eq_ignore_ascii_case(name)
    };
    let blanks_after = |name: &[u8]| {
        pending[name.len()..]
            .iter()
            .all(|&byte| byte == b' ' || byte == b'\t')
    };
    NAMES_WITH_ARGUMENTS
        .iter()
        .any(|name| starts_with_name(name) && blanks_after(name))
        || NAMES_WITHOUT_ARGUMENTS
            .iter()
            .any(|name| starts_with_name(name) && !pending.contains(&b'\n'))
}
