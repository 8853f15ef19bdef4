//! Fuzz target `imap_url`: the `--imap` URL (RFC 5092 `imap://` and
//! `imaps://` with user, host, port and mailbox) as the report ingester
//! reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailauth_reports::ingest::imap::ImapUrl;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(url) = text.parse::<ImapUrl>()
    {
        let _ = url.is_loopback();
        let _ = format!("{url:?}");
    }
});
