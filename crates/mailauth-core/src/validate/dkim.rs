//! The DKIM check. Every key record found is judged on its merits, the
//! same way whether the config declares its selector or not: it parses
//! (base64, key type against key data), RSA keys of at least 2048 bits are
//! recommended and under 1024 bits fail, `h=sha1` alone fails, `t=y` in
//! production warns, and revoked keys are noted. The selectors looked at
//! are the ones the config declares (or the keystore publishes); a domain
//! that declares none has the [`COMMON_SELECTORS`] probed, plus the
//! selectors the validator was given (`--selector`). A declared selector
//! is also compared with the config: a mismatch is an extra finding, never
//! a replacement for the verdicts on the record. Key syntax is
//! `record::dkim`'s.

use super::{Check, Finding, Validator};
use crate::diff::Desired;
use crate::dns::ResolveError;
use crate::record::dkim::{DkimKey, KeyType};
use crate::record::{RData, RType};

/// Selectors probed for a domain whose config declares none, and by
/// `mailauth import` reading live DNS (which cannot list names): the
/// defaults of the common mail services, then generic names. Kept in this
/// order in docs/import.md.
pub const COMMON_SELECTORS: &[&str] = &[
    // Google Workspace
    "google",
    // Microsoft 365
    "selector1",
    "selector2",
    // Amazon SES (Easy DKIM uses random tokens; these are custom defaults)
    "amazonses",
    // SendGrid
    "s1",
    "s2",
    "smtpapi",
    // Mailchimp / Mandrill
    "k1",
    "k2",
    "k3",
    "mandrill",
    // Mailgun
    "mx",
    "mailo",
    "pic",
    "smtp",
    // Zoho
    "zoho",
    "zmail",
    // Fastmail
    "fm1",
    "fm2",
    "fm3",
    // Proton
    "protonmail",
    "protonmail2",
    "protonmail3",
    // Postmark, Sparkpost, Mailjet, HubSpot, Salesforce
    "pm",
    "scph0316",
    "mailjet",
    "hs1",
    "hs2",
    "sf1",
    "sf2",
    // Generic
    "default",
    "dkim",
    "mail",
    "email",
    "key1",
    "key2",
    "selector",
    "sig1",
];

/// A label no one publishes: an answer at it means a `*._domainkey`
/// wildcard answers for every selector.
const WILDCARD_PROBE: &str = "mailauth-wildcard-probe-7f3a";

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let suffix = desired.origin.child("_domainkey");
    let mut out = Vec::new();
    let mut declared = Vec::new();
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
        declared.push(selector.clone());
        match (&set.rtype, set.data.first()) {
            (RType::Cname, Some(RData::Cname(target))) => {
                out.extend(cname(v, &selector, set.name.as_str(), target.as_str()))
            }
            (RType::Txt, Some(data)) => {
                out.extend(key(v, &selector, set.name.as_str(), data.txt_value()))
            }
            _ => {}
        }
    }
    let mut probe: Vec<String> = v.selectors.clone();
    if declared.is_empty() && v.probe_common {
        probe.extend(COMMON_SELECTORS.iter().map(|s| s.to_string()));
    }
    probe.retain(|s| !declared.contains(s));
    let mut seen = std::collections::BTreeSet::new();
    probe.retain(|s| seen.insert(s.clone()));
    if !probe.is_empty() {
        out.extend(probed(v, desired, &probe));
    }
    if out.is_empty() {
        out.push(Finding::info(
            Check::Dkim,
            format!(
                "no DKIM key found (the config declares no selector; {} common selectors probed)",
                probe.len()
            ),
        ));
    }
    out
}

/// The selectors of `probe` that answer, each judged on its merits. A
/// wildcard is reported once instead of once per selector.
fn probed(v: &Validator, desired: &Desired, probe: &[String]) -> Vec<Finding> {
    let suffix = desired.origin.child("_domainkey");
    let mut out = Vec::new();
    let wildcard = suffix.child(WILDCARD_PROBE);
    match super::tagged_txt(v.resolver, wildcard.as_str(), "") {
        Ok(r) if !r.is_empty() => {
            let mut f = judge(v, "*", suffix.child("*").as_str(), &r);
            f.insert(
                0,
                Finding::info(
                    Check::Dkim,
                    "a wildcard `*._domainkey` record answers for every selector; selectors were not probed one by one",
                ),
            );
            return f;
        }
        Ok(_) => {}
        Err(e) if e.is_temporary() => {
            return vec![Finding::dns(Check::Dkim, "DKIM selector probe", &e)];
        }
        Err(_) => {}
    }
    for sel in probe {
        let name = suffix.child(sel);
        match super::tagged_txt(v.resolver, name.as_str(), "") {
            Ok(r) if r.is_empty() => {}
            Ok(r) => out.extend(judge(v, sel, name.as_str(), &r)),
            Err(e) if e.is_temporary() => {
                out.push(Finding::dns(Check::Dkim, &format!("selector `{sel}`"), &e));
                if e.is_timeout() {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    out
}

/// The verdicts on what is published at one selector name (its TXT
/// records), the same whether or not the config declares the selector.
/// Returns the findings; the first is about presence and syntax.
fn judge(_v: &Validator, selector: &str, name: &str, records: &[(String, usize)]) -> Vec<Finding> {
    // RFC 6376 §3.6.2.2: "TXT RRs MUST be unique for a particular selector
    // name; that is, if there are multiple records in an RRset, the results
    // are undefined."
    let live = match records {
        [] => {
            return vec![Finding::fail(
                Check::Dkim,
                format!("selector `{selector}`: no key published at {name}"),
                format!("publish the key at {name}"),
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
                    format!("publish a valid `v=DKIM1; k=rsa; p=...` record at {name}"),
                )
                .with_details(vec![live]),
            ];
        }
    };
    key_verdicts(selector, &parsed)
}

/// RFC 6376 / RFC 8301 / RFC 8463 verdicts on a parsed key record.
pub(crate) fn key_verdicts(selector: &str, parsed: &DkimKey) -> Vec<Finding> {
    let mut out = Vec::new();
    if parsed.is_revoked() {
        // RFC 6376 §3.6.1: "An empty value means that this public key has
        // been revoked."
        out.push(Finding::info(
            Check::Dkim,
            format!("selector `{selector}`: revoked (empty p=)"),
        ));
        return out;
    }
    out.push(Finding::pass(
        Check::Dkim,
        format!(
            "selector `{selector}`: published, {}",
            match (parsed.key_type(), parsed.rsa_bits()) {
                (KeyType::Rsa, Some(bits)) => format!("{bits}-bit RSA key"),
                (t, _) => format!("{} key", t.as_str()),
            }
        ),
    ));
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
    // RFC 8301 §3.1: "Signers MUST sign using rsa-sha256. Verifiers MUST
    // NOT consider signatures using the rsa-sha1 algorithm valid." A key
    // restricted to sha1 can verify nothing.
    if !parsed.h.is_empty() && !parsed.h.iter().any(|h| h.eq_ignore_ascii_case("sha256")) {
        out.push(Finding::fail(
            Check::Dkim,
            format!(
                "selector `{selector}`: h={} allows no sha256 signature; verifiers reject sha1 (RFC 8301 §3.1)",
                parsed.h.join(":")
            ),
            "drop the `h=` tag (or set `h=sha256`)",
        ));
    }
    if parsed.testing() {
        // RFC 6376 §3.6.1: "Verifiers MUST NOT treat messages from Signers
        // in testing mode differently from unsigned email".
        out.push(Finding::warn(
            Check::Dkim,
            format!(
                "selector `{selector}`: t=y (testing): verifiers may treat signatures as unsigned (RFC 6376 §3.6.1)"
            ),
            "drop `t=y` once signatures verify (`testing: false`)",
        ));
    }
    out
}

fn cname(v: &Validator, selector: &str, name: &str, target: &str) -> Vec<Finding> {
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
                vec![Finding::pass(
                    Check::Dkim,
                    format!("selector `{selector}`: delegated to {target} as configured"),
                )]
            } else if live.is_empty() {
                vec![Finding::fail(
                    Check::Dkim,
                    format!("selector `{selector}`: no CNAME to {target} published"),
                    format!("publish `{name}. CNAME {target}.` (`mailauth apply`)"),
                )]
            } else {
                vec![Finding::fail(
                    Check::Dkim,
                    format!(
                        "selector `{selector}`: CNAME points to {}, the config says {target}",
                        live.join(", ")
                    ),
                    "run `mailauth plan` and `mailauth apply`",
                )]
            }
        }
        Err(ResolveError::NxDomain { .. }) => vec![Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: {name} does not exist"),
            format!("publish `{name}. CNAME {target}.` (`mailauth apply`)"),
        )],
        Err(e) => vec![Finding::dns(
            Check::Dkim,
            &format!("selector `{selector}`"),
            &e,
        )],
    }
}

/// A declared key selector: the verdicts on what is published, then the
/// comparison with the config.
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
    if records.is_empty() {
        return vec![Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: no key published at {name}"),
            fix_publish(),
        )];
    }
    let mut out = judge(v, selector, name, &records);
    let parsed: Option<DkimKey> = match records.as_slice() {
        [(one, _)] => one.parse().ok(),
        _ => None,
    };
    let Some(parsed) = parsed else {
        return out;
    };
    let want_text = want.clone();
    let want: Option<DkimKey> = want.and_then(|w| w.parse().ok());
    let live_text = &records[0].0;
    match &want {
        Some(w) if parsed.is_revoked() && !w.is_revoked() => out.push(Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: revoked in DNS (empty p=), but the config has a key"),
            "run `mailauth apply` to publish the key, or drop the selector from the config",
        )),
        Some(w) if parsed.is_revoked() && w.is_revoked() => out.push(Finding::info(
            Check::Dkim,
            format!("selector `{selector}`: revoked (empty p=), as configured"),
        )),
        Some(w) if w.is_revoked() => out.push(Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: a key is published but the config revokes it"),
            "run `mailauth apply` to publish the empty key",
        )),
        Some(w) if w.p == parsed.p && w.key_type() == parsed.key_type() => {
            out.push(Finding::pass(
                Check::Dkim,
                format!(
                    "selector `{selector}`: published, {} key matches the config",
                    parsed.key_type().as_str()
                ),
            ));
            if want_text.as_deref() != Some(live_text.as_str()) && w.t != parsed.t {
                out.push(Finding::fail(
                    Check::Dkim,
                    format!("selector `{selector}`: the published flags differ from the config"),
                    "run `mailauth plan` and `mailauth apply`",
                ));
            }
        }
        Some(_) => out.push(Finding::fail(
            Check::Dkim,
            format!("selector `{selector}`: the published key differs from the config/keystore"),
            "run `mailauth plan` and `mailauth apply`; signatures made with our key fail now",
        )),
        None => out.push(Finding::info(
            Check::Dkim,
            format!("selector `{selector}`: not compared: the config has no key"),
        )),
    }
    out
}
