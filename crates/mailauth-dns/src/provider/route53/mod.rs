//! Amazon Route 53 through its REST API (version 2013-04-01): finds the
//! hosted zone by name, reads its RRsets page by page
//! (ListResourceRecordSets with the `name`/`type`/`identifier` cursor),
//! writes each plan as one ChangeResourceRecordSets batch and polls
//! GetChange until the change is `INSYNC`, for a bounded time.
//!
//! This module owns the Route 53 wire format (XML both ways), AWS
//! Signature Version 4 request signing, where the AWS credentials come
//! from (the standard environment variables, the shared credentials and
//! config files, profiles; never the mailauth config), throttling and the
//! stale check. It decides nothing about what to change.
//! Its parts: `credentials` (where they come from), `sigv4` (request
//! signing) and `wire` (the XML, RRsets and the change batch); this file
//! keeps the configuration, the calls and the [`Provider`] methods.
//!
//! Route 53 has no conditional write on a zone. Two guards stand in for
//! one: the records are re-read just before writing and compared with the
//! version (a SHA-256 of every RRset) the plan saw; and the batch itself
//! carries a DELETE of the exact current values of every RRset it changes
//! followed by a CREATE of the new ones (never UPSERT, which overwrites
//! whatever is there), so that Route 53 refuses the whole batch if one of
//! those RRsets moved between the re-read and the write.
//!
//! Requests go through [`crate::http::HttpApi`]: the endpoint must be
//! HTTPS, or plain HTTP to loopback or with `allow_plain_http: true`, and
//! a redirect to another origin is not followed, so the signed request
//! goes to the configured host only.

pub use crate::provider::config::Route53Config;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::powerdns::parse_txt_content;
use super::{Capabilities, Change, Fetched, Provider, ProviderError};
use crate::http::{Answer, HttpApi, HttpError, RetryPolicy};
use crate::record::{Name, RData, RType, RecordSet, Zone, txt};

mod credentials;
mod sigv4;
mod wire;

pub use credentials::{Credentials, resolve_credentials};
use sigv4::*;
pub use sigv4::{SignRequest, sign_v4};
use wire::*;

const PROVIDER: &str = "route53";
const API: &str = "/2013-04-01";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// Route 53 is a global service signed in us-east-1.
const REGION: &str = "us-east-1";
const SERVICE: &str = "route53";
/// Pages read before a listing is given up as a loop.
const MAX_PAGES: usize = 10_000;

/// Backoff of 200 ms doubling up to 10 s, as the Route 53 guide asks of
/// throttled clients.
fn retry_policy(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        base: Duration::from_millis(200),
        max_shift: 6,
        max_backoff: Duration::from_secs(10),
        max_retry_after: Some(Duration::from_secs(30)),
    }
}

// ------------------------------------------------------------ credentials

/// Why one API call failed, before it gets a zone.
#[derive(Debug)]
enum CallError {
    Transport(String),
    Uncertain(String),
    Redirected(String),
    Api {
        status: u16,
        code: String,
        message: String,
        what: String,
    },
    Decode(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(d) | CallError::Uncertain(d) | CallError::Redirected(d) => {
                f.write_str(d)
            }
            CallError::Api {
                status,
                code,
                message,
                what,
            } => write!(f, "{what}: HTTP {status}: {code}: {message}"),
            CallError::Decode(d) => write!(f, "unexpected answer: {d}"),
        }
    }
}

fn throttled(status: u16, code: &str) -> bool {
    matches!(
        code,
        "Throttling" | "ThrottlingException" | "PriorRequestNotComplete" | "RequestLimitExceeded"
    ) || status == 429
        || status == 503
}

fn auth_code(status: u16, code: &str) -> bool {
    status == 403
        || matches!(
            code,
            "SignatureDoesNotMatch"
                | "InvalidClientTokenId"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
                | "AccessDenied"
                | "AccessDeniedException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
        )
}

/// A Route 53 account reached with one set of AWS credentials.
pub struct Route53 {
    endpoint: String,
    host: String,
    creds: Credentials,
    hosted_zone_id: Option<String>,
    page_size: u32,
    policy: RetryPolicy,
    sync_timeout: Duration,
    http: HttpApi,
}

impl std::fmt::Debug for Route53 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53")
            .field("endpoint", &self.endpoint)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl Route53 {
    /// Builds the provider, reading the credentials from the process
    /// environment and the AWS files (see [`resolve_credentials`]).
    pub fn from_config(cfg: &Route53Config) -> Result<Self, ProviderError> {
        let creds = resolve_credentials(cfg.profile.as_deref(), &|k| std::env::var(k).ok())
            .map_err(|detail| ProviderError::Auth {
                provider: PROVIDER.to_string(),
                zone: "-".to_string(),
                detail,
            })?;
        Self::with_credentials(cfg, creds)
    }

    /// Builds the provider with credentials found elsewhere.
    pub fn with_credentials(
        cfg: &Route53Config,
        creds: Credentials,
    ) -> Result<Self, ProviderError> {
        let bad = |detail: String| ProviderError::Rejected {
            provider: PROVIDER.to_string(),
            zone: "-".to_string(),
            detail,
        };
        super::check_url(PROVIDER, "endpoint", &cfg.endpoint, cfg.allow_plain_http)?;
        let url = reqwest::Url::parse(&cfg.endpoint).map_err(|e| bad(e.to_string()))?;
        let mut host = url.host_str().unwrap_or_default().to_string();
        if let Some(port) = url.port() {
            host = format!("{host}:{port}");
        }
        if !(1..=300).contains(&cfg.page_size) {
            return Err(bad(format!(
                "provider.page_size {} is outside 1..=300",
                cfg.page_size
            )));
        }
        // Throttling is retried here, not by the transport, so that a
        // POST is resent only when Route 53 said it was not applied.
        let transport = RetryPolicy {
            retries: 0,
            ..retry_policy(0)
        };
        let http = super::http_api(
            PROVIDER,
            Duration::from_secs(cfg.timeout_secs.max(1)),
            transport,
        )?;
        Ok(Route53 {
            endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
            host,
            creds,
            hosted_zone_id: cfg
                .hosted_zone_id
                .as_ref()
                .map(|z| z.trim_start_matches("/hostedzone/").to_string()),
            page_size: cfg.page_size,
            policy: retry_policy(cfg.retries),
            sync_timeout: Duration::from_secs(cfg.sync_timeout_secs),
            http,
        })
    }

    /// One signed request, sent again while Route 53 throttles it (which
    /// means it was not applied), with backoff; a GET also after a
    /// transport failure or a 5xx. Returns the parsed answer.
    fn call(
        &self,
        method: &'static str,
        path: &str,
        query: &[(String, String)],
        body: Option<&str>,
        what: &str,
    ) -> Result<El, CallError> {
        let mut attempt = 0;
        loop {
            let result = self.once(method, path, query, body, what);
            let retry = match &result {
                Err(CallError::Api { status, code, .. }) => throttled(*status, code),
                Err(CallError::Transport(_)) => true,
                _ => false,
            };
            match retry.then(|| self.policy.delay(attempt, None)).flatten() {
                Some(wait) => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                None => return result,
            }
        }
    }

    fn once(
        &self,
        method: &'static str,
        path: &str,
        query: &[(String, String)],
        body: Option<&str>,
        what: &str,
    ) -> Result<El, CallError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let date = amz_date(now);
        let payload = body.unwrap_or("").as_bytes();
        let mut headers = vec![("x-amz-date".to_string(), date.clone())];
        if body.is_some() {
            headers.push(("content-type".to_string(), "text/xml".to_string()));
        }
        if let Some(token) = &self.creds.session_token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
        }
        let auth = sign_v4(
            &SignRequest {
                method,
                host: &self.host,
                path,
                query,
                headers: &headers,
                body: payload,
            },
            &self.creds,
            &date,
            REGION,
            SERVICE,
        );
        let mut url = format!("{}{path}", self.endpoint);
        if !query.is_empty() {
            url.push('?');
            url.push_str(
                &query
                    .iter()
                    .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        let body_owned = body.map(str::to_string);
        let Answer { status, body: text } = self
            .http
            .send(method, &url, None, |mut req| {
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req = req.header("authorization", auth.as_str());
                if let Some(b) = &body_owned {
                    req = req.body(b.clone());
                }
                req
            })
            .map_err(|e| match e {
                HttpError::Transport { .. } => CallError::Transport(e.to_string()),
                HttpError::Uncertain { .. } => CallError::Uncertain(e.to_string()),
                e => CallError::Redirected(e.to_string()),
            })?;
        let parsed = parse_xml(&text);
        if status.is_success() {
            return parsed.map_err(|e| CallError::Decode(format!("{what}: {e}")));
        }
        let (code, message) = match &parsed {
            // <ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>
            Ok(el) if el.name == "ErrorResponse" => {
                let e = el.child("Error");
                (
                    e.and_then(|e| e.text_of("Code")).unwrap_or("").to_string(),
                    e.and_then(|e| e.text_of("Message"))
                        .unwrap_or("")
                        .to_string(),
                )
            }
            // <InvalidChangeBatch><Messages><Message/>…</Messages></InvalidChangeBatch>
            Ok(el) => (
                el.name.clone(),
                el.child("Messages")
                    .map(|m| {
                        m.all("Message")
                            .map(|x| x.text.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .or_else(|| el.text_of("Message").map(str::to_string))
                    .unwrap_or_default(),
            ),
            Err(_) => (String::new(), text.chars().take(300).collect()),
        };
        let clean =
            |s: String| -> String { s.chars().filter(|c| !c.is_control()).take(500).collect() };
        Err(CallError::Api {
            status: status.as_u16(),
            code: clean(code),
            message: clean(message),
            what: what.to_string(),
        })
    }

    fn error(&self, zone: &Name, e: CallError) -> ProviderError {
        let provider = self.id();
        let zone = zone.to_string();
        let detail = e.to_string();
        match &e {
            CallError::Transport(_) | CallError::Uncertain(_) => ProviderError::Unreachable {
                provider,
                zone,
                detail,
            },
            CallError::Api { status, code, .. } if auth_code(*status, code) => {
                ProviderError::Auth {
                    provider,
                    zone,
                    detail: format!(
                        "AWS credentials ({}, key {}) rejected: {detail}",
                        self.creds.source, self.creds.access_key_id
                    ),
                }
            }
            CallError::Api { status, code, .. } if throttled(*status, code) => {
                ProviderError::Unreachable {
                    provider,
                    zone,
                    detail: format!("still throttled after the retries: {detail}"),
                }
            }
            _ => ProviderError::Rejected {
                provider,
                zone,
                detail,
            },
        }
    }

    /// The hosted zone's id (without `/hostedzone/`), or `None` when no
    /// hosted zone has that name.
    fn zone_id(&self, zone: &Name) -> Result<Option<String>, ProviderError> {
        if let Some(id) = &self.hosted_zone_id {
            return Ok(Some(id.clone()));
        }
        let fqdn = format!("{}.", zone.as_str());
        let el = self
            .call(
                "GET",
                &format!("{API}/hostedzonesbyname"),
                &[
                    ("dnsname".to_string(), fqdn.clone()),
                    ("maxitems".to_string(), "10".to_string()),
                ],
                None,
                "ListHostedZonesByName",
            )
            .map_err(|e| self.error(zone, e))?;
        let zones = el.child("HostedZones");
        let matching: Vec<&El> = zones
            .into_iter()
            .flat_map(|z| z.all("HostedZone"))
            .filter(|z| {
                z.text_of("Name")
                    .is_some_and(|n| n.eq_ignore_ascii_case(&fqdn))
            })
            .collect();
        let public: Vec<&El> = matching
            .iter()
            .copied()
            .filter(|z| {
                z.child("Config")
                    .and_then(|c| c.text_of("PrivateZone"))
                    .is_none_or(|p| p.trim() != "true")
            })
            .collect();
        match public.as_slice() {
            [] => Ok(None),
            [one] => Ok(one
                .text_of("Id")
                .map(|id| id.trim().trim_start_matches("/hostedzone/").to_string())),
            _ => Err(ProviderError::Rejected {
                provider: self.id(),
                zone: zone.to_string(),
                detail: format!(
                    "{} public hosted zones are named {fqdn}; set provider.hosted_zone_id",
                    public.len()
                ),
            }),
        }
    }

    /// Every RRset of the hosted zone, following the
    /// `NextRecordName`/`NextRecordType`/`NextRecordIdentifier` cursor.
    fn rrsets(&self, zone: &Name, id: &str) -> Result<Vec<ApiRrset>, ProviderError> {
        let mut out = Vec::new();
        let mut cursor: Option<(String, String, Option<String>)> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("maxitems".to_string(), self.page_size.to_string())];
            if let Some((name, rtype, ident)) = &cursor {
                query.push(("name".to_string(), name.clone()));
                query.push(("type".to_string(), rtype.clone()));
                if let Some(i) = ident {
                    query.push(("identifier".to_string(), i.clone()));
                }
            }
            let el = self
                .call(
                    "GET",
                    &format!("{API}/hostedzone/{id}/rrset"),
                    &query,
                    None,
                    "ListResourceRecordSets",
                )
                .map_err(|e| self.error(zone, e))?;
            if let Some(sets) = el.child("ResourceRecordSets") {
                out.extend(sets.all("ResourceRecordSet").map(rrset_of));
            }
            let truncated = el
                .text_of("IsTruncated")
                .is_some_and(|t| t.trim() == "true");
            if !truncated {
                return Ok(out);
            }
            let next = (
                el.text_of("NextRecordName").unwrap_or_default().to_string(),
                el.text_of("NextRecordType").unwrap_or_default().to_string(),
                el.text_of("NextRecordIdentifier").map(str::to_string),
            );
            if next.0.is_empty() || cursor.as_ref() == Some(&next) {
                return Err(ProviderError::Rejected {
                    provider: self.id(),
                    zone: zone.to_string(),
                    detail: "ListResourceRecordSets: truncated answer without a new cursor"
                        .to_string(),
                });
            }
            cursor = Some(next);
        }
        Err(ProviderError::Rejected {
            provider: self.id(),
            zone: zone.to_string(),
            detail: format!("ListResourceRecordSets: more than {MAX_PAGES} pages"),
        })
    }

    /// Polls GetChange until `INSYNC`, at most `sync_timeout`.
    fn wait_insync(&self, zone: &Name, change_id: &str) -> Result<(), ProviderError> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(500);
        loop {
            let el = self
                .call(
                    "GET",
                    &format!("{API}/change/{change_id}"),
                    &[],
                    None,
                    "GetChange",
                )
                .map_err(|e| self.error(zone, e))?;
            let status = el
                .child("ChangeInfo")
                .and_then(|c| c.text_of("Status"))
                .unwrap_or("")
                .trim()
                .to_string();
            if status == "INSYNC" {
                return Ok(());
            }
            if start.elapsed() + wait > self.sync_timeout {
                return Err(ProviderError::Rejected {
                    provider: self.id(),
                    zone: zone.to_string(),
                    detail: format!(
                        "change {change_id} was accepted but is still {status:?} after {} s; \
                         Route 53 applies it on its own (a new plan shows what is left)",
                        self.sync_timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }
}

impl Provider for Route53 {
    fn id(&self) -> String {
        format!("{PROVIDER}:{}", self.endpoint)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            types: vec![RType::Txt, RType::Cname, RType::Mx, RType::A, RType::Aaaa],
            // "The maximum length of a value in a TXT record is 4,000
            // characters" (Route 53 developer guide, TXT record type); the
            // value carries quotes and spaces: 3 characters per 255-octet
            // string, so 3,950 octets fit.
            max_txt_len: 3950,
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
        let rrsets = self.rrsets(zone, &id)?;
        let mut out = Zone::new(zone.clone());
        for r in &rrsets {
            if let Some(set) = to_set(r)
                && set.name.is_within(zone)
            {
                out.insert(set);
            }
        }
        Ok(Fetched {
            zone: out,
            version: version_of(&rrsets),
            exists: true,
        })
    }

    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rejected = |detail: String| ProviderError::Rejected {
            provider: self.id(),
            zone: zone.to_string(),
            detail,
        };
        for c in changes {
            if !c.name().is_within(zone) {
                return Err(rejected(format!("{} is outside the zone", c.name())));
            }
        }
        let Some(id) = self.zone_id(zone)? else {
            return Err(rejected(
                "no public hosted zone has this name; create it in Route 53 first".to_string(),
            ));
        };
        let current = self.rrsets(zone, &id)?;
        if version_of(&current) != seen.version {
            return Err(ProviderError::Stale {
                provider: self.id(),
                zone: zone.to_string(),
                detail: "the hosted zone's record sets differ from those the plan read".to_string(),
            });
        }
        // A record set with a routing policy or an alias is not one
        // mailauth can rewrite as a plain RRset.
        for c in changes {
            let fqdn = format!("{}.", c.name().as_str());
            if current.iter().any(|r| {
                !r.extra.is_empty()
                    && decode_name(&r.name) == fqdn
                    && r.rtype == c.rtype().to_string()
            }) {
                return Err(rejected(format!(
                    "{} {} has an alias or a routing policy at Route 53; mailauth manages plain record sets only",
                    c.name(),
                    c.rtype()
                )));
            }
        }
        let body = batch_xml(changes);
        let path = format!("{API}/hostedzone/{id}/rrset/");
        let mut resent = false;
        let el = loop {
            match self.call("POST", &path, &[], Some(&body), "ChangeResourceRecordSets") {
                Ok(el) => break el,
                Err(CallError::Uncertain(detail)) => {
                    // Applied or not? The batch is atomic: the zone is
                    // either as the plan saw it (send once more) or moved.
                    let now = self.rrsets(zone, &id)?;
                    if version_of(&now) == seen.version && !resent {
                        resent = true;
                        continue;
                    }
                    let want_holds = changes.iter().all(|c| {
                        let key = (c.name().clone(), c.rtype().clone());
                        let got = now.iter().filter_map(to_set).find(|s| s.key() == key);
                        match c {
                            Change::Create { new } | Change::Update { new, .. } => {
                                got.as_ref() == Some(new)
                            }
                            Change::Delete { .. } => got.is_none(),
                        }
                    });
                    if want_holds {
                        return Ok(());
                    }
                    return Err(self.error(zone, CallError::Uncertain(detail)));
                }
                Err(e @ CallError::Api { .. }) => {
                    let stale = matches!(&e, CallError::Api { code, message, .. }
                        if code == "InvalidChangeBatch"
                            && (message.contains("not found")
                                || message.contains("do not match")
                                || message.contains("already exists")));
                    if stale {
                        return Err(ProviderError::Stale {
                            provider: self.id(),
                            zone: zone.to_string(),
                            detail: format!("Route 53 refused the change batch: {e}"),
                        });
                    }
                    return Err(self.error(zone, e));
                }
                Err(e) => return Err(self.error(zone, e)),
            }
        };
        let change_id = el
            .child("ChangeInfo")
            .and_then(|c| c.text_of("Id"))
            .map(|i| i.trim().trim_start_matches("/change/").to_string())
            .ok_or_else(|| rejected("ChangeResourceRecordSets: no ChangeInfo/Id".to_string()))?;
        self.wait_insync(zone, &change_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
            session_token: None,
            source: "test".to_string(),
        }
    }

    /// The worked example of the AWS General Reference ("Signature
    /// Version 4 signing process", IAM ListUsers, 2015-08-30).
    #[test]
    fn sigv4_matches_the_documented_example() {
        let c = creds("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let auth = sign_v4(
            &SignRequest {
                method: "GET",
                host: "iam.amazonaws.com",
                path: "/",
                query: &[
                    ("Action".to_string(), "ListUsers".to_string()),
                    ("Version".to_string(), "2010-05-08".to_string()),
                ],
                headers: &[
                    (
                        "Content-Type".to_string(),
                        "application/x-www-form-urlencoded; charset=utf-8".to_string(),
                    ),
                    ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
                ],
                body: b"",
            },
            &c,
            "20150830T123600Z",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn amz_date_format() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    }

    #[test]
    fn credentials_from_environment_then_profiles() {
        let dir = tempfile::tempdir().expect("tmp");
        let cred_file = dir.path().join("credentials");
        let conf_file = dir.path().join("config");
        std::fs::write(
            &cred_file,
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n\
             [ops]\n# comment\naws_access_key_id=AKOPS\naws_secret_access_key=s2\naws_session_token=tok\n",
        )
        .expect("write");
        std::fs::write(
            &conf_file,
            "[profile cfgonly]\naws_access_key_id = AKCFG\naws_secret_access_key = cfg-secret-value\n",
        )
        .expect("write");
        let files = |extra: &'static [(&'static str, &'static str)]| {
            let (c, f) = (cred_file.clone(), conf_file.clone());
            move |k: &str| -> Option<String> {
                match k {
                    "AWS_SHARED_CREDENTIALS_FILE" => Some(c.display().to_string()),
                    "AWS_CONFIG_FILE" => Some(f.display().to_string()),
                    _ => extra
                        .iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| v.to_string()),
                }
            }
        };
        let env = files(&[
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_SESSION_TOKEN", "tenv"),
        ]);
        let c = resolve_credentials(None, &env).expect("env");
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKENV", Some("tenv"))
        );
        // An explicit profile wins over the variables.
        let c = resolve_credentials(Some("ops"), &env).expect("profile");
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKOPS", Some("tok"))
        );
        let c = resolve_credentials(None, &files(&[])).expect("default");
        assert_eq!(c.access_key_id, "AKDEFAULT");
        let c = resolve_credentials(None, &files(&[("AWS_PROFILE", "cfgonly")])).expect("config");
        assert_eq!(c.access_key_id, "AKCFG");
        let err = resolve_credentials(Some("nope"), &files(&[])).expect_err("missing");
        assert!(
            err.contains("no AWS credentials") && err.contains("[nope]"),
            "{err}"
        );
        let err =
            resolve_credentials(None, &files(&[("AWS_ACCESS_KEY_ID", "AK")])).expect_err("half");
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        // A secret no temporary directory's name can hold by chance (the
        // debug output names the file the credentials came from).
        assert!(
            !format!("{c:?}").contains("cfg-secret-value"),
            "secret in debug output"
        );
    }

    #[test]
    fn values_round_trip() {
        let long = RData::txt(&"a".repeat(300));
        let v = to_value(&long);
        assert_eq!(v.matches('"').count(), 4);
        assert_eq!(to_rdata(&RType::Txt, &v), Some(long));
        let mx = to_rdata(&RType::Mx, "10 mx1.example.test.").expect("mx");
        assert_eq!(to_value(&mx), "10 mx1.example.test.");
        assert_eq!(decode_name("\\052.example.test."), "*.example.test.");
    }

    #[test]
    fn error_answers_parse() {
        let el = parse_xml(
            "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate &amp; exceeded</Message></Error>\
             <RequestId>x</RequestId></ErrorResponse>",
        )
        .expect("xml");
        assert_eq!(el.name, "ErrorResponse");
        let e = el.child("Error").expect("error");
        assert_eq!(e.text_of("Code"), Some("Throttling"));
        assert_eq!(e.text_of("Message"), Some("Rate & exceeded"));
        assert!(parse_xml("<a><b></a>").is_err());
    }
}
