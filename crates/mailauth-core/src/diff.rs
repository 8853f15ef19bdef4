//! (existing zone, desired records) → ordered changes, plus the conflicts a
//! human must look at. Pure: no I/O, no provider. Never produces a change to
//! a record mailauth does not own (see `ownership`). Its output is a list
//! of [`Change`]s, which providers and the master-file editor apply; the
//! type itself lives in `mailauth-records` (`record::change`), beside the
//! RRsets it changes and the editor, and is re-exported here.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ownership::{Registry, Slot, is_spf};
use crate::record::{Name, RData, RType, RecordSet, Zone};

/// The diff's output, defined beside the RRsets it changes so that the
/// master-file editor of `mailauth-records` can apply it; re-exported here
/// under the path the providers, the plan and the tests use.
pub use crate::record::change::Change;

/// What the config implies for one zone: whole RRsets, and the apex SPF
/// record, which shares its RRset with TXT records mailauth does not own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub origin: Name,
    /// Owned RRsets other than the apex TXT, the registry included.
    pub sets: Vec<RecordSet>,
    /// The declared SPF record and its TTL (used only when the apex TXT
    /// RRset does not exist yet: an existing RRset keeps its TTL, which
    /// belongs to its other records too).
    pub spf: Option<(RData, u32)>,
}

impl Desired {
    /// The slots this desired state claims.
    pub fn slots(&self) -> BTreeSet<Slot> {
        let mut slots: BTreeSet<Slot> = self
            .sets
            .iter()
            .map(|s| Slot::RrSet(s.name.clone(), s.rtype.clone()))
            .collect();
        if self.spf.is_some() {
            slots.insert(Slot::ApexSpf);
        }
        slots
    }
}

/// A situation the plan reports but does not resolve by itself.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub name: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
}

/// Computes the changes that take `existing` to `desired`, touching only
/// the slots `desired` declares and those the zone's registry says mailauth
/// created earlier.
pub fn diff(existing: &Zone, desired: &Desired) -> Diff {
    let mut out = Diff::default();
    let declared = desired.slots();
    let previously = Registry::read(existing).slots;

    for set in &desired.sets {
        match existing.get(&set.name, &set.rtype) {
            None => out.changes.push(Change::Create { new: set.clone() }),
            Some(old) if old != set => out.changes.push(Change::Update {
                old: old.clone(),
                new: set.clone(),
            }),
            Some(_) => {}
        }
    }

    let apex_txt = existing.get(&existing.origin, &RType::Txt);
    let (old_spf, others): (Vec<RData>, Vec<RData>) = apex_txt
        .map(|s| s.data.clone())
        .unwrap_or_default()
        .into_iter()
        .partition(|d| d.txt_value().is_some_and(|v| is_spf(&v)));

    match &desired.spf {
        Some((spf, ttl)) => {
            if old_spf.len() > 1 {
                out.conflicts.push(Conflict {
                    name: existing.origin.to_string(),
                    message: format!(
                        "{} SPF records are published (receivers see a permerror, RFC 7208 §4.5); \
                         the plan replaces them with the declared one",
                        old_spf.len()
                    ),
                });
            }
            // RFC 2181 §5.2: "the TTLs of all RRs in an RRSet must be the
            // same". The apex TXT RRset alone with our SPF record takes the
            // config's TTL; shared with records mailauth does not own, it
            // keeps its own, since changing it would change theirs.
            let shared = !others.is_empty();
            let kept_ttl = apex_txt.map(|s| s.ttl).filter(|t| *t != *ttl);
            if let (true, Some(kept)) = (shared, kept_ttl) {
                out.conflicts.push(Conflict {
                    name: existing.origin.to_string(),
                    message: format!(
                        "the apex TXT RRset is shared with {} record(s) mailauth does not manage, so the SPF record keeps the RRset's TTL {kept}, not the config's {ttl} (one TTL per RRset, RFC 2181 §5.2)",
                        others.len()
                    ),
                });
            }
            let ttl_differs = !shared && kept_ttl.is_some();
            if old_spf.as_slice() != std::slice::from_ref(spf) || ttl_differs {
                let mut data = others.clone();
                data.push(spf.clone());
                let ttl = if shared {
                    apex_txt.map_or(*ttl, |s| s.ttl)
                } else {
                    *ttl
                };
                let new = RecordSet::new(existing.origin.clone(), RType::Txt, ttl, data);
                out.changes.push(match apex_txt {
                    Some(old) => Change::Update {
                        old: old.clone(),
                        new,
                    },
                    None => Change::Create { new },
                });
            }
        }
        None if previously.contains(&Slot::ApexSpf) && !old_spf.is_empty() => {
            // The config stopped declaring SPF: remove only our record.
            let old = apex_txt.expect("old_spf is non-empty").clone();
            out.changes.push(if others.is_empty() {
                Change::Delete { old }
            } else {
                let new = RecordSet::new(old.name.clone(), RType::Txt, old.ttl, others);
                Change::Update { old, new }
            });
        }
        None if !old_spf.is_empty() => out.conflicts.push(Conflict {
            name: existing.origin.to_string(),
            message: "an SPF record is published that the config does not describe; \
                      it is left as it is (declare `spf:` for this domain to manage it)"
                .to_string(),
        }),
        None => {}
    }

    for slot in previously.difference(&declared) {
        if let Slot::RrSet(name, rtype) = slot
            && let Some(old) = existing.get(name, rtype)
        {
            out.changes.push(Change::Delete { old: old.clone() });
        }
    }

    out.changes.sort_by_key(Change::sort_key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn txt(n: &str, ttl: u32, values: &[&str]) -> RecordSet {
        RecordSet::new(
            name(n),
            RType::Txt,
            ttl,
            values.iter().map(|v| RData::txt(v)).collect(),
        )
    }

    fn registry(origin: &str, slots: &[Slot]) -> RecordSet {
        let reg = Registry {
            slots: slots.iter().cloned().collect(),
        };
        let o = name(origin);
        RecordSet::new(Registry::name(&o), RType::Txt, 3600, vec![reg.rdata(&o)])
    }

    fn desired(sets: Vec<RecordSet>, spf: Option<&str>) -> Desired {
        Desired {
            origin: name("example.com"),
            sets,
            spf: spf.map(|s| (RData::txt(s), 3600)),
        }
    }

    #[test]
    fn creates_into_empty_zone_then_nothing() {
        let mut zone = Zone::new(name("example.com"));
        let want = desired(
            vec![txt("_dmarc.example.com", 3600, &["v=DMARC1; p=none"])],
            Some("v=spf1 -all"),
        );
        let d = diff(&zone, &want);
        assert_eq!(d.changes.len(), 2);
        for c in &d.changes {
            match c {
                Change::Create { new } => zone.insert(new.clone()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(diff(&zone, &want), Diff::default());
    }

    #[test]
    fn spf_update_keeps_other_apex_txt_and_its_ttl() {
        let mut zone = Zone::new(name("example.com"));
        zone.insert(txt(
            "example.com",
            300,
            &["google-site-verification=xyz", "v=spf1 ~all"],
        ));
        let d = diff(&zone, &desired(vec![], Some("v=spf1 -all")));
        assert_eq!(d.changes.len(), 1);
        let Change::Update { new, .. } = &d.changes[0] else {
            panic!("{:?}", d.changes)
        };
        assert_eq!(new.ttl, 300);
        assert_eq!(new.data.len(), 2);
        assert!(
            new.data
                .contains(&RData::txt("google-site-verification=xyz"))
        );
    }

    #[test]
    fn the_spf_ttl_follows_the_config_unless_the_rrset_is_shared() {
        // Alone in the apex TXT RRset, our SPF record takes the config's
        // TTL (3600 here): it used to be reported in sync at 300.
        let mut zone = Zone::new(name("example.com"));
        zone.insert(txt("example.com", 300, &["v=spf1 -all"]));
        let d = diff(&zone, &desired(vec![], Some("v=spf1 -all")));
        let [Change::Update { new, .. }] = d.changes.as_slice() else {
            panic!("{:?}", d.changes)
        };
        assert_eq!(new.ttl, 3600);
        assert!(d.conflicts.is_empty(), "{:?}", d.conflicts);
        // Shared with a record mailauth does not own, the RRset keeps its
        // TTL, and the plan says why.
        let mut zone = Zone::new(name("example.com"));
        zone.insert(txt(
            "example.com",
            300,
            &["google-site-verification=xyz", "v=spf1 -all"],
        ));
        let d = diff(&zone, &desired(vec![], Some("v=spf1 -all")));
        assert!(d.changes.is_empty(), "{:?}", d.changes);
        assert_eq!(d.conflicts.len(), 1);
        assert!(
            d.conflicts[0].message.contains("keeps the RRset's TTL 300")
                && d.conflicts[0].message.contains("RFC 2181 §5.2"),
            "{:?}",
            d.conflicts
        );
    }

    #[test]
    fn undeclared_spf_is_a_conflict_not_a_change() {
        let mut zone = Zone::new(name("example.com"));
        zone.insert(txt("example.com", 300, &["v=spf1 include:x -all"]));
        let d = diff(&zone, &desired(vec![], None));
        assert!(d.changes.is_empty());
        assert_eq!(d.conflicts.len(), 1);
    }

    #[test]
    fn removed_selector_is_deleted_only_if_registered() {
        let mut zone = Zone::new(name("example.com"));
        let s1 = txt("s1._domainkey.example.com", 3600, &["v=DKIM1; p=AAAA"]);
        let s2 = txt("s2._domainkey.example.com", 3600, &["v=DKIM1; p=BBBB"]);
        zone.insert(s1.clone());
        zone.insert(s2.clone());
        zone.insert(registry(
            "example.com",
            &[Slot::RrSet(s1.name.clone(), RType::Txt)],
        ));
        let reg_now = registry("example.com", &[]);
        let d = diff(&zone, &desired(vec![reg_now], None));
        let deletes: Vec<_> = d
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Delete { old } => Some(old.name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deletes, vec![s1.name.clone()]);
    }

    #[test]
    fn deletes_come_first() {
        let mut zone = Zone::new(name("example.com"));
        let old = txt("x._domainkey.example.com", 3600, &["v=DKIM1; p=AAAA"]);
        zone.insert(old.clone());
        zone.insert(registry(
            "example.com",
            &[Slot::RrSet(old.name.clone(), RType::Txt)],
        ));
        let d = diff(
            &zone,
            &desired(
                vec![
                    registry("example.com", &[]),
                    txt("_dmarc.example.com", 3600, &["v=DMARC1; p=none"]),
                ],
                None,
            ),
        );
        assert!(matches!(d.changes[0], Change::Delete { .. }));
    }
}
