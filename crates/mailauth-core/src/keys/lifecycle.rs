//! The rotation lifecycle of each key family, as pure functions of the
//! config, the keystore state, the clock and what DNS is observed to serve:
//! which transitions are due now ([`plan`]), which DKIM records must be in
//! DNS now ([`published_keys`]), which keys the signer uses
//! ([`signing_keys`]); and [`apply_transition`], the only place that changes
//! state (and the only place keys are generated, so a plan holds no secret).
//! Owns the rules; leaves DNS queries to the [`Observer`] the caller passes,
//! and writing DNS records to plan/apply.
//!
//! ```text
//! pending ─publish→ published ─confirm served, TTL─activate→ active ─(successor activates)→ retired
//!   ─retire_after→ revoked (p= empty) ─revoke_after→ removed
//! ```
//!
//! Safety rules, each tested with a fake clock:
//! - a key becomes active only when the observer reports its record served
//!   by every authoritative server, at least the record TTL has passed since
//!   that was first confirmed, and (outside an emergency) `activate_after`
//!   has passed since it was published;
//! - the active key is retired only by its successor's activation, so a
//!   family never stops signing, even in an emergency rotation;
//! - a key that signed within the last `retire_after` is still published
//!   with its `p=`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::{Algorithm, DEFAULT_RETIRE_AFTER, DEFAULT_REVOKE_AFTER, FamilyConfig};
use super::generate::{self, GenerateError, key_record_value};
use super::store::{KeyRecord, KeyState, Keystore, State, StoreError};
use crate::clock::{Span, Timestamp};

/// Errors taking a transition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error("{transition}: not taken: waiting for {waiting_for}")]
    NotDue {
        transition: String,
        waiting_for: String,
    },
    #[error("{transition}: no longer applies to the current key state; run plan again")]
    Stale { transition: String },
    #[error("domain {domain}: no dkim selector family `{prefix}` in the config")]
    NoFamily { domain: String, prefix: String },
    #[error("import {selector} for {domain}: {reason}")]
    Import {
        domain: String,
        selector: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// Tells whether a key record is visible to the world: the caller backs it
/// with queries to every authoritative server of the domain.
pub trait Observer {
    /// `Ok(true)` when every authoritative server answers
    /// `<selector>._domainkey.<domain>` TXT with this `public_key` in `p=`;
    /// `Ok(false)` when one does not yet; `Err(why)` when it cannot tell (a
    /// server unreachable). Only `Ok(true)` lets a key become active.
    fn served_everywhere(
        &self,
        domain: &str,
        selector: &str,
        public_key: &[u8],
    ) -> Result<bool, String>;
}

/// What a transition does.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Generate a new key for the family (at apply time only).
    Generate,
    /// pending → published: its record goes into DNS.
    Publish,
    /// Records that a published key was first observed served by every
    /// authoritative server; its TTL wait starts then.
    Confirm,
    /// published → active (the signer switches to it); the family's
    /// previous keys become retired in the same step.
    Activate,
    /// active → retired without a successor: the family left the config.
    Retire,
    /// retired → revoked: the record keeps an empty `p=`, the private key is
    /// destroyed.
    Revoke,
    /// revoked → removed: the record leaves DNS.
    Remove,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Generate => "generate",
            Action::Publish => "publish",
            Action::Confirm => "confirm served",
            Action::Activate => "activate",
            Action::Retire => "retire",
            Action::Revoke => "revoke",
            Action::Remove => "remove",
        })
    }
}

/// One lifecycle step of one family, due now or waiting.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub domain: String,
    pub prefix: String,
    pub action: Action,
    /// The key it applies to; `None` for `Generate` (named when generated).
    pub selector: Option<String>,
    /// For `Activate`: the keys it retires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retires: Vec<String>,
    /// `None` when due now; otherwise what it waits for.
    #[serde(default)]
    pub waiting_for: Option<String>,
}

impl Transition {
    pub fn is_due(&self) -> bool {
        self.waiting_for.is_none()
    }

    /// The same step of the same key (what it waits for aside).
    pub fn same_step(&self, other: &Transition) -> bool {
        self.domain == other.domain
            && self.prefix == other.prefix
            && self.action == other.action
            && self.selector == other.selector
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Some(s) => write!(f, "{} {s} ({})", self.action, self.domain)?,
            None => write!(f, "generate a new `{}` key ({})", self.prefix, self.domain)?,
        }
        if !self.retires.is_empty() {
            write!(f, ", retiring {}", self.retires.join(", "))?;
        }
        if let Some(w) = &self.waiting_for {
            write!(f, ": waiting for {w}")?;
        }
        Ok(())
    }
}

/// A DKIM key record that must be in DNS now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublishedKey {
    pub prefix: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub public_key: Vec<u8>,
    /// Published with an empty `p=` (RFC 6376 §6.1.2).
    pub revoked: bool,
}

impl PublishedKey {
    /// RFC 6376 §3.6.2.1: "All DKIM keys are stored in a subdomain named
    /// `_domainkey`. Given a DKIM-Signature field with a "d=" tag of
    /// "example.com" and an "s=" tag of "foo.bar", the DNS query will be for
    /// "foo.bar._domainkey.example.com"."
    pub fn owner(&self, domain: &str) -> String {
        format!("{}._domainkey.{domain}", self.selector)
    }

    /// The TXT value (`v=DKIM1; k=…; p=…`); split it into ≤ 255-octet
    /// strings with `crate::record::RData::txt`.
    pub fn txt_value(&self) -> String {
        key_record_value(
            self.algorithm,
            (!self.revoked).then_some(self.public_key.as_slice()),
        )
    }
}

/// The DKIM key records of `domain` that must be in DNS now: published,
/// active and retired keys with their `p=`, revoked keys with an empty one.
/// Pending and removed keys are absent.
pub fn published_keys(state: &State, domain: &str) -> Vec<PublishedKey> {
    let mut out: Vec<PublishedKey> = state
        .keys
        .iter()
        .filter(|k| k.domain == domain)
        .filter_map(|k| {
            let revoked = match k.state {
                KeyState::Published | KeyState::Active | KeyState::Retired => false,
                KeyState::Revoked => true,
                KeyState::Pending | KeyState::Removed => return None,
            };
            Some(PublishedKey {
                prefix: k.prefix.clone(),
                selector: k.selector.clone(),
                algorithm: k.algorithm,
                public_key: k.public_key.clone(),
                revoked,
            })
        })
        .collect();
    out.sort_by(|a, b| a.selector.cmp(&b.selector));
    out
}

/// The keys the signer uses now: the most recently activated active key of
/// each (domain, family). Sorted by domain, then selector.
pub fn signing_keys(state: &State) -> Vec<&KeyRecord> {
    let mut best: Vec<&KeyRecord> = Vec::new();
    for k in state.keys.iter().filter(|k| k.state == KeyState::Active) {
        match best
            .iter_mut()
            .find(|b| b.domain == k.domain && b.prefix == k.prefix)
        {
            Some(b) => {
                if (k.activated, &k.selector) > (b.activated, &b.selector) {
                    *b = k;
                }
            }
            None => best.push(k),
        }
    }
    best.sort_by(|a, b| (&a.domain, &a.selector).cmp(&(&b.domain, &b.selector)));
    best
}

fn at(t: Timestamp) -> String {
    t.to_string()
}

/// The transitions of every family, due now or waiting, in a stable order
/// (by domain, family, then lifecycle order). Reads only public state;
/// asks `observer` only about keys whose activation time has come.
pub fn plan(
    families: &[(String, FamilyConfig)],
    state: &State,
    now: Timestamp,
    observer: &dyn Observer,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for (domain, cfg) in families {
        plan_family(domain, cfg, state, now, observer, &mut out);
    }
    // Keys of families no longer in the config wind down with the default
    // timings: retire the active ones now, then revoke and remove.
    for k in &state.keys {
        if families
            .iter()
            .any(|(d, f)| *d == k.domain && f.prefix == k.prefix)
        {
            continue;
        }
        let t = |action, waiting_for| Transition {
            domain: k.domain.clone(),
            prefix: k.prefix.clone(),
            action,
            selector: Some(k.selector.clone()),
            retires: Vec::new(),
            waiting_for,
        };
        match k.state {
            KeyState::Pending | KeyState::Published | KeyState::Active => {
                out.push(t(Action::Retire, None))
            }
            KeyState::Retired => out.push(t(
                Action::Revoke,
                wait_until(k.retired, DEFAULT_RETIRE_AFTER, now, "retire_after"),
            )),
            KeyState::Revoked => out.push(t(
                Action::Remove,
                wait_until(k.revoked, DEFAULT_REVOKE_AFTER, now, "revoke_after"),
            )),
            KeyState::Removed => {}
        }
    }
    out
}

fn wait_until(since: Option<Timestamp>, span: Span, now: Timestamp, what: &str) -> Option<String> {
    let Some(since) = since else {
        return Some(format!(
            "a recorded start time for {what} (state file lacks it)"
        ));
    };
    let due = since.plus(span);
    (now < due).then(|| format!("{} ({what} {span} after {})", at(due), at(since)))
}

fn plan_family(
    domain: &str,
    cfg: &FamilyConfig,
    state: &State,
    now: Timestamp,
    observer: &dyn Observer,
    out: &mut Vec<Transition>,
) {
    let t = |action, selector: Option<&str>, waiting_for: Option<String>| Transition {
        domain: domain.to_string(),
        prefix: cfg.prefix.clone(),
        action,
        selector: selector.map(str::to_string),
        retires: Vec::new(),
        waiting_for,
    };
    let keys: Vec<&KeyRecord> = state.family(domain, &cfg.prefix).collect();
    let active = keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .max_by_key(|k| (k.activated, k.selector.clone()));
    let newest_successor = keys
        .iter()
        .filter(|k| matches!(k.state, KeyState::Pending | KeyState::Published))
        .max_by_key(|k| (k.created, k.selector.clone()));

    // Generate: when nothing signs, or the active key's time is nearly up
    // (its successor must be published `activate_after` ahead).
    if newest_successor.is_none() {
        let waiting = match active {
            None => None,
            Some(a) => {
                let since = a.activated.unwrap_or(a.created);
                let due = since
                    .plus(cfg.rotate_every)
                    .0
                    .saturating_sub(i64::try_from(cfg.activate_after.as_secs()).unwrap_or(0));
                (now.0 < due).then(|| {
                    format!(
                        "{} (rotate_every {} after {} activated, less activate_after {})",
                        at(Timestamp(due)),
                        cfg.rotate_every,
                        a.selector,
                        cfg.activate_after
                    )
                })
            }
        };
        out.push(t(Action::Generate, None, waiting));
    }

    for k in keys.iter().filter(|k| k.state == KeyState::Pending) {
        out.push(t(Action::Publish, Some(&k.selector), None));
    }

    // Activate the newest published key once it is verifiably served.
    if let Some(k) = keys
        .iter()
        .filter(|k| k.state == KeyState::Published)
        .max_by_key(|k| (k.created, k.selector.clone()))
    {
        let (waiting, confirm) = activation_wait(domain, cfg, k, now, observer);
        if confirm {
            out.push(t(Action::Confirm, Some(&k.selector), None));
        }
        let mut tr = t(Action::Activate, Some(&k.selector), waiting);
        tr.retires = keys
            .iter()
            .filter(|o| {
                o.selector != k.selector
                    && matches!(o.state, KeyState::Active | KeyState::Published)
            })
            .map(|o| o.selector.clone())
            .collect();
        tr.retires.sort();
        out.push(tr);
    }

    for k in keys.iter().filter(|k| k.state == KeyState::Retired) {
        out.push(t(
            Action::Revoke,
            Some(&k.selector),
            wait_until(k.retired, cfg.retire_after, now, "retire_after"),
        ));
    }
    for k in keys.iter().filter(|k| k.state == KeyState::Revoked) {
        out.push(t(
            Action::Remove,
            Some(&k.selector),
            wait_until(k.revoked, cfg.revoke_after, now, "revoke_after"),
        ));
    }
}

/// Whether `k` may become active now, and if not, why. Returns also
/// whether the observer saw it served now while no confirmation is
/// recorded (then a `Confirm` is due).
fn activation_wait(
    domain: &str,
    cfg: &FamilyConfig,
    k: &KeyRecord,
    now: Timestamp,
    observer: &dyn Observer,
) -> (Option<String>, bool) {
    let Some(published) = k.published else {
        return (
            Some("a recorded publication time (state file lacks it)".into()),
            false,
        );
    };
    let name = format!("{}._domainkey.{domain}", k.selector);
    // Ask DNS until it confirms, and again right before activating.
    let served = match observer.served_everywhere(domain, &k.selector, &k.public_key) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{name} to be served with this key by every authoritative server"
        )),
        Err(e) => Err(format!(
            "a check that {name} is served everywhere (it failed: {e})"
        )),
    };
    let confirm_due = served.is_ok() && k.served.is_none();
    if !k.emergency
        && let Some(w) = wait_until(Some(published), cfg.activate_after, now, "activate_after")
    {
        return (Some(w), confirm_due);
    }
    if let Err(w) = served {
        return (Some(w), false);
    }
    // Served everywhere, and then at least the TTL more: any verifier that
    // looked the name up before it was served has forgotten that answer.
    let ttl = Span::seconds(u64::from(cfg.ttl));
    match k.served {
        None => (
            Some(format!(
                "{name} to be confirmed served, then the record TTL ({ttl})"
            )),
            true,
        ),
        Some(at) => (
            wait_until(
                Some(at),
                ttl,
                now,
                "the record TTL after it was confirmed served",
            ),
            false,
        ),
    }
}

fn family_of<'a>(
    families: &'a [(String, FamilyConfig)],
    domain: &str,
    prefix: &str,
) -> Option<&'a FamilyConfig> {
    families
        .iter()
        .find(|(d, f)| d == domain && f.prefix == prefix)
        .map(|(_, f)| f)
}

/// Takes one transition, after checking again that it is due now (the plan
/// may be old, or DNS may have changed since). Returns the selector it
/// acted on (for `Generate`, the new key's).
pub fn apply_transition(
    store: &mut Keystore,
    families: &[(String, FamilyConfig)],
    transition: &Transition,
    now: Timestamp,
    observer: &dyn Observer,
) -> Result<String, LifecycleError> {
    let current = plan(families, store.state(), now, observer);
    // A planned `Generate` names the key it will make (see
    // [`simulate_due`]); the schedule's does not yet.
    let matches = |c: &Transition| {
        c.same_step(transition)
            || (c.action == Action::Generate
                && transition.action == Action::Generate
                && c.domain == transition.domain
                && c.prefix == transition.prefix)
    };
    let Some(fresh) = current.into_iter().find(matches) else {
        return Err(LifecycleError::Stale {
            transition: transition.to_string(),
        });
    };
    if let Some(w) = fresh.waiting_for {
        return Err(LifecycleError::NotDue {
            transition: transition.to_string(),
            waiting_for: w,
        });
    }
    let domain = fresh.domain.as_str();
    match (fresh.action, fresh.selector.as_deref()) {
        (Action::Generate, _) => {
            let cfg = family_of(families, domain, &fresh.prefix).ok_or_else(|| {
                LifecycleError::NoFamily {
                    domain: domain.to_string(),
                    prefix: fresh.prefix.clone(),
                }
            })?;
            generate_key(store, domain, cfg, now, false)
        }
        (Action::Revoke, Some(sel)) => {
            // RFC 6376 §3.6.1: "An empty value means that this public key has
            // been revoked." Nobody may sign with it again: destroy it.
            store.delete_private(domain, sel)?;
            store.update(domain, sel, mark(Action::Revoke, now))?;
            Ok(sel.to_string())
        }
        (action, Some(sel)) => {
            // Activate first, then retire: should the second write fail, two
            // keys are active and the signer uses the newer, but the family
            // is never left without one.
            store.update(domain, sel, mark(action, now))?;
            if action == Action::Activate {
                for old in &fresh.retires {
                    store.update(domain, old, mark(Action::Retire, now))?;
                }
            }
            Ok(sel.to_string())
        }
        (_, None) => Err(LifecycleError::Stale {
            transition: transition.to_string(),
        }),
    }
}

/// The change a step makes to its key's record: the one definition of
/// each state change, shared by [`apply_transition`] (which persists it)
/// and [`simulate_due`] (which only predicts it). `Generate` adds a key
/// rather than changing one.
fn mark(action: Action, now: Timestamp) -> impl Fn(&mut KeyRecord) {
    move |k: &mut KeyRecord| match action {
        Action::Generate => {}
        Action::Publish => {
            k.state = KeyState::Published;
            k.published = Some(now);
        }
        Action::Confirm => k.served = Some(now),
        Action::Activate => {
            k.state = KeyState::Active;
            k.activated = Some(now);
        }
        Action::Retire => {
            k.state = KeyState::Retired;
            k.retired = Some(now);
        }
        Action::Revoke => {
            k.state = KeyState::Revoked;
            k.revoked = Some(now);
        }
        Action::Remove => {
            k.state = KeyState::Removed;
            k.removed = Some(now);
        }
    }
}

/// What [`apply_due`] would do now, without doing it: the due steps in the
/// order apply takes them (a `Generate` already named with the selector
/// apply will give the key), and the key state they leave. No key is
/// generated: a key that apply would generate is in the returned state with
/// an empty public key, and [`published_keys`] marks its record
/// `unknown` ("known after apply" in a plan). Plan uses this so that every
/// DNS record a key step adds or removes is a change line of the plan.
pub fn simulate_due(
    families: &[(String, FamilyConfig)],
    state: &State,
    now: Timestamp,
    observer: &dyn Observer,
) -> (State, Vec<Transition>) {
    let mut state = state.clone();
    let mut taken = Vec::new();
    for _ in 0..(8 * (families.len() + state.keys.len()) + 8) {
        let Some(mut next) = plan(families, &state, now, observer)
            .into_iter()
            .find(Transition::is_due)
        else {
            break;
        };
        let domain = next.domain.clone();
        match (next.action, next.selector.clone()) {
            (Action::Generate, _) => {
                let Some(cfg) = family_of(families, &domain, &next.prefix) else {
                    break;
                };
                let selector = state.next_selector(&domain, &cfg.prefix, now);
                let mut key = pending_key(&domain, cfg, &selector, now, false);
                key.bits = cfg.rsa_bits();
                state.keys.push(key);
                next.selector = Some(selector);
            }
            (action, Some(sel)) => {
                let f = mark(action, now);
                let mut changed = false;
                for k in state
                    .keys
                    .iter_mut()
                    .filter(|k| k.domain == domain && k.selector == sel)
                {
                    f(k);
                    changed = true;
                }
                if !changed {
                    break;
                }
                if action == Action::Activate {
                    let retire = mark(Action::Retire, now);
                    for k in state
                        .keys
                        .iter_mut()
                        .filter(|k| k.domain == domain && next.retires.contains(&k.selector))
                    {
                        retire(k);
                    }
                }
            }
            (_, None) => break,
        }
        taken.push(next);
    }
    (state, taken)
}

/// Takes every due transition, re-planning after each, until none is due.
/// Returns what was taken, in order. Bounded: a family moves at most a few
/// steps per call.
pub fn apply_due(
    store: &mut Keystore,
    families: &[(String, FamilyConfig)],
    now: Timestamp,
    observer: &dyn Observer,
) -> Result<Vec<Transition>, LifecycleError> {
    let mut taken = Vec::new();
    for _ in 0..(8 * (families.len() + store.state().keys.len()) + 8) {
        let Some(next) = plan(families, store.state(), now, observer)
            .into_iter()
            .find(Transition::is_due)
        else {
            break;
        };
        let sel = apply_transition(store, families, &next, now, observer)?;
        let mut done = next;
        done.selector = Some(sel);
        taken.push(done);
    }
    Ok(taken)
}

/// Generates a key for a family, outside the schedule (`keys generate`,
/// `keys rotate`) or from a `Generate` transition. The key starts pending;
/// the next apply publishes it. An `emergency` key activates as soon as it
/// is served and its TTL has passed; the key it replaces keeps signing until
/// then, and stays published for `retire_after` afterwards.
pub fn generate_key(
    store: &mut Keystore,
    domain: &str,
    cfg: &FamilyConfig,
    now: Timestamp,
    emergency: bool,
) -> Result<String, LifecycleError> {
    let pair = generate::generate(cfg.algorithm, cfg.rsa_bits())?;
    let selector = store.state().next_selector(domain, &cfg.prefix, now);
    let mut key = pending_key(domain, cfg, &selector, now, emergency);
    key.algorithm = pair.algorithm;
    key.bits = pair.bits;
    key.public_key = pair.public_key.clone();
    store.add_key(key, &pair.private_pem)?;
    Ok(selector)
}

/// A key just made for family `cfg`: pending, no public key yet (the
/// caller sets it, or leaves it empty for a key only planned).
fn pending_key(
    domain: &str,
    cfg: &FamilyConfig,
    selector: &str,
    now: Timestamp,
    emergency: bool,
) -> KeyRecord {
    KeyRecord {
        domain: domain.to_string(),
        prefix: cfg.prefix.clone(),
        selector: selector.to_string(),
        algorithm: cfg.algorithm,
        bits: None,
        public_key: Vec::new(),
        state: KeyState::Pending,
        created: now,
        published: None,
        served: None,
        activated: None,
        retired: None,
        revoked: None,
        removed: None,
        imported: false,
        emergency,
    }
}

/// What `keys import` adopts. Its `Debug` leaves the PEM out.
#[derive(Clone, Copy)]
pub struct Import<'a> {
    pub domain: &'a str,
    /// The selector the key is already published under.
    pub selector: &'a str,
    /// The private key (PKCS#8, or PKCS#1 RSA).
    pub pem: &'a str,
    /// Where the PEM came from, for error messages.
    pub origin: &'a str,
}

impl fmt::Debug for Import<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Import")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Adopts a key already published and in use under `selector` (`keys
/// import`): it enters as active, so the next rotation replaces it on the
/// family's schedule without a flag day. When an observer is given, the
/// selector must be served with this key everywhere.
pub fn import_key(
    store: &mut Keystore,
    cfg: &FamilyConfig,
    import: Import<'_>,
    now: Timestamp,
    observer: Option<&dyn Observer>,
) -> Result<(), LifecycleError> {
    let Import {
        domain,
        selector,
        pem,
        origin,
    } = import;
    let err = |reason: String| LifecycleError::Import {
        domain: domain.to_string(),
        selector: selector.to_string(),
        reason,
    };
    let pair = generate::from_private_pem(pem, origin)?;
    if pair.algorithm != cfg.algorithm {
        return Err(err(format!(
            "the key is {}, family `{}` is {}",
            pair.algorithm, cfg.prefix, cfg.algorithm
        )));
    }
    if let Some(obs) = observer {
        match obs.served_everywhere(domain, selector, &pair.public_key) {
            Ok(true) => {}
            Ok(false) => {
                return Err(err(
                    "the selector is not served with this key by every authoritative server".into(),
                ));
            }
            Err(e) => return Err(err(format!("cannot check that it is served: {e}"))),
        }
    }
    // Anything else the family has active hands over to the imported key.
    let others: Vec<String> = store
        .state()
        .family(domain, &cfg.prefix)
        .filter(|k| k.state == KeyState::Active)
        .map(|k| k.selector.clone())
        .collect();
    store.add_key(
        KeyRecord {
            domain: domain.to_string(),
            prefix: cfg.prefix.clone(),
            selector: selector.to_string(),
            algorithm: pair.algorithm,
            bits: pair.bits,
            public_key: pair.public_key.clone(),
            state: KeyState::Active,
            created: now,
            published: Some(now),
            served: Some(now),
            activated: Some(now),
            retired: None,
            revoked: None,
            removed: None,
            imported: true,
            emergency: false,
        },
        &pair.private_pem,
    )?;
    for o in others {
        store.update(domain, &o, |k| {
            k.state = KeyState::Retired;
            k.retired = Some(now);
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(selector: &str, state: KeyState, activated: Option<&str>) -> KeyRecord {
        KeyRecord {
            domain: "example.com".into(),
            prefix: "mail".into(),
            selector: selector.into(),
            algorithm: Algorithm::Rsa,
            bits: Some(2048),
            public_key: vec![1, 2, 3],
            state,
            created: Timestamp(0),
            published: Some(Timestamp(0)),
            served: None,
            activated: activated.map(|a| Timestamp::parse(a).unwrap()),
            retired: None,
            revoked: None,
            removed: None,
            imported: false,
            emergency: false,
        }
    }

    #[test]
    fn published_and_signing_sets() {
        let state = State {
            version: State::VERSION,
            keys: vec![
                key("mail-2026-05", KeyState::Removed, Some("2026-05-03")),
                key("mail-2026-11", KeyState::Revoked, Some("2026-11-03")),
                key("mail-2027-05", KeyState::Active, Some("2027-05-03")),
                key("mail-2027-05b", KeyState::Active, Some("2027-05-04")),
                key("mail-2027-06", KeyState::Pending, None),
                key("mail-2027-07", KeyState::Published, None),
            ],
        };
        let p = published_keys(&state, "example.com");
        let names: Vec<&str> = p.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(
            names,
            [
                "mail-2026-11",
                "mail-2027-05",
                "mail-2027-05b",
                "mail-2027-07"
            ]
        );
        assert_eq!(p[0].txt_value(), "v=DKIM1; k=rsa; p=");
        assert_eq!(p[1].txt_value(), "v=DKIM1; k=rsa; p=AQID");
        assert_eq!(
            p[1].owner("example.com"),
            "mail-2027-05._domainkey.example.com"
        );
        assert!(published_keys(&state, "example.org").is_empty());
        // The most recently activated key signs.
        let s = signing_keys(&state);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].selector, "mail-2027-05b");
    }

    #[test]
    fn transitions_read_like_a_plan() {
        let t = Transition {
            domain: "example.com".into(),
            prefix: "mail".into(),
            action: Action::Activate,
            selector: Some("mail-2027-05".into()),
            retires: vec!["mail-2026-11".into()],
            waiting_for: None,
        };
        assert_eq!(
            t.to_string(),
            "activate mail-2027-05 (example.com), retiring mail-2026-11"
        );
        let g = Transition {
            action: Action::Generate,
            selector: None,
            retires: vec![],
            waiting_for: Some("2027-10-30T00:00:00Z".into()),
            ..t
        };
        assert_eq!(
            g.to_string(),
            "generate a new `mail` key (example.com): waiting for 2027-10-30T00:00:00Z"
        );
        assert!(!g.is_due());
    }
}
