//! kill -9 at random moments of `mailauth apply` on zone files. After every
//! kill each zone file is exactly the old version or exactly the new one
//! (never half-written), parses, and `named-checkzone` accepts it; the next
//! apply finishes the job and a re-plan shows no changes.
//!
//! Owns the zone-file crash test; leaves the atomic write itself to
//! `fsutil::write_atomic` and the RFC 2136 crash test to
//! `tests/faults/faults_rfc2136.rs`.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mailauth::record::Name;
use util::{Case, checkzone};

const DOMAINS: usize = 150;

/// A fleet config; `variant` changes every domain's SPF and DMARC so that
/// apply rewrites every zone file.
fn config(variant: u32) -> String {
    let mut c = String::from(
        "provider:\n  kind: zonefile\n  dir: zones\ndefaults:\n  ttl: 3600\ndomains:\n",
    );
    for i in 0..DOMAINS {
        c.push_str(&format!(
            "  d{i}.example:\n    spf:\n      ip4: [192.0.2.{variant}/32]\n      all: fail\n    dmarc:\n      p: {}\n      rua: [mailto:dmarc@d{i}.example]\n",
            if variant.is_multiple_of(2) { "reject" } else { "quarantine" }
        ));
    }
    c
}

fn zone_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read zones dir") {
        let p = e.expect("dir entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        if name.ends_with(".zone") && !name.starts_with('.') {
            out.insert(name, std::fs::read_to_string(&p).expect("read zone"));
        }
    }
    out
}

/// A pseudo-random delay in `0..max_ms` milliseconds (from the clock's
/// nanoseconds: different on every run, which is the point).
fn random_ms(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    (n ^ (n >> 7)) % max_ms
}

#[test]
fn kill_9_during_zonefile_apply_leaves_old_or_new_files_and_converges() {
    // Old state: variant 1 applied. New state: variant 2, computed once
    // by an uninterrupted run in a separate directory.
    let old_case = Case::new().config(&config(1));
    old_case.run(&["apply", "--auto-approve"]).ok();
    let old = zone_files(&old_case.path().join("zones"));
    assert_eq!(old.len(), DOMAINS);

    let reference = Case::new().config(&config(1));
    reference.run(&["apply", "--auto-approve"]).ok();
    std::fs::write(reference.path().join("mailauth.yaml"), config(2)).expect("write config");
    reference.run(&["apply", "--auto-approve"]).ok();
    let new = zone_files(&reference.path().join("zones"));
    assert_eq!(new.len(), DOMAINS);
    for (name, text) in &new {
        assert_ne!(old.get(name), Some(text), "{name} did not change");
    }

    let case = Case::new().config(&config(1));
    case.run(&["apply", "--auto-approve"]).ok();
    std::fs::write(case.path().join("mailauth.yaml"), config(2)).expect("write config");
    let zones = case.path().join("zones");
    let mut kills_mid_run = 0;
    let mut saw_mixed = false;
    for round in 0..12 {
        let mut child = util::mailauth(["apply", "--auto-approve"])
            .dir(case.path())
            .env("MAILAUTH_NOW", "2026-11-27T12:00:00Z")
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        std::thread::sleep(Duration::from_millis(random_ms(120) + round * 5));
        let finished = child.try_wait().expect("try_wait").is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished {
            kills_mid_run += 1;
        }
        let now = zone_files(&zones);
        assert_eq!(now.len(), DOMAINS, "round {round}: a zone file vanished");
        let (mut n_old, mut n_new) = (0, 0);
        for (name, text) in &now {
            if Some(text) == old.get(name) {
                n_old += 1;
            } else if Some(text) == new.get(name) {
                n_new += 1;
            } else {
                panic!("round {round}: {name} is neither the old nor the new file:\n{text}");
            }
            let origin = Name::parse(name.trim_end_matches(".zone")).expect("zone name");
            mailauth::masterfile::parse(text, &origin)
                .unwrap_or_else(|e| panic!("round {round}: {name} does not parse: {e}"));
        }
        saw_mixed |= n_old > 0 && n_new > 0;
        if n_old == 0 {
            // Everything already converged: put the old files back so the
            // next round kills a real rewrite again.
            for (name, text) in &old {
                std::fs::write(zones.join(name), text).expect("restore old zone");
            }
        }
    }
    eprintln!("{kills_mid_run}/12 kills hit a running apply; mixed old/new seen: {saw_mixed}");
    assert!(kills_mid_run > 0, "no kill landed while apply was running");

    // Every file BIND would load is valid.
    for name in zone_files(&zones).keys() {
        checkzone(name.trim_end_matches(".zone"), &zones.join(name));
    }
    // The next run converges, and a re-plan has nothing to do.
    case.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(zone_files(&zones), new);
    let replan = case.run(&["plan", "--detailed-exitcode"]).code(0);
    assert!(replan.stdout.contains("No changes."), "{}", replan.stdout);
}
