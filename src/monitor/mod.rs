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
mod routez;
mod subsz;
mod system;
mod varz;

use go_json::go_float;
pub use http::Monitor;
pub use inspector::Inspector;
pub use system::SystemService;

/// The nice value monitoring's threads run at (HTTP and the system services): on a core a
/// shard needs, the kernel lets the shard in at once, so building a large answer (a `/connz`
/// of 10,000 connections, its JSON) does not delay the shard's clients. Not `SCHED_IDLE` (the
/// bcrypt verifier's): under full load a scrape must still be answered.
const MONITOR_NICE: i32 = 19;

/// Lowers the calling thread's priority to `MONITOR_NICE` (Linux keeps it per thread); a
/// failure is logged and the thread runs as it is.
pub(crate) fn lower_priority(what: &str) {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), MONITOR_NICE) {
        crate::log_warn!(
            "Could not lower the {what} thread's priority (nice {MONITOR_NICE}): {err}"
        );
    }
}
