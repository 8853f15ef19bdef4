//! Fuzz target `record_mtasts`: arbitrary text through the `MtaSts` parser; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::record_mtasts(data));
