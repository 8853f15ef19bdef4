//! The DMARC check: exactly one record at `_dmarc`, its syntax, its merits
//! (an unenforced `p=none`, the RFC 7489 tags RFC 9989 drops, `t`, `np`,
//! `psd`), judged the same whether or not the config declares it, then
//! agreement with the config (an extra finding), the organizational domain by the RFC 9989 DNS tree
//! walk, and the authorisation of every external report address. Record
//! syntax is `record::dmarc`'s.

use serde::Serialize;

use super::{Check, Finding, Severity, Validator};
use crate::diff::Desired;
use crate::dns::{ResolveError, Resolver};
use crate::record::Name;
use crate::record::dmarc::{Dmarc, Psd, report_authorization_name};

/// The organizational domain of a name and how it was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgDomain {
    pub domain: String,
    /// `tree-walk: psd=n at X`, `tree-walk: psd=y at X`, `tree-walk: record
    /// with the fewest labels`, or `no DMARC record found: the domain itself`.
    pub how: String,
    /// The names queried, in order.
    pub queried: Vec<String>,
}

/// RFC 9989 §4.10 (DNS Tree Walk): query `_dmarc` at the domain and then
/// at each parent, at most eight queries (a name of more than eight labels
/// jumps from its own record to its last seven labels). The first record
/// with `psd=n` ends the walk at its domain; `psd=y` ends it one label
/// below the public suffix domain; otherwise the record found at the domain
/// with the fewest labels wins. With no record, the domain is its own
/// organizational domain.
///
/// Receivers that still implement RFC 7489 use the Public Suffix List
/// instead; the two agree whenever the registry suffix publishes no DMARC
/// record, which is the common case. The PSL is not consulted here.
pub fn organizational_domain(resolver: &Resolver, domain: &str) -> Result<OrgDomain, ResolveError> {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let mut starts: Vec<usize> = vec![0];
    let first = if labels.len() > 8 {
        labels.len() - 7
    } else {
        1
    };
    starts.extend(first..labels.len());
    let mut queried = Vec::new();
    let mut fewest: Option<String> = None;
    for start in starts {
        let candidate = labels[start..].join(".");
        let name = format!("_dmarc.{candidate}");
        queried.push(name.clone());
        let records = super::tagged_txt(resolver, &name, "v=DMARC1")?;
        let valid: Vec<Dmarc> = records.iter().filter_map(|(t, _)| t.parse().ok()).collect();
        // Several records at one name are treated as none (RFC 9989 §4.7).
        let [record] = valid.as_slice() else {
            continue;
        };
        match record.psd {
            Some(Psd::No) => {
                return Ok(OrgDomain {
                    how: format!("tree walk: psd=n at {candidate}"),
                    domain: candidate,
                    queried,
                });
            }
            Some(Psd::Yes) if start > 0 => {
                let org = labels[start - 1..].join(".");
                return Ok(OrgDomain {
                    how: format!("tree walk: psd=y at {candidate}"),
                    domain: org,
                    queried,
                });
            }
            _ => fewest = Some(candidate),
        }
    }
    Ok(match fewest {
        Some(d) => OrgDomain {
            domain: d,
            how: "tree walk: the DMARC record with the fewest labels".to_string(),
            queried,
        },
        None => OrgDomain {
            domain: labels.join("."),
            how: "tree walk found no DMARC record: the domain itself".to_string(),
            queried,
        },
    })
}

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let origin = &desired.origin;
    let name = origin.child("_dmarc");
    let want = super::desired_txt(desired, &name);
    let publish = || match &want {
        Some(w) => format!("publish `{name}. TXT \"{w}\"` (`mailauth apply`)"),
        None => format!("add `dmarc:` for {origin} to the config (start with p: none and rua)"),
    };
    let records = match super::tagged_txt(v.resolver, name.as_str(), "v=DMARC1") {
        Ok(r) => r,
        Err(e) => return vec![Finding::dns(Check::Dmarc, "_dmarc TXT query", &e)],
    };
    let mut out = Vec::new();
    // RFC 9989 §4.7: "If the remaining set contains multiple records or no
    // records, policy discovery terminates and DMARC processing is not
    // applied to this message."
    let text = match records.as_slice() {
        [] => {
            out.push(Finding::warn(
                Check::Dmarc,
                "no DMARC record at _dmarc: receivers fall back to the organizational domain's policy, if any",
                publish(),
            ));
            if want.is_some() {
                out.push(Finding::fail(
                    Check::Dmarc,
                    "the config declares a DMARC record, but none is published at _dmarc",
                    publish(),
                ));
            }
            return out;
        }
        [(one, _)] => one.clone(),
        many => {
            out.push(
                Finding::fail(
                    Check::Dmarc,
                    format!(
                        "{} DMARC records at _dmarc: receivers apply none of them (RFC 9989 §4.7)",
                        many.len()
                    ),
                    "keep exactly one `v=DMARC1` record at _dmarc",
                )
                .with_details(many.iter().map(|(t, _)| t.clone()).collect()),
            );
            return out;
        }
    };
    let record: Dmarc = match text.parse() {
        Ok(r) => r,
        Err(e) => {
            out.push(
                Finding::fail(
                    Check::Dmarc,
                    format!("the DMARC record does not parse: {e}"),
                    publish(),
                )
                .with_details(vec![text]),
            );
            return out;
        }
    };
    out.push(Finding::pass(
        Check::Dmarc,
        format!("one record, p={}", record.effective_policy().as_str()),
    ));
    out.extend(merits(&record));
    match &want {
        Some(w) => {
            let want_canon = w
                .parse::<Dmarc>()
                .map(|d| d.to_string())
                .unwrap_or(w.clone());
            if record.to_string() == want_canon {
                out.push(Finding::pass(Check::Dmarc, "matches the config"));
            } else {
                out.push(
                    Finding::fail(
                        Check::Dmarc,
                        "the published DMARC record differs from the config",
                        "run `mailauth plan` and `mailauth apply`",
                    )
                    .with_details(vec![
                        format!("published: {text}"),
                        format!("config:    {w}"),
                    ]),
                );
            }
        }
        None => out.push(Finding::info(
            Check::Dmarc,
            "the config declares no DMARC record for this domain; the published one is not managed",
        )),
    }

    let org = match organizational_domain(v.resolver, origin.as_str()) {
        Ok(o) => o,
        Err(e) => {
            out.push(Finding::dns(
                Check::Dmarc,
                "organizational domain tree walk",
                &e,
            ));
            return out;
        }
    };
    out.push(
        Finding::info(
            Check::Dmarc,
            format!(
                "organizational domain {} ({}; RFC 7489 receivers use the Public Suffix List instead)",
                org.domain, org.how
            ),
        )
        .with_details(org.queried.clone()),
    );

    out.extend(report_authorizations(
        v.resolver,
        origin,
        &org.domain,
        &record,
    ));
    out
}

/// RFC 7489 §7.1 (kept by RFC 9990 §4): "the Mail Receiver ... MUST query
/// the DNS for a TXT record at `<target-domain>._report._dmarc.<report-domain>`"
/// when the report address is outside the policy's organizational domain; a
/// record beginning `v=DMARC1` authorises it. Without it reports are
/// silently not sent, so a missing authorisation fails.
fn report_authorizations(
    resolver: &Resolver,
    origin: &Name,
    org: &str,
    record: &Dmarc,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let org = Name::parse(org).unwrap_or_else(|_| origin.clone());
    for host in record.report_domains() {
        let Ok(host_name) = Name::parse(&host) else {
            out.push(Finding::fail(
                Check::Dmarc,
                format!("report address domain `{host}` is not a valid domain name"),
                "fix the rua/ruf address in the config",
            ));
            continue;
        };
        if host_name.is_within(&org) {
            continue;
        }
        let auth = report_authorization_name(origin, &host_name);
        match super::tagged_txt(resolver, auth.as_str(), "v=DMARC1") {
            Ok(r) if !r.is_empty() => out.push(Finding::pass(
                Check::Dmarc,
                format!("reports to {host} are authorised by {auth}"),
            )),
            Ok(_) => out.push(Finding::fail(
                Check::Dmarc,
                format!(
                    "reports to {host} are not authorised: no `v=DMARC1` TXT at {auth}; receivers drop them silently"
                ),
                format!("ask the operator of {host} to publish `{auth}. TXT \"v=DMARC1\"`"),
            )),
            Err(e) if e.is_temporary() => out.push(Finding::dns(
                Check::Dmarc,
                &format!("report authorisation {auth}"),
                &e,
            )),
            Err(e) => out.push(Finding::new(Check::Dmarc, Severity::Fail, e.to_string())),
        }
    }
    out
}

/// The verdicts on a parsed record that do not depend on the config.
pub(crate) fn merits(record: &Dmarc) -> Vec<Finding> {
    let mut out = Vec::new();
    // RFC 9989 §4.7: p=none "the Domain Owner requests no specific action
    // be taken": monitoring only, nothing is enforced.
    if record.p == Some(crate::record::dmarc::Policy::None) {
        out.push(Finding::warn(
            Check::Dmarc,
            "p=none: the policy is not enforced (monitoring only); spoofed mail is delivered",
            "move to `p: quarantine`, then `p: reject`, once reports show legitimate mail passes (see `mailauth checklist`)",
        ));
    }
    // RFC 9989 Appendix C.2 removes pct, rf and ri (RFC 7489 §6.3);
    // receivers that implement RFC 9989 ignore them.
    let mut dropped = Vec::new();
    if let Some(pct) = record.pct {
        dropped.push(format!("pct={pct}"));
    }
    if !record.rf.is_empty() {
        dropped.push(format!("rf={}", record.rf.join(":")));
    }
    if let Some(ri) = record.ri {
        dropped.push(format!("ri={ri}"));
    }
    if !dropped.is_empty() {
        let pct_partial = record.pct.is_some_and(|p| p < 100);
        out.push(Finding::warn(
            Check::Dmarc,
            format!(
                "{}: RFC 7489 tags that RFC 9989 removes (Appendix C.2); RFC 9989 receivers ignore them{}",
                dropped.join(", "),
                if pct_partial {
                    " and apply the policy to all mail (use `t=y` for a gradual rollout)"
                } else {
                    ""
                }
            ),
            "drop them (for a gradual rollout use `t: true`)",
        ));
    }
    if record.testing() {
        // RFC 9989 §4.7 (t=y): receivers apply the next less strict policy.
        out.push(Finding::info(
            Check::Dmarc,
            format!(
                "t=y (testing): receivers apply one level less than p={}",
                record.effective_policy().as_str()
            ),
        ));
    }
    if let Some(np) = record.np {
        out.push(Finding::info(
            Check::Dmarc,
            format!(
                "np={}: the policy for non-existent subdomains (RFC 9989 §4.7)",
                np.as_str()
            ),
        ));
    }
    if let Some(psd) = record.psd {
        out.push(Finding::info(
            Check::Dmarc,
            format!(
                "psd={}: public suffix domain flag (RFC 9989 §4.7)",
                psd.as_str()
            ),
        ));
    }
    out
}
