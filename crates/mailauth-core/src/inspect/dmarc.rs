//! DMARC evaluation for one message (RFC 9989): the DNS tree walk, policy
//! discovery, the Organizational Domain, identifier alignment (relaxed and
//! strict) and the resulting verdict and policy.
//!
//! The record syntax is `record::dmarc`'s; SPF and DKIM results come in
//! from the caller. Nothing here decides delivery.

use serde::Serialize;

use crate::record::dmarc::{Alignment, Dmarc, Policy, Psd};
use crate::spf::{DnsError, SpfDns};

/// A DMARC record found during the tree walk.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The domain the record was published for (without `_dmarc.`).
    pub domain: String,
    pub text: String,
    #[serde(skip)]
    pub record: Dmarc,
}

/// What the walk saw, for the report.
#[derive(schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Walk {
    /// Records found, From domain first, in query order.
    pub found: Vec<Found>,
    /// Names queried, with what came back.
    pub trace: Vec<String>,
    /// A DNS failure that makes the result "temperror".
    pub temp_error: Option<String>,
}

/// The `_dmarc` record of exactly `domain`: RFC 9989 §4.10 step 2 "Records
/// that do not start with a "v=" tag that identifies the current version
/// of DMARC are discarded. If multiple DMARC records are returned, they are
/// all discarded."
fn lookup(dns: &dyn SpfDns, domain: &str, walk: &mut Walk) -> Option<Found> {
    let name = format!("_dmarc.{domain}");
    let records = match dns.txt(&name) {
        Ok(r) => r,
        Err(DnsError::NxDomain { .. }) => {
            walk.trace.push(format!("{name}: NXDOMAIN"));
            return None;
        }
        Err(e) => {
            walk.trace.push(format!("{name}: {e}"));
            walk.temp_error.get_or_insert(e.to_string());
            return None;
        }
    };
    let dmarc: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .filter(|t| {
            t.split(';')
                .next()
                .is_some_and(|v| v.split_whitespace().collect::<String>() == "v=DMARC1")
        })
        .collect();
    match dmarc.as_slice() {
        [] => {
            walk.trace.push(format!("{name}: no DMARC record"));
            None
        }
        [one] => match one.parse::<Dmarc>() {
            Ok(record) => {
                walk.trace.push(format!("{name}: {one}"));
                Some(Found {
                    domain: domain.to_string(),
                    text: one.clone(),
                    record,
                })
            }
            Err(e) => {
                walk.trace
                    .push(format!("{name}: invalid DMARC record, discarded: {e}"));
                None
            }
        },
        many => {
            walk.trace.push(format!(
                "{name}: {} DMARC records, all discarded",
                many.len()
            ));
            None
        }
    }
}

/// RFC 9989 §4.10 "DNS Tree Walk", steps 4–5: "If x < 8, remove the
/// left-most (highest-numbered) label from the subject domain. If x >= 8,
/// remove the left-most (highest-numbered) labels from the subject domain
/// until 7 labels remain."
fn next_target(domain: &str) -> Option<String> {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() <= 1 {
        return None;
    }
    let keep = if labels.len() >= 8 {
        7
    } else {
        labels.len() - 1
    };
    Some(labels[labels.len() - keep..].join("."))
}

/// Walks from `domain` towards the root, stopping at a `psd=n` record
/// (§4.10 steps 1–8), and returns every record found.
pub fn tree_walk(dns: &dyn SpfDns, domain: &str) -> Walk {
    let mut walk = Walk::default();
    let mut target = Some(domain.trim_end_matches('.').to_ascii_lowercase());
    while let Some(t) = target {
        if let Some(f) = lookup(dns, &t, &mut walk) {
            let stop = f.record.psd == Some(Psd::No);
            walk.found.push(f);
            if stop {
                break;
            }
        }
        target = next_target(&t);
    }
    walk
}

/// RFC 9989 §4.10.1 "Identifying the Organizational Domain": "If a valid
/// DMARC record contains the psd= tag set to 'n' (psd=n), this is the
/// Organizational Domain ... If a valid DMARC record, other than the one
/// for the domain where the tree walk started, contains the psd= tag set to
/// 'y' (psd=y), the Organizational Domain is the domain one label below
/// this one in the DNS hierarchy ... Otherwise, select the valid DMARC
/// record found for the name with the fewest number of labels. ... If this
/// process does not determine a valid DMARC record, the Organizational
/// Domain is the domain where the tree walk started."
pub fn organizational_domain(walk: &Walk, start: &str) -> String {
    let start = start.trim_end_matches('.').to_ascii_lowercase();
    if let Some(f) = walk.found.iter().find(|f| f.record.psd == Some(Psd::No)) {
        return f.domain.clone();
    }
    if let Some(f) = walk
        .found
        .iter()
        .find(|f| f.domain != start && f.record.psd == Some(Psd::Yes))
    {
        let n = f.domain.split('.').count() + 1;
        let labels: Vec<&str> = start.split('.').collect();
        return labels[labels.len().saturating_sub(n)..].join(".");
    }
    walk.found
        .iter()
        .min_by_key(|f| f.domain.split('.').count())
        .map_or(start, |f| f.domain.clone())
}

/// RFC 9989 §4.4.1 / §4.4.2: "In relaxed mode, the Organizational Domains
/// of both the [Authenticated Identifier] and the RFC5322.From domain
/// must be equal"; "In strict mode, only an exact match between the
/// FQDNs of the [two] is considered to produce Identifier Alignment."
pub fn aligned(
    dns: &dyn SpfDns,
    from_domain: &str,
    from_org: &str,
    other: &str,
    mode: Alignment,
) -> bool {
    let a = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let b = other.trim_end_matches('.').to_ascii_lowercase();
    if a == b {
        return true;
    }
    if mode == Alignment::Strict {
        return false;
    }
    organizational_domain(&tree_walk(dns, &b), &b) == from_org
}

/// DMARC result words (RFC 8601 §2.7.x / RFC 9989 §4.8).
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    Pass,
    Fail,
    None,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// One authenticated identifier and whether it aligns with From.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identifier {
    /// `spf` or `dkim`.
    pub method: &'static str,
    pub domain: String,
    /// The SPF / DKIM result for this identifier.
    pub result: String,
    pub relaxed: bool,
    pub strict: bool,
    /// Alignment under the mode the policy asks for.
    pub aligned: bool,
}

/// The DMARC outcome for a message.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DmarcOutcome {
    pub result: DmarcResult,
    pub from_domain: String,
    pub organizational_domain: String,
    /// The domain whose record applies, and the record.
    pub policy_domain: Option<String>,
    pub record: Option<String>,
    /// The policy the record asks for this message (`p`, or `sp` / `np` for
    /// a subdomain), before testing mode.
    pub policy: Option<Policy>,
    pub testing: bool,
    pub adkim: Alignment,
    pub aspf: Alignment,
    pub identifiers: Vec<Identifier>,
    pub walk: Walk,
    /// Why it passes or fails, in a sentence.
    pub reason: String,
}

/// Whether `domain` exists in DNS (for `np`, RFC 9989 §4.7: "non-existent
/// subdomains"): NXDOMAIN for A, AAAA and MX.
fn nonexistent(dns: &dyn SpfDns, domain: &str) -> bool {
    matches!(dns.a(domain), Err(DnsError::NxDomain { .. }))
        && matches!(dns.aaaa(domain), Err(DnsError::NxDomain { .. }))
        && matches!(dns.mx(domain), Err(DnsError::NxDomain { .. }))
}

/// Evaluates DMARC for `from_domain` given the SPF-authenticated domain and
/// result, and the DKIM `(d=, result)` pairs.
pub fn evaluate(
    dns: &dyn SpfDns,
    from_domain: &str,
    spf: Option<(&str, &str)>,
    dkim: &[(String, String)],
) -> DmarcOutcome {
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let walk = tree_walk(dns, &from);
    let org = organizational_domain(&walk, &from);
    // RFC 9989 §4.10: policy discovery uses the first record the walk found;
    // a record for a parent applies `sp` (or `np` to a nonexistent name).
    let policy_rec = walk.found.first().cloned();
    let (adkim, aspf) = policy_rec
        .as_ref()
        .map_or((Alignment::Relaxed, Alignment::Relaxed), |f| {
            (
                f.record.adkim.unwrap_or_default(),
                f.record.aspf.unwrap_or_default(),
            )
        });
    let mut identifiers = Vec::new();
    if let Some((d, r)) = spf {
        identifiers.push(identifier(dns, "spf", &from, &org, d, r, aspf));
    }
    for (d, r) in dkim {
        identifiers.push(identifier(dns, "dkim", &from, &org, d, r, adkim));
    }
    let passing: Vec<&Identifier> = identifiers
        .iter()
        .filter(|i| i.result == "pass" && i.aligned)
        .collect();
    let policy = policy_rec.as_ref().map(|f| {
        if f.domain == from {
            f.record.effective_policy()
        } else if nonexistent(dns, &from) {
            f.record
                .np
                .or(f.record.sp)
                .unwrap_or(f.record.effective_policy())
        } else {
            f.record.sp.unwrap_or(f.record.effective_policy())
        }
    });
    let (result, reason) = if let Some(e) = &walk.temp_error
        && policy_rec.is_none()
    {
        (
            DmarcResult::TempError,
            format!("the DMARC policy could not be looked up: {e}"),
        )
    } else if policy_rec.is_none() {
        (
            DmarcResult::None,
            format!("no DMARC record for {from} or any parent domain"),
        )
    } else if let Some(p) = passing.first() {
        (
            DmarcResult::Pass,
            format!(
                "{} passed for {}, which is aligned with From ({}, {} mode)",
                p.method.to_uppercase(),
                p.domain,
                from,
                if p.method == "spf" {
                    aspf.as_str()
                } else {
                    adkim.as_str()
                }
            ),
        )
    } else {
        (
            DmarcResult::Fail,
            fail_reason(&from, &identifiers, adkim, aspf),
        )
    };
    DmarcOutcome {
        result,
        from_domain: from,
        organizational_domain: org,
        policy_domain: policy_rec.as_ref().map(|f| f.domain.clone()),
        record: policy_rec.as_ref().map(|f| f.text.clone()),
        policy,
        testing: policy_rec.as_ref().is_some_and(|f| f.record.testing()),
        adkim,
        aspf,
        identifiers,
        walk,
        reason,
    }
}

fn identifier(
    dns: &dyn SpfDns,
    method: &'static str,
    from: &str,
    org: &str,
    domain: &str,
    result: &str,
    mode: Alignment,
) -> Identifier {
    let relaxed = aligned(dns, from, org, domain, Alignment::Relaxed);
    let strict = aligned(dns, from, org, domain, Alignment::Strict);
    Identifier {
        method,
        domain: domain.to_ascii_lowercase(),
        result: result.to_string(),
        relaxed,
        strict,
        aligned: if mode == Alignment::Strict {
            strict
        } else {
            relaxed
        },
    }
}

fn fail_reason(from: &str, ids: &[Identifier], adkim: Alignment, aspf: Alignment) -> String {
    if ids.is_empty() {
        return format!(
            "neither SPF nor DKIM authenticated any domain, so nothing aligns with {from}"
        );
    }
    let parts: Vec<String> = ids
        .iter()
        .map(|i| {
            let mode = if i.method == "spf" { aspf } else { adkim };
            match (i.result == "pass", i.aligned) {
                (false, _) => format!("{} {} for {}", i.method.to_uppercase(), i.result, i.domain),
                (true, false) => format!(
                    "{} passed for {} but it is not aligned with {from} ({} mode{})",
                    i.method.to_uppercase(),
                    i.domain,
                    if mode == Alignment::Strict {
                        "strict"
                    } else {
                        "relaxed"
                    },
                    if i.relaxed && !i.strict {
                        "; it would align in relaxed mode"
                    } else {
                        ""
                    }
                ),
                (true, true) => String::new(),
            }
        })
        .collect();
    let mut unique: Vec<String> = Vec::new();
    for p in parts {
        if !p.is_empty() && !unique.contains(&p) {
            unique.push(p);
        }
    }
    format!("no aligned pass: {}", unique.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spf::MemoryDns;

    #[test]
    fn tree_walk_targets() {
        assert_eq!(next_target("a.b.c").as_deref(), Some("b.c"));
        assert_eq!(next_target("com"), None);
        assert_eq!(
            next_target("1.2.3.4.5.6.7.8.9.example").as_deref(),
            Some("4.5.6.7.8.9.example")
        );
    }

    #[test]
    fn org_domain_by_walk() {
        let mut dns = MemoryDns::new();
        dns.add_txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine")
            .add_txt("_dmarc.com", "v=DMARC1; p=none; psd=y")
            .add_txt("_dmarc.lists.example.org", "v=DMARC1; p=none; psd=n");
        let w = tree_walk(&dns, "a.b.example.com");
        assert_eq!(w.found.len(), 2);
        assert_eq!(organizational_domain(&w, "a.b.example.com"), "example.com");
        let w = tree_walk(&dns, "x.lists.example.org");
        assert_eq!(
            organizational_domain(&w, "x.lists.example.org"),
            "lists.example.org"
        );
        let w = tree_walk(&dns, "nothing.example.net");
        assert_eq!(
            organizational_domain(&w, "nothing.example.net"),
            "nothing.example.net"
        );

        let out = evaluate(
            &dns,
            "a.b.example.com",
            Some(("bounce.example.com", "pass")),
            &[],
        );
        assert_eq!(out.result, DmarcResult::Pass);
        assert_eq!(out.policy, Some(Policy::Quarantine));
        let i = &out.identifiers[0];
        assert!(i.relaxed && !i.strict);
    }

    #[test]
    fn strict_alignment_fails() {
        let mut dns = MemoryDns::new();
        dns.add_txt("_dmarc.example.com", "v=DMARC1; p=reject; aspf=s; adkim=s");
        let out = evaluate(
            &dns,
            "example.com",
            Some(("mail.example.com", "pass")),
            &[("other.example".into(), "pass".into())],
        );
        assert_eq!(out.result, DmarcResult::Fail);
        assert!(
            out.reason.contains("would align in relaxed mode"),
            "{}",
            out.reason
        );
        assert_eq!(out.policy, Some(Policy::Reject));
    }
}
