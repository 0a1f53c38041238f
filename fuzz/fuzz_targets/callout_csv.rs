//! cargo fuzz target `callout_csv`: the check of the same name in
//! `tests/fuzz_parsers/checks.rs`, which the always-run property tests share.

#![no_main]

#[allow(dead_code)] // each target uses one check of the shared file
#[path = "../../tests/fuzz_parsers/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::callout_csv(data));
