//! Cloudflare DNS through API v4: finds the zone by name, reads its records
//! page by page, and maps RRset changes onto record operations (POST, PATCH,
//! DELETE on `/zones/:id/dns_records`), since Cloudflare stores records one
//! by one, each with its own id.
//!
//! This module owns the HTTP exchange, the token reference, the record/RRset
//! mapping and the stale check; it decides nothing about what to change.
//! Cloudflare has no conditional write, so the stale check re-reads the
//! records just before writing and compares them with the version (a
//! SHA-256 of every record, `modified_on` included) the plan saw.
//!
//! A write (POST, PATCH, DELETE) that times out after it was sent is not
//! sent again blindly: the records are re-read, and the write counts as
//! done if its effect is there, or is sent once more if it is not. The
//! base URL must be HTTPS, or plain HTTP to loopback, or plain HTTP with
//! `allow_plain_http: true`.

pub use super::config::CloudflareConfig;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use super::powerdns::parse_txt_content;
use super::rfc2136::read_secret;
use super::{Capabilities, Change, Fetched, Provider, ProviderError};
use crate::http::{Answer, HttpApi, HttpError, RetryPolicy};
use crate::record::{Name, RData, RType, RecordSet, Zone, txt};

const PROVIDER: &str = "cloudflare";

/// Backoff of 250 ms doubling up to 5 s; a 429's `Retry-After` is waited
/// for, up to a minute (a longer wait would stall the whole plan; the
/// retry then most likely fails and reports the 429).
fn retry_policy(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        base: Duration::from_millis(250),
        max_shift: 5,
        max_backoff: Duration::from_secs(5),
        max_retry_after: Some(Duration::from_secs(60)),
    }
}

/// Why one API call failed, before it gets a zone and becomes a
/// [`ProviderError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudflareError {
    #[error("{method} {path}: {detail}")]
    Transport {
        method: &'static str,
        path: String,
        detail: String,
    },
    #[error("{method} {path}: HTTP {status}: {errors}")]
    Api {
        method: &'static str,
        path: String,
        status: u16,
        /// `code: message` of each entry of the answer's `errors`.
        errors: String,
    },
    #[error("{path}: unexpected answer: {detail}")]
    Decode { path: String, detail: String },
    /// A write got no answer after it was sent (see [`HttpError::Uncertain`]).
    #[error("{0}")]
    Uncertain(String),
    /// A redirect to another origin, not followed.
    #[error("{0}")]
    Redirected(String),
}

/// The envelope of every v4 answer:
/// `{success, errors: [{code, message}], messages, result, result_info}`.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    code: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    page: u32,
    total_pages: u32,
}

#[derive(Debug, Deserialize)]
struct ApiZone {
    id: String,
}

#[derive(Clone, Debug, Deserialize)]
struct ApiRecord {
    id: String,
    #[serde(rename = "type")]
    rtype: String,
    name: String,
    content: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    priority: Option<u16>,
    #[serde(default)]
    modified_on: Option<String>,
}

/// A Cloudflare account reached with one API token.
pub struct Cloudflare {
    base: String,
    token: String,
    page_size: u32,
    http: HttpApi,
}

impl std::fmt::Debug for Cloudflare {
    // The token stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloudflare")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Cloudflare {
    pub fn from_config(cfg: &CloudflareConfig) -> Result<Self, ProviderError> {
        let token = read_secret(
            PROVIDER,
            cfg.secret_env.as_deref(),
            cfg.secret_file.as_deref(),
        )?;
        super::check_url(PROVIDER, "base_url", &cfg.base_url, cfg.allow_plain_http)?;
        if !(5..=5_000_000).contains(&cfg.page_size) {
            return Err(ProviderError::Rejected {
                provider: PROVIDER.to_string(),
                zone: "-".to_string(),
                detail: format!("page_size {} is outside 5..=5000000", cfg.page_size),
            });
        }
        let http = super::http_api(
            PROVIDER,
            Duration::from_secs(cfg.timeout_secs.max(1)),
            retry_policy(cfg.retries),
        )?;
        Ok(Cloudflare {
            base: cfg.base_url.trim_end_matches('/').to_string(),
            token,
            page_size: cfg.page_size,
            http,
        })
    }

    /// One call, retried on transient failures (see [`retry_policy`]);
    /// returns `result` and `result_info`.
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(T, Option<ResultInfo>), CloudflareError> {
        let url = format!("{}{path}", self.base);
        let Answer { status, body: text } = self
            .http
            .send(method, &url, body, |req| req.bearer_auth(&self.token))
            .map_err(|e| match e {
                HttpError::Transport { detail, .. } => CloudflareError::Transport {
                    method,
                    path: path.to_string(),
                    detail,
                },
                e @ HttpError::Uncertain { .. } => CloudflareError::Uncertain(e.to_string()),
                e => CloudflareError::Redirected(e.to_string()),
            })?;
        let envelope: Result<Envelope<T>, _> = serde_json::from_str(&text);
        match envelope {
            Ok(env) if status.is_success() && env.success => match env.result {
                Some(r) => Ok((r, env.result_info)),
                None => Err(CloudflareError::Decode {
                    path: path.to_string(),
                    detail: "success without a result".to_string(),
                }),
            },
            Ok(env) => Err(CloudflareError::Api {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                errors: env
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
            Err(_) if !status.is_success() || status == StatusCode::NO_CONTENT => {
                Err(CloudflareError::Api {
                    method,
                    path: path.to_string(),
                    status: status.as_u16(),
                    errors: text.chars().take(300).collect(),
                })
            }
            Err(e) => Err(CloudflareError::Decode {
                path: path.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    fn error(&self, zone: &Name, e: CloudflareError) -> ProviderError {
        let provider = self.id();
        let zone = zone.to_string();
        match &e {
            CloudflareError::Transport { .. } | CloudflareError::Uncertain(_) => {
                ProviderError::Unreachable {
                    provider,
                    zone,
                    detail: e.to_string(),
                }
            }
            CloudflareError::Redirected(_) => ProviderError::Rejected {
                provider,
                zone,
                detail: e.to_string(),
            },
            CloudflareError::Api { status, .. } if *status == 401 || *status == 403 => {
                ProviderError::Auth {
                    provider,
                    zone,
                    detail: format!("API token rejected: {e}"),
                }
            }
            CloudflareError::Api { status, .. } if *status == 429 || *status >= 500 => {
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

    fn zone_id(&self, zone: &Name) -> Result<Option<String>, ProviderError> {
        let (zones, _): (Vec<ApiZone>, _) = self
            .call("GET", &format!("/zones?name={}", zone.as_str()), None)
            .map_err(|e| self.error(zone, e))?;
        Ok(zones.into_iter().next().map(|z| z.id))
    }

    /// Every record of the zone, following `result_info` page by page.
    fn records(&self, zone: &Name, id: &str) -> Result<Vec<ApiRecord>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let path = format!(
                "/zones/{id}/dns_records?page={page}&per_page={}",
                self.page_size
            );
            let (batch, info): (Vec<ApiRecord>, _) = self
                .call("GET", &path, None)
                .map_err(|e| self.error(zone, e))?;
            let done = batch.is_empty() || info.as_ref().is_none_or(|i| i.page >= i.total_pages);
            out.extend(batch);
            if done {
                return Ok(out);
            }
            page += 1;
        }
    }
}

/// The wait, in seconds, a `Retry-After` value (delay-seconds or an
/// HTTP-date, RFC 9110 §10.2.3) asks for at `now` (Unix seconds), as this
/// provider reads it from a 429. Public for the fuzz targets.
pub fn retry_after_secs(value: &str, now: i64) -> Option<u64> {
    crate::http::retry_after(value, now).map(|d| d.as_secs())
}

fn version_of(records: &[ApiRecord]) -> String {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?} {} {:?}",
                r.id,
                r.name.to_ascii_lowercase(),
                r.rtype,
                r.ttl,
                r.priority,
                r.content,
                r.modified_on
            )
        })
        .collect();
    lines.sort();
    let digest = ring::digest::digest(&ring::digest::SHA256, lines.join("\n").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Cloudflare record → (name, type, ttl, data).
fn to_rdata(r: &ApiRecord) -> Option<(Name, RType, u32, RData)> {
    let name = Name::parse(&r.name).ok()?;
    let rtype = RType::parse(&r.rtype);
    let data = match rtype {
        // Content is either quoted character-strings or, as the dashboard
        // writes it, one bare value.
        RType::Txt if r.content.trim_start().starts_with('"') => {
            RData::Txt(parse_txt_content(&r.content)?)
        }
        RType::Txt => RData::txt(&r.content),
        RType::Cname => RData::Cname(Name::parse(&r.content).ok()?),
        RType::Mx => RData::Mx {
            preference: r.priority.unwrap_or(0),
            exchange: Name::parse(&r.content).ok()?,
        },
        _ => RData::Raw(r.content.clone()),
    };
    Some((name, rtype, r.ttl, data))
}

/// Our record → the API's record body.
fn body(name: &Name, rtype: &RType, ttl: u32, data: &RData) -> serde_json::Value {
    let mut b = serde_json::json!({
        "type": rtype.to_string(),
        "name": name.as_str(),
        "ttl": ttl,
    });
    match data {
        RData::Txt(strings) => {
            b["content"] = txt::present(&txt::split(&txt::join(strings))).into();
        }
        RData::Mx {
            preference,
            exchange,
        } => {
            b["content"] = exchange.as_str().into();
            b["priority"] = (*preference).into();
        }
        RData::Cname(n) => b["content"] = n.as_str().into(),
        RData::Raw(s) => b["content"] = s.clone().into(),
    }
    b
}

impl Provider for Cloudflare {
    fn id(&self) -> String {
        format!("{PROVIDER}:{}", self.base)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            types: vec![RType::Txt, RType::Cname, RType::Mx, RType::A, RType::Aaaa],
            // "The Content for each TXT record must be 2,048 characters or
            // less" (Cloudflare DNS record types reference).
            max_txt_len: 2048,
            // Proxied CNAMEs are flattened; mailauth writes DNS-only ones.
            cname: true,
        }
    }

    fn fetch(&self, zone: &Name) -> Result<Fetched, ProviderError> {
        let Some(id) = self.zone_id(zone)? else {
            return Ok(Fetched {
                zone: Zone::new(zone.clone()),
                version: "absent".to_string(),
                exists: false,
            });
        };
        let records = self.records(zone, &id)?;
        let mut out = Zone::new(zone.clone());
        for r in &records {
            if let Some((name, rtype, ttl, data)) = to_rdata(r)
                && name.is_within(zone)
            {
                out.insert(RecordSet::new(name, rtype, ttl, vec![data]));
            }
        }
        Ok(Fetched {
            zone: out,
            version: version_of(&records),
            exists: true,
        })
    }

    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let Some(id) = self.zone_id(zone)? else {
            return Err(ProviderError::Rejected {
                provider: self.id(),
                zone: zone.to_string(),
                detail: "the zone does not exist in this account; add it in Cloudflare first"
                    .to_string(),
            });
        };
        let current = self.records(zone, &id)?;
        if version_of(&current) != seen.version {
            return Err(ProviderError::Stale {
                provider: self.id(),
                zone: zone.to_string(),
                detail: "the zone's records differ from those the plan read".to_string(),
            });
        }
        // (name, type) → [(data, record id)] as served now.
        let mut ids: BTreeMap<(Name, RType), Vec<(RData, String)>> = BTreeMap::new();
        for r in &current {
            if let Some((name, rtype, _, data)) = to_rdata(r) {
                ids.entry((name, rtype))
                    .or_default()
                    .push((data, r.id.clone()));
            }
        }
        let id_of = |set: &RecordSet, data: &RData| -> Option<String> {
            ids.get(&set.key())?
                .iter()
                .find(|(d, _)| d == data)
                .map(|(_, i)| i.clone())
        };
        let records_path = format!("/zones/{id}/dns_records");
        // One write. After an uncertain outcome the records are re-read:
        // done if `holds` finds the effect, sent once more if not.
        let run = |method: &'static str,
                   path: String,
                   b: Option<serde_json::Value>,
                   holds: &dyn Fn(&[ApiRecord]) -> bool| {
            let mut resent = false;
            loop {
                let detail = match self.call::<serde_json::Value>(method, &path, b.as_ref()) {
                    Ok(_) => return Ok(()),
                    Err(CloudflareError::Uncertain(detail)) => detail,
                    Err(e) => return Err(self.error(zone, e)),
                };
                if holds(&self.records(zone, &id)?) {
                    return Ok(());
                }
                if resent {
                    return Err(self.error(zone, CloudflareError::Uncertain(detail)));
                }
                resent = true;
            }
        };
        // The effect of each kind of write, as the re-read shows it.
        let has = |name: &Name, rtype: &RType, ttl: u32, data: &RData| {
            let want = (name.clone(), rtype.clone(), ttl, data.clone());
            move |rs: &[ApiRecord]| rs.iter().any(|r| to_rdata(r).as_ref() == Some(&want))
        };
        let gone = |rid: String| move |rs: &[ApiRecord]| !rs.iter().any(|r| r.id == rid);
        let rewritten = |rid: String, name: &Name, rtype: &RType, ttl: u32, data: &RData| {
            let want = (name.clone(), rtype.clone(), ttl, data.clone());
            move |rs: &[ApiRecord]| {
                rs.iter()
                    .any(|r| r.id == rid && to_rdata(r).as_ref() == Some(&want))
            }
        };
        for change in changes {
            if !change.name().is_within(zone) {
                return Err(ProviderError::Rejected {
                    provider: self.id(),
                    zone: zone.to_string(),
                    detail: format!("{} is outside the zone", change.name()),
                });
            }
            match change {
                Change::Create { new } => {
                    for d in &new.data {
                        run(
                            "POST",
                            records_path.clone(),
                            Some(body(&new.name, &new.rtype, new.ttl, d)),
                            &has(&new.name, &new.rtype, new.ttl, d),
                        )?;
                    }
                }
                Change::Delete { old } => {
                    for d in &old.data {
                        if let Some(rid) = id_of(old, d) {
                            let path = format!("{records_path}/{rid}");
                            run("DELETE", path, None, &gone(rid))?;
                        }
                    }
                }
                Change::Update { old, new } => {
                    let removed: Vec<&RData> =
                        old.data.iter().filter(|d| !new.data.contains(d)).collect();
                    let added: Vec<&RData> =
                        new.data.iter().filter(|d| !old.data.contains(d)).collect();
                    // Rewrite removed records in place with added content:
                    // the name never goes without a record, ids stay.
                    for (r, a) in removed.iter().zip(added.iter()) {
                        if let Some(rid) = id_of(old, r) {
                            run(
                                "PATCH",
                                format!("{records_path}/{rid}"),
                                Some(body(&new.name, &new.rtype, new.ttl, a)),
                                &rewritten(rid, &new.name, &new.rtype, new.ttl, a),
                            )?;
                        } else {
                            run(
                                "POST",
                                records_path.clone(),
                                Some(body(&new.name, &new.rtype, new.ttl, a)),
                                &has(&new.name, &new.rtype, new.ttl, a),
                            )?;
                        }
                    }
                    for a in added.iter().skip(removed.len()) {
                        run(
                            "POST",
                            records_path.clone(),
                            Some(body(&new.name, &new.rtype, new.ttl, a)),
                            &has(&new.name, &new.rtype, new.ttl, a),
                        )?;
                    }
                    for r in removed.iter().skip(added.len()) {
                        if let Some(rid) = id_of(old, r) {
                            let path = format!("{records_path}/{rid}");
                            run("DELETE", path, None, &gone(rid))?;
                        }
                    }
                    if old.ttl != new.ttl {
                        for d in new.data.iter().filter(|d| old.data.contains(d)) {
                            if let Some(rid) = id_of(old, d) {
                                run(
                                    "PATCH",
                                    format!("{records_path}/{rid}"),
                                    Some(serde_json::json!({ "ttl": new.ttl })),
                                    &rewritten(rid, &new.name, &new.rtype, new.ttl, d),
                                )?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(content: &str, rtype: &str) -> ApiRecord {
        ApiRecord {
            id: "1".into(),
            rtype: rtype.into(),
            name: "example.test".into(),
            content: content.into(),
            ttl: 300,
            priority: Some(10),
            modified_on: None,
        }
    }

    #[test]
    fn txt_content_forms() {
        let bare = to_rdata(&rec("v=spf1 mx -all", "TXT")).unwrap().3;
        assert_eq!(bare, RData::txt("v=spf1 mx -all"));
        let quoted = to_rdata(&rec("\"v=spf1 mx\" \" -all\"", "TXT")).unwrap().3;
        assert_eq!(quoted, RData::txt("v=spf1 mx -all"));
        let mx = to_rdata(&rec("mx1.example.test", "MX")).unwrap().3;
        assert_eq!(
            mx,
            RData::Mx {
                preference: 10,
                exchange: Name::parse("mx1.example.test").unwrap()
            }
        );
    }

    #[test]
    fn long_txt_body_is_split_into_quoted_strings() {
        let n = Name::parse("s._domainkey.example.test").unwrap();
        let b = body(&n, &RType::Txt, 300, &RData::txt(&"a".repeat(510)));
        let content = b["content"].as_str().unwrap();
        assert_eq!(content.len(), 510 + 4 + 1);
        assert_eq!(
            to_rdata(&ApiRecord {
                content: content.to_string(),
                ..rec("", "TXT")
            })
            .unwrap()
            .3
            .txt_value()
            .map(|v| v.len()),
            Some(510)
        );
    }
}
