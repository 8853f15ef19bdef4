//! ARC chain validation (RFC 8617 §5.2): the structure of the sets, the
//! most recent ARC-Message-Signature, and every ARC-Seal, with the DKIM
//! machinery of [`super::dkim`] (same canonicalisation, key records and
//! algorithms).
//!
//! This module computes the chain validation status only; it does not
//! seal, and it leaves judging whether to trust a sealer to the reader.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dkim::{
    Algorithm, Canon, DkimError, body_hash, canonical_header, check_key, fetch_key, signing_input,
    strip_b_value, verify_signature,
};
use super::message::Message;
use crate::record::dkim::tag_list;
use crate::spf::SpfDns;

/// RFC 8617 §4.4: the chain validation status.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArcVerdict {
    /// `none`, `pass` or `fail`.
    pub cv: &'static str,
    /// Number of sets.
    pub sets: u32,
    /// Why the chain fails.
    pub reason: Option<String>,
    /// The sealing domains, oldest first.
    pub sealers: Vec<String>,
}

struct Set {
    aar: Option<usize>,
    ams: Option<usize>,
    seal: Option<usize>,
}

fn tags(value: &str) -> Vec<(String, String)> {
    tag_list(value)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(t: &'a [(String, String)], name: &str) -> Option<&'a str> {
    t.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn algorithm(t: &[(String, String)]) -> Result<Algorithm, DkimError> {
    match get(t, "a").map(str::to_ascii_lowercase).as_deref() {
        Some("rsa-sha256") => Ok(Algorithm::RsaSha256),
        Some("ed25519-sha256") => Ok(Algorithm::Ed25519Sha256),
        Some("rsa-sha1") => Err(DkimError::Sha1),
        other => Err(DkimError::Algorithm {
            found: other.unwrap_or("").to_string(),
        }),
    }
}

fn b64(t: &[(String, String)], name: &'static str) -> Result<Vec<u8>, DkimError> {
    let v = get(t, name).ok_or(DkimError::MissingTag { tag: name })?;
    let clean: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(clean).map_err(|e| DkimError::Syntax {
        detail: format!("{name}= is not base64: {e}"),
    })
}

/// Looks up the key named by `d=` / `s=` and checks `b=` over `digest`.
fn check(
    dns: &dyn SpfDns,
    t: &[(String, String)],
    a: Algorithm,
    digest: &[u8],
) -> Result<(), DkimError> {
    let d = get(t, "d").ok_or(DkimError::MissingTag { tag: "d" })?;
    let s = get(t, "s").ok_or(DkimError::MissingTag { tag: "s" })?;
    let name = format!(
        "{s}._domainkey.{}",
        d.trim_end_matches('.').to_ascii_lowercase()
    );
    let key = fetch_key(dns, &name)?;
    check_key(&key, a, None, &name)?;
    verify_signature(&key, a, &b64(t, "b")?, &name, digest)
}

/// RFC 8617 §4.1.2: "The ARC-Message-Signature header field ... [is]
/// syntactically and semantically identical to a DKIM-Signature header
/// field", without `v=`, with `i=` the instance. §5.2 step 5: "Validate
/// the AMS with the greatest instance value (most recent)."
fn verify_ams(dns: &dyn SpfDns, msg: &Message, idx: usize) -> Result<(), DkimError> {
    let t = tags(&msg.headers[idx].value());
    let a = algorithm(&t)?;
    let c = get(&t, "c").unwrap_or("simple/simple").to_ascii_lowercase();
    let (hc, bc) = c.split_once('/').unwrap_or((c.as_str(), "simple"));
    let canon = |x: &str| {
        if x.trim() == "relaxed" {
            Canon::Relaxed
        } else {
            Canon::Simple
        }
    };
    let bh = b64(&t, "bh")?;
    let l = get(&t, "l").and_then(|v| v.parse().ok());
    let computed = body_hash(&msg.body, canon(bc), l)?;
    if !msg.headers_only && computed != bh {
        return Err(DkimError::BodyHash {
            computed: STANDARD.encode(&computed),
            signed: STANDARD.encode(&bh),
        });
    }
    let h: Vec<String> = get(&t, "h")
        .ok_or(DkimError::MissingTag { tag: "h" })?
        .split(':')
        .map(|n| n.trim().to_string())
        .collect();
    let input = signing_input(&msg.headers, &h, canon(hc), &msg.headers[idx].raw);
    check(dns, &t, a, &Sha256::digest(&input))
}

/// RFC 8617 §5.1.1: the ARC-Seal signs, "in increasing instance order",
/// each set's ARC-Authentication-Results, ARC-Message-Signature and
/// ARC-Seal, "canonicalized using the relaxed header canonicalization",
/// the seal being made or checked last, with its `b=` empty and no final
/// CRLF.
fn verify_seal(
    dns: &dyn SpfDns,
    msg: &Message,
    sets: &[Set],
    upto: usize,
) -> Result<(), DkimError> {
    let mut input = Vec::new();
    for (n, set) in sets[..=upto].iter().enumerate() {
        for idx in [set.aar, set.ams].into_iter().flatten() {
            input.extend_from_slice(&canonical_header(&msg.headers[idx].raw, Canon::Relaxed));
        }
        let Some(seal) = set.seal else { continue };
        if n == upto {
            let mut last = canonical_header(&strip_b_value(&msg.headers[seal].raw), Canon::Relaxed);
            if last.ends_with(b"\r\n") {
                last.truncate(last.len() - 2);
            }
            input.extend_from_slice(&last);
        } else {
            input.extend_from_slice(&canonical_header(&msg.headers[seal].raw, Canon::Relaxed));
        }
    }
    let seal = sets[upto].seal.ok_or(DkimError::MissingTag { tag: "b" })?;
    let t = tags(&msg.headers[seal].value());
    let a = algorithm(&t)?;
    check(dns, &t, a, &Sha256::digest(&input))
}

/// RFC 8617 §5.2 "Validator Actions", steps 1–6.
pub fn verify_chain(dns: &dyn SpfDns, msg: &Message) -> ArcVerdict {
    let mut sets: Vec<Set> = Vec::new();
    let mut problem: Option<String> = None;
    for (idx, h) in msg.headers.iter().enumerate() {
        let kind = if h.is("ARC-Authentication-Results") {
            0
        } else if h.is("ARC-Message-Signature") {
            1
        } else if h.is("ARC-Seal") {
            2
        } else {
            continue;
        };
        let v = h.value();
        let inst = v
            .split(';')
            .find_map(|seg| {
                let (k, val) = seg.split_once('=')?;
                (k.trim() == "i").then(|| val.trim().parse::<usize>().ok())?
            })
            .filter(|&i| (1..=50).contains(&i));
        let Some(i) = inst else {
            problem.get_or_insert(format!("{} without a valid i=", h.name));
            continue;
        };
        while sets.len() < i {
            sets.push(Set {
                aar: None,
                ams: None,
                seal: None,
            });
        }
        let slot = match kind {
            0 => &mut sets[i - 1].aar,
            1 => &mut sets[i - 1].ams,
            _ => &mut sets[i - 1].seal,
        };
        if slot.is_some() {
            problem.get_or_insert(format!("two {} fields with i={i}", h.name));
        }
        *slot = Some(idx);
    }
    let n = sets.len() as u32;
    let sealers: Vec<String> = sets
        .iter()
        .filter_map(|s| s.seal)
        .filter_map(|i| {
            let t = tags(&msg.headers[i].value());
            get(&t, "d").map(str::to_ascii_lowercase)
        })
        .collect();
    let fail = |reason: String| ArcVerdict {
        cv: "fail",
        sets: n,
        reason: Some(reason),
        sealers: sealers.clone(),
    };
    if sets.is_empty() {
        return ArcVerdict {
            cv: "none",
            sets: 0,
            reason: problem,
            sealers,
        };
    }
    if let Some(p) = problem {
        return fail(p);
    }
    for (k, s) in sets.iter().enumerate() {
        if s.aar.is_none() || s.ams.is_none() || s.seal.is_none() {
            return fail(format!("ARC set i={} is incomplete", k + 1));
        }
        // §5.2 step 3: "If the cv value of the highest instance ARC-Seal
        // header field is "fail" ... return cv=fail"; §5.1.1: i=1 carries
        // cv=none, every later set cv=pass.
        let seal = s.seal.unwrap_or(0);
        let t = tags(&msg.headers[seal].value());
        let cv = get(&t, "cv").unwrap_or("").to_ascii_lowercase();
        let want = if k == 0 { "none" } else { "pass" };
        if cv != want {
            return fail(format!("ARC-Seal i={} has cv={cv}, expected {want}", k + 1));
        }
    }
    let last = sets.len() - 1;
    if let Some(ams) = sets[last].ams
        && let Err(e) = verify_ams(dns, msg, ams)
    {
        return fail(format!("ARC-Message-Signature i={}: {e}", last + 1));
    }
    for k in (0..sets.len()).rev() {
        if let Err(e) = verify_seal(dns, msg, &sets, k) {
            return fail(format!("ARC-Seal i={}: {e}", k + 1));
        }
    }
    ArcVerdict {
        cv: "pass",
        sets: n,
        reason: msg.headers_only.then(|| {
            "the seals and the header signature verify; the body hash of the newest ARC-Message-Signature was not checked (headers-only copy)".to_string()
        }),
        sealers,
    }
}
