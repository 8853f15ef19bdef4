//! Fuzz target `http_date`: arbitrary text as a `Retry-After` value
//! (delay-seconds or any of the three HTTP-date formats, RFC 9110 §5.6.7);
//! it must return, never panic, and a date never asks for a wait longer
//! than the span from the epoch to year 9999.
#![no_main]

use libfuzzer_sys::fuzz_target;

// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;
// 9999-12-31T23:59:60Z, the latest a four-digit year allows.
const LATEST: i64 = 253_402_300_800;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let wait = mailauth_core::provider::cloudflare::retry_after_secs(text, NOW);
    let all_digits = !text.trim().is_empty() && text.trim().bytes().all(|b| b.is_ascii_digit());
    if let Some(secs) = wait
        && !all_digits
    {
        assert!(
            secs <= (LATEST - NOW) as u64,
            "{text:?} asks for {secs} s"
        );
    }
    // Extreme clocks must not overflow either.
    let _ = mailauth_core::provider::cloudflare::retry_after_secs(text, i64::MIN);
    let _ = mailauth_core::provider::cloudflare::retry_after_secs(text, i64::MAX);
});
