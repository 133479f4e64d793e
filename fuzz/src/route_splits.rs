//! `route_splits`: the route parser gives the same operations whatever the read boundaries.
//!
//! Input layout:
//! - byte 0, the settings: bit 0 `headers`, bit 1 a small control line limit
//!   ([`CONTROL_LINE_SMALL_BYTES`] instead of the route default 64 KiB), bit 2 `accounts`
//!   (legacy/pooled) rather than a dedicated-account connection, bit 3 `leaf_unsub_origin`,
//!   bits 4..=6 the number of split points (0-7), bit 7 pause after every operation;
//! - then one little-endian `u16` per split point, taken modulo (stream length + 1);
//! - the rest is the byte stream a route peer sends.
//!
//! As `parser_splits` for clients: the stream is parsed whole (`RouteParser::parse`, advance by
//! what each op used) and split (`proto::route::RouteReader`, one chunk after the other, the
//! way a route connection reads). Checked: no panic; every op used 1..=input bytes; every
//! `Pending { needed: Some(n) }` has n greater than the input; `RouteParser::parse_rmsg` (the
//! fast path) returns exactly the RMSG `parse` returns (same slices) or None, and takes every
//! canonical plain RMSG; the fast path's `message` gets only plain messages; a pause leaves a
//! suffix; the two runs give the same operations, then the same error or the same leftover.
//! The one allowed difference is the client parser's documented one: an incomplete op in a
//! state nats-server keeps no bytes for, longer than the limit, is `MaxControlLine` in the
//! split run only ([`unbuffered_state`]).

use natsring::proto::route::{
    RouteError, RouteFed, RouteHandler, RouteOp, RouteParser, RouteReader, RouteStep, RoutedMessage,
};
use natsring::proto::Flow;

use crate::Cursor;

/// Control line limit when settings bit 1 is set: small, so the fuzzer reaches it.
pub const CONTROL_LINE_SMALL_BYTES: u32 = 32;
/// nats-server's default client limit (the route limit is 16 x).
const CONTROL_LINE_DEFAULT_BYTES: u32 = 4096;

/// What one parse run saw, in order; a run ends with one `Error`, `UnbufferedTooLong` or `End`.
/// Operations are kept as their `Debug` text, which owns the bytes and shows every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Op { op: String, used: usize },
    Error(RouteError),
    UnbufferedTooLong,
    End { leftover: usize },
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let settings = cursor.byte();
    let split_count = usize::from((settings >> 4) & 0b111);
    let split_seeds: Vec<u16> = (0..split_count).map(|_| cursor.u16()).collect();
    let stream = cursor.rest();

    let mut parser = RouteParser::new(CONTROL_LINE_DEFAULT_BYTES);
    if settings & 0b10 != 0 {
        parser.max_control_line = CONTROL_LINE_SMALL_BYTES;
    }
    parser.headers = settings & 0b1 != 0;
    parser.accounts = settings & 0b100 != 0;
    parser.leaf_unsub_origin = settings & 0b1000 != 0;
    let pause = settings & 0b1000_0000 != 0;

    let mut splits: Vec<usize> = split_seeds
        .iter()
        .map(|&seed| usize::from(seed) % (stream.len() + 1))
        .collect();
    splits.sort_unstable();

    let whole = parse_whole(&parser, stream);
    let split = parse_split(&parser, stream, &splits, pause);
    let same = whole.iter().zip(&split).take_while(|(a, b)| a == b).count();
    if split.len() == same + 1 && split[same] == Event::UnbufferedTooLong {
        return;
    }
    assert!(
        whole == split,
        "split parse differs from whole parse after {same} equal events\n\
         stream ({} bytes): {:?}\nsplits: {splits:?}\nwhole: {:?}\nsplit: {:?}",
        stream.len(),
        String::from_utf8_lossy(stream),
        &whole[same..],
        &split[same..],
    );
}

/// Parses `stream` from one buffer.
fn parse_whole(parser: &RouteParser, stream: &[u8]) -> Vec<Event> {
    assert_eq!(parser.parse(&[]), RouteStep::Pending { needed: None });
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let step = parser.parse(rest);
        check_fast_rmsg(parser, rest, &step);
        match step {
            RouteStep::Op(op, used) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                events.push(Event::Op {
                    op: format!("{op:?}"),
                    used,
                });
                rest = &rest[used..];
            }
            RouteStep::Pending { needed } => {
                if let Some(needed) = needed {
                    assert!(needed > rest.len(), "needs {needed}, has {}", rest.len());
                }
                events.push(Event::End {
                    leftover: rest.len(),
                });
                return events;
            }
            RouteStep::Error(error) => {
                events.push(Event::Error(error));
                return events;
            }
        }
    }
    events.push(Event::End { leftover: 0 });
    events
}

/// Records what a `RouteReader` hands over.
struct Recorder {
    events: Vec<Event>,
    used: usize,
    pause: bool,
}

impl Recorder {
    fn record(&mut self, op: &RouteOp<'_>, used: usize) -> Flow {
        assert!(used > 0, "an op of no bytes");
        self.used += used;
        self.events.push(Event::Op {
            op: format!("{op:?}"),
            used,
        });
        if self.pause {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl RouteHandler for Recorder {
    fn op(&mut self, op: RouteOp<'_>, used: usize, _: &mut RouteParser) -> Flow {
        self.record(&op, used)
    }

    fn message(&mut self, message: RoutedMessage<'_>, used: usize, _: &mut RouteParser) -> Flow {
        assert!(
            message.origin.is_none()
                && message.message.headers.is_none()
                && message.queues.is_empty(),
            "the fast path gave more than a plain RMSG"
        );
        self.record(&RouteOp::Message(message), used)
    }
}

/// Parses `stream` as a route connection does when its reads end at `splits`.
fn parse_split(parser: &RouteParser, stream: &[u8], splits: &[usize], pause: bool) -> Vec<Event> {
    let mut reader = RouteReader::new(parser.clone());
    let mut recorder = Recorder {
        events: Vec::new(),
        used: 0,
        pause,
    };
    let mut chunk_start = 0;
    for chunk_end in splits.iter().copied().chain([stream.len()]) {
        let mut input = &stream[chunk_start..chunk_end];
        chunk_start = chunk_end;
        loop {
            match reader.feed(input, &mut recorder) {
                RouteFed::Done => break,
                RouteFed::Paused { left } => {
                    assert!(pause, "paused without being asked");
                    assert!(left > 0 && left < input.len(), "paused with {left} left");
                    input = &input[input.len() - left..];
                }
                RouteFed::Stopped => unreachable!("the recorder never stops"),
                RouteFed::Error(error) => {
                    let pending = &stream[recorder.used..chunk_end];
                    let documented = error == RouteError::MaxControlLine
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
        recorder.used + reader.carried_bytes(),
        stream.len(),
        "the ops and the carry account for the stream"
    );
    let mut events = recorder.events;
    events.push(Event::End {
        leftover: reader.carried_bytes(),
    });
    events
}

/// `parse_rmsg` returns exactly the plain RMSG `parse` returns, at the same addresses, or
/// None; it takes every canonical one (one space between fields, `\r\n`, plain decimal size).
fn check_fast_rmsg(parser: &RouteParser, input: &[u8], step: &RouteStep<'_>) {
    let fast = parser.parse_rmsg(input);
    let expected = match step {
        RouteStep::Op(RouteOp::Message(message), used)
            if message.origin.is_none()
                && message.message.headers.is_none()
                && message.queues.is_empty() =>
        {
            Some((*message, *used))
        }
        _ => None,
    };
    match (&fast, &expected) {
        (None, None) => {}
        (Some((a, a_used)), Some((b, b_used))) => {
            assert!(
                a == b
                    && a_used == b_used
                    && a.message.subject.as_ptr() == b.message.subject.as_ptr()
                    && a.message.payload.as_ptr() == b.message.payload.as_ptr(),
                "parse_rmsg and parse disagree on {:?}",
                String::from_utf8_lossy(input)
            );
        }
        (None, Some((message, used))) => assert!(
            !is_canonical_rmsg(input, message, *used),
            "a canonical RMSG took the long way: {:?}",
            String::from_utf8_lossy(input)
        ),
        (Some(_), None) => panic!(
            "parse_rmsg took what parse does not give as a plain RMSG: {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn is_canonical_rmsg(input: &[u8], found: &RoutedMessage<'_>, used: usize) -> bool {
    let fields = [
        found.account,
        Some(found.message.subject),
        found.message.reply,
    ];
    let mut canonical = input[..4].to_vec();
    for field in fields.into_iter().flatten() {
        if field
            .iter()
            .any(|&byte| matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return false;
        }
        canonical.push(b' ');
        canonical.extend_from_slice(field);
    }
    canonical.push(b' ');
    canonical.extend_from_slice(found.message.payload.len().to_string().as_bytes());
    canonical.extend_from_slice(b"\r\n");
    canonical.extend_from_slice(found.message.payload);
    canonical.extend_from_slice(b"\r\n");
    input[..used] == canonical[..]
}

/// True when `pending` (an incomplete op) is in a state nats-server keeps no bytes for: a whole
/// op name followed by blanks only, or `PING`/`PONG`/`+OK` followed by anything without `\n`.
pub fn unbuffered_state(pending: &[u8]) -> bool {
    const NAMES_WITH_ARGUMENTS: [&[u8]; 14] = [
        b"rs+", b"rs-", b"ls+", b"ls-", b"rmsg", b"lmsg", b"hmsg", b"pub", b"hpub", b"sub",
        b"unsub", b"connect", b"info", b"-err",
    ];
    const NAMES_EXACT: [&[u8]; 4] = [b"A+", b"a+", b"A-", b"a-"];
    const NAMES_WITHOUT_ARGUMENTS: [&[u8]; 3] = [b"ping", b"pong", b"+ok"];
    let starts_with = |name: &[u8], exact: bool| {
        pending.len() >= name.len()
            && if exact {
                pending[..name.len()] == *name
            } else {
                pending[..name.len()].eq_ignore_ascii_case(name)
            }
    };
    let blanks_after = |name: &[u8]| {
        pending[name.len()..]
            .iter()
            .all(|&byte| byte == b' ' || byte == b'\t')
    };
    let account_op = [&b"Au"[..], b"au"]
        .iter()
        .chain(&NAMES_EXACT)
        .any(|name| starts_with(name, true) && blanks_after(name));
    account_op
        || NAMES_WITH_ARGUMENTS
            .iter()
            .any(|name| starts_with(name, false) && blanks_after(name))
        || NAMES_WITHOUT_ARGUMENTS
            .iter()
            .any(|name| starts_with(name, false) && !pending.contains(&b'\n'))
}
