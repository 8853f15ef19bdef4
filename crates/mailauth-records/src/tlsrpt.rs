//! The SMTP TLS Reporting record published at `_smtp._tls.<domain>`
//! (RFC 8460 §3): its typed value [`TlsRpt`], parsing from a joined TXT
//! value and canonical rendering.
//!
//! This module does not send, receive or parse TLS reports, and does not
//! check that the report destinations accept them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Name;

/// Errors from parsing a TLS-RPT record. Every message names the field and
/// the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRptError {
    #[error("a TLS-RPT record must start with `v=TLSRPTv1`, found `{found}`")]
    Version { found: String },
    #[error("malformed TLS-RPT field `{field}`: expected `name=value`")]
    Syntax { field: String },
    #[error("TLS-RPT field `{field}` appears more than once")]
    Duplicate { field: String },
    #[error("TLS-RPT record has no `rua` field")]
    MissingRua,
    #[error("TLS-RPT field `rua`: URI `{uri}` {reason}")]
    Uri { uri: String, reason: &'static str },
    #[error("TLS-RPT field `{field}` has invalid value `{value}`")]
    Value { field: String, value: String },
}

/// A TLS-RPT policy record.
///
/// RFC 8460 §3:
/// ```text
/// tlsrpt-record     = tlsrpt-version 1*(field-delim tlsrpt-field)
///                     [field-delim]
/// field-delim       = *WSP ";" *WSP
/// tlsrpt-field      = tlsrpt-rua /        ; Note 1
///                     tlsrpt-extension
/// tlsrpt-version    = %s"v=TLSRPTv1"
/// tlsrpt-rua        = %s"rua="
///                     tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
/// tlsrpt-uri        = URI
///                   ; "URI" is imported from [RFC3986];
///                   ; commas (ASCII 0x2C), semicolons (ASCII 0x3B),
///                   ; and exclamation points (ASCII 0x21)
///                   ; MUST be encoded
/// tlsrpt-extension  = tlsrpt-ext-name "=" tlsrpt-ext-value
/// tlsrpt-ext-name   = (ALPHA / DIGIT) *31(ALPHA /
///                     DIGIT / "_" / "-" / ".")
/// tlsrpt-ext-value  = 1*(%x21-3A / %x3C / %x3E-7E)
///                     ; chars excluding "=", ";", SP, and control chars
/// ```
/// "Note 1: The rua tag is required." The two schemes defined are `mailto:`
/// and `https:` (§3: "The supported methods are "mailto:" and "https:"").
/// URIs are kept as written except that the scheme is lower-cased.
/// Canonical rendering: `v=TLSRPTv1; rua=<uri>,<uri>` then `; name=value`
/// for each extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsRpt {
    /// Report destinations, `mailto:` or `https:` URIs, in order; never empty
    /// in a parsed record.
    pub rua: Vec<String>,
    /// `(name, value)` pairs of extension fields, in order.
    pub extensions: Vec<(String, String)>,
}

/// Checks one `rua` URI and returns it with its scheme lower-cased.
pub fn check_rua_uri(uri: &str) -> Result<String, TlsRptError> {
    let err = |reason| TlsRptError::Uri {
        uri: uri.to_string(),
        reason,
    };
    if uri.is_empty()
        || uri
            .bytes()
            .any(|b| !(0x21..=0x7e).contains(&b) || matches!(b, b',' | b';' | b'!'))
    {
        return Err(err("contains a character that must be percent-encoded"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(err("is not a URI: expected `mailto:` or `https:`"));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "mailto" => {
            let address = rest.split('?').next().unwrap_or_default();
            let Some((local, domain)) = address.rsplit_once('@') else {
                return Err(err("has no `@domain` in its address"));
            };
            if local.is_empty()
                || domain.is_empty()
                || domain.ends_with('.')
                || Name::parse(domain).is_err()
            {
                return Err(err("has an invalid address"));
            }
        }
        "https" => {
            let Some(authority) = rest.strip_prefix("//") else {
                return Err(err("must be `https://host/...`"));
            };
            let host_port = authority.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
            let host = match host.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => host,
            };
            if host.is_empty() || Name::parse(host).is_err() {
                return Err(err("has no valid host"));
            }
        }
        _ => {
            return Err(err(
                "has an unsupported scheme: expected `mailto:` or `https:`",
            ));
        }
    }
    Ok(format!("{scheme}:{rest}"))
}

fn ext_name(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn ext_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21..=0x3a | 0x3c | 0x3e..=0x7e))
}

impl FromStr for TlsRpt {
    type Err = TlsRptError;

    fn from_str(s: &str) -> Result<TlsRpt, TlsRptError> {
        let mut fields: Vec<&str> = s
            .trim_matches([' ', '\t'])
            .split(';')
            .map(|f| f.trim_matches([' ', '\t']))
            .collect();
        if fields.len() > 1 && fields.last() == Some(&"") {
            fields.pop();
        }
        if fields.first() != Some(&"v=TLSRPTv1") {
            return Err(TlsRptError::Version {
                found: fields.first().unwrap_or(&"").to_string(),
            });
        }
        let mut rua: Option<Vec<String>> = None;
        let mut extensions = Vec::new();
        for field in &fields[1..] {
            let Some((name, value)) = field.split_once('=') else {
                return Err(TlsRptError::Syntax {
                    field: field.to_string(),
                });
            };
            match name {
                "rua" => {
                    if rua.is_some() {
                        return Err(TlsRptError::Duplicate {
                            field: "rua".into(),
                        });
                    }
                    rua = Some(
                        value
                            .split(',')
                            .map(|u| check_rua_uri(u.trim_matches([' ', '\t'])))
                            .collect::<Result<_, _>>()?,
                    );
                }
                "v" => return Err(TlsRptError::Duplicate { field: "v".into() }),
                _ => {
                    if !ext_name(name) {
                        return Err(TlsRptError::Syntax {
                            field: field.to_string(),
                        });
                    }
                    if !ext_value(value) {
                        return Err(TlsRptError::Value {
                            field: name.to_string(),
                            value: value.to_string(),
                        });
                    }
                    extensions.push((name.to_string(), value.to_string()));
                }
            }
        }
        Ok(TlsRpt {
            rua: rua.ok_or(TlsRptError::MissingRua)?,
            extensions,
        })
    }
}

impl fmt::Display for TlsRpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=TLSRPTv1; rua={}", self.rua.join(","))?;
        for (name, value) in &self.extensions {
            write!(f, "; {name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (TXT record, canonical rendering)
    const TABLE: &[(&str, &str)] = &[
        // RFC 8460 §3.1 examples
        (
            "v=TLSRPTv1;rua=mailto:reports@example.com",
            "v=TLSRPTv1; rua=mailto:reports@example.com",
        ),
        (
            "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
            "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
        ),
        (
            "v=TLSRPTv1; rua=mailto:reports@example.com, https://reporting.example.com/v1/tlsrpt",
            "v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt",
        ),
        // google.com style
        (
            "v=TLSRPTv1; rua=mailto:tls-reports@google.com",
            "v=TLSRPTv1; rua=mailto:tls-reports@google.com",
        ),
        // trailing separator, scheme case, port, extension
        (
            "v=TLSRPTv1 ; RUA=x; rua=MAILTO:tlsrpt@Example.org;",
            "v=TLSRPTv1; rua=mailto:tlsrpt@Example.org; RUA=x",
        ),
        (
            "v=TLSRPTv1; rua=https://r.example.net:8443/tls?d=example.com",
            "v=TLSRPTv1; rua=https://r.example.net:8443/tls?d=example.com",
        ),
    ];

    #[test]
    fn table() {
        for (input, expected) in TABLE {
            let r: TlsRpt = input.parse().unwrap_or_else(|e| panic!("`{input}`: {e}"));
            assert_eq!(r.to_string(), *expected);
            assert_eq!(expected.parse::<TlsRpt>().unwrap(), r);
        }
        let r: TlsRpt = TABLE[2].0.parse().unwrap();
        assert_eq!(
            r.rua,
            vec![
                "mailto:reports@example.com",
                "https://reporting.example.com/v1/tlsrpt"
            ]
        );
    }

    const BAD: &[(&str, &str)] = &[
        ("v=TLSRPTv2; rua=mailto:a@example.com", "found `v=TLSRPTv2`"),
        (
            "rua=mailto:a@example.com; v=TLSRPTv1",
            "found `rua=mailto:a@example.com`",
        ),
        ("v=TLSRPTv1", "no `rua` field"),
        ("v=TLSRPTv1; ext=1", "no `rua` field"),
        ("v=TLSRPTv1; rua=http://example.com/r", "unsupported scheme"),
        (
            "v=TLSRPTv1; rua=mailto:nobody",
            "`mailto:nobody` has no `@domain`",
        ),
        (
            "v=TLSRPTv1; rua=https:example.com",
            "must be `https://host/...`",
        ),
        ("v=TLSRPTv1; rua=https:///path", "has no valid host"),
        ("v=TLSRPTv1; rua=", "URI `` contains"),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com!10m",
            "must be percent-encoded",
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com",
            "`rua` appears more than once",
        ),
        (
            "v=TLSRPTv1; rua = mailto:a@example.com",
            "malformed TLS-RPT field `rua = mailto:a@example.com`",
        ),
    ];

    #[test]
    fn bad_records() {
        for (input, needle) in BAD {
            match input.parse::<TlsRpt>() {
                Ok(r) => panic!("`{input}` parsed as {r:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "`{input}`: `{e}` lacks `{needle}`"
                ),
            }
        }
    }

    fn uri() -> impl Strategy<Value = String> {
        prop_oneof![
            ("[a-z0-9._+-]{1,10}", "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}")
                .prop_map(|(l, d)| format!("mailto:{l}@{d}")),
            (
                "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}",
                "(/[a-zA-Z0-9._~-]{0,8}){0,3}"
            )
                .prop_map(|(h, p)| format!("https://{h}{p}")),
        ]
    }

    prop_compose! {
        fn arb()(
            rua in proptest::collection::vec(uri(), 1..4),
            extensions in proptest::collection::vec(("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,10}", "[!-:<>-~]{1,12}"), 0..3),
        ) -> TlsRpt {
            let extensions = extensions.into_iter().filter(|(n, _)| n != "rua" && n != "v").collect();
            TlsRpt { rua, extensions }
        }
    }

    proptest! {
        #[test]
        fn round_trip(r in arb()) {
            let text = r.to_string();
            let back: TlsRpt = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn render_is_stable(s in "v=TLSRPTv1(; ?[a-z]{1,4}=[a-zA-Z0-9:/.@,]{1,20}){0,4};?") {
            if let Ok(r) = s.parse::<TlsRpt>() {
                let once = r.to_string();
                let again: TlsRpt = once.parse().map_err(|e| TestCaseError::fail(format!("{once}: {e}")))?;
                prop_assert_eq!(again.to_string(), once);
            }
        }
    }
}
