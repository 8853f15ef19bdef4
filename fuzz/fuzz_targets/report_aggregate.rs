//! Fuzz target `report_aggregate`: the streaming DMARC aggregate report XML parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::report_aggregate(data));
