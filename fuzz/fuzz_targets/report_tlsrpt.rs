//! Fuzz target `report_tlsrpt`: the SMTP TLS report (RFC 8460) JSON parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::report_tlsrpt(data));
