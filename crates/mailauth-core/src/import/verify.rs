//! Checking an imported [`Model`] against the records it must reproduce,
//! through the same `config` loader and `desired` builder that `plan` uses,
//! so that "the next plan changes nothing" is checked, not guessed. Leaves
//! reading the records and building the model to the parent module.

use std::path::Path;

use super::{Model, Note, SelectorModel, one_txt, render};
use crate::record::{Name, RData, RType, Zone};
use crate::validate::Severity;

/// Loads `model` as a config and compares what `desired` builds with what
/// `zone` publishes, part by part; a typed part that differs is moved to
/// `verbatim:`. What still differs is noted as unrepresented.
pub(super) fn verify(
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
