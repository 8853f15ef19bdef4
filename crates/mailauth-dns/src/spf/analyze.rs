//! Static analysis of a domain's SPF policy for the validation command:
//! walk the include/redirect tree once, and collect for every record its
//! text, size, DNS-querying terms, void lookups, errors and warnings, plus
//! totals against the RFC 7208 limits. Nothing here depends on a client
//! address; targets that hold macros are reported, not followed.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::dns::{DnsError, SpfDns};
use super::macros::is_valid_name;
use crate::record::spf::{DomainSpec, Mechanism, Qualifier, Spf};

/// Most records the walk visits, so a wide diamond of includes cannot make
/// it run away.
const MAX_NODES: usize = 64;

/// One record in the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpfNode {
    pub domain: String,
    /// How the parent reached this node: `include:x`, `redirect=x`, or empty
    /// for the root.
    pub via: String,
    /// The SPF record as published (joined strings).
    pub record: Option<String>,
    /// Size of the record in octets.
    pub size: usize,
    /// DNS-querying terms in this record alone (§4.6.4).
    pub lookups: usize,
    /// Targets of `a`, `mx`, `exists` here that resolve to nothing.
    pub void_lookups: usize,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub children: Vec<SpfNode>,
}

/// The whole tree and its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpfTree {
    pub root: SpfNode,
    /// DNS-querying terms over the whole tree; an evaluation that walks all
    /// of it needs this many (limit 10).
    pub total_lookups: usize,
    /// Void lookups over the whole tree (limit 2).
    pub total_void_lookups: usize,
    /// Problems of the tree as a whole (limits).
    pub errors: Vec<String>,
}

impl SpfTree {
    /// True when no node and no total has an error.
    pub fn is_ok(&self) -> bool {
        fn clean(n: &SpfNode) -> bool {
            n.errors.is_empty() && n.children.iter().all(clean)
        }
        self.errors.is_empty() && clean(&self.root)
    }
}

/// Walks the SPF tree of `domain`.
pub fn analyze(dns: &dyn SpfDns, domain: &str) -> SpfTree {
    let mut walker = Walker {
        dns,
        visited: 0,
        path: BTreeSet::new(),
    };
    let root = walker.node(domain, String::new());
    fn sum(n: &SpfNode, f: fn(&SpfNode) -> usize) -> usize {
        f(n) + n.children.iter().map(|c| sum(c, f)).sum::<usize>()
    }
    let total_lookups = sum(&root, |n| n.lookups);
    let total_void_lookups = sum(&root, |n| n.void_lookups);
    let mut errors = Vec::new();
    if total_lookups > 10 {
        errors.push(format!(
            "{total_lookups} DNS-querying terms in the tree; receivers stop at 10 and return permerror (RFC 7208 §4.6.4)"
        ));
    }
    if total_void_lookups > 2 {
        errors.push(format!(
            "{total_void_lookups} void lookups in the tree; receivers stop at 2 and return permerror (RFC 7208 §4.6.4)"
        ));
    }
    SpfTree {
        root,
        total_lookups,
        total_void_lookups,
        errors,
    }
}

struct Walker<'a> {
    dns: &'a dyn SpfDns,
    visited: usize,
    path: BTreeSet<String>,
}

fn empty_node(domain: &str, via: String) -> SpfNode {
    SpfNode {
        domain: domain.to_string(),
        via,
        record: None,
        size: 0,
        lookups: 0,
        void_lookups: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
        children: Vec::new(),
    }
}

impl Walker<'_> {
    fn node(&mut self, domain: &str, via: String) -> SpfNode {
        let domain = domain
            .strip_suffix('.')
            .unwrap_or(domain)
            .to_ascii_lowercase();
        let mut node = empty_node(&domain, via);
        if !is_valid_name(&domain) || !domain.contains('.') {
            node.errors
                .push("not a valid multi-label domain name (RFC 7208 §4.3)".into());
            return node;
        }
        if self.path.contains(&domain) {
            node.errors.push(
                "loop: this record includes or redirects back to itself; evaluation ends in permerror".into(),
            );
            return node;
        }
        self.visited += 1;
        if self.visited > MAX_NODES {
            node.errors.push(format!(
                "more than {MAX_NODES} records in the tree: not followed"
            ));
            return node;
        }
        let records = match self.dns.txt(&domain) {
            Ok(r) => r,
            Err(DnsError::NxDomain { .. }) => {
                node.errors.push("the domain does not exist".into());
                node.void_lookups += 1;
                return node;
            }
            Err(e) => {
                node.errors.push(e.to_string());
                return node;
            }
        };
        let spf: Vec<&Vec<u8>> = records.iter().filter(|r| Spf::is_spf_record(r)).collect();
        let raw = match spf.as_slice() {
            [] => {
                node.errors.push(
                    "no SPF record (an include or redirect of it is a permerror, §5.2 / §6.1)"
                        .into(),
                );
                return node;
            }
            [one] => *one,
            many => {
                node.errors.push(format!(
                    "{} SPF records; there must be exactly one (RFC 7208 §4.5)",
                    many.len()
                ));
                return node;
            }
        };
        node.size = raw.len();
        let text = String::from_utf8_lossy(raw).into_owned();
        node.record = Some(text.clone());
        // §3.4: "it might be wise to keep the record size below 450 octets";
        // 512 is the classic UDP payload limit of the whole answer.
        if raw.len() > 512 {
            node.warnings.push(format!(
                "{} octets: the answer will not fit in a 512-octet UDP response and needs TCP or EDNS (RFC 7208 §3.4)",
                raw.len()
            ));
        } else if raw.len() > 450 {
            node.warnings.push(format!(
                "{} octets: above the 450 octets RFC 7208 §3.4 recommends",
                raw.len()
            ));
        }
        let record: Spf = match text.parse() {
            Ok(r) => r,
            Err(e) => {
                node.errors.push(e.to_string());
                return node;
            }
        };
        node.lookups = record.dns_mechanism_count();
        self.path.insert(domain.clone());
        self.check_terms(&domain, &record, &mut node);
        self.path.remove(&domain);
        node
    }

    fn check_terms(&mut self, domain: &str, record: &Spf, node: &mut SpfNode) {
        for d in record.directives() {
            match (&d.mechanism, d.qualifier) {
                (Mechanism::All, Qualifier::Pass) => node
                    .warnings
                    .push("`+all` authorizes every host on the Internet".into()),
                (Mechanism::All, Qualifier::Neutral) => node
                    .warnings
                    .push("`?all` makes the policy say nothing about other hosts".into()),
                (Mechanism::Ptr(_), _) => node.warnings.push(
                    "`ptr` is slow and unreliable; RFC 7208 §5.5 says it SHOULD NOT be used".into(),
                ),
                _ => {}
            }
            match &d.mechanism {
                Mechanism::Include(spec) => {
                    let via = format!("include:{spec}");
                    if let Some(child) = self.follow(spec, via, node) {
                        node.children.push(child);
                    }
                }
                Mechanism::A { domain: spec, .. } => {
                    if let Some(name) = literal_target(spec.as_ref(), domain, node) {
                        let a = self.dns.a(&name).map(|v| v.len());
                        let aaaa = self.dns.aaaa(&name).map(|v| v.len());
                        let empty = |r: &Result<usize, DnsError>| {
                            matches!(r, Ok(0) | Err(DnsError::NxDomain { .. }))
                        };
                        if empty(&a) && empty(&aaaa) {
                            node.void_lookups += 1;
                            node.warnings.push(format!(
                                "`{d}`: {name} has no A or AAAA records (void lookup)"
                            ));
                        }
                    }
                }
                Mechanism::Mx { domain: spec, .. } => {
                    if let Some(name) = literal_target(spec.as_ref(), domain, node) {
                        match self.dns.mx(&name) {
                            Ok(v) if v.len() > 10 => node.errors.push(format!(
                                "`{d}`: {name} has {} MX records; more than 10 is a permerror (RFC 7208 §4.6.4)",
                                v.len()
                            )),
                            Ok(v) if !v.is_empty() => {}
                            Ok(_) | Err(DnsError::NxDomain { .. }) => {
                                node.void_lookups += 1;
                                node.warnings
                                    .push(format!("`{d}`: {name} has no MX records (void lookup)"));
                            }
                            Err(e) => node.errors.push(format!("`{d}`: {e}")),
                        }
                    }
                }
                Mechanism::Exists(spec) => {
                    if let Some(name) = literal_target(Some(spec), domain, node) {
                        match self.dns.a(&name) {
                            Ok(v) if !v.is_empty() => {}
                            Ok(_) | Err(DnsError::NxDomain { .. }) => {
                                node.void_lookups += 1;
                                node.warnings
                                    .push(format!("`{d}`: {name} has no A record (void lookup)"));
                            }
                            Err(e) => node.errors.push(format!("`{d}`: {e}")),
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(spec) = record.redirect() {
            if record.all().is_some() {
                node.warnings.push(format!(
                    "`redirect={spec}` is ignored because the record has an `all` mechanism (RFC 7208 §6.1)"
                ));
            } else if let Some(child) = self.follow(spec, format!("redirect={spec}"), node) {
                node.children.push(child);
            }
        }
    }

    fn follow(&mut self, spec: &DomainSpec, via: String, node: &mut SpfNode) -> Option<SpfNode> {
        match spec.as_literal() {
            Some(target) => Some(self.node(&target, via)),
            None => {
                node.warnings.push(format!(
                    "`{via}` depends on the message (macros): not followed"
                ));
                None
            }
        }
    }
}

fn literal_target(spec: Option<&DomainSpec>, domain: &str, node: &mut SpfNode) -> Option<String> {
    match spec {
        None => Some(domain.to_string()),
        Some(s) => match s.as_literal() {
            Some(t) if is_valid_name(&t) => Some(t),
            Some(t) => {
                node.warnings.push(format!(
                    "`{t}` is not a valid DNS name: the mechanism never matches"
                ));
                None
            }
            None => None,
        },
    }
}

impl fmt::Display for SpfTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn node(f: &mut fmt::Formatter<'_>, n: &SpfNode, depth: usize) -> fmt::Result {
            let pad = "  ".repeat(depth);
            let via = if n.via.is_empty() {
                String::new()
            } else {
                format!("{} -> ", n.via)
            };
            writeln!(
                f,
                "{pad}{via}{} ({} lookups, {} void, {} octets)",
                n.domain, n.lookups, n.void_lookups, n.size
            )?;
            if let Some(r) = &n.record {
                writeln!(f, "{pad}  {r}")?;
            }
            for e in &n.errors {
                writeln!(f, "{pad}  error: {e}")?;
            }
            for w in &n.warnings {
                writeln!(f, "{pad}  warning: {w}")?;
            }
            for c in &n.children {
                node(f, c, depth + 1)?;
            }
            Ok(())
        }
        node(f, &self.root, 0)?;
        writeln!(
            f,
            "total: {}/10 DNS lookups, {}/2 void lookups",
            self.total_lookups, self.total_void_lookups
        )?;
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spf::{MemRecord, MemoryDns};
    use std::net::Ipv4Addr;

    #[test]
    fn walks_includes_and_totals() {
        let mut dns = MemoryDns::new();
        dns.add_txt("example.com", "v=spf1 mx include:a.example.net include:%{d}.m.example.net redirect=r.example.org -all")
            .insert("example.com", MemRecord::Mx(10, "mail.example.com".into()))
            .add_txt("a.example.net", "v=spf1 a:nothing.example.net ptr include:b.example.net +all")
            .add_txt("b.example.net", "v=spf1 include:a.example.net");
        let tree = analyze(&dns, "example.com");
        let root = &tree.root;
        assert_eq!(root.lookups, 4);
        assert_eq!(root.children.len(), 1);
        assert!(root.warnings.iter().any(|w| w.contains("macros")));
        assert!(root.warnings.iter().any(|w| w.contains("ignored")));
        let a = &root.children[0];
        assert_eq!(a.via, "include:a.example.net");
        assert_eq!(a.lookups, 3);
        assert_eq!(a.void_lookups, 1);
        assert!(a.warnings.iter().any(|w| w.contains("+all")));
        assert!(a.warnings.iter().any(|w| w.contains("ptr")));
        let b = &a.children[0];
        assert!(b.children[0].errors[0].contains("loop"), "{tree}");
        assert_eq!(tree.total_lookups, 4 + 3 + 1);
        assert!(!tree.is_ok());
        let text = tree.to_string();
        assert!(
            text.contains("  include:a.example.net -> a.example.net (3 lookups, 1 void"),
            "{text}"
        );
        assert!(
            text.contains("total: 8/10 DNS lookups, 1/2 void lookups"),
            "{text}"
        );
    }

    #[test]
    fn limits_and_missing_records() {
        let mut dns = MemoryDns::new();
        let many: Vec<String> = (0..6)
            .map(|i| format!("include:i{i}.example.net"))
            .collect();
        dns.add_txt("example.com", &format!("v=spf1 {} -all", many.join(" ")));
        for i in 0..6 {
            dns.add_txt(&format!("i{i}.example.net"), "v=spf1 a mx -all")
                .insert(
                    &format!("i{i}.example.net"),
                    MemRecord::A(Ipv4Addr::new(192, 0, 2, 1)),
                )
                .insert(
                    &format!("i{i}.example.net"),
                    MemRecord::Mx(0, "mx.example.net".into()),
                );
        }
        let tree = analyze(&dns, "example.com");
        assert_eq!(tree.total_lookups, 18);
        assert!(tree.errors[0].contains("18 DNS-querying terms"));
        let mut dns = MemoryDns::new();
        dns.add_txt("example.com", "v=spf1 include:none.example.net -all")
            .add_txt("none.example.net", "not spf")
            .add_txt("two.example.net", "v=spf1 -all")
            .add_txt("two.example.net", "v=spf1 +all");
        let tree = analyze(&dns, "example.com");
        assert!(tree.root.children[0].errors[0].contains("no SPF record"));
        assert!(analyze(&dns, "two.example.net").root.errors[0].contains("2 SPF records"));
        assert!(analyze(&dns, "missing.example.net").root.errors[0].contains("does not exist"));
        let mut dns = MemoryDns::new();
        let ips: Vec<String> = (0..30).map(|i| format!("ip4:192.0.2.{i}")).collect();
        dns.add_txt("big.example.net", &format!("v=spf1 {} -all", ips.join(" ")));
        let tree = analyze(&dns, "big.example.net");
        assert!(
            tree.root.size > 450 && tree.root.size <= 512,
            "{}",
            tree.root.size
        );
        assert!(tree.root.warnings[0].contains("450"), "{tree}");
        assert!(tree.is_ok());
    }
}
