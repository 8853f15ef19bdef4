//! `mailauth import`: what a domain publishes → the `domains:` entry that
//! declares it, such that the next plan changes none of its records.
//!
//! This module owns reading what is published ([`read_live`] for live DNS;
//! a provider's `fetch` and `masterfile` give a [`Zone`] too), turning it
//! into a [`Model`] of config fields, checking that model against the
//! records it must reproduce (through the same `config` loader and
//! `desired` builder that `plan` uses, so "no change" is not a guess), and
//! rendering it as YAML. A record the typed fields would render differently
//! is kept under `verbatim:` with a comment saying why; a record no field
//! can hold (two DMARC records; records of one domain with different TTLs)
//! is left unmanaged or reported. Nothing is improved silently: every problem found is a
//! [`Note`] with the YAML change that fixes it.
//!
//! This file holds the model and the entry points; reading live DNS is in
//! `live`, each record's fields in `records`, the check in `verify`, the
//! YAML in `yaml`. It leaves the merging into an existing file to
//! [`merge`], the command line to [`cli`], record syntax to `record`, and
//! the verdicts it shares with validate (DKIM keys, DMARC tags) to
//! `validate`.

pub mod cli;
mod live;
pub mod merge;
mod records;
mod verify;
mod yaml;

use std::collections::BTreeMap;

use crate::record::dmarc::Dmarc;
use crate::record::mtasts::MtaStsPolicy;
use crate::record::{Name, RData, RType, RecordSet, Zone};
use crate::validate::{Finding, Severity};
pub use live::{probe_list, read_live};
use records::{import_dkim, import_dmarc, import_mta_sts, import_spf, import_tls_rpt};
use verify::verify;
pub use yaml::{quote, render};

/// What import says about one published record: a problem found (with the
/// fix), or how it was imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub severity: Severity,
    pub message: String,
    /// The change that fixes it (a YAML edit, or what to do).
    pub fix: Option<String>,
}

impl Note {
    fn new(severity: Severity, message: impl Into<String>, fix: Option<String>) -> Note {
        Note {
            severity,
            message: message.into(),
            fix,
        }
    }
    fn from_finding(f: Finding) -> Note {
        Note::new(f.severity, f.message, f.fix)
    }
}

/// `a:` / `mx:` of the SPF block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    /// The bare mechanism (the domain itself).
    pub itself: bool,
    pub names: Vec<String>,
}

/// The typed SPF fields (see `config::SpfConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpfModel {
    pub ip4: Vec<String>,
    pub ip6: Vec<String>,
    pub a: Hosts,
    pub mx: Hosts,
    pub include: Vec<String>,
    pub exists: Vec<String>,
    pub redirect: Option<String>,
    /// `fail`, `softfail` or `neutral`.
    pub all: Option<&'static str>,
}

/// One DKIM selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorModel {
    Cname(String),
    Key {
        public_key: String,
        ed25519: bool,
        testing: bool,
    },
}

/// The typed MTA-STS fields (see `config::MtaStsConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtaStsModel {
    pub id: String,
    pub mode: String,
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// The `domains.<name>` entry import writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub ttl: Option<u32>,
    pub parked: bool,
    pub spf: Option<SpfModel>,
    pub dmarc: Option<Dmarc>,
    pub dkim: BTreeMap<String, SelectorModel>,
    pub tls_rpt: Option<Vec<String>>,
    /// `mta_sts:` from the `_mta-sts` record and the policy file fetched
    /// for it.
    pub mta_sts: Option<MtaStsModel>,
    /// `verbatim:` entries (`spf`, `dmarc`, `mta_sts`, `tls_rpt`) with the
    /// reason each is kept as written.
    pub verbatim: BTreeMap<&'static str, (String, String)>,
    /// `verbatim.dkim` entries by selector, with the reason.
    pub verbatim_dkim: BTreeMap<String, (String, String)>,
}

/// The result for one domain.
#[derive(Clone, Debug)]
pub struct Imported {
    pub domain: Name,
    pub model: Model,
    pub notes: Vec<Note>,
    /// Records whose next plan will still show a change (what the config
    /// cannot represent), with why.
    pub unrepresented: Vec<String>,
}

impl Imported {
    /// The domain's entry, its key at `indent` spaces.
    pub fn yaml(&self, indent: usize) -> String {
        render(&self.domain, &self.model, indent)
    }
}

/// The apex SPF record of M3AAWG parked domains that `parked: true`
/// publishes, with the rest of that set.
const PARKED_SPF: &str = "v=spf1 -all";
const PARKED_DMARC: &str = "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s";
const PARKED_DKIM: &str = "v=DKIM1; k=rsa; p=";

fn one_txt(set: Option<&RecordSet>) -> Option<Result<(String, u32), usize>> {
    let set = set?;
    let values: Vec<String> = set.data.iter().filter_map(RData::txt_value).collect();
    Some(match values.as_slice() {
        [one] => Ok((one.clone(), set.ttl)),
        _ => Err(values.len()),
    })
}

/// Imports one domain from what `zone` holds. `default_ttl` is the
/// config's `defaults.ttl`.
/// `policy` is the MTA-STS policy fetched for the domain, when it was
/// (`--mta-sts-policy`): with it the `_mta-sts` record becomes `mta_sts:`.
pub fn import(
    origin: &Name,
    zone: &Zone,
    default_ttl: u32,
    policy: Option<&MtaStsPolicy>,
) -> Imported {
    let mut model = Model::default();
    let mut notes: Vec<Note> = Vec::new();
    let mut unrepresented = Vec::new();
    // name → (ttl) of every RRset the model will own, for the TTL choice.
    let mut owned_ttls: Vec<(Name, u32)> = Vec::new();

    let apex_txt = zone.get(origin, &RType::Txt);
    let spf_values: Vec<String> = apex_txt
        .map(|s| {
            s.data
                .iter()
                .filter_map(RData::txt_value)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|v| crate::ownership::is_spf(v))
        .collect();
    let dmarc_name = origin.child("_dmarc");
    let sts_name = origin.child("_mta-sts");
    let tls_name = origin.child("_tls").child("_smtp");
    let keys = origin.child("_domainkey");

    // Parked (M3AAWG): exactly what `parked: true` publishes.
    let mx = zone.get(origin, &RType::Mx);
    let null_mx = mx.is_some_and(|s| {
        s.data.len() == 1
            && matches!(&s.data[0], RData::Mx { preference: 0, exchange } if exchange.as_str().is_empty())
    });
    let selector_sets: Vec<&RecordSet> = zone
        .sets
        .values()
        .filter(|s| s.name.is_within(&keys) && s.name != keys)
        .filter(|s| matches!(s.rtype, RType::Txt | RType::Cname))
        .collect();
    let wildcard = keys.child("*");
    let parked = null_mx
        && spf_values == [PARKED_SPF]
        && matches!(one_txt(zone.get(&dmarc_name, &RType::Txt)), Some(Ok((ref v, _))) if v == PARKED_DMARC)
        && selector_sets.len() == 1
        && selector_sets[0].name == wildcard
        && matches!(one_txt(Some(selector_sets[0])), Some(Ok((ref v, _))) if v == PARKED_DKIM);
    if parked {
        model.parked = true;
        owned_ttls.push((
            dmarc_name.clone(),
            zone.get(&dmarc_name, &RType::Txt)
                .map_or(default_ttl, |s| s.ttl),
        ));
        owned_ttls.push((origin.clone(), mx.map_or(default_ttl, |s| s.ttl)));
        owned_ttls.push((wildcard.clone(), selector_sets[0].ttl));
        notes.push(Note::new(
            Severity::Info,
            "parked: null MX, `v=spf1 -all`, p=reject and a revoked DKIM wildcard, as `parked: true` publishes them",
            None,
        ));
    }

    // SPF (RFC 7208).
    if !parked {
        match spf_values.as_slice() {
            [] => notes.push(Note::new(
                Severity::Warn,
                "no SPF record: nothing imported for SPF",
                Some(
                    "add `spf: { all: fail }` (a domain that sends no mail) or the senders it uses"
                        .into(),
                ),
            )),
            [one] => {
                import_spf(one, &mut model, &mut notes);
                // Alone in the apex TXT RRset, the SPF record takes the
                // domain's TTL (RFC 2181 §5.2, see `diff`), so its TTL
                // counts in the choice; shared, the RRset keeps its own.
                if let Some(set) = zone.get(origin, &RType::Txt)
                    && set.data.len() == 1
                {
                    owned_ttls.push((origin.clone(), set.ttl));
                }
            }
            many => {
                // RFC 7208 §4.5: several records are a permerror; the
                // config can declare only one.
                notes.push(Note::new(
                    Severity::Fail,
                    format!(
                        "{} SPF records at the apex (receivers return permerror, RFC 7208 §4.5): not imported, left unmanaged",
                        many.len()
                    ),
                    Some(format!(
                        "merge them into one and declare it, e.g. `verbatim: {{ spf: {} }}`; the first apply then replaces both",
                        quote(&many[0])
                    )),
                ));
                unrepresented.push("apex SPF: several records".to_string());
            }
        }
    }

    // DMARC (RFC 9989).
    if !parked {
        match one_txt(zone.get(&dmarc_name, &RType::Txt)) {
            None => notes.push(Note::new(
                Severity::Warn,
                "no DMARC record: nothing imported for DMARC",
                Some(
                    "add `dmarc: { p: none, rua: [mailto:...] }` to start collecting reports"
                        .into(),
                ),
            )),
            Some(Err(n)) => {
                notes.push(Note::new(
                    Severity::Fail,
                    format!("{n} TXT records at _dmarc (receivers apply none, RFC 9989 §4.7): not imported, left unmanaged"),
                    Some("keep one record and declare it under `dmarc:`".into()),
                ));
                unrepresented.push("_dmarc: several records".to_string());
            }
            Some(Ok((text, ttl))) => {
                owned_ttls.push((dmarc_name.clone(), ttl));
                import_dmarc(&text, &mut model, &mut notes);
            }
        }
    }

    // DKIM (RFC 6376): every selector the zone holds.
    for set in &selector_sets {
        if parked {
            break;
        }
        let sel = set
            .name
            .as_str()
            .strip_suffix(keys.as_str())
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string();
        if set.rtype == RType::Cname {
            if zone.get(&set.name, &RType::Txt).is_some() {
                continue; // not a valid zone; the TXT is reported below
            }
            if let Some(RData::Cname(target)) = set.data.first() {
                owned_ttls.push((set.name.clone(), set.ttl));
                model
                    .dkim
                    .insert(sel, SelectorModel::Cname(target.as_str().to_string()));
            }
            continue;
        }
        match one_txt(Some(set)) {
            Some(Ok((text, ttl))) => {
                owned_ttls.push((set.name.clone(), ttl));
                import_dkim(&sel, &text, &mut model, &mut notes);
            }
            _ => {
                notes.push(Note::new(
                    Severity::Fail,
                    format!("selector `{sel}`: {} TXT records (RFC 6376 §3.6.2.2: results undefined): left unmanaged", set.data.len()),
                    Some(format!("keep one key record at {}", set.name)),
                ));
                unrepresented.push(format!("{}: several records", set.name));
            }
        }
    }

    // MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3).
    for (name, key, prefix) in [
        (&sts_name, "mta_sts", "v=STSv1"),
        (&tls_name, "tls_rpt", "v=TLSRPTv1"),
    ] {
        match one_txt(zone.get(name, &RType::Txt)) {
            None => {}
            Some(Err(n)) => {
                notes.push(Note::new(
                    Severity::Fail,
                    format!("{n} TXT records at {name}: senders use none of them: left unmanaged"),
                    Some(format!("keep one `{prefix}` record")),
                ));
                unrepresented.push(format!("{name}: several records"));
            }
            Some(Ok((text, ttl))) => {
                owned_ttls.push((name.clone(), ttl));
                if key == "mta_sts" {
                    import_mta_sts(&text, policy, &mut model, &mut notes);
                } else {
                    import_tls_rpt(&text, &mut model, &mut notes);
                }
            }
        }
    }

    // One TTL per domain: the most common among the owned RRsets.
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, t) in &owned_ttls {
        *counts.entry(*t).or_default() += 1;
    }
    let ttl = counts
        .iter()
        .max_by_key(|(t, n)| (**n, std::cmp::Reverse(**t)))
        .map(|(t, _)| *t);
    if let Some(ttl) = ttl {
        if ttl != default_ttl {
            model.ttl = Some(ttl);
        }
        for (name, t) in &owned_ttls {
            if *t != ttl {
                notes.push(Note::new(
                    Severity::Info,
                    format!("{name}: TTL {t} differs from the domain's other records ({ttl}); the config has one TTL per domain, so the plan changes it to {ttl}"),
                    None,
                ));
                unrepresented.push(format!("{name}: TTL {t} (the domain's is {ttl})"));
            }
        }
    }

    // Check the model against what it must reproduce, through the config
    // loader and the desired builder `plan` uses; what the typed fields
    // render differently goes to `verbatim:`.
    verify(
        origin,
        zone,
        &mut model,
        default_ttl,
        &mut notes,
        &mut unrepresented,
    );

    Imported {
        domain: origin.clone(),
        model,
        notes,
        unrepresented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(origin: &str, records: &[(&str, RType, u32, RData)]) -> (Name, Zone) {
        let o = Name::parse(origin).unwrap();
        let mut z = Zone::new(o.clone());
        for (n, t, ttl, d) in records {
            let name = if n.is_empty() { o.clone() } else { o.child(n) };
            z.insert(RecordSet::new(name, t.clone(), *ttl, vec![d.clone()]));
        }
        (o, z)
    }

    #[test]
    fn typed_when_it_renders_identically_verbatim_otherwise() {
        let (o, z) = zone(
            "a.test",
            &[
                (
                    "",
                    RType::Txt,
                    300,
                    RData::txt("v=spf1 ip4:192.0.2.0/24 include:_spf.google.com ~all"),
                ),
                (
                    "_dmarc",
                    RType::Txt,
                    300,
                    RData::txt("v=DMARC1; p=none; rua=mailto:d@a.test"),
                ),
            ],
        );
        let i = import(&o, &z, 3600, None);
        assert!(i.model.spf.is_some(), "{:?}", i.model);
        assert!(i.model.dmarc.is_some());
        assert_eq!(i.model.ttl, Some(300));
        assert!(i.unrepresented.is_empty(), "{:?}", i.unrepresented);

        // Order differs from the canonical one: verbatim, with the reason.
        let (o, z) = zone(
            "b.test",
            &[(
                "",
                RType::Txt,
                3600,
                RData::txt("v=spf1 include:_spf.google.com ip4:192.0.2.1 -all"),
            )],
        );
        let i = import(&o, &z, 3600, None);
        assert!(i.model.spf.is_none());
        assert!(i.model.verbatim.contains_key("spf"));
        assert!(i.yaml(2).contains("verbatim:"), "{}", i.yaml(2));
        assert!(i.unrepresented.is_empty(), "{:?}", i.unrepresented);
    }
}
