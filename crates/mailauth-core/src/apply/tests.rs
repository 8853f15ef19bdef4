//! The order [`run`] keeps, against zone files in a temporary directory
//! and a keystore beside them, with a fixed answer for whether DNS serves
//! a key.

use std::path::PathBuf;

use super::{ApplyError, ApplyOptions, Event, Source, ZoneError, run};
use crate::keys::lifecycle::{Action, Observer};
use crate::keys::store::{KeyState, Keystore};
use crate::keys::time::{Span, Timestamp};
use crate::plan::Plan;
use crate::provider::ProviderError;
use crate::record::Name;
use crate::workspace::Workspace;

/// Says every key is served everywhere, or that none is yet.
struct Served(bool);

impl Observer for Served {
    fn served_everywhere(&self, _: &str, _: &str, _: &[u8]) -> Result<bool, String> {
        Ok(self.0)
    }
}

const CONFIG: &str = "keys:\n  dir: keys\n\
domains:\n  example.test:\n    ttl: 300\n    dmarc: { p: none }\n    dkim:\n      selectors:\n        - { prefix: ed, algorithm: ed25519, rotate_every: 30d, activate_after: 1d, retire_after: 5d, revoke_after: 1d }\n";

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mailauth.yaml"), CONFIG).unwrap();
        Case { dir }
    }
    fn ws(&self, served: bool) -> Workspace {
        Workspace::load(&self.dir.path().join("mailauth.yaml"))
            .unwrap()
            .with_observer(Served(served))
    }
    fn zone_file(&self) -> PathBuf {
        self.dir.path().join("zones").join("example.test.zone")
    }
    fn zone_text(&self) -> String {
        std::fs::read_to_string(self.zone_file()).unwrap_or_default()
    }
    fn keys(&self) -> Vec<(String, KeyState, Vec<u8>)> {
        let dir = self.dir.path().join("keys");
        if !dir.join("state.json").exists() {
            return Vec::new();
        }
        Keystore::open_public(&dir)
            .unwrap()
            .state()
            .keys
            .iter()
            .map(|k| (k.selector.clone(), k.state, k.public_key.clone()))
            .collect()
    }
    fn plan(&self, ws: &Workspace) -> Plan {
        ws.plan(&[Name::parse("example.test").unwrap()]).unwrap()
    }
}

/// `run` with the events it reported, as text.
fn apply(
    ws: &Workspace,
    plan: Plan,
    source: Source,
    opts: &ApplyOptions<'_>,
) -> (Result<super::ApplyOutcome, ApplyError>, Vec<String>) {
    let mut events = Vec::new();
    let mut hear = |e: Event<'_>| {
        events.push(match e {
            Event::KeyStep(t) => format!("key {}", t.action),
            Event::SignerExported { keys, .. } => format!("export {keys}"),
            Event::PolicyPublished { domain, .. } => format!("policy {domain}"),
        })
    };
    let out = run(ws, plan, source, opts, &mut hear);
    (out, events)
}

/// The base64 of a key as its DKIM record shows it, split as a TXT
/// string may be.
fn in_zone(zone: &str, key: &[u8]) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    zone.replace("\" \"", "").contains(&b64)
}

fn now() -> Timestamp {
    Timestamp::system_now()
}

#[test]
fn a_fresh_apply_takes_the_key_steps_then_writes_the_record_of_the_new_key() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    let steps: Vec<Action> = plan.key_steps().map(|t| t.action).collect();
    assert_eq!(steps, [Action::Generate, Action::Publish], "{plan:?}");
    assert!(plan.zones[0].changes.iter().any(|c| c.known_after_apply));

    let (out, events) = apply(&ws, plan, Source::Fresh, &ApplyOptions::new(now()));
    let out = out.unwrap();
    assert_eq!(events, ["key generate", "key publish"]);
    // The plan made again after the steps holds the generated key's record,
    // and that is what was written.
    assert!(
        out.plan.zones[0]
            .changes
            .iter()
            .all(|c| !c.known_after_apply)
    );
    let keys = case.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, KeyState::Published);
    assert!(
        in_zone(&case.zone_text(), &keys[0].2),
        "{}",
        case.zone_text()
    );
    let zones = out.zones.as_ref().unwrap();
    assert!(zones.iter().all(|z| z.error.is_none()), "{zones:?}");
    assert_eq!(out.failures(), 0);
}

#[test]
fn a_saved_plan_takes_its_key_steps_then_fills_in_the_record_known_after_apply() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    let (out, events) = apply(&ws, plan, Source::Saved, &ApplyOptions::new(now()));
    let out = out.unwrap();
    assert_eq!(events, ["key generate", "key publish"]);
    assert_eq!(out.keys.len(), 2);
    assert!(
        out.plan.zones[0]
            .changes
            .iter()
            .all(|c| !c.known_after_apply)
    );
    let keys = case.keys();
    assert!(
        in_zone(&case.zone_text(), &keys[0].2),
        "{}",
        case.zone_text()
    );
    assert_eq!(out.failures(), 0);
}

#[test]
fn a_stale_saved_plan_changes_neither_the_keys_nor_the_zone() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    // Someone else writes the zone after the plan read it.
    std::fs::create_dir_all(case.zone_file().parent().unwrap()).unwrap();
    let theirs = "$ORIGIN example.test.\n@ 300 IN TXT \"theirs\"\n";
    std::fs::write(case.zone_file(), theirs).unwrap();

    let (out, events) = apply(&ws, plan, Source::Saved, &ApplyOptions::new(now()));
    let e = out.unwrap_err();
    assert!(matches!(e, ApplyError::Stale { .. }), "{e:?}");
    assert!(e.plan_again());
    assert!(events.is_empty(), "{events:?}");
    assert!(case.keys().is_empty(), "{:?}", case.keys());
    assert_eq!(case.zone_text(), theirs);
}

#[test]
fn a_saved_plan_is_refused_when_other_key_steps_are_due_now() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    apply(&ws, plan, Source::Fresh, &ApplyOptions::new(now()))
        .0
        .unwrap();
    // Planned while DNS did not serve the key yet: nothing to do.
    let plan = case.plan(&ws);
    assert_eq!(plan.key_steps().count(), 0, "{plan:?}");
    // Two days on, DNS serves it: confirming it is due, which the plan
    // did not say.
    let later = now().plus(Span::days(2));
    let ws = case.ws(true);
    let before = case.keys();
    let (out, events) = apply(&ws, plan, Source::Saved, &ApplyOptions::new(later));
    match out.unwrap_err() {
        e @ ApplyError::KeysMoved { .. } => {
            assert!(e.plan_again());
            let ApplyError::KeysMoved { due, planned } = &e else {
                unreachable!()
            };
            assert_eq!(due.len(), 1, "{e}");
            assert_eq!(due[0].action, Action::Confirm, "{e}");
            assert!(planned.is_empty(), "{e}");
            assert!(e.to_string().contains("are not the plan's (none)"), "{e}");
        }
        e => panic!("{e:?}"),
    }
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(case.keys(), before);
}

#[test]
fn a_zone_changed_after_the_key_steps_fails_with_the_providers_stale_error_and_keeps_the_keys() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    // A fresh plan is not checked before its key steps: the zone changes
    // under it, and the provider refuses the write.
    std::fs::create_dir_all(case.zone_file().parent().unwrap()).unwrap();
    let theirs = "$ORIGIN example.test.\n@ 300 IN TXT \"theirs\"\n";
    let write_theirs = |plan: &mut Plan| {
        // After the key steps and the plan made again, before the write.
        std::fs::write(case.zone_file(), theirs).unwrap();
        let _ = plan;
    };
    let opts = ApplyOptions {
        refine: &write_theirs,
        ..ApplyOptions::new(now())
    };
    let (out, events) = apply(&ws, plan, Source::Fresh, &opts);
    let out = out.unwrap();
    assert_eq!(events, ["key generate", "key publish"]);
    let zones = out.zones.as_ref().unwrap();
    assert!(
        matches!(
            zones[0].error,
            Some(ZoneError::Provider(ProviderError::Stale { .. }))
        ),
        "{zones:?}"
    );
    assert_eq!(out.failures(), 1);
    // The key steps stand: the key is published, and activates only once
    // DNS is seen to serve it.
    assert_eq!(case.keys()[0].1, KeyState::Published);
    assert_eq!(case.zone_text(), theirs);
}

#[test]
fn the_plan_made_again_after_key_steps_keeps_the_callers_guards() {
    let case = Case::new();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    let hold = |plan: &mut Plan| {
        for z in &mut plan.zones {
            z.needs_force = Some("held by the guard".into());
        }
    };
    let opts = ApplyOptions {
        refine: &hold,
        ..ApplyOptions::new(now())
    };
    let (out, _) = apply(&ws, plan, Source::Fresh, &opts);
    let out = out.unwrap();
    let zones = out.zones.as_ref().unwrap();
    assert!(
        matches!(&zones[0].error, Some(ZoneError::NeedsForce(m)) if m == "held by the guard"),
        "{zones:?}"
    );
    assert_eq!(case.zone_text(), "");
    // With --force it is written.
    let plan = case.plan(&ws);
    let opts = ApplyOptions {
        refine: &hold,
        force: true,
        ..ApplyOptions::new(now())
    };
    let out = apply(&ws, plan, Source::Fresh, &opts).0.unwrap();
    assert_eq!(out.failures(), 0);
    assert!(in_zone(&case.zone_text(), &case.keys()[0].2));
}

#[test]
fn a_revoke_destroys_the_private_key_and_the_same_apply_empties_p() {
    let case = Case::new();
    let t0 = now();
    let ws = case.ws(true);
    // Generate and publish, then confirm served, activate, and on through
    // the next rotation until the first key is revoked.
    let mut t = t0;
    let mut revoked = None;
    for _ in 0..60 {
        let plan = case.plan(&ws);
        let (out, _) = apply(&ws, plan, Source::Fresh, &ApplyOptions::new(t));
        let out = out.unwrap();
        if let Some(step) = out.keys.iter().find(|s| s.action == Action::Revoke) {
            revoked = step.selector.clone();
            break;
        }
        t = t.plus(Span::days(2));
    }
    let sel = revoked.expect("a key was revoked");
    let dir = case.dir.path().join("keys");
    let store = Keystore::open_public(&dir).unwrap();
    let k = store
        .state()
        .keys
        .iter()
        .find(|k| k.selector == sel)
        .unwrap();
    assert_eq!(k.state, KeyState::Revoked);
    assert!(!store.private_path("example.test", &sel).exists());
    let zone = case.zone_text();
    let line = zone
        .lines()
        .find(|l| l.starts_with(&format!("{sel}._domainkey")))
        .unwrap_or_else(|| panic!("{zone}"));
    assert!(line.contains("p=\""), "{line}");
}

#[test]
fn a_failed_policy_upload_after_the_key_steps_keeps_them_and_writes_no_dns() {
    let case = Case::new();
    // The policy's web root lies under a regular file: the upload fails.
    std::fs::write(case.dir.path().join("blocked"), "").unwrap();
    let config = CONFIG.replace(
        "    dmarc: { p: none }\n",
        "    dmarc: { p: none }\n    mta_sts: { mode: testing, mx: [mail.example.test], max_age: 86400, publish: { dir: blocked/site } }\n",
    );
    std::fs::write(case.dir.path().join("mailauth.yaml"), config).unwrap();
    let ws = case.ws(false);
    let plan = case.plan(&ws);
    let (out, events) = apply(&ws, plan, Source::Fresh, &ApplyOptions::new(now()));
    let e = out.unwrap_err();
    assert!(matches!(e, ApplyError::Publish { .. }), "{e:?}");
    assert!(e.to_string().contains("nothing was changed in DNS"), "{e}");
    assert!(!e.plan_again());
    // The key steps came first and stand; no zone was written.
    assert_eq!(events, ["key generate", "key publish"]);
    assert_eq!(case.keys().len(), 1);
    assert!(!case.zone_file().exists());
}
