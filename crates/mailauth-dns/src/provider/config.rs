//! The settings of each DNS provider kind, as the config declares them
//! (`provider: { kind: rfc2136, ... }`): what the user wrote, with its
//! defaults. Each provider takes its settings from here
//! (`provider::rfc2136::Rfc2136::from_config`, ...); reading credentials,
//! connecting and talking to the API stay in the providers. Here, beside
//! the providers, rather than with the rest of the config file's types in
//! `mailauth-core`'s `config` (which re-exports it as `config::providers`),
//! so that the providers depend on nothing above this crate.

use std::path::PathBuf;

use serde::Deserialize;

/// The Cloudflare API v4 base URL.
const CLOUDFLARE_BASE: &str = "https://api.cloudflare.com/client/v4";
/// The Route 53 API endpoint (a global service).
const ROUTE53_ENDPOINT: &str = "https://route53.amazonaws.com";

/// `provider: { kind: rfc2136, ... }` in the config.
///
/// ```yaml
/// provider:
///   kind: rfc2136
///   server: 192.0.2.53:53
///   key_name: mailauth-key
///   algorithm: hmac-sha256
///   secret_file: /etc/mailauth/tsig.key
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rfc2136Config {
    /// The primary server, `host:port` (port 53 if omitted).
    pub server: String,
    /// The TSIG key name, exactly as the server knows it.
    pub key_name: String,
    /// `hmac-sha256` (default) or `hmac-sha512`.
    #[serde(default)]
    pub algorithm: TsigAlgorithmName,
    /// Name of an environment variable holding the base64 secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Path of a file holding the base64 secret, or a BIND `key { ... };`
    /// clause as written by `tsig-keygen`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Seconds to wait for each answer (default 5).
    #[serde(default = "rfc2136_timeout")]
    pub timeout_secs: u64,
    /// How many times a transient failure (timeout, SERVFAIL, connection
    /// error) is retried, with exponential backoff (default 3).
    #[serde(default = "rfc2136_retries")]
    pub retries: u32,
}

fn rfc2136_timeout() -> u64 {
    5
}
fn rfc2136_retries() -> u32 {
    3
}

/// The TSIG algorithms mailauth signs with (RFC 8945 §6: HMAC-SHA256 is
/// mandatory to implement; SHA-1 and MD5 are not offered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum TsigAlgorithmName {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// `provider: { kind: powerdns, ... }` in the config.
///
/// ```yaml
/// provider:
///   kind: powerdns
///   url: http://127.0.0.1:8081
///   secret_env: PDNS_API_KEY
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerDnsConfig {
    /// Base URL of the API web server, without `/api/v1`.
    pub url: String,
    /// The `server_id` in API paths (default `localhost`).
    #[serde(default = "powerdns_server_id")]
    pub server_id: String,
    /// Environment variable holding the API key (sent as `X-API-Key`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the API key.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Name servers for zones mailauth creates (`ns1.example.net.`).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Seconds per request (default 10).
    #[serde(default = "powerdns_timeout")]
    pub timeout_secs: u64,
    /// Retries of a timeout, connection error, 429 or 5xx (default 3; a
    /// write only when it did not reach the server or got 429).
    #[serde(default = "powerdns_retries")]
    pub retries: u32,
    /// Accept an `http://` URL to a host other than loopback, sending the
    /// API key in clear (default false).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn powerdns_server_id() -> String {
    "localhost".to_string()
}
fn powerdns_timeout() -> u64 {
    10
}
fn powerdns_retries() -> u32 {
    3
}

/// `provider: { kind: cloudflare, ... }` in the config.
///
/// ```yaml
/// provider:
///   kind: cloudflare
///   secret_env: CLOUDFLARE_API_TOKEN
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareConfig {
    /// API base URL (default `https://api.cloudflare.com/client/v4`).
    #[serde(default = "cloudflare_base")]
    pub base_url: String,
    /// Environment variable holding an API token (Zone:DNS:Edit on the
    /// zones mailauth manages, Zone:Read to find them).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the API token.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Records per page when listing (5..=5000000, default 100).
    #[serde(default = "cloudflare_page_size")]
    pub page_size: u32,
    /// Seconds per request (default 15).
    #[serde(default = "cloudflare_timeout")]
    pub timeout_secs: u64,
    /// Retries of a timeout, connection error, 429 or 5xx (default 4;
    /// a write only when it did not reach the server or got 429).
    #[serde(default = "cloudflare_retries")]
    pub retries: u32,
    /// Accept an `http://` base URL to a host other than loopback, sending
    /// the token in clear (default false).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn cloudflare_base() -> String {
    CLOUDFLARE_BASE.to_string()
}
fn cloudflare_page_size() -> u32 {
    100
}
fn cloudflare_timeout() -> u64 {
    15
}
fn cloudflare_retries() -> u32 {
    4
}

/// `provider: { kind: route53, ... }` in the config. Credentials are not
/// configured here: they come from the environment or the AWS files.
///
/// ```yaml
/// provider:
///   kind: route53
///   profile: dns-admin      # optional; else AWS_PROFILE or "default"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53Config {
    /// API endpoint (default `https://route53.amazonaws.com`); set for a
    /// test server or another partition.
    #[serde(default = "route53_endpoint")]
    pub endpoint: String,
    /// Profile of the shared credentials/config files. When set, it wins
    /// over the `AWS_ACCESS_KEY_ID` environment variables (as `--profile`
    /// does for the AWS CLI).
    #[serde(default)]
    pub profile: Option<String>,
    /// Hosted zone id (`Z…`), for when a public and a private zone share
    /// a name; by default the zone is found by name.
    #[serde(default)]
    pub hosted_zone_id: Option<String>,
    /// RRsets per ListResourceRecordSets page (1..=300, default 300).
    #[serde(default = "route53_page_size")]
    pub page_size: u32,
    /// Seconds per request (default 15).
    #[serde(default = "route53_timeout")]
    pub timeout_secs: u64,
    /// Retries of a throttled (Throttling, PriorRequestNotComplete, 429,
    /// 503) or failed request (default 5).
    #[serde(default = "route53_retries")]
    pub retries: u32,
    /// How long to wait for a change to become `INSYNC` (default 300 s).
    #[serde(default = "route53_sync")]
    pub sync_timeout_secs: u64,
    /// Accept an `http://` endpoint on a host other than loopback
    /// (default false).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn route53_endpoint() -> String {
    ROUTE53_ENDPOINT.to_string()
}
fn route53_page_size() -> u32 {
    300
}
fn route53_timeout() -> u64 {
    15
}
fn route53_retries() -> u32 {
    5
}
fn route53_sync() -> u64 {
    300
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind's settings, with only what it requires given: the
    /// defaults documented on each field.
    #[test]
    fn defaults_fill_what_the_config_leaves_out() {
        let r: Rfc2136Config = serde_saphyr::from_str("server: 192.0.2.53\nkey_name: k\n").unwrap();
        assert_eq!((r.timeout_secs, r.retries), (5, 3));
        assert_eq!(r.algorithm, TsigAlgorithmName::HmacSha256);
        let p: PowerDnsConfig = serde_saphyr::from_str("url: http://127.0.0.1:8081\n").unwrap();
        assert_eq!(p.server_id, "localhost");
        assert_eq!((p.timeout_secs, p.retries), (10, 3));
        let c: CloudflareConfig = serde_saphyr::from_str("secret_env: CF\n").unwrap();
        assert_eq!(c.base_url, "https://api.cloudflare.com/client/v4");
        assert_eq!((c.page_size, c.timeout_secs, c.retries), (100, 15, 4));
        let a: Route53Config = serde_saphyr::from_str("profile: dns\n").unwrap();
        assert_eq!(a.endpoint, "https://route53.amazonaws.com");
        assert_eq!(
            (a.page_size, a.timeout_secs, a.retries, a.sync_timeout_secs),
            (300, 15, 5, 300)
        );
    }

    #[test]
    fn unknown_fields_and_algorithms_are_refused() {
        assert!(
            serde_saphyr::from_str::<Rfc2136Config>("server: a\nkey_name: k\nsecret: x\n").is_err()
        );
        assert!(
            serde_saphyr::from_str::<Rfc2136Config>(
                "server: a\nkey_name: k\nalgorithm: hmac-md5\n"
            )
            .is_err()
        );
    }
}
