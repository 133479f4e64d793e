//! Fuzz target `parser_splits`: the input layout and what is checked are in
//! `natsring_fuzz::parser_splits`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::parser_splits::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("parser_splits", natsring_fuzz::parser_splits::check);
}
