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
//! It leaves the merging into an existing file to [`merge`], the command
//! line to [`cli`], record syntax to `record`, and the verdicts it shares
//! with validate (DKIM keys, DMARC tags) to `validate`.

pub mod cli;
pub mod merge;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use hickory_resolver::proto::rr::{RData as HRData, RecordType};

use crate::dns::{ResolveError, Resolver};
use crate::record::dkim::{DkimKey, KeyFlag, KeyType};
use crate::record::dmarc::Dmarc;
use crate::record::mtasts::{MtaSts, MtaStsPolicy};
use crate::record::spf::{Mechanism, Modifier, Qualifier, Spf, Term};
use crate::record::tlsrpt::TlsRpt;
use crate::record::{Name, RData, RType, RecordSet, Zone};
use crate::validate::{Finding, Severity};

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

/// Reads what `origin` publishes in live DNS: the apex TXT and MX, the
/// `_dmarc`, `_mta-sts` and `_smtp._tls` TXT records, and the DKIM
/// selectors in `selectors` (a CNAME or a TXT record each). Live DNS
/// cannot list names, so only the selectors asked for are found.
pub fn read_live(
    resolver: &Resolver,
    origin: &Name,
    selectors: &[String],
) -> Result<Zone, ResolveError> {
    let mut zone = Zone::new(origin.clone());
    let mut add = |name: &Name, rtype: RecordType| -> Result<bool, ResolveError> {
        let records = match resolver.lookup(name.as_str(), rtype) {
            Ok(r) => r,
            Err(ResolveError::NxDomain { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut found = false;
        for r in records {
            let ttl = r.ttl;
            let data = match r.data {
                HRData::TXT(t) if rtype == RecordType::TXT => {
                    RData::Txt(t.txt_data.iter().map(|s| s.to_vec()).collect())
                }
                HRData::MX(mx) if rtype == RecordType::MX => RData::Mx {
                    preference: mx.preference,
                    exchange: Name::parse(&mx.exchange.to_ascii())
                        .unwrap_or_else(|_| origin.clone()),
                },
                HRData::CNAME(c) if rtype == RecordType::CNAME => {
                    match Name::parse(&c.0.to_ascii()) {
                        Ok(n) => RData::Cname(n),
                        Err(_) => continue,
                    }
                }
                _ => continue,
            };
            found = true;
            let rt = match rtype {
                RecordType::TXT => RType::Txt,
                RecordType::MX => RType::Mx,
                _ => RType::Cname,
            };
            zone.insert(RecordSet::new(name.clone(), rt, ttl, vec![data]));
        }
        Ok(found)
    };
    // A domain that does not exist is an error, not an empty entry.
    if let Err(e @ ResolveError::NxDomain { .. }) =
        resolver.lookup(origin.as_str(), RecordType::SOA)
    {
        return Err(e);
    }
    add(origin, RecordType::TXT)?;
    add(origin, RecordType::MX)?;
    add(&origin.child("_dmarc"), RecordType::TXT)?;
    add(&origin.child("_mta-sts"), RecordType::TXT)?;
    add(&origin.child("_tls").child("_smtp"), RecordType::TXT)?;
    let keys = origin.child("_domainkey");
    // A wildcard answers every selector: read it once, as itself, and probe
    // no selector (each would answer with the wildcard's record).
    let wildcard = keys.child("*");
    let probe = keys.child(WILDCARD_PROBE);
    if add(&probe, RecordType::TXT)? {
        if let Some(set) = zone.remove(&probe, &RType::Txt) {
            zone.insert(RecordSet::new(wildcard, RType::Txt, set.ttl, set.data));
        }
        return Ok(zone);
    }
    for sel in selectors {
        let Ok(name) = Name::parse(&format!("{sel}.{keys}")) else {
            continue;
        };
        if add(&name, RecordType::CNAME)? {
            continue;
        }
        add(&name, RecordType::TXT)?;
    }
    Ok(zone)
}

/// A label no one publishes: an answer there is a `*._domainkey` wildcard.
const WILDCARD_PROBE: &str = "mailauth-wildcard-probe-7f3a";

/// The selectors import probes in live DNS: `hints` (`--selector`) first,
/// then [`crate::validate::COMMON_SELECTORS`].
pub fn probe_list(hints: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in hints.iter().map(|s| s.to_ascii_lowercase()).chain(
        crate::validate::COMMON_SELECTORS
            .iter()
            .map(|s| s.to_string()),
    ) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
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

fn import_spf(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
    let parsed: Spf = match text.parse() {
        Ok(p) => p,
        Err(e) => {
            notes.push(Note::new(
                Severity::Fail,
                format!("the SPF record does not parse ({e}): imported verbatim, receivers return permerror"),
                Some("replace `verbatim.spf` with a typed `spf:` block (include, ip4, ... , all)".into()),
            ));
            model
                .verbatim
                .insert("spf", (text.to_string(), "does not parse".into()));
            return;
        }
    };
    // Merits (RFC 7208): `+all`, `?all`, `ptr`, the lookup limit of this
    // record alone (includes may add more: `mailauth validate` walks them).
    for d in parsed.directives() {
        match (&d.mechanism, d.qualifier) {
            (Mechanism::All, Qualifier::Pass) => notes.push(Note::new(
                Severity::Fail,
                "SPF ends in `+all`: every host on the Internet may send as this domain",
                Some("`all: fail` (or `softfail`) in place of the verbatim record".into()),
            )),
            (Mechanism::All, Qualifier::Neutral) => notes.push(Note::new(
                Severity::Warn,
                "SPF ends in `?all`: it protects nothing against spoofing",
                Some("`all: softfail`, then `all: fail`".into()),
            )),
            (Mechanism::Ptr(_), _) => notes.push(Note::new(
                Severity::Warn,
                "SPF uses `ptr`, which RFC 7208 §5.5 says not to use",
                Some("replace `ptr` with `ip4:`/`ip6:` or `a:` entries".into()),
            )),
            _ => {}
        }
    }
    if !text.starts_with("v=spf1") {
        notes.push(Note::new(
            Severity::Warn,
            "the SPF version tag is not written `v=spf1`: receivers that match it exactly ignore the record",
            Some("write `v=spf1` (or replace `verbatim.spf` with a typed `spf:` block)".into()),
        ));
    }
    let count = parsed.dns_mechanism_count();
    if count > 10 {
        notes.push(Note::new(
            Severity::Fail,
            format!("SPF has {count} DNS-querying terms: over the limit of 10 (RFC 7208 §4.6.4), receivers return permerror"),
            Some("drop or flatten includes (`ip4:` for what they resolve to)".into()),
        ));
    }
    if text.len() > 450 {
        notes.push(Note::new(
            Severity::Warn,
            format!(
                "SPF record is {} octets: over the 450 RFC 7208 §3.4 advises",
                text.len()
            ),
            Some("use ip4 ranges or fewer includes".into()),
        ));
    }
    match typed_spf(&parsed) {
        Ok(m) => model.spf = Some(m),
        Err(why) => {
            model.verbatim.insert("spf", (text.to_string(), why));
        }
    }
}

/// The typed SPF fields for `spf`, or why they cannot hold it.
fn typed_spf(spf: &Spf) -> Result<SpfModel, String> {
    let mut m = SpfModel::default();
    let literal = |d: &crate::record::spf::DomainSpec, what: &str| {
        d.as_literal()
            .ok_or_else(|| format!("macros in `{what}:` have no typed form"))
    };
    for term in &spf.terms {
        match term {
            Term::Directive(d) => {
                if d.mechanism != Mechanism::All && d.qualifier != Qualifier::Pass {
                    return Err(format!(
                        "`{}{}` has a qualifier the typed fields cannot express",
                        d.qualifier.as_char(),
                        d.mechanism.name()
                    ));
                }
                match &d.mechanism {
                    Mechanism::All => {
                        m.all = Some(match d.qualifier {
                            Qualifier::Fail => "fail",
                            Qualifier::SoftFail => "softfail",
                            Qualifier::Neutral => "neutral",
                            Qualifier::Pass => return Err("`+all` has no typed form".into()),
                        })
                    }
                    Mechanism::Include(d) => m.include.push(literal(d, "include")?),
                    Mechanism::A {
                        domain,
                        cidr4,
                        cidr6,
                    }
                    | Mechanism::Mx {
                        domain,
                        cidr4,
                        cidr6,
                    } => {
                        if cidr4.is_some() || cidr6.is_some() {
                            return Err("a CIDR length on `a`/`mx` has no typed form".into());
                        }
                        let hosts = if matches!(d.mechanism, Mechanism::A { .. }) {
                            &mut m.a
                        } else {
                            &mut m.mx
                        };
                        match domain {
                            None => hosts.itself = true,
                            Some(d) => hosts.names.push(literal(d, "a/mx")?),
                        }
                        if hosts.itself && !hosts.names.is_empty() {
                            return Err(
                                "`a`/`mx` both bare and with names has no typed form".into()
                            );
                        }
                    }
                    Mechanism::Ptr(_) => return Err("`ptr` has no typed form".into()),
                    Mechanism::Ip4 { addr, prefix } => m.ip4.push(match prefix {
                        Some(p) => format!("{addr}/{p}"),
                        None => addr.to_string(),
                    }),
                    Mechanism::Ip6 { addr, prefix } => m.ip6.push(match prefix {
                        Some(p) => format!("{addr}/{p}"),
                        None => addr.to_string(),
                    }),
                    Mechanism::Exists(d) => m.exists.push(d.to_string()),
                }
            }
            Term::Modifier(Modifier::Redirect(d)) => m.redirect = Some(literal(d, "redirect")?),
            Term::Modifier(Modifier::Exp(_)) => return Err("`exp=` has no typed form".into()),
            Term::Modifier(Modifier::Unknown { name, .. }) => {
                return Err(format!("the modifier `{name}=` has no typed form"));
            }
        }
    }
    if m.all.is_none() && m.redirect.is_none() {
        return Err("neither `all` nor `redirect`: the typed form always ends in one".into());
    }
    Ok(m)
}

fn import_dmarc(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
    let parsed: Dmarc = match text.parse() {
        Ok(d) => d,
        Err(e) => {
            notes.push(Note::new(
                Severity::Fail,
                format!(
                    "the DMARC record does not parse ({e}): imported verbatim; receivers ignore it"
                ),
                Some(
                    "replace `verbatim.dmarc` with `dmarc: { p: none, rua: [mailto:...] }`".into(),
                ),
            ));
            model
                .verbatim
                .insert("dmarc", (text.to_string(), "does not parse".into()));
            return;
        }
    };
    notes.extend(
        crate::validate::dmarc_merits(&parsed)
            .into_iter()
            .map(Note::from_finding),
    );
    if parsed.p.is_none() {
        model
            .verbatim
            .insert("dmarc", (text.to_string(), "no `p=` tag".into()));
    } else if parsed.pct.is_some() || !parsed.rf.is_empty() || parsed.ri.is_some() {
        model.verbatim.insert(
            "dmarc",
            (
                text.to_string(),
                "pct/rf/ri (RFC 7489, removed by RFC 9989) have no typed form".into(),
            ),
        );
    } else {
        model.dmarc = Some(parsed);
    }
}

fn import_dkim(sel: &str, text: &str, model: &mut Model, notes: &mut Vec<Note>) {
    let parsed: DkimKey = match text.parse() {
        Ok(k) => k,
        Err(e) => {
            notes.push(Note::new(
                Severity::Fail,
                format!("selector `{sel}`: the key record does not parse ({e}): imported verbatim; verifiers fail every signature"),
                Some(format!("replace `verbatim.dkim.{sel}` with the signer's key (`public_key:`), or drop it")),
            ));
            model
                .verbatim_dkim
                .insert(sel.to_string(), (text.to_string(), "does not parse".into()));
            return;
        }
    };
    notes.extend(
        crate::validate::dkim_key_verdicts(sel, &parsed)
            .into_iter()
            .filter(|f| f.severity != Severity::Pass)
            .map(Note::from_finding),
    );
    let plain = parsed.v
        && parsed.h.is_empty()
        && parsed.n.is_none()
        && parsed.s.is_empty()
        && parsed.t.iter().all(|f| *f == KeyFlag::Testing);
    if plain {
        model.dkim.insert(
            sel.to_string(),
            SelectorModel::Key {
                public_key: base64::engine::general_purpose::STANDARD.encode(&parsed.p),
                ed25519: parsed.key_type() == KeyType::Ed25519,
                testing: parsed.testing(),
            },
        );
    } else {
        model.verbatim_dkim.insert(
            sel.to_string(),
            (
                text.to_string(),
                "tags the typed form does not write (h, n, s, t=s or no v=)".into(),
            ),
        );
    }
}

fn import_mta_sts(
    text: &str,
    policy: Option<&MtaStsPolicy>,
    model: &mut Model,
    notes: &mut Vec<Note>,
) {
    let reason = match (text.parse::<MtaSts>(), policy) {
        (Ok(rec), Some(p)) => {
            model.mta_sts = Some(MtaStsModel {
                id: rec.id,
                mode: p.mode.as_str().to_string(),
                mx: p.mx.clone(),
                max_age: p.max_age,
            });
            return;
        }
        (Ok(_), None) => "the policy (mode, mx) is not in DNS: add `mta_sts: { id, mode, mx }` in its place (or import with --mta-sts-policy) to have validate compare the policy".to_string(),
        (Err(e), _) => {
            notes.push(Note::new(
                Severity::Fail,
                format!("the `_mta-sts` record is invalid ({e}): imported verbatim; senders ignore the policy"),
                Some("replace `verbatim.mta_sts` with `mta_sts: { id: 20260101T000000, mode: testing, mx: [...] }`".into()),
            ));
            "invalid".to_string()
        }
    };
    model.verbatim.insert("mta_sts", (text.to_string(), reason));
}

fn import_tls_rpt(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
    match text.parse::<TlsRpt>() {
        Ok(t) if t.extensions.is_empty() => model.tls_rpt = Some(t.rua),
        Ok(_) => {
            model
                .verbatim
                .insert("tls_rpt", (text.to_string(), "extension fields".into()));
        }
        Err(e) => {
            notes.push(Note::new(
                Severity::Fail,
                format!("the `_smtp._tls` record is invalid ({e}): imported verbatim; senders send no reports"),
                Some("replace `verbatim.tls_rpt` with `tls_rpt: { rua: [mailto:...] }`".into()),
            ));
            model
                .verbatim
                .insert("tls_rpt", (text.to_string(), "invalid".into()));
        }
    }
}

/// Loads `model` as a config and compares what `desired` builds with what
/// `zone` publishes, part by part; a typed part that differs is moved to
/// `verbatim:`. What still differs is noted as unrepresented.
fn verify(
    origin: &Name,
    zone: &Zone,
    model: &mut Model,
    default_ttl: u32,
    notes: &mut Vec<Note>,
    unrepresented: &mut Vec<String>,
) {
    let published_txt = |name: &Name| {
        one_txt(zone.get(name, &RType::Txt))
            .and_then(Result::ok)
            .map(|(t, _)| t)
    };
    let spf_text = zone
        .get(origin, &RType::Txt)
        .map(|s| {
            s.data
                .iter()
                .filter_map(RData::txt_value)
                .filter(|v| crate::ownership::is_spf(v))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // Each typed part alone, so one part's error cannot hide another's.
    if let Some(spf) = model.spf.clone() {
        let part = Model {
            spf: Some(spf),
            ..Model::default()
        };
        let ok = desired_of(origin, &part, default_ttl).is_ok_and(|d| {
            d.spf.as_ref().and_then(|(r, _)| r.txt_value()) == spf_text.first().cloned()
        });
        if !ok {
            model.spf = None;
            model.verbatim.insert(
                "spf",
                (
                    spf_text[0].clone(),
                    "term order or spelling differs from the typed form's rendering".into(),
                ),
            );
        }
    }
    let txt_part = |part: Model, name: &Name| -> bool {
        desired_of(origin, &part, default_ttl).is_ok_and(|d| {
            d.sets
                .iter()
                .find(|s| &s.name == name && s.rtype == RType::Txt)
                .and_then(|s| s.data.first())
                .and_then(RData::txt_value)
                == published_txt(name)
        })
    };
    if let Some(dmarc) = model.dmarc.clone() {
        let name = origin.child("_dmarc");
        if !txt_part(
            Model {
                dmarc: Some(dmarc),
                ..Model::default()
            },
            &name,
        ) {
            model.dmarc = None;
            if let Some(t) = published_txt(&name) {
                model.verbatim.insert(
                    "dmarc",
                    (
                        t,
                        "tag order or spelling differs from the typed form's rendering".into(),
                    ),
                );
            }
        }
    }
    if let Some(rua) = model.tls_rpt.clone() {
        let name = origin.child("_tls").child("_smtp");
        if !txt_part(
            Model {
                tls_rpt: Some(rua),
                ..Model::default()
            },
            &name,
        ) {
            model.tls_rpt = None;
            if let Some(t) = published_txt(&name) {
                model.verbatim.insert(
                    "tls_rpt",
                    (t, "spelling differs from the typed form's rendering".into()),
                );
            }
        }
    }
    if let Some(sts) = model.mta_sts.clone() {
        let name = origin.child("_mta-sts");
        if !txt_part(
            Model {
                mta_sts: Some(sts),
                ..Model::default()
            },
            &name,
        ) {
            model.mta_sts = None;
            if let Some(t) = published_txt(&name) {
                model.verbatim.insert(
                    "mta_sts",
                    (t, "spelling differs from the typed form's rendering (declare `mta_sts:` by hand from the policy)".into()),
                );
            }
        }
    }
    let keys = origin.child("_domainkey");
    for (sel, m) in model.dkim.clone() {
        let SelectorModel::Key { .. } = m else {
            continue;
        };
        let Ok(name) = Name::parse(&format!("{sel}.{keys}")) else {
            continue;
        };
        let mut part = Model::default();
        part.dkim.insert(sel.clone(), m);
        if !txt_part(part, &name) {
            model.dkim.remove(&sel);
            if let Some(t) = published_txt(&name) {
                model.verbatim_dkim.insert(
                    sel,
                    (
                        t,
                        "tag order or spelling differs from the typed form's rendering".into(),
                    ),
                );
            }
        }
    }

    // The whole entry: every owned RRset as published (TTL included).
    match desired_of(origin, model, default_ttl) {
        Err(e) => {
            notes.push(Note::new(
                Severity::Fail,
                format!("the imported entry does not load: {e}"),
                None,
            ));
            unrepresented.push(format!("{origin}: the entry does not load"));
        }
        Ok(d) => {
            for set in &d.sets {
                if set.name == crate::ownership::Registry::name(origin) {
                    continue;
                }
                match zone.get(&set.name, &set.rtype) {
                    Some(old) if old.data == set.data => {}
                    _ => {
                        let what = format!("{} {}", set.name, set.rtype);
                        if !unrepresented
                            .iter()
                            .any(|u| u.starts_with(set.name.as_str()))
                        {
                            unrepresented.push(format!("{what}: rendered differently"));
                        }
                    }
                }
            }
            if let Some((spf, _)) = &d.spf
                && spf_text.len() == 1
                && spf.txt_value().as_deref() != Some(spf_text[0].as_str())
            {
                unrepresented.push("apex SPF: rendered differently".into());
            }
        }
    }
}

/// What `desired` builds from `model` alone (no keystore).
fn desired_of(
    origin: &Name,
    model: &Model,
    default_ttl: u32,
) -> Result<crate::diff::Desired, String> {
    let text = format!(
        "defaults: {{ ttl: {default_ttl} }}\ndomains:\n{}",
        render(origin, model, 2)
    );
    let config =
        crate::config::load_str(&text, Path::new("import.yaml")).map_err(|e| e.to_string())?;
    let (_, domain) = crate::desired::domains(&config)
        .into_iter()
        .find(|(n, _)| n == origin)
        .ok_or("the entry names another domain")?;
    crate::desired::desired(&config, origin, domain, &[]).map_err(|e| e.to_string())
}

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
