//! Editing master-file text in place, and rendering records.
//!
//! Only the lines of records that a change removes are dropped; new records
//! go where the old ones were (or at the end of the file); the SOA serial is
//! rewritten inside its token. Every other byte of the file is kept.

use std::collections::{BTreeMap, BTreeSet};

use super::parse::Parsed;
use crate::change::Change;
use crate::{Name, RData, RType, RecordSet, txt};

/// Lines for one RRset, owner written relative to `origin`.
pub fn render_set(set: &RecordSet, origin: &Name) -> Vec<String> {
    set.data
        .iter()
        .map(|d| render_record(&set.name, set.ttl, &set.rtype, d, origin))
        .collect()
}

fn render_record(name: &Name, ttl: u32, rtype: &RType, data: &RData, origin: &Name) -> String {
    let owner = name.relative_to(origin);
    let head = format!("{owner}\t{ttl}\tIN\t{rtype}\t");
    match data {
        // One character-string per line inside parentheses, so long DKIM
        // keys stay readable and every string stays ≤ 255 octets.
        RData::Txt(strings) if strings.len() > 1 => {
            let indent = " ".repeat(owner.len().max(8));
            let mut out = format!("{head}( {}", txt::present(&strings[..1]));
            for s in &strings[1..] {
                out.push_str(&format!(
                    "\n{indent}\t  {}",
                    txt::present(std::slice::from_ref(s))
                ));
            }
            out.push_str(" )");
            out
        }
        RData::Cname(target) => format!("{head}{}", target.relative_to(origin)),
        RData::Mx {
            preference,
            exchange,
        } if !exchange.as_str().is_empty() => {
            format!("{head}{preference} {}", exchange.relative_to(origin))
        }
        other => format!("{head}{}", other.presentation()),
    }
}

/// A self-contained master-file fragment for `sets` (used by `emit`).
pub fn render_records(origin: &Name, sets: &[RecordSet]) -> String {
    let mut out = format!("$ORIGIN {}\n", origin.fqdn());
    for set in sets {
        for line in render_set(set, origin) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The next SOA serial: date-based `YYYYMMDDnn` when the current one is
/// date-based (or smaller than today's), otherwise one more.
/// RFC 1982 serial arithmetic: the new value is always "greater".
pub fn bump_serial(old: u32, today_yyyymmdd: u32) -> u32 {
    let dated = today_yyyymmdd.saturating_mul(100);
    let looks_dated = (1_970_010_100..=2_999_123_199).contains(&old);
    if looks_dated && old < dated {
        dated
    } else {
        old.wrapping_add(1).max(1)
    }
}

/// Applies `changes` to `text` (parsed as `parsed`), replacing the SOA
/// serial by `serial` when given.
pub fn apply_edits(text: &str, parsed: &Parsed, changes: &[Change], serial: Option<u32>) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let recs = &parsed.records;
    let mut removed: BTreeSet<usize> = BTreeSet::new();
    let mut insert: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut append: Vec<String> = Vec::new();

    let of_set = |name: &Name, rtype: &RType| -> Vec<usize> {
        recs.iter()
            .enumerate()
            .filter(|(_, r)| &r.name == name && &r.rtype == rtype)
            .map(|(i, _)| i)
            .collect()
    };

    for change in changes {
        match change {
            Change::Create { new } => append.extend(render_set(new, &parsed.origin_at_end)),
            Change::Delete { old } => removed.extend(of_set(&old.name, &old.rtype)),
            Change::Update { old, new } => {
                let idx = of_set(&old.name, &old.rtype);
                let (gone, added): (Vec<usize>, Vec<&RData>) = if old.ttl == new.ttl {
                    (
                        idx.iter()
                            .copied()
                            .filter(|&i| !new.data.contains(&recs[i].data))
                            .collect(),
                        new.data.iter().filter(|d| !old.data.contains(d)).collect(),
                    )
                } else {
                    (idx.clone(), new.data.iter().collect())
                };
                removed.extend(&gone);
                // New data goes where the set was, written relative to the
                // origin in force there.
                let anchor = gone.first().or(idx.last()).copied();
                let origin = anchor.map_or(&parsed.origin_at_end, |i| &recs[i].origin);
                let new_lines: Vec<String> = added
                    .into_iter()
                    .map(|d| render_record(&new.name, new.ttl, &new.rtype, d, origin))
                    .collect();
                match anchor {
                    Some(i) if gone.contains(&i) => insert
                        .entry(recs[i].first_line)
                        .or_default()
                        .extend(new_lines),
                    Some(i) => insert
                        .entry(recs[i].last_line + 1)
                        .or_default()
                        .extend(new_lines),
                    None => append.extend(new_lines),
                }
            }
        }
    }

    // A kept record that inherits its owner from the record before it must
    // say its owner explicitly once anything before it changed.
    let mut explicit: BTreeMap<usize, String> = BTreeMap::new();
    let mut dirty = false;
    for (i, r) in recs.iter().enumerate() {
        if insert.contains_key(&r.first_line) {
            dirty = true;
        }
        if removed.contains(&i) {
            dirty = true;
            continue;
        }
        if r.owner_explicit {
            dirty = false;
        } else if dirty {
            explicit.insert(r.first_line, r.name.relative_to(&r.origin));
        }
    }

    let mut skip: BTreeSet<usize> = BTreeSet::new();
    for &i in &removed {
        skip.extend(recs[i].first_line..=recs[i].last_line);
    }

    let mut out: Vec<String> = Vec::with_capacity(lines.len() + append.len());
    for (ln, line) in lines.iter().enumerate() {
        if let Some(block) = insert.get(&ln) {
            out.extend(block.iter().cloned());
        }
        if skip.contains(&ln) {
            continue;
        }
        let mut line = (*line).to_string();
        if let (Some(serial), Some(soa)) = (serial, recs.iter().find(|r| r.rtype == RType::Soa))
            && let Some((sl, start, end)) = soa.serial_at
            && sl == ln
        {
            line.replace_range(start..end, &serial.to_string());
        }
        if let Some(owner) = explicit.get(&ln) {
            line = format!("{owner}{}", line);
        }
        out.push(line);
    }
    // Keep a final newline; put appended records before it.
    let trailing_newline = out.last().is_some_and(String::is_empty);
    if trailing_newline {
        out.pop();
    }
    out.extend(append);
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster ( 2026010101 3600 900 1209600 300 )\n  IN NS ns1.example.net.\n; hand-written, keep me\n@ IN TXT \"v=spf1 ~all\"\n  IN TXT \"google-site-verification=x\"\n  IN MX 10 mx1\nwww IN A 192.0.2.1\n";

    #[test]
    fn update_keeps_everything_else_and_fixes_inherited_owners() {
        let origin = n("example.com");
        let parsed = parse::parse(ZONE, &origin).unwrap();
        let zone = parsed.zone(&origin);
        let old = zone.get(&origin, &RType::Txt).unwrap().clone();
        let mut new = old.clone();
        new.data = vec![
            RData::txt("google-site-verification=x"),
            RData::txt("v=spf1 -all"),
        ];
        let out = apply_edits(
            ZONE,
            &parsed,
            &[Change::Update {
                old,
                new: new.clone(),
            }],
            Some(2026010102),
        );
        assert!(out.contains("; hand-written, keep me\n"));
        assert!(out.contains("( 2026010102 3600"));
        assert!(!out.contains("~all"));
        let again = parse::parse(&out, &origin).unwrap().zone(&origin);
        assert_eq!(again.get(&origin, &RType::Txt).unwrap(), &new);
        assert_eq!(
            again.get(&origin, &RType::Mx),
            zone.get(&origin, &RType::Mx),
            "{out}"
        );
        assert_eq!(
            again.get(&n("www.example.com"), &RType::A),
            zone.get(&n("www.example.com"), &RType::A)
        );
    }

    #[test]
    fn long_txt_round_trips() {
        let origin = n("example.com");
        let value = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(700);
        let set = RecordSet::new(
            n("s._domainkey.example.com"),
            RType::Txt,
            60,
            vec![RData::txt(&value)],
        );
        let text = format!(
            "$TTL 60\n{}",
            render_records(&origin, std::slice::from_ref(&set))
        );
        let z = parse::parse(&text, &origin).unwrap().zone(&origin);
        assert_eq!(z.get(&set.name, &RType::Txt).unwrap(), &set);
    }

    #[test]
    fn serials() {
        assert_eq!(bump_serial(2026010101, 20261127), 2026112700);
        assert_eq!(bump_serial(2026112700, 20261127), 2026112701);
        assert_eq!(bump_serial(7, 20261127), 8);
    }
}
