//! The current time, injectable: `MAILAUTH_NOW` (RFC 3339 UTC, e.g.
//! `2027-05-01T00:00:00Z`) overrides the system clock so that tests can run
//! years of key rotations in seconds (the parsing lives in `keys::time`).
//! Also the few calendar conversions the project needs, without a date
//! library.

/// Seconds since the Unix epoch, from `MAILAUTH_NOW` when set.
pub fn now() -> Result<i64, String> {
    crate::keys::time::clock(None)
        .map(|t| t.0)
        .map_err(|e| format!("MAILAUTH_NOW: {e}"))
}

/// Parses RFC 3339 UTC (`2027-05-01T00:00:00Z`), a bare date, or unix
/// seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| crate::keys::time::Timestamp::parse(s).ok().map(|t| t.0))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's
/// algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a unix time.
pub fn civil(secs: i64) -> (i64, u32, u32) {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ`
pub fn format_time(secs: i64) -> String {
    let (y, m, d) = civil(secs);
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-27T21:52:41Z",
            "2028-02-29T12:00:00Z",
        ] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        assert_eq!(parse_time("2026-11-27"), parse_time("2026-11-27T00:00:00Z"));
        assert_eq!(parse_time("2026-13-01"), None);
    }
}
