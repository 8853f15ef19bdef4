//! The YAML configuration: its types (this file), loading with located
//! errors (`load`), and the semantic checks serde cannot express (`check`).
//! It knows no provider wire format and does no DNS: it only says what the
//! user declared.

pub mod alerts;
mod check;
mod load;
pub use mailauth_dns::provider::config as providers;
pub mod schema;

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(crate) use check::parse_net;
pub use load::{ConfigError, Located, load, load_str};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The default DNS provider for every domain.
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
    /// Named providers, for domains that name theirs with `providers:`
    /// (e.g. a primary and a secondary).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Values that apply to every domain unless the domain overrides them.
    #[serde(default)]
    pub defaults: Defaults,
    /// The DKIM keystore (generated and rotated keys).
    #[serde(default)]
    pub keys: Option<crate::keys::config::KeysConfig>,
    /// The report store (`reports`, `serve`, `checklist`, the plan hint):
    /// a URL, or `{ url, password_file }`.
    #[serde(default)]
    pub store: Option<Spanned<StoreConfig>>,
    /// Rules and notifiers of `reports alerts` (defaults without it).
    #[serde(default)]
    pub alerts: Option<alerts::AlertsConfig>,
    /// The domains mailauth manages, by name.
    pub domains: HashMap<Spanned<String>, Domain>,
    /// Discouraged but allowed values found by the checks (a 1024-bit
    /// family, RFC 7489-only DMARC forms), located like errors. Filled by
    /// the loader; commands print them to stderr.
    #[serde(skip)]
    pub warnings: Vec<Located>,
}

/// The report store: `sqlite://PATH`, a bare SQLite path, or
/// `postgres://USER@HOST:PORT/DB` with the password in a file (never in
/// the URL). Relative paths start at the config file's directory.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StoreConfig {
    /// `store: URL`
    Url(String),
    /// `store: { url: URL, password_file: PATH }`
    Table(StoreTable),
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreTable {
    pub url: String,
    /// File holding the PostgreSQL password (first line).
    #[serde(default)]
    pub password_file: Option<String>,
}

impl StoreConfig {
    pub fn url(&self) -> &str {
        match self {
            StoreConfig::Url(u) | StoreConfig::Table(StoreTable { url: u, .. }) => u.trim(),
        }
    }

    pub fn password_file(&self) -> Option<&str> {
        match self {
            StoreConfig::Url(_) => None,
            StoreConfig::Table(t) => t.password_file.as_deref().map(str::trim),
        }
    }
}

/// Provider selection; each kind's own settings are in [`providers`].
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderConfig {
    /// RFC 1035 master files on disk, `<dir>/<domain>.zone`.
    Zonefile {
        /// Directory of the zone files, relative to the config file.
        #[serde(default = "default_zone_dir")]
        dir: String,
        /// Name servers for the SOA and NS records of a zone file mailauth
        /// creates from scratch (default `localhost.`: set your own).
        #[serde(default)]
        nameservers: Vec<String>,
    },
    /// RFC 2136 dynamic update signed with TSIG (BIND, Knot, PowerDNS).
    Rfc2136(providers::Rfc2136Config),
    /// The PowerDNS Authoritative HTTP API.
    Powerdns(providers::PowerDnsConfig),
    /// The Cloudflare API v4.
    Cloudflare(providers::CloudflareConfig),
    /// Amazon Route 53 (credentials from the AWS environment variables and
    /// files, never from this config).
    Route53(providers::Route53Config),
}

fn default_zone_dir() -> String {
    "zones".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// TTL of every record mailauth writes, in seconds (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Refuse a plan that deletes more than this many owned RRsets per zone
    /// unless `--force` is given (default 3).
    #[serde(default = "default_max_deletes")]
    pub max_deletes: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: default_ttl(),
            max_deletes: default_max_deletes(),
        }
    }
}

fn default_ttl() -> u32 {
    3600
}
fn default_max_deletes() -> usize {
    3
}

/// One domain.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Named providers this domain is pushed to, each planned and applied
    /// on its own (default: the top-level `provider`).
    #[serde(default)]
    pub providers: Vec<Spanned<String>>,
    /// TTL of this domain's records (overrides `defaults.ttl`).
    pub ttl: Option<u32>,
    /// A non-sending domain: publishes `v=spf1 -all`, `p=reject`, a null MX
    /// (RFC 7505) and an empty DKIM wildcard; excludes spf/dkim/dmarc.
    #[serde(default)]
    pub parked: bool,
    pub spf: Option<SpfConfig>,
    pub dkim: Option<DkimConfig>,
    pub dmarc: Option<DmarcConfig>,
    pub mta_sts: Option<MtaStsConfig>,
    pub tls_rpt: Option<TlsRptConfig>,
    pub bimi: Option<BimiConfig>,
    /// Records published exactly as written, for what the typed fields
    /// cannot express (written by `mailauth import`; see docs/import.md).
    pub verbatim: Option<VerbatimConfig>,
}

/// Records kept byte for byte: each replaces the typed field of the same
/// name (and excludes it). The value is the whole TXT value, as joined
/// character-strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerbatimConfig {
    /// The apex `v=spf1` record.
    pub spf: Option<Spanned<String>>,
    /// The `_dmarc` TXT record.
    pub dmarc: Option<Spanned<String>>,
    /// The `_mta-sts` TXT record.
    pub mta_sts: Option<Spanned<String>>,
    /// The `_smtp._tls` TXT record.
    pub tls_rpt: Option<Spanned<String>>,
    /// DKIM key records by selector (`<selector>._domainkey` TXT).
    #[serde(default)]
    pub dkim: BTreeMap<String, Spanned<String>>,
}

/// `all` at the end of the SPF record.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllQualifier {
    /// `-all`
    Fail,
    /// `~all`
    Softfail,
    /// `?all`
    Neutral,
}

/// `a` / `mx` mechanisms: `true` for the domain itself, or a list of names.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum HostList {
    Enabled(bool),
    Names(Vec<Spanned<String>>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpfConfig {
    /// `include:` mechanisms, in order.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// `ip4:` networks (CIDR or single address).
    #[serde(default)]
    pub ip4: Vec<Spanned<String>>,
    /// `ip6:` networks.
    #[serde(default)]
    pub ip6: Vec<Spanned<String>>,
    /// `a` mechanism(s).
    pub a: Option<HostList>,
    /// `mx` mechanism(s).
    pub mx: Option<HostList>,
    /// `exists:` mechanisms (macro strings allowed).
    #[serde(default)]
    pub exists: Vec<Spanned<String>>,
    /// `redirect=` modifier (instead of `all`).
    pub redirect: Option<Spanned<String>>,
    /// The final `all` (default `fail`); ignored when `redirect` is set.
    pub all: Option<AllQualifier>,
    /// Replace includes by the networks they authorise: `never` (default),
    /// `auto` (as few as needed to fit `lookup_budget`), `always`.
    #[serde(default)]
    pub flatten: crate::spf::flatten::Mode,
    /// Most DNS lookups the published record may need (1-10, default 10);
    /// a lower value leaves room for receivers' own lookups.
    pub lookup_budget: Option<Spanned<u32>>,
    /// Includes never flattened, by name (each one of `include`).
    #[serde(default)]
    pub keep: Vec<Spanned<String>>,
    /// Names of the chained records, `{n}` counting from 1 (default
    /// `_spf{n}`: `_spf1.<domain>`, `_spf2.<domain>`, ...).
    pub chain: Option<Spanned<String>>,
    /// Percentage of an include's recorded ranges that may disappear
    /// before apply needs `--force` (0-100, default 50).
    pub max_shrink: Option<Spanned<u32>>,
    /// Servers (`IP[:PORT]`) asked for the flattened includes (default:
    /// the system resolver).
    #[serde(default)]
    pub resolvers: Vec<Spanned<String>>,
}

impl SpfConfig {
    /// The flattening settings, with defaults for what is not given.
    pub fn flatten_settings(&self) -> crate::spf::flatten::Settings {
        use crate::spf::flatten::{DEFAULT_BUDGET, DEFAULT_CHAIN, Settings};
        Settings {
            mode: self.flatten,
            budget: self
                .lookup_budget
                .as_ref()
                .map_or(DEFAULT_BUDGET, |b| b.value as usize),
            keep: self.keep.iter().map(|k| k.value.clone()).collect(),
            chain: self
                .chain
                .as_ref()
                .map_or(DEFAULT_CHAIN.to_string(), |c| c.value.clone()),
        }
    }

    /// `max_shrink`, default 50 (percent).
    pub fn max_shrink(&self) -> u8 {
        self.max_shrink
            .as_ref()
            .map_or(crate::spf::flatten::DEFAULT_MAX_SHRINK, |m| {
                m.value.min(100) as u8
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub selectors: Vec<SelectorConfig>,
}

/// One DKIM selector: exactly one of `public_key` (a key managed
/// elsewhere, published as given), `cname` (delegated to an ESP), or
/// `prefix` (a family of keys mailauth generates and rotates).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    /// The selector, for `public_key` and `cname`.
    pub name: Option<Spanned<String>>,
    /// Base64 public key (`p=`): an RSA SubjectPublicKeyInfo or a raw
    /// 32-byte Ed25519 key.
    pub public_key: Option<Spanned<String>>,
    /// Key type for `public_key`: `rsa` (default) or `ed25519`.
    pub key_type: Option<KeyType>,
    /// Target of a CNAME delegation.
    pub cname: Option<Spanned<String>>,
    /// Publish with `t=y` (testing mode, RFC 6376 §3.6.1).
    #[serde(default)]
    pub testing: bool,
    /// A rotated family: selectors are `<prefix>-YYYY-MM`.
    pub prefix: Option<Spanned<String>>,
    /// Family algorithm: `rsa` (default) or `ed25519`.
    pub algorithm: Option<KeyType>,
    /// RSA modulus size for a family: 1024 (discouraged), 2048 (default),
    /// 3072, 4096.
    pub bits: Option<Spanned<u32>>,
    /// Rotation period of a family, e.g. `180d`.
    pub rotate_every: Option<Spanned<String>>,
    /// Minimum time between publishing a key and signing with it, e.g. `2d`.
    pub activate_after: Option<Spanned<String>>,
    /// How long a retired key stays published, e.g. `7d`.
    pub retire_after: Option<Spanned<String>>,
    /// How long a revoked (empty `p=`) record stays before removal, e.g. `7d`.
    pub revoke_after: Option<Spanned<String>>,
}

impl SelectorConfig {
    /// The rotated family this selector declares (`prefix` set), with the
    /// keystore's defaults for what is not given. `ttl` is the domain's.
    pub fn family(
        &self,
        ttl: u32,
    ) -> Option<Result<crate::keys::config::FamilyConfig, FamilyError>> {
        use crate::clock::Span;
        use crate::keys::config::{Algorithm, ConfigError as KeysError, FamilyConfig};
        let prefix = self.prefix.as_ref()?;
        let algorithm = match self.algorithm.unwrap_or(KeyType::Rsa) {
            KeyType::Rsa => Algorithm::Rsa,
            KeyType::Ed25519 => Algorithm::Ed25519,
        };
        let mut f = FamilyConfig::new(&prefix.value, algorithm);
        f.bits = self.bits.as_ref().map(|b| b.value);
        f.ttl = ttl;
        let span = |v: &Option<Spanned<String>>,
                    field: &'static str,
                    slot: &mut Span|
         -> Result<(), FamilyError> {
            if let Some(v) = v {
                *slot = Span::parse(&v.value).map_err(|e| FamilyError {
                    field,
                    message: e.to_string(),
                })?;
            }
            Ok(())
        };
        let result = (|| {
            span(&self.rotate_every, "rotate_every", &mut f.rotate_every)?;
            span(
                &self.activate_after,
                "activate_after",
                &mut f.activate_after,
            )?;
            span(&self.retire_after, "retire_after", &mut f.retire_after)?;
            span(&self.revoke_after, "revoke_after", &mut f.revoke_after)?;
            let warnings = f.validate().map_err(|e| match e {
                KeysError::Family { field, reason, .. } => FamilyError {
                    field,
                    message: reason,
                },
                other => FamilyError {
                    field: "prefix",
                    message: other.to_string(),
                },
            })?;
            Ok((f, warnings))
        })();
        Some(result.map(|(f, _)| f))
    }

    /// The warnings of the family this selector declares (e.g. 1024-bit
    /// RSA), empty when it declares none or is invalid.
    pub fn family_warnings(&self, ttl: u32) -> Vec<String> {
        match self.family(ttl) {
            Some(Ok(f)) => f.validate().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The span of one of this selector's family fields, for locating an
    /// error; the prefix when the field is absent (a default was used).
    pub fn family_field_span(&self, field: &str) -> Option<&Spanned<String>> {
        let span = match field {
            "rotate_every" => self.rotate_every.as_ref(),
            "activate_after" => self.activate_after.as_ref(),
            "retire_after" => self.retire_after.as_ref(),
            "revoke_after" => self.revoke_after.as_ref(),
            _ => None,
        };
        span.or(self.prefix.as_ref())
    }
}

/// Why a key family's settings are refused, and which field says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FamilyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ed25519,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyConfig {
    None,
    Quarantine,
    Reject,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum AlignmentConfig {
    #[serde(rename = "r", alias = "relaxed")]
    Relaxed,
    #[serde(rename = "s", alias = "strict")]
    Strict,
}

/// DMARC policy record (RFC 9989), published at `_dmarc.<domain>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmarcConfig {
    /// Policy for the domain (`policy` is accepted as an alias).
    #[serde(alias = "policy")]
    pub p: PolicyConfig,
    /// Policy for subdomains.
    pub sp: Option<PolicyConfig>,
    /// Policy for non-existent subdomains (RFC 9989).
    pub np: Option<PolicyConfig>,
    /// Testing mode `t=y` (RFC 9989): receivers apply one level less.
    pub t: Option<bool>,
    /// DKIM alignment: `r` (relaxed, default) or `s` (strict).
    pub adkim: Option<AlignmentConfig>,
    /// SPF alignment: `r` or `s`.
    pub aspf: Option<AlignmentConfig>,
    /// Aggregate report addresses (`mailto:` URIs).
    #[serde(default)]
    pub rua: Vec<Spanned<String>>,
    /// Failure report addresses (`mailto:` URIs).
    #[serde(default)]
    pub ruf: Vec<Spanned<String>>,
    /// Failure reporting options, e.g. `1` or `d:s`.
    pub fo: Option<Spanned<String>>,
    /// Public suffix domain flag (RFC 9989): `y`, `n` or `u`.
    pub psd: Option<Spanned<String>>,
}

/// MTA-STS (RFC 8461): the `_mta-sts` TXT record and the policy it announces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaStsConfig {
    /// Policy id. Leave it out: mailauth derives it from the policy's
    /// content, so that every policy change changes it. Given, it is
    /// published as is (and must then change with the policy).
    pub id: Option<Spanned<String>>,
    /// `enforce`, `testing` or `none`.
    pub mode: Spanned<String>,
    /// MX patterns of the policy file.
    #[serde(default)]
    pub mx: Vec<Spanned<String>>,
    /// Policy max_age in seconds (default 604800).
    pub max_age: Option<u64>,
    /// Where `apply` uploads the policy file before it changes the TXT
    /// record.
    pub publish: Option<Spanned<PublishConfig>>,
}

/// Where the policy file is published: exactly one of `dir` (a web root:
/// the file goes to `<dir>/.well-known/mta-sts.txt`) or `url` (an HTTP
/// PUT of the file to that URL, e.g. WebDAV).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// A directory, relative to the config file.
    pub dir: Option<String>,
    /// The URL the file is PUT to.
    pub url: Option<String>,
}

/// BIMI (draft-brand-indicators-for-message-identification): the
/// `<selector>._bimi` TXT record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BimiConfig {
    /// Selector (default `default`).
    pub selector: Option<Spanned<String>>,
    /// `l=`: the HTTPS URL of the SVG Tiny PS logo.
    pub logo: Option<Spanned<String>>,
    /// `a=`: the HTTPS URL of the evidence document (VMC or CMC, PEM).
    pub authority: Option<Spanned<String>>,
    /// Publish the declination record `v=BIMI1; l=; a=;` (a domain that
    /// shows no logo, e.g. a parked one).
    #[serde(default)]
    pub declined: bool,
}

impl BimiConfig {
    pub fn selector(&self) -> &str {
        self.selector
            .as_ref()
            .map_or("default", |s| s.value.as_str())
    }
}

/// SMTP TLS reporting (RFC 8460): the `_smtp._tls` TXT record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRptConfig {
    /// Report destinations: `mailto:` or `https:` URIs.
    pub rua: Vec<Spanned<String>>,
}
