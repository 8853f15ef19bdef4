//! Fuzz target `record_bimi`: arbitrary text through the `Bimi` parser, and
//! arbitrary bytes through the BIMI logo (SVG Tiny PS) and logotype
//! extension readers; each must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = text.parse::<mailauth_core::record::bimi::Bimi>() {
            // Canonical rendering reads back as the same record.
            assert_eq!(r.to_string().parse::<mailauth_core::record::bimi::Bimi>().ok(), Some(r));
        }
    }
    let _ = mailauth_core::validate::bimi::svg_problems(data);
    let _ = mailauth_core::validate::bimi::embedded_svg(data);
});
