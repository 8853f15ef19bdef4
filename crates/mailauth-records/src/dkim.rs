//! The DKIM public key record published at `<selector>._domainkey.<domain>`
//! (RFC 6376 §3.6.1, Ed25519 from RFC 8463): its typed value [`DkimKey`],
//! parsing from a joined TXT value, canonical rendering, and the RSA key size
//! read from the key's DER by a minimal walker.
//!
//! Also home of the DKIM `tag-list` splitter (RFC 6376 §3.2), which DMARC
//! and the core's message inspection (signature and ARC header fields)
//! reuse. This module does not generate, store or rotate keys, never sees
//! private keys, and does not verify signatures. Long keys are not split
//! into character-strings here: that is [`super::txt`]'s job, and nothing
//! here assumes a value fits in 255 octets.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};

/// Errors from parsing a DKIM key record. Every message names the tag and
/// the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    #[error("malformed DKIM tag `{segment}`: expected `name=value`")]
    Syntax { segment: String },
    #[error("DKIM tag `{tag}` appears more than once")]
    Duplicate { tag: String },
    #[error("DKIM key record: `v` must be the first tag and equal `DKIM1`, found `{found}`")]
    Version { found: String },
    #[error("DKIM key record has no `p=` tag (an empty `p=` revokes a key)")]
    MissingKey,
    #[error("DKIM tag `{tag}` has invalid value `{value}`: expected {expected}")]
    Value {
        tag: String,
        value: String,
        expected: &'static str,
    },
    #[error("DKIM tag `k` has unsupported key type `{value}`: expected `rsa` or `ed25519`")]
    KeyType { value: String },
    #[error("DKIM tag `p` is not valid base64: {reason} (in `{value}`)")]
    Base64 { value: String, reason: String },
    #[error("DKIM tag `p`: an Ed25519 key is 32 bytes, this one is {len} bytes")]
    Ed25519Length { len: usize },
    #[error(
        "DKIM tag `p`: not an RSA public key (neither SubjectPublicKeyInfo nor PKCS#1 RSAPublicKey DER), `{value}`"
    )]
    RsaKey { value: String },
}

/// RFC 6376 §3.2, the tag-list shared by DKIM and DMARC:
/// ```text
/// tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
/// tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
/// tag-name  =  ALPHA *ALNUMPUNC
/// tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
///                   ; Prohibits WSP and FWS at beginning and end
/// tval      =  1*VALCHAR
/// VALCHAR   =  %x21-3A / %x3C-7E
/// ALNUMPUNC =  ALPHA / DIGIT / "_"
/// ```
/// Returns `(name, value)` pairs with surrounding whitespace removed, in
/// order, names as written. A trailing `;` is allowed; any other empty or
/// malformed segment is returned as `Err(segment)`. An empty input gives an
/// empty list.
///
/// Public because the message inspection of `mailauth-core` reads the
/// DKIM-Signature and ARC header fields, which use the same tag-list, with
/// it.
pub fn tag_list(s: &str) -> Result<Vec<(&str, &str)>, &str> {
    let mut out = Vec::new();
    let segments: Vec<&str> = s.split(';').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        let seg = seg.trim();
        if seg.is_empty() && i == last {
            continue;
        }
        let Some((name, value)) = seg.split_once('=') else {
            return Err(seg);
        };
        let name = name.trim();
        let value = value.trim();
        let mut chars = name.chars();
        let name_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        let value_ok = value
            .chars()
            .all(|c| matches!(c, '\x21'..='\x7e' | ' ' | '\t' | '\r' | '\n'));
        if !name_ok || !value_ok {
            return Err(seg);
        }
        out.push((name, value));
    }
    Ok(out)
}

/// RFC 6376 §3.6.1 `k=`: `key-k-tag-type = "rsa" / x-key-k-tag-type`;
/// RFC 8463 adds `ed25519` (§3, §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    #[default]
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// RFC 6376 §3.6.1 `t=`: `key-t-tag-flag = "y" / "s" / x-key-t-tag-flag`.
/// "Unrecognized flags MUST be ignored", so only these two are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum KeyFlag {
    /// `y`: "This domain is testing DKIM."
    Testing,
    /// `s`: the `i=` domain must equal `d=` (no subdomains).
    Strict,
}

impl KeyFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFlag::Testing => "y",
            KeyFlag::Strict => "s",
        }
    }
}

/// A DKIM key record.
///
/// RFC 6376 §3.6.1:
/// ```text
/// key-v-tag    = %x76 [FWS] "=" [FWS] %x44.4B.49.4D.31
/// key-h-tag    = %x68 [FWS] "=" [FWS] key-h-tag-alg
///                0*( [FWS] ":" [FWS] key-h-tag-alg )
/// key-h-tag-alg = "sha1" / "sha256" / x-key-h-tag-alg
/// key-k-tag    = %x6b [FWS] "=" [FWS] key-k-tag-type
/// key-k-tag-type = "rsa" / x-key-k-tag-type
/// key-n-tag    = %x6e [FWS] "=" [FWS] qp-section
/// key-p-tag    = %x70 [FWS] "=" [ [FWS] base64string]
/// key-s-tag    = %x73 [FWS] "=" [FWS] key-s-tag-type
///                0*( [FWS] ":" [FWS] key-s-tag-type )
/// key-s-tag-type = "email" / "*" / x-key-s-tag-type
/// key-t-tag    = %x74 [FWS] "=" [FWS] key-t-tag-flag
///                0*( [FWS] ":" [FWS] key-t-tag-flag )
/// key-t-tag-flag = "y" / "s" / x-key-t-tag-flag
/// ```
/// "Tags MUST be interpreted in a case-sensitive manner" (§3.2), so `P=` is
/// an unknown tag, and unknown tags are ignored. `v`, if present, "MUST be
/// the first tag in the record". "An empty value means that this public key
/// has been revoked."
///
/// Canonical rendering: `v, h, k, n, s, t, p` joined with `; `, `p` last
/// (it is long) as unbroken base64 with padding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DkimKey {
    /// Whether the record starts with `v=DKIM1` (optional, recommended).
    pub v: bool,
    /// Acceptable hash algorithms (`sha256`, `sha1`, ...); empty = all.
    pub h: Vec<String>,
    /// Key type; `None` means absent, which means `rsa`.
    pub k: Option<KeyType>,
    /// Notes for humans.
    pub n: Option<String>,
    /// The decoded public key: SubjectPublicKeyInfo (or a bare PKCS#1
    /// RSAPublicKey) DER for RSA, the raw 32 bytes for Ed25519. Empty when
    /// the key is revoked.
    #[serde(serialize_with = "base64_bytes")]
    pub p: Vec<u8>,
    /// Service types (`email`, `*`); empty = all.
    pub s: Vec<String>,
    /// Flags; empty when absent.
    pub t: Vec<KeyFlag>,
}

fn base64_bytes<S: Serializer>(p: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(p))
}

impl DkimKey {
    /// A `v=DKIM1` record for a key of type `k` with public key bytes `p`.
    pub fn new(k: KeyType, p: Vec<u8>) -> DkimKey {
        DkimKey {
            v: true,
            h: Vec::new(),
            k: Some(k),
            n: None,
            p,
            s: Vec::new(),
            t: Vec::new(),
        }
    }

    /// The key type, `rsa` when `k=` is absent.
    pub fn key_type(&self) -> KeyType {
        self.k.unwrap_or_default()
    }

    /// RFC 6376 §3.6.1: "An empty value means that this public key has been
    /// revoked."
    pub fn is_revoked(&self) -> bool {
        self.p.is_empty()
    }

    /// `t=y`: "This domain is testing DKIM."
    pub fn testing(&self) -> bool {
        self.t.contains(&KeyFlag::Testing)
    }

    /// The RSA modulus size in bits, read from `p` as SubjectPublicKeyInfo
    /// or bare PKCS#1 RSAPublicKey DER. `None` for Ed25519, revoked or
    /// unparseable keys.
    pub fn rsa_bits(&self) -> Option<usize> {
        if self.key_type() != KeyType::Rsa || self.p.is_empty() {
            return None;
        }
        rsa_modulus_bits(&self.p)
    }
}

/// One DER element: (tag, contents, rest). Definite lengths only (DER).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
/// 1.2.840.113549.1.1.1 rsaEncryption (RFC 8017 Appendix C).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// RFC 5280 §4.1:
/// ```text
/// SubjectPublicKeyInfo  ::=  SEQUENCE  {
///      algorithm            AlgorithmIdentifier,
///      subjectPublicKey     BIT STRING  }
/// ```
/// RFC 8017 Appendix A.1.1:
/// ```text
/// RSAPublicKey ::= SEQUENCE {
///     modulus           INTEGER,  -- n
///     publicExponent    INTEGER   -- e
/// }
/// ```
fn rsa_modulus_bits(der_bytes: &[u8]) -> Option<usize> {
    spki_rsa_bits(der_bytes).or_else(|| pkcs1_bits(der_bytes))
}

fn spki_rsa_bits(input: &[u8]) -> Option<usize> {
    let (SEQUENCE, body, []) = der(input)? else {
        return None;
    };
    let (SEQUENCE, alg, rest) = der(body)? else {
        return None;
    };
    let (OID, oid, _params) = der(alg)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (BIT_STRING, bits, []) = der(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    pkcs1_bits(key)
}

fn pkcs1_bits(input: &[u8]) -> Option<usize> {
    let (SEQUENCE, body, []) = der(input)? else {
        return None;
    };
    let (INTEGER, n, rest) = der(body)? else {
        return None;
    };
    let (INTEGER, e, []) = der(rest)? else {
        return None;
    };
    if e.is_empty() || n.first().is_none_or(|&b| b & 0x80 != 0) {
        return None; // empty or negative
    }
    let start = n.iter().position(|&b| b != 0)?;
    let n = &n[start..];
    Some((n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize))
}

fn value_err(tag: &str, value: &str, expected: &'static str) -> DkimError {
    DkimError::Value {
        tag: tag.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// `hyphenated-word = ALPHA [ *(ALPHA / DIGIT / "-") (ALPHA / DIGIT) ]`
fn hyphenated_word(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && !s.ends_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn colon_list(
    tag: &str,
    v: &str,
    ok: fn(&str) -> bool,
    expected: &'static str,
) -> Result<Vec<String>, DkimError> {
    v.split(':')
        .map(|x| {
            let x = x.trim();
            if ok(x) {
                Ok(x.to_string())
            } else {
                Err(value_err(tag, v, expected))
            }
        })
        .collect()
}

impl FromStr for DkimKey {
    type Err = DkimError;

    fn from_str(s: &str) -> Result<DkimKey, DkimError> {
        let tags = tag_list(s).map_err(|segment| DkimError::Syntax {
            segment: segment.to_string(),
        })?;
        let mut key = DkimKey {
            v: false,
            h: Vec::new(),
            k: None,
            n: None,
            p: Vec::new(),
            s: Vec::new(),
            t: Vec::new(),
        };
        let mut p_seen = false;
        let mut seen: Vec<&str> = Vec::new();
        for (i, &(name, v)) in tags.iter().enumerate() {
            // "Tags with duplicate names MUST NOT occur within a single
            // tag-list; if a tag name does occur more than once, the entire
            // tag-list is invalid." (§3.2)
            if seen.contains(&name) {
                return Err(DkimError::Duplicate {
                    tag: name.to_string(),
                });
            }
            seen.push(name);
            match name {
                "v" => {
                    if i != 0 || v != "DKIM1" {
                        return Err(DkimError::Version {
                            found: format!("{name}={v}"),
                        });
                    }
                    key.v = true;
                }
                "h" => {
                    key.h = colon_list(
                        name,
                        v,
                        hyphenated_word,
                        "hash names such as `sha256`, separated by `:`",
                    )?
                }
                "k" => {
                    key.k = Some(match v {
                        "rsa" => KeyType::Rsa,
                        "ed25519" => KeyType::Ed25519,
                        _ => {
                            return Err(DkimError::KeyType {
                                value: v.to_string(),
                            });
                        }
                    })
                }
                "n" => key.n = Some(v.to_string()),
                "p" => {
                    // base64string = ALPHADIGITPS *([FWS] ALPHADIGITPS)
                    //                [ [FWS] "=" [ [FWS] "=" ] ]
                    let compact: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    key.p = STANDARD
                        .decode(compact.as_bytes())
                        .map_err(|e| DkimError::Base64 {
                            value: v.to_string(),
                            reason: e.to_string(),
                        })?;
                    p_seen = true;
                }
                "s" => {
                    key.s = colon_list(
                        name,
                        v,
                        |x| x == "*" || hyphenated_word(x),
                        "service types such as `email` or `*`, separated by `:`",
                    )?
                }
                "t" => {
                    for flag in v.split(':') {
                        let flag = flag.trim();
                        if !hyphenated_word(flag) {
                            return Err(value_err(name, v, "flags `y` and `s`, separated by `:`"));
                        }
                        let f = match flag {
                            "y" => KeyFlag::Testing,
                            "s" => KeyFlag::Strict,
                            // "Unrecognized flags MUST be ignored."
                            _ => continue,
                        };
                        if !key.t.contains(&f) {
                            key.t.push(f);
                        }
                    }
                }
                // "Unrecognized tags MUST be ignored." (§3.2)
                _ => {}
            }
        }
        if !p_seen {
            return Err(DkimError::MissingKey);
        }
        if !key.p.is_empty() {
            match key.key_type() {
                KeyType::Ed25519 if key.p.len() != 32 => {
                    return Err(DkimError::Ed25519Length { len: key.p.len() });
                }
                KeyType::Rsa if rsa_modulus_bits(&key.p).is_none() => {
                    return Err(DkimError::RsaKey {
                        value: STANDARD.encode(&key.p),
                    });
                }
                _ => {}
            }
        }
        Ok(key)
    }
}

impl fmt::Display for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.v {
            parts.push("v=DKIM1".into());
        }
        if !self.h.is_empty() {
            parts.push(format!("h={}", self.h.join(":")));
        }
        if let Some(k) = self.k {
            parts.push(format!("k={}", k.as_str()));
        }
        if let Some(n) = &self.n {
            parts.push(format!("n={n}"));
        }
        if !self.s.is_empty() {
            parts.push(format!("s={}", self.s.join(":")));
        }
        if !self.t.is_empty() {
            let t: Vec<&str> = self.t.iter().map(|f| f.as_str()).collect();
            parts.push(format!("t={}", t.join(":")));
        }
        parts.push(format!("p={}", STANDARD.encode(&self.p)));
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &str = include_str!("../../../tests/data/records/dkim_keys.txt");

    #[test]
    fn key_table_parses_with_expected_sizes() {
        let mut n = 0;
        for line in KEYS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (bits, record) = line.split_once('\t').expect("bits<TAB>record");
            let key: DkimKey = record
                .parse()
                .unwrap_or_else(|e| panic!("`{record}` did not parse: {e}"));
            let want = if bits == "-" {
                None
            } else {
                Some(bits.parse::<usize>().unwrap())
            };
            assert_eq!(key.rsa_bits(), want, "{record}");
            assert!(!key.is_revoked());
            let canonical = key.to_string();
            let again: DkimKey = canonical.parse().unwrap();
            assert_eq!(again, key);
            assert_eq!(again.to_string(), canonical);
            n += 1;
        }
        assert_eq!(n, 7, "all table rows were read");
    }

    #[test]
    fn a_4096_bit_key_is_longer_than_one_character_string() {
        let line = KEYS.lines().find(|l| l.starts_with("4096\t")).unwrap();
        let key: DkimKey = line.split_once('\t').unwrap().1.parse().unwrap();
        let text = key.to_string();
        assert!(text.len() > 700, "{}", text.len());
        let rdata = crate::RData::txt(&text);
        assert_eq!(rdata.txt_value().as_deref(), Some(text.as_str()));
        let back: DkimKey = rdata.txt_value().unwrap().parse().unwrap();
        assert_eq!(back.rsa_bits(), Some(4096));
    }

    #[test]
    fn rfc8463_ed25519_record() {
        let key: DkimKey = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
            .parse()
            .unwrap();
        assert_eq!(key.key_type(), KeyType::Ed25519);
        assert_eq!(key.p.len(), 32);
        assert_eq!(key.rsa_bits(), None);
        assert_eq!(
            key.to_string(),
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
    }

    /// (input, canonical rendering)
    const TABLE: &[(&str, &str)] = &[
        // revoked key (RFC 6376 §3.6.1), as published after rotation
        ("v=DKIM1; k=rsa; p=", "v=DKIM1; k=rsa; p="),
        ("v=DKIM1; p=", "v=DKIM1; p="),
        // no v, flags in odd order, unknown flag and unknown tag dropped
        (
            "k=ed25519 ; t = s:y:x ; foo=bar; p = 11qYAYKxCrfV S/7TyWQHOg7hcvPapiMlrwIaaPcHURo= ;",
            "k=ed25519; t=s:y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        ),
        (
            "v=DKIM1; h=sha1:sha256; s=email; n=rotated 2026; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "v=DKIM1; h=sha1:sha256; k=ed25519; n=rotated 2026; s=email; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        ),
    ];

    #[test]
    fn table_renders_canonically() {
        for (input, expected) in TABLE {
            let key: DkimKey = input
                .parse()
                .unwrap_or_else(|e| panic!("`{input}` did not parse: {e}"));
            assert_eq!(key.to_string(), *expected, "{input}");
        }
        let revoked: DkimKey = "v=DKIM1; p=".parse().unwrap();
        assert!(revoked.is_revoked());
        assert_eq!(revoked.rsa_bits(), None);
        let t: DkimKey = TABLE[2].0.parse().unwrap();
        assert!(t.testing());
        assert_eq!(t.t, vec![KeyFlag::Strict, KeyFlag::Testing]);
    }

    const BAD: &[(&str, &str)] = &[
        ("v=DKIM1; k=rsa", "no `p=` tag"),
        ("k=rsa; v=DKIM1; p=", "`v` must be the first tag"),
        ("v=DKIM2; p=", "found `v=DKIM2`"),
        ("v=DKIM1; k=dsa; p=", "unsupported key type `dsa`"),
        (
            "v=DKIM1; k=ed25519; p=AAAA",
            "32 bytes, this one is 3 bytes",
        ),
        ("v=DKIM1; p=AAAA", "not an RSA public key"),
        ("v=DKIM1; p=!!!!", "not valid base64"),
        ("v=DKIM1; p=; p=", "`p` appears more than once"),
        ("v=DKIM1; t=y:-; p=", "`t` has invalid value `y:-`"),
        ("v=DKIM1; h=sha256:; p=", "`h` has invalid value `sha256:`"),
        ("v=DKIM1; 1x=2; p=", "malformed DKIM tag `1x=2`"),
        ("v=DKIM1; ; p=", "malformed DKIM tag ``"),
    ];

    #[test]
    fn invalid_records_name_the_tag_and_value() {
        for (input, needle) in BAD {
            match input.parse::<DkimKey>() {
                Ok(k) => panic!("`{input}` parsed as {k:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "error for `{input}` was `{e}`, expected `{needle}`"
                ),
            }
        }
    }

    #[test]
    fn tag_names_are_case_sensitive() {
        // `P=` is an unknown tag, so the record has no key at all.
        assert_eq!("v=DKIM1; P=".parse::<DkimKey>(), Err(DkimError::MissingKey));
    }

    /// DER length octets for `len`.
    fn der_len(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![len as u8]
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            let mut v = vec![0x80 | bytes.len() as u8];
            v.extend(bytes);
            v
        }
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend(der_len(body.len()));
        v.extend_from_slice(body);
        v
    }

    /// SubjectPublicKeyInfo DER for an RSA key with this modulus (big-endian,
    /// no sign byte) and exponent 65537.
    fn spki(modulus: &[u8]) -> Vec<u8> {
        let mut n = modulus.to_vec();
        if n[0] & 0x80 != 0 {
            n.insert(0, 0);
        }
        let pkcs1 = tlv(
            SEQUENCE,
            &[tlv(INTEGER, &n), tlv(INTEGER, &[1, 0, 1])].concat(),
        );
        let mut bits = vec![0];
        bits.extend(pkcs1);
        let alg = tlv(
            SEQUENCE,
            &[tlv(OID, RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
        );
        tlv(SEQUENCE, &[alg, tlv(BIT_STRING, &bits)].concat())
    }

    #[test]
    fn der_walker_rejects_truncated_and_trailing_data() {
        let key = spki(&[0xc5; 256]);
        assert_eq!(rsa_modulus_bits(&key), Some(2048));
        assert_eq!(rsa_modulus_bits(&key[..key.len() - 1]), None);
        let mut trailing = key.clone();
        trailing.push(0);
        assert_eq!(rsa_modulus_bits(&trailing), None);
        let mut wrong_oid = key.clone();
        let pos = wrong_oid
            .windows(RSA_ENCRYPTION.len())
            .position(|w| w == RSA_ENCRYPTION)
            .unwrap();
        wrong_oid[pos + 8] = 0x0a;
        assert_eq!(rsa_modulus_bits(&wrong_oid), None);
        // an odd size: top byte 0x01 → 1 + 8*127 bits
        let mut m = vec![0xff; 128];
        m[0] = 0x01;
        assert_eq!(rsa_modulus_bits(&spki(&m)), Some(1017));
    }

    fn arb_key() -> impl Strategy<Value = DkimKey> {
        let rsa = proptest::collection::vec(any::<u8>(), 8..=520).prop_map(|mut m| {
            m[0] = m[0].max(1);
            (KeyType::Rsa, spki(&m))
        });
        let ed =
            proptest::collection::vec(any::<u8>(), 32..=32).prop_map(|p| (KeyType::Ed25519, p));
        let revoked =
            prop_oneof![Just(KeyType::Rsa), Just(KeyType::Ed25519)].prop_map(|k| (k, Vec::new()));
        (
            prop_oneof![rsa, ed, revoked],
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec("sha1|sha256|x-[a-z0-9]{1,4}", 0..3),
            proptest::option::of("[a-zA-Z0-9]{1,8}( [a-zA-Z0-9.:]{1,8}){0,2}"),
            proptest::collection::vec("email|\\*", 0..2),
            proptest::sample::subsequence(vec![KeyFlag::Testing, KeyFlag::Strict], 0..=2),
        )
            .prop_map(|((k, p), v, explicit_k, h, n, s, t)| DkimKey {
                v,
                h,
                k: (explicit_k || k == KeyType::Ed25519).then_some(k),
                n,
                p,
                s,
                t,
            })
    }

    proptest! {
        #[test]
        fn parse_render_round_trip(key in arb_key()) {
            let text = key.to_string();
            let back: DkimKey = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &key);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn rsa_bits_matches_the_modulus(len in 64usize..=1024, top in 1u8..=255) {
            let mut m = vec![0x77u8; len];
            m[0] = top;
            let want = (len - 1) * 8 + (8 - top.leading_zeros() as usize);
            prop_assert_eq!(rsa_modulus_bits(&spki(&m)), Some(want));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = s.parse::<DkimKey>();
        }
    }
}
