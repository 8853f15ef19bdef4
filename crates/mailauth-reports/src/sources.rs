//! Who sends as a domain: the catalogue of known sending services (kept
//! as data in `data/senders.yaml`, embedded and parsed once), the
//! identification of a source IP against it (with the autonomous system
//! an optional ASN database names, see `reports::mmdb`), the
//! classification of
//! failing sources (forwarded, misconfigured own service, suspicious) and
//! the normalisation of reporter names to a stable key.
//!
//! Pure: no DNS, no SQL. Owns the matching rules and their order. Leaves
//! SPF evaluation of the configured record to
//! `reports::dashboard::attribution` (whose verdict comes in as an
//! [`Attribution`]), PTR lookups to the caller, and the queries to
//! `reports::dashq`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::reports::dashboard::attribution::Attribution;
use crate::reports::dashq::SourceRow;
use crate::reports::mmdb::Asn;

/// The catalogue shipped with mailauth.
const BUILTIN: &str = include_str!("../../../data/senders.yaml");

/// What kind of sender a service is.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Hosted mailboxes of an organisation.
    Corporate,
    /// Bulk or transactional email service provider.
    Esp,
    /// CRM, marketing automation, help desk.
    Crm,
    /// Forwarding service or mailing-list host.
    Forwarder,
    /// Inbound/outbound security gateway.
    Gateway,
    /// A SaaS product sending its own notifications as the customer.
    Application,
    /// Authorised by a mechanism of the domain's own configured SPF record
    /// that names no catalogue service (`ip4:`, `a`, `mx`, an include of
    /// the organisation's own).
    Own,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Corporate => "corporate mail",
            Category::Esp => "ESP",
            Category::Crm => "CRM",
            Category::Forwarder => "forwarder/mailing list",
            Category::Gateway => "security gateway",
            Category::Application => "application",
            Category::Own => "own (config)",
        }
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub category: Category,
    /// `include:` targets the service documents.
    #[serde(default)]
    pub spf: Vec<String>,
    /// DKIM `d=` domains.
    #[serde(default)]
    pub dkim: Vec<String>,
    /// Reverse-DNS suffixes.
    #[serde(default)]
    pub ptr: Vec<String>,
    /// Published address ranges.
    #[serde(default)]
    pub networks: Vec<IpNet>,
    /// Autonomous systems that carry only the service's mail (matched
    /// through an ASN database the user points to).
    #[serde(default)]
    pub asn: Vec<u32>,
    /// The documentation the entry is based on.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    services: Vec<Service>,
}

/// Known sending services, indexed by domain so that a lookup costs one
/// hash probe per label of the name, whatever the catalogue's size.
#[derive(Debug, Clone)]
pub struct Catalogue {
    services: Vec<Service>,
    dkim: HashMap<String, usize>,
    spf: HashMap<String, usize>,
    ptr: HashMap<String, usize>,
    /// Parents of `_spf.`/`spf.`-style include targets (`google.com` for
    /// `_spf.google.com`): a reported SPF domain under one also matches.
    spf_parent: HashMap<String, usize>,
}

/// Errors of reading a catalogue.
#[derive(Debug, thiserror::Error)]
#[error("sender catalogue: {0}")]
pub struct CatalogueError(String);

fn norm(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `name` equals `suffix` or ends with `.suffix` (label boundary).
fn under(name: &str, suffix: &str) -> bool {
    name == suffix
        || (name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
}

impl Catalogue {
    /// The catalogue shipped in `data/senders.yaml` (parsed once; a unit
    /// test keeps it valid).
    pub fn builtin() -> &'static Catalogue {
        static CAT: OnceLock<Catalogue> = OnceLock::new();
        CAT.get_or_init(|| Catalogue::parse(BUILTIN).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Parses and checks a catalogue: unique ids, a name, a source URL and
    /// lower-case domain names without trailing dots.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: CatalogueFile =
            serde_saphyr::from_str(text).map_err(|e| CatalogueError(e.to_string()))?;
        let mut ids = HashSet::new();
        for s in &file.services {
            if s.id.is_empty() || !ids.insert(s.id.as_str()) {
                return Err(CatalogueError(format!(
                    "service id {:?} empty or repeated",
                    s.id
                )));
            }
            if s.name.trim().is_empty() || !s.source.starts_with("https://") {
                return Err(CatalogueError(format!(
                    "service {}: needs a name and an https source",
                    s.id
                )));
            }
            for d in s.spf.iter().chain(&s.dkim).chain(&s.ptr) {
                if *d != norm(d) || d.is_empty() || !d.contains('.') {
                    return Err(CatalogueError(format!(
                        "service {}: {d:?} is not a lower-case domain name",
                        s.id
                    )));
                }
            }
        }
        let index = |list: fn(&Service) -> &[String]| {
            let mut m = HashMap::new();
            for (i, s) in file.services.iter().enumerate() {
                for d in list(s) {
                    m.entry(d.clone()).or_insert(i);
                }
            }
            m
        };
        let dkim = index(|s| &s.dkim);
        let spf = index(|s| &s.spf);
        let ptr = index(|s| &s.ptr);
        let mut spf_parent = HashMap::new();
        for (i, s) in file.services.iter().enumerate() {
            for inc in &s.spf {
                if let Some(parent) = inc
                    .strip_prefix("_spf.")
                    .or_else(|| inc.strip_prefix("spf."))
                    .filter(|p| p.contains('.'))
                {
                    spf_parent.entry(parent.to_owned()).or_insert(i);
                }
            }
        }
        Ok(Catalogue {
            services: file.services,
            dkim,
            spf,
            ptr,
            spf_parent,
        })
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service whose index holds the longest suffix of `name` (on
    /// label boundaries): the name itself first, then each parent.
    fn by_suffix(&self, index: &HashMap<String, usize>, name: &str) -> Option<&Service> {
        let name = norm(name);
        let mut rest = name.as_str();
        loop {
            if let Some(&i) = index.get(rest) {
                return self.services.get(i);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// By DKIM `d=`.
    pub fn by_dkim(&self, d: &str) -> Option<&Service> {
        self.by_suffix(&self.dkim, d)
    }

    /// By an SPF `include:` target or a reported SPF (MAIL FROM/HELO)
    /// domain: under one of the service's include targets, or under an
    /// include target's parent when it is a `_spf.`-style label.
    pub fn by_spf(&self, domain: &str) -> Option<&Service> {
        self.by_suffix(&self.spf, domain)
            .or_else(|| self.by_suffix(&self.spf_parent, domain))
    }

    /// By reverse DNS name.
    pub fn by_ptr(&self, name: &str) -> Option<&Service> {
        self.by_suffix(&self.ptr, name)
    }

    /// By the number of its autonomous system.
    pub fn by_asn(&self, number: u32) -> Option<&Service> {
        self.services.iter().find(|s| s.asn.contains(&number))
    }

    /// By a published network (longest prefix wins).
    pub fn by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services
            .iter()
            .flat_map(|s| s.networks.iter().map(move |n| (s, n)))
            .filter(|(_, n)| n.contains(&ip))
            .max_by_key(|(_, n)| n.prefix_len())
            .map(|(s, _)| s)
    }
}

/// How a source was identified, in the order they are tried.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A mechanism of the domain's configured SPF record authorises it.
    Config,
    /// A passing DKIM signature's `d=` names a catalogue service.
    Dkim,
    /// The reported SPF domain (MAIL FROM or HELO) names one.
    Spf,
    /// Its reverse DNS name is under a service's suffix.
    Ptr,
    /// The ASN database puts it in an autonomous system of a service.
    Asn,
    /// In a network a service publishes.
    Network,
    /// Not identified.
    Unknown,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Config => "config",
            Method::Dkim => "dkim",
            Method::Spf => "spf",
            Method::Ptr => "ptr",
            Method::Asn => "asn",
            Method::Network => "network",
            Method::Unknown => "unknown",
        }
    }
}

/// Who a source is.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Catalogue id, `own` for a configured mechanism, `None` if unknown.
    pub id: Option<String>,
    /// Service name, or the configured mechanism.
    pub service: Option<String>,
    pub category: Option<Category>,
    pub method: Method,
    /// What matched: `include:_spf.google.com`, `d=sendgrid.net`,
    /// `ptr o1.sendgrid.net`, `network 167.89.0.0/17`.
    pub evidence: Option<String>,
    /// For unknown sources: the autonomous system (`AS64500 Example
    /// Net`) when an ASN database knows it, else the PTR name's
    /// organisation domain, else `no reverse DNS`, so unknown sources can
    /// be grouped.
    pub group: Option<String>,
    /// The autonomous system of the source, when an ASN database was
    /// given and knows it (`AS64500 Example Net`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
}

impl Identity {
    fn of(s: &Service, method: Method, evidence: String) -> Identity {
        Identity {
            id: Some(s.id.clone()),
            service: Some(s.name.clone()),
            category: Some(s.category),
            method,
            evidence: Some(evidence),
            group: None,
            asn: None,
        }
    }
}

/// Relaxed alignment approximated without the PSL: equal, or one is a
/// subdomain of the other.
fn aligned(domain: &str, other: &str) -> bool {
    let (d, o) = (norm(domain), norm(other));
    under(&o, &d) || under(&d, &o)
}

/// Identifies one source of `domain`: by the config's attribution, then
/// the DKIM `d=` and SPF domains in its records, then its reverse DNS
/// `ptr`, then its autonomous system `asn` (from an ASN database), then
/// the catalogue's published networks.
pub fn identify(
    cat: &Catalogue,
    domain: &str,
    src: &SourceRow,
    attr: &Attribution,
    ptr: Option<&str>,
    asn: Option<&Asn>,
) -> Identity {
    let mut id = identify_by(cat, domain, src, attr, ptr, asn);
    id.asn = asn.map(Asn::label);
    id
}

fn identify_by(
    cat: &Catalogue,
    domain: &str,
    src: &SourceRow,
    attr: &Attribution,
    ptr: Option<&str>,
    asn: Option<&Asn>,
) -> Identity {
    if let Some(mech) = &attr.spf_mechanism {
        let target = mech
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("include:"))
            .map(|_| &mech[8..]);
        if let Some(s) = target.and_then(|t| cat.by_spf(t)) {
            return Identity::of(s, Method::Config, mech.clone());
        }
        return Identity {
            id: Some("own".to_owned()),
            service: Some(mech.clone()),
            category: Some(Category::Own),
            method: Method::Config,
            evidence: Some(mech.clone()),
            group: None,
            asn: None,
        };
    }
    for signer in &src.dkim_signers {
        let d = signer.split('/').next().unwrap_or(signer);
        if !aligned(domain, d)
            && let Some(s) = cat.by_dkim(d)
        {
            return Identity::of(s, Method::Dkim, format!("d={}", norm(d)));
        }
    }
    for spf in &src.spf_reported {
        let d = spf.rsplit_once('=').map_or(spf.as_str(), |(d, _)| d);
        if !aligned(domain, d)
            && let Some(s) = cat.by_spf(d)
        {
            return Identity::of(s, Method::Spf, format!("spf {}", norm(d)));
        }
    }
    if let Some(p) = ptr
        && let Some(s) = cat.by_ptr(p)
    {
        return Identity::of(s, Method::Ptr, format!("ptr {}", norm(p)));
    }
    if let Some(a) = asn
        && let Some(s) = cat.by_asn(a.number)
    {
        return Identity::of(s, Method::Asn, format!("{} ({})", a.label(), a.network));
    }
    // An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address.
    if let Ok(ip) = src.source_ip.parse::<IpAddr>().map(|ip| ip.to_canonical())
        && let Some(s) = cat.by_ip(ip)
    {
        let net = s
            .networks
            .iter()
            .filter(|n| n.contains(&ip))
            .max_by_key(|n| n.prefix_len())
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Identity::of(s, Method::Network, format!("network {net}"));
    }
    Identity {
        id: None,
        service: None,
        category: None,
        method: Method::Unknown,
        evidence: None,
        group: Some(match (asn, ptr) {
            (Some(a), _) => a.label(),
            (None, Some(p)) => org_domain(p),
            (None, None) => "no reverse DNS".to_owned(),
        }),
        asn: None,
    }
}

/// What a source's failing mail is.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Every message passed DMARC.
    Aligned,
    /// Forwarded or sent through a mailing list: does not block an
    /// enforcing policy.
    Forwarded,
    /// A service sending for the domain that is not (fully) set up.
    Misconfigured,
    /// None of the above: possibly spoofing.
    Suspicious,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Aligned => "aligned",
            Class::Forwarded => "forwarded",
            Class::Misconfigured => "misconfigured",
            Class::Suspicious => "suspicious",
        }
    }
}

/// A source's class with the evidence for it.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: Class,
    pub evidence: Vec<String>,
}

/// RFC 7489 Appendix C `PolicyOverrideType` values by which a receiver
/// says it took the mail as forwarded or list mail.
pub const FORWARDING_REASONS: &[&str] = &[
    "forwarded",
    "trusted_forwarder",
    "mailing_list",
    "local_policy",
];

/// Classifies a source of `domain` with failing messages: forwarded (a
/// receiver's override comment reports a passing ARC chain, its override
/// reason says so, a known forwarder or list host, or
/// SPF never aligned while DKIM of the author domain passed), a
/// misconfigured own service (authorised by the config, or a catalogue
/// service sending as the domain), or suspicious.
pub fn classify(src: &SourceRow, id: &Identity) -> Classification {
    let fail = src.messages.saturating_sub(src.dmarc_pass);
    let mut evidence = Vec::new();
    if fail <= 0 {
        return Classification {
            class: Class::Aligned,
            evidence,
        };
    }
    let class = if src.arc_pass > 0 || src.forwarded_reason > 0 {
        if src.arc_pass > 0 {
            evidence.push(format!(
                "receivers validated an ARC chain (arc=pass, RFC 8617) for {} of {fail} failing messages",
                src.arc_pass
            ));
        }
        if src.forwarded_reason > 0 {
            evidence.push(format!(
                "receivers gave an override reason ({}) for {} of {fail} failing messages",
                FORWARDING_REASONS.join("/"),
                src.forwarded_reason
            ));
        }
        Class::Forwarded
    } else if id.category == Some(Category::Forwarder) {
        evidence.push(format!(
            "known forwarder or mailing-list host: {}",
            id.service.as_deref().unwrap_or("?")
        ));
        Class::Forwarded
    } else if id.method == Method::Config {
        evidence.push(format!(
            "authorised by the config ({}) but {fail} messages failed alignment",
            id.evidence.as_deref().unwrap_or("?")
        ));
        Class::Misconfigured
    } else if matches!(
        id.category,
        Some(Category::Esp | Category::Crm | Category::Application | Category::Gateway)
    ) {
        evidence.push(format!(
            "{} ({}) sends as the domain but is not in its SPF record and {fail} messages had no aligned DKIM signature",
            id.service.as_deref().unwrap_or("?"),
            id.evidence.as_deref().unwrap_or("?")
        ));
        Class::Misconfigured
    } else if src.spf_aligned == 0 && src.dkim_aligned > 0 {
        evidence.push(format!(
            "SPF never aligned while DKIM of the domain passed for {} of {} messages: forwarding breaks SPF, not DKIM",
            src.dkim_aligned, src.messages
        ));
        Class::Forwarded
    } else {
        evidence.push(match &id.service {
            Some(s) => format!("{s} ({}): no aligned SPF or DKIM", id.method.as_str()),
            None => "unknown sender with no aligned SPF or DKIM".to_owned(),
        });
        Class::Suspicious
    };
    Classification { class, evidence }
}

/// ARC sets looked at in one message: RFC 8617 §4.2.1 allows at most 50
/// instances.
const MAX_ARC_INSTANCES: u32 = 50;

/// `tag=value` pairs of a header field body (RFC 6376 §3.2 tag-list, also
/// the shape of RFC 8617 §4.1.3 ARC-Seal), names lower-cased.
fn tags(body: &str) -> impl Iterator<Item = (String, &str)> {
    body.split(';').filter_map(|t| {
        let (k, v) = t.split_once('=')?;
        Some((k.trim().to_ascii_lowercase(), v.trim()))
    })
}

/// Forwarding evidence in the header block of a reported message (a
/// failure report's included message): an intact ARC chain.
///
/// RFC 8617 §4.1.3: each intermediary adds an ARC-Seal with `i=` (its
/// instance), `d=` (its domain) and `cv=` (the chain's state when it
/// sealed: `none` for the first, `pass` after); §5.2: a chain is valid
/// when instances 1..N are all present, none says `cv=fail` and the
/// highest is `cv=pass` (or `cv=none` at i=1). The ARC-Authentication-
/// Results of that instance (§4.1.1) say what the intermediary found on
/// arrival (`dmarc=pass` there means the message was genuine before it
/// was forwarded). Signatures are not verified here: the evidence is what
/// the headers claim, shown as such.
pub fn arc_evidence(headers: &str) -> Option<String> {
    // Unfold (RFC 5322 §2.2.3): a line starting with white space continues
    // the field above.
    let mut fields: Vec<String> = Vec::new();
    for line in headers.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else if line.is_empty() {
            break;
        } else {
            fields.push(line.trim_end().to_owned());
        }
    }
    let mut seals: HashMap<u32, (String, String)> = HashMap::new();
    let mut results: HashMap<u32, String> = HashMap::new();
    for f in &fields {
        let Some((name, body)) = f.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let instance = || {
            tags(body)
                .find(|(k, _)| k == "i")
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .filter(|i| (1..=MAX_ARC_INSTANCES).contains(i))
        };
        match name.as_str() {
            "arc-seal" => {
                let i = instance()?;
                let mut cv = String::new();
                let mut d = String::new();
                for (k, v) in tags(body) {
                    match k.as_str() {
                        "cv" => cv = v.to_ascii_lowercase(),
                        "d" => d = v.to_ascii_lowercase(),
                        _ => {}
                    }
                }
                // Two seals of one instance: §5.2 step 2 fails the chain.
                if seals.insert(i, (cv, d)).is_some() {
                    return None;
                }
            }
            "arc-authentication-results" => {
                if let Some(i) = instance() {
                    results.insert(i, body.to_owned());
                }
            }
            _ => {}
        }
    }
    let n = *seals.keys().max()?;
    if (1..=n).any(|i| !seals.contains_key(&i)) || seals.values().any(|(cv, _)| cv == "fail") {
        return None;
    }
    let (cv, d) = &seals[&n];
    let intact = (n == 1 && cv == "none") || (n > 1 && cv == "pass");
    if !intact {
        return None;
    }
    let d: String = d
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let mut found: Vec<String> = Vec::new();
    if let Some(aar) = results.get(&n) {
        for method in ["dmarc", "dkim", "spf", "arc"] {
            let pass = aar.split(';').any(|r| {
                let r = r.trim().to_ascii_lowercase();
                r.split_whitespace()
                    .next()
                    .is_some_and(|m| m == format!("{method}=pass"))
            });
            if pass {
                found.push(format!("{method}=pass"));
            }
        }
    }
    let mut out = format!("ARC chain of {n} set(s), sealed last by d={d} (i={n} cv={cv})");
    if !found.is_empty() {
        out.push_str(&format!("; it found {} on arrival", found.join(", ")));
    }
    Some(out)
}

/// Second-level labels under which registrations are made (`co.uk`):
/// enough for grouping, not a public suffix list.
const TWO_LEVEL: &[&str] = &[
    "co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gv", "mil",
];

/// The organisation domain of a host name, approximated: the last two
/// labels, or three under a two-level public suffix (`co.uk`, `com.au`).
pub fn org_domain(host: &str) -> String {
    let h = norm(host);
    let labels: Vec<&str> = h.split('.').filter(|l| !l.is_empty()).collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && TWO_LEVEL.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// A reporter's stable key: case-folded with runs of white space made
/// one; an organisation name that is a host name (a gateway's
/// `mx1.gw.Example.net`) becomes its organisation domain (`example.net`).
pub fn reporter_key(org: &str) -> String {
    let folded = org
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let host_like = folded.contains('.')
        && !folded.starts_with('.')
        && folded
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && folded
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if host_like {
        org_domain(&folded)
    } else {
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::dashboard::attribution::Verdict;

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

    fn attr(mech: Option<&str>) -> Attribution {
        Attribution {
            verdict: if mech.is_some() {
                Verdict::Authorised
            } else {
                Verdict::Unknown
            },
            spf_mechanism: mech.map(str::to_owned),
            dkim_aligned_signers: Vec::new(),
            basis: "config",
        }
    }

    #[test]
    fn builtin_catalogue_is_valid_and_large() {
        let cat = Catalogue::builtin();
        assert!(cat.len() >= 60, "{}", cat.len());
        for cat_name in [
            Category::Corporate,
            Category::Esp,
            Category::Crm,
            Category::Forwarder,
            Category::Gateway,
        ] {
            assert!(cat.services().iter().any(|s| s.category == cat_name));
        }
    }

    #[test]
    fn bad_catalogue_named() {
        let e = Catalogue::parse("services:\n  - id: x\n    name: X\n    category: esp\n    dkim: [Foo.com]\n    source: https://x.example\n")
            .expect_err("upper case");
        assert!(e.to_string().contains("Foo.com"), "{e}");
        let e = Catalogue::parse("services:\n  - id: x\n    name: X\n    category: nope\n    source: https://x.example\n")
            .expect_err("category");
        assert!(e.to_string().contains("sender catalogue"), "{e}");
    }

    #[test]
    fn identification_order() {
        let cat = Catalogue::builtin();
        let c = identify(
            cat,
            "example.com",
            &src("192.0.2.1", &["sendgrid.net/s1"], &[]),
            &attr(Some("include:_spf.google.com")),
            None,
            None,
        );
        assert_eq!(
            (c.id.as_deref(), c.method),
            (Some("google-workspace"), Method::Config)
        );
        let own = identify(
            cat,
            "example.com",
            &src("192.0.2.1", &[], &[]),
            &attr(Some("ip4:192.0.2.0/24")),
            None,
            None,
        );
        assert_eq!(
            (own.category, own.method),
            (Some(Category::Own), Method::Config)
        );
        // An aligned signer says nothing about the service.
        let d = identify(
            cat,
            "example.com",
            &src(
                "192.0.2.1",
                &["example.com/esp1", "o1.SendGrid.net/s1"],
                &[],
            ),
            &attr(None),
            None,
            None,
        );
        assert_eq!(
            (d.id.as_deref(), d.method, d.evidence.as_deref()),
            (Some("sendgrid"), Method::Dkim, Some("d=o1.sendgrid.net"))
        );
        let s = identify(
            cat,
            "example.com",
            &src("192.0.2.1", &[], &["bounces.amazonses.com=pass"]),
            &attr(None),
            Some("a1.smtp-out.mcsv.net"),
            None,
        );
        assert_eq!(
            (s.id.as_deref(), s.method),
            (Some("amazon-ses"), Method::Spf)
        );
        let p = identify(
            cat,
            "example.com",
            &src("192.0.2.1", &[], &["example.com=fail"]),
            &attr(None),
            Some("mail-x.outbound.protection.outlook.com."),
            None,
        );
        assert_eq!(
            (p.id.as_deref(), p.method),
            (Some("microsoft-365"), Method::Ptr)
        );
        let n = identify(
            cat,
            "example.com",
            &src("2a00:1450:4864::1", &[], &[]),
            &attr(None),
            None,
            None,
        );
        assert_eq!(
            (n.id.as_deref(), n.method),
            (Some("google-workspace"), Method::Network)
        );
        let mapped = identify(
            cat,
            "example.com",
            &src("::ffff:167.89.1.2", &[], &[]),
            &attr(None),
            None,
            None,
        );
        assert_eq!(mapped.id.as_deref(), Some("sendgrid"));
        // Label boundaries: notsendgrid.net is not SendGrid.
        let u = identify(
            cat,
            "example.com",
            &src("203.0.113.5", &["notsendgrid.net"], &[]),
            &attr(None),
            Some("host-5.dsl.Provider.co.uk"),
            None,
        );
        assert_eq!(
            (u.id, u.method, u.group.as_deref()),
            (None, Method::Unknown, Some("provider.co.uk"))
        );
    }

    #[test]
    fn classification() {
        let cat = Catalogue::builtin();
        let ident = |s: &SourceRow, a: &Attribution| identify(cat, "example.com", s, a, None, None);
        let mut ok = src("192.0.2.1", &[], &[]);
        ok.dmarc_pass = 10;
        assert_eq!(
            classify(&ok, &ident(&ok, &attr(None))).class,
            Class::Aligned
        );
        let mut fwd = src("203.0.113.1", &["example.com/s"], &[]);
        fwd.dmarc_pass = 7;
        fwd.dkim_aligned = 7;
        let c = classify(&fwd, &ident(&fwd, &attr(None)));
        assert_eq!(c.class, Class::Forwarded, "{c:?}");
        assert!(c.evidence[0].contains("7 of 10"), "{c:?}");
        let mut reason = src("203.0.113.2", &[], &[]);
        reason.forwarded_reason = 4;
        assert_eq!(
            classify(&reason, &ident(&reason, &attr(None))).class,
            Class::Forwarded
        );
        let list = src("203.0.113.3", &["example.googlegroups.com"], &[]);
        assert_eq!(
            classify(&list, &ident(&list, &attr(None))).class,
            Class::Forwarded
        );
        let esp = src("203.0.113.4", &["sendgrid.net/s1"], &[]);
        let c = classify(&esp, &ident(&esp, &attr(None)));
        assert_eq!(c.class, Class::Misconfigured);
        assert!(c.evidence[0].contains("Twilio SendGrid"), "{c:?}");
        let own = src("192.0.2.9", &[], &[]);
        let a = attr(Some("ip4:192.0.2.0/24"));
        assert_eq!(classify(&own, &ident(&own, &a)).class, Class::Misconfigured);
        let spoof = src("198.51.100.1", &["evil.example"], &[]);
        assert_eq!(
            classify(&spoof, &ident(&spoof, &attr(None))).class,
            Class::Suspicious
        );
    }

    /// A message forwarded through a mailing list (Google Groups style)
    /// and then by a second intermediary; broken and incomplete chains.
    #[test]
    fn arc_headers_as_forwarding_evidence() {
        let two = "ARC-Seal: i=2; a=rsa-sha256; t=1767139200; cv=pass;\r\n        d=forwarder.example; s=arc-2026; b=AAAA\r\n\
ARC-Message-Signature: i=2; a=rsa-sha256; c=relaxed/relaxed; d=forwarder.example; s=arc-2026; h=from:to:subject; bh=x=; b=BBBB\r\n\
ARC-Authentication-Results: i=2; mx.forwarder.example;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=abc;\r\n       spf=pass (forwarder.example: domain of a@lists.example.org) smtp.mailfrom=a@lists.example.org;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com;\r\n       arc=pass (i=1)\r\n\
ARC-Seal: i=1; a=rsa-sha256; t=1767139100; cv=none; d=google.com; s=arc-20240605; b=CCCC\r\n\
ARC-Authentication-Results: i=1; mx.google.com; dkim=pass header.i=@example.com; spf=pass smtp.mailfrom=a@example.com; dmarc=pass (p=REJECT) header.from=example.com\r\n\
From: A <a@example.com>\r\nSubject: hi\r\n\r\nbody: ARC-Seal: i=9; cv=pass\r\n";
        assert_eq!(
            arc_evidence(two).as_deref(),
            Some(
                "ARC chain of 2 set(s), sealed last by d=forwarder.example (i=2 cv=pass); it found dmarc=pass, dkim=pass, spf=pass, arc=pass on arrival"
            )
        );
        let first = "arc-seal: i=1; cv=none; d=Lists.Example.org; s=a; b=x\narc-authentication-results: i=1; lists.example.org; dkim=fail; spf=pass smtp.mailfrom=example.com\n";
        assert_eq!(
            arc_evidence(first).as_deref(),
            Some(
                "ARC chain of 1 set(s), sealed last by d=lists.example.org (i=1 cv=none); it found spf=pass on arrival"
            )
        );
        // cv=fail anywhere, a missing instance, a repeated instance, a
        // first seal claiming cv=pass, an instance over 50: no evidence.
        for bad in [
            "ARC-Seal: i=2; cv=fail; d=x.example\nARC-Seal: i=1; cv=none; d=y.example\n",
            "ARC-Seal: i=2; cv=pass; d=x.example\n",
            "ARC-Seal: i=1; cv=none; d=x.example\nARC-Seal: i=1; cv=none; d=y.example\n",
            "ARC-Seal: i=1; cv=pass; d=x.example\n",
            "ARC-Seal: i=51; cv=pass; d=x.example\n",
            "ARC-Seal: cv=none; d=x.example\n",
            "Authentication-Results: mx.example; arc=pass\n",
            "",
        ] {
            assert_eq!(arc_evidence(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arc_pass_comment_is_forwarding() {
        let cat = Catalogue::builtin();
        let mut s = src("203.0.113.20", &[], &["example.org=pass"]);
        s.arc_pass = 6;
        let c = classify(
            &s,
            &identify(cat, "example.com", &s, &attr(None), None, None),
        );
        assert_eq!(c.class, Class::Forwarded, "{c:?}");
        assert!(
            c.evidence[0].contains("ARC") && c.evidence[0].contains("6 of 10"),
            "{c:?}"
        );
    }

    #[test]
    fn reporter_keys() {
        assert_eq!(reporter_key("Outlook.com"), "outlook.com");
        assert_eq!(
            reporter_key("  Enterprise   Outlook "),
            "enterprise outlook"
        );
        assert_eq!(reporter_key("mx1.gw.Example.NET"), "example.net");
        assert_eq!(reporter_key("dmarc.mail.example.co.uk"), "example.co.uk");
        assert_eq!(reporter_key("google.com"), "google.com");
        assert_eq!(reporter_key("Test Inc."), "test inc.");
        assert_eq!(reporter_key("FastMail Pty Ltd"), "fastmail pty ltd");
        assert_eq!(reporter_key("192.0.2.1"), "192.0.2.1");
    }
}
