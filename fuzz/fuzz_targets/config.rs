//! Fuzz target `config`: the YAML config loader (`config::load_str`): parse, then check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::config(data));
