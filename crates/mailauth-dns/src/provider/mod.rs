//! The provider abstraction: read a zone's current RRsets, apply a list of
//! changes, declare what the backing store can hold. Providers decide
//! nothing: diffing, ownership, planning and safety limits live in
//! `diff`, `ownership`, `plan` and `apply`, once, for every provider; the
//! names to read when a zone cannot be listed come from the caller
//! ([`ReadScope`]).
//!
//! Also owns what the API providers share beyond the HTTP client
//! (`crate::http`): which API URLs may carry a credential ([`check_url`])
//! and how a client that cannot be set up is reported, and each provider
//! kind's settings as the config file declares them ([`config`], read by
//! `mailauth-core`'s `config` as `config::providers`); the changes are the
//! diff's ([`Change`]).

pub mod cloudflare;
pub mod config;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod zonefile;

/// The diff's output, which every provider applies; here under its old
/// path.
pub use crate::record::change::Change;
use crate::record::{Name, RType, RecordSet, Zone};

/// What a provider's API can do, checked at plan time so that an
/// unsupported record fails before anything is written.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// Record types the provider can store.
    pub types: Vec<RType>,
    /// Longest TXT value (all strings joined) the provider accepts.
    pub max_txt_len: usize,
    /// Whether a CNAME may be written (some APIs flatten or proxy them).
    pub cname: bool,
}

/// A zone as a provider serves it, plus an opaque version token: whatever
/// lets the provider tell later that the zone changed since this read
/// (a file digest, the SOA rdata, a hash of the API's answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub zone: Zone,
    pub version: String,
    /// False when the zone does not exist yet at the provider; `apply`
    /// creates it.
    pub exists: bool,
}

/// The RRsets a provider reads when it cannot list a whole zone (an
/// RFC 2136 server that refuses AXFR, RFC 5936 §4.2). Which names matter
/// is an ownership question, so the caller says: providers decide nothing.
/// `mailauth_core::ownership::OwnedNames` is the scope mailauth reads with
/// (`workspace` builds the providers with it).
pub trait ReadScope: Send + Sync {
    /// The RRsets to read first (beside the zone's SOA).
    fn initial(&self, origin: &Name) -> Vec<(Name, RType)>;
    /// The further RRsets to read because of `set`, one just read (the
    /// slots a registry record lists, say). Each is read once, however
    /// often it is named.
    fn follow(&self, origin: &Name, set: &RecordSet) -> Vec<(Name, RType)>;
}

/// Errors a provider reports. Each names the provider and zone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error("{provider}: zone {zone}: changed since the plan read it ({detail}); run plan again")]
    Stale {
        provider: String,
        zone: String,
        detail: String,
    },
    #[error("{provider}: zone {zone}: credentials rejected: {detail}")]
    Auth {
        provider: String,
        zone: String,
        detail: String,
    },
    #[error("{provider}: zone {zone}: cannot reach the server: {detail}")]
    Unreachable {
        provider: String,
        zone: String,
        detail: String,
    },
    #[error("{provider}: zone {zone}: {detail}")]
    Rejected {
        provider: String,
        zone: String,
        detail: String,
    },
    #[error("{provider}: {path}:{line}: {msg}")]
    Parse {
        provider: String,
        path: String,
        line: usize,
        msg: String,
    },
    #[error("{provider}: zone {zone}: {path}: {source}")]
    Io {
        provider: String,
        zone: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Checks an API URL from the config (`field` names it in errors): it
/// must be `https://`, or `http://` to a loopback host, or `http://`
/// anywhere with `allow_plain_http` set, since every request carries the
/// credential.
pub(crate) fn check_url(
    provider: &str,
    field: &str,
    value: &str,
    allow_plain_http: bool,
) -> Result<(), ProviderError> {
    let bad = |detail: String| ProviderError::Rejected {
        provider: provider.to_string(),
        zone: "-".to_string(),
        detail: format!("provider.{field} {value:?}: {detail}"),
    };
    let url = reqwest::Url::parse(value).map_err(|e| bad(format!("not a URL: {e}")))?;
    let Some(host) = url.host_str() else {
        return Err(bad("no host".to_string()));
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http || crate::http::is_loopback_host(host) => Ok(()),
        "http" => Err(bad(
            "plain HTTP to a host other than loopback would send the credential in clear; \
             use https://, or set `allow_plain_http: true` in the provider section to accept that"
                .to_string(),
        )),
        other => Err(bad(format!("unsupported scheme {other:?} (https or http)"))),
    }
}

/// [`crate::http::HttpApi::new`] for a provider: a failure to set up the
/// client is a configuration error of that provider.
pub(crate) fn http_api(
    provider: &str,
    timeout: std::time::Duration,
    policy: crate::http::RetryPolicy,
) -> Result<crate::http::HttpApi, ProviderError> {
    crate::http::HttpApi::new(timeout, policy).map_err(|detail| ProviderError::Rejected {
        provider: provider.to_string(),
        zone: "-".to_string(),
        detail,
    })
}

/// A DNS provider: one module per backend.
pub trait Provider: Send + Sync {
    /// A short id for messages and plans (`zonefile:zones`, `rfc2136:127.0.0.1:53`).
    fn id(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// Reads the zone as currently served.
    fn fetch(&self, zone: &Name) -> Result<Fetched, ProviderError>;
    /// Applies `changes` (already sorted) if and only if the zone is still at
    /// `seen.version`; otherwise returns [`ProviderError::Stale`] and changes
    /// nothing.
    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError>;
}
