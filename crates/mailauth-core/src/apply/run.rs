//! The order of an apply, and what a saved plan must still match. Owns the
//! sequence below; leaves the key rules to `keys::lifecycle`, the policy
//! upload to `publish`, the zone writes to [`super::apply`], and printing
//! to the caller (it hears of each step through [`Event`]s, and gets an
//! [`ApplyOutcome`] or a typed [`ApplyError`]).
//!
//! The sequence, for a saved plan ([`Source::Saved`]):
//! 1. every zone the plan changes is read again, and must still be at the
//!    version the plan read ([`ApplyError::Stale`] otherwise);
//! 2. the key steps due now must be exactly the plan's
//!    ([`ApplyError::KeysMoved`] otherwise: the clock or the keystore
//!    moved);
//! 3. the plan's key steps are taken, in order, then the signing keys are
//!    exported when the set that signs changed;
//! 4. every `(known after apply)` value (the record of a key generated in
//!    step 3) is filled in from the keystore;
//! 5. the MTA-STS policies are uploaded;
//! 6. the DNS changes are written, zone by zone, and read back.
//!
//! For a plan just made ([`Source::Fresh`]), 1, 2 and 4 are not needed:
//! the key steps due now are taken, and when there were any the plan is
//! made again at the same time (and passed through
//! [`ApplyOptions::refine`], as the caller treated the first), so that the
//! records of those steps are in it.
//!
//! Key steps come before every DNS change, and no step waits on a DNS
//! change of the same apply. Each key step that changes a record changes
//! it *toward* what DNS is about to say:
//! - generate and publish: the new key's record is among this apply's
//!   changes; the key signs nothing yet. It becomes active only in a later
//!   apply, once every authoritative server is observed serving it and its
//!   TTL has passed (`keys::lifecycle`), because RFC 6376 §6.1.2: "If the
//!   query for the public key fails because the corresponding key record
//!   does not exist, the Verifier MUST immediately return PERMFAIL (no key
//!   for signature)." So a failed DNS write after a publish step leaves a
//!   published key that is never activated until DNS serves it.
//! - revoke: the private key is destroyed, then this apply empties the
//!   record's `p=` (RFC 6376 §3.6.1: "An empty value means that this public
//!   key has been revoked."). The key stopped signing when it was retired.
//! - remove: the record of a revoked key leaves DNS in this apply.
//! - activate, retire, confirm: the records stay as they are; only the
//!   signer export follows.
//!
//! Failure: anything that fails before step 6 stops the apply with an
//! [`ApplyError`] and no DNS change. Key steps already taken stay taken
//! (the keystore records each as it is taken); the next plan shows the
//! records they need. In step 6, one zone's failure does not stop the
//! others ([`super::ZoneOutcome::error`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Target, ZoneError, ZoneOutcome};
use crate::desired::DesiredError;
use crate::keys::export::ExportError;
use crate::keys::lifecycle::{self, Action, LifecycleError, Transition};
use crate::keys::store::{Keystore, StoreError};
use crate::keys::time::Timestamp;
use crate::plan::{self, Plan, ZonePlan};
use crate::provider::{Provider, ProviderError};
use crate::record::Name;
use crate::workspace::{CONCURRENCY, Workspace};

/// Where the plan given to [`run`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A plan file (`plan --out`): taken exactly, or refused whole.
    Saved,
    /// A plan the caller made just now (and had confirmed).
    Fresh,
}

/// How [`run`] applies.
pub struct ApplyOptions<'a> {
    /// Apply zones that need `--force` too.
    pub force: bool,
    /// The time the key steps are taken at.
    pub now: Timestamp,
    /// Zones written at a time.
    pub concurrency: usize,
    /// Applied to a plan [`run`] makes again after key steps, as the caller
    /// applied it to the first (its guards, for one).
    pub refine: &'a dyn Fn(&mut Plan),
}

fn unrefined(_: &mut Plan) {}

impl ApplyOptions<'static> {
    pub fn new(now: Timestamp) -> ApplyOptions<'static> {
        ApplyOptions {
            force: false,
            now,
            concurrency: CONCURRENCY,
            refine: &unrefined,
        }
    }
}

/// A step of [`run`] done, as it is done.
#[derive(Debug)]
pub enum Event<'a> {
    /// A key step was taken.
    KeyStep(&'a Transition),
    /// The signing keys were exported for the signer.
    SignerExported {
        keys: usize,
        dir: &'a Path,
        hook_ran: bool,
    },
    /// A domain's MTA-STS policy was uploaded to `place`.
    PolicyPublished { domain: &'a Name, place: &'a str },
}

/// What [`run`] did, when it got as far as the DNS changes.
#[derive(Debug)]
pub struct ApplyOutcome {
    /// The plan whose DNS changes were made: a saved one with its
    /// `(known after apply)` values filled in, or the fresh plan made again
    /// after key steps.
    pub plan: Plan,
    /// The key steps taken, in order.
    pub keys: Vec<Transition>,
    /// Each zone's outcome; `None` when the plan had nothing to do (no zone
    /// was written).
    pub zones: Option<Vec<ZoneOutcome>>,
    /// Why the upstream of the flattened SPF includes could not be
    /// recorded for the next plan's drift check (the DNS changes stand).
    pub upstream_error: Option<String>,
}

impl ApplyOutcome {
    /// The zones that failed (or, when nothing was written, could not be
    /// planned), plus one when the upstream could not be recorded: 0 when
    /// the apply fully succeeded.
    pub fn failures(&self) -> usize {
        let zones = match &self.zones {
            Some(z) => z.iter().filter(|o| o.error.is_some()).count(),
            None => self.plan.errors().count(),
        };
        zones + usize::from(self.upstream_error.is_some())
    }
}

/// Why [`run`] stopped before writing DNS. Every variant means no DNS
/// change was made; key steps taken before it stay taken.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading a zone again to check a saved plan failed.
    #[error("{zone}: {provider}: {source}")]
    Fetch {
        zone: String,
        provider: String,
        source: Box<ProviderError>,
    },
    /// A zone a saved plan changes is no longer as the plan read it.
    #[error(
        "{zone}: {provider}: the zone changed since the plan read it; plan again (nothing was changed)"
    )]
    Stale { zone: String, provider: String },
    /// The key steps due now are not a saved plan's.
    #[error(
        "the key steps due now ({}) are not the plan's ({}): the clock or the keystore moved since the plan; plan again (nothing was changed)",
        list(.due),
        list(.planned)
    )]
    KeysMoved {
        due: Vec<Transition>,
        planned: Vec<Transition>,
    },
    /// The key steps due now could not be worked out.
    #[error("key rotation: {0}")]
    KeyPlan(String),
    /// The observer that tells whether keys are served could not be set up.
    #[error("{0}")]
    Observer(String),
    #[error("the plan has key steps but the config has no `keys:` block")]
    NoKeysBlock,
    #[error("keystore {}: {source}", .dir.display())]
    Keystore { dir: PathBuf, source: StoreError },
    /// A key step failed (not due after all, or the keystore refused it).
    #[error("key rotation: {0}")]
    Key(#[from] LifecycleError),
    /// A saved plan's generate step named its key differently.
    #[error("key rotation: {step}: the key was named {selector}; plan again")]
    Renamed {
        step: Box<Transition>,
        selector: String,
    },
    #[error("signer export: {0}")]
    Export(#[from] ExportError),
    /// A saved plan's zone does not parse.
    #[error("{0}")]
    BadPlan(String),
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// A `(known after apply)` record the key steps did not make.
    #[error("{name} {rtype}: the key step made no record for it; plan again")]
    NoRecord { name: String, rtype: String },
    /// An `mta_sts` block does not render into a policy file.
    #[error("{0}")]
    Policy(String),
    /// An MTA-STS policy upload failed.
    #[error("{domain}: mta_sts.publish: {reason}; nothing was changed in DNS")]
    Publish { domain: Name, reason: String },
}

impl ApplyError {
    /// The plan no longer matches the zones, the clock or the keystore:
    /// planning again is the fix.
    pub fn plan_again(&self) -> bool {
        if let ApplyError::Fetch { source, .. } = self {
            return matches!(**source, ProviderError::Stale { .. });
        }
        matches!(
            self,
            ApplyError::Stale { .. }
                | ApplyError::KeysMoved { .. }
                | ApplyError::Renamed { .. }
                | ApplyError::NoRecord { .. }
                | ApplyError::Key(LifecycleError::Stale { .. } | LifecycleError::NotDue { .. })
        )
    }
}

fn list(ts: &[Transition]) -> String {
    if ts.is_empty() {
        "none".to_string()
    } else {
        ts.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Applies `plan` in the order the module documents. `progress` hears of
/// each key step and policy upload as it is done.
pub fn run(
    ws: &Workspace,
    plan: Plan,
    source: Source,
    opts: &ApplyOptions<'_>,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<ApplyOutcome, ApplyError> {
    let (plan, keys) = match source {
        Source::Saved => {
            check_unchanged(ws, &plan)?;
            let keys = take_saved_keys(ws, &plan, opts.now, progress)?;
            (fill_known_after_apply(ws, plan)?, keys)
        }
        Source::Fresh => {
            let keys = take_due_keys(ws, opts.now, progress)?;
            let plan = if keys.is_empty() {
                plan
            } else {
                let domains: Vec<Name> = plan
                    .zones
                    .iter()
                    .filter_map(|z| Name::parse(&z.zone).ok())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let mut again = ws.plan_at(&domains, opts.now);
                (opts.refine)(&mut again);
                again
            };
            (plan, keys)
        }
    };
    publish_policies(ws, &plan, opts.force, progress)?;
    let (zones, upstream_error) = apply_dns(ws, &plan, opts);
    Ok(ApplyOutcome {
        plan,
        keys,
        zones,
        upstream_error,
    })
}

/// Before a saved plan's key steps are taken: every zone it changes must
/// still be as the plan read it, so that a stale plan changes nothing at
/// all (not the keys without the records).
fn check_unchanged(ws: &Workspace, plan: &Plan) -> Result<(), ApplyError> {
    for z in plan.zones.iter().filter(|z| !z.changes.is_empty()) {
        let Ok(name) = Name::parse(&z.zone) else {
            continue;
        };
        let Some(provider) = ws
            .providers_for(&name)
            .into_iter()
            .flatten()
            .find(|p| p.id() == z.provider)
        else {
            continue;
        };
        let now = provider.fetch(&name).map_err(|e| ApplyError::Fetch {
            zone: z.zone.clone(),
            provider: z.provider.clone(),
            source: Box::new(e),
        })?;
        if now.version != z.version {
            return Err(ApplyError::Stale {
                zone: z.zone.clone(),
                provider: z.provider.clone(),
            });
        }
    }
    Ok(())
}

/// Takes exactly the key steps a saved plan lists, after checking that they
/// are exactly the steps due now for its domains (the clock or the keystore
/// may have moved since the plan): otherwise refuses before taking any.
fn take_saved_keys(
    ws: &Workspace,
    plan: &Plan,
    now: Timestamp,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Transition>, ApplyError> {
    let planned: Vec<Transition> = plan.key_steps().cloned().collect();
    let domains: BTreeSet<&str> = plan.zones.iter().map(|z| z.zone.as_str()).collect();
    let due: Vec<Transition> = ws
        .simulate_keys(now)
        .map_err(ApplyError::KeyPlan)?
        .map(|(_, due)| due)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| domains.contains(t.domain.as_str()))
        .collect();
    let same = due.len() == planned.len() && due.iter().zip(&planned).all(|(a, b)| a.same_step(b));
    if !same {
        return Err(ApplyError::KeysMoved { due, planned });
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    take_key_steps(ws, &planned, now, progress)
}

/// The keystore of the config's `keys:` block, opened for writing.
fn open_keystore(dir: &Path) -> Result<Keystore, ApplyError> {
    Keystore::open(dir).map_err(|source| ApplyError::Keystore {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Takes every key step due now, then exports the signing keys when the
/// set that signs changed.
fn take_due_keys(
    ws: &Workspace,
    now: Timestamp,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Transition>, ApplyError> {
    let Some(cfg) = ws.keys_config() else {
        return Ok(Vec::new());
    };
    let families = ws.families();
    if families.is_empty() && ws.key_state().map_or(true, |s| s.keys.is_empty()) {
        return Ok(Vec::new());
    }
    let observer = ws.observer().map_err(ApplyError::Observer)?;
    let mut store = open_keystore(&cfg.dir)?;
    let taken = lifecycle::apply_due(&mut store, &families, now, observer)?;
    for t in &taken {
        progress(Event::KeyStep(t));
    }
    export_signer(&store, &cfg, &taken, progress)?;
    Ok(taken)
}

/// Takes the listed key steps in order (each checked again as it is taken),
/// then exports the signing keys when the set that signs changed.
fn take_key_steps(
    ws: &Workspace,
    steps: &[Transition],
    now: Timestamp,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Transition>, ApplyError> {
    let cfg = ws.keys_config().ok_or(ApplyError::NoKeysBlock)?;
    let families = ws.families();
    let observer = ws.observer().map_err(ApplyError::Observer)?;
    let mut store = open_keystore(&cfg.dir)?;
    let mut taken = Vec::new();
    for t in steps {
        let selector = lifecycle::apply_transition(&mut store, &families, t, now, observer)?;
        if t.selector.as_deref().is_some_and(|s| s != selector) {
            return Err(ApplyError::Renamed {
                step: Box::new(t.clone()),
                selector,
            });
        }
        progress(Event::KeyStep(t));
        taken.push(t.clone());
    }
    export_signer(&store, &cfg, &taken, progress)?;
    Ok(taken)
}

/// Exports the signing keys for the signer when `taken` changed which keys
/// sign.
fn export_signer(
    store: &Keystore,
    cfg: &crate::keys::config::KeysConfig,
    taken: &[Transition],
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<(), ApplyError> {
    let signer_changed = taken
        .iter()
        .any(|t| matches!(t.action, Action::Activate | Action::Retire | Action::Revoke));
    if let (true, Some(export)) = (signer_changed, &cfg.export) {
        let report = crate::keys::export::export(store, export)?;
        progress(Event::SignerExported {
            keys: report.keys.len(),
            dir: &export.dir,
            hook_ran: report.hook_ran,
        });
    }
    Ok(())
}

/// The DNS changes of a saved plan with every `(known after apply)` value
/// replaced by the record the key steps just made; refuses when a record
/// cannot be found (nothing is written then).
fn fill_known_after_apply(ws: &Workspace, mut plan: Plan) -> Result<Plan, ApplyError> {
    for z in &mut plan.zones {
        if !z.changes.iter().any(|c| c.known_after_apply) {
            continue;
        }
        let name = Name::parse(&z.zone).map_err(ApplyError::BadPlan)?;
        let want = ws.desired(&name)?;
        for c in z.changes.iter_mut().filter(|c| c.known_after_apply) {
            let set = want
                .sets
                .iter()
                .find(|s| s.name.to_string() == c.name && s.rtype.to_string() == c.rtype)
                .filter(|s| {
                    s.data
                        .iter()
                        .all(|d| !d.presentation().contains(crate::desired::KNOWN_AFTER_APPLY))
                })
                .ok_or_else(|| ApplyError::NoRecord {
                    name: c.name.clone(),
                    rtype: c.rtype.clone(),
                })?;
            let filled = plan::ChangeJson::from_change(&crate::provider::Change::Create {
                new: set.clone(),
            });
            c.new = filled.new;
            c.known_after_apply = false;
        }
    }
    Ok(plan)
}

/// Uploads the MTA-STS policy file of every planned domain with an
/// `mta_sts.publish` target, before any DNS change: RFC 8461 §3.3 senders
/// fetch the policy when they see a new id, so the new policy must be
/// served first. One failed upload stops the apply with nothing changed in
/// DNS.
/// A zone apply will refuse (needs `--force`) gets no upload either: its
/// new policy must not be served while the old id stays.
fn publish_policies(
    ws: &Workspace,
    plan: &Plan,
    force: bool,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<(), ApplyError> {
    let domains: Vec<Name> = plan
        .zones
        .iter()
        .filter(|z| z.error.is_none() && (force || z.needs_force.is_none()))
        .filter_map(|z| Name::parse(&z.zone).ok())
        .collect();
    let files = crate::publish::policy_files(ws, &domains).map_err(ApplyError::Policy)?;
    for f in files.iter().filter(|f| f.target.is_some()) {
        let place = crate::publish::publish(ws, f).map_err(|reason| ApplyError::Publish {
            domain: f.domain.clone(),
            reason,
        })?;
        progress(Event::PolicyPublished {
            domain: &f.domain,
            place: &place,
        });
    }
    Ok(())
}

/// Writes the DNS changes of `plan`, then records the flattened SPF
/// upstream of the zones now published as planned. `None` zones when the
/// plan has nothing to do.
fn apply_dns(
    ws: &Workspace,
    plan: &Plan,
    opts: &ApplyOptions<'_>,
) -> (Option<Vec<ZoneOutcome>>, Option<String>) {
    if !plan.has_changes() {
        let clean: Vec<&ZonePlan> = plan.zones.iter().filter(|z| z.error.is_none()).collect();
        return (None, ws.record_upstream(&clean).err());
    }
    // The providers and desired states the plan's zones refer to, built
    // from the current config.
    let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    let mut desired = BTreeMap::new();
    for z in &plan.zones {
        let Ok(name) = Name::parse(&z.zone) else {
            continue;
        };
        for p in ws.providers_for(&name).into_iter().flatten() {
            providers.insert(p.id(), p);
        }
        if let Ok(d) = ws.desired_planned(&name, z) {
            desired.insert(z.zone.clone(), d);
        }
    }
    let target = |zp: &ZonePlan| -> Result<Target<'_>, ZoneError> {
        let provider = providers
            .get(&zp.provider)
            .ok_or_else(|| ZoneError::NoProvider {
                zone: zp.zone.clone(),
                provider: zp.provider.clone(),
            })?;
        Ok(Target {
            provider: provider.as_ref(),
            desired: desired.get(&zp.zone),
        })
    };
    let outcomes = super::apply(plan, opts.force, opts.concurrency, &target);
    // What the flattened SPF includes resolved to, for the next plan's
    // drift check: recorded for the zones now published as planned.
    let done: Vec<&ZonePlan> = plan
        .zones
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.error.is_none())
        .map(|(z, _)| z)
        .collect();
    let upstream = ws.record_upstream(&done).err();
    (Some(outcomes), upstream)
}
