//! Fuzz target `masterfile`: the zone-file (RFC 1035 master file) reader, and the editor on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

use mailauth_core::record::Name;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(origin) = Name::parse("example.com") else {
        return;
    };
    if let Ok(parsed) = mailauth_core::masterfile::parse(text, &origin) {
        let zone = parsed.zone(&origin);
        let _ = mailauth_core::masterfile::apply_edits(text, &parsed, &[], Some(1));
        drop(zone);
    }
});
