//! The current time and the project's instants and spans: UTC timestamps
//! in RFC 3339 form (`2027-05-01T00:00:00Z`), human spans (`180d`, `12h`),
//! their parsing, rendering and arithmetic, and the clock itself, which
//! `MAILAUTH_NOW` (or a `--now`-style flag) overrides so that tests can run
//! years of key rotations in seconds. Also the few calendar conversions the
//! project needs, without a date library.
//!
//! Leaves the key lifecycle's schedule to `keys` (which reads the clock
//! through [`clock`], so every lifecycle decision is a pure function of
//! `now`) and the JSON form of times to `output`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors parsing a timestamp or a span.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeError {
    #[error("`{input}` is not a UTC timestamp like 2027-05-01T00:00:00Z: {reason}")]
    Timestamp { input: String, reason: String },
    #[error("`{input}` is not a duration like 180d, 4d, 12h, 30m, 45s or 2w: {reason}")]
    Span { input: String, reason: String },
}

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A non-negative length of time, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub u64);

impl Span {
    pub const fn seconds(s: u64) -> Span {
        Span(s)
    }
    pub const fn hours(h: u64) -> Span {
        Span(h * 3600)
    }
    pub const fn days(d: u64) -> Span {
        Span(d * 86_400)
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// Parses `<number><unit>` with unit `w`, `d`, `h`, `m` or `s`;
    /// several may be chained (`1d12h`).
    pub fn parse(input: &str) -> Result<Span, TimeError> {
        let err = |reason: &str| TimeError::Span {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                'w' => 604_800,
                'd' => 86_400,
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(err(&format!("unknown unit `{c}`"))),
            };
            if digits.is_empty() {
                return Err(err("a unit without a number"));
            }
            let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(err("a number without a unit"));
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s.is_multiple_of(len) {
                return write!(f, "{}{unit}", s / len);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = civil(z * 86_400);
    (y, i64::from(m), i64::from(d))
}

impl Timestamp {
    /// The system clock.
    pub fn system_now() -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    /// RFC 3339 §5.6 `date-time`, restricted to UTC:
    /// `full-date "T" partial-time "Z"`, e.g. `2027-05-01T00:00:00Z`.
    /// A bare `full-date` means midnight UTC.
    pub fn parse(input: &str) -> Result<Timestamp, TimeError> {
        let err = |reason: &str| TimeError::Timestamp {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let (date, time) = match s.split_once(['T', 't']) {
            Some((d, t)) => (d, Some(t)),
            None => (s, None),
        };
        let mut dp = date.split('-');
        let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
            return Err(err("the date must be YYYY-MM-DD"));
        };
        let num = |v: &str, len: usize, what: &str| -> Result<i64, TimeError> {
            if v.len() != len || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(&format!("bad {what}")));
            }
            v.parse().map_err(|_| err(&format!("bad {what}")))
        };
        let (y, m, d) = (num(y, 4, "year")?, num(m, 2, "month")?, num(d, 2, "day")?);
        if !(1..=12).contains(&m) {
            return Err(err("month out of range"));
        }
        let month_len = days_from_civil(if m == 12 { y + 1 } else { y }, m % 12 + 1, 1)
            - days_from_civil(y, m, 1);
        if d < 1 || d > month_len {
            return Err(err("day out of range"));
        }
        let mut secs = 0;
        if let Some(t) = time {
            let t = t
                .strip_suffix(['Z', 'z'])
                .ok_or_else(|| err("only UTC (a trailing Z) is accepted"))?;
            let mut tp = t.split(':');
            let (Some(hh), Some(mm), Some(ss), None) = (tp.next(), tp.next(), tp.next(), tp.next())
            else {
                return Err(err("the time must be HH:MM:SS"));
            };
            let (hh, mm, ss) = (
                num(hh, 2, "hour")?,
                num(mm, 2, "minute")?,
                num(ss, 2, "second")?,
            );
            if hh > 23 || mm > 59 || ss > 59 {
                return Err(err("time out of range"));
            }
            secs = hh * 3600 + mm * 60 + ss;
        }
        Ok(Timestamp(days_from_civil(y, m, d) * 86_400 + secs))
    }

    /// (year, month) in UTC, for selector names.
    pub fn year_month(self) -> (i64, i64) {
        let (y, m, _) = civil_from_days(self.0.div_euclid(86_400));
        (y, m)
    }

    /// `self + span`, saturating.
    pub fn plus(self, span: Span) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(span.0).unwrap_or(i64::MAX)),
        )
    }

    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Span {
        Span(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let rem = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// The environment variable that sets the clock, e.g.
/// `MAILAUTH_NOW=2027-05-01T00:00:00Z`, so that years of rotations can be
/// run in seconds.
pub const NOW_ENV: &str = "MAILAUTH_NOW";

/// The time to act at: `flag` when given (a `--now`-style option), else
/// `$MAILAUTH_NOW` when set, else the system clock.
pub fn clock(flag: Option<&str>) -> Result<Timestamp, TimeError> {
    clock_from(flag, std::env::var(NOW_ENV).ok().as_deref())
}

fn clock_from(flag: Option<&str>, env: Option<&str>) -> Result<Timestamp, TimeError> {
    match flag.or(env).filter(|s| !s.trim().is_empty()) {
        // Unix seconds are accepted too (handy in scripts).
        Some(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => s
            .trim()
            .parse::<i64>()
            .map(Timestamp)
            .map_err(|_| TimeError::Timestamp {
                input: s.to_string(),
                reason: "too large".into(),
            }),
        Some(s) => Timestamp::parse(s),
        None => Ok(Timestamp::system_now()),
    }
}

impl std::ops::Add<Span> for Timestamp {
    type Output = Timestamp;
    fn add(self, span: Span) -> Timestamp {
        self.plus(span)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// In a JSON schema a [`Timestamp`] is what it serialises as: an RFC 3339
/// UTC string, as its `Display` writes it. Every other time in the output
/// has this schema too (`output::Rfc3339` in `mailauth-core` names this
/// type, for `#[schemars(with = "Rfc3339")]` on integer seconds).
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rfc3339".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// Seconds since the Unix epoch, from `MAILAUTH_NOW` when set.
pub fn now() -> Result<i64, String> {
    clock(None)
        .map(|t| t.0)
        .map_err(|e| format!("MAILAUTH_NOW: {e}"))
}

/// Parses RFC 3339 UTC (`2027-05-01T00:00:00Z`), a bare date, or unix
/// seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| Timestamp::parse(s).ok().map(|t| t.0))
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

    #[test]
    fn timestamps_round_trip() {
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2027-05-01T00:00:00Z", 1_809_129_600),
        ] {
            let t = Timestamp::parse(text).unwrap();
            assert_eq!(t.0, secs, "{text}");
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            Timestamp::parse("2026-11-03").unwrap().year_month(),
            (2026, 11)
        );
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "2027-02-29T00:00:00Z",
            "2027-13-01",
            "2027-05-01T00:00:00+02:00",
            "2027-05-01T24:00:00Z",
            "27-05-01",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn injected_clock() {
        let t = |s| Timestamp::parse(s).unwrap();
        assert_eq!(
            clock_from(Some("2030-01-01T00:00:00Z"), Some("2027-05-01T00:00:00Z")).unwrap(),
            t("2030-01-01T00:00:00Z")
        );
        assert_eq!(
            clock_from(None, Some("2027-05-01T00:00:00Z")).unwrap(),
            t("2027-05-01T00:00:00Z")
        );
        assert!(clock_from(None, Some("tomorrow")).is_err());
        // No override: the system clock, which is past 2020.
        assert!(clock_from(None, None).unwrap() > t("2020-01-01"));
        assert_eq!(t("2027-05-01") + Span::days(1), t("2027-05-02"));
    }

    #[test]
    fn spans() {
        for (text, secs) in [
            ("180d", 180 * 86_400),
            ("4d", 345_600),
            ("12h", 43_200),
            ("1d12h", 129_600),
            ("2w", 1_209_600),
            ("90s", 90),
        ] {
            assert_eq!(Span::parse(text).unwrap().as_secs(), secs, "{text}");
        }
        for bad in ["", "12", "d", "5y", "-1d"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Span::days(180).to_string(), "180d");
        assert_eq!(Span::hours(36).to_string(), "36h");
    }
}
