//! octoDNS YamlProvider zone files (octodns 1.x, `octodns/provider/yaml.py`
//! and `octodns/record/chunked.py`).
//!
//! The format's rules that matter here: keys of every mapping in natural
//! sort order (the loader's default `enforce_order`); one mapping per name,
//! a list when a name holds several types; TXT values in octoDNS's internal
//! form, where every `;` is written `\;` (an unescaped `;` after a word
//! character fails validation, and providers turn `\;` back into `;`); values
//! octoDNS's strict validation refuses (non-ASCII) carry the record-level
//! `octodns: {lenient: true}` marker.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{BridgeError, DomainRecords, json_quote, txt_text, unsupported};
use crate::record::{RData, RType, RecordSet};

const FORMAT: &str = "octodns";

pub(super) fn render(d: &DomainRecords) -> Result<String, BridgeError> {
    let mut by_name: BTreeMap<String, Vec<&RecordSet>> = BTreeMap::new();
    for set in &d.sets {
        if !super::is_managed_type(&set.rtype) {
            return Err(unsupported(FORMAT, set));
        }
        let rel = if set.name == d.domain {
            String::new()
        } else {
            set.name.relative_to(&d.domain)
        };
        by_name.entry(rel).or_default().push(set);
    }
    let mut names: Vec<&String> = by_name.keys().collect();
    names.sort_by(|a, b| natural_cmp(a, b));

    let mut out = format!(
        "---\n# {}: records managed by mailauth (octoDNS YamlProvider zone file {}.yaml)\n",
        d.domain, d.domain
    );
    for name in names {
        let mut sets = by_name[name].clone();
        sets.sort_by_key(|s| s.rtype.to_string());
        out.push_str(&format!("{}:\n", json_quote(name)));
        let list = sets.len() > 1;
        for set in sets {
            let body = record(set)?;
            for (i, line) in body.lines().enumerate() {
                let lead = match (list, i) {
                    (true, 0) => "- ",
                    (true, _) => "  ",
                    (false, _) => "  ",
                };
                let indent = if list { "  " } else { "" };
                out.push_str(&format!("{indent}{lead}{line}\n"));
            }
        }
    }
    Ok(out)
}

/// One record's mapping, keys in natural order: octodns, ttl, type, value(s).
fn record(set: &RecordSet) -> Result<String, BridgeError> {
    let mut lenient = false;
    let mut values = Vec::new();
    for data in &set.data {
        values.push(match (&set.rtype, data) {
            (RType::Txt, _) => {
                let raw = txt_text(FORMAT, set, data)?;
                let (v, needs_lenient) = txt_value(set, &raw)?;
                lenient |= needs_lenient;
                json_quote(&v)
            }
            (RType::Cname, RData::Cname(target)) => json_quote(&target.fqdn()),
            (
                RType::Mx,
                RData::Mx {
                    preference,
                    exchange,
                },
            ) => {
                let ex = if exchange.as_str().is_empty() {
                    ".".to_string()
                } else {
                    exchange.fqdn()
                };
                format!(
                    "{{exchange: {}, preference: {preference}}}",
                    json_quote(&ex)
                )
            }
            _ => return Err(unsupported(FORMAT, set)),
        });
    }
    let mut out = String::new();
    if lenient {
        out.push_str("octodns:\n  lenient: true\n");
    }
    out.push_str(&format!("ttl: {}\ntype: {}\n", set.ttl, set.rtype));
    match (set.rtype == RType::Cname, values.as_slice()) {
        (true, [one]) => out.push_str(&format!("value: {one}\n")),
        _ => {
            out.push_str("values:\n");
            for v in values {
                out.push_str(&format!("- {v}\n"));
            }
        }
    }
    Ok(out)
}

/// Raw TXT text → octoDNS's internal form, and whether it needs `lenient`.
fn txt_value(set: &RecordSet, raw: &str) -> Result<(String, bool), BridgeError> {
    let refuse = |message: &str| BridgeError::Record {
        format: FORMAT,
        name: set.name.to_string(),
        rtype: set.rtype.to_string(),
        message: message.into(),
    };
    // octoDNS reads `\;` as an escaped `;` and strips a leading `"` and every
    // `" "` (its legacy chunk syntax): such values would not round-trip.
    if raw.contains("\\;") {
        return Err(refuse(
            "a TXT value containing `\\;` cannot be written in octoDNS's escaping",
        ));
    }
    if raw.starts_with('"') || raw.contains("\" \"") {
        return Err(refuse(
            "a TXT value starting with `\"` or containing `\" \"` is rewritten by octoDNS",
        ));
    }
    Ok((raw.replace(';', "\\;"), !raw.is_ascii()))
}

/// natsort's default key (what octoDNS's YAML loader enforces): text split
/// into runs of digits and non-digits, digit runs compared as numbers.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[i - 1].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    // natsort starts every key with a string part: a leading number sorts
    // after the empty string, compared as ("", n).
    fn key(s: &str) -> Vec<(bool, &str)> {
        let p = parts(s);
        let mut k = Vec::new();
        if p.first().is_some_and(|x| x.0) {
            k.push((false, ""));
        }
        k.extend(p);
        k
    }
    let (ka, kb) = (key(a), key(b));
    for (x, y) in ka.iter().zip(kb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (nx, ny) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                nx.len().cmp(&ny.len()).then(nx.cmp(ny))
            }
            _ => x.1.cmp(y.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ka.len().cmp(&kb.len())
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn semicolons_are_escaped_and_names_sorted_naturally() {
        let out = render(&sample()).unwrap();
        assert!(
            out.contains(r#""v=DMARC1\\; p=reject\\; rua=mailto:d@example.test""#),
            "{out}"
        );
        assert!(!out.contains("lenient"), "{out}");
        let apex = out.find("\"\":").unwrap();
        let dmarc = out.find("\"_dmarc\":").unwrap();
        assert!(apex < dmarc);
        assert!(out.contains("- type") || out.contains("- ttl"), "{out}");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["s10", "s2", "", "_dmarc", "s1", "a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["", "_dmarc", "a", "s1", "s2", "s10"]);
    }

    #[test]
    fn non_ascii_is_lenient_and_backslash_semicolon_refused() {
        let mut d = sample();
        d.sets[2].data = vec![RData::txt("v=DMARC1; p=none; x=é")];
        let out = render(&d).unwrap();
        assert!(
            out.contains("\"_dmarc\":\n  octodns:\n    lenient: true\n  ttl: 300\n"),
            "{out}"
        );
        d.sets[2].data = vec![RData::txt("a\\;b")];
        assert!(render(&d).is_err());
    }
}
