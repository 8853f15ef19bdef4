//! Fuzz target `record_dmarc`: arbitrary text through the `Dmarc` parser; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<mailauth_core::record::dmarc::Dmarc>();
    }
});
