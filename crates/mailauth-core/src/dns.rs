//! A blocking DNS resolver for the rest of the crate: a thin synchronous
//! wrapper over hickory-resolver on the process's shared tokio runtime
//! ([`crate::rt`]), so that
//! the pipeline (validation, SPF analysis, propagation checks) stays plain
//! threads and `Result`s.
//!
//! This module owns talking to DNS servers: building the resolver (system
//! configuration, explicit servers, or one authoritative server asked
//! without recursion), running queries with a hard deadline, and turning
//! hickory's errors into [`ResolveError`] kinds that tell "the name or the
//! data does not exist" from "ask again later". It implements
//! [`crate::spf::SpfDns`] so that SPF evaluation and analysis can run over
//! real DNS. It also parses the nameserver addresses every command and the
//! key observer take (`--nameserver IP[:PORT]`, [`parse_nameserver`]). It
//! decides nothing about the answers: checks live in `validate`, parsing
//! in `record`.
//!
//! A [`Resolver`] is `Send + Sync`; many threads may query through one
//! instance at once (each call blocks only its own thread).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::spf::{self, MxRecord, QType, SpfDns};

/// A nameserver address that is neither `IP` nor `IP:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`--nameserver {value}`: expected IP or IP:PORT")]
pub struct NameserverError {
    pub value: String,
}

/// Parses `--nameserver IP[:PORT]` (port 53 by default, RFC 1035 §4.2:
/// "The Internet supports name server access using TCP [RFC-793] on server
/// port 53 (decimal) as well as datagram access using UDP [RFC-768] on UDP
/// port 53 (decimal)"; IPv6 with a port as `[::1]:5353`).
pub fn parse_nameserver(value: &str) -> Result<SocketAddr, NameserverError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| NameserverError {
            value: value.to_string(),
        })
}

/// Why a query gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// RCODE 3 (RFC 1035 §4.1.1 "Name Error"): the name does not exist.
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain { name: String },
    /// No answer from any server within the deadline.
    #[error("{name} {rtype}: no answer from {server} within {timeout:?}")]
    Timeout {
        name: String,
        rtype: String,
        server: String,
        timeout: Duration,
    },
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("{name} {rtype}: {server} answered {rcode}")]
    Rcode {
        name: String,
        rtype: String,
        server: String,
        rcode: String,
    },
    /// Any other failure on the way (network unreachable, malformed
    /// answer, ...).
    #[error("{name} {rtype}: query to {server} failed: {detail}")]
    Failure {
        name: String,
        rtype: String,
        server: String,
        detail: String,
    },
    /// The name cannot be put on the wire (a label over 63 octets, a name
    /// over 255 octets).
    #[error("{name:?} is not a valid domain name: {detail}")]
    BadName { name: String, detail: String },
    /// The resolver itself could not be built (no usable system
    /// configuration, no tokio runtime).
    #[error("cannot set up the DNS resolver: {detail}")]
    Setup { detail: String },
}

impl ResolveError {
    /// True for failures that may go away when asked again (timeouts,
    /// SERVFAIL, network errors), false when the answer is definite.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ResolveError::Timeout { .. }
                | ResolveError::Rcode { .. }
                | ResolveError::Failure { .. }
        )
    }

    /// True for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ResolveError::Timeout { .. })
    }
}

/// One TXT record as its character-strings, in wire order (RFC 1035
/// §3.3.14: `TXT-DATA  One or more <character-string>s`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxtRecord {
    pub strings: Vec<Vec<u8>>,
}

impl TxtRecord {
    /// The character-strings concatenated without separators, as SPF
    /// (RFC 7208 §3.3), DKIM (RFC 6376 §3.6.2.2) and DMARC read them.
    pub fn joined(&self) -> Vec<u8> {
        self.strings.concat()
    }

    /// [`TxtRecord::joined`] as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.joined()).into_owned()
    }
}

/// An SOA record (RFC 1035 §3.3.13), names without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

/// One attempt's share of a query's whole time budget.
fn per_attempt(budget: Duration, attempts: usize) -> Duration {
    (budget / attempts.max(1) as u32).max(Duration::from_millis(10))
}

/// A synchronous resolver. See the module documentation.
pub struct Resolver {
    runtime: &'static tokio::runtime::Runtime,
    inner: TokioResolver,
    /// The whole time one query may take, all attempts together: what a
    /// caller's `--timeout` means, and what a timeout error reports.
    timeout: Duration,
    /// Who answers, for error messages: "system resolver" or addresses.
    server: String,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The shared runtime ([`crate::rt`]) the resolvers run on.
fn runtime() -> Result<&'static tokio::runtime::Runtime, ResolveError> {
    crate::rt::runtime().map_err(|e| ResolveError::Setup {
        detail: format!("tokio runtime: {e}"),
    })
}

fn name_server(addr: SocketAddr, trust_negative: bool) -> NameServerConfig {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for conn in &mut ns.connections {
        conn.port = addr.port();
    }
    ns.trust_negative_responses = trust_negative;
    ns
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resolver {
    /// The resolver the operating system is configured with
    /// (`/etc/resolv.conf` on Unix), with its options, answers cached for
    /// the life of this value.
    pub fn system() -> Result<Resolver, ResolveError> {
        Self::system_within(None)
    }

    /// The system resolver with each query given up after `budget` in all
    /// (its attempts share it); `None` keeps the system's own timeout.
    pub fn system_within(budget: Option<Duration>) -> Result<Resolver, ResolveError> {
        let runtime = runtime()?;
        let _guard = runtime.enter();
        let mut builder = TokioResolver::builder_tokio().map_err(|e| ResolveError::Setup {
            detail: format!("reading the system resolver configuration: {e}"),
        })?;
        let attempts = builder.options_mut().attempts.max(1);
        if let Some(b) = budget {
            builder.options_mut().timeout = per_attempt(b, attempts);
        }
        let timeout = budget.unwrap_or(builder.options_mut().timeout * attempts as u32);
        let inner = builder.build().map_err(|e| ResolveError::Setup {
            detail: e.to_string(),
        })?;
        drop(_guard);
        Ok(Resolver {
            runtime,
            inner,
            timeout,
            server: "the system resolver".to_string(),
        })
    }

    /// A recursive resolver that asks `servers` (in order of their
    /// responsiveness), each query given up after `timeout` in all (two
    /// attempts of half of it each). Answers are cached for the life of
    /// this value.
    pub fn with_nameservers(
        servers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Resolver, ResolveError> {
        if servers.is_empty() {
            return Err(ResolveError::Setup {
                detail: "no name server given".to_string(),
            });
        }
        let config = ResolverConfig::from_name_servers(
            servers.iter().map(|a| name_server(*a, false)).collect(),
        );
        let mut opts = ResolverOpts::default();
        opts.attempts = 2;
        opts.timeout = per_attempt(timeout, opts.attempts);
        // Validation of a fleet asks for the same includes and parents
        // over and over; keep them.
        opts.cache_size = 1 << 16;
        Self::build(config, opts, list(servers))
    }

    /// Asks the single server `server` without recursion (RD=0) and without
    /// a cache: what that server itself holds, as a propagation check
    /// needs. One attempt of `timeout`.
    pub fn direct(server: SocketAddr, timeout: Duration) -> Result<Resolver, ResolveError> {
        let config = ResolverConfig::from_name_servers(vec![name_server(server, true)]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = 0;
        opts.recursion_desired = false;
        Self::build(config, opts, server.to_string())
    }

    fn build(
        config: ResolverConfig,
        mut opts: ResolverOpts,
        server: String,
    ) -> Result<Resolver, ResolveError> {
        // Names are always sent fully qualified; no search list applies.
        opts.ndots = 0;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let timeout = opts.timeout * opts.attempts.max(1) as u32;
        let runtime = runtime()?;
        let _guard = runtime.enter();
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| ResolveError::Setup {
                detail: e.to_string(),
            })?;
        drop(_guard);
        Ok(Resolver {
            runtime,
            inner,
            timeout,
            server,
        })
    }

    /// Who this resolver asks, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The answer records of type `rtype` at `name` (CNAMEs followed by the
    /// server or the resolver); `Ok(vec![])` when the name exists without
    /// such records ("no data").
    pub fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<Record>, ResolveError> {
        let display = name.strip_suffix('.').unwrap_or(name).to_string();
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let qname = Name::from_str_relaxed(&fqdn).map_err(|e| ResolveError::BadName {
            name: display.clone(),
            detail: e.to_string(),
        })?;
        // hickory has its own per-attempt timeouts, which add up to
        // `self.timeout`; this deadline (a moment later, so that hickory's
        // own answer wins the race) is a second line of defence so that no
        // query can hang a caller.
        let deadline = self.timeout + Duration::from_millis(50);
        let result = self.runtime.block_on(async {
            tokio::time::timeout(deadline, self.inner.lookup(qname, rtype)).await
        });
        let err = |e: NetError| classify(e, &display, rtype, &self.server, self.timeout);
        match result {
            Err(_) => Err(ResolveError::Timeout {
                name: display,
                rtype: rtype.to_string(),
                server: self.server.clone(),
                timeout: self.timeout,
            }),
            Ok(Err(e)) => match err(e) {
                Ok(()) => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            Ok(Ok(lookup)) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect()),
        }
    }

    /// TXT records at `name`, each with its character-strings concatenated
    /// (the same as [`SpfDns::txt`]).
    pub fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, ResolveError> {
        Ok(self
            .txt_records(name)?
            .iter()
            .map(TxtRecord::joined)
            .collect())
    }

    /// TXT records at `name` with their character-strings kept apart.
    pub fn txt_records(&self, name: &str) -> Result<Vec<TxtRecord>, ResolveError> {
        Ok(self
            .lookup(name, RecordType::TXT)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::TXT(txt) => Some(TxtRecord {
                    strings: txt.txt_data.iter().map(|s| s.to_vec()).collect(),
                }),
                _ => None,
            })
            .collect())
    }

    /// The name servers of `zone` (its NS RRset), lower case, without the
    /// trailing dot, sorted.
    pub fn ns(&self, zone: &str) -> Result<Vec<String>, ResolveError> {
        let mut out: Vec<String> = self
            .lookup(zone, RecordType::NS)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::NS(ns) => Some(plain(&ns.0)),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The SOA record of `zone`; `None` when the name exists but is not a
    /// zone apex.
    pub fn soa(&self, zone: &str) -> Result<Option<Soa>, ResolveError> {
        Ok(self
            .lookup(zone, RecordType::SOA)?
            .into_iter()
            .find_map(|r| match r.data {
                RData::SOA(soa) => Some(Soa {
                    mname: plain(&soa.mname),
                    rname: plain(&soa.rname),
                    serial: soa.serial,
                    refresh: soa.refresh,
                    retry: soa.retry,
                    expire: soa.expire,
                    minimum: soa.minimum,
                }),
                _ => None,
            }))
    }

    /// IPv4 and IPv6 addresses of `host`; a missing name or missing data is
    /// an empty list.
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.lookup(host, rtype) {
                Ok(records) => out.extend(records.into_iter().filter_map(|r| match r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(ResolveError::NxDomain { .. }) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// MX records at `name`, exchanges lower case without the trailing dot
    /// (the null MX of RFC 7505 has an empty exchange).
    pub fn mx(&self, name: &str) -> Result<Vec<MxRecord>, ResolveError> {
        Ok(self
            .lookup(name, RecordType::MX)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::MX(mx) => Some(MxRecord {
                    preference: mx.preference,
                    exchange: plain(&mx.exchange),
                }),
                _ => None,
            })
            .collect())
    }
}

/// `name` lower case without the trailing dot ("" for the root).
fn plain(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

/// `Ok(())` means "no data" (the name exists without records of the type).
fn classify(
    e: NetError,
    name: &str,
    rtype: RecordType,
    server: &str,
    timeout: Duration,
) -> Result<(), ResolveError> {
    if e.is_nx_domain() {
        return Err(ResolveError::NxDomain {
            name: name.to_string(),
        });
    }
    if e.is_no_records_found() {
        return Ok(());
    }
    let (name, rtype, server) = (name.to_string(), rtype.to_string(), server.to_string());
    Err(match e {
        NetError::Timeout => ResolveError::Timeout {
            name,
            rtype,
            server,
            timeout,
        },
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ResolveError::Timeout {
            name,
            rtype,
            server,
            timeout,
        },
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => ResolveError::Rcode {
            name,
            rtype,
            server,
            rcode: rcode_text(code),
        },
        other => ResolveError::Failure {
            name,
            rtype,
            server,
            detail: other.to_string(),
        },
    })
}

fn rcode_text(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        other => other.to_string(),
    }
}

/// RFC 7208 §4.6.4: NXDOMAIN counts as a void lookup; everything else that
/// is not an answer is "temperror" (§2.6.6). A name that cannot exist on
/// the wire cannot have records either, so it is treated as NXDOMAIN.
fn to_spf(e: ResolveError, qtype: QType) -> spf::DnsError {
    let detail = e.to_string();
    match e {
        ResolveError::NxDomain { name } | ResolveError::BadName { name, .. } => {
            spf::DnsError::NxDomain { name }
        }
        ResolveError::Timeout { name, .. }
        | ResolveError::Rcode { name, .. }
        | ResolveError::Failure { name, .. } => spf::DnsError::Temporary {
            name,
            qtype,
            detail,
        },
        ResolveError::Setup { .. } => spf::DnsError::Temporary {
            name: String::new(),
            qtype,
            detail,
        },
    }
}

impl Resolver {
    /// One lookup for the SPF evaluator: the answers `pick` keeps, errors
    /// mapped to the evaluator's kinds.
    fn spf_lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        qtype: QType,
        pick: impl Fn(RData) -> Option<T>,
    ) -> Result<Vec<T>, spf::DnsError> {
        Ok(self
            .lookup(name, rtype)
            .map_err(|e| to_spf(e, qtype))?
            .into_iter()
            .filter_map(|r| pick(r.data))
            .collect())
    }
}

impl SpfDns for Resolver {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, spf::DnsError> {
        Resolver::txt(self, name).map_err(|e| to_spf(e, QType::Txt))
    }

    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, spf::DnsError> {
        self.spf_lookup(name, RecordType::A, QType::A, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
    }

    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, spf::DnsError> {
        self.spf_lookup(name, RecordType::AAAA, QType::Aaaa, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
    }

    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, spf::DnsError> {
        Resolver::mx(self, name).map_err(|e| to_spf(e, QType::Mx))
    }

    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, spf::DnsError> {
        self.spf_lookup(
            &spf::reverse_name(ip),
            RecordType::PTR,
            QType::Ptr,
            |d| match d {
                RData::PTR(p) => Some(plain(&p.0)),
                _ => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_parse_with_the_default_port() {
        assert_eq!(
            parse_nameserver("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_nameserver("[2001:db8::1]:5353").unwrap(),
            "[2001:db8::1]:5353".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_nameserver("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse::<SocketAddr>().unwrap()
        );
        let err = parse_nameserver("ns1.example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`--nameserver ns1.example`: expected IP or IP:PORT"
        );
    }

    fn assert_sync<T: Send + Sync>() {}

    #[test]
    fn resolver_is_shareable() {
        assert_sync::<Resolver>();
    }

    #[test]
    fn error_kinds_map_to_spf() {
        let nx = to_spf(
            ResolveError::NxDomain {
                name: "a.example".into(),
            },
            QType::Txt,
        );
        assert_eq!(
            nx,
            spf::DnsError::NxDomain {
                name: "a.example".into()
            }
        );
        let t = to_spf(
            ResolveError::Timeout {
                name: "a.example".into(),
                rtype: "TXT".into(),
                server: "192.0.2.1:53".into(),
                timeout: Duration::from_secs(1),
            },
            QType::Txt,
        );
        assert!(matches!(
            t,
            spf::DnsError::Temporary {
                qtype: QType::Txt,
                ..
            }
        ));
    }

    #[test]
    fn unanswered_server_times_out_without_hanging() {
        // A bound UDP socket that never answers: the query must come back
        // as a timeout within the deadline.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let r = Resolver::direct(addr, Duration::from_millis(200)).expect("resolver");
        let start = std::time::Instant::now();
        let err = r.txt("example.test").expect_err("no answer expected");
        assert!(err.is_temporary(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn txt_record_joins_strings() {
        let t = TxtRecord {
            strings: vec![b"v=spf1 ".to_vec(), b"-all".to_vec()],
        };
        assert_eq!(t.text(), "v=spf1 -all");
    }
}
