//! Fuzz target `record_dkim`: arbitrary text through the `DkimKey` parser; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<mailauth_core::record::dkim::DkimKey>();
    }
});
