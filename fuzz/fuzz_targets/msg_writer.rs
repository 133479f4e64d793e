//! Fuzz target `msg_writer`: the input layout and what is checked are in
//! `natsring_fuzz::msg_writer`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::msg_writer::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("msg_writer", natsring_fuzz::msg_writer::check);
}
