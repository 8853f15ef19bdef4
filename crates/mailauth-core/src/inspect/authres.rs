//! The authentication results other servers wrote into the message:
//! `Authentication-Results` (RFC 8601) and the ARC set headers (RFC 8617),
//! parsed into method / result / properties so they can be compared with
//! what `inspect` computes now.
//!
//! This module only reads; it does not verify ARC seals cryptographically
//! and does not decide whom to trust (the caller passes the trusted
//! authserv-ids).

use serde::Serialize;

/// One `method=result` of an Authentication-Results field.
///
/// RFC 8601 §2.2:
/// ```text
/// resinfo = [CFWS] ";" methodspec [ CFWS reasonspec ]
///           [ CFWS 1*propspec ]
/// methodspec = [CFWS] method [CFWS] "=" [CFWS] result
/// reasonspec = "reason" [CFWS] "=" [CFWS] value
/// propspec = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
/// ```
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MethodResult {
    /// Lower-cased method (`spf`, `dkim`, `dmarc`, `arc`, `iprev`…).
    pub method: String,
    /// Lower-cased result word.
    pub result: String,
    pub reason: Option<String>,
    /// `ptype.property` → value, in order (`header.d`, `smtp.mailfrom`…).
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One Authentication-Results (or ARC-Authentication-Results) field.
///
/// RFC 8601 §2.2: `authres-header-field = "Authentication-Results:"
/// authres-payload`; `authres-payload = [CFWS] authserv-id [ CFWS
/// authres-version ] ( no-result / 1*resinfo ) [CFWS] CRLF`.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    /// Index among the message's header fields.
    pub index: usize,
    pub authserv_id: String,
    /// For ARC-Authentication-Results, the `i=` instance.
    pub instance: Option<u32>,
    pub results: Vec<MethodResult>,
    /// The authserv-id is one the user trusts (RFC 8601 §5: results from
    /// any other are claims to be ignored).
    pub trusted: bool,
}

/// Removes RFC 5322 comments, keeping quoted strings intact.
fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let (mut depth, mut quoted, mut esc) = (0usize, false, false);
    for c in s.chars() {
        if esc {
            if depth == 0 {
                out.push(c);
            }
            esc = false;
            continue;
        }
        match c {
            '\\' => {
                esc = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Splits on `sep` outside quoted strings.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// `key=value` words of one resinfo, tolerating spaces around `=`.
fn pairs(s: &str) -> Vec<(String, String)> {
    let s = s.replace(" =", "=").replace("= ", "=");
    let mut out = Vec::new();
    let mut quoted = false;
    let mut cur = String::new();
    let mut words = Vec::new();
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
            continue;
        }
        if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    for w in words {
        if let Some((k, v)) = w.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// Parses the value of an Authentication-Results field; for an
/// ARC-Authentication-Results field, the leading `i=N;` is read first.
pub fn parse(index: usize, value: &str, arc: bool) -> Option<AuthResults> {
    let clean = strip_comments(value);
    let mut parts = split_unquoted(&clean, ';').into_iter();
    let mut instance = None;
    if arc {
        let first = parts.next()?;
        let (k, v) = first.trim().split_once('=')?;
        if k.trim() != "i" {
            return None;
        }
        instance = v.trim().parse().ok();
    }
    let head = parts.next()?;
    // authserv-id [ CFWS authres-version ]
    let authserv_id = head.split_whitespace().next()?.to_ascii_lowercase();
    let mut results = Vec::new();
    for part in parts {
        let mut kv = pairs(&part).into_iter();
        let Some((method, result)) = kv.next() else {
            continue;
        };
        let method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
        if method == "none" || method.is_empty() {
            continue;
        }
        let mut r = MethodResult {
            method,
            result: result.to_ascii_lowercase(),
            reason: None,
            props: Vec::new(),
        };
        for (k, v) in kv {
            if k.eq_ignore_ascii_case("reason") {
                r.reason = Some(v);
            } else if k.contains('.') {
                r.props.push((k.to_ascii_lowercase(), v));
            }
        }
        results.push(r);
    }
    Some(AuthResults {
        index,
        authserv_id,
        instance,
        results,
        trusted: false,
    })
}

/// One ARC set (RFC 8617 §4.1: "ARC-Authentication-Results ...
/// ARC-Message-Signature ... ARC-Seal", all with the same `i=`).
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArcSet {
    pub instance: u32,
    pub aar: Option<AuthResults>,
    pub has_ams: bool,
    /// `cv=` of the ARC-Seal.
    pub cv: Option<String>,
    /// `d=` of the ARC-Seal.
    pub sealer: Option<String>,
}

/// The chain's structural state (RFC 8617 §5.2 steps 1–3, without the
/// cryptographic checks): "none" without sets, "fail" when an instance is
/// missing, duplicated, incomplete, or a `cv=` is wrong for its place
/// (§5.1.1: "i=1 ... cv=none"; later sets "cv=pass").
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArcChain {
    pub sets: Vec<ArcSet>,
    pub structure: String,
    pub problems: Vec<String>,
}

fn tag<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').find_map(|seg| {
        let (k, v) = seg.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// Gathers ARC sets from `(index, name, value)` header fields.
pub fn arc_chain(fields: &[(usize, String, String)]) -> ArcChain {
    let mut sets: Vec<ArcSet> = Vec::new();
    let mut problems = Vec::new();
    let set_for = |i: u32, sets: &mut Vec<ArcSet>| -> usize {
        if let Some(p) = sets.iter().position(|s| s.instance == i) {
            return p;
        }
        sets.push(ArcSet {
            instance: i,
            aar: None,
            has_ams: false,
            cv: None,
            sealer: None,
        });
        sets.len() - 1
    };
    for (index, name, value) in fields {
        let Some(i) = tag(value, "i").and_then(|v| v.parse::<u32>().ok()) else {
            problems.push(format!("{name} without a valid i= tag"));
            continue;
        };
        let p = set_for(i, &mut sets);
        let s = &mut sets[p];
        match name.to_ascii_lowercase().as_str() {
            "arc-authentication-results" => {
                if s.aar.is_some() {
                    problems.push(format!("two ARC-Authentication-Results with i={i}"));
                }
                s.aar = parse(*index, value, true);
            }
            "arc-message-signature" => {
                if s.has_ams {
                    problems.push(format!("two ARC-Message-Signature with i={i}"));
                }
                s.has_ams = true;
            }
            _ => {
                if s.cv.is_some() {
                    problems.push(format!("two ARC-Seal with i={i}"));
                }
                s.cv = Some(tag(value, "cv").unwrap_or("").to_ascii_lowercase());
                s.sealer = tag(value, "d").map(str::to_ascii_lowercase);
            }
        }
    }
    sets.sort_by_key(|s| s.instance);
    for (n, s) in sets.iter().enumerate() {
        let want = n as u32 + 1;
        if s.instance != want {
            problems.push(format!("ARC instance i={want} is missing"));
            break;
        }
        if s.aar.is_none() || !s.has_ams || s.cv.is_none() {
            problems.push(format!("ARC set i={} is incomplete", s.instance));
        }
        let cv = s.cv.as_deref().unwrap_or("");
        let ok = if s.instance == 1 {
            cv == "none"
        } else {
            cv == "pass"
        };
        if !ok && s.cv.is_some() {
            problems.push(format!("ARC-Seal i={} has cv={cv}", s.instance));
        }
    }
    if sets.len() > 50 {
        problems.push("more than 50 ARC sets (RFC 8617 §4.2.1)".into());
    }
    let structure = if sets.is_empty() {
        "none"
    } else if problems.is_empty() {
        "valid structure"
    } else {
        "fail"
    };
    ArcChain {
        sets,
        structure: structure.to_string(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results() {
        let v = "mx.example.net 1; spf=pass (sender ok) smtp.mailfrom=a@b.example; dkim=fail reason=\"bad; sig\" header.d=b.example header.b=abcd1234; dmarc=fail (p=none; dis=none) header.from=b.example";
        let ar = parse(0, v, false).unwrap();
        assert_eq!(ar.authserv_id, "mx.example.net");
        let m: Vec<_> = ar
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(m, [("spf", "pass"), ("dkim", "fail"), ("dmarc", "fail")]);
        assert_eq!(ar.results[1].reason.as_deref(), Some("bad; sig"));
        assert_eq!(ar.results[1].prop("header.d"), Some("b.example"));
        assert_eq!(ar.results[0].prop("smtp.mailfrom"), Some("a@b.example"));
        assert!(
            parse(0, "mx.example.net; none", false)
                .unwrap()
                .results
                .is_empty()
        );
    }

    #[test]
    fn arc_structure() {
        let f = |i: u32, cv: &str| {
            vec![
                (
                    0,
                    "ARC-Seal".to_string(),
                    format!("i={i}; a=rsa-sha256; cv={cv}; d=x.example; s=s; b=AA"),
                ),
                (
                    1,
                    "ARC-Message-Signature".to_string(),
                    format!("i={i}; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA; b=AA"),
                ),
                (
                    2,
                    "ARC-Authentication-Results".to_string(),
                    format!("i={i}; x.example; spf=pass smtp.mailfrom=a@b"),
                ),
            ]
        };
        let mut ok = f(1, "none");
        ok.extend(f(2, "pass"));
        assert_eq!(arc_chain(&ok).structure, "valid structure");
        let mut bad = f(1, "none");
        bad.extend(f(3, "pass"));
        let c = arc_chain(&bad);
        assert_eq!(c.structure, "fail");
        assert!(c.problems[0].contains("i=2 is missing"), "{:?}", c.problems);
        assert_eq!(arc_chain(&f(1, "pass")).structure, "fail");
    }
}
