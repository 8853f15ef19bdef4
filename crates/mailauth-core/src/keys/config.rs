//! The `keys:` block and the per-family `dkim.selectors[]` entries of the
//! YAML config, as serde types with their defaults and semantic checks.
//! Owns what a rotated DKIM key family and the keystore look like; leaves
//! reading the YAML file, and which domains exist, to the config loader.
//!
//! ```yaml
//! keys:
//!   dir: keys
//!   export: { format: opendkim, dir: /etc/opendkim/mailauth, hook: [systemctl, reload, opendkim] }
//! domains:
//!   example.com:
//!     dkim:
//!       selectors:
//!         - { prefix: mail, algorithm: rsa, bits: 2048, rotate_every: 180d }
//!         - { prefix: ed, algorithm: ed25519 }
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::clock::Span;

/// Errors in the `keys:` block or a key family.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("dkim selector family `{prefix}`: {field}: {reason}")]
    Family {
        prefix: String,
        field: &'static str,
        reason: String,
    },
    #[error("keys: {field}: {reason}")]
    Keys { field: &'static str, reason: String },
}

/// The DKIM signing algorithm of a key family.
///
/// RFC 6376 §3.3: "Signers MUST implement and SHOULD sign using
/// rsa-sha256"; RFC 8463 §3 adds ed25519-sha256, and §5 suggests signing
/// with both ("dual signing") while verifiers catch up.
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
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag value of the key record (RFC 6376 §3.6.1, RFC 8463 §4).
    pub fn k_tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
    /// The `a=` tag value of a signature made with this key.
    pub fn signature_algorithm(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k_tag())
    }
}

/// RSA modulus sizes mailauth generates.
pub const RSA_BITS: [u32; 4] = [1024, 2048, 3072, 4096];
/// RFC 8301 §3.2: "Signers MUST use RSA keys of at least 1024 bits for all
/// keys. Signers SHOULD use RSA keys of at least 2048 bits."
pub const DEFAULT_RSA_BITS: u32 = 2048;

/// M3AAWG's DKIM Key Rotation BCP asks for rotation at least every six
/// months, so that a key that leaked unnoticed stops being useful.
pub const DEFAULT_ROTATE_EVERY: Span = Span::days(180);
/// A new key is published this long before the signer may use it: long
/// enough for every secondary to transfer the zone and for a verifier that
/// looked the selector up early (or cached its absence) to see it. Never
/// less than the record TTL; the observer must also see it served.
pub const DEFAULT_ACTIVATE_AFTER: Span = Span::days(2);
/// A key stays published with its `p=` this long after it last signed.
/// RFC 5321 §4.5.4.1: "the give-up time generally needs to be at least 4-5
/// days", so mail signed just before the switch may still be in a queue,
/// and is verified on arrival, this late. A week covers that plus slow
/// forwarders and mailing lists.
pub const DEFAULT_RETIRE_AFTER: Span = Span::days(7);
/// The floor for `retire_after` (RFC 5321 §4.5.4.1's four days).
pub const MIN_RETIRE_AFTER: Span = Span::days(4);
/// How long a revoked record (`p=` empty) stays before it is removed, so
/// that verifiers see "revoked" rather than "no key" for late messages
/// (RFC 6376 §6.1.2) and old caches of the full record expire first.
pub const DEFAULT_REVOKE_AFTER: Span = Span::days(7);
/// TTL of the key records.
pub const DEFAULT_TTL: u32 = 3600;

fn default_rotate_every() -> Span {
    DEFAULT_ROTATE_EVERY
}
fn default_activate_after() -> Span {
    DEFAULT_ACTIVATE_AFTER
}
fn default_retire_after() -> Span {
    DEFAULT_RETIRE_AFTER
}
fn default_revoke_after() -> Span {
    DEFAULT_REVOKE_AFTER
}
fn default_ttl() -> u32 {
    DEFAULT_TTL
}

/// One rotated key family: selectors `<prefix>-YYYY-MM`, one active key at
/// a time, rotated on a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyConfig {
    /// Selector prefix; selectors are `<prefix>-YYYY-MM` (`mail-2026-11`).
    pub prefix: String,
    /// `rsa` (default) or `ed25519`.
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// RSA modulus size: 1024 (warned about), 2048 (default), 3072, 4096.
    /// Not allowed for ed25519.
    #[serde(default)]
    pub bits: Option<u32>,
    /// How long a key signs before its successor takes over.
    #[serde(default = "default_rotate_every")]
    pub rotate_every: Span,
    /// Minimum time between publishing a key and signing with it.
    #[serde(default = "default_activate_after", alias = "publish_ahead")]
    pub activate_after: Span,
    /// How long a key stays published after it stopped signing.
    #[serde(default = "default_retire_after")]
    pub retire_after: Span,
    /// How long the revoked (empty `p=`) record stays before removal.
    #[serde(default = "default_revoke_after")]
    pub revoke_after: Span,
    /// TTL of this family's key records.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Rsa
}

impl FamilyConfig {
    /// A family with every default.
    pub fn new(prefix: &str, algorithm: Algorithm) -> FamilyConfig {
        FamilyConfig {
            prefix: prefix.to_string(),
            algorithm,
            bits: None,
            rotate_every: DEFAULT_ROTATE_EVERY,
            activate_after: DEFAULT_ACTIVATE_AFTER,
            retire_after: DEFAULT_RETIRE_AFTER,
            revoke_after: DEFAULT_REVOKE_AFTER,
            ttl: DEFAULT_TTL,
        }
    }

    /// The RSA size to generate (None for Ed25519).
    pub fn rsa_bits(&self) -> Option<u32> {
        match self.algorithm {
            Algorithm::Rsa => Some(self.bits.unwrap_or(DEFAULT_RSA_BITS)),
            Algorithm::Ed25519 => None,
        }
    }

    /// Checks the family; returns warnings that do not stop it.
    pub fn validate(&self) -> Result<Vec<String>, ConfigError> {
        let err = |field, reason: String| ConfigError::Family {
            prefix: self.prefix.clone(),
            field,
            reason,
        };
        let mut warnings = Vec::new();
        // A selector is a sub-domain (RFC 6376 §3.1: `selector = sub-domain
        // *( "." sub-domain )`); ours is one label plus `-YYYY-MMx`.
        if self.prefix.is_empty()
            || self.prefix.len() > 50
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || self.prefix.starts_with('-')
        {
            return Err(err(
                "prefix",
                "must be 1-50 of a-z, 0-9 and `-`, not starting with `-`".into(),
            ));
        }
        match (self.algorithm, self.bits) {
            (Algorithm::Ed25519, Some(_)) => {
                return Err(err("bits", "ed25519 keys have no size to choose".into()));
            }
            (Algorithm::Rsa, Some(b)) if !RSA_BITS.contains(&b) => {
                return Err(err("bits", format!("{b} is not one of 1024, 2048, 3072, 4096")));
            }
            (Algorithm::Rsa, Some(1024)) => warnings.push(format!(
                "dkim selector family `{}`: 1024-bit RSA is the minimum RFC 8301 allows; it recommends at least 2048",
                self.prefix
            )),
            _ => {}
        }
        if self.ttl < 60 {
            return Err(err("ttl", "must be at least 60 seconds".into()));
        }
        if self.activate_after.as_secs() < u64::from(self.ttl) {
            return Err(err(
                "activate_after",
                format!(
                    "{} is shorter than the record TTL ({}s): verifiers could miss the new key",
                    self.activate_after, self.ttl
                ),
            ));
        }
        if self.retire_after < MIN_RETIRE_AFTER {
            return Err(err(
                "retire_after",
                format!(
                    "{} is shorter than {}: mail still queued (RFC 5321 §4.5.4.1) would fail verification",
                    self.retire_after, MIN_RETIRE_AFTER
                ),
            ));
        }
        if self.revoke_after.as_secs() < u64::from(self.ttl) {
            return Err(err(
                "revoke_after",
                "must be at least the record TTL".to_string(),
            ));
        }
        if self.rotate_every <= self.activate_after {
            return Err(err(
                "rotate_every",
                format!(
                    "{} must be longer than activate_after ({})",
                    self.rotate_every, self.activate_after
                ),
            ));
        }
        Ok(warnings)
    }
}

/// The signer a key export is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// KeyTable, SigningTable and key files for OpenDKIM.
    Opendkim,
    /// `dkim_signing` domain config, selector and path maps, key files for rspamd.
    Rspamd,
    /// PEM files plus a `selectors` file, for anything else.
    Pem,
}

/// Where and how active keys are handed to the signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub format: ExportFormat,
    /// Directory the signer reads; created 0700.
    pub dir: PathBuf,
    /// Command (argv) run after a successful export, e.g. to reload the signer.
    #[serde(default)]
    pub hook: Option<Vec<String>>,
}

/// The `keys:` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Keystore directory (state file and private keys); created 0700.
    /// Private keys leave it only through `keys export`.
    pub dir: PathBuf,
    #[serde(default)]
    pub export: Option<ExportConfig>,
    /// The servers asked whether a new key is served before it becomes
    /// active (`IP[:PORT]`). Default: every server of the domain's NS set,
    /// found through the system resolver. Set it for hidden primaries or
    /// split-horizon setups.
    #[serde(default)]
    pub authorities: Vec<String>,
}

impl KeysConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::Keys {
                field: "dir",
                reason: "must not be empty".into(),
            });
        }
        if let Some(e) = &self.export {
            if e.dir.as_os_str().is_empty() {
                return Err(ConfigError::Keys {
                    field: "export.dir",
                    reason: "must not be empty".into(),
                });
            }
            if e.hook.as_ref().is_some_and(|h| h.is_empty()) {
                return Err(ConfigError::Keys {
                    field: "export.hook",
                    reason: "must name a command".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(yaml: &str) -> FamilyConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_and_durations() {
        let f = family("prefix: mail\n");
        assert_eq!(f, FamilyConfig::new("mail", Algorithm::Rsa));
        assert_eq!(f.rsa_bits(), Some(2048));
        assert!(f.validate().unwrap().is_empty());
        let f = family("prefix: ed\nalgorithm: ed25519\nrotate_every: 90d\nretire_after: 5d\n");
        assert_eq!(f.algorithm, Algorithm::Ed25519);
        assert_eq!(f.rotate_every, Span::days(90));
        assert_eq!(f.retire_after, Span::days(5));
        assert_eq!(f.rsa_bits(), None);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_saphyr::from_str::<FamilyConfig>("prefix: a\nbitz: 2048\n").is_err());
        assert!(serde_saphyr::from_str::<KeysConfig>("dir: k\nexprt: {}\n").is_err());
    }

    #[test]
    fn validation() {
        let mut f = FamilyConfig::new("mail", Algorithm::Rsa);
        f.bits = Some(1024);
        let w = f.validate().unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("RFC 8301"));
        f.bits = Some(1536);
        assert!(matches!(
            f.validate(),
            Err(ConfigError::Family { field: "bits", .. })
        ));
        f.bits = Some(4096);
        assert!(f.validate().unwrap().is_empty());
        f.retire_after = Span::days(3);
        assert!(matches!(
            f.validate(),
            Err(ConfigError::Family {
                field: "retire_after",
                ..
            })
        ));
        let mut e = FamilyConfig::new("ed", Algorithm::Ed25519);
        e.bits = Some(2048);
        assert!(e.validate().is_err());
        let mut p = FamilyConfig::new("Mail_1", Algorithm::Rsa);
        assert!(matches!(
            p.validate(),
            Err(ConfigError::Family {
                field: "prefix",
                ..
            })
        ));
        p.prefix = "mail".into();
        p.activate_after = Span::seconds(60);
        assert!(matches!(
            p.validate(),
            Err(ConfigError::Family {
                field: "activate_after",
                ..
            })
        ));
    }

    #[test]
    fn keys_block() {
        let k: KeysConfig = serde_saphyr::from_str(
            "dir: keys\nexport: { format: rspamd, dir: out, hook: [true] }\n",
        )
        .unwrap();
        assert_eq!(k.export.as_ref().unwrap().format, ExportFormat::Rspamd);
        k.validate().unwrap();
    }
}
