//! The SPF check: the apex record is present, alone, parses, stays within
//! the RFC 7208 lookup, void-lookup and size limits over its whole
//! include/redirect tree (shown in the details), avoids `+all`, `?all` and
//! `ptr`, writes its version tag `v=spf1`, and matches the config; a
//! flattened record's chained records must be published and cover what
//! the includes pass now. The tree walk itself is `spf::analyze`,
//! flattening is `spf::flatten`.

use super::{Check, Finding, Severity, Validator};
use crate::diff::Desired;
use crate::dns::ResolveError;
use crate::record::RType;
use crate::record::spf::Spf;
use crate::spf::flatten::{nets_of, uncovered};
use crate::spf::{SpfNode, analyze};

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let domain = desired.origin.as_str();
    let want = desired
        .spf
        .as_ref()
        .and_then(|(rdata, _)| rdata.txt_value());
    let records = match v.resolver.txt_records(domain) {
        Ok(r) => r,
        Err(ResolveError::NxDomain { .. }) => {
            return vec![Finding::fail(
                Check::Spf,
                format!("{domain} does not exist in DNS (NXDOMAIN)"),
                "delegate the zone and run `mailauth apply`",
            )];
        }
        Err(e) => return vec![Finding::dns(Check::Spf, "apex TXT query", &e)],
    };
    // RFC 7208 §4.5: "If the resultant record set includes more than one
    // record, check_host() produces the "permerror" result."
    let spf: Vec<_> = records
        .iter()
        .filter(|r| Spf::is_spf_record(&r.joined()))
        .collect();
    let publish = |w: &Option<String>| match w {
        Some(w) => format!("publish `{domain}. TXT \"{w}\"` (`mailauth apply`)"),
        None => {
            format!("add `spf:` for {domain} to the config, or `v=spf1 -all` if it sends no mail")
        }
    };
    let record = match spf.as_slice() {
        [] => {
            // Judged the same whether declared or not; a declared record
            // that is missing is an extra finding.
            let mut out = vec![Finding::warn(
                Check::Spf,
                "no SPF record: receivers cannot tell which hosts may send for this domain",
                publish(&want),
            )];
            if want.is_some() {
                out.push(Finding::fail(
                    Check::Spf,
                    "the config declares an SPF record, but none is published",
                    publish(&want),
                ));
            }
            return out;
        }
        [one] => *one,
        many => {
            return vec![
                Finding::fail(
                    Check::Spf,
                    format!(
                        "{} SPF records at the apex: receivers return permerror (RFC 7208 §4.5)",
                        many.len()
                    ),
                    "keep exactly one `v=spf1` TXT record at the apex",
                )
                .with_details(many.iter().map(|r| r.text()).collect()),
            ];
        }
    };
    let mut out = Vec::new();
    let text = record.text();
    if record.strings.len() > 1 {
        // RFC 7208 §3.3: "If a published record contains multiple
        // character-strings, then the record MUST be treated as if those
        // strings are concatenated together without adding spaces."
        out.push(Finding::info(
            Check::Spf,
            format!(
                "published as {} character-strings, read joined without spaces",
                record.strings.len()
            ),
        ));
    }
    // RFC 7208 §12 quotes "v=spf1" in ABNF, which is case-insensitive
    // (RFC 5234 §2.3), but receivers that match the version text exactly
    // skip a record written in another case.
    if !text.starts_with("v=spf1") {
        out.push(Finding::warn(
            Check::Spf,
            format!(
                "the record starts `{}`, not `v=spf1`: receivers that match the version exactly ignore it",
                text.chars().take(6).collect::<String>()
            ),
            "write the version tag in lower case",
        ));
    }
    let parsed = match text.parse::<Spf>() {
        Ok(p) => p,
        Err(e) => {
            out.push(
                Finding::fail(
                    Check::Spf,
                    format!("the SPF record does not parse: {e}"),
                    publish(&want),
                )
                .with_details(vec![text]),
            );
            return out;
        }
    };

    let tree = analyze(v.resolver, domain);
    let mut details = Vec::new();
    render_tree(&tree.root, 0, &mut details);
    let mut problems = Vec::new();
    for e in &tree.errors {
        problems.push(Finding::fail(
            Check::Spf,
            e.clone(),
            "flatten or drop includes until the tree needs at most 10 lookups and 2 void lookups",
        ));
    }
    collect(&tree.root, &mut problems);
    let worst = problems.iter().map(|f| f.severity).max();
    if worst.is_none_or(|s| s < Severity::Warn) {
        out.push(
            Finding::pass(
                Check::Spf,
                format!(
                    "one record, {} DNS lookups (limit 10), {} void lookups (limit 2), {} octets",
                    tree.total_lookups, tree.total_void_lookups, tree.root.size
                ),
            )
            .with_details(details),
        );
    } else {
        out.push(
            Finding::info(
                Check::Spf,
                format!(
                    "{} DNS lookups (limit 10), {} void lookups (limit 2) over the tree",
                    tree.total_lookups, tree.total_void_lookups
                ),
            )
            .with_details(details),
        );
    }
    out.extend(problems);

    match want {
        Some(w) => {
            let canonical = parsed.to_string();
            let want_canonical = w.parse::<Spf>().map(|s| s.to_string()).unwrap_or(w.clone());
            if canonical == want_canonical {
                out.push(Finding::pass(Check::Spf, "matches the config"));
            } else {
                out.push(
                    Finding::fail(
                        Check::Spf,
                        "the published SPF record differs from the config",
                        "run `mailauth plan` and `mailauth apply`",
                    )
                    .with_details(vec![
                        format!("published: {text}"),
                        format!("config:    {w}"),
                    ]),
                );
            }
        }
        None => out.push(Finding::info(
            Check::Spf,
            "the config declares no SPF record for this domain; the published one is not managed",
        )),
    }
    out.extend(check_chain(v, desired, &text));
    out
}

/// A flattened record (`spf::flatten`): its chained records are the
/// desired TXT sets below the apex that hold SPF. The published apex and
/// chain must cover every network the includes resolve to now.
fn check_chain(v: &Validator, desired: &Desired, apex: &str) -> Vec<Finding> {
    let chain: Vec<_> = desired
        .sets
        .iter()
        .filter(|s| s.rtype == RType::Txt && s.name != desired.origin)
        .filter_map(|s| {
            let value = s.data.first()?.txt_value()?;
            Spf::is_spf_record(value.as_bytes()).then(|| (s.name.as_str().to_string(), value))
        })
        .collect();
    if chain.is_empty() {
        return Vec::new();
    }
    let mut published = vec![apex.to_string()];
    let mut differs = Vec::new();
    for (name, want) in &chain {
        let got: Vec<String> = match v.resolver.txt_records(name) {
            Ok(r) => r
                .iter()
                .map(|t| t.text())
                .filter(|t| Spf::is_spf_record(t.as_bytes()))
                .collect(),
            Err(ResolveError::NxDomain { .. }) => Vec::new(),
            Err(e) => return vec![Finding::dns(Check::Spf, "chained SPF record query", &e)],
        };
        if got.as_slice() != std::slice::from_ref(want) {
            differs.push(name.clone());
        }
        published.extend(got);
    }
    let want_apex = desired
        .spf
        .as_ref()
        .and_then(|(r, _)| r.txt_value())
        .unwrap_or_default();
    let want =
        nets_of(std::iter::once(want_apex.as_str()).chain(chain.iter().map(|(_, w)| w.as_str())));
    let have = nets_of(published.iter().map(String::as_str));
    let missing = uncovered(&want, &have);
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(5).map(|n| n.to_string()).collect();
        return vec![
            Finding::fail(
                Check::Spf,
                format!(
                    "the published flattening no longer covers the upstream: {} range(s) the includes pass now are missing",
                    missing.len()
                ),
                "run `mailauth plan` (it shows the drift per include) and `mailauth apply`",
            )
            .with_details(shown),
        ];
    }
    if !differs.is_empty() {
        return vec![Finding::fail(
            Check::Spf,
            format!(
                "chained SPF record(s) differ from the flattening: {}",
                differs.join(", ")
            ),
            "run `mailauth plan` and `mailauth apply`",
        )];
    }
    vec![Finding::pass(
        Check::Spf,
        format!(
            "flattened: the apex and {} chained record(s) cover every network the includes pass now",
            chain.len()
        ),
    )]
}

fn render_tree(node: &SpfNode, depth: usize, out: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    let via = if node.via.is_empty() {
        String::new()
    } else {
        format!("{} -> ", node.via)
    };
    let record = node.record.as_deref().unwrap_or("(no record)");
    out.push(format!(
        "{indent}{via}{} [{} lookups, {} void]: {record}",
        node.domain, node.lookups, node.void_lookups
    ));
    for c in &node.children {
        render_tree(c, depth + 1, out);
    }
}

/// Errors and warnings of every node; a temporary DNS failure deep in the
/// tree is a temperror, not a verdict on the record.
fn collect(node: &SpfNode, out: &mut Vec<Finding>) {
    let at = |m: &str| {
        if node.via.is_empty() {
            m.to_string()
        } else {
            format!("{} ({}): {m}", node.domain, node.via)
        }
    };
    for e in &node.errors {
        if e.contains("temporary DNS failure") {
            out.push(
                Finding::new(Check::Spf, Severity::TempError, at(e))
                    .with_fix("check that the name servers answer, then run validate again"),
            );
        } else {
            out.push(Finding::fail(
                Check::Spf,
                at(e),
                "fix the record or the include it names; receivers return permerror",
            ));
        }
    }
    for w in &node.warnings {
        let fix = if w.contains("+all") || w.contains("?all") {
            "end the record with `-all` or `~all`"
        } else if w.contains("ptr") {
            "replace `ptr` with `ip4:`/`ip6:` or `a:` terms"
        } else if w.contains("octets") {
            "shorten the record (ip4 ranges, fewer includes)"
        } else {
            "remove the term or publish the name it points to"
        };
        out.push(Finding::warn(Check::Spf, at(w), fix));
    }
    for c in &node.children {
        collect(c, out);
    }
}
