//! The PowerDNS Authoritative HTTP API (`/api/v1`): reads a zone with one
//! GET, writes a plan as one PATCH of RRsets (REPLACE / DELETE), creates a
//! missing zone with POST.
//!
//! This module owns the HTTP exchange, the API key reference, the mapping of
//! API content to our record data (TXT is quoted; long strings come back
//! unsplit) and the stale check. It decides nothing about what to change.
//!
//! The API is RRset-granular and has no conditional write (no ETag or
//! If-Match), so the stale check is a re-read just before the PATCH,
//! compared with the version (a SHA-256 of the RRsets) the plan saw. The
//! window between the two is one round trip; for an atomic guard use the
//! same server through [`super::rfc2136`].
//!
//! A PATCH or POST that times out is not sent again blindly: the zone is
//! re-read; if it already holds the change the write counts as done, if it
//! is still as the plan saw it the write is sent once more, otherwise the
//! apply stops (run plan again). The API URL must be HTTPS, or plain HTTP
//! to loopback, or plain HTTP with `allow_plain_http: true`.

pub use super::config::PowerDnsConfig;

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::rfc2136::read_secret;
use super::{Capabilities, Change, Fetched, Provider, ProviderError};
use crate::http::{Answer, HttpApi, HttpError, RetryPolicy};
use crate::record::{Name, RData, RType, RecordSet, Zone, txt};

const PROVIDER: &str = "powerdns";

/// Backoff of 200 ms doubling up to 3 s; the API sends no `Retry-After`
/// and one it would send through a proxy is not waited for.
fn retry_policy(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        base: Duration::from_millis(200),
        max_shift: 4,
        max_backoff: Duration::from_secs(3),
        max_retry_after: None,
    }
}

/// Why one API call failed, before it gets a zone and becomes a
/// [`ProviderError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PowerDnsError {
    #[error("{method} {url}: {detail}")]
    Transport {
        method: &'static str,
        url: String,
        detail: String,
    },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected answer: {detail}")]
    Decode { url: String, detail: String },
    /// A write got no answer after it was sent (see [`HttpError::Uncertain`]).
    #[error("{0}")]
    Uncertain(String),
    /// A redirect to another origin, not followed.
    #[error("{0}")]
    Redirected(String),
}

impl From<HttpError> for PowerDnsError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Transport {
                method,
                url,
                detail,
            } => PowerDnsError::Transport {
                method,
                url,
                detail,
            },
            e @ HttpError::Uncertain { .. } => PowerDnsError::Uncertain(e.to_string()),
            e @ HttpError::Redirected { .. } => PowerDnsError::Redirected(e.to_string()),
        }
    }
}

/// The API's RRset (`/api/v1` schema `RRSet`).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct ApiRrset {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    changetype: Option<String>,
    #[serde(default)]
    records: Vec<ApiRecord>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct ApiRecord {
    content: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
struct ApiZone {
    #[serde(default)]
    rrsets: Vec<ApiRrset>,
}

/// A PowerDNS server reached through its HTTP API.
pub struct PowerDns {
    base: String,
    api_key: String,
    nameservers: Vec<String>,
    http: HttpApi,
    /// How often a write is sent again once a re-read shows the zone
    /// unchanged (safe: nothing of it was applied).
    resend: RetryPolicy,
}

impl std::fmt::Debug for PowerDns {
    // The API key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerDns")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl PowerDns {
    pub fn from_config(cfg: &PowerDnsConfig) -> Result<Self, ProviderError> {
        let api_key = read_secret(
            PROVIDER,
            cfg.secret_env.as_deref(),
            cfg.secret_file.as_deref(),
        )?;
        super::check_url(PROVIDER, "url", &cfg.url, cfg.allow_plain_http)?;
        let http = super::http_api(
            PROVIDER,
            Duration::from_secs(cfg.timeout_secs.max(1)),
            retry_policy(cfg.retries),
        )?;
        Ok(PowerDns {
            resend: retry_policy(cfg.retries),
            base: format!(
                "{}/api/v1/servers/{}",
                cfg.url.trim_end_matches('/'),
                cfg.server_id
            ),
            api_key,
            nameservers: cfg.nameservers.clone(),
            http,
        })
    }

    fn zone_url(&self, zone: &Name) -> String {
        // Zone ids are the name with its trailing dot; `/` would be `=2F`.
        format!("{}/zones/{}", self.base, zone.fqdn().replace('/', "=2F"))
    }

    /// One request, retried on transient failures (see [`retry_policy`]).
    /// Returns the status and body of the final answer: a success, or 404
    /// to a GET (the zone does not exist).
    fn call(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, String), PowerDnsError> {
        let Answer { status, body: text } = self.http.send(method, url, body, |req| {
            req.header("X-API-Key", &self.api_key)
                .header("Accept", "application/json")
        })?;
        if status.is_success() || status == StatusCode::NOT_FOUND && method == "GET" {
            return Ok((status, text));
        }
        // Errors come as {"error": "..."}; keep the body if not.
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        Err(PowerDnsError::Status {
            method,
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    fn error(&self, zone: &Name, e: PowerDnsError) -> ProviderError {
        let provider = self.id();
        let zone = zone.to_string();
        match &e {
            PowerDnsError::Transport { .. } | PowerDnsError::Uncertain(_) => {
                ProviderError::Unreachable {
                    provider,
                    zone,
                    detail: e.to_string(),
                }
            }
            PowerDnsError::Redirected(_) => ProviderError::Rejected {
                provider,
                zone,
                detail: e.to_string(),
            },
            PowerDnsError::Status { status, .. } if *status == 401 || *status == 403 => {
                ProviderError::Auth {
                    provider,
                    zone,
                    detail: format!("API key rejected: {e}"),
                }
            }
            PowerDnsError::Status { status, .. } if *status >= 500 || *status == 429 => {
                ProviderError::Unreachable {
                    provider,
                    zone,
                    detail: e.to_string(),
                }
            }
            _ => ProviderError::Rejected {
                provider,
                zone,
                detail: e.to_string(),
            },
        }
    }

    /// The zone's RRsets as the API returns them, or `None` if it does not
    /// exist.
    fn read(&self, zone: &Name) -> Result<Option<Vec<ApiRrset>>, ProviderError> {
        let url = self.zone_url(zone);
        let (status, body) = self
            .call("GET", &url, None)
            .map_err(|e| self.error(zone, e))?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let parsed: ApiZone = serde_json::from_str(&body).map_err(|e| {
            self.error(
                zone,
                PowerDnsError::Decode {
                    url,
                    detail: e.to_string(),
                },
            )
        })?;
        Ok(Some(parsed.rrsets))
    }
}

impl PowerDns {
    /// Sends a write (PATCH or POST). After an uncertain outcome (sent,
    /// then no answer, or a 5xx) the zone is re-read: if it holds `changes`
    /// the write is done; if it is still the version the plan saw, nothing
    /// was applied and the write is sent again (with the provider's
    /// backoff, at most `retries` times: a backend busy with another
    /// zone's write answers 500 for a moment); otherwise the apply stops.
    fn write(
        &self,
        zone: &Name,
        method: &'static str,
        url: &str,
        body: &serde_json::Value,
        seen: &Fetched,
        changes: &[Change],
    ) -> Result<(), ProviderError> {
        let mut resent = 0;
        loop {
            let detail = match self.call(method, url, Some(body)) {
                Ok(_) => return Ok(()),
                Err(PowerDnsError::Uncertain(detail)) => detail,
                Err(e) => return Err(self.error(zone, e)),
            };
            let now = self.read(zone)?;
            if let Some(rrsets) = &now
                && changes_hold(&to_zone(zone, rrsets), changes)
            {
                return Ok(());
            }
            let version = now
                .as_deref()
                .map_or_else(|| "absent".to_string(), version_of);
            if version == seen.version
                && let Some(wait) = self.resend.delay(resent, None)
            {
                std::thread::sleep(wait);
                resent += 1;
                continue;
            }
            return Err(ProviderError::Unreachable {
                provider: self.id(),
                zone: zone.to_string(),
                detail: format!(
                    "{detail}; re-read: the zone holds neither the plan's records nor the \
                     change; run plan again"
                ),
            });
        }
    }
}

/// Whether `zone` (as read back) holds the effect of every change: each
/// created or updated set with exactly its data and TTL, no data of each
/// deleted set.
pub(crate) fn changes_hold(zone: &Zone, changes: &[Change]) -> bool {
    changes.iter().all(|c| match c {
        Change::Create { new } | Change::Update { new, .. } => {
            zone.get(&new.name, &new.rtype).is_some_and(|set| {
                set.ttl == new.ttl
                    && set.data.len() == new.data.len()
                    && new.data.iter().all(|d| set.data.contains(d))
            })
        }
        Change::Delete { old } => zone
            .get(&old.name, &old.rtype)
            .is_none_or(|set| !old.data.iter().any(|d| set.data.contains(d))),
    })
}

/// A stable digest of the RRsets, order-independent: the version token.
fn version_of(rrsets: &[ApiRrset]) -> String {
    let mut lines: Vec<String> = rrsets
        .iter()
        .flat_map(|s| {
            s.records.iter().map(move |r| {
                format!(
                    "{} {} {} {} {}",
                    s.name.to_ascii_lowercase(),
                    s.rtype,
                    s.ttl.unwrap_or(0),
                    r.disabled,
                    r.content
                )
            })
        })
        .collect();
    lines.sort();
    let digest = ring::digest::digest(&ring::digest::SHA256, lines.join("\n").as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// RFC 1035 §5.1 <character-string>s as PowerDNS prints TXT content:
/// quoted, `\"`, `\\` and `\DDD` escapes, separated by spaces.
pub(crate) fn parse_txt_content(content: &str) -> Option<Vec<Vec<u8>>> {
    let b = content.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                i += 1;
                let mut s = Vec::new();
                loop {
                    match *b.get(i)? {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let next = *b.get(i + 1)?;
                            if next.is_ascii_digit() {
                                let d = content.get(i + 1..i + 4)?;
                                s.push(d.parse::<u8>().ok()?);
                                i += 4;
                            } else {
                                s.push(next);
                                i += 2;
                            }
                        }
                        c => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(s);
            }
            _ => {
                // An unquoted word (some servers print single words bare).
                let start = i;
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                out.push(b[start..i].to_vec());
            }
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

fn to_rdata(rtype: &RType, content: &str) -> RData {
    match rtype {
        RType::Txt => match parse_txt_content(content) {
            Some(strings) => RData::Txt(strings),
            None => RData::Raw(content.to_string()),
        },
        RType::Cname => match Name::parse(content) {
            Ok(n) => RData::Cname(n),
            Err(_) => RData::Raw(content.to_string()),
        },
        RType::Mx => {
            let mut it = content.split_whitespace();
            match (
                it.next().and_then(|p| p.parse().ok()),
                it.next().map(Name::parse),
            ) {
                (Some(preference), Some(Ok(exchange))) => RData::Mx {
                    preference,
                    exchange,
                },
                _ => RData::Raw(content.to_string()),
            }
        }
        _ => RData::Raw(content.to_string()),
    }
}

/// Our data → API content. TXT goes out as one quoted string per
/// ≤ 255-octet piece, so what is served is what a zone file would hold.
pub(crate) fn to_content(data: &RData) -> String {
    match data {
        RData::Txt(strings) => txt::present(&txt::split(&txt::join(strings))),
        other => other.presentation(),
    }
}

fn to_zone(zone: &Name, rrsets: &[ApiRrset]) -> Zone {
    let mut out = Zone::new(zone.clone());
    for s in rrsets {
        let Ok(name) = Name::parse(&s.name) else {
            continue;
        };
        let rtype = RType::parse(&s.rtype);
        let data: Vec<RData> = s
            .records
            .iter()
            .filter(|r| !r.disabled)
            .map(|r| to_rdata(&rtype, &r.content))
            .collect();
        if data.is_empty() {
            continue;
        }
        out.insert(RecordSet::new(name, rtype, s.ttl.unwrap_or(0), data));
    }
    out
}

impl Provider for PowerDns {
    fn id(&self) -> String {
        format!("{PROVIDER}:{}", self.base)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            types: vec![RType::Txt, RType::Cname, RType::Mx, RType::A, RType::Aaaa],
            max_txt_len: 4096,
            cname: true,
        }
    }

    fn fetch(&self, zone: &Name) -> Result<Fetched, ProviderError> {
        Ok(match self.read(zone)? {
            Some(rrsets) => Fetched {
                zone: to_zone(zone, &rrsets),
                version: version_of(&rrsets),
                exists: true,
            },
            None => Fetched {
                zone: Zone::new(zone.clone()),
                version: "absent".to_string(),
                exists: false,
            },
        })
    }

    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let stale = |detail: String| ProviderError::Stale {
            provider: self.id(),
            zone: zone.to_string(),
            detail,
        };
        // The re-read: the API offers no conditional write.
        let current = self.read(zone)?;
        let now = match &current {
            Some(rrsets) => version_of(rrsets),
            None => "absent".to_string(),
        };
        if now != seen.version {
            return Err(stale(
                "the zone's records differ from those the plan read".to_string(),
            ));
        }
        let current = current.unwrap_or_default();
        let mut rrsets = Vec::new();
        for change in changes {
            let (name, rtype) = (change.name(), change.rtype());
            if !name.is_within(zone) {
                return Err(ProviderError::Rejected {
                    provider: self.id(),
                    zone: zone.to_string(),
                    detail: format!("{name} is outside the zone"),
                });
            }
            match change {
                Change::Delete { .. } => rrsets.push(ApiRrset {
                    name: name.fqdn(),
                    rtype: rtype.to_string(),
                    ttl: None,
                    changetype: Some("DELETE".to_string()),
                    records: vec![],
                }),
                Change::Create { new } | Change::Update { new, .. } => {
                    // REPLACE sets the whole RRset: keep records an operator
                    // disabled in it (they are not served, so not in `new`).
                    let mut records: Vec<ApiRecord> = new
                        .data
                        .iter()
                        .map(|d| ApiRecord {
                            content: to_content(d),
                            disabled: false,
                        })
                        .collect();
                    if let Some(existing) = current.iter().find(|s| {
                        s.rtype == rtype.to_string() && Name::parse(&s.name).as_ref() == Ok(name)
                    }) {
                        records.extend(existing.records.iter().filter(|r| r.disabled).cloned());
                    }
                    rrsets.push(ApiRrset {
                        name: name.fqdn(),
                        rtype: rtype.to_string(),
                        ttl: Some(new.ttl),
                        changetype: Some("REPLACE".to_string()),
                        records,
                    });
                }
            }
        }
        if seen.exists {
            let body = serde_json::json!({ "rrsets": rrsets });
            self.write(zone, "PATCH", &self.zone_url(zone), &body, seen, changes)?;
        } else {
            for r in &mut rrsets {
                r.changetype = None;
            }
            rrsets.retain(|r| !r.records.is_empty());
            let body = serde_json::json!({
                "name": zone.fqdn(),
                "kind": "Native",
                "nameservers": self.nameservers,
                "rrsets": rrsets,
            });
            self.write(
                zone,
                "POST",
                &format!("{}/zones", self.base),
                &body,
                seen,
                changes,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_content_parsing() {
        let cases: &[(&str, &[&[u8]])] = &[
            (r#""v=spf1 -all""#, &[b"v=spf1 -all"]),
            (r#""a" "b c""#, &[b"a", b"b c"]),
            (r#""q\"uote\\d""#, &[b"q\"uote\\d"]),
            (r#""\010x""#, &[b"\nx"]),
            ("bare", &[b"bare"]),
        ];
        for (content, want) in cases {
            let got = parse_txt_content(content).unwrap();
            let want: Vec<Vec<u8>> = want.iter().map(|s| s.to_vec()).collect();
            assert_eq!(got, want, "{content}");
        }
        assert_eq!(parse_txt_content(r#""unterminated"#), None);
    }

    #[test]
    fn long_txt_round_trips_through_content() {
        let value = "v=DKIM1; p=".to_string() + &"A".repeat(600);
        let content = to_content(&RData::txt(&value));
        assert_eq!(content.matches('"').count(), 6, "three quoted strings");
        let back = to_rdata(&RType::Txt, &content);
        assert_eq!(back.txt_value().as_deref(), Some(value.as_str()));
        // The API returns a long string unsplit; it must compare equal.
        let unsplit = format!("\"{value}\"");
        assert_eq!(to_rdata(&RType::Txt, &unsplit), RData::txt(&value));
    }

    #[test]
    fn version_ignores_order_but_not_content() {
        let a = ApiRrset {
            name: "a.example.test.".into(),
            rtype: "TXT".into(),
            ttl: Some(300),
            changetype: None,
            records: vec![ApiRecord {
                content: "\"x\"".into(),
                disabled: false,
            }],
        };
        let mut b = a.clone();
        b.name = "b.example.test.".into();
        assert_eq!(
            version_of(&[a.clone(), b.clone()]),
            version_of(&[b.clone(), a.clone()])
        );
        let mut c = b.clone();
        c.ttl = Some(301);
        assert_ne!(version_of(&[a.clone(), b]), version_of(&[a, c]));
    }
}
