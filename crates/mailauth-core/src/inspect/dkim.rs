//! DKIM (RFC 6376, Ed25519 from RFC 8463, crypto updates from RFC 8301):
//! the `DKIM-Signature` tags, header and body canonicalisation, the hashes
//! a signature covers, and verification of one signature against the key
//! published in DNS, with a specific reason for every failure.
//!
//! Canonicalisation and the signing input ([`canonical_body`],
//! [`canonical_header`], [`signing_input`]) are public so that a signer can
//! produce exactly the bytes this verifier checks. This module does not
//! sign, never sees private keys, and does not judge alignment or policy.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::message::{Header, Message};
use crate::record::dkim::{DkimKey, KeyFlag, KeyType, tag_list};
use crate::spf::{DnsError, SpfDns};

/// Why a signature did not verify. Each variant carries what the user
/// needs to find the fault.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DkimError {
    #[error("malformed DKIM-Signature: {detail}")]
    Syntax { detail: String },
    #[error("DKIM-Signature has no `{tag}=` tag, which is required")]
    MissingTag { tag: &'static str },
    #[error("unsupported DKIM-Signature version `v={found}` (only `1` is defined)")]
    Version { found: String },
    #[error("unsupported algorithm `a={found}` (rsa-sha256 and ed25519-sha256 are accepted)")]
    Algorithm { found: String },
    #[error(
        "rsa-sha1 signatures are not accepted (RFC 8301 §3.1: verifiers MUST NOT consider them valid)"
    )]
    Sha1,
    #[error("unsupported canonicalization `c={found}`")]
    Canonicalization { found: String },
    #[error("`h=` does not list From, which every signature must sign (RFC 6376 §5.4)")]
    FromNotSigned,
    #[error("identity `i={i}` is not in the signing domain `d={d}`")]
    IdentityDomain { i: String, d: String },
    #[error("signature expired at {expired} (x=), verified at {now}")]
    Expired { expired: String, now: String },
    #[error("signature timestamp t={t} is after its expiry x={x}")]
    ExpiryBeforeTimestamp { t: u64, x: u64 },
    #[error("no DKIM key at {name}: {detail}")]
    NoKey { name: String, detail: String },
    #[error("DNS lookup of {name} failed temporarily: {detail}")]
    KeyTemporary { name: String, detail: String },
    #[error("the key at {name} is not a valid DKIM key record: {detail}")]
    BadKeyRecord { name: String, detail: String },
    #[error("the key at {name} has been revoked (empty p=)")]
    Revoked { name: String },
    #[error("the key at {name} is {key_type} but the signature uses {algorithm}")]
    KeyTypeMismatch {
        name: String,
        key_type: &'static str,
        algorithm: &'static str,
    },
    #[error("the key at {name} does not allow sha256 (h={allowed})")]
    KeyHash { name: String, allowed: String },
    #[error("the key at {name} is not for email (s={services})")]
    KeyService { name: String, services: String },
    #[error("the key at {name} has t=s, so i= must be exactly d=, but i={i}")]
    StrictIdentity { name: String, i: String },
    #[error("the RSA key at {name} has {bits} bits; RFC 8301 §3.2 rejects keys below 1024")]
    KeyTooSmall { name: String, bits: usize },
    #[error("the key at {name} cannot be decoded: {detail}")]
    BadKey { name: String, detail: String },
    #[error("l={l} is longer than the canonicalized body ({len} octets)")]
    BodyLength { l: u64, len: usize },
    #[error(
        "body hash mismatch: the body was changed after signing (computed bh={computed}, signed bh={signed})"
    )]
    BodyHash { computed: String, signed: String },
    #[error(
        "the signature verifies but covers only the first {l} octets of the body (l=); {unsigned} octets after them are unsigned and could have been added by anyone"
    )]
    PartialBody { l: u64, unsigned: usize },
    #[error(
        "signature does not verify: the signed header fields were changed, or the wrong key is published"
    )]
    Signature,
    /// The header signature verifies, but only the header section is known.
    #[error(
        "the signature over the header fields verifies, but the body is not available (headers-only copy), so the body hash bh= could not be checked"
    )]
    BodyUnavailable,
}

/// RFC 8601 §2.7.1 result words for DKIM.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimResult {
    Pass,
    Fail,
    Neutral,
    Policy,
    TempError,
    PermError,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Neutral => "neutral",
            DkimResult::Policy => "policy",
            DkimResult::TempError => "temperror",
            DkimResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for DkimResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DkimError {
    /// RFC 6376 §6.1 / RFC 8601 §2.7.1: a signature that could be checked
    /// and did not match is "fail"; one that cannot be checked is
    /// "permerror", or "temperror" when DNS may answer later.
    pub fn result(&self) -> DkimResult {
        match self {
            DkimError::BodyHash { .. } | DkimError::Signature | DkimError::BodyLength { .. } => {
                DkimResult::Fail
            }
            DkimError::KeyTemporary { .. } => DkimResult::TempError,
            // RFC 8601 §2.7.1 policy: "The message was signed, but some
            // aspect of the signature or signatures was not acceptable to
            // the ADMD." RFC 6376 §8.2 explains the risk of l=: content
            // appended after the signed part.
            DkimError::PartialBody { .. } => DkimResult::Policy,
            // RFC 8601 §2.7.1 neutral: "The message was signed, but the
            // signature or signatures ... were not otherwise able to be
            // processed": half of the verification could not be done.
            DkimError::BodyUnavailable => DkimResult::Neutral,
            _ => DkimResult::PermError,
        }
    }
}

/// `a=`: RFC 6376 §3.5 `sig-a-tag-alg = sig-a-tag-k "-" sig-a-tag-h`.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    fn key_type(self) -> KeyType {
        match self {
            Algorithm::RsaSha256 => KeyType::Rsa,
            Algorithm::Ed25519Sha256 => KeyType::Ed25519,
        }
    }
}

/// RFC 6376 §3.4: "simple" or "relaxed".
#[derive(schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Canon {
    Simple,
    Relaxed,
}

impl Canon {
    pub fn as_str(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }

    fn parse(s: &str) -> Option<Canon> {
        match s.to_ascii_lowercase().as_str() {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }
}

/// A parsed `DKIM-Signature`.
///
/// RFC 6376 §3.5 (tags, abridged):
/// ```text
/// sig-v-tag = %x76 [FWS] "=" [FWS] 1*DIGIT
/// sig-a-tag = %x61 [FWS] "=" [FWS] sig-a-tag-alg
/// sig-b-tag = %x62 [FWS] "=" [FWS] sig-b-tag-data
/// sig-bh-tag = %x62 %x68 [FWS] "=" [FWS] sig-bh-tag-data
/// sig-c-tag = %x63 [FWS] "=" [FWS] sig-c-tag-alg ["/" sig-c-tag-alg]
/// sig-d-tag = %x64 [FWS] "=" [FWS] domain-name
/// sig-h-tag = %x68 [FWS] "=" [FWS] hdr-name *( [FWS] ":" [FWS] hdr-name )
/// sig-i-tag = %x69 [FWS] "=" [FWS] [ Local-part ] "@" domain-name
/// sig-l-tag = %x6c [FWS] "=" [FWS] 1*76DIGIT
/// sig-s-tag = %x73 [FWS] "=" [FWS] selector
/// sig-t-tag = %x74 [FWS] "=" [FWS] 1*12DIGIT
/// sig-x-tag = %x78 [FWS] "=" [FWS] 1*12DIGIT
/// ```
/// "v=, a=, b=, bh=, d=, h=, s=" are REQUIRED.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub a: Algorithm,
    #[serde(skip)]
    pub b: Vec<u8>,
    pub bh: String,
    pub header_canon: Canon,
    pub body_canon: Canon,
    /// Lower-cased, no trailing dot.
    pub d: String,
    pub h: Vec<String>,
    /// `i=`, defaulting to `@d`.
    pub i: String,
    pub l: Option<u64>,
    pub s: String,
    pub t: Option<u64>,
    pub x: Option<u64>,
}

impl Signature {
    /// `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1).
    pub fn key_name(&self) -> String {
        format!("{}._domainkey.{}", self.s, self.d)
    }

    /// The first 8 characters of `b=` in base64, as RFC 6008 `header.b`.
    pub fn b_prefix(&self) -> String {
        STANDARD.encode(&self.b).chars().take(8).collect()
    }

    /// Parses the value of a `DKIM-Signature` field.
    pub fn parse(value: &str) -> Result<Signature, DkimError> {
        let tags = tag_list(value).map_err(|seg| DkimError::Syntax {
            detail: format!("bad tag `{seg}`"),
        })?;
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in &tags {
            // §3.2: "if a tag name does occur more than once, the entire
            // tag-list is invalid."
            if seen.contains(name) {
                return Err(DkimError::Syntax {
                    detail: format!("tag `{name}` appears more than once"),
                });
            }
            seen.push(name);
        }
        let get = |t: &str| tags.iter().find(|(n, _)| *n == t).map(|(_, v)| *v);
        let req = |t: &'static str| get(t).ok_or(DkimError::MissingTag { tag: t });
        let v = req("v")?;
        if v != "1" {
            return Err(DkimError::Version {
                found: v.to_string(),
            });
        }
        let a = match req("a")?.to_ascii_lowercase().as_str() {
            "rsa-sha256" => Algorithm::RsaSha256,
            "ed25519-sha256" => Algorithm::Ed25519Sha256,
            "rsa-sha1" => return Err(DkimError::Sha1),
            other => {
                return Err(DkimError::Algorithm {
                    found: other.to_string(),
                });
            }
        };
        let nows = |s: &str| {
            s.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect::<String>()
        };
        let b = STANDARD
            .decode(nows(req("b")?))
            .map_err(|e| DkimError::Syntax {
                detail: format!("b= is not base64: {e}"),
            })?;
        let bh = nows(req("bh")?);
        STANDARD.decode(&bh).map_err(|e| DkimError::Syntax {
            detail: format!("bh= is not base64: {e}"),
        })?;
        // §3.5 c=: "If only one algorithm is named, that algorithm is used
        // for the header and "simple" is used for the body."
        let (header_canon, body_canon) = match get("c") {
            None => (Canon::Simple, Canon::Simple),
            Some(c) => {
                let bad = || DkimError::Canonicalization {
                    found: c.to_string(),
                };
                let (hc, bc) = c.split_once('/').unwrap_or((c, "simple"));
                (
                    Canon::parse(hc.trim()).ok_or_else(bad)?,
                    Canon::parse(bc.trim()).ok_or_else(bad)?,
                )
            }
        };
        let d = req("d")?.trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            return Err(DkimError::Syntax {
                detail: "d= is empty".into(),
            });
        }
        let h: Vec<String> = req("h")?
            .split(':')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if !h.iter().any(|n| n.eq_ignore_ascii_case("from")) {
            return Err(DkimError::FromNotSigned);
        }
        let i = get("i").map_or_else(|| format!("@{d}"), str::to_string);
        let i_domain = i
            .rsplit_once('@')
            .map(|(_, dom)| dom.trim_end_matches('.').to_ascii_lowercase())
            .ok_or_else(|| DkimError::Syntax {
                detail: format!("i={i} has no `@`"),
            })?;
        // §3.5 i=: "The domain part of the address MUST be the same as, or a
        // subdomain of, the value of the "d=" tag."
        if i_domain != d && !i_domain.ends_with(&format!(".{d}")) {
            return Err(DkimError::IdentityDomain { i, d });
        }
        let num = |t: &'static str| -> Result<Option<u64>, DkimError> {
            get(t)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| DkimError::Syntax {
                        detail: format!("{t}={v} is not a number"),
                    })
                })
                .transpose()
        };
        let (l, t, x) = (num("l")?, num("t")?, num("x")?);
        if let (Some(t), Some(x)) = (t, x)
            && x < t
        {
            return Err(DkimError::ExpiryBeforeTimestamp { t, x });
        }
        if let Some(q) = get("q")
            && !q
                .split(':')
                .any(|m| m.trim().eq_ignore_ascii_case("dns/txt"))
        {
            return Err(DkimError::Syntax {
                detail: format!("q={q}: only dns/txt is defined"),
            });
        }
        Ok(Signature {
            a,
            b,
            bh,
            header_canon,
            body_canon,
            d,
            h,
            i,
            l,
            s: req("s")?.to_string(),
            t,
            x,
        })
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6376 §3.4.2, "relaxed" header canonicalisation:
/// "Convert all header field names (not the header field values) to
/// lowercase. ... Unfold all header field continuation lines ... Convert
/// all sequences of one or more WSP characters to a single SP character.
/// ... Delete all WSP characters at the end of each unfolded header field
/// value. Delete any WSP characters remaining before and after the colon
/// separating the header field name from the header field value."
///
/// §3.4.1, "simple": "The "simple" header canonicalization algorithm does
/// not change header fields in any way."
pub fn canonical_header(raw: &[u8], canon: Canon) -> Vec<u8> {
    if canon == Canon::Simple {
        return raw.to_vec();
    }
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name: Vec<u8> = raw[..colon]
        .iter()
        .filter(|&&b| !is_wsp(b))
        .map(u8::to_ascii_lowercase)
        .collect();
    let mut value = Vec::with_capacity(raw.len());
    let mut pending_space = false;
    for &b in raw.get(colon + 1..).unwrap_or(&[]) {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = true,
            _ => {
                if pending_space && !value.is_empty() {
                    value.push(b' ');
                }
                pending_space = false;
                value.push(b);
            }
        }
    }
    let mut out = name;
    out.push(b':');
    out.extend_from_slice(&value);
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 6376 §3.4.3, "simple" body: "ignores all empty lines at the end of
/// the message body ... If there is no body or no trailing CRLF on the
/// message body, a CRLF is added."
///
/// §3.4.4, "relaxed" body: "Ignore all whitespace at the end of lines. ...
/// Reduce all sequences of WSP within a line to a single SP character. ...
/// Ignore all empty lines at the end of the message body. ... If the body
/// is non-empty but does not end with a CRLF, a CRLF is added."
pub fn canonical_body(body: &[u8], canon: Canon) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    match canon {
        Canon::Simple => out.extend_from_slice(body),
        Canon::Relaxed => {
            for line in split_lines(body) {
                let (content, eol) = match line.strip_suffix(b"\r\n") {
                    Some(c) => (c, true),
                    None => (line, false),
                };
                let mut pending = false;
                for &b in content {
                    if is_wsp(b) {
                        pending = true;
                    } else {
                        if pending {
                            out.push(b' ');
                        }
                        pending = false;
                        out.push(b);
                    }
                }
                if eol {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" && canon == Canon::Relaxed {
        out.clear();
    }
    if out.is_empty() && canon == Canon::Simple {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn split_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |p| p + 2);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// The field with the `b=` tag's value removed, as §3.7 requires: "The
/// DKIM-Signature header field that exists (verifying) or will be inserted
/// (signing) in the message, with the value of the "b=" tag (including all
/// surrounding whitespace) deleted (i.e., treated as the empty string)".
pub fn strip_b_value(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
    let mut out = raw[..colon].to_vec();
    let value = &raw[colon..];
    let mut first = true;
    for seg in value.split(|&b| b == b';') {
        if !first {
            out.push(b';');
        }
        first = false;
        let eq = seg.iter().position(|&b| b == b'=');
        let is_b = eq.is_some_and(|e| {
            let name: Vec<u8> = seg[..e]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            name == b"b"
        });
        match (is_b, eq) {
            (true, Some(e)) => {
                out.extend_from_slice(&seg[..=e]);
                // Keep the field's final CRLF if the tag was last.
                if seg.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            _ => out.extend_from_slice(seg),
        }
    }
    out
}

/// RFC 6376 §3.7 "Computing the Message Hashes": the header hash input.
/// "The header fields specified by the "h=" tag, in the order specified in
/// that tag, and canonicalized using the header canonicalization algorithm
/// specified in the "c=" tag. Each header field MUST be terminated with a
/// single CRLF." followed by the DKIM-Signature field itself, with `b=`
/// emptied and "without a trailing CRLF".
///
/// §5.4.2: "signers and verifiers ... MUST use the last (bottom-most)
/// instance of a header field that appears more than once, then the next
/// above it". A name with no instance left contributes nothing ("nonexistent
/// header fields do not contribute to the signature computation").
pub fn signing_input(
    headers: &[Header],
    signed: &[String],
    canon: Canon,
    signature_field: &[u8],
) -> Vec<u8> {
    let mut used = vec![false; headers.len()];
    let mut out = Vec::new();
    for name in signed {
        if let Some(idx) = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].is(name))
        {
            used[idx] = true;
            out.extend_from_slice(&canonical_header(&headers[idx].raw, canon));
        }
    }
    let mut sig = canonical_header(&strip_b_value(signature_field), canon);
    if sig.ends_with(b"\r\n") {
        sig.truncate(sig.len() - 2);
    }
    out.extend_from_slice(&sig);
    out
}

/// The body hash: SHA-256 of the canonical body, cut to `l=` octets when
/// given (§3.5 l=: "Body length count ... the number of octets in the body
/// of the email after canonicalization included in the cryptographic hash").
pub fn body_hash(body: &[u8], canon: Canon, l: Option<u64>) -> Result<Vec<u8>, DkimError> {
    let c = canonical_body(body, canon);
    let part = match l {
        None => &c[..],
        Some(l) => {
            let n = usize::try_from(l).unwrap_or(usize::MAX);
            if n > c.len() {
                return Err(DkimError::BodyLength { l, len: c.len() });
            }
            &c[..n]
        }
    };
    Ok(Sha256::digest(part).to_vec())
}

/// The outcome for one `DKIM-Signature`.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Index of the field among the message's header fields.
    pub index: usize,
    pub result: DkimResult,
    /// The parsed signature, when it parsed.
    pub signature: Option<Signature>,
    /// `d=` even when the rest did not parse, for reports.
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub error: Option<DkimError>,
    /// `l=` leaves this many octets of the body unsigned (anyone could have
    /// appended them).
    pub unsigned_body_octets: Option<usize>,
    /// The key record was published with `t=y` (testing).
    pub key_testing: bool,
    /// The RSA modulus size of the key, when the key was an RSA key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_bits: Option<usize>,
}

impl Verdict {
    /// What a receiver accepts but a sender should fix: a key under 2048
    /// bits (RFC 8301 §3.2: "Signers SHOULD use RSA keys of at least 2048
    /// bits"), a key still in testing mode (RFC 6376 §3.6.1 `t=y`:
    /// "Verifiers MUST NOT treat messages from Signers in testing mode
    /// differently from unsigned email").
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(bits) = self.key_bits.filter(|b| (1024..2048).contains(b)) {
            out.push(format!(
                "the key is {bits}-bit RSA; RFC 8301 §3.2 asks signers for at least 2048 bits"
            ));
        }
        if self.key_testing {
            out.push(
                "the key record has t=y (testing): receivers must treat the mail as unsigned (RFC 6376 §3.6.1)".into(),
            );
        }
        out
    }
}

/// Looks up the key for `sig` (RFC 6376 §3.6.2.2: "a single TXT query for
/// `<selector>._domainkey.<domain>`"). Of several TXT records the first that
/// parses is used (§6.1.2: "If the query for the public key returns
/// multiple key records, the Verifier can choose one of the key records or
/// may cycle through the key records").
pub(crate) fn fetch_key(dns: &dyn SpfDns, name: &str) -> Result<DkimKey, DkimError> {
    let name = name.to_string();
    let records = match dns.txt(&name) {
        Ok(r) => r,
        Err(DnsError::NxDomain { .. }) => {
            return Err(DkimError::NoKey {
                name,
                detail: "NXDOMAIN".into(),
            });
        }
        Err(e) => {
            return Err(DkimError::KeyTemporary {
                name,
                detail: e.to_string(),
            });
        }
    };
    if records.is_empty() {
        return Err(DkimError::NoKey {
            name,
            detail: "no TXT record".into(),
        });
    }
    let mut last = None;
    for r in &records {
        match String::from_utf8_lossy(r).parse::<DkimKey>() {
            Ok(k) => return Ok(k),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(DkimError::BadKeyRecord {
        name,
        detail: last.unwrap_or_default(),
    })
}

/// RFC 6376 §6.1 "Extract Signatures from the Message", §6.1.1 "Validate
/// the Signature Header Field", §6.1.2 "Get the Public Key", §6.1.3
/// "Compute the Verification": verifies the `DKIM-Signature` at
/// `msg.headers[index]` as of `now` (unix seconds).
pub fn verify_one(dns: &dyn SpfDns, msg: &Message, index: usize, now: u64) -> Verdict {
    let field = &msg.headers[index];
    let value = field.value();
    let tags = tag_list(&value).unwrap_or_default();
    let tag = |t: &str| {
        tags.iter()
            .find(|(n, _)| *n == t)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut verdict = Verdict {
        index,
        result: DkimResult::PermError,
        signature: None,
        domain: tag("d"),
        selector: tag("s"),
        error: None,
        unsigned_body_octets: None,
        key_testing: false,
        key_bits: None,
    };
    let outcome = (|| -> Result<(), DkimError> {
        let sig = Signature::parse(&value)?;
        verdict.signature = Some(sig.clone());
        // §3.5 x=: "Signatures MAY be considered invalid if the verification
        // time at the Verifier is past the expiration date."
        if let Some(x) = sig.x
            && x < now
        {
            return Err(DkimError::Expired {
                expired: crate::clock::format_time(x as i64),
                now: crate::clock::format_time(now as i64),
            });
        }
        let name = sig.key_name();
        let key = fetch_key(dns, &name)?;
        verdict.key_testing = key.testing();
        verdict.key_bits = key.rsa_bits();
        check_key(&key, sig.a, Some((&sig.i, &sig.d)), &name)?;
        if !msg.headers_only {
            let computed = body_hash(&msg.body, sig.body_canon, sig.l)?;
            let computed_b64 = STANDARD.encode(&computed);
            if computed_b64 != sig.bh {
                return Err(DkimError::BodyHash {
                    computed: computed_b64,
                    signed: sig.bh.clone(),
                });
            }
        }
        // §3.7: the header hash covers the DKIM-Signature field itself,
        // bh= included, so it can be checked without the body.
        let input = signing_input(&msg.headers, &sig.h, sig.header_canon, &field.raw);
        let digest = Sha256::digest(&input);
        verify_signature(&key, sig.a, &sig.b, &name, &digest)?;
        if msg.headers_only {
            return Err(DkimError::BodyUnavailable);
        }
        if let Some(l) = sig.l {
            let total = canonical_body(&msg.body, sig.body_canon).len();
            let unsigned = total.saturating_sub(usize::try_from(l).unwrap_or(usize::MAX));
            if unsigned > 0 {
                verdict.unsigned_body_octets = Some(unsigned);
                return Err(DkimError::PartialBody { l, unsigned });
            }
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => verdict.result = DkimResult::Pass,
        Err(e) => {
            verdict.result = e.result();
            verdict.error = Some(e);
        }
    }
    verdict
}

/// §3.6.1 key tags checked against the signature.
/// `identity` is `(i=, d=)` for the `t=s` check; ARC has no such identity.
pub(crate) fn check_key(
    key: &DkimKey,
    a: Algorithm,
    identity: Option<(&str, &str)>,
    name: &str,
) -> Result<(), DkimError> {
    let name = name.to_string();
    if key.is_revoked() {
        return Err(DkimError::Revoked { name });
    }
    if key.key_type() != a.key_type() {
        return Err(DkimError::KeyTypeMismatch {
            name,
            key_type: key.key_type().as_str(),
            algorithm: a.as_str(),
        });
    }
    if !key.h.is_empty() && !key.h.iter().any(|h| h.eq_ignore_ascii_case("sha256")) {
        return Err(DkimError::KeyHash {
            name,
            allowed: key.h.join(":"),
        });
    }
    if !key.s.is_empty()
        && !key
            .s
            .iter()
            .any(|s| s == "*" || s.eq_ignore_ascii_case("email"))
    {
        return Err(DkimError::KeyService {
            name,
            services: key.s.join(":"),
        });
    }
    // §3.6.1 t=s: "Any DKIM-Signature header fields using the "i=" tag MUST
    // have the same domain value on the right-hand side of the "@" in the
    // "i=" tag and the value of the "d=" tag."
    if let Some((i, d)) = identity
        && key.t.contains(&KeyFlag::Strict)
    {
        let i_dom = i.rsplit_once('@').map_or("", |(_, d)| d);
        if !i_dom.eq_ignore_ascii_case(d) {
            return Err(DkimError::StrictIdentity {
                name,
                i: i.to_string(),
            });
        }
    }
    Ok(())
}

/// RFC 6376 §3.3.1 (rsa-sha256: "RSASSA-PKCS1-v1_5 ... with SHA-256 as the
/// hash algorithm"); RFC 8463 §3 (ed25519-sha256: "The Ed25519-SHA256
/// signing algorithm computes a message hash as defined in Section 3 of
/// [RFC6376] using SHA-256 as the hash-alg. It signs the hash with the
/// PureEdDSA variant Ed25519").
pub(crate) fn verify_signature(
    key: &DkimKey,
    a: Algorithm,
    b: &[u8],
    name: &str,
    digest: &[u8],
) -> Result<(), DkimError> {
    let bad = |detail: String| DkimError::BadKey {
        name: name.to_string(),
        detail,
    };
    match a {
        Algorithm::RsaSha256 => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::pkcs8::DecodePublicKey;
            let bits = key.rsa_bits().unwrap_or(0);
            if bits < 1024 {
                if bits == 0 {
                    return Err(bad("not an RSA public key".into()));
                }
                return Err(DkimError::KeyTooSmall {
                    name: name.to_string(),
                    bits,
                });
            }
            let pk = rsa::PublicKey::from_public_key_der(&key.p)
                .or_else(|_| rsa::PublicKey::from_pkcs1_der(&key.p))
                .map_err(|e| bad(e.to_string()))?;
            pk.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, b)
                .map_err(|_| DkimError::Signature)
        }
        Algorithm::Ed25519Sha256 => {
            let bytes: &[u8; 32] = key
                .p
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("{} bytes, not 32", key.p.len())))?;
            let vk =
                ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
            let s = ed25519_dalek::Signature::from_slice(b).map_err(|_| DkimError::Signature)?;
            vk.verify_strict(digest, &s)
                .map_err(|_| DkimError::Signature)
        }
    }
}

/// Verifies every `DKIM-Signature` of `msg`, top first.
pub fn verify_all(dns: &dyn SpfDns, msg: &Message, now: u64) -> Vec<Verdict> {
    (0..msg.headers.len())
        .filter(|&i| msg.headers[i].is("DKIM-Signature"))
        .map(|i| verify_one(dns, msg, i, now))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_1024_bit_key_is_a_warning_not_a_failure() {
        let mut v = Verdict {
            index: 0,
            result: DkimResult::Pass,
            signature: None,
            domain: None,
            selector: None,
            error: None,
            unsigned_body_octets: None,
            key_testing: false,
            key_bits: Some(1024),
        };
        let w = v.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("1024-bit RSA") && w[0].contains("RFC 8301"),
            "{w:?}"
        );
        v.key_bits = Some(2048);
        assert!(v.warnings().is_empty());
    }

    use super::*;

    #[test]
    fn relaxed_header() {
        for (input, want) in [
            (
                &b"SubJect :  A  \t b \r\n c \r\n"[..],
                &b"subject:A b c\r\n"[..],
            ),
            (b"To:x\r\n", b"to:x\r\n"),
            (b"X-Empty:   \r\n", b"x-empty:\r\n"),
        ] {
            assert_eq!(
                String::from_utf8_lossy(&canonical_header(input, Canon::Relaxed)),
                String::from_utf8_lossy(want)
            );
        }
        assert_eq!(
            canonical_header(b"SubJect : A\r\n", Canon::Simple),
            b"SubJect : A\r\n"
        );
    }

    /// RFC 6376 §3.4.5 example.
    #[test]
    fn rfc_example_bodies() {
        let body = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(canonical_body(body, Canon::Relaxed), b" C\r\nD E\r\n");
        assert_eq!(canonical_body(body, Canon::Simple), b" C \r\nD \t E\r\n");
        assert_eq!(canonical_body(b"", Canon::Simple), b"\r\n");
        assert_eq!(canonical_body(b"", Canon::Relaxed), b"");
        assert_eq!(canonical_body(b"\r\n\r\n", Canon::Relaxed), b"");
        assert_eq!(canonical_body(b"x", Canon::Simple), b"x\r\n");
    }

    /// The empty-body hashes given in RFC 6376 §3.4.3 / §3.4.4 (errata).
    #[test]
    fn empty_body_hashes() {
        let h = |c| STANDARD.encode(body_hash(b"", c, None).unwrap());
        assert_eq!(
            h(Canon::Simple),
            "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="
        );
        assert_eq!(
            h(Canon::Relaxed),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(matches!(
            body_hash(b"ab\r\n", Canon::Simple, Some(5)),
            Err(DkimError::BodyLength { l: 5, len: 4 })
        ));
    }

    #[test]
    fn strips_b_but_not_bh() {
        let raw = b"DKIM-Signature: v=1; bh=abc=; b=XYZ\r\n\t123; d=x\r\n";
        assert_eq!(
            strip_b_value(raw),
            b"DKIM-Signature: v=1; bh=abc=; b=; d=x\r\n"
        );
        let last = b"DKIM-Signature: v=1; b=XYZ\r\n";
        assert_eq!(strip_b_value(last), b"DKIM-Signature: v=1; b=\r\n");
    }

    #[test]
    fn signature_tags() {
        let ok = "v=1; a=rsa-sha256; c=relaxed; d=Example.COM; s=sel; h=from:to; bh=AAAA; b=AAAA";
        let s = Signature::parse(ok).unwrap();
        assert_eq!(
            (s.header_canon, s.body_canon),
            (Canon::Relaxed, Canon::Simple)
        );
        assert_eq!(s.d, "example.com");
        assert_eq!(s.i, "@example.com");
        assert_eq!(s.key_name(), "sel._domainkey.example.com");
        for (bad, want) in [
            ("v=1; a=rsa-sha256; d=x; s=s; h=to; bh=AAAA; b=AAAA", "From"),
            (
                "v=1; a=rsa-sha1; d=x; s=s; h=from; bh=AAAA; b=AAAA",
                "RFC 8301",
            ),
            ("v=1; a=rsa-sha256; d=x; s=s; h=from; bh=AAAA", "`b=`"),
            (
                "v=1; a=rsa-sha256; d=x.example; i=@y.example; s=s; h=from; bh=AAAA; b=AAAA",
                "not in the signing domain",
            ),
            (
                "v=1; a=rsa-sha256; d=x; s=s; h=from; bh=AAAA; b=AAAA; t=10; x=5",
                "after its expiry",
            ),
            (
                "v=2; a=rsa-sha256; d=x; s=s; h=from; bh=AAAA; b=AAAA",
                "version",
            ),
            (
                "v=1; v=1; a=rsa-sha256; d=x; s=s; h=from; bh=AAAA; b=AAAA",
                "more than once",
            ),
        ] {
            let e = Signature::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
