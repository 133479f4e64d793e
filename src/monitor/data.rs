//! The shards' data the endpoints are made from.
pub use super::pending::{ConnInfo, SubInfo, TableStats};
