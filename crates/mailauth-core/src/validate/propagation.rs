//! The propagation check: ask every authoritative server of the zone's NS
//! set directly (no recursion, no cache) for the SOA serial and the RRsets
//! mailauth manages, and report any server that serves something different
//! from the others. Name server addresses come from DNS, or from
//! `--authority NAME=IP:PORT` overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use hickory_resolver::proto::rr::{RData as WireData, RecordType};

use super::{Check, Finding, Severity, Validator};
use crate::diff::Desired;
use crate::dns::{ResolveError, Resolver};
use crate::record::RType;

/// What one server serves: the SOA serial and each checked RRset as sorted
/// presentation strings (or the error that came back).
struct Snapshot {
    server: String,
    serial: Result<Option<u32>, ResolveError>,
    sets: BTreeMap<String, Result<Vec<String>, String>>,
}

fn wire_type(t: &RType) -> Option<RecordType> {
    Some(match t {
        RType::Txt => RecordType::TXT,
        RType::Mx => RecordType::MX,
        RType::Cname => RecordType::CNAME,
        RType::A => RecordType::A,
        RType::Aaaa => RecordType::AAAA,
        RType::Ns => RecordType::NS,
        RType::Soa | RType::Other(_) => return None,
    })
}

fn rrset(r: &Resolver, name: &str, t: RecordType) -> Result<Vec<String>, String> {
    match r.lookup(name, t) {
        Ok(records) => {
            let mut v: Vec<String> = records
                .iter()
                .map(|rec| match &rec.data {
                    WireData::TXT(txt) => {
                        let joined: Vec<u8> =
                            txt.txt_data.iter().flat_map(|s| s.to_vec()).collect();
                        format!("\"{}\"", String::from_utf8_lossy(&joined))
                    }
                    other => other.to_string().to_ascii_lowercase(),
                })
                .collect();
            v.sort();
            Ok(v)
        }
        Err(ResolveError::NxDomain { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let domain = desired.origin.as_str();
    // A configured domain is usually a zone apex; when it is not, the
    // zone is the closest enclosing name with an NS RRset.
    let mut zone = domain;
    let hosts = loop {
        match v.resolver.ns(zone) {
            Ok(h) if !h.is_empty() => break h,
            Ok(_) => match zone.split_once('.') {
                Some((_, parent)) if parent.contains('.') => zone = parent,
                _ => {
                    return vec![Finding::fail(
                        Check::Propagation,
                        format!("no NS records at {domain} or its parents"),
                        "delegate the zone to its name servers at the registrar",
                    )];
                }
            },
            Err(ResolveError::NxDomain { .. }) => {
                return vec![Finding::fail(
                    Check::Propagation,
                    format!("{domain} does not exist in DNS (NXDOMAIN)"),
                    "delegate the zone to its name servers at the registrar",
                )];
            }
            Err(e) => return vec![Finding::dns(Check::Propagation, "NS query", &e)],
        }
    };
    let mut out = Vec::new();
    let mut servers: Vec<(String, SocketAddr)> = Vec::new();
    for host in &hosts {
        let overrides: Vec<SocketAddr> = v
            .settings
            .authorities
            .iter()
            .filter(|(n, _)| n == host)
            .map(|(_, a)| *a)
            .collect();
        if !overrides.is_empty() {
            servers.extend(overrides.into_iter().map(|a| (host.clone(), a)));
            continue;
        }
        match v.resolver.addresses(host) {
            Ok(ips) if !ips.is_empty() => servers.extend(
                ips.into_iter()
                    .map(|ip| (host.clone(), SocketAddr::new(ip, 53))),
            ),
            Ok(_) => out.push(Finding::fail(
                Check::Propagation,
                format!("name server {host} has no A or AAAA record"),
                format!("publish an address for {host} or remove it from the NS set"),
            )),
            Err(e) => out.push(Finding::dns(
                Check::Propagation,
                &format!("address of name server {host}"),
                &e,
            )),
        }
    }

    // The RRsets to compare: everything the config manages, plus the apex
    // TXT that holds SPF.
    let mut keys: BTreeSet<(String, RecordType)> = desired
        .sets
        .iter()
        .filter_map(|s| wire_type(&s.rtype).map(|t| (s.name.as_str().to_string(), t)))
        .collect();
    if desired.spf.is_some() {
        keys.insert((domain.to_string(), RecordType::TXT));
    }

    let mut snaps = Vec::new();
    for (host, addr) in &servers {
        let label = format!("{host} ({addr})");
        let direct = match v.direct(*addr) {
            Ok(d) => d,
            Err(e) => {
                out.push(Finding::dns(Check::Propagation, &label, &e));
                continue;
            }
        };
        let serial = direct.soa(zone).map(|s| s.map(|s| s.serial));
        if let Err(e) = &serial {
            out.push(Finding::dns(
                Check::Propagation,
                &format!("SOA from {label}"),
                e,
            ));
            continue;
        }
        let sets = keys
            .iter()
            .map(|(n, t)| (format!("{n} {t}"), rrset(&direct, n, *t)))
            .collect();
        snaps.push(Snapshot {
            server: label,
            serial,
            sets,
        });
    }

    for s in &snaps {
        if let Ok(None) = s.serial {
            out.push(Finding::fail(
                Check::Propagation,
                format!("{} is listed in the NS set but does not serve the zone (no SOA): lame delegation", s.server),
                "configure the zone on that server or remove it from the NS set",
            ));
        }
    }
    let serials: BTreeMap<String, u32> = snaps
        .iter()
        .filter_map(|s| match s.serial {
            Ok(Some(n)) => Some((s.server.clone(), n)),
            _ => None,
        })
        .collect();
    let newest = serials.values().copied().max();
    let mut differ = false;
    if let Some(newest) = newest {
        for (server, serial) in &serials {
            if *serial != newest {
                differ = true;
                out.push(Finding::fail(
                    Check::Propagation,
                    format!("{server} serves SOA serial {serial}, others serve {newest}"),
                    format!("check zone transfers (NOTIFY/AXFR) to {server}"),
                ));
            }
        }
    }
    for (key, _) in keys.iter().map(|(n, t)| (format!("{n} {t}"), ())) {
        let mut seen: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for s in &snaps {
            let value = match s.sets.get(&key) {
                Some(Ok(v)) if v.is_empty() => "(nothing)".to_string(),
                Some(Ok(v)) => v.join(" | "),
                Some(Err(e)) => format!("error: {e}"),
                None => continue,
            };
            seen.entry(value).or_default().push(&s.server);
        }
        if seen.len() > 1 {
            differ = true;
            out.push(
                Finding::fail(
                    Check::Propagation,
                    format!("name servers disagree on {key}"),
                    "wait for zone transfers to finish, or fix the server that lags",
                )
                .with_details(
                    seen.iter()
                        .map(|(value, servers)| format!("{}: {value}", servers.join(", ")))
                        .collect(),
                ),
            );
        }
    }
    let failed = out.iter().any(|f| f.severity >= Severity::TempError);
    if !differ && !failed && !snaps.is_empty() {
        out.push(Finding::pass(
            Check::Propagation,
            format!(
                "{} authoritative server(s) agree: serial {}, {} RRsets",
                snaps.len(),
                newest.map_or("-".to_string(), |n| n.to_string()),
                keys.len()
            ),
        ));
    }
    out
}
