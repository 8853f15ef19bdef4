//! Fuzz target `http_date`: arbitrary text as a `Retry-After` value
//! (delay-seconds or any of the three HTTP-date formats, RFC 9110 §5.6.7);
//! it must return, never panic, and a date never asks for a wait longer
//! than the span from the epoch to year 9999.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::http_date(data));
