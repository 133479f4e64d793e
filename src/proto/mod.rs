//! Owns parsing and writing of the NATS client protocol: the op parser, the `MSG`/`HMSG`/
//! `-ERR` writers, CONNECT/INFO JSON, and the error and close-reason vocabulary; and the same
//! for the route (cluster) protocol in [`route`].
//!
//! No IO and no subject table here: the parser turns bytes into [`Op`]s that borrow from the
//! caller's buffer, and the writers append to the caller's `Vec<u8>`. Behaviour is pinned to
//! nats-server 2.15.1, checked by running it (see each file's docs and tests).

pub mod error;
pub mod json;
pub mod message;
pub mod parser;
pub mod reader;
pub mod route;
pub mod writer;

pub use error::{CloseReason, RouteError, ServerError};
pub use message::Message;
pub use parser::{Op, Parser, Step};
pub use reader::{Fed, Flow, Handler, Reader};
