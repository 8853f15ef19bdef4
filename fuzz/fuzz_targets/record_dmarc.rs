//! Fuzz target `record_dmarc`: arbitrary text through the `Dmarc` parser; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::record_dmarc(data));
