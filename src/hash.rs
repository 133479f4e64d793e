//! Hashing of bytes that clients choose: subject tokens in the shared subject table, published
//! subjects in a shard's match cache, sids in a connection's index. With an unkeyed hash
//! (FxHash, as before) a client could compute in advance many tokens that collide and turn
//! every lookup of one level, or one cache, into a long probe: hash flooding, with one client
//! slowing every connection of a shard. Here every such hash is foldhash keyed with a seed
//! drawn from the operating system's randomness once per process, so collisions cannot be
//! computed in advance. Cost, measured with scripts/callgrind.py (16 B pubsub, one subject):
//! same shard 887.6 -> 890.1 instructions per message, within its run-to-run spread. Not
//! measured yet: a publisher cycling over many subjects (where the match cache hashes every
//! publish), `cargo bench --bench sublist`.
//!
//! Must not: be used where a hash must agree between processes (nothing here is stable).

use std::hash::BuildHasher;
use std::sync::LazyLock;

use foldhash::fast::FixedState;

/// This process's seed: std's `RandomState` is keyed from the OS's randomness (getrandom).
static SEED: LazyLock<u64> =
    LazyLock::new(|| std::hash::RandomState::new().hash_one(0x6e61_7473_7269_6e67_u64));

/// The hasher for client-chosen bytes, keyed with the process seed. Store it in a map (it is
/// one word) rather than calling this per lookup where the lookup is hot.
#[inline]
pub fn seeded() -> FixedState {
    FixedState::with_seed(*SEED)
}

/// Hashes client-chosen `bytes` with the process seed.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    seeded().hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_within_a_process_and_keyed() {
        assert_eq!(hash_bytes(b"foo.bar"), hash_bytes(b"foo.bar"));
        assert_ne!(hash_bytes(b"foo.bar"), hash_bytes(b"foo.baz"));
        // Keyed: not the unseeded hash of the same bytes (the chance of equality is 2^-64).
        assert_ne!(
            hash_bytes(b"foo.bar"),
            FixedState::with_seed(0).hash_one(b"foo.bar".as_slice())
        );
    }
}
