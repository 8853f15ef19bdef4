//! DKIM key pairs: generation (RSA, Ed25519), reading an existing private
//! key for adoption, and the public half as it goes into the `p=` tag.
//! Owns the cryptography; leaves where keys are stored to `store` and when
//! they are made to `lifecycle`.
//!
//! Private keys are PKCS#8 PEM (RFC 5958 / RFC 7468 `PRIVATE KEY`), version 1
//! for Ed25519 so that OpenSSL 3 reads them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, KeypairBytes};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;

use super::config::{Algorithm, RSA_BITS};

/// Errors making or reading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error("RSA keys are 1024, 2048, 3072 or 4096 bits, not {bits}")]
    Bits { bits: u32 },
    #[error("the operating system's random generator failed: {detail}")]
    Random { detail: String },
    #[error("{algorithm} key generation failed: {detail}")]
    Crypto {
        algorithm: Algorithm,
        detail: String,
    },
    #[error("{origin}: not a PKCS#8 or PKCS#1 RSA, or PKCS#8 Ed25519, private key in PEM")]
    Unreadable { origin: String },
    #[error("{origin}: a {bits}-bit RSA key is below RFC 8301's minimum of 1024 bits")]
    TooWeak { origin: String, bits: u32 },
}

/// A private key in PEM. Its `Debug` hides the contents and it has no
/// `Display`, so it cannot end up in a log or a plan by accident. The
/// buffer is overwritten when dropped.
pub struct SecretPem(String);

impl SecretPem {
    pub(crate) fn new(s: String) -> SecretPem {
        SecretPem(s)
    }
    /// The PEM text, for writing to a 0600 file and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

impl Drop for SecretPem {
    fn drop(&mut self) {
        // Best effort: overwrite before the allocation is freed.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// A freshly made or imported key pair.
#[derive(Debug)]
pub struct KeyPair {
    pub algorithm: Algorithm,
    /// RSA modulus size; `None` for Ed25519.
    pub bits: Option<u32>,
    /// The `p=` data: RSA SubjectPublicKeyInfo DER (RFC 6376 §3.6.1), or the
    /// raw 32-byte Ed25519 public key (RFC 8463 §4).
    pub public_key: Vec<u8>,
    pub private_pem: SecretPem,
}

/// Generates a key. `bits` is ignored for Ed25519 and defaults to 2048 for
/// RSA.
pub fn generate(algorithm: Algorithm, bits: Option<u32>) -> Result<KeyPair, GenerateError> {
    match algorithm {
        Algorithm::Rsa => generate_rsa(bits.unwrap_or(super::config::DEFAULT_RSA_BITS)),
        Algorithm::Ed25519 => generate_ed25519(),
    }
}

fn generate_rsa(bits: u32) -> Result<KeyPair, GenerateError> {
    if !RSA_BITS.contains(&bits) {
        return Err(GenerateError::Bits { bits });
    }
    let crypto = |e: &dyn fmt::Display| GenerateError::Crypto {
        algorithm: Algorithm::Rsa,
        detail: e.to_string(),
    };
    let key =
        rsa::PrivateKey::new(&mut getrandom::SysRng, bits as usize).map_err(|e| crypto(&e))?;
    rsa_pair(&key)
}

fn rsa_pair(key: &rsa::PrivateKey) -> Result<KeyPair, GenerateError> {
    let crypto = |e: &dyn fmt::Display| GenerateError::Crypto {
        algorithm: Algorithm::Rsa,
        detail: e.to_string(),
    };
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| crypto(&e))?;
    let public = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| crypto(&e))?;
    Ok(KeyPair {
        algorithm: Algorithm::Rsa,
        bits: Some((key.size() * 8) as u32),
        public_key: public.as_bytes().to_vec(),
        private_pem: SecretPem::new(pem.to_string()),
    })
}

fn generate_ed25519() -> Result<KeyPair, GenerateError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| GenerateError::Random {
        detail: e.to_string(),
    })?;
    let pair = ed25519_pair(seed);
    seed.fill(0);
    pair
}

fn ed25519_pair(seed: [u8; 32]) -> Result<KeyPair, GenerateError> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (no embedded public key): OpenSSL 3.0 rejects v2.
    let bytes = KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    let pem = bytes
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| GenerateError::Crypto {
            algorithm: Algorithm::Ed25519,
            detail: e.to_string(),
        })?;
    Ok(KeyPair {
        algorithm: Algorithm::Ed25519,
        bits: None,
        public_key: signing.verifying_key().to_bytes().to_vec(),
        private_pem: SecretPem::new(pem.to_string()),
    })
}

/// Reads an existing private key (for `keys import`): PKCS#8 RSA or
/// Ed25519, or PKCS#1 `RSA PRIVATE KEY` as opendkim-genkey writes. The
/// result is re-encoded as PKCS#8. `origin` names the source in errors.
pub fn from_private_pem(pem: &str, origin: &str) -> Result<KeyPair, GenerateError> {
    if let Ok(key) = rsa::PrivateKey::from_pkcs8_pem(pem) {
        return checked_rsa(&key, origin);
    }
    if let Ok(key) = rsa::PrivateKey::from_pkcs1_pem(pem) {
        return checked_rsa(&key, origin);
    }
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        return ed25519_pair(key.to_bytes());
    }
    Err(GenerateError::Unreadable {
        origin: origin.to_string(),
    })
}

fn checked_rsa(key: &rsa::PrivateKey, origin: &str) -> Result<KeyPair, GenerateError> {
    let bits = (key.size() * 8) as u32;
    if bits < 1024 {
        return Err(GenerateError::TooWeak {
            origin: origin.to_string(),
            bits,
        });
    }
    rsa_pair(key)
}

/// The TXT value of a key record.
///
/// RFC 6376 §3.6.1: `key-p-tag = %x70 [FWS] "=" [ [FWS] base64string]`;
/// "An empty value means that this public key has been revoked."
/// RFC 8463 §4: "The public key is stored in the "p=" tag ... as the
/// base64 encoding of the 32-octet public key."
pub fn key_record_value(algorithm: Algorithm, public_key: Option<&[u8]>) -> String {
    let p = public_key.map(|k| STANDARD.encode(k)).unwrap_or_default();
    format!("v=DKIM1; k={}; p={p}", algorithm.k_tag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_pem_round_trips_as_pkcs8_v1() {
        let pair = generate(Algorithm::Ed25519, None).unwrap();
        assert_eq!(pair.public_key.len(), 32);
        assert!(
            pair.private_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        // PKCS#8 v1: the DER is exactly 48 octets (RFC 8410 §7 example).
        let b64: String = pair
            .private_pem
            .expose()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(STANDARD.decode(b64).unwrap().len(), 48);
        let back = from_private_pem(pair.private_pem.expose(), "test").unwrap();
        assert_eq!(back.public_key, pair.public_key);
        assert_eq!(format!("{:?}", pair.private_pem), "SecretPem(<redacted>)");
    }

    #[test]
    fn rsa_2048_public_key_is_spki() {
        let pair = generate(Algorithm::Rsa, None).unwrap();
        assert_eq!(pair.bits, Some(2048));
        // SubjectPublicKeyInfo of a 2048-bit key with e=65537 is 294 octets.
        assert_eq!(pair.public_key.len(), 294);
        let back = from_private_pem(pair.private_pem.expose(), "test").unwrap();
        assert_eq!(back.public_key, pair.public_key);
        assert_eq!(back.bits, Some(2048));
        let v = key_record_value(Algorithm::Rsa, Some(&pair.public_key));
        assert!(v.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"), "{v}");
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(
            generate(Algorithm::Rsa, Some(1536)),
            Err(GenerateError::Bits { bits: 1536 })
        ));
        assert!(matches!(
            from_private_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "x.pem"
            ),
            Err(GenerateError::Unreadable { .. })
        ));
        assert_eq!(
            key_record_value(Algorithm::Ed25519, None),
            "v=DKIM1; k=ed25519; p="
        );
    }
}
