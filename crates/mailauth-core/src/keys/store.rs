//! The keystore: a directory (0700) holding `state.json`, which records
//! every key's public data and lifecycle, and one PKCS#8 PEM file (0600)
//! per private key. Owns file layout, permissions and atomic writes; leaves
//! deciding what to do with keys to `lifecycle`.
//!
//! Planning needs only `state.json` ([`Keystore::open_public`]), so a CI job
//! can plan with the public state and no private keys.
//!
//! ```text
//! <dir>/state.json
//! <dir>/<domain>/<selector>.pem
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Algorithm;
use super::generate::SecretPem;
use crate::clock::Timestamp;

/// Errors reading or writing the keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("keystore {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keystore state {path}: {detail}")]
    State { path: String, detail: String },
    #[error(
        "keystore {dir} was opened without private keys (public state only); {action} needs them"
    )]
    PublicOnly { dir: String, action: String },
    #[error("keystore: no key {selector} for {domain}")]
    NoSuchKey { domain: String, selector: String },
    #[error("keystore: selector {selector} already exists for {domain}")]
    Exists { domain: String, selector: String },
    #[error("keystore {dir} is in use by another mailauth process; try again when it is done")]
    Busy { dir: String },
    #[error("keystore: `{value}` is not usable as a {what} in a file name")]
    BadName { what: &'static str, value: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a key is in its life. RFC 6376 §3.6.1 (`p=` empty = revoked) and
/// M3AAWG's rotation guidance shape it:
/// pending → published → active → retired → revoked → removed.
#[derive(
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Generated, not yet in DNS.
    Pending,
    /// In DNS, not yet used by the signer.
    Published,
    /// The signer uses it.
    Active,
    /// No longer signing; still published so delayed mail verifies.
    Retired,
    /// Published with an empty `p=`; private key destroyed.
    Revoked,
    /// Gone from DNS.
    Removed,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
            KeyState::Removed => "removed",
        })
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// One key's public record in `state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub domain: String,
    /// The family (config `prefix`) this key belongs to.
    pub prefix: String,
    pub selector: String,
    pub algorithm: Algorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// The `p=` data (base64 in the file).
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    pub state: KeyState,
    pub created: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Timestamp>,
    /// When every authoritative server was first seen serving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Timestamp>,
    /// Brought in by `keys import` rather than generated here.
    #[serde(default)]
    pub imported: bool,
    /// Made by an emergency rotation: activates as soon as it is served and
    /// its TTL has passed, without waiting `activate_after`.
    #[serde(default)]
    pub emergency: bool,
}

/// The whole `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub keys: Vec<KeyRecord>,
}

impl State {
    pub const VERSION: u32 = 1;

    pub fn get(&self, domain: &str, selector: &str) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.domain == domain && k.selector == selector)
    }

    pub fn get_mut(&mut self, domain: &str, selector: &str) -> Option<&mut KeyRecord> {
        self.keys
            .iter_mut()
            .find(|k| k.domain == domain && k.selector == selector)
    }

    /// Keys of one family, oldest first.
    pub fn family<'a>(
        &'a self,
        domain: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a KeyRecord> {
        self.keys
            .iter()
            .filter(move |k| k.domain == domain && k.prefix == prefix)
    }

    /// `<prefix>-YYYY-MM` for `now`, with `b`, `c`, … appended when taken.
    /// Selectors are never reused, even after removal: a verifier may still
    /// hold the old record in its cache.
    pub fn next_selector(&self, domain: &str, prefix: &str, now: Timestamp) -> String {
        let (y, m) = now.year_month();
        let base = format!("{prefix}-{y:04}-{m:02}");
        let taken: BTreeSet<&str> = self
            .keys
            .iter()
            .filter(|k| k.domain == domain)
            .map(|k| k.selector.as_str())
            .collect();
        if !taken.contains(base.as_str()) {
            return base;
        }
        for c in b'b'..=b'z' {
            let s = format!("{base}{}", c as char);
            if !taken.contains(s.as_str()) {
                return s;
            }
        }
        // 26 keys in one month: fall back to a numeric suffix.
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|s| !taken.contains(s.as_str()))
            .unwrap_or(base)
    }
}

/// A keystore directory.
#[derive(Debug)]
pub struct Keystore {
    dir: PathBuf,
    state: State,
    private: bool,
    /// Held (an exclusive advisory lock on `<dir>/.lock`) while a writable
    /// keystore is open, so two runs cannot generate or rotate at once.
    _lock: Option<fs::File>,
}

const STATE_FILE: &str = "state.json";

fn check_name(what: &'static str, value: &str) -> Result<(), StoreError> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            what,
            value: value.to_string(),
        })
    }
}

pub use crate::fsutil::write_atomic;

/// Creates `dir` (and parents) and sets it to 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// How long [`Keystore::open`] waits for another writer's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Keystore {
    /// Opens (creating it 0700 if needed) a keystore with its private keys.
    /// Fails with [`StoreError::Busy`] while another writable keystore on
    /// the same directory is open (after waiting up to two seconds for it).
    pub fn open(dir: &Path) -> Result<Keystore, StoreError> {
        create_private_dir(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(".lock");
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // A lock is held for a moment by nothing more than a process that
        // forked while another keystore was open (the child holds the lock
        // file's descriptor until it execs): wait a little before saying
        // busy, as SQLite's busy timeout does.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Busy {
                        dir: dir.display().to_string(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
            }
        }
        let state = read_state(dir)?;
        Ok(Keystore {
            dir: dir.to_path_buf(),
            state,
            private: true,
            _lock: Some(lock),
        })
    }

    /// Opens only the public state: works when the private key files (or
    /// the directory itself) are absent, as in a CI job that plans.
    /// Every operation that needs a private key fails with
    /// [`StoreError::PublicOnly`], and nothing is ever written.
    pub fn open_public(dir: &Path) -> Result<Keystore, StoreError> {
        Ok(Keystore {
            dir: dir.to_path_buf(),
            state: read_state(dir)?,
            private: false,
            _lock: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn has_private(&self) -> bool {
        self.private
    }

    fn need_private(&self, action: &str) -> Result<(), StoreError> {
        if self.private {
            Ok(())
        } else {
            Err(StoreError::PublicOnly {
                dir: self.dir.display().to_string(),
                action: action.to_string(),
            })
        }
    }

    pub fn private_path(&self, domain: &str, selector: &str) -> PathBuf {
        self.dir.join(domain).join(format!("{selector}.pem"))
    }

    /// Records a new key: the private key file is written (0600) first, then
    /// the state, so the state never names a key whose file is missing.
    pub fn add_key(&mut self, record: KeyRecord, pem: &SecretPem) -> Result<(), StoreError> {
        self.need_private("adding a key")?;
        check_name("domain", &record.domain)?;
        check_name("selector", &record.selector)?;
        if self.state.get(&record.domain, &record.selector).is_some() {
            return Err(StoreError::Exists {
                domain: record.domain,
                selector: record.selector,
            });
        }
        let ddir = self.dir.join(&record.domain);
        create_private_dir(&ddir).map_err(io_err(&ddir))?;
        let path = self.private_path(&record.domain, &record.selector);
        write_atomic(&path, pem.expose().as_bytes(), 0o600).map_err(io_err(&path))?;
        self.state.keys.push(record);
        self.save()
    }

    /// Changes one key's record and saves the state.
    pub fn update(
        &mut self,
        domain: &str,
        selector: &str,
        f: impl FnOnce(&mut KeyRecord),
    ) -> Result<(), StoreError> {
        self.need_private("changing key state")?;
        let rec = self
            .state
            .get_mut(domain, selector)
            .ok_or_else(|| StoreError::NoSuchKey {
                domain: domain.to_string(),
                selector: selector.to_string(),
            })?;
        f(rec);
        self.save()
    }

    /// The private key of a selector.
    pub fn private_pem(&self, domain: &str, selector: &str) -> Result<SecretPem, StoreError> {
        self.need_private("reading a private key")?;
        let path = self.private_path(domain, selector);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        Ok(SecretPem::new(text))
    }

    /// Destroys a private key file (after revocation nobody may sign with it).
    pub fn delete_private(&self, domain: &str, selector: &str) -> Result<(), StoreError> {
        self.need_private("deleting a private key")?;
        let path = self.private_path(domain, selector);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes `state.json` atomically (0600).
    pub fn save(&self) -> Result<(), StoreError> {
        self.need_private("saving the state")?;
        let path = self.dir.join(STATE_FILE);
        let mut json = serde_json::to_vec_pretty(&self.state).map_err(|e| StoreError::State {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        json.push(b'\n');
        write_atomic(&path, &json, 0o600).map_err(io_err(&path))
    }
}

fn read_state(dir: &Path) -> Result<State, StoreError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(State {
                version: State::VERSION,
                keys: Vec::new(),
            });
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let state: State = serde_json::from_str(&text).map_err(|e| StoreError::State {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    if state.version != State::VERSION {
        return Err(StoreError::State {
            path: path.display().to_string(),
            detail: format!(
                "version {} is not {}, the version this build reads",
                state.version,
                State::VERSION
            ),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn a_second_writer_waits_then_is_refused_and_gets_in_once_the_first_is_gone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = Keystore::open(tmp.path()).expect("first writer");
        let started = std::time::Instant::now();
        match Keystore::open(tmp.path()) {
            Err(StoreError::Busy { .. }) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(started.elapsed() >= LOCK_WAIT, "it waited for the lock");
        // A reader is never refused.
        Keystore::open_public(tmp.path()).expect("reader");
        drop(first);
        Keystore::open(tmp.path()).expect("the lock is free again");
    }

    fn record(selector: &str, public_key: Vec<u8>) -> KeyRecord {
        KeyRecord {
            domain: "example.com".into(),
            prefix: "ed".into(),
            selector: selector.into(),
            algorithm: Algorithm::Ed25519,
            bits: None,
            public_key,
            state: KeyState::Pending,
            created: Timestamp::parse("2026-11-03").unwrap(),
            published: None,
            served: None,
            activated: None,
            retired: None,
            revoked: None,
            removed: None,
            imported: false,
            emergency: false,
        }
    }

    #[test]
    fn modes_state_and_public_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let mut ks = Keystore::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let pair = generate::generate(Algorithm::Ed25519, None).unwrap();
        ks.add_key(
            record("ed-2026-11", pair.public_key.clone()),
            &pair.private_pem,
        )
        .unwrap();
        let pem_path = ks.private_path("example.com", "ed-2026-11");
        assert_eq!(
            fs::metadata(&pem_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(dir.join("example.com"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(dir.join(STATE_FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let state_text = fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(!state_text.contains("PRIVATE"));

        // Without the private key files, the public state still opens.
        fs::remove_dir_all(dir.join("example.com")).unwrap();
        let public = Keystore::open_public(&dir).unwrap();
        assert_eq!(public.state().keys.len(), 1);
        assert_eq!(public.state().keys[0].public_key, pair.public_key);
        assert!(matches!(
            public.private_pem("example.com", "ed-2026-11"),
            Err(StoreError::PublicOnly { .. })
        ));
        assert!(public.save().is_err());
        // Reopened with private keys, the state reads back identically.
        drop(ks);
        let again = Keystore::open(&dir).unwrap();
        assert_eq!(again.state(), public.state());
    }

    #[test]
    fn selector_names_never_repeat() {
        let mut st = State::default();
        let now = Timestamp::parse("2026-11-20").unwrap();
        assert_eq!(st.next_selector("example.com", "mail", now), "mail-2026-11");
        let mut r = record("mail-2026-11", vec![1]);
        r.state = KeyState::Removed;
        st.keys.push(r);
        assert_eq!(
            st.next_selector("example.com", "mail", now),
            "mail-2026-11b"
        );
        st.keys.push(record("mail-2026-11b", vec![2]));
        assert_eq!(
            st.next_selector("example.com", "mail", now),
            "mail-2026-11c"
        );
        assert_eq!(st.next_selector("example.org", "mail", now), "mail-2026-11");
    }

    #[test]
    fn bad_names_and_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ks = Keystore::open(tmp.path()).unwrap();
        let pair = generate::generate(Algorithm::Ed25519, None).unwrap();
        let mut r = record("../evil", vec![1]);
        assert!(matches!(
            ks.add_key(r.clone(), &pair.private_pem),
            Err(StoreError::BadName { .. })
        ));
        r.selector = "ok".into();
        ks.add_key(r.clone(), &pair.private_pem).unwrap();
        assert!(matches!(
            ks.add_key(r, &pair.private_pem),
            Err(StoreError::Exists { .. })
        ));
    }
}
