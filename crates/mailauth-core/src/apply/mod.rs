//! The only writer. [`run`] is the whole of `mailauth apply` below the
//! command line: the order of key steps, MTA-STS policy uploads and DNS
//! changes, and what a saved plan must still match (see its module,
//! `apply::run`). [`apply`] writes the DNS changes: zone by zone through
//! the providers, then reads each zone back and expects the diff against
//! the desired state to be empty. Zones run concurrently (bounded); one
//! zone's failure does not stop the others, and the outcome says which
//! failed and why, with the provider's error kept typed.
//!
//! Leaves planning to `plan` and `workspace`, the key rules to
//! `keys::lifecycle`, and printing, prompting and exit codes to the
//! command line.

mod run;
#[cfg(test)]
mod tests;

pub use run::{ApplyError, ApplyOptions, ApplyOutcome, Event, Source, run};

use crate::diff::{Desired, diff};
use crate::plan::{Plan, ZonePlan};
use crate::provider::{Provider, ProviderError};

#[derive(Debug)]
pub struct ZoneOutcome {
    pub zone: String,
    pub provider: String,
    pub applied: usize,
    /// Changes still needed after apply (0 when all went well).
    pub remaining: Option<usize>,
    pub error: Option<ZoneError>,
}

/// Why one zone of a plan was not applied, or not verified.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The plan could not plan the zone.
    #[error("not planned: {0}")]
    NotPlanned(String),
    /// The zone deletes more than the limit allows, or a guard holds it;
    /// `--force` applies it.
    #[error("{0}")]
    NeedsForce(String),
    #[error(
        "the plan names provider {provider} for {zone}, which the config no longer gives this domain"
    )]
    NoProvider { zone: String, provider: String },
    /// The plan's zone or changes do not parse (a plan file edited by hand).
    #[error("{0}")]
    BadPlan(String),
    /// The provider refused or failed: a stale zone, rejected
    /// credentials, an unreachable server, …
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Written, but reading the zone back still finds changes to make.
    #[error(
        "applied, but {0} change(s) remain when read back (did the config change since the plan?)"
    )]
    Remaining(usize),
}

/// What `apply` needs for one zone plan: its provider and the desired
/// state to verify against afterwards.
pub struct Target<'a> {
    pub provider: &'a dyn Provider,
    pub desired: Option<&'a Desired>,
}

/// Applies every zone of `plan`. `force` allows zones whose deletes exceed
/// the safety limit.
pub fn apply<'a>(
    plan: &Plan,
    force: bool,
    concurrency: usize,
    target: &(dyn Fn(&ZonePlan) -> Result<Target<'a>, ZoneError> + Sync),
) -> Vec<ZoneOutcome> {
    crate::par::map(&plan.zones, concurrency, |zp| apply_zone(zp, force, target))
}

fn apply_zone<'a>(
    zp: &ZonePlan,
    force: bool,
    target: &(dyn Fn(&ZonePlan) -> Result<Target<'a>, ZoneError> + Sync),
) -> ZoneOutcome {
    let mut out = ZoneOutcome {
        zone: zp.zone.clone(),
        provider: zp.provider.clone(),
        applied: 0,
        remaining: None,
        error: None,
    };
    if let Some(e) = &zp.error {
        out.error = Some(ZoneError::NotPlanned(e.clone()));
        return out;
    }
    if zp.changes.is_empty() {
        out.remaining = Some(0);
        return out;
    }
    if let (Some(reason), false) = (&zp.needs_force, force) {
        out.error = Some(ZoneError::NeedsForce(reason.clone()));
        return out;
    }
    let result = (|| {
        let t = target(zp)?;
        let changes = zp.changes().map_err(ZoneError::BadPlan)?;
        let seen = zp.fetched_stub().map_err(ZoneError::BadPlan)?;
        t.provider.apply(&seen.zone.origin, &seen, &changes)?;
        out.applied = changes.len();
        if let Some(desired) = t.desired {
            let after = t.provider.fetch(&desired.origin)?;
            let left = diff(&after.zone, desired).changes.len();
            out.remaining = Some(left);
            if left > 0 {
                return Err(ZoneError::Remaining(left));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.error = Some(e);
    }
    out
}
