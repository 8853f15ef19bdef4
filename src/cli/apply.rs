//! `mailauth apply`: a saved plan taken exactly (its zones unchanged, its
//! key steps the ones due now, the values known only at apply filled in),
//! or a fresh plan confirmed and applied; key steps before DNS changes, the
//! MTA-STS policy uploaded before its record changes, then every zone
//! written and read back. Leaves planning to `plan` and the writing itself
//! to `crate::apply`.

use super::*;

pub(super) fn apply_cmd(
    config: &Path,
    color: ColorChoice,
    args: ApplyArgs,
) -> Result<i32, Failure> {
    let ws = load(config)?;
    let st = style(color, args.full);
    let now = crate::keys::time::clock(None).map_err(|e| Failure::new(1, e.to_string()))?;
    let (plan, saved) = match &args.plan {
        Some(path) => (read_plan(path)?, true),
        None => {
            let domains = ws.select(&args.domains).map_err(|e| Failure::new(2, e))?;
            let mut plan = ws.plan(&domains);
            tls_rpt_guard(&ws, &Default::default(), &mut plan);
            print!("{}", plan::render_text(&plan, st));
            let pending = plan.has_changes() || plan.zones.iter().any(|z| !z.notes.is_empty());
            if pending && !args.auto_approve && !confirm()? {
                println!("Apply cancelled.");
                return Ok(1);
            }
            (plan, false)
        }
    };
    let mut failed = 0;
    // Key steps come first, so that the records of keys generated now are
    // in the DNS changes made now.
    let plan = if saved {
        // Exactly the saved plan: its key steps, then its DNS changes with
        // the values only apply could know filled in.
        check_unchanged(&ws, &plan)?;
        apply_saved_keys(&ws, &plan, now)?;
        fill_known_after_apply(&ws, plan)?
    } else {
        let taken = apply_keys(&ws, now)?;
        if taken.is_empty() {
            plan
        } else {
            let domains: Vec<_> = plan
                .zones
                .iter()
                .filter_map(|z| crate::record::Name::parse(&z.zone).ok())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            ws.plan(&domains)
        }
    };
    publish_policies(&ws, &plan, args.force)?;
    failed += apply_dns(&ws, &plan, args.force)?;
    Ok(if failed > 0 { 1 } else { 0 })
}

/// Before a saved plan's key steps are taken: every zone it changes must
/// still be as the plan read it, so that a stale plan changes nothing at
/// all (not the keys without the records).
fn check_unchanged(ws: &Workspace, plan: &Plan) -> Result<(), Failure> {
    for z in plan.zones.iter().filter(|z| !z.changes.is_empty()) {
        let Ok(name) = crate::record::Name::parse(&z.zone) else {
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
        let now = provider
            .fetch(&name)
            .map_err(|e| Failure::new(1, format!("{}: {}: {e}", z.zone, z.provider)))?;
        if now.version != z.version {
            return Err(Failure::new(
                1,
                format!(
                    "{}: {}: the zone changed since the plan read it; plan again (nothing was changed)",
                    z.zone, z.provider
                ),
            ));
        }
    }
    Ok(())
}

/// Takes exactly the key steps a saved plan lists, after checking that they
/// are exactly the steps due now for its domains (the clock or the keystore
/// may have moved since the plan): otherwise refuses before taking any.
fn apply_saved_keys(
    ws: &Workspace,
    plan: &Plan,
    now: crate::keys::time::Timestamp,
) -> Result<(), Failure> {
    let recorded: Vec<_> = plan.key_steps().cloned().collect();
    let domains: std::collections::BTreeSet<&str> =
        plan.zones.iter().map(|z| z.zone.as_str()).collect();
    let due: Vec<_> = ws
        .simulate_keys(now)
        .map_err(|e| Failure::new(1, format!("key rotation: {e}")))?
        .map(|(_, due)| due)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| domains.contains(t.domain.as_str()))
        .collect();
    let same =
        due.len() == recorded.len() && due.iter().zip(&recorded).all(|(a, b)| a.same_step(b));
    if !same {
        let list = |ts: &[crate::keys::lifecycle::Transition]| {
            if ts.is_empty() {
                "none".to_string()
            } else {
                ts.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        return Err(Failure::new(
            1,
            format!(
                "the key steps due now ({}) are not the plan's ({}): the clock or the keystore moved since the plan; plan again (nothing was changed)",
                list(&due),
                list(&recorded)
            ),
        ));
    }
    if recorded.is_empty() {
        return Ok(());
    }
    take_key_steps(ws, &recorded, now)
}

/// The DNS changes of a saved plan with every `(known after apply)` value
/// replaced by the record the key steps just made; refuses when a record
/// cannot be found (nothing is written then).
fn fill_known_after_apply(ws: &Workspace, mut plan: Plan) -> Result<Plan, Failure> {
    for z in &mut plan.zones {
        if !z.changes.iter().any(|c| c.known_after_apply) {
            continue;
        }
        let name = crate::record::Name::parse(&z.zone).map_err(|e| Failure::new(1, e))?;
        let want = ws
            .desired(&name)
            .map_err(|e| Failure::new(1, e.to_string()))?;
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
                .ok_or_else(|| {
                    Failure::new(
                        1,
                        format!(
                            "{} {}: the key step made no record for it; plan again",
                            c.name, c.rtype
                        ),
                    )
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

fn read_plan(path: &Path) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| Failure::new(1, format!("{}: not a mailauth plan: {e}", path.display())))?;
    if plan.format != plan::FORMAT {
        return Err(Failure::new(
            1,
            format!(
                "{}: plan format {} is not {}; plan again with this version",
                path.display(),
                plan.format,
                plan::FORMAT
            ),
        ));
    }
    Ok(plan)
}

/// Asks on the terminal; off a terminal, refuses (the caller needs
/// `--auto-approve` or a saved plan).
fn confirm() -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            1,
            "apply is not running on a terminal: review the plan and pass --auto-approve, or apply a saved plan file",
        ));
    }
    print!("\nApply these changes? Only 'yes' is accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(answer.trim() == "yes")
}

/// Takes every key transition due now, exports the signing keys when the
/// active set changed, and says what was done.
fn apply_keys(
    ws: &Workspace,
    now: crate::keys::time::Timestamp,
) -> Result<Vec<crate::keys::lifecycle::Transition>, Failure> {
    let Some(cfg) = ws.keys_config() else {
        return Ok(Vec::new());
    };
    let families = ws.families();
    if families.is_empty() && ws.key_state().map_or(true, |s| s.keys.is_empty()) {
        return Ok(Vec::new());
    }
    let observer = ws.observer().map_err(|e| Failure::new(1, e))?;
    let mut store = crate::keys::store::Keystore::open(&cfg.dir)
        .map_err(|e| Failure::new(1, format!("keystore {}: {e}", cfg.dir.display())))?;
    let taken = crate::keys::lifecycle::apply_due(&mut store, &families, now, observer)
        .map_err(|e| Failure::new(1, format!("key rotation: {e}")))?;
    for t in &taken {
        println!("key: {t}");
    }
    export_signer(&store, &cfg, &taken)?;
    Ok(taken)
}

/// Takes the listed key steps in order (each checked again as it is taken),
/// then exports the signing keys when the active set changed.
fn take_key_steps(
    ws: &Workspace,
    steps: &[crate::keys::lifecycle::Transition],
    now: crate::keys::time::Timestamp,
) -> Result<(), Failure> {
    let cfg = ws.keys_config().ok_or_else(|| {
        Failure::new(
            1,
            "the plan has key steps but the config has no `keys:` block",
        )
    })?;
    let families = ws.families();
    let observer = ws.observer().map_err(|e| Failure::new(1, e))?;
    let mut store = crate::keys::store::Keystore::open(&cfg.dir)
        .map_err(|e| Failure::new(1, format!("keystore {}: {e}", cfg.dir.display())))?;
    let mut taken = Vec::new();
    for t in steps {
        let selector =
            crate::keys::lifecycle::apply_transition(&mut store, &families, t, now, observer)
                .map_err(|e| Failure::new(1, format!("key rotation: {e}")))?;
        if t.selector.as_deref().is_some_and(|s| s != selector) {
            return Err(Failure::new(
                1,
                format!("key rotation: {t}: the key was named {selector}; plan again"),
            ));
        }
        println!("key: {t}");
        taken.push(t.clone());
    }
    export_signer(&store, &cfg, &taken)
}

/// Exports the signing keys for the signer when `taken` changed which keys
/// sign.
fn export_signer(
    store: &crate::keys::store::Keystore,
    cfg: &crate::keys::config::KeysConfig,
    taken: &[crate::keys::lifecycle::Transition],
) -> Result<(), Failure> {
    use crate::keys::lifecycle::Action;
    let signer_changed = taken
        .iter()
        .any(|t| matches!(t.action, Action::Activate | Action::Retire | Action::Revoke));
    if let (true, Some(export)) = (signer_changed, &cfg.export) {
        let report = crate::keys::export::export(store, export)
            .map_err(|e| Failure::new(1, format!("signer export: {e}")))?;
        println!(
            "key: exported {} signing key(s) to {}{}",
            report.keys.len(),
            export.dir.display(),
            if report.hook_ran { ", hook ran" } else { "" }
        );
    }
    Ok(())
}

/// Uploads the MTA-STS policy file of every planned domain with an
/// `mta_sts.publish` target, before any DNS change: RFC 8461 §3.3 senders
/// fetch the policy when they see a new id, so the new policy must be
/// served first. One failed upload stops the apply with nothing changed in
/// DNS.
/// A zone apply will refuse (needs `--force`) gets no upload either: its
/// new policy must not be served while the old id stays.
fn publish_policies(ws: &Workspace, plan: &Plan, force: bool) -> Result<(), Failure> {
    let domains: Vec<_> = plan
        .zones
        .iter()
        .filter(|z| z.error.is_none() && (force || z.needs_force.is_none()))
        .filter_map(|z| crate::record::Name::parse(&z.zone).ok())
        .collect();
    let files = crate::publish::policy_files(ws, &domains).map_err(|e| Failure::new(1, e))?;
    for f in files.iter().filter(|f| f.target.is_some()) {
        let place = crate::publish::publish(ws, f).map_err(|e| {
            Failure::new(
                1,
                format!(
                    "{}: mta_sts.publish: {e}; nothing was changed in DNS",
                    f.domain
                ),
            )
        })?;
        println!("{}: MTA-STS policy published to {place}", f.domain);
    }
    Ok(())
}

/// Applies the DNS changes of `plan`; returns the number of failed zones.
fn apply_dns(ws: &Workspace, plan: &Plan, force: bool) -> Result<usize, Failure> {
    if !plan.has_changes() {
        let clean: Vec<&plan::ZonePlan> = plan.zones.iter().filter(|z| z.error.is_none()).collect();
        if let Err(e) = ws.record_upstream(&clean) {
            eprintln!("error: {e}");
            return Ok(plan.errors().count() + 1);
        }
        return Ok(plan.errors().count());
    }
    // The providers and desired states the plan's zones refer to, built
    // from the current config.
    let mut providers: std::collections::BTreeMap<
        String,
        std::sync::Arc<dyn crate::provider::Provider>,
    > = std::collections::BTreeMap::new();
    let mut desired = std::collections::BTreeMap::new();
    for z in &plan.zones {
        let Ok(name) = crate::record::Name::parse(&z.zone) else {
            continue;
        };
        for p in ws.providers_for(&name).into_iter().flatten() {
            providers.insert(p.id(), p);
        }
        if let Ok(d) = ws.desired_planned(&name, z) {
            desired.insert(z.zone.clone(), d);
        }
    }
    let target = |zp: &plan::ZonePlan| -> Result<crate::apply::Target<'_>, String> {
        let provider = providers.get(&zp.provider).ok_or_else(|| {
            format!(
                "the plan names provider {} for {}, which the config no longer gives this domain",
                zp.provider, zp.zone
            )
        })?;
        Ok(crate::apply::Target {
            provider: provider.as_ref(),
            desired: desired.get(&zp.zone),
        })
    };
    let outcomes = crate::apply::apply(plan, force, CONCURRENCY, &target);
    let mut failed = 0;
    let mut applied = 0;
    for o in &outcomes {
        match &o.error {
            Some(e) => {
                failed += 1;
                eprintln!("{}: {}: {e}", o.zone, o.provider);
            }
            None if o.applied > 0 => {
                applied += o.applied;
                println!("{}: {} change(s) applied, verified", o.zone, o.applied);
            }
            None => {}
        }
    }
    println!(
        "Apply complete: {applied} change(s) in {} zone(s), {failed} failed.",
        outcomes.len() - failed
    );
    // What the flattened SPF includes resolved to, for the next plan's
    // drift check: recorded for the zones now published as planned.
    let done: Vec<&plan::ZonePlan> = plan
        .zones
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.error.is_none())
        .map(|(z, _)| z)
        .collect();
    if let Err(e) = ws.record_upstream(&done) {
        eprintln!("error: {e}");
        return Ok(failed + 1);
    }
    Ok(failed)
}
