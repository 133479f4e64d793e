//! natsring: a NATS server on io_uring, one single-threaded event loop (shard) per core.
//!
//! The server is a library first: `Server::start(Options)` binds, spawns the shards and returns
//! a `ServerHandle` (bound port, stats, shutdown). `main.rs` is a thin shell over it.
//!
//! Dependencies point one way: `limits` <- `proto`, `sublist` <- `shard` <- `server`.

pub mod config;
pub mod limits;
pub mod log;
pub mod proto;
mod server;
mod shard;
pub mod stats;
pub mod sublist;

pub use config::Options;
pub use server::{Server, ServerHandle, ADVERTISED_VERSION};
pub use stats::ShardStats;
