//! Which records mailauth owns in a zone, and the registry record that
//! remembers it.
//!
//! mailauth owns exactly the slots the config declares: the apex SPF record
//! (one record inside the apex TXT RRset, whose other records belong to
//! whoever put them there), and whole RRsets at `_dmarc`,
//! `<selector>._domainkey`, `_mta-sts`, `_smtp._tls`, the apex MX of a parked
//! domain and the `*._domainkey` wildcard of a parked domain.
//!
//! To delete what the config no longer declares (a removed selector, a
//! retired key) without ever touching records it did not create, mailauth
//! keeps a registry in the zone itself, a TXT record at `_mailauth.<domain>`
//! listing the slots it manages (the approach of external-dns's TXT
//! registry): it travels with the zone, needs no state file in CI, and works
//! the same with every provider. This module reads and renders that
//! record, and says which RRsets a provider must read when it cannot list
//! a whole zone ([`OwnedNames`]); `diff` decides what to do with them.

use std::collections::BTreeSet;
use std::fmt;

use crate::record::{Name, RData, RType, RecordSet, Zone};

/// The label of the registry record under the zone apex.
pub const REGISTRY_LABEL: &str = "_mailauth";
const REGISTRY_VERSION: &str = "v=mailauth1";

/// One thing mailauth manages in a zone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// The `v=spf1` record inside the apex TXT RRset.
    ApexSpf,
    /// A whole RRset.
    RrSet(Name, RType),
}

impl Slot {
    /// `@:spf`, `_dmarc:TXT`, `s1._domainkey:CNAME`: names relative to the
    /// zone so a registry stays short.
    pub fn render(&self, origin: &Name) -> String {
        match self {
            Slot::ApexSpf => "@:spf".to_string(),
            Slot::RrSet(name, rtype) => format!("{}:{}", name.relative_to(origin), rtype),
        }
    }

    pub fn parse(s: &str, origin: &Name) -> Option<Slot> {
        let (name, kind) = s.rsplit_once(':')?;
        if name == "@" && kind.eq_ignore_ascii_case("spf") {
            return Some(Slot::ApexSpf);
        }
        let name = if name == "@" {
            origin.clone()
        } else if let Some(abs) = name.strip_suffix('.') {
            Name::parse(abs).ok()?
        } else {
            Name::parse(&format!("{name}.{origin}")).ok()?
        };
        // Only names inside the zone can ever be owned.
        if !name.is_within(origin) {
            return None;
        }
        Some(Slot::RrSet(name, RType::parse(kind)))
    }
}

/// The set of slots mailauth manages in one zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub slots: BTreeSet<Slot>,
}

impl Registry {
    pub fn name(origin: &Name) -> Name {
        origin.child(REGISTRY_LABEL)
    }

    /// Reads the registry from a zone as served. A zone without one (never
    /// managed, or managed before the registry existed) owns nothing beyond
    /// what the config declares now.
    pub fn read(zone: &Zone) -> Registry {
        match zone.get(&Registry::name(&zone.origin), &RType::Txt) {
            Some(set) => Registry::from_set(&zone.origin, set),
            None => Registry::default(),
        }
    }

    /// Reads the registry from its TXT RRset (at [`Registry::name`]).
    pub fn from_set(origin: &Name, set: &RecordSet) -> Registry {
        let mut slots = BTreeSet::new();
        for data in &set.data {
            let Some(value) = data.txt_value() else {
                continue;
            };
            let mut parts = value.split(';').map(str::trim);
            if parts.next() != Some(REGISTRY_VERSION) {
                continue;
            }
            for part in parts {
                if let Some(list) = part.strip_prefix("o=") {
                    slots.extend(
                        list.split(',')
                            .filter_map(|s| Slot::parse(s.trim(), origin)),
                    );
                }
            }
        }
        Registry { slots }
    }

    /// The registry's TXT rdata.
    pub fn rdata(&self, origin: &Name) -> RData {
        RData::txt(&self.display(origin).to_string())
    }

    fn display<'a>(&'a self, origin: &'a Name) -> impl fmt::Display + 'a {
        struct D<'a>(&'a Registry, &'a Name);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{REGISTRY_VERSION}; o=")?;
                for (i, slot) in self.0.slots.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(&slot.render(self.1))?;
                }
                Ok(())
            }
        }
        D(self, origin)
    }
}

/// The labels under the apex whose whole TXT RRset mailauth may own:
/// DMARC (RFC 7489 §6.1 `_dmarc`), MTA-STS (RFC 8461 §3.1 `_mta-sts`) and
/// TLS-RPT (RFC 8460 §3 `_smtp._tls`). DKIM selectors are not fixed
/// names: the registry lists those in use.
pub const OWNED_TXT_LABELS: [&str; 3] = ["_dmarc", "_mta-sts", "_smtp._tls"];

/// The RRsets mailauth may own in a zone, for a provider that cannot list
/// the whole zone and reads by name: the apex TXT (SPF) and MX (a parked
/// domain), the registry, [`OWNED_TXT_LABELS`], then every slot the
/// registry lists (DKIM selectors among them). Other names stay unseen,
/// which is harmless: mailauth never changes them. It is the
/// `provider::ReadScope` the providers are built with (`workspace`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnedNames;

impl OwnedNames {
    /// The RRsets to read first.
    pub fn initial(&self, origin: &Name) -> Vec<(Name, RType)> {
        let mut wanted = vec![
            (origin.clone(), RType::Txt),
            (origin.clone(), RType::Mx),
            (Registry::name(origin), RType::Txt),
        ];
        for label in OWNED_TXT_LABELS {
            wanted.push((origin.child(label), RType::Txt));
        }
        wanted
    }

    /// The further RRsets to read because of `set`: the slots the registry
    /// lists, when `set` is the registry.
    pub fn follow(&self, origin: &Name, set: &RecordSet) -> Vec<(Name, RType)> {
        if set.rtype != RType::Txt || set.name != Registry::name(origin) {
            return Vec::new();
        }
        Registry::from_set(origin, set)
            .slots
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::RrSet(name, rtype) => Some((name, rtype)),
                Slot::ApexSpf => None,
            })
            .collect()
    }
}

/// RFC 7208 §4.5: "Records that do not begin with a version section of
/// exactly "v=spf1" are discarded" — the version is matched
/// case-insensitively and must be followed by a space or the end.
pub fn is_spf(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordSet;

    #[test]
    fn registry_round_trip() {
        let origin = Name::parse("example.com").unwrap();
        let mut reg = Registry::default();
        reg.slots.insert(Slot::ApexSpf);
        reg.slots
            .insert(Slot::RrSet(origin.child("_dmarc"), RType::Txt));
        reg.slots.insert(Slot::RrSet(
            origin.child("_domainkey").child("s1"),
            RType::Cname,
        ));
        let mut zone = Zone::new(origin.clone());
        zone.insert(RecordSet::new(
            Registry::name(&origin),
            RType::Txt,
            300,
            vec![reg.rdata(&origin)],
        ));
        assert_eq!(Registry::read(&zone), reg);
    }

    #[test]
    fn registry_ignores_names_outside_the_zone() {
        let origin = Name::parse("example.com").unwrap();
        assert_eq!(Slot::parse("example.org.:TXT", &origin), None);
        assert_eq!(
            Slot::parse("_dmarc:TXT", &origin),
            Some(Slot::RrSet(origin.child("_dmarc"), RType::Txt))
        );
    }

    #[test]
    fn owned_names_start_with_the_fixed_slots() {
        let origin = Name::parse("example.com").unwrap();
        let initial = OwnedNames.initial(&origin);
        for (name, rtype) in [
            ("example.com", RType::Txt),
            ("example.com", RType::Mx),
            ("_mailauth.example.com", RType::Txt),
            ("_dmarc.example.com", RType::Txt),
            ("_mta-sts.example.com", RType::Txt),
            ("_smtp._tls.example.com", RType::Txt),
        ] {
            let key = (Name::parse(name).unwrap(), rtype);
            assert!(initial.contains(&key), "{key:?} missing from {initial:?}");
        }
        assert_eq!(initial.len(), 6, "{initial:?}");
    }

    #[test]
    fn owned_names_follow_the_registry_only() {
        let origin = Name::parse("example.com").unwrap();
        let selector = origin.child("_domainkey").child("s1");
        let mut reg = Registry::default();
        reg.slots.insert(Slot::ApexSpf);
        reg.slots
            .insert(Slot::RrSet(selector.clone(), RType::Cname));
        let registry = RecordSet::new(
            Registry::name(&origin),
            RType::Txt,
            300,
            vec![reg.rdata(&origin)],
        );
        assert_eq!(
            OwnedNames.follow(&origin, &registry),
            vec![(selector, RType::Cname)]
        );
        // The same text anywhere else, or under another type, names nothing.
        let elsewhere = RecordSet::new(
            origin.child("_dmarc"),
            RType::Txt,
            300,
            vec![reg.rdata(&origin)],
        );
        assert_eq!(OwnedNames.follow(&origin, &elsewhere), vec![]);
        // A registry of another zone lists slots relative to that zone.
        let other = Name::parse("example.org").unwrap();
        assert_eq!(OwnedNames.follow(&other, &registry), vec![]);
    }

    #[test]
    fn spf_version_match() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1 -all"));
        assert!(is_spf("v=spf1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
    }
}
