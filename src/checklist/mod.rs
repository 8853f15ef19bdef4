//! `mailauth checklist DOMAIN`: the onboarding journey of one domain toward
//! DMARC `p=reject`, as eleven items with a status each (done, open,
//! blocked, not applicable), the evidence behind it, and for open items the
//! exact next action: a YAML change with the plan it would produce, or what
//! to do outside the config, and why it is safe now or which data is
//! missing.
//!
//! Owns the journey model and its decisions ([`compute`], pure), gathering
//! the facts it needs ([`gather`]) and the `plan` hint ([`plan_hint`]).
//! Leaves every DNS verdict to `validate` (it reads its findings and never
//! re-checks records), SQL to `reports::store`, record syntax to `record`,
//! and the plan of a proposed change to `desired` and `diff` (see
//! [`change`]). Rendering is in [`render`].

mod change;
pub mod cli;
mod journey;
pub mod render;

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::diff::Desired;
use crate::dns::{ResolveError, Resolver};
use crate::record::Name;
use crate::record::dmarc::Dmarc;
use crate::record::spf::Spf;
use crate::reports::store::{ChecklistQueries, FailingSource, StoreError, Volume};
use crate::validate::{self, DomainReport, Validator};
use crate::workspace::Workspace;

pub use change::{ConfigDoc, ProposedChange, merge, plan_lines, render_yaml};
pub use journey::compute;

/// Errors that stop a checklist from being computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChecklistError {
    #[error("cannot read the config {path} for editing: {message}")]
    ConfigRead { path: PathBuf, message: String },
    #[error("`{value}` is not a domain name: {message}")]
    Domain { value: String, message: String },
    #[error("the desired records of {domain} cannot be computed: {message}")]
    Desired { domain: String, message: String },
    #[error("report database: {source}")]
    Store {
        #[from]
        source: StoreError,
    },
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    #[error("{message}")]
    Settings { message: String },
}

/// The state of one item.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Done,
    /// Something can be done now.
    Open,
    /// Waits for an earlier item or for data.
    Blocked,
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Open => "open",
            Status::Blocked => "blocked",
            Status::NotApplicable => "n/a",
        }
    }
}

/// What to do about an open item.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NextAction {
    /// Edit the config as shown; the plan is what `mailauth plan` would
    /// then show.
    Config(ProposedChange),
    /// The config already says it: publish it.
    Apply { text: String },
    /// Something outside the config (another party's DNS, a mailbox).
    Manual { text: String },
    /// Nothing to do but wait for data.
    Wait { text: String },
}

/// One step of the journey.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub number: u8,
    pub title: String,
    pub status: Status,
    /// What the status rests on (live DNS, config, report data).
    pub evidence: Vec<String>,
    /// Whether the policy cannot safely advance while this item is open.
    pub blocking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<NextAction>,
    /// Why the next action is safe now, or which data is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The thresholds of the journey.
#[derive(schemars::JsonSchema, Clone, Debug, Serialize)]
pub struct Settings {
    /// Days of aggregate data needed before the policy may advance.
    pub min_days: i64,
    /// Window for the alignment rate, in days.
    pub window_days: i64,
    /// Share of volume that must pass DMARC over the window.
    pub pass_ratio: f64,
    /// Now: Unix seconds, printed in RFC 3339 UTC.
    #[serde(serialize_with = "crate::output::rfc3339")]
    #[schemars(with = "crate::output::Rfc3339")]
    pub now: i64,
    /// Mailboxes `mailauth reports ingest` reads (`--reads`).
    pub reads: Vec<String>,
}

impl Settings {
    pub fn new(now: i64) -> Settings {
        Settings {
            min_days: 14,
            window_days: 14,
            pass_ratio: 0.98,
            now,
            reads: Vec::new(),
        }
    }
}

/// Report data for the domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportFacts {
    /// Distinct days with aggregate data in the last 30 days.
    pub days: i64,
    /// Volume over the alignment window.
    pub volume: Volume,
    /// Sources that did not pass DMARC over the window, with what the
    /// config and live SPF say about each.
    pub failing: Vec<(FailingSource, Vec<String>)>,
    /// Failing messages of sources classified as forwarding or mailing
    /// lists (`reports::sources::classify`): they do not block an
    /// enforcing policy.
    pub forwarded: i64,
}

/// Everything observed about a domain: the config, live DNS as the
/// validate engine sees it, and the report store.
#[derive(Clone, Debug)]
pub struct Facts {
    pub domain: Name,
    /// The config file, for proposing edits.
    pub doc: ConfigDoc,
    pub in_config: bool,
    pub parked: bool,
    /// The desired records (empty when not in the config).
    pub desired: Desired,
    /// Config facts the journey needs.
    pub config: ConfigFacts,
    /// The validate engine's findings.
    pub live: DomainReport,
    /// The one live DMARC record, parsed.
    pub dmarc: Option<Dmarc>,
    /// The one live SPF record, parsed.
    pub spf: Option<Spf>,
    /// `None` without a report database.
    pub reports: Option<ReportFacts>,
}

/// What the config declares that the journey looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFacts {
    pub has_spf: bool,
    pub has_dkim: bool,
    pub has_dmarc: bool,
    pub has_mta_sts: bool,
    pub has_tls_rpt: bool,
    pub has_bimi: bool,
    /// Selector names (`name`) and family prefixes (`prefix`).
    pub selectors: Vec<String>,
    pub prefixes: Vec<String>,
    /// `(prefix, rotate_every)` of rotated families.
    pub rotations: Vec<(String, String)>,
    pub includes: Vec<String>,
}

impl ConfigFacts {
    fn of(d: &crate::config::Domain) -> ConfigFacts {
        let mut c = ConfigFacts {
            has_spf: d.spf.is_some(),
            has_dkim: d.dkim.is_some(),
            has_dmarc: d.dmarc.is_some(),
            has_mta_sts: d.mta_sts.is_some(),
            has_tls_rpt: d.tls_rpt.is_some(),
            has_bimi: d.bimi.is_some(),
            ..ConfigFacts::default()
        };
        if let Some(spf) = &d.spf {
            c.includes = spf
                .include
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
        }
        for sel in d.dkim.iter().flat_map(|k| &k.selectors) {
            if let Some(n) = &sel.name {
                c.selectors.push(n.value.clone());
            }
            if let Some(p) = &sel.prefix {
                c.prefixes.push(p.value.clone());
                if let Some(r) = &sel.rotate_every {
                    c.rotations.push((p.value.clone(), r.value.clone()));
                }
            }
        }
        c
    }
}

/// The computed checklist.
#[derive(schemars::JsonSchema, Clone, Debug, Serialize)]
pub struct Checklist {
    pub domain: String,
    pub in_config: bool,
    pub parked: bool,
    pub items: Vec<Item>,
    /// The item to act on next, if any.
    pub next_step: Option<u8>,
    pub settings: Settings,
}

impl Checklist {
    pub fn item(&self, number: u8) -> Option<&Item> {
        self.items.iter().find(|i| i.number == number)
    }
}

/// Where the facts come from.
pub struct Sources<'a> {
    /// The loaded config, when there is one.
    pub ws: Option<&'a Workspace>,
    pub resolver: &'a Resolver,
    pub store: Option<&'a dyn ChecklistQueries>,
    /// The same store's dashboard queries, for classifying failing
    /// sources (forwarding vs the rest); `None` counts no forwarding.
    pub senders: Option<&'a dyn crate::reports::dashq::DashboardQueries>,
}

const SECS_PER_DAY: i64 = 86_400;
/// Days with data are counted over this many days.
const DAYS_LOOKBACK: i64 = 30;
/// Failing sources listed.
const MAX_SOURCES: usize = 10;

/// Gathers the facts about `domain`: desired records, the validate
/// engine's findings (without the propagation check), the live DMARC and
/// SPF records, and report data.
pub fn gather(src: &Sources, domain: &Name, settings: &Settings) -> Result<Facts, ChecklistError> {
    let (doc, cfg_domain) = match src.ws {
        Some(ws) => {
            let found = crate::desired::domains(&ws.config)
                .into_iter()
                .find(|(n, _)| n == domain)
                .map(|(_, d)| d);
            (ConfigDoc::read(&ws.path)?, found)
        }
        None => (ConfigDoc::empty(), None),
    };
    let desired = match (src.ws, cfg_domain) {
        (Some(ws), Some(_)) => {
            ws.desired_resolved(domain, src.resolver)
                .map_err(|e| ChecklistError::Desired {
                    domain: domain.to_string(),
                    message: e.to_string(),
                })?
        }
        _ => Desired {
            origin: domain.clone(),
            sets: Vec::new(),
            spf: None,
        },
    };
    let vsettings = validate::Settings {
        propagation: false,
        ..validate::Settings::default()
    };
    let live = Validator::new(src.resolver, vsettings).domain(domain, Ok(&desired));
    let dmarc = one_record(src.resolver, &domain.child("_dmarc"), "v=DMARC1")
        .and_then(|t| t.parse::<Dmarc>().ok());
    let spf = one_record(src.resolver, domain, "v=spf1").and_then(|t| t.parse::<Spf>().ok());
    let config = cfg_domain.map(ConfigFacts::of).unwrap_or_default();
    let reports = match src.store {
        None => None,
        Some(store) => Some(report_facts(
            store,
            src.senders,
            src.resolver,
            domain,
            &config,
            settings,
        )?),
    };
    Ok(Facts {
        domain: domain.clone(),
        doc,
        in_config: cfg_domain.is_some(),
        parked: cfg_domain.is_some_and(|d| d.parked),
        desired,
        config,
        live,
        dmarc,
        spf,
        reports,
    })
}

/// The text of the single TXT record at `name` starting with `prefix`;
/// `None` when there is none, several, or the query fails (the validate
/// findings say which).
fn one_record(resolver: &Resolver, name: &Name, prefix: &str) -> Option<String> {
    let records = resolver.txt_records(name.as_str()).ok()?;
    let matching: Vec<String> = records
        .iter()
        .map(|r| r.text())
        .filter(|t| t.len() >= prefix.len() && t[..prefix.len()].eq_ignore_ascii_case(prefix))
        .collect();
    match matching.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn report_facts(
    store: &dyn ChecklistQueries,
    senders: Option<&dyn crate::reports::dashq::DashboardQueries>,
    resolver: &Resolver,
    domain: &Name,
    config: &ConfigFacts,
    s: &Settings,
) -> Result<ReportFacts, ChecklistError> {
    let d = domain.as_str();
    let days = store.aggregate_days(d, s.now - DAYS_LOOKBACK * SECS_PER_DAY)?;
    let since = s.now - s.window_days * SECS_PER_DAY;
    let volume = store.volume(d, since)?;
    let classes = match senders {
        Some(q) => classify_failing(q, d, since)?,
        None => std::collections::BTreeMap::new(),
    };
    let mut forwarded = classes
        .values()
        .filter(|(c, ..)| c.class == crate::reports::sources::Class::Forwarded)
        .map(|(_, fail)| *fail)
        .fold(0i64, i64::saturating_add);
    let failing = store
        .failing_sources(d, since, MAX_SOURCES)?
        .into_iter()
        .map(|f| {
            let (mut why, ours) = attribute(resolver, domain, config, &f);
            // Only forwarding is added: the config-aware reasons above
            // already tell own services from strangers. A source the
            // config covers (its SPF passes, or it signs with our
            // selector) is our own service, not forwarding.
            if let Some((c, fail)) = classes
                .get(&f.source_ip)
                .filter(|(c, _)| c.class == crate::reports::sources::Class::Forwarded)
            {
                if ours {
                    forwarded = forwarded.saturating_sub(*fail);
                } else {
                    why.push(format!("{}: {}", c.class.as_str(), c.evidence.join("; ")));
                }
            }
            (f, why)
        })
        .collect();
    Ok(ReportFacts {
        days,
        volume,
        failing,
        forwarded,
    })
}

/// Failing sources to classify (most failing messages first); the rest
/// count as not forwarded.
const CLASSIFIED_SOURCES: usize = 5_000;

/// Each failing source of `domain` since `since` with its class and its
/// failing messages, from the catalogue and the stored reports alone (no
/// DNS: the checklist's DNS is for the domain itself).
fn classify_failing(
    q: &dyn crate::reports::dashq::DashboardQueries,
    domain: &str,
    since: i64,
) -> Result<
    std::collections::BTreeMap<String, (crate::reports::sources::Classification, i64)>,
    ChecklistError,
> {
    use crate::reports::sources;
    let f = crate::reports::dashq::DashFilter {
        domain: Some(domain.to_owned()),
        since: Some(since),
        ..Default::default()
    };
    let attr = crate::reports::dashboard::attribution::Attributor::offline();
    let cat = sources::Catalogue::builtin();
    let mut out = std::collections::BTreeMap::new();
    for s in q.dash_sources(&f, true, CLASSIFIED_SOURCES)? {
        let a = attr.attribute(domain, &s);
        let ptr = q
            .ptr_cached(&s.source_ip)
            .ok()
            .flatten()
            .and_then(|(n, _)| n);
        let id = sources::identify(cat, domain, &s, &a, ptr.as_deref(), None);
        let fail = s.messages.saturating_sub(s.dmarc_pass);
        out.insert(s.source_ip.clone(), (sources::classify(&s, &id), fail));
    }
    Ok(out)
}

/// What the config and live SPF say about a source that failed DMARC:
/// which include or selector it belongs to, or that it belongs to none;
/// `true` when it belongs to one.
fn attribute(
    resolver: &Resolver,
    domain: &Name,
    config: &ConfigFacts,
    f: &FailingSource,
) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let d = domain.as_str();
    let ours: Vec<&String> = f
        .dkim_selectors
        .iter()
        .filter(|s| {
            config.selectors.contains(s)
                || config.prefixes.iter().any(|p| {
                    s.strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('-'))
                })
        })
        .collect();
    for s in &ours {
        out.push(format!(
            "signs with our selector `{s}` (dkim.selectors), but the signature did not pass aligned: check the signer's key and d= ({})",
            if f.dkim_domains.is_empty() {
                "no d= reported".to_string()
            } else {
                format!("d={}", f.dkim_domains.join(", "))
            }
        ));
    }
    if let Ok(ip) = f.source_ip.parse::<IpAddr>() {
        let outcome = crate::spf::check_host(
            resolver,
            ip,
            d,
            &format!("postmaster@{d}"),
            "",
            &crate::spf::CheckOptions::default(),
        );
        if outcome.result == crate::spf::SpfResult::Pass {
            let term = outcome
                .matched
                .as_ref()
                .map(|m| m.term.clone())
                .unwrap_or_default();
            let listed = term
                .strip_prefix("include:")
                .is_some_and(|inc| config.includes.iter().any(|i| i == inc));
            let from = if f.spf_domains.is_empty() {
                "no SPF domain reported".to_string()
            } else {
                format!("MAIL FROM domain {}", f.spf_domains.join(", "))
            };
            out.push(format!(
                "passes SPF for {d} today via `{term}`{}, but used {from}: SPF was not aligned; give the sender a bounce domain under {d} or have it sign with DKIM d={d}",
                if listed { " (spf.include)" } else { "" }
            ));
        }
    }
    let ours = !out.is_empty();
    if out.is_empty() {
        out.push(
            "matches none of the config's includes or selectors: an unlisted sender (add it to spf/dkim) or spoofing (leave it failing)"
                .to_string(),
        );
    }
    (out, ours)
}

/// A one-line hint for `mailauth plan`: set when the report data shows
/// that the domain's configured DMARC policy can safely advance (enough
/// days of data and a pass rate at the threshold), `None` otherwise.
/// Needs no DNS: it compares the config with the report store only.
pub fn plan_hint(
    ws: &Workspace,
    store: Option<&dyn ChecklistQueries>,
    domain: &Name,
) -> Option<String> {
    let now = crate::clock::now().ok()?;
    plan_hint_at(ws, store, domain, &Settings::new(now))
}

/// [`plan_hint`] with explicit settings (clock and thresholds).
pub fn plan_hint_at(
    ws: &Workspace,
    store: Option<&dyn ChecklistQueries>,
    domain: &Name,
    s: &Settings,
) -> Option<String> {
    let store = store?;
    let (_, d) = crate::desired::domains(&ws.config)
        .into_iter()
        .find(|(n, _)| n == domain)?;
    if d.parked {
        return None;
    }
    let dmarc = d.dmarc.as_ref()?;
    let days = store
        .aggregate_days(domain.as_str(), s.now - DAYS_LOOKBACK * SECS_PER_DAY)
        .ok()?;
    let v = store
        .volume(domain.as_str(), s.now - s.window_days * SECS_PER_DAY)
        .ok()?;
    if days < s.min_days || v.messages == 0 {
        return None;
    }
    let ratio = v.dmarc_pass as f64 / v.messages as f64;
    if ratio < s.pass_ratio {
        return None;
    }
    use crate::config::PolicyConfig as P;
    let testing = dmarc.t == Some(true);
    let step = match (dmarc.p, testing) {
        (P::None, _) => "p=quarantine with t=y",
        (P::Quarantine, true) => "p=quarantine without t=y",
        (P::Quarantine, false) => "p=reject",
        (P::Reject, true) => "p=reject without t=y",
        (P::Reject, false) => return None,
    };
    Some(format!(
        "hint: {domain}: {} of {} messages ({}) passed DMARC over {} days ({days} days of data): the policy can advance to {step}; see `mailauth checklist {domain}`",
        v.dmarc_pass,
        v.messages,
        percent(v.dmarc_pass, v.messages),
        s.window_days
    ))
}

/// `99.5%`, rounded down to one decimal so that 97.99% never shows as 98%.
pub fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "n/a".into();
    }
    let tenths = (i128::from(part) * 1000) / i128::from(whole);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down() {
        assert_eq!(percent(9799, 10000), "97.9%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(5, 5), "100.0%");
        assert_eq!(percent(0, 0), "n/a");
    }
}
