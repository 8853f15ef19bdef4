//! The checklist rendered four ways: terminal text, Markdown (for a ticket
//! or pull request), a standalone HTML page, and JSON. Pure: no I/O; the
//! model is `checklist`'s.

use std::fmt::Write as _;

use super::{Checklist, Item, NextAction, Status, plan_lines};

fn mark(s: Status) -> &'static str {
    match s {
        Status::Done => "[x]",
        Status::Open => "[ ]",
        Status::Blocked => "[-]",
        Status::NotApplicable => "[~]",
    }
}

fn headline(c: &Checklist) -> String {
    let done = c.items.iter().filter(|i| i.status == Status::Done).count();
    let applicable = c
        .items
        .iter()
        .filter(|i| i.status != Status::NotApplicable)
        .count();
    let kind = if c.parked {
        "parked domain"
    } else if c.in_config {
        "in the config"
    } else {
        "not in the config"
    };
    format!("{} ({kind}): {done} of {applicable} items done", c.domain)
}

fn next_line(c: &Checklist) -> String {
    match c.next_step.and_then(|n| c.item(n)) {
        Some(i) => format!("Next step: item {}: {}", i.number, i.title),
        None if c
            .items
            .iter()
            .all(|i| matches!(i.status, Status::Done | Status::NotApplicable)) =>
        {
            "Nothing left to do.".to_string()
        }
        None => "Next step: none can be taken yet (see the blocked items).".to_string(),
    }
}

/// The terminal view.
pub fn render_text(c: &Checklist) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(c));
    let _ = writeln!(out, "{}\n", next_line(c));
    for i in &c.items {
        let _ = writeln!(
            out,
            "{} {:>2}. {} [{}]",
            mark(i.status),
            i.number,
            i.title,
            i.status.as_str()
        );
        for e in &i.evidence {
            let _ = writeln!(out, "        {e}");
        }
        if let Some(why) = &i.why {
            let _ = writeln!(out, "        why: {why}");
        }
        if let Some(n) = &i.next {
            text_action(n, &mut out);
        }
    }
    out
}

fn text_action(n: &NextAction, out: &mut String) {
    match n {
        NextAction::Config(p) => {
            let _ = writeln!(out, "        next: {} — change mailauth.yaml:", p.summary);
            for l in p.yaml.lines() {
                let _ = writeln!(out, "            {l}");
            }
            text_plan(p, out, "        ");
        }
        NextAction::Apply { text } => {
            let _ = writeln!(out, "        next: {text}");
        }
        NextAction::Manual { text } => {
            let _ = writeln!(out, "        next: {text}");
        }
        NextAction::Wait { text } => {
            let _ = writeln!(out, "        next: wait; {text}");
        }
    }
}

fn text_plan(p: &super::ProposedChange, out: &mut String, pad: &str) {
    if let Some(e) = &p.error {
        let _ = writeln!(out, "{pad}plan: cannot be computed: {e}");
    } else if p.plan.is_empty() {
        let _ = writeln!(out, "{pad}plan: no record changes");
    } else {
        let _ = writeln!(out, "{pad}plan:");
        for l in plan_lines(&p.plan) {
            let _ = writeln!(out, "{pad}    {l}");
        }
    }
    if let Some(note) = &p.note {
        let _ = writeln!(out, "{pad}note: {note}");
    }
}

/// Markdown for a ticket or pull request: a task list, then the next
/// step's YAML and plan in fenced blocks.
pub fn render_markdown(c: &Checklist) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### mailauth checklist: {}\n", headline(c));
    let _ = writeln!(out, "**{}**\n", next_line(c));
    for i in &c.items {
        match i.status {
            Status::NotApplicable => {
                let _ = writeln!(out, "- ~~{}. {}~~ _(n/a)_", i.number, md(&i.title));
            }
            s => {
                let checked = if s == Status::Done { "x" } else { " " };
                let tag = if s == Status::Done {
                    String::new()
                } else {
                    format!(" _({})_", s.as_str())
                };
                let _ = writeln!(out, "- [{checked}] **{}. {}**{tag}", i.number, md(&i.title));
            }
        }
        for e in &i.evidence {
            let _ = writeln!(out, "  - {}", md(e));
        }
        if let Some(why) = &i.why {
            let _ = writeln!(out, "  - why: {}", md(why));
        }
        if let Some(n) = &i.next {
            md_action(i, n, &mut out);
        }
    }
    out
}

fn md_action(_i: &Item, n: &NextAction, out: &mut String) {
    match n {
        NextAction::Config(p) => {
            let _ = writeln!(
                out,
                "  - next: {} — change `mailauth.yaml`:\n\n    ```yaml",
                md(&p.summary)
            );
            for l in p.yaml.lines() {
                let _ = writeln!(out, "    {l}");
            }
            let _ = writeln!(out, "    ```\n");
            if let Some(e) = &p.error {
                let _ = writeln!(out, "    plan: cannot be computed: {}\n", md(e));
            } else if p.plan.is_empty() {
                let _ = writeln!(out, "    plan: no record changes\n");
            } else {
                let _ = writeln!(out, "    plan:\n\n    ```diff");
                for l in plan_lines(&p.plan) {
                    let _ = writeln!(out, "    {l}");
                }
                let _ = writeln!(out, "    ```\n");
            }
            if let Some(note) = &p.note {
                let _ = writeln!(out, "    note: {}\n", md(note));
            }
        }
        NextAction::Apply { text } | NextAction::Manual { text } => {
            let _ = writeln!(out, "  - next: {}", md(text));
        }
        NextAction::Wait { text } => {
            let _ = writeln!(out, "  - next: wait; {}", md(text));
        }
    }
}

/// Escapes what Markdown would otherwise read as markup, outside code
/// spans (text between backticks is kept as is).
fn md(s: &str) -> String {
    let mut out = String::new();
    for (n, part) in s.split('`').enumerate() {
        if n > 0 {
            out.push('`');
        }
        if n % 2 == 1 {
            out.push_str(part);
            continue;
        }
        for ch in part.chars() {
            if matches!(ch, '*' | '_' | '<' | '>' | '[' | ']' | '|' | '\\') {
                out.push('\\');
            }
            out.push(ch);
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone HTML page (no scripts, no external resources).
pub fn render_html(c: &Checklist) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mailauth checklist: {d}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\nli{{margin:.6rem 0}}\n.done{{color:#1a7f37}}.open{{color:#9a6700}}.blocked{{color:#cf222e}}.n-a{{color:#6e7781}}\npre{{background:#f6f8fa;padding:.6rem;overflow-x:auto}}\n</style>\n</head>\n<body>\n<h1>mailauth checklist: {d}</h1>\n<p>{h}</p>\n<p><strong>{n}</strong></p>\n<ol>\n",
        d = html_escape(&c.domain),
        h = html_escape(&headline(c)),
        n = html_escape(&next_line(c)),
    );
    for i in &c.items {
        let class = match i.status {
            Status::NotApplicable => "n-a",
            s => s.as_str(),
        };
        let _ = write!(
            out,
            "<li value=\"{}\"><span class=\"{class}\">[{}]</span> <strong>{}</strong>",
            i.number,
            i.status.as_str(),
            html_escape(&i.title)
        );
        if !i.evidence.is_empty() || i.why.is_some() {
            out.push_str("\n<ul>\n");
            for e in &i.evidence {
                let _ = writeln!(out, "<li>{}</li>", html_escape(e));
            }
            if let Some(w) = &i.why {
                let _ = writeln!(out, "<li>why: {}</li>", html_escape(w));
            }
            out.push_str("</ul>");
        }
        if let Some(n) = &i.next {
            let mut text = String::new();
            text_action(n, &mut text);
            let _ = write!(out, "\n<pre>{}</pre>", html_escape(text.trim_end()));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ol>\n</body>\n</html>\n");
    out
}

/// The checklist as JSON.
pub fn render_json(c: &Checklist) -> String {
    // Live records and reports' text are anyone's.
    crate::output::json_for_terminal(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escapes_outside_code_spans() {
        assert_eq!(md("a_b `x_y` <c>"), "a\\_b `x_y` \\<c\\>");
        assert_eq!(
            html_escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
