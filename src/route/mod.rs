//! Moving messages between shards (DESIGN §6): a lock-free single-producer single-consumer
//! queue of byte frames per ordered pair of shards, and the frame format a message travels in.
//! (Later: cluster routes.)

pub mod frame;
pub mod spsc;
