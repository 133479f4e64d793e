//! Fuzz target `connect_json`: the input layout and what is checked are in
//! `natsring_fuzz::connect_json`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::connect_json::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("connect_json", natsring_fuzz::connect_json::check);
}
