//! Rendering of validation results: a text report grouped by domain (one
//! line per finding, its fix under it, supporting details indented), a
//! Markdown report (a table per domain, for a pull request or an issue) and
//! a JSON document. Pure: no I/O.

use serde::Serialize;

use super::{DomainReport, Severity};

/// The JSON document `validate --json` prints.
#[derive(schemars::JsonSchema, Serialize)]
pub struct JsonReport<'a> {
    pub domains: &'a [DomainReport],
    pub summary: Summary,
}

/// Domain counts by their worst finding.
#[derive(schemars::JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub domains: usize,
    pub pass: usize,
    pub info: usize,
    pub warn: usize,
    pub temperror: usize,
    pub fail: usize,
}

pub fn summary(reports: &[DomainReport]) -> Summary {
    let mut s = Summary {
        domains: reports.len(),
        ..Summary::default()
    };
    for r in reports {
        match r.status {
            Severity::Pass => s.pass += 1,
            Severity::Info => s.info += 1,
            Severity::Warn => s.warn += 1,
            Severity::TempError => s.temperror += 1,
            Severity::Fail => s.fail += 1,
        }
    }
    s
}

pub fn render_json(reports: &[DomainReport]) -> String {
    let doc = JsonReport {
        domains: reports,
        summary: summary(reports),
    };
    // Findings quote published records, which are anyone's text.
    crate::output::json_for_terminal(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        + "\n"
}

fn label(s: Severity, color: bool) -> String {
    let (text, code) = match s {
        Severity::Pass => ("PASS", "32"),
        Severity::Info => ("INFO", "36"),
        Severity::Warn => ("WARN", "33"),
        Severity::TempError => ("TEMP", "35"),
        Severity::Fail => ("FAIL", "31"),
    };
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The text report. With `verbose`, details (the SPF tree, per-server
/// answers) are shown for passing findings too; they are always shown for
/// warnings and failures.
pub fn render_text(reports: &[DomainReport], color: bool, verbose: bool) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!("{} [{}]\n", r.domain, r.status));
        for f in &r.findings {
            out.push_str(&format!(
                "  {} {:<11} {}\n",
                label(f.severity, color),
                f.check.as_str(),
                printable(&f.message)
            ));
            if verbose || f.severity >= Severity::Warn || f.check == super::Check::Spf {
                for d in &f.details {
                    out.push_str(&format!("{:18}{}\n", "", printable(d)));
                }
            }
            if let Some(fix) = &f.fix {
                out.push_str(&format!("{:18}fix: {}\n", "", printable(fix)));
            }
        }
        out.push('\n');
    }
    let s = summary(reports);
    out.push_str(&format!(
        "{} domain(s): {} pass, {} info, {} warn, {} temperror, {} fail\n",
        s.domains, s.pass, s.info, s.warn, s.temperror, s.fail
    ));
    out
}

/// The Markdown report: a heading with the counts, then per domain a table
/// of its findings with their fixes. Details are left to text and JSON
/// (`--verbose`, `--json`): a comment stays short.
pub fn render_markdown(reports: &[DomainReport]) -> String {
    let s = summary(reports);
    let mut out = format!(
        "### mailauth validate: {} domain(s): {} pass, {} info, {} warn, {} temperror, {} fail\n",
        s.domains, s.pass, s.info, s.warn, s.temperror, s.fail
    );
    for r in reports {
        out.push_str(&format!(
            "\n#### `{}`: {}\n\n| | check | finding | fix |\n|---|---|---|---|\n",
            markdown_cell(r.domain.as_str()).replace('`', "'"),
            label(r.status, false)
        ));
        for f in &r.findings {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                label(f.severity, false),
                f.check.as_str(),
                markdown_cell(&f.message),
                f.fix.as_deref().map(markdown_cell).unwrap_or_default()
            ));
        }
    }
    out
}

/// `s` as the text of a Markdown table cell: no control characters (as on
/// the terminal), no line break or `|` that would end the cell, and no `<`,
/// `>` or `&` a renderer would take for HTML (published records are anyone's
/// text).
pub fn markdown_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in printable(s).chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` with control characters (from published records, which anyone can
/// fill) replaced, so that none reaches the terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Finding};
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(
            markdown_cell("a|b <script>&\n\u{1b}[31m"),
            "a\\|b &lt;script&gt;&amp;\u{fffd}\u{fffd}[31m"
        );
        let reports = vec![DomainReport::new(
            "a.test".into(),
            vec![Finding::fail(Check::Dmarc, "no | record", "publish it")],
        )];
        let md = render_markdown(&reports);
        assert!(
            md.contains("| FAIL | dmarc | no \\| record | publish it |"),
            "{md}"
        );
    }

    #[test]
    fn text_groups_by_domain_with_fixes() {
        let reports = vec![DomainReport::new(
            "a.test".into(),
            vec![
                Finding::pass(Check::Spf, "one record"),
                Finding::fail(Check::Dmarc, "no record", "publish it"),
            ],
        )];
        let text = render_text(&reports, false, false);
        assert!(text.starts_with("a.test [fail]\n"), "{text}");
        assert!(text.contains("  PASS spf         one record\n"), "{text}");
        assert!(text.contains("  FAIL dmarc       no record\n"), "{text}");
        assert!(text.contains("fix: publish it\n"), "{text}");
        assert!(text.ends_with("1 domain(s): 0 pass, 0 info, 0 warn, 0 temperror, 1 fail\n"));
        let json: serde_json::Value = serde_json::from_str(&render_json(&reports)).unwrap();
        assert_eq!(json["domains"][0]["findings"][1]["severity"], "fail");
        assert_eq!(json["domains"][0]["findings"][1]["fix"], "publish it");
        assert_eq!(json["summary"]["fail"], 1);
    }

    #[test]
    fn text_is_coloured_only_when_asked() {
        let reports = vec![DomainReport::new(
            "a.test".into(),
            vec![Finding::fail(Check::Dmarc, "no record", "publish it")],
        )];
        let plain = render_text(&reports, false, false);
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let coloured = render_text(&reports, true, false);
        assert!(coloured.contains("\u{1b}["), "{coloured}");
        assert!(coloured.contains("FAIL"), "{coloured}");
    }
}
