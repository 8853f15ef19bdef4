//! The dashboard views, computed once from store query results and
//! rendered three ways (terminal, HTML, JSON). Pure: no SQL, no DNS, no I/O.
//!
//! Owns the view structs and their arithmetic (percentages, per-day
//! series, override reasons). Leaves queries to `reports::store` and
//! source attribution to [`super::attribution`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::attribution::Attribution;
use crate::reports::sources::{self, Category, Class, Classification, Identity};
use crate::reports::store::{
    DailyRow, FailureRow, PolicyRow, ReporterRow, SourceRow, TlsPolicyRow,
};

/// RFC 7489 §6.6.2: a message passes DMARC when "one or more of the
/// Authenticated Identifiers align with the RFC5322.From domain" — counted
/// here from the reporters' `dkim` and `spf` policy-evaluated results.
#[derive(schemars::JsonSchema, Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub messages: i64,
    pub dmarc_pass: i64,
    pub spf_aligned: i64,
    pub dkim_aligned: i64,
    /// Percentages, `None` without messages.
    pub dmarc_pass_pct: Option<f64>,
    pub spf_aligned_pct: Option<f64>,
    pub dkim_aligned_pct: Option<f64>,
    pub none: i64,
    pub quarantine: i64,
    pub reject: i64,
}

/// RFC 7489 Appendix C: `<xs:simpleType name="DispositionType">`
/// `none quarantine reject` — one day of messages by applied disposition.
#[derive(schemars::JsonSchema, Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayPoint {
    /// `YYYY-MM-DD` (UTC): first day of the bucket.
    pub date: String,
    /// Days per bucket: 1, 7 or 30, chosen from the span so a chart keeps
    /// a readable number of bars.
    pub bucket_days: i64,
    pub messages: i64,
    pub dmarc_pass: i64,
    pub none: i64,
    pub quarantine: i64,
    pub reject: i64,
}

/// One row of the overview's domain table.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct DomainSummary {
    pub domain: String,
    pub totals: Totals,
    pub days: Vec<DayPoint>,
}

/// The requested range, echoed for the page header.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RangeView {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The overview: every domain.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub range: RangeView,
    pub totals: Totals,
    pub days: Vec<DayPoint>,
    pub domains: Vec<DomainSummary>,
    pub reporters: Vec<ReporterRow>,
    pub tls: Vec<TlsPolicyRow>,
    pub failures: Vec<FailureRow>,
}

impl Overview {
    /// Nothing stored at all in the range.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.tls.is_empty() && self.failures.is_empty()
    }
}

/// A source IP with its attribution.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct SourceView {
    pub source_ip: String,
    pub reverse_dns: Option<String>,
    pub messages: i64,
    pub dmarc_pass: i64,
    pub dmarc_fail: i64,
    pub dmarc_pass_pct: Option<f64>,
    pub spf_aligned: i64,
    pub dkim_aligned: i64,
    pub reporters: Vec<String>,
    pub dkim_signers: Vec<String>,
    pub spf_reported: Vec<String>,
    pub attribution: Attribution,
    /// Failing messages the receivers marked as forwarded / list mail.
    pub forwarded_reason: i64,
    /// Which service this is and how that was found.
    pub identity: Identity,
    /// What its failing mail is (forwarded, misconfigured, suspicious).
    pub classification: Classification,
}

/// One identified service's traffic on a domain.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    pub id: String,
    pub service: String,
    pub category: Category,
    /// How its sources were identified (distinct, in order of first use).
    pub methods: Vec<String>,
    pub sources: i64,
    pub messages: i64,
    pub dmarc_pass: i64,
    pub dmarc_pass_pct: Option<f64>,
}

/// Unknown sources grouped by the organisation domain of their PTR name.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownGroup {
    pub group: String,
    pub sources: i64,
    pub messages: i64,
    pub dmarc_fail: i64,
}

/// Who sends as the domain, over its sources (up to
/// `dashboard::SUMMARY_SOURCES`, most messages first).
#[derive(schemars::JsonSchema, Debug, Clone, Default, PartialEq, Serialize)]
pub struct SendersView {
    pub sources: i64,
    pub messages: i64,
    /// Messages from sources named by the config or the catalogue.
    pub identified_messages: i64,
    pub identified_pct: Option<f64>,
    /// Failing messages by class.
    pub fail_forwarded: i64,
    pub fail_misconfigured: i64,
    pub fail_suspicious: i64,
    /// Failing messages that are not forwarding: what an enforcing policy
    /// would really stop.
    pub real_failures: i64,
    pub services: Vec<ServiceView>,
    pub unknown: Vec<UnknownGroup>,
    /// More sources than were summarised.
    pub truncated: bool,
}

/// Published policy against what receivers applied.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct PolicyView {
    pub published: String,
    pub pct: Option<i64>,
    pub applied: String,
    /// RFC 7489 Appendix C `PolicyOverrideType` values with their comments.
    pub overrides: Vec<String>,
    pub messages: i64,
}

/// One domain's page.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct DomainView {
    pub domain: String,
    pub range: RangeView,
    /// The source filter, if any.
    pub source: Option<String>,
    pub totals: Totals,
    pub days: Vec<DayPoint>,
    pub sources: Vec<SourceView>,
    pub failing_sources: Vec<SourceView>,
    /// Services, classes and unknown groups over all sources.
    pub senders: SendersView,
    pub reporters: Vec<ReporterRow>,
    pub policy: Vec<PolicyView>,
    pub tls: Vec<TlsPolicyRow>,
    pub failures: Vec<FailureRow>,
}

impl DomainView {
    pub fn is_empty(&self) -> bool {
        self.totals.messages == 0 && self.tls.is_empty() && self.failures.is_empty()
    }
}

/// `part / whole` in percent, `None` when `whole` is 0.
pub fn pct(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn date(day: i64) -> String {
    let (y, m, d) = crate::clock::civil(day * 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Saturating: a store may hold absurd counts (written before ingest
/// refused them); the totals stop at `i64::MAX` instead of overflowing.
fn add(t: &mut Totals, r: &DailyRow) {
    t.messages = t.messages.saturating_add(r.messages);
    t.dmarc_pass = t.dmarc_pass.saturating_add(r.dmarc_pass);
    t.spf_aligned = t.spf_aligned.saturating_add(r.spf_aligned);
    t.dkim_aligned = t.dkim_aligned.saturating_add(r.dkim_aligned);
    t.none = t.none.saturating_add(r.none);
    t.quarantine = t.quarantine.saturating_add(r.quarantine);
    t.reject = t.reject.saturating_add(r.reject);
}

fn finish(mut t: Totals) -> Totals {
    t.dmarc_pass_pct = pct(t.dmarc_pass, t.messages);
    t.spf_aligned_pct = pct(t.spf_aligned, t.messages);
    t.dkim_aligned_pct = pct(t.dkim_aligned, t.messages);
    t
}

/// Totals and a time series: per day up to 92 days of span, per week up
/// to two years, per 30 days up to ten, per 365 beyond; empty buckets between the first and
/// last are kept (zeros) so charts have a true time axis.
pub fn series(rows: &[&DailyRow]) -> (Totals, Vec<DayPoint>) {
    let mut totals = Totals::default();
    for r in rows {
        add(&mut totals, r);
    }
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.day).min(),
        rows.iter().map(|r| r.day).max(),
    ) else {
        return (finish(totals), Vec::new());
    };
    let bucket = match last - first {
        0..=92 => 1,
        93..=730 => 7,
        731..=3_650 => 30,
        _ => 365,
    };
    // At most 121 buckets: a bogus date a century away cannot blow up
    // the chart; the latest buckets are kept (the totals keep everything).
    let first = first.max(last - 120 * bucket);
    let mut by_bucket: BTreeMap<i64, Totals> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.day >= first) {
        add(by_bucket.entry((r.day - first) / bucket).or_default(), r);
    }
    let n = (last - first) / bucket;
    let days = (0..=n)
        .map(|i| {
            let t = by_bucket.get(&i).cloned().unwrap_or_default();
            DayPoint {
                date: date(first + i * bucket),
                bucket_days: bucket,
                messages: t.messages,
                dmarc_pass: t.dmarc_pass,
                none: t.none,
                quarantine: t.quarantine,
                reject: t.reject,
            }
        })
        .collect();
    (finish(totals), days)
}

/// Builds the overview from query results.
pub fn overview(
    range: RangeView,
    daily: &[DailyRow],
    reporters: Vec<ReporterRow>,
    tls: Vec<TlsPolicyRow>,
    failures: Vec<FailureRow>,
) -> Overview {
    let all: Vec<&DailyRow> = daily.iter().collect();
    let (totals, days) = series(&all);
    let mut per: BTreeMap<&str, Vec<&DailyRow>> = BTreeMap::new();
    for r in daily {
        per.entry(r.domain.as_str()).or_default().push(r);
    }
    let mut domains: Vec<DomainSummary> = per
        .into_iter()
        .map(|(d, rows)| {
            let (totals, days) = series(&rows);
            DomainSummary {
                domain: d.to_owned(),
                totals,
                days,
            }
        })
        .collect();
    domains.sort_by(|a, b| {
        b.totals
            .messages
            .cmp(&a.totals.messages)
            .then_with(|| a.domain.cmp(&b.domain))
    });
    Overview {
        range,
        totals,
        days,
        domains,
        reporters,
        tls,
        failures,
    }
}

/// A source row with its attribution, reverse DNS name and identity.
pub fn source_view(
    s: SourceRow,
    attribution: Attribution,
    reverse_dns: Option<String>,
    identity: Identity,
) -> SourceView {
    let classification = sources::classify(&s, &identity);
    SourceView {
        forwarded_reason: s.forwarded_reason,
        identity,
        classification,
        dmarc_fail: s.messages.saturating_sub(s.dmarc_pass),
        dmarc_pass_pct: pct(s.dmarc_pass, s.messages),
        source_ip: s.source_ip,
        reverse_dns,
        messages: s.messages,
        dmarc_pass: s.dmarc_pass,
        spf_aligned: s.spf_aligned,
        dkim_aligned: s.dkim_aligned,
        reporters: s.reporters,
        dkim_signers: s.dkim_signers,
        spf_reported: s.spf_reported,
        attribution,
    }
}

/// Sums sources by service, class and unknown group. `truncated`: the
/// query stopped at its limit.
pub fn senders(views: &[SourceView], truncated: bool) -> SendersView {
    let mut out = SendersView {
        truncated,
        ..SendersView::default()
    };
    let mut services: BTreeMap<String, ServiceView> = BTreeMap::new();
    let mut unknown: BTreeMap<String, UnknownGroup> = BTreeMap::new();
    for v in views {
        out.sources += 1;
        out.messages = out.messages.saturating_add(v.messages);
        match v.classification.class {
            Class::Aligned => {}
            Class::Forwarded => {
                out.fail_forwarded = out.fail_forwarded.saturating_add(v.dmarc_fail)
            }
            Class::Misconfigured => {
                out.fail_misconfigured = out.fail_misconfigured.saturating_add(v.dmarc_fail)
            }
            Class::Suspicious => {
                out.fail_suspicious = out.fail_suspicious.saturating_add(v.dmarc_fail)
            }
        }
        let id = &v.identity;
        match (&id.id, &id.service, id.category) {
            (Some(key), Some(name), Some(category)) => {
                out.identified_messages = out.identified_messages.saturating_add(v.messages);
                let e = services.entry(key.clone()).or_insert_with(|| ServiceView {
                    id: key.clone(),
                    service: if category == Category::Own {
                        "own (configured SPF)".to_owned()
                    } else {
                        name.clone()
                    },
                    category,
                    methods: Vec::new(),
                    sources: 0,
                    messages: 0,
                    dmarc_pass: 0,
                    dmarc_pass_pct: None,
                });
                let m = id.method.as_str().to_owned();
                if !e.methods.contains(&m) {
                    e.methods.push(m);
                }
                e.sources += 1;
                e.messages = e.messages.saturating_add(v.messages);
                e.dmarc_pass = e.dmarc_pass.saturating_add(v.dmarc_pass);
            }
            _ => {
                let g = id.group.clone().unwrap_or_else(|| "?".to_owned());
                let e = unknown.entry(g.clone()).or_insert_with(|| UnknownGroup {
                    group: g,
                    sources: 0,
                    messages: 0,
                    dmarc_fail: 0,
                });
                e.sources += 1;
                e.messages = e.messages.saturating_add(v.messages);
                e.dmarc_fail = e.dmarc_fail.saturating_add(v.dmarc_fail);
            }
        }
    }
    out.real_failures = out.fail_misconfigured.saturating_add(out.fail_suspicious);
    out.identified_pct = pct(out.identified_messages, out.messages);
    out.services = services
        .into_values()
        .map(|mut s| {
            s.dmarc_pass_pct = pct(s.dmarc_pass, s.messages);
            s
        })
        .collect();
    out.services
        .sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.id.cmp(&b.id)));
    out.unknown = unknown.into_values().collect();
    out.unknown.sort_by(|a, b| {
        b.messages
            .cmp(&a.messages)
            .then_with(|| a.group.cmp(&b.group))
    });
    out
}

/// Reporters merged under their stable key ([`sources::reporter_key`]):
/// the name shown is the one with the most messages; the others are kept
/// in `aliases`.
pub fn merge_reporters(rows: Vec<ReporterRow>) -> Vec<ReporterRow> {
    let mut by: BTreeMap<String, ReporterRow> = BTreeMap::new();
    for r in rows {
        let key = sources::reporter_key(&r.org);
        match by.get_mut(&key) {
            None => {
                by.insert(
                    key.clone(),
                    ReporterRow {
                        key,
                        aliases: Vec::new(),
                        ..r
                    },
                );
            }
            Some(e) => {
                let (keep, other) = if r.messages > e.messages {
                    (r.org.clone(), std::mem::replace(&mut e.org, r.org.clone()))
                } else {
                    (e.org.clone(), r.org.clone())
                };
                e.org = keep;
                if !e.aliases.contains(&other) && other != e.org {
                    e.aliases.push(other);
                }
                e.reports = e.reports.saturating_add(r.reports);
                e.messages = e.messages.saturating_add(r.messages);
                e.first_begin = e.first_begin.min(r.first_begin);
                e.last_end = e.last_end.max(r.last_end);
            }
        }
    }
    let mut out: Vec<ReporterRow> = by.into_values().collect();
    out.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.key.cmp(&b.key)));
    out
}

/// Policy rows with their override reasons spelled out.
pub fn policy_views(rows: Vec<PolicyRow>) -> Vec<PolicyView> {
    rows.into_iter()
        .map(|r| {
            let overrides = r
                .reasons
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|o| {
                            let kind = o.get("kind")?.as_str()?;
                            Some(match o.get("comment").and_then(|c| c.as_str()) {
                                Some(c) if !c.is_empty() => format!("{kind}: {c}"),
                                _ => kind.to_owned(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            PolicyView {
                published: r.published.unwrap_or_else(|| "?".to_owned()),
                pct: r.pct,
                applied: r.disposition,
                overrides,
                messages: r.messages,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` messages of one outcome.
    fn row(domain: &str, day: i64, disp: &str, dkim: bool, spf: bool, n: i64) -> DailyRow {
        let of = |b: bool| if b { n } else { 0 };
        DailyRow {
            domain: domain.into(),
            day,
            messages: n,
            dmarc_pass: of(dkim || spf),
            spf_aligned: of(spf),
            dkim_aligned: of(dkim),
            none: of(disp == "none"),
            quarantine: of(disp == "quarantine"),
            reject: of(disp == "reject"),
        }
    }

    #[test]
    fn totals_and_gap_filled_days() {
        let rows = [
            row("a.test", 20_000, "none", true, false, 6),
            row("a.test", 20_000, "reject", false, false, 2),
            row("a.test", 20_002, "quarantine", false, true, 2),
            row("b.test", 20_001, "none", true, true, 5),
        ];
        let o = overview(
            RangeView {
                since: None,
                until: None,
            },
            &rows,
            vec![],
            vec![],
            vec![],
        );
        assert_eq!(o.totals.messages, 15);
        assert_eq!(o.totals.dmarc_pass, 13);
        assert_eq!(o.totals.spf_aligned, 7);
        assert_eq!(o.totals.dkim_aligned, 11);
        assert_eq!(
            (o.totals.none, o.totals.quarantine, o.totals.reject),
            (11, 2, 2)
        );
        let a = &o.domains[0];
        assert_eq!(a.domain, "a.test");
        assert_eq!(a.totals.dmarc_pass_pct, Some(80.0));
        let dates: Vec<&str> = a.days.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2024-10-04", "2024-10-05", "2024-10-06"]);
        assert_eq!(a.days[1].messages, 0);
        assert_eq!(a.days[0].messages, 8);
        assert_eq!(a.days[0].bucket_days, 1);
        // Most messages first.
        assert_eq!(o.domains[1].domain, "b.test");
    }

    #[test]
    fn long_spans_bucket_by_week_then_year() {
        let rows = [
            row("a.test", 20_000, "none", true, false, 1),
            row("a.test", 20_006, "none", false, false, 2),
            row("a.test", 20_300, "reject", false, false, 4),
        ];
        let refs: Vec<&DailyRow> = rows.iter().collect();
        let (t, days) = series(&refs);
        assert_eq!(t.messages, 7);
        assert_eq!(days[0].bucket_days, 7);
        assert_eq!(days.len(), 300 / 7 + 1);
        assert_eq!((days[0].messages, days[0].dmarc_pass), (3, 1));
        assert_eq!(days.last().map(|d| d.reject), Some(4));
        let years = [
            row("a.test", 1, "none", true, true, 1),
            row("a.test", 20_000, "none", true, true, 1),
        ];
        let refs: Vec<&DailyRow> = years.iter().collect();
        let (_, days) = series(&refs);
        assert_eq!((days.len(), days[0].bucket_days), (19_999 / 365 + 1, 365));
        assert_eq!(days.iter().map(|d| d.messages).sum::<i64>(), 2);
        let bogus = [
            row("a.test", 0, "none", true, true, 1),
            row("a.test", 50_000, "none", true, true, 1),
        ];
        let refs: Vec<&DailyRow> = bogus.iter().collect();
        let (t, days) = series(&refs);
        assert_eq!(t.messages, 2, "totals keep everything");
        assert_eq!(days.len(), 121);
        assert_eq!(days.iter().map(|d| d.messages).sum::<i64>(), 1);
    }

    #[test]
    fn overrides_spelled_out() {
        let v = policy_views(vec![PolicyRow {
            domain: "a.test".into(),
            published: Some("reject".into()),
            pct: Some(100),
            disposition: "none".into(),
            reasons: serde_json::json!([{"kind": "forwarded", "comment": null},
                                        {"kind": "local_policy", "comment": "list"}]),
            messages: 3,
        }]);
        assert_eq!(v[0].overrides, ["forwarded", "local_policy: list"]);
        assert_eq!(
            (v[0].published.as_str(), v[0].applied.as_str()),
            ("reject", "none")
        );
    }
}
