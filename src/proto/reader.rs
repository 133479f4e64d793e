//! A connection's read side without IO: the bytes it receives, in whatever pieces they come,
//! turned into operations for a handler. This is the loop clients hit on every receive (the
//! shard feeds it each provided buffer), and the `parser_splits` fuzz target drives this very
//! type with random read boundaries and pauses.
//!
//! Zero copy where it is free: operations that lie whole inside the input are parsed in place
//! (a `PUB` by `Parser::parse_pub`, the fast path, anything else by `Parser::parse`). Only the
//! start of an operation that the input cuts off is copied, into the carry buffer; the next
//! input first completes that one operation (up to its announced length once the control line
//! is known, else up to the next `\n`), then goes back to parsing in place.
//!
//! The handler (`Handler`) gets the fast path's `PUB`s through `publish` and every other
//! operation through `op`, and says after each whether to go on (`Flow`): a paused connection
//! leaves the rest of the input unparsed (`Fed::Paused`, the caller keeps those bytes and feeds
//! them first when it resumes), a closed one drops it. A trait rather than a closure: the
//! shard's `publish` is `#[inline(always)]` into `feed`'s loop, which a closure cannot ask for
//! (a closure taking an `Op` was a call with the enum in memory, about 45 instructions a
//! message more, counted with scripts/callgrind.py).
//!
//! Must not touch: sockets, the shard, the subject table.

use memchr::memchr;

use super::error::ServerError;
use super::message::Message;
use super::parser::{Op, Parser, Step};
use crate::limits;

/// What the handler wants after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Parse on.
    Continue,
    /// Stop and leave the rest of the input for later (the connection was paused).
    Pause,
    /// Stop and drop the rest (the connection is closing).
    Stop,
}

/// How a `feed` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// Everything was handled or carried.
    Done,
    /// The handler paused: the last `left` bytes of the input were not parsed.
    Paused { left: usize },
    /// The handler stopped: the rest was dropped.
    Stopped,
    /// Bad input: the caller sends the error (it knows whether it closes). Nothing after it is
    /// parsed.
    Error(ServerError),
}

/// What a reader hands its operations to.
pub trait Handler {
    /// A `PUB` the fast path parsed in place (`Parser::parse_pub`: never headers), `used`
    /// bytes long.
    fn publish(&mut self, message: Message<'_>, used: usize, parser: &mut Parser) -> Flow;
    /// Any other operation, including a `PUB` or `HPUB` that took the long way (`Parser::parse`)
    /// or was completed from the carry; `used` is its whole length. `parser` is the
    /// connection's: CONNECT changes it, and the change applies to the rest of the same input.
    fn op(&mut self, op: Op<'_>, used: usize, parser: &mut Parser) -> Flow;
}

/// One connection's parser settings and carry buffer.
#[derive(Debug, Clone)]
pub struct Reader {
    /// Limits and whether HPUB is allowed; the handler may change them (CONNECT).
    pub parser: Parser,
    /// The start of an operation that did not fit in the last input.
    carry: Vec<u8>,
    /// Total length of the carried operation, once its control line is known.
    carry_needed: Option<usize>,
}

impl Default for Reader {
    /// A placeholder (no operation fits its zero limits), e.g. while a connection's reader is
    /// taken out to be fed.
    fn default() -> Reader {
        Reader::new(Parser::new(0, 0))
    }
}

impl Reader {
    pub fn new(parser: Parser) -> Reader {
        Reader {
            parser,
            carry: Vec::new(),
            carry_needed: None,
        }
    }

    /// Bytes carried for an operation not complete yet.
    pub fn carried_bytes(&self) -> usize {
        self.carry.len()
    }

    /// Handles `input`: completes a carried operation first, then parses in place, handing
    /// each operation to `handler`. What is left of an unfinished operation at the end is
    /// carried.
    #[inline]
    pub fn feed(&mut self, mut input: &[u8], handler: &mut impl Handler) -> Fed {
        if !self.carry.is_empty() {
            if let Some(fed) = self.complete_carry(&mut input, handler) {
                return fed;
            }
        }
        while !input.is_empty() {
            let flow = if let Some((message, used)) = self.parser.parse_pub(input) {
                input = &input[used..];
                handler.publish(message, used, &mut self.parser)
            } else {
                match self.parser.parse(input) {
                    Step::Op(op, used) => {
                        input = &input[used..];
                        handler.op(op, used, &mut self.parser)
                    }
                    Step::Pending { needed } => {
                        self.carry_needed = needed;
                        start_carry(&mut self.carry, needed, input);
                        return Fed::Done;
                    }
                    Step::Error(err) => return Fed::Error(err),
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Pause if input.is_empty() => return Fed::Done,
                Flow::Pause => return Fed::Paused { left: input.len() },
                Flow::Stop => return Fed::Stopped,
            }
        }
        Fed::Done
    }

    /// Completes the carried operation with the start of `input` (advancing it), and hands it
    /// over. None when parsing goes on in place; Some when this feed is over.
    #[inline(never)]
    fn complete_carry(&mut self, input: &mut &[u8], handler: &mut impl Handler) -> Option<Fed> {
        let mut carry = std::mem::take(&mut self.carry);
        let flow = loop {
            if !gather_carry(&mut carry, self.carry_needed, input) {
                self.carry = carry;
                return Some(Fed::Done);
            }
            match self.parser.parse(&carry) {
                Step::Op(op, used) => {
                    debug_assert_eq!(used, carry.len(), "a carried op ends the carry");
                    self.carry_needed = None;
                    break handler.op(op, used, &mut self.parser);
                }
                Step::Pending { needed } => {
                    self.carry_needed = needed;
                    reserve_carry(&mut carry, needed);
                    if input.is_empty() {
                        self.carry = carry;
                        return Some(Fed::Done);
                    }
                }
                Step::Error(err) => return Some(Fed::Error(err)),
            }
        };
        recycle_carry(&mut self.carry, carry);
        match flow {
            Flow::Continue => None,
            Flow::Pause if input.is_empty() => Some(Fed::Done),
            Flow::Pause => Some(Fed::Paused { left: input.len() }),
            Flow::Stop => Some(Fed::Stopped),
        }
    }
}

// The carry steps below are shared with the route reader (`proto::route::RouteReader`).

/// Starts carrying `input`, the start of an operation whose total length is `needed` if known.
#[inline]
pub(super) fn start_carry(carry: &mut Vec<u8>, needed: Option<usize>, input: &[u8]) {
    carry.reserve(needed.unwrap_or(0).max(input.len()));
    carry.extend_from_slice(input);
}

/// Moves the start of `input` that belongs to the carried operation into `carry`: up to its
/// `needed` total once known, else through the next `\n` (or all of it). False when there is
/// nothing to parse yet: the operation is short by more than its last byte (with only the last
/// byte missing the parser checks the `\r` before the final `\n`, and a wrong byte there is an
/// error at once, as in nats-server).
#[inline]
pub(super) fn gather_carry(carry: &mut Vec<u8>, needed: Option<usize>, input: &mut &[u8]) -> bool {
    match needed {
        Some(total) => {
            let take = (total - carry.len()).min(input.len());
            carry.extend_from_slice(&input[..take]);
            *input = &input[take..];
            carry.len() + 1 >= total
        }
        None => {
            match memchr(b'\n', input) {
                Some(end) => {
                    carry.extend_from_slice(&input[..=end]);
                    *input = &input[end + 1..];
                }
                None => {
                    carry.extend_from_slice(input);
                    *input = &[];
                }
            }
            true
        }
    }
}

/// Makes room for the whole carried operation once its length is known.
#[inline]
pub(super) fn reserve_carry(carry: &mut Vec<u8>, needed: Option<usize>) {
    if let Some(total) = needed {
        carry.reserve(total.saturating_sub(carry.len()));
    }
}

/// Puts the emptied `carry` back as `slot` (which is empty) for the next partial operation,
/// unless it grew large.
#[inline]
pub(super) fn recycle_carry(slot: &mut Vec<u8>, mut carry: Vec<u8>) {
    debug_assert!(slot.is_empty(), "the carry was taken out");
    carry.clear();
    if carry.capacity() <= limits::CARRY_IDLE_CAPACITY_BYTES_MAX {
        *slot = carry;
    }
}

/// For tests: a handler from a closure over each operation, its length, and whether it came by
/// the fast path.
#[cfg(test)]
struct Each<F>(F);

#[cfg(test)]
impl<F: FnMut(Op<'_>, usize, bool, &mut Parser) -> Flow> Handler for Each<F> {
    fn publish(&mut self, message: Message<'_>, used: usize, parser: &mut Parser) -> Flow {
        (self.0)(Op::Pub(message), used, true, parser)
    }
    fn op(&mut self, op: Op<'_>, used: usize, parser: &mut Parser) -> Flow {
        (self.0)(op, used, false, parser)
    }
}

/// For tests: the operations (as text) `reader` finds in `chunks`, fed one after the other.
#[cfg(test)]
fn ops_of(reader: &mut Reader, chunks: &[&[u8]]) -> (Vec<String>, Fed) {
    let mut ops = Vec::new();
    let mut fed = Fed::Done;
    for chunk in chunks {
        fed = reader.feed(
            chunk,
            &mut Each(|op: Op<'_>, used, _, _: &mut Parser| {
                ops.push(format!("{op:?}/{used}"));
                Flow::Continue
            }),
        );
        if fed != Fed::Done {
            break;
        }
    }
    (ops, fed)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Reader {
        Reader::new(Parser::new(1024 * 1024, 4096))
    }

    #[test]
    fn the_same_ops_whatever_the_cuts() {
        let stream: &[u8] =
            b"SUB a 1\r\nPUB a 5\r\nhello\r\nPING\r\nPUB a r 3\r\nabc\r\nUNSUB 1\r\n";
        let (whole, fed) = ops_of(&mut reader(), &[stream]);
        assert_eq!(fed, Fed::Done);
        assert_eq!(whole.len(), 5);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut r = reader();
                let (split, fed) = ops_of(&mut r, &[&stream[..a], &stream[a..b], &stream[b..]]);
                assert_eq!(fed, Fed::Done);
                assert_eq!(split, whole, "cut at {a} and {b}");
                assert_eq!(r.carried_bytes(), 0);
            }
        }
    }

    #[test]
    fn a_pause_leaves_the_rest_and_a_stop_drops_it() {
        let stream: &[u8] = b"PUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPING\r\n";
        let mut r = reader();
        let mut seen = 0;
        let fed = r.feed(
            stream,
            &mut Each(|_: Op<'_>, _, _, _: &mut Parser| {
                seen += 1;
                Flow::Pause
            }),
        );
        assert_eq!(seen, 1);
        assert_eq!(
            fed,
            Fed::Paused {
                left: stream.len() - 12
            }
        );
        let fed = r.feed(
            &stream[12..],
            &mut Each(|_: Op<'_>, _, _, _: &mut Parser| Flow::Stop),
        );
        assert_eq!(fed, Fed::Stopped);
        // A pause on the last op of the input leaves nothing.
        let fed = reader().feed(
            b"PING\r\n",
            &mut Each(|_: Op<'_>, _, _, _: &mut Parser| Flow::Pause),
        );
        assert_eq!(fed, Fed::Done);
    }

    /// A pause on the op completed from the carry leaves the rest of that input.
    #[test]
    fn a_pause_on_a_carried_op() {
        let mut r = reader();
        assert_eq!(
            r.feed(
                b"PUB a 3\r\nab",
                &mut Each(|_: Op<'_>, _, _, _: &mut Parser| Flow::Continue)
            ),
            Fed::Done
        );
        assert_eq!(r.carried_bytes(), 11);
        let fed = r.feed(
            b"c\r\nPING\r\n",
            &mut Each(|op: Op<'_>, used, fast: bool, _: &mut Parser| {
                assert!(matches!(op, Op::Pub(m) if m.payload == b"abc"));
                assert_eq!(used, 14);
                assert!(!fast, "a carried op is parsed by `parse`");
                Flow::Pause
            }),
        );
        assert_eq!(fed, Fed::Paused { left: 6 });
        assert_eq!(r.carried_bytes(), 0);
    }

    /// The handler may change the settings for what follows in the same input (CONNECT
    /// enabling headers, then an HPUB).
    #[test]
    fn settings_changed_by_the_handler_apply_at_once() {
        let mut r = reader();
        let mut ops = Vec::new();
        let fed = r.feed(
            b"CONNECT {\"headers\":true}\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            &mut Each(|op: Op<'_>, _, _, parser: &mut Parser| {
                if matches!(op, Op::Connect { .. }) {
                    parser.headers = true;
                }
                ops.push(format!("{op:?}"));
                Flow::Continue
            }),
        );
        assert_eq!(fed, Fed::Done, "{ops:?}");
        assert_eq!(ops.len(), 2);
    }

    /// A wrong byte where a carried payload's `\r\n` starts fails when it arrives, not when
    /// the op's last byte does (found by the parser_splits fuzz target).
    #[test]
    fn a_carried_payload_without_its_cr_fails_at_once() {
        let (ops, fed) = ops_of(&mut reader(), &[b"PUB a 1\r\n", b"x", b"X"]);
        assert!(ops.is_empty());
        assert_eq!(fed, Fed::Error(ServerError::UnknownOp));
        // And with the right byte it waits for the `\n`.
        let mut r = reader();
        let (ops, fed) = ops_of(&mut r, &[b"PUB a 1\r\n", b"x\r"]);
        assert!(ops.is_empty());
        assert_eq!((fed, r.carried_bytes()), (Fed::Done, 11));
        let (ops, fed) = ops_of(&mut r, &[b"\n"]);
        assert_eq!((ops.len(), fed), (1, Fed::Done));
    }

    #[test]
    fn an_error_ends_the_feed() {
        let (ops, fed) = ops_of(&mut reader(), &[b"PING\r\nFOO\r\nPING\r\n"]);
        assert_eq!(ops.len(), 1);
        assert_eq!(fed, Fed::Error(ServerError::UnknownOp));
    }
}
