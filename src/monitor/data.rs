//! The shards' data the endpoints are made from (answered through `Shared`'s queries).
pub use crate::stats::{ConnInfo, SubInfo, TableStats};
