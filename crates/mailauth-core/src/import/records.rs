//! Each published record → the config fields that declare it (SPF, DMARC,
//! DKIM, MTA-STS, TLS-RPT), or `verbatim:` with the reason, and the
//! [`Note`]s that say what was found. Leaves checking that the fields
//! reproduce the records to `verify`, and their YAML to `yaml`.

use base64::Engine;

use super::{Model, MtaStsModel, Note, SelectorModel, SpfModel};
use crate::record::dkim::{DkimKey, KeyFlag, KeyType};
use crate::record::dmarc::Dmarc;
use crate::record::mtasts::{MtaSts, MtaStsPolicy};
use crate::record::spf::{Mechanism, Modifier, Qualifier, Spf, Term};
use crate::record::tlsrpt::TlsRpt;
use crate::validate::Severity;

pub(super) fn import_spf(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
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

pub(super) fn import_dmarc(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
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

pub(super) fn import_dkim(sel: &str, text: &str, model: &mut Model, notes: &mut Vec<Note>) {
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

pub(super) fn import_mta_sts(
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

pub(super) fn import_tls_rpt(text: &str, model: &mut Model, notes: &mut Vec<Note>) {
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
