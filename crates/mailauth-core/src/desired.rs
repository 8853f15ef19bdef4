//! Config (+ the public halves of generated keys) → the records each zone
//! must hold. Pure: no I/O, no DNS. Every value is built as a typed record
//! and rendered canonically, so the same config always yields byte-identical
//! records; only `verbatim:` values are published exactly as written. A
//! flattened SPF record (`spf::flatten`, which needs DNS) comes in
//! ready-made through [`desired_flattened`]. The MTA-STS policy file
//! ([`mta_sts_policy`]) is rendered here too, so that the `_mta-sts` id can
//! be derived from it.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;

use crate::config::{
    AlignmentConfig, AllQualifier, BimiConfig, Config, Domain, HostList, KeyType, MtaStsConfig,
    PolicyConfig, SpfConfig,
};
use crate::diff::Desired;
use crate::ownership::{Registry, Slot};
use crate::record::bimi::Bimi;
use crate::record::dkim::{DkimKey, KeyFlag};
use crate::record::dmarc::{Alignment, Dmarc, Policy, ReportUri};
use crate::record::mtasts::{Mode, MtaSts, MtaStsPolicy, policy_id};
use crate::record::spf::{Directive, DomainSpec, Mechanism, Modifier, Qualifier, Spf, Term};
use crate::record::tlsrpt::TlsRpt;
use crate::record::{Name, RData, RType, RecordSet};

/// A DKIM key that must be in DNS now, from the keystore (public data only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedDkim {
    pub selector: String,
    pub key_type: KeyType,
    /// SubjectPublicKeyInfo DER for RSA, the raw 32 bytes for Ed25519.
    pub public_key: Vec<u8>,
    /// Published with an empty `p=` (RFC 6376 §6.1.2).
    pub revoked: bool,
    /// A key apply will generate: its `p=` is [`KNOWN_AFTER_APPLY`].
    pub unknown: bool,
}

/// Stands for a value only apply can know (the public half of a key it
/// generates), as Terraform shows one. Not base64, so no real key record
/// ever holds it; apply replaces it before anything is written.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

#[derive(Debug, thiserror::Error)]
#[error("{domain}: {field}: {message}")]
pub struct DesiredError {
    pub domain: String,
    pub field: String,
    pub message: String,
}

/// The domains of the config, sorted by name.
pub fn domains(config: &Config) -> Vec<(Name, &Domain)> {
    let mut out: Vec<(Name, &Domain)> = config
        .domains
        .iter()
        .filter_map(|(k, d)| Name::parse(&k.value).ok().map(|n| (n, d)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The records `domain` must hold.
pub fn desired(
    config: &Config,
    origin: &Name,
    domain: &Domain,
    keys: &[PublishedDkim],
) -> Result<Desired, DesiredError> {
    desired_flattened(config, origin, domain, keys, None)
}

/// The SPF record the config declares for `domain`, before any
/// flattening (`None` without `spf:`).
pub fn declared_spf(domain: &Domain) -> Result<Option<Spf>, String> {
    domain.spf.as_ref().map(build_spf).transpose()
}

/// [`desired`] with the SPF record replaced by a flattening of it (the
/// apex record and its chained records, which become owned slots).
pub fn desired_flattened(
    config: &Config,
    origin: &Name,
    domain: &Domain,
    keys: &[PublishedDkim],
    flat: Option<&crate::spf::flatten::Flattened>,
) -> Result<Desired, DesiredError> {
    let ttl = domain.ttl.unwrap_or(config.defaults.ttl);
    let err = |field: &str, message: String| DesiredError {
        domain: origin.to_string(),
        field: field.to_string(),
        message,
    };
    let txt =
        |name: Name, value: String| RecordSet::new(name, RType::Txt, ttl, vec![RData::txt(&value)]);
    let dkim_name = |sel: &str| origin.child("_domainkey").child(sel);
    let mut sets = Vec::new();
    let mut spf = None;
    let mut verbatim_spf: Option<String> = None;

    if domain.parked {
        // M3AAWG "Protecting Parked Domains": reject everything, receive
        // nothing (RFC 7505 null MX), and an empty key for every selector.
        spf = Some(Spf {
            terms: vec![directive(Qualifier::Fail, Mechanism::All)],
        });
        let dmarc = Dmarc {
            p: Some(Policy::Reject),
            sp: Some(Policy::Reject),
            adkim: Some(Alignment::Strict),
            aspf: Some(Alignment::Strict),
            ..Dmarc::default()
        };
        sets.push(txt(origin.child("_dmarc"), dmarc.to_string()));
        sets.push(RecordSet::new(
            origin.clone(),
            RType::Mx,
            ttl,
            vec![RData::Mx {
                preference: 0,
                exchange: Name::parse("").expect("root"),
            }],
        ));
        sets.push(txt(
            dkim_name("*"),
            revoked_key(crate::record::dkim::KeyType::Rsa).to_string(),
        ));
    }

    if let Some(cfg) = &domain.spf {
        spf = Some(build_spf(cfg).map_err(|m| err("spf", m))?);
    }
    if let (Some(f), Some(_)) = (flat, &domain.spf) {
        // Checked to parse, published byte for byte as flattened.
        f.apex
            .parse::<Spf>()
            .map_err(|e| err("spf.flatten", format!("{e}")))?;
        for (label, value) in &f.chain {
            let name =
                Name::parse(&format!("{label}.{origin}")).map_err(|m| err("spf.chain", m))?;
            sets.push(txt(name, value.clone()));
        }
    }

    if let Some(cfg) = &domain.dmarc {
        let policy = |p: PolicyConfig| match p {
            PolicyConfig::None => Policy::None,
            PolicyConfig::Quarantine => Policy::Quarantine,
            PolicyConfig::Reject => Policy::Reject,
        };
        let align = |a: AlignmentConfig| match a {
            AlignmentConfig::Relaxed => Alignment::Relaxed,
            AlignmentConfig::Strict => Alignment::Strict,
        };
        let uris = |list: &[serde_saphyr::Spanned<String>], tag: &str| {
            list.iter()
                .map(|u| {
                    u.value
                        .parse::<ReportUri>()
                        .map_err(|e| err(&format!("dmarc.{tag}"), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut dmarc = Dmarc {
            p: Some(policy(cfg.p)),
            sp: cfg.sp.map(policy),
            np: cfg.np.map(policy),
            t: cfg.t,
            adkim: cfg.adkim.map(align),
            aspf: cfg.aspf.map(align),
            rua: uris(&cfg.rua, "rua")?,
            ruf: uris(&cfg.ruf, "ruf")?,
            ..Dmarc::default()
        };
        // fo and psd are parsed by the record type, which knows their grammar.
        let mut extra = String::new();
        if let Some(fo) = &cfg.fo {
            extra.push_str(&format!("; fo={}", fo.value));
        }
        if let Some(psd) = &cfg.psd {
            extra.push_str(&format!("; psd={}", psd.value));
        }
        if !extra.is_empty() {
            let parsed: Dmarc = format!("v=DMARC1{extra}")
                .parse()
                .map_err(|e: crate::record::dmarc::DmarcError| err("dmarc", e.to_string()))?;
            dmarc.fo = parsed.fo;
            dmarc.psd = parsed.psd;
        }
        sets.push(txt(origin.child("_dmarc"), dmarc.to_string()));
    }

    if let Some(cfg) = &domain.dkim {
        for (i, sel) in cfg.selectors.iter().enumerate() {
            let field = format!("dkim.selectors[{i}]");
            let Some(name) = &sel.name else { continue };
            if let Some(target) = &sel.cname {
                let target = Name::parse(&target.value).map_err(|m| err(&field, m))?;
                sets.push(RecordSet::new(
                    dkim_name(&name.value),
                    RType::Cname,
                    ttl,
                    vec![RData::Cname(target)],
                ));
            } else if let Some(pk) = &sel.public_key {
                let compact: String = pk.value.split_whitespace().collect();
                let p = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| err(&field, format!("public_key: {e}")))?;
                let mut key = DkimKey {
                    p,
                    ..revoked_key(key_type(sel.key_type.unwrap_or(KeyType::Rsa)))
                };
                if sel.testing {
                    key.t.push(KeyFlag::Testing);
                }
                sets.push(txt(dkim_name(&name.value), key.to_string()));
            }
        }
    }
    for k in keys {
        let mut key = revoked_key(key_type(k.key_type));
        if !k.revoked {
            key.p = k.public_key.clone();
        }
        let mut value = key.to_string();
        if k.unknown {
            value.push_str(KNOWN_AFTER_APPLY);
        }
        sets.push(txt(dkim_name(&k.selector), value));
    }

    // Verbatim records: published exactly as written (config checks keep
    // each apart from its typed field).
    if let Some(v) = &domain.verbatim {
        if let Some(s) = &v.spf {
            verbatim_spf = Some(s.value.clone());
        }
        if let Some(d) = &v.dmarc {
            sets.push(txt(origin.child("_dmarc"), d.value.clone()));
        }
        for (sel, value) in &v.dkim {
            let name = Name::parse(sel).map_err(|m| err(&format!("verbatim.dkim.{sel}"), m))?;
            sets.push(txt(dkim_name(name.as_str()), value.value.clone()));
        }
        if let Some(m) = &v.mta_sts {
            sets.push(txt(origin.child("_mta-sts"), m.value.clone()));
        }
        if let Some(t) = &v.tls_rpt {
            sets.push(txt(origin.child("_tls").child("_smtp"), t.value.clone()));
        }
    }

    if let Some(cfg) = &domain.mta_sts {
        let policy = mta_sts_policy(cfg).map_err(|(f, m)| err(f, m))?;
        let id = match &cfg.id {
            Some(id) => id.value.clone(),
            None => policy_id(&policy),
        };
        let rec: MtaSts = format!("v=STSv1; id={id}")
            .parse()
            .map_err(|e: crate::record::mtasts::MtaStsError| err("mta_sts.id", e.to_string()))?;
        sets.push(txt(origin.child("_mta-sts"), rec.to_string()));
    }
    if let Some(cfg) = &domain.bimi {
        let rec = bimi_record(cfg).map_err(|(f, m)| err(f, m))?;
        sets.push(txt(
            origin.child("_bimi").child(cfg.selector()),
            rec.to_string(),
        ));
    }
    if let Some(cfg) = &domain.tls_rpt {
        let list: Vec<&str> = cfg.rua.iter().map(|u| u.value.as_str()).collect();
        let rec: TlsRpt = format!("v=TLSRPTv1; rua={}", list.join(","))
            .parse()
            .map_err(|e: crate::record::tlsrpt::TlsRptError| err("tls_rpt.rua", e.to_string()))?;
        sets.push(txt(origin.child("_tls").child("_smtp"), rec.to_string()));
    }

    // The registry lists every slot declared above, so that a slot dropped
    // from the config later is deleted, and nothing else ever is.
    let mut registry = Registry::default();
    registry.slots.extend(
        sets.iter()
            .map(|s| Slot::RrSet(s.name.clone(), s.rtype.clone())),
    );
    if spf.is_some() || verbatim_spf.is_some() {
        registry.slots.insert(Slot::ApexSpf);
    }
    if !registry.slots.is_empty() {
        registry
            .slots
            .insert(Slot::RrSet(Registry::name(origin), RType::Txt));
        sets.push(RecordSet::new(
            Registry::name(origin),
            RType::Txt,
            ttl,
            vec![registry.rdata(origin)],
        ));
    }
    sets.sort_by_key(RecordSet::key);
    Ok(Desired {
        origin: origin.clone(),
        sets,
        spf: match verbatim_spf {
            Some(v) => Some((RData::txt(&v), ttl)),
            None => spf.map(|s| {
                let text = match flat {
                    Some(f) if domain.spf.is_some() => f.apex.clone(),
                    _ => s.to_string(),
                };
                (RData::txt(&text), ttl)
            }),
        },
    })
}

/// The policy file the `mta_sts` block declares (RFC 8461 §3.2), or the
/// field at fault and why.
pub fn mta_sts_policy(cfg: &MtaStsConfig) -> Result<MtaStsPolicy, (&'static str, String)> {
    let mode = match cfg.mode.value.as_str() {
        "enforce" => Mode::Enforce,
        "testing" => Mode::Testing,
        "none" => Mode::None,
        other => {
            return Err((
                "mta_sts.mode",
                format!("`{other}` is not enforce, testing or none"),
            ));
        }
    };
    let policy = MtaStsPolicy {
        mode,
        mx: cfg
            .mx
            .iter()
            .map(|m| m.value.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        max_age: cfg
            .max_age
            .unwrap_or(crate::validate::mtasts::DEFAULT_MAX_AGE),
        extensions: Vec::new(),
    };
    // Rendered and read back: the policy a sender will read, checked by
    // the same parser.
    policy
        .to_string()
        .parse::<MtaStsPolicy>()
        .map_err(|e| ("mta_sts", e.to_string()))
}

/// The BIMI record the `bimi` block declares.
pub fn bimi_record(cfg: &BimiConfig) -> Result<Bimi, (&'static str, String)> {
    if cfg.declined {
        return Ok(Bimi::declined());
    }
    let text = format!(
        "v=BIMI1; l={}; a={}",
        cfg.logo.as_ref().map_or("", |l| l.value.as_str()),
        cfg.authority.as_ref().map_or("", |a| a.value.as_str())
    );
    text.parse::<Bimi>().map_err(|e| ("bimi", e.to_string()))
}

fn key_type(k: KeyType) -> crate::record::dkim::KeyType {
    match k {
        KeyType::Rsa => crate::record::dkim::KeyType::Rsa,
        KeyType::Ed25519 => crate::record::dkim::KeyType::Ed25519,
    }
}

/// `v=DKIM1; k=<type>; p=` — a key record with no key (revoked until `p`
/// is filled in).
fn revoked_key(k: crate::record::dkim::KeyType) -> DkimKey {
    DkimKey {
        v: true,
        h: Vec::new(),
        k: Some(k),
        n: None,
        p: Vec::new(),
        s: Vec::new(),
        t: Vec::new(),
    }
}

fn directive(qualifier: Qualifier, mechanism: Mechanism) -> Term {
    Term::Directive(Directive {
        qualifier,
        mechanism,
    })
}

/// RFC 7208 §4.6.2: mechanisms are evaluated left to right, so the ones
/// that cost no DNS lookup (ip4, ip6) come first, then a, mx, include,
/// exists, and `all` (or `redirect`) last.
fn build_spf(cfg: &SpfConfig) -> Result<Spf, String> {
    let mut terms = Vec::new();
    let pass = |m| directive(Qualifier::Pass, m);
    for net in &cfg.ip4 {
        let (addr, prefix) = crate::config::parse_net::<Ipv4Addr>(&net.value, 32)
            .map_err(|()| format!("`{}` is not an IPv4 network", net.value))?;
        terms.push(pass(Mechanism::Ip4 { addr, prefix }));
    }
    for net in &cfg.ip6 {
        let (addr, prefix) = crate::config::parse_net::<Ipv6Addr>(&net.value, 128)
            .map_err(|()| format!("`{}` is not an IPv6 network", net.value))?;
        terms.push(pass(Mechanism::Ip6 { addr, prefix }));
    }
    let spec = |s: &str| DomainSpec::literal(s).map_err(|e| e.to_string());
    let hosts = |h: &Option<HostList>| -> Result<Vec<Option<DomainSpec>>, String> {
        Ok(match h {
            None | Some(HostList::Enabled(false)) => vec![],
            Some(HostList::Enabled(true)) => vec![None],
            Some(HostList::Names(names)) => names
                .iter()
                .map(|n| spec(&n.value).map(Some))
                .collect::<Result<_, _>>()?,
        })
    };
    for domain in hosts(&cfg.a)? {
        terms.push(pass(Mechanism::A {
            domain,
            cidr4: None,
            cidr6: None,
        }));
    }
    for domain in hosts(&cfg.mx)? {
        terms.push(pass(Mechanism::Mx {
            domain,
            cidr4: None,
            cidr6: None,
        }));
    }
    for inc in &cfg.include {
        terms.push(pass(Mechanism::Include(spec(&inc.value)?)));
    }
    for e in &cfg.exists {
        terms.push(pass(Mechanism::Exists(
            e.value.parse::<DomainSpec>().map_err(|e| e.to_string())?,
        )));
    }
    match (&cfg.redirect, cfg.all) {
        (Some(r), None) => terms.push(Term::Modifier(Modifier::Redirect(spec(&r.value)?))),
        (Some(_), Some(_)) => {
            return Err("`redirect` and `all` exclude each other: RFC 7208 §6.1 ignores redirect when all is present".into());
        }
        (None, all) => {
            let q = match all.unwrap_or(AllQualifier::Fail) {
                AllQualifier::Fail => Qualifier::Fail,
                AllQualifier::Softfail => Qualifier::SoftFail,
                AllQualifier::Neutral => Qualifier::Neutral,
            };
            terms.push(directive(q, Mechanism::All));
        }
    }
    Ok(Spf { terms })
}
