//! Fuzz target `mmdb`: arbitrary bytes as a MaxMind DB ASN database
//! (`reports summary --asn-db`); opening and looking up IPv4 and IPv6
//! addresses must return, never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = mailauth_reports::mmdb::Mmdb::from_bytes(Path::new("fuzz.mmdb"), data.to_vec())
    else {
        return;
    };
    for ip in ["192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "ffff::1"] {
        let _ = db.lookup(ip.parse().expect("ip"));
    }
});
