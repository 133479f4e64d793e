//! What a shard reads of the configuration (`Settings`), swapped whole on a reload.

use crate::config::Options;
use crate::proto::json::Info;

/// What a shard reads of the configuration while it runs. Immutable: a reload makes a new one
/// and hands it to every shard (`Control::Reload`), which swaps it in between completions, so
/// nothing on the message path ever takes a lock to read it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub options: Options,
    /// The INFO every client gets, before its client_id and client_ip are filled in.
    pub info: Info,
}
