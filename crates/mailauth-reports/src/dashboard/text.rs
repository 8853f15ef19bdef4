//! Terminal rendering of the dashboard views (`mailauth reports summary`).
//!
//! Owns plain aligned tables and number formatting. Leaves the numbers to
//! [`super::model`]; JSON output is the views serialised as they are.

use std::fmt::Write as _;

use super::model::{DomainView, Overview, SourceView, Totals};

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `Some(97.456)` → `97.5%`; `None` → `-`.
pub fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%"))
}

pub use crate::output::{clean, is_unsafe_char, terminal_safe};

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], numeric: &[usize]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w.saturating_sub(c.chars().count());
            if numeric.contains(&i) {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(
        out,
        &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    );
    for r in rows {
        line(out, r);
    }
}

const EMPTY: &str = "No reports yet: check that the domains' DMARC rua= points to a mailbox \
mailauth reads, then run `mailauth reports ingest`.";

fn totals_line(t: &Totals) -> String {
    format!(
        "{} messages, DMARC pass {}, SPF aligned {}, DKIM aligned {}; disposition none {} / quarantine {} / reject {}",
        thousands(t.messages),
        percent(t.dmarc_pass_pct),
        percent(t.spf_aligned_pct),
        percent(t.dkim_aligned_pct),
        thousands(t.none),
        thousands(t.quarantine),
        thousands(t.reject)
    )
}

/// The overview as terminal text.
pub fn overview(o: &Overview) -> String {
    let mut out = String::new();
    if o.is_empty() {
        let _ = writeln!(out, "{EMPTY}");
        return out;
    }
    let _ = writeln!(out, "All domains: {}\n", totals_line(&o.totals));
    let rows: Vec<Vec<String>> = o
        .domains
        .iter()
        .map(|d| {
            vec![
                clean(&d.domain),
                thousands(d.totals.messages),
                percent(d.totals.dmarc_pass_pct),
                percent(d.totals.spf_aligned_pct),
                percent(d.totals.dkim_aligned_pct),
                thousands(d.totals.quarantine),
                thousands(d.totals.reject),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "DOMAIN",
            "MESSAGES",
            "DMARC PASS",
            "SPF ALIGNED",
            "DKIM ALIGNED",
            "QUARANTINED",
            "REJECTED",
        ],
        &rows,
        &[1, 2, 3, 4, 5, 6],
    );
    reporters_tls_failures(&mut out, &o.reporters, &o.tls, &o.failures);
    out
}

fn reporters_tls_failures(
    out: &mut String,
    reporters: &[crate::reports::store::ReporterRow],
    tls: &[crate::reports::store::TlsPolicyRow],
    failures: &[crate::reports::store::FailureRow],
) {
    if !reporters.is_empty() {
        let _ = writeln!(out, "\nReporters");
        let rows: Vec<Vec<String>> = reporters
            .iter()
            .map(|r| {
                let mut name = clean(&r.org);
                if !r.aliases.is_empty() {
                    name.push_str(&format!(" (also {})", clean(&r.aliases.join(", "))));
                }
                vec![name, thousands(r.reports), thousands(r.messages)]
            })
            .collect();
        table(out, &["REPORTER", "REPORTS", "MESSAGES"], &rows, &[1, 2]);
    }
    if !tls.is_empty() {
        let _ = writeln!(out, "\nTLS-RPT sessions per policy");
        let rows: Vec<Vec<String>> = tls
            .iter()
            .map(|t| {
                vec![
                    clean(&t.policy_domain),
                    clean(&t.policy_type),
                    thousands(t.successful),
                    thousands(t.failed),
                    clean(
                        &t.failure_types
                            .iter()
                            .map(|(k, n)| format!("{k} {}", thousands(*n)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ]
            })
            .collect();
        table(
            out,
            &[
                "POLICY DOMAIN",
                "TYPE",
                "SUCCESSFUL",
                "FAILED",
                "FAILURES BY TYPE",
            ],
            &rows,
            &[2, 3],
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\nLatest failure reports");
        let rows: Vec<Vec<String>> = failures
            .iter()
            .map(|f| {
                vec![
                    clean(&f.reported_domain),
                    clean(f.arrival_date.as_deref().unwrap_or("-")),
                    clean(f.source_ip.as_deref().unwrap_or("-")),
                    match &f.arc {
                        // The full evidence is in --json and the HTML page.
                        Some(_) => format!(
                            "{} (ARC: forwarded)",
                            clean(f.auth_failure.as_deref().unwrap_or("-"))
                        ),
                        None => clean(f.auth_failure.as_deref().unwrap_or("-")),
                    },
                    clean(f.reporter.as_deref().unwrap_or("-")),
                ]
            })
            .collect();
        table(
            out,
            &["DOMAIN", "ARRIVAL", "SOURCE", "FAILURE", "REPORTER"],
            &rows,
            &[],
        );
    }
}

fn senders(out: &mut String, v: &crate::reports::dashboard::model::SendersView) {
    if v.sources == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nSenders: {} of {} messages ({}) from identified services{}; failing: {} forwarded, {} misconfigured, {} suspicious ({} real failures)",
        thousands(v.identified_messages),
        thousands(v.messages),
        percent(v.identified_pct),
        if v.truncated {
            ", top sources only"
        } else {
            ""
        },
        thousands(v.fail_forwarded),
        thousands(v.fail_misconfigured),
        thousands(v.fail_suspicious),
        thousands(v.real_failures),
    );
    let rows: Vec<Vec<String>> = v
        .services
        .iter()
        .map(|s| {
            vec![
                clean(&s.service),
                s.category.as_str().to_owned(),
                clean(&s.methods.join(",")),
                thousands(s.sources),
                thousands(s.messages),
                percent(s.dmarc_pass_pct),
            ]
        })
        .chain(v.unknown.iter().map(|u| {
            vec![
                format!("unknown: {}", clean(&u.group)),
                "-".to_owned(),
                "-".to_owned(),
                thousands(u.sources),
                thousands(u.messages),
                percent(crate::reports::dashboard::model::pct(
                    u.messages - u.dmarc_fail,
                    u.messages,
                )),
            ]
        }))
        .collect();
    table(
        out,
        &[
            "SERVICE",
            "CATEGORY",
            "IDENTIFIED BY",
            "SOURCES",
            "MESSAGES",
            "DMARC PASS",
        ],
        &rows,
        &[3, 4, 5],
    );
}

fn source_rows(sources: &[SourceView]) -> Vec<Vec<String>> {
    sources
        .iter()
        .map(|s| {
            vec![
                clean(&s.source_ip),
                clean(s.reverse_dns.as_deref().unwrap_or("-")),
                clean(&service_label(s)),
                thousands(s.messages),
                percent(s.dmarc_pass_pct),
                s.classification.class.as_str().to_owned(),
                s.attribution.verdict.as_str().to_owned(),
                clean(s.attribution.spf_mechanism.as_deref().unwrap_or("-")),
                clean(&if s.dkim_signers.is_empty() {
                    "-".to_owned()
                } else {
                    s.dkim_signers.join(" ")
                }),
                clean(&s.reporters.join(", ")),
            ]
        })
        .collect()
}

/// `Service (category, how)` or `unknown (group)`.
pub fn service_label(s: &SourceView) -> String {
    let id = &s.identity;
    match (&id.service, id.category) {
        (Some(name), Some(c)) => format!("{name} ({}, {})", c.as_str(), id.method.as_str()),
        _ => format!("unknown ({})", id.group.as_deref().unwrap_or("-")),
    }
}

const SOURCE_HEADER: [&str; 10] = [
    "SOURCE",
    "REVERSE DNS",
    "SERVICE",
    "MESSAGES",
    "DMARC PASS",
    "CLASS",
    "VERDICT",
    "SPF VIA",
    "DKIM SIGNERS",
    "REPORTERS",
];

/// One domain as terminal text.
pub fn domain(d: &DomainView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", clean(&d.domain), totals_line(&d.totals));
    if d.is_empty() {
        let _ = writeln!(out, "{EMPTY}");
        return out;
    }
    senders(&mut out, &d.senders);
    let _ = writeln!(out, "\nTop sending sources");
    table(&mut out, &SOURCE_HEADER, &source_rows(&d.sources), &[3, 4]);
    if !d.failing_sources.is_empty() {
        let _ = writeln!(out, "\nFailing sources");
        table(
            &mut out,
            &SOURCE_HEADER,
            &source_rows(&d.failing_sources),
            &[3, 4],
        );
        for s in &d.failing_sources {
            for e in &s.classification.evidence {
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    clean(&s.source_ip),
                    s.classification.class.as_str(),
                    clean(e)
                );
            }
        }
    }
    if !d.policy.is_empty() {
        let _ = writeln!(out, "\nPolicy published vs applied");
        let rows: Vec<Vec<String>> = d
            .policy
            .iter()
            .map(|p| {
                vec![
                    clean(&p.published),
                    p.pct.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    clean(&p.applied),
                    clean(&if p.overrides.is_empty() {
                        "-".to_owned()
                    } else {
                        p.overrides.join(", ")
                    }),
                    thousands(p.messages),
                ]
            })
            .collect();
        table(
            &mut out,
            &["PUBLISHED", "PCT", "APPLIED", "OVERRIDES", "MESSAGES"],
            &rows,
            &[1, 4],
        );
    }
    reporters_tls_failures(&mut out, &d.reporters, &d.tls, &d.failures);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-12_345), "-12,345");
        assert_eq!(percent(Some(97.456)), "97.5%");
        assert_eq!(percent(None), "-");
        assert_eq!(clean("a\x1b[31mb"), "a\u{fffd}[31mb");
    }
}
