//! The HTTP plumbing shared by the API providers (PowerDNS, Cloudflare,
//! Route 53), the MTA-STS and BIMI fetches of `validate` and `publish`, and
//! the report pipeline's webhook and TLS setup: the client and runtime they
//! run on, one request retried on transient failures, and the retry policy
//! itself (bounded exponential backoff, `Retry-After` in seconds or as an
//! HTTP-date, a cap, giving up).
//!
//! This module owns how a request is sent and when it is sent again, which
//! redirects are followed (same origin only, so a credential header never
//! reaches another host), which hosts are loopback, and the process's TLS
//! crypto provider. It leaves alone what a request means: URLs,
//! credentials, bodies, and how an answer becomes records or an error stay
//! with each caller (which API URLs a provider accepts is
//! `provider::check_url`).
//!
//! Only idempotent requests (GET, PUT) are sent again after a timeout, a
//! cut connection or a 5xx. A POST, PATCH or DELETE is sent again only when
//! it certainly did not reach the server (connection refused) or was
//! throttled (429); otherwise the outcome is [`HttpError::Uncertain`] and
//! the caller re-reads the state before deciding anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;

/// When and how often a failed request is sent again.
///
/// An idempotent request is retried when it did not get an answer (connection error,
/// timeout) or got 429 or a 5xx, at most `retries` times. The wait before
/// retry `n` (from 0) is `base << min(n, max_shift)`, at most
/// `max_backoff`; an answer's `Retry-After` replaces it when the policy
/// honours it, capped at `max_retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base: Duration,
    pub max_shift: u32,
    pub max_backoff: Duration,
    /// `Some(cap)`: wait what `Retry-After` asks, up to `cap`, then retry
    /// (a longer wait would stall a whole plan). `None`: ignore it.
    pub max_retry_after: Option<Duration>,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry), or
    /// `None` when the policy gives up: `retries` retries were made.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.retries {
            return None;
        }
        if let (Some(asked), Some(cap)) = (retry_after, self.max_retry_after) {
            return Some(asked.min(cap));
        }
        let shift = attempt.min(self.max_shift).min(31);
        let backoff = self.base.saturating_mul(1u32 << shift);
        Some(backoff.min(self.max_backoff))
    }
}

/// Whether an answer with this status is worth asking again: the server is
/// throttling (429) or failing (5xx), which may pass.
pub(crate) fn transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The wait a `Retry-After` value asks for, relative to `now` (seconds
/// since the Unix epoch). A date in the past asks for no wait.
///
/// RFC 9110 §10.2.3:
/// ```text
/// Retry-After = HTTP-date / delay-seconds
/// delay-seconds  = 1*DIGIT
/// ```
pub(crate) fn retry_after(value: &str, now: i64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate; the policy caps them anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(
        u64::try_from(at.saturating_sub(now)).unwrap_or(0),
    ))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP-date as seconds since the Unix epoch.
///
/// RFC 9110 §5.6.7: "A recipient that parses a timestamp value in an HTTP
/// field MUST accept all three HTTP-date formats":
/// ```text
/// IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
///                ; Sun, 06 Nov 1994 08:49:37 GMT
/// rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT
///                ; Sunday, 06-Nov-94 08:49:37 GMT
/// asctime-date = day-name SP date3 SP time-of-day SP year
///                ; Sun Nov  6 08:49:37 1994
/// ```
/// "Recipients of a timestamp value in rfc850-date format, which uses a
/// two-digit year, MUST interpret a timestamp that appears to be more than
/// 50 years in the future as representing the most recent year in the past
/// that had the same last two digits." The day name is not checked against
/// the date.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let month = |m: &str| MONTHS.iter().position(|x| *x == m).map(|i| i as i64 + 1);
    let num = |t: &str, len: std::ops::RangeInclusive<usize>| -> Option<i64> {
        (len.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (year, mon, day, time) = if let Some((_, rest)) = s.split_once(", ") {
        let parts: Vec<&str> = rest.split(' ').collect();
        match parts.as_slice() {
            [d, m, y, t, "GMT"] => (num(y, 4..=4)?, month(m)?, num(d, 2..=2)?, *t),
            [date, t, "GMT"] => {
                let mut dmy = date.split('-');
                let (d, m, y) = (dmy.next()?, dmy.next()?, dmy.next()?);
                if dmy.next().is_some() {
                    return None;
                }
                let yy = num(y, 2..=2)?;
                // Resolve the century so that the date is at most 50 years
                // ahead of now.
                let this_year = crate::clock::civil(now_secs()).0;
                let mut year = this_year - this_year.rem_euclid(100) + yy;
                if year > this_year + 50 {
                    year -= 100;
                } else if year <= this_year - 50 {
                    year += 100;
                }
                (year, month(m)?, num(d, 2..=2)?, *t)
            }
            _ => return None,
        }
    } else {
        // asctime: the day of month is padded with a space, not a zero.
        let parts: Vec<&str> = s.split_whitespace().collect();
        match parts.as_slice() {
            [_, m, d, t, y] if s.len() == 24 => (num(y, 4..=4)?, month(m)?, num(d, 1..=2)?, *t),
            _ => return None,
        }
    };
    let mut hms = time.split(':');
    let (h, m, sec) = (
        num(hms.next()?, 2..=2)?,
        num(hms.next()?, 2..=2)?,
        num(hms.next()?, 2..=2)?,
    );
    if hms.next().is_some() || h > 23 || m > 59 || sec > 60 || !(1..=31).contains(&day) {
        return None;
    }
    Some(crate::clock::days_from_civil(year, mon, day) * 86_400 + h * 3600 + m * 60 + sec)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No answer, and the request certainly did not change anything (an
    /// idempotent request, or one that never reached the server).
    #[error("{method} {url}: {detail}")]
    Transport {
        method: &'static str,
        url: String,
        /// The error and its causes, `: `-separated.
        detail: String,
    },
    /// A non-idempotent request got no answer (timeout, cut connection)
    /// or a 5xx after it was sent: it may or may not have been applied.
    /// It is not sent again blindly; the caller re-reads the state.
    #[error("{method} {url}: {detail} (the request may or may not have been applied)")]
    Uncertain {
        method: &'static str,
        url: String,
        detail: String,
    },
    /// The server redirected to another origin. Not followed: the
    /// credential header goes to the configured host only.
    #[error(
        "{method} {url}: HTTP {status} redirect to {location} not followed \
         (credentials go to the configured host only; configure the final URL)"
    )]
    Redirected {
        method: &'static str,
        url: String,
        status: u16,
        location: String,
    },
}

/// Whether a request with this method may be sent twice with the effect of
/// once (RFC 9110 §9.2.2: "PUT, DELETE, and safe request methods are
/// idempotent"). DELETE is treated as not idempotent here: a repeated
/// DELETE answers 404 on these APIs, and a record id may be reused.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT")
}

/// Whether `host` (a URL's host, IPv6 in brackets) is the loopback
/// interface: `localhost` (RFC 6761 §6.3), 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let d = h.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost")
}

/// Follows a redirect only within the origin (scheme, host, port) of the
/// first request, at most 5 times. Anything else is not followed and
/// becomes [`HttpError::Redirected`].
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_ascii_lowercase),
                u.port_or_known_default(),
            )
        };
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| origin(first) == origin(attempt.url()));
        if same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The final answer to a request: after the retries a transient status
/// (429, 5xx) may still be here, for the provider to report.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// An HTTP client on the shared runtime, for a synchronous caller.
pub struct HttpApi {
    http: reqwest::Client,
    runtime: &'static tokio::runtime::Runtime,
    policy: RetryPolicy,
}

impl HttpApi {
    /// A client with ring as the TLS crypto provider (no OpenSSL, no
    /// aws-lc), `timeout` for connecting and for each request, on the
    /// process's shared runtime ([`crate::rt`]). The error says what could
    /// not be set up.
    pub fn new(timeout: Duration, policy: RetryPolicy) -> Result<Self, String> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent())
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        let runtime = crate::rt::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
        Ok(HttpApi {
            http,
            runtime,
            policy,
        })
    }

    /// Sends `method url` with `body` as JSON, after `decorate` added the
    /// credentials and headers, and sends it again per the policy while it
    /// gets no answer or a transient status (for POST, PATCH and DELETE:
    /// only while it certainly was not applied, see the module comment).
    /// Returns the last answer, or the error of the last try.
    pub fn send(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&serde_json::Value>,
        decorate: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, HttpError> {
        self.runtime.block_on(async {
            let mut attempt = 0;
            let safe = idempotent(method);
            loop {
                let mut result = self.once(method, url, body, &decorate).await;
                // Sent again: no answer at all, or a transient status; for
                // a non-idempotent request only when it was not applied.
                let (again, retry_after) = match &result {
                    Ok((answer, retry_after)) => (
                        if safe {
                            transient(answer.status)
                        } else {
                            answer.status == StatusCode::TOO_MANY_REQUESTS
                        },
                        *retry_after,
                    ),
                    Err((_, sent)) => (safe || !sent, None),
                };
                if let Ok((answer, _)) = &result
                    && !safe
                    && answer.status.is_server_error()
                {
                    result = Err((
                        HttpError::Uncertain {
                            method,
                            url: url.to_string(),
                            detail: format!(
                                "HTTP {}: {}",
                                answer.status.as_u16(),
                                answer.body.chars().take(300).collect::<String>()
                            ),
                        },
                        true,
                    ));
                }
                let wait = again
                    .then(|| self.policy.delay(attempt, retry_after))
                    .flatten();
                match wait {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return result.map(|(answer, _)| answer).map_err(|(e, _)| e),
                }
            }
        })
    }

    /// One try: the answer and the wait its `Retry-After` asks for, or the
    /// error and whether the request may have reached the server.
    async fn once(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&serde_json::Value>,
        decorate: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(Answer, Option<Duration>), (HttpError, bool)> {
        let m = match method {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "DELETE" => reqwest::Method::DELETE,
            _ => reqwest::Method::PATCH,
        };
        let mut req = decorate(self.http.request(m, url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let safe = idempotent(method);
        let transport = |e: reqwest::Error| {
            // A refused connection never carried the request.
            let sent = !e.is_connect();
            let detail = error_chain(&e);
            let url = url.to_string();
            let err = if sent && !safe {
                HttpError::Uncertain {
                    method,
                    url,
                    detail,
                }
            } else {
                HttpError::Transport {
                    method,
                    url,
                    detail,
                }
            };
            (err, sent)
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_redirection() {
            // Only a redirect to another origin is left unfollowed.
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no Location)")
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            return Err((
                HttpError::Redirected {
                    method,
                    url: url.to_string(),
                    status: status.as_u16(),
                    location,
                },
                true,
            ));
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, now_secs()));
        let body = resp.text().await.map_err(transport)?;
        Ok((Answer { status, body }, retry_after))
    }
}

/// Installs ring as the process's rustls crypto provider. Installing twice
/// is harmless; the first one installed wins.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `mailauth/<version>`, sent with every request.
pub fn user_agent() -> &'static str {
    concat!("mailauth/", env!("CARGO_PKG_VERSION"))
}

/// An error and its causes, `: `-separated (reqwest's own message alone
/// says "error sending request" and hides why).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retry_after: Option<Duration>) -> RetryPolicy {
        RetryPolicy {
            retries: 4,
            base: Duration::from_millis(250),
            max_shift: 5,
            max_backoff: Duration::from_secs(5),
            max_retry_after,
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_then_gives_up() {
        let p = RetryPolicy {
            retries: 8,
            ..policy(None)
        };
        let waits: Vec<Option<u128>> = (0..9)
            .map(|n| p.delay(n, None).map(|d| d.as_millis()))
            .collect();
        assert_eq!(
            waits,
            [
                Some(250),
                Some(500),
                Some(1000),
                Some(2000),
                Some(4000),
                Some(5000),
                Some(5000),
                Some(5000),
                None
            ]
        );
        let none = RetryPolicy {
            retries: 0,
            ..policy(None)
        };
        assert_eq!(none.delay(0, None), None, "no retries: give up at once");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy(Some(Duration::from_secs(60)));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(60)),
            "capped"
        );
        assert_eq!(p.delay(4, Some(Duration::from_secs(1))), None, "gave up");
        // A policy that ignores Retry-After keeps its backoff.
        let q = policy(None);
        assert_eq!(
            q.delay(1, Some(Duration::from_secs(30))),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn retry_after_values() {
        // 1994-11-06T08:49:37Z
        let t = 784_111_777;
        let cases: &[(&str, Option<u64>)] = &[
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:51:37 GMT", Some(120)),
            ("Sun Nov  6 08:49:47 1994", Some(10)),
            // In the past: no wait.
            ("Sat, 05 Nov 1994 08:49:37 GMT", Some(0)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                retry_after(value, t).map(|d| d.as_secs()),
                *want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn http_date_formats() {
        let t = 784_111_777;
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(crate::clock::days_from_civil(2028, 2, 29) * 86_400 + 12 * 3600)
        );
        // rfc850: a two-digit year is the nearest one not over 50 years
        // ahead of now.
        let this_year = crate::clock::civil(now_secs()).0;
        let yy = (this_year + 1).rem_euclid(100);
        let next = format!("Sunday, 06-Nov-{yy:02} 08:49:37 GMT");
        let got = parse_http_date(&next).map(|s| crate::clock::civil(s).0);
        assert_eq!(got, Some(this_year + 1), "{next}");
        let yy = (this_year + 60).rem_euclid(100);
        let old = format!("Sunday, 06-Nov-{yy:02} 08:49:37 GMT");
        let got = parse_http_date(&old).map(|s| crate::clock::civil(s).0);
        assert_eq!(got, Some(this_year - 40), "{old}");
    }

    #[test]
    fn transient_statuses() {
        for (code, want) in [
            (200, false),
            (404, false),
            (409, false),
            (422, false),
            (429, true),
            (500, true),
            (503, true),
        ] {
            let s = StatusCode::from_u16(code).expect("status");
            assert_eq!(transient(s), want, "{code}");
        }
    }
}
