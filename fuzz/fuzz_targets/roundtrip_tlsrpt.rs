//! Fuzz target `roundtrip_tlsrpt`: whatever `TlsRpt` accepts must render to text that parses back to the same value (parse → render → parse).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::roundtrip_tlsrpt(data));
