//! Fuzz target `config`: the YAML config loader (`config::load_str`): parse, then check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mailauth_core::config::load_str(text, std::path::Path::new("mailauth.yaml"));
    }
});
