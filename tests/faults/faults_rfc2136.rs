//! kill -9 at random moments of `mailauth apply` against a real BIND over
//! RFC 2136. After every kill each zone is consistent — its SPF and DMARC
//! records are both the old ones or both the new ones, one of each, never a
//! mix, a duplicate or a gap — and the next apply converges: a re-plan shows
//! no changes.
//!
//! Owns this crash test; leaves BIND to `tests/support/bind.rs` and the
//! zone-file crash test to `tests/faults/faults_zonefile.rs`.

use crate::support;
use crate::util;

use std::process::Stdio;
use std::time::Duration;

use support::bind::Bind;
use util::Case;

const ZONES: usize = 20;

fn zone_text() -> &'static str {
    "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
}

fn name(i: usize) -> String {
    format!("z{i}.test")
}

fn config(bind: &Bind, secret_file: &str, variant: u32) -> String {
    let mut c = format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{}\n  key_name: {}\n  algorithm: {}\n  secret_file: {secret_file}\ndomains:\n",
        bind.port(),
        bind.tsig().name,
        bind.tsig().algorithm,
    );
    for i in 0..ZONES {
        c.push_str(&format!(
            "  {}:\n    spf: {{ ip4: [192.0.2.{variant}/32], all: fail }}\n    dmarc: {{ p: reject, rua: [mailto:v{variant}@{}] }}\n",
            name(i),
            name(i)
        ));
    }
    c
}

fn random_ms(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    (n ^ (n >> 11)) % max_ms
}

/// Which variant zone `i` holds (None: none yet); panics on an
/// inconsistent zone.
fn variant_of(bind: &Bind, i: usize, when: &str) -> Option<u32> {
    let zone = name(i);
    let spf: Vec<String> = bind
        .dig_short(&zone, "TXT")
        .lines()
        .filter(|l| l.contains("v=spf1"))
        .map(str::to_string)
        .collect();
    let dmarc: Vec<String> = bind
        .dig_short(&format!("_dmarc.{zone}"), "TXT")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if spf.is_empty() && dmarc.is_empty() {
        return None;
    }
    assert!(
        spf.len() == 1 && dmarc.len() == 1,
        "{when}: {zone} has {spf:?} and {dmarc:?}"
    );
    let v_spf: u32 = spf[0]
        .split("ip4:192.0.2.")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{when}: {zone} SPF {spf:?}"));
    let v_dmarc: u32 = dmarc[0]
        .split("mailto:v")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{when}: {zone} DMARC {dmarc:?}"));
    assert_eq!(
        v_spf, v_dmarc,
        "{when}: {zone} is half updated: {spf:?} {dmarc:?}"
    );
    Some(v_spf)
}

#[test]
fn kill_9_during_rfc2136_apply_leaves_consistent_zones_and_converges() {
    let zones: Vec<(String, &str)> = (0..ZONES).map(|i| (name(i), zone_text())).collect();
    let refs: Vec<(&str, &str)> = zones.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let Some(bind) = Bind::try_start(&refs) else {
        return;
    };
    let secret = bind.secret_file(bind.tsig()).display().to_string();
    let case = Case::new().config(&config(&bind, &secret, 1));
    // How long a whole apply of every zone takes here: the kills land at
    // random points inside that span (a fixed span missed a fast apply,
    // one that reuses its few connections, on an idle machine).
    let started = std::time::Instant::now();
    case.run(&["apply", "--auto-approve"]).ok();
    let span_ms = (started.elapsed().as_millis() as u64 * 8 / 10).max(2);
    for i in 0..ZONES {
        assert_eq!(variant_of(&bind, i, "baseline"), Some(1));
    }
    let mut mid_run = 0;
    for round in 0..8u32 {
        let variant = round + 2;
        std::fs::write(
            case.path().join("mailauth.yaml"),
            config(&bind, &secret, variant),
        )
        .expect("write config");
        let mut child = util::mailauth(["apply", "--auto-approve"])
            .dir(case.path())
            .env("MAILAUTH_NOW", "2026-11-27T12:00:00Z")
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        std::thread::sleep(Duration::from_millis(1 + random_ms(span_ms)));
        if child.try_wait().expect("try_wait").is_none() {
            mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let when = format!("after kill {round}");
        for i in 0..ZONES {
            let v = variant_of(&bind, i, &when);
            assert!(
                v.is_some_and(|v| v <= variant),
                "{when}: {} holds {v:?}",
                name(i)
            );
        }
    }
    eprintln!("{mid_run}/8 kills hit a running apply");
    assert!(mid_run > 0, "no kill landed while apply was running");
    case.run(&["apply", "--auto-approve"]).ok();
    for i in 0..ZONES {
        assert_eq!(variant_of(&bind, i, "after the final apply"), Some(9));
    }
    let replan = case.run(&["plan", "--detailed-exitcode"]).code(0);
    assert!(replan.stdout.contains("No changes."), "{}", replan.stdout);
}
