//! Fuzz target `report_failure`: the DMARC failure report (ARF, RFC 5965) field parser and the free-text fallback.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::report_failure(data));
