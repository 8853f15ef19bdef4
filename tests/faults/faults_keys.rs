//! kill -9 at random moments of DKIM key rotation (the scheduled lifecycle
//! `apply_due` and emergency `keys rotate`), then check the keystore:
//! `state.json` parses, no key is lost or moves backwards in its
//! lifecycle, every key that is or may become a signing key has its private
//! file, no revoked key keeps one, and a family that had a signing key
//! never loses it. A full run afterwards converges.
//!
//! The rotation runs in a child process: this test binary re-executed with
//! `FAULT_KEYS_DIR` set runs only `rotation_child`, which the parent kills.
//!
//! Owns the keystore crash test; leaves the lifecycle to `keys::lifecycle`
//! and the disk-full case to `tests/faults/faults_disk_full.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mailauth::keys::config::{Algorithm, FamilyConfig};
use mailauth::keys::lifecycle::{Observer, apply_due, generate_key, signing_keys};
use mailauth::keys::store::{KeyState, Keystore};
use mailauth::keys::time::{Span, Timestamp};

const CHILD_ENV: &str = "FAULT_KEYS_DIR";
const STEPS_ENV: &str = "FAULT_KEYS_STEPS";

/// Every server serves every key at once: activation is never held back.
struct Served;
impl Observer for Served {
    fn served_everywhere(&self, _: &str, _: &str, _: &[u8]) -> Result<bool, String> {
        Ok(true)
    }
}

/// Short periods so a few simulated days walk keys through every state.
fn families() -> Vec<(String, FamilyConfig)> {
    ["a.example", "b.example", "c.example"]
        .iter()
        .map(|d| {
            let mut f = FamilyConfig::new("k", Algorithm::Ed25519);
            f.rotate_every = Span::days(2);
            f.activate_after = Span::hours(12);
            f.retire_after = Span::days(1);
            f.revoke_after = Span::days(1);
            f.ttl = 300;
            (d.to_string(), f)
        })
        .collect()
}

fn read_clock(dir: &Path) -> Timestamp {
    match std::fs::read_to_string(dir.join("clock")) {
        Ok(t) => Timestamp(t.trim().parse().expect("clock file holds seconds")),
        Err(_) => Timestamp::parse("2026-01-01T00:00:00Z").expect("start time"),
    }
}

/// The child: steps the simulated clock by six hours, taking every due
/// transition and, every fifth step, an emergency rotation of one family.
/// Runs until killed or `FAULT_KEYS_STEPS` steps are done.
#[test]
fn rotation_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by the parent test
    };
    let dir = Path::new(&dir);
    let steps: u64 = std::env::var(STEPS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let fams = families();
    for step in 0..steps {
        let now = read_clock(dir);
        let mut store = Keystore::open(&dir.join("keys")).expect("open keystore");
        apply_due(&mut store, &fams, now, &Served).expect("apply_due");
        if step % 5 == 4 {
            let (domain, cfg) = &fams[(step / 5) as usize % fams.len()];
            generate_key(&mut store, domain, cfg, now, true).expect("emergency rotation");
        }
        drop(store);
        let next = now.plus(Span::hours(6)).0.to_string();
        mailauth::fsutil::write_atomic(&dir.join("clock"), next.as_bytes(), 0o600)
            .expect("advance clock");
    }
}

fn spawn_child(dir: &Path, steps: Option<u64>) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        &child_test("rotation_child"),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(n) = steps {
        cmd.env(STEPS_ENV, n.to_string());
    }
    cmd.spawn().expect("spawn rotation child")
}

/// The name `--exact` takes for the test `name` of this module: its path
/// in the test binary without the binary's own name (this file is a
/// module of the `faults` binary).
fn child_test(name: &str) -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}

fn random_ms(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    (n ^ (n >> 9)) % max_ms
}

#[derive(Default)]
struct Seen {
    /// (domain, selector) → (state, public key) when last checked.
    keys: BTreeMap<(String, String), (KeyState, Vec<u8>)>,
    /// Domains that have had a signing key.
    signing: Vec<String>,
}

/// Checks the keystore after a kill; returns how many keys it holds.
fn check(keys_dir: &Path, seen: &mut Seen, when: &str) -> usize {
    let store =
        Keystore::open(keys_dir).unwrap_or_else(|e| panic!("{when}: keystore does not open: {e}"));
    let state = store.state();
    for k in &state.keys {
        let id = (k.domain.clone(), k.selector.clone());
        let private = store.private_path(&k.domain, &k.selector);
        let may_sign = matches!(
            k.state,
            KeyState::Pending | KeyState::Published | KeyState::Active
        );
        if may_sign {
            let pem = std::fs::read_to_string(&private).unwrap_or_else(|e| {
                panic!(
                    "{when}: {} key {}/{} has no private file: {e}",
                    k.state, k.domain, k.selector
                )
            });
            assert!(
                pem.starts_with("-----BEGIN ") && pem.trim_end().ends_with("-----"),
                "{when}: private file of {}/{} is not a whole PEM",
                k.domain,
                k.selector
            );
        }
        if matches!(k.state, KeyState::Revoked | KeyState::Removed) {
            assert!(
                !private.exists(),
                "{when}: {} key {}/{} still has its private file",
                k.state,
                k.domain,
                k.selector
            );
        }
        if let Some((old_state, old_key)) = seen.keys.get(&id) {
            assert!(
                k.state >= *old_state,
                "{when}: {}/{} went back from {old_state} to {}",
                k.domain,
                k.selector,
                k.state
            );
            assert_eq!(
                &k.public_key, old_key,
                "{when}: {}/{} changed key",
                k.domain, k.selector
            );
        }
        seen.keys.insert(id, (k.state, k.public_key.clone()));
    }
    for (domain, selector) in seen.keys.keys() {
        assert!(
            state.get(domain, selector).is_some(),
            "{when}: key {domain}/{selector} was lost"
        );
    }
    let signing: Vec<String> = signing_keys(state)
        .iter()
        .map(|k| k.domain.clone())
        .collect();
    for d in &seen.signing {
        assert!(signing.contains(d), "{when}: {d} lost its signing key");
    }
    for d in signing {
        if !seen.signing.contains(&d) {
            seen.signing.push(d);
        }
    }
    state.keys.len()
}

#[test]
fn kill_9_during_key_rotation_loses_no_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys_dir = tmp.path().join("keys");
    let mut seen = Seen::default();
    let mut mid_run = 0;
    for round in 0..15u64 {
        let mut child = spawn_child(tmp.path(), None);
        std::thread::sleep(Duration::from_millis(40 + random_ms(200) + round * 10));
        let exited = child.try_wait().expect("try_wait");
        if let Some(status) = exited {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("round {round}: rotation child exited by itself ({status}):\n{err}");
        }
        child.kill().expect("kill -9");
        let _ = child.wait();
        mid_run += 1;
        check(&keys_dir, &mut seen, &format!("after kill {round}"));
    }
    assert_eq!(mid_run, 15);
    let clock_before = read_clock(tmp.path());
    // A clean run from wherever the kills left it converges: every family
    // signs, and every invariant still holds.
    let child = spawn_child(tmp.path(), Some(40));
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "clean run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = check(&keys_dir, &mut seen, "after the clean run");
    assert!(
        read_clock(tmp.path()).0 > clock_before.0,
        "the clean run did not advance"
    );
    let store = Keystore::open(&keys_dir).expect("open");
    let signing = signing_keys(store.state());
    assert_eq!(signing.len(), 3, "one signing key per family");
    let states: Vec<KeyState> = store.state().keys.iter().map(|k| k.state).collect();
    assert!(
        states.contains(&KeyState::Removed) || states.contains(&KeyState::Revoked),
        "ten simulated days should retire and revoke keys: {states:?}"
    );
    eprintln!("{n} keys after 15 kills and a clean run");
}
