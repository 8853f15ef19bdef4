//! Fuzz target `report_tlsrpt`: the SMTP TLS report (RFC 8460) JSON parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailauth_reports::parse::tlsrpt::parse(data);
});
