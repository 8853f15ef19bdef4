//! Fuzz target `report_failure`: the DMARC failure report (ARF, RFC 5965) field parser and the free-text fallback.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mailauth_reports::parse::failure::parse_arf(text);
        let _ = mailauth_reports::parse::failure::parse_text(text);
    }
});
