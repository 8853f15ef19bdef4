//! The MX check (mail exchangers present, or the RFC 7505 null MX of a
//! parked domain) and the MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) TXT
//! records, judged on their merits whether or not the config declares
//! them (a declared record is also compared with the config). When the validator fetches
//! policies, the MTA-STS check goes on to the policy file in
//! [`super::mtasts`]; record syntax is `record`'s.

use super::{Check, Finding, Validator};
use crate::diff::Desired;
use crate::dns::ResolveError;
use crate::record::mtasts::MtaSts;
use crate::record::tlsrpt::TlsRpt;
use crate::record::{RData, RType};

pub(super) fn check_mx(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let domain = desired.origin.as_str();
    let want = desired
        .sets
        .iter()
        .find(|s| s.name == desired.origin && s.rtype == RType::Mx);
    // RFC 7505 §3: "a domain that advertises a single MX RR with an
    // RDLENGTH of 1 and an exchange of "." does not accept mail".
    let want_null = want.is_some_and(|s| {
        s.data
            .iter()
            .any(|d| matches!(d, RData::Mx { exchange, .. } if exchange.as_str().is_empty()))
    });
    let live = match v.resolver.mx(domain) {
        Ok(m) => m,
        Err(ResolveError::NxDomain { .. }) => Vec::new(),
        Err(e) => return vec![Finding::dns(Check::Mx, "MX query", &e)],
    };
    let null = live.len() == 1 && live[0].exchange.is_empty();
    let list = || {
        live.iter()
            .map(|m| {
                let ex = if m.exchange.is_empty() {
                    "."
                } else {
                    &m.exchange
                };
                format!("{} {ex}", m.preference)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if want_null {
        return vec![if null {
            Finding::pass(Check::Mx, "null MX (RFC 7505): the domain accepts no mail")
        } else if live.is_empty() {
            Finding::fail(
                Check::Mx,
                "no MX: senders fall back to the A/AAAA records of a parked domain",
                format!("publish `{domain}. MX 0 .` (`mailauth apply`)"),
            )
        } else {
            Finding::fail(
                Check::Mx,
                format!("parked in the config, but MX is {}", list()),
                "run `mailauth apply` to publish the null MX",
            )
        }];
    }
    if live.is_empty() {
        // RFC 5321 §5.1: with no MX, the domain itself is the implicit MX.
        return vec![Finding::warn(
            Check::Mx,
            "no MX records: senders try the domain's A/AAAA records (RFC 5321 §5.1)",
            "publish MX records, or a null MX (`MX 0 .`, or `parked: true`) if the domain takes no mail",
        )];
    }
    if null {
        return vec![Finding::info(
            Check::Mx,
            "null MX (RFC 7505): the domain accepts no mail",
        )];
    }
    if live.iter().any(|m| m.exchange.is_empty()) {
        return vec![Finding::fail(
            Check::Mx,
            format!(
                "a null MX next to other MX records ({}): RFC 7505 §3 forbids it",
                list()
            ),
            "remove the `MX 0 .` record or the others",
        )];
    }
    vec![Finding::pass(Check::Mx, format!("MX {}", list()))]
}

pub(super) fn check_mta_sts(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let name = desired.origin.child("_mta-sts");
    let want = super::desired_txt(desired, &name);
    // RFC 8461 §3.1: "If multiple TXT records for "_mta-sts" are returned
    // by the resolver, records that do not begin with "v=STSv1;" are
    // discarded. If the number of resulting records is not one, or if the
    // resulting record is syntactically invalid, senders MUST assume the
    // recipient domain does not have an available MTA-STS Policy."
    let (mut findings, live) = one_record(
        v,
        Check::MtaSts,
        name.as_str(),
        "v=STSv1",
        want.as_deref(),
        |t| {
            t.parse::<MtaSts>()
                .map(|r| r.to_string())
                .map_err(|e| e.to_string())
        },
    );
    if findings.iter().any(|f| f.timed_out) {
        return findings;
    }
    // A policy is fetched when the config declares one or a record
    // announces one; a domain with neither has nothing to fetch.
    let announced = live.is_some() || want.is_some();
    if let Some(check) = &v.policy
        && (announced || check.declared.contains_key(desired.origin.as_str()))
    {
        let id = live.and_then(|t| t.parse::<MtaSts>().ok()).map(|r| r.id);
        findings.extend(super::mtasts::check_policy(
            v,
            check,
            desired,
            id.as_deref(),
        ));
    }
    findings
}

pub(super) fn check_tls_rpt(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let name = desired.origin.child("_tls").child("_smtp");
    let want = super::desired_txt(desired, &name);
    // RFC 8460 §3: "If the number of resulting records is not one, senders
    // MUST assume the recipient domain does not implement TLSRPT."
    one_record(
        v,
        Check::TlsRpt,
        name.as_str(),
        "v=TLSRPTv1",
        want.as_deref(),
        |t| {
            t.parse::<TlsRpt>()
                .map(|r| r.to_string())
                .map_err(|e| e.to_string())
        },
    )
    .0
}

/// The findings about the one `prefix` record at `name`, and its text when
/// there is exactly one and it parses. The record is judged the same way
/// whether or not the config declares it (`want`); when it does, the
/// comparison is an extra finding.
fn one_record(
    v: &Validator,
    check: Check,
    name: &str,
    prefix: &str,
    want: Option<&str>,
    canonical: impl Fn(&str) -> Result<String, String>,
) -> (Vec<Finding>, Option<String>) {
    let publish = || match want {
        Some(w) => format!("publish `{name}. TXT \"{w}\"` (`mailauth apply`)"),
        None => format!("publish one valid `{prefix}` record at {name}"),
    };
    let records = match super::tagged_txt(v.resolver, name, prefix) {
        Ok(r) => r,
        Err(e) => {
            return (
                vec![Finding::dns(check, &format!("{name} TXT query"), &e)],
                None,
            );
        }
    };
    let text = match records.as_slice() {
        [] => {
            let mut out = vec![Finding::info(
                check,
                format!("no `{prefix}` record at {name}: not deployed"),
            )];
            if want.is_some() {
                out.push(Finding::fail(
                    check,
                    format!(
                        "the config declares a record, but there is no `{prefix}` record at {name}"
                    ),
                    publish(),
                ));
            }
            return (out, None);
        }
        [(one, _)] => one,
        many => {
            return (
                vec![
                    Finding::fail(
                        check,
                        format!(
                            "{} `{prefix}` records at {name}: senders ignore them all",
                            many.len()
                        ),
                        "keep exactly one record",
                    )
                    .with_details(many.iter().map(|(t, _)| t.clone()).collect()),
                ],
                None,
            );
        }
    };
    let live = match canonical(text) {
        Ok(c) => c,
        Err(e) => {
            return (
                vec![
                    Finding::fail(
                        check,
                        format!("the record at {name} does not parse: {e}"),
                        publish(),
                    )
                    .with_details(vec![text.clone()]),
                ],
                None,
            );
        }
    };
    let valid = Finding::pass(check, format!("{name}: one valid record"));
    let mut findings = Vec::new();
    match want {
        None => findings.push(valid),
        Some(want) if live == canonical(want).unwrap_or_else(|_| want.to_string()) => {
            findings.push(Finding::pass(
                check,
                format!("{name}: one valid record, matches the config"),
            ));
        }
        Some(want) => {
            findings.push(valid);
            findings.push(
                Finding::fail(
                    check,
                    format!("{name} differs from the config"),
                    "run `mailauth plan` and `mailauth apply`",
                )
                .with_details(vec![
                    format!("published: {text}"),
                    format!("config:    {want}"),
                ]),
            );
        }
    }
    (findings, Some(text.clone()))
}
