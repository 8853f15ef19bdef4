//! MTA-STS (RFC 8461): the `_mta-sts.<domain>` TXT record ([`MtaSts`],
//! §3.1) and the policy file served at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` ([`MtaStsPolicy`],
//! §3.2), each with parsing and canonical rendering, plus MX pattern
//! matching (§4.1).
//!
//! It also derives a policy id from a policy's content ([`policy_id`]), so
//! that a changed policy always comes with a changed id. This module does
//! not fetch or serve the policy file, nor check certificates; it only
//! reads and writes the two texts.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Name;

/// Errors from parsing an MTA-STS TXT record or policy file. Every message
/// names the field and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MtaStsError {
    #[error("an MTA-STS record must start with `v=STSv1`, found `{found}`")]
    Version { found: String },
    #[error("malformed MTA-STS field `{field}`: expected `name=value`")]
    Syntax { field: String },
    #[error("MTA-STS field `{field}` appears more than once")]
    Duplicate { field: String },
    #[error("MTA-STS field `{field}` has invalid value `{value}`: expected {expected}")]
    Value {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("MTA-STS {what} has no `{field}` field")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
    #[error("MTA-STS policy line {line} is malformed: `{text}` (expected `name: value`)")]
    PolicyLine { line: usize, text: String },
    /// A field of the policy file is wrong; `line` counts from 1.
    #[error("MTA-STS policy line {line}: {error}")]
    AtLine {
        line: usize,
        #[source]
        error: Box<MtaStsError>,
    },
}

impl MtaStsError {
    /// The policy line at fault, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            MtaStsError::PolicyLine { line, .. } | MtaStsError::AtLine { line, .. } => Some(*line),
            _ => None,
        }
    }
}

fn value_err(field: &str, value: &str, expected: &'static str) -> MtaStsError {
    MtaStsError::Value {
        field: field.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// `ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`
fn ext_name(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `ext-value = 1*(%x21-3A / %x3C / %x3E-7E)` (no `=`, `;`, space or
/// control characters).
fn ext_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21..=0x3a | 0x3c | 0x3e..=0x7e))
}

/// The `_mta-sts` TXT record.
///
/// RFC 8461 §3.1:
/// ```text
/// sts-text-record = sts-version 1*(sts-field-delim sts-field)
///                   [sts-field-delim]
/// sts-field       = sts-id /                   ; Note that sts-id record
///                   sts-extension              ; is required.
/// sts-field-delim = *WSP ";" *WSP
/// sts-version     = %s"v=STSv1"
/// sts-id          = %s"id=" 1*32(ALPHA / DIGIT)  ; id=...
/// sts-extension   = sts-ext-name "=" sts-ext-value ; name=value
/// sts-ext-name    = (ALPHA / DIGIT)
///                   *31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
///                   ; chars excluding "=", ";", SP, and control chars
/// ```
/// Everything is case-sensitive (`%s`) and there is no space around `=`.
/// Extensions are kept in order. Canonical rendering:
/// `v=STSv1; id=<id>` then `; name=value` for each extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MtaSts {
    /// 1 to 32 letters and digits; changes whenever the policy changes.
    pub id: String,
    /// `(name, value)` pairs of extension fields, in order.
    pub extensions: Vec<(String, String)>,
}

impl MtaSts {
    /// Checks an `id` value: `1*32(ALPHA / DIGIT)`.
    pub fn valid_id(id: &str) -> bool {
        (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

impl FromStr for MtaSts {
    type Err = MtaStsError;

    fn from_str(s: &str) -> Result<MtaSts, MtaStsError> {
        let trimmed = s.trim_matches([' ', '\t']);
        let mut fields: Vec<&str> = trimmed
            .split(';')
            .map(|f| f.trim_matches([' ', '\t']))
            .collect();
        if fields.len() > 1 && fields.last() == Some(&"") {
            fields.pop();
        }
        if fields.first() != Some(&"v=STSv1") {
            return Err(MtaStsError::Version {
                found: fields.first().unwrap_or(&"").to_string(),
            });
        }
        let mut id = None;
        let mut extensions: Vec<(String, String)> = Vec::new();
        for field in &fields[1..] {
            let Some((name, value)) = field.split_once('=') else {
                return Err(MtaStsError::Syntax {
                    field: field.to_string(),
                });
            };
            if name == "id" {
                if id.is_some() {
                    return Err(MtaStsError::Duplicate { field: "id".into() });
                }
                if !MtaSts::valid_id(value) {
                    return Err(value_err("id", value, "1 to 32 letters and digits"));
                }
                id = Some(value.to_string());
            } else if name == "v" {
                return Err(MtaStsError::Duplicate { field: "v".into() });
            } else {
                if !ext_name(name) {
                    return Err(MtaStsError::Syntax {
                        field: field.to_string(),
                    });
                }
                if !ext_value(value) {
                    return Err(value_err(
                        name,
                        value,
                        "printable characters other than `=`, `;` and space",
                    ));
                }
                extensions.push((name.to_string(), value.to_string()));
            }
        }
        let id = id.ok_or(MtaStsError::Missing {
            what: "record",
            field: "id",
        })?;
        Ok(MtaSts { id, extensions })
    }
}

impl fmt::Display for MtaSts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=STSv1; id={}", self.id)?;
        for (name, value) in &self.extensions {
            write!(f, "; {name}={value}")?;
        }
        Ok(())
    }
}

/// The id of `policy`: the first 32 hexadecimal digits of the SHA-256 of
/// its canonical rendering. RFC 8461 §3.1: the id is "a short string used
/// to track policy updates. This string MUST uniquely identify a given
/// instance of a policy, such that senders can determine when the policy
/// has been updated". The same policy always has the same id (a re-plan
/// changes nothing); any change of mode, mx, max_age or an extension
/// changes it.
pub fn policy_id(policy: &MtaStsPolicy) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(policy.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 8461 §5: "enforce", "testing" or "none".
#[derive(schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    #[default]
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// RFC 8461 §3.2: "max_age: Max lifetime of the policy (plain-text
/// non-negative integer seconds, maximum value of 31557600)."
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// The policy file.
///
/// RFC 8461 §3.2:
/// ```text
/// sts-policy-record        = sts-policy-field *WSP
///                            *(sts-policy-term sts-policy-field *WSP)
///                            [sts-policy-term]
/// sts-policy-field         = sts-policy-version /      ; required once
///                            sts-policy-mode    /      ; required once
///                            sts-policy-max-age /      ; required once
///                            sts-policy-mx /
///                            ; required at least once, except when
///                            ; mode is "none"
///                            sts-policy-extension      ; other fields
/// sts-policy-field-delim   = ":" *WSP
/// sts-policy-version-value = %s"STSv1"
/// sts-policy-mode-value    = %s"testing" / %s"enforce" / %s"none"
/// sts-policy-mx-value      = ["*."] Domain
/// sts-policy-max-age-value = 1*10(DIGIT)
/// sts-policy-ext-name      = (ALPHA / DIGIT)
///                            *31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-policy-term          = LF / CRLF
/// ```
/// Field order is free on parse; unknown fields are kept as extensions.
/// Canonical rendering uses CRLF and the order `version, mode, mx..., max_age`,
/// then extensions, with a final CRLF.
#[derive(schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MtaStsPolicy {
    pub mode: Mode,
    /// MX patterns, lower-cased, in order: a host name, or `*.` and a domain
    /// to match any single leftmost label.
    pub mx: Vec<String>,
    /// Seconds, at most [`MAX_AGE_LIMIT`].
    pub max_age: u64,
    /// `(name, value)` of other fields, in order.
    pub extensions: Vec<(String, String)>,
}

impl MtaStsPolicy {
    /// RFC 8461 §4.1: "a wildcard matches only the left-most label: if `mx`
    /// is `*.example.com`, `mx1.example.com` matches but
    /// `a.mx1.example.com` and `example.com` do not". Case-insensitive, a
    /// trailing dot on `host` is ignored.
    pub fn mx_matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

fn mx_pattern(value: &str) -> Option<String> {
    let domain = value.strip_prefix("*.").unwrap_or(value);
    if domain.is_empty() || domain.ends_with('.') || domain.contains('*') {
        return None;
    }
    // Domain (RFC 5321): labels of letters, digits and hyphens.
    let ok_label = |l: &str| {
        !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if Name::parse(domain).is_err() || !domain.split('.').all(ok_label) {
        return None;
    }
    Some(value.to_ascii_lowercase())
}

/// One line of a policy file: sets the field it holds.
fn policy_line(
    line: &str,
    number: usize,
    version: &mut bool,
    mode: &mut Option<Mode>,
    max_age: &mut Option<u64>,
    mx: &mut Vec<String>,
    extensions: &mut Vec<(String, String)>,
) -> Result<(), MtaStsError> {
    let bad_line = || MtaStsError::PolicyLine {
        line: number,
        text: line.to_string(),
    };
    let Some((name, value)) = line.split_once(':') else {
        return Err(bad_line());
    };
    // sts-policy-field-delim = ":" *WSP, and *WSP after each field
    let value = value.trim_matches([' ', '\t']);
    let dup = |field: &str| MtaStsError::Duplicate {
        field: field.to_string(),
    };
    match name {
        "version" => {
            if *version {
                return Err(dup(name));
            }
            if value != "STSv1" {
                return Err(value_err(name, value, "`STSv1`"));
            }
            *version = true;
        }
        "mode" => {
            if mode.is_some() {
                return Err(dup(name));
            }
            *mode = Some(match value {
                "enforce" => Mode::Enforce,
                "testing" => Mode::Testing,
                "none" => Mode::None,
                _ => return Err(value_err(name, value, "`enforce`, `testing` or `none`")),
            });
        }
        "max_age" => {
            if max_age.is_some() {
                return Err(dup(name));
            }
            let n = (!value.is_empty()
                && value.len() <= 10
                && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .filter(|&n| n <= MAX_AGE_LIMIT)
            .ok_or_else(|| value_err(name, value, "seconds from 0 to 31557600"))?;
            *max_age = Some(n);
        }
        "mx" => {
            mx.push(mx_pattern(value).ok_or_else(|| {
                value_err(name, value, "a host name, optionally starting with `*.`")
            })?)
        }
        _ => {
            if !ext_name(name) {
                return Err(bad_line());
            }
            if value.is_empty() || value.chars().any(|c| c.is_control()) {
                return Err(value_err(name, value, "a non-empty printable value"));
            }
            extensions.push((name.to_string(), value.to_string()));
        }
    }
    Ok(())
}

impl FromStr for MtaStsPolicy {
    type Err = MtaStsError;

    fn from_str(s: &str) -> Result<MtaStsPolicy, MtaStsError> {
        let mut version = false;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        let mut extensions = Vec::new();
        let body = s.strip_suffix('\n').unwrap_or(s);
        for (i, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let at = |error: MtaStsError| match error {
                MtaStsError::PolicyLine { .. } => error,
                other => MtaStsError::AtLine {
                    line: i + 1,
                    error: Box::new(other),
                },
            };
            policy_line(
                line,
                i + 1,
                &mut version,
                &mut mode,
                &mut max_age,
                &mut mx,
                &mut extensions,
            )
            .map_err(at)?;
        }
        let missing = |field| MtaStsError::Missing {
            what: "policy",
            field,
        };
        if !version {
            return Err(missing("version"));
        }
        let mode = mode.ok_or_else(|| missing("mode"))?;
        let max_age = max_age.ok_or_else(|| missing("max_age"))?;
        if mx.is_empty() && mode != Mode::None {
            return Err(missing("mx"));
        }
        Ok(MtaStsPolicy {
            mode,
            mx,
            max_age,
            extensions,
        })
    }
}

impl fmt::Display for MtaStsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version: STSv1\r\nmode: {}\r\n", self.mode.as_str())?;
        for mx in &self.mx {
            write!(f, "mx: {mx}\r\n")?;
        }
        write!(f, "max_age: {}\r\n", self.max_age)?;
        for (name, value) in &self.extensions {
            write!(f, "{name}: {value}\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (TXT record, canonical rendering)
    const RECORDS: &[(&str, &str)] = &[
        // RFC 8461 §3.1 example
        (
            "v=STSv1; id=20160831085700Z;",
            "v=STSv1; id=20160831085700Z",
        ),
        // gmail.com style
        (
            "v=STSv1; id=20190429T010101;",
            "v=STSv1; id=20190429T010101",
        ),
        ("v=STSv1;id=1", "v=STSv1; id=1"),
        (
            "  v=STSv1 ;\tid=abc ; ext.v-1=x:y ;",
            "v=STSv1; id=abc; ext.v-1=x:y",
        ),
    ];

    #[test]
    fn txt_records() {
        for (input, expected) in RECORDS {
            let r: MtaSts = input.parse().unwrap_or_else(|e| panic!("`{input}`: {e}"));
            assert_eq!(r.to_string(), *expected);
            assert_eq!(expected.parse::<MtaSts>().unwrap(), r);
        }
        let r: MtaSts = RECORDS[3].0.parse().unwrap();
        assert_eq!(
            r.extensions,
            vec![("ext.v-1".to_string(), "x:y".to_string())]
        );
    }

    const BAD_RECORDS: &[(&str, &str)] = &[
        ("v=STSv2; id=1", "found `v=STSv2`"),
        ("id=1; v=STSv1", "found `id=1`"),
        ("v=stsv1; id=1", "found `v=stsv1`"),
        ("v=STSv1", "no `id` field"),
        ("v=STSv1;", "no `id` field"),
        ("v=STSv1; id=", "`id` has invalid value ``"),
        (
            "v=STSv1; id=2019-04-29",
            "`id` has invalid value `2019-04-29`",
        ),
        (
            "v=STSv1; id=123456789012345678901234567890123",
            "1 to 32 letters",
        ),
        ("v=STSv1; id = 1", "malformed MTA-STS field `id = 1`"),
        ("v=STSv1; id=1; id=2", "`id` appears more than once"),
        ("v=STSv1; id=1; x=a=b", "`x` has invalid value `a=b`"),
    ];

    #[test]
    fn bad_txt_records() {
        for (input, needle) in BAD_RECORDS {
            match input.parse::<MtaSts>() {
                Ok(r) => panic!("`{input}` parsed as {r:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "`{input}`: `{e}` lacks `{needle}`"
                ),
            }
        }
    }

    #[test]
    fn policy_files() {
        // RFC 8461 §3.2 example, LF line ends
        let rfc = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";
        let p: MtaStsPolicy = rfc.parse().unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(
            p.mx,
            vec!["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        assert_eq!(p.max_age, 604_800);
        assert_eq!(
            p.to_string(),
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"
        );
        // gmail.com style: CRLF, another field order, no final newline
        let google = "version: STSv1\r\nmode: enforce\r\nmx: gmail-smtp-in.l.google.com\r\nmx: *.gmail-smtp-in.l.google.com\r\nmax_age: 86400";
        let g: MtaStsPolicy = google.parse().unwrap();
        assert_eq!(g.mx.len(), 2);
        assert_eq!(g.to_string(), format!("{google}\r\n"));
        // mode none needs no mx; extension fields kept; odd order; spaces
        let none = "max_age:86400\nmode: none\nversion:  STSv1\ncomment: hello world\n";
        let n: MtaStsPolicy = none.parse().unwrap();
        assert_eq!(n.mode, Mode::None);
        assert!(n.mx.is_empty());
        assert_eq!(
            n.extensions,
            vec![("comment".to_string(), "hello world".to_string())]
        );
        assert_eq!(
            n.to_string(),
            "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\ncomment: hello world\r\n"
        );
        assert_eq!(n.to_string().parse::<MtaStsPolicy>().unwrap(), n);
    }

    const BAD_POLICIES: &[(&str, &str)] = &[
        (
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            "no `version` field",
        ),
        (
            "version: STSv1\nmx: a.example\nmax_age: 1\n",
            "no `mode` field",
        ),
        (
            "version: STSv1\nmode: testing\nmx: a.example\n",
            "no `max_age` field",
        ),
        (
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "no `mx` field",
        ),
        (
            "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            "`version` has invalid value `STSv2`",
        ),
        (
            "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
            "`mode` has invalid value `Enforce`",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
            "`max_age` has invalid value `31557601`",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
            "`max_age` has invalid value `-1`",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
            "`mx` has invalid value `a.*.example`",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n",
            "`mx` has invalid value `a_b.example`",
        ),
        (
            "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
            "`mode` appears more than once",
        ),
        (
            "version: STSv1\nmode: enforce\n\nmx: a.example\nmax_age: 1\n",
            "line 3 is malformed",
        ),
    ];

    #[test]
    fn bad_policy_files() {
        for (input, needle) in BAD_POLICIES {
            match input.parse::<MtaStsPolicy>() {
                Ok(p) => panic!("`{input}` parsed as {p:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "`{input}`: `{e}` lacks `{needle}`"
                ),
            }
        }
    }

    #[test]
    fn policy_errors_name_their_line() {
        // (policy, line at fault or None for a missing field, message)
        let cases: &[(&str, Option<usize>, &str)] = &[
            (
                "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 99999999999\r\n",
                Some(4),
                "policy line 4: MTA-STS field `max_age` has invalid value `99999999999`",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.example\nmx: *.*.example\nmax_age: 1\n",
                Some(4),
                "policy line 4: MTA-STS field `mx`",
            ),
            (
                "version: STSv1\nversion: STSv1\n",
                Some(2),
                "policy line 2: MTA-STS field `version` appears more than once",
            ),
            ("<html>\n", Some(1), "policy line 1 is malformed: `<html>`"),
            (
                "version: STSv1\nmode: testing\nmx: a.example\n",
                None,
                "no `max_age`",
            ),
        ];
        for (input, line, needle) in cases {
            let e = input.parse::<MtaStsPolicy>().expect_err(input);
            assert_eq!(e.line(), *line, "{input:?}: {e}");
            assert!(
                e.to_string().contains(needle),
                "{input:?}: `{e}` lacks `{needle}`"
            );
        }
    }

    #[test]
    fn policy_ids_follow_the_content() {
        let p: MtaStsPolicy =
            "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: 86400\n"
                .parse()
                .unwrap();
        let id = policy_id(&p);
        assert!(MtaSts::valid_id(&id), "{id}");
        assert_eq!(id.len(), 32);
        // Stable: the same content, however it was written, the same id.
        let crlf: MtaStsPolicy = p.to_string().parse().unwrap();
        assert_eq!(policy_id(&crlf), id);
        let mut enforce = p.clone();
        enforce.mode = Mode::Enforce;
        let mut more_mx = p.clone();
        more_mx.mx.push("*.example.net".into());
        let mut age = p.clone();
        age.max_age = 86401;
        for other in [enforce, more_mx, age] {
            assert_ne!(policy_id(&other), id, "{other:?}");
        }
    }

    #[test]
    fn mx_matching() {
        let p: MtaStsPolicy =
            "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 1\n"
                .parse()
                .unwrap();
        assert!(p.mx_matches("mail.example.com"));
        assert!(p.mx_matches("MAIL.Example.COM."));
        assert!(p.mx_matches("mx1.example.net"));
        assert!(!p.mx_matches("a.mx1.example.net"));
        assert!(!p.mx_matches("example.net"));
        assert!(!p.mx_matches("other.example.com"));
    }

    prop_compose! {
        fn arb_record()(
            id in "[A-Za-z0-9]{1,32}",
            extensions in proptest::collection::vec(("[a-z0-9][a-z0-9_.-]{0,10}", "[!-:<>-~]{1,12}"), 0..3),
        ) -> MtaSts {
            let extensions = extensions.into_iter().filter(|(n, _)| n != "id" && n != "v").collect();
            MtaSts { id, extensions }
        }
    }

    prop_compose! {
        fn arb_policy()(
            mode in prop_oneof![Just(Mode::Enforce), Just(Mode::Testing), Just(Mode::None)],
            mx in proptest::collection::vec("(\\*\\.)?[a-z0-9]{1,8}(\\.[a-z0-9][a-z0-9-]{0,6}[a-z0-9]){1,3}", 1..4),
            max_age in 0..=MAX_AGE_LIMIT,
            extensions in proptest::collection::vec(("[a-z0-9][a-z0-9_.-]{0,10}", "[!-~]([ !-~]{0,10}[!-~])?"), 0..3),
        ) -> MtaStsPolicy {
            let extensions = extensions
                .into_iter()
                .filter(|(n, _)| !matches!(n.as_str(), "version" | "mode" | "mx" | "max_age"))
                .collect();
            MtaStsPolicy { mode, mx, max_age, extensions }
        }
    }

    proptest! {
        #[test]
        fn record_round_trip(r in arb_record()) {
            let text = r.to_string();
            let back: MtaSts = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn policy_round_trip(p in arb_policy()) {
            let text = p.to_string();
            let back: MtaStsPolicy = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(&back, &p);
            prop_assert_eq!(back.to_string(), text.clone());
            // LF-only files mean the same policy
            let lf: MtaStsPolicy = text.replace("\r\n", "\n").parse().map_err(|e: MtaStsError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(lf, p);
        }

        #[test]
        fn policy_parse_never_panics(s in "\\PC{0,200}") {
            let _ = s.parse::<MtaStsPolicy>();
            let _ = s.parse::<MtaSts>();
        }
    }
}
