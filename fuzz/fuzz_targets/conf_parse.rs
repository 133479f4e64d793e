//! Fuzz target `conf_parse`: the input layout and what is checked are in
//! `natsring_fuzz::conf_parse`.
//! Under `cargo fuzz` (`--cfg fuzzing`) libFuzzer drives it; built plainly it replays files
//! (`natsring_fuzz::replay`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| natsring_fuzz::conf_parse::check(data));

#[cfg(not(fuzzing))]
fn main() {
    natsring_fuzz::replay::main("conf_parse", natsring_fuzz::conf_parse::check);
}
