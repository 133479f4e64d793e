//! natsring: a NATS server on io_uring, one single-threaded event loop (shard) per core.
//!
//! The server is a library first: `Server::start(Options)` binds, spawns the shards and returns
//! a `ServerHandle` (bound port, shutdown). `main.rs` is a thin shell over it.

pub mod limits;
pub mod proto;
