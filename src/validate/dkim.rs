//! The DKIM check: every selector the config declares (or the keystore
//! publishes) is in DNS, parses, and carries the same public key; RSA keys
//! of at least 2048 bits are recommended and under 1024 bits fail; `t=y`
//! and revoked keys are noted. Key syntax is `record::dkim`'s.

use super::{Check, Finding, Validator};
use crate::diff::Desired;
use crate::dns::ResolveError;
use crate::record::dkim::DkimKey;
use crate::record::{RData, RType};

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let suffix = desired.origin.child("_domainkey");
    let mut out = Vec::new();
    for set in &desired.sets {
        if !set.name.is_within(&suffix) || set.name == suffix {
            continue;
        }
        let selector = set
            .name
            .as_str()
            .strip_suffix(suffix.as_str())
            .unwrap_or(set.name.as_str())
            .trim_end_matches('.')
            .to_string();
        match (&set.rtype, set.data.first()) {
            (RType::Cname, Some(RData::Cname(target))) => {
                out.push(cname(v, &selector, set.name.as_str(), target.as_str()))
            }
            (RType::Txt, Some(data)) => {
                out.extend(key(v, &selector, set.name.as_str(), data.txt_value()))
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push(Finding::info(
            Check::Dkim,
            "the config declares no DKIM selector for this domain",
        ));
    }
    out
}

fn cname(v: &Validator, selector: &str, name: &str, target: &str) -> Finding {
    match v
        .resolver
        .lookup(name, hickory_resolver::proto::rr::RecordType::CNAME)
    {
        Ok(records) => {
            let live: Vec<String> = records
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::CNAME(c) => {
                        let t = c.0.to_ascii().to_ascii_lowercase();
                        Some(t.trim_end_matches('.').to_string())
                    }
                    _ => None,
                })
                .collect();
            if live.iter().any(|t| t == target) {
                Finding::pass(
                    Check::Dkim,
                    format!("selector `{selector}`: delegated to {target} as configured"),
                )
            } else if live.is_empty() {
                Finding::fail(
                    Check::Dkim,
                    format!("selector `{selector}`: no CNAME to {target} published"),
                    format!("publish `{name}. CNAME {target}.` (`mailauth apply`)"),
                )
            } else {
                Finding::fail(
                    Check::Dkim,
                    format!(
                        "selector `{selector}`: CNAME points to {}, the config says {target}",
                        live.join(", ")
                    ),
                    "run `mailauth plan` and `mailauth apply`",
                )
            }
        }
        Err(ResolveError::NxDomain { .. }) => Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: {name} does not exist"),
            format!("publish `{name}. CNAME {target}.` (`mailauth apply`)"),
        ),
        Err(e) => Finding::dns(Check::Dkim, &format!("selector `{selector}`"), &e),
    }
}

fn key(v: &Validator, selector: &str, name: &str, want: Option<String>) -> Vec<Finding> {
    let fix_publish = || format!("publish the key at {name} (`mailauth apply`)");
    let records = match super::tagged_txt(v.resolver, name, "") {
        Ok(r) => r,
        Err(e) => {
            return vec![Finding::dns(
                Check::Dkim,
                &format!("selector `{selector}`"),
                &e,
            )];
        }
    };
    // RFC 6376 §3.6.2.2: "TXT RRs MUST be unique for a particular selector
    // name; that is, if there are multiple records in an RRset, the results
    // are undefined."
    let live = match records.as_slice() {
        [] => {
            return vec![Finding::fail(
                Check::Dkim,
                format!("selector `{selector}`: no key published at {name}"),
                fix_publish(),
            )];
        }
        [(one, _)] => one.clone(),
        many => {
            return vec![Finding::fail(
                Check::Dkim,
                format!(
                    "selector `{selector}`: {} TXT records; verifiers' results are undefined (RFC 6376 §3.6.2.2)",
                    many.len()
                ),
                format!("keep exactly one key record at {name}"),
            )];
        }
    };
    let parsed: DkimKey = match live.parse() {
        Ok(k) => k,
        Err(e) => {
            return vec![
                Finding::fail(
                    Check::Dkim,
                    format!("selector `{selector}`: the key record does not parse: {e}"),
                    fix_publish(),
                )
                .with_details(vec![live]),
            ];
        }
    };
    let want: Option<DkimKey> = want.and_then(|w| w.parse().ok());
    let mut out = Vec::new();
    if parsed.is_revoked() {
        // RFC 6376 §3.6.1: "An empty value means that this public key has
        // been revoked."
        match &want {
            Some(w) if !w.is_revoked() => out.push(Finding::fail(
                Check::Dkim,
                format!(
                    "selector `{selector}`: revoked in DNS (empty p=), but the config has a key"
                ),
                "run `mailauth apply` to publish the key, or drop the selector from the config",
            )),
            _ => out.push(Finding::info(
                Check::Dkim,
                format!("selector `{selector}`: revoked (empty p=), as configured"),
            )),
        }
        return out;
    }
    match &want {
        Some(w) if w.p == parsed.p && w.key_type() == parsed.key_type() => out.push(Finding::pass(
            Check::Dkim,
            format!(
                "selector `{selector}`: published, {} key matches the config",
                parsed.key_type().as_str()
            ),
        )),
        Some(w) if w.is_revoked() => out.push(Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: a key is published but the config revokes it"),
            "run `mailauth apply` to publish the empty key",
        )),
        Some(_) => out.push(Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: the published key differs from the config/keystore"),
            "run `mailauth plan` and `mailauth apply`; signatures made with our key fail now",
        )),
        None => out.push(Finding::info(
            Check::Dkim,
            format!("selector `{selector}`: published (not compared: the config has no key)"),
        )),
    }
    if let Some(bits) = parsed.rsa_bits() {
        // RFC 8301 §3.2: "Signers MUST use RSA keys of at least 1024 bits
        // for all keys. Signers SHOULD use RSA keys of at least 2048 bits."
        if bits < 1024 {
            out.push(Finding::fail(
                Check::Dkim,
                format!("selector `{selector}`: {bits}-bit RSA key; verifiers reject keys under 1024 bits (RFC 8301 §3.2)"),
                "generate a 2048-bit key under a new selector and rotate",
            ));
        } else if bits < 2048 {
            out.push(Finding::warn(
                Check::Dkim,
                format!("selector `{selector}`: {bits}-bit RSA key; at least 2048 bits is recommended (RFC 8301 §3.2)"),
                "generate a 2048-bit key under a new selector and rotate",
            ));
        }
    }
    if parsed.testing() {
        out.push(Finding::info(
            Check::Dkim,
            format!(
                "selector `{selector}`: t=y (testing): verifiers may treat signatures as unsigned"
            ),
        ));
    }
    out
}
