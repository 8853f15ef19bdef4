//! Fuzz target `serve_request`: arbitrary bytes as what a client sends to
//! `mailauth serve`: the request line and header fields are parsed (at most
//! 16 KiB read), and an origin-form target is routed against an empty
//! in-memory store (path segments, percent-decoding, query filters). It
//! must return, never panic, and every answer has a known status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::serve_request(data));
