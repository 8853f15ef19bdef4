//! Source attribution: which mechanism of the domain's *configured* SPF
//! record authorises a source IP, and which DKIM signers the reporters saw
//! for it, so that a sender using the domain without being authorised by
//! the config stands out.
//!
//! Owns the bounded DNS cache used for one run and the verdict. Leaves SPF
//! evaluation to `spf::check_host` and DNS to the injected [`SpfDns`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::reports::store::SourceRow;
use crate::spf::{self, CheckOptions, DnsError, MxRecord, QType, SpfDns, SpfResult};

/// How sure the verdict is.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A configured SPF mechanism matches, or an aligned DKIM signature passed.
    Authorised,
    /// The config has an SPF record for the domain, DNS answered, nothing
    /// matched and no aligned DKIM signature passed.
    Unauthorised,
    /// DNS unavailable or the domain is not in the config: the reporters'
    /// own SPF/DKIM results are shown instead.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Authorised => "authorised",
            Verdict::Unauthorised => "unauthorised",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Why a source is (not) authorised.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub verdict: Verdict,
    /// The configured SPF mechanism that authorises the IP, e.g.
    /// `include:_spf.google.com`.
    pub spf_mechanism: Option<String>,
    /// Passing DKIM signers (`domain/selector`) aligned with the domain.
    pub dkim_aligned_signers: Vec<String>,
    /// `config+dns` (evaluated now), `config` (offline, decided by `ip4`/
    /// `ip6` mechanisms alone), `reported` (DNS needed but unavailable: from
    /// the stored reports), `not-configured` (domain not in the config).
    pub basis: &'static str,
}

type Key = (QType, String);

#[derive(Clone)]
enum Answer {
    Txt(Vec<Vec<u8>>),
    A(Vec<Ipv4Addr>),
    Aaaa(Vec<Ipv6Addr>),
    Mx(Vec<MxRecord>),
    Ptr(Vec<String>),
}

/// A bounded answer cache in front of a resolver: each name is asked once
/// per run; once `capacity` answers are held, new ones are not kept. After
/// [`BREAKER`] temporary failures in a row DNS is taken as down for the
/// rest of the run, so an unreachable resolver costs a few timeouts, not
/// one per source.
pub struct CachedDns {
    inner: Box<dyn SpfDns + Send>,
    capacity: usize,
    cache: RefCell<HashMap<Key, Result<Answer, DnsError>>>,
    failures_in_a_row: std::cell::Cell<u32>,
}

/// Consecutive temporary failures after which DNS is no longer asked.
pub const BREAKER: u32 = 3;

impl CachedDns {
    pub fn new(inner: Box<dyn SpfDns + Send>, capacity: usize) -> CachedDns {
        CachedDns {
            inner,
            capacity,
            cache: RefCell::new(HashMap::new()),
            failures_in_a_row: std::cell::Cell::new(0),
        }
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.cache.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(
        &self,
        key: Key,
        ask: impl FnOnce() -> Result<Answer, DnsError>,
    ) -> Result<Answer, DnsError> {
        if let Some(hit) = self.cache.borrow().get(&key) {
            return hit.clone();
        }
        if self.failures_in_a_row.get() >= BREAKER {
            return Err(DnsError::Temporary {
                name: key.1,
                qtype: key.0,
                detail: "DNS given up after repeated failures".to_owned(),
            });
        }
        let answer = ask();
        match &answer {
            Err(DnsError::Temporary { .. }) => {
                self.failures_in_a_row.set(self.failures_in_a_row.get() + 1);
            }
            _ => self.failures_in_a_row.set(0),
        }
        let mut cache = self.cache.borrow_mut();
        if cache.len() < self.capacity {
            cache.insert(key, answer.clone());
        }
        answer
    }
}

impl SpfDns for CachedDns {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        match self.get((QType::Txt, name.to_ascii_lowercase()), || {
            self.inner.txt(name).map(Answer::Txt)
        })? {
            Answer::Txt(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        match self.get((QType::A, name.to_ascii_lowercase()), || {
            self.inner.a(name).map(Answer::A)
        })? {
            Answer::A(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        match self.get((QType::Aaaa, name.to_ascii_lowercase()), || {
            self.inner.aaaa(name).map(Answer::Aaaa)
        })? {
            Answer::Aaaa(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError> {
        match self.get((QType::Mx, name.to_ascii_lowercase()), || {
            self.inner.mx(name).map(Answer::Mx)
        })? {
            Answer::Mx(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        match self.get((QType::Ptr, ip.to_string()), || {
            self.inner.ptr(ip).map(Answer::Ptr)
        })? {
            Answer::Ptr(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }
}

/// The cached resolver with one name's TXT replaced by a one-mechanism
/// record, so `check_host` tells whether that mechanism alone matches.
struct Overlay<'a> {
    inner: &'a CachedDns,
    name: &'a str,
    record: String,
}

impl SpfDns for Overlay<'_> {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        if name.eq_ignore_ascii_case(self.name) {
            Ok(vec![self.record.clone().into_bytes()])
        } else {
            self.inner.txt(name)
        }
    }
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        self.inner.a(name)
    }
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        self.inner.aaaa(name)
    }
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError> {
        self.inner.mx(name)
    }
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        self.inner.ptr(ip)
    }
}

/// Offline: every query is a temporary failure, so only mechanisms that
/// need no DNS (`ip4`, `ip6`) can match.
struct NoDns;

impl NoDns {
    fn fail<T>(name: &str, qtype: QType) -> Result<T, DnsError> {
        Err(DnsError::Temporary {
            name: name.to_owned(),
            qtype,
            detail: "offline: DNS not queried".to_owned(),
        })
    }
}

impl SpfDns for NoDns {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        NoDns::fail(name, QType::Txt)
    }
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        NoDns::fail(name, QType::A)
    }
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        NoDns::fail(name, QType::Aaaa)
    }
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError> {
        NoDns::fail(name, QType::Mx)
    }
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        NoDns::fail(&ip.to_string(), QType::Ptr)
    }
}

/// Attributes sources of one run.
pub struct Attributor {
    dns: CachedDns,
    online: bool,
    /// Configured SPF record per domain (lower case, no trailing dot).
    spf: BTreeMap<String, String>,
    opts: CheckOptions,
    /// The ASN database the user pointed to (`--asn-db`), if any.
    asn_db: Option<std::sync::Arc<crate::reports::mmdb::Mmdb>>,
}

/// Answers kept per run: enough for the include trees of a large fleet.
pub const CACHE_ENTRIES: usize = 4096;

impl Attributor {
    /// `dns: None` means offline: `ip4`/`ip6` mechanisms of the config are
    /// still evaluated; anything needing DNS falls back to stored data.
    pub fn new(dns: Option<Box<dyn SpfDns + Send>>, spf: BTreeMap<String, String>) -> Attributor {
        let online = dns.is_some();
        Attributor {
            dns: CachedDns::new(dns.unwrap_or_else(|| Box::new(NoDns)), CACHE_ENTRIES),
            online,
            spf: spf
                .into_iter()
                .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v))
                .collect(),
            opts: CheckOptions {
                receiver: "mailauth.invalid".to_owned(),
                timestamp: Some(0),
                ..CheckOptions::default()
            },
            asn_db: None,
        }
    }

    /// Looks sources up in this ASN database too (local: works offline).
    pub fn with_asn_db(mut self, db: Option<std::sync::Arc<crate::reports::mmdb::Mmdb>>) -> Self {
        self.asn_db = db;
        self
    }

    /// The autonomous system of `ip` from the ASN database. A record the
    /// reader refuses (a damaged file) is reported on standard error and
    /// taken as unknown: one bad record does not stop a dashboard.
    pub fn asn(&self, ip: &str) -> Option<crate::reports::mmdb::Asn> {
        let db = self.asn_db.as_ref()?;
        let ip: IpAddr = ip.parse().ok()?;
        match db.lookup(ip) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }

    /// Offline, with no config: every verdict comes from stored data.
    pub fn offline() -> Attributor {
        Attributor::new(None, BTreeMap::new())
    }

    /// Starts a new run: forgets cached answers and a tripped breaker (the
    /// server calls this per request, so answers never go stale).
    pub fn reset(&mut self) {
        self.dns.cache.borrow_mut().clear();
        self.dns.failures_in_a_row.set(0);
    }

    /// Answers in the DNS cache (tests, diagnostics).
    pub fn cached_answers(&self) -> usize {
        if self.online { self.dns.len() } else { 0 }
    }

    /// DNS is asked (not `--offline`).
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// A reverse DNS answer to remember: `Some(Some(name))` the first PTR
    /// name, `Some(None)` no PTR record (NXDOMAIN or an empty answer),
    /// `None` offline or a temporary failure (nothing to remember).
    pub fn ptr_lookup(&self, ip: &str) -> Option<Option<String>> {
        if !self.online {
            return None;
        }
        let ip: IpAddr = ip.parse().ok()?;
        match self.dns.ptr(ip) {
            Ok(names) => Some(
                names
                    .into_iter()
                    .next()
                    .map(|n| n.trim_end_matches('.').to_ascii_lowercase()),
            ),
            Err(DnsError::NxDomain { .. }) => Some(None),
            // A temporary failure (or a kind a later core adds).
            Err(_) => None,
        }
    }

    /// The first PTR name of `ip`, when DNS is available and has one.
    pub fn reverse_dns(&self, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().ok()?;
        self.dns.ptr(ip).ok()?.into_iter().next()
    }

    /// RFC 7208 §4.6.1: `record = version terms *SP`, `terms = *( 1*SP (
    /// directive / modifier ) )`, `directive = [ qualifier ] mechanism`.
    /// Each mechanism of the configured record is tried alone as
    /// `v=spf1 <mechanism> -all`; the first that gives "pass" authorises.
    pub fn attribute(&self, domain: &str, src: &SourceRow) -> Attribution {
        let dkim = aligned_signers(domain, &src.dkim_signers);
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        let configured = self.spf.get(&key);
        let evaluated = match (configured, src.source_ip.parse::<IpAddr>()) {
            (Some(record), Ok(ip)) => evaluate(&self.dns, &key, record, ip, &self.opts),
            _ => Err(()),
        };
        match evaluated {
            Ok(mechanism) => Attribution {
                verdict: if mechanism.is_some() || !dkim.is_empty() {
                    Verdict::Authorised
                } else {
                    Verdict::Unauthorised
                },
                spf_mechanism: mechanism,
                dkim_aligned_signers: dkim,
                basis: if self.online { "config+dns" } else { "config" },
            },
            Err(()) => {
                // DNS unavailable or domain not configured: fall back to
                // what the reporters saw.
                let spf_pass = src.spf_reported.iter().any(|s| {
                    s.rsplit_once('=')
                        .is_some_and(|(d, r)| r.eq_ignore_ascii_case("pass") && aligned(&key, d))
                });
                Attribution {
                    verdict: if spf_pass || !dkim.is_empty() {
                        Verdict::Authorised
                    } else {
                        Verdict::Unknown
                    },
                    spf_mechanism: None,
                    dkim_aligned_signers: dkim,
                    basis: if configured.is_some() {
                        "reported"
                    } else {
                        "not-configured"
                    },
                }
            }
        }
    }
}

/// Relaxed alignment approximated without the PSL: equal, or one is a
/// subdomain of the other.
fn aligned(domain: &str, other: &str) -> bool {
    let o = other.trim_end_matches('.').to_ascii_lowercase();
    o == domain || o.ends_with(&format!(".{domain}")) || domain.ends_with(&format!(".{o}"))
}

fn aligned_signers(domain: &str, signers: &[String]) -> Vec<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    signers
        .iter()
        .filter(|s| aligned(&d, s.split('/').next().unwrap_or(s)))
        .cloned()
        .collect()
}

/// `Ok(Some(term))`: authorised by `term`; `Ok(None)`: no mechanism
/// matched; `Err(())`: a DNS failure made the answer unknowable.
fn evaluate(
    dns: &CachedDns,
    domain: &str,
    record: &str,
    ip: IpAddr,
    opts: &CheckOptions,
) -> Result<Option<String>, ()> {
    let mut temp = false;
    for term in record.split_ascii_whitespace().skip(1) {
        let mech = term.trim_start_matches(['+', '-', '~', '?']);
        // Modifiers (redirect=, exp=) and `all` say nothing about who sends.
        let lower = mech.to_ascii_lowercase();
        if mech.contains('=') && !lower.starts_with("include:") || lower == "all" {
            continue;
        }
        // Only a "pass" qualifier authorises.
        if term.starts_with(['-', '~', '?']) {
            continue;
        }
        let overlay = Overlay {
            inner: dns,
            name: domain,
            record: format!("v=spf1 {mech} -all"),
        };
        let out = spf::check_host(
            &overlay,
            ip,
            domain,
            &format!("postmaster@{domain}"),
            domain,
            opts,
        );
        match out.result {
            SpfResult::Pass => return Ok(Some(mech.to_owned())),
            SpfResult::TempError => temp = true,
            _ => {}
        }
    }
    if temp { Err(()) } else { Ok(None) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spf::MemoryDns;

    fn src(ip: &str, signers: &[&str], spf: &[&str]) -> SourceRow {
        SourceRow {
            domain: "example.com".into(),
            source_ip: ip.into(),
            messages: 10,
            dmarc_pass: 0,
            spf_aligned: 0,
            dkim_aligned: 0,
            forwarded_reason: 0,
            arc_pass: 0,
            reporters: vec!["google.com".into()],
            dkim_signers: signers.iter().map(|s| s.to_string()).collect(),
            spf_reported: spf.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn attributor(dns: MemoryDns) -> Attributor {
        let mut spf = BTreeMap::new();
        spf.insert(
            "Example.com.".to_owned(),
            "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com ~all".to_owned(),
        );
        Attributor::new(Some(Box::new(dns)), spf)
    }

    #[test]
    fn include_authorises_and_stranger_stands_out() {
        let mut dns = MemoryDns::new();
        dns.add_txt("_spf.google.com", "v=spf1 ip4:209.85.128.0/17 -all");
        let a = attributor(dns);
        let g = a.attribute("example.com", &src("209.85.220.41", &[], &[]));
        assert_eq!(g.verdict, Verdict::Authorised);
        assert_eq!(g.spf_mechanism.as_deref(), Some("include:_spf.google.com"));
        let own = a.attribute("example.com", &src("192.0.2.7", &[], &[]));
        assert_eq!(own.spf_mechanism.as_deref(), Some("ip4:192.0.2.0/24"));
        let bad = a.attribute("example.com", &src("203.0.113.9", &["evil.test/s1"], &[]));
        assert_eq!(bad.verdict, Verdict::Unauthorised);
        assert_eq!(bad.spf_mechanism, None);
        assert!(bad.dkim_aligned_signers.is_empty());
        assert_eq!(bad.basis, "config+dns");
        // An aligned DKIM signature authorises a source SPF does not cover.
        let signed = a.attribute(
            "example.com",
            &src("203.0.113.9", &["mail.example.com/s1"], &[]),
        );
        assert_eq!(signed.verdict, Verdict::Authorised);
        assert_eq!(signed.dkim_aligned_signers, vec!["mail.example.com/s1"]);
    }

    #[test]
    fn include_tree_resolved_once() {
        let mut dns = MemoryDns::new();
        dns.add_txt("_spf.google.com", "v=spf1 ip4:209.85.128.0/17 -all");
        let a = attributor(dns);
        for ip in ["203.0.113.1", "203.0.113.2", "209.85.220.41"] {
            a.attribute("example.com", &src(ip, &[], &[]));
        }
        assert_eq!(a.cached_answers(), 1, "only _spf.google.com TXT was asked");
    }

    #[test]
    fn dns_failure_falls_back_to_reports() {
        let mut dns = MemoryDns::new();
        dns.timeout("_spf.google.com");
        let a = attributor(dns);
        let r = a.attribute(
            "example.com",
            &src("203.0.113.9", &[], &["example.com=pass"]),
        );
        assert_eq!((r.verdict, r.basis), (Verdict::Authorised, "reported"));
        let r = a.attribute(
            "example.com",
            &src("203.0.113.9", &[], &["other.test=pass"]),
        );
        assert_eq!((r.verdict, r.basis), (Verdict::Unknown, "reported"));
        let off = Attributor::offline().attribute("example.com", &src("192.0.2.7", &[], &[]));
        assert_eq!(
            (off.verdict, off.basis),
            (Verdict::Unknown, "not-configured")
        );
    }

    #[test]
    fn offline_still_uses_address_mechanisms() {
        let mut spf = BTreeMap::new();
        spf.insert(
            "example.com".to_owned(),
            "v=spf1 include:_spf.google.com ip4:192.0.2.0/24 -all".to_owned(),
        );
        let a = Attributor::new(None, spf.clone());
        let own = a.attribute("example.com", &src("192.0.2.7", &[], &[]));
        assert_eq!(
            (own.verdict, own.spf_mechanism.as_deref(), own.basis),
            (Verdict::Authorised, Some("ip4:192.0.2.0/24"), "config")
        );
        // The include could match: unknowable offline.
        let other = a.attribute("example.com", &src("203.0.113.1", &[], &[]));
        assert_eq!((other.verdict, other.basis), (Verdict::Unknown, "reported"));
        assert_eq!(a.reverse_dns("192.0.2.7"), None);
        spf.insert(
            "example.com".to_owned(),
            "v=spf1 ip4:192.0.2.0/24 -all".to_owned(),
        );
        let strict = Attributor::new(None, spf);
        let stranger = strict.attribute("example.com", &src("203.0.113.1", &[], &[]));
        assert_eq!(
            (stranger.verdict, stranger.basis),
            (Verdict::Unauthorised, "config")
        );
    }

    #[test]
    fn gives_up_on_dead_dns() {
        let mut dns = MemoryDns::new();
        for i in 0..10 {
            dns.timeout(&format!("n{i}.test"));
        }
        dns.add_txt("ok.test", "v=spf1 -all");
        let c = CachedDns::new(Box::new(dns), 100);
        for i in 0..10 {
            assert!(c.txt(&format!("n{i}.test")).is_err());
        }
        assert_eq!(
            c.len(),
            BREAKER as usize,
            "only the first failures were asked"
        );
        assert!(c.txt("ok.test").is_err(), "given up");
    }

    #[test]
    fn bounded_cache() {
        let mut dns = MemoryDns::new();
        for i in 0..10 {
            dns.add_txt(&format!("n{i}.test"), "v=spf1 -all");
        }
        let c = CachedDns::new(Box::new(dns), 3);
        for i in 0..10 {
            c.txt(&format!("n{i}.test")).expect("answer");
        }
        assert_eq!(c.len(), 3);
    }
}
