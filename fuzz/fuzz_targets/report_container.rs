//! Fuzz target `report_container`: the container decoder (gzip, zip, MIME, nesting) and the whole item pipeline, with the default limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

use mailauth::reports::IngestLimits;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits::default();
    let _ = mailauth::reports::parse::container::unpack(data, &limits);
    let _ = mailauth::reports::parse::parse_all(data, &limits);
});
