//! Moving messages between the shards of one server (DESIGN §6): a lock-free single-producer
//! single-consumer queue of byte frames per ordered pair of shards (`spsc`), the frame format a
//! message travels in (`frame`), and each end's view of one direction (`link`). Nothing here
//! knows a shard's loop, ring or connections. ("Route" is kept for cluster routes.)

pub mod frame;
pub mod link;
pub mod spsc;

pub use link::ShardId;
