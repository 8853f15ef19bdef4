//! Plans: for each zone, the changes that take what the provider serves to
//! what the config declares, the conflicts a human must look at, and the
//! safety limits. Computing a plan only reads; rendering it (text, Markdown,
//! JSON) has no side effects. The plan file is the JSON form and holds
//! public data only.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::diff::{Change, Conflict, Desired, diff};
use crate::provider::{Fetched, Provider};
use crate::record::{Name, RData, RType, RecordSet};

/// The plan file's format. 2: key steps apply takes are `keys` (not notes),
/// and their DKIM records are changes.
pub const FORMAT: u32 = 2;

/// A whole plan: one entry per (zone, provider).
#[derive(schemars::JsonSchema, Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub created: String,
    pub zones: Vec<ZonePlan>,
}

#[derive(schemars::JsonSchema, Clone, Debug, Serialize, Deserialize)]
pub struct ZonePlan {
    pub zone: String,
    pub provider: String,
    /// The provider's version token of the zone as read for this plan.
    pub version: String,
    pub exists: bool,
    pub changes: Vec<ChangeJson>,
    #[serde(default)]
    pub conflicts: Vec<Conflict>,
    /// Other things the plan wants a human to know (key steps still
    /// waiting, hints).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Key lifecycle steps apply takes for this domain, in order; the DNS
    /// records they add or remove are among `changes`.
    #[serde(default)]
    pub keys: Vec<crate::keys::lifecycle::Transition>,
    /// Set when more owned RRsets would be deleted than allowed.
    #[serde(default)]
    pub needs_force: Option<String>,
    /// The zone could not be planned.
    #[serde(default)]
    pub error: Option<String>,
    /// The domain's flattened SPF as planned (its records are among
    /// `changes`): apply verifies against it and records its upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf_flattening: Option<crate::spf::flatten::Flattened>,
}

impl ZonePlan {
    /// Apply would create the zone itself (it was not found): shown on its
    /// own line, so that a typo in a zone-file `dir:` or a zone name is
    /// seen before apply writes a new zone.
    pub fn creates_zone(&self) -> bool {
        !self.exists && self.error.is_none() && !self.changes.is_empty()
    }

    pub fn changes(&self) -> Result<Vec<Change>, String> {
        let origin = Name::parse(&self.zone)?;
        self.changes.iter().map(|c| c.to_change(&origin)).collect()
    }

    pub fn fetched_stub(&self) -> Result<Fetched, String> {
        Ok(Fetched {
            zone: crate::record::Zone::new(Name::parse(&self.zone)?),
            version: self.version.clone(),
            exists: self.exists,
        })
    }
}

/// One RRset in JSON: data in master-file presentation form.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetJson {
    pub ttl: u32,
    pub data: Vec<String>,
}

#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeJson {
    pub action: Action,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old: Option<SetJson>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new: Option<SetJson>,
    /// Part of `new` is only known at apply (the key of a `generate` step):
    /// it shows as `(known after apply)` and apply fills it in.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub known_after_apply: bool,
}

#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

fn set_json(s: &RecordSet) -> SetJson {
    SetJson {
        ttl: s.ttl,
        data: s.data.iter().map(RData::presentation).collect(),
    }
}

fn set_from_json(
    name: &Name,
    rtype: &str,
    s: &SetJson,
    origin: &Name,
) -> Result<RecordSet, String> {
    // Reuse the master-file reader: one line per record, absolute owner.
    let mut text = String::new();
    for d in &s.data {
        let _ = writeln!(text, "{} {} IN {} {}", name.fqdn(), s.ttl, rtype, d);
    }
    let parsed = crate::masterfile::parse(&text, origin)
        .map_err(|e| format!("plan file: {name} {rtype}: {e}"))?;
    let zone = parsed.zone(origin);
    zone.get(name, &RType::parse(rtype))
        .cloned()
        .ok_or_else(|| format!("plan file: {name} {rtype}: no data"))
}

impl ChangeJson {
    pub fn from_change(c: &Change) -> ChangeJson {
        let (action, old, new) = match c {
            Change::Create { new } => (Action::Create, None, Some(set_json(new))),
            Change::Update { old, new } => {
                (Action::Update, Some(set_json(old)), Some(set_json(new)))
            }
            Change::Delete { old } => (Action::Delete, Some(set_json(old)), None),
        };
        let known_after_apply = new.as_ref().is_some_and(|n| {
            n.data
                .iter()
                .any(|d| d.contains(crate::desired::KNOWN_AFTER_APPLY))
        });
        ChangeJson {
            action,
            name: c.name().to_string(),
            rtype: c.rtype().to_string(),
            old,
            new,
            known_after_apply,
        }
    }

    pub fn to_change(&self, origin: &Name) -> Result<Change, String> {
        let name = Name::parse(&self.name)?;
        let get = |s: &Option<SetJson>, which: &str| {
            s.as_ref()
                .ok_or_else(|| {
                    format!("plan file: {} {}: `{which}` missing", self.name, self.rtype)
                })
                .and_then(|s| set_from_json(&name, &self.rtype, s, origin))
        };
        Ok(match self.action {
            Action::Create => Change::Create {
                new: get(&self.new, "new")?,
            },
            Action::Update => Change::Update {
                old: get(&self.old, "old")?,
                new: get(&self.new, "new")?,
            },
            Action::Delete => Change::Delete {
                old: get(&self.old, "old")?,
            },
        })
    }
}

/// Plans one zone against one provider.
pub fn plan_zone(provider: &dyn Provider, desired: &Desired, max_deletes: usize) -> ZonePlan {
    let mut zp = ZonePlan {
        zone: desired.origin.to_string(),
        provider: provider.id(),
        version: String::new(),
        exists: false,
        changes: Vec::new(),
        conflicts: Vec::new(),
        notes: Vec::new(),
        keys: Vec::new(),
        needs_force: None,
        error: None,
        spf_flattening: None,
    };
    let fetched = match provider.fetch(&desired.origin) {
        Ok(f) => f,
        Err(e) => {
            zp.error = Some(e.to_string());
            return zp;
        }
    };
    zp.version = fetched.version.clone();
    zp.exists = fetched.exists;
    let d = diff(&fetched.zone, desired);
    if let Err(e) = check_capabilities(provider, &d.changes) {
        zp.error = Some(e);
        return zp;
    }
    let deletes = d
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Delete { .. }))
        .count();
    if deletes > max_deletes {
        zp.needs_force = Some(format!(
            "this plan deletes {deletes} RRsets mailauth manages in {} (limit {max_deletes}); apply needs --force",
            desired.origin
        ));
    }
    zp.changes = d.changes.iter().map(ChangeJson::from_change).collect();
    zp.conflicts = d.conflicts;
    zp
}

/// Unsupported records fail at plan time, not mid-apply.
fn check_capabilities(provider: &dyn Provider, changes: &[Change]) -> Result<(), String> {
    let caps = provider.capabilities();
    for c in changes {
        let (Change::Create { new } | Change::Update { new, .. }) = c else {
            continue;
        };
        if !caps.types.contains(&new.rtype) {
            return Err(format!(
                "{}: {} cannot store {} records",
                new.name,
                provider.id(),
                new.rtype
            ));
        }
        for d in &new.data {
            if let Some(v) = d.txt_value()
                && v.len() > caps.max_txt_len
            {
                return Err(format!(
                    "{}: a {}-octet TXT value is longer than {} accepts ({})",
                    new.name,
                    v.len(),
                    provider.id(),
                    caps.max_txt_len
                ));
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for z in &self.zones {
            for ch in &z.changes {
                match ch.action {
                    Action::Create => c.create += 1,
                    Action::Update => c.update += 1,
                    Action::Delete => c.delete += 1,
                }
            }
        }
        c
    }

    /// DNS changes or key steps: anything apply would do.
    pub fn has_changes(&self) -> bool {
        self.zones
            .iter()
            .any(|z| !z.changes.is_empty() || !z.keys.is_empty())
    }

    /// The key steps of every zone, in plan order.
    pub fn key_steps(&self) -> impl Iterator<Item = &crate::keys::lifecycle::Transition> {
        self.zones.iter().flat_map(|z| &z.keys)
    }

    pub fn errors(&self) -> impl Iterator<Item = &ZonePlan> {
        self.zones.iter().filter(|z| z.error.is_some())
    }
}

/// Shortens long tokens (DKIM keys) for display: `MIIBIjANBgkqhkiG…IDAQAB`.
pub fn abbreviate(value: &str) -> String {
    value
        .split(' ')
        .map(|tok| {
            if tok.chars().count() > 80 {
                let head: String = tok.chars().take(24).collect();
                let tail: String = tok
                    .chars()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("{head}…{tail}")
            } else {
                tok.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each value of `s` as compared (joined, whole) and as shown (shortened
/// unless `full`): a diff decided on shortened values could hide a change
/// in the middle of a long value.
fn display_values(s: &SetJson, full: bool) -> Vec<(String, String)> {
    s.data
        .iter()
        .map(|d| {
            let whole = joined(d);
            let shown = if full {
                whole.clone()
            } else {
                abbreviate(&whole)
            };
            (whole, shown)
        })
        .collect()
}

fn contains(values: &[(String, String)], v: &(String, String)) -> bool {
    values.iter().any(|(whole, _)| *whole == v.0)
}

/// A TXT presentation `"a" "b"` shown as the joined value `"ab"`.
fn joined(presentation: &str) -> String {
    if presentation.starts_with('"') {
        let mut out = String::from("\"");
        let mut in_str = false;
        let mut escaped = false;
        for c in presentation.chars() {
            if in_str {
                if escaped {
                    out.push('\\');
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                } else {
                    out.push(c);
                }
            } else if c == '"' {
                in_str = true;
            }
        }
        out.push('"');
        out
    } else {
        presentation.to_string()
    }
}

/// Terminal colours, on a TTY only; whole values (`--full`, and always
/// off a terminal) or long tokens shortened.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    pub full: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// The Terraform-like view.
pub fn render_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let green = |s: &str| style.paint("32", s);
    let yellow = |s: &str| style.paint("33", s);
    let red = |s: &str| style.paint("31", s);
    let bold = |s: &str| style.paint("1", s);
    let mut in_sync = 0;
    for z in &plan.zones {
        if z.changes.is_empty()
            && z.conflicts.is_empty()
            && z.error.is_none()
            && z.notes.is_empty()
            && z.keys.is_empty()
        {
            in_sync += 1;
            continue;
        }
        let _ = writeln!(out, "{}", bold(&format!("# {} ({})", z.zone, z.provider)));
        if let Some(e) = &z.error {
            let _ = writeln!(out, "  {} {e}", red("error:"));
        }
        if z.creates_zone() {
            let _ = writeln!(
                out,
                "  {} zone {} does not exist at {}: apply creates it (a new zone file, or a new zone on the server)",
                green("+"),
                z.zone,
                z.provider
            );
        }
        for c in &z.changes {
            let (mark, paint): (&str, &dyn Fn(&str) -> String) = match c.action {
                Action::Create => ("+", &green),
                Action::Update => ("~", &yellow),
                Action::Delete => ("-", &red),
            };
            let ttl = match (&c.old, &c.new) {
                (Some(o), Some(n)) if o.ttl != n.ttl => format!("ttl {} → {}", o.ttl, n.ttl),
                (_, Some(n)) => format!("ttl {}", n.ttl),
                (Some(o), None) => format!("ttl {}", o.ttl),
                _ => String::new(),
            };
            let _ = writeln!(out, "  {} {} {} ({ttl})", paint(mark), c.name, c.rtype);
            let old = c
                .old
                .as_ref()
                .map(|s| display_values(s, style.full))
                .unwrap_or_default();
            let new = c
                .new
                .as_ref()
                .map(|s| display_values(s, style.full))
                .unwrap_or_default();
            for v in &old {
                if contains(&new, v) {
                    let _ = writeln!(out, "        {}", v.1);
                } else {
                    let _ = writeln!(out, "      {} {}", red("-"), v.1);
                }
            }
            for v in new.iter().filter(|v| !contains(&old, v)) {
                let _ = writeln!(out, "      {} {}", green("+"), v.1);
            }
        }
        for t in &z.keys {
            let _ = writeln!(out, "  {} {t} (at apply)", style.paint("36", "key:"));
        }
        for c in &z.conflicts {
            let _ = writeln!(out, "  {} {}: {}", yellow("! conflict:"), c.name, c.message);
        }
        for n in &z.notes {
            let _ = writeln!(out, "  {} {n}", style.paint("36", "note:"));
        }
        if let Some(f) = &z.needs_force {
            let _ = writeln!(out, "  {} {f}", red("! unsafe:"));
        }
        out.push('\n');
    }
    let c = plan.counts();
    let errors = plan.errors().count();
    let _ = write!(
        out,
        "{} {} to add, {} to change, {} to destroy",
        bold("Plan:"),
        c.create,
        c.update,
        c.delete
    );
    let steps = plan.key_steps().count();
    if steps > 0 {
        let _ = write!(out, ", {steps} key step(s)");
    }
    let _ = write!(out, "; {} zone(s), {in_sync} in sync", plan.zones.len());
    if errors > 0 {
        let _ = write!(out, ", {}", red(&format!("{errors} failed")));
    }
    out.push_str(".\n");
    if !plan.has_changes() && errors == 0 {
        out.push_str("No changes. DNS matches the configuration.\n");
    }
    out
}

/// Markdown for a pull-request comment.
pub fn render_markdown(plan: &Plan) -> String {
    let c = plan.counts();
    let mut out = format!(
        "### mailauth plan: {} to add, {} to change, {} to destroy\n\n",
        c.create, c.update, c.delete
    );
    let errors: Vec<_> = plan.errors().collect();
    if !errors.is_empty() {
        out.push_str(&format!(
            "> [!CAUTION]\n> {} zone(s) could not be planned:\n",
            errors.len()
        ));
        for z in &errors {
            out.push_str(&format!(
                "> - `{}`: {}\n",
                z.zone,
                z.error.as_deref().unwrap_or_default()
            ));
        }
        out.push('\n');
    }
    let mut in_sync = Vec::new();
    for z in &plan.zones {
        if z.error.is_some() {
            continue;
        }
        if z.changes.is_empty() && z.conflicts.is_empty() && z.notes.is_empty() && z.keys.is_empty()
        {
            in_sync.push(z.zone.as_str());
            continue;
        }
        out.push_str(&format!(
            "<details open><summary><code>{}</code> ({}): {} change(s)</summary>\n\n",
            z.zone,
            z.provider,
            z.changes.len()
        ));
        if z.creates_zone() {
            out.push_str(&format!(
                "> [!IMPORTANT]\n> zone `{}` does not exist at {}: apply creates it\n\n",
                z.zone, z.provider
            ));
        }
        out.push_str("```diff\n");
        for ch in &z.changes {
            let old = ch
                .old
                .as_ref()
                .map(|s| display_values(s, false))
                .unwrap_or_default();
            let new = ch
                .new
                .as_ref()
                .map(|s| display_values(s, false))
                .unwrap_or_default();
            let ttl_old = ch.old.as_ref().map(|s| s.ttl);
            let ttl_new = ch.new.as_ref().map(|s| s.ttl);
            let verb = match ch.action {
                Action::Create => "create",
                Action::Update => "update",
                Action::Delete => "delete",
            };
            out.push_str(&format!("# {verb} {} {}\n", ch.name, ch.rtype));
            for v in &old {
                if contains(&new, v) && ttl_old == ttl_new {
                    out.push_str(&format!("  {} {} {}\n", ch.name, ch.rtype, v.1));
                } else {
                    out.push_str(&format!(
                        "- {} {} {} {}\n",
                        ch.name,
                        ttl_old.unwrap_or_default(),
                        ch.rtype,
                        v.1
                    ));
                }
            }
            for v in &new {
                if !(contains(&old, v) && ttl_old == ttl_new) {
                    out.push_str(&format!(
                        "+ {} {} {} {}\n",
                        ch.name,
                        ttl_new.unwrap_or_default(),
                        ch.rtype,
                        v.1
                    ));
                }
            }
        }
        out.push_str("```\n\n");
        for cf in &z.conflicts {
            out.push_str(&format!(
                "> [!WARNING]\n> conflict at `{}`: {}\n\n",
                cf.name, cf.message
            ));
        }
        for t in &z.keys {
            out.push_str(&format!("- key: {t} (at apply)\n"));
        }
        for n in &z.notes {
            out.push_str(&format!("- {n}\n"));
        }
        if let Some(f) = &z.needs_force {
            out.push_str(&format!("> [!CAUTION]\n> {f}\n\n"));
        }
        out.push_str("</details>\n\n");
    }
    if !in_sync.is_empty() {
        out.push_str(&format!(
            "In sync: {}\n",
            in_sync
                .iter()
                .map(|z| format!("`{z}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(old: &str, new: &str) -> Plan {
        let set = |v: &str| SetJson {
            ttl: 3600,
            data: vec![format!("\"{v}\"")],
        };
        Plan {
            format: FORMAT,
            created: String::new(),
            zones: vec![ZonePlan {
                zone: "example.com".into(),
                provider: "p".into(),
                version: String::new(),
                exists: true,
                changes: vec![ChangeJson {
                    action: Action::Update,
                    name: "_mailauth.example.com".into(),
                    rtype: "TXT".into(),
                    old: Some(set(old)),
                    new: Some(set(new)),
                    known_after_apply: false,
                }],
                conflicts: Vec::new(),
                notes: Vec::new(),
                keys: Vec::new(),
                needs_force: None,
                error: None,
                spf_flattening: None,
            }],
        }
    }

    #[test]
    fn an_update_in_the_middle_of_a_long_value_shows_its_lines_even_shortened() {
        // Same first 24 and last 8 characters: shortened, both read
        // `v=mailauth1; o=@:spf,_dmarc:TXT,_mail…y:CNAME`.
        let old = "v=mailauth1; o=@:spf,_dmarc:TXT,_mailauth:TXT,_smtp._tls:TXT,google._domainkey:TXT,s1._domainkey:CNAME";
        let new = "v=mailauth1; o=@:spf,_dmarc:TXT,_mailauth:TXT,_mta-sts:TXT,_smtp._tls:TXT,google._domainkey:TXT,s1._domainkey:CNAME";
        assert_eq!(abbreviate(old), abbreviate(new));
        let short = render_text(
            &update(old, new),
            Style {
                color: false,
                full: false,
            },
        );
        assert!(short.contains("      - \"v=mailauth1;"), "{short}");
        assert!(short.contains("      + \"v=mailauth1;"), "{short}");
        let full = render_text(
            &update(old, new),
            Style {
                color: false,
                full: true,
            },
        );
        assert!(full.contains(&format!("      - \"{old}\"")), "{full}");
        assert!(full.contains(&format!("      + \"{new}\"")), "{full}");
        let md = render_markdown(&update(old, new));
        assert!(md.contains("\n- _mailauth.example.com 3600 TXT"), "{md}");
        assert!(md.contains("\n+ _mailauth.example.com 3600 TXT"), "{md}");
    }
}
