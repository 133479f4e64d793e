//! natsring: a NATS server on io_uring, one single-threaded event loop (shard) per core.
//!
//! The server is a library first: `Server::start(Options)` binds, spawns the shards and returns
//! a `ServerHandle` (bound port, stats, shutdown). `main.rs` is a thin shell over it.
//!
//! Dependencies point one way: `limits` <- `proto`, `sublist` <- `shard` <- `server`.

pub mod account;
mod alloc;
pub mod auth;
pub mod cluster;
pub mod config;
mod hash;
mod lame_duck;
pub mod limits;
pub mod log;
pub mod mapping;
mod monitor;
pub mod proto;
mod server;
mod shard;
pub mod signals;
pub mod stats;
pub mod sublist;
pub mod tls;
pub mod tls_record;
pub mod xshard;

pub use config::Options;
pub use lame_duck::LameDuck;
pub use server::{Server, ServerHandle, ADVERTISED_VERSION};
pub use shard::{check_io_uring, Shared};
pub use stats::ShardStats;

/// What the fuzz targets in `fuzz/` drive that is otherwise private to the shards: the TLS
/// session between the receive buffers and the parser (`fuzz/src/tls_handover.rs`). Not an
/// API: it exists for fuzz/ and may change with it.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::shard::{ClientTls, TlsEvent, TlsReceived, TlsSession};
}

/// The shard a connection landed on, from the `client_id` its INFO carries: shard `i` of `n`
/// hands out ids `i + 1`, `i + 1 + n`, ... (tests and benchmarks use this to place clients).
pub fn shard_of_client_id(client_id: u64, shard_count: usize) -> usize {
    (client_id.saturating_sub(1) % shard_count.max(1) as u64) as usize
}
