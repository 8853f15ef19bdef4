//! Fuzz target `mmdb`: arbitrary bytes as a MaxMind DB ASN database
//! (`reports summary --asn-db`); opening and looking up IPv4 and IPv6
//! addresses must return, never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::mmdb(data));
