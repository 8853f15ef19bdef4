//! Fuzz target `parse_reader`: the streaming DMARC aggregate parser that
//! ingest uses for plain-XML files over 8 MiB, fed in reads of 1 to 64
//! bytes (the input's length picks the size) so that tokens, characters
//! and values are split anywhere. It must not panic, and on UTF-8 input it
//! must reach exactly what the whole-document parser reaches: the same
//! records, summary, or error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::parse_reader(data));
