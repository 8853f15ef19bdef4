//! SPF flattening: replace `include:` mechanisms by the ip4/ip6 networks
//! they authorise, so that a record stays within the RFC 7208 §4.6.4 limit
//! of 10 DNS-querying terms, and tell when an include's networks changed
//! since they were last published (drift).
//!
//! This module owns: walking an include's tree to the networks it passes
//! (checked address by address with `check_host()`, the evaluator that
//! passes the RFC 7208 test suite), merging networks (de-duplicated,
//! covered ones dropped, adjacent halves collapsed), packing them into the
//! apex record plus chained `include:_spf1.<domain>` records, and the
//! upstream state file with the drift and shrink comparisons. It does no
//! I/O besides DNS through [`SpfDns`] and the state file; the config types
//! are `config`'s, the records' place in a plan is `workspace`'s.
//!
//! Size rule: every record (its strings joined) is at most
//! [`MAX_RECORD`] = 450 octets, dnscontrol's guidance for a TXT answer to
//! fit a 512-octet UDP DNS message (RFC 1035 §4.2.1) with the header,
//! question and other records; every character-string is at most 255
//! octets (RFC 1035 §3.3.14, the split is done by `record::txt`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dns::{DnsError, SpfDns};
use super::{CheckOptions, SpfResult, analyze, check_host};
use crate::record::spf::{Directive, DomainSpec, Mechanism, Modifier, Qualifier, Spf, Term};

/// Most octets of one flattened record (see the module comment).
pub const MAX_RECORD: usize = 450;

/// Most records one include's tree may hold before the walk gives up.
const MAX_NODES: usize = 64;

/// RFC 7208 §4.6.4: "the evaluation of each "MX" record MUST NOT result in
/// querying more than 10 address records".
const MAX_MX: usize = 10;

/// When to flatten (`spf.flatten`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Publish the includes as declared.
    #[default]
    Never,
    /// Flatten as few includes as needed to fit the lookup budget.
    Auto,
    /// Flatten every include that can be.
    Always,
}

/// The settings of one domain's flattening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// Most DNS-querying terms the published tree may need (default 10).
    pub budget: usize,
    /// Includes never flattened, by name.
    pub keep: Vec<String>,
    /// Chained record names, `{n}` the number from 1: `_spf{n}`.
    pub chain: String,
}

pub const DEFAULT_CHAIN: &str = "_spf{n}";
pub const DEFAULT_BUDGET: usize = 10;
pub const DEFAULT_MAX_SHRINK: u8 = 50;

/// An ip4 or ip6 network, host bits cleared. IPv4 sorts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    pub fn v4(addr: Ipv4Addr, prefix: u8) -> Net {
        let p = prefix.min(32);
        Net::V4(u32::from(addr) & mask32(p), p)
    }

    pub fn v6(addr: Ipv6Addr, prefix: u8) -> Net {
        let p = prefix.min(128);
        Net::V6(u128::from(addr) & mask128(p), p)
    }

    /// True when `other` lies within `self`.
    pub fn covers(&self, other: &Net) -> bool {
        match (*self, *other) {
            (Net::V4(a, p), Net::V4(b, q)) => p <= q && b & mask32(p) == a,
            (Net::V6(a, p), Net::V6(b, q)) => p <= q && b & mask128(p) == a,
            _ => false,
        }
    }

    /// The first and the last address.
    pub fn ends(&self) -> (IpAddr, IpAddr) {
        match *self {
            Net::V4(a, p) => (IpAddr::V4(a.into()), IpAddr::V4((a | !mask32(p)).into())),
            Net::V6(a, p) => (IpAddr::V6(a.into()), IpAddr::V6((a | !mask128(p)).into())),
        }
    }

    /// The network with the other half of its parent, if this is not the
    /// whole address space: `(sibling, parent)`.
    fn sibling(&self) -> Option<(Net, Net)> {
        match *self {
            Net::V4(_, 0) | Net::V6(_, 0) => None,
            Net::V4(a, p) => {
                let bit = 1u32 << (32 - p);
                Some((Net::V4(a ^ bit, p), Net::V4(a & mask32(p - 1), p - 1)))
            }
            Net::V6(a, p) => {
                let bit = 1u128 << (128 - p);
                Some((Net::V6(a ^ bit, p), Net::V6(a & mask128(p - 1), p - 1)))
            }
        }
    }
}

fn mask32(p: u8) -> u32 {
    if p == 0 { 0 } else { u32::MAX << (32 - p) }
}

fn mask128(p: u8) -> u128 {
    if p == 0 { 0 } else { u128::MAX << (128 - p) }
}

/// The SPF term: `ip4:192.0.2.0/24`, `ip4:192.0.2.1` for a /32.
impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Net::V4(a, 32) => write!(f, "ip4:{}", Ipv4Addr::from(a)),
            Net::V4(a, p) => write!(f, "ip4:{}/{p}", Ipv4Addr::from(a)),
            Net::V6(a, 128) => write!(f, "ip6:{}", Ipv6Addr::from(a)),
            Net::V6(a, p) => write!(f, "ip6:{}/{p}", Ipv6Addr::from(a)),
        }
    }
}

impl std::str::FromStr for Net {
    type Err = ();
    fn from_str(s: &str) -> Result<Net, ()> {
        let (kind, rest) = s.split_once(':').ok_or(())?;
        let (addr, prefix) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| ())?)),
            None => (rest, None),
        };
        match kind.to_ascii_lowercase().as_str() {
            "ip4" if prefix.is_none_or(|p| p <= 32) => {
                Ok(Net::v4(addr.parse().map_err(|_| ())?, prefix.unwrap_or(32)))
            }
            "ip6" if prefix.is_none_or(|p| p <= 128) => Ok(Net::v6(
                addr.parse().map_err(|_| ())?,
                prefix.unwrap_or(128),
            )),
            _ => Err(()),
        }
    }
}

/// Merges networks: duplicates and networks inside others dropped, two
/// halves of one network replaced by it, sorted. Linear in the input after
/// the sort (each collapse removes one network).
pub fn merge(nets: impl IntoIterator<Item = Net>) -> Vec<Net> {
    let mut set: BTreeSet<Net> = nets.into_iter().collect();
    // Collapse siblings until none is left, widest last.
    loop {
        let mut changed = false;
        let all: Vec<Net> = set.iter().copied().collect();
        for n in all {
            if !set.contains(&n) {
                continue;
            }
            if let Some((sib, parent)) = n.sibling()
                && set.contains(&sib)
            {
                set.remove(&n);
                set.remove(&sib);
                set.insert(parent);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Drop networks inside another. Sorted by (start, prefix), a network
    // comes after the one covering it, and everything in between starts
    // inside that one too (aligned networks nest or are disjoint), so the
    // last kept network is the only candidate.
    let mut out: Vec<Net> = Vec::with_capacity(set.len());
    for n in set {
        if out.last().is_some_and(|last| last.covers(&n)) {
            continue;
        }
        out.push(n);
    }
    out
}

/// The networks of `want` that no network of `have` covers. `have` must
/// come from [`merge`] (sorted, none inside another): then the only
/// candidate is the last network starting at or before `w`, found by
/// binary search, so the check is O(n log m).
pub fn uncovered(want: &[Net], have: &[Net]) -> Vec<Net> {
    let start = |n: &Net| match *n {
        Net::V4(a, _) => (0u8, u128::from(a)),
        Net::V6(a, _) => (1u8, a),
    };
    want.iter()
        .filter(|w| {
            let i = have.partition_point(|h| start(h) <= start(w));
            !(i > 0 && have[i - 1].covers(w))
        })
        .copied()
        .collect()
}

/// The ip4/ip6 networks written in SPF record values (other terms ignored).
pub fn nets_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Net> {
    merge(
        values
            .into_iter()
            .flat_map(|v| v.split(' '))
            .filter_map(|t| t.trim_start_matches('+').parse::<Net>().ok()),
    )
}

/// Why an include was not flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Its tree holds what networks cannot express (`exists`, `ptr`,
    /// macros, `+all`, terms with another qualifier): kept as it is.
    Keep(String),
    /// It does not resolve (timeout, SERVFAIL, NXDOMAIN, permerror): the
    /// plan for the domain fails, so that nothing is silently lost.
    Fail(String),
}

/// The networks `include:<name>` passes, checked with `check_host()`.
pub fn resolve_include(dns: &dyn SpfDns, name: &str) -> Result<Vec<Net>, Problem> {
    let mut w = Walk {
        dns,
        nodes: 0,
        path: Vec::new(),
        nets: Vec::new(),
    };
    w.record(name)?;
    let nets = merge(w.nets);
    // The evaluator has the last word: every network's first and last
    // address must pass through the include as a receiver evaluates it
    // (RFC 7208 §5.2: include matches on "pass").
    let opts = CheckOptions {
        receiver: "flatten.invalid".into(),
        timestamp: Some(0),
        ..CheckOptions::default()
    };
    for n in &nets {
        let (first, last) = n.ends();
        for ip in [first, last] {
            let o = check_host(dns, ip, name, &format!("postmaster@{name}"), "", &opts);
            match o.result {
                SpfResult::Pass => {}
                SpfResult::TempError => {
                    return Err(Problem::Fail(format!(
                        "{name}: temperror evaluating {ip}: {}",
                        o.problem.unwrap_or_default()
                    )));
                }
                SpfResult::PermError => {
                    return Err(Problem::Fail(format!(
                        "{name}: permerror evaluating {ip}: {}",
                        o.problem.unwrap_or_default()
                    )));
                }
                other => {
                    return Err(Problem::Keep(format!(
                        "{name} gives {other} for {ip} of {n}: its networks cannot be listed exactly"
                    )));
                }
            }
        }
    }
    Ok(nets)
}

struct Walk<'a> {
    dns: &'a dyn SpfDns,
    nodes: usize,
    path: Vec<String>,
    nets: Vec<Net>,
}

fn dns_fail(e: DnsError) -> Problem {
    match e {
        DnsError::NxDomain { name } => {
            Problem::Fail(format!("{name}: no such domain (NXDOMAIN): permerror"))
        }
        other => Problem::Fail(other.to_string()),
    }
}

fn literal(spec: &DomainSpec, what: &str) -> Result<String, Problem> {
    spec.as_literal()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .ok_or_else(|| Problem::Keep(format!("{what} uses macros, which depend on the client")))
}

impl Walk<'_> {
    /// RFC 7208 §4.4 and §4.5: the one SPF record at `domain`.
    fn record(&mut self, domain: &str) -> Result<(), Problem> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if self.path.contains(&domain) {
            return Err(Problem::Fail(format!("{domain}: include loop: permerror")));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Problem::Fail(format!(
                "more than {MAX_NODES} records under one include"
            )));
        }
        let records = self.dns.txt(&domain).map_err(dns_fail)?;
        let spf: Vec<_> = records.iter().filter(|r| Spf::is_spf_record(r)).collect();
        let text = match spf.as_slice() {
            [] => {
                return Err(Problem::Fail(format!(
                    "{domain}: no SPF record: permerror (RFC 7208 §5.2)"
                )));
            }
            [one] => String::from_utf8_lossy(one).into_owned(),
            _ => {
                return Err(Problem::Fail(format!(
                    "{domain}: more than one SPF record: permerror (RFC 7208 §4.5)"
                )));
            }
        };
        let record: Spf = text
            .parse()
            .map_err(|e| Problem::Fail(format!("{domain}: permerror: {e}")))?;
        self.path.push(domain.clone());
        let result = self.terms(&domain, &record);
        self.path.pop();
        result
    }

    fn terms(&mut self, domain: &str, record: &Spf) -> Result<(), Problem> {
        let mut ended = false;
        for term in &record.terms {
            let Term::Directive(Directive {
                qualifier,
                mechanism,
            }) = term
            else {
                continue;
            };
            if *mechanism == Mechanism::All {
                if *qualifier == Qualifier::Pass {
                    return Err(Problem::Keep(format!(
                        "{domain} ends in `+all`, which authorises every address"
                    )));
                }
                // §5.1: nothing after `all` is evaluated; §6.1: redirect
                // is ignored when `all` is present.
                ended = true;
                break;
            }
            if *qualifier != Qualifier::Pass {
                return Err(Problem::Keep(format!(
                    "{domain} has `{}{}`: only `+` terms can be listed as networks",
                    qualifier.as_char(),
                    mechanism.name()
                )));
            }
            self.mechanism(domain, mechanism)?;
        }
        if !ended && let Some(target) = record.redirect() {
            // §6.1: the redirect target's result is the record's result.
            let t = literal(target, &format!("{domain}: redirect"))?;
            self.record(&t)?;
        }
        Ok(())
    }

    fn mechanism(&mut self, domain: &str, m: &Mechanism) -> Result<(), Problem> {
        let target = |spec: &Option<DomainSpec>, what: &str| match spec {
            Some(s) => literal(s, &format!("{domain}: {what}")),
            None => Ok(domain.to_string()),
        };
        match m {
            Mechanism::Ip4 { addr, prefix } => self.nets.push(Net::v4(*addr, prefix.unwrap_or(32))),
            Mechanism::Ip6 { addr, prefix } => {
                self.nets.push(Net::v6(*addr, prefix.unwrap_or(128)))
            }
            Mechanism::Include(spec) => {
                let t = literal(spec, &format!("{domain}: include"))?;
                self.record(&t)?;
            }
            Mechanism::A {
                domain: d,
                cidr4,
                cidr6,
            } => {
                let host = target(d, "a")?;
                self.addresses(&host, *cidr4, *cidr6)?;
            }
            Mechanism::Mx {
                domain: d,
                cidr4,
                cidr6,
            } => {
                let host = target(d, "mx")?;
                let mut mx = match self.dns.mx(&host) {
                    Ok(mx) => mx,
                    Err(DnsError::NxDomain { .. }) => Vec::new(),
                    Err(e) => return Err(dns_fail(e)),
                };
                if mx.len() > MAX_MX {
                    return Err(Problem::Fail(format!(
                        "{domain}: mx:{host} has {} exchanges: permerror (RFC 7208 §4.6.4 allows 10)",
                        mx.len()
                    )));
                }
                mx.sort_by(|a, b| a.exchange.cmp(&b.exchange));
                for x in mx.iter().filter(|x| !x.exchange.is_empty()) {
                    self.addresses(&x.exchange, *cidr4, *cidr6)?;
                }
            }
            Mechanism::Ptr(_) => {
                return Err(Problem::Keep(format!(
                    "{domain} has `ptr`, which depends on the client's reverse DNS"
                )));
            }
            Mechanism::Exists(_) => {
                return Err(Problem::Keep(format!(
                    "{domain} has `exists`, which depends on the client"
                )));
            }
            Mechanism::All => {}
        }
        Ok(())
    }

    /// RFC 7208 §5.3: A and AAAA of `host`, each with its CIDR length. A
    /// name without addresses is a void lookup, not an error.
    fn addresses(&mut self, host: &str, c4: Option<u8>, c6: Option<u8>) -> Result<(), Problem> {
        match self.dns.a(host) {
            Ok(v) => self
                .nets
                .extend(v.into_iter().map(|a| Net::v4(a, c4.unwrap_or(32)))),
            Err(DnsError::NxDomain { .. }) => {}
            Err(e) => return Err(dns_fail(e)),
        }
        match self.dns.aaaa(host) {
            Ok(v) => self
                .nets
                .extend(v.into_iter().map(|a| Net::v6(a, c6.unwrap_or(128)))),
            Err(DnsError::NxDomain { .. }) => {}
            Err(e) => return Err(dns_fail(e)),
        }
        Ok(())
    }
}

/// The flattened SPF of one domain: the records to publish and what each
/// flattened include resolved to.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flattened {
    /// The apex record.
    pub apex: String,
    /// Chained records, `(name relative to the domain, value)`, in order.
    pub chain: Vec<(String, String)>,
    /// Each flattened include and its networks, rendered (`ip4:…`).
    pub upstream: BTreeMap<String, Vec<String>>,
    /// Includes kept as they are, with the reason.
    #[serde(default)]
    pub kept: Vec<(String, String)>,
    /// DNS-querying terms a receiver needs before and after flattening.
    pub lookups_before: usize,
    pub lookups_after: usize,
}

impl Flattened {
    /// One line for the plan: what was flattened, lookups and sizes.
    pub fn summary(&self) -> String {
        let mut sizes = vec![format!("@ {}", self.apex.len())];
        sizes.extend(self.chain.iter().map(|(n, v)| format!("{n} {}", v.len())));
        format!(
            "spf: flattened {} include(s) ({}): {} DNS lookups -> {}; {} record(s), octets: {}",
            self.upstream.len(),
            self.upstream.keys().cloned().collect::<Vec<_>>().join(", "),
            self.lookups_before,
            self.lookups_after,
            1 + self.chain.len(),
            sizes.join(", ")
        )
    }
}

/// One term of the record being flattened.
enum Part {
    /// A term kept as written, and the lookups it costs with its tree.
    Fixed(String, usize),
    /// An include that may be flattened, and its cost if kept.
    Include(String, usize),
}

/// Flattens `record` (the declared SPF of `origin`) per `settings`.
/// `Ok(None)`: nothing to flatten (mode `never`, or `auto` within budget).
/// `Err`: an include to flatten failed to resolve, or the budget cannot be
/// met; the reason names the include.
pub fn flatten(
    dns: &dyn SpfDns,
    origin: &str,
    record: &Spf,
    settings: &Settings,
) -> Result<Option<Flattened>, String> {
    if settings.mode == Mode::Never {
        return Ok(None);
    }
    let origin = origin.trim_end_matches('.').to_ascii_lowercase();
    let tree_cost = |name: &str| 1 + analyze(dns, name).total_lookups;
    let mut nets = Vec::new();
    let mut parts = Vec::new();
    let mut tail = String::new();
    for term in &record.terms {
        match term {
            Term::Directive(Directive {
                qualifier: _,
                mechanism: Mechanism::All,
            }) => tail = term_text(term),
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::Ip4 { addr, prefix },
            }) => nets.push(Net::v4(*addr, prefix.unwrap_or(32))),
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::Ip6 { addr, prefix },
            }) => nets.push(Net::v6(*addr, prefix.unwrap_or(128))),
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::Include(spec),
            }) if spec.as_literal().is_some() => {
                let name = literal(spec, "include").map_err(|_| "include".to_string())?;
                let cost = tree_cost(&name);
                parts.push(Part::Include(name, cost));
            }
            Term::Modifier(Modifier::Redirect(spec)) => {
                let cost = match spec.as_literal() {
                    Some(n) => tree_cost(&n),
                    None => 1,
                };
                tail = term_text(term);
                parts.push(Part::Fixed(String::new(), cost));
            }
            Term::Directive(d) => {
                let cost = usize::from(d.mechanism.queries_dns());
                parts.push(Part::Fixed(term_text(term), cost));
            }
            Term::Modifier(_) => parts.push(Part::Fixed(term_text(term), 0)),
        }
    }
    let lookups_before: usize = parts
        .iter()
        .map(|p| match p {
            Part::Fixed(_, c) | Part::Include(_, c) => *c,
        })
        .sum();
    if settings.mode == Mode::Auto && lookups_before <= settings.budget {
        return Ok(None);
    }
    // The order in which includes are flattened: `always` takes all, `auto`
    // the costliest first (declaration order among equals) until it fits.
    let mut order: Vec<(usize, &str, usize)> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Part::Include(n, c) if !settings.keep.iter().any(|k| k.eq_ignore_ascii_case(n)) => {
                Some((i, n.as_str(), *c))
            }
            _ => None,
        })
        .collect();
    order.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut flat: BTreeMap<usize, Vec<Net>> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut best = None;
    for (i, name, _) in order {
        match resolve_include(dns, name) {
            Ok(n) => {
                flat.insert(i, n);
            }
            Err(Problem::Keep(why)) => {
                kept.push((name.to_string(), why));
                continue;
            }
            Err(Problem::Fail(why)) => {
                return Err(format!(
                    "include:{name} cannot be flattened: {why}; nothing is changed for this domain"
                ));
            }
        }
        let packed = pack(&origin, &parts, &flat, &nets, &tail, settings)?;
        let fits = packed.lookups_after <= settings.budget;
        best = Some(packed);
        if fits && settings.mode == Mode::Auto {
            break;
        }
    }
    let Some(mut out) = best else {
        if lookups_before <= settings.budget {
            return Ok(None);
        }
        return Err(budget_error(lookups_before, settings.budget, &kept));
    };
    if out.lookups_after > settings.budget {
        return Err(budget_error(out.lookups_after, settings.budget, &kept));
    }
    out.lookups_before = lookups_before;
    kept.sort();
    out.kept = kept;
    for p in &parts {
        if let Part::Include(n, _) = p
            && settings.keep.iter().any(|k| k.eq_ignore_ascii_case(n))
        {
            out.kept.push((n.clone(), "listed in spf.keep".into()));
        }
    }
    Ok(Some(out))
}

fn budget_error(lookups: usize, budget: usize, kept: &[(String, String)]) -> String {
    let mut m = format!(
        "the SPF record needs {lookups} DNS lookups after flattening every include that can be; the budget is {budget}"
    );
    for (n, why) in kept {
        m.push_str(&format!("; kept include:{n}: {why}"));
    }
    m
}

fn term_text(t: &Term) -> String {
    Spf {
        terms: vec![t.clone()],
    }
    .to_string()
    .trim_start_matches("v=spf1")
    .trim()
    .to_string()
}

/// Packs the networks into the apex and chained records.
fn pack(
    origin: &str,
    parts: &[Part],
    flat: &BTreeMap<usize, Vec<Net>>,
    own: &[Net],
    tail: &str,
    settings: &Settings,
) -> Result<Flattened, String> {
    let mut fixed = Vec::new();
    let mut lookups = 0;
    let mut all = own.to_vec();
    let mut upstream = BTreeMap::new();
    for (i, p) in parts.iter().enumerate() {
        match p {
            Part::Fixed(t, c) => {
                lookups += c;
                if !t.is_empty() {
                    fixed.push(t.clone());
                }
            }
            Part::Include(n, c) => match flat.get(&i) {
                Some(nets) => {
                    all.extend(nets.iter().copied());
                    upstream.insert(n.clone(), nets.iter().map(Net::to_string).collect());
                }
                None => {
                    lookups += c;
                    fixed.push(format!("include:{n}"));
                }
            },
        }
    }
    let ranges: Vec<String> = merge(all).iter().map(Net::to_string).collect();
    let chain_name = |k: usize| settings.chain.replace("{n}", &k.to_string());
    let include_of = |k: usize| format!("include:{}.{origin}", chain_name(k));
    let join = |head: &[String]| {
        let mut s = String::from("v=spf1");
        for t in head {
            s.push(' ');
            s.push_str(t);
        }
        s
    };
    let len = |terms: &[String]| join(terms).len();
    // The apex: ranges first (no lookup), then the kept terms, the chain
    // include when needed, and `all`/`redirect`.
    let mut apex_tail = fixed.clone();
    let mut rest: &[String] = &ranges;
    let take = |rest: &[String], tail_terms: &[String]| -> usize {
        let mut n = 0;
        let mut size = len(tail_terms);
        for r in rest {
            if size + 1 + r.len() > MAX_RECORD {
                break;
            }
            size += 1 + r.len();
            n += 1;
        }
        n
    };
    let with_tail = |mut v: Vec<String>, extra: Option<String>| {
        if let Some(e) = extra {
            v.push(e);
        }
        if !tail.is_empty() {
            v.push(tail.to_string());
        }
        v
    };
    let whole = with_tail(apex_tail.clone(), None);
    if len(&whole) > MAX_RECORD {
        return Err(format!(
            "the SPF record's own terms take {} octets; a flattened record must stay within {MAX_RECORD}",
            len(&whole)
        ));
    }
    let apex = if take(rest, &whole) == rest.len() {
        let mut terms = rest.to_vec();
        terms.extend(whole);
        rest = &[];
        join(&terms)
    } else {
        let t = with_tail(std::mem::take(&mut apex_tail), Some(include_of(1)));
        let n = take(rest, &t);
        let mut terms = rest[..n].to_vec();
        terms.extend(t);
        rest = &rest[n..];
        lookups += 1;
        join(&terms)
    };
    let mut chain = Vec::new();
    let mut k = 1;
    while !rest.is_empty() {
        let end = vec!["-all".to_string()];
        let n = take(rest, &end);
        let (n, next) = if n == rest.len() {
            (n, None)
        } else {
            let t = vec![include_of(k + 1), "-all".to_string()];
            (take(rest, &t), Some(include_of(k + 1)))
        };
        if n == 0 {
            return Err("a network does not fit in a chained record".into());
        }
        let mut terms = rest[..n].to_vec();
        if let Some(x) = &next {
            terms.push(x.clone());
            lookups += 1;
        }
        terms.push("-all".into());
        chain.push((chain_name(k), join(&terms)));
        rest = &rest[n..];
        k += 1;
    }
    Ok(Flattened {
        apex,
        chain,
        upstream,
        kept: Vec::new(),
        lookups_before: 0,
        lookups_after: lookups,
    })
}

// ---------------------------------------------------------------------------
// Upstream state and drift
// ---------------------------------------------------------------------------

/// What each flattened include resolved to when its records were last
/// applied, per domain: `<config stem>.spf-upstream.json` next to the
/// config, written by apply, read by plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamState {
    pub format: u32,
    pub domains: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The state file of the config at `config`.
pub fn state_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("mailauth");
    config.with_file_name(format!("{stem}.spf-upstream.json"))
}

impl UpstreamState {
    /// Reads the state; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<UpstreamState, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not an SPF upstream state file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UpstreamState {
                format: 1,
                domains: BTreeMap::new(),
            }),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the state atomically (sorted keys: the same state gives the
    /// same bytes).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut s = serde_json::to_string_pretty(self).expect("state serialises");
        s.push('\n');
        crate::fsutil::write_atomic(path, s.as_bytes(), 0o644)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Per include, what changed between the recorded and the fresh networks:
/// `_spf.google.com: +2 ranges, -1 range`. An include flattened for the
/// first time or no longer flattened says so.
pub fn drift(
    recorded: &BTreeMap<String, Vec<String>>,
    fresh: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, now) in fresh {
        let Some(before) = recorded.get(name) else {
            continue;
        };
        let b: BTreeSet<&String> = before.iter().collect();
        let n: BTreeSet<&String> = now.iter().collect();
        let added = n.difference(&b).count();
        let removed = b.difference(&n).count();
        if added + removed > 0 {
            out.push(format!(
                "{name}: +{}, -{}",
                plural(added, "range"),
                plural(removed, "range")
            ));
        }
    }
    for name in recorded.keys().filter(|n| !fresh.contains_key(*n)) {
        out.push(format!("{name}: no longer flattened"));
    }
    out
}

/// The includes whose fresh networks leave uncovered more than
/// `max_share` percent of the recorded ones, with the share.
pub fn shrunk(
    recorded: &BTreeMap<String, Vec<String>>,
    fresh: &BTreeMap<String, Vec<String>>,
    max_share: u8,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, now) in fresh {
        let Some(before) = recorded.get(name) else {
            continue;
        };
        let before = nets_of(before.iter().map(String::as_str));
        if before.is_empty() {
            continue;
        }
        let now = nets_of(now.iter().map(String::as_str));
        let lost = uncovered(&before, &now).len();
        if lost * 100 > usize::from(max_share) * before.len() {
            out.push(format!(
                "{name} shrank: {lost} of its {} recorded ranges are gone (more than {max_share}%)",
                before.len()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spf::MemoryDns;

    fn n(s: &str) -> Net {
        s.parse().unwrap()
    }

    #[test]
    fn merge_collapses_adjacent_and_drops_covered() {
        let got = merge([
            n("ip4:192.0.2.0/25"),
            n("ip4:192.0.2.128/25"),
            n("ip4:192.0.2.7"),
            n("ip4:198.51.100.0/24"),
            n("ip4:198.51.100.0/24"),
            n("ip6:2001:db8::/33"),
            n("ip6:2001:db8:8000::/33"),
            n("ip4:10.0.0.1/8"),
        ]);
        let s: Vec<String> = got.iter().map(Net::to_string).collect();
        assert_eq!(
            s,
            [
                "ip4:10.0.0.0/8",
                "ip4:192.0.2.0/24",
                "ip4:198.51.100.0/24",
                "ip6:2001:db8::/32"
            ]
        );
        // Collapsing cascades: four /26 make one /24.
        let four = merge((0..4).map(|i| Net::v4(Ipv4Addr::new(203, 0, 113, i * 64), 26)));
        assert_eq!(four, vec![n("ip4:203.0.113.0/24")]);
    }

    fn esp() -> MemoryDns {
        let mut d = MemoryDns::new();
        d.add_txt(
            "_spf.esp.test",
            "v=spf1 ip4:192.0.2.0/25 include:_n.esp.test a:out.esp.test ~all",
        )
        .add_txt(
            "_n.esp.test",
            "v=spf1 ip4:192.0.2.128/25 ip6:2001:db8::/48 -all",
        )
        .insert(
            "out.esp.test",
            crate::spf::MemRecord::A(Ipv4Addr::new(198, 51, 100, 9)),
        )
        .add_txt("_x.esp.test", "v=spf1 exists:%{i}.x.esp.test -all")
        .add_txt("_r.esp.test", "v=spf1 redirect=_spf.esp.test")
        .timeout("_slow.esp.test");
        d
    }

    #[test]
    fn includes_resolve_to_checked_networks_or_say_why_not() {
        let d = esp();
        let got: Vec<String> = resolve_include(&d, "_spf.esp.test")
            .unwrap()
            .iter()
            .map(Net::to_string)
            .collect();
        assert_eq!(
            got,
            ["ip4:192.0.2.0/24", "ip4:198.51.100.9", "ip6:2001:db8::/48"]
        );
        assert_eq!(
            resolve_include(&d, "_r.esp.test").unwrap().len(),
            3,
            "redirect"
        );
        assert!(matches!(
            resolve_include(&d, "_x.esp.test"),
            Err(Problem::Keep(_))
        ));
        assert!(matches!(
            resolve_include(&d, "_slow.esp.test"),
            Err(Problem::Fail(m)) if m.contains("temporary")
        ));
        assert!(matches!(
            resolve_include(&d, "_gone.esp.test"),
            Err(Problem::Fail(m)) if m.contains("NXDOMAIN")
        ));
    }

    fn settings(mode: Mode, budget: usize, keep: &[&str]) -> Settings {
        Settings {
            mode,
            budget,
            keep: keep.iter().map(|k| k.to_string()).collect(),
            chain: DEFAULT_CHAIN.into(),
        }
    }

    #[test]
    fn auto_flattens_the_costliest_first_and_keeps_what_it_must() {
        let mut d = esp();
        // 40 separate /24s: more than one record holds.
        let big: String = (0..40)
            .map(|i| format!(" ip4:10.9.{}.0/24", i * 2))
            .collect();
        d.add_txt("_big.esp.test", &format!("v=spf1{big} -all"));
        let record: Spf = "v=spf1 ip4:192.0.2.1 include:_spf.esp.test include:_big.esp.test include:_x.esp.test include:_r.esp.test ~all"
            .parse()
            .unwrap();
        // Before: 3 + 1 + 2 + 4 = 10 lookups.
        assert_eq!(
            flatten(&d, "example.com", &record, &settings(Mode::Auto, 10, &[])).unwrap(),
            None
        );
        let f = flatten(&d, "example.com", &record, &settings(Mode::Auto, 5, &[]))
            .unwrap()
            .unwrap();
        assert_eq!(f.lookups_before, 10);
        // _r (4) leaves 6; with _spf (3) it is 3: _big and _x stay includes.
        assert_eq!(
            f.upstream.keys().collect::<Vec<_>>(),
            ["_r.esp.test", "_spf.esp.test"]
        );
        assert_eq!(f.lookups_after, 3);
        assert!(
            f.apex
                .ends_with("include:_big.esp.test include:_x.esp.test ~all"),
            "{}",
            f.apex
        );
        let all = flatten(
            &d,
            "example.com",
            &record,
            &settings(Mode::Always, 10, &["_r.esp.test"]),
        )
        .unwrap()
        .unwrap();
        assert!(
            all.kept
                .iter()
                .any(|(n, why)| n == "_x.esp.test" && why.contains("exists"))
        );
        assert!(
            all.kept
                .iter()
                .any(|(n, why)| n == "_r.esp.test" && why.contains("spf.keep"))
        );
        assert!(!all.chain.is_empty());
        for v in std::iter::once(&all.apex).chain(all.chain.iter().map(|(_, v)| v)) {
            assert!(v.len() <= MAX_RECORD, "{v}");
        }
        assert_eq!(all.chain[0].0, "_spf1");
        assert!(all.apex.contains("include:_spf1.example.com"));
        // Deterministic: the same upstream gives the same bytes.
        let again = flatten(
            &d,
            "example.com",
            &record,
            &settings(Mode::Always, 10, &["_r.esp.test"]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(all, again);
        // A budget the kept includes alone exceed.
        let e = flatten(
            &d,
            "example.com",
            &record,
            &settings(Mode::Always, 2, &["_r.esp.test"]),
        )
        .unwrap_err();
        assert!(
            e.contains("budget is 2") && e.contains("kept include:_x.esp.test"),
            "{e}"
        );
        // A failing include fails the whole flattening.
        let bad: Spf = "v=spf1 include:_slow.esp.test include:_spf.esp.test -all"
            .parse()
            .unwrap();
        let e = flatten(&d, "example.com", &bad, &settings(Mode::Always, 10, &[])).unwrap_err();
        assert!(
            e.starts_with("include:_slow.esp.test cannot be flattened"),
            "{e}"
        );
    }

    #[test]
    fn drift_and_shrink() {
        let rec: BTreeMap<String, Vec<String>> = [(
            "_spf.esp.test".to_string(),
            vec!["ip4:192.0.2.0/24".to_string(), "ip4:198.51.100.9".into()],
        )]
        .into();
        let fresh: BTreeMap<String, Vec<String>> = [(
            "_spf.esp.test".to_string(),
            vec![
                "ip4:192.0.2.0/24".to_string(),
                "ip4:203.0.113.0/24".into(),
                "ip6:2001:db8::/48".into(),
            ],
        )]
        .into();
        assert_eq!(drift(&rec, &fresh), ["_spf.esp.test: +2 ranges, -1 range"]);
        assert!(shrunk(&rec, &fresh, 50).is_empty());
        let have = merge([n("ip4:192.0.2.0/24"), n("ip6:2001:db8::/32")]);
        assert_eq!(
            uncovered(
                &[
                    n("ip4:192.0.2.9"),
                    n("ip4:192.0.3.0/24"),
                    n("ip6:2001:db8:5::/48"),
                    n("ip6:2001:db9::/48"),
                    n("ip4:10.0.0.0/8"),
                ],
                &have
            ),
            [
                n("ip4:192.0.3.0/24"),
                n("ip6:2001:db9::/48"),
                n("ip4:10.0.0.0/8")
            ]
        );
        assert_eq!(shrunk(&rec, &fresh, 40).len(), 1);
    }
}
