//! `mailauth apply`: the arguments, the plan (read from a file, or made now,
//! shown and confirmed), and the rendering of what `crate::apply::run` did:
//! a line per key step, signer export and policy upload as each is done,
//! then a line per zone and the summary. The order of the steps, and what
//! a saved plan must still match, belong to `crate::apply::run`; planning
//! to `plan`.

use super::*;
use crate::apply::{ApplyOptions, ApplyOutcome, Event, Source};

pub(super) fn apply_cmd(
    config: &Path,
    color: ColorChoice,
    args: ApplyArgs,
) -> Result<i32, Failure> {
    let ws = load(config)?;
    let st = style(color, args.full);
    let now = crate::clock::clock(None)?;
    // The guard `plan` adds from the report store, for the plan made now
    // and for the one `run` makes again after key steps.
    let guard = |plan: &mut Plan| tls_rpt_guard(&ws, &Default::default(), now, plan);
    let (plan, source) = match &args.plan {
        Some(path) => (read_plan(path)?, Source::Saved),
        None => {
            let domains = ws
                .select(&args.domains)
                .map_err(|e| Failure::new(Exit::Usage, e))?;
            let mut plan = ws.plan_at(&domains, now);
            guard(&mut plan);
            print!("{}", plan::render_text(&plan, st));
            let pending = plan.has_changes() || plan.zones.iter().any(|z| !z.notes.is_empty());
            if pending && !args.auto_approve && !confirm()? {
                println!("Apply cancelled.");
                return Ok(Exit::Error.code());
            }
            (plan, Source::Fresh)
        }
    };
    let opts = ApplyOptions {
        force: args.force,
        refine: &guard,
        ..ApplyOptions::new(now)
    };
    let outcome = crate::apply::run(&ws, plan, source, &opts, &mut print_event)?;
    render(&outcome);
    Ok(if outcome.failures() > 0 {
        Exit::Error
    } else {
        Exit::Success
    }
    .code())
}

/// A step as it is done.
fn print_event(e: Event<'_>) {
    match e {
        Event::KeyStep(t) => println!("key: {t}"),
        Event::SignerExported {
            keys,
            dir,
            hook_ran,
        } => println!(
            "key: exported {keys} signing key(s) to {}{}",
            dir.display(),
            if hook_ran { ", hook ran" } else { "" }
        ),
        Event::PolicyPublished { domain, place } => {
            println!("{domain}: MTA-STS policy published to {place}")
        }
    }
}

/// Each zone's outcome (failures on stderr) and the summary; nothing when
/// the plan had nothing to write.
fn render(outcome: &ApplyOutcome) {
    if let Some(zones) = &outcome.zones {
        let mut failed = 0;
        let mut applied = 0;
        for o in zones {
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
            zones.len() - failed
        );
    }
    if let Some(e) = &outcome.upstream_error {
        eprintln!("error: {e}");
    }
}

fn read_plan(path: &Path) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(Exit::Error, format!("{}: {e}", path.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            Exit::Error,
            format!("{}: not a mailauth plan: {e}", path.display()),
        )
    })?;
    if plan.format != plan::FORMAT {
        return Err(Failure::new(
            Exit::Error,
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
            Exit::Error,
            "apply is not running on a terminal: review the plan and pass --auto-approve, or apply a saved plan file",
        ));
    }
    print!("\nApply these changes? Only 'yes' is accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(answer.trim() == "yes")
}
