//! Fuzz target `report_aggregate`: the streaming DMARC aggregate report XML parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

use mailauth_reports::parse::aggregate::{self, Collect};

fuzz_target!(|data: &[u8]| {
    let mut sink = Collect::default();
    let _ = aggregate::parse(data, &mut sink);
});
