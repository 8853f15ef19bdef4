//! The only writer: runs a plan zone by zone through the providers, then
//! reads each zone back and expects the diff against the desired state to
//! be empty. Zones run concurrently (bounded); one zone's failure does not
//! stop the others, and the outcome says which failed.

use serde::Serialize;

use crate::diff::{Desired, diff};
use crate::plan::{Plan, ZonePlan};
use crate::provider::Provider;

#[derive(Clone, Debug, Serialize)]
pub struct ZoneOutcome {
    pub zone: String,
    pub provider: String,
    pub applied: usize,
    /// Changes still needed after apply (0 when all went well).
    pub remaining: Option<usize>,
    pub error: Option<String>,
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
    target: &(dyn Fn(&ZonePlan) -> Result<Target<'a>, String> + Sync),
) -> Vec<ZoneOutcome> {
    crate::par::map(&plan.zones, concurrency, |zp| apply_zone(zp, force, target))
}

fn apply_zone<'a>(
    zp: &ZonePlan,
    force: bool,
    target: &(dyn Fn(&ZonePlan) -> Result<Target<'a>, String> + Sync),
) -> ZoneOutcome {
    let mut out = ZoneOutcome {
        zone: zp.zone.clone(),
        provider: zp.provider.clone(),
        applied: 0,
        remaining: None,
        error: None,
    };
    if let Some(e) = &zp.error {
        out.error = Some(format!("not planned: {e}"));
        return out;
    }
    if zp.changes.is_empty() {
        out.remaining = Some(0);
        return out;
    }
    if let (Some(reason), false) = (&zp.needs_force, force) {
        out.error = Some(reason.clone());
        return out;
    }
    let result = (|| {
        let t = target(zp)?;
        let changes = zp.changes()?;
        let seen = zp.fetched_stub()?;
        t.provider
            .apply(&seen.zone.origin, &seen, &changes)
            .map_err(|e| e.to_string())?;
        out.applied = changes.len();
        if let Some(desired) = t.desired {
            let after = t
                .provider
                .fetch(&desired.origin)
                .map_err(|e| e.to_string())?;
            let left = diff(&after.zone, desired).changes.len();
            out.remaining = Some(left);
            if left > 0 {
                return Err(format!(
                    "applied, but {left} change(s) remain when read back (did the config change since the plan?)"
                ));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.error = Some(e);
    }
    out
}
