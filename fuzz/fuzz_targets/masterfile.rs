//! Fuzz target `masterfile`: the zone-file (RFC 1035 master file) reader, and the editor on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::masterfile(data));
