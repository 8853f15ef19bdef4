//! End to end against a real BIND: keys rotate three times and more under a
//! fake clock, the zone is rewritten from `published_keys` at every change,
//! activation is gated on what BIND actually serves, and every message
//! signed by any key within the last `retire_after` verifies with the
//! independent `mail-auth` verifier at every step. `opendkim-testkey`
//! checks each active RSA key (and catches a wrong one). A 4096-bit key,
//! whose record exceeds 512 octets, publishes and verifies.

use crate::keys_support;

use std::collections::BTreeMap;

use crate::support::require_binary as require;
use keys_support::{Bind, opendkim_testkey, sign, verify};
use mail_auth::DkimResult;
use mailauth::keys::config::{Algorithm, ExportConfig, ExportFormat, FamilyConfig};
use mailauth::keys::export::export;
use mailauth::keys::lifecycle::{Action, apply_due, plan, published_keys, signing_keys};
use mailauth::keys::store::{KeyState, Keystore};
use mailauth::keys::time::{Span, Timestamp};

const DOMAIN: &str = "example.test";

fn fast(prefix: &str, algorithm: Algorithm, rotate_days: u64) -> FamilyConfig {
    let mut f = FamilyConfig::new(prefix, algorithm);
    f.rotate_every = Span::days(rotate_days);
    f.activate_after = Span::days(2);
    f.retire_after = Span::days(4);
    f.revoke_after = Span::days(2);
    f.ttl = 300;
    f.validate().unwrap();
    f
}

struct Signed {
    selector: String,
    prefix: String,
    at: Timestamp,
    message: String,
}

#[test]
fn three_rotations_against_bind_keep_every_recent_signature_valid() {
    let Some(named) = require("named") else {
        return;
    };
    let testkey = require("opendkim-testkey");
    let mut bind = Bind::start(named, DOMAIN);
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(&tmp.path().join("keys")).unwrap();
    let export_cfg = ExportConfig {
        format: ExportFormat::Opendkim,
        dir: tmp.path().join("signer"),
        hook: None,
    };
    let fams = vec![
        (DOMAIN.to_string(), fast("mail", Algorithm::Rsa, 20)),
        (DOMAIN.to_string(), fast("ed", Algorithm::Ed25519, 15)),
    ];
    let retire_after = Span::days(4);

    let mut now = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    let mut served = published_keys(store.state(), DOMAIN);
    let mut signed: Vec<Signed> = Vec::new();
    let mut activations: BTreeMap<String, usize> = BTreeMap::new();
    let mut revoked_rejections = 0;
    let mut wrong_key_checked = false;
    for _day in 0..70 {
        // Bind is the observer: activation waits for what it really serves.
        let taken = apply_due(&mut store, &fams, now, &bind).unwrap();
        let wanted = published_keys(store.state(), DOMAIN);
        if wanted != served {
            bind.serve(&wanted);
            served = wanted;
        }
        // The signer gets the active keys through a real export.
        let report = export(&store, &export_cfg).unwrap();
        // The key files as OpenDKIM finds them: through its KeyTable.
        let key_table = std::fs::read_to_string(export_cfg.dir.join("KeyTable")).unwrap();
        let key_file = |d: &str, sel: &str| -> std::path::PathBuf {
            let prefix = format!("{sel}._domainkey.{d} {d}:{sel}:");
            let line = key_table
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{sel} not in KeyTable:\n{key_table}"));
            std::path::PathBuf::from(&line[prefix.len()..])
        };
        for t in taken.iter().filter(|t| t.action == Action::Activate) {
            let sel = t.selector.clone().unwrap();
            let rec = store.state().get(DOMAIN, &sel).unwrap().clone();
            *activations.entry(rec.prefix.clone()).or_default() += 1;
            if rec.algorithm == Algorithm::Rsa
                && let Some(tk) = &testkey
            {
                let key = key_file(DOMAIN, &sel);
                assert_eq!(opendkim_testkey(tk, &bind, DOMAIN, &sel, &key), 0, "{sel}");
                // A wrong key exported for this selector is caught.
                if let Some(old) = t.retires.first() {
                    let wrong = store.private_path(DOMAIN, old);
                    assert_eq!(opendkim_testkey(tk, &bind, DOMAIN, &sel, &wrong), 65);
                    wrong_key_checked = true;
                }
            }
        }
        for (d, sel) in &report.keys {
            let rec = store.state().get(d, sel).unwrap();
            let pem = std::fs::read_to_string(key_file(d, sel)).unwrap();
            signed.push(Signed {
                selector: sel.clone(),
                prefix: rec.prefix.clone(),
                at: now,
                message: sign(d, sel, rec.algorithm, &pem),
            });
        }
        // Every message signed within retire_after verifies now.
        for s in &signed {
            let age = now.since(s.at);
            let result = verify(bind.port, &s.message);
            if age < retire_after {
                assert_eq!(
                    result,
                    DkimResult::Pass,
                    "{} ({}) signed at {} fails at {now}",
                    s.selector,
                    s.prefix,
                    s.at
                );
            } else if store.state().get(DOMAIN, &s.selector).unwrap().state >= KeyState::Revoked {
                assert_ne!(result, DkimResult::Pass, "{} is revoked", s.selector);
                revoked_rejections += 1;
            }
        }
        // Forget messages older than any check needs.
        signed.retain(|s| now.since(s.at) < Span::days(12));
        now = now.plus(Span::days(1));
    }
    assert!(activations["mail"] >= 4, "{activations:?}");
    assert!(activations["ed"] >= 4, "{activations:?}");
    assert!(revoked_rejections > 0);
    if testkey.is_some() {
        assert!(wrong_key_checked);
    }
    let removed = store
        .state()
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Removed)
        .count();
    assert!(removed >= 4, "{removed}");
}

#[test]
fn rsa_4096_and_3072_keys_publish_split_and_verify() {
    let Some(named) = require("named") else {
        return;
    };
    let testkey = require("opendkim-testkey");
    let mut bind = Bind::start(named, DOMAIN);
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(tmp.path()).unwrap();
    let mut big = fast("big", Algorithm::Rsa, 30);
    big.bits = Some(4096);
    let mut mid = fast("mid", Algorithm::Rsa, 30);
    mid.bits = Some(3072);
    let fams = vec![(DOMAIN.to_string(), big), (DOMAIN.to_string(), mid)];
    let t0 = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    apply_due(&mut store, &fams, t0, &bind).unwrap();
    let keys = published_keys(store.state(), DOMAIN);
    assert_eq!(keys.len(), 2);
    let t1 = t0.plus(Span::days(2));
    // Not yet in the zone BIND serves: nothing is confirmed or activated,
    // and the plan says what it waits for.
    assert!(apply_due(&mut store, &fams, t1, &bind).unwrap().is_empty());
    let waiting = plan(&fams, store.state(), t1, &bind);
    assert!(
        waiting
            .iter()
            .filter(|t| t.action == Action::Activate)
            .all(|t| t
                .waiting_for
                .as_deref()
                .is_some_and(|w| w.contains("every authoritative server"))),
        "{waiting:?}"
    );
    bind.serve(&keys);
    // Confirmed served at t1, active one TTL (300 s) later.
    let mut taken = apply_due(&mut store, &fams, t1, &bind).unwrap();
    assert_eq!(
        taken.iter().filter(|t| t.action == Action::Confirm).count(),
        2
    );
    taken.extend(apply_due(&mut store, &fams, t1.plus(Span::seconds(300)), &bind).unwrap());
    assert_eq!(
        taken
            .iter()
            .filter(|t| t.action == Action::Activate)
            .count(),
        2
    );
    for k in signing_keys(store.state()) {
        let value = published_keys(store.state(), DOMAIN)
            .into_iter()
            .find(|p| p.selector == k.selector)
            .unwrap()
            .txt_value();
        let answer = bind.dig(&format!("{}._domainkey.{DOMAIN}", k.selector), "TXT");
        let strings = answer.matches("\" \"").count() + 1;
        match k.bits {
            Some(4096) => {
                assert!(value.len() > 512, "{}", value.len());
                assert!(strings >= 3, "{answer}");
            }
            Some(3072) => {
                assert!(value.len() > 255, "{}", value.len());
                assert!(strings >= 2, "{answer}");
            }
            other => panic!("unexpected size {other:?}"),
        }
        let pem = store.private_pem(DOMAIN, &k.selector).unwrap();
        let msg = sign(DOMAIN, &k.selector, Algorithm::Rsa, pem.expose());
        assert_eq!(verify(bind.port, &msg), DkimResult::Pass, "{}", k.selector);
        if let Some(tk) = &testkey {
            let path = store.private_path(DOMAIN, &k.selector);
            assert_eq!(opendkim_testkey(tk, &bind, DOMAIN, &k.selector, &path), 0);
        }
    }
}
