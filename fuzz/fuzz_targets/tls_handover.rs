//! Fuzz target `tls_handover`: the input layout and what is checked are in
//! `natsring_fuzz::tls_handover`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::tls_handover::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("tls_handover", natsring_fuzz::tls_handover::check);
}
