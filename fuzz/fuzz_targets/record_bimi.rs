//! Fuzz target `record_bimi`: arbitrary text through the `Bimi` parser, and
//! arbitrary bytes through the BIMI logo (SVG Tiny PS) and logotype
//! extension readers; each must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::record_bimi(data));
