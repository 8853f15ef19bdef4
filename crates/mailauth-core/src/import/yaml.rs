//! Rendering an imported [`Model`] as the YAML of its `domains:` entry.
//! Leaves the model to the parent module and merging the entry into an
//! existing file to `merge`.

use super::{Hosts, Model, SelectorModel};
use crate::record::Name;

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The entry of `origin`, its key indented by `indent` spaces.
pub fn render(origin: &Name, m: &Model, indent: usize) -> String {
    let i0 = " ".repeat(indent);
    let i1 = " ".repeat(indent + 2);
    let i2 = " ".repeat(indent + 4);
    let i3 = " ".repeat(indent + 6);
    if m == &Model::default() {
        // A domain that publishes nothing import can own.
        return format!("{i0}{}: {{}}\n", quote(origin.as_str()));
    }
    let mut out = format!("{i0}{}:\n", quote(origin.as_str()));
    if let Some(ttl) = m.ttl {
        out.push_str(&format!("{i1}ttl: {ttl}\n"));
    }
    if m.parked {
        out.push_str(&format!("{i1}parked: true\n"));
    }
    if let Some(s) = &m.spf {
        out.push_str(&format!("{i1}spf:\n"));
        let hosts = |name: &str, h: &Hosts, out: &mut String| {
            if h.itself {
                out.push_str(&format!("{i2}{name}: true\n"));
            } else if !h.names.is_empty() {
                out.push_str(&format!("{i2}{name}: {}\n", list(&h.names)));
            }
        };
        if !s.ip4.is_empty() {
            out.push_str(&format!("{i2}ip4: {}\n", list(&s.ip4)));
        }
        if !s.ip6.is_empty() {
            out.push_str(&format!("{i2}ip6: {}\n", list(&s.ip6)));
        }
        hosts("a", &s.a, &mut out);
        hosts("mx", &s.mx, &mut out);
        if !s.include.is_empty() {
            out.push_str(&format!("{i2}include: {}\n", list(&s.include)));
        }
        if !s.exists.is_empty() {
            out.push_str(&format!("{i2}exists: {}\n", list(&s.exists)));
        }
        if let Some(r) = &s.redirect {
            out.push_str(&format!("{i2}redirect: {}\n", quote(r)));
        }
        if let Some(a) = s.all {
            out.push_str(&format!("{i2}all: {a}\n"));
        }
    }
    if let Some(d) = &m.dmarc {
        out.push_str(&format!("{i1}dmarc:\n"));
        if let Some(p) = d.p {
            out.push_str(&format!("{i2}p: {}\n", p.as_str()));
        }
        if let Some(p) = d.sp {
            out.push_str(&format!("{i2}sp: {}\n", p.as_str()));
        }
        if let Some(p) = d.np {
            out.push_str(&format!("{i2}np: {}\n", p.as_str()));
        }
        if let Some(t) = d.t {
            out.push_str(&format!("{i2}t: {t}\n"));
        }
        if let Some(a) = d.adkim {
            out.push_str(&format!("{i2}adkim: {}\n", a.as_str()));
        }
        if let Some(a) = d.aspf {
            out.push_str(&format!("{i2}aspf: {}\n", a.as_str()));
        }
        if !d.rua.is_empty() {
            let v: Vec<String> = d.rua.iter().map(|u| u.to_string()).collect();
            out.push_str(&format!("{i2}rua: {}\n", list(&v)));
        }
        if !d.ruf.is_empty() {
            let v: Vec<String> = d.ruf.iter().map(|u| u.to_string()).collect();
            out.push_str(&format!("{i2}ruf: {}\n", list(&v)));
        }
        if !d.fo.is_empty() {
            let v: Vec<&str> = d.fo.iter().map(|f| f.as_str()).collect();
            out.push_str(&format!("{i2}fo: {}\n", quote(&v.join(":"))));
        }
        if let Some(p) = d.psd {
            out.push_str(&format!("{i2}psd: {}\n", p.as_str()));
        }
    }
    if !m.dkim.is_empty() {
        out.push_str(&format!("{i1}dkim:\n{i2}selectors:\n"));
        for (sel, s) in &m.dkim {
            out.push_str(&format!("{i2}- name: {}\n", quote(sel)));
            match s {
                SelectorModel::Cname(t) => out.push_str(&format!("{i3}cname: {}\n", quote(t))),
                SelectorModel::Key {
                    public_key,
                    ed25519,
                    testing,
                } => {
                    out.push_str(&format!("{i3}public_key: {}\n", quote(public_key)));
                    if *ed25519 {
                        out.push_str(&format!("{i3}key_type: ed25519\n"));
                    }
                    if *testing {
                        out.push_str(&format!("{i3}testing: true\n"));
                    }
                }
            }
        }
    }
    if let Some(sts) = &m.mta_sts {
        out.push_str(&format!(
            "{i1}mta_sts:\n{i2}id: {}\n{i2}mode: {}\n",
            quote(&sts.id),
            sts.mode
        ));
        if !sts.mx.is_empty() {
            out.push_str(&format!("{i2}mx: {}\n", list(&sts.mx)));
        }
        out.push_str(&format!("{i2}max_age: {}\n", sts.max_age));
    }
    if let Some(rua) = &m.tls_rpt {
        out.push_str(&format!("{i1}tls_rpt:\n{i2}rua: {}\n", list(rua)));
    }
    if !m.verbatim.is_empty() || !m.verbatim_dkim.is_empty() {
        out.push_str(&format!(
            "{i1}# Published exactly as written: the typed fields cannot say it (see docs/import.md).\n{i1}verbatim:\n"
        ));
        for key in ["spf", "dmarc", "mta_sts", "tls_rpt"] {
            if let Some((value, why)) = m.verbatim.get(key) {
                out.push_str(&format!("{i2}# {}\n", comment(why)));
                out.push_str(&format!("{i2}{key}: {}\n", quote(value)));
            }
        }
        if !m.verbatim_dkim.is_empty() {
            out.push_str(&format!("{i2}dkim:\n"));
            for (sel, (value, why)) in &m.verbatim_dkim {
                out.push_str(&format!("{i3}# {}\n", comment(why)));
                out.push_str(&format!("{i3}{}: {}\n", quote(sel), quote(value)));
            }
        }
    }
    out
}

/// A reason as one comment line (no control characters, no newline).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
