//! A route connection's read side without IO: the client [`crate::proto::Reader`]'s carry
//! logic (shared with it: `proto::reader`'s carry steps) driving the route parser. Operations
//! lying whole in the input are parsed in place (a plain RMSG by
//! [`RouteParser::parse_rmsg`], anything else by [`RouteParser::parse`]); only the start of an
//! operation the input cuts off is copied into the carry buffer, and the next input completes
//! it first.
//!
//! A separate type rather than the client reader made generic: the client `feed` is the
//! server's hottest loop (its `parse_pub` fast path inlined into the shard's `publish`), and it
//! stays exactly as it was; what is shared is what runs once per carried operation.
//!
//! Must not touch: sockets, the shard, the subject table.

use super::parser::{RouteOp, RouteParser, RouteStep, RoutedMessage};
use crate::proto::error::RouteError;
use crate::proto::reader::{gather_carry, recycle_carry, reserve_carry, start_carry, Flow};

/// How a [`RouteReader::feed`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFed {
    /// Everything was handled or carried.
    Done,
    /// The handler paused: the last `left` bytes of the input were not parsed. Feed them
    /// first when the connection resumes.
    Paused { left: usize },
    /// The handler stopped: the rest was dropped.
    Stopped,
    /// Bad input: send `error.wire()` if any and close with `error.close_reason()`. Nothing
    /// after it is parsed.
    Error(RouteError),
}

/// What a route reader hands its operations to.
pub trait RouteHandler {
    /// Any operation, `used` bytes long. `parser` is the connection's: the handler changes it
    /// as the handshake goes (`awaiting_connect` after CONNECT, `headers`, `accounts`,
    /// `leaf_unsub_origin` after INFO), and the change applies to the rest of the same input.
    fn op(&mut self, op: RouteOp<'_>, used: usize, parser: &mut RouteParser) -> Flow;

    /// A plain RMSG the fast path parsed in place (`RouteParser::parse_rmsg`: no headers, no
    /// queues, no origin). By default handed to `op` as `RouteOp::Message`; a handler may
    /// take it directly (and mark it `#[inline(always)]`) to keep it in registers.
    #[inline(always)]
    fn message(
        &mut self,
        message: RoutedMessage<'_>,
        used: usize,
        parser: &mut RouteParser,
    ) -> Flow {
        self.op(RouteOp::Message(message), used, parser)
    }
}

/// One route connection's parser settings and carry buffer.
#[derive(Debug, Clone)]
pub struct RouteReader {
    /// The settings; the handler may change them (see [`RouteHandler::op`]).
    pub parser: RouteParser,
    /// The start of an operation that did not fit in the last input.
    carry: Vec<u8>,
    /// Total length of the carried operation, once its control line is known.
    carry_needed: Option<usize>,
}

impl RouteReader {
    pub fn new(parser: RouteParser) -> RouteReader {
        RouteReader {
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
    /// each operation to `handler`. What is left of an unfinished operation is carried.
    ///
    /// Routes have no payload limit: a carried RMSG reserves the size its line announces
    /// (up to 999,999,999 bytes), as nats-server allocates it.
    #[inline]
    pub fn feed(&mut self, mut input: &[u8], handler: &mut impl RouteHandler) -> RouteFed {
        if !self.carry.is_empty() {
            if let Some(fed) = self.complete_carry(&mut input, handler) {
                return fed;
            }
        }
        while !input.is_empty() {
            let flow = if let Some((message, used)) = self.parser.parse_rmsg(input) {
                input = &input[used..];
                handler.message(message, used, &mut self.parser)
            } else {
                match self.parser.parse(input) {
                    RouteStep::Op(op, used) => {
                        input = &input[used..];
                        handler.op(op, used, &mut self.parser)
                    }
                    RouteStep::Pending { needed } => {
                        self.carry_needed = needed;
                        start_carry(&mut self.carry, needed, input);
                        return RouteFed::Done;
                    }
                    RouteStep::Error(error) => return RouteFed::Error(error),
                }
            };
            if let Some(fed) = after(flow, input) {
                return fed;
            }
        }
        RouteFed::Done
    }

    /// Completes the carried operation with the start of `input` (advancing it) and hands it
    /// over. None when parsing goes on in place; Some when this feed is over.
    #[inline(never)]
    fn complete_carry(
        &mut self,
        input: &mut &[u8],
        handler: &mut impl RouteHandler,
    ) -> Option<RouteFed> {
        let mut carry = std::mem::take(&mut self.carry);
        let flow = loop {
            if !gather_carry(&mut carry, self.carry_needed, input) {
                self.carry = carry;
                return Some(RouteFed::Done);
            }
            match self.parser.parse(&carry) {
                RouteStep::Op(op, used) => {
                    debug_assert_eq!(used, carry.len(), "a carried op ends the carry");
                    self.carry_needed = None;
                    break handler.op(op, used, &mut self.parser);
                }
                RouteStep::Pending { needed } => {
                    self.carry_needed = needed;
                    reserve_carry(&mut carry, needed);
                    if input.is_empty() {
                        self.carry = carry;
                        return Some(RouteFed::Done);
                    }
                }
                RouteStep::Error(error) => return Some(RouteFed::Error(error)),
            }
        };
        recycle_carry(&mut self.carry, carry);
        after(flow, input)
    }
}

/// What the handler's answer means for the feed, with `input` the bytes not parsed yet: None
/// to go on.
#[inline(always)]
fn after(flow: Flow, input: &[u8]) -> Option<RouteFed> {
    match flow {
        Flow::Continue => None,
        Flow::Pause if input.is_empty() => Some(RouteFed::Done),
        Flow::Pause => Some(RouteFed::Paused { left: input.len() }),
        Flow::Stop => Some(RouteFed::Stopped),
    }
}
