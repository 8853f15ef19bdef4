//! Reading what a domain publishes in live DNS into a [`Zone`] for
//! import: the names a domain's mail authentication lives at, and the DKIM
//! selectors to probe (live DNS cannot list names). Leaves turning the zone
//! into config fields to the parent module.

use hickory_resolver::proto::rr::{RData as HRData, RecordType};

use crate::dns::{ResolveError, Resolver};
use crate::record::{Name, RData, RType, RecordSet, Zone};

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
