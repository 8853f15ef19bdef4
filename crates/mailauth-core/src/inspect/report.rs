//! The human-readable `inspect` report, and the config change that would
//! fix a failure when the From domain is managed in the workspace.
//!
//! Rendering only: everything shown was computed by [`super::inspect`].

use std::fmt::Write as _;

use super::Inspection;
use super::dkim::DkimResult;
use super::dmarc::DmarcResult;
use crate::record::Name;
use crate::spf::SpfResult;
use crate::workspace::Workspace;

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The readable report.
pub fn render_text(i: &Inspection) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Message {}{}",
        i.message_id.as_deref().unwrap_or("(no Message-ID)"),
        i.subject
            .as_ref()
            .map(|s| format!(", subject \"{s}\""))
            .unwrap_or_default()
    );

    let _ = writeln!(
        o,
        "\nReceived chain (newest first; lower fields are nearer the sender):"
    );
    if i.hops.is_empty() {
        let _ = writeln!(o, "  (no Received fields)");
    }
    for h in &i.hops {
        let mark = if h.trusted { "trusted" } else { "claimed" };
        let from = match (&h.from, &h.from_rdns, &h.from_ip) {
            (f, r, Some(ip)) => format!(
                "{} ({}[{ip}])",
                f.as_deref().unwrap_or("?"),
                r.as_ref().map(|r| format!("{r} ")).unwrap_or_default()
            ),
            (f, _, None) => f.clone().unwrap_or_else(|| "?".into()),
        };
        let _ = writeln!(
            o,
            "  #{} [{mark}] from {from} by {}{}{}",
            h.index,
            h.by.as_deref().unwrap_or("?"),
            h.with
                .as_ref()
                .map(|w| format!(" with {w}"))
                .unwrap_or_default(),
            h.for_addr
                .as_ref()
                .map(|f| format!(" for <{f}>"))
                .unwrap_or_default(),
        );
        let when = h
            .timestamp
            .map(crate::clock::format_time)
            .or_else(|| h.date.clone())
            .unwrap_or_else(|| "no timestamp".into());
        let delay = h
            .delay
            .map(|d| format!(", {d}s after the hop below"))
            .unwrap_or_default();
        let _ = writeln!(o, "       {when}{delay}");
        if let Some(helo) = &h.helo {
            let _ = writeln!(o, "       HELO {helo} (a claim)");
        }
    }
    if let Some(f) = &i.first_outside {
        let _ = writeln!(o, "  First server outside your organisation: {f}");
    }

    let _ = writeln!(o, "\nIdentities:");
    for id in &i.identities {
        let _ = writeln!(
            o,
            "  {:<14} {:<40} {}",
            id.kind,
            id.value,
            if id.recorded {
                "recorded/verified"
            } else {
                "claimed"
            }
        );
        let _ = writeln!(o, "  {:<14} {}", "", id.source);
    }

    let _ = writeln!(o, "\nDKIM (verified now):");
    if i.dkim.is_empty() {
        let _ = writeln!(o, "  no DKIM-Signature");
    }
    for v in &i.dkim {
        let what = match &v.signature {
            Some(s) => format!(
                "d={} s={} {} c={}/{}{}",
                s.d,
                s.s,
                s.a.as_str(),
                s.header_canon.as_str(),
                s.body_canon.as_str(),
                s.l.map(|l| format!(" l={l}")).unwrap_or_default()
            ),
            None => format!(
                "d={} s={}",
                v.domain.as_deref().unwrap_or("?"),
                v.selector.as_deref().unwrap_or("?")
            ),
        };
        let _ = writeln!(
            o,
            "  {what}: {}{}",
            v.result,
            v.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        for w in v.warnings() {
            let _ = writeln!(o, "    warning: {w}");
        }
    }

    let _ = writeln!(o, "\nSPF (checked now):");
    match &i.spf {
        Some(s) => {
            let _ = writeln!(
                o,
                "  check_host({}, {}, {}) from {}: {}{}",
                s.ip,
                s.domain,
                if s.sender.is_empty() { "<>" } else { &s.sender },
                s.ip_source,
                s.outcome.result,
                s.outcome
                    .matched
                    .as_ref()
                    .map(|m| format!(" ({} in {})", m.term, m.domain))
                    .unwrap_or_default()
            );
            if let Some(p) = &s.outcome.problem {
                let _ = writeln!(o, "  problem: {p}");
            }
        }
        None => {
            let _ = writeln!(o, "  not evaluated");
        }
    }

    let _ = writeln!(o, "\nDMARC (RFC 9989):");
    match &i.dmarc {
        Some(d) => {
            let _ = writeln!(o, "  {}: {}", d.result.as_str(), d.reason);
            if let (Some(pd), Some(rec)) = (&d.policy_domain, &d.record) {
                let _ = writeln!(o, "  policy record at _dmarc.{pd}: {rec}");
            }
            let _ = writeln!(
                o,
                "  From domain {}, organizational domain {}, adkim={} aspf={}",
                d.from_domain,
                d.organizational_domain,
                d.adkim.as_str(),
                d.aspf.as_str()
            );
            if let Some(p) = d.policy {
                let _ = writeln!(
                    o,
                    "  requested policy for this message: {p}{}",
                    if d.testing {
                        " (testing mode: receivers may apply less)"
                    } else {
                        ""
                    }
                );
            }
            for id in &d.identifiers {
                let _ = writeln!(
                    o,
                    "  {} {} {}: relaxed-aligned {}, strict-aligned {}",
                    id.method,
                    id.domain,
                    id.result,
                    yes(id.relaxed),
                    yes(id.strict)
                );
            }
        }
        None => {
            let _ = writeln!(o, "  not evaluated (no single From domain)");
        }
    }

    if !i.recorded.is_empty() || !i.arc.sets.is_empty() {
        let _ = writeln!(o, "\nRecorded in the message:");
        for ar in &i.recorded {
            let rs: Vec<String> = ar
                .results
                .iter()
                .map(|r| format!("{}={}", r.method, r.result))
                .collect();
            let _ = writeln!(
                o,
                "  Authentication-Results by {} ({}): {}",
                ar.authserv_id,
                if ar.trusted { "trusted" } else { "not trusted" },
                rs.join(" ")
            );
        }
        if !i.arc.sets.is_empty() {
            let _ = writeln!(
                o,
                "  ARC: {} set(s) sealed by {}; chain validated now: cv={}{}",
                i.arc_verdict.sets,
                i.arc_verdict.sealers.join(", "),
                i.arc_verdict.cv,
                i.arc_verdict
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            for set in &i.arc.sets {
                if let Some(aar) = &set.aar {
                    let rs: Vec<String> = aar
                        .results
                        .iter()
                        .map(|r| format!("{}={}", r.method, r.result))
                        .collect();
                    let _ = writeln!(
                        o,
                        "    i={} {} recorded: {}",
                        set.instance,
                        aar.authserv_id,
                        rs.join(" ")
                    );
                }
            }
        }
    }

    if !i.disagreements.is_empty() {
        let _ = writeln!(o, "\nDisagreements with the recorded results:");
        for d in &i.disagreements {
            let _ = writeln!(o, "  ! {d}");
        }
    }
    if !i.notes.is_empty() {
        let _ = writeln!(o, "\nNotes:");
        for n in &i.notes {
            let _ = writeln!(o, "  - {n}");
        }
    }
    if !i.fixes.is_empty() {
        let _ = writeln!(o, "\nTo fix this in the config:");
        for f in &i.fixes {
            let _ = writeln!(o, "  * {f}");
        }
    }
    o
}

/// The config changes that would make DMARC pass, when the From domain (or
/// its organizational domain) is managed by `ws`. Empty when it passes or
/// the domain is not managed.
pub fn suggest_fixes(ws: &Workspace, i: &Inspection) -> Vec<String> {
    let Some(d) = &i.dmarc else {
        return Vec::new();
    };
    let managed = [d.from_domain.as_str(), d.organizational_domain.as_str()]
        .into_iter()
        .find(|c| {
            ws.config
                .domains
                .keys()
                .any(|k| k.value.trim_end_matches('.').eq_ignore_ascii_case(c))
        });
    let Some(domain) = managed else {
        return Vec::new();
    };
    let entry = ws
        .config
        .domains
        .iter()
        .find(|(k, _)| k.value.trim_end_matches('.').eq_ignore_ascii_case(domain))
        .map(|(_, v)| v);
    let mut fixes = Vec::new();
    if d.result == DmarcResult::None {
        fixes.push(format!(
            "{domain} has no DMARC record in DNS: add `dmarc: {{p: none, rua: [...]}}` under domains.{domain} and apply, then tighten to quarantine/reject once reports look clean"
        ));
    }
    if d.result == DmarcResult::Pass {
        return fixes;
    }
    if let Some(s) = &i.spf {
        let spf_aligned = d.identifiers.iter().any(|x| x.method == "spf" && x.relaxed);
        if spf_aligned && s.outcome.result != SpfResult::Pass {
            let mech = if s.ip.is_ipv4() { "ip4" } else { "ip6" };
            let current = Name::parse(domain)
                .ok()
                .and_then(|n| ws.desired(&n).ok())
                .and_then(|want| want.spf.map(|(r, _)| r.txt_value().unwrap_or_default()));
            fixes.push(format!(
                "SPF for {} is {} for {}: if that server sends for you, add it under domains.{domain}.spf.{mech}: [\"{}\"] (or `include:` the provider's SPF){}",
                s.domain,
                s.outcome.result,
                s.ip,
                s.ip,
                current
                    .map(|c| format!("; the config now publishes `{c}`"))
                    .unwrap_or_default()
            ));
        } else if !spf_aligned && s.outcome.result == SpfResult::Pass {
            fixes.push(format!(
                "SPF passes for {} but that is not {domain}'s organization: have the sender use a bounce address under {domain}, or rely on an aligned DKIM signature",
                s.domain
            ));
        }
    }
    let selectors: Vec<String> = entry
        .and_then(|e| e.dkim.as_ref())
        .map(|k| {
            k.selectors
                .iter()
                .filter_map(|s| {
                    s.name
                        .as_ref()
                        .or(s.prefix.as_ref())
                        .map(|n| n.value.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    let aligned_dkim: Vec<_> = d
        .identifiers
        .iter()
        .filter(|x| x.method == "dkim" && x.relaxed)
        .collect();
    if aligned_dkim.is_empty() {
        fixes.push(format!(
            "no DKIM signature with d={domain} (or a subdomain): have the sending service sign as {domain} with a selector declared under domains.{domain}.dkim.selectors{}",
            if selectors.is_empty() {
                " (none is declared now)".to_string()
            } else {
                format!(" (declared now: {})", selectors.join(", "))
            }
        ));
    }
    // An aligned signature that fails on its hashes was valid when sent:
    // something between the sender and here changed the message.
    let modified = i.dkim.iter().any(|v| {
        v.signature
            .as_ref()
            .is_some_and(|s| aligned_dkim.iter().any(|x| x.domain == s.d))
            && matches!(
                v.error,
                Some(super::dkim::DkimError::BodyHash { .. } | super::dkim::DkimError::Signature)
            )
    });
    if modified {
        let via = i
            .first_outside
            .as_deref()
            .map(|f| format!(" (the message reached you from {f})"))
            .unwrap_or_default();
        fixes.push(format!(
            "a DKIM signature by {domain} no longer verifies because the message was changed in transit{via}, typically by a mailing list adding a footer or subject tag: nothing in {domain}'s records can fix that; the intermediary should stop modifying messages or rewrite From to its own domain (and may add ARC), otherwise p={} applies to such mail",
            d.policy.map(|p| p.as_str()).unwrap_or("none")
        ));
    }
    for v in &i.dkim {
        let Some(sig) = &v.signature else { continue };
        if !aligned_dkim.iter().any(|x| x.domain == sig.d) || v.result == DkimResult::Pass {
            continue;
        }
        if let Some(super::dkim::DkimError::NoKey { name, .. }) = &v.error {
            let declared = selectors.iter().any(|s| sig.s.starts_with(s.as_str()));
            fixes.push(format!(
                "the key for selector {} is not published at {name}: {}",
                sig.s,
                if declared {
                    format!("it is declared under domains.{domain}.dkim; run `mailauth apply`")
                } else {
                    format!(
                        "add `- {{name: {}, public_key: <base64 public key>}}` under domains.{domain}.dkim.selectors and apply",
                        sig.s
                    )
                }
            ));
        }
    }
    if d.adkim == crate::record::dmarc::Alignment::Strict
        && d.identifiers
            .iter()
            .any(|x| x.method == "dkim" && x.result == "pass" && x.relaxed && !x.strict)
    {
        fixes.push(format!(
            "a DKIM signature passes in relaxed alignment only: set domains.{domain}.dmarc.adkim: r, or sign with d={}",
            d.from_domain
        ));
    }
    if d.aspf == crate::record::dmarc::Alignment::Strict
        && d.identifiers
            .iter()
            .any(|x| x.method == "spf" && x.result == "pass" && x.relaxed && !x.strict)
    {
        fixes.push(format!(
            "SPF passes in relaxed alignment only: set domains.{domain}.dmarc.aspf: r"
        ));
    }
    fixes
}
