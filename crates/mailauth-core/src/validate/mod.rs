//! `mailauth validate`: what receivers see in live DNS, judged on its
//! merits (the same verdicts for any domain, in the config or not), then
//! compared with what the config implies. Per domain it runs the SPF, DKIM,
//! DMARC, MX, MTA-STS / TLS-RPT, BIMI and propagation checks and collects
//! [`Finding`]s; domains are
//! checked concurrently with a bound.
//!
//! Read-only: it queries DNS through [`crate::dns::Resolver`] (and, when
//! asked, fetches MTA-STS policies and BIMI files over HTTPS) and never
//! writes anywhere. It owns the checks and their verdicts; record syntax is
//! `record`'s, SPF tree analysis is `spf::analyze`, the desired records are
//! `desired`'s, and rendering is in [`report`].
//!
//! At fleet scale. The command's resolver carries a run cache
//! ([`Resolver::with_run_cache`]): the SPF includes, MX hosts, DMARC
//! parents and report-authorisation records that many domains share are
//! asked once per run, and a domain that asks a question another domain
//! has on the wire waits for that answer. Domains run on
//! `Settings::concurrency` threads over one resolver, each domain's checks
//! one after another on its thread. The command's resolver is
//! [per-thread](Resolver::per_thread): each of those threads drives its
//! own queries on a current-thread runtime of its own, so a query costs no
//! hand-off to the shared runtime's workers and back (before, two thread
//! wake-ups per query were most of the run's CPU time); the run cache
//! stays one for all threads. The propagation check's per-server
//! resolvers are built once per server and kept, and run where the main
//! resolver runs (per thread when it does). With one `--nameserver` (and
//! always for the propagation check's servers) each question goes on the
//! [plain UDP path](Resolver::plain_udp): the thread sends it and reads
//! the answer on a blocking socket, hickory handling only truncation,
//! CNAME chains and error codes.
//!
//! Timeouts at scale. Every query has one budget, `--timeout` (2 s by
//! default), which its attempts share, and a hard deadline 50 ms past it
//! in [`Resolver`]; so no query waits longer than that. Within a domain
//! the checks run one after another, and the first check that saw a
//! query time out ends the domain: the checks after it are reported as
//! temperror ("not checked") without asking anything. So a dead or
//! unreachable server costs each domain about one budget (its first
//! query, the apex TXT of the SPF check, times out), and a server that
//! stops answering part-way costs at most the queries of the one check
//! that was running, each at most one budget; their number is fixed by
//! the domain's records and config (the SPF tree walk stops at 64
//! records, the DMARC tree walk at eight names, DKIM probing at its first
//! timeout, each declared DKIM selector is asked once, propagation asks
//! each authoritative server for its SOA and then its RRsets). HTTPS
//! fetches (MTA-STS policies, BIMI files) have their own limit,
//! `--policy-timeout`. Timeouts are not remembered between queries (they
//! are not answers), but callers waiting on a query in flight share its
//! timeout. The whole run is therefore bounded by about
//! ⌈domains / concurrency⌉ × that per-domain cost: 10,000 domains behind
//! a dead server at the defaults (16 at once, 2 s) take about
//! 10,000 / 16 × 2 s ≈ 21 minutes; a smaller `--timeout` or a larger
//! `--concurrency` shortens it proportionally.

pub mod bimi;
pub mod cli;
mod dkim;
pub use dkim::COMMON_SELECTORS;
pub(crate) use dkim::key_verdicts as dkim_key_verdicts;
pub(crate) use dmarc::merits as dmarc_merits;
mod dmarc;
mod mail;
pub mod mtasts;
mod propagation;
pub mod report;
mod spf;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::diff::Desired;
use crate::dns::{ResolveError, Resolver};
use crate::record::Name;

pub use dmarc::{OrgDomain, organizational_domain};

/// How bad a finding is, in increasing order.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Pass,
    Info,
    Warn,
    /// The check could not be completed (timeout, SERVFAIL): try again.
    #[serde(rename = "temperror")]
    TempError,
    Fail,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Pass => "pass",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::TempError => "temperror",
            Severity::Fail => "fail",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which check a finding belongs to.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Config,
    Spf,
    Dkim,
    Dmarc,
    Mx,
    MtaSts,
    TlsRpt,
    Bimi,
    Propagation,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Config => "config",
            Check::Spf => "spf",
            Check::Dkim => "dkim",
            Check::Dmarc => "dmarc",
            Check::Mx => "mx",
            Check::MtaSts => "mta-sts",
            Check::TlsRpt => "tls-rpt",
            Check::Bimi => "bimi",
            Check::Propagation => "propagation",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verdict about one domain.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    pub message: String,
    /// One line saying what to do; `None` when nothing needs doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Supporting lines (the SPF include tree, per-server answers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The MTA-STS policy as fetched, on the finding that reports the
    /// fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mta_sts_policy: Option<Box<mtasts::FetchedPolicy>>,
    /// Set when a query of this check timed out.
    #[serde(skip)]
    pub timed_out: bool,
}

impl Finding {
    pub fn new(check: Check, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            check,
            severity,
            message: message.into(),
            fix: None,
            details: Vec::new(),
            mta_sts_policy: None,
            timed_out: false,
        }
    }
    pub fn pass(check: Check, message: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Pass, message)
    }
    pub fn info(check: Check, message: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Info, message)
    }
    pub fn warn(check: Check, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Warn, message).with_fix(fix)
    }
    pub fn fail(check: Check, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Fail, message).with_fix(fix)
    }
    /// A failed query: temperror when it may go away, else a failure.
    pub fn dns(check: Check, what: &str, e: &ResolveError) -> Finding {
        if e.is_temporary() {
            let mut f = Finding::new(check, Severity::TempError, format!("{what}: {e}"))
                .with_fix("check that the name servers answer, then run validate again");
            f.timed_out = e.is_timeout();
            f
        } else {
            Finding::fail(
                check,
                format!("{what}: {e}"),
                "fix the name or publish the record",
            )
        }
    }
    pub fn with_fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
    pub fn with_details(mut self, details: Vec<String>) -> Finding {
        self.details = details;
        self
    }
}

/// Everything found about one domain.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainReport {
    pub domain: String,
    /// The worst severity among the findings.
    pub status: Severity,
    pub findings: Vec<Finding>,
}

impl DomainReport {
    fn new(domain: String, findings: Vec<Finding>) -> DomainReport {
        let status = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Pass);
        DomainReport {
            domain,
            status,
            findings,
        }
    }
}

/// How validation runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Per-query timeout for the direct queries of the propagation check.
    pub timeout: Duration,
    /// Domains checked at once.
    pub concurrency: usize,
    /// Addresses to use for name servers instead of resolving their names
    /// (`--authority NAME=IP:PORT`): for servers on other ports, split
    /// horizons, and tests.
    pub authorities: Vec<(String, SocketAddr)>,
    /// Run the propagation check.
    pub propagation: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(2),
            concurrency: 16,
            authorities: Vec::new(),
            propagation: true,
        }
    }
}

/// Errors that stop validation before any domain is checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    #[error("`--authority {value}`: expected NAME=IP:PORT or NAME=IP")]
    Authority { value: String },
    #[error("`--nameserver {value}`: expected IP or IP:PORT")]
    Nameserver { value: String },
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    #[error("{message}")]
    Selection { message: String },
}

/// What the checks of one domain share: the resolver, the settings, and
/// the per-server resolvers of the propagation check (built once).
pub struct Validator<'a> {
    pub resolver: &'a Resolver,
    pub settings: Settings,
    direct: Mutex<HashMap<SocketAddr, Arc<Resolver>>>,
    /// Set by [`Validator::with_mta_sts_policy`]: fetch and check MTA-STS
    /// policies over HTTPS.
    policy: Option<mtasts::PolicyCheck>,
    /// DKIM selectors probed in every domain besides the declared ones
    /// (`--selector`).
    selectors: Vec<String>,
    /// Probe [`dkim::COMMON_SELECTORS`] in a domain that declares no DKIM
    /// selector (on by default).
    probe_common: bool,
    /// Set by [`Validator::with_bimi`]: fetch and check BIMI logos and
    /// evidence documents over HTTPS.
    bimi: Option<bimi::BimiCheck>,
}

impl<'a> Validator<'a> {
    pub fn new(resolver: &'a Resolver, settings: Settings) -> Validator<'a> {
        Validator {
            resolver,
            settings,
            direct: Mutex::new(HashMap::new()),
            policy: None,
            selectors: Vec::new(),
            probe_common: true,
            bimi: None,
        }
    }

    /// Also probes these DKIM selectors in every domain (`--selector`);
    /// `common` probes [`dkim::COMMON_SELECTORS`] in domains that declare
    /// no selector.
    pub fn with_selectors(mut self, selectors: Vec<String>, common: bool) -> Validator<'a> {
        self.selectors = selectors;
        self.probe_common = common;
        self
    }

    /// Also fetches each domain's MTA-STS policy over HTTPS and checks it
    /// against `check.declared` and the live MX records. Without this, only
    /// the `_mta-sts` TXT record is checked (no network beyond DNS).
    pub fn with_mta_sts_policy(mut self, check: mtasts::PolicyCheck) -> Validator<'a> {
        self.policy = Some(check);
        self
    }

    /// Also fetches BIMI logos and evidence documents over HTTPS. Without
    /// this, only the BIMI record is checked.
    pub fn with_bimi(mut self, check: bimi::BimiCheck) -> Validator<'a> {
        self.bimi = Some(check);
        self
    }

    /// A resolver that asks `server` alone, without recursion.
    fn direct(&self, server: SocketAddr) -> Result<Arc<Resolver>, ResolveError> {
        let mut map = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&server) {
            return Ok(r.clone());
        }
        let mut r = Resolver::direct(server, self.settings.timeout)?;
        // Driven where the main resolver's queries are.
        if self.resolver.is_per_thread() {
            r = r.per_thread();
        }
        if self.resolver.is_plain_udp() {
            r = r.plain_udp();
        }
        let r = Arc::new(r);
        map.insert(server, r.clone());
        Ok(r)
    }

    /// Validates every domain (each with its desired records, or the error
    /// that kept them from being computed), concurrently; results keep the
    /// input order.
    pub fn validate(&self, domains: &[(Name, Result<Desired, String>)]) -> Vec<DomainReport> {
        crate::par::map(domains, self.settings.concurrency, |(name, desired)| {
            self.domain(name, desired.as_ref())
        })
    }

    /// All checks of one domain. A check that times out ends the domain
    /// with a temperror for the rest, so one dead zone cannot stall the run.
    pub fn domain(&self, name: &Name, desired: Result<&Desired, &String>) -> DomainReport {
        let desired = match desired {
            Ok(d) => d,
            Err(e) => {
                return DomainReport::new(
                    name.to_string(),
                    vec![Finding::fail(
                        Check::Config,
                        format!("cannot compute the desired records: {e}"),
                        "fix the config (see `mailauth plan`)",
                    )],
                );
            }
        };
        type CheckFn = fn(&Validator, &Desired) -> Vec<Finding>;
        let mut checks: Vec<(Check, CheckFn)> = vec![
            (Check::Spf, spf::check),
            (Check::Dkim, dkim::check),
            (Check::Dmarc, dmarc::check),
            (Check::Mx, mail::check_mx),
            (Check::MtaSts, mail::check_mta_sts),
            (Check::TlsRpt, mail::check_tls_rpt),
            (Check::Bimi, bimi::check),
        ];
        if self.settings.propagation {
            checks.push((Check::Propagation, propagation::check));
        }
        let mut findings = Vec::new();
        let mut timed_out = false;
        for (check, run) in checks {
            if timed_out {
                findings.push(
                    Finding::new(
                        check,
                        Severity::TempError,
                        "not checked: an earlier query for this domain timed out",
                    )
                    .with_fix("check that the name servers answer, then run validate again"),
                );
                continue;
            }
            let out = run(self, desired);
            timed_out = out.iter().any(|f| f.timed_out);
            findings.extend(out);
        }
        DomainReport::new(name.to_string(), findings)
    }
}

/// Why a command's `--nameserver` and `--timeout` flags give no resolver:
/// a flag that is not one (the first two), or a resolver that cannot be
/// built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverFlagsError {
    /// `--timeout` zero, negative or not a number.
    #[error("--timeout must be a positive number of seconds")]
    Timeout,
    /// A `--nameserver` that is neither IP nor IP:PORT.
    #[error(transparent)]
    Nameserver(#[from] crate::dns::NameserverError),
    #[error(transparent)]
    Resolver(#[from] ResolveError),
}

/// The resolver of a command's `--nameserver` and `--timeout` flags (the
/// system resolver when no server is named), and the per-query time: the
/// whole time one query may take, its attempts sharing it.
pub fn resolver_from_flags(
    nameservers: &[String],
    timeout_secs: f64,
) -> Result<(crate::dns::Resolver, std::time::Duration), ResolverFlagsError> {
    if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
        return Err(ResolverFlagsError::Timeout);
    }
    let timeout = std::time::Duration::from_secs_f64(timeout_secs);
    let servers = nameservers
        .iter()
        .map(|s| crate::dns::parse_nameserver(s))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = if servers.is_empty() {
        crate::dns::Resolver::system_within(Some(timeout))?
    } else {
        crate::dns::Resolver::with_nameservers(&servers, timeout)?
    };
    Ok((resolver, timeout))
}

/// Parses `--nameserver IP[:PORT]`: [`crate::dns::parse_nameserver`], with
/// this module's error.
pub fn parse_nameserver(value: &str) -> Result<SocketAddr, ValidateError> {
    crate::dns::parse_nameserver(value).map_err(|e| ValidateError::Nameserver { value: e.value })
}

/// Parses `--authority NAME=IP[:PORT]`.
pub fn parse_authority(value: &str) -> Result<(String, SocketAddr), ValidateError> {
    let err = || ValidateError::Authority {
        value: value.to_string(),
    };
    let (name, addr) = value.split_once('=').ok_or_else(err)?;
    let name = Name::parse(name).map_err(|_| err())?;
    if name.as_str().is_empty() {
        return Err(err());
    }
    let addr = parse_nameserver(addr).map_err(|_| err())?;
    Ok((name.as_str().to_string(), addr))
}

/// TXT records at `name` that start with `prefix` (case-insensitive), as
/// text, and the number of character-strings of each.
fn tagged_txt(
    resolver: &Resolver,
    name: &str,
    prefix: &str,
) -> Result<Vec<(String, usize)>, ResolveError> {
    let records = match resolver.txt_records(name) {
        Ok(r) => r,
        Err(ResolveError::NxDomain { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(records
        .into_iter()
        .map(|r| (r.text(), r.strings.len()))
        .filter(|(t, _)| t.len() >= prefix.len() && t[..prefix.len()].eq_ignore_ascii_case(prefix))
        .collect())
}

/// The joined TXT value the config implies at `name`, if any.
fn desired_txt(desired: &Desired, name: &Name) -> Option<String> {
    desired
        .sets
        .iter()
        .find(|s| &s.name == name && s.rtype == crate::record::RType::Txt)
        .and_then(|s| s.data.first())
        .and_then(|d| d.txt_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_and_authority_syntax() {
        assert_eq!(
            parse_nameserver("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert!(parse_nameserver("ns1.example").is_err());
        assert_eq!(
            parse_authority("NS1.Example.test.=127.0.0.1:5300").unwrap(),
            (
                "ns1.example.test".to_string(),
                "127.0.0.1:5300".parse().unwrap()
            )
        );
        assert!(parse_authority("ns1.example.test").is_err());
        assert!(parse_authority("=127.0.0.1").is_err());
    }

    #[test]
    fn propagation_resolvers_run_where_the_main_resolver_runs() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let timeout = Duration::from_millis(100);
        for per_thread in [false, true] {
            let mut r = Resolver::direct(server, timeout).unwrap();
            if per_thread {
                r = r.per_thread();
            }
            let v = Validator::new(&r, Settings::default());
            assert_eq!(v.direct(server).unwrap().is_per_thread(), per_thread);
        }
    }

    #[test]
    fn propagation_resolvers_take_the_plain_udp_path_when_the_main_resolver_does() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let timeout = Duration::from_millis(100);
        for plain in [false, true] {
            let mut r = Resolver::direct(server, timeout).unwrap().per_thread();
            if plain {
                r = r.plain_udp();
            }
            let v = Validator::new(&r, Settings::default());
            let direct = v.direct(server).unwrap();
            assert_eq!(direct.is_plain_udp(), plain);
            assert!(direct.is_per_thread());
        }
    }

    #[test]
    fn status_is_the_worst_finding() {
        let r = DomainReport::new(
            "a.test".into(),
            vec![
                Finding::pass(Check::Spf, "ok"),
                Finding::warn(Check::Dkim, "small", "rotate"),
                Finding::info(Check::Dmarc, "note"),
            ],
        );
        assert_eq!(r.status, Severity::Warn);
        let r = DomainReport::new("a.test".into(), vec![]);
        assert_eq!(r.status, Severity::Pass);
        assert!(Severity::Fail > Severity::TempError && Severity::TempError > Severity::Warn);
    }
}
