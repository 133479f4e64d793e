//! Seeing inside the server: HTTP monitoring with nats-server's endpoints and JSON (`/varz`,
//! `/connz`, `/subsz`, `/routez`, `/accountz`, `/accstatz`, `/healthz`, the index page),
//! natsring's own Prometheus `/metrics`, and the system account's requests and events.
//!
//! - [`Inspector`]: every answer, made from the shards' answers to `Shared`'s queries (each
//!   shard answers through its mailbox, between completions). Nothing here touches a shard's
//!   state, and nothing a shard does per message is counted for it: the shards' plain
//!   counters are read when asked.
//! - [`Monitor`] (`http`): the HTTP server, a thread of its own.
//! - [`SystemService`] (`system`): the system account's requests and events, through an
//!   in-process client of the system account on shard 0's ring.
//!
//! Invariant: nothing here holds a lock a shard takes, and a shard that has ended answers
//! nothing (its part of an answer is empty), so no request hangs on a stopping server.

mod accounts;
mod connz;
mod data;
mod go_json;
pub mod gotime;
mod http;
mod inspector;
mod metrics;
mod process;
mod query;
mod subsz;
mod system;
mod varz;

use go_json::go_float;
pub use http::Monitor;
pub use inspector::Inspector;
pub use system::SystemService;
