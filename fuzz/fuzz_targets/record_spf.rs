//! Fuzz target `record_spf`: arbitrary text through the `Spf` parser; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::record_spf(data));
