//! The route (cluster) protocol, pure: parsing what a route peer sends, the reader that feeds
//! a route connection's bytes to a handler, and the writers for what natsring sends. No IO, no
//! shard, no subject table; behaviour is nats-server 2.15.1's as /work/shared/ROUTES.md
//! records it (§1 table, §4, §5, §7) and its `parser.go`/`route.go` implement it.
//!
//! How a route runtime uses it:
//! 1. Make a [`RouteReader`] per connection: `RouteReader::new(RouteParser::new(max_control_line))`
//!    (the server's client `max_control_line`; the route limit is 16 x). On an accepted
//!    connection set `parser.awaiting_connect = true` until its CONNECT is handled.
//! 2. Feed it every receive buffer with a [`RouteHandler`]; each [`RouteOp`] arrives with its
//!    length. `Info`/`Connect` JSON decodes with [`parse_route_info`] / [`parse_route_connect`];
//!    from the peer's INFO set `parser.accounts` (false when it names `route_account`),
//!    `parser.headers`, `parser.leaf_unsub_origin` (`lnocu || ln`).
//! 3. A [`RouteFed::Error`] (or [`RouteStep::Error`]) says what to send
//!    ([`RouteError::wire`]) and why the route closes ([`RouteError::close_reason`]). A
//!    `RouteOp::Err` from the peer closes it with `CloseReason::ParseError`, sending nothing.
//! 4. Write with [`write_route_connect`], [`write_route_info`], [`write_rs_plus`],
//!    [`write_rs_minus`], [`write_routed_message`] and `proto::writer::{PING, PONG}`.

pub mod json;
pub mod parser;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

pub use crate::proto::error::RouteError;
pub use json::{
    parse_route_connect, parse_route_info, write_route_connect, write_route_info, PeerRouteConnect,
    PeerRouteInfo, RouteConnect, RouteInfo,
};
pub use parser::{
    route_control_line_limit, Queues, RouteOp, RouteParser, RouteStep, RoutedMessage,
};
pub use reader::{RouteFed, RouteHandler, RouteReader};
pub use writer::{routed_message_len, write_routed_message, write_rs_minus, write_rs_plus};
