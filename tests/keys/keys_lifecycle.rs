//! The rotation lifecycle over years of fake time: three and more full
//! rotations of an RSA and an Ed25519 family, with the safety invariants
//! checked at every step; emergency rotation; observer failures; planning
//! from public state only; families leaving the config.

use std::cell::RefCell;
use std::collections::BTreeMap;

use mailauth::keys::config::{Algorithm, FamilyConfig};
use mailauth::keys::lifecycle::{
    Action, LifecycleError, Observer, apply_due, apply_transition, generate_key, plan,
    published_keys, signing_keys, simulate_due,
};
use mailauth::keys::store::{KeyState, Keystore, StoreError};
use mailauth::keys::time::{Span, Timestamp};

/// (domain, selector, public key)
type RecordKey = (String, String, Vec<u8>);

/// DNS as the tests model it: a record is served everywhere `delay` after
/// the first time `published_keys` listed it (secondaries transferring the
/// zone), and not before.
struct FakeDns {
    delay: Span,
    first_seen: RefCell<BTreeMap<RecordKey, Timestamp>>,
    now: RefCell<Timestamp>,
    broken: RefCell<Option<String>>,
}

impl FakeDns {
    fn new(delay: Span) -> FakeDns {
        FakeDns {
            delay,
            first_seen: RefCell::new(BTreeMap::new()),
            now: RefCell::new(Timestamp(0)),
            broken: RefCell::new(None),
        }
    }
    /// The provider wrote the zone at `now` from the keystore state.
    fn publish(&self, store: &Keystore, domains: &[&str], now: Timestamp) {
        *self.now.borrow_mut() = now;
        for d in domains {
            for k in published_keys(store.state(), d) {
                if !k.revoked {
                    self.first_seen
                        .borrow_mut()
                        .entry((d.to_string(), k.selector.clone(), k.public_key.clone()))
                        .or_insert(now);
                }
            }
        }
    }
    fn served_since(&self, domain: &str, selector: &str, key: &[u8]) -> Option<Timestamp> {
        self.first_seen
            .borrow()
            .get(&(domain.to_string(), selector.to_string(), key.to_vec()))
            .map(|t| t.plus(self.delay))
    }
}

impl Observer for FakeDns {
    fn served_everywhere(&self, domain: &str, selector: &str, key: &[u8]) -> Result<bool, String> {
        if let Some(e) = self.broken.borrow().clone() {
            return Err(e);
        }
        let now = *self.now.borrow();
        Ok(self
            .served_since(domain, selector, key)
            .is_some_and(|t| now >= t))
    }
}

fn families() -> Vec<(String, FamilyConfig)> {
    let mut mail = FamilyConfig::new("mail", Algorithm::Rsa);
    mail.rotate_every = Span::days(180);
    let mut ed = FamilyConfig::new("ed", Algorithm::Ed25519);
    ed.rotate_every = Span::days(90);
    ed.retire_after = Span::days(5);
    vec![("example.com".into(), mail), ("example.com".into(), ed)]
}

#[test]
fn three_full_rotations_never_break_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(&tmp.path().join("keys")).unwrap();
    let fams = families();
    let dns = FakeDns::new(Span::hours(3));
    let step = Span::hours(6);
    let start = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
    let end = Timestamp::parse("2029-01-01T00:00:00Z").unwrap();

    // selector -> last instant it signed (the signer signs continuously with
    // whatever `signing_keys` names between two steps).
    let mut last_signed: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut activations: BTreeMap<String, Vec<(Timestamp, String)>> = BTreeMap::new();
    let mut now = start;
    let mut steps = 0;
    while now < end {
        dns.publish(&store, &["example.com"], now);
        // Signed during (now - step, now] with the keys active before this step.
        for k in signing_keys(store.state()) {
            last_signed.insert(k.selector.clone(), now);
        }
        // What plan predicts (simulate_due) is what apply then does: the
        // same steps, and the same state but for the generated keys' bytes.
        let (predicted, steps_predicted) = simulate_due(&fams, store.state(), now, &dns);
        let taken = apply_due(&mut store, &fams, now, &dns).unwrap();
        assert_eq!(steps_predicted, taken, "at {now}");
        let mut actual = store.state().clone();
        for k in &mut actual.keys {
            if predicted
                .get(&k.domain, &k.selector)
                .is_some_and(|p| p.public_key.is_empty())
            {
                k.public_key.clear();
            }
        }
        assert_eq!(predicted, actual, "at {now}");
        for t in &taken {
            let sel = t.selector.clone().unwrap();
            let rec = store.state().get("example.com", &sel).unwrap().clone();
            if t.action == Action::Activate {
                let fam = fams.iter().find(|(_, f)| f.prefix == rec.prefix).unwrap();
                let published = rec.published.unwrap();
                // Activation only after the record was observed served ...
                let served = dns
                    .served_since("example.com", &sel, &rec.public_key)
                    .unwrap();
                assert!(
                    now >= served,
                    "{sel} activated at {now} before served at {served}"
                );
                // ... and at least its TTL and activate_after after publication.
                let confirmed = rec.served.unwrap();
                assert!(confirmed >= served, "{sel} confirmed before it was served");
                assert!(now.since(confirmed).as_secs() >= u64::from(fam.1.ttl));
                assert!(now.since(published) >= fam.1.activate_after);
                activations
                    .entry(rec.prefix.clone())
                    .or_default()
                    .push((now, sel.clone()));
            }
            // Generation happens here, at apply, never in plan.
            if t.action == Action::Generate {
                assert_eq!(rec.created, now);
                assert!(rec.activated.is_none());
            }
        }
        // The DNS is rewritten after apply.
        dns.publish(&store, &["example.com"], now);
        for k in signing_keys(store.state()) {
            last_signed.insert(k.selector.clone(), now);
        }

        // Invariant: every key that signed within its family's retire_after
        // is published with its p=.
        let published = published_keys(store.state(), "example.com");
        for (sel, at) in &last_signed {
            let rec = store.state().get("example.com", sel).unwrap();
            let fam = fams.iter().find(|(_, f)| f.prefix == rec.prefix).unwrap();
            // "Within the last retire_after": signed less than that long ago.
            if now.since(*at) < fam.1.retire_after {
                let p = published.iter().find(|p| &p.selector == sel);
                assert!(
                    p.is_some_and(|p| !p.revoked && p.public_key == rec.public_key),
                    "{sel} signed at {at} but is not published with p= at {now}"
                );
            }
        }
        // At most one signing key per family, and from the first activation
        // on, always exactly one.
        let signing = signing_keys(store.state());
        for (_, f) in &fams {
            let n = signing.iter().filter(|k| k.prefix == f.prefix).count();
            let started = activations.contains_key(&f.prefix);
            assert_eq!(n, usize::from(started), "family {} at {now}", f.prefix);
        }
        // Each private key file exists exactly while the key may still sign.
        for k in &store.state().keys {
            let exists = store.private_path(&k.domain, &k.selector).exists();
            let should = !matches!(k.state, KeyState::Revoked | KeyState::Removed);
            assert_eq!(exists, should, "{} in state {}", k.selector, k.state);
        }
        now = now.plus(step);
        steps += 1;
    }
    assert!(steps > 3000);

    for (prefix, rotate) in [("mail", Span::days(180)), ("ed", Span::days(90))] {
        let acts = &activations[prefix];
        // initial key + at least three full rotations
        assert!(acts.len() >= 4, "{prefix}: {acts:?}");
        for w in acts.windows(2) {
            let gap = w[1].0.since(w[0].0);
            // A successor takes over on schedule: rotate_every after the
            // previous activation, give or take the step and propagation.
            assert!(
                gap >= rotate && gap <= rotate.add_span(Span::days(1)),
                "{prefix}: {} -> {} after {gap}",
                w[0].1,
                w[1].1
            );
        }
    }
    // Old keys went all the way: revoked, then removed.
    let removed = store
        .state()
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Removed)
        .count();
    assert!(removed >= 5, "{removed} keys removed");
    // Selector names follow <prefix>-YYYY-MM and never repeat.
    let mut names: Vec<&str> = store
        .state()
        .keys
        .iter()
        .map(|k| k.selector.as_str())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("mail-20") || n.starts_with("ed-20"))
    );
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), before);
}

trait SpanExt {
    fn add_span(self, other: Span) -> Span;
}
impl SpanExt for Span {
    fn add_span(self, other: Span) -> Span {
        Span(self.0 + other.0)
    }
}

/// Brings the families to a steady state: one active key each.
fn steady(
    store: &mut Keystore,
    fams: &[(String, FamilyConfig)],
    dns: &FakeDns,
    start: Timestamp,
) -> Timestamp {
    let mut now = start;
    for _ in 0..40 {
        dns.publish(store, &["example.com"], now);
        apply_due(store, fams, now, dns).unwrap();
        dns.publish(store, &["example.com"], now);
        if signing_keys(store.state()).len() == fams.len() {
            return now;
        }
        now = now.plus(Span::hours(6));
    }
    panic!("no steady state");
}

#[test]
fn unverifiable_activation_is_not_taken_and_plan_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(tmp.path()).unwrap();
    let fams = vec![(
        "example.com".to_string(),
        FamilyConfig::new("ed", Algorithm::Ed25519),
    )];
    let dns = FakeDns::new(Span::hours(1));
    let now = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    dns.publish(&store, &["example.com"], now);
    let taken = apply_due(&mut store, &fams, now, &dns).unwrap();
    assert_eq!(
        taken.iter().map(|t| t.action).collect::<Vec<_>>(),
        vec![Action::Generate, Action::Publish]
    );
    dns.publish(&store, &["example.com"], now);
    let later = now.plus(Span::days(3));
    dns.publish(&store, &["example.com"], later);
    *dns.broken.borrow_mut() = Some("127.0.0.2:53 timed out".into());
    let p = plan(&fams, store.state(), later, &dns);
    let act = p.iter().find(|t| t.action == Action::Activate).unwrap();
    let why = act.waiting_for.as_deref().unwrap();
    assert!(why.contains("timed out"), "{why}");
    assert!(
        act.to_string()
            .starts_with("activate ed-2027-01 (example.com): waiting for")
    );
    let err = apply_transition(&mut store, &fams, act, later, &dns).unwrap_err();
    assert!(matches!(err, LifecycleError::NotDue { .. }), "{err}");
    assert!(
        apply_due(&mut store, &fams, later, &dns)
            .unwrap()
            .is_empty()
    );
    assert!(signing_keys(store.state()).is_empty());
    // Served but too early: TTL / activate_after are reported.
    *dns.broken.borrow_mut() = None;
    let early = now.plus(Span::hours(2));
    dns.publish(&store, &["example.com"], early);
    let p = plan(&fams, store.state(), early, &dns);
    let act = p.iter().find(|t| t.action == Action::Activate).unwrap();
    assert!(
        act.waiting_for
            .as_deref()
            .unwrap()
            .contains("activate_after")
    );
    // Served already: confirming it is due, activation is not.
    assert!(p.iter().any(|t| t.action == Action::Confirm && t.is_due()));
    // Once it can be verified, it is confirmed; activation then waits for
    // the TTL to pass after the confirmation.
    dns.publish(&store, &["example.com"], later);
    let taken = apply_due(&mut store, &fams, later, &dns).unwrap();
    assert_eq!(
        taken.iter().map(|t| t.action).collect::<Vec<_>>(),
        vec![Action::Confirm]
    );
    let p = plan(&fams, store.state(), later, &dns);
    let act = p.iter().find(|t| t.action == Action::Activate).unwrap();
    assert!(act.waiting_for.as_deref().unwrap().contains("TTL"), "{act}");
    let ttl_later = later.plus(Span::seconds(3600));
    dns.publish(&store, &["example.com"], ttl_later);
    let taken = apply_due(&mut store, &fams, ttl_later, &dns).unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].action, Action::Activate);
}

#[test]
fn emergency_rotation_keeps_the_old_key_until_the_new_one_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(tmp.path()).unwrap();
    let fams = vec![(
        "example.com".to_string(),
        FamilyConfig::new("mail", Algorithm::Rsa),
    )];
    let dns = FakeDns::new(Span::hours(2));
    let t0 = steady(
        &mut store,
        &fams,
        &dns,
        Timestamp::parse("2027-03-01T00:00:00Z").unwrap(),
    );
    let old = signing_keys(store.state())[0].selector.clone();

    let leak = t0.plus(Span::days(10));
    let new = generate_key(&mut store, "example.com", &fams[0].1, leak, true).unwrap();
    assert_ne!(new, old);
    let mut now = leak;
    let mut switched = None;
    for _ in 0..20 {
        dns.publish(&store, &["example.com"], now);
        apply_due(&mut store, &fams, now, &dns).unwrap();
        dns.publish(&store, &["example.com"], now);
        let signing = signing_keys(store.state());
        assert_eq!(signing.len(), 1, "never without a signing key");
        if signing[0].selector == new {
            switched = Some(now);
            break;
        }
        // The old key is still the one signing and still published.
        assert_eq!(signing[0].selector, old);
        now = now.plus(Span::minutes(30));
    }
    let switched = switched.expect("emergency key never activated");
    let rec = store.state().get("example.com", &new).unwrap();
    // Faster than activate_after (2d), but not before served + TTL.
    assert!(
        switched.since(leak) < Span::days(1),
        "took {}",
        switched.since(leak)
    );
    assert!(
        switched
            >= dns
                .served_since("example.com", &new, &rec.public_key)
                .unwrap()
    );
    assert!(switched.since(rec.served.unwrap()).as_secs() >= 3600);
    // The leaked key stays published until retire_after has passed.
    let old_rec = store.state().get("example.com", &old).unwrap();
    assert_eq!(old_rec.state, KeyState::Retired);
    let p = published_keys(store.state(), "example.com");
    assert!(p.iter().any(|k| k.selector == old && !k.revoked));
}

trait SpanMinutes {
    fn minutes(m: u64) -> Span;
}
impl SpanMinutes for Span {
    fn minutes(m: u64) -> Span {
        Span::seconds(m * 60)
    }
}

#[test]
fn planning_needs_only_public_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let fams = families();
    let dns = FakeDns::new(Span::hours(1));
    {
        let mut store = Keystore::open(&dir).unwrap();
        steady(
            &mut store,
            &fams,
            &dns,
            Timestamp::parse("2027-01-01T00:00:00Z").unwrap(),
        );
    }
    std::fs::remove_dir_all(dir.join("example.com")).unwrap();
    let mut public = Keystore::open_public(&dir).unwrap();
    let later = Timestamp::parse("2027-06-01T00:00:00Z").unwrap();
    let p = plan(&fams, public.state(), later, &dns);
    let generate = p
        .iter()
        .find(|t| t.action == Action::Generate && t.is_due())
        .expect("a rotation is due");
    assert_eq!(published_keys(public.state(), "example.com").len(), 2);
    // A plan holds no secret and cannot generate one.
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("PRIVATE"));
    let err = apply_transition(&mut public, &fams, generate, later, &dns).unwrap_err();
    assert!(
        matches!(err, LifecycleError::Store(StoreError::PublicOnly { .. })),
        "{err}"
    );
}

#[test]
fn a_family_removed_from_the_config_winds_down() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Keystore::open(tmp.path()).unwrap();
    let fams = families();
    let dns = FakeDns::new(Span::hours(1));
    let t0 = steady(
        &mut store,
        &fams,
        &dns,
        Timestamp::parse("2027-01-01T00:00:00Z").unwrap(),
    );
    let only_mail = vec![fams[0].clone()];
    let ed = signing_keys(store.state())
        .into_iter()
        .find(|k| k.prefix == "ed")
        .unwrap()
        .selector
        .clone();
    apply_due(&mut store, &only_mail, t0, &dns).unwrap();
    assert_eq!(
        store.state().get("example.com", &ed).unwrap().state,
        KeyState::Retired
    );
    // Still published for the default retire_after (7d), revoked after.
    apply_due(&mut store, &only_mail, t0.plus(Span::days(6)), &dns).unwrap();
    assert_eq!(
        store.state().get("example.com", &ed).unwrap().state,
        KeyState::Retired
    );
    apply_due(&mut store, &only_mail, t0.plus(Span::days(7)), &dns).unwrap();
    let rec = store.state().get("example.com", &ed).unwrap();
    assert_eq!(rec.state, KeyState::Revoked);
    let p = published_keys(store.state(), "example.com");
    let revoked = p.iter().find(|k| k.selector == ed).unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.txt_value(), "v=DKIM1; k=ed25519; p=");
    apply_due(&mut store, &only_mail, t0.plus(Span::days(14)), &dns).unwrap();
    assert!(
        !published_keys(store.state(), "example.com")
            .iter()
            .any(|k| k.selector == ed)
    );
}
