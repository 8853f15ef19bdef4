//! A proposed config change and the plan it would produce. The change is a
//! JSON merge patch (RFC 7396) of one domain's block; it is applied to an
//! in-memory copy of the config, both versions go through the ordinary
//! config checks and `desired`, and the two desired states are diffed with
//! [`crate::diff::diff`]. Nothing here touches a provider or a file.
//!
//! Owns the patch, its YAML rendering and the computed record changes; the
//! decision of which change to propose is `checklist`'s.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config;
use crate::desired;
use crate::diff::{Desired, diff};
use crate::plan::{Action, ChangeJson};
use crate::record::{Name, RType, RecordSet, Zone};

use super::ChecklistError;

/// A YAML change to make and what it would do to DNS.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposedChange {
    /// One line saying what the change does.
    pub summary: String,
    /// The change as YAML, nested under `domains:`; keys set to `null`
    /// are to be removed.
    pub yaml: String,
    /// The record changes the plan would show after the edit.
    pub plan: Vec<ChangeJson>,
    /// Set when the edited config does not load or yields no records: the
    /// proposal must be adapted by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Anything else to do with the change (e.g. generate a key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The config as a generic document, for editing in memory.
#[derive(Clone, Debug)]
pub struct ConfigDoc {
    root: Value,
    path: PathBuf,
}

impl ConfigDoc {
    /// Reads the config file as a generic YAML document.
    pub fn read(path: &Path) -> Result<ConfigDoc, ChecklistError> {
        let text = std::fs::read_to_string(path).map_err(|e| ChecklistError::ConfigRead {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let root: Value =
            serde_saphyr::from_str(&text).map_err(|e| ChecklistError::ConfigRead {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(ConfigDoc {
            root,
            path: path.to_path_buf(),
        })
    }

    /// An empty config (the domain is in no config file).
    pub fn empty() -> ConfigDoc {
        ConfigDoc {
            root: serde_json::json!({ "domains": {} }),
            path: PathBuf::from("mailauth.yaml"),
        }
    }

    /// The domain's block as written (an empty map when absent).
    pub fn domain(&self, domain: &Name) -> Value {
        self.root
            .get("domains")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| Name::parse(k).ok().as_ref() == Some(domain))
                    .map(|(_, v)| v.clone())
            })
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The config with `domains` reduced to `domain` with block `block`.
    fn with_domain(&self, domain: &Name, block: Value) -> String {
        let mut root = self.root.clone();
        if !root.is_object() {
            root = Value::Object(Map::new());
        }
        let mut domains = Map::new();
        domains.insert(domain.to_string(), block);
        if let Some(obj) = root.as_object_mut() {
            obj.insert("domains".into(), Value::Object(domains));
        }
        // JSON is YAML, so the ordinary loader reads it.
        root.to_string()
    }

    /// The desired records of `domain` with block `block`.
    fn desired(&self, domain: &Name, block: Value) -> Result<Option<Desired>, String> {
        let is_empty = block.as_object().is_some_and(Map::is_empty);
        let text = self.with_domain(domain, block);
        let cfg = config::load_str(&text, &self.path).map_err(|e| e.to_string())?;
        if is_empty {
            return Ok(None);
        }
        let list = desired::domains(&cfg);
        let Some((_, d)) = list.iter().find(|(n, _)| n == domain) else {
            return Ok(None);
        };
        desired::desired(&cfg, domain, d, &[])
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Applies `patch` to the domain's block and computes the plan between
    /// the two desired states. A patch that adds a rotated key family to a
    /// config without a keystore adds `keys: { dir: keys }` too, so that
    /// the proposed YAML passes the config checks it is shown with.
    pub fn propose(&self, domain: &Name, summary: &str, patch: Value) -> ProposedChange {
        let before = self.domain(domain);
        let mut after = before.clone();
        merge(&mut after, &patch);
        let adds_family = patch
            .pointer("/dkim/selectors")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|s| s.get("prefix").is_some()));
        let needs_keys = adds_family && self.root.get("keys").is_none();
        let mut yaml = render_yaml(domain, &patch);
        let mut doc = self.clone();
        if needs_keys {
            yaml = format!("keys:\n  dir: keys\n{yaml}");
            if let Some(root) = doc.root.as_object_mut() {
                root.insert("keys".into(), serde_json::json!({ "dir": "keys" }));
            }
        }
        let mut out = ProposedChange {
            summary: summary.to_string(),
            yaml,
            plan: Vec::new(),
            error: None,
            note: None,
        };
        let old = match self.desired(domain, before) {
            Ok(d) => d,
            Err(e) => {
                out.error = Some(format!("the current config does not load: {e}"));
                return out;
            }
        };
        let new = match doc.desired(domain, after) {
            Ok(Some(d)) => d,
            Ok(None) => {
                out.error = Some("the edited config declares nothing for the domain".into());
                return out;
            }
            Err(e) => {
                out.error = Some(format!("the edited config does not load: {e}"));
                return out;
            }
        };
        let existing = match &old {
            Some(d) => zone_of(d),
            None => Zone::new(domain.clone()),
        };
        out.plan = diff(&existing, &new)
            .changes
            .iter()
            .map(ChangeJson::from_change)
            .collect();
        out
    }
}

/// The zone a desired state produces when applied to an empty zone.
fn zone_of(d: &Desired) -> Zone {
    let mut z = Zone::new(d.origin.clone());
    for s in &d.sets {
        z.insert(s.clone());
    }
    if let Some((data, ttl)) = &d.spf {
        z.insert(RecordSet::new(
            d.origin.clone(),
            RType::Txt,
            *ttl,
            vec![data.clone()],
        ));
    }
    z
}

/// RFC 7396 §2: "If the provided merge patch contains members that do not
/// appear within the target, those members are added. If the target does
/// contain the member, the value is replaced. Null values in the merge
/// patch are given special meaning to indicate the removal of existing
/// values in the target."
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The patch as a YAML fragment under `domains:`.
pub fn render_yaml(domain: &Name, patch: &Value) -> String {
    let mut out = format!(
        "domains:\n  {}:\n",
        scalar(&Value::String(domain.to_string()))
    );
    yaml_map(patch, 4, &mut out);
    out
}

fn yaml_map(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else { return };
    let pad = " ".repeat(indent);
    for (k, v) in m {
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push_str(&format!("{pad}{k}:\n"));
                yaml_map(v, indent + 2, out);
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out.push_str(&format!("{pad}{k}:\n"));
                for item in items {
                    match item {
                        Value::Object(_) => {
                            let mut body = String::new();
                            yaml_map(item, indent + 4, &mut body);
                            // The first key goes on the dash line.
                            let body = body.replacen(&" ".repeat(indent + 4), "", 1);
                            out.push_str(&format!("{pad}  - {body}"));
                        }
                        other => out.push_str(&format!("{pad}  - {}\n", scalar(other))),
                    }
                }
            }
            Value::Null => out.push_str(&format!("{pad}{k}: null  # remove this key\n")),
            other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
        }
    }
}

/// A scalar or flow list in YAML, quoted when plain style would change its
/// meaning.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let special = s.is_empty()
                || s.contains(": ")
                || s.contains(" #")
                || s.ends_with(':')
                || s.starts_with(|c: char| "[]{}&*!|>'\"%@`#,?-: ".contains(c))
                || s.parse::<f64>().is_ok()
                || matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                );
            if special {
                Value::String(s.clone()).to_string()
            } else {
                s.clone()
            }
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(scalar).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

/// The plan lines of a proposal: `+ name TYPE value`, `~ …`, `- …`.
pub fn plan_lines(plan: &[ChangeJson]) -> Vec<String> {
    let mut out = Vec::new();
    for c in plan {
        let values = |s: &Option<crate::plan::SetJson>| {
            s.as_ref()
                .map(|s| s.data.iter().map(|d| abbreviate(d)).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let (old, new) = (values(&c.old), values(&c.new));
        let head = match c.action {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
        };
        out.push(format!("{head} {} {}", c.name, c.rtype));
        // The marker first, so that a Markdown `diff` block colours it.
        for v in old.iter().filter(|v| !new.contains(v)) {
            out.push(format!("-     {v}"));
        }
        for v in new.iter().filter(|v| !old.contains(v)) {
            out.push(format!("+     {v}"));
        }
    }
    out
}

/// Long values (DKIM keys) shortened for display.
fn abbreviate(v: &str) -> String {
    crate::plan::abbreviate(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // RFC 7396 Appendix A, a few of its test cases.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!([1, 2]), json!({"a": "b"}), json!({"a": "b"})),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn yaml_fragment_quotes_only_what_needs_it() {
        let d = Name::parse("example.test").unwrap();
        let y = render_yaml(
            &d,
            &json!({"dmarc": {"p": "quarantine", "t": true, "rua": ["mailto:a@example.test"], "fo": "1"}, "spf": null}),
        );
        assert_eq!(
            y,
            "domains:\n  example.test:\n    dmarc:\n      fo: \"1\"\n      p: quarantine\n      rua: [mailto:a@example.test]\n      t: true\n    spf: null  # remove this key\n"
        );
        let y = render_yaml(
            &d,
            &json!({"dkim": {"selectors": [{"name": "s1", "cname": "x.esp.test"}, {"prefix": "mail", "bits": 2048}]}}),
        );
        assert_eq!(
            y,
            "domains:\n  example.test:\n    dkim:\n      selectors:\n        - cname: x.esp.test\n          name: s1\n        - bits: 2048\n          prefix: mail\n"
        );
        // The fragment is valid YAML that reads back as the patch.
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            back["domains"]["example.test"]["dkim"]["selectors"][1]["bits"],
            2048
        );
    }

    #[test]
    fn proposal_plans_the_difference() {
        let doc = ConfigDoc {
            root: json!({"domains": {"a.test": {"dmarc": {"p": "none", "rua": ["mailto:r@a.test"]}}}}),
            path: PathBuf::from("mailauth.yaml"),
        };
        let d = Name::parse("a.test").unwrap();
        let p = doc.propose(
            &d,
            "quarantine",
            json!({"dmarc": {"p": "quarantine", "t": true}}),
        );
        assert_eq!(p.error, None);
        let lines = plan_lines(&p.plan);
        assert_eq!(
            lines,
            vec![
                "~ _dmarc.a.test TXT",
                "-     \"v=DMARC1; p=none; rua=mailto:r@a.test\"",
                "+     \"v=DMARC1; p=quarantine; t=y; rua=mailto:r@a.test\"",
            ],
            "{lines:#?}"
        );
        // A patch the config checks reject is reported, not planned.
        let bad = doc.propose(&d, "bad", json!({"dmarc": {"p": "sometimes"}}));
        assert!(bad.error.is_some() && bad.plan.is_empty(), "{bad:?}");
    }

    #[test]
    fn a_proposed_key_family_brings_its_keystore() {
        // The proposal used to fail its own config check ("a rotated key
        // family needs a keystore") once copied into a config without one.
        let doc = ConfigDoc::empty();
        let d = Name::parse("a.test").unwrap();
        let p = doc.propose(
            &d,
            "family",
            json!({"dkim": {"selectors": [{"prefix": "mail", "rotate_every": "180d"}]}}),
        );
        assert_eq!(p.error, None, "{p:?}");
        assert!(
            p.yaml.starts_with("keys:\n  dir: keys\ndomains:\n"),
            "{}",
            p.yaml
        );
        config::load_str(&p.yaml, Path::new("mailauth.yaml")).expect("the proposal loads");
        // A config with a keystore gets no second one.
        let with_keys = ConfigDoc {
            root: json!({"keys": {"dir": "k"}, "domains": {}}),
            path: PathBuf::from("mailauth.yaml"),
        };
        let p = with_keys.propose(
            &d,
            "family",
            json!({"dkim": {"selectors": [{"prefix": "mail"}]}}),
        );
        assert!(p.yaml.starts_with("domains:"), "{}", p.yaml);
    }
}
