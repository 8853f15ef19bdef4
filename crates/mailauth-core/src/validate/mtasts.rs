//! The MTA-STS policy check (RFC 8461 §3.3): fetch
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` the way a sending MTA
//! does, parse it (§3.2), compare it with what the config declares, and
//! check that every live MX host is covered by an `mx:` pattern (§4.1).
//!
//! This module owns the HTTPS fetch (trust anchors, the connect-to
//! override, redirects, status, media type, size and time limits) and the
//! verdicts about the policy. It leaves the `_mta-sts` TXT record to
//! [`super::mail`], the policy syntax to [`crate::record::mtasts`], and
//! name resolution to [`crate::dns::Resolver`]: the policy host is looked up
//! through the same resolver as every other check. The same strict client
//! also fetches BIMI logos and evidence documents for [`super::bimi`]
//! ([`PolicyFetcher::fetch_https`]).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{Check, Finding, Validator};
use crate::diff::Desired;
use crate::dns::{ResolveError, Resolver};
use crate::http::{error_chain, install_crypto_provider, user_agent};
use crate::record::Name;
use crate::record::mtasts::{Mode, MtaStsError, MtaStsPolicy};

/// RFC 8461 §3.3: "a suggested maximum policy size is 64 kilobytes".
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// The policy file's path on the policy host (RFC 8461 §3.3).
pub const WELL_KNOWN: &str = "/.well-known/mta-sts.txt";

/// `max_age` of a policy whose config leaves it out (see `mta_sts.max_age`
/// in the config reference).
pub const DEFAULT_MAX_AGE: u64 = 604_800;

/// Why a policy could not be fetched or read. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("{url}: cannot resolve {host}: {source}")]
    Resolve {
        url: String,
        host: String,
        #[source]
        source: Box<ResolveError>,
    },
    #[error("{url}: {host} has no A or AAAA record")]
    NoAddress { url: String, host: String },
    #[error("{url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{url}: no complete answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error(
        "{url}: HTTP {status} redirect to {location:?}: redirects must not be followed (RFC 8461 §3.3)"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("{url}: HTTP {status}: only 200 is a policy (RFC 8461 §3.3)")]
    Status { url: String, status: u16 },
    #[error("{url}: Content-Type is {found:?}, not text/plain (RFC 8461 §3.2)")]
    ContentType { url: String, found: String },
    #[error("{url}: the policy is larger than {limit} bytes (RFC 8461 §3.3)")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: the policy is not UTF-8 text")]
    Encoding { url: String },
    #[error("{url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: MtaStsError,
    },
    #[error("{path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error(
        "`--connect-to {value}`: expected HOST:PORT:ADDR:PORT with ADDR an IP address (IPv6 in brackets)"
    )]
    ConnectTo { value: String },
    #[error("cannot set up the HTTPS client: {detail}")]
    Setup { detail: String },
}

/// `--connect-to HOST:PORT:ADDR:PORT`: connect to `addr` when a URL names
/// `host` and `port`, as curl's option of the same name does. TLS still
/// checks the certificate against `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
}

impl std::str::FromStr for ConnectTo {
    type Err = PolicyError;

    fn from_str(value: &str) -> Result<ConnectTo, PolicyError> {
        let err = || PolicyError::ConnectTo {
            value: value.to_string(),
        };
        let (host, rest) = value.split_once(':').ok_or_else(err)?;
        let (port, addr) = rest.split_once(':').ok_or_else(err)?;
        let host = Name::parse(host).map_err(|_| err())?;
        if host.as_str().is_empty() {
            return Err(err());
        }
        let port: u16 = port.parse().map_err(|_| err())?;
        // ADDR:PORT, an IPv6 address in brackets.
        let addr: SocketAddr = addr.parse().map_err(|_| err())?;
        Ok(ConnectTo {
            host: host.as_str().to_string(),
            port,
            addr,
        })
    }
}

/// How policies are fetched.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// PEM certificates trusted in addition to the system's roots
    /// (`--ca-file`): a private PKI, or a test CA.
    pub ca_files: Vec<PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    /// For the whole exchange, connecting included.
    pub timeout: Duration,
    pub max_size: usize,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            ca_files: Vec::new(),
            connect_to: Vec::new(),
            // RFC 8461 §3.3: "A suggested timeout is one minute"; a
            // validator reports a slow host sooner.
            timeout: Duration::from_secs(10),
            max_size: MAX_POLICY_SIZE,
        }
    }
}

/// A policy as fetched, for the report.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FetchedPolicy {
    pub url: String,
    #[serde(flatten)]
    pub policy: MtaStsPolicy,
}

/// What the config declares about a domain's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredPolicy {
    /// `None` when the config's mode is not one of RFC 8461's (the config
    /// check reports it).
    pub mode: Option<Mode>,
    /// Lower case.
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl DeclaredPolicy {
    pub fn from_config(cfg: &crate::config::MtaStsConfig) -> DeclaredPolicy {
        let mode = match cfg.mode.value.as_str() {
            "enforce" => Some(Mode::Enforce),
            "testing" => Some(Mode::Testing),
            "none" => Some(Mode::None),
            _ => None,
        };
        DeclaredPolicy {
            mode,
            mx: cfg
                .mx
                .iter()
                .map(|m| m.value.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            max_age: cfg.max_age.unwrap_or(DEFAULT_MAX_AGE),
        }
    }
}

/// Host names resolved before a request, handed to the HTTP client.
#[derive(Clone, Default)]
struct Addresses(Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>);

impl reqwest::dns::Resolve for Addresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name.as_str().to_ascii_lowercase())
            .cloned();
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err(format!("{} was not resolved beforehand", name.as_str()).into()),
            }
        })
    }
}

/// Fetches policies: one HTTPS client for every domain, on the shared
/// runtime ([`crate::rt`]).
pub struct PolicyFetcher {
    settings: FetchSettings,
    http: reqwest::Client,
    addresses: Addresses,
    runtime: &'static tokio::runtime::Runtime,
}

impl std::fmt::Debug for PolicyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, PolicyError> {
    let err = |detail: String| PolicyError::CaFile {
        path: path.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".to_string()));
    }
    Ok(certs)
}

impl PolicyFetcher {
    pub fn new(settings: FetchSettings) -> Result<PolicyFetcher, PolicyError> {
        install_crypto_provider();
        let mut extra = Vec::new();
        for path in &settings.ca_files {
            extra.extend(read_ca_file(path)?);
        }
        let addresses = Addresses::default();
        let setup = |detail: String| PolicyError::Setup { detail };
        // The certificate is checked by rustls against the system's roots
        // plus `extra`, for the URL's host name; nothing here relaxes it.
        let http = reqwest::Client::builder()
            // RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
            .redirect(reqwest::redirect::Policy::none())
            // An MTA connects directly; a proxy would also defeat
            // `--connect-to`.
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(user_agent())
            .tls_certs_merge(extra)
            .dns_resolver(addresses.clone())
            .build()
            .map_err(|e| setup(error_chain(&e)))?;
        let runtime =
            crate::rt::runtime().map_err(|e| setup(format!("cannot start the runtime: {e}")))?;
        Ok(PolicyFetcher {
            settings,
            http,
            addresses,
            runtime,
        })
    }

    /// The policy URL of `domain`.
    pub fn url(domain: &str) -> String {
        format!("https://mta-sts.{domain}{WELL_KNOWN}")
    }

    /// Fetches and parses the policy of `domain`, resolving the policy host
    /// through `resolver` unless a `--connect-to` names it.
    pub fn fetch(&self, resolver: &Resolver, domain: &str) -> Result<FetchedPolicy, PolicyError> {
        let host = format!("mta-sts.{domain}");
        let url = Self::url(domain);
        self.prepare(resolver, &url, &host, 443)?;
        let body = self.runtime.block_on(self.get(&url))?;
        let policy = body
            .parse::<MtaStsPolicy>()
            .map_err(|source| PolicyError::Parse {
                url: url.clone(),
                source,
            })?;
        Ok(FetchedPolicy { url, policy })
    }

    /// Resolves `host` (through `resolver`, or a `--connect-to`) for the
    /// HTTP client.
    fn prepare(
        &self,
        resolver: &Resolver,
        url: &str,
        host: &str,
        port: u16,
    ) -> Result<(), PolicyError> {
        let addrs: Vec<SocketAddr> = match self
            .settings
            .connect_to
            .iter()
            .find(|c| c.host == host && c.port == port)
        {
            Some(c) => vec![c.addr],
            None => {
                let ips = resolver
                    .addresses(host)
                    .map_err(|source| PolicyError::Resolve {
                        url: url.to_string(),
                        host: host.to_string(),
                        source: Box::new(source),
                    })?;
                if ips.is_empty() {
                    return Err(PolicyError::NoAddress {
                        url: url.to_string(),
                        host: host.to_string(),
                    });
                }
                ips.into_iter()
                    .map(|ip: IpAddr| SocketAddr::new(ip, port))
                    .collect()
            }
        };
        self.addresses
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_string(), addrs);
        Ok(())
    }

    /// Fetches any `https://` URL with the same strict client (certificate
    /// checked, no redirects, status 200 only, at most `limit` bytes):
    /// returns the Content-Type and the body. For BIMI logos and evidence
    /// documents.
    pub fn fetch_https(
        &self,
        resolver: &Resolver,
        url: &str,
        limit: usize,
    ) -> Result<(String, Vec<u8>), PolicyError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| PolicyError::Connect {
            url: url.to_string(),
            detail: format!("not a URL: {e}"),
        })?;
        let host = match (parsed.scheme(), parsed.host_str()) {
            ("https", Some(h)) => h.trim_end_matches('.').to_ascii_lowercase(),
            _ => {
                return Err(PolicyError::Connect {
                    url: url.to_string(),
                    detail: "not an https:// URL".into(),
                });
            }
        };
        self.prepare(resolver, url, &host, parsed.port().unwrap_or(443))?;
        self.runtime.block_on(self.get_raw(url, limit))
    }

    async fn get(&self, url: &str) -> Result<String, PolicyError> {
        let (content_type, body) = self.get_raw(url, self.settings.max_size).await?;
        // RFC 8461 §3.2: "senders SHOULD validate that the media type is
        // "text/plain" to guard against cases where web servers allow
        // untrusted users to host non-text content (typically, HTML or
        // images) at a user-defined path. All parameters other than
        // charset=utf-8 or charset=us-ascii are ignored."
        if !is_text_plain(&content_type) {
            return Err(PolicyError::ContentType {
                url: url.to_string(),
                found: content_type,
            });
        }
        String::from_utf8(body).map_err(|_| PolicyError::Encoding {
            url: url.to_string(),
        })
    }

    /// GET `url`: status 200 only, no redirects, at most `limit` bytes;
    /// the Content-Type and the body.
    async fn get_raw(&self, url: &str, limit: usize) -> Result<(String, Vec<u8>), PolicyError> {
        let timeout = self.settings.timeout;
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                PolicyError::Timeout {
                    url: url.to_string(),
                    timeout,
                }
            } else {
                PolicyError::Connect {
                    url: url.to_string(),
                    detail: error_chain(&e),
                }
            }
        };
        let mut resp = self.http.get(url).send().await.map_err(failed)?;
        let status = resp.status();
        // RFC 8461 §3.3: "Policies fetched via HTTPS are only valid if the
        // HTTP response code is 200 (OK). HTTP 3xx redirects MUST NOT be
        // followed".
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(PolicyError::Redirect {
                url: url.to_string(),
                status: status.as_u16(),
                location,
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(PolicyError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        // RFC 8461 §3.3: "Senders MAY impose a timeout on the HTTPS GET
        // and/or a limit on the maximum size of the response body [...] a
        // suggested maximum policy size is 64 kilobytes".
        let too_large = || PolicyError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((content_type, body))
    }
}

/// `text/plain`, any case, with or without parameters.
fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// What a policy check needs besides the resolver.
pub struct PolicyCheck {
    pub fetcher: PolicyFetcher,
    /// By domain name (lower case, no trailing dot).
    pub declared: HashMap<String, DeclaredPolicy>,
}

/// The policy findings of one domain. `txt_id` is the id of the one valid
/// `_mta-sts` record, or `None` when there is none (then senders never
/// fetch the policy, and a failed fetch is only a warning).
pub(super) fn check_policy(
    v: &Validator,
    check: &PolicyCheck,
    desired: &Desired,
    txt_id: Option<&str>,
) -> Vec<Finding> {
    let domain = desired.origin.as_str();
    let fetched = match check.fetcher.fetch(v.resolver, domain) {
        Ok(f) => f,
        Err(PolicyError::Resolve { host, source, .. }) if source.is_temporary() => {
            return vec![Finding::dns(
                Check::MtaSts,
                &format!("policy host {host}"),
                &source,
            )];
        }
        Err(e) => {
            let f = match txt_id {
                Some(_) => Finding::fail(
                    Check::MtaSts,
                    format!("policy unavailable: {e}"),
                    "serve the policy over HTTPS with a valid certificate: senders that implement MTA-STS treat the domain as having none",
                ),
                None => Finding::warn(
                    Check::MtaSts,
                    format!("policy unavailable: {e}"),
                    "serve the policy over HTTPS with a valid certificate before publishing the `_mta-sts` record",
                ),
            };
            let details = match &e {
                PolicyError::Parse { source, .. } => source
                    .line()
                    .map(|l| vec![format!("at line {l} of the policy")])
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            return vec![f.with_details(details)];
        }
    };
    let p = &fetched.policy;
    let mut out = Vec::new();
    let mut summary = Finding::pass(
        Check::MtaSts,
        format!(
            "policy fetched from {}: mode {}, {} mx pattern(s), max_age {}",
            fetched.url,
            p.mode.as_str(),
            p.mx.len(),
            p.max_age
        ),
    )
    .with_details(p.to_string().lines().map(str::to_string).collect());
    summary.mta_sts_policy = Some(Box::new(fetched.clone()));
    out.push(summary);

    if let Some(want) = check.declared.get(domain) {
        out.extend(compare(p, want));
    }
    out.extend(mx_coverage(v, p, domain));
    if let Some(id) = txt_id {
        // A new id without a policy change is harmless (senders re-fetch);
        // a policy change without a new id is invisible from here.
        out.push(Finding::info(
            Check::MtaSts,
            format!("policy id {id}: senders re-fetch the policy only when the id changes"),
        ));
    }
    out
}

/// The policy against what the config declares.
fn compare(p: &MtaStsPolicy, want: &DeclaredPolicy) -> Vec<Finding> {
    let mut diffs = Vec::new();
    if let Some(mode) = want.mode
        && mode != p.mode
    {
        diffs.push(format!(
            "mode: served {}, config {}",
            p.mode.as_str(),
            mode.as_str()
        ));
    }
    let served: BTreeSet<&str> = p.mx.iter().map(String::as_str).collect();
    let declared: BTreeSet<&str> = want.mx.iter().map(String::as_str).collect();
    if served != declared {
        let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
        diffs.push(format!(
            "mx: served [{}], config [{}]",
            list(&served),
            list(&declared)
        ));
    }
    if p.max_age != want.max_age {
        diffs.push(format!(
            "max_age: served {}, config {}",
            p.max_age, want.max_age
        ));
    }
    if diffs.is_empty() {
        return vec![Finding::pass(
            Check::MtaSts,
            "policy matches the config (mode, mx, max_age)",
        )];
    }
    vec![
        Finding::fail(
            Check::MtaSts,
            "the served policy differs from the config",
            "serve the policy the config renders (`mailauth emit --mta-sts DIR`, or `mta_sts.publish` and `mailauth apply`), or fix the config",
        )
        .with_details(diffs),
    ]
}

/// RFC 8461 §4.1: every MX host a sender may pick must match an `mx`
/// pattern, or an enforcing sender refuses to deliver to it.
fn mx_coverage(v: &Validator, p: &MtaStsPolicy, domain: &str) -> Vec<Finding> {
    if p.mode == Mode::None {
        return Vec::new();
    }
    let live = match v.resolver.mx(domain) {
        Ok(m) => m,
        Err(ResolveError::NxDomain { .. }) => Vec::new(),
        Err(e) => return vec![Finding::dns(Check::MtaSts, "MX query", &e)],
    };
    let hosts: Vec<&str> = live
        .iter()
        .map(|m| m.exchange.as_str())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return Vec::new();
    }
    let uncovered: Vec<&str> = hosts.iter().copied().filter(|h| !p.mx_matches(h)).collect();
    if uncovered.is_empty() {
        return vec![Finding::pass(
            Check::MtaSts,
            format!("every MX host matches the policy: {}", hosts.join(", ")),
        )];
    }
    let message = format!(
        "MX host(s) not matched by any policy `mx` pattern: {}",
        uncovered.join(", ")
    );
    let fix = "add the host(s) to `mta_sts.mx` and the policy file, or change the MX records";
    vec![match p.mode {
        Mode::Enforce => Finding::fail(
            Check::MtaSts,
            format!("{message}: senders in enforce mode will not deliver to them"),
            fix,
        ),
        _ => Finding::warn(
            Check::MtaSts,
            format!("{message}: delivery to them would fail once the mode is enforce"),
            fix,
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_syntax() {
        let c: ConnectTo = "mta-sts.Example.test:443:127.0.0.1:8443".parse().unwrap();
        assert_eq!(
            c,
            ConnectTo {
                host: "mta-sts.example.test".into(),
                port: 443,
                addr: "127.0.0.1:8443".parse().unwrap()
            }
        );
        let v6: ConnectTo = "h.test:443:[::1]:8443".parse().unwrap();
        assert_eq!(v6.addr, "[::1]:8443".parse::<SocketAddr>().unwrap());
        for bad in [
            "h.test:443:127.0.0.1",
            "h.test:443:localhost:8443",
            "h.test:x:127.0.0.1:1",
            ":443:127.0.0.1:1",
            "h.test",
        ] {
            assert!(bad.parse::<ConnectTo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn media_type() {
        for (value, ok) in [
            ("text/plain", true),
            ("Text/Plain; charset=utf-8", true),
            ("text/plain;charset=us-ascii", true),
            ("text/html", false),
            ("text/plain-ish", false),
            ("", false),
        ] {
            assert_eq!(is_text_plain(value), ok, "{value:?}");
        }
    }

    fn policy(text: &str) -> MtaStsPolicy {
        text.parse().unwrap()
    }

    #[test]
    fn policy_against_config() {
        let p = policy(
            "version: STSv1\nmode: enforce\nmx: mail.a.test\nmx: *.b.test\nmax_age: 86400\n",
        );
        let want = DeclaredPolicy {
            mode: Some(Mode::Enforce),
            mx: vec!["*.b.test".into(), "mail.a.test".into()],
            max_age: 86400,
        };
        let f = compare(&p, &want);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, super::super::Severity::Pass, "{f:?}");
        let other = DeclaredPolicy {
            mode: Some(Mode::Testing),
            mx: vec!["mail.a.test".into()],
            max_age: DEFAULT_MAX_AGE,
        };
        let f = compare(&p, &other);
        assert_eq!(f[0].severity, super::super::Severity::Fail);
        assert_eq!(
            f[0].details,
            vec![
                "mode: served enforce, config testing".to_string(),
                "mx: served [*.b.test, mail.a.test], config [mail.a.test]".to_string(),
                "max_age: served 86400, config 604800".to_string(),
            ]
        );
    }
}
