//! Fuzz target `imap_url`: the `--imap` URL (RFC 5092 `imap://` and
//! `imaps://` with user, host, port and mailbox) as the report ingester
//! reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailauth_fuzz_targets::imap_url(data));
