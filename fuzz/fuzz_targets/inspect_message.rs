//! Fuzz target `inspect_message`: what `mailauth inspect` reads of a
//! received message — the header section (RFC 5322) and an embedded
//! original (RFC 6591), the Received chain and its dates, DKIM-Signature
//! fields (RFC 6376 §3.5), Authentication-Results and ARC sets (RFC 8601,
//! RFC 8617), mailboxes — and the DKIM and ARC verifiers over a DNS that
//! knows nothing (every key lookup fails).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::inspect_message(data));
