//! HTML rendering of the dashboard views: one self-contained page per view
//! (inline CSS, inline SVG charts, no script, no external resource), used
//! both for the static site and by the live server.
//!
//! Owns markup, charts and escaping. Every value that comes from a report
//! is attacker-controlled and goes through [`esc`]. Leaves the numbers to
//! [`super::model`] and file/HTTP handling to the callers.

use std::fmt::Write as _;

use super::attribution::Verdict;
use super::model::{DayPoint, DomainView, Overview, SourceView, Totals};
use super::text::{percent, thousands};
use crate::reports::store::{FailureRow, ReporterRow, TlsPolicyRow};

/// Okabe-Ito palette (colour-blind safe): pass, fail, and dispositions.
pub const PASS: &str = "#0072B2";
pub const FAIL: &str = "#D55E00";
pub const NONE: &str = "#56B4E9";
pub const QUARANTINE: &str = "#E69F00";
pub const REJECT: &str = "#D55E00";

/// Where links point: files of the static site, or the live server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Links {
    /// `index.html` and `domains/<file>.html`, relative.
    Static,
    /// `/` and `/domain/<name>`, with the filter as query string.
    Live {
        since: Option<String>,
        until: Option<String>,
    },
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL path segment or query value (RFC 3986
/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"` pass through).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Longest encoded domain kept whole in a file name: with `d-` and
/// `.html` well under the 255 bytes most file systems allow.
const DOMAIN_FILE_KEEP: usize = 160;

/// The static site's file name for a domain: injective, safe on every
/// file system and in a URL (`[a-z0-9.-]` kept, anything else `_XX`).
/// A long domain (a hostile report's policy domain can be any length)
/// keeps the first [`DOMAIN_FILE_KEEP`] bytes of its encoding, then `~`
/// and 32 hex digits of the SHA-256 of the whole domain: at most 205
/// bytes. Only such names contain `~`, so they never collide with a
/// short one.
pub fn domain_file(domain: &str) -> String {
    let mut enc = String::new();
    for b in domain.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' {
            enc.push(b as char);
        } else {
            let _ = write!(enc, "_{b:02X}");
        }
    }
    if enc.len() > DOMAIN_FILE_KEEP {
        let digest = ring::digest::digest(&ring::digest::SHA256, domain.as_bytes());
        // Cut between escapes, never inside one (all ASCII).
        let mut cut = DOMAIN_FILE_KEEP;
        while let Some(i) = enc[..cut].rfind('_').filter(|&i| i + 3 > cut) {
            cut = i;
        }
        enc.truncate(cut);
        enc.push('~');
        for b in &digest.as_ref()[..16] {
            let _ = write!(enc, "{b:02x}");
        }
    }
    format!("d-{enc}.html")
}

impl Links {
    fn home(&self, from_domain_page: bool) -> String {
        match self {
            Links::Static if from_domain_page => "../index.html".to_owned(),
            Links::Static => "index.html".to_owned(),
            Links::Live { .. } => format!("/{}", self.query(None)),
        }
    }

    fn domain(&self, domain: &str, from_domain_page: bool) -> String {
        match self {
            Links::Static if from_domain_page => domain_file(domain),
            Links::Static => format!("domains/{}", domain_file(domain)),
            Links::Live { .. } => format!("/domain/{}{}", url_encode(domain), self.query(None)),
        }
    }

    fn source(&self, domain: &str, ip: &str) -> Option<String> {
        match self {
            Links::Static => None,
            Links::Live { .. } => Some(format!(
                "/domain/{}{}",
                url_encode(domain),
                self.query(Some(ip))
            )),
        }
    }

    fn query(&self, source: Option<&str>) -> String {
        let Links::Live { since, until } = self else {
            return String::new();
        };
        let mut parts = Vec::new();
        if let Some(s) = since {
            parts.push(format!("since={}", url_encode(s)));
        }
        if let Some(u) = until {
            parts.push(format!("until={}", url_encode(u)));
        }
        if let Some(s) = source {
            parts.push(format!("source={}", url_encode(s)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

const CSS: &str = r#"
:root{--pass:#0072B2;--fail:#D55E00;--none:#56B4E9;--quar:#E69F00;--ink:#1d2330;--mute:#5b6475;--line:#e3e6ec;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;align-items:baseline;gap:18px;flex-wrap:wrap}
header a{color:#cfe3f5;text-decoration:none}
header h1{font-size:19px;margin:0;font-weight:600}
header .range{color:#b8c0cc;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:20px 28px 48px}
h2{font-size:17px;margin:28px 0 10px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:14px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px}
.card .k{color:var(--mute);font-size:13px}
.card .v{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin-top:14px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:14px}
@media (max-width:900px){.charts{grid-template-columns:1fr}}
table{width:100%;border-collapse:collapse;background:#fff;font-size:14px}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--mute);font-size:12.5px;text-transform:uppercase;letter-spacing:.03em;background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tbl{border:1px solid var(--line);border-radius:8px;overflow:auto}
.bar{display:inline-block;width:90px;height:9px;background:var(--fail);border-radius:2px;vertical-align:middle;margin-right:6px;overflow:hidden}
.bar i{display:block;height:100%;background:var(--pass)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12.5px;font-weight:600;white-space:nowrap}
.b-authorised{background:#d9ebf7;color:#004a75}
.b-unauthorised{background:#fbe3d6;color:#8a3300}
.b-unknown{background:#eceef2;color:#444b57}
.legend{display:flex;gap:14px;font-size:13px;color:var(--mute);margin:4px 0 6px;flex-wrap:wrap}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.empty{background:#fff;border:1px dashed #b9c0cc;border-radius:8px;padding:28px;text-align:center;color:var(--mute)}
.empty strong{display:block;color:var(--ink);font-size:17px;margin-bottom:6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.mute{color:var(--mute)}
body:has(#real-only:checked) #failing tr:has(td[data-class="forwarded"]){display:none}
form.filter{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin-top:6px}
form.filter label{font-size:12.5px;color:var(--mute);display:flex;flex-direction:column}
form.filter input{font:inherit;padding:4px 8px;border:1px solid #c7ccd6;border-radius:5px}
form.filter button{font:inherit;padding:5px 14px;border:0;border-radius:5px;background:var(--pass);color:#fff}
a{color:#005a8c}
svg text{font:11px system-ui,sans-serif;fill:#5b6475}
"#;

fn page(title: &str, subtitle: &str, home: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>{t} · mailauth</title><style>{CSS}</style></head><body>\
<header><h1><a href=\"{home}\">mailauth</a> · {t}</h1><span class=\"range\">{s}</span></header>\
<main>{body}</main></body></html>\n",
        t = esc(title),
        s = esc(subtitle),
        home = esc(home),
    )
}

fn range_text(since: &Option<String>, until: &Option<String>) -> String {
    match (since, until) {
        (None, None) => "all stored reports".to_owned(),
        (Some(s), None) => format!("reports since {s}"),
        (None, Some(u)) => format!("reports before {u}"),
        (Some(s), Some(u)) => format!("reports from {s} to {u}"),
    }
}

fn cards(out: &mut String, t: &Totals) {
    out.push_str("<section class=\"cards\">");
    for (k, v) in [
        ("Messages", thousands(t.messages)),
        ("DMARC pass", percent(t.dmarc_pass_pct)),
        ("SPF aligned", percent(t.spf_aligned_pct)),
        ("DKIM aligned", percent(t.dkim_aligned_pct)),
        ("Quarantined", thousands(t.quarantine)),
        ("Rejected", thousands(t.reject)),
    ] {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v\" data-kpi=\"{}\">{}</div></div>",
            esc(&k.to_ascii_lowercase().replace(' ', "-")),
            esc(&v)
        );
    }
    out.push_str("</section>");
}

fn nice_max(v: i64) -> i64 {
    if v <= 0 {
        return 1;
    }
    let mag = 10_i64.pow(v.ilog10());
    for m in [1_i64, 2, 5, 10] {
        if m.saturating_mul(mag) >= v {
            return m.saturating_mul(mag);
        }
    }
    mag.saturating_mul(10)
}

/// A stacked bar chart, one bar per day. `series` are (label, colour,
/// value of a day).
type Series<'a> = (&'a str, &'a str, fn(&DayPoint) -> i64);

fn bar_chart(out: &mut String, id: &str, title: &str, days: &[DayPoint], series: &[Series<'_>]) {
    let (w, h, left, bottom, top) = (620.0_f64, 220.0_f64, 52.0_f64, 24.0_f64, 8.0_f64);
    let _ = write!(
        out,
        "<div class=\"panel\"><strong>{}</strong><div class=\"legend\">",
        esc(title)
    );
    for (label, colour, _) in series {
        let _ = write!(
            out,
            "<span><i class=\"sw\" style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    out.push_str("</div>");
    let max = nice_max(
        days.iter()
            .map(|d| series.iter().fold(0i64, |n, s| n.saturating_add((s.2)(d))))
            .max()
            .unwrap_or(0),
    );
    let _ = write!(
        out,
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\">",
        esc(title)
    );
    let plot_h = h - bottom - top;
    let plot_w = w - left - 8.0;
    for i in 0..=4 {
        let y = top + plot_h - plot_h * f64::from(i) / 4.0;
        let v = i64::try_from(i128::from(max) * i128::from(i) / 4).unwrap_or(i64::MAX);
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ec\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - 8.0,
            left - 6.0,
            y + 4.0,
            thousands(v)
        );
    }
    let n = days.len().max(1) as f64;
    let slot = plot_w / n;
    let bw = (slot * 0.8).max(1.0);
    for (i, d) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bw) / 2.0;
        let mut y = top + plot_h;
        for (label, colour, f) in series {
            let v = f(d);
            if v <= 0 {
                continue;
            }
            let bh = plot_h * v as f64 / max as f64;
            y -= bh;
            let _ = write!(
                out,
                "<rect class=\"pt\" data-date=\"{}\" data-series=\"{}\" data-value=\"{v}\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{bw:.2}\" height=\"{bh:.2}\" fill=\"{colour}\"><title>{}: {} {}</title></rect>",
                esc(&d.date),
                esc(label),
                esc(&d.date),
                thousands(v),
                esc(label)
            );
        }
    }
    // Date labels: first, middle, last.
    let mut labelled = vec![0, days.len() / 2, days.len().saturating_sub(1)];
    labelled.dedup();
    let last = days.len().saturating_sub(1);
    for i in labelled {
        if let Some(d) = days.get(i) {
            // Edge labels are anchored inwards so they are not clipped.
            let (x, anchor) = match i {
                0 => (left, "start"),
                i if i == last => (w - 8.0, "end"),
                _ => (left + slot * i as f64 + slot / 2.0, "middle"),
            };
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                h - 6.0,
                esc(&d.date)
            );
        }
    }
    out.push_str("</svg></div>");
}

fn unit(days: &[DayPoint]) -> &'static str {
    match days.first().map_or(1, |d| d.bucket_days) {
        1 => "day",
        7 => "week",
        30 => "30 days",
        _ => "year (365 days)",
    }
}

fn charts(out: &mut String, days: &[DayPoint]) {
    out.push_str("<section class=\"charts\">");
    bar_chart(
        out,
        "chart-dmarc",
        &format!("DMARC result per {}", unit(days)),
        days,
        &[
            ("pass", PASS, |d| d.dmarc_pass),
            ("fail", FAIL, |d| d.messages.saturating_sub(d.dmarc_pass)),
        ],
    );
    bar_chart(
        out,
        "chart-disposition",
        &format!("Disposition applied per {}", unit(days)),
        days,
        &[
            ("none", NONE, |d| d.none),
            ("quarantine", QUARANTINE, |d| d.quarantine),
            ("reject", REJECT, |d| d.reject),
        ],
    );
    out.push_str("</section>");
}

fn pass_bar(p: Option<f64>) -> String {
    match p {
        Some(p) => format!(
            "<span style=\"white-space:nowrap\"><span class=\"bar\" title=\"{p:.1}% pass\"><i style=\"width:{p:.1}%\"></i></span>{}</span>",
            percent(Some(p))
        ),
        None => "-".to_owned(),
    }
}

const EMPTY: &str = "<div class=\"empty\" id=\"empty\"><strong>No reports yet</strong>\
Check that rua= in each domain's DMARC record points to a mailbox mailauth reads, \
then run <code>mailauth reports ingest</code>. Reports usually arrive once a day per receiver.</div>";

const EMPTY_RANGE: &str = "<div class=\"empty\" id=\"empty\"><strong>No aggregate reports in this range</strong>\
Widen the range, or check that reports are still arriving: receivers send them once a day.</div>";

fn reporters_table(out: &mut String, rows: &[ReporterRow]) {
    out.push_str("<h2>Reporters</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"mute\">No aggregate reports in this range.</p>");
        return;
    }
    out.push_str("<div class=\"tbl\"><table id=\"reporters\"><thead><tr><th>Reporter</th><th class=\"n\">Reports</th><th class=\"n\">Messages</th><th>Covering</th></tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            out,
            "<tr data-key=\"{}\"><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"mute\">{} – {}</td></tr>",
            esc(&r.key),
            esc(&r.org),
            if r.aliases.is_empty() {
                String::new()
            } else {
                format!(
                    " <span class=\"mute\">(also {})</span>",
                    esc(&r.aliases.join(", "))
                )
            },
            thousands(r.reports),
            thousands(r.messages),
            esc(&crate::clock::format_time(r.first_begin)[..10]),
            esc(&crate::clock::format_time(r.last_end)[..10]),
        );
    }
    out.push_str("</tbody></table></div>");
}

fn tls_table(out: &mut String, rows: &[TlsPolicyRow]) {
    out.push_str("<h2>TLS-RPT (SMTP TLS reporting)</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"mute\">No TLS reports in this range: publish a TLS-RPT record (<code>_smtp._tls</code>) with rua= to receive them.</p>");
        return;
    }
    out.push_str("<div class=\"tbl\"><table id=\"tls\"><thead><tr><th>Policy domain</th><th>Policy</th><th class=\"n\">Reports</th><th class=\"n\">Successful sessions</th><th class=\"n\">Failed sessions</th><th>Success</th><th>Failures by result type</th></tr></thead><tbody>");
    for t in rows {
        let types = t
            .failure_types
            .iter()
            .map(|(k, n)| format!("<code>{}</code> {}", esc(k), thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.policy_domain),
            esc(&t.policy_type),
            thousands(t.reports),
            thousands(t.successful),
            thousands(t.failed),
            pass_bar(super::model::pct(
                t.successful,
                t.successful.saturating_add(t.failed)
            )),
            if types.is_empty() {
                "-".to_owned()
            } else {
                types
            }
        );
    }
    out.push_str("</tbody></table></div>");
}

fn failures_table(out: &mut String, rows: &[FailureRow]) {
    out.push_str("<h2>Latest failure reports <span class=\"mute\" style=\"font-weight:400;font-size:13px\">(newest stored, whatever the range)</span></h2>");
    if rows.is_empty() {
        out.push_str(
            "<p class=\"mute\">No failure reports (ruf=) stored. Few receivers send them.</p>",
        );
        return;
    }
    out.push_str("<div class=\"tbl\"><table id=\"failures\"><thead><tr><th>Domain</th><th>Arrival</th><th>Source</th><th>Failure</th><th>Mail from</th><th>Subject</th><th>Reporter</th></tr></thead><tbody>");
    let o = |s: &Option<String>| esc(s.as_deref().unwrap_or("-"));
    for f in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.reported_domain),
            o(&f.arrival_date),
            o(&f.source_ip),
            match &f.arc {
                Some(a) => format!(
                    "{}<div class=\"mute\" style=\"font-size:12px\">forwarding evidence: {}</div>",
                    o(&f.auth_failure),
                    esc(a)
                ),
                None => o(&f.auth_failure),
            },
            o(&f.original_mail_from),
            o(&f.original_subject),
            o(&f.reporter),
        );
    }
    out.push_str("</tbody></table></div>");
}

/// The overview page.
pub fn overview(o: &Overview, links: &Links) -> String {
    let mut b = String::new();
    let ranged = o.range.since.is_some() || o.range.until.is_some();
    if o.is_empty() && !ranged {
        b.push_str(EMPTY);
        return page(
            "Overview",
            &range_text(&o.range.since, &o.range.until),
            &links.home(false),
            &b,
        );
    }
    filter_form(&mut b, links, "/", None);
    if o.domains.is_empty() {
        b.push_str(EMPTY_RANGE);
        reporters_table(&mut b, &o.reporters);
        tls_table(&mut b, &o.tls);
        failures_table(&mut b, &o.failures);
        return page(
            "Overview",
            &range_text(&o.range.since, &o.range.until),
            &links.home(false),
            &b,
        );
    }
    cards(&mut b, &o.totals);
    charts(&mut b, &o.days);
    b.push_str("<h2>Domains</h2><div class=\"tbl\"><table id=\"domains\"><thead><tr><th>Domain</th><th class=\"n\">Messages</th><th>DMARC pass</th><th class=\"n\">SPF aligned</th><th class=\"n\">DKIM aligned</th><th class=\"n\">Quarantined</th><th class=\"n\">Rejected</th></tr></thead><tbody>");
    for d in &o.domains {
        let _ = write!(
            b,
            "<tr data-domain=\"{}\"><td><a href=\"{}\">{}</a></td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&d.domain),
            esc(&links.domain(&d.domain, false)),
            esc(&d.domain),
            thousands(d.totals.messages),
            pass_bar(d.totals.dmarc_pass_pct),
            percent(d.totals.spf_aligned_pct),
            percent(d.totals.dkim_aligned_pct),
            thousands(d.totals.quarantine),
            thousands(d.totals.reject),
        );
    }
    b.push_str("</tbody></table></div>");
    reporters_table(&mut b, &o.reporters);
    tls_table(&mut b, &o.tls);
    failures_table(&mut b, &o.failures);
    page(
        "Overview",
        &range_text(&o.range.since, &o.range.until),
        &links.home(false),
        &b,
    )
}

fn filter_form(out: &mut String, links: &Links, action: &str, source: Option<&str>) {
    let Links::Live { since, until } = links else {
        return;
    };
    let _ = write!(
        out,
        "<form class=\"filter\" method=\"get\" action=\"{}\"><label>Since<input name=\"since\" placeholder=\"30d or 2026-01-31\" value=\"{}\"></label><label>Until<input name=\"until\" placeholder=\"2026-02-28\" value=\"{}\"></label>",
        esc(action),
        esc(since.as_deref().unwrap_or("")),
        esc(until.as_deref().unwrap_or(""))
    );
    if action != "/" {
        let _ = write!(
            out,
            "<label>Source IP<input name=\"source\" value=\"{}\"></label>",
            esc(source.unwrap_or(""))
        );
    }
    out.push_str("<button type=\"submit\">Apply</button></form>");
}

fn verdict_badge(v: Verdict) -> String {
    let (sym, text) = match v {
        Verdict::Authorised => ("✓", "authorised"),
        Verdict::Unauthorised => ("✗", "not authorised"),
        Verdict::Unknown => ("?", "unknown"),
    };
    format!("<span class=\"badge b-{}\">{sym} {text}</span>", v.as_str())
}

/// Service name with its category and how it was identified, or the
/// unknown source's group (PTR organisation domain).
fn service_cell(s: &SourceView) -> String {
    let id = &s.identity;
    match (&id.service, id.category) {
        (Some(name), Some(c)) => format!(
            "{}<div class=\"mute\" style=\"font-size:12px\">{} · by {}{}</div>",
            esc(name),
            esc(c.as_str()),
            esc(id.method.as_str()),
            id.evidence
                .as_deref()
                .map(|e| format!(" <code>{}</code>", esc(e)))
                .unwrap_or_default()
        ),
        _ => format!(
            "<span class=\"mute\">unknown</span><div class=\"mute\" style=\"font-size:12px\">{}</div>",
            esc(id.group.as_deref().unwrap_or("-"))
        ),
    }
}

fn class_cell(s: &SourceView) -> String {
    let c = &s.classification;
    let mut out = esc(c.class.as_str());
    for e in &c.evidence {
        let _ = write!(
            out,
            "<div class=\"mute\" style=\"font-size:12px\">{}</div>",
            esc(e)
        );
    }
    out
}

/// Who sends as the domain: identified services, unknown groups and the
/// failing volume by class.
fn senders_section(out: &mut String, v: &super::model::SendersView) {
    out.push_str("<h2>Sources by service</h2>");
    if v.sources == 0 {
        out.push_str("<p class=\"mute\">No aggregate data in this range.</p>");
        return;
    }
    let _ = write!(
        out,
        "<p id=\"senders-summary\">{} of {} messages ({}) from identified services{}. Failing: <b>{}</b> forwarded (does not block p=reject), <b>{}</b> misconfigured own services, <b>{}</b> suspicious — <b id=\"real-failures\">{}</b> real failures.</p>",
        thousands(v.identified_messages),
        thousands(v.messages),
        esc(&crate::reports::dashboard::text::percent(v.identified_pct)),
        if v.truncated {
            " (top sources only)"
        } else {
            ""
        },
        thousands(v.fail_forwarded),
        thousands(v.fail_misconfigured),
        thousands(v.fail_suspicious),
        thousands(v.real_failures),
    );
    out.push_str("<div class=\"tbl\"><table id=\"services\"><thead><tr><th>Service</th><th>Category</th><th>Identified by</th><th class=\"n\">Sources</th><th class=\"n\">Messages</th><th>DMARC pass</th></tr></thead><tbody>");
    for s in &v.services {
        let _ = write!(
            out,
            "<tr data-service=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&s.id),
            esc(&s.service),
            esc(s.category.as_str()),
            esc(&s.methods.join(", ")),
            thousands(s.sources),
            thousands(s.messages),
            pass_bar(s.dmarc_pass_pct),
        );
    }
    for u in &v.unknown {
        let _ = write!(
            out,
            "<tr data-service=\"\"><td class=\"mute\">unknown: {}</td><td>-</td><td>-</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&u.group),
            thousands(u.sources),
            thousands(u.messages),
            pass_bar(super::model::pct(u.messages - u.dmarc_fail, u.messages)),
        );
    }
    out.push_str("</tbody></table></div>");
}

fn sources_table(out: &mut String, id: &str, domain: &str, rows: &[SourceView], links: &Links) {
    let _ = write!(
        out,
        "<div class=\"tbl\"><table id=\"{id}\"><thead><tr><th>Source IP</th><th>Reverse DNS</th><th class=\"n\">Messages</th><th>DMARC pass</th><th class=\"n\">Failing</th><th>Service</th><th>Class</th><th>Authorised by config</th><th>SPF via</th><th>DKIM signers</th><th>Reporters</th></tr></thead><tbody>"
    );
    for s in rows {
        let ip = match links.source(domain, &s.source_ip) {
            Some(href) => format!("<a href=\"{}\">{}</a>", esc(&href), esc(&s.source_ip)),
            None => esc(&s.source_ip),
        };
        let spf_via = match &s.attribution.spf_mechanism {
            Some(m) => format!("<code>{}</code>", esc(m)),
            None if s.spf_reported.is_empty() => "-".to_owned(),
            None => format!(
                "<span class=\"mute\" title=\"as reported\">{}</span>",
                esc(&s.spf_reported.join(", "))
            ),
        };
        let _ = write!(
            out,
            "<tr data-ip=\"{}\" data-verdict=\"{}\"><td class=\"mono\">{ip}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"svc\">{}</td><td data-class=\"{}\">{}</td><td>{}<div class=\"mute\" style=\"font-size:12px\">{}</div></td><td>{spf_via}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.source_ip),
            s.attribution.verdict.as_str(),
            esc(s.reverse_dns.as_deref().unwrap_or("-")),
            thousands(s.messages),
            pass_bar(s.dmarc_pass_pct),
            thousands(s.dmarc_fail),
            service_cell(s),
            s.classification.class.as_str(),
            class_cell(s),
            verdict_badge(s.attribution.verdict),
            esc(s.attribution.basis),
            if s.dkim_signers.is_empty() {
                "-".to_owned()
            } else {
                s.dkim_signers
                    .iter()
                    .map(|d| format!("<code>{}</code>", esc(d)))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            esc(&s.reporters.join(", ")),
        );
    }
    out.push_str("</tbody></table></div>");
}

/// One domain's page.
pub fn domain(d: &DomainView, links: &Links) -> String {
    let mut b = String::new();
    let live_action = format!("/domain/{}", url_encode(&d.domain));
    filter_form(&mut b, links, &live_action, d.source.as_deref());
    if let Some(s) = &d.source {
        let _ = write!(b, "<p>Showing source <code>{}</code> only.</p>", esc(s));
    }
    if d.is_empty() {
        b.push_str(
            if d.range.since.is_some() || d.range.until.is_some() || d.source.is_some() {
                EMPTY_RANGE
            } else {
                EMPTY
            },
        );
    } else {
        cards(&mut b, &d.totals);
        charts(&mut b, &d.days);
        senders_section(&mut b, &d.senders);
        b.push_str("<h2>Top sending sources</h2>");
        b.push_str("<p class=\"mute\">“Authorised by config” evaluates each mechanism of the SPF record in your configuration against the source, and counts aligned DKIM signatures; a source sending as your domain without either stands out here.</p>");
        sources_table(&mut b, "sources", &d.domain, &d.sources, links);
        b.push_str("<h2>Failing sources</h2>");
        if d.failing_sources.is_empty() {
            b.push_str("<p class=\"mute\">Every reported message passed DMARC.</p>");
        } else {
            // A filter without script: the checkbox hides forwarded rows
            // (CSS `:has`), leaving the real failures.
            b.push_str("<p><label><input type=\"checkbox\" id=\"real-only\"> Real failures only (hide forwarding and mailing lists)</label></p>");
            sources_table(&mut b, "failing", &d.domain, &d.failing_sources, links);
        }
        b.push_str("<h2>Policy published vs applied</h2>");
        b.push_str("<div class=\"tbl\"><table id=\"policy\"><thead><tr><th>Published p=</th><th class=\"n\">pct</th><th>Applied</th><th>Overrides</th><th class=\"n\">Messages</th></tr></thead><tbody>");
        for p in &d.policy {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&p.published),
                p.pct.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                esc(&p.applied),
                if p.overrides.is_empty() {
                    "-".to_owned()
                } else {
                    esc(&p.overrides.join(", "))
                },
                thousands(p.messages)
            );
        }
        b.push_str("</tbody></table></div>");
        reporters_table(&mut b, &d.reporters);
    }
    tls_table(&mut b, &d.tls);
    failures_table(&mut b, &d.failures);
    page(
        &d.domain,
        &range_text(&d.range.since, &d.range.until),
        &links.home(true),
        &b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(url_encode("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn domain_files_are_injective_and_safe() {
        assert_eq!(domain_file("example.com"), "d-example.com.html");
        assert_eq!(domain_file("../x"), "d-.._2Fx.html");
        assert_ne!(domain_file("A.test"), domain_file("a.test"));
        assert_ne!(domain_file("_41.test"), domain_file("A.test"));
        // Long domains: bounded, still distinct, never cut inside an escape.
        let long = "a".repeat(300);
        let f = domain_file(&long);
        assert!(f.len() <= 205 && f.contains('~'), "{f}");
        assert_ne!(f, domain_file(&format!("{long}b")));
        assert_eq!(f, domain_file(&long));
        let f = domain_file(&"A".repeat(300));
        assert!(f.len() <= 205, "{f}");
        let kept = &f[2..f.find('~').expect("hashed")];
        assert!(
            kept.len().is_multiple_of(3) && kept.starts_with("_41"),
            "{f}"
        );
        assert!(!domain_file(&"x".repeat(DOMAIN_FILE_KEEP)).contains('~'));
    }

    #[test]
    fn axis_maximum() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(13), 20);
        assert_eq!(nice_max(4_100), 5_000);
        assert_eq!(nice_max(1_000), 1_000);
        assert_eq!(nice_max(i64::MAX), i64::MAX);
    }
}
