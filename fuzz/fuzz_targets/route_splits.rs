//! Fuzz target `route_splits`: the input layout and what is checked are in
//! `natsring_fuzz::route_splits`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::route_splits::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("route_splits", natsring_fuzz::route_splits::check);
}
